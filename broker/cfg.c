/*
 * cfg.c: the hub configuration: its schema, its defaults, and the checks that
 * span several keys (see cfg.h).
 *
 * Parsing, types and per-key ranges belong to conf.c; this file says which
 * keys exist and what must hold between them. The cross-key checks use the
 * marks conf.c records, so they can point at a line and column like any
 * parse error. Once checked, regions are sorted by code so lookups on the
 * message path are a binary search.
 */
#include "cfg.h"

#include "conf.h"
#include "log.h"
#include "nhub_err.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KIB (INT64_C(1) << 10)
#define MIB (INT64_C(1) << 20)
#define GIB (INT64_C(1) << 30)
#define TIB (INT64_C(1) << 40)

#define SEC INT64_C(1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

/* Room for "regions[4095].code". */
#define CFG_KEY_PATH_CAP 64

static const conf_key_t cfg_hub_schema[] = {
    CONF_KEY_STRING(cfg_hub_t, listen, "listen", CONF_REQUIRED),
    CONF_KEY_STRING(cfg_hub_t, data_dir, "data_dir", CONF_REQUIRED),
    CONF_KEY_STRING(cfg_hub_t, region, "region", 0),
    CONF_KEY_END,
};

/* Ranges are sanity bounds: wide enough for tests that drive time fast and for
 * a national deployment, narrow enough to catch a unit typo (5ms for 5m). */
static const conf_key_t cfg_limits_schema[] = {
    CONF_KEY_SIZE(cfg_limits_t, max_frame, "max_frame", 0, KIB, 64 * MIB),
    CONF_KEY_INT64(cfg_limits_t, batch_max, "batch_max", 0, 1, 100000),
    CONF_KEY_SIZE(cfg_limits_t, map_size, "map_size", 0, MIB, TIB),
    CONF_KEY_SIZE(cfg_limits_t, map_size_max, "map_size_max", 0, MIB, 16 * TIB),
    CONF_KEY_DURATION_MS(cfg_limits_t, dedup_window_ms, "dedup_window", 0, SEC, 365 * DAY),
    CONF_KEY_DURATION_MS(cfg_limits_t, redeliver_after_ms, "redeliver_after", 0, 10, HOUR),
    CONF_KEY_DURATION_MS(cfg_limits_t, redeliver_max_ms, "redeliver_max", 0, 10, DAY),
    CONF_KEY_INT64(cfg_limits_t, credit_max, "credit_max", 0, 1, 1000000),
    CONF_KEY_DURATION_MS(cfg_limits_t, heartbeat_ms, "heartbeat", 0, 10, HOUR),
    CONF_KEY_DURATION_MS(cfg_limits_t, peer_timeout_ms, "peer_timeout", 0, 20, DAY),
    CONF_KEY_END,
};

/* Indexed by enum log_level; "off" is left out on purpose: a hub must log errors. */
static const char *const cfg_level_names[] = {"debug", "info", "warn", "error", NULL};

_Static_assert(LOG_DEBUG == 0 && LOG_INFO == 1 && LOG_WARN == 2 && LOG_ERROR == 3,
               "cfg_level_names is indexed by enum log_level");
_Static_assert(sizeof(enum log_level) == sizeof(int), "CONF_ENUM stores an int");

static const conf_key_t cfg_log_schema[] = {
    CONF_KEY_ENUM(cfg_log_t, level, "level", 0, cfg_level_names),
    CONF_KEY_END,
};

static const char *const cfg_mode_names[] = {"curve", "insecure-plaintext", NULL};

/* Indexed by enum cfg_payload_cipher. */
static const char *const cfg_payload_cipher_names[] = {"aes-256-gcm", "sm4-ctr-hmac-sm3", NULL};

static const conf_key_t cfg_security_schema[] = {
    CONF_KEY_ENUM(cfg_security_t, mode, "mode", 0, cfg_mode_names),
    CONF_KEY_STRING(cfg_security_t, key_file, "key_file", 0),
    CONF_KEY_STRING(cfg_security_t, catalog, "catalog", 0),
    CONF_KEY_STRING(cfg_security_t, payload_key_file, "payload_key_file", 0),
    CONF_KEY_ENUM(cfg_security_t, payload_cipher, "payload_cipher", 0, cfg_payload_cipher_names),
    CONF_KEY_END,
};

