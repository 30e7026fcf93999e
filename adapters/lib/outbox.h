/*
 * outbox.h: the adapter's own LMDB store (private to libnhub).
 *
 * One LMDB environment in the adapter's data directory holds five named
 * databases:
 *
 *   meta       "format" -> 3 (8 bytes BE); "stream_id" -> the 16 random bytes
 *              naming the current stream; "stream_base" -> 8 bytes BE;
 *              "next_seq" -> the local sequence the next appended message
 *              gets (8 bytes BE, starts at 1); "link" -> the connection
 *              state last recorded (see outbox_link_t), absent until then.
 *   outbox     local seq (8 bytes BE, so keys sort in append order) -> a
 *              record (below): the encoded Envelope, exactly the bytes that
 *              go into Send.envelope, with its signature and key id.
 *   confirmed  msg_id (16 bytes) -> dseq (8 bytes BE) + time ms (8 bytes BE):
 *              messages the application has confirmed, so a redelivery is
 *              answered and dropped, also after a restart.
 *   confirmed_age  time ms (8 bytes BE) + msg_id (16 bytes) -> empty: the
 *              entries whose DELIVERED the hub has read, ordered by the
 *              time it was known to, so old ones can be expired oldest
 *              first. Written in the same transaction as `confirmed`.
 *   unsent     msg_id (16 bytes) -> dseq (8 bytes BE): confirmations whose
 *              DELIVERED the hub is not yet known to have read (confirmed
 *              while disconnected, written but not yet answered, or lost
 *              with a connection). They have no age entry, so they never
 *              expire: the hub may still deliver them again. A store of
 *              format 3 made before `unsent` existed has none: its entries
 *              all age from their confirmation, as they did then.
 *
 * Local sequence and stream numbering: outbox keys are a local sequence that
 * only grows. The wire stream_seq of a message is local seq - stream_base.
 * A new stream (outbox_rotate) gets a new stream_id and a stream_base just
 * below the first message still in the outbox, so what waits is numbered
 * 1, 2, 3, ... again on the new stream, in order, without rewriting it.
 *
 * Invariants: every write is one transaction committed with LMDB's default
 * (full) sync before the function returns (the batch forms put many
 * messages or confirmations in that one transaction, so one fsync covers
 * them all); a failed put aborts the whole transaction. Outbox keys are
 * < next_seq, and stream_base < every key and < next_seq. The map starts
 * small and doubles on MDB_MAP_FULL (no transaction active) up to the limit
 * given at open, beyond which writes fail with NHUB_EFULL. Single-threaded
 * use; several processes may share the store (e.g. a receiving adapter and
 * short-lived senders): the local seq is allocated inside the write
 * transaction, and the stream identity is read from the store
 * (outbox_stream), never cached, because another process may start a new
 * stream.
 *
 * Outbox records (format 3):
 *
 *   0      0x00   marker: never the first byte of a protobuf message (field
 *                 number 0 is invalid), so a record without it is a bare
 *                 Envelope as formats 1 and 2 stored it
 *   1      0x01   record version
 *   2      s      signature length, 0..OUTBOX_SIG_MAX (0 = unsigned)
 *   3      k      key id length, 0..OUTBOX_KEY_ID_MAX
 *   4      s bytes of signature, k bytes of key id (ASCII hex), then the
 *          encoded Envelope to the end of the value
 *
 * A bare Envelope (first byte not 0x00) reads as an unsigned record; so does
 * a record whose header does not fit (the whole value is then passed on as
 * the envelope and the hub refuses it as malformed, rather than the outbox
 * stalling behind it).
 *
 * Upgrades happen when a store is opened, in the opening transaction:
 * format 1 (no stream_base, no confirmed_age) to 2, format 2 (bare
 * envelopes) to 3, which only changes the number: the old records read as
 * unsigned ones and are signed when they are sent. A library that reads an
 * older format then refuses the store (NHUB_EVERSION), and this one refuses
 * a newer format. Every process sharing a data_dir must be upgraded
 * together.
 */
#ifndef NHUB_OUTBOX_H
#define NHUB_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#define OUTBOX_ID_LEN 16
#define OUTBOX_SIG_MAX 255   /* bytes of a signature in a record */
#define OUTBOX_KEY_ID_MAX 64 /* characters of a key id in a record */
#define OUTBOX_RECORD_HEADER 4
#define OUTBOX_LINK_ERROR_MAX 192 /* bytes of outbox_link_t.error, NUL included */
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

/* One outbox message: its envelope and the signature made over it. */
typedef struct outbox_record {
    const uint8_t *envelope; /* the encoded Envelope, exactly as sent */
    size_t envelope_len;
    const uint8_t *sig; /* signature over the envelope; NULL if unsigned */
    size_t sig_len;     /* 0..OUTBOX_SIG_MAX */
    const char *key_id; /* key id of the signing key, not NUL-terminated */
    size_t key_id_len;  /* 0..OUTBOX_KEY_ID_MAX */
} outbox_record_t;

