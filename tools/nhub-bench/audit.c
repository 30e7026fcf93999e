/*
 * audit.c: the "audit" section of nhub-bench (see audit.h).
 */
#include "audit.h"

#include "bench.h"
#include "cfg.h"
#include "clock.h"
#include "cfg.h"
#include "clock.h"
#include "harness.h"
#include "hub.h"
#include "log.h"
#include "hub.h"
#include "log.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"
#include "store.h"
#include "tlog.h"

#include <openssl/evp.h>

#include <pthread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROOFS 2000 /* of each kind */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The ACCEPTED event of push `i`, as commit.c journals one: packed into buf. */
static size_t accepted_event(uint64_t i, uint8_t *buf, size_t cap)
{
    uint8_t id[16], env[1024], stream[16] = {0x5b};
    const uint8_t tag[2] = {(uint8_t)(i >> 8), (uint8_t)i};
    bench_make_id(id, tag, i);
    const char *src = th_regions[BENCH_SOURCE(i)], *dst = th_regions[BENCH_DESTINATION(i)];
    size_t elen = bench_envelope(env, sizeof env, id, src, dst, BENCH_PAYLOAD);
    Nhub__Journal__V1__JournalEvent ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED;
    ev.time_ms = 1790000000000 + (int64_t)i;
    ev.envelope.data = env;
    ev.envelope.len = elen;
    ev.msg_id.data = id;
    ev.msg_id.len = 16;
    ev.source = (char *)src;
    ev.destination = (char *)dst;
    ev.item = "BENCH-ITEM";
    stream[1] = (uint8_t)BENCH_SOURCE(i);
    ev.stream_id.data = stream;
    ev.stream_id.len = 16;
    ev.stream_seq = i / 16 + 1;
    ev.recipients = 1;
    ev.payload_type = "nhub.bench.v1.Blob";
    if (!elen || nhub__journal__v1__journal_event__get_packed_size(&ev) > cap)
        return 0;
    return nhub__journal__v1__journal_event__pack(&ev, buf);
}

/* How a store of the comparison keeps its journal. */
enum { KEEP_CHAIN, KEEP_TREE, KEEP_CHECKPOINTS, KEEP_MSGSEQ, KEEPS };
static const char *const keep_name[KEEPS] = {"the chain alone", "chain + tree",
                                             "chain + tree + checkpoints",
                                             "... + msg_id index (receipts)"};

/* In t: a signed checkpoint of the tree as t grew it, journaled, as
 * broker/checkpoint.c makes one. */
static int checkpoint(store_txn_t *t, const tlog_signer_t *signer, int64_t now_ms)
{
    uint64_t size, seq;
    uint8_t root[TLOG_HASH_LEN], buf[2048];
    char body[TLOG_NAME_MAX + 128], note[TLOG_NAME_MAX + 1024];
    size_t blen, nlen;
    int rc = store_txn_tree(t, &size, root);
    if (!rc)
        rc = tlog_checkpoint_format("nhub.bench/audit", size, root, NULL, body, sizeof body, &blen);
    if (!rc)
        rc = tlog_note_sign(signer, body, blen, note, sizeof note, &nlen);
    if (!rc)
        rc = store_checkpoint_put(t, size, note, nlen);
    if (rc)
        return rc;
    Nhub__Journal__V1__JournalEvent ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CHECKPOINT;
    ev.time_ms = now_ms;
    ev.checkpoint = note;
    ev.tree_size = size;
    if (nhub__journal__v1__journal_event__get_packed_size(&ev) > sizeof buf)
        return NHUB_ETOOBIG;
    return store_journal_append(t, buf, nhub__journal__v1__journal_event__pack(&ev, buf), &seq);
}

/*
 * Write `n` records into a new store in `dir`, `per_txn` to a transaction
 * (each durable: full sync), keeping the journal as `keep` says (a signed
 * checkpoint every AUDIT_TXN records, as audit.checkpoint_every's default).
 * Returns 0 or -1.
 */
