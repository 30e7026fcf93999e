/*
 * tlog.c: the transparency log's Merkle tree, proofs, checkpoints and
 * signed notes (see tlog.h).
 *
 * The tree follows RFC 9162 section 2.1 to the letter: proof generation is
 * the recursion of 2.1.3.1 and 2.1.4.1 unrolled into loops over absolute
 * leaf ranges, and the verifiers are the step lists of 2.1.3.2 and 2.1.4.2.
 * Every range the recursion visits starts at a multiple of the largest
 * power of two not above its length, so a range whose length is a power of
 * two is exactly one stored node (level, index); any other range is hashed
 * from its two RFC halves.
 *
 * The note code keeps signed-note's rules: UTF-8, no control characters but
 * newline, the text ends at the last blank line, signatures of unknown keys
 * are ignored but a known key's bad signature rejects the note. Base64 is
 * the standard alphabet with padding, decoded strictly (one encoding per
 * byte string). Signing and verifying go through keys.h wherever the key
 * came from there, so SM2 always carries the GM/T 0009 distinguishing ID.
 */
#include "tlog.h"

#include "nhub_err.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLOG_STATE_VERSION 1
#define TLOG_TYPE_ED25519 0x01
#define TLOG_PUB_MAX 128 /* bytes of a public key in a vkey (SM2 SPKI DER is 91) */
#define TLOG_SIGBUF_MAX (4 + KEYS_SIG_MAX)
#define TLOG_PROOF_HEADER "c2sp.org/tlog-proof@v1"
#define TLOG_EM_DASH "\xe2\x80\x94"

/* DER of an Ed25519 SubjectPublicKeyInfo before its 32 raw key bytes (RFC 8410). */
static const uint8_t tlog_ed25519_spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                     0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

struct tlog_hasher {
    tlog_alg_t alg;
    EVP_MD *md;
    EVP_MD_CTX *ctx;
};

struct tlog_state {
    uint64_t size;
    tlog_hasher_t *h;
    /* Roots of the perfect subtrees, largest first: popcount(size) of them. */
    uint8_t sub[TLOG_MAX_LEVELS][TLOG_HASH_LEN];
};

typedef enum tlog_key_type {
    TLOG_KEY_ED25519 = 1,
    TLOG_KEY_SM2 = 2,
} tlog_key_type_t;

struct tlog_signer {
    char name[TLOG_NAME_MAX + 1];
    tlog_key_type_t type;
    uint32_t key_id;
    uint8_t pub[TLOG_PUB_MAX];
    size_t pub_len;
    const keys_signer_t *ks; /* borrowed from a keys_file_t, or NULL */
    EVP_PKEY *pkey;          /* owned reference, or NULL */
};

struct tlog_verifier {
    char name[TLOG_NAME_MAX + 1];
    uint32_t key_id;
    keys_verifier_t *kv;
};

/* ---- small helpers ------------------------------------------------------ */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
tlog_errf(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;

    if (!err || errcap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
}

static bool tlog_is_pow2(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* The largest power of two strictly below n (n >= 2): RFC 9162's k. */
static uint64_t tlog_split(uint64_t n)
{
    return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

static int tlog_popcount(uint64_t n)
{
    return __builtin_popcountll(n);
}

static void tlog_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t tlog_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- base64 (RFC 4648 section 4, padded, strict) ------------------------ */

static size_t tlog_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Encode into out (room for tlog_b64_len(n) + 1), NUL-terminated. */
static void tlog_b64_encode(const uint8_t *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t rest = n - i;
        if (rest > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (rest > 2)
            v |= in[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = rest > 1 ? abc[v >> 6 & 63] : '=';
        out[o++] = rest > 2 ? abc[v & 63] : '=';
    }
    out[o] = '\0';
}

static int tlog_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * Decode `n` characters. Bytes go to out[0..cap) (out may be NULL to only
 * check and count); *outlen receives the decoded length. Padding only at
 * the end, unused bits zero. Returns 0, NHUB_EMALFORMED, or NHUB_ETOOBIG
 * when out is given and the result exceeds cap.
 */
static int tlog_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t o = 0;

    if (n % 4 != 0)
        return NHUB_EMALFORMED;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + j];
            if (c == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0)
                return NHUB_EMALFORMED;
            v[j] = tlog_b64_value(c);
            if (v[j] < 0)
                return NHUB_EMALFORMED;
        }
        if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
            return NHUB_EMALFORMED;
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        for (int j = 0; j < 3 - pad; j++) {
            if (out && o >= cap)
                return NHUB_ETOOBIG;
            if (out)
                out[o] = b[j];
            o++;
        }
    }
    *outlen = o;
    return 0;
}

/* ---- UTF-8 and names ---------------------------------------------------- */

/* Decode one UTF-8 sequence at s[0..n): its code point and length, or 0 if
 * it is ill-formed (overlong, surrogate, beyond U+10FFFF, truncated). */
static size_t tlog_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c = s[0], min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        len = 2, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Unicode White_Space outside the C0 controls. */
static bool tlog_is_space(uint32_t c)
{
    return c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Valid UTF-8 with no control character below U+0020 except, if allowed, \n. */
static bool tlog_text_ok(const char *s, size_t n, bool newline)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t k = tlog_utf8_next(p + i, n - i, &c);
        if (k == 0)
            return false;
        if (c < 0x20 && !(newline && c == '\n'))
            return false;
        i += k;
    }
    return true;
}

/* A key name: 1..TLOG_NAME_MAX bytes of UTF-8, no spaces, '+' or controls. */
static bool tlog_name_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    if (n == 0 || n > TLOG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t k = tlog_utf8_next(p + i, n - i, &c);
        if (k == 0 || c < 0x20 || c == '+' || tlog_is_space(c))
            return false;
        i += k;
    }
    return true;
}

/* A decimal with no leading zero (but "0"), fitting 64 bits. */
static bool tlog_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* The line at text[*pos..len) without its \n; advances *pos past the \n.
 * False if no \n ends it. */
static bool tlog_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
    const char *start = text + *pos;
    const char *nl = memchr(start, '\n', len - *pos);

    if (!nl)
        return false;
    *line = start;
    *n = (size_t)(nl - start);
    *pos += *n + 1;
    return true;
}

/* ---- hashing ------------------------------------------------------------ */

const char *tlog_alg_name(tlog_alg_t alg)
{
    switch (alg) {
    case TLOG_SHA256: return "sha256";
    case TLOG_SM3: return "sm3";
    default: return NULL;
    }
}

tlog_alg_t tlog_alg_parse(const char *name)
{
    if (name && strcmp(name, "sha256") == 0)
        return TLOG_SHA256;
    if (name && strcmp(name, "sm3") == 0)
        return TLOG_SM3;
    return 0;
}

int tlog_hasher_new(tlog_alg_t alg, tlog_hasher_t **out, char *err, size_t errcap)
{
    const char *ossl = alg == TLOG_SHA256 ? "SHA256" : alg == TLOG_SM3 ? "SM3" : NULL;
    tlog_hasher_t *h = NULL;
    int rc = NHUB_ENOMEM;

    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!ossl) {
        tlog_errf(err, errcap, "unknown tree hash algorithm %d", (int)alg);
        return NHUB_EINVAL;
    }
    h = calloc(1, sizeof *h);
    if (!h)
        goto fail;
    h->alg = alg;
    h->md = EVP_MD_fetch(NULL, ossl, NULL);
    if (!h->md) {
        tlog_errf(err, errcap, "the %s digest is not available in this OpenSSL (%s)", ossl,
                  OpenSSL_version(OPENSSL_VERSION));
        rc = NHUB_ECRYPTO;
        goto fail;
    }
    if (EVP_MD_get_size(h->md) != TLOG_HASH_LEN) {
        tlog_errf(err, errcap, "the %s digest is not %d bytes", ossl, TLOG_HASH_LEN);
        rc = NHUB_ECRYPTO;
        goto fail;
    }
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx)
        goto fail;
    *out = h;
    return 0;
