/*
 * nhub_internal.h: libnhub's private state and the contract of each file
 * on a message's path through it. Only libnhub's own files include it; the
 * outside sees adapters/nhub.h.
 *
 * An nhub_t is a durable outbox (outbox.c), a set of deliveries in memory
 * (inbox.c) and one ZeroMQ DEALER to the hub. There is no thread: every
 * public call that may block runs conn_serve(), a zmq_poll loop that reads
 * what the hub sent, fires the timers (heartbeat, resend, back-off,
 * silence) and keeps up to `window` SENDs in flight.
 *
 *   conn.c   the connection and the session on it: the socket and its
 *            monitor, the session's state machine (HELLO, WELCOME,
 *            back-off, resync, failed handshakes, a silent hub), the
 *            heartbeat, and the serving loop, which hands each frame from
 *            the hub to its handler. Only conn.c moves the session from one
 *            state to another; the other files ask it to (conn_backoff,
 *            conn_resync, conn_send_hello, conn_link_failed) and write to
 *            the hub through conn_session_write.
 *   send.c   outbox -> SEND -> ACK/NACK: nhub_send stores messages checked,
 *            encoded and signed (a batch in one transaction); the window of
 *            SENDs in flight, ACKs committed a burst at a time, NACKs and
 *            rejections, new streams.
 *   recv.c   DELIVER -> nhub_recv -> nhub_confirm -> DELIVERED: deliveries
 *            checked and queued in the inbox, confirmations made durable
 *            before their DELIVERED is written, DELIVEREDs proven committed
 *            by the hub's answers to HEARTBEATs, old confirmations expired.
 *   receipt.c  RECEIPT_GET -> RECEIPT: one receipt asked for at a time, its
 *            answer (or the NACK about it) taken by conn.c's handlers.
 *   nhub.c   opening and closing a handle (options, keys, store, socket),
 *            statistics, the clock, the views of the store, and the helpers
 *            every file uses (lib_: the clock, errors, batch calls).
 *
 * send.c and recv.c call conn.c and nhub.c, never each other; conn.c calls
 * their handlers (send_on_ack, send_on_nack, recv_on_deliver) and their
 * share of each turn (send_fill_window, send_flush_acks,
 * recv_flush_delivered, recv_expire_confirmed).
 *
 * The rule all of them keep: what is owed lives in the store (the outbox:
 * messages the hub is not known to hold; the unsent set: confirmations the
 * hub is not known to have committed), and what a session keeps in RAM
 * about them (the SENDs in flight, the DELIVEREDs awaiting proof) is
 * dropped at every resync and written again by the next session. Nothing in
 * flight survives a resync, so no ordering depends on ZeroMQ's queues.
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
#ifndef NHUB_NHUB_INTERNAL_H
#define NHUB_NHUB_INTERNAL_H

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
#define NHUB_ACCEPTED_MAX 63 /* the hub takes 64: one is NHUB_CASE_NOTICES */
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

    /* Descriptors of the caller's own, polled beside the socket during
     * nhub_pump_fds (borrowed for that call only), and whether one became
     * readable. */
    const int *extra_fds;
    size_t n_extra_fds;
    int extra_ready;

    /* The receipt nhub_receipt_get waits for (receipt.c). */
    struct receipt_wait {
        int active;  /* a call is waiting */
        int written; /* its RECEIPT_GET went out in the current session */
        int done;    /* answered: rc, and text (owned) if 0 */
        int rc;
        uint8_t msg_id[16];
        char *text;
        size_t len;
        char why[200];
    } receipt;

    nhub_stats_t st;
    uint64_t malformed;
    char last_error[256];
};

/* ---- nhub.c --------------------------------------------------------------- */

/* The clocks the timers and the records read (nhub_set_clock). */
int64_t lib_now_ms(const nhub_t *self);
int64_t lib_wall_ms(const nhub_t *self);

