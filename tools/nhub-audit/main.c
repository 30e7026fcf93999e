/*
 * nhub-audit: the auditors' program over the hub's store, read while it runs.
 *
 *   nhub-audit verify --data DIR [--vkey VKEY | --vkey-file FILE]
 *   nhub-audit prove --data DIR SEQ [--size N]
 *   nhub-audit record --data DIR SEQ
 *   nhub-audit check-proof (--vkey VKEY | --vkey-file FILE) PROOF_FILE --record FILE_OR_LEAFHEX
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
 * check-proof needs no store: a proof file (C2SP tlog-proof), the hub's
 * verifier key obtained from its operators, and the record's bytes (or its
 * leaf hash).
 */
#include "log.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"
#include "store.h"
#include "tlog.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#define RECORD_MAX (64u << 20) /* bytes of a record file check-proof reads */
#define PROOF_FILE_MAX (TLOG_NOTE_MAX + 8192)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: nhub-audit COMMAND [options]\n"
            "\n"
            "Verify the hub's journal and its transparency log, read from its store while\n"
            "it runs (read-only, never blocks the hub), and make and check inclusion proofs.\n"
            "\n"
            "Commands:\n"
            "  verify --data DIR [--vkey VKEY | --vkey-file FILE]\n"
            "        every record in seq order: the hash chain, its leaf in the tree, the\n"
            "        tree's root at every checkpoint and at the end, every checkpoint note\n"
            "        (and its signature, with the hub's verifier key)\n"
            "  prove --data DIR SEQ [--size N]\n"
            "        the inclusion proof of record SEQ in the checkpoint of size N (default:\n"
            "        the latest), as a C2SP tlog-proof file on stdout\n"
            "  record --data DIR SEQ\n"
            "        the bytes of record SEQ (its JournalEvent, what the leaf hashes) on stdout\n"
            "  check-proof (--vkey VKEY | --vkey-file FILE) PROOF_FILE --record FILE_OR_LEAFHEX\n"
            "        check a proof offline: the checkpoint's signature, then that the record\n"
            "        (a file of its bytes, or its leaf hash in 64 hex digits) is in it\n"
            "\n"
            "  --data DIR        the hub's data directory (hub.data_dir)\n"
            "  --vkey VKEY       the hub's verifier key (NAME+HEX8+BASE64)\n"
            "  --vkey-file FILE  the same, read from the first line of FILE\n"
            "  -h, --help        this text\n"
            "\n"
            "Exit status: 0 verified, 1 a problem was found (one line names it),\n"
            "2 usage error or the store or a file cannot be read.\n");
}

/* ---- small helpers ---------------------------------------------------------- */

/* The whole of file `path` into a new buffer (NUL-terminated), at most `max`
 * bytes. Returns it (caller frees) and *len, or NULL. */
static char *read_all(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(max + 1) : NULL;
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = !buf || ferror(f) || n > max;
    if (f)
        fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* A verifier key from its text or a file's first line; NULL with a message. */
static tlog_verifier_t *load_vkey(const char *text, const char *file)
{
    char line[TLOG_VKEY_MAX + 2], err[256];
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f || !fgets(line, sizeof line, f)) {
            fprintf(stderr, "nhub-audit: cannot read a verifier key from %s\n", file);
            if (f)
                fclose(f);
            return NULL;
        }
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        text = line;
    }
    tlog_verifier_t *v = NULL;
    if (tlog_verifier_parse(text, &v, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-audit: verifier key: %s\n", err);
        return NULL;
    }
    return v;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0)
        return -1;
    *out = v;
    return 0;
}

