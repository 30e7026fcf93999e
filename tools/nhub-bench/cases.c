/*
 * cases.c: the "cases" section of nhub-bench (see cases.h).
 *
 * The hubs run in the development mode (insecure-plaintext) with a
 * catalogue: the test catalogue (test/data/catalog-test.yaml) and two
 * opaque items written after it into the hub's directory at run time,
 * which differ only in the time limit:
 *
 *   BENCH-CASE   kinds request, response; time_limit 1d, reminder 16h,
 *                grace 1d: every request opens a case
 *   BENCH-PLAIN  kinds request, response; no time limit: no case
 *
 * (They are not in the test catalogue itself, whose item count
 * test/unit/test_catalog.c checks.)
 *
 * 1. Ingest as the ingest section's standard point (4 senders x window
 *    64, BENCH_PAYLOAD-byte payloads, bench_ingest), of BENCH-PLAIN
 *    requests on one fresh hub, then of BENCH-CASE requests on another.
 * 2. On the first hub (now warm, nothing open): its RssAnon; 1,000,000
 *    BENCH-CASE requests opening cases (4 x 64, to regions that are not
 *    connected: they queue), its RssAnon; a probe sender of plain pushes
 *    (1 x window PROBE_WINDOW) for PROBE_BEFORE_S, then the hub's wall
 *    clock moved 3 days ahead (th_hub_clock_set: past every expiry, so
 *    each case fires once, straight to expired, with the hub's EXPIRED
 *    answer queued for its requester). The bench polls the store's case
 *    counts read-only (store_case_counts) and the hub's RssAnon every
 *    WATCH_MS until all 1,000,000 expired: cases expired per second, the
 *    probe's ACK latency during the firing against before it, and the
 *    hub's peak RssAnon against the figure with nothing open.
 */
#include "cases.h"

#include "bench.h"
#include "harness.h"
#include "store.h"
#include "wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#define TEST_CATALOG "test/data/catalog-test.yaml"
#define CASE_ITEM "BENCH-CASE"
#define PLAIN_ITEM "BENCH-PLAIN"
#define PROBE_ITEM "BENCH-ITEM"
#define SENDERS 4
#define ROUNDS 7 /* of the ingest comparison (1 with --quick) */
#define WINDOW 64
#define LIMITS "  batch_max: 4096\n  map_size: 8GiB\n  map_size_max: 32GiB\n"
#define OPEN_FULL 1000000
#define OPEN_QUICK 100000
#define PROBE_WINDOW 16
#define PROBE_SAMPLES (1 << 22)
#define PROBE_BEFORE_S 3
#define WATCH_MS 20
#define FIRE_TIMEOUT_S 150
#define JUMP_MS (3 * 24 * 3600 * 1000LL) /* past open + 1d + 1d grace */
#define ENV_MAX 1024

static const char extra_items[] =
    "\n"
    "  # nhub-bench cases section (written at run time by tools/nhub-bench/cases.c):\n"
    "  # two opaque request items that differ only in the time limit.\n"
    "  - code: " CASE_ITEM "\n"
    "    name: 测试：限时办结基准流量\n"
    "    kinds: [request, response]\n"
    "    senders: [\"*\"]\n"
    "    receivers: [\"*\"]\n"
    "    time_limit: 1d\n"
    "    reminder: 16h\n"
    "    grace: 1d\n"
    "\n"
    "  - code: " PLAIN_ITEM "\n"
    "    name: 测试：无时限请求基准流量\n"
    "    kinds: [request, response]\n"
    "    senders: [\"*\"]\n"
    "    receivers: [\"*\"]\n";

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the hub ------------------------------------------------------------------ */

/* Write the test catalogue and the two items into the hub's directory and
 * point its security section at it. */
