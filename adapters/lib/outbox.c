/*
 * outbox.c: the adapter's LMDB store: stream identity, outbox, confirmed set.
 *
 * libnhub promises that nhub_send() returns only once the message is on disk
 * and that a confirmed delivery is never handed out twice, across restarts.
 * Both promises live here: every change is one LMDB write transaction with
 * the default full sync, committed before the caller goes on. The store is
 * small and single-threaded, so it is written as a handful of short
 * transactions rather than anything clever; the one subtlety is the map
 * size, which starts at 16 MiB and doubles on MDB_MAP_FULL (with no
 * transaction open, as LMDB requires) up to the configured limit.
 */
#include "outbox.h"

#include "path.h"

#include "nhub_err.h"

#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#define OUTBOX_FORMAT 1
#define OUTBOX_MAP_DEFAULT_MAX (4ull * 1024 * 1024 * 1024)
#define OUTBOX_PAGE 4096u

struct outbox {
    MDB_env *env;
    MDB_dbi meta;
    MDB_dbi outbox;
    MDB_dbi confirmed;
    uint64_t map_size;
    uint64_t map_max;
    uint8_t stream_id[OUTBOX_ID_LEN];
    char error[256];
};

static void be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t be64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

static int set_error(outbox_t *self, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_error(outbox_t *self, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof self->error, fmt, ap);
    va_end(ap);
    return code;
}

static int fill_random(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NHUB_EIO;
        got += (size_t)n;
    }
    return 0;
}

/* Begin a transaction, adopting a map another process grew. */
static int txn_begin(outbox_t *self, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(self->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(self->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(self->env, NULL, flags, txn);
    }
    if (rc == 0) {
        MDB_envinfo info;
        mdb_env_info(self->env, &info);
        self->map_size = info.me_mapsize;
    }
    return rc;
}

/* Double the map (no transaction may be open). Returns 0 or NHUB_EFULL. */
static int grow_map(outbox_t *self)
{
    if (self->map_size >= self->map_max)
        return set_error(self, NHUB_EFULL, "store is at its limit of %llu bytes",
                         (unsigned long long)self->map_max);
    uint64_t next = self->map_size * 2;
    if (next > self->map_max || next < self->map_size)
        next = self->map_max;
    int rc = mdb_env_set_mapsize(self->env, (size_t)next);
    if (rc != 0)
        return set_error(self, NHUB_ESTORE, "mdb_env_set_mapsize: %s", mdb_strerror(rc));
    self->map_size = next;
    return 0;
}

/*
 * A write operation: do the puts and deletes on `txn`; return an LMDB or
 * errno code (0 = commit). Must give the same result when run again after a
 * MAP_FULL retry.
 */
typedef int(write_op_fn)(outbox_t *self, MDB_txn *txn, void *arg);

/* Run `op` in a write transaction, growing the map and retrying on MAP_FULL. */
static int run_write(outbox_t *self, const char *what, write_op_fn *op, void *arg)
{
    for (;;) {
        MDB_txn *txn = NULL;
        int rc = txn_begin(self, 0, &txn);
        if (rc != 0)
            return set_error(self, NHUB_ESTORE, "%s: begin: %s", what, mdb_strerror(rc));
        rc = op(self, txn, arg);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc == 0)
            return 0;
        if (rc != MDB_MAP_FULL)
            return set_error(self, NHUB_ESTORE, "%s: %s", what, mdb_strerror(rc));
        int grc = grow_map(self);
        if (grc != 0)
            return grc;
    }
}

static int get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *out = be64_get(v.mv_data);
    return 0;
}

static int put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t value)
{
    uint8_t buf[8];
    be64_put(buf, value);
    MDB_val k = {strlen(key), (void *)key}, v = {sizeof buf, buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

struct init_arg {
    uint8_t fresh_id[OUTBOX_ID_LEN];
    int format_seen;
};

/* Open the named databases and create the meta records of a new store. */
static int init_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct init_arg *arg = argp;
    int rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &self->meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &self->outbox);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "confirmed", MDB_CREATE, &self->confirmed);
    if (rc != 0)
        return rc;
    uint64_t format = 0;
    rc = get_u64(txn, self->meta, "format", &format);
    if (rc == 0) {
        arg->format_seen = (int)format;
        MDB_val k = {9, "stream_id"}, v;
        rc = mdb_get(txn, self->meta, &k, &v);
        if (rc == 0 && v.mv_size != OUTBOX_ID_LEN)
            rc = MDB_CORRUPTED;
        if (rc == 0)
            memcpy(self->stream_id, v.mv_data, OUTBOX_ID_LEN);
        return rc;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    arg->format_seen = OUTBOX_FORMAT;
    memcpy(self->stream_id, arg->fresh_id, OUTBOX_ID_LEN);
    MDB_val k = {9, "stream_id"}, v = {OUTBOX_ID_LEN, arg->fresh_id};
    rc = put_u64(txn, self->meta, "format", OUTBOX_FORMAT);
    if (rc == 0)
        rc = put_u64(txn, self->meta, "next_seq", 1);
    if (rc == 0)
        rc = mdb_put(txn, self->meta, &k, &v, 0);
    return rc;
}

