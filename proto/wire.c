/*
 * wire.c: header frames, bounded protobuf decoding, envelope checks and
 * ZeroMQ send/receive of whole nhub messages (see wire.h).
 *
 * The budget allocator exists because protobuf_c_message_unpack() trusts the
 * lengths inside the bytes it is given: a repeated field can make it
 * allocate far more than the input size. Every allocation is charged against
 * a per-call budget and refused once it is spent, which makes unpack fail
 * cleanly (protobuf-c frees what it allocated on failure).
 */
#include "wire.h"

#include "nhub_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd_names[] = {
    [WIRE_HELLO] = "HELLO",         [WIRE_WELCOME] = "WELCOME",     [WIRE_SEND] = "SEND",
    [WIRE_ACK] = "ACK",             [WIRE_NACK] = "NACK",           [WIRE_DELIVER] = "DELIVER",
    [WIRE_DELIVERED] = "DELIVERED", [WIRE_HEARTBEAT] = "HEARTBEAT", [WIRE_BYE] = "BYE",
    [WIRE_RECEIPT_GET] = "RECEIPT_GET", [WIRE_RECEIPT] = "RECEIPT",
};

const char *wire_cmd_name(int cmd)
{
    if (cmd < WIRE_HELLO || cmd > WIRE_CMD_MAX)
        return "UNKNOWN";
    return cmd_names[cmd];
}

void wire_header_make(uint8_t out[WIRE_HEADER_LEN], wire_cmd_t cmd)
{
    out[0] = 'N';
    out[1] = 'H';
    out[2] = 'U';
    out[3] = 'B';
    out[4] = WIRE_VERSION;
    out[5] = (uint8_t)cmd;
    out[6] = 0;
    out[7] = 0;
}

int wire_header_parse(const void *data, size_t len, int *cmd, int *version)
{
    const uint8_t *h = data;
    if (!h || len != WIRE_HEADER_LEN || memcmp(h, "NHUB", 4) != 0 || h[6] != 0 || h[7] != 0)
        return NHUB_EMALFORMED;
    if (version)
        *version = h[4];
    *cmd = h[5];
    if (h[4] != WIRE_VERSION)
        return NHUB_EVERSION;
    if (h[5] < WIRE_HELLO || h[5] > WIRE_CMD_MAX)
        return NHUB_EINVAL;
    return 0;
}

const ProtobufCMessageDescriptor *wire_body_descriptor(wire_cmd_t cmd)
{
    switch (cmd) {
    case WIRE_HELLO: return &nhub__wire__v1__hello__descriptor;
    case WIRE_WELCOME: return &nhub__wire__v1__welcome__descriptor;
    case WIRE_SEND: return &nhub__wire__v1__send__descriptor;
    case WIRE_ACK: return &nhub__wire__v1__ack__descriptor;
    case WIRE_NACK: return &nhub__wire__v1__nack__descriptor;
    case WIRE_DELIVER: return &nhub__wire__v1__deliver__descriptor;
    case WIRE_DELIVERED: return &nhub__wire__v1__delivered__descriptor;
    case WIRE_HEARTBEAT: return &nhub__wire__v1__heartbeat__descriptor;
    case WIRE_BYE: return &nhub__wire__v1__bye__descriptor;
    case WIRE_RECEIPT_GET: return &nhub__wire__v1__receipt_get__descriptor;
    case WIRE_RECEIPT: return &nhub__wire__v1__receipt__descriptor;
    }
    return NULL;
}

struct budget {
    size_t left;
};

static void *budget_alloc(void *data, size_t size)
{
    struct budget *b = data;
    if (size > b->left)
        return NULL;
    b->left -= size;
    return malloc(size);
}

static void budget_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

static int varint_next(const uint8_t **p, const uint8_t *end, uint64_t *out)
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
 * True if a string field of these (already accepted) bytes holds a NUL, at
 * any depth. protobuf-c hands strings over as C strings, so every check
 * would see such a value cut at the NUL while the bytes, stored and
 * forwarded unchanged, say more to any other decoder. Wire messages are
 * flat; business payloads nest (depth bounded by WIRE_NEST_MAX, beyond which
 * the bytes are refused).
 */
