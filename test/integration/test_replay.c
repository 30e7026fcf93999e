/*
 * test_replay.c: nhub-audit replay and trace over the store of a real
 * nhubd on the production catalogue, traffic sent by raw wire clients so
 * the test holds every envelope's bytes as sent. replay of a time range
 * gives back those envelopes byte for byte and in order; its filters keep
 * what they name; trace tells a case's story in order; replay --into sends
 * the selected messages to a second hub, whose receiver gets the same
 * payloads; bad arguments exit 2 naming the problem.
 */
#include "harness.h"
#include "keys.h"
#include "log.h"
#include "proc.h"
#include "raw.h"
#include "samples.h"

#include "nhub_journal.pb-c.h"

#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include <openssl/evp.h>

#include <cmocka.h>

#define A "110000" /* pushes to B, notices to C */
#define B "440000" /* handles */
#define C "310000" /* asks B */
#define K(x) NHUB__WIRE__V1__KIND__KIND_##x
#define PUSHES 3
#define ASKS 2
#define SENT (PUSHES + ASKS + 1)
#define HOUR INT64_C(3600000)

typedef struct sent {
    uint8_t id[16];
    uint8_t env[4096];
    size_t len;
    const char *src, *dst, *item;
} sent_t;

typedef struct world {
    th_hub_t *h, *h2; /* the audited hub; the test hub replay --into sends to */
    void *ctx;
    raw_t *send_a, *send_c, *send_b, *read_b, *read_b2;
    uint64_t sseq_a, sseq_c, sseq_b;
    sent_t sent[SENT];
    char from[40], to[40]; /* a time range around the traffic */
    char data[400];
    int next_id;
} world_t;

static th_hub_t *new_hub(void)
{
    th_hub_t *h = calloc(1, sizeof *h);
    if (!h || th_hub_init(h, NULL) != 0 || th_hub_insecure_catalog(h, "schemas/catalog.yaml") != 0 ||
        th_hub_start(h) != 0) {
        if (h)
            th_hub_cleanup(h);
        free(h);
        return NULL;
    }
    return h;
}

static int setup(void **state)
{
    world_t *w = calloc(1, sizeof *w);
    if (!w || !(w->h = new_hub()) || !(w->h2 = new_hub()) || !(w->ctx = zmq_ctx_new()))
        return -1;
    snprintf(w->data, sizeof w->data, "%s/hub-data", w->h->dir);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world_t *w = *state;
    raw_free(&w->send_a);
    raw_free(&w->send_c);
    raw_free(&w->send_b);
    raw_free(&w->read_b);
    raw_free(&w->read_b2);
    zmq_ctx_term(w->ctx);
    void *h2 = w->h2;
    th_group_teardown(&h2);
    void *h = w->h;
    free(w);
    return th_group_teardown(&h);
}

/* ---- nhub-audit as a child ------------------------------------------------------ */

typedef struct run {
    int status;
    char *out; /* caller frees */
    char err[4096];
} run_t;

