/*
 * cfg.h: the hub's configuration (conf/hub.yaml).
 *
 * cfg_load() reads the file through the generic reader (conf.h), fills in
 * defaults for every optional key, then checks what a schema cannot say:
 * region codes are six ASCII digits (GB/T 2260), no code is listed twice, the
 * hub's own region is not in the list, map_size <= map_size_max,
 * redeliver_after <= redeliver_max, peer_timeout >= 2 * heartbeat. Every
 * error is one line "FILE:LINE:COLUMN: message" pointing at the offending
 * value.
 *
 * cfg_t is a record of values, not an object: its fields are public and are
 * read-only once cfg_load() returns, so accessor functions would add nothing
 * but names. It is self-contained (fixed arrays, no pointers), so a reload
 * can build a new cfg_t beside the old one and swap.
 *
 * Invariants after a successful load:
 *   - 1 <= region_count <= CFG_REGIONS_MAX;
 *   - regions[] is sorted by code (ascending, strcmp order), codes unique;
 *   - every string is NUL-terminated within its array;
 *   - every limit lies within the range documented beside its field.
 *
 * Relative paths (data_dir, key files, the catalogue) are relative to the
 * process's current directory. cfg_load() reads each region key given by
 * `file` (a public file from nhub-keygen) into its curve and sign fields, so
 * after it every key has both; cfg_load_string() reads no other file and
 * leaves such keys with empty curve/sign (tests and fuzzing only).
 *
 * Security rules checked at load: curve mode needs security.key_file and
 * security.catalog; every key has a valid Z85 curve key and a parseable
 * signing key; no CURVE key is listed for two regions (or twice);
 * not_before < not_after when both are set.
 */
#ifndef NHUB_CFG_H
#define NHUB_CFG_H

#include "keys.h"
#include "log.h"

#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CFG_ENDPOINT_MAX 255   /* bytes of hub.listen */
#define CFG_PATH_MAX 4095      /* bytes of hub.data_dir */
#define CFG_REGION_CODE_LEN 6  /* GB/T 2260 code: exactly six ASCII digits */
#define CFG_REGION_NAME_MAX 63 /* bytes of a region name (UTF-8) */
#define CFG_REGIONS_MAX 4096
#define CFG_KEYS_MAX 4       /* keys per region: the current one plus rotation overlap */
#define CFG_KEY_PATH_MAX 255 /* bytes of a key file path */
#define CFG_TIME_MAX 31      /* bytes of an RFC 3339 UTC time, 2026-12-01T00:00:00Z */
#define CFG_REASON_MAX 127   /* bytes of an operator's suspension reason */

/* The code of the national hub itself (DOMAIN.md, "Region codes"). */
#define CFG_HUB_REGION_DEFAULT "000000"

typedef struct cfg_hub {
    char listen[CFG_ENDPOINT_MAX + 1];    /* ZeroMQ endpoint, e.g. tcp://127.0.0.1:7400 */
    char data_dir[CFG_PATH_MAX + 1];      /* store and journal directory */
    char region[CFG_REGION_CODE_LEN + 1]; /* the hub's own code; default 000000 */
} cfg_hub_t;

/* security.mode */
enum cfg_security_mode {
    CFG_SECURITY_CURVE = 0,              /* CurveZMQ + ZAP + signatures + catalogue (default) */
    CFG_SECURITY_INSECURE_PLAINTEXT = 1, /* development only: anyone may claim any region */
};

typedef struct cfg_security {
    int mode;                            /* enum cfg_security_mode */
    char key_file[CFG_KEY_PATH_MAX + 1]; /* the hub's secret key file; required for curve */
    char catalog[CFG_KEY_PATH_MAX + 1];  /* service-item catalogue; required for curve;
                                            empty in insecure mode = every item allowed */
    /* Payload privacy at rest (proto/seal.h): stored envelopes are sealed
     * with this key file's key; empty = stored as received. */
    char payload_key_file[CFG_KEY_PATH_MAX + 1];
    int payload_cipher; /* enum cfg_payload_cipher: what new envelopes are sealed with */
} cfg_security_t;

