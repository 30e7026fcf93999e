/*
 * store.c: the hub's LMDB environment, journal and indexes (see store.h).
 *
 * Why these choices:
 *  - One environment, several named databases, so a single write
 *    transaction covers the journal and every index it touches.
 *  - The journal uses MDB_APPEND (keys only grow), the cheapest insert LMDB
 *    has; the chain hash is computed here, inside the transaction, so a
 *    record and its hash can never be written apart.
 *  - Default sync flags: mdb_txn_commit returns only after fsync. Nothing in
 *    this file weakens that.
 *  - MDB_NOTLS so read transactions are not tied to a thread (a later HTTP
 *    or audit thread may hold one); readers are closed promptly because
 *    growing the map needs no transaction open in this process.
 */
#include "store_internal.h"

#include "log.h"
#include "nhub_err.h"
#include "path.h"

#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* 1: the first; 2: rejections are remembered in the window's age index too
 * (they expire with the duplicate window); 3: lanes; 4: the msgseq index
 * (store_msgseq.c). An older store is upgraded at open. */
#define STORE_FORMAT 4
static int set_err(char *err, size_t cap, int code, const char *fmt, const char *a, const char *b)
{
    if (err && cap)
        snprintf(err, cap, fmt, a, b);
    return code;
}

static int open_dbs(store_t *s, MDB_txn *txn)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {
        {"meta", &s->meta},       {"journal", &s->journal}, {"queue", &s->queue},
        {"qtail", &s->qtail},     {"dedup", &s->dedup},     {"dedup_age", &s->dedup_age},
        {"streams", &s->streams}, {"rejects", &s->rejects}, {"held", &s->held},
        {"lanes", &s->lanes},
    };
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        int rc = mdb_dbi_open(txn, dbs[i].name, s->read_only ? 0 : MDB_CREATE, dbs[i].dbi);
        if (rc)
            return rc;
    }
    int rc = store_cases_open_dbs(s, txn);
    if (!rc)
        rc = store_msgseq_open_db(s, txn);
    return rc ? rc : store_tree_open_dbs(s, txn);
}

/*
 * Format 1 -> 2: give every remembered rejection an entry in the window's age
 * index, so it expires with the window. Its time is not stored in format 1;
 * it takes the newest time the window holds (or 0 if the window is empty),
 * so it is kept as long as the newest remembered message. Age keys need a
 * second part unique per time: 0, 1, 2, ... skipping keys already taken.
 */
static int upgrade_format1(store_t *s, MDB_txn *txn)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    uint64_t newest = 0, n = 0, moved = 0;
    int rc = mdb_cursor_open(txn, s->dedup_age, &c);
    if (!rc && (rc = mdb_cursor_get(c, &k, &v, MDB_LAST)) == 0 && k.mv_size == 16)
        newest = get_be64(k.mv_data);
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->rejects, &c)))
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != AGE_REJECT_LEN)
            continue;
        uint8_t age[16];
        put_be64(age, newest);
        do { /* on MDB_KEYEXIST, LMDB points av at the existing value: set it each time */
            put_be64(age + 8, n++);
            MDB_val ak = {16, age}, av = {AGE_REJECT_LEN, k.mv_data};
            rc = mdb_put(txn, s->dedup_age, &ak, &av, MDB_NOOVERWRITE);
        } while (rc == MDB_KEYEXIST);
        if (rc)
            break;
        moved++;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    log_info("store.upgraded", "format=2 rejections=%llu", (unsigned long long)moved);
    return 0;
}

#define LKEY_LEN (REGION_LEN + 1 + REGION_LEN + 8) /* region class source dseq */
#define LVAL_LEN (8 + 16 + 4)                      /* seq msg_id size */
#define QVAL_OLD 24                                /* seq msg_id: before format 3 */
#define QVAL_LEN (QVAL_OLD + 1 + REGION_LEN + 4)   /* + class source size */
static const store_lane_t old_lane = {0, "000000"};

static void lkey(uint8_t key[LKEY_LEN], const char *region, const store_lane_t *lane, uint64_t dseq)
{
    memcpy(key, region, REGION_LEN);
    key[REGION_LEN] = lane->cls;
    memcpy(key + REGION_LEN + 1, lane->source, REGION_LEN);
    put_be64(key + 2 * REGION_LEN + 1, dseq);
}

/*
 * Format 2 -> 3: every queued message gets its entry in `lanes`. Their class
 * and source are not in the format-2 queue; they share the lane {0,
 * 000000} (delivered in dseq order, as before), their size unknown (0).
 */
static int index_lanes(store_t *s, MDB_txn *txn)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t n = 0;
    int rc = mdb_cursor_open(txn, s->queue, &c);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != QKEY_LEN || v.mv_size != QVAL_OLD)
            continue;
        uint8_t key[LKEY_LEN], val[LVAL_LEN];
        char region[REGION_LEN + 1];
        memcpy(region, k.mv_data, REGION_LEN);
        region[REGION_LEN] = 0;
        lkey(key, region, &old_lane, get_be64((const uint8_t *)k.mv_data + REGION_LEN));
        memcpy(val, v.mv_data, QVAL_OLD);
        memset(val + QVAL_OLD, 0, 4);
        MDB_val lk = {LKEY_LEN, key}, lv = {LVAL_LEN, val};
        if ((rc = mdb_put(txn, s->lanes, &lk, &lv, 0)))
            break;
        n++;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    log_info("store.lanes_indexed", "queued=%llu", (unsigned long long)n);
    return 0;
}

