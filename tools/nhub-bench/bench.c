/*
 * nhub-bench: nhub's figures next to baselines measured in the same run, on
 * the same disk.
 *
 *   ingest    S senders (1, 4, 16) each keeping W SENDs (1, 64) of P-byte
 *             payloads unacknowledged against a real nhubd (default sync:
 *             every ACK is behind an fsync): ACKed msgs/s and ACK latency
 *             p50/p99/p999, and the hub's mean commit batch. Baseline: raw
 *             LMDB durable appends of the same record size committed in
 *             batches of that size.
 *   peers     RabbitMQ (quorum queue, publisher confirms: durable) and NATS
 *             JetStream 2.9 (publish acks before fsync: NOT durable) on the
 *             same work, when their packages are installed (tools/bench-deps.sh).
 *   backlog   the hub's anonymous memory (RssAnon) with 10, 100,000 and
 *             1,000,000 messages queued for an offline region, and the time
 *             to drain the 1,000,000 when the region connects.
 *   scaling   ingest (4 x 64) with 32 and with 1,000 adapters connected.
 *   hostile   ingest (4 x 64) while other peers misbehave: 100 connections
 *             that never say anything, 1,000 clients connecting, saying
 *             HELLO and disconnecting in a loop, and one sending envelopes
 *             at the size limit; the legitimate ACK latency and the hub's
 *             RssAnon. Then one peer writing 1 MiB SENDs without reading
 *             its answers: the hub's peak RssAnon and the others' p99
 *             against the same hub without it. Then the hub in curve mode (signed Ed25519 ingest as
 *             the signed section's): ingest alone, and while the 1,000
 *             clients, each with a random CURVE key the hub does not know,
 *             connect and close 200 ms later; the same figures and the
 *             handshakes the hub refused (event=hub.security_stats).
 *
 *   signatures  Ed25519 and SM2 signs and verifies per second, on one thread
 *             and on the hub's signature-check threads: the ceiling of
 *             signed ingest here, as a ratio to the unsigned 4 x 64 figure.
 *   signed    ingest (4 x 64) with the hub in its production security mode
 *             (curve: CURVE clients, the test catalogue, every envelope
 *             signed, Ed25519 then SM2) next to the same ingest in the
 *             development mode (insecure-plaintext, unsigned) of the same run.
 *   window    the duplicate window under steady load, with the hub in this
 *             process on an injected wall clock: a region sending (1 in 10
 *             SENDs refused for good, UNKNOWN_REGION), another confirming,
 *             one window of simulated time per phase over several windows;
 *             after each phase the window's entries and pages and the
 *             journal's. Baseline: the same figures after the first window.
 *   relay     libnhub end to end: region A's adapter sends batches of 64
 *             (nhub_send_batch) through a real nhubd to region B's adapter,
 *             which confirms in batches (nhub_confirm_batch), every hop
 *             fsynced: confirmed msgs/s at B, latency p50/p99. Baseline: a
 *             raw ZeroMQ DEALER -> ROUTER -> DEALER relay with acks and the
 *             same window, storing nothing.
 *   cases     cases with time limits (cases.c): ingest (4 x 64) of requests
 *             that open a case next to the same requests of an item without
 *             a time limit; then 1,000,000 open cases whose deadlines all
 *             pass at once (the hub's clock moved past their expiry): cases
 *             expired per second, a plain sender's ACK p99 meanwhile, and the
 *             hub's peak RssAnon against the figure with no case open.
 *
 *   adapter   nhub-adapter run (adapter.c): JSON API submissions through the
 *             daemon with 1 and 4 client threads (submissions/s, 202 latency,
 *             end to end until ACKed) and spool files per second, each
 *             against libnhub's own nhub_send (one at a time, and batches of
 *             64) against the same hub in the same run.
 *
 *   audit     the transparency log at a national journal's size (audit.c):
 *             10,000,000 records written through the store's append, then
 *             inclusion and consistency proof times in that tree and
 *             nhub-audit verify's records per second.
 *
 *   sealed    payload privacy at rest (sealed.c): ingest (4 x 64) with
 *             envelopes stored as received, sealed with AES-256-GCM and with
 *             SM4-CTR + HMAC-SM3, as ratios to the clear point of the same
 *             round; seal and open microseconds per envelope.
 *
 *   nhub-bench [--quick]
 *              [--only
 * ingest|peers|backlog|scaling|hostile|window|signatures|signed|relay|payloads|cases|priority|adapter|audit|sealed|retention]
 *              [--seconds D]
 *
 * --quick runs a reduced set (for a smoke test): fewer configurations,
 * 100,000 backlog, 2 s per point.
 */
#include "adapter.h"
#include "audit.h"
#include "bench.h"
#include "cases.h"
#include "priority.h"
#include "cfg.h"
#include "harness.h"
#include "hub.h"
#include "log.h"
#include "keys.h"
#include "peers.h"
#include "payloads.h"
#include "relay.h"
#include "sealed.h"
#include "retention.h"
#include "signatures.h"
#include "signed.h"
#include "store.h"
#include "wire.h"

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#define MAX_CLIENTS 1100

typedef struct client {
    void *sock;
    uint8_t stream_id[16];
    uint64_t next_sseq;
    int64_t *sent_at; /* by stream_seq % window */
    const char *src, *dst;
    const bench_feed_t *feed; /* NULL: unsigned envelopes made by send_one */
    int index;                /* the sender's number in its feed */
    int nacked;               /* stopped sending at a NACK */
} client_t;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Time-ordered msg_ids, as libnhub makes them. */
void bench_make_id(uint8_t id[16], const uint8_t tag[2], uint64_t q)
{
    uint64_t ms = (uint64_t)(now_us() / 1000);
    for (int b = 0; b < 6; b++)
        id[b] = (uint8_t)(ms >> (40 - 8 * b));
    memcpy(id + 6, tag, 2);
    for (int b = 0; b < 8; b++)
        id[8 + b] = (uint8_t)(q >> (56 - 8 * b));
}

size_t bench_envelope(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                      const char *dst, size_t payload)
{
    return bench_envelope_item(buf, cap, id, src, dst, "BENCH-ITEM",
                               NHUB__WIRE__V1__KIND__KIND_PUSH, payload);
}

size_t bench_envelope_item(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                           const char *dst, const char *item, int kind, size_t payload)
{
    uint8_t body[4096];
    if (payload > sizeof body)
        return 0;
    memset(body, 'x', payload);
    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id.data = (uint8_t *)id;
    e.msg_id.len = 16;
    e.source = (char *)src;
    e.destination = (char *)dst;
    e.item = (char *)item;
    e.kind = (Nhub__Wire__V1__Kind)kind;
    e.created_ms = 1;
    e.payload_type = "nhub.bench.v1.Blob";
    e.payload.data = body;
    e.payload.len = payload;
    if (protobuf_c_message_get_packed_size(&e.base) > cap)
        return 0;
    return protobuf_c_message_pack(&e.base, buf);
}

