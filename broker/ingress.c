/*
 * ingress.c: frame -> checked item. Each frame a peer sends is decoded and
 * checked here, then staged as an item of the current stage or refused on
 * the spot; a HELLO changes its session only once committed (commit.c).
 * See hub_internal.h.
 */
#include "hub_internal.h"

/* ---- staging ---------------------------------------------------------------- */

struct item *ingress_item_new(hub_t *h, enum item_type type, const void *rid, size_t rid_len)
{
    if (h->n_items >= h->cap_items)
        return NULL;
    struct item *it = &h->items[h->n_items++];
    memset(it, 0, sizeof *it);
    it->type = type;
    it->stage = -1;
    it->region = -1;
    if (rid_len > sizeof it->rid)
        rid_len = sizeof it->rid;
    memcpy(it->rid, rid, rid_len);
    it->rid_len = rid_len;
    it->recv_us = hub_now_us();
    return it;
}

void ingress_item_clear(struct item *it)
{
    wire_free((ProtobufCMessage **)&it->hello);
    wire_free((ProtobufCMessage **)&it->env);
    wire_free((ProtobufCMessage **)&it->send);
}

/*
 * Why a decoded HELLO cannot open a session (NULL: it can), with the NACK
 * code in *code. `region` is the region it names (-1: not configured) and
 * `who` the region of the connection's CURVE key.
 */
static const char *hello_refusal(hub_t *h, const wire_hello_t *hello, int region, int who,
                                 const char *fpr, int *code, char *buf, size_t cap)
{
    int speaks_v1 = 0;
    for (size_t i = 0; i < hello->n_protocol_versions; i++)
        speaks_v1 |= hello->protocol_versions[i] == WIRE_VERSION;
    *code = NHUB__WIRE__V1__NACK_CODE__NACK_INVALID;
    if (region < 0) {
        *code = NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_REGION;
        return "region is not configured at this hub";
    }
    if (h->curve && region != who) {
        snprintf(buf, cap, "HELLO region %s is not the region %s this connection's key belongs to",
                 hello->region, h->regions[who].code);
        *code = NHUB__WIRE__V1__NACK_CODE__NACK_SOURCE_MISMATCH;
        hub_security_event(h, 2, fpr, NULL, buf);
        return buf;
    }
    if (!speaks_v1) {
        *code = NHUB__WIRE__V1__NACK_CODE__NACK_VERSION;
        return "protocol_versions must include 1";
    }
    if (hello->stream_id.len != WIRE_STREAM_ID_LEN)
        return "stream_id must be 16 bytes";
    if (hello->n_accepted_payloads > SESSION_ACCEPT_MAX)
        return "too many accepted_payloads (at most 64)";
    for (size_t i = 0; i < hello->n_accepted_payloads; i++)
        if (!wire_payload_pattern_valid(hello->accepted_payloads[i]))
            return "accepted_payloads entry is not a type name or pkg.v1.* pattern";
    return NULL;
}

/*
 * A HELLO is checked here and staged; the session changes only once the
 * commit that looks up its stream has succeeded (hello_apply), as every
 * RAM state change of this file does. Until then frames of a new peer are
 * refused with HELLO_REQUIRED, and those of a known one use its old state.
 */
static void on_hello(hub_t *h, const void *rid, size_t rid_len, const void *body, size_t len,
                     int who, const char *fpr)
{
    wire_hello_t *hello = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_HELLO), body, len, h->cfg->limits.max_frame,
                    (ProtobufCMessage **)&hello) != 0) {
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0, NULL,
               "HELLO body does not decode");
        return;
    }
    int region = wire_region_valid(hello->region) ? hub_region_lookup(h, hello->region) : -1;
    int code = 0;
    char buf[160];
    const char *why = hello_refusal(h, hello, region, who, fpr, &code, buf, sizeof buf);
    struct item *it = why ? NULL : ingress_item_new(h, ITEM_HELLO, rid, rid_len);
    if (!it) { /* refused; a full stage cannot happen: the drain stops before */
        reply_refuse(h, rid, rid_len, code, 0, wire_region_valid(hello->region) ? hello->region : NULL,
               why ? why : "hub busy");
        wire_free((ProtobufCMessage **)&hello);
        return;
    }
    it->region = region;
    it->hello = hello;
    memcpy(it->stream_id, hello->stream_id.data, 16);
}

