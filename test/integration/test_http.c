/*
 * test_http.c: the hub's HTTP endpoint, end to end: a real nhubd with the
 * production catalogue and an "http:" section on a free loopback port,
 * raw wire clients making real traffic, and libcurl asking the API. The
 * injected clock (--test-clock) makes cases overdue without waiting.
 *
 * What is checked: who may do what (no token, the read token, the
 * operator token), that /metrics is valid Prometheus text (promtool) and
 * moves with traffic, that the API's figures are the store's, that every
 * operator action is journaled with who did it and survives a restart,
 * that bad requests get a JSON error naming the problem, the live stream,
 * TLS, and that a non-loopback bind without TLS is refused at start.
 */
#include "harness.h"
#include "http.h"
#include "log.h"
#include "raw.h"
#include "samples.h"
#include "store.h"

#include "nhub/case/v1/case.pb-c.h"
#include "nhub_journal.pb-c.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <zmq.h>

#include <cmocka.h>

static void *g_ctx;

#define A "110000" /* asks */
#define B "440000" /* handles, reads */
#define C "310000" /* never connected: its messages queue */
#define DAY INT64_C(86400000)
#define K(x) NHUB__WIRE__V1__KIND__KIND_##x
#define VERIFY "SI-VERIFY-002"
#define QUERY "nhub.insured.v1.StatusQuery"
#define ANSWER "nhub.insured.v1.StatusAnswer"
#define RT TH_READ_TOKEN
#define OT TH_OPERATOR_TOKEN
#define WAIT_MS 10000

typedef struct world {
    th_hub_t *h;
    raw_t *a, *b_send, *b_read;
    uint64_t a_sseq, b_sseq;
    int next_id;
} world_t;

static int start_hub(th_hub_t *h)
{
    char catalog[4096];
    if (!realpath("schemas/catalog.yaml", catalog) || th_hub_init(h, NULL) != 0)
        return -1;
    snprintf(h->security, sizeof h->security,
             "security:\n  mode: insecure-plaintext\n  catalog: \"%.900s\"\n", catalog);
    snprintf(h->http, sizeof h->http, "%s", TH_HTTP_YAML);
    return th_hub_start(h);
}

static void connect_all(world_t *w)
{
    raw_free(&w->a);
    raw_free(&w->b_send);
    raw_free(&w->b_read);
    w->a = raw_new(g_ctx, w->h->endpoint);
    raw_hello_ok(w->a, A, 0);
    w->b_send = raw_new(g_ctx, w->h->endpoint);
    raw_hello_ok(w->b_send, B, 0);
    w->b_read = raw_new(g_ctx, w->h->endpoint);
    char *accept[] = {"nhub.insured.v1.*", "nhub.case.v1.*"};
    wire_welcome_t *wel = raw_hello(w->b_read, B, 8, accept, 2);
    wire_free((ProtobufCMessage **)&wel);
    w->a_sseq = w->b_sseq = 0;
}

static int setup(void **state)
{
    world_t *w = calloc(1, sizeof *w);
    th_hub_t *h = calloc(1, sizeof *h);
    if (!w || !h || start_hub(h) != 0) {
        if (h)
            th_hub_cleanup(h);
        free(h);
        free(w);
        return -1;
    }
    w->h = h;
    connect_all(w);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world_t *w = *state;
    raw_free(&w->a);
    raw_free(&w->b_send);
    raw_free(&w->b_read);
    void *hs = w->h;
    free(w);
    return th_group_teardown(&hs);
}

/* ---- traffic -------------------------------------------------------------------- */

/* SEND from `r` and return the hub's answer (WIRE_ACK or WIRE_NACK with *code). */
static int send_msg(raw_t *r, uint64_t *sseq, const uint8_t id[16], const char *src,
                    const char *dst, int kind, const char *type, const uint8_t *case_id, int *code)
{
    size_t plen;
    uint8_t *p = sample_bytes(type, &plen), buf[8192];
    size_t n =
        raw_envelope_answer(buf, sizeof buf, id, src, dst, VERIFY, kind, type, p, plen, case_id);
    free(p);
    raw_send_env(r, ++*sseq, buf, n);
    ProtobufCMessage *m = NULL;
    int cmd = raw_recv_answer(r, &m, WAIT_MS);
    *code = cmd == WIRE_NACK ? (int)((wire_nack_t *)m)->code : 0;
    wire_free(&m);
    return cmd;
}