static void run_audit(const world_t *w, run_t *r, const char *const *args)
{
    char bin[512], err_path[400];
    const char *argv[40];
    size_t n = 0;
    th_proc_t p;
    memset(&p, 0, sizeof p);
    argv[n++] = th_bin("nhub-audit", bin, sizeof bin);
    for (; *args && n < sizeof argv / sizeof argv[0] - 1; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    snprintf(err_path, sizeof err_path, "%s/audit.err", w->h->dir);
    remove(err_path);
    assert_int_equal(th_proc_start(&p, argv, NULL, err_path, 0), 0);
    assert_int_equal(th_proc_read_all(&p, 30000), 1);
    r->status = th_proc_reap(&p, 10000);
    r->out = strdup(p.text);
    th_proc_free(&p);
    FILE *f = fopen(err_path, "r");
    size_t k = f ? fread(r->err, 1, sizeof r->err - 1, f) : 0;
    r->err[k] = '\0';
    if (f)
        fclose(f);
}

#define AUDIT(w, r, ...) run_audit(w, r, (const char *const[]){__VA_ARGS__, NULL})

/* nhub-audit with `args` exits with `status`, its output (stdout or
 * stderr, NULL: either) holding `has` (NULL: anything) and not `lacks`. */
static void expect_run(const world_t *w, int status, const char *has, const char *lacks,
                       const char *const *args)
{
    run_t r;
    run_audit(w, &r, args);
    if (r.status != status || (has && !strstr(r.out, has) && !strstr(r.err, has)) ||
        (lacks && strstr(r.out, lacks)))
        fail_msg("nhub-audit %s: status %d (expected %d), out: %.300s, err: %s", args[0], r.status,
                 status, r.out, r.err);
    free(r.out);
}

#define EXPECT(w, status, has, lacks, ...)                                                         \
    expect_run(w, status, has, lacks, (const char *const[]){__VA_ARGS__, NULL})

/* The JSON lines of `text`, each parsed; *n = how many. Caller frees with lines_free. */
static json_t **parse_lines(const char *text, size_t *n)
{
    size_t cap = 16;
    json_t **v = malloc(cap * sizeof *v);
    *n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
        if (!j)
            fail_msg("not JSON (%s): %.*s", e.text, (int)(nl - p), p);
        if (*n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = j;
        p = nl + 1;
    }
    return v;
}

static void lines_free(json_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i]);
    free(v);
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* The "accepted" lines of nhub-audit `args` (which must exit 0), in order; *n = how many. */
static json_t **replay_accepted(const world_t *w, const char *const *args, size_t *n)
{
    run_t r;
    size_t all = 0;
    run_audit(w, &r, args);
    if (r.status != 0)
        fail_msg("replay: status %d: %s", r.status, r.err);
    json_t **v = parse_lines(r.out, &all);
    free(r.out);
    *n = 0;
    for (size_t i = 0; i < all; i++) {
        if (strcmp(str(v[i], "type"), "accepted") == 0)
            v[(*n)++] = v[i];
        else
            json_decref(v[i]);
    }
    return v;
}

static void hex(const uint8_t id[16], char out[33])
{
    log_hex(out, 33, id, 16);
}

/* ---- traffic ----------------------------------------------------------------------- */

static raw_t *sender(world_t *w, th_hub_t *h, const char *region)
{
    raw_t *r = raw_new(w->ctx, h->endpoint);
    raw_hello_ok(r, region, 0);
    return r;
}

static raw_t *reader(world_t *w, th_hub_t *h, const char *region)
{
    raw_t *r = raw_new(w->ctx, h->endpoint);
    char *accept[] = {"nhub.insured.v1.*", "nhub.push.v1.*", "nhub.credit.v1.*", "nhub.case.v1.*"};
    wire_welcome_t *wel = raw_hello(r, region, 8, accept, 4);
    wire_free((ProtobufCMessage **)&wel);
    return r;
}

/* SEND one envelope and require its ACK. */
static void send_env(raw_t *r, uint64_t *sseq, const uint8_t *env, size_t len)
{
    raw_send_env(r, ++*sseq, env, len);
    ProtobufCMessage *m = NULL;
    int cmd = raw_recv_answer(r, &m, 10000);
    if (cmd != WIRE_ACK)
        fail_msg("not ACKed: cmd %d code %d %s", cmd,
                 cmd == WIRE_NACK ? (int)((wire_nack_t *)m)->code : 0,
                 cmd == WIRE_NACK ? ((wire_nack_t *)m)->text : "");
    wire_free(&m);
}

static void send_one(world_t *w, sent_t *s, const char *src, const char *dst, const char *item,
                     int kind, const char *type, const uint8_t *correlation)
{
    size_t plen;
    uint8_t *p = sample_bytes(type, &plen);
    assert_non_null(p);
    raw_make_id(s->id, ++w->next_id);
    s->src = src;
    s->dst = dst;
    s->item = item;
    s->len = raw_envelope_answer(s->env, sizeof s->env, s->id, src, dst, item, kind, type, p,
                                 plen, correlation);
    free(p);
    if (!strcmp(src, A))
        send_env(w->send_a, &w->sseq_a, s->env, s->len);
    else if (!strcmp(src, B))
        send_env(w->send_b, &w->sseq_b, s->env, s->len);
    else
        send_env(w->send_c, &w->sseq_c, s->env, s->len);
}