/* Send c's next message: 0 (or -1 from wire_send), 1 if its feed has run out. */
static int send_one(client_t *c, int window, int payload)
{
    uint8_t id[16], buf[5000];
    uint64_t q = c->next_sseq;
    wire_send_t snd = NHUB__WIRE__V1__SEND__INIT;
    snd.stream_seq = q;
    if (c->feed) {
        if (c->feed->next(c->feed->arg, c->index, q, &snd) != 0)
            return 1;
    } else {
        bench_make_id(id, c->stream_id, q);
        snd.envelope.data = buf;
        snd.envelope.len = bench_envelope(buf, sizeof buf, id, c->src, c->dst, (size_t)payload);
    }
    if (c->sent_at)
        c->sent_at[q % (uint64_t)window] = now_us();
    c->next_sseq++;
    return wire_send(c->sock, NULL, 0, WIRE_SEND, &snd.base, 0);
}

/* `feed` (may be NULL) is where sender `index` gets its SENDs, and with
 * the feed's hub_key the client speaks CURVE with its client_keys[index]. */
static void client_open(client_t *c, void *ctx, const char *endpoint, const char *src,
                        const char *dst, uint32_t credit, int window, const bench_feed_t *feed,
                        int index)
{
    memset(c, 0, sizeof *c);
    c->sock = zmq_socket(ctx, ZMQ_DEALER);
    int z = 0, hwm = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &z, sizeof z);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (feed && feed->hub_key) {
        zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, feed->hub_key, KEYS_Z85_LEN + 1);
        zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, feed->client_keys[index][0], KEYS_Z85_LEN + 1);
        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, feed->client_keys[index][1], KEYS_Z85_LEN + 1);
    }
    zmq_connect(c->sock, endpoint);
    c->feed = feed;
    c->index = index;
    for (int b = 0; b < 16; b++)
        c->stream_id[b] = (uint8_t)rand();
    c->next_sseq = 1;
    c->src = src;
    c->dst = dst;
    c->sent_at = window ? calloc((size_t)window, sizeof(int64_t)) : NULL;
    wire_hello_t h = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t v = 1;
    h.region = (char *)src;
    h.protocol_versions = &v;
    h.n_protocol_versions = 1;
    h.credit = credit;
    h.stream_id.data = c->stream_id;
    h.stream_id.len = 16;
    wire_send(c->sock, NULL, 0, WIRE_HELLO, &h.base, 0);
}

static void client_close(client_t *c)
{
    zmq_close(c->sock);
    free(c->sent_at);
    c->sock = NULL;
    c->sent_at = NULL;
}

/* Read one message from `c` if waiting; returns its command (0 if none). */
static int client_read(client_t *c, ProtobufCMessage **m)
{
    return bench_read(c->sock, m);
}

int bench_read(void *sock, ProtobufCMessage **m)
{
    wire_frames_t f;
    *m = NULL;
    if (wire_recv(sock, &f, ZMQ_DONTWAIT) != 0)
        return 0;
    int cmd = 0;
    if (f.n_frames != 2 ||
        wire_header_parse(wire_frame_data(&f, 0), wire_frame_len(&f, 0), &cmd, NULL) != 0 ||
        wire_decode(wire_body_descriptor(cmd), wire_frame_data(&f, 1), wire_frame_len(&f, 1),
                    1 << 22, m) != 0)
        cmd = -1;
    wire_frames_close(&f);
    return cmd;
}

double bench_mean_batch(const th_hub_t *hub)
{
    FILE *f = fopen(hub->log_path, "r");
    char line[4096];
    double batch = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "event=hub.stats ");
        char *b = p ? strstr(p, "mean_batch=") : NULL;
        if (b)
            batch = atof(b + 11);
    }
    if (f)
        fclose(f);
    return batch;
}

int bench_start_hub(th_hub_t *hub)
{
    if (th_hub_start(hub) != 0) {
        fprintf(stderr, "nhub-bench: cannot start nhubd (is it built? NHUB_BIN=%s); its log:\n",
                getenv("NHUB_BIN") ? getenv("NHUB_BIN") : "build/bin");
        th_log_dump(hub, stderr);
        return -1;
    }
    return 0;
}

static int start_hub(th_hub_t *hub, const char *limits)
{
    if (th_hub_init(hub, limits) != 0) {
        fprintf(stderr, "nhub-bench: cannot make a temporary directory\n");
        return -1;
    }
    return bench_start_hub(hub);
}

/* Count a NACK in r (the first is kept and printed); c sends no more. */
static void note_nack(bench_result_t *r, client_t *c, const wire_nack_t *n)
{
    if (r->nacks++ == 0) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &nhub__wire__v1__nack_code__descriptor, (int)n->code);
        r->nack_code = (int)n->code;
        r->nack_name = v ? v->name : "?";
        snprintf(r->nack_text, sizeof r->nack_text, "%s", n->text);
        fprintf(stderr, "nhub-bench: NACK %s (%d) to sender %s: %s\n", r->nack_name, r->nack_code,
                c->src, n->text);
    }
    c->nacked = 1;
}

/* send_one, unless c stopped at a NACK. Returns 0 if c's feed has run out
 * (noted in r, *end set: the run stops there), else 1. */
static int send_next(client_t *c, int window, bench_result_t *r, int64_t *end)
{
    if (c->nacked || send_one(c, window, BENCH_PAYLOAD) != 1)
        return 1;
    r->ran_out = 1;
    *end = now_us();
    return 0;
}

