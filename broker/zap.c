/*
 * zap.c: identity. The ZAP handler decides each CURVE handshake by the
 * configured region keys; the monitor reports handshakes that failed before
 * it. See hub_internal.h.
 */
#include "hub_internal.h"

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
void zap_serve(hub_t *h)
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
            hub_security_event(h, 0, fpr, address, why);
        }
    }
}

/* Handshakes that failed before ZAP (no CURVE, wrong hub key, garbage). */
void zap_serve_monitor(hub_t *h)
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
                hub_security_event(h, 1, "", address, why);
            }
        }
        close_parts(p, n);
    }
}
