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
 *
 * Identity. With a key file the DEALER is a CurveZMQ client (the hub's ZAP
 * handler decides whether this region's CURVE key may connect) and every
 * envelope is signed when nhub_send stores it; the signature and key id
 * live beside the envelope in the outbox record, committed together. A
 * record whose key id is not the current key's (stored unsigned, or before
 * the region rotated its key) is signed again as it is sent: a stale
 * signature would only be refused. A refused handshake is not explained to
 * the client and libzmq does not retry it, so the socket monitor's
 * HANDSHAKE_FAILED_* events are the only news: they are counted, logged once
 * per change of state, recorded in the store for status tools, and the
 * socket is made anew after a back-off (1 s doubling to 30 s), so the
 * adapter recovers on its own once the hub accepts its key.
 */
#include "nhub.h"

#include "clock.h"
#include "ids.h"
#include "inbox.h"
#include "keys.h"
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
#define NHUB_MAX_MAX_FRAME (64u << 20) /* as the hub's own limit */
/* Frames read in one go before the ACKs among them are committed together. */
#define NHUB_RECV_BURST 256
#define NHUB_HWM_MAX (1u << 20) /* messages queued in the socket each way, at most */
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
/* After a failed security handshake (libzmq does not retry it): a new socket
 * after this long, doubling up to the maximum; reset when a session starts. */
#define NHUB_REOPEN_START_MS 1000
#define NHUB_REOPEN_MAX_MS 30000
/* Bytes the signature and key_id fields add to a Send body, at most. */
#define NHUB_SIG_FIELDS_MAX ((1 + 2 + KEYS_SIG_MAX) + (1 + 1 + KEYS_FPR_LEN))

enum session_state {
    SESSION_DOWN,       /* no connection to the hub */
    SESSION_NEED_HELLO, /* connected; HELLO due but not yet written */
    SESSION_HELLO_SENT, /* waiting for WELCOME */
    SESSION_READY,      /* WELCOME seen: sending and receiving */
    SESSION_BACKOFF,    /* the hub asked us to retry later; HELLO at backoff_until */
};

static const char *const state_names[] = {"down", "need_hello", "hello_sent", "ready",
                                          "backoff"};

/* Why the link is not up; a change of cause is logged as an error again. */
enum link_cause {
    LINK_CAUSE_NONE = 0,
    LINK_CAUSE_ZAP = 1,       /* the hub's ZAP handler refused the CURVE key */
    LINK_CAUSE_HANDSHAKE = 2, /* the security handshake failed otherwise */
    LINK_CAUSE_NACK = 100,    /* + NACK code: the hub refused the HELLO */
};

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
    keys_file_t *keys;              /* NULL: insecure_plaintext (or offline without keys) */
    char hub_key[KEYS_Z85_LEN + 1]; /* the hub's CURVE public key, Z85 */

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
    int64_t reopen_at;      /* a new socket is due then (failed handshake); 0 = none */
    int64_t reopen_ms;      /* the next such wait */
    int link;               /* enum nhub_link, as this process sees it */
    int link_cause;         /* enum link_cause (+ NACK code) of the last failure */
    char link_error[NHUB_LINK_ERROR_MAX]; /* why it is not up, for nhub_stats */
    int link_stored;                      /* the link state the store holds, as far as we know */
    int sign_failed;                      /* a signature at transmit failed (logged once) */
    int resign_logged;                    /* re-signing at transmit was logged */

    inflight_t *ring; /* `window` slots */
    /* DELIVEREDs written in this session that the hub is not yet known to
     * have committed, oldest first (`credit` * 2 + 16 slots). Each records
     * how many HEARTBEATs the session had written before it; the hub
     * answers a HEARTBEAT (echoing its number) only once everything before
     * it is committed, so once a later one is answered, the entry leaves
     * the store's unsent set and starts aging. Every one of them is also in that set
     * (durably), so losing this list loses nothing: the next session
     * writes them again. */
    struct proof {
        outbox_unsent_t u;
        uint64_t beats;
    } *proof;
    size_t proof_cap, proof_head, proof_count;
    uint64_t beats_written;  /* HEARTBEATs of this session, numbered from 1 in `beat` */
    uint64_t beats_answered; /* the highest of them the hub answered */
    /* Where writing the store's unsent set has got to in this session. */
    uint8_t unsent_after[NHUB_MSG_ID_LEN];
    int unsent_started; /* unsent_after is set */
    int unsent_done;    /* the scan reached the end and nothing was added since */
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

