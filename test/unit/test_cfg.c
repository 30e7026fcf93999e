/*
 * test_cfg.c: the hub configuration (broker/cfg.h).
 *
 * Loads the shipped conf/hub.yaml (run from the repository root) and short
 * texts that break one rule each, checking the FILE:LINE:COLUMN in every
 * error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cfg.h"
#include "nhub_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRCAP 512

#define HUB_SECTION                                                                                \
    "hub:\n"                                                                                       \
    "  listen: \"tcp://127.0.0.1:7400\"\n"                                                         \
    "  data_dir: build/run/hub\n"

static int load(const char *text, cfg_t **cfg, char *err)
{
    return cfg_load_string("h.yaml", text, strlen(text), cfg, err, ERRCAP);
}

/* Load `text`, expect NHUB_ECONFIG, no result and an error equal to `want`. */
/* As load(), in the development security mode, so no key files are needed. */
static int load_dev(const char *text, cfg_t **cfg, char *err)
{
    size_t len = strlen(text);
    char *full = malloc(len + 64);
    assert_non_null(full);
    memcpy(full, text, len);
    strcpy(full + len, "security: {mode: insecure-plaintext}\n");
    int rc = load(full, cfg, err);
    free(full);
    return rc;
}

/* conf/hub.yaml, from text: it names development key files that `make run`
 * generates, and cfg_load_string reads no other file. */
static int load_shipped(cfg_t **cfg, char *err)
{
    FILE *f = fopen("conf/hub.yaml", "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    return cfg_load_string("conf/hub.yaml", text, len, cfg, err, ERRCAP);
}

static void expect_error(const char *text, const char *want)
{
    cfg_t *cfg = (cfg_t *)&cfg;
    char err[ERRCAP];
    int rc = load(text, &cfg, err);
    if (rc != NHUB_ECONFIG || cfg != NULL || strcmp(err, want) != 0) {
        print_error("rc=%d\n got: %s\nwant: %s\n", rc, err, want);
        fail();
    }
}

static void test_shipped_file_has_32_regions_and_defaults(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    int rc = load_shipped(&cfg, err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    assert_non_null(cfg);
    assert_string_equal(cfg->hub.listen, "tcp://127.0.0.1:7400");
    assert_string_equal(cfg->hub.data_dir, "build/run/hub");
    assert_string_equal(cfg->hub.region, "000000");
    assert_int_equal(cfg->region_count, 32);
    assert_int_equal(cfg->limits.max_frame, 1 << 20);
    assert_int_equal(cfg->limits.batch_max, 1024);
    assert_int_equal(cfg->limits.map_size, 256 << 20);
    assert_int_equal(cfg->limits.map_size_max, UINT64_C(64) << 30);
    assert_int_equal(cfg->limits.dedup_window_ms, INT64_C(7) * 24 * 3600 * 1000);
    assert_int_equal(cfg->limits.redeliver_after_ms, 5000);
    assert_int_equal(cfg->limits.redeliver_max_ms, 300000);
    assert_int_equal(cfg->limits.credit_max, 4096);
    assert_int_equal(cfg->limits.heartbeat_ms, 5000);
    assert_int_equal(cfg->limits.peer_timeout_ms, 20000);
    assert_int_equal(cfg->log.level, LOG_INFO);
    for (size_t i = 1; i < cfg->region_count; i++)
        assert_true(strcmp(cfg->regions[i - 1].code, cfg->regions[i].code) < 0);
    cfg_destroy(&cfg);
    assert_null(cfg);
}

static void test_region_lookup_finds_configured_codes_only(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_shipped(&cfg, err), 0);

    const cfg_region_t *r = cfg_region_find(cfg, "440000");
    assert_non_null(r);
    assert_string_equal(r->name, "Guangdong");
    r = cfg_region_find(cfg, "660000");
    assert_non_null(r);
    assert_string_equal(r->name, "Xinjiang Production and Construction Corps");
    assert_int_equal(cfg_region_index(cfg, "110000"), 0);
    assert_int_equal(cfg_region_index(cfg, "660000"), 31);
    assert_string_equal(cfg->regions[cfg_region_index(cfg, "540000")].name, "Tibet");

    assert_null(cfg_region_find(cfg, "000000"));
    assert_null(cfg_region_find(cfg, "440100"));
    assert_null(cfg_region_find(cfg, "44000"));
    assert_null(cfg_region_find(cfg, ""));
    assert_null(cfg_region_find(cfg, NULL));
    assert_null(cfg_region_find(NULL, "110000"));
    assert_int_equal(cfg_region_index(cfg, "999999"), -1);
    assert_int_equal(cfg_region_index(NULL, "110000"), -1);
    cfg_destroy(&cfg);
}

static void test_minimal_file_gets_documented_defaults(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION "regions:\n  - {code: \"320000\", name: Jiangsu}\n"
                                          "  - {code: 110000, name: Beijing}\n",
                              &cfg, err),
                     0);
    assert_string_equal(cfg->hub.region, "000000");
    assert_int_equal(cfg->limits.max_frame, 1 << 20);
    assert_int_equal(cfg->limits.map_size_max, UINT64_C(64) << 30);
    assert_int_equal(cfg->limits.peer_timeout_ms, 20000);
    assert_int_equal(cfg->log.level, LOG_INFO);
    assert_int_equal(cfg->region_count, 2);
    /* Sorted by code, whatever the file order. */
    assert_string_equal(cfg->regions[0].code, "110000");
    assert_string_equal(cfg->regions[1].code, "320000");
    cfg_destroy(&cfg);
}

static void test_limits_and_log_level_are_read(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION "  region: \"440000\"\n"
                                          "limits:\n"
                                          "  max_frame: 64KiB\n"
                                          "  redeliver_after: 50ms\n"
                                          "  redeliver_max: 1s\n"
                                          "  heartbeat: 100ms\n"
                                          "  peer_timeout: 200ms\n"
                                          "log: {level: debug}\n"
                                          "regions: [{code: \"110000\", name: Beijing}]\n",
                              &cfg, err),
                     0);
    assert_string_equal(cfg->hub.region, "440000");
    assert_int_equal(cfg->limits.max_frame, 64 * 1024);
    assert_int_equal(cfg->limits.redeliver_after_ms, 50);
    assert_int_equal(cfg->limits.redeliver_max_ms, 1000);
    assert_int_equal(cfg->limits.heartbeat_ms, 100);
    assert_int_equal(cfg->limits.peer_timeout_ms, 200);
    assert_int_equal(cfg->log.level, LOG_DEBUG);
    cfg_destroy(&cfg);
}

