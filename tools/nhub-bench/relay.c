/*
 * relay.c: the "relay" section of nhub-bench: what an application moving
 * messages through libnhub gets end to end, from one region's adapter
 * through the hub to another's, with every hop durable.
 *
 * The libnhub run (the figure):
 *   - a real nhubd in insecure-plaintext mode with default (fsync)
 *     durability, started as the ingest section starts it (batch_max 4096);
 *   - sender A (region th_regions[0]): a libnhub adapter in its own thread
 *     and data dir (inside the hub's temp dir), send_only, window
 *     RELAY_WINDOW, calling nhub_send_batch with RELAY_BATCH messages of
 *     BENCH_PAYLOAD bytes; it keeps at most RELAY_WINDOW messages stored and
 *     not yet ACKed by the hub, so its outbox does not grow over the run and
 *     the latency is not time spent queued in it;
 *   - receiver B (region th_regions[1]): a libnhub adapter in its own thread
 *     and data dir, credit RELAY_CREDIT, taking one message with nhub_recv
 *     and then the ones already there, up to RELAY_CONFIRM_MAX, and confirming
 *     them with one nhub_confirm_batch.
 * The clock starts at B's first message and runs for the given seconds.
 * Counted at B: messages confirmed. Latency: from a CLOCK_REALTIME stamp A
 * writes into the payload just before nhub_send_batch (the moment created_ms
 * records, in microseconds) to nhub_recv returning the message at B.
 *
 * The baseline (same run): raw ZeroMQ over loopback TCP, as the hub is
 * reached. DEALER A -> ROUTER (a relay thread forwarding by routing id) ->
 * DEALER B; B acks every message back through the relay to A; A keeps
 * RELAY_WINDOW unacknowledged. Nothing is stored anywhere: it is the
 * transport alone, the ceiling no durable relay reaches.
 */
#include "relay.h"

#include "bench.h"
#include "harness.h"
#include "log.h"
#include "nhub.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define RELAY_BATCH 128
#define RELAY_CONFIRM_MAX RELAY_CREDIT /* B confirms what it has, up to its credit */
#define RELAY_WINDOW 1024
#define RELAY_CREDIT 1024
#define RELAY_LIMITS "  batch_max: 4096\n" /* as the ingest section */
#define RELAY_LAT_MAX (1u << 22)           /* latencies kept, 32 MiB */
#define RELAY_FIRST_US (20 * 1000000LL)    /* longest wait for B's first message */
#define RELAY_POLL_MS 100
#define RELAY_TARGET 50000.0 /* msgs/s the libnhub relay is meant to reach */

/* One run, shared by its threads. A's and B's fields are written by their
 * own thread only; `stop` by anyone. */
typedef struct relay_run {
    int seconds;
    int stop;
    /* B's count of the timed part */
    int64_t start_us;
    int64_t first_us; /* B's first message; 0 = none yet */
    int64_t end_us;
    unsigned long long msgs;
    unsigned long long b_batches;   /* nhub_confirm_batch calls, whole run */
    unsigned long long b_confirmed; /* messages they confirmed */
    int64_t *lat;                   /* microseconds */
    size_t n_lat;
    /* A's side */
    unsigned long long a_batches; /* nhub_send_batch calls */
    uint64_t acked;               /* on_ack calls at A */
    /* libnhub */
    const char *endpoint;
    char dir_a[320], dir_b[320];
    /* raw ZeroMQ */
    void *ctx;
    void *router;
    char raw_endpoint[128];
    int b_ready; /* B has registered with the relay */
    int failed;
    char why[256];
} relay_run_t;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int stopped(relay_run_t *run)
{
    return __atomic_load_n(&run->stop, __ATOMIC_ACQUIRE);
}

static void stop_run(relay_run_t *run)
{
    __atomic_store_n(&run->stop, 1, __ATOMIC_RELEASE);
}

