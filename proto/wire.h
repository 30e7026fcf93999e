/*
 * wire.h: framing of the nhub wire protocol v1 (see proto/README.md).
 *
 * Every nhub message on a ZeroMQ socket is two frames after any routing id:
 *
 *   frame 0  header, 8 bytes: 'N' 'H' 'U' 'B', version (1), command, 0, 0
 *   frame 1  body: the protobuf message for the command (nhub_wire.proto)
 *
 * This module checks frame counts and lengths before anything is decoded,
 * decodes bodies with a bounded allocator (protobuf-c itself has no limit),
 * validates envelopes, and packs replies straight into ZeroMQ messages.
 * It is shared by the hub, libnhub and the tools; it holds no state.
 */
#ifndef NHUB_WIRE_H
#define NHUB_WIRE_H

#include "nhub_wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define WIRE_VERSION 1
#define WIRE_HEADER_LEN 8
#define WIRE_MSG_ID_LEN 16
#define WIRE_STREAM_ID_LEN 16
#define WIRE_REGION_LEN 6
#define WIRE_BROADCAST "*"
#define WIRE_ITEM_MAX 64
#define WIRE_PAYLOAD_TYPE_MAX 128
/* The largest routing id ZeroMQ gives a ROUTER peer. */
#define WIRE_ROUTING_ID_MAX 255

/* Short names for the generated body types. */
typedef Nhub__Wire__V1__Envelope wire_envelope_t;
typedef Nhub__Wire__V1__Hello wire_hello_t;
typedef Nhub__Wire__V1__Welcome wire_welcome_t;
typedef Nhub__Wire__V1__Send wire_send_t;
typedef Nhub__Wire__V1__Ack wire_ack_t;
typedef Nhub__Wire__V1__Nack wire_nack_t;
typedef Nhub__Wire__V1__Deliver wire_deliver_t;
typedef Nhub__Wire__V1__Delivered wire_delivered_t;
typedef Nhub__Wire__V1__Heartbeat wire_heartbeat_t;
typedef Nhub__Wire__V1__Bye wire_bye_t;
typedef Nhub__Wire__V1__NackCode wire_nack_code_t;
typedef Nhub__Wire__V1__ReceiptGet wire_receipt_get_t;
typedef Nhub__Wire__V1__Receipt wire_receipt_t;

typedef enum wire_cmd {
    WIRE_HELLO = 1,
    WIRE_WELCOME = 2,
    WIRE_SEND = 3,
    WIRE_ACK = 4,
    WIRE_NACK = 5,
    WIRE_DELIVER = 6,
    WIRE_DELIVERED = 7,
    WIRE_HEARTBEAT = 8,
    WIRE_BYE = 9,
    WIRE_RECEIPT_GET = 10,
    WIRE_RECEIPT = 11,
} wire_cmd_t;
#define WIRE_CMD_MAX WIRE_RECEIPT

/* Name of a command ("SEND"), or "UNKNOWN". */
const char *wire_cmd_name(int cmd);

/* Write the 8-byte header for `cmd` into `out`. */
void wire_header_make(uint8_t out[WIRE_HEADER_LEN], wire_cmd_t cmd);

/*
 * Check a header frame. On success *cmd is the command and 0 is returned.
 * Errors: NHUB_EMALFORMED (wrong length, magic or reserved bytes),
 * NHUB_EVERSION (*version holds the version seen), NHUB_EINVAL (the version is
 * right but the command is unknown; *cmd holds the byte seen).
 * `version` may be NULL.
 */
int wire_header_parse(const void *data, size_t len, int *cmd, int *version);

/* The protobuf descriptor of the body of `cmd`, or NULL if unknown. */
const ProtobufCMessageDescriptor *wire_body_descriptor(wire_cmd_t cmd);

