/*
 * signatures.c: the "signatures" section of nhub-bench: what checking
 * envelope signatures costs, the one CPU-bound step of the hub's curve mode.
 *
 * For each algorithm: signs per second on one thread (the adapter's cost per
 * nhub_send), verifies per second on one thread, and verifies per second
 * spread over the hub's worker threads (workers.h, as many as the hub
 * starts on this machine). The parallel verify rate is the ceiling of
 * signed ingest on this machine; the section prints it beside the unsigned
 * 4 x 64 ingest figure measured in the same run, when there is one.
 */
#include "signatures.h"

#include "keys.h"
#include "workers.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIG_ENVELOPE 600 /* an envelope with a 512-byte payload */
#define SIG_BATCH 256

typedef struct sig_job {
    const keys_verifier_t *v;
    const uint8_t *env;
    const uint8_t (*sig)[KEYS_SIG_MAX];
    const size_t *siglen;
    int failures;
} sig_job_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void verify_range(void *arg, size_t begin, size_t end)
{
    sig_job_t *j = arg;
    for (size_t i = begin; i < end; i++)
        if (keys_verify(j->v, j->env + i % 8, SIG_ENVELOPE, j->sig[i], j->siglen[i]) != 0)
            __atomic_add_fetch(&j->failures, 1, __ATOMIC_RELAXED);
}

/* Per second of: signing, verifying on the caller, verifying over `w`. */
static int measure(keys_alg_t alg, workers_t *w, double seconds, double out[3])
{
    static uint8_t env[SIG_ENVELOPE + 8];
    static uint8_t sig[SIG_BATCH][KEYS_SIG_MAX];
    static size_t siglen[SIG_BATCH];
    keys_file_t *k = NULL;
    keys_verifier_t *v = NULL;
    char err[256];
    for (size_t i = 0; i < sizeof env; i++)
        env[i] = (uint8_t)(i * 131);
    if (keys_generate("110000", alg, 0, &k) != 0 ||
        keys_verifier_parse(k->sign_public, &v, err, sizeof err) != 0) {
        keys_free(&k);
        return -1;
    }
    unsigned long n = 0;
    double t0 = now_s(), t = t0;
    while (t - t0 < seconds) {
        for (size_t i = 0; i < SIG_BATCH; i++)
            keys_sign(k->signer, env + i % 8, SIG_ENVELOPE, sig[i], &siglen[i]);
        n += SIG_BATCH;
        t = now_s();
    }
    out[0] = (double)n / (t - t0);
    sig_job_t job = {v, env, (const uint8_t(*)[KEYS_SIG_MAX])sig, siglen, 0};
    for (int pass = 1; pass <= 2; pass++) {
        n = 0;
        t0 = t = now_s();
        while (t - t0 < seconds) {
            if (pass == 1)
                verify_range(&job, 0, SIG_BATCH);
            else
                workers_run(w, verify_range, &job, SIG_BATCH, 8);
            n += SIG_BATCH;
            t = now_s();
        }
        out[pass] = (double)n / (t - t0);
    }
    keys_verifier_free(&v);
    keys_free(&k);
    return job.failures ? -1 : 0;
}

size_t signatures_hub_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 8 ? 8 : cpus > 1 ? (size_t)cpus : 1;
}

int signatures_rates(keys_alg_t alg, double seconds, double *sign_1th, double *verify_hub)
{
    workers_t *w = NULL;
    double r[3] = {0, 0, 0};
    int rc = workers_new(signatures_hub_threads() - 1, &w) == 0 ? measure(alg, w, seconds, r) : -1;
    workers_destroy(&w);
    *sign_1th = r[0];
    *verify_hub = r[2];
    return rc;
}

void section_signatures(int seconds, double unsigned_ingest)
{
    size_t threads = signatures_hub_threads() - 1;
    workers_t *w = NULL;
    if (workers_new(threads, &w) != 0) {
        printf("\n== signatures: cannot start worker threads\n");
        return;
    }
    double per = seconds > 2 ? 2.0 : 1.0;
    printf("\n== signatures (%d-byte envelopes; hub checks on %zu threads: the loop + %zu workers)\n",
           SIG_ENVELOPE, threads + 1, threads);
    printf("%-8s %14s %16s %18s %s\n", "alg", "sign/s (1 th)", "verify/s (1 th)",
           "verify/s (hub)", "  hub ceiling vs unsigned 4x64 ingest");
    const keys_alg_t algs[2] = {KEYS_ED25519, KEYS_SM2};
    for (int i = 0; i < 2; i++) {
        double r[3];
        if (measure(algs[i], w, per, r) != 0) {
            printf("%-8s failed\n", keys_alg_name(algs[i]));
            continue;
        }
        char ratio[64] = "  (no ingest figure in this run)";
        if (unsigned_ingest > 0)
            snprintf(ratio, sizeof ratio, "  %.2f", r[2] / unsigned_ingest);
        printf("%-8s %14.0f %16.0f %18.0f %s\n", keys_alg_name(algs[i]), r[0], r[1], r[2],
               ratio);
    }
    workers_destroy(&w);
}
