/*
 * nhub-audit verify --data DIR [--vkey VKEY | --vkey-file FILE]
 *
 * verify walks the journal once, in seq order, inside one LMDB read
 * transaction (store_open_reader: never the writer's lock, so the hub is not
 * blocked), and recomputes what the hub computed as it appended: the hash
 * chain SHA-256(previous hash || seq(8, big-endian) || event), starting from
 * 32 zero bytes (store.c, chain_hash), each leaf H(0x00 || event) against the
 * stored node, and the tree's root from those leaves (tlog_append), compared
 * with every checkpoint's size and root and with the stored tree's root. The
 * first problem ends the walk: one line naming the record, exit 1. The
 * recomputation trusts nothing the store says but the record bytes.
 *
 * Records pruned from the live store (audit.retention) are in archive files:
 * without --archive, the walk starts at the store's first record, from the
 * chain hash and tree state the store kept for it, and says so; with
 * --archive (archives.c) the same walk runs through the files first and
 * goes on into the store from where the last file ended.
 */
#include "audit.h"
#include "log.h"
#include "nhub_err.h"
#include "store.h"
#include "tlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

int audit_verify_fail(audit_verify_t *v, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->what, sizeof v->what, fmt, ap);
    va_end(ap);
    v->bad_seq = seq;
    return NHUB_EMALFORMED;
}

/* The store's checkpoints, in size order. */
static int store_next_checkpoint(audit_verify_t *v)
{
    uint64_t after = v->next_cp;
    int rc = store_checkpoint_next(v->r, after, &v->cp_note, &v->cp_len, &v->next_cp);
    if (rc == NHUB_ENOTFOUND) {
        v->next_cp = 0;
        return 0;
    }
    return rc ? audit_verify_fail(v, after, "the checkpoints cannot be read: %s",
                                  nhub_strerror(rc))
              : 0;
}

static int next_checkpoint(audit_verify_t *v)
{
    return v->next_checkpoint ? v->next_checkpoint(v) : v->r ? store_next_checkpoint(v) : 0;
}

int audit_verify_begin(audit_verify_t *v, store_reader_t *r, const tlog_verifier_t *vkey,
                       tlog_alg_t alg, uint64_t next, const uint8_t prev[STORE_HASH_LEN],
                       const uint8_t *state, size_t state_len)
{
    char err[256];
    memset(v, 0, sizeof *v);
    v->r = r;
    v->vkey = vkey;
    v->first = next;
    v->last = next - 1;
    memcpy(v->prev, prev, STORE_HASH_LEN);
    int rc = state ? tlog_state_decode(state, state_len, &v->tree, err, sizeof err)
                   : tlog_state_new(alg, &v->tree, err, sizeof err);
    if (rc == 0 && (tlog_state_size(v->tree) != next - 1 || tlog_state_alg(v->tree) != alg)) {
        snprintf(err, sizeof err, "the tree state before seq %llu is of size %llu",
                 (unsigned long long)next, (unsigned long long)tlog_state_size(v->tree));
        rc = NHUB_EMALFORMED;
    }
    if (rc == 0 && !(v->md = EVP_MD_CTX_new())) {
        snprintf(err, sizeof err, "out of memory");
        rc = NHUB_ENOMEM;
    }
    if (rc != 0) {
        fprintf(stderr, "nhub-audit: %s\n", err);
        audit_verify_end(v);
        return 2;
    }
    v->next_cp = next - 1;
    if (r && (rc = store_tree_info(r, &v->tree_size, NULL, NULL)) != 0) {
        fprintf(stderr, "nhub-audit: the store has no tree (%s)\n", nhub_strerror(rc));
        audit_verify_end(v);
        return 2;
    }
    return 0;
}

void audit_verify_end(audit_verify_t *v)
{
    EVP_MD_CTX_free(v->md);
    v->md = NULL;
    tlog_state_free(&v->tree);
}