/*
 * Decode `len` bytes as a message of type `desc`. `budget` bounds the input
 * (len <= budget) and, as 4 * budget + 4096 bytes, everything protobuf-c
 * allocates while decoding, its scratch memory included. Returns 0 and sets
 * *out (free with wire_free), NHUB_ETOOBIG if len exceeds `budget`, or
 * NHUB_EMALFORMED if the bytes do not decode, the allocation budget ran out,
 * or they carry a field numbered 0 (which protobuf-c accepts in its
 * multi-byte form but no conforming encoder writes).
 */
int wire_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                size_t budget, ProtobufCMessage **out);

/* Free a message from wire_decode; accepts NULL and sets *msg to NULL. */
void wire_free(ProtobufCMessage **msg);

/*
 * Validate a decoded envelope for the hub and the adapters: msg_id 16 bytes,
 * source six digits, destination six digits or "*" and not the source, item
 * 1..64 characters 0x21..0x7e (no spaces), a known kind, payload_type 1..128 characters of
 * [A-Za-z0-9_.], deadline_ms 0 or not negative. Returns 0, or NHUB_EINVAL with
 * a reason naming the field (never its value) in `why`.
 */
int wire_envelope_check(const wire_envelope_t *env, char *why, size_t whycap);

/* True if `code` is six ASCII digits (a GB/T 2260 code). */
int wire_region_valid(const char *code);

/*
 * True if `p` is a payload type name ([A-Za-z0-9_.], 1..128 characters) or a
 * package pattern ending in ".*", the one wildcard wire_payload_accepted knows.
 */
int wire_payload_pattern_valid(const char *p);

/*
 * True if payload type `type` is accepted by the announced patterns: none
 * announced accepts all; an entry matches exactly, or "pkg.v1.*" matches any
 * type whose name starts with "pkg.v1.".
 */
int wire_payload_accepted(const char *type, char *const *patterns, size_t n);

/*
 * Send one nhub message on `sock`: an optional routing id frame (rid may be
 * NULL for a DEALER), the header for `cmd` and `body` packed. `flags` are
 * ZeroMQ send flags (ZMQ_DONTWAIT). Returns 0, NHUB_EAGAIN if the socket would
 * block, NHUB_ENOTFOUND if a ROUTER has no such peer (EHOSTUNREACH), NHUB_ENOMEM
 * or NHUB_EZMQ.
 */
int wire_send(void *sock, const void *rid, size_t rid_len, wire_cmd_t cmd,
              const ProtobufCMessage *body, int flags);

/*
 * One received nhub message: frames were received whole; `n_frames` counts
 * all of them (a well-formed one has 2, or 3 on a ROUTER). Frame data stays
 * owned by the struct; release with wire_frames_close.
 */
#define WIRE_FRAMES_MAX 4
typedef struct wire_frames {
    size_t n_frames;   /* frames received, including any beyond WIRE_FRAMES_MAX */
    size_t n_kept;     /* frames held in `part` */
    size_t total_len;  /* bytes of all frames */
    zmq_msg_t part[WIRE_FRAMES_MAX];
    char user_id[64];  /* ZAP User-Id of the peer, empty if none */
} wire_frames_t;

/*
 * Receive one whole multipart message from `sock` (all frames, even extra
 * ones, which are counted and dropped). Returns 0, NHUB_EAGAIN if none is
 * waiting with ZMQ_DONTWAIT, NHUB_ECLOSED if interrupted by a signal or the
 * context is terminated, NHUB_EZMQ otherwise.
 */
int wire_recv(void *sock, wire_frames_t *f, int flags);

/* Frame `i` (0-based) data and length; NULL/0 if not kept. */
const void *wire_frame_data(const wire_frames_t *f, size_t i);
size_t wire_frame_len(const wire_frames_t *f, size_t i);

/* Release the frames of `f`; it can be reused for the next wire_recv. */
void wire_frames_close(wire_frames_t *f);

/* Move the frames of `src` into `dst` (uninitialised); `src` is left
 * empty, still to be closed. */
void wire_frames_move(wire_frames_t *dst, wire_frames_t *src);

#endif
