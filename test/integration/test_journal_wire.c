/*
 * test_journal_wire.c: the journal's record of what happens on the wire
 * beyond accepted and refused messages: every resend of an unconfirmed
 * message (EVENT_REDELIVERED), how often and since when a confirmed one
 * was sent (CONFIRMED's sends, first_sent_ms), and frames refused on the
 * spot (EVENT_REFUSED_WIRE), without payload data and within their bound
 * (HUB_WIRE_JOURNAL_PER_CONN a minute per connection), the rest counted.
 * Each test has a hub of its own, so counts are exact.
 */
#include "harness.h"
#include "nhub_journal.pb-c.h"
#include "raw.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MARKER "WIRE-PAYLOAD-MARKER"
#define PER_CONN 10 /* HUB_WIRE_JOURNAL_PER_CONN */

static void *g_ctx;

static int setup(void **state)
{
    return th_group_setup(state, "  redeliver_after: 200ms\n  redeliver_max: 10s\n");
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

#define MAX_EVENTS 64

struct events {
    int n;
    th_journal_event_t copy[MAX_EVENTS]; /* shallow: only scalars and the reason are read */
    char reason[MAX_EVENTS][256];
    char region[MAX_EVENTS][8];
    uint8_t msg_id[MAX_EVENTS][16];
};

/* Every record of `type`, its scalar fields kept. */
static int g_type;
static void collect(const th_journal_event_t *ev, void *arg)
{
    struct events *e = arg;
    if ((int)ev->type != g_type || e->n == MAX_EVENTS)
        return;
    e->copy[e->n] = *ev;
    snprintf(e->reason[e->n], sizeof e->reason[0], "%s", ev->reason);
    snprintf(e->region[e->n], sizeof e->region[0], "%s", ev->region);
    if (ev->msg_id.len == 16)
        memcpy(e->msg_id[e->n], ev->msg_id.data, 16);
    e->n++;
}

static struct events *events_of(const th_hub_t *h, int type)
{
    struct events *e = calloc(1, sizeof *e);
    assert_non_null(e);
    g_type = type;
    assert_int_equal(th_journal_foreach(h, collect, e), 0);
    return e;
}

/* After this, everything staged before it is committed: a session's
 * HEARTBEAT is answered after the commit of what preceded it. */
static void sync_commits(raw_t *r)
{
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    raw_send(r, WIRE_HEARTBEAT, &hb.base);
    ProtobufCMessage *m = raw_expect(r, WIRE_HEARTBEAT);
    assert_non_null(m);
    wire_free(&m);
}

static void expect_nack(raw_t *r, int code)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(raw_recv_answer(r, &m, 10000), WIRE_NACK);
    assert_int_equal(((wire_nack_t *)m)->code, code);
    wire_free(&m);
}

static void test_resend_is_journaled_and_confirmed_counts_its_sends(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "320000", 8);
    raw_hello_ok(b, "330000", 4);
    uint8_t id[16], id2[16], buf[512];
    raw_make_id(id, 1);
    size_t n = raw_envelope(buf, sizeof buf, id, "320000", "330000", "nhub.test.v1.Ping", "p", 1);
    raw_send_env(a, 1, buf, n);
    wire_ack_t *ack = raw_expect(a, WIRE_ACK);
    uint64_t seq = ack->seq;
    wire_free((ProtobufCMessage **)&ack);
    wire_deliver_t *d = raw_expect(b, WIRE_DELIVER);
    assert_int_equal(d->attempt, 1);
    wire_free((ProtobufCMessage **)&d);
    d = raw_expect(b, WIRE_DELIVER); /* not confirmed: sent again */
    assert_int_equal(d->attempt, 2);
    raw_confirm(b, d);
    wire_free((ProtobufCMessage **)&d);
    /* A second message, confirmed at its first send. */
    raw_make_id(id2, 2);
    n = raw_envelope(buf, sizeof buf, id2, "320000", "330000", "nhub.test.v1.Ping", "q", 1);
    raw_send_env(a, 2, buf, n);
    ack = raw_expect(a, WIRE_ACK);
    uint64_t seq2 = ack->seq;
    wire_free((ProtobufCMessage **)&ack);
    d = raw_expect(b, WIRE_DELIVER);
    assert_int_equal(d->seq, seq2);
    raw_confirm(b, d);
    wire_free((ProtobufCMessage **)&d);
    sync_commits(b);

    struct events *re = events_of(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REDELIVERED);
    assert_true(re->n >= 1);
    for (int i = 0; i < re->n; i++) { /* all of the first message: the second was confirmed */
        assert_int_equal(re->copy[i].ref_seq, seq);
        assert_string_equal(re->region[i], "330000");
        assert_int_equal(re->copy[i].dseq, 1);
        assert_int_equal(re->copy[i].sends, (uint32_t)i + 2);
        assert_memory_equal(re->msg_id[i], id, 16);
    }
    struct events *acc = events_of(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED);
    struct events *co = events_of(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIRMED);
    assert_int_equal(acc->n, 2);
    assert_int_equal(co->n, 2);
    assert_int_equal(co->copy[0].ref_seq, seq);
    /* Every send counted: the first and each resend journaled. */
    assert_int_equal(co->copy[0].sends, (uint32_t)re->n + 1);
    assert_int_equal(co->copy[1].ref_seq, seq2);
    assert_int_equal(co->copy[1].sends, 1);
    for (int i = 0; i < 2; i++) { /* sent after it was accepted, before it was confirmed */
        assert_true(co->copy[i].first_sent_ms >= acc->copy[i].time_ms - 2);
        assert_true(co->copy[i].first_sent_ms <= co->copy[i].time_ms);
    }
    assert_true(re->copy[0].time_ms >= co->copy[0].first_sent_ms + 150); /* redeliver_after */
    free(re);
    free(acc);
    free(co);
    raw_free(&a);
    raw_free(&b);
}

