/*
 * signed.c: the "signed" section of nhub-bench: durable ingest with the hub
 * in its production security mode, next to the same ingest in the
 * development mode, measured in the same run.
 *
 * Each row is 4 senders x window 64 of BENCH_PAYLOAD-byte payloads against a
 * fresh hub (bench_ingest, as the ingest section):
 *   (a) security.mode insecure-plaintext, unsigned envelopes: the ingest
 *       section's 4 x 64 point, the baseline of the ratios;
 *   (b) security.mode curve: CURVE clients, each sending region with a key
 *       set made for the run (Ed25519), the test catalogue (it allows
 *       BENCH-ITEM pushes from any region to any region), every envelope
 *       signed by its region's key, key_id the key's sign_id;
 *   (c) the same with SM2 keys, when the section's time budget (8 x the
 *       seconds per point: 40 s at the default 5) allows.
 *
 * The senders share the machine with the hub, so they must not take CPU
 * from it to sign while it is measured: every envelope of a curve run is
 * made and signed before the timed part, on as many threads as the hub
 * checks signatures on. How many: the lower of (a)'s rate and the hub's
 * verify ceiling for the algorithm (signatures.c, measured quickly), with a
 * margin, for the run's seconds, bounded in memory. A sender that runs out
 * ends the run early and the row says so. Any NACK is an error of the
 * bench (the hub refused what the bench set up), reported with its code.
 */
#include "signed.h"

#include "bench.h"
#include "keys.h"
#include "signatures.h"
#include "workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGNED_SENDERS 4
#define SIGNED_WINDOW 64
#define SIGNED_LIMITS "  batch_max: 4096\n" /* as the ingest section */
#define SIGNED_CATALOG "test/data/catalog-test.yaml"
#define SIGNED_ENV_MAX 640        /* an envelope of BENCH_PAYLOAD bytes and its fields */
#define SIGNED_MARGIN 1.5         /* envelopes made per message: the probe is rough */
#define SIGNED_MSGS_MAX 300000    /* about 230 MiB of envelopes and signatures */
#define SIGNED_PROBE_SECONDS 0.3  /* per figure of the quick sign/verify probe */
#define SIGNED_BUDGET_PER_POINT 8 /* section seconds per second of a point */

typedef struct signed_msg {
    uint8_t env[SIGNED_ENV_MAX];
    uint8_t sig[KEYS_SIG_MAX];
    uint16_t len, siglen;
} signed_msg_t;

/* One curve run: its keys, the hub configuration lines, the envelopes. */
typedef struct signed_run {
    keys_file_t *hub_keys;
    keys_file_t *keys[SIGNED_SENDERS];
    const char *client_keys[SIGNED_SENDERS][2];
    char region_yaml[SIGNED_SENDERS][KEYS_Z85_LEN + KEYS_PUBLIC_TEXT_MAX + 64];
    signed_msg_t *msgs; /* msgs[sender * per_sender + stream_seq - 1] */
    size_t per_sender;
    int failures; /* envelopes that could not be made or signed */
} signed_run_t;

/* One row of the table, and what its notes say. */
typedef struct signed_row {
    const char *mode;
    int ran;        /* 0: skipped or failed before the timed part (why: note) */
    int ok;         /* bench_ingest's answer */
    double ceiling; /* hub verifies/s for the algorithm; 0 for plaintext */
    double sign_1th;
    size_t made;      /* envelopes signed before the timed part */
    double presign_s; /* and how long that took */
    char note[200];
    bench_result_t r;
} signed_row_t;

/* Make and sign the envelopes [begin, end) of the run (workers_fn). */
static void sign_range(void *arg, size_t begin, size_t end)
{
    signed_run_t *run = arg;
    for (size_t i = begin; i < end; i++) {
        int sender = (int)(i / run->per_sender);
        uint64_t q = i % run->per_sender + 1;
        uint8_t id[16], tag[2] = {'S', (uint8_t)sender}; /* unique per sender */
        signed_msg_t *m = &run->msgs[i];
        size_t len, siglen = 0;
        bench_make_id(id, tag, q);
        len = bench_envelope(m->env, sizeof m->env, id, th_regions[BENCH_SOURCE(sender)],
                             th_regions[BENCH_DESTINATION(sender)], BENCH_PAYLOAD);
        if (len == 0 || keys_sign(run->keys[sender]->signer, m->env, len, m->sig, &siglen) != 0)
            __atomic_add_fetch(&run->failures, 1, __ATOMIC_RELAXED);
        m->len = (uint16_t)len;
        m->siglen = (uint16_t)siglen;
    }
}

