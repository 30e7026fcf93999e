/*
 * track.c: the daemon's own LMDB (see track.h). One environment, two
 * named databases, one lazily begun write transaction, and the pruning
 * that keeps the store from growing for ever: a cursor walk per database
 * that resumes at the key where the previous step stopped.
 */
#include "track.h"

#include "log.h"
#include "nhub_err.h"

#include <errno.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { WALK_SENT, WALK_SPOOL, WALK_N };

struct track {
    MDB_env *env;
    MDB_dbi sent, spool;
    MDB_txn *txn; /* the open write transaction, or NULL */
    track_policy_t policy;
    int has_policy;
    uint8_t walk_key[WALK_N][NHUB_MSG_ID_LEN]; /* where each walk goes on */
    int walk_set[WALK_N];                      /* 0 = from the first key */
    int failing;                               /* the last write failed: logged once */
    track_counts_t n;
    char err[160];
};

static int st_err(track_t *t, int rc, const char *what)
{
    snprintf(t->err, sizeof t->err, "%s: %s", what, mdb_strerror(rc));
    return rc == MDB_MAP_FULL ? NHUB_EFULL : NHUB_ESTORE;
}

/* A write or commit failed: what the open transaction held is lost. Counted, logged once. */
static int write_failed(track_t *t, int rc, const char *what)
{
    int ret = st_err(t, rc, what);
    t->n.write_failed++;
    if (rc == MDB_MAP_FULL)
        t->n.full++;
    if (!t->failing) {
        char q[200];
        log_error(rc == MDB_MAP_FULL ? "adapterd.track_full" : "adapterd.track_failed",
                  "error=%s detail=\"the daemon's record (DATA_DIR/adapterd) takes no more "
                  "writes: message status and spool marks are not recorded until it does; "
                  "deliveries and submissions go on (see track.map_size_max)\"",
                  log_quote(q, sizeof q, t->err));
        t->failing = 1;
    }
    return ret;
}

static void write_ok(track_t *t)
{
    if (!t->failing)
        return;
    t->failing = 0;
    log_info("adapterd.track_writable", "failed_writes=%llu full=%llu",
             (unsigned long long)t->n.write_failed, (unsigned long long)t->n.full);
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
    if (rc)
        return write_failed(self, rc, "commit");
    write_ok(self);
    return 0;
}

static int wtxn(track_t *t)
{
    if (t->txn)
        return 0;
    int rc = mdb_txn_begin(t->env, NULL, 0, &t->txn);
    if (rc) {
        t->txn = NULL;
        return write_failed(t, rc, "begin");
    }
    return 0;
}

/*
 * A stored record into out[size]: 1 if it is ours. A record of version
 * TRACK_VERSION at least `min` bytes long is one written before fields
 * were appended: read with those zero.
 */
static int record_read(const MDB_val *v, void *out, size_t size, size_t min)
{
    if (v->mv_size < min || v->mv_size > size || *(const uint32_t *)v->mv_data != TRACK_VERSION)
        return 0;
    memset(out, 0, size);
    memcpy(out, v->mv_data, v->mv_size);
    return 1;
}

static int get(track_t *t, MDB_dbi dbi, const uint8_t id[NHUB_MSG_ID_LEN], void *out, size_t size,
               size_t min)
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
    else if (!record_read(&v, out, size, min))
        ret = NHUB_ENOTFOUND; /* a record of another format: not ours to read */
    if (txn != t->txn)
        mdb_txn_abort(txn);
    return ret;
}

static int make_room(track_t *t);

static int put(track_t *t, MDB_dbi dbi, const uint8_t id[NHUB_MSG_ID_LEN], const void *rec,
               size_t size)
{
    for (int attempt = 0;; attempt++) {
        int rc = wtxn(t);
        if (rc)
            return rc;
        MDB_val k = {NHUB_MSG_ID_LEN, (void *)id}, v = {size, (void *)rec};
        rc = mdb_put(t->txn, dbi, &k, &v, 0);
        if (!rc)
            return 0;
        /* The transaction is unusable after a failed put: what it held is lost
         * (see track.h for why that is safe), and the next write begins anew. */
        mdb_txn_abort(t->txn);
        t->txn = NULL;
        if (rc != MDB_MAP_FULL || attempt > 0 || make_room(t) <= 0)
            return write_failed(t, rc, "put");
    }
}

int track_sent_get(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], track_sent_t *out)
{
    return get(self, self->sent, id, out, sizeof *out, offsetof(track_sent_t, closed_ms));
}

int track_sent_put(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], const track_sent_t *rec)
{
    track_sent_t r = *rec;
    r.version = TRACK_VERSION;
    return put(self, self->sent, id, &r, sizeof r);
}

int track_spool_get(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], track_spool_t *out)
{
    return get(self, self->spool, id, out, sizeof *out, sizeof *out);
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
        return write_failed(self, rc, "del");
    }
    return 0;
}

/* ---- pruning ------------------------------------------------------------------ */

