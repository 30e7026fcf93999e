/*
 * priority.c: the "priority" section of nhub-bench (see priority.h).
 *
 * One hub in the development mode on the test catalogue, where TEST-URGENT
 * is in the urgent class and TEST-BULK in the bulk class. Three libnhub
 * adapters, each on its own thread:
 *
 *   receiver  310000, credit 64 (libnhub's default): takes everything, confirms in batches of
 *             up to 64, and for each urgent message the time from the
 *             probe's nhub_send to its own nhub_recv (same host, monotonic
 *             clock carried in the payload);
 *   probe     120000: PROBE_N urgent requests, one every PROBE_GAP_MS (the
 *             counter traffic of a verification someone waits for);
 *   bulk      110000: BULK_FULL (quick: BULK_QUICK) bulk pushes of
 *             BULK_PAYLOAD bytes in batches of BULK_BATCH, as fast as the
 *             hub takes them (a registration sync).
 *
 * The probe runs once alone. Then the receiver stops taking deliveries
 * (its credit fills and the hub keeps the rest), the bulk sender sends the
 * whole sync and waits for its ACKs, so the hub holds it queued for the
 * receiver; the receiver starts taking again and at the same moment the
 * probe runs again, while the sync is being delivered: p50 and p99 of both
 * runs, and the ratio of the p99s (target: at most 2). Delivered in the
 * order it was queued, the sync would hold the probe back for as long as it
 * takes to deliver it all. Pacing uses nhub_pump; nothing here synchronises
 * on time.
 */
#include "priority.h"

#include "harness.h"
#include "nhub.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RX "310000"
#define PROBE_SRC "120000"
#define BULK_SRC "110000"
#define TEST_CATALOG "test/data/catalog-test.yaml"
#define TYPE "nhub.test.v1.Counter"
#define PROBE_N 1000
#define PROBE_GAP_MS 4
#define BULK_FULL 1000000
#define BULK_QUICK 100000
#define BULK_BATCH 256
#define BULK_PAYLOAD 256
#define LIMITS "  batch_max: 4096\n  map_size: 4GiB\n  map_size_max: 32GiB\n"

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct prio_run {
    th_hub_t hub;
    uint64_t bulk_total;
    atomic_int stop;
    atomic_int paused; /* the receiver takes no deliveries */
    atomic_ullong bulk_sent, bulk_rx, urgent_rx;
    atomic_int failed;
    atomic_int bulk_flushed;    /* every bulk message ACKed */
    int64_t lat_us[2][PROBE_N]; /* per probe run */
    atomic_int phase;           /* which lat_us the receiver fills */
    atomic_size_t n_lat[2];
} prio_run_t;

static nhub_t *open_adapter(prio_run_t *r, const char *region, uint32_t credit)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/adapter-%s", r->hub.dir, region);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = region;
    o.hub_endpoint = r->hub.endpoint;
    o.data_dir = path;
    o.credit = credit;
    o.send_only = credit == 0;
    o.window = 1024;
    o.insecure_plaintext = 1;
    nhub_t *a = NULL;
    if (nhub_open(&o, &a, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-bench: priority: nhub_open %s: %s\n", region, err);
        return NULL;
    }
    return a;
}

