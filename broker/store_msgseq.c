/*
 * store_msgseq.c: the index from a message's msg_id to the journal record
 * that accepted it (database `msgseq`, msg_id(16) -> seq(8)), for the
 * receipts a region fetches (an inclusion proof needs the record's seq).
 *
 * Unlike the duplicate window (`dedup`), which forgets a msg_id after a
 * while, this index is kept for as long as the journal keeps the record:
 * a receipt may be asked for months later. It is written in the same
 * transaction as the ACCEPTED record (DESIGN.md 1). A store from before it
 * (format 3 and older) is indexed once at open, from the journal itself,
 * in transactions of MSGSEQ_CHUNK records: meta "msgseq_from" holds the
 * first seq still to be indexed, so a crash in the middle resumes there,
 * and a huge journal never makes one transaction of millions of puts.
 */
#include "store_internal.h"

#include "log.h"
#include "nhub_journal.pb-c.h"

#include <stdio.h>
#include <time.h>

#define MSGSEQ_CHUNK 65536

int store_msgseq_open_db(store_t *s, MDB_txn *txn)
{
    int rc = mdb_dbi_open(txn, "msgseq", s->read_only ? 0 : MDB_CREATE, &s->msgseq);
    if (rc == MDB_NOTFOUND && s->read_only) { /* a reader of a store before format 4 */
        s->no_msgseq = 1;
        return 0;
    }
    return rc;
}

static int msgseq_put(MDB_txn *txn, const store_t *s, const uint8_t msg_id[16], uint64_t seq)
{
    uint8_t v_be[8];
    put_be64(v_be, seq);
    MDB_val k = {16, (void *)msg_id}, v = {8, v_be};
    return mdb_put(txn, s->msgseq, &k, &v, 0);
}

int store_msgseq_put(store_txn_t *txn, const uint8_t msg_id[16], uint64_t seq)
{
    return lmdb_err(msgseq_put(txn->txn, txn->store, msg_id, seq));
}

int store_msg_seq(store_reader_t *r, const uint8_t msg_id[16], uint64_t *seq)
{
    if (r->store->no_msgseq)
        return NHUB_ENOTFOUND;
    MDB_val k = {16, (void *)msg_id}, v;
    int rc = mdb_get(r->txn, r->store->msgseq, &k, &v);
    if (rc)
        return lmdb_err(rc);
    if (v.mv_size != 8)
        return NHUB_EMALFORMED;
    uint64_t s = get_be64(v.mv_data);
    /* The record itself must still be there (a pruned range keeps no
     * record to prove). */
    uint8_t key_be[8];
    put_be64(key_be, s);
    MDB_val jk = {8, key_be}, jv;
    if ((rc = mdb_get(r->txn, r->store->journal, &jk, &jv)))
        return lmdb_err(rc);
    *seq = s;
    return 0;
}

int store_msgseq_begin(store_t *s, MDB_txn *txn)
{
    uint8_t from[8];
    put_be64(from, 1);
    return meta_put(s, txn, "msgseq_from", from, sizeof from);
}

/* Index up to MSGSEQ_CHUNK records from *from on in `txn`; *from is the
 * next seq to index afterwards, *n counts the messages indexed, *done = 1
 * at the journal's end. An LMDB code. */
static int index_chunk(store_t *s, MDB_txn *txn, uint64_t *from, uint64_t *n, int *done)
{
    MDB_cursor *c;
    uint8_t key_be[8];
    put_be64(key_be, *from);
    MDB_val k = {8, key_be}, v;
    int rc = mdb_cursor_open(txn, s->journal, &c);
    if (rc)
        return rc;
    size_t i = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc && i < MSGSEQ_CHUNK;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), i++) {
        if (k.mv_size != 8)
            continue; /* nhub-audit verify names it; the index skips it */
        uint64_t seq = get_be64(k.mv_data);
        *from = seq + 1;
        if (v.mv_size < STORE_HASH_LEN)
            continue;
        Nhub__Journal__V1__JournalEvent *ev = nhub__journal__v1__journal_event__unpack(
            NULL, v.mv_size - STORE_HASH_LEN, (const uint8_t *)v.mv_data + STORE_HASH_LEN);
        int accepted =
            ev && ev->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED && ev->msg_id.len == 16;
        if (accepted && (rc = msgseq_put(txn, s, ev->msg_id.data, seq)) == 0)
            (*n)++;
        if (ev)
            nhub__journal__v1__journal_event__free_unpacked(ev, NULL);
        if (rc)
            break;
    }
    mdb_cursor_close(c);
    *done = rc == MDB_NOTFOUND;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    uint8_t from_be[8];
    put_be64(from_be, *from);
    if (*done) {
        MDB_val mk = {11, "msgseq_from"};
        return mdb_del(txn, s->meta, &mk, NULL);
    }
    return meta_put(s, txn, "msgseq_from", from_be, sizeof from_be);
}

static int msgseq_fail(int rc, char *err, size_t cap)
{
    if (err && cap)
        snprintf(err, cap, "store: cannot index msg_ids: %s", mdb_strerror(rc));
    return lmdb_err(rc) == NHUB_EFULL ? NHUB_EFULL : NHUB_ESTORE;
}

int store_msgseq_index(store_t *s, char *err, size_t errcap)
{
    MDB_txn *txn = NULL;
    uint8_t from_be[8];
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return msgseq_fail(rc, err, errcap);
    if ((rc = meta_get(s, txn, "msgseq_from", from_be, sizeof from_be))) {
        mdb_txn_abort(txn);
        return rc == MDB_NOTFOUND ? 0 : msgseq_fail(rc, err, errcap); /* nothing to do */
    }
    uint64_t from = get_be64(from_be), n = 0, start = from;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    log_info("store.msgseq_indexing", "from=%llu", (unsigned long long)from);
    for (int done = 0; !rc && !done;) {
        if (!txn && (rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
            break;
        if ((rc = index_chunk(s, txn, &from, &n, &done))) {
            mdb_txn_abort(txn);
            break;
        }
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc)
        return msgseq_fail(rc, err, errcap);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    log_info("store.msgseq_indexed", "records=%llu messages=%llu seconds=%.3f",
             (unsigned long long)(from - start), (unsigned long long)n, secs);
    return 0;
}
