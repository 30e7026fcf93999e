/*
 * test_nhubctl.c: the operators' command line (build/bin/nhubctl) against a
 * real nhubd with its HTTP API on a free loopback port: what it prints,
 * and the exit statuses scripts rely on (0 done, 1 refused, 2 usage,
 * 3 unreachable, 4 token refused).
 *
 * The program runs as a child with an argument vector (no shell), its
 * stdout and stderr in files of the hub's temporary directory.
 */
#include "harness.h"
#include "proc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define READ_TOKEN TH_READ_TOKEN
#define OPERATOR_TOKEN TH_OPERATOR_TOKEN

typedef struct ctl_run {
    int status;      /* exit status, or -1 if it did not exit */
    char out[65536]; /* stdout */
    char err[8192];  /* stderr */
} ctl_run_t;

static int setup(void **state)
{
    /* The caller's own settings must not leak into what is tested. */
    unsetenv("NHUB_URL");
    unsetenv("NHUB_TOKEN");
    setenv("NHUB_OPERATOR", "test-ops", 1);
    th_hub_t *h = calloc(1, sizeof *h);
    if (!h || th_hub_init(h, NULL) != 0) {
        free(h);
        return -1;
    }
    snprintf(h->http, sizeof h->http, "%s", TH_HTTP_YAML);
    if (th_hub_start(h) != 0 || !h->http_url[0]) {
        th_log_dump(h, stderr);
        th_hub_cleanup(h);
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    if (!*state)
        return 0; /* setup failed and said why */
    return th_group_teardown(state);
}

/*
 * Run nhubctl with `args` (NULL-terminated) and wait for it; "--url" and
 * "--timeout 5" come first unless `with_url` is 0. The tool bounds its own
 * requests, so the wait is bounded too.
 */
static void run_ctl(const th_hub_t *h, ctl_run_t *r, int with_url, const char *const *args)
{
    char bin[512], out_path[400], err_path[400];
    const char *argv[32];
    size_t n = 0;
    th_bin("nhubctl", bin, sizeof bin);
    snprintf(out_path, sizeof out_path, "%s/ctl.out", h->dir);
    snprintf(err_path, sizeof err_path, "%s/ctl.err", h->dir);
    argv[n++] = bin;
    if (with_url) {
        argv[n++] = "--url";
        argv[n++] = h->http_url;
        argv[n++] = "--timeout";
        argv[n++] = "5";
    }
    for (; *args && n < sizeof argv / sizeof argv[0] - 1; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    r->status = th_run_to_files(argv, out_path, err_path);
    th_read_text(out_path, r->out, sizeof r->out);
    th_read_text(err_path, r->err, sizeof r->err);
    /* Whatever happened, no token is ever printed. */
    assert_null(strstr(r->out, READ_TOKEN));
    assert_null(strstr(r->err, READ_TOKEN));
    assert_null(strstr(r->out, OPERATOR_TOKEN));
    assert_null(strstr(r->err, OPERATOR_TOKEN));
}

/* nhubctl with the hub's URL and these arguments. */
#define CTL(h, r, ...) run_ctl(h, r, 1, (const char *const[]){__VA_ARGS__, NULL})
/* nhubctl with these arguments only. */
#define CTL_BARE(h, r, ...) run_ctl(h, r, 0, (const char *const[]){__VA_ARGS__, NULL})

/* The JSON region `code` of a --json regions answer (borrowed from root). */
static json_t *region_of(json_t *root, const char *code)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(root, "regions"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "code")), code) == 0)
            return r;
    }
    return NULL;
}

/* The line of the human regions table that starts with `code`, into line. */
static int region_line(const char *table, const char *code, char *line, size_t cap)
{
    for (const char *p = table; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, code, strlen(code)) == 0) {
            size_t len = strcspn(p, "\n");
            snprintf(line, cap, "%.*s", (int)len, p);
            return 1;
        }
    }
    return 0;
}

static void test_status_prints_the_hub(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    CTL(h, r, "--token", READ_TOKEN, "status");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "version"));
    assert_non_null(strstr(r->out, "journal"));
    assert_non_null(strstr(r->out, "of 32 connected"));
    free(r);
}

static void test_regions_lists_every_configured_region(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    CTL(h, r, "--token", READ_TOKEN, "regions");
    assert_int_equal(r->status, 0);
    assert_true(strncmp(r->out, "CODE", 4) == 0);
    for (int i = 0; th_regions[i]; i++) {
        char line[512], name[32];
        assert_true(region_line(r->out, th_regions[i], line, sizeof line));
        snprintf(name, sizeof name, "Region %s", th_regions[i]);
        assert_non_null(strstr(line, name));
    }
    free(r);
}

static void test_json_output_parses_as_json(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    json_error_t jerr;
    CTL(h, r, "--token", READ_TOKEN, "--json", "status");
    assert_int_equal(r->status, 0);
    json_t *status = json_loads(r->out, 0, &jerr);
    assert_non_null(status);
    assert_true(json_is_object(json_object_get(status, "journal")));
    assert_int_equal(json_integer_value(json_object_get(status, "regions_total")), 32);
    json_decref(status);

    CTL(h, r, "--token", READ_TOKEN, "regions", "--json");
    assert_int_equal(r->status, 0);
    json_t *regions = json_loads(r->out, 0, &jerr);
    assert_non_null(regions);
    assert_int_equal(json_array_size(json_object_get(regions, "regions")), 32);
    json_decref(regions);

    CTL(h, r, "--token", READ_TOKEN, "--json", "journal");
    assert_int_equal(r->status, 0);
    json_t *journal = json_loads(r->out, 0, &jerr);
    assert_non_null(journal);
    assert_true(json_integer_value(json_object_get(journal, "last_seq")) >= 1);
    json_decref(journal);
    free(r);
}

