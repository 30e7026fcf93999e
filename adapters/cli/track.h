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

/* The last LMDB error text. */
const char *track_error(const track_t *self);

#endif
