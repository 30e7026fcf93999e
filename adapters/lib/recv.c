/*
 * recv.c: what the hub delivers, on its way to the application and back:
 * DELIVER -> inbox -> nhub_recv, then nhub_confirm -> DELIVERED. A
 * confirmation is recorded in the store (the confirmed set, and the unsent
 * set until the hub is known to have committed its DELIVERED) before any
 * DELIVERED goes out; the argument is at nhub_confirm_batch. A HEARTBEAT
 * the hub answers proves the DELIVEREDs written before it committed. A
 * DELIVER of a msg_id already confirmed is answered from the confirmed set
 * and never handed out again. See nhub_internal.h.
 */
#include "nhub_internal.h"

static int write_delivered(nhub_t *self, const uint8_t msg_id[NHUB_MSG_ID_LEN], uint64_t dseq)
{
    wire_delivered_t d = NHUB__WIRE__V1__DELIVERED__INIT;
    d.msg_id.len = NHUB_MSG_ID_LEN;
    d.msg_id.data = (uint8_t *)msg_id;
    d.dseq = dseq;
    return conn_session_write(self, WIRE_DELIVERED, &d.base);
}

/* Is `id` among the DELIVEREDs this session wrote and awaits proof of? */
static int proof_has(const nhub_t *self, const uint8_t id[NHUB_MSG_ID_LEN])
{
    for (size_t k = 0; k < self->proof_count; k++)
        if (!memcmp(self->proof[(self->proof_head + k) % self->proof_cap].u.id, id,
                    NHUB_MSG_ID_LEN))
            return 1;
    return 0;
}

/* Write the DELIVERED of `u` and await its proof; 0, or not written. */
static int delivered_out(nhub_t *self, const outbox_unsent_t *u)
{
    if (self->state != SESSION_READY || self->proof_count == self->proof_cap ||
        self->want_write || write_delivered(self, u->id, u->dseq) != 0)
        return -1;
    struct proof *p = &self->proof[(self->proof_head + self->proof_count) % self->proof_cap];
    p->u = *u;
    p->beats = self->beats_written;
    self->proof_count++;
    return 0;
}

/*
 * Write the DELIVEREDs of the store's unsent set that this session has not
 * written, in msg_id order from where it got to, while the socket and the
 * proof list have room; then a HEARTBEAT, whose answer proves them.
 * Nothing is dropped: what does not fit now is written on a later pass.
 */
void recv_flush_delivered(nhub_t *self)
{
    int wrote = 0;
    while (self->state == SESSION_READY && !self->unsent_done && !self->want_write &&
           self->proof_count < self->proof_cap) {
        outbox_unsent_t batch[64];
        size_t n = 0, room = self->proof_cap - self->proof_count;
        if (outbox_unsent_next(self->store, self->unsent_started ? self->unsent_after : NULL,
                               batch, room < 64 ? room : 64, &n) != 0) {
            log_error("nhub.unsent_read_failed", "region=%s error=%s", self->region,
                      outbox_error(self->store));
            break;
        }
        if (n == 0) {
            self->unsent_done = 1;
            break;
        }
        size_t i = 0;
        for (; i < n; i++) {
            if (!proof_has(self, batch[i].id) && delivered_out(self, &batch[i]) != 0)
                break;
            memcpy(self->unsent_after, batch[i].id, NHUB_MSG_ID_LEN);
            self->unsent_started = 1;
            wrote = 1;
        }
        if (i < n)
            break;
    }
    if (wrote)
        conn_send_heartbeat(self, lib_now_ms(self));
}

/*
 * Confirmations just recorded in the unsent set: their DELIVEREDs go out
 * now if the socket takes them; otherwise a pass over the set from the
 * start writes them later (ids sort anywhere against where it got to).
 */
static void send_delivered(nhub_t *self, const outbox_unsent_t *u, size_t n)
{
    size_t written = 0;
    for (size_t i = 0; i < n; i++)
        if (delivered_out(self, &u[i]) == 0)
            written++;
        else
            break;
    if (written < n) {
        self->unsent_started = 0;
        self->unsent_done = 0;
    }
    if (written)
        conn_send_heartbeat(self, lib_now_ms(self));
}

