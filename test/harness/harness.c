/*
 * harness.c: start, stop and kill real nhubd processes for tests (see harness.h).
 */
#include "harness.h"
#include "keys.h"
#include "nhub.h"
#include "tlog.h"

#include <errno.h>
#include <openssl/evp.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *const th_regions[] = {
    "110000", "120000", "130000", "140000", "150000", "210000", "220000", "230000", "310000",
    "320000", "330000", "340000", "350000", "360000", "370000", "410000", "420000", "430000",
    "440000", "450000", "460000", "500000", "510000", "520000", "530000", "540000", "610000",
    "620000", "630000", "640000", "650000", "660000", NULL,
};

int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *th_bin(const char *name, char *buf, size_t cap)
{
    const char *dir = getenv("NHUB_BIN");
    snprintf(buf, cap, "%s/%s", dir && dir[0] ? dir : "build/bin", name);
    return buf;
}

int th_tmpdir(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, cap, "%s/nhub-test-XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(out) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void th_rmrf(const char *path)
{
    if (path && path[0])
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_config(th_hub_t *h, const char *listen)
{
    FILE *f = fopen(h->cfg_path, "w");
    if (!f)
        return -1;
    fprintf(f, "hub:\n  listen: \"%s\"\n  data_dir: \"%s/hub-data\"\n", listen, h->dir);
    fprintf(f, "limits:\n  heartbeat: 1s\n%s", h->limits);
    fprintf(f, "log:\n  level: info\n");
    fputs(h->security[0] ? h->security : "security:\n  mode: insecure-plaintext\n", f);
    fputs(h->http, f);
    fprintf(f, "regions:\n");
    for (int i = 0; th_regions[i]; i++) {
        fprintf(f, "  - code: \"%s\"\n    name: \"Region %s\"\n", th_regions[i], th_regions[i]);
        if (h->region_yaml[i])
            fputs(h->region_yaml[i], f);
    }
    if (h->extra_region[0])
        fprintf(f, "  - code: \"%s\"\n    name: \"City %s\"\n", h->extra_region, h->extra_region);
    return fclose(f) == 0 ? 0 : -1;
}

int th_hub_reconfigure(th_hub_t *h, const char *limits_yaml, const char *extra_region)
{
    snprintf(h->limits, sizeof h->limits, "%s", limits_yaml ? limits_yaml : "");
    snprintf(h->extra_region, sizeof h->extra_region, "%s", extra_region ? extra_region : "");
    return write_config(h, h->endpoint);
}

int th_hub_write_config(th_hub_t *h)
{
    return write_config(h, h->endpoint[0] ? h->endpoint : "tcp://127.0.0.1:*");
}

int th_hub_write_raw_config(th_hub_t *h, const char *text)
{
    FILE *f = fopen(h->cfg_path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int count_in_log(const th_hub_t *h, const char *needle)
{
    FILE *f = fopen(h->log_path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

int th_log_count(const th_hub_t *h, const char *needle)
{
    return count_in_log(h, needle);
}

int th_log_wait(const th_hub_t *h, const char *needle, int count, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (count_in_log(h, needle) >= count)
            return 1;
        if (th_now_ms() >= deadline)
            return 0;
        struct pollfd none;
        poll(&none, 0, 20); /* the hub writes its log on its own: look again shortly */
    }
}

int th_send_pushes(const th_hub_t *h, const char *src, const char *dst, int n, int timeout_ms)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/adapter-%s", h->dir, src);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = src;
    o.hub_endpoint = h->endpoint;
    o.data_dir = path;
    o.send_only = 1;
    o.insecure_plaintext = 1;
    nhub_t *a = NULL;
    if (nhub_open(&o, &a, err, sizeof err) != 0) {
        fprintf(stderr, "th_send_pushes: nhub_open %s: %s\n", src, err);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        nhub_message_t m;
        memset(&m, 0, sizeof m);
        m.destination = dst;
        m.item = "TEST-PUSH";
        m.kind = NHUB_KIND_PUSH;
        m.payload_type = "nhub.test.v1.Counter";
        m.payload = "audit";
        m.payload_len = 5;
        rc = nhub_send(a, &m, NULL);
    }
    if (rc == 0)
        rc = nhub_flush(a, timeout_ms);
    if (rc != 0)
        fprintf(stderr, "th_send_pushes: %s\n", nhub_last_error(a));
    nhub_close(&a);
    return rc == 0 ? 0 : -1;
}

void th_sha256(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
               uint8_t out[32])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned n = 0;
    if (!m || EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(m, a, alen) != 1 || (blen && EVP_DigestUpdate(m, b, blen) != 1) ||
        (clen && EVP_DigestUpdate(m, c, clen) != 1) || EVP_DigestFinal_ex(m, out, &n) != 1)
        memset(out, 0, 32); /* no test expects the zero hash */
    EVP_MD_CTX_free(m);
}

double th_metric_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, series, n) && (line[n] == ' ' || line[n] == '{'))
            return strtod(strchr(line + n, ' ') + 1, NULL);
    return -1;
}