static void test_bad_region_code_names_position(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "regions:\n"
                             "  - code: \"110000\"\n"
                             "    name: Beijing\n"
                             "  - code: \"12000a\"\n"
                             "    name: Tianjin\n",
                 "h.yaml:7:11: \"regions[1].code\": a region code is exactly 6 ASCII digits "
                 "(GB/T 2260)");
    expect_error(HUB_SECTION "regions:\n  - {code: \"11000\", name: Beijing}\n",
                 "h.yaml:5:12: \"regions[0].code\": a region code is exactly 6 ASCII digits "
                 "(GB/T 2260)");
    expect_error(HUB_SECTION "regions:\n  - {code: \"1100000\", name: Beijing}\n",
                 "h.yaml:5:12: \"regions[0].code\": string is too long (7 bytes, at most 6)");
}

static void test_duplicate_region_names_both_positions(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "regions:\n"
                             "  - code: \"110000\"\n"
                             "    name: Beijing\n"
                             "  - code: \"120000\"\n"
                             "    name: Tianjin\n"
                             "  - code: \"110000\"\n"
                             "    name: Beijing again\n",
                 "h.yaml:9:11: \"regions[2].code\": duplicate region code 110000 (first listed "
                 "as regions[0] at line 5, column 11)");
}

static void test_hub_region_in_list_is_refused(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "regions:\n"
                             "  - code: \"110000\"\n"
                             "    name: Beijing\n"
                             "  - code: \"000000\"\n"
                             "    name: National\n",
                 "h.yaml:7:11: \"regions[1].code\": 000000 is the hub's own region (hub.region) "
                 "and must not be listed");
    expect_error(HUB_SECTION "  region: \"440000\"\n"
                             "regions:\n"
                             "  - {code: \"440000\", name: Guangdong}\n",
                 "h.yaml:6:12: \"regions[0].code\": 440000 is the hub's own region (hub.region) "
                 "and must not be listed");
}

static void test_map_size_above_max_names_position(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "limits:\n"
                             "  map_size: 2GiB\n"
                             "  map_size_max: 1GiB\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:6:17: \"limits.map_size\" (2GiB) must not exceed "
                 "\"limits.map_size_max\" (1GiB)");
    /* Only map_size set: the default max (64GiB) still applies, reported at map_size. */
    expect_error(HUB_SECTION "limits:\n"
                             "  map_size: 1TiB\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:13: \"limits.map_size\" (1TiB) must not exceed "
                 "\"limits.map_size_max\" (64GiB)");
}

static void test_timing_pairs_are_checked(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "limits:\n"
                             "  redeliver_after: 10m\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:20: \"limits.redeliver_after\" (10m) must not exceed "
                 "\"limits.redeliver_max\" (5m)");
    expect_error(HUB_SECTION "limits:\n"
                             "  heartbeat: 5s\n"
                             "  peer_timeout: 6s\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:6:17: \"limits.peer_timeout\" (6s) must be at least twice "
                 "\"limits.heartbeat\" (5s)");
}

static void test_limits_out_of_range_are_refused(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "limits:\n  max_frame: 128MiB\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:14: \"limits.max_frame\": \"128MiB\" is out of range (expected 1KiB "
                 "to 64MiB)");
    expect_error(HUB_SECTION "limits:\n  max_frame: big\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:14: \"limits.max_frame\": expected a size like 1048576 or 1MiB, got "
                 "\"big\"");
    expect_error(HUB_SECTION "limits:\n  batch_max: 0\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:14: \"limits.batch_max\": \"0\" is out of range (expected 1 to 100000)");
    expect_error(HUB_SECTION "limits:\n  heartbeat: 5ms\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:14: \"limits.heartbeat\": \"5ms\" is out of range (expected 10ms to "
                 "1h)");
}

static void test_unknown_log_level_lists_choices(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "log:\n  level: verbose\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:10: \"log.level\": expected one of: debug, info, warn, error, got "
                 "\"verbose\"");
    expect_error(HUB_SECTION "log:\n  level: \"off\"\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:5:10: \"log.level\": expected one of: debug, info, warn, error, got "
                 "\"off\"");
}

static void test_hub_section_errors_are_reported(void **state)
{
    (void)state;
    expect_error("hub:\n  data_dir: d\nregions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:2:3: missing required key \"listen\" in \"hub\"");
    expect_error("hub:\n  lisen: x\n",
                 "h.yaml:2:3: unknown key \"lisen\" in \"hub\" (expected one of: listen, "
                 "data_dir, region)");
    expect_error("hub:\n  listen: 127.0.0.1:7400\n  data_dir: d\n"
                 "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:2:11: \"hub.listen\": expected a ZeroMQ endpoint like "
                 "tcp://127.0.0.1:7400");
    expect_error("hub:\n  listen: tcp://*:1\n  data_dir: \"\"\n"
                 "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:3:13: \"hub.data_dir\": must not be empty");
    expect_error(HUB_SECTION "  region: \"CN\"\n"
                             "regions: [{code: \"110000\", name: Beijing}]\n",
                 "h.yaml:4:11: \"hub.region\": a region code is exactly 6 ASCII digits "
                 "(GB/T 2260)");
}

static void test_region_list_must_be_present_and_non_empty(void **state)
{
    (void)state;
    expect_error(HUB_SECTION, "h.yaml:1:1: missing required key \"regions\" at the top level");
    expect_error(HUB_SECTION "regions: []\n",
                 "h.yaml:4:10: \"regions\": expected at least 1 entries, got 0");
    expect_error(HUB_SECTION "regions:\n  - {code: \"110000\"}\n",
                 "h.yaml:5:5: missing required key \"name\" in \"regions[0]\"");
}

static void test_region_names_are_bounded_utf8(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    char text[1024];
    char name[80];

    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(text, sizeof text,
             HUB_SECTION "regions:\n  - {code: \"110000\", name: %s}\n"
                         "  - {code: \"120000\", name: \"天津市\"}\n",
             name);
    assert_int_equal(load_dev(text, &cfg, err), 0);
    assert_string_equal(cfg_region_find(cfg, "110000")->name, name);
    assert_string_equal(cfg_region_find(cfg, "120000")->name, "天津市");
    cfg_destroy(&cfg);

    /* 64 bytes: 21 three-byte characters and one ASCII byte. */
    char cjk[80] = "";
    for (int i = 0; i < 21; i++)
        strcat(cjk, "北");
    strcat(cjk, "x");
    snprintf(text, sizeof text, HUB_SECTION "regions:\n  - {code: \"110000\", name: %s}\n", cjk);
    expect_error(text, "h.yaml:5:28: \"regions[0].name\": string is too long (64 bytes, at "
                       "most 63)");
    expect_error(HUB_SECTION "regions:\n  - {code: \"110000\", name: \"\"}\n",
                 "h.yaml:5:28: \"regions[0].name\": a region name must be non-empty, without "
                 "control characters");
    expect_error(HUB_SECTION "regions:\n  - {code: \"110000\", name: \"a\\tb\"}\n",
                 "h.yaml:5:28: \"regions[0].name\": a region name must be non-empty, without "
                 "control characters");
}