/* bench_feed_t.next: the pre-signed envelope `stream_seq` of `sender`. */
static int feed_next(void *arg, int sender, uint64_t stream_seq, wire_send_t *snd)
{
    signed_run_t *run = arg;
    if (stream_seq > run->per_sender)
        return 1;
    signed_msg_t *m = &run->msgs[(size_t)sender * run->per_sender + stream_seq - 1];
    snd->envelope.data = m->env;
    snd->envelope.len = m->len;
    snd->signature.data = m->sig;
    snd->signature.len = m->siglen;
    snd->key_id = run->keys[sender]->sign_id;
    return 0;
}

/*
 * Make the hub's and the senders' key sets, write the hub's key file into
 * its directory and set its security section and the senders' regions'
 * keys. Returns 0, or -1 with the reason in row->note.
 */
static int configure_curve(signed_run_t *run, keys_alg_t alg, const char *catalog, th_hub_t *hub,
                           signed_row_t *row)
{
    char secret[400], pub[400], err[512];
    if (keys_generate("000000", alg, 0, &run->hub_keys) != 0) {
        snprintf(row->note, sizeof row->note, "cannot make the hub's keys");
        return -1;
    }
    for (int i = 0; i < SIGNED_SENDERS; i++) {
        if (keys_generate(th_regions[BENCH_SOURCE(i)], alg, 0, &run->keys[i]) != 0) {
            snprintf(row->note, sizeof row->note, "cannot make the keys of a region");
            return -1;
        }
        run->client_keys[i][0] = run->keys[i]->curve_public;
        run->client_keys[i][1] = run->keys[i]->curve_secret;
        snprintf(run->region_yaml[i], sizeof run->region_yaml[i],
                 "    keys:\n      - curve: \"%s\"\n        sign: \"%s\"\n",
                 run->keys[i]->curve_public, run->keys[i]->sign_public);
        hub->region_yaml[BENCH_SOURCE(i)] = run->region_yaml[i];
    }
    snprintf(secret, sizeof secret, "%s/hub.key", hub->dir);
    snprintf(pub, sizeof pub, "%s/hub.pub", hub->dir);
    if (keys_write(run->hub_keys, secret, pub, 0, err, sizeof err) != 0) {
        snprintf(row->note, sizeof row->note, "%.190s", err);
        return -1;
    }
    int n = snprintf(hub->security, sizeof hub->security,
                     "security:\n  mode: curve\n  key_file: \"%s\"\n  catalog: \"%s\"\n", secret,
                     catalog);
    if (n < 0 || (size_t)n >= sizeof hub->security) {
        snprintf(row->note, sizeof row->note, "the catalogue's path is too long");
        return -1;
    }
    return 0;
}

/* Sign run->per_sender envelopes for every sender on `w`. 0 or -1 (note). */
static int presign(signed_run_t *run, workers_t *w, signed_row_t *row)
{
    size_t n = run->per_sender * SIGNED_SENDERS;
    int64_t t0 = th_now_ms();
    run->msgs = malloc(n * sizeof *run->msgs);
    if (!run->msgs) {
        snprintf(row->note, sizeof row->note, "no memory for %zu envelopes", n);
        return -1;
    }
    workers_run(w, sign_range, run, n, 256);
    row->presign_s = (double)(th_now_ms() - t0) / 1000.0;
    row->made = n;
    if (run->failures) {
        snprintf(row->note, sizeof row->note, "%d envelopes could not be made or signed",
                 run->failures);
        return -1;
    }
    return 0;
}

/* Row (a): insecure-plaintext, unsigned. */
static void run_plain(int seconds, signed_row_t *row)
{
    th_hub_t hub;
    if (th_hub_init(&hub, SIGNED_LIMITS) != 0 || bench_start_hub(&hub) != 0) {
        snprintf(row->note, sizeof row->note, "the hub did not start");
        th_hub_cleanup(&hub);
        return;
    }
    row->ran = 1;
    row->ok = bench_ingest(&hub, SIGNED_SENDERS, SIGNED_WINDOW, seconds, 0, NULL, &row->r) == 0;
    th_hub_stop(&hub);
    row->r.batch = bench_mean_batch(&hub);
    th_hub_cleanup(&hub);
}

