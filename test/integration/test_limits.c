/*
 * test_limits.c: what one misbehaving peer can make a real nhubd hold.
 *
 * A peer that writes large SENDs as fast as it can and never reads its
 * answers must not drive the hub's memory up with the amount it writes,
 * and other peers must be served meanwhile. The hub's peak resident set
 * (VmHWM, kept by the kernel) is read once the flood is stored.
 */
#include "harness.h"
#include "nhub_journal.pb-c.h"
#include "raw.h"
#include "wire.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

/* 1,200 SENDs of about 1 MB: 1.2 GB written, far above the bound. */
#define FLOOD_N 1200
#define FLOOD_PAYLOAD 1000000
/* What the hub may hold at its peak while the flood lasts, in KiB: its
 * receive queue for one peer and two stages in the pipeline, with room for
 * a sanitizer build's quarantine and shadow memory. */
#define FLOOD_HWM_KIB (640L * 1024)

static void *g_ctx;

static int setup(void **state)
{
    return th_group_setup(state, "  max_frame: 1MiB\n");
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

/* A field of /proc/PID/status in KiB, -1 if absent. */
static long status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

/* A HEARTBEAT answered within the liveness bound. */
static void served(raw_t *r)
{
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    raw_send(r, WIRE_HEARTBEAT, &hb.base);
    ProtobufCMessage *m = NULL;
    int cmd = raw_recv(r, &m, 20000);
    assert_int_equal(cmd, WIRE_HEARTBEAT);
    wire_free(&m);
}

static void test_a_peer_flooding_large_sends_is_bounded_and_others_are_served(void **state)
{
    th_hub_t *h = *state;
    raw_t *a = raw_new(g_ctx, h->endpoint), *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "110000", 8);
    raw_hello_ok(b, "120000", 8);
    uint8_t *payload = malloc(FLOOD_PAYLOAD), *env = malloc(FLOOD_PAYLOAD + 512);
    assert_non_null(payload);
    assert_non_null(env);
    memset(payload, 'f', FLOOD_PAYLOAD);
    long hwm_before = status_kib(h->pid, "VmHWM");
    assert_true(hwm_before > 0);

    /* Write without reading; whenever the socket pushes back, check that
     * another peer is still answered. */
    int pushed_back = 0;
    for (int i = 1; i <= FLOOD_N; i++) {
        uint8_t id[16];
        raw_make_id(id, 1000 + i);
        size_t n = raw_envelope(env, FLOOD_PAYLOAD + 512, id, "110000", "130000",
                                "nhub.test.v1.Ping", payload, FLOOD_PAYLOAD);
        wire_send_t s = NHUB__WIRE__V1__SEND__INIT;
        s.stream_seq = (uint64_t)i;
        s.envelope.data = env;
        s.envelope.len = n;
        while (wire_send(a->sock, NULL, 0, WIRE_SEND, &s.base, ZMQ_DONTWAIT) != 0) {
            pushed_back++;
            served(b);
            zmq_pollitem_t pi = {a->sock, 0, ZMQ_POLLOUT, 0};
            assert_true(zmq_poll(&pi, 1, 20000) == 1);
        }
        if (i % 200 == 0)
            served(b);
    }
    /* Every SEND is answered: nothing was dropped. */
    for (int i = 1; i <= FLOOD_N; i++) {
        ProtobufCMessage *m = NULL;
        assert_int_equal(raw_recv(a, &m, 60000), WIRE_ACK);
        assert_int_equal(((wire_ack_t *)m)->stream_seq, (uint64_t)i);
        wire_free(&m);
    }
    long hwm = status_kib(h->pid, "VmHWM");
    printf("hub VmHWM %ld KiB before the flood, %ld KiB after %d x %d bytes "
           "(bound %ld KiB); the socket pushed back %d times\n",
           hwm_before, hwm, FLOOD_N, FLOOD_PAYLOAD, FLOOD_HWM_KIB, pushed_back);
    assert_true(hwm < FLOOD_HWM_KIB);
    /* The map grew ahead of each stage: none was applied twice. */
    assert_int_equal(th_hub_stop(h), 0);
    assert_true(th_log_count(h, "store.grew") >= 1);
    assert_int_equal(th_log_value(h, "hub.stopped", "replays"), 0);
    free(payload);
    free(env);
    raw_free(&a);
    raw_free(&b);
}

struct order {
    const char *flood, *small;
    char *out;
    size_t n, cap;
};

static void note_source(const th_journal_event_t *ev, void *arg)
{
    struct order *o = arg;
    if (ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED || o->n + 1 >= o->cap)
        return;
    if (!strcmp(ev->source, o->flood))
        o->out[o->n++] = 'f';
    else if (!strcmp(ev->source, o->small))
        o->out[o->n++] = 's';
}

