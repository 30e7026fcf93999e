/*
 * nhub.c: libnhub, the adapter side of the nhub wire protocol (see
 * proto/README.md and adapters/nhub.h).
 *
 * An nhub_t is a durable outbox (outbox.c), a set of deliveries in memory
 * (inbox.c) and one ZeroMQ DEALER to the hub. There is no thread: every
 * public call that may block runs serve(), a zmq_poll loop that reads what
 * the hub sent, fires the timers (heartbeat, resend, back-off, silence) and
 * keeps up to `window` SENDs in flight.
 *
 * The session is a small state machine:
 *
 *   DOWN --connected--> NEED_HELLO --HELLO written--> HELLO_SENT --WELCOME--> READY
 *                          ^                                                  |
 *                          +---- OUT_OF_ORDER, HELLO_REQUIRED, resend timer ---+
 *   READY --retryable NACK / BYE--> BACKOFF --timer--> NEED_HELLO
 *   any --disconnected--> DOWN;  any --hub silent 3 heartbeats--> new socket, DOWN
 *
 * Every resync goes through HELLO because WELCOME.stream_last is the only
 * statement about the outbox the hub makes durably: the adapter drops what
 * the hub holds and resends the rest in stream order. Nothing in flight
 * survives a resync, so ordering never depends on ZeroMQ queues. The socket
 * has ZMQ_IMMEDIATE set, so nothing is queued for a connection that is not
 * up and no stale SEND can reach a new connection before its HELLO.
 *
 * Streams. The outbox is keyed by a local sequence; the wire stream_seq is
 * local - stream_base of the stream named in the HELLO (outbox.h). Each
 * HELLO reads that identity from the store and the session keeps it until
 * the next HELLO, so ACK and NACK numbers are always converted with the
 * numbering the SENDs used. A new stream (a new random stream_id, what waits
 * renumbered from 1, nothing deleted: the hub's msg_id dedup makes the
 * resend safe) is started when the hub says NACK STREAM_CONFLICT, when a
 * WELCOME's stream_last is at or beyond what this store ever numbered (the
 * store is a copy: another writer uses the stream), and when the head
 * message is larger than the hub's max_frame (it is settled here as
 * rejected, and renumbering keeps the stream without a gap). After a HELLO
 * on another stream, replies about SENDs of the old one are ignored until
 * the WELCOME.
 */
#include "nhub.h"

#include "clock.h"
#include "ids.h"
#include "inbox.h"
#include "log.h"
#include "outbox.h"
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define NHUB_DEFAULT_CREDIT 64u
#define NHUB_DEFAULT_WINDOW 256u
#define NHUB_DEFAULT_MAX_FRAME (1024u * 1024u)
#define NHUB_DEFAULT_RESEND_MS 5000
#define NHUB_DEFAULT_HEARTBEAT_MS 2000
#define NHUB_BACKOFF_START_MS 200
#define NHUB_BACKOFF_MAX_MS 5000
/* Silence from the hub for this many heartbeats ends the connection. */
#define NHUB_SILENT_BEATS 3
/* Bytes a Deliver or Send adds around an envelope, rounded up generously. */
#define NHUB_FRAME_SLACK 4096u
/* Frames read in one go before the ACKs among them are committed together. */
#define NHUB_RECV_BURST 256
#define NHUB_ACCEPTED_MAX 64
/* Longest wait while connected: other processes sharing the store (send-only
 * senders) may have appended to the outbox, and only a look finds out. */
#define NHUB_OUTBOX_LOOK_MS 200
#define NHUB_SOFTWARE "libnhub 0.1"
/* Confirmed msg_ids are kept this long (the hub's default dedup_window is 7 d). */
#define NHUB_DEFAULT_CONFIRMED_RETENTION_MS (8ll * 24 * 3600 * 1000)
/* Expiry of confirmed msg_ids: at most this many per pass, at most one pass a second. */
#define NHUB_EXPIRE_BATCH 512
#define NHUB_EXPIRE_EVERY_MS 1000

enum session_state {
    SESSION_DOWN,       /* no connection to the hub */
    SESSION_NEED_HELLO, /* connected; HELLO due but not yet written */
    SESSION_HELLO_SENT, /* waiting for WELCOME */
    SESSION_READY,      /* WELCOME seen: sending and receiving */
    SESSION_BACKOFF,    /* the hub asked us to retry later; HELLO at backoff_until */
};

static const char *const state_names[] = {"down", "need_hello", "hello_sent", "ready",
                                          "backoff"};

/* One SEND written and not yet answered, in stream order. */
typedef struct inflight {
    uint64_t seq;
    int64_t sent_ms;
    int done;
} inflight_t;

/* One ACK read in the current burst, committed with the others. */
typedef struct pending_ack {
    uint64_t seq;                    /* local seq */
    uint8_t msg_id[NHUB_MSG_ID_LEN]; /* of the outbox entry this ACK removed */
    int removed;                     /* this ACK removed the entry (and msg_id is set) */
    int mismatch;                    /* the entry at seq is another message: kept */
    uint8_t ack_id[NHUB_MSG_ID_LEN]; /* from the ACK itself */
    int ack_has_id;
} pending_ack_t;

struct nhub {
    /* configuration (copied from nhub_options_t) */
    char region[WIRE_REGION_LEN + 1];
    char *endpoint;
    char **accepted;
    size_t n_accepted;
    uint32_t credit;
    uint32_t window;
    uint32_t max_frame;
    int64_t resend_after_ms;
    int64_t heartbeat_ms;
    nhub_reject_fn *on_reject;
    void *on_reject_arg;
    nhub_ack_fn *on_ack;
    void *on_ack_arg;
    int offline;
    int send_only;
    uint64_t map_size_max;
    int64_t confirmed_retention_ms;

    nhub_clock_t clk;       /* what the code reads; wraps the functions below */
    nhub_clock_fn *wall_fn; /* from nhub_set_clock, NULL = system */
    nhub_clock_fn *mono_fn;
    void *clock_arg;

    outbox_t *store;
    inbox_t *inbox;

    void *zctx;
    void *sock;
    void *mon;
    unsigned sock_gen;

    /* session */
    enum session_state state;
    int want_write;        /* a write would have blocked: poll for POLLOUT */
    int64_t last_rx_ms;    /* last frame from the hub (or start of the wait for one) */
    int64_t last_hb_ms;    /* last HEARTBEAT written */
    int64_t hb_ms;         /* effective heartbeat: ours, or the hub's if shorter */
    int64_t backoff_ms;    /* next back-off step */
    int64_t backoff_until; /* in BACKOFF: when to say HELLO again */
    int ooo_since_ack;     /* OUT_OF_ORDER resyncs without progress */
    uint8_t stream_id[NHUB_MSG_ID_LEN]; /* the stream of the last HELLO */
    uint64_t stream_base;  /* its base: wire stream_seq = local seq - stream_base */
    int stream_known;      /* a HELLO has set stream_id and stream_base */
    int stale_until_welcome; /* the last HELLO named a new stream: replies about SENDs
                                of the old one may still arrive and are ignored */
    int rotations;         /* new streams started since the last WELCOME */
    uint32_t hub_max_frame; /* from the last WELCOME; 0 = not known */
    int ack_conflict;      /* an ACK named another msg_id than the entry at its seq */
    uint64_t oversize_seq; /* set by send_visit: the head message is too large */
    size_t oversize_len;
    int64_t next_expire_ms; /* when the confirmed set is looked at again */

    inflight_t *ring; /* `window` slots */
    size_t ring_head;
    size_t ring_count;
    uint64_t send_cursor;  /* the next local seq to look for in the outbox */
    uint64_t max_sent_seq; /* highest local seq written in this process */

    pending_ack_t acks[NHUB_RECV_BURST];
    size_t n_acks;

    nhub_stats_t st;
    uint64_t malformed;
    char last_error[256];
};

/* ---- small helpers -------------------------------------------------------- */

static int64_t now_ms(const nhub_t *self)
{
    return clock_mono_ms(&self->clk);
}

static int64_t wall_ms(const nhub_t *self)
{
    return clock_wall_ms(&self->clk);
}