/* Create the meta records of a new store, or read and check an old one's. */
static int load_meta(store_t *s, MDB_txn *txn, char *err, size_t cap)
{
    uint8_t fmt_be[4];
    int rc = meta_get(s, txn, "format", fmt_be, sizeof fmt_be);
    if (rc == MDB_NOTFOUND) {
        const uint8_t fresh[4] = {0, 0, 0, STORE_FORMAT};
        if (RAND_bytes(s->hub_id, sizeof s->hub_id) != 1)
            return set_err(err, cap, NHUB_ECRYPTO, "%s%s", "no random source for the hub id", "");
        memset(s->last_hash, 0, sizeof s->last_hash);
        s->next_seq = 1;
        if ((rc = meta_put(s, txn, "format", fresh, 4)) ||
            (rc = meta_put(s, txn, "hub_id", s->hub_id, sizeof s->hub_id)))
            return set_err(err, cap, lmdb_err(rc), "store: cannot initialise: %s%s",
                           mdb_strerror(rc), "");
        return 0;
    }
    if (rc)
        return set_err(err, cap, NHUB_ESTORE, "store: cannot read format: %s%s", mdb_strerror(rc),
                       "");
    uint32_t fmt = (uint32_t)fmt_be[0] << 24 | (uint32_t)fmt_be[1] << 16 |
                   (uint32_t)fmt_be[2] << 8 | fmt_be[3];
    char fmt_text[16];
    snprintf(fmt_text, sizeof fmt_text, "%u", fmt);
    if (fmt == 0 || fmt > STORE_FORMAT)
        return set_err(err, cap, NHUB_EVERSION, "store: format %s is not supported%s", fmt_text,
                       " (this nhubd reads formats 1 to 4)");
    if ((fmt < 2 && (rc = upgrade_format1(s, txn))) || (fmt < 3 && (rc = index_lanes(s, txn))) ||
        (fmt < 4 && (rc = store_msgseq_begin(s, txn))))
        return set_err(err, cap, lmdb_err(rc), "store: cannot upgrade format %s: %s", fmt_text,
                       mdb_strerror(rc));
    if (fmt < STORE_FORMAT) {
        const uint8_t now_fmt[4] = {0, 0, 0, STORE_FORMAT};
        if ((rc = meta_put(s, txn, "format", now_fmt, 4)))
            return set_err(err, cap, lmdb_err(rc), "store: cannot upgrade format %s: %s",
                           fmt_text, mdb_strerror(rc));
        log_info("store.upgraded", "from=%s format=%d", fmt_text, STORE_FORMAT);
    }
    if ((rc = meta_get(s, txn, "hub_id", s->hub_id, sizeof s->hub_id)))
        return set_err(err, cap, NHUB_ESTORE, "store: hub_id: %s%s", mdb_strerror(rc), "");
    uint8_t seq_be[8];
    rc = meta_get(s, txn, "next_seq", seq_be, sizeof seq_be);
    if (rc == MDB_NOTFOUND) {
        s->next_seq = 1;
        memset(s->last_hash, 0, sizeof s->last_hash);
        return 0;
    }
    if (rc || (rc = meta_get(s, txn, "last_hash", s->last_hash, sizeof s->last_hash)))
        return set_err(err, cap, NHUB_ESTORE, "store: chain state: %s%s", mdb_strerror(rc), "");
    s->next_seq = get_be64(seq_be);
    return 0;
}

#define QTAIL_UPGRADE_MAX 4096 /* regions counted at open (cfg.h allows 4096) */
static void qkey(uint8_t key[QKEY_LEN], const char *region, uint64_t dseq);
static int qtail_get(MDB_txn *txn, const store_t *s, const char *region, uint64_t *next,
                     uint64_t *depth);
static int qtail_put(MDB_txn *txn, const store_t *s, const char *region, uint64_t next,
                     uint64_t depth);

/*
 * Give every qtail entry without a count (a store from before it) the
 * number of its region's queued messages: one walk of the queue, once.
 */
static int count_queues(store_t *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    char regions[QTAIL_UPGRADE_MAX][REGION_LEN];
    size_t n = 0;
    int rc = mdb_cursor_open(txn, s->qtail, &cur);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (v.mv_size == 8 && k.mv_size == REGION_LEN && n < QTAIL_UPGRADE_MAX)
            memcpy(regions[n++], k.mv_data, REGION_LEN);
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char code[REGION_LEN + 1];
        memcpy(code, regions[i], REGION_LEN);
        code[REGION_LEN] = 0;
        uint64_t depth = 0, next, unused;
        uint8_t from[QKEY_LEN];
        qkey(from, code, 0);
        if ((rc = mdb_cursor_open(txn, s->queue, &cur)))
            return rc;
        k = (MDB_val){QKEY_LEN, from};
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             !rc && k.mv_size == QKEY_LEN && memcmp(k.mv_data, code, REGION_LEN) == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
            depth++;
        mdb_cursor_close(cur);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
        if ((rc = qtail_get(txn, s, code, &next, &unused)) ||
            (rc = qtail_put(txn, s, code, next, depth)))
            return rc;
    }
    return 0;
}

int store_open(const char *dir, uint64_t map_size, uint64_t map_size_max, store_t **out, char *err,
               size_t errcap)
{
    return store_open_tree(dir, map_size, map_size_max, TLOG_SHA256, out, err, errcap);
}

int store_open_tree(const char *dir, uint64_t map_size, uint64_t map_size_max, tlog_alg_t tree_alg,
                    store_t **out, char *err, size_t errcap)
{
    *out = NULL;
    int erc = path_mkdir_p(dir);
    if (erc != 0)
        return set_err(err, errcap, NHUB_EIO, "store: cannot create %s: %s", dir, strerror(erc));
    store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NHUB_ENOMEM;
    int code = NHUB_ESTORE;
    MDB_txn *txn = NULL;
    s->map_size = map_size;
    s->map_max = map_size_max < map_size ? map_size : map_size_max;
    s->md = EVP_MD_CTX_new();
    s->dir = strdup(dir);
    int rc = s->md && s->dir ? mdb_env_create(&s->env) : ENOMEM;
    if (rc)
        goto fail_rc;
    if ((rc = mdb_env_set_maxdbs(s->env, 24)) || (rc = mdb_env_set_maxreaders(s->env, 256)) ||
        (rc = mdb_env_set_mapsize(s->env, (size_t)map_size)))
        goto fail_rc;
    if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)))
        goto fail_rc;
    /* A file larger than the configured map (it grew last time) keeps its size. */
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
        s->map_size = info.me_mapsize;
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead)
        log_warn("store.stale_readers", "cleared=%d", dead);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) || (rc = open_dbs(s, txn)))
        goto fail_rc;
    if ((code = load_meta(s, txn, err, errcap)))
        goto fail;
    if ((rc = count_queues(s, txn)))
        goto fail_rc;
    if ((code = store_tree_load(s, txn, tree_alg, err, errcap)))
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto fail_rc;
    if ((code = store_msgseq_index(s, err, errcap)))
        goto fail;
    *out = s;
    return 0;
