/*
 * nhub.h: libnhub, the client library a provincial platform links to talk
 * to the nhub national hub. This is its only public header.
 *
 * What it promises:
 *  - nhub_send() returns only after the message is committed to the
 *    adapter's own LMDB outbox (fsync); nhub_send_batch() commits many
 *    messages with one fsync, all or none. From then on it is resent until the
 *    hub ACKs it (the hub ACKs only what is durable in its store), across
 *    lost connections, hub restarts and restarts of this process.
 *  - Messages from one adapter reach the hub in the order they were sent, and
 *    the hub delivers them in that order per (source, destination, priority
 *    class of the item: schemas/catalog.yaml), so per item too; urgent items
 *    may overtake bulk ones.
 *  - nhub_recv() hands each message to the application once: redeliveries of
 *    a message the application has already confirmed are answered and
 *    dropped, also after a restart of this process. A message handed out but
 *    not confirmed before the process stopped is handed out again after the
 *    restart (the hub still holds it).
 *  - nhub_confirm() tells the hub the application has taken the message
 *    (DELIVERED); the hub then removes it from the region's queue.
 *    nhub_confirm_batch() does it for many with one fsync.
 *  - With a key file (nhub_options_t.key_file), the connection is CurveZMQ
 *    (encrypted, and authenticated to the hub by this region's CURVE key)
 *    and every envelope is signed with the region's signing key before it
 *    is stored, so what reaches the hub is what the application sent.
 *
 * Threading: an nhub_t is used by one thread at a time. There is no
 * background thread: the network is served inside nhub_send, nhub_recv,
 * nhub_pump and nhub_flush, so call one of them regularly (every
 * heartbeat interval at least) while the adapter should stay connected.
 *
 * Errors are the negative NHUB_E* codes of nhub_err.h; nhub_strerror() names
 * them and nhub_last_error() gives the detail of the last failure.
 */
#ifndef NHUB_H
#define NHUB_H

#include "nhub_err.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NHUB_MSG_ID_LEN 16
#define NHUB_LINK_ERROR_MAX 192 /* bytes of a link_error text, NUL included */

typedef struct nhub nhub_t;

/* Message kinds (the wire enum nhub.wire.v1.Kind). */
enum nhub_kind {
    NHUB_KIND_REQUEST = 1,  /* collaborative verification request */
    NHUB_KIND_RESPONSE = 2, /* answer; correlation_id = the request's msg_id */
    NHUB_KIND_PUSH = 3,     /* business push */
    NHUB_KIND_FEEDBACK = 4, /* feedback on a push */
    NHUB_KIND_NOTICE = 5,   /* notice, e.g. a broadcast credit list */
};

/* Parse "request", "response", "push", "feedback" or "notice"; 0 if unknown. */
int nhub_kind_parse(const char *name);
/* The lower-case name of a kind, or "unknown". */
const char *nhub_kind_name(int kind);

/*
 * Where the library writes its log lines (one key=value record a line:
 * events, msg_ids in hex, region codes, counts and reasons, never payload
 * data) and the least level written: "debug", "info", "warn", "error" or
 * "off". `stream` NULL = stderr. The default is "info" on stderr. The
 * setting is process-wide: make it once, before nhub_open and before
 * other threads use the library. Returns 0, or NHUB_EINVAL (unknown level;
 * nothing changed).
 */
int nhub_log_setup(const char *level, FILE *stream);

/*
 * Called when the hub refuses a message for good (NACK that is not
 * retryable: invalid, unknown region, ...; and always for the identity and
 * access refusals UNSIGNED 14, BAD_SIGNATURE 15, FORBIDDEN 16, SUSPENDED 17
 * and UNAUTHENTICATED 18, whatever their retryable flag says, since sending
 * the same bytes again cannot change the answer). The message has left the
 * outbox and is not sent again.
 * `text` is the hub's explanation; both pointers are valid during the call.
 * Also called with NACK_TOO_LARGE (2) for a message in the outbox larger
 * than the max_frame the hub announced (or this adapter's own): the library
 * settles it itself, since the hub would drop such a frame unread.
 */
typedef void(nhub_reject_fn)(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN], int nack_code,
                             const char *text);

