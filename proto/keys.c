/*
 * keys.c: CURVE and signing keys of a region or of the hub (see keys.h).
 *
 * CURVE keys come from libzmq (zmq_curve_keypair, zmq_curve_public) and stay
 * Z85 text; signing keys are OpenSSL EVP_PKEYs, moved in and out of text as
 * DER (SubjectPublicKeyInfo for public keys, PKCS#8 for secret ones) in
 * base64 behind an "alg:" prefix. The secret key file is YAML read through
 * the table-driven reader of conf.h, so it obeys the same rules as every
 * other configuration file (unknown keys are errors, positions in messages).
 *
 * Two OpenSSL 3.0 facts shape the code:
 *   - SM2 must be given its distinguishing ID explicitly on signing AND
 *     verifying: without one OpenSSL 3.0 uses an empty ID, not the GM/T 0009
 *     default, and such signatures do not interoperate;
 *   - Ed25519 signs only in one shot (EVP_DigestSign, no Update), which
 *     suits us: an envelope is signed whole.
 * An SM2 SubjectPublicKeyInfo is id-ecPublicKey with the SM2 curve; OpenSSL
 * 3.0.22 decodes it (and the PKCS#8 form) as an "SM2" key. An in-memory
 * "EC" key on the SM2 curve would sign ECDSA, not SM2, so such a key is
 * converted to an "SM2" key before use (keys_pkey_as_sm2).
 *
 * Secrets live in buffers that are wiped (OPENSSL_cleanse) before they are
 * released or go out of scope; no message written here contains one.
 * Signers and verifiers are immutable after construction: OpenSSL allows a
 * shared EVP_PKEY to be used from several threads, each with its own
 * EVP_MD_CTX, so keys_sign and keys_verify are thread-safe.
 */
#include "keys.h"

#include "conf.h"
#include "nhub_err.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <zmq.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Largest secret key file read: a real one is under 1 KiB. */
#define KEYS_FILE_MAX (64u * 1024u)

/* Room for the text of a whole key file. */
#define KEYS_FILE_TEXT_CAP 2048

/* DER bytes that fit in the base64 of a key text. */
#define KEYS_PUBLIC_DER_MAX (KEYS_PUBLIC_TEXT_MAX / 4 * 3)
#define KEYS_SECRET_DER_MAX (KEYS_SECRET_TEXT_MAX / 4 * 3)

#define KEYS_ED25519_SIG_LEN 64

struct keys_signer {
    keys_alg_t alg;
    EVP_PKEY *pkey;
};

struct keys_verifier {
    keys_alg_t alg;
    EVP_PKEY *pkey;
    char id[KEYS_FPR_LEN + 1];
};

/* The secret key file as text, before its values are checked. */
typedef struct keys_raw {
    char region[KEYS_REGION_LEN + 1];
    char created[32];
    char curve_public[KEYS_Z85_LEN + 1];
    char curve_secret[KEYS_Z85_LEN + 1];
    char sign_public[KEYS_PUBLIC_TEXT_MAX + 1];
    char sign_secret[KEYS_SECRET_TEXT_MAX + 1];
} keys_raw_t;

static const conf_key_t keys_file_schema[] = {
    CONF_KEY_STRING(keys_raw_t, region, "region", CONF_REQUIRED),
    CONF_KEY_STRING(keys_raw_t, created, "created", CONF_REQUIRED),
    CONF_KEY_STRING(keys_raw_t, curve_public, "curve_public", CONF_REQUIRED),
    CONF_KEY_STRING(keys_raw_t, curve_secret, "curve_secret", CONF_REQUIRED),
    CONF_KEY_STRING(keys_raw_t, sign_public, "sign_public", CONF_REQUIRED),
    CONF_KEY_STRING(keys_raw_t, sign_secret, "sign_secret", CONF_REQUIRED),
    CONF_KEY_END,
};