int nhub_log_setup(const char *level, FILE *stream)
{
    enum log_level l;
    if (!level || log_level_parse(level, &l) != 0)
        return NHUB_EINVAL;
    log_setup(l, stream);
    return 0;
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
 * stream_seq and the signature at their largest, so the answer depends
 * neither on the numbering nor on the key (nor on the security mode: a
 * message that fits, fits after a change of mode or key). */
static size_t send_body_len(size_t len)
{
    return len + 1 + 10 + 1 + varint_len(len) + NHUB_SIG_FIELDS_MAX;
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
    /* The store keeps every DELIVERED not yet known committed: the next
     * session writes them all again. */
    self->proof_head = 0;
    self->proof_count = 0;
    self->beats_written = 0;
    self->beats_answered = 0;
    self->unsent_started = 0;
    self->unsent_done = 0;
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
    self->reopen_at = 0;
    /* Room for a whole window of SENDs and twice the credit of DELIVEREDs
     * each way: libzmq's default of 1,000 messages can be less than a
     * window or a credit. What still meets a full queue waits for POLLOUT. */
    uint64_t hwm = (uint64_t)self->window + 2 * (uint64_t)self->credit + 1024;
    if (hwm > NHUB_HWM_MAX)
        hwm = NHUB_HWM_MAX;
    if (sockopt_int(self->sock, ZMQ_SNDHWM, (int)hwm) ||
        sockopt_int(self->sock, ZMQ_RCVHWM, (int)hwm))
        goto fail;
    if (sockopt_int(self->sock, ZMQ_LINGER, 0) || sockopt_int(self->sock, ZMQ_IMMEDIATE, 1) ||
        sockopt_int(self->sock, ZMQ_RECONNECT_IVL, 100) ||
        sockopt_int(self->sock, ZMQ_RECONNECT_IVL_MAX, 2000) ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg))
        goto fail;
    /* CURVE keys must be set before connect (they apply to new connections). */
    if (self->keys &&
        (zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, self->hub_key, KEYS_Z85_LEN) ||
         zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, self->keys->curve_public, KEYS_Z85_LEN) ||
         zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, self->keys->curve_secret, KEYS_Z85_LEN)))
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

/*
 * Record the link state in the store for status tools: every failure (the
 * counters), and the first session after a failure. Not every disconnect:
 * that would be a synced write per lost connection for nothing.
 */
static void link_record(nhub_t *self, uint64_t auth_inc, uint64_t handshake_inc)
{
    int rc = outbox_link_put(self->store, self->link, auth_inc, handshake_inc, wall_ms(self),
                             self->link_error);
    if (rc != 0) {
        log_warn("nhub.link_record_failed", "region=%s error=%d", self->region, rc);
        return;
    }
    self->link_stored = self->link;
}

/*
 * The connection is refused or failed (`link`), for `cause` (enum
 * link_cause; plus the NACK code), explained by `why`. Logged as an error
 * once per change of state or cause (a refused adapter retries every 30 s
 * and would fill the log), then at debug level.
 */
static void link_failed(nhub_t *self, int link, int cause, const char *event, const char *why,
                        uint64_t auth_inc, uint64_t handshake_inc)
{
    char quoted[NHUB_LINK_ERROR_MAX + 16];
    int changed = self->link != link || self->link_cause != cause;
    self->link = link;
    self->link_cause = cause;
    snprintf(self->link_error, sizeof self->link_error, "%s", why);
    log_emit(changed ? LOG_ERROR : LOG_DEBUG, event, "region=%s hub=%s curve_fpr=%s why=%s",
             self->region, self->endpoint, self->keys ? self->keys->curve_fpr : "none",
             log_quote(quoted, sizeof quoted, why));
    if (changed || auth_inc || handshake_inc)
        link_record(self, auth_inc, handshake_inc);
}

static void link_up(nhub_t *self)
{
    if (self->link != NHUB_LINK_UP && self->link != NHUB_LINK_DOWN)
        log_info("nhub.link_recovered", "region=%s hub=%s previous=%s", self->region,
                 self->endpoint, nhub_link_name(self->link));
    self->link = NHUB_LINK_UP;
    self->link_cause = 0;
    self->link_error[0] = '\0';
    self->reopen_ms = NHUB_REOPEN_START_MS;
    if (self->link_stored != NHUB_LINK_UP)
        link_record(self, 0, 0);
}

static void backoff(nhub_t *self, const char *why);
static void flush_delivered(nhub_t *self);

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
    h.max_frame = self->max_frame + NHUB_FRAME_SLACK; /* the socket's ZMQ_MAXMSGSIZE */
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

/* A new socket after the back-off, for a connection libzmq gave up on. */
static void schedule_reopen(nhub_t *self)
{
    if (self->reopen_at)
        return;
    self->reopen_at = now_ms(self) + self->reopen_ms;
    log_debug("nhub.reopen_scheduled", "region=%s wait_ms=%lld", self->region,
              (long long)self->reopen_ms);
    self->reopen_ms *= 2;
    if (self->reopen_ms > NHUB_REOPEN_MAX_MS)
        self->reopen_ms = NHUB_REOPEN_MAX_MS;
}

/* Close the socket and make a new one; if that fails, try again later. */
static void sock_renew(nhub_t *self)
{
    sock_close(self);
    if (sock_open(self) != 0) {
        log_error("nhub.socket_failed", "region=%s error=%s", self->region, self->last_error);
        schedule_reopen(self);
    }
}

/* The hub went silent: drop the connection and make a fresh one. */
static void reconnect(nhub_t *self)
{
    log_warn("nhub.silent", "region=%s state=%s silent_ms=%lld", self->region,
             state_names[self->state], (long long)(now_ms(self) - self->last_rx_ms));
    session_lost(self, "hub silent");
    sock_renew(self);
}

/* ---- sending -------------------------------------------------------------- */

