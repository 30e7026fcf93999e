/*
 * commit.c: stage -> one transaction -> replies. A stage is applied in one
 * LMDB transaction, replayed from the start if the map had to grow; only
 * after the commit do sessions, windows and counters change, and every item
 * is answered in the order its frame came. See hub_internal.h.
 */
#include "hub_internal.h"

/* The credit a HELLO gets: what it asked, within the configured and the socket's caps. */
static uint32_t hello_credit(const hub_t *h, const wire_hello_t *hello)
{
    uint32_t credit = hello->credit;
    if (credit > (uint64_t)h->cfg->limits.credit_max)
        credit = (uint32_t)h->cfg->limits.credit_max;
    if (credit > HUB_CREDIT_CAP)
        credit = HUB_CREDIT_CAP;
    return credit;
}

/*
 * A committed HELLO: open or renew the peer's session and, if it reads
 * (credit > 0), make it its region's delivery session, restarting the
 * window at the head of the queue (held messages are looked at again with
 * the new accepted types and max_frame). Returns NULL and leaves
 * everything unchanged, or the reason it could not.
 */
static const char *hello_apply(hub_t *h, struct item *it)
{
    const wire_hello_t *hello = it->hello;
    session_t *s = session_get_or_add(h->sessions, it->rid, it->rid_len);
    if (!s)
        return "too many sessions";
    if (session_set_accepted(s, hello->accepted_payloads, hello->n_accepted_payloads) != 0) {
        if (s->region < 0) /* just created: no half-made session stays */
            session_remove(h->sessions, s);
        return "out of memory";
    }
    uint32_t credit = hello_credit(h, hello);
    if (s->region < 0)
        h->n.sessions_opened++;
    else if (s->region != it->region || credit == 0)
        deliver_detach(h, s);
    struct hub_region *r = &h->regions[it->region];
    s->region = it->region;
    memcpy(s->stream_id, it->stream_id, 16);
    s->credit = credit;
    s->max_frame = hello->max_frame;
    s->last_seen_ms = hub_now_mono(h);
    s->welcomed = 1; /* the WELCOME goes out right after this */
    /* Credit 0 is a send-only session: the region's deliveries stay with
     * the session that asked for them. */
    if (credit > 0) {
        if (r->delivery && r->delivery != s)
            log_info("hub.delivery_moved", "region=%s", r->code);
        r->delivery = s;
        r->pending = 1;
        if (dispatch_reset(r->window, credit) != 0)
            r->delivery = NULL;
    }
    log_info("hub.session_open", "region=%s credit=%u accepted=%zu max_frame=%u", r->code, credit,
             s->n_accepted, s->max_frame);
    return NULL;
}

/* ---- applying a stage in one transaction --------------------------------- */

/* Pack a journal event into the scratch buffer and append it, its
 * envelope sealed if the hub has a payload key (atrest.c). */
int commit_journal_append(hub_t *h, store_txn_t *t, journal_event_t *ev, uint64_t *seq)
{
    ProtobufCBinaryData received;
    int rc = atrest_seal(h, ev, &received);
    size_t need = rc ? 0 : nhub__journal__v1__journal_event__get_packed_size(ev);
    if (!rc && need > h->scratch_cap) {
        uint8_t *p = realloc(h->scratch, need);
        if (p) {
            h->scratch = p;
            h->scratch_cap = need;
        } else {
            rc = NHUB_ENOMEM;
        }
    }
    size_t len = rc ? 0 : nhub__journal__v1__journal_event__pack(ev, h->scratch);
    ev->envelope = received;
    return rc ? rc : store_journal_append(t, h->scratch, len, seq);
}

static void set_nack(struct item *it, int code, int retryable)
{
    it->reply = WIRE_NACK;
    it->code = code;
    it->retryable = retryable;
}

static int apply_reject(hub_t *h, store_txn_t *t, struct item *it, uint64_t sseq, int64_t now)
{
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REJECTED;
    ev.time_ms = now;
    ev.source = h->regions[it->region].code;
    ev.stream_id.data = it->stream_id;
    ev.stream_id.len = 16;
    ev.stream_seq = sseq;
    ev.code = (uint32_t)it->reject;
    ev.reason = it->why;
    ev.key_id = it->key_id;
    ev.fingerprint = it->fpr;
    if (it->env && it->env->msg_id.len == 16) {
        ev.msg_id = it->env->msg_id;
        ev.item = it->env->item;
        ev.destination = it->env->destination;
    }
    uint64_t seq;
    int rc = commit_journal_append(h, t, &ev, &seq);
    if (!rc)
        rc = store_stream_put(t, it->stream_id, sseq, h->regions[it->region].code);
    if (!rc)
        rc = store_reject_put(t, it->stream_id, sseq, (uint32_t)it->reject, seq, now);
    set_nack(it, it->reject, 0);
    return rc;
}

