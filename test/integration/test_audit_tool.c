/*
 * test_audit_tool.c: nhub-audit over the store of a real nhubd. verify
 * passes beside the running hub; then, on copies of the stopped hub's data
 * directory altered through LMDB directly (as an attacker with the disk
 * would), it fails and names the record or checkpoint each time. prove and
 * check-proof round-trip, and a proof does not prove another record;
 * prove and record by msg_id; consistency proofs between two checkpoints
 * check, and fail on a changed byte or another key; replay marks a sealed
 * envelope.
 */
#include "harness.h"
#include "keys.h"
#include "nhub_journal.pb-c.h"
#include "nhub.h"
#include "proc.h"
#include "store.h"
#include "tlog.h"

#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define EVERY 10 /* audit.checkpoint_every */
#define SENT 25
#define WAIT_MS 10000
#define ORIGIN "nhub.test/hub"

typedef struct fixture {
    th_hub_t hub;
    keys_file_t *key;
    char data[400];      /* the hub's data directory */
    char vkey_file[400]; /* its verifier key, from the test's own copy of the key */
    uint64_t first_cp;   /* the smallest checkpoint size */
    uint64_t records;
} fixture_t;

typedef th_run_t run_t;

static size_t read_bytes(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    return n;
}

#define AUDIT(fx, r, ...)                                                                          \
    th_run_tool("nhub-audit", (fx)->hub.dir, NULL, (const char *const[]){__VA_ARGS__, NULL}, r)
#define AUDIT_TO(fx, r, file, ...)                                                                 \
    th_run_tool("nhub-audit", (fx)->hub.dir, file, (const char *const[]){__VA_ARGS__, NULL}, r)

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || th_hub_init(&fx->hub, NULL) != 0 ||
        th_hub_signing_key(&fx->hub, ORIGIN, fx->vkey_file, sizeof fx->vkey_file, &fx->key) != 0)
        return -1;
    snprintf(fx->data, sizeof fx->data, "%s/hub-data", fx->hub.dir);
    snprintf(fx->hub.http, sizeof fx->hub.http,
             "audit:\n  origin: \"" ORIGIN "\"\n  checkpoint_every: %d\n"
             "  checkpoint_interval: 1h\n%s",
             EVERY, TH_HTTP_YAML);
    if (th_hub_start(&fx->hub) != 0) {
        th_log_dump(&fx->hub, stderr);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    keys_free(&fx->key);
    th_hub_stop(&fx->hub);
    th_hub_cleanup(&fx->hub);
    free(fx);
    return 0;
}

/* ---- raw LMDB, as an attacker with the disk has it ----------------------------------- */

static MDB_env *raw_open(const char *dir, MDB_txn **txn, const char *db, MDB_dbi *dbi)
{
    MDB_env *env = NULL;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 0), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, txn), 0);
    assert_int_equal(mdb_dbi_open(*txn, db, 0, dbi), 0);
    return env;
}

static size_t raw_get(const char *dir, const char *db, const void *key, size_t klen, void *buf,
                      size_t cap)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_env *env = raw_open(dir, &txn, db, &dbi);
    MDB_val k = {klen, (void *)key}, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_true(v.mv_size <= cap);
    memcpy(buf, v.mv_data, v.mv_size);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return v.mv_size;
}

