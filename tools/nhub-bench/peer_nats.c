/*
 * peer_nats.c: the fast, non-durable peer baseline, NATS JetStream with
 * publish acks, driven through libnats (nats.c).
 *
 * The bench starts its own nats-server (Debian's, 2.9) with JetStream on
 * 127.0.0.1 on a free port, its store in a fresh directory, no other
 * options, and creates one file-storage stream (one replica, limits
 * retention, no limits) over the subjects bench.>. NATS 2.9 writes a message
 * to the stream's block file and acknowledges it without an fsync (its
 * sync_interval defaults to 2 minutes; a per-message "always" came later),
 * so its ACK promises less than nhub's: the result is marked non-durable.
 *
 * Each publisher is a thread with its own connection; it publishes to its
 * own subject bench.<i> with a reply subject <inbox>.<n>, n its message
 * number, and reads the stream's PubAck replies from a synchronous
 * subscription on <inbox>.* in the same thread. That is the wire exchange of
 * js_PublishAsync (a wildcard reply inbox, one token per message) without its
 * callback thread, so the latency of each message (publish to PubAck) is
 * exact and the window is exactly W. A reply without "seq" (an error, or
 * no responders) ends the run as failed.
 */
#include "peers.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* The build may say whether libnats is there (-DPEER_HAVE_NATS=0/1, from
 * pkg-config); otherwise its header decides. */
#ifndef PEER_HAVE_NATS
#if __has_include(<nats/nats.h>)
#define PEER_HAVE_NATS 1
#else
#define PEER_HAVE_NATS 0
#endif
#endif
#if PEER_HAVE_NATS
#include <nats/nats.h>
#endif

#if PEER_HAVE_NATS

#define NATS_SERVER "/usr/sbin/nats-server"
#define NATS_STREAM "BENCH"
#define NATS_START_MS 20000
#define NATS_CONNECT_MS 10000
#define NATS_GRACE_MS 15000
#define NATS_STOP_MS 10000

typedef struct nats_server {
    char dir[200];
    char log_path[240];
    int port;
    pid_t pid;
    char version[32];
} nats_server_t;

typedef peer_pub_t nats_pub_t;

/*
 * nats.c buffers publishes and its flusher thread pauses 1 ms before each
 * write to gather more; with few messages in flight that pause is most of
 * the latency (at W=1 it cuts the rate tenfold), with many it saves writes.
 * SendAsap writes each publish at once. Measured here, it wins up to 32
 * messages in flight in all (senders x window) and loses from 64.
 */
#define NATS_SEND_ASAP_MAX_INFLIGHT 32

static int nats_send_asap(const peer_params_t *p)
{
    return (long)p->senders * p->window <= NATS_SEND_ASAP_MAX_INFLIGHT;
}

static natsConnection *nats_connect(int port, int send_asap, int timeout_ms, char *err, size_t cap)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, timeout_ms);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, false);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, send_asap != 0);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, o);
    if (s != NATS_OK)
        snprintf(err, cap, "connect %s: %s", url, natsStatus_GetText(s));
    natsOptions_Destroy(o);
    return s == NATS_OK ? nc : NULL;
}

/*
 * Read the server's INFO line (the first thing it sends) and take its
 * version and whether JetStream is on. 1 if the line was read.
 */
static int nats_read_info(int port, char *version, size_t cap, int *jetstream)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[4096];
    size_t n = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        struct pollfd pf = {fd, POLLIN, 0};
        while (n < sizeof buf - 1 && !memchr(buf, '\n', n) && poll(&pf, 1, 1000) == 1) {
            ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
            if (k <= 0)
                break;
            n += (size_t)k;
        }
    }
    close(fd);
    buf[n] = 0;
    if (strncmp(buf, "INFO ", 5) != 0 || !strchr(buf, '\n'))
        return 0;
    const char *v = strstr(buf, "\"version\":\"");
    if (v) {
        v += 11;
        size_t len = strcspn(v, "\"");
        snprintf(version, cap, "%.*s", (int)(len < 31 ? len : 31), v);
    }
    *jetstream = strstr(buf, "\"jetstream\":true") != NULL;
    return 1;
}

/* ---- the server ----------------------------------------------------------- */

