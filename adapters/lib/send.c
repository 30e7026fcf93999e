/*
 * send.c: the outbox on its way to the hub: nhub_send stores messages, the
 * window of SENDs in flight, ACKs and NACKs, rejections and new streams.
 * See nhub_internal.h.
 *
 * Streams. The outbox is keyed by a local sequence; the wire stream_seq is
 * local - stream_base of the stream named in the HELLO (outbox.h). Each
 * HELLO reads that identity from the store and the session keeps it until
 * the next HELLO, so ACK and NACK numbers are always converted with the
 * numbering the SENDs used. A new stream (a new random stream_id, what waits
 * renumbered from 1, nothing deleted: the hub's msg_id dedup makes the
 * resend safe) is started when the hub says NACK STREAM_CONFLICT, when a
 * WELCOME's stream_last is at or beyond what this store ever numbered (the
 * store is a copy: another writer uses the stream), and when the head
 * message is larger than the hub's max_frame (it is settled here as
 * rejected, and renumbering keeps the stream without a gap). After a HELLO
 * on another stream, replies about SENDs of the old one are ignored until
 * the WELCOME.
 */
#include "nhub_internal.h"

/* Bytes protobuf needs for the varint `v`. */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Largest Send body the hub takes: ours, or the hub's if its WELCOME said less. */
static uint32_t frame_limit(const nhub_t *self)
{
    if (self->hub_max_frame && self->hub_max_frame < self->max_frame)
        return self->hub_max_frame;
    return self->max_frame;
}

/* Bytes of a Send body around an envelope of `len` bytes, counting the
 * stream_seq and the signature at their largest, so the answer depends
 * neither on the numbering nor on the key (nor on the security mode: a
 * message that fits, fits after a change of mode or key). */
static size_t send_body_len(size_t len)
{
    return len + 1 + 10 + 1 + varint_len(len) + NHUB_SIG_FIELDS_MAX;
}

/* Local seq of a stream_seq of the session's stream; 0 if it cannot be one. */
static uint64_t local_seq(const nhub_t *self, uint64_t wire)
{
    if (wire == 0 || wire > UINT64_MAX - self->stream_base)
        return 0;
    return wire + self->stream_base;
}

/* ---- in-flight ring ------------------------------------------------------- */

void send_ring_clear(nhub_t *self)
{
    self->ring_head = 0;
    self->ring_count = 0;
    /* The store keeps every DELIVERED not yet known committed: the next
     * session writes them all again. */
    self->proof_head = 0;
    self->proof_count = 0;
    self->beats_written = 0;
    self->beats_answered = 0;
    self->unsent_started = 0;
    self->unsent_done = 0;
}

static void ring_push(nhub_t *self, uint64_t seq, int64_t now)
{
    size_t i = (self->ring_head + self->ring_count) % self->window;
    self->ring[i] = (inflight_t){.seq = seq, .sent_ms = now, .done = 0};
    self->ring_count++;
}

/* Mark `seq` answered and drop answered entries from the head. Returns 1 if found. */
static int ring_mark(nhub_t *self, uint64_t seq)
{
    int found = 0;
    for (size_t k = 0; k < self->ring_count; k++) {
        inflight_t *e = &self->ring[(self->ring_head + k) % self->window];
        if (e->seq == seq) {
            e->done = 1;
            found = 1;
            break;
        }
        if (e->seq > seq)
            break;
    }
    while (self->ring_count && self->ring[self->ring_head].done) {
        self->ring_head = (self->ring_head + 1) % self->window;
        self->ring_count--;
    }
    return found;
}

const inflight_t *send_ring_oldest(const nhub_t *self)
{
    return self->ring_count ? &self->ring[self->ring_head] : NULL;
}

/* ---- sending -------------------------------------------------------------- */

/*
 * Put the signature into `s`: the stored one if the current key made it,
 * otherwise a new one (the record is unsigned, or the region has rotated
 * its key since: the hub would refuse the stale key id). Returns 0, or
 * NHUB_ECRYPTO if signing failed. Insecure mode sends no signature.
 */