static void copy_err(char *err, size_t errcap, const char *msg)
{
    if (err && errcap)
        snprintf(err, errcap, "%s", msg);
}

int outbox_open(const char *dir, uint64_t map_size_max, outbox_t **out, char *err, size_t errcap)
{
    int ret;
    outbox_t *self = NULL;
    *out = NULL;
    if (!dir || !dir[0]) {
        copy_err(err, errcap, "data_dir is missing");
        return NHUB_EINVAL;
    }
    int erc = path_mkdir_p(dir);
    if (erc != 0) {
        if (err && errcap)
            snprintf(err, errcap, "data_dir %s: %s", dir, strerror(erc));
        return NHUB_EIO;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        copy_err(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    self->map_max = map_size_max ? map_size_max : OUTBOX_MAP_DEFAULT_MAX;
    self->map_max -= self->map_max % OUTBOX_PAGE;
    if (self->map_max < 32 * OUTBOX_PAGE)
        self->map_max = 32 * OUTBOX_PAGE;
    self->map_size = OUTBOX_MAP_START < self->map_max ? OUTBOX_MAP_START : self->map_max;

    int rc = mdb_env_create(&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(self->env, 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(self->env, (size_t)self->map_size);
    if (rc == 0)
        rc = mdb_env_open(self->env, dir, 0, 0600);
    if (rc != 0) {
        set_error(self, NHUB_ESTORE, "open store in %s: %s", dir, mdb_strerror(rc));
        ret = NHUB_ESTORE;
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(self->env, &dead);

    struct init_arg arg = {.format_seen = 0};
    if (fill_random(arg.fresh_id, sizeof arg.fresh_id) != 0) {
        set_error(self, NHUB_EIO, "getrandom failed: %s", strerror(errno));
        ret = NHUB_EIO;
        goto fail;
    }
    ret = run_write(self, "open store", init_op, &arg);
    if (ret != 0)
        goto fail;
    if (arg.format_seen != OUTBOX_FORMAT) {
        set_error(self, NHUB_EVERSION, "store in %s has format %d, this library reads %d", dir,
                  arg.format_seen, OUTBOX_FORMAT);
        ret = NHUB_EVERSION;
        goto fail;
    }
    *out = self;
    return 0;

fail:
    copy_err(err, errcap, self->error);
    if (self->env)
        mdb_env_close(self->env);
    free(self);
    return ret;
}

void outbox_close(outbox_t **self)
{
    if (!self || !*self)
        return;
    mdb_env_close((*self)->env);
    free(*self);
    *self = NULL;
}

const char *outbox_error(const outbox_t *self)
{
    return self->error;
}

const uint8_t *outbox_stream_id(const outbox_t *self)
{
    return self->stream_id;
}

uint64_t outbox_map_size(const outbox_t *self)
{
    return self->map_size;
}

struct append_arg {
    const void *data;
    size_t len;
    uint64_t seq;
};

static int append_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct append_arg *arg = argp;
    int rc = get_u64(txn, self->meta, "next_seq", &arg->seq);
    if (rc != 0)
        return rc;
    uint8_t key[8];
    be64_put(key, arg->seq);
    MDB_val k = {sizeof key, key}, v = {arg->len, (void *)arg->data};
    rc = mdb_put(txn, self->outbox, &k, &v, MDB_NOOVERWRITE);
    if (rc == 0)
        rc = put_u64(txn, self->meta, "next_seq", arg->seq + 1);
    return rc;
}

int outbox_append(outbox_t *self, const void *data, size_t len, uint64_t *seq_out)
{
    struct append_arg arg = {data, len, 0};
    int rc = run_write(self, "append", append_op, &arg);
    if (rc == 0 && seq_out)
        *seq_out = arg.seq;
    return rc;
}

int outbox_scan(outbox_t *self, uint64_t from, outbox_visit_fn *fn, void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ret = 0;
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, self->outbox, &cur);
    if (rc != 0) {
        ret = set_error(self, NHUB_ESTORE, "scan: %s", mdb_strerror(rc));
        goto done;
    }
    uint8_t key[8];
    be64_put(key, from);
    MDB_val k = {sizeof key, key}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8) {
            ret = set_error(self, NHUB_ESTORE, "scan: outbox key of %zu bytes", k.mv_size);
            goto done;
        }
        int frc = fn(arg, be64_get(k.mv_data), v.mv_data, v.mv_size);
        if (frc != 0) {
            ret = frc < 0 ? frc : 0;
            goto done;
        }
    }
    if (rc != MDB_NOTFOUND)
        ret = set_error(self, NHUB_ESTORE, "scan: %s", mdb_strerror(rc));
done:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return ret;
}

struct upto_arg {
    uint64_t last;
    uint64_t removed;
};

static int remove_upto_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct upto_arg *arg = argp;
    MDB_cursor *cur = NULL;
    arg->removed = 0;
    int rc = mdb_cursor_open(txn, self->outbox, &cur);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || be64_get(k.mv_data) > arg->last)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
        arg->removed++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    uint64_t next = 0;
    rc = get_u64(txn, self->meta, "next_seq", &next);
    if (rc == 0 && next <= arg->last)
        rc = put_u64(txn, self->meta, "next_seq", arg->last + 1);
    return rc;
}

