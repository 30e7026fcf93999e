/*
 * test_cases.c: cases with time limits, end to end. A real nhubd on the
 * production catalogue (schemas/catalog.yaml), raw wire clients on
 * loopback, real payloads, and the hub's injected clock (--test-clock):
 * the tests move time by hours and days without waiting, and read the
 * cases through the store's read API in a second process's view of the
 * LMDB environment, while the hub runs.
 *
 * Each region has two connections: a send-only one for its SENDs and
 * their ACKs, and a reading one (credit 8) for its deliveries, so the two
 * streams of frames never interleave in a test.
 *
 * SI-VERIFY-002 (insured-status verification): reminder 16h, time limit
 * 1d, grace 1d, answers valid 30d. SI-PUSH-001: reminder 4d, limit 5d.
 */
#include "harness.h"
#include "log.h"
#include "raw.h"
#include "samples.h"
#include "store.h"

#include "nhub/case/v1/case.pb-c.h"
#include "nhub_journal.pb-c.h"

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zmq.h>

#include <cmocka.h>

static void *g_ctx;

#define A "110000" /* Beijing: asks and pushes */
#define B "440000" /* Guangdong: handles */
#define C "310000" /* Shanghai: neither */
#define HOUR INT64_C(3600000)
#define K(x) NHUB__WIRE__V1__KIND__KIND_##x
#define NACK(x) NHUB__WIRE__V1__NACK_CODE__NACK_##x
#define EV(x) NHUB__CASE__V1__EVENT__EVENT_##x
#define VERIFY "SI-VERIFY-002"
#define QUERY "nhub.insured.v1.StatusQuery"
#define ANSWER "nhub.insured.v1.StatusAnswer"

typedef struct region {
    const char *code;
    raw_t *send; /* credit 0 */
    raw_t *read; /* credit 8: gets the deliveries */
    uint64_t sseq;
} region_t;

typedef struct world {
    th_hub_t *h;
    region_t a, b, c;
    int next_id;
} world_t;

static int setup(void **state)
{
    world_t *w = calloc(1, sizeof *w);
    th_hub_t *h = calloc(1, sizeof *h);
    char catalog[4096];
    if (!w || !h || !realpath("schemas/catalog.yaml", catalog) || th_hub_init(h, NULL) != 0)
        goto fail;
    int n = snprintf(h->security, sizeof h->security,
                     "security:\n  mode: insecure-plaintext\n  catalog: \"%.900s\"\n", catalog);
    if (n < 0 || (size_t)n >= sizeof h->security || th_hub_start(h) != 0) {
        th_hub_cleanup(h);
        goto fail;
    }
    w->h = h;
    w->a.code = A;
    w->b.code = B;
    w->c.code = C;
    *state = w;
    return 0;
fail:
    free(h);
    free(w);
    return -1;
}

static void region_close(region_t *r)
{
    raw_free(&r->send);
    raw_free(&r->read);
}

static int teardown(void **state)
{
    world_t *w = *state;
    region_close(&w->a);
    region_close(&w->b);
    region_close(&w->c);
    void *hs = w->h;
    free(w);
    return th_group_teardown(&hs);
}

static void region_connect(world_t *w, region_t *r)
{
    region_close(r);
    r->send = raw_new(g_ctx, w->h->endpoint);
    raw_hello_ok(r->send, r->code, 0);
    r->sseq = 0;
    r->read = raw_new(g_ctx, w->h->endpoint);
    char *accept[] = {"nhub.insured.v1.*", "nhub.push.v1.*", "nhub.credit.v1.*", "nhub.case.v1.*"};
    wire_welcome_t *wel = raw_hello(r->read, r->code, 8, accept, 4);
    wire_free((ProtobufCMessage **)&wel);
}

static void connect_all(world_t *w)
{
    region_connect(w, &w->a);
    region_connect(w, &w->b);
    region_connect(w, &w->c);
}

/* ---- sending ----------------------------------------------------------------- */

