/*
 * nhub-audit: the journal's events selected by time, region, item, message
 * or case, for replay and trace (audit.h, "events").
 *
 * One message's story is spread over several records: its ACCEPTED (or the
 * hub's HUB_MESSAGE), then HELD and CONFIRMED records that name it by
 * msg_id and point back at it by ref_seq. A case's story is the records
 * naming it by case_id (its opening ACCEPTED, its transitions, the hub's
 * notices), and the stories of the messages those name: the answer a
 * CASE_ANSWERED points at (ref_seq), what was confirmed of each. So a case
 * takes two walks: the first gathers the msg_ids and seqs its records
 * name, the second keeps every record that names one of them; a message
 * takes one, since everything about it comes after its ACCEPTED.
 */
#include "audit.h"
#include "log.h"
#include "nhub_err.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_MAX (64u << 20) /* bytes of a record decoded: the hub's own frame limit is below */

/* A growing list of ids or seqs, looked through linearly: a story has tens of entries. */
typedef struct list {
    void *v;
    size_t n, cap, size; /* size: of one entry */
} list_t;

static int list_has(const list_t *l, const void *x)
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp((const char *)l->v + i * l->size, x, l->size) == 0)
            return 1;
    return 0;
}

static int list_add(list_t *l, const void *x)
{
    if (list_has(l, x))
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        void *v = realloc(l->v, cap * l->size);
        if (!v)
            return NHUB_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    memcpy((char *)l->v + l->n++ * l->size, x, l->size);
    return 0;
}

typedef struct walk {
    store_reader_t *r;
    const audit_filter_t *f;
    audit_event_fn fn;
    void *arg;
    list_t msgs;         /* 16-byte msg_ids of the story */
    list_t seqs;         /* uint64_t seqs of the story's messages */
    uint8_t pattern[19]; /* the case id as a record holds it: field 21's tag, length 16, id */
    int rc;              /* an error of our own */
    uint8_t *opened;     /* an envelope opened with the payload key */
    size_t opened_cap;
    uint64_t unopened, first_unopened; /* sealed envelopes the key did not open */
    int unopened_why;
} walk_t;

static int is_message_record(const audit_event_t *e)
{
    return e->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED ||
           e->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_MESSAGE;
}

static int id_is(const ProtobufCBinaryData *b, const uint8_t id[16])
{
    return b->len == 16 && memcmp(b->data, id, 16) == 0;
}

/* store_journal_fn, first walk of a case: what its records name. */
static int gather_case(void *arg, uint64_t seq, const uint8_t hash[STORE_HASH_LEN],
                       const void *event, size_t len)
{
    (void)hash;
    (void)seq;
    walk_t *w = arg;
    if (!memmem(event, len, w->pattern, sizeof w->pattern))
        return 0;
    audit_event_t *e = nhub__journal__v1__journal_event__unpack(NULL, len, event);
    int rc = 0;
    if (e && id_is(&e->case_id, w->f->case_id)) {
        if (e->msg_id.len == 16)
            rc = list_add(&w->msgs, e->msg_id.data);
        if (!rc && e->ref_seq)
            rc = list_add(&w->seqs, &e->ref_seq);
    }
    if (e)
        nhub__journal__v1__journal_event__free_unpacked(e, NULL);
    return rc;
}

/* Part of the story being told (the case's, or the message's)? Records the
 * seqs of its messages as they come. */
static int in_story(walk_t *w, uint64_t seq, const audit_event_t *e)
{
    const audit_filter_t *f = w->f;
    int in = (f->has_case && id_is(&e->case_id, f->case_id)) ||
             (e->msg_id.len == 16 && list_has(&w->msgs, e->msg_id.data)) ||
             list_has(&w->seqs, &seq) || (e->ref_seq && list_has(&w->seqs, &e->ref_seq));
    if (in && is_message_record(e) && list_add(&w->seqs, &seq) != 0)
        w->rc = NHUB_ENOMEM;
    return in;
}

static int region_is(const char *s, const char *region)
{
    return s && s[0] && strcmp(s, region) == 0;
}

/* The item of the record, or of the message record it points at. */
static int item_matches(walk_t *w, const audit_event_t *e)
{
    if (e->item && e->item[0])
        return strcmp(e->item, w->f->item) == 0;
    const void *ev;
    size_t len;
    if (!e->ref_seq || store_journal_get(w->r, e->ref_seq, &ev, &len, NULL) != 0)
        return 0;
    audit_event_t *m = nhub__journal__v1__journal_event__unpack(NULL, len, ev);
    int yes = m && m->item && strcmp(m->item, w->f->item) == 0;
    if (m)
        nhub__journal__v1__journal_event__free_unpacked(m, NULL);
    return yes;
}

