/*
 * api_audit.c: the transparency log over HTTP (GET, read token):
 *
 *   /api/v1/checkpoint            the latest signed checkpoint: its note,
 *                                 size, root, origin and the verifier key
 *   /api/v1/proof?seq=S[&size=N]  that journal record S is in the tree of
 *                                 size N (default: the latest checkpoint's):
 *                                 its leaf hash, the inclusion proof, and the
 *                                 checkpoint of size N when there is one. Not
 *                                 the record: it holds the envelope, and this
 *                                 endpoint never answers a payload; whoever
 *                                 holds the record recomputes the leaf
 *   /api/v1/consistency?from=M[&to=N]  that the tree of size N extends the
 *                                 one of size M: both roots and the proof
 *
 * Hashes are lowercase hex. Everything needed to check an answer offline
 * is in it but the verifier key, which an auditor takes from the hub's
 * operators once (it is also in /api/v1/checkpoint, for convenience only:
 * trusting it from the same answer proves nothing).
 */
#include "hub_internal.h"

#include <stdlib.h>

static json_t *hash_json(const uint8_t h[TLOG_HASH_LEN])
{
    char hex[2 * TLOG_HASH_LEN + 1];
    return json_string(log_hex(hex, sizeof hex, h, TLOG_HASH_LEN));
}

static json_t *proof_json(const tlog_hash_t *proof, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, hash_json(proof[i]));
    return a;
}

/* The latest checkpoint's size (0 if none). */
static uint64_t latest_size(store_reader_t *rd)
{
    const char *note;
    size_t len;
    uint64_t size = 0;
    return store_checkpoint_get(rd, 0, &note, &len, &size) == 0 ? size : 0;
}

void api_get_checkpoint(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    const char *note;
    size_t len;
    uint64_t size = 0, tree = 0;
    tlog_alg_t alg = TLOG_SHA256;
    store_tree_info(rd, &tree, NULL, &alg);
    if (store_checkpoint_get(rd, 0, &note, &len, &size) != 0) {
        http_reply_error(req, 404, "not_found",
                         "no checkpoint yet (one comes every %lld records or %lld s of traffic)",
                         (long long)h->cfg->audit.checkpoint_every,
                         (long long)h->cfg->audit.checkpoint_interval_ms / 1000);
        return;
    }
    uint8_t root[TLOG_HASH_LEN];
    char vkey[TLOG_VKEY_MAX];
    json_t *o = json_pack("{s:s%,s:I,s:s,s:s,s:I,s:b}", "note", note, len, "size", (json_int_t)size,
                          "origin", h->cfg->audit.origin, "hash", tlog_alg_name(alg), "tree_size",
                          (json_int_t)tree, "signed", h->cp_signer != NULL);
    if (store_tree_root_at(rd, size, root) == 0)
        json_object_set_new(o, "root", hash_json(root));
    if (checkpoint_vkey(h, vkey, sizeof vkey) == 0)
        json_object_set_new(o, "vkey", json_string(vkey));
    http_reply_json(req, 200, o);
}

void api_get_proof(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    (void)h;
    uint64_t seq = 0, size = 0, tree = 0;
    store_tree_info(rd, &tree, NULL, NULL);
    uint64_t def = latest_size(rd);
    if (api_query_u64(req, "seq", 0, UINT64_MAX, &seq) ||
        api_query_u64(req, "size", def ? def : tree, UINT64_MAX, &size))
        return;
    if (seq == 0 || size == 0 || seq > size || size > tree) {
        http_reply_error(req, 400, "bad_request",
                         "query \"seq\": a journal record 1..size, and \"size\" at most the "
                         "tree's %llu (given seq %llu, size %llu)",
                         (unsigned long long)tree, (unsigned long long)seq,
                         (unsigned long long)size);
        return;
    }
    size_t n = 0;
    tlog_hash_t proof[TLOG_PROOF_MAX];
    uint8_t root[TLOG_HASH_LEN], leaf[TLOG_HASH_LEN];
    if (store_tree_node(rd, 0, seq - 1, leaf) != 0 || store_tree_root_at(rd, size, root) != 0 ||
        store_tree_prove_inclusion(rd, seq - 1, size, proof, TLOG_PROOF_MAX, &n) != 0) {
        http_reply_error(req, 503, "unavailable", "the tree could not be read");
        return;
    }
    json_t *o = json_pack("{s:I,s:I,s:I,s:o,s:o,s:o}", "seq", (json_int_t)seq, "leaf_index",
                          (json_int_t)(seq - 1), "tree_size", (json_int_t)size, "leaf",
                          hash_json(leaf), "root", hash_json(root), "proof", proof_json(proof, n));
    const char *note;
    size_t nlen;
    uint64_t got;
    if (store_checkpoint_get(rd, size, &note, &nlen, &got) == 0)
        json_object_set_new(o, "checkpoint", json_stringn(note, nlen));
    http_reply_json(req, 200, o);
}

void api_get_consistency(hub_t *h, http_req_t *req, store_reader_t *rd)
{
    (void)h;
    uint64_t from = 0, to = 0, tree = 0;
    store_tree_info(rd, &tree, NULL, NULL);
    uint64_t def = latest_size(rd);
    if (api_query_u64(req, "from", 0, UINT64_MAX, &from) ||
        api_query_u64(req, "to", def ? def : tree, UINT64_MAX, &to))
        return;
    if (from == 0 || from > to || to > tree) {
        http_reply_error(req, 400, "bad_request",
                         "query \"from\": 1..to, and \"to\" at most the tree's %llu (given from "
                         "%llu, to %llu)",
                         (unsigned long long)tree, (unsigned long long)from,
                         (unsigned long long)to);
        return;
    }
    tlog_hash_t proof[TLOG_PROOF_MAX];
    size_t n = 0;
    uint8_t root_from[TLOG_HASH_LEN], root_to[TLOG_HASH_LEN];
    if (store_tree_root_at(rd, from, root_from) != 0 || store_tree_root_at(rd, to, root_to) != 0 ||
        store_tree_prove_consistency(rd, from, to, proof, TLOG_PROOF_MAX, &n) != 0) {
        http_reply_error(req, 503, "unavailable", "the tree could not be read");
        return;
    }
    http_reply_json(req, 200,
                    json_pack("{s:I,s:I,s:o,s:o,s:o}", "from", (json_int_t)from, "to",
                              (json_int_t)to, "root_from", hash_json(root_from), "root_to",
                              hash_json(root_to), "proof", proof_json(proof, n)));
}