/* SEND a message and return the hub's answer: WIRE_ACK, or WIRE_NACK with *code. */
static int send_msg(world_t *w, region_t *from, const uint8_t id[16], const char *dst,
                    const char *item, int kind, const char *type, const uint8_t *payload,
                    size_t plen, const uint8_t *case_id, int *code)
{
    uint8_t buf[8192];
    size_t n = raw_envelope_answer(buf, sizeof buf, id, from->code, dst, item, kind, type, payload,
                                   plen, case_id);
    raw_send_env(from->send, ++from->sseq, buf, n);
    ProtobufCMessage *m = NULL;
    int cmd = raw_recv_answer(from->send, &m, 10000);
    *code = cmd == WIRE_NACK ? (int)((wire_nack_t *)m)->code : 0;
    if (cmd == WIRE_NACK && *code != NACK(CASE_UNKNOWN) && *code != NACK(CASE_CLOSED) &&
        *code != NACK(CASE_NOT_HANDLER))
        fprintf(stderr, "NACK %d %s\n", *code, ((wire_nack_t *)m)->text);
    wire_free(&m);
    (void)w;
    return cmd;
}

static void new_id(world_t *w, uint8_t id[16])
{
    raw_make_id(id, ++w->next_id);
}

/* A verification request from A to B: the case id. */
static void ask(world_t *w, uint8_t id[16])
{
    size_t len;
    uint8_t *p = sample_bytes(QUERY, &len);
    int code;
    new_id(w, id);
    assert_int_equal(send_msg(w, &w->a, id, B, VERIFY, K(REQUEST), QUERY, p, len, NULL, &code),
                     WIRE_ACK);
    free(p);
}

/* A response to case `case_id` from `from` to `to`: the hub's answer (and *code). */
static int answer(world_t *w, region_t *from, const char *to, const uint8_t case_id[16], int *code)
{
    size_t len;
    uint8_t *p = sample_bytes(ANSWER, &len), id[16];
    new_id(w, id);
    int cmd = send_msg(w, from, id, to, VERIFY, K(RESPONSE), ANSWER, p, len, case_id, code);
    free(p);
    return cmd;
}

static int feedback(world_t *w, const uint8_t case_id[16], const char *stage, int *code)
{
    ProtobufCMessage *m = sample_new("nhub.push.v1.Feedback");
    assert_non_null(m);
    assert_int_equal(sample_set(m, "stage", stage), 0);
    if (strcmp(stage, "STAGE_REFUSED") == 0)
        assert_int_equal(sample_set(m, "refusal_reason", "材料不全"), 0);
    size_t len;
    uint8_t *p = sample_pack(m, &len), id[16];
    sample_free(&m);
    new_id(w, id);
    int cmd = send_msg(w, &w->b, id, A, "SI-PUSH-001", K(FEEDBACK), "nhub.push.v1.Feedback", p,
                       len, case_id, code);
    free(p);
    return cmd;
}

/* ---- receiving ---------------------------------------------------------------- */

static wire_envelope_t *next_envelope(region_t *r)
{
    wire_deliver_t *d = raw_expect(r->read, WIRE_DELIVER);
    raw_confirm(r->read, d);
    ProtobufCMessage *e = NULL;
    assert_int_equal(
        wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope.data, d->envelope.len,
                    d->envelope.len, &e),
        0);
    wire_free((ProtobufCMessage **)&d);
    return (wire_envelope_t *)e;
}

/* The next delivery to `r` is a message of `kind` from `src` about case_id; returns it. */
static wire_envelope_t *expect_message(region_t *r, const char *src, int kind,
                                       const uint8_t case_id[16])
{
    wire_envelope_t *e = next_envelope(r);
    assert_string_equal(e->source, src);
    assert_int_equal(e->kind, kind);
    if (kind == K(REQUEST) || kind == K(PUSH))
        assert_memory_equal(e->msg_id.data, case_id, 16);
    else
        assert_memory_equal(e->correlation_id.data, case_id, 16);
    return e;
}

