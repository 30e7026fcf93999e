/*
 * hub.c: the hub loop (see hub.h for the shape of one turn).
 *
 * Why one thread: the store has one writer by design, the fsync of a commit
 * is the only slow step, and while it runs ZeroMQ keeps receiving into its
 * queues on its own I/O thread, so the next turn drains everything that
 * arrived meanwhile into the next transaction. That is group commit without
 * locks. Everything a turn stages is replayable: if the map turns out to be
 * full, the transaction is aborted, the map grown, and the same stage
 * applied again; RAM state changes only after a commit succeeded.
 *
 * Nothing here logs payload contents: msg_ids as hex, region and item codes,
 * counts and reasons only.
 */
#include "hub.h"

#include "auth.h"
#include "catalog.h"
#include "dispatch.h"
#include "log.h"
#include "nhub_err.h"
#include "nhub_journal.pb-c.h"
#include "session.h"
#include "store.h"
#include "wire.h"
#include "workers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef Nhub__Journal__V1__JournalEvent journal_event_t;

#define HUB_SESSIONS_MAX 65536
#define HUB_FRAME_SLACK 1024 /* Send wrapper and header around an envelope */
#define HUB_HOUSEKEEPING_MS 1000
#define HUB_STATS_MS 10000
/* A commit forgets up to 512 + 2 per staged item of the duplicate window's
 * oldest entries: each item adds at most one, so the window is expired at
 * least twice as fast as it fills and catches up after downtime. */
#define HUB_WINDOW_EXPIRE_MIN 512
#define HUB_SCAN_MAX 256
/*
 * Messages queued towards one peer before sends to it wait (EAGAIN): bounds
 * the hub's memory for a peer that stops reading (a few MiB of small
 * answers). It must stay well above what a reading peer can have in
 * flight: its DELIVER credit (capped below at a quarter of this) plus one
 * ACK per unacknowledged SEND of its window, as libzmq's accounting lets a
 * pipe fill at about half its nominal size. An answer that still meets a
 * full queue is counted and logged, and the adapter's resend gets it again.
 */
#define HUB_PEER_HWM 32768
#define HUB_CREDIT_CAP (HUB_PEER_HWM / 4)
/*
 * What one peer can make the hub hold. libzmq queues a peer's frames up to
 * the receive high-water mark, counted in messages, and then stops reading
 * its connection (TCP pushes back; nothing is lost). The mark is sized so
 * that a peer writing max_frame bodies queues about HUB_PEER_QUEUE_BYTES,
 * and never more than the protocol lets a reading peer have in flight (its
 * window of SENDs and its credit of DELIVEREDs); a peer of small frames
 * meets it only when it writes more than it waits answers for.
 */
#define HUB_PEER_QUEUE_BYTES ((uint64_t)64 << 20)
#define HUB_PEER_QUEUE_MIN 16
#define HUB_PEER_QUEUE_MAX (2 * HUB_CREDIT_CAP)
/* A stage is closed once its SEND bodies reach this many bytes (or one
 * max_frame, if larger), whatever its count: the two stages of the
 * pipeline and the commit's dirty pages stay bounded, so does the time one
 * turn takes before ZAP requests and heartbeats are served again. */
#define HUB_STAGE_BYTES ((uint64_t)8 << 20)
#define HUB_BLOCKED_RETRY_MS 50
/* Refused handshakes are journaled at most this often (each is counted);
 * the next record says how many were not journaled in between. */
#define HUB_AUTH_JOURNAL_MS 1000
#define HUB_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define HUB_ZAP_DOMAIN "nhub"
#define HUB_MONITOR_ENDPOINT "inproc://nhub.hub.monitor"
#define HUB_NACK_CODES 32
/* Signature checks run on up to this many threads (the loop's included),
 * in chunks of at least HUB_VERIFY_CHUNK envelopes. */
#define HUB_VERIFY_THREADS_MAX 8
#define HUB_VERIFY_CHUNK 8
/* Space kept for confirmations and hub events once new messages are
 * refused, so delivery goes on in a full store: a tenth of the map limit
 * and a twentieth of the disk, each at most 64 MiB. */
#define HUB_RESERVE_MAX ((uint64_t)64 << 20)

enum item_type { ITEM_HELLO, ITEM_SEND, ITEM_CONFIRM, ITEM_HOLD, ITEM_HEARTBEAT };

/* One staged unit of work of a turn, and its reply once committed. */
struct item {
    enum item_type type;
    uint8_t rid[WIRE_ROUTING_ID_MAX];
    size_t rid_len;
    int region; /* SEND/HELLO: the sender; CONFIRM/HOLD: the destination */
    uint8_t stream_id[16];
    wire_hello_t *hello;  /* HELLO: owned, applied to the session once committed */
    wire_send_t *send;    /* SEND: owned */
    wire_envelope_t *env; /* SEND: owned; NULL if it did not decode */
    int reject;           /* SEND: a NackCode that refuses it for good, or 0 */
    char why[160];
    int verify;                    /* SEND: the signature is still to be checked */
    char key_id[KEYS_FPR_LEN + 1]; /* SEND: signing key id as sent (checked form) */
    char fpr[KEYS_FPR_LEN + 1];    /* SEND: CURVE fingerprint of the connection */
    uint8_t msg_id[16];            /* CONFIRM/HOLD */
    uint64_t dseq, seq;            /* CONFIRM/HOLD; seq: HEARTBEAT's beat */
    uint32_t hold_reason;          /* HOLD: STORE_HELD_* */
    uint32_t hold_size;            /* HOLD, too large: the DELIVER's size */
    /* result */
    int reply; /* WIRE_ACK, WIRE_NACK, WIRE_WELCOME or 0 */
    int code;  /* NACK code */
    int retryable;
    int dup;
    int applied;  /* CONFIRM removed it from the queue; HOLD newly held it */
    int released; /* CONFIRM of a message that was held before */
    int mismatch; /* CONFIRM/HOLD named a msg_id not at that dseq */
    uint64_t r_seq, r_expected, r_stream_last;
};

struct hub_region {
    char code[8];
    dispatch_t *window;
    session_t *delivery;   /* the session receiving this region's messages */
    int pending;           /* the queue may hold messages beyond the cursor */
    int64_t blocked_until; /* its peer's queue was full: wait before sending again */
};

struct hub {
    cfg_t *cfg;
    const nhub_clock_t *clock;
    store_t *store;
    void *zctx, *router;
    void *zap;          /* REP at inproc://zeromq.zap.01 (curve mode) */
    void *monitor;      /* PAIR receiving the router's handshake failures */
    auth_t *auth;       /* keys of the current configuration */
    catalog_t *catalog; /* NULL: every item allowed (development mode only) */
    int curve;          /* security.mode is curve */
    workers_t *workers; /* signature checks */
    size_t *verify_idx; /* the ready stage's items to check, cap_items */
    struct item *verify_items;
    int64_t verify_now;
    int64_t auth_journaled_at[3]; /* per kind: ZAP refusal, failed handshake, identity */
    uint64_t auth_unjournaled[3];
    char endpoint[256];
    session_table_t *sessions;
    struct hub_region *regions;
    size_t n_regions;
    struct item *items; /* the stage being filled */
    size_t n_items, cap_items;
    uint64_t items_bytes; /* its SEND bodies */
    uint64_t stage_bytes; /* a stage is closed once items_bytes reaches it */
    struct item *ready; /* the stage before it: signatures being checked, commits next */
    size_t n_ready;
    uint64_t ready_bytes;
    uint8_t *scratch;
    size_t scratch_cap;
    dispatch_entry_t due[HUB_SCAN_MAX];
    store_queued_t scan[HUB_SCAN_MAX];
    hub_counters_t n;
    int64_t next_housekeeping, next_stats;
    int64_t last_log[HUB_NACK_CODES]; /* per NACK code, to rate-limit warnings */
    uint64_t suppressed[HUB_NACK_CODES];
    uint64_t stats_commits_seen;
    int64_t reply_drop_logged;
    uint64_t stats_security_seen;
    int full; /* new messages refused: the reserve is reached */
};