/* Build a region list of `n` entries with codes 100000, 100001, ... */
static char *many_regions(size_t n)
{
    size_t cap = 128 + n * 48;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t o = (size_t)snprintf(text, cap, HUB_SECTION "regions:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "  - {code: \"%06zu\", name: r%zu}\n", 100000 + i,
                              i);
    return text;
}

static void test_region_count_is_capped_at_4096(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    char *text = many_regions(CFG_REGIONS_MAX);
    assert_int_equal(load_dev(text, &cfg, err), 0);
    assert_int_equal(cfg->region_count, CFG_REGIONS_MAX);
    assert_int_equal(cfg_region_index(cfg, "104095"), 4095);
    assert_string_equal(cfg_region_find(cfg, "102000")->name, "r2000");
    cfg_destroy(&cfg);
    free(text);

    text = many_regions(CFG_REGIONS_MAX + 1);
    expect_error(text, "h.yaml:4101:5: \"regions\": too many entries (at most 4096)");
    free(text);
}

static void test_file_errors_name_the_file(void **state)
{
    (void)state;
    cfg_t *cfg = (cfg_t *)&cfg;
    char err[ERRCAP];
    assert_int_equal(cfg_load("conf/no-such.yaml", &cfg, err, sizeof err), NHUB_EIO);
    assert_null(cfg);
    assert_string_equal(err, "conf/no-such.yaml: cannot open: No such file or directory");

    char dir[] = "/tmp/test_cfg.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/hub.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(HUB_SECTION "regions:\n  - {code: \"110000\", name: Beijing}\n"
                      "  - {code: \"110000\", name: Beijing}\n",
          f);
    fclose(f);
    assert_int_equal(cfg_load(path, &cfg, err, sizeof err), NHUB_ECONFIG);
    char want[256];
    snprintf(want, sizeof want,
             "%s:6:12: \"regions[1].code\": duplicate region code 110000 (first listed as "
             "regions[0] at line 5, column 12)",
             path);
    assert_string_equal(err, want);
    unlink(path);
    rmdir(dir);
}

static void test_null_arguments_are_refused_and_destroy_accepts_null(void **state)
{
    (void)state;
    cfg_t *cfg = (cfg_t *)&cfg;
    char err[ERRCAP];
    assert_int_equal(cfg_load(NULL, &cfg, err, sizeof err), NHUB_EINVAL);
    assert_null(cfg);
    assert_int_equal(cfg_load("conf/hub.yaml", NULL, err, sizeof err), NHUB_EINVAL);
    assert_int_equal(cfg_load_string("x", NULL, 0, &cfg, NULL, 0), NHUB_EINVAL);
    cfg_destroy(NULL);
    cfg = NULL;
    cfg_destroy(&cfg);
    assert_null(cfg);
}

/* ---- security and region keys --------------------------------------------- */

#define REGIONS_BEIJING "regions: [{code: \"110000\", name: Beijing}]\n"

static keys_file_t *gen(const char *region, keys_alg_t alg)
{
    keys_file_t *k = NULL;
    assert_int_equal(keys_generate(region, alg, INT64_C(1795597200000), &k), 0);
    assert_non_null(k);
    return k;
}

/* expect_error() over a text made by printf. */
static void expect_errorf(const char *want, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void expect_errorf(const char *want, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof text);
    expect_error(text, want);
}

static void test_curve_mode_requires_key_file_and_catalog(void **state)
{
    (void)state;
    /* curve is the default mode; the check runs after every other one. */
    expect_error(HUB_SECTION REGIONS_BEIJING,
                 "h.yaml:1:1: \"security.key_file\": required in curve mode (the hub's secret key "
                 "from nhub-keygen --hub)");
    expect_error(HUB_SECTION "security:\n"
                             "  mode: curve\n"
                             "  catalog: schemas/catalog.yaml\n" REGIONS_BEIJING,
                 "h.yaml:5:3: \"security.key_file\": required in curve mode (the hub's secret key "
                 "from nhub-keygen --hub)");
    expect_error(HUB_SECTION "security: {key_file: conf/hub.key}\n" REGIONS_BEIJING,
                 "h.yaml:4:11: \"security.catalog\": required in curve mode (e.g. "
                 "schemas/catalog.yaml)");
    /* Another error is reported first. */
    expect_error(HUB_SECTION "regions: [{code: \"11000\", name: Beijing}]\n",
                 "h.yaml:4:18: \"regions[0].code\": a region code is exactly 6 ASCII digits "
                 "(GB/T 2260)");

    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load(HUB_SECTION "security:\n"
                                      "  key_file: conf/hub.key\n"
                                      "  catalog: schemas/catalog.yaml\n" REGIONS_BEIJING,
                          &cfg, err),
                     0);
    assert_int_equal(cfg->security.mode, CFG_SECURITY_CURVE);
    assert_string_equal(cfg->security.key_file, "conf/hub.key");
    assert_string_equal(cfg->security.catalog, "schemas/catalog.yaml");
    cfg_destroy(&cfg);
}

static void test_insecure_mode_needs_no_key_file_or_catalog(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION REGIONS_BEIJING, &cfg, err), 0);
    assert_string_equal(err, "");
    assert_int_equal(cfg->security.mode, CFG_SECURITY_INSECURE_PLAINTEXT);
    assert_string_equal(cfg->security.key_file, "");
    assert_string_equal(cfg->security.catalog, "");
    assert_int_equal(cfg->regions[0].key_count, 0);
    assert_false(cfg->regions[0].cities);
    assert_false(cfg->regions[0].suspended);
    cfg_destroy(&cfg);
}

static void test_unknown_security_mode_lists_choices(void **state)
{
    (void)state;
    expect_error(HUB_SECTION "security: {mode: tls}\n" REGIONS_BEIJING,
                 "h.yaml:4:18: \"security.mode\": expected one of: curve, insecure-plaintext, got "
                 "\"tls\"");
    expect_error(HUB_SECTION "security: {mode: insecure}\n" REGIONS_BEIJING,
                 "h.yaml:4:18: \"security.mode\": expected one of: curve, insecure-plaintext, got "
                 "\"insecure\"");
    expect_error(HUB_SECTION "security: {mode: curve, keyfile: k}\n" REGIONS_BEIJING,
                 "h.yaml:4:25: unknown key \"keyfile\" in \"security\" (expected one of: mode, "
                 "key_file, catalog, payload_key_file, payload_cipher)");
}