static int write_catalog(th_hub_t *h)
{
    char path[400];
    snprintf(path, sizeof path, "%s/catalog.yaml", h->dir);
    FILE *in = fopen(TEST_CATALOG, "r"), *out = fopen(path, "w");
    int ok = in && out;
    char buf[8192];
    size_t n;
    int last = '\n';
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) {
        ok = fwrite(buf, 1, n, out) == n;
        last = buf[n - 1];
    }
    if (ok && last != '\n')
        ok = fputc('\n', out) != EOF;
    if (ok)
        ok = fputs(extra_items, out) != EOF;
    if (in)
        fclose(in);
    if (out)
        ok = fclose(out) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "nhub-bench: cases: cannot write %s from %s (run from the source tree)\n",
                path, TEST_CATALOG);
        return -1;
    }
    int k = snprintf(h->security, sizeof h->security,
                     "security:\n  mode: insecure-plaintext\n  catalog: \"%s\"\n", path);
    return k > 0 && (size_t)k < sizeof h->security ? 0 : -1;
}

static int start_case_hub(th_hub_t *h)
{
    if (th_hub_init(h, LIMITS) != 0) {
        fprintf(stderr, "nhub-bench: cannot make a temporary directory\n");
        return -1;
    }
    if (write_catalog(h) != 0 || bench_start_hub(h) != 0) {
        th_hub_cleanup(h);
        return -1;
    }
    return 0;
}

/* ---- 1. ingest ------------------------------------------------------------------- */

/* bench_ingest's feed: requests of `item`, sender i from BENCH_SOURCE(i). */
struct req_feed {
    const char *item;
    uint8_t tag;
    uint8_t buf[SENDERS][ENV_MAX];
};

static int req_next(void *arg, int sender, uint64_t q, wire_send_t *snd)
{
    struct req_feed *f = arg;
    uint8_t id[16], tag[2] = {f->tag, (uint8_t)sender};
    bench_make_id(id, tag, q);
    size_t n = bench_envelope_item(f->buf[sender], ENV_MAX, id, th_regions[BENCH_SOURCE(sender)],
                             th_regions[BENCH_DESTINATION(sender)], f->item,
                             NHUB__WIRE__V1__KIND__KIND_REQUEST, BENCH_PAYLOAD);
    snd->envelope.data = f->buf[sender];
    snd->envelope.len = n;
    return n ? 0 : 1;
}

static int ingest_requests(th_hub_t *h, const char *item, uint8_t tag, int seconds,
                           bench_result_t *r)
{
    static struct req_feed f; /* 4 KiB of buffers: not on the stack */
    f.item = item;
    f.tag = tag;
    bench_feed_t feed = {.next = req_next, .arg = &f};
    return bench_ingest(h, SENDERS, WINDOW, seconds, 0, &feed, r);
}

/* ---- raw senders --------------------------------------------------------------- */

typedef struct sender {
    void *sock;
    uint8_t stream_id[16];
    uint8_t tag[2];
    uint64_t next_sseq; /* the next SEND's */
    const char *src, *dst, *item;
    int kind, window;
    int64_t *sent_at; /* by stream_seq % window */
} sender_t;

/* One nhub message from `s` if waiting: its command (0 if none, -1 if bad). */
static int sender_read(sender_t *s, ProtobufCMessage **m)
{
    return bench_read(s->sock, m);
}

static void sender_close(sender_t *s)
{
    if (s->sock)
        zmq_close(s->sock);
    free(s->sent_at);
    s->sock = NULL;
    s->sent_at = NULL;
}