/*
 * Called when the hub has acknowledged a message: it is durable at the hub
 * and has left the outbox. Also called for messages the hub turns out to
 * hold already when a session starts (WELCOME). Called once per message, by
 * the call that removed it from the outbox: when several processes share
 * the data_dir, the one whose ACK removed it (the others learn it from
 * nhub_outbox_each). `msg_id` is valid during the call.
 *
 * Callbacks run inside nhub_send/recv/pump/flush: they must not call nhub_*
 * functions on the same nhub_t.
 */
typedef void(nhub_ack_fn)(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN]);

/*
 * The hub's own messages about cases, from the hub's region code (000000
 * by default): a REMINDER (催办) to the handler, OVERDUE (督办) to both
 * sides, and EXPIRED, the final answer "no answer within the time limit"
 * (kind response or feedback, correlation_id = the case's request). Their
 * payload is nhub.case.v1.CaseNotice (schemas/nhub/case/v1/case.proto).
 */
#define NHUB_CASE_NOTICES "nhub.case.v1.*"

typedef struct nhub_options {
    const char *region;       /* required: this adapter's six-digit region code */
    const char *hub_endpoint; /* required: e.g. "tcp://127.0.0.1:7400" */
    const char *data_dir;     /* required: created if missing; holds the adapter's LMDB */
    uint32_t credit;          /* deliveries accepted unconfirmed; 0 = 64 */
    uint32_t window;          /* SENDs in flight unacknowledged; 0 = 256 */
    const char *const *accepted_payloads; /* payload types to accept ("pkg.v1.*" ok); NULL = all;
                                             a list always takes NHUB_CASE_NOTICES too */
    size_t n_accepted;
    uint32_t max_frame;       /* largest message accepted by nhub_send; 1 KiB..64 MiB, 0 = 1 MiB */
    int64_t resend_after_ms;  /* resend unacknowledged SENDs after this; 0 = 5000 */
    int64_t heartbeat_ms;     /* 0 = 2000 */
    uint64_t map_size_max;    /* outbox/inbox store limit in bytes; 0 = 4 GiB */
    nhub_reject_fn *on_reject; /* optional */
    void *on_reject_arg;
    nhub_ack_fn *on_ack;      /* optional */
    void *on_ack_arg;
    int offline;              /* 1 = open the store only, never connect (status
                                 tools, tests): nhub_send still stores messages;
                                 nhub_recv/pump/flush return NHUB_ECLOSED */
    int send_only;            /* 1 = announce credit 0: a send-only session that
                                 leaves the region's deliveries with the adapter
                                 that receives them (short-lived senders) */
    int64_t confirmed_retention_ms; /* how long a confirmed msg_id is remembered, so a
                                 redelivery of it is answered and dropped, counted
                                 from when the hub answered its DELIVERED as
                                 committed (never before: a confirmation made while
                                 disconnected, or whose DELIVERED was lost, is kept
                                 and sent again on the next session, however long
                                 the outage); older ones are forgotten (at most 512
                                 a second, while the network is served). 0 = 8
                                 days (the hub's default dedup_window of 7 days
                                 plus a margin) */
    /*
     * Security: give key_file and hub_key, or insecure_plaintext, never both.
     * nhub_open refuses with NHUB_ECONFIG otherwise (an offline handle may
     * give neither: it never connects, and what it stores unsigned is signed
     * by the handle that sends it).
     */
    const char *key_file;   /* this region's secret key file (nhub-keygen, YAML, mode 0600;
                               see proto/keys.h). Its region must be `region`. Enables
                               CURVE on the connection (its CURVE keypair, set before
                               connecting) and the signing of every envelope (its
                               signing key). Read once, in nhub_open */
    const char *hub_key;    /* the hub's CURVE public key, 40 Z85 characters (the
                               `curve:` of the hub's hub.pub); required with key_file */
    int insecure_plaintext; /* 1 = development only: no CURVE, no signatures. A hub
                               that requires either refuses such an adapter. nhub_open
                               logs a warning (event=nhub.insecure) */
} nhub_options_t;