static const conf_key_t cfg_key_schema[] = {
    CONF_KEY_STRING(cfg_key_t, file, "file", 0),
    CONF_KEY_STRING(cfg_key_t, curve, "curve", 0),
    CONF_KEY_STRING(cfg_key_t, sign, "sign", 0),
    CONF_KEY_STRING(cfg_key_t, not_before, "not_before", 0),
    CONF_KEY_STRING(cfg_key_t, not_after, "not_after", 0),
    CONF_KEY_END,
};

static const conf_key_t cfg_region_schema[] = {
    CONF_KEY_STRING(cfg_region_t, code, "code", CONF_REQUIRED),
    CONF_KEY_STRING(cfg_region_t, name, "name", CONF_REQUIRED),
    CONF_KEY_SEQ_OF_MAPS(cfg_region_t, keys, key_count, "keys", 0, cfg_key_schema, 0, NULL),
    CONF_KEY_BOOL(cfg_region_t, cities, "cities", 0),
    CONF_KEY_BOOL(cfg_region_t, suspended, "suspended", 0),
    CONF_KEY_STRING(cfg_region_t, suspended_reason, "suspended_reason", 0),
    CONF_KEY_END,
};

static const conf_key_t cfg_http_schema[] = {
    CONF_KEY_STRING(cfg_http_t, listen, "listen", CONF_REQUIRED),
    CONF_KEY_STRING(cfg_http_t, read_token, "read_token", 0),
    CONF_KEY_STRING(cfg_http_t, operator_token, "operator_token", 0),
    CONF_KEY_STRING(cfg_http_t, read_token_file, "read_token_file", 0),
    CONF_KEY_STRING(cfg_http_t, operator_token_file, "operator_token_file", 0),
    CONF_KEY_STRING(cfg_http_t, tls_cert, "tls_cert", 0),
    CONF_KEY_STRING(cfg_http_t, tls_key, "tls_key", 0),
    CONF_KEY_END,
};

static const char *const cfg_tree_hash_names[] = {"sha256", "sm3", NULL};

static const conf_key_t cfg_audit_schema[] = {
    CONF_KEY_ENUM(cfg_audit_t, tree_hash, "tree_hash", 0, cfg_tree_hash_names),
    CONF_KEY_STRING(cfg_audit_t, origin, "origin", 0),
    CONF_KEY_INT64(cfg_audit_t, checkpoint_every, "checkpoint_every", 0, 1, 10000000),
    CONF_KEY_DURATION_MS(cfg_audit_t, checkpoint_interval_ms, "checkpoint_interval", 0, SEC,
                         DAY),
    CONF_KEY_STRING(cfg_audit_t, archive_dir, "archive_dir", 0),
    CONF_KEY_INT64(cfg_audit_t, archive_every, "archive_every", 0, 1, 10000000),
    CONF_KEY_DURATION_MS(cfg_audit_t, retention_ms, "retention", 0, SEC, 100 * 366 * DAY),
    CONF_KEY_END,
};

static const conf_key_t cfg_schema[] = {
    CONF_KEY_MAP(cfg_t, hub, "hub", CONF_REQUIRED, cfg_hub_schema),
    CONF_KEY_MAP(cfg_t, audit, "audit", 0, cfg_audit_schema),
    CONF_KEY_MAP(cfg_t, security, "security", 0, cfg_security_schema),
    CONF_KEY_MAP(cfg_t, limits, "limits", 0, cfg_limits_schema),
    CONF_KEY_MAP(cfg_t, log, "log", 0, cfg_log_schema),
    CONF_KEY_MAP(cfg_t, http, "http", 0, cfg_http_schema),
    CONF_KEY_SEQ_OF_MAPS(cfg_t, regions, region_count, "regions", CONF_REQUIRED, cfg_region_schema,
                         1, NULL),
    CONF_KEY_END,
};

