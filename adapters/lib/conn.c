/*
 * conn.c: the connection to the hub and the session on it: the socket and
 * its monitor, HELLO and WELCOME, back-off, resync, failed handshakes, the
 * heartbeat and the serving loop. See nhub_internal.h.
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
 */
#include "nhub_internal.h"

static const char *const state_names[] = {"down", "need_hello", "hello_sent", "ready",
                                          "backoff"};

/* Real time, for the waits callers ask for, whatever clock drives the timers. */
static int64_t real_ms(void)
{
    return clock_mono_ms(nhub_clock_system());
}

/* ---- socket --------------------------------------------------------------- */

int conn_sockopt_int(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value);
}

void conn_sock_close(nhub_t *self)
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
int conn_sock_open(nhub_t *self)
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
    if (conn_sockopt_int(self->sock, ZMQ_SNDHWM, (int)hwm) ||
        conn_sockopt_int(self->sock, ZMQ_RCVHWM, (int)hwm))
        goto fail;
    if (conn_sockopt_int(self->sock, ZMQ_LINGER, 0) ||
        conn_sockopt_int(self->sock, ZMQ_IMMEDIATE, 1) ||
        conn_sockopt_int(self->sock, ZMQ_RECONNECT_IVL, 100) ||
        conn_sockopt_int(self->sock, ZMQ_RECONNECT_IVL_MAX, 2000) ||
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
    if (!self->mon || conn_sockopt_int(self->mon, ZMQ_LINGER, 0) || zmq_connect(self->mon, ep) != 0)
        goto fail;
    if (zmq_connect(self->sock, self->endpoint) != 0)
        goto fail;
    return 0;
fail:
    lib_set_err(self, NHUB_EZMQ, "socket to %s: %s", self->endpoint, zmq_strerror(zmq_errno()));
    conn_sock_close(self);
    return NHUB_EZMQ;
}

