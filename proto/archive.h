/*
 * archive.h: archive files of the journal: a closed range [first_seq,
 * last_seq] of records, self-contained, so that it can be verified without
 * the records before it and stored away from the hub (retention: the hub
 * then prunes the records' bodies from its live store).
 *
 * The file, version 1 (integers big-endian):
 *
 *   header
 *     magic        8   "NHUBARC1"
 *     version      4   1
 *     hub_id      16   the store's id (store_hub_id)
 *     tree_alg     1   tlog_alg_t of the journal's Merkle tree (1 SHA-256, 2 SM3)
 *     first_seq    8   the range, 1 <= first_seq <= last_seq
 *     last_seq     8
 *     prev_hash   32   the chain hash of record first_seq - 1 (32 zero bytes for seq 1)
 *     state_len    2   then the tree's compact range at size first_seq - 1
 *     state            (tlog_state_encode): what is needed to continue the tree
 *   checkpoints whose tree size falls in the range, in size order (first,
 *   so that a verifier checks each as the records reach its size, in one pass)
 *     size         8   (never 0)
 *     len          4   then the signed note (C2SP signed-note, tlog-checkpoint body)
 *     note
 *     0            8   size 0 ends the list
 *   records, last_seq - first_seq + 1 of them, in seq order
 *     seq          8
 *     len          4   then the record as the journal stores it, bytes unchanged:
 *     value            chain hash(32) || JournalEvent
 *   trailer
 *     magic        8   "NHUBEND1"
 *     state_len    2   then the tree's compact range at size last_seq
 *     state
 *     last_hash   32   the chain hash of record last_seq
 *     file_hash   32   SHA-256 of every byte of the file before it
 *
 * Nothing in the file is trusted by itself: a verifier recomputes the
 * chain from prev_hash and the tree from the start state through every
 * record, checks the checkpoints inside against the recomputed roots (their
 * signatures tie the start state and the records to the hub's key), and
 * compares the trailer and the file hash. A chain of archives continues
 * when each file's prev_hash and start state are the previous file's
 * last_hash and end state.
 *
 * The writer writes "<path>.tmp" and only archive_writer_sync (fsync, rename,
 * fsync of the directory) makes <path> appear, whole. The reader checks
 * every length before it reads; errors: NHUB_EMALFORMED (with the reason in
 * `err`: a bad field, or the file ending early), NHUB_EIO, NHUB_ENOMEM.
 */
#ifndef NHUB_ARCHIVE_H
#define NHUB_ARCHIVE_H

#include "tlog.h"

#include <stddef.h>
#include <stdint.h>

#define ARCHIVE_VERSION 1
#define ARCHIVE_RECORD_MAX ((size_t)256 << 20) /* bytes of one record the reader takes */
#define ARCHIVE_HASH_LEN 32
#define ARCHIVE_ID_LEN 16

/* What the header says. */
typedef struct archive_header {
    uint32_t version;
    uint8_t hub_id[ARCHIVE_ID_LEN];
    tlog_alg_t alg;
    uint64_t first_seq, last_seq;
    uint8_t prev_hash[ARCHIVE_HASH_LEN];
    uint8_t state[TLOG_STATE_MAX]; /* tlog_state_encode of the tree at first_seq - 1 */
    size_t state_len;
} archive_header_t;

/* What the trailer says, and the file hash the reader computed. */
typedef struct archive_trailer {
    uint8_t state[TLOG_STATE_MAX]; /* the tree at last_seq */
    size_t state_len;
    uint8_t last_hash[ARCHIVE_HASH_LEN];
    uint8_t file_hash[ARCHIVE_HASH_LEN];     /* as written in the file */
    uint8_t computed_hash[ARCHIVE_HASH_LEN]; /* of the bytes read before it */
} archive_trailer_t;

/* ---- writing ---- */

typedef struct archive_writer archive_writer_t;