/* Keep the detail of an error for nhub_last_error. Returns `code`. */
int lib_set_err(nhub_t *self, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Largest allocation wire_decode may make for one frame. */
size_t lib_decode_budget(const nhub_t *self);

/* `src` (NULL: empty) into `dst` of `cap` bytes, cut to fit. */
void lib_copy_str(char *dst, size_t cap, const char *src);

/* The detail of an error about element `i` of a batch of `n` gets its
 * index in front. Returns `rc`. */
int lib_batch_err(nhub_t *self, int rc, size_t n, size_t i);

/* The checks a batch call starts with: 1 for an empty batch (nothing to
 * do), 0 to go on, or NHUB_EINVAL. */
int lib_batch_start(nhub_t *self, const void *items, size_t n, const char *what);

/* ---- conn.c --------------------------------------------------------------- */

/* Set an int socket option; zmq_setsockopt's result. */
int conn_sockopt_int(void *sock, int opt, int value);

/* Make the DEALER and its monitor and start connecting. 0 or NHUB_EZMQ. */
int conn_sock_open(nhub_t *self);

/* Close the DEALER and its monitor, if any. */
void conn_sock_close(nhub_t *self);

/* Write one command to the hub without waiting. NHUB_EAGAIN (the socket is
 * full) makes the loop wait for POLLOUT; other failures are logged. */
int conn_session_write(nhub_t *self, wire_cmd_t cmd, const ProtobufCMessage *body);

/* The connection is refused or failed (`link`, enum nhub_link), for `cause`
 * (enum link_cause), explained by `why`: logged, and recorded in the store
 * with the counters' increments. */
void conn_link_failed(nhub_t *self, int link, int cause, const char *event, const char *why,
                      uint64_t auth_inc, uint64_t handshake_inc);

/* Say HELLO on the stream the store names; the session is NEED_HELLO until
 * it is written (a store error backs off). */
void conn_send_hello(nhub_t *self);

/* Start over with a new HELLO; nothing in flight counts as sent. */
void conn_resync(nhub_t *self, const char *why);

/* Wait (doubling) before saying HELLO again; nothing in flight counts as sent. */
void conn_backoff(nhub_t *self, const char *why);

/* Write the session's next HEARTBEAT. */
void conn_send_heartbeat(nhub_t *self, int64_t now);

typedef int(done_fn)(nhub_t *self);

/*
 * Serve the connection until `done` (may be NULL) says so or `timeout_ms`
 * (real time; -1 = forever) passes. Returns 0 when done, NHUB_ETIMEOUT,
 * NHUB_ECLOSED if a signal interrupted the wait, or NHUB_EZMQ.
 */
int conn_serve(nhub_t *self, int timeout_ms, done_fn *done);

/* ---- receipt.c ------------------------------------------------------------ */

/* The hub's RECEIPT (conn.c's handler). */
void receipt_on_receipt(nhub_t *self, const ProtobufCMessage *m);

/* A NACK about the receipt being waited for: taken (1) or not (0). */
int receipt_on_nack(nhub_t *self, const wire_nack_t *n);

/* ---- send.c --------------------------------------------------------------- */

/* A new session: nothing in flight, no DELIVERED awaiting proof. */
void send_ring_clear(nhub_t *self);

/* The oldest SEND in flight not yet answered, or NULL. */
const inflight_t *send_ring_oldest(const nhub_t *self);

/* Write SENDs from the outbox, in order, while the window has room. */
void send_fill_window(nhub_t *self);

/* Commit the ACKs read in this burst in one transaction. */
void send_flush_acks(nhub_t *self);

/* msg_id of an encoded envelope. 0, or an NHUB_E code if it does not decode. */
int send_envelope_msg_id(const nhub_t *self, const void *data, size_t len,
                         uint8_t out[NHUB_MSG_ID_LEN]);

/* The hub's ACK of a SEND, and its NACK of a SEND or of the session. */
void send_on_ack(nhub_t *self, const ProtobufCMessage *m);
void send_on_nack(nhub_t *self, const ProtobufCMessage *m);

struct found_id;

/* Start a new stream (or adopt the one another process started) and say
 * HELLO on it, backing off first if the last WELCOME came before another
 * rotation; `drop` (a local seq, 0 = none) leaves the outbox with it and
 * `f` learns its msg_id. Returns 1 if `drop` was removed. */
int send_rotate_stream(nhub_t *self, const char *reason, uint64_t drop, struct found_id *f);

/* ---- recv.c --------------------------------------------------------------- */

/* Write the DELIVEREDs of the store's unsent set this session has not
 * written, while there is room, then a HEARTBEAT to prove them. */
void recv_flush_delivered(nhub_t *self);

/* A HEARTBEAT answered: the DELIVEREDs written before it are committed. */
void recv_settle_delivered(nhub_t *self);

/* The hub's DELIVER: queued for nhub_recv, or answered if already confirmed. */
void recv_on_deliver(nhub_t *self, const ProtobufCMessage *m);

/* Forget confirmations older than the retention, a bounded batch at a time. */
void recv_expire_confirmed(nhub_t *self);

#endif