static void cfg_defaults(cfg_t *cfg)
{
    snprintf(cfg->hub.region, sizeof cfg->hub.region, "%s", CFG_HUB_REGION_DEFAULT);
    cfg->limits = (cfg_limits_t){
        .max_frame = MIB,
        .batch_max = 1024,
        .map_size = 256 * MIB,
        .map_size_max = 64 * GIB,
        .dedup_window_ms = 7 * DAY,
        .redeliver_after_ms = 5 * SEC,
        .redeliver_max_ms = 5 * MINUTE,
        .credit_max = 4096,
        .heartbeat_ms = 5 * SEC,
        .peer_timeout_ms = 20 * SEC,
    };
    cfg->log.level = LOG_INFO;
    cfg->audit.checkpoint_every = 10000;
    cfg->audit.checkpoint_interval_ms = 60 * SEC;
    cfg->audit.archive_every = 10000;
}

/* ---- checks across keys -------------------------------------------------- */

static bool cfg_code_valid(const char *code)
{
    for (size_t i = 0; i < CFG_REGION_CODE_LEN; i++) {
        if (code[i] < '0' || code[i] > '9')
            return false;
    }
    return code[CFG_REGION_CODE_LEN] == '\0';
}

/* Names reach the dashboard and messages; control characters have no place there. */
static bool cfg_name_valid(const char *name)
{
    if (name[0] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

static int cfg_check_hub(const cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    /* Every ZeroMQ transport is written scheme://address. */
    if (!strstr(cfg->hub.listen, "://"))
        return conf_marks_error(marks, "hub.listen", err, errcap,
                                "\"hub.listen\": expected a ZeroMQ endpoint like "
                                "tcp://127.0.0.1:7400");
    if (cfg->hub.data_dir[0] == '\0')
        return conf_marks_error(marks, "hub.data_dir", err, errcap,
                                "\"hub.data_dir\": must not be empty");
    if (!cfg_code_valid(cfg->hub.region))
        return conf_marks_error(marks, "hub.region", err, errcap,
                                "\"hub.region\": a region code is exactly 6 ASCII digits "
                                "(GB/T 2260)");
    return 0;
}

/* Point at the second key of a pair if the file sets it, else at the first. */
static const char *cfg_pair_path(const conf_marks_t *marks, const char *first, const char *second)
{
    return conf_marks_find(marks, second, NULL) == 0 ? second : first;
}

static int cfg_check_limits(const cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    const cfg_limits_t *l = &cfg->limits;
    char a[32];
    char b[32];

    if (l->map_size > l->map_size_max)
        return conf_marks_error(
            marks, cfg_pair_path(marks, "limits.map_size", "limits.map_size_max"), err, errcap,
            "\"limits.map_size\" (%s) must not exceed \"limits.map_size_max\" (%s)",
            conf_format_size(l->map_size, a, sizeof a),
            conf_format_size(l->map_size_max, b, sizeof b));
    if (l->redeliver_after_ms > l->redeliver_max_ms)
        return conf_marks_error(
            marks, cfg_pair_path(marks, "limits.redeliver_after", "limits.redeliver_max"), err,
            errcap, "\"limits.redeliver_after\" (%s) must not exceed \"limits.redeliver_max\" (%s)",
            conf_format_duration_ms(l->redeliver_after_ms, a, sizeof a),
            conf_format_duration_ms(l->redeliver_max_ms, b, sizeof b));
    /* One late heartbeat must not be enough to close a healthy session. */
    if (l->peer_timeout_ms < 2 * l->heartbeat_ms)
        return conf_marks_error(
            marks, cfg_pair_path(marks, "limits.heartbeat", "limits.peer_timeout"), err, errcap,
            "\"limits.peer_timeout\" (%s) must be at least twice \"limits.heartbeat\" (%s)",
            conf_format_duration_ms(l->peer_timeout_ms, a, sizeof a),
            conf_format_duration_ms(l->heartbeat_ms, b, sizeof b));
    return 0;
}

/* Each entry on its own: code shape, name, not the hub's own code. */
static int cfg_check_region(const cfg_t *cfg, size_t i, const conf_marks_t *marks, char *err,
                            size_t errcap)
{
    const cfg_region_t *r = &cfg->regions[i];
    char path[CFG_KEY_PATH_CAP];

    snprintf(path, sizeof path, "regions[%zu].code", i);
    if (!cfg_code_valid(r->code))
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": a region code is exactly 6 ASCII digits (GB/T 2260)",
                                path);
    if (strcmp(r->code, cfg->hub.region) == 0)
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": %s is the hub's own region (hub.region) and must not "
                                "be listed",
                                path, r->code);
    if (r->cities && strcmp(r->code + 2, "0000") != 0) {
        snprintf(path, sizeof path, "regions[%zu].cities", i);
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": only a province-level region (code ending in 0000) may "
                                "send for its cities",
                                path);
    }
    snprintf(path, sizeof path, "regions[%zu].name", i);
    if (!cfg_name_valid(r->name))
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": a region name must be non-empty, without control "
                                "characters",
                                path);
    return 0;
}