static int sign_for_send(nhub_t *self, const outbox_record_t *rec, wire_send_t *s,
                         uint8_t sig[KEYS_SIG_MAX])
{
    if (!self->keys)
        return 0;
    s->key_id = self->keys->sign_id;
    if (rec->sig_len && rec->key_id_len == KEYS_FPR_LEN &&
        memcmp(rec->key_id, self->keys->sign_id, KEYS_FPR_LEN) == 0) {
        s->signature.data = (uint8_t *)rec->sig;
        s->signature.len = rec->sig_len;
        return 0;
    }
    size_t siglen = 0;
    int rc = keys_sign(self->keys->signer, rec->envelope, rec->envelope_len, sig, &siglen);
    if (rc != 0) {
        if (!self->sign_failed)
            log_error("nhub.sign_failed", "region=%s key_id=%s error=%d", self->region,
                      self->keys->sign_id, rc);
        self->sign_failed = 1;
        return rc;
    }
    if (!self->resign_logged) {
        char old[KEYS_FPR_LEN + 1];
        snprintf(old, sizeof old, "%.*s", (int)rec->key_id_len, rec->key_id ? rec->key_id : "");
        log_info("nhub.resign", "region=%s stored_key_id=%s key_id=%s", self->region,
                 old[0] ? old : "none", self->keys->sign_id);
        self->resign_logged = 1;
    }
    self->st.resigned++;
    s->signature.data = sig;
    s->signature.len = siglen;
    return 0;
}

static int send_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    nhub_t *self = arg;
    uint8_t sig[KEYS_SIG_MAX];
    size_t len = rec->envelope_len;
    if (self->ring_count >= self->window)
        return 1;
    if (send_body_len(len) > frame_limit(self)) {
        /* The hub would drop the frame unread, for ever. Settled once it
         * is the head of the stream, so what is before it is ACKed first. */
        if (self->ring_count == 0) {
            self->oversize_seq = seq;
            self->oversize_len = send_body_len(len);
        }
        return 1;
    }
    wire_send_t s = NHUB__WIRE__V1__SEND__INIT;
    s.stream_seq = seq - self->stream_base;
    s.envelope.len = len;
    s.envelope.data = (uint8_t *)rec->envelope;
    if (sign_for_send(self, rec, &s, sig) != 0)
        return 1; /* tried again on the next pass; nothing unsigned goes out */
    if (conn_session_write(self, WIRE_SEND, &s.base) != 0)
        return 1;
    ring_push(self, seq, lib_now_ms(self));
    self->send_cursor = seq + 1;
    self->st.sent++;
    if (seq <= self->max_sent_seq)
        self->st.resent++;
    else
        self->max_sent_seq = seq;
    return 0;
}

static void settle_oversize(nhub_t *self, uint64_t seq, size_t body);

/* Write SENDs from the outbox, in order, while the window has room. */
void send_fill_window(nhub_t *self)
{
    if (self->state != SESSION_READY || self->ring_count >= self->window || self->want_write)
        return;
    self->oversize_seq = 0;
    int rc = outbox_scan(self->store, self->send_cursor, send_visit, self);
    if (rc != 0)
        log_error("nhub.outbox_read_failed", "region=%s error=%d", self->region, rc);
    else if (self->oversize_seq)
        settle_oversize(self, self->oversize_seq, self->oversize_len);
}

/*
 * Decide about an outbox entry an ACK names: it leaves with the msg_id
 * recorded for on_ack, unless the ACK names another msg_id (a reply that
 * belongs to other numbering); then it stays and is sent again.
 */
static int ack_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    nhub_t *self = arg;
    for (size_t i = 0; i < self->n_acks; i++) {
        pending_ack_t *p = &self->acks[i];
        if (p->seq != seq)
            continue;
        uint8_t id[NHUB_MSG_ID_LEN];
        int have = send_envelope_msg_id(self, rec->envelope, rec->envelope_len, id) == 0;
        p->mismatch = have && p->ack_has_id && memcmp(id, p->ack_id, sizeof id) != 0;
        if (p->mismatch)
            return 1;
        p->removed = have || p->ack_has_id;
        memcpy(p->msg_id, have ? id : p->ack_id, sizeof id);
        return 0; /* seqs are unique in one flush: the first match is the one */
    }
    return 0;
}