#define WIRE_NEST_MAX 16
static int has_nul_string(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
                          unsigned depth)
{
    if (len == 0)
        return 0;
    if (depth > WIRE_NEST_MAX)
        return 1;
    const uint8_t *end = p + len;
    while (p < end) {
        uint64_t key, v, n = 0;
        if (varint_next(&p, end, &key) != 0)
            return 1;
        switch (key & 7) {
        case 0:
            if (varint_next(&p, end, &v) != 0)
                return 1;
            break;
        case 1: n = 8; break;
        case 5: n = 4; break;
        case 2: {
            if (varint_next(&p, end, &n) != 0 || n > (uint64_t)(end - p))
                return 1;
            uint64_t id = key >> 3;
            const ProtobufCFieldDescriptor *f =
                id <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)id) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n))
                return 1;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                has_nul_string(f->descriptor, p, n, depth + 1))
                return 1;
            break;
        }
        default: return 1;
        }
        if (n > (uint64_t)(end - p))
            return 1;
        p += n;
    }
    return 0;
}

int wire_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                size_t budget, ProtobufCMessage **out)
{
    *out = NULL;
    if (len > budget)
        return NHUB_ETOOBIG;
    /* Decoded messages need their own structs on top of the bytes. */
    struct budget b = {.left = budget > (SIZE_MAX - 4096) / 4 ? SIZE_MAX : budget * 4 + 4096};
    ProtobufCAllocator alloc = {.alloc = budget_alloc, .free = budget_free, .allocator_data = &b};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, len, data);
    if (!m)
        return NHUB_EMALFORMED;
    /* protobuf-c keeps a multi-byte tag of field number 0 as an unknown
     * field; no conforming encoder writes one and stricter decoders refuse
     * it, so such bytes must not be stored and forwarded. */
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        if (m->unknown_fields[i].tag == 0) {
            protobuf_c_message_free_unpacked(m, NULL);
            return NHUB_EMALFORMED;
        }
    }
    if (has_nul_string(desc, data, len, 0)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NHUB_EMALFORMED;
    }
    *out = m;
    return 0;
}

void wire_free(ProtobufCMessage **msg)
{
    if (!msg || !*msg)
        return;
    /* NULL allocator = malloc/free, which is what budget_alloc used. */
    protobuf_c_message_free_unpacked(*msg, NULL);
    *msg = NULL;
}

int wire_region_valid(const char *code)
{
    if (!code)
        return 0;
    for (int i = 0; i < WIRE_REGION_LEN; i++)
        if (code[i] < '0' || code[i] > '9')
            return 0;
    return code[WIRE_REGION_LEN] == '\0';
}

static int printable_ascii(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
            return 0;
    return n > 0;
}

static int type_name_valid(const char *s)
{
    return wire_payload_pattern_valid(s) && !strchr(s, '*');
}

static int fail_why(char *why, size_t cap, const char *text)
{
    if (why && cap)
        snprintf(why, cap, "%s", text);
    return NHUB_EINVAL;
}

int wire_envelope_check(const wire_envelope_t *env, char *why, size_t whycap)
{
    if (env->msg_id.len != WIRE_MSG_ID_LEN)
        return fail_why(why, whycap, "msg_id must be 16 bytes");
    if (!wire_region_valid(env->source))
        return fail_why(why, whycap, "source must be a six-digit region code");
    if (strcmp(env->destination, WIRE_BROADCAST) != 0 && !wire_region_valid(env->destination))
        return fail_why(why, whycap, "destination must be a six-digit region code or \"*\"");
    if (strcmp(env->destination, env->source) == 0)
        return fail_why(why, whycap, "destination equals source");
    if (!printable_ascii(env->item, WIRE_ITEM_MAX))
        return fail_why(why, whycap, "item must be 1..64 printable ASCII characters");
    if (env->kind < NHUB__WIRE__V1__KIND__KIND_REQUEST ||
        env->kind > NHUB__WIRE__V1__KIND__KIND_NOTICE)
        return fail_why(why, whycap, "kind is not a known kind");
    if (!type_name_valid(env->payload_type))
        return fail_why(why, whycap, "payload_type must be 1..128 characters of [A-Za-z0-9_.]");
    if (env->deadline_ms < 0 || env->created_ms < 0)
        return fail_why(why, whycap, "created_ms and deadline_ms must not be negative");
    if (env->correlation_id.len != 0 && env->correlation_id.len != WIRE_MSG_ID_LEN)
        return fail_why(why, whycap, "correlation_id must be empty or 16 bytes");
    return 0;
}