int conn_session_write(nhub_t *self, wire_cmd_t cmd, const ProtobufCMessage *body)
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
    int rc = outbox_link_put(self->store, self->link, auth_inc, handshake_inc, lib_wall_ms(self),
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
void conn_link_failed(nhub_t *self, int link, int cause, const char *event, const char *why,
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
        lib_set_err(self, rc, "reading the stream: %s", outbox_error(self->store));
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

void conn_send_hello(nhub_t *self)
{
    wire_hello_t h = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t versions[1] = {WIRE_VERSION};
    send_ring_clear(self);
    set_state(self, SESSION_NEED_HELLO);
    if (load_stream(self) != 0) {
        conn_backoff(self, "store");
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
    if (conn_session_write(self, WIRE_HELLO, &h.base) != 0)
        return; /* retried when the socket is writable */
    set_state(self, SESSION_HELLO_SENT);
    self->last_rx_ms = lib_now_ms(self); /* the WELCOME is due from now */
    log_debug("nhub.hello", "region=%s credit=%u", self->region, h.credit);
}

/* Start over with a new HELLO; nothing in flight counts as sent. */
void conn_resync(nhub_t *self, const char *why)
{
    if (self->state == SESSION_DOWN)
        return;
    log_info("nhub.resync", "region=%s reason=%s", self->region, why);
    conn_send_hello(self);
}

void conn_backoff(nhub_t *self, const char *why)
{
    if (self->state == SESSION_DOWN || self->state == SESSION_BACKOFF)
        return;
    send_ring_clear(self);
    self->backoff_until = lib_now_ms(self) + self->backoff_ms;
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
    send_ring_clear(self);
    self->want_write = 0;
    set_state(self, SESSION_DOWN);
}

/* A new socket after the back-off, for a connection libzmq gave up on. */
static void schedule_reopen(nhub_t *self)
{
    if (self->reopen_at)
        return;
    self->reopen_at = lib_now_ms(self) + self->reopen_ms;
    log_debug("nhub.reopen_scheduled", "region=%s wait_ms=%lld", self->region,
              (long long)self->reopen_ms);
    self->reopen_ms *= 2;
    if (self->reopen_ms > NHUB_REOPEN_MAX_MS)
        self->reopen_ms = NHUB_REOPEN_MAX_MS;
}

/* Close the socket and make a new one; if that fails, try again later. */
static void sock_renew(nhub_t *self)
{
    conn_sock_close(self);
    if (conn_sock_open(self) != 0) {
        log_error("nhub.socket_failed", "region=%s error=%s", self->region, self->last_error);
        schedule_reopen(self);
    }
}

/* The hub went silent: drop the connection and make a fresh one. */
static void reconnect(nhub_t *self)
{
    log_warn("nhub.silent", "region=%s state=%s silent_ms=%lld", self->region,
             state_names[self->state], (long long)(lib_now_ms(self) - self->last_rx_ms));
    session_lost(self, "hub silent");
    sock_renew(self);
}

/* ---- frames from the hub -------------------------------------------------- */

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
    if (send_envelope_msg_id(c->self, rec->envelope, rec->envelope_len, c->ids[c->n]) == 0)
        c->n++;
    return 0;
}

static void on_welcome(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_welcome_t *w = (const wire_welcome_t *)m;
    if (w->protocol_version != WIRE_VERSION) {
        lib_set_err(self, NHUB_EVERSION, "hub speaks protocol version %u", w->protocol_version);
        log_error("nhub.welcome_version", "region=%s version=%u", self->region,
                  w->protocol_version);
        conn_backoff(self, "protocol_version");
        return;
    }
    self->stale_until_welcome = 0;
    self->hub_max_frame = w->max_frame;
    uint64_t next = 0;
    int rc = outbox_next_seq(self->store, &next);
    if (rc != 0) {
        lib_set_err(self, rc, "reading the outbox: %s", outbox_error(self->store));
        log_error("nhub.welcome_read_failed", "region=%s error=%d", self->region, rc);
        conn_backoff(self, "store");
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
        send_rotate_stream(self, "stream_ahead", 0, NULL);
        return;
    }
    /* Learn the msg_ids for on_ack as the messages the hub holds leave. */
    struct collect_ids c = {.self = self};
    uint64_t removed = 0, last = w->stream_last + self->stream_base;
    rc = outbox_remove_upto(self->store, last, self->on_ack ? collect_visit : NULL, &c,
                            &removed);
    if (rc != 0) {
        lib_set_err(self, rc, "dropping messages the hub holds: %s", outbox_error(self->store));
        log_error("nhub.welcome_commit_failed", "region=%s error=%d", self->region, rc);
        free(c.ids);
        conn_backoff(self, "store");
        return;
    }
    self->st.acked += removed;
    send_ring_clear(self);
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
    recv_flush_delivered(self); /* confirmations the hub is not known to have */
}

static void on_heartbeat(nhub_t *self, const ProtobufCMessage *m)
{
    uint64_t beat = ((const wire_heartbeat_t *)m)->beat;
    if (self->state != SESSION_READY || beat <= self->beats_answered || beat > self->beats_written)
        return; /* not an answer to one of this session's, or an old one */
    self->beats_answered = beat;
    recv_settle_delivered(self);
    recv_flush_delivered(self);
}

static void on_bye(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_bye_t *b = (const wire_bye_t *)m;
    char reason[128];
    log_info("nhub.hub_bye", "region=%s reason=%s", self->region,
             log_quote(reason, sizeof reason, b->reason));
    conn_backoff(self, "hub_bye");
}

typedef void(frame_handler_fn)(nhub_t *self, const ProtobufCMessage *body);

/* What the adapter does with each command the hub may send; NULL: not from a hub. */
static frame_handler_fn *const handlers[WIRE_CMD_MAX + 1] = {
    [WIRE_WELCOME] = on_welcome,      [WIRE_ACK] = send_on_ack,        [WIRE_NACK] = send_on_nack,
    [WIRE_DELIVER] = recv_on_deliver, [WIRE_HEARTBEAT] = on_heartbeat, [WIRE_BYE] = on_bye,
    [WIRE_RECEIPT] = receipt_on_receipt,
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
    self->last_rx_ms = lib_now_ms(self);
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
                         wire_frame_len(f, 1), lib_decode_budget(self), &body) != 0)
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
    send_flush_acks(self);
    if (self->ack_conflict) {
        self->ack_conflict = 0;
        if (self->state == SESSION_READY || self->state == SESSION_HELLO_SENT)
            send_rotate_stream(self, "ack_mismatch", 0, NULL);
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
        conn_link_failed(self, NHUB_LINK_REFUSED, LINK_CAUSE_ZAP, "nhub.key_refused", why, 1, 0);
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
        conn_link_failed(self, NHUB_LINK_HANDSHAKE_FAILED, LINK_CAUSE_HANDSHAKE,
                         "nhub.handshake_failed", why, 0, 1);
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
    conn_link_failed(self, NHUB_LINK_HANDSHAKE_FAILED, LINK_CAUSE_HANDSHAKE,
                     "nhub.handshake_failed", why, 0, 1);
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
        self->last_rx_ms = lib_now_ms(self);
        self->backoff_ms = NHUB_BACKOFF_START_MS;
        conn_send_hello(self);
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

void conn_send_heartbeat(nhub_t *self, int64_t now)
{
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    hb.time_ms = lib_wall_ms(self);
    hb.beat = self->beats_written + 1;
    self->last_hb_ms = now;
    if (conn_session_write(self, WIRE_HEARTBEAT, &hb.base) == 0)
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
        conn_send_hello(self);
        return;
    }
    if (self->state != SESSION_READY)
        return;
    if (now - self->last_hb_ms >= self->hb_ms)
        conn_send_heartbeat(self, now);
    const inflight_t *old = send_ring_oldest(self);
    if (old && now - old->sent_ms > self->resend_after_ms)
        conn_resync(self, "resend_after");
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
        const inflight_t *old = send_ring_oldest(self);
        if (old && old->sent_ms + self->resend_after_ms + 1 < due)
            due = old->sent_ms + self->resend_after_ms + 1;
    }
    if (due == INT64_MAX)
        return -1;
    return due > now ? due - now : 0;
}

