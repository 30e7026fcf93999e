/*
 * store_retention.c: what archives and retention need of the store (see
 * store.h, "archives and retention").
 *
 * Pruning removes journal record bodies (and an ACCEPTED record's msgseq
 * entry: store_msgseq_forget), nothing else. The Merkle tree keeps every
 * node, so the root, the checkpoints and every proof for a record still
 * live are what they were; the chain continues from meta
 * "journal_start_prev", so the live journal can be verified from its first
 * record on, and an archive ending at journal_start - 1 hands it over.
 *
 * The store itself refuses to prune what must stay: a record not archived
 * yet, one whose message a region's queue still holds (delivery reads the
 * envelope from the journal: an acknowledged message is never dropped),
 * and the last record (the chain's state must be readable).
 */
#include "store_internal.h"

#include "log.h"

#include <stdlib.h>

#define KEY_START "journal_start"
#define KEY_START_PREV "journal_start_prev"
#define KEY_ARCHIVE_NEXT "archive_next"

/* meta u64 `key`, `def` when absent. An LMDB code. */
static int meta_u64(store_t *s, MDB_txn *txn, const char *key, uint64_t def, uint64_t *out)
{
    uint8_t be[8];
    int rc = meta_get(s, txn, key, be, sizeof be);
    *out = rc == MDB_NOTFOUND ? def : get_be64(be);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int start_get(store_t *s, MDB_txn *txn, uint64_t *start, uint8_t prev[STORE_HASH_LEN])
{
    int rc = meta_u64(s, txn, KEY_START, 1, start);
    if (rc)
        return rc;
    rc = meta_get(s, txn, KEY_START_PREV, prev, STORE_HASH_LEN);
    if (rc == MDB_NOTFOUND && *start == 1) {
        memset(prev, 0, STORE_HASH_LEN);
        return 0;
    }
    return rc;
}

int store_journal_start(store_reader_t *r, uint64_t *start, uint8_t prev[STORE_HASH_LEN])
{
    return lmdb_err(start_get(r->store, r->txn, start, prev));
}

int store_chain_before(store_reader_t *r, uint64_t seq, uint8_t prev[STORE_HASH_LEN])
{
    uint64_t start;
    const void *ev;
    size_t len;
    const uint8_t *hash;
    if (seq <= 1) {
        memset(prev, 0, STORE_HASH_LEN);
        return 0;
    }
    if (store_journal_get(r, seq - 1, &ev, &len, &hash) == 0) {
        memcpy(prev, hash, STORE_HASH_LEN);
        return 0;
    }
    int rc = store_journal_start(r, &start, prev);
    return rc ? rc : start == seq ? 0 : NHUB_ENOTFOUND;
}

/* A protobuf varint at *p (below end): 0 and *v, or -1. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* The fields before time_ms come first in the encoding but need not (a
 * parser takes any order), so this walks every field. A later occurrence
 * wins, as in any protobuf parser. */
int store_event_peek(const void *event, size_t len, store_event_peek_t *out)
{
    const uint8_t *p = event, *end = p + len;
    *out = (store_event_peek_t){0};
    while (p < end) {
        uint64_t tag, v;
        if (varint(&p, end, &tag) != 0)
            return NHUB_EMALFORMED;
        int type = (int)(tag & 7);
        uint64_t field = tag >> 3;
        if (type == 0 && varint(&p, end, &v) == 0) {
            if (field == 1)
                out->type = v;
            else if (field == 2)
                out->time_ms = (int64_t)v;
            continue;
        }
        if (type == 2 && varint(&p, end, &v) == 0 && v <= (uint64_t)(end - p)) {
            if (field == 4) {
                out->msg_id = p;
                out->msg_id_len = (size_t)v;
            }
            p += v;
            continue;
        }
        if ((type == 1 || type == 5) && (size_t)(end - p) >= (type == 1 ? 8u : 4u)) {
            p += type == 1 ? 8 : 4;
            continue;
        }
        return NHUB_EMALFORMED;
    }
    return 0;
}

int store_event_time(const void *event, size_t len, int64_t *ms)
{
    store_event_peek_t f;
    int rc = store_event_peek(event, len, &f);
    *ms = rc ? 0 : f.time_ms;
    return rc;
}

const uint8_t *store_reader_hub_id(const store_reader_t *r)
{
    return r->store->hub_id;
}

int store_archive_next(store_reader_t *r, uint64_t *next)
{
    return lmdb_err(meta_u64(r->store, r->txn, KEY_ARCHIVE_NEXT, 1, next));
}

int store_archive_mark(store_txn_t *t, uint64_t next)
{
    uint8_t be[8];
    put_be64(be, next);
    return lmdb_err(meta_put(t->store, t->txn, KEY_ARCHIVE_NEXT, be, sizeof be));
}

/*
 * The lowest journal seq a region's queue holds (UINT64_MAX if none): the
 * head of each region's queue, since a region's messages are queued in
 * the transaction that journals them, so its seqs grow with its dseqs.
 */
static int queued_min(store_t *s, MDB_txn *txn, uint64_t *min)
{
    MDB_cursor *regions = NULL, *queue = NULL;
    MDB_val k, v;
    *min = UINT64_MAX;
    int rc = mdb_cursor_open(txn, s->qtail, &regions);
    if (!rc)
        rc = mdb_cursor_open(txn, s->queue, &queue);
    for (rc = rc ? rc : mdb_cursor_get(regions, &k, &v, MDB_FIRST); !rc;
         rc = mdb_cursor_get(regions, &k, &v, MDB_NEXT)) {
        if (k.mv_size != REGION_LEN)
            continue;
        uint8_t from[QKEY_LEN] = {0};
        memcpy(from, k.mv_data, REGION_LEN);
        MDB_val qk = {QKEY_LEN, from}, qv;
        int qrc = mdb_cursor_get(queue, &qk, &qv, MDB_SET_RANGE);
        if (qrc == MDB_NOTFOUND)
            continue;
        if (qrc) {
            rc = qrc;
            break;
        }
        if (qk.mv_size == QKEY_LEN && memcmp(qk.mv_data, k.mv_data, REGION_LEN) == 0 &&
            qv.mv_size >= 8 && get_be64(qv.mv_data) < *min)
            *min = get_be64(qv.mv_data);
    }
    mdb_cursor_close(queue);
    mdb_cursor_close(regions);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_journal_prune(store_txn_t *t, uint64_t last, uint64_t *first, uint64_t *n)
{
    store_t *s = t->store;
    uint64_t start, archived, queued;
    uint8_t prev[STORE_HASH_LEN];
    if (n)
        *n = 0;
    int rc = start_get(s, t->txn, &start, prev);
    if (!rc)
        rc = meta_u64(s, t->txn, KEY_ARCHIVE_NEXT, 1, &archived);
    if (!rc)
        rc = queued_min(s, t->txn, &queued);
    if (rc)
        return lmdb_err(rc);
    if (first)
        *first = start;
    if (archived && last >= archived)
        last = archived - 1;
    if (queued && last >= queued)
        last = queued - 1;
    if (t->next_seq < 2)
        return 0;
    if (last >= t->next_seq - 1)
        last = t->next_seq - 2; /* the last record stays */
    if (last < start)
        return 0;
    uint8_t key[8];
    put_be64(key, last);
    MDB_val k = {8, key}, v;
    if ((rc = mdb_get(t->txn, s->journal, &k, &v)))
        return lmdb_err(rc);
    if (v.mv_size < STORE_HASH_LEN)
        return NHUB_EMALFORMED;
    memcpy(prev, v.mv_data, STORE_HASH_LEN);
    /* One cursor walks and deletes the range; each ACCEPTED record's msgseq
     * entry goes with it (the index never outgrows the journal). */
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, s->journal, &c)))
        return lmdb_err(rc);
    put_be64(key, start);
    k = (MDB_val){8, key};
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue; /* not a record's key: nhub-audit verify names it */
        if (get_be64(k.mv_data) > last)
            break;
        if ((rc = store_msgseq_forget(s, t->txn, get_be64(k.mv_data), &v)) ||
            (rc = mdb_cursor_del(c, 0)))
            break;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_err(rc);
    put_be64(key, last + 1);
    if ((rc = meta_put(s, t->txn, KEY_START, key, 8)) ||
        (rc = meta_put(s, t->txn, KEY_START_PREV, prev, STORE_HASH_LEN)))
        return lmdb_err(rc);
    if (n)
        *n = last - start + 1;
    return 0;
}

int store_tree_state_at(store_reader_t *r, uint64_t n, uint8_t *buf, size_t cap, size_t *len)
{
    uint64_t size;
    tlog_alg_t alg;
    int rc = store_tree_info(r, &size, NULL, &alg);
    if (rc)
        return rc;
    size_t k = (size_t)__builtin_popcountll(n), need = 10 + k * TLOG_HASH_LEN;
    if (n > size || cap < need)
        return NHUB_EINVAL;
    /* tlog_state_encode's layout (tlog.h): version 1, algorithm, size, then
     * the perfect subtrees n's binary digits give, largest first. */
    buf[0] = 1;
    buf[1] = (uint8_t)alg;
    put_be64(buf + 2, n);
    uint64_t at = 0;
    uint8_t *p = buf + 10;
    for (int level = 63; level >= 0; level--) {
        if (!((n >> level) & 1))
            continue;
        if ((rc = store_tree_node(r, (uint64_t)level, at >> level, p)))
            return rc;
        p += TLOG_HASH_LEN;
        at += UINT64_C(1) << level;
    }
    *len = need;
    return 0;
}