fail:
    if (rc == NHUB_ENOMEM)
        tlog_errf(err, errcap, "out of memory");
    ERR_clear_error();
    tlog_hasher_free(&h);
    return rc;
}

void tlog_hasher_free(tlog_hasher_t **h)
{
    if (!h || !*h)
        return;
    EVP_MD_CTX_free((*h)->ctx);
    EVP_MD_free((*h)->md);
    free(*h);
    *h = NULL;
}

tlog_alg_t tlog_hasher_alg(const tlog_hasher_t *h)
{
    return h ? h->alg : 0;
}

/* H(prefix || a || b), prefix omitted when < 0; `out` may alias a or b. */
static int tlog_digest(tlog_hasher_t *h, int prefix, const void *a, size_t alen, const void *b,
                       size_t blen, uint8_t out[TLOG_HASH_LEN])
{
    uint8_t p = (uint8_t)prefix;
    unsigned int n = 0;

    if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1)
        goto fail;
    if (prefix >= 0 && EVP_DigestUpdate(h->ctx, &p, 1) != 1)
        goto fail;
    if (alen > 0 && EVP_DigestUpdate(h->ctx, a, alen) != 1)
        goto fail;
    if (blen > 0 && EVP_DigestUpdate(h->ctx, b, blen) != 1)
        goto fail;
    if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != TLOG_HASH_LEN)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    return NHUB_ECRYPTO;
}

int tlog_hash_empty(tlog_hasher_t *h, uint8_t out[TLOG_HASH_LEN])
{
    if (!h || !out)
        return NHUB_EINVAL;
    return tlog_digest(h, -1, NULL, 0, NULL, 0, out);
}

int tlog_hash_leaf(tlog_hasher_t *h, const void *data, size_t len, uint8_t out[TLOG_HASH_LEN])
{
    if (!h || !out || (!data && len > 0))
        return NHUB_EINVAL;
    return tlog_digest(h, 0x00, data, len, NULL, 0, out);
}

int tlog_hash_node(tlog_hasher_t *h, const uint8_t left[TLOG_HASH_LEN],
                   const uint8_t right[TLOG_HASH_LEN], uint8_t out[TLOG_HASH_LEN])
{
    uint8_t l[TLOG_HASH_LEN], r[TLOG_HASH_LEN];

    if (!h || !left || !right || !out)
        return NHUB_EINVAL;
    /* Copies, so out may alias an input whatever the digest does with it. */
    memcpy(l, left, sizeof l);
    memcpy(r, right, sizeof r);
    return tlog_digest(h, 0x01, l, sizeof l, r, sizeof r, out);
}

/* ---- incremental state -------------------------------------------------- */

int tlog_state_new(tlog_alg_t alg, tlog_state_t **out, char *err, size_t errcap)
{
    tlog_state_t *s;
    int rc;

    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s) {
        tlog_errf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    rc = tlog_hasher_new(alg, &s->h, err, errcap);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void tlog_state_free(tlog_state_t **s)
{
    if (!s || !*s)
        return;
    tlog_hasher_free(&(*s)->h);
    free(*s);
    *s = NULL;
}

int tlog_state_dup(const tlog_state_t *s, tlog_state_t **out)
{
    tlog_state_t *d = NULL;
    int rc;

    if (!s || !out)
        return NHUB_EINVAL;
    *out = NULL;
    rc = tlog_state_new(s->h->alg, &d, NULL, 0);
    if (rc != 0)
        return rc;
    d->size = s->size;
    memcpy(d->sub, s->sub, sizeof d->sub);
    *out = d;
    return 0;
}

uint64_t tlog_state_size(const tlog_state_t *s)
{
    return s ? s->size : 0;
}

tlog_alg_t tlog_state_alg(const tlog_state_t *s)
{
    return s ? s->h->alg : 0;
}

tlog_hasher_t *tlog_state_hasher(tlog_state_t *s)
{
    return s ? s->h : NULL;
}

int tlog_append_nodes(tlog_state_t *s, const uint8_t leaf[TLOG_HASH_LEN],
                      tlog_node_t nodes[TLOG_MAX_LEVELS], size_t *n)
{
    uint8_t cur[TLOG_HASH_LEN];
    int k, t;

    if (!s || !leaf || s->size == UINT64_MAX)
        return NHUB_EINVAL;
    k = tlog_popcount(s->size);
    /* The new leaf merges with one subtree per trailing one bit of the old
     * size; work on a copy so a failed digest leaves the state as it was. */
    t = __builtin_ctzll(~s->size);
    memcpy(cur, leaf, sizeof cur);
    if (nodes) {
        nodes[0].level = 0;
        nodes[0].index = s->size;
        memcpy(nodes[0].hash, cur, sizeof cur);
    }
    for (int j = 0; j < t; j++) {
        int rc = tlog_hash_node(s->h, s->sub[k - 1 - j], cur, cur);
        if (rc != 0)
            return rc;
        if (nodes) {
            nodes[j + 1].level = (uint64_t)j + 1;
            nodes[j + 1].index = s->size >> (j + 1);
            memcpy(nodes[j + 1].hash, cur, sizeof cur);
        }
    }
    memcpy(s->sub[k - t], cur, sizeof cur);
    s->size++;
    if (n)
        *n = (size_t)t + 1;
    return 0;
}

int tlog_append(tlog_state_t *s, const uint8_t leaf[TLOG_HASH_LEN])
{
    return tlog_append_nodes(s, leaf, NULL, NULL);
}

int tlog_root(tlog_state_t *s, uint8_t out[TLOG_HASH_LEN])
{
    uint8_t r[TLOG_HASH_LEN];
    int k;

    if (!s || !out)
        return NHUB_EINVAL;
    if (s->size == 0)
        return tlog_hash_empty(s->h, out);
    k = tlog_popcount(s->size);
    memcpy(r, s->sub[k - 1], sizeof r);
    for (int i = k - 2; i >= 0; i--) {
        int rc = tlog_hash_node(s->h, s->sub[i], r, r);
        if (rc != 0)
            return rc;
    }
    memcpy(out, r, sizeof r);
    return 0;
}

int tlog_state_encode(const tlog_state_t *s, uint8_t *buf, size_t cap, size_t *len)
{
    size_t k, need;

    if (!s || !buf || !len)
        return NHUB_EINVAL;
    k = (size_t)tlog_popcount(s->size);
    need = 10 + k * TLOG_HASH_LEN;
    if (cap < need)
        return NHUB_ETOOBIG;
    buf[0] = TLOG_STATE_VERSION;
    buf[1] = (uint8_t)s->h->alg;
    tlog_put_be64(buf + 2, s->size);
    memcpy(buf + 10, s->sub, k * TLOG_HASH_LEN);
    *len = need;
    return 0;
}

int tlog_state_decode(const void *buf, size_t len, tlog_state_t **out, char *err, size_t errcap)
{
    const uint8_t *p = buf;
    tlog_state_t *s = NULL;
    uint64_t size;
    size_t k;
    int rc;

    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!buf || len < 10) {
        tlog_errf(err, errcap, "tree state: %zu bytes, shorter than its header", buf ? len : 0);
        return NHUB_EMALFORMED;
    }
    if (p[0] != TLOG_STATE_VERSION) {
        tlog_errf(err, errcap, "tree state: version %u, not %u", p[0], TLOG_STATE_VERSION);
        return NHUB_EVERSION;
    }
    if (!tlog_alg_name((tlog_alg_t)p[1])) {
        tlog_errf(err, errcap, "tree state: unknown hash algorithm %u", p[1]);
        return NHUB_EMALFORMED;
    }
    size = tlog_get_be64(p + 2);
    k = (size_t)tlog_popcount(size);
    if (len != 10 + k * TLOG_HASH_LEN) {
        tlog_errf(err, errcap, "tree state: %zu bytes for size %" PRIu64 ", not %zu", len, size,
                  10 + k * TLOG_HASH_LEN);
        return NHUB_EMALFORMED;
    }
    rc = tlog_state_new((tlog_alg_t)p[1], &s, err, errcap);
    if (rc != 0)
        return rc;
    s->size = size;
    memcpy(s->sub, p + 10, k * TLOG_HASH_LEN);
    *out = s;
    return 0;
}