/* A verification request from A to `dst`; its id (the case id) in id. */
static int ask(world_t *w, const char *dst, uint8_t id[16], int *code)
{
    raw_make_id(id, ++w->next_id);
    return send_msg(w->a, &w->a_sseq, id, A, dst, K(REQUEST), QUERY, NULL, code);
}

/* B takes its next delivery, confirms it, and returns its envelope. */
static wire_envelope_t *b_receive(world_t *w)
{
    wire_deliver_t *d = raw_expect(w->b_read, WIRE_DELIVER);
    raw_confirm(w->b_read, d);
    ProtobufCMessage *e = NULL;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope.data,
                                 d->envelope.len, d->envelope.len, &e),
                     0);
    wire_free((ProtobufCMessage **)&d);
    return (wire_envelope_t *)e;
}

/* ---- HTTP ------------------------------------------------------------------------ */

/* GET path with the read token; the JSON body (caller json_decref). */
static json_t *get_json(world_t *w, const char *path)
{
    char *body = NULL;
    long status = th_http(w->h, "GET", path, RT, NULL, &body, WAIT_MS);
    if (status != 200)
        fprintf(stderr, "GET %s: %ld %s\n", path, status, body);
    assert_int_equal(status, 200);
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    free(body);
    assert_non_null(j);
    return j;
}

/* POST path with `token` and `body`: the status; *out the JSON (may be NULL). */
static long post(world_t *w, const char *path, const char *token, const char *body, json_t **out)
{
    char *text = NULL;
    long status = th_http(w->h, "POST", path, token, body, &text, WAIT_MS);
    if (out) {
        json_error_t err;
        *out = json_loads(text, 0, &err);
    }
    free(text);
    return status;
}

/* The error body of a refused request names a code and a detail. */
static void expect_error(world_t *w, const char *method, const char *path, const char *token,
                         const char *body, long status, const char *code, const char *detail)
{
    char *text = NULL;
    long got = th_http(w->h, method, path, token, body, &text, WAIT_MS);
    if (got != status)
        fprintf(stderr, "%s %s: %ld %s\n", method, path, got, text);
    assert_int_equal(got, status);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "error")), code);
    const char *d = json_string_value(json_object_get(j, "detail"));
    assert_non_null(d);
    if (detail && !strstr(d, detail))
        fail_msg("detail \"%s\" does not say \"%s\"", d, detail);
    json_decref(j);
    free(text);
}

static json_t *region_obj(json_t *regions, const char *code)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(regions, "regions"), i, r)
    {
        if (!strcmp(json_string_value(json_object_get(r, "code")), code))
            return r;
    }
    fail_msg("region %s not listed", code);
    return NULL;
}

static char *get_metrics(world_t *w)
{
    char *text = NULL;
    assert_int_equal(th_http(w->h, "GET", "/metrics", RT, NULL, &text, WAIT_MS), 200);
    return text;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_operator_actions_refused_without_the_operator_token(void **state)
{
    world_t *w = *state;
    static const char *const actions[] = {
        "/api/v1/regions/" C "/suspend",
        "/api/v1/regions/" C "/resume",
        "/api/v1/regions/" C "/pause",
        "/api/v1/regions/" C "/unpause",
        "/api/v1/regions/" C "/rate",
        "/api/v1/regions/" C "/redrive",
        "/api/v1/cases/00000000000000000000000000000000/remind",
        "/api/v1/reload",
    };
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        expect_error(w, "POST", actions[i], NULL, "{}", 401, "unauthorized", "operator token");
        expect_error(w, "POST", actions[i], RT, "{}", 403, "forbidden", "read-only");
        expect_error(w, "POST", actions[i], "not-a-token-of-this-hub", "{}", 401, "unauthorized",
                     NULL);
    }
    /* Reads need the read token (configured), and the operator token reads too. */
    expect_error(w, "GET", "/api/v1/status", NULL, NULL, 401, "unauthorized", "token");
    expect_error(w, "GET", "/metrics", "wrong-token-0000000000", NULL, 401, "unauthorized", NULL);
    assert_int_equal(th_http(w->h, "GET", "/api/v1/status", OT, NULL, NULL, WAIT_MS), 200);
    assert_int_equal(
        th_http(w->h, "GET", "/api/v1/status?access_token=" RT, NULL, NULL, NULL, WAIT_MS), 200);
    /* Nothing was done by the refused requests. */
    json_t *r = get_json(w, "/api/v1/regions");
    assert_false(json_is_true(json_object_get(region_obj(r, C), "suspended")));
    assert_false(json_is_true(json_object_get(region_obj(r, C), "paused")));
    json_decref(r);
    /* Bound to loopback by default. */
    assert_int_equal(strncmp(w->h->http_url, "http://127.0.0.1:", 17), 0);
}

