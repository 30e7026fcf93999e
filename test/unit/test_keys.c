/*
 * test_keys.c: CURVE and signing keys (proto/keys.h).
 *
 * Signatures are checked for both algorithms against tampering, other keys
 * and malformed input (which must be refused, never crash; the ASan build
 * checks "never crash"). SM2 is checked against OpenSSL used directly, in
 * both directions, so the distinguishing ID really is the GM/T 0009 one and
 * not OpenSSL 3.0's empty default. Key files are written to and read from a
 * fresh directory under /tmp per test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conf.h"
#include "keys.h"
#include "nhub_err.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/x509.h>
#include <zmq.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MSG[] = "nhub envelope bytes \x00\x01\x02 as sent";

/* ---- helpers ------------------------------------------------------------------ */

static keys_file_t *gen(keys_alg_t alg)
{
    keys_file_t *k = NULL;
    assert_int_equal(keys_generate("110000", alg, INT64_C(1795597200000), &k), 0);
    assert_non_null(k);
    return k;
}

static keys_verifier_t *verifier_of(const keys_file_t *k)
{
    char err[256];
    keys_verifier_t *v = NULL;
    assert_int_equal(keys_verifier_parse(k->sign_public, &v, err, sizeof err), 0);
    assert_non_null(v);
    return v;
}

static int parse_err(const char *text, char *err, size_t errcap)
{
    keys_verifier_t *v = (keys_verifier_t *)&v; /* must be set to NULL on failure */
    int rc = keys_verifier_parse(text, &v, err, errcap);
    if (rc != 0)
        assert_null(v);
    keys_verifier_free(&v);
    return rc;
}

/* "alg:" + base64 of `der` into text. */
static void key_text(const char *alg, const unsigned char *der, int len, char *text, size_t cap)
{
    size_t pre = (size_t)snprintf(text, cap, "%s:", alg);
    assert_true(pre + (size_t)(len + 2) / 3 * 4 + 1 <= cap);
    EVP_EncodeBlock((unsigned char *)text + pre, der, len);
}

/* The public text of an OpenSSL key, under the prefix `alg`. */
static void pkey_public_text(EVP_PKEY *pk, const char *alg, char *text, size_t cap)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pk, &der);
    assert_true(n > 0);
    key_text(alg, der, n, text, cap);
    OPENSSL_free(der);
}

/*
 * Set up `m` as OpenSSL's own SM2-with-SM3 signer or verifier for `pk` with
 * distinguishing ID `id` (NULL: none, OpenSSL's empty default), the way that
 * works on every OpenSSL 3.0.x: the ID on a key context handed to `m`.
 * Returns that context, to free after `m`.
 */
static EVP_PKEY_CTX *openssl_sm2_init(EVP_MD_CTX *m, EVP_PKEY *pk, const char *id, bool verify)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    assert_non_null(pctx);
    if (id)
        assert_int_equal(EVP_PKEY_CTX_set1_id(pctx, id, strlen(id)), 1);
    EVP_MD_CTX_set_pkey_ctx(m, pctx);
    if (verify)
        assert_int_equal(EVP_DigestVerifyInit_ex(m, NULL, "SM3", NULL, NULL, pk, NULL), 1);
    else
        assert_int_equal(EVP_DigestSignInit_ex(m, NULL, "SM3", NULL, NULL, pk, NULL), 1);
    return pctx;
}

static size_t openssl_sm2_sign(EVP_PKEY *pk, const char *id, unsigned char *sig, size_t cap)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_non_null(m);
    EVP_PKEY_CTX *pctx = openssl_sm2_init(m, pk, id, false);
    size_t n = cap;
    assert_int_equal(EVP_DigestSign(m, sig, &n, (const unsigned char *)MSG, sizeof MSG), 1);
    EVP_MD_CTX_free(m);
    EVP_PKEY_CTX_free(pctx);
    return n;
}

/* Verify with OpenSSL directly: 1 valid, 0 not. */
static int openssl_sm2_verify(EVP_PKEY *pk, const char *id, const uint8_t *sig, size_t siglen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_non_null(m);
    EVP_PKEY_CTX *pctx = openssl_sm2_init(m, pk, id, true);
    int rc = EVP_DigestVerify(m, sig, siglen, (const unsigned char *)MSG, sizeof MSG);
    EVP_MD_CTX_free(m);
    EVP_PKEY_CTX_free(pctx);
    return rc == 1;
}

static bool is_hex32(const char *s)
{
    if (strlen(s) != KEYS_FPR_LEN)
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* ---- temporary directory --------------------------------------------------------- */

typedef struct tmp {
    char dir[64];
    char key[128];
    char pub[128];
} tmp_t;

static int tmp_setup(void **state)
{
    tmp_t *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/test_keys.XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->key, sizeof t->key, "%s/110000.key", t->dir);
    snprintf(t->pub, sizeof t->pub, "%s/110000.pub", t->dir);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    tmp_t *t = *state;
    DIR *d = opendir(t->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char p[400];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", t->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(t->dir);
    free(t);
    return 0;
}

static size_t dir_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 8192);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 8191, f);
    assert_true(n < 8191);
    fclose(f);
    return buf;
}