/* The next delivery to `r`: confirmed, its envelope returned (free with wire_free). */
static wire_envelope_t *take(raw_t *r)
{
    wire_deliver_t *d = raw_expect(r, WIRE_DELIVER);
    raw_confirm(r, d);
    ProtobufCMessage *e = NULL;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope.data,
                                 d->envelope.len, d->envelope.len, &e),
                     0);
    wire_free((ProtobufCMessage **)&d);
    return (wire_envelope_t *)e;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct find_confirmed {
    const uint8_t *id;
    int found;
} find_confirmed_t;

static void is_confirmed(const th_journal_event_t *ev, void *arg)
{
    find_confirmed_t *f = arg;
    f->found |= ev->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIRMED &&
                ev->msg_id.len == 16 && memcmp(ev->msg_id.data, f->id, 16) == 0;
}

/* Until the hub has journaled the confirmation of `id` (10 s at most). */
static void wait_confirmed(const world_t *w, const uint8_t id[16])
{
    int64_t until = th_now_ms() + 10000;
    find_confirmed_t f = {id, 0};
    while (!f.found && th_now_ms() < until) {
        assert_int_equal(th_journal_foreach(w->h, is_confirmed, &f), 0);
        if (!f.found)
            poll(NULL, 0, 10); /* the hub commits it on its own: look again shortly */
    }
    assert_true(f.found);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_replay_gives_back_the_envelopes_in_order(void **state)
{
    world_t *w = *state;
    char when[40];
    /* Whole seconds around the traffic: the hub's clock is the system's. */
    log_time(when, sizeof when, (wall_ms() / 1000 - 1) * 1000);
    snprintf(w->from, sizeof w->from, "%.19sZ", when);
    w->send_a = sender(w, w->h, A);
    w->send_c = sender(w, w->h, C);
    w->send_b = sender(w, w->h, B);
    size_t k = 0;
    for (int i = 0; i < PUSHES; i++)
        send_one(w, &w->sent[k++], A, B, "SI-PUSH-001", K(PUSH), "nhub.push.v1.Application", NULL);
    for (int i = 0; i < ASKS; i++)
        send_one(w, &w->sent[k++], C, B, "SI-VERIFY-002", K(REQUEST), "nhub.insured.v1.StatusQuery",
                 NULL);
    send_one(w, &w->sent[k++], A, C, "SI-NOTICE-001", K(NOTICE), "nhub.credit.v1.CreditNotice",
             NULL);
    log_time(when, sizeof when, (wall_ms() / 1000 + 2) * 1000);
    snprintf(w->to, sizeof w->to, "%.19sZ", when);

    size_t n = 0, got = 0;
    json_t **v = replay_accepted(
        w, (const char *const[]){"replay", "--data", w->data, "--from", w->from, "--to", w->to, NULL},
        &n);
    assert_int_equal(n, SENT);
    for (size_t i = 0; i < n; i++) {
        const char *b64 = str(v[i], "envelope");
        uint8_t env[4096];
        int len = EVP_DecodeBlock(env, (const unsigned char *)b64, (int)strlen(b64));
        assert_true(len >= (int)w->sent[got].len);
        /* EVP_DecodeBlock counts the padding as bytes: at most two more */
        assert_true((size_t)len - w->sent[got].len <= 2);
        assert_memory_equal(env, w->sent[got].env, w->sent[got].len);
        char id[33];
        hex(w->sent[got].id, id);
        assert_string_equal(str(v[i], "msg_id"), id);
        assert_string_equal(str(v[i], "source"), w->sent[got].src);
        assert_string_equal(str(v[i], "item"), w->sent[got].item);
        assert_non_null(strchr(str(v[i], "time"), 'T'));
        assert_true(json_integer_value(json_object_get(v[i], "seq")) > 0);
        got++;
    }
    lines_free(v, n);

    /* A range that ends before the traffic has none of it. */
    EXPECT(w, 0, NULL, "\"accepted\"", "replay", "--data", w->data, "--to", w->from);
}

/* The accepted lines of a replay with `filter` and `value`: their msg_ids must be sent[want[i]]. */
static void assert_replay_keeps(world_t *w, const char *filter, const char *value,
                                const int *want, size_t nwant)
{
    size_t n = 0;
    json_t **v = replay_accepted(
        w, (const char *const[]){"replay", "--data", w->data, "--from", w->from, filter, value, NULL},
        &n);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++) {
        char id[33];
        hex(w->sent[want[i]].id, id);
        if (strcmp(str(v[i], "msg_id"), id) != 0)
            fail_msg("replay %s %s: line %zu is %s, expected %s", filter, value, i,
                     str(v[i], "msg_id"), id);
    }
    lines_free(v, n);
}

