/*
 * test_payloads.c: the hub checks business payloads against the schemas for
 * the items of the production catalogue (schemas/catalog.yaml): a real
 * nhubd, real payloads of every schema type (test/harness/samples.c), raw
 * wire clients on loopback.
 *
 * Each refusal has its own NACK code and a text naming the type and field,
 * never the value; it is final (not retryable), remembered like every
 * refusal (a resend after a restart gets the same answer), logged and
 * counted.
 */
#include "harness.h"
#include "nhub.h"
#include "payload.h"
#include "raw.h"
#include "samples.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

static void *g_ctx;

#define A "110000" /* Beijing: asks, pushes, broadcasts */
#define B "440000" /* Guangdong: answers, handles */

static int setup(void **state)
{
    th_hub_t *h = calloc(1, sizeof *h);
    if (!h || th_hub_init(h, NULL) != 0) {
        free(h);
        return -1;
    }
    if (th_hub_insecure_catalog(h, "schemas/catalog.yaml") != 0 || th_hub_start(h) != 0) {
        th_hub_cleanup(h);
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

typedef struct route {
    const char *item;
    int kind;
    const char *type;
} route_t;

#define K(x) NHUB__WIRE__V1__KIND__KIND_##x

/* Every type of the production catalogue, with its item and kind. */
static const route_t ROUTES[] = {
    {"SI-VERIFY-001", K(REQUEST), "nhub.transfer.v1.TransferCheck"},
    {"SI-VERIFY-001", K(RESPONSE), "nhub.transfer.v1.TransferCheckAnswer"},
    {"SI-VERIFY-002", K(REQUEST), "nhub.insured.v1.StatusQuery"},
    {"SI-VERIFY-002", K(REQUEST), "nhub.insured.v2.StatusQuery"},
    {"SI-VERIFY-002", K(RESPONSE), "nhub.insured.v1.StatusAnswer"},
    {"SI-VERIFY-002", K(RESPONSE), "nhub.insured.v2.StatusAnswer"},
    {"SI-VERIFY-003", K(REQUEST), "nhub.commitment.v1.CommitmentQuery"},
    {"SI-VERIFY-003", K(RESPONSE), "nhub.commitment.v1.CommitmentAnswer"},
    {"SI-PUSH-001", K(PUSH), "nhub.push.v1.Application"},
    {"SI-PUSH-001", K(PUSH), "nhub.push.v2.Application"},
    {"SI-PUSH-001", K(FEEDBACK), "nhub.push.v1.Feedback"},
    {"SI-PUSH-001", K(FEEDBACK), "nhub.push.v2.Feedback"},
    {"SI-TRANSFER-001", K(PUSH), "nhub.transfer.v1.TransferRequest"},
    {"SI-TRANSFER-001", K(FEEDBACK), "nhub.transfer.v1.TransferFeedback"},
    {"SI-UPLOAD-001", K(PUSH), "nhub.registration.v1.RegistrationBatch"},
    {"SI-UPLOAD-001", K(FEEDBACK), "nhub.registration.v1.BatchFeedback"},
    {"SI-NOTICE-001", K(NOTICE), "nhub.credit.v1.CreditNotice"},
};
#define ROUTE_COUNT (sizeof ROUTES / sizeof ROUTES[0])

static bool is_answer(int kind)
{
    return kind == K(RESPONSE) || kind == K(FEEDBACK);
}

/* SEND `payload` as `type` of item/kind from the client of its direction; returns the reply. */
static int send_payload_to_case(raw_t *from, uint64_t sseq, const uint8_t id[16], const char *src,
                                const char *dst, const route_t *r, const char *type,
                                const void *payload, size_t len, const uint8_t *case_id,
                                ProtobufCMessage **reply)
{
    uint8_t *buf = malloc(len + 1024);
    size_t elen = raw_envelope_answer(buf, len + 1024, id, src, dst, r->item, r->kind, type,
                                      payload, len, case_id);
    raw_send_env(from, sseq, buf, elen);
    free(buf);
    return raw_recv_answer(from, reply, 10000);
}

static int send_payload(raw_t *from, uint64_t sseq, int n, const char *src, const char *dst,
                        const route_t *r, const char *type, const void *payload, size_t len,
                        ProtobufCMessage **reply)
{
    uint8_t id[16];
    raw_make_id(id, n);
    return send_payload_to_case(from, sseq, id, src, dst, r, type, payload, len, NULL, reply);
}

static void test_every_schema_type_is_accepted_for_its_item_and_kind(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_t *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, A, 0);
    raw_hello_ok(b, B, 0);
    uint64_t sa = 0, sb = 0;
    bool used[ROUTE_COUNT] = {false};
    uint8_t ids[ROUTE_COUNT][16];
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        const route_t *r = &ROUTES[i];
        size_t len;
        uint8_t *p = sample_bytes(r->type, &len);
        assert_non_null(p);
        bool answer = is_answer(r->kind);
        const char *dst = r->kind == K(NOTICE) ? "*" : answer ? A : B;
        /* An answer names a case: the first request or push of its item not answered yet. */
        const uint8_t *corr = NULL;
        for (size_t j = 0; answer && !corr && j < i; j++)
            if (!used[j] && !is_answer(ROUTES[j].kind) && strcmp(ROUTES[j].item, r->item) == 0) {
                used[j] = true;
                corr = ids[j];
            }
        raw_make_id(ids[i], 100 + (int)i);
        ProtobufCMessage *reply = NULL;
        int cmd = send_payload_to_case(answer ? b : a, answer ? ++sb : ++sa, ids[i],
                                       answer ? B : A, dst, r, r->type, p, len, corr, &reply);
        if (cmd == WIRE_NACK)
            fprintf(stderr, "%s: NACK %d %s\n", r->type, ((wire_nack_t *)reply)->code,
                    ((wire_nack_t *)reply)->text);
        assert_int_equal(cmd, WIRE_ACK);
        wire_free(&reply);
        free(p);
    }
    raw_free(&a);
    raw_free(&b);
}