/*
 * Open the adapter: load its keys (opt->key_file), open (or create) its
 * store in opt->data_dir, and connect to the hub (the connection completes
 * in the background; nothing waits for it). Returns 0 and sets *out, or an
 * error with a message in `err` (may be NULL): NHUB_EINVAL (an option is
 * out of range), NHUB_ECONFIG (the security options are missing,
 * contradictory or wrong: neither key_file + hub_key nor
 * insecure_plaintext, both, a key file of another region, a hub_key that is
 * not a CURVE key, a key file that does not load), NHUB_EIO (the key file
 * or data_dir cannot be read), NHUB_ESTORE / NHUB_EVERSION (the store),
 * NHUB_EZMQ, NHUB_ENOMEM. Release with nhub_close.
 *
 * Several processes may open the same data_dir at once (typically one
 * receiving adapter and short-lived send_only senders); they share the
 * outbox, and whichever is connected sends what is in it. One process must
 * not open the same data_dir twice (an LMDB rule).
 */
int nhub_open(const nhub_options_t *opt, nhub_t **out, char *err, size_t errcap);

/* Say BYE, close the socket and the store. Accepts NULL; sets *self to NULL.
 * Unacknowledged messages stay in the outbox for the next nhub_open. */
void nhub_close(nhub_t **self);

/* A message to send. Strings are NUL-terminated; all pointers are borrowed
 * for the duration of the call. */
typedef struct nhub_message {
    const uint8_t *msg_id;        /* 16 bytes, or NULL to have one generated */
    const char *destination;      /* six-digit region code, or "*" for broadcast */
    const char *item;             /* service item code */
    int kind;                     /* enum nhub_kind */
    const uint8_t *correlation_id; /* 16 bytes or NULL */
    int64_t deadline_ms;          /* ms since the Unix epoch, 0 = none */
    const char *payload_type;     /* e.g. "nhub.verify.v1.InsuredQuery" */
    const void *payload;
    size_t payload_len;
} nhub_message_t;

/*
 * Put a message in the outbox (durably) and start sending it. With a key
 * file the encoded envelope is signed first and the signature is committed
 * with it. On return 0 the message will reach the hub; msg_id_out (may be
 * NULL) receives its msg_id. Errors: NHUB_EINVAL (a field is wrong;
 * nhub_last_error says which), NHUB_ETOOBIG (larger than max_frame),
 * NHUB_EFULL (the outbox store is at map_size_max), NHUB_ECRYPTO (signing
 * failed), NHUB_ESTORE.
 */
int nhub_send(nhub_t *self, const nhub_message_t *msg, uint8_t msg_id_out[NHUB_MSG_ID_LEN]);

/*
 * nhub_send for `n` messages at once: each is checked, given its msg_id
 * and signed as nhub_send does, then all are committed to the outbox in ONE
 * transaction (one fsync for the batch), in the order given, and what the
 * window allows is sent. All or nothing: on return 0 every message will
 * reach the hub, in order after what was stored before; on an error none
 * was stored. msg_ids (may be NULL) receives the n msg_ids, msg_ids[i] for
 * msgs[i]. n = 0 stores nothing and returns 0.
 *
 * Errors as nhub_send's; for a batch of two or more, nhub_last_error
 * starts with "[i of n]: " naming the first message refused. A batch
 * larger than the store takes in one transaction fails with NHUB_EFULL or
 * NHUB_ESTORE (send it in smaller batches); NHUB_ENOMEM. Batches of tens to
 * a few hundred messages take most of the gain.
 */
int nhub_send_batch(nhub_t *self, const nhub_message_t *msgs, size_t n,
                    uint8_t (*msg_ids)[NHUB_MSG_ID_LEN]);

/* A message handed to the application. Read-only; owned by the library until
 * nhub_confirm or nhub_delivery_release. */
