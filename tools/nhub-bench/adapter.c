/*
 * adapter.c: the "adapter" section of nhub-bench (see adapter.h).
 *
 * One hub in the development mode on the test catalogue, default (fsync)
 * durability. Every message is the same insured-status query of the
 * production item SI-VERIFY-002 (nhub.insured.v1.StatusQuery: the valid
 * sample of test/harness/samples.c, in JSON for the daemon) to region
 * DEST, which is not connected: the hub checks the payload, stores the
 * message, opens its case and keeps it queued.
 *
 *   libnhub  region LIB_SRC, a libnhub adapter in this process with the
 *            default options (window 256), send_only: LIB_ONE messages
 *            with nhub_send one at a time, then LIB_BATCH with
 *            nhub_send_batch in batches of BATCH; the clock runs from the
 *            first send until nhub_flush says the hub ACKed all of them.
 *   API      region DAEMON_SRC: `nhub-adapter run` from $NHUB_BIN as a
 *            child process, its configuration, data and spool in the hub's
 *            temporary directory, the API on a free loopback port, default
 *            options and log level info as shipped. K client threads (1,
 *            then 4), each with one libcurl handle (one keep-alive
 *            connection, opened before the clock starts), POST
 *            /api/v1/messages one after the other, each with a msgId of its
 *            own, and wait for the 202. Submissions/s and latency from the
 *            first POST to the last 202; end to end until the daemon's
 *            GET status says the hub ACKed every one and its outbox is empty.
 *   batch    the same daemon, one client: API_BATCH_POSTS messages in POST
 *            /api/v1/messages:batch of API_BATCH each (a JSON array, a
 *            msgId in each), one after the other; submissions/s and the
 *            latency of a batch's 202, end to end as for the API.
 *   spool    the same daemon: SPOOL_FILES files of the POST body's shape
 *            (without msgId: the daemon derives it) written into outbox/ as
 *            NAME.tmp and renamed to NAME.json, as the contract says; from
 *            the first write until every file is in sent/ and the hub
 *            ACKed its message.
 *
 * The ratios are to libnhub's figure of the same run: one at a time for
 * the single API client, batches for the four clients, the API batches
 * and the spool. The
 * daemon and the hub are stopped and the temporary directory removed
 * whatever happened; a daemon that does not stop within STOP_MS of SIGTERM
 * is killed, and a failure prints the tail of the daemon's log first.
 */
#include "adapter.h"

#include "bench.h"
#include "harness.h"
#include "log.h"
#include "nhub.h"
#include "samples.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_CATALOG "test/data/catalog-test.yaml"
#define LIMITS "  batch_max: 4096\n" /* as the ingest section */
#define LIB_SRC "110000"
#define DAEMON_SRC "120000"
#define DEST "440000"
#define ITEM "SI-VERIFY-002"
#define TYPE "nhub.insured.v1.StatusQuery"
#define BATCH 64
#define LIB_ONE 2000
#define LIB_BATCH (BATCH * 400)
#define API_POSTS 2000        /* per point, shared by its clients */
#define API_BATCH 100         /* messages per POST messages:batch */
#define API_BATCH_POSTS 10000 /* messages of the batch point */
#define SPOOL_FILES 2000
#define QUICK_DIV 5 /* --quick: a fifth of each */
#define CLIENTS_MAX 4
#define READY_MS 20000   /* longest wait for the daemon's ready line */
#define SETTLE_MS 120000 /* longest wait for the ACKs, or for the spool to drain */
#define STOP_MS 5000     /* SIGTERM to exit, then SIGKILL */
#define POLL_MS 5        /* between two looks at the daemon's status or folders */
#define LOG_TAIL 4096    /* bytes of the daemon's log shown on a failure */

