/*
 * adapter_cfg.c: the adapter YAML schema and its defaults (see adapter_cfg.h).
 *
 * The schema is a table for proto/conf.c; this file only adds the defaults
 * and the checks a table cannot express, reported at the value's position.
 */
#include "adapter_cfg.h"

#include "conf.h"
#include "log.h"
#include "wire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"debug", "info", "warn", "error", "off", NULL};

static const conf_key_t adapter_keys[] = {
    CONF_KEY_STRING(adapter_section_t, region, "region", CONF_REQUIRED),
    CONF_KEY_STRING(adapter_section_t, hub, "hub", CONF_REQUIRED),
    CONF_KEY_STRING(adapter_section_t, data_dir, "data_dir", CONF_REQUIRED),
    CONF_KEY_INT64(adapter_section_t, credit, "credit", 0, 1, 65535),
    CONF_KEY_INT64(adapter_section_t, window, "window", 0, 1, 100000),
    CONF_KEY_STRING_LIST(adapter_section_t, accepted, n_accepted, "accepted_payloads", 0, 0),
    CONF_KEY_SIZE(adapter_section_t, max_frame, "max_frame", 0, 1024, 64ll << 20),
    CONF_KEY_DURATION_MS(adapter_section_t, resend_after_ms, "resend_after", 0, 100, 3600000),
    CONF_KEY_DURATION_MS(adapter_section_t, heartbeat_ms, "heartbeat", 0, 100, 600000),
    CONF_KEY_SIZE(adapter_section_t, map_size_max, "map_size_max", 0, 1ll << 20, 1ll << 40),
    CONF_KEY_DURATION_MS(adapter_section_t, confirmed_retention_ms, "confirmed_retention", 0, 60000,
                         3650ll * 24 * 3600 * 1000),
    CONF_KEY_STRING(adapter_section_t, key_file, "key_file", 0),
    CONF_KEY_STRING(adapter_section_t, hub_key, "hub_key", 0),
    CONF_KEY_STRING(adapter_section_t, hub_key_file, "hub_key_file", 0),
    CONF_KEY_STRING(adapter_section_t, hub_vkey, "hub_vkey", 0),
    CONF_KEY_STRING(adapter_section_t, hub_vkey_file, "hub_vkey_file", 0),
    CONF_KEY_BOOL(adapter_section_t, insecure_plaintext, "insecure_plaintext", 0),
    CONF_KEY_END,
};

static const conf_key_t api_keys[] = {
    CONF_KEY_STRING(api_section_t, listen, "listen", 0),
    CONF_KEY_STRING(api_section_t, token_file, "token_file", 0),
    CONF_KEY_SIZE(api_section_t, body_max, "body_max", 0, 1024, 64ll << 20),
    CONF_KEY_DURATION_MS(api_section_t, lease_ms, "lease", 0, 100, 3600000),
    CONF_KEY_DURATION_MS(api_section_t, long_poll_max_ms, "long_poll_max", 0, 1000, 600000),
    CONF_KEY_END,
};

static const conf_key_t spool_keys[] = {
    CONF_KEY_STRING(spool_section_t, dir, "dir", 0),
    CONF_KEY_BOOL(spool_section_t, inbox, "inbox", 0),
    CONF_KEY_DURATION_MS(spool_section_t, scan_interval_ms, "scan_interval", 0, 10, 60000),
    CONF_KEY_DURATION_MS(spool_section_t, settle_ms, "settle", 0, 0, 3600000),
    CONF_KEY_END,
};

static const conf_key_t track_keys[] = {
    CONF_KEY_DURATION_MS(track_section_t, retention_ms, "retention", 0, 1000,
                         3650ll * 24 * 3600 * 1000),
    CONF_KEY_DURATION_MS(track_section_t, max_age_ms, "max_age", 0, 1000,
                         3650ll * 24 * 3600 * 1000),
    CONF_KEY_SIZE(track_section_t, map_size_max, "map_size_max", 0, 64ll << 10, 1ll << 40),
    CONF_KEY_END,
};

static const conf_key_t log_keys[] = {
    CONF_KEY_ENUM(log_section_t, level, "level", 0, level_names),
    CONF_KEY_END,
};

static const conf_key_t top_keys[] = {
    CONF_KEY_MAP(adapter_cfg_t, adapter, "adapter", CONF_REQUIRED, adapter_keys),
    CONF_KEY_MAP(adapter_cfg_t, api, "api", 0, api_keys),
    CONF_KEY_MAP(adapter_cfg_t, spool, "spool", 0, spool_keys),
    CONF_KEY_MAP(adapter_cfg_t, track, "track", 0, track_keys),
    CONF_KEY_MAP(adapter_cfg_t, log, "log", 0, log_keys),
    CONF_KEY_END,
};

