/*
 * test_protocol.c: the wire protocol against a real nhubd, spoken by hand
 * over a raw DEALER socket: sessions, streams, idempotency, delivery,
 * redelivery, persistence across restarts, and refusal of bad input.
 */
#include "harness.h"
#include "raw.h"
#include "nhub_err.h"
#include "wire.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

static void *g_ctx;

static void ack_ok(raw_t *r)
{
    wire_ack_t *ack = raw_expect(r, WIRE_ACK);
    wire_free((ProtobufCMessage **)&ack);
}

/* A HEARTBEAT answered: the hub has read every frame `r` sent before it. */
static void round_trip(raw_t *r)
{
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    raw_send(r, WIRE_HEARTBEAT, &hb.base);
    wire_heartbeat_t *back = raw_expect(r, WIRE_HEARTBEAT);
    wire_free((ProtobufCMessage **)&back);
}

/* An envelope with a text payload. */
static size_t envelope(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                       const char *dst, const char *type, const char *payload)
{
    return raw_envelope(buf, cap, id, src, dst, type, payload, strlen(payload));
}

static int setup(void **state)
{
    return th_group_setup(state,
                          "  redeliver_after: 300ms\n  redeliver_max: 600ms\n  max_frame: 64KiB\n");
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

static void test_hello_answered_with_welcome(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    wire_welcome_t *w = raw_hello(a, "110000", 8, NULL, 0);
    assert_int_equal(w->protocol_version, 1);
    assert_int_equal(w->hub_id.len, 16);
    assert_int_equal(w->stream_last, 0);
    assert_int_equal(w->max_frame, 64 * 1024);
    wire_free((ProtobufCMessage **)&w);
    raw_free(&a);
}

static void test_send_before_hello_is_refused(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    uint8_t id[16], buf[512];
    raw_make_id(id, 1);
    size_t n = envelope(buf, sizeof buf, id, "110000", "440000", "nhub.test.v1.Ping", "x");
    raw_send_env(a, 1, buf, n);
    wire_nack_t *nack = raw_expect(a, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED);
    assert_true(nack->retryable);
    wire_free((ProtobufCMessage **)&nack);
    raw_free(&a);
}

static void test_duplicate_msg_id_acked_with_original_seq(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "110000", 8);
    uint8_t id[16], buf[512];
    raw_make_id(id, 2);
    size_t n = envelope(buf, sizeof buf, id, "110000", "120000", "nhub.test.v1.Ping", "hello");
    raw_send_env(a, 1, buf, n);
    wire_ack_t *ack = raw_expect(a, WIRE_ACK);
    uint64_t seq = ack->seq;
    assert_true(seq > 0);
    assert_false(ack->duplicate);
    assert_memory_equal(ack->msg_id.data, id, 16);
    wire_free((ProtobufCMessage **)&ack);
    /* The same msg_id as a new stream message: stored once, original seq. */
    raw_send_env(a, 2, buf, n);
    ack = raw_expect(a, WIRE_ACK);
    assert_true(ack->duplicate);
    assert_int_equal(ack->seq, seq);
    wire_free((ProtobufCMessage **)&ack);
    /* The same stream_seq again (a resend): ACKed again, original seq. */
    raw_send_env(a, 1, buf, n);
    ack = raw_expect(a, WIRE_ACK);
    assert_true(ack->duplicate);
    assert_int_equal(ack->seq, seq);
    wire_free((ProtobufCMessage **)&ack);
    raw_free(&a);
}

static void test_stream_gap_refused_with_expected_seq(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "110000", 8);
    uint8_t id[16], buf[512];
    raw_make_id(id, 3);
    size_t n = envelope(buf, sizeof buf, id, "110000", "120000", "nhub.test.v1.Ping", "x");
    raw_send_env(a, 5, buf, n);
    wire_nack_t *nack = raw_expect(a, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER);
    assert_int_equal(nack->expected, 1);
    assert_true(nack->retryable);
    wire_free((ProtobufCMessage **)&nack);
    raw_free(&a);
}

