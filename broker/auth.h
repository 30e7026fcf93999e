/*
 * auth.h: who a connection is, and whether what it sends is really its own.
 *
 * Built from one configuration (cfg_t) and rebuilt on every reload; region
 * indexes are those of that cfg_t. It answers three questions:
 *
 *   1. At the CURVE handshake (the hub's ZAP handler): which region owns
 *      this client public key, and is the key valid now? The answer becomes
 *      the connection's ZAP User-Id, "<region>/<fingerprint>", which libzmq
 *      attaches to every message the connection sends.
 *   2. For every frame: is the key named by that User-Id still valid (a
 *      rotation's overlap may have ended since the handshake)?
 *   3. For every SEND: is the envelope signed by one of the region's
 *      signing keys, valid now?
 *
 * Time is passed in (wall clock, ms since the epoch), never read here. Pure
 * logic over OpenSSL; no sockets, no store. Nothing here ever holds or
 * prints a secret: only public keys, fingerprints and key ids.
 */
#ifndef NHUB_AUTH_H
#define NHUB_AUTH_H

#include "cfg.h"
#include "keys.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct auth auth_t;

/* "<6-digit region>/<32 hex fingerprint>" and its NUL. */
#define AUTH_USER_ID_MAX (KEYS_REGION_LEN + 1 + KEYS_FPR_LEN + 1)

/*
 * Build from `cfg` (every key's curve and sign must be filled: use a cfg
 * from cfg_load, which reads key files). Returns 0 and *out, or
 * NHUB_ECONFIG / NHUB_ENOMEM with a message in `err` naming the region and
 * key.
 */
int auth_new(const cfg_t *cfg, auth_t **out, char *err, size_t errcap);

/* Free; accepts NULL; sets *self to NULL. */
void auth_destroy(auth_t **self);

/*
 * ZAP decision for a raw 32-byte CURVE client key at time `now_ms`. On
 * success returns 0 and writes the User-Id into `user_id`. Otherwise returns
 * NHUB_EREFUSED and sets *why ("unknown key", "key expired", "key not yet
 * valid"). `fpr` (KEYS_FPR_LEN + 1) always receives the key's fingerprint.
 */
int auth_handshake(const auth_t *a, const uint8_t key[32], int64_t now_ms,
                   char user_id[AUTH_USER_ID_MAX], char fpr[KEYS_FPR_LEN + 1], const char **why);

/*
 * The region index named by a User-Id, if the key it names is still one of
 * that region's keys and valid at `now_ms`; -1 otherwise, with *why set.
 */
int auth_identity(const auth_t *a, const char *user_id, int64_t now_ms, const char **why);

/*
 * Check the signature of `len` bytes of `envelope` sent by region index
 * `region` with key id `key_id` at `now_ms`. Returns 0 if valid (or if the
 * region has no signing key, which only the insecure development mode
 * allows), else a wire NackCode: NACK_UNSIGNED (no signature) or
 * NACK_BAD_SIGNATURE (unknown or expired key id, or the signature does not
 * verify), with the reason in `why`. Thread-safe: several threads may
 * verify with one auth_t at once.
 */
int auth_verify(const auth_t *a, int region, const char *key_id, const void *envelope, size_t len,
                const uint8_t *sig, size_t siglen, int64_t now_ms, char *why, size_t whycap);

/* Number of keys configured for region index `region` (0 if out of range). */
size_t auth_key_count(const auth_t *a, int region);

#ifdef __cplusplus
}
#endif
#endif
