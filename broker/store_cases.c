/*
 * store_cases.c: cases, their deadlines, their timelines and tracked
 * deliveries (see store.h). Every write goes through the hub's one write
 * transaction, beside the journal event that describes it.
 *
 * A case record is a fixed layout, big-endian, with a version byte:
 *   0 version (1) | 1 state | 2 flags | 3 kind | 4 stage | 5 requester(6) |
 *   11 handler(6) | 17 opened, remind, due, expire, next, closed,
 *   valid_until (7 x i64) | 73 request_seq, answer_seq (2 x u64) |
 *   89 item length | 90 item
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define CASE_VERSION 1
#define CASE_FIXED 90
#define CASE_MAX (CASE_FIXED + 64)
#define TIME_KEY_LEN 24    /* time(8) case_id(16) */
#define EVENT_KEY_LEN 24   /* case_id(16) seq(8) */
#define TRACK_KEY_LEN 22   /* msg_id(16) region(6) */
#define TRACK_VAL_LEN 17   /* dseq(8) confirmed_ms(8) flags(1) */
#define COUNTS_KEY "case_counts"

static const char *const state_names[STORE_CASE_STATES] = {
    "?", "open", "delivered", "handling", "reminded", "overdue", "answered", "expired", "refused",
};

const char *store_case_state_name(int state)
{
    return state > 0 && state < STORE_CASE_STATES ? state_names[state] : "?";
}

int store_case_state_parse(const char *name)
{
    for (int i = 1; name && i < STORE_CASE_STATES; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return 0;
}

int store_cases_open_dbs(store_t *s, MDB_txn *txn)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {
        {"cases", &s->cases},         {"case_time", &s->case_time}, {"case_events", &s->case_events},
        {"deadlines", &s->deadlines}, {"tracked", &s->tracked},
    };
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        int rc = mdb_dbi_open(txn, dbs[i].name, s->read_only ? 0 : MDB_CREATE, dbs[i].dbi);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the record ------------------------------------------------------------- */

static size_t encode(const store_case_t *c, uint8_t out[CASE_MAX])
{
    size_t item_len = strnlen(c->item, 64);
    out[0] = CASE_VERSION;
    out[1] = c->state;
    out[2] = c->flags;
    out[3] = c->kind;
    out[4] = c->stage;
    memcpy(out + 5, c->requester, REGION_LEN);
    memcpy(out + 11, c->handler, REGION_LEN);
    const int64_t t[7] = {c->opened_ms, c->remind_ms, c->due_ms,        c->expire_ms,
                          c->next_ms,   c->closed_ms, c->valid_until_ms};
    for (int i = 0; i < 7; i++)
        put_be64(out + 17 + 8 * i, (uint64_t)t[i]);
    put_be64(out + 73, c->request_seq);
    put_be64(out + 81, c->answer_seq);
    out[89] = (uint8_t)item_len;
    memcpy(out + CASE_FIXED, c->item, item_len);
    return CASE_FIXED + item_len;
}

static int decode(const uint8_t id[16], const MDB_val *v, store_case_t *c)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < CASE_FIXED || p[0] != CASE_VERSION || v->mv_size != (size_t)CASE_FIXED + p[89] ||
        p[89] > 64)
        return NHUB_EMALFORMED;
    memset(c, 0, sizeof *c);
    memcpy(c->id, id, 16);
    c->state = p[1];
    c->flags = p[2];
    c->kind = p[3];
    c->stage = p[4];
    memcpy(c->requester, p + 5, REGION_LEN);
    memcpy(c->handler, p + 11, REGION_LEN);
    int64_t *t[7] = {&c->opened_ms, &c->remind_ms, &c->due_ms,        &c->expire_ms,
                     &c->next_ms,   &c->closed_ms, &c->valid_until_ms};
    for (int i = 0; i < 7; i++)
        *t[i] = (int64_t)get_be64(p + 17 + 8 * i);
    c->request_seq = get_be64(p + 73);
    c->answer_seq = get_be64(p + 81);
    memcpy(c->item, p + CASE_FIXED, p[89]);
    return 0;
}

static int case_get(MDB_txn *txn, const store_t *s, const uint8_t id[16], store_case_t *out)
{
    MDB_val k = {16, (void *)id}, v;
    int rc = mdb_get(txn, s->cases, &k, &v);
    if (rc)
        return lmdb_err(rc);
    return decode(id, &v, out);
}

