/*
 * test_store.c: the LMDB store (broker/store.h).
 *
 * Every test gets a fresh directory from mkdtemp under /tmp and removes it
 * afterwards. Tampering tests close the store and edit the journal with
 * liblmdb directly, as an attacker or a bad disk would, then reopen it and
 * expect store_journal_verify to name the broken record. The growth tests
 * use a 1 MiB map limited to 4 MiB and ~100 KiB journal events, so the map
 * fills after a handful of writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"
#include "store.h"

#include <ftw.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (UINT64_C(1) << 20)
#define BIG_EVENT (100 * 1024)

typedef struct fx {
    char tmp[64];  /* the mkdtemp directory */
    char dir[128]; /* the store directory inside it (store_open creates it) */
    store_t *st;
} fx_t;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->tmp, sizeof fx->tmp, "/tmp/nhub-test-store-XXXXXX");
    if (!mkdtemp(fx->tmp)) {
        free(fx);
        return -1;
    }
    snprintf(fx->dir, sizeof fx->dir, "%s/db", fx->tmp);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    store_close(&fx->st);
    rm_rf(fx->tmp);
    free(fx);
    return 0;
}

static store_t *open_sized(fx_t *fx, uint64_t map, uint64_t max)
{
    char err[256] = "";
    int rc = store_open(fx->dir, map, max, &fx->st, err, sizeof err);
    if (rc != 0)
        print_error("store_open: %d %s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_non_null(fx->st);
    return fx->st;
}

static store_t *open_ok(fx_t *fx)
{
    return open_sized(fx, 4 * MIB, 16 * MIB);
}

static void reopen(fx_t *fx)
{
    store_close(&fx->st);
    assert_null(fx->st);
    open_ok(fx);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void make_id(uint8_t id[16], unsigned n)
{
    memset(id, 0xA5, 16);
    put_be64(id + 8, n);
}

static store_txn_t *begin(store_t *st)
{
    store_txn_t *t = NULL;
    assert_int_equal(store_begin(st, &t), 0);
    assert_non_null(t);
    return t;
}

static void commit(store_txn_t **t)
{
    assert_int_equal(store_commit(t), 0);
    assert_null(*t);
}

static uint64_t append_text(store_txn_t *t, const char *text)
{
    uint64_t seq = 0;
    assert_int_equal(store_journal_append(t, text, strlen(text), &seq), 0);
    return seq;
}

/* Append event "event-<i>" for i in 1..n, one transaction, and commit. */
static void append_events(store_t *st, unsigned n)
{
    store_txn_t *t = begin(st);
    for (unsigned i = 1; i <= n; i++) {
        char ev[32];
        snprintf(ev, sizeof ev, "event-%u", i);
        append_text(t, ev);
    }
    commit(&t);
}

static store_reader_t *reader(store_t *st)
{
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_open(st, &r), 0);
    assert_non_null(r);
    return r;
}

static uint64_t journal_last(store_t *st)
{
    store_reader_t *r = reader(st);
    uint64_t last = 99;
    assert_int_equal(store_journal_last(r, &last), 0);
    store_reader_close(&r);
    assert_null(r);
    return last;
}

static int verify(store_t *st, uint64_t *n, uint64_t *bad)
{
    store_reader_t *r = reader(st);
    int rc = store_journal_verify(r, n, bad);
    store_reader_close(&r);
    return rc;
}

static uint64_t queue_count(store_t *st, const char *region)
{
    store_reader_t *r = reader(st);
    uint64_t n = 0;
    assert_int_equal(store_queue_count(r, region, &n), 0);
    store_reader_close(&r);
    return n;
}

/* Raw access to a database of a closed store, as an attacker or a bad disk
 * would have it. raw_get copies the value into buf (cap bytes) and returns
 * its length; raw_put with val NULL deletes the key. */
static MDB_env *raw_open(const char *dir, MDB_txn **txn, const char *db, MDB_dbi *dbi)
{
    MDB_env *env = NULL;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
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

/* Flip one bit at `offset` of journal record `seq`, or delete the record. */
static void tamper_journal(const char *dir, uint64_t seq, size_t offset, int delete_it)
{
    uint8_t key[8], val[256];
    put_be64(key, seq);
    if (delete_it) {
        raw_put(dir, "journal", key, 8, NULL, 0);
        return;
    }
    size_t len = raw_get(dir, "journal", key, 8, val, sizeof val);
    assert_true(offset < len);
    val[offset] ^= 0x01;
    raw_put(dir, "journal", key, 8, val, len);
}

/* SHA-256(prev || be64(seq) || event), as nhub_journal.proto defines the chain. */
static void chain_hash(const uint8_t prev[32], uint64_t seq, const void *ev, size_t len,
                       uint8_t out[32])
{
    uint8_t buf[32 + 8 + 64];
    assert_true(len <= 64);
    memcpy(buf, prev, 32);
    put_be64(buf + 32, seq);
    memcpy(buf + 40, ev, len);
    unsigned int outlen = 0;
    assert_int_equal(EVP_Digest(buf, 40 + len, out, &outlen, EVP_sha256(), NULL), 1);
    assert_int_equal(outlen, 32);
}

/* ---- open ------------------------------------------------------------------ */

static void test_open_creates_private_dir_and_reopen_keeps_hub_id(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    struct stat sb;
    assert_int_equal(stat(fx->dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(store_map_size(fx->st), 4 * MIB);

    uint8_t id[STORE_ID_LEN], zero[STORE_ID_LEN] = {0};
    memcpy(id, store_hub_id(fx->st), sizeof id);
    assert_memory_not_equal(id, zero, sizeof id);
    reopen(fx);
    assert_memory_equal(store_hub_id(fx->st), id, sizeof id);
    reopen(fx);
    assert_memory_equal(store_hub_id(fx->st), id, sizeof id);

    /* Another store gets another id. */
    char other[160];
    snprintf(other, sizeof other, "%s/other", fx->tmp);
    store_t *st2 = NULL;
    char err[256];
    assert_int_equal(store_open(other, MIB, MIB, &st2, err, sizeof err), 0);
    assert_memory_not_equal(store_hub_id(st2), id, sizeof id);
    store_close(&st2);
    assert_null(st2);
    store_close(&st2); /* NULL is accepted */
}

static void test_open_creates_missing_parents(void **state)
{
    fx_t *fx = *state;
    char dir[160], err[256] = "";
    snprintf(dir, sizeof dir, "%s/no/such/parent", fx->tmp);
    store_t *st = NULL;
    assert_int_equal(store_open(dir, MIB, MIB, &st, err, sizeof err), 0);
    assert_non_null(st);
    store_close(&st);
}

static void test_open_on_a_regular_file_fails_with_eio_and_names_it(void **state)
{
    fx_t *fx = *state;
    char path[160], err[256] = "";
    snprintf(path, sizeof path, "%s/file", fx->tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    store_t *st = (store_t *)&st;
    assert_int_equal(store_open(path, MIB, MIB, &st, err, sizeof err), NHUB_EIO);
    assert_null(st);
    assert_non_null(strstr(err, path));
}

/* ---- journal --------------------------------------------------------------- */

static void test_empty_journal_has_last_zero_and_verifies(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    assert_int_equal(journal_last(fx->st), 0);
    uint64_t n = 9, bad = 9;
    assert_int_equal(verify(fx->st, &n, &bad), 0);
    assert_int_equal(n, 0);
    assert_int_equal(bad, 0);
    store_reader_t *r = reader(fx->st);
    const void *ev;
    size_t len;
    assert_int_equal(store_journal_get(r, 1, &ev, &len, NULL), NHUB_ENOTFOUND);
    store_reader_close(&r);
}

static void test_journal_append_numbers_from_one_with_sha256_chain(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    const char *events[] = {"first", "second", "third"};
    store_txn_t *t = begin(fx->st);
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(append_text(t, events[i]), i + 1);
    commit(&t);
    assert_int_equal(journal_last(fx->st), 3);

    store_reader_t *r = reader(fx->st);
    uint8_t prev[32] = {0}, want[32];
    for (uint64_t seq = 1; seq <= 3; seq++) {
        const void *ev = NULL;
        const uint8_t *hash = NULL;
        size_t len = 0;
        assert_int_equal(store_journal_get(r, seq, &ev, &len, &hash), 0);
        assert_int_equal(len, strlen(events[seq - 1]));
        assert_memory_equal(ev, events[seq - 1], len);
        chain_hash(prev, seq, events[seq - 1], len, want);
        assert_memory_equal(hash, want, 32);
        memcpy(prev, want, 32);
    }
    uint64_t n = 0, bad = 9;
    assert_int_equal(store_journal_verify(r, &n, &bad), 0);
    assert_int_equal(n, 3);
    assert_int_equal(bad, 0);
    store_reader_close(&r);
}

static void test_flipped_event_byte_fails_verify_at_its_seq(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 5);
    store_close(&fx->st);
    tamper_journal(fx->dir, 3, STORE_HASH_LEN + 2, 0); /* a byte of "event-3" */
    open_ok(fx);
    uint64_t n = 0, bad = 0;
    assert_int_equal(verify(fx->st, &n, &bad), NHUB_EMALFORMED);
    assert_int_equal(bad, 3);
    assert_int_equal(n, 2);
}

static void test_flipped_hash_byte_fails_verify_at_its_seq(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 5);
    store_close(&fx->st);
    tamper_journal(fx->dir, 5, 31, 0); /* last byte of record 5's chain hash */
    open_ok(fx);
    uint64_t n = 0, bad = 0;
    assert_int_equal(verify(fx->st, &n, &bad), NHUB_EMALFORMED);
    assert_int_equal(bad, 5);
    assert_int_equal(n, 4);
}

/* A deleted record breaks the numbering: verify names the missing seq. */
static void test_deleted_record_fails_verify(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 4);
    store_close(&fx->st);
    tamper_journal(fx->dir, 2, 0, 1);
    open_ok(fx);
    uint64_t n = 0, bad = 0;
    assert_int_equal(verify(fx->st, &n, &bad), NHUB_EMALFORMED);
    assert_int_equal(n, 1);
    assert_int_equal(bad, 2);
}

/* Records cut off the end leave a chain that is valid as far as it goes;
 * the chain state in meta still shows them missing. */
static void test_truncated_journal_tail_fails_verify(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 4);
    store_close(&fx->st);
    tamper_journal(fx->dir, 4, 0, 1);
    open_ok(fx);
    uint64_t n = 0, bad = 0;
    assert_int_equal(verify(fx->st, &n, &bad), NHUB_EMALFORMED);
    assert_int_equal(n, 3);
    assert_int_equal(bad, 4);
}

static void test_sequence_and_chain_continue_after_reopen(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 2);
    reopen(fx);
    assert_int_equal(journal_last(fx->st), 2);
    store_txn_t *t = begin(fx->st);
    assert_int_equal(append_text(t, "after-reopen"), 3);
    commit(&t);
    reopen(fx);
    t = begin(fx->st);
    assert_int_equal(append_text(t, "again"), 4);
    commit(&t);
    uint64_t n = 0, bad = 9;
    assert_int_equal(verify(fx->st, &n, &bad), 0);
    assert_int_equal(n, 4);
}