/* Whether region `i` gets a copy: the destination, or for a broadcast every
 * other region the catalogue lets receive the item. */
static int recipient(const hub_t *h, const wire_envelope_t *env, const char *src, size_t i)
{
    const char *code = h->regions[i].code;
    if (strcmp(env->destination, WIRE_BROADCAST) != 0)
        return strcmp(code, env->destination) == 0;
    return strcmp(code, src) != 0 &&
           (!h->catalog || catalog_may_receive(h->catalog, env->item, code));
}

/* Store SEND `it` and queue it. `answered`: the case it answers (checked), or NULL. */
static int apply_accept(hub_t *h, store_txn_t *t, struct item *it, uint64_t sseq, int64_t now,
                        const store_case_t *answered)
{
    const wire_envelope_t *env = it->env;
    const char *src = h->regions[it->region].code;
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED;
    ev.time_ms = now;
    ev.envelope = it->send->envelope;
    ev.msg_id = env->msg_id;
    ev.source = (char *)src;
    ev.destination = env->destination;
    ev.item = env->item;
    ev.payload_type = env->payload_type;
    ev.stream_id.data = it->stream_id;
    ev.stream_id.len = 16;
    ev.stream_seq = sseq;
    ev.signature = it->send->signature;
    ev.key_id = it->key_id;
    ev.fingerprint = it->fpr;
    for (size_t i = 0; i < h->n_regions; i++)
        ev.recipients += (uint32_t)recipient(h, env, src, i);
    store_case_t opened;
    int opens = !answered && cases_opening(h, it, now, &opened);
    if (opens) { /* this event is also the case's opening */
        ev.case_id = env->msg_id;
        ev.case_state = STORE_CASE_OPEN;
        ev.deadline_ms = opened.next_ms;
    }
    uint64_t seq, dseq;
    int broadcast = strcmp(env->destination, WIRE_BROADCAST) == 0;
    store_lane_t lane = {(uint8_t)catalog_priority(h->catalog, env->item), {0}};
    memcpy(lane.source, src, sizeof lane.source);
    uint32_t size = ev.envelope.len > UINT32_MAX ? UINT32_MAX : (uint32_t)ev.envelope.len;
    int rc = commit_journal_append(h, t, &ev, &seq);
    for (size_t i = 0; !rc && i < h->n_regions; i++) {
        if (!recipient(h, env, src, i))
            continue;
        rc = store_queue_put_lane(t, h->regions[i].code, &lane, seq, env->msg_id.data, size,
                                  &dseq);
        if (!rc && broadcast) /* each copy of a broadcast is followed to its confirmation */
            rc = store_tracked_put(t, env->msg_id.data, h->regions[i].code, dseq, 0);
    }
    if (!rc)
        rc = opens      ? cases_open(h, t, &opened, seq)
             : answered ? cases_after_answer(h, t, it, answered, seq, now)
                        : 0;
    if (!rc)
        rc = store_dedup_put(t, env->msg_id.data, seq, now);
    if (!rc)
        rc = store_msgseq_put(t, env->msg_id.data, seq);
    if (!rc)
        rc = store_stream_put(t, it->stream_id, sseq, src);
    it->reply = WIRE_ACK;
    it->r_seq = seq;
    return rc;
}

static void set_conflict(struct item *it, const char *why)
{
    snprintf(it->why, sizeof it->why, "%s; start a new stream", why);
    set_nack(it, NHUB__WIRE__V1__NACK_CODE__NACK_STREAM_CONFLICT, 1);
}

/*
 * A SEND at or below the stream's last stream_seq was decided before: answer
 * it as it was answered then. A message stored under its msg_id is ACKed
 * again; one refused for good is refused again with its code (both for as
 * long as the duplicate window remembers them). Anything else means two
 * writers share the stream (a copied or restored adapter store) or a repeat
 * older than the window: refused, so nothing is ever ACKed that was not stored.
 */