static void spew(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Replace the value of top-level `key` in the key file at `path` by `value`. */
static void set_value(const char *path, const char *key, const char *value)
{
    char *text = slurp(path);
    char out[8192];
    size_t o = 0;
    size_t klen = strlen(key);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            o += (size_t)snprintf(out + o, sizeof out - o, "%s: \"%s\"\n", key, value);
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "%s\n", line);
        assert_true(o < sizeof out);
    }
    spew(path, out);
    free(text);
}

/* ---- the public file, read as the hub configuration will read it ---------------- */

typedef struct pub_entry {
    char curve[KEYS_Z85_LEN + 1];
    char sign[KEYS_PUBLIC_TEXT_MAX + 1];
} pub_entry_t;

typedef struct pub_doc {
    pub_entry_t keys[4];
    size_t count;
} pub_doc_t;

static const conf_key_t pub_entry_schema[] = {
    CONF_KEY_STRING(pub_entry_t, curve, "curve", CONF_REQUIRED),
    CONF_KEY_STRING(pub_entry_t, sign, "sign", CONF_REQUIRED),
    CONF_KEY_END,
};

static const conf_key_t pub_doc_schema[] = {
    CONF_KEY_SEQ_OF_MAPS(pub_doc_t, keys, count, "keys", CONF_REQUIRED, pub_entry_schema, 1, NULL),
    CONF_KEY_END,
};

/* Paste the public file under "keys:", indented, and load it. */
static void load_pub(const char *path, pub_doc_t *doc)
{
    char *text = slurp(path);
    char wrapped[8192];
    size_t o = (size_t)snprintf(wrapped, sizeof wrapped, "keys:\n");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        o += (size_t)snprintf(wrapped + o, sizeof wrapped - o, "  %s\n", line);
    assert_true(o < sizeof wrapped);
    char err[256];
    memset(doc, 0, sizeof *doc);
    int rc = conf_load_string(path, wrapped, o, pub_doc_schema, doc, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    free(text);
}

/* ---- sign and verify ------------------------------------------------------------ */

static void round_trip(keys_alg_t alg, size_t max_siglen)
{
    keys_file_t *k = gen(alg);
    keys_verifier_t *v = verifier_of(k);
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;

    assert_int_equal(keys_sign(k->signer, MSG, sizeof MSG, sig, &siglen), 0);
    assert_true(siglen > 0 && siglen <= max_siglen);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, siglen), 0);
    /* The empty payload is a payload too. */
    assert_int_equal(keys_sign(k->signer, "", 0, sig, &siglen), 0);
    assert_int_equal(keys_verify(v, "", 0, sig, siglen), 0);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, siglen), NHUB_EREFUSED);
    assert_int_equal(keys_verifier_alg(v), alg);
    assert_string_equal(keys_verifier_id(v), k->sign_id);
    keys_verifier_free(&v);
    assert_null(v);
    keys_free(&k);
    assert_null(k);
}

static void test_ed25519_sign_then_verify_round_trips(void **state)
{
    (void)state;
    round_trip(KEYS_ED25519, 64);
}

static void test_sm2_sign_then_verify_round_trips(void **state)
{
    (void)state;
    round_trip(KEYS_SM2, 72);
}

static void tampered(keys_alg_t alg)
{
    keys_file_t *k = gen(alg);
    keys_verifier_t *v = verifier_of(k);
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    char data[sizeof MSG];

    assert_int_equal(keys_sign(k->signer, MSG, sizeof MSG, sig, &siglen), 0);
    for (size_t i = 0; i < sizeof MSG; i += 7) {
        memcpy(data, MSG, sizeof MSG);
        data[i] ^= 0x01;
        assert_int_equal(keys_verify(v, data, sizeof data, sig, siglen), NHUB_EREFUSED);
    }
    /* One byte fewer or more is another payload. */
    assert_int_equal(keys_verify(v, MSG, sizeof MSG - 1, sig, siglen), NHUB_EREFUSED);
    for (size_t i = 0; i < siglen; i++) {
        uint8_t bad[KEYS_SIG_MAX];
        memcpy(bad, sig, siglen);
        bad[i] ^= 0x80;
        assert_int_equal(keys_verify(v, MSG, sizeof MSG, bad, siglen), NHUB_EREFUSED);
    }
    keys_verifier_free(&v);
    keys_free(&k);
}

static void test_tampered_payload_or_signature_is_refused(void **state)
{
    (void)state;
    tampered(KEYS_ED25519);
    tampered(KEYS_SM2);
}