/* Put key -> val, or delete key when val is NULL. */
static void raw_put(const char *dir, const char *db, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_env *env = raw_open(dir, &txn, db, &dbi);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    if (val)
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    else
        assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* A fresh copy of the (stopped) hub's data directory, named for `what`. */
static void copy_data(const fixture_t *fx, const char *what, char *out, size_t cap)
{
    char cmd[1200];
    snprintf(out, cap, "%s/copy-%s", fx->hub.dir, what);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", fx->data, out);
    assert_int_equal(system(cmd), 0);
}

/* verify on `dir` fails (exit 1) with a line naming seq `seq` and saying `want`. */
static void assert_verify_fails(const fixture_t *fx, const char *dir, uint64_t seq,
                                const char *want)
{
    run_t r;
    char head[64];
    AUDIT(fx, &r, "verify", "--data", dir, "--vkey-file", fx->vkey_file);
    snprintf(head, sizeof head, "FAIL seq %llu at ", (unsigned long long)seq);
    if (r.status != 1 || strncmp(r.out, head, strlen(head)) != 0 || !strstr(r.out, want))
        fprintf(stderr, "verify %s: status %d, out: %s, err: %s\nwanted: %s... %s\n", dir, r.status,
                r.out, r.err, head, want);
    assert_int_equal(r.status, 1);
    assert_memory_equal(r.out, head, strlen(head));
    assert_non_null(strstr(r.out, want));
    const char *nl = strchr(r.out, '\n'); /* one line */
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_verify_passes_beside_the_running_hub(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(th_send_pushes(&fx->hub, "110000", "440000", SENT, WAIT_MS),
                     0); /* 440000 not connected: they queue */
    run_t r;
    AUDIT(fx, &r, "verify", "--data", fx->data, "--vkey-file", fx->vkey_file);
    if (r.status != 0)
        fprintf(stderr, "verify: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.out, "OK ", 3);
    assert_non_null(strstr(r.out, "records/s"));
    long long records = th_number_after(r.out, "OK ");
    long long checkpoints = th_number_after(r.out, "records, ");
    assert_true(records > SENT);
    assert_true(checkpoints >= 1); /* the one of the first EVERY records, at least */

    /* Without a key it says the signatures were not checked. */
    AUDIT(fx, &r, "verify", "--data", fx->data);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "signatures not checked"));
    /* Usage and IO errors are 2. */
    AUDIT(fx, &r, "verify");
    assert_int_equal(r.status, 2);
    AUDIT(fx, &r, "verify", "--data", "/nonexistent/nhub-audit");
    assert_int_equal(r.status, 2);
}

/* The store's first checkpoint size and its records count, from a reader. */
static void read_shape(fixture_t *fx)
{
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char err[256];
    const char *note;
    size_t len;
    assert_int_equal(store_open_reader(fx->data, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    assert_int_equal(store_checkpoint_next(rd, 0, &note, &len, &fx->first_cp), 0);
    assert_int_equal(store_journal_last(rd, &fx->records), 0);
    store_reader_close(&rd);
    store_close(&st);
}

static void test_prove_and_check_proof_round_trip(void **state)
{
    fixture_t *fx = *state;
    char proof[400], rec5[400], rec6[400];
    snprintf(proof, sizeof proof, "%s/5.proof", fx->hub.dir);
    snprintf(rec5, sizeof rec5, "%s/5.record", fx->hub.dir);
    snprintf(rec6, sizeof rec6, "%s/6.record", fx->hub.dir);
    run_t r;
    AUDIT_TO(fx, &r, proof, "prove", "--data", fx->data, "5");
    assert_int_equal(r.status, 0);
    char text[8192];
    th_read_text(proof, text, sizeof text);
    assert_memory_equal(text, "c2sp.org/tlog-proof@v1\nindex 4\n", 31);
    assert_non_null(strstr(text, "\n\n" ORIGIN "\n"));
    AUDIT_TO(fx, &r, rec5, "record", "--data", fx->data, "5");
    assert_int_equal(r.status, 0);
    AUDIT_TO(fx, &r, rec6, "record", "--data", fx->data, "6");
    assert_int_equal(r.status, 0);

    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", rec5);
    if (r.status != 0)
        fprintf(stderr, "check-proof: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.out, "OK record 5 ", 12);
    /* The leaf hash given instead of the record: the same. */
    char leafhex[65], data[4096];
    uint8_t leaf[32];
    const uint8_t zero = 0;
    FILE *f = fopen(rec5, "rb");
    assert_non_null(f);
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    th_sha256(&zero, 1, data, n, NULL, 0, leaf);
    for (int i = 0; i < 32; i++)
        snprintf(leafhex + 2 * i, 3, "%02x", leaf[i]);
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", leafhex);
    assert_int_equal(r.status, 0);

    /* Another record is not proven by it. */
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", rec6);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "FAIL record 5 is not proven"));
    /* A proof in a checkpoint of an explicit size (the first: the hub commits in
     * batches, so it covers EVERY records or a few more); one of no checkpoint's
     * size is refused. */
    read_shape(fx);
    char size[32];
    snprintf(size, sizeof size, "%llu", (unsigned long long)fx->first_cp);
    AUDIT_TO(fx, &r, proof, "prove", "--data", fx->data, "5", "--size", size);
    assert_int_equal(r.status, 0);
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", rec5);
    assert_int_equal(r.status, 0);
    AUDIT(fx, &r, "prove", "--data", fx->data, "5", "--size", "3");
    assert_int_equal(r.status, 1);
    /* Another key: the signature does not verify. */
    keys_file_t *other = NULL;
    tlog_signer_t *s = NULL;
    char err[256], vkey[TLOG_VKEY_MAX];
    assert_int_equal(keys_generate("000000", KEYS_ED25519, 1764000000000, &other), 0);
    assert_int_equal(tlog_signer_new(ORIGIN, other, &s, err, sizeof err), 0);
    assert_int_equal(tlog_signer_vkey(s, vkey, sizeof vkey), 0);
    AUDIT(fx, &r, "check-proof", "--vkey", vkey, proof, "--record", rec5);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "signature does not verify with key " ORIGIN));
    tlog_signer_free(&s);
    keys_free(&other);
}

/* The seq and msg_id (hex) of the journal's first ACCEPTED record. */
typedef struct first_accepted {
    uint64_t walked, seq;
    char hex[33];
} first_accepted_t;

static void find_first_accepted(const th_journal_event_t *ev, void *arg)
{
    first_accepted_t *f = arg;
    f->walked++;
    if (f->seq || ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED || ev->msg_id.len != 16)
        return;
    f->seq = f->walked;
    for (int i = 0; i < 16; i++)
        snprintf(f->hex + 2 * i, 3, "%02X", ev->msg_id.data[i]); /* upper case works too */
}

static void test_prove_and_record_by_msg_id(void **state)
{
    fixture_t *fx = *state;
    first_accepted_t f;
    memset(&f, 0, sizeof f);
    assert_int_equal(th_journal_foreach(&fx->hub, find_first_accepted, &f), 0);
    assert_true(f.seq > 0);
    char seq[32], by_seq[400], by_id[400], a[8192], b[8192];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)f.seq);
    snprintf(by_seq, sizeof by_seq, "%s/seq.record", fx->hub.dir);
    snprintf(by_id, sizeof by_id, "%s/id.record", fx->hub.dir);
    run_t r;
    AUDIT_TO(fx, &r, by_seq, "record", "--data", fx->data, seq);
    assert_int_equal(r.status, 0);
    AUDIT_TO(fx, &r, by_id, "record", "--data", fx->data, f.hex);
    assert_int_equal(r.status, 0);
    size_t na = read_bytes(by_seq, a, sizeof a), nb = read_bytes(by_id, b, sizeof b);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);

    char proof[400], want[64];
    snprintf(proof, sizeof proof, "%s/id.proof", fx->hub.dir);
    AUDIT_TO(fx, &r, proof, "prove", "--data", fx->data, f.hex);
    assert_int_equal(r.status, 0);
    th_read_text(proof, a, sizeof a);
    snprintf(want, sizeof want, "c2sp.org/tlog-proof@v1\nindex %llu\n",
             (unsigned long long)(f.seq - 1));
    assert_memory_equal(a, want, strlen(want));
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", by_id);
    assert_int_equal(r.status, 0);

    /* A msg_id the journal does not have: 1; neither a seq nor an id: 2. */
    AUDIT(fx, &r, "prove", "--data", fx->data, "00000000000000000000000000000001");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "no message 00000000000000000000000000000001"));
    AUDIT(fx, &r, "record", "--data", fx->data, "12x");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "neither a SEQ"));
}

