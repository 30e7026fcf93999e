/*
 * test_receipt.c: a region's receipts from a real nhubd over the wire
 * (RECEIPT_GET, libnhub's nhub_receipt_get), checked offline with
 * nhub_receipt_verify against the verifier key made here from the hub's
 * own key: as the message's source and destination, as a receiver of a
 * broadcast; refused alike for a region that is neither and for a msg_id
 * that never came; after a restart; from a tree hashed with SM3; and from
 * a hub without a signing key (RECEIPT_NOT_COVERED).
 *
 * Checkpoints come every 1000 records or hourly here, so every receipt of
 * a new message makes the hub sign one on the spot.
 *
 * A msg_id used again after the duplicate window (the injected clock
 * moved on) names two records: each region gets the one it was part of.
 */
#include "harness.h"
#include "keys.h"
#include "proc.h"
#include "nhub.h"
#include "tlog.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define WAIT_MS 10000
#define ORIGIN "nhub.test/receipts"

typedef struct fixture {
    th_hub_t hub;
    keys_file_t *key;
    char vkey[TLOG_VKEY_MAX];
    const char *tree_hash;
} fixture_t;

static int start(void **state, const char *tree_hash, int with_key)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    char vkey_file[400];
    if (!fx || th_hub_init(&fx->hub, NULL) != 0 ||
        th_hub_signing_key(&fx->hub, ORIGIN, vkey_file, sizeof vkey_file, &fx->key) != 0)
        return -1;
    fx->tree_hash = tree_hash;
    th_read_text(vkey_file, fx->vkey, sizeof fx->vkey);
    fx->vkey[strcspn(fx->vkey, "\n")] = '\0';
    if (!with_key) /* the key is made, for what the tests compare, but the hub signs with none */
        snprintf(fx->hub.security, sizeof fx->hub.security,
                 "security:\n  mode: insecure-plaintext\n");
    snprintf(fx->hub.http, sizeof fx->hub.http,
             "audit:\n  origin: \"" ORIGIN "\"\n  checkpoint_every: 1000\n"
             "  checkpoint_interval: 1h\n  tree_hash: %s\n%s",
             tree_hash, TH_HTTP_YAML);
    if (th_hub_start(&fx->hub) != 0) {
        th_log_dump(&fx->hub, stderr);
        return -1;
    }
    *state = fx;
    return 0;
}

static int setup_sha256(void **state)
{
    return start(state, "sha256", 1);
}

static int setup_sm3(void **state)
{
    return start(state, "sm3", 1);
}

static int setup_no_key(void **state)
{
    return start(state, "sha256", 0);
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

/* An adapter of `region` (receiving, unless send_only). */
static nhub_t *adapter(const fixture_t *fx, const char *region, int send_only)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/adapter-%s", fx->hub.dir, region);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = region;
    o.hub_endpoint = fx->hub.endpoint;
    o.data_dir = path;
    o.send_only = send_only;
    o.insecure_plaintext = 1;
    nhub_t *a = NULL;
    if (nhub_open(&o, &a, err, sizeof err) != 0)
        fail_msg("nhub_open %s: %s", region, err);
    return a;
}

/* Send one message from `a` to `dst` with msg_id `given` (NULL: a new one)
 * and wait for its ACK; its msg_id. */
static void send_as(nhub_t *a, const char *dst, const uint8_t *given, uint8_t id[16])
{
    nhub_message_t m;
    memset(&m, 0, sizeof m);
    m.msg_id = given;
    m.destination = dst;
    m.item = "TEST-PUSH";
    m.kind = NHUB_KIND_PUSH;
    m.payload_type = "nhub.test.v1.Counter";
    m.payload = "receipt";
    m.payload_len = 7;
    assert_int_equal(nhub_send(a, &m, id), 0);
    if (nhub_flush(a, WAIT_MS) != 0)
        fail_msg("flush: %s", nhub_last_error(a));
}

static void send_one(nhub_t *a, const char *dst, uint8_t id[16])
{
    send_as(a, dst, NULL, id);
}