typedef struct refusal {
    const route_t route;
    const char *type;  /* as the envelope names it */
    const char *path;  /* field to break; NULL: send `junk` as the payload */
    const char *value; /* NULL: clear the field */
    int code;
    const char *text;
} refusal_t;

#define NC(x) NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_##x

static const refusal_t REFUSALS[] = {
    {{"SI-VERIFY-002", K(REQUEST), "nhub.insured.v1.StatusQuery"},
     "nhub.insured.v9.StatusQuery", NULL, NULL, NC(UNKNOWN),
     "payload: unknown type nhub.insured.v9.StatusQuery (package nhub.insured has v1, v2)"},
    {{"SI-VERIFY-002", K(REQUEST), "nhub.insured.v1.StatusQuery"}, "org.example.Query", NULL,
     NULL, NC(UNKNOWN), "payload: unknown type org.example.Query"},
    {{"SI-VERIFY-002", K(REQUEST), "nhub.push.v1.Application"}, "nhub.push.v1.Application",
     NULL, NULL, NC(NOT_ALLOWED),
     "catalogue: item SI-VERIFY-002 does not carry nhub.push.v1.Application as request (it "
     "carries nhub.insured.v1.StatusQuery, nhub.insured.v2.StatusQuery)"},
    {{"SI-VERIFY-002", K(REQUEST), "nhub.insured.v1.StatusAnswer"},
     "nhub.insured.v1.StatusAnswer", NULL, NULL, NC(NOT_ALLOWED),
     "catalogue: item SI-VERIFY-002 does not carry nhub.insured.v1.StatusAnswer as request (it "
     "carries nhub.insured.v1.StatusQuery, nhub.insured.v2.StatusQuery)"},
    {{"SI-PUSH-001", K(PUSH), "nhub.push.v1.Application"}, "nhub.push.v1.Application", "", NULL,
     NC(MALFORMED), "payload: does not decode as nhub.push.v1.Application"},
    {{"SI-VERIFY-002", K(REQUEST), "nhub.insured.v1.StatusQuery"}, "nhub.insured.v1.StatusQuery",
     "person.id_number", "110105194912310021", NC(INVALID),
     "payload: nhub.insured.v1.StatusQuery person.id_number: wrong check digit"},
    {{"SI-VERIFY-003", K(REQUEST), "nhub.commitment.v1.CommitmentQuery"},
     "nhub.commitment.v1.CommitmentQuery", "person.name", NULL, NC(INVALID),
     "payload: nhub.commitment.v1.CommitmentQuery person.name: required, missing"},
    {{"SI-NOTICE-001", K(NOTICE), "nhub.credit.v1.CreditNotice"}, "nhub.credit.v1.CreditNotice",
     "entries", NULL, NC(INVALID),
     "payload: nhub.credit.v1.CreditNotice entries: 0 entries, must be 1 to 10000"},
};
#define REFUSAL_COUNT (sizeof REFUSALS / sizeof REFUSALS[0])

