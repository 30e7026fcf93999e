/*
 * main.c: nhubd, the national hub daemon.
 *
 *   nhubd -c conf/hub.yaml [--check] [--ready-fd N]
 *
 * Reads the configuration, opens the store, binds the socket and runs the
 * hub loop (hub.h) until SIGTERM or SIGINT; SIGHUP reloads the
 * configuration. Where a message goes: hub.h describes one turn of the loop;
 * store.h the durable state; dispatch.h the delivery windows; session.h the
 * connections; proto/README.md the protocol.
 */
#include "cfg.h"
#include "clock.h"
#include "hub.h"
#include "log.h"
#include "nhub_err.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NHUBD_VERSION "0.1.0"

static volatile sig_atomic_t g_stop, g_reload, g_clock_changed;

/*
 * --test-clock FILE: the wall clock is the system's plus an offset in
 * milliseconds read from FILE (a decimal number), read at start and again
 * after each SIGUSR2, which also wakes the hub to look at its deadlines.
 * Lets tests move time forward by days without waiting; never for
 * production (the journal's times would lie).
 */
static struct {
    const char *path;
    int64_t offset_ms;
} g_test_clock;

static int read_clock_offset(void)
{
    FILE *f = fopen(g_test_clock.path, "r");
    long long v = 0;
    int ok = f && fscanf(f, "%lld", &v) == 1;
    if (f)
        fclose(f);
    if (!ok)
        return -1;
    g_test_clock.offset_ms = v;
    return 0;
}

static int64_t test_wall(void *arg)
{
    (void)arg;
    if (g_clock_changed) {
        g_clock_changed = 0;
        if (read_clock_offset() != 0)
            log_error("hub.test_clock_unreadable", "path=%s", g_test_clock.path);
        else
            log_info("hub.test_clock", "offset_ms=%lld reread=1", (long long)g_test_clock.offset_ms);
    }
    return clock_wall_ms(nhub_clock_system()) + g_test_clock.offset_ms;
}

static int64_t test_mono(void *arg)
{
    (void)arg;
    return clock_mono_ms(nhub_clock_system());
}

static const nhub_clock_t test_clock = {test_wall, test_mono, 0};

static void on_usr2(int sig)
{
    (void)sig;
    g_clock_changed = 1;
}

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    g_reload = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: nhubd [-c FILE] [--check] [--ready-fd N] [--test-clock FILE]\n"
                 "\n"
                 "  -c, --config FILE  configuration (default conf/hub.yaml)\n"
                 "  --check            check the configuration and exit (0 if valid)\n"
                 "  --ready-fd N       write \"ready ENDPOINT [HTTP_URL]\\n\" to file descriptor N\n"
                 "                     once listening, then close it (supervisors and tests)\n"
                 "  --test-clock FILE  tests only: wall clock = system + the milliseconds in\n"
                 "                     FILE, read again on SIGUSR2 (moves case deadlines)\n"
                 "  -h, --help         this text\n"
                 "  --version          print the version\n"
                 "\n"
                 "Signals: SIGTERM/SIGINT stop after the commit in hand; SIGHUP reloads FILE.\n");
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
        return -1;
    sa.sa_handler = on_hup;
    if (sigaction(SIGHUP, &sa, NULL))
        return -1;
    sa.sa_handler = on_usr2;
    if (g_test_clock.path && sigaction(SIGUSR2, &sa, NULL))
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

static void announce_ready(int fd, const char *endpoint, const char *http_url)
{
    if (fd < 0)
        return;
    char line[420];
    int n = snprintf(line, sizeof line, "ready %s%s%s\n", endpoint, http_url ? " " : "",
                     http_url ? http_url : "");
    if (n > 0 && write(fd, line, (size_t)n) < 0)
        log_warn("hub.ready_fd_failed", "fd=%d", fd);
    close(fd);
}

int main(int argc, char **argv)
{
    const char *path = "conf/hub.yaml";
    int check_only = 0, ready_fd = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(a, "--check")) {
            check_only = 1;
        } else if (!strcmp(a, "--test-clock") && i + 1 < argc) {
            g_test_clock.path = argv[++i];
        } else if (!strcmp(a, "--ready-fd") && i + 1 < argc) {
            ready_fd = atoi(argv[++i]);
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("nhubd %s\n", NHUBD_VERSION);
            return 0;
        } else {
            fprintf(stderr, "nhubd: unknown argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    char err[1024];
    cfg_t *cfg = NULL;
    if (cfg_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "nhubd: %s\n", err);
        return 2;
    }
    if (check_only) {
        if (hub_check_config(cfg, err, sizeof err) != 0) {
            fprintf(stderr, "nhubd: %s\n", err);
            cfg_destroy(&cfg);
            return 2;
        }
        printf("%s: valid (%zu regions, security %s)\n", path, cfg->region_count,
               cfg->security.mode == CFG_SECURITY_CURVE ? "curve" : "INSECURE plaintext");
        cfg_destroy(&cfg);
        return 0;
    }
    log_setup(cfg->log.level, NULL);
    if (install_signals() != 0) {
        fprintf(stderr, "nhubd: cannot install signal handlers\n");
        cfg_destroy(&cfg);
        return 1;
    }
    if (g_test_clock.path && read_clock_offset() != 0) {
        fprintf(stderr, "nhubd: --test-clock %s: cannot read a number of milliseconds\n",
                g_test_clock.path);
        cfg_destroy(&cfg);
        return 2;
    }
    if (g_test_clock.path)
        log_warn("hub.test_clock", "offset_ms=%lld detail=\"wall clock moved for tests\"",
                 (long long)g_test_clock.offset_ms);
    hub_t *hub = NULL;
    if (hub_new(&cfg, g_test_clock.path ? &test_clock : nhub_clock_system(), &hub, err,
                sizeof err) != 0) {
        fprintf(stderr, "nhubd: %s\n", err);
        return 1;
    }
    announce_ready(ready_fd, hub_endpoint(hub), hub_http_url(hub));
    int rc = hub_run(hub, &g_stop, &g_reload, path);
    hub_destroy(&hub);
    return rc ? 1 : 0;
}
