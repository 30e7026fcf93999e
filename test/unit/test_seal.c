/*
 * test_seal.c: envelopes sealed at rest (proto/seal.h).
 *
 * Both ciphers round-trip; every byte class of a sealed envelope (marker,
 * cipher, key id, nonce, ciphertext, tag) is flipped and must be refused,
 * with the key id flip named as another key; the msg_id bound as
 * additional data must match; short input is refused, never read beyond.
 * The SM4 construction is checked against OpenSSL used directly (SM4-CTR,
 * HKDF-SM3, HMAC-SM3 as seal.h describes them), so the format is the
 * documented one and not only self-consistent. Key files are written to a
 * fresh directory under /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nhub_err.h"
#include "seal.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t KEY_A[SEAL_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const uint8_t KEY_B[SEAL_KEY_LEN] = "another key of thirty-two bytes!";
static const uint8_t MSG_ID[16] = "msg-id-0123456a";
static const char PLAIN[] = "\x0a\x10 envelope bytes with PAYLOAD-MARKER inside \x00\x01\x02";

static const seal_cipher_t CIPHERS[] = {SEAL_AES_256_GCM, SEAL_SM4_CTR_HMAC_SM3};

static seal_key_t *key(const uint8_t raw[SEAL_KEY_LEN], seal_cipher_t c)
{
    seal_key_t *k = NULL;
    assert_int_equal(seal_key_new(raw, c, &k), 0);
    assert_non_null(k);
    return k;
}

/* PLAIN sealed with `k` and MSG_ID into buf; returns its length. */
static size_t sealed(const seal_key_t *k, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    assert_int_equal(seal_seal(k, MSG_ID, 16, PLAIN, sizeof PLAIN, buf, cap, &n), 0);
    assert_int_equal(n, seal_sealed_len(k, sizeof PLAIN));
    return n;
}

static int open_rc(const seal_key_t *k, const uint8_t *aad, const uint8_t *buf, size_t n)
{
    uint8_t out[256];
    size_t len = 0;
    return seal_open(k, aad, aad ? 16 : 0, buf, n, out, sizeof out, &len);
}

static void test_both_ciphers_round_trip_and_hide_the_plaintext(void **state)
{
    (void)state;
    for (size_t c = 0; c < 2; c++) {
        seal_key_t *k = key(KEY_A, CIPHERS[c]);
        uint8_t buf[256], out[256], again[256];
        size_t n = sealed(k, buf, sizeof buf), len = 0;
        assert_true(seal_is_sealed(buf, n));
        assert_int_equal(buf[0], SEAL_MARKER);
        assert_int_equal(buf[1], CIPHERS[c]);
        assert_memory_equal(buf + 2, seal_key_id(k), SEAL_KEY_ID_LEN);
        assert_null(memmem(buf, n, "PAYLOAD-MARKER", 14));
        assert_int_equal(seal_open(k, MSG_ID, 16, buf, n, out, sizeof out, &len), 0);
        assert_int_equal(len, sizeof PLAIN);
        assert_memory_equal(out, PLAIN, sizeof PLAIN);
        /* A fresh nonce each time: the same envelope never seals alike. */
        assert_int_equal(sealed(k, again, sizeof again), n);
        assert_memory_not_equal(buf, again, n);
        seal_key_free(&k);
        assert_null(k);
    }
}

static void test_empty_plaintext_and_empty_aad_round_trip(void **state)
{
    (void)state;
    for (size_t c = 0; c < 2; c++) {
        seal_key_t *k = key(KEY_A, CIPHERS[c]);
        uint8_t buf[128], out[8];
        size_t n = 0, len = 99;
        assert_int_equal(seal_seal(k, NULL, 0, "", 0, buf, sizeof buf, &n), 0);
        assert_int_equal(seal_open(k, NULL, 0, buf, n, out, sizeof out, &len), 0);
        assert_int_equal(len, 0);
        seal_key_free(&k);
    }
}