/* The payload a refusal sends. */
static uint8_t *refusal_payload(const refusal_t *f, size_t *len)
{
    if (f->path && !f->path[0]) { /* junk: a length prefix running past the end */
        uint8_t *junk = malloc(3);
        memcpy(junk, "\x0a\x7fx", 3);
        *len = 3;
        return junk;
    }
    ProtobufCMessage *m = sample_new(f->route.type);
    assert_non_null(m);
    if (f->path)
        assert_int_equal(f->value ? sample_set(m, f->path, f->value) : sample_clear(m, f->path),
                         0);
    uint8_t *p = sample_pack(m, len);
    sample_free(&m);
    return p;
}

static void expect_refusals(raw_t *a, uint64_t first_sseq)
{
    for (size_t i = 0; i < REFUSAL_COUNT; i++) {
        const refusal_t *f = &REFUSALS[i];
        size_t len;
        uint8_t *p = refusal_payload(f, &len);
        const char *dst = f->route.kind == K(NOTICE) ? "*" : B;
        ProtobufCMessage *reply = NULL;
        int cmd = send_payload(a, first_sseq + i, 200 + (int)i, A, dst, &f->route, f->type, p,
                               len, &reply);
        assert_int_equal(cmd, WIRE_NACK);
        wire_nack_t *n = (wire_nack_t *)reply;
        if (n->code != (unsigned)f->code || strcmp(n->text, f->text) != 0)
            fprintf(stderr, "refusal %zu: code %d: %s\n", i, n->code, n->text);
        assert_int_equal(n->code, f->code);
        assert_string_equal(n->text, f->text);
        assert_false(n->retryable);
        assert_int_equal(n->stream_seq, first_sseq + i);
        assert_null(strstr(n->text, "110105194912310021"));
        wire_free(&reply);
        free(p);
    }
}

static void test_each_payload_refusal_has_its_code_and_names_the_field(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, A, 0);
    expect_refusals(a, 1);

    /* The stream goes on: a good message after the refusals is stored. */
    size_t len;
    uint8_t *p = sample_bytes("nhub.insured.v1.StatusQuery", &len);
    ProtobufCMessage *reply = NULL;
    assert_int_equal(send_payload(a, REFUSAL_COUNT + 1, 300, A, B, &ROUTES[2], ROUTES[2].type, p,
                                  len, &reply),
                     WIRE_ACK);
    wire_free(&reply);
    free(p);
    raw_free(&a);

    /* Counted, and logged by reason without the value. */
    assert_int_equal(th_hub_stop(h), 0);
    assert_int_equal(th_log_count(h, "hub.payload_stats payload_unknown=2 payload_not_allowed=2 "
                                     "payload_malformed=1 payload_invalid=3"),
                     1);
    assert_true(th_log_count(h, "reason=payload_invalid") >= 1);
    assert_int_equal(th_log_count(h, "110105194912310021"), 0);
}