static void test_invalid_envelopes_refused_and_stream_moves_on(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "110000", 8);
    uint8_t id[16], buf[512];
    struct {
        const char *src, *dst;
        int code;
    } cases[] = {
        {"120000", "440000", NHUB__WIRE__V1__NACK_CODE__NACK_SOURCE_MISMATCH},
        {"110000", "999999", NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_REGION},
        {"110000", "44000", NHUB__WIRE__V1__NACK_CODE__NACK_INVALID},
    };
    uint64_t sseq = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raw_make_id(id, 10 + (int)i);
        size_t n =
            envelope(buf, sizeof buf, id, cases[i].src, cases[i].dst, "nhub.test.v1.Ping", "x");
        raw_send_env(a, sseq++, buf, n);
        wire_nack_t *nack = raw_expect(a, WIRE_NACK);
        assert_int_equal(nack->code, cases[i].code);
        assert_false(nack->retryable);
        assert_true(strlen(nack->text) > 0);
        wire_free((ProtobufCMessage **)&nack);
    }
    /* A body that is not an envelope at all. */
    raw_send_env(a, sseq++, (const uint8_t *)"\xff\xff\xff", 3);
    wire_nack_t *nack = raw_expect(a, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED);
    wire_free((ProtobufCMessage **)&nack);
    /* The refusals were decided for good: the next stream_seq is accepted. */
    raw_make_id(id, 20);
    size_t n = envelope(buf, sizeof buf, id, "110000", "440000", "nhub.test.v1.Ping", "ok");
    raw_send_env(a, sseq, buf, n);
    wire_ack_t *ack = raw_expect(a, WIRE_ACK);
    assert_false(ack->duplicate);
    wire_free((ProtobufCMessage **)&ack);
    raw_free(&a);
}

static void test_malformed_frames_counted_and_hub_keeps_serving(void **state)
{
    th_hub_t *h = *state;
    raw_t *bad = raw_new(g_ctx, h->endpoint);
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rand();
    raw_frames(bad, junk, sizeof junk, NULL, 0); /* one frame of random bytes: dropped */
    raw_frames(bad, junk, 8, junk, 20);          /* bad magic: dropped */
    uint8_t hdr[8];
    wire_header_make(hdr, WIRE_HELLO);
    hdr[4] = 9; /* unknown protocol version */
    raw_frames(bad, hdr, 8, "", 0);
    ProtobufCMessage *m = NULL;
    assert_int_equal(raw_recv(bad, &m, 10000), WIRE_NACK);
    assert_int_equal(((wire_nack_t *)m)->code, NHUB__WIRE__V1__NACK_CODE__NACK_VERSION);
    wire_free(&m);
    wire_header_make(hdr, WIRE_HELLO);
    hdr[5] = 77; /* unknown command */
    raw_frames(bad, hdr, 8, "", 0);
    assert_int_equal(raw_recv(bad, &m, 10000), WIRE_NACK);
    assert_int_equal(((wire_nack_t *)m)->code, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND);
    wire_free(&m);
    wire_header_make(hdr, WIRE_HELLO);
    raw_frames(bad, hdr, 8, "\x0a\x50\x31", 3); /* truncated protobuf */
    assert_int_equal(raw_recv(bad, &m, 10000), WIRE_NACK);
    assert_int_equal(((wire_nack_t *)m)->code, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED);
    wire_free(&m);
    /* An oversize frame: libzmq drops it and the connection before allocating. */
    size_t big = 512 * 1024;
    uint8_t *huge = calloc(1, big);
    wire_header_make(hdr, WIRE_SEND);
    raw_frames(bad, hdr, 8, huge, big);
    free(huge);
    /* Meanwhile a legitimate client is served. */
    raw_t *good = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(good, "130000", 8);
    uint8_t id[16], buf[512];
    raw_make_id(id, 30);
    size_t n = envelope(buf, sizeof buf, id, "130000", "440000", "nhub.test.v1.Ping", "fine");
    raw_send_env(good, 1, buf, n);
    wire_ack_t *ack = raw_expect(good, WIRE_ACK);
    assert_true(ack->seq > 0);
    wire_free((ProtobufCMessage **)&ack);
    raw_free(&good);
    raw_free(&bad);
    /* The refusals are counted: the hub reports them when it stops. */
    assert_int_equal(th_hub_stop(h), 0);
    assert_true(th_log_value(h, "hub.stopped", "dropped") >= 2);
    assert_true(th_log_value(h, "hub.stopped", "nack_version") >= 1);
    assert_true(th_log_value(h, "hub.stopped", "nack_unknown_command") >= 1);
    assert_true(th_log_value(h, "hub.stopped", "nack_malformed") >= 1);
    assert_true(th_log_contains(h, "reason=version"));
    assert_int_equal(th_hub_start(h), 0);
}

