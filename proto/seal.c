/*
 * seal.c: sealing envelopes at rest (see seal.h for the format). The
 * OpenSSL algorithms are fetched once per key, not per envelope: OpenSSL 3
 * looks a name up again at every EVP_*_fetch, which costs more than
 * sealing a small envelope. Each call makes its own cipher context, so a
 * key is never changed by using it.
 */
#include "seal.h"

#include "keys.h"
#include "nhub_err.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16
#define SM4_KEY_LEN 16
#define SM4_IV_LEN 16
#define SM3_MAC_LEN 32
/* Plaintexts above this are refused: OpenSSL counts bytes in an int. */
#define SEAL_PLAIN_MAX ((size_t)INT_MAX - 64)

static const char SM4_SALT[] = "nhub payload seal";
static const char SM4_INFO[] = "sm4-ctr-hmac-sm3 v1";

struct seal_key {
    seal_cipher_t cipher; /* what seal_seal uses */
    uint8_t id[SEAL_KEY_ID_LEN];
    uint8_t aes[SEAL_KEY_LEN];
    uint8_t sm4[SM4_KEY_LEN];
    EVP_CIPHER *aes_gcm, *sm4_ctr;
    EVP_MAC *hmac;
    EVP_MAC_CTX *mac; /* HMAC-SM3 keyed with the derived mac key; duplicated per use */
};

const char *seal_cipher_name(int cipher)
{
    switch (cipher) {
    case SEAL_AES_256_GCM: return "aes-256-gcm";
    case SEAL_SM4_CTR_HMAC_SM3: return "sm4-ctr-hmac-sm3";
    default: return "unknown";
    }
}

/* Bytes a cipher adds beside the header; 0 for an unknown one. */
static size_t cipher_extra(int cipher)
{
    switch (cipher) {
    case SEAL_AES_256_GCM: return GCM_NONCE_LEN + GCM_TAG_LEN;
    case SEAL_SM4_CTR_HMAC_SM3: return SM4_IV_LEN + SM3_MAC_LEN;
    default: return 0;
    }
}

/* ---- keys -------------------------------------------------------------------- */

/* The SM4 key and the HMAC-SM3 key: HKDF-SM3 of the configured key. */
static int derive_sm4(seal_key_t *k, const uint8_t raw[SEAL_KEY_LEN], uint8_t mac_key[SM3_MAC_LEN])
{
    uint8_t okm[SM4_KEY_LEN + SM3_MAC_LEN];
    int rc = NHUB_ECRYPTO;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SM3", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)raw, SEAL_KEY_LEN),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)SM4_SALT,
                                          sizeof SM4_SALT - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)SM4_INFO,
                                          sizeof SM4_INFO - 1),
        OSSL_PARAM_construct_end(),
    };
    if (kctx && EVP_KDF_derive(kctx, okm, sizeof okm, params) == 1) {
        memcpy(k->sm4, okm, SM4_KEY_LEN);
        memcpy(mac_key, okm + SM4_KEY_LEN, SM3_MAC_LEN);
        rc = 0;
    }
    OPENSSL_cleanse(okm, sizeof okm);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

static int mac_setup(seal_key_t *k, const uint8_t mac_key[SM3_MAC_LEN])
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SM3", 0),
        OSSL_PARAM_construct_end(),
    };
    k->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    k->mac = k->hmac ? EVP_MAC_CTX_new(k->hmac) : NULL;
    if (!k->mac || EVP_MAC_init(k->mac, mac_key, SM3_MAC_LEN, params) != 1)
        return NHUB_ECRYPTO;
    return 0;
}

int seal_key_new(const uint8_t raw[SEAL_KEY_LEN], seal_cipher_t cipher, seal_key_t **out)
{
    uint8_t mac_key[SM3_MAC_LEN], digest[32];
    *out = NULL;
    if (!cipher_extra(cipher))
        return NHUB_EINVAL;
    seal_key_t *k = calloc(1, sizeof *k);
    if (!k)
        return NHUB_ENOMEM;
    int rc = NHUB_ECRYPTO;
    k->cipher = cipher;
    memcpy(k->aes, raw, SEAL_KEY_LEN);
    if (EVP_Digest(raw, SEAL_KEY_LEN, digest, NULL, EVP_sha256(), NULL) != 1)
        goto fail;
    memcpy(k->id, digest, SEAL_KEY_ID_LEN);
    k->aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    k->sm4_ctr = EVP_CIPHER_fetch(NULL, "SM4-CTR", NULL);
    if (!k->aes_gcm || !k->sm4_ctr)
        goto fail;
    if ((rc = derive_sm4(k, raw, mac_key)) != 0 || (rc = mac_setup(k, mac_key)) != 0)
        goto fail;
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    *out = k;
    return 0;
fail:
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    seal_key_free(&k);
    return rc;
}

static int why_set(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && cap)
        vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return NHUB_ECONFIG;
}

