/*
 * peers.c: what the peer drivers share: free ports, starting a server in a
 * process group of its own and stopping that group within a bound, fresh
 * directories and their removal, latency arrays and percentiles, and the
 * start gate that releases all publishers at once.
 *
 * Servers run in their own process group so that one kill reaches every
 * process of theirs that stays in it (Erlang's beam and its shell wrapper);
 * daemons that leave the group (Erlang's epmd) are stopped by their driver.
 */
#include "peers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PEER_LAT_MAX ((size_t)1 << 24)

int64_t peer_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int peer_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int peer_tcp_probe(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (!ok && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        ok = poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
             err == 0;
    }
    close(fd);
    return ok;
}

int peer_have_program(const char *prog)
{
    return access(prog, X_OK) == 0;
}

int peer_mkdtemp(const char *tmpdir, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s-XXXXXX", tmpdir ? tmpdir : "/tmp", name);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: a file that will not go does not stop the rest */
    return 0;
}

void peer_rmrf(const char *path)
{
    if (path && path[0])
        nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

pid_t peer_spawn(char *const argv[], char *const envp[], const char *log_path, const char *cwd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? -1 : pid;
    /* Child: own process group, log to the file, nothing on stdin. */
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (cwd && chdir(cwd) != 0)
        _exit(126);
    signal(SIGPIPE, SIG_DFL);
    if (envp)
        execve(argv[0], argv, envp);
    else
        execv(argv[0], argv);
    _exit(127);
}

int peer_alive(pid_t pid)
{
    if (pid <= 0)
        return 0;
    int st;
    pid_t w = waitpid(pid, &st, WNOHANG);
    return w == 0;
}

static int wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t until = peer_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return 0;
        if (peer_now_us() >= until)
            return -1;
        sleep_ms(20);
    }
}

void peer_stop(pid_t pid, int term_ms)
{
    if (pid <= 0)
        return;
    int st;
    kill(-pid, SIGTERM);
    if (wait_exit(pid, term_ms, &st) != 0) {
        kill(-pid, SIGKILL);
        wait_exit(pid, 5000, &st);
    }
    /* What else is left in the group (a wrapper's children) goes too. */
    kill(-pid, SIGKILL);
}

int peer_run_wait(char *const argv[], char *const envp[], int timeout_ms)
{
    pid_t pid = peer_spawn(argv, envp, "/dev/null", NULL);
    if (pid < 0)
        return -1;
    int st = 0;
    if (wait_exit(pid, timeout_ms, &st) != 0) {
        kill(-pid, SIGKILL);
        wait_exit(pid, 2000, &st);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void peer_lat_add(peer_lat_t *l, int64_t us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 65536;
        if (cap > PEER_LAT_MAX)
            return;
        int64_t *p = realloc(l->us, cap * sizeof *p);
        if (!p)
            return;
        l->us = p;
        l->cap = cap;
    }
    l->us[l->n++] = us;
}

void peer_lat_free(peer_lat_t *l)
{
    free(l->us);
    *l = (peer_lat_t){0};
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void peer_lat_summarize(const peer_lat_t *lats, int n, peer_result_t *r)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lats[i].n;
    r->p50_ms = r->p99_ms = r->p999_ms = 0;
    if (total == 0)
        return;
    int64_t *all = malloc(total * sizeof *all);
    if (!all)
        return;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, lats[i].us, lats[i].n * sizeof *all);
        k += lats[i].n;
    }
    qsort(all, total, sizeof *all, cmp_i64);
    r->p50_ms = (double)all[total / 2] / 1000.0;
    r->p99_ms = (double)all[total * 99 / 100] / 1000.0;
    r->p999_ms = (double)all[total * 999 / 1000] / 1000.0;
    free(all);
}

int peer_window_init(peer_window_t *win, int w)
{
    memset(win, 0, sizeof *win);
    win->next = win->low = 1;
    win->w = w;
    win->sent_at = calloc((size_t)w, sizeof *win->sent_at);
    win->done = calloc((size_t)w, 1);
    return win->sent_at && win->done ? 0 : -1;
}

void peer_window_free(peer_window_t *win)
{
    free(win->sent_at);
    free(win->done);
    win->sent_at = NULL;
    win->done = NULL;
}

int peer_window_has_room(const peer_window_t *win)
{
    return win->next < win->low + (uint64_t)win->w;
}

uint64_t peer_window_sent(peer_window_t *win)
{
    win->sent_at[win->next % (uint64_t)win->w] = peer_now_us();
    return win->next++;
}

static void window_confirm_one(peer_window_t *win, uint64_t n, int64_t now)
{
    size_t k = (size_t)(n % (uint64_t)win->w);
    if (win->done[k])
        return;
    win->done[k] = 1;
    if (now <= win->end_us) {
        win->acked++;
        peer_lat_add(&win->lat, now - win->sent_at[k]);
    }
}

int peer_window_confirm(peer_window_t *win, uint64_t n, int multiple)
{
    if (n < win->low || n >= win->next)
        return 0;
    int64_t now = peer_now_us();
    for (uint64_t t = multiple ? win->low : n; t <= n; t++)
        window_confirm_one(win, t, now);
    /* Slide past what is confirmed, so its slots can be reused. */
    while (win->low < win->next && win->done[win->low % (uint64_t)win->w]) {
        win->done[win->low % (uint64_t)win->w] = 0;
        win->low++;
    }
    return 1;
}