static void test_delivery_redelivery_and_confirm(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "320000", 8);
    raw_hello_ok(b, "330000", 4);
    uint8_t id[16], buf[512];
    raw_make_id(id, 40);
    size_t n = envelope(buf, sizeof buf, id, "320000", "330000", "nhub.test.v1.Ping", "payload-40");
    raw_send_env(a, 1, buf, n);
    wire_ack_t *ack = raw_expect(a, WIRE_ACK);
    uint64_t seq = ack->seq;
    wire_free((ProtobufCMessage **)&ack);
    wire_deliver_t *d = raw_expect(b, WIRE_DELIVER);
    assert_int_equal(d->seq, seq);
    assert_int_equal(d->dseq, 1);
    assert_int_equal(d->attempt, 1);
    assert_int_equal(d->envelope.len, n);
    assert_memory_equal(d->envelope.data, buf, n); /* the bytes sent, unchanged */
    wire_free((ProtobufCMessage **)&d);
    /* Not confirmed: it comes again after redeliver_after. */
    d = raw_expect(b, WIRE_DELIVER);
    assert_int_equal(d->dseq, 1);
    assert_int_equal(d->attempt, 2);
    wire_delivered_t ok = NHUB__WIRE__V1__DELIVERED__INIT;
    ok.msg_id.data = id;
    ok.msg_id.len = 16;
    ok.dseq = d->dseq;
    wire_free((ProtobufCMessage **)&d);
    raw_send(b, WIRE_DELIVERED, &ok.base);
    /* A second message follows in order; the first is not seen again. */
    raw_make_id(id, 41);
    n = envelope(buf, sizeof buf, id, "320000", "330000", "nhub.test.v1.Ping", "payload-41");
    raw_send_env(a, 2, buf, n);
    ack_ok(a);
    d = raw_expect(b, WIRE_DELIVER);
    assert_int_equal(d->dseq, 2);
    ok.msg_id.data = id;
    ok.dseq = 2;
    wire_free((ProtobufCMessage **)&d);
    raw_send(b, WIRE_DELIVERED, &ok.base);
    /* A new session of the region starts from the head: nothing is left. */
    raw_t *b2 = raw_new(g_ctx, h->endpoint);
    memcpy(b2->stream_id, b->stream_id, 16);
    raw_hello_ok(b2, "330000", 4);
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    raw_send(b2, WIRE_HEARTBEAT, &hb.base);
    ProtobufCMessage *m = NULL;
    assert_int_equal(raw_recv(b2, &m, 10000), WIRE_HEARTBEAT); /* no DELIVER before it */
    wire_free(&m);
    raw_free(&a);
    raw_free(&b);
    raw_free(&b2);
}

