/*
 * receipt.c: nhub_receipt_get and nhub_receipt_verify (see adapters/nhub.h
 * and proto/receipt.h).
 *
 * A receipt is asked for once the session is READY, and asked again in
 * the next session if the connection is lost before the answer: the hub
 * answers RECEIPT_GET from its store, so asking twice is harmless. The
 * answer is matched by msg_id; one call waits at a time (there is no
 * thread: the caller's own call serves the connection meanwhile).
 */
#include "nhub_internal.h"

#include "receipt.h"

/* Ask when the session is ready; done once answered. */
static int receipt_step(nhub_t *self)
{
    struct receipt_wait *w = &self->receipt;
    if (w->done)
        return 1;
    if (self->state != SESSION_READY) {
        w->written = 0; /* a new session asks again */
        return 0;
    }
    if (!w->written) {
        wire_receipt_get_t get = NHUB__WIRE__V1__RECEIPT_GET__INIT;
        get.msg_id.data = w->msg_id;
        get.msg_id.len = NHUB_MSG_ID_LEN;
        w->written = conn_session_write(self, WIRE_RECEIPT_GET, &get.base) == 0;
    }
    return 0;
}

static int matches(const nhub_t *self, ProtobufCBinaryData id)
{
    const struct receipt_wait *w = &self->receipt;
    return w->active && !w->done && id.len == NHUB_MSG_ID_LEN &&
           memcmp(id.data, w->msg_id, NHUB_MSG_ID_LEN) == 0;
}

void receipt_on_receipt(nhub_t *self, const ProtobufCMessage *m)
{
    const wire_receipt_t *r = (const wire_receipt_t *)m;
    struct receipt_wait *w = &self->receipt;
    if (!matches(self, r->msg_id))
        return; /* an answer to a call that gave up waiting */
    tlog_alg_t alg = tlog_alg_parse(r->tree_hash);
    w->done = 1;
    w->rc = alg ? receipt_format(w->msg_id, alg, r->record.data, r->record.len, r->proof,
                                 strlen(r->proof), &w->text, &w->len)
                : NHUB_EMALFORMED;
    if (w->rc)
        snprintf(w->why, sizeof w->why, "the hub's RECEIPT does not make a receipt (%s)",
                 alg ? nhub_strerror(w->rc) : "unknown tree_hash");
}

int receipt_on_nack(nhub_t *self, const wire_nack_t *n)
{
    /* A refusal of a receipt nobody waits for any more (it came after
     * nhub_receipt_get gave up) is about no session: dropped, not taken
     * for a refused HELLO or a reason to back off. */
    if (n->stream_seq == 0 && !matches(self, n->msg_id) &&
        (n->code == NHUB__WIRE__V1__NACK_CODE__NACK_RECEIPT_UNKNOWN ||
         n->code == NHUB__WIRE__V1__NACK_CODE__NACK_RECEIPT_NOT_COVERED))
        return 1;
    if (n->stream_seq != 0 || !matches(self, n->msg_id))
        return 0;
    struct receipt_wait *w = &self->receipt;
    w->done = 1;
    w->rc =
        n->code == NHUB__WIRE__V1__NACK_CODE__NACK_RECEIPT_UNKNOWN ? NHUB_ENOTFOUND : NHUB_EREFUSED;
    snprintf(w->why, sizeof w->why, "the hub refused the receipt (code %d): %s", (int)n->code,
             n->text ? n->text : "");
    return 1;
}

int nhub_receipt_get(nhub_t *self, const uint8_t msg_id[NHUB_MSG_ID_LEN], int timeout_ms,
                     char **text, size_t *len)
{
    if (!self || !msg_id || !text)
        return NHUB_EINVAL;
    *text = NULL;
    if (self->offline)
        return lib_set_err(self, NHUB_ECLOSED, "opened offline: no hub to ask for a receipt");
    struct receipt_wait *w = &self->receipt;
    if (w->active)
        return lib_set_err(self, NHUB_EINVAL, "a receipt is being fetched already");
    memset(w, 0, sizeof *w);
    w->active = 1;
    memcpy(w->msg_id, msg_id, NHUB_MSG_ID_LEN);
    int rc = conn_serve(self, timeout_ms, receipt_step);
    if (rc == 0)
        rc = w->rc;
    if (rc == 0) {
        *text = w->text;
        if (len)
            *len = w->len;
        w->text = NULL;
    } else if (w->done) {
        lib_set_err(self, rc, "%s", w->why);
    } else if (rc == NHUB_ETIMEOUT) {
        lib_set_err(self, rc, "no receipt from the hub within %d ms", timeout_ms);
    }
    free(w->text);
    memset(w, 0, sizeof *w);
    return rc;
}

int nhub_receipt_verify(const char *text, size_t len, const char *vkey, const uint8_t *msg_id,
                        nhub_receipt_info_t *info, char *err, size_t errcap)
{
    if (!text || !vkey)
        return NHUB_EINVAL;
    tlog_verifier_t *v = NULL;
    receipt_t *r = NULL;
    receipt_info_t ri;
    char why[400];
    int rc = tlog_verifier_parse(vkey, &v, why, sizeof why);
    if (rc) {
        if (err && errcap)
            snprintf(err, errcap, "vkey: %s", why);
        return rc;
    }
    if (!(rc = receipt_parse(text, len, &r, err, errcap)))
        rc = receipt_verify(r, v, msg_id, &ri, err, errcap);
    if (!rc && info) {
        memset(info, 0, sizeof *info);
        memcpy(info->msg_id, r->msg_id, NHUB_MSG_ID_LEN);
        info->seq = ri.seq;
        info->tree_size = ri.tree_size;
        info->time_ms = ri.time_ms;
        lib_copy_str(info->origin, sizeof info->origin, ri.origin);
        lib_copy_str(info->source, sizeof info->source, ri.source);
        lib_copy_str(info->destination, sizeof info->destination, ri.destination);
        lib_copy_str(info->item, sizeof info->item, ri.item);
    }
    receipt_free(&r);
    tlog_verifier_free(&v);
    return rc;
}