static void relay_fail(relay_run_t *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The run cannot go on: keep the first reason and stop every thread. */
static void relay_fail(relay_run_t *run, const char *fmt, ...)
{
    if (!__atomic_exchange_n(&run->failed, 1, __ATOMIC_ACQ_REL)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(run->why, sizeof run->why, fmt, ap);
        va_end(ap);
    }
    stop_run(run);
}

/* B got a message stamped `stamp_us` at `t_us`: count it while the timed
 * part runs. Ends the run (returns 0) once it is over. */
static int relay_count(relay_run_t *run, int64_t stamp_us, int64_t t_us)
{
    if (!run->first_us)
        run->first_us = t_us;
    if (t_us - run->first_us >= run->seconds * 1000000LL) {
        if (!run->end_us)
            run->end_us = t_us;
        stop_run(run);
        return 0;
    }
    run->msgs++;
    if (run->n_lat < RELAY_LAT_MAX)
        run->lat[run->n_lat++] = t_us - stamp_us;
    return 1;
}

/* Nothing reached B in time: the run failed. Returns 1 if so. */
static int relay_starved(relay_run_t *run)
{
    if (run->first_us || wall_us() - run->start_us < RELAY_FIRST_US)
        return 0;
    relay_fail(run, "no message reached B within %lld s", RELAY_FIRST_US / 1000000);
    return 1;
}

static int64_t payload_stamp(const void *payload, size_t len)
{
    int64_t stamp = 0;
    if (len >= sizeof stamp)
        memcpy(&stamp, payload, sizeof stamp);
    return stamp;
}

/* ---- libnhub: A -> nhubd -> B -------------------------------------------- */

static void count_ack(void *arg, const uint8_t id[NHUB_MSG_ID_LEN])
{
    (void)id;
    (*(uint64_t *)arg)++;
}

static nhub_t *relay_open(relay_run_t *run, nhub_options_t *o, const char *who)
{
    nhub_t *h = NULL;
    char err[256] = "";
    o->hub_endpoint = run->endpoint;
    o->insecure_plaintext = 1;
    if (nhub_open(o, &h, err, sizeof err) != 0)
        relay_fail(run, "%s: nhub_open: %s", who, err);
    return h;
}

static void *nhub_sender(void *arg)
{
    relay_run_t *run = arg;
    nhub_options_t o = {.region = th_regions[0],
                        .data_dir = run->dir_a,
                        .window = RELAY_WINDOW,
                        .send_only = 1,
                        .on_ack = count_ack,
                        .on_ack_arg = &run->acked};
    nhub_t *h = relay_open(run, &o, "A");
    uint8_t payload[BENCH_PAYLOAD];
    nhub_message_t msgs[RELAY_BATCH];
    uint64_t stored = 0;
    memset(payload, 'x', sizeof payload);
    for (int i = 0; i < RELAY_BATCH; i++)
        msgs[i] = (nhub_message_t){.destination = th_regions[1],
                                   .item = "BENCH-ITEM",
                                   .kind = NHUB_KIND_PUSH,
                                   .payload_type = "nhub.bench.v1.Blob",
                                   .payload = payload,
                                   .payload_len = sizeof payload};
    while (h && !stopped(run)) {
        if (stored - run->acked + RELAY_BATCH > RELAY_WINDOW) {
            if (nhub_pump(h, 1) != 0)
                break;
            continue;
        }
        int64_t now = wall_us(); /* one stamp for the batch: they share one payload */
        memcpy(payload, &now, sizeof now);
        int rc = nhub_send_batch(h, msgs, RELAY_BATCH, NULL);
        if (rc != 0) {
            relay_fail(run, "A: nhub_send_batch: %s: %s", nhub_strerror(rc), nhub_last_error(h));
            break;
        }
        stored += RELAY_BATCH;
        run->a_batches++;
    }
    nhub_close(&h);
    return NULL;
}

/* Take what nhub_recv has, up to RELAY_CONFIRM_MAX, waiting only for the first. */
static size_t take_batch(nhub_t *h, nhub_delivery_t **ds, int64_t *t_us)
{
    size_t n = 0;
    while (n < RELAY_CONFIRM_MAX && nhub_recv(h, &ds[n], n ? 0 : RELAY_POLL_MS) == 0)
        t_us[n++] = wall_us();
    return n;
}

static void *nhub_receiver(void *arg)
{
    relay_run_t *run = arg;
    nhub_options_t o = {.region = th_regions[1], .data_dir = run->dir_b, .credit = RELAY_CREDIT};
    nhub_t *h = relay_open(run, &o, "B");
    static nhub_delivery_t *ds[RELAY_CONFIRM_MAX];
    static int64_t t_us[RELAY_CONFIRM_MAX], stamp[RELAY_CONFIRM_MAX];
    while (h && !stopped(run)) {
        size_t n = take_batch(h, ds, t_us);
        if (n == 0 && relay_starved(run))
            break;
        for (size_t i = 0; i < n; i++)
            stamp[i] = payload_stamp(ds[i]->payload, ds[i]->payload_len);
        int rc = nhub_confirm_batch(h, ds, n);
        if (rc != 0) {
            relay_fail(run, "B: nhub_confirm_batch: %s: %s", nhub_strerror(rc), nhub_last_error(h));
            break;
        }
        run->b_batches += n > 0;
        run->b_confirmed += n;
        for (size_t i = 0; i < n && relay_count(run, stamp[i], t_us[i]); i++)
            ;
    }
    nhub_close(&h);
    return NULL;
}

/* ---- raw ZeroMQ: DEALER A -> ROUTER relay -> DEALER B --------------------- */

static void *raw_socket(relay_run_t *run, int type, const char *id)
{
    int zero = 0;
    void *s = zmq_socket(run->ctx, type);
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero); /* the window bounds the queues */
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
    if (id)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, id, strlen(id));
    return s;
}