int store_case_get(store_txn_t *txn, const uint8_t id[16], store_case_t *out)
{
    return case_get(txn->txn, txn->store, id, out);
}

int store_case_read(store_reader_t *r, const uint8_t id[16], store_case_t *out)
{
    return case_get(r->txn, r->store, id, out);
}

static void time_key(uint8_t key[TIME_KEY_LEN], int64_t t, const uint8_t id[16])
{
    put_be64(key, (uint64_t)t);
    memcpy(key + 8, id, 16);
}

/* ---- evaluation figures ------------------------------------------------------ */

#define CSTAT_PREFIX "cstat/"

/* What one case adds to its handler's figures (enum store_cstat). */
static void cstat_of(const store_case_t *c, int64_t v[STORE_CSTAT_N])
{
    int closed = store_case_closed(c->state), overdue = (c->flags & STORE_CASE_F_OVERDUE) != 0;
    int handled = c->state == STORE_CASE_ANSWERED || c->state == STORE_CASE_REFUSED;
    v[STORE_CSTAT_OPENED] = 1;
    v[STORE_CSTAT_OPEN] = !closed;
    v[STORE_CSTAT_OVERDUE_OPEN] = !closed && overdue;
    v[STORE_CSTAT_EVER_OVERDUE] = overdue || c->state == STORE_CASE_EXPIRED; /* expired is late */
    v[STORE_CSTAT_ANSWERED] = c->state == STORE_CASE_ANSWERED;
    v[STORE_CSTAT_IN_TIME] = c->state == STORE_CASE_ANSWERED && c->closed_ms <= c->due_ms;
    v[STORE_CSTAT_EXPIRED] = c->state == STORE_CASE_EXPIRED;
    v[STORE_CSTAT_REFUSED] = c->state == STORE_CASE_REFUSED;
    v[STORE_CSTAT_CLOSED] = closed;
    v[STORE_CSTAT_HANDLING_MS] = handled && c->closed_ms > c->opened_ms
                                     ? c->closed_ms - c->opened_ms
                                     : 0;
}

static void cstat_key(char *key, size_t cap, const char *handler, const char *item)
{
    snprintf(key, cap, CSTAT_PREFIX "%.6s/%.64s", handler, item);
}

static int cstat_flush(store_txn_t *t)
{
    for (size_t i = 0; i < t->n_cstat; i++) {
        struct cstat_delta *d = &t->cstat[i];
        char key[96];
        uint8_t raw[8 * STORE_CSTAT_N];
        cstat_key(key, sizeof key, d->handler, d->item);
        int rc = meta_get(t->store, t->txn, key, raw, sizeof raw);
        if (rc == MDB_NOTFOUND)
            memset(raw, 0, sizeof raw);
        else if (rc)
            return rc;
        for (int j = 0; j < STORE_CSTAT_N; j++)
            put_be64(raw + 8 * j, get_be64(raw + 8 * j) + (uint64_t)d->v[j]);
        if ((rc = meta_put(t->store, t->txn, key, raw, sizeof raw)))
            return rc;
    }
    t->n_cstat = 0;
    return 0;
}

/* Buffer the change from `old` to `c` in the transaction. An LMDB code. */
static int cstat_add(store_txn_t *t, const store_case_t *old, const store_case_t *c)
{
    int64_t now[STORE_CSTAT_N], was[STORE_CSTAT_N] = {0};
    cstat_of(c, now);
    if (old)
        cstat_of(old, was);
    struct cstat_delta *d = NULL;
    for (size_t i = 0; i < t->n_cstat && !d; i++)
        if (!strcmp(t->cstat[i].handler, c->handler) && !strcmp(t->cstat[i].item, c->item))
            d = &t->cstat[i];
    if (!d) {
        int rc = t->n_cstat == STORE_CSTAT_TXN_MAX ? cstat_flush(t) : 0;
        if (rc)
            return rc;
        d = &t->cstat[t->n_cstat++];
        memset(d, 0, sizeof *d);
        snprintf(d->handler, sizeof d->handler, "%s", c->handler);
        snprintf(d->item, sizeof d->item, "%s", c->item);
    }
    for (int j = 0; j < STORE_CSTAT_N; j++)
        d->v[j] += now[j] - was[j];
    t->cases_dirty = 1;
    return 0;
}

