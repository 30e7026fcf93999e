/*
 * store.h: the hub's durable state in one LMDB environment.
 *
 * Databases (all keys big-endian so LMDB's byte order is numeric order):
 *   meta       "hub_id" (16 random bytes), "format" (u32), "next_seq",
 *              "last_hash" (32)
 *   journal    seq(8) -> chain hash(32) | JournalEvent   (see nhub_journal.proto)
 *   queue      region(6) dseq(8) -> seq(8) msg_id(16) class(1) source(6) size(4)
 *              messages waiting for a region (a store before format 3 has
 *              seq(8) msg_id(16) alone: those are in the lane of class 0, source 000000)
 *   lanes      region(6) class(1) source(6) dseq(8) -> seq(8) msg_id(16) size(4)
 *              the same messages by lane (priority class and source), for the
 *              delivery scheduler: one entry per queue entry, always
 *   qtail      region(6) -> next dseq(8) queued(8)       1, 2, 3, ... per region, never
 *              reused; and how many of its messages are queued now
 *   dedup      msg_id(16) -> seq(8) time_ms(8)           the duplicate window
 *   dedup_age  time_ms(8) seq(8) -> msg_id(16)           to expire the window in order:
 *              or -> stream_id(16) stream_seq(8)         a rejection (format 2)
 *   streams    stream_id(16) -> last stream_seq(8) region(6)
 *   rejects    stream_id(16) stream_seq(8) -> NACK code(4)  SENDs refused for good, kept
 *              as long as the duplicate window
 *   held       region(6) dseq(8) -> since time_ms(8) reason(4)  queued messages set aside
 *              for their region (still in `queue`: a held message is never dropped)
 *   cases      case_id(16) -> case record (store_case_t, see store_cases.c)
 *   case_time  opened_ms(8) case_id(16) -> ""             cases by age
 *   case_events case_id(16) seq(8) -> ""                  a case's timeline after its
 *              request (request_seq): the journal events of its messages and transitions
 *   deadlines  time_ms(8) case_id(16) -> ""               each open case's next deadline,
 *              in time order (the hub fires the head of it)
 *   tracked    msg_id(16) region(6) -> dseq(8) confirmed_ms(8) flags(1)  deliveries
 *              followed one by one: each copy of a broadcast (a case follows its own)
 *   meta "case_counts"  STORE_CASE_STATES x u64: cases in each state
 *   meta "cstat/<handler>/<item>"  STORE_CSTAT_N x u64: the handler's cases of
 *              that item, for evaluation (store_case_stats)
 *   tree       pos(8) -> hash(32)                       every complete node of the Merkle
 *              tree over the journal (leaf i = record seq i + 1; pos: tlog_stored_index)
 *   checkpoints size(8) -> signed note                   the signed checkpoints of the tree
 *   meta "tree_state"  the tree's compact range (tlog_state_encode), as of the last commit
 *   msgseq     msg_id(16) -> seq(8), duplicates sorted  every ACCEPTED record by its
 *              msg_id, kept as long as the journal (format 4; store_msgseq.c); a msg_id
 *              used again after the duplicate window names each of its records
 *   meta "opstate/<region>"  what operators set for a region through the API
 *              (store_opstate_t): suspension, paused delivery, rate limit
 *   meta "journal_start" (8), "journal_start_prev" (32)  the first record whose
 *              body is still in `journal` and the chain hash of the one before it;
 *              absent: 1 and zeros (nothing pruned). The tree keeps every leaf.
 *   meta "archive_next" (8)  the first record not yet in an archive file
 *
 * Invariants: every change is made inside one write transaction that also
 * appends the journal event describing it, so the journal and the indexes
 * never disagree. Only one thread writes (the hub loop); readers use their
 * own read transactions. A transaction that failed is aborted, never reused.
 * The map grows by doubling up to map_size_max; beyond that, or when the
 * disk is full, writes fail with NHUB_EFULL and nothing is half-applied.
 */
#ifndef NHUB_STORE_H
#define NHUB_STORE_H

#include "tlog.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_HASH_LEN 32
#define STORE_ID_LEN 16