/* promtool check metrics, as Prometheus's own tool sees the text. */
static void promtool_check(const th_hub_t *h, const char *text)
{
    char path[300], cmd[700];
    snprintf(path, sizeof path, "%s/metrics.txt", h->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %.280s > %.280s.out 2>&1", path, path);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "cat %s.out >&2", path);
        if (system(cmd) != 0)
            fprintf(stderr, "promtool failed\n");
    }
    assert_int_equal(rc, 0);
}

static void test_metrics_parse_with_promtool_and_move_with_traffic(void **state)
{
    world_t *w = *state;
    char *before = get_metrics(w);
    promtool_check(w->h, before);
    double acc0 = th_metric_value(before, "nhub_accepted_total");
    double conf0 = th_metric_value(before, "nhub_region_confirmed_total{region=\"" B "\"}");
    double ack0 = th_metric_value(before, "nhub_ack_latency_seconds_count");
    double q0 = th_metric_value(before, "nhub_region_queued_messages{region=\"" C "\"}");
    assert_true(acc0 >= 0 && conf0 >= 0 && ack0 >= 0 && q0 >= 0);
    uint8_t id[16];
    int code;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ask(w, B, id, &code), WIRE_ACK);
        wire_envelope_t *e = b_receive(w);
        wire_free((ProtobufCMessage **)&e);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(ask(w, C, id, &code), WIRE_ACK);
    /* B's last DELIVERED may still be on its way: look again until it is counted. */
    char *after = NULL;
    for (int tries = 0; tries < 500; tries++) {
        free(after);
        after = get_metrics(w);
        if (th_metric_value(after, "nhub_region_confirmed_total{region=\"" B "\"}") >= conf0 + 5)
            break;
    }
    promtool_check(w->h, after);
    assert_true(th_metric_value(after, "nhub_accepted_total") == acc0 + 8);
    assert_true(th_metric_value(after, "nhub_region_accepted_total{region=\"" A "\"}") >= 8);
    assert_true(th_metric_value(after, "nhub_region_confirmed_total{region=\"" B "\"}") >= conf0 + 5);
    assert_true(th_metric_value(after, "nhub_ack_latency_seconds_count") >= ack0 + 8);
    assert_true(th_metric_value(after, "nhub_end_to_end_latency_seconds_count") >= 5);
    assert_true(th_metric_value(after, "nhub_region_queued_messages{region=\"" C "\"}") == q0 + 3);
    assert_true(th_metric_value(after, "nhub_cases{state=\"open\"}") >= 3);
    assert_true(th_metric_value(after, "nhub_commit_duration_seconds_count") > 0);
    assert_true(th_metric_value(after, "nhub_item_accepted_total{item=\"" VERIFY "\"}") >= 8);
    free(before);
    free(after);
}