/* Lines 5-8 of the key error texts below: region 110000 and its first key. */
#define KEY_REGION "regions:\n  - code: \"110000\"\n    name: Beijing\n    keys:\n"

static void test_key_entry_errors_name_the_key(void **state)
{
    (void)state;
    keys_file_t *ed = gen("110000", KEYS_ED25519);
    keys_file_t *sm = gen("110000", KEYS_SM2);

    expect_errorf("h.yaml:8:9: \"regions[0].keys[0]\": give either file or curve and sign, not "
                  "both",
                  HUB_SECTION KEY_REGION "      - file: keys/110000.pub\n"
                                         "        curve: \"%s\"\n",
                  ed->curve_public);
    expect_errorf("h.yaml:8:9: \"regions[0].keys[0]\": needs curve and sign (or file: a .pub from "
                  "nhub-keygen)",
                  HUB_SECTION KEY_REGION "      - curve: \"%s\"\n", ed->curve_public);
    expect_errorf("h.yaml:9:9: \"regions[0].keys[1]\": needs curve and sign (or file: a .pub from "
                  "nhub-keygen)",
                  HUB_SECTION KEY_REGION "      - {curve: \"%s\", sign: \"%s\"}\n"
                                         "      - sign: \"%s\"\n",
                  ed->curve_public, ed->sign_public, sm->sign_public);
    expect_error(HUB_SECTION KEY_REGION "      - {}\n",
                 "h.yaml:8:9: \"regions[0].keys[0]\": needs curve and sign (or file: a .pub from "
                 "nhub-keygen)");

    /* Bad Z85: too short, a character outside the alphabet, a value over 2^32. */
    const char *bad_curve[] = {"0123456789", "0123456789012345678901234567890123456,78",
                               "########################################"};
    for (size_t i = 0; i < sizeof bad_curve / sizeof bad_curve[0]; i++)
        expect_errorf("h.yaml:8:16: \"regions[0].keys[0].curve\": not a CURVE public key (40 Z85 "
                      "characters)",
                      HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                             "        sign: \"%s\"\n",
                      bad_curve[i], ed->sign_public);
    expect_errorf("h.yaml:8:16: \"regions[0].keys[0].curve\": string is too long (41 bytes, at "
                  "most 40)",
                  HUB_SECTION KEY_REGION "      - curve: \"%s0\"\n"
                                         "        sign: \"%s\"\n",
                  ed->curve_public, ed->sign_public);

    /* Bad signing key text. */
    expect_errorf("h.yaml:9:15: \"regions[0].keys[0].sign\": unknown algorithm 'rsa' (expected "
                  "ed25519 or sm2)",
                  HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                         "        sign: \"rsa:%s\"\n",
                  ed->curve_public, strchr(ed->sign_public, ':') + 1);
    expect_errorf("h.yaml:9:15: \"regions[0].keys[0].sign\": expected \"ed25519:BASE64\" or "
                  "\"sm2:BASE64\"",
                  HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                         "        sign: \"%s\"\n",
                  ed->curve_public, strchr(ed->sign_public, ':') + 1);
    expect_errorf("h.yaml:9:15: \"regions[0].keys[0].sign\": not base64",
                  HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                         "        sign: \"ed25519:not*base64\"\n",
                  ed->curve_public);
    /* An Ed25519 key labelled sm2. */
    expect_errorf("h.yaml:9:15: \"regions[0].keys[0].sign\": not an SM2 key",
                  HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                         "        sign: \"sm2:%s\"\n",
                  ed->curve_public, strchr(ed->sign_public, ':') + 1);

    keys_free(&ed);
    keys_free(&sm);
}

static void test_key_validity_times_are_checked(void **state)
{
    (void)state;
    keys_file_t *k = gen("110000", KEYS_ED25519);
    const char *bad_time[] = {
        "2026-12-01",           "2026-12-01T00:00:00",       "2026-12-01 00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-12-01T00:00:00+08:00", "tomorrow"};
    for (size_t i = 0; i < sizeof bad_time / sizeof bad_time[0]; i++) {
        expect_errorf("h.yaml:10:21: \"regions[0].keys[0].not_before\": expected a UTC time like "
                      "2026-12-01T00:00:00Z",
                      HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                             "        sign: \"%s\"\n"
                                             "        not_before: \"%s\"\n",
                      k->curve_public, k->sign_public, bad_time[i]);
        expect_errorf("h.yaml:10:20: \"regions[0].keys[0].not_after\": expected a UTC time like "
                      "2026-12-01T00:00:00Z",
                      HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                             "        sign: \"%s\"\n"
                                             "        not_after: \"%s\"\n",
                      k->curve_public, k->sign_public, bad_time[i]);
    }
    /* not_after must be strictly later: equal or earlier is refused, at not_after. */
    const char *after[] = {"2026-12-01T00:00:00Z", "2026-11-30T23:59:59Z"};
    for (size_t i = 0; i < sizeof after / sizeof after[0]; i++)
        expect_errorf("h.yaml:11:20: \"regions[0].keys[0].not_after\": must be later than "
                      "not_before",
                      HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                             "        sign: \"%s\"\n"
                                             "        not_before: 2026-12-01T00:00:00Z\n"
                                             "        not_after: %s\n",
                      k->curve_public, k->sign_public, after[i]);

    /* One second apart is enough; the values are kept as text and as ms. */
    char text[2048];
    snprintf(text, sizeof text,
             HUB_SECTION KEY_REGION "      - curve: \"%s\"\n"
                                    "        sign: \"%s\"\n"
                                    "        not_before: 2026-12-01T00:00:00Z\n"
                                    "        not_after: 2026-12-01T00:00:01Z\n",
             k->curve_public, k->sign_public);
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(text, &cfg, err), 0);
    const cfg_key_t *key = &cfg->regions[0].keys[0];
    assert_int_equal(cfg->regions[0].key_count, 1);
    assert_string_equal(key->curve, k->curve_public);
    assert_string_equal(key->sign, k->sign_public);
    assert_string_equal(key->file, "");
    assert_string_equal(key->not_before, "2026-12-01T00:00:00Z");
    assert_string_equal(key->not_after, "2026-12-01T00:00:01Z");
    assert_int_equal(key->not_before_ms, INT64_C(1796083200000));
    assert_int_equal(key->not_after_ms, INT64_C(1796083201000));
    cfg_destroy(&cfg);
    keys_free(&k);
}