/* Keep the first ACK of each seq in this burst: a repeat settles nothing new. */
static size_t unique_acks(nhub_t *self, uint64_t *seqs)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_acks; i++) {
        size_t j = 0;
        while (j < n && self->acks[j].seq != self->acks[i].seq)
            j++;
        if (j < n)
            continue;
        self->acks[n] = self->acks[i];
        self->acks[n].removed = 0;
        self->acks[n].mismatch = 0;
        seqs[n++] = self->acks[i].seq;
    }
    self->n_acks = n;
    return n;
}

/* Commit the ACKs read in this burst in one transaction. on_ack fires for
 * the entries removed here, so once per message. */
void send_flush_acks(nhub_t *self)
{
    if (self->n_acks == 0)
        return;
    uint64_t seqs[NHUB_RECV_BURST];
    uint64_t removed = 0;
    size_t n = unique_acks(self, seqs);
    int rc = outbox_remove(self->store, seqs, n, ack_visit, self, &removed);
    self->n_acks = 0;
    if (rc != 0) {
        /* They stay in the outbox; a later resend is ACKed again as a repeat. */
        lib_set_err(self, rc, "removing acknowledged messages: %s", outbox_error(self->store));
        log_error("nhub.ack_commit_failed", "region=%s n=%zu error=%d", self->region, n, rc);
        return;
    }
    self->st.acked += removed;
    for (size_t i = 0; i < n; i++) {
        const pending_ack_t *p = &self->acks[i];
        char hex[33];
        if (p->mismatch) {
            /* The hub holds another message at this stream_seq: another
             * writer numbers this stream too. read_frames starts a new one. */
            self->ack_conflict = 1;
            log_warn("nhub.ack_mismatch", "region=%s stream_seq=%llu ack_msg_id=%s",
                     self->region, (unsigned long long)(p->seq - self->stream_base),
                     nhub_msg_id_hex(p->ack_id, hex));
        } else if (p->removed && self->on_ack) {
            self->on_ack(self->on_ack_arg, p->msg_id);
        }
    }
}

/* ---- frames from the hub -------------------------------------------------- */

/* msg_id of an encoded envelope, for messages the hub settled without naming it. */
int send_envelope_msg_id(const nhub_t *self, const void *data, size_t len,
                         uint8_t out[NHUB_MSG_ID_LEN])
{
    /* protobuf-c writes fields in number order, so our own envelopes start
     * with msg_id: tag 0x0a, length 16. Anything else takes the long way. */
    const uint8_t *p = data;
    if (len >= 2 + NHUB_MSG_ID_LEN && p[0] == 0x0a && p[1] == NHUB_MSG_ID_LEN) {
        memcpy(out, p + 2, NHUB_MSG_ID_LEN);
        return 0;
    }
    ProtobufCMessage *m = NULL;
    int rc = wire_decode(&nhub__wire__v1__envelope__descriptor, data, len, lib_decode_budget(self),
                         &m);
    if (rc != 0)
        return rc;
    const wire_envelope_t *e = (const wire_envelope_t *)m;
    rc = e->msg_id.len == NHUB_MSG_ID_LEN ? 0 : NHUB_EMALFORMED;
    if (rc == 0)
        memcpy(out, e->msg_id.data, NHUB_MSG_ID_LEN);
    wire_free(&m);
    return rc;
}

/* What found_visit learns about one message. */
struct found_id {
    const nhub_t *self;
    const uint8_t *expect; /* msg_id the message must have, or NULL */
    int found;
    int mismatch;
    uint8_t msg_id[NHUB_MSG_ID_LEN];
};

void send_on_ack(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_ack_t *a = (const wire_ack_t *)m;
    uint64_t seq = local_seq(self, a->stream_seq);
    if (seq == 0 || self->stale_until_welcome)
        return; /* not a number of the stream the session uses */
    ring_mark(self, seq);
    self->backoff_ms = NHUB_BACKOFF_START_MS;
    self->ooo_since_ack = 0;
    if (self->n_acks == NHUB_RECV_BURST)
        send_flush_acks(self);
    /* Committed with the rest of the burst (send_flush_acks); on_ack fires for
     * the entry only if this ACK is what removes it. */
    pending_ack_t *p = &self->acks[self->n_acks++];
    p->seq = seq;
    p->ack_has_id = a->msg_id.len == NHUB_MSG_ID_LEN;
    if (p->ack_has_id)
        memcpy(p->ack_id, a->msg_id.data, NHUB_MSG_ID_LEN);
}