/* A HEARTBEAT answered: the DELIVEREDs written before it are committed. */
void recv_settle_delivered(nhub_t *self)
{
    outbox_unsent_t proven[64];
    while (self->proof_count) {
        size_t n = 0;
        while (n < self->proof_count && n < 64) {
            const struct proof *p = &self->proof[(self->proof_head + n) % self->proof_cap];
            if (p->beats >= self->beats_answered)
                break;
            proven[n++] = p->u;
        }
        if (n == 0)
            return;
        int rc = outbox_unsent_settle(self->store, proven, n, lib_wall_ms(self));
        if (rc != 0) { /* they stay unsent: written again by a later session */
            log_error("nhub.settle_failed", "region=%s error=%s", self->region,
                      outbox_error(self->store));
            return;
        }
        self->proof_head = (self->proof_head + n) % self->proof_cap;
        self->proof_count -= n;
        self->st.delivered_settled += n;
    }
}

/* Read a varint at p[*i] (bounded by len). Returns 0, or -1 if it is cut or too long. */
static int read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/*
 * Where the payload (Envelope field 10, length-delimited) lies in the
 * encoded envelope: the last occurrence, as the decoder takes it. Lets a
 * delivery keep one copy of the bytes (inbox_push). Returns 0, or -1 if
 * the walk fails or there is no payload field.
 */
static int envelope_payload_at(const uint8_t *p, size_t len, size_t *off, size_t *plen)
{
    size_t i = 0;
    int found = 0;
    while (i < len) {
        uint64_t tag = 0, n = 0;
        if (read_varint(p, len, &i, &tag) != 0)
            return -1;
        switch (tag & 7) {
        case 0:
            if (read_varint(p, len, &i, &n) != 0)
                return -1;
            break;
        case 1:
        case 5:
            n = (tag & 7) == 1 ? 8 : 4;
            if (n > len - i)
                return -1;
            i += n;
            break;
        case 2:
            if (read_varint(p, len, &i, &n) != 0 || n > len - i)
                return -1;
            if (tag >> 3 == 10) {
                *off = i;
                *plen = (size_t)n;
                found = 1;
            }
            i += n;
            break;
        default: return -1;
        }
    }
    return found ? 0 : -1;
}

/* Queue a checked envelope for nhub_recv. */
static void queue_delivery(nhub_t *self, const wire_deliver_t *dl, const wire_envelope_t *e)
{
    nhub_delivery_t d;
    size_t off = 0, plen = 0;
    memset(&d, 0, sizeof d);
    memcpy(d.msg_id, e->msg_id.data, NHUB_MSG_ID_LEN);
    lib_copy_str(d.source, sizeof d.source, e->source);
    lib_copy_str(d.destination, sizeof d.destination, e->destination);
    lib_copy_str(d.item, sizeof d.item, e->item);
    lib_copy_str(d.payload_type, sizeof d.payload_type, e->payload_type);
    d.kind = (int)e->kind;
    if (e->correlation_id.len == NHUB_MSG_ID_LEN) {
        memcpy(d.correlation_id, e->correlation_id.data, NHUB_MSG_ID_LEN);
        d.correlation_len = NHUB_MSG_ID_LEN;
    }
    d.created_ms = e->created_ms;
    d.deadline_ms = e->deadline_ms;
    d.seq = dl->seq;
    d.dseq = dl->dseq;
    d.envelope = dl->envelope.data;
    d.envelope_len = dl->envelope.len;
    d.payload = e->payload.data;
    d.payload_len = e->payload.len;
    if (envelope_payload_at(dl->envelope.data, dl->envelope.len, &off, &plen) == 0 &&
        plen == e->payload.len)
        d.payload = dl->envelope.data + off;
    if (dl->signature.len) {
        d.signature = dl->signature.data;
        d.signature_len = dl->signature.len;
    }
    if (dl->original_envelope.len) {
        d.signed_envelope = dl->original_envelope.data;
        d.signed_envelope_len = dl->original_envelope.len;
        d.translated = 1;
    }
    if (dl->key_id && strlen(dl->key_id) < sizeof d.key_id)
        lib_copy_str(d.key_id, sizeof d.key_id, dl->key_id);
    if (inbox_push(self->inbox, &d) != 0)
        log_error("nhub.deliver_nomem", "region=%s dseq=%llu", self->region,
                  (unsigned long long)dl->dseq);
}

