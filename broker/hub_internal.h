/*
 * hub_internal.h: the hub's private state and the contract of each step a
 * message takes through it. Only the hub's own files include it; the
 * outside sees hub.h.
 *
 *   ingress.c  frame -> checked item: decodes and checks each frame of a
 *              peer and stages it as an item of the current stage, or
 *              refuses it on the spot (nothing staged, nothing stored).
 *   commit.c   stage -> one transaction -> replies: applies a stage in one
 *              LMDB transaction (journal, queues, duplicate window,
 *              streams), then changes RAM state and answers every item in
 *              frame order; signature checks of the next stage overlap it.
 *   deliver.c  queues -> DELIVER: new messages within each region's credit,
 *              redelivery with backoff, holds for a receiver that cannot
 *              take a message.
 *   reply.c    what is said back to a peer outside a commit's own answers:
 *              NACKs, refusals, heartbeat answers, and their rate-limited log.
 *   zap.c      identity: the ZAP handler deciding CURVE handshakes, and the
 *              monitor reporting failed ones.
 *   hub.c      the loop that wires them, the region table, suspensions,
 *              housekeeping, start, reload and stop.
 *
 * The rule all of them keep: everything a turn stages is replayable (a
 * transaction that meets a full map is aborted, the map grown and the same
 * stage applied again), and RAM state changes only after a commit
 * succeeded.
 */
#ifndef NHUB_HUB_INTERNAL_H
#define NHUB_HUB_INTERNAL_H

#include "hub.h"

#include "archive.h"
#include "auth.h"
#include "cases.h"
#include "catalog.h"
#include "dispatch.h"
#include "http.h"
#include "metrics.h"
#include "log.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"
#include "payload.h"
#include "seal.h"
#include "translate.h"
#include "session.h"
#include "store.h"
#include "tlog.h"
#include "wire.h"
#include "workers.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef Nhub__Journal__V1__JournalEvent journal_event_t;

#define HUB_SESSIONS_MAX 65536
#define HUB_FRAME_SLACK 1024 /* Send wrapper and header around an envelope */
#define HUB_HOUSEKEEPING_MS 1000
#define HUB_STATS_MS 10000
/* A commit forgets up to 512 + 2 per staged item of the duplicate window's
 * oldest entries: each item adds at most one, so the window is expired at
 * least twice as fast as it fills and catches up after downtime. */
#define HUB_WINDOW_EXPIRE_MIN 512
#define HUB_SCAN_MAX 256
/* Lanes of one region's queue the scheduler serves at a time (sources x
 * priority classes; more wait until these drain), and the messages read
 * ahead from each per delivery round. */
#define HUB_LANES_MAX 1024
#define HUB_LANE_READ 8
/*
 * Messages queued towards one peer before sends to it wait (EAGAIN): bounds
 * the hub's memory for a peer that stops reading (a few MiB of small
 * answers). It must stay well above what a reading peer can have in
 * flight: its DELIVER credit (capped below at a quarter of this) plus one
 * ACK per unacknowledged SEND of its window, as libzmq's accounting lets a
 * pipe fill at about half its nominal size. An answer that still meets a
 * full queue is counted and logged, and the adapter's resend gets it again.
 */
#define HUB_PEER_HWM 32768
#define HUB_CREDIT_CAP (HUB_PEER_HWM / 4)
/*
 * What one peer can make the hub hold. libzmq queues a peer's frames up to
 * the receive high-water mark, counted in messages, and then stops reading
 * its connection (TCP pushes back; nothing is lost). The mark is sized so
 * that a peer writing max_frame bodies queues about HUB_PEER_QUEUE_BYTES,
 * and never more than the protocol lets a reading peer have in flight (its
 * window of SENDs and its credit of DELIVEREDs); a peer of small frames
 * meets it only when it writes more than it waits answers for.
 */
#define HUB_PEER_QUEUE_BYTES ((uint64_t)64 << 20)
#define HUB_PEER_QUEUE_MIN 16
#define HUB_PEER_QUEUE_MAX (2 * HUB_CREDIT_CAP)
/* A stage is closed once its SEND bodies reach this many bytes (or one
 * max_frame, if larger), whatever its count: the two stages of the
 * pipeline and the commit's dirty pages stay bounded, so does the time one
 * turn takes before ZAP requests and heartbeats are served again. */