/* The sample StatusQuery of samples.c, in the protobuf JSON mapping. */
#define QUERY_JSON                                                                                 \
    "{\"person\":{\"idNumber\":\"11010519491231002X\",\"name\":\"张三\"},"                       \
    "\"insuranceTypes\":[\"INSURANCE_TYPE_ENTERPRISE_PENSION\"],"                                  \
    "\"purpose\":\"养老保险待遇领取资格认定\","                                        \
    "\"office\":{\"code\":\"4401000001\",\"name\":\"广州市社会保险基金管理局\"}}"
#define BODY_HEAD                                                                                  \
    "{\"to\":\"" DEST "\",\"item\":\"" ITEM "\",\"kind\":\"request\",\"type\":\"" TYPE             \
    "\",\"payload\":" QUERY_JSON

typedef struct adb {
    th_hub_t hub;
    char ddir[300]; /* the daemon's directory, inside the hub's */
    char cfg[340], log[340], spool[340];
    char url[128]; /* the API, from the ready line */
    pid_t pid;     /* the daemon; 0 = not running */
    uint8_t id_tag[2];
    uint64_t next_id; /* of the API's msgIds */
} adb_t;

typedef struct figure {
    unsigned long n;
    double rate; /* stored (sends returned, 202s, files in sent/) per second */
    double e2e;  /* ACKed by the hub, per second */
    double p50, p99;
} figure_t;

/* One libcurl handle: one keep-alive connection to the daemon. */
typedef struct http {
    CURL *c;
    struct curl_slist *hdr;
    char *buf;
    size_t len, cap;
} http_t;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 of n microsecond values, in ms (sorts v). */
static void quantiles(int64_t *v, size_t n, double *p50, double *p99)
{
    qsort(v, n, sizeof *v, cmp_i64);
    *p50 = n ? (double)v[n / 2] / 1000.0 : 0;
    *p99 = n ? (double)v[(n * 99) / 100] / 1000.0 : 0;
}

static double per_s(unsigned long n, int64_t us)
{
    return us > 0 ? (double)n * 1e6 / (double)us : 0;
}

/* ---- libnhub ------------------------------------------------------------------ */

/* Wait until the hub ACKed everything in h's outbox: 0, or -1 after SETTLE_MS. */
static int lib_flush(nhub_t *h)
{
    int64_t until = mono_us() + SETTLE_MS * 1000LL;
    int rc;
    while ((rc = nhub_flush(h, 200)) == NHUB_ETIMEOUT && mono_us() < until)
        ;
    return rc;
}

/* `count` messages in sends of `per` (1: nhub_send, else nhub_send_batch), until ACKed. */
static int lib_point(nhub_t *h, const nhub_message_t *m, size_t per, unsigned long count,
                     figure_t *f)
{
    size_t calls = count / per;
    int64_t *lat = calloc(calls, sizeof *lat);
    if (!lat)
        return NHUB_ENOMEM;
    int rc = 0;
    int64_t t0 = mono_us();
    for (size_t i = 0; i < calls && rc == 0; i++) {
        int64_t s = mono_us();
        rc = per == 1 ? nhub_send(h, m, NULL) : nhub_send_batch(h, m, per, NULL);
        lat[i] = mono_us() - s;
    }
    int64_t t1 = mono_us();
    if (rc == 0)
        rc = lib_flush(h);
    int64_t t2 = mono_us();
    f->n = (unsigned long)(calls * per);
    f->rate = per_s(f->n, t1 - t0);
    f->e2e = per_s(f->n, t2 - t0);
    quantiles(lat, calls, &f->p50, &f->p99);
    free(lat);
    return rc;
}

