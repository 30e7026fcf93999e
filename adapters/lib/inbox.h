/*
 * inbox.h: deliveries held in memory between the wire and the application
 * (private to libnhub).
 *
 * The hub sends DELIVER in dseq order, at most `credit` unconfirmed, and
 * resends what is not confirmed. The inbox decides, for each DELIVER whose
 * msg_id is not already in the durable confirmed set, whether to queue it
 * for nhub_recv:
 *
 *   - already queued or handed to the application in this process: duplicate;
 *   - dseq == expected, or no expectation yet in this session: queue it,
 *     expected = dseq + 1;
 *   - dseq > expected and prev_dseq < expected: the hub skipped dseqs on
 *     purpose (set aside or already confirmed): queue it, expected = dseq + 1;
 *   - dseq > expected and prev_dseq >= expected: a gap (the message the hub
 *     sent before it was lost); drop it, the hub resends in order;
 *   - dseq < expected and unknown: a redelivery of something released or
 *     dropped earlier; queue it.
 *
 * Two lists: `ready` (received, not yet returned by nhub_recv; FIFO) and
 * `handed` (returned, waiting for nhub_confirm or nhub_delivery_release).
 * Both together are bounded by the capacity given at creation, so a hub that
 * ignores credit cannot make the adapter grow without bound.
 */
#ifndef NHUB_INBOX_H
#define NHUB_INBOX_H

#include "nhub.h"

#include <stddef.h>
#include <stdint.h>

typedef struct inbox inbox_t;

/* What inbox_classify decided. */
typedef enum inbox_verdict {
    INBOX_ACCEPT = 0,    /* new and in order (or a redelivery below expected): queue it */
    INBOX_DUPLICATE = 1, /* already queued or handed in this process */
    INBOX_GAP = 2,       /* dseq skips ahead of the expected one */
    INBOX_FULL = 3,      /* at capacity; dropped, the hub resends */
} inbox_verdict_t;

/* A new inbox holding at most `capacity` deliveries (>= 1). NULL if out of memory. */
inbox_t *inbox_new(size_t capacity);

/* Free the inbox and every delivery in it (handed ones too); sets *self to NULL. */
void inbox_destroy(inbox_t **self);

/* A new session began (WELCOME): the next DELIVER sets the expected dseq. */
void inbox_session_reset(inbox_t *self);

/*
 * Decide about a DELIVER of `msg_id` at `dseq`, and advance the expected
 * dseq when it is the one expected (also for a duplicate, so a repeat of a
 * confirmed message does not stall the queue). Call inbox_push next on
 * INBOX_ACCEPT.
 */
inbox_verdict_t inbox_classify(inbox_t *self, const uint8_t msg_id[NHUB_MSG_ID_LEN],
                               uint64_t dseq, uint64_t prev_dseq);

/*
 * Note that the message at `dseq` was seen and settled without being queued
 * (a repeat of a confirmed message, or one that does not decode): moves the
 * expectation past it when it is the one expected.
 */
void inbox_skip(inbox_t *self, uint64_t dseq, uint64_t prev_dseq);

/*
 * Queue a delivery: copies `*d` and the bytes its pointers name (envelope,
 * signature, payload) into one allocation owned by the inbox. A payload
 * that ends the envelope (protobuf-c writes the payload, field 10, last) is
 * not copied twice: the copy points into the envelope's copy. The payload
 * is followed by a NUL in memory (not counted), a courtesy for text.
 * Returns 0 or NHUB_ENOMEM.
 */
int inbox_push(inbox_t *self, const nhub_delivery_t *d);

/* The oldest queued delivery, moved to the handed list; NULL if none. */
nhub_delivery_t *inbox_pop(inbox_t *self);

/* Number of deliveries queued and not yet popped. */
size_t inbox_ready(const inbox_t *self);

/* True if `d` is a delivery this inbox handed out and still holds. */
int inbox_holds(const inbox_t *self, const nhub_delivery_t *d);

/*
 * Take `d` off the handed list and free it. Returns 0, or NHUB_ENOTFOUND if
 * `d` is not a delivery handed out by this inbox (then nothing is freed).
 */
int inbox_release(inbox_t *self, nhub_delivery_t *d);

#endif
