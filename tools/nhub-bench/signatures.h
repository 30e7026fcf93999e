/* signatures.h: the "signatures" section of nhub-bench (see signatures.c). */
#ifndef NHUB_BENCH_SIGNATURES_H
#define NHUB_BENCH_SIGNATURES_H

#include "keys.h"

#include <stddef.h>

/* Print sign/verify rates; `unsigned_ingest` (msgs/s, 0 if not measured in
 * this run) is printed as the ratio's baseline. */
void section_signatures(int seconds, double unsigned_ingest);

/* The threads nhubd checks signatures on here (its loop and its workers):
 * one per CPU, at most 8, as broker/hub.c starts them. */
size_t signatures_hub_threads(void);

/*
 * Measure `alg` for about 3 x `seconds`: *sign_1th receives signs per second
 * on one thread, *verify_hub verifies per second over signatures_hub_threads()
 * threads (the ceiling of signed ingest here). Returns 0, or -1 (a key could
 * not be made, a signature did not verify, no threads).
 */
int signatures_rates(keys_alg_t alg, double seconds, double *sign_1th, double *verify_hub);

#endif