static int lib_run(adb_t *r, int quick, figure_t *one, figure_t *batch, size_t *payload_len)
{
    char dir[400], err[256];
    snprintf(dir, sizeof dir, "%s/adapter-" LIB_SRC, r->hub.dir);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = LIB_SRC;
    o.hub_endpoint = r->hub.endpoint;
    o.data_dir = dir;
    o.send_only = 1;
    o.insecure_plaintext = 1;
    nhub_t *h = NULL;
    size_t len = 0;
    uint8_t *payload = sample_bytes(TYPE, &len);
    int rc = -1;
    if (!payload) {
        fprintf(stderr, "nhub-bench: adapter: no sample of %s\n", TYPE);
        return -1;
    }
    *payload_len = len;
    if (nhub_open(&o, &h, err, sizeof err) != 0) {
        fprintf(stderr, "nhub-bench: adapter: nhub_open: %s\n", err);
        goto done;
    }
    nhub_message_t m[BATCH];
    for (size_t i = 0; i < BATCH; i++)
        m[i] = (nhub_message_t){.destination = DEST,
                                .item = ITEM,
                                .kind = NHUB_KIND_REQUEST,
                                .payload_type = TYPE,
                                .payload = payload,
                                .payload_len = len};
    unsigned long n1 = quick ? LIB_ONE / QUICK_DIV : LIB_ONE;
    unsigned long nb = quick ? LIB_BATCH / QUICK_DIV / BATCH * BATCH : LIB_BATCH;
    if ((rc = lib_point(h, m, 1, n1, one)) != 0 || (rc = lib_point(h, m, BATCH, nb, batch)) != 0)
        fprintf(stderr, "nhub-bench: adapter: libnhub: %s: %s\n", nhub_strerror(rc),
                nhub_last_error(h));
done:
    nhub_close(&h);
    free(payload);
    return rc == 0 ? 0 : -1;
}

/* ---- the daemon --------------------------------------------------------------- */

static void show_log_tail(const adb_t *r)
{
    FILE *f = fopen(r->log, "r");
    if (!f)
        return;
    char buf[LOG_TAIL + 1];
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > LOG_TAIL)
        fseek(f, -LOG_TAIL, SEEK_END);
    else
        rewind(f);
    size_t n = fread(buf, 1, LOG_TAIL, f);
    buf[n] = 0;
    fclose(f);
    fprintf(stderr, "---- the end of %s ----\n%s", r->log, buf);
}

static int daemon_write_config(adb_t *r)
{
    snprintf(r->ddir, sizeof r->ddir, "%s/daemon", r->hub.dir);
    snprintf(r->cfg, sizeof r->cfg, "%s/adapter.yaml", r->ddir);
    snprintf(r->log, sizeof r->log, "%s/adapter.log", r->ddir);
    snprintf(r->spool, sizeof r->spool, "%s/spool", r->ddir);
    if (mkdir(r->ddir, 0700) != 0)
        return -1;
    FILE *f = fopen(r->cfg, "w");
    if (!f)
        return -1;
    fprintf(f,
            "adapter:\n  region: \"" DAEMON_SRC "\"\n  hub: \"%s\"\n  data_dir: \"%s/data\"\n"
            "  insecure_plaintext: true\n"
            "api:\n  listen: \"127.0.0.1:0\"\n"
            "spool:\n  dir: \"%s\"\n"
            "log:\n  level: info\n",
            r->hub.endpoint, r->ddir, r->spool);
    return fclose(f) == 0 ? 0 : -1;
}

/* Read the "ready URL" line from `fd` into r->url: 0, or -1 after READY_MS. */
static int daemon_await_ready(adb_t *r, int fd)
{
    char buf[256] = "";
    size_t used = 0;
    int64_t until = mono_us() + READY_MS * 1000LL;
    while (!strchr(buf, '\n') && used < sizeof buf - 1 && mono_us() < until) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        buf[used] = 0;
    }
    char *nl = strchr(buf, '\n');
    if (strncmp(buf, "ready http://", 13) != 0 || !nl)
        return -1;
    *nl = 0;
    snprintf(r->url, sizeof r->url, "%.100s", buf + 6);
    return 0;
}