/* Real time, for the waits callers ask for, whatever clock drives the timers. */
static int64_t real_ms(void)
{
    return clock_mono_ms(nhub_clock_system());
}

static int set_err(nhub_t *self, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(nhub_t *self, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->last_error, sizeof self->last_error, fmt, ap);
    va_end(ap);
    return code;
}

char *nhub_msg_id_hex(const uint8_t id[NHUB_MSG_ID_LEN], char buf[33])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < NHUB_MSG_ID_LEN; i++) {
        buf[2 * i] = digits[id[i] >> 4];
        buf[2 * i + 1] = digits[id[i] & 15];
    }
    buf[32] = '\0';
    return buf;
}

static const char *const kind_names[] = {"unknown", "request", "response",
                                         "push",    "feedback", "notice"};

int nhub_kind_parse(const char *name)
{
    if (!name)
        return 0;
    for (int k = NHUB_KIND_REQUEST; k <= NHUB_KIND_NOTICE; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return 0;
}

const char *nhub_kind_name(int kind)
{
    if (kind < NHUB_KIND_REQUEST || kind > NHUB_KIND_NOTICE)
        return kind_names[0];
    return kind_names[kind];
}

/* Bytes protobuf needs for the varint `v`. */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Largest allocation wire_decode may make for one frame. */
static size_t decode_budget(const nhub_t *self)
{
    return 2 * ((size_t)self->max_frame + NHUB_FRAME_SLACK) + 65536;
}

/* Largest Send body the hub takes: ours, or the hub's if its WELCOME said less. */
static uint32_t frame_limit(const nhub_t *self)
{
    if (self->hub_max_frame && self->hub_max_frame < self->max_frame)
        return self->hub_max_frame;
    return self->max_frame;
}

/* Bytes of a Send body around an envelope of `len` bytes, counting the
 * stream_seq at its largest so the answer does not depend on the numbering. */
static size_t send_body_len(size_t len)
{
    return len + 1 + 10 + 1 + varint_len(len);
}

/* Local seq of a stream_seq of the session's stream; 0 if it cannot be one. */
static uint64_t local_seq(const nhub_t *self, uint64_t wire)
{
    if (wire == 0 || wire > UINT64_MAX - self->stream_base)
        return 0;
    return wire + self->stream_base;
}

/* ---- in-flight ring ------------------------------------------------------- */

static void ring_clear(nhub_t *self)
{
    self->ring_head = 0;
    self->ring_count = 0;
}

static void ring_push(nhub_t *self, uint64_t seq, int64_t now)
{
    size_t i = (self->ring_head + self->ring_count) % self->window;
    self->ring[i] = (inflight_t){.seq = seq, .sent_ms = now, .done = 0};
    self->ring_count++;
}

/* Mark `seq` answered and drop answered entries from the head. Returns 1 if found. */
static int ring_mark(nhub_t *self, uint64_t seq)
{
    int found = 0;
    for (size_t k = 0; k < self->ring_count; k++) {
        inflight_t *e = &self->ring[(self->ring_head + k) % self->window];
        if (e->seq == seq) {
            e->done = 1;
            found = 1;
            break;
        }
        if (e->seq > seq)
            break;
    }
    while (self->ring_count && self->ring[self->ring_head].done) {
        self->ring_head = (self->ring_head + 1) % self->window;
        self->ring_count--;
    }
    return found;
}

static const inflight_t *ring_oldest(const nhub_t *self)
{
    return self->ring_count ? &self->ring[self->ring_head] : NULL;
}

/* ---- socket --------------------------------------------------------------- */

static int sockopt_int(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value);
}

static void sock_close(nhub_t *self)
{
    if (self->sock)
        zmq_socket_monitor(self->sock, NULL, 0);
    if (self->mon)
        zmq_close(self->mon);
    if (self->sock)
        zmq_close(self->sock);
    self->mon = NULL;
    self->sock = NULL;
}

/*
 * Make the DEALER and its monitor and start connecting. The monitor is
 * connected before the DEALER connects so no event is missed.
 */