void peer_gate_init(peer_gate_t *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

void peer_gate_destroy(peer_gate_t *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

void peer_gate_ready(peer_gate_t *g, int ok)
{
    pthread_mutex_lock(&g->mu);
    if (ok)
        g->ready++;
    else
        g->failed++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static struct timespec abs_in(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int peer_gate_wait_go(peer_gate_t *g, int timeout_ms)
{
    struct timespec until = abs_in(timeout_ms);
    pthread_mutex_lock(&g->mu);
    while (g->go == 0 && pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0)
        ;
    int go = g->go == 1;
    pthread_mutex_unlock(&g->mu);
    return go;
}

int peer_gate_open(peer_gate_t *g, int n, int seconds, int timeout_ms)
{
    struct timespec until = abs_in(timeout_ms);
    pthread_mutex_lock(&g->mu);
    while (g->ready + g->failed < n && pthread_cond_timedwait(&g->cv, &g->mu, &until) == 0)
        ;
    int ok = g->ready == n;
    g->start_us = peer_now_us();
    g->end_us = g->start_us + (int64_t)seconds * 1000000;
    g->go = ok ? 1 : -1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return ok;
}

int peer_join_until(pthread_t *threads, int *joined, int n, int64_t deadline_us)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (joined[i]) {
            count++;
            continue;
        }
        int64_t left = deadline_us - peer_now_us();
        if (left < 0)
            left = 0;
        struct timespec until = abs_in((int)(left / 1000));
        if (pthread_timedjoin_np(threads[i], NULL, &until) == 0) {
            joined[i] = 1;
            count++;
        }
    }
    return count;
}

/* ---- one measured run of S publisher threads ------------------------------ */

/* What the publisher threads share with the runner; on the heap, so that a
 * thread that never returns does not outlive it. */
typedef struct peer_crew {
    peer_gate_t gate;
    pthread_t *th;
    int *joined;
    peer_pub_t *pubs;
    int started;
} peer_crew_t;

static void crew_collect(peer_crew_t *k, peer_result_t *r)
{
    peer_lat_t *lats = calloc((size_t)k->started, sizeof *lats);
    for (int i = 0; i < k->started; i++) {
        r->acked += k->pubs[i].win.acked;
        if (lats)
            lats[i] = k->pubs[i].win.lat;
        if (k->pubs[i].err[0] && !r->skipped[0])
            snprintf(r->skipped, sizeof r->skipped, "%s", k->pubs[i].err);
    }
    if (lats)
        peer_lat_summarize(lats, k->started, r);
    free(lats);
    for (int i = 0; i < k->started; i++)
        peer_lat_free(&k->pubs[i].win.lat);
    double secs = (double)(k->gate.end_us - k->gate.start_us) / 1e6;
    r->msgs_per_s = secs > 0 ? (double)r->acked / secs : 0;
    if (!r->skipped[0] && r->acked == 0)
        snprintf(r->skipped, sizeof r->skipped, "no confirmation within the run");
    r->ran = !r->skipped[0];
}

void peer_measure(const peer_params_t *p, pid_t *server_pid, int port, int connect_ms,
                  int grace_ms, void *(*pub_main)(void *), peer_result_t *r)
{
    int n = p->senders;
    peer_crew_t *k = calloc(1, sizeof *k);
    if (!k || !(k->th = calloc((size_t)n, sizeof *k->th)) ||
        !(k->joined = calloc((size_t)n, sizeof *k->joined)) ||
        !(k->pubs = calloc((size_t)n, sizeof *k->pubs))) {
        snprintf(r->skipped, sizeof r->skipped, "out of memory");
        goto out;
    }
    peer_gate_init(&k->gate);
    for (; k->started < n; k->started++) {
        int i = k->started;
        k->pubs[i] = (peer_pub_t){.idx = i, .p = p, .port = port, .gate = &k->gate};
        if (pthread_create(&k->th[i], NULL, pub_main, &k->pubs[i]) != 0)
            break;
    }
    if (!peer_gate_open(&k->gate, n, p->seconds, k->started < n ? 0 : connect_ms + 2000))
        snprintf(r->skipped, sizeof r->skipped, "publishers could not connect or start");
    int64_t grace = peer_now_us() + (int64_t)p->seconds * 1000000 + grace_ms * 1000LL;
    if (peer_join_until(k->th, k->joined, k->started, grace) < k->started) {
        /* A publisher is stuck (a send blocked by a stalled broker): killing
         * the server breaks its connection, and then it returns. */
        peer_stop(*server_pid, 0);
        *server_pid = -1;
        int64_t again = peer_now_us() + 10000000;
        if (peer_join_until(k->th, k->joined, k->started, again) < k->started) {
            snprintf(r->skipped, sizeof r->skipped, "publishers hung; results dropped");
            for (int i = 0; i < k->started; i++)
                if (!k->joined[i])
                    pthread_detach(k->th[i]);
            return; /* k stays allocated: a hung thread still uses it */
        }
    }
    crew_collect(k, r);
    peer_gate_destroy(&k->gate);
out:
    if (k) {
        free(k->pubs);
        free(k->joined);
        free(k->th);
    }
    free(k);
}
