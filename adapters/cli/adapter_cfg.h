/*
 * adapter_cfg.h: the adapter YAML file of nhub-adapter, read through
 * proto/conf.h.
 *
 *   adapter:
 *     region: "440000"                       # required, six digits
 *     hub: "tcp://127.0.0.1:7400"            # required, ZeroMQ endpoint
 *     data_dir: "build/run/adapter-440000"   # required; relative to the working directory
 *     credit: 64                             # deliveries accepted unconfirmed
 *     window: 256                            # SENDs in flight unacknowledged
 *     accepted_payloads: []                  # e.g. ["nhub.verify.v1.*"]; empty = all
 *     max_frame: 1MiB                        # largest message sent or received
 *     resend_after: 5s
 *     heartbeat: 2s
 *     map_size_max: 4GiB                     # limit of the adapter's LMDB store
 *     confirmed_retention: 8d                # how long confirmed msg_ids are remembered
 *     key_file: "conf/dev-keys/440000.key"   # this region's secret keys (nhub-keygen)
 *     hub_key_file: "conf/dev-keys/hub.pub"  # the hub's public keys; or
 *     hub_key: "<40 Z85 characters>"         # the hub's CURVE public key inline
 *     insecure_plaintext: false              # true: no CURVE, no signatures (development)
 *     hub_vkey_file: "conf/hub.vkey"         # the hub's checkpoint verifier key, for
 *     hub_vkey: "<NAME+HEX8+BASE64>"         # nhub-adapter receipt; one or the other
 *   api:                                     # nhub-adapter run: the local JSON API
 *     listen: "127.0.0.1:7490"               # "PORT" or "ADDRESS:PORT"; absent = no API
 *     token_file: "/etc/nhub/api.token"      # optional: Authorization: Bearer <its text>
 *     body_max: 1MiB                         # largest request body (413 above)
 *     lease: 30s                             # a delivery GET inbox handed out and not
 *                                            # confirmed is offered again after this
 *     long_poll_max: 60s                     # longest ?wait= honoured
 *   spool:                                   # nhub-adapter run: the spool folders
 *     dir: "/var/spool/nhub"                 # absent = no spool
 *     inbox: false                           # true: deliveries go to DIR/inbox/, not the API
 *     scan_interval: 500ms                   # look at the folders at least this often
 *     settle: 5s                             # a .json that does not parse is failed once
 *                                            # it has not changed for this long
 *   track:                                   # nhub-adapter run: its own record (track.h)
 *     retention: 8d                          # settled records and spent spool marks are
 *                                            # pruned this long after; default
 *                                            # adapter.confirmed_retention
 *     max_age: 30d                           # any record is pruned this long after its
 *                                            # submission (>= retention)
 *     map_size_max: 4GiB                     # limit of its LMDB; default adapter.map_size_max
 *   log:
 *     level: info                            # debug, info, warn, error, off
 *
 * Exactly one of key_file (with hub_key or hub_key_file) and
 * `insecure_plaintext: true` must be given. Paths are relative to the
 * working directory. Unknown keys, wrong types, out-of-range values and a
 * wrong security combination are errors that name FILE:LINE:COLUMN and the
 * key.
 */
#ifndef NHUB_ADAPTER_CFG_H
#define NHUB_ADAPTER_CFG_H

#include "keys.h"
#include "nhub.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADAPTER_CFG_ACCEPTED_MAX 64

/* The `adapter:` section. */
typedef struct adapter_section {
    char region[8];
    char hub[256];
    char data_dir[1024];
    int64_t credit;
    int64_t window;
    char accepted[ADAPTER_CFG_ACCEPTED_MAX][129];
    size_t n_accepted;
    uint64_t max_frame;
    int64_t resend_after_ms;
    int64_t heartbeat_ms;
    uint64_t map_size_max;
    int64_t confirmed_retention_ms;
    char key_file[1024];
    char hub_key[64];
    char hub_key_file[1024];
    char hub_vkey[512];      /* the hub's checkpoint verifier key (receipts), or */
    char hub_vkey_file[1024]; /* a file holding it */
    bool insecure_plaintext;
} adapter_section_t;

/* The `api:` section (nhub-adapter run). */
typedef struct api_section {
    char listen[64]; /* "" = no API */
    char token_file[1024];
    uint64_t body_max;
    int64_t lease_ms;
    int64_t long_poll_max_ms;
} api_section_t;

/* The `spool:` section (nhub-adapter run). */
typedef struct spool_section {
    char dir[1024]; /* "" = no spool */
    bool inbox;
    int64_t scan_interval_ms;
    int64_t settle_ms;
} spool_section_t;

/* The `track:` section (nhub-adapter run). */
typedef struct track_section {
    int64_t retention_ms; /* 0 in the file's absence: adapter.confirmed_retention */
    int64_t max_age_ms;
    uint64_t map_size_max; /* 0 in the file's absence: adapter.map_size_max */
} track_section_t;

/* The `log:` section. */
typedef struct log_section {
    int level; /* enum log_level */
} log_section_t;

typedef struct adapter_cfg {
    adapter_section_t adapter;
    api_section_t api;
    spool_section_t spool;
    track_section_t track;
    log_section_t log;
    /* From api.listen by adapter_cfg_load: IPv4 address (host order) and port. */
    uint32_t api_addr;
    uint16_t api_port;
    /* The token read from api.token_file (surrounding white space removed);
     * "" = none. */
    char api_token[256];
    /* Pointers into `adapter.accepted`, filled by adapter_cfg_options. */
    const char *accepted_ptrs[ADAPTER_CFG_ACCEPTED_MAX];
    /* The hub's CURVE key: adapter.hub_key, or read from adapter.hub_key_file
     * by adapter_cfg_load; "" in insecure_plaintext mode. */
    char hub_key[KEYS_Z85_LEN + 1];
} adapter_cfg_t;

/*
 * Fill `*cfg` with defaults, then load the YAML file at `path` over them and
 * check what the schema cannot (region digits, non-empty hub and data_dir,
 * the security keys, api.listen, that spool.inbox has a spool.dir), reading
 * the hub's key from hub_key_file and the API token from api.token_file if
 * given.
 * Returns 0, or NHUB_EIO / NHUB_ECONFIG / NHUB_ENOMEM with a one-line
 * message in `err` ("FILE:LINE:COLUMN: ...").
 */
int adapter_cfg_load(const char *path, adapter_cfg_t *cfg, char *err, size_t errcap);

/*
 * Fill `*opt` (zeroed first) for nhub_open from `cfg`. The strings point
 * into `cfg`, which must outlive the nhub_open call.
 */
void adapter_cfg_options(adapter_cfg_t *cfg, nhub_options_t *opt);

#endif