/* Connect, say HELLO (credit 0: it gets no deliveries) and wait for WELCOME. */
static int sender_open(sender_t *s, void *ctx, const char *endpoint, const char *src,
                       const char *dst, const char *item, int kind, int window, uint8_t tag)
{
    memset(s, 0, sizeof *s);
    s->sock = zmq_socket(ctx, ZMQ_DEALER);
    int z = 0, hwm = 0;
    zmq_setsockopt(s->sock, ZMQ_LINGER, &z, sizeof z);
    zmq_setsockopt(s->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_connect(s->sock, endpoint);
    for (int b = 0; b < 16; b++)
        s->stream_id[b] = (uint8_t)rand();
    s->tag[0] = tag;
    s->tag[1] = s->stream_id[0];
    s->next_sseq = 1;
    s->src = src;
    s->dst = dst;
    s->item = item;
    s->kind = kind;
    s->window = window;
    s->sent_at = calloc((size_t)window, sizeof *s->sent_at);
    wire_hello_t hello = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t v = 1;
    hello.region = (char *)src;
    hello.protocol_versions = &v;
    hello.n_protocol_versions = 1;
    hello.credit = 0;
    hello.stream_id.data = s->stream_id;
    hello.stream_id.len = 16;
    wire_send(s->sock, NULL, 0, WIRE_HELLO, &hello.base, 0);
    zmq_pollitem_t pi = {s->sock, 0, ZMQ_POLLIN, 0};
    int64_t deadline = th_now_ms() + 10000;
    while (th_now_ms() < deadline) {
        if (zmq_poll(&pi, 1, 200) <= 0)
            continue;
        ProtobufCMessage *m = NULL;
        int cmd;
        while ((cmd = sender_read(s, &m)) != 0) {
            wire_free(&m);
            if (cmd == WIRE_WELCOME)
                return 0;
            if (cmd == WIRE_NACK || cmd < 0) {
                deadline = 0;
                break;
            }
        }
    }
    fprintf(stderr, "nhub-bench: cases: sender %s was not welcomed\n", src);
    sender_close(s);
    return -1;
}

static void sender_send(sender_t *s)
{
    uint8_t id[16], buf[ENV_MAX];
    uint64_t q = s->next_sseq++;
    bench_make_id(id, s->tag, q);
    wire_send_t snd = NHUB__WIRE__V1__SEND__INIT;
    snd.stream_seq = q;
    snd.envelope.data = buf;
    snd.envelope.len =
        bench_envelope_item(buf, sizeof buf, id, s->src, s->dst, s->item, s->kind, BENCH_PAYLOAD);
    s->sent_at[q % (uint64_t)s->window] = now_us();
    wire_send(s->sock, NULL, 0, WIRE_SEND, &snd.base, 0);
}

static void print_nack(const char *who, const wire_nack_t *n)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&nhub__wire__v1__nack_code__descriptor, (int)n->code);
    fprintf(stderr, "nhub-bench: cases: NACK %s to %s: %s\n", v ? v->name : "?", who, n->text);
}

/* ---- 2a. opening the cases ------------------------------------------------------ */

/* `n` BENCH-CASE requests from SENDERS senders x WINDOW, all ACKed: the
 * count ACKed; *secs the time it took. */
static long open_cases(const th_hub_t *h, void *ctx, long n, double *secs)
{
    sender_t s[SENDERS];
    zmq_pollitem_t pi[SENDERS];
    long quota[SENDERS], sent[SENDERS], acked = 0;
    int failed = 0;
    for (int i = 0; i < SENDERS; i++) {
        if (sender_open(&s[i], ctx, h->endpoint, th_regions[BENCH_SOURCE(i)],
                        th_regions[BENCH_DESTINATION(i)], CASE_ITEM,
                        NHUB__WIRE__V1__KIND__KIND_REQUEST, WINDOW, (uint8_t)(0x40 + i)) != 0) {
            for (int j = 0; j < i; j++)
                sender_close(&s[j]);
            return 0;
        }
        pi[i] = (zmq_pollitem_t){s[i].sock, 0, ZMQ_POLLIN, 0};
        quota[i] = n / SENDERS + (i < n % SENDERS);
        sent[i] = 0;
    }
    int64_t t0 = now_us(), deadline = th_now_ms() + 900000;
    for (int i = 0; i < SENDERS; i++)
        for (; sent[i] < quota[i] && sent[i] < WINDOW; sent[i]++)
            sender_send(&s[i]);
    while (acked < n && !failed && th_now_ms() < deadline) {
        if (zmq_poll(pi, SENDERS, 1000) < 0)
            break;
        for (int i = 0; i < SENDERS; i++) {
            ProtobufCMessage *m;
            int cmd;
            while ((cmd = sender_read(&s[i], &m)) != 0) {
                if (cmd == WIRE_ACK) {
                    acked++;
                    if (sent[i] < quota[i]) {
                        sender_send(&s[i]);
                        sent[i]++;
                    }
                } else if (cmd == WIRE_NACK) {
                    print_nack(s[i].src, (wire_nack_t *)m);
                    failed = 1;
                }
                wire_free(&m);
            }
        }
    }
    *secs = (double)(now_us() - t0) / 1e6;
    for (int i = 0; i < SENDERS; i++)
        sender_close(&s[i]);
    return acked;
}