static void keys_errf(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void keys_errf(char *err, size_t errcap, const char *fmt, ...)
{
    if (!err || errcap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
}

/* ---- names, ids, base64 ---------------------------------------------------- */

const char *keys_alg_name(keys_alg_t alg)
{
    switch (alg) {
    case KEYS_ED25519: return "ed25519";
    case KEYS_SM2: return "sm2";
    default: return NULL;
    }
}

keys_alg_t keys_alg_parse(const char *name)
{
    if (!name)
        return 0;
    if (strcmp(name, "ed25519") == 0)
        return KEYS_ED25519;
    if (strcmp(name, "sm2") == 0)
        return KEYS_SM2;
    return 0;
}

/* The OpenSSL key type of `alg`. */
static const char *keys_alg_ossl(keys_alg_t alg)
{
    return alg == KEYS_SM2 ? "SM2" : "ED25519";
}

static bool keys_region_valid(const char *region)
{
    for (size_t i = 0; i < KEYS_REGION_LEN; i++) {
        if (region[i] < '0' || region[i] > '9')
            return false;
    }
    return region[KEYS_REGION_LEN] == '\0';
}

/* RFC 3339 uses digits and these; anything else would also break the YAML quoting. */
static bool keys_created_valid(const char *created)
{
    if (created[0] == '\0')
        return false;
    for (const char *p = created; *p; p++) {
        if (!(*p >= '0' && *p <= '9') && !strchr("-:.+TZtz", *p))
            return false;
    }
    return true;
}

/* The first 16 bytes of SHA-256 of `data`, as 32 lowercase hex digits. */
static void keys_digest_id(const void *data, size_t len, char out[KEYS_FPR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t md[SHA256_DIGEST_LENGTH];

    if (!SHA256(data, len, md)) {
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < KEYS_FPR_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[KEYS_FPR_LEN] = '\0';
}

/* Standard base64 with padding, no line breaks; `out` holds 4 * ceil(len / 3) + 1. */
static int keys_b64_encode(const uint8_t *data, size_t len, char *out, size_t cap)
{
    if (len > (size_t)INT_MAX / 2 || (len + 2) / 3 * 4 + 1 > cap)
        return NHUB_ETOOBIG;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return 0;
}

static int keys_b64_value(char c)
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
 * Strict base64: a multiple of 4 characters from the standard alphabet, '='
 * only as the last one or two. EVP_DecodeBlock would skip whitespace and
 * count padding as zero bytes; a key text has neither excuse.
 */
static int keys_b64_decode(const char *s, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t len = strlen(s);
    size_t pad = 0;

    if (len == 0 || len % 4 != 0)
        return NHUB_EINVAL;
    if (s[len - 1] == '=')
        pad = s[len - 2] == '=' ? 2 : 1;
    if (len / 4 * 3 - pad > cap)
        return NHUB_ETOOBIG;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = (i + j >= len - pad) ? 0 : keys_b64_value(s[i + j]);
            if (d < 0)
                return NHUB_EINVAL;
            v = v << 6 | (uint32_t)d;
        }
        uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        size_t n = i + 4 < len ? 3 : 3 - pad;
        memcpy(out + o, b, n);
        o += n;
        OPENSSL_cleanse(b, sizeof b);
    }
    *outlen = o;
    return 0;
}

/*
 * Split "alg:base64" into its algorithm and the base64 that follows. The
 * message may quote the algorithm (never a secret) but not the rest.
 */
static int keys_text_split(const char *text, keys_alg_t *alg, const char **b64, char *err,
                           size_t errcap)
{
    const char *colon = strchr(text, ':');
    char name[16];

    if (!colon) {
        keys_errf(err, errcap, "expected \"ed25519:BASE64\" or \"sm2:BASE64\"");
        return NHUB_EINVAL;
    }
    size_t n = (size_t)(colon - text);
    if (n >= sizeof name) {
        keys_errf(err, errcap, "unknown algorithm (expected ed25519 or sm2)");
        return NHUB_EINVAL;
    }
    memcpy(name, text, n);
    name[n] = '\0';
    *alg = keys_alg_parse(name);
    if (*alg == 0) {
        bool printable = true;
        for (size_t i = 0; i < n; i++)
            printable = printable && name[i] > 0x20 && name[i] < 0x7f && name[i] != '\'';
        if (printable)
            keys_errf(err, errcap, "unknown algorithm '%s' (expected ed25519 or sm2)", name);
        else
            keys_errf(err, errcap, "unknown algorithm (expected ed25519 or sm2)");
        return NHUB_EINVAL;
    }
    *b64 = colon + 1;
    return 0;
}

/* ---- OpenSSL keys ------------------------------------------------------------ */

/*
 * Make `*pk` an "SM2" key if it is an "EC" key on the SM2 curve: the same
 * numbers, but OpenSSL then signs with SM2 instead of ECDSA. OpenSSL 3.0.22
 * already decodes DER as "SM2"; this guards other 3.0 releases and keys
 * made in memory. Returns 0 (`*pk` unchanged if nothing to do) or
 * NHUB_ECRYPTO.
 */
static int keys_pkey_as_sm2(EVP_PKEY **pk)
{
    char group[32];
    size_t glen = 0;

    if (EVP_PKEY_is_a(*pk, "SM2") || !EVP_PKEY_is_a(*pk, "EC"))
        return 0;
    if (!EVP_PKEY_get_utf8_string_param(*pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &glen) ||
        strcmp(group, "SM2") != 0)
        return 0;

    int rc = NHUB_ECRYPTO;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *sm2 = NULL;
    int selection = EVP_PKEY_KEYPAIR;

    if (EVP_PKEY_todata(*pk, selection, &params) != 1) {
        selection = EVP_PKEY_PUBLIC_KEY;
        if (EVP_PKEY_todata(*pk, selection, &params) != 1)
            goto fail;
    }
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &sm2, selection, params) != 1)
        goto fail;
    EVP_PKEY_free(*pk);
    *pk = sm2;
    rc = 0;
fail:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params); /* wipes the secret block the builder made */
    return rc;
}

/* 1 if `pk` is a key of `alg` (after keys_pkey_as_sm2). */
static bool keys_pkey_is(const EVP_PKEY *pk, keys_alg_t alg)
{
    return EVP_PKEY_is_a(pk, keys_alg_ossl(alg)) == 1;
}

static const char *keys_not_alg_msg(keys_alg_t alg)
{
    return alg == KEYS_SM2 ? "not an SM2 key" : "not an Ed25519 key";
}

/*
 * The BASE64 part of a key text, decoded from DER (`secret`: PKCS#8, else
 * SubjectPublicKeyInfo) with nothing left over, made an SM2 key if it is an
 * EC key on the SM2 curve (keys_pkey_as_sm2), and checked to be of
 * algorithm `want`. The decoded bytes are wiped. Returns 0 and *out, or
 * NHUB_EINVAL (not base64, not DER of that kind, another algorithm) or
 * NHUB_ECRYPTO (conversion failed), with the reason in `err`.
 */
