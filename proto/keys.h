/*
 * keys.h: the keys of a region or of the hub, shared by nhubd, libnhub and
 * nhub-keygen.
 *
 * Every party has two keypairs, made together by nhub-keygen:
 *   - a CURVE keypair (CurveZMQ, Curve25519) that authenticates its
 *     connection; keys are Z85 text of 40 characters;
 *   - a signing keypair that signs every envelope it sends: Ed25519 by
 *     default, SM2 (with SM3, distinguishing ID "1234567812345678", GM/T
 *     0009) where national cryptography is required.
 *
 * Text forms:
 *   - a public signing key is "ed25519:BASE64" or "sm2:BASE64", the base64
 *     of its DER SubjectPublicKeyInfo (what `openssl pkey -pubout -outform
 *     DER` writes);
 *   - a fingerprint (CURVE key) or key id (signing key) is the first 16 bytes
 *     of SHA-256 of the raw 32-byte CURVE public key, or of the signing key's
 *     DER SubjectPublicKeyInfo, as 32 lowercase hex digits. Fingerprints may
 *     be logged and journaled; secrets never are, and no error text here
 *     ever contains one.
 *
 * A signature covers the encoded Envelope bytes exactly as sent (the Send
 * message carries them beside the signature), so anyone holding the public
 * key can check a stored message without trusting the hub.
 *
 * The secret key file (YAML, mode 0600) holds:
 *     region: "110000"            # or the hub's code
 *     created: "2026-11-25T09:00:00Z"
 *     curve_public: "<Z85>"
 *     curve_secret: "<Z85>"
 *     sign_public: "ed25519:<base64 SPKI DER>"
 *     sign_secret: "ed25519:<base64 PKCS#8 DER>"
 * keys_load() refuses a secret file readable by group or others. An SM2
 * SubjectPublicKeyInfo is id-ecPublicKey with the SM2 curve OID; OpenSSL
 * 3.0 decodes it as an "SM2" key (keys.c converts an "EC" key on the SM2
 * curve, which would otherwise sign ECDSA).
 *
 * The public file is a YAML fragment, ready to paste under the region's
 * `keys:` in the hub configuration (and, for the hub, to give to adapters):
 *     - curve: "<Z85>"
 *       sign: "ed25519:<base64>"
 * with the fingerprints in comments.
 */
#ifndef NHUB_KEYS_H
#define NHUB_KEYS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KEYS_Z85_LEN 40         /* characters of a Z85 CURVE key */
#define KEYS_FPR_LEN 32         /* hex digits of a fingerprint or key id */
#define KEYS_PUBLIC_TEXT_MAX 191 /* bytes of "alg:base64" public key text */
#define KEYS_SECRET_TEXT_MAX 255 /* bytes of "alg:base64" secret key text */
#define KEYS_SIG_MAX 128        /* bytes of a signature (Ed25519 64, SM2 <= 72 DER) */
#define KEYS_REGION_LEN 6

/* The standard SM2 distinguishing ID (GM/T 0009), set on every SM2 operation. */
#define KEYS_SM2_ID "1234567812345678"

typedef enum keys_alg {
    KEYS_ED25519 = 1,
    KEYS_SM2 = 2,
} keys_alg_t;

/* A private signing key (opaque; wraps an OpenSSL EVP_PKEY). */
typedef struct keys_signer keys_signer_t;

/* A public signing key (opaque). */
typedef struct keys_verifier keys_verifier_t;

/* The content of a secret key file. Strings are NUL-terminated. */
typedef struct keys_file {
    char region[KEYS_REGION_LEN + 1];
    char created[32];                        /* RFC 3339 UTC, e.g. 2026-11-25T09:00:00Z */
    char curve_public[KEYS_Z85_LEN + 1];
    char curve_secret[KEYS_Z85_LEN + 1];
    char sign_public[KEYS_PUBLIC_TEXT_MAX + 1];
    char curve_fpr[KEYS_FPR_LEN + 1];        /* fingerprint of curve_public */
    char sign_id[KEYS_FPR_LEN + 1];          /* key id of sign_public */
    keys_alg_t alg;
    keys_signer_t *signer;                   /* owned */
} keys_file_t;

/*
 * Make a new key set for `region` (six digits) with signing algorithm `alg`.
 * `now_ms` (wall clock, ms since the epoch) fills `created`. Returns 0 and a
 * new *out (free with keys_free), NHUB_EINVAL, NHUB_ECRYPTO or NHUB_ENOMEM.
 */
int keys_generate(const char *region, keys_alg_t alg, int64_t now_ms, keys_file_t **out);

/*
 * Write the secret file (mode 0600) and the public file (mode 0644, set
 * explicitly, whatever the umask), each fsync'ed. Without `force`, refuses
 * (NHUB_EINVAL, message in err) when either exists, and creates the files
 * with O_EXCL (a failure leaves neither); with it, writes both to temporary
 * files beside them and renames them over the old ones. NHUB_EINVAL also
 * when the two paths are equal or `k` is incomplete. Returns 0, NHUB_EINVAL
 * or NHUB_EIO, with a message in `err` naming the file.
 */