/* Forward [from, to, body] as [to, from, body]; an empty `to` registers `from`. */
static void raw_forward(relay_run_t *run)
{
    zmq_msg_t part[3];
    int n = 0, more = 1;
    while (more && n < 3) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], run->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        more = zmq_msg_more(&part[n++]);
    }
    if (n == 3 && !more && zmq_msg_size(&part[1]) == 0) {
        __atomic_store_n(&run->b_ready, 1, __ATOMIC_RELEASE);
    } else if (n == 3 && !more) {
        zmq_msg_send(&part[1], run->router, ZMQ_SNDMORE);
        zmq_msg_send(&part[0], run->router, ZMQ_SNDMORE);
        zmq_msg_send(&part[2], run->router, 0);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static void *raw_relay(void *arg)
{
    relay_run_t *run = arg;
    while (!stopped(run)) {
        zmq_pollitem_t it = {run->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, RELAY_POLL_MS) < 0)
            break;
        for (int i = 0; i < 256 && (it.revents & ZMQ_POLLIN); i++) {
            int ev = 0;
            size_t len = sizeof ev;
            raw_forward(run);
            zmq_getsockopt(run->router, ZMQ_EVENTS, &ev, &len);
            it.revents = (short)(ev & ZMQ_POLLIN);
        }
    }
    zmq_close(run->router);
    return NULL;
}

static void *raw_sender(void *arg)
{
    relay_run_t *run = arg;
    void *s = raw_socket(run, ZMQ_DEALER, "A");
    uint8_t payload[BENCH_PAYLOAD], ack[16];
    int inflight = 0;
    memset(payload, 'x', sizeof payload);
    if (!s || zmq_connect(s, run->raw_endpoint) != 0)
        relay_fail(run, "A: cannot connect to the relay");
    while (!stopped(run) && !__atomic_load_n(&run->b_ready, __ATOMIC_ACQUIRE))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    while (!stopped(run)) {
        for (; inflight < RELAY_WINDOW; inflight++) {
            int64_t now = wall_us();
            memcpy(payload, &now, sizeof now);
            zmq_send(s, "B", 1, ZMQ_SNDMORE);
            zmq_send(s, payload, sizeof payload, 0);
        }
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, RELAY_POLL_MS) < 0)
            break;
        /* [from, ack]: one per message B received */
        while (zmq_recv(s, ack, sizeof ack, ZMQ_DONTWAIT) >= 0)
            if (zmq_recv(s, ack, sizeof ack, 0) >= 0)
                inflight--;
    }
    zmq_close(s);
    return NULL;
}

