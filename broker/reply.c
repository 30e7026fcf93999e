/*
 * reply.c: what the hub says back to a peer outside a commit's own answers
 * (NACKs, refusals on the spot, heartbeat answers) and the rate-limited log
 * of refusals. See hub_internal.h.
 */
#include "hub_internal.h"

static const char *nack_name(int code)
{
    static const char *const names[] = {
        "unspecified",    "malformed",      "too_large",       "version",         "unknown_command",
        "hello_required", "unknown_region", "source_mismatch", "invalid",         "out_of_order",
        "store_full",     "store_error",    "shutting_down",   "stream_conflict", "unsigned",
        "bad_signature",  "forbidden",      "suspended",       "unauthenticated", "payload_unknown",
        "payload_not_allowed", "payload_malformed", "payload_invalid", "case_unknown",
        "case_closed", "case_not_handler", "receipt_unknown", "receipt_not_covered",
    };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[code];
}

/* Refusals that say someone tried to act beyond their identity or rights. */
int reply_is_security(int code)
{
    switch (code) {
    case NHUB__WIRE__V1__NACK_CODE__NACK_SOURCE_MISMATCH:
    case NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED:
    case NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE:
    case NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN:
    case NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED: return 1;
    default: return 0;
    }
}

/* Log a refusal, at most once a second per reason, saying how many were
 * not logged in between. */
void reply_log_refusal(hub_t *h, int code, const char *region, const uint8_t *msg_id,
                        const char *why)
{
    int64_t now = hub_now_mono(h);
    int c = code & (HUB_NACK_CODES - 1);
    if (code)
        api_note_refusal(h, code, region, why);
    if (now - h->last_log[c] < 1000 && h->last_log[c] != 0) {
        h->suppressed[c]++;
        return;
    }
    char hex[33] = "-", q[200];
    if (msg_id)
        log_hex(hex, sizeof hex, msg_id, 16);
    log_warn(reply_is_security(code) ? "hub.security" : "hub.refused",
             "reason=%s region=%s msg_id=%s detail=%s suppressed=%llu", nack_name(code),
             region && region[0] ? region : "-", hex, log_quote(q, sizeof q, why),
             (unsigned long long)h->suppressed[c]);
    h->suppressed[c] = 0;
    h->last_log[c] = now;
}

/*
 * An answer met a full queue (the peer stopped reading) and is lost: count
 * it and say so, at most once a second. The peer gets it again when it
 * resends (the hub answers repeats as before). A peer that is gone
 * (EHOSTUNREACH) is not worth a word.
 */
void reply_sent(hub_t *h, int rc)
{
    if (rc != NHUB_EAGAIN)
        return;
    h->n.replies_dropped++;
    int64_t now = hub_now_mono(h);
    if (now - h->reply_drop_logged < 1000 && h->reply_drop_logged != 0)
        return;
    h->reply_drop_logged = now;
    log_warn("hub.reply_dropped",
             "detail=\"a peer's queue is full; it gets the answer when it "
             "resends\" total=%llu",
             (unsigned long long)h->n.replies_dropped);
}

void reply_nack(hub_t *h, const void *rid, size_t rid_len, int code, int retryable,
                      const uint8_t *msg_id, uint64_t stream_seq, uint64_t expected,
                      const char *text)
{
    wire_nack_t nack = NHUB__WIRE__V1__NACK__INIT;
    nack.code = (wire_nack_code_t)code;
    nack.text = (char *)text;
    nack.retryable = retryable;
    nack.stream_seq = stream_seq;
    nack.expected = expected;
    if (msg_id) {
        nack.msg_id.data = (uint8_t *)msg_id;
        nack.msg_id.len = 16;
    }
    h->n.nacked[code & (HUB_NACK_CODES - 1)]++;
    reply_sent(h, wire_send(h->router, rid, rid_len, WIRE_NACK, &nack.base, ZMQ_DONTWAIT));
}

/* The slot following connection `rid`: its own, or one taken over. */
static struct hub_wire_slot *wire_slot(hub_t *h, const void *rid, size_t rid_len)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < rid_len; i++)
        x = (x ^ ((const uint8_t *)rid)[i]) * 1099511628211ull;
    struct hub_wire_slot *w = &h->wire_slots[x % HUB_WIRE_SLOTS];
    if (w->rid_len != rid_len || memcmp(w->rid, rid, rid_len) != 0) {
        memcpy(w->rid, rid, rid_len);
        w->rid_len = rid_len;
        w->since = 0;
        w->journaled = 0;
    }
    return w;
}

/* Whether a bound of `max` a minute, begun at *since with *n records, lets one more in. */
static int within(int64_t now, int64_t *since, uint32_t *n, uint32_t max)
{
    if (*since == 0 || now - *since >= HUB_WIRE_JOURNAL_MS) {
        *since = now;
        *n = 0;
    }
    return *n < max;
}

void reply_journal_wire(hub_t *h, const void *rid, size_t rid_len, int code, const char *region,
                        const char *why)
{
    int64_t now = hub_now_mono(h);
    if (rid_len > WIRE_ROUTING_ID_MAX)
        rid_len = WIRE_ROUTING_ID_MAX;
    struct hub_wire_slot *w = wire_slot(h, rid, rid_len);
    struct item *it = NULL;
    if (within(now, &w->since, &w->journaled, HUB_WIRE_JOURNAL_PER_CONN) &&
        within(now, &h->wire_since, &h->wire_journaled, HUB_WIRE_JOURNAL_ALL))
        it = ingress_item_new(h, ITEM_REFUSED, rid, rid_len);
    if (!it) { /* beyond the bound, or no room in the stage */
        h->wire_unjournaled++;
        return;
    }
    w->journaled++;
    h->wire_journaled++;
    it->code = code;
    it->region = region && region[0] ? hub_region_lookup(h, region) : -1;
    snprintf(it->why, sizeof it->why, "%s", why ? why : "");
    it->not_journaled = h->wire_unjournaled;
    h->wire_unjournaled = 0;
}

/* Refuse a frame on the spot (nothing staged, nothing stored). */
void reply_refuse(hub_t *h, const void *rid, size_t rid_len, int code, int retryable,
                   const char *region, const char *why)
{
    if (!reply_is_security(code)) /* those are journaled by hub_security_event */
        reply_journal_wire(h, rid, rid_len, code, region, why);
    /* Frames racing a reconnecting adapter's HELLO are routine after a
     * restart: counted, not warned about. */
    if (code == NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED)
        log_debug("hub.refused", "reason=hello_required");
    else
        reply_log_refusal(h, code, region, NULL, why);
    reply_nack(h, rid, rid_len, code, retryable, NULL, 0, 0, why);
}

void reply_heartbeat(hub_t *h, const void *rid, size_t rid_len, uint64_t beat)
{
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    hb.time_ms = clock_wall_ms(h->clock);
    hb.beat = beat;
    reply_sent(h, wire_send(h->router, rid, rid_len, WIRE_HEARTBEAT, &hb.base, ZMQ_DONTWAIT));
}