/* Flip one byte of file `path` at the first occurrence of `after` plus `off`. */
static void flip_in_file(const char *path, const char *after, size_t off, const char *to)
{
    char text[16384];
    th_read_text(path, text, sizeof text);
    char *p = strstr(text, after);
    assert_non_null(p);
    p[strlen(after) + off] = p[strlen(after) + off] == to[0] ? to[1] : to[0];
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void assert_consistency_fails(const fixture_t *fx, const char *file, const char *want)
{
    run_t r;
    AUDIT(fx, &r, "check-consistency", "--vkey-file", fx->vkey_file, file);
    if (r.status != 1 || !strstr(r.out, want))
        fprintf(stderr, "check-consistency %s: status %d, out: %s, err: %s\nwanted: %s\n", file,
                r.status, r.out, r.err, want);
    assert_int_equal(r.status, 1);
    assert_memory_equal(r.out, "FAIL ", 5);
    assert_non_null(strstr(r.out, want));
}

static void test_consistency_between_two_checkpoints(void **state)
{
    fixture_t *fx = *state;
    /* However the hub grouped the first SENT into commits, EVERY + 1 more
     * records, each ACKed (committed), pass the next checkpoint. */
    read_shape(fx);
    assert_int_equal(th_send_pushes(&fx->hub, "110000", "440000", EVERY + 1, WAIT_MS), 0);
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char err[256], old_size[32], new_size[32], kept[400], proof[400], bad[400];
    const char *note;
    size_t len;
    uint64_t latest = 0;
    assert_int_equal(store_open_reader(fx->data, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    assert_int_equal(store_checkpoint_get(rd, 0, &note, &len, &latest), 0);
    /* The first checkpoint as an auditor kept it, in a file. */
    snprintf(kept, sizeof kept, "%s/first.checkpoint", fx->hub.dir);
    assert_int_equal(store_checkpoint_get(rd, fx->first_cp, &note, &len, &latest), 0);
    FILE *f = fopen(kept, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(note, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(store_checkpoint_get(rd, 0, &note, &len, &latest), 0);
    store_reader_close(&rd);
    store_close(&st);
    assert_true(latest > fx->first_cp);
    snprintf(old_size, sizeof old_size, "%llu", (unsigned long long)fx->first_cp);
    snprintf(new_size, sizeof new_size, "%llu", (unsigned long long)latest);

    run_t r;
    snprintf(proof, sizeof proof, "%s/c.proof", fx->hub.dir);
    AUDIT_TO(fx, &r, proof, "consistency", "--data", fx->data, old_size, new_size);
    if (r.status != 0)
        fprintf(stderr, "consistency: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    char text[16384], want[128];
    th_read_text(proof, text, sizeof text);
    snprintf(want, sizeof want, "nhub.audit/consistency-proof@v1\nhash sha256\nold %s\nnew %s\n",
             old_size, new_size);
    assert_memory_equal(text, want, strlen(want));
    AUDIT(fx, &r, "check-consistency", "--vkey-file", fx->vkey_file, proof);
    if (r.status != 0)
        fprintf(stderr, "check-consistency: %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof want, "OK the tree of size %s extends the one of size %s", new_size,
             old_size);
    assert_memory_equal(r.out, want, strlen(want));

    /* The same from the kept checkpoint file and "latest". */
    AUDIT_TO(fx, &r, proof, "consistency", "--data", fx->data, kept, "latest");
    assert_int_equal(r.status, 0);
    AUDIT(fx, &r, "check-consistency", "--vkey-file", fx->vkey_file, proof);
    assert_int_equal(r.status, 0);

    /* A byte of the old note's root, of the new note's root, of a proof hash. */
    snprintf(bad, sizeof bad, "%s/bad.proof", fx->hub.dir);
    copy_file(proof, bad);
    snprintf(want, sizeof want, "\n\n" ORIGIN "\n%s\n", old_size);
    flip_in_file(bad, want, 0, "AB");
    assert_consistency_fails(fx, bad, "the old checkpoint: signature does not verify");
    copy_file(proof, bad);
    snprintf(want, sizeof want, "\n\n" ORIGIN "\n%s\n", new_size);
    flip_in_file(bad, want, 3, "AB");
    assert_consistency_fails(fx, bad, "the new checkpoint: signature does not verify");
    copy_file(proof, bad);
    snprintf(want, sizeof want, "\nnew %s\n", new_size);
    flip_in_file(bad, want, 5, "AB");
    assert_consistency_fails(fx, bad, "does not extend the one of size");
    /* Sizes in the header that are not the notes'. */
    copy_file(proof, bad);
    flip_in_file(bad, "\nold ", 0, "12");
    assert_consistency_fails(fx, bad, "the file says");

    /* Another key: neither signature verifies. */
    keys_file_t *other = NULL;
    tlog_signer_t *s = NULL;
    char vkey[TLOG_VKEY_MAX];
    assert_int_equal(keys_generate("000000", KEYS_ED25519, 1764000000000, &other), 0);
    assert_int_equal(tlog_signer_new(ORIGIN, other, &s, err, sizeof err), 0);
    assert_int_equal(tlog_signer_vkey(s, vkey, sizeof vkey), 0);
    AUDIT(fx, &r, "check-consistency", "--vkey", vkey, proof);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "signature does not verify with key " ORIGIN));
    tlog_signer_free(&s);
    keys_free(&other);

    /* A kept checkpoint the store's tree does not have: the log was rewritten. */
    copy_file(kept, bad);
    flip_in_file(bad, "\n", strlen(old_size) + 1, "AB");
    AUDIT(fx, &r, "consistency", "--data", fx->data, bad, "latest");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "its root differs from the store's tree"));
    /* Usage: sizes the wrong way round, no such checkpoint. */
    AUDIT(fx, &r, "consistency", "--data", fx->data, new_size, old_size);
    assert_int_equal(r.status, 2);
    AUDIT(fx, &r, "consistency", "--data", fx->data, "3", new_size);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "no checkpoint of size 3"));
}

