/*
 * deliver.c: queues -> DELIVER. Each region with a delivery session gets
 * its due redeliveries and then new messages within its credit; a message
 * the session cannot take is held (it stays queued). See hub_internal.h.
 */
#include "hub_internal.h"

void deliver_detach(hub_t *h, session_t *s)
{
    if (s->region >= 0 && (size_t)s->region < h->n_regions && h->regions[s->region].delivery == s) {
        h->regions[s->region].delivery = NULL;
        dispatch_stop(h->regions[s->region].window);
        log_info("hub.region_offline", "region=%s", h->regions[s->region].code);
    }
}

void deliver_session_close(hub_t *h, session_t *s, const char *why)
{
    log_info("hub.session_closed", "region=%s reason=%s",
             s->region >= 0 ? h->regions[s->region].code : "-", why);
    deliver_detach(h, s);
    session_remove(h->sessions, s);
    h->n.sessions_closed++;
}

/* ---- delivery ---------------------------------------------------------------- */

/* Why the region's delivery session cannot take a message, 0 if it can. */
struct hold {
    uint32_t reason; /* STORE_HELD_*, or 0 */
    uint32_t size;   /* the DELIVER's size, for STORE_HELD_TOO_LARGE */
};

/*
 * Envelope `e` (of `ev`, as received) with its payload translated to type `to`, into
 * *out (caller frees) and *out_len. Every other field is the sender's: the
 * receiver can check the translation against the original, which the
 * DELIVER carries beside it with the sender's signature. Returns 0, or an
 * error (the message is then held for the version, as if there were no
 * translation: nothing is sent that the hub could not make).
 */
static int translate_envelope(hub_t *h, const journal_event_t *ev, const ProtobufCBinaryData *e,
                              uint64_t seq, const char *to, uint8_t **out, size_t *out_len)
{
    wire_envelope_t *env = NULL;
    uint8_t *payload = NULL;
    size_t plen = 0;
    bool lossy = false;
    *out = NULL;
    int rc = wire_decode(&nhub__wire__v1__envelope__descriptor, e->data, e->len, e->len,
                         (ProtobufCMessage **)&env);
    if (rc == 0)
        rc = translate_payload(env->payload_type, to, env->payload.data, env->payload.len,
                               &payload, &plen, &lossy);
    if (rc != 0) {
        log_error("hub.translate_failed", "seq=%llu from=%s to=%s rc=%d",
                  (unsigned long long)seq, ev->payload_type, to, rc);
        wire_free((ProtobufCMessage **)&env);
        return rc;
    }
    /* Replace the fields in the decoded struct only for packing; wire_free()
     * frees what it decoded, so the originals are put back first. */
    char *type = env->payload_type;
    ProtobufCBinaryData old = env->payload;
    env->payload_type = (char *)to;
    env->payload = (ProtobufCBinaryData){plen, payload};
    size_t n = protobuf_c_message_get_packed_size(&env->base);
    *out = malloc(n ? n : 1);
    if (*out)
        *out_len = protobuf_c_message_pack(&env->base, *out);
    env->payload_type = type;
    env->payload = old;
    wire_free((ProtobufCMessage **)&env);
    free(payload);
    if (!*out)
        return NHUB_ENOMEM;
    h->n.translated++;
    h->n.translated_lossy += lossy;
    return 0;
}

/*
 * Send message (dseq, seq) to the region's delivery session (its msg_id
 * into msg_id[], when it was accepted into *origin_ms), its payload
 * translated when the session accepts another version of it that a
 * translation is registered for. Fills *held instead when the session
 * accepts neither its payload type nor a translation of it, or announced
 * a max_frame the DELIVER exceeds (libzmq would drop the connection).
 * Returns 0, NHUB_ENOTFOUND (the peer is gone), NHUB_EAGAIN (its queue is
 * full) or another error.
 */