/* Learns the msg_id of a message as it leaves; keeps it if it is not `expect`. */
static int found_visit(void *arg, uint64_t seq, const outbox_record_t *rec)
{
    struct found_id *f = arg;
    (void)seq;
    f->found = send_envelope_msg_id(f->self, rec->envelope, rec->envelope_len, f->msg_id) == 0;
    f->mismatch = f->found && f->expect && memcmp(f->msg_id, f->expect, NHUB_MSG_ID_LEN) != 0;
    return f->mismatch;
}

/* The hub refused stream message `seq` for good: it leaves the outbox. */
static void reject_message(nhub_t *self, const wire_nack_t *n)
{
    struct found_id f = {.self = self};
    uint64_t removed = 0, seq = local_seq(self, n->stream_seq);
    if (seq == 0)
        return;
    if (n->msg_id.len == NHUB_MSG_ID_LEN)
        f.expect = n->msg_id.data;
    ring_mark(self, seq);
    int rc = outbox_remove(self->store, &seq, 1, found_visit, &f, &removed);
    if (rc != 0) {
        log_error("nhub.reject_commit_failed", "region=%s stream_seq=%llu error=%d",
                  self->region, (unsigned long long)n->stream_seq, rc);
        return;
    }
    if (f.mismatch)
        log_warn("nhub.nack_mismatch", "region=%s stream_seq=%llu", self->region,
                 (unsigned long long)n->stream_seq);
    if (!removed)
        return; /* already settled, or not the message meant */
    if (!f.found && n->msg_id.len == NHUB_MSG_ID_LEN)
        memcpy(f.msg_id, n->msg_id.data, NHUB_MSG_ID_LEN);
    char hex[33], text[160];
    self->st.rejected++;
    log_warn("nhub.rejected", "region=%s msg_id=%s stream_seq=%llu code=%d text=%s",
             self->region, nhub_msg_id_hex(f.msg_id, hex), (unsigned long long)n->stream_seq,
             (int)n->code, log_quote(text, sizeof text, n->text));
    if (self->on_reject)
        self->on_reject(self->on_reject_arg, f.msg_id, (int)n->code, n->text ? n->text : "");
}

/*
 * Another writer uses this stream (a copied store), or the hub has the
 * stream_id for another region: start a new stream. A SEND's conflict counts
 * only in READY: one arriving while a resync waits for its WELCOME answers a
 * SEND from before that HELLO, and the resend after the WELCOME will tell.
 */
static void on_conflict(nhub_t *self, const wire_nack_t *n)
{
    char text[160];
    if (n->stream_seq != 0 ? self->state != SESSION_READY
                           : self->state != SESSION_READY && self->state != SESSION_HELLO_SENT)
        return;
    log_warn("nhub.stream_conflict", "region=%s stream_seq=%llu text=%s", self->region,
             (unsigned long long)n->stream_seq, log_quote(text, sizeof text, n->text));
    send_rotate_stream(self, n->stream_seq ? "send_conflict" : "hello_conflict", 0, NULL);
}

/*
 * Refusals about identity and access. They are final whatever the NACK's
 * `retryable` says: resending the same bytes under the same key cannot
 * change the answer, and a hub that marked them retryable would have the
 * adapter resend them for ever.
 */
static int nack_is_access(int code)
{
    switch (code) {
    case NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED:
    case NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE:
    case NHUB__WIRE__V1__NACK_CODE__NACK_FORBIDDEN:
    case NHUB__WIRE__V1__NACK_CODE__NACK_SUSPENDED:
    case NHUB__WIRE__V1__NACK_CODE__NACK_UNAUTHENTICATED: return 1;
    default: return 0;
    }
}

/*
 * The hub refused the session for good: its answer to the HELLO, or an
 * identity refusal about no message in particular (the key was revoked
 * during the session). Back off and say HELLO again later: the operators
 * may fix it meanwhile.
 */
