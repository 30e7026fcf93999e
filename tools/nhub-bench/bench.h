/*
 * bench.h: the pieces of nhub-bench's ingest (bench.c) that other sections
 * reuse: start a hub, drive S senders x window W against it, read its mean
 * commit batch.
 *
 * Sender i is region th_regions[BENCH_SOURCE(i)] sending to
 * th_regions[BENCH_DESTINATION(i)]. By default its envelopes are made as
 * they are sent (unsigned, item BENCH-ITEM, kind push, BENCH_PAYLOAD bytes);
 * a section that wants other ones (signed, say) hands bench_ingest a feed.
 */
#ifndef NHUB_BENCH_BENCH_H
#define NHUB_BENCH_BENCH_H

#include "harness.h"
#include "wire.h"

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_PAYLOAD 512 /* bytes of every ingest payload */
#define BENCH_SOURCE(i) ((i) % 16)
#define BENCH_DESTINATION(i) (16 + (i) % 16)

typedef struct bench_result {
    double rate, p50, p99, p999, batch; /* msgs/s; ACK latency in ms; mean commit batch */
    unsigned long long acked;
    unsigned long long nacks; /* NACKs received; the first: */
    int nack_code;
    const char *nack_name; /* e.g. "NACK_BAD_SIGNATURE"; static */
    char nack_text[160];
    int ran_out; /* the feed of some sender ran out: the run ended early */
} bench_result_t;

/*
 * Where bench_ingest's senders get their SENDs, instead of unsigned
 * envelopes made on the fly.
 *
 * next: fill snd->envelope, and snd->signature and snd->key_id if wanted,
 * for message `stream_seq` (1, 2, ...) of sender `sender`; the data is
 * borrowed and must stay valid until the next call. Return 0, or 1 when the
 * sender has no more (the timed part ends there, r->ran_out is set).
 *
 * hub_key: the hub's CURVE public key (Z85); NULL for a plaintext hub. Then
 * client_keys[i] is sender i's CURVE {public, secret} pair (Z85).
 */
typedef struct bench_feed {
    int (*next)(void *arg, int sender, uint64_t stream_seq, wire_send_t *snd);
    void *arg;
    const char *hub_key;
    const char *(*client_keys)[2];
} bench_feed_t;

/*
 * A message id as libnhub makes them (time-ordered): the wall-clock ms, two
 * bytes of `tag` (normally the stream id), the stream_seq `q`.
 */
void bench_make_id(uint8_t id[16], const uint8_t tag[2], uint64_t q);

/*
 * Pack the envelope ingest sends: msg_id `id`, `src` to `dst`, item
 * BENCH-ITEM, kind push, `payload` bytes of 'x' (at most 4096). Returns its
 * length, or 0 if it does not fit in `cap`.
 */
size_t bench_envelope(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                      const char *dst, size_t payload);

/* As bench_envelope, of `item` and `kind` (a wire Kind). */
size_t bench_envelope_item(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                           const char *dst, const char *item, int kind, size_t payload);

/*
 * Start a hub made ready by th_hub_init (and its fields set as wanted).
 * On failure prints why, with the hub's log, and returns -1.
 */
int bench_start_hub(th_hub_t *hub);

/*
 * `senders` senders, each keeping `window` SENDs unacknowledged, for
 * `seconds` after the last of them is welcomed, against `hub`; `idle` more
 * adapters connected but silent. `feed` may be NULL (unsigned envelopes,
 * plaintext). A sender stops at its first NACK (printed to stderr with its
 * code); the run ends when none is left. Fills *r (not r->batch). Returns 0,
 * or -1 if nothing was ACKed or anything was NACKed.
 */
int bench_ingest(th_hub_t *hub, int senders, int window, int seconds, int idle,
                 const bench_feed_t *feed, bench_result_t *r);

/* A hub in the bench's own process (hub.h): bench_hub_thread(&t) runs
 * hub_run(t.hub) until t.stop is set; t.rc is its result. */
typedef struct bench_hub_thread {
    struct hub *hub;
    volatile sig_atomic_t stop, reload;
    int rc;
} bench_hub_thread_t;
void *bench_hub_thread(void *arg);

/*
 * One ingest point (bench_ingest, `senders` x `window`) against a hub of
 * h's configuration (th_hub_init'ed, its fields set: security, limits, an
 * audit section in h->http) run in this process, `prepare` applied to it
 * once made (may be NULL; e.g. hub_measure_chain_only). *r and, if not
 * NULL, *n (the hub's counters at its stop). The hub's directory is left
 * for the caller (th_rmrf). 0 or -1.
 */
struct hub;
struct hub_counters;
int bench_inproc_point(th_hub_t *h, int (*prepare)(struct hub *hub), int senders, int window,
                       int seconds, bench_result_t *r, struct hub_counters *n);

/* bench_inproc_point at the reference point (4 x 64), h's directory
 * removed after: msgs/s (*p99 the ACK p99 in ms), or 0 on failure. */
double bench_inproc_rate(th_hub_t *h, int (*prepare)(struct hub *hub), int seconds, double *p99);

/* The last mean_batch the stopped hub logged (event=hub.stats); 0 if none. */
double bench_mean_batch(const th_hub_t *hub);

/* One nhub message from DEALER `sock` if one is waiting: its command, 0 if
 * none, -1 if it does not parse; *m its body (wire_free). */
int bench_read(void *sock, ProtobufCMessage **m);

/* The RssAnon of process `pid` in KiB; -1 if unknown. */
long bench_rss_anon_kb(pid_t pid);

#define BENCH_CHURN_CLIENTS 1000

/*
 * BENCH_CHURN_CLIENTS distinct clients connecting and disconnecting in a
 * loop on `ctx` (bench_churn_loop, run on its own thread until `stop`).
 * With hub_key NULL (a plaintext hub) each connects, says HELLO and closes
 * once the hub answers (or after 2 s); with the hub's CURVE public key each
 * has a CURVE keypair of its own, made at random (a key the hub does not
 * know), and closes 200 ms after it connected. attempts counts the
 * connections opened, cycles those the hub answered.
 */
typedef struct bench_churn {
    void *ctx;
    const char *endpoint;
    const char *hub_key;
    volatile int stop;
    unsigned long cycles, attempts;
} bench_churn_t;

void *bench_churn_loop(void *arg);

#endif