/* A hub whose tree is hashed with SM3 (audit.tree_hash: sm3): the
 * consistency proof file names the hash and checks with it; an inclusion
 * proof checks with --hash sm3. */
static void test_consistency_of_an_sm3_tree(void **state)
{
    fixture_t *fx = *state;
    th_hub_t h;
    assert_int_equal(th_hub_init(&h, NULL), 0);
    memcpy(h.security, fx->hub.security, sizeof h.security); /* the same signing key */
    snprintf(h.http, sizeof h.http,
             "audit:\n  origin: \"" ORIGIN "\"\n  checkpoint_every: %d\n"
             "  checkpoint_interval: 1h\n  tree_hash: sm3\n",
             EVERY);
    if (th_hub_start(&h) != 0)
        th_log_dump(&h, stderr);
    assert_true(h.pid > 0);
    /* Two checkpoints at least, however the hub groups commits: EVERY + 1
     * records ACKed after the first checkpoint's pass the next. */
    assert_int_equal(th_send_pushes(&h, "110000", "440000", SENT, WAIT_MS), 0);
    assert_int_equal(th_send_pushes(&h, "110000", "440000", EVERY + 1, WAIT_MS), 0);
    char data[400], proof[400], old_size[32];
    snprintf(data, sizeof data, "%s/hub-data", h.dir);
    snprintf(proof, sizeof proof, "%s/sm3.proof", h.dir);
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char err[256];
    const char *note;
    size_t len;
    uint64_t first = 0;
    tlog_alg_t alg = 0;
    assert_int_equal(store_open_reader(data, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    assert_int_equal(store_checkpoint_next(rd, 0, &note, &len, &first), 0);
    assert_int_equal(store_tree_info(rd, &(uint64_t){0}, NULL, &alg), 0);
    assert_int_equal(alg, TLOG_SM3);
    store_reader_close(&rd);
    store_close(&st);
    snprintf(old_size, sizeof old_size, "%llu", (unsigned long long)first);

    run_t r;
    AUDIT_TO(fx, &r, proof, "consistency", "--data", data, old_size, "latest");
    assert_int_equal(r.status, 0);
    char text[16384];
    th_read_text(proof, text, sizeof text);
    assert_memory_equal(text, "nhub.audit/consistency-proof@v1\nhash sm3\n", 41);
    AUDIT(fx, &r, "check-consistency", "--vkey-file", fx->vkey_file, proof);
    if (r.status != 0)
        fprintf(stderr, "check-consistency (sm3): %s%s", r.out, r.err);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "(" ORIGIN ", sm3)"));
    /* Read as SHA-256, the same proof does not join the roots. */
    char *hash = strstr(text, "hash sm3\n");
    memmove(hash + 12, hash + 9, strlen(hash + 9) + 1);
    memcpy(hash, "hash sha256\n", 12);
    FILE *f = fopen(proof, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    AUDIT(fx, &r, "check-consistency", "--vkey-file", fx->vkey_file, proof);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "does not extend"));

    /* An inclusion proof in it checks with --hash sm3, not without. */
    char rec[400];
    snprintf(proof, sizeof proof, "%s/sm3-5.proof", h.dir);
    snprintf(rec, sizeof rec, "%s/sm3-5.record", h.dir);
    AUDIT_TO(fx, &r, proof, "prove", "--data", data, "5");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "--hash sm3"));
    AUDIT_TO(fx, &r, rec, "record", "--data", data, "5");
    assert_int_equal(r.status, 0);
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", rec, "--hash",
          "sm3");
    assert_int_equal(r.status, 0);
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", rec);
    assert_int_equal(r.status, 1);
    AUDIT(fx, &r, "check-proof", "--vkey-file", fx->vkey_file, proof, "--record", rec, "--hash",
          "md5");
    assert_int_equal(r.status, 2);
    assert_int_equal(th_hub_stop(&h), 0);
    th_hub_cleanup(&h);
}