static int sock_open(nhub_t *self)
{
    char ep[64];
    int64_t maxmsg = (int64_t)self->max_frame + NHUB_FRAME_SLACK;
    self->sock = zmq_socket(self->zctx, ZMQ_DEALER);
    if (!self->sock)
        goto fail;
    if (sockopt_int(self->sock, ZMQ_LINGER, 0) || sockopt_int(self->sock, ZMQ_IMMEDIATE, 1) ||
        sockopt_int(self->sock, ZMQ_RECONNECT_IVL, 100) ||
        sockopt_int(self->sock, ZMQ_RECONNECT_IVL_MAX, 2000) ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg))
        goto fail;
    snprintf(ep, sizeof ep, "inproc://nhub-monitor-%u", ++self->sock_gen);
    if (zmq_socket_monitor(self->sock, ep,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
        goto fail;
    self->mon = zmq_socket(self->zctx, ZMQ_PAIR);
    if (!self->mon || sockopt_int(self->mon, ZMQ_LINGER, 0) || zmq_connect(self->mon, ep) != 0)
        goto fail;
    if (zmq_connect(self->sock, self->endpoint) != 0)
        goto fail;
    return 0;
fail:
    set_err(self, NHUB_EZMQ, "socket to %s: %s", self->endpoint, zmq_strerror(zmq_errno()));
    sock_close(self);
    return NHUB_EZMQ;
}

static int session_write(nhub_t *self, wire_cmd_t cmd, const ProtobufCMessage *body)
{
    int rc = wire_send(self->sock, NULL, 0, cmd, body, ZMQ_DONTWAIT);
    if (rc == NHUB_EAGAIN)
        self->want_write = 1;
    else if (rc != 0)
        log_warn("nhub.write_failed", "region=%s cmd=%s error=%d", self->region,
                 wire_cmd_name(cmd), rc);
    return rc;
}

/* ---- session transitions -------------------------------------------------- */

static void set_state(nhub_t *self, enum session_state next)
{
    if (self->state != next)
        log_debug("nhub.state", "region=%s from=%s to=%s", self->region,
                  state_names[self->state], state_names[next]);
    self->state = next;
    self->st.connected = next == SESSION_READY;
}

static void backoff(nhub_t *self, const char *why);

/*
 * Take the stream to announce from the store (another process may have
 * started a new one). Returns 0, or an error after which the caller backs off.
 */
static int load_stream(nhub_t *self)
{
    uint8_t id[NHUB_MSG_ID_LEN];
    uint64_t base = 0;
    int rc = outbox_stream(self->store, id, &base);
    if (rc != 0) {
        set_err(self, rc, "reading the stream: %s", outbox_error(self->store));
        log_error("nhub.stream_read_failed", "region=%s error=%d", self->region, rc);
        return rc;
    }
    if (self->stream_known &&
        (base != self->stream_base || memcmp(id, self->stream_id, sizeof id) != 0))
        self->stale_until_welcome = 1;
    memcpy(self->stream_id, id, sizeof id);
    self->stream_base = base;
    self->stream_known = 1;
    return 0;
}

static void send_hello(nhub_t *self)
{
    wire_hello_t h = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t versions[1] = {WIRE_VERSION};
    ring_clear(self);
    set_state(self, SESSION_NEED_HELLO);
    if (load_stream(self) != 0) {
        backoff(self, "store");
        return;
    }
    h.region = self->region;
    h.n_protocol_versions = 1;
    h.protocol_versions = versions;
    h.n_accepted_payloads = self->n_accepted;
    h.accepted_payloads = self->accepted;
    h.credit = self->send_only ? 0 : self->credit;
    h.stream_id.len = WIRE_STREAM_ID_LEN;
    h.stream_id.data = self->stream_id;
    h.software = NHUB_SOFTWARE;
    if (session_write(self, WIRE_HELLO, &h.base) != 0)
        return; /* retried when the socket is writable */
    set_state(self, SESSION_HELLO_SENT);
    self->last_rx_ms = now_ms(self); /* the WELCOME is due from now */
    log_debug("nhub.hello", "region=%s credit=%u", self->region, h.credit);
}

/* Start over with a new HELLO; nothing in flight counts as sent. */
static void resync(nhub_t *self, const char *why)
{
    if (self->state == SESSION_DOWN)
        return;
    log_info("nhub.resync", "region=%s reason=%s", self->region, why);
    send_hello(self);
}

static void backoff(nhub_t *self, const char *why)
{
    if (self->state == SESSION_DOWN || self->state == SESSION_BACKOFF)
        return;
    ring_clear(self);
    self->backoff_until = now_ms(self) + self->backoff_ms;
    log_warn("nhub.backoff", "region=%s reason=%s wait_ms=%lld", self->region, why,
             (long long)self->backoff_ms);
    self->backoff_ms *= 2;
    if (self->backoff_ms > NHUB_BACKOFF_MAX_MS)
        self->backoff_ms = NHUB_BACKOFF_MAX_MS;
    set_state(self, SESSION_BACKOFF);
}

static void session_lost(nhub_t *self, const char *why)
{
    if (self->state != SESSION_DOWN)
        log_info("nhub.disconnected", "region=%s reason=%s", self->region, why);
    ring_clear(self);
    self->want_write = 0;
    set_state(self, SESSION_DOWN);
}

/* The hub went silent: drop the connection and make a fresh one. */
static void reconnect(nhub_t *self)
{
    log_warn("nhub.silent", "region=%s state=%s silent_ms=%lld", self->region,
             state_names[self->state], (long long)(now_ms(self) - self->last_rx_ms));
    session_lost(self, "hub silent");
    sock_close(self);
    if (sock_open(self) != 0)
        log_error("nhub.socket_failed", "region=%s", self->region);
}

/* ---- sending -------------------------------------------------------------- */

static int send_visit(void *arg, uint64_t seq, const void *data, size_t len)
{
    nhub_t *self = arg;
    if (self->ring_count >= self->window)
        return 1;
    if (send_body_len(len) > frame_limit(self)) {
        /* The hub would drop the frame unread, for ever. Settled once it
         * is the head of the stream, so what is before it is ACKed first. */
        if (self->ring_count == 0) {
            self->oversize_seq = seq;
            self->oversize_len = send_body_len(len);
        }
        return 1;
    }
    wire_send_t s = NHUB__WIRE__V1__SEND__INIT;
    s.stream_seq = seq - self->stream_base;
    s.envelope.len = len;
    s.envelope.data = (uint8_t *)data;
    if (session_write(self, WIRE_SEND, &s.base) != 0)
        return 1;
    ring_push(self, seq, now_ms(self));
    self->send_cursor = seq + 1;
    self->st.sent++;
    if (seq <= self->max_sent_seq)
        self->st.resent++;
    else
        self->max_sent_seq = seq;
    return 0;
}

static void settle_oversize(nhub_t *self, uint64_t seq, size_t body);

/* Write SENDs from the outbox, in order, while the window has room. */
static void fill_window(nhub_t *self)
{
    if (self->state != SESSION_READY || self->ring_count >= self->window || self->want_write)
        return;
    self->oversize_seq = 0;
    int rc = outbox_scan(self->store, self->send_cursor, send_visit, self);
    if (rc != 0)
        log_error("nhub.outbox_read_failed", "region=%s error=%d", self->region, rc);
    else if (self->oversize_seq)
        settle_oversize(self, self->oversize_seq, self->oversize_len);
}

static int envelope_msg_id(const nhub_t *self, const void *data, size_t len,
                           uint8_t out[NHUB_MSG_ID_LEN]);

/*
 * Decide about an outbox entry an ACK names: it leaves with the msg_id
 * recorded for on_ack, unless the ACK names another msg_id (a reply that
 * belongs to other numbering); then it stays and is sent again.
 */
static int ack_visit(void *arg, uint64_t seq, const void *data, size_t len)
{
    nhub_t *self = arg;
    for (size_t i = 0; i < self->n_acks; i++) {
        pending_ack_t *p = &self->acks[i];
        if (p->seq != seq)
            continue;
        uint8_t id[NHUB_MSG_ID_LEN];
        int have = envelope_msg_id(self, data, len, id) == 0;
        p->mismatch = have && p->ack_has_id && memcmp(id, p->ack_id, sizeof id) != 0;
        if (p->mismatch)
            return 1;
        p->removed = have || p->ack_has_id;
        memcpy(p->msg_id, have ? id : p->ack_id, sizeof id);
        return 0; /* seqs are unique in one flush: the first match is the one */
    }
    return 0;
}

/* Keep the first ACK of each seq in this burst: a repeat settles nothing new. */
static size_t unique_acks(nhub_t *self, uint64_t *seqs)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_acks; i++) {
        size_t j = 0;
        while (j < n && self->acks[j].seq != self->acks[i].seq)
            j++;
        if (j < n)
            continue;
        self->acks[n] = self->acks[i];
        self->acks[n].removed = 0;
        self->acks[n].mismatch = 0;
        seqs[n++] = self->acks[i].seq;
    }
    self->n_acks = n;
    return n;
}

/* Commit the ACKs read in this burst in one transaction. on_ack fires for
 * the entries removed here, so once per message. */
static void flush_acks(nhub_t *self)
{
    if (self->n_acks == 0)
        return;
    uint64_t seqs[NHUB_RECV_BURST];
    uint64_t removed = 0;
    size_t n = unique_acks(self, seqs);
    int rc = outbox_remove(self->store, seqs, n, ack_visit, self, &removed);
    self->n_acks = 0;
    if (rc != 0) {
        /* They stay in the outbox; a later resend is ACKed again as a repeat. */
        set_err(self, rc, "removing acknowledged messages: %s", outbox_error(self->store));
        log_error("nhub.ack_commit_failed", "region=%s n=%zu error=%d", self->region, n, rc);
        return;
    }
    self->st.acked += removed;
    for (size_t i = 0; i < n; i++) {
        const pending_ack_t *p = &self->acks[i];
        char hex[33];
        if (p->mismatch) {
            /* The hub holds another message at this stream_seq: another
             * writer numbers this stream too. read_frames starts a new one. */
            self->ack_conflict = 1;
            log_warn("nhub.ack_mismatch", "region=%s stream_seq=%llu ack_msg_id=%s",
                     self->region, (unsigned long long)(p->seq - self->stream_base),
                     nhub_msg_id_hex(p->ack_id, hex));
        } else if (p->removed && self->on_ack) {
            self->on_ack(self->on_ack_arg, p->msg_id);
        }
    }
}

/* ---- frames from the hub -------------------------------------------------- */

/* msg_id of an encoded envelope, for messages the hub settled without naming it. */
static int envelope_msg_id(const nhub_t *self, const void *data, size_t len,
                           uint8_t out[NHUB_MSG_ID_LEN])
{
    /* protobuf-c writes fields in number order, so our own envelopes start
     * with msg_id: tag 0x0a, length 16. Anything else takes the long way. */
    const uint8_t *p = data;
    if (len >= 2 + NHUB_MSG_ID_LEN && p[0] == 0x0a && p[1] == NHUB_MSG_ID_LEN) {
        memcpy(out, p + 2, NHUB_MSG_ID_LEN);
        return 0;
    }
    ProtobufCMessage *m = NULL;
    int rc = wire_decode(&nhub__wire__v1__envelope__descriptor, data, len, decode_budget(self),
                         &m);
    if (rc != 0)
        return rc;
    const wire_envelope_t *e = (const wire_envelope_t *)m;
    rc = e->msg_id.len == NHUB_MSG_ID_LEN ? 0 : NHUB_EMALFORMED;
    if (rc == 0)
        memcpy(out, e->msg_id.data, NHUB_MSG_ID_LEN);
    wire_free(&m);
    return rc;
}

/* What found_visit learns about one message. */
struct found_id {
    const nhub_t *self;
    const uint8_t *expect; /* msg_id the message must have, or NULL */
    int found;
    int mismatch;
    uint8_t msg_id[NHUB_MSG_ID_LEN];
};

struct collect_ids {
    const nhub_t *self;
    uint64_t prev;  /* seq of the previous call */
    uint8_t (*ids)[NHUB_MSG_ID_LEN];
    size_t n;
    size_t cap;
    int failed;
};