int cfg_parse_time(const char *text, int64_t *ms)
{
    /* Exactly 2026-12-01T00:00:00Z, from 2000: 0 means "no bound" to the
     * callers, so the epoch must not parse. */
    int64_t v;
    if (!text || strlen(text) != 20 || log_time_parse(text, &v) != 0 || v < INT64_C(946684800000))
        return NHUB_EINVAL;
    *ms = v;
    return 0;
}

int cfg_source_allowed(const cfg_region_t *province, const char *source)
{
    if (strcmp(province->code, source) == 0)
        return 1;
    /* A prefecture-level (city) code: the province's first two digits, its
     * own two, then 00 (GB/T 2260: PPCC00); only a province-level region
     * (PP0000) may send for its cities. */
    return province->cities && cfg_code_valid(source) && strcmp(province->code + 2, "0000") == 0 &&
           strncmp(province->code, source, 2) == 0 && strncmp(source + 2, "00", 2) != 0 &&
           strcmp(source + 4, "00") == 0;
}

static int cfg_check_key(cfg_t *cfg, size_t i, size_t k, const conf_marks_t *marks, char *err,
                         size_t errcap)
{
    cfg_key_t *key = &cfg->regions[i].keys[k];
    char path[CFG_KEY_PATH_CAP + 16], why[128];
    int has_inline = key->curve[0] || key->sign[0];

    snprintf(path, sizeof path, "regions[%zu].keys[%zu]", i, k);
    if (key->file[0] && has_inline) /* cfg_read_key_files fills both after this check */
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": give either file or curve and sign, not both", path);
    if (!key->file[0] && (!key->curve[0] || !key->sign[0]))
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": needs curve and sign (or file: a .pub from "
                                "nhub-keygen)",
                                path);
    if (key->curve[0] && !keys_curve_valid(key->curve)) {
        snprintf(path, sizeof path, "regions[%zu].keys[%zu].curve", i, k);
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": not a CURVE public key (40 Z85 characters)", path);
    }
    if (key->sign[0]) {
        keys_verifier_t *v = NULL;
        if (keys_verifier_parse(key->sign, &v, why, sizeof why) != 0) {
            snprintf(path, sizeof path, "regions[%zu].keys[%zu].sign", i, k);
            return conf_marks_error(marks, path, err, errcap, "\"%s\": %s", path, why);
        }
        keys_verifier_free(&v);
    }
    const char *names[2] = {"not_before", "not_after"};
    const char *texts[2] = {key->not_before, key->not_after};
    int64_t *vals[2] = {&key->not_before_ms, &key->not_after_ms};
    for (int j = 0; j < 2; j++) {
        *vals[j] = 0;
        if (!texts[j][0])
            continue;
        if (cfg_parse_time(texts[j], vals[j]) != 0) {
            snprintf(path, sizeof path, "regions[%zu].keys[%zu].%s", i, k, names[j]);
            return conf_marks_error(marks, path, err, errcap,
                                    "\"%s\": expected a UTC time like 2026-12-01T00:00:00Z", path);
        }
    }
    if (key->not_before_ms && key->not_after_ms && key->not_before_ms >= key->not_after_ms) {
        snprintf(path, sizeof path, "regions[%zu].keys[%zu].not_after", i, k);
        return conf_marks_error(marks, path, err, errcap, "\"%s\": must be later than not_before",
                                path);
    }
    return 0;
}