static void test_refusals_are_answered_the_same_after_a_restart(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, A, 0);
    expect_refusals(a, 1);
    assert_int_equal(th_hub_stop(h), 0);
    assert_int_equal(th_hub_start(h), 0);
    uint8_t stream[16];
    memcpy(stream, a->stream_id, 16);
    raw_free(&a);
    a = raw_new(g_ctx, h->endpoint);
    memcpy(a->stream_id, stream, 16);
    wire_welcome_t *w = raw_hello(a, A, 0, NULL, 0);
    assert_int_equal(w->stream_last, REFUSAL_COUNT);
    wire_free((ProtobufCMessage **)&w);
    /* A resend of a refused stream message: the stored refusal, not a new check. */
    expect_refusals(a, 1);
    raw_free(&a);
}

/* The next DELIVER to `r` (skipping heartbeats), confirmed. */
static wire_deliver_t *next_deliver(raw_t *r)
{
    wire_deliver_t *d = raw_expect(r, WIRE_DELIVER);
    raw_confirm(r, d);
    return d;
}

static wire_envelope_t *envelope_of(const ProtobufCBinaryData *b)
{
    ProtobufCMessage *e = NULL;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, b->data, b->len, b->len,
                                 &e),
                     0);
    return (wire_envelope_t *)e;
}

/* SEND the sample payload of `type` as item/kind from A to B (stream_seq
 * sseq), wait for its ACK; the envelope as sent into sent[cap], its msg_id
 * (made from n) into id. Returns the envelope's length. */
static size_t send_sample_ack(raw_t *a, uint64_t sseq, int n, const char *item, int kind,
                              const char *type, uint8_t id[16], uint8_t *sent, size_t cap)
{
    size_t len;
    uint8_t *p = sample_bytes(type, &len);
    assert_non_null(p);
    raw_make_id(id, n);
    size_t sent_len = raw_envelope_item(sent, cap, id, A, B, item, kind, type, p, len);
    free(p);
    raw_send_env(a, sseq, sent, sent_len);
    wire_ack_t *ack = raw_expect(a, WIRE_ACK);
    wire_free((ProtobufCMessage **)&ack);
    return sent_len;
}

static void test_a_region_gets_the_version_it_announced_or_the_message_waits(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_t *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, A, 0);
    char *v1_only[] = {"nhub.insured.v1.*"};
    wire_welcome_t *w = raw_hello(b, B, 8, v1_only, 1);
    wire_free((ProtobufCMessage **)&w);

    /* A v2 query to a region that reads v1 only: translated, the original beside it. */
    uint8_t id[16], sent[2048];
    size_t sent_len = send_sample_ack(a, 1, 400, "SI-VERIFY-002", K(REQUEST),
                                      "nhub.insured.v2.StatusQuery", id, sent, sizeof sent);
    wire_deliver_t *d = next_deliver(b);
    wire_envelope_t *e = envelope_of(&d->envelope);
    assert_string_equal(e->payload_type, "nhub.insured.v1.StatusQuery");
    assert_memory_equal(e->msg_id.data, id, 16);
    assert_string_equal(e->item, "SI-VERIFY-002");
    char why[256];
    assert_int_equal(payload_check(e->payload_type, e->payload.data, e->payload.len, NULL, why,
                                   sizeof why),
                     PAYLOAD_OK);
    assert_int_equal(d->original_envelope.len, sent_len);
    assert_memory_equal(d->original_envelope.data, sent, sent_len);
    wire_free((ProtobufCMessage **)&e);
    wire_free((ProtobufCMessage **)&d);

    /* A push the region announced no version of, and no translation reaches: held. */
    sent_len = send_sample_ack(a, 2, 401, "SI-PUSH-001", K(PUSH), "nhub.push.v1.Application", id,
                               sent, sizeof sent);
    assert_true(th_log_wait(h, "reason=awaiting_version", 1, 10000));

    /* The region announces push v2: the v1 push is translated up and handed over. */
    raw_free(&b);
    b = raw_new(g_ctx, h->endpoint);
    char *with_push[] = {"nhub.insured.v1.*", "nhub.push.v2.*"};
    w = raw_hello(b, B, 8, with_push, 2);
    wire_free((ProtobufCMessage **)&w);
    d = next_deliver(b);
    e = envelope_of(&d->envelope);
    assert_string_equal(e->payload_type, "nhub.push.v2.Application");
    assert_memory_equal(e->msg_id.data, id, 16);
    assert_int_equal(d->original_envelope.len, sent_len);
    wire_free((ProtobufCMessage **)&e);
    wire_free((ProtobufCMessage **)&d);
    raw_free(&a);
    raw_free(&b);
    assert_int_equal(th_hub_stop(h), 0);
    /* The query lost include_periods on the way down; the push lost nothing going up. */
    assert_int_equal(th_log_count(h, "translated=2 translated_lossy=1"), 1);
}

