/*
 * test_run_demo.c: `make run` itself, that is tools/run-demo.sh: the hub on
 * conf/hub.yaml with development keys and the demonstration catalogue, six
 * simulated provinces, the dashboard URL and the live summary.
 *
 * The script runs in a process group of its own, with its run directory in
 * a temporary directory and the hub and its dashboard on free ports (the
 * environment variables the script honours), as a newcomer's terminal
 * would run it. The test waits on its output, never on a timer: the
 * dashboard URL, then a summary line showing a case answered in time and
 * one expired; then SIGINT to the whole group, as Ctrl-C sends it. The
 * script must say it stopped, and every process it started must be gone
 * within a few seconds: the test is their subreaper, so whatever outlives
 * its parent comes back to the test to be counted.
 */
#include "harness.h"
#include "proc.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cmocka.h>

static int answered_and_expired(const char *text, void *arg)
{
    (void)arg;
    return strstr(text, "run: dashboard http://127.0.0.1:") != NULL &&
           th_number_after(text, "answered in time ") > 0 && th_number_after(text, "expired ") > 0;
}

/* Reap every child the test has (its own and orphans it adopted) until
 * none is left or timeout_ms passes; 1 if none is left. */
static int all_reaped(int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(-1, NULL, WNOHANG);
        if (r < 0 && errno == ECHILD)
            return 1;
        if (r > 0)
            continue;
        if (th_now_ms() >= end)
            return 0;
        poll(NULL, 0, 20); /* bounded wait for exits already under way */
    }
}

static void test_make_run_shows_cases_and_stops_on_sigint(void **state)
{
    (void)state;
    char dir[256], env_dir[320], env_bin[600], bin[512], err_path[320];
    assert_int_equal(th_tmpdir(dir, sizeof dir), 0);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    snprintf(env_dir, sizeof env_dir, "NHUB_RUN_DIR=%s/run", dir);
    th_bin("", bin, sizeof bin);
    snprintf(env_bin, sizeof env_bin, "NHUB_BIN=%s", bin);
    snprintf(err_path, sizeof err_path, "%s/run.err", dir);
    const char *env[] = {env_dir,
                         env_bin,
                         "NHUB_RUN_LISTEN=tcp://127.0.0.1:*",
                         "NHUB_RUN_HTTP=127.0.0.1:0",
                         "NHUB_SIM_ARGS=--summary-every 1 --never-share 0.3 --seed 5",
                         NULL};
    const char *argv[] = {"/bin/sh", "tools/run-demo.sh", NULL};
    th_proc_t p;
    assert_int_equal(th_proc_start(&p, argv, env, err_path, 1), 0);
    pid_t group = p.pid;

    int seen = th_proc_wait_for(&p, answered_and_expired, NULL, 60000);
    if (!seen)
        fprintf(stderr, "make run printed:\n%s\n", p.text);
    assert_true(seen);

    int64_t t0 = th_now_ms();
    assert_int_equal(kill(-group, SIGINT), 0); /* Ctrl-C: the whole process group */
    int eof = th_proc_read_all(&p, 15000);
    int code = th_proc_reap(&p, 5000);
    int reaped = all_reaped(5000);
    int64_t took = th_now_ms() - t0;
    printf("make run stopped %lld ms after SIGINT; it printed:\n%s", (long long)took, p.text);
    assert_true(eof);
    assert_int_equal(code, 0);
    assert_true(reaped);
    assert_int_equal(kill(-group, 0), -1); /* nobody left in its process group */
    assert_int_equal(errno, ESRCH);
    assert_non_null(strstr(p.text, "run: stopped; nothing is left running"));
    assert_non_null(strstr(p.text, "nhub-sim: summary after"));
    assert_null(strstr(p.text, "exited with status")); /* the hub and the simulator exited 0 */
    assert_null(strstr(p.text, "did not stop in time"));
    assert_true(took < 10000);
    th_proc_free(&p);
    th_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_run_shows_cases_and_stops_on_sigint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