static void test_replay_filters_by_region_item_and_message(void **state)
{
    world_t *w = *state;
    const int of_c[] = {3, 4, 5}, verify[] = {3, 4}, push[] = {0, 1, 2}, one[] = {1};
    assert_replay_keeps(w, "--region", C, of_c, 3);
    assert_replay_keeps(w, "--item", "SI-VERIFY-002", verify, 2);
    assert_replay_keeps(w, "--item", "SI-PUSH-001", push, 3);
    char id[33];
    hex(w->sent[1].id, id);
    assert_replay_keeps(w, "--msg", id, one, 1);

    /* B takes the first message for it (an urgent request comes before the
     * pushes): the message's story grows by its confirmation, found by --msg,
     * and by --item through the record it points at. */
    w->read_b = reader(w, w->h, B);
    wire_envelope_t *e = take(w->read_b);
    size_t k = 0;
    while (k < SENT && memcmp(e->msg_id.data, w->sent[k].id, 16) != 0)
        k++;
    assert_true(k < SENT);
    wire_free((ProtobufCMessage **)&e);
    char first[33];
    hex(w->sent[k].id, first);
    wait_confirmed(w, w->sent[k].id);
    run_t r;
    size_t n = 0, confirmed = 0;
    AUDIT(w, &r, "replay", "--data", w->data, "--msg", first);
    assert_int_equal(r.status, 0);
    json_t **v = parse_lines(r.out, &n);
    free(r.out);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(str(v[i], "msg_id"), first);
        if (!strcmp(str(v[i], "type"), "confirmed")) {
            assert_string_equal(str(v[i], "region"), B);
            confirmed++;
        }
    }
    assert_string_equal(str(v[0], "type"), "accepted");
    assert_int_equal(confirmed, 1);
    lines_free(v, n);
    EXPECT(w, 0, "\"type\":\"confirmed\"", NULL, "replay", "--data", w->data, "--item",
           w->sent[k].item);
    EXPECT(w, 0, NULL, "\"type\":\"confirmed\"", "replay", "--data", w->data, "--item",
           "SI-NOTICE-001");

    /* --payloads: the push decoded through the schemas. */
    hex(w->sent[0].id, first);
    AUDIT(w, &r, "replay", "--data", w->data, "--msg", first, "--payloads");
    assert_int_equal(r.status, 0);
    v = parse_lines(r.out, &n);
    assert_true(json_is_object(json_object_get(v[0], "payload")));
    assert_string_equal(str(v[0], "kind"), "push");
    assert_null(json_object_get(v[0], "payload_base64"));
    lines_free(v, n);
    free(r.out);
}