#define HUB_STAGE_BYTES ((uint64_t)8 << 20)
#define HUB_BLOCKED_RETRY_MS 50
/*
 * Ingest fair sharing. ZeroMQ hands the hub one frame per peer in turn,
 * so a peer of 1 MiB SENDs would fill a stage with megabytes while its
 * neighbours add a few hundred bytes each, and everyone's ACK waits for
 * that commit. So one connection puts at most a share of a stage's bytes
 * in it (HUB_STAGE_BYTES / HUB_FAIR_SHARES, and always one frame); what
 * comes beyond waits, in order, in the hub's memory for the next stages
 * (ingress_defer). Waiting frames are bounded by HUB_DEFER_MAX in all:
 * at the bound the loop stops reading until the next stage. Up to
 * HUB_FAIR_SOURCES connections are followed per stage; others are not
 * limited.
 */
#define HUB_FAIR_SHARES 8
#define HUB_FAIR_SOURCES 64
#define HUB_DEFER_MAX ((uint64_t)64 << 20)
/* Refused handshakes are journaled at most this often (each is counted);
 * the next record says how many were not journaled in between. */
#define HUB_AUTH_JOURNAL_MS 1000
/* Frames refused on the spot are journaled (EVENT_REFUSED_WIRE) at most
 * HUB_WIRE_JOURNAL_PER_CONN per connection and HUB_WIRE_JOURNAL_ALL in all
 * per HUB_WIRE_JOURNAL_MS; the others are counted, and the next record says
 * how many. Connections are followed in HUB_WIRE_SLOTS slots by routing id
 * (one that loses its slot starts again, within the overall bound). */
#define HUB_WIRE_JOURNAL_MS 60000
#define HUB_WIRE_JOURNAL_PER_CONN 10
#define HUB_WIRE_JOURNAL_ALL 120
#define HUB_WIRE_SLOTS 64
#define HUB_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define HUB_ZAP_DOMAIN "nhub"
#define HUB_MONITOR_ENDPOINT "inproc://nhub.hub.monitor"
#define HUB_NACK_CODES 32
/* Recent refusals and security events kept for the API and dashboard. */
#define HUB_RECENT_MAX 256
/* Refusal events sent on the live stream per second at most (all are kept). */
#define HUB_STREAM_REFUSALS_PER_S 20
#define HUB_TICK_MS 1000 /* the live stream's status and regions */
#define HUB_CASE_NOTES_MAX 64 /* case transitions per transaction sent on the live stream */
#define HUB_ITEM_STATS_MAX 256 /* service items counted for /metrics; others under "other" */
/* Signature checks run on up to this many threads (the loop's included),
 * in chunks of at least HUB_VERIFY_CHUNK envelopes. */
#define HUB_VERIFY_THREADS_MAX 8
#define HUB_VERIFY_CHUNK 8
/* Space kept for confirmations and hub events once new messages are
 * refused, so delivery goes on in a full store: a tenth of the map limit
 * and a twentieth of the disk, each at most 64 MiB. */
#define HUB_RESERVE_MAX ((uint64_t)64 << 20)

/* ITEM_REDELIVER and ITEM_REFUSED are the hub's own: a resend made, a frame
 * refused on the spot; each only journaled, nothing answered. */
enum item_type {
    ITEM_HELLO,
    ITEM_SEND,
    ITEM_CONFIRM,
    ITEM_HOLD,
    ITEM_HEARTBEAT,
    ITEM_REDELIVER,
    ITEM_REFUSED,
};

/* A frame held back by ingest fair sharing. */
struct hub_deferred {
    struct hub_deferred *next;
    wire_frames_t f;
};

/* One connection's share of the current stage, and its frames waiting. */
struct hub_fair {
    uint8_t rid[WIRE_ROUTING_ID_MAX];
    size_t rid_len;
    uint64_t gen;   /* the stage `bytes` count in (hub.stage_gen) */
    uint64_t bytes; /* SEND bytes it put in that stage */
    struct hub_deferred *head, *tail;
    uint64_t deferred_bytes;
};

