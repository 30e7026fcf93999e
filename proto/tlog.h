/*
 * tlog.h: the pure core of the hub's transparency log: a Merkle tree over
 * the journal (RFC 9162 section 2.1), its proofs, and signed checkpoints in
 * the C2SP formats (tlog-checkpoint, signed-note, tlog-proof).
 *
 * No store, no I/O, no clock, no global state: the store keeps what this
 * module computes, in the same LMDB transaction as the journal append
 * (DESIGN.md 1), and hands it back through a callback when a proof is
 * asked for. Nothing here needs the time.
 *
 * Hashing (RFC 9162 2.1.1), with H = SHA-256 (default) or SM3:
 *     MTH({})      = H("")
 *     leaf hash    = H(0x00 || data)
 *     node hash    = H(0x01 || left || right)
 * A tree of size n splits at k, the largest power of two below n. Both
 * digests are 32 bytes (TLOG_HASH_LEN). Which digest a log uses is a
 * property of the log, fixed when it is created, like its origin and key:
 * a verifier must be told it, since a checkpoint does not say.
 *
 * Addresses. The node at (level L, index i) is the root of the perfect
 * subtree over leaves [i * 2^L, (i + 1) * 2^L); level 0 holds the leaf
 * hashes. A node is "complete" at tree size n when its last leaf is below
 * n; complete nodes never change as the tree grows, so a store can keep
 * them forever (2n - popcount(n) of them for size n, about 2n).
 *
 * State. tlog_state_t is the compact range of a tree of size n: the roots
 * of the perfect subtrees that n's binary digits describe, largest first
 * (at most 64 hashes). Appending a leaf merges equal-sized subtrees (O(1)
 * amortised, O(log n) worst case) and tlog_root folds them (O(log n)). It
 * encodes to at most TLOG_STATE_MAX bytes, so the store keeps it in one
 * meta record beside the journal's chain state.
 *
 * Proofs. Generation reads node hashes through a tlog_get_hash_fn. The
 * store may keep only leaves (level 0) and answer NHUB_ENOTFOUND above:
 * then every missing node is computed from its children, down to leaves,
 * and a proof costs O(n): an inclusion proof reads every leaf but the
 * proven one (n - 1 reads, plus one refused ask per missing node) and
 * hashes about n nodes, roughly a second per few million leaves. If the
 * store keeps every complete node (tlog_append_nodes says which,
 * tlog_stored_index gives each a dense append-only key), a proof costs
 * O(log^2 n) reads, and hashing only to join the perfect pieces of ranges
 * on the tree's right edge. Verification needs no callback and costs
 * O(log n) hashes.
 *
 * Notes and checkpoints. A checkpoint body is "ORIGIN\nSIZE\nBASE64(ROOT)\n"
 * plus optional extension lines, signed as a signed note:
 *     <text ending in \n>\n— NAME BASE64(key id(4) || signature)\n...
 * key id = first 4 bytes, big-endian, of SHA-256(name || 0x0A || type ||
 * public key). Types:
 *   - 0x01 Ed25519 (signed-note): public key the 32 raw bytes (RFC 8032),
 *     signature 64 bytes over the note text;
 *   - SM2 (nhub's own, for national cryptography): the type is the byte
 *     0xff, which signed-note reserves for types it does not assign,
 *     followed by the identifier "nhub-sm2-sm3" (TLOG_SM2_TYPE, 13 bytes in
 *     all) so it cannot collide with another party's 0xff type; the public
 *     key is its DER SubjectPublicKeyInfo (the bytes of keys.h's "sm2:"
 *     text); the signature is SM2 with SM3 and the GM/T 0009 distinguishing
 *     ID "1234567812345678" (KEYS_SM2_ID), DER-encoded, over the note text.
 * A verifier key ("vkey") is NAME+HEX8(key id)+BASE64(type || public key).
 *
 * Errors: NHUB_EINVAL for a bad argument (NULL, index >= size, size 0,
 * a proof of the wrong length for its sizes), NHUB_EREFUSED when a proof or
 * signature does not verify, NHUB_EMALFORMED for text that breaks its
 * format (with the reason in `err`), NHUB_ETOOBIG past a stated limit,
 * NHUB_ECRYPTO when OpenSSL fails or lacks an algorithm, NHUB_ENOMEM.
 * Functions that take `err` leave a one-line message there on failure
 * (never key material); `err` may be NULL.
 */
