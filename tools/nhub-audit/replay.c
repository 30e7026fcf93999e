/*
 * nhub-audit replay: the journal's events as JSON lines, selected by time,
 * region, item, message or case (events.c), and, with --into, the selected
 * messages sent again to a test hub (into.c).
 *
 *   nhub-audit replay --data DIR [--from T] [--to T] [--region R] [--item I]
 *                     [--case ID] [--msg ID] [--payloads] [--into ENDPOINT ...]
 *
 * Each line is one record, its fields by their names in nhub_journal.proto,
 * written through the descriptor, so fields added to the journal appear
 * without a change here: "seq" and "time" (ISO 8601 UTC) first, "type"
 * by name, ids (16 bytes) in hex as nhub prints them, other bytes (the
 * envelope as received, the signature) in base64, numbers as numbers. The
 * envelope is also read for its kind and correlation_id; with --payloads
 * its payload is decoded through the schemas into "payload" (or given in
 * "payload_base64" when the type is not one this build knows). A sealed
 * envelope (encrypted at rest) is marked "sealed": true and not read.
 */
#include "audit.h"
#include "log.h"
#include "nhub_wire.pb-c.h"
#include "payload.h"
#include "pbjson.h"
#include "wire.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define ENVELOPE_MAX (64u << 20)

static json_t *base64_json(const uint8_t *p, size_t n)
{
    if (n > (SIZE_MAX / 4) * 3 - 3)
        return NULL;
    char *b = malloc(4 * ((n + 2) / 3) + 1);
    if (!b)
        return NULL;
    EVP_EncodeBlock((unsigned char *)b, p, (int)n);
    json_t *j = json_string_nocheck(b); /* base64: ASCII, nothing to check */
    free(b);
    return j;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char hex[2 * 16 + 1];
    return n == 16 ? json_string_nocheck(log_hex(hex, sizeof hex, p, n)) : base64_json(p, n);
}

/* One value of field `f` at `p` as JSON, or NULL if it holds its default. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p, int repeated)
{
    char name[64];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return *(const int32_t *)p || repeated ? json_integer(*(const int32_t *)p) : NULL;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return *(const uint32_t *)p || repeated ? json_integer(*(const uint32_t *)p) : NULL;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return *(const int64_t *)p || repeated ? json_integer(*(const int64_t *)p) : NULL;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *)p;
        if (!v && !repeated)
            return NULL;
        if (v <= INT64_MAX)
            return json_integer((json_int_t)v);
        snprintf(name, sizeof name, "%llu", (unsigned long long)v); /* beyond jansson's int */
        return json_string(name);
    }
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)p || repeated ? json_boolean(*(const int *)p) : NULL;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *)p || repeated
                   ? json_string(audit_enum_name(f->descriptor, *(const int *)p, "EVENT_", name,
                                                 sizeof name))
                   : NULL;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s && (s[0] || repeated) ? json_string(s) : NULL;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        size_t k = strlen(f->name);
        if (!b->len && !repeated)
            return NULL;
        return k > 3 && strcmp(f->name + k - 3, "_id") == 0 ? hex_json(b->data, b->len)
                                                             : base64_json(b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? pbjson_from_message(m) : NULL;
    }
    default: return NULL;
    }
}

/* Every field of the event that holds a value, into o, by its .proto name. */
static int event_fields(json_t *o, const audit_event_t *e)
{
    const ProtobufCMessageDescriptor *d = e->base.descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *p = (const char *)e + f->offset;
        json_t *v = NULL;
        if (strcmp(f->name, "time_ms") == 0 || strcmp(f->name, "type") == 0)
            continue; /* "time" and "type" came first */
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)e + f->quantifier_offset);
            const char *arr = *(char *const *)p;
            if (!n)
                continue;
            v = json_array();
            for (size_t k = 0; v && k < n; k++)
                json_array_append_new(v, value_json(f, arr + k * payload_elem_size(f), 1));
        } else {
            v = value_json(f, p, 0);
        }
        if (!v && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED &&
            *(char *const *)p && **(char *const *)p) { /* not UTF-8: its bytes, not nothing */
            char key[80];
            const char *text = *(char *const *)p;
            snprintf(key, sizeof key, "%s_base64", f->name);
            json_object_set_new(o, key, base64_json((const uint8_t *)text, strlen(text)));
            continue;
        }
        if (v && json_object_set_new(o, f->name, v) != 0)
            return -1;
    }
    return 0;
}