/* Sources of the ACCEPTED events of the journal, in commit order: 'f' for
 * `flood`, 's' for `small`, into out (NUL-terminated). */
static void accepted_order(const th_hub_t *h, const char *flood, const char *small, char *out,
                           size_t cap)
{
    struct order o = {flood, small, out, 0, cap};
    assert_int_equal(th_journal_foreach(h, note_source, &o), 0);
    out[o.n] = 0;
}

/*
 * Fair sharing at ingest: while one connection floods 1 MB SENDs, another
 * sending one small message at a time is served, and no commit holds more
 * than one connection's share of a stage (one 1 MB envelope) beside the
 * others' small ones: the hub's commit-size histogram says so, whatever
 * the speed of the machine. Without the share, commits of eight such
 * envelopes (8 MB) are the rule. The journal's commit order is printed.
 */
static void test_a_flood_from_one_source_does_not_hold_up_another(void **state)
{
    th_hub_t *h = *state;
    snprintf(h->http, sizeof h->http, "%s", TH_HTTP_YAML);
    assert_int_equal(th_hub_start(h), 0); /* the test before stopped it */
    raw_t *a = raw_new(g_ctx, h->endpoint), *b = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, "140000", 0);
    raw_hello_ok(b, "150000", 0);
    enum { FLOOD = 96, SMALL = 12 };
    uint8_t *payload = malloc(FLOOD_PAYLOAD), *env = malloc(FLOOD_PAYLOAD + 512);
    assert_non_null(payload);
    assert_non_null(env);
    memset(payload, 'f', FLOOD_PAYLOAD);
    int written = 0;
    for (int i = 1; i <= FLOOD; i++) { /* as much as the socket takes at once */
        uint8_t id[16];
        raw_make_id(id, 5000 + i);
        size_t n = raw_envelope(env, FLOOD_PAYLOAD + 512, id, "140000", "130000",
                                "nhub.test.v1.Ping", payload, FLOOD_PAYLOAD);
        wire_send_t s = NHUB__WIRE__V1__SEND__INIT;
        s.stream_seq = (uint64_t)i;
        s.envelope.data = env;
        s.envelope.len = n;
        if (wire_send(a->sock, NULL, 0, WIRE_SEND, &s.base, ZMQ_DONTWAIT) != 0)
            break;
        written = i;
    }
    free(payload);
    free(env);
    assert_true(written >= 32);
    /* The small sender: one message, its ACK, the next. */
    for (int i = 1; i <= SMALL; i++) {
        uint8_t id[16], small[600];
        raw_make_id(id, 9000 + i);
        size_t n = raw_envelope(small, sizeof small, id, "150000", "130000", "nhub.test.v1.Ping",
                                "hello", 5);
        raw_send_env(b, (uint64_t)i, small, n);
        ProtobufCMessage *m = NULL;
        assert_int_equal(raw_recv_answer(b, &m, 60000), WIRE_ACK);
        wire_free(&m);
    }
    for (int i = 1; i <= written; i++) { /* the whole flood is stored too */
        ProtobufCMessage *m = NULL;
        assert_int_equal(raw_recv(a, &m, 60000), WIRE_ACK);
        wire_free(&m);
    }
    char *text = NULL;
    assert_int_equal(th_http(h, "GET", "/metrics", TH_READ_TOKEN, NULL, &text, 10000), 200);
    double commits = th_metric_value(text, "nhub_commit_bytes_count");
    double up_to_2mb = th_metric_value(text, "nhub_commit_bytes_bucket{le=\"2097152\"}");
    double deferred = th_metric_value(text, "nhub_ingest_deferred_frames_total");
    free(text);
    char order[4096];
    accepted_order(h, "140000", "150000", order, sizeof order);
    printf("commit order of the two sources (f: 1 MB flood, s: small): %s\n", order);
    printf("commits %.0f, of at most 2 MiB %.0f; frames held back %.0f\n", commits, up_to_2mb,
           deferred);
    assert_int_equal(strlen(order), (size_t)written + SMALL); /* all stored */
    assert_true(commits >= written);
    assert_true(up_to_2mb == commits); /* no commit held two flood envelopes */
    raw_free(&a);
    raw_free(&b);
}

int main(void)
{
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_peer_flooding_large_sends_is_bounded_and_others_are_served),
        cmocka_unit_test(test_a_flood_from_one_source_does_not_hold_up_another),
    };
    int rc = cmocka_run_group_tests_name("limits", tests, setup, teardown);
    if (rc == 0)
        zmq_ctx_term(g_ctx);
    return rc;
}