fail_rc:
    code = lmdb_err(rc) == NHUB_EFULL ? NHUB_EFULL : NHUB_ESTORE;
    set_err(err, errcap, code, "store: cannot open %s: %s", dir,
            rc == ENOMEM ? "out of memory" : mdb_strerror(rc));
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (s->env)
        mdb_env_close(s->env);
    EVP_MD_CTX_free(s->md);
    tlog_state_free(&s->tree);
    free(s->dir);
    free(s);
    return code;
}

int store_open_reader(const char *dir, store_t **out, char *err, size_t errcap)
{
    *out = NULL;
    store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NHUB_ENOMEM;
    MDB_txn *txn = NULL;
    s->read_only = 1;
    s->md = EVP_MD_CTX_new();
    s->dir = strdup(dir);
    int rc = s->md && s->dir ? mdb_env_create(&s->env) : ENOMEM;
    if (!rc && !(rc = mdb_env_set_maxdbs(s->env, 24)) &&
        !(rc = mdb_env_set_maxreaders(s->env, 256)) &&
        !(rc = mdb_env_open(s->env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) &&
        !(rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)))
        rc = open_dbs(s, txn);
    if (!rc)
        rc = meta_get(s, txn, "hub_id", s->hub_id, sizeof s->hub_id);
    if (!rc) /* committed, not aborted: the handles opened in it stay open */
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        set_err(err, errcap, NHUB_ESTORE, "store: cannot read %s: %s", dir,
                rc == MDB_NOTFOUND ? "not an nhub store (or one older than this program)"
                : rc == ENOMEM     ? "out of memory"
                                   : mdb_strerror(rc));
        store_close(&s);
        return NHUB_ESTORE;
    }
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0)
        s->map_size = s->map_max = info.me_mapsize;
    *out = s;
    return 0;
}

void store_close(store_t **self)
{
    if (!self || !*self)
        return;
    store_t *s = *self;
    mdb_env_close(s->env);
    EVP_MD_CTX_free(s->md);
    tlog_state_free(&s->tree);
    free(s->dir);
    free(s);
    *self = NULL;
}

tlog_alg_t store_tree_alg(const store_t *self)
{
    return self->tree ? tlog_state_alg(self->tree) : TLOG_SHA256;
}

const uint8_t *store_hub_id(const store_t *self)
{
    return self->hub_id;
}

uint64_t store_map_size(const store_t *self)
{
    return self->map_size;
}

/*
 * Pages on LMDB's freelist (database 0), which later writes reuse. Each
 * freelist record is an ID list whose first element is its length; this is
 * how lmdb-utils' mdb_stat -f counts them.
 */
static uint64_t free_pages(const store_t *self)
{
    MDB_txn *txn;
    MDB_cursor *c;
    uint64_t pages = 0;
    if (mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, 0, &c) == 0) {
        MDB_val k, v;
        int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            size_t n = 0;
            if (v.mv_size >= sizeof n)
                memcpy(&n, v.mv_data, sizeof n); /* values are not aligned */
            pages += n;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    return pages;
}

int store_usage(store_t *self, uint64_t *used, uint64_t *limit, uint64_t *disk_free,
                uint64_t *disk_size)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(self->env, &info) != 0 || mdb_env_stat(self->env, &st) != 0)
        return NHUB_ESTORE;
    *used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    *limit = self->map_max;
    struct statvfs vfs;
    if (statvfs(self->dir, &vfs) == 0) {
        *disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        *disk_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    } else {
        *disk_free = UINT64_MAX;
        *disk_size = UINT64_MAX;
    }
    return 0;
}

uint64_t store_free_bytes(store_t *self)
{
    MDB_stat st;
    if (mdb_env_stat(self->env, &st) != 0)
        return 0;
    return free_pages(self) * st.ms_psize;
}

void store_set_map_max(store_t *self, uint64_t map_size_max)
{
    self->map_max = map_size_max;
}

int store_grow(store_t *self)
{
    if (self->map_size >= self->map_max)
        return NHUB_EFULL;
    uint64_t next = self->map_size * 2;
    if (next > self->map_max || next < self->map_size)
        next = self->map_max;
    int rc = mdb_env_set_mapsize(self->env, (size_t)next);
    if (rc) {
        log_error("store.grow_failed", "map_size=%llu error=%d", (unsigned long long)next, rc);
        return NHUB_ESTORE;
    }
    log_info("store.grew", "map_size=%llu map_size_max=%llu", (unsigned long long)next,
             (unsigned long long)self->map_max);
    self->map_size = next;
    return 0;
}

int store_reserve(store_t *self, uint64_t bytes)
{
    for (;;) {
        uint64_t used, limit, disk_free, disk_size;
        int rc = store_usage(self, &used, &limit, &disk_free, &disk_size);
        if (rc)
            return rc;
        if (used <= self->map_size && self->map_size - used >= bytes)
            return 0;
        if ((rc = store_grow(self)))
            return rc;
    }
}

int store_begin(store_t *self, store_txn_t **out)
{
    *out = NULL;
    if (self->txn_open || self->read_only)
        return NHUB_EINVAL;
    store_txn_t *t = calloc(1, sizeof *t);
    if (!t)
        return NHUB_ENOMEM;
    int rc = mdb_txn_begin(self->env, NULL, 0, &t->txn);
    if (rc) {
        free(t);
        return lmdb_err(rc);
    }
    t->store = self;
    t->next_seq = self->next_seq;
    memcpy(t->last_hash, self->last_hash, STORE_HASH_LEN);
    self->txn_open = 1;
    *out = t;
    return 0;
}