static void test_verify_names_each_alteration(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(th_hub_stop(&fx->hub), 0);
    read_shape(fx);
    assert_true(fx->first_cp >= EVERY && fx->first_cp < fx->records);
    char dir[512], key[8], val[4096], other_key[8], other_val[4096];
    run_t r;

    /* The stopped store still verifies. */
    AUDIT(fx, &r, "verify", "--data", fx->data, "--vkey-file", fx->vkey_file);
    assert_int_equal(r.status, 0);

    /* One byte of record 7's event. */
    copy_data(fx, "flip", dir, sizeof dir);
    be64((uint8_t *)key, 7);
    size_t len = raw_get(dir, "journal", key, 8, val, sizeof val);
    val[len - 1] ^= 0x01;
    raw_put(dir, "journal", key, 8, val, len);
    assert_verify_fails(fx, dir, 7, "chain hash does not follow record 6");

    /* Record 12 deleted. */
    copy_data(fx, "delete", dir, sizeof dir);
    be64((uint8_t *)key, 12);
    raw_put(dir, "journal", key, 8, NULL, 0);
    assert_verify_fails(fx, dir, 12, "record missing: seq 12 after 11");

    /* The last record deleted: the tree still counts it. */
    copy_data(fx, "delete-last", dir, sizeof dir);
    be64((uint8_t *)key, fx->records);
    raw_put(dir, "journal", key, 8, NULL, 0);
    char want[128];
    snprintf(want, sizeof want, "record missing: seq %llu after %llu",
             (unsigned long long)fx->records, (unsigned long long)(fx->records - 1));
    assert_verify_fails(fx, dir, fx->records, want);

    /* Records 3 and 4 swapped. */
    copy_data(fx, "swap", dir, sizeof dir);
    be64((uint8_t *)key, 3);
    be64((uint8_t *)other_key, 4);
    len = raw_get(dir, "journal", key, 8, val, sizeof val);
    size_t other_len = raw_get(dir, "journal", other_key, 8, other_val, sizeof other_val);
    raw_put(dir, "journal", key, 8, other_val, other_len);
    raw_put(dir, "journal", other_key, 8, val, len);
    assert_verify_fails(fx, dir, 3, "chain hash does not follow record 2");

    /* Record 9's leaf in the stored tree. */
    copy_data(fx, "leaf", dir, sizeof dir);
    uint64_t pos;
    assert_int_equal(tlog_stored_index(0, 8, &pos), 0);
    be64((uint8_t *)key, pos);
    len = raw_get(dir, "tree", key, 8, val, sizeof val);
    val[0] ^= 0x01;
    raw_put(dir, "tree", key, 8, val, len);
    assert_verify_fails(fx, dir, 9, "leaf differs from the stored tree");

    /* The first checkpoint's root line changed. */
    char cpname[64];
    snprintf(cpname, sizeof cpname, "checkpoint %llu: root differs",
             (unsigned long long)fx->first_cp);
    copy_data(fx, "root", dir, sizeof dir);
    be64((uint8_t *)key, fx->first_cp);
    len = raw_get(dir, "checkpoints", key, 8, val, sizeof val - 1);
    val[len] = '\0';
    char *root_line = strchr(strchr(val, '\n') + 1, '\n') + 1;
    root_line[0] = root_line[0] == 'A' ? 'B' : 'A';
    raw_put(dir, "checkpoints", key, 8, val, len);
    assert_verify_fails(fx, dir, fx->first_cp, cpname);

    /* The first checkpoint re-signed with another key of the same name. */
    copy_data(fx, "resign", dir, sizeof dir);
    len = raw_get(dir, "checkpoints", key, 8, val, sizeof val - 1);
    val[len] = '\0';
    size_t body = (size_t)(strstr(val, "\n\n") - val) + 1;
    keys_file_t *other = NULL;
    tlog_signer_t *s = NULL;
    char err[256], resigned[4096];
    size_t resigned_len = 0;
    assert_int_equal(keys_generate("000000", KEYS_ED25519, 1764000000000, &other), 0);
    assert_int_equal(tlog_signer_new(ORIGIN, other, &s, err, sizeof err), 0);
    assert_int_equal(tlog_note_sign(s, val, body, resigned, sizeof resigned, &resigned_len), 0);
    raw_put(dir, "checkpoints", key, 8, resigned, resigned_len);
    snprintf(cpname, sizeof cpname, "checkpoint %llu: signature does not verify with key " ORIGIN,
             (unsigned long long)fx->first_cp);
    assert_verify_fails(fx, dir, fx->first_cp, cpname);
    /* Without the key, the re-signed store is only unchecked, not wrong. */
    AUDIT(fx, &r, "verify", "--data", dir);
    assert_int_equal(r.status, 0);
    tlog_signer_free(&s);
    keys_free(&other);
}