int bench_ingest(th_hub_t *hub, int senders, int window, int seconds, int idle,
                 const bench_feed_t *feed, bench_result_t *r)
{
    memset(r, 0, sizeof *r);
    void *ctx = zmq_ctx_new();
    int max_sockets = MAX_CLIENTS + 64;
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, max_sockets);
    client_t *c = calloc((size_t)(senders + idle), sizeof *c);
    zmq_pollitem_t *pi = calloc((size_t)senders, sizeof *pi);
    size_t cap = 1 << 23, n_lat = 0;
    int64_t *lat = malloc(cap * sizeof *lat);
    for (int i = 0; i < senders; i++) {
        client_open(&c[i], ctx, hub->endpoint, th_regions[BENCH_SOURCE(i)],
                    th_regions[BENCH_DESTINATION(i)], 0, window, feed, i);
        pi[i] = (zmq_pollitem_t){c[i].sock, 0, ZMQ_POLLIN, 0};
    }
    for (int i = 0; i < idle; i++)
        client_open(&c[senders + i], ctx, hub->endpoint, th_regions[i % 32], NULL, 0, 0, NULL, 0);
    int64_t start = 0, end = 0;
    unsigned long long total = 0;
    int running = 1, welcomed = 0, active = senders;
    int64_t deadline = th_now_ms() + 60000 + seconds * 1000LL;
    while (running && th_now_ms() < deadline) {
        if (zmq_poll(pi, senders, 1000) < 0)
            break;
        for (int i = 0; i < senders; i++) {
            ProtobufCMessage *m;
            int cmd;
            while ((cmd = client_read(&c[i], &m)) != 0) {
                if (cmd == WIRE_WELCOME) {
                    if (++welcomed == senders)
                        start = now_us();
                    for (int w = 0; w < window && running; w++)
                        running = send_next(&c[i], window, r, &end);
                } else if (cmd == WIRE_ACK) {
                    wire_ack_t *a = (wire_ack_t *)m;
                    int64_t t = now_us();
                    if (start && n_lat < cap)
                        lat[n_lat++] = t - c[i].sent_at[a->stream_seq % (uint64_t)window];
                    total += start != 0;
                    if (start && t - start >= seconds * 1000000LL) {
                        running = 0;
                        end = t;
                    } else if (!send_next(&c[i], window, r, &end)) {
                        running = 0;
                    }
                } else if (cmd == WIRE_NACK) {
                    active -= !c[i].nacked;
                    note_nack(r, &c[i], (wire_nack_t *)m);
                    if (active == 0)
                        running = 0;
                }
                wire_free(&m);
            }
        }
    }
    for (int i = 0; i < senders + idle; i++)
        client_close(&c[i]);
    zmq_ctx_term(ctx);
    if (!end)
        end = now_us();
    double secs = start ? (double)(end - start) / 1e6 : 0;
    qsort(lat, n_lat, sizeof *lat, cmp_i64);
    r->acked = total;
    r->rate = secs > 0 ? (double)total / secs : 0;
    r->p50 = n_lat ? lat[n_lat / 2] / 1000.0 : 0;
    r->p99 = n_lat ? lat[n_lat * 99 / 100] / 1000.0 : 0;
    r->p999 = n_lat ? lat[n_lat * 999 / 1000] / 1000.0 : 0;
    free(lat);
    free(pi);
    free(c);
    return total > 0 && r->nacks == 0 ? 0 : -1;
}

/* Raw LMDB: `total` appends of `size` bytes, committed every `batch`. */
static double lmdb_baseline(const char *dir, int size, int batch, int total)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mkdir(dir, 0700);
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, (size_t)1 << 30) ||
        mdb_env_open(env, dir, 0, 0600))
        return -1;
    uint8_t *val = calloc(1, (size_t)size);
    int64_t t0 = now_us();
    uint64_t key = 0;
    for (int done = 0; done < total;) {
        if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi))
            break;
        for (int i = 0; i < batch && done < total; i++, done++) {
            uint8_t k[8];
            key++;
            for (int b = 0; b < 8; b++)
                k[b] = (uint8_t)(key >> (56 - 8 * b));
            MDB_val mk = {8, k}, mv = {(size_t)size, val};
            mdb_put(txn, dbi, &mk, &mv, MDB_APPEND);
        }
        if (mdb_txn_commit(txn))
            break;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    free(val);
    mdb_env_close(env);
    return (double)total / secs;
}

/* A journal record of a 512-byte message is about this size. */
#define RECORD_BYTES (BENCH_PAYLOAD + 180)

/* The 4 x 64 figure of the last section_ingest run, for later ratios. */
static double g_ingest_4x64;

static void section_ingest(int quick, int seconds)
{
    static const int senders_set[] = {1, 4, 16}, windows[] = {1, 64};
    printf(
        "\n== durable ingest: ACKed msgs/s, ACK latency; baseline raw LMDB at the hub's batch\n");
    printf("%8s %7s %10s %8s %8s %8s %8s %12s %7s\n", "senders", "window", "msgs/s", "p50 ms",
           "p99 ms", "p999 ms", "batch", "raw LMDB/s", "ratio");
    for (size_t si = 0; si < 3; si++) {
        for (size_t wi = 0; wi < 2; wi++) {
            int s = senders_set[si], w = windows[wi];
            if (quick && !(s == 4 && w == 64) && !(s == 1 && w == 1))
                continue;
            th_hub_t hub;
            bench_result_t r;
            memset(&r, 0, sizeof r);
            if (start_hub(&hub, "  batch_max: 4096\n") != 0)
                return;
            int ok = bench_ingest(&hub, s, w, seconds, 0, NULL, &r);
            th_hub_stop(&hub);
            r.batch = bench_mean_batch(&hub);
            int b = r.batch >= 1 ? (int)(r.batch + 0.5) : 1;
            char dir[400];
            snprintf(dir, sizeof dir, "%s/baseline", hub.dir);
            int n = b * 200 < 2000 ? 2000 : b * 200 > 100000 ? 100000 : b * 200;
            double base = lmdb_baseline(dir, RECORD_BYTES, b, n);
            th_hub_cleanup(&hub);
            if (ok != 0) {
                printf("%8d %7d  failed (see above)\n", s, w);
                continue;
            }
            if (s == 4 && w == 64)
                g_ingest_4x64 = r.rate;
            printf("%8d %7d %10.0f %8.2f %8.2f %8.2f %8.1f %12.0f %7.2f\n", s, w, r.rate, r.p50,
                   r.p99, r.p999, r.batch, base, base > 0 ? r.rate / base : 0);
            fflush(stdout);
        }
    }
}

static void print_peer(const char *name, const peer_result_t *p, double nhub_rate)
{
    if (!p->ran) {
        printf("  %-22s skipped: %s\n", name, p->skipped);
        return;
    }
    printf("  %-22s %10.0f msgs/s  p50 %.2f  p99 %.2f  p999 %.2f ms  %s  nhub/peer %.2f\n", name,
           p->msgs_per_s, p->p50_ms, p->p99_ms, p->p999_ms, p->durable ? "durable" : "NON-DURABLE",
           p->msgs_per_s > 0 ? nhub_rate / p->msgs_per_s : 0);
    printf("  %-22s config: %s\n", "", p->config);
}

static void section_peers(int seconds)
{
    printf("\n== peers on the same work (4 publishers x window 64, %d-byte payloads)\n",
           BENCH_PAYLOAD);
    th_hub_t hub;
    bench_result_t r;
    memset(&r, 0, sizeof r);
    if (start_hub(&hub, "  batch_max: 4096\n") != 0)
        return;
    bench_ingest(&hub, 4, 64, seconds, 0, NULL, &r);
    th_hub_stop(&hub);
    printf("  %-22s %10.0f msgs/s  p50 %.2f  p99 %.2f  p999 %.2f ms  durable\n", "nhub", r.rate,
           r.p50, r.p99, r.p999);
    peer_params_t pp = {4, 64, BENCH_PAYLOAD, seconds, hub.dir};
    peer_result_t rabbit, nats;
    memset(&rabbit, 0, sizeof rabbit);
    memset(&nats, 0, sizeof nats);
    peer_rabbitmq_run(&pp, &rabbit);
    print_peer("RabbitMQ quorum+confirm", &rabbit, r.rate);
    peer_nats_run(&pp, &nats);
    print_peer("NATS JetStream 2.9", &nats, r.rate);
    th_hub_cleanup(&hub);
}