static void test_every_flipped_byte_is_refused(void **state)
{
    (void)state;
    for (size_t c = 0; c < 2; c++) {
        seal_key_t *k = key(KEY_A, CIPHERS[c]);
        uint8_t buf[256];
        size_t n = sealed(k, buf, sizeof buf);
        for (size_t i = 0; i < n; i++) {
            buf[i] ^= 0x01;
            int rc = open_rc(k, MSG_ID, buf, n);
            if (i <= 1)
                assert_int_equal(rc, NHUB_EMALFORMED); /* no marker; cipher 0 or 3 */
            else if (i >= 2 && i < SEAL_HEADER_LEN)
                assert_int_equal(rc, NHUB_ENOTFOUND); /* the key id: another key */
            else
                assert_int_equal(rc, NHUB_ECRYPTO); /* nonce or iv, ciphertext, tag or mac */
            buf[i] ^= 0x01;
        }
        assert_int_equal(open_rc(k, MSG_ID, buf, n), 0);
        seal_key_free(&k);
    }
}

static void test_cipher_byte_swapped_to_the_other_cipher_is_refused(void **state)
{
    (void)state;
    seal_key_t *k = key(KEY_A, SEAL_AES_256_GCM);
    uint8_t buf[256];
    size_t n = sealed(k, buf, sizeof buf);
    buf[1] = SEAL_SM4_CTR_HMAC_SM3;
    assert_int_equal(open_rc(k, MSG_ID, buf, n), NHUB_ECRYPTO);
    seal_key_free(&k);
}

static void test_another_key_is_named_not_called_damage(void **state)
{
    (void)state;
    for (size_t c = 0; c < 2; c++) {
        seal_key_t *a = key(KEY_A, CIPHERS[c]), *b = key(KEY_B, CIPHERS[c]);
        uint8_t buf[256], id[SEAL_KEY_ID_LEN];
        seal_cipher_t cipher = 0;
        size_t n = sealed(a, buf, sizeof buf);
        assert_int_equal(open_rc(b, MSG_ID, buf, n), NHUB_ENOTFOUND);
        assert_int_equal(seal_header(buf, n, &cipher, id), 0);
        assert_int_equal(cipher, CIPHERS[c]);
        assert_memory_equal(id, seal_key_id(a), SEAL_KEY_ID_LEN);
        assert_memory_not_equal(seal_key_id(a), seal_key_id(b), SEAL_KEY_ID_LEN);
        seal_key_free(&a);
        seal_key_free(&b);
    }
}

static void test_key_id_is_the_head_of_sha256_of_the_key(void **state)
{
    (void)state;
    uint8_t d[32];
    assert_int_equal(EVP_Digest(KEY_A, SEAL_KEY_LEN, d, NULL, EVP_sha256(), NULL), 1);
    seal_key_t *k = key(KEY_A, SEAL_AES_256_GCM);
    assert_memory_equal(seal_key_id(k), d, SEAL_KEY_ID_LEN);
    seal_key_free(&k);
}

static void test_a_key_opens_what_it_sealed_under_the_other_cipher(void **state)
{
    (void)state;
    seal_key_t *aes = key(KEY_A, SEAL_AES_256_GCM), *sm4 = key(KEY_A, SEAL_SM4_CTR_HMAC_SM3);
    uint8_t buf[256];
    size_t n = sealed(aes, buf, sizeof buf);
    assert_int_equal(open_rc(sm4, MSG_ID, buf, n), 0);
    n = sealed(sm4, buf, sizeof buf);
    assert_int_equal(open_rc(aes, MSG_ID, buf, n), 0);
    seal_key_free(&aes);
    seal_key_free(&sm4);
}

static void test_another_msg_id_does_not_open(void **state)
{
    (void)state;
    static const uint8_t other[16] = "msg-id-0123456b";
    for (size_t c = 0; c < 2; c++) {
        seal_key_t *k = key(KEY_A, CIPHERS[c]);
        uint8_t buf[256];
        size_t n = sealed(k, buf, sizeof buf);
        assert_int_equal(open_rc(k, other, buf, n), NHUB_ECRYPTO);
        assert_int_equal(open_rc(k, NULL, buf, n), NHUB_ECRYPTO);
        seal_key_free(&k);
    }
}