/* Record the msg_ids of the messages outbox_remove_upto removes. */
static int collect_visit(void *arg, uint64_t seq, const void *data, size_t len)
{
    struct collect_ids *c = arg;
    if (c->n && seq <= c->prev)
        c->n = 0; /* the transaction is being retried: the calls start again */
    c->prev = seq;
    if (c->failed)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        void *p = realloc(c->ids, cap * sizeof *c->ids);
        if (!p) {
            c->failed = 1; /* on_ack is not called then; the messages still leave */
            return 0;
        }
        c->ids = p;
        c->cap = cap;
    }
    if (envelope_msg_id(c->self, data, len, c->ids[c->n]) == 0)
        c->n++;
    return 0;
}

static int rotate_stream(nhub_t *self, const char *reason, uint64_t drop,
                         struct found_id *f);

static void on_welcome(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_welcome_t *w = (const wire_welcome_t *)m;
    if (w->protocol_version != WIRE_VERSION) {
        set_err(self, NHUB_EVERSION, "hub speaks protocol version %u", w->protocol_version);
        log_error("nhub.welcome_version", "region=%s version=%u", self->region,
                  w->protocol_version);
        backoff(self, "protocol_version");
        return;
    }
    self->stale_until_welcome = 0;
    self->hub_max_frame = w->max_frame;
    uint64_t next = 0;
    int rc = outbox_next_seq(self->store, &next);
    if (rc != 0) {
        set_err(self, rc, "reading the outbox: %s", outbox_error(self->store));
        log_error("nhub.welcome_read_failed", "region=%s error=%d", self->region, rc);
        backoff(self, "store");
        return;
    }
    uint64_t next_wire = next > self->stream_base ? next - self->stream_base : 0;
    if (w->stream_last >= next_wire) {
        /* The hub accepted numbers this store never gave out: another store
         * (a copy, a restored snapshot) writes this stream. Dropping anything
         * on its word would lose messages; a new stream resends them. */
        log_warn("nhub.stream_ahead", "region=%s stream_last=%llu next_stream_seq=%llu",
                 self->region, (unsigned long long)w->stream_last,
                 (unsigned long long)next_wire);
        rotate_stream(self, "stream_ahead", 0, NULL);
        return;
    }
    /* Learn the msg_ids for on_ack as the messages the hub holds leave. */
    struct collect_ids c = {.self = self};
    uint64_t removed = 0, last = w->stream_last + self->stream_base;
    rc = outbox_remove_upto(self->store, last, self->on_ack ? collect_visit : NULL, &c,
                            &removed);
    if (rc != 0) {
        set_err(self, rc, "dropping messages the hub holds: %s", outbox_error(self->store));
        log_error("nhub.welcome_commit_failed", "region=%s error=%d", self->region, rc);
        free(c.ids);
        backoff(self, "store");
        return;
    }
    self->st.acked += removed;
    ring_clear(self);
    self->send_cursor = last + 1;
    self->rotations = 0;
    self->hb_ms = self->heartbeat_ms;
    if (w->heartbeat_ms > 0 && (int64_t)w->heartbeat_ms < self->hb_ms)
        self->hb_ms = w->heartbeat_ms;
    inbox_session_reset(self->inbox);
    set_state(self, SESSION_READY);
    log_info("nhub.welcome", "region=%s stream_last=%llu dropped=%llu hub_max_frame=%u",
             self->region, (unsigned long long)w->stream_last, (unsigned long long)removed,
             w->max_frame);
    for (size_t i = 0; i < c.n; i++)
        self->on_ack(self->on_ack_arg, c.ids[i]);
    free(c.ids);
}

static void on_ack(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_ack_t *a = (const wire_ack_t *)m;
    uint64_t seq = local_seq(self, a->stream_seq);
    if (seq == 0 || self->stale_until_welcome)
        return; /* not a number of the stream the session uses */
    ring_mark(self, seq);
    self->backoff_ms = NHUB_BACKOFF_START_MS;
    self->ooo_since_ack = 0;
    if (self->n_acks == NHUB_RECV_BURST)
        flush_acks(self);
    /* Committed with the rest of the burst (flush_acks); on_ack fires for
     * the entry only if this ACK is what removes it. */
    pending_ack_t *p = &self->acks[self->n_acks++];
    p->seq = seq;
    p->ack_has_id = a->msg_id.len == NHUB_MSG_ID_LEN;
    if (p->ack_has_id)
        memcpy(p->ack_id, a->msg_id.data, NHUB_MSG_ID_LEN);
}

/* Learns the msg_id of a message as it leaves; keeps it if it is not `expect`. */
static int found_visit(void *arg, uint64_t seq, const void *data, size_t len)
{
    struct found_id *f = arg;
    (void)seq;
    f->found = envelope_msg_id(f->self, data, len, f->msg_id) == 0;
    f->mismatch = f->found && f->expect && memcmp(f->msg_id, f->expect, NHUB_MSG_ID_LEN) != 0;
    return f->mismatch;
}

/* The hub refused stream message `seq` for good: it leaves the outbox. */
static void reject_message(nhub_t *self, const wire_nack_t *n)
{
    struct found_id f = {.self = self};
    uint64_t removed = 0, seq = local_seq(self, n->stream_seq);
    if (seq == 0)
        return;
    if (n->msg_id.len == NHUB_MSG_ID_LEN)
        f.expect = n->msg_id.data;
    ring_mark(self, seq);
    int rc = outbox_remove(self->store, &seq, 1, found_visit, &f, &removed);
    if (rc != 0) {
        log_error("nhub.reject_commit_failed", "region=%s stream_seq=%llu error=%d",
                  self->region, (unsigned long long)n->stream_seq, rc);
        return;
    }
    if (f.mismatch)
        log_warn("nhub.nack_mismatch", "region=%s stream_seq=%llu", self->region,
                 (unsigned long long)n->stream_seq);
    if (!removed)
        return; /* already settled, or not the message meant */
    if (!f.found && n->msg_id.len == NHUB_MSG_ID_LEN)
        memcpy(f.msg_id, n->msg_id.data, NHUB_MSG_ID_LEN);
    char hex[33], text[160];
    self->st.rejected++;
    log_warn("nhub.rejected", "region=%s msg_id=%s stream_seq=%llu code=%d text=%s",
             self->region, nhub_msg_id_hex(f.msg_id, hex), (unsigned long long)n->stream_seq,
             (int)n->code, log_quote(text, sizeof text, n->text));
    if (self->on_reject)
        self->on_reject(self->on_reject_arg, f.msg_id, (int)n->code, n->text ? n->text : "");
}

/*
 * Another writer uses this stream (a copied store), or the hub has the
 * stream_id for another region: start a new stream. A SEND's conflict counts
 * only in READY: one arriving while a resync waits for its WELCOME answers a
 * SEND from before that HELLO, and the resend after the WELCOME will tell.
 */
static void on_conflict(nhub_t *self, const wire_nack_t *n)
{
    char text[160];
    if (n->stream_seq != 0 ? self->state != SESSION_READY
                           : self->state != SESSION_READY && self->state != SESSION_HELLO_SENT)
        return;
    log_warn("nhub.stream_conflict", "region=%s stream_seq=%llu text=%s", self->region,
             (unsigned long long)n->stream_seq, log_quote(text, sizeof text, n->text));
    rotate_stream(self, n->stream_seq ? "send_conflict" : "hello_conflict", 0, NULL);
}

