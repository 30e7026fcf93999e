/*
 * fuzz_envelope.c: libFuzzer target for envelope and journal decoding
 * (proto/wire.h; broker/hub.c check_send, apply_accept, deliver_one).
 *
 * The input is taken as the bytes of an Envelope, as a SEND carries them,
 * and as a stored JournalEvent. Besides memory safety it checks properties
 * the hub relies on because it stores and forwards the bytes it received
 * and never re-encodes them; each failure aborts with a line on stderr:
 *
 *   - round trip: an envelope that decodes and passes wire_envelope_check
 *     packs to bytes that decode again to an equal message, unknown fields
 *     included;
 *   - one view: each string field of such an envelope is exactly the bytes
 *     on the wire; protobuf-c hands C strings to the checks, so a string
 *     holding a NUL would be checked short while its full bytes are
 *     forwarded to adapters whose decoders read it whole;
 *   - journal: the ACCEPTED event the hub builds from it (as apply_accept
 *     does) decodes with the budget deliver_one gives it, to the same
 *     fields, and matches payload patterns as the envelope did.
 */
#include "nhub_journal.pb-c.h"
#include "wire.h"

#include "nhub_err.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cfg.h limits.max_frame default: the budget check_send decodes with. */
#define MAX_FRAME_DEFAULT (1024u * 1024u)

typedef Nhub__Journal__V1__JournalEvent journal_event_t;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_envelope: property failed: %s\n", what);
    abort();
}

/* ---- comparing decoded messages ------------------------------------------ */

static int bytes_equal(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static int message_equal(const ProtobufCMessage *a, const ProtobufCMessage *b, const char **which);

/* One singular field of two messages of the same type; repeated fields do
 * not occur in Envelope or JournalEvent, a nested one (JournalEvent's
 * archive) is compared field by field. */
static int field_equal(const ProtobufCFieldDescriptor *fd, const void *a, const void *b)
{
    const char *pa = (const char *)a + fd->offset;
    const char *pb = (const char *)b + fd->offset;
    if (fd->label != PROTOBUF_C_LABEL_NONE)
        fail("harness: only singular fields are compared");
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM: return memcmp(pa, pb, 4) == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return memcmp(pa, pb, 8) == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)pa == *(const protobuf_c_boolean *)pb;
    case PROTOBUF_C_TYPE_STRING: return strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
    case PROTOBUF_C_TYPE_BYTES:
        return bytes_equal((const ProtobufCBinaryData *)pa, (const ProtobufCBinaryData *)pb);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *ma = *(const ProtobufCMessage *const *)pa;
        const ProtobufCMessage *mb = *(const ProtobufCMessage *const *)pb;
        const char *which;
        return (!ma && !mb) || (ma && mb && message_equal(ma, mb, &which));
    }
    }
    fail("harness: a field type that is not compared");
    return 0;
}

/* Known fields by descriptor, then unknown fields in order. */
static int message_equal(const ProtobufCMessage *a, const ProtobufCMessage *b, const char **which)
{
    const ProtobufCMessageDescriptor *d = a->descriptor;
    *which = "descriptor";
    if (b->descriptor != d)
        return 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        *which = d->fields[i].name;
        if (!field_equal(&d->fields[i], a, b))
            return 0;
    }
    *which = "unknown fields";
    if (a->n_unknown_fields != b->n_unknown_fields)
        return 0;
    for (unsigned i = 0; i < a->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *x = &a->unknown_fields[i];
        const ProtobufCMessageUnknownField *y = &b->unknown_fields[i];
        if (x->tag != y->tag || x->wire_type != y->wire_type || x->len != y->len ||
            (x->len && memcmp(x->data, y->data, x->len) != 0))
            return 0;
    }
    return 1;
}

/* ---- the wire view of string fields -------------------------------------- */

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t c = *(*p)++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/*
 * Length on the wire of the last occurrence (the one a decoder keeps) of
 * length-delimited top-level field `id`, or -1 when absent or the bytes do
 * not walk. Only called on bytes protobuf-c accepted.
 */
static int64_t wire_len_of(const uint8_t *data, size_t len, uint32_t id)
{
    const uint8_t *p = data, *end = data + len;
    int64_t found = -1;
    while (p < end) {
        uint64_t key, n;
        if (varint(&p, end, &key) != 0)
            return -1;
        switch (key & 7) {
        case 0:
            if (varint(&p, end, &n) != 0)
                return -1;
            break;
        case 1: p += 8; break;
        case 5: p += 4; break;
        case 2:
            if (varint(&p, end, &n) != 0 || n > (uint64_t)(end - p))
                return -1;
            if ((key >> 3) == id)
                found = (int64_t)n;
            p += n;
            break;
        default: return -1;
        }
        if (p > end)
            return -1;
    }
    return found;
}

