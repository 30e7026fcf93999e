/*
 * fuzz_frames.c: libFuzzer target for what a received ZeroMQ message goes
 * through before anything reaches the store (proto/wire.h, broker/hub.c
 * on_frames, adapters/lib/conn.c handle_frame).
 *
 * The input is cut into frames, as wire_recv would hand them over:
 *
 *   byte 0      bits 0-1: frame count (0..3); bit 2: max_frame is the
 *               smallest a hub may be configured with (1 KiB) instead of
 *               the default 1 MiB, so the length bounds and the decode
 *               budget are reachable with small inputs
 *   next n-1    one byte each: the length of every frame but the last
 *   the rest    the frames; the last one takes what is left
 *
 * Three frames take the hub's path (routing id, header, body); two take an
 * adapter's (header, body), which is where WELCOME, ACK, NACK and DELIVER
 * bodies are decoded. Every other count is dropped, as both sides do. The
 * checks are the same calls in the same order as the programs make them,
 * with the same budgets; keep them in step with hub.c, and conn.c and nhub.c.
 */
#include "wire.h"

#include "nhub_err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* broker/hub.c and adapters/lib/nhub_internal.h: room for the wrapper around an envelope. */
#define HUB_FRAME_SLACK 1024
#define ADAPTER_FRAME_SLACK 4096
/* broker/session.h SESSION_ACCEPT_MAX */
#define HUB_ACCEPT_MAX 64
/* cfg.h limits.max_frame: default and smallest allowed. */
#define MAX_FRAME_DEFAULT (1024u * 1024u)
#define MAX_FRAME_SMALL 1024u

#define FRAMES_MAX 3

typedef struct frames {
    size_t n;
    const uint8_t *data[FRAMES_MAX];
    size_t len[FRAMES_MAX];
} frames_t;

/* Cut `data` into frames as described at the top; returns the max_frame to use. */
static size_t frames_split(const uint8_t *data, size_t size, frames_t *f)
{
    memset(f, 0, sizeof *f);
    if (size == 0)
        return MAX_FRAME_DEFAULT;
    f->n = data[0] & 3u;
    size_t max_frame = (data[0] & 4u) ? MAX_FRAME_SMALL : MAX_FRAME_DEFAULT;
    size_t pos = 1;
    size_t lens[FRAMES_MAX] = {0};
    for (size_t i = 0; i + 1 < f->n; i++)
        lens[i] = pos < size ? data[pos++] : 0;
    for (size_t i = 0; i < f->n; i++) {
        size_t left = size - pos;
        size_t len = i + 1 == f->n ? left : (lens[i] < left ? lens[i] : left);
        f->data[i] = data + pos;
        f->len[i] = len;
        pos += len;
    }
    return max_frame;
}

/* HELLO as on_hello checks it, up to where a session would be made. */
static void hub_hello(const uint8_t *body, size_t len, size_t max_frame)
{
    wire_hello_t *hello = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_HELLO), body, len, max_frame,
                    (ProtobufCMessage **)&hello) != 0)
        return;
    int speaks_v1 = 0;
    for (size_t i = 0; i < hello->n_protocol_versions; i++)
        speaks_v1 |= hello->protocol_versions[i] == WIRE_VERSION;
    int ok = wire_region_valid(hello->region) && speaks_v1 &&
             hello->stream_id.len == WIRE_STREAM_ID_LEN &&
             hello->n_accepted_payloads <= HUB_ACCEPT_MAX;
    for (size_t i = 0; ok && i < hello->n_accepted_payloads; i++)
        ok = wire_payload_pattern_valid(hello->accepted_payloads[i]);
    /* The hub matches stored payload types against these patterns later;
     * the software string stands in for such a type here. */
    if (ok)
        (void)wire_payload_accepted(hello->software, hello->accepted_payloads,
                                    hello->n_accepted_payloads);
    wire_free((ProtobufCMessage **)&hello);
}

