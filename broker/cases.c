/*
 * cases.c: cases with time limits inside the hub's write transaction (see
 * cases.h). The state machine is the three small functions at the top;
 * the rest writes what a transition means into the store and the journal.
 */
#include "hub_internal.h"

#include "nhub/case/v1/case.pb-c.h"
#include "nhub/common/v1/common.pb-c.h"

#include <openssl/evp.h>

/* ---- the state machine ------------------------------------------------------- */

/* An open case's state: the furthest point it went through. */
static uint8_t open_state(uint8_t flags)
{
    if (flags & STORE_CASE_F_OVERDUE)
        return STORE_CASE_OVERDUE;
    if (flags & STORE_CASE_F_REMINDED)
        return STORE_CASE_REMINDED;
    if (flags & STORE_CASE_F_HANDLING)
        return STORE_CASE_HANDLING;
    if (flags & STORE_CASE_F_DELIVERED)
        return STORE_CASE_DELIVERED;
    return STORE_CASE_OPEN;
}

/* The deadline an open case waits for next; 0 once closed. */
static int64_t next_deadline(const store_case_t *c)
{
    if (store_case_closed(c->state))
        return 0;
    if (!(c->flags & (STORE_CASE_F_REMINDED | STORE_CASE_F_OVERDUE)) && c->remind_ms < c->due_ms)
        return c->remind_ms;
    if (!(c->flags & STORE_CASE_F_OVERDUE))
        return c->due_ms;
    return c->expire_ms;
}

/* What passing deadlines at `now` makes of an open case: the furthest point
 * passed. Returns the journal event type, or 0 if none has passed. */
static int deadline_event(const store_case_t *c, int64_t now)
{
    if (now >= c->expire_ms)
        return NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_EXPIRED;
    if (now >= c->due_ms && !(c->flags & STORE_CASE_F_OVERDUE))
        return NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_OVERDUE;
    if (now >= c->remind_ms && !(c->flags & (STORE_CASE_F_REMINDED | STORE_CASE_F_OVERDUE)))
        return NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_REMINDED;
    return 0;
}

/* ---- helpers ----------------------------------------------------------------- */

int cases_item_has_cases(const hub_t *h, const char *item)
{
    catalog_times_t tm;
    return h->catalog && catalog_times(h->catalog, item, &tm) == 0 && tm.time_limit_ms > 0;
}

static void hex_id(char out[33], const uint8_t id[16])
{
    log_hex(out, 33, id, 16);
}

void cases_txn_begin(hub_t *h)
{
    memset(&h->case_tally, 0, sizeof h->case_tally);
    h->n_case_notes = 0;
    for (size_t i = 0; i < h->n_regions; i++)
        h->regions[i].notified = 0;
}

void cases_committed(hub_t *h, int64_t next_ms)
{
    const struct case_tally *k = &h->case_tally;
    h->n.cases_opened += k->opened;
    h->n.cases_delivered += k->delivered;
    h->n.cases_reminded += k->reminded;
    h->n.cases_overdue += k->overdue;
    h->n.cases_answered += k->answered;
    h->n.cases_refused += k->refused;
    h->n.cases_expired += k->expired;
    h->n.hub_messages += k->notices;
    for (size_t i = 0; i < h->n_regions; i++)
        if (h->regions[i].notified) {
            h->regions[i].pending = 1;
            h->regions[i].notified = 0;
        }
    h->cases_next_ms = next_ms;
    api_note_cases(h);
    if (k->overdue || k->expired)
        log_info("hub.cases_fired", "reminded=%u overdue=%u expired=%u next_in_ms=%lld",
                 k->reminded, k->overdue, k->expired,
                 next_ms == INT64_MAX ? -1LL : (long long)(next_ms - clock_wall_ms(h->clock)));
    memset(&h->case_tally, 0, sizeof h->case_tally);
}