static void session_refused(nhub_t *self, const wire_nack_t *n)
{
    char why[NHUB_LINK_ERROR_MAX];
    lib_set_err(self, NHUB_EREFUSED, "hub refused the session: code %d: %s", (int)n->code,
                n->text ? n->text : "");
    snprintf(why, sizeof why, "the hub refused the session: code %d: %s", (int)n->code,
             n->text ? n->text : "");
    conn_link_failed(self, NHUB_LINK_REFUSED, LINK_CAUSE_NACK + (int)n->code, "nhub.hello_refused",
                     why, 0, 0);
    conn_backoff(self, "hello_refused");
}

void send_on_nack(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_nack_t *n = (const wire_nack_t *)m;
    char text[160];
    log_debug("nhub.nack", "region=%s code=%d stream_seq=%llu expected=%llu retryable=%d text=%s",
              self->region, (int)n->code, (unsigned long long)n->stream_seq,
              (unsigned long long)n->expected, (int)n->retryable,
              log_quote(text, sizeof text, n->text));
    if (n->stream_seq != 0 && self->stale_until_welcome)
        return; /* about a SEND of the stream used before this HELLO */
    if (receipt_on_nack(self, n))
        return;
    switch (n->code) {
    case NHUB__WIRE__V1__NACK_CODE__NACK_STREAM_CONFLICT:
        on_conflict(self, n);
        return;
    case NHUB__WIRE__V1__NACK_CODE__NACK_HELLO_REQUIRED:
        if (self->state != SESSION_HELLO_SENT)
            conn_resync(self, "hello_required");
        return;
    case NHUB__WIRE__V1__NACK_CODE__NACK_OUT_OF_ORDER:
        if (self->state != SESSION_READY)
            return; /* already resyncing: the WELCOME will say where to start */
        log_warn("nhub.out_of_order", "region=%s stream_seq=%llu expected=%llu", self->region,
                 (unsigned long long)n->stream_seq, (unsigned long long)n->expected);
        /* A second one with no ACK between means resending does not help. */
        if (self->ooo_since_ack++ > 0)
            conn_backoff(self, "out_of_order");
        else
            conn_resync(self, "out_of_order");
        return;
    default:
        break;
    }
    if (n->retryable && !nack_is_access((int)n->code)) {
        /* While waiting for WELCOME, NACKs of SENDs from before the HELLO are stale. */
        if (self->state == SESSION_HELLO_SENT && n->stream_seq != 0)
            return;
        conn_backoff(self, "retryable_nack");
        return;
    }
    if (n->stream_seq != 0) {
        reject_message(self, n);
        return;
    }
    if (self->state == SESSION_HELLO_SENT || nack_is_access((int)n->code)) {
        session_refused(self, n);
        return;
    }
    log_warn("nhub.nack", "region=%s code=%d text=%s", self->region, (int)n->code,
             log_quote(text, sizeof text, n->text));
}

/*
 * Start a new stream and say HELLO on it (outbox_rotate). `drop` (a local
 * seq, 0 = none) leaves the outbox in the same transaction and `f` learns
 * its msg_id; without it the rotation happens only if the store still has
 * this session's stream (another process may have rotated already: then its
 * stream is adopted). A second rotation without a WELCOME between backs off
 * first, so a hub that refuses every stream cannot make the adapter spin.
 * Returns 1 if `drop` was removed here.
 */
int send_rotate_stream(nhub_t *self, const char *reason, uint64_t drop, struct found_id *f)
{
    char old_hex[33], new_hex[33];
    outbox_rotation_t r = {
        .expect_id = drop ? NULL : self->stream_id,
        .drop = drop,
        .fn = drop ? found_visit : NULL,
        .arg = f,
    };
    int rc = outbox_rotate(self->store, &r);
    if (rc != 0) {
        lib_set_err(self, rc, "starting a new stream: %s", outbox_error(self->store));
        log_error("nhub.rotate_failed", "region=%s reason=%s error=%d", self->region, reason,
                  rc);
        conn_backoff(self, "store");
        return 0;
    }
    nhub_msg_id_hex(self->stream_id, old_hex);
    nhub_msg_id_hex(r.stream_id, new_hex);
    if (r.rotated) {
        self->st.streams_rotated++;
        log_warn("nhub.stream_rotated",
                 "region=%s reason=%s old_stream=%s stream=%s stream_base=%llu", self->region,
                 reason, old_hex, new_hex, (unsigned long long)r.base);
    } else {
        log_info("nhub.stream_adopted", "region=%s reason=%s old_stream=%s stream=%s",
                 self->region, reason, old_hex, new_hex);
    }
    if (self->rotations++ > 0)
        conn_backoff(self, "stream_rotated");
    else
        conn_send_hello(self);
    return r.dropped;
}