static void security_event(hub_t *h, int kind, const char *fpr, const char *address,
                           const char *reason);

/* ---- small helpers -------------------------------------------------------- */

static int64_t now_mono(const hub_t *h)
{
    return clock_mono_ms(h->clock);
}

static const char *nack_name(int code)
{
    static const char *const names[] = {
        "unspecified",    "malformed",      "too_large",       "version",         "unknown_command",
        "hello_required", "unknown_region", "source_mismatch", "invalid",         "out_of_order",
        "store_full",     "store_error",    "shutting_down",   "stream_conflict", "unsigned",
        "bad_signature",  "forbidden",      "suspended",       "unauthenticated",
    };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[code];
}

/* Refusals that say someone tried to act beyond their identity or rights. */
static int is_security(int code)
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

static int region_lookup(const hub_t *h, const char *code)
{
    return cfg_region_index(h->cfg, code);
}

/* Log a refusal, at most once a second per reason, saying how many were
 * not logged in between. */
static void log_refusal(hub_t *h, int code, const char *region, const uint8_t *msg_id,
                        const char *why)
{
    int64_t now = now_mono(h);
    int c = code & (HUB_NACK_CODES - 1);
    if (now - h->last_log[c] < 1000 && h->last_log[c] != 0) {
        h->suppressed[c]++;
        return;
    }
    char hex[33] = "-", q[200];
    if (msg_id)
        log_hex(hex, sizeof hex, msg_id, 16);
    log_warn(is_security(code) ? "hub.security" : "hub.refused",
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
static void reply_sent(hub_t *h, int rc)
{
    if (rc != NHUB_EAGAIN)
        return;
    h->n.replies_dropped++;
    int64_t now = now_mono(h);
    if (now - h->reply_drop_logged < 1000 && h->reply_drop_logged != 0)
        return;
    h->reply_drop_logged = now;
    log_warn("hub.reply_dropped",
             "detail=\"a peer's queue is full; it gets the answer when it "
             "resends\" total=%llu",
             (unsigned long long)h->n.replies_dropped);
}

static void send_nack(hub_t *h, const void *rid, size_t rid_len, int code, int retryable,
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
static void refuse(hub_t *h, const void *rid, size_t rid_len, int code, int retryable,
                   const char *region, const char *why)
{
    /* Frames racing a reconnecting adapter's HELLO are routine after a
     * restart: counted, not warned about. */
    if (code == NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED)
        log_debug("hub.refused", "reason=hello_required");
    else
        log_refusal(h, code, region, NULL, why);
    send_nack(h, rid, rid_len, code, retryable, NULL, 0, 0, why);
}

/* ---- staging ---------------------------------------------------------------- */

static struct item *item_new(hub_t *h, enum item_type type, const void *rid, size_t rid_len)
{
    if (h->n_items >= h->cap_items)
        return NULL;
    struct item *it = &h->items[h->n_items++];
    memset(it, 0, sizeof *it);
    it->type = type;
    it->region = -1;
    if (rid_len > sizeof it->rid)
        rid_len = sizeof it->rid;
    memcpy(it->rid, rid, rid_len);
    it->rid_len = rid_len;
    return it;
}

static void item_clear(struct item *it)
{
    wire_free((ProtobufCMessage **)&it->hello);
    wire_free((ProtobufCMessage **)&it->env);
    wire_free((ProtobufCMessage **)&it->send);
}

static void region_detach(hub_t *h, session_t *s)
{
    if (s->region >= 0 && (size_t)s->region < h->n_regions && h->regions[s->region].delivery == s) {
        h->regions[s->region].delivery = NULL;
        dispatch_stop(h->regions[s->region].window);
        log_info("hub.region_offline", "region=%s", h->regions[s->region].code);
    }
}

static void session_close(hub_t *h, session_t *s, const char *why)
{
    log_info("hub.session_closed", "region=%s reason=%s",
             s->region >= 0 ? h->regions[s->region].code : "-", why);
    region_detach(h, s);
    session_remove(h->sessions, s);
    h->n.sessions_closed++;
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
        security_event(h, 2, fpr, NULL, buf);
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
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0, NULL,
               "HELLO body does not decode");
        return;
    }
    int region = wire_region_valid(hello->region) ? region_lookup(h, hello->region) : -1;
    int code = 0;
    char buf[160];
    const char *why = hello_refusal(h, hello, region, who, fpr, &code, buf, sizeof buf);
    struct item *it = why ? NULL : item_new(h, ITEM_HELLO, rid, rid_len);
    if (!it) { /* refused; a full stage cannot happen: the drain stops before */
        refuse(h, rid, rid_len, code, 0, wire_region_valid(hello->region) ? hello->region : NULL,
               why ? why : "hub busy");
        wire_free((ProtobufCMessage **)&hello);
        return;
    }
    it->region = region;
    it->hello = hello;
    memcpy(it->stream_id, hello->stream_id.data, 16);
}

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
        region_detach(h, s);
    struct hub_region *r = &h->regions[it->region];
    s->region = it->region;
    memcpy(s->stream_id, it->stream_id, 16);
    s->credit = credit;
    s->max_frame = hello->max_frame;
    s->last_seen_ms = now_mono(h);
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
    if (cr->suspended) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED;
        snprintf(it->why, sizeof it->why, "region %s is suspended by operators", src);
        return;
    }
    int broadcast = strcmp(it->env->destination, WIRE_BROADCAST) == 0;
    int dst = broadcast ? -1 : region_lookup(h, it->env->destination);
    if (!broadcast && dst < 0) {
        it->reject = NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_REGION;
        snprintf(it->why, sizeof it->why, "destination %s is not configured at this hub",
                 it->env->destination);
        return;
    }
    if (dst >= 0 && h->cfg->regions[dst].suspended) {
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
    it->verify = 1; /* the costly check comes last, for the whole stage at once */
}

static void on_send(hub_t *h, session_t *s, const void *rid, size_t rid_len, const void *body,
                    size_t len, const char *fpr)
{
    wire_send_t *send = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_SEND), body, len,
                    h->cfg->limits.max_frame + HUB_FRAME_SLACK, (ProtobufCMessage **)&send) != 0) {
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0,
               h->regions[s->region].code, "SEND body does not decode");
        return;
    }
    struct item *it = item_new(h, ITEM_SEND, rid, rid_len);
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
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0,
               h->regions[s->region].code, "DELIVERED body does not decode or lacks fields");
        return;
    }
    struct item *it = item_new(h, ITEM_CONFIRM, rid, rid_len);
    if (it) {
        it->region = s->region;
        it->dseq = d->dseq;
        memcpy(it->msg_id, d->msg_id.data, 16);
    }
    wire_free((ProtobufCMessage **)&d);
}

static void send_heartbeat(hub_t *h, const void *rid, size_t rid_len, uint64_t beat)
{
    wire_heartbeat_t hb = NHUB__WIRE__V1__HEARTBEAT__INIT;
    hb.time_ms = clock_wall_ms(h->clock);
    hb.beat = beat;
    reply_sent(h, wire_send(h->router, rid, rid_len, WIRE_HEARTBEAT, &hb.base, ZMQ_DONTWAIT));
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
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0, NULL,
               "HEARTBEAT body does not decode");
        return;
    }
    uint64_t beat = hb->beat;
    wire_free((ProtobufCMessage **)&hb);
    struct item *it = item_new(h, ITEM_HEARTBEAT, rid, rid_len);
    if (it)
        it->seq = beat;
    else /* cannot happen: see on_send */
        send_heartbeat(h, rid, rid_len, beat);
}