typedef struct nhub_delivery {
    uint8_t msg_id[NHUB_MSG_ID_LEN];
    char source[8];
    char destination[8];
    char item[65];
    int kind;
    uint8_t correlation_id[NHUB_MSG_ID_LEN];
    size_t correlation_len;  /* 0 or 16 */
    int64_t created_ms;
    int64_t deadline_ms;
    char payload_type[129];
    const void *payload;
    size_t payload_len;
    uint64_t seq;            /* the hub's journal sequence */
    uint64_t dseq;           /* position in this region's queue */
    /* The sender's signature as the hub verified it, so the application can
     * check it itself with the sender's public key (proto/keys.h,
     * keys_verify over `signed_envelope`). Borrowed like `payload`. */
    const uint8_t *signature; /* NULL if the message came unsigned */
    size_t signature_len;
    char key_id[33];      /* key id of the sender's signing key (32 hex digits);
                             "" if unsigned or if the hub sent something longer */
    const void *envelope; /* the encoded Envelope as delivered (payload lies
                             inside it); borrowed like `payload` */
    size_t envelope_len;
    /* The Envelope the signature covers: `envelope` itself, or, when the hub
     * translated the payload to a version this adapter announced
     * (`translated` = 1), the sender's original, as sent and signed. Every
     * field but payload and payload_type is the same in both, so the
     * application can check the translation against the original. */
    const void *signed_envelope;
    size_t signed_envelope_len;
    int translated;
} nhub_delivery_t;

/*
 * Wait up to timeout_ms (0 = do not wait, -1 = forever) for the next message,
 * serving the connection meanwhile. Returns 0 and sets *out, NHUB_ETIMEOUT,
 * or NHUB_ECLOSED if interrupted by a signal (or opened offline).
 */
int nhub_recv(nhub_t *self, nhub_delivery_t **out, int timeout_ms);

/*
 * The application has taken `*d`: record it durably (so a redelivery is
 * dropped even after a restart), tell the hub (DELIVERED), free the delivery
 * and set *d to NULL. The same as nhub_confirm_batch(self, d, 1).
 * Errors: NHUB_EINVAL (d is NULL or not a delivery this adapter holds),
 * NHUB_EFULL, NHUB_ESTORE (nothing recorded: *d is still the caller's, to
 * confirm again or release).
 */
int nhub_confirm(nhub_t *self, nhub_delivery_t **d);

/*
 * nhub_confirm for the `n` deliveries ds[0..n): all are recorded as
 * confirmed in ONE transaction (one fsync), and only once that is durable
 * are the DELIVERED frames sent, so a redelivery of any of them is dropped
 * even after a restart. Then each is freed and ds[i] set to NULL.
 * All or nothing: on an error nothing is recorded, nothing is sent and
 * every ds[i] still belongs to the caller. n = 0 does nothing.
 * Errors: NHUB_EINVAL (ds is NULL, or an element is NULL, not held by this
 * adapter, or given twice; nhub_last_error names it as "[i of n]: ..."),
 * NHUB_ENOMEM, NHUB_EFULL, NHUB_ESTORE.
 */
int nhub_confirm_batch(nhub_t *self, nhub_delivery_t **ds, size_t n);

/* Give up a delivery without confirming: the hub will redeliver it later.
 * Frees it and sets *d to NULL. Accepts NULL. */
void nhub_delivery_release(nhub_t *self, nhub_delivery_t **d);

/* Serve the connection for up to timeout_ms without taking deliveries.
 * Returns 0, or NHUB_ECLOSED if interrupted by a signal (or opened offline). */
int nhub_pump(nhub_t *self, int timeout_ms);

/* Most descriptors nhub_pump_fds takes. */
#define NHUB_PUMP_FDS_MAX 8

/*
 * nhub_pump for a program with descriptors of its own (an HTTP server's,
 * an inotify descriptor): serve the connection for up to timeout_ms (-1 =
 * until something happens), returning early as soon as one of the `n` fds
 * is readable or a delivery is ready for nhub_recv, so one thread can wait
 * on the hub and on its own work at once. The fds are borrowed for the
 * call. Returns 0 (something is ready or the time is up: look at both),
 * NHUB_EINVAL (n > NHUB_PUMP_FDS_MAX, or fds NULL with n > 0), or
 * NHUB_ECLOSED if interrupted by a signal (or opened offline).
 */
int nhub_pump_fds(nhub_t *self, const int *fds, size_t n, int timeout_ms);

