/*
 * receipt.c: a message's receipt as a file, and its offline check (see
 * receipt.h). The proof part is the C2SP tlog-proof text nhub-audit prove
 * writes, so every tool that reads one reads the tail of a receipt; the
 * header adds what a tlog-proof leaves to the verifier: which record is
 * proven (its bytes), which message it is about, and the tree's hash,
 * which a checkpoint does not state (tlog.h).
 */
#include "receipt.h"

#include "nhub_err.h"
#include "nhub_journal.pb-c.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t cap, int code, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void hex16(const uint8_t id[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[32] = 0;
}

static int unhex16(const char *s, size_t n, uint8_t out[16])
{
    if (n != 32)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return 0;
}

int receipt_format(const uint8_t msg_id[16], tlog_alg_t alg, const void *record, size_t record_len,
                   const char *proof, size_t proof_len, char **out, size_t *outlen)
{
    if (!msg_id || !proof || !out || (!record && record_len) || !tlog_alg_name(alg) ||
        record_len == 0)
        return NHUB_EINVAL;
    *out = NULL;
    if (record_len > RECEIPT_RECORD_MAX || proof_len > 2 * (size_t)TLOG_NOTE_MAX)
        return NHUB_ETOOBIG;
    size_t b64 = (record_len + 2) / 3 * 4;
    size_t cap = strlen(RECEIPT_MAGIC) + 64 + 32 + b64 + proof_len + 16;
    char *p = malloc(cap);
    if (!p)
        return NHUB_ENOMEM;
    char hex[33];
    hex16(msg_id, hex);
    int n = snprintf(p, cap, "%s\nmsg-id %s\ntree-hash %s\nrecord ", RECEIPT_MAGIC, hex,
                     tlog_alg_name(alg));
    size_t len = (size_t)n;
    len += (size_t)EVP_EncodeBlock((unsigned char *)p + len, record, (int)record_len);
    p[len++] = '\n';
    memcpy(p + len, proof, proof_len);
    len += proof_len;
    p[len] = 0;
    *out = p;
    if (outlen)
        *outlen = len;
    return 0;
}

/* The next line of text[0..len) from *pos (without its \n): 1, or 0 if none. */
static int next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
    if (*pos >= len)
        return 0;
    const char *s = text + *pos, *nl = memchr(s, '\n', len - *pos);
    if (!nl)
        return 0; /* every line of a receipt ends in \n */
    *line = s;
    *n = (size_t)(nl - s);
    *pos += *n + 1;
    return 1;
}

/* Line `line` (n bytes) is "KEY VALUE": the value, or NULL. */
static const char *value_of(const char *line, size_t n, const char *key, size_t *vn)
{
    size_t k = strlen(key);
    if (n <= k + 1 || memcmp(line, key, k) != 0 || line[k] != ' ')
        return NULL;
    *vn = n - k - 1;
    return line + k + 1;
}

/* Strict base64 of the record: decoded, then encoded again to the same text. */
static int decode_record(receipt_t *r, const char *b64, size_t n)
{
    if (n == 0 || n % 4 || n / 4 * 3 > RECEIPT_RECORD_MAX + 2)
        return NHUB_EMALFORMED;
    r->record = malloc(n / 4 * 3 + 1);
    char *again = malloc(n + 1);
    int rc = NHUB_ENOMEM;
    if (!r->record || !again)
        goto done;
    rc = NHUB_EMALFORMED;
    int got = EVP_DecodeBlock(r->record, (const unsigned char *)b64, (int)n);
    if (got < 0)
        goto done;
    size_t len = (size_t)got - (b64[n - 1] == '=') - (b64[n - 2] == '=');
    if (len == 0 || (size_t)EVP_EncodeBlock((unsigned char *)again, r->record, (int)len) != n ||
        memcmp(again, b64, n) != 0)
        goto done;
    r->record_len = len;
    rc = 0;
done:
    free(again);
    return rc;
}

/* The header lines, in order; *pos ends at the tlog-proof's first line. */
static int parse_header(receipt_t *r, const char *t, size_t len, size_t *pos, char *err, size_t cap)
{
    const char *line, *v;
    size_t n, vn;
    if (!next_line(t, len, pos, &line, &n) || n != strlen(RECEIPT_MAGIC) ||
        memcmp(line, RECEIPT_MAGIC, n) != 0)
        return fail(err, cap, NHUB_EMALFORMED, "receipt line 1: not \"%s\"", RECEIPT_MAGIC);
    if (!next_line(t, len, pos, &line, &n) || !(v = value_of(line, n, "msg-id", &vn)) ||
        unhex16(v, vn, r->msg_id) != 0)
        return fail(err, cap, NHUB_EMALFORMED,
                    "receipt line 2: not \"msg-id HEX\" (32 lower-case hex digits)");
    char alg[16] = "";
    if (next_line(t, len, pos, &line, &n) && (v = value_of(line, n, "tree-hash", &vn)) &&
        vn < sizeof alg)
        memcpy(alg, v, vn);
    if (!(r->alg = tlog_alg_parse(alg)))
        return fail(err, cap, NHUB_EMALFORMED, "receipt line 3: not \"tree-hash sha256\" or sm3");
    if (!next_line(t, len, pos, &line, &n) || !(v = value_of(line, n, "record", &vn)))
        return fail(err, cap, NHUB_EMALFORMED, "receipt line 4: not \"record BASE64\"");
    int rc = decode_record(r, v, vn);
    if (rc)
        return fail(err, cap, rc,
                    rc == NHUB_ENOMEM ? "out of memory"
                                      : "receipt line 4: the record is not base64");
    return 0;
}