/* Start `nhub-adapter run -c CFG --ready-fd 3`, its output into its log. 0 or -1. */
static int daemon_start(adb_t *r)
{
    char bin[512];
    th_bin("nhub-adapter", bin, sizeof bin);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "nhub-bench: adapter: no %s (make programs)\n", bin);
        return -1;
    }
    int p[2];
    if (pipe(p) != 0)
        return -1;
    int log = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid_t pid = log >= 0 ? fork() : -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the bench */
        dup2(log, 1);
        dup2(log, 2);
        close(p[0]);
        if (p[1] != 3) {
            dup2(p[1], 3);
            close(p[1]);
        }
        execl(bin, "nhub-adapter", "run", "-c", r->cfg, "--ready-fd", "3", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (log >= 0)
        close(log);
    int rc = -1;
    if (pid > 0) {
        r->pid = pid;
        rc = daemon_await_ready(r, p[0]);
    }
    close(p[0]);
    if (rc != 0)
        fprintf(stderr, "nhub-bench: adapter: nhub-adapter run did not become ready\n");
    return rc;
}

/* SIGTERM, then SIGKILL after STOP_MS. 0 if it exited 0 by itself. */
static int daemon_stop(adb_t *r)
{
    if (r->pid <= 0)
        return 0;
    kill(r->pid, SIGTERM);
    int status = 0;
    pid_t w = 0;
    int64_t until = mono_us() + STOP_MS * 1000LL;
    while ((w = waitpid(r->pid, &status, WNOHANG)) == 0 && mono_us() < until)
        pause_ms(10);
    if (w != r->pid) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        fprintf(stderr, "nhub-bench: adapter: nhub-adapter run did not stop on SIGTERM: killed\n");
        r->pid = 0;
        return -1;
    }
    r->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "nhub-bench: adapter: nhub-adapter run ended with status %d\n", status);
        return -1;
    }
    return 0;
}

/* ---- HTTP --------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    http_t *h = arg;
    size_t n = size * nmemb;
    if (h->len + n + 1 > h->cap) {
        size_t cap = (h->len + n + 1) * 2;
        char *b = realloc(h->buf, cap);
        if (!b)
            return 0; /* libcurl fails the transfer */
        h->buf = b;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, data, n);
    h->len += n;
    h->buf[h->len] = 0;
    return n;
}

static int http_open(http_t *h)
{
    memset(h, 0, sizeof *h);
    h->c = curl_easy_init();
    h->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *more = h->hdr ? curl_slist_append(h->hdr, "Expect:") : NULL;
    if (!h->c || !more)
        return -1;
    h->hdr = more;
    curl_easy_setopt(h->c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, h->hdr);
    curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h->c, CURLOPT_WRITEDATA, h);
    return 0;
}

static void http_close(http_t *h)
{
    if (h->c)
        curl_easy_cleanup(h->c);
    curl_slist_free_all(h->hdr);
    free(h->buf);
    memset(h, 0, sizeof *h);
}

