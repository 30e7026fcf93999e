/*
 * outbox.h: the adapter's own LMDB store (private to libnhub).
 *
 * One LMDB environment in the adapter's data directory holds three named
 * databases:
 *
 *   meta       "format" -> 1 (8 bytes BE); "stream_id" -> 16 random bytes made
 *              when the store is created; "next_seq" -> the stream_seq the next
 *              appended message gets (8 bytes BE, starts at 1).
 *   outbox     stream_seq (8 bytes BE, so keys sort in stream order) -> the
 *              encoded Envelope, exactly the bytes that go into Send.envelope.
 *   confirmed  msg_id (16 bytes) -> dseq (8 bytes BE) + time ms (8 bytes BE):
 *              messages the application has confirmed, so a redelivery is
 *              answered and dropped, also after a restart.
 *
 * Invariants: every write is one transaction committed with LMDB's default
 * (full) sync before the function returns; a failed put aborts the whole
 * transaction. Outbox keys are < next_seq. The map starts small and doubles
 * on MDB_MAP_FULL (no transaction active) up to the limit given at open,
 * beyond which writes fail with NHUB_EFULL. Single-threaded use; several
 * processes may share the store (e.g. a receiving adapter and short-lived
 * senders): stream_seq is allocated inside the write transaction.
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

/* The store's 16-byte stream_id (borrowed, valid until outbox_close). */
const uint8_t *outbox_stream_id(const outbox_t *self);

/*
 * Append `len` bytes as the next message of the stream in one committed
 * transaction. Sets *seq_out (may be NULL) to its stream_seq. Returns 0,
 * NHUB_EFULL (the map is at its limit), NHUB_ESTORE.
 */
int outbox_append(outbox_t *self, const void *data, size_t len, uint64_t *seq_out);

/*
 * Visit function for outbox_scan and outbox_remove: `data` is borrowed
 * from LMDB and valid only during the call. Return 0 to go on, 1 to stop, or
 * a negative error to stop and have the caller return it.
 */
typedef int(outbox_visit_fn)(void *arg, uint64_t seq, const void *data, size_t len);

/*
 * Call `fn` for each message with stream_seq >= `from`, in order, inside
 * one read transaction. `fn` must not call other outbox functions. Returns 0
 * (also when fn stopped with 1), fn's negative error, or NHUB_ESTORE.
 */
int outbox_scan(outbox_t *self, uint64_t from, outbox_visit_fn *fn, void *arg);

/*
 * Remove every message with stream_seq <= `last` in one committed
 * transaction, and make sure next_seq > last (the hub treats a number it has
 * accepted as a repeat, so it must never be given out again). *removed (may
 * be NULL) counts them. Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_remove_upto(outbox_t *self, uint64_t last, uint64_t *removed);

/*
 * Remove the messages `seqs[0..n)` in one committed transaction. Missing
 * ones are skipped. `fn` (may be NULL) is called for each message found,
 * with its bytes, just before it is deleted; if the transaction has to be
 * retried (map growth) it is called again for the same messages, so it must
 * only record. *removed (may be NULL) counts the removed. Returns 0,
 * NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_remove(outbox_t *self, const uint64_t *seqs, size_t n, outbox_visit_fn *fn, void *arg,
                  uint64_t *removed);

/* Number of messages in the outbox. Returns 0 or NHUB_ESTORE. */
int outbox_count(outbox_t *self, uint64_t *n);

/* The stream_seq the next outbox_append gives. Returns 0 or NHUB_ESTORE. */
int outbox_next_seq(outbox_t *self, uint64_t *next);

/*
 * Record that the message `id` (delivered as `dseq`) was confirmed at
 * `time_ms`, in one committed transaction. Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_confirmed_put(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], uint64_t dseq,
                         int64_t time_ms);

/* Set *found to 1 if `id` was confirmed, else 0. Returns 0 or NHUB_ESTORE. */
int outbox_confirmed_has(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], int *found);

/* Number of confirmed msg_ids recorded. Returns 0 or NHUB_ESTORE. */
int outbox_confirmed_count(outbox_t *self, uint64_t *n);

/* Current map size in bytes. */
uint64_t outbox_map_size(const outbox_t *self);

#endif