static int deliver_one(hub_t *h, struct hub_region *r, store_reader_t *rd, uint64_t dseq,
                       uint64_t seq, uint64_t prev_dseq, uint32_t attempt, struct hold *held,
                       int64_t *origin_ms, uint8_t msg_id[16])
{
    const void *data;
    size_t len;
    *held = (struct hold){0, 0};
    int rc = store_journal_get(rd, seq, &data, &len, NULL);
    if (rc) { /* a store problem, not the peer's: never NHUB_ENOTFOUND here */
        log_error("hub.journal_missing", "region=%s seq=%llu dseq=%llu", r->code,
                  (unsigned long long)seq, (unsigned long long)dseq);
        return NHUB_EMALFORMED;
    }
    journal_event_t *ev = NULL;
    rc = wire_decode(&nhub__journal__v1__journal_event__descriptor, data, len, len + 1024,
                     (ProtobufCMessage **)&ev);
    if (rc || (ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED &&
               ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_MESSAGE)) {
        log_error("hub.journal_corrupt", "region=%s seq=%llu", r->code, (unsigned long long)seq);
        wire_free((ProtobufCMessage **)&ev);
        return NHUB_EMALFORMED;
    }
    session_t *s = r->delivery;
    *origin_ms = ev->time_ms;
    if (ev->msg_id.len == 16)
        memcpy(msg_id, ev->msg_id.data, 16);
    wire_deliver_t d = NHUB__WIRE__V1__DELIVER__INIT;
    if ((rc = atrest_open(h, ev, seq, r->code, &d.envelope)) != 0) {
        wire_free((ProtobufCMessage **)&ev);
        return rc; /* counted and logged; left queued */
    }
    const ProtobufCBinaryData received = d.envelope;
    uint8_t *translated = NULL;
    if (!wire_payload_accepted(ev->payload_type, s->accepted, s->n_accepted)) {
        const char *to = translate_target(ev->payload_type, s->accepted, s->n_accepted);
        if (!to ||
            translate_envelope(h, ev, &received, seq, to, &translated, &d.envelope.len) != 0) {
            held->reason = STORE_HELD_PAYLOAD_TYPE;
            wire_free((ProtobufCMessage **)&ev);
            return 0;
        }
        d.envelope.data = translated;
        d.original_envelope = received;
    }
    d.seq = seq;
    d.dseq = dseq;
    d.attempt = attempt;
    d.prev_dseq = prev_dseq;
    d.signature = ev->signature;
    d.key_id = ev->key_id;
    size_t size = protobuf_c_message_get_packed_size(&d.base);
    if (s->max_frame && size > s->max_frame) {
        held->reason = STORE_HELD_TOO_LARGE;
        held->size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
        wire_free((ProtobufCMessage **)&ev);
        free(translated);
        return 0;
    }
    rc = wire_send(h->router, s->rid, s->rid_len, WIRE_DELIVER, &d.base, ZMQ_DONTWAIT);
    wire_free((ProtobufCMessage **)&ev);
    free(translated);
    return rc;
}

/* Stage the hold of a message the destination cannot take (apply_hold). */
static int stage_hold(hub_t *h, struct hub_region *r, const store_queued_t *q,
                      const struct hold *held)
{
    session_t *s = r->delivery;
    struct item *it = ingress_item_new(h, ITEM_HOLD, s->rid, s->rid_len);
    if (!it)
        return NHUB_EAGAIN;
    it->region = (int)(r - h->regions);
    it->dseq = q->dseq;
    it->seq = q->seq;
    it->hold_reason = held->reason;
    it->hold_size = held->size;
    memcpy(it->msg_id, q->msg_id, 16);
    return 0;
}

/* Handle a failed send to a region's session; returns 1 to stop this region. */
static int delivery_failed(hub_t *h, struct hub_region *r, int rc)
{
    if (rc == NHUB_ENOTFOUND) {
        deliver_session_close(h, r->delivery, "peer gone");
        return 1;
    }
    if (rc == NHUB_EAGAIN) { /* the peer is not reading: do not spin on it */
        r->blocked_until = hub_now_mono(h) + HUB_BLOCKED_RETRY_MS;
        return 1;
    }
    return rc == NHUB_ECLOSED || rc == NHUB_EZMQ || rc == NHUB_ENOMEM;
}

/*
 * How many deliveries the region's rate limit allows now: a bucket that
 * fills at op.rate per second and holds one second's worth, so a paused
 * burst cannot exceed the rate either.
 */
static size_t rate_room(struct hub_region *r, int64_t now)
{
    if (!r->op.rate)
        return SIZE_MAX;
    double cap = r->op.rate;
    if (r->rate_at == 0)
        r->rate_tokens = cap;
    else
        r->rate_tokens += (double)(now - r->rate_at) * cap / 1000.0;
    if (r->rate_tokens > cap)
        r->rate_tokens = cap;
    r->rate_at = now;
    return r->rate_tokens < 1 ? 0 : (size_t)r->rate_tokens;
}

/* When the region's rate limit lets the next delivery go (monotonic ms). */
int64_t deliver_rate_next(const hub_t *h, const struct hub_region *r)
{
    (void)h;
    if (!r->op.rate || r->rate_tokens >= 1)
        return 0;
    return r->rate_at + (int64_t)((1 - r->rate_tokens) * 1000.0 / r->op.rate) + 1;
}

/* Stage the journal record of a resend (apply_redeliver). */
static void stage_redelivered(hub_t *h, struct hub_region *r, const dispatch_entry_t *e,
                              const uint8_t msg_id[16])
{
    session_t *s = r->delivery;
    struct item *it = ingress_item_new(h, ITEM_REDELIVER, s->rid, s->rid_len);
    if (!it) /* cannot happen: redeliver() takes no more than the stage has room for */
        return;
    it->region = (int)(r - h->regions);
    it->dseq = e->dseq;
    it->seq = e->seq;
    it->sends = e->attempt;
    memcpy(it->msg_id, msg_id, 16);
}