static void test_bad_arguments_exit_2_naming_the_problem(void **state)
{
    world_t *w = *state;
    const char *d = w->data;
    EXPECT(w, 2, "--from \"yesterday\" is not a UTC time", NULL, "replay", "--data", d, "--from",
           "yesterday");
    EXPECT(w, 2, "--to \"2026-02-30\"", NULL, "replay", "--data", d, "--to", "2026-02-30");
    EXPECT(w, 2, "unknown option \"--frmo\"", NULL, "replay", "--data", d, "--frmo", w->from);
    EXPECT(w, 2, "--msg \"123\" is not an id", NULL, "replay", "--data", d, "--msg", "123");
    EXPECT(w, 2, "--region \"11\" is not a region code", NULL, "replay", "--data", d, "--region",
           "11");
    EXPECT(w, 2, "\"zz\" is not a msg_id or case id", NULL, "trace", "--data", d, "zz");
    EXPECT(w, 1, "has nothing of", NULL, "trace", "--data", d, "00000000000000000000000000000001");
    EXPECT(w, 2, "takes ID, 0 given", NULL, "trace", "--data", d);
}

/* `text` holds the words of want[] as "seq N WORD" in that order. */
static void assert_story(const char *text, const char *const *want, size_t n)
{
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, " %s ", want[i]);
        const char *q = strstr(p, needle);
        if (!q)
            fail_msg("trace: \"%s\" missing after position %zu in:\n%s", want[i],
                     (size_t)(p - text), text);
        p = strchr(q, '\n');
        assert_non_null(p);
    }
}

static void test_trace_tells_a_case_in_order(void **state)
{
    world_t *w = *state;
    uint8_t *case_id = w->sent[3].id; /* C asked B */
    char id[33];
    hex(case_id, id);
    /* B takes what waits for it (the other pushes, the two requests). */
    for (int i = 0; i < PUSHES - 1 + ASKS; i++) {
        wire_envelope_t *e = take(w->read_b);
        wire_free((ProtobufCMessage **)&e);
    }
    /* 17 hours on: past the reminder point (16h); B is reminded. */
    assert_int_equal(th_hub_clock_move(w->h, 17 * HOUR, 10000), 0);
    wire_envelope_t *e = take(w->read_b);
    assert_string_equal(e->payload_type, "nhub.case.v1.CaseNotice");
    wire_free((ProtobufCMessage **)&e);
    /* B answers. */
    sent_t answer;
    send_one(w, &answer, B, C, "SI-VERIFY-002", K(RESPONSE), "nhub.insured.v1.StatusAnswer",
             case_id);

    run_t r;
    AUDIT(w, &r, "trace", "--data", w->data, id);
    if (r.status != 0)
        fprintf(stderr, "trace: %s%s\n", r.out, r.err);
    assert_int_equal(r.status, 0);
    const char *story[] = {"accepted",     "confirmed", "case_delivered", "case_reminded",
                           "hub_message", "accepted",  "case_answered"};
    assert_story(r.out, story, sizeof story / sizeof story[0]);
    char line[128];
    snprintf(line, sizeof line, "accepted %s -> %s item SI-VERIFY-002 msg %s", C, B, id);
    assert_non_null(strstr(r.out, line));
    assert_non_null(strstr(r.out, "state answered"));
    assert_non_null(strstr(r.out, "notice nhub.case.v1.CaseNotice (reminder)"));
    /* Nothing of the other messages. */
    char other[33];
    hex(w->sent[4].id, other);
    assert_null(strstr(r.out, other));
    free(r.out);

    /* --json: replay's lines, the same records. */
    AUDIT(w, &r, "trace", "--data", w->data, id, "--json");
    assert_int_equal(r.status, 0);
    size_t n = 0;
    json_t **v = parse_lines(r.out, &n);
    assert_true(n >= sizeof story / sizeof story[0]);
    assert_string_equal(str(v[0], "type"), "accepted");
    assert_string_equal(str(v[0], "case_id"), id);
    lines_free(v, n);
    free(r.out);
}

