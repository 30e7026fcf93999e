/* signatures.h: the "signatures" section of nhub-bench (see signatures.c). */
#ifndef NHUB_BENCH_SIGNATURES_H
#define NHUB_BENCH_SIGNATURES_H

/* Print sign/verify rates; `unsigned_ingest` (msgs/s, 0 if not measured in
 * this run) is printed as the ratio's baseline. */
void section_signatures(int seconds, double unsigned_ingest);

#endif
