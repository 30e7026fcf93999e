/*
 * outbox.c: the adapter's LMDB store: stream identity, outbox, confirmed set.
 *
 * libnhub promises that nhub_send() returns only once the message is on disk
 * and that a confirmed delivery is never handed out twice, across restarts.
 * Both promises live here: every change is one LMDB write transaction with
 * the default full sync, committed before the caller goes on. The store is
 * small and single-threaded, so it is written as a handful of short
 * transactions rather than anything clever. Two subtleties: the map size,
 * which starts at 16 MiB and doubles on MDB_MAP_FULL (with no transaction
 * open, as LMDB requires) up to the configured limit; and the stream, whose
 * identity (stream_id, stream_base) lives in meta and changes only together,
 * in one transaction, so every reader sees a numbering that matches its id.
 * Each outbox value carries the envelope's signature beside it (outbox.h
 * gives the layout), so nhub_send's one commit covers both.
 */
#include "outbox.h"

#include "ids.h"
#include "path.h"

#include "nhub_err.h"

#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OUTBOX_FORMAT 3
/* First byte of a record with a header; a bare envelope never starts with it. */
#define OUTBOX_RECORD_MARK 0x00
#define OUTBOX_RECORD_VERSION 0x01
/* meta "link": version, state, auth and handshake failures, time, then the text. */
#define OUTBOX_LINK_VERSION 1
#define OUTBOX_LINK_FIXED (2 + 8 + 8 + 8)
/* Key of a confirmed_age entry: time ms (BE) then msg_id. */
#define OUTBOX_AGE_KEY_LEN (8 + OUTBOX_ID_LEN)
#define OUTBOX_MAP_DEFAULT_MAX (4ull * 1024 * 1024 * 1024)
#define OUTBOX_PAGE 4096u