static void test_wire_refusals_are_journaled_with_code_and_no_payload(void **state)
{
    th_hub_t *h = *state;
    raw_t *bad = raw_new(g_ctx, h->endpoint);
    uint8_t hdr[8], id[16], buf[512];
    wire_header_make(hdr, WIRE_HELLO);
    hdr[4] = 9; /* unknown protocol version */
    raw_frames(bad, hdr, 8, MARKER, sizeof MARKER - 1);
    expect_nack(bad, NHUB__WIRE__V1__NACK_CODE__NACK_VERSION);
    wire_header_make(hdr, WIRE_HELLO);
    hdr[5] = 77; /* unknown command */
    raw_frames(bad, hdr, 8, MARKER, sizeof MARKER - 1);
    expect_nack(bad, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND);
    wire_header_make(hdr, WIRE_HELLO);
    raw_frames(bad, hdr, 8, "\x0a\x50\x31", 3); /* truncated protobuf */
    expect_nack(bad, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED);
    raw_make_id(id, 3);
    size_t n = raw_envelope(buf, sizeof buf, id, "110000", "120000", "nhub.test.v1.Ping", MARKER,
                            sizeof MARKER - 1);
    raw_send_env(bad, 1, buf, n); /* a SEND before HELLO */
    expect_nack(bad, NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED);
    raw_frames(bad, MARKER, 8, MARKER, 16); /* not an nhub header: dropped unanswered */
    raw_t *good = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(good, "130000", 8);
    sync_commits(good);

    struct events *e = events_of(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REFUSED_WIRE);
    static const uint32_t want[] = {NHUB__WIRE__V1__NACK_CODE__NACK_VERSION,
                                    NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND,
                                    NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED,
                                    NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED, 0};
    assert_int_equal(e->n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(e->copy[i].code, want[i]);
        assert_true(e->reason[i][0] != '\0');
        assert_null(strstr(e->reason[i], MARKER));
        assert_int_equal(e->copy[i].not_journaled, 0);
        assert_true(e->copy[i].time_ms > 0);
    }
    assert_non_null(strstr(e->reason[0], "protocol version 9"));
    free(e);
    raw_free(&good);
    raw_free(&bad);
}

static void test_a_refusal_flood_journals_its_bound_and_counts_the_rest(void **state)
{
    th_hub_t *h = *state;
    raw_t *bad = raw_new(g_ctx, h->endpoint);
    uint8_t hdr[8];
    wire_header_make(hdr, WIRE_HELLO);
    hdr[5] = 77;
    for (int i = 0; i < 25; i++)
        raw_frames(bad, hdr, 8, "", 0);
    for (int i = 0; i < 25; i++)
        expect_nack(bad, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND);
    raw_t *good = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(good, "130000", 8);
    sync_commits(good);
    struct events *e = events_of(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REFUSED_WIRE);
    assert_int_equal(e->n, PER_CONN);
    free(e);
    /* Another connection has its own share; its record counts what was left out. */
    raw_t *other = raw_new(g_ctx, h->endpoint);
    raw_frames(other, hdr, 8, "", 0);
    expect_nack(other, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND);
    sync_commits(good);
    e = events_of(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REFUSED_WIRE);
    assert_int_equal(e->n, PER_CONN + 1);
    assert_int_equal(e->copy[PER_CONN].not_journaled, 25 - PER_CONN);
    free(e);
    raw_free(&other);
    raw_free(&good);
    raw_free(&bad);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srand(13);
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resend_is_journaled_and_confirmed_counts_its_sends,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_refusals_are_journaled_with_code_and_no_payload,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_refusal_flood_journals_its_bound_and_counts_the_rest,
                                        setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("journal_wire", tests, NULL, NULL);
    if (rc == 0)
        zmq_ctx_term(g_ctx);
    return rc;
}