static void test_curve_key_names_one_region(void **state)
{
    (void)state;
    keys_file_t *a = gen("440000", KEYS_ED25519);
    keys_file_t *b = gen("110000", KEYS_SM2);

    /* Listed under 440000 first (file order, not code order), then 110000. */
    expect_errorf("h.yaml:12:9: \"regions[1].keys[0]\": CURVE key already listed for region "
                  "440000 (regions[0].keys[0]); a key names one region",
                  HUB_SECTION "regions:\n"
                              "  - code: \"440000\"\n"
                              "    name: Guangdong\n"
                              "    keys:\n"
                              "      - {curve: \"%s\", sign: \"%s\"}\n"
                              "  - code: \"110000\"\n"
                              "    name: Beijing\n"
                              "    keys:\n"
                              "      - {curve: \"%s\", sign: \"%s\"}\n",
                  a->curve_public, a->sign_public, a->curve_public, b->sign_public);
    /* Twice in one region. */
    expect_errorf("h.yaml:10:9: \"regions[0].keys[2]\": CURVE key already listed for region "
                  "110000 (regions[0].keys[0]); a key names one region",
                  HUB_SECTION KEY_REGION "      - {curve: \"%s\", sign: \"%s\"}\n"
                                         "      - {curve: \"%s\", sign: \"%s\"}\n"
                                         "      - {curve: \"%s\", sign: \"%s\"}\n",
                  b->curve_public, b->sign_public, a->curve_public, a->sign_public, b->curve_public,
                  a->sign_public);
    keys_free(&a);
    keys_free(&b);
}

static void test_region_keys_are_capped_at_4(void **state)
{
    (void)state;
    keys_file_t *k[CFG_KEYS_MAX + 1];
    char text[4096];
    size_t o = (size_t)snprintf(text, sizeof text, HUB_SECTION KEY_REGION);
    for (size_t i = 0; i < CFG_KEYS_MAX + 1; i++)
        k[i] = gen("110000", i % 2 ? KEYS_SM2 : KEYS_ED25519);
    for (size_t i = 0; i < CFG_KEYS_MAX; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "      - {curve: \"%s\", sign: \"%s\"}\n",
                              k[i]->curve_public, k[i]->sign_public);
    assert_true(o < sizeof text);

    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(text, &cfg, err), 0);
    assert_int_equal(cfg->regions[0].key_count, CFG_KEYS_MAX);
    for (size_t i = 0; i < CFG_KEYS_MAX; i++)
        assert_string_equal(cfg->regions[0].keys[i].curve, k[i]->curve_public);
    cfg_destroy(&cfg);

    snprintf(text + o, sizeof text - o, "      - {curve: \"%s\", sign: \"%s\"}\n",
             k[CFG_KEYS_MAX]->curve_public, k[CFG_KEYS_MAX]->sign_public);
    expect_error(text, "h.yaml:12:9: \"regions[0].keys\": too many entries (at most 4)");
    for (size_t i = 0; i < CFG_KEYS_MAX + 1; i++)
        keys_free(&k[i]);
}

static void test_cities_let_a_province_send_for_its_cities_only(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION "regions:\n"
                                          "  - {code: \"440000\", name: Guangdong, cities: true}\n"
                                          "  - {code: \"450000\", name: Guangxi, cities: false}\n"
                                          "  - {code: \"110000\", name: Beijing}\n",
                              &cfg, err),
                     0);
    const cfg_region_t *gd = cfg_region_find(cfg, "440000");
    const cfg_region_t *gx = cfg_region_find(cfg, "450000");
    const cfg_region_t *bj = cfg_region_find(cfg, "110000");
    assert_true(gd->cities);
    assert_false(gx->cities);
    assert_false(bj->cities); /* the default */

    /* The province itself, with or without cities. */
    assert_true(cfg_source_allowed(gd, "440000"));
    assert_true(cfg_source_allowed(gx, "450000"));
    assert_true(cfg_source_allowed(bj, "110000"));
    /* Its cities only with cities: true. */
    assert_true(cfg_source_allowed(gd, "440100"));
    assert_true(cfg_source_allowed(gd, "440300"));
    assert_false(cfg_source_allowed(gx, "450100"));
    assert_false(cfg_source_allowed(bj, "110100"));
    /* Never another province's city, nor another province. */
    assert_false(cfg_source_allowed(gd, "450100"));
    assert_false(cfg_source_allowed(gd, "450000"));
    assert_false(cfg_source_allowed(gd, "110000"));
    assert_false(cfg_source_allowed(gx, "440100"));
    /* Nor something that is not a region code, nor the hub. */
    assert_false(cfg_source_allowed(gd, "4401"));
    assert_false(cfg_source_allowed(gd, "44010a"));
    assert_false(cfg_source_allowed(gd, "4401000"));
    assert_false(cfg_source_allowed(gd, ""));
    assert_false(cfg_source_allowed(gd, "000000"));
    /* Prefecture level only: not a county under a city. */
    assert_false(cfg_source_allowed(gd, "440103"));
    cfg_destroy(&cfg);
    /* Only a province-level region may send for cities. */
    assert_int_not_equal(load_dev(HUB_SECTION
                                  "regions:\n"
                                  "  - {code: \"440300\", name: Shenzhen, cities: true}\n",
                                  &cfg, err),
                         0);
    assert_non_null(strstr(err, "only a province-level region"));

    expect_error(HUB_SECTION "regions: [{code: \"440000\", name: Guangdong, cities: maybe}]\n",
                 "h.yaml:4:53: \"regions[0].cities\": expected true or false, got \"maybe\"");
}

static void test_suspension_and_its_reason_are_read(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION "regions:\n"
                                          "  - code: \"120000\"\n"
                                          "    name: Tianjin\n"
                                          "    suspended: true\n"
                                          "    suspended_reason: \"key compromise, ticket 4711\"\n"
                                          "  - {code: \"110000\", name: Beijing}\n"
                                          "  - {code: \"130000\", name: Hebei, suspended: no}\n",
                              &cfg, err),
                     0);
    const cfg_region_t *tj = cfg_region_find(cfg, "120000");
    assert_true(tj->suspended);
    assert_string_equal(tj->suspended_reason, "key compromise, ticket 4711");
    assert_false(cfg_region_find(cfg, "110000")->suspended);
    assert_string_equal(cfg_region_find(cfg, "110000")->suspended_reason, "");
    assert_false(cfg_region_find(cfg, "130000")->suspended);
    cfg_destroy(&cfg);

    char reason[200];
    memset(reason, 'r', 128);
    reason[128] = '\0';
    expect_errorf(
        "h.yaml:4:61: \"regions[0].suspended_reason\": string is too long (128 bytes, "
        "at most 127)",
        HUB_SECTION "regions: [{code: \"110000\", name: Beijing, suspended_reason: %s}]\n", reason);
}