static void *receiver(void *arg)
{
    prio_run_t *r = arg;
    nhub_t *rx = open_adapter(r, RX, 64);
    if (!rx) {
        r->failed = 1;
        return NULL;
    }
    nhub_delivery_t *held[64];
    size_t n = 0;
    while (!r->stop) {
        if (r->paused && n == 0) {
            nhub_pump(rx, 20);
            continue;
        }
        nhub_delivery_t *d = NULL;
        int rc = nhub_recv(rx, &d, n ? 0 : 100);
        if (rc == 0) {
            const char *p = d->payload;
            if (d->payload_len > 1 && p[0] == 'U') {
                char num[24];
                size_t len = d->payload_len - 1 < sizeof num - 1 ? d->payload_len - 1 : 23;
                memcpy(num, p + 1, len);
                num[len] = 0;
                int ph = r->phase;
                size_t k = r->n_lat[ph];
                if (k < PROBE_N) {
                    r->lat_us[ph][k] = mono_us() - strtoll(num, NULL, 10);
                    r->n_lat[ph] = k + 1;
                }
                r->urgent_rx++;
            } else {
                r->bulk_rx++;
            }
            held[n++] = d;
        }
        if (n == 64 || (n && rc != 0)) {
            if (nhub_confirm_batch(rx, held, n) != 0) {
                fprintf(stderr, "nhub-bench: priority: confirm: %s\n", nhub_last_error(rx));
                for (size_t i = 0; i < n; i++)
                    nhub_delivery_release(rx, &held[i]);
            }
            n = 0;
        }
    }
    for (size_t i = 0; i < n; i++)
        nhub_delivery_release(rx, &held[i]);
    nhub_close(&rx);
    return NULL;
}

static void *bulk_sender(void *arg)
{
    prio_run_t *r = arg;
    nhub_t *b = open_adapter(r, BULK_SRC, 0);
    if (!b) {
        r->failed = 1;
        return NULL;
    }
    static char payload[BULK_PAYLOAD];
    memset(payload, 'B', sizeof payload);
    nhub_message_t m[BULK_BATCH];
    for (size_t i = 0; i < BULK_BATCH; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].destination = RX;
        m[i].item = "TEST-BULK";
        m[i].kind = NHUB_KIND_PUSH;
        m[i].payload_type = TYPE;
        m[i].payload = payload;
        m[i].payload_len = sizeof payload;
    }
    while (!r->stop && r->bulk_sent < r->bulk_total) {
        uint64_t left = r->bulk_total - r->bulk_sent;
        size_t n = left < BULK_BATCH ? (size_t)left : BULK_BATCH;
        int rc = nhub_send_batch(b, m, n, NULL);
        if (rc == NHUB_EFULL || rc == NHUB_EAGAIN) {
            nhub_pump(b, 10);
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "nhub-bench: priority: bulk send: %s\n", nhub_last_error(b));
            r->failed = 1;
            break;
        }
        r->bulk_sent += n;
        nhub_pump(b, 0);
    }
    int rc;
    while (!r->stop && (rc = nhub_flush(b, 200)) == NHUB_ETIMEOUT)
        ;
    r->bulk_flushed = !r->stop && rc == 0;
    nhub_close(&b);
    return NULL;
}

/* One probe run: PROBE_N urgent requests, then wait (bounded) for them all. */
static int probe(prio_run_t *r, nhub_t *u, int phase)
{
    r->phase = phase;
    unsigned long long want = r->urgent_rx + PROBE_N;
    for (int i = 0; i < PROBE_N && !r->failed; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "U%" PRId64, mono_us());
        nhub_message_t m;
        memset(&m, 0, sizeof m);
        m.destination = RX;
        m.item = "TEST-URGENT";
        m.kind = NHUB_KIND_REQUEST;
        m.payload_type = TYPE;
        m.payload = payload;
        m.payload_len = (size_t)len;
        if (nhub_send(u, &m, NULL) != 0) {
            fprintf(stderr, "nhub-bench: priority: probe send: %s\n", nhub_last_error(u));
            return -1;
        }
        nhub_pump(u, PROBE_GAP_MS);
    }
    int64_t until = mono_us() + 60 * 1000000LL;
    while (r->urgent_rx < want && mono_us() < until)
        nhub_pump(u, 10);
    return r->urgent_rx >= want ? 0 : -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void quantiles(int64_t *v, size_t n, double *p50, double *p99)
{
    qsort(v, n, sizeof *v, cmp_i64);
    *p50 = n ? (double)v[n / 2] / 1000.0 : 0;
    *p99 = n ? (double)v[(n * 99) / 100] / 1000.0 : 0;
}