static void set_defaults(adapter_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->adapter.credit = 64;
    cfg->adapter.window = 256;
    cfg->adapter.max_frame = 1u << 20;
    cfg->adapter.resend_after_ms = 5000;
    cfg->adapter.heartbeat_ms = 2000;
    cfg->adapter.map_size_max = 4ull << 30;
    cfg->adapter.confirmed_retention_ms = 8ll * 24 * 3600 * 1000;
    cfg->api.body_max = 1u << 20;
    cfg->api.lease_ms = 30000;
    cfg->api.long_poll_max_ms = 60000;
    cfg->spool.scan_interval_ms = 500;
    cfg->spool.settle_ms = 5000;
    cfg->track.max_age_ms = 30ll * 24 * 3600 * 1000;
    cfg->log.level = LOG_INFO;
}

/* "PORT" or "A.B.C.D:PORT" into cfg->api_addr / api_port; 0 or -1. */
static int parse_listen(adapter_cfg_t *cfg)
{
    const char *s = cfg->api.listen, *colon = strrchr(s, ':');
    const char *port = colon ? colon + 1 : s;
    char addr[32] = "127.0.0.1";
    if (colon) {
        size_t n = (size_t)(colon - s);
        if (n == 0 || n >= sizeof addr)
            return -1;
        memcpy(addr, s, n);
        addr[n] = 0;
    }
    struct in_addr in;
    if (inet_pton(AF_INET, addr, &in) != 1)
        return -1;
    char *end = NULL;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (!port[0] || *end || errno || p < 0 || p > 65535)
        return -1;
    cfg->api_addr = ntohl(in.s_addr);
    cfg->api_port = (uint16_t)p;
    return 0;
}

/* The token file: one line of 16..255 printable characters, surrounding white space dropped. */
static int read_token(adapter_cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    FILE *f = fopen(cfg->api.token_file, "r");
    char buf[512];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    int bad = !f || ferror(f);
    if (f)
        fclose(f);
    if (bad)
        return conf_marks_error(marks, "api.token_file", err, errcap,
                                "api.token_file: cannot read %s: %s", cfg->api.token_file,
                                strerror(errno));
    buf[n] = 0;
    char *p = buf;
    while (*p && isspace((unsigned char)*p))
        p++;
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1]))
        p[--len] = 0;
    int ok = len >= 16 && len < sizeof cfg->api_token;
    for (size_t i = 0; i < len && ok; i++)
        ok = p[i] > 0x20 && p[i] < 0x7f;
    if (!ok)
        return conf_marks_error(marks, "api.token_file", err, errcap,
                                "api.token_file: %s must hold one token of 16..255 printable "
                                "characters without spaces",
                                cfg->api.token_file);
    memcpy(cfg->api_token, p, len + 1);
    return 0;
}

/* The api: and spool: sections. */
static int check_daemon(adapter_cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    if (cfg->api.listen[0] && parse_listen(cfg) != 0)
        return conf_marks_error(marks, "api.listen", err, errcap,
                                "api.listen must be \"PORT\" or \"ADDRESS:PORT\" (an IPv4 "
                                "address, port 0..65535)");
    if (cfg->api.token_file[0]) {
        if (!cfg->api.listen[0])
            return conf_marks_error(marks, "api.token_file", err, errcap,
                                    "api.token_file needs api.listen");
        int rc = read_token(cfg, marks, err, errcap);
        if (rc != 0)
            return rc;
    }
    if (cfg->spool.inbox && !cfg->spool.dir[0])
        return conf_marks_error(marks, "spool.inbox", err, errcap,
                                "spool.inbox: true needs spool.dir");
    if (!cfg->track.retention_ms)
        cfg->track.retention_ms = cfg->adapter.confirmed_retention_ms;
    if (!cfg->track.map_size_max)
        cfg->track.map_size_max = cfg->adapter.map_size_max;
    if (cfg->track.max_age_ms < cfg->track.retention_ms)
        return conf_marks_error(marks, "track.max_age", err, errcap,
                                "track.max_age must be at least track.retention (%lld ms)",
                                (long long)cfg->track.retention_ms);
    return 0;
}

/*
 * key_file with hub_key or hub_key_file, or insecure_plaintext: exactly one
 * way. Fills cfg->hub_key. Says what is missing, since a refused or
 * mis-secured adapter is hard to diagnose from the network side.
 */