static void test_aborted_transaction_leaves_nothing_and_consumes_no_seq(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t id[16], sid[16];
    make_id(id, 1);
    make_id(sid, 77);
    uint64_t dseq = 0, seq = 0;
    store_txn_t *t = begin(fx->st);
    assert_int_equal(append_text(t, "kept"), 1);
    commit(&t);

    t = begin(fx->st);
    assert_int_equal(append_text(t, "dropped"), 2);
    assert_int_equal(append_text(t, "dropped too"), 3);
    assert_int_equal(store_queue_put(t, "110000", 2, id, &dseq), 0);
    assert_int_equal(dseq, 1);
    assert_int_equal(store_dedup_put(t, id, 2, 1000), 0);
    assert_int_equal(store_stream_put(t, sid, 5, "110000"), 0);
    store_abort(&t);
    assert_null(t);
    store_abort(&t); /* NULL is accepted */

    assert_int_equal(journal_last(fx->st), 1);
    assert_int_equal(queue_count(fx->st, "110000"), 0);
    t = begin(fx->st);
    assert_int_equal(store_dedup_get(t, id, &seq), NHUB_ENOTFOUND);
    uint64_t last = 9;
    assert_int_equal(store_stream_get(t, sid, &last, NULL), 0);
    assert_int_equal(last, 0);
    assert_int_equal(append_text(t, "next"), 2);
    assert_int_equal(store_queue_put(t, "110000", 2, id, &dseq), 0);
    assert_int_equal(dseq, 1);
    commit(&t);
    uint64_t n = 0, bad = 9;
    assert_int_equal(verify(fx->st, &n, &bad), 0);
    assert_int_equal(n, 2);
}

/* The header lists NHUB_ESTORE; the code answers NHUB_EINVAL, the better code
 * for a programmer error. Either way *out is NULL and the first stays usable. */
static void test_second_begin_while_one_is_open_is_refused(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_txn_t *t = begin(fx->st);
    store_txn_t *t2 = (store_txn_t *)&t2;
    assert_int_equal(store_begin(fx->st, &t2), NHUB_EINVAL);
    assert_null(t2);
    assert_int_equal(append_text(t, "one"), 1);
    commit(&t);
    t = begin(fx->st);
    assert_int_equal(append_text(t, "two"), 2);
    commit(&t);
}

static void test_commit_without_changes_keeps_sequence(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_txn_t *t = begin(fx->st);
    commit(&t);
    reopen(fx);
    t = begin(fx->st);
    assert_int_equal(append_text(t, "first"), 1);
    commit(&t);
}

static void test_reader_sees_a_snapshot(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 1);
    store_reader_t *r = reader(fx->st);
    append_events(fx->st, 1);
    uint64_t last = 0;
    assert_int_equal(store_journal_last(r, &last), 0);
    assert_int_equal(last, 1);
    store_reader_close(&r);
    assert_int_equal(journal_last(fx->st), 2);
}

/* A record shorter than its hash cannot be read, and verify names it. */
static void test_short_journal_record_is_malformed(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 3);
    store_close(&fx->st);
    uint8_t key[8];
    put_be64(key, 2);
    raw_put(fx->dir, "journal", key, 8, "short", 5);
    open_ok(fx);
    store_reader_t *r = reader(fx->st);
    const void *ev = NULL;
    size_t len = 0;
    assert_int_equal(store_journal_get(r, 2, &ev, &len, NULL), NHUB_EMALFORMED);
    assert_int_equal(store_journal_get(r, 3, &ev, &len, NULL), 0);
    assert_int_equal(len, strlen("event-3"));
    uint64_t n = 0, bad = 0;
    assert_int_equal(store_journal_verify(r, &n, &bad), NHUB_EMALFORMED);
    assert_int_equal(bad, 2);
    assert_int_equal(n, 1);
    store_reader_close(&r);
}

static void test_open_refuses_unknown_format_and_bad_hub_id(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_close(&fx->st);
    uint8_t fmt[4];
    assert_int_equal(raw_get(fx->dir, "meta", "format", 6, fmt, sizeof fmt), 4);
    assert_int_equal(fmt[3], 4);
    const uint8_t v5[4] = {0, 0, 0, 5}, v0[4] = {0, 0, 0, 0};
    raw_put(fx->dir, "meta", "format", 6, v5, 4);
    char err[256] = "";
    store_t *st = (store_t *)&st;
    assert_int_equal(store_open(fx->dir, MIB, MIB, &st, err, sizeof err), NHUB_EVERSION);
    assert_null(st);
    assert_non_null(strstr(err, "format 5 is not supported"));
    raw_put(fx->dir, "meta", "format", 6, v0, 4);
    assert_int_equal(store_open(fx->dir, MIB, MIB, &st, err, sizeof err), NHUB_EVERSION);
    assert_non_null(strstr(err, "format 0"));

    raw_put(fx->dir, "meta", "format", 6, fmt, 4);
    raw_put(fx->dir, "meta", "hub_id", 6, "too short", 9);
    st = (store_t *)&st;
    assert_int_equal(store_open(fx->dir, MIB, MIB, &st, err, sizeof err), NHUB_ESTORE);
    assert_null(st);
    assert_non_null(strstr(err, "hub_id"));
}

/* ---- queues ---------------------------------------------------------------- */

static void test_queue_put_numbers_each_region_from_one(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    const char *regions[] = {"110000", "120000", "110000", "110000", "120000", "310000"};
    const uint64_t want[] = {1, 1, 2, 3, 2, 1};
    uint8_t id[16];
    store_txn_t *t = begin(fx->st);
    for (unsigned i = 0; i < 6; i++) {
        uint64_t dseq = 0;
        make_id(id, i);
        assert_int_equal(store_queue_put(t, regions[i], 100 + i, id, &dseq), 0);
        assert_int_equal(dseq, want[i]);
    }
    commit(&t);
    assert_int_equal(queue_count(fx->st, "110000"), 3);
    assert_int_equal(queue_count(fx->st, "120000"), 2);
    assert_int_equal(queue_count(fx->st, "310000"), 1);
    assert_int_equal(queue_count(fx->st, "115000"), 0);

    /* Numbering continues across transactions and reopen. */
    reopen(fx);
    t = begin(fx->st);
    uint64_t dseq = 0;
    assert_int_equal(store_queue_put(t, "120000", 200, id, &dseq), 0);
    assert_int_equal(dseq, 3);
    commit(&t);
}

static void put_n(store_t *st, const char *region, unsigned n, unsigned id_base)
{
    store_txn_t *t = begin(st);
    for (unsigned i = 0; i < n; i++) {
        uint8_t id[16];
        uint64_t dseq;
        make_id(id, id_base + i);
        assert_int_equal(store_queue_put(t, region, 1000 + id_base + i, id, &dseq), 0);
    }
    commit(&t);
}