static void *raw_receiver(void *arg)
{
    relay_run_t *run = arg;
    void *s = raw_socket(run, ZMQ_DEALER, "B");
    uint8_t from[16], body[BENCH_PAYLOAD];
    if (!s || zmq_connect(s, run->raw_endpoint) != 0) {
        relay_fail(run, "B: cannot connect to the relay");
    } else {
        zmq_send(s, "", 0, ZMQ_SNDMORE); /* register: an empty destination */
        zmq_send(s, "", 0, 0);
    }
    while (!stopped(run)) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, RELAY_POLL_MS) < 0)
            break;
        if (!(it.revents & ZMQ_POLLIN) && relay_starved(run))
            break;
        int flen;
        while ((flen = zmq_recv(s, from, sizeof from, ZMQ_DONTWAIT)) >= 0) {
            int blen = zmq_recv(s, body, sizeof body, 0);
            int64_t t = wall_us();
            zmq_send(s, from, (size_t)flen, ZMQ_SNDMORE); /* the ack, back through the relay */
            zmq_send(s, "ok", 2, 0);
            if (blen >= 0 && !relay_count(run, payload_stamp(body, (size_t)blen), t))
                break;
        }
    }
    zmq_close(s);
    return NULL;
}

/* ---- the section ---------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct relay_figure {
    double rate, p50, p99; /* msgs/s, ms */
    unsigned long long msgs;
} relay_figure_t;

static relay_figure_t relay_figure(relay_run_t *run)
{
    relay_figure_t f = {0, 0, 0, run->msgs};
    int64_t end = run->end_us ? run->end_us : wall_us();
    double secs = run->first_us ? (double)(end - run->first_us) / 1e6 : 0;
    qsort(run->lat, run->n_lat, sizeof *run->lat, cmp_i64);
    f.rate = secs > 0 ? (double)run->msgs / secs : 0;
    f.p50 = run->n_lat ? (double)run->lat[run->n_lat / 2] / 1000.0 : 0;
    f.p99 = run->n_lat ? (double)run->lat[run->n_lat * 99 / 100] / 1000.0 : 0;
    return f;
}

static relay_run_t *relay_run_new(int seconds)
{
    relay_run_t *run = calloc(1, sizeof *run);
    if (!run)
        return NULL;
    run->lat = malloc(RELAY_LAT_MAX * sizeof *run->lat);
    if (!run->lat) {
        free(run);
        return NULL;
    }
    run->seconds = seconds;
    run->start_us = wall_us();
    return run;
}

static void relay_run_free(relay_run_t **run)
{
    if (!*run)
        return;
    free((*run)->lat);
    free(*run);
    *run = NULL;
}

/* Start `a` after `b` (the receiver is there first), wait for both. */
static void run_pair(relay_run_t *run, void *(*a)(void *), void *(*b)(void *))
{
    pthread_t ta, tb;
    int ok_b = pthread_create(&tb, NULL, b, run) == 0;
    int ok_a = ok_b && pthread_create(&ta, NULL, a, run) == 0;
    if (!ok_a)
        relay_fail(run, "cannot start a thread");
    if (ok_b)
        pthread_join(tb, NULL);
    stop_run(run);
    if (ok_a)
        pthread_join(ta, NULL);
}

/* The libnhub relay through a fresh hub; *hub_batch gets the hub's mean commit batch. */
static int relay_nhub(relay_run_t *run, double *hub_batch)
{
    th_hub_t hub;
    if (th_hub_init(&hub, RELAY_LIMITS) != 0) {
        relay_fail(run, "cannot make a temporary directory");
        return -1;
    }
    if (bench_start_hub(&hub) != 0) {
        relay_fail(run, "cannot start nhubd");
        th_hub_cleanup(&hub);
        return -1;
    }
    run->endpoint = hub.endpoint;
    snprintf(run->dir_a, sizeof run->dir_a, "%s/relay-a", hub.dir);
    snprintf(run->dir_b, sizeof run->dir_b, "%s/relay-b", hub.dir);
    run->start_us = wall_us();
    run_pair(run, nhub_sender, nhub_receiver);
    th_hub_stop(&hub);
    *hub_batch = bench_mean_batch(&hub);
    th_hub_cleanup(&hub);
    return run->failed ? -1 : 0;
}

