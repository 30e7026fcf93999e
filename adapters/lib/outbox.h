/*
 * outbox.h: the adapter's own LMDB store (private to libnhub).
 *
 * One LMDB environment in the adapter's data directory holds four named
 * databases:
 *
 *   meta       "format" -> 2 (8 bytes BE); "stream_id" -> the 16 random bytes
 *              naming the current stream; "stream_base" -> 8 bytes BE;
 *              "next_seq" -> the local sequence the next appended message
 *              gets (8 bytes BE, starts at 1).
 *   outbox     local seq (8 bytes BE, so keys sort in append order) -> the
 *              encoded Envelope, exactly the bytes that go into Send.envelope.
 *   confirmed  msg_id (16 bytes) -> dseq (8 bytes BE) + time ms (8 bytes BE):
 *              messages the application has confirmed, so a redelivery is
 *              answered and dropped, also after a restart.
 *   confirmed_age  time ms (8 bytes BE) + msg_id (16 bytes) -> empty: the
 *              same entries ordered by time, so old ones can be expired
 *              oldest first. Written in the same transaction as `confirmed`.
 *
 * Local sequence and stream numbering: outbox keys are a local sequence that
 * only grows. The wire stream_seq of a message is local seq - stream_base.
 * A new stream (outbox_rotate) gets a new stream_id and a stream_base just
 * below the first message still in the outbox, so what waits is numbered
 * 1, 2, 3, ... again on the new stream, in order, without rewriting it.
 *
 * Invariants: every write is one transaction committed with LMDB's default
 * (full) sync before the function returns; a failed put aborts the whole
 * transaction. Outbox keys are < next_seq, and stream_base < every key and
 * < next_seq. The map starts small and doubles on MDB_MAP_FULL (no
 * transaction active) up to the limit given at open, beyond which writes
 * fail with NHUB_EFULL. Single-threaded use; several processes may share the
 * store (e.g. a receiving adapter and short-lived senders): the local seq is
 * allocated inside the write transaction, and the stream identity is read
 * from the store (outbox_stream), never cached, because another process may
 * start a new stream.
 *
 * Format 1 stores (no stream_base, no confirmed_age) are upgraded to format
 * 2 when opened; a library that reads only format 1 then refuses the store.
 */
#ifndef NHUB_OUTBOX_H
#define NHUB_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#define OUTBOX_ID_LEN 16
/* Initial map size; grown on demand up to the limit given to outbox_open. */
#define OUTBOX_MAP_START (16u * 1024u * 1024u)

typedef struct outbox outbox_t;

/*
 * Open or create the store in `dir` (created with mode 0700 if missing,
 * parents too). `map_size_max` bounds the store's size in bytes (0 = 4 GiB).
 * Clears stale reader slots (mdb_reader_check). Returns 0 and sets *out, or
 * NHUB_EIO (directory), NHUB_ESTORE (LMDB), NHUB_EVERSION (unknown store
 * format), NHUB_ENOMEM, with a message in `err` (may be NULL).
 *
 * Several processes may have the same store open (LMDB serialises writers
 * across processes), but one process must not open it twice (an LMDB rule:
 * closing either would drop the other's locks).
 */
int outbox_open(const char *dir, uint64_t map_size_max, outbox_t **out, char *err, size_t errcap);

/* Close the store; accepts NULL and a pointer to NULL; sets *self to NULL. */
void outbox_close(outbox_t **self);

/* Detail of the last failure on `self` (never NULL). */
const char *outbox_error(const outbox_t *self);

/*
 * The current stream: its stream_id into `id` and its stream_base into
 * *base (wire stream_seq = local seq - base), read together in one read
 * transaction. Returns 0 or NHUB_ESTORE.
 */
int outbox_stream(outbox_t *self, uint8_t id[OUTBOX_ID_LEN], uint64_t *base);

/*
 * Append `len` bytes as the next message in one committed transaction. Sets
 * *seq_out (may be NULL) to its local seq. Returns 0, NHUB_EFULL (the map is
 * at its limit), NHUB_ESTORE.
 */
int outbox_append(outbox_t *self, const void *data, size_t len, uint64_t *seq_out);

/*
 * Visit function: `seq` is the local seq, `data` is borrowed from LMDB and
 * valid only during the call. What the return value means depends on the
 * function it is given to.
 */
