/*
 * retention.c: the "retention" section of nhub-bench (see retention.h).
 */
#include "retention.h"

#include "bench.h"
#include "harness.h"
#include "hub.h"
#include "keys.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS_MAX 7
#define FILES_MAX 512

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], by_value);
    return v[n / 2];
}

/* `nhub-audit verify --archive` over the files in h's archive directory and
 * its store: its records/s and records. 0 or -1. */
static int verify_all(const th_hub_t *h, double *rate, unsigned long long *records, int *files)
{
    char dir[400], bin[512], *names[FILES_MAX], line[1024];
    snprintf(dir, sizeof dir, "%s/archive", h->dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) && n < FILES_MAX)
        if (strstr(e->d_name, ".nharc") && !strstr(e->d_name, ".tmp"))
            names[n++] = strdup(e->d_name);
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    size_t cap = (size_t)n * 512 + 2048, used = 0;
    char *cmd = malloc(cap);
    int rc = -1;
    if (cmd) {
        used = (size_t)snprintf(cmd, cap, "%s verify --archive", th_bin("nhub-audit", bin, sizeof bin));
        for (int i = 0; i < n; i++)
            used += (size_t)snprintf(cmd + used, cap - used, " %s/%s", dir, names[i]);
        snprintf(cmd + used, cap - used, " --data %s/hub-data", h->dir);
        FILE *p = popen(cmd, "r");
        line[0] = 0;
        if (p && !fgets(line, sizeof line, p))
            line[0] = 0;
        int st = p ? pclose(p) : -1;
        const char *tail = strstr(line, " s, ");
        if (st == 0 && !strncmp(line, "OK ", 3) && tail && sscanf(tail + 4, "%lf", rate) == 1 &&
            sscanf(line + 3, "%llu", records) == 1)
            rc = 0;
        else
            fprintf(stderr, "retention: nhub-audit verify --archive: %s (status %d)\n", line, st);
    }
    free(cmd);
    for (int i = 0; i < n; i++)
        free(names[i]);
    *files = n;
    return rc;
}

/* The hub signs its checkpoints (as in production), so verify checks them. */
static int sign_checkpoints(th_hub_t *h)
{
    keys_file_t *k = NULL;
    char secret[400], pub[400], err[256];
    snprintf(secret, sizeof secret, "%s/hub.key", h->dir);
    snprintf(pub, sizeof pub, "%s/hub.pub", h->dir);
    int rc = keys_generate("000000", KEYS_ED25519, (int64_t)time(NULL) * 1000, &k);
    if (rc == 0)
        rc = keys_write(k, secret, pub, 0, err, sizeof err);
    keys_free(&k);
    snprintf(h->security, sizeof h->security,
             "security:\n  mode: insecure-plaintext\n  key_file: \"%s\"\n", secret);
    return rc;
}

void section_retention(int quick, int seconds)
{
    int rounds = quick ? 3 : 5;
    double rate[2][ROUNDS_MAX], p99[2][ROUNDS_MAX], ratio[ROUNDS_MAX];
    double write_ms[ROUNDS_MAX], sync_ms[ROUNDS_MAX];
    unsigned long long files_made = 0;
    th_hub_t last;
    int kept = 0;
    printf("\n== retention (archives): the hub's ingest writing a file of every %d records to\n"
           "   audit.archive_dir against writing none; what a file costs; verify --archive\n",
           RETENTION_EVERY);
    fflush(stdout);
    for (int round = 0; round < rounds; round++)
        for (int j = 0; j < 2; j++) {
            int on = (j + round) % 2;
            th_hub_t h;
            bench_result_t r;
            hub_counters_t n;
            memset(&n, 0, sizeof n);
            if (th_hub_init(&h, NULL) != 0 || sign_checkpoints(&h) != 0)
                return;
            if (on)
                snprintf(h.http, sizeof h.http,
                         "audit:\n  archive_dir: \"%s/archive\"\n  archive_every: %d\n", h.dir,
                         RETENTION_EVERY);
            if (bench_inproc_point(&h, 0, 4, 64, seconds, &r, &n) != 0) {
                printf("  hub ingest point failed\n");
                th_rmrf(h.dir);
                return;
            }
            rate[on][round] = r.rate;
            p99[on][round] = r.p99;
            if (on) {
                double files = n.archive_files ? (double)n.archive_files : 1;
                write_ms[round] = (double)n.archive_write_us / 1e3 / files;
                sync_ms[round] = (double)n.archive_sync_us / 1e3 / files;
                files_made += n.archive_files;
                if (kept)
                    th_rmrf(last.dir);
                last = h;
                kept = 1;
            } else {
                th_rmrf(h.dir);
            }
        }
    for (int round = 0; round < rounds; round++)
        ratio[round] = rate[1][round] / rate[0][round];
    printf("  hub ingest, 4 senders x window 64, %d rounds of %d s on fresh hubs (medians):\n",
           rounds, seconds);
    for (int on = 0; on < 2; on++) {
        double v[ROUNDS_MAX];
        memcpy(v, rate[on], sizeof v);
        double med = median(v, rounds);
        memcpy(v, p99[on], sizeof v);
        printf("    %-22s %8.0f msgs/s   p99 %6.2f ms   rounds", on ? "archives on" : "archives off",
               med, median(v, rounds));
        for (int round = 0; round < rounds; round++)
            printf(" %.0f", rate[on][round]);
        printf(on ? "   ratio %.2f\n" : "\n", median(ratio, rounds));
    }
    printf("  per file of %d records (%llu files in all): the loop's writing %.1f ms, its fsync,\n"
           "  rename and directory fsync %.1f ms on their own thread (medians of the rounds' means)\n",
           RETENTION_EVERY, files_made, median(write_ms, rounds), median(sync_ms, rounds));
    double vrate = 0;
    unsigned long long records = 0;
    int files = 0;
    if (kept && verify_all(&last, &vrate, &records, &files) == 0)
        printf("  nhub-audit verify --archive  %d files and the live store, %llu records: %.0f "
               "records/s\n",
               files, records, vrate);
    if (kept)
        th_rmrf(last.dir);
    fflush(stdout);
}
