/*
 * test_adapterd.c: `nhub-adapter run` as a platform sees it: real daemons
 * (child processes) on loopback in front of a real nhubd with the
 * production catalogue, spoken to with HTTP (libcurl) and through spool
 * folders in a temporary directory.
 *
 * What is checked: a verification request submitted as JSON reaches the
 * other region's long-poll, is confirmed, and its sender sees it acked and
 * then answered; every bad input gets its 4xx naming the field; a resubmitted
 * msgId is not sent twice; spool files go out (a .tmp and a half-written
 * .json are left alone, a bad one goes to failed/ with its .error) and
 * deliveries come in as complete files, are not written again after a
 * restart, and are confirmed when the platform takes them; and a daemon
 * killed with SIGKILL in the middle of a spool of many files loses none and
 * sends none twice. Every wait polls a condition under a deadline.
 */
#include "cli/track.h"
#include "harness.h"
#include "nhub.h"
#include "nhub_err.h"
#include "payload.h"
#include "pbjson.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 15000
#define TOKEN "adapter-token-for-tests-0001"
#define QUERY_TYPE "nhub.insured.v1.StatusQuery"

/* A valid StatusQuery payload in JSON, with `purpose` to tell messages apart. */
#define QUERY_PAYLOAD(purpose)                                                                     \
    "{\"person\":{\"idNumber\":\"11010519491231002X\",\"name\":\"张三\"},"                       \
    "\"insuranceTypes\":[\"INSURANCE_TYPE_ENTERPRISE_PENSION\"],\"purpose\":\"" purpose "\","      \
    "\"office\":{\"code\":\"1101000001\",\"name\":\"北京\"}}"

typedef struct daemon_proc {
    char dir[400]; /* its own directory: config, log, data, spool */
    char cfg[480];
    char log[480];
    char spool[480];
    char extra[512]; /* extra YAML: api/spool sections */
    char region[8];
    th_hub_t http; /* only http_url is used, for th_http */
    pid_t pid;
} daemon_proc_t;

static th_hub_t *g_hub;
static char g_root[300];

static int64_t now_ms(void)
{
    return th_now_ms();
}

static void pause_ms(int ms)
{
    struct pollfd none;
    poll(&none, 0, ms); /* between two looks at a condition, under a deadline */
}

static void dump_log(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    if (!f)
        return;
    fprintf(stderr, "---- %s ----\n", path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* As a platform must: NAME.tmp written, then renamed to NAME.json. */
static void drop_file(const char *dir, const char *name, const char *text)
{
    char tmp[600], path[600];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_text(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
}

static int file_exists(const char *dir, const char *name)
{
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

/* Files in `dir` whose name ends in `suffix` (and does not start with '.', unless `hidden`). */
static int count_files(const char *dir, const char *suffix, int hidden)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((e->d_name[0] == '.') != hidden)
            continue;
        if (l >= sl && !strcmp(e->d_name + l - sl, suffix))
            n++;
    }
    closedir(d);
    return n;
}

/* ---- daemons ------------------------------------------------------------------ */

static void daemon_init(daemon_proc_t *d, const char *region, const char *extra)
{
    memset(d, 0, sizeof *d);
    snprintf(d->region, sizeof d->region, "%s", region);
    snprintf(d->dir, sizeof d->dir, "%s/adapter-%s", g_root, region);
    snprintf(d->cfg, sizeof d->cfg, "%s/adapter.yaml", d->dir);
    snprintf(d->log, sizeof d->log, "%s/adapter.log", d->dir);
    snprintf(d->spool, sizeof d->spool, "%s/spool", d->dir);
    snprintf(d->extra, sizeof d->extra, "%s", extra);
    assert_int_equal(mkdir(d->dir, 0700), 0);
    char text[2048];
    snprintf(text, sizeof text,
             "adapter:\n  region: \"%s\"\n  hub: \"%s\"\n  data_dir: \"%s/data\"\n"
             "  insecure_plaintext: true\n  heartbeat: 500ms\n  resend_after: 1s\n"
             "log:\n  level: info\n%s",
             region, g_hub->endpoint, d->dir, extra);
    /* Paths in `extra` are relative to d->dir: written there as SPOOL and TOKENFILE. */
    char *p;
    while ((p = strstr(text, "SPOOL"))) {
        char rest[2048];
        snprintf(rest, sizeof rest, "%s", p + 5);
        snprintf(p, sizeof text - (size_t)(p - text), "%s%s", d->spool, rest);
    }
    while ((p = strstr(text, "TOKENFILE"))) {
        char rest[2048], tf[520];
        snprintf(tf, sizeof tf, "%s/token", d->dir);
        write_text(tf, TOKEN "\n");
        chmod(tf, 0600);
        snprintf(rest, sizeof rest, "%s", p + 9);
        snprintf(p, sizeof text - (size_t)(p - text), "%s%s", tf, rest);
    }
    write_text(d->cfg, text);
}

/* Start the daemon and wait for its "ready URL" line. */
static void daemon_start(daemon_proc_t *d)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    char bin[512];
    th_bin("nhub-adapter", bin, sizeof bin);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(p[0]);
        int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        if (p[1] != 3) {
            dup2(p[1], 3);
            close(p[1]);
        }
        execl(bin, "nhub-adapter", "run", "-c", d->cfg, "--ready-fd", "3", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[256] = "";
    size_t used = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while (!strchr(buf, '\n') && used < sizeof buf - 1 && now_ms() < deadline) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = read(p[0], buf + used, sizeof buf - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        buf[used] = 0;
    }
    close(p[0]);
    if (strncmp(buf, "ready ", 6) != 0 || !strchr(buf, '\n')) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        dump_log(d->log);
        fail_msg("nhub-adapter run did not become ready");
    }
    *strchr(buf, '\n') = 0;
    snprintf(d->http.http_url, sizeof d->http.http_url, "%.100s", buf + 6);
    d->pid = pid;
}

/* SIGTERM; it must exit 0 within 3 s. Returns how long it took. */
static int64_t daemon_stop(daemon_proc_t *d)
{
    if (d->pid <= 0)
        return 0;
    int64_t t0 = now_ms();
    kill(d->pid, SIGTERM);
    int status = 0;
    pid_t r = 0;
    while (now_ms() - t0 < 3000 && (r = waitpid(d->pid, &status, WNOHANG)) == 0)
        pause_ms(10);
    if (r != d->pid) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
        dump_log(d->log);
        fail_msg("nhub-adapter run did not stop within 3 s of SIGTERM");
    }
    d->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        dump_log(d->log);
        fail_msg("nhub-adapter run exited with status %d", status);
    }
    return now_ms() - t0;
}

static void daemon_kill(daemon_proc_t *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

static long api(daemon_proc_t *d, const char *method, const char *path, const char *body,
                json_t **out)
{
    char *text = NULL;
    long status = th_http(&d->http, method, path, TOKEN, body, &text, WAIT_MS + 5000);
    if (out) {
        json_error_t e;
        *out = json_loads(text ? text : "", 0, &e);
        if (!*out)
            fprintf(stderr, "not JSON (%ld): %s\n", status, text ? text : "");
    }
    free(text);
    return status;
}

static const char *jstr(const json_t *o, const char *path)
{
    /* "a.b.c" through objects */
    char buf[200];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return cur && json_is_string(cur) ? json_string_value(cur) : "";
}

static json_int_t jint(const json_t *o, const char *path)
{
    char buf[200];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return cur && json_is_integer(cur) ? json_integer_value(cur) : -1;
}

/* GET `path` until the string at `field` equals `want`, or the deadline. 1 if it did. */
static int await_field(daemon_proc_t *d, const char *path, const char *field, const char *want)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        json_t *o = NULL;
        long st = api(d, "GET", path, NULL, &o);
        int ok = st == 200 && !strcmp(jstr(o, field), want);
        json_decref(o);
        if (ok)
            return 1;
        pause_ms(20);
    }
    return 0;
}

static int await_int(daemon_proc_t *d, const char *path, const char *field, json_int_t want)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        json_t *o = NULL;
        long st = api(d, "GET", path, NULL, &o);
        int ok = st == 200 && jint(o, field) == want;
        json_decref(o);
        if (ok)
            return 1;
        pause_ms(20);
    }
    return 0;
}