int receipt_parse(const char *text, size_t len, receipt_t **out, char *err, size_t errcap)
{
    if (!text || !out)
        return NHUB_EINVAL;
    *out = NULL;
    if (len > RECEIPT_TEXT_MAX)
        return fail(err, errcap, NHUB_ETOOBIG, "receipt: %zu bytes, more than %zu", len,
                    (size_t)RECEIPT_TEXT_MAX);
    receipt_t *r = calloc(1, sizeof *r);
    if (!r || !(r->text = malloc(len + 1))) {
        free(r);
        return fail(err, errcap, NHUB_ENOMEM, "out of memory");
    }
    memcpy(r->text, text, len);
    r->text[len] = 0;
    r->text_len = len;
    size_t pos = 0;
    int rc = parse_header(r, r->text, len, &pos, err, errcap);
    if (!rc && (rc = tlog_proof_parse(r->text + pos, len - pos, &r->proof, err, errcap)))
        rc = rc == NHUB_ETOOBIG ? rc : NHUB_EMALFORMED; /* err says which proof line */
    if (rc) {
        receipt_free(&r);
        return rc;
    }
    *out = r;
    return 0;
}

void receipt_free(receipt_t **r)
{
    if (!r || !*r)
        return;
    free((*r)->record);
    free((*r)->text);
    free(*r);
    *r = NULL;
}

/* The record is the ACCEPTED event of `want`; fills *info's message fields. */
static int check_record(const receipt_t *r, const uint8_t *want, receipt_info_t *info, char *err,
                        size_t cap)
{
    Nhub__Journal__V1__JournalEvent *ev =
        nhub__journal__v1__journal_event__unpack(NULL, r->record_len, r->record);
    char a[33], b[33];
    int rc = NHUB_EREFUSED;
    if (!ev)
        return fail(err, cap, rc, "record: does not decode as a journal event");
    if (ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED || ev->msg_id.len != 16)
        fail(err, cap, rc, "record: not the ACCEPTED event of a message (type %d)", (int)ev->type);
    else if (memcmp(ev->msg_id.data, r->msg_id, 16) != 0)
        fail(err, cap, rc, "record: is the ACCEPTED event of %s, not of the receipt's msg-id %s",
             (hex16(ev->msg_id.data, a), a), (hex16(r->msg_id, b), b));
    else if (want && memcmp(want, r->msg_id, 16) != 0)
        fail(err, cap, rc, "msg_id: the receipt is for %s, not %s", (hex16(r->msg_id, a), a),
             (hex16(want, b), b));
    else {
        rc = 0;
        info->time_ms = ev->time_ms;
        snprintf(info->source, sizeof info->source, "%s", ev->source ? ev->source : "");
        snprintf(info->destination, sizeof info->destination, "%s",
                 ev->destination ? ev->destination : "");
        snprintf(info->item, sizeof info->item, "%s", ev->item ? ev->item : "");
    }
    nhub__journal__v1__journal_event__free_unpacked(ev, NULL);
    return rc;
}

/* The record's leaf is leaf `index` of the checkpoint's tree. */
static int check_inclusion(const receipt_t *r, const tlog_checkpoint_t *cp, char *err, size_t cap)
{
    tlog_hasher_t *h = NULL;
    uint8_t leaf[TLOG_HASH_LEN];
    int rc = tlog_hasher_new(r->alg, &h, err, cap);
    if (rc)
        return rc;
    if (r->proof.index >= cp->size)
        rc = fail(err, cap, NHUB_EREFUSED,
                  "inclusion: leaf index %llu is not in the checkpoint's tree of size %llu",
                  (unsigned long long)r->proof.index, (unsigned long long)cp->size);
    else if ((rc = tlog_hash_leaf(h, r->record, r->record_len, leaf)) == 0)
        rc = tlog_verify_inclusion(h, r->proof.index, cp->size, leaf,
                                   (const tlog_hash_t *)r->proof.proof, r->proof.len, cp->root);
    if (rc == NHUB_EREFUSED || rc == NHUB_EINVAL)
        rc = fail(err, cap, NHUB_EREFUSED,
                  "inclusion: the record is not leaf %llu of the checkpoint's %s tree of size "
                  "%llu (the record, its index, the tree hash or the proof was altered)",
                  (unsigned long long)r->proof.index, tlog_alg_name(r->alg),
                  (unsigned long long)cp->size);
    else if (rc)
        rc = fail(err, cap, rc, "inclusion: cannot hash: %s", nhub_strerror(rc));
    tlog_hasher_free(&h);
    return rc;
}

int receipt_verify(const receipt_t *r, const tlog_verifier_t *v, const uint8_t *msg_id,
                   receipt_info_t *info, char *err, size_t errcap)
{
    if (err && errcap)
        err[0] = '\0';
    if (!r || !v)
        return NHUB_EINVAL;
    receipt_info_t scratch;
    if (!info)
        info = &scratch;
    memset(info, 0, sizeof *info);
    tlog_checkpoint_t cp;
    char why[256];
    int rc = tlog_checkpoint_open(r->proof.note, r->proof.note_len, v, &cp, why, sizeof why);
    if (rc == NHUB_ENOTFOUND || rc == NHUB_EREFUSED)
        return fail(err, errcap, NHUB_EREFUSED, "checkpoint: %s with key %s",
                    rc == NHUB_ENOTFOUND ? "not signed" : "signature does not verify",
                    tlog_verifier_name(v));
    if (rc)
        return fail(err, errcap, rc == NHUB_ECRYPTO ? rc : NHUB_EREFUSED, "checkpoint: %s", why);
    if ((rc = check_record(r, msg_id, info, err, errcap)) ||
        (rc = check_inclusion(r, &cp, err, errcap)))
        return rc;
    info->seq = r->proof.index + 1;
    info->tree_size = cp.size;
    snprintf(info->origin, sizeof info->origin, "%s", cp.origin);
    return 0;
}
