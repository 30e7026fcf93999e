/*
 * store_internal.h: what the store's own files share (store.c: the
 * environment, the journal and the message indexes; store_cases.c: cases,
 * their deadlines and tracked deliveries). Nothing outside the store
 * includes it; the contract is store.h.
 */
#ifndef NHUB_STORE_INTERNAL_H
#define NHUB_STORE_INTERNAL_H

#include "store.h"
#include "tlog.h"

#include "nhub_err.h"

#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <string.h>

#define AGE_DEDUP_LEN 16  /* dedup_age value: msg_id */
#define AGE_REJECT_LEN 24 /* dedup_age value: stream_id stream_seq */
#define REGION_LEN 6
#define QKEY_LEN (REGION_LEN + 8)

struct store {
    MDB_env *env;
    MDB_dbi meta, journal, queue, qtail, dedup, dedup_age, streams, rejects, held, lanes;
    MDB_dbi tree_db, checkpoints; /* the transparency log (store_tree.c) */
    MDB_dbi cases, case_time, case_events, deadlines, tracked; /* store_cases.c */
    MDB_dbi msgseq; /* store_msgseq.c */
    int no_msgseq;  /* a reader of a store before format 4: no msgseq database */
    uint64_t map_size, map_max;
    uint8_t hub_id[STORE_ID_LEN];
    /* Chain state as of the last commit; a transaction works on a copy. */
    uint64_t next_seq;
    uint8_t last_hash[STORE_HASH_LEN];
    EVP_MD_CTX *md;
    /* The Merkle tree over the journal as of the last commit, or as the
     * open transaction has grown it (its txn keeps the state to go back to). */
    tlog_state_t *tree;
    int chain_only; /* store_drop_tree: no tree kept (measurement only) */
    int txn_open;
    int read_only; /* store_open_reader: another process writes */
    char *dir;
};

struct store_txn {
    store_t *store;
    MDB_txn *txn;
    uint64_t next_seq;
    uint8_t last_hash[STORE_HASH_LEN];
    int chain_dirty;
    /* The tree grew in this transaction: its state before, to restore on abort. */
    int tree_dirty;
    size_t tree_backup_len;
    uint8_t tree_backup[TLOG_STATE_MAX];
    /* Cases entering (+1) and leaving (-1) each state in this transaction,
     * added to meta "case_counts" at the commit (store_cases_flush). */
    int64_t case_delta[STORE_CASE_STATES];
    int cases_dirty;
    /* Changes to meta "cstat/<handler>/<item>" in this transaction, added
     * at the commit or when the table is full (store_cases_flush). */
    struct cstat_delta {
        char handler[7];
        char item[65];
        int64_t v[STORE_CSTAT_N];
    } cstat[STORE_CSTAT_TXN_MAX];
    size_t n_cstat;
};

struct store_reader {
    store_t *store;
    MDB_txn *txn;
};

/* store_tree.c, for store.c */
int store_tree_open_dbs(store_t *s, MDB_txn *txn);
int store_tree_load(store_t *s, MDB_txn *txn, tlog_alg_t alg, char *err, size_t errcap);
int store_tree_append(store_txn_t *t, const void *event, size_t len);
int store_tree_flush(store_txn_t *t);
void store_tree_rollback(store_txn_t *t);

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Map an LMDB return code to ours; full map and full disk are one condition. */
static inline int lmdb_err(int rc)
{
    switch (rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return NHUB_ENOTFOUND;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT: return NHUB_EFULL;
    default: return NHUB_ESTORE;
    }
}

static inline int meta_get(store_t *s, MDB_txn *txn, const char *key, void *out, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size != len)
        return MDB_CORRUPTED;
    memcpy(out, v.mv_data, len);
    return 0;
}

static inline int meta_put(store_t *s, MDB_txn *txn, const char *key, const void *data, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)data};
    return mdb_put(txn, s->meta, &k, &v, 0);
}

/* store_msgseq.c, for store.c: open `msgseq` (an LMDB code); start indexing
 * the journal of a store before format 4 (meta "msgseq_from", in load_meta's
 * transaction); index what is left, in transactions of their own, after the
 * open's (0, or NHUB_EFULL / NHUB_ESTORE with a message in `err`). */
int store_msgseq_open_db(store_t *s, MDB_txn *txn);
int store_msgseq_begin(store_t *s, MDB_txn *txn);
int store_msgseq_index(store_t *s, char *err, size_t errcap);
/* What store_msgseq.c and pruning read of an encoded JournalEvent without
 * decoding it (store_retention.c): type (field 1), time_ms (2) and msg_id
 * (4, pointing into the event), each 0/NULL when absent. 0 or NHUB_EMALFORMED. */
typedef struct store_event_peek {
    uint64_t type;
    int64_t time_ms;
    const uint8_t *msg_id;
    size_t msg_id_len;
} store_event_peek_t;
int store_event_peek(const void *event, size_t len, store_event_peek_t *out);
/* Pruning journal record `seq` (its stored value `record`): forget its msgseq
 * entry if it is an ACCEPTED record. An LMDB code. */
int store_msgseq_forget(store_t *s, MDB_txn *txn, uint64_t seq, const MDB_val *record);

/* store_cases.c: open its databases (in store_open's transaction). An LMDB code. */
int store_cases_open_dbs(store_t *s, MDB_txn *txn);

/* store_cases.c: add the transaction's case count deltas to meta. An LMDB code. */
int store_cases_flush(store_txn_t *t);

#endif