/* Serve the connection until the outbox is empty (every message ACKed or
 * rejected) or timeout_ms passes. Returns 0, NHUB_ETIMEOUT, or NHUB_ECLOSED
 * if interrupted by a signal (or opened offline with messages waiting). */
int nhub_flush(nhub_t *self, int timeout_ms);

/* The state of the connection to the hub, as far as this adapter can tell. */
enum nhub_link {
    NHUB_LINK_DOWN = 0,             /* not connected (yet, or any more) */
    NHUB_LINK_UP = 1,               /* a WELCOME came: the hub takes messages */
    NHUB_LINK_REFUSED = 2,          /* the hub refused this adapter: its CURVE key
                                       (not configured for the region, or expired),
                                       or its HELLO (NACK); retried with back-off */
    NHUB_LINK_HANDSHAKE_FAILED = 3, /* the security handshake failed: the hub and
                                       the adapter probably use different modes
                                       (CURVE / plaintext) or a wrong hub_key */
};

/* "down", "up", "refused", "handshake_failed"; "unknown" otherwise. */
const char *nhub_link_name(int link);

typedef struct nhub_stats {
    uint64_t outbox;          /* messages waiting for an ACK */
    uint64_t sent;            /* SEND frames written, resends included */
    uint64_t acked;
    uint64_t rejected;        /* refused for good */
    uint64_t resent;
    uint64_t received;        /* deliveries handed to the application */
    uint64_t duplicates;      /* redeliveries dropped */
    uint64_t confirmed;
    int connected;            /* 1 after WELCOME until the session is lost */
    uint64_t streams_rotated; /* new streams started (conflict, copied store, too large) */
    uint64_t confirmed_expired; /* confirmed msg_ids forgotten after confirmed_retention_ms */
    uint64_t auth_failures;     /* handshakes the hub refused (ZAP: key not accepted) */
    uint64_t handshake_failures; /* other failed security handshakes */
    uint64_t resigned;           /* SENDs signed again at transmit: stored unsigned or with a
                                    key id other than the current key's (the key was
                                    rotated, or the store predates signing) */
    int link;                    /* enum nhub_link */
    char link_error[NHUB_LINK_ERROR_MAX]; /* what went wrong with the connection last;
                                            "" once up */
    uint64_t delivered_settled; /* confirmations whose DELIVERED the hub answered as
                                   committed: only these age out of the confirmed set */
} nhub_stats_t;

/* Fill *out with counters of this adapter (counters are per nhub_open;
 * `outbox` is read from the store). */
void nhub_stats(const nhub_t *self, nhub_stats_t *out);

/*
 * Call `fn` with the msg_id of each message waiting in the outbox, oldest
 * first, until it returns non-zero. Reads the store only (no network); the
 * outbox may be shared with other processes, so this is how a sender learns
 * which of its messages are still waiting. `fn` must not call nhub_*
 * functions. Returns 0 or NHUB_ESTORE.
 */
typedef int(nhub_outbox_fn)(void *arg, const uint8_t msg_id[NHUB_MSG_ID_LEN]);
int nhub_outbox_each(nhub_t *self, nhub_outbox_fn *fn, void *arg);

/* What the adapter's store holds (read from disk; no network). */
typedef struct nhub_store_info {
    uint8_t stream_id[16];     /* names this outbox to the hub */
    uint64_t next_stream_seq;  /* stream_seq the next nhub_send gets */
    uint64_t outbox;           /* messages waiting for an ACK */
    uint64_t confirmed_ids;    /* msg_ids recorded as confirmed by the application */
    uint64_t map_size;         /* current LMDB map size, bytes */
    uint64_t map_size_max;     /* limit (nhub_options_t.map_size_max) */
    /* The connection state last recorded in the store by a running adapter
     * (any process sharing the data_dir), for status tools that do not
     * connect. It is recorded on each failed handshake or refusal and when
     * a session starts after one, not on every disconnect. */
    int link;                             /* enum nhub_link; NHUB_LINK_DOWN if never recorded */
    int64_t link_changed_ms;              /* wall clock of that record; 0 = never */
    char link_error[NHUB_LINK_ERROR_MAX]; /* what went wrong; "" when up */
    uint64_t auth_failures;               /* over all processes since the store was made */
    uint64_t handshake_failures;
    uint64_t unsent_confirmations; /* confirmed, DELIVERED not yet known committed at the
                                      hub: sent on the next session, never aged out */
} nhub_store_info_t;