static void txn_free(store_txn_t **txn)
{
    (*txn)->store->txn_open = 0;
    free(*txn);
    *txn = NULL;
}

void store_abort(store_txn_t **txn)
{
    if (!txn || !*txn)
        return;
    mdb_txn_abort((*txn)->txn);
    store_tree_rollback(*txn);
    txn_free(txn);
}

int store_commit(store_txn_t **txn)
{
    store_txn_t *t = *txn;
    store_t *s = t->store;
    int rc = t->cases_dirty ? store_cases_flush(t) : 0;
    if (rc) {
        store_abort(txn);
        return lmdb_err(rc);
    }
    if (t->chain_dirty) {
        uint8_t seq_be[8];
        put_be64(seq_be, t->next_seq);
        if ((rc = meta_put(s, t->txn, "next_seq", seq_be, 8)) ||
            (rc = meta_put(s, t->txn, "last_hash", t->last_hash, STORE_HASH_LEN)) ||
            (rc = store_tree_flush(t))) {
            store_abort(txn);
            return lmdb_err(rc);
        }
    }
    rc = mdb_txn_commit(t->txn);
    if (rc)
        store_tree_rollback(t);
    if (rc == 0 && t->chain_dirty) {
        s->next_seq = t->next_seq;
        memcpy(s->last_hash, t->last_hash, STORE_HASH_LEN);
    }
    if (rc)
        log_error("store.commit_failed", "error=\"%s\"", mdb_strerror(rc));
    txn_free(txn);
    return lmdb_err(rc);
}

static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *store_sha256(void)
{
    pthread_once(&g_sha256_once, fetch_sha256);
    return g_sha256 ? g_sha256 : EVP_sha256();
}

static int chain_hash(EVP_MD_CTX *md, const uint8_t prev[STORE_HASH_LEN], uint64_t seq,
                      const void *event, size_t len, uint8_t out[STORE_HASH_LEN])
{
    uint8_t seq_be[8];
    unsigned int outlen = 0;
    put_be64(seq_be, seq);
    if (EVP_DigestInit_ex(md, store_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, prev, STORE_HASH_LEN) != 1 || EVP_DigestUpdate(md, seq_be, 8) != 1 ||
        EVP_DigestUpdate(md, event, len) != 1 || EVP_DigestFinal_ex(md, out, &outlen) != 1 ||
        outlen != STORE_HASH_LEN)
        return NHUB_ECRYPTO;
    return 0;
}

int store_journal_append(store_txn_t *txn, const void *event, size_t len, uint64_t *seq)
{
    store_t *s = txn->store;
    uint8_t key_be[8], hash[STORE_HASH_LEN];
    int code = chain_hash(s->md, txn->last_hash, txn->next_seq, event, len, hash);
    if (code)
        return code;
    put_be64(key_be, txn->next_seq);
    MDB_val k = {8, key_be}, v = {STORE_HASH_LEN + len, NULL};
    int rc = mdb_put(txn->txn, s->journal, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc)
        return lmdb_err(rc);
    memcpy(v.mv_data, hash, STORE_HASH_LEN);
    memcpy((uint8_t *)v.mv_data + STORE_HASH_LEN, event, len);
    if ((code = store_tree_append(txn, event, len)))
        return code;
    memcpy(txn->last_hash, hash, STORE_HASH_LEN);
    *seq = txn->next_seq++;
    txn->chain_dirty = 1;
    return 0;
}

static void qkey(uint8_t key[QKEY_LEN], const char *region, uint64_t dseq)
{
    memcpy(key, region, REGION_LEN);
    put_be64(key + REGION_LEN, dseq);
}

/*
 * qtail holds, per region, the next dseq and the number of messages queued
 * (QTAIL_LEN); a store written before the count existed has the dseq alone
 * and gets its counts once, at open (count_queues).
 */
#define QTAIL_LEN 16

static int qtail_get(MDB_txn *txn, const store_t *s, const char *region, uint64_t *next,
                     uint64_t *depth)
{
    MDB_val tk = {REGION_LEN, (void *)region}, tv;
    *next = 1;
    *depth = 0;
    int rc = mdb_get(txn, s->qtail, &tk, &tv);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (tv.mv_size != QTAIL_LEN && tv.mv_size != 8)
        return MDB_CORRUPTED;
    *next = get_be64(tv.mv_data);
    if (tv.mv_size == QTAIL_LEN)
        *depth = get_be64((const uint8_t *)tv.mv_data + 8);
    return 0;
}

static int qtail_put(MDB_txn *txn, const store_t *s, const char *region, uint64_t next,
                     uint64_t depth)
{
    uint8_t raw[QTAIL_LEN];
    put_be64(raw, next);
    put_be64(raw + 8, depth);
    MDB_val tk = {REGION_LEN, (void *)region}, tv = {QTAIL_LEN, raw};
    return mdb_put(txn, s->qtail, &tk, &tv, 0);
}

int store_queue_put_lane(store_txn_t *txn, const char *region, const store_lane_t *lane,
                         uint64_t seq, const uint8_t msg_id[16], uint32_t size, uint64_t *dseq)
{
    store_t *s = txn->store;
    uint64_t next, depth;
    int rc = qtail_get(txn->txn, s, region, &next, &depth);
    if (rc)
        return lmdb_err(rc);
    uint8_t key[QKEY_LEN], val[QVAL_LEN], lk_raw[LKEY_LEN], lv_raw[LVAL_LEN];
    qkey(key, region, next);
    put_be64(val, seq);
    memcpy(val + 8, msg_id, 16);
    val[QVAL_OLD] = lane->cls;
    memcpy(val + QVAL_OLD + 1, lane->source, REGION_LEN);
    put_be32(val + QVAL_OLD + 1 + REGION_LEN, size);
    lkey(lk_raw, region, lane, next);
    memcpy(lv_raw, val, QVAL_OLD);
    put_be32(lv_raw + QVAL_OLD, size);
    MDB_val k = {QKEY_LEN, key}, v = {sizeof val, val};
    MDB_val lk = {LKEY_LEN, lk_raw}, lv = {LVAL_LEN, lv_raw};
    if ((rc = mdb_put(txn->txn, s->queue, &k, &v, 0)) ||
        (rc = mdb_put(txn->txn, s->lanes, &lk, &lv, 0)) ||
        (rc = qtail_put(txn->txn, s, region, next + 1, depth + 1)))
        return lmdb_err(rc);
    *dseq = next;
    return 0;
}