static void test_queue_scan_reads_from_cursor_in_order_and_stops_at_region_end(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    put_n(fx->st, "100000", 3, 500);
    put_n(fx->st, "110000", 5, 0);
    put_n(fx->st, "120000", 4, 100);
    store_reader_t *r = reader(fx->st);
    store_queued_t out[16];
    size_t n = 99;

    assert_int_equal(store_queue_scan(r, "110000", 3, out, 16, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        uint8_t id[16];
        make_id(id, (unsigned)(2 + i));
        assert_int_equal(out[i].dseq, 3 + i);
        assert_int_equal(out[i].seq, 1002 + i);
        assert_memory_equal(out[i].msg_id, id, 16);
    }
    /* Bounded by max. */
    assert_int_equal(store_queue_scan(r, "110000", 0, out, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].dseq, 1);
    assert_int_equal(out[1].dseq, 2);
    /* Past the end of the region: nothing, not the next region's entries. */
    assert_int_equal(store_queue_scan(r, "110000", 6, out, 16, &n), 0);
    assert_int_equal(n, 0);
    /* An empty region between two others. */
    assert_int_equal(store_queue_scan(r, "115000", 0, out, 16, &n), 0);
    assert_int_equal(n, 0);
    /* The last region ends at the end of the database. */
    assert_int_equal(store_queue_scan(r, "120000", 1, out, 16, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(out[3].dseq, 4);
    assert_int_equal(out[3].seq, 1103);
    store_reader_close(&r);
}

/* Lanes: each queued message is also under (class, source), in dseq order. */
static void test_lanes_index_the_queue_by_class_and_source(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    const store_lane_t bulk = {2, "440000"}, urgent = {1, "110000"}, normal = {0, "440000"};
    const store_lane_t *order[] = {&bulk, &bulk, &urgent, &normal, &bulk, &urgent};
    uint8_t id[16];
    uint64_t dseq = 0;
    store_txn_t *t = begin(fx->st);
    for (unsigned i = 0; i < 6; i++) {
        make_id(id, i);
        assert_int_equal(store_queue_put_lane(t, "310000", order[i], 10 + i, id, 100 * i, &dseq),
                         0);
        assert_int_equal(dseq, i + 1); /* one numbering per region, whatever the lane */
    }
    make_id(id, 50);
    assert_int_equal(store_queue_put_lane(t, "320000", &urgent, 60, id, 7, &dseq), 0);
    commit(&t);

    store_reader_t *r = reader(fx->st);
    store_lane_t lanes[8];
    size_t n = 0;
    assert_int_equal(store_lanes_list(r, "310000", lanes, 8, &n), 0);
    assert_int_equal(n, 3); /* key order: class, then source */
    assert_memory_equal(&lanes[0], &normal, sizeof normal);
    assert_memory_equal(&lanes[1], &urgent, sizeof urgent);
    assert_memory_equal(&lanes[2], &bulk, sizeof bulk);
    assert_int_equal(store_lanes_list(r, "310000", lanes, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_lanes_list(r, "315000", lanes, 8, &n), 0);
    assert_int_equal(n, 0);

    store_queued_t out[8];
    assert_int_equal(store_lane_scan(r, "310000", &bulk, 0, out, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].dseq, 1);
    assert_int_equal(out[1].dseq, 2);
    assert_int_equal(out[2].dseq, 5);
    assert_int_equal(out[2].seq, 14);
    assert_int_equal(out[2].size, 400);
    make_id(id, 4);
    assert_memory_equal(out[2].msg_id, id, 16);
    assert_int_equal(store_lane_scan(r, "310000", &bulk, 3, out, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_lane_scan(r, "310000", &urgent, 0, out, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].dseq, 3);
    /* The queue read by dseq carries the size too. */
    assert_int_equal(store_queue_scan(r, "310000", 4, out, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].size, 300);
    store_reader_close(&r);

    /* Removal takes the lane entry with the queue entry. */
    t = begin(fx->st);
    uint64_t seq = 0;
    make_id(id, 3);
    assert_int_equal(store_queue_remove(t, "310000", 4, id, &seq), 0);
    assert_int_equal(seq, 13);
    commit(&t);
    r = reader(fx->st);
    assert_int_equal(store_lanes_list(r, "310000", lanes, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(&lanes[0], &urgent, sizeof urgent);
    store_reader_close(&r);
}

/* A format-2 store's queue gets its lanes at open: one lane, in dseq order. */
static void test_format2_queue_gets_its_lanes_at_open(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    put_n(fx->st, "110000", 3, 0);
    store_close(&fx->st);
    /* Back to format 2: queue values without class, source and size, no lanes. */
    for (uint64_t d = 1; d <= 3; d++) {
        uint8_t key[14], val[24], lk[21];
        memcpy(key, "110000", 6);
        put_be64(key + 6, d);
        put_be64(val, 1000 + d - 1);
        make_id(val + 8, (unsigned)(d - 1));
        raw_put(fx->dir, "queue", key, sizeof key, val, sizeof val);
        memcpy(lk, "110000", 6);
        lk[6] = 0;
        memcpy(lk + 7, "000000", 6);
        put_be64(lk + 13, d);
        raw_put(fx->dir, "lanes", lk, sizeof lk, NULL, 0);
    }
    const uint8_t v2[4] = {0, 0, 0, 2};
    raw_put(fx->dir, "meta", "format", 6, v2, 4);

    open_ok(fx);
    store_reader_t *r = reader(fx->st);
    store_lane_t lanes[4];
    store_queued_t out[4];
    size_t n = 0;
    assert_int_equal(store_lanes_list(r, "110000", lanes, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(lanes[0].cls, 0);
    assert_string_equal(lanes[0].source, "000000");
    assert_int_equal(store_lane_scan(r, "110000", &lanes[0], 0, out, 4, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[2].dseq, 3);
    assert_int_equal(out[2].seq, 1002);
    assert_int_equal(out[2].size, 0);
    store_reader_close(&r);
    /* An old entry is removed with its lane entry. */
    uint8_t id[16];
    uint64_t seq;
    make_id(id, 0);
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_queue_remove(t, "110000", 1, id, &seq), 0);
    commit(&t);
    r = reader(fx->st);
    assert_int_equal(store_lane_scan(r, "110000", &lanes[0], 0, out, 4, &n), 0);
    assert_int_equal(n, 2);
    store_reader_close(&r);
    store_close(&fx->st);
    uint8_t fmt[4];
    assert_int_equal(raw_get(fx->dir, "meta", "format", 6, fmt, sizeof fmt), 4);
    assert_int_equal(fmt[3], 4);
}

/* ---- the Merkle tree over the journal ----------------------------------------- */

/* RFC 9162 MTH over leaf hashes leaves[0..n), recursively. */
static void naive_root(uint8_t (*leaves)[32], uint64_t n, uint8_t out[32])
{
    if (n == 1) {
        memcpy(out, leaves[0], 32);
        return;
    }
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    uint8_t l[32], r[32];
    naive_root(leaves, k, l);
    naive_root(leaves + k, n - k, r);
    const uint8_t one = 1;
    th_sha256(&one, 1, l, 32, r, 32, out);
}

/* The leaf hashes of journal records 1..n, from the journal itself. */
static void journal_leaves(store_t *st, uint64_t n, uint8_t (*leaves)[32])
{
    store_reader_t *r = reader(st);
    for (uint64_t i = 0; i < n; i++) {
        const void *ev;
        size_t len;
        assert_int_equal(store_journal_get(r, i + 1, &ev, &len, NULL), 0);
        const uint8_t zero = 0;
        th_sha256(&zero, 1, ev, len, NULL, 0, leaves[i]);
    }
    store_reader_close(&r);
}

static void test_tree_follows_the_journal_and_proves(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    enum { N = 37 };
    /* Several transactions, one of them aborted: it must leave no leaf. */
    append_events(fx->st, 5);
    store_txn_t *t = begin(fx->st);
    append_text(t, "aborted-1");
    append_text(t, "aborted-2");
    store_abort(&t);
    append_events(fx->st, 20);
    reopen(fx); /* the state is read back from meta */
    append_events(fx->st, N - 25);

    uint8_t leaves[N][32], want[32], got[32];
    journal_leaves(fx->st, N, leaves);
    store_reader_t *r = reader(fx->st);
    uint64_t size = 0;
    tlog_alg_t alg = 0;
    assert_int_equal(store_tree_info(r, &size, got, &alg), 0);
    assert_int_equal(size, N);
    assert_int_equal(alg, TLOG_SHA256);
    naive_root(leaves, N, want);
    assert_memory_equal(got, want, 32);

    tlog_hasher_t *h = NULL;
    assert_int_equal(tlog_hasher_new(TLOG_SHA256, &h, NULL, 0), 0);
    tlog_hash_t proof[TLOG_PROOF_MAX];
    size_t len = 0;
    for (uint64_t n = 1; n <= N; n++) {
        uint8_t root_n[32];
        assert_int_equal(store_tree_root_at(r, n, root_n), 0);
        naive_root(leaves, n, want);
        assert_memory_equal(root_n, want, 32);
        for (uint64_t m = 0; m < n; m++) {
            assert_int_equal(store_tree_prove_inclusion(r, m, n, proof, TLOG_PROOF_MAX, &len), 0);
            assert_int_equal(tlog_verify_inclusion(h, m, n, leaves[m], proof, len, root_n), 0);
        }
        for (uint64_t m = 1; m <= n; m++) {
            uint8_t root_m[32];
            naive_root(leaves, m, root_m);
            assert_int_equal(store_tree_prove_consistency(r, m, n, proof, TLOG_PROOF_MAX, &len),
                             0);
            assert_int_equal(tlog_verify_consistency(h, m, n, root_m, root_n, proof, len), 0);
        }
    }
    /* A proof against the wrong leaf fails. */
    assert_int_equal(store_tree_prove_inclusion(r, 3, N, proof, TLOG_PROOF_MAX, &len), 0);
    assert_int_equal(tlog_verify_inclusion(h, 3, N, leaves[4], proof, len, got), NHUB_EREFUSED);
    assert_int_equal(store_tree_root_at(r, N + 1, want), NHUB_EINVAL);
    assert_int_equal(store_tree_prove_inclusion(r, N, N, proof, TLOG_PROOF_MAX, &len),
                     NHUB_EINVAL);
    tlog_hasher_free(&h);
    store_reader_close(&r);
}

/* A store whose tree is missing (from before it) gets it at open. */
static void test_tree_is_built_at_open_for_an_older_store(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 9);
    store_reader_t *r = reader(fx->st);
    uint8_t before[32];
    uint64_t size = 0;
    assert_int_equal(store_tree_info(r, &size, before, NULL), 0);
    store_reader_close(&r);
    store_close(&fx->st);
    raw_put(fx->dir, "meta", "tree_state", 10, NULL, 0);
    for (uint64_t pos = 0; pos < 2 * 9 - 2; pos++) { /* 2n - popcount(9) nodes */
        uint8_t key[8];
        put_be64(key, pos);
        raw_put(fx->dir, "tree", key, 8, NULL, 0);
    }
    open_ok(fx);
    r = reader(fx->st);
    uint8_t after[32];
    assert_int_equal(store_tree_info(r, &size, after, NULL), 0);
    assert_int_equal(size, 9);
    assert_memory_equal(after, before, 32);
    uint8_t node[32];
    assert_int_equal(store_tree_node(r, 3, 0, node), 0); /* the first 8 leaves' node */
    store_reader_close(&r);
}

/* ---- msg_id -> seq (msgseq) -------------------------------------------------- */

/* Append a JournalEvent of `type` about message `n` (make_id); its seq. */
static uint64_t append_message_event(store_txn_t *t, int type, unsigned n)
{
    Nhub__Journal__V1__JournalEvent ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    uint8_t id[16], buf[128];
    make_id(id, n);
    ev.type = type;
    ev.msg_id.data = id;
    ev.msg_id.len = 16;
    size_t len = nhub__journal__v1__journal_event__pack(&ev, buf);
    uint64_t seq = 0;
    assert_int_equal(store_journal_append(t, buf, len, &seq), 0);
    if (type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED)
        assert_int_equal(store_msgseq_put(t, id, seq), 0);
    return seq;
}

static int msg_seq(store_t *st, unsigned n, uint64_t *seq)
{
    uint8_t id[16];
    make_id(id, n);
    store_reader_t *r = reader(st);
    int rc = store_msg_seq(r, id, seq);
    store_reader_close(&r);
    return rc;
}

static void test_msgseq_finds_accepted_messages_and_a_format3_store_is_indexed_at_open(
    void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_txn_t *t = begin(fx->st);
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED, 1);   /* seq 1 */
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIRMED, 1);  /* seq 2 */
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REJECTED, 2);   /* seq 3 */
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED, 3);   /* seq 4 */
    append_text(t, "not a journal event");                                       /* seq 5 */
    commit(&t);
    uint64_t seq = 0;
    assert_int_equal(msg_seq(fx->st, 1, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(msg_seq(fx->st, 3, &seq), 0);
    assert_int_equal(seq, 4);
    assert_int_equal(msg_seq(fx->st, 2, &seq), NHUB_ENOTFOUND); /* rejected: no message */
    assert_int_equal(msg_seq(fx->st, 9, &seq), NHUB_ENOTFOUND);
    store_close(&fx->st);

    /* Back to format 3: no msgseq entries. The open indexes the journal. */
    for (unsigned n = 1; n <= 3; n += 2) {
        uint8_t id[16];
        make_id(id, n);
        raw_put(fx->dir, "msgseq", id, 16, NULL, 0);
    }
    const uint8_t v3[4] = {0, 0, 0, 3};
    raw_put(fx->dir, "meta", "format", 6, v3, 4);
    open_ok(fx);
    assert_int_equal(msg_seq(fx->st, 1, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(msg_seq(fx->st, 3, &seq), 0);
    assert_int_equal(seq, 4);
    assert_int_equal(msg_seq(fx->st, 2, &seq), NHUB_ENOTFOUND);
    store_close(&fx->st);
    uint8_t fmt[4];
    assert_int_equal(raw_get(fx->dir, "meta", "format", 6, fmt, sizeof fmt), 4);
    assert_int_equal(fmt[3], 4);

    /* A record no longer in the journal (pruned) has no seq to give. */
    uint8_t key[8];
    put_be64(key, 1);
    raw_put(fx->dir, "journal", key, 8, NULL, 0);
    open_ok(fx);
    assert_int_equal(msg_seq(fx->st, 1, &seq), NHUB_ENOTFOUND);
    assert_int_equal(msg_seq(fx->st, 3, &seq), 0);
}

/* The benchmark's baseline: the chain alone while dropped, the same tree after a reopen. */
static void test_a_dropped_tree_is_built_again_at_the_next_open(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 6);
    assert_int_equal(store_drop_tree(fx->st), 0);
    store_reader_t *r = reader(fx->st);
    uint64_t size = 0;
    assert_int_equal(store_tree_info(r, &size, NULL, NULL), NHUB_ENOTFOUND);
    store_reader_close(&r);
    append_events(fx->st, 5); /* the chain goes on; no leaf, no node is kept */
    store_txn_t *t = begin(fx->st);
    uint8_t root[32];
    assert_int_equal(store_txn_tree(t, &size, root), NHUB_ENOTFOUND);
    store_abort(&t);
    uint64_t n = 0, bad = 0;
    r = reader(fx->st);
    assert_int_equal(store_journal_verify(r, &n, &bad), 0);
    assert_int_equal(n, 11);
    store_reader_close(&r);

    reopen(fx);
    uint8_t leaves[11][32], want[32];
    journal_leaves(fx->st, 11, leaves);
    naive_root(leaves, 11, want);
    r = reader(fx->st);
    assert_int_equal(store_tree_info(r, &size, root, NULL), 0);
    assert_int_equal(size, 11);
    assert_memory_equal(root, want, 32);
    store_reader_close(&r);
}

/* SM3 where national cryptography is required: chosen for a new tree, kept after. */
static void test_tree_hash_sm3_is_kept_once_chosen(void **state)
{
    fx_t *fx = *state;
    char err[256] = "";
    assert_int_equal(store_open_tree(fx->dir, MIB, MIB, TLOG_SM3, &fx->st, err, sizeof err), 0);
    assert_int_equal(store_tree_alg(fx->st), TLOG_SM3);
    append_events(fx->st, 5);
    store_close(&fx->st);
    open_ok(fx); /* asks for SHA-256: the tree stays SM3 */
    assert_int_equal(store_tree_alg(fx->st), TLOG_SM3);
    store_reader_t *r = reader(fx->st);
    uint64_t size = 0;
    uint8_t root[32];
    tlog_alg_t alg = 0;
    assert_int_equal(store_tree_info(r, &size, root, &alg), 0);
    assert_int_equal(alg, TLOG_SM3);
    tlog_hasher_t *h = NULL;
    assert_int_equal(tlog_hasher_new(TLOG_SM3, &h, NULL, 0), 0);
    tlog_hash_t proof[TLOG_PROOF_MAX];
    size_t len = 0;
    for (uint64_t m = 0; m < size; m++) {
        uint8_t leaf[32];
        const void *ev;
        size_t evlen;
        assert_int_equal(store_journal_get(r, m + 1, &ev, &evlen, NULL), 0);
        assert_int_equal(tlog_hash_leaf(h, ev, evlen, leaf), 0);
        assert_int_equal(store_tree_prove_inclusion(r, m, size, proof, TLOG_PROOF_MAX, &len), 0);
        assert_int_equal(tlog_verify_inclusion(h, m, size, leaf, proof, len, root), 0);
    }
    tlog_hasher_free(&h);
    store_reader_close(&r);
}

static void test_checkpoints_are_kept_by_size(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_reader_t *r = reader(fx->st);
    const char *note;
    size_t len;
    uint64_t size;
    assert_int_equal(store_checkpoint_get(r, 0, &note, &len, &size), NHUB_ENOTFOUND);
    store_reader_close(&r);
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_checkpoint_put(t, 10, "note ten\n", 9), 0);
    assert_int_equal(store_checkpoint_put(t, 25, "note twenty-five\n", 17), 0);
    commit(&t);
    r = reader(fx->st);
    assert_int_equal(store_checkpoint_get(r, 0, &note, &len, &size), 0);
    assert_int_equal(size, 25);
    assert_int_equal(len, 17);
    assert_memory_equal(note, "note twenty-five\n", 17);
    assert_int_equal(store_checkpoint_get(r, 10, &note, &len, &size), 0);
    assert_int_equal(size, 10);
    assert_int_equal(store_checkpoint_get(r, 11, &note, &len, &size), NHUB_ENOTFOUND);
    store_reader_close(&r);
}

static void test_checkpoint_next_walks_sizes_in_order(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_checkpoint_put(t, 25, "note twenty-five\n", 17), 0);
    assert_int_equal(store_checkpoint_put(t, 10, "note ten\n", 9), 0);
    commit(&t);
    store_reader_t *r = reader(fx->st);
    const char *note;
    size_t len;
    uint64_t size = 0;
    assert_int_equal(store_checkpoint_next(r, 0, &note, &len, &size), 0);
    assert_int_equal(size, 10);
    assert_memory_equal(note, "note ten\n", len);
    assert_int_equal(store_checkpoint_next(r, 10, &note, &len, &size), 0);
    assert_int_equal(size, 25);
    assert_int_equal(len, 17);
    assert_int_equal(store_checkpoint_next(r, 25, &note, &len, &size), NHUB_ENOTFOUND);
    assert_int_equal(store_checkpoint_next(r, UINT64_MAX, &note, &len, &size), NHUB_ENOTFOUND);
    store_reader_close(&r);
}

struct walked {
    uint64_t seqs[8];
    size_t n;
    size_t stop_after; /* answer 1 after this many, 0: never */
};

static int walk_one(void *arg, uint64_t seq, const uint8_t hash[32], const void *event, size_t len)
{
    struct walked *w = arg;
    char want[32];
    snprintf(want, sizeof want, "event-%llu", (unsigned long long)seq);
    assert_non_null(hash);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(event, want, len);
    w->seqs[w->n++] = seq;
    return w->stop_after && w->n == w->stop_after ? 1 : 0;
}

static void test_journal_walk_gives_records_in_order_from_a_seq_and_stops_when_asked(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 5);
    store_close(&fx->st);
    tamper_journal(fx->dir, 3, 0, 1); /* a gap: the walk shows it, the caller names it */
    open_ok(fx);
    store_reader_t *r = reader(fx->st);
    struct walked w = {{0}, 0, 0};
    uint64_t bad = 9;
    assert_int_equal(store_journal_walk(r, 1, walk_one, &w, &bad), 0);
    assert_int_equal(w.n, 4);
    assert_int_equal(w.seqs[1], 2);
    assert_int_equal(w.seqs[2], 4);
    assert_int_equal(bad, 0);
    w.n = 0;
    assert_int_equal(store_journal_walk(r, 4, walk_one, &w, &bad), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.seqs[0], 4);
    w.n = 0;
    w.stop_after = 2;
    assert_int_equal(store_journal_walk(r, 1, walk_one, &w, &bad), 1);
    assert_int_equal(w.n, 2);
    store_reader_close(&r);
}

/* Prune in its own transaction: what store_journal_prune removed. */
static uint64_t prune(store_t *st, uint64_t last, uint64_t *first)
{
    store_txn_t *t = begin(st);
    uint64_t n = 99;
    assert_int_equal(store_journal_prune(t, last, first, &n), 0);
    commit(&t);
    return n;
}

static void test_prune_removes_only_archived_unqueued_bodies_and_the_chain_goes_on(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    append_events(fx->st, 10);
    uint64_t first = 0, start = 0;
    uint8_t prev[32], zero[32] = {0}, root_before[32], root_after[32], id[16];
    /* Nothing archived: nothing pruned. */
    assert_int_equal(prune(fx->st, 10, &first), 0);
    store_reader_t *r = reader(fx->st);
    uint64_t size;
    assert_int_equal(store_tree_info(r, &size, root_before, NULL), 0);
    const void *ev;
    size_t len;
    const uint8_t *hash6;
    assert_int_equal(store_journal_get(r, 6, &ev, &len, &hash6), 0);
    uint8_t want_prev[32];
    memcpy(want_prev, hash6, 32);
    store_reader_close(&r);
    /* Records 1..8 archived; record 7's message still queued. */
    store_txn_t *t = begin(fx->st);
    uint64_t dseq;
    make_id(id, 7);
    assert_int_equal(store_archive_mark(t, 9), 0);
    assert_int_equal(store_queue_put(t, "110000", 7, id, &dseq), 0);
    commit(&t);
    assert_int_equal(prune(fx->st, 10, &first), 6); /* 1..6: not 7 (queued) nor beyond */
    assert_int_equal(first, 1);
    r = reader(fx->st);
    assert_int_equal(store_journal_start(r, &start, prev), 0);
    assert_int_equal(start, 7);
    assert_memory_equal(prev, want_prev, 32);
    assert_memory_not_equal(prev, zero, 32);
    assert_int_equal(store_journal_get(r, 6, &ev, &len, NULL), NHUB_ENOTFOUND);
    assert_int_equal(store_journal_get(r, 7, &ev, &len, NULL), 0);
    /* The tree is whole: same root, and the state at the start comes from its nodes. */
    assert_int_equal(store_tree_info(r, &size, root_after, NULL), 0);
    assert_memory_equal(root_before, root_after, 32);
    uint8_t tstate[TLOG_STATE_MAX];
    assert_int_equal(store_tree_state_at(r, 6, tstate, sizeof tstate, &len), 0);
    assert_int_equal(len, 10 + 2 * 32); /* 6 = 4 + 2: two subtrees */
    store_reader_close(&r);
    /* The live journal still verifies, from its first record. */
    uint64_t n = 0, bad = 0;
    assert_int_equal(verify(fx->st, &n, &bad), 0);
    assert_int_equal(n, 4);
    /* Once delivered, 7 and 8 go; never the last record. */
    t = begin(fx->st);
    uint64_t seq;
    assert_int_equal(store_queue_remove(t, "110000", dseq, id, &seq), 0);
    assert_int_equal(store_archive_mark(t, 11), 0);
    commit(&t);
    assert_int_equal(prune(fx->st, 10, &first), 3);
    assert_int_equal(first, 7);
    assert_int_equal(journal_last(fx->st), 10);
    reopen(fx);
    assert_int_equal(verify(fx->st, &n, &bad), 0);
    assert_int_equal(n, 1);
}

/* What store_msg_seq_each gives, up to 8 seqs; stops after `stop_after` if set. */
struct seqs {
    uint64_t seq[8];
    size_t n, stop_after;
};

static int collect_seq(void *arg, uint64_t seq)
{
    struct seqs *w = arg;
    assert_true(w->n < 8);
    w->seq[w->n++] = seq;
    return w->stop_after && w->n == w->stop_after ? 7 : 0;
}

static int msg_seqs(store_t *st, unsigned n, struct seqs *w)
{
    uint8_t id[16];
    make_id(id, n);
    store_reader_t *r = reader(st);
    int rc = store_msg_seq_each(r, id, collect_seq, w);
    store_reader_close(&r);
    return rc;
}

/* A msg_id accepted again (after the duplicate window) keeps both records;
 * pruning the older forgets only its entry. */
static void test_msgseq_keeps_every_record_of_a_msg_id_and_pruning_forgets_only_its_own(
    void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_txn_t *t = begin(fx->st);
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED, 1);  /* seq 1 */
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED, 2);  /* seq 2 */
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIRMED, 1); /* seq 3 */
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED, 1);  /* seq 4 */
    append_message_event(t, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED, 3);  /* seq 5 */
    uint8_t one[16];
    make_id(one, 1);
    assert_int_equal(store_msgseq_put(t, one, 1), 0); /* again (indexing resumed): one entry */
    commit(&t);
    struct seqs w = {0};
    assert_int_equal(msg_seqs(fx->st, 1, &w), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.seq[0], 4); /* newest first */
    assert_int_equal(w.seq[1], 1);
    uint64_t seq = 0;
    assert_int_equal(msg_seq(fx->st, 1, &seq), 0);
    assert_int_equal(seq, 4);
    /* fn stops the walk: its value comes back. */
    w = (struct seqs){.stop_after = 1};
    assert_int_equal(msg_seqs(fx->st, 1, &w), 7);
    assert_int_equal(w.n, 1);
    w = (struct seqs){0};
    assert_int_equal(msg_seqs(fx->st, 9, &w), NHUB_ENOTFOUND);
    assert_int_equal(w.n, 0);

    /* Prune 1..3 (archived, nothing queued): message 1's first record and
     * message 2 go; message 1's second record keeps its entry. */
    t = begin(fx->st);
    assert_int_equal(store_archive_mark(t, 6), 0);
    commit(&t);
    assert_int_equal(prune(fx->st, 3, NULL), 3);
    w = (struct seqs){0};
    assert_int_equal(msg_seqs(fx->st, 1, &w), 0);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.seq[0], 4);
    assert_int_equal(msg_seq(fx->st, 1, &seq), 0);
    assert_int_equal(seq, 4);
    assert_int_equal(msg_seq(fx->st, 2, &seq), NHUB_ENOTFOUND);
    assert_int_equal(msg_seq(fx->st, 3, &seq), 0);
    assert_int_equal(seq, 5);
    store_close(&fx->st);
    /* The entries themselves are gone, not just hidden: message 2 has none,
     * message 1 only (1, 4). */
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_env *env = raw_open(fx->dir, &txn, "msgseq", &dbi);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    uint8_t id[16];
    make_id(id, 2);
    MDB_val k = {16, id}, v;
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_SET_KEY), MDB_NOTFOUND);
    make_id(id, 1);
    k = (MDB_val){16, id};
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_SET_KEY), 0);
    size_t dups = 0;
    assert_int_equal(mdb_cursor_count(c, &dups), 0);
    assert_int_equal(dups, 1);
    uint8_t four[8];
    put_be64(four, 4);
    assert_int_equal(v.mv_size, 8);
    assert_memory_equal(v.mv_data, four, 8);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* The time of an event read from its bytes: field 2 wherever it is. */
