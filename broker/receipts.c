/*
 * receipts.c: RECEIPT_GET -> RECEIPT, a region's proof that the hub
 * journaled one of its messages (proto/README.md, "Receipts").
 *
 * Answered on the spot from a read snapshot, as the HTTP API answers
 * proofs: the message's ACCEPTED record (found by store_msg_seq_each), its
 * inclusion proof in the latest signed checkpoint, and the checkpoint.
 *
 * Who may ask: the message's source, its destination, or a receiver of a
 * broadcast (one the hub queued a copy for: `tracked`). Anyone else is
 * told RECEIPT_UNKNOWN, the answer for a msg_id that never came, so a
 * region cannot learn which messages exist between others. A msg_id used
 * again after the duplicate window names more than one record; each region
 * is answered with the newest record it was part of, so a region reusing
 * another's msg_id neither takes that region's receipt away nor gets it.
 *
 * When the message is newer than the latest checkpoint the hub signs one
 * now, in a transaction of its own (what checkpoint_housekeeping does
 * after audit.checkpoint_interval): a region that has its ACK can have
 * its receipt at once rather than wait for the next checkpoint. That costs
 * one commit per asking, and only for messages not yet covered, so a
 * region can make the hub sign at most as often as its own messages come.
 * A hub without a signing key (the development mode) signs no checkpoint
 * a region can check: RECEIPT_NOT_COVERED.
 */
#include "hub_internal.h"

enum { RR_UNKNOWN, RR_NOT_COVERED, RR_TOO_LARGE, RR_INVALID, RR_STORE };

const char *const receipts_refusal_names[RECEIPTS_REFUSALS] = {
    "unknown", "not_covered", "too_large", "invalid", "store_error",
};

/* What a refusal is said with, by RR_*. */
static const struct {
    int code, retryable;
} refusal[RECEIPTS_REFUSALS] = {
    {NHUB__WIRE__V1__NACK_CODE__NACK_RECEIPT_UNKNOWN, 0},
    {NHUB__WIRE__V1__NACK_CODE__NACK_RECEIPT_NOT_COVERED, 0},
    {NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE, 0},
    {NHUB__WIRE__V1__NACK_CODE__NACK_INVALID, 0},
    {NHUB__WIRE__V1__NACK_CODE__NACK_STORE_ERROR, 1},
};

/* One receipt being made: the snapshot it is read from and its parts. */
struct receipt_job {
    hub_t *h;
    const session_t *s;
    uint8_t msg_id[16];
    store_reader_t *rd;
    uint64_t seq;
    const void *record; /* borrowed from rd */
    size_t record_len;
    uint64_t cp_size;
    const char *note; /* borrowed from rd */
    size_t note_len;
};

static void refuse(struct receipt_job *j, const void *rid, size_t rid_len, int why, int retry,
                   const char *text)
{
    hub_t *h = j->h;
    h->n.receipts_refused[why]++;
    reply_nack(h, rid, rid_len, refusal[why].code, refusal[why].retryable || retry, j->msg_id, 0, 0,
               text);
}

/* Whether the session's region may see the record's message. */
static int may_see(struct receipt_job *j, const journal_event_t *ev)
{
    const char *me = j->h->regions[j->s->region].code;
    if ((ev->source && strcmp(ev->source, me) == 0) ||
        (ev->destination && strcmp(ev->destination, me) == 0))
        return 1;
    if (!ev->destination || strcmp(ev->destination, WIRE_BROADCAST) != 0)
        return 0;
    size_t cap = j->h->n_regions ? j->h->n_regions : 1, n = 0;
    store_tracked_t *t = malloc(cap * sizeof *t);
    int seen = 0;
    if (t && store_tracked_list(j->rd, j->msg_id, t, cap, &n) == 0)
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(t[i].region, me) == 0;
    free(t);
    return seen;
}

/* store_msg_seq_each: take record `seq` if it is an ACCEPTED record the
 * asking region may see (1), go on to the next older (0), or NHUB_ESTORE. */
static int try_record(void *arg, uint64_t seq)
{
    struct receipt_job *j = arg;
    if (store_journal_get(j->rd, seq, &j->record, &j->record_len, NULL))
        return NHUB_ESTORE;
    journal_event_t *ev = nhub__journal__v1__journal_event__unpack(NULL, j->record_len, j->record);
    int ok = ev && ev->type == NHUB__JOURNAL__V1__EVENT_TYPE__EVENT_ACCEPTED && may_see(j, ev);
    if (ev)
        nhub__journal__v1__journal_event__free_unpacked(ev, NULL);
    if (ok)
        j->seq = seq;
    return ok;
}

/* Find the record and check who asks: 0, or RR_* + 1. A msg_id accepted
 * again after the duplicate window names several records, maybe from other
 * regions: the newest one the asking region was part of is its receipt. */