/* One staged unit of work of a turn, and its reply once committed. */
struct item {
    enum item_type type;
    uint8_t rid[WIRE_ROUTING_ID_MAX];
    size_t rid_len;
    int region; /* SEND/HELLO: the sender; CONFIRM/HOLD: the destination */
    uint8_t stream_id[16];
    wire_hello_t *hello;  /* HELLO: owned, applied to the session once committed */
    wire_send_t *send;    /* SEND: owned */
    wire_envelope_t *env; /* SEND: owned; NULL if it did not decode */
    int reject;           /* SEND: a NackCode that refuses it for good, or 0 */
    char why[256];
    int verify;                    /* SEND: the signature is still to be checked */
    char key_id[KEYS_FPR_LEN + 1]; /* SEND: signing key id as sent (checked form) */
    char fpr[KEYS_FPR_LEN + 1];    /* SEND: CURVE fingerprint of the connection */
    uint8_t msg_id[16];            /* CONFIRM/HOLD/REDELIVER */
    uint64_t dseq, seq;            /* CONFIRM/HOLD/REDELIVER; seq: HEARTBEAT's beat */
    uint32_t sends;                /* CONFIRM: DELIVERs sent in the session (0: not in flight);
                                      REDELIVER: the number of this one */
    int64_t first_sent_ms;         /* CONFIRM: wall clock of the session's first DELIVER */
    uint64_t not_journaled;        /* REFUSED: refusals left out by the bound before it */
    uint32_t hold_reason;          /* HOLD: STORE_HELD_* */
    uint32_t hold_size;            /* HOLD, too large: the DELIVER's size */
    int64_t recv_us;               /* when its frame was read (hub_now_us), for ACK latency */
    int stage;                     /* SEND of a feedback: its stage field, -1 if opaque */
    /* result */
    int reply; /* WIRE_ACK, WIRE_NACK, WIRE_WELCOME or 0 */
    int code;  /* NACK code */
    int retryable;
    int dup;
    int applied;  /* CONFIRM removed it from the queue; HOLD newly held it */
    int released; /* CONFIRM of a message that was held before */
    int mismatch; /* CONFIRM/HOLD named a msg_id not at that dseq */
    uint64_t r_seq, r_expected, r_stream_last;
};

struct hub_region {
    char code[8];
    dispatch_t *window;
    session_t *delivery;   /* the session receiving this region's messages */
    int pending;           /* the queue may hold messages beyond the cursor */
    int64_t blocked_until; /* its peer's queue was full: wait before sending again */
    int notified;          /* the transaction being applied queued a hub notice for it */
    store_opstate_t op;    /* what operators set through the API (stored as "opstate/") */
    double rate_tokens;    /* op.rate: deliveries allowed now (a bucket of one second) */
    int64_t rate_at;       /* monotonic ms the bucket was filled at */
    int64_t last_seen_ms;  /* wall clock of its last frame, 0 if none since start */
    struct hub_region_stats {
        uint64_t accepted; /* messages from it stored */
        uint64_t delivered, redelivered, confirmed; /* to it */
        uint64_t refused;  /* its frames and messages refused */
        uint64_t refused_by[HUB_NACK_CODES];
    } st; /* since start */
};

/* A refusal or security event, kept for the API (no payload, no key). */
struct hub_recent {
    int64_t time_ms;
    int code;  /* refusals: the NACK code; security: the kind (hub_security_event) */
    char region[8];
    char fingerprint[KEYS_FPR_LEN + 1];
    char address[64];
    char reason[200];
};

/* The archive file being made (retention.c): written in steps on the loop,
 * made durable on a thread of its own, then journaled. */
struct hub_archive {
    archive_writer_t *w;  /* NULL when no file is being made */
    uint64_t first, last; /* its range */
    uint64_t next;        /* the next record to write */
    uint8_t last_hash[STORE_HASH_LEN];
    uint8_t file_hash[32];
    char name[64];
    int64_t started_us;
    int64_t write_us; /* spent in the loop's steps */
    int64_t sync_us;  /* in archive_writer_sync, on its thread */
    pthread_t thread; /* archive_writer_sync */
    int syncing;      /* the thread was started and not joined */
    atomic_int synced; /* it has ended, with sync_rc and sync_err */
    int sync_rc;
    char sync_err[512];
    int written;       /* durable: to be journaled (EVENT_ARCHIVED) */
    int64_t next_look; /* monotonic ms of the next look for work */
    int64_t retry_at;  /* after an error: no new file before */
};