static void test_broadcast_reaches_every_other_region(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *b = raw_new(g_ctx, h->endpoint),
          *c = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "500000", 8);
    raw_hello_ok(b, "510000", 8);
    raw_hello_ok(c, "520000", 8);
    uint8_t id[16], buf[512];
    raw_make_id(id, 50);
    size_t n = envelope(buf, sizeof buf, id, "500000", "*", "nhub.credit.v1.Notice", "list");
    raw_send_env(a, 1, buf, n);
    ack_ok(a);
    wire_deliver_t *d = raw_expect(b, WIRE_DELIVER);
    assert_memory_equal(d->envelope.data, buf, n);
    wire_free((ProtobufCMessage **)&d);
    d = raw_expect(c, WIRE_DELIVER);
    assert_memory_equal(d->envelope.data, buf, n);
    wire_free((ProtobufCMessage **)&d);
    raw_free(&a);
    raw_free(&b);
    raw_free(&c);
}

/*
 * A v1 -> v2 rollout midway: the receiver takes only v1, so the v2 message
 * is set aside (journaled as held once), never dropped; once a session of
 * that region announces v2 it is delivered, once, and the region's later
 * messages follow it without a repeat.
 */
static void test_held_message_is_delivered_once_when_the_region_accepts_its_type(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *b = raw_new(g_ctx, h->endpoint);
    char *v1[] = {"nhub.verify.v1.*"};
    char *both[] = {"nhub.verify.v1.*", "nhub.verify.v2.*"};
    raw_hello_ok(a, "530000", 8);
    wire_free((ProtobufCMessage **)&(wire_welcome_t *){raw_hello(b, "540000", 8, v1, 1)});
    uint8_t id[16], held_id[16], buf[512], held_buf[512];
    raw_make_id(held_id, 60);
    size_t held_n = envelope(held_buf, sizeof held_buf, held_id, "530000", "540000",
                             "nhub.verify.v2.Query", "v2");
    raw_send_env(a, 1, held_buf, held_n);
    ack_ok(a);
    raw_make_id(id, 61);
    size_t n = envelope(buf, sizeof buf, id, "530000", "540000", "nhub.verify.v1.Query", "v1");
    raw_send_env(a, 2, buf, n);
    ack_ok(a);
    wire_deliver_t *d = raw_expect(b, WIRE_DELIVER);
    assert_int_equal(d->dseq, 2);      /* the v2 message was set aside */
    assert_int_equal(d->prev_dseq, 0); /* ...on purpose: nothing was sent before it */
    assert_memory_equal(d->envelope.data, buf, n);
    raw_confirm(b, d);
    wire_free((ProtobufCMessage **)&d);
    assert_true(th_log_wait(h, "reason=awaiting_version", 1, 5000));
    round_trip(b); /* its DELIVERED is staged before the next session's HELLO */
    raw_free(&b);

    /* Still queued: a session that takes v2 gets it, and only it. */
    raw_t *b2 = raw_new(g_ctx, h->endpoint);
    wire_free((ProtobufCMessage **)&(wire_welcome_t *){raw_hello(b2, "540000", 8, both, 2)});
    d = raw_expect(b2, WIRE_DELIVER);
    assert_int_equal(d->dseq, 1);
    assert_int_equal(d->attempt, 1);
    assert_memory_equal(d->envelope.data, held_buf, held_n);
    raw_confirm(b2, d);
    wire_free((ProtobufCMessage **)&d);
    raw_make_id(id, 62);
    n = envelope(buf, sizeof buf, id, "530000", "540000", "nhub.verify.v1.Query", "after");
    raw_send_env(a, 3, buf, n);
    ack_ok(a);
    d = raw_expect(b2, WIRE_DELIVER); /* the next one, not dseq 1 or 2 again */
    assert_int_equal(d->dseq, 3);
    assert_memory_equal(d->envelope.data, buf, n);
    raw_confirm(b2, d);
    wire_free((ProtobufCMessage **)&d);
    /* Journaled and logged as held once, not again at the second session. */
    assert_int_equal(th_log_count(h, "reason=awaiting_version"), 1);
    raw_free(&a);
    raw_free(&b2);
}