/* Empty (unsigned) or KEYS_FPR_LEN lowercase hex digits. */
static int key_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n != 0 && n != KEYS_FPR_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

/*
 * The payload of an item that names its types: a known type, one the item
 * carries for this kind, bytes that decode as it, fields that keep their
 * rules (payload.h). The cheap questions first; decoding last. Returns 1 if
 * the payload passes, else 0 with the refusal set.
 */
static int check_payload(hub_t *h, struct item *it)
{
    const wire_envelope_t *e = it->env;
    if (!payload_find(e->payload_type)) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_UNKNOWN;
        payload_check(e->payload_type, NULL, 0, NULL, it->why, sizeof it->why);
        return 0;
    }
    if (catalog_check_payload(h->catalog, e->item, (int)e->kind, e->payload_type, it->why,
                              sizeof it->why) != 0) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_NOT_ALLOWED;
        return 0;
    }
    ProtobufCMessage *msg = NULL;
    int feedback = e->kind == NHUB__WIRE__V1__KIND__KIND_FEEDBACK;
    switch (payload_check(e->payload_type, e->payload.data, e->payload.len, feedback ? &msg : NULL,
                          it->why, sizeof it->why)) {
    case PAYLOAD_OK:
        if (msg) /* the catalogue made sure field 1 is the stage */
            it->stage = payload_enum_field(msg, 1);
        payload_free(&msg);
        return 1;
    case PAYLOAD_UNKNOWN: it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_UNKNOWN; break;
    case PAYLOAD_MALFORMED: it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_MALFORMED; break;
    default: it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_PAYLOAD_INVALID; break;
    }
    return 0;
}

/* Decide, before the store is touched, whether a SEND can ever be stored. */
static void check_send(hub_t *h, struct item *it, const session_t *s)
{
    const char *src = h->regions[s->region].code;
    if (it->send->envelope.len > h->cfg->limits.max_frame) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE;
        snprintf(it->why, sizeof it->why, "envelope of %zu bytes exceeds max_frame %llu",
                 it->send->envelope.len, (unsigned long long)h->cfg->limits.max_frame);
        return;
    }
    if (wire_decode(&nhub__wire__v1__envelope__descriptor, it->send->envelope.data,
                    it->send->envelope.len, h->cfg->limits.max_frame,
                    (ProtobufCMessage **)&it->env) != 0) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED;
        snprintf(it->why, sizeof it->why, "envelope does not decode");
        return;
    }
    if (wire_envelope_check(it->env, it->why, sizeof it->why) != 0) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_INVALID;
        return;
    }
    const cfg_region_t *cr = &h->cfg->regions[s->region];
    if (!cfg_source_allowed(cr, it->env->source)) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_SOURCE_MISMATCH;
        snprintf(it->why, sizeof it->why, "envelope source %s is not this connection's region %s%s",
                 it->env->source, src, cr->cities ? " or a city under it" : "");
        return;
    }
    if (!key_id_valid(it->send->key_id) || it->send->signature.len > KEYS_SIG_MAX) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE;
        snprintf(it->why, sizeof it->why,
                 "key_id must be %d hex digits and the signature at "
                 "most %d bytes",
                 KEYS_FPR_LEN, KEYS_SIG_MAX);
        return;
    }
    snprintf(it->key_id, sizeof it->key_id, "%s", it->send->key_id);
    if (hub_region_suspended(h, (size_t)s->region)) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED;
        snprintf(it->why, sizeof it->why, "region %s is suspended by operators", src);
        return;
    }
    int broadcast = strcmp(it->env->destination, WIRE_BROADCAST) == 0;
    int dst = broadcast ? -1 : hub_region_lookup(h, it->env->destination);
    if (!broadcast && dst < 0) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_REGION;
        snprintf(it->why, sizeof it->why, "destination %s is not configured at this hub",
                 it->env->destination);
        return;
    }
    if (dst >= 0 && hub_region_suspended(h, (size_t)dst)) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED;
        snprintf(it->why, sizeof it->why, "destination %s is suspended by operators",
                 it->env->destination);
        return;
    }
    if (h->catalog && catalog_check(h->catalog, it->env->item, (int)it->env->kind, src,
                                    it->env->destination, it->why, sizeof it->why) != 0) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN;
        return;
    }
    if (h->catalog && catalog_item_typed(h->catalog, it->env->item) && !check_payload(h, it))
        return;
    it->verify = 1; /* the costly check comes last, for the whole stage at once */
}