struct hub {
    cfg_t *cfg;
    struct hub_archive arc;
    /* Checkpoints of the journal's Merkle tree (checkpoint.c). */
    keys_file_t *cp_keys;     /* the hub's keys (security.key_file), NULL without */
    tlog_signer_t *cp_signer; /* signs them as audit.origin; NULL: unsigned */
    uint64_t cp_size;         /* tree size of the last checkpoint */
    uint64_t cp_pending;      /* of the one in the open transaction, 0 if none */
    int64_t cp_at;            /* monotonic ms of the last (or of the last look) */
    /* Payload privacy at rest (atrest.c). */
    seal_key_t *seal_key;    /* security.payload_key_file's key, NULL: stored as received */
    uint8_t *sealed;         /* the sealed envelope of the event being appended */
    size_t sealed_cap;
    uint8_t *opened;         /* the opened envelope of the message being delivered */
    size_t opened_cap;
    int64_t unopened_log_at;  /* monotonic ms of the last hub.sealed_unopened line */
    uint64_t unopened_quiet;  /* ... and those not logged since */
    const nhub_clock_t *clock;
    store_t *store;
    void *zctx, *router;
    void *zap;          /* REP at inproc://zeromq.zap.01 (curve mode) */
    void *monitor;      /* PAIR receiving the router's handshake failures */
    auth_t *auth;       /* keys of the current configuration */
    catalog_t *catalog; /* NULL: every item allowed (development mode only) */
    int curve;          /* security.mode is curve */
    workers_t *workers; /* signature checks */
    size_t *verify_idx; /* the ready stage's items to check, cap_items */
    struct item *verify_items;
    int64_t verify_now;
    int64_t auth_journaled_at[3]; /* per kind: ZAP refusal, failed handshake, identity */
    uint64_t auth_unjournaled[3];
    struct hub_wire_slot {
        uint8_t rid[WIRE_ROUTING_ID_MAX];
        size_t rid_len;
        int64_t since;     /* monotonic ms its minute began */
        uint32_t journaled; /* in that minute */
    } wire_slots[HUB_WIRE_SLOTS];
    int64_t wire_since;         /* the overall bound's minute */
    uint32_t wire_journaled;    /* ... and its records */
    uint64_t wire_unjournaled;  /* refusals left out since the last record */
    uint64_t stage_peak;        /* the most room a stage asked for (hub_room_for) */
    char endpoint[256];
    session_table_t *sessions;
    struct hub_region *regions;
    size_t n_regions;
    struct item *items; /* the stage being filled */
    size_t n_items, cap_items;
    uint64_t items_bytes; /* its SEND bodies */
    uint64_t stage_bytes; /* a stage is closed once items_bytes reaches it */
    uint64_t stage_gen; /* counts stages; a new one starts when the current becomes ready */
    struct hub_fair fair[HUB_FAIR_SOURCES]; /* ingress_defer */
    size_t n_fair;
    uint64_t deferred_total; /* bytes of all frames waiting */
    uint64_t deferred_frames; /* frames ever held back */
    struct item *ready; /* the stage before it: signatures being checked, commits next */
    size_t n_ready;
    uint64_t ready_bytes;
    uint8_t *scratch;
    size_t scratch_cap;
    dispatch_entry_t due[HUB_SCAN_MAX];
    store_lane_t lane_keys[HUB_LANES_MAX];         /* deliver_new's scratch */
    struct hub_lane_read {
        size_t n, i; /* read ahead, taken */
    } lane_read[HUB_LANES_MAX];
    store_queued_t lane_msgs[HUB_LANES_MAX * HUB_LANE_READ];
    hub_counters_t n;
    int64_t next_housekeeping, next_stats;
    int64_t last_log[HUB_NACK_CODES]; /* per NACK code, to rate-limit warnings */
    uint64_t suppressed[HUB_NACK_CODES];
    uint64_t stats_commits_seen;
    int64_t reply_drop_logged;
    uint64_t stats_security_seen;
    int full; /* new messages refused: the reserve is reached */
    /* cases.c */
    int64_t cases_next_ms; /* wall time of the earliest deadline, INT64_MAX if none */
    struct case_tally {
        unsigned opened, delivered, reminded, overdue, answered, refused, expired, notices;
    } case_tally; /* of the transaction being applied */
    uint8_t case_due[CASES_FIRE_MAX][16];
    int64_t case_due_ms[CASES_FIRE_MAX];
    /* api.c: the HTTP endpoint, its figures and its recent events */
    http_t *http;             /* NULL when http.listen is not set */
    int64_t started_ms;       /* wall clock */
    int64_t next_tick;        /* monotonic ms of the next live-stream tick */
    metrics_hist_t ack_latency, e2e_latency, commit_seconds, commit_items, commit_bytes;
    struct hub_recent refusals[HUB_RECENT_MAX], security[HUB_RECENT_MAX];
    uint64_t n_refusals, n_security; /* ever; the newest is at (n - 1) % HUB_RECENT_MAX */
    int64_t stream_sec;
    unsigned stream_refusals;
    const char *cfg_path;       /* the configuration file (hub_run's), for reloads */
    /* Case transitions of the transaction being applied, for the live
     * stream (only while a stream is open; beyond the bound not streamed). */
    struct hub_case_note {
        uint8_t id[16];
        int type; /* EVENT_CASE_* */
        uint8_t state;
        char item[65], requester[7], handler[7];
    } case_notes[HUB_CASE_NOTES_MAX];
    size_t n_case_notes;
    struct hub_item_stat {
        char item[65];
        uint64_t accepted, rejected;
    } item_stats[HUB_ITEM_STATS_MAX]; /* since start, in order of first use */
    size_t n_item_stats;
    int64_t late_log_sec;
    unsigned late_log_n;
    uint64_t late_log_suppressed;
};

