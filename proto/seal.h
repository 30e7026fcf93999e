/*
 * seal.h: payload privacy at rest. An envelope is sealed before the hub
 * stores it (the journal record's `envelope` field) and opened when it is
 * delivered, with a symmetric key from the configuration
 * (security.payload_key_file).
 *
 * Sealed form (every integer big-endian):
 *   marker(1) = SEAL_MARKER  0x07: a protobuf message can never start with
 *                            it (field number 0, wire type 7), so a stored
 *                            envelope is sealed exactly when its first byte
 *                            is this one; records from before sealing was
 *                            turned on stay readable as they are
 *   cipher(1)                SEAL_AES_256_GCM or SEAL_SM4_CTR_HMAC_SM3
 *   key_id(8)                the first 8 bytes of SHA-256 of the 32 key
 *                            bytes, so a record sealed with another key is
 *                            named as such, not as damaged
 *   then, for AES-256-GCM:   nonce(12) ciphertext tag(16); the additional
 *                            data is the 10 header bytes then `aad`
 *   for SM4-CTR-HMAC-SM3:    iv(16) ciphertext mac(32), encrypt-then-MAC
 *                            (OpenSSL 3.0 has no SM4-GCM): mac =
 *                            HMAC-SM3(mac key, header || len(aad)(8) || aad
 *                            || iv || ciphertext); the SM4 key (16) and the
 *                            mac key (32) are HKDF-SM3 (RFC 5869) of the
 *                            configured key, salt "nhub payload seal", info
 *                            "sm4-ctr-hmac-sm3 v1"
 * The hub passes the msg_id as `aad`, so a sealed envelope moved into
 * another record does not open. Nonces and IVs are random (RAND_bytes) per
 * envelope: 2^32 envelopes per key keep AES-GCM's collision chance below
 * 2^-32 (NIST SP 800-38D 8.3).
 *
 * A record names its cipher, so a key opens what it sealed under either
 * cipher; the configured cipher is only the one new envelopes get.
 *
 * The key file holds the 32 key bytes raw, or as 64 hex digits with an
 * optional final newline, and only its owner may read it (mode 0600).
 * A key is used by one thread at a time or shared read-only: sealing and
 * opening do not change it.
 */
#ifndef NHUB_SEAL_H
#define NHUB_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_MARKER 0x07
#define SEAL_KEY_LEN 32
#define SEAL_KEY_ID_LEN 8
#define SEAL_HEADER_LEN (2 + SEAL_KEY_ID_LEN)
/* The most a sealed envelope adds to its plaintext (SM4: iv and mac). */
#define SEAL_OVERHEAD_MAX (SEAL_HEADER_LEN + 16 + 32)

typedef enum seal_cipher {
    SEAL_AES_256_GCM = 1,
    SEAL_SM4_CTR_HMAC_SM3 = 2,
} seal_cipher_t;

typedef struct seal_key seal_key_t;

/*
 * A key from its 32 bytes, sealing with `cipher`. Returns 0 and *out
 * (free with seal_key_free), NHUB_EINVAL (unknown cipher), NHUB_ENOMEM or
 * NHUB_ECRYPTO (OpenSSL lacks a cipher or the key derivation failed).
 */
int seal_key_new(const uint8_t raw[SEAL_KEY_LEN], seal_cipher_t cipher, seal_key_t **out);

/*
 * A key from the text of a key file (32 raw bytes, or 64 hex digits and
 * an optional newline). Returns 0 and *out, or NHUB_ECONFIG with the
 * problem in `why` (never the key), or an error of seal_key_new.
 */
int seal_key_parse(const uint8_t *text, size_t len, seal_cipher_t cipher, seal_key_t **out,
                   char *why, size_t whycap);

/*
 * A key from file `path`, whose mode must let only its owner read it.
 * Returns 0 and *out, or NHUB_EIO / NHUB_ECONFIG / NHUB_ENOMEM /
 * NHUB_ECRYPTO with a message in `err` naming the file and the problem.
 */
int seal_key_load(const char *path, seal_cipher_t cipher, seal_key_t **out, char *err,
                  size_t errcap);

/* Wipe and free; accepts NULL; sets *self to NULL. */
void seal_key_free(seal_key_t **self);

/* The key's 8-byte id (borrowed, valid while the key lives). */
const uint8_t *seal_key_id(const seal_key_t *self);

/* The cipher the key seals with. */
seal_cipher_t seal_key_cipher(const seal_key_t *self);

/* "aes-256-gcm", "sm4-ctr-hmac-sm3", or "unknown". */
const char *seal_cipher_name(int cipher);

/* 1 if `data` is sealed (begins with SEAL_MARKER), else 0. */
int seal_is_sealed(const void *data, size_t len);

/* The bytes a sealed `len`-byte plaintext takes with `self`; 0 on overflow. */
size_t seal_sealed_len(const seal_key_t *self, size_t len);

/*
 * Seal `len` bytes at `in`, binding `aad` (`aad_len` bytes, may be 0) into
 * the tag, into `out` (`cap` bytes, at least seal_sealed_len; it must not
 * overlap `in`); *out_len the sealed length. Returns 0, NHUB_ETOOBIG (cap
 * too small or len too large) or NHUB_ECRYPTO (no randomness, or OpenSSL
 * failed).
 */
int seal_seal(const seal_key_t *self, const void *aad, size_t aad_len, const void *in, size_t len,
              uint8_t *out, size_t cap, size_t *out_len);

/*
 * The header of sealed bytes `in`: their cipher and key id (either may be
 * NULL). Returns 0, or NHUB_EMALFORMED if `in` is not sealed, names an
 * unknown cipher or is shorter than that cipher's overhead.
 */
int seal_header(const void *in, size_t len, seal_cipher_t *cipher, uint8_t key_id[SEAL_KEY_ID_LEN]);

/*
 * Open sealed bytes `in` with `aad` into `out` (`cap` bytes; `len` is
 * always enough; it must not overlap `in`); *out_len the plaintext's
 * length. On failure `out` holds nothing of the plaintext. Returns 0,
 * NHUB_EMALFORMED (see seal_header), NHUB_ENOTFOUND (sealed with another
 * key: seal_header names it), NHUB_ECRYPTO (the bytes or `aad` were
 * altered: authentication failed) or NHUB_ETOOBIG (cap too small).
 */
int seal_open(const seal_key_t *self, const void *aad, size_t aad_len, const void *in, size_t len,
              uint8_t *out, size_t cap, size_t *out_len);

#endif