static int apply_repeat(store_txn_t *t, struct item *it)
{
    uint64_t seq = 0;
    uint32_t code = 0;
    int rc = it->env && it->env->msg_id.len == 16 ? store_dedup_get(t, it->env->msg_id.data, &seq)
                                                  : NHUB_ENOTFOUND;
    if (rc == 0) {
        it->reply = WIRE_ACK;
        it->dup = 1;
        it->r_seq = seq;
        return 0;
    }
    if (rc != NHUB_ENOTFOUND)
        return rc;
    rc = store_reject_get(t, it->stream_id, it->send->stream_seq, &code);
    if (rc == 0) {
        if (!it->why[0])
            snprintf(it->why, sizeof it->why, "refused before");
        set_nack(it, (int)code, 0);
        return 0;
    }
    if (rc != NHUB_ENOTFOUND)
        return rc;
    set_conflict(it, "stream_seq was used for another message, or decided longer ago than "
                     "the duplicate window");
    return 0;
}

static int apply_send(hub_t *h, store_txn_t *t, struct item *it, int no_writes, int64_t now)
{
    uint64_t sseq = it->send->stream_seq, last = 0;
    char owner[8];
    int rc = store_stream_get(t, it->stream_id, &last, owner);
    if (rc)
        return rc;
    if (owner[0] && strcmp(owner, h->regions[it->region].code) != 0) {
        set_conflict(it, "stream_id belongs to another region");
        return 0;
    }
    if (sseq == 0) {
        snprintf(it->why, sizeof it->why, "stream_seq must start at 1");
        set_nack(it, NHUB__WIRE__V1__NACK_CODE__NACK_INVALID, 0);
        return 0;
    }
    if (sseq <= last)
        return apply_repeat(t, it);
    if (sseq != last + 1) {
        snprintf(it->why, sizeof it->why, "stream_seq %llu skips ahead; expected %llu",
                 (unsigned long long)sseq, (unsigned long long)(last + 1));
        it->r_expected = last + 1;
        set_nack(it, NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER, 1);
        return 0;
    }
    if (no_writes) {
        snprintf(it->why, sizeof it->why, "store full; nothing stored, retry later");
        set_nack(it, NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL, 1);
        return 0;
    }
    if (it->reject)
        return apply_reject(h, t, it, sseq, now);
    uint64_t seq;
    rc = store_dedup_get(t, it->env->msg_id.data, &seq);
    if (rc == 0) {
        it->reply = WIRE_ACK;
        it->dup = 1;
        it->r_seq = seq;
        return store_stream_put(t, it->stream_id, sseq, h->regions[it->region].code);
    }
    if (rc != NHUB_ENOTFOUND)
        return rc;
    store_case_t answered;
    int answers = 0;
    if ((rc = cases_check_answer(h, t, it, &answered, &answers)))
        return rc;
    if (it->reject)
        return apply_reject(h, t, it, sseq, now);
    return apply_accept(h, t, it, sseq, now, answers ? &answered : NULL);
}

/* A journal event about a delivery of `it`'s message (CONFIRMED, HELD,
 * REDELIVERED): its msg_id, the ACCEPTED record `ref_seq`, the region and dseq. */
static journal_event_t delivery_event(int type, int64_t now, struct item *it, uint64_t ref_seq,
                                      const char *region)
{
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = (Nhub__Journal__V1__EventType)type;
    ev.time_ms = now;
    ev.msg_id.data = it->msg_id;
    ev.msg_id.len = 16;
    ev.ref_seq = ref_seq;
    ev.region = (char *)region;
    ev.dseq = it->dseq;
    return ev;
}

/* A DELIVERED takes the message off the queue (and off the held list, if it
 * waited there before) with a journal event. */
static int apply_confirm(hub_t *h, store_txn_t *t, struct item *it, int64_t now)
{
    const char *code = h->regions[it->region].code;
    uint64_t seq;
    int rc = store_queue_remove(t, code, it->dseq, it->msg_id, &seq);
    if (rc == NHUB_ENOTFOUND)
        return 0;            /* already confirmed: a repeat */
    if (rc == NHUB_EINVAL) { /* another message holds that dseq: not this one */
        it->mismatch = 1;
        return 0;
    }
    if (rc)
        return rc;
    rc = store_held_remove(t, code, it->dseq);
    it->released = rc == 0;
    if (rc && rc != NHUB_ENOTFOUND)
        return rc;
    journal_event_t ev =
        delivery_event(NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIRMED, now, it, seq, code);
    ev.sends = it->sends;
    ev.first_sent_ms = it->first_sent_ms;
    uint64_t jseq;
    rc = commit_journal_append(h, t, &ev, &jseq);
    if (!rc)
        rc = cases_on_confirm(h, t, it->msg_id, code, seq, now);
    it->applied = rc == 0;
    return rc;
}

