/*
 * test_ops.c: what an operator does to a running nhubd: reload its
 * configuration (SIGHUP), stop it (SIGTERM), and what happens when its
 * store is full.
 */
#include "harness.h"
#include "raw.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <zmq.h>

#include <cmocka.h>

static void *g_ctx;

#define SMALL_STORE "  map_size: 1MiB\n  map_size_max: 1MiB\n  redeliver_after: 300ms\n"
#define BIG_STORE "  map_size: 1MiB\n  map_size_max: 16MiB\n  redeliver_after: 300ms\n"

static int setup(void **state)
{
    return th_group_setup(state, SMALL_STORE);
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

static void confirm_all(raw_t *r, uint64_t stored);

/* Send one 4 KiB message; returns 0 on ACK or the NACK code. */
static int send_blob(raw_t *r, uint64_t sseq, int n, const char *dst)
{
    static uint8_t payload[4000], buf[5000];
    uint8_t id[16];
    memset(payload, 'p', sizeof payload);
    raw_make_id(id, n);
    memcpy(id + 2, &sseq, sizeof sseq); /* the same sseq gives the same msg_id */
    memset(id + 10, 0x11, 6);
    size_t len = raw_envelope(buf, sizeof buf, id, "110000", dst, "nhub.test.v1.Blob", payload,
                              sizeof payload);
    raw_send_env(r, sseq, buf, len);
    ProtobufCMessage *m = NULL;
    int cmd;
    while ((cmd = raw_recv(r, &m, 10000)) == WIRE_HEARTBEAT)
        wire_free(&m);
    assert_true(cmd == WIRE_ACK || cmd == WIRE_NACK);
    int code = 0;
    if (cmd == WIRE_NACK) {
        code = ((wire_nack_t *)m)->code;
        assert_true(((wire_nack_t *)m)->retryable);
    }
    wire_free(&m);
    return code;
}

static void test_full_store_refuses_new_keeps_delivering_and_resumes(void **state)
{
    th_hub_t *h = *state;
    raw_t *s = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(s, "110000", 0);
    uint64_t sseq = 1;
    int code = 0;
    for (; sseq < 2000; sseq++)
        if ((code = send_blob(s, sseq, (int)sseq, "440000")) != 0)
            break;
    assert_int_equal(code, NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL);
    uint64_t stored = sseq - 1;
    assert_true(stored >= 10);
    assert_true(th_log_wait(h, "event=hub.store_full", 1, 5000));
    /* Still full: the same message is refused again, nothing was stored. */
    assert_int_equal(send_blob(s, sseq, (int)sseq, "440000"),
                     NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL);
    /* Delivery of what is stored goes on, confirmations included. */
    raw_t *r = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(r, "440000", 32);
    confirm_all(r, stored);
    /* The operator raises the limit: ingest resumes without a restart. */
    assert_int_equal(th_hub_reconfigure(h, BIG_STORE, NULL), 0);
    assert_int_equal(th_hub_signal(h, SIGHUP), 0);
    assert_true(th_log_wait(h, "event=hub.reloaded", 1, 10000));
    assert_int_equal(send_blob(s, sseq, (int)sseq, "440000"), 0);
    assert_true(th_log_contains(h, "event=hub.store_ok"));
    raw_free(&s);
    raw_free(&r);
}

/* Receive and confirm DELIVERs on `r` until dseq `stored` has been confirmed. */
static void confirm_all(raw_t *r, uint64_t stored)
{
    uint64_t next = 1;
    while (next <= stored) {
        wire_deliver_t *d = raw_expect(r, WIRE_DELIVER);
        if (d->dseq == next) {
            raw_confirm(r, d);
            next++;
        }
        wire_free((ProtobufCMessage **)&d);
    }
}

/*
 * The data directory on a real, small filesystem (tmpfs of 6 MiB, mounted
 * by the test; skipped where mounting is not allowed): the disk fills, not
 * the map.
 */
static void test_full_disk_refuses_new_keeps_delivering_and_resumes(void **state)
{
    (void)state;
    th_hub_t hub;
    assert_int_equal(th_hub_init(&hub, "  map_size: 1MiB\n  map_size_max: 1GiB\n"
                                       "  redeliver_after: 300ms\n"),
                     0);
    char mnt[400];
    snprintf(mnt, sizeof mnt, "%s/hub-data", hub.dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=6m,mode=0700") != 0) {
        fprintf(stderr, "skipped: cannot mount a tmpfs here (%s)\n", strerror(errno));
        th_hub_cleanup(&hub);
        skip();
    }
    assert_int_equal(th_hub_start(&hub), 0);
    raw_t *s = raw_new(g_ctx, hub.endpoint);
    raw_hello_ok(s, "110000", 0);
    uint64_t sseq = 1;
    int code = 0;
    for (; sseq < 5000; sseq++)
        if ((code = send_blob(s, sseq, (int)sseq, "440000")) != 0)
            break;
    assert_int_equal(code, NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL);
    uint64_t stored = sseq - 1;
    assert_true(stored >= 10);
    assert_true(th_log_wait(&hub, "reason=disk", 1, 5000));
    raw_t *r = raw_new(g_ctx, hub.endpoint);
    raw_hello_ok(r, "440000", 32);
    confirm_all(r, stored); /* everything ACKed is delivered from the full disk */
    /* Space returns: the filesystem grows; ingest resumes by itself. */
    assert_int_equal(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m,mode=0700"), 0);
    assert_true(th_log_wait(&hub, "event=hub.store_ok", 1, 10000));
    assert_int_equal(send_blob(s, sseq, (int)sseq, "440000"), 0);
    raw_free(&s);
    raw_free(&r);
    int rc = th_hub_stop(&hub);
    umount(mnt);
    if (rc != 0)
        th_log_dump(&hub, stderr);
    th_hub_cleanup(&hub);
    assert_int_equal(rc, 0);
}

static void test_reload_adds_a_region_and_rejects_a_bad_file(void **state)
{
    th_hub_t *h = *state;
    raw_t *c = raw_new(g_ctx, h->endpoint);
    wire_hello_t hello = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t v = 1;
    hello.region = "440300"; /* Shenzhen, not configured yet */
    hello.protocol_versions = &v;
    hello.n_protocol_versions = 1;
    hello.credit = 4;
    hello.stream_id.data = c->stream_id;
    hello.stream_id.len = 16;
    raw_send(c, WIRE_HELLO, &hello.base);
    wire_nack_t *nack = raw_expect(c, WIRE_NACK);
    assert_int_equal(nack->code, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_REGION);
    wire_free((ProtobufCMessage **)&nack);

    int reloads = 0;
    while (th_log_wait(h, "event=hub.reloaded", reloads + 1, 0))
        reloads++;
    assert_int_equal(th_hub_reconfigure(h, BIG_STORE, "440300"), 0);
    assert_int_equal(th_hub_signal(h, SIGHUP), 0);
    assert_true(th_log_wait(h, "event=hub.reloaded", reloads + 1, 10000));
    raw_send(c, WIRE_HELLO, &hello.base);
    wire_welcome_t *w = raw_expect(c, WIRE_WELCOME);
    wire_free((ProtobufCMessage **)&w);

    /* A broken file is reported with its position; the hub keeps going. */
    assert_int_equal(
        th_hub_write_raw_config(h, "hub:\n  listen: \"tcp://127.0.0.1:1\"\n  lisen: x\n"), 0);
    assert_int_equal(th_hub_signal(h, SIGHUP), 0);
    assert_true(th_log_wait(h, "event=hub.reload_failed", 1, 10000));
    assert_true(th_log_contains(h, "hub.yaml:3:3"));
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    raw_send(c, WIRE_HEARTBEAT, &hb.base);
    wire_heartbeat_t *back = raw_expect(c, WIRE_HEARTBEAT);
    wire_free((ProtobufCMessage **)&back);
    raw_free(&c);
    assert_int_equal(th_hub_reconfigure(h, BIG_STORE, "440300"), 0);
}

static void test_sigterm_answers_the_batch_in_hand_and_exits_cleanly(void **state)
{
    th_hub_t *h = *state;
    raw_t *s = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(s, "120000", 0);
    for (uint64_t i = 1; i <= 50; i++) {
        uint8_t id[16], buf[256];
        raw_make_id(id, (int)i);
        size_t n =
            raw_envelope(buf, sizeof buf, id, "120000", "130000", "nhub.test.v1.Ping", "x", 1);
        raw_send_env(s, i, buf, n);
    }
    wire_ack_t *ack = raw_expect(s, WIRE_ACK); /* at least the first batch is durable */
    uint64_t acked = ack->stream_seq;
    wire_free((ProtobufCMessage **)&ack);
    assert_int_equal(th_hub_stop(h), 0);
    assert_true(th_log_contains(h, "event=hub.stopped"));
    /* Everything ACKed before the stop is still there. */
    assert_int_equal(th_hub_start(h), 0);
    raw_t *s2 = raw_new(g_ctx, h->endpoint);
    memcpy(s2->stream_id, s->stream_id, 16);
    wire_welcome_t *w = raw_hello(s2, "120000", 0, NULL, 0);
    assert_true(w->stream_last >= acked);
    wire_free((ProtobufCMessage **)&w);
    raw_free(&s);
    raw_free(&s2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srand(7);
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_store_refuses_new_keeps_delivering_and_resumes),
        cmocka_unit_test(test_full_disk_refuses_new_keeps_delivering_and_resumes),
        cmocka_unit_test(test_reload_adds_a_region_and_rejects_a_bad_file),
        cmocka_unit_test(test_sigterm_answers_the_batch_in_hand_and_exits_cleanly),
    };
    int rc = cmocka_run_group_tests_name("ops", tests, setup, teardown);
    if (rc == 0) /* a failed test may have left sockets open: terminating would wait for them */
        zmq_ctx_term(g_ctx);
    return rc;
}