/* A curve row of `per_sender` envelopes a sender, signed on `w`. */
static void run_curve(keys_alg_t alg, const char *catalog, size_t per_sender, int seconds,
                      workers_t *w, const signed_hooks_t *hooks, signed_row_t *row)
{
    signed_run_t run;
    th_hub_t hub;
    memset(&run, 0, sizeof run);
    run.per_sender = per_sender;
    bench_feed_t feed = {.next = feed_next, .arg = &run, .client_keys = run.client_keys};
    if (th_hub_init(&hub, SIGNED_LIMITS) != 0) {
        snprintf(row->note, sizeof row->note, "cannot make a temporary directory");
        return;
    }
    if (configure_curve(&run, alg, catalog, &hub, row) != 0 || presign(&run, w, row) != 0)
        goto done;
    if (bench_start_hub(&hub) != 0) {
        snprintf(row->note, sizeof row->note, "the hub did not start (its log is above)");
        goto done;
    }
    feed.hub_key = run.hub_keys->curve_public;
    row->ran = 1;
    if (hooks)
        hooks->started(&hub, feed.hub_key, hooks->arg);
    row->ok = bench_ingest(&hub, SIGNED_SENDERS, SIGNED_WINDOW, seconds, 0, &feed, &row->r) == 0;
    if (hooks)
        hooks->ingested(&hub, hooks->arg);
    th_hub_stop(&hub);
    row->r.batch = bench_mean_batch(&hub);
    if (hooks)
        hooks->stopped(&hub, hooks->arg);
done:
    th_hub_cleanup(&hub);
    free(run.msgs);
    for (int i = 0; i < SIGNED_SENDERS; i++)
        keys_free(&run.keys[i]);
    keys_free(&run.hub_keys);
}

/* Envelopes a sender needs for `seconds` at up to `rate` msgs/s. */
static size_t per_sender_for(double rate, int seconds)
{
    double n = rate * SIGNED_MARGIN * seconds / SIGNED_SENDERS + SIGNED_WINDOW;
    double max = (double)SIGNED_MSGS_MAX / SIGNED_SENDERS;
    return (size_t)(n < max ? n : max);
}

/*
 * Row (b) or (c): probe the algorithm's rates, size the run on the lower of
 * them and (a)'s rate, and run it unless the estimate would take the
 * section past `budget_left` seconds.
 */
static void signed_point(keys_alg_t alg, const char *catalog, double rate_a, int seconds,
                         double budget_left, workers_t *w, const signed_hooks_t *hooks,
                         signed_row_t *row)
{
    if (signatures_rates(alg, SIGNED_PROBE_SECONDS, &row->sign_1th, &row->ceiling) != 0) {
        snprintf(row->note, sizeof row->note, "the sign/verify probe failed");
        return;
    }
    double rate = rate_a > 0 && rate_a < row->ceiling ? rate_a : row->ceiling;
    size_t per_sender = per_sender_for(rate, seconds);
    double threads = (double)workers_count(w) + 1;
    double est = (double)(per_sender * SIGNED_SENDERS) / (row->sign_1th * threads) + seconds + 2;
    if (est > budget_left) {
        snprintf(row->note, sizeof row->note,
                 "skipped: about %.0f s (%zu signatures at %.0f/s on %.0f threads, then the "
                 "run), %.0f s left of the section's budget",
                 est, per_sender * SIGNED_SENDERS, row->sign_1th, threads, budget_left);
        return;
    }
    run_curve(alg, catalog, per_sender, seconds, w, hooks, row);
}

static void print_config(const char *catalog, size_t threads)
{
    printf("   (a) security.mode insecure-plaintext: no keys, no catalogue, unsigned envelopes\n"
           "   (b), (c) security.mode curve, key_file the hub's key set made for the run,\n"
           "       catalog %s\n"
           "       (BENCH-ITEM, kind push, any region to any region); signature checks on %zu\n"
           "       hub threads (its loop + %zu workers: one per CPU, at most 8);\n"
           "       senders",
           catalog, threads, threads - 1);
    for (int i = 0; i < SIGNED_SENDERS; i++)
        printf(" %s", th_regions[BENCH_SOURCE(i)]);
    printf(": CURVE clients, each region with one key set\n"
           "       made for the run (ed25519 in (b), sm2 in (c)); every SEND signed over its\n"
           "       envelope bytes, key_id the key's sign_id, all signed before the timed part\n");
}

static void print_row(const signed_row_t *row, double rate_a)
{
    if (!row->ran) {
        printf("%-26s %s\n", row->mode, row->note);
        return;
    }
    if (row->r.nacks || !row->ok) {
        printf("%-26s ERROR: %s\n", row->mode,
               row->r.nacks ? "NACKed (see below), no figures" : "nothing ACKed (see above)");
        return;
    }
    char ceiling[32] = "-", ratio[32] = "-";
    if (row->ceiling > 0)
        snprintf(ceiling, sizeof ceiling, "%.0f", row->ceiling);
    if (rate_a > 0)
        snprintf(ratio, sizeof ratio, "%.2f", row->r.rate / rate_a);
    printf("%-26s %9.0f %8.2f %8.2f %8.2f %7.1f %8s %14s\n", row->mode, row->r.rate, row->r.p50,
           row->r.p99, row->r.p999, row->r.batch, ratio, ceiling);
}