typedef struct store store_t;
typedef struct store_txn store_txn_t;

/*
 * Open (creating if needed) the store in directory `dir` (created mode 0700).
 * `map_size` is the initial map, `map_size_max` the limit of growth.
 * Clears reader slots left by crashed processes. Returns 0 and *out, or an
 * error with a message in `err`.
 */
int store_open(const char *dir, uint64_t map_size, uint64_t map_size_max, store_t **out, char *err,
               size_t errcap);

/* store_open, with the hash of the journal's Merkle tree when the store has
 * none yet (a new store, or one from before the tree); an existing tree
 * keeps the hash it was made with (store_tree_alg says which). */
int store_open_tree(const char *dir, uint64_t map_size, uint64_t map_size_max, tlog_alg_t tree_alg,
                    store_t **out, char *err, size_t errcap);

/* The hash of the store's Merkle tree. */
tlog_alg_t store_tree_alg(const store_t *self);

/*
 * Open the store in `dir` for reading only, beside the nhubd that writes it
 * (tools, tests): never creates or changes anything, never takes the
 * writer's lock, and follows the map as the hub grows it. Only the
 * reading functions work on it (store_begin fails). Returns 0 and *out, or
 * NHUB_ESTORE with a message in `err`.
 */
int store_open_reader(const char *dir, store_t **out, char *err, size_t errcap);

/* SHA-256, fetched from OpenSSL once for the process: EVP_sha256() makes
 * OpenSSL 3 look the algorithm up again at every digest it starts. */
const struct evp_md_st *store_sha256(void);

/* Close; accepts NULL; sets *self to NULL. No transaction may be open. */
void store_close(store_t **self);

/* The 16 random bytes naming this store, made when it was created. */
const uint8_t *store_hub_id(const store_t *self);

/* The current map size in bytes. */
uint64_t store_map_size(const store_t *self);

/*
 * How close the store is to full, cheaply: *used = bytes of the map up to
 * the highest page ever used (pages freed below it are reused by later
 * writes: see store_free_bytes), *limit = map_size_max, *disk_free and
 * *disk_size = bytes free and in all on the store's filesystem (UINT64_MAX
 * if unknown). Returns 0 or NHUB_ESTORE.
 */
int store_usage(store_t *self, uint64_t *used, uint64_t *limit, uint64_t *disk_free,
                uint64_t *disk_size);

/* Bytes of freed pages inside the map that later writes will reuse. Walks
 * LMDB's freelist: call it only when the cheap figure says "nearly full". */
uint64_t store_free_bytes(store_t *self);

/* Change the growth limit (configuration reload). */
void store_set_map_max(store_t *self, uint64_t map_size_max);

/*
 * Begin the write transaction. Returns 0, NHUB_EINVAL if one is already
 * open (only one may be), NHUB_ENOMEM or NHUB_ESTORE.
 * The transaction buffers the journal chain state; store_commit makes it
 * durable (full sync) before returning 0.
 */
int store_begin(store_t *self, store_txn_t **out);

/*
 * Commit and free the transaction; *txn is NULL afterwards on every path.
 * Returns 0 (durable), NHUB_EFULL (map or disk full: nothing applied) or
 * NHUB_ESTORE.
 */
int store_commit(store_txn_t **txn);

/* Abort and free; accepts NULL. */
void store_abort(store_txn_t **txn);

/*
 * Grow the map after NHUB_EFULL from a put inside a transaction (which the
 * caller has aborted): doubles the map up to the limit. Returns 0 if it grew,
 * NHUB_EFULL if it is already at the limit. No transaction may be open.
 */
int store_grow(store_t *self);

/*
 * Grow the map ahead of a transaction until `bytes` lie between the
 * highest page used and its end (pages freed below it are not counted), or
 * the limit is reached. Returns 0 if there is that room, NHUB_EFULL if the
 * limit leaves less (a transaction may still fit in freed pages) or
 * NHUB_ESTORE. No transaction may be open.
 */
int store_reserve(store_t *self, uint64_t bytes);

/*
 * Append an encoded JournalEvent. Sets *seq to its sequence number.
 * Returns 0, NHUB_EFULL or NHUB_ESTORE.
 */