/* GET (body NULL) or POST `url`: the status (0 if no answer); the answer in h->buf. */
static long http_do(http_t *h, const char *url, const char *body)
{
    h->len = 0;
    if (h->buf)
        h->buf[0] = 0;
    curl_easy_setopt(h->c, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(h->c, CURLOPT_HTTPGET, 1L);
    }
    long status = 0;
    if (curl_easy_perform(h->c) != CURLE_OK)
        return 0;
    curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* The daemon's sent.acked and outbox (GET status): 0 or -1. */
static int daemon_status(const adb_t *r, http_t *h, long long *acked, long long *outbox)
{
    char url[200];
    snprintf(url, sizeof url, "%s/api/v1/status", r->url);
    if (http_do(h, url, NULL) != 200)
        return -1;
    json_error_t e;
    json_t *o = json_loads(h->buf ? h->buf : "", 0, &e);
    json_t *a = json_object_get(json_object_get(o, "sent"), "acked");
    json_t *q = json_object_get(o, "outbox");
    int ok = json_is_integer(a) && json_is_integer(q);
    if (ok) {
        *acked = json_integer_value(a);
        *outbox = json_integer_value(q);
    }
    json_decref(o);
    return ok ? 0 : -1;
}

/* Wait until the daemon counts `want` ACKs and its outbox is empty: 0, or -1. */
static int daemon_await_acked(const adb_t *r, http_t *h, long long want)
{
    int64_t until = mono_us() + SETTLE_MS * 1000LL;
    long long acked = 0, outbox = 0;
    while (mono_us() < until) {
        if (daemon_status(r, h, &acked, &outbox) != 0)
            return -1;
        if (acked >= want && outbox == 0)
            return 0;
        pause_ms(POLL_MS);
    }
    fprintf(stderr, "nhub-bench: adapter: %lld of %lld ACKed, %lld in the outbox\n", acked, want,
            outbox);
    return -1;
}

/* ---- the API ------------------------------------------------------------------ */

typedef struct client {
    const adb_t *r;
    uint64_t first_id; /* its msgIds: next_id + 0 .. n-1 */
    unsigned long n;
    pthread_barrier_t *go;
    int64_t *lat;
    int64_t end_us;
    int failed;
    char why[300];
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    const adb_t *r = c->r;
    char status_url[200], url[200], body[1024], hex[33];
    snprintf(status_url, sizeof status_url, "%s/api/v1/status", r->url);
    snprintf(url, sizeof url, "%s/api/v1/messages", r->url);
    http_t h;
    /* The connection is opened before the clock starts. */
    long st = http_open(&h) == 0 ? http_do(&h, status_url, NULL) : 0;
    pthread_barrier_wait(c->go);
    if (st != 200) {
        snprintf(c->why, sizeof c->why, "GET status answered %ld", st);
        c->failed = 1;
    }
    for (unsigned long i = 0; i < c->n && !c->failed; i++) {
        uint8_t id[NHUB_MSG_ID_LEN];
        bench_make_id(id, r->id_tag, c->first_id + i);
        snprintf(body, sizeof body, BODY_HEAD ",\"msgId\":\"%s\"}", nhub_msg_id_hex(id, hex));
        int64_t s = mono_us();
        st = http_do(&h, url, body);
        c->lat[i] = mono_us() - s;
        if (st != 202) {
            snprintf(c->why, sizeof c->why, "POST messages answered %ld: %.200s", st,
                     h.buf ? h.buf : "");
            c->failed = 1;
        }
    }
    c->end_us = mono_us();
    http_close(&h);
    return NULL;
}

/* `k` clients posting `total` messages between them. 0 or -1. */
static int api_point(adb_t *r, http_t *h, int k, unsigned long total, figure_t *f)
{
    client_t c[CLIENTS_MAX];
    pthread_t t[CLIENTS_MAX];
    pthread_barrier_t go;
    long long acked0 = 0, outbox = 0;
    int64_t *lat = calloc(total, sizeof *lat);
    int started = 0, rc = -1;
    if (!lat || daemon_status(r, h, &acked0, &outbox) != 0 ||
        pthread_barrier_init(&go, NULL, (unsigned)k + 1) != 0) {
        free(lat);
        return -1;
    }
    unsigned long off = 0;
    for (int i = 0; i < k; i++) {
        unsigned long n = total / (unsigned long)k + ((unsigned long)i < total % (unsigned long)k);
        c[i] =
            (client_t){.r = r, .first_id = r->next_id + off, .n = n, .go = &go, .lat = lat + off};
        off += n;
    }
    r->next_id += total;
    for (; started < k; started++)
        if (pthread_create(&t[started], NULL, client_main, &c[started]) != 0)
            break;
    if (started < k) {
        /* The barrier waits for k + 1: the missing ones are stood in for. */
        for (int i = started; i < k; i++) {
            c[i].failed = 1;
            snprintf(c[i].why, sizeof c[i].why, "no thread");
            pthread_barrier_wait(&go);
        }
    }
    pthread_barrier_wait(&go);
    int64_t t0 = mono_us(), t1 = t0;
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < k; i++) {
        if (c[i].failed) {
            fprintf(stderr, "nhub-bench: adapter: API client %d: %s\n", i, c[i].why);
            goto done;
        }
        if (c[i].end_us > t1)
            t1 = c[i].end_us;
    }
    if (daemon_await_acked(r, h, acked0 + (long long)total) != 0)
        goto done;
    f->n = total;
    f->rate = per_s(total, t1 - t0);
    f->e2e = per_s(total, mono_us() - t0);
    quantiles(lat, total, &f->p50, &f->p99);
    rc = 0;
done:
    free(lat);
    return rc;
}