static void test_event_time_is_read_without_decoding(void **state)
{
    (void)state;
    int64_t ms = -1;
    /* type 1 (varint 1), time_ms 2 (varint 1700000000000), then bytes field 3. */
    const uint8_t ev[] = {0x08, 0x01, 0x10, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x1a, 0x02, 'h',
                          'i'};
    assert_int_equal(store_event_time(ev, sizeof ev, &ms), 0);
    assert_int_equal(ms, 1700000000000LL);
    const uint8_t no_time[] = {0x08, 0x05};
    assert_int_equal(store_event_time(no_time, sizeof no_time, &ms), 0);
    assert_int_equal(ms, 0);
    const uint8_t cut[] = {0x08, 0x01, 0x1a, 0x09, 'h'}; /* a length beyond the end */
    assert_int_equal(store_event_time(cut, sizeof cut, &ms), NHUB_EMALFORMED);
    const uint8_t bad_varint[] = {0x10, 0xff};
    assert_int_equal(store_event_time(bad_varint, sizeof bad_varint, &ms), NHUB_EMALFORMED);
}

static void test_queue_remove_returns_seq_and_dseq_is_never_reused(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    put_n(fx->st, "110000", 3, 0);
    uint8_t id[16];
    uint64_t seq = 0, dseq = 0;
    store_txn_t *t = begin(fx->st);
    make_id(id, 1);
    assert_int_equal(store_queue_remove(t, "110000", 2, id, &seq), 0);
    assert_int_equal(seq, 1001);
    make_id(id, 2);
    assert_int_equal(store_queue_remove(t, "110000", 3, id, &seq), 0);
    assert_int_equal(seq, 1002);
    assert_int_equal(store_queue_put(t, "110000", 7, id, &dseq), 0);
    assert_int_equal(dseq, 4);
    commit(&t);

    store_reader_t *r = reader(fx->st);
    store_queued_t out[8];
    size_t n = 0;
    assert_int_equal(store_queue_scan(r, "110000", 0, out, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].dseq, 1);
    assert_int_equal(out[1].dseq, 4);
    store_reader_close(&r);
}