int th_hub_signing_key(th_hub_t *h, const char *origin, char *vkey_file, size_t cap,
                       keys_file_t **key)
{
    char secret[400], pub[400], err[512], vkey[TLOG_VKEY_MAX];
    keys_file_t *k = NULL;
    tlog_signer_t *signer = NULL;
    snprintf(secret, sizeof secret, "%s/hub.key", h->dir);
    snprintf(pub, sizeof pub, "%s/hub.pub", h->dir);
    snprintf(vkey_file, cap, "%s/hub.vkey", h->dir);
    int rc = keys_generate("000000", KEYS_ED25519, 1764000000000, &k) != 0 ||
             keys_write(k, secret, pub, 0, err, sizeof err) != 0 ||
             tlog_signer_new(origin, k, &signer, err, sizeof err) != 0 ||
             tlog_signer_vkey(signer, vkey, sizeof vkey) != 0;
    tlog_signer_free(&signer);
    FILE *f = rc ? NULL : fopen(vkey_file, "w");
    if (!f || fprintf(f, "%s\n", vkey) < 0)
        rc = 1;
    if (f && fclose(f) != 0)
        rc = 1;
    snprintf(h->security, sizeof h->security,
             "security:\n  mode: insecure-plaintext\n  key_file: \"%s\"\n", secret);
    if (key && !rc)
        *key = k;
    else
        keys_free(&k);
    return rc ? -1 : 0;
}

int th_hub_insecure_catalog(th_hub_t *h, const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return -1;
    int n = snprintf(h->security, sizeof h->security,
                     "security:\n  mode: insecure-plaintext\n  catalog: \"%.900s\"\n", real);
    return n > 0 && (size_t)n < sizeof h->security ? 0 : -1;
}

int th_hub_init(th_hub_t *h, const char *limits_yaml)
{
    memset(h, 0, sizeof *h);
    if (th_tmpdir(h->dir, sizeof h->dir) != 0)
        return -1;
    snprintf(h->cfg_path, sizeof h->cfg_path, "%s/hub.yaml", h->dir);
    snprintf(h->log_path, sizeof h->log_path, "%s/hub.log", h->dir);
    snprintf(h->limits, sizeof h->limits, "%s", limits_yaml ? limits_yaml : "");
    return th_hub_clock_write(h, 0);
}

/* Read "ready ENDPOINT\n" from fd within timeout_ms. */
static int read_ready(int fd, char *endpoint, size_t cap, int timeout_ms)
{
    char buf[256];
    size_t used = 0;
    int64_t deadline = th_now_ms() + timeout_ms;
    while (used < sizeof buf - 1) {
        int left = (int)(deadline - th_now_ms());
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
        if (n <= 0)
            return -1;
        used += (size_t)n;
        buf[used] = '\0';
        char *nl = strchr(buf, '\n');
        if (nl) {
            *nl = '\0';
            if (strncmp(buf, "ready ", 6) != 0)
                return -1;
            snprintf(endpoint, cap, "%s", buf + 6);
            return 0;
        }
    }
    return -1;
}