/* ---- raw HTTP ------------------------------------------------------------------- */

/* A TCP connection to the daemon's API, for what libcurl will not send; -1 on failure. */
static int raw_connect(const daemon_proc_t *d)
{
    const char *colon = strrchr(d->http.http_url, ':');
    int port = colon ? atoi(colon + 1) : 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(0x7f000001);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int raw_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read the answer until the server closes or `ms` pass: its status (0 if none); text in *out. */
static long raw_answer(int fd, char **out, int ms)
{
    size_t cap = 1 << 16, used = 0;
    char *buf = calloc(1, cap + 1);
    int64_t deadline = now_ms() + ms;
    while (buf && used < cap && now_ms() < deadline) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf + used, cap - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    long status = 0;
    if (buf && !strncmp(buf, "HTTP/1.", 7))
        status = strtol(buf + 9, NULL, 10);
    if (out)
        *out = buf;
    else
        free(buf);
    return status;
}

/* One request over a fresh connection; the status. */
static long raw_request(const daemon_proc_t *d, const char *head, const void *body, size_t len,
                        char **out)
{
    int fd = raw_connect(d);
    assert_true(fd >= 0);
    assert_int_equal(raw_send(fd, head, strlen(head)), 0);
    if (len)
        raw_send(fd, body, len); /* the server may close once it has its answer */
    long st = raw_answer(fd, out, WAIT_MS);
    close(fd);
    return st;
}

/* ---- setup -------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    char catalog[4096];
    g_hub = calloc(1, sizeof *g_hub);
    if (!g_hub || !realpath("schemas/catalog.yaml", catalog) ||
        th_hub_init(g_hub, "  redeliver_after: 300ms\n") != 0)
        return -1;
    snprintf(g_hub->security, sizeof g_hub->security,
             "security:\n  mode: insecure-plaintext\n  catalog: \"%.900s\"\n", catalog);
    if (th_hub_start(g_hub) != 0)
        return -1;
    snprintf(g_root, sizeof g_root, "%s/daemons", g_hub->dir);
    return mkdir(g_root, 0700);
}

static int group_teardown(void **state)
{
    return th_group_teardown((void **)&g_hub) + (state ? 0 : 0);
}

/* ---- API ---------------------------------------------------------------------- */

typedef struct poll_arg {
    daemon_proc_t *d;
    long status;
    json_t *body;
    int64_t returned_at;
} poll_arg_t;

static void *long_poll(void *arg)
{
    poll_arg_t *p = arg;
    p->status = api(p->d, "GET", "/api/v1/inbox?wait=20", NULL, &p->body);
    p->returned_at = now_ms();
    return NULL;
}

#define API_YAML "api:\n  listen: \"127.0.0.1:0\"\n  token_file: \"TOKENFILE\"\n  body_max: 64KiB\n"

static void test_api_submit_longpoll_confirm_and_answer_between_two_daemons(void **state)
{
    (void)state;
    daemon_proc_t a, b;
    daemon_init(&a, "110000", API_YAML);
    daemon_init(&b, "440000", API_YAML);
    daemon_start(&a);
    daemon_start(&b);
    assert_true(await_field(&a, "/api/v1/status", "link", "up"));
    assert_true(await_field(&b, "/api/v1/status", "link", "up"));

    /* B waits first: its long-poll is parked, and B still answers other requests. */
    poll_arg_t p = {.d = &b};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, long_poll, &p), 0);
    assert_true(await_int(&b, "/api/v1/status", "inbox.longPolls", 1));
    json_t *o = NULL;
    assert_int_equal(api(&b, "GET", "/api/v1/status", NULL, &o), 200);
    json_decref(o);

    const char *req = "{\"to\":\"440000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\","
                      "\"type\":\"" QUERY_TYPE "\",\"payload\":" QUERY_PAYLOAD("round trip") "}";
    int64_t submitted = now_ms();
    assert_int_equal(api(&a, "POST", "/api/v1/messages", req, &o), 202);
    char id[33];
    snprintf(id, sizeof id, "%s", jstr(o, "msgId"));
    assert_int_equal(strlen(id), 32);
    assert_false(json_is_true(json_object_get(o, "duplicate")));
    json_decref(o);

    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p.status, 200);
    json_t *list = json_object_get(p.body, "deliveries");
    assert_int_equal(json_array_size(list), 1);
    json_t *dv = json_array_get(list, 0);
    assert_string_equal(jstr(dv, "msgId"), id);
    assert_string_equal(jstr(dv, "source"), "110000");
    assert_string_equal(jstr(dv, "kind"), "request");
    assert_string_equal(jstr(dv, "payload.purpose"), "round trip");
    assert_string_equal(jstr(dv, "payload.person.idNumber"), "11010519491231002X");
    /* It came when the message did, not when the 20 s wait ran out. */
    assert_true(p.returned_at - submitted < 10000);
    json_decref(p.body);

    /* Confirmed once; a repeated confirm is answered as done; an unknown id is 404. */
    char path[200];
    snprintf(path, sizeof path, "/api/v1/inbox/%s/confirm", id);
    assert_int_equal(api(&b, "POST", path, "", &o), 200);
    assert_false(json_is_true(json_object_get(o, "already")));
    json_decref(o);
    assert_int_equal(api(&b, "POST", path, "", &o), 200);
    assert_true(json_is_true(json_object_get(o, "already")));
    json_decref(o);
    assert_int_equal(
        api(&b, "POST", "/api/v1/inbox/00000000000000000000000000000000/confirm", "", &o), 404);
    assert_string_equal(jstr(o, "field"), "msgId");
    json_decref(o);
    assert_true(await_int(&b, "/api/v1/status", "inbox.confirmed", 1));

    /* The sender sees it acked, its case open, then answered. */
    char mpath[200];
    snprintf(mpath, sizeof mpath, "/api/v1/messages/%s", id);
    assert_true(await_field(&a, mpath, "status", "acked"));
    assert_int_equal(api(&a, "GET", mpath, NULL, &o), 200);
    assert_string_equal(jstr(o, "case.state"), "open");
    json_decref(o);
    char ans[1024];
    snprintf(ans, sizeof ans,
             "{\"to\":\"110000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"response\","
             "\"type\":\"nhub.insured.v1.StatusAnswer\",\"correlationId\":\"%s\","
             "\"payload\":{\"outcome\":\"OUTCOME_NOT_FOUND\",\"reason\":\"no record\","
             "\"office\":{\"code\":\"4400000001\",\"name\":\"广东\"}}}",
             id);
    assert_int_equal(api(&b, "POST", "/api/v1/messages", ans, &o), 202);
    char ans_id[33];
    snprintf(ans_id, sizeof ans_id, "%s", jstr(o, "msgId"));
    json_decref(o);
    assert_true(await_field(&a, mpath, "case.state", "answered"));
    assert_int_equal(api(&a, "GET", mpath, NULL, &o), 200);
    assert_string_equal(jstr(o, "case.answer.msgId"), ans_id);
    assert_string_equal(jstr(o, "case.answer.source"), "440000");
    json_decref(o);
    assert_int_equal(api(&a, "GET", "/api/v1/inbox?wait=10", NULL, &o), 200);
    dv = json_array_get(json_object_get(o, "deliveries"), 0);
    assert_string_equal(jstr(dv, "correlationId"), id);
    assert_string_equal(jstr(dv, "payload.outcome"), "OUTCOME_NOT_FOUND");
    json_decref(o);

    /* A resubmission with the platform's msgId is not sent again; other content is a conflict. */
    char again[2048];
    snprintf(again, sizeof again,
             "{\"msgId\":\"0123456789abcdef0123456789abcdef\",\"to\":\"440000\","
             "\"item\":\"SI-VERIFY-002\",\"kind\":\"request\",\"type\":\"" QUERY_TYPE "\","
             "\"payload\":" QUERY_PAYLOAD("idempotent") "}");
    assert_int_equal(api(&a, "POST", "/api/v1/messages", again, &o), 202);
    assert_false(json_is_true(json_object_get(o, "duplicate")));
    json_decref(o);
    assert_int_equal(api(&a, "POST", "/api/v1/messages", again, &o), 202);
    assert_true(json_is_true(json_object_get(o, "duplicate")));
    assert_string_equal(jstr(o, "msgId"), "0123456789abcdef0123456789abcdef");
    json_decref(o);
    char *other = strdup(again);
    memcpy(strstr(other, "idempotent"), "IDEMPOTENT", 10);
    assert_int_equal(api(&a, "POST", "/api/v1/messages", other, &o), 409);
    assert_string_equal(jstr(o, "field"), "msgId");
    json_decref(o);
    free(other);
    assert_true(await_int(&a, "/api/v1/status", "sent.duplicates", 1));
    assert_int_equal(api(&b, "GET", "/api/v1/inbox?wait=10", NULL, &o), 200);
    list = json_object_get(o, "deliveries");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(jstr(json_array_get(list, 0), "payload.purpose"), "idempotent");
    json_decref(o);

    /* A long-poll parked at stop is answered, and the daemon stops within a second or two. */
    poll_arg_t p2 = {.d = &b};
    assert_int_equal(pthread_create(&t, NULL, long_poll, &p2), 0);
    assert_true(await_int(&b, "/api/v1/status", "inbox.longPolls", 1));
    int64_t took = daemon_stop(&b);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p2.status, 200);
    assert_int_equal(json_array_size(json_object_get(p2.body, "deliveries")), 0);
    json_decref(p2.body);
    assert_true(took < 2500);
    daemon_stop(&a);
}

