/*
 * nhub-bench: a first durable-ingest figure for nhub.
 *
 * Starts a real nhubd on 127.0.0.1 in a temporary directory (default sync:
 * every ACK is behind an fsync), connects S senders, each keeping W SENDs
 * of P-byte payloads unacknowledged, and measures for D seconds:
 * ACKed messages per second and the ACK latency (send to ACK) p50/p99/p999.
 * Then, on the same disk, a baseline: raw LMDB appends of the same record
 * size committed (with fsync) in batches of the size the hub achieved
 * (read from the hub's own stats line).
 *
 *   nhub-bench [--senders S] [--window W] [--payload P] [--seconds D]
 */
#include "harness.h"
#include "wire.h"

#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_SENDERS 64

typedef struct sender {
    void *sock;
    uint8_t stream_id[16];
    uint64_t next_sseq, acked;
    int64_t *sent_at; /* by stream_seq % window */
    int welcomed;
} sender_t;

typedef struct opts {
    int senders, window, payload, seconds;
} opts_t;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int send_one(sender_t *s, const char *src, const char *dst, const uint8_t *payload,
                    size_t plen, int window)
{
    uint8_t id[16], buf[4096];
    uint64_t q = s->next_sseq;
    /* Time-ordered ids, as libnhub makes them: 48-bit ms clock first, so the
     * hub's duplicate index grows at its end instead of at random pages. */
    uint64_t ms = (uint64_t)(now_us() / 1000);
    for (int b = 0; b < 6; b++)
        id[b] = (uint8_t)(ms >> (40 - 8 * b));
    memcpy(id + 6, s->stream_id, 2);
    for (int b = 0; b < 8; b++)
        id[8 + b] = (uint8_t)(q >> (56 - 8 * b));
    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id.data = id;
    e.msg_id.len = 16;
    e.source = (char *)src;
    e.destination = (char *)dst;
    e.item = "BENCH-ITEM";
    e.kind = NHUB__WIRE__V1__KIND__KIND_PUSH;
    e.created_ms = 1;
    e.payload_type = "nhub.bench.v1.Blob";
    e.payload.data = (uint8_t *)payload;
    e.payload.len = plen;
    size_t n = protobuf_c_message_pack(&e.base, buf);
    wire_send_t snd = NHUB__WIRE__V1__SEND__INIT;
    snd.stream_seq = q;
    snd.envelope.data = buf;
    snd.envelope.len = n;
    s->sent_at[q % (uint64_t)window] = now_us();
    s->next_sseq++;
    return wire_send(s->sock, NULL, 0, WIRE_SEND, &snd.base, 0);
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){4, 64, 512, 10};
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--senders"))
            dst = &o->senders;
        else if (!strcmp(argv[i], "--window"))
            dst = &o->window;
        else if (!strcmp(argv[i], "--payload"))
            dst = &o->payload;
        else if (!strcmp(argv[i], "--seconds"))
            dst = &o->seconds;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: nhub-bench [--senders S] [--window W] [--payload BYTES] [--seconds D]\n");
            exit(0);
        }
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "nhub-bench: unknown or incomplete argument \"%s\"\n", argv[i]);
            return -1;
        }
        *dst = atoi(argv[++i]);
    }
    if (o->senders < 1 || o->senders > MAX_SENDERS || o->window < 1 || o->window > 100000 ||
        o->payload < 1 || o->payload > 3000 || o->seconds < 1 || o->seconds > 600) {
        fprintf(stderr, "nhub-bench: senders 1..64, window 1..100000, payload 1..3000, seconds 1..600\n");
        return -1;
    }
    return 0;
}

/* Raw LMDB: `total` appends of `size` bytes, committed every `batch`. */
static double lmdb_baseline(const char *dir, int size, int batch, int total)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
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

