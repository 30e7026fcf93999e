/*
 * store_msgseq.c: the index from a message's msg_id to the journal records
 * that accepted it (database `msgseq`, msg_id(16) -> seq(8), one duplicate
 * per record), for the receipts a region fetches (an inclusion proof needs
 * the record's seq).
 *
 * A msg_id may name more than one record: once the duplicate window has
 * forgotten it, a SEND with the same msg_id is accepted again, maybe from
 * another region. Every such record keeps its entry (MDB_DUPSORT; the seqs
 * are big-endian, so a msg_id's duplicates sort by seq), so a newer one
 * never hides an older one from the regions it was about. Pruning a record
 * deletes its own entry (store_msgseq_forget), so the index does not outgrow
 * the journal.
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
#include <string.h>
#include <time.h>

#define MSGSEQ_CHUNK 65536

int store_msgseq_open_db(store_t *s, MDB_txn *txn)
{
    unsigned flags = MDB_DUPSORT | MDB_DUPFIXED | (s->read_only ? 0 : MDB_CREATE);
    int rc = mdb_dbi_open(txn, "msgseq", flags, &s->msgseq);
    if (rc == MDB_NOTFOUND && s->read_only) { /* a reader of a store before format 4 */
        s->no_msgseq = 1;
        return 0;
    }
    return rc;
}

/* Whether the stored journal value `v` (chain hash, JournalEvent) is an
 * ACCEPTED record of a 16-byte msg_id, and that msg_id into id. Read without
 * decoding the event (pruning asks it of every record it deletes). */
static int accepted_msg_id(const MDB_val *v, uint8_t id[16])
{
    store_event_peek_t f;
    if (v->mv_size < STORE_HASH_LEN ||
        store_event_peek((const uint8_t *)v->mv_data + STORE_HASH_LEN, v->mv_size - STORE_HASH_LEN,
                         &f) != 0 ||
        f.type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED || f.msg_id_len != 16)
        return 0;
    memcpy(id, f.msg_id, 16);
    return 1;
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

static int msgseq_del(MDB_txn *txn, const store_t *s, const uint8_t msg_id[16], uint64_t seq)
{
    uint8_t v_be[8];
    put_be64(v_be, seq);
    MDB_val k = {16, (void *)msg_id}, v = {8, v_be};
    int rc = mdb_del(txn, s->msgseq, &k, &v);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_msgseq_forget(store_t *s, MDB_txn *txn, uint64_t seq, const MDB_val *record)
{
    uint8_t id[16];
    return accepted_msg_id(record, id) ? msgseq_del(txn, s, id, seq) : 0;
}

int store_msg_seq_each(store_reader_t *r, const uint8_t msg_id[16],
                       int (*fn)(void *arg, uint64_t seq), void *arg)
{
    if (r->store->no_msgseq)
        return NHUB_ENOTFOUND;
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->txn, r->store->msgseq, &c);
    if (rc)
        return lmdb_err(rc);
    MDB_val k = {16, (void *)msg_id}, v;
    int found = 0, out = 0;
    /* Newest first: from the key's last duplicate back. */
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    for (rc = rc ? rc : mdb_cursor_get(c, &k, &v, MDB_LAST_DUP); !rc;
         rc = mdb_cursor_get(c, &k, &v, MDB_PREV_DUP)) {
        if (v.mv_size != 8) {
            out = NHUB_EMALFORMED;
            break;
        }
        uint64_t seq = get_be64(v.mv_data);
        /* The record itself must still be there (a pruned range keeps no
         * record to prove). */
        uint8_t key_be[8];
        put_be64(key_be, seq);
        MDB_val jk = {8, key_be}, jv;
        int jrc = mdb_get(r->txn, r->store->journal, &jk, &jv);
        if (jrc == MDB_NOTFOUND)
            continue;
        if (jrc) {
            out = lmdb_err(jrc);
            break;
        }
        found = 1;
        if ((out = fn(arg, seq)))
            break;
    }
    mdb_cursor_close(c);
    if (out)
        return out;
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_err(rc);
    return found ? 0 : NHUB_ENOTFOUND;
}

static int take_first(void *arg, uint64_t seq)
{
    *(uint64_t *)arg = seq;
    return 1;
}

int store_msg_seq(store_reader_t *r, const uint8_t msg_id[16], uint64_t *seq)
{
    uint64_t s = 0;
    int rc = store_msg_seq_each(r, msg_id, take_first, &s);
    if (rc < 0)
        return rc;
    if (rc == 0) /* fn never stopped: nothing live was found */
        return NHUB_ENOTFOUND;
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
        uint8_t id[16];
        if (accepted_msg_id(&v, id) && (rc = msgseq_put(txn, s, id, seq)) == 0)
            (*n)++;
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