static void test_queue_remove_with_wrong_msg_id_is_not_found_and_keeps_entry(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    put_n(fx->st, "110000", 2, 0);
    uint8_t wrong[16], right[16];
    make_id(wrong, 1); /* the id of dseq 2, not dseq 1 */
    make_id(right, 0);
    uint64_t seq = 4242;
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_queue_remove(t, "110000", 1, wrong, &seq), NHUB_EINVAL);
    assert_int_equal(seq, 4242);
    /* Right msg_id, wrong region or absent dseq. */
    assert_int_equal(store_queue_remove(t, "120000", 1, right, &seq), NHUB_ENOTFOUND);
    assert_int_equal(store_queue_remove(t, "110000", 9, right, &seq), NHUB_ENOTFOUND);
    commit(&t);
    assert_int_equal(queue_count(fx->st, "110000"), 2);

    t = begin(fx->st);
    assert_int_equal(store_queue_remove(t, "110000", 1, right, &seq), 0);
    assert_int_equal(seq, 1000);
    assert_int_equal(store_queue_remove(t, "110000", 1, right, &seq), NHUB_ENOTFOUND);
    commit(&t);
    assert_int_equal(queue_count(fx->st, "110000"), 1);
}

/* ---- duplicate window ------------------------------------------------------ */

static void test_held_is_recorded_once_per_reason_listed_in_order_and_survives_reopen(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    put_n(fx->st, "110000", 4, 0);
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_held_put(t, "110000", 3, STORE_HELD_PAYLOAD_TYPE, 1000), 0);
    assert_int_equal(store_held_put(t, "110000", 1, STORE_HELD_TOO_LARGE, 2000), 0);
    assert_int_equal(store_held_put(t, "110000", 3, STORE_HELD_PAYLOAD_TYPE, 3000), NHUB_EEXIST);
    assert_int_equal(store_held_put(t, "120000", 1, STORE_HELD_PAYLOAD_TYPE, 4000), 0);
    commit(&t);
    reopen(fx);

    /* A new reason is recorded (the caller journals it); the first time stays. */
    t = begin(fx->st);
    assert_int_equal(store_held_put(t, "110000", 3, STORE_HELD_TOO_LARGE, 5000), 0);
    commit(&t);
    store_reader_t *r = reader(fx->st);
    store_held_t out[8];
    size_t n = 99;
    assert_int_equal(store_held_scan(r, "110000", 0, out, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].dseq, 1);
    assert_int_equal(out[0].reason, STORE_HELD_TOO_LARGE);
    assert_int_equal(out[0].since_ms, 2000);
    assert_int_equal(out[1].dseq, 3);
    assert_int_equal(out[1].reason, STORE_HELD_TOO_LARGE);
    assert_int_equal(out[1].since_ms, 1000);
    assert_int_equal(store_held_scan(r, "110000", 2, out, 8, &n), 0);
    assert_int_equal(n, 1);
    store_reader_close(&r);

    /* Held messages are still queued; removing the hold leaves the queue alone. */
    assert_int_equal(queue_count(fx->st, "110000"), 4);
    t = begin(fx->st);
    assert_int_equal(store_held_remove(t, "110000", 3), 0);
    assert_int_equal(store_held_remove(t, "110000", 3), NHUB_ENOTFOUND);
    commit(&t);
    assert_int_equal(queue_count(fx->st, "110000"), 4);
    r = reader(fx->st);
    assert_int_equal(store_held_scan(r, "110000", 0, out, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].dseq, 1);
    store_reader_close(&r);
}

static void test_dedup_put_then_get_returns_seq(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t a[16], b[16];
    make_id(a, 1);
    make_id(b, 2);
    uint64_t seq = 0;
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_dedup_put(t, a, 17, 1000), 0);
    assert_int_equal(store_dedup_get(t, a, &seq), 0); /* visible inside the txn */
    assert_int_equal(seq, 17);
    commit(&t);
    reopen(fx);
    t = begin(fx->st);
    seq = 0;
    assert_int_equal(store_dedup_get(t, a, &seq), 0);
    assert_int_equal(seq, 17);
    assert_int_equal(store_dedup_get(t, b, &seq), NHUB_ENOTFOUND);
    store_abort(&t);
}

static void test_dedup_expire_forgets_only_entries_before_cutoff_up_to_max(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t id[6][16];
    store_txn_t *t = begin(fx->st);
    /* Put out of time order: the age index must order them. */
    const int64_t times[6] = {500, 100, 300, 200, 400, 300};
    for (unsigned i = 0; i < 6; i++) {
        make_id(id[i], i);
        assert_int_equal(store_dedup_put(t, id[i], 10 + i, times[i]), 0);
    }
    commit(&t);

    size_t n = 99;
    uint64_t seq;
    t = begin(fx->st);
    assert_int_equal(store_window_expire(t, 300, 1, &n), 0); /* bounded by max */
    assert_int_equal(n, 1);
    assert_int_equal(store_dedup_get(t, id[1], &seq), NHUB_ENOTFOUND); /* t=100 */
    assert_int_equal(store_dedup_get(t, id[3], &seq), 0);              /* t=200 */
    assert_int_equal(store_window_expire(t, 300, 10, &n), 0);
    assert_int_equal(n, 1); /* only t=200; t=300 is not before the cutoff */
    assert_int_equal(store_dedup_get(t, id[3], &seq), NHUB_ENOTFOUND);
    assert_int_equal(store_dedup_get(t, id[2], &seq), 0);
    assert_int_equal(seq, 12);
    assert_int_equal(store_dedup_get(t, id[5], &seq), 0);
    assert_int_equal(store_window_expire(t, 300, 10, &n), 0);
    assert_int_equal(n, 0);
    commit(&t);

    t = begin(fx->st);
    assert_int_equal(store_window_expire(t, 1000, 0, &n), 0); /* max 0 forgets nothing */
    assert_int_equal(n, 0);
    assert_int_equal(store_window_expire(t, 1000, 10, &n), 0);
    assert_int_equal(n, 4);
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(store_dedup_get(t, id[i], &seq), NHUB_ENOTFOUND);
    assert_int_equal(store_window_expire(t, 1000, 10, &n), 0); /* empty window */
    assert_int_equal(n, 0);
    commit(&t);
}

