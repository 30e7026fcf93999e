/*
 * fuzz_config.c: libFuzzer target for the configuration reader (proto/conf.h)
 * and the hub's configuration (broker/cfg.h).
 *
 * The input is loaded as a hub.yaml with cfg_load_string(), and, as a
 * NUL-terminated string, parsed as a size and as a duration. Besides memory
 * safety it checks what the headers promise; each failure aborts with a
 * line on stderr:
 *
 *   - a failed load leaves *out NULL and an error "NAME:..." naming the file;
 *   - a loaded cfg_t holds the invariants listed in cfg.h (count, sorted
 *     unique codes, every region findable, limits in range, cross-key rules);
 *   - a parsed size or duration formats and parses back to the same value.
 *
 * Speed: a cfg_t is about 300 KB, which ASan serves with mmap and munmap on
 * every call; that alone held the target to about 3k inputs/s. It is kept
 * across inputs instead (keep_block.h), and a cfg_t left allocated fails
 * the input.
 */
#include "cfg.h"
#include "conf.h"

#include "nhub_err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz.yaml"
#define MIB (UINT64_C(1) << 20)

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_config: property failed: %s\n", what);
    abort();
}

#include "keep_block.h"

static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int in_range(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

static void check_limits(const cfg_limits_t *l)
{
    if (l->max_frame < 1024 || l->max_frame > 64 * MIB || !in_range(l->batch_max, 1, 100000) ||
        l->map_size < MIB || l->map_size > l->map_size_max ||
        l->map_size_max > (UINT64_C(16) << 40) ||
        !in_range(l->dedup_window_ms, 1000, 365LL * 86400000) ||
        !in_range(l->redeliver_after_ms, 10, l->redeliver_max_ms) ||
        l->redeliver_max_ms > 86400000 || !in_range(l->credit_max, 1, 1000000) ||
        !in_range(l->heartbeat_ms, 10, 3600000) || l->peer_timeout_ms > 86400000 ||
        l->peer_timeout_ms < 2 * l->heartbeat_ms)
        fail("a loaded limit is out of its documented range");
}

static void check_cfg(const cfg_t *cfg)
{
    if (cfg->region_count < 1 || cfg->region_count > CFG_REGIONS_MAX)
        fail("region_count out of 1..CFG_REGIONS_MAX");
    if (!terminated(cfg->hub.listen, sizeof cfg->hub.listen) ||
        !terminated(cfg->hub.data_dir, sizeof cfg->hub.data_dir) ||
        strlen(cfg->hub.region) != CFG_REGION_CODE_LEN)
        fail("hub strings");
    check_limits(&cfg->limits);
    if (cfg->log.level < LOG_DEBUG || cfg->log.level > LOG_ERROR)
        fail("log level");
    for (size_t i = 0; i < cfg->region_count; i++) {
        const cfg_region_t *r = &cfg->regions[i];
        if (!terminated(r->code, sizeof r->code) || !terminated(r->name, sizeof r->name) ||
            strlen(r->code) != CFG_REGION_CODE_LEN || r->name[0] == '\0')
            fail("region strings");
        if (i > 0 && strcmp(cfg->regions[i - 1].code, r->code) >= 0)
            fail("regions not sorted by code, or a code listed twice");
        if (cfg_region_find(cfg, r->code) != r || cfg_region_index(cfg, r->code) != (int)i)
            fail("a configured region is not found by its code");
        if (strcmp(r->code, cfg->hub.region) == 0)
            fail("the hub's own region is listed");
    }
    if (cfg_region_find(cfg, cfg->hub.region) != NULL)
        fail("the hub's own region is found");
}

static void check_load(const uint8_t *data, size_t size)
{
    static cfg_t sentinel;
    char err[512];
    cfg_t *cfg = &sentinel; /* must be set to NULL on failure */
    int rc = cfg_load_string(NAME, (const char *)data, size, &cfg, err, sizeof err);
    if (!terminated(err, sizeof err))
        fail("error message not terminated");
    if (rc != 0) {
        if (cfg != NULL)
            fail("a failed load left *out set");
        if (strncmp(err, NAME ":", sizeof NAME) != 0)
            fail("an error message does not start with the file name");
        if (rc != NHUB_ECONFIG && rc != NHUB_ENOMEM)
            fail("a load failed with an undocumented code");
        return;
    }
    if (!cfg || err[0] != '\0')
        fail("a successful load without a result or with a message");
    check_cfg(cfg);
    cfg_destroy(&cfg);
    if (cfg)
        fail("cfg_destroy did not clear the pointer");
}

static void check_parsers(const char *s)
{
    char buf[64];
    uint64_t size = 0, size2 = 0;
    int64_t ms = 0, ms2 = 0;
    int rc = conf_parse_size(s, &size);
    if (rc != 0 && rc != NHUB_EINVAL && rc != NHUB_ETOOBIG)
        fail("conf_parse_size: undocumented code");
    if (rc == 0 &&
        (conf_parse_size(conf_format_size(size, buf, sizeof buf), &size2) != 0 || size2 != size))
        fail("conf_format_size does not parse back to the same size");
    rc = conf_parse_duration_ms(s, &ms);
    if (rc != 0 && rc != NHUB_EINVAL && rc != NHUB_ETOOBIG)
        fail("conf_parse_duration_ms: undocumented code");
    if (rc == 0 && ms < 0)
        fail("conf_parse_duration_ms: negative duration");
    if (rc == 0 &&
        (conf_parse_duration_ms(conf_format_duration_ms(ms, buf, sizeof buf), &ms2) != 0 ||
         ms2 != ms))
        fail("conf_format_duration_ms does not parse back to the same duration");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    keep_block_min = sizeof(cfg_t);
    check_load(data, size);
    if (keep_block_in_use())
        fail("a cfg_t is still allocated after the load");
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_parsers(s);
    free(s);
    return 0;
}