/*
 * A message its region's session cannot take is set aside, not dequeued:
 * an ACKed message stays deliverable. It stays in the queue, the held
 * index records why and since when, and the first hold for a reason is
 * journaled. A later session that takes it (a HELLO restarts the window at
 * the head of the queue) gets it delivered; its DELIVERED clears the hold.
 */
static int apply_hold(hub_t *h, store_txn_t *t, struct item *it, int64_t now)
{
    const char *code = h->regions[it->region].code;
    int rc = store_held_put(t, code, it->dseq, it->hold_reason, now);
    if (rc == NHUB_EEXIST)
        return 0; /* held for that reason before: journaled then */
    if (rc)
        return rc;
    char why[160];
    if (it->hold_reason == STORE_HELD_TOO_LARGE)
        snprintf(why, sizeof why,
                 "a DELIVER of %u bytes exceeds the max_frame the destination announced",
                 it->hold_size);
    else
        snprintf(why, sizeof why, "payload type not accepted by the destination");
    journal_event_t ev =
        delivery_event(NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HELD, now, it, it->seq, code);
    ev.code = it->hold_reason;
    ev.reason = why;
    uint64_t jseq;
    rc = commit_journal_append(h, t, &ev, &jseq);
    it->applied = rc == 0;
    return rc;
}

/* A resend the hub made (deliver.c redeliver): journaled, nothing else changes. */
static int apply_redeliver(hub_t *h, store_txn_t *t, struct item *it, int64_t now)
{
    journal_event_t ev = delivery_event(NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REDELIVERED, now,
                                        it, it->seq, h->regions[it->region].code);
    ev.sends = it->sends;
    uint64_t jseq;
    return commit_journal_append(h, t, &ev, &jseq);
}

/* A frame refused on the spot (reply_journal_wire): journaled. */
static int apply_refused(hub_t *h, store_txn_t *t, struct item *it, int64_t now)
{
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REFUSED_WIRE;
    ev.time_ms = now;
    ev.code = (uint32_t)it->code;
    ev.reason = it->why;
    if (it->region >= 0)
        ev.source = h->regions[it->region].code;
    ev.not_journaled = it->not_journaled;
    uint64_t jseq;
    return commit_journal_append(h, t, &ev, &jseq);
}

static int apply_item(hub_t *h, store_txn_t *t, struct item *it, int no_writes, int64_t now)
{
    it->reply = 0;
    it->dup = 0;
    it->applied = 0;
    it->released = 0;
    it->mismatch = 0;
    switch (it->type) {
    case ITEM_SEND: return apply_send(h, t, it, no_writes, now);
    case ITEM_HELLO: {
        char owner[8];
        int rc = store_stream_get(t, it->stream_id, &it->r_stream_last, owner);
        it->reply = WIRE_WELCOME;
        if (!rc && owner[0] && strcmp(owner, h->regions[it->region].code) != 0)
            set_conflict(it, "stream_id belongs to another region");
        return rc;
    }
    case ITEM_CONFIRM: return apply_confirm(h, t, it, now);
    case ITEM_HOLD: return apply_hold(h, t, it, now);
    case ITEM_HEARTBEAT: it->reply = WIRE_HEARTBEAT; return 0;
    /* A full store keeps its reserve for confirmations: a resend is not
     * journaled then (its CONFIRMED still says how many sends it took), a
     * refusal is counted in the next REFUSED_WIRE record's not_journaled. */
    case ITEM_REDELIVER: return no_writes ? 0 : apply_redeliver(h, t, it, now);
    case ITEM_REFUSED:
        if (no_writes) {
            h->wire_unjournaled += it->not_journaled + 1;
            return 0;
        }
        return apply_refused(h, t, it, now);
    }
    return NHUB_EINVAL;
}

/*
 * What committing a stage of n items with `bytes` of SEND bodies may add to
 * the map: each body once in the journal, the pages the B-trees split and
 * copy, and the indexes' entries. Generous on purpose: growing the map is
 * cheap, replaying a stage is not.
 */
