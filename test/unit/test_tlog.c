/*
 * test_tlog.c: the transparency log core (proto/tlog.h).
 *
 * The tree, its proofs and its compact state are checked against a small
 * independent implementation here (the recursive MTH, PATH and SUBPROOF of
 * RFC 9162 2.1, hashing through OpenSSL directly), against the published
 * RFC 6962 test vectors, and for every tree size up to 70 with every index
 * and every old size. Notes are checked against the golang.org/x/mod
 * sumdb/note example (a vector from another implementation), round trips
 * with Ed25519 and SM2 keys from keys.h and from OpenSSL, tampering, and
 * random bytes (the ASan build checks that nothing crashes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "keys.h"
#include "nhub_err.h"
#include "tlog.h"

#include <openssl/evp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 70

/* ---- the independent reference ------------------------------------------ */

static void ref_digest(const char *md, int prefix, const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen, uint8_t out[32])
{
    uint8_t buf[1 + 64 + 64];
    size_t n = 0;
    unsigned int olen = 0;

    assert_true(alen + blen <= 128);
    if (prefix >= 0)
        buf[n++] = (uint8_t)prefix;
    if (alen)
        memcpy(buf + n, a, alen);
    n += alen;
    if (blen)
        memcpy(buf + n, b, blen);
    n += blen;
    EVP_MD *m = EVP_MD_fetch(NULL, md, NULL);
    assert_non_null(m);
    assert_int_equal(EVP_Digest(buf, n, out, &olen, m, NULL), 1);
    EVP_MD_free(m);
}

static void ref_leaf(const char *md, uint64_t i, uint8_t out[32])
{
    uint8_t d[8];
    for (int k = 0; k < 8; k++)
        d[k] = (uint8_t)(i >> (8 * k)) ^ 0x5a;
    ref_digest(md, 0, d, sizeof d, NULL, 0, out);
}