static int write_store(const char *dir, uint64_t n, unsigned per_txn, int keep,
                       const tlog_signer_t *signer, double *secs, uint64_t *bytes)
{
    store_t *s = NULL;
    char err[256];
    if (store_open(dir, 16ull << 30, 16ull << 30, &s, err, sizeof err) != 0) {
        fprintf(stderr, "audit: %s\n", err);
        return -1;
    }
    int rc = keep == KEEP_CHAIN ? store_drop_tree(s) : 0;
    double t0 = mono_s();
    uint8_t buf[2048];
    uint64_t since = 0;
    *bytes = 0;
    for (uint64_t i = 0; i < n && !rc;) {
        store_txn_t *t = NULL;
        if ((rc = store_begin(s, &t)) != 0)
            break;
        for (unsigned k = 0; k < per_txn && i < n && !rc; k++, i++) {
            size_t len = accepted_event(i, buf, sizeof buf);
            uint64_t seq;
            rc = len ? store_journal_append(t, buf, len, &seq) : NHUB_EINVAL;
            *bytes += len;
            if (!rc && keep == KEEP_MSGSEQ) { /* as commit.c indexes an ACCEPTED record */
                uint8_t id[16];
                const uint8_t tag[2] = {(uint8_t)(i >> 8), (uint8_t)i};
                bench_make_id(id, tag, i);
                rc = store_msgseq_put(t, id, seq);
            }
        }
        since += per_txn;
        if (!rc && keep >= KEEP_CHECKPOINTS && since >= AUDIT_TXN) {
            rc = checkpoint(t, signer, 1790000000000 + (int64_t)i);
            since = 0;
        }
        if (rc)
            store_abort(&t);
        else
            rc = store_commit(&t);
    }
    *secs = mono_s() - t0;
    store_close(&s);
    if (rc)
        fprintf(stderr, "audit: writing the store: %s\n", nhub_strerror(rc));
    return rc ? -1 : 0;
}

/*
 * The commit path's cost of the transparency log: COMPARE_N records, in
 * transactions of COMPARE_TXN made durable one by one (as the hub's group
 * commit does at the 4 x 64 ingest point), into a fresh store for each of
 * the three ways of keeping the journal, three rounds in rotating order;
 * the medians. The store alone is where the tree's work is: the same
 * fraction of a hub's whole ingest path is smaller.
 */
#define COMPARE_N 200000u
#define COMPARE_TXN 64u
#define ROUNDS 3

static void compare_keeps(int quick)
{
    unsigned n = quick ? COMPARE_N / 4 : COMPARE_N;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    tlog_signer_t *signer = NULL;
    char err[256];
    if (!pkey || tlog_signer_new_pkey("nhub.bench/audit", pkey, &signer, err, sizeof err) != 0) {
        printf("  (no Ed25519 signer: %s)\n", pkey ? err : "keygen failed");
        EVP_PKEY_free(pkey);
        return;
    }
    double rate[KEEPS][ROUNDS];
    int ok = 1;
    for (int round = 0; round < ROUNDS && ok; round++) {
        for (int j = 0; j < KEEPS && ok; j++) {
            int keep = (j + round) % KEEPS;
            char dir[256];
            double secs;
            uint64_t bytes;
            if (th_tmpdir(dir, sizeof dir) != 0 ||
                write_store(dir, n, COMPARE_TXN, keep, signer, &secs, &bytes) != 0)
                ok = 0;
            else
                rate[keep][round] = n / secs;
            th_rmrf(dir);
        }
    }
    tlog_signer_free(&signer);
    EVP_PKEY_free(pkey);
    if (!ok)
        return;
    double med[KEEPS];
    for (int k = 0; k < KEEPS; k++) {
        double v[ROUNDS];
        memcpy(v, rate[k], sizeof v);
        qsort(v, ROUNDS, sizeof v[0], by_value);
        med[k] = v[ROUNDS / 2];
    }
    printf(
        "  commit of %u ACCEPTED records, %u per durable transaction, the median of %d rounds:\n",
        n, COMPARE_TXN, ROUNDS);
    for (int k = 0; k < KEEPS; k++) {
        printf("    %-28s %8.0f records/s", keep_name[k], med[k]);
        if (k)
            printf("   ratio %.2f", med[k] / med[KEEP_CHAIN]);
        printf("   rounds");
        for (int round = 0; round < ROUNDS; round++)
            printf(" %.0f", rate[k][round]);
        printf("\n");
    }
    printf("    (the store alone, without the hub's group commits: where the cost lies; the\n"
           "     target of 0.9 is for the hub's ingest above; checkpoints every %u records,\n"
           "     signed with Ed25519)\n",
           AUDIT_TXN);
    fflush(stdout);
}

