/*
 * test_sim.c: nhub-sim against a real nhubd on loopback.
 *
 * The hub runs in its development mode (insecure-plaintext) with a
 * catalogue of the simulator's items whose payloads it checks and whose
 * times are a second or two (reminder 1 s, time limit 2 s, grace 1 s for the
 * verifications), so in a few seconds of traffic cases are answered in
 * time and late, go overdue and expire. The test waits on the simulator's
 * live summary, never on a timer: once it shows what is asked for, SIGINT,
 * and the simulator must exit 0 within about a second with a final summary
 * that agrees, and no refusal by the hub other than the expected one (an
 * answer stored while its province was offline that reached the hub after
 * its case had closed).
 */
#include "harness.h"
#include "proc.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The simulator's items as in schemas/catalog.yaml, with times of seconds. */
#define ITEM(code, kinds, payloads, times)                                                         \
    "  - code: " code "\n    name: " code "\n    kinds: " kinds                                    \
    "\n    senders: [\"*\"]\n    receivers: [\"*\"]\n    payloads:\n" payloads times
static const char CATALOG[] =
    "version: 1\nitems:\n" ITEM("SI-VERIFY-002", "[request, response]",
                                "      request: [nhub.insured.v1.StatusQuery]\n"
                                "      response: [nhub.insured.v1.StatusAnswer]\n",
                                "    time_limit: 2s\n    reminder: 1s\n    grace: 1s\n")
        ITEM("SI-VERIFY-003", "[request, response]",
             "      request: [nhub.commitment.v1.CommitmentQuery]\n"
             "      response: [nhub.commitment.v1.CommitmentAnswer]\n",
             "    time_limit: 2s\n    reminder: 1s\n    grace: 1s\n")
            ITEM("SI-PUSH-001", "[push, feedback]",
                 "      push: [nhub.push.v1.Application]\n"
                 "      feedback: [nhub.push.v1.Feedback]\n",
                 "    time_limit: 3s\n    reminder: 2s\n    grace: 1s\n")
                ITEM("SI-UPLOAD-001", "[push, feedback]",
                     "      push: [nhub.registration.v1.RegistrationBatch]\n"
                     "      feedback: [nhub.registration.v1.BatchFeedback]\n",
                     "    time_limit: 3s\n    reminder: 2s\n    grace: 1s\n")
                    ITEM("SI-NOTICE-001", "[notice]",
                         "      notice: [nhub.credit.v1.CreditNotice]\n", "");

static int setup(void **state)
{
    th_hub_t *h = calloc(1, sizeof *h);
    char path[512];
    if (!h || th_hub_init(h, NULL) != 0)
        goto fail;
    snprintf(path, sizeof path, "%s/catalog.yaml", h->dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(CATALOG, f) < 0 || fclose(f) != 0)
        goto fail;
    int n = snprintf(h->security, sizeof h->security,
                     "security:\n  mode: insecure-plaintext\n  catalog: \"%s\"\n", path);
    if (n < 0 || (size_t)n >= sizeof h->security || th_hub_start(h) != 0)
        goto fail;
    *state = h;
    return 0;
fail:
    if (h)
        th_hub_cleanup(h);
    free(h);
    return -1;
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

/* The live summary shows every outcome the test wants. */
static int everything_seen(const char *text, void *arg)
{
    (void)arg;
    return th_number_after(text, "answered in time ") > 0 && th_number_after(text, "late ") > 0 &&
           th_number_after(text, "reminders ") > 0 && th_number_after(text, "overdue ") > 0 &&
           th_number_after(text, "expired ") > 0 && th_number_after(text, "pushes done ") > 0 &&
           th_number_after(text, "uploads done ") > 0 && th_number_after(text, "broadcasts ") > 0 &&
           strstr(text, "is back online") != NULL;
}

static void test_sim_shows_cases_answered_late_overdue_and_expired(void **state)
{
    th_hub_t *h = *state;
    char bin[512], data[512], err_path[512];
    th_bin("nhub-sim", bin, sizeof bin);
    snprintf(data, sizeof data, "%s/sim", h->dir);
    snprintf(err_path, sizeof err_path, "%s/sim.log", h->dir);
    const char *argv[] = {bin,
                          "-c",
                          h->cfg_path,
                          "--hub",
                          h->endpoint,
                          "--data",
                          data,
                          "--provinces",
                          "4",
                          "--rate",
                          "200",
                          "--seed",
                          "7",
                          "--late-share",
                          "0.2",
                          "--never-share",
                          "0.2",
                          "--broadcast-every",
                          "1",
                          "--offline",
                          "120000:0.5:1",
                          "--summary-every",
                          "0.25",
                          "--log-level",
                          "warn",
                          NULL};
    th_proc_t p;
    assert_int_equal(th_proc_start(&p, argv, NULL, err_path, 0), 0);
    int seen = th_proc_wait_for(&p, everything_seen, NULL, 30000);
    if (!seen)
        fprintf(stderr, "the simulator printed:\n%s\n", p.text);
    assert_true(seen);

    int64_t t0 = th_now_ms();
    assert_int_equal(kill(p.pid, SIGINT), 0);
    assert_true(th_proc_read_all(&p, 5000));
    int code = th_proc_reap(&p, 2000);
    int64_t took = th_now_ms() - t0;
    printf("nhub-sim stopped %lld ms after SIGINT; it printed:\n%s", (long long)took, p.text);
    assert_int_equal(code, 0);
    assert_true(took < 2500); /* "within about a second", with room for the sanitizer build */

    const char *s = strstr(p.text, "nhub-sim: summary after");
    assert_non_null(s);
    assert_true(th_number_after(s, "  answered in time") > 0);
    assert_true(th_number_after(s, "  answered late") > 0);
    assert_true(th_number_after(s, "  reminders") > 0);
    assert_true(th_number_after(s, "  overdue") > 0);
    assert_true(th_number_after(s, "  expired") > 0);
    assert_true(th_number_after(s, "  pushes done") > 0);
    assert_true(th_number_after(s, "  pushes refused") >= 0);
    assert_true(th_number_after(s, "  uploads done") > 0);
    assert_true(th_number_after(s, "  broadcasts") > 0);
    assert_true(th_number_after(s, "copies received") > 0);
    assert_true(th_number_after(s, "  acked") > 0);
    /* Nothing the hub refused but answers to closed cases, nothing unexpected handed over. */
    assert_int_equal(th_number_after(s, "    other"), 0);
    assert_int_equal(th_number_after(s, "  unexpected deliveries"), 0);
    assert_null(strstr(s, "planned answers dropped"));
    th_proc_free(&p);
}

static void test_sim_refuses_a_region_the_hub_does_not_configure(void **state)
{
    th_hub_t *h = *state;
    char bin[512];
    th_bin("nhub-sim", bin, sizeof bin);
    const char *argv[] = {bin,         "-c",        h->cfg_path,     "--hub",
                          h->endpoint, "--regions", "110000,990000", "--duration",
                          "1",         NULL};
    th_proc_t p;
    assert_int_equal(th_proc_start(&p, argv, NULL, NULL, 0), 0);
    assert_true(th_proc_read_all(&p, 10000));
    assert_int_equal(th_proc_reap(&p, 5000), 2);
    th_proc_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_shows_cases_answered_late_overdue_and_expired),
        cmocka_unit_test(test_sim_refuses_a_region_the_hub_does_not_configure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