/*
 * Resend what was not confirmed in time, each resend journaled
 * (EVENT_REDELIVERED, staged for the next commit): no more are taken than
 * the rate allows and the stage has room to record.
 */
static void redeliver(hub_t *h, struct hub_region *r, store_reader_t *rd, int64_t now)
{
    size_t max = rate_room(r, now), room = h->cap_items - h->n_items;
    if (max > HUB_SCAN_MAX)
        max = HUB_SCAN_MAX;
    size_t n = dispatch_due(r->window, now, h->due, max < room ? max : room);
    for (size_t i = 0; i < n; i++) {
        struct hold held;
        int64_t origin;
        uint8_t msg_id[16] = {0};
        int rc = deliver_one(h, r, rd, h->due[i].dseq, h->due[i].seq, h->due[i].prev_dseq,
                             h->due[i].attempt, &held, &origin, msg_id);
        if (rc && delivery_failed(h, r, rc))
            return;
        if (!rc && !held.reason) {
            h->n.redelivered++;
            r->st.redelivered++;
            stage_redelivered(h, r, &h->due[i], msg_id);
            if (r->op.rate)
                r->rate_tokens -= 1;
        }
    }
}

/*
 * New messages for the region, as many as its window and rate allow, lane by
 * lane as the scheduler picks them (dispatch.h): read ahead a few at a time
 * from each lane within this one snapshot.
 */
static void deliver_new(hub_t *h, struct hub_region *r, store_reader_t *rd, int64_t now)
{
    dispatch_t *w = r->window;
    size_t n_lanes = 0;
    if (store_lanes_list(rd, r->code, h->lane_keys, HUB_LANES_MAX, &n_lanes) != 0 ||
        dispatch_lanes_sync(w, h->lane_keys, n_lanes) != 0)
        return;
    memset(h->lane_read, 0, n_lanes * sizeof h->lane_read[0]);
    size_t allowed = rate_room(r, now);
    int li;
    while (r->delivery && allowed > 0 && (li = dispatch_next_lane(w)) >= 0) {
        struct hub_lane_read *b = &h->lane_read[li];
        store_queued_t *ahead = &h->lane_msgs[(size_t)li * HUB_LANE_READ];
        if (b->i == b->n) {
            b->i = b->n = 0;
            if (store_lane_scan(rd, r->code, dispatch_lane_key(w, (size_t)li),
                                dispatch_lane_cursor(w, (size_t)li), ahead, HUB_LANE_READ,
                                &b->n) != 0)
                return;
            if (b->n == 0) {
                dispatch_lane_empty(w, (size_t)li);
                continue;
            }
        }
        const store_queued_t *q = &ahead[b->i];
        if (!dispatch_lane_fits(w, (size_t)li, q->size)) {
            dispatch_lane_turn(w, (size_t)li);
            continue;
        }
        b->i++;
        struct hold held;
        int64_t origin = 0;
        uint8_t msg_id[16];
        int rc = deliver_one(h, r, rd, q->dseq, q->seq, dispatch_last_sent(w), 1, &held, &origin,
                             msg_id);
        if (held.reason) {
            if (stage_hold(h, r, q, &held) != 0)
                return; /* no room to stage it: still pending, tried again */
            dispatch_skip_lane(w, (size_t)li, q->dseq);
            continue;
        }
        if (rc) {
            if (delivery_failed(h, r, rc))
                return;
            dispatch_skip_lane(w, (size_t)li, q->dseq); /* unreadable: left queued, logged */
            continue;
        }
        dispatch_sent_lane(w, (size_t)li, q->dseq, q->seq, q->size, now, origin);
        h->n.delivered++;
        r->st.delivered++;
        allowed--;
        if (r->op.rate)
            r->rate_tokens -= 1;
    }
    /* Every lane read to its end: the rest of the queue is in hand. */
    if (r->delivery && dispatch_room(w) > 0 && dispatch_next_lane(w) < 0)
        r->pending = 0;
}

void deliver_all(hub_t *h)
{
    int64_t now = hub_now_mono(h);
    store_reader_t *rd = NULL;
    for (size_t i = 0; i < h->n_regions; i++) {
        struct hub_region *r = &h->regions[i];
        if (!r->delivery || !r->delivery->welcomed || r->blocked_until > now ||
            hub_region_held_back(h, i))
            continue;
        int due = dispatch_next_due(r->window) <= now;
        int fresh = r->pending && dispatch_room(r->window) > 0;
        if (!due && !fresh)
            continue;
        if (!rd && store_reader_open(h->store, &rd) != 0)
            return;
        if (due)
            redeliver(h, r, rd, now);
        if (r->delivery && fresh)
            deliver_new(h, r, rd, now);
    }
    store_reader_close(&rd);
}