int wire_payload_pattern_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > WIRE_PAYLOAD_TYPE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || (c == '*' && i == n - 1 && i > 0 && p[i - 1] == '.');
        if (!ok)
            return 0;
    }
    return 1;
}

int wire_payload_accepted(const char *type, char *const *patterns, size_t n)
{
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        const char *p = patterns[i];
        size_t len = strlen(p);
        if (len >= 2 && p[len - 1] == '*' && p[len - 2] == '.') {
            if (strncmp(type, p, len - 1) == 0)
                return 1;
        } else if (strcmp(type, p) == 0) {
            return 1;
        }
    }
    return 0;
}

static int zmq_err_to_nhub(int e)
{
    switch (e) {
    case EAGAIN: return NHUB_EAGAIN;
    case EHOSTUNREACH: return NHUB_ENOTFOUND;
    case EINTR:
    case ETERM: return NHUB_ECLOSED;
    case ENOMEM: return NHUB_ENOMEM;
    default: return NHUB_EZMQ;
    }
}

int wire_send(void *sock, const void *rid, size_t rid_len, wire_cmd_t cmd,
              const ProtobufCMessage *body, int flags)
{
    uint8_t hdr[WIRE_HEADER_LEN];
    wire_header_make(hdr, cmd);
    zmq_msg_t m;
    size_t blen = body ? protobuf_c_message_get_packed_size(body) : 0;
    if (zmq_msg_init_size(&m, blen) != 0)
        return NHUB_ENOMEM;
    if (blen)
        protobuf_c_message_pack(body, zmq_msg_data(&m));
    /* ROUTER_MANDATORY reports an absent peer on the first frame, before
     * anything is queued, so a failure there leaves nothing half-sent. */
    if (rid && zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | flags) < 0)
        goto fail;
    if (zmq_send(sock, hdr, sizeof hdr, ZMQ_SNDMORE | flags) < 0)
        goto fail;
    if (zmq_msg_send(&m, sock, flags) < 0)
        goto fail;
    return 0;
fail:;
    int e = zmq_errno();
    zmq_msg_close(&m);
    return zmq_err_to_nhub(e);
}

int wire_recv(void *sock, wire_frames_t *f, int flags)
{
    memset(f, 0, sizeof *f);
    for (;;) {
        zmq_msg_t tmp;
        zmq_msg_t *m = f->n_kept < WIRE_FRAMES_MAX ? &f->part[f->n_kept] : &tmp;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, f->n_frames ? 0 : flags) < 0) {
            int e = zmq_errno();
            zmq_msg_close(m);
            wire_frames_close(f);
            return zmq_err_to_nhub(e);
        }
        f->n_frames++;
        f->total_len += zmq_msg_size(m);
        /* User-Id (set by a ZAP handler) is readable on body frames only. */
        if (!f->user_id[0] && f->n_frames >= 2) {
            const char *uid = zmq_msg_gets(m, "User-Id");
            if (uid)
                snprintf(f->user_id, sizeof f->user_id, "%s", uid);
        }
        int more = zmq_msg_more(m);
        if (m == &tmp)
            zmq_msg_close(m);
        else
            f->n_kept++;
        if (!more)
            return 0;
    }
}

const void *wire_frame_data(const wire_frames_t *f, size_t i)
{
    if (i >= f->n_kept)
        return NULL;
    return zmq_msg_data((zmq_msg_t *)&f->part[i]);
}

size_t wire_frame_len(const wire_frames_t *f, size_t i)
{
    if (i >= f->n_kept)
        return 0;
    return zmq_msg_size((zmq_msg_t *)&f->part[i]);
}

void wire_frames_move(wire_frames_t *dst, wire_frames_t *src)
{
    *dst = *src; /* counts and user id; the parts are moved one by one */
    for (size_t i = 0; i < src->n_kept; i++) {
        zmq_msg_init(&dst->part[i]);
        zmq_msg_move(&dst->part[i], &src->part[i]);
    }
}

void wire_frames_close(wire_frames_t *f)
{
    for (size_t i = 0; i < f->n_kept; i++)
        zmq_msg_close(&f->part[i]);
    f->n_kept = 0;
}
