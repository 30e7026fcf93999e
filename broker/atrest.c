/*
 * atrest.c: payload privacy at rest (proto/seal.h). With
 * security.payload_key_file set, every envelope the hub stores (the
 * journal record's `envelope` field, the only copy the store keeps: queues
 * hold the record's seq) is sealed in the commit that stores it, with the
 * message's msg_id bound in, and opened again when it is delivered, so
 * adapters get the bytes as sent and the sender's signature still checks.
 * The Merkle tree and the chain cover the records as stored, so auditors
 * verify the journal without the key.
 *
 * Records from before sealing was turned on are delivered as they are; a
 * sealed record the hub cannot open (the key was changed, or the record
 * is damaged) is never delivered: counted, logged (its seq, region and the
 * key ids, never payload data) and left queued for a hub with its key.
 */
#include "hub_internal.h"

/* Grow *buf to `need` bytes. */
static int reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    uint8_t *p = realloc(*buf, need);
    if (!p)
        return NHUB_ENOMEM;
    *buf = p;
    *cap = need;
    return 0;
}

int atrest_setup(hub_t *h, char *err, size_t errcap)
{
    const cfg_security_t *sec = &h->cfg->security;
    if (!sec->payload_key_file[0])
        return 0;
    seal_cipher_t cipher = sec->payload_cipher == CFG_PAYLOAD_SM4_CTR_HMAC_SM3
                               ? SEAL_SM4_CTR_HMAC_SM3
                               : SEAL_AES_256_GCM;
    char why[512];
    int rc = seal_key_load(sec->payload_key_file, cipher, &h->seal_key, why, sizeof why);
    if (rc) {
        snprintf(err, errcap, "security.payload_key_file: %s", why);
        return rc;
    }
    char id[2 * SEAL_KEY_ID_LEN + 1];
    log_info("hub.payloads_sealed", "cipher=%s key_id=%s", seal_cipher_name(cipher),
             log_hex(id, sizeof id, seal_key_id(h->seal_key), SEAL_KEY_ID_LEN));
    return 0;
}

void atrest_teardown(hub_t *h)
{
    seal_key_free(&h->seal_key);
    free(h->sealed);
    free(h->opened);
    h->sealed = h->opened = NULL;
    h->sealed_cap = h->opened_cap = 0;
}

int atrest_seal(hub_t *h, journal_event_t *ev, ProtobufCBinaryData *saved)
{
    *saved = ev->envelope;
    if (!h->seal_key || ev->envelope.len == 0)
        return 0;
    size_t need = seal_sealed_len(h->seal_key, ev->envelope.len), len = 0;
    int rc = need ? reserve(&h->sealed, &h->sealed_cap, need) : NHUB_ETOOBIG;
    if (!rc)
        rc = seal_seal(h->seal_key, ev->msg_id.data, ev->msg_id.len, ev->envelope.data,
                       ev->envelope.len, h->sealed, h->sealed_cap, &len);
    if (rc) {
        log_error("hub.seal_failed", "msg_id_len=%zu rc=%d", ev->msg_id.len, rc);
        return rc;
    }
    ev->envelope = (ProtobufCBinaryData){len, h->sealed};
    return 0;
}

/* Log an envelope that did not open, at most once a second (each is counted). */
static void log_unopened(hub_t *h, const journal_event_t *ev, uint64_t seq, const char *region,
                         int rc)
{
    int64_t now = hub_now_mono(h);
    if (h->unopened_log_at && now - h->unopened_log_at < 1000) {
        h->unopened_quiet++;
        return;
    }
    uint8_t rid[SEAL_KEY_ID_LEN] = {0};
    char sealed_id[2 * SEAL_KEY_ID_LEN + 1], hub_id[2 * SEAL_KEY_ID_LEN + 1] = "none";
    seal_header(ev->envelope.data, ev->envelope.len, NULL, rid);
    if (h->seal_key)
        log_hex(hub_id, sizeof hub_id, seal_key_id(h->seal_key), SEAL_KEY_ID_LEN);
    const char *why = rc == NHUB_ENOTFOUND || !h->seal_key ? "sealed with another key"
                      : rc == NHUB_ECRYPTO                 ? "does not authenticate (altered)"
                                                           : "not a sealed envelope";
    log_error("hub.sealed_unopened",
              "region=%s seq=%llu key_id=%s hub_key_id=%s reason=\"%s\" not_logged=%llu", region,
              (unsigned long long)seq, log_hex(sealed_id, sizeof sealed_id, rid, sizeof rid),
              hub_id, why, (unsigned long long)h->unopened_quiet);
    h->unopened_log_at = now;
    h->unopened_quiet = 0;
}

int atrest_open(hub_t *h, const journal_event_t *ev, uint64_t seq, const char *region,
                ProtobufCBinaryData *out)
{
    *out = ev->envelope;
    if (!seal_is_sealed(ev->envelope.data, ev->envelope.len))
        return 0;
    size_t len = 0;
    int rc = h->seal_key ? reserve(&h->opened, &h->opened_cap, ev->envelope.len) : NHUB_ENOTFOUND;
    if (!rc)
        rc = seal_open(h->seal_key, ev->msg_id.data, ev->msg_id.len, ev->envelope.data,
                       ev->envelope.len, h->opened, h->opened_cap, &len);
    if (rc == NHUB_ENOMEM)
        return rc;
    if (rc) {
        h->n.sealed_unopened++;
        log_unopened(h, ev, seq, region, rc);
        return NHUB_ECRYPTO;
    }
    *out = (ProtobufCBinaryData){len, h->opened};
    return 0;
}
