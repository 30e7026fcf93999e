/*
 * raw.c: the hand-driven protocol client of the tests (see raw.h).
 */
#include "raw.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

raw_t *raw_new(void *ctx, const char *endpoint)
{
    raw_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->sock = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(r->sock);
    int linger = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(r->sock, endpoint), 0);
    for (int i = 0; i < 16; i++)
        r->stream_id[i] = (uint8_t)rand();
    return r;
}

raw_t *raw_new_curve(void *ctx, const char *endpoint, const char *pub, const char *sec,
                     const char *server)
{
    raw_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->sock = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(r->sock);
    int linger = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_setsockopt(r->sock, ZMQ_CURVE_SERVERKEY, server, 41), 0);
    assert_int_equal(zmq_setsockopt(r->sock, ZMQ_CURVE_PUBLICKEY, pub, 41), 0);
    assert_int_equal(zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, sec, 41), 0);
    assert_int_equal(zmq_connect(r->sock, endpoint), 0);
    for (int i = 0; i < 16; i++)
        r->stream_id[i] = (uint8_t)rand();
    return r;
}

void raw_free(raw_t **r)
{
    if (!*r)
        return;
    zmq_close((*r)->sock);
    free(*r);
    *r = NULL;
}

void raw_send(raw_t *r, wire_cmd_t cmd, const ProtobufCMessage *body)
{
    assert_int_equal(wire_send(r->sock, NULL, 0, cmd, body, 0), 0);
}

void raw_frames(raw_t *r, const void *a, size_t alen, const void *b, size_t blen)
{
    assert_true(zmq_send(r->sock, a, alen, b ? ZMQ_SNDMORE : 0) >= 0);
    if (b)
        assert_true(zmq_send(r->sock, b, blen, 0) >= 0);
}

int raw_recv(raw_t *r, ProtobufCMessage **body, int timeout_ms)
{
    zmq_pollitem_t pi = {r->sock, 0, ZMQ_POLLIN, 0};
    *body = NULL;
    if (zmq_poll(&pi, 1, timeout_ms) <= 0)
        return 0;
    wire_frames_t f;
    assert_int_equal(wire_recv(r->sock, &f, 0), 0);
    assert_int_equal(f.n_frames, 2);
    int cmd = 0;
    assert_int_equal(wire_header_parse(wire_frame_data(&f, 0), wire_frame_len(&f, 0), &cmd, NULL),
                     0);
    assert_int_equal(wire_decode(wire_body_descriptor(cmd), wire_frame_data(&f, 1),
                                 wire_frame_len(&f, 1), 1 << 24, body),
                     0);
    wire_frames_close(&f);
    return cmd;
}

void *raw_expect(raw_t *r, int want)
{
    ProtobufCMessage *m = NULL;
    for (;;) {
        int cmd = raw_recv(r, &m, 10000);
        if (cmd == WIRE_HEARTBEAT && want != WIRE_HEARTBEAT) {
            wire_free(&m);
            continue;
        }
        if (cmd != want) {
            const char *text = cmd == WIRE_NACK ? ((wire_nack_t *)m)->text : "";
            fail_msg("expected %s, got %s %s", wire_cmd_name(want),
                     cmd ? wire_cmd_name(cmd) : "nothing within 10 s", text);
        }
        return m;
    }
}

int raw_recv_answer(raw_t *r, ProtobufCMessage **body, int timeout_ms)
{
    int cmd;
    do {
        cmd = raw_recv(r, body, timeout_ms);
        if (cmd == WIRE_HEARTBEAT)
            wire_free(body);
    } while (cmd == WIRE_HEARTBEAT);
    return cmd;
}

wire_welcome_t *raw_hello(raw_t *r, const char *region, uint32_t credit, char **accepted,
                          size_t n_accepted)
{
    return raw_hello_max(r, region, credit, accepted, n_accepted, 0);
}

wire_welcome_t *raw_hello_max(raw_t *r, const char *region, uint32_t credit, char **accepted,
                              size_t n_accepted, uint32_t max_frame)
{
    raw_send_hello(r, region, credit, accepted, n_accepted, max_frame);
    return raw_expect(r, WIRE_WELCOME);
}

