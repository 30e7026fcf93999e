/*
 * test_public_lib: the installed libnhub.a, linked as a province's program
 * links it (nhub.h only, nothing else of ours), exports the nhub_ API and
 * nothing else, so an application with its own log_setup, wire_decode or
 * keys_load links and keeps them; and nhub_log_setup is how it steers the
 * library's log lines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nhub.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An application's own functions, named as the library's internal ones. */
static int g_app_calls;
void log_setup(const char *who);
void log_setup(const char *who)
{
    (void)who;
    g_app_calls++;
}
int wire_decode(int x);
int wire_decode(int x)
{
    g_app_calls++;
    return x;
}
int keys_load(void);
int keys_load(void)
{
    g_app_calls++;
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Open and close an offline handle in a fresh directory, logging to `log`. */
static void open_offline(void)
{
    char dir[] = "/tmp/nhub-publib-XXXXXX";
    assert_non_null(mkdtemp(dir));
    nhub_options_t o = {.region = "110000",
                        .hub_endpoint = "tcp://127.0.0.1:1",
                        .data_dir = dir,
                        .offline = 1,
                        .insecure_plaintext = 1};
    nhub_t *h = NULL;
    char err[256] = "";
    int rc = nhub_open(&o, &h, err, sizeof err);
    if (rc != 0)
        fail_msg("nhub_open: %s", err);
    nhub_close(&h);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Read all of `f` from its start into `buf`. */
static const char *slurp(FILE *f, char *buf, size_t cap)
{
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    return buf;
}

static void test_exports_only_the_api(void **state)
{
    (void)state;
    const char *bin = getenv("NHUB_BIN");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "nm -g --defined-only '%s/../lib/libnhub.a'", bin ? bin : "build/bin");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512];
    int api = 0, other = 0, has_open = 0;
    while (fgets(line, sizeof line, p)) {
        char addr[64], type[8], name[400];
        if (sscanf(line, "%63s %7s %399s", addr, type, name) != 3)
            continue; /* the member's name line, blank lines */
        if (!strncmp(name, "nhub_", 5) && strncmp(name, "nhub__", 6)) {
            api++;
            has_open |= !strcmp(name, "nhub_open");
        } else {
            print_error("exported but not of the API: %s\n", name);
            other++;
        }
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(other, 0);
    assert_true(has_open);
    assert_true(api >= 15);
}

static void test_application_names_are_its_own(void **state)
{
    (void)state;
    FILE *log = tmpfile();
    assert_non_null(log);
    assert_int_equal(nhub_log_setup("info", log), 0);
    g_app_calls = 0;
    open_offline();
    char buf[8192];
    /* the library logged through its own logger, to the stream it was given */
    assert_non_null(strstr(slurp(log, buf, sizeof buf), "event=nhub.open"));
    assert_int_equal(g_app_calls, 0);
    /* and the application's functions are the ones its calls reach */
    log_setup("app");
    assert_int_equal(wire_decode(7), 7);
    assert_int_equal(g_app_calls, 2);
    nhub_log_setup("info", NULL);
    fclose(log);
}

static void test_log_level(void **state)
{
    (void)state;
    FILE *log = tmpfile();
    assert_non_null(log);
    assert_int_equal(nhub_log_setup("warn", log), 0);
    open_offline();
    char buf[8192];
    assert_null(strstr(slurp(log, buf, sizeof buf), "event=nhub.open")); /* an info line */
    assert_int_equal(nhub_log_setup("loud", log), NHUB_EINVAL);
    assert_int_equal(nhub_log_setup(NULL, log), NHUB_EINVAL);
    assert_int_equal(nhub_log_setup("debug", log), 0);
    open_offline();
    assert_non_null(strstr(slurp(log, buf, sizeof buf), "event=nhub.open"));
    nhub_log_setup("info", NULL);
    fclose(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exports_only_the_api),
        cmocka_unit_test(test_application_names_are_its_own),
        cmocka_unit_test(test_log_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