int store_queue_put(store_txn_t *txn, const char *region, uint64_t seq, const uint8_t msg_id[16],
                    uint64_t *dseq)
{
    return store_queue_put_lane(txn, region, &old_lane, seq, msg_id, 0, dseq);
}

int store_queue_depth(store_reader_t *r, const char *region, uint64_t *n)
{
    uint64_t next;
    return lmdb_err(qtail_get(r->txn, r->store, region, &next, n));
}

int store_queue_remove(store_txn_t *txn, const char *region, uint64_t dseq,
                       const uint8_t msg_id[16], uint64_t *seq)
{
    store_t *s = txn->store;
    uint8_t key[QKEY_LEN];
    qkey(key, region, dseq);
    MDB_val k = {QKEY_LEN, key}, v;
    int rc = mdb_get(txn->txn, s->queue, &k, &v);
    if (rc)
        return lmdb_err(rc);
    if ((v.mv_size != QVAL_LEN && v.mv_size != QVAL_OLD) ||
        memcmp((uint8_t *)v.mv_data + 8, msg_id, 16) != 0)
        return NHUB_EINVAL;
    *seq = get_be64(v.mv_data);
    store_lane_t lane = old_lane;
    if (v.mv_size == QVAL_LEN) {
        lane.cls = ((const uint8_t *)v.mv_data)[QVAL_OLD];
        memcpy(lane.source, (const uint8_t *)v.mv_data + QVAL_OLD + 1, REGION_LEN);
        lane.source[REGION_LEN] = 0;
    }
    uint8_t lk_raw[LKEY_LEN];
    lkey(lk_raw, region, &lane, dseq);
    MDB_val lk = {LKEY_LEN, lk_raw};
    uint64_t next, depth;
    if ((rc = mdb_del(txn->txn, s->lanes, &lk, NULL)) ||
        (rc = mdb_del(txn->txn, s->queue, &k, NULL)) ||
        (rc = qtail_get(txn->txn, s, region, &next, &depth)))
        return lmdb_err(rc);
    return lmdb_err(qtail_put(txn->txn, s, region, next, depth ? depth - 1 : 0));
}

/*
 * Held messages stay in the queue (an ACKed message is never dropped); this
 * index only says which of them wait, why and since when, so the first
 * hold is journaled once and operators can list them.
 */
int store_held_put(store_txn_t *txn, const char *region, uint64_t dseq, uint32_t reason,
                   int64_t time_ms)
{
    uint8_t key[QKEY_LEN], val[12];
    qkey(key, region, dseq);
    put_be64(val, (uint64_t)time_ms);
    for (int i = 0; i < 4; i++)
        val[8 + i] = (uint8_t)(reason >> (24 - 8 * i));
    MDB_val k = {QKEY_LEN, key}, v;
    int rc = mdb_get(txn->txn, txn->store->held, &k, &v);
    if (rc == 0 && v.mv_size == sizeof val && memcmp((uint8_t *)v.mv_data + 8, val + 8, 4) == 0)
        return NHUB_EEXIST;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdb_err(rc);
    if (rc == 0 && v.mv_size == sizeof val) /* a new reason: keep the time it was first held */
        put_be64(val, get_be64(v.mv_data));
    v = (MDB_val){sizeof val, val};
    rc = mdb_put(txn->txn, txn->store->held, &k, &v, 0);
    return lmdb_err(rc);
}

int store_held_remove(store_txn_t *txn, const char *region, uint64_t dseq)
{
    uint8_t key[QKEY_LEN];
    qkey(key, region, dseq);
    MDB_val k = {QKEY_LEN, key};
    return lmdb_err(mdb_del(txn->txn, txn->store->held, &k, NULL));
}

int store_dedup_get(store_txn_t *txn, const uint8_t msg_id[16], uint64_t *seq)
{
    MDB_val k = {16, (void *)msg_id}, v;
    int rc = mdb_get(txn->txn, txn->store->dedup, &k, &v);
    if (rc)
        return lmdb_err(rc);
    if (v.mv_size != 16)
        return NHUB_EMALFORMED;
    *seq = get_be64(v.mv_data);
    return 0;
}

/* Enter `what` (a dedup or rejects key) in the window's age index at time_ms;
 * `seq` (the journal seq of its event) makes the age key unique. */
static int age_put(store_txn_t *txn, int64_t time_ms, uint64_t seq, const void *what, size_t len)
{
    uint8_t age[16];
    put_be64(age, (uint64_t)time_ms);
    put_be64(age + 8, seq);
    MDB_val ak = {16, age}, av = {len, (void *)what};
    return mdb_put(txn->txn, txn->store->dedup_age, &ak, &av, 0);
}

int store_dedup_put(store_txn_t *txn, const uint8_t msg_id[16], uint64_t seq, int64_t time_ms)
{
    uint8_t val[16];
    put_be64(val, seq);
    put_be64(val + 8, (uint64_t)time_ms);
    MDB_val k = {16, (void *)msg_id}, v = {16, val};
    int rc = mdb_put(txn->txn, txn->store->dedup, &k, &v, 0);
    if (!rc)
        rc = age_put(txn, time_ms, seq, msg_id, AGE_DEDUP_LEN);
    return lmdb_err(rc);
}