long bench_rss_anon_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "RssAnon:", 8) == 0)
            kb = atol(line + 8);
    if (f)
        fclose(f);
    return kb;
}

/* Queue `n` more messages for the offline region 660000 from one sender. */
static int fill_backlog(client_t *c, int n)
{
    const int window = 256;
    int sent = 0, acked = 0;
    zmq_pollitem_t pi = {c->sock, 0, ZMQ_POLLIN, 0};
    while (sent < n && sent < window) {
        send_one(c, window, BENCH_PAYLOAD);
        sent++;
    }
    int64_t deadline = th_now_ms() + 600000;
    while (acked < n && th_now_ms() < deadline) {
        if (zmq_poll(&pi, 1, 1000) < 0)
            break;
        ProtobufCMessage *m;
        int cmd;
        while ((cmd = client_read(c, &m)) != 0) {
            if (cmd == WIRE_ACK) {
                acked++;
                if (sent < n) {
                    send_one(c, window, BENCH_PAYLOAD);
                    sent++;
                }
            } else if (cmd == WIRE_NACK) {
                fprintf(stderr, "nhub-bench: NACK: %s\n", ((wire_nack_t *)m)->text);
                wire_free(&m);
                return -1;
            }
            wire_free(&m);
        }
    }
    return acked == n ? 0 : -1;
}

/* Connect `region` and confirm everything; returns seconds taken. */
static double drain_backlog(const char *endpoint, void *ctx, const char *region, int n)
{
    client_t rx;
    client_open(&rx, ctx, endpoint, region, NULL, 4096, 0, NULL, 0);
    zmq_pollitem_t pi = {rx.sock, 0, ZMQ_POLLIN, 0};
    int64_t t0 = now_us(), deadline = th_now_ms() + 600000;
    int got = 0;
    while (got < n && th_now_ms() < deadline) {
        if (zmq_poll(&pi, 1, 1000) < 0)
            break;
        ProtobufCMessage *m;
        int cmd;
        while ((cmd = client_read(&rx, &m)) != 0) {
            if (cmd == WIRE_DELIVER) {
                wire_deliver_t *d = (wire_deliver_t *)m;
                wire_envelope_t *e = NULL;
                if (d->attempt == 1 &&
                    wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope.data,
                                d->envelope.len, 1 << 20, (ProtobufCMessage **)&e) == 0) {
                    wire_delivered_t ok = NHUB__WIRE__V1__DELIVERED__INIT;
                    ok.msg_id = e->msg_id;
                    ok.dseq = d->dseq;
                    wire_send(rx.sock, NULL, 0, WIRE_DELIVERED, &ok.base, 0);
                    got++;
                }
                wire_free((ProtobufCMessage **)&e);
            }
            wire_free(&m);
        }
    }
    double secs = (double)(now_us() - t0) / 1e6;
    client_close(&rx);
    return got == n ? secs : -1;
}

/* Open a sender from `src` to `dst` and wait for its WELCOME. */
static void open_sender(client_t *c, void *ctx, const char *endpoint, const char *src,
                        const char *dst)
{
    client_open(c, ctx, endpoint, src, dst, 0, 256, NULL, 0);
    ProtobufCMessage *m = NULL;
    zmq_pollitem_t pi = {c->sock, 0, ZMQ_POLLIN, 0};
    while (zmq_poll(&pi, 1, 10000) > 0 && client_read(c, &m) != WIRE_WELCOME)
        wire_free(&m);
    wire_free(&m);
}

static void section_backlog(int quick)
{
    const int steps[] = {10, 100000, 1000000};
    int last = quick ? 2 : 3;
    printf("\n== backlog for an offline region: hub RssAnon, then drain\n");
    th_hub_t hub;
    if (start_hub(&hub, "  batch_max: 4096\n  map_size: 1GiB\n") != 0)
        return;
    void *ctx = zmq_ctx_new();
    client_t tx;
    open_sender(&tx, ctx, hub.endpoint, "110000", "660000");
    long cold_kb = 0, base_kb = 0, kb = 0;
    int queued = 0;
    for (int i = 0; i < last; i++) {
        if (fill_backlog(&tx, steps[i] - queued) != 0) {
            printf("  filling the backlog failed\n");
            break;
        }
        queued = steps[i];
        kb = bench_rss_anon_kb(hub.pid);
        if (i == 0) {
            /* A hub just started has not yet grown its stages, its
             * store's page buffers and its allocator's arenas to their
             * working size. Warm it with 100,000 messages to another
             * region, delivered and confirmed (none stays queued), and
             * take the 10-message base again: the ratios below are the
             * cost of the backlog itself. */
            cold_kb = kb;
            client_t w;
            open_sender(&w, ctx, hub.endpoint, "120000", "650000");
            int warm = fill_backlog(&w, 100000);
            client_close(&w);
            if (warm != 0 || drain_backlog(hub.endpoint, ctx, "650000", 100000) < 0) {
                printf("  warming the hub up failed\n");
                break;
            }
            kb = base_kb = bench_rss_anon_kb(hub.pid);
            printf("  %9d queued: RssAnon %6ld KiB just started, %ld KiB once warm (100,000 "
                   "other messages delivered)\n",
                   queued, cold_kb, kb);
            continue;
        }
        printf("  %9d queued: RssAnon %6ld KiB (%.2fx the warm 10-message figure, %.2fx the "
               "cold one)\n",
               queued, kb, base_kb > 0 ? (double)kb / (double)base_kb : 0,
               cold_kb > 0 ? (double)kb / (double)cold_kb : 0);
        fflush(stdout);
    }
    client_close(&tx);
    double secs = drain_backlog(hub.endpoint, ctx, "660000", queued);
    if (secs > 0)
        printf("  drained %d in %.1f s (%.0f msgs/s delivered and confirmed)\n", queued, secs,
               queued / secs);
    else
        printf("  drain did not complete\n");
    /* The drain's own cost: DELIVERs in flight to a receiver with a credit
     * of 4,096, which the allocator keeps once it has had them. */
    printf("  after the drain, nothing queued: RssAnon %ld KiB\n", bench_rss_anon_kb(hub.pid));
    printf("  target: %d within 1.5x of the (warm) 10-message figure: %s (%.2fx)\n", queued,
           base_kb > 0 && (double)kb <= 1.5 * (double)base_kb ? "met" : "NOT met",
           base_kb > 0 ? (double)kb / (double)base_kb : 0);
    zmq_ctx_term(ctx);
    th_hub_stop(&hub);
    th_hub_cleanup(&hub);
}

