/*
 * sealed.h: the "sealed" section of nhub-bench: what payload privacy at
 * rest (security.payload_key_file, proto/seal.h) costs.
 *
 * The hub's ingest (4 senders x window 64, a hub in this process, the
 * development mode) with envelopes stored as received, sealed with
 * AES-256-GCM and sealed with SM4-CTR + HMAC-SM3: SEALED_ROUNDS rounds of
 * the three on fresh hubs, the order turning each round, and the median of
 * each round's own ratio to the clear point. Then the per-envelope cost
 * of seal_seal and seal_open for an ingest envelope (BENCH_PAYLOAD bytes
 * of payload) on one core, microseconds.
 */
#ifndef NHUB_BENCH_SEALED_H
#define NHUB_BENCH_SEALED_H

#define SEALED_ROUNDS 5
#define SEALED_ROUNDS_QUICK 3

/* `quick`: SEALED_ROUNDS_QUICK rounds; `seconds` per ingest point. */
void section_sealed(int quick, int seconds);

#endif