int keys_write(const keys_file_t *k, const char *secret_path, const char *public_path,
               int force, char *err, size_t errcap);

/*
 * Read the whole of secret file `path` (at most 64 KiB) into a new
 * NUL-terminated buffer *text of *len bytes, after checking that it is a
 * regular file only its owner can read (otherwise NHUB_ECONFIG with a
 * message saying to chmod 600). The caller wipes (OPENSSL_cleanse, *len
 * bytes) and frees it. Returns 0, or NHUB_EIO / NHUB_ECONFIG / NHUB_ENOMEM
 * with a message in `err` naming the file.
 */
int keys_read_secret_file(const char *path, char **text, size_t *len, char *err, size_t errcap);

/*
 * Read a secret key file. Checks the mode (no group/other access: NHUB_ECONFIG
 * with a message saying to chmod 600), every key's form, and that each public
 * key belongs to its secret key. Unknown or missing keys are errors (conf.h
 * rules). Returns 0 and a new *out (*out is NULL on failure), or NHUB_EIO
 * (cannot open or read) / NHUB_ECONFIG / NHUB_ENOMEM / NHUB_EINVAL (NULL
 * argument) with a one-line message in `err` naming the file, and the line
 * where it applies, and the problem (never a secret). `sign_public` of the
 * result is the key re-encoded (canonical DER), normally the file's text.
 */
int keys_load(const char *path, keys_file_t **out, char *err, size_t errcap);

/*
 * Read the public parts from a public file (.pub, as keys_write makes it:
 * its first `- curve: / sign:` entry). A secret key file is refused with a
 * message saying to give its .pub instead (the hub and the adapters of
 * other regions have no business holding it). `curve` receives the
 * Z85 CURVE public key, `sign` the public signing key text (either may be
 * NULL). Returns 0, or NHUB_EIO / NHUB_ECONFIG with a message in `err`.
 */
int keys_read_public(const char *path, char curve[KEYS_Z85_LEN + 1],
                     char sign[KEYS_PUBLIC_TEXT_MAX + 1], char *err, size_t errcap);

/* Free `*k` (its signer too) and set it to NULL; wipes the secrets. Accepts NULL. */
void keys_free(keys_file_t **k);

/*
 * Sign `len` bytes of `data` (one shot). `sig` has room for KEYS_SIG_MAX
 * bytes; *siglen receives the length. Thread-safe for a shared signer.
 * Returns 0 or NHUB_ECRYPTO.
 */
int keys_sign(const keys_signer_t *s, const void *data, size_t len, uint8_t *sig, size_t *siglen);

/*
 * Parse public key text "ed25519:..." / "sm2:..." (strict base64, the DER
 * must end where the text does). Returns 0 and a new *out (free with
 * keys_verifier_free; *out is NULL on failure), or NHUB_EINVAL with a
 * message in `err` (e.g. "unknown algorithm 'rsa'", "not base64", "not an
 * SM2 key"); NHUB_ENOMEM / NHUB_ECRYPTO on internal failure.
 */
int keys_verifier_parse(const char *text, keys_verifier_t **out, char *err, size_t errcap);

/*
 * Check `sig` over `data`. Thread-safe for a shared verifier. Returns 0 if it
 * is a valid signature by this key, NHUB_EREFUSED if not (including a
 * malformed, empty or over-long signature), NHUB_ECRYPTO / NHUB_ENOMEM on
 * internal failure.
 */
int keys_verify(const keys_verifier_t *v, const void *data, size_t len, const uint8_t *sig,
                size_t siglen);

/* The key id (KEYS_FPR_LEN hex digits, valid while `v` is) and algorithm of a verifier. */
const char *keys_verifier_id(const keys_verifier_t *v);
keys_alg_t keys_verifier_alg(const keys_verifier_t *v);

/* Free `*v` and set it to NULL. Accepts NULL. */
void keys_verifier_free(keys_verifier_t **v);

/* "ed25519" / "sm2"; NULL for anything else. And back: 0 if unknown. */
const char *keys_alg_name(keys_alg_t alg);
keys_alg_t keys_alg_parse(const char *name);

/*
 * CURVE keys. keys_curve_valid: 1 if `z85` is 40 Z85 characters decoding to
 * 32 bytes. keys_curve_fpr: fingerprint of a raw 32-byte public key into
 * out[KEYS_FPR_LEN + 1]. keys_curve_fpr_z85: the same from Z85 text;
 * returns 0 or NHUB_EINVAL.
 */
int keys_curve_valid(const char *z85);
void keys_curve_fpr(const uint8_t raw[32], char out[KEYS_FPR_LEN + 1]);
int keys_curve_fpr_z85(const char *z85, char out[KEYS_FPR_LEN + 1]);

#ifdef __cplusplus
}
#endif
#endif