static void section_scaling(int seconds)
{
    const int idle[] = {32, 1000};
    printf("\n== scaling: ingest (4 senders x window 64) with adapters connected\n");
    for (int i = 0; i < 2; i++) {
        th_hub_t hub;
        bench_result_t r;
        memset(&r, 0, sizeof r);
        if (start_hub(&hub, "  batch_max: 4096\n") != 0)
            return;
        int ok = bench_ingest(&hub, 4, 64, seconds, idle[i], NULL, &r);
        th_hub_stop(&hub);
        th_hub_cleanup(&hub);
        if (ok == 0)
            printf("  %5d connected: %10.0f msgs/s  p50 %.2f  p99 %.2f ms\n", idle[i] + 4, r.rate,
                   r.p50, r.p99);
        else
            printf("  %5d connected: failed\n", idle[i] + 4);
        fflush(stdout);
    }
}

/* A churning client with no answer from the hub closes after this (us). */
#define CHURN_WAIT_PLAIN 2000000
#define CHURN_WAIT_CURVE 200000

/* For a curve hub: a random CURVE keypair for each churning client. */
static int churn_keys(const char *hub_key, bench_feed_t *feed, char (**z85)[2][KEYS_Z85_LEN + 1])
{
    const char *(*keys)[2] = calloc(BENCH_CHURN_CLIENTS, sizeof *keys);
    *z85 = calloc(BENCH_CHURN_CLIENTS, sizeof **z85);
    if (!keys || !*z85) {
        free(keys);
        return -1;
    }
    for (int i = 0; i < BENCH_CHURN_CLIENTS; i++) {
        if (zmq_curve_keypair((*z85)[i][0], (*z85)[i][1]) != 0) {
            free(keys);
            return -1;
        }
        keys[i][0] = (*z85)[i][0];
        keys[i][1] = (*z85)[i][1];
    }
    *feed = (bench_feed_t){.hub_key = hub_key, .client_keys = keys};
    return 0;
}

/* Passes over the pool never wait on one client (see bench.h). */
void *bench_churn_loop(void *arg)
{
    bench_churn_t *c = arg;
    client_t *pool = calloc(BENCH_CHURN_CLIENTS, sizeof *pool);
    int64_t *opened = calloc(BENCH_CHURN_CLIENTS, sizeof *opened);
    char(*z85)[2][KEYS_Z85_LEN + 1] = NULL;
    bench_feed_t feed = {0};
    int64_t wait = c->hub_key ? CHURN_WAIT_CURVE : CHURN_WAIT_PLAIN;
    if (!pool || !opened || (c->hub_key && churn_keys(c->hub_key, &feed, &z85) != 0)) {
        fprintf(stderr, "nhub-bench: cannot set up the churning clients\n");
        goto done;
    }
    for (unsigned long pass = 0; !c->stop; pass++) {
        int64_t now = now_us();
        for (int i = 0; i < BENCH_CHURN_CLIENTS && !c->stop; i++) {
            client_t *cl = &pool[i];
            if (!cl->sock) {
                client_open(cl, c->ctx, c->endpoint, th_regions[(pass + (unsigned long)i) % 32],
                            NULL, 8, 0, c->hub_key ? &feed : NULL, i);
                opened[i] = now;
                c->attempts += cl->sock != NULL; /* none while closed ones are not yet reaped */
                continue;
            }
            ProtobufCMessage *m = NULL;
            int answered = 0;
            int cmd;
            while ((cmd = client_read(cl, &m)) != 0) {
                answered |= cmd == WIRE_WELCOME || cmd == WIRE_NACK;
                wire_free(&m);
            }
            if (answered || now - opened[i] > wait) {
                client_close(cl);
                c->cycles += answered;
            }
        }
        struct timespec pause = {0, 1000000}; /* a pass is ~1,000 non-blocking reads: pace it */
        nanosleep(&pause, NULL);
    }
    for (int i = 0; i < BENCH_CHURN_CLIENTS; i++)
        if (pool[i].sock)
            client_close(&pool[i]);
done:
    free((void *)feed.client_keys);
    free(z85);
    free(pool);
    free(opened);
    return NULL;
}

struct big_sender {
    void *ctx;
    const char *endpoint;
    volatile int stop;
    unsigned long acked;
};

/* An envelope of 1 MiB minus a margin (the default max_frame), id borrowed. */
#define BIG_BODY ((1 << 20) - 1024)
static void big_envelope(wire_envelope_t *e, uint8_t id[16], const char *src, const char *dst)
{
    static uint8_t body[BIG_BODY];
    nhub__wire__v1__envelope__init(e);
    e->msg_id.data = id;
    e->msg_id.len = 16;
    e->source = (char *)src;
    e->destination = (char *)dst;
    e->item = "BENCH-BIG";
    e->kind = NHUB__WIRE__V1__KIND__KIND_PUSH;
    e->payload_type = "nhub.bench.v1.Big";
    e->payload.data = body;
    e->payload.len = BIG_BODY;
}

/* One big envelope at a time, each sent once the last is ACKed. */
static void *big_loop(void *arg)
{
    struct big_sender *b = arg;
    client_t cl;
    client_open(&cl, b->ctx, b->endpoint, "650000", "640000", 0, 1, NULL, 0);
    zmq_pollitem_t pi = {cl.sock, 0, ZMQ_POLLIN, 0};
    while (!b->stop) {
        if (zmq_poll(&pi, 1, 200) <= 0)
            continue;
        ProtobufCMessage *m = NULL;
        int cmd = client_read(&cl, &m);
        wire_free(&m);
        if (cmd == WIRE_WELCOME || cmd == WIRE_ACK) {
            b->acked += cmd == WIRE_ACK;
            uint8_t id[16], *buf = malloc(BIG_BODY + 512);
            bench_make_id(id, cl.stream_id, cl.next_sseq);
            wire_envelope_t e;
            big_envelope(&e, id, "650000", "640000");
            wire_send_t snd = NHUB__WIRE__V1__SEND__INIT;
            snd.stream_seq = cl.next_sseq++;
            snd.envelope.data = buf;
            snd.envelope.len = protobuf_c_message_pack(&e.base, buf);
            wire_send(cl.sock, NULL, 0, WIRE_SEND, &snd.base, 0);
            free(buf);
        }
    }
    client_close(&cl);
    return NULL;
}

/* A peer that writes 1 MiB SENDs as fast as the hub takes them and never
 * reads an answer; it samples the hub's RssAnon as it goes. */
struct flooder {
    void *ctx;
    const char *endpoint;
    pid_t hub_pid;
    volatile int stop;
    unsigned long sent;
    long peak_rss_kb;
};