int store_journal_append(store_txn_t *txn, const void *event, size_t len, uint64_t *seq);

/*
 * A lane of a region's queue: its messages of one priority class (enum
 * catalog_priority) from one source region, in dseq order. The delivery
 * scheduler shares the region's deliveries between its lanes.
 */
typedef struct store_lane {
    uint8_t cls;
    char source[7]; /* six digits and a NUL */
} store_lane_t;

/*
 * Queue message `seq` (msg_id, its envelope `size` bytes) for `region` in
 * `lane`; sets *dseq to its position (the region's next, whatever the lane).
 */
int store_queue_put_lane(store_txn_t *txn, const char *region, const store_lane_t *lane,
                         uint64_t seq, const uint8_t msg_id[16], uint32_t size, uint64_t *dseq);

/* store_queue_put_lane in lane {0, "000000"} with size 0 (tests, tools). */
int store_queue_put(store_txn_t *txn, const char *region, uint64_t seq, const uint8_t msg_id[16],
                    uint64_t *dseq);

/*
 * Remove (region, dseq) from the queue if present and its msg_id matches.
 * Sets *seq to the message's journal seq. Returns 0, NHUB_ENOTFOUND (absent:
 * already removed), NHUB_EINVAL (another message is at that position; nothing
 * removed), or a store error.
 */
int store_queue_remove(store_txn_t *txn, const char *region, uint64_t dseq,
                       const uint8_t msg_id[16], uint64_t *seq);

/* Why a queued message waits instead of being delivered (store_held_put). */
enum {
    STORE_HELD_PAYLOAD_TYPE = 1, /* the region's session does not accept its payload type */
    STORE_HELD_TOO_LARGE = 2,    /* bigger than the region's session announced it takes */
};

/*
 * Mark queued message (region, dseq) as set aside for `reason` at time_ms;
 * it stays in the queue. Returns 0 if it was not held for that reason
 * before (the caller journals it), NHUB_EEXIST if it already was (nothing
 * changed), or a store error. A new reason keeps the first time.
 */
int store_held_put(store_txn_t *txn, const char *region, uint64_t dseq, uint32_t reason,
                   int64_t time_ms);

/* Forget the hold of (region, dseq) (it was delivered and confirmed).
 * Returns 0, NHUB_ENOTFOUND (it was not held) or a store error. */
int store_held_remove(store_txn_t *txn, const char *region, uint64_t dseq);

/* Look up msg_id in the duplicate window: 0 and *seq, or NHUB_ENOTFOUND. */
int store_dedup_get(store_txn_t *txn, const uint8_t msg_id[16], uint64_t *seq);

/* Index the ACCEPTED record `seq` of msg_id for good (msgseq; receipts), beside
 * any other record of the same msg_id. 0 or a store error. */
int store_msgseq_put(store_txn_t *txn, const uint8_t msg_id[16], uint64_t seq);

/* Remember msg_id -> seq at time_ms. */
int store_dedup_put(store_txn_t *txn, const uint8_t msg_id[16], uint64_t seq, int64_t time_ms);

/* Forget at most `max` entries of the window (msg_ids and rejections)
 * remembered before `before_ms`, oldest first; *n = how many. */
int store_window_expire(store_txn_t *txn, int64_t before_ms, size_t max, size_t *n);

/* The last accepted stream_seq of a stream (0 if the stream is new) and the
 * region that owns it (empty string if new; `region` has room for 7 bytes,
 * may be NULL). */
int store_stream_get(store_txn_t *txn, const uint8_t stream_id[16], uint64_t *last, char *region);

/* Remember that (stream, stream_seq) was refused for good with `code`, at
 * time_ms by the journal event `seq`; it expires with the window. */
int store_reject_put(store_txn_t *txn, const uint8_t stream_id[16], uint64_t stream_seq,
                     uint32_t code, uint64_t seq, int64_t time_ms);

/* The code (stream, stream_seq) was refused with: 0 and *code, or NHUB_ENOTFOUND. */
int store_reject_get(store_txn_t *txn, const uint8_t stream_id[16], uint64_t stream_seq,
                     uint32_t *code);

