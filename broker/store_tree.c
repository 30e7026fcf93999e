/*
 * store_tree.c: the transparency log of the store: a Merkle tree over the
 * journal (proto/tlog.h), kept in the transaction of every journal append.
 *
 * Leaf i is journal record seq i + 1; its data is the record's encoded
 * JournalEvent (the bytes after the chain hash), so anyone holding the
 * journal can recompute every leaf. The store keeps every complete node of
 * the tree in `tree` (key: tlog_stored_index, 8 bytes big-endian; only
 * ever appended) and the compact range in meta "tree_state"; signed
 * checkpoints are in `checkpoints` (size(8) -> signed note text).
 *
 * A store without a tree (written before it existed) gets one at open,
 * built over its whole journal once.
 */
#include "store_internal.h"

#include "log.h"

#include <stdlib.h>

int store_tree_open_dbs(store_t *s, MDB_txn *txn)
{
    unsigned flags = s->read_only ? 0 : MDB_CREATE;
    int rc = mdb_dbi_open(txn, "tree", flags, &s->tree_db);
    return rc ? rc : mdb_dbi_open(txn, "checkpoints", flags, &s->checkpoints);
}

/* Put the nodes an append completed. */
static int put_nodes(MDB_txn *txn, MDB_dbi db, const tlog_node_t *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t pos;
        if (tlog_stored_index(nodes[i].level, nodes[i].index, &pos) != 0)
            return MDB_BAD_VALSIZE;
        uint8_t key[8];
        put_be64(key, pos);
        MDB_val k = {8, key}, v = {TLOG_HASH_LEN, (void *)nodes[i].hash};
        int rc = mdb_put(txn, db, &k, &v, MDB_APPEND);
        if (rc)
            return rc;
    }
    return 0;
}

/* Append the journal record `event` as the next leaf. */
static int tree_add(store_t *s, MDB_txn *txn, const void *event, size_t len)
{
    uint8_t leaf[TLOG_HASH_LEN];
    tlog_node_t nodes[TLOG_MAX_LEVELS];
    size_t n = 0;
    if (tlog_hash_leaf(tlog_state_hasher(s->tree), event, len, leaf) != 0 ||
        tlog_append_nodes(s->tree, leaf, nodes, &n) != 0)
        return NHUB_ECRYPTO;
    return lmdb_err(put_nodes(txn, s->tree_db, nodes, n));
}

static int state_put(store_t *s, MDB_txn *txn)
{
    uint8_t buf[TLOG_STATE_MAX];
    size_t len = 0;
    if (tlog_state_encode(s->tree, buf, sizeof buf, &len) != 0)
        return MDB_BAD_VALSIZE;
    MDB_val k = {10, "tree_state"}, v = {len, buf};
    return mdb_put(txn, s->meta, &k, &v, 0);
}

/* Build the tree over the journal records 1..next_seq-1 (a store from before it). */
static int tree_build(store_t *s, MDB_txn *txn)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t n = 0;
    int rc = mdb_cursor_open(txn, s->journal, &c);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || v.mv_size < STORE_HASH_LEN || get_be64(k.mv_data) != n + 1) {
            rc = MDB_CORRUPTED; /* a gap or a short record: verify names it */
            break;
        }
        int code = tree_add(s, txn, (const uint8_t *)v.mv_data + STORE_HASH_LEN,
                            v.mv_size - STORE_HASH_LEN);
        if (code) {
            rc = code == NHUB_ECRYPTO ? EINVAL : MDB_MAP_FULL;
            break;
        }
        n++;
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    if ((rc = state_put(s, txn)))
        return rc;
    log_info("store.tree_built", "leaves=%llu", (unsigned long long)n);
    return 0;
}

int store_tree_load(store_t *s, MDB_txn *txn, tlog_alg_t alg, char *err, size_t errcap)
{
    MDB_val k = {10, "tree_state"}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0)
        return tlog_state_decode(v.mv_data, v.mv_size, &s->tree, err, errcap);
    if (rc != MDB_NOTFOUND)
        return lmdb_err(rc);
    if ((rc = tlog_state_new(alg, &s->tree, err, errcap)) != 0)
        return rc;
    if (s->read_only)
        return 0; /* an empty tree until the hub builds it */
    rc = tree_build(s, txn);
    if (rc && err && errcap)
        snprintf(err, errcap, "store: cannot build the tree over the journal: %s",
                 mdb_strerror(rc));
    return rc ? (lmdb_err(rc) == NHUB_EFULL ? NHUB_EFULL : NHUB_ESTORE) : 0;
}