static void test_signature_by_another_key_is_refused(void **state)
{
    (void)state;
    for (keys_alg_t alg = KEYS_ED25519; alg <= KEYS_SM2; alg++) {
        keys_file_t *a = gen(alg);
        keys_file_t *b = gen(alg);
        keys_verifier_t *vb = verifier_of(b);
        uint8_t sig[KEYS_SIG_MAX];
        size_t siglen = 0;
        assert_int_equal(keys_sign(a->signer, MSG, sizeof MSG, sig, &siglen), 0);
        assert_int_equal(keys_verify(vb, MSG, sizeof MSG, sig, siglen), NHUB_EREFUSED);
        assert_string_not_equal(a->sign_id, b->sign_id);
        keys_verifier_free(&vb);
        keys_free(&a);
        keys_free(&b);
    }
    /* An Ed25519 signature checked by an SM2 key and the reverse. */
    keys_file_t *ed = gen(KEYS_ED25519);
    keys_file_t *sm = gen(KEYS_SM2);
    keys_verifier_t *ved = verifier_of(ed);
    keys_verifier_t *vsm = verifier_of(sm);
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(keys_sign(ed->signer, MSG, sizeof MSG, sig, &siglen), 0);
    assert_int_equal(keys_verify(vsm, MSG, sizeof MSG, sig, siglen), NHUB_EREFUSED);
    assert_int_equal(keys_sign(sm->signer, MSG, sizeof MSG, sig, &siglen), 0);
    assert_int_equal(keys_verify(ved, MSG, sizeof MSG, sig, siglen), NHUB_EREFUSED);
    keys_verifier_free(&ved);
    keys_verifier_free(&vsm);
    keys_free(&ed);
    keys_free(&sm);
}

static void malformed(keys_alg_t alg)
{
    keys_file_t *k = gen(alg);
    keys_verifier_t *v = verifier_of(k);
    uint8_t sig[KEYS_SIG_MAX * 2];
    size_t siglen = 0;

    assert_int_equal(keys_sign(k->signer, MSG, sizeof MSG, sig, &siglen), 0);
    for (size_t n = 0; n < siglen; n++)
        assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, n), NHUB_EREFUSED);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, NULL, siglen), NHUB_EREFUSED);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, sizeof sig), NHUB_EREFUSED);
    /* A valid signature with a byte appended. */
    sig[siglen] = 0;
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, siglen + 1), NHUB_EREFUSED);

    srand(7);
    for (int i = 0; i < 300; i++) {
        size_t n = 1 + (size_t)rand() % KEYS_SIG_MAX;
        for (size_t j = 0; j < n; j++)
            sig[j] = (uint8_t)rand();
        if (i % 3 == 0 && n > 2) { /* a DER SEQUENCE header, so SM2 parses further */
            sig[0] = 0x30;
            sig[1] = (uint8_t)(n - 2);
        }
        assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, n), NHUB_EREFUSED);
    }
    memset(sig, 0, sizeof sig);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, alg == KEYS_ED25519 ? 64 : 70),
                     NHUB_EREFUSED);
    keys_verifier_free(&v);
    keys_free(&k);
}

static void test_truncated_or_garbage_signature_is_refused(void **state)
{
    (void)state;
    malformed(KEYS_ED25519);
    malformed(KEYS_SM2);
}

static void test_sm2_signature_by_openssl_with_standard_id_verifies(void **state)
{
    (void)state;
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    assert_non_null(pk);
    char text[KEYS_PUBLIC_TEXT_MAX + 1];
    pkey_public_text(pk, "sm2", text, sizeof text);
    char err[256];
    keys_verifier_t *v = NULL;
    assert_int_equal(keys_verifier_parse(text, &v, err, sizeof err), 0);
    assert_int_equal(keys_verifier_alg(v), KEYS_SM2);

    unsigned char sig[KEYS_SIG_MAX];
    size_t n = openssl_sm2_sign(pk, "1234567812345678", sig, sizeof sig);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, n), 0);
    /* OpenSSL 3.0 with no ID uses an empty one, which is not GM/T 0009's. */
    n = openssl_sm2_sign(pk, NULL, sig, sizeof sig);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, n), NHUB_EREFUSED);
    n = openssl_sm2_sign(pk, "another-id", sig, sizeof sig);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, n), NHUB_EREFUSED);

    keys_verifier_free(&v);
    EVP_PKEY_free(pk);
}

static void test_sm2_signature_by_keys_verifies_in_openssl_with_standard_id_only(void **state)
{
    (void)state;
    keys_file_t *k = gen(KEYS_SM2);
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(keys_sign(k->signer, MSG, sizeof MSG, sig, &siglen), 0);

    unsigned char der[256];
    int n = EVP_DecodeBlock(der, (const unsigned char *)k->sign_public + 4,
                            (int)strlen(k->sign_public + 4));
    assert_true(n > 0);
    const unsigned char *p = der;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, n); /* EVP_DecodeBlock's padding zeros are ignored */
    assert_non_null(pk);
    assert_true(EVP_PKEY_is_a(pk, "SM2"));
    assert_int_equal(openssl_sm2_verify(pk, KEYS_SM2_ID, sig, siglen), 1);
    assert_int_equal(openssl_sm2_verify(pk, NULL, sig, siglen), 0);
    EVP_PKEY_free(pk);
    keys_free(&k);
}