/* Record `last` as the stream's last accepted stream_seq, sent by `region`. */
int store_stream_put(store_txn_t *txn, const uint8_t stream_id[16], uint64_t last,
                     const char *region);

/* ---- reading (any thread, own read transaction) ---------------------------- */

/* Whether operators suspended `region` (six digits), as last recorded; a
 * region never recorded reads as not suspended. */
int store_suspended_get(store_txn_t *txn, const char *region, int *suspended);
int store_suspended_put(store_txn_t *txn, const char *region, int suspended);

typedef struct store_reader store_reader_t;

/* Open a read snapshot. Returns 0 or NHUB_ESTORE. Close with store_reader_close. */
int store_reader_open(store_t *self, store_reader_t **out);
void store_reader_close(store_reader_t **r);

/* One queued message as the reader sees it. */
typedef struct store_queued {
    uint64_t dseq;
    uint64_t seq;
    uint8_t msg_id[16];
    uint32_t size; /* its envelope's bytes as queued (0 before format 3) */
} store_queued_t;

/*
 * Read up to `max` queue entries of `region` with dseq >= from_dseq, in
 * order, into out[]; *n = how many. Returns 0 or NHUB_ESTORE.
 */
int store_queue_scan(store_reader_t *r, const char *region, uint64_t from_dseq, store_queued_t *out,
                     size_t max, size_t *n);

/*
 * The lanes of `region` that hold queued messages, in key order (class,
 * then source), up to `max` into out[]; *n = how many. One seek per lane,
 * however long the lanes are. Returns 0 or NHUB_ESTORE.
 */
int store_lanes_list(store_reader_t *r, const char *region, store_lane_t *out, size_t max,
                     size_t *n);

/* As store_queue_scan, within one lane of the region. */
int store_lane_scan(store_reader_t *r, const char *region, const store_lane_t *lane,
                    uint64_t from_dseq, store_queued_t *out, size_t max, size_t *n);

/*
 * The transparency log (store_tree.c, proto/tlog.h). Every journal append
 * adds its record's JournalEvent bytes as the next leaf, in the same
 * transaction; leaf i is record seq i + 1.
 *
 * store_tree_info: the tree of the reader's snapshot: its size, its root
 * (if `root` is not NULL) and its hash (if `alg` is not NULL). Returns 0 or
 * NHUB_ENOTFOUND (a store without a tree).
 * store_tree_root_at: the root of the tree of the first `n` leaves (1 <= n
 * <= size). store_tree_node: the stored hash of node (level, index).
 * The proofs are tlog's over the stored nodes (O(log^2 n) reads).
 */
int store_tree_info(store_reader_t *r, uint64_t *size, uint8_t root[32], tlog_alg_t *alg);
int store_tree_root_at(store_reader_t *r, uint64_t n, uint8_t out[32]);
int store_tree_node(store_reader_t *r, uint64_t level, uint64_t index, uint8_t out[32]);
int store_tree_prove_inclusion(store_reader_t *r, uint64_t index, uint64_t size,
                               tlog_hash_t *proof, size_t cap, size_t *len);
int store_tree_prove_consistency(store_reader_t *r, uint64_t m, uint64_t n, tlog_hash_t *proof,
                                 size_t cap, size_t *len);

/*
 * For measurement only (nhub-bench's baseline of the journal's chain
 * alone): stop keeping the tree. Its nodes and state are deleted now and
 * appends leave it alone; store_txn_tree answers NHUB_ENOTFOUND. The next
 * store_open builds the tree again over the whole journal, as for a store
 * from before the tree. 0, NHUB_EINVAL (a reader, or a transaction open),
 * NHUB_ESTORE.
 */
int store_drop_tree(store_t *self);

/* The tree as the open transaction has grown it: size and root. */
int store_txn_tree(store_txn_t *t, uint64_t *size, uint8_t root[32]);

/* Keep the signed note of the checkpoint of tree size `size`. */
int store_checkpoint_put(store_txn_t *t, uint64_t size, const char *note, size_t len);

