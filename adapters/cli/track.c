/*
 * track.c: the daemon's own LMDB (see track.h). One environment, two
 * named databases, one lazily begun write transaction.
 */
#include "track.h"

#include "nhub_err.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct track {
    MDB_env *env;
    MDB_dbi sent, spool;
    MDB_txn *txn; /* the open write transaction, or NULL */
    char err[160];
};

static int st_err(track_t *t, int rc, const char *what)
{
    snprintf(t->err, sizeof t->err, "%s: %s", what, mdb_strerror(rc));
    return rc == MDB_MAP_FULL ? NHUB_EFULL : NHUB_ESTORE;
}

int track_open(const char *dir, uint64_t map_max, track_t **out, char *err, size_t errcap)
{
    *out = NULL;
    track_t *t = calloc(1, sizeof *t);
    MDB_txn *txn = NULL;
    int rc = 0;
    if (!t) {
        snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errcap, "%s: %s", dir, strerror(errno));
        free(t);
        return NHUB_EIO;
    }
    if ((rc = mdb_env_create(&t->env)) || (rc = mdb_env_set_maxdbs(t->env, 4)) ||
        (rc = mdb_env_set_mapsize(t->env, (size_t)map_max)) ||
        (rc = mdb_env_open(t->env, dir, MDB_NOTLS, 0600)) ||
        (rc = mdb_txn_begin(t->env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, "sent", MDB_CREATE, &t->sent)) ||
        (rc = mdb_dbi_open(txn, "spool", MDB_CREATE, &t->spool)) || (rc = mdb_txn_commit(txn))) {
        if (txn && rc)
            mdb_txn_abort(txn);
        snprintf(err, errcap, "%s: %s", dir, mdb_strerror(rc));
        mdb_env_close(t->env);
        free(t);
        return NHUB_ESTORE;
    }
    *out = t;
    return 0;
}

void track_close(track_t **self)
{
    track_t *t = self ? *self : NULL;
    if (!t)
        return;
    track_commit(t);
    mdb_env_close(t->env);
    free(t);
    *self = NULL;
}

int track_commit(track_t *self)
{
    if (!self->txn)
        return 0;
    int rc = mdb_txn_commit(self->txn);
    self->txn = NULL;
    return rc ? st_err(self, rc, "commit") : 0;
}

static int wtxn(track_t *t)
{
    if (t->txn)
        return 0;
    int rc = mdb_txn_begin(t->env, NULL, 0, &t->txn);
    if (rc) {
        t->txn = NULL;
        return st_err(t, rc, "begin");
    }
    return 0;
}

static int get(track_t *t, MDB_dbi dbi, const uint8_t id[NHUB_MSG_ID_LEN], void *out, size_t size)
{
    MDB_txn *txn = t->txn;
    int rc = txn ? 0 : mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return st_err(t, rc, "begin");
    MDB_val k = {NHUB_MSG_ID_LEN, (void *)id}, v;
    rc = mdb_get(txn, dbi, &k, &v);
    int ret = 0;
    if (rc == MDB_NOTFOUND)
        ret = NHUB_ENOTFOUND;
    else if (rc)
        ret = st_err(t, rc, "get");
    else if (v.mv_size != size || *(const uint32_t *)v.mv_data != TRACK_VERSION)
        ret = NHUB_ENOTFOUND; /* a record of another format: not ours to read */
    else
        memcpy(out, v.mv_data, size);
    if (txn != t->txn)
        mdb_txn_abort(txn);
    return ret;
}

static int put(track_t *t, MDB_dbi dbi, const uint8_t id[NHUB_MSG_ID_LEN], const void *rec,
               size_t size)
{
    int rc = wtxn(t);
    if (rc)
        return rc;
    MDB_val k = {NHUB_MSG_ID_LEN, (void *)id}, v = {size, (void *)rec};
    rc = mdb_put(t->txn, dbi, &k, &v, 0);
    if (rc) {
        /* The transaction is unusable after a failed put: what it held is lost
         * (see track.h for why that is safe), and the next write begins anew. */
        mdb_txn_abort(t->txn);
        t->txn = NULL;
        return st_err(t, rc, "put");
    }
    return 0;
}

int track_sent_get(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], track_sent_t *out)
{
    return get(self, self->sent, id, out, sizeof *out);
}

int track_sent_put(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], const track_sent_t *rec)
{
    track_sent_t r = *rec;
    r.version = TRACK_VERSION;
    return put(self, self->sent, id, &r, sizeof r);
}

int track_spool_get(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], track_spool_t *out)
{
    return get(self, self->spool, id, out, sizeof *out);
}

int track_spool_put(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], const track_spool_t *rec)
{
    track_spool_t r = *rec;
    r.version = TRACK_VERSION;
    return put(self, self->spool, id, &r, sizeof r);
}

int track_spool_del(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN])
{
    int rc = wtxn(self);
    if (rc)
        return rc;
    MDB_val k = {NHUB_MSG_ID_LEN, (void *)id};
    rc = mdb_del(self->txn, self->spool, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return NHUB_ENOTFOUND;
    if (rc) {
        mdb_txn_abort(self->txn);
        self->txn = NULL;
        return st_err(self, rc, "del");
    }
    return 0;
}

const char *track_error(const track_t *self)
{
    return self->err;
}