static void test_suspend_needs_the_operator_token(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    char token_file[400];
    snprintf(token_file, sizeof token_file, "%s/operator.token", h->dir);
    FILE *f = fopen(token_file, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", OPERATOR_TOKEN);
    assert_int_equal(fclose(f), 0);

    /* The read-only token: refused, and the message says which token it was. */
    CTL(h, r, "--token", READ_TOKEN, "suspend", "440000", "--reason", "planned");
    assert_int_equal(r->status, 4);
    assert_non_null(strstr(r->err, "read-only"));
    /* No token at all. */
    CTL(h, r, "suspend", "440000");
    assert_int_equal(r->status, 4);
    assert_non_null(strstr(r->err, "none was given"));
    /* Nothing changed. */
    CTL(h, r, "--token", READ_TOKEN, "--json", "regions");
    assert_int_equal(r->status, 0);
    json_error_t jerr;
    json_t *before = json_loads(r->out, 0, &jerr);
    assert_non_null(before);
    assert_true(json_is_false(json_object_get(region_of(before, "440000"), "suspended")));
    json_decref(before);

    /* The operator token, from a file. */
    CTL(h, r, "--token-file", token_file, "suspend", "440000", "--reason", "planned");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "440000 suspended"));

    CTL(h, r, "--token", READ_TOKEN, "--json", "regions");
    assert_int_equal(r->status, 0);
    json_t *after = json_loads(r->out, 0, &jerr);
    assert_non_null(after);
    json_t *gd = region_of(after, "440000");
    assert_true(json_is_true(json_object_get(gd, "suspended")));
    assert_string_equal(json_string_value(json_object_get(gd, "suspended_reason")), "planned");
    assert_true(json_is_false(json_object_get(region_of(after, "110000"), "suspended")));
    json_decref(after);

    CTL(h, r, "--token", READ_TOKEN, "regions");
    assert_int_equal(r->status, 0);
    char line[512];
    assert_true(region_line(r->out, "440000", line, sizeof line));
    assert_non_null(strstr(line, "suspended"));
    assert_true(region_line(r->out, "110000", line, sizeof line));
    assert_null(strstr(line, "suspended"));
    assert_non_null(strstr(r->out, "440000 suspended: planned"));

    /* Resumed by the operator, the region is as before. */
    CTL(h, r, "--token-file", token_file, "resume", "440000");
    assert_int_equal(r->status, 0);
    CTL(h, r, "--token", READ_TOKEN, "regions");
    assert_true(region_line(r->out, "440000", line, sizeof line));
    assert_null(strstr(line, "suspended"));
    free(r);
}

static void test_the_hub_refusing_exits_1_with_its_reason(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    /* Six digits, so the tool lets it through; the hub has no such region. */
    CTL(h, r, "--token", OPERATOR_TOKEN, "suspend", "990000");
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->err, "the hub refused"));
    assert_non_null(strstr(r->err, "404"));
    CTL(h, r, "--token", READ_TOKEN, "case", "0123456789abcdef0123456789abcdef");
    assert_int_equal(r->status, 1);
    free(r);
}

static void test_a_wrong_token_exits_4(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    CTL(h, r, "--token", "not-the-token-of-this-hub", "status");
    assert_int_equal(r->status, 4);
    assert_non_null(strstr(r->err, "refused the token"));
    free(r);
}

static void test_an_unreachable_url_exits_3(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    /* A port bound and not listening: connections to it are refused, and
     * nothing else can take it while the test runs. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    CTL_BARE(h, r, "--url", url, "--token", OPERATOR_TOKEN, "status");
    close(fd);
    assert_int_equal(r->status, 3);
    assert_non_null(strstr(r->err, url));
    assert_int_equal(r->out[0], '\0');
    free(r);
}

static void test_usage_errors_exit_2(void **state)
{
    th_hub_t *h = *state;
    ctl_run_t *r = calloc(1, sizeof *r);
    CTL(h, r, "frobnicate");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "unknown command \"frobnicate\""));
    CTL(h, r, "status", "--no-such-option");
    assert_int_equal(r->status, 2);
    CTL(h, r, "suspend");
    assert_int_equal(r->status, 2);
    CTL(h, r, "rate", "440000", "fast");
    assert_int_equal(r->status, 2);
    CTL(h, r, "cases", "--state", "late");
    assert_int_equal(r->status, 2);
    CTL_BARE(h, r, "--help");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "EXIT STATUS"));
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_prints_the_hub),
        cmocka_unit_test(test_regions_lists_every_configured_region),
        cmocka_unit_test(test_json_output_parses_as_json),
        cmocka_unit_test(test_suspend_needs_the_operator_token),
        cmocka_unit_test(test_the_hub_refusing_exits_1_with_its_reason),
        cmocka_unit_test(test_a_wrong_token_exits_4),
        cmocka_unit_test(test_an_unreachable_url_exits_3),
        cmocka_unit_test(test_usage_errors_exit_2),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