/* Validate one received message and stage it or answer it. */
static void on_frames(hub_t *h, const wire_frames_t *f)
{
    h->n.frames_in++;
    if (f->n_frames != 3) {
        h->n.dropped++;
        log_refusal(h, 0, NULL, NULL, "wrong frame count; dropped");
        return;
    }
    const void *rid = wire_frame_data(f, 0), *body = wire_frame_data(f, 2);
    size_t rid_len = wire_frame_len(f, 0), len = wire_frame_len(f, 2);
    int cmd = 0, ver = 0;
    int rc = wire_header_parse(wire_frame_data(f, 1), wire_frame_len(f, 1), &cmd, &ver);
    if (rc == NHUB_EMALFORMED) {
        h->n.dropped++;
        log_refusal(h, 0, NULL, NULL, "header is not an nhub header; dropped");
        return;
    }
    if (rc == NHUB_EVERSION) {
        char why[80];
        snprintf(why, sizeof why, "protocol version %d is not supported; this hub speaks 1", ver);
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_VERSION, 0, NULL, why);
        return;
    }
    if (rc != 0) {
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND, 0, NULL,
               "unknown command");
        return;
    }
    if (len > h->cfg->limits.max_frame + HUB_FRAME_SLACK) {
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE, 0, NULL,
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
            security_event(
                h, 2,
                strlen(f->user_id) > KEYS_REGION_LEN + 1 ? f->user_id + KEYS_REGION_LEN + 1 : "",
                NULL, why);
            if (s)
                session_close(h, s, "key no longer valid");
            refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED, 1, NULL, why);
            return;
        }
        fpr = f->user_id + KEYS_REGION_LEN + 1;
    }
    if (cmd == WIRE_HELLO) {
        on_hello(h, rid, rid_len, body, len, who, fpr);
        return;
    }
    if (!s && cmd != WIRE_BYE) {
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED, 1, NULL,
               "say HELLO first");
        return;
    }
    if (s)
        s->last_seen_ms = now_mono(h);
    switch (cmd) {
    case WIRE_SEND: on_send(h, s, rid, rid_len, body, len, fpr); break;
    case WIRE_DELIVERED: on_delivered(h, s, rid, rid_len, body, len); break;
    case WIRE_HEARTBEAT: on_heartbeat(h, rid, rid_len, body, len); break;
    case WIRE_BYE:
        if (s)
            session_close(h, s, "bye");
        break;
    default:
        refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND, 0,
               h->regions[s->region].code, "not a command an adapter sends");
    }
}

static void check_space(hub_t *h);

/* ---- applying a stage in one transaction --------------------------------- */

/* Pack a journal event into the scratch buffer and append it. */
static int journal_append(hub_t *h, store_txn_t *t, journal_event_t *ev, uint64_t *seq)
{
    size_t need = nhub__journal__v1__journal_event__get_packed_size(ev);
    if (need > h->scratch_cap) {
        uint8_t *p = realloc(h->scratch, need);
        if (!p)
            return NHUB_ENOMEM;
        h->scratch = p;
        h->scratch_cap = need;
    }
    size_t len = nhub__journal__v1__journal_event__pack(ev, h->scratch);
    return store_journal_append(t, h->scratch, len, seq);
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
    int rc = journal_append(h, t, &ev, &seq);
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

static int apply_accept(hub_t *h, store_txn_t *t, struct item *it, uint64_t sseq, int64_t now)
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
    uint64_t seq, dseq;
    int rc = journal_append(h, t, &ev, &seq);
    for (size_t i = 0; !rc && i < h->n_regions; i++)
        if (recipient(h, env, src, i))
            rc = store_queue_put(t, h->regions[i].code, seq, env->msg_id.data, &dseq);
    if (!rc)
        rc = store_dedup_put(t, env->msg_id.data, seq, now);
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
    return apply_accept(h, t, it, sseq, now);
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
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIRMED;
    ev.time_ms = now;
    ev.msg_id.data = it->msg_id;
    ev.msg_id.len = 16;
    ev.ref_seq = seq;
    ev.region = (char *)code;
    ev.dseq = it->dseq;
    uint64_t jseq;
    rc = journal_append(h, t, &ev, &jseq);
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
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HELD;
    ev.time_ms = now;
    ev.msg_id.data = it->msg_id;
    ev.msg_id.len = 16;
    ev.ref_seq = it->seq;
    ev.region = (char *)code;
    ev.dseq = it->dseq;
    ev.code = it->hold_reason;
    ev.reason = why;
    uint64_t jseq;
    rc = journal_append(h, t, &ev, &jseq);
    it->applied = rc == 0;
    return rc;
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
    int no_writes = h->full;
    int64_t now = clock_wall_ms(h->clock);
    if (!no_writes && store_reserve(h->store, stage_room(n, bytes)) == NHUB_ESTORE)
        log_error("hub.reserve_failed", "items=%zu bytes=%" PRIu64, n, bytes);
    for (;;) {
        store_txn_t *t = NULL;
        int rc = store_begin(h->store, &t);
        for (size_t i = 0; !rc && i < n; i++)
            rc = apply_item(h, t, &items[i], no_writes, now);
        size_t expired = 0;
        if (!rc)
            rc = store_window_expire(t, now - h->cfg->limits.dedup_window_ms,
                                     HUB_WINDOW_EXPIRE_MIN + 2 * n, &expired);
        if (!rc)
            rc = store_commit(&t);
        else
            store_abort(&t);
        if (rc == 0) {
            h->n.commits++;
            h->n.committed_items += n;
            return 0;
        }
        if (rc == NHUB_EFULL && store_grow(h->store) == 0) {
            h->n.replays++;
            continue;
        }
        if (rc == NHUB_EFULL && !no_writes) {
            h->n.store_full++;
            h->full = 1;
            no_writes = 1;
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
            session_close(h, s, "commit failed");
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
        reply_sent(h,
                   wire_send(h->router, it->rid, it->rid_len, WIRE_ACK, &ack.base, ZMQ_DONTWAIT));
    } else if (it->reply == WIRE_NACK) {
        if (it->code != NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER &&
            it->code != NHUB__WIRE__V1__NACK_CODE__NACK_STORE_FULL)
            log_refusal(h, it->code, it->region >= 0 ? h->regions[it->region].code : NULL, msg_id,
                        it->why);
        if (it->type == ITEM_SEND && !it->retryable)
            h->n.rejected++;
        if (is_security(it->code))
            h->n.security_events++;
        send_nack(h, it->rid, it->rid_len, it->code, it->retryable, msg_id, sseq, it->r_expected,
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
        send_heartbeat(h, it->rid, it->rid_len, it->seq); /* not for a session closed since */
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
    return reason == STORE_HELD_TOO_LARGE ? "too_large_for_receiver" : "payload_type_not_accepted";
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
                int r = region_lookup(h, it->env->destination);
                if (r >= 0)
                    h->regions[r].pending = 1;
            }
        }
        /* After a failed commit the message is still queued: keep it in
         * flight so it is delivered again and confirmed again. */
        if (it->type == ITEM_CONFIRM && rc == 0 && !it->mismatch) {
            dispatch_confirm(h->regions[it->region].window, it->dseq);
            h->n.confirmed += it->applied;
        }
        if (it->mismatch)
            log_refusal(h, NHUB__WIRE__V1__NACK_CODE__NACK_INVALID, h->regions[it->region].code,
                        it->msg_id, "DELIVERED names a msg_id that is not at that dseq");
        if (it->type == ITEM_HOLD && it->applied && rc == 0)
            hold_logged(h, it);
        if (it->type == ITEM_CONFIRM && it->released && rc == 0)
            h->n.released++;
        item_clear(it);
    }
    if (stored)
        check_space(h);
}

/*
 * One step of the two-stage pipeline: the ready stage (its signatures
 * checked meanwhile) is committed and answered, and the stage just filled
 * becomes ready, its signatures checked on the worker threads while the
 * ready one waits for its fsync. Signature checks thus overlap the commit
 * instead of adding to it. Answers keep the order of the frames.
 */