/* security.payload_cipher */
enum cfg_payload_cipher {
    CFG_PAYLOAD_AES_256_GCM = 0, /* default */
    CFG_PAYLOAD_SM4_CTR_HMAC_SM3 = 1,
};

typedef struct cfg_limits {
    uint64_t max_frame;         /* bytes; largest SEND body; 1KiB..64MiB, default 1MiB */
    int64_t batch_max;          /* messages per group commit; 1..100000, default 1024 */
    uint64_t map_size;          /* bytes; initial LMDB map; 1MiB..1TiB, default 256MiB */
    uint64_t map_size_max;      /* bytes; growth cap; 1MiB..16TiB, default 64GiB */
    int64_t dedup_window_ms;    /* msg_id memory; 1s..365d, default 7d */
    int64_t redeliver_after_ms; /* first redelivery; 10ms..1h, default 5s */
    int64_t redeliver_max_ms;   /* backoff cap; 10ms..1d, default 5m */
    int64_t credit_max;         /* cap on announced credit; 1..1000000, default 4096 */
    int64_t heartbeat_ms;       /* adapters' interval; 10ms..1h, default 5s */
    int64_t peer_timeout_ms;    /* silence that closes a session; 20ms..1d, default 20s */
} cfg_limits_t;

/*
 * http: the monitoring and operations endpoint (broker/http.h). Off when
 * `listen` is empty (the section is absent). Bound to a loopback address it
 * may run without TLS, and reads need no token unless read_token is set;
 * bound to any other address it needs tls_cert, tls_key and both tokens
 * (checked at load). Operator actions always need operator_token. A token
 * may be given by file instead (read_token_file, operator_token_file: the
 * token on the file's first line), read by cfg_load like key files.
 */
#define CFG_TOKEN_MIN 16 /* characters of a token */
#define CFG_TOKEN_MAX 255
typedef struct cfg_http {
    char listen[CFG_ENDPOINT_MAX + 1];       /* "PORT" or "IPV4:PORT"; port 0 = any free */
    char read_token[CFG_TOKEN_MAX + 1];      /* reads (GET); "" = none needed on loopback */
    char operator_token[CFG_TOKEN_MAX + 1];  /* operator actions (POST); also reads */
    char read_token_file[CFG_KEY_PATH_MAX + 1];
    char operator_token_file[CFG_KEY_PATH_MAX + 1];
    char tls_cert[CFG_KEY_PATH_MAX + 1];     /* PEM certificate chain file */
    char tls_key[CFG_KEY_PATH_MAX + 1];      /* PEM private key file */
    /* filled in by cfg_load from listen */
    uint32_t bind_addr; /* IPv4 address, host byte order */
    uint16_t port;
    bool loopback; /* bind_addr is in 127.0.0.0/8 */
} cfg_http_t;

typedef struct cfg_log {
    enum log_level level; /* LOG_DEBUG..LOG_ERROR (never LOG_OFF); default LOG_INFO */
} cfg_log_t;

/*
 * One key of a region: its CURVE public key (authenticates the connection)
 * and its public signing key (checks its envelopes), given inline or by a
 * public file from nhub-keygen (`file`, read by cfg_load into curve and
 * sign). not_before/not_after bound when the key is accepted; during a
 * rotation the old key gets a not_after and the new one is added beside it.
 */
typedef struct cfg_key {
    char file[CFG_KEY_PATH_MAX + 1];
    char curve[KEYS_Z85_LEN + 1];
    char sign[KEYS_PUBLIC_TEXT_MAX + 1];
    char not_before[CFG_TIME_MAX + 1];
    char not_after[CFG_TIME_MAX + 1];
    int64_t not_before_ms; /* ms since the epoch; 0 = no bound */
    int64_t not_after_ms;  /* ms since the epoch; 0 = no bound */
} cfg_key_t;