#ifndef NHUB_TLOG_H
#define NHUB_TLOG_H

#include "keys.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evp_pkey_st;

#define TLOG_HASH_LEN 32
#define TLOG_MAX_LEVELS 64 /* hashes in a compact range; levels of a tree */
#define TLOG_PROOF_MAX 65  /* hashes in any proof (a consistency proof can have 65) */
#define TLOG_STATE_MAX (1 + 1 + 8 + TLOG_MAX_LEVELS * TLOG_HASH_LEN) /* encoded state */
#define TLOG_NAME_MAX 255     /* bytes of a key name or checkpoint origin */
#define TLOG_NOTE_MAX 65536   /* bytes of a note tlog_note_parse accepts */
#define TLOG_NOTE_SIGS_MAX 32 /* signature lines of a note (signed-note: at least 16) */
#define TLOG_VKEY_MAX 512     /* bytes of a verifier key text, with its NUL */
#define TLOG_SM2_TYPE                                                                              \
    "\xff"                                                                                         \
    "nhub-sm2-sm3"
#define TLOG_SM2_TYPE_LEN 13

typedef enum tlog_alg {
    TLOG_SHA256 = 1, /* the default */
    TLOG_SM3 = 2,    /* GB/T 32905, where national cryptography is required */
} tlog_alg_t;

typedef uint8_t tlog_hash_t[TLOG_HASH_LEN];

/* ---- hashing ------------------------------------------------------------ */

/* A digest context for one thread (opaque): OpenSSL's fetched algorithm and
 * a reusable EVP_MD_CTX. Not thread-safe; make one per thread. */
typedef struct tlog_hasher tlog_hasher_t;

/*
 * Make a hasher for `alg`. Returns 0 and *out (free with tlog_hasher_free),
 * NHUB_EINVAL (unknown alg), NHUB_ECRYPTO when this OpenSSL does not
 * provide the digest (the message in `err` names it and the OpenSSL
 * version), or NHUB_ENOMEM. *out is NULL on failure.
 */
int tlog_hasher_new(tlog_alg_t alg, tlog_hasher_t **out, char *err, size_t errcap);

/* Free `*h` and set it to NULL. Accepts NULL. */
void tlog_hasher_free(tlog_hasher_t **h);

/* The hasher's algorithm. */
tlog_alg_t tlog_hasher_alg(const tlog_hasher_t *h);

/* "sha256" / "sm3"; NULL for anything else. And back: 0 if unknown. */
const char *tlog_alg_name(tlog_alg_t alg);
tlog_alg_t tlog_alg_parse(const char *name);

/* MTH({}) = H(""), the root of the empty tree. Returns 0 or NHUB_ECRYPTO. */
int tlog_hash_empty(tlog_hasher_t *h, uint8_t out[TLOG_HASH_LEN]);

/* H(0x00 || data). `data` may be NULL when len is 0. Returns 0,
 * NHUB_EINVAL or NHUB_ECRYPTO. */
int tlog_hash_leaf(tlog_hasher_t *h, const void *data, size_t len, uint8_t out[TLOG_HASH_LEN]);

/* H(0x01 || left || right). `out` may alias either input. Returns 0 or NHUB_ECRYPTO. */
int tlog_hash_node(tlog_hasher_t *h, const uint8_t left[TLOG_HASH_LEN],
                   const uint8_t right[TLOG_HASH_LEN], uint8_t out[TLOG_HASH_LEN]);

/* ---- incremental state -------------------------------------------------- */

/* The compact range of a tree (opaque): its size, the roots of its perfect
 * subtrees, and a hasher of its algorithm. */
typedef struct tlog_state tlog_state_t;

/* A node a store keeps: its address and hash. */
typedef struct tlog_node {
    uint64_t level;
    uint64_t index;
    uint8_t hash[TLOG_HASH_LEN];
} tlog_node_t;

/*
 * A new empty tree hashed with `alg`. Returns 0 and *out (free with
 * tlog_state_free), or tlog_hasher_new's errors. *out is NULL on failure.
 */
int tlog_state_new(tlog_alg_t alg, tlog_state_t **out, char *err, size_t errcap);

/* Free `*s` and set it to NULL. Accepts NULL. */
void tlog_state_free(tlog_state_t **s);

/* A copy of `s` (for instance, to roll back when a transaction aborts).
 * Returns 0 and *out, or NHUB_EINVAL / NHUB_ENOMEM / NHUB_ECRYPTO. */