static void test_api_figures_are_the_stores(void **state)
{
    world_t *w = *state;
    uint8_t id[16];
    int code;
    for (int i = 0; i < 4; i++)
        assert_int_equal(ask(w, C, id, &code), WIRE_ACK);
    json_t *s = get_json(w, "/api/v1/status");
    json_t *r = get_json(w, "/api/v1/regions");
    json_t *q = get_json(w, "/api/v1/queues");
    /* The store, read beside the running hub. */
    store_t *st = NULL;
    store_reader_t *rd = NULL;
    char dir[400], err[256];
    snprintf(dir, sizeof dir, "%s/hub-data", w->h->dir);
    assert_int_equal(store_open_reader(dir, &st, err, sizeof err), 0);
    assert_int_equal(store_reader_open(st, &rd), 0);
    uint64_t walked = 0, total = 0, n = 0, last = 0;
    assert_int_equal(store_queue_count(rd, C, &walked), 0);
    for (int i = 0; th_regions[i]; i++) {
        assert_int_equal(store_queue_count(rd, th_regions[i], &n), 0);
        total += n;
    }
    uint64_t counts[STORE_CASE_STATES];
    assert_int_equal(store_case_counts(rd, counts), 0);
    assert_int_equal(store_journal_last(rd, &last), 0);
    store_reader_close(&rd);
    store_close(&st);
    assert_int_equal(walked, 4);
    assert_int_equal(json_integer_value(json_object_get(region_obj(r, C), "queued")), walked);
    assert_int_equal(json_integer_value(json_object_get(s, "queued")), total);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "cases"), "total")),
                     counts[0]);
    assert_true((uint64_t)json_integer_value(
                    json_object_get(json_object_get(s, "journal"), "last_seq")) <= last);
    /* Queues come biggest first: C's 4 at the head. */
    json_t *head = json_array_get(json_object_get(q, "queues"), 0);
    assert_string_equal(json_string_value(json_object_get(head, "region")), C);
    assert_int_equal(json_integer_value(json_object_get(head, "queued")), 4);
    /* The handler's figures: C has 4 open cases. */
    json_t *cases = json_object_get(region_obj(r, C), "cases");
    assert_int_equal(json_integer_value(json_object_get(cases, "open")), 4);
    assert_true(json_is_true(json_object_get(region_obj(r, B), "connected")));
    assert_false(json_is_true(json_object_get(region_obj(r, C), "connected")));
    json_decref(s);
    json_decref(r);
    json_decref(q);
}

struct journal_match {
    int type;
    const char *actor;
    int n;
};

static void count_match(const th_journal_event_t *ev, void *arg)
{
    struct journal_match *m = arg;
    m->n += (int)ev->type == m->type && !strcmp(ev->actor, m->actor);
}

/* The journal events of `type` whose actor is `actor`, read beside the hub. */
static int journal_count(const th_hub_t *h, int type, const char *actor)
{
    struct journal_match m = {type, actor, 0};
    assert_int_equal(th_journal_foreach(h, count_match, &m), 0);
    return m.n;
}

static void test_suspension_is_journaled_with_who_and_survives_a_restart(void **state)
{
    world_t *w = *state;
    json_t *j = NULL;
    assert_int_equal(post(w, "/api/v1/regions/" C "/suspend", OT,
                          "{\"by\":\"ops-wang\",\"reason\":\"维护 maintenance\"}", &j),
                     200);
    assert_true(json_is_true(json_object_get(j, "suspended")));
    json_decref(j);
    uint8_t id[16];
    int code;
    assert_int_equal(ask(w, C, id, &code), WIRE_NACK);
    assert_int_equal(code, NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED);
    assert_int_equal(journal_count(w->h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_SUSPENDED,
                                   "ops-wang@127.0.0.1"),
                     1);
    /* A restart keeps it: it is the store's, not the file's. */
    assert_int_equal(th_hub_stop(w->h), 0);
    assert_int_equal(th_hub_start(w->h), 0);
    connect_all(w);
    json_t *r = get_json(w, "/api/v1/regions");
    json_t *c = region_obj(r, C);
    assert_true(json_is_true(json_object_get(c, "suspended")));
    assert_string_equal(json_string_value(json_object_get(c, "suspended_by")), "operator");
    assert_string_equal(json_string_value(json_object_get(c, "suspended_reason")),
                        "维护 maintenance");
    json_decref(r);
    assert_int_equal(ask(w, C, id, &code), WIRE_NACK);
    assert_int_equal(code, NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED);
    assert_int_equal(post(w, "/api/v1/regions/" C "/resume", OT, "{\"by\":\"ops-wang\"}", NULL),
                     200);
    assert_int_equal(ask(w, C, id, &code), WIRE_ACK);
    assert_int_equal(journal_count(w->h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_RESUMED,
                                   "ops-wang@127.0.0.1"),
                     1);
    /* The refusals are listed, newest first, with their code. */
    json_t *f = get_json(w, "/api/v1/refusals");
    json_t *first = json_array_get(json_object_get(f, "refusals"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "code")), "suspended");
    assert_string_equal(json_string_value(json_object_get(first, "region")), A);
    json_decref(f);
}