/* The next delivery to `r` is the hub's notice `event` about case_id, of `kind`. */
static void expect_notice(region_t *r, int kind, int event, const uint8_t case_id[16])
{
    wire_envelope_t *e = expect_message(r, "000000", kind, case_id);
    assert_string_equal(e->payload_type, "nhub.case.v1.CaseNotice");
    Nhub__Case__V1__CaseNotice *n =
        nhub__case__v1__case_notice__unpack(NULL, e->payload.len, e->payload.data);
    assert_non_null(n);
    assert_int_equal(n->event, event);
    assert_memory_equal(n->case_id.data, case_id, 16);
    assert_string_equal(n->handler, B);
    assert_string_equal(n->requester, A);
    assert_true(n->due_ms > n->opened_ms && n->expires_ms > n->due_ms);
    nhub__case__v1__case_notice__free_unpacked(n, NULL);
    wire_free((ProtobufCMessage **)&e);
}

/* As expect_message, for a message whose contents do not matter here. */
static void take_message(region_t *r, const char *src, int kind, const uint8_t case_id[16])
{
    wire_envelope_t *e = expect_message(r, src, kind, case_id);
    wire_free((ProtobufCMessage **)&e);
}

/* Nothing more is delivered to `r` within `ms` (the hub had its chance). */
static void expect_quiet(region_t *r, int ms)
{
    ProtobufCMessage *m = NULL;
    int cmd;
    do {
        cmd = raw_recv(r->read, &m, ms);
        if (cmd == WIRE_DELIVER)
            fail_msg("unexpected DELIVER");
        wire_free(&m);
    } while (cmd == WIRE_HEARTBEAT);
}

/* ---- reading cases (a reader beside the running hub) --------------------------------- */

static store_t *reader_store(const world_t *w)
{
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s/hub-data", w->h->dir);
    store_t *s = NULL;
    if (store_open_reader(dir, &s, err, sizeof err) != 0)
        fail_msg("%s", err);
    return s;
}

static int read_case(const world_t *w, const uint8_t id[16], store_case_t *c)
{
    store_t *s = reader_store(w);
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_open(s, &r), 0);
    int rc = store_case_read(r, id, c);
    store_reader_close(&r);
    store_close(&s);
    return rc;
}

/* Wait (10 s at most) until case `id` is in `state`; returns it. */
static store_case_t wait_case(const world_t *w, const uint8_t id[16], int state)
{
    store_case_t c;
    memset(&c, 0, sizeof c);
    int64_t until = th_now_ms() + 10000;
    while (th_now_ms() < until) {
        if (read_case(w, id, &c) == 0 && c.state == state)
            return c;
        poll(NULL, 0, 10); /* the hub applies it on its own: look again shortly */
    }
    fail_msg("case state %s, expected %s", store_case_state_name(c.state),
             store_case_state_name(state));
    return c;
}

/* The journal event types of case `id`'s timeline, in order, into types[]. */
static size_t timeline(const world_t *w, const uint8_t id[16], int *types, size_t max)
{
    store_t *s = reader_store(w);
    store_reader_t *r = NULL;
    uint64_t seqs[64];
    size_t n = 0;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(store_case_timeline(r, id, 0, seqs, 64, &n), 0);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        const void *data;
        size_t len;
        assert_int_equal(store_journal_get(r, seqs[i], &data, &len, NULL), 0);
        Nhub__Journal__V1__JournalEvent *ev =
            nhub__journal__v1__journal_event__unpack(NULL, len, data);
        assert_non_null(ev);
        types[i] = ev->type;
        nhub__journal__v1__journal_event__free_unpacked(ev, NULL);
    }
    store_reader_close(&r);
    store_close(&s);
    return n;
}

#define T(x) NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_##x

static void assert_timeline(const world_t *w, const uint8_t id[16], const int *want, size_t n)
{
    int got[64];
    size_t m = timeline(w, id, got, 64);
    for (size_t i = 0; i < m && i < n; i++)
        if (got[i] != want[i])
            fail_msg("timeline[%zu] = %d, expected %d", i, got[i], want[i]);
    assert_int_equal(m, n);
}

/* Move the hub's clock to `offset_ms` ahead of the system's, and wait
 * until the hub has read it (it logs the new offset). */
static void clock_at(world_t *w, int64_t offset_ms)
{
    assert_int_equal(th_hub_clock_move(w->h, offset_ms, 10000), 0);
}