/* Journal a transition of case `c` (already changed); the event joins its timeline. */
static int journal_transition(hub_t *h, store_txn_t *t, const store_case_t *c, int type,
                              const uint8_t *msg_id, uint64_t ref_seq, int64_t now)
{
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = type;
    ev.time_ms = now;
    ev.case_id = (ProtobufCBinaryData){16, (uint8_t *)c->id};
    if (msg_id)
        ev.msg_id = (ProtobufCBinaryData){16, (uint8_t *)msg_id};
    ev.case_state = c->state;
    ev.item = (char *)c->item;
    ev.source = (char *)c->requester;
    ev.destination = (char *)c->handler;
    ev.ref_seq = ref_seq;
    ev.deadline_ms = c->next_ms;
    ev.valid_until_ms = c->valid_until_ms;
    ev.stage = c->stage;
    uint64_t seq;
    int rc = commit_journal_append(h, t, &ev, &seq);
    if (!rc && http_streams(h->http) && h->n_case_notes < HUB_CASE_NOTES_MAX) {
        struct hub_case_note *n = &h->case_notes[h->n_case_notes++];
        memcpy(n->id, c->id, 16);
        n->type = type;
        n->state = c->state;
        snprintf(n->item, sizeof n->item, "%s", c->item);
        snprintf(n->requester, sizeof n->requester, "%s", c->requester);
        snprintf(n->handler, sizeof n->handler, "%s", c->handler);
    }
    return rc ? rc : store_case_event(t, c->id, seq);
}

/* The msg_id of the notice `event` about case `id` to `dest`: the same
 * every time, so a replayed transaction or a restart makes no second one.
 * A reminder by hand has the journal seq of the operator's action as
 * `nonce` (0 otherwise): each is a notice of its own. */
static int notice_id(const uint8_t id[16], int event, const char *dest, uint64_t nonce,
                     uint8_t out[16])
{
    uint8_t in[16 + 1 + 6 + 9 + 8], md[32];
    unsigned int n = 0;
    memcpy(in, "nhub.case", 9);
    memcpy(in + 9, id, 16);
    in[25] = (uint8_t)event;
    memcpy(in + 26, dest, 6);
    for (int i = 0; i < 8; i++)
        in[32 + i] = (uint8_t)(nonce >> (56 - 8 * i));
    if (EVP_Digest(in, nonce ? sizeof in : sizeof in - 8, md, &n, store_sha256(), NULL) != 1)
        return NHUB_ECRYPTO;
    memcpy(out, md, 16);
    return 0;
}

static const char *notice_text(int event)
{
    switch (event) {
    case NHUB__CASE__V1__EVENT__EVENT_REMINDER: return "reminder: the time limit is near";
    case NHUB__CASE__V1__EVENT__EVENT_OVERDUE: return "overdue: the time limit has passed";
    default: return "no answer within the time limit";
    }
}

/*
 * Make, journal and queue the hub's notice `event` about case `c` for
 * `dest`. A region no longer configured gets none (logged). The EXPIRED
 * notice to the requester is its final answer: kind response for a
 * request, feedback for a push; the others are notices.
 */
static int hub_message_n(hub_t *h, store_txn_t *t, const store_case_t *c, int event,
                         const char *dest, uint64_t nonce, int64_t now)
{
    int r = hub_region_lookup(h, dest);
    char hex[33];
    if (r < 0) {
        log_warn("hub.case_notice_unroutable", "case=%s region=%s", (hex_id(hex, c->id), hex),
                 dest);
        return 0;
    }
    Nhub__Case__V1__CaseNotice n = NHUB__CASE__V1__CASE_NOTICE__INIT;
    n.event = event;
    n.case_id = (ProtobufCBinaryData){16, (uint8_t *)c->id};
    n.item = (char *)c->item;
    n.requester = (char *)c->requester;
    n.handler = (char *)c->handler;
    n.opened_ms = c->opened_ms;
    n.due_ms = c->due_ms;
    n.expires_ms = c->expire_ms;
    n.text = (char *)notice_text(event);
    uint8_t payload[512], env_buf[1024], id[16];
    if (protobuf_c_message_get_packed_size(&n.base) > sizeof payload)
        return NHUB_EINVAL;
    size_t plen = protobuf_c_message_pack(&n.base, payload);
    int rc = notice_id(c->id, event, dest, nonce, id);
    if (rc)
        return rc;
    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id = (ProtobufCBinaryData){16, id};
    e.source = h->cfg->hub.region;
    e.destination = (char *)dest;
    e.item = (char *)c->item;
    e.kind = NHUB__WIRE__V1__KIND__KIND_NOTICE;
    if (event == NHUB__CASE__V1__EVENT__EVENT_EXPIRED && strcmp(dest, c->requester) == 0)
        e.kind = c->kind == NHUB__WIRE__V1__KIND__KIND_PUSH ? NHUB__WIRE__V1__KIND__KIND_FEEDBACK
                                                            : NHUB__WIRE__V1__KIND__KIND_RESPONSE;
    e.correlation_id = (ProtobufCBinaryData){16, (uint8_t *)c->id};
    e.created_ms = now;
    e.deadline_ms = event == NHUB__CASE__V1__EVENT__EVENT_REMINDER ? c->due_ms : c->expire_ms;
    e.payload_type = CASES_NOTICE_TYPE;
    e.payload = (ProtobufCBinaryData){plen, payload};
    if (protobuf_c_message_get_packed_size(&e.base) > sizeof env_buf)
        return NHUB_EINVAL;
    size_t elen = protobuf_c_message_pack(&e.base, env_buf);

    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_MESSAGE;
    ev.time_ms = now;
    ev.envelope = (ProtobufCBinaryData){elen, env_buf};
    ev.msg_id = e.msg_id;
    ev.case_id = e.correlation_id;
    ev.source = h->cfg->hub.region;
    ev.destination = (char *)dest;
    ev.item = (char *)c->item;
    ev.payload_type = CASES_NOTICE_TYPE;
    ev.recipients = 1;
    uint64_t seq, dseq;
    /* A notice about a case goes in the class of its item, from the hub. */
    store_lane_t lane = {(uint8_t)catalog_priority(h->catalog, c->item), {0}};
    memcpy(lane.source, h->cfg->hub.region, sizeof lane.source);
    rc = commit_journal_append(h, t, &ev, &seq);
    if (!rc)
        rc = store_queue_put_lane(t, dest, &lane, seq, id, (uint32_t)elen, &dseq);
    if (!rc)
        rc = store_case_event(t, c->id, seq);
    if (!rc) {
        h->regions[r].notified = 1;
        h->case_tally.notices++;
    }
    return rc;
}

