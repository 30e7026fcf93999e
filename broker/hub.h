/*
 * hub.h: the hub engine: one ROUTER socket, the store, the sessions and the
 * delivery windows, driven by one loop in one thread.
 *
 * The loop, once per turn:
 *   1. waits for frames (or the next timer);
 *   2. reads every frame already waiting, up to batch_max, validating each
 *      and staging the valid ones (SEND, DELIVERED, HELLO);
 *   3. applies the whole stage in ONE LMDB write transaction and commits it
 *      (fsync): frames that arrived during the previous commit share this
 *      one, which is the group commit;
 *   4. only then sends the ACKs, NACKs and WELCOMEs;
 *   5. hands each online region its queued messages within its credit and
 *      sends again what timed out.
 * The write transaction belongs to this loop alone.
 */
#ifndef NHUB_HUB_H
#define NHUB_HUB_H

#include "cfg.h"
#include "clock.h"

#include <signal.h>
#include <stdint.h>

typedef struct hub hub_t;

/* Counters since start; read with hub_counters. */
typedef struct hub_counters {
    uint64_t frames_in;
    uint64_t accepted;        /* messages stored */
    uint64_t duplicates;      /* repeats ACKed without storing */
    uint64_t rejected;        /* SENDs refused for good (journaled) */
    uint64_t nacked[32];      /* NACKs sent, by NackCode */
    uint64_t dropped;         /* frames too broken to answer */
    uint64_t replies_dropped; /* answers lost to a peer's full queue (it resends) */
    uint64_t delivered;       /* DELIVER frames sent, first attempts */
    uint64_t redelivered;     /* DELIVER frames sent again */
    uint64_t confirmed;       /* DELIVERED applied */
    uint64_t held;            /* newly set aside (still queued): payload type not accepted,
                                 or larger than the receiver takes */
    uint64_t released;        /* held messages delivered and confirmed later */
    uint64_t translated;      /* DELIVERs whose payload was translated to the receiver's version */
    uint64_t translated_lossy; /* ... of which something could not be carried over */
    uint64_t commits;         /* write transactions committed */
    uint64_t committed_items; /* staged items in those commits */
    uint64_t store_full;      /* commits that hit a full store */
    uint64_t replays;         /* stages applied again after the map grew under them */
    uint64_t checkpoints;     /* signed checkpoints of the journal's tree made */
    uint64_t receipts_served; /* RECEIPTs sent */
    uint64_t receipts_refused[8]; /* RECEIPT_GETs refused, by reason (receipts.c) */
    uint64_t sessions_opened, sessions_closed;
    uint64_t auth_refused;     /* CURVE clients refused by the ZAP handler */
    uint64_t handshake_failed; /* handshakes that failed otherwise (e.g. no CURVE) */
    uint64_t identity_refused; /* frames whose key is no longer valid, or whose
                                  identity differs from their session's */
    uint64_t security_events;  /* refusals journaled as security events */
    uint64_t cases_opened, cases_delivered, cases_reminded, cases_overdue, cases_answered,
        cases_refused, cases_expired;
    uint64_t hub_messages; /* notices the hub made about cases (reminders, overdue, final answers) */
    uint64_t sealed_unopened; /* deliveries of a sealed envelope the hub's payload key could not
                                 open (another key, or damaged): left queued */
    uint64_t archive_files, archive_records; /* archive files written and journaled, their records */
    uint64_t pruned_records; /* record bodies removed from the live store (audit.retention) */
    uint64_t archive_errors; /* archive files that could not be written (each logged) */
    uint64_t archive_write_us, archive_sync_us; /* the loop's steps writing them; their fsyncs */
} hub_counters_t;

/*
 * Create the hub: open the store in cfg->hub.data_dir and bind cfg->hub.listen.
 * Takes ownership of `cfg` (also on failure; *cfg is set to NULL). `clock`
 * is borrowed for the hub's life. Returns 0 and *out, or an error with a
 * message in `err`.
 */
int hub_new(cfg_t **cfg, const nhub_clock_t *clock, hub_t **out, char *err, size_t errcap);

/*
 * Check what a configuration names beyond itself, as hub_new would use it:
 * the region keys, the catalogue and (curve mode) the hub's key file.
 * Returns 0 or an error with a message in `err`. For nhubd --check.
 */
int hub_check_config(const cfg_t *cfg, char *err, size_t errcap);

/*
 * Measurement only (nhub-bench's baseline for the transparency log's cost):
 * from now on the hub keeps the journal's hash chain without its Merkle
 * tree, and so makes no checkpoint (store_drop_tree). Call before hub_run.
 * The next start builds the tree again over the whole journal. Returns 0 or
 * the store's error.
 */
int hub_measure_chain_only(hub_t *self);

/* Close the socket and the store; accepts NULL; sets *self to NULL. */
void hub_destroy(hub_t **self);

/* The endpoint actually bound (the port filled in when the config said "*"). */
const char *hub_endpoint(const hub_t *self);

/* The base URL of the HTTP endpoint (http.h), or NULL when it is off. */
const char *hub_http_url(const hub_t *self);

/*
 * Run the loop until *stop becomes non-zero (a signal handler sets it),
 * then finish the batch in hand, answer it and return 0. When *reload is
 * non-zero the configuration is read again from `cfg_path` and the flag
 * cleared. Returns an error only when the socket fails for good.
 */
int hub_run(hub_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
            const char *cfg_path);

/*
 * Apply a new configuration (SIGHUP). Limits, regions and the log level take
 * effect at once; a changed listen endpoint or data directory is reported
 * and kept as it was (they need a restart). Returns 0 or the load error,
 * with the reason in `err`; on error nothing changes.
 */
int hub_reload(hub_t *self, const char *cfg_path, char *err, size_t errcap);

/* Copy the counters. */
void hub_counters(const hub_t *self, hub_counters_t *out);

#endif