struct outbox {
    MDB_env *env;
    MDB_dbi meta;
    MDB_dbi outbox;
    MDB_dbi confirmed;
    MDB_dbi confirmed_age;
    MDB_dbi unsent;
    uint64_t map_size;
    uint64_t map_max;
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
/* Commit `txn`; `lazy`: without the sync (a later synced commit, or the
 * system, writes it out; a crash may lose it, never corrupt the store). */
static int commit(outbox_t *self, MDB_txn *txn, int lazy)
{
    if (!lazy)
        return mdb_txn_commit(txn);
    int rc = mdb_env_set_flags(self->env, MDB_NOSYNC, 1);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    int frc = mdb_env_set_flags(self->env, MDB_NOSYNC, 0);
    return rc ? rc : frc;
}

static int run_write_as(outbox_t *self, const char *what, write_op_fn *op, void *arg, int lazy)
{
    for (;;) {
        MDB_txn *txn = NULL;
        int rc = txn_begin(self, 0, &txn);
        if (rc != 0)
            return set_error(self, NHUB_ESTORE, "%s: begin: %s", what, mdb_strerror(rc));
        rc = op(self, txn, arg);
        if (rc == 0)
            rc = commit(self, txn, lazy);
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

static int run_write(outbox_t *self, const char *what, write_op_fn *op, void *arg)
{
    return run_write_as(self, what, op, arg, 0);
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

static void age_key(uint8_t key[OUTBOX_AGE_KEY_LEN], int64_t time_ms, const uint8_t *id)
{
    be64_put(key, (uint64_t)time_ms);
    memcpy(key + 8, id, OUTBOX_ID_LEN);
}

static int get_stream(outbox_t *self, MDB_txn *txn, uint8_t id[OUTBOX_ID_LEN], uint64_t *base);

/* Format 1 -> 2: stream_base 0 (the numbering does not change) and the
 * confirmed_age index built from the times already in `confirmed`. */
static int upgrade_from_1(outbox_t *self, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    int rc = put_u64(txn, self->meta, "stream_base", 0);
    if (rc == 0)
        rc = mdb_cursor_open(txn, self->confirmed, &cur);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != OUTBOX_ID_LEN || v.mv_size != 16)
            continue; /* not ours to judge; it just never expires */
        uint8_t key[OUTBOX_AGE_KEY_LEN];
        age_key(key, (int64_t)be64_get((const uint8_t *)v.mv_data + 8), k.mv_data);
        MDB_val ak = {sizeof key, key}, av = {0, ""};
        rc = mdb_put(txn, self->confirmed_age, &ak, &av, 0);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    return put_u64(txn, self->meta, "format", 2);
}

/* Format 2 -> 3: the bare envelopes of format 2 read as unsigned records
 * (outbox_record_parse), which are signed when sent, so only the number
 * changes. Rewriting every record would need the space twice over. */
static int upgrade_from_2(outbox_t *self, MDB_txn *txn)
{
    return put_u64(txn, self->meta, "format", 3);
}

/* Open the named databases, create the meta records of a new store, upgrade an old one. */
static int init_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct init_arg *arg = argp;
    int rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &self->meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &self->outbox);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "confirmed", MDB_CREATE, &self->confirmed);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "confirmed_age", MDB_CREATE, &self->confirmed_age);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "unsent", MDB_CREATE, &self->unsent);
    if (rc != 0)
        return rc;
    uint64_t format = 0;
    rc = get_u64(txn, self->meta, "format", &format);
    if (rc == 0) {
        uint8_t id[OUTBOX_ID_LEN];
        uint64_t base;
        arg->format_seen = format > INT32_MAX ? INT32_MAX : (int)format;
        if (format == 1) {
            rc = upgrade_from_1(self, txn);
            format = 2;
        }
        if (rc == 0 && format == 2) {
            rc = upgrade_from_2(self, txn);
            format = 3;
        }
        if (rc == 0 && format == OUTBOX_FORMAT)
            arg->format_seen = OUTBOX_FORMAT;
        if (rc == 0 && arg->format_seen == OUTBOX_FORMAT)
            rc = get_stream(self, txn, id, &base); /* a store without one is corrupt */
        return rc;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    arg->format_seen = OUTBOX_FORMAT;
    MDB_val k = {9, "stream_id"}, v = {OUTBOX_ID_LEN, arg->fresh_id};
    rc = put_u64(txn, self->meta, "format", OUTBOX_FORMAT);
    if (rc == 0)
        rc = put_u64(txn, self->meta, "next_seq", 1);
    if (rc == 0)
        rc = put_u64(txn, self->meta, "stream_base", 0);
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
        rc = mdb_env_set_maxdbs(self->env, 8);
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
    if (ids_random(arg.fresh_id, sizeof arg.fresh_id) != 0) {
        set_error(self, NHUB_EIO, "getrandom failed: %s", strerror(errno));
        ret = NHUB_EIO;
        goto fail;
    }
    ret = run_write(self, "open store", init_op, &arg);
    if (ret != 0)
        goto fail;
    if (arg.format_seen != OUTBOX_FORMAT) {
        set_error(self, NHUB_EVERSION,
                  "store in %s has format %d%s; this library reads formats 1 to %d and has "
                  "left the store untouched",
                  dir, arg.format_seen,
                  arg.format_seen > OUTBOX_FORMAT ? ", written by a newer libnhub" : "",
                  OUTBOX_FORMAT);
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

/* Read the stream identity inside `txn`; a store without stream_base has 0. */
static int get_stream(outbox_t *self, MDB_txn *txn, uint8_t id[OUTBOX_ID_LEN], uint64_t *base)
{
    MDB_val k = {9, "stream_id"}, v;
    int rc = mdb_get(txn, self->meta, &k, &v);
    if (rc == 0 && v.mv_size != OUTBOX_ID_LEN)
        rc = MDB_CORRUPTED;
    if (rc != 0)
        return rc;
    memcpy(id, v.mv_data, OUTBOX_ID_LEN);
    rc = get_u64(txn, self->meta, "stream_base", base);
    if (rc == MDB_NOTFOUND) {
        *base = 0;
        rc = 0;
    }
    return rc;
}

int outbox_stream(outbox_t *self, uint8_t id[OUTBOX_ID_LEN], uint64_t *base)
{
    MDB_txn *txn = NULL;
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = get_stream(self, txn, id, base);
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0)
        return set_error(self, NHUB_ESTORE, "read stream: %s", mdb_strerror(rc));
    return 0;
}

uint64_t outbox_map_size(const outbox_t *self)
{
    return self->map_size;
}

void outbox_record_parse(const void *data, size_t len, outbox_record_t *out)
{
    const uint8_t *p = data;
    memset(out, 0, sizeof *out);
    out->envelope = p;
    out->envelope_len = len;
    if (len < OUTBOX_RECORD_HEADER || p[0] != OUTBOX_RECORD_MARK || p[1] != OUTBOX_RECORD_VERSION)
        return;
    size_t s = p[2], k = p[3];
    if (k > OUTBOX_KEY_ID_MAX || s + k > len - OUTBOX_RECORD_HEADER)
        return;
    out->sig = s ? p + OUTBOX_RECORD_HEADER : NULL;
    out->sig_len = s;
    out->key_id = k ? (const char *)p + OUTBOX_RECORD_HEADER + s : NULL;
    out->key_id_len = k;
    out->envelope = p + OUTBOX_RECORD_HEADER + s + k;
    out->envelope_len = len - OUTBOX_RECORD_HEADER - s - k;
}

struct append_arg {
    const outbox_record_t *recs;
    size_t n;
    uint64_t first;
};

/* Bytes of the stored value of `rec` (checked by record_check first). */
static size_t record_len(const outbox_record_t *rec)
{
    return OUTBOX_RECORD_HEADER + rec->sig_len + rec->key_id_len + rec->envelope_len;
}

/* Write the record into `out` (record_len bytes): header, signature, key id, envelope. */
static void record_write(const outbox_record_t *rec, uint8_t *out)
{
    out[0] = OUTBOX_RECORD_MARK;
    out[1] = OUTBOX_RECORD_VERSION;
    out[2] = (uint8_t)rec->sig_len;
    out[3] = (uint8_t)rec->key_id_len;
    out += OUTBOX_RECORD_HEADER;
    if (rec->sig_len)
        memcpy(out, rec->sig, rec->sig_len);
    out += rec->sig_len;
    if (rec->key_id_len)
        memcpy(out, rec->key_id, rec->key_id_len);
    out += rec->key_id_len;
    if (rec->envelope_len)
        memcpy(out, rec->envelope, rec->envelope_len);
}

/* The records take the local seqs next_seq, next_seq + 1, ... in this
 * transaction, so a batch is contiguous in the outbox even when other
 * processes append to the same store. */
static int append_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct append_arg *arg = argp;
    int rc = get_u64(txn, self->meta, "next_seq", &arg->first);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < arg->n; i++) {
        uint8_t key[8];
        be64_put(key, arg->first + i);
        /* MDB_RESERVE: the record is written once, into the page that keeps it. */
        MDB_val k = {sizeof key, key}, v = {record_len(&arg->recs[i]), NULL};
        rc = mdb_put(txn, self->outbox, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
        if (rc != 0)
            return rc;
        record_write(&arg->recs[i], v.mv_data);
    }
    return put_u64(txn, self->meta, "next_seq", arg->first + arg->n);
}