/*
 * Create "<path>.tmp" (replacing one left by an earlier attempt) and write
 * the header. Returns 0 and *out, NHUB_EINVAL (a bad header), NHUB_EIO
 * with the system's reason in `err` (the directory is missing or not
 * writable, the disk is full), NHUB_ENOMEM. Free with archive_writer_abort
 * or, after archive_writer_sync, archive_writer_free.
 */
int archive_writer_open(const char *path, const archive_header_t *h, archive_writer_t **out,
                        char *err, size_t errcap);

/* A checkpoint (before any record), in size order within the range. */
int archive_writer_checkpoint(archive_writer_t *w, uint64_t size, const char *note, size_t len);

/* The next record, `value` as the journal stores it (the first ends the
 * checkpoints). Records must come in seq order, first_seq to last_seq.
 * 0, NHUB_EINVAL, NHUB_EIO. */
int archive_writer_record(archive_writer_t *w, uint64_t seq, const void *value, size_t len);

/*
 * After the last record, write the trailer: the tree at last_seq and the
 * chain hash of record last_seq; *file_hash (may be NULL) receives the
 * file hash. The data is flushed to the kernel, not yet to the disk.
 * 0, NHUB_EINVAL (not every record was written), NHUB_EIO.
 */
int archive_writer_finish(archive_writer_t *w, const uint8_t *end_state, size_t end_state_len,
                          const uint8_t last_hash[ARCHIVE_HASH_LEN],
                          uint8_t file_hash[ARCHIVE_HASH_LEN]);

/*
 * Make the finished file durable and visible: fsync, rename "<path>.tmp"
 * to <path>, fsync the directory. Touches no shared state: it may run on
 * another thread than the writer's other calls. 0 or NHUB_EIO with the
 * reason in `err`; the temporary file is left for archive_writer_abort.
 */
int archive_writer_sync(archive_writer_t *w, char *err, size_t errcap);

/* The last system error of the writer, as text ("" if none). */
const char *archive_writer_error(const archive_writer_t *w);

/* Close and remove the temporary file (an unfinished or unsynced archive);
 * accepts NULL; sets *w to NULL. */
void archive_writer_abort(archive_writer_t **w);

/* Close after archive_writer_sync; accepts NULL; sets *w to NULL. */
void archive_writer_free(archive_writer_t **w);

/* ---- reading ---- */

typedef struct archive_reader archive_reader_t;

/*
 * Open `path` and read its header into *h. Returns 0 and *out (free with
 * archive_reader_free), NHUB_EIO (cannot open), NHUB_EMALFORMED (not an
 * archive, another version, a bad field, too short) with `err`.
 */
int archive_reader_open(const char *path, archive_reader_t **out, archive_header_t *h, char *err,
                        size_t errcap);

/* The next checkpoint (right after the header): 0, NHUB_ENOTFOUND at the
 * end of the list, NHUB_EMALFORMED. *note is valid until the next call. */
int archive_reader_checkpoint(archive_reader_t *r, uint64_t *size, const char **note,
                              size_t *len, char *err, size_t errcap);

/*
 * The next record (after every checkpoint was read): *seq as the file
 * says, *value and *len (valid until the next call). Returns 0,
 * NHUB_ENOTFOUND after the header's last record, NHUB_EMALFORMED (the
 * file ends inside it, or a length beyond ARCHIVE_RECORD_MAX) with `err`,
 * NHUB_EINVAL (checkpoints left unread).
 */
int archive_reader_record(archive_reader_t *r, uint64_t *seq, const uint8_t **value, size_t *len,
                          char *err, size_t errcap);

/*
 * The trailer (after the records): 0 and *t, NHUB_EMALFORMED (short,
 * bad magic, bytes after it) with `err`. Compare t->file_hash with
 * t->computed_hash to know whether the file is the one written.
 */
int archive_reader_trailer(archive_reader_t *r, archive_trailer_t *t, char *err, size_t errcap);

/* Accepts NULL; sets *r to NULL. */
void archive_reader_free(archive_reader_t **r);

#endif