typedef struct bad_case {
    const char *body;
    long status;
    const char *error;
    const char *field; /* NULL: no field expected */
} bad_case_t;

static void test_api_bad_inputs_get_4xx_naming_the_field(void **state)
{
    (void)state;
    daemon_proc_t a;
    daemon_init(&a, "120000", API_YAML);
    daemon_start(&a);
#define HEAD "\"item\":\"SI-VERIFY-002\",\"kind\":\"request\",\"type\":\"" QUERY_TYPE "\""
    static const bad_case_t cases[] = {
        {"{\"to\":\"440000\"," HEAD ",\"payload\":", 400, "malformed_json", NULL},
        {"[1,2]", 400, "invalid", ""},
        {"{\"to\":\"440000\"," HEAD ",\"payload\":" QUERY_PAYLOAD("x") ",\"colour\":1}", 400,
         "invalid", "colour"},
        {"{" HEAD ",\"payload\":" QUERY_PAYLOAD("x") "}", 400, "invalid", "to"},
        {"{\"to\":\"44000\"," HEAD ",\"payload\":" QUERY_PAYLOAD("x") "}", 400, "invalid", "to"},
        {"{\"to\":440000," HEAD ",\"payload\":" QUERY_PAYLOAD("x") "}", 400, "invalid", "to"},
        {"{\"to\":\"440000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"query\",\"type\":\"" QUERY_TYPE
         "\",\"payload\":" QUERY_PAYLOAD("x") "}",
         400, "invalid", "kind"},
        {"{\"to\":\"440000\",\"kind\":\"request\",\"type\":\"" QUERY_TYPE
         "\",\"payload\":" QUERY_PAYLOAD("x") "}",
         400, "invalid", "item"},
        {"{\"to\":\"440000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\","
         "\"type\":\"nhub.insured.v9.StatusQuery\",\"payload\":" QUERY_PAYLOAD("x") "}",
         400, "invalid", "type"},
        {"{\"to\":\"440000\"," HEAD "}", 400, "invalid", "payload"},
        {"{\"to\":\"440000\"," HEAD ",\"payload\":{\"person\":{\"idNumbr\":\"x\"}}}", 400,
         "invalid", "payload.person.idNumbr"},
        {"{\"to\":\"440000\"," HEAD ",\"payload\":{\"purpose\":5}}", 400, "invalid",
         "payload.purpose"},
        {"{\"to\":\"440000\"," HEAD ",\"payload\":{\"insuranceTypes\":[\"NO_SUCH\"]}}", 400,
         "invalid", "payload.insuranceTypes[0]"},
        {"{\"to\":\"440000\"," HEAD
         ",\"payload\":{\"person\":{\"idNumber\":\"110105194912310021\",\"name\":\"张三\"},"
         "\"purpose\":\"x\",\"office\":{\"code\":\"1101000001\"}}}",
         422, "payload_rule", "payload.person.idNumber"},
        {"{\"to\":\"440000\"," HEAD ",\"payload\":" QUERY_PAYLOAD("x") ",\"correlationId\":\"ab\"}",
         400, "invalid", "correlationId"},
        {"{\"to\":\"440000\"," HEAD ",\"payload\":" QUERY_PAYLOAD("x") ",\"msgId\":\"xyz\"}", 400,
         "invalid", "msgId"},
        {"{\"to\":\"440000\"," HEAD ",\"payload\":" QUERY_PAYLOAD("x") ",\"deadline\":\"soon\"}",
         400, "invalid", "deadline"},
    };
#undef HEAD
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *o = NULL;
        long st = api(&a, "POST", "/api/v1/messages", cases[i].body, &o);
        if (st != cases[i].status || strcmp(jstr(o, "error"), cases[i].error) ||
            (cases[i].field && strcmp(jstr(o, "field"), cases[i].field)) || !jstr(o, "detail")[0]) {
            char *t = o ? json_dumps(o, 0) : NULL;
            fail_msg("case %zu: got %ld %s", i, st, t ? t : "(no JSON)");
        }
        json_decref(o);
    }
    /* Too large: 413; no token or a wrong one: 401; unknown path 404; wrong method 405. */
    size_t big = 100 * 1024;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = 0;
    json_t *o = NULL;
    assert_int_equal(api(&a, "POST", "/api/v1/messages", body, &o), 413);
    assert_string_equal(jstr(o, "error"), "too_large");
    json_decref(o);
    free(body);
    char *text = NULL;
    assert_int_equal(th_http(&a.http, "GET", "/api/v1/status", NULL, NULL, &text, 5000), 401);
    assert_non_null(strstr(text, "unauthorized"));
    free(text);
    assert_int_equal(
        th_http(&a.http, "GET", "/api/v1/status", "wrong-token-wrong-token", NULL, &text, 5000),
        401);
    free(text);
    assert_int_equal(api(&a, "GET", "/api/v1/nothing", NULL, &o), 404);
    json_decref(o);
    assert_int_equal(api(&a, "GET", "/api/v1/messages", NULL, &o), 405);
    json_decref(o);
    assert_int_equal(api(&a, "GET", "/api/v1/messages/nothex", NULL, &o), 400);
    assert_string_equal(jstr(o, "field"), "msgId");
    json_decref(o);
    assert_int_equal(api(&a, "GET", "/api/v1/messages/00000000000000000000000000000000", NULL, &o),
                     404);
    json_decref(o);
    assert_int_equal(api(&a, "GET", "/api/v1/inbox?wait=x", NULL, &o), 400);
    assert_string_equal(jstr(o, "field"), "wait");
    json_decref(o);
    /* Nothing of the above reached the outbox. */
    assert_int_equal(api(&a, "GET", "/api/v1/status", NULL, &o), 200);
    assert_int_equal(jint(o, "sent.submitted"), 0);
    json_decref(o);
    daemon_stop(&a);
}

/* A JSON array of `n` StatusQuery requests to `to`; message `bad` (or -1) with `bad_part`. */
static char *batch_body(int n, const char *to, const char *tag, int bad, const char *bad_payload)
{
    size_t cap = (size_t)n * 600 + 1024, used = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    b[used++] = '[';
    for (int i = 0; i < n; i++) {
        char purpose[64];
        snprintf(purpose, sizeof purpose, "%s-%d", tag, i);
        int w = snprintf(b + used, cap - used,
                         "%s{\"msgId\":\"%08x%024x\",\"to\":\"%s\",\"item\":\"SI-VERIFY-002\","
                         "\"kind\":\"request\",\"type\":\"" QUERY_TYPE "\",\"payload\":",
                         i ? "," : "", (unsigned)(tag[0] * 65536 + tag[1]), (unsigned)i, to);
        used += (size_t)w;
        if (i == bad)
            w = snprintf(b + used, cap - used, "%s}}", bad_payload);
        else
            w = snprintf(b + used, cap - used,
                         "{\"person\":{\"idNumber\":\"11010519491231002X\",\"name\":\"张三\"},"
                         "\"purpose\":\"%s\",\"office\":{\"code\":\"1101000001\"}}}",
                         purpose);
        used += (size_t)w;
        assert_true(used < cap - 2);
    }
    b[used++] = ']';
    b[used] = 0;
    return b;
}