static void *flood_loop(void *arg)
{
    struct flooder *fl = arg;
    client_t cl;
    client_open(&cl, fl->ctx, fl->endpoint, "630000", "620000", 0, 0, NULL, 0);
    int hwm = 16; /* it queues little itself: the hub is what is pressed */
    zmq_setsockopt(cl.sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    static uint8_t buf[BIG_BODY + 512];
    uint8_t id[16];
    wire_envelope_t e;
    big_envelope(&e, id, "630000", "620000");
    zmq_pollitem_t pi = {cl.sock, 0, ZMQ_POLLOUT, 0};
    while (!fl->stop && fl->sent < 4000) {
        long rss = bench_rss_anon_kb(fl->hub_pid);
        if (rss > fl->peak_rss_kb)
            fl->peak_rss_kb = rss;
        bench_make_id(id, cl.stream_id, cl.next_sseq);
        wire_send_t snd = NHUB__WIRE__V1__SEND__INIT;
        snd.stream_seq = cl.next_sseq;
        snd.envelope.data = buf;
        snd.envelope.len = protobuf_c_message_pack(&e.base, buf);
        if (wire_send(cl.sock, NULL, 0, WIRE_SEND, &snd.base, ZMQ_DONTWAIT) == 0) {
            cl.next_sseq++;
            fl->sent++;
        } else {
            zmq_poll(&pi, 1, 20);
        }
    }
    client_close(&cl);
    return NULL;
}

/* One point of hostile_curve: with or without the churn, what it saw. */
typedef struct curve_side {
    int churn;
    void *ctx;
    pthread_t thread;
    bench_churn_t ch;
    long rss;
    long long refused, failed;
} curve_side_t;

static void curve_started(th_hub_t *hub, const char *hub_key, void *arg)
{
    curve_side_t *s = arg;
    if (!s->churn)
        return;
    s->ctx = zmq_ctx_new();
    zmq_ctx_set(s->ctx, ZMQ_MAX_SOCKETS, 2 * BENCH_CHURN_CLIENTS);
    s->ch = (bench_churn_t){.ctx = s->ctx, .endpoint = hub->endpoint, .hub_key = hub_key};
    if (pthread_create(&s->thread, NULL, bench_churn_loop, &s->ch) != 0)
        s->churn = 0;
}

static void curve_ingested(th_hub_t *hub, void *arg)
{
    curve_side_t *s = arg;
    s->rss = bench_rss_anon_kb(hub->pid);
    if (s->churn) {
        s->ch.stop = 1;
        pthread_join(s->thread, NULL);
    }
    if (s->ctx)
        zmq_ctx_term(s->ctx);
}

static void curve_stopped(th_hub_t *hub, void *arg)
{
    curve_side_t *s = arg;
    s->refused = th_log_value(hub, "hub.security_stats", "auth_refused");
    s->failed = th_log_value(hub, "hub.security_stats", "handshake_failed");
}

/*
 * The hostile section's churn against the hub in its production mode
 * (curve, signed ingest as the signed section's Ed25519 point): ingest
 * alone, then with BENCH_CHURN_CLIENTS clients of keys the hub does not
 * know. `rate`: the plaintext ingest rate, to size the signed envelopes.
 */
static void hostile_curve(int seconds, double rate)
{
    static const char *name[2] = {"curve:", "curve+churn:"};
    curve_side_t side[2] = {{.churn = 0}, {.churn = 1}};
    printf(
        "  the same churn against the hub in curve mode (signed Ed25519 ingest as in the signed\n"
        "  section), %d clients each with a random CURVE key the hub does not know, each\n"
        "  connection closed %d ms after it was opened:\n",
        BENCH_CHURN_CLIENTS, CHURN_WAIT_CURVE / 1000);
    for (int i = 0; i < 2; i++) {
        bench_result_t r;
        char why[200];
        signed_hooks_t hooks = {curve_started, curve_ingested, curve_stopped, &side[i]};
        int ok = signed_curve_point(seconds, rate, &hooks, &r, why, sizeof why) == 0;
        if (!ok) {
            printf("  %-13s ERROR: %s\n", name[i], why);
            continue;
        }
        printf("  %-13s %8.0f msgs/s  p50 %.2f  p99 %.2f  p999 %.2f ms  hub RssAnon %ld KiB  "
               "auth_refused %lld  handshake_failed %lld%s\n",
               name[i], r.rate, r.p50, r.p99, r.p999, side[i].rss, side[i].refused, side[i].failed,
               r.ran_out ? "  (ran out of signed envelopes: ended early)" : "");
        fflush(stdout);
    }
    printf("  meanwhile: %lu connections opened by the churning clients, %lu answered by the hub\n",
           side[1].ch.attempts, side[1].ch.cycles);
}

/*
 * One peer floods the hub with 1 MiB SENDs and reads nothing back, while
 * ingest (4 x 64) runs from others: the hub's peak RssAnon and the others'
 * p99, against the same hub's figures without the flood.
 */
static void hostile_flood(int seconds)
{
    th_hub_t hub;
    bench_result_t calm, flood;
    memset(&calm, 0, sizeof calm);
    memset(&flood, 0, sizeof flood);
    if (start_hub(&hub, "  batch_max: 4096\n") != 0)
        return;
    bench_ingest(&hub, 4, 64, seconds, 0, NULL, &calm);
    long rss_calm = bench_rss_anon_kb(hub.pid);
    void *ctx = zmq_ctx_new();
    struct flooder fl = {.ctx = ctx, .endpoint = hub.endpoint, .hub_pid = hub.pid};
    pthread_t t;
    int64_t t0 = now_us();
    pthread_create(&t, NULL, flood_loop, &fl);
    bench_ingest(&hub, 4, 64, seconds, 0, NULL, &flood);
    fl.stop = 1;
    pthread_join(t, NULL);
    double secs = (double)(now_us() - t0) / 1e6;
    zmq_ctx_term(ctx);
    th_hub_stop(&hub);
    long replays = th_log_value(&hub, "hub.stopped", "replays");
    th_hub_cleanup(&hub);
    printf("  flood:   one peer writes 1 MiB SENDs and reads no answer: %lu written in %.1f s "
           "(%.0f MiB/s)\n",
           fl.sent, secs, (double)fl.sent / secs);
    printf("           hub RssAnon peak %ld KiB (%ld KiB before it); the 4 x 64 senders' p99 "
           "%.2f ms against %.2f ms alone (%.2fx), %.0f msgs/s against %.0f; stages "
           "replayed after a map growth: %ld\n",
           fl.peak_rss_kb, rss_calm, flood.p99, calm.p99, calm.p99 > 0 ? flood.p99 / calm.p99 : 0,
           flood.rate, calm.rate, replays);
    fflush(stdout);
}

static void section_hostile(int seconds)
{
    printf("\n== hostile peers: ingest (4 x 64) alone, then with 100 silent connections,\n"
           "   connect/HELLO/disconnect churn and a sender of 1 MiB envelopes\n");
    th_hub_t hub;
    bench_result_t calm, rough;
    memset(&calm, 0, sizeof calm);
    memset(&rough, 0, sizeof rough);
    if (start_hub(&hub, "  batch_max: 4096\n") != 0)
        return;
    bench_ingest(&hub, 4, 64, seconds, 0, NULL, &calm);
    long rss_calm = bench_rss_anon_kb(hub.pid);
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, BENCH_CHURN_CLIENTS + 512);
    void *silent[100];
    for (int i = 0; i < 100; i++) { /* TCP connected, never a byte of nhub */
        silent[i] = zmq_socket(ctx, ZMQ_DEALER);
        int z = 0;
        zmq_setsockopt(silent[i], ZMQ_LINGER, &z, sizeof z);
        zmq_connect(silent[i], hub.endpoint);
    }
    bench_churn_t ch = {.ctx = ctx, .endpoint = hub.endpoint};
    struct big_sender big = {ctx, hub.endpoint, 0, 0};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, bench_churn_loop, &ch);
    pthread_create(&t2, NULL, big_loop, &big);
    bench_ingest(&hub, 4, 64, seconds, 0, NULL, &rough);
    long rss_rough = bench_rss_anon_kb(hub.pid);
    ch.stop = 1;
    big.stop = 1;
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    for (int i = 0; i < 100; i++)
        zmq_close(silent[i]);
    zmq_ctx_term(ctx);
    th_hub_stop(&hub);
    th_hub_cleanup(&hub);
    printf("  calm:    %10.0f msgs/s  p50 %.2f  p99 %.2f  p999 %.2f ms  hub RssAnon %ld KiB\n",
           calm.rate, calm.p50, calm.p99, calm.p999, rss_calm);
    printf("  hostile: %10.0f msgs/s  p50 %.2f  p99 %.2f  p999 %.2f ms  hub RssAnon %ld KiB\n",
           rough.rate, rough.p50, rough.p99, rough.p999, rss_rough);
    printf("  meanwhile: %d churning clients made %lu connect/HELLO/WELCOME/disconnect cycles, "
           "%lu envelopes of 1 MiB ACKed\n",
           BENCH_CHURN_CLIENTS, ch.cycles, big.acked);
    fflush(stdout);
    hostile_flood(seconds);
    hostile_curve(seconds, calm.rate);
}