int store_drop_tree(store_t *s)
{
    if (s->read_only || s->txn_open)
        return NHUB_EINVAL;
    MDB_txn *txn;
    MDB_val k = {10, "tree_state"};
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return lmdb_err(rc);
    if ((rc = mdb_drop(txn, s->tree_db, 0)) ||
        ((rc = mdb_del(txn, s->meta, &k, NULL)) && rc != MDB_NOTFOUND)) {
        mdb_txn_abort(txn);
        return lmdb_err(rc);
    }
    if ((rc = mdb_txn_commit(txn)))
        return lmdb_err(rc);
    s->chain_only = 1;
    log_warn("store.tree_dropped", "reason=%s", "measurement: the journal's chain alone");
    return 0;
}

int store_tree_append(store_txn_t *t, const void *event, size_t len)
{
    store_t *s = t->store;
    if (s->chain_only)
        return 0;
    if (!t->tree_dirty) {
        if (tlog_state_encode(s->tree, t->tree_backup, sizeof t->tree_backup,
                              &t->tree_backup_len) != 0)
            return NHUB_ECRYPTO;
        t->tree_dirty = 1;
    }
    return tree_add(s, t->txn, event, len);
}

int store_tree_flush(store_txn_t *t)
{
    return t->store->chain_only ? 0 : t->tree_dirty ? state_put(t->store, t->txn) : 0;
}

void store_tree_rollback(store_txn_t *t)
{
    if (!t->tree_dirty)
        return;
    tlog_state_t *back = NULL;
    if (tlog_state_decode(t->tree_backup, t->tree_backup_len, &back, NULL, 0) == 0) {
        tlog_state_free(&t->store->tree);
        t->store->tree = back;
    } else {
        log_error("store.tree_rollback_failed", "size=%llu",
                  (unsigned long long)tlog_state_size(t->store->tree));
    }
    t->tree_dirty = 0;
}

int store_txn_tree(store_txn_t *t, uint64_t *size, uint8_t root[TLOG_HASH_LEN])
{
    if (t->store->chain_only)
        return NHUB_ENOTFOUND;
    *size = tlog_state_size(t->store->tree);
    return tlog_root(t->store->tree, root);
}

/* ---- reading ----------------------------------------------------------------- */

/* The tree state of the reader's snapshot (caller frees), or NULL. */
static tlog_state_t *snapshot_state(store_reader_t *r)
{
    MDB_val k = {10, "tree_state"}, v;
    tlog_state_t *st = NULL;
    if (mdb_get(r->txn, r->store->meta, &k, &v) != 0 ||
        tlog_state_decode(v.mv_data, v.mv_size, &st, NULL, 0) != 0)
        return NULL;
    return st;
}

int store_tree_info(store_reader_t *r, uint64_t *size, uint8_t root[TLOG_HASH_LEN], tlog_alg_t *alg)
{
    tlog_state_t *st = snapshot_state(r);
    if (!st)
        return NHUB_ENOTFOUND;
    *size = tlog_state_size(st);
    if (alg)
        *alg = tlog_state_alg(st);
    int rc = root ? tlog_root(st, root) : 0;
    tlog_state_free(&st);
    return rc;
}

/* tlog_get_hash_fn over the stored nodes: every complete node is there. */
static int get_node(void *arg, uint64_t level, uint64_t index, uint8_t out[TLOG_HASH_LEN])
{
    store_reader_t *r = arg;
    uint64_t pos;
    if (tlog_stored_index(level, index, &pos) != 0)
        return NHUB_EINVAL;
    uint8_t key[8];
    put_be64(key, pos);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(r->txn, r->store->tree_db, &k, &v);
    if (rc == MDB_NOTFOUND)
        return level ? NHUB_ENOTFOUND : NHUB_EMALFORMED; /* a leaf must be there */
    if (rc || v.mv_size != TLOG_HASH_LEN)
        return rc ? lmdb_err(rc) : NHUB_EMALFORMED;
    memcpy(out, v.mv_data, TLOG_HASH_LEN);
    return 0;
}

