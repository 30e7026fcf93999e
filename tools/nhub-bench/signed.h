/* signed.h: the "signed" section of nhub-bench (see signed.c). */
#ifndef NHUB_BENCH_SIGNED_H
#define NHUB_BENCH_SIGNED_H

#include "bench.h"

/*
 * Print durable ingest (4 senders x window 64) with the hub in its
 * production security mode (curve, signed envelopes, the test catalogue)
 * next to the same ingest in the development mode (insecure-plaintext,
 * unsigned), `seconds` per point, all measured in this call. Needs the
 * catalogue test/data/catalog-test.yaml under the working directory.
 */
void section_signed(int seconds);

/*
 * Called around the timed ingest of a curve point, with `arg`: `started`
 * once the hub is up (hub_key: its CURVE public key, Z85), `ingested` after
 * the ingest with the hub still running, `stopped` once the hub has stopped
 * (its log is still there).
 */
typedef struct signed_hooks {
    void (*started)(th_hub_t *hub, const char *hub_key, void *arg);
    void (*ingested)(th_hub_t *hub, void *arg);
    void (*stopped)(th_hub_t *hub, void *arg);
    void *arg;
} signed_hooks_t;

/*
 * One point (b) of section_signed (curve, Ed25519, every envelope signed
 * before the timed part, sized for up to `rate` msgs/s; 0: the hub's verify
 * ceiling) on a fresh hub, with `hooks` (may be NULL). Fills *r; returns 0,
 * or -1 with why (set up, nothing ACKed, NACKs) in `why`.
 */
int signed_curve_point(int seconds, double rate, const signed_hooks_t *hooks, bench_result_t *r,
                       char *why, size_t cap);

#endif