static void on_send(hub_t *h, session_t *s, const void *rid, size_t rid_len, const void *body,
                    size_t len, const char *fpr)
{
    wire_send_t *send = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_SEND), body, len,
                    h->cfg->limits.max_frame + HUB_FRAME_SLACK, (ProtobufCMessage **)&send) != 0) {
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0,
               h->regions[s->region].code, "SEND body does not decode");
        return;
    }
    struct item *it = ingress_item_new(h, ITEM_SEND, rid, rid_len);
    if (!it) { /* cannot happen: the drain stops when the stage is full */
        wire_free((ProtobufCMessage **)&send);
        return;
    }
    h->items_bytes += len;
    it->send = send;
    it->region = s->region;
    memcpy(it->stream_id, s->stream_id, 16);
    snprintf(it->fpr, sizeof it->fpr, "%s", fpr);
    check_send(h, it, s);
}

static void on_delivered(hub_t *h, session_t *s, const void *rid, size_t rid_len, const void *body,
                         size_t len)
{
    wire_delivered_t *d = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_DELIVERED), body, len, 4096,
                    (ProtobufCMessage **)&d) != 0 ||
        d->msg_id.len != 16 || d->dseq == 0) {
        wire_free((ProtobufCMessage **)&d);
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0,
               h->regions[s->region].code, "DELIVERED body does not decode or lacks fields");
        return;
    }
    struct item *it = ingress_item_new(h, ITEM_CONFIRM, rid, rid_len);
    dispatch_entry_t e;
    if (it) {
        it->region = s->region;
        it->dseq = d->dseq;
        memcpy(it->msg_id, d->msg_id.data, 16);
        /* How often and since when this session was sent it, for the journal. */
        if (dispatch_find(h->regions[s->region].window, d->dseq, &e) == 0) {
            it->sends = e.attempt;
            it->first_sent_ms = clock_wall_ms(h->clock) - (hub_now_mono(h) - e.sent_ms);
        }
    }
    wire_free((ProtobufCMessage **)&d);
}

/*
 * A HEARTBEAT is answered once everything its connection sent before it is
 * committed: staged, answered after its stage's commit, and not at all if
 * that commit (or an earlier one of the session's) failed. An adapter
 * counts on it to know that its DELIVEREDs took effect.
 */
static void on_heartbeat(hub_t *h, const void *rid, size_t rid_len, const void *body, size_t len)
{
    wire_heartbeat_t *hb = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_HEARTBEAT), body, len, 256,
                    (ProtobufCMessage **)&hb) != 0) {
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0, NULL,
               "HEARTBEAT body does not decode");
        return;
    }
    uint64_t beat = hb->beat;
    wire_free((ProtobufCMessage **)&hb);
    struct item *it = ingress_item_new(h, ITEM_HEARTBEAT, rid, rid_len);
    if (it)
        it->seq = beat;
    else /* cannot happen: see on_send */
        reply_heartbeat(h, rid, rid_len, beat);
}