/* The checkpoint of size `size`, or the latest if size is 0: its note (valid
 * while the reader is open) and its size. 0 or NHUB_ENOTFOUND. */
int store_checkpoint_get(store_reader_t *r, uint64_t size, const char **note, size_t *len,
                         uint64_t *got_size);

/* The first checkpoint of a size above `after`, in size order: its note
 * (valid while the reader is open) and its size. 0 or NHUB_ENOTFOUND
 * (none left), NHUB_ESTORE. */
int store_checkpoint_next(store_reader_t *r, uint64_t after, const char **note, size_t *len,
                          uint64_t *size);

/* One held message as the reader sees it. */
typedef struct store_held {
    uint64_t dseq;
    int64_t since_ms;
    uint32_t reason; /* STORE_HELD_* */
} store_held_t;

/* Read up to `max` held entries of `region` with dseq >= from_dseq, in
 * order, into out[]; *n = how many. Returns 0 or NHUB_ESTORE. */
int store_held_scan(store_reader_t *r, const char *region, uint64_t from_dseq, store_held_t *out,
                    size_t max, size_t *n);

/* Count of queued messages for `region` (walks the queue; for stats/tests). */
int store_queue_count(store_reader_t *r, const char *region, uint64_t *n);

/* The same count, O(1): kept in qtail by every put and remove. */
int store_queue_depth(store_reader_t *r, const char *region, uint64_t *n);

/* What the duplicate window holds: remembered msg_ids, rejections, their
 * age entries (messages + rejections when consistent), and the pages of the
 * three databases. O(1). */
typedef struct store_window_stat {
    uint64_t messages, rejections, aged, pages;
} store_window_stat_t;
int store_window_stat(store_reader_t *r, store_window_stat_t *out);

/*
 * The journal record `seq`: *event points at the encoded JournalEvent (valid
 * until the reader is closed), *hash at its 32-byte chain hash (may be NULL).
 * Returns 0, NHUB_ENOTFOUND or NHUB_EMALFORMED.
 */
int store_journal_get(store_reader_t *r, uint64_t seq, const void **event, size_t *len,
                      const uint8_t **hash);

/*
 * The journal seq of the latest ACCEPTED record of msg_id still in the journal
 * (msgseq), whatever the duplicate window remembers. Returns 0 and *seq,
 * NHUB_ENOTFOUND (no such message, its records are no longer in the journal,
 * or a reader of a store before format 4), NHUB_EMALFORMED or NHUB_ESTORE.
 */
int store_msg_seq(store_reader_t *r, const uint8_t msg_id[16], uint64_t *seq);

/*
 * Call fn(arg, seq) for each ACCEPTED record of msg_id still in the journal,
 * newest first, until fn returns non-zero (returned as it is). Returns 0 when
 * fn went through them all, NHUB_ENOTFOUND when there was none (as
 * store_msg_seq), NHUB_EMALFORMED or NHUB_ESTORE. fn should return > 0 to stop.
 */
int store_msg_seq_each(store_reader_t *r, const uint8_t msg_id[16],
                       int (*fn)(void *arg, uint64_t seq), void *arg);

/* The last journal seq written (0 if empty). */
int store_journal_last(store_reader_t *r, uint64_t *seq);

/*
 * Walk the live journal from store_journal_start's record (1 if nothing was
 * pruned) with the chain hash before it, verifying that seqs have no gaps, that
 * each record's chain hash is right, and that the last record matches the
 * chain state kept in meta (so records cut off the end are noticed too).
 * *n = records checked. Returns 0, or NHUB_EMALFORMED with *bad_seq = the
 * first seq that is missing or wrong.
 */
int store_journal_verify(store_reader_t *r, uint64_t *n, uint64_t *bad_seq);

/*
 * Call fn(arg, seq, hash, event, len) for every journal record from seq
 * `from` on, in key order, as stored: seqs are the records' keys (a gap is
 * the caller's to notice), `hash` is the stored 32-byte chain hash and
 * `event` the JournalEvent bytes (both valid until the reader is closed).
 * Stops at the first non-zero answer of fn and returns it; otherwise 0
 * after the last record, NHUB_EMALFORMED if a key is not 8 bytes or a
 * value is shorter than its chain hash (*bad_seq = the seq after the
 * last good one), or NHUB_ESTORE.
 */