/*
 * The head message is larger than the hub takes (its max_frame, or ours):
 * it can never be sent. It is settled here as rejected, and since the hub
 * never saw its stream_seq, the stream is renumbered without it.
 */
static void settle_oversize(nhub_t *self, uint64_t seq, size_t body)
{
    struct found_id f = {.self = self};
    char hex[33], text[160];
    uint32_t limit = frame_limit(self);
    if (!send_rotate_stream(self, "too_large", seq, &f))
        return;
    snprintf(text, sizeof text, "message of %zu bytes exceeds max_frame %u%s", body, limit,
             limit < self->max_frame ? " of the hub" : "");
    self->st.rejected++;
    log_warn("nhub.rejected", "region=%s msg_id=%s code=%d text=\"%s\"", self->region,
             nhub_msg_id_hex(f.msg_id, hex), (int)NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE,
             text);
    if (self->on_reject)
        self->on_reject(self->on_reject_arg, f.msg_id,
                        (int)NHUB__WIRE__V1__NACK_CODE__NACK_TOO_LARGE, text);
}

/* ---- public API ----------------------------------------------------------- */

/* Check the fields a caller gives, naming the first wrong one. */
static int check_message(nhub_t *self, const nhub_message_t *msg)
{
    if (!msg)
        return lib_set_err(self, NHUB_EINVAL, "message is NULL");
    if (!msg->destination || !msg->destination[0])
        return lib_set_err(self, NHUB_EINVAL, "destination is missing");
    if (strcmp(msg->destination, WIRE_BROADCAST) != 0 && !wire_region_valid(msg->destination))
        return lib_set_err(self, NHUB_EINVAL, "destination must be six digits or \"*\"");
    if (strcmp(msg->destination, self->region) == 0)
        return lib_set_err(self, NHUB_EINVAL, "destination is this adapter's own region");
    if (!msg->item || !msg->item[0])
        return lib_set_err(self, NHUB_EINVAL, "item is missing");
    if (msg->kind < NHUB_KIND_REQUEST || msg->kind > NHUB_KIND_NOTICE)
        return lib_set_err(self, NHUB_EINVAL, "kind %d is not a known kind", msg->kind);
    if (!msg->payload_type || !msg->payload_type[0])
        return lib_set_err(self, NHUB_EINVAL, "payload_type is missing");
    if (!msg->payload && msg->payload_len)
        return lib_set_err(self, NHUB_EINVAL, "payload is NULL but payload_len is %zu",
                           msg->payload_len);
    if (msg->deadline_ms < 0)
        return lib_set_err(self, NHUB_EINVAL, "deadline_ms is negative");
    return 0;
}

/* One message of a batch on its way into the outbox. */
typedef struct staged {
    uint8_t id[NHUB_MSG_ID_LEN];
    uint8_t *buf; /* the encoded envelope; owned */
    uint8_t sig[KEYS_SIG_MAX];
} staged_t;

/*
 * Check `msg`, give it its msg_id and creation time, encode its envelope
 * into s->buf (freed by the caller, also on failure) and sign it: `rec`
 * then describes the outbox record. Returns 0 or nhub_send's errors.
 */