struct cli {
    int status;
    char *out, *err;
};
static struct cli run_prog(const fixture_t *fx, const char *prog, const char *const *args);
static void cli_free(struct cli *r);
static void write_text(const char *path, const char *text, size_t len);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Fetch the receipt of `id` as `a` and verify it with the hub's key; the text. */
static char *fetch_ok(const fixture_t *fx, nhub_t *a, const uint8_t id[16],
                      nhub_receipt_info_t *info, double *ms)
{
    char *text = NULL, err[400];
    size_t len = 0;
    double t0 = now_ms();
    int rc = nhub_receipt_get(a, id, WAIT_MS, &text, &len);
    if (ms)
        *ms = now_ms() - t0;
    if (rc != 0)
        fail_msg("nhub_receipt_get: %d %s", rc, nhub_last_error(a));
    assert_int_equal(strlen(text), len);
    if (nhub_receipt_verify(text, len, fx->vkey, id, info, err, sizeof err) != 0)
        fail_msg("verify: %s", err);
    assert_memory_equal(info->msg_id, id, 16);
    return text;
}

static void test_source_destination_and_broadcast_receivers_get_receipts(void **state)
{
    fixture_t *fx = *state;
    nhub_t *src = adapter(fx, "110000", 0), *dst = adapter(fx, "440000", 0),
           *third = adapter(fx, "120000", 0);
    uint8_t id[16], other[16];
    send_one(src, "440000", id);
    send_one(src, "440000", other);

    nhub_receipt_info_t info;
    double signed_ms, covered_ms, dst_ms;
    char *text = fetch_ok(fx, src, id, &info, &signed_ms); /* signs a checkpoint now */
    assert_string_equal(info.source, "110000");
    assert_string_equal(info.destination, "440000");
    assert_string_equal(info.item, "TEST-PUSH");
    assert_string_equal(info.origin, ORIGIN);
    assert_true(info.seq >= 1 && info.seq < info.tree_size + 1);
    char want[64];
    snprintf(want, sizeof want, "\ntree-hash %s\n", fx->tree_hash);
    assert_non_null(strstr(text, want));
    uint64_t first_seq = info.seq;
    /* nhub-audit check-proof takes the receipt as it is, whatever the tree's hash. */
    char rf[512], vkf[512];
    snprintf(rf, sizeof rf, "%s/first.receipt", fx->hub.dir);
    snprintf(vkf, sizeof vkf, "%s/audit.vkey", fx->hub.dir);
    write_text(rf, text, strlen(text));
    write_text(vkf, fx->vkey, strlen(fx->vkey));
    struct cli r =
        run_prog(fx, "nhub-audit", (const char *[]){"check-proof", "--vkey-file", vkf, rf, NULL});
    if (r.status != 0 || strncmp(r.out, "OK receipt of ", 14) != 0)
        fail_msg("nhub-audit check-proof: %d %s %s", r.status, r.out, r.err);
    cli_free(&r);
    free(text);
    text = fetch_ok(fx, src, other, &info, &covered_ms); /* covered by that checkpoint */
    free(text);
    text = fetch_ok(fx, dst, id, &info, &dst_ms); /* the destination, before receiving it */
    assert_int_equal(info.seq, first_seq);
    free(text);
    fprintf(stderr, "receipt fetch (%s): %.2f ms signing a checkpoint, %.2f and %.2f ms covered\n",
            fx->tree_hash, signed_ms, covered_ms, dst_ms);

    /* Neither source nor destination; a msg_id that never came: the same answer. */
    char *none = NULL;
    uint8_t unknown[16];
    memset(unknown, 0x5a, sizeof unknown);
    assert_int_equal(nhub_receipt_get(third, id, WAIT_MS, &none, NULL), NHUB_ENOTFOUND);
    assert_null(none);
    char said[256];
    snprintf(said, sizeof said, "%s", nhub_last_error(third));
    assert_int_equal(nhub_receipt_get(src, unknown, WAIT_MS, &none, NULL), NHUB_ENOTFOUND);
    assert_string_equal(nhub_last_error(src), said);

    /* A broadcast: every receiver may have its receipt. */
    uint8_t b[16];
    send_one(src, "*", b);
    text = fetch_ok(fx, third, b, &info, NULL);
    assert_string_equal(info.destination, "*");
    free(text);

    /* The figures. */
    char *metrics = NULL;
    assert_int_equal(th_http(&fx->hub, "GET", "/metrics", TH_READ_TOKEN, NULL, &metrics, WAIT_MS),
                     200);
    assert_true(th_metric_value(metrics, "nhub_receipts_served_total") >= 4);
    assert_true(th_metric_value(metrics, "nhub_receipts_refused_total{reason=\"unknown\"}") >= 2);
    free(metrics);
    nhub_close(&third);
    nhub_close(&dst);
    nhub_close(&src);
}