void track_set_policy(track_t *self, const track_policy_t *policy)
{
    self->policy = *policy;
    self->has_policy = 1;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/*
 * 1 if the `sent` record in `v` may go at `now`. `room`: the store is
 * full, so a settled record goes whatever its age.
 */
static int sent_prunable(const track_t *t, const MDB_val *v, int64_t now, int room)
{
    track_sent_t r;
    if (!record_read(v, &r, sizeof r, offsetof(track_sent_t, closed_ms)))
        return 0; /* another format: not ours to judge */
    int64_t born = r.submitted_ms ? r.submitted_ms : r.settled_ms;
    if (!room && born && now - born >= t->policy.max_age_ms)
        return 1;
    if (r.state != TRACK_ACKED && r.state != TRACK_REJECTED)
        return 0;
    int has_case =
        r.state == TRACK_ACKED && (r.kind == NHUB_KIND_REQUEST || r.kind == NHUB_KIND_PUSH);
    if (has_case && !r.closed_ms)
        return 0;
    int64_t last = max64(max64(r.settled_ms, r.closed_ms), r.answer_ms);
    return room || now - last >= t->policy.retention_ms;
}

/* 1 if the spool mark `k`, `v` may go at `now`: old enough and its delivery spent. */
static int mark_prunable(const track_t *t, const MDB_val *k, const MDB_val *v, int64_t now)
{
    track_spool_t m;
    if (!t->policy.mark_spent || k->mv_size != NHUB_MSG_ID_LEN ||
        !record_read(v, &m, sizeof m, sizeof m))
        return 0;
    return now - m.written_ms >= t->policy.retention_ms &&
           t->policy.mark_spent(t->policy.arg, k->mv_data);
}

typedef struct walk {
    int64_t now;
    int room;       /* make_room: settled records whatever their age, no marks */
    size_t scan;    /* records still to look at in this database */
    size_t max;     /* deletions allowed in this step */
    size_t deleted; /* deletions made in this step */
    int wrapped;    /* this database's walk reached its end */
} walk_t;

/* Go on with walk `which` over `dbi` in the open transaction. 0 or an LMDB error. */
static int walk_db(track_t *t, int which, MDB_dbi dbi, walk_t *w)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int rc = mdb_cursor_open(t->txn, dbi, &c);
    if (rc)
        return rc;
    if (t->walk_set[which]) {
        k = (MDB_val){NHUB_MSG_ID_LEN, t->walk_key[which]};
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    for (;;) {
        if (rc == MDB_NOTFOUND) {
            t->walk_set[which] = 0; /* round: the next step starts at the first key */
            w->wrapped = 1;
            rc = 0;
            break;
        }
        if (rc)
            break;
        if (!w->scan || w->deleted >= w->max) {
            t->walk_set[which] = k.mv_size == NHUB_MSG_ID_LEN;
            if (t->walk_set[which])
                memcpy(t->walk_key[which], k.mv_data, NHUB_MSG_ID_LEN);
            break;
        }
        w->scan--;
        int go = which == WALK_SENT ? sent_prunable(t, &v, w->now, w->room)
                                    : !w->room && mark_prunable(t, &k, &v, w->now);
        if (go) {
            if ((rc = mdb_cursor_del(c, 0)) != 0)
                break;
            w->deleted++;
        }
        /* After a deletion the cursor already stands on the next key; MDB_NEXT returns it. */
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc;
}

/* One step over both databases; the number deleted, or a negative NHUB_ error. */
static int prune_step(track_t *t, walk_t *w, int *more)
{
    size_t scan = w->scan;
    int rc = wtxn(t), wrapped = 1;
    if (rc)
        return rc;
    MDB_dbi dbis[WALK_N] = {t->sent, t->spool};
    for (int i = 0; i < WALK_N && !rc; i++) {
        w->scan = scan;
        w->wrapped = 0;
        rc = walk_db(t, i, dbis[i], w);
        wrapped &= w->wrapped;
    }
    if (rc) {
        mdb_txn_abort(t->txn);
        t->txn = NULL;
        return write_failed(t, rc, "prune");
    }
    t->n.pruned += w->deleted;
    if (more)
        *more = w->deleted >= w->max ? TRACK_PRUNE_BACKLOG : !wrapped ? TRACK_PRUNE_MORE : 0;
    return 0;
}

int track_prune(track_t *self, int64_t now_ms, size_t scan, size_t max, size_t *deleted)
{
    if (deleted)
        *deleted = 0;
    if (!self->has_policy)
        return 0;
    walk_t w = {.now = now_ms, .scan = scan, .max = max};
    int more = 0, rc = prune_step(self, &w, &more);
    if (deleted)
        *deleted = w.deleted;
    return rc ? rc : more;
}

/*
 * The store is full (the open transaction was aborted): delete every
 * settled record whatever its age, in a transaction of its own, and
 * commit. The number deleted (0: no room to be made), or an error.
 */
static int make_room(track_t *t)
{
    if (!t->has_policy)
        return 0;
    walk_t w = {.room = 1, .scan = SIZE_MAX, .max = SIZE_MAX};
    memset(t->walk_set, 0, sizeof t->walk_set);
    int rc = prune_step(t, &w, NULL);
    if (rc)
        return rc;
    rc = mdb_txn_commit(t->txn);
    t->txn = NULL;
    if (rc)
        return st_err(t, rc, "commit");
    t->n.emergency++;
    log_warn("adapterd.track_room",
             "pruned=%zu detail=\"the daemon's record was full: settled "
             "records were pruned before their retention\"",
             w.deleted);
    return w.deleted > 0;
}

void track_counts(track_t *self, track_counts_t *out)
{
    *out = self->n;
    MDB_txn *txn = self->txn;
    MDB_stat st;
    if (!txn && mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    if (mdb_stat(txn, self->sent, &st) == 0)
        out->records = st.ms_entries;
    if (mdb_stat(txn, self->spool, &st) == 0)
        out->marks = st.ms_entries;
    if (txn != self->txn)
        mdb_txn_abort(txn);
}

const char *track_error(const track_t *self)
{
    return self->err;
}