static void test_short_and_unsealed_input_is_refused(void **state)
{
    (void)state;
    for (size_t c = 0; c < 2; c++) {
        seal_key_t *k = key(KEY_A, CIPHERS[c]);
        uint8_t buf[256];
        size_t n = sealed(k, buf, sizeof buf);
        size_t min = n - sizeof PLAIN; /* the overhead: an empty plaintext's sealed size */
        for (size_t len = 0; len < min; len++) {
            uint8_t *copy = malloc(len ? len : 1); /* exactly len bytes: ASan sees overreads */
            memcpy(copy, buf, len);
            assert_int_equal(open_rc(k, MSG_ID, copy, len), NHUB_EMALFORMED);
            free(copy);
        }
        /* One plaintext byte short of what was sealed: the tag moves, refused. */
        assert_int_equal(open_rc(k, MSG_ID, buf, n - 1), NHUB_ECRYPTO);
        assert_false(seal_is_sealed(PLAIN, sizeof PLAIN));
        assert_int_equal(open_rc(k, MSG_ID, (const uint8_t *)PLAIN, sizeof PLAIN), NHUB_EMALFORMED);
        seal_key_free(&k);
    }
}

static void test_small_buffers_are_refused(void **state)
{
    (void)state;
    seal_key_t *k = key(KEY_A, SEAL_SM4_CTR_HMAC_SM3);
    uint8_t buf[256], out[8];
    size_t n = 0, need = seal_sealed_len(k, sizeof PLAIN);
    assert_int_equal(seal_seal(k, MSG_ID, 16, PLAIN, sizeof PLAIN, buf, need - 1, &n),
                     NHUB_ETOOBIG);
    n = sealed(k, buf, sizeof buf);
    assert_int_equal(seal_open(k, MSG_ID, 16, buf, n, out, sizeof out, &need), NHUB_ETOOBIG);
    seal_key_free(&k);
    assert_int_equal(seal_key_new(KEY_A, (seal_cipher_t)3, &k), NHUB_EINVAL);
    assert_null(k);
}

/* ---- the SM4 construction, independently ---------------------------------------- */

static void ossl_hkdf_sm3(uint8_t okm[48])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SM3", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)KEY_A, 32),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, "nhub payload seal", 17),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, "sm4-ctr-hmac-sm3 v1", 19),
        OSSL_PARAM_construct_end(),
    };
    assert_int_equal(EVP_KDF_derive(c, okm, 48, p), 1);
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
}

static void test_sm4_format_is_the_documented_one(void **state)
{
    (void)state;
    seal_key_t *k = key(KEY_A, SEAL_SM4_CTR_HMAC_SM3);
    uint8_t buf[256], okm[48], mac[32], plain[256], alen[8] = {0, 0, 0, 0, 0, 0, 0, 16};
    size_t n = sealed(k, buf, sizeof buf), plen = n - SEAL_HEADER_LEN - 16 - 32, mlen = 0;
    ossl_hkdf_sm3(okm);
    /* mac = HMAC-SM3(okm[16..48], header || len(aad) || aad || iv || ct) */
    EVP_MAC *hm = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *m = EVP_MAC_CTX_new(hm);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SM3", 0),
                      OSSL_PARAM_construct_end()};
    assert_int_equal(EVP_MAC_init(m, okm + 16, 32, p), 1);
    EVP_MAC_update(m, buf, SEAL_HEADER_LEN);
    EVP_MAC_update(m, alen, 8);
    EVP_MAC_update(m, MSG_ID, 16);
    EVP_MAC_update(m, buf + SEAL_HEADER_LEN, 16 + plen);
    assert_int_equal(EVP_MAC_final(m, mac, &mlen, sizeof mac), 1);
    assert_memory_equal(mac, buf + n - 32, 32);
    EVP_MAC_CTX_free(m);
    EVP_MAC_free(hm);
    /* plaintext = SM4-CTR(okm[0..16], iv) of the ciphertext */
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0;
    assert_int_equal(EVP_DecryptInit_ex(c, EVP_sm4_ctr(), NULL, okm, buf + SEAL_HEADER_LEN), 1);
    assert_int_equal(EVP_DecryptUpdate(c, plain, &outl, buf + SEAL_HEADER_LEN + 16, (int)plen), 1);
    assert_int_equal((size_t)outl, sizeof PLAIN);
    assert_memory_equal(plain, PLAIN, sizeof PLAIN);
    EVP_CIPHER_CTX_free(c);
    seal_key_free(&k);
}