typedef int (*store_journal_fn)(void *arg, uint64_t seq, const uint8_t hash[STORE_HASH_LEN],
                                const void *event, size_t len);
int store_journal_walk(store_reader_t *r, uint64_t from, store_journal_fn fn, void *arg,
                       uint64_t *bad_seq);

/* ---- cases (store_cases.c) --------------------------------------------------- */

/* A case's state; the journal's case_state. Closed states are final. */
enum store_case_state {
    STORE_CASE_OPEN = 1,      /* accepted and queued for its handler */
    STORE_CASE_DELIVERED = 2, /* the handler confirmed it (DELIVERED) */
    STORE_CASE_HANDLING = 3,  /* a feedback stage came: received, handling */
    STORE_CASE_REMINDED = 4,  /* the reminder point passed (催办) */
    STORE_CASE_OVERDUE = 5,   /* the time limit passed (督办); answers still taken */
    STORE_CASE_ANSWERED = 6,  /* closed: answered (also late, within the grace) */
    STORE_CASE_EXPIRED = 7,   /* closed: the hub answered "no answer within the time limit" */
    STORE_CASE_REFUSED = 8,   /* closed: the handler refused the application */
};
#define STORE_CASE_STATES 9 /* index 0 unused */

/* What a case went through, whatever its state now. */
enum {
    STORE_CASE_F_DELIVERED = 1,
    STORE_CASE_F_HANDLING = 2,
    STORE_CASE_F_REMINDED = 4,
    STORE_CASE_F_OVERDUE = 8,
};

typedef struct store_case {
    uint8_t id[16];       /* the msg_id of the request or push */
    uint8_t state;        /* STORE_CASE_* */
    uint8_t flags;        /* STORE_CASE_F_* */
    uint8_t kind;         /* wire Kind of the opening message: request 1 or push 3 */
    uint8_t stage;        /* the last feedback stage (nhub.common.v1.Stage), 0 if none */
    char requester[7];    /* the region that sent it */
    char handler[7];      /* the region that handles it */
    char item[65];        /* its service item */
    int64_t opened_ms;    /* hub wall clock at acceptance */
    int64_t remind_ms;    /* reminder point (催办) */
    int64_t due_ms;       /* time limit (时限) */
    int64_t expire_ms;    /* due_ms + grace */
    int64_t next_ms;      /* the deadline pending in `deadlines`, 0 if none (closed) */
    int64_t closed_ms;    /* when it was answered, refused or expired, 0 while open */
    int64_t valid_until_ms; /* until when its answer holds (结果效力), 0 if no limit */
    uint64_t request_seq; /* the journal event of the opening message */
    uint64_t answer_seq;  /* the journal event of the answer that closed it, 0 if none */
} store_case_t;

static inline int store_case_closed(int state)
{
    return state >= STORE_CASE_ANSWERED;
}

/* The lower-case name of a state ("open", "overdue", ...), "?" if none. */
const char *store_case_state_name(int state);

/* The state named `name`, or 0. */
int store_case_state_parse(const char *name);

/* Case `id` into *out: 0, NHUB_ENOTFOUND or NHUB_EMALFORMED / NHUB_ESTORE. */
int store_case_get(store_txn_t *txn, const uint8_t id[16], store_case_t *out);

/*
 * Write case `c`. `old` is what store_case_get gave before the change, or
 * NULL for a new case. Keeps the indexes with it: the age index (new
 * cases), the deadline index (old->next_ms removed, c->next_ms added) and
 * the counts by state. Returns 0 or a store error.
 */
int store_case_put(store_txn_t *txn, const store_case_t *old, const store_case_t *c);

/* Add journal event `seq` to case `id`'s timeline. */
int store_case_event(store_txn_t *txn, const uint8_t id[16], uint64_t seq);

/* Up to `max` deadlines at or before now_ms, earliest first: case ids into
 * ids[] (16 bytes each), their times into times[]; *n = how many. */