/* ---- window ------------------------------------------------------------- */

#define WINDOW_SIM_MS (3600 * 1000LL) /* the duplicate window, in simulated time */

static _Atomic int64_t g_sim_wall; /* the in-process hub's wall clock */

static int64_t sim_wall(void *arg)
{
    (void)arg;
    return atomic_load(&g_sim_wall);
}

static int64_t sim_mono(void *arg)
{
    (void)arg;
    return clock_mono_ms(nhub_clock_system());
}

void *bench_hub_thread(void *arg)
{
    bench_hub_thread_t *t = arg;
    t->rc = hub_run(t->hub, &t->stop, &t->reload, NULL);
    return NULL;
}

int bench_inproc_point(th_hub_t *h, int (*prepare)(struct hub *hub), int senders, int window,
                       int seconds, bench_result_t *r, struct hub_counters *n)
{
    cfg_t *cfg = NULL;
    hub_t *hub = NULL;
    char err[512] = "the measurement mode could not be set";
    int rc = -1;
    if (th_hub_write_config(h) != 0)
        return -1;
    FILE *log = fopen(h->log_path, "w");
    log_setup(LOG_WARN, log ? log : stderr);
    if (cfg_load(h->cfg_path, &cfg, err, sizeof err) != 0 ||
        hub_new(&cfg, nhub_clock_system(), &hub, err, sizeof err) != 0 ||
        (prepare && prepare(hub) != 0)) {
        fprintf(stderr, "nhub-bench: hub: %s\n", err);
    } else {
        bench_hub_thread_t ht = {.hub = hub};
        pthread_t tid;
        snprintf(h->endpoint, sizeof h->endpoint, "%s", hub_endpoint(hub));
        if (pthread_create(&tid, NULL, bench_hub_thread, &ht) == 0) {
            rc = bench_ingest(h, senders, window, seconds, 0, NULL, r);
            ht.stop = 1;
            pthread_join(tid, NULL);
            if (n)
                hub_counters(hub, n);
        }
    }
    hub_destroy(&hub);
    log_setup(LOG_WARN, stderr);
    if (log)
        fclose(log);
    return rc == 0 ? 0 : -1;
}

double bench_inproc_rate(th_hub_t *h, int (*prepare)(struct hub *hub), int seconds, double *p99)
{
    bench_result_t r;
    double rate = 0;
    if (bench_inproc_point(h, prepare, 4, 64, seconds, &r, NULL) == 0) {
        rate = r.rate;
        *p99 = r.p99;
    }
    th_rmrf(h->dir);
    return rate;
}

/* Answer every DELIVER waiting at `rx` with DELIVERED; returns how many. */
static int confirm_delivers(client_t *rx)
{
    ProtobufCMessage *m;
    int cmd, n = 0;
    while ((cmd = client_read(rx, &m)) != 0) {
        if (cmd == WIRE_DELIVER) {
            wire_deliver_t *d = (wire_deliver_t *)m;
            wire_envelope_t *e = NULL;
            if (wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope.data,
                            d->envelope.len, 1 << 20, (ProtobufCMessage **)&e) == 0) {
                wire_delivered_t ok = NHUB__WIRE__V1__DELIVERED__INIT;
                ok.msg_id = e->msg_id;
                ok.dseq = d->dseq;
                wire_send(rx->sock, NULL, 0, WIRE_DELIVERED, &ok.base, 0);
                n += d->attempt == 1;
            }
            wire_free((ProtobufCMessage **)&e);
        }
        wire_free(&m);
    }
    return n;
}

/*
 * One phase: the hub (in this thread's process, on g_sim_wall) takes `n`
 * SENDs, one in 10 to a region that does not exist, while the clock moves
 * one window forward; the destination confirms each. Returns 0 when all
 * were answered and the good ones confirmed.
 */
