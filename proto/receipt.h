/*
 * receipt.h: a region's receipt for one message: the proof that the hub
 * journaled it, which the region checks offline with nothing of the hub's
 * but its checkpoint verifier key (proto/README.md, "Receipts").
 *
 * A receipt holds the message's ACCEPTED journal record (its JournalEvent
 * bytes, the envelope as received inside), the hash of the hub's Merkle
 * tree, and a C2SP tlog-proof: the record's leaf index, its inclusion
 * proof and the signed checkpoint whose tree it is in. As a file it is
 * text:
 *
 *     nhub-receipt v1
 *     msg-id <32 lower-case hex digits>
 *     tree-hash sha256            (or sm3)
 *     record <base64 of the JournalEvent bytes, one line>
 *     c2sp.org/tlog-proof@v1      (from here on, the tlog-proof file
 *     index <leaf index>           exactly as nhub-audit prove writes it)
 *     <base64 proof hash>...
 *
 *     <the signed checkpoint note>
 *
 * Checking it (receipt_verify): the note is signed by the hub's key; the
 * record decodes, is an ACCEPTED event and names the msg_id asked about;
 * H(0x00 || record) is leaf `index` of the checkpoint's tree (RFC 9162
 * 2.1.3.2). Each failure names its part in the message: "checkpoint: ",
 * "record: ", "msg_id: " or "inclusion: " (the record, the index, the
 * hash or a proof hash changed: the fold does not tell which).
 *
 * No I/O, no global state. Errors: NHUB_EMALFORMED (the text breaks the
 * format), NHUB_ETOOBIG (past RECEIPT_TEXT_MAX), NHUB_EREFUSED (a check
 * failed), NHUB_EINVAL, NHUB_ENOMEM, NHUB_ECRYPTO; a one-line message in
 * `err` (never payload data).
 */
#ifndef NHUB_RECEIPT_H
#define NHUB_RECEIPT_H

#include "tlog.h"

#include <stddef.h>
#include <stdint.h>

#define RECEIPT_MAGIC "nhub-receipt v1"
/* Bytes of a record a receipt carries, and of a receipt's text: a record
 * holds one envelope (limits.max_frame, 64 MiB at most) and its base64 is
 * 4/3 of it, plus the proof and the note (2 * TLOG_NOTE_MAX). */
#define RECEIPT_RECORD_MAX (((size_t)64 << 20) + 65536)
#define RECEIPT_TEXT_MAX (RECEIPT_RECORD_MAX / 3 * 4 + 4 + 4 * (size_t)65536)

/* A parsed receipt (opaque parts are owned by it). */
typedef struct receipt {
    uint8_t msg_id[16];
    tlog_alg_t alg;
    uint8_t *record; /* the JournalEvent bytes, record_len of them (owned) */
    size_t record_len;
    tlog_proof_t proof; /* its note points into `text` */
    char *text;         /* a copy of the parsed text (owned) */
    size_t text_len;
} receipt_t;

/* What a receipt that verified says. Strings are copies, NUL-terminated. */
typedef struct receipt_info {
    uint64_t seq;       /* the record's journal seq (leaf index + 1) */
    uint64_t tree_size; /* the checkpoint's */
    int64_t time_ms;    /* when the hub accepted it (its wall clock) */
    char origin[TLOG_NAME_MAX + 1];
    char source[8], destination[8];
    char item[65];
} receipt_info_t;

/*
 * Write the receipt text: msg_id, the tree's hash, the record's bytes and
 * the tlog-proof text (proof_len bytes, as tlog_proof_format wrote it).
 * Returns 0 and *out (NUL-terminated, caller frees with free()), *outlen
 * its length (may be NULL); NHUB_EINVAL, NHUB_ETOOBIG (record past
 * RECEIPT_RECORD_MAX) or NHUB_ENOMEM.
 */
int receipt_format(const uint8_t msg_id[16], tlog_alg_t alg, const void *record, size_t record_len,
                   const char *proof, size_t proof_len, char **out, size_t *outlen);

/*
 * Parse receipt text (`len` bytes) into a new receipt: the header lines
 * in order, then tlog_proof_parse of the rest. Nothing is verified. Returns
 * 0 and *out (free with receipt_free), or an error with the line and reason
 * in `err`; *out is NULL on failure.
 */
int receipt_parse(const char *text, size_t len, receipt_t **out, char *err, size_t errcap);

/* Free `*r` and set it to NULL. Accepts NULL. */
void receipt_free(receipt_t **r);

/*
 * Verify `r` against the hub's checkpoint verifier key `v` for message
 * `msg_id` (NULL: the one the receipt names). Returns 0 and fills *info
 * (may be NULL), or NHUB_EREFUSED with the failed part named in `err`
 * ("checkpoint: signature does not verify with key NAME"), NHUB_ECRYPTO
 * (this OpenSSL lacks the tree's hash), NHUB_EINVAL (NULL).
 */
int receipt_verify(const receipt_t *r, const tlog_verifier_t *v, const uint8_t *msg_id,
                   receipt_info_t *info, char *err, size_t errcap);

#endif
