/*
 * proc.c: a program under test as a child process (see proc.h).
 */
#include "proc.h"

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int th_proc_start(th_proc_t *p, const char *const *argv, const char *const *env,
                  const char *err_path, int new_group)
{
    int fds[2];
    memset(p, 0, sizeof *p);
    p->out_fd = -1;
    p->cap = 4096;
    p->text = calloc(1, p->cap);
    if (!p->text || pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        if (new_group)
            setpgid(0, 0);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (err_path) {
            int e = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (e >= 0) {
                dup2(e, 2);
                close(e);
            }
        }
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (new_group)
        setpgid(pid, pid); /* also here, so the group exists before the test signals it */
    close(fds[1]);
    p->pid = pid;
    p->out_fd = fds[0];
    return 0;
}

/* One read of what is there (after waiting up to timeout_ms for it).
 * Returns 1 if something was read, 0 on timeout, -1 at EOF. */
static int read_some(th_proc_t *p, int timeout_ms)
{
    if (p->out_fd < 0)
        return -1;
    struct pollfd pfd = {p->out_fd, POLLIN, 0};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc <= 0)
        return 0;
    if (p->len + 4097 > p->cap) {
        size_t cap = p->cap * 2 + 4096;
        char *t = realloc(p->text, cap);
        if (!t)
            return 0;
        p->text = t;
        p->cap = cap;
    }
    ssize_t n = read(p->out_fd, p->text + p->len, 4096);
    if (n < 0 && errno == EINTR)
        return 0;
    if (n <= 0) {
        close(p->out_fd);
        p->out_fd = -1;
        return -1;
    }
    p->len += (size_t)n;
    p->text[p->len] = '\0';
    return 1;
}

int th_proc_wait_for(th_proc_t *p, int (*pred)(const char *text, void *arg), void *arg,
                     int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    if (pred(p->text, arg))
        return 1;
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return 0;
        int rc = read_some(p, (int)left);
        if (rc < 0)
            return pred(p->text, arg) ? 1 : 0;
        if (rc > 0 && pred(p->text, arg))
            return 1;
    }
}

int th_proc_read_all(th_proc_t *p, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return p->out_fd < 0;
        if (read_some(p, (int)left) < 0)
            return 1;
    }
}

int th_proc_reap(th_proc_t *p, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (p->pid > 0) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            break;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= end)
            return -1;
        poll(NULL, 0, 10); /* a bounded wait for an exit that EOF already announced */
    }
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    return WIFSIGNALED(p->status) ? 128 + WTERMSIG(p->status) : -1;
}

void th_proc_free(th_proc_t *p)
{
    if (p->pid > 0) {
        if (getpgid(p->pid) == p->pid)
            kill(-p->pid, SIGKILL);
        else
            kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
        p->pid = 0;
    }
    if (p->out_fd >= 0)
        close(p->out_fd);
    p->out_fd = -1;
    free(p->text);
    p->text = NULL;
    p->len = p->cap = 0;
}

void th_read_text(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

int th_run_to_files(const char *const *argv, const char *out_path, const char *err_path)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

void th_run_tool(const char *name, const char *dir, const char *out_file,
                 const char *const *args, th_run_t *r)
{
    char bin[512], out_path[400], err_path[400];
    const char *argv[64];
    size_t n = 0;
    argv[n++] = th_bin(name, bin, sizeof bin);
    for (; *args && n < sizeof argv / sizeof argv[0] - 1; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    if (out_file)
        snprintf(out_path, sizeof out_path, "%s", out_file);
    else
        snprintf(out_path, sizeof out_path, "%.300s/%.60s.out", dir, name);
    snprintf(err_path, sizeof err_path, "%.300s/%.60s.err", dir, name);
    r->status = th_run_to_files(argv, out_path, err_path);
    th_read_text(out_path, r->out, sizeof r->out);
    th_read_text(err_path, r->err, sizeof r->err);
}

long long th_number_after(const char *text, const char *label)
{
    const char *last = NULL;
    size_t n = strlen(label);
    for (const char *s = text; text && (s = strstr(s, label)) != NULL; s += n)
        last = s;
    if (!last)
        return -1;
    const char *v = last + n;
    while (*v == ' ')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    return strtoll(v, NULL, 10);
}