/*
 * A receiver that takes smaller frames than the hub: a message too big for
 * it is held with that reason (never sent, so libzmq never drops the
 * connection, and never dropped), the small one after it is delivered, and
 * a session with room for it gets it.
 */
static void test_message_too_big_for_receiver_is_held_until_a_session_takes_it(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *c = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "420000", 8);
    wire_free(
        (ProtobufCMessage **)&(wire_welcome_t *){raw_hello_max(c, "430000", 8, NULL, 0, 4096)});
    static uint8_t big_payload[20000], big[21000];
    memset(big_payload, 'b', sizeof big_payload);
    uint8_t id[16], buf[512];
    raw_make_id(id, 63);
    size_t big_n = raw_envelope(big, sizeof big, id, "420000", "430000", "nhub.test.v1.Ping",
                                big_payload, sizeof big_payload);
    raw_send_env(a, 1, big, big_n);
    ack_ok(a);
    raw_make_id(id, 64);
    size_t n = envelope(buf, sizeof buf, id, "420000", "430000", "nhub.test.v1.Ping", "small");
    raw_send_env(a, 2, buf, n);
    ack_ok(a);
    wire_deliver_t *d = raw_expect(c, WIRE_DELIVER);
    assert_int_equal(d->dseq, 2);
    assert_memory_equal(d->envelope.data, buf, n);
    raw_confirm(c, d);
    wire_free((ProtobufCMessage **)&d);
    assert_true(th_log_wait(h, "reason=too_large_for_receiver", 1, 5000));
    round_trip(c);
    raw_free(&c);

    raw_t *c2 = raw_new(g_ctx, h->endpoint);
    wire_free((ProtobufCMessage **)&(wire_welcome_t *){raw_hello_max(c2, "430000", 8, NULL, 0, 0)});
    d = raw_expect(c2, WIRE_DELIVER);
    assert_int_equal(d->dseq, 1);
    assert_int_equal(d->envelope.len, big_n);
    assert_memory_equal(d->envelope.data, big, big_n);
    raw_confirm(c2, d);
    wire_free((ProtobufCMessage **)&d);
    raw_free(&a);
    raw_free(&c2);
}

/* A HEARTBEAT is answered, with its beat, only after what came before it
 * is committed: the ACK of a SEND written just before it comes first. */
static void test_heartbeat_is_answered_after_the_commit_of_what_preceded_it(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "440000", 0); /* send-only: no DELIVER comes in between */
    uint8_t id[16], buf[512];
    raw_make_id(id, 4401);
    size_t n = envelope(buf, sizeof buf, id, "440000", "450000", "nhub.test.v1.Ping", "hb");
    raw_send_env(a, 1, buf, n);
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    hb.beat = 7;
    raw_send(a, WIRE_HEARTBEAT, &hb.base);
    ProtobufCMessage *m = NULL;
    assert_int_equal(raw_recv(a, &m, 10000), WIRE_ACK);
    wire_free(&m);
    assert_int_equal(raw_recv(a, &m, 10000), WIRE_HEARTBEAT);
    assert_int_equal(((wire_heartbeat_t *)m)->beat, 7);
    wire_free(&m);
    raw_free(&a);
}

static void test_stream_position_survives_restart(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "610000", 8);
    uint8_t id[16], buf[512];
    for (int i = 1; i <= 3; i++) {
        raw_make_id(id, 70 + i);
        size_t n = envelope(buf, sizeof buf, id, "610000", "620000", "nhub.test.v1.Ping", "p");
        raw_send_env(a, (uint64_t)i, buf, n);
        ack_ok(a);
    }
    th_hub_kill(h);
    assert_int_equal(th_hub_start(h), 0);
    raw_t *a2 = raw_new(g_ctx, h->endpoint);
    memcpy(a2->stream_id, a->stream_id, 16);
    wire_welcome_t *w = raw_hello(a2, "610000", 8, NULL, 0);
    assert_int_equal(w->stream_last, 3);
    wire_free((ProtobufCMessage **)&w);
    raw_t *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(b, "620000", 8);
    for (uint64_t i = 1; i <= 3; i++) {
        wire_deliver_t *d = raw_expect(b, WIRE_DELIVER);
        assert_int_equal(d->dseq, i);
        wire_free((ProtobufCMessage **)&d);
    }
    raw_free(&a);
    raw_free(&a2);
    raw_free(&b);
}

