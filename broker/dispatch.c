/*
 * dispatch.c: per-region delivery window (see dispatch.h).
 *
 * The ring holds entries in dseq order from the oldest unconfirmed message
 * to the newest sent. `next_due` is a lower bound of the earliest timeout,
 * kept so the hub loop can skip idle regions in O(1); it is recomputed
 * exactly whenever dispatch_due runs.
 */
#include "dispatch.h"

#include "nhub_err.h"

#include <stdlib.h>

struct dispatch {
    dispatch_entry_t *ring;
    size_t cap;     /* ring entries allocated (grows to the largest credit seen) */
    size_t credit_max;
    size_t head;    /* index of the oldest entry */
    size_t count;   /* entries in the ring, confirmed ones included */
    size_t unconfirmed;
    uint32_t credit;
    uint64_t cursor;
    uint64_t last_sent;
    int64_t after_ms, max_ms;
    int64_t next_due;
    int active;
};

dispatch_t *dispatch_new(uint32_t credit_max, int64_t after_ms, int64_t max_ms)
{
    if (credit_max == 0)
        return NULL;
    dispatch_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->credit_max = credit_max;
    d->after_ms = after_ms > 0 ? after_ms : 1;
    d->max_ms = max_ms >= d->after_ms ? max_ms : d->after_ms;
    d->next_due = INT64_MAX;
    return d;
}

void dispatch_destroy(dispatch_t **self)
{
    if (!self || !*self)
        return;
    free((*self)->ring);
    free(*self);
    *self = NULL;
}

void dispatch_set_timeouts(dispatch_t *self, int64_t after_ms, int64_t max_ms)
{
    self->after_ms = after_ms > 0 ? after_ms : 1;
    self->max_ms = max_ms >= self->after_ms ? max_ms : self->after_ms;
}

/* Nothing in flight, start from the head of the queue. */
static void clear(dispatch_t *self)
{
    self->head = 0;
    self->count = 0;
    self->unconfirmed = 0;
    self->cursor = 0;
    self->last_sent = 0;
    self->next_due = INT64_MAX;
}

int dispatch_reset(dispatch_t *self, uint32_t credit)
{
    credit = credit == 0 ? 1 : credit > self->credit_max ? (uint32_t)self->credit_max : credit;
    if (credit > self->cap) {
        /* The ring is sized by the credit actually used, not the maximum, so
         * thousands of idle regions cost nothing. */
        dispatch_entry_t *ring = realloc(self->ring, credit * sizeof *ring);
        if (!ring) {
            self->active = 0;
            return NHUB_ENOMEM;
        }
        self->ring = ring;
        self->cap = credit;
    }
    clear(self);
    self->credit = credit;
    self->active = 1;
    return 0;
}

void dispatch_stop(dispatch_t *self)
{
    clear(self);
    self->active = 0;
}

int dispatch_active(const dispatch_t *self)
{
    return self->active;
}

size_t dispatch_room(const dispatch_t *self)
{
    if (!self->active || self->count >= self->credit)
        return 0;
    return self->credit - self->count;
}

uint64_t dispatch_cursor(const dispatch_t *self)
{
    return self->cursor;
}

uint64_t dispatch_last_sent(const dispatch_t *self)
{
    return self->last_sent;
}

static dispatch_entry_t *at(const dispatch_t *self, size_t i)
{
    return &self->ring[(self->head + i) % self->cap];
}

/* Timeout for the attempt after `attempt`: after_ms * 2^(attempt-1), capped. */
static int64_t backoff(const dispatch_t *self, uint32_t attempt)
{
    int64_t t = self->after_ms;
    for (uint32_t i = 1; i < attempt && t < self->max_ms; i++)
        t *= 2;
    return t < self->max_ms ? t : self->max_ms;
}

int dispatch_sent(dispatch_t *self, uint64_t dseq, uint64_t seq, int64_t now_ms)
{
    return dispatch_sent_from(self, dseq, seq, now_ms, 0);
}

int dispatch_sent_from(dispatch_t *self, uint64_t dseq, uint64_t seq, int64_t now_ms,
                       int64_t origin_ms)
{
    if (dispatch_room(self) == 0)
        return NHUB_EAGAIN;
    dispatch_entry_t *e = at(self, self->count);
    e->dseq = dseq;
    e->seq = seq;
    e->prev_dseq = self->last_sent;
    e->attempt = 1;
    e->confirmed = 0;
    e->origin_ms = origin_ms;
    e->due_ms = now_ms + backoff(self, 1);
    if (e->due_ms < self->next_due)
        self->next_due = e->due_ms;
    self->count++;
    self->unconfirmed++;
    self->cursor = dseq + 1;
    self->last_sent = dseq;
    return 0;
}

void dispatch_skip(dispatch_t *self, uint64_t dseq)
{
    if (dseq >= self->cursor)
        self->cursor = dseq + 1;
}

int dispatch_confirm(dispatch_t *self, uint64_t dseq)
{
    return dispatch_confirm_origin(self, dseq, NULL);
}

int dispatch_confirm_origin(dispatch_t *self, uint64_t dseq, int64_t *origin_ms)
{
    if (self->count == 0 || !self->active)
        return NHUB_ENOTFOUND;
    uint64_t first = at(self, 0)->dseq;
    if (dseq < first)
        return NHUB_ENOTFOUND;
    /* Entries are in dseq order but dseqs may skip (set-aside messages):
     * search from the position the difference suggests, downwards. */
    size_t i = (size_t)(dseq - first) < self->count ? (size_t)(dseq - first) : self->count - 1;
    for (;; i--) {
        dispatch_entry_t *e = at(self, i);
        if (e->dseq == dseq) {
            if (e->confirmed)
                return NHUB_ENOTFOUND;
            e->confirmed = 1;
            self->unconfirmed--;
            if (origin_ms)
                *origin_ms = e->origin_ms;
            break;
        }
        if (e->dseq < dseq || i == 0)
            return NHUB_ENOTFOUND;
    }
    while (self->count && at(self, 0)->confirmed) {
        self->head = (self->head + 1) % self->cap;
        self->count--;
    }
    return 0;
}

size_t dispatch_due(dispatch_t *self, int64_t now_ms, dispatch_entry_t *out, size_t max)
{
    size_t n = 0;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < self->count; i++) {
        dispatch_entry_t *e = at(self, i);
        if (e->confirmed)
            continue;
        if (e->due_ms <= now_ms && n < max) {
            e->attempt++;
            e->due_ms = now_ms + backoff(self, e->attempt);
            out[n++] = *e;
        }
        if (e->due_ms < next)
            next = e->due_ms;
    }
    self->next_due = next;
    return n;
}

int64_t dispatch_next_due(const dispatch_t *self)
{
    return self->unconfirmed ? self->next_due : INT64_MAX;
}

size_t dispatch_inflight(const dispatch_t *self)
{
    return self->unconfirmed;
}
