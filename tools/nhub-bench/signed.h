/* signed.h: the "signed" section of nhub-bench (see signed.c). */
#ifndef NHUB_BENCH_SIGNED_H
#define NHUB_BENCH_SIGNED_H

/*
 * Print durable ingest (4 senders x window 64) with the hub in its
 * production security mode (curve, signed envelopes, the test catalogue)
 * next to the same ingest in the development mode (insecure-plaintext,
 * unsigned), `seconds` per point, all measured in this call. Needs the
 * catalogue test/data/catalog-test.yaml under the working directory.
 */
void section_signed(int seconds);

#endif
