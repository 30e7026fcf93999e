/*
 * raw.h: a hand-driven protocol client for integration tests: one DEALER
 * socket speaking wire protocol v1 frame by frame, so tests can send what
 * libnhub never would (bad frames, gaps, forged fields) and see every
 * answer. Every wait is bounded; failures end the test through cmocka.
 */
#ifndef NHUB_TEST_RAW_H
#define NHUB_TEST_RAW_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct raw {
    void *sock;
    uint8_t stream_id[16];
} raw_t;

/* Connect a new client (random stream_id) in ZeroMQ context `ctx`. */
raw_t *raw_new(void *ctx, const char *endpoint);
void raw_free(raw_t **r);

/* As raw_new, as a CURVE client with Z85 keys `pub`/`sec`, to a hub whose
 * CURVE public key is `server`. */
raw_t *raw_new_curve(void *ctx, const char *endpoint, const char *pub, const char *sec,
                     const char *server);

/* Send one nhub message / raw frames (b may be NULL for a single frame). */
void raw_send(raw_t *r, wire_cmd_t cmd, const ProtobufCMessage *body);
void raw_frames(raw_t *r, const void *a, size_t alen, const void *b, size_t blen);

/* Wait up to timeout_ms for the next message: its command (0 on timeout)
 * and decoded body in *body (free with wire_free). */
int raw_recv(raw_t *r, ProtobufCMessage **body, int timeout_ms);

/* As raw_recv, skipping HEARTBEATs: the next other command and its body. */
int raw_recv_answer(raw_t *r, ProtobufCMessage **body, int timeout_ms);

/* Receive (10 s at most), skipping HEARTBEATs unless wanted, and require
 * command `want`; returns the body (free with wire_free). */
void *raw_expect(raw_t *r, int want);

/* HELLO for `region` with this client's stream; returns the WELCOME. */
wire_welcome_t *raw_hello(raw_t *r, const char *region, uint32_t credit, char **accepted,
                          size_t n_accepted);

/* The same, announcing the largest DELIVER body this client takes (0: no limit). */
wire_welcome_t *raw_hello_max(raw_t *r, const char *region, uint32_t credit, char **accepted,
                              size_t n_accepted, uint32_t max_frame);

/* Only send that HELLO (the answer is the caller's to read). */
void raw_send_hello(raw_t *r, const char *region, uint32_t credit, char **accepted,
                    size_t n_accepted, uint32_t max_frame);

/* HELLO and discard the WELCOME. */
void raw_hello_ok(raw_t *r, const char *region, uint32_t credit);

/* Encode an envelope into buf; returns its length. */
size_t raw_envelope(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                    const char *dst, const char *type, const void *payload, size_t plen);

/* As raw_envelope, with a service item and kind of its own. */
size_t raw_envelope_item(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                         const char *dst, const char *item, int kind, const char *type,
                         const void *payload, size_t plen);

/* As raw_envelope_item, answering the message `correlation` (16 bytes; NULL: none). */
size_t raw_envelope_answer(uint8_t *buf, size_t cap, const uint8_t id[16], const char *src,
                           const char *dst, const char *item, int kind, const char *type,
                           const void *payload, size_t plen, const uint8_t *correlation);

/* SEND with a signature and its key id (sig NULL: unsigned). */
void raw_send_signed(raw_t *r, uint64_t sseq, const uint8_t *env, size_t len, const uint8_t *sig,
                     size_t siglen, const char *key_id);

/* Confirm a DELIVER: DELIVERED with the msg_id of its envelope and its dseq. */
void raw_confirm(raw_t *r, const wire_deliver_t *d);

/* SEND an encoded envelope as stream message `sseq`. */
void raw_send_env(raw_t *r, uint64_t sseq, const uint8_t *env, size_t len);

/* A msg_id from a number and a random tail. */
void raw_make_id(uint8_t id[16], int n);

#endif