/*
 * Put the signature into `s`: the stored one if the current key made it,
 * otherwise a new one (the record is unsigned, or the region has rotated
 * its key since: the hub would refuse the stale key id). Returns 0, or
 * NHUB_ECRYPTO if signing failed. Insecure mode sends no signature.
 */
static int sign_for_send(nhub_t *self, const outbox_record_t *rec, wire_send_t *s,
                         uint8_t sig[KEYS_SIG_MAX])
{
    if (!self->keys)
        return 0;
    s->key_id = self->keys->sign_id;
    if (rec->sig_len && rec->key_id_len == KEYS_FPR_LEN &&
        memcmp(rec->key_id, self->keys->sign_id, KEYS_FPR_LEN) == 0) {
        s->signature.data = (uint8_t *)rec->sig;
        s->signature.len = rec->sig_len;
        return 0;
    }
    size_t siglen = 0;
    int rc = keys_sign(self->keys->signer, rec->envelope, rec->envelope_len, sig, &siglen);
    if (rc != 0) {
        if (!self->sign_failed)
            log_error("nhub.sign_failed", "region=%s key_id=%s error=%d", self->region,
                      self->keys->sign_id, rc);
        self->sign_failed = 1;
        return rc;
    }
    if (!self->resign_logged) {
        char old[KEYS_FPR_LEN + 1];
        snprintf(old, sizeof old, "%.*s", (int)rec->key_id_len, rec->key_id ? rec->key_id : "");
        log_info("nhub.resign", "region=%s stored_key_id=%s key_id=%s", self->region,
                 old[0] ? old : "none", self->keys->sign_id);
        self->resign_logged = 1;
    }
    self->st.resigned++;
    s->signature.data = sig;
    s->signature.len = siglen;
    return 0;
}

