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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_file_has_32_regions_and_defaults),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