void recv_on_deliver(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_deliver_t *dl = (const wire_deliver_t *)m;
    ProtobufCMessage *em = NULL;
    char why[128] = "";
    char hex[33];
    int found = 0;
    int rc = wire_decode(&nhub__wire__v1__envelope__descriptor, dl->envelope.data,
                         dl->envelope.len, lib_decode_budget(self), &em);
    if (rc == 0)
        rc = wire_envelope_check((const wire_envelope_t *)em, why, sizeof why);
    if (rc != 0) {
        /* Not ours to fix and never handed out; keep the queue moving behind it. */
        self->malformed++;
        log_error("nhub.deliver_malformed", "region=%s seq=%llu dseq=%llu why=%s", self->region,
                  (unsigned long long)dl->seq, (unsigned long long)dl->dseq,
                  why[0] ? why : "does not decode");
        inbox_skip(self->inbox, dl->dseq, dl->prev_dseq);
        wire_free(&em);
        return;
    }
    const wire_envelope_t *e = (const wire_envelope_t *)em;
    nhub_msg_id_hex(e->msg_id.data, hex);
    rc = outbox_confirmed_has(self->store, e->msg_id.data, &found);
    if (rc != 0) {
        log_error("nhub.confirmed_lookup_failed", "region=%s msg_id=%s", self->region, hex);
    } else if (found) {
        /* The hub has not got its DELIVERED: back into the unsent set (it
         * must not age before the hub has one), and one goes out. */
        self->st.duplicates++;
        inbox_skip(self->inbox, dl->dseq, dl->prev_dseq);
        outbox_unsent_t u = {.dseq = dl->dseq};
        memcpy(u.id, e->msg_id.data, NHUB_MSG_ID_LEN);
        if (outbox_confirmed_put(self->store, u.id, u.dseq, lib_wall_ms(self)) == 0)
            send_delivered(self, &u, 1);
        else
            log_error("nhub.confirmed_put_failed", "region=%s msg_id=%s error=%s", self->region,
                      hex, outbox_error(self->store));
        log_debug("nhub.deliver_confirmed_before", "region=%s msg_id=%s dseq=%llu", self->region,
                  hex, (unsigned long long)dl->dseq);
    } else {
        inbox_verdict_t v = inbox_classify(self->inbox, e->msg_id.data, dl->dseq, dl->prev_dseq);
        if (v == INBOX_ACCEPT)
            queue_delivery(self, dl, e);
        else if (v == INBOX_DUPLICATE)
            self->st.duplicates++;
        log_debug("nhub.deliver", "region=%s msg_id=%s dseq=%llu attempt=%u verdict=%d",
                  self->region, hex, (unsigned long long)dl->dseq, dl->attempt, (int)v);
    }
    wire_free(&em);
}

/* Forget confirmations older than the retention, a bounded batch at a time. */
void recv_expire_confirmed(nhub_t *self)
{
    int64_t now = lib_now_ms(self);
    if (now < self->next_expire_ms)
        return;
    self->next_expire_ms = now + NHUB_EXPIRE_EVERY_MS;
    int64_t wall = lib_wall_ms(self);
    int64_t before = wall > INT64_MIN + self->confirmed_retention_ms
                         ? wall - self->confirmed_retention_ms
                         : INT64_MIN;
    uint64_t n = 0;
    int rc = outbox_confirmed_expire(self->store, before, NHUB_EXPIRE_BATCH, &n);
    if (rc != 0) {
        log_error("nhub.confirmed_expire_failed", "region=%s error=%d", self->region, rc);
        return;
    }
    self->st.confirmed_expired += n;
    if (n)
        log_debug("nhub.confirmed_expired", "region=%s n=%llu", self->region,
                  (unsigned long long)n);
}