static uint64_t ref_k(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

/* MTH(D[lo:hi]) of leaf hashes L. */
static void ref_mth(const char *md, uint8_t (*L)[32], uint64_t lo, uint64_t hi, uint8_t out[32])
{
    uint8_t a[32], b[32];
    if (hi - lo == 1) {
        memcpy(out, L[lo], 32);
        return;
    }
    uint64_t k = ref_k(hi - lo);
    ref_mth(md, L, lo, lo + k, a);
    ref_mth(md, L, lo + k, hi, b);
    ref_digest(md, 1, a, 32, b, 32, out);
}

/* PATH(m, D[lo:hi]) appended to out. */
static void ref_path(const char *md, uint8_t (*L)[32], uint64_t m, uint64_t lo, uint64_t hi,
                     tlog_hash_t *out, size_t *n)
{
    if (hi - lo == 1)
        return;
    uint64_t k = ref_k(hi - lo);
    if (m - lo < k) {
        ref_path(md, L, m, lo, lo + k, out, n);
        ref_mth(md, L, lo + k, hi, out[(*n)++]);
    } else {
        ref_path(md, L, m, lo + k, hi, out, n);
        ref_mth(md, L, lo, lo + k, out[(*n)++]);
    }
}

/* SUBPROOF(m, D[lo:hi], b) appended to out (m relative to lo). */
static void ref_subproof(const char *md, uint8_t (*L)[32], uint64_t m, uint64_t lo, uint64_t hi,
                         int b, tlog_hash_t *out, size_t *n)
{
    if (m == hi - lo) {
        if (!b)
            ref_mth(md, L, lo, hi, out[(*n)++]);
        return;
    }
    uint64_t k = ref_k(hi - lo);
    if (m <= k) {
        ref_subproof(md, L, m, lo, lo + k, b, out, n);
        ref_mth(md, L, lo + k, hi, out[(*n)++]);
    } else {
        ref_subproof(md, L, m - k, lo + k, hi, 0, out, n);
        ref_mth(md, L, lo, lo + k, out[(*n)++]);
    }
}

/* ---- stores for the callback -------------------------------------------- */

typedef struct store {
    const char *md;
    uint8_t (*leaves)[32];
    uint64_t n;
    int all_nodes; /* answer every complete node, not only leaves */
    uint64_t calls;
    int fail; /* return this error at once */
} store_t;

static int store_get(void *arg, uint64_t level, uint64_t index, uint8_t out[32])
{
    store_t *s = arg;
    s->calls++;
    if (s->fail)
        return s->fail;
    assert_true(level < 64);
    uint64_t lo = index << level, hi = (index + 1) << level;
    assert_true(hi <= s->n); /* tlog asks only for complete nodes */
    if (level > 0 && !s->all_nodes)
        return NHUB_ENOTFOUND;
    ref_mth(s->md, s->leaves, lo, hi, out);
    return 0;
}

static uint8_t (*make_leaves(const char *md, uint64_t n))[32]
{
    uint8_t(*L)[32] = calloc(n ? n : 1, 32);
    assert_non_null(L);
    for (uint64_t i = 0; i < n; i++)
        ref_leaf(md, i, L[i]);
    return L;
}

static void unhex(const char *hex, uint8_t *out)
{
    for (size_t i = 0; hex[2 * i]; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static tlog_hasher_t *hasher(tlog_alg_t alg)
{
    tlog_hasher_t *h = NULL;
    char err[256];
    assert_int_equal(tlog_hasher_new(alg, &h, err, sizeof err), 0);
    return h;
}

/* ---- hashing ------------------------------------------------------------ */

static void test_empty_tree_hash_is_digest_of_nothing(void **st)
{
    (void)st;
    uint8_t got[32], want[32];
    tlog_hasher_t *h = hasher(TLOG_SHA256);
    assert_int_equal(tlog_hash_empty(h, got), 0);
    unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
    assert_memory_equal(got, want, 32);
    tlog_hasher_free(&h);
    assert_null(h);

    h = hasher(TLOG_SM3);
    assert_int_equal(tlog_hash_empty(h, got), 0);
    unhex("1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b", want);
    assert_memory_equal(got, want, 32);
    tlog_hasher_free(&h);
    tlog_hasher_free(&h); /* NULL is fine */
}

static void test_rfc6962_vectors_roots_and_proofs(void **st)
{
    (void)st;
    static const char *data[8] = {"",
                                  "00",
                                  "10",
                                  "2021",
                                  "3031",
                                  "40414243",
                                  "5051525354555657",
                                  "606162636465666768696a6b6c6d6e6f"};
    static const char *roots[8] = {
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    };
    static const char *path0[3] = {
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    };
    static const char *path5[3] = {
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    };
    uint8_t L[8][32], bytes[16], root[32], want[32];
    tlog_hash_t proof[TLOG_PROOF_MAX], wantp[3];
    tlog_state_t *s = NULL;
    size_t len;

    assert_int_equal(tlog_state_new(TLOG_SHA256, &s, NULL, 0), 0);
    for (int i = 0; i < 8; i++) {
        size_t n = strlen(data[i]) / 2;
        unhex(data[i], bytes);
        assert_int_equal(tlog_hash_leaf(tlog_state_hasher(s), n ? bytes : NULL, n, L[i]), 0);
        assert_int_equal(tlog_append(s, L[i]), 0);
        assert_int_equal(tlog_root(s, root), 0);
        unhex(roots[i], want);
        assert_memory_equal(root, want, 32);
    }
    store_t st8 = {"SHA256", L, 8, 0, 0, 0};
    assert_int_equal(tlog_prove_inclusion(tlog_state_hasher(s), 0, 8, store_get, &st8, proof,
                                          TLOG_PROOF_MAX, &len),
                     0);
    assert_int_equal(len, 3);
    for (int i = 0; i < 3; i++)
        unhex(path0[i], wantp[i]);
    assert_memory_equal(proof, wantp, sizeof wantp);
    assert_int_equal(tlog_prove_inclusion(tlog_state_hasher(s), 5, 8, store_get, &st8, proof,
                                          TLOG_PROOF_MAX, &len),
                     0);
    for (int i = 0; i < 3; i++)
        unhex(path5[i], wantp[i]);
    assert_memory_equal(proof, wantp, sizeof wantp);
    assert_int_equal(tlog_verify_inclusion(tlog_state_hasher(s), 5, 8, L[5], proof, 3, want), 0);
    tlog_state_free(&s);
    assert_null(s);
}

static void test_sm3_tree_matches_reference(void **st)
{
    (void)st;
    uint8_t(*L)[32] = make_leaves("SM3", 37);
    uint8_t root[32], want[32];
    tlog_state_t *s = NULL;

    assert_int_equal(tlog_state_new(TLOG_SM3, &s, NULL, 0), 0);
    assert_int_equal(tlog_state_alg(s), TLOG_SM3);
    for (int i = 0; i < 37; i++)
        assert_int_equal(tlog_append(s, L[i]), 0);
    assert_int_equal(tlog_root(s, root), 0);
    ref_mth("SM3", L, 0, 37, want);
    assert_memory_equal(root, want, 32);

    /* and the leaf prefix: SM3(0x00 || "abc") by hand */
    uint8_t leaf[32];
    ref_digest("SM3", 0, (const uint8_t *)"abc", 3, NULL, 0, want);
    assert_int_equal(tlog_hash_leaf(tlog_state_hasher(s), "abc", 3, leaf), 0);
    assert_memory_equal(leaf, want, 32);
    tlog_state_free(&s);
    free(L);
}

static void test_unknown_hash_algorithm_refused(void **st)
{
    (void)st;
    tlog_hasher_t *h = (tlog_hasher_t *)&h;
    tlog_state_t *s = (tlog_state_t *)&s;
    char err[128] = "";
    assert_int_equal(tlog_hasher_new((tlog_alg_t)9, &h, err, sizeof err), NHUB_EINVAL);
    assert_null(h);
    assert_non_null(strstr(err, "unknown"));
    assert_int_equal(tlog_state_new((tlog_alg_t)0, &s, NULL, 0), NHUB_EINVAL);
    assert_null(s);
    assert_int_equal(tlog_alg_parse("sm3"), TLOG_SM3);
    assert_int_equal(tlog_alg_parse("sha256"), TLOG_SHA256);
    assert_int_equal(tlog_alg_parse("md5"), 0);
    assert_string_equal(tlog_alg_name(TLOG_SM3), "sm3");
    assert_null(tlog_alg_name((tlog_alg_t)7));
}

/* ---- state -------------------------------------------------------------- */

static void test_state_after_n_appends_has_naive_root_and_survives_encoding(void **st)
{
    (void)st;
    const uint64_t N = 300;
    uint8_t(*L)[32] = make_leaves("SHA256", N);
    uint8_t root[32], want[32], buf[TLOG_STATE_MAX];
    tlog_state_t *s = NULL, *d = NULL;
    size_t len;

    assert_int_equal(tlog_state_new(TLOG_SHA256, &s, NULL, 0), 0);
    assert_int_equal(tlog_root(s, root), 0);
    ref_digest("SHA256", -1, NULL, 0, NULL, 0, want);
    assert_memory_equal(root, want, 32);
    for (uint64_t n = 1; n <= N; n++) {
        assert_int_equal(tlog_append(s, L[n - 1]), 0);
        assert_int_equal(tlog_state_size(s), n);
        assert_int_equal(tlog_root(s, root), 0);
        ref_mth("SHA256", L, 0, n, want);
        assert_memory_equal(root, want, 32);

        assert_int_equal(tlog_state_encode(s, buf, sizeof buf, &len), 0);
        assert_int_equal(len, 10 + 32 * (size_t)__builtin_popcountll(n));
        assert_int_equal(tlog_state_decode(buf, len, &d, NULL, 0), 0);
        assert_int_equal(tlog_state_size(d), n);
        assert_int_equal(tlog_root(d, root), 0);
        assert_memory_equal(root, want, 32);
        if (n < N) { /* the decoded state grows like the original */
            uint8_t r2[32];
            assert_int_equal(tlog_append(d, L[n]), 0);
            assert_int_equal(tlog_root(d, r2), 0);
            ref_mth("SHA256", L, 0, n + 1, want);
            assert_memory_equal(r2, want, 32);
        }
        tlog_state_free(&d);
    }
    /* dup is independent of its original */
    assert_int_equal(tlog_state_dup(s, &d), 0);
    assert_int_equal(tlog_append(d, L[0]), 0);
    assert_int_equal(tlog_state_size(s), N);
    assert_int_equal(tlog_state_size(d), N + 1);
    tlog_state_free(&d);
    tlog_state_free(&s);
    free(L);
}

static void test_state_decode_refuses_malformed_bytes(void **st)
{
    (void)st;
    uint8_t buf[TLOG_STATE_MAX], leaf[32] = {1};
    tlog_state_t *s = NULL, *d = (tlog_state_t *)&d;
    char err[160];
    size_t len;

    assert_int_equal(tlog_state_new(TLOG_SM3, &s, NULL, 0), 0);
    for (int i = 0; i < 7; i++)
        assert_int_equal(tlog_append(s, leaf), 0);
    assert_int_equal(tlog_state_encode(s, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 10 + 3 * 32);
    assert_int_equal(tlog_state_encode(s, buf, len - 1, &len), NHUB_ETOOBIG);
    assert_int_equal(tlog_state_encode(s, buf, sizeof buf, &len), 0);

    assert_int_equal(tlog_state_decode(buf, len - 1, &d, err, sizeof err), NHUB_EMALFORMED);
    assert_null(d);
    assert_non_null(strstr(err, "for size 7"));
    assert_int_equal(tlog_state_decode(buf, 3, &d, err, sizeof err), NHUB_EMALFORMED);
    assert_int_equal(tlog_state_decode(NULL, 0, &d, err, sizeof err), NHUB_EMALFORMED);
    buf[0] = 2;
    assert_int_equal(tlog_state_decode(buf, len, &d, err, sizeof err), NHUB_EVERSION);
    buf[0] = 1;
    buf[1] = 9;
    assert_int_equal(tlog_state_decode(buf, len, &d, err, sizeof err), NHUB_EMALFORMED);
    assert_non_null(strstr(err, "algorithm"));
    buf[1] = TLOG_SM3;
    assert_int_equal(tlog_state_decode(buf, len, &d, err, sizeof err), 0);
    assert_int_equal(tlog_state_alg(d), TLOG_SM3);
    tlog_state_free(&d);
    tlog_state_free(&s);

    assert_int_equal(tlog_append(NULL, leaf), NHUB_EINVAL);
    assert_int_equal(tlog_root(NULL, leaf), NHUB_EINVAL);
}

static void test_append_nodes_are_the_complete_nodes_in_stored_order(void **st)
{
    (void)st;
    const uint64_t N = 200;
    uint8_t(*L)[32] = make_leaves("SHA256", N);
    tlog_node_t nodes[TLOG_MAX_LEVELS];
    tlog_state_t *s = NULL;
    uint64_t next = 0;
    size_t n;

    assert_int_equal(tlog_state_new(TLOG_SHA256, &s, NULL, 0), 0);
    for (uint64_t i = 0; i < N; i++) {
        assert_int_equal(tlog_append_nodes(s, L[i], nodes, &n), 0);
        assert_int_equal(n, 1 + (size_t)__builtin_ctzll(~i));
        for (size_t j = 0; j < n; j++) {
            uint8_t want[32];
            uint64_t pos;
            assert_int_equal(nodes[j].level, j);
            assert_int_equal(nodes[j].index, i >> j);
            ref_mth("SHA256", L, nodes[j].index << j, (nodes[j].index + 1) << j, want);
            assert_memory_equal(nodes[j].hash, want, 32);
            assert_int_equal(tlog_stored_index(nodes[j].level, nodes[j].index, &pos), 0);
            assert_int_equal(pos, next);
            next++;
        }
        assert_int_equal(tlog_stored_count(i + 1), next);
    }
    uint64_t pos;
    assert_int_equal(tlog_stored_index(63, 0, &pos), 0);
    assert_int_equal(tlog_stored_index(64, 0, &pos), NHUB_EINVAL);
    assert_int_equal(tlog_stored_index(62, 2, &pos), NHUB_EINVAL);
    assert_int_equal(tlog_stored_index(0, UINT64_MAX, &pos), NHUB_EINVAL);
    tlog_state_free(&s);
    free(L);
}

/* ---- inclusion ---------------------------------------------------------- */

static void test_inclusion_every_index_every_size_to_70(void **st)
{
    (void)st;
    uint8_t(*L)[32] = make_leaves("SHA256", MAXN);
    tlog_hasher_t *h = hasher(TLOG_SHA256);
    tlog_hash_t proof[TLOG_PROOF_MAX + 2], want[TLOG_PROOF_MAX];

    for (uint64_t n = 1; n <= MAXN; n++) {
        uint8_t root[32], bad[32];
        ref_mth("SHA256", L, 0, n, root);
        for (uint64_t m = 0; m < n; m++) {
            size_t len = 0, wl = 0;
            ref_path("SHA256", L, m, 0, n, want, &wl);
            assert_int_equal(tlog_inclusion_len(m, n), (int)wl);
            for (int all = 0; all < 2; all++) {
                store_t s = {"SHA256", L, n, all, 0, 0};
                assert_int_equal(
                    tlog_prove_inclusion(h, m, n, store_get, &s, proof, TLOG_PROOF_MAX, &len), 0);
                assert_int_equal(len, wl);
                if (wl)
                    assert_memory_equal(proof, want, wl * 32);
                if (!all)
                    assert_true(s.calls >= n - 1); /* every other leaf is read */
            }
            assert_int_equal(tlog_verify_inclusion(h, m, n, L[m], proof, len, root), 0);
            /* every flipped byte of the proof, the leaf, the root */
            for (size_t i = 0; i < len; i++) {
                proof[i][i % 32] ^= 0x40;
                assert_int_equal(tlog_verify_inclusion(h, m, n, L[m], proof, len, root),
                                 NHUB_EREFUSED);
                proof[i][i % 32] ^= 0x40;
            }
            memcpy(bad, L[m], 32);
            bad[31] ^= 1;
            assert_int_equal(tlog_verify_inclusion(h, m, n, bad, proof, len, root), NHUB_EREFUSED);
            memcpy(bad, root, 32);
            bad[0] ^= 1;
            assert_int_equal(tlog_verify_inclusion(h, m, n, L[m], proof, len, bad), NHUB_EREFUSED);
            /* another leaf or index, a shorter or longer proof */
            if (n > 1) {
                uint64_t o = (m + 1) % n;
                assert_int_not_equal(tlog_verify_inclusion(h, m, n, L[o], proof, len, root), 0);
                assert_int_not_equal(tlog_verify_inclusion(h, o, n, L[m], proof, len, root), 0);
            }
            if (len > 0)
                assert_int_equal(tlog_verify_inclusion(h, m, n, L[m], proof, len - 1, root),
                                 NHUB_EINVAL);
            memset(proof[len], 0, 32);
            assert_int_equal(tlog_verify_inclusion(h, m, n, L[m], proof, len + 1, root),
                             NHUB_EINVAL);
        }
    }
    tlog_hasher_free(&h);
    free(L);
}

static void test_inclusion_with_stored_nodes_reads_few(void **st)
{
    (void)st;
    const uint64_t n = 1000;
    uint8_t(*L)[32] = make_leaves("SHA256", n);
    tlog_hasher_t *h = hasher(TLOG_SHA256);
    tlog_hash_t proof[TLOG_PROOF_MAX];
    uint8_t root[32];
    size_t len;

    ref_mth("SHA256", L, 0, n, root);
    store_t leaves = {"SHA256", L, n, 0, 0, 0}, all = {"SHA256", L, n, 1, 0, 0};
    assert_int_equal(tlog_prove_inclusion(h, 123, n, store_get, &leaves, proof, 64, &len), 0);
    assert_int_equal(tlog_verify_inclusion(h, 123, n, L[123], proof, len, root), 0);
    assert_int_equal(tlog_prove_inclusion(h, 123, n, store_get, &all, proof, 64, &len), 0);
    assert_int_equal(tlog_verify_inclusion(h, 123, n, L[123], proof, len, root), 0);
    /* leaves only: every leaf but one, and each missing node asked once */
    assert_true(leaves.calls >= n - 1);
    /* all complete nodes: one call per perfect piece of each sibling range */
    assert_true(all.calls <= 64);
    tlog_hasher_free(&h);
    free(L);
}

static void test_inclusion_bad_arguments_refused(void **st)
{
    (void)st;
    uint8_t(*L)[32] = make_leaves("SHA256", 8);
    tlog_hasher_t *h = hasher(TLOG_SHA256);
    tlog_hash_t proof[TLOG_PROOF_MAX + 1];
    uint8_t root[32];
    size_t len;
    store_t s = {"SHA256", L, 8, 0, 0, 0};

    ref_mth("SHA256", L, 0, 8, root);
    memset(proof, 0, sizeof proof);
    assert_int_equal(tlog_prove_inclusion(h, 8, 8, store_get, &s, proof, 64, &len), NHUB_EINVAL);
    assert_int_equal(tlog_prove_inclusion(h, 0, 0, store_get, &s, proof, 64, &len), NHUB_EINVAL);
    assert_int_equal(tlog_prove_inclusion(h, 0, 8, NULL, &s, proof, 64, &len), NHUB_EINVAL);
    assert_int_equal(tlog_prove_inclusion(NULL, 0, 8, store_get, &s, proof, 64, &len), NHUB_EINVAL);
    assert_int_equal(tlog_prove_inclusion(h, 0, 8, store_get, &s, proof, 2, &len), NHUB_ETOOBIG);
    assert_int_equal(tlog_verify_inclusion(h, 8, 8, L[0], proof, 3, root), NHUB_EINVAL);
    assert_int_equal(tlog_verify_inclusion(h, 0, 0, L[0], proof, 0, root), NHUB_EINVAL);
    assert_int_equal(tlog_verify_inclusion(h, 0, 8, L[0], proof, TLOG_PROOF_MAX + 1, root),
                     NHUB_EINVAL);
    assert_int_equal(tlog_verify_inclusion(h, 0, 8, L[0], NULL, 3, root), NHUB_EINVAL);
    assert_int_equal(tlog_verify_inclusion(h, 0, UINT64_MAX, L[0], proof, 64, root), NHUB_EREFUSED);
    assert_int_equal(tlog_inclusion_len(3, 3), -1);
    assert_int_equal(tlog_inclusion_len(0, 1), 0);
    assert_int_equal(tlog_inclusion_len(0, UINT64_MAX), 64);
    /* the store's own error comes back as it is */
    s.fail = NHUB_ESTORE;
    assert_int_equal(tlog_prove_inclusion(h, 0, 8, store_get, &s, proof, 64, &len), NHUB_ESTORE);
    tlog_hasher_free(&h);
    free(L);
}

/* ---- consistency -------------------------------------------------------- */

static void test_consistency_every_pair_to_70(void **st)
{
    (void)st;
    uint8_t(*L)[32] = make_leaves("SHA256", MAXN);
    tlog_hasher_t *h = hasher(TLOG_SHA256);
    tlog_hash_t proof[TLOG_PROOF_MAX + 2], want[TLOG_PROOF_MAX];
    uint8_t roots[MAXN + 1][32];

    for (uint64_t n = 1; n <= MAXN; n++)
        ref_mth("SHA256", L, 0, n, roots[n]);
    for (uint64_t n = 1; n <= MAXN; n++) {
        for (uint64_t m = 1; m <= n; m++) {
            size_t len = 0, wl = 0;
            uint8_t bad[32];
            ref_subproof("SHA256", L, m, 0, n, 1, want, &wl);
            assert_int_equal(tlog_consistency_len(m, n), (int)wl);
            for (int all = 0; all < 2; all++) {
                store_t s = {"SHA256", L, n, all, 0, 0};
                assert_int_equal(
                    tlog_prove_consistency(h, m, n, store_get, &s, proof, TLOG_PROOF_MAX, &len), 0);
                assert_int_equal(len, wl);
                if (wl)
                    assert_memory_equal(proof, want, wl * 32);
            }
            assert_int_equal(tlog_verify_consistency(h, m, n, roots[m], roots[n], proof, len), 0);
            for (size_t i = 0; i < len; i++) {
                proof[i][(i * 7) % 32] ^= 0x01;
                assert_int_equal(tlog_verify_consistency(h, m, n, roots[m], roots[n], proof, len),
                                 NHUB_EREFUSED);
                proof[i][(i * 7) % 32] ^= 0x01;
            }
            memcpy(bad, roots[m], 32);
            bad[5] ^= 0x80;
            assert_int_equal(tlog_verify_consistency(h, m, n, bad, roots[n], proof, len),
                             NHUB_EREFUSED);
            memcpy(bad, roots[n], 32);
            bad[5] ^= 0x80;
            assert_int_equal(tlog_verify_consistency(h, m, n, roots[m], bad, proof, len),
                             NHUB_EREFUSED);
            if (m > 1)
                assert_int_not_equal(
                    tlog_verify_consistency(h, m - 1, n, roots[m - 1], roots[n], proof, len), 0);
            if (len > 0)
                assert_int_equal(
                    tlog_verify_consistency(h, m, n, roots[m], roots[n], proof, len - 1),
                    NHUB_EINVAL);
            memset(proof[len], 0, 32);
            assert_int_equal(tlog_verify_consistency(h, m, n, roots[m], roots[n], proof, len + 1),
                             NHUB_EINVAL);
        }
    }
    tlog_hasher_free(&h);
    free(L);
}

static void test_consistency_bad_arguments_refused(void **st)
{
    (void)st;
    uint8_t(*L)[32] = make_leaves("SHA256", 8);
    tlog_hasher_t *h = hasher(TLOG_SHA256);
    tlog_hash_t proof[TLOG_PROOF_MAX + 1];
    uint8_t r[32] = {0};
    size_t len;
    store_t s = {"SHA256", L, 8, 0, 0, 0};

    memset(proof, 0, sizeof proof);
    assert_int_equal(tlog_prove_consistency(h, 0, 8, store_get, &s, proof, 64, &len), NHUB_EINVAL);
    assert_int_equal(tlog_prove_consistency(h, 9, 8, store_get, &s, proof, 64, &len), NHUB_EINVAL);
    assert_int_equal(tlog_prove_consistency(h, 3, 8, store_get, &s, proof, 1, &len), NHUB_ETOOBIG);
    assert_int_equal(tlog_verify_consistency(h, 0, 8, r, r, proof, 1), NHUB_EINVAL);
    assert_int_equal(tlog_verify_consistency(h, 0, 0, r, r, proof, 0), NHUB_EINVAL);
    assert_int_equal(tlog_verify_consistency(h, 9, 8, r, r, proof, 1), NHUB_EINVAL);
    assert_int_equal(tlog_verify_consistency(h, 3, 8, r, r, proof, TLOG_PROOF_MAX + 1),
                     NHUB_EINVAL);
    assert_int_equal(tlog_verify_consistency(h, 3, 8, r, r, NULL, 3), NHUB_EINVAL);
    assert_int_equal(tlog_consistency_len(0, 0), -1);
    assert_int_equal(tlog_consistency_len(4, 4), 0);
    s.fail = NHUB_EIO;
    assert_int_equal(tlog_prove_consistency(h, 3, 8, store_get, &s, proof, 64, &len), NHUB_EIO);
    tlog_hasher_free(&h);
    free(L);
}

/* ---- checkpoints -------------------------------------------------------- */

static void test_checkpoint_format_and_parse_round_trip(void **st)
{
    (void)st;
    uint8_t root[32];
    char body[512], err[256];
    tlog_checkpoint_t cp;
    size_t len;

    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t)(i * 9);
    assert_int_equal(
        tlog_checkpoint_format("hub.example/nhub", 20852163, root, NULL, body, sizeof body, &len),
        0);
    assert_int_equal(len, strlen(body));
    assert_int_equal(tlog_checkpoint_parse(body, len, &cp, err, sizeof err), 0);
    assert_string_equal(cp.origin, "hub.example/nhub");
    assert_int_equal(cp.size, 20852163);
    assert_memory_equal(cp.root, root, 32);
    assert_null(cp.ext);

    assert_int_equal(
        tlog_checkpoint_format("o", 0, root, "ext one\nt=5\n", body, sizeof body, &len), 0);
    assert_int_equal(tlog_checkpoint_parse(body, len, &cp, err, sizeof err), 0);
    assert_int_equal(cp.size, 0);
    assert_int_equal(cp.ext_len, strlen("ext one\nt=5\n"));
    assert_memory_equal(cp.ext, "ext one\nt=5\n", cp.ext_len);

    assert_int_equal(tlog_checkpoint_format("", 1, root, NULL, body, sizeof body, &len),
                     NHUB_EINVAL);
    assert_int_equal(tlog_checkpoint_format("a\nb", 1, root, NULL, body, sizeof body, &len),
                     NHUB_EINVAL);
    assert_int_equal(tlog_checkpoint_format("o", 1, root, "\n", body, sizeof body, &len),
                     NHUB_EINVAL);
    assert_int_equal(tlog_checkpoint_format("o", 1, root, "x", body, sizeof body, &len),
                     NHUB_EINVAL);
    assert_int_equal(tlog_checkpoint_format("o", 1, root, NULL, body, 20, &len), NHUB_ETOOBIG);
}

static void expect_cp_error(const char *text, const char *what)
{
    tlog_checkpoint_t cp;
    char err[256] = "";
    assert_int_equal(tlog_checkpoint_parse(text, strlen(text), &cp, err, sizeof err),
                     NHUB_EMALFORMED);
    if (!strstr(err, what))
        fail_msg("%s: error '%s' does not name '%s'", text, err, what);
}

static void test_checkpoint_parse_errors_named(void **st)
{
    (void)st;
    const char *r = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    char buf[256];
    expect_cp_error("", "line 1");
    expect_cp_error("\n5\nAAAA\n", "line 1");
    expect_cp_error("origin", "line 1");
    expect_cp_error("o\n05\nx\n", "line 2");
    expect_cp_error("o\n-5\nx\n", "line 2");
    expect_cp_error("o\n\nx\n", "line 2");
    expect_cp_error("o\n18446744073709551616\nx\n", "line 2");
    expect_cp_error("o\n5", "line 2");
    expect_cp_error("o\n5\nAAAA\n", "line 3");
    expect_cp_error("o\n5\n!!!!\n", "line 3");
    snprintf(buf, sizeof buf, "o\n5\n%s", r);
    expect_cp_error(buf, "line 3");
    snprintf(buf, sizeof buf, "o\n5\n%s\n\n", r);
    expect_cp_error(buf, "extension");
    snprintf(buf, sizeof buf, "o\n5\n%s\next", r);
    expect_cp_error(buf, "extension");
    snprintf(buf, sizeof buf, "o\t\n5\n%s\n", r);
    expect_cp_error(buf, "control");
    /* non-canonical base64: unused bits set */
    expect_cp_error("o\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n", "line 3");
    snprintf(buf, sizeof buf, "o\n18446744073709551615\n%s\n", r);
    tlog_checkpoint_t cp;
    assert_int_equal(tlog_checkpoint_parse(buf, strlen(buf), &cp, NULL, 0), 0);
    assert_int_equal(cp.size, UINT64_MAX);
    assert_int_equal(tlog_checkpoint_parse(NULL, 0, &cp, NULL, 0), NHUB_EINVAL);
}

/* ---- notes -------------------------------------------------------------- */

static const char GO_VKEY[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char GO_TEXT[] = "If you think cryptography is the answer to your problem,\n"
                              "then you don't know what your problem is.\n";
static const char GO_NOTE[] = "If you think cryptography is the answer to your problem,\n"
                              "then you don't know what your problem is.\n"
                              "\n"
                              "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcE"
                              "lZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

static void test_note_matches_sumdb_note_vector(void **st)
{
    (void)st;
    tlog_verifier_t *v = NULL;
    tlog_note_t note;
    char err[256];

    assert_int_equal(tlog_verifier_parse(GO_VKEY, &v, err, sizeof err), 0);
    assert_string_equal(tlog_verifier_name(v), "PeterNeumann");
    assert_int_equal(tlog_verifier_key_id(v), 0xc74f20a3u);
    assert_int_equal(tlog_note_parse(GO_NOTE, strlen(GO_NOTE), &note, err, sizeof err), 0);
    assert_int_equal(note.nsigs, 1);
    assert_int_equal(note.text_len, strlen(GO_TEXT));
    assert_memory_equal(note.text, GO_TEXT, note.text_len);
    assert_int_equal(note.sigs[0].key_id, 0xc74f20a3u);
    assert_int_equal(tlog_note_verify(&note, v), 0);

    /* Signing with that example's private key (0x01 || seed) gives the same
     * bytes: Ed25519 is deterministic. */
    uint8_t sk[33];
    EVP_PKEY *pk;
    tlog_signer_t *s = NULL;
    char out[1024], vk[TLOG_VKEY_MAX];
    const char *seed_b64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    assert_int_equal(EVP_DecodeBlock(sk, (const unsigned char *)seed_b64, 44), 33);
    assert_int_equal(sk[0], 1);
    pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk + 1, 32);
    assert_non_null(pk);
    assert_int_equal(tlog_signer_new_pkey("PeterNeumann", pk, &s, err, sizeof err), 0);
    EVP_PKEY_free(pk); /* the signer holds its own reference */
    assert_int_equal(tlog_signer_vkey(s, vk, sizeof vk), 0);
    assert_string_equal(vk, GO_VKEY);
    assert_int_equal(tlog_note_sign(s, GO_TEXT, strlen(GO_TEXT), out, sizeof out, NULL), 0);
    assert_string_equal(out, GO_NOTE);
    tlog_signer_free(&s);
    assert_null(s);
    tlog_verifier_free(&v);
    assert_null(v);
}

static keys_file_t *gen(keys_alg_t alg)
{
    keys_file_t *k = NULL;
    assert_int_equal(keys_generate("100000", alg, INT64_C(1795597200000), &k), 0);
    return k;
}

static tlog_verifier_t *vkey_of(const tlog_signer_t *s)
{
    char vk[TLOG_VKEY_MAX], err[256];
    tlog_verifier_t *v = NULL;
    assert_int_equal(tlog_signer_vkey(s, vk, sizeof vk), 0);
    if (tlog_verifier_parse(vk, &v, err, sizeof err) != 0)
        fail_msg("%s: %s", vk, err);
    return v;
}

/* A checkpoint signed by `s`, checked by `v` and refused by `other`; then
 * altered body and size must fail. */
static void signed_checkpoint_round_trip(const tlog_signer_t *s, const tlog_verifier_t *v,
                                         const tlog_verifier_t *other)
{
    uint8_t root[32];
    char body[256], note[1024], err[256];
    tlog_checkpoint_t cp;
    tlog_note_t n;
    size_t blen, nlen;

    memset(root, 0xab, sizeof root);
    assert_int_equal(
        tlog_checkpoint_format("hub.example/log", 42, root, NULL, body, sizeof body, &blen), 0);
    assert_int_equal(tlog_note_sign(s, body, blen, note, sizeof note, &nlen), 0);
    assert_int_equal(nlen, strlen(note));
    assert_int_equal(tlog_checkpoint_open(note, nlen, v, &cp, err, sizeof err), 0);
    assert_int_equal(cp.size, 42);
    assert_memory_equal(cp.root, root, 32);
    assert_string_equal(cp.origin, "hub.example/log");

    assert_int_equal(tlog_note_parse(note, nlen, &n, err, sizeof err), 0);
    assert_int_equal(tlog_note_verify(&n, other), NHUB_ENOTFOUND);
    assert_int_equal(tlog_checkpoint_open(note, nlen, other, &cp, err, sizeof err), NHUB_ENOTFOUND);
    assert_non_null(strstr(err, "no signature"));

    /* altered size: "42" -> "43" */
    char *p = strstr(note, "\n42\n");
    assert_non_null(p);
    p[2] = '3';
    assert_int_equal(tlog_checkpoint_open(note, nlen, v, &cp, err, sizeof err), NHUB_EREFUSED);
    assert_non_null(strstr(err, "does not verify"));
    p[2] = '2';
    /* altered origin */
    note[0] ^= 0x20;
    assert_int_equal(tlog_checkpoint_open(note, nlen, v, &cp, err, sizeof err), NHUB_EREFUSED);
    note[0] ^= 0x20;
    /* a signature of another key beside ours is ignored; a bad one of ours is not */
    char two[2048];
    int tl = snprintf(two, sizeof two, "%s\xe2\x80\x94 someone.else AAAAAAAAAAAAAAAA\n", note);
    assert_int_equal(tlog_checkpoint_open(two, (size_t)tl, v, &cp, err, sizeof err), 0);
    char *sig = strrchr(note, ' ') + 10;
    *sig = *sig == 'A' ? 'B' : 'A';
    assert_int_equal(tlog_checkpoint_open(note, nlen, v, &cp, err, sizeof err), NHUB_EREFUSED);
}

static void test_note_sign_verify_ed25519_and_sm2_keys(void **st)
{
    (void)st;
    keys_file_t *ed = gen(KEYS_ED25519), *sm = gen(KEYS_SM2), *ed2 = gen(KEYS_ED25519);
    tlog_signer_t *s_ed = NULL, *s_sm = NULL, *s_ed2 = NULL, *s_same = NULL;
    char err[256];

    assert_int_equal(tlog_signer_new("hub.example/log", ed, &s_ed, err, sizeof err), 0);
    assert_int_equal(tlog_signer_new("hub.example/log", sm, &s_sm, err, sizeof err), 0);
    assert_int_equal(tlog_signer_new("hub.example/log", ed2, &s_ed2, err, sizeof err), 0);
    tlog_verifier_t *v_ed = vkey_of(s_ed), *v_sm = vkey_of(s_sm), *v_ed2 = vkey_of(s_ed2);

    signed_checkpoint_round_trip(s_ed, v_ed, v_ed2);
    signed_checkpoint_round_trip(s_sm, v_sm, v_ed);
    signed_checkpoint_round_trip(s_ed2, v_ed2, v_sm);

    /* the SM2 vkey carries nhub's type */
    char vk[TLOG_VKEY_MAX];
    uint8_t raw[256];
    assert_int_equal(tlog_signer_vkey(s_sm, vk, sizeof vk), 0);
    const char *b64 = strchr(strchr(vk, '+') + 1, '+') + 1; /* base64 may hold '+' */
    assert_true(EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64)) > 13);
    assert_memory_equal(raw, TLOG_SM2_TYPE, TLOG_SM2_TYPE_LEN);

    /* same name, same key, other name: another key id */
    assert_int_equal(tlog_signer_new("other.example/log", ed, &s_same, err, sizeof err), 0);
    tlog_verifier_t *v_other = vkey_of(s_same);
    assert_int_not_equal(tlog_verifier_key_id(v_other), tlog_verifier_key_id(v_ed));
    signed_checkpoint_round_trip(s_same, v_other, v_ed);

    /* bad names and keys */
    tlog_signer_t *bad = (tlog_signer_t *)&bad;
    assert_int_equal(tlog_signer_new("a b", ed, &bad, err, sizeof err), NHUB_EINVAL);
    assert_null(bad);
    assert_int_equal(tlog_signer_new("a+b", ed, &bad, err, sizeof err), NHUB_EINVAL);
    assert_int_equal(tlog_signer_new("", ed, &bad, err, sizeof err), NHUB_EINVAL);
    assert_int_equal(tlog_signer_new("a\xc2\xa0"
                                     "b",
                                     ed, &bad, err, sizeof err),
                     NHUB_EINVAL);
    assert_int_equal(tlog_signer_new("ok", NULL, &bad, err, sizeof err), NHUB_EINVAL);
    assert_int_equal(tlog_signer_new_pkey("ok", NULL, &bad, err, sizeof err), NHUB_EINVAL);

    /* text that is not note text */
    char out[512];
    assert_int_equal(tlog_note_sign(s_ed, "no newline", 10, out, sizeof out, NULL), NHUB_EINVAL);
    assert_int_equal(tlog_note_sign(s_ed, "tab\there\n", 9, out, sizeof out, NULL), NHUB_EINVAL);
    assert_int_equal(tlog_note_sign(s_ed, "\xff\n", 2, out, sizeof out, NULL), NHUB_EINVAL);
    assert_int_equal(tlog_note_sign(s_ed, "ok\n", 3, out, 20, NULL), NHUB_ETOOBIG);

    tlog_verifier_free(&v_other);
    tlog_verifier_free(&v_ed);
    tlog_verifier_free(&v_sm);
    tlog_verifier_free(&v_ed2);
    tlog_signer_free(&s_same);
    tlog_signer_free(&s_ed);
    tlog_signer_free(&s_sm);
    tlog_signer_free(&s_ed2);
    keys_free(&ed);
    keys_free(&sm);
    keys_free(&ed2);
}

static void test_note_signed_with_openssl_sm2_key_verifies(void **st)
{
    (void)st;
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    tlog_signer_t *s = NULL;
    tlog_verifier_t *v;
    tlog_note_t n;
    char out[1024], err[256];
    size_t len;

    assert_non_null(pk);
    assert_int_equal(tlog_signer_new_pkey("gm.example/log", pk, &s, err, sizeof err), 0);
    v = vkey_of(s);
    assert_int_equal(tlog_note_sign(s, "body\n", 5, out, sizeof out, &len), 0);
    assert_int_equal(tlog_note_parse(out, len, &n, err, sizeof err), 0);
    assert_int_equal(tlog_note_verify(&n, v), 0);
    tlog_verifier_free(&v);
    tlog_signer_free(&s);
    EVP_PKEY_free(pk);

    /* neither Ed25519 nor SM2 */
    pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pk);
    assert_int_equal(tlog_signer_new_pkey("x", pk, &s, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "neither"));
    EVP_PKEY_free(pk);
}