/* Validate one received message and stage it or answer it. */
void ingress_frames(hub_t *h, const wire_frames_t *f)
{
    h->n.frames_in++;
    if (f->n_frames != 3) {
        h->n.dropped++;
        reply_log_refusal(h, 0, NULL, NULL, "wrong frame count; dropped");
        if (f->n_frames > 0)
            reply_journal_wire(h, wire_frame_data(f, 0), wire_frame_len(f, 0), 0, NULL,
                               "wrong frame count; dropped");
        return;
    }
    const void *rid = wire_frame_data(f, 0), *body = wire_frame_data(f, 2);
    size_t rid_len = wire_frame_len(f, 0), len = wire_frame_len(f, 2);
    int cmd = 0, ver = 0;
    int rc = wire_header_parse(wire_frame_data(f, 1), wire_frame_len(f, 1), &cmd, &ver);
    if (rc == NHUB_EMALFORMED) {
        h->n.dropped++;
        reply_log_refusal(h, 0, NULL, NULL, "header is not an nhub header; dropped");
        reply_journal_wire(h, rid, rid_len, 0, NULL, "header is not an nhub header; dropped");
        return;
    }
    if (rc == NHUB_EVERSION) {
        char why[80];
        snprintf(why, sizeof why, "protocol version %d is not supported; this hub speaks 1", ver);
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_VERSION, 0, NULL, why);
        return;
    }
    if (rc != 0) {
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND, 0, NULL,
               "unknown command");
        return;
    }
    if (len > h->cfg->limits.max_frame + HUB_FRAME_SLACK) {
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE, 0, NULL,
               "body exceeds max_frame");
        return;
    }
    int who = -1; /* the region the connection's CURVE key belongs to */
    const char *fpr = "";
    session_t *s = session_find(h->sessions, rid, rid_len);
    if (h->curve) {
        const char *why = NULL;
        who = auth_identity(h->auth, f->user_id, clock_wall_ms(h->clock), &why);
        if (who >= 0 && s && s->region >= 0 && s->region != who) {
            who = -1;
            why = "frame identity differs from its session's";
        }
        if (who < 0) {
            h->n.identity_refused++;
            hub_security_event(
                h, 2,
                strlen(f->user_id) > KEYS_REGION_LEN + 1 ? f->user_id + KEYS_REGION_LEN + 1 : "",
                NULL, why);
            if (s)
                deliver_session_close(h, s, "key no longer valid");
            reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED, 1, NULL, why);
            return;
        }
        fpr = f->user_id + KEYS_REGION_LEN + 1;
    }
    if (cmd == WIRE_HELLO) {
        on_hello(h, rid, rid_len, body, len, who, fpr);
        return;
    }
    if (!s && cmd != WIRE_BYE) {
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED, 1, NULL,
               "say HELLO first");
        return;
    }
    if (s) {
        s->last_seen_ms = hub_now_mono(h);
        if (s->region >= 0)
            h->regions[s->region].last_seen_ms = clock_wall_ms(h->clock);
    }
    switch (cmd) {
    case WIRE_SEND: on_send(h, s, rid, rid_len, body, len, fpr); break;
    case WIRE_DELIVERED: on_delivered(h, s, rid, rid_len, body, len); break;
    case WIRE_HEARTBEAT: on_heartbeat(h, rid, rid_len, body, len); break;
    case WIRE_RECEIPT_GET: receipts_serve(h, s, rid, rid_len, body, len); break;
    case WIRE_BYE:
        if (s)
            deliver_session_close(h, s, "bye");
        break;
    default:
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND, 0,
               h->regions[s->region].code, "not a command an adapter sends");
    }
}

/* ---- fair sharing of a stage between connections ------------------------------- */

/* Bytes one connection may put in a stage: a share, and always one whole frame. */
static uint64_t fair_share(const hub_t *h)
{
    uint64_t share = h->stage_bytes / HUB_FAIR_SHARES;
    uint64_t frame = h->cfg->limits.max_frame + HUB_FRAME_SLACK;
    return share > frame ? share : frame;
}

static int stage_has_room(const hub_t *h)
{
    return h->n_items < (size_t)h->cfg->limits.batch_max && h->items_bytes < h->stage_bytes;
}