static void test_pause_holds_delivery_until_unpaused(void **state)
{
    world_t *w = *state;
    assert_int_equal(post(w, "/api/v1/regions/" B "/pause", OT, "{\"by\":\"ops-li\"}", NULL), 200);
    uint8_t id[16];
    int code;
    assert_int_equal(ask(w, B, id, &code), WIRE_ACK); /* still accepted */
    ProtobufCMessage *m = NULL;
    int cmd;
    do { /* the hub turns its loop on each heartbeat: a paused region gets nothing */
        cmd = raw_recv(w->b_read, &m, 1500);
        assert_int_not_equal(cmd, WIRE_DELIVER);
        wire_free(&m);
    } while (cmd == WIRE_HEARTBEAT);
    json_t *r = get_json(w, "/api/v1/regions");
    assert_true(json_is_true(json_object_get(region_obj(r, B), "paused")));
    assert_int_equal(json_integer_value(json_object_get(region_obj(r, B), "queued")), 1);
    json_decref(r);
    assert_int_equal(post(w, "/api/v1/regions/" B "/unpause", OT, "{\"by\":\"ops-li\"}", NULL),
                     200);
    wire_envelope_t *e = b_receive(w);
    assert_memory_equal(e->msg_id.data, id, 16);
    wire_free((ProtobufCMessage **)&e);
    assert_int_equal(journal_count(w->h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_OPERATOR_ACTION,
                                   "ops-li@127.0.0.1"),
                     2);
    /* A rate limit is kept and shown; a bad one is refused by name. */
    assert_int_equal(post(w, "/api/v1/regions/" B "/rate", OT, "{\"per_second\":50}", NULL), 200);
    r = get_json(w, "/api/v1/regions");
    assert_int_equal(json_integer_value(json_object_get(region_obj(r, B), "rate_limit")), 50);
    json_decref(r);
    expect_error(w, "POST", "/api/v1/regions/" B "/rate", OT, "{\"per_second\":-1}", 400,
                 "bad_request", "per_second");
    assert_int_equal(post(w, "/api/v1/regions/" B "/rate", OT, "{\"per_second\":0}", NULL), 200);
}

