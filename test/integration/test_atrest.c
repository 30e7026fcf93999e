/*
 * test_atrest.c: payload privacy at rest in a real nhubd
 * (security.payload_key_file, broker/atrest.c).
 *
 * Messages carry a marker string in their payload. With a payload key the
 * receiver gets every envelope byte for byte with a signature that still
 * checks, the journal's records hold sealed envelopes (of the configured
 * cipher), the marker appears nowhere in the store's data.mdb, and
 * `nhub-audit verify` passes without the key. A hub without the key is the
 * control: there the marker is found. A record sealed with a key the hub no
 * longer has is counted (nhub_sealed_unopened_total) and logged, never
 * delivered, and stays queued until the hub has its key again. A bad key
 * file stops the hub at start, named.
 */
#include "harness.h"
#include "keys.h"
#include "proc.h"
#include "nhub_journal.pb-c.h"
#include "raw.h"
#include "seal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <openssl/evp.h>

#define MARKER "PLAINTEXT-MARKER-7f3a"
#define SRC "110000"
#define DST "120000"
#define TYPE "nhub.test.v1.Ping"

static void *g_ctx;

static const char KEY_A[] = "8c1f0e52a7b94d3e61f20a9c4b7d8e15f3a2c6b9d0e4f7a18b5c2d9e6f3a0b47\n";
static const char KEY_B[] = "0b47f3a2c6b9d0e4f7a18b5c2d9e6f3a8c1f0e52a7b94d3e61f20a9c4b7d8e15\n";

typedef struct fixture {
    th_hub_t hub;
    keys_file_t *signer; /* the sending region's key: envelopes are signed */
    keys_verifier_t *verifier;
} fixture_t;

static void write_key(const fixture_t *fx, const char *name, const char *text, mode_t mode)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", fx->hub.dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The development mode with payload key file `name` (NULL: none) and `cipher` (NULL: default). */
static void use_key(fixture_t *fx, const char *name, const char *cipher)
{
    int n = snprintf(fx->hub.security, sizeof fx->hub.security,
                     "security:\n  mode: insecure-plaintext\n");
    if (name)
        n += snprintf(fx->hub.security + n, sizeof fx->hub.security - (size_t)n,
                      "  payload_key_file: \"%s/%s\"\n", fx->hub.dir, name);
    if (cipher)
        snprintf(fx->hub.security + n, sizeof fx->hub.security - (size_t)n,
                 "  payload_cipher: %s\n", cipher);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    char err[256];
    if (!fx || th_hub_init(&fx->hub, "  redeliver_after: 30s\n") != 0 ||
        keys_generate(SRC, KEYS_ED25519, 1764000000000, &fx->signer) != 0 ||
        keys_verifier_parse(fx->signer->sign_public, &fx->verifier, err, sizeof err) != 0)
        return -1;
    write_key(fx, "a.key", KEY_A, 0600);
    write_key(fx, "b.key", KEY_B, 0600);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    keys_verifier_free(&fx->verifier);
    keys_free(&fx->signer);
    th_hub_cleanup(&fx->hub);
    free(fx);
    return 0;
}

static void start(fixture_t *fx)
{
    if (th_hub_start(&fx->hub) != 0) {
        th_log_dump(&fx->hub, stderr);
        fail_msg("the hub did not start");
    }
}

static void stop(fixture_t *fx)
{
    assert_int_equal(th_hub_stop(&fx->hub), 0);
}

/* Message `n`: a signed envelope whose payload holds MARKER; into buf, its length. */
static size_t message(const fixture_t *fx, int n, uint8_t *buf, size_t cap, uint8_t *sig,
                      size_t *siglen)
{
    uint8_t id[16];
    char payload[64];
    raw_make_id(id, n);
    snprintf(payload, sizeof payload, "%s number %d", MARKER, n);
    size_t len = raw_envelope(buf, cap, id, SRC, DST, TYPE, payload, strlen(payload));
    *siglen = 128;
    assert_int_equal(keys_sign(fx->signer->signer, buf, len, sig, siglen), 0);
    return len;
}

/* Send messages first..last (each ACKed), keeping their envelopes in env[]. */
static void send_range(fixture_t *fx, int first, int last, uint8_t env[][256], size_t *len)
{
    raw_t *a = raw_new(g_ctx, fx->hub.endpoint); /* a new stream: stream_seq from 1 */
    raw_hello_ok(a, SRC, 8);
    uint64_t sseq = 0;
    for (int n = first; n <= last; n++) {
        uint8_t sig[128];
        size_t siglen;
        len[n] = message(fx, n, env[n], sizeof env[n], sig, &siglen);
        raw_send_signed(a, ++sseq, env[n], len[n], sig, siglen, fx->signer->sign_id);
        wire_ack_t *ack = raw_expect(a, WIRE_ACK);
        assert_false(ack->duplicate);
        wire_free((ProtobufCMessage **)&ack);
    }
    raw_free(&a);
}

/* Receive `count` DELIVERs as DST: each one of env[first..] byte for byte,
 * its signature checking; confirmed. */
