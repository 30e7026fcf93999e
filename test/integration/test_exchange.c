/*
 * test_exchange.c: libnhub adapters against a real nhubd.
 *
 * Each test checks the promise that matters to a province: every message an
 * adapter accepted (nhub_send returned 0) reaches the destination's
 * application exactly once, in the order it was sent, whatever happens to
 * the hub or the adapter in between.
 */
#include "harness.h"
#include "nhub.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define TYPE "nhub.test.v1.Counter"

/* What one application has received from one source. */
typedef struct tally {
    int n;          /* messages expected */
    int received;   /* distinct ones handed over */
    int dups;       /* handed over more than once */
    int out_of_order;
    int next;       /* index expected next */
    unsigned char *seen;
} tally_t;

static void tally_init(tally_t *t, int n)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->seen = calloc((size_t)n, 1);
    assert_non_null(t->seen);
}

static void tally_free(tally_t *t)
{
    free(t->seen);
}

/* Payloads are "SOURCE:INDEX". */
static void tally_add(tally_t *t, const nhub_delivery_t *d)
{
    char buf[64];
    size_t len = d->payload_len < sizeof buf - 1 ? d->payload_len : sizeof buf - 1;
    memcpy(buf, d->payload, len);
    buf[len] = '\0';
    const char *colon = strchr(buf, ':');
    assert_non_null(colon);
    int i = atoi(colon + 1);
    assert_true(i >= 0 && i < t->n);
    if (t->seen[i]) {
        t->dups++;
        return;
    }
    t->seen[i] = 1;
    t->received++;
    if (i != t->next)
        t->out_of_order++;
    t->next = i + 1;
}

static nhub_t *open_adapter(const char *dir, const char *name, const char *region,
                            const char *endpoint)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = region;
    o.hub_endpoint = endpoint;
    o.data_dir = path;
    o.credit = 256;
    o.window = 512;
    o.resend_after_ms = 2000;
    o.heartbeat_ms = 500;
    o.insecure_plaintext = 1; /* the hub runs in its insecure development mode */
    nhub_t *a = NULL;
    int rc = nhub_open(&o, &a, err, sizeof err);
    if (rc)
        fail_msg("nhub_open %s: %s", region, err);
    return a;
}

static int send_counter(nhub_t *a, const char *src, const char *dst, int i)
{
    char payload[64];
    int n = snprintf(payload, sizeof payload, "%s:%d", src, i);
    nhub_message_t m;
    memset(&m, 0, sizeof m);
    m.destination = dst;
    m.item = "TEST-PUSH";
    m.kind = NHUB_KIND_PUSH;
    m.payload_type = TYPE;
    m.payload = payload;
    m.payload_len = (size_t)n;
    return nhub_send(a, &m, NULL);
}

/* Take everything waiting (up to `wait_ms` for the first), confirming each. */
static int drain(nhub_t *a, tally_t *t, int wait_ms)
{
    int got = 0;
    nhub_delivery_t *d = NULL;
    while (nhub_recv(a, &d, got ? 0 : wait_ms) == 0) {
        tally_add(t, d);
        assert_int_equal(nhub_confirm(a, &d), 0);
        assert_null(d);
        got++;
    }
    return got;
}

/* Receive until `t` is complete or 60 s pass without progress. */
static void drain_all(nhub_t *rx, tally_t *t, nhub_t *also_pump)
{
    int64_t last = th_now_ms();
    while (t->received < t->n && th_now_ms() - last < 60000) {
        if (drain(rx, t, 100) > 0)
            last = th_now_ms();
        if (also_pump)
            nhub_pump(also_pump, 0);
    }
}