/* Enough entries to span many LMDB pages, expired in slices. */
static void test_dedup_expire_walks_across_pages(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    const unsigned total = 3000;
    store_txn_t *t = begin(fx->st);
    for (unsigned i = 0; i < total; i++) {
        uint8_t id[16];
        make_id(id, i);
        assert_int_equal(store_dedup_put(t, id, i + 1, (int64_t)i), 0);
    }
    commit(&t);
    size_t n = 0;
    t = begin(fx->st);
    assert_int_equal(store_window_expire(t, 2500, 1000, &n), 0);
    assert_int_equal(n, 1000);
    assert_int_equal(store_window_expire(t, 2500, 5000, &n), 0);
    assert_int_equal(n, 1500);
    commit(&t);
    t = begin(fx->st);
    for (unsigned i = 0; i < total; i += 7) {
        uint8_t id[16];
        uint64_t seq = 0;
        make_id(id, i);
        int rc = store_dedup_get(t, id, &seq);
        if (i < 2500) {
            assert_int_equal(rc, NHUB_ENOTFOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(seq, i + 1);
        }
    }
    store_abort(&t);
}

/* ---- streams --------------------------------------------------------------- */

static void test_stream_last_is_zero_until_put_and_survives_reopen(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t s1[16], s2[16];
    make_id(s1, 1);
    make_id(s2, 2);
    uint64_t last = 99;
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_stream_get(t, s1, &last, NULL), 0);
    assert_int_equal(last, 0);
    assert_int_equal(store_stream_put(t, s1, 5, "110000"), 0);
    assert_int_equal(store_stream_put(t, s1, 7, "110000"), 0);
    assert_int_equal(store_stream_put(t, s2, 1, "120000"), 0);
    commit(&t);
    reopen(fx);
    t = begin(fx->st);
    char region[8];
    assert_int_equal(store_stream_get(t, s1, &last, region), 0);
    assert_int_equal(last, 7);
    assert_string_equal(region, "110000");
    assert_int_equal(store_stream_get(t, s2, &last, region), 0);
    assert_int_equal(last, 1);
    assert_string_equal(region, "120000");
    store_abort(&t);
}

static void test_rejects_are_remembered_per_stream_and_seq(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t s1[16], s2[16];
    make_id(s1, 1);
    make_id(s2, 2);
    store_txn_t *t = begin(fx->st);
    uint32_t code = 0;
    assert_int_equal(store_reject_get(t, s1, 3, &code), NHUB_ENOTFOUND);
    assert_int_equal(store_reject_put(t, s1, 3, 6, 40, 1000), 0);
    commit(&t);
    reopen(fx);
    t = begin(fx->st);
    assert_int_equal(store_reject_get(t, s1, 3, &code), 0);
    assert_int_equal(code, 6);
    assert_int_equal(store_reject_get(t, s1, 4, &code), NHUB_ENOTFOUND);
    assert_int_equal(store_reject_get(t, s2, 3, &code), NHUB_ENOTFOUND);
    store_abort(&t);
}

static store_window_stat_t window_stat(store_t *st)
{
    store_reader_t *r = NULL;
    store_window_stat_t w;
    assert_int_equal(store_reader_open(st, &r), 0);
    assert_int_equal(store_window_stat(r, &w), 0);
    store_reader_close(&r);
    assert_int_equal(w.aged, w.messages + w.rejections);
    return w;
}

/* Rejections leave the window in time order with the msg_ids around them. */
static void test_rejections_expire_with_the_window(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t s1[16], a[16], b[16];
    make_id(s1, 1);
    make_id(a, 2);
    make_id(b, 3);
    uint32_t code = 0;
    uint64_t seq = 0;
    size_t n = 0;
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_dedup_put(t, a, 10, 100), 0);
    assert_int_equal(store_reject_put(t, s1, 1, 6, 11, 200), 0);
    assert_int_equal(store_dedup_put(t, b, 12, 300), 0);
    assert_int_equal(store_reject_put(t, s1, 2, 7, 13, 300), 0);
    commit(&t);
    store_window_stat_t w = window_stat(fx->st);
    assert_int_equal(w.messages, 2);
    assert_int_equal(w.rejections, 2);
    assert_true(w.pages >= 3);

    t = begin(fx->st);
    assert_int_equal(store_window_expire(t, 250, 10, &n), 0);
    assert_int_equal(n, 2); /* a at 100, the rejection at 200 */
    assert_int_equal(store_dedup_get(t, a, &seq), NHUB_ENOTFOUND);
    assert_int_equal(store_reject_get(t, s1, 1, &code), NHUB_ENOTFOUND);
    assert_int_equal(store_reject_get(t, s1, 2, &code), 0);
    assert_int_equal(code, 7);
    assert_int_equal(store_dedup_get(t, b, &seq), 0);
    commit(&t);
    w = window_stat(fx->st);
    assert_int_equal(w.messages, 1);
    assert_int_equal(w.rejections, 1);

    t = begin(fx->st);
    assert_int_equal(store_window_expire(t, 301, 10, &n), 0);
    assert_int_equal(n, 2);
    commit(&t);
    w = window_stat(fx->st);
    assert_int_equal(w.messages + w.rejections, 0);
}

/* A format-1 store (rejections not in the age index) is upgraded at open:
 * its rejections take the newest time of the window and expire with it. */
static void test_format1_store_upgraded_and_its_rejections_expire(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t s1[16], a[16], key[16];
    make_id(s1, 1);
    make_id(a, 2);
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_dedup_put(t, a, 1, 700), 0);
    assert_int_equal(store_reject_put(t, s1, 1, 6, 0, 100), 0);
    assert_int_equal(store_reject_put(t, s1, 2, 6, 2, 100), 0);
    commit(&t);
    store_close(&fx->st);
    /* Make it what format 1 wrote: no age entries for the rejections. */
    put_be64(key, 100);
    for (uint64_t seq = 0; seq <= 2; seq += 2) {
        put_be64(key + 8, seq);
        raw_put(fx->dir, "dedup_age", key, 16, NULL, 0);
    }
    /* and a key the upgrade must step over: (700, 0) taken by a message */
    uint8_t taken[16], other[16];
    put_be64(taken, 700);
    put_be64(taken + 8, 0);
    make_id(other, 9);
    raw_put(fx->dir, "dedup_age", taken, 16, other, 16);
    const uint8_t v1[4] = {0, 0, 0, 1};
    raw_put(fx->dir, "meta", "format", 6, v1, 4);

    open_ok(fx);
    uint8_t fmt[4];
    store_close(&fx->st);
    assert_int_equal(raw_get(fx->dir, "meta", "format", 6, fmt, sizeof fmt), 4);
    assert_int_equal(fmt[3], 4);
    assert_int_equal(raw_get(fx->dir, "dedup_age", taken, 16, key, sizeof key), 16);
    assert_memory_equal(key, other, 16); /* not overwritten */
    open_ok(fx);
    uint32_t code = 0;
    size_t n = 0;
    t = begin(fx->st);
    assert_int_equal(store_window_expire(t, 700, 10, &n), 0);
    assert_int_equal(n, 0); /* kept as long as the newest message */
    assert_int_equal(store_reject_get(t, s1, 2, &code), 0);
    assert_int_equal(store_window_expire(t, 701, 10, &n), 0);
    assert_int_equal(n, 4); /* a, the planted entry, both rejections */
    assert_int_equal(store_reject_get(t, s1, 1, &code), NHUB_ENOTFOUND);
    assert_int_equal(store_reject_get(t, s1, 2, &code), NHUB_ENOTFOUND);
    commit(&t);
}

/* ---- map growth ------------------------------------------------------------ */

static void test_grow_doubles_up_to_limit_then_is_full(void **state)
{
    fx_t *fx = *state;
    open_sized(fx, MIB, 3 * MIB);
    assert_int_equal(store_map_size(fx->st), MIB);
    assert_int_equal(store_grow(fx->st), 0);
    assert_int_equal(store_map_size(fx->st), 2 * MIB);
    assert_int_equal(store_grow(fx->st), 0); /* doubling would pass the limit: the limit */
    assert_int_equal(store_map_size(fx->st), 3 * MIB);
    assert_int_equal(store_grow(fx->st), NHUB_EFULL);
    assert_int_equal(store_map_size(fx->st), 3 * MIB);
    store_set_map_max(fx->st, 8 * MIB); /* a configuration reload raises the limit */
    assert_int_equal(store_grow(fx->st), 0);
    assert_int_equal(store_map_size(fx->st), 6 * MIB);
    append_events(fx->st, 1);
}

static void test_limit_below_initial_map_means_no_growth(void **state)
{
    fx_t *fx = *state;
    open_sized(fx, 2 * MIB, MIB);
    assert_int_equal(store_map_size(fx->st), 2 * MIB);
    assert_int_equal(store_grow(fx->st), NHUB_EFULL);
}

/*
 * One ~100 KiB event (and its queue entry) per transaction. Returns 0, or
 * NHUB_EFULL after checking that nothing of the failed transaction was applied.
 */
static int append_big(store_t *st, unsigned i, uint64_t *seq_out)
{
    static uint8_t ev[BIG_EVENT];
    memset(ev, (int)(i & 0xff), sizeof ev);
    put_be64(ev, i);
    uint64_t last_before = journal_last(st);
    uint64_t queued_before = queue_count(st, "110000");
    uint8_t id[16];
    make_id(id, i);
    store_txn_t *t = begin(st);
    uint64_t seq = 0, dseq = 0;
    int rc = store_journal_append(t, ev, sizeof ev, &seq);
    if (rc == 0)
        rc = store_queue_put(t, "110000", seq, id, &dseq);
    if (rc == 0) {
        rc = store_commit(&t);
    } else {
        store_abort(&t);
    }
    assert_null(t);
    if (rc == 0) {
        assert_int_equal(seq, last_before + 1);
        assert_int_equal(dseq, queued_before + 1);
        *seq_out = seq;
        return 0;
    }
    assert_int_equal(rc, NHUB_EFULL);
    assert_int_equal(journal_last(st), last_before);
    assert_int_equal(queue_count(st, "110000"), queued_before);
    return rc;
}

static void test_full_map_grows_until_limit_and_full_writes_apply_nothing(void **state)
{
    fx_t *fx = *state;
    open_sized(fx, MIB, 4 * MIB);
    unsigned i = 0, grows = 0, fulls = 0;
    uint64_t seq = 0;
    for (;;) {
        assert_true(i < 100); /* 4 MiB holds ~40 events: a loop would be a bug */
        if (append_big(fx->st, i, &seq) == 0) {
            i++;
            continue;
        }
        fulls++;
        uint64_t before = store_map_size(fx->st);
        int rc = store_grow(fx->st);
        if (rc == NHUB_EFULL) {
            assert_int_equal(store_map_size(fx->st), 4 * MIB);
            break;
        }
        assert_int_equal(rc, 0);
        grows++;
        assert_int_equal(store_map_size(fx->st), before * 2);
        /* The retry of the same write now fits. */
        assert_int_equal(append_big(fx->st, i, &seq), 0);
        i++;
    }
    assert_int_equal(grows, 2); /* 1 -> 2 -> 4 MiB */
    assert_int_equal(fulls, 3); /* one per map size */
    assert_in_range(i, 10, 40);
    assert_int_equal(journal_last(fx->st), i);
    assert_int_equal(queue_count(fx->st, "110000"), i);

    /* The file never passes the limit. */
    char path[160];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", fx->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true((uint64_t)sb.st_size <= 4 * MIB);

    uint64_t n = 0, bad = 9;
    assert_int_equal(verify(fx->st, &n, &bad), 0);
    assert_int_equal(n, i);
}