/* The checkpoint of size `size` against the tree recomputed up to it. */
static int check_checkpoint(audit_verify_t *v, uint64_t size)
{
    tlog_note_t note;
    tlog_checkpoint_t cp;
    char err[256];
    uint8_t root[TLOG_HASH_LEN], stored[TLOG_HASH_LEN];
    if (tlog_note_parse(v->cp_note, v->cp_len, &note, err, sizeof err) != 0 ||
        tlog_checkpoint_parse(note.text, note.text_len, &cp, err, sizeof err) != 0)
        return audit_verify_fail(v, size, "checkpoint %llu: does not parse: %s",
                                 (unsigned long long)size, err);
    if (cp.size != size)
        return audit_verify_fail(v, size, "checkpoint %llu: its note says size %llu",
                                 (unsigned long long)size, (unsigned long long)cp.size);
    if (tlog_root(v->tree, root) != 0)
        return audit_verify_fail(v, size, "checkpoint %llu: cannot hash", (unsigned long long)size);
    if (memcmp(cp.root, root, TLOG_HASH_LEN) != 0)
        return audit_verify_fail(v, size, "checkpoint %llu: root differs",
                                 (unsigned long long)size);
    if (v->r &&
        (store_tree_root_at(v->r, size, stored) != 0 || memcmp(stored, root, TLOG_HASH_LEN) != 0))
        return audit_verify_fail(v, size,
                                 "checkpoint %llu: the stored tree's root at this size differs",
                                 (unsigned long long)size);
    if (v->vkey && tlog_note_verify(&note, v->vkey) != 0)
        return audit_verify_fail(v, size, "checkpoint %llu: signature does not verify with key %s",
                                 (unsigned long long)size, tlog_verifier_name(v->vkey));
    v->checkpoints++;
    if (size > v->covered)
        v->covered = size;
    return next_checkpoint(v);
}

/* The record's leaf against the stored tree's (the live store only). */
static int check_stored_leaf(audit_verify_t *v, uint64_t seq, const uint8_t leaf[TLOG_HASH_LEN])
{
    uint8_t node[TLOG_HASH_LEN];
    if (seq > v->tree_size)
        return audit_verify_fail(v, seq, "record beyond the stored tree (size %llu)",
                                 (unsigned long long)v->tree_size);
    int rc = store_tree_node(v->r, 0, seq - 1, node);
    if (rc != 0)
        return audit_verify_fail(v, seq, "leaf missing from the stored tree (%s)",
                                 nhub_strerror(rc));
    if (memcmp(node, leaf, TLOG_HASH_LEN) != 0)
        return audit_verify_fail(v, seq, "leaf differs from the stored tree");
    return 0;
}