int tlog_state_dup(const tlog_state_t *s, tlog_state_t **out);

/* The number of leaves. */
uint64_t tlog_state_size(const tlog_state_t *s);

/* The state's algorithm. */
tlog_alg_t tlog_state_alg(const tlog_state_t *s);

/* The state's hasher (borrowed, valid while `s` is; same thread rules):
 * to hash leaves for tlog_append. */
tlog_hasher_t *tlog_state_hasher(tlog_state_t *s);

/*
 * Append the leaf hash `leaf` (already H(0x00 || data): tlog_hash_leaf).
 * Returns 0, NHUB_EINVAL (NULL, or the tree holds 2^64 - 1 leaves) or
 * NHUB_ECRYPTO; on failure the state is unchanged.
 */
int tlog_append(tlog_state_t *s, const uint8_t leaf[TLOG_HASH_LEN]);

/*
 * tlog_append, also filling nodes[] with the nodes that become complete:
 * the leaf (level 0, index = old size), then each parent it completes, up
 * to level t where t is the number of trailing one bits of the old size.
 * `nodes` has room for TLOG_MAX_LEVELS entries; *n receives the count
 * (1 to 64). A store that keeps every complete node writes exactly these.
 */
int tlog_append_nodes(tlog_state_t *s, const uint8_t leaf[TLOG_HASH_LEN],
                      tlog_node_t nodes[TLOG_MAX_LEVELS], size_t *n);

/* The root hash of the tree at its current size (H("") when empty).
 * O(log n). Returns 0, NHUB_EINVAL or NHUB_ECRYPTO. */
int tlog_root(tlog_state_t *s, uint8_t out[TLOG_HASH_LEN]);

/*
 * Encode the state: version 1 (1 byte), algorithm (1 byte), size (8 bytes,
 * big-endian), then popcount(size) hashes, largest subtree first. `buf` has
 * room for `cap` bytes (TLOG_STATE_MAX is always enough); *len receives
 * the length. Returns 0, NHUB_EINVAL or NHUB_ETOOBIG (cap too small).
 */
int tlog_state_encode(const tlog_state_t *s, uint8_t *buf, size_t cap, size_t *len);

/*
 * Decode what tlog_state_encode wrote into a new state. Returns 0 and *out
 * (free with tlog_state_free), NHUB_EMALFORMED (wrong length or unknown
 * algorithm), NHUB_EVERSION (another version), or tlog_hasher_new's errors,
 * with a message in `err`. *out is NULL on failure.
 */
int tlog_state_decode(const void *buf, size_t len, tlog_state_t **out, char *err, size_t errcap);

/* ---- what a store keeps ------------------------------------------------- */

/* The number of complete nodes of a tree of size n: 2n - popcount(n). */
uint64_t tlog_stored_count(uint64_t n);

/*
 * A dense, append-only position for node (level, index) among all complete
 * nodes, in the order tlog_append_nodes produces them: leaf 0 is 0, leaf 1
 * is 1, node (1, 0) is 2, leaf 2 is 3, ... A store keying nodes by it
 * (8 bytes big-endian) only ever appends. Returns 0 and *pos, or
 * NHUB_EINVAL when the node lies beyond 2^63 leaves or level > 63.
 */
int tlog_stored_index(uint64_t level, uint64_t index, uint64_t *pos);

/* ---- proofs (RFC 9162 2.1.3 and 2.1.4) ---------------------------------- */

/*
 * The hash of the perfect subtree at (level, index) into out. Return 0, or
 * NHUB_ENOTFOUND when the store does not keep that node (tlog then asks
 * for its two children instead; it must not answer NHUB_ENOTFOUND at level
 * 0), or any other error, which the proof function returns as it is.
 * tlog asks only for nodes that are complete at the proof's tree size.
 */
typedef int (*tlog_get_hash_fn)(void *arg, uint64_t level, uint64_t index,
                                uint8_t out[TLOG_HASH_LEN]);

/* The number of hashes of an inclusion proof for leaf m in a tree of size n,
 * or -1 if m >= n. */
int tlog_inclusion_len(uint64_t m, uint64_t n);

/* The number of hashes of a consistency proof from size m to size n
 * (0 when m == n), or -1 unless 0 < m <= n. */
int tlog_consistency_len(uint64_t m, uint64_t n);