static int keys_pkey_decode(const char *b64, int secret, keys_alg_t want, EVP_PKEY **out, char *err,
                            size_t errcap)
{
    uint8_t
        der[KEYS_SECRET_DER_MAX > KEYS_PUBLIC_DER_MAX ? KEYS_SECRET_DER_MAX : KEYS_PUBLIC_DER_MAX];
    size_t len = 0;
    EVP_PKEY *pk = NULL;
    int rc = NHUB_EINVAL;
    if (keys_b64_decode(b64, der, secret ? KEYS_SECRET_DER_MAX : KEYS_PUBLIC_DER_MAX, &len) != 0) {
        keys_errf(err, errcap, "not base64");
        goto done;
    }
    const unsigned char *p = der;
    pk = secret ? d2i_AutoPrivateKey(NULL, &p, (long)len) : d2i_PUBKEY(NULL, &p, (long)len);
    if (!pk || p != der + len) {
        keys_errf(err, errcap, secret ? "not a DER private key" : "not a DER SubjectPublicKeyInfo");
        goto done;
    }
    if (keys_pkey_as_sm2(&pk) != 0) {
        keys_errf(err, errcap, "cannot convert an EC key on the SM2 curve");
        rc = NHUB_ECRYPTO;
        goto done;
    }
    if (!keys_pkey_is(pk, want)) {
        keys_errf(err, errcap, "%s", keys_not_alg_msg(want));
        goto done;
    }
    *out = pk;
    pk = NULL;
    rc = 0;
done:
    EVP_PKEY_free(pk);
    OPENSSL_cleanse(der, sizeof der);
    return rc;
}

/* "alg:BASE64(SPKI DER)" and the key id of `pk`. */
static int keys_public_text(const EVP_PKEY *pk, keys_alg_t alg, char text[KEYS_PUBLIC_TEXT_MAX + 1],
                            char id[KEYS_FPR_LEN + 1])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pk, &der);
    if (n <= 0)
        return NHUB_ECRYPTO;

    const char *name = keys_alg_name(alg);
    size_t pre = strlen(name) + 1;
    int rc = 0;
    snprintf(text, KEYS_PUBLIC_TEXT_MAX + 1, "%s:", name);
    if (keys_b64_encode(der, (size_t)n, text + pre, KEYS_PUBLIC_TEXT_MAX + 1 - pre) != 0)
        rc = NHUB_ECRYPTO;
    else
        keys_digest_id(der, (size_t)n, id);
    OPENSSL_free(der);
    return rc;
}

/* "alg:BASE64(PKCS#8 DER)" of the private key `pk`; the caller wipes `text`. */
static int keys_secret_text(const EVP_PKEY *pk, keys_alg_t alg, char text[KEYS_SECRET_TEXT_MAX + 1])
{
    int rc = NHUB_ECRYPTO;
    unsigned char *der = NULL;
    int n = 0;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);

    if (!p8)
        goto fail;
    n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    if (n <= 0)
        goto fail;
    const char *name = keys_alg_name(alg);
    size_t pre = strlen(name) + 1;
    snprintf(text, KEYS_SECRET_TEXT_MAX + 1, "%s:", name);
    if (keys_b64_encode(der, (size_t)n, text + pre, KEYS_SECRET_TEXT_MAX + 1 - pre) != 0)
        goto fail;
    rc = 0;
fail:
    if (der)
        OPENSSL_clear_free(der, (size_t)n);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return rc;
}

/*
 * Decode "alg:BASE64(PKCS#8 DER)" into a private key of `want`. Messages
 * say what is wrong, never what the text holds.
 */
static int keys_secret_parse(const char *text, keys_alg_t want, EVP_PKEY **out, char *err,
                             size_t errcap)
{
    keys_alg_t alg = 0;
    const char *b64 = NULL;
    int rc = keys_text_split(text, &alg, &b64, err, errcap);
    if (rc == 0 && alg != want) {
        keys_errf(err, errcap, "algorithm %s differs from sign_public's (%s)", keys_alg_name(alg),
                  keys_alg_name(want));
        rc = NHUB_EINVAL;
    }
    if (rc == 0)
        rc = keys_pkey_decode(b64, 1, want, out, err, errcap);
    ERR_clear_error();
    return rc;
}

/* ---- sign and verify ----------------------------------------------------------- */

/*
 * Set up `m` for `alg`: SM2 with SM3 and KEYS_SM2_ID (GM/T 0009 section
 * 5.5, set explicitly, see the top of this file); Ed25519 with no digest.
 *
 * The SM2 ID is set on a key context of our own, handed to `m` before the
 * init, with EVP_PKEY_CTX_set1_id: that works on every OpenSSL 3.0.x Debian
 * 12 has shipped (3.0.19 and 3.0.22 tested). Passing it instead as the
 * OSSL_PKEY_PARAM_DIST_ID parameter of EVP_DigestSignInit_ex fails on 3.0.19.
 * `*pctx_out` is the caller's to free, after `m` (EVP_MD_CTX_set_pkey_ctx
 * leaves its ownership with us).
 */