static int setup(void **state)
{
    return th_group_setup(state, "  redeliver_after: 1s\n  redeliver_max: 2s\n");
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

static void test_two_adapters_exchange_10000_each_way_exactly_once(void **state)
{
    th_hub_t *h = *state;
    const int N = 10000;
    nhub_t *a = open_adapter(h->dir, "a-110000", "110000", h->endpoint);
    nhub_t *b = open_adapter(h->dir, "b-440000", "440000", h->endpoint);
    tally_t at_a, at_b;
    tally_init(&at_a, N);
    tally_init(&at_b, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(send_counter(a, "110000", "440000", i), 0);
        assert_int_equal(send_counter(b, "440000", "110000", i), 0);
        if (i % 100 == 99) {
            drain(a, &at_a, 0);
            drain(b, &at_b, 0);
        }
    }
    drain_all(b, &at_b, a);
    drain_all(a, &at_a, b);
    assert_int_equal(at_b.received, N);
    assert_int_equal(at_a.received, N);
    assert_int_equal(at_a.dups + at_b.dups, 0);
    assert_int_equal(at_a.out_of_order + at_b.out_of_order, 0);
    assert_int_equal(nhub_flush(a, 10000), 0);
    assert_int_equal(nhub_flush(b, 10000), 0);
    nhub_stats_t st;
    nhub_stats(a, &st);
    assert_int_equal(st.outbox, 0);
    assert_int_equal(st.acked, N);
    assert_int_equal(st.received, N);
    nhub_close(&a);
    nhub_close(&b);
    tally_free(&at_a);
    tally_free(&at_b);
}

static void test_offline_region_gets_5000_queued_in_order_on_connect(void **state)
{
    th_hub_t *h = *state;
    const int N = 5000;
    nhub_t *a = open_adapter(h->dir, "a-120000", "120000", h->endpoint);
    nhub_t *a2 = open_adapter(h->dir, "a-130000", "130000", h->endpoint);
    for (int i = 0; i < N; i++) {
        assert_int_equal(send_counter(i % 2 ? a2 : a, i % 2 ? "130000" : "120000", "450000", i),
                         0);
    }
    assert_int_equal(nhub_flush(a, 60000), 0);
    assert_int_equal(nhub_flush(a2, 60000), 0); /* all stored at the hub */
    nhub_close(&a);
    nhub_close(&a2);
    /* Guangxi connects only now. Indexes are interleaved across the two
     * sources, so check order per source. */
    nhub_t *c = open_adapter(h->dir, "c-450000", "450000", h->endpoint);
    int last[2] = {-1, -1}, got = 0, bad_order = 0, dups = 0;
    unsigned char *seen = calloc(N, 1);
    int64_t last_progress = th_now_ms();
    while (got < N && th_now_ms() - last_progress < 60000) {
        nhub_delivery_t *d = NULL;
        if (nhub_recv(c, &d, 100) != 0)
            continue;
        last_progress = th_now_ms();
        char buf[64];
        size_t len = d->payload_len < 63 ? d->payload_len : 63;
        memcpy(buf, d->payload, len);
        buf[len] = 0;
        int i = atoi(strchr(buf, ':') + 1), src = strcmp(d->source, "130000") == 0;
        assert_true(i >= 0 && i < N);
        if (seen[i])
            dups++;
        else
            got++;
        seen[i] = 1;
        if (i <= last[src])
            bad_order++;
        last[src] = i;
        assert_int_equal(nhub_confirm(c, &d), 0);
    }
    assert_int_equal(got, N);
    assert_int_equal(dups, 0);
    assert_int_equal(bad_order, 0);
    free(seen);
    nhub_close(&c);
}

static void test_hub_kill9_under_load_loses_no_acked_message(void **state)
{
    th_hub_t *h = *state;
    const int N = 3000;
    nhub_t *a = open_adapter(h->dir, "a-140000", "140000", h->endpoint);
    nhub_t *b = open_adapter(h->dir, "b-460000", "460000", h->endpoint);
    tally_t at_b;
    tally_init(&at_b, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(send_counter(a, "140000", "460000", i), 0);
        if (i % 50 == 0)
            drain(b, &at_b, 0);
        if (i == N / 3 || i == 2 * N / 3) { /* in the middle of the traffic */
            th_hub_kill(h);
            assert_int_equal(th_hub_start(h), 0);
        }
    }
    drain_all(b, &at_b, a);
    assert_int_equal(at_b.received, N);
    assert_int_equal(at_b.dups, 0);
    assert_int_equal(at_b.out_of_order, 0);
    assert_int_equal(nhub_flush(a, 20000), 0);
    nhub_close(&a);
    nhub_close(&b);
    tally_free(&at_b);
}

/* Child: send N messages with the hub down, reporting each accepted index. */
static void child_sender(const char *dir, const char *endpoint, int fd, int n)
{
    nhub_t *a = open_adapter(dir, "a-150000", "150000", endpoint);
    for (int i = 0; i < n; i++) {
        if (send_counter(a, "150000", "630000", i) != 0)
            _exit(3);
        if (write(fd, &i, sizeof i) != sizeof i)
            _exit(4);
    }
    for (;;)
        nhub_pump(a, 1000); /* until killed */
}

static void test_adapter_kill9_with_unsent_outbox_loses_nothing(void **state)
{
    th_hub_t *h = *state;
    const int N = 400;
    assert_int_equal(th_hub_stop(h), 0); /* the outbox cannot drain */
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_sender(h->dir, h->endpoint, p[1], N);
    }
    close(p[1]);
    int accepted = 0, i;
    while (accepted < N / 2 && read(p[0], &i, sizeof i) == sizeof i)
        accepted = i + 1;
    kill(pid, SIGKILL); /* in the middle of its sends */
    waitpid(pid, NULL, 0);
    while (read(p[0], &i, sizeof i) == sizeof i)
        accepted = i + 1;
    close(p[0]);
    assert_true(accepted >= N / 2);
    assert_int_equal(th_hub_start(h), 0);
    nhub_t *a = open_adapter(h->dir, "a-150000", "150000", h->endpoint);
    nhub_stats_t st;
    nhub_stats(a, &st);
    assert_true(st.outbox >= (uint64_t)accepted);
    nhub_t *b = open_adapter(h->dir, "b-630000", "630000", h->endpoint);
    tally_t at_b;
    tally_init(&at_b, N);
    at_b.n = N;
    int64_t last = th_now_ms();
    while (at_b.received < accepted && th_now_ms() - last < 60000) {
        if (drain(b, &at_b, 100) > 0)
            last = th_now_ms();
        nhub_pump(a, 0);
    }
    assert_true(at_b.received >= accepted); /* every accepted message arrived */
    assert_int_equal(at_b.dups, 0);
    assert_int_equal(at_b.out_of_order, 0);
    nhub_close(&a);
    nhub_close(&b);
    tally_free(&at_b);
}