static int cfg_check_security(cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    if (!cfg->security.payload_key_file[0] &&
        cfg->security.payload_cipher != CFG_PAYLOAD_AES_256_GCM)
        return conf_marks_error(marks, "security.payload_cipher", err, errcap,
                                "\"security.payload_cipher\": needs security.payload_key_file "
                                "(the key envelopes are sealed with)");
    if (cfg->security.mode != CFG_SECURITY_CURVE)
        return 0;
    if (!cfg->security.key_file[0])
        return conf_marks_error(marks, "security", err, errcap,
                                "\"security.key_file\": required in curve mode (the hub's "
                                "secret key from nhub-keygen --hub)");
    if (!cfg->security.catalog[0])
        return conf_marks_error(marks, "security", err, errcap,
                                "\"security.catalog\": required in curve mode (e.g. "
                                "schemas/catalog.yaml)");
    return 0;
}

/* "PORT" or "A.B.C.D:PORT" into the address and port; 0 or -1. */
static int cfg_parse_listen(const char *text, uint32_t *addr, uint16_t *port)
{
    unsigned a[4] = {127, 0, 0, 1}, p = 0;
    char tail = 0;
    int n = strchr(text, ':') ? sscanf(text, "%3u.%3u.%3u.%3u:%5u%c", &a[0], &a[1], &a[2], &a[3],
                                       &p, &tail)
                              : sscanf(text, "%5u%c", &p, &tail) + 4;
    if (n != 5 || p > 65535 || a[0] > 255 || a[1] > 255 || a[2] > 255 || a[3] > 255)
        return -1;
    for (const char *c = text; *c; c++)
        if (!(*c >= '0' && *c <= '9') && *c != '.' && *c != ':')
            return -1;
    *addr = a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3];
    *port = (uint16_t)p;
    return 0;
}

/* Tokens travel in headers: printable ASCII without spaces, long enough to guess at no rate. */
static const char *cfg_token_problem(const char *t)
{
    if (!t[0])
        return NULL;
    if (strlen(t) < CFG_TOKEN_MIN)
        return "is shorter than 16 characters";
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return "must be printable ASCII without spaces";
    return NULL;
}

/* The origin names the log in every checkpoint (one line of a signed note):
 * printable ASCII without spaces; by default nhub.hub/<hub.region>. */
static int cfg_check_audit(cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    cfg_audit_t *a = &cfg->audit;
    if (!a->origin[0])
        snprintf(a->origin, sizeof a->origin, "nhub.hub/%s", cfg->hub.region);
    for (const char *p = a->origin; *p; p++)
        if (*p <= ' ' || *p > '~')
            return conf_marks_error(marks, "audit.origin", err, errcap,
                                    "\"audit.origin\": printable ASCII without spaces, like "
                                    "nhub.example.gov.cn/hub");
    if (strlen(a->origin) > CFG_ORIGIN_MAX)
        return conf_marks_error(marks, "audit.origin", err, errcap,
                                "\"audit.origin\": at most %d characters", CFG_ORIGIN_MAX);
    if (a->retention_ms && !a->archive_dir[0])
        return conf_marks_error(marks, "audit.retention", err, errcap,
                                "\"audit.retention\" needs \"audit.archive_dir\": records "
                                "leave the live store only once archived");
    return 0;
}