static void test_resend_of_refused_message_is_refused_again(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "220000", 8);
    uint8_t id[16], buf[512];
    raw_make_id(id, 80);
    size_t n = envelope(buf, sizeof buf, id, "220000", "999999", "nhub.test.v1.Ping", "x");
    for (int i = 0; i < 2; i++) { /* the second time as if the first NACK was lost */
        raw_send_env(a, 1, buf, n);
        wire_nack_t *nack = raw_expect(a, WIRE_NACK);
        assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_REGION);
        assert_false(nack->retryable);
        wire_free((ProtobufCMessage **)&nack);
    }
    raw_free(&a);
}

static void test_stream_of_another_region_is_refused(void **state)
{
    th_hub_t *h = *state;
    raw_t *b = raw_new(g_ctx, h->endpoint), *a = raw_new(g_ctx, h->endpoint);
    memcpy(a->stream_id, b->stream_id, 16); /* a copied adapter store */
    raw_hello_ok(b, "230000", 0);
    uint8_t id[16], buf[512];
    raw_make_id(id, 81);
    size_t n = envelope(buf, sizeof buf, id, "230000", "310000", "nhub.test.v1.Ping", "b");
    raw_send_env(b, 1, buf, n);
    ack_ok(b);
    wire_hello_t hello = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t v = 1;
    hello.region = "210000";
    hello.protocol_versions = &v;
    hello.n_protocol_versions = 1;
    hello.stream_id.data = a->stream_id;
    hello.stream_id.len = 16;
    raw_send(a, WIRE_HELLO, &hello.base);
    wire_nack_t *nack = raw_expect(a, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_STREAM_CONFLICT);
    assert_true(nack->retryable);
    wire_free((ProtobufCMessage **)&nack);
    raw_free(&a);
    raw_free(&b);
}

/*
 * A HELLO refused at its commit (its stream belongs to another region)
 * changes nothing: the region's delivery session stays the one it was, and
 * the refused peer still has no session to send on.
 */
static void test_refused_hello_neither_opens_a_session_nor_takes_deliveries(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *c = raw_new(g_ctx, h->endpoint);
    raw_t *thief = raw_new(g_ctx, h->endpoint);
    memcpy(thief->stream_id, a->stream_id, 16);
    raw_hello_ok(a, "140000", 0);
    raw_hello_ok(c, "150000", 8);
    uint8_t id[16], buf[512];
    raw_make_id(id, 90);
    size_t n = envelope(buf, sizeof buf, id, "140000", "150000", "nhub.test.v1.Ping", "one");
    raw_send_env(a, 1, buf, n); /* the stream is now 140000's */
    ack_ok(a);
    wire_deliver_t *d = raw_expect(c, WIRE_DELIVER);
    raw_confirm(c, d);
    wire_free((ProtobufCMessage **)&d);

    raw_send_hello(thief, "150000", 8, NULL, 0, 0);
    wire_nack_t *nack = raw_expect(thief, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_STREAM_CONFLICT);
    wire_free((ProtobufCMessage **)&nack);
    raw_make_id(id, 91);
    n = envelope(buf, sizeof buf, id, "150000", "140000", "nhub.test.v1.Ping", "x");
    raw_send_env(thief, 1, buf, n);
    nack = raw_expect(thief, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED);
    wire_free((ProtobufCMessage **)&nack);

    raw_make_id(id, 92);
    n = envelope(buf, sizeof buf, id, "140000", "150000", "nhub.test.v1.Ping", "two");
    raw_send_env(a, 2, buf, n);
    ack_ok(a);
    d = raw_expect(c, WIRE_DELIVER); /* still c's, not the refused peer's */
    assert_int_equal(d->dseq, 2);
    assert_memory_equal(d->envelope.data, buf, n);
    raw_confirm(c, d);
    wire_free((ProtobufCMessage **)&d);
    raw_free(&thief);
    raw_free(&a);
    raw_free(&c);
}