void hub_security_event(hub_t *h, int kind, const char *fpr, const char *address,
                           const char *reason);

/* ---- hub.c ------------------------------------------------------------------ */

static inline int64_t hub_now_mono(const hub_t *h)
{
    return clock_mono_ms(h->clock);
}

/* Microseconds of the system's monotonic clock, for latency figures only
 * (nothing is decided by them, so tests need not drive this clock). */
static inline int64_t hub_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Region i refuses messages: suspended in the file or by an operator. */
static inline int hub_region_suspended(const hub_t *h, size_t i)
{
    return h->cfg->regions[i].suspended || h->regions[i].op.suspended;
}

/* Region i gets no deliveries now: suspended or paused. */
static inline int hub_region_held_back(const hub_t *h, size_t i)
{
    return hub_region_suspended(h, i) || h->regions[i].op.paused;
}

/* Index of a configured region code, or -1. */
int hub_region_lookup(const hub_t *h, const char *code);

/*
 * A refused handshake or an identity overstep (kind 0: refused by the ZAP
 * handler, 1: failed before it, 2: an authenticated connection acting
 * beyond its identity or key): counted always, logged and journaled at most
 * once per HUB_AUTH_JOURNAL_MS per kind. Only the key's fingerprint and the
 * peer's address are kept.
 */
void hub_security_event(hub_t *h, int kind, const char *fpr, const char *address,
                        const char *reason);

/* Refuse new messages (h->full) while the store is within its reserve of
 * the map limit or of the disk's free space; take them again when space
 * returns. */
void hub_check_space(hub_t *h);
/* Whether `bytes` more fit in the map without eating into the reserve kept
 * for confirmations (1 if the usage cannot be read). */
int hub_room_for(hub_t *h, uint64_t bytes);

/* Load the operator state of every region from the store (start, reload). */
int hub_load_opstate(hub_t *h);

/* Run `fn` in a write transaction of its own (grown and retried when the
 * map is full); the journal events it appends are committed with it. */
int hub_txn(hub_t *h, int (*fn)(hub_t *h, store_txn_t *t, void *arg), void *arg);

/* ---- api.c, api_metrics.c ------------------------------------------------------ */

#define API_VERSION "0.1.0" /* nhubd's version, as the API and /metrics report it */

/* GET /metrics (api_metrics.c). */
void api_get_metrics(hub_t *h, http_req_t *req, store_reader_t *rd);
/* api_audit.c: the latest checkpoint, inclusion and consistency proofs. */
void api_get_checkpoint(hub_t *h, http_req_t *req, store_reader_t *rd);
void api_get_proof(hub_t *h, http_req_t *req, store_reader_t *rd);
void api_get_consistency(hub_t *h, http_req_t *req, store_reader_t *rd);
/* Query parameter `name` as a whole number 0..max (`def` if absent) into
 * *out; 0, or -1 after answering 400 naming it. */
int api_query_u64(http_req_t *req, const char *name, uint64_t def, uint64_t max, uint64_t *out);