static uint64_t stage_room(size_t n, uint64_t bytes)
{
    return 2 * bytes + (uint64_t)n * 1024 + ((uint64_t)1 << 20);
}

/*
 * Apply the whole stage in one transaction. The map is grown ahead of it to
 * hold what the stage may write; should it still fill up: grow and replay;
 * at the limit, replay without storing new messages (they get NACK
 * STORE_FULL) so confirmations still go through.
 */
static int apply_stage(hub_t *h, struct item *items, size_t n, uint64_t bytes)
{
    int no_writes = h->full, fire = 1;
    int64_t t0 = hub_now_us();
    int64_t now = clock_wall_ms(h->clock);
    /* A stage whose messages would eat into the reserve kept for
     * confirmations stores none of them (NACK STORE_FULL, retryable): the
     * store is full from now on, as hub_check_space sees it too. */
    if (!no_writes && !hub_room_for(h, 2 * bytes + (uint64_t)n * 1024)) {
        h->n.store_full++;
        log_warn("hub.store_full", "reason=stage items=%zu bytes=%" PRIu64, n, bytes);
        h->full = 1;
        no_writes = 1;
    }
    if (!no_writes && store_reserve(h->store, stage_room(n, bytes)) == NHUB_ESTORE)
        log_error("hub.reserve_failed", "items=%zu bytes=%" PRIu64, n, bytes);
    for (;;) {
        store_txn_t *t = NULL;
        int64_t next_deadline = INT64_MAX;
        size_t fired = 0;
        cases_txn_begin(h);
        int rc = store_begin(h->store, &t);
        for (size_t i = 0; !rc && i < n; i++)
            rc = apply_item(h, t, &items[i], no_writes, now);
        size_t expired = 0;
        if (!rc)
            rc = store_window_expire(t, now - h->cfg->limits.dedup_window_ms,
                                     HUB_WINDOW_EXPIRE_MIN + 2 * n, &expired);
        /* Deadlines fire in a full store too: they answer requesters. */
        if (!rc && fire && h->cases_next_ms <= now)
            rc = cases_fire(h, t, now, n ? CASES_FIRE_BUSY : CASES_FIRE_MAX, &fired);
        if (!rc)
            rc = store_deadline_first(t, &next_deadline);
        if (!rc && !no_writes)
            rc = checkpoint_maybe(h, t, now, 0);
        if (!rc)
            rc = store_commit(&t);
        else
            store_abort(&t);
        checkpoint_committed(h, rc == 0);
        if (rc == 0) {
            h->n.commits++;
            h->n.committed_items += n;
            metrics_hist_observe(&h->commit_seconds, (double)(hub_now_us() - t0) / 1e6);
            metrics_hist_observe(&h->commit_items, (double)n);
            metrics_hist_observe(&h->commit_bytes, (double)bytes);
            /* Deadlines left unfired for want of room are tried again a
             * second later, not on every turn. */
            cases_committed(h, fire || next_deadline > now ? next_deadline
                                                           : now + HUB_HOUSEKEEPING_MS);
            return 0;
        }
        if (rc == NHUB_EFULL && store_grow(h->store) == 0) {
            h->n.replays++;
            continue;
        }
        if (rc == NHUB_EFULL && !no_writes) {
            h->n.store_full++;
            if (!h->full) /* found by a commit before hub_check_space saw it coming */
                log_warn("hub.store_full", "reason=commit items=%zu bytes=%" PRIu64, n, bytes);
            h->full = 1;
            no_writes = 1;
            continue;
        }
        if (rc == NHUB_EFULL && fire) { /* confirmations go first; deadlines wait for room */
            fire = 0;
            continue;
        }
        return rc;
    }
}

/*
 * The stage could not be committed at all: nothing was stored. The sessions
 * whose DELIVEREDs were in it are closed, so that no later HEARTBEAT answer
 * of theirs vouches for those (their adapters say HELLO again and resend).
 */
static void fail_stage(hub_t *h, struct item *items, size_t n, int rc)
{
    int code = rc == NHUB_EFULL ? NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL
                                : NHUB__WIRE__V1__NACK_CODE__NACK_STORE_ERROR;
    log_error("hub.commit_failed", "error=\"%s\" items=%zu", nhub_strerror(rc), n);
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        it->applied = 0;
        it->reply = 0;
        session_t *s = it->type == ITEM_CONFIRM ? session_find(h->sessions, it->rid, it->rid_len)
                                                : NULL;
        if (s)
            deliver_session_close(h, s, "commit failed");
        if (it->type == ITEM_SEND || it->type == ITEM_HELLO) {
            snprintf(it->why, sizeof it->why, "%s; nothing stored, retry later", nhub_strerror(rc));
            set_nack(it, code, 1);
        }
    }
}