static void test_api_batch_stored_at_once_one_bad_refuses_all_over_limit_refused(void **state)
{
    (void)state;
    daemon_proc_t a, b;
    daemon_init(&a, "370000", API_YAML);
    daemon_init(&b, "410000", API_YAML);
    daemon_start(&a);
    daemon_start(&b);
    assert_true(await_field(&a, "/api/v1/status", "link", "up"));
    assert_true(await_field(&b, "/api/v1/status", "link", "up"));

    /* Round trip: ten messages, one answer, all delivered. */
    enum { N = 10 };
    char *body = batch_body(N, "410000", "ok", -1, NULL);
    json_t *o = NULL;
    assert_int_equal(api(&a, "POST", "/api/v1/messages:batch", body, &o), 202);
    assert_int_equal(jint(o, "stored"), N);
    assert_int_equal(jint(o, "duplicates"), 0);
    json_t *res = json_object_get(o, "results");
    assert_int_equal(json_array_size(res), N);
    char ids[N][33];
    for (int i = 0; i < N; i++) {
        json_t *x = json_array_get(res, (size_t)i);
        snprintf(ids[i], sizeof ids[i], "%s", jstr(x, "msgId"));
        assert_int_equal(strlen(ids[i]), 32);
        assert_false(json_is_true(json_object_get(x, "duplicate")));
    }
    json_decref(o);
    char mpath[100];
    snprintf(mpath, sizeof mpath, "/api/v1/messages/%s", ids[N - 1]);
    assert_true(await_field(&a, mpath, "status", "acked"));
    int got = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while (got < N && now_ms() < deadline) {
        assert_int_equal(api(&b, "GET", "/api/v1/inbox?wait=2&max=100", NULL, &o), 200);
        json_t *list = json_object_get(o, "deliveries");
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *dv = json_array_get(list, i);
            char path[200], want[32];
            snprintf(want, sizeof want, "ok-%d", got);
            assert_string_equal(jstr(dv, "payload.purpose"), want); /* in the batch's order */
            assert_string_equal(jstr(dv, "msgId"), ids[got]);
            snprintf(path, sizeof path, "/api/v1/inbox/%s/confirm", jstr(dv, "msgId"));
            json_t *c = NULL;
            assert_int_equal(api(&b, "POST", path, "", &c), 200);
            json_decref(c);
            got++;
        }
        json_decref(o);
    }
    assert_int_equal(got, N);
    /* The same batch again: every one a duplicate, none sent twice. */
    assert_int_equal(api(&a, "POST", "/api/v1/messages:batch", body, &o), 202);
    assert_int_equal(jint(o, "duplicates"), N);
    json_decref(o);
    free(body);

    /* One bad message refuses the whole batch, naming it by its index. */
    assert_int_equal(api(&a, "GET", "/api/v1/status", NULL, &o), 200);
    json_int_t submitted = jint(o, "sent.submitted");
    json_decref(o);
    body = batch_body(6, "410000", "bd", 3,
                      "{\"person\":{\"idNumber\":\"110105194912310021\",\"name\":\"张三\"},"
                      "\"purpose\":\"x\",\"office\":{\"code\":\"1101000001\"}");
    assert_int_equal(api(&a, "POST", "/api/v1/messages:batch", body, &o), 422);
    assert_string_equal(jstr(o, "error"), "payload_rule");
    assert_string_equal(jstr(o, "field"), "[3].payload.person.idNumber");
    assert_non_null(strstr(jstr(o, "detail"), "nothing stored"));
    json_decref(o);
    free(body);
    body = batch_body(4, "410000", "uf", 1, "{\"colour\":1");
    assert_int_equal(api(&a, "POST", "/api/v1/messages:batch", body, &o), 400);
    assert_string_equal(jstr(o, "field"), "[1].payload.colour");
    json_decref(o);
    free(body);
    assert_int_equal(api(&a, "GET", "/api/v1/status", NULL, &o), 200);
    assert_int_equal(jint(o, "sent.submitted"), submitted);
    json_decref(o);

    /* Over the limit, empty, not an array, the wrong method. */
    char *many = malloc(501 * 3 + 3);
    size_t k = 0;
    many[k++] = '[';
    for (int i = 0; i < 501; i++) {
        if (i)
            many[k++] = ',';
        many[k++] = '{';
        many[k++] = '}';
    }
    many[k++] = ']';
    many[k] = 0;
    assert_int_equal(api(&a, "POST", "/api/v1/messages:batch", many, &o), 413);
    assert_string_equal(jstr(o, "error"), "too_large");
    assert_non_null(strstr(jstr(o, "detail"), "at most 500"));
    json_decref(o);
    free(many);
    assert_int_equal(api(&a, "POST", "/api/v1/messages:batch", "[]", &o), 400);
    json_decref(o);
    assert_int_equal(api(&a, "POST", "/api/v1/messages:batch", "{\"to\":\"410000\"}", &o), 400);
    assert_string_equal(jstr(o, "error"), "invalid");
    json_decref(o);
    assert_int_equal(api(&a, "GET", "/api/v1/messages:batch", NULL, &o), 405);
    json_decref(o);
    daemon_stop(&a);
    daemon_stop(&b);
}

/* The status of `text` as a 4xx JSON error with a detail; fails the test on a 5xx or no JSON. */
static void expect_4xx(long st, long want, const char *text, const char *what)
{
    const char *body = text ? strstr(text, "\r\n\r\n") : NULL;
    json_error_t je;
    json_t *o = body ? json_loads(body + 4, 0, &je) : NULL;
    if (st != want || !o || !json_string_value(json_object_get(o, "detail")))
        fail_msg("%s: wanted %ld with a JSON error, got %ld: %.300s", what, want, st,
                 text ? text : "(nothing)");
    json_decref(o);
}