/* The JSON array of API_BATCH messages with msgIds first_id.. (caller frees). */
static char *batch_json(const adb_t *r, uint64_t first_id)
{
    static const char one[] = BODY_HEAD ",\"msgId\":\"%s\"}";
    size_t cap = API_BATCH * (sizeof one + 40) + 8, used = 0;
    char *b = malloc(cap), hex[33];
    if (!b)
        return NULL;
    b[used++] = '[';
    for (unsigned i = 0; i < API_BATCH; i++) {
        uint8_t id[NHUB_MSG_ID_LEN];
        bench_make_id(id, r->id_tag, first_id + i);
        if (i)
            b[used++] = ',';
        used += (size_t)snprintf(b + used, cap - used, one, nhub_msg_id_hex(id, hex));
    }
    b[used++] = ']';
    b[used] = 0;
    return b;
}

/* One client posting `total` messages in batches of API_BATCH. 0 or -1. */
static int batch_point(adb_t *r, http_t *h, unsigned long total, figure_t *f)
{
    char url[200];
    unsigned long batches = total / API_BATCH;
    long long acked0 = 0, outbox = 0;
    int64_t *lat = calloc(batches ? batches : 1, sizeof *lat);
    int rc = -1;
    snprintf(url, sizeof url, "%s/api/v1/messages:batch", r->url);
    if (!lat || !batches || daemon_status(r, h, &acked0, &outbox) != 0)
        goto done;
    int64_t t0 = mono_us();
    for (unsigned long i = 0; i < batches; i++) {
        char *body = batch_json(r, r->next_id);
        r->next_id += API_BATCH;
        if (!body)
            goto done;
        int64_t s = mono_us();
        long st = http_do(h, url, body);
        lat[i] = mono_us() - s;
        free(body);
        if (st != 202) {
            fprintf(stderr, "nhub-bench: adapter: POST messages:batch answered %ld: %.200s\n", st,
                    h->buf ? h->buf : "");
            goto done;
        }
    }
    int64_t t1 = mono_us();
    if (daemon_await_acked(r, h, acked0 + (long long)(batches * API_BATCH)) != 0)
        goto done;
    f->n = batches * API_BATCH;
    f->rate = per_s(f->n, t1 - t0);
    f->e2e = per_s(f->n, mono_us() - t0);
    quantiles(lat, batches, &f->p50, &f->p99);
    rc = 0;
done:
    free(lat);
    return rc;
}

/* ---- the spool ---------------------------------------------------------------- */

/* Files in `dir` whose name ends in `suffix` and does not start with '.'; -1 if unreadable. */
static long count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long n = 0;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += e->d_name[0] != '.' && l > sl && !strcmp(e->d_name + l - sl, suffix);
    }
    closedir(d);
    return n;
}

/* As a platform must: NAME.tmp written, then renamed to NAME.json. 0 or -1. */
static int drop_file(const char *outbox, unsigned long i, const char *text, size_t len)
{
    char tmp[600], path[600];
    snprintf(tmp, sizeof tmp, "%s/bench-%06lu.tmp", outbox, i);
    snprintf(path, sizeof path, "%s/bench-%06lu.json", outbox, i);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, text, len);
    if (close(fd) != 0 || w != (ssize_t)len)
        return -1;
    return rename(tmp, path);
}