/*
 * The inclusion proof PATH(m, D[n]) (RFC 9162 2.1.3.1): `proof` has room
 * for `cap` hashes (TLOG_PROOF_MAX is always enough); *len receives the
 * count, tlog_inclusion_len(m, n). Hashes of node ranges that are not
 * perfect subtrees are computed with `h`. Returns 0, NHUB_EINVAL (m >= n,
 * NULL), NHUB_ETOOBIG (cap too small), NHUB_ECRYPTO, or the callback's error.
 */
int tlog_prove_inclusion(tlog_hasher_t *h, uint64_t m, uint64_t n, tlog_get_hash_fn get, void *arg,
                         tlog_hash_t *proof, size_t cap, size_t *len);

/*
 * Check an inclusion proof (RFC 9162 2.1.3.2) that `leaf` (a leaf hash) is
 * leaf m of the tree of size n whose root is `root`. Returns 0 if it is,
 * NHUB_EREFUSED if the proof does not verify, NHUB_EINVAL if m >= n or
 * len is not tlog_inclusion_len(m, n) (more than TLOG_PROOF_MAX, too), or
 * NHUB_ECRYPTO.
 */
int tlog_verify_inclusion(tlog_hasher_t *h, uint64_t m, uint64_t n,
                          const uint8_t leaf[TLOG_HASH_LEN], const tlog_hash_t *proof, size_t len,
                          const uint8_t root[TLOG_HASH_LEN]);

/*
 * The consistency proof PROOF(m, D[n]) (RFC 9162 2.1.4.1), for 0 < m <= n
 * (empty when m == n; RFC 9162 defines none from the empty tree, which
 * every tree extends). Same conventions as tlog_prove_inclusion;
 * NHUB_EINVAL unless 0 < m <= n.
 */
int tlog_prove_consistency(tlog_hasher_t *h, uint64_t m, uint64_t n, tlog_get_hash_fn get,
                           void *arg, tlog_hash_t *proof, size_t cap, size_t *len);

/*
 * Check that the tree of size n with root `root_n` extends the tree of size
 * m with root `root_m` (RFC 9162 2.1.4.2; for m == n, the proof must be
 * empty and the roots equal). Returns 0, NHUB_EREFUSED, NHUB_EINVAL (unless
 * 0 < m <= n, or len is not tlog_consistency_len(m, n)) or NHUB_ECRYPTO.
 */
int tlog_verify_consistency(tlog_hasher_t *h, uint64_t m, uint64_t n,
                            const uint8_t root_m[TLOG_HASH_LEN],
                            const uint8_t root_n[TLOG_HASH_LEN], const tlog_hash_t *proof,
                            size_t len);

/* ---- checkpoints (C2SP tlog-checkpoint) --------------------------------- */

/* A parsed checkpoint body. `ext` points into the parsed text (borrowed). */
typedef struct tlog_checkpoint {
    char origin[TLOG_NAME_MAX + 1];
    uint64_t size;
    uint8_t root[TLOG_HASH_LEN];
    const char *ext; /* extension lines, each ending in \n; NULL if none */
    size_t ext_len;
} tlog_checkpoint_t;

/*
 * Write the body "ORIGIN\nSIZE\nBASE64(ROOT)\n" followed by `ext` (NULL, or
 * extension lines, each non-empty and ending in \n) into out[cap], NUL-
 * terminated; *len (may be NULL) receives the length without the NUL.
 * `origin`: 1 to TLOG_NAME_MAX bytes of UTF-8, no control characters.
 * Returns 0, NHUB_EINVAL (bad origin or ext) or NHUB_ETOOBIG (cap).
 */
int tlog_checkpoint_format(const char *origin, uint64_t size, const uint8_t root[TLOG_HASH_LEN],
                           const char *ext, char *out, size_t cap, size_t *len);

/*
 * Parse a checkpoint body (a note's text, not the signed note): origin,
 * size (decimal, no leading zero), root (base64 of 32 bytes), extension
 * lines. Returns 0 and *out, or NHUB_EMALFORMED with the line and reason
 * in `err`, or NHUB_EINVAL (NULL).
 */
int tlog_checkpoint_parse(const char *text, size_t len, tlog_checkpoint_t *out, char *err,
                          size_t errcap);

/* ---- signed notes (C2SP signed-note) ------------------------------------ */