/* The payload of an envelope's bytes (a copy into out; its length). */
static size_t payload_of(const uint8_t *env, size_t len, uint8_t *out, size_t cap)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, env, len, len, &m), 0);
    const wire_envelope_t *e = (const wire_envelope_t *)m;
    assert_true(e->payload.len <= cap);
    memcpy(out, e->payload.data, e->payload.len);
    size_t n = e->payload.len;
    wire_free(&m);
    return n;
}

static void test_replay_into_a_second_hub_delivers_the_same_messages(void **state)
{
    world_t *w = *state;
    w->read_b2 = reader(w, w->h2, B);
    run_t r;
    AUDIT(w, &r, "replay", "--data", w->data, "--item", "SI-PUSH-001", "--into", w->h2->endpoint,
          "--insecure-plaintext");
    if (r.status != 0)
        fprintf(stderr, "replay --into: %s%s\n", r.out, r.err);
    assert_int_equal(r.status, 0);
    char want[256];
    snprintf(want, sizeof want, "OK %d messages into %s: %d sent, %d acknowledged, 0 refused",
             PUSHES, w->h2->endpoint, PUSHES, PUSHES);
    assert_memory_equal(r.out, want, strlen(want));
    free(r.out);
    /* B's receiver at the second hub gets the pushes, in order, the same ids and payloads. */
    for (int i = 0; i < PUSHES; i++) {
        wire_envelope_t *e = take(w->read_b2);
        uint8_t p[4096];
        size_t n = payload_of(w->sent[i].env, w->sent[i].len, p, sizeof p);
        assert_memory_equal(e->msg_id.data, w->sent[i].id, 16);
        assert_string_equal(e->source, A);
        assert_string_equal(e->item, "SI-PUSH-001");
        assert_int_equal(e->payload.len, n);
        assert_memory_equal(e->payload.data, p, n);
        wire_free((ProtobufCMessage **)&e);
    }
    /* Again: the second hub knows them already (duplicates are acknowledged). */
    EXPECT(w, 0, "3 acknowledged", NULL, "replay", "--data", w->data, "--item", "SI-PUSH-001",
           "--into", w->h2->endpoint, "--insecure-plaintext");

    /* No endpoint named, no security named, not an endpoint: refused. */
    EXPECT(w, 2, "a value is missing after \"--into\"", NULL, "replay", "--data", w->data,
           "--into");
    EXPECT(w, 2, "--insecure-plaintext", NULL, "replay", "--data", w->data, "--into",
           w->h2->endpoint);
    EXPECT(w, 2, "is not a hub endpoint", NULL, "replay", "--data", w->data, "--into",
           "127.0.0.1:7400", "--insecure-plaintext");
}

/* One `keys:` entry of a region in the hub configuration. */
static void region_keys(char *out, size_t cap, const keys_file_t *k)
{
    snprintf(out, cap, "    keys:\n      - curve: \"%s\"\n        sign: \"%s\"\n", k->curve_public,
             k->sign_public);
}

static int region_index(const char *code)
{
    int i = 0;
    while (th_regions[i] && strcmp(th_regions[i], code) != 0)
        i++;
    assert_non_null(th_regions[i]);
    return i;
}

