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

typedef struct verify {
    store_reader_t *r;
    const tlog_verifier_t *vkey; /* NULL: signatures are not checked */
    tlog_state_t *tree;          /* recomputed from the records' leaves */
    EVP_MD_CTX *md;
    uint8_t prev[STORE_HASH_LEN]; /* the chain hash of the last record walked */
    uint64_t last;                /* its seq */
    uint64_t tree_size;           /* the stored tree's */
    uint64_t next_cp;             /* the next checkpoint's size, 0 if none */
    const char *cp_note;
    size_t cp_len;
    uint64_t checkpoints; /* checked */
    uint64_t bad_seq;     /* the record a failure names */
    char what[512];       /* and what is wrong with it */
} verify_t;

static int fail(verify_t *v, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(verify_t *v, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->what, sizeof v->what, fmt, ap);
    va_end(ap);
    v->bad_seq = seq;
    return NHUB_EMALFORMED;
}

static int next_checkpoint(verify_t *v)
{
    uint64_t after = v->next_cp;
    int rc = store_checkpoint_next(v->r, after, &v->cp_note, &v->cp_len, &v->next_cp);
    if (rc == NHUB_ENOTFOUND) {
        v->next_cp = 0;
        return 0;
    }
    return rc ? fail(v, after, "the checkpoints cannot be read: %s", nhub_strerror(rc)) : 0;
}

/* The checkpoint of size `size` against the tree recomputed up to it. */
static int check_checkpoint(verify_t *v, uint64_t size)
{
    tlog_note_t note;
    tlog_checkpoint_t cp;
    char err[256];
    uint8_t root[TLOG_HASH_LEN], stored[TLOG_HASH_LEN];
    if (tlog_note_parse(v->cp_note, v->cp_len, &note, err, sizeof err) != 0 ||
        tlog_checkpoint_parse(note.text, note.text_len, &cp, err, sizeof err) != 0)
        return fail(v, size, "checkpoint %llu: does not parse: %s", (unsigned long long)size, err);
    if (cp.size != size)
        return fail(v, size, "checkpoint %llu: its note says size %llu", (unsigned long long)size,
                    (unsigned long long)cp.size);
    if (tlog_root(v->tree, root) != 0)
        return fail(v, size, "checkpoint %llu: cannot hash", (unsigned long long)size);
    if (memcmp(cp.root, root, TLOG_HASH_LEN) != 0)
        return fail(v, size, "checkpoint %llu: root differs", (unsigned long long)size);
    if (store_tree_root_at(v->r, size, stored) != 0 || memcmp(stored, root, TLOG_HASH_LEN) != 0)
        return fail(v, size, "checkpoint %llu: the stored tree's root at this size differs",
                    (unsigned long long)size);
    if (v->vkey && tlog_note_verify(&note, v->vkey) != 0)
        return fail(v, size, "checkpoint %llu: signature does not verify with key %s",
                    (unsigned long long)size, tlog_verifier_name(v->vkey));
    v->checkpoints++;
    return next_checkpoint(v);
}