static void expect_vkey_error(const char *vkey, int want)
{
    tlog_verifier_t *v = (tlog_verifier_t *)&v;
    char err[256] = "";
    int rc = tlog_verifier_parse(vkey, &v, err, sizeof err);
    if (rc != want)
        fail_msg("%s: rc %d, want %d (%s)", vkey, rc, want, err);
    assert_null(v);
    assert_true(err[0] != '\0');
}

static void test_verifier_key_text_refused_when_mangled(void **st)
{
    (void)st;
    char buf[256];
    expect_vkey_error("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                      NHUB_EMALFORMED); /* key id */
    expect_vkey_error("PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                      NHUB_EMALFORMED); /* name */
    expect_vkey_error("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",
                      NHUB_EMALFORMED); /* key */
    expect_vkey_error("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                      NHUB_EMALFORMED);
    expect_vkey_error("PeterNeumann+c74f20g3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                      NHUB_EMALFORMED);
    expect_vkey_error("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
                      NHUB_EMALFORMED);
    expect_vkey_error("PeterNeumann+c74f20a3", NHUB_EMALFORMED);
    expect_vkey_error("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", NHUB_EMALFORMED);
    expect_vkey_error("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
                      NHUB_EMALFORMED);
    /* type 0x02 (ECDSA) is not one of ours */
    snprintf(buf, sizeof buf, "x+00000000+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
    expect_vkey_error(buf, NHUB_EINVAL);
    /* an Ed25519 key of the wrong length */
    expect_vkey_error("x+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10Q=", NHUB_EMALFORMED);
    tlog_verifier_t *v = NULL;
    assert_int_equal(tlog_verifier_parse(NULL, &v, NULL, 0), NHUB_EINVAL);
}

static void expect_note_error(const char *note, size_t len, int want, const char *what)
{
    tlog_note_t n;
    char err[256] = "";
    int rc = tlog_note_parse(note, len, &n, err, sizeof err);
    if (rc != want || !strstr(err, what))
        fail_msg("note %.40s: rc %d (%s), want %d naming '%s'", note, rc, err, want, what);
}

#define NOTE_ERR(lit, want, what) expect_note_error(lit, sizeof lit - 1, want, what)

static void test_note_parse_errors_named(void **st)
{
    (void)st;
    const char *sig = "\xe2\x80\x94 k AAAAAAAA\n";
    char buf[4096];

    NOTE_ERR("", NHUB_EMALFORMED, "newline");
    NOTE_ERR("text\n", NHUB_EMALFORMED, "blank line");
    NOTE_ERR("text\n\n", NHUB_EMALFORMED, "blank line");
    NOTE_ERR("text\n\n\xe2\x80\x94 k AAAAAAAA", NHUB_EMALFORMED, "newline");
    snprintf(buf, sizeof buf, "text\n\n%s\n", sig);
    expect_note_error(buf, strlen(buf), NHUB_EMALFORMED, "blank line");
    NOTE_ERR("text\n\n- k AAAAAAAA\n", NHUB_EMALFORMED, "em dash");
    NOTE_ERR("text\n\n\xe2\x80\x94 kAAAAAAAA\n", NHUB_EMALFORMED, "key name");
    NOTE_ERR("text\n\n\xe2\x80\x94  AAAAAAAA\n", NHUB_EMALFORMED, "key name");
    NOTE_ERR("text\n\n\xe2\x80\x94 k+1 AAAAAAAA\n", NHUB_EMALFORMED, "key name");
    NOTE_ERR("text\n\n\xe2\x80\x94 k AAAAAA==\n", NHUB_EMALFORMED, "base64");
    NOTE_ERR("text\n\n\xe2\x80\x94 k AAAA AAAA\n", NHUB_EMALFORMED, "base64");
    NOTE_ERR("text\n\n\xe2\x80\x94 k A*AAAAAA\n", NHUB_EMALFORMED, "base64");
    NOTE_ERR("te\rxt\n\n\xe2\x80\x94 k AAAAAAAA\n", NHUB_EMALFORMED, "control");
    NOTE_ERR("te\xc0\xafxt\n\n\xe2\x80\x94 k AAAAAAAA\n", NHUB_EMALFORMED, "UTF-8");
    NOTE_ERR("te\xed\xa0\x80xt\n\n\xe2\x80\x94 k AAAAAAAA\n", NHUB_EMALFORMED, "UTF-8");
    NOTE_ERR("text\0\n\n\xe2\x80\x94 k AAAAAAAA\n", NHUB_EMALFORMED, "control");

    /* at the signature limit, and one past it */
    size_t pos = (size_t)snprintf(buf, sizeof buf, "text\n\n");
    for (int i = 0; i < TLOG_NOTE_SIGS_MAX; i++)
        pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s", sig);
    tlog_note_t n;
    assert_int_equal(tlog_note_parse(buf, pos, &n, NULL, 0), 0);
    assert_int_equal(n.nsigs, TLOG_NOTE_SIGS_MAX);
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "%s", sig);
    expect_note_error(buf, pos, NHUB_ETOOBIG, "more than");

    /* too long */
    char *big = malloc(TLOG_NOTE_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', TLOG_NOTE_MAX + 1);
    expect_note_error(big, TLOG_NOTE_MAX + 1, NHUB_ETOOBIG, "bytes");
    free(big);

    /* the text ends at the LAST blank line; empty lines inside are text */
    const char *multi = "a\n\nb\n\n\xe2\x80\x94 k AAAAAAAA\n";
    assert_int_equal(tlog_note_parse(multi, strlen(multi), &n, NULL, 0), 0);
    assert_int_equal(n.text_len, 5);
    assert_int_equal(n.sigs[0].key_id, 0);
    assert_int_equal(n.sigs[0].name_len, 1);
    assert_int_equal(tlog_note_parse(NULL, 0, &n, NULL, 0), NHUB_EINVAL);
}

/* ---- proof files and a whole receipt ------------------------------------ */

static void test_proof_file_round_trip_verifies_offline(void **st)
{
    (void)st;
    const uint64_t n = 21, m = 13;
    uint8_t(*L)[32] = make_leaves("SHA256", n);
    keys_file_t *k = gen(KEYS_ED25519);
    tlog_signer_t *s = NULL;
    tlog_state_t *state = NULL;
    tlog_hash_t proof[TLOG_PROOF_MAX];
    uint8_t root[32];
    char body[256], note[1024], file[4096], err[256];
    size_t blen, nlen, flen, plen;
    store_t store = {"SHA256", L, n, 1, 0, 0};

    assert_int_equal(tlog_state_new(TLOG_SHA256, &state, NULL, 0), 0);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(tlog_append(state, L[i]), 0);
    assert_int_equal(tlog_root(state, root), 0);
    assert_int_equal(tlog_signer_new("hub.example/log", k, &s, err, sizeof err), 0);
    tlog_verifier_t *v = vkey_of(s);
    assert_int_equal(
        tlog_checkpoint_format("hub.example/log", n, root, NULL, body, sizeof body, &blen), 0);
    assert_int_equal(tlog_note_sign(s, body, blen, note, sizeof note, &nlen), 0);
    assert_int_equal(tlog_prove_inclusion(tlog_state_hasher(state), m, n, store_get, &store, proof,
                                          TLOG_PROOF_MAX, &plen),
                     0);
    assert_int_equal(tlog_proof_format(m, proof, plen, note, nlen, file, sizeof file, &flen), 0);
    assert_int_equal(strncmp(file, "c2sp.org/tlog-proof@v1\nindex 13\n", 32), 0);

    /* the region's side: only the file, the vkey and the leaf */
    tlog_proof_t p;
    tlog_checkpoint_t cp;
    tlog_hasher_t *h = hasher(TLOG_SHA256);
    assert_int_equal(tlog_proof_parse(file, flen, &p, err, sizeof err), 0);
    assert_int_equal(p.index, m);
    assert_int_equal(p.len, plen);
    assert_int_equal(tlog_checkpoint_open(p.note, p.note_len, v, &cp, err, sizeof err), 0);
    assert_int_equal(tlog_verify_inclusion(h, p.index, cp.size, L[m], p.proof, p.len, cp.root), 0);
    assert_int_not_equal(
        tlog_verify_inclusion(h, p.index, cp.size, L[m - 1], p.proof, p.len, cp.root), 0);

    /* an extra line is skipped; errors name their line */
    char ex[4096];
    int el = snprintf(ex, sizeof ex, "c2sp.org/tlog-proof@v1\nextra AAAA\n%s", file + 23);
    assert_int_equal(tlog_proof_parse(ex, (size_t)el, &p, err, sizeof err), 0);
    assert_int_equal(p.index, m);
    assert_int_equal(tlog_proof_parse("c2sp.org/tlog-proof@v2\n", 23, &p, err, sizeof err),
                     NHUB_EMALFORMED);
    assert_non_null(strstr(err, "line 1"));
    const char *bad_index = "c2sp.org/tlog-proof@v1\nindex 013\n\nx\n";
    assert_int_equal(tlog_proof_parse(bad_index, strlen(bad_index), &p, err, sizeof err),
                     NHUB_EMALFORMED);
    assert_non_null(strstr(err, "line 2"));
    const char *bad_hash = "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx\n";
    assert_int_equal(tlog_proof_parse(bad_hash, strlen(bad_hash), &p, err, sizeof err),
                     NHUB_EMALFORMED);
    assert_non_null(strstr(err, "line 3"));
    const char *no_note = "c2sp.org/tlog-proof@v1\nindex 1\n\n";
    assert_int_equal(tlog_proof_parse(no_note, strlen(no_note), &p, err, sizeof err),
                     NHUB_EMALFORMED);
    assert_int_equal(
        tlog_proof_format(0, proof, TLOG_PROOF_MAX + 1, note, nlen, file, sizeof file, &flen),
        NHUB_EINVAL);
    assert_int_equal(tlog_proof_format(0, proof, plen, note, nlen, file, 40, &flen), NHUB_ETOOBIG);

    tlog_hasher_free(&h);
    tlog_verifier_free(&v);
    tlog_signer_free(&s);
    tlog_state_free(&state);
    keys_free(&k);
    free(L);
}

/* A signed checkpoint of the first n leaves of L (SM3 tree) into note. */
static size_t sm3_note(const tlog_signer_t *s, uint8_t (*L)[32], uint64_t n, char *note,
                       size_t cap)
{
    uint8_t root[32];
    char body[256];
    size_t blen, nlen;
    ref_mth("SM3", L, 0, n, root);
    assert_int_equal(tlog_checkpoint_format("hub.example/log", n, root, NULL, body, sizeof body,
                                            &blen),
                     0);
    assert_int_equal(tlog_note_sign(s, body, blen, note, cap, &nlen), 0);
    return nlen;
}

static void test_consistency_file_round_trip_sm3_at_the_edges(void **st)
{
    (void)st;
    static const uint64_t sizes[] = {1, 2, 3, 7, 8, 9};
    const size_t ns = sizeof sizes / sizeof sizes[0];
    uint8_t(*L)[32] = make_leaves("SM3", 9);
    keys_file_t *k = gen(KEYS_SM2);
    tlog_signer_t *s = NULL;
    char err[256], old_note[1024], new_note[1024], file[8192];
    assert_int_equal(tlog_signer_new("hub.example/log", k, &s, err, sizeof err), 0);
    tlog_verifier_t *v = vkey_of(s);
    tlog_hasher_t *h = hasher(TLOG_SM3);

    for (size_t i = 0; i < ns; i++) {
        for (size_t j = i; j < ns; j++) {
            uint64_t m = sizes[i], n = sizes[j];
            tlog_consistency_file_t f = {TLOG_SM3, m, n, 0, {{0}}, old_note, new_note, 0, 0};
            tlog_hash_t want[TLOG_PROOF_MAX];
            size_t wl = 0, flen = 0;
            store_t store = {"SM3", L, n, 0, 0, 0};
            ref_subproof("SM3", L, m, 0, n, 1, want, &wl);
            assert_int_equal(
                tlog_prove_consistency(h, m, n, store_get, &store, f.proof, TLOG_PROOF_MAX, &f.len),
                0);
            assert_int_equal(f.len, wl);
            f.old_len = sm3_note(s, L, m, old_note, sizeof old_note);
            f.new_len = sm3_note(s, L, n, new_note, sizeof new_note);
            assert_int_equal(tlog_consistency_format(&f, file, sizeof file, &flen), 0);
            assert_memory_equal(file, TLOG_CONSISTENCY_HEADER "\nhash sm3\n", 41);

            /* the checker's side: the file and the vkey */
            tlog_consistency_file_t p;
            tlog_checkpoint_t a, b;
            assert_int_equal(tlog_consistency_parse(file, flen, &p, err, sizeof err), 0);
            assert_int_equal(p.alg, TLOG_SM3);
            assert_int_equal(p.old_size, m);
            assert_int_equal(p.new_size, n);
            assert_int_equal(p.len, wl);
            if (wl)
                assert_memory_equal(p.proof, want, wl * 32);
            assert_int_equal(tlog_checkpoint_open(p.old_note, p.old_len, v, &a, err, sizeof err),
                             0);
            assert_int_equal(tlog_checkpoint_open(p.new_note, p.new_len, v, &b, err, sizeof err),
                             0);
            assert_int_equal(a.size, m);
            assert_int_equal(b.size, n);
            assert_int_equal(tlog_verify_consistency(h, m, n, a.root, b.root, p.proof, p.len), 0);
            if (m < n) /* the roots the wrong way round */
                assert_int_not_equal(
                    tlog_verify_consistency(h, m, n, b.root, a.root, p.proof, p.len), 0);
        }
    }

    /* errors name their line */
    tlog_consistency_file_t p;
    const char *bad[][2] = {
        {"nhub.audit/consistency-proof@v2\n", "line 1"},
        {TLOG_CONSISTENCY_HEADER "\nhash md5\nold 1\nnew 2\n\n", "line 2"},
        {TLOG_CONSISTENCY_HEADER "\nhash sha256\nold 3\nnew 2\n\n", "lines 3-4"},
        {TLOG_CONSISTENCY_HEADER "\nhash sha256\nold 0\nnew 2\n\n", "lines 3-4"},
        {TLOG_CONSISTENCY_HEADER "\nhash sha256\nold 1\nnew 2\nAAAA\n\n", "line 5"},
        {TLOG_CONSISTENCY_HEADER "\nhash sha256\nold 1\nnew 2\n\nx\n1\n\n", "two signed"},
        {TLOG_CONSISTENCY_HEADER "\nhash sha256\nold 1\nnew 2\n\n", "two signed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(tlog_consistency_parse(bad[i][0], strlen(bad[i][0]), &p, err, sizeof err),
                         NHUB_EMALFORMED);
        if (!strstr(err, bad[i][1]))
            fail_msg("\"%s\": %s", bad[i][0], err);
    }
    tlog_consistency_file_t f = {TLOG_SM3, 1, 2, TLOG_PROOF_MAX + 1, {{0}}, "a\n", "b\n", 2, 2};
    assert_int_equal(tlog_consistency_format(&f, file, sizeof file, NULL), NHUB_EINVAL);
    f.len = 0;
    assert_int_equal(tlog_consistency_format(&f, file, 20, NULL), NHUB_ETOOBIG);

    tlog_hasher_free(&h);
    tlog_verifier_free(&v);
    tlog_signer_free(&s);
    keys_free(&k);
    free(L);
}

/* ---- random input ------------------------------------------------------- */

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_parsers_survive_random_and_mutated_input(void **st)
{
    (void)st;
    static const char alphabet[] = "\n\n\n   ++==AAAA/az09\xe2\x80\x94\xff\x01";
    keys_file_t *k = gen(KEYS_ED25519);
    tlog_signer_t *s = NULL;
    char note[1024], buf[1100], err[256];
    size_t nlen;
    uint64_t x = 0x9e3779b97f4a7c15u;
    int parsed = 0;

    assert_int_equal(tlog_signer_new("hub.example/log", k, &s, err, sizeof err), 0);
    tlog_verifier_t *v = vkey_of(s);
    const char *body = "hub.example/log\n7\nq83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n";
    assert_int_equal(tlog_note_sign(s, body, strlen(body), note, sizeof note, &nlen), 0);
    /* a consistency proof file of two copies of that note, to mutate too */
    char cfile[1100];
    size_t cflen = 0;
    tlog_consistency_file_t cf = {TLOG_SHA256, 7, 7, 1, {{1}}, note, note, nlen, nlen};
    assert_int_equal(tlog_consistency_format(&cf, cfile, sizeof cfile, &cflen), 0);

    for (int round = 0; round < 20000; round++) {
        size_t len;
        if (round % 2 == 0) { /* random bytes, biased towards the format's own */
            len = rng_next(&x) % 200;
            for (size_t i = 0; i < len; i++) {
                uint64_t r = rng_next(&x);
                buf[i] = (r & 1) ? (char)(r >> 8) : alphabet[(r >> 8) % (sizeof alphabet - 1)];
            }
        } else { /* a valid note or proof file with a few bytes changed, cut or repeated */
            memcpy(buf, round % 4 == 1 ? note : cfile, round % 4 == 1 ? nlen : cflen);
            len = round % 4 == 1 ? nlen : cflen;
            int edits = 1 + (int)(rng_next(&x) % 4);
            for (int e = 0; e < edits; e++) {
                size_t at = rng_next(&x) % len;
                switch (rng_next(&x) % 3) {
                case 0: buf[at] = (char)rng_next(&x); break;
                case 1: len = at + 1; break;
                default: buf[at] = alphabet[rng_next(&x) % (sizeof alphabet - 1)]; break;
                }
            }
        }
        tlog_note_t n;
        tlog_checkpoint_t cp;
        tlog_proof_t p;
        int rc = tlog_note_parse(buf, len, &n, err, sizeof err);
        assert_true(rc == 0 || rc == NHUB_EMALFORMED || rc == NHUB_ETOOBIG);
        if (rc == 0) {
            parsed++;
            rc = tlog_note_verify(&n, v);
            assert_true(rc == 0 || rc == NHUB_EREFUSED || rc == NHUB_ENOTFOUND);
            if (rc == 0) /* only the untouched text verifies */
                assert_true(n.text_len == strlen(body) && memcmp(n.text, body, n.text_len) == 0);
        }
        rc = tlog_checkpoint_parse(buf, len, &cp, err, sizeof err);
        assert_true(rc == 0 || rc == NHUB_EMALFORMED);
        rc = tlog_checkpoint_open(buf, len, v, &cp, err, sizeof err);
        assert_true(rc <= 0);
        rc = tlog_proof_parse(buf, len, &p, err, sizeof err);
        assert_true(rc == 0 || rc == NHUB_EMALFORMED || rc == NHUB_ETOOBIG);
        tlog_consistency_file_t c;
        rc = tlog_consistency_parse(buf, len, &c, err, sizeof err);
        assert_true(rc == 0 || rc == NHUB_EMALFORMED || rc == NHUB_ETOOBIG);
        if (rc == 0) /* the notes lie inside what was parsed */
            assert_true(c.old_note >= buf && c.new_note + c.new_len == buf + len &&
                        c.old_note + c.old_len < c.new_note);
        buf[len < sizeof buf ? len : sizeof buf - 1] = '\0';
        tlog_verifier_t *pv = NULL;
        rc = tlog_verifier_parse(buf, &pv, err, sizeof err);
        assert_true(rc <= 0);
        tlog_verifier_free(&pv);
    }
    assert_true(parsed > 100); /* the mutations reached past the first checks */
    tlog_verifier_free(&v);
    tlog_signer_free(&s);
    keys_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_tree_hash_is_digest_of_nothing),
        cmocka_unit_test(test_rfc6962_vectors_roots_and_proofs),
        cmocka_unit_test(test_sm3_tree_matches_reference),
        cmocka_unit_test(test_unknown_hash_algorithm_refused),
        cmocka_unit_test(test_state_after_n_appends_has_naive_root_and_survives_encoding),
        cmocka_unit_test(test_state_decode_refuses_malformed_bytes),
        cmocka_unit_test(test_append_nodes_are_the_complete_nodes_in_stored_order),
        cmocka_unit_test(test_inclusion_every_index_every_size_to_70),
        cmocka_unit_test(test_inclusion_with_stored_nodes_reads_few),
        cmocka_unit_test(test_inclusion_bad_arguments_refused),
        cmocka_unit_test(test_consistency_every_pair_to_70),
        cmocka_unit_test(test_consistency_bad_arguments_refused),
        cmocka_unit_test(test_checkpoint_format_and_parse_round_trip),
        cmocka_unit_test(test_checkpoint_parse_errors_named),
        cmocka_unit_test(test_note_matches_sumdb_note_vector),
        cmocka_unit_test(test_note_sign_verify_ed25519_and_sm2_keys),
        cmocka_unit_test(test_note_signed_with_openssl_sm2_key_verifies),
        cmocka_unit_test(test_verifier_key_text_refused_when_mangled),
        cmocka_unit_test(test_note_parse_errors_named),
        cmocka_unit_test(test_proof_file_round_trip_verifies_offline),
        cmocka_unit_test(test_consistency_file_round_trip_sm3_at_the_edges),
        cmocka_unit_test(test_parsers_survive_random_and_mutated_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