int store_window_expire(store_txn_t *txn, int64_t before_ms, size_t max, size_t *n)
{
    MDB_cursor *c;
    *n = 0;
    int rc = mdb_cursor_open(txn->txn, txn->store->dedup_age, &c);
    if (rc)
        return lmdb_err(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && *n < max) {
        if (k.mv_size != 16 || (int64_t)get_be64(k.mv_data) >= before_ms)
            break;
        if (v.mv_size == AGE_DEDUP_LEN || v.mv_size == AGE_REJECT_LEN) {
            MDB_val dk = {v.mv_size, v.mv_data};
            MDB_dbi db = v.mv_size == AGE_DEDUP_LEN ? txn->store->dedup : txn->store->rejects;
            int drc = mdb_del(txn->txn, db, &dk, NULL);
            if (drc && drc != MDB_NOTFOUND) {
                rc = drc;
                break;
            }
        }
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        (*n)++;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
        if (rc == EINVAL || rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

int store_stream_get(store_txn_t *txn, const uint8_t stream_id[16], uint64_t *last, char *region)
{
    MDB_val k = {16, (void *)stream_id}, v;
    int rc = mdb_get(txn->txn, txn->store->streams, &k, &v);
    *last = 0;
    if (region)
        region[0] = '\0';
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return lmdb_err(rc);
    if (v.mv_size != 8 + REGION_LEN)
        return NHUB_EMALFORMED;
    *last = get_be64(v.mv_data);
    if (region) {
        memcpy(region, (uint8_t *)v.mv_data + 8, REGION_LEN);
        region[REGION_LEN] = '\0';
    }
    return 0;
}

static void reject_key(uint8_t key[AGE_REJECT_LEN], const uint8_t stream_id[16],
                       uint64_t stream_seq)
{
    memcpy(key, stream_id, 16);
    put_be64(key + 16, stream_seq);
}

int store_reject_put(store_txn_t *txn, const uint8_t stream_id[16], uint64_t stream_seq,
                     uint32_t code, uint64_t seq, int64_t time_ms)
{
    uint8_t key[AGE_REJECT_LEN], val[4] = {(uint8_t)(code >> 24), (uint8_t)(code >> 16),
                                           (uint8_t)(code >> 8), (uint8_t)code};
    reject_key(key, stream_id, stream_seq);
    MDB_val k = {sizeof key, key}, v = {sizeof val, val};
    int rc = mdb_put(txn->txn, txn->store->rejects, &k, &v, 0);
    if (!rc)
        rc = age_put(txn, time_ms, seq, key, sizeof key);
    return lmdb_err(rc);
}

int store_reject_get(store_txn_t *txn, const uint8_t stream_id[16], uint64_t stream_seq,
                     uint32_t *code)
{
    uint8_t key[AGE_REJECT_LEN];
    reject_key(key, stream_id, stream_seq);
    MDB_val k = {sizeof key, key}, v;
    int rc = mdb_get(txn->txn, txn->store->rejects, &k, &v);
    if (rc)
        return lmdb_err(rc);
    if (v.mv_size != 4)
        return NHUB_EMALFORMED;
    const uint8_t *p = v.mv_data;
    *code = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return 0;
}

int store_stream_put(store_txn_t *txn, const uint8_t stream_id[16], uint64_t last,
                     const char *region)
{
    uint8_t val[8 + REGION_LEN];
    put_be64(val, last);
    memcpy(val + 8, region, REGION_LEN);
    MDB_val k = {16, (void *)stream_id}, v = {sizeof val, val};
    return lmdb_err(mdb_put(txn->txn, txn->store->streams, &k, &v, 0));
}

/* Operator state of a region, in meta under "suspended/<code>". */
int store_suspended_get(store_txn_t *txn, const char *region, int *suspended)
{
    char key[32];
    uint8_t v = 0;
    snprintf(key, sizeof key, "suspended/%.6s", region);
    int rc = meta_get(txn->store, txn->txn, key, &v, 1);
    if (rc == MDB_NOTFOUND) {
        rc = 0;
        v = 0;
    }
    *suspended = v != 0;
    return lmdb_err(rc);
}

int store_suspended_put(store_txn_t *txn, const char *region, int suspended)
{
    char key[32];
    uint8_t v = suspended ? 1 : 0;
    snprintf(key, sizeof key, "suspended/%.6s", region);
    return lmdb_err(meta_put(txn->store, txn->txn, key, &v, 1));
}

/*
 * A region's operator state, in meta under "opstate/<code>": flags(1: bit 0
 * suspended, bit 1 paused) rate(4) reason_len(1) reason by_len(1) by.
 */
int store_opstate_get(store_txn_t *txn, const char *region, store_opstate_t *out)
{
    char key[32];
    snprintf(key, sizeof key, "opstate/%.6s", region);
    memset(out, 0, sizeof *out);
    MDB_val k = {strlen(key), key}, v;
    int rc = mdb_get(txn->txn, txn->store->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return lmdb_err(rc);
    const uint8_t *p = v.mv_data;
    size_t n = v.mv_size;
    if (n < 7 || n < 7 + (size_t)p[5] || p[5] > STORE_OP_TEXT_MAX ||
        n != 7 + (size_t)p[5] + p[6 + p[5]] || p[6 + p[5]] > STORE_OP_TEXT_MAX)
        return NHUB_EMALFORMED;
    out->suspended = p[0] & 1;
    out->paused = (p[0] >> 1) & 1;
    out->rate = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    memcpy(out->reason, p + 6, p[5]);
    memcpy(out->by, p + 7 + p[5], p[6 + p[5]]);
    return 0;
}

int store_opstate_put(store_txn_t *txn, const char *region, const store_opstate_t *st)
{
    char key[32];
    uint8_t raw[7 + 2 * STORE_OP_TEXT_MAX];
    size_t lr = strnlen(st->reason, STORE_OP_TEXT_MAX), lb = strnlen(st->by, STORE_OP_TEXT_MAX);
    snprintf(key, sizeof key, "opstate/%.6s", region);
    raw[0] = (uint8_t)((st->suspended ? 1 : 0) | (st->paused ? 2 : 0));
    raw[1] = (uint8_t)(st->rate >> 24);
    raw[2] = (uint8_t)(st->rate >> 16);
    raw[3] = (uint8_t)(st->rate >> 8);
    raw[4] = (uint8_t)st->rate;
    raw[5] = (uint8_t)lr;
    memcpy(raw + 6, st->reason, lr);
    raw[6 + lr] = (uint8_t)lb;
    memcpy(raw + 7 + lr, st->by, lb);
    return lmdb_err(meta_put(txn->store, txn->txn, key, raw, 7 + lr + lb));
}

int store_reader_open(store_t *self, store_reader_t **out)
{
    *out = NULL;
    store_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return NHUB_ENOMEM;
    int rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &r->txn);
    if (rc == MDB_MAP_RESIZED && self->read_only && mdb_env_set_mapsize(self->env, 0) == 0)
        rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &r->txn); /* the hub grew the map */
    if (rc) {
        free(r);
        log_error("store.reader_failed", "error=\"%s\"", mdb_strerror(rc));
        return NHUB_ESTORE;
    }
    r->store = self;
    *out = r;
    return 0;
}

void store_reader_close(store_reader_t **r)
{
    if (!r || !*r)
        return;
    mdb_txn_abort((*r)->txn);
    free(*r);
    *r = NULL;
}

/*
 * Walk the entries of `region` in `dbi` (keys region(6) dseq(8)) from
 * from_dseq in order, handing each to take(), which returns 1 if it kept
 * the entry; stops after `max` kept ones. *n = how many were kept.
 */
typedef int region_take_fn(const MDB_val *k, const MDB_val *v, void *out, size_t i);

static int region_walk(store_reader_t *r, MDB_dbi dbi, const char *region, uint64_t from_dseq,
                       size_t max, region_take_fn *take, void *out, size_t *n)
{
    MDB_cursor *c;
    *n = 0;
    int rc = mdb_cursor_open(r->txn, dbi, &c);
    if (rc)
        return lmdb_err(rc);
    uint8_t key[QKEY_LEN];
    qkey(key, region, from_dseq);
    MDB_val k = {QKEY_LEN, key}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *n < max) {
        if (k.mv_size != QKEY_LEN || memcmp(k.mv_data, region, REGION_LEN) != 0)
            break;
        *n += (size_t)take(&k, &v, out, *n);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

static int take_queued(const MDB_val *k, const MDB_val *v, void *out, size_t i)
{
    if (v->mv_size != QVAL_LEN && v->mv_size != QVAL_OLD)
        return 0;
    store_queued_t *q = (store_queued_t *)out + i;
    q->dseq = get_be64((const uint8_t *)k->mv_data + REGION_LEN);
    q->seq = get_be64(v->mv_data);
    memcpy(q->msg_id, (const uint8_t *)v->mv_data + 8, 16);
    q->size = v->mv_size == QVAL_LEN ? get_be32((const uint8_t *)v->mv_data + QVAL_LEN - 4) : 0;
    return 1;
}

static int take_held(const MDB_val *k, const MDB_val *v, void *out, size_t i)
{
    if (v->mv_size != 12)
        return 0;
    const uint8_t *d = v->mv_data;
    store_held_t *h = (store_held_t *)out + i;
    h->dseq = get_be64((const uint8_t *)k->mv_data + REGION_LEN);
    h->since_ms = (int64_t)get_be64(d);
    h->reason = (uint32_t)d[8] << 24 | (uint32_t)d[9] << 16 | (uint32_t)d[10] << 8 | d[11];
    return 1;
}

static int take_count(const MDB_val *k, const MDB_val *v, void *out, size_t i)
{
    (void)k, (void)v, (void)out, (void)i;
    return 1;
}

int store_queue_scan(store_reader_t *r, const char *region, uint64_t from_dseq, store_queued_t *out,
                     size_t max, size_t *n)
{
    return region_walk(r, r->store->queue, region, from_dseq, max, take_queued, out, n);
}

int store_lanes_list(store_reader_t *r, const char *region, store_lane_t *out, size_t max,
                     size_t *n)
{
    MDB_cursor *c;
    *n = 0;
    int rc = mdb_cursor_open(r->txn, r->store->lanes, &c);
    if (rc)
        return lmdb_err(rc);
    uint8_t key[LKEY_LEN];
    memset(key, 0, sizeof key);
    memcpy(key, region, REGION_LEN);
    MDB_val k = {LKEY_LEN, key}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *n < max && k.mv_size == LKEY_LEN &&
           memcmp(k.mv_data, region, REGION_LEN) == 0) {
        store_lane_t *l = &out[(*n)++];
        l->cls = ((const uint8_t *)k.mv_data)[REGION_LEN];
        memcpy(l->source, (const uint8_t *)k.mv_data + REGION_LEN + 1, REGION_LEN);
        l->source[REGION_LEN] = 0;
        lkey(key, region, l, UINT64_MAX); /* past the lane's last entry */
        k = (MDB_val){LKEY_LEN, key};
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

int store_lane_scan(store_reader_t *r, const char *region, const store_lane_t *lane,
                    uint64_t from_dseq, store_queued_t *out, size_t max, size_t *n)
{
    MDB_cursor *c;
    *n = 0;
    int rc = mdb_cursor_open(r->txn, r->store->lanes, &c);
    if (rc)
        return lmdb_err(rc);
    uint8_t key[LKEY_LEN];
    lkey(key, region, lane, from_dseq);
    MDB_val k = {LKEY_LEN, key}, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        /* The lane is the key without its dseq. */
        if (k.mv_size != LKEY_LEN || memcmp(k.mv_data, key, LKEY_LEN - 8) != 0)
            break;
        if (v.mv_size != LVAL_LEN)
            continue;
        store_queued_t *q = &out[(*n)++];
        q->dseq = get_be64((const uint8_t *)k.mv_data + LKEY_LEN - 8);
        q->seq = get_be64(v.mv_data);
        memcpy(q->msg_id, (const uint8_t *)v.mv_data + 8, 16);
        q->size = get_be32((const uint8_t *)v.mv_data + 24);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

int store_held_scan(store_reader_t *r, const char *region, uint64_t from_dseq, store_held_t *out,
                    size_t max, size_t *n)
{
    return region_walk(r, r->store->held, region, from_dseq, max, take_held, out, n);
}

int store_queue_count(store_reader_t *r, const char *region, uint64_t *n)
{
    size_t count = 0;
    int rc = region_walk(r, r->store->queue, region, 0, SIZE_MAX, take_count, NULL, &count);
    *n = count;
    return rc;
}

int store_window_stat(store_reader_t *r, store_window_stat_t *out)
{
    const MDB_dbi dbs[3] = {r->store->dedup, r->store->rejects, r->store->dedup_age};
    uint64_t entries[3] = {0};
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 3; i++) {
        MDB_stat st;
        int rc = mdb_stat(r->txn, dbs[i], &st);
        if (rc)
            return lmdb_err(rc);
        entries[i] = st.ms_entries;
        out->pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    }
    out->messages = entries[0];
    out->rejections = entries[1];
    out->aged = entries[2];
    return 0;
}

int store_journal_get(store_reader_t *r, uint64_t seq, const void **event, size_t *len,
                      const uint8_t **hash)
{
    uint8_t key_be[8];
    put_be64(key_be, seq);
    MDB_val k = {8, key_be}, v;
    int rc = mdb_get(r->txn, r->store->journal, &k, &v);
    if (rc)
        return lmdb_err(rc);
    if (v.mv_size < STORE_HASH_LEN)
        return NHUB_EMALFORMED;
    *event = (const uint8_t *)v.mv_data + STORE_HASH_LEN;
    *len = v.mv_size - STORE_HASH_LEN;
    if (hash)
        *hash = v.mv_data;
    return 0;
}

int store_journal_last(store_reader_t *r, uint64_t *seq)
{
    MDB_cursor *c;
    *seq = 0;
    int rc = mdb_cursor_open(r->txn, r->store->journal, &c);
    if (rc)
        return lmdb_err(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        *seq = get_be64(k.mv_data);
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

/* The chain must end where meta says it does: `next` and `last` are the seq
 * after the last record walked and that record's hash. */
static int verify_tail(store_reader_t *r, uint64_t next, const uint8_t last[STORE_HASH_LEN],
                       uint64_t *bad_seq)
{
    uint8_t seq_be[8], hash[STORE_HASH_LEN];
    int rc = meta_get(r->store, r->txn, "next_seq", seq_be, sizeof seq_be);
    if (rc == MDB_NOTFOUND)
        return next == 1 ? 0 : NHUB_EMALFORMED;
    if (rc || meta_get(r->store, r->txn, "last_hash", hash, sizeof hash) != 0)
        return NHUB_EMALFORMED;
    uint64_t meta_next = get_be64(seq_be);
    if (meta_next != next || memcmp(hash, last, STORE_HASH_LEN) != 0) {
        *bad_seq = next < meta_next ? next : meta_next;
        return NHUB_EMALFORMED;
    }
    return 0;
}

int store_journal_verify(store_reader_t *r, uint64_t *n, uint64_t *bad_seq)
{
    MDB_cursor *c;
    uint8_t prev[STORE_HASH_LEN] = {0}, hash[STORE_HASH_LEN];
    uint64_t expect = 1;
    *n = 0;
    *bad_seq = 0;
    /* Records before journal_start were pruned: the chain goes on from there. */
    int rc = store_journal_start(r, &expect, prev);
    if (rc)
        return rc;
    rc = mdb_cursor_open(r->txn, r->store->journal, &c);
    if (rc)
        return lmdb_err(rc);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int code = md ? 0 : NHUB_ENOMEM;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (code == 0 && rc == 0) {
        uint64_t seq = k.mv_size == 8 ? get_be64(k.mv_data) : 0;
        if (seq != expect) { /* a record is missing: name the first absent seq */
            *bad_seq = expect;
            code = NHUB_EMALFORMED;
            break;
        }
        if (v.mv_size < STORE_HASH_LEN ||
            chain_hash(md, prev, seq, (uint8_t *)v.mv_data + STORE_HASH_LEN,
                       v.mv_size - STORE_HASH_LEN, hash) != 0 ||
            memcmp(hash, v.mv_data, STORE_HASH_LEN) != 0) {
            *bad_seq = seq ? seq : expect;
            code = NHUB_EMALFORMED;
            break;
        }
        memcpy(prev, hash, STORE_HASH_LEN);
        expect++;
        (*n)++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (code == 0 && rc != MDB_NOTFOUND)
        code = lmdb_err(rc);
    if (code == 0)
        code = verify_tail(r, expect, prev, bad_seq);
    EVP_MD_CTX_free(md);
    mdb_cursor_close(c);
    return code;
}

int store_journal_walk(store_reader_t *r, uint64_t from, store_journal_fn fn, void *arg,
                       uint64_t *bad_seq)
{
    MDB_cursor *c;
    uint64_t last = from ? from - 1 : 0;
    *bad_seq = 0;
    int rc = mdb_cursor_open(r->txn, r->store->journal, &c);
    if (rc)
        return lmdb_err(rc);
    uint8_t key[8];
    put_be64(key, from);
    MDB_val k = {8, key}, v;
    int code = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc && !code;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || v.mv_size < STORE_HASH_LEN) {
            *bad_seq = last + 1;
            code = NHUB_EMALFORMED;
            break;
        }
        last = get_be64(k.mv_data);
        code = fn(arg, last, v.mv_data, (const uint8_t *)v.mv_data + STORE_HASH_LEN,
                  v.mv_size - STORE_HASH_LEN);
    }
    mdb_cursor_close(c);
    if (code)
        return code;
    return rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}