static void on_nack(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_nack_t *n = (const wire_nack_t *)m;
    char text[160];
    log_debug("nhub.nack", "region=%s code=%d stream_seq=%llu expected=%llu retryable=%d text=%s",
              self->region, (int)n->code, (unsigned long long)n->stream_seq,
              (unsigned long long)n->expected, (int)n->retryable,
              log_quote(text, sizeof text, n->text));
    if (n->stream_seq != 0 && self->stale_until_welcome)
        return; /* about a SEND of the stream used before this HELLO */
    switch (n->code) {
    case NHUB__WIRE__V1__NACK_CODE__NACK_STREAM_CONFLICT:
        on_conflict(self, n);
        return;
    case NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED:
        if (self->state != SESSION_HELLO_SENT)
            resync(self, "hello_required");
        return;
    case NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER:
        if (self->state != SESSION_READY)
            return; /* already resyncing: the WELCOME will say where to start */
        log_warn("nhub.out_of_order", "region=%s stream_seq=%llu expected=%llu", self->region,
                 (unsigned long long)n->stream_seq, (unsigned long long)n->expected);
        /* A second one with no ACK between means resending does not help. */
        if (self->ooo_since_ack++ > 0)
            backoff(self, "out_of_order");
        else
            resync(self, "out_of_order");
        return;
    default:
        break;
    }
    if (n->retryable) {
        /* While waiting for WELCOME, NACKs of SENDs from before the HELLO are stale. */
        if (self->state == SESSION_HELLO_SENT && n->stream_seq != 0)
            return;
        backoff(self, "retryable_nack");
        return;
    }
    if (n->stream_seq != 0) {
        reject_message(self, n);
        return;
    }
    if (self->state == SESSION_HELLO_SENT) {
        set_err(self, NHUB_EREFUSED, "hub refused HELLO: code %d: %s", (int)n->code,
                n->text ? n->text : "");
        log_error("nhub.hello_refused", "region=%s code=%d text=%s", self->region, (int)n->code,
                  log_quote(text, sizeof text, n->text));
        backoff(self, "hello_refused");
        return;
    }
    log_warn("nhub.nack", "region=%s code=%d text=%s", self->region, (int)n->code,
             log_quote(text, sizeof text, n->text));
}

/*
 * Start a new stream and say HELLO on it (outbox_rotate). `drop` (a local
 * seq, 0 = none) leaves the outbox in the same transaction and `f` learns
 * its msg_id; without it the rotation happens only if the store still has
 * this session's stream (another process may have rotated already: then its
 * stream is adopted). A second rotation without a WELCOME between backs off
 * first, so a hub that refuses every stream cannot make the adapter spin.
 * Returns 1 if `drop` was removed here.
 */
static int rotate_stream(nhub_t *self, const char *reason, uint64_t drop, struct found_id *f)
{
    char old_hex[33], new_hex[33];
    outbox_rotation_t r = {
        .expect_id = drop ? NULL : self->stream_id,
        .drop = drop,
        .fn = drop ? found_visit : NULL,
        .arg = f,
    };
    int rc = outbox_rotate(self->store, &r);
    if (rc != 0) {
        set_err(self, rc, "starting a new stream: %s", outbox_error(self->store));
        log_error("nhub.rotate_failed", "region=%s reason=%s error=%d", self->region, reason,
                  rc);
        backoff(self, "store");
        return 0;
    }
    nhub_msg_id_hex(self->stream_id, old_hex);
    nhub_msg_id_hex(r.stream_id, new_hex);
    if (r.rotated) {
        self->st.streams_rotated++;
        log_warn("nhub.stream_rotated",
                 "region=%s reason=%s old_stream=%s stream=%s stream_base=%llu", self->region,
                 reason, old_hex, new_hex, (unsigned long long)r.base);
    } else {
        log_info("nhub.stream_adopted", "region=%s reason=%s old_stream=%s stream=%s",
                 self->region, reason, old_hex, new_hex);
    }
    if (self->rotations++ > 0)
        backoff(self, "stream_rotated");
    else
        send_hello(self);
    return r.dropped;
}

/*
 * The head message is larger than the hub takes (its max_frame, or ours):
 * it can never be sent. It is settled here as rejected, and since the hub
 * never saw its stream_seq, the stream is renumbered without it.
 */
static void settle_oversize(nhub_t *self, uint64_t seq, size_t body)
{
    struct found_id f = {.self = self};
    char hex[33], text[160];
    uint32_t limit = frame_limit(self);
    if (!rotate_stream(self, "too_large", seq, &f))
        return;
    snprintf(text, sizeof text, "message of %zu bytes exceeds max_frame %u%s", body, limit,
             limit < self->max_frame ? " of the hub" : "");
    self->st.rejected++;
    log_warn("nhub.rejected", "region=%s msg_id=%s code=%d text=\"%s\"", self->region,
             nhub_msg_id_hex(f.msg_id, hex), (int)NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE,
             text);
    if (self->on_reject)
        self->on_reject(self->on_reject_arg, f.msg_id,
                        (int)NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE, text);
}

static void send_delivered(nhub_t *self, const uint8_t msg_id[NHUB_MSG_ID_LEN], uint64_t dseq)
{
    if (self->state != SESSION_READY)
        return; /* the hub redelivers; the confirmed set answers then */
    wire_delivered_t d = NHUB__WIRE__V1__DELIVERED__INIT;
    d.msg_id.len = NHUB_MSG_ID_LEN;
    d.msg_id.data = (uint8_t *)msg_id;
    d.dseq = dseq;
    session_write(self, WIRE_DELIVERED, &d.base);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Queue a checked envelope for nhub_recv. */
static void queue_delivery(nhub_t *self, const wire_deliver_t *dl, const wire_envelope_t *e)
{
    nhub_delivery_t d;
    memset(&d, 0, sizeof d);
    memcpy(d.msg_id, e->msg_id.data, NHUB_MSG_ID_LEN);
    copy_str(d.source, sizeof d.source, e->source);
    copy_str(d.destination, sizeof d.destination, e->destination);
    copy_str(d.item, sizeof d.item, e->item);
    copy_str(d.payload_type, sizeof d.payload_type, e->payload_type);
    d.kind = (int)e->kind;
    if (e->correlation_id.len == NHUB_MSG_ID_LEN) {
        memcpy(d.correlation_id, e->correlation_id.data, NHUB_MSG_ID_LEN);
        d.correlation_len = NHUB_MSG_ID_LEN;
    }
    d.created_ms = e->created_ms;
    d.deadline_ms = e->deadline_ms;
    d.seq = dl->seq;
    d.dseq = dl->dseq;
    if (inbox_push(self->inbox, &d, e->payload.data, e->payload.len) != 0)
        log_error("nhub.deliver_nomem", "region=%s dseq=%llu", self->region,
                  (unsigned long long)dl->dseq);
}

static void on_deliver(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_deliver_t *dl = (const wire_deliver_t *)m;
    ProtobufCMessage *em = NULL;
    char why[128] = "";
    char hex[33];
    int found = 0;
    int rc = wire_decode(&nhub__wire__v1__envelope__descriptor, dl->envelope.data,
                         dl->envelope.len, decode_budget(self), &em);
    if (rc == 0)
        rc = wire_envelope_check((const wire_envelope_t *)em, why, sizeof why);
    if (rc != 0) {
        /* Not ours to fix and never handed out; keep the queue moving behind it. */
        self->malformed++;
        log_error("nhub.deliver_malformed", "region=%s seq=%llu dseq=%llu why=%s", self->region,
                  (unsigned long long)dl->seq, (unsigned long long)dl->dseq,
                  why[0] ? why : "does not decode");
        inbox_skip(self->inbox, dl->dseq, dl->prev_dseq);
        wire_free(&em);
        return;
    }
    const wire_envelope_t *e = (const wire_envelope_t *)em;
    nhub_msg_id_hex(e->msg_id.data, hex);
    rc = outbox_confirmed_has(self->store, e->msg_id.data, &found);
    if (rc != 0) {
        log_error("nhub.confirmed_lookup_failed", "region=%s msg_id=%s", self->region, hex);
    } else if (found) {
        self->st.duplicates++;
        inbox_skip(self->inbox, dl->dseq, dl->prev_dseq);
        send_delivered(self, e->msg_id.data, dl->dseq);
        log_debug("nhub.deliver_confirmed_before", "region=%s msg_id=%s dseq=%llu", self->region,
                  hex, (unsigned long long)dl->dseq);
    } else {
        inbox_verdict_t v = inbox_classify(self->inbox, e->msg_id.data, dl->dseq, dl->prev_dseq);
        if (v == INBOX_ACCEPT)
            queue_delivery(self, dl, e);
        else if (v == INBOX_DUPLICATE)
            self->st.duplicates++;
        log_debug("nhub.deliver", "region=%s msg_id=%s dseq=%llu attempt=%u verdict=%d",
                  self->region, hex, (unsigned long long)dl->dseq, dl->attempt, (int)v);
    }
    wire_free(&em);
}

static void on_heartbeat(nhub_t *self, const ProtobufCMessage *m)
{
    (void)self;
    (void)m;
}

static void on_bye(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_bye_t *b = (const wire_bye_t *)m;
    char reason[128];
    log_info("nhub.hub_bye", "region=%s reason=%s", self->region,
             log_quote(reason, sizeof reason, b->reason));
    backoff(self, "hub_bye");
}

typedef void(frame_handler_fn)(nhub_t *self, const ProtobufCMessage *body);

/* What the adapter does with each command the hub may send; NULL: not from a hub. */
static frame_handler_fn *const handlers[WIRE_CMD_MAX + 1] = {
    [WIRE_WELCOME] = on_welcome, [WIRE_ACK] = on_ack,         [WIRE_NACK] = on_nack,
    [WIRE_DELIVER] = on_deliver, [WIRE_HEARTBEAT] = on_heartbeat, [WIRE_BYE] = on_bye,
};

static void frame_malformed(nhub_t *self, const char *why, int cmd)
{
    self->malformed++;
    log_warn("nhub.frame_dropped", "region=%s why=%s cmd=%d", self->region, why, cmd);
}

static void handle_frame(nhub_t *self, const wire_frames_t *f)
{
    int cmd = 0;
    ProtobufCMessage *body = NULL;
    self->last_rx_ms = now_ms(self);
    const char *bad = NULL;
    if (f->n_frames != 2 || f->n_kept < 2)
        bad = "frame_count";
    else if (wire_header_parse(wire_frame_data(f, 0), wire_frame_len(f, 0), &cmd, NULL) != 0)
        bad = "header";
    else if (cmd < 1 || cmd > WIRE_CMD_MAX || !handlers[cmd])
        bad = "command";
    else if (self->state == SESSION_DOWN)
        return; /* the connection was just lost; this frame belongs to it */
    else if (wire_decode(wire_body_descriptor((wire_cmd_t)cmd), wire_frame_data(f, 1),
                         wire_frame_len(f, 1), decode_budget(self), &body) != 0)
        bad = "body";
    if (bad) {
        frame_malformed(self, bad, cmd);
        return;
    }
    handlers[cmd](self, body);
    wire_free(&body);
}

static void read_frames(nhub_t *self)
{
    for (int i = 0; i < NHUB_RECV_BURST && self->sock; i++) {
        wire_frames_t f;
        memset(&f, 0, sizeof f);
        if (wire_recv(self->sock, &f, ZMQ_DONTWAIT) != 0)
            break;
        handle_frame(self, &f);
        wire_frames_close(&f);
    }
    flush_acks(self);
    if (self->ack_conflict) {
        self->ack_conflict = 0;
        if (self->state == SESSION_READY || self->state == SESSION_HELLO_SENT)
            rotate_stream(self, "ack_mismatch", 0, NULL);
    }
}

static void monitor_event(nhub_t *self, unsigned event, unsigned value)
{
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        if (self->state != SESSION_DOWN)
            return;
        log_info("nhub.connected", "region=%s hub=%s", self->region, self->endpoint);
        self->last_rx_ms = now_ms(self);
        self->backoff_ms = NHUB_BACKOFF_START_MS;
        send_hello(self);
        return;
    case ZMQ_EVENT_DISCONNECTED:
        session_lost(self, "disconnected");
        return;
    default:
        log_warn("nhub.handshake_failed", "region=%s event=%u value=%u", self->region, event,
                 value);
        return;
    }
}