typedef struct cfg_region {
    char code[CFG_REGION_CODE_LEN + 1]; /* six ASCII digits */
    char name[CFG_REGION_NAME_MAX + 1]; /* non-empty UTF-8, no control characters */
    size_t key_count;
    cfg_key_t keys[CFG_KEYS_MAX]; /* none: the region cannot connect (curve mode) */
    bool cities;                  /* may send for city codes under this province */
    bool suspended;               /* operators suspended it: its messages are refused */
    char suspended_reason[CFG_REASON_MAX + 1];
} cfg_region_t;

/* The `audit:` section: the signed checkpoints of the journal's Merkle tree. */
#define CFG_ORIGIN_MAX 200
typedef struct cfg_audit {
    char origin[CFG_ORIGIN_MAX + 1]; /* the log's name in its checkpoints; default
                                        "nhub.hub/<hub.region>" */
    int64_t checkpoint_every;        /* records; 1..10000000, default 10000 */
    int64_t checkpoint_interval_ms;  /* 1s..1d, default 60s: at most this long unsigned */
    int tree_hash;                   /* CFG_TREE_SHA256 (default) or CFG_TREE_SM3, for a new tree */
    char archive_dir[CFG_PATH_MAX + 1]; /* archive files go here; empty: no archives, no pruning */
    int64_t archive_every;           /* records per archive file; 1..10000000, default 10000 */
    int64_t retention_ms;            /* archived records older than this leave the live store;
                                        0 (default): kept */
} cfg_audit_t;
enum { CFG_TREE_SHA256 = 0, CFG_TREE_SM3 = 1 };

typedef struct cfg {
    cfg_hub_t hub;
    cfg_audit_t audit;
    cfg_security_t security;
    cfg_limits_t limits;
    cfg_log_t log;
    cfg_http_t http;
    size_t region_count;
    cfg_region_t regions[CFG_REGIONS_MAX]; /* first region_count used, sorted by code */
} cfg_t;

/*
 * Load and check the configuration file at `path`.
 *
 * On success sets `*out` to a new cfg_t (caller owns it, free with
 * cfg_destroy()) and `err` to "". On failure sets `*out` to NULL and writes a
 * one-line message into `err` (capacity `errcap`; may be NULL/0). Returns 0,
 * or
 *   NHUB_EIO      the file cannot be opened or read;
 *   NHUB_ECONFIG  the file is not valid YAML or breaks a rule above;
 *   NHUB_EINVAL   `path` or `out` is NULL;
 *   NHUB_ENOMEM   an allocation failed.
 */
int cfg_load(const char *path, cfg_t **out, char *err, size_t errcap);

/*
 * As cfg_load(), from `len` bytes of `text`; `name` stands for the file name
 * in messages. For tests and fuzzing. Never returns NHUB_EIO.
 */
int cfg_load_string(const char *name, const char *text, size_t len, cfg_t **out, char *err,
                    size_t errcap);

/* Free `*self` and set it to NULL. Accepts NULL and a pointer to NULL. */
void cfg_destroy(cfg_t **self);

/*
 * The region whose code is the NUL-terminated string `code`, or NULL if none
 * is configured (or `code` is NULL). Binary search. The result is borrowed
 * from `cfg`, valid until cfg_destroy().
 */
const cfg_region_t *cfg_region_find(const cfg_t *cfg, const char *code);

/*
 * The index of `code` in cfg->regions, or -1 if unknown. Indexes follow code
 * order and change when regions are added: persist codes, not indexes.
 */
int cfg_region_index(const cfg_t *cfg, const char *code);

/*
 * Parse an RFC 3339 UTC time of exactly the form 2026-12-01T00:00:00Z, year
 * 2000 or later, into ms since the epoch. Impossible dates (02-30, 24:00,
 * :60) are refused, not normalised. Returns 0 or NHUB_EINVAL.
 */
int cfg_parse_time(const char *text, int64_t *ms);

/*
 * 1 if `source` is `province` itself, or a prefecture-level (city) code
 * under it, PPCC00, that the configuration lets the province send for
 * (region.cities; only province-level codes PP0000 may have it).
 */
int cfg_source_allowed(const cfg_region_t *province, const char *source);

#ifdef __cplusplus
}
#endif
#endif