/* The verifier key of another hub of the same origin, into out[TLOG_VKEY_MAX]. */
static void another_hub_vkey(char *out)
{
    keys_file_t *k = NULL;
    tlog_signer_t *s = NULL;
    assert_int_equal(keys_generate("000000", KEYS_ED25519, 1764000000000, &k), 0);
    assert_int_equal(tlog_signer_new(ORIGIN, k, &s, NULL, 0), 0);
    assert_int_equal(tlog_signer_vkey(s, out, TLOG_VKEY_MAX), 0);
    tlog_signer_free(&s);
    keys_free(&k);
}

/* Flip one character of the line of `text` starting with `prefix`, `at` into it. */
static void flip(char *text, const char *prefix, size_t at)
{
    char *p = strstr(text, prefix);
    assert_non_null(p);
    p += strlen(prefix) + at;
    *p = *p == 'A' ? 'B' : 'A';
}

static void test_a_receipt_fails_with_another_key_for_another_message_or_altered(void **state)
{
    fixture_t *fx = *state;
    nhub_t *src = adapter(fx, "110000", 1);
    uint8_t id[16];
    send_one(src, "440000", id);
    nhub_receipt_info_t info;
    char *text = fetch_ok(fx, src, id, &info, NULL);
    nhub_close(&src);
    char err[400];
    size_t len = strlen(text);

    /* Another hub's key. */
    char vkey[TLOG_VKEY_MAX];
    another_hub_vkey(vkey);
    assert_int_equal(nhub_receipt_verify(text, len, vkey, id, NULL, err, sizeof err),
                     NHUB_EREFUSED);
    assert_memory_equal(err, "checkpoint: not signed", 22);
    assert_int_equal(nhub_receipt_verify(text, len, "not a key", id, NULL, err, sizeof err),
                     NHUB_EMALFORMED);
    assert_memory_equal(err, "vkey: ", 6);

    /* A byte of the record. */
    char *bad = strdup(text);
    flip(bad, "\nrecord ", 40);
    assert_int_equal(nhub_receipt_verify(bad, len, fx->vkey, id, NULL, err, sizeof err),
                     NHUB_EREFUSED);
    assert_memory_equal(err, "inclusion: ", 11);
    free(bad);
    uint8_t another[16];
    memcpy(another, id, 16);
    another[15] ^= 1;
    assert_int_equal(nhub_receipt_verify(text, len, fx->vkey, another, NULL, err, sizeof err),
                     NHUB_EREFUSED);
    assert_memory_equal(err, "msg_id: ", 8);
    free(text);
}

/* ---- nhub-adapter receipt ------------------------------------------------------ */

/* Run program `prog` with `args` (NULL-terminated); its status, stdout and stderr. */
static struct cli run_prog(const fixture_t *fx, const char *prog, const char *const *args)
{
    char bin[512], errp[512];
    const char *argv[16] = {th_bin(prog, bin, sizeof bin)};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    snprintf(errp, sizeof errp, "%s/cli.err", fx->hub.dir);
    remove(errp);
    th_proc_t p;
    assert_int_equal(th_proc_start(&p, argv, NULL, errp, 0), 0);
    th_proc_read_all(&p, WAIT_MS);
    struct cli r = {th_proc_reap(&p, WAIT_MS), strdup(p.text), NULL};
    th_proc_free(&p);
    size_t len = 0;
    FILE *f = fopen(errp, "r");
    r.err = calloc(1, 4096);
    if (f) {
        len = fread(r.err, 1, 4095, f);
        fclose(f);
    }
    r.err[len] = 0;
    return r;
}

static struct cli run_cli(const fixture_t *fx, const char *const *args)
{
    return run_prog(fx, "nhub-adapter", args);
}