/* ---- what a store keeps ------------------------------------------------- */

uint64_t tlog_stored_count(uint64_t n)
{
    return 2 * n - (uint64_t)tlog_popcount(n);
}

int tlog_stored_index(uint64_t level, uint64_t index, uint64_t *pos)
{
    uint64_t last;

    if (!pos || level > 63 || index >= (UINT64_C(1) << (63 - level)))
        return NHUB_EINVAL;
    /* The node is completed by appending its last leaf, `last`, which first
     * stores itself at tlog_stored_count(last) and then one node per level. */
    last = ((index + 1) << level) - 1;
    *pos = tlog_stored_count(last) + level;
    return 0;
}

/* ---- proofs ------------------------------------------------------------- */

typedef struct tlog_src {
    tlog_hasher_t *h;
    tlog_get_hash_fn get;
    void *arg;
} tlog_src_t;

/* The node (level, index) from the store, or from its children if the store
 * does not keep it. */
static int tlog_node_hash(const tlog_src_t *src, uint64_t level, uint64_t index,
                          uint8_t out[TLOG_HASH_LEN])
{
    uint8_t l[TLOG_HASH_LEN], r[TLOG_HASH_LEN];
    int rc = src->get(src->arg, level, index, out);

    if (rc != NHUB_ENOTFOUND || level == 0)
        return rc;
    rc = tlog_node_hash(src, level - 1, 2 * index, l);
    if (rc == 0)
        rc = tlog_node_hash(src, level - 1, 2 * index + 1, r);
    if (rc == 0)
        rc = tlog_hash_node(src->h, l, r, out);
    return rc;
}

/* MTH(D[lo:hi]) for a range the RFC recursion visits (lo < hi). */
static int tlog_range_hash(const tlog_src_t *src, uint64_t lo, uint64_t hi,
                           uint8_t out[TLOG_HASH_LEN])
{
    uint8_t l[TLOG_HASH_LEN], r[TLOG_HASH_LEN];
    uint64_t n = hi - lo, k;
    int rc;

    if (tlog_is_pow2(n)) {
        int level = __builtin_ctzll(n);
        if (lo & (n - 1))
            return NHUB_EINVAL; /* unreachable: ranges are aligned */
        return tlog_node_hash(src, (uint64_t)level, lo >> level, out);
    }
    k = tlog_split(n);
    rc = tlog_range_hash(src, lo, lo + k, l);
    if (rc == 0)
        rc = tlog_range_hash(src, lo + k, hi, r);
    if (rc == 0)
        rc = tlog_hash_node(src->h, l, r, out);
    return rc;
}

/*
 * Walk PATH(m, D[n]) top-down; the RFC lists the hashes bottom-up, so the
 * i-th sibling met is proof element len - 1 - i. With src NULL, only count.
 */
static int tlog_inclusion_walk(const tlog_src_t *src, uint64_t m, uint64_t n, tlog_hash_t *proof,
                               size_t len, size_t *count)
{
    uint64_t lo = 0, hi = n;
    size_t c = 0;

    while (hi - lo > 1) {
        uint64_t k = tlog_split(hi - lo);
        uint64_t slo = lo + k, shi = hi;
        if (m >= lo + k) {
            slo = lo;
            shi = lo + k;
            lo += k;
        } else {
            hi = lo + k;
        }
        if (src) {
            int rc = tlog_range_hash(src, slo, shi, proof[len - 1 - c]);
            if (rc != 0)
                return rc;
        }
        c++;
    }
    *count = c;
    return 0;
}

/* Walk SUBPROOF(m, D[n], true) the same way. */
static int tlog_consistency_walk(const tlog_src_t *src, uint64_t m, uint64_t n, tlog_hash_t *proof,
                                 size_t len, size_t *count)
{
    uint64_t lo = 0, hi = n;
    bool b = true;
    size_t c = 0;
    int rc;

    while (m != hi) {
        uint64_t k = tlog_split(hi - lo);
        uint64_t slo = lo + k, shi = hi;
        if (m - lo > k) {
            slo = lo;
            shi = lo + k;
            lo += k;
            b = false;
        } else {
            hi = lo + k;
        }
        if (src) {
            rc = tlog_range_hash(src, slo, shi, proof[len - 1 - c]);
            if (rc != 0)
                return rc;
        }
        c++;
    }
    if (!b) {
        if (src) {
            rc = tlog_range_hash(src, lo, hi, proof[len - 1 - c]);
            if (rc != 0)
                return rc;
        }
        c++;
    }
    *count = c;
    return 0;
}

int tlog_inclusion_len(uint64_t m, uint64_t n)
{
    size_t c = 0;

    if (m >= n)
        return -1;
    tlog_inclusion_walk(NULL, m, n, NULL, 0, &c);
    return (int)c;
}

int tlog_consistency_len(uint64_t m, uint64_t n)
{
    size_t c = 0;

    if (m == 0 || m > n)
        return -1;
    tlog_consistency_walk(NULL, m, n, NULL, 0, &c);
    return (int)c;
}

int tlog_prove_inclusion(tlog_hasher_t *h, uint64_t m, uint64_t n, tlog_get_hash_fn get, void *arg,
                         tlog_hash_t *proof, size_t cap, size_t *len)
{
    tlog_src_t src = {h, get, arg};
    size_t want, c;
    int rc;

    if (!h || !get || !len || (!proof && cap > 0) || m >= n)
        return NHUB_EINVAL;
    want = (size_t)tlog_inclusion_len(m, n);
    if (cap < want)
        return NHUB_ETOOBIG;
    rc = tlog_inclusion_walk(&src, m, n, proof, want, &c);
    if (rc != 0)
        return rc;
    *len = c;
    return 0;
}

int tlog_prove_consistency(tlog_hasher_t *h, uint64_t m, uint64_t n, tlog_get_hash_fn get,
                           void *arg, tlog_hash_t *proof, size_t cap, size_t *len)
{
    tlog_src_t src = {h, get, arg};
    size_t want, c;
    int rc;

    if (!h || !get || !len || (!proof && cap > 0) || m == 0 || m > n)
        return NHUB_EINVAL;
    want = (size_t)tlog_consistency_len(m, n);
    if (cap < want)
        return NHUB_ETOOBIG;
    rc = tlog_consistency_walk(&src, m, n, proof, want, &c);
    if (rc != 0)
        return rc;
    *len = c;
    return 0;
}

static bool tlog_hash_eq(const uint8_t a[TLOG_HASH_LEN], const uint8_t b[TLOG_HASH_LEN])
{
    return CRYPTO_memcmp(a, b, TLOG_HASH_LEN) == 0;
}