/* A signature line of a parsed note; the pointers are into the note. */
typedef struct tlog_note_sig {
    const char *name; /* the key name, name_len bytes, not NUL-terminated */
    size_t name_len;
    uint32_t key_id;
    const char *b64; /* base64(key id || signature), b64_len bytes */
    size_t b64_len;
} tlog_note_sig_t;

/* A parsed note: its text (with the final \n, before the blank line) and
 * its signature lines, all borrowed from the parsed bytes. */
typedef struct tlog_note {
    const char *text;
    size_t text_len;
    size_t nsigs;
    tlog_note_sig_t sigs[TLOG_NOTE_SIGS_MAX];
} tlog_note_t;

/* The key of a note signer (opaque). */
typedef struct tlog_signer tlog_signer_t;

/* A known note verifier key (opaque). */
typedef struct tlog_verifier tlog_verifier_t;

/*
 * A signer named `name` (1 to TLOG_NAME_MAX bytes of UTF-8, no spaces,
 * no '+', no control characters; conventionally the checkpoint origin)
 * using the signing key of `k` (keys.h: Ed25519 or SM2, borrowed: `k` must
 * outlive the signer). Returns 0 and *out (free with tlog_signer_free),
 * NHUB_EINVAL (bad name or key) with a message in `err`, NHUB_ECRYPTO or
 * NHUB_ENOMEM. *out is NULL on failure.
 */
int tlog_signer_new(const char *name, const keys_file_t *k, tlog_signer_t **out, char *err,
                    size_t errcap);

/* The same from an OpenSSL private key (Ed25519, or SM2), which the signer
 * references (EVP_PKEY_up_ref) until it is freed. */
int tlog_signer_new_pkey(const char *name, struct evp_pkey_st *pkey, tlog_signer_t **out, char *err,
                         size_t errcap);

/* Free `*s` and set it to NULL. Accepts NULL. */
void tlog_signer_free(tlog_signer_t **s);

/* The signer's verifier key text into out[cap] (TLOG_VKEY_MAX is enough),
 * NUL-terminated. Returns 0, NHUB_EINVAL or NHUB_ETOOBIG. */
int tlog_signer_vkey(const tlog_signer_t *s, char *out, size_t cap);

/*
 * Sign note text `text` (len bytes: valid UTF-8 ending in \n, no control
 * characters but \n) and write the
 * signed note, text then blank line then one signature line, into
 * out[cap], NUL-terminated; *outlen (may be NULL) receives its length.
 * Returns 0, NHUB_EINVAL (bad text), NHUB_ETOOBIG (cap) or NHUB_ECRYPTO.
 */
int tlog_note_sign(const tlog_signer_t *s, const char *text, size_t len, char *out, size_t cap,
                   size_t *outlen);

/*
 * Parse a signed note: at most TLOG_NOTE_MAX bytes of UTF-8 without control
 * characters but \n; the text, a blank line, then 1 to TLOG_NOTE_SIGS_MAX
 * signature lines "— NAME BASE64\n" (the text ends at the last blank
 * line). Signatures are not checked (tlog_note_verify does). Returns 0 and
 * *out (pointing into `note`), NHUB_EMALFORMED with the reason in `err`,
 * NHUB_ETOOBIG (too long, too many signatures) or NHUB_EINVAL (NULL).
 */
int tlog_note_parse(const char *note, size_t len, tlog_note_t *out, char *err, size_t errcap);

/*
 * Parse a verifier key "NAME+HEX8+BASE64(type || public key)" of type
 * Ed25519 (0x01) or nhub SM2 (TLOG_SM2_TYPE); the key id must be the one
 * the name and key give. Returns 0 and *out (free with
 * tlog_verifier_free), NHUB_EMALFORMED with a message in `err`,
 * NHUB_EINVAL (NULL; an unknown type), NHUB_ECRYPTO or NHUB_ENOMEM.
 */
int tlog_verifier_parse(const char *vkey, tlog_verifier_t **out, char *err, size_t errcap);

/* Free `*v` and set it to NULL. Accepts NULL. */
void tlog_verifier_free(tlog_verifier_t **v);

/* The verifier's key name (valid while `v` is) and key id. */
const char *tlog_verifier_name(const tlog_verifier_t *v);
uint32_t tlog_verifier_key_id(const tlog_verifier_t *v);

/*
 * Check `note` against the known key `v` (signed-note rules): signature
 * lines of other keys (name or key id differ) are ignored. Returns 0 if
 * the note has a signature by `v` and every signature by `v` verifies;
 * NHUB_ENOTFOUND if none is by `v`; NHUB_EREFUSED if one by `v` fails;
 * NHUB_EINVAL (NULL); NHUB_ECRYPTO.
 */