static void cli_free(struct cli *r)
{
    free(r->out);
    free(r->err);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

static void test_adapter_cli_fetches_writes_and_checks_receipts_offline(void **state)
{
    fixture_t *fx = *state;
    char cfg[512], vkf[512], rf[512], yaml[2048], hex[33];
    snprintf(cfg, sizeof cfg, "%s/adapter-cli.yaml", fx->hub.dir);
    snprintf(vkf, sizeof vkf, "%s/hub.vkey", fx->hub.dir);
    snprintf(rf, sizeof rf, "%s/saved.receipt", fx->hub.dir);
    snprintf(yaml, sizeof yaml,
             "adapter:\n  region: \"440000\"\n  hub: \"%s\"\n  data_dir: \"%s/cli-440000\"\n"
             "  insecure_plaintext: true\n  hub_vkey_file: \"%s\"\n",
             fx->hub.endpoint, fx->hub.dir, vkf);
    write_text(cfg, yaml, strlen(yaml));
    char vline[TLOG_VKEY_MAX + 2];
    snprintf(vline, sizeof vline, "%s\n", fx->vkey);
    write_text(vkf, vline, strlen(vline));
    nhub_t *src = adapter(fx, "110000", 1);
    uint8_t id[16];
    send_one(src, "440000", id);
    nhub_close(&src);
    nhub_msg_id_hex(id, hex);

    /* The destination fetches it; the summary names the message; the file is written. */
    struct cli r = run_cli(fx, (const char *[]){"receipt", "-c", cfg, hex, "-o", rf, NULL});
    if (r.status != 0)
        fail_msg("receipt: %d %s %s", r.status, r.out, r.err);
    char want[128];
    snprintf(want, sizeof want, "OK receipt of %s\n", hex);
    assert_non_null(strstr(r.out, want));
    assert_non_null(strstr(r.out, "110000 -> 440000, item TEST-PUSH"));
    assert_non_null(strstr(r.out, "signed by " ORIGIN));
    assert_non_null(strstr(r.out, "wrote "));
    cli_free(&r);

    /* Offline: the file and the key alone. */
    r = run_cli(fx, (const char *[]){"receipt", "--check", rf, "--vkey-file", vkf, NULL});
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, want));
    cli_free(&r);
    r = run_cli(fx, (const char *[]){"receipt", "--check", rf, "--vkey-file", vkf, "--msg-id",
                                     "00000000000000000000000000000001", NULL});
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "msg_id: "));
    cli_free(&r);

    /* Each part altered: --check fails naming it. */
    size_t len;
    char *text = read_text(rf, &len), bad[600];
    snprintf(bad, sizeof bad, "%s/bad.receipt", fx->hub.dir);
    static const struct {
        const char *prefix;
        size_t at;
        const char *part;
    } parts[] = {
        {"\nrecord ", 40, "inclusion: "},
        {"\nindex ", 4, "inclusion: "},
        {"\n\n" ORIGIN "\n", 4, "checkpoint: "},
        {"\xe2\x80\x94 " ORIGIN " ", 12, "checkpoint: "},
        {"\nmsg-id ", 0, "record: "},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char *t = strdup(text);
        if (parts[i].prefix[1] == 'm') { /* a hex digit, not base64 */
            char *d = strstr(t, parts[i].prefix) + strlen(parts[i].prefix);
            *d = *d == '0' ? '1' : '0';
        } else
            flip(t, parts[i].prefix, parts[i].at);
        write_text(bad, t, len);
        free(t);
        r = run_cli(fx, (const char *[]){"receipt", "--check", bad, "--vkey-file", vkf, NULL});
        if (r.status != 1 || !strstr(r.err, parts[i].part))
            fail_msg("part %zu: status %d, \"%s\", want %s", i, r.status, r.err, parts[i].part);
        cli_free(&r);
    }
    free(text);
    r = run_prog(fx, "nhub-audit", (const char *[]){"check-proof", "--vkey-file", vkf, bad, NULL});
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "FAIL record: "));
    cli_free(&r);

    /* Another hub's key; no key at all; an unknown message; a bad MSG_ID. */
    char other[TLOG_VKEY_MAX];
    another_hub_vkey(other);
    r = run_cli(fx, (const char *[]){"receipt", "--check", rf, "--vkey", other, NULL});
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "checkpoint: not signed with key " ORIGIN));
    cli_free(&r);
    r = run_cli(fx, (const char *[]){"receipt", "--check", rf, NULL});
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "no hub verifier key"));
    cli_free(&r);
    r = run_cli(fx, (const char *[]){"receipt", "-c", cfg, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "-o",
                                     bad, NULL});
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.err, "no message of that msg_id"));
    cli_free(&r);
    r = run_cli(fx, (const char *[]){"receipt", "-c", cfg, "xyz", NULL});
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "32 hex digits"));
    cli_free(&r);
}

