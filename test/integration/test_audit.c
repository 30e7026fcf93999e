/*
 * test_audit.c: the transparency log of a real nhubd: the Merkle tree over
 * its journal, its signed checkpoints and the proofs of the HTTP API,
 * checked by an independent small implementation of RFC 9162 here (SHA-256
 * through OpenSSL, not proto/tlog.c) and the note signature by
 * proto/tlog.c's verifier with the hub's public key made by the test.
 */
#include "harness.h"
#include "keys.h"
#include "nhub.h"
#include "nhub_journal.pb-c.h"
#include "store.h"
#include "tlog.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#define EVERY 10 /* audit.checkpoint_every */
#define SENT 25
#define WAIT_MS 10000

typedef struct fixture {
    th_hub_t hub;
    keys_file_t *key;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    char vkey_file[400];
    /* The development mode, with the hub's key for its checkpoints. */
    if (!fx || th_hub_init(&fx->hub, NULL) != 0 ||
        th_hub_signing_key(&fx->hub, "nhub.test/hub", vkey_file, sizeof vkey_file, &fx->key) != 0)
        return -1;
    snprintf(fx->hub.http, sizeof fx->hub.http,
             "audit:\n  origin: \"nhub.test/hub\"\n  checkpoint_every: %d\n"
             "  checkpoint_interval: 1h\n%s",
             EVERY, TH_HTTP_YAML);
    if (th_hub_start(&fx->hub) != 0) {
        th_log_dump(&fx->hub, stderr);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    keys_free(&fx->key);
    th_hub_stop(&fx->hub);
    th_hub_cleanup(&fx->hub);
    free(fx);
    return 0;
}

/* ---- an independent RFC 9162 -------------------------------------------------- */

static void node(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
    const uint8_t one = 1;
    th_sha256(&one, 1, l, 32, r, 32, out);
}

/* RFC 9162 2.1.3.2. */
static int verify_inclusion(uint64_t m, uint64_t n, const uint8_t leaf[32], uint8_t (*p)[32],
                            size_t len, const uint8_t root[32])
{
    if (m >= n)
        return 0;
    uint64_t fn = m, sn = n - 1;
    uint8_t r[32];
    memcpy(r, leaf, 32);
    for (size_t i = 0; i < len; i++) {
        if (sn == 0)
            return 0;
        if ((fn & 1) || fn == sn) {
            node(p[i], r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            node(r, p[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(r, root, 32) == 0;
}

/* RFC 9162 2.1.4.2. */
static int verify_consistency(uint64_t m, uint64_t n, const uint8_t root_m[32],
                              const uint8_t root_n[32], uint8_t (*p)[32], size_t len)
{
    if (m == n)
        return len == 0 && !memcmp(root_m, root_n, 32);
    if (m == 0 || m > n || len == 0)
        return 0;
    uint8_t first[33][32];
    size_t k = 0;
    if ((m & (m - 1)) == 0) /* a power of two: the old root is the first node */
        memcpy(first[k++], root_m, 32);
    for (size_t i = 0; i < len && k < 33; i++)
        memcpy(first[k++], p[i], 32);
    uint64_t fn = m - 1, sn = n - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[32], sr[32];
    memcpy(fr, first[0], 32);
    memcpy(sr, first[0], 32);
    for (size_t i = 1; i < k; i++) {
        if (sn == 0)
            return 0;
        if ((fn & 1) || fn == sn) {
            node(first[i], fr, fr);
            node(first[i], sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            node(sr, first[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && !memcmp(fr, root_m, 32) && !memcmp(sr, root_n, 32);
}

/* ---- helpers ------------------------------------------------------------------ */

static void unhex(const char *s, uint8_t out[32])
{
    assert_non_null(s);
    assert_int_equal(strlen(s), 64);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static size_t proof_of(const json_t *o, uint8_t (*p)[32])
{
    const json_t *a = json_object_get(o, "proof");
    assert_true(json_is_array(a));
    size_t i;
    const json_t *h;
    json_array_foreach(a, i, h)
    {
        assert_true(i < 65);
        unhex(json_string_value(h), p[i]);
    }
    return json_array_size(a);
}

static json_t *get_json(const th_hub_t *h, const char *path, long want)
{
    char *text = NULL;
    long st = th_http(h, "GET", path, TH_READ_TOKEN, NULL, &text, WAIT_MS);
    if (st != want)
        fail_msg("GET %s: %ld, want %ld: %s", path, st, want, text ? text : "");
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    free(text);
    assert_non_null(o);
    return o;
}

struct seen {
    int checkpoints;
    uint64_t last_size;
};

static void count_checkpoints(const th_journal_event_t *ev, void *arg)
{
    struct seen *s = arg;
    if (ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CHECKPOINT)
        return;
    s->checkpoints++;
    s->last_size = ev->tree_size;
    assert_non_null(strstr(ev->checkpoint, "nhub.test/hub\n"));
}

/* ---- tests -------------------------------------------------------------------- */

static void test_checkpoints_are_signed_and_proofs_check_out(void **state)
{
    fixture_t *fx = *state;
    th_hub_t *h = &fx->hub;
    assert_int_equal(th_send_pushes(h, "110000", "440000", SENT, WAIT_MS),
                     0); /* 440000 not connected: they queue */

    /* A checkpoint came once EVERY records were journaled. */
    json_t *cp = get_json(h, "/api/v1/checkpoint", 200);
    uint64_t size = (uint64_t)json_integer_value(json_object_get(cp, "size"));
    assert_true(size >= EVERY);
    const char *note = json_string_value(json_object_get(cp, "note"));
    assert_non_null(note);
    char body[256];
    snprintf(body, sizeof body, "nhub.test/hub\n%llu\n", (unsigned long long)size);
    assert_memory_equal(note, body, strlen(body));
    /* Signed by the hub's key: the verifier key made from the test's own copy. */
    tlog_signer_t *signer = NULL;
    char vkey[TLOG_VKEY_MAX], err[256];
    assert_int_equal(tlog_signer_new("nhub.test/hub", fx->key, &signer, err, sizeof err), 0);
    assert_int_equal(tlog_signer_vkey(signer, vkey, sizeof vkey), 0);
    tlog_signer_free(&signer);
    assert_string_equal(json_string_value(json_object_get(cp, "vkey")), vkey);
    tlog_verifier_t *v = NULL;
    assert_int_equal(tlog_verifier_parse(vkey, &v, err, sizeof err), 0);
    tlog_checkpoint_t parsed;
    assert_int_equal(tlog_checkpoint_open(note, strlen(note), v, &parsed, err, sizeof err), 0);
    assert_int_equal(parsed.size, size);
    uint8_t root[32];
    unhex(json_string_value(json_object_get(cp, "root")), root);
    assert_memory_equal(parsed.root, root, 32);
    /* An altered note does not verify. */
    char *forged = strdup(note);
    forged[strlen("nhub.test/hub\n")] ^= 1;
    assert_int_not_equal(tlog_checkpoint_open(forged, strlen(forged), v, &parsed, err, sizeof err),
                         0);
    free(forged);
    tlog_verifier_free(&v);

    /* Every record up to the checkpoint is proven in it, from its own bytes. */
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/hub-data", h->dir);
    assert_int_equal(store_open_reader(dir, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    for (uint64_t seq = 1; seq <= size; seq++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/proof?seq=%llu", (unsigned long long)seq);
        json_t *pr = get_json(h, path, 200);
        assert_null(json_object_get(pr, "event")); /* never a payload over HTTP */
        /* The leaf from the record itself, read from the store as an auditor would. */
        const void *ev;
        size_t evlen;
        assert_int_equal(store_journal_get(rd, seq, &ev, &evlen, NULL), 0);
        uint8_t leaf[32], p[65][32], served[32];
        const uint8_t zero = 0;
        th_sha256(&zero, 1, ev, evlen, NULL, 0, leaf);
        unhex(json_string_value(json_object_get(pr, "leaf")), served);
        assert_memory_equal(served, leaf, 32);
        size_t n = proof_of(pr, p);
        assert_true(verify_inclusion(seq - 1, size, leaf, p, n, root));
        /* The wrong leaf does not. */
        leaf[0] ^= 1;
        assert_false(verify_inclusion(seq - 1, size, leaf, p, n, root));
        json_decref(pr);
    }
    store_reader_close(&rd);
    store_close(&st);
    json_decref(cp);

    /* The tree only grew: each size from 1 to the tree's is consistent with it. */
    json_t *last = get_json(h, "/api/v1/consistency?from=1", 200);
    uint64_t to = (uint64_t)json_integer_value(json_object_get(last, "to"));
    json_decref(last);
    for (uint64_t m = 1; m <= to; m++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/consistency?from=%llu&to=%llu", (unsigned long long)m,
                 (unsigned long long)to);
        json_t *c = get_json(h, path, 200);
        uint8_t rm[32], rn[32], p[65][32];
        unhex(json_string_value(json_object_get(c, "root_from")), rm);
        unhex(json_string_value(json_object_get(c, "root_to")), rn);
        size_t n = proof_of(c, p);
        assert_true(verify_consistency(m, to, rm, rn, p, n));
        rm[5] ^= 1;
        assert_false(verify_consistency(m, to, rm, rn, p, n));
        json_decref(c);
    }

    /* Each checkpoint is journaled (and so covered by the next). */
    struct seen s = {0, 0};
    assert_int_equal(th_journal_foreach(h, count_checkpoints, &s), 0);
    assert_true(s.checkpoints >= 2); /* 25 messages + checkpoints: two by count at least */
    assert_int_equal(s.last_size, size);
}

static void test_bad_proof_requests_get_400_naming_the_query(void **state)
{
    fixture_t *fx = *state;
    th_hub_t *h = &fx->hub;
    static const char *const bad[] = {
        "/api/v1/proof",
        "/api/v1/proof?seq=0",
        "/api/v1/proof?seq=x",
        "/api/v1/proof?seq=1&size=999999",
        "/api/v1/consistency?from=0",
        "/api/v1/consistency?from=5&to=3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *e = get_json(h, bad[i], 400);
        const char *msg = json_string_value(json_object_get(e, "detail"));
        assert_non_null(msg);
        assert_true(strstr(msg, "seq") || strstr(msg, "from") || strstr(msg, "size"));
        json_decref(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoints_are_signed_and_proofs_check_out),
        cmocka_unit_test(test_bad_proof_requests_get_400_naming_the_query),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