int tlog_note_verify(const tlog_note_t *note, const tlog_verifier_t *v);

/*
 * Parse a signed checkpoint, verify it against `v` and parse its body into
 * *out (whose ext points into `note`): tlog_note_parse, tlog_note_verify,
 * tlog_checkpoint_parse in turn, with their errors (and a message in `err`).
 */
int tlog_checkpoint_open(const char *note, size_t len, const tlog_verifier_t *v,
                         tlog_checkpoint_t *out, char *err, size_t errcap);

/* ---- proof files (C2SP tlog-proof) -------------------------------------- */

/* A parsed proof file; `note` points into the parsed text. */
typedef struct tlog_proof {
    uint64_t index;
    size_t len; /* hashes in proof[] */
    tlog_hash_t proof[TLOG_PROOF_MAX];
    const char *note; /* the signed checkpoint, note_len bytes */
    size_t note_len;
} tlog_proof_t;

/*
 * Write "c2sp.org/tlog-proof@v1\nindex N\n", one base64 line per proof hash,
 * a blank line and the signed checkpoint `note` (note_len bytes, as
 * tlog_note_sign wrote it) into out[cap], NUL-terminated; *outlen (may be
 * NULL) receives the length. No "extra" line is written. Returns 0,
 * NHUB_EINVAL or NHUB_ETOOBIG.
 */
int tlog_proof_format(uint64_t index, const tlog_hash_t *proof, size_t len, const char *note,
                      size_t note_len, char *out, size_t cap, size_t *outlen);

/*
 * Parse a proof file (an "extra" line is accepted and skipped). The
 * checkpoint is not verified: give p->note to tlog_checkpoint_open, then
 * the proof to tlog_verify_inclusion. Returns 0, NHUB_EMALFORMED with the
 * line and reason in `err`, NHUB_ETOOBIG or NHUB_EINVAL.
 */
int tlog_proof_parse(const char *text, size_t len, tlog_proof_t *out, char *err, size_t errcap);

/* ---- consistency proof files (nhub's, in the manner of C2SP tlog-proof) -- */

/*
 * A file that proves the tree of one signed checkpoint extends another's,
 * checkable offline with the log's verifier key:
 *
 *     nhub.audit/consistency-proof@v1
 *     hash sha256                       (or sm3: checkpoints do not name it)
 *     old 10
 *     new 25
 *     BASE64(hash)                      one line per proof hash (RFC 9162 2.1.4)
 *     ...
 *                                       a blank line
 *     <the signed checkpoint of size 10>
 *                                       a blank line
 *     <the signed checkpoint of size 25>
 *
 * Each signed note is text, a blank line and its signature lines ("— "),
 * so the old one ends at the first line after its signatures. The sizes in
 * the header are only what the file claims: a checker compares them with
 * the notes' own.
 */
#define TLOG_CONSISTENCY_HEADER "nhub.audit/consistency-proof@v1"

typedef struct tlog_consistency_file {
    tlog_alg_t alg;
    uint64_t old_size, new_size;
    size_t len; /* hashes in proof[] */
    tlog_hash_t proof[TLOG_PROOF_MAX];
    const char *old_note, *new_note; /* into the parsed text */
    size_t old_len, new_len;
} tlog_consistency_file_t;

/*
 * Write the file of `f` (its notes as tlog_note_sign wrote them: signed,
 * each ending in \n) into out[cap], NUL-terminated; *outlen (may be NULL)
 * receives the length. Returns 0, NHUB_EINVAL (NULL, an unknown alg, an
 * empty note, more than TLOG_PROOF_MAX hashes) or NHUB_ETOOBIG.
 */
int tlog_consistency_format(const tlog_consistency_file_t *f, char *out, size_t cap,
                            size_t *outlen);

/*
 * Parse such a file into *out (notes pointing into `text`). Neither note
 * nor the proof is checked: tlog_checkpoint_open both notes, compare their
 * sizes with the header's, then tlog_verify_consistency. Returns 0,
 * NHUB_EMALFORMED with the line and reason in `err`, NHUB_ETOOBIG or
 * NHUB_EINVAL.
 */
int tlog_consistency_parse(const char *text, size_t len, tlog_consistency_file_t *out, char *err,
                           size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
