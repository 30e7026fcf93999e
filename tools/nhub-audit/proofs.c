/*
 * nhub-audit prove, record, check-proof: inclusion proofs of records in a
 * signed checkpoint, as C2SP tlog-proof files.
 *
 *   nhub-audit prove --data DIR SEQ|MSG_ID [--size N]
 *   nhub-audit record --data DIR SEQ|MSG_ID
 *   nhub-audit check-proof (--vkey VKEY | --vkey-file FILE) PROOF_FILE --record FILE_OR_LEAFHEX
 *                          [--hash sm3]
 *   nhub-audit check-proof (--vkey VKEY | --vkey-file FILE) RECEIPT_FILE
 *
 * check-proof needs no store: a proof file (C2SP tlog-proof), the hub's
 * verifier key obtained from its operators, and the record's bytes (or its
 * leaf hash). A tlog-proof does not name the tree's hash: SHA-256 unless
 * --hash says sm3 (prove says so when the tree is hashed with SM3). Or a
 * region's receipt (proto/receipt.h), which carries the record, the tree's
 * hash and a tlog-proof, and says which message it is.
 */
#include "audit.h"
#include "nhub_err.h"
#include "receipt.h"
#include "store.h"
#include "tlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAX (64u << 20) /* bytes of a record file check-proof reads */
#define PROOF_FILE_MAX (TLOG_NOTE_MAX + 8192)

int audit_prove(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)vkey;
    uint64_t seq = 0, size = 0;
    if (a->size_text && audit_parse_u64(a->size_text, &size) != 0) {
        fprintf(stderr, "nhub-audit: prove: --size is a number from 1\n");
        return 2;
    }
    int arc = audit_record_arg(r, "prove", a->pos[0], &seq);
    if (arc != 0)
        return arc;
    const char *note;
    size_t note_len, len = 0, out_len = 0;
    uint64_t got = 0;
    tlog_hash_t proof[TLOG_PROOF_MAX];
    if (store_checkpoint_get(r, size, &note, &note_len, &got) != 0) {
        if (size)
            fprintf(stderr, "nhub-audit: no checkpoint of size %llu\n", (unsigned long long)size);
        else
            fprintf(stderr, "nhub-audit: the store has no checkpoint yet\n");
        return 1;
    }
    if (seq > got) {
        fprintf(stderr, "nhub-audit: record %llu is not in the checkpoint of size %llu\n",
                (unsigned long long)seq, (unsigned long long)got);
        return 1;
    }
    int rc = store_tree_prove_inclusion(r, seq - 1, got, proof, TLOG_PROOF_MAX, &len);
    size_t cap = note_len + 64 + TLOG_PROOF_MAX * 48;
    char *out = rc == 0 ? malloc(cap) : NULL;
    if (rc == 0 &&
        (!out || tlog_proof_format(seq - 1, proof, len, note, note_len, out, cap, &out_len) != 0))
        rc = NHUB_ENOMEM;
    if (rc != 0) {
        fprintf(stderr, "nhub-audit: cannot prove record %llu: %s\n", (unsigned long long)seq,
                nhub_strerror(rc));
        free(out);
        return 2;
    }
    fwrite(out, 1, out_len, stdout);
    free(out);
    tlog_alg_t alg = TLOG_SHA256;
    uint64_t tree = 0;
    if (store_tree_info(r, &tree, NULL, &alg) == 0 && alg != TLOG_SHA256)
        fprintf(stderr, "nhub-audit: this tree is hashed with %s: check the proof with --hash %s\n",
                tlog_alg_name(alg), tlog_alg_name(alg));
    return 0;
}

int audit_record(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)vkey;
    uint64_t seq = 0;
    int arc = audit_record_arg(r, "record", a->pos[0], &seq);
    if (arc != 0)
        return arc;
    const void *ev;
    size_t len;
    if (store_journal_get(r, seq, &ev, &len, NULL) != 0) {
        fprintf(stderr, "nhub-audit: no record %llu\n", (unsigned long long)seq);
        return 1;
    }
    return fwrite(ev, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 2;
}