static void test_overdue_case_listed_reminded_by_hand_and_closed_refused(void **state)
{
    world_t *w = *state;
    uint8_t id[16];
    int code;
    char hex[33], path[160];
    assert_int_equal(ask(w, B, id, &code), WIRE_ACK);
    wire_envelope_t *e = b_receive(w);
    wire_free((ProtobufCMessage **)&e);
    log_hex(hex, sizeof hex, id, 16);
    /* A day and a bit later the case is past its time limit. */
    assert_int_equal(th_hub_clock_set(w->h, DAY + 60000), 0);
    wire_envelope_t *n1 = b_receive(w); /* the hub's OVERDUE notice to B */
    assert_string_equal(n1->payload_type, "nhub.case.v1.CaseNotice");
    wire_free((ProtobufCMessage **)&n1);
    json_t *l = get_json(w, "/api/v1/cases?state=overdue&region=" B);
    json_t *first = json_array_get(json_object_get(l, "cases"), 0);
    assert_non_null(first);
    assert_string_equal(json_string_value(json_object_get(first, "id")), hex);
    assert_string_equal(json_string_value(json_object_get(first, "handler")), B);
    assert_true(json_is_true(json_object_get(first, "overdue")));
    assert_true(json_real_value(json_object_get(first, "age_s")) >= 86400.0);
    json_decref(l);
    l = get_json(w, "/api/v1/cases?overdue=1");
    first = json_array_get(json_object_get(l, "cases"), 0);
    assert_non_null(first);
    assert_string_equal(json_string_value(json_object_get(first, "id")), hex);
    assert_false(json_is_true(json_object_get(l, "partial")));
    json_decref(l);
    /* By hand: a REMINDER to the handler, journaled with who asked. */
    snprintf(path, sizeof path, "/api/v1/cases/%s/remind", hex);
    assert_int_equal(post(w, path, OT, "{\"by\":\"ops-zhao\"}", NULL), 200);
    wire_envelope_t *n2 = b_receive(w);
    Nhub__Case__V1__CaseNotice *notice =
        nhub__case__v1__case_notice__unpack(NULL, n2->payload.len, n2->payload.data);
    assert_non_null(notice);
    assert_int_equal(notice->event, NHUB__CASE__V1__EVENT__EVENT_REMINDER);
    assert_memory_equal(notice->case_id.data, id, 16);
    nhub__case__v1__case_notice__free_unpacked(notice, NULL);
    wire_free((ProtobufCMessage **)&n2);
    assert_int_equal(journal_count(w->h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_OPERATOR_ACTION,
                                   "ops-zhao@127.0.0.1"),
                     1);
    /* The timeline tells the story in order. */
    snprintf(path, sizeof path, "/api/v1/cases/%s", hex);
    json_t *c = get_json(w, path);
    json_t *tl = json_object_get(c, "timeline");
    assert_true(json_array_size(tl) >= 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 0), "type")),
                        "accepted");
    int overdue = 0, reminded = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(tl, i, ev)
    {
        const char *t = json_string_value(json_object_get(ev, "type"));
        overdue += !strcmp(t, "case_overdue");
        reminded += !strcmp(t, "case_reminded");
    }
    assert_int_equal(overdue, 1);
    assert_int_equal(reminded, 1);
    json_decref(c);
    /* Answered, it is closed: a reminder is refused. */
    uint8_t aid[16];
    raw_make_id(aid, ++w->next_id);
    assert_int_equal(send_msg(w->b_send, &w->b_sseq, aid, B, A, K(RESPONSE), ANSWER, id, &code),
                     WIRE_ACK);
    snprintf(path, sizeof path, "/api/v1/cases/%s/remind", hex);
    expect_error(w, "POST", path, OT, "{}", 409, "conflict", "closed");
    expect_error(w, "POST", "/api/v1/cases/0123456789abcdef0123456789abcdef/remind", OT, "{}", 404,
                 "not_found", "no case");
    json_t *items = get_json(w, "/api/v1/items");
    json_t *it0 = json_array_get(json_object_get(items, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(it0, "item")), VERIFY);
    assert_true(json_integer_value(json_object_get(it0, "answered")) >= 1);
    json_decref(items);
}