static int hub_message(hub_t *h, store_txn_t *t, const store_case_t *c, int event,
                       const char *dest, int64_t now)
{
    return hub_message_n(h, t, c, event, dest, 0, now);
}

int cases_remind(hub_t *h, store_txn_t *t, const uint8_t id[16], uint64_t ref_seq, int64_t now)
{
    store_case_t old, c;
    int rc = store_case_get(t, id, &old);
    if (rc)
        return rc;
    if (store_case_closed(old.state))
        return NHUB_EEXIST;
    c = old;
    c.flags |= STORE_CASE_F_REMINDED;
    c.state = open_state(c.flags);
    c.next_ms = next_deadline(&c);
    if ((rc = store_case_put(t, &old, &c)) ||
        (rc = journal_transition(h, t, &c, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_REMINDED,
                                 NULL, ref_seq, now)))
        return rc;
    h->case_tally.reminded++;
    return hub_message_n(h, t, &c, NHUB__CASE__V1__EVENT__EVENT_REMINDER, c.handler, ref_seq, now);
}

/* ---- opening and answering ------------------------------------------------------ */

static int refuse(struct item *it, int code, const char *fmt, const char *a, const char *b)
{
    it->reject = code;
    snprintf(it->why, sizeof it->why, fmt, a, b);
    return 0;
}

int cases_check_answer(hub_t *h, store_txn_t *t, struct item *it, store_case_t *c, int *answers)
{
    const wire_envelope_t *e = it->env;
    *answers = 0;
    if ((e->kind != NHUB__WIRE__V1__KIND__KIND_RESPONSE &&
         e->kind != NHUB__WIRE__V1__KIND__KIND_FEEDBACK) ||
        !cases_item_has_cases(h, e->item))
        return 0;
    const int unknown = NHUB__WIRE__V1__NACK_CODE__NACK_CASE_UNKNOWN;
    const char *kind = e->kind == NHUB__WIRE__V1__KIND__KIND_RESPONSE ? "response" : "feedback";
    if (e->correlation_id.len != 16)
        return refuse(it, unknown, "a %s of item %s must name its case in correlation_id", kind,
                      e->item);
    char hex[33];
    hex_id(hex, e->correlation_id.data);
    int rc = store_case_get(t, e->correlation_id.data, c);
    if (rc == NHUB_ENOTFOUND || (rc == 0 && strcmp(c->item, e->item) != 0))
        return refuse(it, unknown, "no case %s of item %s", hex, e->item);
    if (rc)
        return rc;
    int want = c->kind == NHUB__WIRE__V1__KIND__KIND_PUSH ? NHUB__WIRE__V1__KIND__KIND_FEEDBACK
                                                         : NHUB__WIRE__V1__KIND__KIND_RESPONSE;
    if ((int)e->kind != want)
        return refuse(it, unknown, "case %s is answered with %s", hex,
                      want == NHUB__WIRE__V1__KIND__KIND_FEEDBACK ? "feedback" : "a response");
    if (strcmp(c->handler, h->regions[it->region].code) != 0)
        return refuse(it, NHUB__WIRE__V1__NACK_CODE__NACK_CASE_NOT_HANDLER,
                      "case %s is handled by region %s", hex, c->handler);
    if (strcmp(c->requester, e->destination) != 0)
        return refuse(it, NHUB__WIRE__V1__NACK_CODE__NACK_CASE_NOT_HANDLER,
                      "case %s was opened by region %s: the answer goes there", hex, c->requester);
    if (store_case_closed(c->state))
        return refuse(it, NHUB__WIRE__V1__NACK_CODE__NACK_CASE_CLOSED, "case %s is %s", hex,
                      store_case_state_name(c->state));
    *answers = 1;
    return 0;
}

