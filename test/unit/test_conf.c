/*
 * test_conf.c: the generic YAML configuration reader (proto/conf.h).
 *
 * A small schema below uses every key type; each test loads a short text and
 * checks the stored values or the exact "FILE:LINE:COLUMN: message" error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conf.h"
#include "nhub_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRCAP 512

typedef struct t_server {
    char host[16];
    int64_t port;
} t_server_t;

typedef struct t_item {
    char id[8];
    bool enabled;
} t_item_t;

typedef struct t_conf {
    t_server_t server;
    bool verbose;
    uint64_t size;
    int64_t timeout_ms;
    int color;
    char tags[3][8];
    size_t tag_count;
    t_item_t items[2];
    size_t item_count;
} t_conf_t;

static const char *const t_colors[] = {"red", "green", "blue", NULL};

static const conf_key_t t_server_schema[] = {
    CONF_KEY_STRING(t_server_t, host, "host", CONF_REQUIRED),
    CONF_KEY_INT64(t_server_t, port, "port", 0, 1, 65535),
    CONF_KEY_END,
};

static const t_item_t t_item_default = {"", true};

static const conf_key_t t_item_schema[] = {
    CONF_KEY_STRING(t_item_t, id, "id", CONF_REQUIRED),
    CONF_KEY_BOOL(t_item_t, enabled, "enabled", 0),
    CONF_KEY_END,
};

static const conf_key_t t_schema[] = {
    CONF_KEY_MAP(t_conf_t, server, "server", CONF_REQUIRED, t_server_schema),
    CONF_KEY_BOOL(t_conf_t, verbose, "verbose", 0),
    CONF_KEY_SIZE(t_conf_t, size, "size", 0, 1024, 64 * 1024 * 1024),
    CONF_KEY_DURATION_MS(t_conf_t, timeout_ms, "timeout", 0, 0, 0),
    CONF_KEY_ENUM(t_conf_t, color, "color", 0, t_colors),
    CONF_KEY_STRING_LIST(t_conf_t, tags, tag_count, "tags", 0, 0),
    CONF_KEY_SEQ_OF_MAPS(t_conf_t, items, item_count, "items", 0, t_item_schema, 1,
                         &t_item_default),
    CONF_KEY_END,
};

static int load(const char *text, t_conf_t *c, char *err)
{
    memset(c, 0, sizeof *c);
    return conf_load_string("t.yaml", text, strlen(text), t_schema, c, err, ERRCAP);
}

/* Load `text`, expect NHUB_ECONFIG and an error containing `want`. */
static void expect_error(const char *text, const char *want)
{
    t_conf_t c;
    char err[ERRCAP];
    int rc = load(text, &c, err);
    if (rc != NHUB_ECONFIG || !strstr(err, want)) {
        print_error("rc=%d\n got: %s\nwant: %s\n", rc, err, want);
        fail();
    }
}

/* ---- conf_parse_size ----------------------------------------------------- */