/* A NACK code's lower-case name as a JSON string ("bad_signature"). */
json_t *api_code_json(int code);

/* Held messages of `region`, counted up to a bound (API_HELD_COUNT_MAX). */
size_t api_held_count(store_reader_t *rd, const char *region);

/* Every (handler, item) evaluation figure into *out (caller frees), *n of them. */
int api_stats_read(store_reader_t *rd, store_case_stat_t **out, size_t *n);

/* Start the HTTP endpoint if the configuration has one. 0 or an error in `err`. */
int api_start(hub_t *h, char *err, size_t errcap);

/* The live stream's tick (status and regions, once a second) and the
 * endpoint's own work; called once per turn of the loop. */
void api_turn(hub_t *h);

/* Keep a refusal for the API and the live stream (region and why may be NULL). */
void api_note_refusal(hub_t *h, int code, const char *region, const char *why);

/* Count a SEND of `item` answered (accepted: stored, else refused for good). */
void api_note_item(hub_t *h, const char *item, int accepted);

/* Send the committed transaction's case transitions on the live stream. */
void api_note_cases(hub_t *h);

/* Keep a security event (kind as hub_security_event). */
void api_note_security(hub_t *h, int kind, const char *fpr, const char *address,
                       const char *reason);

/* ---- reply.c ---------------------------------------------------------------- */

/* Refusals that say someone tried to act beyond their identity or rights. */
int reply_is_security(int code);

/* Log a refusal, at most once a second per reason. `region`, `msg_id` may be NULL. */
void reply_log_refusal(hub_t *h, int code, const char *region, const uint8_t *msg_id,
                       const char *why);

/* Account for the result of sending an answer (a full peer queue loses it: counted, logged). */
void reply_sent(hub_t *h, int rc);

/* Send a NACK to `rid` (counted per code). `msg_id` may be NULL. */
void reply_nack(hub_t *h, const void *rid, size_t rid_len, int code, int retryable,
                const uint8_t *msg_id, uint64_t stream_seq, uint64_t expected, const char *text);

/* Journal a frame refused on the spot (EVENT_REFUSED_WIRE) within the bound
 * of HUB_WIRE_JOURNAL_*: staged for the next commit, or counted. */
void reply_journal_wire(hub_t *h, const void *rid, size_t rid_len, int code, const char *region,
                        const char *why);

/* Refuse a frame on the spot: logged (rate-limited), journaled (within its
 * bound; security refusals are journaled as such by hub_security_event)
 * and NACKed; nothing else staged. */
void reply_refuse(hub_t *h, const void *rid, size_t rid_len, int code, int retryable,
                  const char *region, const char *why);

/* Answer HEARTBEAT `beat`. */
void reply_heartbeat(hub_t *h, const void *rid, size_t rid_len, uint64_t beat);

/* ---- ingress.c -------------------------------------------------------------- */

/* A new item at the end of the current stage, or NULL if the stage is full
 * (the drain stops before that). */
struct item *ingress_item_new(hub_t *h, enum item_type type, const void *rid, size_t rid_len);

/* Free what an item owns. */
void ingress_item_clear(struct item *it);

/* Check one received message (routing id, header, body) and stage it or answer it. */
void ingress_frames(hub_t *h, const wire_frames_t *f);

/* Hold `f` back if its connection has had its share of the current stage
 * (or has frames waiting already): 1 and `f` moved (left empty), or 0. */
int ingress_defer(hub_t *h, wire_frames_t *f);

/* Stage waiting frames within their connections' shares of the current
 * stage, in order, while the stage has room. */
void ingress_replay(hub_t *h);

/* Free every waiting frame (at the stop; their senders send them again). */
void ingress_drop_deferred(hub_t *h);

/* ---- commit.c --------------------------------------------------------------- */

/* Pack a journal event into the scratch buffer and append it in `t`; *seq its number. */
int commit_journal_append(hub_t *h, store_txn_t *t, journal_event_t *ev, uint64_t *seq);

/* ---- checkpoints (checkpoint.c) ---------------------------------------------- */

/* Load the signing key (if security.key_file is set) and the last checkpoint's size. */
int checkpoint_setup(hub_t *h, char *err, size_t errcap);
void checkpoint_teardown(hub_t *h);
/* In transaction t: sign and keep a checkpoint of the tree as t grew it, if
 * audit.checkpoint_every records were added since the last (or `by_time`). */