int cases_opening(const hub_t *h, const struct item *it, int64_t now, store_case_t *c)
{
    const wire_envelope_t *e = it->env;
    catalog_times_t tm;
    if ((e->kind != NHUB__WIRE__V1__KIND__KIND_REQUEST &&
         e->kind != NHUB__WIRE__V1__KIND__KIND_PUSH) ||
        strcmp(e->destination, WIRE_BROADCAST) == 0 || !h->catalog ||
        catalog_times(h->catalog, e->item, &tm) != 0 || tm.time_limit_ms <= 0)
        return 0;
    memset(c, 0, sizeof *c);
    memcpy(c->id, e->msg_id.data, 16);
    c->state = STORE_CASE_OPEN;
    c->kind = (uint8_t)e->kind;
    memcpy(c->requester, h->regions[it->region].code, 6); /* both checked six digits */
    memcpy(c->handler, e->destination, 6);
    memcpy(c->item, e->item, strnlen(e->item, sizeof c->item - 1)); /* checked: at most 64 */
    c->opened_ms = now;
    c->remind_ms = now + (tm.reminder_ms > 0 ? tm.reminder_ms : tm.time_limit_ms);
    c->due_ms = now + tm.time_limit_ms;
    c->expire_ms = c->due_ms + tm.grace_ms;
    c->next_ms = next_deadline(c);
    return 1;
}

int cases_open(hub_t *h, store_txn_t *t, store_case_t *c, uint64_t seq)
{
    c->request_seq = seq; /* the ACCEPTED event that opened it: its timeline's first */
    int rc = store_case_put(t, NULL, c);
    if (!rc)
        h->case_tally.opened++;
    return rc;
}

int cases_after_answer(hub_t *h, store_txn_t *t, const struct item *it, const store_case_t *old,
                       uint64_t seq, int64_t now)
{
    const wire_envelope_t *e = it->env;
    store_case_t c = *old;
    int type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_ANSWERED;
    if (e->kind == NHUB__WIRE__V1__KIND__KIND_FEEDBACK && it->stage >= 0) {
        c.stage = (uint8_t)it->stage;
        if (it->stage == NHUB__COMMON__V1__STAGE__STAGE_REFUSED)
            type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_REFUSED;
        else if (it->stage != NHUB__COMMON__V1__STAGE__STAGE_DONE)
            type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_HANDLING;
    }
    if (type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_HANDLING) {
        c.flags |= STORE_CASE_F_HANDLING;
        c.state = open_state(c.flags);
    } else {
        catalog_times_t tm;
        catalog_times(h->catalog, c.item, &tm);
        c.state = type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_REFUSED ? STORE_CASE_REFUSED
                                                                           : STORE_CASE_ANSWERED;
        c.closed_ms = now;
        c.answer_seq = seq;
        if (c.state == STORE_CASE_ANSWERED && tm.answer_valid_ms > 0)
            c.valid_until_ms = now + tm.answer_valid_ms;
    }
    c.next_ms = next_deadline(&c);
    int rc = store_case_put(t, old, &c);
    if (!rc)
        rc = store_case_event(t, c.id, seq);
    if (!rc)
        rc = journal_transition(h, t, &c, type, e->msg_id.data, seq, now);
    if (!rc) {
        h->case_tally.answered += c.state == STORE_CASE_ANSWERED;
        h->case_tally.refused += c.state == STORE_CASE_REFUSED;
    }
    return rc;
}

