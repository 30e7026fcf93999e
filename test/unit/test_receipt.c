/*
 * test_receipt.c: proto/receipt.h: a receipt made from a small tree of
 * journal records (tlog.h, a checkpoint signed by a key made here) parses,
 * verifies, and fails naming the part when any part of it is changed.
 */
#include "keys.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"
#include "receipt.h"
#include "tlog.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define LEAVES 7
#define PROVEN 4 /* the leaf of the message (seq 5) */
#define ORIGIN "nhub.test/hub"

typedef struct fixture {
    keys_file_t *key, *other;
    uint8_t rec[LEAVES][256];
    size_t rec_len[LEAVES];
    uint8_t msg_id[16];
} fixture_t;

static size_t encode_event(int type, const uint8_t id[16], int i, uint8_t *out)
{
    Nhub__Journal__V1__JournalEvent ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = type;
    ev.time_ms = 1764000000000 + i;
    ev.msg_id.data = (uint8_t *)id;
    ev.msg_id.len = 16;
    ev.source = "110000";
    ev.destination = "440000";
    ev.item = "test.item";
    ev.envelope.data = (uint8_t *)"envelope bytes";
    ev.envelope.len = 14;
    return nhub__journal__v1__journal_event__pack(&ev, out);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || keys_generate("000000", KEYS_ED25519, 1764000000000, &fx->key) ||
        keys_generate("000000", KEYS_ED25519, 1764000000000, &fx->other))
        return -1;
    for (int i = 0; i < LEAVES; i++) {
        uint8_t id[16];
        memset(id, i + 1, sizeof id);
        fx->rec_len[i] = encode_event(i == 2 ? NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIRMED
                                             : NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED,
                                      id, i, fx->rec[i]);
    }
    memset(fx->msg_id, PROVEN + 1, 16);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    keys_free(&fx->key);
    keys_free(&fx->other);
    free(fx);
    return 0;
}

struct leaves {
    tlog_hasher_t *h;
    fixture_t *fx;
};

/* Only leaves are "stored": tlog computes the nodes above from them. */
static int get_hash(void *arg, uint64_t level, uint64_t index, uint8_t out[TLOG_HASH_LEN])
{
    struct leaves *l = arg;
    if (level > 0)
        return NHUB_ENOTFOUND;
    return tlog_hash_leaf(l->h, l->fx->rec[index], l->fx->rec_len[index], out);
}

/* The receipt of leaf `leaf` in the tree of the fixture's records, hashed with `alg`,
 * its checkpoint signed with `key`. */
static char *make_receipt(fixture_t *fx, tlog_alg_t alg, int leaf, const keys_file_t *key,
                          size_t *len)
{
    tlog_state_t *s = NULL;
    assert_int_equal(tlog_state_new(alg, &s, NULL, 0), 0);
    for (int i = 0; i < LEAVES; i++) {
        uint8_t h[32];
        assert_int_equal(tlog_hash_leaf(tlog_state_hasher(s), fx->rec[i], fx->rec_len[i], h), 0);
        assert_int_equal(tlog_append(s, h), 0);
    }
    uint8_t root[32];
    assert_int_equal(tlog_root(s, root), 0);
    char body[512], note[2048], proof_text[8192];
    size_t blen, nlen, plen, n;
    assert_int_equal(tlog_checkpoint_format(ORIGIN, LEAVES, root, NULL, body, sizeof body, &blen),
                     0);
    tlog_signer_t *signer = NULL;
    assert_int_equal(tlog_signer_new(ORIGIN, key, &signer, NULL, 0), 0);
    assert_int_equal(tlog_note_sign(signer, body, blen, note, sizeof note, &nlen), 0);
    tlog_signer_free(&signer);
    tlog_hash_t proof[TLOG_PROOF_MAX];
    struct leaves l = {tlog_state_hasher(s), fx};
    assert_int_equal(
        tlog_prove_inclusion(l.h, (uint64_t)leaf, LEAVES, get_hash, &l, proof, TLOG_PROOF_MAX, &n),
        0);
    assert_int_equal(tlog_proof_format((uint64_t)leaf, proof, n, note, nlen, proof_text,
                                       sizeof proof_text, &plen),
                     0);
    uint8_t id[16];
    memset(id, leaf + 1, 16);
    char *text = NULL;
    assert_int_equal(
        receipt_format(id, alg, fx->rec[leaf], fx->rec_len[leaf], proof_text, plen, &text, len), 0);
    tlog_state_free(&s);
    return text;
}