static int send_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    nhub_t *self = arg;
    uint8_t sig[KEYS_SIG_MAX];
    size_t len = rec->envelope_len;
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
    s.envelope.data = (uint8_t *)rec->envelope;
    if (sign_for_send(self, rec, &s, sig) != 0)
        return 1; /* tried again on the next pass; nothing unsigned goes out */
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
static int ack_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    nhub_t *self = arg;
    for (size_t i = 0; i < self->n_acks; i++) {
        pending_ack_t *p = &self->acks[i];
        if (p->seq != seq)
            continue;
        uint8_t id[NHUB_MSG_ID_LEN];
        int have = envelope_msg_id(self, rec->envelope, rec->envelope_len, id) == 0;
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
static int collect_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
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
    if (envelope_msg_id(c->self, rec->envelope, rec->envelope_len, c->ids[c->n]) == 0)
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
    link_up(self);
    log_info("nhub.welcome", "region=%s stream_last=%llu dropped=%llu hub_max_frame=%u",
             self->region, (unsigned long long)w->stream_last, (unsigned long long)removed,
             w->max_frame);
    for (size_t i = 0; i < c.n; i++)
        self->on_ack(self->on_ack_arg, c.ids[i]);
    free(c.ids);
    flush_delivered(self); /* confirmations the hub is not known to have */
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
static int found_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    struct found_id *f = arg;
    (void)seq;
    f->found = envelope_msg_id(f->self, rec->envelope, rec->envelope_len, f->msg_id) == 0;
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

/*
 * Refusals about identity and access. They are final whatever the NACK's
 * `retryable` says: resending the same bytes under the same key cannot
 * change the answer, and a hub that marked them retryable would have the
 * adapter resend them for ever.
 */
static int nack_is_access(int code)
{
    switch (code) {
    case NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED:
    case NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE:
    case NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN:
    case NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED:
    case NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED: return 1;
    default: return 0;
    }
}

/*
 * The hub refused the session for good: its answer to the HELLO, or an
 * identity refusal about no message in particular (the key was revoked
 * during the session). Back off and say HELLO again later: the operators
 * may fix it meanwhile.
 */
static void session_refused(nhub_t *self, const wire_nack_t *n)
{
    char why[NHUB_LINK_ERROR_MAX];
    set_err(self, NHUB_EREFUSED, "hub refused the session: code %d: %s", (int)n->code,
            n->text ? n->text : "");
    snprintf(why, sizeof why, "the hub refused the session: code %d: %s", (int)n->code,
             n->text ? n->text : "");
    link_failed(self, NHUB_LINK_REFUSED, LINK_CAUSE_NACK + (int)n->code, "nhub.hello_refused", why,
                0, 0);
    backoff(self, "hello_refused");
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
    if (n->retryable && !nack_is_access((int)n->code)) {
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
    if (self->state == SESSION_HELLO_SENT || nack_is_access((int)n->code)) {
        session_refused(self, n);
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

static int write_delivered(nhub_t *self, const uint8_t msg_id[NHUB_MSG_ID_LEN], uint64_t dseq)
{
    wire_delivered_t d = NHUB__WIRE__V1__DELIVERED__INIT;
    d.msg_id.len = NHUB_MSG_ID_LEN;
    d.msg_id.data = (uint8_t *)msg_id;
    d.dseq = dseq;
    return session_write(self, WIRE_DELIVERED, &d.base);
}

static void send_heartbeat(nhub_t *self, int64_t now);

/* Is `id` among the DELIVEREDs this session wrote and awaits proof of? */
static int proof_has(const nhub_t *self, const uint8_t id[NHUB_MSG_ID_LEN])
{
    for (size_t k = 0; k < self->proof_count; k++)
        if (!memcmp(self->proof[(self->proof_head + k) % self->proof_cap].u.id, id,
                    NHUB_MSG_ID_LEN))
            return 1;
    return 0;
}

/* Write the DELIVERED of `u` and await its proof; 0, or not written. */
static int delivered_out(nhub_t *self, const outbox_unsent_t *u)
{
    if (self->state != SESSION_READY || self->proof_count == self->proof_cap ||
        self->want_write || write_delivered(self, u->id, u->dseq) != 0)
        return -1;
    struct proof *p = &self->proof[(self->proof_head + self->proof_count) % self->proof_cap];
    p->u = *u;
    p->beats = self->beats_written;
    self->proof_count++;
    return 0;
}

/*
 * Write the DELIVEREDs of the store's unsent set that this session has not
 * written, in msg_id order from where it got to, while the socket and the
 * proof list have room; then a HEARTBEAT, whose answer proves them.
 * Nothing is dropped: what does not fit now is written on a later pass.
 */
static void flush_delivered(nhub_t *self)
{
    int wrote = 0;
    while (self->state == SESSION_READY && !self->unsent_done && !self->want_write &&
           self->proof_count < self->proof_cap) {
        outbox_unsent_t batch[64];
        size_t n = 0, room = self->proof_cap - self->proof_count;
        if (outbox_unsent_next(self->store, self->unsent_started ? self->unsent_after : NULL,
                               batch, room < 64 ? room : 64, &n) != 0) {
            log_error("nhub.unsent_read_failed", "region=%s error=%s", self->region,
                      outbox_error(self->store));
            break;
        }
        if (n == 0) {
            self->unsent_done = 1;
            break;
        }
        size_t i = 0;
        for (; i < n; i++) {
            if (!proof_has(self, batch[i].id) && delivered_out(self, &batch[i]) != 0)
                break;
            memcpy(self->unsent_after, batch[i].id, NHUB_MSG_ID_LEN);
            self->unsent_started = 1;
            wrote = 1;
        }
        if (i < n)
            break;
    }
    if (wrote)
        send_heartbeat(self, now_ms(self));
}

/*
 * Confirmations just recorded in the unsent set: their DELIVEREDs go out
 * now if the socket takes them; otherwise a pass over the set from the
 * start writes them later (ids sort anywhere against where it got to).
 */
static void send_delivered(nhub_t *self, const outbox_unsent_t *u, size_t n)
{
    size_t written = 0;
    for (size_t i = 0; i < n; i++)
        if (delivered_out(self, &u[i]) == 0)
            written++;
        else
            break;
    if (written < n) {
        self->unsent_started = 0;
        self->unsent_done = 0;
    }
    if (written)
        send_heartbeat(self, now_ms(self));
}

/* A HEARTBEAT answered: the DELIVEREDs written before it are committed. */
static void settle_delivered(nhub_t *self)
{
    outbox_unsent_t proven[64];
    while (self->proof_count) {
        size_t n = 0;
        while (n < self->proof_count && n < 64) {
            const struct proof *p = &self->proof[(self->proof_head + n) % self->proof_cap];
            if (p->beats >= self->beats_answered)
                break;
            proven[n++] = p->u;
        }
        if (n == 0)
            return;
        int rc = outbox_unsent_settle(self->store, proven, n, wall_ms(self));
        if (rc != 0) { /* they stay unsent: written again by a later session */
            log_error("nhub.settle_failed", "region=%s error=%s", self->region,
                      outbox_error(self->store));
            return;
        }
        self->proof_head = (self->proof_head + n) % self->proof_cap;
        self->proof_count -= n;
        self->st.delivered_settled += n;
    }
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Read a varint at p[*i] (bounded by len). Returns 0, or -1 if it is cut or too long. */
static int read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/*
 * Where the payload (Envelope field 10, length-delimited) lies in the
 * encoded envelope: the last occurrence, as the decoder takes it. Lets a
 * delivery keep one copy of the bytes (inbox_push). Returns 0, or -1 if
 * the walk fails or there is no payload field.
 */
static int envelope_payload_at(const uint8_t *p, size_t len, size_t *off, size_t *plen)
{
    size_t i = 0;
    int found = 0;
    while (i < len) {
        uint64_t tag = 0, n = 0;
        if (read_varint(p, len, &i, &tag) != 0)
            return -1;
        switch (tag & 7) {
        case 0:
            if (read_varint(p, len, &i, &n) != 0)
                return -1;
            break;
        case 1:
        case 5:
            n = (tag & 7) == 1 ? 8 : 4;
            if (n > len - i)
                return -1;
            i += n;
            break;
        case 2:
            if (read_varint(p, len, &i, &n) != 0 || n > len - i)
                return -1;
            if (tag >> 3 == 10) {
                *off = i;
                *plen = (size_t)n;
                found = 1;
            }
            i += n;
            break;
        default: return -1;
        }
    }
    return found ? 0 : -1;
}

/* Queue a checked envelope for nhub_recv. */
static void queue_delivery(nhub_t *self, const wire_deliver_t *dl, const wire_envelope_t *e)
{
    nhub_delivery_t d;
    size_t off = 0, plen = 0;
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
    d.envelope = dl->envelope.data;
    d.envelope_len = dl->envelope.len;
    d.payload = e->payload.data;
    d.payload_len = e->payload.len;
    if (envelope_payload_at(dl->envelope.data, dl->envelope.len, &off, &plen) == 0 &&
        plen == e->payload.len)
        d.payload = dl->envelope.data + off;
    if (dl->signature.len) {
        d.signature = dl->signature.data;
        d.signature_len = dl->signature.len;
    }
    if (dl->key_id && strlen(dl->key_id) < sizeof d.key_id)
        copy_str(d.key_id, sizeof d.key_id, dl->key_id);
    if (inbox_push(self->inbox, &d) != 0)
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
        /* The hub has not got its DELIVERED: back into the unsent set (it
         * must not age before the hub has one), and one goes out. */
        self->st.duplicates++;
        inbox_skip(self->inbox, dl->dseq, dl->prev_dseq);
        outbox_unsent_t u = {.dseq = dl->dseq};
        memcpy(u.id, e->msg_id.data, NHUB_MSG_ID_LEN);
        if (outbox_confirmed_put(self->store, u.id, u.dseq, wall_ms(self)) == 0)
            send_delivered(self, &u, 1);
        else
            log_error("nhub.confirmed_put_failed", "region=%s msg_id=%s error=%s", self->region,
                      hex, outbox_error(self->store));
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
    uint64_t beat = ((const wire_heartbeat_t *)m)->beat;
    if (self->state != SESSION_READY || beat <= self->beats_answered || beat > self->beats_written)
        return; /* not an answer to one of this session's, or an old one */
    self->beats_answered = beat;
    settle_delivered(self);
    flush_delivered(self);
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

/*
 * The security handshake failed. libzmq does not say more to a client than
 * the event, and after a protocol error (a ZAP refusal is one) it does not
 * try again: a new socket after a back-off does, so adding the key at the
 * hub is enough for the adapter to come back. NO_DETAIL (the connection
 * closed mid-handshake, as a hub that cannot decrypt our HELLO does) is a
 * connection error that libzmq would retry every 100 ms to 2 s; the
 * disconnect stops that, so every failure waits for the same back-off.
 */
static void handshake_failed(nhub_t *self, unsigned event, unsigned value)
{
    char why[NHUB_LINK_ERROR_MAX];
    session_lost(self, "handshake_failed");
    zmq_disconnect(self->sock, self->endpoint); /* may be gone already: ENOENT is fine */
    schedule_reopen(self);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        self->st.auth_failures++;
        if (self->keys)
            snprintf(why, sizeof why,
                     "the hub does not accept CURVE key %s (ZAP status %u): not configured for "
                     "region %s at the hub, or expired",
                     self->keys->curve_fpr, value, self->region);
        else
            snprintf(why, sizeof why,
                     "the hub refused this plaintext connection (ZAP status %u): it probably "
                     "requires CURVE (key_file, hub_key)",
                     value);
        link_failed(self, NHUB_LINK_REFUSED, LINK_CAUSE_ZAP, "nhub.key_refused", why, 1, 0);
        return;
    }
    self->st.handshake_failures++;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        if (self->keys)
            snprintf(why, sizeof why,
                     "security handshake failed (protocol error 0x%x): the security mode "
                     "probably differs (this adapter uses CURVE: is the hub plaintext?) or "
                     "hub_key is not the hub's key",
                     value);
        else
            snprintf(why, sizeof why,
                     "security handshake failed (protocol error 0x%x): the security mode "
                     "probably differs (this adapter is plaintext: the hub probably requires "
                     "CURVE)",
                     value);
        link_failed(self, NHUB_LINK_HANDSHAKE_FAILED, LINK_CAUSE_HANDSHAKE, "nhub.handshake_failed",
                    why, 0, 1);
        return;
    }
    /* Keep a protocol error's explanation: it says more than this one. */
    if (self->link == NHUB_LINK_HANDSHAKE_FAILED && self->link_error[0])
        snprintf(why, sizeof why, "%s", self->link_error);
    else
        snprintf(why, sizeof why,
                 "connection closed during the security handshake (errno %u): if it repeats, "
                 "the security mode probably differs or hub_key is not the hub's key",
                 value);
    link_failed(self, NHUB_LINK_HANDSHAKE_FAILED, LINK_CAUSE_HANDSHAKE, "nhub.handshake_failed",
                why, 0, 1);
}

static void monitor_event(nhub_t *self, unsigned event, unsigned value)
{
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            self->reopen_at = 0; /* libzmq reconnected by itself */
        if (self->state != SESSION_DOWN)
            return;
        log_info("nhub.connected", "region=%s hub=%s", self->region, self->endpoint);
        self->last_rx_ms = now_ms(self);
        self->backoff_ms = NHUB_BACKOFF_START_MS;
        send_hello(self);
        return;
    case ZMQ_EVENT_DISCONNECTED:
        /* libzmq reconnects after a lost connection, but not after one it
         * closed itself for a protocol error (e.g. a frame above
         * ZMQ_MAXMSGSIZE): unless a handshake succeeds again first, the
         * socket is made anew after the back-off. */
        session_lost(self, "disconnected");
        schedule_reopen(self);
        return;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: handshake_failed(self, event, value); return;
    default:
        log_debug("nhub.monitor_event", "region=%s event=%u value=%u", self->region, event, value);
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
    hb.beat = self->beats_written + 1;
    self->last_hb_ms = now;
    if (session_write(self, WIRE_HEARTBEAT, &hb.base) == 0)
        self->beats_written++;
}

static void run_timers(nhub_t *self, int64_t now)
{
    if (self->reopen_at && now >= self->reopen_at) {
        log_info("nhub.reconnect", "region=%s hub=%s link=%s", self->region, self->endpoint,
                 nhub_link_name(self->link));
        session_lost(self, "reconnect");
        sock_renew(self);
        return;
    }
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
    if (self->reopen_at && self->reopen_at < due)
        due = self->reopen_at;
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
        /* No socket (making one failed): wait for the timer that retries it. */
        if (zmq_poll(items, self->sock ? 2 : 0, (long)wait) < 0) {
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
            flush_delivered(self);
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

/*
 * The security options: key_file + hub_key (CURVE and signatures) or
 * insecure_plaintext, exactly one. An offline handle may give neither.
 * Each message says what is missing or contradictory, since this is what
 * an operator sees when the configuration is wrong.
 */
static int check_security(nhub_t *self, const nhub_options_t *opt)
{
    int has_key = opt->key_file && opt->key_file[0];
    int has_hub = opt->hub_key && opt->hub_key[0];
    if (opt->insecure_plaintext && (has_key || has_hub))
        return set_err(self, NHUB_ECONFIG,
                       "insecure_plaintext cannot be combined with key_file or hub_key: give "
                       "key_file and hub_key (CURVE, signed envelopes) or insecure_plaintext, "
                       "not both");
    if (opt->insecure_plaintext)
        return 0;
    if (!has_key && !has_hub) {
        if (opt->offline)
            return 0;
        return set_err(self, NHUB_ECONFIG,
                       "no security configured: give key_file (this region's secret key file) "
                       "and hub_key (the hub's CURVE public key), or insecure_plaintext for "
                       "development");
    }
    if (!has_key)
        return set_err(self, NHUB_ECONFIG,
                       "key_file is missing: hub_key is given, but CURVE needs this region's "
                       "secret key file too");
    if (!has_hub)
        return set_err(self, NHUB_ECONFIG,
                       "hub_key is missing: key_file %s needs the hub's CURVE public key "
                       "(40 Z85 characters, the curve: of hub.pub)",
                       opt->key_file);
    if (strlen(opt->hub_key) != KEYS_Z85_LEN || !keys_curve_valid(opt->hub_key))
        return set_err(self, NHUB_ECONFIG,
                       "hub_key is not a CURVE public key (40 Z85 characters, the curve: of "
                       "hub.pub)");
    copy_str(self->hub_key, sizeof self->hub_key, opt->hub_key);
    return 0;
}

/* Load the key file and check it belongs to this region. */
static int load_keys(nhub_t *self, const char *path)
{
    char err[256] = "";
    int rc = keys_load(path, &self->keys, err, sizeof err);
    if (rc != 0)
        return set_err(self, rc, "%s", err[0] ? err : nhub_strerror(rc));
    if (strcmp(self->keys->region, self->region) != 0)
        return set_err(self, NHUB_ECONFIG,
                       "key file %s is for region %s, but this adapter is region %s", path,
                       self->keys->region, self->region);
    if (!self->keys->signer)
        return set_err(self, NHUB_ECONFIG, "key file %s has no signing key", path);
    return 0;
}

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
    if (opt->max_frame && (opt->max_frame < 1024 || opt->max_frame > NHUB_MAX_MAX_FRAME))
        return set_err(self, NHUB_EINVAL, "max_frame must be 1024..%u bytes (or 0 for 1 MiB)",
                       NHUB_MAX_MAX_FRAME);
    int rc = check_security(self, opt);
    if (rc != 0)
        return rc;
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
    keys_free(&self->keys);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    inbox_destroy(&self->inbox);
    outbox_close(&self->store);
    for (size_t i = 0; self->accepted && i < self->n_accepted; i++)
        free(self->accepted[i]);
    free(self->accepted);
    free(self->ring);
    free(self->proof);
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
    self->reopen_ms = NHUB_REOPEN_START_MS;
    rc = copy_options(self, opt);
    if (rc == 0 && opt->key_file && opt->key_file[0])
        rc = load_keys(self, opt->key_file);
    if (rc == 0 && self->keys && !self->offline && !zmq_has("curve"))
        rc = set_err(self, NHUB_ECONFIG, "this libzmq is built without CURVE");
    if (rc != 0)
        goto fail;
    rc = outbox_open(opt->data_dir, opt->map_size_max, &self->store,
                     self->last_error, sizeof self->last_error);
    if (rc != 0)
        goto fail;
    outbox_link_t stored;
    if (outbox_link_get(self->store, &stored) == 0)
        self->link_stored = stored.state;
    self->inbox = inbox_new((size_t)self->credit * 2 + 16);
    self->proof_cap = (size_t)self->credit * 2 + 16;
    self->proof = calloc(self->proof_cap, sizeof *self->proof);
    if (!self->inbox || !self->proof) {
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
    if (self->keys)
        log_info("nhub.open", "region=%s hub=%s offline=%d security=curve curve_fpr=%s key_id=%s",
                 self->region, self->endpoint, self->offline, self->keys->curve_fpr,
                 self->keys->sign_id);
    else
        log_info("nhub.open", "region=%s hub=%s offline=%d security=%s", self->region,
                 self->endpoint, self->offline, opt->insecure_plaintext ? "plaintext" : "none");
    if (opt->insecure_plaintext && !self->offline)
        log_warn("nhub.insecure",
                 "region=%s hub=%s note=\"INSECURE: plaintext connection and unsigned envelopes; "
                 "development only, never in production\"",
                 self->region, self->endpoint);
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

/*
 * An error about element `i` of a batch of `n`: the detail gets the index in
 * front, so the caller knows which one (a batch of one reads as before).
 * Returns `rc`.
 */
static int batch_err(nhub_t *self, int rc, size_t n, size_t i)
{
    char why[sizeof self->last_error];
    if (n < 2)
        return rc;
    snprintf(why, sizeof why, "%s", self->last_error);
    return set_err(self, rc, "[%zu of %zu]: %s", i, n, why);
}

/*
 * The checks a batch call starts with: `items` (named `what`) may be NULL
 * only when n is 0. Returns 1 for an empty batch (nothing to do), 0 to go
 * on, or NHUB_EINVAL.
 */
static int batch_start(nhub_t *self, const void *items, size_t n, const char *what)
{
    if (!self)
        return NHUB_EINVAL;
    if (n == 0)
        return 1;
    if (!items)
        return set_err(self, NHUB_EINVAL, "%s is NULL", what);
    return 0;
}

/* One message of a batch on its way into the outbox. */
typedef struct staged {
    uint8_t id[NHUB_MSG_ID_LEN];
    uint8_t *buf; /* the encoded envelope; owned */
    uint8_t sig[KEYS_SIG_MAX];
} staged_t;

/*
 * Check `msg`, give it its msg_id and creation time, encode its envelope
 * into s->buf (freed by the caller, also on failure) and sign it: `rec`
 * then describes the outbox record. Returns 0 or nhub_send's errors.
 */
static int stage_message(nhub_t *self, const nhub_message_t *msg, staged_t *s, outbox_record_t *rec)
{
    char why[160] = "";
    int rc = check_message(self, msg);
    if (rc != 0)
        return rc;
    if (msg->msg_id)
        memcpy(s->id, msg->msg_id, sizeof s->id);
    else if (ids_msg_id(s->id, wall_ms(self)) != 0)
        return set_err(self, NHUB_EIO, "getrandom failed: %s", strerror(errno));

    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id.len = sizeof s->id;
    e.msg_id.data = s->id;
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
    s->buf = malloc(len ? len : 1);
    if (!s->buf)
        return set_err(self, NHUB_ENOMEM, "out of memory");
    protobuf_c_message_pack(&e.base, s->buf);
    /* Signed before it is stored: the signature is committed with the
     * envelope, and covers exactly the bytes that will go into Send. */
    *rec = (outbox_record_t){.envelope = s->buf, .envelope_len = len};
    if (!self->keys)
        return 0;
    if (keys_sign(self->keys->signer, s->buf, len, s->sig, &rec->sig_len) != 0)
        return set_err(self, NHUB_ECRYPTO, "signing the envelope failed (key_id %s)",
                       self->keys->sign_id);
    rec->sig = s->sig;
    rec->key_id = self->keys->sign_id;
    rec->key_id_len = KEYS_FPR_LEN;
    return 0;
}

/*
 * Every message is checked, encoded and signed before the one transaction
 * that stores them all, so a bad message anywhere stores nothing and the
 * batch costs one fsync however long it is.
 */
int nhub_send_batch(nhub_t *self, const nhub_message_t *msgs, size_t n,
                    uint8_t (*msg_ids)[NHUB_MSG_ID_LEN])
{
    int rc = batch_start(self, msgs, n, "msgs");
    if (rc != 0)
        return rc < 0 ? rc : 0;
    staged_t *staged = calloc(n, sizeof *staged);
    outbox_record_t *recs = calloc(n, sizeof *recs);
    if (!staged || !recs) {
        rc = set_err(self, NHUB_ENOMEM, "out of memory for a batch of %zu", n);
        goto done;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = stage_message(self, &msgs[i], &staged[i], &recs[i]);
        if (rc != 0)
            batch_err(self, rc, n, i);
    }
    if (rc == 0) {
        rc = outbox_append_batch(self->store, recs, n, NULL);
        if (rc != 0)
            set_err(self, rc, "%s", outbox_error(self->store));
    }
done:
    for (size_t i = 0; staged && i < n; i++)
        free(staged[i].buf);
    if (rc == 0 && msg_ids)
        for (size_t i = 0; i < n; i++)
            memcpy(msg_ids[i], staged[i].id, NHUB_MSG_ID_LEN);
    free(staged);
    free(recs);
    if (rc == 0 && !self->offline)
        serve(self, 0, NULL);
    return rc;
}

int nhub_send(nhub_t *self, const nhub_message_t *msg, uint8_t msg_id_out[NHUB_MSG_ID_LEN])
{
    uint8_t id[1][NHUB_MSG_ID_LEN];
    if (self && !msg)
        return set_err(self, NHUB_EINVAL, "message is NULL");
    int rc = nhub_send_batch(self, msg, 1, id);
    if (rc == 0 && msg_id_out)
        memcpy(msg_id_out, id[0], NHUB_MSG_ID_LEN);
    return rc;
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

/* Check that ds[i] is a delivery this adapter handed out, once in ds[0..n). */
static int check_delivery(nhub_t *self, nhub_delivery_t *const *ds, size_t n, size_t i)
{
    if (!ds[i])
        return batch_err(self, set_err(self, NHUB_EINVAL, "delivery is NULL"), n, i);
    if (!inbox_holds(self->inbox, ds[i]))
        return batch_err(self, set_err(self, NHUB_EINVAL, "delivery is not held by this adapter"),
                         n, i);
    for (size_t j = 0; j < i; j++)
        if (ds[j] == ds[i])
            return batch_err(self, set_err(self, NHUB_EINVAL, "delivery is given twice"), n, i);
    return 0;
}

/*
 * Exactly once rests on the order here: the whole set is recorded as
 * confirmed, in one transaction, before any DELIVERED goes out. A DELIVERED
 * lets the hub forget the message, so once one is sent the record must
 * already be durable: otherwise a failed commit (the call returns an error
 * and the application keeps or releases the delivery) or a crash before
 * it would leave neither side holding the message as confirmed, and the
 * application could not tell. The other way round costs nothing: a
 * DELIVERED lost after the commit is answered again from the confirmed set
 * when the hub redelivers.
 */
int nhub_confirm_batch(nhub_t *self, nhub_delivery_t **ds, size_t n)
{
    int rc = batch_start(self, ds, n, "deliveries");
    if (rc != 0)
        return rc < 0 ? rc : 0;
    for (size_t i = 0; i < n; i++) {
        rc = check_delivery(self, ds, n, i);
        if (rc != 0)
            return rc;
    }
    outbox_confirmation_t *c = calloc(n, sizeof *c);
    if (!c)
        return set_err(self, NHUB_ENOMEM, "out of memory for a batch of %zu", n);
    for (size_t i = 0; i < n; i++)
        c[i] = (outbox_confirmation_t){ds[i]->msg_id, ds[i]->dseq};
    rc = outbox_confirmed_put_batch(self->store, c, n, wall_ms(self));
    free(c);
    if (rc != 0)
        return set_err(self, rc, "%s", outbox_error(self->store));
    outbox_unsent_t *u = malloc(n * sizeof *u);
    if (u) {
        for (size_t i = 0; i < n; i++) {
            memcpy(u[i].id, ds[i]->msg_id, NHUB_MSG_ID_LEN);
            u[i].dseq = ds[i]->dseq;
        }
        send_delivered(self, u, n);
        free(u);
    } else { /* recorded: a pass over the unsent set writes them */
        self->unsent_started = 0;
        self->unsent_done = 0;
    }
    for (size_t i = 0; i < n; i++) {
        self->st.confirmed++;
        inbox_release(self->inbox, ds[i]);
        ds[i] = NULL;
    }
    return 0;
}

int nhub_confirm(nhub_t *self, nhub_delivery_t **dp)
{
    if (self && !dp)
        return set_err(self, NHUB_EINVAL, "delivery is NULL");
    return nhub_confirm_batch(self, dp, 1);
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
    out->link = self->link == NHUB_LINK_UP && !out->connected ? NHUB_LINK_DOWN : self->link;
    copy_str(out->link_error, sizeof out->link_error, self->link_error);
    uint64_t n = 0;
    if (outbox_count(self->store, &n) == 0)
        out->outbox = n;
}

struct each_arg {
    const nhub_t *self;
    nhub_outbox_fn *fn;
    void *arg;
};

static int each_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    struct each_arg *a = arg;
    uint8_t id[NHUB_MSG_ID_LEN];
    (void)seq;
    if (envelope_msg_id(a->self, rec->envelope, rec->envelope_len, id) != 0)
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
    if (rc == 0)
        rc = outbox_unsent_count(self->store, &out->unsent_confirmations);
    if (rc != 0)
        return set_err(self, rc, "%s", outbox_error(self->store));
    out->map_size = outbox_map_size(self->store);
    out->map_size_max = self->map_size_max ? self->map_size_max : 4ull << 30;
    outbox_link_t link;
    rc = outbox_link_get(self->store, &link);
    if (rc != 0)
        return set_err(self, rc, "%s", outbox_error(self->store));
    out->link = link.state;
    out->link_changed_ms = link.changed_ms;
    copy_str(out->link_error, sizeof out->link_error, link.error);
    out->auth_failures = link.auth_failures;
    out->handshake_failures = link.handshake_failures;
    return 0;
}

const char *nhub_link_name(int link)
{
    static const char *const names[] = {"down", "up", "refused", "handshake_failed"};
    if (link < 0 || link >= (int)(sizeof names / sizeof *names))
        return "unknown";
    return names[link];
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