int store_deadlines_due(store_txn_t *txn, int64_t now_ms, uint8_t (*ids)[16], int64_t *times,
                        size_t max, size_t *n);

/* Remove one deadline entry (one its case no longer points at). */
int store_deadline_remove(store_txn_t *txn, int64_t time_ms, const uint8_t id[16]);

/* The earliest pending deadline, or INT64_MAX if none. */
int store_deadline_first(store_txn_t *txn, int64_t *time_ms);

/* Follow the delivery of message msg_id to `region` at dseq; `flags` are the caller's. */
int store_tracked_put(store_txn_t *txn, const uint8_t msg_id[16], const char *region,
                      uint64_t dseq, uint8_t flags);

/* `region` confirmed msg_id at now_ms: 0 and *flags if it is followed and
 * this is the first confirmation, NHUB_EEXIST if it was confirmed before,
 * NHUB_ENOTFOUND if it is not followed. */
int store_tracked_confirm(store_txn_t *txn, const uint8_t msg_id[16], const char *region,
                          int64_t now_ms, uint8_t *flags);

/* Reading cases (any thread, while the hub writes). */

int store_case_read(store_reader_t *r, const uint8_t id[16], store_case_t *out);

/* Which cases store_case_list returns; zero fields match everything. */
typedef struct store_case_filter {
    const char *region;  /* requester or handler, six digits */
    const char *item;    /* exact item code */
    int state;           /* STORE_CASE_*, 0 = any */
    int open_only;       /* only cases not closed */
    int64_t opened_after_ms;  /* opened at or after (0 = no bound) */
    int64_t opened_before_ms; /* opened before (0 = no bound) */
    int64_t past_due_at_ms;   /* only cases open and past their time limit at this time */
} store_case_filter_t;

/*
 * Up to `max` cases matching `f`, newest first (by opening time, then id),
 * into out[]; *n = how many. To read on, pass the last one returned as
 * `after` (NULL to start). Walks the age index from the newest opening time
 * the filter allows. Returns 0 or a store error.
 */
int store_case_list(store_reader_t *r, const store_case_filter_t *f, const store_case_t *after,
                    store_case_t *out, size_t max, size_t *n);

/*
 * As store_case_list, looking at no more than `scan_max` cases (the hub
 * answers from its loop and must not walk millions for one page). If it
 * stopped at that bound, *stopped = 1 and *last is the last case looked
 * at, to pass as `after` to read on; else *stopped = 0.
 */
int store_case_scan(store_reader_t *r, const store_case_filter_t *f, const store_case_t *after,
                    store_case_t *out, size_t max, size_t *n, size_t scan_max, int *stopped,
                    store_case_t *last);

/* Up to `max` journal seqs of case `id`'s timeline, in order, from `from_seq`:
 * its request's, then those of case_events. */
int store_case_timeline(store_reader_t *r, const uint8_t id[16], uint64_t from_seq,
                        uint64_t *seqs, size_t max, size_t *n);

/* Cases in each state (counts[STORE_CASE_*]; counts[0] = all). */
int store_case_counts(store_reader_t *r, uint64_t counts[STORE_CASE_STATES]);

/*
 * Evaluation figures of one handler region and item (评估评价), kept in the
 * transaction of every case change, so they always agree with the cases:
 * each is a function of a case record summed over the handler's cases.
 */
enum store_cstat {
    STORE_CSTAT_OPENED,       /* cases ever opened */
    STORE_CSTAT_OPEN,         /* not closed now */
    STORE_CSTAT_OVERDUE_OPEN, /* not closed and past their time limit now */
    STORE_CSTAT_EVER_OVERDUE, /* went past their time limit, open or closed (expired ones too) */
    STORE_CSTAT_ANSWERED,     /* closed by an answer */
    STORE_CSTAT_IN_TIME,      /* ... within the time limit */
    STORE_CSTAT_EXPIRED,      /* closed by the hub: no answer */
    STORE_CSTAT_REFUSED,      /* closed by a refusal */
    STORE_CSTAT_CLOSED,       /* closed, any way */
    STORE_CSTAT_HANDLING_MS,  /* sum over answered and refused cases of closed_ms - opened_ms */
    STORE_CSTAT_N
};
#define STORE_CSTAT_TXN_MAX 16 /* distinct (handler, item) pairs buffered per transaction */

