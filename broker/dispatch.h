/*
 * dispatch.h: the delivery window of one region.
 *
 * The hub hands a region its queued messages in dseq order, at most
 * `credit` unconfirmed at a time (the adapter announced the credit in its
 * HELLO), and sends a message again when no DELIVERED came within its
 * timeout, doubling the timeout per attempt up to a cap. This module is that
 * bookkeeping only: no I/O, no store, time passed in by the caller, so it is
 * tested without a clock.
 *
 * In-flight entries are kept in send order (which is dseq order) in a ring;
 * a confirmed entry leaves the ring when everything before it has been
 * confirmed too, so the span from the oldest unconfirmed message to the
 * newest sent one never exceeds the credit.
 */
#ifndef NHUB_DISPATCH_H
#define NHUB_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct dispatch dispatch_t;

typedef struct dispatch_entry {
    uint64_t dseq;
    uint64_t seq;
    uint64_t prev_dseq; /* the dseq sent before this one in the session, 0 if none */
    int64_t due_ms;   /* redeliver when now >= due_ms */
    uint32_t attempt; /* 1 on first delivery */
    int64_t origin_ms; /* the caller's time of the message (when it was accepted), 0 if unknown */
    int confirmed;
} dispatch_entry_t;

/*
 * New window for up to `credit_max` messages in flight (memory is taken at
 * dispatch_reset for the credit actually announced), with the
 * redelivery timeout starting at `after_ms` and capped at `max_ms`. Returns
 * NULL when out of memory. Free with dispatch_destroy.
 */
dispatch_t *dispatch_new(uint32_t credit_max, int64_t after_ms, int64_t max_ms);

/* Accepts NULL; sets *self to NULL. */
void dispatch_destroy(dispatch_t **self);

/* Change the timeouts (configuration reload). */
void dispatch_set_timeouts(dispatch_t *self, int64_t after_ms, int64_t max_ms);

/*
 * A new session: forget everything in flight and start again from the head
 * of the queue with `credit` (clamped to 1..credit_max). Returns 0, or
 * NHUB_ENOMEM (the window is then stopped).
 */
int dispatch_reset(dispatch_t *self, uint32_t credit);

/* The region went offline: nothing is in flight and nothing may be sent. */
void dispatch_stop(dispatch_t *self);

/* 1 while a session is attached (after reset, before stop). */
int dispatch_active(const dispatch_t *self);

/* How many more messages may be sent now. */
size_t dispatch_room(const dispatch_t *self);

/* The dseq to read the queue from for the next new message. */
uint64_t dispatch_cursor(const dispatch_t *self);

/* The dseq most recently sent for the first time in this session, 0 if none:
 * the prev_dseq of the next new message. */
uint64_t dispatch_last_sent(const dispatch_t *self);

/*
 * Record that message (dseq, seq) was sent for the first time at now_ms.
 * dseq must be >= the cursor; the cursor moves past it. Returns 0 or
 * NHUB_EAGAIN if there is no room.
 */
int dispatch_sent(dispatch_t *self, uint64_t dseq, uint64_t seq, int64_t now_ms);

/* As dispatch_sent, remembering `origin_ms` for dispatch_confirm_origin
 * (the hub passes when the message was accepted: end-to-end latency). */
int dispatch_sent_from(dispatch_t *self, uint64_t dseq, uint64_t seq, int64_t now_ms,
                       int64_t origin_ms);

/*
 * Move the cursor past `dseq` without sending (the message was set aside).
 */
void dispatch_skip(dispatch_t *self, uint64_t dseq);

/*
 * The receiver confirmed `dseq`. Returns 0, or NHUB_ENOTFOUND if it is not in
 * flight (already confirmed, or from an earlier session).
 */
int dispatch_confirm(dispatch_t *self, uint64_t dseq);

/* As dispatch_confirm; on success *origin_ms (if not NULL) is the origin
 * given to dispatch_sent_from. */
int dispatch_confirm_origin(dispatch_t *self, uint64_t dseq, int64_t *origin_ms);

/*
 * Collect up to `max` unconfirmed entries whose timeout has passed at now_ms,
 * in dseq order, into out[]; each is counted as sent again (attempt + 1,
 * next timeout doubled). Returns how many.
 */
size_t dispatch_due(dispatch_t *self, int64_t now_ms, dispatch_entry_t *out, size_t max);

/* When to look for redeliveries: never later than the earliest timeout
 * (it may be earlier after confirmations, until dispatch_due runs), or
 * INT64_MAX if nothing is in flight. */
int64_t dispatch_next_due(const dispatch_t *self);

/* Messages in flight and unconfirmed. */
size_t dispatch_inflight(const dispatch_t *self);

#endif