int cases_on_confirm(hub_t *h, store_txn_t *t, const uint8_t msg_id[16], const char *region,
                     uint64_t seq, int64_t now)
{
    uint8_t flags = 0;
    int rc = store_tracked_confirm(t, msg_id, region, now, &flags);
    if (rc != NHUB_ENOTFOUND) /* a copy of a broadcast (no case), or an error */
        return rc == NHUB_EEXIST ? 0 : rc;
    store_case_t old, c;
    rc = store_case_get(t, msg_id, &old);
    if (rc)
        return rc == NHUB_ENOTFOUND ? 0 : rc;
    if (store_case_closed(old.state) || (old.flags & STORE_CASE_F_DELIVERED) ||
        strcmp(old.handler, region) != 0)
        return 0;
    c = old;
    c.flags |= STORE_CASE_F_DELIVERED;
    c.state = open_state(c.flags);
    rc = store_case_put(t, &old, &c);
    if (!rc)
        rc = journal_transition(h, t, &c, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_DELIVERED,
                                msg_id, seq, now);
    if (!rc)
        h->case_tally.delivered++;
    return rc;
}

/* ---- deadlines -------------------------------------------------------------------- */

/* Log an overdue or expired case for the operators, at most a few a second. */
static void log_late(hub_t *h, const store_case_t *c, const char *what)
{
    int64_t sec = hub_now_mono(h) / 1000;
    if (sec != h->late_log_sec) {
        if (h->late_log_suppressed)
            log_warn("hub.case_late_suppressed", "n=%llu",
                     (unsigned long long)h->late_log_suppressed);
        h->late_log_sec = sec;
        h->late_log_n = 0;
        h->late_log_suppressed = 0;
    }
    if (h->late_log_n++ >= 10) {
        h->late_log_suppressed++;
        return;
    }
    char hex[33];
    log_warn(what, "case=%s item=%s requester=%s handler=%s state=%s", (hex_id(hex, c->id), hex),
             c->item, c->requester, c->handler, store_case_state_name(c->state));
}

static int fire_one(hub_t *h, store_txn_t *t, const uint8_t id[16], int64_t at, int64_t now)
{
    store_case_t old, c;
    int rc = store_case_get(t, id, &old);
    if (rc == NHUB_ENOTFOUND || (rc == 0 && old.next_ms != at)) {
        /* An entry its case does not point at: never fired, only removed. */
        log_error("hub.case_deadline_stale", "at=%lld", (long long)at);
        return store_deadline_remove(t, at, id);
    }
    if (rc)
        return rc;
    int type = store_case_closed(old.state) ? 0 : deadline_event(&old, now);
    c = old;
    if (type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_EXPIRED) {
        c.state = STORE_CASE_EXPIRED;
        c.closed_ms = now;
    } else if (type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_OVERDUE) {
        c.flags |= STORE_CASE_F_OVERDUE;
        c.state = open_state(c.flags);
    } else if (type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_REMINDED) {
        c.flags |= STORE_CASE_F_REMINDED;
        c.state = open_state(c.flags);
    }
    c.next_ms = next_deadline(&c);
    if (!type && c.next_ms == old.next_ms) /* due by its key, not by its case: cannot be */
        return store_deadline_remove(t, at, id);
    rc = store_case_put(t, &old, &c);
    if (rc || !type)
        return rc;
    rc = journal_transition(h, t, &c, type, NULL, 0, now);
    if (rc)
        return rc;
    switch (type) {
    case NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_REMINDED:
        h->case_tally.reminded++;
        return hub_message(h, t, &c, NHUB__CASE__V1__EVENT__EVENT_REMINDER, c.handler, now);
    case NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CASE_OVERDUE:
        h->case_tally.overdue++;
        log_late(h, &c, "hub.case_overdue");
        rc = hub_message(h, t, &c, NHUB__CASE__V1__EVENT__EVENT_OVERDUE, c.requester, now);
        return rc ? rc : hub_message(h, t, &c, NHUB__CASE__V1__EVENT__EVENT_OVERDUE, c.handler, now);
    default:
        h->case_tally.expired++;
        log_late(h, &c, "hub.case_expired");
        return hub_message(h, t, &c, NHUB__CASE__V1__EVENT__EVENT_EXPIRED, c.requester, now);
    }
}

int cases_fire(hub_t *h, store_txn_t *t, int64_t now, size_t max, size_t *fired)
{
    size_t n = 0;
    *fired = 0;
    if (max > CASES_FIRE_MAX)
        max = CASES_FIRE_MAX;
    int rc = store_deadlines_due(t, now, h->case_due, h->case_due_ms, max, &n);
    for (size_t i = 0; !rc && i < n; i++)
        rc = fire_one(h, t, h->case_due[i], h->case_due_ms[i], now);
    if (!rc)
        *fired = n;
    return rc;
}