/* Decode and check an envelope as check_send (hub) and on_deliver (adapter) do. */
static void envelope_check(const uint8_t *data, size_t len, size_t budget)
{
    ProtobufCMessage *env = NULL;
    char why[128];
    if (wire_decode(&nhub__wire__v1__envelope__descriptor, data, len, budget, &env) == 0)
        (void)wire_envelope_check((const wire_envelope_t *)env, why, sizeof why);
    wire_free(&env);
}

static void hub_send(const uint8_t *body, size_t len, size_t max_frame)
{
    wire_send_t *send = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_SEND), body, len, max_frame + HUB_FRAME_SLACK,
                    (ProtobufCMessage **)&send) != 0)
        return;
    if (send->envelope.len <= max_frame)
        envelope_check(send->envelope.data, send->envelope.len, max_frame);
    wire_free((ProtobufCMessage **)&send);
}

static void hub_delivered(const uint8_t *body, size_t len)
{
    wire_delivered_t *d = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_DELIVERED), body, len, 4096,
                    (ProtobufCMessage **)&d) == 0 &&
        d->msg_id.len == WIRE_MSG_ID_LEN && d->dseq != 0) {
        uint8_t msg_id[WIRE_MSG_ID_LEN];
        memcpy(msg_id, d->msg_id.data, sizeof msg_id);
    }
    wire_free((ProtobufCMessage **)&d);
}

/* on_frames: frame count, header, body length, then the command's handler. */
static void hub_frames(const frames_t *f, size_t max_frame)
{
    if (f->n != 3 || f->len[0] > WIRE_ROUTING_ID_MAX)
        return;
    int cmd = 0, ver = 0;
    if (wire_header_parse(f->data[1], f->len[1], &cmd, &ver) != 0)
        return;
    (void)wire_cmd_name(cmd);
    const uint8_t *body = f->data[2];
    size_t len = f->len[2];
    if (len > max_frame + HUB_FRAME_SLACK)
        return;
    switch (cmd) {
    case WIRE_HELLO: hub_hello(body, len, max_frame); break;
    case WIRE_SEND: hub_send(body, len, max_frame); break;
    case WIRE_DELIVERED: hub_delivered(body, len); break;
    default: break; /* HEARTBEAT, BYE and the rest are not decoded by the hub */
    }
}

/* handle_frame: the body and a DELIVER's envelope. The adapter drops HELLO,
 * SEND and DELIVERED unread; they are decoded here all the same, so every
 * body descriptor is fuzzed with the adapter's larger budget. */
static void adapter_frames(const frames_t *f, size_t max_frame)
{
    if (f->n != 2)
        return;
    int cmd = 0;
    if (wire_header_parse(f->data[0], f->len[0], &cmd, NULL) != 0)
        return;
    size_t budget = 2 * (max_frame + ADAPTER_FRAME_SLACK) + 65536;
    const ProtobufCMessageDescriptor *desc = wire_body_descriptor((wire_cmd_t)cmd);
    ProtobufCMessage *body = NULL;
    if (wire_decode(desc, f->data[1], f->len[1], budget, &body) != 0)
        return;
    if (cmd == WIRE_DELIVER) {
        const wire_deliver_t *dl = (const wire_deliver_t *)body;
        envelope_check(dl->envelope.data, dl->envelope.len, budget);
    }
    wire_free(&body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    frames_t f;
    size_t max_frame = frames_split(data, size, &f);
    /* Frame data lives in separate buffers after wire_recv; copying each one
     * lets ASan see a read past the end of a frame, not just of the input. */
    uint8_t *copy[FRAMES_MAX] = {NULL};
    for (size_t i = 0; i < f.n; i++) {
        copy[i] = malloc(f.len[i] ? f.len[i] : 1);
        if (!copy[i])
            goto done;
        if (f.len[i])
            memcpy(copy[i], f.data[i], f.len[i]);
        f.data[i] = copy[i];
    }
    hub_frames(&f, max_frame);
    adapter_frames(&f, max_frame);
done:
    for (size_t i = 0; i < FRAMES_MAX; i++)
        free(copy[i]);
    return 0;
}