typedef struct store_case_stat {
    char handler[7];
    char item[65];
    uint64_t v[STORE_CSTAT_N];
} store_case_stat_t;

/* Up to `max` figures, by handler then item, into out[]; *n = how many.
 * Returns 0 or a store error. */
int store_case_stats(store_reader_t *r, store_case_stat_t *out, size_t max, size_t *n);

/* What operators set for a region at run time (HTTP API); persistent. */
#define STORE_OP_TEXT_MAX 127
typedef struct store_opstate {
    int suspended;                      /* messages from and to it refused */
    int paused;                         /* delivery to it paused (messages still accepted) */
    uint32_t rate;                      /* deliveries per second to it, 0 = no limit */
    char reason[STORE_OP_TEXT_MAX + 1]; /* the suspension's reason */
    char by[STORE_OP_TEXT_MAX + 1];     /* who set the suspension */
} store_opstate_t;

/* The operator state of `region` (all zero if never set). 0 or a store error. */
int store_opstate_get(store_txn_t *txn, const char *region, store_opstate_t *out);

/* Record it. 0 or a store error. */
int store_opstate_put(store_txn_t *txn, const char *region, const store_opstate_t *st);

/* One followed delivery as the reader sees it. */
typedef struct store_tracked {
    char region[7];
    uint64_t dseq;
    int64_t confirmed_ms; /* 0 while unconfirmed */
    uint8_t flags;
} store_tracked_t;

/* Up to `max` followed deliveries of msg_id, by region; *n = how many. */
int store_tracked_list(store_reader_t *r, const uint8_t msg_id[16], store_tracked_t *out,
                       size_t max, size_t *n);

/* ---- archives and retention (store_retention.c) ------------------------------ */

/* The first record whose body is in the journal (1 if nothing was pruned)
 * and the chain hash of the record before it (zeros for 1). */
int store_journal_start(store_reader_t *r, uint64_t *start, uint8_t prev[STORE_HASH_LEN]);

/* The time_ms of an encoded JournalEvent (field 2), without decoding the
 * rest: 0 and *ms (0 if absent), or NHUB_EMALFORMED. */
int store_event_time(const void *event, size_t len, int64_t *ms);

/* The id of the store the reader reads (store_hub_id). */
const uint8_t *store_reader_hub_id(const store_reader_t *r);

/* The chain hash of record seq - 1, from that record or, if it was pruned
 * and seq is the first live record, from what pruning kept (zeros for seq
 * 1). 0 or NHUB_ENOTFOUND (neither is there). */
int store_chain_before(store_reader_t *r, uint64_t seq, uint8_t prev[STORE_HASH_LEN]);

/* The first record not yet archived (meta "archive_next"; 1 if none was). */
int store_archive_next(store_reader_t *r, uint64_t *next);

/* Record that every record below `next` is in an archive file. */
int store_archive_mark(store_txn_t *t, uint64_t next);

/*
 * Remove the bodies of records journal_start .. `last` from the journal:
 * never a record at or after "archive_next" (not archived yet), nor one a
 * region's queue still holds (its envelope is delivered from it), nor the
 * last record; `last` is lowered to respect that. The tree's nodes stay,
 * so proofs for the records left still work. *first and *n (may be NULL)
 * say what was removed (n = 0: nothing). Returns 0 or a store error.
 */
int store_journal_prune(store_txn_t *t, uint64_t last, uint64_t *first, uint64_t *n);

/*
 * The tree's compact range at size `n` (0 <= n <= the tree's size), built
 * from the stored nodes, encoded as tlog_state_encode does into buf[cap]
 * (TLOG_STATE_MAX is enough); *len its length. 0, NHUB_EINVAL,
 * NHUB_ENOTFOUND (no tree) or a store error.
 */
int store_tree_state_at(store_reader_t *r, uint64_t n, uint8_t *buf, size_t cap, size_t *len);

#endif
