/*
 * audit.h: the "audit" section of nhub-bench: what the transparency log
 * (broker/store_tree.c, proto/tlog.h) costs and how fast it answers at the
 * size of a national journal.
 *
 * First the hub's ingest (4 x 64 senders, a hub in this process) keeping
 * the journal's chain alone (hub_measure_chain_only) against the default,
 * the tree and its checkpoints. Then the commit path's cost of the transparency log: the same
 * ACCEPTED records committed in small durable transactions into a store keeping the journal's hash
 * chain alone (store_drop_tree), chain + tree, and chain + tree + an Ed25519-signed checkpoint
 * every AUDIT_TXN records (as the hub does by default): records per second and the ratios to the
 * chain alone.
 *
 * Then a store of AUDIT_RECORDS journal records (quick: AUDIT_QUICK), each the
 * ACCEPTED event of a 512-byte push as the hub journals it, is written
 * through the store's own append (hash chain, leaf, tree nodes, in
 * transactions of AUDIT_TXN records); then, on that store:
 *   - inclusion proofs of random records in the whole tree, and consistency
 *     proofs from random earlier sizes, read as nhub-audit and the HTTP API
 *     read them (a store reader): time per proof, median and p99;
 *   - `nhub-audit verify` over the whole store, the program auditors run:
 *     records per second on one core.
 */
#ifndef NHUB_BENCH_AUDIT_H
#define NHUB_BENCH_AUDIT_H

#define AUDIT_RECORDS 10000000ull
#define AUDIT_QUICK 1000000ull
#define AUDIT_TXN 10000u

/* `quick`: AUDIT_QUICK records instead of AUDIT_RECORDS; `seconds` per
 * ingest point. */
void section_audit(int quick, int seconds);

#endif