static int unhex32(const char *s, uint8_t out[32])
{
    if (strlen(s) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* The time of record `seq` from its decoded event, ISO 8601 UTC, or "-". */
static const char *record_time(store_reader_t *r, uint64_t seq, char *buf, size_t cap)
{
    const void *ev;
    size_t len;
    snprintf(buf, cap, "-");
    if (seq == 0 || store_journal_get(r, seq, &ev, &len, NULL) != 0)
        return buf;
    Nhub__Journal__V1__JournalEvent *e = nhub__journal__v1__journal_event__unpack(NULL, len, ev);
    if (!e) {
        snprintf(buf, cap, "? (the event does not decode)");
        return buf;
    }
    log_time(buf, cap, e->time_ms);
    nhub__journal__v1__journal_event__free_unpacked(e, NULL);
    return buf;
}

/* ---- verify ------------------------------------------------------------------ */

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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_verify(store_reader_t *r, const tlog_verifier_t *vkey)
{
    verify_t v;
    memset(&v, 0, sizeof v);
    v.r = r;
    v.vkey = vkey;
    tlog_alg_t alg;
    uint8_t root[TLOG_HASH_LEN];
    char err[256], when[64], hex[2 * TLOG_HASH_LEN + 1];
    double t0 = now_s();
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
    double secs = now_s() - t0;
    EVP_MD_CTX_free(v.md);
    tlog_state_free(&v.tree);
    if (rc != 0 && !v.what[0]) {
        fprintf(stderr, "nhub-audit: the store cannot be read: %s\n", nhub_strerror(rc));
        return 2;
    }
    if (rc != 0) {
        printf("FAIL seq %llu at %s: %s\n", (unsigned long long)v.bad_seq,
               record_time(r, v.bad_seq, when, sizeof when), v.what);
        return 1;
    }
    log_hex(hex, sizeof hex, root, TLOG_HASH_LEN);
    printf("OK %llu records, %llu checkpoint%s%s, root %s (%s), %.3f s, %.0f records/s\n",
           (unsigned long long)v.last, (unsigned long long)v.checkpoints,
           v.checkpoints == 1 ? "" : "s", vkey ? " (signatures checked)" : " (signatures not checked: no --vkey)", hex, tlog_alg_name(alg),
           secs, secs > 0 ? (double)v.last / secs : 0.0);
    return 0;
}

/* ---- prove, record ------------------------------------------------------------ */

static int cmd_prove(store_reader_t *r, uint64_t seq, uint64_t size)
{
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
    if (rc == 0 && (!out || tlog_proof_format(seq - 1, proof, len, note, note_len, out, cap,
                                              &out_len) != 0))
        rc = NHUB_ENOMEM;
    if (rc != 0) {
        fprintf(stderr, "nhub-audit: cannot prove record %llu: %s\n", (unsigned long long)seq,
                nhub_strerror(rc));
        free(out);
        return 2;
    }
    fwrite(out, 1, out_len, stdout);
    free(out);
    return 0;
}

static int cmd_record(store_reader_t *r, uint64_t seq)
{
    const void *ev;
    size_t len;
    if (store_journal_get(r, seq, &ev, &len, NULL) != 0) {
        fprintf(stderr, "nhub-audit: no record %llu\n", (unsigned long long)seq);
        return 1;
    }
    return fwrite(ev, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 2;
}

/* ---- check-proof --------------------------------------------------------------- */

/* The leaf the proof must prove: 64 hex digits, or H(0x00 || the file's bytes). */
static int load_leaf(const char *arg, tlog_hasher_t *h, uint8_t leaf[TLOG_HASH_LEN])
{
    size_t len = 0;
    if (unhex32(arg, leaf) == 0)
        return 0;
    char *data = read_all(arg, RECORD_MAX, &len);
    if (!data) {
        fprintf(stderr, "nhub-audit: --record: cannot read %s (nor is it a 64-hex leaf hash)\n",
                arg);
        return 2;
    }
    int rc = tlog_hash_leaf(h, data, len, leaf);
    free(data);
    return rc ? 2 : 0;
}

static int cmd_check_proof(const tlog_verifier_t *vkey, const char *proof_path, const char *record)
{
    size_t len = 0;
    char err[256];
    uint8_t leaf[TLOG_HASH_LEN];
    tlog_checkpoint_t cp;
    tlog_hasher_t *h = NULL;
    tlog_proof_t *p = malloc(sizeof *p);
    char *text = p ? read_all(proof_path, PROOF_FILE_MAX, &len) : NULL;
    int rc = 2;
    if (!text) {
        fprintf(stderr, "nhub-audit: cannot read the proof file %s\n", proof_path);
        goto done;
    }
    if (tlog_hasher_new(TLOG_SHA256, &h, err, sizeof err) != 0 ||
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

/* ---- main ------------------------------------------------------------------------ */

typedef struct args {
    const char *cmd, *data, *vkey, *vkey_file, *record, *seq_text, *size_text, *proof;
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(s, "--data") && more)
            a->data = argv[++i];
        else if (!strcmp(s, "--vkey") && more)
            a->vkey = argv[++i];
        else if (!strcmp(s, "--vkey-file") && more)
            a->vkey_file = argv[++i];
        else if (!strcmp(s, "--record") && more)
            a->record = argv[++i];
        else if (!strcmp(s, "--size") && more)
            a->size_text = argv[++i];
        else if (!strcmp(s, "-h") || !strcmp(s, "--help"))
            return 1;
        else if (!a->cmd && s[0] != '-')
            a->cmd = s;
        else if (a->cmd && !strcmp(a->cmd, "check-proof") && !a->proof && s[0] != '-')
            a->proof = s;
        else if (a->cmd && s[0] != '-' && !a->seq_text &&
                 (!strcmp(a->cmd, "prove") || !strcmp(a->cmd, "record")))
            a->seq_text = s;
        else {
            fprintf(stderr, "nhub-audit: unexpected argument \"%s\"\n", s);
            return -1;
        }
    }
    return 0;
}

/* The command's required arguments are there. */
static int args_complete(const args_t *a)
{
    if (!a->cmd)
        return 0;
    if (!strcmp(a->cmd, "verify"))
        return a->data && !(a->vkey && a->vkey_file);
    if (!strcmp(a->cmd, "prove") || !strcmp(a->cmd, "record"))
        return a->data && a->seq_text;
    if (!strcmp(a->cmd, "check-proof"))
        return (a->vkey || a->vkey_file) && !(a->vkey && a->vkey_file) && a->proof && a->record;
    return 0;
}

int main(int argc, char **argv)
{
    args_t a;
    int prc = parse_args(argc, argv, &a);
    if (prc > 0) {
        usage(stdout);
        return 0;
    }
    uint64_t seq = 0, size = 0;
    if (prc < 0 || !args_complete(&a) || (a.seq_text && parse_u64(a.seq_text, &seq) != 0) ||
        (a.size_text && parse_u64(a.size_text, &size) != 0)) {
        usage(stderr);
        return 2;
    }
    log_setup(LOG_WARN, NULL);
    tlog_verifier_t *vkey = NULL;
    if ((a.vkey || a.vkey_file) && !(vkey = load_vkey(a.vkey, a.vkey_file)))
        return 2;
    if (!strcmp(a.cmd, "check-proof")) {
        int rc = cmd_check_proof(vkey, a.proof, a.record);
        tlog_verifier_free(&vkey);
        return rc;
    }
    char err[1024];
    store_t *s = NULL;
    store_reader_t *r = NULL;
    int rc = 2;
    if (store_open_reader(a.data, &s, err, sizeof err) != 0)
        fprintf(stderr, "nhub-audit: %s\n", err);
    else if (store_reader_open(s, &r) != 0)
        fprintf(stderr, "nhub-audit: cannot read the store in %s\n", a.data);
    else if (!strcmp(a.cmd, "verify"))
        rc = cmd_verify(r, vkey);
    else if (!strcmp(a.cmd, "prove"))
        rc = cmd_prove(r, seq, size);
    else
        rc = cmd_record(r, seq);
    store_reader_close(&r);
    store_close(&s);
    tlog_verifier_free(&vkey);
    return rc;
}