static int matches(walk_t *w, uint64_t seq, const audit_event_t *e)
{
    const audit_filter_t *f = w->f;
    if ((f->has_from && e->time_ms < f->from_ms) || (f->has_to && e->time_ms >= f->to_ms))
        return 0;
    if (f->region && !region_is(e->source, f->region) && !region_is(e->destination, f->region) &&
        !region_is(e->region, f->region) &&
        !(is_message_record(e) && region_is(e->destination, "*")))
        return 0;
    if ((f->has_case || f->has_msg) && !in_story(w, seq, e))
        return 0;
    return !f->item || item_matches(w, e);
}

/* A varint at p[*i..len): 0 and *v, or -1. */
static int varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; *i < len && shift < 64; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/*
 * Whether the record lies outside the time range, read from its first
 * bytes without decoding it: protobuf-c writes fields in number order, so
 * an event starts with type (field 1, tag 0x08) and time_ms (field 2, tag
 * 0x10). 1 if it is outside; 0 if inside or if its bytes are not of that
 * shape (it is decoded and looked at whole). A time-bounded replay of a
 * long journal skips most records this way.
 */
static int outside_time(const audit_filter_t *f, const uint8_t *p, size_t len)
{
    size_t i = 0;
    uint64_t v;
    if (!f->has_from && !f->has_to)
        return 0;
    if (i < len && p[i] == 0x08 && (++i, varint(p, len, &i, &v) != 0))
        return 0;
    if (i >= len || p[i++] != 0x10 || varint(p, len, &i, &v) != 0)
        return 0;
    int64_t t = (int64_t)v;
    return (f->has_from && t < f->from_ms) || (f->has_to && t >= f->to_ms);
}

/* With the payload key, a sealed envelope of `e` opened into w->opened and
 * put in its place (the caller puts the sealed one back). One that does
 * not open (another key, altered bytes) stays sealed and is counted. */
static int open_envelope(walk_t *w, uint64_t seq, audit_event_t *e)
{
    const seal_key_t *key = w->f->payload_key;
    ProtobufCBinaryData *env = &e->envelope;
    size_t len = 0;
    if (!key || !seal_is_sealed(env->data, env->len))
        return 0;
    if (w->opened_cap < env->len) {
        uint8_t *p = realloc(w->opened, env->len);
        if (!p)
            return w->rc = NHUB_ENOMEM;
        w->opened = p;
        w->opened_cap = env->len;
    }
    int rc = seal_open(key, e->msg_id.data, e->msg_id.len, env->data, env->len, w->opened,
                       w->opened_cap, &len);
    if (rc == 0) {
        *env = (ProtobufCBinaryData){len, w->opened};
        return 0;
    }
    if (!w->unopened++) {
        w->first_unopened = seq;
        w->unopened_why = rc;
    }
    return 0;
}

/* store_journal_fn, the walk that tells. */
static int tell(void *arg, uint64_t seq, const uint8_t hash[STORE_HASH_LEN], const void *event,
                size_t len)
{
    (void)hash;
    walk_t *w = arg;
    ProtobufCMessage *m = NULL;
    if (outside_time(w->f, event, len) && !(w->f->has_case || w->f->has_msg))
        return 0;
    int rc = wire_decode(&nhub__journal__v1__journal_event__descriptor, event, len, EVENT_MAX, &m);
    if (rc != 0) {
        fprintf(stderr, "nhub-audit: record %llu does not decode as a JournalEvent\n",
                (unsigned long long)seq);
        w->rc = NHUB_EMALFORMED;
        return w->rc;
    }
    audit_event_t *e = (audit_event_t *)m;
    ProtobufCBinaryData sealed = e->envelope;
    if (matches(w, seq, e) && (rc = open_envelope(w, seq, e)) == 0)
        rc = w->fn(w->arg, seq, event, len, e);
    e->envelope = sealed; /* the decoded event's own, freed with it */
    wire_free(&m);
    return w->rc ? w->rc : rc;
}