/* What the envelope says beyond the record: kind, correlation, and with
 * `payloads` the payload decoded. */
static void envelope_fields(json_t *o, const ProtobufCBinaryData *env, int payloads)
{
    char name[64], why[256];
    if (seal_is_sealed(env->data, env->len)) {
        json_object_set_new(o, "sealed", json_true());
        if (payloads)
            json_object_set_new(o, "payload", json_string("sealed"));
        return;
    }
    ProtobufCMessage *m = NULL;
    if (wire_decode(&nhub__wire__v1__envelope__descriptor, env->data, env->len, ENVELOPE_MAX,
                    &m) != 0) {
        json_object_set_new(o, "envelope_error", json_string("does not decode as an Envelope"));
        return;
    }
    const wire_envelope_t *w = (const wire_envelope_t *)m;
    json_object_set_new(o, "kind", json_string(audit_enum_name(&nhub__wire__v1__kind__descriptor,
                                                               w->kind, "KIND_", name,
                                                               sizeof name)));
    if (w->correlation_id.len)
        json_object_set_new(o, "correlation_id",
                            hex_json(w->correlation_id.data, w->correlation_id.len));
    if (payloads) {
        const ProtobufCMessageDescriptor *d = payload_find(w->payload_type);
        json_t *p = NULL;
        if (d && pbjson_unpack(d, w->payload.data, w->payload.len, &p, why, sizeof why) == 0)
            json_object_set_new(o, "payload", p);
        else
            json_object_set_new(o, "payload_base64", base64_json(w->payload.data, w->payload.len));
    }
    wire_free(&m);
}

json_t *audit_event_json(uint64_t seq, const audit_event_t *e, int payloads)
{
    char when[40], name[64];
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "time", json_string(log_time(when, sizeof when, e->time_ms)));
    json_object_set_new(o, "type",
                        json_string(audit_enum_name(&nhub__journal__v1__event_type__descriptor,
                                                    e->type, "EVENT_", name, sizeof name)));
    if (event_fields(o, e) != 0) {
        json_decref(o);
        return NULL;
    }
    if (e->case_state)
        json_object_set_new(o, "state", json_string(store_case_state_name((int)e->case_state)));
    if (e->envelope.len)
        envelope_fields(o, &e->envelope, payloads);
    return o;
}

typedef struct replay {
    const audit_args_t *a;
    uint64_t lines;
} replay_t;

static int replay_line(void *arg, uint64_t seq, const void *raw, size_t len, const audit_event_t *e)
{
    (void)raw;
    (void)len;
    replay_t *rp = arg;
    json_t *o = audit_event_json(seq, e, rp->a->payloads);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text) {
        fprintf(stderr, "nhub-audit: record %llu: out of memory\n", (unsigned long long)seq);
        return 2;
    }
    int bad = puts(text) < 0;
    free(text);
    rp->lines++;
    return bad ? 2 : 0;
}

int audit_replay(const audit_args_t *a, store_reader_t *r, const tlog_verifier_t *vkey)
{
    (void)vkey;
    audit_filter_t f;
    int rc = audit_filter_parse(a, &f);
    if (rc != 0)
        return rc;
    if (a->into) {
        rc = audit_into(a, r, &f);
        audit_filter_release(&f);
        return rc;
    }
    replay_t rp = {a, 0};
    rc = audit_events(r, &f, replay_line, &rp);
    audit_filter_release(&f);
    if (fflush(stdout) != 0)
        rc = 2;
    return rc == 0 ? 0 : 2;
}
