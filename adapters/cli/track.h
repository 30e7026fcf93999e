/*
 * track.h: what nhub-adapter run remembers beside libnhub's store, in an
 * LMDB environment of its own (DATA_DIR/adapterd/):
 *
 *   sent   msg_id(16) -> track_sent_t   a message the platform submitted:
 *                                       queued, acked or rejected, and for a
 *                                       request or push its case as seen from
 *                                       what arrives (answer, notices)
 *   spool  msg_id(16) -> track_spool_t  a delivery written into the spool's
 *                                       inbox/ (the mark that it was handed
 *                                       over, set before the file appears)
 *
 * Writes go into one open write transaction that track_commit() ends (the
 * daemon commits once per turn of its loop, and at once where an order on
 * disk matters: a spool mark before its file is renamed into inbox/).
 * Reads see the open transaction. libnhub's outbox is the truth about what
 * will be sent; a `sent` record lost with an uncommitted turn only means a
 * retried submission with the same msgId is sent again, which the hub
 * answers as a duplicate (its dedup_window).
 *
 * Pruning (track_prune): nothing here is needed for ever. A `sent` record
 * goes once it is settled (ACKed or rejected, and for a request or push
 * its case closed: answered, finished by a final feedback, or expired)
 * and has not changed for the retention, or whatever its state once it is
 * older than max_age; a spool mark goes once the retention has passed and
 * the caller says its delivery is neither held nor in inbox/ (normally a
 * mark is deleted when its delivery is confirmed; one left behind by a
 * crash between the confirm and the commit of the turn is swept here).
 * Each call looks at a bounded number of records and remembers where it
 * stopped, so the cost of a turn does not grow with the store.
 *
 * A full store (MDB_MAP_FULL, NHUB_EFULL): a write that does not fit first
 * makes room by pruning every settled record whatever its age (and spent
 * marks), then is tried once more. Writes that still fail are counted
 * (track_counts) and logged once when the failing starts
 * (event=adapterd.track_full) and once when writes succeed again; the
 * caller carries on without the record (see daemon.c and spool.c for what
 * each write's loss means).
 */
#ifndef NHUB_ADAPTER_TRACK_H
#define NHUB_ADAPTER_TRACK_H

#include "nhub.h"

#include <stddef.h>
#include <stdint.h>

typedef struct track track_t;

enum track_state {
    TRACK_QUEUED = 1,   /* in libnhub's outbox */
    TRACK_ACKED = 2,    /* the hub holds it */
    TRACK_REJECTED = 3, /* the hub refused it for good: code, text */
};

typedef struct track_sent {
    uint32_t version; /* TRACK_VERSION */
    int32_t state;    /* enum track_state */
    int32_t code;     /* NACK code if rejected */
    int32_t kind;
    char text[160]; /* the hub's reason if rejected */
    char to[8];
    char item[65];
    char type[129];
    char file[256];       /* spool file name; "" = came through the API */
    uint8_t digest[32];   /* SHA-256 of the submission: a msgId reused for other content */
    int64_t submitted_ms; /* wall clock */
    int64_t settled_ms;   /* ACK or rejection */
    /* The case (request or push), from the deliveries that name it. */
    uint8_t answer_id[NHUB_MSG_ID_LEN]; /* latest response or feedback */
    int32_t answers;                    /* responses and feedbacks seen */
    int32_t answer_kind;
    char answer_type[129];
    char answer_source[8];
    int64_t answer_ms;
    int64_t reminder_ms, overdue_ms, expired_ms; /* the hub's notices; 0 = none */
    /* Appended after the first release: a shorter record reads with these zero. */
    int64_t closed_ms; /* the case closed (answer, final feedback, expiry); 0 = open or none */
} track_sent_t;

#define TRACK_VERSION 1u

typedef struct track_spool {
    uint32_t version;
    int32_t state; /* TRACK_SPOOL_WRITTEN */
    int64_t written_ms;
} track_spool_t;

#define TRACK_SPOOL_WRITTEN 1

/*
 * Open (or create, with parents' existence assumed) the environment in
 * directory `dir`, map at most `map_max` bytes. Returns 0, or NHUB_EIO /
 * NHUB_ESTORE with `err`. Close with track_close.
 */
int track_open(const char *dir, uint64_t map_max, track_t **out, char *err, size_t errcap);

/* Commit what is open and close. Accepts NULL; sets *self to NULL. */
void track_close(track_t **self);

/* Commit the open transaction, if any (fsync). 0 or NHUB_ESTORE / NHUB_EFULL. */
int track_commit(track_t *self);

/* The record of `id` into *out: 0, NHUB_ENOTFOUND or NHUB_ESTORE. */
int track_sent_get(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], track_sent_t *out);
/* Write the record of `id` (in the open transaction). 0 or NHUB_ESTORE / NHUB_EFULL. */
int track_sent_put(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], const track_sent_t *rec);

int track_spool_get(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], track_spool_t *out);
int track_spool_put(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN], const track_spool_t *rec);
/* Forget `id`'s spool mark (it was confirmed). 0, NHUB_ENOTFOUND or NHUB_ESTORE. */
int track_spool_del(track_t *self, const uint8_t id[NHUB_MSG_ID_LEN]);

/* What track_prune removes, and the callback that says a spool mark is spent. */
typedef struct track_policy {
    int64_t retention_ms; /* settled records and spent marks: kept this long */
    int64_t max_age_ms;   /* any record: kept at most this long after its submission */
    /* 1 if the delivery `id` is neither held nor in the spool's inbox/. NULL: marks are kept. */
    int (*mark_spent)(void *arg, const uint8_t id[NHUB_MSG_ID_LEN]);
    void *arg;
} track_policy_t;

/* Set the pruning policy (copied). Until it is set, nothing is pruned. */
void track_set_policy(track_t *self, const track_policy_t *policy);

/*
 * One bounded step of pruning, in the open transaction, at wall clock
 * `now_ms`: look at up to `scan` records after where the last step
 * stopped, delete at most `max` of them. *deleted (may be NULL) is how
 * many went. Returns TRACK_PRUNE_BACKLOG if it deleted `max` (more may be
 * waiting: call again soon), TRACK_PRUNE_MORE if it stopped before the end
 * of a database, 0 if both walks went round to the start (call again in a
 * while), or a negative NHUB_ESTORE / NHUB_EFULL.
 */
int track_prune(track_t *self, int64_t now_ms, size_t scan, size_t max, size_t *deleted);

#define TRACK_PRUNE_MORE 1
#define TRACK_PRUNE_BACKLOG 2

/* Counters since track_open. */
typedef struct track_counts {
    uint64_t records;      /* `sent` records now in the store (committed) */
    uint64_t marks;        /* spool marks now in the store (committed) */
    uint64_t pruned;       /* records and marks deleted by pruning */
    uint64_t write_failed; /* writes or commits that failed (their content lost) */
    uint64_t full;         /* of those, because the store was full */
    uint64_t emergency;    /* prunings forced by a full store */
} track_counts_t;

void track_counts(track_t *self, track_counts_t *out);

/* The last LMDB error text. */
const char *track_error(const track_t *self);

#endif