int checkpoint_maybe(hub_t *h, store_txn_t *t, int64_t now_ms, int by_time);
/* The transaction that may hold one ended (committed or not). */
void checkpoint_committed(hub_t *h, int committed);
/* Once audit.checkpoint_interval passed with records not covered: one now. */
void checkpoint_housekeeping(hub_t *h);
/* The verifier key of the checkpoints (tlog "vkey" text), or NHUB_ENOTFOUND. */
int checkpoint_vkey(const hub_t *h, char *out, size_t cap);
/* Sign a checkpoint of every record committed, now, in a transaction of its
 * own (nothing if the last one covers them). 0 or the transaction's error. */
int checkpoint_now(hub_t *h);
/* Sign a checkpoint of the tree as it was at `size` (a past size: the tree
 * at it never changes), if there is none of that size, in a transaction of
 * its own that journals it; nothing in a full store. For the end of an
 * archive file, so that the file's every record is under a checkpoint it
 * holds. 0 or an error. */
int checkpoint_at(hub_t *h, uint64_t size);

/* ---- receipts.c ------------------------------------------------------------- */

/* Why RECEIPT_GETs were refused (hub_counters_t.receipts_refused, by index):
 * "unknown", "not_covered", "too_large", "invalid", "store_error". */
#define RECEIPTS_REFUSALS 5
extern const char *const receipts_refusal_names[RECEIPTS_REFUSALS];

/* Answer a RECEIPT_GET of session `s` (one with a region): RECEIPT, or a NACK. */
void receipts_serve(hub_t *h, const session_t *s, const void *rid, size_t rid_len,
                    const void *body, size_t len);

/* ---- payload privacy at rest (atrest.c) --------------------------------------- */

/* Load security.payload_key_file's key, if set. 0, or an error in `err`
 * naming the file and the problem. */
int atrest_setup(hub_t *h, char *err, size_t errcap);
void atrest_teardown(hub_t *h);
/* With a payload key: point ev->envelope at its sealed form (msg_id bound),
 * valid until the next call; *saved keeps the original to put back after
 * packing. Without one, or with no envelope, nothing changes. 0 or an error. */
int atrest_seal(hub_t *h, journal_event_t *ev, ProtobufCBinaryData *saved);
/* The envelope of stored message `ev` (record `seq`, for `region`) as it was
 * received, into *out: the stored bytes, or their opened form (valid until
 * the next call). A sealed envelope the key cannot open (another key, no
 * key, damage) is counted and logged without payload data, and
 * NHUB_ECRYPTO returned: the message stays queued. */
int atrest_open(hub_t *h, const journal_event_t *ev, uint64_t seq, const char *region,
                ProtobufCBinaryData *out);

/* Commit and answer the ready stage; the current stage becomes ready. */
void commit_flush_stage(hub_t *h);

/* Commit and answer everything staged (before a reload, at the stop). */
void commit_flush_all(hub_t *h);

/* ---- retention.c: archives and retention -------------------------------------- */

/* One step of archiving (audit.archive_dir) or pruning (audit.retention),
 * each turn of the loop: a bounded number of records, never a wait on disk. */
void retention_turn(hub_t *h);
/* A file is being made: the loop should not wait for frames before its next step. */
int retention_busy(const hub_t *h);
/* At the stop: wait for a sync under way, remove an unfinished file. */
void retention_stop(hub_t *h);

/* ---- deliver.c -------------------------------------------------------------- */

/* If `s` is its region's delivery session, the region has none any more. */
void deliver_detach(hub_t *h, session_t *s);

/* Forget session `s` (logged with `why`); its region's deliveries wait for another. */
void deliver_session_close(hub_t *h, session_t *s, const char *why);

/* Send what each region's credit allows: redeliveries due, then new messages. */
void deliver_all(hub_t *h);

/* When region r's rate limit next lets a delivery go (monotonic ms), 0 if it does now. */
int64_t deliver_rate_next(const hub_t *h, const struct hub_region *r);

/* ---- zap.c ------------------------------------------------------------------ */

/* Answer the ZAP requests waiting (curve mode). */
void zap_serve(hub_t *h);

/* Read the router's monitor events: handshakes that failed before ZAP (no
 * CURVE, wrong hub key, garbage) become security events. */
void zap_serve_monitor(hub_t *h);

#endif