int seal_key_parse(const uint8_t *text, size_t len, seal_cipher_t cipher, seal_key_t **out,
                   char *why, size_t whycap)
{
    uint8_t raw[SEAL_KEY_LEN];
    *out = NULL;
    if (len == SEAL_KEY_LEN) {
        memcpy(raw, text, SEAL_KEY_LEN);
    } else if (len == 2 * SEAL_KEY_LEN || (len == 2 * SEAL_KEY_LEN + 1 && text[len - 1] == '\n')) {
        for (size_t i = 0; i < SEAL_KEY_LEN; i++) {
            int hi = OPENSSL_hexchar2int(text[2 * i]);
            int lo = OPENSSL_hexchar2int(text[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                OPENSSL_cleanse(raw, sizeof raw);
                return why_set(why, whycap, "character %zu is not a hex digit",
                               2 * i + 1 + (hi >= 0));
            }
            raw[i] = (uint8_t)(hi << 4 | lo);
        }
    } else {
        return why_set(why, whycap,
                       "%zu bytes; a payload key file holds 32 raw bytes or 64 hex digits "
                       "(and a newline), e.g. from `openssl rand -hex 32`",
                       len);
    }
    uint8_t any = 0;
    for (size_t i = 0; i < SEAL_KEY_LEN; i++)
        any |= raw[i];
    int rc = any ? seal_key_new(raw, cipher, out)
                 : why_set(why, whycap, "the key is all zero bytes, which is no secret");
    OPENSSL_cleanse(raw, sizeof raw);
    if (rc && rc != NHUB_ECONFIG)
        why_set(why, whycap, "cannot set up %s: %s", seal_cipher_name(cipher), nhub_strerror(rc));
    return rc;
}

int seal_key_load(const char *path, seal_cipher_t cipher, seal_key_t **out, char *err,
                  size_t errcap)
{
    char *text = NULL, why[200];
    size_t len = 0;
    *out = NULL;
    int rc = keys_read_secret_file(path, &text, &len, err, errcap);
    if (rc)
        return rc;
    rc = seal_key_parse((const uint8_t *)text, len, cipher, out, why, sizeof why);
    if (rc)
        snprintf(err, errcap, "%s: %s", path, why);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

void seal_key_free(seal_key_t **self)
{
    if (!self || !*self)
        return;
    seal_key_t *k = *self;
    EVP_MAC_CTX_free(k->mac);
    EVP_MAC_free(k->hmac);
    EVP_CIPHER_free(k->aes_gcm);
    EVP_CIPHER_free(k->sm4_ctr);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
    *self = NULL;
}

const uint8_t *seal_key_id(const seal_key_t *self)
{
    return self->id;
}

seal_cipher_t seal_key_cipher(const seal_key_t *self)
{
    return self->cipher;
}

/* ---- sealing and opening ------------------------------------------------------ */

int seal_is_sealed(const void *data, size_t len)
{
    return len > 0 && ((const uint8_t *)data)[0] == SEAL_MARKER;
}

size_t seal_sealed_len(const seal_key_t *self, size_t len)
{
    size_t extra = SEAL_HEADER_LEN + cipher_extra(self->cipher);
    return len > SEAL_PLAIN_MAX ? 0 : len + extra;
}

/* AES-256-GCM of in[len] into ct (same length) and tag, over header and aad. */
static int gcm(const seal_key_t *k, int enc, const uint8_t *nonce, const uint8_t *header,
               const void *aad, size_t aad_len, const void *in, size_t len, uint8_t *out,
               uint8_t *tag)
{
    int n = 0, ok;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    ok = c && EVP_CipherInit_ex2(c, k->aes_gcm, k->aes, nonce, enc, NULL) == 1 &&
         (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) == 1) &&
         EVP_CipherUpdate(c, NULL, &n, header, SEAL_HEADER_LEN) == 1 &&
         (!aad_len || EVP_CipherUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
         (!len || EVP_CipherUpdate(c, out, &n, in, (int)len) == 1) &&
         EVP_CipherFinal_ex(c, out + n, &n) == 1 &&
         (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag) == 1);
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : NHUB_ECRYPTO;
}

/* SM4-CTR of in[len] into out (same length); encryption and decryption alike. */
static int sm4_ctr(const seal_key_t *k, const uint8_t *iv, const void *in, size_t len, uint8_t *out)
{
    int n = 0, ok;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    ok = c && EVP_EncryptInit_ex2(c, k->sm4_ctr, k->sm4, iv, NULL) == 1 &&
         (!len || EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1) &&
         EVP_EncryptFinal_ex(c, out + n, &n) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : NHUB_ECRYPTO;
}

/* HMAC-SM3 over header || len(aad) || aad || iv || ct. */
static int sm3_mac(const seal_key_t *k, const uint8_t *header, const void *aad, size_t aad_len,
                   const uint8_t *iv, const uint8_t *ct, size_t len, uint8_t mac[SM3_MAC_LEN])
{
    uint8_t alen[8];
    size_t n = 0;
    for (int i = 0; i < 8; i++)
        alen[i] = (uint8_t)((uint64_t)aad_len >> (56 - 8 * i));
    EVP_MAC_CTX *m = EVP_MAC_CTX_dup(k->mac);
    int ok = m && EVP_MAC_update(m, header, SEAL_HEADER_LEN) == 1 &&
             EVP_MAC_update(m, alen, sizeof alen) == 1 &&
             (!aad_len || EVP_MAC_update(m, aad, aad_len) == 1) &&
             EVP_MAC_update(m, iv, SM4_IV_LEN) == 1 && (!len || EVP_MAC_update(m, ct, len) == 1) &&
             EVP_MAC_final(m, mac, &n, SM3_MAC_LEN) == 1 && n == SM3_MAC_LEN;
    EVP_MAC_CTX_free(m);
    return ok ? 0 : NHUB_ECRYPTO;
}

int seal_seal(const seal_key_t *self, const void *aad, size_t aad_len, const void *in, size_t len,
              uint8_t *out, size_t cap, size_t *out_len)
{
    size_t need = seal_sealed_len(self, len);
    if (!need || cap < need || aad_len > SEAL_PLAIN_MAX)
        return NHUB_ETOOBIG;
    out[0] = SEAL_MARKER;
    out[1] = (uint8_t)self->cipher;
    memcpy(out + 2, self->id, SEAL_KEY_ID_LEN);
    uint8_t *iv = out + SEAL_HEADER_LEN;
    int rc = NHUB_ECRYPTO;
    if (self->cipher == SEAL_AES_256_GCM) {
        uint8_t *ct = iv + GCM_NONCE_LEN;
        if (RAND_bytes(iv, GCM_NONCE_LEN) == 1)
            rc = gcm(self, 1, iv, out, aad, aad_len, in, len, ct, ct + len);
    } else {
        uint8_t *ct = iv + SM4_IV_LEN;
        if (RAND_bytes(iv, SM4_IV_LEN) == 1 && (rc = sm4_ctr(self, iv, in, len, ct)) == 0)
            rc = sm3_mac(self, out, aad, aad_len, iv, ct, len, ct + len);
    }
    if (rc) {
        OPENSSL_cleanse(out, need);
        return rc;
    }
    *out_len = need;
    return 0;
}

int seal_header(const void *in, size_t len, seal_cipher_t *cipher, uint8_t key_id[SEAL_KEY_ID_LEN])
{
    const uint8_t *p = in;
    if (!seal_is_sealed(in, len) || len < SEAL_HEADER_LEN)
        return NHUB_EMALFORMED;
    size_t extra = cipher_extra(p[1]);
    if (!extra || len - SEAL_HEADER_LEN < extra)
        return NHUB_EMALFORMED;
    if (cipher)
        *cipher = (seal_cipher_t)p[1];
    if (key_id)
        memcpy(key_id, p + 2, SEAL_KEY_ID_LEN);
    return 0;
}

int seal_open(const seal_key_t *self, const void *aad, size_t aad_len, const void *in, size_t len,
              uint8_t *out, size_t cap, size_t *out_len)
{
    seal_cipher_t cipher;
    uint8_t id[SEAL_KEY_ID_LEN];
    int rc = seal_header(in, len, &cipher, id);
    if (rc)
        return rc;
    if (CRYPTO_memcmp(id, self->id, SEAL_KEY_ID_LEN) != 0)
        return NHUB_ENOTFOUND;
    size_t plain = len - SEAL_HEADER_LEN - cipher_extra(cipher);
    if (cap < plain || plain > SEAL_PLAIN_MAX || aad_len > SEAL_PLAIN_MAX)
        return NHUB_ETOOBIG;
    const uint8_t *header = in, *iv = header + SEAL_HEADER_LEN;
    if (cipher == SEAL_AES_256_GCM) {
        const uint8_t *ct = iv + GCM_NONCE_LEN;
        uint8_t tag[GCM_TAG_LEN];
        memcpy(tag, ct + plain, GCM_TAG_LEN);
        rc = gcm(self, 0, iv, header, aad, aad_len, ct, plain, out, tag);
        if (rc) /* GCM decrypts before it checks: nothing unchecked is left */
            OPENSSL_cleanse(out, plain);
    } else {
        const uint8_t *ct = iv + SM4_IV_LEN;
        uint8_t mac[SM3_MAC_LEN];
        rc = sm3_mac(self, header, aad, aad_len, iv, ct, plain, mac);
        if (!rc && CRYPTO_memcmp(mac, ct + plain, SM3_MAC_LEN) != 0)
            rc = NHUB_ECRYPTO;
        if (!rc)
            rc = sm4_ctr(self, iv, ct, plain, out);
    }
    if (rc)
        return rc;
    *out_len = plain;
    return 0;
}