/* Refuse a record the layout cannot hold. */
static int record_check(outbox_t *self, const outbox_record_t *rec, size_t i)
{
    if (rec->sig_len > OUTBOX_SIG_MAX || rec->key_id_len > OUTBOX_KEY_ID_MAX ||
        (rec->sig_len && !rec->sig) || (rec->key_id_len && !rec->key_id))
        return set_error(self, NHUB_EINVAL,
                         "append: record %zu: signature or key id too long or missing", i);
    if (rec->envelope_len > SIZE_MAX - OUTBOX_RECORD_HEADER - OUTBOX_SIG_MAX - OUTBOX_KEY_ID_MAX)
        return set_error(self, NHUB_EINVAL, "append: record %zu: envelope of %zu bytes", i,
                         rec->envelope_len);
    return 0;
}

int outbox_append_batch(outbox_t *self, const outbox_record_t *recs, size_t n, uint64_t *first_seq)
{
    if (n == 0)
        return set_error(self, NHUB_EINVAL, "append: no records");
    for (size_t i = 0; i < n; i++) {
        int rc = record_check(self, &recs[i], i);
        if (rc != 0)
            return rc;
    }
    struct append_arg arg = {recs, n, 0};
    int rc = run_write(self, "append", append_op, &arg);
    if (rc == 0 && first_seq)
        *first_seq = arg.first;
    return rc;
}

int outbox_append(outbox_t *self, const outbox_record_t *rec, uint64_t *seq_out)
{
    return outbox_append_batch(self, rec, 1, seq_out);
}