/* store_journal_fn: one record, in seq order. */
static int verify_record(void *arg, uint64_t seq, const uint8_t hash[STORE_HASH_LEN],
                         const void *event, size_t len)
{
    verify_t *v = arg;
    uint8_t seq_be[8], chain[STORE_HASH_LEN], leaf[TLOG_HASH_LEN], node[TLOG_HASH_LEN];
    unsigned int outlen = 0;
    if (seq != v->last + 1)
        return fail(v, v->last + 1, "record missing: seq %llu after %llu",
                    (unsigned long long)(v->last + 1), (unsigned long long)v->last);
    for (int i = 0; i < 8; i++)
        seq_be[i] = (uint8_t)(seq >> (56 - 8 * i));
    if (EVP_DigestInit_ex(v->md, store_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(v->md, v->prev, sizeof v->prev) != 1 ||
        EVP_DigestUpdate(v->md, seq_be, 8) != 1 || EVP_DigestUpdate(v->md, event, len) != 1 ||
        EVP_DigestFinal_ex(v->md, chain, &outlen) != 1)
        return fail(v, seq, "cannot hash");
    if (memcmp(chain, hash, STORE_HASH_LEN) != 0)
        return seq == 1 ? fail(v, seq, "chain hash does not start the chain")
                        : fail(v, seq, "chain hash does not follow record %llu",
                               (unsigned long long)(seq - 1));
    if (seq > v->tree_size)
        return fail(v, seq, "record beyond the stored tree (size %llu)",
                    (unsigned long long)v->tree_size);
    if (tlog_hash_leaf(tlog_state_hasher(v->tree), event, len, leaf) != 0)
        return fail(v, seq, "cannot hash");
    int rc = store_tree_node(v->r, 0, seq - 1, node);
    if (rc != 0)
        return fail(v, seq, "leaf missing from the stored tree (%s)", nhub_strerror(rc));
    if (memcmp(node, leaf, TLOG_HASH_LEN) != 0)
        return fail(v, seq, "leaf differs from the stored tree");
    if (tlog_append(v->tree, leaf) != 0)
        return fail(v, seq, "cannot hash");
    memcpy(v->prev, chain, sizeof v->prev);
    v->last = seq;
    while (v->next_cp && v->next_cp <= seq) {
        if (v->next_cp < seq) /* passed over: only when seqs skip, which fails above */
            return fail(v, v->next_cp, "checkpoint %llu: no record of that size",
                        (unsigned long long)v->next_cp);
        if ((rc = check_checkpoint(v, seq)) != 0)
            return rc;
    }
    return 0;
}

/* After the walk: the journal's end against the tree's. */
static int verify_end(verify_t *v, uint8_t root[TLOG_HASH_LEN])
{
    uint8_t stored[TLOG_HASH_LEN];
    if (v->last < v->tree_size)
        return fail(v, v->last + 1, "record missing: seq %llu after %llu (the tree has %llu)",
                    (unsigned long long)(v->last + 1), (unsigned long long)v->last,
                    (unsigned long long)v->tree_size);
    if (v->next_cp)
        return fail(v, v->next_cp, "checkpoint %llu: beyond the journal's last record %llu",
                    (unsigned long long)v->next_cp, (unsigned long long)v->last);
    if (store_tree_info(v->r, &v->tree_size, stored, NULL) != 0 || tlog_root(v->tree, root) != 0)
        return fail(v, v->last, "the tree's state cannot be read");
    if (memcmp(stored, root, TLOG_HASH_LEN) != 0)
        return fail(v, v->last, "the tree's root differs from the one recomputed");
    if (v->last && (store_tree_root_at(v->r, v->last, stored) != 0 ||
                    memcmp(stored, root, TLOG_HASH_LEN) != 0))
        return fail(v, v->last, "the stored tree's nodes give another root");
    return 0;
}

int audit_verify(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)a;
    verify_t v;
    memset(&v, 0, sizeof v);
    v.r = r;
    v.vkey = vkey;
    tlog_alg_t alg;
    uint8_t root[TLOG_HASH_LEN];
    char err[256], when[64], hex[2 * TLOG_HASH_LEN + 1];
    double t0 = audit_now_s();
    int rc = store_tree_info(r, &v.tree_size, NULL, &alg);
    if (rc != 0) {
        fprintf(stderr, "nhub-audit: the store has no tree (%s)\n", nhub_strerror(rc));
        return 1;
    }
    if (tlog_state_new(alg, &v.tree, err, sizeof err) != 0 || !(v.md = EVP_MD_CTX_new())) {
        fprintf(stderr, "nhub-audit: %s\n", v.tree ? "out of memory" : err);
        tlog_state_free(&v.tree);
        return 2;
    }
    uint64_t bad = 0;
    rc = next_checkpoint(&v);
    if (rc == 0)
        rc = store_journal_walk(r, 1, verify_record, &v, &bad);
    if (rc == NHUB_EMALFORMED && !v.what[0])
        fail(&v, bad, "record unreadable (a bad key or a value shorter than its chain hash)");
    else if (rc == 0)
        rc = verify_end(&v, root);
    double secs = audit_now_s() - t0;
    EVP_MD_CTX_free(v.md);
    tlog_state_free(&v.tree);
    if (rc != 0 && !v.what[0]) {
        fprintf(stderr, "nhub-audit: the store cannot be read: %s\n", nhub_strerror(rc));
        return 2;
    }
    if (rc != 0) {
        printf("FAIL seq %llu at %s: %s\n", (unsigned long long)v.bad_seq,
               audit_record_time(r, v.bad_seq, when, sizeof when), v.what);
        return 1;
    }
    log_hex(hex, sizeof hex, root, TLOG_HASH_LEN);
    printf("OK %llu records, %llu checkpoint%s%s, root %s (%s), %.3f s, %.0f records/s\n",
           (unsigned long long)v.last, (unsigned long long)v.checkpoints,
           v.checkpoints == 1 ? "" : "s",
           vkey ? " (signatures checked)" : " (signatures not checked: no --vkey)", hex,
           tlog_alg_name(alg), secs, secs > 0 ? (double)v.last / secs : 0.0);
    return 0;
}
