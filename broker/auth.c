/*
 * auth.c: key lookups for the ZAP handler, per-frame identity, envelope
 * signatures (see auth.h).
 *
 * A region has at most CFG_KEYS_MAX keys, and there are a few dozen regions,
 * so the handshake lookup is a scan over raw keys: it runs once per
 * connection. The per-frame and per-SEND lookups go through the region
 * index first and then scan that region's few keys.
 */
#include "auth.h"

#include "nhub_err.h"
#include "nhub_wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct auth_key {
    uint8_t curve[32];
    char fpr[KEYS_FPR_LEN + 1];
    keys_verifier_t *verifier;
    int64_t not_before_ms, not_after_ms; /* 0 = no bound */
};

struct auth_region {
    char code[KEYS_REGION_LEN + 1];
    size_t n_keys;
    struct auth_key keys[CFG_KEYS_MAX];
};

struct auth {
    size_t n_regions;
    struct auth_region *regions; /* cfg order: sorted by code */
};

int auth_new(const cfg_t *cfg, auth_t **out, char *err, size_t errcap)
{
    *out = NULL;
    auth_t *a = calloc(1, sizeof *a);
    if (!a ||
        !(a->regions = calloc(cfg->region_count ? cfg->region_count : 1, sizeof *a->regions))) {
        free(a);
        snprintf(err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    a->n_regions = cfg->region_count;
    for (size_t i = 0; i < cfg->region_count; i++) {
        const cfg_region_t *r = &cfg->regions[i];
        struct auth_region *ar = &a->regions[i];
        snprintf(ar->code, sizeof ar->code, "%s", r->code);
        for (size_t k = 0; k < r->key_count; k++) {
            const cfg_key_t *ck = &r->keys[k];
            struct auth_key *ak = &ar->keys[ar->n_keys];
            char why[160];
            if (!ck->curve[0] || !zmq_z85_decode(ak->curve, ck->curve)) {
                snprintf(err, errcap, "region %s key %zu: no valid CURVE key (key file not read?)",
                         r->code, k);
                auth_destroy(&a);
                return NHUB_ECONFIG;
            }
            if (keys_verifier_parse(ck->sign, &ak->verifier, why, sizeof why) != 0) {
                snprintf(err, errcap, "region %s key %zu: %s", r->code, k, why);
                auth_destroy(&a);
                return NHUB_ECONFIG;
            }
            keys_curve_fpr(ak->curve, ak->fpr);
            ak->not_before_ms = ck->not_before_ms;
            ak->not_after_ms = ck->not_after_ms;
            ar->n_keys++;
        }
    }
    *out = a;
    return 0;
}

void auth_destroy(auth_t **self)
{
    if (!self || !*self)
        return;
    auth_t *a = *self;
    for (size_t i = 0; a->regions && i < a->n_regions; i++)
        for (size_t k = 0; k < a->regions[i].n_keys; k++)
            keys_verifier_free(&a->regions[i].keys[k].verifier);
    free(a->regions);
    free(a);
    *self = NULL;
}

/* NULL if the key is valid at `now`, else why not. */
static const char *key_window(const struct auth_key *k, int64_t now)
{
    if (k->not_before_ms && now < k->not_before_ms)
        return "key not yet valid";
    if (k->not_after_ms && now >= k->not_after_ms)
        return "key expired";
    return NULL;
}

int auth_handshake(const auth_t *a, const uint8_t key[32], int64_t now_ms,
                   char user_id[AUTH_USER_ID_MAX], char fpr[KEYS_FPR_LEN + 1], const char **why)
{
    keys_curve_fpr(key, fpr);
    user_id[0] = '\0';
    for (size_t i = 0; i < a->n_regions; i++)
        for (size_t k = 0; k < a->regions[i].n_keys; k++) {
            const struct auth_key *ak = &a->regions[i].keys[k];
            if (memcmp(ak->curve, key, 32) != 0)
                continue;
            if ((*why = key_window(ak, now_ms)))
                return NHUB_EREFUSED;
            snprintf(user_id, AUTH_USER_ID_MAX, "%s/%s", a->regions[i].code, ak->fpr);
            return 0;
        }
    *why = "unknown key";
    return NHUB_EREFUSED;
}

static int region_index(const auth_t *a, const char *code)
{
    size_t lo = 0, hi = a->n_regions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(code, a->regions[mid].code, KEYS_REGION_LEN);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

int auth_identity(const auth_t *a, const char *user_id, int64_t now_ms, const char **why)
{
    if (!user_id || strlen(user_id) != AUTH_USER_ID_MAX - 1 || user_id[KEYS_REGION_LEN] != '/') {
        *why = "connection has no authenticated identity";
        return -1;
    }
    int r = region_index(a, user_id);
    if (r < 0) {
        *why = "region no longer configured";
        return -1;
    }
    const char *fpr = user_id + KEYS_REGION_LEN + 1;
    const struct auth_region *ar = &a->regions[r];
    for (size_t k = 0; k < ar->n_keys; k++) {
        if (strcmp(ar->keys[k].fpr, fpr) != 0)
            continue;
        if ((*why = key_window(&ar->keys[k], now_ms)))
            return -1;
        return r;
    }
    *why = "key no longer configured for the region";
    return -1;
}

int auth_verify(const auth_t *a, int region, const char *key_id, const void *envelope, size_t len,
                const uint8_t *sig, size_t siglen, int64_t now_ms, char *why, size_t whycap)
{
    if (region < 0 || (size_t)region >= a->n_regions) {
        snprintf(why, whycap, "no such region");
        return NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE;
    }
    const struct auth_region *ar = &a->regions[region];
    if (ar->n_keys == 0)
        return 0; /* development mode without keys: nothing to check against */
    if (siglen == 0) {
        snprintf(why, whycap, "envelope is not signed; region %s must sign with its key", ar->code);
        return NHUB__WIRE__V1__NACK_CODE__NACK_UNSIGNED;
    }
    for (size_t k = 0; k < ar->n_keys; k++) {
        const struct auth_key *ak = &ar->keys[k];
        if (!key_id || strcmp(keys_verifier_id(ak->verifier), key_id) != 0)
            continue;
        const char *late = key_window(ak, now_ms);
        if (late) {
            snprintf(why, whycap, "signing key %s of region %s: %s", key_id, ar->code, late);
            return NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE;
        }
        int rc = keys_verify(ak->verifier, envelope, len, sig, siglen);
        if (rc == 0)
            return 0;
        snprintf(why, whycap, "signature does not verify with key %s of region %s", key_id,
                 ar->code);
        return NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE;
    }
    snprintf(why, whycap, "key id %.32s is not a signing key of region %s",
             key_id && key_id[0] ? key_id : "(none)", ar->code);
    return NHUB__WIRE__V1__NACK_CODE__NACK_BAD_SIGNATURE;
}

size_t auth_key_count(const auth_t *a, int region)
{
    if (!a || region < 0 || (size_t)region >= a->n_regions)
        return 0;
    return a->regions[region].n_keys;
}