int store_case_stats(store_reader_t *r, store_case_stat_t *out, size_t max, size_t *n)
{
    *n = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(r->txn, r->store->meta, &cur);
    if (rc)
        return lmdb_err(rc);
    MDB_val k = {strlen(CSTAT_PREFIX), (void *)CSTAT_PREFIX}, v;
    size_t plen = k.mv_size;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc && *n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *key = k.mv_data;
        if (k.mv_size < plen + 8 || memcmp(key, CSTAT_PREFIX, plen) != 0)
            break;
        if (v.mv_size != 8 * STORE_CSTAT_N || key[plen + 6] != '/' || k.mv_size - plen - 7 > 64)
            continue;
        store_case_stat_t *s = &out[(*n)++];
        memcpy(s->handler, key + plen, 6);
        s->handler[6] = 0;
        memcpy(s->item, key + plen + 7, k.mv_size - plen - 7);
        s->item[k.mv_size - plen - 7] = 0;
        for (int j = 0; j < STORE_CSTAT_N; j++)
            s->v[j] = get_be64((const uint8_t *)v.mv_data + 8 * j);
    }
    mdb_cursor_close(cur);
    return rc && rc != MDB_NOTFOUND ? lmdb_err(rc) : 0;
}

int store_case_put(store_txn_t *txn, const store_case_t *old, const store_case_t *c)
{
    store_t *s = txn->store;
    uint8_t rec[CASE_MAX], key[TIME_KEY_LEN];
    MDB_val k = {16, (void *)c->id}, v = {encode(c, rec), rec}, empty = {0, NULL};
    int rc = mdb_put(txn->txn, s->cases, &k, &v, 0);
    if (!rc && !old) {
        time_key(key, c->opened_ms, c->id);
        MDB_val tk = {TIME_KEY_LEN, key};
        rc = mdb_put(txn->txn, s->case_time, &tk, &empty, 0);
    }
    if (!rc && old && old->next_ms && old->next_ms != c->next_ms) {
        time_key(key, old->next_ms, c->id);
        MDB_val tk = {TIME_KEY_LEN, key};
        rc = mdb_del(txn->txn, s->deadlines, &tk, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (!rc && c->next_ms && (!old || old->next_ms != c->next_ms)) {
        time_key(key, c->next_ms, c->id);
        MDB_val tk = {TIME_KEY_LEN, key};
        rc = mdb_put(txn->txn, s->deadlines, &tk, &empty, 0);
    }
    if (rc)
        return lmdb_err(rc);
    if ((rc = cstat_add(txn, old, c)))
        return lmdb_err(rc);
    int before = old ? old->state : 0;
    if (before != c->state) {
        if (before > 0 && before < STORE_CASE_STATES)
            txn->case_delta[before]--;
        else
            txn->case_delta[0]++; /* a new case */
        if (c->state > 0 && c->state < STORE_CASE_STATES)
            txn->case_delta[c->state]++;
        txn->cases_dirty = 1;
    }
    return 0;
}

static int counts_get(MDB_txn *txn, store_t *s, uint64_t counts[STORE_CASE_STATES])
{
    uint8_t raw[8 * STORE_CASE_STATES];
    int rc = meta_get(s, txn, COUNTS_KEY, raw, sizeof raw);
    memset(counts, 0, sizeof(uint64_t) * STORE_CASE_STATES);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    for (int i = 0; i < STORE_CASE_STATES; i++)
        counts[i] = get_be64(raw + 8 * i);
    return 0;
}

int store_cases_flush(store_txn_t *t)
{
    uint64_t counts[STORE_CASE_STATES];
    uint8_t raw[8 * STORE_CASE_STATES];
    int rc = cstat_flush(t);
    if (!rc)
        rc = counts_get(t->txn, t->store, counts);
    if (rc)
        return rc;
    for (int i = 0; i < STORE_CASE_STATES; i++)
        put_be64(raw + 8 * i, counts[i] + (uint64_t)t->case_delta[i]);
    return meta_put(t->store, t->txn, COUNTS_KEY, raw, sizeof raw);
}

int store_case_counts(store_reader_t *r, uint64_t counts[STORE_CASE_STATES])
{
    return lmdb_err(counts_get(r->txn, r->store, counts));
}

int store_case_event(store_txn_t *txn, const uint8_t id[16], uint64_t seq)
{
    uint8_t key[EVENT_KEY_LEN];
    memcpy(key, id, 16);
    put_be64(key + 16, seq);
    MDB_val k = {EVENT_KEY_LEN, key}, v = {0, NULL};
    return lmdb_err(mdb_put(txn->txn, txn->store->case_events, &k, &v, 0));
}

/* ---- deadlines -------------------------------------------------------------- */

int store_deadline_remove(store_txn_t *txn, int64_t time_ms, const uint8_t id[16])
{
    uint8_t key[TIME_KEY_LEN];
    time_key(key, time_ms, id);
    MDB_val k = {TIME_KEY_LEN, key};
    return lmdb_err(mdb_del(txn->txn, txn->store->deadlines, &k, NULL));
}

int store_deadlines_due(store_txn_t *txn, int64_t now_ms, uint8_t (*ids)[16], int64_t *times,
                        size_t max, size_t *n)
{
    MDB_cursor *c;
    MDB_val k, v;
    *n = 0;
    int rc = mdb_cursor_open(txn->txn, txn->store->deadlines, &c);
    if (rc)
        return lmdb_err(rc);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && *n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != TIME_KEY_LEN)
            continue;
        int64_t t = (int64_t)get_be64(k.mv_data);
        if (t > now_ms)
            break;
        times[*n] = t;
        memcpy(ids[(*n)++], (const uint8_t *)k.mv_data + 8, 16);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

int store_deadline_first(store_txn_t *txn, int64_t *time_ms)
{
    MDB_cursor *c;
    MDB_val k, v;
    *time_ms = INT64_MAX;
    int rc = mdb_cursor_open(txn->txn, txn->store->deadlines, &c);
    if (rc)
        return lmdb_err(rc);
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == TIME_KEY_LEN)
        *time_ms = (int64_t)get_be64(k.mv_data);
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

/* ---- tracked deliveries ----------------------------------------------------- */

static void track_key(uint8_t key[TRACK_KEY_LEN], const uint8_t msg_id[16], const char *region)
{
    memcpy(key, msg_id, 16);
    memcpy(key + 16, region, REGION_LEN);
}

int store_tracked_put(store_txn_t *txn, const uint8_t msg_id[16], const char *region,
                      uint64_t dseq, uint8_t flags)
{
    uint8_t key[TRACK_KEY_LEN], val[TRACK_VAL_LEN] = {0};
    track_key(key, msg_id, region);
    put_be64(val, dseq);
    val[16] = flags;
    MDB_val k = {TRACK_KEY_LEN, key}, v = {TRACK_VAL_LEN, val};
    return lmdb_err(mdb_put(txn->txn, txn->store->tracked, &k, &v, 0));
}

int store_tracked_confirm(store_txn_t *txn, const uint8_t msg_id[16], const char *region,
                          int64_t now_ms, uint8_t *flags)
{
    uint8_t key[TRACK_KEY_LEN], val[TRACK_VAL_LEN];
    track_key(key, msg_id, region);
    MDB_val k = {TRACK_KEY_LEN, key}, v;
    int rc = mdb_get(txn->txn, txn->store->tracked, &k, &v);
    if (rc)
        return lmdb_err(rc);
    if (v.mv_size != TRACK_VAL_LEN)
        return NHUB_EMALFORMED;
    memcpy(val, v.mv_data, TRACK_VAL_LEN);
    *flags = val[16];
    if (get_be64(val + 8) != 0)
        return NHUB_EEXIST;
    put_be64(val + 8, (uint64_t)(now_ms > 0 ? now_ms : 1));
    v = (MDB_val){TRACK_VAL_LEN, val};
    return lmdb_err(mdb_put(txn->txn, txn->store->tracked, &k, &v, 0));
}

int store_tracked_list(store_reader_t *r, const uint8_t msg_id[16], store_tracked_t *out,
                       size_t max, size_t *n)
{
    MDB_cursor *c;
    uint8_t key[TRACK_KEY_LEN] = {0};
    memcpy(key, msg_id, 16);
    MDB_val k = {TRACK_KEY_LEN, key}, v;
    *n = 0;
    int rc = mdb_cursor_open(r->txn, r->store->tracked, &c);
    if (rc)
        return lmdb_err(rc);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != TRACK_KEY_LEN || memcmp(k.mv_data, msg_id, 16) != 0)
            break;
        if (v.mv_size != TRACK_VAL_LEN)
            continue;
        store_tracked_t *t = &out[(*n)++];
        memcpy(t->region, (const uint8_t *)k.mv_data + 16, REGION_LEN);
        t->region[REGION_LEN] = '\0';
        t->dseq = get_be64(v.mv_data);
        t->confirmed_ms = (int64_t)get_be64((const uint8_t *)v.mv_data + 8);
        t->flags = ((const uint8_t *)v.mv_data)[16];
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

/* ---- reading ---------------------------------------------------------------- */

static int matches(const store_case_filter_t *f, const store_case_t *c)
{
    if (f->region && strcmp(f->region, c->requester) != 0 && strcmp(f->region, c->handler) != 0)
        return 0;
    if (f->item && strcmp(f->item, c->item) != 0)
        return 0;
    if (f->state && f->state != c->state)
        return 0;
    if (f->past_due_at_ms && (store_case_closed(c->state) || c->due_ms > f->past_due_at_ms))
        return 0;
    return !(f->open_only && store_case_closed(c->state));
}

int store_case_list(store_reader_t *r, const store_case_filter_t *f, const store_case_t *after,
                    store_case_t *out, size_t max, size_t *n)
{
    int stopped;
    store_case_t last;
    return store_case_scan(r, f, after, out, max, n, SIZE_MAX, &stopped, &last);
}

int store_case_scan(store_reader_t *r, const store_case_filter_t *f, const store_case_t *after,
                    store_case_t *out, size_t max, size_t *n, size_t scan_max, int *stopped,
                    store_case_t *last)
{
    MDB_cursor *c;
    size_t scanned = 0;
    *stopped = 0;
    MDB_val k, v;
    uint8_t key[TIME_KEY_LEN];
    *n = 0;
    int rc = mdb_cursor_open(r->txn, r->store->case_time, &c);
    if (rc)
        return lmdb_err(rc);
    /* Start at the newest key the bounds allow and walk backwards. */
    if (after) {
        time_key(key, after->opened_ms, after->id);
    } else if (f->opened_before_ms > 0) {
        uint8_t zero[16] = {0};
        time_key(key, f->opened_before_ms, zero);
    } else {
        memset(key, 0xff, sizeof key);
    }
    k = (MDB_val){TIME_KEY_LEN, key};
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    else if (rc == 0) /* at the first key >= the bound: the ones before it are ours */
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    for (; rc == 0 && *n < max; rc = mdb_cursor_get(c, &k, &v, MDB_PREV)) {
        if (k.mv_size != TIME_KEY_LEN)
            continue;
        if (scanned == scan_max) {
            *stopped = 1;
            break;
        }
        int64_t t = (int64_t)get_be64(k.mv_data);
        if (f->opened_after_ms > 0 && t < f->opened_after_ms)
            break;
        const uint8_t *id = (const uint8_t *)k.mv_data + 8;
        MDB_val ck = {16, (void *)id}, cv;
        int grc = mdb_get(r->txn, r->store->cases, &ck, &cv);
        if (grc == MDB_NOTFOUND)
            continue;
        if (grc) {
            rc = grc;
            break;
        }
        store_case_t tmp;
        if (decode(id, &cv, &tmp) != 0)
            continue;
        scanned++;
        *last = tmp;
        if (matches(f, &tmp))
            out[(*n)++] = tmp;
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}

int store_case_timeline(store_reader_t *r, const uint8_t id[16], uint64_t from_seq,
                        uint64_t *seqs, size_t max, size_t *n)
{
    MDB_cursor *c;
    uint8_t key[EVENT_KEY_LEN];
    memcpy(key, id, 16);
    put_be64(key + 16, from_seq);
    MDB_val k = {EVENT_KEY_LEN, key}, v;
    store_case_t cs;
    *n = 0;
    int rc = case_get(r->txn, r->store, id, &cs);
    if (rc == 0 && cs.request_seq >= from_seq && max > 0)
        seqs[(*n)++] = cs.request_seq;
    else if (rc && rc != NHUB_ENOTFOUND)
        return rc;
    rc = mdb_cursor_open(r->txn, r->store->case_events, &c);
    if (rc)
        return lmdb_err(rc);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && *n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != EVENT_KEY_LEN || memcmp(k.mv_data, id, 16) != 0)
            break;
        seqs[(*n)++] = get_be64((const uint8_t *)k.mv_data + 16);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lmdb_err(rc);
}