static void test_reused_stream_seq_for_another_message_is_never_acked(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *clone = raw_new(g_ctx, h->endpoint);
    memcpy(clone->stream_id, a->stream_id, 16); /* an adapter restored from a snapshot */
    raw_hello_ok(a, "230000", 0);
    raw_hello_ok(clone, "230000", 0);
    uint8_t id[16], buf[512];
    raw_make_id(id, 82);
    size_t n = envelope(buf, sizeof buf, id, "230000", "310000", "nhub.test.v1.Ping", "first");
    raw_send_env(a, 1, buf, n);
    ack_ok(a);
    raw_make_id(id, 83);
    n = envelope(buf, sizeof buf, id, "230000", "310000", "nhub.test.v1.Ping", "other");
    raw_send_env(clone, 1, buf, n);
    wire_nack_t *nack = raw_expect(clone, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_STREAM_CONFLICT);
    assert_true(nack->retryable);
    wire_free((ProtobufCMessage **)&nack);
    raw_free(&a);
    raw_free(&clone);
}

static void test_delivered_with_wrong_msg_id_does_not_stop_redelivery(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "340000", 0);
    raw_hello_ok(b, "350000", 4);
    uint8_t id[16], wrong[16], buf[512];
    raw_make_id(id, 84);
    size_t n = envelope(buf, sizeof buf, id, "340000", "350000", "nhub.test.v1.Ping", "x");
    raw_send_env(a, 1, buf, n);
    ack_ok(a);
    wire_deliver_t *d = raw_expect(b, WIRE_DELIVER);
    memset(wrong, 0x77, sizeof wrong);
    wire_delivered_t bad = NHUB__WIRE__V1__DELIVERED__INIT;
    bad.msg_id.data = wrong;
    bad.msg_id.len = 16;
    bad.dseq = d->dseq;
    raw_send(b, WIRE_DELIVERED, &bad.base);
    uint64_t dseq = d->dseq;
    wire_free((ProtobufCMessage **)&d);
    d = raw_expect(b, WIRE_DELIVER); /* still in flight: it comes again */
    assert_int_equal(d->dseq, dseq);
    assert_true(d->attempt >= 2);
    wire_free((ProtobufCMessage **)&d);
    raw_free(&a);
    raw_free(&b);
}

/* A receiver that never confirms fills only its own window: another region
 * is served meanwhile, and the silent one gets no more than its credit. */
static void test_receiver_that_never_confirms_holds_only_its_window(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *slow = raw_new(g_ctx, h->endpoint);
    raw_t *fast = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "360000", 0);
    raw_hello_ok(slow, "370000", 3);
    raw_hello_ok(fast, "410000", 3);
    uint8_t id[16], buf[512];
    uint64_t sseq = 1;
    for (int i = 0; i < 10; i++) {
        raw_make_id(id, 100 + i);
        size_t n = envelope(buf, sizeof buf, id, "360000", "370000", "nhub.test.v1.Ping", "s");
        raw_send_env(a, sseq++, buf, n);
        ack_ok(a);
    }
    for (uint64_t want = 1; want <= 10; want++) { /* fast confirms everything */
        raw_make_id(id, 200 + (int)want);
        size_t n = envelope(buf, sizeof buf, id, "360000", "410000", "nhub.test.v1.Ping", "f");
        raw_send_env(a, sseq++, buf, n);
        ack_ok(a);
        wire_deliver_t *d = raw_expect(fast, WIRE_DELIVER);
        assert_int_equal(d->dseq, want);
        wire_delivered_t ok = NHUB__WIRE__V1__DELIVERED__INIT;
        ok.msg_id.data = id;
        ok.msg_id.len = 16;
        ok.dseq = d->dseq;
        raw_send(fast, WIRE_DELIVERED, &ok.base);
        wire_free((ProtobufCMessage **)&d);
    }
    /* The slow region saw only dseq 1..3 (its credit), maybe more than once.
     * Anything the hub sent it before answering this HEARTBEAT is ahead of
     * the answer on the same connection. */
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    raw_send(slow, WIRE_HEARTBEAT, &hb.base);
    ProtobufCMessage *m = NULL;
    int cmd;
    uint64_t max_dseq = 0;
    while ((cmd = raw_recv(slow, &m, 10000)) == WIRE_DELIVER) {
        if (((wire_deliver_t *)m)->dseq > max_dseq)
            max_dseq = ((wire_deliver_t *)m)->dseq;
        wire_free(&m);
    }
    wire_free(&m);
    assert_int_equal(cmd, WIRE_HEARTBEAT);
    assert_int_equal(max_dseq, 3);
    raw_free(&a);
    raw_free(&slow);
    raw_free(&fast);
}