static void test_api_hostile_requests_get_4xx_not_5xx(void **state)
{
    (void)state;
    daemon_proc_t a;
    daemon_init(&a, "210000", API_YAML);
    daemon_start(&a);
    const char *auth = "Authorization: Bearer " TOKEN "\r\n";
    char head[1024], *text = NULL;

    /* An unknown key of many multi-byte characters: its echo is cut, never into bad UTF-8. */
    size_t kn = 300;
    char *key = malloc(kn * 2 + 1);
    for (size_t i = 0; i < kn; i++)
        memcpy(key + 2 * i, "\xc3\xa9", 2);
    key[kn * 2] = 0;
    char *body = malloc(kn * 2 + 64);
    snprintf(body, kn * 2 + 64, "{\"%s\":1}", key);
    json_t *o = NULL;
    long st = api(&a, "POST", "/api/v1/messages", body, &o);
    if (st != 400 || strcmp(jstr(o, "error"), "invalid") || !jstr(o, "field")[0])
        fail_msg("long multi-byte key: got %ld", st);
    json_decref(o);
    /* The same inside the payload, nested, so the path is cut too. */
    char *deep = malloc(kn * 2 * 4 + 512);
    snprintf(
        deep, kn * 2 * 4 + 512,
        "{\"to\":\"440000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\",\"type\":\"" QUERY_TYPE
        "\",\"payload\":{\"person\":{\"%.*s\":1}}}",
        (int)(kn * 2), key);
    st = api(&a, "POST", "/api/v1/messages", deep, &o);
    if (st != 400 || strcmp(jstr(o, "error"), "invalid"))
        fail_msg("long multi-byte payload key: got %ld", st);
    json_decref(o);
    free(deep);
    free(body);
    free(key);

    /* A path that unescapes to bytes that are not UTF-8. */
    snprintf(head, sizeof head,
             "GET /api/v1/%%ff%%fe%%c3 HTTP/1.1\r\nHost: x\r\n%s"
             "Connection: close\r\n\r\n",
             auth);
    st = raw_request(&a, head, NULL, 0, &text);
    expect_4xx(st, 404, text, "a path of bad UTF-8");
    free(text);

    /* A body that is not UTF-8, and one nested far deeper than any payload. */
    static const char bad_utf8[] = "{\"to\":\"\xff\xfe\"}";
    snprintf(head, sizeof head,
             "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\n%s"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             auth, sizeof bad_utf8 - 1);
    st = raw_request(&a, head, bad_utf8, sizeof bad_utf8 - 1, &text);
    expect_4xx(st, 400, text, "a body of bad UTF-8");
    free(text);
    size_t depth = 20000;
    char *nest = malloc(2 * depth + 1);
    memset(nest, '[', depth);
    memset(nest + depth, ']', depth);
    nest[2 * depth] = 0;
    assert_int_equal(api(&a, "POST", "/api/v1/messages", nest, &o), 400);
    assert_string_equal(jstr(o, "error"), "malformed_json");
    json_decref(o);
    free(nest);

    /* A chunked upload past body_max: 413, and the daemon goes on. */
    snprintf(head, sizeof head,
             "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\n%s"
             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
             auth);
    int fd = raw_connect(&a);
    assert_true(fd >= 0);
    assert_int_equal(raw_send(fd, head, strlen(head)), 0);
    char chunk[8192 + 16];
    int hl = snprintf(chunk, sizeof chunk, "2000\r\n");
    memset(chunk + hl, ' ', 8192);
    memcpy(chunk + hl + 8192, "\r\n", 2);
    for (int i = 0; i < 12; i++)
        if (raw_send(fd, chunk, (size_t)hl + 8192 + 2) != 0)
            break;
    raw_send(fd, "0\r\n\r\n", 5);
    st = raw_answer(fd, &text, WAIT_MS);
    close(fd);
    expect_4xx(st, 413, text, "a chunked body past body_max");
    free(text);

    /* Without the token, a body is not gathered: 401 however large it claims to be. */
    snprintf(head, sizeof head,
             "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 60000\r\nConnection: close\r\n\r\n");
    char *junk = calloc(1, 60000);
    st = raw_request(&a, head, junk, 60000, &text);
    free(junk);
    expect_4xx(st, 401, text, "an unauthorised body");
    free(text);

    assert_true(await_field(&a, "/api/v1/status", "region", "210000"));
    daemon_stop(&a);
}

static void test_api_longpoll_abandoned_by_its_client_takes_no_delivery(void **state)
{
    (void)state;
    daemon_proc_t a, b;
    daemon_init(&a, "230000", API_YAML);
    daemon_init(&b, "220000", API_YAML "  lease: 1h\n");
    daemon_start(&a);
    daemon_start(&b);
    assert_true(await_field(&a, "/api/v1/status", "link", "up"));
    assert_true(await_field(&b, "/api/v1/status", "link", "up"));

    /* A client parks a long-poll and goes away without waiting for it. */
    int fd = raw_connect(&b);
    assert_true(fd >= 0);
    const char *head = "GET /api/v1/inbox?wait=30 HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer " TOKEN "\r\n\r\n";
    assert_int_equal(raw_send(fd, head, strlen(head)), 0);
    assert_true(await_int(&b, "/api/v1/status", "inbox.longPolls", 1));
    close(fd);

    const char *req = "{\"to\":\"220000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\","
                      "\"type\":\"" QUERY_TYPE "\",\"payload\":" QUERY_PAYLOAD("abandoned") "}";
    json_t *o = NULL;
    assert_int_equal(api(&a, "POST", "/api/v1/messages", req, &o), 202);
    char id[33];
    snprintf(id, sizeof id, "%s", jstr(o, "msgId"));
    json_decref(o);
    assert_true(await_int(&b, "/api/v1/status", "inbox.held", 1));

    /* The delivery was not leased to the closed connection: a live client gets it now. */
    int64_t t0 = now_ms();
    assert_int_equal(api(&b, "GET", "/api/v1/inbox?wait=10", NULL, &o), 200);
    json_t *list = json_object_get(o, "deliveries");
    if (json_array_size(list) != 1)
        fail_msg("the live poll got %zu deliveries after %lld ms", json_array_size(list),
                 (long long)(now_ms() - t0));
    assert_string_equal(jstr(json_array_get(list, 0), "msgId"), id);
    json_decref(o);
    assert_true(now_ms() - t0 < 5000);
    daemon_stop(&b);
    daemon_stop(&a);
}

/* ---- spool -------------------------------------------------------------------- */

static int await_count(const char *dir, const char *suffix, int hidden, int want)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        if (count_files(dir, suffix, hidden) == want)
            return 1;
        pause_ms(20);
    }
    return 0;
}

static int await_exists(const char *dir, const char *name)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        if (file_exists(dir, name))
            return 1;
        pause_ms(20);
    }
    return 0;
}

/* The names of the .json files in dir (up to `max`), and their inodes. */
static int list_json(const char *dir, char names[][64], ino_t *inodes, int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        snprintf(names[n], 64, "%.63s", e->d_name);
        char p[700];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        inodes[n] = stat(p, &st) == 0 ? st.st_ino : 0;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

#define SPOOL_FILE(purpose)                                                                        \
    "{\"to\":\"310000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\",\"type\":\"" QUERY_TYPE    \
    "\",\"payload\":" QUERY_PAYLOAD(purpose) "}"

static void test_spool_files_out_and_in_atomic_and_confirmed_when_taken(void **state)
{
    (void)state;
    daemon_proc_t s, r;
    daemon_init(&s, "130000",
                API_YAML "spool:\n  dir: \"SPOOL\"\n  settle: 60s\n  scan_interval: 100ms\n");
    daemon_init(&r, "310000", API_YAML "spool:\n  dir: \"SPOOL\"\n  inbox: true\n");
    daemon_start(&s);
    daemon_start(&r);
    char out[500], sent[500], failed[500], inbox[500], done[500];
    snprintf(out, sizeof out, "%s/outbox", s.spool);
    snprintf(sent, sizeof sent, "%s/sent", s.spool);
    snprintf(failed, sizeof failed, "%s/failed", s.spool);
    snprintf(inbox, sizeof inbox, "%s/inbox", r.spool);
    snprintf(done, sizeof done, "%s/done", r.spool);

    /* Not picked up: a .tmp, and a .json written in place and not complete yet. */
    char path[700];
    snprintf(path, sizeof path, "%s/later.tmp", out);
    write_text(path, SPOOL_FILE("later"));
    snprintf(path, sizeof path, "%s/half.json", out);
    write_text(path, "{\"to\":\"310000\",\"item\":\"SI-VERIFY-002\",\"kind\":");
    drop_file(out, "good.json", SPOOL_FILE("good"));
    drop_file(
        out, "bad.json",
        "{\"to\":\"3100\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\",\"type\":\"" QUERY_TYPE
        "\",\"payload\":{}}");
    drop_file(
        out, "rule.json",
        "{\"to\":\"310000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\",\"type\":\"" QUERY_TYPE
        "\",\"payload\":{\"person\":{\"idNumber\":\"110105194912310021\",\"name\":\"a\"},"
        "\"purpose\":\"x\",\"office\":{\"code\":\"1101000001\"}}}");

    assert_true(await_exists(sent, "good.json"));
    assert_true(await_exists(failed, "bad.json.error"));
    assert_true(await_exists(failed, "rule.json.error"));
    assert_true(file_exists(failed, "bad.json"));
    snprintf(path, sizeof path, "%s/bad.json.error", failed);
    char *err = read_text(path);
    assert_non_null(err);
    assert_non_null(strstr(err, "to"));
    assert_non_null(strstr(err, "six-digit"));
    free(err);
    snprintf(path, sizeof path, "%s/rule.json.error", failed);
    err = read_text(path);
    assert_non_null(strstr(err, "person.id_number"));
    free(err);
    /* The scan that took good.json and failed the bad ones left these alone. */
    assert_true(file_exists(out, "later.tmp"));
    assert_true(file_exists(out, "half.json"));
    assert_false(file_exists(failed, "half.json"));
    /* Completed in place, it goes. */
    snprintf(path, sizeof path, "%s/half.json", out);
    write_text(path, SPOOL_FILE("half"));
    assert_true(await_exists(sent, "half.json"));
    assert_true(file_exists(out, "later.tmp"));

    /* The receiver writes both into inbox/ as complete files, no temp file left. */
    assert_true(await_count(inbox, ".json", 0, 2));
    assert_true(await_int(&r, "/api/v1/status", "inbox.held", 2));
    assert_int_equal(count_files(inbox, "", 1), 0);
    char names[4][64];
    ino_t ino[4];
    assert_int_equal(list_json(inbox, names, ino, 4), 2);
    int seen_good = 0, seen_half = 0;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%.63s", inbox, names[i]);
        char *t = read_text(path);
        json_error_t je;
        json_t *o = json_loads(t, 0, &je);
        assert_non_null(o);
        char want[64];
        snprintf(want, sizeof want, "%s.json", jstr(o, "msgId"));
        assert_string_equal(names[i], want);
        seen_good += !strcmp(jstr(o, "payload.purpose"), "good");
        seen_half += !strcmp(jstr(o, "payload.purpose"), "half");
        assert_string_equal(jstr(o, "source"), "130000");
        json_decref(o);
        free(t);
    }
    assert_int_equal(seen_good, 1);
    assert_int_equal(seen_half, 1);
    json_t *o = NULL;
    assert_int_equal(api(&r, "GET", "/api/v1/inbox", NULL, &o), 409);
    json_decref(o);

    /* After a restart the hub delivers both again: they are not written again. */
    daemon_stop(&r);
    daemon_start(&r);
    assert_true(await_int(&r, "/api/v1/status", "inbox.held", 2));
    char names2[4][64];
    ino_t ino2[4];
    assert_int_equal(list_json(inbox, names2, ino2, 4), 2);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            if (!strcmp(names[i], names2[k]))
                assert_true(ino[i] == ino2[k]);

    /* Taken by the platform (moved to done/, or deleted): confirmed. */
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/%.63s", inbox, names[0]);
    snprintf(b, sizeof b, "%s/%.63s", done, names[0]);
    assert_int_equal(rename(a, b), 0);
    assert_true(await_int(&r, "/api/v1/status", "inbox.confirmed", 1));
    snprintf(a, sizeof a, "%s/%.63s", inbox, names[1]);
    assert_int_equal(unlink(a), 0);
    assert_true(await_int(&r, "/api/v1/status", "inbox.confirmed", 2));
    assert_true(await_int(&r, "/api/v1/status", "inbox.held", 0));

    /* And after another restart nothing comes back. The sender's files show acked. */
    daemon_stop(&r);
    daemon_start(&r);
    assert_true(await_field(&r, "/api/v1/status", "link", "up"));
    assert_int_equal(api(&r, "GET", "/api/v1/status", NULL, &o), 200);
    assert_int_equal(jint(o, "inbox.held"), 0);
    json_decref(o);
    assert_int_equal(count_files(inbox, ".json", 0), 0);
    daemon_stop(&r);
    daemon_stop(&s);
}