static tlog_verifier_t *verifier_of(const keys_file_t *key)
{
    tlog_signer_t *signer = NULL;
    char vkey[TLOG_VKEY_MAX];
    tlog_verifier_t *v = NULL;
    assert_int_equal(tlog_signer_new(ORIGIN, key, &signer, NULL, 0), 0);
    assert_int_equal(tlog_signer_vkey(signer, vkey, sizeof vkey), 0);
    tlog_signer_free(&signer);
    assert_int_equal(tlog_verifier_parse(vkey, &v, NULL, 0), 0);
    return v;
}

/* Parse and verify `text`; the error (or "" if it verified) into err. */
static int check(const char *text, size_t len, const tlog_verifier_t *v, const uint8_t *id,
                 char *err, size_t cap)
{
    receipt_t *r = NULL;
    err[0] = 0;
    int rc = receipt_parse(text, len, &r, err, cap);
    if (!rc)
        rc = receipt_verify(r, v, id, NULL, err, cap);
    receipt_free(&r);
    return rc;
}

static void test_receipt_round_trip_verifies_and_says_what_it_proves(void **state)
{
    fixture_t *fx = *state;
    static const tlog_alg_t algs[] = {TLOG_SHA256, TLOG_SM3};
    tlog_verifier_t *v = verifier_of(fx->key);
    for (size_t a = 0; a < 2; a++) {
        size_t len;
        char *text = make_receipt(fx, algs[a], PROVEN, fx->key, &len);
        assert_int_equal(strlen(text), len);
        assert_memory_equal(text, "nhub-receipt v1\nmsg-id 05050505", 31);
        assert_non_null(
            strstr(text, algs[a] == TLOG_SM3 ? "\ntree-hash sm3\n" : "\ntree-hash sha256\n"));
        assert_non_null(strstr(text, "\nc2sp.org/tlog-proof@v1\nindex 4\n"));
        receipt_t *r = NULL;
        char err[300];
        assert_int_equal(receipt_parse(text, len, &r, err, sizeof err), 0);
        assert_int_equal(r->alg, algs[a]);
        assert_int_equal(r->record_len, fx->rec_len[PROVEN]);
        assert_memory_equal(r->record, fx->rec[PROVEN], r->record_len);
        receipt_info_t info;
        assert_int_equal(receipt_verify(r, v, fx->msg_id, &info, err, sizeof err), 0);
        assert_int_equal(info.seq, PROVEN + 1);
        assert_int_equal(info.tree_size, LEAVES);
        assert_int_equal(info.time_ms, 1764000000000 + PROVEN);
        assert_string_equal(info.source, "110000");
        assert_string_equal(info.destination, "440000");
        assert_string_equal(info.item, "test.item");
        assert_string_equal(info.origin, ORIGIN);
        assert_int_equal(receipt_verify(r, v, NULL, NULL, err, sizeof err), 0);
        receipt_free(&r);
        assert_null(r);
        free(text);
    }
    tlog_verifier_free(&v);
}

/* Replace the first `from` after `after` in a copy of text by `to`. */
static char *replaced(const char *text, const char *after, const char *from, const char *to)
{
    const char *a = strstr(text, after);
    assert_non_null(a);
    const char *p = strstr(a, from);
    assert_non_null(p);
    size_t n = strlen(text), f = strlen(from), t = strlen(to);
    char *out = malloc(n - f + t + 1);
    memcpy(out, text, (size_t)(p - text));
    memcpy(out + (p - text), to, t);
    strcpy(out + (p - text) + t, p + f);
    return out;
}

/* Flip one base64 character of the line starting with `prefix` (at `at` chars into it). */
static char *flipped(const char *text, const char *prefix, size_t at)
{
    char *out = strdup(text);
    char *p = strstr(out, prefix);
    assert_non_null(p);
    p += strlen(prefix) + at;
    *p = *p == 'A' ? 'B' : 'A';
    return out;
}