static int cfg_check_http(cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    cfg_http_t *h = &cfg->http;
    if (!h->listen[0])
        return 0;
    if (cfg_parse_listen(h->listen, &h->bind_addr, &h->port) != 0)
        return conf_marks_error(marks, "http.listen", err, errcap,
                                "\"http.listen\": expected PORT or IPV4:PORT, like "
                                "127.0.0.1:7480");
    h->loopback = (h->bind_addr >> 24) == 127;
    if (h->read_token[0] && h->read_token_file[0])
        return conf_marks_error(marks, "http.read_token_file", err, errcap,
                                "\"http\": give read_token or read_token_file, not both");
    if (h->operator_token[0] && h->operator_token_file[0])
        return conf_marks_error(marks, "http.operator_token_file", err, errcap,
                                "\"http\": give operator_token or operator_token_file, not both");
    const char *why;
    if ((why = cfg_token_problem(h->read_token)))
        return conf_marks_error(marks, "http.read_token", err, errcap, "\"http.read_token\": %s",
                                why);
    if ((why = cfg_token_problem(h->operator_token)))
        return conf_marks_error(marks, "http.operator_token", err, errcap,
                                "\"http.operator_token\": %s", why);
    if (h->read_token[0] && strcmp(h->read_token, h->operator_token) == 0)
        return conf_marks_error(marks, "http.operator_token", err, errcap,
                                "\"http.operator_token\": must differ from read_token (the "
                                "read-only token must not allow operator actions)");
    if (!h->tls_cert[0] != !h->tls_key[0])
        return conf_marks_error(marks, h->tls_cert[0] ? "http.tls_cert" : "http.tls_key", err,
                                errcap, "\"http\": tls_cert and tls_key go together");
    int has_read = h->read_token[0] || h->read_token_file[0];
    int has_operator = h->operator_token[0] || h->operator_token_file[0];
    if (!h->loopback && (!h->tls_cert[0] || !has_read || !has_operator))
        return conf_marks_error(marks, "http.listen", err, errcap,
                                "\"http.listen\": %s is not a loopback address; binding it "
                                "needs tls_cert, tls_key, read_token and operator_token",
                                h->listen);
    return 0;
}

struct cfg_code_ref {
    const char *code;
    size_t index; /* position in the file */
};

static int cfg_code_ref_cmp(const void *a, const void *b)
{
    const struct cfg_code_ref *x = a;
    const struct cfg_code_ref *y = b;
    int c = strcmp(x->code, y->code);
    if (c != 0)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

/*
 * Duplicate codes, found by sorting references rather than comparing all
 * pairs (4096 regions would be 8 million comparisons). Of all duplicates the
 * one earliest in the file is reported, so the message does not depend on
 * sort order, and it names where the code first appeared.
 */
static int cfg_check_duplicates(const cfg_t *cfg, const conf_marks_t *marks, char *err,
                                size_t errcap)
{
    size_t n = cfg->region_count;
    struct cfg_code_ref *refs = calloc(n ? n : 1, sizeof *refs);
    size_t first = 0;
    size_t later = SIZE_MAX;
    size_t run = 0;

    if (!refs) {
        conf_marks_error(marks, NULL, err, errcap, "out of memory");
        return NHUB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (struct cfg_code_ref){cfg->regions[i].code, i};
    qsort(refs, n, sizeof *refs, cfg_code_ref_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i].code, refs[run].code) != 0) {
            run = i;
            continue;
        }
        if (refs[i].index < later) {
            later = refs[i].index;
            first = refs[run].index;
        }
    }
    free(refs);
    if (later == SIZE_MAX)
        return 0;

    char path[CFG_KEY_PATH_CAP];
    conf_mark_t at = {0, 0};
    snprintf(path, sizeof path, "regions[%zu].code", first);
    conf_marks_find(marks, path, &at);
    snprintf(path, sizeof path, "regions[%zu].code", later);
    return conf_marks_error(marks, path, err, errcap,
                            "\"%s\": duplicate region code %s (first listed as regions[%zu] "
                            "at line %zu, column %zu)",
                            path, cfg->regions[later].code, first, at.line, at.column);
}

/*
 * One CURVE key names one region: the ZAP handler maps a key to exactly one
 * identity. Quadratic in the number of keys, which is small (a few per
 * region), and only keys given inline are compared here; cfg_read_key_files
 * repeats the check once files are read.
 */