/* Through libnhub: a translated delivery says so and carries the signed original. */
static void test_libnhub_hands_over_the_translation_and_the_signed_original(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, A, 0);
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s/adapter-b", h->dir);
    const char *v1_only[] = {"nhub.insured.v1.*"};
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = B;
    o.hub_endpoint = h->endpoint;
    o.data_dir = dir;
    o.insecure_plaintext = 1;
    o.accepted_payloads = v1_only;
    o.n_accepted = 1;
    nhub_t *b = NULL;
    if (nhub_open(&o, &b, err, sizeof err) != 0)
        fail_msg("nhub_open: %s", err);

    uint8_t id[16], sent[2048];
    size_t sent_len = send_sample_ack(a, 1, 500, "SI-VERIFY-002", K(REQUEST),
                                      "nhub.insured.v2.StatusQuery", id, sent, sizeof sent);

    nhub_delivery_t *d = NULL;
    assert_int_equal(nhub_recv(b, &d, 10000), 0);
    assert_string_equal(d->payload_type, "nhub.insured.v1.StatusQuery");
    assert_int_equal(d->translated, 1);
    assert_int_equal(d->signed_envelope_len, sent_len);
    assert_memory_equal(d->signed_envelope, sent, sent_len);
    assert_true(d->envelope_len != sent_len || memcmp(d->envelope, sent, sent_len) != 0);
    assert_memory_equal(d->msg_id, id, 16);
    assert_int_equal(nhub_confirm(b, &d), 0);

    /* An untranslated one: the signed envelope is the envelope itself. */
    sent_len = send_sample_ack(a, 2, 501, "SI-VERIFY-002", K(REQUEST),
                               "nhub.insured.v1.StatusQuery", id, sent, sizeof sent);
    assert_int_equal(nhub_recv(b, &d, 10000), 0);
    assert_int_equal(d->translated, 0);
    assert_ptr_equal(d->signed_envelope, d->envelope);
    assert_int_equal(d->envelope_len, sent_len);
    assert_memory_equal(d->envelope, sent, sent_len);
    assert_int_equal(nhub_confirm(b, &d), 0);
    nhub_close(&b);
    raw_free(&a);
}

int main(void)
{
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_schema_type_is_accepted_for_its_item_and_kind,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_payload_refusal_has_its_code_and_names_the_field,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_are_answered_the_same_after_a_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_region_gets_the_version_it_announced_or_the_message_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_libnhub_hands_over_the_translation_and_the_signed_original, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0) /* a failed test may have left sockets open: terminating would wait for them */
        zmq_ctx_term(g_ctx);
    return rc;
}