static void flush_stage(hub_t *h)
{
    struct item *prev = h->ready, *cur = h->items;
    size_t n_prev = h->n_ready, n_cur = h->n_items;
    if (n_prev == 0 && n_cur == 0)
        return;
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
    h->ready_bytes = h->items_bytes;
    h->items = prev;
    h->n_items = 0;
    h->items_bytes = 0;
}

/* Commit and answer everything staged (before a reload, at the stop). */
static void flush_all(hub_t *h)
{
    while (h->n_items || h->n_ready)
        flush_stage(h);
}

/* ---- delivery ---------------------------------------------------------------- */

/* Why the region's delivery session cannot take a message, 0 if it can. */
struct hold {
    uint32_t reason; /* STORE_HELD_*, or 0 */
    uint32_t size;   /* the DELIVER's size, for STORE_HELD_TOO_LARGE */
};

/*
 * Send message (dseq, seq) to the region's delivery session. Fills *held
 * instead when the session does not accept its payload type, or announced
 * a max_frame the DELIVER exceeds (libzmq would drop the connection).
 * Returns 0, NHUB_ENOTFOUND (the peer is gone), NHUB_EAGAIN (its queue is
 * full) or another error.
 */
static int deliver_one(hub_t *h, struct hub_region *r, store_reader_t *rd, uint64_t dseq,
                       uint64_t seq, uint64_t prev_dseq, uint32_t attempt, struct hold *held)
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
    if (rc || ev->type != NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED) {
        log_error("hub.journal_corrupt", "region=%s seq=%llu", r->code, (unsigned long long)seq);
        wire_free((ProtobufCMessage **)&ev);
        return NHUB_EMALFORMED;
    }
    session_t *s = r->delivery;
    if (!wire_payload_accepted(ev->payload_type, s->accepted, s->n_accepted)) {
        held->reason = STORE_HELD_PAYLOAD_TYPE;
        wire_free((ProtobufCMessage **)&ev);
        return 0;
    }
    wire_deliver_t d = NHUB__WIRE__V1__DELIVER__INIT;
    d.seq = seq;
    d.dseq = dseq;
    d.envelope = ev->envelope;
    d.attempt = attempt;
    d.prev_dseq = prev_dseq;
    d.signature = ev->signature;
    d.key_id = ev->key_id;
    size_t size = protobuf_c_message_get_packed_size(&d.base);
    if (s->max_frame && size > s->max_frame) {
        held->reason = STORE_HELD_TOO_LARGE;
        held->size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
        wire_free((ProtobufCMessage **)&ev);
        return 0;
    }
    rc = wire_send(h->router, s->rid, s->rid_len, WIRE_DELIVER, &d.base, ZMQ_DONTWAIT);
    wire_free((ProtobufCMessage **)&ev);
    return rc;
}

/* Stage the hold of a message the destination cannot take (apply_hold). */
static int stage_hold(hub_t *h, struct hub_region *r, const store_queued_t *q,
                      const struct hold *held)
{
    session_t *s = r->delivery;
    struct item *it = item_new(h, ITEM_HOLD, s->rid, s->rid_len);
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
        session_close(h, r->delivery, "peer gone");
        return 1;
    }
    if (rc == NHUB_EAGAIN) { /* the peer is not reading: do not spin on it */
        r->blocked_until = now_mono(h) + HUB_BLOCKED_RETRY_MS;
        return 1;
    }
    return rc == NHUB_ECLOSED || rc == NHUB_EZMQ || rc == NHUB_ENOMEM;
}

static void redeliver(hub_t *h, struct hub_region *r, store_reader_t *rd, int64_t now)
{
    size_t n = dispatch_due(r->window, now, h->due, HUB_SCAN_MAX);
    for (size_t i = 0; i < n; i++) {
        struct hold held;
        int rc = deliver_one(h, r, rd, h->due[i].dseq, h->due[i].seq, h->due[i].prev_dseq,
                             h->due[i].attempt, &held);
        if (rc && delivery_failed(h, r, rc))
            return;
        if (!rc && !held.reason)
            h->n.redelivered++;
    }
}

static void deliver_new(hub_t *h, struct hub_region *r, store_reader_t *rd, int64_t now)
{
    while (r->delivery && r->pending) {
        size_t room = dispatch_room(r->window), n = 0;
        if (room == 0)
            return;
        if (room > HUB_SCAN_MAX)
            room = HUB_SCAN_MAX;
        if (store_queue_scan(rd, r->code, dispatch_cursor(r->window), h->scan, room, &n) != 0)
            return;
        if (n < room)
            r->pending = 0; /* the rest of the queue is in hand */
        for (size_t i = 0; i < n; i++) {
            const store_queued_t *q = &h->scan[i];
            struct hold held;
            int rc =
                deliver_one(h, r, rd, q->dseq, q->seq, dispatch_last_sent(r->window), 1, &held);
            if (held.reason) {
                if (stage_hold(h, r, q, &held) != 0) {
                    r->pending = 1;
                    return;
                }
                dispatch_skip(r->window, q->dseq);
                continue;
            }
            if (rc) {
                r->pending = 1;
                if (delivery_failed(h, r, rc))
                    return;
                dispatch_skip(r->window, q->dseq); /* unreadable: left queued, logged */
                continue;
            }
            dispatch_sent(r->window, q->dseq, q->seq, now);
            h->n.delivered++;
        }
        if (n == 0)
            return;
    }
}