static int find_record(struct receipt_job *j)
{
    int rc = store_msg_seq_each(j->rd, j->msg_id, try_record, j);
    if (rc == 1)
        return 0;
    return rc == 0 || rc == NHUB_ENOTFOUND ? RR_UNKNOWN + 1 : RR_STORE + 1;
}

/* The latest checkpoint, signed now if it does not cover the record: 0 or RR_* + 1. */
static int find_checkpoint(struct receipt_job *j)
{
    hub_t *h = j->h;
    if (store_checkpoint_get(j->rd, 0, &j->note, &j->note_len, &j->cp_size) == 0 &&
        j->cp_size >= j->seq)
        return 0;
    store_reader_close(&j->rd); /* no snapshot open while the hub writes (and maybe grows) */
    if (checkpoint_now(h) != 0)
        return RR_NOT_COVERED + 1;
    if (store_reader_open(h->store, &j->rd) != 0 ||
        store_journal_get(j->rd, j->seq, &j->record, &j->record_len, NULL) != 0 ||
        store_checkpoint_get(j->rd, 0, &j->note, &j->note_len, &j->cp_size) != 0)
        return RR_STORE + 1;
    return j->cp_size >= j->seq ? 0 : RR_NOT_COVERED + 1;
}

/* Make and send the RECEIPT; 0 or RR_* + 1. */
static int send_receipt(struct receipt_job *j, const void *rid, size_t rid_len)
{
    hub_t *h = j->h;
    tlog_hash_t proof[TLOG_PROOF_MAX];
    size_t n = 0, plen = 0, cap = 2 * (size_t)TLOG_NOTE_MAX;
    if (store_tree_prove_inclusion(j->rd, j->seq - 1, j->cp_size, proof, TLOG_PROOF_MAX, &n))
        return RR_STORE + 1;
    /* A receiver takes no bigger frame than it announced, or than the hub's own
     * (256: the Receipt's own fields). */
    uint64_t limit = j->s->max_frame ? j->s->max_frame : h->cfg->limits.max_frame + HUB_FRAME_SLACK;
    if ((uint64_t)j->record_len + 256 > limit)
        return RR_TOO_LARGE + 1;
    char *text = malloc(cap);
    if (!text)
        return RR_STORE + 1;
    int rc = tlog_proof_format(j->seq - 1, proof, n, j->note, j->note_len, text, cap, &plen);
    if (!rc && (uint64_t)j->record_len + plen + 256 > limit)
        rc = RR_TOO_LARGE + 1;
    else if (rc)
        rc = RR_STORE + 1;
    if (!rc) {
        wire_receipt_t body = NHUB__WIRE__V1__RECEIPT__INIT;
        body.msg_id.data = j->msg_id;
        body.msg_id.len = 16;
        body.seq = j->seq;
        body.record.data = (uint8_t *)j->record;
        body.record.len = j->record_len;
        body.tree_hash = (char *)tlog_alg_name(store_tree_alg(h->store));
        body.proof = text;
        reply_sent(h, wire_send(h->router, rid, rid_len, WIRE_RECEIPT, &body.base, ZMQ_DONTWAIT));
        h->n.receipts_served++;
    }
    free(text);
    return rc;
}

void receipts_serve(hub_t *h, const session_t *s, const void *rid, size_t rid_len, const void *body,
                    size_t len)
{
    struct receipt_job j = {.h = h, .s = s};
    wire_receipt_get_t *get = NULL;
    if (wire_decode(wire_body_descriptor(WIRE_RECEIPT_GET), body, len, 256,
                    (ProtobufCMessage **)&get) != 0 ||
        get->msg_id.len != 16) {
        wire_free((ProtobufCMessage **)&get);
        h->n.receipts_refused[RR_INVALID]++;
        reply_refuse(h, rid, rid_len, NHUB__WIRE__V1__NACK_CODE__NACK_MALFORMED, 0,
                     h->regions[s->region].code, "RECEIPT_GET must carry a 16-byte msg_id");
        return;
    }
    memcpy(j.msg_id, get->msg_id.data, 16);
    wire_free((ProtobufCMessage **)&get);
    int why = store_reader_open(h->store, &j.rd) != 0 ? RR_STORE + 1 : find_record(&j);
    if (!why && !h->cp_signer)
        why = RR_NOT_COVERED + 1;
    if (!why)
        why = find_checkpoint(&j);
    if (!why)
        why = send_receipt(&j, rid, rid_len);
    store_reader_close(&j.rd);
    static const char *const text[RECEIPTS_REFUSALS] = {
        "no message of that msg_id this region sent or received",
        "no signed checkpoint covers it: the hub has no signing key (security.key_file), or "
        "could not sign one now",
        "the receipt is larger than the frames this session takes",
        "",
        "the store could not be read; retry",
    };
    if (why == RR_NOT_COVERED + 1 && h->cp_signer) /* a signing key: it failed only now */
        refuse(&j, rid, rid_len, RR_NOT_COVERED, 1, text[RR_NOT_COVERED]);
    else if (why)
        refuse(&j, rid, rid_len, why - 1, 0, text[why - 1]);
}
