/*
 * dispatch.c: per-region delivery window (see dispatch.h).
 *
 * The ring holds entries in send order from the oldest unconfirmed message
 * to the newest sent. `next_due` is a lower bound of the earliest timeout,
 * kept so the hub loop can skip idle regions in O(1); it is recomputed
 * exactly whenever dispatch_due runs.
 */
#include "dispatch.h"

#include "nhub_err.h"

#include <stdlib.h>
#include <string.h>

/* A lane of the region's queue as the scheduler knows it. */
struct lane {
    store_lane_t key;
    unsigned cls;    /* key.cls, or normal if out of range */
    uint64_t cursor; /* the dseq to read the lane from */
    int64_t deficit; /* bytes it may still send in its turn */
    int empty;       /* nothing beyond the cursor (until the next sync) */
};

static const int64_t class_weight[DISPATCH_CLASSES] = {DISPATCH_WEIGHT_NORMAL,
                                                        DISPATCH_WEIGHT_URGENT, DISPATCH_WEIGHT_BULK};

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
    struct lane *lanes; /* in the store's key order: class, then source */
    struct lane *spare; /* as many, for dispatch_lanes_sync */
    size_t n_lanes, cap_lanes;
    int64_t wrr[DISPATCH_CLASSES]; /* smooth weighted round robin between classes */
    int turn[DISPATCH_CLASSES];    /* the lane whose turn it is in each class, -1 none */
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
    for (int c = 0; c < DISPATCH_CLASSES; c++)
        d->turn[c] = -1;
    return d;
}