/* Call a visit function with the parsed record of an LMDB value. */
static int visit(outbox_visit_fn *fn, void *arg, uint64_t seq, const MDB_val *v)
{
    outbox_record_t rec;
    outbox_record_parse(v->mv_data, v->mv_size, &rec);
    return fn(arg, seq, &rec);
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
        int frc = visit(fn, arg, be64_get(k.mv_data), &v);
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
    outbox_visit_fn *fn;
    void *fn_arg;
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
        if (arg->fn)
            visit(arg->fn, arg->fn_arg, be64_get(k.mv_data), &v);
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
        arg->removed++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int outbox_remove_upto(outbox_t *self, uint64_t last, outbox_visit_fn *fn, void *arg,
                       uint64_t *removed)
{
    struct upto_arg a = {last, fn, arg, 0};
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
        if (rc == 0 && arg->fn && visit(arg->fn, arg->fn_arg, arg->seqs[i], &v) != 0)
            continue; /* not the message meant: it stays */
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

struct rotate_arg {
    outbox_rotation_t *r;
    uint8_t fresh_id[OUTBOX_ID_LEN];
};

/* Remove r->drop if it is there; sets r->dropped. */
static int drop_op(outbox_t *self, MDB_txn *txn, outbox_rotation_t *r)
{
    uint8_t key[8];
    be64_put(key, r->drop);
    MDB_val k = {sizeof key, key}, v;
    int rc = mdb_get(txn, self->outbox, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc == 0 && r->fn)
        visit(r->fn, r->arg, r->drop, &v);
    if (rc == 0)
        rc = mdb_del(txn, self->outbox, &k, NULL);
    if (rc == 0)
        r->dropped = 1;
    return rc;
}

/* stream_base of a new stream: just below the first message still waiting. */
static int new_base(outbox_t *self, MDB_txn *txn, uint64_t *base)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, self->outbox, &cur);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    mdb_cursor_close(cur);
    if (rc == 0 && k.mv_size != 8)
        return MDB_CORRUPTED;
    if (rc == 0) {
        *base = be64_get(k.mv_data) - 1;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    uint64_t next = 0;
    rc = get_u64(txn, self->meta, "next_seq", &next);
    if (rc == 0)
        *base = next - 1;
    return rc;
}

static int rotate_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct rotate_arg *arg = argp;
    outbox_rotation_t *r = arg->r;
    r->rotated = 0;
    r->dropped = 0;
    int rc = get_stream(self, txn, r->stream_id, &r->base);
    if (rc != 0)
        return rc;
    if (r->expect_id && memcmp(r->expect_id, r->stream_id, OUTBOX_ID_LEN) != 0)
        return 0; /* another process started a new stream already */
    if (r->drop)
        rc = drop_op(self, txn, r);
    if (rc == 0)
        rc = new_base(self, txn, &r->base);
    if (rc == 0)
        rc = put_u64(txn, self->meta, "stream_base", r->base);
    MDB_val k = {9, "stream_id"}, v = {OUTBOX_ID_LEN, arg->fresh_id};
    if (rc == 0)
        rc = mdb_put(txn, self->meta, &k, &v, 0);
    if (rc == 0) {
        memcpy(r->stream_id, arg->fresh_id, OUTBOX_ID_LEN);
        r->rotated = 1;
    }
    return rc;
}

int outbox_rotate(outbox_t *self, outbox_rotation_t *r)
{
    struct rotate_arg arg = {.r = r};
    if (ids_random(arg.fresh_id, sizeof arg.fresh_id) != 0)
        return set_error(self, NHUB_EIO, "getrandom failed: %s", strerror(errno));
    return run_write(self, "new stream", rotate_op, &arg);
}

struct confirm_arg {
    const outbox_confirmation_t *c;
    size_t n;
    int64_t time_ms;
};

/*
 * Set the confirmation of `id` (delivered as `dseq`) at `time_ms` inside
 * `txn`, dropping its age entry if it had one. `aging`: the entry gets an
 * age entry at that time and leaves `unsent`; otherwise it joins `unsent`
 * and has none (it cannot expire).
 */
