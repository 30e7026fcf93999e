/*
 * session.c: routing id -> session hash table with chaining (see session.h).
 *
 * ROUTER routing ids are short opaque byte strings (5 bytes by default), so
 * FNV-1a over them spreads well; the bucket count is fixed at twice the
 * session limit rounded to a power of two, so the table never rehashes.
 */
#include "session.h"

#include "nhub_err.h"

#include <stdlib.h>
#include <string.h>

struct session_table {
    session_t **buckets;
    size_t mask;
    size_t count, max;
};

static size_t hash_rid(const void *rid, size_t len)
{
    const uint8_t *p = rid;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

session_table_t *session_table_new(size_t max)
{
    size_t n = 16;
    while (n < max * 2 && n < ((size_t)1 << 30))
        n <<= 1;
    session_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->buckets = calloc(n, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    t->mask = n - 1;
    t->max = max;
    return t;
}

static void session_free(session_t *s)
{
    for (size_t i = 0; i < s->n_accepted; i++)
        free(s->accepted[i]);
    free(s);
}

void session_table_destroy(session_table_t **self)
{
    if (!self || !*self)
        return;
    session_table_t *t = *self;
    for (size_t i = 0; i <= t->mask; i++) {
        session_t *s = t->buckets[i];
        while (s) {
            session_t *next = s->next;
            session_free(s);
            s = next;
        }
    }
    free(t->buckets);
    free(t);
    *self = NULL;
}

session_t *session_find(session_table_t *self, const void *rid, size_t rid_len)
{
    for (session_t *s = self->buckets[hash_rid(rid, rid_len) & self->mask]; s; s = s->next)
        if (s->rid_len == rid_len && memcmp(s->rid, rid, rid_len) == 0)
            return s;
    return NULL;
}

session_t *session_get_or_add(session_table_t *self, const void *rid, size_t rid_len)
{
    if (rid_len == 0 || rid_len > SESSION_RID_MAX)
        return NULL;
    session_t *s = session_find(self, rid, rid_len);
    if (s)
        return s;
    if (self->count >= self->max)
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    memcpy(s->rid, rid, rid_len);
    s->rid_len = rid_len;
    s->region = -1;
    size_t b = hash_rid(rid, rid_len) & self->mask;
    s->next = self->buckets[b];
    self->buckets[b] = s;
    self->count++;
    return s;
}

void session_remove(session_table_t *self, session_t *s)
{
    session_t **pp = &self->buckets[hash_rid(s->rid, s->rid_len) & self->mask];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            self->count--;
            session_free(s);
            return;
        }
    }
}

int session_set_accepted(session_t *s, char *const *pats, size_t n)
{
    if (n > SESSION_ACCEPT_MAX)
        return NHUB_ETOOBIG;
    char *copy[SESSION_ACCEPT_MAX];
    for (size_t i = 0; i < n; i++) {
        copy[i] = strdup(pats[i]);
        if (!copy[i]) {
            while (i--)
                free(copy[i]);
            return NHUB_ENOMEM;
        }
    }
    for (size_t i = 0; i < s->n_accepted; i++)
        free(s->accepted[i]);
    memcpy(s->accepted, copy, n * sizeof *copy);
    s->n_accepted = n;
    return 0;
}

size_t session_count(const session_table_t *self)
{
    return self->count;
}

void session_foreach(session_table_t *self, int (*fn)(void *arg, session_t *s), void *arg)
{
    for (size_t i = 0; i <= self->mask; i++) {
        session_t *s = self->buckets[i];
        while (s) {
            session_t *next = s->next;
            if (fn(arg, s))
                return;
            s = next;
        }
    }
}