static int cfg_check_curve_unique(const cfg_t *cfg, const conf_marks_t *marks, char *err,
                                  size_t errcap)
{
    for (size_t i = 0; i < cfg->region_count; i++)
        for (size_t k = 0; k < cfg->regions[i].key_count; k++) {
            const char *c = cfg->regions[i].keys[k].curve;
            if (!c[0])
                continue;
            for (size_t j = 0; j <= i; j++)
                for (size_t l = 0; l < (j == i ? k : cfg->regions[j].key_count); l++) {
                    if (strcmp(cfg->regions[j].keys[l].curve, c) != 0)
                        continue;
                    char path[CFG_KEY_PATH_CAP + 16];
                    snprintf(path, sizeof path, "regions[%zu].keys[%zu]", i, k);
                    return conf_marks_error(marks, path, err, errcap,
                                            "\"%s\": CURVE key already listed for region %s "
                                            "(regions[%zu].keys[%zu]); a key names one region",
                                            path, cfg->regions[j].code, j, l);
                }
        }
    return 0;
}

static int cfg_check(cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    int rc = cfg_check_hub(cfg, marks, err, errcap);
    if (rc == 0)
        rc = cfg_check_limits(cfg, marks, err, errcap);
    for (size_t i = 0; rc == 0 && i < cfg->region_count; i++)
        rc = cfg_check_region(cfg, i, marks, err, errcap);
    for (size_t i = 0; rc == 0 && i < cfg->region_count; i++)
        for (size_t k = 0; rc == 0 && k < cfg->regions[i].key_count; k++)
            rc = cfg_check_key(cfg, i, k, marks, err, errcap);
    if (rc == 0)
        rc = cfg_check_curve_unique(cfg, marks, err, errcap);
    if (rc == 0)
        rc = cfg_check_duplicates(cfg, marks, err, errcap);
    if (rc == 0)
        rc = cfg_check_security(cfg, marks, err, errcap);
    if (rc == 0)
        rc = cfg_check_http(cfg, marks, err, errcap);
    if (rc == 0)
        rc = cfg_check_audit(cfg, marks, err, errcap);
    return rc;
}

static int cfg_region_cmp(const void *a, const void *b)
{
    const cfg_region_t *x = a;
    const cfg_region_t *y = b;
    return strcmp(x->code, y->code);
}

/* ---- loading ------------------------------------------------------------- */

/* Read each key given by `file` into its curve and sign, then check again. */
static int cfg_read_key_files(cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    for (size_t i = 0; i < cfg->region_count; i++)
        for (size_t k = 0; k < cfg->regions[i].key_count; k++) {
            cfg_key_t *key = &cfg->regions[i].keys[k];
            if (!key->file[0])
                continue;
            char why[512], path[CFG_KEY_PATH_CAP + 16];
            snprintf(path, sizeof path, "regions[%zu].keys[%zu].file", i, k);
            if (keys_read_public(key->file, key->curve, key->sign, why, sizeof why) != 0)
                return conf_marks_error(marks, path, err, errcap, "\"%s\": %s", path, why);
            /* Checked as if given inline; the file name stays for messages. */
            char file[sizeof key->file];
            memcpy(file, key->file, sizeof file);
            key->file[0] = '\0';
            int rc = cfg_check_key(cfg, i, k, marks, err, errcap);
            memcpy(key->file, file, sizeof file);
            if (rc)
                return rc;
        }
    return cfg_check_curve_unique(cfg, marks, err, errcap);
}

/* The token on the first line of `file` into `out`; 0 or an error naming `key`. */
static int cfg_read_token(const char *file, char *out, const char *key, const conf_marks_t *marks,
                          char *err, size_t errcap)
{
    char path[64];
    snprintf(path, sizeof path, "http.%s", key);
    FILE *f = fopen(file, "r");
    char line[CFG_TOKEN_MAX + 2] = "";
    int ok = f && fgets(line, sizeof line, f) != NULL;
    if (f)
        fclose(f);
    if (!ok)
        return conf_marks_error(marks, path, err, errcap, "\"%s\": cannot read %s", path, file);
    size_t n = strcspn(line, "\r\n");
    if (n > CFG_TOKEN_MAX)
        return conf_marks_error(marks, path, err, errcap,
                                "\"%s\": the token in %s is longer than %d characters", path, file,
                                CFG_TOKEN_MAX);
    line[n] = 0;
    const char *why = line[0] ? cfg_token_problem(line) : "is empty";
    if (why)
        return conf_marks_error(marks, path, err, errcap, "\"%s\": the token in %s %s", path, file,
                                why);
    memcpy(out, line, n + 1);
    return 0;
}