/* ---- the tests ------------------------------------------------------------------ */

static int run_cli(const world_t *w, const char *args, char *out, size_t cap);

/* Every region connected; a request from A handed to B, the case delivered. */
static void open_delivered(world_t *w, uint8_t id[16])
{
    connect_all(w);
    ask(w, id);
    take_message(&w->b, A, K(REQUEST), id);
    wait_case(w, id, STORE_CASE_DELIVERED);
}

static void test_answered_in_time(void **state)
{
    world_t *w = *state;
    connect_all(w);
    uint8_t id[16];
    ask(w, id);
    store_case_t c = wait_case(w, id, STORE_CASE_OPEN);
    assert_string_equal(c.requester, A);
    assert_string_equal(c.handler, B);
    assert_string_equal(c.item, VERIFY);
    assert_int_equal(c.due_ms - c.opened_ms, 24 * HOUR);
    assert_int_equal(c.remind_ms - c.opened_ms, 16 * HOUR);
    assert_int_equal(c.expire_ms - c.due_ms, 24 * HOUR);
    assert_int_equal(c.next_ms, c.remind_ms);

    take_message(&w->b, A, K(REQUEST), id);
    wait_case(w, id, STORE_CASE_DELIVERED);

    int code;
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_ACK);
    c = wait_case(w, id, STORE_CASE_ANSWERED);
    assert_int_equal(c.next_ms, 0);
    assert_true(c.closed_ms >= c.opened_ms);
    assert_int_equal(c.valid_until_ms - c.closed_ms, 30 * 24 * HOUR);
    assert_true(c.answer_seq > c.request_seq);
    take_message(&w->a, B, K(RESPONSE), id);

    const int want[] = {T(ACCEPTED), T(CASE_DELIVERED), T(ACCEPTED),
                        T(CASE_ANSWERED)};
    assert_timeline(w, id, want, 4);

    /* The days pass: an answered case has no deadline left, nobody is told anything. */
    clock_at(w, 10 * 24 * HOUR);
    expect_quiet(&w->a, 300);
    expect_quiet(&w->b, 1);
    assert_int_equal(read_case(w, id, &c), 0);
    assert_int_equal(c.state, STORE_CASE_ANSWERED);
}

static void test_reminded_then_answered(void **state)
{
    world_t *w = *state;
    uint8_t id[16];
    open_delivered(w, id);

    clock_at(w, 17 * HOUR);
    expect_notice(&w->b, K(NOTICE), EV(REMINDER), id);
    store_case_t c = wait_case(w, id, STORE_CASE_REMINDED);
    assert_int_equal(c.next_ms, c.due_ms);
    expect_quiet(&w->a, 1); /* the requester is not told of a reminder */

    int code;
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_ACK);
    wait_case(w, id, STORE_CASE_ANSWERED);
    take_message(&w->a, B, K(RESPONSE), id);
    const int want[] = {T(ACCEPTED), T(CASE_DELIVERED), T(CASE_REMINDED),
                        T(HUB_MESSAGE), T(ACCEPTED),    T(CASE_ANSWERED)};
    assert_timeline(w, id, want, 6);
}

static void test_overdue_then_answered(void **state)
{
    world_t *w = *state;
    uint8_t id[16];
    open_delivered(w, id);

    clock_at(w, 25 * HOUR); /* past the limit: overdue, not reminded first */
    expect_notice(&w->a, K(NOTICE), EV(OVERDUE), id);
    expect_notice(&w->b, K(NOTICE), EV(OVERDUE), id);
    store_case_t c = wait_case(w, id, STORE_CASE_OVERDUE);
    assert_int_equal(c.next_ms, c.expire_ms);
    assert_true(th_log_wait(w->h, "hub.case_overdue", 1, 10000));

    int code; /* late but within the grace: still taken */
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_ACK);
    c = wait_case(w, id, STORE_CASE_ANSWERED);
    assert_true(c.flags & STORE_CASE_F_OVERDUE);
    take_message(&w->a, B, K(RESPONSE), id);
}