/* Fill *out from the store. Returns 0 or NHUB_ESTORE. */
int nhub_store_info(nhub_t *self, nhub_store_info_t *out);

/*
 * Replace the clocks, for tests: `wall_ms` (ms since the Unix epoch) stamps
 * created_ms and confirmations; `mono_ms` (ms, never jumps) drives the
 * heartbeat, resend, back-off and silence timers. NULL keeps the system
 * clock for that one. Timeouts given to nhub_recv/pump/flush are always
 * real time (they are waits inside zmq_poll).
 */
typedef int64_t(nhub_clock_fn)(void *arg);
void nhub_set_clock(nhub_t *self, nhub_clock_fn *wall_ms, nhub_clock_fn *mono_ms, void *arg);

/* ---- receipts ---------------------------------------------------------------
 *
 * A receipt is the hub's proof that it journaled a message: the message's
 * ACCEPTED journal record, its inclusion proof in the hub's Merkle tree and
 * the signed checkpoint of that tree, as one text file (proto/README.md,
 * "Receipts"). Anyone checks it offline with the hub's checkpoint verifier
 * key (its "vkey", from the hub's operators or GET /api/v1/checkpoint).
 */

/*
 * Fetch the receipt of message `msg_id` (one this region sent, or one it
 * received) from the hub, serving the connection up to `timeout_ms` (real
 * time, -1 = forever) for the answer. The hub signs a checkpoint on the
 * spot if none covers the message yet. Returns 0 and *text (the receipt
 * file's text, NUL-terminated; caller frees with free()) and *len (may be
 * NULL); NHUB_ENOTFOUND (the hub knows no such message this region may
 * see), NHUB_EREFUSED (the hub cannot make one: no signing key, too large;
 * nhub_last_error says why), NHUB_ETIMEOUT, NHUB_ECLOSED (opened offline),
 * NHUB_EINVAL or NHUB_ENOMEM. The receipt is not checked: nhub_receipt_verify.
 */
int nhub_receipt_get(nhub_t *self, const uint8_t msg_id[NHUB_MSG_ID_LEN], int timeout_ms,
                     char **text, size_t *len);

/* What a receipt that verified says about its message. */
typedef struct nhub_receipt_info {
    uint8_t msg_id[NHUB_MSG_ID_LEN];
    uint64_t seq;       /* the hub's journal record of it */
    uint64_t tree_size; /* records the signed checkpoint covers */
    int64_t time_ms;    /* when the hub accepted it (the hub's clock) */
    char origin[256];   /* the checkpoint's origin (the hub's name, audit.origin) */
    char source[8], destination[8]; /* destination: a region code or "*" */
    char item[65];
} nhub_receipt_info_t;

/*
 * Check receipt text (`len` bytes) offline against the hub's verifier key
 * `vkey` ("NAME+HEX8+BASE64", as the hub publishes it), for message
 * `msg_id` (NULL: the one the receipt names): the checkpoint's signature,
 * the record (the ACCEPTED event of that msg_id) and its inclusion proof.
 * Returns 0 and *info (may be NULL); NHUB_EMALFORMED (not a receipt, or a
 * bad vkey), NHUB_EREFUSED (a check failed) or another error, with the
 * failing part named first in `err` ("checkpoint: ...", "record: ...",
 * "msg_id: ...", "inclusion: ..."; "vkey: ..." for the key).
 */
int nhub_receipt_verify(const char *text, size_t len, const char *vkey,
                        const uint8_t *msg_id, nhub_receipt_info_t *info, char *err,
                        size_t errcap);

/* Detail of the last error on `self` (never NULL; empty if none). */
const char *nhub_last_error(const nhub_t *self);

/* Hex of a msg_id into buf (33 bytes). Returns buf. */
char *nhub_msg_id_hex(const uint8_t id[NHUB_MSG_ID_LEN], char buf[33]);

#ifdef __cplusplus
}
#endif
#endif
