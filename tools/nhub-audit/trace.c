/*
 * nhub-audit trace: the whole story of one message or case, in journal
 * order (the order the hub lived it, its clock's times beside):
 *
 *   nhub-audit trace --data DIR ID [--json]
 *
 * ID is a msg_id or a case id (a case is named by its request's msg_id),
 * 32 hex digits. The story is events.c's of a case, which for a message
 * that opened none is the message's own: accepted, held, confirmed, the
 * case's transitions, the hub's reminders and notices, the answers and
 * what became of them. One line per record, the fields it has; --json
 * writes replay's lines instead. Exit 1 when the journal has nothing of ID.
 */
#include "audit.h"
#include "log.h"
#include "nhub/case/v1/case.pb-c.h"
#include "nhub_wire.pb-c.h"
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct trace {
    const audit_args_t *a;
    const uint8_t *id;
    uint64_t lines;
} trace_t;

/* Append to line[cap] at *o, never past its end. */
static void add(char *line, size_t cap, size_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(char *line, size_t cap, size_t *o, const char *fmt, ...)
{
    va_list ap;
    if (*o >= cap)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(line + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (n > 0)
        *o = *o + (size_t)n < cap ? *o + (size_t)n : cap - 1;
}

static const char *hex16(const ProtobufCBinaryData *b, char out[33])
{
    return b->len == 16 ? log_hex(out, 33, b->data, 16) : "-";
}

/* The kind and payload type of a message record's envelope. */
static void add_envelope(char *line, size_t cap, size_t *o, const ProtobufCBinaryData *env)
{
    char kind[32];
    ProtobufCMessage *m = NULL;
    if (seal_is_sealed(env->data, env->len)) {
        add(line, cap, o, " (sealed)");
        return;
    }
    if (!env->len || wire_decode(&nhub__wire__v1__envelope__descriptor, env->data, env->len,
                                 env->len + 1, &m) != 0)
        return;
    const wire_envelope_t *w = (const wire_envelope_t *)m;
    add(line, cap, o, " %s %s",
        audit_enum_name(&nhub__wire__v1__kind__descriptor, w->kind, "KIND_", kind, sizeof kind),
        w->payload_type);
    if (w->payload_type && strcmp(w->payload_type, "nhub.case.v1.CaseNotice") == 0) {
        /* the hub's own words: which notice (reminder, overdue, expired) */
        Nhub__Case__V1__CaseNotice *n =
            nhub__case__v1__case_notice__unpack(NULL, w->payload.len, w->payload.data);
        if (n)
            add(line, cap, o, " (%s)",
                audit_enum_name(&nhub__case__v1__event__descriptor, n->event, "EVENT_", kind,
                                sizeof kind));
        if (n)
            nhub__case__v1__case_notice__free_unpacked(n, NULL);
    }
    wire_free(&m);
}

static void add_case(char *line, size_t cap, size_t *o, const audit_event_t *e)
{
    char when[40];
    if (e->case_state)
        add(line, cap, o, " state %s", store_case_state_name((int)e->case_state));
    if (e->deadline_ms)
        add(line, cap, o, " next deadline %s", log_time(when, sizeof when, e->deadline_ms));
    if (e->valid_until_ms)
        add(line, cap, o, " valid until %s", log_time(when, sizeof when, e->valid_until_ms));
    if (e->stage)
        add(line, cap, o, " stage %u", e->stage);
}

static int trace_line(void *arg, uint64_t seq, const void *raw, size_t len, const audit_event_t *e)
{
    (void)raw;
    (void)len;
    trace_t *t = arg;
    char line[2048], when[40], type[64], hex[33];
    size_t o = 0;
    t->lines++;
    if (t->a->json) {
        json_t *j = audit_event_json(seq, e, 0);
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        int bad = !text || puts(text) < 0;
        free(text);
        return bad ? 2 : 0;
    }
    add(line, sizeof line, &o, "%s seq %llu %s", log_time(when, sizeof when, e->time_ms),
        (unsigned long long)seq,
        audit_enum_name(&nhub__journal__v1__event_type__descriptor, e->type, "EVENT_", type,
                        sizeof type));
    if (e->source && e->source[0])
        add(line, sizeof line, &o, " %s -> %s", e->source, e->destination ? e->destination : "-");
    if (e->region && e->region[0])
        add(line, sizeof line, &o, " region %s", e->region);
    if (e->item && e->item[0])
        add(line, sizeof line, &o, " item %s", e->item);
    if (e->msg_id.len)
        add(line, sizeof line, &o, " msg %s", hex16(&e->msg_id, hex));
    if (e->case_id.len && !(e->msg_id.len == 16 && memcmp(e->case_id.data, e->msg_id.data, 16) == 0))
        add(line, sizeof line, &o, " case %s", hex16(&e->case_id, hex));
    add_envelope(line, sizeof line, &o, &e->envelope);
    add_case(line, sizeof line, &o, e);
    if (e->ref_seq)
        add(line, sizeof line, &o, " of seq %llu", (unsigned long long)e->ref_seq);
    if (e->dseq)
        add(line, sizeof line, &o, " dseq %llu", (unsigned long long)e->dseq);
    if (e->code)
        add(line, sizeof line, &o, " code %u", e->code);
    if (e->reason && e->reason[0])
        add(line, sizeof line, &o, " reason \"%s\"", e->reason);
    if (e->action && e->action[0])
        add(line, sizeof line, &o, " action %s by %s", e->action, e->actor ? e->actor : "-");
    return puts(line) < 0 ? 2 : 0;
}

int audit_trace(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)vkey;
    audit_filter_t f;
    memset(&f, 0, sizeof f);
    if (audit_unhex_id(a->pos[0], f.case_id) != 0) {
        fprintf(stderr, "nhub-audit trace: \"%s\" is not a msg_id or case id (32 hex digits)\n",
                a->pos[0]);
        return 2;
    }
    f.has_case = 1; /* a message's story is a case's that has no records of its own */
    if (audit_filter_key(a, &f) != 0)
        return 2;
    trace_t t = {a, f.case_id, 0};
    int rc = audit_events(r, &f, trace_line, &t);
    audit_filter_release(&f);
    if (fflush(stdout) != 0 || rc != 0)
        return 2;
    if (t.lines == 0) {
        fprintf(stderr, "nhub-audit: the journal has nothing of %s\n", a->pos[0]);
        return 1;
    }
    return 0;
}