/*
 * One point of the hub's ingest (4 senders x window 64, as bench.c's
 * reference point) against a fresh hub in this process, keeping the
 * journal's chain alone (hub_measure_chain_only) or with the tree and its
 * checkpoints (the default: one every audit.checkpoint_every records).
 * Returns msgs/s, or 0 on failure.
 */
static double hub_point(int chain_only, int seconds, double *p99)
{
    th_hub_t h;
    if (th_hub_init(&h, NULL) != 0)
        return 0;
    return bench_inproc_rate(&h, chain_only ? hub_measure_chain_only : NULL, seconds, p99);
}

/* The hub's ingest with the tree and checkpoints against the chain alone:
 * ROUNDS rounds of both, alternating which goes first; the medians. */
#define HUB_ROUNDS 5

static void compare_hub(int seconds)
{
    double rate[2][HUB_ROUNDS], p99[2][HUB_ROUNDS], ratio[HUB_ROUNDS];
    for (int round = 0; round < HUB_ROUNDS; round++)
        for (int j = 0; j < 2; j++) {
            int chain_only = (j + round) % 2;
            rate[chain_only][round] = hub_point(chain_only, seconds, &p99[chain_only][round]);
            if (rate[chain_only][round] <= 0) {
                printf("  hub ingest point failed\n");
                return;
            }
        }
    double med[2], mp99[2];
    for (int k = 0; k < 2; k++) {
        double v[HUB_ROUNDS], w[HUB_ROUNDS];
        memcpy(v, rate[k], sizeof v);
        memcpy(w, p99[k], sizeof w);
        qsort(v, HUB_ROUNDS, sizeof v[0], by_value);
        qsort(w, HUB_ROUNDS, sizeof w[0], by_value);
        med[k] = v[HUB_ROUNDS / 2];
        mp99[k] = w[HUB_ROUNDS / 2];
    }
    for (int round = 0; round < HUB_ROUNDS; round++)
        ratio[round] = rate[0][round] / rate[1][round];
    qsort(ratio, HUB_ROUNDS, sizeof ratio[0], by_value);
    printf("  hub ingest, 4 senders x window 64, %d rounds of %d s on fresh hubs (medians; the\n"
           "  ratio is the median of the rounds' own ratios, a round's two points back to back):\n",
           HUB_ROUNDS, seconds);
    for (int k = 1; k >= 0; k--) {
        printf("    %-28s %8.0f msgs/s   p99 %6.2f ms   rounds",
               keep_name[k ? KEEP_CHAIN : KEEP_CHECKPOINTS], med[k], mp99[k]);
        for (int round = 0; round < HUB_ROUNDS; round++)
            printf(" %.0f", rate[k][round]);
        if (!k)
            printf("   ratio %.2f (target 0.9)", ratio[HUB_ROUNDS / 2]);
        printf("\n");
    }
    fflush(stdout);
}