/* ---- 2b. the probe: plain traffic while the deadlines fire ---------------------- */

typedef struct probe {
    void *ctx;
    const char *endpoint;
    volatile int stop;
    atomic_int welcomed;   /* 1 once sending, -1 if it could not start */
    int64_t *t_sent, *lat; /* per ACK: when its SEND went, its latency (us) */
    size_t n;
    unsigned long nacks;
} probe_t;

static void *probe_loop(void *arg)
{
    probe_t *p = arg;
    sender_t s;
    if (sender_open(&s, p->ctx, p->endpoint, th_regions[8], th_regions[24], PROBE_ITEM,
                    NHUB__WIRE__V1__KIND__KIND_PUSH, PROBE_WINDOW, 0x7e) != 0) {
        atomic_store(&p->welcomed, -1);
        return NULL;
    }
    atomic_store(&p->welcomed, 1);
    for (int w = 0; w < PROBE_WINDOW; w++)
        sender_send(&s);
    zmq_pollitem_t pi = {s.sock, 0, ZMQ_POLLIN, 0};
    while (!p->stop) {
        if (zmq_poll(&pi, 1, 100) < 0)
            break;
        ProtobufCMessage *m;
        int cmd;
        while ((cmd = sender_read(&s, &m)) != 0) {
            if (cmd == WIRE_ACK) {
                wire_ack_t *a = (wire_ack_t *)m;
                int64_t t = now_us(), sent = s.sent_at[a->stream_seq % (uint64_t)PROBE_WINDOW];
                if (p->n < PROBE_SAMPLES) {
                    p->t_sent[p->n] = sent;
                    p->lat[p->n] = t - sent;
                    p->n++;
                }
                if (!p->stop)
                    sender_send(&s);
            } else if (cmd == WIRE_NACK) {
                if (p->nacks++ == 0)
                    print_nack(s.src, (wire_nack_t *)m);
            }
            wire_free(&m);
        }
    }
    sender_close(&s);
    return NULL;
}

typedef struct lat_stat {
    size_t n;
    double p50, p99, max, rate; /* ms; ms; ms; ACKs/s */
} lat_stat_t;

/* The probe's ACKs of SENDs sent in [from, to) (us). */
static lat_stat_t probe_stat(const probe_t *p, int64_t from, int64_t to)
{
    lat_stat_t st = {0};
    int64_t *v = malloc((p->n + 1) * sizeof *v);
    if (!v)
        return st;
    for (size_t i = 0; i < p->n; i++)
        if (p->t_sent[i] >= from && p->t_sent[i] < to)
            v[st.n++] = p->lat[i];
    qsort(v, st.n, sizeof *v, cmp_i64);
    if (st.n) {
        st.p50 = v[st.n / 2] / 1000.0;
        st.p99 = v[st.n * 99 / 100] / 1000.0;
        st.max = v[st.n - 1] / 1000.0;
        st.rate = to > from ? (double)st.n * 1e6 / (double)(to - from) : 0;
    }
    free(v);
    return st;
}

/* ---- 2c. watching the store ------------------------------------------------------ */

static int read_counts(store_t *st, uint64_t counts[STORE_CASE_STATES])
{
    store_reader_t *r = NULL;
    int rc = store_reader_open(st, &r);
    if (!rc)
        rc = store_case_counts(r, counts);
    store_reader_close(&r);
    return rc;
}

/* The size of the hub's data file (MiB), 0 if unknown. */
static double data_mib(const char *data_dir)
{
    char path[400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", data_dir);
    return stat(path, &sb) == 0 ? (double)sb.st_size / 1048576.0 : 0;
}

static double mib(long kb)
{
    return kb / 1024.0;
}

/* The sum of `key=` over the hub's log lines with `event=NAME `. */
static long long log_sum(const th_hub_t *h, const char *event, const char *key, long long *lines,
                         long long *max)
{
    FILE *f = fopen(h->log_path, "r");
    char line[4096], ev[128], k[64];
    snprintf(ev, sizeof ev, "event=%s ", event);
    snprintf(k, sizeof k, " %s=", key);
    long long sum = 0;
    *lines = 0;
    *max = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, ev), *v = p ? strstr(p, k) : NULL;
        if (!v)
            continue;
        long long x = atoll(v + strlen(k));
        sum += x;
        ++*lines;
        if (x > *max)
            *max = x;
    }
    if (f)
        fclose(f);
    return sum;
}