static void receive_range(fixture_t *fx, int first, int count, uint8_t env[][256],
                          const size_t *len)
{
    raw_t *b = raw_new(g_ctx, fx->hub.endpoint);
    raw_hello_ok(b, DST, 16);
    int seen = 0;
    for (int i = 0; i < count; i++) {
        wire_deliver_t *d = raw_expect(b, WIRE_DELIVER);
        int n = first + (int)d->dseq - 1;
        assert_true(n >= first && n < first + count);
        assert_int_equal(d->envelope.len, len[n]);
        assert_memory_equal(d->envelope.data, env[n], len[n]);
        assert_int_equal(keys_verify(fx->verifier, d->envelope.data, d->envelope.len,
                                     d->signature.data, d->signature.len),
                         0);
        seen |= 1 << (n - first);
        raw_confirm(b, d);
        wire_free((ProtobufCMessage **)&d);
    }
    assert_int_equal(seen, (1 << count) - 1);
    raw_free(&b);
}

struct sealed_count {
    int accepted, sealed, cipher_ok;
    int want_cipher;
};

static void count_sealed(const th_journal_event_t *ev, void *arg)
{
    struct sealed_count *c = arg;
    if (ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED)
        return;
    c->accepted++;
    if (seal_is_sealed(ev->envelope.data, ev->envelope.len)) {
        c->sealed++;
        c->cipher_ok += ev->envelope.data[1] == c->want_cipher;
    }
}