/* replay on a copy of the stopped store where record `seq`'s envelope is
 * sealed (its first byte 0x07, as payloads encrypted at rest begin): it is
 * marked, not failed on; an unsealed payload of a type no schema has
 * (nhub.test.v1.Counter) comes in base64. */
static void test_replay_marks_sealed_envelopes_and_unknown_types(void **state)
{
    fixture_t *fx = *state;
    first_accepted_t f;
    memset(&f, 0, sizeof f);
    assert_int_equal(th_journal_foreach(&fx->hub, find_first_accepted, &f), 0);
    char lower[33], dir[512], key[8], val[4096];
    for (int i = 0; i < 32; i++)
        lower[i] = (char)(f.hex[i] >= 'A' ? f.hex[i] - 'A' + 'a' : f.hex[i]);
    lower[32] = '\0';
    run_t r;
    AUDIT(fx, &r, "replay", "--data", fx->data, "--msg", lower, "--payloads");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"payload_base64\":\"YXVkaXQ=\"")); /* "audit" */
    assert_null(strstr(r.out, "sealed"));

    copy_data(fx, "sealed", dir, sizeof dir);
    be64((uint8_t *)key, f.seq);
    size_t len = raw_get(dir, "journal", key, 8, val, sizeof val);
    uint8_t head[18] = {0x0a, 0x10}; /* the envelope's first field: its msg_id */
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(lower + 2 * i, "%2x", &v);
        head[2 + i] = (uint8_t)v;
    }
    uint8_t *env = memmem(val + STORE_HASH_LEN, len - STORE_HASH_LEN, head, sizeof head);
    assert_non_null(env);
    env[0] = 0x07;
    raw_put(dir, "journal", key, 8, val, len);
    AUDIT(fx, &r, "replay", "--data", dir, "--msg", lower, "--payloads");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"sealed\":true"));
    assert_non_null(strstr(r.out, "\"payload\":\"sealed\""));
    AUDIT(fx, &r, "trace", "--data", dir, lower);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "(sealed)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_passes_beside_the_running_hub),
        cmocka_unit_test(test_prove_and_check_proof_round_trip),
        cmocka_unit_test(test_prove_and_record_by_msg_id),
        cmocka_unit_test(test_consistency_between_two_checkpoints),
        cmocka_unit_test(test_consistency_of_an_sm3_tree),
        cmocka_unit_test(test_verify_names_each_alteration),
        cmocka_unit_test(test_replay_marks_sealed_envelopes_and_unknown_types),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