static int confirm_set(outbox_t *self, MDB_txn *txn, const uint8_t *id, uint64_t dseq,
                       int64_t time_ms, int aging)
{
    uint8_t val[16], key[OUTBOX_AGE_KEY_LEN], dv[8];
    MDB_val k = {OUTBOX_ID_LEN, (void *)id}, v, ak = {sizeof key, key}, av = {0, ""};
    int rc = mdb_get(txn, self->confirmed, &k, &v);
    if (rc == 0 && v.mv_size == 16) {
        age_key(key, (int64_t)be64_get((const uint8_t *)v.mv_data + 8), id);
        rc = mdb_del(txn, self->confirmed_age, &ak, NULL);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    be64_put(val, dseq);
    be64_put(val + 8, (uint64_t)time_ms);
    v = (MDB_val){sizeof val, val};
    rc = mdb_put(txn, self->confirmed, &k, &v, 0);
    if (rc != 0)
        return rc;
    if (!aging) {
        be64_put(dv, dseq);
        MDB_val uv = {sizeof dv, dv};
        return mdb_put(txn, self->unsent, &k, &uv, 0);
    }
    rc = mdb_del(txn, self->unsent, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    age_key(key, time_ms, id);
    return mdb_put(txn, self->confirmed_age, &ak, &av, 0);
}

/* Record one confirmation inside `txn`, not aging until its DELIVERED is in. */
static int confirm_one(outbox_t *self, MDB_txn *txn, const outbox_confirmation_t *c,
                       int64_t time_ms)
{
    return confirm_set(self, txn, c->id, c->dseq, time_ms, 0);
}

static int confirm_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct confirm_arg *arg = argp;
    int rc = 0;
    for (size_t i = 0; i < arg->n && rc == 0; i++)
        rc = confirm_one(self, txn, &arg->c[i], arg->time_ms);
    return rc;
}

int outbox_confirmed_put_batch(outbox_t *self, const outbox_confirmation_t *c, size_t n,
                               int64_t time_ms)
{
    struct confirm_arg arg = {c, n, time_ms};
    if (n == 0)
        return 0;
    return run_write(self, "record confirmation", confirm_op, &arg);
}

int outbox_confirmed_put(outbox_t *self, const uint8_t id[OUTBOX_ID_LEN], uint64_t dseq,
                         int64_t time_ms)
{
    outbox_confirmation_t c = {id, dseq};
    return outbox_confirmed_put_batch(self, &c, 1, time_ms);
}

struct unsent_arg {
    const outbox_unsent_t *u;
    size_t n;
    int64_t time_ms;
};

/* The hub has read these DELIVEREDs: their entries start aging now. An id
 * that is no longer unsent (settled before, or expired) is left alone. */
static int settle_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct unsent_arg *arg = argp;
    for (size_t i = 0; i < arg->n; i++) {
        MDB_val k = {OUTBOX_ID_LEN, (void *)arg->u[i].id}, v;
        int rc = mdb_get(txn, self->unsent, &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc == 0)
            rc = confirm_set(self, txn, arg->u[i].id, arg->u[i].dseq, arg->time_ms, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int outbox_unsent_settle(outbox_t *self, const outbox_unsent_t *u, size_t n, int64_t time_ms)
{
    struct unsent_arg arg = {u, n, time_ms};
    if (n == 0)
        return 0;
    return run_write_as(self, "settle confirmations", settle_op, &arg, 1);
}

int outbox_unsent_next(outbox_t *self, const uint8_t *after, outbox_unsent_t *out, size_t max,
                       size_t *n)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k = {OUTBOX_ID_LEN, (void *)after}, v;
    *n = 0;
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, self->unsent, &cur);
    if (rc == 0)
        rc = after ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v,
                                                                                 MDB_FIRST);
    if (rc == 0 && after && k.mv_size == OUTBOX_ID_LEN && memcmp(k.mv_data, after, OUTBOX_ID_LEN) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    for (; rc == 0 && *n < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != OUTBOX_ID_LEN || v.mv_size != 8)
            continue; /* not ours to judge */
        memcpy(out[*n].id, k.mv_data, OUTBOX_ID_LEN);
        out[*n].dseq = be64_get(v.mv_data);
        (*n)++;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return set_error(self, NHUB_ESTORE, "unsent: %s", mdb_strerror(rc));
    return 0;
}

int outbox_unsent_count(outbox_t *self, uint64_t *n)
{
    return count_db(self, self->unsent, n);
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

/* Time of the oldest confirmation, INT64_MAX if none. */
static int oldest_confirmed(outbox_t *self, int64_t *oldest)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    *oldest = INT64_MAX;
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, self->confirmed_age, &cur);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == OUTBOX_AGE_KEY_LEN)
        *oldest = (int64_t)be64_get(k.mv_data);
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return set_error(self, NHUB_ESTORE, "confirmed_age: %s", mdb_strerror(rc));
    return 0;
}