static void test_parse_time_reads_utc_rfc3339_only(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(cfg_parse_time("2026-12-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1796083200000));
    assert_int_equal(cfg_parse_time("2000-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, INT64_C(946684800000));
    /* Before 2000 (the epoch would read as "no bound"), impossible dates. */
    assert_int_equal(cfg_parse_time("1970-01-01T00:00:00Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("1999-12-31T23:59:59Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("2026-02-30T00:00:00Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("2026-06-31T00:00:00Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("2026-12-01T00:00:60Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("2026-12-01T24:00:00Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("2026-12-01T 0:00:00Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("2027-02-29T00:00:00Z", &ms), NHUB_EINVAL);
    assert_int_equal(cfg_parse_time("2028-02-29T23:59:59Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1835481599000));

    const char *bad[] = {
        "",
        "2026-12-01T00:00:00",   /* no Z */
        "2026-12-01T00:00:00z",  /* lowercase */
        "2026-13-01T00:00:00Z",  /* month 13 */
        "2026-12-00T00:00:00Z",  /* day 0 */
        "2026-12-01T24:00:00Z",  /* hour 24 */
        "2026-12-01T00:00:00Zx", /* trailing garbage */
        "2026-12-01T00:00:00ZZ",
        "2026-12-01T00:00:00.5Z", /* fractions */
        "2026-12-01T00:00:00+00:00",
        "2026-12-01 00:00:00Z",
        "2026-12-01",
        "1969-12-31T23:59:59Z", /* before the epoch */
        " 2026-12-01T00:00:00Z",
        "2026-12-1T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = -1;
        if (cfg_parse_time(bad[i], &ms) != NHUB_EINVAL) {
            print_error("accepted \"%s\"\n", bad[i]);
            fail();
        }
        assert_int_equal(ms, -1); /* untouched on failure */
    }
    assert_int_equal(cfg_parse_time(NULL, &ms), NHUB_EINVAL);
}

/* A fresh directory under /tmp, removed by rm_dir(). */
static void make_dir(char dir[32])
{
    strcpy(dir, "/tmp/test_cfg.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void rm_dir(const char *dir, const char *const *names, size_t n)
{
    char path[256];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_load_reads_key_files_into_curve_and_sign(void **state)
{
    (void)state;
    char dir[32], path[128], pub[128], sec[128], text[2048], err[ERRCAP];
    make_dir(dir);
    keys_file_t *gd = gen("440000", KEYS_SM2);
    keys_file_t *bj = gen("110000", KEYS_ED25519);
    snprintf(sec, sizeof sec, "%s/440000.key", dir);
    snprintf(pub, sizeof pub, "%s/440000.pub", dir);
    assert_int_equal(keys_write(gd, sec, pub, 0, err, sizeof err), 0);

    /* curve mode: cfg names the hub's key file and the catalogue but does
     * not read them; it reads the region key files. */
    snprintf(path, sizeof path, "%s/hub.yaml", dir);
    snprintf(text, sizeof text,
             HUB_SECTION "security:\n"
                         "  key_file: %s/hub.key\n"
                         "  catalog: %s/catalog.yaml\n"
                         "regions:\n"
                         "  - code: \"440000\"\n"
                         "    name: Guangdong\n"
                         "    keys:\n"
                         "      - file: %s\n"
                         "        not_after: 2027-01-01T00:00:00Z\n"
                         "  - code: \"110000\"\n"
                         "    name: Beijing\n"
                         "    keys: [{curve: \"%s\", sign: \"%s\"}]\n",
             dir, dir, pub, bj->curve_public, bj->sign_public);
    write_file(path, text);

    cfg_t *cfg = NULL;
    int rc = cfg_load(path, &cfg, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(cfg->security.mode, CFG_SECURITY_CURVE);
    const cfg_region_t *r = cfg_region_find(cfg, "440000");
    assert_int_equal(r->key_count, 1);
    assert_string_equal(r->keys[0].file, pub);
    assert_string_equal(r->keys[0].curve, gd->curve_public);
    assert_string_equal(r->keys[0].sign, gd->sign_public);
    assert_int_equal(r->keys[0].not_before_ms, 0);
    assert_int_equal(r->keys[0].not_after_ms, INT64_C(1798761600000));
    r = cfg_region_find(cfg, "110000");
    assert_string_equal(r->keys[0].file, "");
    assert_string_equal(r->keys[0].curve, bj->curve_public);
    cfg_destroy(&cfg);

    const char *names[] = {"hub.yaml", "440000.key", "440000.pub"};
    rm_dir(dir, names, 3);
    keys_free(&gd);
    keys_free(&bj);
}

static void test_load_refuses_missing_or_duplicate_key_files(void **state)
{
    (void)state;
    char dir[32], path[128], pub[128], sec[128], text[2048], err[ERRCAP], want[ERRCAP];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/hub.yaml", dir);

    /* A missing file: named, with the line and column of its `file:`. */
    snprintf(text, sizeof text,
             HUB_SECTION "security: {mode: insecure-plaintext}\n"
                         "regions:\n"
                         "  - code: \"110000\"\n"
                         "    name: Beijing\n"
                         "    keys:\n"
                         "      - file: %s/missing.pub\n",
             dir);
    write_file(path, text);
    cfg_t *cfg = (cfg_t *)&cfg;
    assert_int_equal(cfg_load(path, &cfg, err, sizeof err), NHUB_ECONFIG);
    assert_null(cfg);
    snprintf(want, sizeof want,
             "%s:9:15: \"regions[0].keys[0].file\": %s/missing.pub: cannot open: No such file "
             "or directory",
             path, dir);
    assert_string_equal(err, want);

    /* A file holding a key another region lists inline: checked once read. */
    keys_file_t *k = gen("110000", KEYS_ED25519);
    snprintf(sec, sizeof sec, "%s/110000.key", dir);
    snprintf(pub, sizeof pub, "%s/110000.pub", dir);
    assert_int_equal(keys_write(k, sec, pub, 0, err, sizeof err), 0);
    snprintf(text, sizeof text,
             HUB_SECTION "security: {mode: insecure-plaintext}\n"
                         "regions:\n"
                         "  - code: \"120000\"\n"
                         "    name: Tianjin\n"
                         "    keys: [{curve: \"%s\", sign: \"%s\"}]\n"
                         "  - code: \"110000\"\n"
                         "    name: Beijing\n"
                         "    keys:\n"
                         "      - file: %s\n",
             k->curve_public, k->sign_public, pub);
    write_file(path, text);
    assert_int_equal(cfg_load(path, &cfg, err, sizeof err), NHUB_ECONFIG);
    assert_null(cfg);
    snprintf(want, sizeof want,
             "%s:12:9: \"regions[1].keys[0]\": CURVE key already listed for region 120000 "
             "(regions[0].keys[0]); a key names one region",
             path);
    assert_string_equal(err, want);

    /* cfg_load_string reads no key file: the same text loads, key unresolved. */
    assert_int_equal(cfg_load_string("h.yaml", text, strlen(text), &cfg, err, sizeof err), 0);
    assert_string_equal(cfg_region_find(cfg, "110000")->keys[0].file, pub);
    assert_string_equal(cfg_region_find(cfg, "110000")->keys[0].curve, "");
    assert_string_equal(cfg_region_find(cfg, "110000")->keys[0].sign, "");
    cfg_destroy(&cfg);

    const char *names[] = {"hub.yaml", "110000.key", "110000.pub"};
    rm_dir(dir, names, 3);
    keys_free(&k);
}

#define REG "regions: [{code: \"110000\", name: Beijing}]\n"
#define TOK_R "read-token-0123456789"
#define TOK_O "oper-token-0123456789"

#define SEC_DEV(extra) "security:\n  mode: insecure-plaintext\n" extra

static void test_payload_key_and_cipher_are_read_and_checked_at_their_position(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load(HUB_SECTION REG SEC_DEV(""), &cfg, err), 0);
    assert_string_equal(cfg->security.payload_key_file, "");
    assert_int_equal(cfg->security.payload_cipher, CFG_PAYLOAD_AES_256_GCM);
    cfg_destroy(&cfg);
    assert_int_equal(load(HUB_SECTION REG SEC_DEV("  payload_key_file: /etc/nhub/p.key\n"
                                                  "  payload_cipher: sm4-ctr-hmac-sm3\n"),
                          &cfg, err),
                     0);
    assert_string_equal(cfg->security.payload_key_file, "/etc/nhub/p.key");
    assert_int_equal(cfg->security.payload_cipher, CFG_PAYLOAD_SM4_CTR_HMAC_SM3);
    cfg_destroy(&cfg);
    /* An unknown cipher: named at its line and column (line 7, the value's column). */
    assert_int_equal(load(HUB_SECTION REG SEC_DEV("  payload_key_file: /etc/nhub/p.key\n"
                                                  "  payload_cipher: sm4-gcm\n"),
                          &cfg, err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, ":8:19:"));
    assert_non_null(strstr(err, "payload_cipher"));
    /* A cipher without a key file seals nothing: said so. */
    assert_int_equal(load(HUB_SECTION REG SEC_DEV("  payload_cipher: sm4-ctr-hmac-sm3\n"), &cfg,
                          err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, ":7:"));
    assert_non_null(strstr(err, "needs security.payload_key_file"));
}

static void test_audit_section_has_defaults_and_checks_its_origin(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION REG, &cfg, err), 0);
    assert_string_equal(cfg->audit.origin, "nhub.hub/000000");
    assert_int_equal(cfg->audit.checkpoint_every, 10000);
    assert_int_equal(cfg->audit.checkpoint_interval_ms, 60000);
    assert_int_equal(cfg->audit.tree_hash, CFG_TREE_SHA256);
    cfg_destroy(&cfg);
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {tree_hash: sm3}\n", &cfg, err), 0);
    assert_int_equal(cfg->audit.tree_hash, CFG_TREE_SM3);
    cfg_destroy(&cfg);
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {tree_hash: md5}\n", &cfg, err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, "tree_hash"));
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {origin: nhub.example.gov.cn/hub, "
                                              "checkpoint_every: 5, checkpoint_interval: 2s}\n",
                              &cfg, err),
                     0);
    assert_string_equal(cfg->audit.origin, "nhub.example.gov.cn/hub");
    assert_int_equal(cfg->audit.checkpoint_every, 5);
    assert_int_equal(cfg->audit.checkpoint_interval_ms, 2000);
    cfg_destroy(&cfg);
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {origin: \"two words\"}\n", &cfg, err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, "\"audit.origin\": printable ASCII without spaces"));
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {checkpoint_every: 0}\n", &cfg, err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, "checkpoint_every"));
}

static void test_audit_archives_and_retention_are_parsed_and_checked(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION REG, &cfg, err), 0);
    assert_string_equal(cfg->audit.archive_dir, ""); /* no archives */
    assert_int_equal(cfg->audit.archive_every, 10000);
    assert_int_equal(cfg->audit.retention_ms, 0); /* kept */
    cfg_destroy(&cfg);
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {archive_dir: /var/lib/nhub/archive, "
                                              "archive_every: 500, retention: 30d}\n",
                              &cfg, err),
                     0);
    assert_string_equal(cfg->audit.archive_dir, "/var/lib/nhub/archive");
    assert_int_equal(cfg->audit.archive_every, 500);
    assert_int_equal(cfg->audit.retention_ms, 30LL * 24 * 3600 * 1000);
    cfg_destroy(&cfg);
    /* Pruning what is not archived: refused, naming both keys. */
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {retention: 30d}\n", &cfg, err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, "\"audit.retention\" needs \"audit.archive_dir\""));
    assert_int_equal(load_dev(HUB_SECTION REG "audit: {archive_dir: /a, archive_every: 0}\n",
                              &cfg, err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, "archive_every"));
}

static void test_http_section_is_parsed_and_checked(void **state)
{
    (void)state;
    cfg_t *cfg = NULL;
    char err[ERRCAP];
    assert_int_equal(load_dev(HUB_SECTION REG, &cfg, err), 0);
    assert_string_equal(cfg->http.listen, ""); /* absent: off */
    cfg_destroy(&cfg);
    assert_int_equal(load_dev(HUB_SECTION REG "http: {listen: \"7480\"}\n", &cfg, err), 0);
    assert_int_equal(cfg->http.port, 7480);
    assert_int_equal(cfg->http.bind_addr, 0x7f000001u); /* a port alone is loopback */
    assert_true(cfg->http.loopback);
    cfg_destroy(&cfg);
    assert_int_equal(load_dev(HUB_SECTION REG "http: {listen: \"10.1.2.3:443\", read_token: " TOK_R
                                              ", operator_token: " TOK_O
                                              ", tls_cert: c.pem, tls_key: k.pem}\n",
                              &cfg, err),
                     0);
    assert_int_equal(cfg->http.bind_addr, 0x0a010203u);
    assert_false(cfg->http.loopback);
    cfg_destroy(&cfg);
    static const struct {
        const char *http, *want;
    } bad[] = {
        {"http: {listen: \"0.0.0.0:7480\"}\n", "is not a loopback address"},
        {"http: {listen: \"10.0.0.1:1\", read_token: " TOK_R ", operator_token: " TOK_O "}\n",
         "needs tls_cert"},
        {"http: {listen: \"127.0.0.1:70000\"}\n", "expected PORT or IPV4:PORT"},
        {"http: {listen: \"localhost:80\"}\n", "expected PORT or IPV4:PORT"},
        {"http: {listen: \"127.0.0.1:-1\"}\n", "expected PORT or IPV4:PORT"},
        {"http: {listen: \"1.2.3.4.5:1\"}\n", "expected PORT or IPV4:PORT"},
        {"http: {listen: \"7480\", read_token: abc}\n", "shorter than 16"},
        {"http: {listen: \"7480\", operator_token: \"has a space in it ok\"}\n", "printable"},
        {"http: {listen: \"7480\", read_token: " TOK_R ", operator_token: " TOK_R "}\n",
         "must differ"},
        {"http: {listen: \"7480\", tls_cert: c.pem}\n", "go together"},
        {"http: {read_token: " TOK_R "}\n", "listen"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s%s", HUB_SECTION, REG, bad[i].http);
        cfg = NULL;
        int rc = load_dev(text, &cfg, err);
        if (rc != NHUB_ECONFIG || !strstr(err, bad[i].want) || !strstr(err, "h.yaml:")) {
            print_error("case %zu: rc=%d err=%s (want %s)\n", i, rc, err, bad[i].want);
            fail();
        }
        assert_null(cfg);
    }
}

static void test_token_files_are_read_and_checked(void **state)
{
    (void)state;
    char dir[32], cfgp[128], rt[128], ot[128], text[2048], err[ERRCAP];
    make_dir(dir);
    snprintf(cfgp, sizeof cfgp, "%s/hub.yaml", dir);
    snprintf(rt, sizeof rt, "%s/read.token", dir);
    snprintf(ot, sizeof ot, "%s/operator.token", dir);
    write_file(rt, TOK_R "\n");
    write_file(ot, TOK_O);
    snprintf(text, sizeof text,
             HUB_SECTION REG "security: {mode: insecure-plaintext}\n"
                             "http: {listen: \"7480\", read_token_file: %s, operator_token_file: %s}\n",
             rt, ot);
    write_file(cfgp, text);
    cfg_t *cfg = NULL;
    assert_int_equal(cfg_load(cfgp, &cfg, err, sizeof err), 0);
    assert_string_equal(cfg->http.read_token, TOK_R); /* the newline is not part of it */
    assert_string_equal(cfg->http.operator_token, TOK_O);
    cfg_destroy(&cfg);
    write_file(ot, TOK_R "\n"); /* the same token for both */
    assert_int_equal(cfg_load(cfgp, &cfg, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "must differ"));
    write_file(ot, "short\n");
    assert_int_equal(cfg_load(cfgp, &cfg, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "http.operator_token_file"));
    assert_non_null(strstr(err, "shorter than 16"));
    unlink(ot);
    assert_int_equal(cfg_load(cfgp, &cfg, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "cannot read"));
    snprintf(text, sizeof text,
             HUB_SECTION REG "security: {mode: insecure-plaintext}\n"
                             "http: {listen: \"7480\", read_token: " TOK_R ", read_token_file: %s}\n",
             rt);
    write_file(cfgp, text);
    assert_int_equal(cfg_load(cfgp, &cfg, err, sizeof err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "not both"));
    const char *names[] = {"hub.yaml", "read.token"};
    rm_dir(dir, names, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_file_has_32_regions_and_defaults),
        cmocka_unit_test(test_http_section_is_parsed_and_checked),
        cmocka_unit_test(test_audit_section_has_defaults_and_checks_its_origin),
        cmocka_unit_test(test_payload_key_and_cipher_are_read_and_checked_at_their_position),
        cmocka_unit_test(test_audit_archives_and_retention_are_parsed_and_checked),
        cmocka_unit_test(test_token_files_are_read_and_checked),
        cmocka_unit_test(test_region_lookup_finds_configured_codes_only),
        cmocka_unit_test(test_minimal_file_gets_documented_defaults),
        cmocka_unit_test(test_limits_and_log_level_are_read),
        cmocka_unit_test(test_bad_region_code_names_position),
        cmocka_unit_test(test_duplicate_region_names_both_positions),
        cmocka_unit_test(test_hub_region_in_list_is_refused),
        cmocka_unit_test(test_map_size_above_max_names_position),
        cmocka_unit_test(test_timing_pairs_are_checked),
        cmocka_unit_test(test_limits_out_of_range_are_refused),
        cmocka_unit_test(test_unknown_log_level_lists_choices),
        cmocka_unit_test(test_hub_section_errors_are_reported),
        cmocka_unit_test(test_region_list_must_be_present_and_non_empty),
        cmocka_unit_test(test_region_names_are_bounded_utf8),
        cmocka_unit_test(test_region_count_is_capped_at_4096),
        cmocka_unit_test(test_file_errors_name_the_file),
        cmocka_unit_test(test_null_arguments_are_refused_and_destroy_accepts_null),
        cmocka_unit_test(test_curve_mode_requires_key_file_and_catalog),
        cmocka_unit_test(test_insecure_mode_needs_no_key_file_or_catalog),
        cmocka_unit_test(test_unknown_security_mode_lists_choices),
        cmocka_unit_test(test_key_entry_errors_name_the_key),
        cmocka_unit_test(test_key_validity_times_are_checked),
        cmocka_unit_test(test_curve_key_names_one_region),
        cmocka_unit_test(test_region_keys_are_capped_at_4),
        cmocka_unit_test(test_cities_let_a_province_send_for_its_cities_only),
        cmocka_unit_test(test_suspension_and_its_reason_are_read),
        cmocka_unit_test(test_parse_time_reads_utc_rfc3339_only),
        cmocka_unit_test(test_load_reads_key_files_into_curve_and_sign),
        cmocka_unit_test(test_load_refuses_missing_or_duplicate_key_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