static int nats_start(nats_server_t *s, const peer_params_t *p, char *err, size_t cap)
{
    if (peer_mkdtemp(p->tmpdir, "nats", s->dir, sizeof s->dir)) {
        snprintf(err, cap, "cannot make a directory under %.180s", p->tmpdir);
        return -1;
    }
    s->port = peer_free_port();
    if (!s->port) {
        snprintf(err, cap, "no free loopback port");
        return -1;
    }
    snprintf(s->log_path, sizeof s->log_path, "%s/server.out", s->dir);
    char store[240], port[16];
    snprintf(store, sizeof store, "%s/store", s->dir);
    snprintf(port, sizeof port, "%d", s->port);
    char *argv[] = {NATS_SERVER, "-js", "-sd", store, "-p", port, "-a", "127.0.0.1", NULL};
    s->pid = peer_spawn(argv, NULL, s->log_path, s->dir);
    if (s->pid < 0) {
        snprintf(err, cap, "cannot start %s", NATS_SERVER);
        return -1;
    }
    /* Ready when the server greets a connection with INFO saying JetStream
     * is on (it opens the client port after JetStream has started). */
    int64_t until = peer_now_us() + (int64_t)NATS_START_MS * 1000;
    while (peer_now_us() < until) {
        if (!peer_alive(s->pid)) {
            snprintf(err, cap, "nats-server exited while starting (log: %.180s)", s->log_path);
            s->pid = -1;
            return -1;
        }
        int js = 0;
        if (peer_tcp_probe(s->port, 500) &&
            nats_read_info(s->port, s->version, sizeof s->version, &js)) {
            if (js)
                return 0;
            snprintf(err, cap, "nats-server started without JetStream (log: %.160s)", s->log_path);
            return -1;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(err, cap, "nats-server not ready within %d s", NATS_START_MS / 1000);
    return -1;
}

static void nats_stop(nats_server_t *s)
{
    peer_stop(s->pid, NATS_STOP_MS);
    s->pid = -1;
    if (s->dir[0])
        peer_rmrf(s->dir);
}

/* ---- the stream ----------------------------------------------------------- */

static int nats_add_stream(natsConnection *nc, char *err, size_t cap)
{
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    jsStreamConfig cfg;
    const char *subjects[] = {"bench.>"};
    natsStatus s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK) {
        jsStreamConfig_Init(&cfg);
        cfg.Name = NATS_STREAM;
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.Replicas = 1;
        s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    }
    if (s != NATS_OK)
        snprintf(err, cap, "add stream: %s (JetStream error %d)", natsStatus_GetText(s), (int)jerr);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    return s == NATS_OK ? 0 : -1;
}

/* Messages the stream holds; -1 if it cannot be asked. */
static long long nats_stream_msgs(natsConnection *nc)
{
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    long long n = -1;
    if (natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
        js_GetStreamInfo(&si, js, NATS_STREAM, NULL, &jerr) == NATS_OK)
        n = (long long)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    return n;
}

/* ---- a publisher ---------------------------------------------------------- */

/* A PubAck on <inbox>.<n>: 1 to go on, 0 (pb->err set) on an error reply. */
static int nats_on_reply(nats_pub_t *pb, natsMsg *m)
{
    const char *subj = natsMsg_GetSubject(m);
    const char *dot = subj ? strrchr(subj, '.') : NULL;
    const char *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    /* {"stream":"BENCH","seq":N} on success, {"error":{...}} or an empty
     * no-responders status otherwise. */
    if (!dot || !data || len <= 0 || !memmem(data, (size_t)len, "\"seq\":", 6) ||
        memmem(data, (size_t)len, "\"error\"", 7)) {
        if (data && len > 0)
            snprintf(pb->err, sizeof pb->err, "publisher %d: publish failed: %.*s", pb->idx,
                     len < 120 ? len : 120, data);
        else
            snprintf(pb->err, sizeof pb->err, "publisher %d: no PubAck (no stream?)", pb->idx);
        return 0;
    }
    peer_window_confirm(&pb->win, strtoull(dot + 1, NULL, 10), 0);
    return 1;
}

static int nats_fill(nats_pub_t *pb, natsConnection *nc, const char *subject, const char *inbox,
                     const void *payload)
{
    while (peer_window_has_room(&pb->win)) {
        char reply[128];
        uint64_t n = peer_window_sent(&pb->win);
        snprintf(reply, sizeof reply, "%s.%llu", inbox, (unsigned long long)n);
        natsStatus s = natsConnection_PublishRequest(nc, subject, reply, payload, pb->p->payload);
        if (s != NATS_OK) {
            snprintf(pb->err, sizeof pb->err, "publisher %d: publish: %s", pb->idx,
                     natsStatus_GetText(s));
            return -1;
        }
    }
    return 0;
}

static void nats_pub_loop(nats_pub_t *pb, natsConnection *nc, natsSubscription *sub,
                          const char *inbox, const void *payload)
{
    char subject[32];
    snprintf(subject, sizeof subject, "bench.%d", pb->idx);
    for (;;) {
        int64_t now = peer_now_us();
        if (now >= pb->win.end_us || nats_fill(pb, nc, subject, inbox, payload))
            return;
        int64_t left_ms = (pb->win.end_us - now + 999) / 1000;
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, left_ms > 1000 ? 1000 : left_ms);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            snprintf(pb->err, sizeof pb->err, "publisher %d: read: %s", pb->idx,
                     natsStatus_GetText(s));
            return;
        }
        int go_on = nats_on_reply(pb, m);
        natsMsg_Destroy(m);
        if (!go_on)
            return;
    }
}