/* ---- key files --------------------------------------------------------------------- */

static char g_dir[64];

static int dir_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_seal.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int dir_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const void *data, size_t len, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

static void load_ok(const char *path, const uint8_t raw[SEAL_KEY_LEN])
{
    seal_key_t *k = NULL, *want = key(raw, SEAL_AES_256_GCM);
    char err[512] = "";
    assert_int_equal(seal_key_load(path, SEAL_AES_256_GCM, &k, err, sizeof err), 0);
    assert_memory_equal(seal_key_id(k), seal_key_id(want), SEAL_KEY_ID_LEN);
    seal_key_free(&k);
    seal_key_free(&want);
}

static void load_fails(const char *path, int rc, const char *needle)
{
    seal_key_t *k = NULL;
    char err[512] = "";
    assert_int_equal(seal_key_load(path, SEAL_AES_256_GCM, &k, err, sizeof err), rc);
    assert_null(k);
    if (!strstr(err, path) || !strstr(err, needle))
        fail_msg("error \"%s\" should name %s and say \"%s\"", err, path, needle);
}

static void test_key_file_raw_and_hex_forms_load(void **state)
{
    (void)state;
    char hex[66];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02X", KEY_A[i]);
    load_ok(write_file("raw.key", KEY_A, 32, 0600), KEY_A);
    load_ok(write_file("hex.key", hex, 64, 0400), KEY_A);
    hex[64] = '\n';
    load_ok(write_file("hexnl.key", hex, 65, 0600), KEY_A);
}

static void test_bad_key_files_are_named_with_the_problem(void **state)
{
    (void)state;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", KEY_B[i]);
    load_fails(write_file("open.key", KEY_A, 32, 0644), NHUB_ECONFIG, "chmod 600");
    load_fails(write_file("short.key", KEY_A, 31, 0600), NHUB_ECONFIG, "31 bytes");
    load_fails(write_file("long.key", hex, 63, 0600), NHUB_ECONFIG, "63 bytes");
    hex[10] = 'g';
    load_fails(write_file("nothex.key", hex, 64, 0600), NHUB_ECONFIG, "character 11");
    uint8_t zero[32] = {0};
    load_fails(write_file("zero.key", zero, 32, 0600), NHUB_ECONFIG, "all zero");
    load_fails(write_file("empty.key", "", 0, 0600), NHUB_ECONFIG, "0 bytes");
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.key", g_dir);
    load_fails(missing, NHUB_EIO, "cannot open");
    load_fails(g_dir, NHUB_ECONFIG, "not a regular file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_ciphers_round_trip_and_hide_the_plaintext),
        cmocka_unit_test(test_empty_plaintext_and_empty_aad_round_trip),
        cmocka_unit_test(test_every_flipped_byte_is_refused),
        cmocka_unit_test(test_cipher_byte_swapped_to_the_other_cipher_is_refused),
        cmocka_unit_test(test_another_key_is_named_not_called_damage),
        cmocka_unit_test(test_key_id_is_the_head_of_sha256_of_the_key),
        cmocka_unit_test(test_a_key_opens_what_it_sealed_under_the_other_cipher),
        cmocka_unit_test(test_another_msg_id_does_not_open),
        cmocka_unit_test(test_short_and_unsealed_input_is_refused),
        cmocka_unit_test(test_small_buffers_are_refused),
        cmocka_unit_test(test_sm4_format_is_the_documented_one),
        cmocka_unit_test(test_key_file_raw_and_hex_forms_load),
        cmocka_unit_test(test_bad_key_files_are_named_with_the_problem),
    };
    return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