/*
 * Read a stored value as a record (see the layout above). Never fails: a
 * value that is not a well-formed record is an unsigned one whose envelope
 * is the whole value. The pointers borrow from `data`.
 */
void outbox_record_parse(const void *data, size_t len, outbox_record_t *out);

/*
 * Append `rec` as the next message in one committed transaction, written
 * straight into the store's page (no extra copy). Sets *seq_out (may be
 * NULL) to its local seq. Returns 0, NHUB_EINVAL (signature or key id too
 * long), NHUB_EFULL (the map is at its limit), NHUB_ESTORE.
 */
int outbox_append(outbox_t *self, const outbox_record_t *rec, uint64_t *seq_out);

/*
 * Append `recs[0..n)` (n >= 1) in one committed transaction, as outbox_append
 * does one: all or none of them are stored. They take consecutive local
 * seqs in their order; *first_seq (may be NULL) is the first. Returns 0,
 * NHUB_EINVAL (n is 0, or a signature or key id too long; nothing is
 * written then), NHUB_EFULL, NHUB_ESTORE (also when the batch is too large
 * for one LMDB transaction).
 */
int outbox_append_batch(outbox_t *self, const outbox_record_t *recs, size_t n, uint64_t *first_seq);

/*
 * Visit function: `seq` is the local seq, `rec` (parsed with
 * outbox_record_parse) borrows from LMDB and is valid only during the call.
 * What the return value means depends on the function it is given to.
 */
typedef int(outbox_visit_fn)(void *arg, uint64_t seq, const outbox_record_t *rec);

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
 * each message found, with its record, before it is deleted: it returns 0 to
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
    outbox_visit_fn *fn;  /* in: called with the dropped message's record (may be NULL;
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
 * `time_ms`, in `confirmed` and `unsent`, in one committed transaction (a
 * repeat moves the entry back to `unsent`: the hub delivered it again, so
 * it did not have the DELIVERED). Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_confirmed_put(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], uint64_t dseq,
                         int64_t time_ms);

/* One confirmation for outbox_confirmed_put_batch; `id` is borrowed. */
typedef struct outbox_confirmation {
    const uint8_t *id; /* OUTBOX_ID_LEN bytes */
    uint64_t dseq;
} outbox_confirmation_t;

/*
 * Record the confirmations `c[0..n)` at `time_ms` as outbox_confirmed_put
 * does, all in one committed transaction (all or none). n == 0 writes
 * nothing and returns 0. Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_confirmed_put_batch(outbox_t *self, const outbox_confirmation_t *c, size_t n,
                               int64_t time_ms);

/* A confirmation whose DELIVERED is not known to have reached the hub. */
typedef struct outbox_unsent {
    uint8_t id[OUTBOX_ID_LEN];
    uint64_t dseq;
} outbox_unsent_t;

/*
 * Up to `max` entries of `unsent` in msg_id order, after the id `after`
 * (NULL: from the first), into out[0..*n). Returns 0 or NHUB_ESTORE.
 */
int outbox_unsent_next(outbox_t *self, const uint8_t *after, outbox_unsent_t *out, size_t max,
                       size_t *n);

/*
 * The hub has read the DELIVEREDs of u[0..n): each still unsent leaves
 * `unsent` and starts aging at `time_ms`, in one transaction committed
 * without a sync (lost in a crash, the entries stay unsent and are sent
 * again: the safe side). Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_unsent_settle(outbox_t *self, const outbox_unsent_t *u, size_t n, int64_t time_ms);

/* Number of unsent confirmations. Returns 0 or NHUB_ESTORE. */
int outbox_unsent_count(outbox_t *self, uint64_t *n);

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

/*
 * The connection state a running adapter last recorded, so a status tool
 * that opens the store without connecting can show it. The counters add up
 * over every process that used the store.
 */
typedef struct outbox_link {
    int state;                         /* enum nhub_link; 0 (down) if never recorded */
    uint64_t auth_failures;            /* handshakes the hub refused (ZAP) */
    uint64_t handshake_failures;       /* other failed security handshakes */
    int64_t changed_ms;                /* wall clock of the last record, 0 = never */
    char error[OUTBOX_LINK_ERROR_MAX]; /* what went wrong last, "" once up */
} outbox_link_t;

/* Read the recorded state into *out (zeroed if none). Returns 0 or NHUB_ESTORE. */
int outbox_link_get(outbox_t *self, outbox_link_t *out);

/*
 * Record `state` and `error` (may be NULL) at `time_ms`, adding `auth_inc`
 * and `handshake_inc` to the counters, in one committed transaction.
 * Returns 0, NHUB_EFULL, NHUB_ESTORE.
 */
int outbox_link_put(outbox_t *self, int state, uint64_t auth_inc, uint64_t handshake_inc,
                    int64_t time_ms, const char *error);

#endif