static int cfg_read_token_files(cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    cfg_http_t *h = &cfg->http;
    int rc = 0;
    if (h->read_token_file[0])
        rc = cfg_read_token(h->read_token_file, h->read_token, "read_token_file", marks, err,
                            errcap);
    if (!rc && h->operator_token_file[0])
        rc = cfg_read_token(h->operator_token_file, h->operator_token, "operator_token_file",
                            marks, err, errcap);
    if (!rc && h->read_token[0] && strcmp(h->read_token, h->operator_token) == 0)
        return conf_marks_error(marks, "http.operator_token_file", err, errcap,
                                "\"http\": the operator token must differ from the read token");
    return rc;
}

/* Load from `path` if it is set, else from `text`. */
static int cfg_load_common(const char *path, const char *name, const char *text, size_t len,
                           cfg_t **out, char *err, size_t errcap)
{
    cfg_t *cfg = NULL;
    conf_marks_t *marks = NULL;
    int rc;

    if (err && errcap)
        err[0] = '\0';
    if (!out || (!path && !text)) {
        if (err && errcap)
            snprintf(err, errcap, "cfg: no path, text or result pointer");
        return NHUB_EINVAL;
    }
    *out = NULL;
    cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        if (err && errcap)
            snprintf(err, errcap, "%s: out of memory", path ? path : name);
        return NHUB_ENOMEM;
    }
    cfg_defaults(cfg);
    if (path)
        rc = conf_load_file_marked(path, cfg_schema, cfg, &marks, err, errcap);
    else
        rc = conf_load_string_marked(name, text, len, cfg_schema, cfg, &marks, err, errcap);
    if (rc != 0)
        goto fail;
    rc = cfg_check(cfg, marks, err, errcap);
    if (rc == 0 && path)
        rc = cfg_read_key_files(cfg, marks, err, errcap);
    if (rc == 0 && path)
        rc = cfg_read_token_files(cfg, marks, err, errcap);
    if (rc != 0)
        goto fail;
    qsort(cfg->regions, cfg->region_count, sizeof cfg->regions[0], cfg_region_cmp);
    conf_marks_destroy(&marks);
    *out = cfg;
    return 0;

fail:
    conf_marks_destroy(&marks);
    free(cfg);
    return rc;
}

int cfg_load(const char *path, cfg_t **out, char *err, size_t errcap)
{
    if (!path) {
        if (out)
            *out = NULL;
        if (err && errcap)
            snprintf(err, errcap, "cfg: no configuration path");
        return NHUB_EINVAL;
    }
    return cfg_load_common(path, NULL, NULL, 0, out, err, errcap);
}

int cfg_load_string(const char *name, const char *text, size_t len, cfg_t **out, char *err,
                    size_t errcap)
{
    return cfg_load_common(NULL, name ? name : "<config>", text, len, out, err, errcap);
}

void cfg_destroy(cfg_t **self)
{
    if (!self)
        return;
    free(*self);
    *self = NULL;
}

static int cfg_region_key_cmp(const void *key, const void *elem)
{
    const cfg_region_t *r = elem;
    return strcmp(key, r->code);
}

const cfg_region_t *cfg_region_find(const cfg_t *cfg, const char *code)
{
    if (!cfg || !code)
        return NULL;
    return bsearch(code, cfg->regions, cfg->region_count, sizeof cfg->regions[0],
                   cfg_region_key_cmp);
}

int cfg_region_index(const cfg_t *cfg, const char *code)
{
    const cfg_region_t *r = cfg_region_find(cfg, code);
    return r ? (int)(r - cfg->regions) : -1;
}