static int spool_point(adb_t *r, http_t *h, unsigned long m, figure_t *f)
{
    char outbox[400], sent[400], failed[400];
    snprintf(outbox, sizeof outbox, "%s/outbox", r->spool);
    snprintf(sent, sizeof sent, "%s/sent", r->spool);
    snprintf(failed, sizeof failed, "%s/failed", r->spool);
    long long acked0 = 0, outboxed = 0;
    if (daemon_status(r, h, &acked0, &outboxed) != 0)
        return -1;
    static const char text[] = BODY_HEAD "}\n";
    int64_t t0 = mono_us();
    for (unsigned long i = 0; i < m; i++) {
        if (drop_file(outbox, i, text, sizeof text - 1) != 0) {
            fprintf(stderr, "nhub-bench: adapter: cannot write into %s: %s\n", outbox,
                    strerror(errno));
            return -1;
        }
    }
    int64_t until = mono_us() + SETTLE_MS * 1000LL;
    long left = 0, done = 0, bad = 0;
    while (mono_us() < until) {
        left = count_files(outbox, ".json");
        done = count_files(sent, ".json");
        bad = count_files(failed, ".json");
        if (bad != 0 || (left == 0 && done >= (long)m))
            break;
        pause_ms(POLL_MS);
    }
    int64_t t1 = mono_us();
    if (bad != 0 || left != 0 || done < (long)m) {
        fprintf(stderr,
                "nhub-bench: adapter: spool: %ld files left in outbox/, %ld in sent/, %ld "
                "in failed/\n",
                left, done, bad);
        return -1;
    }
    if (daemon_await_acked(r, h, acked0 + (long long)m) != 0)
        return -1;
    f->n = m;
    f->rate = per_s(m, t1 - t0);
    f->e2e = per_s(m, mono_us() - t0);
    return 0;
}

/* ---- the section -------------------------------------------------------------- */

typedef struct figures {
    figure_t one, batch, api[2], api_batch, spool;
    size_t payload_len;
} figures_t;

static const int clients[2] = {1, CLIENTS_MAX};

static int run(adb_t *r, int quick, figures_t *fg)
{
    if (lib_run(r, quick, &fg->one, &fg->batch, &fg->payload_len) != 0)
        return -1;
    if (daemon_write_config(r) != 0) {
        fprintf(stderr, "nhub-bench: adapter: cannot write %s\n", r->cfg);
        return -1;
    }
    if (daemon_start(r) != 0)
        return -1;
    http_t h;
    int rc = http_open(&h);
    unsigned long posts = quick ? API_POSTS / QUICK_DIV : API_POSTS;
    unsigned long files = quick ? SPOOL_FILES / QUICK_DIV : SPOOL_FILES;
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = api_point(r, &h, clients[i], posts, &fg->api[i]);
    if (rc == 0)
        rc = batch_point(r, &h, quick ? API_BATCH_POSTS / QUICK_DIV : API_BATCH_POSTS,
                         &fg->api_batch);
    if (rc == 0)
        rc = spool_point(r, &h, files, &fg->spool);
    http_close(&h);
    return rc;
}

static double ratio(double x, double base)
{
    return base > 0 ? x / base : 0;
}

