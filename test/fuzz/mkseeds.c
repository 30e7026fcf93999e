/*
 * mkseeds.c: writes the protobuf seed inputs of the fuzz targets, one file
 * per valid message, so the fuzzer starts from bytes the programs really
 * exchange. Run by test/fuzz/seeds.sh; its output is committed under
 * test/fuzz/corpus/ and only needs regenerating when the .proto files or
 * the frame layout of fuzz_frames.c change.
 *
 *   mkseeds CORPUS_DIR    writes CORPUS_DIR/fuzz_frames/, fuzz_envelope/ and
 *                         fuzz_payload/ and fuzz_pbjson/
 */
#include "nhub_journal.pb-c.h"
#include "payload.h"
#include "pbjson.h"
#include "samples.h"
#include "wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;

static uint8_t ID_A[16] = {0x01, 0x8f, 0x3c, 0x20, 0, 0, 0, 1, 0xa5, 0x5a, 1, 2, 3, 4, 5, 6};
static uint8_t ID_B[16] = {0x01, 0x8f, 0x3c, 0x20, 0, 0, 0, 2, 0xa5, 0x5a, 1, 2, 3, 4, 5, 7};
static uint8_t STREAM[16] = {0x77, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
/* An encoded payload of the demo's query: field 1, an 18-character ID number. */
static uint8_t PAYLOAD[] = "\x0a\x12"
                           "110101199001011234";

static int write_file(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    return 0;
}

/* Caller frees the result. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf)
        exit(1);
    protobuf_c_message_pack(m, buf);
    return buf;
}

static void envelope(wire_envelope_t *e, uint8_t *id, const char *dst, int kind, const char *type)
{
    nhub__wire__v1__envelope__init(e);
    e->msg_id.data = id;
    e->msg_id.len = 16;
    e->source = "110000";
    e->destination = (char *)dst;
    e->item = "QG-SB-0001";
    e->kind = kind;
    e->created_ms = 1790000000000;
    e->payload_type = (char *)type;
    e->payload.data = PAYLOAD;
    e->payload.len = sizeof PAYLOAD - 1;
}

/* A message as fuzz_frames reads it: count byte, lengths, then the frames. */
static void frames_seed(const char *name, int small, int rid, wire_cmd_t cmd,
                        const ProtobufCMessage *body)
{
    size_t blen = 0;
    uint8_t *b = body ? pack(body, &blen) : calloc(1, 1);
    uint8_t *buf = malloc(16 + 5 + WIRE_HEADER_LEN + blen);
    size_t o = 0;
    const uint8_t rid_bytes[5] = {0, 0x6b, 0x8b, 0x45, 0x67}; /* as ZeroMQ makes them */
    if (!b || !buf)
        exit(1);
    buf[o++] = (uint8_t)((rid ? 3 : 2) | (small ? 4 : 0));
    if (rid) {
        buf[o++] = sizeof rid_bytes;
        buf[o++] = WIRE_HEADER_LEN;
        memcpy(buf + o, rid_bytes, sizeof rid_bytes);
        o += sizeof rid_bytes;
    } else {
        buf[o++] = WIRE_HEADER_LEN;
    }
    wire_header_make(buf + o, cmd);
    o += WIRE_HEADER_LEN;
    memcpy(buf + o, b, blen);
    o += blen;
    write_file("fuzz_frames", name, buf, o);
    free(buf);
    free(b);
}

static void frames_seeds(void)
{
    wire_envelope_t e;
    envelope(&e, ID_A, "440000", NHUB__WIRE__V1__KIND__KIND_REQUEST, "nhub.verify.v1.InsuredQuery");
    size_t elen;
    uint8_t *ebytes = pack(&e.base, &elen);

    wire_hello_t h = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t versions[] = {1};
    char *pats[] = {"nhub.verify.v1.*", "nhub.push.v1.Notice"};
    h.region = "440000";
    h.n_protocol_versions = 1;
    h.protocol_versions = versions;
    h.n_accepted_payloads = 2;
    h.accepted_payloads = pats;
    h.credit = 64;
    h.stream_id.data = STREAM;
    h.stream_id.len = 16;
    h.software = "libnhub 0.1";
    frames_seed("hello", 0, 1, WIRE_HELLO, &h.base);

    wire_send_t s = NHUB__WIRE__V1__SEND__INIT;
    s.stream_seq = 7;
    s.envelope.data = ebytes;
    s.envelope.len = elen;
    frames_seed("send", 0, 1, WIRE_SEND, &s.base);
    frames_seed("send_small", 1, 1, WIRE_SEND, &s.base);

    wire_delivered_t dd = NHUB__WIRE__V1__DELIVERED__INIT;
    dd.msg_id.data = ID_A;
    dd.msg_id.len = 16;
    dd.dseq = 3;
    frames_seed("delivered", 0, 1, WIRE_DELIVERED, &dd.base);

    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    hb.time_ms = 1790000000000;
    frames_seed("heartbeat", 0, 1, WIRE_HEARTBEAT, &hb.base);
    wire_bye_t bye = NHUB__WIRE__V1__BYE__INIT;
    bye.reason = "shutdown";
    frames_seed("bye", 0, 1, WIRE_BYE, &bye.base);

    /* The adapter's side: two frames. */
    wire_welcome_t w = NHUB__WIRE__V1__WELCOME__INIT;
    w.protocol_version = 1;
    w.hub_id.data = ID_B;
    w.hub_id.len = 16;
    w.stream_last = 6;
    w.max_frame = 1048576;
    w.heartbeat_ms = 5000;
    frames_seed("a_welcome", 0, 0, WIRE_WELCOME, &w.base);
    wire_ack_t ack = NHUB__WIRE__V1__ACK__INIT;
    ack.msg_id.data = ID_A;
    ack.msg_id.len = 16;
    ack.seq = 42;
    ack.stream_seq = 7;
    frames_seed("a_ack", 0, 0, WIRE_ACK, &ack.base);
    wire_nack_t nack = NHUB__WIRE__V1__NACK__INIT;
    nack.msg_id.data = ID_A;
    nack.msg_id.len = 16;
    nack.code = NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER;
    nack.text = "stream_seq 9 is not the next one";
    nack.stream_seq = 9;
    nack.expected = 8;
    nack.retryable = 1;
    frames_seed("a_nack", 0, 0, WIRE_NACK, &nack.base);
    wire_deliver_t dl = NHUB__WIRE__V1__DELIVER__INIT;
    dl.seq = 42;
    dl.dseq = 3;
    dl.envelope.data = ebytes;
    dl.envelope.len = elen;
    dl.attempt = 1;
    dl.prev_dseq = 2;
    frames_seed("a_deliver", 0, 0, WIRE_DELIVER, &dl.base);
    free(ebytes);
}

static void envelope_seed(const char *name, const wire_envelope_t *e)
{
    size_t len;
    uint8_t *b = pack(&e->base, &len);
    write_file("fuzz_envelope", name, b, len);
    free(b);
}

static void envelope_seeds(void)
{
    wire_envelope_t e;
    envelope(&e, ID_A, "440000", NHUB__WIRE__V1__KIND__KIND_REQUEST, "nhub.verify.v1.InsuredQuery");
    e.deadline_ms = 1790000060000;
    envelope_seed("request", &e);

    envelope(&e, ID_B, "440000", NHUB__WIRE__V1__KIND__KIND_RESPONSE,
             "nhub.verify.v1.InsuredAnswer");
    e.correlation_id.data = ID_A;
    e.correlation_id.len = 16;
    envelope_seed("response", &e);

    envelope(&e, ID_B, "*", NHUB__WIRE__V1__KIND__KIND_NOTICE, "nhub.push.v1.Notice");
    e.payload.len = 0;
    envelope_seed("broadcast", &e);

    /* A newer sender's envelope: field 11 is unknown to v1 and must survive. */
    envelope(&e, ID_A, "440000", NHUB__WIRE__V1__KIND__KIND_PUSH, "nhub.push.v1.Notice");
    size_t len;
    uint8_t *b = pack(&e.base, &len);
    uint8_t *x = malloc(len + 5);
    if (!b || !x)
        exit(1);
    memcpy(x, b, len);
    memcpy(x + len, "\x5a\x03v2!", 5);
    write_file("fuzz_envelope", "unknown_field", x, len + 5);
    free(x);

    /* A journal record: the same target decodes its input as one. */
    Nhub__Journal__V1__JournalEvent ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED;
    ev.time_ms = 1790000000001;
    ev.envelope.data = b;
    ev.envelope.len = len;
    ev.msg_id = e.msg_id;
    ev.source = e.source;
    ev.destination = e.destination;
    ev.item = e.item;
    ev.payload_type = e.payload_type;
    ev.stream_id.data = STREAM;
    ev.stream_id.len = 16;
    ev.stream_seq = 7;
    ev.recipients = 1;
    size_t jlen;
    uint8_t *j = pack(&ev.base, &jlen);
    write_file("fuzz_envelope", "journal_accepted", j, jlen);
    free(j);
    free(b);
}

/* fuzz_payload: the sample of each type, after the byte that selects the type. */
static void payload_seeds(void)
{
    for (size_t i = 0; i < payload_type_count() && i < 256; i++) {
        const char *type = payload_type_at(i)->name;
        size_t len;
        uint8_t *p = sample_bytes(type, &len);
        if (!p)
            continue;
        uint8_t *seed = malloc(len + 1);
        seed[0] = (uint8_t)i;
        memcpy(seed + 1, p, len);
        write_file("fuzz_payload", type, seed, len + 1);
        free(seed);
        free(p);
    }
}

/* fuzz_pbjson: each sample as JSON (selector byte i) and as bytes (i | 0x80). */
static void pbjson_seeds(void)
{
    for (size_t i = 0; i < payload_type_count() && i < 128; i++) {
        const ProtobufCMessageDescriptor *d = payload_type_at(i);
        size_t len;
        uint8_t *p = sample_bytes(d->name, &len);
        json_t *j = NULL;
        char name[200], why[256];
        if (!p || pbjson_unpack(d, p, len, &j, why, sizeof why) != 0) {
            free(p);
            continue;
        }
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        size_t tl = text ? strlen(text) : 0;
        uint8_t *seed = malloc((tl > len ? tl : len) + 1);
        seed[0] = (uint8_t)i;
        memcpy(seed + 1, text, tl);
        snprintf(name, sizeof name, "%s.json", d->name);
        write_file("fuzz_pbjson", name, seed, tl + 1);
        seed[0] = (uint8_t)(i | 0x80);
        memcpy(seed + 1, p, len);
        snprintf(name, sizeof name, "%s.pb", d->name);
        write_file("fuzz_pbjson", name, seed, len + 1);
        free(seed);
        free(text);
        free(p);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds CORPUS_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    frames_seeds();
    envelope_seeds();
    payload_seeds();
    pbjson_seeds();
    return 0;
}
