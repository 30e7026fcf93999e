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
 * In-flight entries are kept in send order in a ring; a confirmed entry
 * leaves the ring when everything sent before it has been confirmed too, so
 * the span from the oldest unconfirmed message to the newest sent one never
 * exceeds the credit.
 *
 * It also decides what goes next. A region's queue is split into lanes
 * (store.h): its messages of one priority class from one source, each lane
 * in dseq order. The classes share the deliveries by weight (urgent 16,
 * normal 4, bulk 1: DISPATCH_WEIGHT_*), interleaved by smooth weighted
 * round robin, so an urgent message waits behind at most a delivery or two
 * of the other classes and bulk still gets one in 21 when everything is
 * backlogged. Within a class the lanes share by bytes, deficit round robin
 * with a quantum of DISPATCH_QUANTUM bytes a turn, so a source of 1 MiB
 * envelopes gets the same bytes as one of 1 KiB envelopes, not 1000 times
 * the messages. Sends are therefore in dseq order within a lane only; the
 * prev_dseq of a DELIVER is still the dseq sent before it in the session.
 *
 * The caller (deliver.c) reads the lanes; per call it syncs the list of
 * lanes the store holds (dispatch_lanes_sync), asks which lane is next
 * (dispatch_next_lane), tells whether that lane's next message fits its
 * turn (dispatch_lane_fits; if not, dispatch_lane_turn), and records sends
 * (dispatch_sent_lane) and lanes found empty (dispatch_lane_empty).
 */
#ifndef NHUB_DISPATCH_H
#define NHUB_DISPATCH_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define DISPATCH_CLASSES 3        /* enum catalog_priority: normal, urgent, bulk */
#define DISPATCH_WEIGHT_NORMAL 4
#define DISPATCH_WEIGHT_URGENT 16
#define DISPATCH_WEIGHT_BULK 1
#define DISPATCH_QUANTUM 16384    /* bytes a lane may send per turn within its class */

typedef struct dispatch dispatch_t;

typedef struct dispatch_entry {
    uint64_t dseq;
    uint64_t seq;
    uint64_t prev_dseq; /* the dseq sent before this one in the session, 0 if none */
    int64_t due_ms;   /* redeliver when now >= due_ms */
    uint32_t attempt; /* 1 on first delivery */
    int64_t origin_ms; /* the caller's time of the message (when it was accepted), 0 if unknown */
    int64_t sent_ms;   /* now_ms of its first send in this window */
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
 * The cursor moves past it if it is beyond. Returns 0 or NHUB_EAGAIN if
 * there is no room.
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

/* A copy of the unconfirmed in-flight entry of `dseq` into *out: 0, or
 * NHUB_ENOTFOUND. */
int dispatch_find(const dispatch_t *self, uint64_t dseq, dispatch_entry_t *out);
/* As dispatch_confirm; on success *origin_ms (if not NULL) is the origin
 * given to dispatch_sent_from. */
int dispatch_confirm_origin(dispatch_t *self, uint64_t dseq, int64_t *origin_ms);

/*
 * Collect up to `max` unconfirmed entries whose timeout has passed at now_ms,
 * in send order, into out[]; each is counted as sent again (attempt + 1,
 * next timeout doubled). Returns how many.
 */
size_t dispatch_due(dispatch_t *self, int64_t now_ms, dispatch_entry_t *out, size_t max);

/* When to look for redeliveries: never later than the earliest timeout
 * (it may be earlier after confirmations, until dispatch_due runs), or
 * INT64_MAX if nothing is in flight. */
int64_t dispatch_next_due(const dispatch_t *self);

/* Messages in flight and unconfirmed. */
size_t dispatch_inflight(const dispatch_t *self);

/* ---- lanes --------------------------------------------------------------- */

/*
 * The lanes the region's queue holds now (store_lanes_list), `n` of them.
 * A lane seen before keeps its cursor and deficit; a new one starts at the
 * head; one no longer listed is forgotten. Every lane counts as non-empty
 * until dispatch_lane_empty says otherwise. A class outside
 * 0..DISPATCH_CLASSES-1 is served as normal. Returns 0 or NHUB_ENOMEM (the
 * lanes are then unchanged).
 */
int dispatch_lanes_sync(dispatch_t *self, const store_lane_t *lanes, size_t n);

/* Number of lanes known, and lane i's key and the dseq to read it from. */
size_t dispatch_lane_count(const dispatch_t *self);
const store_lane_t *dispatch_lane_key(const dispatch_t *self, size_t i);
uint64_t dispatch_lane_cursor(const dispatch_t *self, size_t i);

/* The lane to serve next, or -1 if every lane is empty (or no room). */
int dispatch_next_lane(const dispatch_t *self);

/* 1 if a message of `size` bytes fits lane i's turn now. */
int dispatch_lane_fits(const dispatch_t *self, size_t i, uint32_t size);

/* Lane i's next message does not fit: its turn ends, and the next non-empty
 * lane of its class (maybe itself, alone) gets DISPATCH_QUANTUM more. */
void dispatch_lane_turn(dispatch_t *self, size_t i);

/* Lane i has nothing beyond its cursor in the caller's snapshot. */
void dispatch_lane_empty(dispatch_t *self, size_t i);

/* dispatch_sent_from for a message of lane i (`size` bytes): also moves the
 * lane's cursor past it and charges its class and turn. */
int dispatch_sent_lane(dispatch_t *self, size_t i, uint64_t dseq, uint64_t seq, uint32_t size,
                       int64_t now_ms, int64_t origin_ms);

/* Lane i's message `dseq` was set aside (held, unreadable): the lane's
 * cursor moves past it without a send. */
void dispatch_skip_lane(dispatch_t *self, size_t i, uint64_t dseq);

#endif