static void print_notes(const signed_row_t *row)
{
    if (!row->ran)
        return;
    if (row->made)
        printf("  %.3s %zu envelopes signed in %.1f s before the timed part (sign %.0f/s on one "
               "thread)\n",
               row->mode, row->made, row->presign_s, row->sign_1th);
    if (row->r.ran_out)
        printf("  %.3s a sender ran out of signed envelopes: the run ended after %.1f s\n",
               row->mode, row->r.rate > 0 ? (double)row->r.acked / row->r.rate : 0);
    if (row->r.nacks)
        printf("  %.3s ERROR: %llu NACKs; the first: %s (%d) \"%s\"\n", row->mode, row->r.nacks,
               row->r.nack_name, row->r.nack_code, row->r.nack_text);
}

/* The catalogue's full path and the signing threads, or -1 with why. */
static int signing_setup(char catalog[4096], size_t threads, workers_t **w, char *why, size_t cap)
{
    if (!realpath(SIGNED_CATALOG, catalog)) {
        snprintf(why, cap, "cannot find %s: run nhub-bench from the repository root",
                 SIGNED_CATALOG);
        return -1;
    }
    if (workers_new(threads - 1, w) != 0) {
        snprintf(why, cap, "cannot start signing threads");
        return -1;
    }
    return 0;
}

int signed_curve_point(int seconds, double rate, const signed_hooks_t *hooks, bench_result_t *r,
                       char *why, size_t cap)
{
    char catalog[4096];
    workers_t *w = NULL;
    signed_row_t row = {.mode = "curve, ed25519"};
    if (signing_setup(catalog, signatures_hub_threads(), &w, row.note, sizeof row.note) == 0)
        signed_point(KEYS_ED25519, catalog, rate, seconds, 1e9, w, hooks, &row);
    workers_destroy(&w);
    *r = row.r;
    if (row.ran && !row.ok && !row.r.nacks)
        snprintf(row.note, sizeof row.note, "nothing ACKed");
    else if (row.r.nacks)
        snprintf(row.note, sizeof row.note, "%llu NACKs; the first: %s (%d) \"%.80s\"", row.r.nacks,
                 row.r.nack_name, row.r.nack_code, row.r.nack_text);
    snprintf(why, cap, "%s", row.note);
    return row.ran && row.ok ? 0 : -1;
}

void section_signed(int seconds)
{
    char catalog[4096], why[200];
    size_t threads = signatures_hub_threads();
    workers_t *w = NULL;
    int64_t t0 = th_now_ms();
    double budget = (double)SIGNED_BUDGET_PER_POINT * seconds;
    printf("\n== signed: durable ingest (%d senders x window %d, %d-byte payloads), the hub in "
           "its production\n   security mode next to the development mode\n",
           SIGNED_SENDERS, SIGNED_WINDOW, BENCH_PAYLOAD);
    if (signing_setup(catalog, threads, &w, why, sizeof why) != 0) {
        printf("  %s\n", why);
        return;
    }
    print_config(catalog, threads);
    fflush(stdout);
    signed_row_t rows[3] = {{.mode = "(a) plaintext, unsigned"},
                            {.mode = "(b) curve, ed25519"},
                            {.mode = "(c) curve, sm2"}};
    const keys_alg_t algs[2] = {KEYS_ED25519, KEYS_SM2};
    run_plain(seconds, &rows[0]);
    double rate_a = rows[0].ok ? rows[0].r.rate : 0;
    for (int i = 0; i < 2; i++) { /* the budget only decides whether SM2 runs */
        double left = i == 0 ? budget * 10 : budget - (double)(th_now_ms() - t0) / 1000.0;
        signed_point(algs[i], catalog, rate_a, seconds, left, w, NULL, &rows[1 + i]);
    }
    workers_destroy(&w);
    printf("%-26s %9s %8s %8s %8s %7s %8s %14s\n", "mode", "msgs/s", "p50 ms", "p99 ms", "p999 ms",
           "batch", "vs (a)", "verify ceil/s");
    for (int i = 0; i < 3; i++)
        print_row(&rows[i], rate_a);
    for (int i = 0; i < 3; i++)
        print_notes(&rows[i]);
    printf("  (verify ceil/s: the hub's signature checks alone on its %zu threads, probed for "
           "%.1f s)\n",
           threads, SIGNED_PROBE_SECONDS);
}