static void test_each_altered_part_fails_naming_it(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    char *text = make_receipt(fx, TLOG_SHA256, PROVEN, fx->key, &len);
    tlog_verifier_t *v = verifier_of(fx->key), *other = verifier_of(fx->other);
    char err[400];
    assert_int_equal(check(text, len, v, fx->msg_id, err, sizeof err), 0);

    struct {
        char *text;
        const char *part;
    } cases[] = {
        /* the checkpoint's size, its root, its signature */
        {replaced(text, "\n\n" ORIGIN "\n", "\n7\n", "\n8\n"), "checkpoint: "},
        {flipped(text, "\n\n" ORIGIN "\n7\n", 3), "checkpoint: "},
        {flipped(text, "\xe2\x80\x94 " ORIGIN " ", 10), "checkpoint: "},
        /* the record: a byte of its envelope; its msg-id line */
        {flipped(text, "\nrecord ", 30), "inclusion: "},
        {replaced(text, "msg-id ", "05", "06"), "record: "},
        /* the proof: a hash, the index, the tree's hash */
        {flipped(text, "\nindex 4\n", 5), "inclusion: "},
        {replaced(text, "\nc2sp.org", "index 4", "index 3"), "inclusion: "},
        {replaced(text, "tree-hash", "sha256", "sm3"), "inclusion: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = check(cases[i].text, strlen(cases[i].text), v, fx->msg_id, err, sizeof err);
        if (rc != NHUB_EREFUSED || strncmp(err, cases[i].part, strlen(cases[i].part)) != 0)
            fail_msg("case %zu: rc %d, \"%s\", want %s", i, rc, err, cases[i].part);
        free(cases[i].text);
    }

    /* Another hub's key; another message asked about. */
    assert_int_equal(check(text, len, other, fx->msg_id, err, sizeof err), NHUB_EREFUSED);
    assert_non_null(strstr(err, "checkpoint: not signed with key " ORIGIN));
    uint8_t another[16];
    memset(another, 9, 16);
    assert_int_equal(check(text, len, v, another, err, sizeof err), NHUB_EREFUSED);
    assert_memory_equal(err, "msg_id: ", 8);
    tlog_verifier_free(&v);
    tlog_verifier_free(&other);
    free(text);
}

static void test_a_proven_record_that_is_not_an_accepted_message_is_refused(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    char *text = make_receipt(fx, TLOG_SHA256, 2, fx->key, &len); /* a CONFIRMED event */
    tlog_verifier_t *v = verifier_of(fx->key);
    char err[400];
    assert_int_equal(check(text, len, v, NULL, err, sizeof err), NHUB_EREFUSED);
    assert_non_null(strstr(err, "record: not the ACCEPTED event"));
    tlog_verifier_free(&v);
    free(text);
}

static void test_malformed_receipts_are_refused_naming_the_line(void **state)
{
    fixture_t *fx = *state;
    size_t len;
    char *text = make_receipt(fx, TLOG_SHA256, PROVEN, fx->key, &len);
    struct {
        char *text;
        const char *says;
    } cases[] = {
        {replaced(text, "", "nhub-receipt v1", "nhub-receipt v2"), "receipt line 1"},
        {replaced(text, "", "msg-id 05", "msg-id X5"), "receipt line 2"},
        {replaced(text, "", "tree-hash sha256", "tree-hash md5"), "receipt line 3"},
        {replaced(text, "", "\nrecord ", "\nrecord !"), "receipt line 4"},
        {replaced(text, "", "c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v9"), "proof line 1"},
        {replaced(text, "", "\nindex 4\n", "\nindex 04\n"), "proof line 2"},
    };
    receipt_t *r = NULL;
    char err[300];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = receipt_parse(cases[i].text, strlen(cases[i].text), &r, err, sizeof err);
        if (rc != NHUB_EMALFORMED || !strstr(err, cases[i].says))
            fail_msg("case %zu: rc %d, \"%s\", want %s", i, rc, err, cases[i].says);
        assert_null(r);
        free(cases[i].text);
    }
    /* Cut anywhere: never accepted, never a crash. */
    tlog_verifier_t *v = verifier_of(fx->key);
    for (size_t cut = 0; cut < len; cut += 7)
        if (check(text, cut, v, NULL, err, sizeof err) == 0)
            fail_msg("a receipt cut at %zu of %zu bytes verified", cut, len);
    tlog_verifier_free(&v);
    assert_int_equal(receipt_parse(text, RECEIPT_TEXT_MAX + 1, &r, err, sizeof err), NHUB_ETOOBIG);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipt_round_trip_verifies_and_says_what_it_proves),
        cmocka_unit_test(test_each_altered_part_fails_naming_it),
        cmocka_unit_test(test_a_proven_record_that_is_not_an_accepted_message_is_refused),
        cmocka_unit_test(test_malformed_receipts_are_refused_naming_the_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