static void test_spool_odd_entries_are_failed_and_odd_names_logged_quoted(void **state)
{
    (void)state;
    daemon_proc_t s;
    daemon_init(&s, "330000", API_YAML "spool:\n  dir: \"SPOOL\"\n  scan_interval: 100ms\n");
    daemon_start(&s);
    char out[600], sent[600], failed[600], path[800], target[800];
    snprintf(out, sizeof out, "%s/outbox", s.spool);
    snprintf(sent, sizeof sent, "%s/sent", s.spool);
    snprintf(failed, sizeof failed, "%s/failed", s.spool);

    /* A symlink to a file of valid content elsewhere: never followed, never sent. */
    snprintf(target, sizeof target, "%s/elsewhere.json", s.dir);
    write_text(target, SPOOL_FILE("through a link"));
    snprintf(path, sizeof path, "%s/link.json", out);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/dir.json", out);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/fifo.json", out);
    assert_int_equal(mkfifo(path, 0600), 0);
    int unreadable = geteuid() != 0; /* root reads a file of mode 0 */
    if (unreadable) {
        snprintf(path, sizeof path, "%s/locked.json", out);
        write_text(path, SPOOL_FILE("locked"));
        assert_int_equal(chmod(path, 0), 0);
    }
    /* A name the platform chose badly: a quote, a space and a newline. */
    const char *odd = "odd \"name\"\nlevel=error event=forged.json";
    drop_file(out, odd, SPOOL_FILE("odd name"));

    assert_true(await_exists(sent, odd));
    assert_true(await_exists(failed, "link.json.error"));
    assert_true(await_exists(failed, "dir.json.error"));
    assert_true(await_exists(failed, "fifo.json.error"));
    if (unreadable)
        assert_true(await_exists(failed, "locked.json.error"));
    assert_true(await_count(out, ".json", 0, 0));
    snprintf(path, sizeof path, "%s/link.json.error", failed);
    char *err = read_text(path);
    assert_non_null(strstr(err, "not a regular file"));
    free(err);
    struct stat st;
    snprintf(path, sizeof path, "%s/link.json", failed);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* the link moved, not what it points to */
    assert_true(file_exists(s.dir, "elsewhere.json"));

    json_t *o = NULL;
    assert_int_equal(api(&s, "GET", "/api/v1/status", NULL, &o), 200);
    assert_int_equal(jint(o, "sent.submitted"), 1);
    json_decref(o);
    daemon_stop(&s);

    /* The log names the odd file quoted: no line of it was forged. */
    char *log = read_text(s.log);
    assert_non_null(log);
    assert_null(strstr(log, "\nlevel=error event=forged"));
    assert_non_null(strstr(log, "\\x0alevel=error event=forged.json"));
    free(log);
}

/* ---- kill -9 mid-spool -------------------------------------------------------- */

#define SPOOL_N 150

static void test_spool_kill9_midway_every_file_arrives_exactly_once(void **state)
{
    (void)state;
    daemon_proc_t s;
    daemon_init(&s, "140000", "spool:\n  dir: \"SPOOL\"\n");
    char out[600], sent[600];
    snprintf(out, sizeof out, "%s/outbox", s.spool);
    snprintf(sent, sizeof sent, "%s/sent", s.spool);
    /* The receiving region is this test itself, through libnhub. */
    char rdir[600];
    snprintf(rdir, sizeof rdir, "%s/receiver-320000", g_root);
    nhub_options_t opt = {.region = "320000",
                          .hub_endpoint = g_hub->endpoint,
                          .data_dir = rdir,
                          .insecure_plaintext = 1,
                          .credit = 256};
    char e[256];
    nhub_t *h = NULL;
    assert_int_equal(nhub_open(&opt, &h, e, sizeof e), 0);

    /* The spool folders come from the daemon; the files wait for it. */
    daemon_start(&s);
    for (int i = 0; i < SPOOL_N; i++) {
        char name[64], text[2048], purpose[32];
        snprintf(name, sizeof name, "f%04d.json", i);
        snprintf(purpose, sizeof purpose, "file-%04d", i);
        snprintf(text, sizeof text,
                 "{\"to\":\"320000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\","
                 "\"type\":\"" QUERY_TYPE "\",\"payload\":{\"person\":{\"idNumber\":"
                 "\"11010519491231002X\",\"name\":\"张三\"},\"purpose\":\"%s\","
                 "\"office\":{\"code\":\"1101000001\"}}}",
                 purpose);
        drop_file(out, name, text);
    }
    /* Killed while it works through them. */
    int64_t deadline = now_ms() + WAIT_MS;
    while (count_files(sent, ".json", 0) < SPOOL_N / 5 && now_ms() < deadline)
        pause_ms(1);
    int at_kill = count_files(sent, ".json", 0);
    daemon_kill(&s);
    int left = count_files(out, ".json", 0);
    fprintf(stderr, "killed with %d files in sent/, %d in outbox/\n", at_kill, left);
    assert_true(at_kill >= SPOOL_N / 5);
    daemon_start(&s);
    assert_true(await_count(out, ".json", 0, 0));
    assert_int_equal(count_files(sent, ".json", 0), SPOOL_N);

    int seen[SPOOL_N] = {0}, dups = 0, total = 0;
    const ProtobufCMessageDescriptor *desc = payload_find(QUERY_TYPE);
    assert_non_null(desc);
    deadline = now_ms() + 30000;
    while (total < SPOOL_N && now_ms() < deadline) {
        nhub_delivery_t *d = NULL;
        if (nhub_recv(h, &d, 200) != 0)
            continue;
        json_t *j = NULL;
        assert_int_equal(pbjson_unpack(desc, d->payload, d->payload_len, &j, e, sizeof e), 0);
        int i = atoi(jstr(j, "purpose") + 5);
        json_decref(j);
        assert_true(i >= 0 && i < SPOOL_N);
        if (seen[i]++)
            dups++;
        else
            total++;
        assert_int_equal(nhub_confirm(h, &d), 0);
    }
    /* Anything handed over twice would come now: the hub redelivers within 300 ms. */
    nhub_delivery_t *d = NULL;
    int64_t until = now_ms() + 1000;
    while (now_ms() < until)
        if (nhub_recv(h, &d, 100) == 0) {
            dups++;
            nhub_confirm(h, &d);
        }
    fprintf(stderr, "received %d distinct, %d twice\n", total, dups);
    assert_int_equal(total, SPOOL_N);
    assert_int_equal(dups, 0);
    for (int i = 0; i < SPOOL_N; i++)
        assert_int_equal(seen[i], 1);
    nhub_close(&h);
    daemon_stop(&s);
}

