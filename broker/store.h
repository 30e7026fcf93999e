/*
 * store.h: the hub's durable state in one LMDB environment.
 *
 * Databases (all keys big-endian so LMDB's byte order is numeric order):
 *   meta       "hub_id" (16 random bytes), "format" (u32), "next_seq",
 *              "last_hash" (32)
 *   journal    seq(8) -> chain hash(32) | JournalEvent   (see nhub_journal.proto)
 *   queue      region(6) dseq(8) -> seq(8) msg_id(16)    messages waiting for a region
 *   qtail      region(6) -> next dseq(8)                 1, 2, 3, ... per region, never reused
 *   dedup      msg_id(16) -> seq(8) time_ms(8)           the duplicate window
 *   dedup_age  time_ms(8) seq(8) -> msg_id(16)           to expire the window in order:
 *              or -> stream_id(16) stream_seq(8)         a rejection (format 2)
 *   streams    stream_id(16) -> last stream_seq(8) region(6)
 *   rejects    stream_id(16) stream_seq(8) -> NACK code(4)  SENDs refused for good, kept
 *              as long as the duplicate window
 *   held       region(6) dseq(8) -> since time_ms(8) reason(4)  queued messages set aside
 *              for their region (still in `queue`: a held message is never dropped)
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

/* Queue message `seq` (msg_id) for `region`; sets *dseq to its position. */
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
} store_queued_t;

/*
 * Read up to `max` queue entries of `region` with dseq >= from_dseq, in
 * order, into out[]; *n = how many. Returns 0 or NHUB_ESTORE.
 */
int store_queue_scan(store_reader_t *r, const char *region, uint64_t from_dseq, store_queued_t *out,
                     size_t max, size_t *n);

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

/* The last journal seq written (0 if empty). */
int store_journal_last(store_reader_t *r, uint64_t *seq);

/*
 * Walk the whole journal from seq 1, verifying that seqs have no gaps, that
 * each record's chain hash is right, and that the last record matches the
 * chain state kept in meta (so records cut off the end are noticed too).
 * *n = records checked. Returns 0, or NHUB_EMALFORMED with *bad_seq = the
 * first seq that is missing or wrong.
 */
int store_journal_verify(store_reader_t *r, uint64_t *n, uint64_t *bad_seq);

#endif