static void test_store_still_works_after_full_when_space_is_freed(void **state)
{
    fx_t *fx = *state;
    open_sized(fx, MIB, 2 * MIB);
    unsigned i = 0;
    uint64_t seq = 0;
    for (;;) {
        assert_true(i < 100);
        if (append_big(fx->st, i, &seq) == 0) {
            i++;
        } else if (store_grow(fx->st) != 0) {
            break;
        }
    }
    /* Full at the limit: confirmations still go through (small writes). */
    store_txn_t *t = begin(fx->st);
    for (unsigned k = 0; k < 3; k++) {
        uint8_t id[16];
        uint64_t s = 0;
        make_id(id, k);
        assert_int_equal(store_queue_remove(t, "110000", k + 1, id, &s), 0);
        assert_int_equal(s, k + 1);
    }
    assert_int_equal(append_text(t, "confirmed 1..3"), i + 1);
    commit(&t);
    assert_int_equal(queue_count(fx->st, "110000"), i - 3);

    /* Reopen with the small configured map: the grown file keeps its data. */
    store_close(&fx->st);
    open_sized(fx, MIB, 2 * MIB);
    assert_true(store_map_size(fx->st) > MIB);
    assert_int_equal(journal_last(fx->st), i + 1);
    assert_int_equal(queue_count(fx->st, "110000"), i - 3);
    uint64_t n = 0, bad = 9;
    assert_int_equal(verify(fx->st, &n, &bad), 0);
    assert_int_equal(n, i + 1);
    t = begin(fx->st);
    assert_int_equal(append_text(t, "small"), i + 2);
    commit(&t);
    store_reader_t *r = reader(fx->st);
    store_queued_t out[4];
    size_t got = 0;
    assert_int_equal(store_queue_scan(r, "110000", 0, out, 4, &got), 0);
    assert_int_equal(got, 4);
    assert_int_equal(out[0].dseq, 4);
    store_reader_close(&r);
}

/* ---- cases ---------------------------------------------------------------- */

static store_case_t mk_case(uint8_t n, int64_t opened, const char *req, const char *hnd,
                            const char *item)
{
    store_case_t c;
    memset(&c, 0, sizeof c);
    memset(c.id, n, 16);
    c.state = STORE_CASE_OPEN;
    c.kind = 1;
    snprintf(c.requester, sizeof c.requester, "%s", req);
    snprintf(c.handler, sizeof c.handler, "%s", hnd);
    snprintf(c.item, sizeof c.item, "%s", item);
    c.opened_ms = opened;
    c.remind_ms = opened + 10;
    c.due_ms = opened + 20;
    c.expire_ms = opened + 30;
    c.next_ms = c.remind_ms;
    c.request_seq = n;
    return c;
}

static void put_case(store_t *st, const store_case_t *old, const store_case_t *c)
{
    store_txn_t *t = NULL;
    assert_int_equal(store_begin(st, &t), 0);
    assert_int_equal(store_case_put(t, old, c), 0);
    assert_int_equal(store_commit(&t), 0);
}