/* ---- configuration ------------------------------------------------------------- */

/* Run `nhub-adapter run -c FILE` on a bad file: it must exit 1 saying `want` on stderr. */
/* ---- the daemon's record: pruning ----------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fill_id(uint8_t id[NHUB_MSG_ID_LEN], uint8_t tag)
{
    memset(id, 0x5a, NHUB_MSG_ID_LEN);
    id[0] = tag;
}

static void put_sent(track_t *t, uint8_t tag, int kind, int state, int64_t submitted,
                     int64_t settled)
{
    uint8_t id[NHUB_MSG_ID_LEN];
    track_sent_t r = {
        .state = state, .kind = kind, .submitted_ms = submitted, .settled_ms = settled};
    fill_id(id, tag);
    snprintf(r.to, sizeof r.to, "340000");
    snprintf(r.item, sizeof r.item, "SI-VERIFY-002");
    snprintf(r.type, sizeof r.type, QUERY_TYPE);
    assert_int_equal(track_sent_put(t, id, &r), 0);
}

static void put_mark(track_t *t, uint8_t tag, int64_t written)
{
    uint8_t id[NHUB_MSG_ID_LEN];
    track_spool_t m = {.state = TRACK_SPOOL_WRITTEN, .written_ms = written};
    fill_id(id, tag);
    assert_int_equal(track_spool_put(t, id, &m), 0);
}

static long get_tagged(daemon_proc_t *d, uint8_t tag, json_t **o)
{
    uint8_t id[NHUB_MSG_ID_LEN];
    char hex[33], path[100];
    fill_id(id, tag);
    snprintf(path, sizeof path, "/api/v1/messages/%s", nhub_msg_id_hex(id, hex));
    return api(d, "GET", path, NULL, o);
}

static void test_record_settled_and_spent_pruned_after_retention_unsettled_kept(void **state)
{
    (void)state;
    daemon_proc_t a, b;
    daemon_init(&a, "150000",
                API_YAML "spool:\n  dir: \"SPOOL\"\n  inbox: true\n"
                         "track:\n  retention: 1s\n  max_age: 1h\n");
    daemon_init(&b, "340000", API_YAML);

    /* What an earlier run of A left in its record, ten seconds (or two hours) ago. */
    char data[600], rec[700], inbox[600];
    snprintf(data, sizeof data, "%s/data", a.dir);
    snprintf(rec, sizeof rec, "%s/adapterd", data);
    assert_int_equal(mkdir(data, 0700), 0);
    int64_t now = wall_ms(), past = now - 10000;
    track_t *t = NULL;
    char err[300];
    assert_int_equal(track_open(rec, 1 << 20, &t, err, sizeof err), 0);
    put_sent(t, 1, NHUB_KIND_NOTICE, TRACK_ACKED, past, past);         /* settled: goes */
    put_sent(t, 2, NHUB_KIND_REQUEST, TRACK_QUEUED, past, 0);          /* not acked: stays */
    put_sent(t, 3, NHUB_KIND_REQUEST, TRACK_QUEUED, now - 7200000, 0); /* past max_age: goes */
    put_sent(t, 4, NHUB_KIND_REQUEST, TRACK_ACKED, past, past);        /* case open: stays */
    put_mark(t, 5, past); /* its delivery neither held nor in inbox/: goes */
    put_mark(t, 6, past); /* its file still in inbox/: stays */
    assert_int_equal(track_commit(t), 0);
    track_close(&t);
    assert_null(t);
    snprintf(inbox, sizeof inbox, "%s/inbox", a.spool);
    assert_int_equal(mkdir(a.spool, 0700), 0);
    assert_int_equal(mkdir(inbox, 0700), 0);
    uint8_t id6[NHUB_MSG_ID_LEN];
    char hex6[33], name6[64];
    fill_id(id6, 6);
    snprintf(name6, sizeof name6, "%s.json", nhub_msg_id_hex(id6, hex6));
    drop_file(inbox, name6, "{}\n");

    daemon_start(&a);
    daemon_start(&b);
    assert_true(await_field(&a, "/api/v1/status", "link", "up"));
    assert_true(await_field(&b, "/api/v1/status", "link", "up"));

    /* A request from A, answered by B: once its case is closed, its record goes too. */
    const char *req = "{\"to\":\"340000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\","
                      "\"type\":\"" QUERY_TYPE "\",\"payload\":" QUERY_PAYLOAD("pruned") "}";
    json_t *o = NULL;
    assert_int_equal(api(&a, "POST", "/api/v1/messages", req, &o), 202);
    char id[33], mpath[100];
    snprintf(id, sizeof id, "%s", jstr(o, "msgId"));
    json_decref(o);
    snprintf(mpath, sizeof mpath, "/api/v1/messages/%s", id);
    assert_int_equal(api(&a, "GET", mpath, NULL, &o), 200);
    json_decref(o);
    assert_int_equal(api(&b, "GET", "/api/v1/inbox?wait=10", NULL, &o), 200);
    assert_string_equal(jstr(json_array_get(json_object_get(o, "deliveries"), 0), "msgId"), id);
    json_decref(o);
    char path[200], ans[1024];
    snprintf(path, sizeof path, "/api/v1/inbox/%s/confirm", id);
    assert_int_equal(api(&b, "POST", path, "", &o), 200);
    json_decref(o);
    snprintf(ans, sizeof ans,
             "{\"to\":\"150000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"response\","
             "\"type\":\"nhub.insured.v1.StatusAnswer\",\"correlationId\":\"%s\","
             "\"payload\":{\"outcome\":\"OUTCOME_NOT_FOUND\",\"reason\":\"no record\","
             "\"office\":{\"code\":\"3400000001\",\"name\":\"安徽\"}}}",
             id);
    assert_int_equal(api(&b, "POST", "/api/v1/messages", ans, &o), 202);
    json_decref(o);

    int64_t deadline = now_ms() + WAIT_MS;
    long st = 0;
    while ((st = api(&a, "GET", mpath, NULL, &o)) == 200 && now_ms() < deadline) {
        json_decref(o);
        pause_ms(50);
    }
    assert_int_equal(st, 404);
    assert_string_equal(jstr(o, "field"), "msgId");
    assert_non_null(strstr(jstr(o, "detail"), "older than the retention"));
    json_decref(o);

    /* The step that pruned it looked at every record: what is kept was kept on purpose. */
    assert_int_equal(get_tagged(&a, 1, &o), 404);
    json_decref(o);
    assert_int_equal(get_tagged(&a, 3, &o), 404);
    json_decref(o);
    assert_int_equal(get_tagged(&a, 2, &o), 200);
    assert_string_equal(jstr(o, "status"), "queued");
    json_decref(o);
    assert_int_equal(get_tagged(&a, 4, &o), 200);
    assert_string_equal(jstr(o, "case.state"), "open");
    json_decref(o);
    assert_true(await_int(&a, "/api/v1/status", "track.pruned", 4));
    assert_int_equal(api(&a, "GET", "/api/v1/status", NULL, &o), 200);
    assert_int_equal(jint(o, "track.writeFailures"), 0);
    json_decref(o);
    daemon_stop(&a);
    daemon_stop(&b);

    /* The spent mark went, the one whose file is in inbox/ stayed. */
    assert_int_equal(track_open(rec, 1 << 20, &t, err, sizeof err), 0);
    uint8_t id5[NHUB_MSG_ID_LEN];
    track_spool_t m;
    fill_id(id5, 5);
    assert_int_equal(track_spool_get(t, id5, &m), NHUB_ENOTFOUND);
    assert_int_equal(track_spool_get(t, id6, &m), 0);
    track_close(&t);
}