/* Whether `needle` occurs anywhere in the store's data.mdb. */
static int store_contains(const fixture_t *fx, const char *needle)
{
    char path[400];
    snprintf(path, sizeof path, "%s/hub-data/data.mdb", fx->hub.dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    assert_true(p != MAP_FAILED);
    int found = memmem(p, (size_t)st.st_size, needle, strlen(needle)) != NULL;
    munmap(p, (size_t)st.st_size);
    close(fd);
    return found;
}

/* nhub-audit verify --data on the hub's store (no key): its exit status. */
static int audit_verify(const fixture_t *fx)
{
    char data[400];
    th_run_t r;
    snprintf(data, sizeof data, "%s/hub-data", fx->hub.dir);
    th_run_tool("nhub-audit", fx->hub.dir, NULL,
                (const char *const[]){"verify", "--data", data, NULL}, &r);
    if (r.status != 0)
        fprintf(stderr, "%s%s", r.out, r.err);
    return r.status == 0 ? 0 : -1;
}

/* nhub-audit replay --data on the hub's store, with payload key file `key`
 * (NULL: none): its whole stdout into out[outcap] (more than th_run_t
 * holds), its stderr into *r; its exit status. */
static int audit_replay(const fixture_t *fx, const char *key, char *out, size_t outcap, th_run_t *r)
{
    char data[400], keyfile[400], out_file[400];
    snprintf(data, sizeof data, "%s/hub-data", fx->hub.dir);
    snprintf(keyfile, sizeof keyfile, "%s/%s", fx->hub.dir, key ? key : "");
    snprintf(out_file, sizeof out_file, "%s/replay.out", fx->hub.dir);
    const char *args[] = {"replay", "--data", data, key ? "--payload-key-file" : NULL,
                          keyfile,  NULL};
    th_run_tool("nhub-audit", fx->hub.dir, out_file, args, r);
    th_read_text(out_file, out, outcap);
    return r->status;
}

/* Whether replay's output holds envelope `env` as received, in base64. */
static int replay_has(const char *out, const uint8_t *env, size_t len)
{
    char b64[400];
    assert_true(4 * ((len + 2) / 3) < sizeof b64);
    EVP_EncodeBlock((unsigned char *)b64, env, (int)len);
    return strstr(out, b64) != NULL;
}

/* replay without the key marks the envelopes sealed; with it, gives them
 * as the region sent them; with another key, marks them and says why. */
static void replay_opens_with_the_key(const fixture_t *fx, uint8_t env[][256], const size_t *len,
                                      int count)
{
    static char out[1 << 16];
    th_run_t r;
    assert_int_equal(audit_replay(fx, NULL, out, sizeof out, &r), 0);
    assert_non_null(strstr(out, "\"sealed\":true"));
    for (int n = 1; n <= count; n++)
        assert_false(replay_has(out, env[n], len[n]));
    assert_int_equal(audit_replay(fx, "a.key", out, sizeof out, &r), 0);
    assert_null(strstr(out, "\"sealed\":true"));
    for (int n = 1; n <= count; n++)
        assert_true(replay_has(out, env[n], len[n]));
    assert_int_equal(audit_replay(fx, "b.key", out, sizeof out, &r), 0);
    assert_non_null(strstr(out, "\"sealed\":true"));
    assert_non_null(strstr(r.err, "did not open with --payload-key-file"));
    assert_non_null(strstr(r.err, "sealed with another key"));
    assert_int_equal(audit_replay(fx, "missing.key", out, sizeof out, &r), 2);
    assert_non_null(strstr(r.err, "--payload-key-file"));
}

static void sealed_round_trip(void **state, const char *cipher, int want)
{
    fixture_t *fx = *state;
    uint8_t env[8][256];
    size_t len[8];
    use_key(fx, "a.key", cipher);
    start(fx);
    assert_true(th_log_contains(&fx->hub, "event=hub.payloads_sealed"));
    send_range(fx, 1, 5, env, len);
    receive_range(fx, 1, 5, env, len);
    struct sealed_count c = {.want_cipher = want};
    assert_int_equal(th_journal_foreach(&fx->hub, count_sealed, &c), 0);
    assert_int_equal(c.accepted, 5);
    assert_int_equal(c.sealed, 5);
    assert_int_equal(c.cipher_ok, 5);
    stop(fx);
    assert_false(store_contains(fx, MARKER));
    assert_int_equal(audit_verify(fx), 0);
    replay_opens_with_the_key(fx, env, len, 5);
}

static void test_aes_sealed_messages_delivered_byte_for_byte_store_hides_them(void **state)
{
    sealed_round_trip(state, NULL, SEAL_AES_256_GCM);
}

static void test_sm4_sealed_messages_delivered_byte_for_byte_store_hides_them(void **state)
{
    sealed_round_trip(state, "sm4-ctr-hmac-sm3", SEAL_SM4_CTR_HMAC_SM3);
}

static void test_clear_records_stay_readable_after_sealing_is_turned_on(void **state)
{
    fixture_t *fx = *state;
    uint8_t env[8][256];
    size_t len[8];
    use_key(fx, NULL, NULL);
    start(fx);
    send_range(fx, 1, 2, env, len);
    stop(fx);
    assert_true(store_contains(fx, MARKER)); /* the control: the search finds a clear one */
    use_key(fx, "a.key", NULL);
    start(fx);
    send_range(fx, 3, 4, env, len);
    receive_range(fx, 1, 4, env, len);
    struct sealed_count c = {.want_cipher = SEAL_AES_256_GCM};
    assert_int_equal(th_journal_foreach(&fx->hub, count_sealed, &c), 0);
    assert_int_equal(c.accepted, 4);
    assert_int_equal(c.sealed, 2);
    stop(fx);
    assert_int_equal(audit_verify(fx), 0);
}

static void test_message_sealed_with_another_key_stays_queued_until_the_key_returns(void **state)
{
    fixture_t *fx = *state;
    uint8_t env[8][256];
    size_t len[8];
    use_key(fx, "a.key", NULL);
    start(fx);
    send_range(fx, 1, 3, env, len); /* DST is not connected: they queue */
    stop(fx);

    use_key(fx, "b.key", NULL);
    snprintf(fx->hub.http, sizeof fx->hub.http, "%s", TH_HTTP_YAML);
    start(fx);
    raw_t *b = raw_new(g_ctx, fx->hub.endpoint);
    raw_hello_ok(b, DST, 16);
    assert_true(th_log_wait(&fx->hub, "event=hub.sealed_unopened", 1, 10000));
    char *text = NULL;
    assert_int_equal(th_http(&fx->hub, "GET", "/metrics", TH_READ_TOKEN, NULL, &text, 10000), 200);
    assert_true(th_metric_value(text, "nhub_sealed_unopened_total") >= 1);
    free(text);
    assert_true(th_log_contains(&fx->hub, "reason=\"sealed with another key\""));
    assert_false(th_log_contains(&fx->hub, MARKER));
    /* The attempt was made and refused: a heartbeat's answer comes, no DELIVER before it. */
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    raw_send(b, WIRE_HEARTBEAT, &hb.base);
    ProtobufCMessage *m = NULL;
    assert_int_equal(raw_recv(b, &m, 10000), WIRE_HEARTBEAT);
    wire_free(&m);
    raw_free(&b);
    stop(fx);

    use_key(fx, "a.key", NULL);
    fx->hub.http[0] = '\0';
    start(fx);
    receive_range(fx, 1, 3, env, len);
    stop(fx);
}

static void test_bad_payload_key_file_stops_the_hub_naming_it(void **state)
{
    fixture_t *fx = *state;
    write_key(fx, "open.key", KEY_A, 0644);
    use_key(fx, "open.key", NULL);
    assert_int_not_equal(th_hub_start(&fx->hub), 0);
    assert_true(th_log_contains(&fx->hub, "open.key"));
    assert_true(th_log_contains(&fx->hub, "chmod 600"));
    write_key(fx, "short.key", "0123abcd\n", 0600);
    use_key(fx, "short.key", NULL);
    assert_int_not_equal(th_hub_start(&fx->hub), 0);
    assert_true(th_log_contains(&fx->hub, "short.key: 9 bytes"));
    assert_false(th_log_contains(&fx->hub, "0123abcd"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    srand(7);
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_aes_sealed_messages_delivered_byte_for_byte_store_hides_them, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sm4_sealed_messages_delivered_byte_for_byte_store_hides_them, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_records_stay_readable_after_sealing_is_turned_on,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_message_sealed_with_another_key_stays_queued_until_the_key_returns, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_bad_payload_key_file_stops_the_hub_naming_it, setup,
                                        teardown),
    };
    int rc = cmocka_run_group_tests_name("atrest", tests, NULL, NULL);
    if (rc == 0)
        zmq_ctx_term(g_ctx);
    return rc;
}