static void reply(hub_t *h, struct item *it)
{
    const uint8_t *msg_id = it->env && it->env->msg_id.len == 16 ? it->env->msg_id.data : NULL;
    uint64_t sseq = it->send ? it->send->stream_seq : 0;
    if (it->reply == WIRE_ACK) {
        wire_ack_t ack = NHUB__WIRE__V1__ACK__INIT;
        if (msg_id) {
            ack.msg_id.data = (uint8_t *)msg_id;
            ack.msg_id.len = 16;
        }
        ack.seq = it->r_seq;
        ack.stream_seq = sseq;
        ack.duplicate = it->dup;
        if (it->dup)
            h->n.duplicates++;
        else
            h->n.accepted++;
        if (!it->dup && it->region >= 0)
            h->regions[it->region].st.accepted++;
        if (!it->dup && it->env)
            api_note_item(h, it->env->item, 1);
        metrics_hist_observe(&h->ack_latency, (double)(hub_now_us() - it->recv_us) / 1e6);
        reply_sent(h,
                   wire_send(h->router, it->rid, it->rid_len, WIRE_ACK, &ack.base, ZMQ_DONTWAIT));
    } else if (it->reply == WIRE_NACK) {
        if (it->code != NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER &&
            it->code != NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL)
            reply_log_refusal(h, it->code, it->region >= 0 ? h->regions[it->region].code : NULL, msg_id,
                        it->why);
        if (it->type == ITEM_SEND && !it->retryable) {
            h->n.rejected++;
            api_note_item(h, it->env ? it->env->item : "", 0);
        }
        if (reply_is_security(it->code))
            h->n.security_events++;
        reply_nack(h, it->rid, it->rid_len, it->code, it->retryable, msg_id, sseq, it->r_expected,
                  it->why);
    } else if (it->reply == WIRE_WELCOME) {
        wire_welcome_t w = NHUB__WIRE__V1__WELCOME__INIT;
        w.protocol_version = WIRE_VERSION;
        w.hub_id.data = (uint8_t *)store_hub_id(h->store);
        w.hub_id.len = STORE_ID_LEN;
        w.stream_last = it->r_stream_last;
        w.max_frame = (uint32_t)h->cfg->limits.max_frame;
        w.heartbeat_ms = (uint32_t)h->cfg->limits.heartbeat_ms;
        reply_sent(h,
                   wire_send(h->router, it->rid, it->rid_len, WIRE_WELCOME, &w.base, ZMQ_DONTWAIT));
    } else if (it->reply == WIRE_HEARTBEAT && session_find(h->sessions, it->rid, it->rid_len)) {
        reply_heartbeat(h, it->rid, it->rid_len, it->seq); /* not for a session closed since */
    }
}

static void verify_chunk(void *arg, size_t begin, size_t end)
{
    hub_t *h = arg;
    for (size_t i = begin; i < end; i++) {
        struct item *it = &h->verify_items[h->verify_idx[i]];
        it->reject = auth_verify(h->auth, it->region, it->key_id, it->send->envelope.data,
                                 it->send->envelope.len, it->send->signature.data,
                                 it->send->signature.len, h->verify_now, it->why, sizeof it->why);
    }
}

/* Start checking the signatures of the SENDs of `items` that passed every
 * other check, on the worker threads; each item is touched by one thread,
 * and nothing else touches these items until workers_wait(). */
static void verify_start(hub_t *h, struct item *items, size_t n_items)
{
    size_t n = 0;
    for (size_t i = 0; i < n_items; i++) {
        struct item *it = &items[i];
        if (it->verify && !it->reject)
            h->verify_idx[n++] = i;
        it->verify = 0;
    }
    h->verify_items = items;
    h->verify_now = clock_wall_ms(h->clock);
    workers_start(h->workers, verify_chunk, h, n, HUB_VERIFY_CHUNK);
}

static const char *hold_reason_name(uint32_t reason)
{
    return reason == STORE_HELD_TOO_LARGE ? "too_large_for_receiver" : "awaiting_version";
}