/* Read every monitor event waiting: frame 1 is u16 event + u32 value, frame 2 the endpoint. */
static void read_monitor(nhub_t *self)
{
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        unsigned event = 0, value = 0;
        if (zmq_msg_size(&msg) >= 6) {
            const uint8_t *p = zmq_msg_data(&msg);
            uint16_t ev16;
            uint32_t v32;
            memcpy(&ev16, p, 2);
            memcpy(&v32, p + 2, 4);
            event = ev16;
            value = v32;
        }
        int more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
        while (more) {
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, self->mon, 0) < 0)
                more = 0;
            else
                more = zmq_msg_more(&msg);
            zmq_msg_close(&msg);
        }
        if (event)
            monitor_event(self, event, value);
    }
}

/* ---- timers --------------------------------------------------------------- */

static int expects_traffic(const nhub_t *self)
{
    return self->state == SESSION_NEED_HELLO || self->state == SESSION_HELLO_SENT ||
           self->state == SESSION_READY;
}

static void send_heartbeat(nhub_t *self, int64_t now)
{
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    hb.time_ms = wall_ms(self);
    self->last_hb_ms = now;
    session_write(self, WIRE_HEARTBEAT, &hb.base);
}

static void run_timers(nhub_t *self, int64_t now)
{
    if (expects_traffic(self) && now - self->last_rx_ms > NHUB_SILENT_BEATS * self->hb_ms) {
        reconnect(self);
        return;
    }
    if (self->state == SESSION_BACKOFF && now >= self->backoff_until) {
        send_hello(self);
        return;
    }
    if (self->state != SESSION_READY)
        return;
    if (now - self->last_hb_ms >= self->hb_ms)
        send_heartbeat(self, now);
    const inflight_t *old = ring_oldest(self);
    if (old && now - old->sent_ms > self->resend_after_ms)
        resync(self, "resend_after");
}

/* Milliseconds until the next timer is due (>= 0), or -1 for none. */
static int64_t next_timer_in(const nhub_t *self, int64_t now)
{
    int64_t due = INT64_MAX;
    if (expects_traffic(self))
        due = self->last_rx_ms + NHUB_SILENT_BEATS * self->hb_ms + 1;
    if (self->state == SESSION_BACKOFF && self->backoff_until < due)
        due = self->backoff_until;
    if (self->state == SESSION_READY) {
        if (self->last_hb_ms + self->hb_ms < due)
            due = self->last_hb_ms + self->hb_ms;
        const inflight_t *old = ring_oldest(self);
        if (old && old->sent_ms + self->resend_after_ms + 1 < due)
            due = old->sent_ms + self->resend_after_ms + 1;
    }
    if (due == INT64_MAX)
        return -1;
    return due > now ? due - now : 0;
}

/* Forget confirmations older than the retention, a bounded batch at a time. */
static void expire_confirmed(nhub_t *self)
{
    int64_t now = now_ms(self);
    if (now < self->next_expire_ms)
        return;
    self->next_expire_ms = now + NHUB_EXPIRE_EVERY_MS;
    int64_t wall = wall_ms(self);
    int64_t before = wall > INT64_MIN + self->confirmed_retention_ms
                         ? wall - self->confirmed_retention_ms
                         : INT64_MIN;
    uint64_t n = 0;
    int rc = outbox_confirmed_expire(self->store, before, NHUB_EXPIRE_BATCH, &n);
    if (rc != 0) {
        log_error("nhub.confirmed_expire_failed", "region=%s error=%d", self->region, rc);
        return;
    }
    self->st.confirmed_expired += n;
    if (n)
        log_debug("nhub.confirmed_expired", "region=%s n=%llu", self->region,
                  (unsigned long long)n);
}

/* ---- the serving loop ----------------------------------------------------- */

typedef int(done_fn)(nhub_t *self);

/*
 * Serve the connection until `done` (may be NULL) says so or `timeout_ms`
 * (real time; -1 = forever) passes. Returns 0 when done, NHUB_ETIMEOUT,
 * NHUB_ECLOSED if a signal interrupted the wait, or NHUB_EZMQ.
 */