void section_priority(int quick)
{
    printf("\npriority: urgent verification requests to one region (1 sender, one every %d ms), "
           "end-to-end from nhub_send to nhub_recv, alone and with a bulk sync in flight\n",
           PROBE_GAP_MS);
    prio_run_t *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->bulk_total = quick ? BULK_QUICK : BULK_FULL;
    if (th_hub_init(&r->hub, LIMITS) != 0) {
        free(r);
        return;
    }
    if (th_hub_insecure_catalog(&r->hub, TEST_CATALOG) != 0) {
        fprintf(stderr, "nhub-bench: priority: no %s (run from the source tree)\n", TEST_CATALOG);
        th_hub_cleanup(&r->hub);
        free(r);
        return;
    }
    if (th_hub_start(&r->hub) != 0) {
        fprintf(stderr, "nhub-bench: priority: the hub did not start\n");
        th_hub_cleanup(&r->hub);
        free(r);
        return;
    }
    pthread_t rx_t, bulk_t;
    int rx_ok = pthread_create(&rx_t, NULL, receiver, r) == 0, bulk_ok = 0;
    nhub_t *u = rx_ok ? open_adapter(r, PROBE_SRC, 0) : NULL;
    double base50 = 0, base99 = 0, bulk50 = 0, bulk99 = 0, bulk_rate = 0;
    unsigned long long ahead_start = 0, ahead_end = 0, rx_during = 0;
    int ok = u && probe(r, u, 0) == 0;
    if (ok) {
        quantiles(r->lat_us[0], r->n_lat[0], &base50, &base99);
        r->paused = 1;
        bulk_ok = pthread_create(&bulk_t, NULL, bulk_sender, r) == 0;
        /* The whole sync ACKed: queued at the hub. */
        while (bulk_ok && !r->failed && !r->bulk_flushed)
            nhub_pump(u, 20);
        ahead_start = r->bulk_total - r->bulk_rx;
        int64_t t0 = mono_us();
        r->paused = 0;
        ok = bulk_ok && !r->failed && probe(r, u, 1) == 0;
        ahead_end = r->bulk_total - r->bulk_rx;
        rx_during = ahead_start - ahead_end;
        quantiles(r->lat_us[1], r->n_lat[1], &bulk50, &bulk99);
        /* The rest of the sync, for its rate (bounded). */
        int64_t until = mono_us() + 300 * 1000000LL;
        while (ok && !r->failed && r->bulk_rx < r->bulk_total && mono_us() < until)
            nhub_pump(u, 50);
        double s = (double)(mono_us() - t0) / 1e6;
        bulk_rate = s > 0 ? (double)(r->bulk_rx - (r->bulk_total - ahead_start)) / s : 0;
    }
    r->stop = 1;
    if (bulk_ok)
        pthread_join(bulk_t, NULL);
    if (rx_ok)
        pthread_join(rx_t, NULL);
    nhub_close(&u);
    th_hub_stop(&r->hub);
    if (!ok || r->failed) {
        printf("  failed (see above)\n");
    } else {
        printf("  alone                        p50 %6.2f ms   p99 %6.2f ms\n", base50, base99);
        printf("  with %7llu bulk in flight    p50 %6.2f ms   p99 %6.2f ms   p99 ratio %.2f "
               "(target <= 2)\n",
               (unsigned long long)r->bulk_total, bulk50, bulk99, base99 > 0 ? bulk99 / base99 : 0);
        printf("  detail: bulk = %llu TEST-BULK pushes of %d B from %s, queued at the hub for "
               "the same region (sent in batches of %d), then delivered at %.0f msgs/s; not yet "
               "received when the probe started %llu, when it ended %llu; %llu bulk received "
               "during the probe\n",
               (unsigned long long)r->bulk_total, BULK_PAYLOAD, BULK_SRC, BULK_BATCH, bulk_rate,
               ahead_start, ahead_end, rx_during);
    }
    th_hub_cleanup(&r->hub);
    free(r);
}