static void test_size_parses_plain_bytes_and_binary_suffixes(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(conf_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(conf_parse_size("1048576", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(conf_parse_size("512B", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(conf_parse_size("4KiB", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(conf_parse_size("64MiB", &v), 0);
    assert_int_equal(v, UINT64_C(64) << 20);
    assert_int_equal(conf_parse_size("64GiB", &v), 0);
    assert_int_equal(v, UINT64_C(64) << 30);
    assert_int_equal(conf_parse_size("2TiB", &v), 0);
    assert_int_equal(v, UINT64_C(2) << 40);
    assert_int_equal(conf_parse_size("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
}

static void test_size_rejects_garbage_negative_and_decimal_units(void **state)
{
    (void)state;
    static const char *const bad[] = {"",   "big", "-1",  "+1",   "1.5MiB", "1KB",   "1MB", "1 MiB",
                                      " 1", "1 ",  "MiB", "1mib", "0x10",   "1MiBB", "1K",  "1e6"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 77;
        if (conf_parse_size(bad[i], &v) != NHUB_EINVAL) {
            print_error("accepted \"%s\"\n", bad[i]);
            fail();
        }
        assert_int_equal(v, 77);
    }
    uint64_t v;
    assert_int_equal(conf_parse_size(NULL, &v), NHUB_EINVAL);
}

static void test_size_reports_overflow_as_too_big(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(conf_parse_size("18446744073709551616", &v), NHUB_ETOOBIG);
    assert_int_equal(conf_parse_size("99999999999999999999999999", &v), NHUB_ETOOBIG);
    assert_int_equal(conf_parse_size("16777216TiB", &v), NHUB_ETOOBIG);
    assert_int_equal(conf_parse_size("17179869184GiB", &v), NHUB_ETOOBIG);
    assert_int_equal(conf_parse_size("16777215TiB", &v), 0);
    /* Malformed wins over overflow: the text is wrong whatever its size. */
    assert_int_equal(conf_parse_size("99999999999999999999999x", &v), NHUB_EINVAL);
}

/* ---- conf_parse_duration_ms ---------------------------------------------- */

static void test_duration_parses_plain_ms_and_suffixes(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(conf_parse_duration_ms("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(conf_parse_duration_ms("250", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(conf_parse_duration_ms("500ms", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(conf_parse_duration_ms("2s", &v), 0);
    assert_int_equal(v, 2000);
    assert_int_equal(conf_parse_duration_ms("5m", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(conf_parse_duration_ms("1h", &v), 0);
    assert_int_equal(v, 3600000);
    assert_int_equal(conf_parse_duration_ms("7d", &v), 0);
    assert_int_equal(v, INT64_C(7) * 86400000);
    assert_int_equal(conf_parse_duration_ms("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
}

static void test_duration_rejects_garbage_and_negative(void **state)
{
    (void)state;
    static const char *const bad[] = {"",   "soon", "-5s", "-1",   "+1s", "1.5s", "5 s",
                                      "5x", "s",    "5S",  "5sec", "1w",  "5mss", "ms"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 77;
        if (conf_parse_duration_ms(bad[i], &v) != NHUB_EINVAL) {
            print_error("accepted \"%s\"\n", bad[i]);
            fail();
        }
        assert_int_equal(v, 77);
    }
}

static void test_duration_reports_overflow_as_too_big(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(conf_parse_duration_ms("9223372036854775808", &v), NHUB_ETOOBIG);
    assert_int_equal(conf_parse_duration_ms("9223372036854775807s", &v), NHUB_ETOOBIG);
    assert_int_equal(conf_parse_duration_ms("106751991167301d", &v), NHUB_ETOOBIG);
    assert_int_equal(conf_parse_duration_ms("106751991167d", &v), 0);
}

static void test_format_uses_largest_exact_unit(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(conf_format_size(0, buf, sizeof buf), "0B");
    assert_string_equal(conf_format_size(1000, buf, sizeof buf), "1000B");
    assert_string_equal(conf_format_size(1536 * 1024, buf, sizeof buf), "1536KiB");
    assert_string_equal(conf_format_size(UINT64_C(64) << 20, buf, sizeof buf), "64MiB");
    assert_string_equal(conf_format_size(UINT64_C(1) << 50, buf, sizeof buf), "1024TiB");
    assert_string_equal(conf_format_duration_ms(0, buf, sizeof buf), "0ms");
    assert_string_equal(conf_format_duration_ms(1500, buf, sizeof buf), "1500ms");
    assert_string_equal(conf_format_duration_ms(90000, buf, sizeof buf), "90s");
    assert_string_equal(conf_format_duration_ms(300000, buf, sizeof buf), "5m");
    assert_string_equal(conf_format_duration_ms(INT64_C(7) * 86400000, buf, sizeof buf), "7d");
    assert_string_equal(conf_format_size(UINT64_C(64) << 20, buf, 4), "64M");
}

/* ---- loading ------------------------------------------------------------- */

static void test_full_document_fills_every_type(void **state)
{
    (void)state;
    const char *text = "server:\n"
                       "  host: example.org\n"
                       "  port: 8080\n"
                       "verbose: yes\n"
                       "size: 2MiB\n"
                       "timeout: 90s\n"
                       "color: blue\n"
                       "tags: [a, \"b c\", ddddddd]\n"
                       "items:\n"
                       "  - id: one\n"
                       "  - id: two\n"
                       "    enabled: false\n";
    t_conf_t c;
    char err[ERRCAP];
    assert_int_equal(load(text, &c, err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.server.host, "example.org");
    assert_int_equal(c.server.port, 8080);
    assert_true(c.verbose);
    assert_int_equal(c.size, 2 * 1024 * 1024);
    assert_int_equal(c.timeout_ms, 90000);
    assert_int_equal(c.color, 2);
    assert_int_equal(c.tag_count, 3);
    assert_string_equal(c.tags[0], "a");
    assert_string_equal(c.tags[1], "b c");
    assert_string_equal(c.tags[2], "ddddddd");
    assert_int_equal(c.item_count, 2);
    assert_string_equal(c.items[0].id, "one");
    assert_true(c.items[0].enabled); /* from the element default */
    assert_string_equal(c.items[1].id, "two");
    assert_false(c.items[1].enabled);
}

static void test_absent_keys_keep_caller_defaults(void **state)
{
    (void)state;
    t_conf_t c;
    char err[ERRCAP];
    memset(&c, 0, sizeof c);
    c.server.port = 7400;
    c.size = 4096;
    c.color = 1;
    c.tag_count = 1;
    strcpy(c.tags[0], "dflt");
    const char *text = "server: {host: h}\n";
    assert_int_equal(conf_load_string("t.yaml", text, strlen(text), t_schema, &c, err, ERRCAP), 0);
    assert_string_equal(c.server.host, "h");
    assert_int_equal(c.server.port, 7400);
    assert_int_equal(c.size, 4096);
    assert_int_equal(c.color, 1);
    assert_int_equal(c.tag_count, 1);
    assert_string_equal(c.tags[0], "dflt");
}

static void test_unknown_key_names_position_and_known_keys(void **state)
{
    (void)state;
    expect_error("server:\n  hots: x\n",
                 "t.yaml:2:3: unknown key \"hots\" in \"server\" (expected one of: host, port)");
    expect_error("server: {host: h}\nverbos: true\n",
                 "t.yaml:2:1: unknown key \"verbos\" at the top level (expected one of: server, "
                 "verbose, size, timeout, color, tags, items)");
    expect_error("server: {host: h}\nitems:\n  - id: a\n    colour: red\n",
                 "t.yaml:4:5: unknown key \"colour\" in \"items[0]\" (expected one of: id, "
                 "enabled)");
}

static void test_type_errors_name_key_expected_and_found(void **state)
{
    (void)state;
    expect_error("server: {host: h}\nsize: big\n",
                 "t.yaml:2:7: \"size\": expected a size like 1048576 or 1MiB, got \"big\"");
    expect_error("server: {host: h}\ntimeout: soon\n",
                 "t.yaml:2:10: \"timeout\": expected a duration like 500ms, 5s, 2m, 1h or 7d, "
                 "got \"soon\"");
    expect_error("server: {host: h}\nverbose: maybe\n",
                 "t.yaml:2:10: \"verbose\": expected true or false, got \"maybe\"");
    expect_error("server: {host: h, port: http}\n",
                 "t.yaml:1:25: \"server.port\": expected an integer from 1 to 65535, got "
                 "\"http\"");
    expect_error("server: {host: h}\ncolor: pink\n",
                 "t.yaml:2:8: \"color\": expected one of: red, green, blue, got \"pink\"");
    expect_error("server: {host: h}\nsize:\n",
                 "\"size\": expected a size like 1048576 or 1MiB, got nothing");
}

static void test_shape_errors_name_what_was_found(void **state)
{
    (void)state;
    expect_error("server: {host: [a, b]}\n",
                 "t.yaml:1:16: \"server.host\": expected a string, got a list");
    expect_error("server: h\n", "t.yaml:1:9: \"server\": expected a mapping of keys, got \"h\"");
    expect_error("server: {host: h}\ntags: {a: b}\n",
                 "t.yaml:2:7: \"tags\": expected a list of strings, got a mapping");
    expect_error("server: {host: h}\ntags: [a, [b]]\n",
                 "t.yaml:2:11: \"tags[1]\": expected a string, got a list");
    expect_error("server: {host: h}\nitems: [x]\n",
                 "t.yaml:2:9: \"items[0]\": expected a mapping of keys, got \"x\"");
    expect_error("server: {host: h}\n[a]: b\n",
                 "t.yaml:2:1: expected a key name at the top level, got a list");
    expect_error("- a\n- b\n", "t.yaml:1:1: expected a mapping of keys at the top level, got a "
                               "list");
}

static void test_duplicate_key_names_second_occurrence(void **state)
{
    (void)state;
    expect_error("server:\n  host: a\n  port: 1\n  host: b\n",
                 "t.yaml:4:3: duplicate key \"host\" in \"server\"");
    expect_error("server: {host: h}\nsize: 2KiB\nsize: 4KiB\n",
                 "t.yaml:3:1: duplicate key \"size\" at the top level");
}

static void test_missing_required_key_names_map_and_position(void **state)
{
    (void)state;
    expect_error("server:\n  port: 1\n", "t.yaml:2:3: missing required key \"host\" in \"server\"");
    expect_error("verbose: true\n", "t.yaml:1:1: missing required key \"server\" at the top "
                                    "level");
    expect_error("", "t.yaml:1:1: missing required key \"server\" at the top level");
    expect_error("# only a comment\n", "missing required key \"server\" at the top level");
    /* An empty section is allowed, but its own required keys still are required. */
    expect_error("server:\n", "t.yaml:1:8: missing required key \"host\" in \"server\"");
    expect_error("server: {host: h}\nitems:\n  - enabled: true\n",
                 "t.yaml:3:5: missing required key \"id\" in \"items[0]\"");
}

static void test_syntax_error_reports_problem_and_position(void **state)
{
    (void)state;
    expect_error("server:\n  host: a\n port: 1\n",
                 "t.yaml:3:2: did not find expected key (while parsing a block mapping at line "
                 "1, column 1)");
    expect_error("server: {host: h\n", "t.yaml:2:1: did not find expected ',' or '}'");
    expect_error("server: \"unterminated\n", "t.yaml:2:1: found unexpected end of stream");
    expect_error("server: {host: h}\n\tsize: 1\n",
                 "t.yaml:2:1: found character that cannot start any token");
}

static void test_string_too_long_reports_length_and_capacity(void **state)
{
    (void)state;
    expect_error("server: {host: abcdefghijklmnop}\n",
                 "t.yaml:1:16: \"server.host\": string is too long (16 bytes, at most 15)");
    t_conf_t c;
    char err[ERRCAP];
    assert_int_equal(load("server: {host: abcdefghijklmno}\n", &c, err), 0);
    assert_string_equal(c.server.host, "abcdefghijklmno");
    expect_error("server: {host: h}\ntags: [abcdefgh]\n",
                 "t.yaml:2:8: \"tags[0]\": string is too long (8 bytes, at most 7)");
}

static void test_list_too_long_names_capacity(void **state)
{
    (void)state;
    expect_error("server: {host: h}\ntags: [a, b, c, d]\n",
                 "t.yaml:2:17: \"tags\": too many entries (at most 3)");
    expect_error("server: {host: h}\nitems:\n  - id: a\n  - id: b\n  - id: c\n",
                 "t.yaml:5:5: \"items\": too many entries (at most 2)");
}

static void test_list_shorter_than_minimum_is_refused(void **state)
{
    (void)state;
    expect_error("server: {host: h}\nitems: []\n",
                 "t.yaml:2:8: \"items\": expected at least 1 entries, got 0");
    expect_error("server: {host: h}\nitems:\n",
                 "t.yaml:2:7: \"items\": expected at least 1 entries, got 0");
    t_conf_t c;
    char err[ERRCAP];
    assert_int_equal(load("server: {host: h}\ntags: []\n", &c, err), 0);
    assert_int_equal(c.tag_count, 0);
}

static void test_bounds_are_enforced_and_reported(void **state)
{
    (void)state;
    expect_error("server: {host: h, port: 0}\n",
                 "t.yaml:1:25: \"server.port\": \"0\" is out of range (expected 1 to 65535)");
    expect_error("server: {host: h, port: 65536}\n",
                 "\"server.port\": \"65536\" is out of range (expected 1 to 65535)");
    expect_error("server: {host: h, port: -9223372036854775809}\n",
                 "\"server.port\": \"-9223372036854775809\" is out of range");
    expect_error("server: {host: h}\nsize: 128MiB\n",
                 "t.yaml:2:7: \"size\": \"128MiB\" is out of range (expected 1KiB to 64MiB)");
    expect_error("server: {host: h}\nsize: 1023\n", "\"1023\" is out of range");
    expect_error("server: {host: h}\nsize: 99999999999TiB\n", "is out of range");
    expect_error("server: {host: h}\ntimeout: 9999999999999999999d\n",
                 "\"timeout\": \"9999999999999999999d\" is too large");
    t_conf_t c;
    char err[ERRCAP];
    assert_int_equal(load("server: {host: h, port: 65535}\nsize: 64MiB\n", &c, err), 0);
    assert_int_equal(c.server.port, 65535);
    assert_int_equal(c.size, 64 << 20);
}

static void test_anchors_and_aliases_are_refused(void **state)
{
    (void)state;
    expect_error("server: &s {host: h}\n", "t.yaml:1:9: anchors (&name) are not supported");
    expect_error("server: {host: &h h}\ntags: [*h]\n", "anchors (&name) are not supported");
    expect_error("server: {host: h}\ntags: [*h]\n",
                 "t.yaml:2:8: aliases (*name) are not supported");
}

static void test_second_document_is_refused(void **state)
{
    (void)state;
    expect_error("server: {host: h}\n---\nserver: {host: i}\n",
                 "t.yaml:2:1: only one YAML document is allowed per file");
}

static void test_nul_and_invalid_utf8_are_refused_with_position(void **state)
{
    (void)state;
    expect_error("server: {host: \"a\\0b\"}\n",
                 "t.yaml:1:16: \"server.host\": value contains a NUL character");
    expect_error("server:\n  host: a\xff\n", "t.yaml:2:10: invalid leading UTF-8 octet (0xFF)");

    t_conf_t c;
    char err[ERRCAP];
    const char text[] = "server: {host: h}\0\n";
    memset(&c, 0, sizeof c);
    assert_int_equal(conf_load_string("t.yaml", text, sizeof text - 1, t_schema, &c, err, ERRCAP),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, "t.yaml:1:18: control characters are not allowed"));
}

static void test_utf8_values_load_and_are_echoed_in_errors(void **state)
{
    (void)state;
    t_conf_t c;
    char err[ERRCAP];
    assert_int_equal(load("server: {host: \"北京\"}\n", &c, err), 0);
    assert_string_equal(c.server.host, "北京");
    expect_error("server: {host: h}\ncolor: \"红\"\n", "got \"红\"");
    /* Control characters are escaped so the message stays one line. */
    expect_error("server: {host: h}\ncolor: \"a\\nb\\\"\"\n", "got \"a\\x0ab\\\"\"");
}

static void test_long_offending_value_is_truncated_in_message(void **state)
{
    (void)state;
    char text[4096];
    char value[2000];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    snprintf(text, sizeof text, "server: {host: h}\ncolor: %s\n", value);
    t_conf_t c;
    char err[ERRCAP];
    assert_int_equal(load(text, &c, err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "xxxx\"..."));
    assert_true(strlen(err) < 300);
}

static void test_missing_file_is_eio_naming_file_and_reason(void **state)
{
    (void)state;
    t_conf_t c;
    char err[ERRCAP];
    int rc = conf_load_file("/nonexistent/nhub.yaml", t_schema, &c, err, sizeof err);
    assert_int_equal(rc, NHUB_EIO);
    assert_string_equal(err, "/nonexistent/nhub.yaml: cannot open: No such file or directory");
    rc = conf_load_file("/", t_schema, &c, err, sizeof err);
    assert_int_equal(rc, NHUB_EIO);
    assert_string_equal(err, "/: cannot read: Is a directory");
}

static void test_file_loads_and_errors_carry_its_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_conf.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/a.yaml", dir);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("server:\n  host: filehost\n  port: 99\n", f);
    fclose(f);
    t_conf_t c;
    char err[ERRCAP];
    memset(&c, 0, sizeof c);
    assert_int_equal(conf_load_file(path, t_schema, &c, err, sizeof err), 0);
    assert_string_equal(c.server.host, "filehost");
    assert_int_equal(c.server.port, 99);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("server:\n  host: h\n  prot: 99\n", f);
    fclose(f);
    assert_int_equal(conf_load_file(path, t_schema, &c, err, sizeof err), NHUB_ECONFIG);
    char want[128];
    snprintf(want, sizeof want, "%s:3:3: unknown key \"prot\"", path);
    assert_non_null(strstr(err, want));

    unlink(path);
    rmdir(dir);
}

static void test_oversized_text_is_refused_before_parsing(void **state)
{
    (void)state;
    size_t len = (size_t)CONF_FILE_MAX + 1;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, '#', len);
    t_conf_t c;
    char err[ERRCAP];
    assert_int_equal(conf_load_string("big.yaml", text, len, t_schema, &c, err, sizeof err),
                     NHUB_ECONFIG);
    assert_non_null(strstr(err, "big.yaml: too large"));
    free(text);
}

static void test_marks_locate_values_and_fall_back_to_parent(void **state)
{
    (void)state;
    const char *text = "server:\n"
                       "  host: h\n"
                       "items:\n"
                       "  - id: a\n"
                       "  - id: b\n"
                       "    enabled: no\n";
    t_conf_t c;
    char err[ERRCAP];
    conf_marks_t *marks = NULL;
    memset(&c, 0, sizeof c);
    assert_int_equal(conf_load_string_marked("m.yaml", text, strlen(text), t_schema, &c, &marks,
                                             err, sizeof err),
                     0);
    assert_non_null(marks);
    conf_mark_t m;
    assert_int_equal(conf_marks_find(marks, "server.host", &m), 0);
    assert_int_equal(m.line, 2);
    assert_int_equal(m.column, 9);
    assert_int_equal(conf_marks_find(marks, "items[1]", &m), 0);
    assert_int_equal(m.line, 5);
    assert_int_equal(m.column, 5);
    assert_int_equal(conf_marks_find(marks, "items[1].enabled", &m), 0);
    assert_int_equal(m.line, 6);
    assert_int_equal(m.column, 14);
    assert_int_equal(conf_marks_find(marks, "server.port", &m), NHUB_ENOTFOUND);

    assert_int_equal(conf_marks_error(marks, "items[1].id", err, sizeof err, "bad %s", "id"),
                     NHUB_ECONFIG);
    assert_string_equal(err, "m.yaml:5:9: bad id");
    /* server.port is absent: the message points at the "server" section. */
    conf_marks_error(marks, "server.port", err, sizeof err, "port");
    assert_string_equal(err, "m.yaml:2:3: port");
    conf_marks_error(marks, "nothing.here[3].x", err, sizeof err, "root");
    assert_string_equal(err, "m.yaml:1:1: root");
    conf_marks_error(NULL, "x", err, sizeof err, "plain");
    assert_string_equal(err, "plain");
    conf_marks_destroy(&marks);
    assert_null(marks);
    conf_marks_destroy(&marks);
    conf_marks_destroy(NULL);

    /* A failed load hands back no marks. */
    marks = (conf_marks_t *)&c;
    assert_int_equal(
        conf_load_string_marked("m.yaml", "x: 1\n", 5, t_schema, &c, &marks, err, sizeof err),
        NHUB_ECONFIG);
    assert_null(marks);
}

static void test_malformed_schema_is_programmer_error(void **state)
{
    (void)state;
    struct {
        int64_t n;
        int32_t small;
    } target;
    const conf_key_t wrong_size[] = {
        {.name = "n", .type = CONF_INT64, .offset = 0, .size = sizeof(int32_t)},
        CONF_KEY_END,
    };
    const conf_key_t twice[] = {
        {.name = "n", .type = CONF_INT64, .offset = 0, .size = sizeof(int64_t)},
        {.name = "n", .type = CONF_INT64, .offset = 0, .size = sizeof(int64_t)},
        CONF_KEY_END,
    };
    const conf_key_t bad_bounds[] = {
        {.name = "n", .type = CONF_INT64, .size = sizeof(int64_t), .min = 5, .max = 1},
        CONF_KEY_END,
    };
    char err[ERRCAP];
    assert_int_equal(conf_load_string("s", "n: 1\n", 5, wrong_size, &target, err, sizeof err),
                     NHUB_EINVAL);
    assert_non_null(strstr(err, "schema: key \"n\" is malformed"));
    assert_int_equal(conf_load_string("s", "n: 1\n", 5, twice, &target, err, sizeof err),
                     NHUB_EINVAL);
    assert_int_equal(conf_load_string("s", "n: 1\n", 5, bad_bounds, &target, err, sizeof err),
                     NHUB_EINVAL);
    assert_int_equal(conf_load_string("s", "n: 1\n", 5, NULL, &target, err, sizeof err),
                     NHUB_EINVAL);
    assert_int_equal(conf_load_string("s", "n: 1\n", 5, t_schema, NULL, err, sizeof err),
                     NHUB_EINVAL);
}

static void test_small_or_missing_error_buffer_is_safe(void **state)
{
    (void)state;
    t_conf_t c;
    const char *text = "server:\n  hots: x\n";
    char err[8];
    memset(&c, 0, sizeof c);
    assert_int_equal(conf_load_string("t.yaml", text, strlen(text), t_schema, &c, NULL, 0),
                     NHUB_ECONFIG);
    assert_int_equal(conf_load_string("t.yaml", text, strlen(text), t_schema, &c, err, sizeof err),
                     NHUB_ECONFIG);
    assert_string_equal(err, "t.yaml:");
}

/*
 * A cheap stand-in for the fuzzer: every prefix of a valid document and a
 * few thousand byte mutations must load or fail with a message, never crash
 * or leak (run under ASan).
 */
static void test_truncated_and_mutated_input_fails_cleanly(void **state)
{
    (void)state;
    const char *good = "server:\n  host: \"h\"\n  port: 80\nverbose: true\nsize: 2MiB\n"
                       "timeout: 5s\ncolor: red\ntags: [a, b]\nitems:\n  - {id: x}\n"
                       "  - id: y\n    enabled: no\n";
    size_t len = strlen(good);
    char buf[256];
    char err[ERRCAP];
    t_conf_t c;
    assert_true(len < sizeof buf);

    for (size_t n = 0; n <= len; n++) {
        memcpy(buf, good, n);
        int rc = conf_load_string("p.yaml", buf, n, t_schema, &c, err, sizeof err);
        assert_true(rc == 0 || rc == NHUB_ECONFIG);
        if (rc != 0)
            assert_true(strncmp(err, "p.yaml:", 7) == 0);
    }
    static const char noise[] = "\0\t\n\r :-[]{},&*!|>'\"%@`#?x9\xff\xc3";
    uint32_t seed = 12345;
    for (int i = 0; i < 5000; i++) {
        memcpy(buf, good, len);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            buf[pos] = noise[(seed >> 8) % (sizeof noise - 1)];
        }
        int rc = conf_load_string("f.yaml", buf, len, t_schema, &c, err, sizeof err);
        assert_true(rc == 0 || rc == NHUB_ECONFIG);
        if (rc != 0)
            assert_true(strncmp(err, "f.yaml:", 7) == 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_parses_plain_bytes_and_binary_suffixes),
        cmocka_unit_test(test_size_rejects_garbage_negative_and_decimal_units),
        cmocka_unit_test(test_size_reports_overflow_as_too_big),
        cmocka_unit_test(test_duration_parses_plain_ms_and_suffixes),
        cmocka_unit_test(test_duration_rejects_garbage_and_negative),
        cmocka_unit_test(test_duration_reports_overflow_as_too_big),
        cmocka_unit_test(test_format_uses_largest_exact_unit),
        cmocka_unit_test(test_full_document_fills_every_type),
        cmocka_unit_test(test_absent_keys_keep_caller_defaults),
        cmocka_unit_test(test_unknown_key_names_position_and_known_keys),
        cmocka_unit_test(test_type_errors_name_key_expected_and_found),
        cmocka_unit_test(test_shape_errors_name_what_was_found),
        cmocka_unit_test(test_duplicate_key_names_second_occurrence),
        cmocka_unit_test(test_missing_required_key_names_map_and_position),
        cmocka_unit_test(test_syntax_error_reports_problem_and_position),
        cmocka_unit_test(test_string_too_long_reports_length_and_capacity),
        cmocka_unit_test(test_list_too_long_names_capacity),
        cmocka_unit_test(test_list_shorter_than_minimum_is_refused),
        cmocka_unit_test(test_bounds_are_enforced_and_reported),
        cmocka_unit_test(test_anchors_and_aliases_are_refused),
        cmocka_unit_test(test_second_document_is_refused),
        cmocka_unit_test(test_nul_and_invalid_utf8_are_refused_with_position),
        cmocka_unit_test(test_utf8_values_load_and_are_echoed_in_errors),
        cmocka_unit_test(test_long_offending_value_is_truncated_in_message),
        cmocka_unit_test(test_missing_file_is_eio_naming_file_and_reason),
        cmocka_unit_test(test_file_loads_and_errors_carry_its_path),
        cmocka_unit_test(test_oversized_text_is_refused_before_parsing),
        cmocka_unit_test(test_marks_locate_values_and_fall_back_to_parent),
        cmocka_unit_test(test_malformed_schema_is_programmer_error),
        cmocka_unit_test(test_small_or_missing_error_buffer_is_safe),
        cmocka_unit_test(test_truncated_and_mutated_input_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
