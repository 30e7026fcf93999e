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

/* Refuse a frame on the spot (nothing staged, nothing stored). */
void reply_refuse(hub_t *h, const void *rid, size_t rid_len, int code, int retryable,
                   const char *region, const char *why)
{
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