/* The raw ZeroMQ relay: the ROUTER is bound here, then served by its thread. */
static int relay_raw(relay_run_t *run)
{
    pthread_t tr;
    size_t len = sizeof run->raw_endpoint;
    run->ctx = zmq_ctx_new();
    run->router = raw_socket(run, ZMQ_ROUTER, NULL);
    if (!run->router || zmq_bind(run->router, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(run->router, ZMQ_LAST_ENDPOINT, run->raw_endpoint, &len) != 0 ||
        pthread_create(&tr, NULL, raw_relay, run) != 0) {
        relay_fail(run, "cannot start the raw relay: %s", zmq_strerror(zmq_errno()));
        if (run->router)
            zmq_close(run->router);
        zmq_ctx_term(run->ctx);
        return -1;
    }
    run->start_us = wall_us();
    run_pair(run, raw_sender, raw_receiver);
    pthread_join(tr, NULL);
    zmq_ctx_term(run->ctx);
    return run->failed ? -1 : 0;
}

static void print_header(int seconds)
{
    printf("\n== relay: region A -> nhubd -> region B through libnhub, confirmed msgs/s at B;\n"
           "   baseline: raw ZeroMQ relay with acks; %d s from B's first message\n",
           seconds);
    printf("   libnhub A: nhub_send_batch of %d x %d-byte payloads, window %d, at most %d stored\n"
           "              and not yet ACKed by the hub (send_only, insecure-plaintext)\n",
           RELAY_BATCH, BENCH_PAYLOAD, RELAY_WINDOW, RELAY_WINDOW);
    printf("   libnhub B: nhub_recv, then what is ready up to %d, one nhub_confirm_batch; "
           "credit %d\n",
           RELAY_CONFIRM_MAX, RELAY_CREDIT);
    printf("   hub: insecure-plaintext, default sync, batch_max 4096\n");
    printf("   durability: libnhub fsyncs at A (one outbox commit per batch sent, one per burst\n"
           "              of ACKs read), at the hub (one journal commit per batch) and at B (one\n"
           "              commit of the confirmed set per confirm batch); the raw relay fsyncs\n"
           "              nothing and stores nothing\n");
    printf("   raw: DEALER A -> ROUTER relay thread (forwards by routing id) -> DEALER B over\n"
           "        loopback TCP; B acks each message back through the relay; A window %d\n",
           RELAY_WINDOW);
    printf("   latency: a CLOCK_REALTIME stamp written into the payload just before sending\n"
           "            (nhub_send_batch's created time) to the receive at B\n");
    printf("%-16s %10s %10s %9s %9s\n", "path", "msgs", "msgs/s", "p50 ms", "p99 ms");
}

static void print_row(const char *name, const relay_run_t *run, const relay_figure_t *f)
{
    if (run->failed) {
        printf("%-16s failed: %s\n", name, run->why);
        return;
    }
    printf("%-16s %10llu %10.0f %9.2f %9.2f\n", name, f->msgs, f->rate, f->p50, f->p99);
}

void section_relay(int seconds)
{
    relay_run_t *nr = relay_run_new(seconds), *rr = relay_run_new(seconds);
    double hub_batch = 0;
    if (!nr || !rr) {
        printf("\n== relay: out of memory\n");
        relay_run_free(&nr);
        relay_run_free(&rr);
        return;
    }
    print_header(seconds);
    fflush(stdout);
    log_setup(LOG_ERROR, stderr); /* the adapters' info lines are not the bench's output */
    relay_nhub(nr, &hub_batch);
    relay_figure_t fn = relay_figure(nr);
    print_row("libnhub relay", nr, &fn);
    fflush(stdout);
    relay_raw(rr);
    relay_figure_t fr = relay_figure(rr);
    print_row("raw ZeroMQ", rr, &fr);
    if (!nr->failed)
        printf("   batches: A sent %llu of %d; B confirmed %llu, %.1f per confirm; "
               "hub mean commit batch %.1f\n",
               nr->a_batches, RELAY_BATCH, nr->b_batches,
               nr->b_batches ? (double)nr->b_confirmed / (double)nr->b_batches : 0, hub_batch);
    if (!nr->failed && !rr->failed)
        printf("   libnhub/raw %.2f; target >= %.0f msgs/s: %s\n",
               fr.rate > 0 ? fn.rate / fr.rate : 0, RELAY_TARGET,
               fn.rate >= RELAY_TARGET ? "met" : "NOT met");
    fflush(stdout);
    relay_run_free(&nr);
    relay_run_free(&rr);
}