/* ---- verifier text -------------------------------------------------------------- */

static void test_verifier_parse_errors_say_what_is_wrong(void **state)
{
    (void)state;
    char err[256];

    assert_int_equal(parse_err("rsa:AAAA", err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "unknown algorithm 'rsa'"));
    assert_int_equal(parse_err("ED25519:AAAA", err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "unknown algorithm"));
    assert_int_equal(parse_err("AAAA", err, sizeof err), NHUB_EINVAL);
    assert_int_equal(parse_err("", err, sizeof err), NHUB_EINVAL);
    assert_int_equal(parse_err(NULL, err, sizeof err), NHUB_EINVAL);
    assert_int_equal(parse_err("averyveryverylongalgorithmname:AAAA", err, sizeof err),
                     NHUB_EINVAL);
    assert_int_equal(parse_err("\x01\x02:AAAA", err, sizeof err), NHUB_EINVAL);
    assert_null(strchr(err, '\x01'));

    const char *not_b64[] = {"ed25519:",     "ed25519:AAA",  "ed25519:AA=A",
                             "ed25519:A===", "ed25519:!!!!", "ed25519:AA AA",
                             "sm2:AAAA\n",   "ed25519:====", NULL};
    for (int i = 0; not_b64[i]; i++) {
        assert_int_equal(parse_err(not_b64[i], err, sizeof err), NHUB_EINVAL);
        assert_string_equal(err, "not base64");
    }
    assert_int_equal(parse_err("ed25519:AAAAAAAA", err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "not a DER"));

    char text[512];
    memset(text, 'A', sizeof text);
    memcpy(text, "sm2:", 4);
    text[KEYS_PUBLIC_TEXT_MAX + 1] = '\0';
    assert_int_equal(parse_err(text, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, "too long"));

    /* A key of the wrong type behind each prefix. */
    keys_file_t *sm = gen(KEYS_SM2);
    keys_file_t *ed = gen(KEYS_ED25519);
    snprintf(text, sizeof text, "ed25519:%s", sm->sign_public + strlen("sm2:"));
    assert_int_equal(parse_err(text, err, sizeof err), NHUB_EINVAL);
    assert_string_equal(err, "not an Ed25519 key");
    snprintf(text, sizeof text, "sm2:%s", ed->sign_public + strlen("ed25519:"));
    assert_int_equal(parse_err(text, err, sizeof err), NHUB_EINVAL);
    assert_string_equal(err, "not an SM2 key");
    keys_free(&sm);
    keys_free(&ed);

    /* An ECDSA P-256 key is an EC key, not SM2, though its SPKI looks alike. */
    EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(p256);
    pkey_public_text(p256, "sm2", text, sizeof text);
    assert_int_equal(parse_err(text, err, sizeof err), NHUB_EINVAL);
    assert_string_equal(err, "not an SM2 key");

    /* Trailing bytes after a valid SubjectPublicKeyInfo. */
    unsigned char *der = NULL;
    EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    int n = i2d_PUBKEY(e, &der);
    unsigned char longer[128];
    memcpy(longer, der, (size_t)n);
    memset(longer + n, 0, 3);
    key_text("ed25519", longer, n + 3, text, sizeof text);
    assert_int_equal(parse_err(text, err, sizeof err), NHUB_EINVAL);
    key_text("ed25519", longer, n, text, sizeof text);
    assert_int_equal(parse_err(text, err, sizeof err), 0);
    OPENSSL_free(der);
    EVP_PKEY_free(e);
    EVP_PKEY_free(p256);

    /* No error buffer is fine. */
    assert_int_equal(parse_err("rsa:AAAA", NULL, 0), NHUB_EINVAL);
}

static void test_every_truncation_of_public_text_fails_cleanly(void **state)
{
    (void)state;
    for (keys_alg_t alg = KEYS_ED25519; alg <= KEYS_SM2; alg++) {
        keys_file_t *k = gen(alg);
        char text[KEYS_PUBLIC_TEXT_MAX + 1];
        size_t len = strlen(k->sign_public);
        for (size_t n = 0; n < len; n++) {
            char err[256];
            memcpy(text, k->sign_public, n);
            text[n] = '\0';
            assert_int_not_equal(parse_err(text, err, sizeof err), 0);
        }
        keys_free(&k);
    }
}

/* ---- generate, write, load -------------------------------------------------------- */

static void test_generate_fills_every_field(void **state)
{
    (void)state;
    keys_file_t *k = gen(KEYS_SM2);
    assert_string_equal(k->region, "110000");
    assert_string_equal(k->created, "2026-11-25T09:00:00Z");
    assert_true(keys_curve_valid(k->curve_public));
    assert_true(keys_curve_valid(k->curve_secret));
    assert_string_not_equal(k->curve_public, k->curve_secret);
    assert_true(is_hex32(k->curve_fpr));
    assert_true(is_hex32(k->sign_id));
    assert_int_equal(strncmp(k->sign_public, "sm2:", 4), 0);
    assert_int_equal(k->alg, KEYS_SM2);
    assert_non_null(k->signer);
    char fpr[KEYS_FPR_LEN + 1];
    assert_int_equal(keys_curve_fpr_z85(k->curve_public, fpr), 0);
    assert_string_equal(fpr, k->curve_fpr);
    keys_free(&k);
}