struct expire_arg {
    int64_t before;
    size_t max;
    uint64_t expired;
};

static int expire_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct expire_arg *arg = argp;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    arg->expired = 0;
    int rc = mdb_cursor_open(txn, self->confirmed_age, &cur);
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && arg->expired < arg->max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != OUTBOX_AGE_KEY_LEN || (int64_t)be64_get(k.mv_data) >= arg->before)
            break;
        MDB_val id = {OUTBOX_ID_LEN, (uint8_t *)k.mv_data + 8};
        rc = mdb_del(txn, self->confirmed, &id, NULL);
        if (rc == 0 || rc == MDB_NOTFOUND)
            rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
        arg->expired++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int outbox_confirmed_expire(outbox_t *self, int64_t before_ms, size_t max, uint64_t *expired)
{
    struct expire_arg arg = {before_ms, max, 0};
    int64_t oldest;
    if (expired)
        *expired = 0;
    int rc = oldest_confirmed(self, &oldest);
    if (rc != 0 || oldest >= before_ms || max == 0)
        return rc;
    rc = run_write(self, "expire confirmations", expire_op, &arg);
    if (rc == 0 && expired)
        *expired = arg.expired;
    return rc;
}

/* ---- link state ----------------------------------------------------------- */

static void link_decode(const MDB_val *v, outbox_link_t *out)
{
    const uint8_t *p = v->mv_data;
    memset(out, 0, sizeof *out);
    if (v->mv_size < OUTBOX_LINK_FIXED || p[0] != OUTBOX_LINK_VERSION)
        return; /* not ours to judge: reads as never recorded */
    out->state = p[1];
    out->auth_failures = be64_get(p + 2);
    out->handshake_failures = be64_get(p + 10);
    out->changed_ms = (int64_t)be64_get(p + 18);
    size_t n = v->mv_size - OUTBOX_LINK_FIXED;
    if (n >= sizeof out->error)
        n = sizeof out->error - 1;
    memcpy(out->error, p + OUTBOX_LINK_FIXED, n);
    out->error[n] = '\0';
}

int outbox_link_get(outbox_t *self, outbox_link_t *out)
{
    MDB_txn *txn = NULL;
    MDB_val k = {4, "link"}, v;
    memset(out, 0, sizeof *out);
    int rc = txn_begin(self, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_get(txn, self->meta, &k, &v);
    if (rc == 0)
        link_decode(&v, out);
    if (txn)
        mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return set_error(self, NHUB_ESTORE, "read link state: %s", mdb_strerror(rc));
    return 0;
}

struct link_arg {
    int state;
    uint64_t auth_inc;
    uint64_t handshake_inc;
    int64_t time_ms;
    const char *error;
};

static int link_op(outbox_t *self, MDB_txn *txn, void *argp)
{
    struct link_arg *arg = argp;
    outbox_link_t old;
    uint8_t buf[OUTBOX_LINK_FIXED + OUTBOX_LINK_ERROR_MAX];
    MDB_val k = {4, "link"}, v;
    int rc = mdb_get(txn, self->meta, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    if (rc == 0)
        link_decode(&v, &old);
    else
        memset(&old, 0, sizeof old);
    size_t n = arg->error ? strlen(arg->error) : 0;
    if (n > OUTBOX_LINK_ERROR_MAX - 1)
        n = OUTBOX_LINK_ERROR_MAX - 1;
    buf[0] = OUTBOX_LINK_VERSION;
    buf[1] = (uint8_t)arg->state;
    be64_put(buf + 2, old.auth_failures + arg->auth_inc);
    be64_put(buf + 10, old.handshake_failures + arg->handshake_inc);
    be64_put(buf + 18, (uint64_t)arg->time_ms);
    if (n)
        memcpy(buf + OUTBOX_LINK_FIXED, arg->error, n);
    v = (MDB_val){OUTBOX_LINK_FIXED + n, buf};
    return mdb_put(txn, self->meta, &k, &v, 0);
}

int outbox_link_put(outbox_t *self, int state, uint64_t auth_inc, uint64_t handshake_inc,
                    int64_t time_ms, const char *error)
{
    struct link_arg arg = {state, auth_inc, handshake_inc, time_ms, error};
    if (state < 0 || state > 255)
        return set_error(self, NHUB_EINVAL, "link state %d", state);
    return run_write(self, "record link state", link_op, &arg);
}