static void dispatch_all(hub_t *h)
{
    int64_t now = now_mono(h);
    store_reader_t *rd = NULL;
    for (size_t i = 0; i < h->n_regions; i++) {
        struct hub_region *r = &h->regions[i];
        if (!r->delivery || !r->delivery->welcomed || r->blocked_until > now ||
            h->cfg->regions[i].suspended)
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

/* ---- housekeeping -------------------------------------------------------------- */

struct expiry {
    hub_t *h;
    int64_t before;
};

static int expire_session(void *arg, session_t *s)
{
    struct expiry *e = arg;
    if (s->last_seen_ms < e->before)
        session_close(e->h, s, "peer_timeout");
    return 0;
}

static void log_stats(hub_t *h)
{
    const hub_counters_t *n = &h->n;
    if (n->commits == h->stats_commits_seen)
        return;
    h->stats_commits_seen = n->commits;
    log_info("hub.stats",
             "accepted=%llu duplicates=%llu rejected=%llu dropped=%llu replies_dropped=%llu "
             "delivered=%llu "
             "redelivered=%llu confirmed=%llu held=%llu released=%llu commits=%llu mean_batch=%.1f "
             "sessions=%zu map_size=%llu",
             (unsigned long long)n->accepted, (unsigned long long)n->duplicates,
             (unsigned long long)n->rejected, (unsigned long long)n->dropped,
             (unsigned long long)n->replies_dropped, (unsigned long long)n->delivered,
             (unsigned long long)n->redelivered, (unsigned long long)n->confirmed,
             (unsigned long long)n->held, (unsigned long long)n->released,
             (unsigned long long)n->commits,
             n->commits ? (double)n->committed_items / (double)n->commits : 0.0,
             session_count(h->sessions), (unsigned long long)store_map_size(h->store));
}

/* The security counters, one line; tests and operators read it. */
static void log_security(const hub_t *h)
{
    const hub_counters_t *n = &h->n;
    const uint64_t *k = n->nacked;
    log_info("hub.security_stats",
             "auth_refused=%" PRIu64 " handshake_failed=%" PRIu64 " identity_refused=%" PRIu64
             " source_mismatch=%" PRIu64 " unsigned=%" PRIu64 " bad_signature=%" PRIu64
             " forbidden=%" PRIu64 " suspended=%" PRIu64 " unauthenticated=%" PRIu64
             " security_events=%" PRIu64,
             n->auth_refused, n->handshake_failed, n->identity_refused,
             k[NHUB__WIRE__V1__NACK_CODE__NACK_SOURCE_MISMATCH],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED],
             k[NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED], n->security_events);
}

/*
 * Refuse new messages while the store is within its reserve of the map
 * limit or of the disk's free space, and take them again, by itself, when
 * space returns (the limit is raised, or the disk has room again).
 */
static void check_space(hub_t *h)
{
    uint64_t used, limit, disk_free, disk_size;
    if (store_usage(h->store, &used, &limit, &disk_free, &disk_size) != 0)
        return;
    uint64_t reserve = limit / 10 < HUB_RESERVE_MAX ? limit / 10 : HUB_RESERVE_MAX;
    uint64_t disk_reserve = disk_size / 20 < HUB_RESERVE_MAX ? disk_size / 20 : HUB_RESERVE_MAX;
    if (used + reserve > limit) {
        uint64_t reusable = store_free_bytes(h->store);
        used = reusable < used ? used - reusable : 0;
    }
    int map_full = used + reserve > limit;
    int disk_full = used < limit && disk_free < disk_reserve;
    int full = map_full || disk_full;
    if (full != h->full)
        log_warn(full ? "hub.store_full" : "hub.store_ok",
                 "reason=%s used=%llu limit=%llu disk_free=%llu reserve=%llu",
                 map_full    ? "map_size_max"
                 : disk_full ? "disk"
                             : "none",
                 (unsigned long long)used, (unsigned long long)limit, (unsigned long long)disk_free,
                 (unsigned long long)reserve);
    h->full = full;
}

static void housekeeping(hub_t *h)
{
    int64_t now = now_mono(h);
    if (now >= h->next_housekeeping) {
        check_space(h);
        struct expiry e = {h, now - h->cfg->limits.peer_timeout_ms};
        session_foreach(h->sessions, expire_session, &e);
        h->next_housekeeping = now + HUB_HOUSEKEEPING_MS;
    }
    if (now >= h->next_stats) {
        if (h->n.security_events != h->stats_security_seen) {
            h->stats_security_seen = h->n.security_events;
            log_security(h);
        }
        log_stats(h);
        h->next_stats = now + HUB_STATS_MS;
    }
}

/* How long the loop may wait for frames before a timer needs it. */
static int poll_timeout(const hub_t *h)
{
    if (h->n_items || h->n_ready)
        return 0;
    int64_t now = now_mono(h), next = h->next_housekeeping;
    for (size_t i = 0; i < h->n_regions; i++) {
        const struct hub_region *r = &h->regions[i];
        if (!r->delivery || !r->delivery->welcomed || h->cfg->regions[i].suspended)
            continue;
        if (r->blocked_until > now) {
            if (r->blocked_until < next)
                next = r->blocked_until;
            continue;
        }
        if (r->pending && dispatch_room(r->window) > 0)
            return 0;
        int64_t due = dispatch_next_due(r->window);
        if (due < next)
            next = due;
    }
    int64_t wait = next - now;
    return wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait;
}

/* ---- lifecycle -------------------------------------------------------------------- */

/* Journal one event in its own transaction. */
static int journal_event(hub_t *h, journal_event_t *ev)
{
    for (;;) {
        store_txn_t *t = NULL;
        uint64_t seq;
        int rc = store_begin(h->store, &t);
        if (!rc)
            rc = journal_append(h, t, ev, &seq);
        if (!rc)
            rc = store_commit(&t);
        else
            store_abort(&t);
        if (rc == NHUB_EFULL && store_grow(h->store) == 0) {
            h->n.replays++;
            continue;
        }
        return rc;
    }
}

/* Journal a hub-level event (start, stop, reload). */
static int journal_note(hub_t *h, int type, const char *reason)
{
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = (Nhub__Journal__V1__EventType)type;
    ev.time_ms = clock_wall_ms(h->clock);
    ev.reason = (char *)reason;
    return journal_event(h, &ev);
}

/*
 * A refused handshake: counted always, logged and journaled at most once
 * per HUB_AUTH_JOURNAL_MS for each kind (0: refused by the ZAP handler, 1:
 * failed before it, 2: an authenticated connection acting beyond its
 * identity or key) so a peer retrying in a loop cannot fill the journal;
 * the record says how many of its kind went unjournaled before it. Only
 * the key's fingerprint and the peer's address are kept, never a key.
 */
static void security_event(hub_t *h, int kind, const char *fpr, const char *address,
                           const char *reason)
{
    int64_t now = now_mono(h);
    h->n.security_events++;
    if (h->auth_journaled_at[kind] && now - h->auth_journaled_at[kind] < HUB_AUTH_JOURNAL_MS) {
        h->auth_unjournaled[kind]++;
        return;
    }
    char text[200], q[240], qa[160];
    snprintf(text, sizeof text, "%s (%" PRIu64 " earlier refusals not journaled)", reason,
             h->auth_unjournaled[kind]);
    log_warn("hub.auth_refused", "fingerprint=%s address=%s reason=%s", fpr && fpr[0] ? fpr : "-",
             log_quote(qa, sizeof qa, address ? address : "-"), log_quote(q, sizeof q, text));
    journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
    ev.type = NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_AUTH_REFUSED;
    ev.time_ms = clock_wall_ms(h->clock);
    ev.reason = text;
    ev.fingerprint = (char *)(fpr ? fpr : "");
    ev.address = (char *)(address ? address : "");
    if (journal_event(h, &ev) != 0)
        log_error("hub.journal_failed", "event=auth_refused");
    h->auth_journaled_at[kind] = now;
    h->auth_unjournaled[kind] = 0;
}

static void close_parts(zmq_msg_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

/* Read one multipart message (at most `max` frames) without waiting; frames
 * beyond `max` are read and dropped (*n stays at most `max`). */
static int recv_parts(void *sock, zmq_msg_t *parts, size_t max, size_t *n)
{
    *n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, *n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            int rc = *n == 0 ? NHUB_EAGAIN : NHUB_EZMQ;
            close_parts(parts, *n); /* a partial message is not kept */
            *n = 0;
            return rc;
        }
        more = zmq_msg_more(&m);
        if (*n < max)
            parts[(*n)++] = m;
        else
            zmq_msg_close(&m);
    }
    return 0;
}