/* A message newly set aside: counted and logged (ids and sizes only). */
static void hold_logged(hub_t *h, const struct item *it)
{
    char hex[33];
    h->n.held++;
    log_warn("hub.held", "region=%s dseq=%llu msg_id=%s reason=%s size=%u",
             h->regions[it->region].code, (unsigned long long)it->dseq,
             log_hex(hex, sizeof hex, it->msg_id, 16), hold_reason_name(it->hold_reason),
             it->hold_size);
}

/* Answer committed (or failed) items and update RAM state. */
static void finish_items(hub_t *h, struct item *items, size_t n, int rc)
{
    int stored = 0;
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        if (it->type == ITEM_HELLO && it->reply == WIRE_WELCOME) {
            const char *why = hello_apply(h, it);
            if (why) {
                snprintf(it->why, sizeof it->why, "%s", why);
                set_nack(it, NHUB__WIRE__V1__NACK_CODE__NACK_INVALID, 1);
            }
        }
        reply(h, it);
        if (it->type == ITEM_SEND && it->reply == WIRE_ACK && !it->dup) {
            stored = 1;
            if (strcmp(it->env->destination, WIRE_BROADCAST) == 0) {
                for (size_t r = 0; r < h->n_regions; r++)
                    h->regions[r].pending = 1;
            } else {
                int r = hub_region_lookup(h, it->env->destination);
                if (r >= 0)
                    h->regions[r].pending = 1;
            }
        }
        /* After a failed commit the message is still queued: keep it in
         * flight so it is delivered again and confirmed again. */
        if (it->type == ITEM_CONFIRM && rc == 0 && !it->mismatch) {
            int64_t origin = 0;
            struct hub_region *r = &h->regions[it->region];
            if (dispatch_confirm_origin(r->window, it->dseq, &origin) == 0 && origin > 0 &&
                it->applied)
                metrics_hist_observe(&h->e2e_latency,
                                     (double)(clock_wall_ms(h->clock) - origin) / 1e3);
            h->n.confirmed += it->applied;
            r->st.confirmed += it->applied;
        }
        if (it->mismatch)
            reply_log_refusal(h, NHUB__WIRE__V1__NACK_CODE__NACK_INVALID, h->regions[it->region].code,
                        it->msg_id, "DELIVERED names a msg_id that is not at that dseq");
        if (it->type == ITEM_HOLD && it->applied && rc == 0)
            hold_logged(h, it);
        if (it->type == ITEM_CONFIRM && it->released && rc == 0)
            h->n.released++;
        ingress_item_clear(it);
    }
    if (stored)
        hub_check_space(h);
}

/*
 * One step of the two-stage pipeline: the ready stage (its signatures
 * checked meanwhile) is committed and answered, and the stage just filled
 * becomes ready, its signatures checked on the worker threads while the
 * ready one waits for its fsync. Signature checks thus overlap the commit
 * instead of adding to it. Answers keep the order of the frames.
 */
void commit_flush_stage(hub_t *h)
{
    struct item *prev = h->ready, *cur = h->items;
    size_t n_prev = h->n_ready, n_cur = h->n_items;
    if (n_prev == 0 && n_cur == 0) {
        /* Nothing staged: deadlines that came due are fired on their own. */
        int64_t now = clock_wall_ms(h->clock);
        if (h->cases_next_ms <= now && apply_stage(h, NULL, 0, 0) != 0) {
            log_error("hub.cases_fire_failed", "retry_in_ms=%d", HUB_BLOCKED_RETRY_MS * 20);
            h->cases_next_ms = now + HUB_BLOCKED_RETRY_MS * 20;
        }
        return;
    }
    workers_wait(h->workers); /* the ready stage's checks are done */
    verify_start(h, cur, n_cur);
    if (n_prev) {
        int rc = apply_stage(h, prev, n_prev, h->ready_bytes);
        if (rc)
            fail_stage(h, prev, n_prev, rc);
        finish_items(h, prev, n_prev, rc);
    }
    h->ready = cur;
    h->n_ready = n_cur;
    h->stage_gen++; /* a new stage: every connection has its share again */
    h->ready_bytes = h->items_bytes;
    h->items = prev;
    h->n_items = 0;
    h->items_bytes = 0;
}

/* Commit and answer everything staged (before a reload, at the stop). */
void commit_flush_all(hub_t *h)
{
    while (h->n_items || h->n_ready)
        commit_flush_stage(h);
}