int audit_verify_record(void *arg, uint64_t seq, const uint8_t hash[STORE_HASH_LEN],
                        const void *event, size_t len)
{
    audit_verify_t *v = arg;
    uint8_t seq_be[8], chain[STORE_HASH_LEN], leaf[TLOG_HASH_LEN];
    unsigned int outlen = 0;
    if (seq != v->last + 1)
        return audit_verify_fail(v, v->last + 1, "record missing: seq %llu after %llu",
                                 (unsigned long long)(v->last + 1), (unsigned long long)v->last);
    for (int i = 0; i < 8; i++)
        seq_be[i] = (uint8_t)(seq >> (56 - 8 * i));
    if (EVP_DigestInit_ex(v->md, store_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(v->md, v->prev, sizeof v->prev) != 1 ||
        EVP_DigestUpdate(v->md, seq_be, 8) != 1 || EVP_DigestUpdate(v->md, event, len) != 1 ||
        EVP_DigestFinal_ex(v->md, chain, &outlen) != 1)
        return audit_verify_fail(v, seq, "cannot hash");
    if (memcmp(chain, hash, STORE_HASH_LEN) != 0)
        return seq == 1 ? audit_verify_fail(v, seq, "chain hash does not start the chain")
                        : audit_verify_fail(v, seq, "chain hash does not follow record %llu",
                                            (unsigned long long)(seq - 1));
    if (tlog_hash_leaf(tlog_state_hasher(v->tree), event, len, leaf) != 0)
        return audit_verify_fail(v, seq, "cannot hash");
    int rc = v->r ? check_stored_leaf(v, seq, leaf) : 0;
    if (rc != 0)
        return rc;
    if (tlog_append(v->tree, leaf) != 0)
        return audit_verify_fail(v, seq, "cannot hash");
    memcpy(v->prev, chain, sizeof v->prev);
    v->last = seq;
    v->records++;
    while (v->next_cp && v->next_cp <= seq) {
        if (v->next_cp < seq) /* passed over: only when seqs skip, which fails above */
            return audit_verify_fail(v, v->next_cp, "checkpoint %llu: no record of that size",
                                     (unsigned long long)v->next_cp);
        if ((rc = check_checkpoint(v, seq)) != 0)
            return rc;
    }
    return 0;
}

/* After the walk: the journal's end against the tree's. */
static int verify_end(audit_verify_t *v, uint8_t root[TLOG_HASH_LEN])
{
    uint8_t stored[TLOG_HASH_LEN];
    if (v->last < v->tree_size)
        return audit_verify_fail(v, v->last + 1,
                                 "record missing: seq %llu after %llu (the tree has %llu)",
                                 (unsigned long long)(v->last + 1), (unsigned long long)v->last,
                                 (unsigned long long)v->tree_size);
    if (v->next_cp)
        return audit_verify_fail(v, v->next_cp,
                                 "checkpoint %llu: beyond the journal's last record %llu",
                                 (unsigned long long)v->next_cp, (unsigned long long)v->last);
    if (store_tree_info(v->r, &v->tree_size, stored, NULL) != 0 || tlog_root(v->tree, root) != 0)
        return audit_verify_fail(v, v->last, "the tree's state cannot be read");
    if (memcmp(stored, root, TLOG_HASH_LEN) != 0)
        return audit_verify_fail(v, v->last, "the tree's root differs from the one recomputed");
    if (v->last && (store_tree_root_at(v->r, v->last, stored) != 0 ||
                    memcmp(stored, root, TLOG_HASH_LEN) != 0))
        return audit_verify_fail(v, v->last, "the stored tree's nodes give another root");
    return 0;
}

int audit_verify_store(audit_verify_t *v, uint8_t root[TLOG_HASH_LEN])
{
    uint64_t bad = 0;
    v->next_checkpoint = NULL;
    v->next_cp = v->last;
    int rc = store_next_checkpoint(v);
    if (rc == 0)
        rc = store_journal_walk(v->r, v->last + 1, audit_verify_record, v, &bad);
    if (rc == NHUB_EMALFORMED && !v->what[0])
        return audit_verify_fail(
            v, bad, "record unreadable (a bad key or a value shorter than its chain hash)");
    return rc ? rc : verify_end(v, root);
}

void audit_verify_print_ok(const audit_verify_t *v, const uint8_t root[TLOG_HASH_LEN], double secs)
{
    char hex[2 * TLOG_HASH_LEN + 1];
    log_hex(hex, sizeof hex, root, TLOG_HASH_LEN);
    printf("%llu checkpoint%s%s, root %s (%s), %.3f s, %.0f records/s\n",
           (unsigned long long)v->checkpoints, v->checkpoints == 1 ? "" : "s",
           v->vkey ? " (signatures checked)" : " (signatures not checked: no --vkey)", hex,
           tlog_alg_name(tlog_state_alg(v->tree)), secs,
           secs > 0 ? (double)v->records / secs : 0.0);
}

int audit_verify(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    if (a->narchives)
        return audit_verify_archives(a, r, vkey);
    audit_verify_t v;
    tlog_alg_t alg;
    uint64_t size, start = 1;
    uint8_t root[TLOG_HASH_LEN], prev[STORE_HASH_LEN], state[TLOG_STATE_MAX];
    size_t state_len = 0;
    char when[64];
    double t0 = audit_now_s();
    int rc = store_tree_info(r, &size, NULL, &alg);
    if (rc != 0) {
        fprintf(stderr, "nhub-audit: the store has no tree (%s)\n", nhub_strerror(rc));
        return 1;
    }
    /* Records before journal_start were pruned: the walk starts from what
     * the store kept for them (--archive checks it against the files). */
    if ((rc = store_journal_start(r, &start, prev)) != 0 ||
        (start > 1 && (rc = store_tree_state_at(r, start - 1, state, sizeof state, &state_len))))
        fprintf(stderr, "nhub-audit: the store's first record cannot be read: %s\n",
                nhub_strerror(rc));
    if (rc != 0 || audit_verify_begin(&v, r, vkey, alg, start, prev, start > 1 ? state : NULL,
                                      state_len) != 0)
        return 2;
    rc = audit_verify_store(&v, root);
    double secs = audit_now_s() - t0;
    if (rc != 0 && !v.what[0]) {
        fprintf(stderr, "nhub-audit: the store cannot be read: %s\n", nhub_strerror(rc));
        audit_verify_end(&v);
        return 2;
    }
    if (rc != 0) {
        printf("FAIL seq %llu at %s: %s\n", (unsigned long long)v.bad_seq,
               audit_record_time(r, v.bad_seq, when, sizeof when), v.what);
        audit_verify_end(&v);
        return 1;
    }
    printf("OK %llu records, ", (unsigned long long)v.records);
    if (start > 1)
        printf("the live store's from seq %llu (those before are archived: verify them with "
               "--archive), ",
               (unsigned long long)start);
    audit_verify_print_ok(&v, root, secs);
    audit_verify_end(&v);
    return 0;
}