int outbox_remove_upto(outbox_t *self, uint64_t last, uint64_t *removed)
{
    struct upto_arg a = {last, 0};
    int rc = run_write(self, "remove acknowledged", remove_upto_op, &a);
    if (removed)
        *removed = rc == 0 ? a.removed : 0;
    return rc;
}

struct remove_arg {
    const uint64_t *seqs;
    size_t n;
    outbox_visit_fn *fn;
    void *fn_arg;
    uint64_t removed;
};

static int remove_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct remove_arg *arg = argp;
    arg->removed = 0;
    for (size_t i = 0; i < arg->n; i++) {
        uint8_t key[8];
        be64_put(key, arg->seqs[i]);
        MDB_val k = {sizeof key, key}, v;
        int rc = mdb_get(txn, self->outbox, &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc == 0 && arg->fn)
            arg->fn(arg->fn_arg, arg->seqs[i], v.mv_data, v.mv_size);
        if (rc == 0)
            rc = mdb_del(txn, self->outbox, &k, NULL);
        if (rc != 0)
            return rc;
        arg->removed++;
    }
    return 0;
}

int outbox_remove(outbox_t *self, const uint64_t *seqs, size_t n, outbox_visit_fn *fn, void *arg,
                  uint64_t *removed)
{
    struct remove_arg a = {seqs, n, fn, arg, 0};
    if (removed)
        *removed = 0;
    if (n == 0)
        return 0;
    int rc = run_write(self, "remove", remove_op, &a);
    if (removed && rc == 0)
        *removed = a.removed;
    return rc;
}

static int count_db(outbox_t *self, MDB_dbi dbi, uint64_t *n)
{
    MDB_txn *txn = NULL;
    MDB_stat st;
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_stat(txn, dbi, &st);
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0)
        return set_error(self, NHUB_ESTORE, "stat: %s", mdb_strerror(rc));
    *n = st.ms_entries;
    return 0;
}

int outbox_count(outbox_t *self, uint64_t *n)
{
    return count_db(self, self->outbox, n);
}

int outbox_confirmed_count(outbox_t *self, uint64_t *n)
{
    return count_db(self, self->confirmed, n);
}

int outbox_next_seq(outbox_t *self, uint64_t *next)
{
    MDB_txn *txn = NULL;
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = get_u64(txn, self->meta, "next_seq", next);
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0)
        return set_error(self, NHUB_ESTORE, "read next_seq: %s", mdb_strerror(rc));
    return 0;
}

struct confirm_arg {
    const uint8_t *id;
    uint64_t dseq;
    int64_t time_ms;
};

static int confirm_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct confirm_arg *arg = argp;
    uint8_t val[16];
    be64_put(val, arg->dseq);
    be64_put(val + 8, (uint64_t)arg->time_ms);
    MDB_val k = {OUTBOX_ID_LEN, (void *)arg->id}, v = {sizeof val, val};
    return mdb_put(txn, self->confirmed, &k, &v, 0);
}

int outbox_confirmed_put(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], uint64_t dseq,
                         int64_t time_ms)
{
    struct confirm_arg arg = {id, dseq, time_ms};
    return run_write(self, "record confirmation", confirm_op, &arg);
}

int outbox_confirmed_has(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], int *found)
{
    MDB_txn *txn = NULL;
    MDB_val k = {OUTBOX_ID_LEN, (void *)id}, v;
    *found = 0;
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_get(txn, self->confirmed, &k, &v);
    if (txn)
        mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return set_error(self, NHUB_ESTORE, "confirmed lookup: %s", mdb_strerror(rc));
    *found = 1;
    return 0;
}