typedef int(outbox_visit_fn)(void *arg, uint64_t seq, const void *data, size_t len);

/*
 * Call `fn` for each message with local seq >= `from`, in order, inside one
 * read transaction; `fn` returns 0 to go on, 1 to stop, or a negative error
 * to stop and have outbox_scan return it. `fn` must not call other outbox
 * functions. Returns 0 (also when fn stopped with 1), fn's negative error,
 * or NHUB_ESTORE.
 */
int outbox_scan(outbox_t *self, uint64_t from, outbox_visit_fn *fn, void *arg);

/*
 * Remove every message with local seq <= `last` in one committed
 * transaction. `fn` (may be NULL) is called for each, in ascending order,
 * just before it is deleted (its return value is ignored); if the
 * transaction has to be retried (map growth) the calls start again from the
 * first, so it must only record. *removed (may be NULL) counts them.
 * Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_remove_upto(outbox_t *self, uint64_t last, outbox_visit_fn *fn, void *arg,
                       uint64_t *removed);

/*
 * Remove the messages with local seqs `seqs[0..n)` in one committed
 * transaction. Missing ones are skipped. `fn` (may be NULL) is called for
 * each message found, with its bytes, before it is deleted: it returns 0 to
 * delete it or non-zero to keep it (it is not the message meant). If the
 * transaction has to be retried (map growth) `fn` is called again for the
 * same messages, so it must only record and decide the same way. *removed
 * (may be NULL) counts the removed. Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_remove(outbox_t *self, const uint64_t *seqs, size_t n, outbox_visit_fn *fn, void *arg,
                  uint64_t *removed);

/* Number of messages in the outbox. Returns 0 or NHUB_ESTORE. */
int outbox_count(outbox_t *self, uint64_t *n);

/* The local seq the next outbox_append gives. Returns 0 or NHUB_ESTORE. */
int outbox_next_seq(outbox_t *self, uint64_t *next);

/* What outbox_rotate is asked to do, and what it did. */
typedef struct outbox_rotation {
    /* in: rotate only if the store's stream_id is still this one (NULL:
     * always). Another process sharing the store may have started a new
     * stream already; then nothing changes and the caller adopts it. */
    const uint8_t *expect_id;
    uint64_t drop;        /* in: local seq of a message to remove first (0 = none) */
    outbox_visit_fn *fn;  /* in: called with the dropped message's bytes (may be NULL;
                             called again if the transaction is retried) */
    void *arg;
    int rotated;          /* out: 1 if a new stream was started */
    int dropped;          /* out: 1 if `drop` was found and removed */
    uint8_t stream_id[OUTBOX_ID_LEN]; /* out: the store's stream afterwards */
    uint64_t base;        /* out: its stream_base */
} outbox_rotation_t;

/*
 * Start a new stream in one committed transaction: remove r->drop if given,
 * then set a new random stream_id and stream_base = (first local seq still
 * in the outbox) - 1, or next_seq - 1 if it is empty, so the messages left
 * are numbered 1, 2, 3, ... on the new stream in their order. Nothing else
 * leaves the outbox. Returns 0, NHUB_EIO (no random bytes), NHUB_EFULL,
 * NHUB_ESTORE.
 */
int outbox_rotate(outbox_t *self, outbox_rotation_t *r);

/*
 * Record that the message `id` (delivered as `dseq`) was confirmed at
 * `time_ms`, in `confirmed` and `confirmed_age`, in one committed
 * transaction (a repeat moves the entry to the new time). Returns 0,
 * NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_confirmed_put(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], uint64_t dseq,
                         int64_t time_ms);

/* Set *found to 1 if `id` was confirmed, else 0. Returns 0 or NHUB_ESTORE. */
int outbox_confirmed_has(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], int *found);

/* Number of confirmed msg_ids recorded. Returns 0 or NHUB_ESTORE. */
int outbox_confirmed_count(outbox_t *self, uint64_t *n);

/*
 * Forget at most `max` confirmations recorded before `before_ms`, oldest
 * first, in one committed transaction; a quick read comes first, so a call
 * with nothing to expire writes nothing. *expired (may be NULL) counts them.
 * Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_confirmed_expire(outbox_t *self, int64_t before_ms, size_t max, uint64_t *expired);

/* Current map size in bytes. */
uint64_t outbox_map_size(const outbox_t *self);

#endif