/* ---- public API ----------------------------------------------------------- */

static int have_ready(nhub_t *self)
{
    return inbox_ready(self->inbox) > 0;
}

int nhub_recv(nhub_t *self, nhub_delivery_t **out, int timeout_ms)
{
    if (!self || !out)
        return NHUB_EINVAL;
    *out = NULL;
    if (!have_ready(self)) {
        int rc = conn_serve(self, timeout_ms, have_ready);
        if (rc != 0)
            return rc;
    }
    *out = inbox_pop(self->inbox);
    self->st.received++;
    return 0;
}

/* Check that ds[i] is a delivery this adapter handed out, once in ds[0..n). */
static int check_delivery(nhub_t *self, nhub_delivery_t *const *ds, size_t n, size_t i)
{
    if (!ds[i])
        return lib_batch_err(self, lib_set_err(self, NHUB_EINVAL, "delivery is NULL"), n, i);
    if (!inbox_holds(self->inbox, ds[i]))
        return lib_batch_err(
            self, lib_set_err(self, NHUB_EINVAL, "delivery is not held by this adapter"), n, i);
    for (size_t j = 0; j < i; j++)
        if (ds[j] == ds[i])
            return lib_batch_err(self, lib_set_err(self, NHUB_EINVAL, "delivery is given twice"), n,
                                 i);
    return 0;
}

/*
 * Exactly once rests on the order here: the whole set is recorded as
 * confirmed, in one transaction, before any DELIVERED goes out. A DELIVERED
 * lets the hub forget the message, so once one is sent the record must
 * already be durable: otherwise a failed commit (the call returns an error
 * and the application keeps or releases the delivery) or a crash before
 * it would leave neither side holding the message as confirmed, and the
 * application could not tell. The other way round costs nothing: a
 * DELIVERED lost after the commit is answered again from the confirmed set
 * when the hub redelivers.
 */
int nhub_confirm_batch(nhub_t *self, nhub_delivery_t **ds, size_t n)
{
    int rc = lib_batch_start(self, ds, n, "deliveries");
    if (rc != 0)
        return rc < 0 ? rc : 0;
    for (size_t i = 0; i < n; i++) {
        rc = check_delivery(self, ds, n, i);
        if (rc != 0)
            return rc;
    }
    outbox_confirmation_t *c = calloc(n, sizeof *c);
    if (!c)
        return lib_set_err(self, NHUB_ENOMEM, "out of memory for a batch of %zu", n);
    for (size_t i = 0; i < n; i++)
        c[i] = (outbox_confirmation_t){ds[i]->msg_id, ds[i]->dseq};
    rc = outbox_confirmed_put_batch(self->store, c, n, lib_wall_ms(self));
    free(c);
    if (rc != 0)
        return lib_set_err(self, rc, "%s", outbox_error(self->store));
    outbox_unsent_t *u = malloc(n * sizeof *u);
    if (u) {
        for (size_t i = 0; i < n; i++) {
            memcpy(u[i].id, ds[i]->msg_id, NHUB_MSG_ID_LEN);
            u[i].dseq = ds[i]->dseq;
        }
        send_delivered(self, u, n);
        free(u);
    } else { /* recorded: a pass over the unsent set writes them */
        self->unsent_started = 0;
        self->unsent_done = 0;
    }
    for (size_t i = 0; i < n; i++) {
        self->st.confirmed++;
        inbox_release(self->inbox, ds[i]);
        ds[i] = NULL;
    }
    return 0;
}

int nhub_confirm(nhub_t *self, nhub_delivery_t **dp)
{
    if (self && !dp)
        return lib_set_err(self, NHUB_EINVAL, "delivery is NULL");
    return nhub_confirm_batch(self, dp, 1);
}

void nhub_delivery_release(nhub_t *self, nhub_delivery_t **dp)
{
    if (!self || !dp || !*dp)
        return;
    inbox_release(self->inbox, *dp);
    *dp = NULL;
}