/* The leaf the proof must prove: 64 hex digits, or H(0x00 || the file's bytes). */
static int load_leaf(const char *arg, tlog_hasher_t *h, uint8_t leaf[TLOG_HASH_LEN])
{
    size_t len = 0;
    if (audit_unhex32(arg, leaf) == 0)
        return 0;
    char *data = audit_read_all(arg, RECORD_MAX, &len);
    if (!data) {
        fprintf(stderr, "nhub-audit: --record: cannot read %s (nor is it a 64-hex leaf hash)\n",
                arg);
        return 2;
    }
    int rc = tlog_hash_leaf(h, data, len, leaf);
    free(data);
    return rc ? 2 : 0;
}

static const char *hex16(const uint8_t id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
    return out;
}

/* A receipt: everything but the key is in it. 0, 1 (does not verify) or 2. */
static int check_receipt(const audit_args_t *a, const char *text, size_t len,
                         const tlog_verifier_t *vkey)
{
    if (a->record) {
        fprintf(stderr, "nhub-audit: %s is a receipt, which carries its record: no --record\n",
                a->pos[0]);
        return 2;
    }
    receipt_t *rc = NULL;
    receipt_info_t info;
    char err[512], hex[33];
    if (receipt_parse(text, len, &rc, err, sizeof err) != 0) {
        printf("FAIL the receipt does not parse: %s\n", err);
        return 1;
    }
    int ret = receipt_verify(rc, vkey, NULL, &info, err, sizeof err) == 0 ? 0 : 1;
    if (ret)
        printf("FAIL %s\n", err);
    else
        printf("OK receipt of %s: record %llu (%s -> %s) is in the %s checkpoint of size %llu "
               "signed by %s\n",
               hex16(rc->msg_id, hex), (unsigned long long)info.seq, info.source,
               info.destination, tlog_alg_name(rc->alg), (unsigned long long)info.tree_size,
               tlog_verifier_name(vkey));
    receipt_free(&rc);
    return ret;
}

int audit_check_proof(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)r;
    const char *proof_path = a->pos[0], *record = a->record;
    size_t len = 0;
    char err[256];
    uint8_t leaf[TLOG_HASH_LEN];
    tlog_checkpoint_t cp;
    tlog_hasher_t *h = NULL;
    tlog_proof_t *p = malloc(sizeof *p);
    char *text = p ? audit_read_all(proof_path, RECEIPT_TEXT_MAX, &len) : NULL;
    int rc = 2;
    if (!text) {
        fprintf(stderr, "nhub-audit: cannot read the proof file %s\n", proof_path);
        goto done;
    }
    if (len > strlen(RECEIPT_MAGIC) &&
        memcmp(text, RECEIPT_MAGIC "\n", strlen(RECEIPT_MAGIC) + 1) == 0) {
        rc = check_receipt(a, text, len, vkey);
        goto done;
    }
    if (!record) {
        fprintf(stderr, "nhub-audit: check-proof of a tlog-proof file needs --record\n");
        goto done;
    }
    tlog_alg_t alg = a->hash ? tlog_alg_parse(a->hash) : TLOG_SHA256;
    if (!alg) {
        fprintf(stderr, "nhub-audit check-proof: --hash \"%s\" is not sha256 or sm3\n", a->hash);
        goto done;
    }
    if (tlog_hasher_new(alg, &h, err, sizeof err) != 0 ||
        (rc = load_leaf(record, h, leaf)) != 0)
        goto done;
    rc = 1;
    if (tlog_proof_parse(text, len, p, err, sizeof err) != 0) {
        printf("FAIL the proof file does not parse: %s\n", err);
        goto done;
    }
    if (tlog_checkpoint_open(p->note, p->note_len, vkey, &cp, err, sizeof err) != 0) {
        printf("FAIL checkpoint: signature does not verify with key %s (%s)\n",
               tlog_verifier_name(vkey), err);
        goto done;
    }
    if (tlog_verify_inclusion(h, p->index, cp.size, leaf, p->proof, p->len, cp.root) != 0) {
        printf("FAIL record %llu is not proven in the checkpoint of size %llu\n",
               (unsigned long long)(p->index + 1), (unsigned long long)cp.size);
        goto done;
    }
    printf("OK record %llu is in the checkpoint of size %llu signed by %s\n",
           (unsigned long long)(p->index + 1), (unsigned long long)cp.size,
           tlog_verifier_name(vkey));
    rc = 0;
done:
    tlog_hasher_free(&h);
    free(text);
    free(p);
    return rc;
}
