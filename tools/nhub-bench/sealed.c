/*
 * sealed.c: the "sealed" section of nhub-bench (see sealed.h).
 */
#include "sealed.h"

#include "bench.h"
#include "harness.h"
#include "seal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MODES 3 /* clear, AES-256-GCM, SM4-CTR + HMAC-SM3 */
#define MICRO_N 200000

static const char *const mode_name[MODES] = {"stored as received", "sealed aes-256-gcm",
                                             "sealed sm4-ctr-hmac-sm3"};
static const char *const mode_cipher[MODES] = {NULL, "aes-256-gcm", "sm4-ctr-hmac-sm3"};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A random payload key file in h's directory, mode 0600; 0 or -1. */
static int write_key(const th_hub_t *h, char *path, size_t cap)
{
    uint8_t raw[SEAL_KEY_LEN];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(rand() | 1);
    snprintf(path, cap, "%s/payload.key", h->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int ok = fd >= 0 && write(fd, raw, sizeof raw) == (ssize_t)sizeof raw;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

/*
 * One ingest point against a fresh hub in this process in mode `mode`
 * (an index of mode_name). Returns msgs/s, or 0 on failure.
 */
static double hub_point(int mode, int seconds, double *p99)
{
    th_hub_t h;
    char key[400];
    if (th_hub_init(&h, NULL) != 0)
        return 0;
    if (mode_cipher[mode]) {
        if (write_key(&h, key, sizeof key) != 0) {
            th_rmrf(h.dir);
            return 0;
        }
        snprintf(h.security, sizeof h.security,
                 "security:\n  mode: insecure-plaintext\n  payload_key_file: \"%s\"\n"
                 "  payload_cipher: %s\n",
                 key, mode_cipher[mode]);
    }
    return bench_inproc_rate(&h, NULL, seconds, p99);
}

static void compare_ingest(int rounds, int seconds)
{
    double rate[MODES][SEALED_ROUNDS], p99[MODES][SEALED_ROUNDS], ratio[MODES][SEALED_ROUNDS];
    for (int round = 0; round < rounds; round++)
        for (int j = 0; j < MODES; j++) {
            int m = (j + round) % MODES;
            rate[m][round] = hub_point(m, seconds, &p99[m][round]);
            if (rate[m][round] <= 0) {
                printf("  sealed: ingest point failed (%s)\n", mode_name[m]);
                return;
            }
        }
    printf("  hub ingest, 4 senders x window 64, %d rounds of %d s on fresh hubs, the order\n"
           "  turning each round (medians; a ratio is the median of the rounds' own ratios):\n",
           rounds, seconds);
    for (int m = 0; m < MODES; m++) {
        double v[SEALED_ROUNDS], w[SEALED_ROUNDS];
        for (int round = 0; round < rounds; round++) {
            v[round] = rate[m][round];
            w[round] = p99[m][round];
            ratio[m][round] = rate[m][round] / rate[0][round];
        }
        qsort(v, (size_t)rounds, sizeof v[0], by_value);
        qsort(w, (size_t)rounds, sizeof w[0], by_value);
        qsort(ratio[m], (size_t)rounds, sizeof ratio[m][0], by_value);
        printf("    %-26s %8.0f msgs/s   p99 %6.2f ms", mode_name[m], v[rounds / 2], w[rounds / 2]);
        if (m)
            printf("   ratio %.2f", ratio[m][rounds / 2]);
        printf("   rounds");
        for (int round = 0; round < rounds; round++)
            printf(" %.0f", rate[m][round]);
        printf("\n");
    }
    fflush(stdout);
}

/* Microseconds per seal and per open of an ingest envelope with `cipher`. */
static int micro(seal_cipher_t cipher, double *seal_us, double *open_us)
{
    uint8_t raw[SEAL_KEY_LEN], id[16], env[1024], sealed[1024 + SEAL_OVERHEAD_MAX], out[1024];
    const uint8_t tag[2] = {0x5e, 0xa1};
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 37 + 1);
    bench_make_id(id, tag, 1);
    size_t elen = bench_envelope(env, sizeof env, id, "110000", "120000", BENCH_PAYLOAD), slen = 0,
           olen = 0;
    seal_key_t *k = NULL;
    if (!elen || seal_key_new(raw, cipher, &k) != 0)
        return -1;
    int rc = 0;
    double t0 = mono_s();
    for (int i = 0; i < MICRO_N && !rc; i++)
        rc = seal_seal(k, id, 16, env, elen, sealed, sizeof sealed, &slen);
    double t1 = mono_s();
    for (int i = 0; i < MICRO_N && !rc; i++)
        rc = seal_open(k, id, 16, sealed, slen, out, sizeof out, &olen);
    double t2 = mono_s();
    seal_key_free(&k);
    if (rc || olen != elen || memcmp(out, env, elen) != 0)
        return -1;
    *seal_us = (t1 - t0) * 1e6 / MICRO_N;
    *open_us = (t2 - t1) * 1e6 / MICRO_N;
    return 0;
}

void section_sealed(int quick, int seconds)
{
    printf("\n== sealed: payload privacy at rest (security.payload_key_file) ==\n");
    compare_ingest(quick ? SEALED_ROUNDS_QUICK : SEALED_ROUNDS, seconds);
    printf("  per envelope (%d-byte payload, %d of each, one core):\n", BENCH_PAYLOAD, MICRO_N);
    for (int m = 1; m < MODES; m++) {
        double s = 0, o = 0;
        if (micro(m == 1 ? SEAL_AES_256_GCM : SEAL_SM4_CTR_HMAC_SM3, &s, &o) != 0)
            printf("    %-26s failed\n", mode_name[m]);
        else
            printf("    %-26s seal %6.2f us   open %6.2f us\n", mode_name[m], s, o);
    }
    fflush(stdout);
}