static void test_cases_round_trip_with_deadlines_in_time_order_and_counts(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_case_t a = mk_case(1, 1000, "110000", "440000", "SI-VERIFY-002");
    store_case_t b = mk_case(2, 500, "310000", "440000", "SI-PUSH-001");
    put_case(fx->st, NULL, &a);
    put_case(fx->st, NULL, &b);

    store_txn_t *t = NULL;
    uint8_t ids[4][16];
    int64_t times[4];
    size_t n = 0;
    int64_t first = 0;
    assert_int_equal(store_begin(fx->st, &t), 0);
    store_case_t got;
    assert_int_equal(store_case_get(t, a.id, &got), 0);
    assert_memory_equal(&got, &a, sizeof a);
    assert_int_equal(store_deadline_first(t, &first), 0);
    assert_int_equal(first, 510);
    /* Only what is due, earliest first. */
    assert_int_equal(store_deadlines_due(t, 1009, ids, times, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(ids[0], b.id, 16);
    assert_int_equal(store_deadlines_due(t, 1010, ids, times, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(times[0], 510);
    assert_int_equal(times[1], 1010);
    store_abort(&t);

    /* b moves on to its time limit, a closes: the index follows. */
    store_case_t b2 = b, a2 = a;
    b2.flags |= STORE_CASE_F_REMINDED;
    b2.state = STORE_CASE_REMINDED;
    b2.next_ms = b.due_ms;
    put_case(fx->st, &b, &b2);
    a2.state = STORE_CASE_ANSWERED;
    a2.next_ms = 0;
    a2.closed_ms = 1005;
    put_case(fx->st, &a, &a2);
    assert_int_equal(store_begin(fx->st, &t), 0);
    assert_int_equal(store_deadlines_due(t, INT64_MAX, ids, times, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(ids[0], b.id, 16);
    assert_int_equal(times[0], 520);
    store_abort(&t);

    store_reader_t *r = NULL;
    uint64_t counts[STORE_CASE_STATES];
    assert_int_equal(store_reader_open(fx->st, &r), 0);
    assert_int_equal(store_case_counts(r, counts), 0);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[STORE_CASE_OPEN], 0);
    assert_int_equal(counts[STORE_CASE_REMINDED], 1);
    assert_int_equal(counts[STORE_CASE_ANSWERED], 1);
    store_reader_close(&r);
}

static void test_case_list_filters_newest_first_and_pages(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    const char *regions[3] = {"110000", "310000", "440000"};
    for (uint8_t i = 1; i <= 30; i++) {
        store_case_t c = mk_case(i, 1000 + i, regions[i % 3], "650000",
                                 i % 2 ? "SI-VERIFY-002" : "SI-PUSH-001");
        if (i % 5 == 0) {
            c.state = STORE_CASE_EXPIRED;
            c.next_ms = 0;
        }
        put_case(fx->st, NULL, &c);
    }
    store_reader_t *r = NULL;
    store_case_t out[64];
    size_t n = 0;
    assert_int_equal(store_reader_open(fx->st, &r), 0);
    store_case_filter_t f = {0};
    assert_int_equal(store_case_list(r, &f, NULL, out, 64, &n), 0);
    assert_int_equal(n, 30);
    for (size_t i = 1; i < n; i++)
        assert_true(out[i - 1].opened_ms > out[i].opened_ms);
    /* Pages of 7 give the same 30, in the same order. */
    store_case_t page[7];
    size_t total = 0, m;
    const store_case_t *after = NULL;
    store_case_t last;
    do {
        assert_int_equal(store_case_list(r, &f, after, page, 7, &m), 0);
        for (size_t i = 0; i < m; i++)
            assert_memory_equal(page[i].id, out[total + i].id, 16);
        total += m;
        if (m) {
            last = page[m - 1];
            after = &last;
        }
    } while (m == 7);
    assert_int_equal(total, 30);
    f = (store_case_filter_t){.region = "110000", .item = "SI-VERIFY-002"};
    assert_int_equal(store_case_list(r, &f, NULL, out, 64, &n), 0);
    assert_int_equal(n, 5); /* i odd with i % 3 == 0: 3, 9, 15, 21, 27 */
    for (size_t i = 0; i < n; i++)
        assert_string_equal(out[i].requester, "110000");
    f = (store_case_filter_t){.state = STORE_CASE_EXPIRED};
    assert_int_equal(store_case_list(r, &f, NULL, out, 64, &n), 0);
    assert_int_equal(n, 6);
    f = (store_case_filter_t){.open_only = 1, .opened_after_ms = 1011, .opened_before_ms = 1021};
    assert_int_equal(store_case_list(r, &f, NULL, out, 64, &n), 0);
    assert_int_equal(n, 8); /* 1011..1020, without 1015 and 1020 */
    assert_int_equal(out[0].opened_ms, 1019);
    assert_int_equal(out[n - 1].opened_ms, 1011);
    f = (store_case_filter_t){.region = "650000"};
    assert_int_equal(store_case_list(r, &f, NULL, out, 64, &n), 0);
    assert_int_equal(n, 30); /* the handler's too */
    store_reader_close(&r);
}

static void test_case_timeline_and_tracked_deliveries(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t id[16], other[16];
    memset(id, 7, 16);
    memset(other, 8, 16);
    store_txn_t *t = NULL;
    uint8_t flags = 0;
    assert_int_equal(store_begin(fx->st, &t), 0);
    assert_int_equal(store_case_event(t, id, 30), 0);
    assert_int_equal(store_case_event(t, id, 4), 0);
    assert_int_equal(store_case_event(t, other, 5), 0);
    assert_int_equal(store_tracked_put(t, id, "440000", 9, 1), 0);
    assert_int_equal(store_tracked_put(t, id, "110000", 3, 0), 0);
    assert_int_equal(store_tracked_confirm(t, id, "440000", 1234, &flags), 0);
    assert_int_equal(flags, 1);
    assert_int_equal(store_tracked_confirm(t, id, "440000", 1300, &flags), NHUB_EEXIST);
    assert_int_equal(store_tracked_confirm(t, id, "310000", 1300, &flags), NHUB_ENOTFOUND);
    assert_int_equal(store_commit(&t), 0);

    store_reader_t *r = NULL;
    uint64_t seqs[8];
    size_t n = 0;
    store_tracked_t tr[8];
    assert_int_equal(store_reader_open(fx->st, &r), 0);
    assert_int_equal(store_case_timeline(r, id, 0, seqs, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(seqs[0], 4);
    assert_int_equal(seqs[1], 30);
    assert_int_equal(store_case_timeline(r, id, 5, seqs, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_tracked_list(r, id, tr, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(tr[0].region, "110000");
    assert_int_equal(tr[0].confirmed_ms, 0);
    assert_string_equal(tr[1].region, "440000");
    assert_int_equal(tr[1].dseq, 9);
    assert_int_equal(tr[1].confirmed_ms, 1234);
    store_reader_close(&r);
}

static void test_read_only_view_sees_cases_and_cannot_write(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_case_t c = mk_case(3, 42, "110000", "440000", "SI-VERIFY-002");
    put_case(fx->st, NULL, &c);
    store_t *ro = NULL;
    char err[256];
    assert_int_equal(store_open_reader(fx->dir, &ro, err, sizeof err), 0);
    assert_memory_equal(store_hub_id(ro), store_hub_id(fx->st), STORE_ID_LEN);
    store_reader_t *r = NULL;
    store_case_t got;
    assert_int_equal(store_reader_open(ro, &r), 0);
    assert_int_equal(store_case_read(r, c.id, &got), 0);
    assert_string_equal(got.item, "SI-VERIFY-002");
    store_reader_close(&r);
    store_txn_t *t = NULL;
    assert_int_equal(store_begin(ro, &t), NHUB_EINVAL);
    store_close(&ro);
    /* Not a store: named. */
    assert_int_equal(store_open_reader(fx->tmp, &ro, err, sizeof err), NHUB_ESTORE);
    assert_non_null(strstr(err, fx->tmp));
}

/* The queue depth kept in qtail follows puts and removes, and a store from
 * before it (8-byte qtail values) gets its counts at open. */
static void test_queue_depth_follows_puts_and_removes_and_is_counted_on_upgrade(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    uint8_t id[16];
    uint64_t dseq, seq, n = 0;
    store_txn_t *t = begin(fx->st);
    for (unsigned i = 1; i <= 5; i++) {
        make_id(id, i);
        assert_int_equal(store_queue_put(t, "440000", i, id, &dseq), 0);
    }
    make_id(id, 9);
    assert_int_equal(store_queue_put(t, "110000", 9, id, &dseq), 0);
    make_id(id, 2);
    assert_int_equal(store_queue_remove(t, "440000", 2, id, &seq), 0);
    commit(&t);
    store_reader_t *rd = NULL;
    assert_int_equal(store_reader_open(fx->st, &rd), 0);
    assert_int_equal(store_queue_depth(rd, "440000", &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(store_queue_depth(rd, "110000", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_queue_depth(rd, "310000", &n), 0);
    assert_int_equal(n, 0);
    store_reader_close(&rd);
    store_close(&fx->st);
    /* What an older nhubd wrote: the next dseq alone. */
    uint8_t next[8];
    put_be64(next, 6);
    raw_put(fx->dir, "qtail", "440000", 6, next, 8);
    open_ok(fx);
    assert_int_equal(store_reader_open(fx->st, &rd), 0);
    assert_int_equal(store_queue_depth(rd, "440000", &n), 0);
    assert_int_equal(n, 4);
    store_reader_close(&rd);
    t = begin(fx->st);
    make_id(id, 6);
    assert_int_equal(store_queue_put(t, "440000", 6, id, &dseq), 0);
    assert_int_equal(dseq, 6); /* the dseq sequence went on */
    commit(&t);
}

static void test_operator_state_round_trips_and_defaults_to_nothing(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_opstate_t st = {0}, got;
    store_txn_t *t = begin(fx->st);
    assert_int_equal(store_opstate_get(t, "440000", &got), 0);
    assert_false(got.suspended || got.paused || got.rate || got.reason[0] || got.by[0]);
    st.suspended = 1;
    st.paused = 1;
    st.rate = 70000;
    snprintf(st.reason, sizeof st.reason, "系统维护 maintenance");
    snprintf(st.by, sizeof st.by, "ops@127.0.0.1");
    assert_int_equal(store_opstate_put(t, "440000", &st), 0);
    commit(&t);
    reopen(fx);
    t = begin(fx->st);
    assert_int_equal(store_opstate_get(t, "440000", &got), 0);
    assert_int_equal(got.suspended, 1);
    assert_int_equal(got.paused, 1);
    assert_int_equal(got.rate, 70000);
    assert_string_equal(got.reason, st.reason);
    assert_string_equal(got.by, st.by);
    store_abort(&t);
    /* A record cut short is refused, not read past. */
    store_close(&fx->st);
    raw_put(fx->dir, "meta", "opstate/440000", 14, "\x01\0\0\0\0\x30", 6);
    open_ok(fx);
    t = begin(fx->st);
    assert_int_equal(store_opstate_get(t, "440000", &got), NHUB_EMALFORMED);
    store_abort(&t);
}

/* The evaluation figures are sums over the handler's cases, kept with
 * every put, also across more pairs than one transaction buffers. */
static void test_case_stats_follow_every_case_change(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    store_case_t a = mk_case(1, 1000, "110000", "440000", "SI-VERIFY-002");
    store_case_t b = mk_case(2, 1000, "110000", "440000", "SI-VERIFY-002");
    put_case(fx->st, NULL, &a);
    put_case(fx->st, NULL, &b);
    store_case_t a2 = a, b2 = b;
    a2.state = STORE_CASE_ANSWERED; /* in time: closed at 1015, due 1020 */
    a2.closed_ms = 1015;
    a2.next_ms = 0;
    put_case(fx->st, &a, &a2);
    b2.flags |= STORE_CASE_F_OVERDUE;
    b2.state = STORE_CASE_OVERDUE;
    put_case(fx->st, &b, &b2);
    store_case_t b3 = b2;
    b3.state = STORE_CASE_EXPIRED;
    b3.closed_ms = 1030;
    b3.next_ms = 0;
    /* 20 other pairs in the same transaction as b's expiry */
    store_txn_t *t = begin(fx->st);
    char item[16];
    for (uint8_t i = 0; i < 20; i++) {
        snprintf(item, sizeof item, "SI-X-%02u", i);
        store_case_t c = mk_case((uint8_t)(10 + i), 2000, "110000", "310000", item);
        assert_int_equal(store_case_put(t, NULL, &c), 0);
    }
    assert_int_equal(store_case_put(t, &b2, &b3), 0);
    commit(&t);
    store_reader_t *rd = NULL;
    assert_int_equal(store_reader_open(fx->st, &rd), 0);
    store_case_stat_t out[64];
    size_t n = 0;
    assert_int_equal(store_case_stats(rd, out, 64, &n), 0);
    store_reader_close(&rd);
    assert_int_equal(n, 21);
    const store_case_stat_t *g = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(out[i].handler, "440000"))
            g = &out[i];
    assert_non_null(g);
    assert_string_equal(g->item, "SI-VERIFY-002");
    assert_int_equal(g->v[STORE_CSTAT_OPENED], 2);
    assert_int_equal(g->v[STORE_CSTAT_OPEN], 0);
    assert_int_equal(g->v[STORE_CSTAT_OVERDUE_OPEN], 0);
    assert_int_equal(g->v[STORE_CSTAT_EVER_OVERDUE], 1);
    assert_int_equal(g->v[STORE_CSTAT_ANSWERED], 1);
    assert_int_equal(g->v[STORE_CSTAT_IN_TIME], 1);
    assert_int_equal(g->v[STORE_CSTAT_EXPIRED], 1);
    assert_int_equal(g->v[STORE_CSTAT_CLOSED], 2);
    assert_int_equal(g->v[STORE_CSTAT_HANDLING_MS], 15); /* the expired one was not handled */
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i].handler, "440000")) {
            assert_int_equal(out[i].v[STORE_CSTAT_OPEN], 1);
            assert_int_equal(out[i].v[STORE_CSTAT_OPENED], 1);
        }
}

/* A bounded walk stops where it was, and reading on from there finds the
 * rest; past_due_at keeps open cases past their time limit only. */
static void test_case_scan_is_bounded_and_reads_on(void **state)
{
    fx_t *fx = *state;
    open_ok(fx);
    for (uint8_t i = 1; i <= 30; i++) {
        store_case_t c = mk_case(i, 1000 + i, "110000", "650000", "SI-VERIFY-002");
        c.due_ms = i <= 10 ? 1500 : 9000; /* the oldest ten are due at 1500 */
        if (i == 3) {
            c.state = STORE_CASE_ANSWERED; /* closed: never past due */
            c.next_ms = 0;
        }
        put_case(fx->st, NULL, &c);
    }
    store_reader_t *r = NULL;
    assert_int_equal(store_reader_open(fx->st, &r), 0);
    store_case_filter_t f = {.past_due_at_ms = 2000};
    store_case_t out[64], last, page_last;
    size_t n = 0, total = 0;
    int stopped = 0, pages = 0;
    const store_case_t *after = NULL;
    do {
        assert_int_equal(store_case_scan(r, &f, after, out, 64, &n, 8, &stopped, &last), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(out[i].due_ms <= 2000);
            assert_false(store_case_closed(out[i].state));
        }
        total += n;
        pages++;
        page_last = last;
        after = &page_last;
    } while (stopped);
    assert_int_equal(total, 9);  /* ten due, one of them closed */
    assert_int_equal(pages, 4);  /* 8 + 8 + 8 looked at, then the last 6 */
    store_reader_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_open_creates_private_dir_and_reopen_keeps_hub_id),
        T(test_cases_round_trip_with_deadlines_in_time_order_and_counts),
        T(test_case_list_filters_newest_first_and_pages),
        T(test_case_scan_is_bounded_and_reads_on),
        T(test_case_timeline_and_tracked_deliveries),
        T(test_read_only_view_sees_cases_and_cannot_write),
        T(test_open_creates_missing_parents),
        T(test_open_on_a_regular_file_fails_with_eio_and_names_it),
        T(test_empty_journal_has_last_zero_and_verifies),
        T(test_journal_append_numbers_from_one_with_sha256_chain),
        T(test_flipped_event_byte_fails_verify_at_its_seq),
        T(test_flipped_hash_byte_fails_verify_at_its_seq),
        T(test_truncated_journal_tail_fails_verify),
        T(test_deleted_record_fails_verify),
        T(test_short_journal_record_is_malformed),
        T(test_open_refuses_unknown_format_and_bad_hub_id),
        T(test_sequence_and_chain_continue_after_reopen),
        T(test_aborted_transaction_leaves_nothing_and_consumes_no_seq),
        T(test_second_begin_while_one_is_open_is_refused),
        T(test_commit_without_changes_keeps_sequence),
        T(test_reader_sees_a_snapshot),
        T(test_queue_put_numbers_each_region_from_one),
        T(test_queue_scan_reads_from_cursor_in_order_and_stops_at_region_end),
        T(test_queue_remove_returns_seq_and_dseq_is_never_reused),
        T(test_lanes_index_the_queue_by_class_and_source),
        T(test_format2_queue_gets_its_lanes_at_open),
        T(test_tree_follows_the_journal_and_proves),
        T(test_tree_is_built_at_open_for_an_older_store),
        T(test_msgseq_finds_accepted_messages_and_a_format3_store_is_indexed_at_open),
        T(test_a_dropped_tree_is_built_again_at_the_next_open),
        T(test_checkpoints_are_kept_by_size),
        T(test_tree_hash_sm3_is_kept_once_chosen),
        T(test_checkpoint_next_walks_sizes_in_order),
        T(test_journal_walk_gives_records_in_order_from_a_seq_and_stops_when_asked),
        T(test_queue_remove_with_wrong_msg_id_is_not_found_and_keeps_entry),
        T(test_held_is_recorded_once_per_reason_listed_in_order_and_survives_reopen),
        T(test_dedup_put_then_get_returns_seq),
        T(test_dedup_expire_forgets_only_entries_before_cutoff_up_to_max),
        T(test_dedup_expire_walks_across_pages),
        T(test_stream_last_is_zero_until_put_and_survives_reopen),
        T(test_rejects_are_remembered_per_stream_and_seq),
        T(test_rejections_expire_with_the_window),
        T(test_format1_store_upgraded_and_its_rejections_expire),
        T(test_queue_depth_follows_puts_and_removes_and_is_counted_on_upgrade),
        T(test_operator_state_round_trips_and_defaults_to_nothing),
        T(test_case_stats_follow_every_case_change),
        T(test_grow_doubles_up_to_limit_then_is_full),
        T(test_limit_below_initial_map_means_no_growth),
        T(test_full_map_grows_until_limit_and_full_writes_apply_nothing),
        T(test_store_still_works_after_full_when_space_is_freed),
        T(test_prune_removes_only_archived_unqueued_bodies_and_the_chain_goes_on),
        T(test_msgseq_keeps_every_record_of_a_msg_id_and_pruning_forgets_only_its_own),
        T(test_event_time_is_read_without_decoding),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