static void test_generate_refuses_bad_region_alg_or_time(void **state)
{
    (void)state;
    keys_file_t *k = (keys_file_t *)&k;
    const char *bad[] = {"11000", "1100000", "11000a", "", " 11000", "１１００００", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(keys_generate(bad[i], KEYS_ED25519, 0, &k), NHUB_EINVAL);
        assert_null(k);
    }
    assert_int_equal(keys_generate(NULL, KEYS_ED25519, 0, &k), NHUB_EINVAL);
    assert_int_equal(keys_generate("110000", (keys_alg_t)0, 0, &k), NHUB_EINVAL);
    assert_int_equal(keys_generate("110000", (keys_alg_t)3, 0, &k), NHUB_EINVAL);
    assert_int_equal(keys_generate("110000", KEYS_ED25519, -1, &k), NHUB_EINVAL);
    assert_int_equal(keys_generate("110000", KEYS_ED25519, 0, NULL), NHUB_EINVAL);
    assert_null(k);
    keys_free(&k);
    keys_free(NULL);
}

static void write_load(tmp_t *t, keys_alg_t alg)
{
    char err[512];
    keys_file_t *k = gen(alg);
    assert_int_equal(keys_write(k, t->key, t->pub, 0, err, sizeof err), 0);

    struct stat st;
    assert_int_equal(stat(t->key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(t->pub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    keys_file_t *l = NULL;
    int rc = keys_load(t->key, &l, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_string_equal(l->region, k->region);
    assert_string_equal(l->created, k->created);
    assert_string_equal(l->curve_public, k->curve_public);
    assert_string_equal(l->curve_secret, k->curve_secret);
    assert_string_equal(l->sign_public, k->sign_public);
    assert_string_equal(l->curve_fpr, k->curve_fpr);
    assert_string_equal(l->sign_id, k->sign_id);
    assert_int_equal(l->alg, alg);

    /* The loaded signer is the generated one. */
    keys_verifier_t *v = verifier_of(k);
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(keys_sign(l->signer, MSG, sizeof MSG, sig, &siglen), 0);
    assert_int_equal(keys_verify(v, MSG, sizeof MSG, sig, siglen), 0);

    /* The public file is a `keys:` entry holding the generated public keys. */
    pub_doc_t doc;
    load_pub(t->pub, &doc);
    assert_int_equal(doc.count, 1);
    assert_string_equal(doc.keys[0].curve, k->curve_public);
    assert_string_equal(doc.keys[0].sign, k->sign_public);
    char *pub = slurp(t->pub);
    assert_non_null(strstr(pub, k->curve_fpr));
    assert_non_null(strstr(pub, k->sign_id));
    assert_null(strstr(pub, k->curve_secret));
    assert_null(strstr(pub, "secret"));
    free(pub);
    char *sec = slurp(t->key);
    assert_non_null(strstr(sec, "0600"));
    free(sec);

    keys_verifier_free(&v);
    keys_free(&l);
    keys_free(&k);
}

static void test_write_then_load_round_trips_ed25519(void **state)
{
    write_load(*state, KEYS_ED25519);
}

static void test_write_then_load_round_trips_sm2(void **state)
{
    write_load(*state, KEYS_SM2);
}

static void test_write_refuses_to_overwrite_without_force(void **state)
{
    tmp_t *t = *state;
    char err[512];
    keys_file_t *a = gen(KEYS_ED25519);
    keys_file_t *b = gen(KEYS_ED25519);
    assert_int_equal(keys_write(a, t->key, t->pub, 0, err, sizeof err), 0);
    assert_int_equal(keys_write(b, t->key, t->pub, 0, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, t->key));
    assert_non_null(strstr(err, "exists"));

    /* Only the public file there: still refused, and no secret file left behind. */
    unlink(t->key);
    assert_int_equal(keys_write(b, t->key, t->pub, 0, err, sizeof err), NHUB_EINVAL);
    assert_non_null(strstr(err, t->pub));
    assert_int_equal(access(t->key, F_OK), -1);
    assert_int_equal(dir_entries(t->dir), 1);

    /* The same path for both is a mistake. */
    assert_int_equal(keys_write(b, t->key, t->key, 1, err, sizeof err), NHUB_EINVAL);
    keys_free(&a);
    keys_free(&b);
}

static void test_write_with_force_replaces_both_files(void **state)
{
    tmp_t *t = *state;
    char err[512];
    keys_file_t *a = gen(KEYS_ED25519);
    keys_file_t *b = gen(KEYS_SM2);
    assert_int_equal(keys_write(a, t->key, t->pub, 0, err, sizeof err), 0);
    /* A secret file made loose by hand becomes 0600 again when replaced. */
    chmod(t->key, 0640);
    assert_int_equal(keys_write(b, t->key, t->pub, 1, err, sizeof err), 0);
    assert_int_equal(dir_entries(t->dir), 2); /* no temporary file left */

    struct stat st;
    assert_int_equal(stat(t->key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(t->pub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    keys_file_t *l = NULL;
    assert_int_equal(keys_load(t->key, &l, err, sizeof err), 0);
    assert_string_equal(l->sign_id, b->sign_id);
    assert_string_equal(l->curve_public, b->curve_public);
    pub_doc_t doc;
    load_pub(t->pub, &doc);
    assert_string_equal(doc.keys[0].sign, b->sign_public);

    /* Force into a fresh place works too. */
    unlink(t->key);
    unlink(t->pub);
    assert_int_equal(keys_write(a, t->key, t->pub, 1, err, sizeof err), 0);
    assert_int_equal(stat(t->key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    keys_free(&l);
    keys_free(&a);
    keys_free(&b);
}

static void test_write_into_missing_directory_is_eio(void **state)
{
    tmp_t *t = *state;
    char err[512], key[200], pub[200];
    snprintf(key, sizeof key, "%s/missing/x.key", t->dir);
    snprintf(pub, sizeof pub, "%s/missing/x.pub", t->dir);
    keys_file_t *k = gen(KEYS_ED25519);
    assert_int_equal(keys_write(k, key, pub, 0, err, sizeof err), NHUB_EIO);
    assert_non_null(strstr(err, key));
    assert_int_equal(keys_write(k, key, pub, 1, err, sizeof err), NHUB_EIO);
    assert_non_null(strstr(err, key));
    assert_int_equal(keys_write(NULL, key, pub, 1, err, sizeof err), NHUB_EINVAL);
    keys_free(&k);
}

static void test_load_refuses_secret_file_readable_by_others(void **state)
{
    tmp_t *t = *state;
    char err[512];
    keys_file_t *k = gen(KEYS_ED25519);
    assert_int_equal(keys_write(k, t->key, t->pub, 0, err, sizeof err), 0);
    const mode_t loose[] = {0644, 0640, 0604, 0660, 0601};
    for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
        assert_int_equal(chmod(t->key, loose[i]), 0);
        keys_file_t *l = (keys_file_t *)&l;
        assert_int_equal(keys_load(t->key, &l, err, sizeof err), NHUB_ECONFIG);
        assert_null(l);
        assert_non_null(strstr(err, t->key));
        assert_non_null(strstr(err, "chmod 600"));
    }
    assert_int_equal(chmod(t->key, 0400), 0);
    keys_file_t *l = NULL;
    assert_int_equal(keys_load(t->key, &l, err, sizeof err), 0);
    keys_free(&l);
    keys_free(&k);
}

/* Load must fail with ECONFIG, naming the file and `what`, quoting no secret. */
static void expect_load_error(const char *path, const keys_file_t *k, const char *what)
{
    char err[512];
    keys_file_t *l = NULL;
    assert_int_equal(keys_load(path, &l, err, sizeof err), NHUB_ECONFIG);
    assert_null(l);
    if (!strstr(err, path) || !strstr(err, what))
        fail_msg("expected \"%s\" in: %s", what, err);
    assert_null(strstr(err, k->curve_secret));
    char *text = slurp(path);
    char *sec = strstr(text, "sign_secret: \"");
    if (sec) {
        char *b64 = strchr(sec, ':') + 3; /* ": \"" */
        b64 = strchr(b64, ':') + 1;       /* after "alg:" */
        char frag[17];
        snprintf(frag, sizeof frag, "%s", b64);
        assert_null(strstr(err, frag));
    }
    free(text);
}

static void test_load_refuses_mismatched_or_malformed_keys(void **state)
{
    tmp_t *t = *state;
    char err[512];
    keys_file_t *k = gen(KEYS_ED25519);
    keys_file_t *other = gen(KEYS_ED25519);
    keys_file_t *sm = gen(KEYS_SM2);
    assert_int_equal(keys_write(k, t->key, t->pub, 0, err, sizeof err), 0);
    char *good = slurp(t->key);

    set_value(t->key, "curve_public", other->curve_public);
    expect_load_error(t->key, k, "\"curve_public\": does not belong to \"curve_secret\"");
    spew(t->key, good);
    set_value(t->key, "curve_secret", "0123456789");
    expect_load_error(t->key, k, "\"curve_secret\": not a Z85 CURVE key");
    spew(t->key, good);
    set_value(t->key, "curve_public", "~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~");
    expect_load_error(t->key, k, "\"curve_public\": not a Z85 CURVE key");
    spew(t->key, good);
    set_value(t->key, "sign_public", other->sign_public);
    expect_load_error(t->key, k, "\"sign_public\": does not belong to \"sign_secret\"");
    spew(t->key, good);
    set_value(t->key, "sign_public", sm->sign_public);
    expect_load_error(t->key, k, "\"sign_secret\": algorithm ed25519 differs");
    spew(t->key, good);
    set_value(t->key, "sign_public", "rsa:AAAA");
    expect_load_error(t->key, k, "\"sign_public\": unknown algorithm 'rsa'");
    spew(t->key, good);
    set_value(t->key, "sign_secret", "ed25519:AAAA");
    expect_load_error(t->key, k, "\"sign_secret\": not a DER private key");
    spew(t->key, good);
    set_value(t->key, "sign_secret", "ed25519:@@@@");
    expect_load_error(t->key, k, "\"sign_secret\": not base64");
    spew(t->key, good);
    set_value(t->key, "region", "11000");
    expect_load_error(t->key, k, "\"region\"");
    spew(t->key, good);
    set_value(t->key, "created", "yesterday");
    expect_load_error(t->key, k, "\"created\"");
    spew(t->key, good);

    /* An unknown key and a missing one, through the conf.h rules. */
    char text[8192];
    snprintf(text, sizeof text, "%scomment: \"hello\"\n", good);
    spew(t->key, text);
    expect_load_error(t->key, k, "unknown key \"comment\"");
    snprintf(text, sizeof text, "%s", good);
    *strstr(text, "sign_secret:") = '\0';
    spew(t->key, text);
    expect_load_error(t->key, k, "sign_secret");
    spew(t->key, "");
    expect_load_error(t->key, k, t->key);
    spew(t->key, good);

    keys_file_t *l = NULL;
    assert_int_equal(keys_load(t->key, &l, err, sizeof err), 0);
    keys_free(&l);

    /* A secret file with an SM2 secret key for an SM2 public key that is not its own. */
    keys_file_t *sm_other = gen(KEYS_SM2);
    assert_int_equal(keys_write(sm, t->key, t->pub, 1, err, sizeof err), 0);
    set_value(t->key, "sign_public", sm_other->sign_public);
    expect_load_error(t->key, sm, "does not belong");

    char missing[200];
    snprintf(missing, sizeof missing, "%s/nope.key", t->dir);
    assert_int_equal(keys_load(missing, &l, err, sizeof err), NHUB_EIO);
    assert_non_null(strstr(err, missing));
    assert_int_equal(keys_load(t->dir, &l, err, sizeof err), NHUB_ECONFIG);
    assert_int_equal(keys_load(NULL, &l, err, sizeof err), NHUB_EINVAL);

    free(good);
    keys_free(&sm_other);
    keys_free(&sm);
    keys_free(&other);
    keys_free(&k);
}

static void test_key_ids_are_hex_and_stable_across_write_and_load(void **state)
{
    tmp_t *t = *state;
    char err[512];
    for (keys_alg_t alg = KEYS_ED25519; alg <= KEYS_SM2; alg++) {
        keys_file_t *k = gen(alg);
        assert_true(is_hex32(k->sign_id));
        assert_true(is_hex32(k->curve_fpr));
        assert_int_equal(keys_write(k, t->key, t->pub, 1, err, sizeof err), 0);
        for (int i = 0; i < 2; i++) {
            keys_file_t *l = NULL;
            assert_int_equal(keys_load(t->key, &l, err, sizeof err), 0);
            assert_string_equal(l->sign_id, k->sign_id);
            assert_string_equal(l->curve_fpr, k->curve_fpr);
            keys_verifier_t *v = verifier_of(l);
            assert_string_equal(keys_verifier_id(v), k->sign_id);
            keys_verifier_free(&v);
            keys_free(&l);
        }
        keys_free(&k);
    }
}

/* ---- CURVE keys and names ---------------------------------------------------------- */

static void test_curve_valid_and_fingerprints(void **state)
{
    (void)state;
    char pub[41], sec[41], fpr[KEYS_FPR_LEN + 1], fpr2[KEYS_FPR_LEN + 1];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_true(keys_curve_valid(pub));
    assert_true(keys_curve_valid(sec));
    assert_int_equal(keys_curve_fpr_z85(pub, fpr), 0);
    assert_true(is_hex32(fpr));
    uint8_t raw[32];
    assert_non_null(zmq_z85_decode(raw, pub));
    keys_curve_fpr(raw, fpr2);
    assert_string_equal(fpr, fpr2);

    /* SHA-256 of 32 zero bytes starts 66687aadf862bd776c8fc18b8e9f8e20. */
    memset(raw, 0, sizeof raw);
    keys_curve_fpr(raw, fpr);
    assert_string_equal(fpr, "66687aadf862bd776c8fc18b8e9f8e20");
    char z[41];
    assert_non_null(zmq_z85_encode(z, raw, 32));
    assert_int_equal(keys_curve_fpr_z85(z, fpr2), 0);
    assert_string_equal(fpr2, fpr);

    char bad[64];
    snprintf(bad, sizeof bad, "%.39s", pub);
    assert_false(keys_curve_valid(bad));
    assert_int_equal(keys_curve_fpr_z85(bad, fpr), NHUB_EINVAL);
    snprintf(bad, sizeof bad, "%sA", pub);
    assert_false(keys_curve_valid(bad));
    snprintf(bad, sizeof bad, "%s", pub);
    bad[10] = '"'; /* not in the Z85 alphabet */
    assert_false(keys_curve_valid(bad));
    bad[10] = ' ';
    assert_false(keys_curve_valid(bad));
    bad[10] = '~';
    assert_false(keys_curve_valid(bad));
    assert_false(keys_curve_valid(""));
    assert_false(keys_curve_valid(NULL));
    assert_int_equal(keys_curve_fpr_z85(NULL, fpr), NHUB_EINVAL);
}

static void test_alg_names_round_trip(void **state)
{
    (void)state;
    assert_string_equal(keys_alg_name(KEYS_ED25519), "ed25519");
    assert_string_equal(keys_alg_name(KEYS_SM2), "sm2");
    assert_null(keys_alg_name((keys_alg_t)0));
    assert_null(keys_alg_name((keys_alg_t)9));
    assert_int_equal(keys_alg_parse("ed25519"), KEYS_ED25519);
    assert_int_equal(keys_alg_parse("sm2"), KEYS_SM2);
    assert_int_equal(keys_alg_parse("SM2"), 0);
    assert_int_equal(keys_alg_parse("rsa"), 0);
    assert_int_equal(keys_alg_parse(""), 0);
    assert_int_equal(keys_alg_parse(NULL), 0);
}

/* ---- threads ------------------------------------------------------------------------ */

#define THREAD_ROUNDS 300

typedef struct worker {
    const keys_signer_t *signer;
    const keys_verifier_t *verifier;
    int id;
    int failures;
} worker_t;

static void *worker_run(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < THREAD_ROUNDS; i++) {
        char data[64];
        uint8_t sig[KEYS_SIG_MAX];
        size_t siglen = 0;
        int n = snprintf(data, sizeof data, "thread %d message %d", w->id, i);
        if (keys_sign(w->signer, data, (size_t)n, sig, &siglen) != 0 ||
            keys_verify(w->verifier, data, (size_t)n, sig, siglen) != 0)
            w->failures++;
        data[0] ^= 1;
        if (keys_verify(w->verifier, data, (size_t)n, sig, siglen) != NHUB_EREFUSED)
            w->failures++;
    }
    return NULL;
}

static void test_shared_signer_and_verifier_work_from_two_threads(void **state)
{
    (void)state;
    for (keys_alg_t alg = KEYS_ED25519; alg <= KEYS_SM2; alg++) {
        keys_file_t *k = gen(alg);
        keys_verifier_t *v = verifier_of(k);
        worker_t w[2];
        pthread_t th[2];
        int started = 0, joined = 0;
        for (int i = 0; i < 2; i++) {
            w[i] = (worker_t){.signer = k->signer, .verifier = v, .id = i};
            if (pthread_create(&th[i], NULL, worker_run, &w[i]) == 0)
                started++;
        }
        /* Every started thread is joined before anything is asserted: a
         * failed assertion leaves this frame, and a thread still running on
         * `w` would then write into a dead stack frame. */
        for (int i = 0; i < started; i++)
            joined += pthread_join(th[i], NULL) == 0;
        assert_int_equal(started, 2);
        assert_int_equal(joined, 2);
        for (int i = 0; i < 2; i++)
            assert_int_equal(w[i].failures, 0);
        keys_verifier_free(&v);
        keys_free(&k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ed25519_sign_then_verify_round_trips),
        cmocka_unit_test(test_sm2_sign_then_verify_round_trips),
        cmocka_unit_test(test_tampered_payload_or_signature_is_refused),
        cmocka_unit_test(test_signature_by_another_key_is_refused),
        cmocka_unit_test(test_truncated_or_garbage_signature_is_refused),
        cmocka_unit_test(test_sm2_signature_by_openssl_with_standard_id_verifies),
        cmocka_unit_test(test_sm2_signature_by_keys_verifies_in_openssl_with_standard_id_only),
        cmocka_unit_test(test_verifier_parse_errors_say_what_is_wrong),
        cmocka_unit_test(test_every_truncation_of_public_text_fails_cleanly),
        cmocka_unit_test(test_generate_fills_every_field),
        cmocka_unit_test(test_generate_refuses_bad_region_alg_or_time),
        cmocka_unit_test_setup_teardown(test_write_then_load_round_trips_ed25519, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_write_then_load_round_trips_sm2, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_to_overwrite_without_force, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_write_with_force_replaces_both_files, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_write_into_missing_directory_is_eio, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_secret_file_readable_by_others, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_mismatched_or_malformed_keys, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_key_ids_are_hex_and_stable_across_write_and_load,
                                        tmp_setup, tmp_teardown),
        cmocka_unit_test(test_curve_valid_and_fingerprints),
        cmocka_unit_test(test_alg_names_round_trip),
        cmocka_unit_test(test_shared_signer_and_verifier_work_from_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