/* ---- the serving loop ----------------------------------------------------- */

/*
 * Serve the connection until `done` (may be NULL) says so or `timeout_ms`
 * (real time; -1 = forever) passes. Returns 0 when done, NHUB_ETIMEOUT,
 * NHUB_ECLOSED if a signal interrupted the wait, or NHUB_EZMQ.
 */
int conn_serve(nhub_t *self, int timeout_ms, done_fn *done)
{
    if (self->offline)
        return lib_set_err(self, NHUB_ECLOSED, "opened offline: no connection to serve");
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : real_ms() + timeout_ms;
    for (int polled = 0;; polled = 1) {
        recv_expire_confirmed(self);
        run_timers(self, lib_now_ms(self));
        send_fill_window(self);
        if (done && done(self))
            return 0;
        int64_t real_now = real_ms();
        if (polled && real_now >= deadline)
            return NHUB_ETIMEOUT;
        int64_t wait = deadline == INT64_MAX ? -1 : deadline - real_now;
        if (wait < 0 && deadline != INT64_MAX)
            wait = 0;
        int64_t timer = next_timer_in(self, lib_now_ms(self));
        if (timer >= 0 && (wait < 0 || timer < wait))
            wait = timer;
        if (self->state == SESSION_READY && (wait < 0 || wait > NHUB_OUTBOX_LOOK_MS))
            wait = NHUB_OUTBOX_LOOK_MS;
        if (wait > 1000000)
            wait = 1000000;
        /* The socket and its monitor first (when there is a socket), then
         * the descriptors of nhub_pump_fds. */
        zmq_pollitem_t items[2 + NHUB_PUMP_FDS_MAX];
        int n_items = 0;
        if (self->sock) {
            items[n_items++] = (zmq_pollitem_t){
                self->sock, 0, (short)(ZMQ_POLLIN | (self->want_write ? ZMQ_POLLOUT : 0)), 0};
            items[n_items++] = (zmq_pollitem_t){self->mon, 0, ZMQ_POLLIN, 0};
        }
        int first_extra = n_items;
        for (size_t i = 0; i < self->n_extra_fds; i++)
            items[n_items++] = (zmq_pollitem_t){NULL, self->extra_fds[i], ZMQ_POLLIN, 0};
        /* No socket (making one failed): wait for the timer that retries it. */
        if (zmq_poll(items, n_items, (long)wait) < 0) {
            if (zmq_errno() == EINTR || zmq_errno() == ETERM)
                return lib_set_err(self, NHUB_ECLOSED, "interrupted");
            return lib_set_err(self, NHUB_EZMQ, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        }
        for (int i = first_extra; i < n_items; i++)
            if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                self->extra_ready = 1;
        if (!self->sock)
            continue;
        if (items[1].revents & ZMQ_POLLIN)
            read_monitor(self);
        if (items[0].revents & ZMQ_POLLOUT) {
            self->want_write = 0;
            if (self->state == SESSION_NEED_HELLO)
                conn_send_hello(self);
            recv_flush_delivered(self);
        }
        if (items[0].revents & ZMQ_POLLIN)
            read_frames(self);
    }
}
