/*
 * test_auth.c: connection identity and envelope signatures (broker/auth.h).
 *
 * Pure logic: each test writes a hub configuration whose region keys are
 * generated here (Ed25519 and SM2), loads it with cfg_load_string in the
 * development security mode (so no hub key file or catalogue is needed; the
 * region keys are still enforced by auth), and drives time by passing it in.
 * Validity windows are checked at their exact boundaries: not_before is the
 * first valid millisecond, not_after the first invalid one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth.h"
#include "cfg.h"
#include "keys.h"
#include "nhub_err.h"
#include "nhub_wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define ERRCAP 512
#define TEXTCAP 8192

#define NACK_UNSIGNED NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED
#define NACK_BAD_SIGNATURE NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE

/* 2026-12-01T00:00:00Z and 2027-01-01T00:00:00Z, in ms since the epoch. */
#define T_DEC "2026-12-01T00:00:00Z"
#define T_JAN "2027-01-01T00:00:00Z"
#define MS_DEC INT64_C(1796083200000)
#define MS_JAN INT64_C(1798761600000)
#define MS_MID (MS_DEC + INT64_C(15) * 24 * 3600 * 1000)

static const char ENVELOPE[] = "encoded envelope bytes \x00\x01\x02 as sent";

/* ---- helpers ------------------------------------------------------------------ */

static keys_file_t *gen(const char *region, keys_alg_t alg)
{
    keys_file_t *k = NULL;
    assert_int_equal(keys_generate(region, alg, MS_DEC - 1000, &k), 0);
    assert_non_null(k);
    return k;
}

/* One key of a region in the configuration: its window (NULL = no bound). */
struct key_spec {
    const keys_file_t *k;
    const char *not_before;
    const char *not_after;
};

/* Append one region with `n` keys to the YAML text in `buf`. */
static void add_region(char *buf, const char *code, const char *name, const struct key_spec *keys,
                       size_t n)
{
    size_t o = strlen(buf);
    o += (size_t)snprintf(buf + o, TEXTCAP - o, "  - code: \"%s\"\n    name: %s\n", code, name);
    if (n)
        o += (size_t)snprintf(buf + o, TEXTCAP - o, "    keys:\n");
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(buf + o, TEXTCAP - o, "      - curve: \"%s\"\n        sign: \"%s\"\n",
                              keys[i].k->curve_public, keys[i].k->sign_public);
        if (keys[i].not_before)
            o += (size_t)snprintf(buf + o, TEXTCAP - o, "        not_before: \"%s\"\n",
                                  keys[i].not_before);
        if (keys[i].not_after)
            o += (size_t)snprintf(buf + o, TEXTCAP - o, "        not_after: \"%s\"\n",
                                  keys[i].not_after);
    }
    assert_true(o < TEXTCAP);
}

/* The start of a configuration; regions follow with add_region(). */
static char *config_text(void)
{
    char *buf = malloc(TEXTCAP);
    assert_non_null(buf);
    snprintf(buf, TEXTCAP,
             "hub:\n"
             "  listen: \"tcp://127.0.0.1:7400\"\n"
             "  data_dir: build/run/hub\n"
             "security: {mode: insecure-plaintext}\n"
             "regions:\n");
    return buf;
}