static int serve(nhub_t *self, int timeout_ms, done_fn *done)
{
    if (self->offline)
        return set_err(self, NHUB_ECLOSED, "opened offline: no connection to serve");
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : real_ms() + timeout_ms;
    for (int polled = 0;; polled = 1) {
        expire_confirmed(self);
        run_timers(self, now_ms(self));
        fill_window(self);
        if (done && done(self))
            return 0;
        int64_t real_now = real_ms();
        if (polled && real_now >= deadline)
            return NHUB_ETIMEOUT;
        int64_t wait = deadline == INT64_MAX ? -1 : deadline - real_now;
        if (wait < 0 && deadline != INT64_MAX)
            wait = 0;
        int64_t timer = next_timer_in(self, now_ms(self));
        if (timer >= 0 && (wait < 0 || timer < wait))
            wait = timer;
        if (self->state == SESSION_READY && (wait < 0 || wait > NHUB_OUTBOX_LOOK_MS))
            wait = NHUB_OUTBOX_LOOK_MS;
        if (wait > 1000000)
            wait = 1000000;
        zmq_pollitem_t items[2] = {
            {self->sock, 0, (short)(ZMQ_POLLIN | (self->want_write ? ZMQ_POLLOUT : 0)), 0},
            {self->mon, 0, ZMQ_POLLIN, 0},
        };
        if (zmq_poll(items, 2, (long)wait) < 0) {
            if (zmq_errno() == EINTR || zmq_errno() == ETERM)
                return set_err(self, NHUB_ECLOSED, "interrupted");
            return set_err(self, NHUB_EZMQ, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        }
        if (items[1].revents & ZMQ_POLLIN)
            read_monitor(self);
        if (items[0].revents & ZMQ_POLLOUT) {
            self->want_write = 0;
            if (self->state == SESSION_NEED_HELLO)
                send_hello(self);
        }
        if (items[0].revents & ZMQ_POLLIN)
            read_frames(self);
    }
}

static int have_ready(nhub_t *self)
{
    return inbox_ready(self->inbox) > 0;
}

static int outbox_empty(nhub_t *self)
{
    uint64_t n = 1;
    return outbox_count(self->store, &n) == 0 && n == 0;
}

/* ---- public API ----------------------------------------------------------- */

static int copy_options(nhub_t *self, const nhub_options_t *opt)
{
    if (!opt->region || !wire_region_valid(opt->region))
        return set_err(self, NHUB_EINVAL, "region must be six digits");
    if (!opt->offline && (!opt->hub_endpoint || !opt->hub_endpoint[0]))
        return set_err(self, NHUB_EINVAL, "hub_endpoint is missing");
    if (!opt->data_dir || !opt->data_dir[0])
        return set_err(self, NHUB_EINVAL, "data_dir is missing");
    if (opt->n_accepted > NHUB_ACCEPTED_MAX || (opt->n_accepted && !opt->accepted_payloads))
        return set_err(self, NHUB_EINVAL, "accepted_payloads: at most %d entries",
                       NHUB_ACCEPTED_MAX);
    if (opt->resend_after_ms < 0 || opt->heartbeat_ms < 0)
        return set_err(self, NHUB_EINVAL, "resend_after_ms and heartbeat_ms must be >= 0");
    if (opt->confirmed_retention_ms < 0)
        return set_err(self, NHUB_EINVAL, "confirmed_retention_ms must be >= 0");
    copy_str(self->region, sizeof self->region, opt->region);
    self->endpoint = strdup(opt->hub_endpoint ? opt->hub_endpoint : "");
    self->credit = opt->credit ? opt->credit : NHUB_DEFAULT_CREDIT;
    self->window = opt->window ? opt->window : NHUB_DEFAULT_WINDOW;
    self->max_frame = opt->max_frame ? opt->max_frame : NHUB_DEFAULT_MAX_FRAME;
    self->resend_after_ms = opt->resend_after_ms ? opt->resend_after_ms : NHUB_DEFAULT_RESEND_MS;
    self->heartbeat_ms = opt->heartbeat_ms ? opt->heartbeat_ms : NHUB_DEFAULT_HEARTBEAT_MS;
    self->hb_ms = self->heartbeat_ms;
    self->map_size_max = opt->map_size_max;
    self->confirmed_retention_ms = opt->confirmed_retention_ms
                                       ? opt->confirmed_retention_ms
                                       : NHUB_DEFAULT_CONFIRMED_RETENTION_MS;
    self->on_reject = opt->on_reject;
    self->on_reject_arg = opt->on_reject_arg;
    self->on_ack = opt->on_ack;
    self->on_ack_arg = opt->on_ack_arg;
    self->offline = opt->offline;
    self->send_only = opt->send_only;
    if (self->window > 1000000)
        return set_err(self, NHUB_EINVAL, "window must be at most 1000000");
    self->ring = calloc(self->window, sizeof *self->ring);
    self->accepted = calloc(opt->n_accepted + 1, sizeof *self->accepted);
    if (!self->endpoint || !self->ring || !self->accepted)
        return set_err(self, NHUB_ENOMEM, "out of memory");
    for (size_t i = 0; i < opt->n_accepted; i++) {
        if (!wire_payload_pattern_valid(opt->accepted_payloads[i]))
            return set_err(self, NHUB_EINVAL,
                           "accepted_payloads[%zu] is not a payload type or \"pkg.v1.*\"", i);
        self->accepted[i] = strdup(opt->accepted_payloads[i]);
        if (!self->accepted[i])
            return set_err(self, NHUB_ENOMEM, "out of memory");
        self->n_accepted++;
    }
    return 0;
}

static void nhub_free(nhub_t *self)
{
    sock_close(self);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    inbox_destroy(&self->inbox);
    outbox_close(&self->store);
    for (size_t i = 0; self->accepted && i < self->n_accepted; i++)
        free(self->accepted[i]);
    free(self->accepted);
    free(self->ring);
    free(self->endpoint);
    free(self);
}

int nhub_open(const nhub_options_t *opt, nhub_t **out, char *err, size_t errcap)
{
    int rc;
    if (out)
        *out = NULL;
    if (!opt || !out) {
        if (err && errcap)
            snprintf(err, errcap, "options and out must not be NULL");
        return NHUB_EINVAL;
    }
    nhub_t *self = calloc(1, sizeof *self);
    if (!self) {
        if (err && errcap)
            snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    self->clk = *nhub_clock_system();
    self->backoff_ms = NHUB_BACKOFF_START_MS;
    self->send_cursor = 1;
    self->next_expire_ms = INT64_MIN;
    rc = copy_options(self, opt);
    if (rc != 0)
        goto fail;
    rc = outbox_open(opt->data_dir, opt->map_size_max, &self->store,
                     self->last_error, sizeof self->last_error);
    if (rc != 0)
        goto fail;
    self->inbox = inbox_new((size_t)self->credit * 2 + 16);
    if (!self->inbox) {
        rc = set_err(self, NHUB_ENOMEM, "out of memory");
        goto fail;
    }
    if (!self->offline) {
        self->zctx = zmq_ctx_new();
        if (!self->zctx) {
            rc = set_err(self, NHUB_EZMQ, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
            goto fail;
        }
        rc = sock_open(self);
        if (rc != 0)
            goto fail;
    }
    log_info("nhub.open", "region=%s hub=%s offline=%d", self->region, self->endpoint,
             self->offline);
    *out = self;
    return 0;
fail:
    if (err && errcap)
        snprintf(err, errcap, "%s", self->last_error);
    nhub_free(self);
    return rc;
}

void nhub_close(nhub_t **selfp)
{
    if (!selfp || !*selfp)
        return;
    nhub_t *self = *selfp;
    *selfp = NULL;
    if (self->sock && (self->state == SESSION_READY || self->state == SESSION_HELLO_SENT)) {
        /* A short linger lets the BYE out; anything else queued is in the outbox anyway. */
        wire_bye_t bye = NHUB__WIRE__V1__BYE__INIT;
        bye.reason = "close";
        session_write(self, WIRE_BYE, &bye.base);
        sockopt_int(self->sock, ZMQ_LINGER, 200);
    }
    log_info("nhub.close", "region=%s sent=%llu acked=%llu received=%llu confirmed=%llu",
             self->region, (unsigned long long)self->st.sent, (unsigned long long)self->st.acked,
             (unsigned long long)self->st.received, (unsigned long long)self->st.confirmed);
    nhub_free(self);
}

/* Check the fields a caller gives, naming the first wrong one. */
static int check_message(nhub_t *self, const nhub_message_t *msg)
{
    if (!msg)
        return set_err(self, NHUB_EINVAL, "message is NULL");
    if (!msg->destination || !msg->destination[0])
        return set_err(self, NHUB_EINVAL, "destination is missing");
    if (strcmp(msg->destination, WIRE_BROADCAST) != 0 && !wire_region_valid(msg->destination))
        return set_err(self, NHUB_EINVAL, "destination must be six digits or \"*\"");
    if (strcmp(msg->destination, self->region) == 0)
        return set_err(self, NHUB_EINVAL, "destination is this adapter's own region");
    if (!msg->item || !msg->item[0])
        return set_err(self, NHUB_EINVAL, "item is missing");
    if (msg->kind < NHUB_KIND_REQUEST || msg->kind > NHUB_KIND_NOTICE)
        return set_err(self, NHUB_EINVAL, "kind %d is not a known kind", msg->kind);
    if (!msg->payload_type || !msg->payload_type[0])
        return set_err(self, NHUB_EINVAL, "payload_type is missing");
    if (!msg->payload && msg->payload_len)
        return set_err(self, NHUB_EINVAL, "payload is NULL but payload_len is %zu",
                       msg->payload_len);
    if (msg->deadline_ms < 0)
        return set_err(self, NHUB_EINVAL, "deadline_ms is negative");
    return 0;
}

int nhub_send(nhub_t *self, const nhub_message_t *msg, uint8_t msg_id_out[NHUB_MSG_ID_LEN])
{
    uint8_t id[NHUB_MSG_ID_LEN];
    char why[160] = "";
    uint8_t *buf = NULL;
    if (!self)
        return NHUB_EINVAL;
    int rc = check_message(self, msg);
    if (rc != 0)
        return rc;
    if (msg->msg_id)
        memcpy(id, msg->msg_id, sizeof id);
    else if (ids_msg_id(id, wall_ms(self)) != 0)
        return set_err(self, NHUB_EIO, "getrandom failed: %s", strerror(errno));

    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id.len = sizeof id;
    e.msg_id.data = id;
    e.source = self->region;
    e.destination = (char *)msg->destination;
    e.item = (char *)msg->item;
    e.kind = (Nhub__Wire__V1__Kind)msg->kind;
    if (msg->correlation_id) {
        e.correlation_id.len = NHUB_MSG_ID_LEN;
        e.correlation_id.data = (uint8_t *)msg->correlation_id;
    }
    e.created_ms = wall_ms(self);
    e.deadline_ms = msg->deadline_ms;
    e.payload_type = (char *)msg->payload_type;
    e.payload.len = msg->payload_len;
    e.payload.data = (uint8_t *)msg->payload;
    if (wire_envelope_check(&e, why, sizeof why) != 0)
        return set_err(self, NHUB_EINVAL, "%s", why[0] ? why : "envelope is invalid");

    /* The hub limits the Send body: the envelope plus its stream_seq and
     * framing. Its own limit, once a WELCOME told it, counts too. */
    uint32_t limit = frame_limit(self);
    const char *whose = limit < self->max_frame ? " of the hub" : "";
    if (msg->payload_len > limit)
        return set_err(self, NHUB_ETOOBIG, "payload of %zu bytes exceeds max_frame %u%s",
                       msg->payload_len, limit, whose);
    size_t len = protobuf_c_message_get_packed_size(&e.base);
    size_t body = send_body_len(len);
    if (body > limit)
        return set_err(self, NHUB_ETOOBIG, "message of %zu bytes exceeds max_frame %u%s", body,
                       limit, whose);
    buf = malloc(len ? len : 1);
    if (!buf)
        return set_err(self, NHUB_ENOMEM, "out of memory");
    protobuf_c_message_pack(&e.base, buf);
    uint64_t seq = 0;
    rc = outbox_append(self->store, buf, len, &seq);
    free(buf);
    if (rc != 0)
        return set_err(self, rc, "%s", outbox_error(self->store));
    if (msg_id_out)
        memcpy(msg_id_out, id, sizeof id);
    if (!self->offline)
        serve(self, 0, NULL);
    return 0;
}

int nhub_recv(nhub_t *self, nhub_delivery_t **out, int timeout_ms)
{
    if (!self || !out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!have_ready(self)) {
        int rc = serve(self, timeout_ms, have_ready);
        if (rc != 0)
            return rc;
    }
    *out = inbox_pop(self->inbox);
    self->st.received++;
    return 0;
}

int nhub_confirm(nhub_t *self, nhub_delivery_t **dp)
{
    if (!self)
        return NHUB_EINVAL;
    if (!dp || !*dp)
        return set_err(self, NHUB_EINVAL, "delivery is NULL");
    nhub_delivery_t *d = *dp;
    if (!inbox_holds(self->inbox, d))
        return set_err(self, NHUB_EINVAL, "delivery is not held by this adapter");
    int rc = outbox_confirmed_put(self->store, d->msg_id, d->dseq, wall_ms(self));
    if (rc != 0)
        return set_err(self, rc, "%s", outbox_error(self->store));
    send_delivered(self, d->msg_id, d->dseq);
    self->st.confirmed++;
    inbox_release(self->inbox, d);
    *dp = NULL;
    return 0;
}

void nhub_delivery_release(nhub_t *self, nhub_delivery_t **dp)
{
    if (!self || !dp || !*dp)
        return;
    inbox_release(self->inbox, *dp);
    *dp = NULL;
}

int nhub_pump(nhub_t *self, int timeout_ms)
{
    int rc = serve(self, timeout_ms, NULL);
    return rc == NHUB_ETIMEOUT ? 0 : rc;
}

int nhub_flush(nhub_t *self, int timeout_ms)
{
    if (self->offline)
        return outbox_empty(self) ? 0 : set_err(self, NHUB_ECLOSED, "opened offline");
    return serve(self, timeout_ms, outbox_empty);
}

void nhub_stats(const nhub_t *self, nhub_stats_t *out)
{
    *out = self->st;
    out->connected = self->state == SESSION_READY;
    uint64_t n = 0;
    if (outbox_count(self->store, &n) == 0)
        out->outbox = n;
}

struct each_arg {
    const nhub_t *self;
    nhub_outbox_fn *fn;
    void *arg;
};

static int each_visit(void *arg, uint64_t seq, const void *data, size_t len)
{
    struct each_arg *a = arg;
    uint8_t id[NHUB_MSG_ID_LEN];
    (void)seq;
    if (envelope_msg_id(a->self, data, len, id) != 0)
        return 0;
    return a->fn(a->arg, id) ? 1 : 0;
}

int nhub_outbox_each(nhub_t *self, nhub_outbox_fn *fn, void *arg)
{
    struct each_arg a = {self, fn, arg};
    int rc = outbox_scan(self->store, 1, each_visit, &a);
    if (rc != 0)
        return set_err(self, rc, "%s", outbox_error(self->store));
    return 0;
}

int nhub_store_info(nhub_t *self, nhub_store_info_t *out)
{
    uint64_t base = 0, next = 0;
    memset(out, 0, sizeof *out);
    int rc = outbox_stream(self->store, out->stream_id, &base);
    if (rc == 0)
        rc = outbox_next_seq(self->store, &next);
    out->next_stream_seq = next - base;
    if (rc == 0)
        rc = outbox_count(self->store, &out->outbox);
    if (rc == 0)
        rc = outbox_confirmed_count(self->store, &out->confirmed_ids);
    if (rc != 0)
        return set_err(self, rc, "%s", outbox_error(self->store));
    out->map_size = outbox_map_size(self->store);
    out->map_size_max = self->map_size_max ? self->map_size_max : 4ull << 30;
    return 0;
}

/* Calls the caller's clock, or the system's where the caller gave none. */
static int64_t custom_wall(void *arg)
{
    const nhub_t *self = arg;
    return self->wall_fn ? self->wall_fn(self->clock_arg) : clock_wall_ms(nhub_clock_system());
}

static int64_t custom_mono(void *arg)
{
    const nhub_t *self = arg;
    return self->mono_fn ? self->mono_fn(self->clock_arg) : clock_mono_ms(nhub_clock_system());
}

void nhub_set_clock(nhub_t *self, nhub_clock_fn *wall, nhub_clock_fn *mono, void *arg)
{
    self->wall_fn = wall;
    self->mono_fn = mono;
    self->clock_arg = arg;
    if (!wall && !mono) {
        self->clk = *nhub_clock_system();
        return;
    }
    self->clk = (nhub_clock_t){.wall_ms = custom_wall, .mono_ms = custom_mono, .arg = self};
}

const char *nhub_last_error(const nhub_t *self)
{
    return self ? self->last_error : "";
}