/*
 * A receiver that confirms its whole credit at once: every DELIVERED must
 * reach the hub, even though they are more than its socket queue holds by
 * default, or the hub's window stays full until it redelivers. Redelivery
 * is an hour away here, so only the DELIVEREDs can free the window.
 */
static void test_confirming_a_whole_credit_at_once_frees_the_window(void **state)
{
    (void)state;
    const int C = 4096, ROUNDS = 3, N = ROUNDS * C; /* N: a multiple of BATCH */
    th_hub_t hub;
    assert_int_equal(th_hub_init(&hub, "  redeliver_after: 1h\n  redeliver_max: 2h\n"), 0);
    assert_int_equal(th_hub_start(&hub), 0);
    nhub_t *a = open_adapter(hub.dir, "a-110000", "110000", hub.endpoint);
    enum { BATCH = 512 };
    static char payloads[BATCH][16];
    nhub_message_t m[BATCH];
    memset(m, 0, sizeof m);
    for (int i = 0; i < N; i += BATCH) { /* in batches: one fsync each */
        for (int k = 0; k < BATCH; k++) {
            m[k].destination = "440000";
            m[k].item = "TEST-PUSH";
            m[k].kind = NHUB_KIND_PUSH;
            m[k].payload_type = TYPE;
            m[k].payload = payloads[k];
            m[k].payload_len =
                (size_t)snprintf(payloads[k], sizeof payloads[k], "110000:%d", i + k);
        }
        assert_int_equal(nhub_send_batch(a, m, BATCH, NULL), 0);
    }
    assert_int_equal(nhub_flush(a, 60000), 0);
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/b-440000", hub.dir);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = "440000";
    o.hub_endpoint = hub.endpoint;
    o.data_dir = path;
    o.credit = (uint32_t)C;
    o.insecure_plaintext = 1;
    nhub_t *b = NULL;
    assert_int_equal(nhub_open(&o, &b, err, sizeof err), 0);
    nhub_delivery_t **held = calloc((size_t)C, sizeof *held);
    tally_t t;
    tally_init(&t, N);
    for (int round = 0; round < ROUNDS; round++) {
        int n = 0;
        int64_t last = th_now_ms();
        while (n < C && th_now_ms() - last < 30000) {
            if (nhub_recv(b, &held[n], 100) != 0)
                continue;
            tally_add(&t, held[n++]);
            last = th_now_ms();
        }
        assert_int_equal(n, C); /* after round 0: its DELIVEREDs all arrived */
        assert_int_equal(nhub_confirm_batch(b, held, (size_t)n), 0);
    }
    assert_int_equal(t.received, N);
    assert_int_equal(t.dups + t.out_of_order, 0);
    nhub_close(&a);
    nhub_close(&b);
    assert_int_equal(th_hub_stop(&hub), 0);
    th_hub_cleanup(&hub);
    tally_free(&t);
    free(held);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_adapters_exchange_10000_each_way_exactly_once),
        cmocka_unit_test(test_offline_region_gets_5000_queued_in_order_on_connect),
        cmocka_unit_test(test_hub_kill9_under_load_loses_no_acked_message),
        cmocka_unit_test(test_adapter_kill9_with_unsent_outbox_loses_nothing),
        cmocka_unit_test(test_confirming_a_whole_credit_at_once_frees_the_window),
    };
    return cmocka_run_group_tests_name("exchange", tests, setup, teardown);
}
