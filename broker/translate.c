/*
 * translate.c: the registered translations between payload versions (see
 * translate.h).
 *
 * A compatible pair needs no code per message: protobuf's own rule does
 * the work. The bytes of the older version decode as the newer one (the
 * new fields are empty); the bytes of the newer decode as the older one
 * with the new fields left over as unknown fields, which are dropped
 * before re-encoding, so the receiver gets exactly the type it announced.
 * An incompatible change needs a converter for the messages it touches:
 * push Feedback here, whose field 6 changed type.
 */
#include "translate.h"

#include "nhub/push/v1/push.pb-c.h"
#include "nhub/push/v2/push.pb-c.h"
#include "nhub_err.h"
#include "payload.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A package with two versions that translate both ways. */
typedef struct pair {
    const char *package; /* with the trailing dot: "nhub.insured." */
    unsigned a, b;
} pair_t;

static const pair_t PAIRS[] = {
    {"nhub.insured.", 1, 2},
    {"nhub.push.", 1, 2},
};

/* A type name taken apart: package prefix, version, message name. */
typedef struct parts {
    size_t prefix_len;
    unsigned version;
    const char *message; /* after "vN." */
} parts_t;

static int split(const char *type, parts_t *p)
{
    if (payload_type_version(type, &p->version, &p->prefix_len) != 0)
        return -1;
    p->message = strchr(type + p->prefix_len, '.');
    if (!p->message)
        return -1;
    p->message++;
    return 0;
}

/* The registered pair of `prefix` holding version `v`, and the other version. */
static const pair_t *pair_of(const char *type, const parts_t *p, unsigned *other)
{
    for (size_t i = 0; i < sizeof PAIRS / sizeof PAIRS[0]; i++) {
        const pair_t *q = &PAIRS[i];
        if (strlen(q->package) != p->prefix_len || strncmp(type, q->package, p->prefix_len) != 0)
            continue;
        if (p->version == q->a || p->version == q->b) {
            *other = p->version == q->a ? q->b : q->a;
            return q;
        }
    }
    return NULL;
}

const char *translate_target(const char *type, char *const *patterns, size_t n)
{
    parts_t p;
    unsigned other;
    if (!type || n == 0 || wire_payload_accepted(type, patterns, n) || split(type, &p) != 0 ||
        !pair_of(type, &p, &other))
        return NULL;
    char name[PAYLOAD_TYPE_MAX + 8];
    snprintf(name, sizeof name, "%.*sv%u.%s", (int)p.prefix_len, type, other, p.message);
    const ProtobufCMessageDescriptor *d = payload_find(name);
    return d && wire_payload_accepted(d->name, patterns, n) ? d->name : NULL;
}

/* Drop the unknown fields of `m` and of every message inside it; 1 if there were any. */
static int drop_unknown(ProtobufCMessage *m)
{
    int dropped = m->n_unknown_fields > 0;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        free(m->unknown_fields[i].data);
    free(m->unknown_fields);
    m->unknown_fields = NULL;
    m->n_unknown_fields = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        char *base = (char *)m + fd->offset;
        if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
            ProtobufCMessage *sub = *(ProtobufCMessage **)base;
            if (sub)
                dropped |= drop_unknown(sub);
            continue;
        }
        size_t count = *(size_t *)((char *)m + fd->quantifier_offset);
        ProtobufCMessage **subs = *(ProtobufCMessage ***)base;
        for (size_t i = 0; i < count; i++)
            dropped |= drop_unknown(subs[i]);
    }
    return dropped;
}

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *out_len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    *out = malloc(n ? n : 1);
    if (!*out)
        return NHUB_ENOMEM;
    *out_len = protobuf_c_message_pack(m, *out);
    return 0;
}

/* push Feedback v1 -> v2: the Beijing-time text becomes ms since the epoch. */
static int feedback_up(const void *data, size_t len, uint8_t **out, size_t *out_len, bool *lossy)
{
    ProtobufCMessage *m = NULL;
    if (payload_decode(&nhub__push__v1__feedback__descriptor, data, len, &m) != 0)
        return NHUB_EMALFORMED;
    const Nhub__Push__V1__Feedback *v1 = (const Nhub__Push__V1__Feedback *)m;
    Nhub__Push__V2__Feedback v2 = NHUB__PUSH__V2__FEEDBACK__INIT;
    v2.stage = v1->stage;
    v2.application_id = v1->application_id;
    v2.handled_by = v1->handled_by; /* nhub.common.v1.Office in both */
    v2.result = v1->result;
    v2.refusal_reason = v1->refusal_reason;
    int64_t ms = 0;
    *lossy = v1->handled_time[0] && payload_beijing_parse(v1->handled_time, &ms) != 0;
    v2.handled_ms = ms;
    int rc = pack(&v2.base, out, out_len);
    payload_free(&m);
    return rc;
}

/* push Feedback v2 -> v1: ms to whole seconds of Beijing time; handler_name is lost. */
static int feedback_down(const void *data, size_t len, uint8_t **out, size_t *out_len,
                         bool *lossy)
{
    ProtobufCMessage *m = NULL;
    if (payload_decode(&nhub__push__v2__feedback__descriptor, data, len, &m) != 0)
        return NHUB_EMALFORMED;
    const Nhub__Push__V2__Feedback *v2 = (const Nhub__Push__V2__Feedback *)m;
    Nhub__Push__V1__Feedback v1 = NHUB__PUSH__V1__FEEDBACK__INIT;
    char when[15] = "";
    v1.stage = v2->stage;
    v1.application_id = v2->application_id;
    v1.handled_by = v2->handled_by;
    v1.result = v2->result;
    v1.refusal_reason = v2->refusal_reason;
    if (v2->handled_ms)
        payload_beijing_format(v2->handled_ms, when);
    v1.handled_time = when;
    *lossy = v2->handler_name[0] != '\0' || v2->handled_ms % 1000 != 0;
    int rc = pack(&v1.base, out, out_len);
    payload_free(&m);
    return rc;
}

int translate_payload(const char *from, const char *to, const void *data, size_t len,
                      uint8_t **out, size_t *out_len, bool *lossy)
{
    parts_t pf, pt;
    unsigned other;
    *out = NULL;
    *out_len = 0;
    *lossy = false;
    if (!from || !to || split(from, &pf) != 0 || split(to, &pt) != 0 ||
        !pair_of(from, &pf, &other) || other != pt.version || pf.prefix_len != pt.prefix_len ||
        strncmp(from, to, pf.prefix_len) != 0 || strcmp(pf.message, pt.message) != 0)
        return NHUB_ENOTFOUND;
    const ProtobufCMessageDescriptor *dt = payload_find(to);
    if (!dt || !payload_find(from))
        return NHUB_ENOTFOUND;
    if (strcmp(from, "nhub.push.v1.Feedback") == 0)
        return feedback_up(data, len, out, out_len, lossy);
    if (strcmp(from, "nhub.push.v2.Feedback") == 0)
        return feedback_down(data, len, out, out_len, lossy);
    /* A compatible pair: decode as the target, drop what it does not have. */
    ProtobufCMessage *m = NULL;
    if (payload_decode(dt, data, len, &m) != 0)
        return NHUB_EMALFORMED;
    *lossy = drop_unknown(m);
    int rc = pack(m, out, out_len);
    payload_free(&m);
    return rc;
}