void raw_send_hello(raw_t *r, const char *region, uint32_t credit, char **accepted,
                    size_t n_accepted, uint32_t max_frame)
{
    wire_hello_t h = NHUB__WIRE__V1__HELLO__INIT;
    uint32_t v = 1;
    h.region = (char *)region;
    h.protocol_versions = &v;
    h.n_protocol_versions = 1;
    h.credit = credit;
    h.stream_id.data = r->stream_id;
    h.stream_id.len = 16;
    h.accepted_payloads = accepted;
    h.n_accepted_payloads = n_accepted;
    h.max_frame = max_frame;
    raw_send(r, WIRE_HELLO, &h.base);
}

void raw_hello_ok(raw_t *r, const char *region, uint32_t credit)
{
    wire_welcome_t *w = raw_hello(r, region, credit, NULL, 0);
    wire_free((ProtobufCMessage **)&w);
}

size_t raw_envelope(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                    const char *dst, const char *type, const void *payload, size_t plen)
{
    return raw_envelope_item(buf, cap, id, src, dst, "TEST-VERIFY",
                             NHUB__WIRE__V1__KIND__KIND_REQUEST, type, payload, plen);
}

size_t raw_envelope_item(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                         const char *dst, const char *item, int kind, const char *type,
                         const void *payload, size_t plen)
{
    return raw_envelope_answer(buf, cap, id, src, dst, item, kind, type, payload, plen, NULL);
}

size_t raw_envelope_answer(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                           const char *dst, const char *item, int kind, const char *type,
                           const void *payload, size_t plen, const uint8_t *correlation)
{
    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    if (correlation)
        e.correlation_id = (ProtobufCBinaryData){16, (uint8_t *)correlation};
    e.msg_id.data = (uint8_t *)id;
    e.msg_id.len = 16;
    e.source = (char *)src;
    e.destination = (char *)dst;
    e.item = (char *)item;
    e.kind = (Nhub__Wire__V1__Kind)kind;
    e.created_ms = 1764000000000;
    e.payload_type = (char *)type;
    e.payload.data = (uint8_t *)payload;
    e.payload.len = plen;
    size_t n = protobuf_c_message_get_packed_size(&e.base);
    assert_true(n <= cap);
    return protobuf_c_message_pack(&e.base, buf);
}

void raw_send_env(raw_t *r, uint64_t sseq, const uint8_t *env, size_t len)
{
    raw_send_signed(r, sseq, env, len, NULL, 0, NULL);
}

void raw_send_signed(raw_t *r, uint64_t sseq, const uint8_t *env, size_t len, const uint8_t *sig,
                     size_t siglen, const char *key_id)
{
    wire_send_t s = NHUB__WIRE__V1__SEND__INIT;
    s.stream_seq = sseq;
    s.envelope.data = (uint8_t *)env;
    s.envelope.len = len;
    s.signature.data = (uint8_t *)sig;
    s.signature.len = sig ? siglen : 0;
    s.key_id = (char *)(key_id ? key_id : "");
    raw_send(r, WIRE_SEND, &s.base);
}

void raw_confirm(raw_t *r, const wire_deliver_t *d)
{
    wire_envelope_t *e = NULL;
    assert_int_equal(wire_decode(&nhub__wire__v1__envelope__descriptor, d->envelope.data,
                                 d->envelope.len, 1 << 20, (ProtobufCMessage **)&e),
                     0);
    wire_delivered_t ok = NHUB__WIRE__V1__DELIVERED__INIT;
    ok.msg_id = e->msg_id;
    ok.dseq = d->dseq;
    raw_send(r, WIRE_DELIVERED, &ok.base);
    wire_free((ProtobufCMessage **)&e);
}

void raw_make_id(uint8_t id[16], int n)
{
    memset(id, 0xA5, 16);
    id[0] = (uint8_t)n;
    id[1] = (uint8_t)(n >> 8);
    for (int i = 8; i < 16; i++)
        id[i] = (uint8_t)rand();
}