static int keys_md_init(EVP_MD_CTX *m, keys_alg_t alg, EVP_PKEY *pk, bool verify,
                        EVP_PKEY_CTX **pctx_out)
{
    const char *md = NULL;

    *pctx_out = NULL;
    if (alg == KEYS_SM2) {
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        if (!pctx)
            return 0;
        *pctx_out = pctx;
        if (EVP_PKEY_CTX_set1_id(pctx, KEYS_SM2_ID, sizeof KEYS_SM2_ID - 1) != 1)
            return 0;
        EVP_MD_CTX_set_pkey_ctx(m, pctx);
        md = "SM3";
    }
    if (verify)
        return EVP_DigestVerifyInit_ex(m, NULL, md, NULL, NULL, pk, NULL);
    return EVP_DigestSignInit_ex(m, NULL, md, NULL, NULL, pk, NULL);
}

int keys_sign(const keys_signer_t *s, const void *data, size_t len, uint8_t *sig, size_t *siglen)
{
    if (!s || !s->pkey || (!data && len > 0) || !sig || !siglen)
        return NHUB_ECRYPTO;

    int rc = NHUB_ECRYPTO;
    size_t n = KEYS_SIG_MAX;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;

    if (!m)
        goto fail;
    if (keys_md_init(m, s->alg, s->pkey, false, &pctx) != 1)
        goto fail;
    if (EVP_DigestSign(m, sig, &n, data ? data : (const void *)"", len) != 1)
        goto fail;
    *siglen = n;
    rc = 0;
fail:
    if (rc != 0)
        ERR_clear_error();
    EVP_MD_CTX_free(m);
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

int keys_verify(const keys_verifier_t *v, const void *data, size_t len, const uint8_t *sig,
                size_t siglen)
{
    if (!v || !v->pkey || (!data && len > 0))
        return NHUB_ECRYPTO;
    if (!sig || siglen == 0 || siglen > KEYS_SIG_MAX)
        return NHUB_EREFUSED;
    if (v->alg == KEYS_ED25519 && siglen != KEYS_ED25519_SIG_LEN)
        return NHUB_EREFUSED;

    int rc = NHUB_ENOMEM;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;

    if (!m)
        goto fail;
    rc = NHUB_ECRYPTO;
    if (keys_md_init(m, v->alg, v->pkey, true, &pctx) != 1)
        goto fail;
    /* 0 is a wrong signature, a negative value one that does not even decode: both refused. */
    rc = NHUB_EREFUSED;
    if (EVP_DigestVerify(m, sig, siglen, data ? data : (const void *)"", len) == 1)
        rc = 0;
fail:
    if (rc != 0)
        ERR_clear_error();
    EVP_MD_CTX_free(m);
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

/* ---- verifiers ------------------------------------------------------------------ */

int keys_verifier_parse(const char *text, keys_verifier_t **out, char *err, size_t errcap)
{
    keys_alg_t alg = 0;
    const char *b64 = NULL;
    EVP_PKEY *pk = NULL;
    keys_verifier_t *v = NULL;
    int rc = NHUB_EINVAL;

    keys_errf(err, errcap, "%s", "");
    if (out)
        *out = NULL;
    if (!text || !out) {
        keys_errf(err, errcap, "no key text");
        goto fail;
    }
    if (strlen(text) > KEYS_PUBLIC_TEXT_MAX) {
        keys_errf(err, errcap, "too long for a public key (more than %d bytes)",
                  KEYS_PUBLIC_TEXT_MAX);
        goto fail;
    }
    rc = keys_text_split(text, &alg, &b64, err, errcap);
    if (rc == 0)
        rc = keys_pkey_decode(b64, 0, alg, &pk, err, errcap);
    if (rc != 0)
        goto fail;
    v = calloc(1, sizeof *v);
    if (!v) {
        rc = NHUB_ENOMEM;
        keys_errf(err, errcap, "out of memory");
        goto fail;
    }
    char canon[KEYS_PUBLIC_TEXT_MAX + 1];
    if (keys_public_text(pk, alg, canon, v->id) != 0) {
        rc = NHUB_ECRYPTO;
        keys_errf(err, errcap, "cannot encode the key");
        goto fail;
    }
    v->alg = alg;
    v->pkey = pk;
    *out = v;
    return 0;
fail:
    free(v);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

const char *keys_verifier_id(const keys_verifier_t *v)
{
    return v ? v->id : "";
}

keys_alg_t keys_verifier_alg(const keys_verifier_t *v)
{
    return v ? v->alg : 0;
}

void keys_verifier_free(keys_verifier_t **v)
{
    if (!v || !*v)
        return;
    EVP_PKEY_free((*v)->pkey);
    free(*v);
    *v = NULL;
}

static void keys_signer_free(keys_signer_t **s)
{
    if (!*s)
        return;
    EVP_PKEY_free((*s)->pkey); /* OpenSSL clears the private key as it frees it */
    OPENSSL_cleanse(*s, sizeof **s);
    free(*s);
    *s = NULL;
}

/* ---- CURVE keys ---------------------------------------------------------------- */

int keys_curve_valid(const char *z85)
{
    uint8_t raw[32];

    if (!z85 || strnlen(z85, KEYS_Z85_LEN + 1) != KEYS_Z85_LEN)
        return 0;
    int ok = zmq_z85_decode(raw, z85) != NULL;
    OPENSSL_cleanse(raw, sizeof raw); /* z85 may be a secret key */
    return ok;
}

void keys_curve_fpr(const uint8_t raw[32], char out[KEYS_FPR_LEN + 1])
{
    keys_digest_id(raw, 32, out);
}

int keys_curve_fpr_z85(const char *z85, char out[KEYS_FPR_LEN + 1])
{
    uint8_t raw[32];

    if (!keys_curve_valid(z85))
        return NHUB_EINVAL;
    zmq_z85_decode(raw, z85);
    keys_curve_fpr(raw, out);
    return 0;
}

/* ---- key sets -------------------------------------------------------------------- */

void keys_free(keys_file_t **k)
{
    if (!k || !*k)
        return;
    keys_signer_free(&(*k)->signer);
    OPENSSL_cleanse(*k, sizeof **k);
    free(*k);
    *k = NULL;
}

static int keys_format_time(int64_t now_ms, char *out, size_t cap)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return NHUB_EINVAL;
    return 0;
}

int keys_generate(const char *region, keys_alg_t alg, int64_t now_ms, keys_file_t **out)
{
    if (!out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!region || !keys_region_valid(region) || !keys_alg_name(alg) || now_ms < 0)
        return NHUB_EINVAL;

    int rc = NHUB_ENOMEM;
    keys_file_t *k = calloc(1, sizeof *k);
    if (!k)
        goto fail;
    k->signer = calloc(1, sizeof *k->signer);
    if (!k->signer)
        goto fail;
    rc = NHUB_EINVAL;
    memcpy(k->region, region, KEYS_REGION_LEN + 1);
    if (keys_format_time(now_ms, k->created, sizeof k->created) != 0)
        goto fail;
    rc = NHUB_ECRYPTO;
    if (zmq_curve_keypair(k->curve_public, k->curve_secret) != 0)
        goto fail;
    if (keys_curve_fpr_z85(k->curve_public, k->curve_fpr) != 0)
        goto fail;
    k->alg = alg;
    k->signer->alg = alg;
    k->signer->pkey = EVP_PKEY_Q_keygen(NULL, NULL, keys_alg_ossl(alg));
    if (!k->signer->pkey)
        goto fail;
    if (keys_public_text(k->signer->pkey, alg, k->sign_public, k->sign_id) != 0)
        goto fail;
    *out = k;
    return 0;
fail:
    ERR_clear_error();
    keys_free(&k);
    return rc;
}

/* ---- loading ----------------------------------------------------------------- */

int keys_read_secret_file(const char *path, char **text, size_t *len, char *err,
                                 size_t errcap)
{
    int rc = NHUB_EIO;
    char *buf = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        keys_errf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        keys_errf(err, errcap, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    rc = NHUB_ECONFIG;
    if (!S_ISREG(st.st_mode)) {
        keys_errf(err, errcap, "%s: not a regular file", path);
        goto fail;
    }
    if ((st.st_mode & 077) != 0) {
        keys_errf(err, errcap,
                  "%s: mode %04o lets group or others read this secret key file; "
                  "run chmod 600 %s",
                  path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > KEYS_FILE_MAX) {
        keys_errf(err, errcap, "%s: too large for a key file (more than %u bytes)", path,
                  KEYS_FILE_MAX);
        goto fail;
    }
    rc = NHUB_ENOMEM;
    buf = malloc(KEYS_FILE_MAX + 1);
    if (!buf) {
        keys_errf(err, errcap, "%s: out of memory", path);
        goto fail;
    }
    size_t n = 0;
    while (n < KEYS_FILE_MAX) {
        ssize_t r = read(fd, buf + n, KEYS_FILE_MAX - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = NHUB_EIO;
            keys_errf(err, errcap, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    rc = 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, KEYS_FILE_MAX + 1);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The CURVE pair of `raw`: both well formed, the public key that of the secret one. */
static int keys_check_curve(const keys_raw_t *raw, const conf_marks_t *marks, char *err,
                            size_t errcap)
{
    char derived[KEYS_Z85_LEN + 1];

    if (!keys_curve_valid(raw->curve_public))
        return conf_marks_error(marks, "curve_public", err, errcap,
                                "\"curve_public\": not a Z85 CURVE key (40 characters)");
    if (!keys_curve_valid(raw->curve_secret))
        return conf_marks_error(marks, "curve_secret", err, errcap,
                                "\"curve_secret\": not a Z85 CURVE key (40 characters)");
    if (zmq_curve_public(derived, raw->curve_secret) != 0)
        return conf_marks_error(marks, "curve_secret", err, errcap,
                                "\"curve_secret\": libzmq cannot derive its public key");
    if (strcmp(derived, raw->curve_public) != 0)
        return conf_marks_error(marks, "curve_public", err, errcap,
                                "\"curve_public\": does not belong to \"curve_secret\"");
    return 0;
}

/* The signing pair of `raw` into `k`: forms, algorithms, and that they belong together. */
static int keys_check_sign(const keys_raw_t *raw, const conf_marks_t *marks, keys_file_t *k,
                           char *err, size_t errcap)
{
    char msg[128];
    keys_verifier_t *v = NULL;
    EVP_PKEY *sk = NULL;
    int rc = keys_verifier_parse(raw->sign_public, &v, msg, sizeof msg);

    if (rc == NHUB_ENOMEM) {
        keys_errf(err, errcap, "out of memory");
        goto fail;
    }
    if (rc != 0) {
        rc = conf_marks_error(marks, "sign_public", err, errcap, "\"sign_public\": %s", msg);
        goto fail;
    }
    rc = keys_secret_parse(raw->sign_secret, v->alg, &sk, msg, sizeof msg);
    if (rc != 0) {
        rc = conf_marks_error(marks, "sign_secret", err, errcap, "\"sign_secret\": %s", msg);
        goto fail;
    }
    if (EVP_PKEY_eq(v->pkey, sk) != 1) {
        rc = conf_marks_error(marks, "sign_public", err, errcap,
                              "\"sign_public\": does not belong to \"sign_secret\"");
        goto fail;
    }
    rc = NHUB_ENOMEM;
    k->signer = calloc(1, sizeof *k->signer);
    if (!k->signer) {
        keys_errf(err, errcap, "out of memory");
        goto fail;
    }
    k->signer->alg = v->alg;
    k->signer->pkey = sk;
    sk = NULL;
    k->alg = v->alg;
    rc = 0;
    if (keys_public_text(k->signer->pkey, k->alg, k->sign_public, k->sign_id) != 0) {
        rc = NHUB_ECRYPTO;
        keys_errf(err, errcap, "cannot encode the signing key");
    }
fail:
    EVP_PKEY_free(sk);
    keys_verifier_free(&v);
    ERR_clear_error();
    return rc;
}

static int keys_check(const keys_raw_t *raw, const conf_marks_t *marks, keys_file_t *k, char *err,
                      size_t errcap)
{
    if (!keys_region_valid(raw->region))
        return conf_marks_error(marks, "region", err, errcap,
                                "\"region\": a region code is exactly 6 ASCII digits");
    if (!keys_created_valid(raw->created))
        return conf_marks_error(marks, "created", err, errcap,
                                "\"created\": expected an RFC 3339 time like "
                                "2026-11-25T09:00:00Z");
    int rc = keys_check_curve(raw, marks, err, errcap);
    if (rc != 0)
        return rc;
    memcpy(k->region, raw->region, sizeof k->region);
    memcpy(k->created, raw->created, sizeof k->created);
    memcpy(k->curve_public, raw->curve_public, sizeof k->curve_public);
    memcpy(k->curve_secret, raw->curve_secret, sizeof k->curve_secret);
    keys_curve_fpr_z85(k->curve_public, k->curve_fpr);
    return keys_check_sign(raw, marks, k, err, errcap);
}

int keys_load(const char *path, keys_file_t **out, char *err, size_t errcap)
{
    keys_raw_t raw;
    char *text = NULL;
    size_t len = 0;
    conf_marks_t *marks = NULL;
    keys_file_t *k = NULL;
    int rc = NHUB_EINVAL;

    memset(&raw, 0, sizeof raw);
    keys_errf(err, errcap, "%s", "");
    if (out)
        *out = NULL;
    if (!path || !out) {
        keys_errf(err, errcap, "no key file given");
        goto fail;
    }
    rc = keys_read_secret_file(path, &text, &len, err, errcap);
    if (rc != 0)
        goto fail;
    rc = conf_load_string_marked(path, text, len, keys_file_schema, &raw, &marks, err, errcap);
    if (rc != 0)
        goto fail;
    rc = NHUB_ENOMEM;
    k = calloc(1, sizeof *k);
    if (!k) {
        keys_errf(err, errcap, "%s: out of memory", path);
        goto fail;
    }
    rc = keys_check(&raw, marks, k, err, errcap);
    if (rc != 0)
        goto fail;
    *out = k;
    k = NULL;
fail:
    keys_free(&k);
    conf_marks_destroy(&marks);
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
    OPENSSL_cleanse(&raw, sizeof raw);
    return rc;
}

/* ---- writing ----------------------------------------------------------------- */

static int keys_secret_file_text(const keys_file_t *k, char *buf, size_t cap)
{
    char secret[KEYS_SECRET_TEXT_MAX + 1];
    int rc = keys_secret_text(k->signer->pkey, k->alg, secret);

    if (rc == 0) {
        int n = snprintf(buf, cap,
                         "# nhub SECRET key file of region %s: never share it, never log it.\n"
                         "# It must stay mode 0600 (owner only); nhub refuses it otherwise.\n"
                         "# Its public half is the .pub file written beside it.\n"
                         "region: \"%s\"\n"
                         "created: \"%s\"\n"
                         "curve_public: \"%s\"\n"
                         "curve_secret: \"%s\"\n"
                         "sign_public: \"%s\"\n"
                         "sign_secret: \"%s\"\n",
                         k->region, k->region, k->created, k->curve_public, k->curve_secret,
                         k->sign_public, secret);
        rc = n < 0 || (size_t)n >= cap ? NHUB_EINVAL : 0;
    }
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

static int keys_public_file_text(const keys_file_t *k, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "# nhub public keys of region %s, created %s\n"
                     "# curve fingerprint %s, sign key id %s (%s)\n"
                     "# Paste the entry below under region %s's `keys:` list in the hub\n"
                     "# configuration; for the hub's own key, adapters take the curve value\n"
                     "# as `hub_key:`.\n"
                     "- curve: \"%s\"\n"
                     "  sign: \"%s\"\n",
                     k->region, k->created, k->curve_fpr, k->sign_id, keys_alg_name(k->alg),
                     k->region, k->curve_public, k->sign_public);
    return n < 0 || (size_t)n >= cap ? NHUB_EINVAL : 0;
}

/* Write all of `data` to `fd`, set `mode` (umask does not apply), fsync, close. */
static int keys_fill_fd(int fd, const char *data, size_t len, mode_t mode)
{
    size_t o = 0;
    int rc = 0;

    while (o < len && rc == 0) {
        ssize_t w = write(fd, data + o, len - o);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = -1;
        else
            o += (size_t)w;
    }
    if (rc == 0 && (fchmod(fd, mode) != 0 || fsync(fd) != 0))
        rc = -1;
    int saved = errno;
    if (close(fd) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

/* fsync the directory holding `path`, so a new name survives a crash. */
static void keys_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Create `path` (which must not exist) holding `data`; on failure nothing is left. */
static int keys_create_file(const char *path, const char *data, size_t len, mode_t mode, char *err,
                            size_t errcap)
{
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);

    if (fd < 0) {
        keys_errf(err, errcap, "%s: cannot create: %s", path, strerror(errno));
        return errno == EEXIST ? NHUB_EINVAL : NHUB_EIO;
    }
    if (keys_fill_fd(fd, data, len, mode) != 0) {
        keys_errf(err, errcap, "%s: cannot write: %s", path, strerror(errno));
        unlink(path);
        return NHUB_EIO;
    }
    return 0;
}

/* Write `data` to a new temporary file beside `path`; its name goes to `tmp`. */
static int keys_stage_file(const char *path, const char *data, size_t len, mode_t mode,
                           char tmp[PATH_MAX], char *err, size_t errcap)
{
    int n = snprintf(tmp, PATH_MAX, "%s.XXXXXX", path);
    if (n < 0 || n >= PATH_MAX) {
        keys_errf(err, errcap, "%s: path too long", path);
        return NHUB_EINVAL;
    }
    int fd = mkstemp(tmp); /* mode 0600 from the start, so a secret is never exposed */
    if (fd < 0) {
        keys_errf(err, errcap, "%s: cannot create a temporary file: %s", path, strerror(errno));
        return NHUB_EIO;
    }
    if (keys_fill_fd(fd, data, len, mode) != 0) {
        keys_errf(err, errcap, "%s: cannot write: %s", tmp, strerror(errno));
        unlink(tmp);
        return NHUB_EIO;
    }
    return 0;
}

/* Without force: both files new, created exclusively, or neither. */
static int keys_write_new(const char *secret_path, const char *secret, const char *public_path,
                          const char *pub, char *err, size_t errcap)
{
    struct stat st;

    if (lstat(secret_path, &st) == 0 || lstat(public_path, &st) == 0) {
        keys_errf(err, errcap, "%s: already exists; not replaced",
                  lstat(secret_path, &st) == 0 ? secret_path : public_path);
        return NHUB_EINVAL;
    }
    int rc = keys_create_file(secret_path, secret, strlen(secret), 0600, err, errcap);
    if (rc != 0)
        return rc;
    rc = keys_create_file(public_path, pub, strlen(pub), 0644, err, errcap);
    if (rc != 0) {
        unlink(secret_path);
        return rc;
    }
    keys_sync_dir(secret_path);
    keys_sync_dir(public_path);
    return 0;
}

/* With force: both files staged first, then renamed over the old ones. */
static int keys_write_replace(const char *secret_path, const char *secret, const char *public_path,
                              const char *pub, char *err, size_t errcap)
{
    char stmp[PATH_MAX];
    char ptmp[PATH_MAX];
    int rc = keys_stage_file(secret_path, secret, strlen(secret), 0600, stmp, err, errcap);

    if (rc != 0)
        return rc;
    rc = keys_stage_file(public_path, pub, strlen(pub), 0644, ptmp, err, errcap);
    if (rc != 0) {
        unlink(stmp);
        return rc;
    }
    if (rename(stmp, secret_path) != 0) {
        keys_errf(err, errcap, "%s: cannot replace: %s", secret_path, strerror(errno));
        unlink(stmp);
        unlink(ptmp);
        return NHUB_EIO;
    }
    if (rename(ptmp, public_path) != 0) {
        keys_errf(err, errcap, "%s: cannot replace: %s", public_path, strerror(errno));
        unlink(ptmp);
        return NHUB_EIO;
    }
    keys_sync_dir(secret_path);
    keys_sync_dir(public_path);
    return 0;
}

static int keys_write_check(const keys_file_t *k, const char *secret_path, const char *public_path,
                            char *err, size_t errcap)
{
    if (!k || !k->signer || !k->signer->pkey || !secret_path || !public_path) {
        keys_errf(err, errcap, "nothing to write");
        return NHUB_EINVAL;
    }
    if (strcmp(secret_path, public_path) == 0) {
        keys_errf(err, errcap, "%s: the secret and public files must differ", secret_path);
        return NHUB_EINVAL;
    }
    if (!keys_region_valid(k->region) || !keys_created_valid(k->created) ||
        !keys_curve_valid(k->curve_public) || !keys_curve_valid(k->curve_secret) ||
        !keys_alg_name(k->alg) || k->signer->alg != k->alg) {
        keys_errf(err, errcap, "%s: the key set is incomplete or malformed", secret_path);
        return NHUB_EINVAL;
    }
    return 0;
}

int keys_write(const keys_file_t *k, const char *secret_path, const char *public_path, int force,
               char *err, size_t errcap)
{
    char secret[KEYS_FILE_TEXT_CAP];
    char pub[KEYS_FILE_TEXT_CAP];
    int rc;

    keys_errf(err, errcap, "%s", "");
    rc = keys_write_check(k, secret_path, public_path, err, errcap);
    if (rc != 0)
        return rc;
    rc = keys_secret_file_text(k, secret, sizeof secret);
    if (rc == 0)
        rc = keys_public_file_text(k, pub, sizeof pub);
    if (rc != 0) {
        keys_errf(err, errcap, "%s: cannot encode the keys", secret_path);
        goto done;
    }
    if (force)
        rc = keys_write_replace(secret_path, secret, public_path, pub, err, errcap);
    else
        rc = keys_write_new(secret_path, secret, public_path, pub, err, errcap);
done:
    OPENSSL_cleanse(secret, sizeof secret);
    ERR_clear_error();
    return rc;
}

/* ---- public files --------------------------------------------------------------- */

typedef struct keys_pub_entry {
    char curve[KEYS_Z85_LEN + 1];
    char sign[KEYS_PUBLIC_TEXT_MAX + 1];
} keys_pub_entry_t;

#define KEYS_PUB_ENTRIES 16

typedef struct keys_pub_doc {
    keys_pub_entry_t keys[KEYS_PUB_ENTRIES];
    size_t count;
} keys_pub_doc_t;

static const conf_key_t keys_pub_entry_schema[] = {
    CONF_KEY_STRING(keys_pub_entry_t, curve, "curve", CONF_REQUIRED),
    CONF_KEY_STRING(keys_pub_entry_t, sign, "sign", CONF_REQUIRED),
    CONF_KEY_END,
};

static const conf_key_t keys_pub_doc_schema[] = {
    CONF_KEY_SEQ_OF_MAPS(keys_pub_doc_t, keys, count, "keys", CONF_REQUIRED, keys_pub_entry_schema,
                         1, NULL),
    CONF_KEY_END,
};

/*
 * A .pub file is a YAML sequence and conf.h reads mappings: it is read as if
 * pasted under "keys:" on a line of its own, so a message counts one line
 * too many; this takes it back out of "FILE:LINE:COLUMN: ...".
 */
static void keys_unshift_line(char *err, const char *path)
{
    size_t plen = strlen(path);
    if (strncmp(err, path, plen) != 0 || err[plen] != ':')
        return;
    char *end = NULL;
    unsigned long line = strtoul(err + plen + 1, &end, 10);
    if (end == err + plen + 1 || *end != ':')
        return;
    char num[24]; /* the smaller number never has more digits: rewrite in place */
    int n = snprintf(num, sizeof num, "%lu", line > 1 ? line - 1 : 1);
    char *start = err + plen + 1;
    memcpy(start, num, (size_t)n);
    memmove(start + n, end, strlen(end) + 1);
}

int keys_read_public(const char *path, char curve[KEYS_Z85_LEN + 1],
                     char sign[KEYS_PUBLIC_TEXT_MAX + 1], char *err, size_t errcap)
{
    static const char prefix[] = "keys:\n";
    char why[256];
    keys_pub_doc_t *doc = calloc(1, sizeof *doc);
    char *text = malloc(sizeof prefix + KEYS_FILE_MAX + 1);
    FILE *f = fopen(path, "rb");
    conf_marks_t *marks = NULL;
    int rc = NHUB_EIO;
    size_t n = 0;

    if (!doc || !text) {
        snprintf(err, errcap, "%s: out of memory", path);
        rc = NHUB_ENOMEM;
        goto done;
    }
    if (!f) {
        snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    memcpy(text, prefix, sizeof prefix - 1);
    n = fread(text + sizeof prefix - 1, 1, KEYS_FILE_MAX + 1, f);
    if (ferror(f) || n > KEYS_FILE_MAX) {
        snprintf(err, errcap, "%s: %s", path, ferror(f) ? strerror(errno) : "too large");
        goto done;
    }
    text[sizeof prefix - 1 + n] = '\0';
    if (strstr(text, "curve_secret:") || strstr(text, "sign_secret:")) {
        snprintf(err, errcap, "%s: is a secret key file; give its public file (.pub) instead",
                 path);
        rc = NHUB_ECONFIG;
        goto done;
    }
    rc = conf_load_string_marked(path, text, sizeof prefix - 1 + n, keys_pub_doc_schema, doc,
                                 &marks, err, errcap);
    if (rc == 0 && !keys_curve_valid(doc->keys[0].curve))
        rc = conf_marks_error(marks, "keys[0].curve", err, errcap,
                              "curve: not a CURVE public key (40 Z85 characters)");
    keys_verifier_t *v = NULL;
    if (rc == 0 && keys_verifier_parse(doc->keys[0].sign, &v, why, sizeof why) != 0)
        rc = conf_marks_error(marks, "keys[0].sign", err, errcap, "sign: %s", why);
    keys_verifier_free(&v);
    if (rc) {
        keys_unshift_line(err, path);
        goto done;
    }
    if (curve)
        memcpy(curve, doc->keys[0].curve, KEYS_Z85_LEN + 1);
    if (sign)
        memcpy(sign, doc->keys[0].sign, KEYS_PUBLIC_TEXT_MAX + 1);
done:
    if (f)
        fclose(f);
    conf_marks_destroy(&marks);
    free(text);
    free(doc);
    return rc;
}