static int stage_message(nhub_t *self, const nhub_message_t *msg, staged_t *s, outbox_record_t *rec)
{
    char why[160] = "";
    int rc = check_message(self, msg);
    if (rc != 0)
        return rc;
    if (msg->msg_id)
        memcpy(s->id, msg->msg_id, sizeof s->id);
    else if (ids_msg_id(s->id, lib_wall_ms(self)) != 0)
        return lib_set_err(self, NHUB_EIO, "getrandom failed: %s", strerror(errno));

    wire_envelope_t e = NHUB__WIRE__V1__ENVELOPE__INIT;
    e.msg_id.len = sizeof s->id;
    e.msg_id.data = s->id;
    e.source = self->region;
    e.destination = (char *)msg->destination;
    e.item = (char *)msg->item;
    e.kind = (Nhub__Wire__V1__Kind)msg->kind;
    if (msg->correlation_id) {
        e.correlation_id.len = NHUB_MSG_ID_LEN;
        e.correlation_id.data = (uint8_t *)msg->correlation_id;
    }
    e.created_ms = lib_wall_ms(self);
    e.deadline_ms = msg->deadline_ms;
    e.payload_type = (char *)msg->payload_type;
    e.payload.len = msg->payload_len;
    e.payload.data = (uint8_t *)msg->payload;
    if (wire_envelope_check(&e, why, sizeof why) != 0)
        return lib_set_err(self, NHUB_EINVAL, "%s", why[0] ? why : "envelope is invalid");

    /* The hub limits the Send body: the envelope plus its stream_seq and
     * framing. Its own limit, once a WELCOME told it, counts too. */
    uint32_t limit = frame_limit(self);
    const char *whose = limit < self->max_frame ? " of the hub" : "";
    if (msg->payload_len > limit)
        return lib_set_err(self, NHUB_ETOOBIG, "payload of %zu bytes exceeds max_frame %u%s",
                           msg->payload_len, limit, whose);
    size_t len = protobuf_c_message_get_packed_size(&e.base);
    size_t body = send_body_len(len);
    if (body > limit)
        return lib_set_err(self, NHUB_ETOOBIG, "message of %zu bytes exceeds max_frame %u%s", body,
                           limit, whose);
    s->buf = malloc(len ? len : 1);
    if (!s->buf)
        return lib_set_err(self, NHUB_ENOMEM, "out of memory");
    protobuf_c_message_pack(&e.base, s->buf);
    /* Signed before it is stored: the signature is committed with the
     * envelope, and covers exactly the bytes that will go into Send. */
    *rec = (outbox_record_t){.envelope = s->buf, .envelope_len = len};
    if (!self->keys)
        return 0;
    if (keys_sign(self->keys->signer, s->buf, len, s->sig, &rec->sig_len) != 0)
        return lib_set_err(self, NHUB_ECRYPTO, "signing the envelope failed (key_id %s)",
                           self->keys->sign_id);
    rec->sig = s->sig;
    rec->key_id = self->keys->sign_id;
    rec->key_id_len = KEYS_FPR_LEN;
    return 0;
}

/*
 * Every message is checked, encoded and signed before the one transaction
 * that stores them all, so a bad message anywhere stores nothing and the
 * batch costs one fsync however long it is.
 */
int nhub_send_batch(nhub_t *self, const nhub_message_t *msgs, size_t n,
                    uint8_t (*msg_ids)[NHUB_MSG_ID_LEN])
{
    int rc = lib_batch_start(self, msgs, n, "msgs");
    if (rc != 0)
        return rc < 0 ? rc : 0;
    staged_t *staged = calloc(n, sizeof *staged);
    outbox_record_t *recs = calloc(n, sizeof *recs);
    if (!staged || !recs) {
        rc = lib_set_err(self, NHUB_ENOMEM, "out of memory for a batch of %zu", n);
        goto done;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = stage_message(self, &msgs[i], &staged[i], &recs[i]);
        if (rc != 0)
            lib_batch_err(self, rc, n, i);
    }
    if (rc == 0) {
        rc = outbox_append_batch(self->store, recs, n, NULL);
        if (rc != 0)
            lib_set_err(self, rc, "%s", outbox_error(self->store));
    }
done:
    for (size_t i = 0; staged && i < n; i++)
        free(staged[i].buf);
    if (rc == 0 && msg_ids)
        for (size_t i = 0; i < n; i++)
            memcpy(msg_ids[i], staged[i].id, NHUB_MSG_ID_LEN);
    free(staged);
    free(recs);
    if (rc == 0 && !self->offline)
        conn_serve(self, 0, NULL);
    return rc;
}

int nhub_send(nhub_t *self, const nhub_message_t *msg, uint8_t msg_id_out[NHUB_MSG_ID_LEN])
{
    uint8_t id[1][NHUB_MSG_ID_LEN];
    if (self && !msg)
        return lib_set_err(self, NHUB_EINVAL, "message is NULL");
    int rc = nhub_send_batch(self, msg, 1, id);
    if (rc == 0 && msg_id_out)
        memcpy(msg_id_out, id[0], NHUB_MSG_ID_LEN);
    return rc;
}