static void test_expired_gets_the_hubs_final_answer_once(void **state)
{
    world_t *w = *state;
    uint8_t id[16];
    open_delivered(w, id);

    clock_at(w, 49 * HOUR); /* past the limit and the grace */
    expect_notice(&w->a, K(RESPONSE), EV(EXPIRED), id);
    store_case_t c = wait_case(w, id, STORE_CASE_EXPIRED);
    assert_int_equal(c.next_ms, 0);
    assert_int_equal(c.answer_seq, 0);

    /* The handler's answer comes too late: refused for good, and not passed on. */
    int code;
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_CLOSED));
    expect_quiet(&w->a, 300);

    /* A restart and more days: still exactly one final answer. */
    region_close(&w->a);
    region_close(&w->b);
    assert_int_equal(th_hub_stop(w->h), 0);
    assert_int_equal(th_hub_clock_write(w->h, 30 * 24 * HOUR), 0);
    assert_int_equal(th_hub_start(w->h), 0);
    const int want[] = {T(ACCEPTED), T(CASE_DELIVERED), T(CASE_EXPIRED),
                        T(HUB_MESSAGE)};
    assert_timeline(w, id, want, 4);
}

static void test_wrong_answers_are_refused_with_their_codes(void **state)
{
    world_t *w = *state;
    connect_all(w);
    uint8_t id[16], unknown[16];
    ask(w, id);
    new_id(w, unknown);
    int code;
    /* No case of that id. */
    assert_int_equal(answer(w, &w->b, A, unknown, &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_UNKNOWN));
    /* No case named at all. */
    assert_int_equal(answer(w, &w->b, A, NULL, &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_UNKNOWN));
    /* From a region that does not handle it. */
    assert_int_equal(answer(w, &w->c, A, id, &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_NOT_HANDLER));
    /* From the handler, to a region that did not ask. */
    assert_int_equal(answer(w, &w->b, C, id, &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_NOT_HANDLER));
    store_case_t c;
    assert_int_equal(read_case(w, id, &c), 0);
    assert_false(store_case_closed(c.state));
    /* The right answer, then a second one: the case is closed. */
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_ACK);
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_CLOSED));
    /* Each refusal is logged by its reason, with the case's id and no payload. */
    assert_true(th_log_wait(w->h, "reason=case_unknown", 1, 10000));
    assert_true(th_log_wait(w->h, "reason=case_not_handler", 1, 10000));
    assert_true(th_log_wait(w->h, "reason=case_closed", 1, 10000));
}

static void test_push_feedback_stages(void **state)
{
    world_t *w = *state;
    connect_all(w);
    size_t len;
    uint8_t *p = sample_bytes("nhub.push.v1.Application", &len), id[16], id2[16];
    int code;
    new_id(w, id);
    assert_int_equal(send_msg(w, &w->a, id, B, "SI-PUSH-001", K(PUSH), "nhub.push.v1.Application",
                              p, len, NULL, &code),
                     WIRE_ACK);
    new_id(w, id2);
    assert_int_equal(send_msg(w, &w->a, id2, B, "SI-PUSH-001", K(PUSH), "nhub.push.v1.Application",
                              p, len, NULL, &code),
                     WIRE_ACK);
    free(p);
    store_case_t c = wait_case(w, id, STORE_CASE_OPEN);
    assert_int_equal(c.due_ms - c.opened_ms, 5 * 24 * HOUR);

    /* A response is not how a push is answered. */
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_UNKNOWN));

    assert_int_equal(feedback(w, id, "STAGE_RECEIVED", &code), WIRE_ACK);
    c = wait_case(w, id, STORE_CASE_HANDLING);
    assert_int_equal(c.stage, 1);
    assert_int_equal(feedback(w, id, "STAGE_HANDLING", &code), WIRE_ACK);
    assert_int_equal(feedback(w, id, "STAGE_DONE", &code), WIRE_ACK);
    c = wait_case(w, id, STORE_CASE_ANSWERED);
    assert_int_equal(c.stage, 3);
    assert_int_equal(feedback(w, id, "STAGE_DONE", &code), WIRE_NACK);
    assert_int_equal(code, NACK(CASE_CLOSED));

    assert_int_equal(feedback(w, id2, "STAGE_REFUSED", &code), WIRE_ACK);
    c = wait_case(w, id2, STORE_CASE_REFUSED);
    assert_int_equal(c.valid_until_ms, 0);

    /* The requester got every stage. */
    wire_envelope_t *e;
    for (int i = 0; i < 4; i++) {
        e = next_envelope(&w->a);
        assert_int_equal(e->kind, K(FEEDBACK));
        wire_free((ProtobufCMessage **)&e);
    }
}