static void test_receipts_of_old_messages_come_after_a_restart(void **state)
{
    fixture_t *fx = *state;
    nhub_t *src = adapter(fx, "110000", 1);
    uint8_t id[16];
    send_one(src, "440000", id);
    nhub_close(&src);
    assert_int_equal(th_hub_stop(&fx->hub), 0);
    assert_int_equal(th_hub_start(&fx->hub), 0);
    src = adapter(fx, "110000", 1);
    nhub_receipt_info_t info;
    free(fetch_ok(fx, src, id, &info, NULL));
    assert_string_equal(info.destination, "440000");
    nhub_close(&src);
}

/* After the duplicate window (7 days) the hub accepts a msg_id again, from
 * anyone: a region that knows another's msg_id (its destination does) can
 * send a message of its own with it. Each region still gets the receipt of
 * the record it was part of. */
static void test_a_msg_id_reused_after_the_window_takes_no_receipt_away(void **state)
{
    fixture_t *fx = *state;
    nhub_t *src = adapter(fx, "110000", 1), *third = adapter(fx, "120000", 1),
           *dst = adapter(fx, "440000", 1);
    uint8_t id[16], again[16], other[16];
    send_one(src, "440000", id);
    nhub_receipt_info_t info;
    free(fetch_ok(fx, src, id, &info, NULL));
    uint64_t first_seq = info.seq;

    assert_int_equal(th_hub_clock_move(&fx->hub, 8LL * 24 * 3600 * 1000, WAIT_MS), 0);
    send_one(third, "440000", other); /* its commit forgets the old msg_ids */
    send_as(third, "440000", id, again);
    assert_memory_equal(again, id, 16);

    free(fetch_ok(fx, third, id, &info, NULL)); /* its own: accepted, not a duplicate */
    assert_string_equal(info.source, "120000");
    assert_true(info.seq > first_seq);
    uint64_t second_seq = info.seq;
    free(fetch_ok(fx, src, id, &info, NULL)); /* the original source keeps its receipt */
    assert_string_equal(info.source, "110000");
    assert_int_equal(info.seq, first_seq);
    free(fetch_ok(fx, dst, id, &info, NULL)); /* part of both: the newest */
    assert_int_equal(info.seq, second_seq);
    nhub_close(&dst);
    nhub_close(&third);
    nhub_close(&src);
}

static void test_a_hub_without_a_signing_key_says_not_covered(void **state)
{
    fixture_t *fx = *state;
    nhub_t *src = adapter(fx, "110000", 1);
    uint8_t id[16], unknown[16];
    send_one(src, "440000", id);
    char *text = NULL;
    assert_int_equal(nhub_receipt_get(src, id, WAIT_MS, &text, NULL), NHUB_EREFUSED);
    assert_null(text);
    assert_non_null(strstr(nhub_last_error(src), "code 27"));
    assert_non_null(strstr(nhub_last_error(src), "signing key"));
    /* Still no existence told to a stranger. */
    memset(unknown, 0x33, sizeof unknown);
    assert_int_equal(nhub_receipt_get(src, unknown, WAIT_MS, &text, NULL), NHUB_ENOTFOUND);
    nhub_close(&src);
}

int main(void)
{
    const struct CMUnitTest sha256[] = {
        cmocka_unit_test(test_source_destination_and_broadcast_receivers_get_receipts),
        cmocka_unit_test(test_a_receipt_fails_with_another_key_for_another_message_or_altered),
        cmocka_unit_test(test_adapter_cli_fetches_writes_and_checks_receipts_offline),
        cmocka_unit_test(test_receipts_of_old_messages_come_after_a_restart),
        cmocka_unit_test(
            test_a_msg_id_reused_after_the_window_takes_no_receipt_away), /* last: moves the clock
                                                                           */
    };
    const struct CMUnitTest sm3[] = {
        cmocka_unit_test(test_source_destination_and_broadcast_receivers_get_receipts),
    };
    const struct CMUnitTest no_key[] = {
        cmocka_unit_test(test_a_hub_without_a_signing_key_says_not_covered),
    };
    int failed = cmocka_run_group_tests_name("sha256", sha256, setup_sha256, teardown);
    failed += cmocka_run_group_tests_name("sm3", sm3, setup_sm3, teardown);
    failed += cmocka_run_group_tests_name("no_key", no_key, setup_no_key, teardown);
    return failed;
}