/* PROOFS proofs of each kind on the store in `dir`, times in microseconds. */
static int time_proofs(const char *dir, uint64_t n, double incl[PROOFS], double cons[PROOFS])
{
    store_t *s = NULL;
    store_reader_t *r = NULL;
    char err[256];
    if (store_open_reader(dir, &s, err, sizeof err) != 0 || store_reader_open(s, &r) != 0) {
        fprintf(stderr, "audit: reader: %s\n", err);
        store_close(&s);
        return -1;
    }
    tlog_hash_t proof[2 * TLOG_MAX_LEVELS];
    size_t len;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int rc = 0;
    for (int i = 0; i < PROOFS && !rc; i++) {
        uint64_t leaf = rnd(&x) % n, m = 1 + rnd(&x) % (n - 1);
        double t0 = mono_s();
        rc = store_tree_prove_inclusion(r, leaf, n, proof, 2 * TLOG_MAX_LEVELS, &len);
        double t1 = mono_s();
        if (!rc)
            rc = store_tree_prove_consistency(r, m, n, proof, 2 * TLOG_MAX_LEVELS, &len);
        double t2 = mono_s();
        incl[i] = (t1 - t0) * 1e6;
        cons[i] = (t2 - t1) * 1e6;
    }
    store_reader_close(&r);
    store_close(&s);
    if (rc)
        fprintf(stderr, "audit: proof: %s\n", nhub_strerror(rc));
    return rc ? -1 : 0;
}

/* Run nhub-audit verify on `dir`: its records/s (its own figure) and wall seconds. */
static int run_verify(const char *dir, double *rate, double *secs, char *line, size_t cap)
{
    char bin[512], cmd[1200];
    snprintf(cmd, sizeof cmd, "%s verify --data %s", th_bin("nhub-audit", bin, sizeof bin), dir);
    double t0 = mono_s();
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    line[0] = 0;
    if (!fgets(line, (int)cap, p))
        line[0] = 0;
    int st = pclose(p);
    *secs = mono_s() - t0;
    line[strcspn(line, "\n")] = 0;
    const char *tail = strstr(line, " s, ");
    if (st != 0 || strncmp(line, "OK ", 3) || !tail || sscanf(tail + 4, "%lf", rate) != 1) {
        fprintf(stderr, "audit: nhub-audit verify: %s (status %d)\n", line, st);
        return -1;
    }
    return 0;
}

void section_audit(int quick, int seconds)
{
    uint64_t n = quick ? AUDIT_QUICK : AUDIT_RECORDS;
    printf(
        "\n== audit (transparency log): what the Merkle tree and its checkpoints cost the hub's\n"
        "   ingest and the store's commit, against the journal's hash chain alone; then a store "
        "of\n"
        "   %llu ACCEPTED records of %d-byte pushes: proof times in its tree, nhub-audit verify's "
        "speed\n",
        (unsigned long long)n, BENCH_PAYLOAD);
    fflush(stdout);
    compare_hub(seconds);
    compare_keeps(quick);
    char dir[256];
    if (th_tmpdir(dir, sizeof dir) != 0) {
        printf("  (no temporary directory)\n");
        return;
    }
    double build_s, incl[PROOFS], cons[PROOFS], rate = 0, vsecs = 0;
    uint64_t bytes;
    char line[512];
    if (write_store(dir, n, AUDIT_TXN, KEEP_TREE, NULL, &build_s, &bytes) == 0) {
        printf("  written                 %llu records (%.0f MiB of events) in %.1f s = %.0f "
               "records/s\n",
               (unsigned long long)n, (double)bytes / (1 << 20), build_s, (double)n / build_s);
        if (time_proofs(dir, n, incl, cons) == 0) {
            qsort(incl, PROOFS, sizeof incl[0], by_value);
            qsort(cons, PROOFS, sizeof cons[0], by_value);
            printf("  inclusion proof at %llu  p50 %.1f us  p99 %.1f us  (%d random records)\n",
                   (unsigned long long)n, incl[PROOFS / 2], incl[PROOFS * 99 / 100], PROOFS);
            printf(
                "  consistency proof to it  p50 %.1f us  p99 %.1f us  (%d random earlier sizes)\n",
                cons[PROOFS / 2], cons[PROOFS * 99 / 100], PROOFS);
        }
        if (run_verify(dir, &rate, &vsecs, line, sizeof line) == 0)
            printf("  nhub-audit verify        %.0f records/s on one core (%.1f s in all; target "
                   "300000)\n"
                   "  detail: %s\n",
                   rate, vsecs, line);
    }
    th_rmrf(dir);
    fflush(stdout);
}