int th_hub_start(th_hub_t *h)
{
    if (write_config(h, h->endpoint[0] ? h->endpoint : "tcp://127.0.0.1:*") != 0)
        return -1;
    int p[2];
    if (pipe(p) != 0)
        return -1;
    char bin[512];
    th_bin("nhubd", bin, sizeof bin);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        /* A test that fails before it stops its hub leaves none behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(p[0]);
        int log = open(h->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log >= 0) {
            dup2(log, 2);
            dup2(log, 1);
        }
        if (p[1] != 3) {
            dup2(p[1], 3);
            close(p[1]);
        }
        char clock_path[300];
        snprintf(clock_path, sizeof clock_path, "%s/clock", h->dir);
        execl(bin, "nhubd", "-c", h->cfg_path, "--ready-fd", "3", "--test-clock", clock_path,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char ep[300];
    int rc = read_ready(p[0], ep, sizeof ep, 20000);
    close(p[0]);
    if (rc != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fprintf(stderr, "harness: nhubd did not become ready; see %s\n", h->log_path);
        return -1;
    }
    h->pid = pid;
    char *url = strchr(ep, ' ');
    h->http_url[0] = 0;
    if (url) {
        *url++ = 0;
        snprintf(h->http_url, sizeof h->http_url, "%.127s", url);
    }
    snprintf(h->endpoint, sizeof h->endpoint, "%.127s", ep);
    return 0;
}

int th_hub_clock_write(const th_hub_t *h, int64_t offset_ms)
{
    char path[300], tmp[310];
    snprintf(path, sizeof path, "%s/clock", h->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%lld\n", (long long)offset_ms) > 0;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

int th_hub_clock_set(th_hub_t *h, int64_t offset_ms)
{
    if (th_hub_clock_write(h, offset_ms) != 0)
        return -1;
    return h->pid > 0 ? kill(h->pid, SIGUSR2) : 0;
}

int th_hub_clock_move(th_hub_t *h, int64_t offset_ms, int timeout_ms)
{
    char needle[64];
    snprintf(needle, sizeof needle, "offset_ms=%lld reread=1", (long long)offset_ms);
    int seen = th_log_count(h, needle);
    if (th_hub_clock_set(h, offset_ms) != 0)
        return -1;
    return th_log_wait(h, needle, seen + 1, timeout_ms) ? 0 : -1;
}

int th_hub_signal(th_hub_t *h, int sig)
{
    return h->pid > 0 ? kill(h->pid, sig) : -1;
}

int th_hub_stop(th_hub_t *h)
{
    if (h->pid <= 0)
        return -1;
    kill(h->pid, SIGTERM);
    int64_t deadline = th_now_ms() + 20000;
    int status = 0;
    while (th_now_ms() < deadline) {
        pid_t r = waitpid(h->pid, &status, WNOHANG);
        if (r == h->pid) {
            h->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        struct pollfd none;
        poll(&none, 0, 10); /* waiting for a child to exit: bounded by the deadline */
    }
    th_hub_kill(h);
    return -1;
}

void th_hub_kill(th_hub_t *h)
{
    if (h->pid <= 0)
        return;
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    h->pid = 0;
}

void th_hub_cleanup(th_hub_t *h)
{
    if (h->pid > 0)
        th_hub_kill(h);
    if (!getenv("NHUB_KEEP_TMP"))
        th_rmrf(h->dir);
}

int th_log_contains(const th_hub_t *h, const char *needle)
{
    FILE *f = fopen(h->log_path, "r");
    if (!f)
        return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

long long th_log_value(const th_hub_t *h, const char *event, const char *key)
{
    FILE *f = fopen(h->log_path, "r");
    if (!f)
        return -1;
    char line[4096], ev[128], k[128];
    snprintf(ev, sizeof ev, "event=%s ", event);
    snprintf(k, sizeof k, " %s=", key);
    long long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, ev))
            continue;
        const char *p = strstr(line, k);
        if (p)
            v = strtoll(p + strlen(k), NULL, 10);
    }
    fclose(f);
    return v;
}

void th_log_dump(const th_hub_t *h, FILE *out)
{
    FILE *f = fopen(h->log_path, "r");
    if (!f)
        return;
    char line[4096];
    fprintf(out, "---- %s ----\n", h->log_path);
    while (fgets(line, sizeof line, f))
        fputs(line, out);
    fclose(f);
}

int th_group_setup(void **state, const char *limits_yaml)
{
    th_hub_t *h = calloc(1, sizeof *h);
    if (!h || th_hub_init(h, limits_yaml) || th_hub_start(h)) {
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

int th_group_teardown(void **state)
{
    th_hub_t *h = *state;
    int rc = h->pid ? th_hub_stop(h) : 0;
    if (rc != 0)
        th_log_dump(h, stderr);
    th_hub_cleanup(h);
    free(h);
    return rc == 0 ? 0 : -1;
}