static void *nats_pub_main(void *arg)
{
    nats_pub_t *pb = arg;
    const peer_params_t *p = pb->p;
    char *payload = malloc((size_t)p->payload);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    natsInbox *inbox = NULL;
    char wildcard[128];
    if (peer_window_init(&pb->win, p->window) || !payload) {
        snprintf(pb->err, sizeof pb->err, "out of memory");
        goto fail;
    }
    memset(payload, 'x', (size_t)p->payload);
    nc = nats_connect(pb->port, nats_send_asap(p), NATS_CONNECT_MS, pb->err, sizeof pb->err);
    if (!nc)
        goto fail;
    natsStatus s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        snprintf(wildcard, sizeof wildcard, "%s.*", inbox);
        s = natsConnection_SubscribeSync(&sub, nc, wildcard);
    }
    if (s == NATS_OK) /* the server must know the subscription before any reply */
        s = natsConnection_FlushTimeout(nc, NATS_CONNECT_MS);
    if (s != NATS_OK) {
        snprintf(pb->err, sizeof pb->err, "publisher %d: subscribe: %s", pb->idx,
                 natsStatus_GetText(s));
        goto fail;
    }
    peer_gate_ready(pb->gate, 1);
    if (peer_gate_wait_go(pb->gate, NATS_CONNECT_MS + 5000)) {
        pb->win.end_us = pb->gate->end_us;
        nats_pub_loop(pb, nc, sub, inbox, payload);
    }
    goto done;
fail:
    peer_gate_ready(pb->gate, 0);
done:
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    natsInbox_Destroy(inbox);
    free(payload);
    peer_window_free(&pb->win);
    return NULL;
}

/* ---- the run -------------------------------------------------------------- */

static void nats_config_text(peer_result_t *r, const nats_server_t *s, const peer_params_t *p)
{
    snprintf(r->config, sizeof r->config,
             "NATS %s (Debian nats-server) -js -sd <tmp> -p %d -a 127.0.0.1, no config file; "
             "stream " NATS_STREAM " on bench.>, file storage, 1 replica, limits retention; "
             "PubAck before fsync (2.9 has no sync_interval always): NOT durable; libnats %s, "
             "%d connections, %s, publish to bench.<i> with reply <inbox>.<n> "
             "(js_PublishAsync's exchange), %d-byte payloads, %d unacked per publisher; "
             "latency publish->PubAck",
             s->version, s->port, nats_GetVersion(), p->senders,
             nats_send_asap(p) ? "SendAsap (<=32 in flight)" : "buffered (flusher)", p->payload,
             p->window);
}

static void nats_run(const peer_params_t *p, peer_result_t *r)
{
    nats_server_t s = {.pid = -1, .version = "?"};
    char err[256] = "";
    if (!peer_have_program(NATS_SERVER)) {
        snprintf(r->skipped, sizeof r->skipped,
                 "nats-server is not installed (%s missing; tools/bench-deps.sh installs it)",
                 NATS_SERVER);
        return;
    }
    if (nats_start(&s, p, err, sizeof err)) {
        snprintf(r->skipped, sizeof r->skipped, "%s", err);
        goto out;
    }
    natsConnection *nc = nats_connect(s.port, 0, NATS_CONNECT_MS, err, sizeof err);
    if (!nc || nats_add_stream(nc, err, sizeof err)) {
        snprintf(r->skipped, sizeof r->skipped, "%s", err);
        natsConnection_Destroy(nc);
        goto out;
    }
    nats_config_text(r, &s, p);
    peer_measure(p, &s.pid, s.port, NATS_CONNECT_MS, NATS_GRACE_MS, nats_pub_main, r);
    /* Every counted PubAck must be a message the stream holds. */
    long long held = s.pid > 0 ? nats_stream_msgs(nc) : -1;
    if (r->ran && held >= 0 && (unsigned long long)held < r->acked) {
        snprintf(r->skipped, sizeof r->skipped, "stream holds %lld messages but %llu were acked",
                 held, r->acked);
        r->ran = 0;
    }
    natsConnection_Destroy(nc);
out:
    nats_stop(&s);
}

#endif /* PEER_HAVE_NATS */

void peer_nats_run(const peer_params_t *p, peer_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->durable = 0;
#if PEER_HAVE_NATS
    nats_run(p, r);
#else
    (void)p;
    snprintf(r->config, sizeof r->config, "NATS JetStream, file storage, publish acks");
    snprintf(
        r->skipped, sizeof r->skipped,
        "built without libnats-dev (nats/nats.h missing); run tools/bench-deps.sh and rebuild");
#endif
}