/* A frame's bytes as a bounded C string. */
static void part_str(zmq_msg_t *m, char *out, size_t cap)
{
    size_t n = zmq_msg_size(m) < cap - 1 ? zmq_msg_size(m) : cap - 1;
    memcpy(out, zmq_msg_data(m), n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
            out[i] = '?';
}

/* The frames of a ZAP request (RFC 27 section "Request"), a CURVE one having all seven. */
enum zap_frame {
    ZAP_VERSION,
    ZAP_REQUEST_ID,
    ZAP_DOMAIN,
    ZAP_ADDRESS,
    ZAP_ROUTING_ID,
    ZAP_MECHANISM,
    ZAP_CREDENTIALS,
    ZAP_FRAMES
};

/* Send one ZAP reply (RFC 27 section "Reply"): every frame, or an error. */
static int zap_reply(hub_t *h, const void *request_id, size_t rid_len, const char *status,
                     const char *text, const char *user_id)
{
    struct {
        const void *data;
        size_t len;
    } f[] = {{"1.0", 3},           {request_id, rid_len},      {status, strlen(status)},
             {text, strlen(text)}, {user_id, strlen(user_id)}, {"", 0}};
    size_t n = sizeof f / sizeof f[0];
    for (size_t i = 0; i < n; i++)
        if (zmq_send(h->zap, f[i].data, f[i].len, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            return NHUB_EZMQ;
    return 0;
}

/* Decide one ZAP request; fills user_id and fpr when the key may connect. */
static int zap_decide(hub_t *h, zmq_msg_t *p, size_t n, char *address, size_t address_cap,
                      char *user_id, char *fpr, const char **why)
{
    char version[8] = "", mechanism[16] = "";
    *why = "malformed ZAP request";
    if (n < ZAP_CREDENTIALS)
        return 0;
    part_str(&p[ZAP_VERSION], version, sizeof version);
    part_str(&p[ZAP_ADDRESS], address, address_cap);
    part_str(&p[ZAP_MECHANISM], mechanism, sizeof mechanism);
    if (strcmp(version, "1.0") != 0)
        return 0;
    if (strcmp(mechanism, "CURVE") != 0) {
        *why = "mechanism is not CURVE";
        return 0;
    }
    if (n != ZAP_FRAMES || zmq_msg_size(&p[ZAP_CREDENTIALS]) != 32)
        return 0;
    return auth_handshake(h->auth, zmq_msg_data(&p[ZAP_CREDENTIALS]), clock_wall_ms(h->clock),
                          user_id, fpr, why) == 0;
}

/*
 * The ZAP handler (RFC 27): libzmq asks, for every CURVE handshake, whether
 * the client key may connect; the answer's user id ("<region>/<fingerprint>")
 * then travels with every message of that connection. Any request that is
 * not a well-formed CURVE request is refused. A reply that cannot be sent
 * leaves the REP socket waiting for its end: logged, and the handshake
 * then fails on libzmq's side (the client retries).
 */
static void serve_zap(hub_t *h)
{
    for (int round = 0; round < 64; round++) {
        zmq_msg_t p[ZAP_FRAMES + 1];
        size_t n;
        if (recv_parts(h->zap, p, ZAP_FRAMES + 1, &n) != 0)
            return;
        char request_id[64] = "", address[64] = "-";
        char user_id[AUTH_USER_ID_MAX] = "", fpr[KEYS_FPR_LEN + 1] = "";
        const char *why = NULL;
        int ok = zap_decide(h, p, n, address, sizeof address, user_id, fpr, &why);
        size_t rid_len = n > ZAP_REQUEST_ID ? zmq_msg_size(&p[ZAP_REQUEST_ID]) : 0;
        if (rid_len > sizeof request_id)
            rid_len = sizeof request_id;
        if (rid_len)
            memcpy(request_id, zmq_msg_data(&p[ZAP_REQUEST_ID]), rid_len);
        close_parts(p, n);
        if (zap_reply(h, request_id, rid_len, ok ? "200" : "400", ok ? "OK" : why, user_id) != 0)
            log_error("hub.zap_reply_failed", "error=\"%s\"", zmq_strerror(zmq_errno()));
        if (ok) {
            log_debug("hub.authenticated", "user=%s address=%s", user_id, address);
        } else {
            h->n.auth_refused++;
            security_event(h, 0, fpr, address, why);
        }
    }
}

/* Handshakes that failed before ZAP (no CURVE, wrong hub key, garbage). */
static void serve_monitor(hub_t *h)
{
    for (int round = 0; round < 64; round++) {
        zmq_msg_t p[2];
        size_t n;
        if (recv_parts(h->monitor, p, 2, &n) != 0)
            return;
        if (n == 2 && zmq_msg_size(&p[0]) == 6) {
            const uint8_t *d = zmq_msg_data(&p[0]);
            uint16_t event = (uint16_t)(d[0] | d[1] << 8);
            uint32_t value =
                (uint32_t)d[2] | (uint32_t)d[3] << 8 | (uint32_t)d[4] << 16 | (uint32_t)d[5] << 24;
            char address[96], why[96];
            part_str(&p[1], address, sizeof address);
            /* ZAP refusals (HANDSHAKE_FAILED_AUTH) were counted by serve_zap. */
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
                h->n.handshake_failed++;
                snprintf(
                    why, sizeof why, "handshake failed (%s 0x%x): no CURVE, or not this hub's key",
                    event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol" : "error", value);
                security_event(h, 1, "", address, why);
            }
        }
        close_parts(p, n);
    }
}

/*
 * Journal every change of a region's suspension since it was last recorded
 * (at start: changes made to the file while the hub was down), in one
 * transaction, and record the new state.
 */
static int sync_suspensions(hub_t *h)
{
    for (;;) {
        store_txn_t *t = NULL;
        int rc = store_begin(h->store, &t);
        for (size_t i = 0; !rc && i < h->cfg->region_count; i++) {
            const cfg_region_t *r = &h->cfg->regions[i];
            int was = 0;
            rc = store_suspended_get(t, r->code, &was);
            if (rc || was == (int)r->suspended)
                continue;
            journal_event_t ev = NHUB__JOURNAL__V1__JOURNAL_EVENT__INIT;
            ev.type = r->suspended ? NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_SUSPENDED
                                   : NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_REGION_RESUMED;
            ev.time_ms = clock_wall_ms(h->clock);
            ev.region = (char *)r->code;
            ev.reason = (char *)(r->suspended_reason[0] ? r->suspended_reason : "operator");
            uint64_t seq;
            rc = journal_append(h, t, &ev, &seq);
            if (!rc)
                rc = store_suspended_put(t, r->code, r->suspended);
        }
        if (!rc)
            rc = store_commit(&t);
        else
            store_abort(&t);
        if (rc == NHUB_EFULL && store_grow(h->store) == 0) {
            h->n.replays++;
            continue;
        }
        if (rc)
            return rc;
        for (size_t i = 0; i < h->cfg->region_count; i++) {
            char q[200];
            const cfg_region_t *r = &h->cfg->regions[i];
            if (r->suspended)
                log_warn("hub.region_suspended", "region=%s reason=%s", r->code,
                         log_quote(q, sizeof q, r->suspended_reason));
        }
        return 0;
    }
}

/* The index of region `code` in the current table, or -1. */
static int old_region(const hub_t *h, const char *code)
{
    for (size_t j = 0; h->regions && j < h->n_regions; j++)
        if (h->regions[j].window && strcmp(h->regions[j].code, code) == 0)
            return (int)j;
    return -1;
}

/*
 * Build the region table for `cfg`. Live windows of regions that stay are
 * moved over, but only once every new window exists, so a failure leaves
 * the current table untouched.
 */
static int regions_build(hub_t *h, const cfg_t *cfg, struct hub_region **out)
{
    struct hub_region *r = calloc(cfg->region_count, sizeof *r);
    if (!r)
        return NHUB_ENOMEM;
    for (size_t i = 0; i < cfg->region_count; i++) {
        snprintf(r[i].code, sizeof r[i].code, "%s", cfg->regions[i].code);
        if (old_region(h, r[i].code) >= 0)
            continue;
        r[i].window = dispatch_new((uint32_t)cfg->limits.credit_max, cfg->limits.redeliver_after_ms,
                                   cfg->limits.redeliver_max_ms);
        if (!r[i].window) {
            for (size_t k = 0; k < i; k++)
                dispatch_destroy(&r[k].window);
            free(r);
            return NHUB_ENOMEM;
        }
    }
    for (size_t i = 0; i < cfg->region_count; i++) {
        int old = r[i].window ? -1 : old_region(h, r[i].code);
        if (old < 0)
            continue;
        r[i].window = h->regions[old].window;
        r[i].delivery = h->regions[old].delivery;
        r[i].pending = 1;
        h->regions[old].window = NULL;
        dispatch_set_timeouts(r[i].window, cfg->limits.redeliver_after_ms,
                              cfg->limits.redeliver_max_ms);
    }
    *out = r;
    return 0;
}

static void regions_free(struct hub_region **r, size_t n)
{
    if (!*r)
        return;
    for (size_t i = 0; i < n; i++)
        dispatch_destroy(&(*r)[i].window);
    free(*r);
    *r = NULL;
}

static int set_opt_int(void *sock, int opt, int v)
{
    return zmq_setsockopt(sock, opt, &v, sizeof v);
}

/*
 * Curve mode: the ZAP handler is bound before the router exists (a CURVE
 * server with no ZAP handler would accept any client key), then the router
 * is made a CURVE server with the hub's secret key, which is wiped from
 * memory as soon as libzmq has it.
 */
static int setup_curve(hub_t *h, char *err, size_t errcap)
{
    keys_file_t *k = NULL;
    char why[512];
    int rc = keys_load(h->cfg->security.key_file, &k, why, sizeof why);
    if (rc) {
        snprintf(err, errcap, "security.key_file: %s", why);
        return rc;
    }
    if (strcmp(k->region, h->cfg->hub.region) != 0) {
        snprintf(err, errcap, "security.key_file %s is the key of region %s, not of this hub (%s)",
                 h->cfg->security.key_file, k->region, h->cfg->hub.region);
        keys_free(&k);
        return NHUB_ECONFIG;
    }
    h->zap = zmq_socket(h->zctx, ZMQ_REP);
    h->monitor = zmq_socket(h->zctx, ZMQ_PAIR);
    if (!h->zap || zmq_bind(h->zap, HUB_ZAP_ENDPOINT) != 0 || !h->monitor ||
        set_opt_int(h->zap, ZMQ_LINGER, 0) || set_opt_int(h->monitor, ZMQ_LINGER, 0)) {
        snprintf(err, errcap, "cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
        keys_free(&k);
        return NHUB_EZMQ;
    }
    h->router = zmq_socket(h->zctx, ZMQ_ROUTER);
    rc = !h->router || set_opt_int(h->router, ZMQ_CURVE_SERVER, 1) ||
         zmq_setsockopt(h->router, ZMQ_CURVE_SECRETKEY, k->curve_secret, KEYS_Z85_LEN + 1) ||
         zmq_setsockopt(h->router, ZMQ_ZAP_DOMAIN, HUB_ZAP_DOMAIN, strlen(HUB_ZAP_DOMAIN)) ||
         zmq_socket_monitor(h->router, HUB_MONITOR_ENDPOINT,
                            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) ||
         zmq_connect(h->monitor, HUB_MONITOR_ENDPOINT);
    log_info("hub.security", "mode=curve hub_key=%s", k->curve_fpr);
    keys_free(&k);
    if (rc) {
        snprintf(err, errcap, "cannot make the hub socket a CURVE server: %s",
                 zmq_strerror(zmq_errno()));
        return NHUB_EZMQ;
    }
    return 0;
}

/* The receive high-water mark of every peer (see HUB_PEER_QUEUE_BYTES). */
static int peer_queue_len(uint64_t max_frame)
{
    uint64_t n = HUB_PEER_QUEUE_BYTES / (max_frame + HUB_FRAME_SLACK);
    return n < HUB_PEER_QUEUE_MIN ? HUB_PEER_QUEUE_MIN
           : n > HUB_PEER_QUEUE_MAX ? HUB_PEER_QUEUE_MAX
                                   : (int)n;
}

static int open_socket(hub_t *h, char *err, size_t errcap)
{
    int64_t maxmsg = (int64_t)h->cfg->limits.max_frame + HUB_FRAME_SLACK;
    h->zctx = zmq_ctx_new();
    if (h->zctx && h->curve) {
        int rc = setup_curve(h, err, errcap);
        if (rc)
            return rc;
    } else if (h->zctx) {
        h->router = zmq_socket(h->zctx, ZMQ_ROUTER);
        log_warn("hub.insecure",
                 "detail=\"security.mode is insecure-plaintext: no encryption, no "
                 "authentication, any peer may claim any region; for development only\"");
    }
    if (!h->router || set_opt_int(h->router, ZMQ_ROUTER_MANDATORY, 1) ||
        zmq_setsockopt(h->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        set_opt_int(h->router, ZMQ_SNDHWM, HUB_PEER_HWM) ||
        set_opt_int(h->router, ZMQ_RCVHWM, peer_queue_len(h->cfg->limits.max_frame)) || set_opt_int(h->router, ZMQ_LINGER, 2000)) {
        snprintf(err, errcap, "cannot create the hub socket: %s", zmq_strerror(zmq_errno()));
        return NHUB_EZMQ;
    }
    if (zmq_bind(h->router, h->cfg->hub.listen) != 0) {
        snprintf(err, errcap, "cannot listen on %s: %s", h->cfg->hub.listen,
                 zmq_strerror(zmq_errno()));
        return NHUB_EZMQ;
    }
    size_t len = sizeof h->endpoint;
    if (zmq_getsockopt(h->router, ZMQ_LAST_ENDPOINT, h->endpoint, &len) != 0)
        snprintf(h->endpoint, sizeof h->endpoint, "%s", h->cfg->hub.listen);
    return 0;
}

/* Build what the security settings of `cfg` need: the key table and the catalogue. */
static int load_security(const cfg_t *cfg, auth_t **auth, catalog_t **catalog, char *err,
                         size_t errcap)
{
    *auth = NULL;
    *catalog = NULL;
    int rc = auth_new(cfg, auth, err, errcap);
    if (rc == 0 && cfg->security.catalog[0]) {
        rc = catalog_load(cfg->security.catalog, catalog, err, errcap);
        if (rc)
            auth_destroy(auth);
    }
    if (rc == 0 && !*catalog)
        log_warn("hub.no_catalog", "detail=\"no security.catalog: every item is allowed\"");
    return rc;
}

int hub_check_config(const cfg_t *cfg, char *err, size_t errcap)
{
    auth_t *auth = NULL;
    catalog_t *catalog = NULL;
    int rc = load_security(cfg, &auth, &catalog, err, errcap);
    auth_destroy(&auth);
    catalog_destroy(&catalog);
    if (rc || cfg->security.mode != CFG_SECURITY_CURVE)
        return rc;
    keys_file_t *k = NULL;
    char why[512];
    if ((rc = keys_load(cfg->security.key_file, &k, why, sizeof why)) != 0) {
        snprintf(err, errcap, "security.key_file: %s", why);
        return rc;
    }
    if (strcmp(k->region, cfg->hub.region) != 0) {
        snprintf(err, errcap, "security.key_file %s is the key of region %s, not of this hub (%s)",
                 cfg->security.key_file, k->region, cfg->hub.region);
        rc = NHUB_ECONFIG;
    }
    keys_free(&k);
    return rc;
}

int hub_new(cfg_t **cfg, const nhub_clock_t *clock, hub_t **out, char *err, size_t errcap)
{
    *out = NULL;
    hub_t *h = calloc(1, sizeof *h);
    if (!h) {
        cfg_destroy(cfg);
        return NHUB_ENOMEM;
    }
    h->cfg = *cfg;
    *cfg = NULL;
    h->clock = clock;
    h->curve = h->cfg->security.mode == CFG_SECURITY_CURVE;
    int rc = load_security(h->cfg, &h->auth, &h->catalog, err, errcap);
    if (rc)
        goto fail;
    rc = store_open(h->cfg->hub.data_dir, h->cfg->limits.map_size, h->cfg->limits.map_size_max,
                    &h->store, err, errcap);
    if (rc)
        goto fail;
    rc = NHUB_ENOMEM;
    h->cap_items = (size_t)h->cfg->limits.batch_max + HUB_SCAN_MAX;
    h->stage_bytes = h->cfg->limits.max_frame > HUB_STAGE_BYTES ? h->cfg->limits.max_frame
                                                                : HUB_STAGE_BYTES;
    h->items = calloc(h->cap_items, sizeof *h->items);
    h->ready = calloc(h->cap_items, sizeof *h->ready);
    h->verify_idx = calloc(h->cap_items, sizeof *h->verify_idx);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t threads = cpus > HUB_VERIFY_THREADS_MAX ? HUB_VERIFY_THREADS_MAX - 1
                     : cpus > 1                    ? (size_t)cpus - 1
                                                   : 0;
    if (h->curve && workers_new(threads, &h->workers) != 0) {
        snprintf(err, errcap, "cannot start the signature-check threads");
        goto fail;
    }
    h->sessions = session_table_new(HUB_SESSIONS_MAX);
    if (!h->items || !h->ready || !h->verify_idx || !h->sessions ||
        regions_build(h, h->cfg, &h->regions) != 0) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    h->n_regions = h->cfg->region_count;
    if ((rc = open_socket(h, err, errcap)))
        goto fail;
    *out = h;
    return 0;
fail:
    hub_destroy(&h);
    return rc;
}

void hub_destroy(hub_t **self)
{
    if (!self || !*self)
        return;
    hub_t *h = *self;
    workers_wait(h->workers);
    for (size_t i = 0; i < h->n_items; i++)
        item_clear(&h->items[i]);
    for (size_t i = 0; i < h->n_ready; i++)
        item_clear(&h->ready[i]);
    if (h->router)
        zmq_close(h->router);
    if (h->monitor)
        zmq_close(h->monitor);
    if (h->zap)
        zmq_close(h->zap);
    if (h->zctx)
        zmq_ctx_term(h->zctx);
    session_table_destroy(&h->sessions);
    regions_free(&h->regions, h->n_regions);
    store_close(&h->store);
    workers_destroy(&h->workers);
    auth_destroy(&h->auth);
    catalog_destroy(&h->catalog);
    free(h->verify_idx);
    free(h->items);
    free(h->ready);
    free(h->scratch);
    cfg_destroy(&h->cfg);
    free(h);
    *self = NULL;
}

const char *hub_endpoint(const hub_t *self)
{
    return self->endpoint;
}

void hub_counters(const hub_t *self, hub_counters_t *out)
{
    *out = self->n;
}

/* Sessions keep region indexes: map them to the new table by code. */
struct remap {
    hub_t *h;
    const struct hub_region *old;
    size_t n_old;
    const cfg_t *cfg;
};

static int remap_session(void *arg, session_t *s)
{
    struct remap *m = arg;
    if (s->region < 0 || (size_t)s->region >= m->n_old)
        return 0;
    s->region = cfg_region_index(m->cfg, m->old[s->region].code);
    if (s->region < 0) {
        log_info("hub.session_closed", "reason=region_removed");
        session_remove(m->h->sessions, s);
        m->h->n.sessions_closed++;
    }
    return 0;
}

int hub_reload(hub_t *self, const char *cfg_path, char *err, size_t errcap)
{
    cfg_t *next = NULL;
    int rc = cfg_load(cfg_path, &next, err, errcap);
    if (rc)
        return rc;
    if (strcmp(next->hub.listen, self->cfg->hub.listen) != 0 ||
        strcmp(next->hub.data_dir, self->cfg->hub.data_dir) != 0) {
        log_warn("hub.reload_partial", "detail=\"listen and data_dir need a restart; kept\"");
        next->hub = self->cfg->hub;
    }
    if (next->limits.batch_max > self->cfg->limits.batch_max ||
        next->limits.max_frame != self->cfg->limits.max_frame) {
        log_warn("hub.reload_partial",
                 "detail=\"batch_max increase and max_frame need a restart; kept\"");
        if (next->limits.batch_max > self->cfg->limits.batch_max)
            next->limits.batch_max = self->cfg->limits.batch_max;
        next->limits.max_frame = self->cfg->limits.max_frame;
    }
    if (next->security.mode != self->cfg->security.mode ||
        strcmp(next->security.key_file, self->cfg->security.key_file) != 0) {
        log_warn("hub.reload_partial",
                 "detail=\"security.mode and key_file need a restart; kept\"");
        next->security.mode = self->cfg->security.mode;
        snprintf(next->security.key_file, sizeof next->security.key_file, "%s",
                 self->cfg->security.key_file);
    }
    auth_t *auth = NULL;
    catalog_t *catalog = NULL;
    if ((rc = load_security(next, &auth, &catalog, err, errcap))) {
        cfg_destroy(&next);
        return rc;
    }
    struct hub_region *regions = NULL;
    if ((rc = regions_build(self, next, &regions))) {
        snprintf(err, errcap, "out of memory");
        auth_destroy(&auth);
        catalog_destroy(&catalog);
        cfg_destroy(&next);
        return rc;
    }
    auth_destroy(&self->auth);
    catalog_destroy(&self->catalog);
    self->auth = auth;
    self->catalog = catalog;
    struct remap m = {self, self->regions, self->n_regions, next};
    session_foreach(self->sessions, remap_session, &m);
    regions_free(&self->regions, self->n_regions);
    self->regions = regions;
    self->n_regions = next->region_count;
    for (size_t i = 0; i < self->n_regions; i++)
        if (self->regions[i].delivery && self->regions[i].delivery->region != (int)i)
            self->regions[i].delivery = NULL;
    store_set_map_max(self->store, next->limits.map_size_max);
    check_space(self); /* a raised limit takes new messages at once */
    log_setup(next->log.level, NULL);
    cfg_destroy(&self->cfg);
    self->cfg = next;
    journal_note(self, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_CONFIG_RELOADED, cfg_path);
    if (sync_suspensions(self) != 0)
        log_error("hub.journal_failed", "event=suspensions");
    log_info("hub.reloaded", "regions=%zu", self->n_regions);
    return 0;
}

/* Read every frame already waiting, staging what is valid, until the stage
 * is full by count or by bytes. */
static int drain(hub_t *h)
{
    size_t frames = 0, max_frames = (size_t)h->cfg->limits.batch_max * 4;
    while (h->n_items < (size_t)h->cfg->limits.batch_max && h->items_bytes < h->stage_bytes &&
           frames < max_frames) {
        wire_frames_t f;
        int rc = wire_recv(h->router, &f, ZMQ_DONTWAIT);
        if (rc == NHUB_EAGAIN || rc == NHUB_ECLOSED)
            return 0;
        if (rc)
            return rc;
        on_frames(h, &f);
        wire_frames_close(&f);
        frames++;
    }
    return 0;
}

int hub_run(hub_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
            const char *cfg_path)
{
    hub_t *h = self;
    char hex[33];
    check_space(h);
    journal_note(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_STARTED, "start");
    if (sync_suspensions(h) != 0)
        log_error("hub.journal_failed", "event=suspensions");
    log_info("hub.ready", "endpoint=%s hub_id=%s regions=%zu", h->endpoint,
             log_hex(hex, sizeof hex, store_hub_id(h->store), STORE_ID_LEN), h->n_regions);
    int rc = 0;
    while (!*stop) {
        if (reload && *reload) {
            *reload = 0;
            flush_all(h); /* staged items hold region indexes of this config */
            char err[512], q[600];
            if (hub_reload(h, cfg_path, err, sizeof err) != 0)
                log_error("hub.reload_failed", "error=%s", log_quote(q, sizeof q, err));
        }
        zmq_pollitem_t pi[3] = {{h->router, 0, ZMQ_POLLIN, 0},
                                {h->zap, 0, ZMQ_POLLIN, 0},
                                {h->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(pi, h->curve ? 3 : 1, poll_timeout(h)) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            rc = NHUB_EZMQ;
            break;
        }
        if (h->curve) {
            serve_zap(h);
            serve_monitor(h);
        }
        if ((rc = drain(h)))
            break;
        flush_stage(h);
        dispatch_all(h);
        housekeeping(h);
    }
    flush_all(h); /* what was staged before the stop is answered */
    journal_note(h, NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_HUB_STOPPED, "stop");
    h->stats_commits_seen = UINT64_MAX;
    log_stats(h);
    log_security(h);
    log_info("hub.stopped",
             "accepted=%llu rejected=%llu dropped=%llu replays=%llu nack_malformed=%llu "
             "nack_version=%llu nack_unknown_command=%llu nack_too_large=%llu "
             "nack_hello_required=%llu",
             (unsigned long long)h->n.accepted, (unsigned long long)h->n.rejected,
             (unsigned long long)h->n.dropped, (unsigned long long)h->n.replays,
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_VERSION],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_UNKNOWN_COMMAND],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE],
             (unsigned long long)h->n.nacked[NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED]);
    return rc;
}