static void test_replay_into_a_curve_hub_with_the_regions_keys(void **state)
{
    world_t *w = *state;
    th_hub_t h3;
    keys_file_t *hub = NULL, *a = NULL, *b = NULL;
    char dir[400], path[500], pub[500], err[512], catalog[4096], ya[512], yb[512];
    assert_int_equal(th_hub_init(&h3, NULL), 0);
    assert_int_equal(keys_generate("000000", KEYS_ED25519, 1764000000000, &hub), 0);
    assert_int_equal(keys_generate(A, KEYS_ED25519, 1764000000000, &a), 0);
    assert_int_equal(keys_generate(B, KEYS_SM2, 1764000000000, &b), 0);
    /* The keys directory as nhub-keygen leaves it: CODE.key and CODE.pub. */
    snprintf(dir, sizeof dir, "%s/keys", h3.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/hub.key", dir);
    snprintf(pub, sizeof pub, "%s/hub.pub", dir);
    assert_int_equal(keys_write(hub, path, pub, 0, err, sizeof err), 0);
    char apath[500], apub[500];
    snprintf(apath, sizeof apath, "%s/%s.key", dir, A);
    snprintf(apub, sizeof apub, "%s/%s.pub", dir, A);
    assert_int_equal(keys_write(a, apath, apub, 0, err, sizeof err), 0);
    assert_non_null(realpath("schemas/catalog.yaml", catalog));
    int n = snprintf(h3.security, sizeof h3.security,
                     "security:\n  mode: curve\n  key_file: \"%.400s\"\n  catalog: \"%.500s\"\n",
                     path, catalog);
    assert_true(n > 0 && (size_t)n < sizeof h3.security);
    region_keys(ya, sizeof ya, a);
    region_keys(yb, sizeof yb, b);
    h3.region_yaml[region_index(A)] = ya;
    h3.region_yaml[region_index(B)] = yb;
    if (th_hub_start(&h3) != 0)
        th_log_dump(&h3, stderr);
    assert_true(h3.pid > 0);
    raw_t *rb = raw_new_curve(w->ctx, h3.endpoint, b->curve_public, b->curve_secret,
                              hub->curve_public);
    char *accept[] = {"nhub.push.v1.*", "nhub.case.v1.*"};
    wire_welcome_t *wel = raw_hello(rb, B, 8, accept, 2);
    wire_free((ProtobufCMessage **)&wel);

    run_t r;
    AUDIT(w, &r, "replay", "--data", w->data, "--item", "SI-PUSH-001", "--into", h3.endpoint,
          "--keys", dir, "--hub-key-file", pub);
    if (r.status != 0) {
        fprintf(stderr, "replay --into (curve): %s%s\n", r.out, r.err);
        th_log_dump(&h3, stderr);
    }
    assert_int_equal(r.status, 0);
    char want[256];
    snprintf(want, sizeof want, "OK %d messages into %s: %d sent, %d acknowledged", PUSHES,
             h3.endpoint, PUSHES, PUSHES);
    assert_memory_equal(r.out, want, strlen(want));
    free(r.out);
    /* Delivered to B with the payloads sent, signed again by A's key. */
    for (int i = 0; i < PUSHES; i++) {
        wire_deliver_t *d = raw_expect(rb, WIRE_DELIVER);
        assert_true(d->signature.len > 0);
        raw_confirm(rb, d);
        ProtobufCMessage *m = NULL;
        assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope.data,
                                     d->envelope.len, d->envelope.len, &m),
                         0);
        const wire_envelope_t *e = (const wire_envelope_t *)m;
        uint8_t p[4096];
        size_t n = payload_of(w->sent[i].env, w->sent[i].len, p, sizeof p);
        assert_memory_equal(e->msg_id.data, w->sent[i].id, 16);
        assert_int_equal(e->payload.len, n);
        assert_memory_equal(e->payload.data, p, n);
        wire_free(&m);
        wire_free((ProtobufCMessage **)&d);
    }
    /* The region C's messages have no key here: said, exit 2. */
    EXPECT(w, 2, "an adapter of region " C, NULL, "replay", "--data", w->data, "--item",
           "SI-VERIFY-002", "--into", h3.endpoint, "--keys", dir, "--hub-key-file", pub);

    raw_free(&rb);
    assert_int_equal(th_hub_stop(&h3), 0);
    th_hub_cleanup(&h3);
    keys_free(&hub);
    keys_free(&a);
    keys_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_gives_back_the_envelopes_in_order),
        cmocka_unit_test(test_replay_filters_by_region_item_and_message),
        cmocka_unit_test(test_bad_arguments_exit_2_naming_the_problem),
        cmocka_unit_test(test_trace_tells_a_case_in_order),
        cmocka_unit_test(test_replay_into_a_second_hub_delivers_the_same_messages),
        cmocka_unit_test(test_replay_into_a_curve_hub_with_the_regions_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