int main(int argc, char **argv)
{
    opts_t o;
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    th_hub_t hub;
    if (th_hub_init(&hub, "  batch_max: 4096\n  credit_max: 4096\n") || th_hub_start(&hub)) {
        fprintf(stderr, "nhub-bench: cannot start nhubd (is it built? NHUB_BIN=%s)\n",
                getenv("NHUB_BIN") ? getenv("NHUB_BIN") : "build/bin");
        return 1;
    }
    printf("nhub-bench: durable ingest, %d senders x window %d, %d-byte payloads, %d s\n",
           o.senders, o.window, o.payload, o.seconds);
    printf("  hub: %s, data in %s (default LMDB sync: ACK after fsync)\n", hub.endpoint, hub.dir);
    void *ctx = zmq_ctx_new();
    sender_t s[MAX_SENDERS];
    uint8_t *payload = malloc((size_t)o.payload);
    memset(payload, 'x', (size_t)o.payload);
    size_t lat_cap = 1 << 22, n_lat = 0;
    int64_t *lat = malloc(lat_cap * sizeof *lat);
    zmq_pollitem_t pi[MAX_SENDERS];
    for (int i = 0; i < o.senders; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].sock = zmq_socket(ctx, ZMQ_DEALER);
        int z = 0;
        zmq_setsockopt(s[i].sock, ZMQ_LINGER, &z, sizeof z);
        zmq_connect(s[i].sock, hub.endpoint);
        for (int b = 0; b < 16; b++)
            s[i].stream_id[b] = (uint8_t)(rand() ^ i);
        s[i].next_sseq = 1;
        s[i].sent_at = calloc((size_t)o.window, sizeof(int64_t));
        wire_hello_t h = NHUB__WIRE__V1__HELLO__INIT;
        uint32_t v = 1;
        h.region = (char *)th_regions[i % 16];
        h.protocol_versions = &v;
        h.n_protocol_versions = 1;
        h.stream_id.data = s[i].stream_id;
        h.stream_id.len = 16;
        wire_send(s[i].sock, NULL, 0, WIRE_HELLO, &h.base, 0);
        pi[i] = (zmq_pollitem_t){s[i].sock, 0, ZMQ_POLLIN, 0};
    }
    int64_t start = 0, end = 0;
    uint64_t total = 0;
    int running = 1;
    int64_t deadline = th_now_ms() + 30000 + o.seconds * 1000LL;
    while (running && th_now_ms() < deadline) {
        if (zmq_poll(pi, o.senders, 1000) < 0)
            break;
        for (int i = 0; i < o.senders; i++) {
            if (!(pi[i].revents & ZMQ_POLLIN))
                continue;
            wire_frames_t f;
            while (wire_recv(s[i].sock, &f, ZMQ_DONTWAIT) == 0) {
                int cmd = 0;
                wire_header_parse(wire_frame_data(&f, 0), wire_frame_len(&f, 0), &cmd, NULL);
                ProtobufCMessage *m = NULL;
                if (wire_decode(wire_body_descriptor(cmd), wire_frame_data(&f, 1),
                                wire_frame_len(&f, 1), 1 << 20, &m) == 0) {
                    if (cmd == WIRE_WELCOME) {
                        s[i].welcomed = 1;
                        if (!start)
                            start = now_us();
                        for (int w = 0; w < o.window; w++)
                            send_one(&s[i], th_regions[i % 16], th_regions[16 + i % 16],
                                     payload, (size_t)o.payload, o.window);
                    } else if (cmd == WIRE_ACK) {
                        wire_ack_t *a = (wire_ack_t *)m;
                        int64_t t = now_us();
                        if (n_lat < lat_cap)
                            lat[n_lat++] = t - s[i].sent_at[a->stream_seq % (uint64_t)o.window];
                        s[i].acked++;
                        total++;
                        if (t - start >= o.seconds * 1000000LL) {
                            running = 0;
                            end = t;
                        } else {
                            send_one(&s[i], th_regions[i % 16], th_regions[16 + i % 16],
                                     payload, (size_t)o.payload, o.window);
                        }
                    } else if (cmd == WIRE_NACK) {
                        fprintf(stderr, "nhub-bench: NACK: %s\n", ((wire_nack_t *)m)->text);
                        running = 0;
                    }
                }
                wire_free(&m);
                wire_frames_close(&f);
            }
        }
    }
    if (!end)
        end = now_us();
    for (int i = 0; i < o.senders; i++) {
        zmq_close(s[i].sock);
        free(s[i].sent_at);
    }
    zmq_ctx_term(ctx);
    th_hub_stop(&hub);
    double secs = (double)(end - start) / 1e6, rate = secs > 0 ? (double)total / secs : 0;
    qsort(lat, n_lat, sizeof *lat, cmp_i64);
    double batch = 0;
    {
        FILE *f = fopen(hub.log_path, "r");
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "event=hub.stats ");
            char *b = p ? strstr(p, "mean_batch=") : NULL;
            if (b)
                batch = atof(b + 11);
        }
        if (f)
            fclose(f);
    }
    printf("  acked: %llu msgs in %.2f s = %.0f msgs/s\n", (unsigned long long)total, secs, rate);
    if (n_lat)
        printf("  ACK latency: p50 %.2f ms, p99 %.2f ms, p999 %.2f ms\n",
               lat[n_lat / 2] / 1000.0, lat[n_lat * 99 / 100] / 1000.0,
               lat[n_lat * 999 / 1000] / 1000.0);
    printf("  hub mean commit batch: %.1f messages per fsync\n", batch);
    int b = batch >= 1 ? (int)(batch + 0.5) : 1;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/baseline", hub.dir);
    mkdir(dir, 0700);
    int total_base = b * 400 < 20000 ? b * 400 : 20000;
    double base = lmdb_baseline(dir, o.payload + 180, b, total_base < 2000 ? 2000 : total_base);
    printf("  baseline, raw LMDB durable appends of %d B in batches of %d: %.0f msgs/s\n",
           o.payload + 180, b, base);
    if (base > 0)
        printf("  ratio nhub / raw LMDB at the same batch size: %.2f\n", rate / base);
    th_hub_cleanup(&hub);
    free(lat);
    free(payload);
    return total > 0 ? 0 : 1;
}