static void test_bad_requests_get_json_errors_naming_the_problem(void **state)
{
    world_t *w = *state;
    expect_error(w, "GET", "/api/v1/nothing", RT, NULL, 404, "not_found", "/api/v1/nothing");
    expect_error(w, "GET", "/api/v1/cases?state=sleeping", RT, NULL, 400, "bad_request", "state");
    expect_error(w, "GET", "/api/v1/cases?limit=5000", RT, NULL, 400, "bad_request", "limit");
    expect_error(w, "GET", "/api/v1/cases?limit=-3", RT, NULL, 400, "bad_request", "limit");
    expect_error(w, "GET", "/api/v1/cases?region=999999", RT, NULL, 400, "bad_request", "999999");
    expect_error(w, "GET", "/api/v1/cases?after=xyz", RT, NULL, 400, "bad_request", "after");
    expect_error(w, "GET", "/api/v1/cases/zz", RT, NULL, 400, "bad_request", "32 hex");
    expect_error(w, "GET", "/api/v1/cases/0123456789abcdef0123456789abcdef", RT, NULL, 404,
                 "not_found", "no case");
    expect_error(w, "POST", "/api/v1/regions/999999/suspend", OT, "{}", 404, "not_found", "999999");
    expect_error(w, "POST", "/api/v1/regions/" C "/explode", OT, "{}", 404, "not_found", "explode");
    expect_error(w, "POST", "/api/v1/regions/" C "/suspend", OT, "{not json", 400, "bad_request",
                 "JSON");
    expect_error(w, "POST", "/api/v1/regions/" C "/suspend", OT, "{\"by\":42}", 400, "bad_request",
                 "by");
    expect_error(w, "DELETE", "/api/v1/status", OT, NULL, 405, "method_not_allowed", "DELETE");
    char *big = malloc(HTTP_BODY_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', HTTP_BODY_MAX + 1);
    big[HTTP_BODY_MAX + 1] = 0;
    big[0] = '{';
    expect_error(w, "POST", "/api/v1/regions/" C "/suspend", OT, big, 413, "too_large", "bytes");
    free(big);
    /* None of it changed anything. */
    json_t *r = get_json(w, "/api/v1/regions");
    assert_false(json_is_true(json_object_get(region_obj(r, C), "suspended")));
    json_decref(r);
}

static void test_reload_through_the_api_takes_the_file_or_names_its_error(void **state)
{
    world_t *w = *state;
    json_t *j = NULL;
    assert_int_equal(th_hub_reconfigure(w->h, "  redeliver_after: 2s\n", "440300"), 0);
    assert_int_equal(post(w, "/api/v1/reload", OT, "{\"by\":\"ops-sun\"}", &j), 200);
    assert_true(json_is_true(json_object_get(j, "reloaded")));
    assert_int_equal(json_integer_value(json_object_get(j, "regions")), 33);
    json_decref(j);
    json_t *r = get_json(w, "/api/v1/regions");
    assert_int_equal(json_array_size(json_object_get(r, "regions")), 33);
    json_decref(r);
    assert_int_equal(th_hub_write_raw_config(w->h, "hub: [not, a, map]\n"), 0);
    expect_error(w, "POST", "/api/v1/reload", OT, NULL, 400, "bad_request", "hub.yaml");
    /* The old configuration stays: the hub still answers, with 33 regions. */
    r = get_json(w, "/api/v1/regions");
    assert_int_equal(json_array_size(json_object_get(r, "regions")), 33);
    json_decref(r);
    assert_int_equal(journal_count(w->h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_OPERATOR_ACTION,
                                   "ops-sun@127.0.0.1"),
                     1);
    assert_int_equal(th_hub_reconfigure(w->h, NULL, NULL), 0);
}

static void test_dashboard_and_event_stream_are_served(void **state)
{
    world_t *w = *state;
    char *page = NULL;
    /* The page and its files need no token (they hold no data); the API does. */
    assert_int_equal(th_http(w->h, "GET", "/", NULL, NULL, &page, WAIT_MS), 200);
    assert_non_null(strstr(page, "<html"));
    free(page);
    assert_int_equal(th_http(w->h, "GET", "/assets/app.js", NULL, NULL, NULL, WAIT_MS), 200);
    expect_error(w, "GET", "/assets/nothing.js", NULL, NULL, 404, "not_found", "nothing.js");
    char *text = NULL;
    /* The stream starts with the state and ticks once a second. */
    int n =
        th_http_events(w->h, "/api/v1/events?access_token=" RT, NULL, "status", 2, &text, WAIT_MS);
    assert_int_equal(n, 2);
    assert_non_null(strstr(text, "event: regions\ndata: {\"regions\":["));
    free(text);
    expect_error(w, "GET", "/api/v1/events", NULL, NULL, 401, "unauthorized", "token");
}

/* The live stream tells of a case going overdue as it happens. */
static void test_event_stream_tells_of_case_transitions(void **state)
{
    world_t *w = *state;
    uint8_t id[16];
    int code;
    char hex[33], path[400];
    assert_int_equal(ask(w, B, id, &code), WIRE_ACK);
    log_hex(hex, sizeof hex, id, 16);
    snprintf(path, sizeof path, "%s/events.txt", w->h->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the listener: writes what it read, exits 0 if the event came */
        char *text = NULL;
        int n = th_http_events(w->h, "/api/v1/events", RT, "case", 1, &text, WAIT_MS);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs(text, f);
            fclose(f);
        }
        _exit(n == 1 ? 0 : 1);
    }
    /* Wait until the hub counts the stream open (bounded), then move time. */
    int open = 0;
    for (int tries = 0; tries < 500 && !open; tries++) {
        json_t *s = get_json(w, "/api/v1/status");
        open = json_integer_value(json_object_get(s, "streams")) == 1;
        json_decref(s);
    }
    assert_true(open);
    assert_int_equal(th_hub_clock_set(w->h, DAY + 60000), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char want[200];
    snprintf(want, sizeof want,
             "event: case\ndata: {\"id\":\"%s\",\"event\":\"case_overdue\",\"state\":"
             "\"overdue\",\"item\":\"" VERIFY "\",\"requester\":\"" A "\",\"handler\":\"" B "\"}",
             hex);
    if (!strstr(text, want))
        fail_msg("the stream did not tell of the overdue case: %.2000s", text);
}

/* ---- configurations refused, and TLS -------------------------------------------- */

/* Run nhubd on a configuration with `http` as its http section: its exit status, stderr in err. */
static int nhubd_with(const char *http, char *err, size_t cap)
{
    th_hub_t h;
    assert_int_equal(th_hub_init(&h, NULL), 0);
    snprintf(h.http, sizeof h.http, "%s", http);
    assert_int_equal(th_hub_write_config(&h), 0);
    char bin[512], cmd[1400], out[400];
    th_bin("nhubd", bin, sizeof bin);
    snprintf(out, sizeof out, "%s/err.txt", h.dir);
    snprintf(cmd, sizeof cmd, "timeout 20 %s -c %s > %s 2>&1", bin, h.cfg_path, out);
    int rc = system(cmd);
    FILE *f = fopen(out, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = 0;
    if (f)
        fclose(f);
    th_hub_cleanup(&h);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_non_loopback_bind_without_tls_refused_at_start(void **state)
{
    (void)state;
    char err[1024];
    assert_int_equal(nhubd_with("http:\n  listen: \"0.0.0.0:0\"\n  read_token: \"" RT
                                "\"\n  operator_token: \"" OT "\"\n",
                                err, sizeof err),
                     2);
    assert_non_null(strstr(err, "http.listen"));
    assert_non_null(strstr(err, "tls_cert"));
    assert_int_equal(
        nhubd_with("http:\n  listen: \"127.0.0.1:0\"\n  read_token: \"short\"\n", err, sizeof err),
        2);
    assert_non_null(strstr(err, "http.read_token"));
    assert_int_equal(nhubd_with("http:\n  listen: \"127.0.0.1:0\"\n  read_token: \"" RT
                                "\"\n  operator_token: \"" RT "\"\n",
                                err, sizeof err),
                     2);
    assert_non_null(strstr(err, "must differ"));
    assert_int_equal(nhubd_with("http:\n  listen: \"localhost:http\"\n", err, sizeof err), 2);
    assert_non_null(strstr(err, "http.listen"));
}

static void test_tls_endpoint_answers_over_https(void **state)
{
    (void)state;
    th_hub_t *h = calloc(1, sizeof *h);
    assert_non_null(h);
    assert_int_equal(th_hub_init(h, NULL), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=127.0.0.1 -keyout %s/key.pem -out %s/cert.pem > %s/openssl.log 2>&1",
             h->dir, h->dir, h->dir);
    assert_int_equal(system(cmd), 0);
    snprintf(h->http, sizeof h->http,
             "http:\n  listen: \"127.0.0.1:0\"\n  read_token: \"" RT "\"\n  operator_token: \"" OT
             "\"\n  tls_cert: \"%s/cert.pem\"\n  tls_key: \"%s/key.pem\"\n",
             h->dir, h->dir);
    assert_int_equal(th_hub_start(h), 0);
    assert_int_equal(strncmp(h->http_url, "https://127.0.0.1:", 18), 0);
    assert_int_equal(th_http(h, "GET", "/api/v1/status", RT, NULL, NULL, WAIT_MS), 200);
    assert_int_equal(th_http(h, "POST", "/api/v1/regions/" C "/pause", RT, "{}", NULL, WAIT_MS),
                     403);
    void *hs = h;
    assert_int_equal(th_group_teardown(&hs), 0);
}

int main(void)
{
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_operator_actions_refused_without_the_operator_token,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_parse_with_promtool_and_move_with_traffic,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_figures_are_the_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_suspension_is_journaled_with_who_and_survives_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_delivery_until_unpaused, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_overdue_case_listed_reminded_by_hand_and_closed_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_get_json_errors_naming_the_problem, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_reload_through_the_api_takes_the_file_or_names_its_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dashboard_and_event_stream_are_served, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_event_stream_tells_of_case_transitions, setup,
                                        teardown),
        cmocka_unit_test(test_non_loopback_bind_without_tls_refused_at_start),
        cmocka_unit_test(test_tls_endpoint_answers_over_https),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        zmq_ctx_term(g_ctx);
    return rc;
}