static void check_one_view(const ProtobufCMessage *m, const uint8_t *data, size_t len)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->type != PROTOBUF_C_TYPE_STRING)
            continue;
        const char *s = *(char *const *)((const char *)m + fd->offset);
        int64_t n = wire_len_of(data, len, fd->id);
        if (n >= 0 && (uint64_t)n != strlen(s)) {
            fprintf(stderr, "fuzz_envelope: field %s: %" PRId64 " bytes on the wire, %zu checked\n",
                    fd->name, n, strlen(s));
            fail("a checked envelope string is not its wire bytes (NUL inside)");
        }
    }
}

/* ---- properties ---------------------------------------------------------- */

/* Patterns a destination may announce; the item is tried as one too. */
static int accepted(const char *type, const char *item)
{
    char *pats[3] = {"nhub.verify.v1.*", "nhub.push.v1.Notice", NULL};
    size_t n = 2;
    if (wire_payload_pattern_valid(item))
        pats[n++] = (char *)item;
    return wire_payload_accepted(type, pats, n);
}

static void check_round_trip(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    ProtobufCMessage *again = NULL;
    const char *which = "";
    if (!buf)
        return;
    if (protobuf_c_message_pack(m, buf) != len)
        fail("round trip: pack wrote another size than get_packed_size");
    if (wire_decode(m->descriptor, buf, len, MAX_FRAME_DEFAULT + len, &again) != 0)
        fail("round trip: a checked envelope packs to bytes that do not decode");
    if (!message_equal(m, again, &which)) {
        fprintf(stderr, "fuzz_envelope: round trip differs in %s\n", which);
        fail("round trip: pack(decoded) decodes to another message");
    }
    wire_free(&again);
    free(buf);
}

/* The ACCEPTED event apply_accept writes, read back as deliver_one reads it. */
static void check_journal(const wire_envelope_t *env, const uint8_t *data, size_t len)
{
    static uint8_t stream_id[WIRE_STREAM_ID_LEN] = {0x5a};
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED;
    ev.time_ms = env->created_ms;
    ev.envelope.data = (uint8_t *)data;
    ev.envelope.len = len;
    ev.msg_id = env->msg_id;
    ev.source = env->source;
    ev.destination = env->destination;
    ev.item = env->item;
    ev.payload_type = env->payload_type;
    ev.stream_id.data = stream_id;
    ev.stream_id.len = sizeof stream_id;
    ev.stream_seq = (uint64_t)env->deadline_ms;
    ev.recipients = 1;

    size_t need = nhub__journal__v1__journal_event__get_packed_size(&ev);
    uint8_t *buf = malloc(need ? need : 1);
    ProtobufCMessage *back = NULL;
    const char *which = "";
    if (!buf)
        return;
    if (nhub__journal__v1__journal_event__pack(&ev, buf) != need)
        fail("journal: pack wrote another size than get_packed_size");
    int rc =
        wire_decode(&nhub__journal__v1__journal_event__descriptor, buf, need, need + 1024, &back);
    if (rc != 0)
        fail("journal: an ACCEPTED event does not decode with deliver_one's budget");
    if (!message_equal(&ev.base, back, &which)) {
        fprintf(stderr, "fuzz_envelope: journal event differs in %s\n", which);
        fail("journal: the stored event decodes to other fields");
    }
    const journal_event_t *got = (const journal_event_t *)back;
    if (accepted(got->payload_type, got->item) != accepted(env->payload_type, env->item))
        fail("journal: payload matching differs between envelope and event");
    wire_free(&back);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[128];
    ProtobufCMessage *m = NULL;
    ProtobufCMessage *ev = NULL;

    /* A journal record as deliver_one reads it: the stored bytes may be anything. */
    int rc =
        wire_decode(&nhub__journal__v1__journal_event__descriptor, data, size, size + 1024, &ev);
    if (rc == 0) {
        const journal_event_t *je = (const journal_event_t *)ev;
        (void)accepted(je->payload_type, je->item);
    }
    wire_free(&ev);

    if (wire_decode(&nhub__wire__v1__envelope__descriptor, data, size, MAX_FRAME_DEFAULT, &m) != 0)
        return 0;
    const wire_envelope_t *env = (const wire_envelope_t *)m;
    if (wire_envelope_check(env, why, sizeof why) == 0) {
        (void)accepted(env->payload_type, env->item);
        check_one_view(m, data, size);
        check_round_trip(m);
        check_journal(env, data, size);
    }
    wire_free(&m);
    return 0;
}