int store_tree_node(store_reader_t *r, uint64_t level, uint64_t index, uint8_t out[TLOG_HASH_LEN])
{
    return get_node(r, level, index, out);
}

/* A hasher of the snapshot's algorithm (caller frees), or NULL. */
static tlog_hasher_t *snapshot_hasher(store_reader_t *r)
{
    tlog_alg_t alg;
    uint64_t size;
    tlog_hasher_t *h = NULL;
    if (store_tree_info(r, &size, NULL, &alg) != 0 || tlog_hasher_new(alg, &h, NULL, 0) != 0)
        return NULL;
    return h;
}

int store_tree_root_at(store_reader_t *r, uint64_t n, uint8_t out[TLOG_HASH_LEN])
{
    uint64_t size;
    if (store_tree_info(r, &size, NULL, NULL) != 0 || n == 0 || n > size)
        return NHUB_EINVAL;
    tlog_hasher_t *h = snapshot_hasher(r);
    if (!h)
        return NHUB_ENOMEM;
    /* The perfect subtrees n's binary digits give, largest first, folded from the right. */
    uint8_t parts[TLOG_MAX_LEVELS][TLOG_HASH_LEN];
    size_t k = 0;
    uint64_t start = 0;
    int rc = 0;
    for (int level = 63; level >= 0 && !rc; level--) {
        if (!((n >> level) & 1))
            continue;
        rc = get_node(r, (uint64_t)level, start >> level, parts[k++]);
        start += UINT64_C(1) << level;
    }
    for (size_t i = k - 1; !rc && i-- > 0;)
        rc = tlog_hash_node(h, parts[i], parts[i + 1], parts[i]);
    if (!rc)
        memcpy(out, parts[0], TLOG_HASH_LEN);
    tlog_hasher_free(&h);
    return rc;
}

int store_tree_prove_inclusion(store_reader_t *r, uint64_t index, uint64_t size, tlog_hash_t *proof,
                               size_t cap, size_t *len)
{
    tlog_hasher_t *h = snapshot_hasher(r);
    if (!h)
        return NHUB_ENOTFOUND;
    int rc = tlog_prove_inclusion(h, index, size, get_node, r, proof, cap, len);
    tlog_hasher_free(&h);
    return rc;
}

int store_tree_prove_consistency(store_reader_t *r, uint64_t m, uint64_t n, tlog_hash_t *proof,
                                 size_t cap, size_t *len)
{
    tlog_hasher_t *h = snapshot_hasher(r);
    if (!h)
        return NHUB_ENOTFOUND;
    int rc = tlog_prove_consistency(h, m, n, get_node, r, proof, cap, len);
    tlog_hasher_free(&h);
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------- */

int store_checkpoint_put(store_txn_t *t, uint64_t size, const char *note, size_t len)
{
    uint8_t key[8];
    put_be64(key, size);
    MDB_val k = {8, key}, v = {len, (void *)note};
    return lmdb_err(mdb_put(t->txn, t->store->checkpoints, &k, &v, 0));
}

int store_checkpoint_get(store_reader_t *r, uint64_t size, const char **note, size_t *len,
                         uint64_t *got_size)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->txn, r->store->checkpoints, &c);
    if (rc)
        return lmdb_err(rc);
    uint8_t key[8];
    put_be64(key, size);
    MDB_val k = {8, key}, v;
    if (size == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    else
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    if (rc == 0 && k.mv_size == 8) {
        *note = v.mv_data;
        *len = v.mv_size;
        if (got_size)
            *got_size = get_be64(k.mv_data);
    }
    mdb_cursor_close(c);
    return rc == 0 ? 0 : lmdb_err(rc);
}

int store_checkpoint_next(store_reader_t *r, uint64_t after, const char **note, size_t *len,
                          uint64_t *size)
{
    if (after == UINT64_MAX)
        return NHUB_ENOTFOUND;
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->txn, r->store->checkpoints, &c);
    if (rc)
        return lmdb_err(rc);
    uint8_t key[8];
    put_be64(key, after + 1);
    MDB_val k = {8, key}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && k.mv_size != 8)
        rc = MDB_CORRUPTED;
    if (rc == 0) {
        *note = v.mv_data;
        *len = v.mv_size;
        *size = get_be64(k.mv_data);
    }
    mdb_cursor_close(c);
    return rc == 0 ? 0 : lmdb_err(rc);
}