static cfg_t *load_cfg(const char *text)
{
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    int rc = cfg_load_string("a.yaml", text, strlen(text), &cfg, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    return cfg;
}

/* An auth_t over the configuration `text` (which is freed). */
static auth_t *build(char *text)
{
    cfg_t *cfg = load_cfg(text);
    free(text);
    auth_t *a = NULL;
    char err[ERRCAP];
    int rc = auth_new(cfg, &a, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(a);
    cfg_destroy(&cfg); /* auth keeps nothing borrowed from the cfg */
    return a;
}

static void raw_curve(const keys_file_t *k, uint8_t raw[32])
{
    assert_non_null(zmq_z85_decode(raw, k->curve_public));
}

/* "<region>/<fingerprint>" of `k`, as the handshake would have made it. */
static void user_id_of(const char *region, const keys_file_t *k, char out[AUTH_USER_ID_MAX])
{
    int n = snprintf(out, AUTH_USER_ID_MAX, "%s/%s", region, k->curve_fpr);
    assert_int_equal(n, AUTH_USER_ID_MAX - 1);
}

/* auth_handshake for `k`: its return code, with `why` and `user_id`. */
static int handshake(const auth_t *a, const keys_file_t *k, int64_t now, char user_id[],
                     const char **why)
{
    uint8_t raw[32];
    char fpr[KEYS_FPR_LEN + 1];
    raw_curve(k, raw);
    *why = NULL;
    int rc = auth_handshake(a, raw, now, user_id, fpr, why);
    assert_string_equal(fpr, k->curve_fpr);
    return rc;
}

static void expect_handshake_ok(const auth_t *a, const keys_file_t *k, const char *region,
                                int64_t now)
{
    char user_id[AUTH_USER_ID_MAX], want[AUTH_USER_ID_MAX];
    const char *why = NULL;
    int rc = handshake(a, k, now, user_id, &why);
    if (rc != 0)
        print_error("refused: %s\n", why);
    assert_int_equal(rc, 0);
    user_id_of(region, k, want);
    assert_string_equal(user_id, want);
}

static void expect_handshake_refused(const auth_t *a, const keys_file_t *k, int64_t now,
                                     const char *want_why)
{
    char user_id[AUTH_USER_ID_MAX];
    const char *why = NULL;
    assert_int_equal(handshake(a, k, now, user_id, &why), NHUB_EREFUSED);
    assert_non_null(why);
    assert_string_equal(why, want_why);
    assert_string_equal(user_id, "");
}

static void expect_identity(const auth_t *a, const char *user_id, int64_t now, int want_region,
                            const char *want_why)
{
    const char *why = NULL;
    int r = auth_identity(a, user_id, now, &why);
    assert_int_equal(r, want_region);
    if (want_why) {
        assert_non_null(why);
        assert_string_equal(why, want_why);
    }
}

/* Sign ENVELOPE with `k` and verify it as region index `region` at `now`. */
static int sign_and_verify(const auth_t *a, int region, const keys_file_t *k, int64_t now,
                           char *why)
{
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(keys_sign(k->signer, ENVELOPE, sizeof ENVELOPE, sig, &siglen), 0);
    why[0] = '\0';
    return auth_verify(a, region, k->sign_id, ENVELOPE, sizeof ENVELOPE, sig, siglen, now, why,
                       ERRCAP);
}

static void expect_verify(const auth_t *a, int region, const keys_file_t *k, int64_t now, int want,
                          const char *want_why)
{
    char why[ERRCAP];
    int rc = sign_and_verify(a, region, k, now, why);
    if (rc != want)
        print_error("rc=%d why=%s\n", rc, why);
    assert_int_equal(rc, want);
    if (want_why)
        assert_string_equal(why, want_why);
}

/* ---- handshake ----------------------------------------------------------------- */

static void test_handshake_maps_configured_key_to_region_and_fingerprint(void **state)
{
    (void)state;
    keys_file_t *bj = gen("110000", KEYS_ED25519);
    keys_file_t *gd = gen("440000", KEYS_SM2);
    char *text = config_text();
    /* File order is not code order: indexes follow the sorted cfg. */
    add_region(text, "440000", "Guangdong", &(struct key_spec){gd, NULL, NULL}, 1);
    add_region(text, "110000", "Beijing", &(struct key_spec){bj, NULL, NULL}, 1);
    auth_t *a = build(text);

    expect_handshake_ok(a, bj, "110000", MS_DEC);
    expect_handshake_ok(a, gd, "440000", MS_DEC);
    /* A key without a window is valid at any time. */
    expect_handshake_ok(a, gd, "440000", 1);
    expect_handshake_ok(a, gd, "440000", INT64_MAX);

    char user_id[AUTH_USER_ID_MAX];
    user_id_of("440000", gd, user_id);
    expect_identity(a, user_id, MS_DEC, 1, NULL);
    user_id_of("110000", bj, user_id);
    expect_identity(a, user_id, MS_DEC, 0, NULL);

    assert_int_equal(auth_key_count(a, 0), 1);
    assert_int_equal(auth_key_count(a, 1), 1);
    assert_int_equal(auth_key_count(a, 2), 0);
    assert_int_equal(auth_key_count(a, -1), 0);
    assert_int_equal(auth_key_count(NULL, 0), 0);
    auth_destroy(&a);
    assert_null(a);
    keys_free(&bj);
    keys_free(&gd);
}

static void test_handshake_refuses_unknown_key_and_fills_fingerprint(void **state)
{
    (void)state;
    keys_file_t *bj = gen("110000", KEYS_ED25519);
    keys_file_t *stranger = gen("110000", KEYS_ED25519);
    char *text = config_text();
    add_region(text, "110000", "Beijing", &(struct key_spec){bj, NULL, NULL}, 1);
    add_region(text, "120000", "Tianjin", NULL, 0);
    auth_t *a = build(text);

    /* handshake() checks that the fingerprint is filled on refusal too. */
    expect_handshake_refused(a, stranger, MS_DEC, "unknown key");
    uint8_t zero[32] = {0};
    char user_id[AUTH_USER_ID_MAX] = "x", fpr[KEYS_FPR_LEN + 1] = "", want[KEYS_FPR_LEN + 1];
    const char *why = NULL;
    assert_int_equal(auth_handshake(a, zero, MS_DEC, user_id, fpr, &why), NHUB_EREFUSED);
    assert_string_equal(why, "unknown key");
    assert_string_equal(user_id, "");
    keys_curve_fpr(zero, want);
    assert_string_equal(fpr, want);
    assert_int_equal(strlen(fpr), KEYS_FPR_LEN);

    auth_destroy(&a);
    keys_free(&bj);
    keys_free(&stranger);
}

/* ---- validity windows ---------------------------------------------------------- */

static void test_window_bounds_are_exact_for_handshake_identity_and_verify(void **state)
{
    (void)state;
    keys_file_t *ed = gen("110000", KEYS_ED25519);
    keys_file_t *sm = gen("120000", KEYS_SM2);
    char *text = config_text();
    add_region(text, "110000", "Beijing", &(struct key_spec){ed, T_DEC, T_JAN}, 1);
    add_region(text, "120000", "Tianjin", &(struct key_spec){sm, T_DEC, T_JAN}, 1);
    auth_t *a = build(text);

    const keys_file_t *ks[2] = {ed, sm};
    const char *codes[2] = {"110000", "120000"};
    for (int r = 0; r < 2; r++) {
        const keys_file_t *k = ks[r];
        char user_id[AUTH_USER_ID_MAX], want[ERRCAP];
        user_id_of(codes[r], k, user_id);

        /* One millisecond before not_before: not yet valid. */
        expect_handshake_refused(a, k, MS_DEC - 1, "key not yet valid");
        expect_identity(a, user_id, MS_DEC - 1, -1, "key not yet valid");
        snprintf(want, sizeof want, "signing key %s of region %s: key not yet valid", k->sign_id,
                 codes[r]);
        expect_verify(a, r, k, MS_DEC - 1, NACK_BAD_SIGNATURE, want);

        /* now == not_before: valid; one millisecond before not_after: valid. */
        const int64_t valid[] = {MS_DEC, MS_MID, MS_JAN - 1};
        for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
            expect_handshake_ok(a, k, codes[r], valid[i]);
            expect_identity(a, user_id, valid[i], r, NULL);
            expect_verify(a, r, k, valid[i], 0, "");
        }

        /* now == not_after: expired. */
        const int64_t expired[] = {MS_JAN, MS_JAN + 1};
        snprintf(want, sizeof want, "signing key %s of region %s: key expired", k->sign_id,
                 codes[r]);
        for (size_t i = 0; i < sizeof expired / sizeof expired[0]; i++) {
            expect_handshake_refused(a, k, expired[i], "key expired");
            expect_identity(a, user_id, expired[i], -1, "key expired");
            expect_verify(a, r, k, expired[i], NACK_BAD_SIGNATURE, want);
        }
    }
    auth_destroy(&a);
    keys_free(&ed);
    keys_free(&sm);
}

static void test_one_sided_windows_bound_one_end_only(void **state)
{
    (void)state;
    keys_file_t *from = gen("110000", KEYS_ED25519);
    keys_file_t *until = gen("110000", KEYS_SM2);
    char *text = config_text();
    add_region(text, "110000", "Beijing",
               (struct key_spec[]){{from, T_DEC, NULL}, {until, NULL, T_JAN}}, 2);
    auth_t *a = build(text);

    expect_handshake_refused(a, from, MS_DEC - 1, "key not yet valid");
    expect_handshake_ok(a, from, "110000", MS_DEC);
    expect_handshake_ok(a, from, "110000", INT64_MAX);
    expect_handshake_ok(a, until, "110000", 1);
    expect_handshake_ok(a, until, "110000", MS_JAN - 1);
    expect_handshake_refused(a, until, MS_JAN, "key expired");
    auth_destroy(&a);
    keys_free(&from);
    keys_free(&until);
}

/* ---- identity ------------------------------------------------------------------ */

static void test_identity_refuses_malformed_or_unknown_user_ids(void **state)
{
    (void)state;
    keys_file_t *bj = gen("110000", KEYS_ED25519);
    keys_file_t *tj = gen("120000", KEYS_SM2);
    char *text = config_text();
    add_region(text, "110000", "Beijing", &(struct key_spec){bj, NULL, NULL}, 1);
    add_region(text, "120000", "Tianjin", &(struct key_spec){tj, NULL, NULL}, 1);
    auth_t *a = build(text);
    const char *none = "connection has no authenticated identity";
    char id[AUTH_USER_ID_MAX + 8];

    user_id_of("110000", bj, id);
    expect_identity(a, id, MS_DEC, 0, NULL);

    expect_identity(a, NULL, MS_DEC, -1, none);
    expect_identity(a, "", MS_DEC, -1, none);
    /* One character short, one too many. */
    id[AUTH_USER_ID_MAX - 2] = '\0';
    expect_identity(a, id, MS_DEC, -1, none);
    snprintf(id, sizeof id, "110000/%s0", bj->curve_fpr);
    expect_identity(a, id, MS_DEC, -1, none);
    /* Right length, no slash after the region. */
    snprintf(id, sizeof id, "110000:%s", bj->curve_fpr);
    expect_identity(a, id, MS_DEC, -1, none);
    snprintf(id, sizeof id, "1100000%s", bj->curve_fpr);
    expect_identity(a, id, MS_DEC, -1, none);
    /* A region that is not (or no longer) configured. */
    snprintf(id, sizeof id, "130000/%s", bj->curve_fpr);
    expect_identity(a, id, MS_DEC, -1, "region no longer configured");
    snprintf(id, sizeof id, "000000/%s", bj->curve_fpr);
    expect_identity(a, id, MS_DEC, -1, "region no longer configured");
    /* A fingerprint the region does not have, even one of another region. */
    snprintf(id, sizeof id, "110000/%032d", 0);
    expect_identity(a, id, MS_DEC, -1, "key no longer configured for the region");
    snprintf(id, sizeof id, "110000/%s", tj->curve_fpr);
    expect_identity(a, id, MS_DEC, -1, "key no longer configured for the region");
    auth_destroy(&a);
    keys_free(&bj);
    keys_free(&tj);
}

static void test_rotation_overlap_accepts_both_keys_then_only_the_new(void **state)
{
    (void)state;
    keys_file_t *old_key = gen("110000", KEYS_ED25519);
    keys_file_t *new_key = gen("110000", KEYS_SM2);
    char *text = config_text();
    add_region(text, "110000", "Beijing",
               (struct key_spec[]){{old_key, NULL, T_JAN}, {new_key, T_DEC, NULL}}, 2);
    auth_t *a = build(text);
    assert_int_equal(auth_key_count(a, 0), 2);

    char old_id[AUTH_USER_ID_MAX], new_id[AUTH_USER_ID_MAX];
    user_id_of("110000", old_key, old_id);
    user_id_of("110000", new_key, new_id);

    /* Before the overlap only the old key. */
    expect_handshake_ok(a, old_key, "110000", MS_DEC - 1);
    expect_handshake_refused(a, new_key, MS_DEC - 1, "key not yet valid");

    /* During the overlap both, for every question. */
    const int64_t overlap[] = {MS_DEC, MS_MID, MS_JAN - 1};
    for (size_t i = 0; i < sizeof overlap / sizeof overlap[0]; i++) {
        expect_handshake_ok(a, old_key, "110000", overlap[i]);
        expect_handshake_ok(a, new_key, "110000", overlap[i]);
        expect_identity(a, old_id, overlap[i], 0, NULL);
        expect_identity(a, new_id, overlap[i], 0, NULL);
        expect_verify(a, 0, old_key, overlap[i], 0, "");
        expect_verify(a, 0, new_key, overlap[i], 0, "");
    }

    /* From the old key's not_after: a connection made with it loses its
     * identity, and its signatures are refused. */
    char want[ERRCAP];
    snprintf(want, sizeof want, "signing key %s of region 110000: key expired", old_key->sign_id);
    expect_handshake_refused(a, old_key, MS_JAN, "key expired");
    expect_identity(a, old_id, MS_JAN, -1, "key expired");
    expect_verify(a, 0, old_key, MS_JAN, NACK_BAD_SIGNATURE, want);
    expect_handshake_ok(a, new_key, "110000", MS_JAN);
    expect_identity(a, new_id, MS_JAN, 0, NULL);
    expect_verify(a, 0, new_key, MS_JAN, 0, "");

    auth_destroy(&a);
    keys_free(&old_key);
    keys_free(&new_key);
}

/* ---- signatures ---------------------------------------------------------------- */

/* Regions 110000 (Ed25519), 440000 (SM2) and 500000 (no keys), indexes 0, 1, 2. */
struct sig_fixture {
    keys_file_t *ed;
    keys_file_t *sm;
    auth_t *a;
};

static int sig_setup(void **state)
{
    struct sig_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->ed = gen("110000", KEYS_ED25519);
    f->sm = gen("440000", KEYS_SM2);
    char *text = config_text();
    add_region(text, "500000", "Chongqing", NULL, 0);
    add_region(text, "440000", "Guangdong", &(struct key_spec){f->sm, NULL, NULL}, 1);
    add_region(text, "110000", "Beijing", &(struct key_spec){f->ed, NULL, NULL}, 1);
    f->a = build(text);
    *state = f;
    return 0;
}

static int sig_teardown(void **state)
{
    struct sig_fixture *f = *state;
    auth_destroy(&f->a);
    keys_free(&f->ed);
    keys_free(&f->sm);
    free(f);
    return 0;
}

static void test_verify_accepts_valid_ed25519_and_sm2_signatures(void **state)
{
    struct sig_fixture *f = *state;
    expect_verify(f->a, 0, f->ed, MS_DEC, 0, "");
    expect_verify(f->a, 1, f->sm, MS_DEC, 0, "");

    /* An empty envelope is data like any other. */
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    char why[ERRCAP] = "";
    assert_int_equal(keys_sign(f->sm->signer, "", 0, sig, &siglen), 0);
    assert_int_equal(
        auth_verify(f->a, 1, f->sm->sign_id, "", 0, sig, siglen, MS_DEC, why, sizeof why), 0);
}

static void test_verify_refuses_unsigned_envelope(void **state)
{
    struct sig_fixture *f = *state;
    char why[ERRCAP];
    assert_int_equal(NACK_UNSIGNED, 14);
    assert_int_equal(auth_verify(f->a, 0, f->ed->sign_id, ENVELOPE, sizeof ENVELOPE, NULL, 0,
                                 MS_DEC, why, sizeof why),
                     NACK_UNSIGNED);
    assert_string_equal(why, "envelope is not signed; region 110000 must sign with its key");
    /* Unsigned wins over a missing key id. */
    assert_int_equal(
        auth_verify(f->a, 1, NULL, ENVELOPE, sizeof ENVELOPE, NULL, 0, MS_DEC, why, sizeof why),
        NACK_UNSIGNED);
    assert_string_equal(why, "envelope is not signed; region 440000 must sign with its key");
}

static void test_verify_refuses_unknown_key_id(void **state)
{
    struct sig_fixture *f = *state;
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    char why[ERRCAP], want[ERRCAP];
    assert_int_equal(NACK_BAD_SIGNATURE, 15);
    assert_int_equal(keys_sign(f->ed->signer, ENVELOPE, sizeof ENVELOPE, sig, &siglen), 0);

    const char *zeros = "00000000000000000000000000000000";
    assert_int_equal(auth_verify(f->a, 0, zeros, ENVELOPE, sizeof ENVELOPE, sig, siglen, MS_DEC,
                                 why, sizeof why),
                     NACK_BAD_SIGNATURE);
    assert_string_equal(why, "key id 00000000000000000000000000000000 is not a signing key of "
                             "region 110000");
    /* The CURVE fingerprint is not the signing key id. */
    assert_int_equal(auth_verify(f->a, 0, f->ed->curve_fpr, ENVELOPE, sizeof ENVELOPE, sig, siglen,
                                 MS_DEC, why, sizeof why),
                     NACK_BAD_SIGNATURE);
    snprintf(want, sizeof want, "key id %s is not a signing key of region 110000",
             f->ed->curve_fpr);
    assert_string_equal(why, want);
    /* No key id at all, or an empty one. */
    assert_int_equal(
        auth_verify(f->a, 0, NULL, ENVELOPE, sizeof ENVELOPE, sig, siglen, MS_DEC, why, sizeof why),
        NACK_BAD_SIGNATURE);
    assert_string_equal(why, "key id (none) is not a signing key of region 110000");
    assert_int_equal(
        auth_verify(f->a, 0, "", ENVELOPE, sizeof ENVELOPE, sig, siglen, MS_DEC, why, sizeof why),
        NACK_BAD_SIGNATURE);
    assert_string_equal(why, "key id (none) is not a signing key of region 110000");
    /* A region index out of range. */
    assert_int_equal(auth_verify(f->a, 3, f->ed->sign_id, ENVELOPE, sizeof ENVELOPE, sig, siglen,
                                 MS_DEC, why, sizeof why),
                     NACK_BAD_SIGNATURE);
    assert_string_equal(why, "no such region");
    assert_int_equal(auth_verify(f->a, -1, f->ed->sign_id, ENVELOPE, sizeof ENVELOPE, sig, siglen,
                                 MS_DEC, why, sizeof why),
                     NACK_BAD_SIGNATURE);
    assert_string_equal(why, "no such region");
}

static void test_verify_refuses_tampered_envelope_or_signature(void **state)
{
    struct sig_fixture *f = *state;
    const keys_file_t *ks[2] = {f->ed, f->sm};
    const char *codes[2] = {"110000", "440000"};

    for (int r = 0; r < 2; r++) {
        uint8_t sig[KEYS_SIG_MAX];
        size_t siglen = 0;
        char data[sizeof ENVELOPE], why[ERRCAP], want[ERRCAP];
        assert_int_equal(keys_sign(ks[r]->signer, ENVELOPE, sizeof ENVELOPE, sig, &siglen), 0);
        snprintf(want, sizeof want, "signature does not verify with key %s of region %s",
                 ks[r]->sign_id, codes[r]);

        memcpy(data, ENVELOPE, sizeof data);
        data[3] ^= 0x01;
        assert_int_equal(auth_verify(f->a, r, ks[r]->sign_id, data, sizeof data, sig, siglen,
                                     MS_DEC, why, sizeof why),
                         NACK_BAD_SIGNATURE);
        assert_string_equal(why, want);
        /* One byte fewer: the signature covers the bytes exactly. */
        assert_int_equal(auth_verify(f->a, r, ks[r]->sign_id, ENVELOPE, sizeof ENVELOPE - 1, sig,
                                     siglen, MS_DEC, why, sizeof why),
                         NACK_BAD_SIGNATURE);
        assert_string_equal(why, want);
        /* A flipped signature bit, and a truncated signature. */
        sig[siglen / 2] ^= 0x80;
        assert_int_equal(auth_verify(f->a, r, ks[r]->sign_id, ENVELOPE, sizeof ENVELOPE, sig,
                                     siglen, MS_DEC, why, sizeof why),
                         NACK_BAD_SIGNATURE);
        assert_string_equal(why, want);
        sig[siglen / 2] ^= 0x80;
        assert_int_equal(auth_verify(f->a, r, ks[r]->sign_id, ENVELOPE, sizeof ENVELOPE, sig,
                                     siglen - 1, MS_DEC, why, sizeof why),
                         NACK_BAD_SIGNATURE);
        assert_string_equal(why, want);
        /* Untouched, it still verifies. */
        assert_int_equal(auth_verify(f->a, r, ks[r]->sign_id, ENVELOPE, sizeof ENVELOPE, sig,
                                     siglen, MS_DEC, why, sizeof why),
                         0);
    }
}

static void test_verify_refuses_another_regions_key(void **state)
{
    struct sig_fixture *f = *state;
    /* Guangdong's valid signature, sent on Beijing's connection with
     * Guangdong's key id: the key id is looked up in Beijing's keys only. */
    char why[ERRCAP], want[ERRCAP];
    snprintf(want, sizeof want, "key id %s is not a signing key of region 110000", f->sm->sign_id);
    expect_verify(f->a, 0, f->sm, MS_DEC, NACK_BAD_SIGNATURE, want);
    /* And the other way round. */
    snprintf(want, sizeof want, "key id %s is not a signing key of region 440000", f->ed->sign_id);
    expect_verify(f->a, 1, f->ed, MS_DEC, NACK_BAD_SIGNATURE, want);

    /* Beijing's key id on a signature made by Guangdong's key. */
    uint8_t sig[KEYS_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(keys_sign(f->sm->signer, ENVELOPE, sizeof ENVELOPE, sig, &siglen), 0);
    assert_int_equal(auth_verify(f->a, 0, f->ed->sign_id, ENVELOPE, sizeof ENVELOPE, sig, siglen,
                                 MS_DEC, why, sizeof why),
                     NACK_BAD_SIGNATURE);
    snprintf(want, sizeof want, "signature does not verify with key %s of region 110000",
             f->ed->sign_id);
    assert_string_equal(why, want);
}

static void test_verify_passes_region_without_keys_in_development_mode(void **state)
{
    struct sig_fixture *f = *state;
    char why[ERRCAP] = "";
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(auth_key_count(f->a, 2), 0);
    assert_int_equal(
        auth_verify(f->a, 2, NULL, ENVELOPE, sizeof ENVELOPE, NULL, 0, MS_DEC, why, sizeof why), 0);
    assert_int_equal(auth_verify(f->a, 2, "00000000000000000000000000000000", ENVELOPE,
                                 sizeof ENVELOPE, junk, sizeof junk, MS_DEC, why, sizeof why),
                     0);
    expect_verify(f->a, 2, f->ed, MS_DEC, 0, NULL);
}

/* ---- construction -------------------------------------------------------------- */

static void test_new_refuses_key_whose_file_was_not_read(void **state)
{
    (void)state;
    keys_file_t *bj = gen("110000", KEYS_SM2);
    keys_file_t *hb = gen("130000", KEYS_ED25519);
    char *text = config_text();
    add_region(text, "110000", "Beijing", &(struct key_spec){bj, NULL, NULL}, 1);
    add_region(text, "130000", "Hebei", &(struct key_spec){hb, NULL, NULL}, 1);
    /* cfg_load_string leaves `file:` keys unresolved (empty curve and sign). */
    strcat(text, "      - file: hebei-next.pub\n");
    cfg_t *cfg = load_cfg(text);
    free(text);
    assert_int_equal(cfg->regions[1].key_count, 2);
    assert_string_equal(cfg->regions[1].keys[1].file, "hebei-next.pub");
    assert_string_equal(cfg->regions[1].keys[1].curve, "");

    /* Fails after building the keys before it: the ASan build checks that
     * they are freed. */
    auth_t *a = (auth_t *)&a;
    char err[ERRCAP];
    assert_int_equal(auth_new(cfg, &a, err, sizeof err), NHUB_ECONFIG);
    assert_null(a);
    assert_string_equal(err, "region 130000 key 1: no valid CURVE key (key file not read?)");
    cfg_destroy(&cfg);

    auth_destroy(NULL);
    a = NULL;
    auth_destroy(&a);
    assert_null(a);
    keys_free(&bj);
    keys_free(&hb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_maps_configured_key_to_region_and_fingerprint),
        cmocka_unit_test(test_handshake_refuses_unknown_key_and_fills_fingerprint),
        cmocka_unit_test(test_window_bounds_are_exact_for_handshake_identity_and_verify),
        cmocka_unit_test(test_one_sided_windows_bound_one_end_only),
        cmocka_unit_test(test_identity_refuses_malformed_or_unknown_user_ids),
        cmocka_unit_test(test_rotation_overlap_accepts_both_keys_then_only_the_new),
        cmocka_unit_test_setup_teardown(test_verify_accepts_valid_ed25519_and_sm2_signatures,
                                        sig_setup, sig_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_unsigned_envelope, sig_setup,
                                        sig_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_unknown_key_id, sig_setup,
                                        sig_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_tampered_envelope_or_signature,
                                        sig_setup, sig_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_another_regions_key, sig_setup,
                                        sig_teardown),
        cmocka_unit_test_setup_teardown(test_verify_passes_region_without_keys_in_development_mode,
                                        sig_setup, sig_teardown),
        cmocka_unit_test(test_new_refuses_key_whose_file_was_not_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