int audit_events(store_reader_t *r, const audit_filter_t *f, audit_event_fn fn, void *arg)
{
    /* field 21 (case_id), length-delimited: tag (21 << 3) | 2 = 170, varint 0xaa 0x01 */
    walk_t w = {r,
                f,
                fn,
                arg,
                {NULL, 0, 0, 16},
                {NULL, 0, 0, sizeof(uint64_t)},
                {0xaa, 0x01, 0x10},
                0,
                NULL,
                0,
                0,
                0,
                0};
    uint64_t bad = 0;
    int rc = 0;
    memcpy(w.pattern + 3, f->case_id, 16);
    if (f->has_msg)
        rc = list_add(&w.msgs, f->msg_id);
    if (!rc && f->has_case)
        rc = list_add(&w.msgs, f->case_id);
    if (!rc && f->has_case)
        rc = store_journal_walk(r, 1, gather_case, &w, &bad);
    if (!rc)
        rc = store_journal_walk(r, 1, tell, &w, &bad);
    if (rc < 0 && w.rc != NHUB_EMALFORMED) /* a decoding failure was named where it happened */
        fprintf(stderr, "nhub-audit: cannot read the journal: %s\n", nhub_strerror(rc));
    if (w.unopened)
        fprintf(stderr,
                "nhub-audit: %llu sealed envelope%s did not open with --payload-key-file "
                "(the first in record %llu: %s); shown sealed\n",
                (unsigned long long)w.unopened, w.unopened == 1 ? "" : "s",
                (unsigned long long)w.first_unopened,
                w.unopened_why == NHUB_ENOTFOUND ? "sealed with another key"
                                                 : "it does not authenticate");
    free(w.msgs.v);
    free(w.seqs.v);
    free(w.opened);
    return rc;
}

const char *audit_enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix,
                            char *buf, size_t cap)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    size_t k = strlen(prefix), i = 0;
    if (!v) {
        snprintf(buf, cap, "%d", value);
        return buf;
    }
    const char *s = strncmp(v->name, prefix, k) == 0 ? v->name + k : v->name;
    for (; s[i] && i + 1 < cap; i++)
        buf[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    buf[i] = '\0';
    return buf;
}

int audit_filter_parse(const audit_args_t *a, audit_filter_t *f)
{
    memset(f, 0, sizeof *f);
    const char *bad = NULL;
    if (a->from && log_time_parse(a->from, &f->from_ms) != 0)
        bad = "--from";
    else if (a->to && log_time_parse(a->to, &f->to_ms) != 0)
        bad = "--to";
    if (bad) {
        fprintf(stderr,
                "nhub-audit %s: %s \"%s\" is not a UTC time such as 2026-12-07T10:55:24Z, "
                "2026-12-07T10:55:24.128Z or 2026-12-07\n",
                a->cmd, bad, bad[2] == 'f' ? a->from : a->to);
        return 2;
    }
    f->has_from = a->from != NULL;
    f->has_to = a->to != NULL;
    if ((a->msg && audit_unhex_id(a->msg, f->msg_id) != 0) ||
        (a->case_id && audit_unhex_id(a->case_id, f->case_id) != 0)) {
        fprintf(stderr, "nhub-audit %s: %s \"%s\" is not an id of 32 hex digits\n", a->cmd,
                a->msg && audit_unhex_id(a->msg, f->msg_id) != 0 ? "--msg" : "--case",
                a->msg && audit_unhex_id(a->msg, f->msg_id) != 0 ? a->msg : a->case_id);
        return 2;
    }
    f->has_msg = a->msg != NULL;
    f->has_case = a->case_id != NULL;
    if (a->region && (strlen(a->region) != 6 || strspn(a->region, "0123456789") != 6)) {
        fprintf(stderr, "nhub-audit %s: --region \"%s\" is not a region code of six digits\n",
                a->cmd, a->region);
        return 2;
    }
    f->region = a->region;
    f->item = a->item;
    return audit_filter_key(a, f);
}

int audit_filter_key(const audit_args_t *a, audit_filter_t *f)
{
    char err[512];
    if (!a->payload_key_file)
        return 0;
    /* The cipher only chooses how new envelopes are sealed: a sealed
     * envelope names its own, and one key opens both. */
    if (seal_key_load(a->payload_key_file, SEAL_AES_256_GCM, &f->payload_key, err, sizeof err) == 0)
        return 0;
    fprintf(stderr, "nhub-audit %s: --payload-key-file: %s\n", a->cmd, err);
    return 2;
}

void audit_filter_release(audit_filter_t *f)
{
    seal_key_free(&f->payload_key);
}