void dispatch_destroy(dispatch_t **self)
{
    if (!self || !*self)
        return;
    free((*self)->ring);
    free((*self)->lanes);
    free((*self)->spare);
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
    for (size_t i = 0; i < self->n_lanes; i++) {
        self->lanes[i].cursor = 0;
        self->lanes[i].deficit = 0;
        self->lanes[i].empty = 0;
    }
    for (int c = 0; c < DISPATCH_CLASSES; c++) {
        self->wrr[c] = 0;
        self->turn[c] = -1;
    }
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
    e->sent_ms = now_ms;
    e->due_ms = now_ms + backoff(self, 1);
    if (e->due_ms < self->next_due)
        self->next_due = e->due_ms;
    self->count++;
    self->unconfirmed++;
    if (dseq >= self->cursor)
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

/* The unconfirmed in-flight entry of `dseq`, or NULL. */
static dispatch_entry_t *find(const dispatch_t *self, uint64_t dseq)
{
    if (self->count == 0 || !self->active)
        return NULL;
    /* Entries are in send order, not dseq order (lanes); confirmations come
     * mostly in send order too, so the search from the oldest is short. */
    size_t i = 0;
    while (i < self->count && at(self, i)->dseq != dseq)
        i++;
    if (i == self->count || at(self, i)->confirmed)
        return NULL;
    return at(self, i);
}

int dispatch_find(const dispatch_t *self, uint64_t dseq, dispatch_entry_t *out)
{
    const dispatch_entry_t *e = find(self, dseq);
    if (!e)
        return NHUB_ENOTFOUND;
    *out = *e;
    return 0;
}

int dispatch_confirm_origin(dispatch_t *self, uint64_t dseq, int64_t *origin_ms)
{
    dispatch_entry_t *e = find(self, dseq);
    if (!e)
        return NHUB_ENOTFOUND;
    e->confirmed = 1;
    self->unconfirmed--;
    if (origin_ms)
        *origin_ms = e->origin_ms;
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

/* ---- lanes --------------------------------------------------------------- */

/* The next non-empty lane of class c after lane `from` (circularly, `from`
 * itself last), or -1. from = -1 starts at the class's first lane. */
static int next_in_class(const dispatch_t *self, unsigned c, int from)
{
    size_t n = self->n_lanes;
    for (size_t k = 1; k <= n; k++) {
        size_t i = from < 0 ? k - 1 : ((size_t)from + k) % n;
        if (self->lanes[i].cls == c && !self->lanes[i].empty)
            return (int)i;
    }
    return -1;
}

/* Give class c's turn to lane j (or none): a new turn brings a quantum. */
static void give_turn(dispatch_t *self, unsigned c, int j)
{
    if (j >= 0 && j != self->turn[c])
        self->lanes[j].deficit += DISPATCH_QUANTUM;
    self->turn[c] = j;
    if (j < 0)
        self->wrr[c] = 0; /* an idle class keeps no credit */
}

static int key_cmp(const store_lane_t *a, const store_lane_t *b)
{
    return memcmp(a, b, sizeof *a); /* class, then the six digits: the store's key order */
}

int dispatch_lanes_sync(dispatch_t *self, const store_lane_t *keys, size_t n)
{
    if (n > self->cap_lanes) { /* the spare list is merged into, then swapped in */
        struct lane *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
        if (!a || !b) {
            free(a);
            free(b);
            return NHUB_ENOMEM;
        }
        if (self->n_lanes)
            memcpy(a, self->lanes, self->n_lanes * sizeof *a);
        free(self->lanes);
        free(self->spare);
        self->lanes = a;
        self->spare = b;
        self->cap_lanes = n;
    }
    struct lane *next = self->spare;
    store_lane_t had[DISPATCH_CLASSES];
    for (int c = 0; c < DISPATCH_CLASSES; c++)
        if (self->turn[c] >= 0)
            had[c] = self->lanes[self->turn[c]].key;
    /* Both lists are in key order: merge them. */
    for (size_t i = 0, old = 0; i < n; i++) {
        struct lane *l = &next[i];
        *l = (struct lane){0};
        l->key = keys[i];
        l->cls = keys[i].cls < DISPATCH_CLASSES ? keys[i].cls : 0;
        while (old < self->n_lanes && key_cmp(&self->lanes[old].key, &keys[i]) < 0)
            old++;
        if (old < self->n_lanes && key_cmp(&self->lanes[old].key, &keys[i]) == 0) {
            l->cursor = self->lanes[old].cursor;
            l->deficit = self->lanes[old].deficit;
        }
    }
    int was[DISPATCH_CLASSES];
    memcpy(was, self->turn, sizeof was);
    self->spare = self->lanes;
    self->lanes = next;
    self->n_lanes = n;
    /* The turn stays with its lane if it is still there (and keeps what is
     * left of its quantum), or passes to the lane after it. */
    for (unsigned c = 0; c < DISPATCH_CLASSES; c++) {
        int to = -1;
        for (size_t i = 0; was[c] >= 0 && to < 0 && i < n; i++)
            if (next[i].cls == c && key_cmp(&next[i].key, &had[c]) >= 0)
                to = (int)i;
        if (to >= 0 && key_cmp(&next[to].key, &had[c]) == 0) {
            self->turn[c] = to;
            continue;
        }
        self->turn[c] = -1;
        give_turn(self, c, to >= 0 ? to : next_in_class(self, c, -1));
    }
    return 0;
}

size_t dispatch_lane_count(const dispatch_t *self)
{
    return self->n_lanes;
}

const store_lane_t *dispatch_lane_key(const dispatch_t *self, size_t i)
{
    return &self->lanes[i].key;
}

uint64_t dispatch_lane_cursor(const dispatch_t *self, size_t i)
{
    return self->lanes[i].cursor;
}

int dispatch_next_lane(const dispatch_t *self)
{
    if (dispatch_room(self) == 0)
        return -1;
    int best = -1;
    int64_t best_score = 0;
    static const unsigned order[DISPATCH_CLASSES] = {1, 0, 2}; /* ties: urgent, normal, bulk */
    for (int k = 0; k < DISPATCH_CLASSES; k++) {
        unsigned c = order[k];
        if (self->turn[c] < 0)
            continue;
        int64_t score = self->wrr[c] + class_weight[c];
        if (best < 0 || score > best_score) {
            best = (int)c;
            best_score = score;
        }
    }
    return best < 0 ? -1 : self->turn[best];
}

int dispatch_lane_fits(const dispatch_t *self, size_t i, uint32_t size)
{
    return (int64_t)size <= self->lanes[i].deficit;
}

void dispatch_lane_turn(dispatch_t *self, size_t i)
{
    unsigned c = self->lanes[i].cls;
    int j = next_in_class(self, c, (int)i);
    if (j == (int)i) /* alone in its class: a new turn of its own */
        self->lanes[i].deficit += DISPATCH_QUANTUM;
    else
        give_turn(self, c, j);
}

void dispatch_lane_empty(dispatch_t *self, size_t i)
{
    struct lane *l = &self->lanes[i];
    unsigned c = l->cls;
    l->empty = 1;
    l->deficit = 0; /* an empty lane keeps no credit (deficit round robin) */
    if (self->turn[c] == (int)i)
        give_turn(self, c, next_in_class(self, c, (int)i));
}

int dispatch_sent_lane(dispatch_t *self, size_t i, uint64_t dseq, uint64_t seq, uint32_t size,
                       int64_t now_ms, int64_t origin_ms)
{
    int rc = dispatch_sent_from(self, dseq, seq, now_ms, origin_ms);
    if (rc)
        return rc;
    struct lane *l = &self->lanes[i];
    if (dseq >= l->cursor)
        l->cursor = dseq + 1;
    l->deficit -= size;
    int64_t total = 0;
    for (unsigned c = 0; c < DISPATCH_CLASSES; c++)
        if (self->turn[c] >= 0) {
            self->wrr[c] += class_weight[c];
            total += class_weight[c];
        }
    self->wrr[l->cls] -= total;
    return 0;
}

void dispatch_skip_lane(dispatch_t *self, size_t i, uint64_t dseq)
{
    struct lane *l = &self->lanes[i];
    if (dseq >= l->cursor)
        l->cursor = dseq + 1;
    dispatch_skip(self, dseq);
}