/* A full record (track.map_size_max tiny): submissions and deliveries go on, counted. */
static void test_record_full_loses_no_submission_and_stops_no_delivery(void **state)
{
    (void)state;
    daemon_proc_t a, b;
    daemon_init(&a, "360000",
                API_YAML "spool:\n  dir: \"SPOOL\"\n  inbox: true\n"
                         "track:\n  map_size_max: 64KiB\n  retention: 1h\n");
    daemon_init(&b, "350000", API_YAML);
    daemon_start(&a);
    daemon_start(&b);
    assert_true(await_field(&a, "/api/v1/status", "link", "up"));
    assert_true(await_field(&b, "/api/v1/status", "link", "up"));

    /* A's requests are open cases: nothing to prune, and the record fills up. */
    enum { N_OUT = 120, N_IN = 20 };
    json_t *o = NULL;
    for (int i = 0; i < N_OUT; i++) {
        char req[2048];
        snprintf(req, sizeof req,
                 "{\"to\":\"350000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\","
                 "\"type\":\"" QUERY_TYPE "\",\"payload\":" QUERY_PAYLOAD("full-%d") "}",
                 i);
        long st = api(&a, "POST", "/api/v1/messages", req, &o);
        json_decref(o);
        assert_int_equal(st, 202);
    }
    assert_int_equal(api(&a, "GET", "/api/v1/status", NULL, &o), 200);
    assert_true(jint(o, "track.full") > 0);
    assert_true(jint(o, "track.writeFailures") >= jint(o, "track.full"));
    json_decref(o);
    /* Every one of them reaches B all the same. */
    int got = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while (got < N_OUT && now_ms() < deadline) {
        assert_int_equal(api(&b, "GET", "/api/v1/inbox?wait=2&max=1000", NULL, &o), 200);
        json_t *list = json_object_get(o, "deliveries");
        for (size_t i = 0; i < json_array_size(list); i++) {
            char path[200];
            snprintf(path, sizeof path, "/api/v1/inbox/%s/confirm",
                     jstr(json_array_get(list, i), "msgId"));
            json_t *c = NULL;
            assert_int_equal(api(&b, "POST", path, "", &c), 200);
            got += !json_is_true(json_object_get(c, "already"));
            json_decref(c);
        }
        json_decref(o);
    }
    assert_int_equal(got, N_OUT);

    /* B's messages to A are written into A's inbox/ though A's record takes few or no marks
     * (pages freed by earlier transactions let some small writes through). */
    for (int i = 0; i < N_IN; i++) {
        char req[2048];
        snprintf(req, sizeof req,
                 "{\"to\":\"360000\",\"item\":\"SI-VERIFY-002\",\"kind\":\"request\","
                 "\"type\":\"" QUERY_TYPE "\",\"payload\":" QUERY_PAYLOAD("in-%d") "}",
                 i);
        assert_int_equal(api(&b, "POST", "/api/v1/messages", req, &o), 202);
        json_decref(o);
    }
    char inbox[500];
    snprintf(inbox, sizeof inbox, "%s/inbox", a.spool);
    assert_true(await_count(inbox, ".json", 0, N_IN));
    /* Taken by the platform: each confirmed once, none written again. */
    char names[N_IN][64];
    ino_t inodes[N_IN];
    assert_int_equal(list_json(inbox, names, inodes, N_IN), N_IN);
    for (int i = 0; i < N_IN; i++) {
        char p[800];
        snprintf(p, sizeof p, "%.480s/%.63s", inbox, names[i]);
        assert_int_equal(unlink(p), 0);
    }
    assert_true(await_int(&a, "/api/v1/status", "inbox.confirmed", N_IN));
    assert_int_equal(count_files(inbox, ".json", 0), 0);
    assert_int_equal(api(&a, "GET", "/api/v1/status", NULL, &o), 200);
    assert_int_equal(jint(o, "inbox.held"), 0);
    json_decref(o);
    char *text = read_text(a.log);
    assert_non_null(text);
    assert_non_null(strstr(text, "event=adapterd.track_full"));
    free(text);
    daemon_stop(&a);
    daemon_stop(&b);
}

static void expect_config_error(const char *yaml, const char *want)
{
    char dir[400], cfg[500], errf[500];
    snprintf(dir, sizeof dir, "%s/badcfg-XXXXXX", g_root);
    assert_non_null(mkdtemp(dir));
    snprintf(cfg, sizeof cfg, "%s/adapter.yaml", dir);
    snprintf(errf, sizeof errf, "%s/stderr", dir);
    char text[2048];
    snprintf(text, sizeof text,
             "adapter:\n  region: \"150000\"\n  hub: \"%s\"\n  data_dir: \"%s/data\"\n"
             "  insecure_plaintext: true\n%s",
             g_hub->endpoint, dir, yaml);
    write_text(cfg, text);
    char bin[512];
    th_bin("nhub-adapter", bin, sizeof bin);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        execl(bin, "nhub-adapter", "run", "-c", cfg, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    while (waitpid(pid, &status, WNOHANG) == 0 && now_ms() < deadline)
        pause_ms(10);
    char *out = read_text(errf);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1 || !strstr(out, want))
        fail_msg("wanted exit 1 and \"%s\", got status %d: %s", want, status, out);
    free(out);
}

static void test_config_errors_name_file_line_and_column(void **state)
{
    (void)state;
    expect_config_error("api:\n  listen: \"localhost:x\"\n",
                        "adapter.yaml:7:11: api.listen must be");
    expect_config_error("api:\n  listen: \"7490\"\n  lease: 1d\n", "adapter.yaml:8:10:");
    expect_config_error("api:\n  listen: \"7490\"\n  colour: red\n", "adapter.yaml:8:3:");
    expect_config_error("spool:\n  inbox: true\n", "adapter.yaml:7:10: spool.inbox: true needs");
    expect_config_error("api:\n  listen: \"0\"\n  token_file: \"/nonexistent/token\"\n",
                        "api.token_file: cannot read /nonexistent/token");
    expect_config_error("log:\n  level: info\n", "nothing to serve");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_submit_longpoll_confirm_and_answer_between_two_daemons),
        cmocka_unit_test(test_api_bad_inputs_get_4xx_naming_the_field),
        cmocka_unit_test(test_api_hostile_requests_get_4xx_not_5xx),
        cmocka_unit_test(test_api_longpoll_abandoned_by_its_client_takes_no_delivery),
        cmocka_unit_test(test_api_batch_stored_at_once_one_bad_refuses_all_over_limit_refused),
        cmocka_unit_test(test_spool_files_out_and_in_atomic_and_confirmed_when_taken),
        cmocka_unit_test(test_spool_odd_entries_are_failed_and_odd_names_logged_quoted),
        cmocka_unit_test(test_spool_kill9_midway_every_file_arrives_exactly_once),
        cmocka_unit_test(test_record_settled_and_spent_pruned_after_retention_unsettled_kept),
        cmocka_unit_test(test_record_full_loses_no_submission_and_stops_no_delivery),
        cmocka_unit_test(test_config_errors_name_file_line_and_column),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