static struct hub_fair *fair_find(hub_t *h, const void *rid, size_t rid_len, int add)
{
    struct hub_fair *free_slot = NULL;
    for (size_t i = 0; i < h->n_fair; i++) {
        struct hub_fair *e = &h->fair[i];
        if (e->rid_len == rid_len && memcmp(e->rid, rid, rid_len) == 0)
            return e;
        if (!free_slot && !e->head && e->gen != h->stage_gen)
            free_slot = e; /* nothing waiting, nothing in this stage: reusable */
    }
    if (!add || rid_len > sizeof free_slot->rid)
        return NULL;
    if (!free_slot && h->n_fair < HUB_FAIR_SOURCES)
        free_slot = &h->fair[h->n_fair++];
    if (!free_slot)
        return NULL; /* more connections than followed: this one is not limited */
    memset(free_slot, 0, sizeof *free_slot);
    memcpy(free_slot->rid, rid, rid_len);
    free_slot->rid_len = rid_len;
    free_slot->gen = h->stage_gen;
    return free_slot;
}

/* The command of a frame set, or -1 if it is not one the hub would stage. */
static int frames_command(const wire_frames_t *f)
{
    int cmd = 0, ver = 0;
    if (f->n_frames != 3 ||
        wire_header_parse(wire_frame_data(f, 1), wire_frame_len(f, 1), &cmd, &ver) != 0)
        return -1;
    return cmd;
}

/* Count a SEND of `len` bytes against e's share: 1 if it fits this stage. */
static int fair_take(hub_t *h, struct hub_fair *e, size_t len)
{
    if (e->gen != h->stage_gen) {
        e->gen = h->stage_gen;
        e->bytes = 0;
    }
    if (e->bytes > 0 && e->bytes + len > fair_share(h))
        return 0;
    e->bytes += len;
    return 1;
}

int ingress_defer(hub_t *h, wire_frames_t *f)
{
    int cmd = frames_command(f);
    if (cmd < 0)
        return 0;
    const void *rid = wire_frame_data(f, 0);
    size_t rid_len = wire_frame_len(f, 0), len = wire_frame_len(f, 2);
    struct hub_fair *e = fair_find(h, rid, rid_len, cmd == WIRE_SEND);
    if (!e)
        return 0;
    if (!e->head && (cmd != WIRE_SEND || fair_take(h, e, len)))
        return 0;
    struct hub_deferred *d = malloc(sizeof *d);
    if (!d)
        return 0; /* staged at once, as without sharing */
    wire_frames_move(&d->f, f);
    d->next = NULL;
    if (e->tail)
        e->tail->next = d;
    else
        e->head = d;
    e->tail = d;
    e->deferred_bytes += d->f.total_len;
    h->deferred_total += d->f.total_len;
    h->deferred_frames++;
    return 1;
}

static void fair_pop(hub_t *h, struct hub_fair *e)
{
    struct hub_deferred *d = e->head;
    e->head = d->next;
    if (!e->head)
        e->tail = NULL;
    e->deferred_bytes -= d->f.total_len;
    h->deferred_total -= d->f.total_len;
    ingress_frames(h, &d->f);
    wire_frames_close(&d->f);
    free(d);
}

void ingress_replay(hub_t *h)
{
    for (size_t i = 0; i < h->n_fair && stage_has_room(h); i++) {
        struct hub_fair *e = &h->fair[i];
        while (e->head && stage_has_room(h)) {
            int cmd = frames_command(&e->head->f);
            if (cmd == WIRE_SEND && !fair_take(h, e, wire_frame_len(&e->head->f, 2)))
                break;
            fair_pop(h, e);
        }
    }
}

void ingress_drop_deferred(hub_t *h)
{
    for (size_t i = 0; i < h->n_fair; i++) {
        struct hub_fair *e = &h->fair[i];
        while (e->head) {
            struct hub_deferred *d = e->head;
            e->head = d->next;
            wire_frames_close(&d->f);
            free(d);
        }
        e->tail = NULL;
        e->deferred_bytes = 0;
    }
    h->deferred_total = 0;
}