static int check_security(adapter_cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    const adapter_section_t *a = &cfg->adapter;
    char kerr[256] = "";
    int key = a->key_file[0] != '\0', hk = a->hub_key[0] != '\0', hkf = a->hub_key_file[0] != '\0';
    if (a->insecure_plaintext && (key || hk || hkf))
        return conf_marks_error(marks, "adapter.insecure_plaintext", err, errcap,
                                "adapter.insecure_plaintext: true cannot be combined with "
                                "key_file, hub_key or hub_key_file: choose one");
    if (a->insecure_plaintext)
        return 0;
    if (!key)
        return conf_marks_error(marks, hk || hkf ? "adapter.key_file" : "adapter", err, errcap,
                                "adapter.key_file is missing: give this region's key file (made "
                                "by nhub-keygen) with hub_key_file or hub_key, or "
                                "insecure_plaintext: true for development");
    if (hk && hkf)
        return conf_marks_error(marks, "adapter.hub_key_file", err, errcap,
                                "give adapter.hub_key or adapter.hub_key_file, not both");
    if (!hk && !hkf)
        return conf_marks_error(marks, "adapter.key_file", err, errcap,
                                "adapter.key_file needs the hub's CURVE public key: give "
                                "adapter.hub_key_file (the hub's .pub file) or adapter.hub_key");
    if (hk) {
        if (strlen(a->hub_key) != KEYS_Z85_LEN || !keys_curve_valid(a->hub_key))
            return conf_marks_error(marks, "adapter.hub_key", err, errcap,
                                    "adapter.hub_key must be a CURVE public key: 40 Z85 "
                                    "characters");
        memcpy(cfg->hub_key, a->hub_key, KEYS_Z85_LEN + 1); /* length checked above */
        return 0;
    }
    if (keys_read_public(a->hub_key_file, cfg->hub_key, NULL, kerr, sizeof kerr) != 0)
        return conf_marks_error(marks, "adapter.hub_key_file", err, errcap,
                                "adapter.hub_key_file: %s", kerr);
    return 0;
}

/* Checks across or inside values that the schema cannot state. */
static int check(adapter_cfg_t *cfg, const conf_marks_t *marks, char *err, size_t errcap)
{
    if (!wire_region_valid(cfg->adapter.region))
        return conf_marks_error(marks, "adapter.region", err, errcap,
                                "adapter.region must be six digits (a GB/T 2260 code)");
    if (!cfg->adapter.hub[0])
        return conf_marks_error(marks, "adapter.hub", err, errcap, "adapter.hub is empty");
    if (!cfg->adapter.data_dir[0])
        return conf_marks_error(marks, "adapter.data_dir", err, errcap,
                                "adapter.data_dir is empty");
    for (size_t i = 0; i < cfg->adapter.n_accepted; i++) {
        const char *p = cfg->adapter.accepted[i];
        size_t len = strlen(p);
        int ok = len > 0;
        for (size_t j = 0; j < len && ok; j++) {
            char c = p[j];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || (c == '*' && j == len - 1 && j > 0 && p[j - 1] == '.');
        }
        if (!ok) {
            char path[64];
            snprintf(path, sizeof path, "adapter.accepted_payloads[%zu]", i);
            return conf_marks_error(marks, path, err, errcap,
                                    "%s must be a payload type or \"package.v1.*\"", path);
        }
    }
    int rc = check_security(cfg, marks, err, errcap);
    return rc ? rc : check_daemon(cfg, marks, err, errcap);
}

int adapter_cfg_load(const char *path, adapter_cfg_t *cfg, char *err, size_t errcap)
{
    conf_marks_t *marks = NULL;
    set_defaults(cfg);
    int rc = conf_load_file_marked(path, top_keys, cfg, &marks, err, errcap);
    if (rc == 0)
        rc = check(cfg, marks, err, errcap);
    conf_marks_destroy(&marks);
    return rc;
}

void adapter_cfg_options(adapter_cfg_t *cfg, nhub_options_t *opt)
{
    memset(opt, 0, sizeof *opt);
    for (size_t i = 0; i < cfg->adapter.n_accepted; i++)
        cfg->accepted_ptrs[i] = cfg->adapter.accepted[i];
    opt->region = cfg->adapter.region;
    opt->hub_endpoint = cfg->adapter.hub;
    opt->data_dir = cfg->adapter.data_dir;
    opt->credit = (uint32_t)cfg->adapter.credit;
    opt->window = (uint32_t)cfg->adapter.window;
    opt->accepted_payloads = cfg->adapter.n_accepted ? cfg->accepted_ptrs : NULL;
    opt->n_accepted = cfg->adapter.n_accepted;
    opt->max_frame = (uint32_t)cfg->adapter.max_frame;
    opt->resend_after_ms = cfg->adapter.resend_after_ms;
    opt->heartbeat_ms = cfg->adapter.heartbeat_ms;
    opt->map_size_max = cfg->adapter.map_size_max;
    opt->confirmed_retention_ms = cfg->adapter.confirmed_retention_ms;
    opt->key_file = cfg->adapter.key_file[0] ? cfg->adapter.key_file : NULL;
    opt->hub_key = cfg->hub_key[0] ? cfg->hub_key : NULL;
    opt->insecure_plaintext = cfg->adapter.insecure_plaintext;
}