static void test_deadlines_survive_a_restart_and_fire_at_start(void **state)
{
    world_t *w = *state;
    connect_all(w);
    uint8_t early[16], late[16];
    ask(w, early);
    take_message(&w->b, A, K(REQUEST), early);
    clock_at(w, 20 * HOUR); /* the first case is reminded now */
    expect_notice(&w->b, K(NOTICE), EV(REMINDER), early);
    ask(w, late); /* opened 20 h after the first */
    wait_case(w, late, STORE_CASE_OPEN);

    /* Down while the first case's grace and the second's reminder pass. */
    region_close(&w->a);
    region_close(&w->b);
    region_close(&w->c);
    assert_int_equal(th_hub_stop(w->h), 0);
    assert_int_equal(th_hub_clock_write(w->h, 50 * HOUR), 0);
    assert_int_equal(th_hub_start(w->h), 0);
    wait_case(w, early, STORE_CASE_EXPIRED);
    wait_case(w, late, STORE_CASE_OVERDUE); /* 30 h after its opening: past its limit */
    connect_all(w);
    /* Both the final answer of one and the overdue notice of the other wait in A's queue. */
    int got_expired = 0, got_overdue = 0;
    for (int i = 0; i < 2; i++) {
        wire_envelope_t *e = next_envelope(&w->a);
        if (strcmp(e->source, "000000") != 0)
            fprintf(stderr, "from %s kind %d item %s type %s\n", e->source, e->kind, e->item,
                    e->payload_type);
        assert_string_equal(e->source, "000000");
        got_expired += memcmp(e->correlation_id.data, early, 16) == 0 && e->kind == K(RESPONSE);
        got_overdue += memcmp(e->correlation_id.data, late, 16) == 0 && e->kind == K(NOTICE);
        wire_free((ProtobufCMessage **)&e);
    }
    assert_int_equal(got_expired, 1);
    assert_int_equal(got_overdue, 1);

    /* The second case's expiry is still pending on disk and fires when its time comes. */
    clock_at(w, 70 * HOUR);
    expect_notice(&w->a, K(RESPONSE), EV(EXPIRED), late);
    wait_case(w, late, STORE_CASE_EXPIRED);

    store_t *s = reader_store(w);
    store_reader_t *r = NULL;
    uint64_t counts[STORE_CASE_STATES];
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(store_case_counts(r, counts), 0);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[STORE_CASE_EXPIRED], 2);
    store_case_filter_t f = {.region = B, .state = STORE_CASE_EXPIRED};
    store_case_t list[4];
    size_t n = 0;
    assert_int_equal(store_case_list(r, &f, NULL, list, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(list[0].id, late, 16); /* newest first */
    assert_memory_equal(list[1].id, early, 16);
    f = (store_case_filter_t){.region = C};
    assert_int_equal(store_case_list(r, &f, NULL, list, 4, &n), 0);
    assert_int_equal(n, 0);
    store_reader_close(&r);
    store_close(&s);
}

static void test_broadcast_copies_are_tracked(void **state)
{
    world_t *w = *state;
    connect_all(w);
    size_t len;
    uint8_t *p = sample_bytes("nhub.credit.v1.CreditNotice", &len), id[16];
    int code;
    new_id(w, id);
    assert_int_equal(send_msg(w, &w->a, id, "*", "SI-NOTICE-001", K(NOTICE),
                              "nhub.credit.v1.CreditNotice", p, len, NULL, &code),
                     WIRE_ACK);
    free(p);
    wire_envelope_t *e = next_envelope(&w->b);
    assert_memory_equal(e->msg_id.data, id, 16);
    wire_free((ProtobufCMessage **)&e);
    e = next_envelope(&w->c);
    wire_free((ProtobufCMessage **)&e);

    /* 31 copies, one per other region; B's and C's confirmed, the rest waiting. */
    store_tracked_t t[40];
    size_t n = 0, confirmed = 0;
    int64_t until = th_now_ms() + 10000;
    while (th_now_ms() < until) {
        store_t *s = reader_store(w);
        store_reader_t *r = NULL;
        assert_int_equal(store_reader_open(s, &r), 0);
        assert_int_equal(store_tracked_list(r, id, t, 40, &n), 0);
        store_reader_close(&r);
        store_close(&s);
        confirmed = 0;
        for (size_t i = 0; i < n; i++)
            confirmed += t[i].confirmed_ms != 0;
        if (confirmed == 2)
            break;
        poll(NULL, 0, 10);
    }
    assert_int_equal(n, 31);
    assert_int_equal(confirmed, 2);
    char hex[33], args[64], out[8192];
    log_hex(hex, sizeof hex, id, 16);
    snprintf(args, sizeof args, "deliveries %s", hex);
    assert_int_equal(run_cli(w, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "2 of 31 confirmed"));
    assert_non_null(strstr(out, "650000  dseq 1        not confirmed"));
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(t[i].region, A);
        assert_int_equal(t[i].confirmed_ms != 0,
                         strcmp(t[i].region, B) == 0 || strcmp(t[i].region, C) == 0);
    }
}