static int window_phase(const char *cfg_path, int n, int64_t *refused)
{
    static const nhub_clock_t sim = {sim_wall, sim_mono, NULL}; /* the hub keeps a pointer */
    cfg_t *cfg = NULL;
    hub_t *hub = NULL;
    char err[512];
    if (cfg_load(cfg_path, &cfg, err, sizeof err) != 0 ||
        hub_new(&cfg, &sim, &hub, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-bench: window: %s\n", err);
        return -1;
    }
    bench_hub_thread_t ht = {.hub = hub};
    pthread_t tid;
    pthread_create(&tid, NULL, bench_hub_thread, &ht);
    void *ctx = zmq_ctx_new();
    const int window = 256; /* open_sender's */
    client_t tx, bad, rx;
    client_open(&rx, ctx, hub_endpoint(hub), "120000", NULL, 4096, 0, NULL, 0);
    open_sender(&tx, ctx, hub_endpoint(hub), "110000", "120000");
    open_sender(&bad, ctx, hub_endpoint(hub), "130000", "990000");
    const int64_t step = WINDOW_SIM_MS / n;
    int sent = 0, answered = 0, confirmed = 0, good = 0, in_flight = 0;
    int64_t deadline = th_now_ms() + 600000;
    zmq_pollitem_t pi[3] = {
        {tx.sock, 0, ZMQ_POLLIN, 0}, {bad.sock, 0, ZMQ_POLLIN, 0}, {rx.sock, 0, ZMQ_POLLIN, 0}};
    while ((answered < n || confirmed < good) && th_now_ms() < deadline) {
        while (sent < n && in_flight < window) {
            send_one(sent % 10 == 9 ? &bad : &tx, window, BENCH_PAYLOAD);
            good += sent % 10 != 9;
            sent++;
            in_flight++;
        }
        if (zmq_poll(pi, 3, 1000) < 0)
            break;
        for (int i = 0; i < 2; i++) {
            ProtobufCMessage *m;
            int cmd;
            while ((cmd = client_read(i ? &bad : &tx, &m)) != 0) {
                if (cmd == WIRE_ACK || cmd == WIRE_NACK) {
                    answered++;
                    in_flight--;
                    *refused += cmd == WIRE_NACK;
                    atomic_fetch_add(&g_sim_wall, step);
                }
                wire_free(&m);
            }
        }
        confirmed += confirm_delivers(&rx);
    }
    client_close(&tx);
    client_close(&bad);
    client_close(&rx);
    zmq_ctx_term(ctx);
    ht.stop = 1;
    pthread_join(tid, NULL);
    hub_destroy(&hub);
    /* confirmed may pass good: DELIVEREDs the last phase's hub stopped
     * before reading are answered by redeliveries in this one */
    return answered == n && confirmed >= good && ht.rc == 0 ? 0 : -1;
}

static void section_window(int quick)
{
    const int phases = quick ? 3 : 5, per_window = quick ? 20000 : 100000;
    th_hub_t hub;
    char limits[128], data[320];
    snprintf(limits, sizeof limits, "  dedup_window: %lldms\n", WINDOW_SIM_MS);
    if (th_hub_init(&hub, limits) != 0 || th_hub_write_config(&hub) != 0) {
        fprintf(stderr, "nhub-bench: window: cannot write a configuration\n");
        return;
    }
    FILE *log = fopen(hub.log_path, "w");
    log_setup(LOG_WARN, log ? log : stderr);
    snprintf(data, sizeof data, "%s/hub-data", hub.dir);
    atomic_store(&g_sim_wall, (int64_t)1798761600000); /* 2027-01-01 */
    printf("\nwindow: duplicate window %lld s (injected clock), %d SENDs per window, "
           "1 in 10 refused for good\n",
           WINDOW_SIM_MS / 1000, per_window);
    printf("  %-7s %12s %12s %12s %14s %14s\n", "windows", "msg_ids", "rejections", "window pages",
           "journal events", "vs window 1");
    uint64_t first_pages = 0;
    int64_t refused = 0;
    for (int p = 1; p <= phases; p++) {
        if (window_phase(hub.cfg_path, per_window, &refused) != 0) {
            printf("  window phase %d did not complete (log: %s)\n", p, hub.log_path);
            break;
        }
        store_t *st = NULL;
        store_reader_t *r = NULL;
        store_window_stat_t w = {0};
        uint64_t events = 0;
        char err[256];
        if (store_open(data, 1 << 20, 1ull << 36, &st, err, sizeof err) != 0 ||
            store_reader_open(st, &r) != 0 || store_window_stat(r, &w) != 0 ||
            store_journal_last(r, &events) != 0) {
            printf("  cannot read the store: %s\n", err);
            store_reader_close(&r);
            store_close(&st);
            break;
        }
        store_reader_close(&r);
        store_close(&st);
        if (p == 1)
            first_pages = w.pages;
        printf("  %-7d %12llu %12llu %12llu %14llu %13.2fx\n", p, (unsigned long long)w.messages,
               (unsigned long long)w.rejections, (unsigned long long)w.pages,
               (unsigned long long)events, first_pages ? (double)w.pages / first_pages : 0.0);
    }
    printf("  refused: %lld (UNKNOWN_REGION); the journal keeps every event (never pruned)\n",
           (long long)refused);
    log_setup(LOG_INFO, NULL);
    if (log)
        fclose(log);
    th_rmrf(hub.dir);
}

int main(int argc, char **argv)
{
    int quick = 0, seconds = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atoi(argv[++i]);
        } else {
            printf("usage: nhub-bench [--quick] "
                   "[--only "
                   "ingest|peers|backlog|scaling|hostile|window|signatures|signed|relay|payloads|"
                   "cases|priority|adapter|audit|sealed|retention] "
                   "[--seconds D]\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    if (seconds <= 0)
        seconds = quick ? 2 : 5;
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL));
    printf("nhub-bench: %d-byte payloads, %d s per point, hub with default (fsync) durability\n",
           BENCH_PAYLOAD, seconds);
    if (!only || !strcmp(only, "ingest"))
        section_ingest(quick, seconds);
    if (!only || !strcmp(only, "peers"))
        section_peers(seconds);
    if (!only || !strcmp(only, "backlog"))
        section_backlog(quick);
    if (!only || !strcmp(only, "scaling"))
        section_scaling(seconds);
    if (!only || !strcmp(only, "hostile"))
        section_hostile(seconds);
    if (!only || !strcmp(only, "window"))
        section_window(quick);
    if (!only || !strcmp(only, "signatures"))
        section_signatures(seconds, g_ingest_4x64);
    if (!only || !strcmp(only, "signed"))
        section_signed(seconds);
    if (!only || !strcmp(only, "relay"))
        section_relay(seconds);
    if (!only || !strcmp(only, "payloads"))
        section_payloads(seconds);
    if (!only || !strcmp(only, "cases"))
        section_cases(quick, seconds);
    if (!only || !strcmp(only, "priority"))
        section_priority(quick);
    if (!only || !strcmp(only, "adapter"))
        section_adapter(quick);
    if (!only || !strcmp(only, "audit"))
        section_audit(quick, seconds);
    if (!only || !strcmp(only, "sealed"))
        section_sealed(quick, seconds);
    if (!only || !strcmp(only, "retention"))
        section_retention(quick, seconds);
    return 0;
}