static void print(const figures_t *fg)
{
    const figure_t *one = &fg->one, *b = &fg->batch, *s = &fg->spool;
    printf("  libnhub nhub_send, one at a time %6lu msgs  %7.0f msgs/s ACKed               "
           "nhub_send p50 %.2f p99 %.2f ms\n",
           one->n, one->e2e, one->p50, one->p99);
    printf("  libnhub nhub_send_batch of %d    %6lu msgs  %7.0f msgs/s ACKed               "
           "per batch p50 %.2f p99 %.2f ms\n",
           BATCH, b->n, b->e2e, b->p50, b->p99);
    for (int i = 0; i < 2; i++) {
        const figure_t *a = &fg->api[i];
        const figure_t *base = i == 0 ? one : b;
        printf("  API, %d client%s                   %6lu POSTs %7.0f submissions/s %5.2fx   "
               "202 p50 %.2f p99 %.2f ms; end to end %.0f msgs/s ACKed %.2fx (ratios to %s)\n",
               clients[i], clients[i] > 1 ? "s" : " ", a->n, a->rate, ratio(a->rate, base->e2e),
               a->p50, a->p99, a->e2e, ratio(a->e2e, base->e2e),
               i == 0 ? "one at a time" : "batches");
    }
    const figure_t *ab = &fg->api_batch;
    printf("  API batch of %d, 1 client        %6lu msgs  %7.0f submissions/s %5.2fx   "
           "202 p50 %.2f p99 %.2f ms per batch; end to end %.0f msgs/s ACKed %.2fx (ratios to "
           "batches)\n",
           API_BATCH, ab->n, ab->rate, ratio(ab->rate, b->e2e), ab->p50, ab->p99, ab->e2e,
           ratio(ab->e2e, b->e2e));
    printf("  spool                            %6lu files %7.0f files/s ACKed %5.2fx   "
           "all in sent/ at %.0f files/s (ratio to batches)\n",
           s->n, s->e2e, ratio(s->e2e, b->e2e), s->rate);
    printf("  detail: one hub (insecure-plaintext, %s, fsync), every message an %s request %s "
           "(%zu bytes packed, a %zu-byte JSON body) to %s, queued there (not connected), "
           "opening a case; libnhub: region %s in this process, default options (window 256); "
           "daemon: $NHUB_BIN/nhub-adapter run, region %s, default options, log level info, "
           "the API on loopback, HTTP/1.1 keep-alive (libcurl), a msgId in each POST, each "
           "client posting one after another; API batches: one client, %d messages in a JSON "
           "array per POST messages:batch; spool: files without msgId written as NAME.tmp "
           "and renamed to NAME.json; ratios to libnhub's ACKed rate\n",
           TEST_CATALOG, ITEM, TYPE, fg->payload_len, sizeof(BODY_HEAD "}") - 1, DEST, LIB_SRC,
           DAEMON_SRC, API_BATCH);
}

void section_adapter(int quick)
{
    printf("\nadapter: nhub-adapter run (JSON API and spool folders) against libnhub's own "
           "nhub_send, one hub, the same run\n");
    fflush(stdout);
    adb_t *r = calloc(1, sizeof *r);
    if (!r)
        return;
    for (int i = 0; i < 2; i++)
        r->id_tag[i] = (uint8_t)rand();
    figures_t fg;
    memset(&fg, 0, sizeof fg);
    if (th_hub_init(&r->hub, LIMITS) != 0) {
        printf("  failed: no temporary directory for the hub\n");
        th_hub_cleanup(&r->hub);
        free(r);
        return;
    }
    log_setup(LOG_ERROR, stderr); /* the adapter's info lines are not the bench's output */
    int ok = 0, curl = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (!curl)
        fprintf(stderr, "nhub-bench: adapter: curl_global_init failed\n");
    else if (th_hub_insecure_catalog(&r->hub, TEST_CATALOG) != 0)
        fprintf(stderr, "nhub-bench: adapter: no %s (run from the source tree)\n", TEST_CATALOG);
    else if (th_hub_start(&r->hub) != 0)
        fprintf(stderr, "nhub-bench: adapter: the hub did not start\n");
    else
        ok = run(r, quick, &fg) == 0;
    if (daemon_stop(r) != 0)
        ok = 0;
    if (!ok && r->log[0])
        show_log_tail(r);
    if (r->hub.pid > 0 && th_hub_stop(&r->hub) != 0)
        ok = 0;
    th_hub_cleanup(&r->hub);
    if (curl)
        curl_global_cleanup();
    log_setup(LOG_INFO, NULL);
    if (ok)
        print(&fg);
    else
        printf("  failed (see above)\n");
    fflush(stdout);
    free(r);
}
