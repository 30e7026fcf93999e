/*
 * daemon.h: `nhub-adapter run`, the adapter as a daemon for platforms that
 * do not link C: a local HTTP JSON API (api.h) and spool folders (spool.h)
 * on top of one nhub_t, served by one thread in one loop.
 *
 * The loop waits in nhub_pump_fds on the hub's socket, the HTTP server's
 * epoll descriptor and the spool's inotify descriptor at once; each turn
 * then takes the deliveries libnhub has ready, runs the HTTP server
 * (answering parked long-polls), scans the spool when it is due, and
 * commits the turn's tracking records (track.h) in one transaction.
 *
 * What the daemon holds: the deliveries handed out by libnhub and not yet
 * confirmed (at most `credit`), each either offered on the API inbox under
 * a lease or written into the spool's inbox/. A delivery is confirmed only
 * once the platform has taken it (POST .../confirm, or the file left
 * inbox/), so a crash at any point leaves it with the hub, which delivers
 * it again; what was already handed over is recognised (track.h) and not
 * handed over twice.
 *
 * This header is shared by daemon.c, api.c and spool.c; the struct is
 * theirs, not the rest of the program's.
 */
#ifndef NHUB_ADAPTER_DAEMON_H
#define NHUB_ADAPTER_DAEMON_H

#include "adapter_cfg.h"
#include "msgjson.h"
#include "nhub.h"
#include "track.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct api;
struct spool;

/* A delivery the daemon holds for the platform. */
typedef struct held {
    nhub_delivery_t *d;
    int64_t lease_until; /* API: offered again from then (monotonic ms); 0 = not yet offered */
    int spooled;         /* spool: its mark is durable and its file is (or was) in inbox/ */
} held_t;

#define DAEMON_RECENT_MAX 1024 /* confirmed msg_ids remembered for a repeated confirm */

typedef struct daemon {
    adapter_cfg_t *cfg;
    nhub_t *h;
    track_t *track;
    struct api *api;
    struct spool *spool;
    int spool_inbox; /* deliveries go to the spool, not the API */
    held_t *held;
    size_t n_held, cap_held;
    uint8_t recent[DAEMON_RECENT_MAX][NHUB_MSG_ID_LEN]; /* ring of confirmed msg_ids */
    size_t n_recent, recent_head;
    uint64_t submitted, duplicates, received, confirmed;
    int64_t prune_due; /* monotonic ms of the next pruning step of the record */
    volatile sig_atomic_t *stop;
} daemon_t;

/*
 * Run the daemon with the loaded configuration `cfg` (from `cfg_path`)
 * until *stop is set (SIGINT/SIGTERM). `ready_fd` >= 0: write "ready URL\n"
 * there (URL of the API, or "-") once serving, then close it. Returns the
 * process exit status: 0 after a clean stop, 1 on a start-up error (said on
 * stderr).
 */
int daemon_run(adapter_cfg_t *cfg, const char *cfg_path, int ready_fd, volatile sig_atomic_t *stop);

/*
 * Submit a parsed message: its msgId is m->msg_id if given, else `id_in`
 * if not NULL, else a new one; written to *id_out. A msgId already
 * submitted with the same content is not sent again (*dup = 1); with other
 * content it is refused with NHUB_EEXIST. `file` names the spool file
 * ("" for the API). Returns 0 once the message is in libnhub's outbox
 * (durable), or nhub_send's error with the detail in `err`.
 */
int daemon_submit(daemon_t *self, const msgjson_t *m, const uint8_t *id_in, const char *file,
                  uint8_t id_out[NHUB_MSG_ID_LEN], int *dup, char *err, size_t errcap);

/* One submission of a batch (daemon_submit_batch). */
typedef struct daemon_sub {
    const msgjson_t *m;          /* in: borrowed */
    const uint8_t *id_in;        /* in: the msgId if m has none; NULL = a new one */
    const char *file;            /* in: spool file name; "" or NULL for the API */
    uint8_t id[NHUB_MSG_ID_LEN]; /* out: its msgId */
    int dup;                     /* out: submitted before with the same content */
    int rc;                      /* out: as daemon_submit returns */
    char err[300];               /* out: the detail of an error */
} daemon_sub_t;

/*
 * daemon_submit for s[0..n), the new ones committed to libnhub's outbox
 * together (nhub_send_batch: one fsync). A msgId given twice in the batch
 * is a duplicate (same content) or NHUB_EEXIST (other content), as if the
 * two came one after the other. If libnhub refuses the batch, its
 * messages are sent one at a time, so that each gets its own answer; after
 * an error that is not the message's own (not NHUB_EINVAL or
 * NHUB_ETOOBIG) the rest are not tried and get the same error. s[i].rc is
 * 0 only once s[i] is durable in the outbox (or was already).
 */
void daemon_submit_batch(daemon_t *self, daemon_sub_t *s, size_t n);

/* The index of the held delivery `id`, or -1. */
long daemon_held_find(const daemon_t *self, const uint8_t id[NHUB_MSG_ID_LEN]);

/*
 * Confirm the held deliveries at indexes idx[0..n) in one transaction and
 * stop holding them. 0, or nhub_confirm_batch's error (nothing confirmed).
 * Indexes of other held deliveries change.
 */
int daemon_confirm(daemon_t *self, const size_t *idx, size_t n);

/* 1 if `id` was confirmed lately (a repeated confirm is answered as done). */
int daemon_recently_confirmed(const daemon_t *self, const uint8_t id[NHUB_MSG_ID_LEN]);

/* Monotonic and wall clocks, ms. */
int64_t daemon_mono_ms(void);
int64_t daemon_wall_ms(void);

#endif