/* One ingest point of `item` requests on a fresh hub, stopped after it;
 * with `keep`, the hub is left running there (RssAnon just started in
 * *cold_kb, after the ingest in *after_kb). 0, or -1 (no hub kept). */
static int ingest_point(const char *item, uint8_t tag, int seconds, bench_result_t *r,
                        th_hub_t *keep, long *cold_kb, long *after_kb)
{
    th_hub_t local, *h = keep ? keep : &local;
    memset(r, 0, sizeof *r);
    if (start_case_hub(h) != 0)
        return -1;
    if (cold_kb)
        *cold_kb = bench_rss_anon_kb(h->pid);
    int ok = ingest_requests(h, item, tag, seconds, r) == 0;
    if (after_kb)
        *after_kb = bench_rss_anon_kb(h->pid);
    if (ok && strcmp(item, CASE_ITEM) == 0) {
        uint64_t counts[STORE_CASE_STATES] = {0};
        char data[320], err[256];
        store_t *st = NULL;
        snprintf(data, sizeof data, "%s/hub-data", h->dir);
        if (store_open_reader(data, &st, err, sizeof err) == 0 && read_counts(st, counts) == 0 &&
            counts[STORE_CASE_OPEN] < r->acked)
            printf("  (only %llu cases open after %llu requests ACKed)\n",
                   (unsigned long long)counts[STORE_CASE_OPEN], r->acked);
        store_close(&st);
    }
    if (!keep || !ok) {
        th_hub_stop(h);
        th_hub_cleanup(h);
    }
    return ok ? 0 : -1;
}