/* Shift fn and sn right together until fn's low bit is set or fn is 0. */
static void tlog_shift_to_set(uint64_t *fn, uint64_t *sn)
{
    while (*fn != 0 && (*fn & 1) == 0) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

int tlog_verify_inclusion(tlog_hasher_t *h, uint64_t m, uint64_t n,
                          const uint8_t leaf[TLOG_HASH_LEN], const tlog_hash_t *proof, size_t len,
                          const uint8_t root[TLOG_HASH_LEN])
{
    uint8_t r[TLOG_HASH_LEN];
    uint64_t fn = m, sn = n - 1;

    if (!h || !leaf || !root || (!proof && len > 0) || m >= n || len > TLOG_PROOF_MAX)
        return NHUB_EINVAL;
    if (len != (size_t)tlog_inclusion_len(m, n))
        return NHUB_EINVAL;
    memcpy(r, leaf, sizeof r);
    for (size_t i = 0; i < len; i++) {
        int rc;
        if (sn == 0)
            return NHUB_EREFUSED;
        if ((fn & 1) || fn == sn) {
            rc = tlog_hash_node(h, proof[i], r, r);
            if (!(fn & 1))
                tlog_shift_to_set(&fn, &sn);
        } else {
            rc = tlog_hash_node(h, r, proof[i], r);
        }
        if (rc != 0)
            return rc;
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && tlog_hash_eq(r, root) ? 0 : NHUB_EREFUSED;
}

int tlog_verify_consistency(tlog_hasher_t *h, uint64_t m, uint64_t n,
                            const uint8_t root_m[TLOG_HASH_LEN],
                            const uint8_t root_n[TLOG_HASH_LEN], const tlog_hash_t *proof,
                            size_t len)
{
    uint8_t fr[TLOG_HASH_LEN], sr[TLOG_HASH_LEN];
    uint64_t fn, sn;
    size_t i = 0;

    if (!h || !root_m || !root_n || (!proof && len > 0) || m == 0 || m > n || len > TLOG_PROOF_MAX)
        return NHUB_EINVAL;
    if (len != (size_t)tlog_consistency_len(m, n))
        return NHUB_EINVAL;
    if (m == n)
        return tlog_hash_eq(root_m, root_n) ? 0 : NHUB_EREFUSED;
    /* Step 2: a power-of-two old tree is itself the proof's first node. */
    if (tlog_is_pow2(m)) {
        memcpy(fr, root_m, sizeof fr);
    } else {
        memcpy(fr, proof[0], sizeof fr);
        i = 1;
    }
    memcpy(sr, fr, sizeof sr);
    fn = m - 1;
    sn = n - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; i < len; i++) {
        int rc;
        if (sn == 0)
            return NHUB_EREFUSED;
        if ((fn & 1) || fn == sn) {
            rc = tlog_hash_node(h, proof[i], fr, fr);
            if (rc == 0)
                rc = tlog_hash_node(h, proof[i], sr, sr);
            if (!(fn & 1))
                tlog_shift_to_set(&fn, &sn);
        } else {
            rc = tlog_hash_node(h, sr, proof[i], sr);
        }
        if (rc != 0)
            return rc;
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && tlog_hash_eq(fr, root_m) && tlog_hash_eq(sr, root_n) ? 0 : NHUB_EREFUSED;
}

/* ---- checkpoints -------------------------------------------------------- */

/* Extension lines: each non-empty, ending in \n, UTF-8 without controls. */
static bool tlog_ext_ok(const char *ext, size_t n)
{
    size_t pos = 0;

    if (n > 0 && ext[n - 1] != '\n')
        return false;
    while (pos < n) {
        const char *line;
        size_t ln;
        if (!tlog_next_line(ext, n, &pos, &line, &ln) || ln == 0 || !tlog_text_ok(line, ln, false))
            return false;
    }
    return true;
}

int tlog_checkpoint_format(const char *origin, uint64_t size, const uint8_t root[TLOG_HASH_LEN],
                           const char *ext, char *out, size_t cap, size_t *len)
{
    char b64[TLOG_HASH_LEN * 2];
    size_t olen, elen = ext ? strlen(ext) : 0;
    int n;

    if (!origin || !root || !out)
        return NHUB_EINVAL;
    olen = strlen(origin);
    if (olen == 0 || olen > TLOG_NAME_MAX || !tlog_text_ok(origin, olen, false))
        return NHUB_EINVAL;
    if (!tlog_ext_ok(ext, elen))
        return NHUB_EINVAL;
    tlog_b64_encode(root, TLOG_HASH_LEN, b64);
    n = snprintf(out, cap, "%s\n%" PRIu64 "\n%s\n%s", origin, size, b64, ext ? ext : "");
    if (n < 0 || (size_t)n >= cap)
        return NHUB_ETOOBIG;
    if (len)
        *len = (size_t)n;
    return 0;
}

int tlog_checkpoint_parse(const char *text, size_t len, tlog_checkpoint_t *out, char *err,
                          size_t errcap)
{
    const char *line;
    size_t pos = 0, n, rlen;

    if (!text || !out)
        return NHUB_EINVAL;
    memset(out, 0, sizeof *out);
    if (!tlog_text_ok(text, len, true)) {
        tlog_errf(err, errcap, "checkpoint: not UTF-8 text without control characters");
        return NHUB_EMALFORMED;
    }
    if (!tlog_next_line(text, len, &pos, &line, &n) || n == 0 || n > TLOG_NAME_MAX) {
        tlog_errf(err, errcap, "checkpoint line 1: the origin is missing, empty or too long");
        return NHUB_EMALFORMED;
    }
    memcpy(out->origin, line, n);
    out->origin[n] = '\0';
    if (!tlog_next_line(text, len, &pos, &line, &n) || !tlog_parse_u64(line, n, &out->size)) {
        tlog_errf(err, errcap,
                  "checkpoint line 2: the tree size is not a decimal without "
                  "leading zeros below 2^64");
        return NHUB_EMALFORMED;
    }
    if (!tlog_next_line(text, len, &pos, &line, &n) ||
        tlog_b64_decode(line, n, out->root, sizeof out->root, &rlen) != 0 ||
        rlen != TLOG_HASH_LEN) {
        tlog_errf(err, errcap, "checkpoint line 3: the root hash is not base64 of %d bytes",
                  TLOG_HASH_LEN);
        return NHUB_EMALFORMED;
    }
    if (pos < len) {
        if (!tlog_ext_ok(text + pos, len - pos)) {
            tlog_errf(err, errcap, "checkpoint: an extension line is empty or has no newline");
            return NHUB_EMALFORMED;
        }
        out->ext = text + pos;
        out->ext_len = len - pos;
    }
    return 0;
}

/* ---- keys and key ids --------------------------------------------------- */

static size_t tlog_type_bytes(tlog_key_type_t type, const uint8_t **bytes)
{
    static const uint8_t ed = TLOG_TYPE_ED25519;

    if (type == TLOG_KEY_ED25519) {
        *bytes = &ed;
        return 1;
    }
    *bytes = (const uint8_t *)TLOG_SM2_TYPE;
    return TLOG_SM2_TYPE_LEN;
}

/* SHA-256(name || 0x0A || type || pub)[:4], big-endian (signed-note). */
static int tlog_key_id(const char *name, tlog_key_type_t type, const uint8_t *pub, size_t publen,
                       uint32_t *id)
{
    const uint8_t *tb;
    size_t tlen = tlog_type_bytes(type, &tb);
    uint8_t d[32];
    unsigned int dn = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m && EVP_DigestInit_ex2(m, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(m, name, strlen(name)) == 1 && EVP_DigestUpdate(m, "\n", 1) == 1 &&
             EVP_DigestUpdate(m, tb, tlen) == 1 && EVP_DigestUpdate(m, pub, publen) == 1 &&
             EVP_DigestFinal_ex(m, d, &dn) == 1;

    EVP_MD_CTX_free(m);
    if (!ok) {
        ERR_clear_error();
        return NHUB_ECRYPTO;
    }
    *id = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return 0;
}

/* A keys.h verifier for a raw Ed25519 key or an SM2 SPKI DER. */
static int tlog_keys_verifier(tlog_key_type_t type, const uint8_t *pub, size_t publen,
                              keys_verifier_t **out, char *err, size_t errcap)
{
    uint8_t der[TLOG_PUB_MAX];
    char text[KEYS_PUBLIC_TEXT_MAX + 1];
    size_t dlen = publen;
    const char *alg = "sm2";
    char kerr[128];
    int rc;

    if (type == TLOG_KEY_ED25519) {
        memcpy(der, tlog_ed25519_spki_prefix, sizeof tlog_ed25519_spki_prefix);
        memcpy(der + sizeof tlog_ed25519_spki_prefix, pub, publen);
        dlen = sizeof tlog_ed25519_spki_prefix + publen;
        alg = "ed25519";
    } else {
        memcpy(der, pub, publen);
    }
    if (strlen(alg) + 1 + tlog_b64_len(dlen) > KEYS_PUBLIC_TEXT_MAX) {
        tlog_errf(err, errcap, "verifier key: public key too long");
        return NHUB_EMALFORMED;
    }
    snprintf(text, sizeof text, "%s:", alg);
    tlog_b64_encode(der, dlen, text + strlen(text));
    rc = keys_verifier_parse(text, out, kerr, sizeof kerr);
    if (rc == NHUB_EINVAL) {
        tlog_errf(err, errcap, "verifier key: %s", kerr);
        return NHUB_EMALFORMED;
    }
    return rc;
}

/* ---- signers ------------------------------------------------------------ */

static int tlog_signer_alloc(const char *name, tlog_signer_t **out, char *err, size_t errcap)
{
    tlog_signer_t *s;

    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!name || !tlog_name_ok(name, strlen(name))) {
        tlog_errf(err, errcap,
                  "signer: the key name must be 1 to %d bytes of UTF-8 without "
                  "spaces, '+' or control characters",
                  TLOG_NAME_MAX);
        return NHUB_EINVAL;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        tlog_errf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    memcpy(s->name, name, strlen(name) + 1);
    *out = s;
    return 0;
}

/* The public key bytes a vkey carries, from keys.h's "alg:BASE64(SPKI)". */
static int tlog_pub_from_text(const char *text, tlog_key_type_t type, uint8_t *pub, size_t *publen)
{
    const char *b64 = strchr(text, ':');
    uint8_t der[TLOG_PUB_MAX];
    size_t dlen;

    if (!b64 || tlog_b64_decode(b64 + 1, strlen(b64 + 1), der, sizeof der, &dlen) != 0)
        return NHUB_EINVAL;
    if (type == TLOG_KEY_SM2) {
        memcpy(pub, der, dlen);
        *publen = dlen;
        return 0;
    }
    if (dlen != sizeof tlog_ed25519_spki_prefix + 32 ||
        memcmp(der, tlog_ed25519_spki_prefix, sizeof tlog_ed25519_spki_prefix) != 0)
        return NHUB_EINVAL;
    memcpy(pub, der + sizeof tlog_ed25519_spki_prefix, 32);
    *publen = 32;
    return 0;
}

int tlog_signer_new(const char *name, const keys_file_t *k, tlog_signer_t **out, char *err,
                    size_t errcap)
{
    tlog_signer_t *s = NULL;
    int rc;

    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    rc = tlog_signer_alloc(name, &s, err, errcap);

    if (rc != 0)
        return rc;
    rc = NHUB_EINVAL;
    if (!k || !k->signer || (k->alg != KEYS_ED25519 && k->alg != KEYS_SM2)) {
        tlog_errf(err, errcap, "signer: no Ed25519 or SM2 signing key");
        goto fail;
    }
    s->type = k->alg == KEYS_ED25519 ? TLOG_KEY_ED25519 : TLOG_KEY_SM2;
    if (tlog_pub_from_text(k->sign_public, s->type, s->pub, &s->pub_len) != 0) {
        tlog_errf(err, errcap, "signer: the public signing key text does not decode");
        goto fail;
    }
    rc = tlog_key_id(s->name, s->type, s->pub, s->pub_len, &s->key_id);
    if (rc != 0)
        goto fail;
    s->ks = k->signer;
    *out = s;
    return 0;
fail:
    tlog_signer_free(&s);
    return rc;
}

int tlog_signer_new_pkey(const char *name, EVP_PKEY *pkey, tlog_signer_t **out, char *err,
                         size_t errcap)
{
    tlog_signer_t *s = NULL;
    int rc;

    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    rc = tlog_signer_alloc(name, &s, err, errcap);

    if (rc != 0)
        return rc;
    rc = NHUB_EINVAL;
    if (pkey && EVP_PKEY_is_a(pkey, "ED25519")) {
        s->type = TLOG_KEY_ED25519;
        s->pub_len = 32;
        if (EVP_PKEY_get_raw_public_key(pkey, s->pub, &s->pub_len) != 1 || s->pub_len != 32) {
            tlog_errf(err, errcap, "signer: no Ed25519 public key");
            goto fail;
        }
    } else if (pkey && EVP_PKEY_is_a(pkey, "SM2")) {
        int n = i2d_PUBKEY(pkey, NULL);
        unsigned char *p = s->pub;
        s->type = TLOG_KEY_SM2;
        if (n <= 0 || n > TLOG_PUB_MAX || i2d_PUBKEY(pkey, &p) != n) {
            tlog_errf(err, errcap, "signer: the SM2 public key does not encode");
            goto fail;
        }
        s->pub_len = (size_t)n;
    } else {
        tlog_errf(err, errcap, "signer: the key is neither Ed25519 nor SM2");
        goto fail;
    }
    rc = tlog_key_id(s->name, s->type, s->pub, s->pub_len, &s->key_id);
    if (rc != 0)
        goto fail;
    if (EVP_PKEY_up_ref(pkey) != 1) {
        rc = NHUB_ECRYPTO;
        goto fail;
    }
    s->pkey = pkey;
    *out = s;
    return 0;
fail:
    ERR_clear_error();
    tlog_signer_free(&s);
    return rc;
}

void tlog_signer_free(tlog_signer_t **s)
{
    if (!s || !*s)
        return;
    EVP_PKEY_free((*s)->pkey);
    free(*s);
    *s = NULL;
}

static int tlog_vkey_text(const char *name, uint32_t id, tlog_key_type_t type, const uint8_t *pub,
                          size_t publen, char *out, size_t cap)
{
    uint8_t raw[TLOG_SM2_TYPE_LEN + TLOG_PUB_MAX];
    char b64[(TLOG_SM2_TYPE_LEN + TLOG_PUB_MAX + 2) / 3 * 4 + 1];
    const uint8_t *tb;
    size_t tlen = tlog_type_bytes(type, &tb);
    int n;

    memcpy(raw, tb, tlen);
    memcpy(raw + tlen, pub, publen);
    tlog_b64_encode(raw, tlen + publen, b64);
    n = snprintf(out, cap, "%s+%08" PRIx32 "+%s", name, id, b64);
    return n < 0 || (size_t)n >= cap ? NHUB_ETOOBIG : 0;
}

int tlog_signer_vkey(const tlog_signer_t *s, char *out, size_t cap)
{
    if (!s || !out)
        return NHUB_EINVAL;
    return tlog_vkey_text(s->name, s->key_id, s->type, s->pub, s->pub_len, out, cap);
}

/* Sign with the signer's own EVP_PKEY (Ed25519 in one shot; SM2 with SM3
 * and the GM/T 0009 ID, as keys.c does). */
static int tlog_pkey_sign(const tlog_signer_t *s, const char *text, size_t len, uint8_t *sig,
                          size_t *siglen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    const char *md = NULL;
    int rc = NHUB_ECRYPTO;

    if (!m)
        goto fail;
    if (s->type == TLOG_KEY_SM2) {
        pctx = EVP_PKEY_CTX_new_from_pkey(NULL, s->pkey, NULL);
        if (!pctx || EVP_PKEY_CTX_set1_id(pctx, KEYS_SM2_ID, sizeof KEYS_SM2_ID - 1) != 1)
            goto fail;
        EVP_MD_CTX_set_pkey_ctx(m, pctx);
        md = "SM3";
    }
    if (EVP_DigestSignInit_ex(m, NULL, md, NULL, NULL, s->pkey, NULL) != 1)
        goto fail;
    *siglen = KEYS_SIG_MAX;
    if (EVP_DigestSign(m, sig, siglen, (const unsigned char *)text, len) != 1)
        goto fail;
    rc = 0;
fail:
    if (rc != 0)
        ERR_clear_error();
    EVP_MD_CTX_free(m);
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

int tlog_note_sign(const tlog_signer_t *s, const char *text, size_t len, char *out, size_t cap,
                   size_t *outlen)
{
    uint8_t sig[TLOG_SIGBUF_MAX];
    char b64[(TLOG_SIGBUF_MAX + 2) / 3 * 4 + 1];
    size_t siglen = 0, need;
    int rc;

    if (!s || !text || !out || len == 0 || len > TLOG_NOTE_MAX || text[len - 1] != '\n' ||
        !tlog_text_ok(text, len, true))
        return NHUB_EINVAL;
    if (s->ks)
        rc = keys_sign(s->ks, text, len, sig + 4, &siglen);
    else
        rc = tlog_pkey_sign(s, text, len, sig + 4, &siglen);
    if (rc != 0)
        return rc;
    sig[0] = (uint8_t)(s->key_id >> 24);
    sig[1] = (uint8_t)(s->key_id >> 16);
    sig[2] = (uint8_t)(s->key_id >> 8);
    sig[3] = (uint8_t)s->key_id;
    tlog_b64_encode(sig, 4 + siglen, b64);
    /* text, "\n", "— ", name, " ", base64, "\n", NUL */
    need = len + 1 + 4 + strlen(s->name) + 1 + strlen(b64) + 1 + 1;
    if (cap < need)
        return NHUB_ETOOBIG;
    memcpy(out, text, len);
    snprintf(out + len, cap - len, "\n" TLOG_EM_DASH " %s %s\n", s->name, b64);
    if (outlen)
        *outlen = need - 1;
    return 0;
}

/* ---- parsing notes ------------------------------------------------------ */

static int tlog_parse_sig_line(const char *line, size_t n, tlog_note_sig_t *sig, char *err,
                               size_t errcap, size_t lineno)
{
    const char *sp;
    uint8_t head[6];
    size_t total, hl;

    if (n < 4 || memcmp(line, TLOG_EM_DASH " ", 4) != 0) {
        tlog_errf(err, errcap,
                  "note signature line %zu: does not start with an em dash and a "
                  "space",
                  lineno);
        return NHUB_EMALFORMED;
    }
    line += 4;
    n -= 4;
    sp = memchr(line, ' ', n);
    if (!sp || !tlog_name_ok(line, (size_t)(sp - line))) {
        tlog_errf(err, errcap,
                  "note signature line %zu: the key name is missing or has a "
                  "space, '+' or control character",
                  lineno);
        return NHUB_EMALFORMED;
    }
    sig->name = line;
    sig->name_len = (size_t)(sp - line);
    sig->b64 = sp + 1;
    sig->b64_len = n - sig->name_len - 1;
    if (tlog_b64_decode(sig->b64, sig->b64_len, NULL, 0, &total) != 0 || total < 5) {
        tlog_errf(err, errcap,
                  "note signature line %zu: the signature is not base64 of a key "
                  "id and a signature",
                  lineno);
        return NHUB_EMALFORMED;
    }
    /* The first 8 characters hold the key id; padding can appear in them
     * only when they are the whole string, which the decoder allows. */
    if (tlog_b64_decode(sig->b64, 8, head, sizeof head, &hl) != 0 || hl < 4) {
        tlog_errf(err, errcap, "note signature line %zu: bad key id", lineno);
        return NHUB_EMALFORMED;
    }
    sig->key_id =
        (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
    return 0;
}

int tlog_note_parse(const char *note, size_t len, tlog_note_t *out, char *err, size_t errcap)
{
    size_t split = 0, pos, lineno = 0;
    bool found = false;

    if (!note || !out)
        return NHUB_EINVAL;
    memset(out, 0, sizeof *out);
    if (len > TLOG_NOTE_MAX) {
        tlog_errf(err, errcap, "note: %zu bytes, more than %d", len, TLOG_NOTE_MAX);
        return NHUB_ETOOBIG;
    }
    if (!tlog_text_ok(note, len, true)) {
        tlog_errf(err, errcap, "note: not UTF-8 text without control characters");
        return NHUB_EMALFORMED;
    }
    if (len == 0 || note[len - 1] != '\n') {
        tlog_errf(err, errcap, "note: does not end in a newline");
        return NHUB_EMALFORMED;
    }
    for (size_t i = len - 1; i-- > 0;) {
        if (note[i] == '\n' && note[i + 1] == '\n') {
            split = i;
            found = true;
            break;
        }
    }
    if (!found || split + 2 == len) {
        tlog_errf(err, errcap, "note: no blank line followed by signatures");
        return NHUB_EMALFORMED;
    }
    out->text = note;
    out->text_len = split + 1;
    pos = split + 2;
    while (pos < len) {
        const char *line = NULL;
        size_t n = 0;
        int rc;
        if (!tlog_next_line(note, len, &pos, &line, &n))
            break; /* unreachable: the note ends in \n */
        lineno++;
        if (out->nsigs == TLOG_NOTE_SIGS_MAX) {
            tlog_errf(err, errcap, "note: more than %d signatures", TLOG_NOTE_SIGS_MAX);
            return NHUB_ETOOBIG;
        }
        rc = tlog_parse_sig_line(line, n, &out->sigs[out->nsigs], err, errcap, lineno);
        if (rc != 0)
            return rc;
        out->nsigs++;
    }
    return 0;
}

/* ---- verifiers ---------------------------------------------------------- */

int tlog_verifier_parse(const char *vkey, tlog_verifier_t **out, char *err, size_t errcap)
{
    uint8_t raw[TLOG_SM2_TYPE_LEN + TLOG_PUB_MAX];
    const char *p1, *p2, *b64;
    tlog_verifier_t *v = NULL;
    tlog_key_type_t type;
    size_t rawlen, nlen, tlen;
    uint64_t hid = 0;
    uint32_t id;
    int rc = NHUB_EMALFORMED;

    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!vkey)
        return NHUB_EINVAL;
    p1 = strchr(vkey, '+');
    p2 = p1 ? strchr(p1 + 1, '+') : NULL;
    nlen = p1 ? (size_t)(p1 - vkey) : 0;
    if (!p2 || !tlog_name_ok(vkey, nlen)) {
        tlog_errf(err, errcap, "verifier key: not NAME+HASH+KEY with a valid name");
        return NHUB_EMALFORMED;
    }
    if (p2 - p1 - 1 != 8) {
        tlog_errf(err, errcap, "verifier key: the key id is not 8 hex digits");
        return NHUB_EMALFORMED;
    }
    for (const char *c = p1 + 1; c < p2; c++) {
        int d = (*c >= '0' && *c <= '9')   ? *c - '0'
                : (*c >= 'a' && *c <= 'f') ? *c - 'a' + 10
                : (*c >= 'A' && *c <= 'F') ? *c - 'A' + 10
                                           : -1;
        if (d < 0) {
            tlog_errf(err, errcap, "verifier key: the key id is not 8 hex digits");
            return NHUB_EMALFORMED;
        }
        hid = hid << 4 | (uint64_t)d;
    }
    b64 = p2 + 1;
    if (tlog_b64_decode(b64, strlen(b64), raw, sizeof raw, &rawlen) != 0 || rawlen < 2) {
        tlog_errf(err, errcap, "verifier key: the key is not base64 of a type and public key");
        return NHUB_EMALFORMED;
    }
    if (raw[0] == TLOG_TYPE_ED25519 && rawlen == 33) {
        type = TLOG_KEY_ED25519;
        tlen = 1;
    } else if (rawlen > TLOG_SM2_TYPE_LEN && memcmp(raw, TLOG_SM2_TYPE, TLOG_SM2_TYPE_LEN) == 0) {
        type = TLOG_KEY_SM2;
        tlen = TLOG_SM2_TYPE_LEN;
    } else {
        tlog_errf(err, errcap, "verifier key: unknown key type 0x%02x or wrong key length", raw[0]);
        return raw[0] == TLOG_TYPE_ED25519 ? NHUB_EMALFORMED : NHUB_EINVAL;
    }
    v = calloc(1, sizeof *v);
    if (!v) {
        tlog_errf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    memcpy(v->name, vkey, nlen);
    v->name[nlen] = '\0';
    rc = tlog_key_id(v->name, type, raw + tlen, rawlen - tlen, &id);
    if (rc != 0)
        goto fail;
    if (id != (uint32_t)hid) {
        tlog_errf(err, errcap,
                  "verifier key: the key id %08" PRIx32 " is not the name's and key's (%08" PRIx32
                  ")",
                  (uint32_t)hid, id);
        rc = NHUB_EMALFORMED;
        goto fail;
    }
    v->key_id = id;
    rc = tlog_keys_verifier(type, raw + tlen, rawlen - tlen, &v->kv, err, errcap);
    if (rc != 0)
        goto fail;
    *out = v;
    return 0;
fail:
    tlog_verifier_free(&v);
    return rc;
}

void tlog_verifier_free(tlog_verifier_t **v)
{
    if (!v || !*v)
        return;
    keys_verifier_free(&(*v)->kv);
    free(*v);
    *v = NULL;
}

const char *tlog_verifier_name(const tlog_verifier_t *v)
{
    return v ? v->name : NULL;
}

uint32_t tlog_verifier_key_id(const tlog_verifier_t *v)
{
    return v ? v->key_id : 0;
}

int tlog_note_verify(const tlog_note_t *note, const tlog_verifier_t *v)
{
    size_t nlen;
    bool seen = false;

    if (!note || !v || !note->text)
        return NHUB_EINVAL;
    nlen = strlen(v->name);
    for (size_t i = 0; i < note->nsigs && i < TLOG_NOTE_SIGS_MAX; i++) {
        const tlog_note_sig_t *sg = &note->sigs[i];
        uint8_t sig[TLOG_SIGBUF_MAX];
        size_t slen;
        int rc;
        if (sg->name_len != nlen || memcmp(sg->name, v->name, nlen) != 0 || sg->key_id != v->key_id)
            continue;
        seen = true;
        /* Longer than any signature of ours: it cannot be valid. */
        if (tlog_b64_decode(sg->b64, sg->b64_len, sig, sizeof sig, &slen) != 0 || slen < 5)
            return NHUB_EREFUSED;
        rc = keys_verify(v->kv, note->text, note->text_len, sig + 4, slen - 4);
        if (rc != 0)
            return rc;
    }
    return seen ? 0 : NHUB_ENOTFOUND;
}

int tlog_checkpoint_open(const char *note, size_t len, const tlog_verifier_t *v,
                         tlog_checkpoint_t *out, char *err, size_t errcap)
{
    tlog_note_t *n;
    int rc;

    if (!note || !v || !out)
        return NHUB_EINVAL;
    n = malloc(sizeof *n);
    if (!n)
        return NHUB_ENOMEM;
    rc = tlog_note_parse(note, len, n, err, errcap);
    if (rc != 0)
        goto done;
    rc = tlog_note_verify(n, v);
    if (rc == NHUB_ENOTFOUND)
        tlog_errf(err, errcap, "checkpoint: no signature by key %s+%08" PRIx32, v->name, v->key_id);
    else if (rc == NHUB_EREFUSED)
        tlog_errf(err, errcap, "checkpoint: the signature by %s does not verify", v->name);
    if (rc != 0)
        goto done;
    rc = tlog_checkpoint_parse(n->text, n->text_len, out, err, errcap);
done:
    free(n);
    return rc;
}

/* ---- proof files -------------------------------------------------------- */

int tlog_proof_format(uint64_t index, const tlog_hash_t *proof, size_t len, const char *note,
                      size_t note_len, char *out, size_t cap, size_t *outlen)
{
    size_t pos;
    int n;

    if ((!proof && len > 0) || len > TLOG_PROOF_MAX || !note || note_len == 0 || !out)
        return NHUB_EINVAL;
    n = snprintf(out, cap, TLOG_PROOF_HEADER "\nindex %" PRIu64 "\n", index);
    if (n < 0 || (size_t)n >= cap)
        return NHUB_ETOOBIG;
    pos = (size_t)n;
    for (size_t i = 0; i < len; i++) {
        if (cap - pos < tlog_b64_len(TLOG_HASH_LEN) + 2)
            return NHUB_ETOOBIG;
        tlog_b64_encode(proof[i], TLOG_HASH_LEN, out + pos);
        pos += tlog_b64_len(TLOG_HASH_LEN);
        out[pos++] = '\n';
    }
    if (cap - pos < 1 + note_len + 1)
        return NHUB_ETOOBIG;
    out[pos++] = '\n';
    memcpy(out + pos, note, note_len);
    pos += note_len;
    out[pos] = '\0';
    if (outlen)
        *outlen = pos;
    return 0;
}

int tlog_proof_parse(const char *text, size_t len, tlog_proof_t *out, char *err, size_t errcap)
{
    const char *line;
    size_t pos = 0, n, lineno = 1, dl;

    if (!text || !out)
        return NHUB_EINVAL;
    memset(out, 0, sizeof *out);
    if (len > 2 * (size_t)TLOG_NOTE_MAX) {
        tlog_errf(err, errcap, "proof: %zu bytes, more than %d", len, 2 * TLOG_NOTE_MAX);
        return NHUB_ETOOBIG;
    }
    if (!tlog_next_line(text, len, &pos, &line, &n) || n != strlen(TLOG_PROOF_HEADER) ||
        memcmp(line, TLOG_PROOF_HEADER, n) != 0) {
        tlog_errf(err, errcap, "proof line 1: not \"%s\"", TLOG_PROOF_HEADER);
        return NHUB_EMALFORMED;
    }
    if (!tlog_next_line(text, len, &pos, &line, &n)) {
        tlog_errf(err, errcap, "proof line 2: missing");
        return NHUB_EMALFORMED;
    }
    lineno++;
    if (n >= 6 && memcmp(line, "extra ", 6) == 0) {
        if (tlog_b64_decode(line + 6, n - 6, NULL, 0, &dl) != 0) {
            tlog_errf(err, errcap, "proof line 2: the extra data is not base64");
            return NHUB_EMALFORMED;
        }
        lineno++;
        if (!tlog_next_line(text, len, &pos, &line, &n)) {
            line = "";
            n = 0;
        }
    }
    if (n < 6 || memcmp(line, "index ", 6) != 0 || !tlog_parse_u64(line + 6, n - 6, &out->index)) {
        tlog_errf(err, errcap, "proof line %zu: not \"index N\" (a decimal without leading zeros)",
                  lineno);
        return NHUB_EMALFORMED;
    }
    for (;;) {
        lineno++;
        if (!tlog_next_line(text, len, &pos, &line, &n)) {
            tlog_errf(err, errcap, "proof line %zu: no blank line before the checkpoint", lineno);
            return NHUB_EMALFORMED;
        }
        if (n == 0)
            break;
        if (out->len == TLOG_PROOF_MAX) {
            tlog_errf(err, errcap, "proof line %zu: more than %d hashes", lineno, TLOG_PROOF_MAX);
            return NHUB_ETOOBIG;
        }
        if (tlog_b64_decode(line, n, out->proof[out->len], TLOG_HASH_LEN, &dl) != 0 ||
            dl != TLOG_HASH_LEN) {
            tlog_errf(err, errcap, "proof line %zu: not base64 of a %d-byte hash", lineno,
                      TLOG_HASH_LEN);
            return NHUB_EMALFORMED;
        }
        out->len++;
    }
    if (pos == len) {
        tlog_errf(err, errcap, "proof line %zu: no checkpoint after the blank line", lineno + 1);
        return NHUB_EMALFORMED;
    }
    out->note = text + pos;
    out->note_len = len - pos;
    return 0;
}

/* ---- consistency proof files ---------------------------------------------- */

#define TLOG_SIG_PREFIX "\xe2\x80\x94 " /* "— " opens a signature line */

int tlog_consistency_format(const tlog_consistency_file_t *f, char *out, size_t cap,
                            size_t *outlen)
{
    size_t pos;
    int n;

    if (!f || !out || !tlog_alg_name(f->alg) || f->len > TLOG_PROOF_MAX || !f->old_note ||
        !f->new_note || f->old_len == 0 || f->new_len == 0)
        return NHUB_EINVAL;
    n = snprintf(out, cap, TLOG_CONSISTENCY_HEADER "\nhash %s\nold %" PRIu64 "\nnew %" PRIu64 "\n",
                 tlog_alg_name(f->alg), f->old_size, f->new_size);
    if (n < 0 || (size_t)n >= cap)
        return NHUB_ETOOBIG;
    pos = (size_t)n;
    for (size_t i = 0; i < f->len; i++) {
        if (cap - pos < tlog_b64_len(TLOG_HASH_LEN) + 2)
            return NHUB_ETOOBIG;
        tlog_b64_encode(f->proof[i], TLOG_HASH_LEN, out + pos);
        pos += tlog_b64_len(TLOG_HASH_LEN);
        out[pos++] = '\n';
    }
    if (cap - pos < f->old_len + f->new_len + 3)
        return NHUB_ETOOBIG;
    out[pos++] = '\n';
    memcpy(out + pos, f->old_note, f->old_len);
    pos += f->old_len;
    out[pos++] = '\n';
    memcpy(out + pos, f->new_note, f->new_len);
    pos += f->new_len;
    out[pos] = '\0';
    if (outlen)
        *outlen = pos;
    return 0;
}

/* A header line "NAME VALUE": VALUE, or NULL with a message. */
static const char *tlog_cons_field(const char *text, size_t len, size_t *pos, const char *name,
                                   size_t lineno, size_t *vlen, char *err, size_t errcap)
{
    const char *line;
    size_t n, k = strlen(name);
    if (!tlog_next_line(text, len, pos, &line, &n) || n <= k + 1 || memcmp(line, name, k) != 0 ||
        line[k] != ' ') {
        tlog_errf(err, errcap, "consistency proof line %zu: not \"%s ...\"", lineno, name);
        return NULL;
    }
    *vlen = n - k - 1;
    return line + k + 1;
}

/* The end of the signed note at text[pos..len): past its text, the blank
 * line and its signature lines. 0 if it has no signature line. */
static size_t tlog_note_end(const char *text, size_t len, size_t pos)
{
    const char *line;
    size_t n, sigs = 0, p = pos;
    while (tlog_next_line(text, len, &p, &line, &n) && n > 0)
        ;
    if (p >= len)
        return 0;
    for (size_t q = p; tlog_next_line(text, len, &q, &line, &n); p = q, sigs++)
        if (n < strlen(TLOG_SIG_PREFIX) || memcmp(line, TLOG_SIG_PREFIX, strlen(TLOG_SIG_PREFIX)))
            break;
    return sigs ? p : 0;
}

int tlog_consistency_parse(const char *text, size_t len, tlog_consistency_file_t *out, char *err,
                           size_t errcap)
{
    const char *line, *v;
    size_t pos = 0, n, vlen, lineno = 4, dl;
    char alg[16];

    if (!text || !out)
        return NHUB_EINVAL;
    memset(out, 0, sizeof *out);
    if (len > 3 * (size_t)TLOG_NOTE_MAX) {
        tlog_errf(err, errcap, "consistency proof: %zu bytes, more than %d", len,
                  3 * TLOG_NOTE_MAX);
        return NHUB_ETOOBIG;
    }
    if (!tlog_next_line(text, len, &pos, &line, &n) || n != strlen(TLOG_CONSISTENCY_HEADER) ||
        memcmp(line, TLOG_CONSISTENCY_HEADER, n) != 0) {
        tlog_errf(err, errcap, "consistency proof line 1: not \"%s\"", TLOG_CONSISTENCY_HEADER);
        return NHUB_EMALFORMED;
    }
    if (!(v = tlog_cons_field(text, len, &pos, "hash", 2, &vlen, err, errcap)))
        return NHUB_EMALFORMED;
    snprintf(alg, sizeof alg, "%.*s", (int)(vlen < sizeof alg ? vlen : sizeof alg - 1), v);
    if (vlen >= sizeof alg || !(out->alg = tlog_alg_parse(alg))) {
        tlog_errf(err, errcap, "consistency proof line 2: hash not sha256 or sm3");
        return NHUB_EMALFORMED;
    }
    if (!(v = tlog_cons_field(text, len, &pos, "old", 3, &vlen, err, errcap)) ||
        !tlog_parse_u64(v, vlen, &out->old_size) || out->old_size == 0 ||
        !(v = tlog_cons_field(text, len, &pos, "new", 4, &vlen, err, errcap)) ||
        !tlog_parse_u64(v, vlen, &out->new_size) || out->new_size < out->old_size) {
        tlog_errf(err, errcap,
                  "consistency proof lines 3-4: not \"old M\" and \"new N\" with 0 < M <= N");
        return NHUB_EMALFORMED;
    }
    for (;;) {
        lineno++;
        if (!tlog_next_line(text, len, &pos, &line, &n)) {
            tlog_errf(err, errcap, "consistency proof line %zu: no blank line before the notes",
                      lineno);
            return NHUB_EMALFORMED;
        }
        if (n == 0)
            break;
        if (out->len == TLOG_PROOF_MAX) {
            tlog_errf(err, errcap, "consistency proof line %zu: more than %d hashes", lineno,
                      TLOG_PROOF_MAX);
            return NHUB_ETOOBIG;
        }
        if (tlog_b64_decode(line, n, out->proof[out->len], TLOG_HASH_LEN, &dl) != 0 ||
            dl != TLOG_HASH_LEN) {
            tlog_errf(err, errcap, "consistency proof line %zu: not base64 of a %d-byte hash",
                      lineno, TLOG_HASH_LEN);
            return NHUB_EMALFORMED;
        }
        out->len++;
    }
    size_t end = tlog_note_end(text, len, pos);
    if (end == 0 || end >= len || text[end] != '\n' || end + 1 == len) {
        tlog_errf(err, errcap,
                  "consistency proof: not two signed notes (text, blank line, signature lines) "
                  "after the hashes, one blank line between them");
        return NHUB_EMALFORMED;
    }
    out->old_note = text + pos;
    out->old_len = end - pos;
    out->new_note = text + end + 1;
    out->new_len = len - end - 1;
    return 0;
}