/* Run nhub-cases with `args` on the hub's data directory; its output into
 * out (cap bytes); returns its exit status. */
static int run_cli(const world_t *w, const char *args, char *out, size_t cap)
{
    char bin[512], cmd[1400];
    th_bin("nhub-cases", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s --data %s/hub-data %s 2>&1", bin, w->h->dir, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_the_command_line_view_reads_beside_the_running_hub(void **state)
{
    world_t *w = *state;
    uint8_t id[16], other[16];
    open_delivered(w, id);
    ask(w, other); /* left open */
    int code;
    assert_int_equal(answer(w, &w->b, A, id, &code), WIRE_ACK);
    wait_case(w, id, STORE_CASE_ANSWERED);
    char hex[33], args[128], out[8192];
    log_hex(hex, sizeof hex, id, 16);

    snprintf(args, sizeof args, "show %s", hex);
    assert_int_equal(run_cli(w, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "answered"));
    assert_non_null(strstr(out, "110000 -> 440000"));
    const char *opened = strstr(out, "-> open"), *delivered = strstr(out, "CASE_DELIVERED"),
               *answered = strstr(out, "CASE_ANSWERED");
    assert_true(opened && delivered && answered && opened < delivered && delivered < answered);
    assert_null(strstr(out, "payload_b64"));

    assert_int_equal(run_cli(w, "list --open", out, sizeof out), 0);
    assert_null(strstr(out, hex));
    assert_non_null(strstr(out, " open "));
    assert_int_equal(run_cli(w, "list --state answered --region 440000 --json", out, sizeof out),
                     0);
    assert_non_null(strstr(out, hex));
    assert_non_null(strstr(out, "\"state\":\"answered\""));
    assert_int_equal(run_cli(w, "counts --json", out, sizeof out), 0);
    assert_non_null(strstr(out, "\"all\":2,\"open\":1,"));

    /* Mistakes say what is wrong. */
    assert_int_equal(run_cli(w, "show 1234", out, sizeof out), 2);
    assert_non_null(strstr(out, "32 hex digits"));
    assert_int_equal(run_cli(w, "show 00000000000000000000000000000000", out, sizeof out), 1);
    assert_non_null(strstr(out, "no case"));
    assert_int_equal(run_cli(w, "list --state late", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown state"));
}

int main(void)
{
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answered_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reminded_then_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overdue_then_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_gets_the_hubs_final_answer_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrong_answers_are_refused_with_their_codes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_push_feedback_stages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadlines_survive_a_restart_and_fire_at_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_copies_are_tracked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_command_line_view_reads_beside_the_running_hub,
                                        setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        zmq_ctx_term(g_ctx);
    return rc;
}