/* The run of median rate among those that succeeded; NULL if none did. */
static const bench_result_t *median_run(const bench_result_t *runs, const int *ok, int n)
{
    const bench_result_t *v[ROUNDS];
    int m = 0;
    for (int i = 0; i < n; i++)
        if (ok[i])
            v[m++] = &runs[i];
    for (int i = 1; i < m; i++) /* insertion sort by rate */
        for (int j = i; j > 0 && v[j]->rate < v[j - 1]->rate; j--) {
            const bench_result_t *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return m ? v[m / 2] : NULL;
}

/* ---- the section ----------------------------------------------------------------- */

void section_cases(int quick, int seconds)
{
    const long n_open = quick ? OPEN_QUICK : OPEN_FULL;
    const char *label = quick ? "100,000" : "1,000,000"; /* n_open */
    printf("\n== cases (time limits): ingest %d senders x window %d of %d-byte requests, "
           "BENCH-CASE (limit 1d,\n   reminder 16h, grace 1d) against BENCH-PLAIN (no limit); "
           "then %s deadlines passing at once\n",
           SENDERS, WINDOW, BENCH_PAYLOAD, label);
    fflush(stdout);

    /* 1. Rounds of plain and case ingest, each on a fresh hub; the last
     * plain one is kept for part 2. */
    th_hub_t hub;
    long cold_kb = 0, none_kb = 0;
    int rounds = quick ? 1 : ROUNDS, kept = 0;
    bench_result_t runs[2][ROUNDS]; /* [0] plain, [1] cases */
    int ok[2][ROUNDS];
    for (int k = 0; k < rounds; k++) {
        int last = k == rounds - 1;
        for (int j = 0; j < 2; j++) {
            int c = (k % 2 == 0) == (j == 1); /* even rounds: plain first */
            int keep = last && !c;
            ok[c][k] = ingest_point(c ? CASE_ITEM : PLAIN_ITEM, (uint8_t)(0x10 * (c + 1) + k),
                                    seconds, &runs[c][k], keep ? &hub : NULL,
                                    keep ? &cold_kb : NULL, keep ? &none_kb : NULL) == 0;
            kept |= keep && ok[c][k];
        }
    }
    const bench_result_t *med[2];
    for (int c = 0; c < 2; c++)
        med[c] = median_run(runs[c], ok[c], rounds);
    /* The headline ratio is the median of the rounds' own ratios: the two
     * points of a round run back to back, so what the disk does over
     * minutes weighs on both alike. */
    double ratios[ROUNDS], ratio = 0;
    int n_ratios = 0;
    for (int k = 0; k < rounds; k++)
        if (ok[0][k] && ok[1][k] && runs[0][k].rate > 0)
            ratios[n_ratios++] = runs[1][k].rate / runs[0][k].rate;
    for (int i = 1; i < n_ratios; i++) /* insertion sort */
        for (int j = i; j > 0 && ratios[j] < ratios[j - 1]; j--) {
            double t = ratios[j];
            ratios[j] = ratios[j - 1];
            ratios[j - 1] = t;
        }
    if (n_ratios)
        ratio = ratios[n_ratios / 2];
    if (med[1])
        printf("  ingest, requests opening cases  %8.0f msgs/s   p50 %.2f  p99 %.2f ms\n",
               med[1]->rate, med[1]->p50, med[1]->p99);
    else
        printf("  ingest, requests opening cases  failed (see above)\n");
    if (med[0])
        printf("  ingest, same without a case     %8.0f msgs/s   p50 %.2f  p99 %.2f ms   "
               "ratio %.2f (target 0.8)\n",
               med[0]->rate, med[0]->p50, med[0]->p99, ratio);
    else
        printf("  ingest, same without a case     failed (see above)\n");
    if (rounds > 1) {
        printf("  detail: rates are the medians of %d rounds, each point on a fresh hub (plain, "
               "cases;\n          cases, plain; ...), the ratio the median of the rounds' "
               "ratios:\n          cases msgs/s",
               rounds);
        for (int k = 0; k < rounds; k++)
            printf(" %8.0f", ok[1][k] ? runs[1][k].rate : 0.0);
        printf("\n          plain msgs/s");
        for (int k = 0; k < rounds; k++)
            printf(" %8.0f", ok[0][k] ? runs[0][k].rate : 0.0);
        printf("\n          ratio       ");
        for (int k = 0; k < rounds; k++)
            printf(" %8.2f", ok[0][k] && ok[1][k] && runs[0][k].rate > 0
                                 ? runs[1][k].rate / runs[0][k].rate
                                 : 0.0);
        printf("\n");
    }
    fflush(stdout);
    if (!kept)
        return;

    /* 2. The first hub, warm, nothing open: open n_open cases. */
    char data[320], err[256];
    snprintf(data, sizeof data, "%s/hub-data", hub.dir);
    store_t *st = NULL;
    if (store_open_reader(data, &st, err, sizeof err) != 0) {
        printf("  cannot read the hub's store: %s\n", err);
        th_hub_cleanup(&hub);
        return;
    }
    void *ctx = zmq_ctx_new();
    double open_s = 0;
    long opened = open_cases(&hub, ctx, n_open, &open_s);
    long open_kb = bench_rss_anon_kb(hub.pid);
    uint64_t counts[STORE_CASE_STATES] = {0};
    read_counts(st, counts);
    printf("  opened %ld cases (%d x %d requests, ACKed) in %.1f s = %.0f/s; %llu open in the "
           "store\n",
           opened, SENDERS, WINDOW, open_s, open_s > 0 ? opened / open_s : 0,
           (unsigned long long)counts[STORE_CASE_OPEN]);
    fflush(stdout);
    if (opened != n_open) {
        printf("  opening the cases failed\n");
        goto done;
    }

    /* The probe, then the jump, then watch the store until all expired. */
    probe_t pr = {.ctx = ctx, .endpoint = hub.endpoint};
    pr.t_sent = malloc(PROBE_SAMPLES * sizeof *pr.t_sent);
    pr.lat = malloc(PROBE_SAMPLES * sizeof *pr.lat);
    pthread_t tid;
    if (!pr.t_sent || !pr.lat || pthread_create(&tid, NULL, probe_loop, &pr) != 0) {
        printf("  cannot start the probe sender\n");
        free(pr.t_sent);
        free(pr.lat);
        goto done;
    }
    while (atomic_load(&pr.welcomed) == 0)
        sleep_ms(5);
    int64_t t_probe = now_us();
    sleep_ms(PROBE_BEFORE_S * 1000);
    uint64_t expired0 = counts[STORE_CASE_EXPIRED];
    long peak_kb = bench_rss_anon_kb(hub.pid);
    double file_before = data_mib(data);
    int64_t t_jump = now_us(), t_first = 0, t_done = 0;
    th_hub_clock_set(&hub, JUMP_MS);
    uint64_t expired = expired0;
    while (now_us() - t_jump < FIRE_TIMEOUT_S * 1000000LL) {
        sleep_ms(WATCH_MS);
        long kb = bench_rss_anon_kb(hub.pid);
        if (kb > peak_kb)
            peak_kb = kb;
        if (read_counts(st, counts) != 0)
            continue;
        expired = counts[STORE_CASE_EXPIRED];
        if (!t_first && expired > expired0)
            t_first = now_us();
        if (expired - expired0 >= (uint64_t)n_open) {
            t_done = now_us();
            break;
        }
    }
    int64_t t_end = t_done ? t_done : now_us();
    sleep_ms(1000); /* a second after, for the probe's figures after the firing */
    long after_kb = bench_rss_anon_kb(hub.pid);
    double file_after = data_mib(data);
    pr.stop = 1;
    pthread_join(tid, NULL);
    int64_t t_stop = now_us();
    lat_stat_t before = probe_stat(&pr, t_probe + 500000, t_jump);
    lat_stat_t during = probe_stat(&pr, t_jump, t_end);
    lat_stat_t after = probe_stat(&pr, t_end, t_stop - 100000);
    free(pr.t_sent);
    free(pr.lat);

    double fire_s = (double)(t_end - t_jump) / 1e6;
    uint64_t fired = expired - expired0;
    printf("  %s deadlines passing at once: %s in %.1f s = %.0f/s; ACK p99 during firing %.1f ms "
           "(before: %.1f ms); anon memory %.0f MiB (no case %.0f MiB, %s open %.0f MiB) ratio "
           "%.2f\n",
           label, t_done ? "fired" : "NOT all fired", fire_s, fire_s > 0 ? fired / fire_s : 0,
           during.p99, before.p99, mib(peak_kb), mib(none_kb), quick ? "100k" : "1M", mib(open_kb),
           none_kb > 0 ? (double)peak_kb / (double)none_kb : 0);
    printf("  detail: %llu of %ld expired; the first %.0f ms after the jump; probe (1 sender x "
           "window %d, plain pushes):\n"
           "          before  %6.0f ACKs/s  p50 %.2f  p99 %.2f  max %.1f ms\n"
           "          during  %6.0f ACKs/s  p50 %.2f  p99 %.2f  max %.1f ms\n"
           "          after   %6.0f ACKs/s  p50 %.2f  p99 %.2f  max %.1f ms\n",
           (unsigned long long)fired, n_open, t_first ? (double)(t_first - t_jump) / 1000 : -1.0,
           PROBE_WINDOW, before.rate, before.p50, before.p99, before.max, during.rate, during.p50,
           during.p99, during.max, after.rate, after.p50, after.p99, after.max);
    printf("          RssAnon just started %.0f MiB, after the plain ingest (no case) %.0f MiB, "
           "%s open %.0f MiB (%.2fx), peak while firing %.0f MiB, a second after %.0f MiB\n",
           mib(cold_kb), mib(none_kb), quick ? "100k" : "1M", mib(open_kb),
           none_kb > 0 ? (double)open_kb / (double)none_kb : 0, mib(peak_kb), mib(after_kb));
    {
        long long lines = 0, max = 0;
        long long sum = log_sum(&hub, "hub.cases_fired", "expired", &lines, &max);
        printf("          hub.cases_fired: %lld transactions, %lld expired in them (at most %lld "
               "in one, %.1f ms a transaction); the store's data file %.0f MiB before the jump, "
               "%.0f MiB after (%.0f bytes more per expired case)\n",
               lines, sum, max, lines > 0 ? fire_s * 1000 / (double)lines : 0, file_before,
               file_after, fired ? (file_after - file_before) * 1048576.0 / (double)fired : 0);
    }
    fflush(stdout);
done:
    store_close(&st);
    zmq_ctx_term(ctx);
    th_hub_stop(&hub);
    th_hub_cleanup(&hub);
}
