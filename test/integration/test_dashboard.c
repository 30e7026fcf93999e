/*
 * test_dashboard.c: the operators' dashboard in a real browser. A real
 * nhubd with the production catalogue and its HTTP endpoint, real traffic
 * (a backlog for a region that is not connected, a case past its time
 * limit through the injected clock, a region suspended through the API),
 * then Debian's headless Chromium loads the page
 * (test/browser/dashboard.mjs drives it over the DevTools pipe) and
 * checks what it renders against what the API says: every region shown,
 * the suspended one marked, the backlog equal to the API's, the overdue
 * case listed. The screenshot is left in build/dashboard.png.
 */
#include "harness.h"
#include "log.h"
#include "raw.h"
#include "samples.h"

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
#define B "440000" /* handles */
#define C "310000" /* never connected: its messages queue */
#define S "120000" /* suspended by an operator */
#define DAY INT64_C(86400000)
#define QUERY "nhub.insured.v1.StatusQuery"

static int ask(raw_t *r, uint64_t *sseq, int n, const char *dst, uint8_t id[16])
{
    size_t plen;
    uint8_t *p = sample_bytes(QUERY, &plen), buf[8192];
    raw_make_id(id, n);
    size_t len = raw_envelope_answer(buf, sizeof buf, id, A, dst, "SI-VERIFY-002",
                                     NHUB__WIRE__V1__KIND__KIND_REQUEST, QUERY, p, plen, NULL);
    free(p);
    raw_send_env(r, ++*sseq, buf, len);
    ProtobufCMessage *m = NULL;
    int cmd = raw_recv_answer(r, &m, 10000);
    wire_free(&m);
    return cmd;
}

static void test_dashboard_renders_the_hubs_live_state(void **state)
{
    (void)state;
    th_hub_t *h = calloc(1, sizeof *h);
    char catalog[4096];
    assert_non_null(h);
    assert_non_null(realpath("schemas/catalog.yaml", catalog));
    assert_int_equal(th_hub_init(h, NULL), 0);
    snprintf(h->security, sizeof h->security,
             "security:\n  mode: insecure-plaintext\n  catalog: \"%.900s\"\n", catalog);
    snprintf(h->http, sizeof h->http, "%s", TH_HTTP_YAML);
    assert_int_equal(th_hub_start(h), 0);

    raw_t *a = raw_new(g_ctx, h->endpoint);
    raw_hello_ok(a, A, 0);
    uint64_t sseq = 0;
    uint8_t id[16], overdue[16];
    for (int i = 1; i <= 7; i++)
        assert_int_equal(ask(a, &sseq, i, C, id), WIRE_ACK);
    assert_int_equal(ask(a, &sseq, 100, B, overdue), WIRE_ACK);
    assert_int_equal(th_hub_clock_set(h, DAY + 60000), 0); /* past the time limit */
    assert_int_equal(th_http(h, "POST", "/api/v1/regions/" S "/suspend", TH_OPERATOR_TOKEN,
                             "{\"by\":\"ops-test\",\"reason\":\"dashboard test\"}", NULL, 10000),
                     200);
    /* The case goes overdue when the hub fires its deadline: wait for that (bounded). */
    char hex[33];
    log_hex(hex, sizeof hex, overdue, 16);
    int is_overdue = 0;
    json_int_t queued = -1;
    for (int tries = 0; tries < 500 && !is_overdue; tries++) {
        char *body = NULL;
        assert_int_equal(
            th_http(h, "GET", "/api/v1/cases?state=overdue", TH_READ_TOKEN, NULL, &body, 10000),
            200);
        is_overdue = strstr(body, hex) != NULL;
        free(body);
    }
    assert_true(is_overdue);
    char *body = NULL;
    assert_int_equal(th_http(h, "GET", "/api/v1/status", TH_READ_TOKEN, NULL, &body, 10000), 200);
    json_error_t jerr;
    json_t *st = json_loads(body, 0, &jerr);
    free(body);
    assert_non_null(st);
    queued = json_integer_value(json_object_get(st, "queued"));
    json_decref(st);
    assert_true(queued >= 8);

    char expect[400], cmd[2048], url[200];
    snprintf(expect, sizeof expect, "%s/expect.json", h->dir);
    FILE *f = fopen(expect, "w");
    assert_non_null(f);
    fprintf(
        f, "{\"regions\": 32, \"suspended\": \"%s\", \"queued\": %lld, \"overdue_case\": \"%s\"}\n",
        S, (long long)queued, hex);
    fclose(f);
    snprintf(url, sizeof url, "%s/", h->http_url);
    snprintf(cmd, sizeof cmd,
             "timeout 60 node test/browser/dashboard.mjs %s %s %s build/dashboard.png "
             ">%s/browser.log 2>&1",
             url, TH_READ_TOKEN, expect, h->dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/browser.log >&2", h->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "no browser log\n");
    }
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    raw_free(&a);
    void *hs = h;
    assert_int_equal(th_group_teardown(&hs), 0);
}

int main(void)
{
    g_ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_renders_the_hubs_live_state),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        zmq_ctx_term(g_ctx);
    return rc;
}