/*
 * A sender that writes far more than libzmq's default queue size before it
 * reads anything still gets every ACK: the hub's queue towards a peer
 * holds what a reading peer can have in flight, so no answer is lost and
 * nothing waits for a resend.
 */
static void test_acks_of_a_wide_window_are_all_delivered(void **state)
{
    th_hub_t *h = *state;
    enum { N = 3000 };
    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "640000", 0);
    for (int i = 0; i < N; i++) {
        uint8_t id[16], buf[256];
        raw_make_id(id, 40000 + i);
        size_t n = envelope(buf, sizeof buf, id, "640000", "650000", "nhub.test.v1.Ping", "p");
        raw_send_env(a, (uint64_t)i + 1, buf, n);
    }
    for (int i = 0; i < N; i++) {
        wire_ack_t *ack = raw_expect(a, WIRE_ACK);
        assert_int_equal(ack->stream_seq, (uint64_t)i + 1);
        wire_free((ProtobufCMessage **)&ack);
    }
    raw_free(&a);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srand(42);
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_answered_with_welcome),
        cmocka_unit_test(test_send_before_hello_is_refused),
        cmocka_unit_test(test_duplicate_msg_id_acked_with_original_seq),
        cmocka_unit_test(test_stream_gap_refused_with_expected_seq),
        cmocka_unit_test(test_invalid_envelopes_refused_and_stream_moves_on),
        cmocka_unit_test(test_malformed_frames_counted_and_hub_keeps_serving),
        cmocka_unit_test(test_delivery_redelivery_and_confirm),
        cmocka_unit_test(test_held_message_is_delivered_once_when_the_region_accepts_its_type),
        cmocka_unit_test(test_message_too_big_for_receiver_is_held_until_a_session_takes_it),
        cmocka_unit_test(test_heartbeat_is_answered_after_the_commit_of_what_preceded_it),
        cmocka_unit_test(test_stream_position_survives_restart),
        cmocka_unit_test(test_resend_of_refused_message_is_refused_again),
        cmocka_unit_test(test_stream_of_another_region_is_refused),
        cmocka_unit_test(test_refused_hello_neither_opens_a_session_nor_takes_deliveries),
        cmocka_unit_test(test_reused_stream_seq_for_another_message_is_never_acked),
        cmocka_unit_test(test_delivered_with_wrong_msg_id_does_not_stop_redelivery),
        cmocka_unit_test(test_receiver_that_never_confirms_holds_only_its_window),
        /* Last: it queues a copy for every region. */
        cmocka_unit_test(test_acks_of_a_wide_window_are_all_delivered),
        cmocka_unit_test(test_broadcast_reaches_every_other_region),
    };
    int rc = cmocka_run_group_tests_name("protocol", tests, setup, teardown);
    if (rc == 0) /* a failed test may have left sockets open: terminating would wait for them */
        zmq_ctx_term(g_ctx);
    return rc;
}
