/*
 * test_schema_check.c: breaking changes between descriptor sets
 * (tools/nhub-schema-check/compare.h) and the nhub-schema-check program.
 *
 * The fixtures are the descriptor sets the build makes from the .proto files
 * of test/data/schema-check/ (see its README.md), found beside the programs:
 * $NHUB_BIN/../test/data/schema-check/NAME.pb. Each case
 * compares base.pb, or insured_v1.pb, with one NEW and checks the exact
 * findings. Bad input is written here byte by byte (pb_* below): descriptors
 * that fail the checks, nesting and size bombs, and every truncation and
 * thousands of mutations of a real set, none of which may crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "compare.h"
#include "nhub_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ERRCAP 1024

/* ---- fixtures ----------------------------------------------------------------------- */

static const char *bin_dir(void)
{
    const char *dir = getenv("NHUB_BIN");
    return dir && dir[0] ? dir : "build/bin";
}

static const char *fixture_path(const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/../test/data/schema-check/%s.pb", bin_dir(), name);
    return buf;
}

/* The bytes of fixture `name`; caller frees. */
static uint8_t *fixture_bytes(const char *name, size_t *len)
{
    char path[512];
    FILE *f = fopen(fixture_path(name, path, sizeof path), "rb");
    if (!f)
        fail_msg("%s: cannot open (is it built?)", path);
    uint8_t *buf = malloc(64 * 1024);
    assert_non_null(buf);
    *len = fread(buf, 1, 64 * 1024, f);
    assert_true(*len > 0 && *len < 64 * 1024);
    fclose(f);
    return buf;
}

static compare_set_t *fixture_set(const char *name)
{
    size_t len;
    uint8_t *buf = fixture_bytes(name, &len);
    compare_set_t *s = NULL;
    char err[ERRCAP];
    int rc = compare_set_decode(buf, len, name, &s, err, sizeof err);
    free(buf);
    if (rc != 0)
        fail_msg("%s: %s", name, err);
    return s;
}

static compare_report_t *compare_fixtures(const char *old_name, const char *new_name)
{
    compare_set_t *o = fixture_set(old_name), *n = fixture_set(new_name);
    compare_report_t *r = NULL;
    assert_int_equal(compare_sets(o, n, &r), 0);
    compare_set_free(&o);
    compare_set_free(&n);
    assert_null(o);
    return r;
}

/* Assert that the findings of `kind` are exactly `want` (NULL-terminated), in order. */
static void expect(const compare_report_t *r, compare_kind_t kind, const char *const *want)
{
    size_t w = 0;
    for (size_t i = 0; i < compare_report_len(r); i++) {
        compare_kind_t k;
        const char *line = compare_report_line(r, i, &k);
        if (k != kind)
            continue;
        if (!want[w])
            fail_msg("unexpected finding: %s", line);
        assert_string_equal(line, want[w]);
        w++;
    }
    if (want[w])
        fail_msg("missing finding: %s", want[w]);
    assert_int_equal(compare_report_count(r, kind), w);
}

static const char *const none[] = {NULL};

/* Compare base.pb with `new_name`: exactly the one breaking finding `want`, no addition. */
static void expect_one_break(const char *new_name, const char *want)
{
    compare_report_t *r = compare_fixtures("base", new_name);
    expect(r, COMPARE_BREAKING, (const char *const[]){want, NULL});
    expect(r, COMPARE_ADDED, none);
    compare_report_free(&r);
    assert_null(r);
}

/* ---- comparing ---------------------------------------------------------------------- */

static void test_identical_sets_have_no_findings(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("base", "base");
    assert_int_equal(compare_report_len(r), 0);
    compare_report_free(&r);
}

static void test_additions_are_compatible_and_listed(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("base", "compatible_addition");
    expect(r, COMPARE_BREAKING, none);
    expect(r, COMPARE_ADDED,
           (const char *const[]){
               "nhub.audit.v1 (package): added, 1 message and 0 enums",
               "nhub.push.v1.Feedback.note (field 11): added",
               "nhub.push.v1.Feedback.trail (field 12): added",
               "nhub.push.v1.Status.STATUS_REOPENED (value 3): added",
               "nhub.push.v1.Reminder (message): added",
               "nhub.push.v1.Priority (enum): added",
               NULL,
           });
    compare_report_free(&r);
}

static void test_removed_fields_and_values_are_breaking_the_other_way(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("compatible_addition", "base");
    expect(r, COMPARE_BREAKING,
           (const char *const[]){
               "nhub.audit.v1 (package): removed or renamed; NEW has no version of nhub.audit",
               "nhub.push.v1.Feedback.note (field 11): removed",
               "nhub.push.v1.Feedback.trail (field 12): removed",
               "nhub.push.v1.Reminder (message): removed or renamed; no message "
               "nhub.push.v1.Reminder in NEW",
               "nhub.push.v1.Status.STATUS_REOPENED (value 3): removed",
               "nhub.push.v1.Priority (enum): removed or renamed; no enum nhub.push.v1.Priority "
               "in NEW",
               NULL,
           });
    compare_report_free(&r);
}

static void test_renamed_message_breaks(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("base", "break_message_renamed");
    expect(r, COMPARE_BREAKING,
           (const char *const[]){"nhub.push.v1.Receipt (message): removed or renamed; no message "
                                 "nhub.push.v1.Receipt in NEW",
                                 NULL});
    expect(r, COMPARE_ADDED,
           (const char *const[]){"nhub.push.v1.Acknowledgement (message): added", NULL});
    compare_report_free(&r);
}

static void test_renamed_enum_breaks_it_and_the_field_of_its_type(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("base", "break_enum_renamed");
    expect(r, COMPARE_BREAKING,
           (const char *const[]){
               "nhub.push.v1.Feedback.channel (field 10): type nhub.push.v1.Channel -> "
               "nhub.push.v1.Medium",
               "nhub.push.v1.Channel (enum): removed or renamed; no enum nhub.push.v1.Channel in "
               "NEW",
               NULL,
           });
    expect(r, COMPARE_ADDED, (const char *const[]){"nhub.push.v1.Medium (enum): added", NULL});
    compare_report_free(&r);
}

static void test_removed_field_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_removed", "nhub.push.v1.Feedback.region (field 8): removed");
}

static void test_renumbered_field_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_renumbered",
                     "nhub.push.v1.Feedback.handled_time (field 5): renumbered 5 -> 11");
}

static void test_renamed_field_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_renamed", "nhub.push.v1.Feedback.handled_time (field 5): "
                                            "renamed handled_time -> handled_at");
}

static void test_retyped_scalar_field_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_retyped",
                     "nhub.push.v1.Feedback.handled_time (field 5): type string -> int64");
}

static void test_retyped_message_field_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_message_type",
                     "nhub.push.v1.Feedback.handler (field 3): type nhub.common.v1.Person -> "
                     "nhub.common.v1.Organisation");
}

static void test_repeated_to_singular_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_label",
                     "nhub.push.v1.Feedback.notes (field 4): label repeated -> singular");
}

static void test_moving_a_field_into_a_oneof_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_oneof",
                     "nhub.push.v1.Feedback.region (field 8): oneof (none) -> outcome");
}

static void test_gaining_proto3_optional_breaks(void **state)
{
    (void)state;
    expect_one_break("break_field_presence",
                     "nhub.push.v1.Feedback.msg_id (field 1): proto3 optional no -> yes");
}

static void test_removed_enum_value_breaks(void **state)
{
    (void)state;
    expect_one_break("break_enum_value_removed",
                     "nhub.push.v1.Status.STATUS_DONE (value 2): removed");
}

static void test_renumbered_enum_value_breaks(void **state)
{
    (void)state;
    expect_one_break("break_enum_value_renumbered",
                     "nhub.push.v1.Status.STATUS_DONE (value 2): renumbered 2 -> 3");
}

static void test_renamed_package_breaks_once_and_names_the_new_one(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("base", "break_package_renamed");
    expect(r, COMPARE_BREAKING,
           (const char *const[]){"nhub.push.v1 (package): removed or renamed; NEW has no version "
                                 "of nhub.push (new in NEW: nhub.feedback.v1)",
                                 NULL});
    expect(
        r, COMPARE_ADDED,
        (const char *const[]){"nhub.feedback.v1 (package): added, 3 messages and 2 enums", NULL});
    compare_report_free(&r);
}

/* ---- versioned packages ------------------------------------------------------------- */

static void test_next_version_maps_its_own_type_names(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("insured_v1", "insured_v2");
    expect(r, COMPARE_BREAKING, none);
    expect(r, COMPARE_ADDED,
           (const char *const[]){"nhub.insured.v2.Record.insured_since (field 5): added", NULL});
    compare_report_free(&r);
}

static void test_next_version_retype_is_named_in_both_versions(void **state)
{
    (void)state;
    compare_report_t *r = compare_fixtures("insured_v1", "insured_v2_break");
    expect(r, COMPARE_BREAKING,
           (const char *const[]){"nhub.insured.v1.Record.entries (field 4): type "
                                 "nhub.insured.v1.Record.Entry -> nhub.insured.v2.Item",
                                 NULL});
    expect(r, COMPARE_ADDED, (const char *const[]){"nhub.insured.v2.Item (message): added", NULL});
    compare_report_free(&r);
}

static void test_highest_version_is_the_counterpart(void **state)
{
    (void)state;
    /* NEW holds the breaking v2 and a compatible v3: v1 is compared with v3 */
    compare_report_t *r = compare_fixtures("insured_v1", "insured_v3");
    expect(r, COMPARE_BREAKING, none);
    expect(r, COMPARE_ADDED,
           (const char *const[]){"nhub.insured.v2 (package): added, 3 messages and 1 enum",
                                 "nhub.insured.v3.Record.legacy_item (field 5): added", NULL});
    compare_report_free(&r);
}

static void test_same_full_name_beats_another_version(void **state)
{
    (void)state;
    /* NEW holds v1 unchanged and the breaking v2: v1 is compared with v1 */
    compare_report_t *r = compare_fixtures("insured_v1", "insured_v1_v2");
    expect(r, COMPARE_BREAKING, none);
    expect(r, COMPARE_ADDED,
           (const char *const[]){"nhub.insured.bundle (package): added, 1 message and 0 enums",
                                 "nhub.insured.v2 (package): added, 3 messages and 1 enum", NULL});
    compare_report_free(&r);
}

/* ---- descriptors written by hand ---------------------------------------------------- */

typedef struct pb {
    uint8_t *buf;
    size_t len;
    size_t cap;
} pb_t;

static void pb_bytes(pb_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->buf = realloc(b->buf, b->cap);
        assert_non_null(b->buf);
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void pb_varint(pb_t *b, uint64_t v)
{
    uint8_t out[10];
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_bytes(b, out, n);
}

static void pb_int(pb_t *b, uint32_t number, int64_t v)
{
    pb_varint(b, (uint64_t)number << 3);
    pb_varint(b, (uint64_t)v);
}

static void pb_string(pb_t *b, uint32_t number, const char *s)
{
    pb_varint(b, (uint64_t)number << 3 | 2);
    pb_varint(b, strlen(s));
    pb_bytes(b, s, strlen(s));
}

/* Append `inner` as field `number` and free it. */
static void pb_sub(pb_t *b, uint32_t number, pb_t *inner)
{
    pb_varint(b, (uint64_t)number << 3 | 2);
    pb_varint(b, inner->len);
    if (inner->len)
        pb_bytes(b, inner->buf, inner->len);
    free(inner->buf);
    *inner = (pb_t){0};
}

/* A FieldDescriptorProto to write; a member left 0 or NULL is left out. */
typedef struct pb_field_spec {
    const char *name;      /* 1 */
    int number;            /* 3 */
    int label;             /* 4: 1 optional, 3 repeated */
    int type;              /* 5: 9 string, 11 message */
    int in_oneof;          /* 1: oneof_index (9) 0 */
    const char *json_name; /* 10 */
} pb_field_spec_t;

static void pb_field_of(pb_t *msg, const pb_field_spec_t *spec)
{
    pb_t f = {0};
    if (spec->name)
        pb_string(&f, 1, spec->name);
    if (spec->number)
        pb_int(&f, 3, spec->number);
    if (spec->label)
        pb_int(&f, 4, spec->label);
    if (spec->type)
        pb_int(&f, 5, spec->type);
    if (spec->in_oneof)
        pb_int(&f, 9, 0);
    if (spec->json_name)
        pb_string(&f, 10, spec->json_name);
    pb_sub(msg, 2, &f);
}

/* A singular string field. */
static void pb_field(pb_t *msg, const char *name, int number)
{
    pb_field_of(msg, &(pb_field_spec_t){.name = name, .number = number, .label = 1, .type = 9});
}

/* A set of one file "t.proto" of package t.v1 holding `msg` (message_type 4), freed. */
static pb_t pb_set_of_message(pb_t *msg)
{
    pb_t file = {0}, set = {0};
    pb_string(&file, 1, "t.proto");
    pb_string(&file, 2, "t.v1");
    pb_sub(&file, 4, msg);
    pb_sub(&set, 1, &file);
    return set;
}

static int decode(const pb_t *b, compare_set_t **s, char *err)
{
    return compare_set_decode(b->buf, b->len, "t.pb", s, err, ERRCAP);
}

static void expect_refused(pb_t *set, int code, const char *want)
{
    compare_set_t *s = (compare_set_t *)1; /* the contract: NULL after a failure */
    char err[ERRCAP];
    assert_int_equal(decode(set, &s, err), code);
    assert_null(s);
    if (strncmp(err, "t.pb: ", 6) != 0 || !strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    free(set->buf);
    *set = (pb_t){0};
}

/* A descriptor that fails a check: message M holding `field`, or the message that
 * `build` writes. */
typedef struct bad_message {
    const char *want;
    pb_field_spec_t field;
    void (*build)(pb_t *msg);
} bad_message_t;

static void msg_without_name(pb_t *m)
{
    pb_field(m, "a", 1);
}

static void field_number_twice(pb_t *m)
{
    pb_string(m, 1, "M");
    pb_field(m, "a", 1);
    pb_field(m, "b", 1);
}

static void field_name_twice(pb_t *m)
{
    pb_string(m, 1, "M");
    pb_field(m, "a", 1);
    pb_field(m, "a", 2);
}

static void message_name_with_a_control_byte(pb_t *m)
{
    pb_string(m, 1, "M\x1b[2J");
}

static void enum_value_without_number(pb_t *m)
{
    pb_t e = {0}, v = {0};
    pb_string(m, 1, "M");
    pb_string(&e, 1, "E");
    pb_string(&v, 1, "E_A");
    pb_sub(&e, 2, &v);
    pb_sub(m, 4, &e);
}

static void enum_without_name(pb_t *m)
{
    pb_t e = {0}, v = {0};
    pb_string(m, 1, "M");
    pb_string(&v, 1, "E_A");
    pb_int(&v, 2, 0);
    pb_sub(&e, 2, &v);
    pb_sub(m, 4, &e);
}

static void test_bad_descriptors_are_refused_with_what_is_wrong(void **state)
{
    (void)state;
    static const bad_message_t cases[] = {
        {"t.v1.M.a: no field number", {.name = "a", .type = 9}, NULL},
        {"t.v1.M.a (field 1): no type, or not a known one",
         {.name = "a", .number = 1, .type = 19},
         NULL},
        {"t.v1.M.a (field 1): label 4 is not a known one",
         {.name = "a", .number = 1, .label = 4, .type = 9},
         NULL},
        {"t.v1.M.a (field 1): type name missing", {.name = "a", .number = 1, .type = 11}, NULL},
        {"t.v1.M.a (field 1): oneof index 0 out of range",
         {.name = "a", .number = 1, .type = 9, .in_oneof = 1},
         NULL},
        {"t.v1.M: field #1: no name, or not an identifier",
         {.name = "a.b", .number = 1, .type = 9},
         NULL},
        {"t.v1.M.a (field 1): JSON name empty, or not printable UTF-8",
         {.name = "a", .number = 1, .type = 9, .json_name = "a\xc0\xaf"},
         NULL}, /* overlong */
        {"t.v1.M.a (field 1): JSON name empty, or not printable UTF-8",
         {.name = "a", .number = 1, .type = 9, .json_name = "a\x1b[2J"},
         NULL},
        {"in t.v1: a message with no name", {0}, msg_without_name},
        {"t.v1.M: field number 1 given twice", {0}, field_number_twice},
        {"t.v1.M: field name a given twice", {0}, field_name_twice},
        {"in t.v1: a message with no name, or not an identifier",
         {0},
         message_name_with_a_control_byte},
        {"t.v1.M.E: value #1: no name or no number", {0}, enum_value_without_number},
        {"in t.v1.M: an enum with no name", {0}, enum_without_name},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pb_t msg = {0};
        if (cases[i].build) {
            cases[i].build(&msg);
        } else {
            pb_string(&msg, 1, "M");
            pb_field_of(&msg, &cases[i].field);
        }
        pb_t set = pb_set_of_message(&msg);
        expect_refused(&set, NHUB_EMALFORMED, cases[i].want);
    }
}

static void test_bad_files_are_refused(void **state)
{
    (void)state;
    pb_t set = {0}, file = {0}, msg = {0};

    pb_string(&file, 1, "t.proto");
    pb_string(&file, 2, "t..v1");
    pb_sub(&set, 1, &file);
    expect_refused(&set, NHUB_EMALFORMED, "file t.proto: package is not a dotted name");

    for (int i = 0; i < 2; i++) {
        pb_string(&msg, 1, "M");
        pb_string(&file, 1, i ? "b.proto" : "a.proto");
        pb_string(&file, 2, "t.v1");
        pb_sub(&file, 4, &msg);
        pb_sub(&set, 1, &file);
    }
    expect_refused(&set, NHUB_EMALFORMED, "type t.v1.M defined twice");

    pb_int(&set, 7, 1); /* a valid message, but of nothing a set holds */
    expect_refused(&set, NHUB_EMALFORMED, "no file descriptor in it");

    pb_int(&set, 1, 1); /* the file field as a varint: the wrong wire type */
    expect_refused(&set, NHUB_EMALFORMED, "does not decode as a FileDescriptorSet");

    pb_bytes(&set, "\x0a\x05\x0a\x03", 4); /* a length beyond the end */
    expect_refused(&set, NHUB_EMALFORMED, "truncated or corrupt at byte 0");

    pb_bytes(&set, "\x0b\x0c", 2); /* a group */
    expect_refused(&set, NHUB_EMALFORMED, "truncated or corrupt at byte 0");
}

static void test_empty_and_oversized_input_is_refused_unread(void **state)
{
    (void)state;
    compare_set_t *s = NULL;
    char err[ERRCAP];
    uint8_t one = 0;
    assert_int_equal(compare_set_decode(&one, 0, "e.pb", &s, err, sizeof err), NHUB_EMALFORMED);
    assert_string_equal(err, "e.pb: empty file; not a descriptor set");
    /* the length is refused before a byte is read, so one byte stands for them all */
    assert_int_equal(compare_set_decode(&one, COMPARE_MAX_BYTES + 1u, "b.pb", &s, err, sizeof err),
                     NHUB_ETOOBIG);
    assert_non_null(strstr(err, "at most 64 MiB"));
    assert_null(s);
}

/* A set whose file holds one message nesting `levels` messages in all, each named M.
 * Written outside in, from the sizes of the levels, so that deep sets are cheap. */
static pb_t pb_nested_set(size_t levels)
{
    size_t *size = calloc(levels + 1, sizeof *size);
    pb_t b = {0}, name = {0}, tmp = {0};
    assert_non_null(size);
    pb_string(&name, 1, "M");
    size[1] = name.len; /* size[k]: a message holding k levels */
    for (size_t k = 2; k <= levels; k++) {
        pb_varint(&tmp, size[k - 1]);
        size[k] = name.len + 1 + tmp.len + size[k - 1];
        tmp.len = 0;
    }
    pb_t file_head = {0};
    pb_string(&file_head, 1, "deep.proto");
    pb_varint(&tmp, size[levels]);
    size_t file_len = file_head.len + 1 + tmp.len + size[levels];
    tmp.len = 0;
    pb_varint(&b, 1 << 3 | 2);
    pb_varint(&b, file_len);
    pb_bytes(&b, file_head.buf, file_head.len);
    for (size_t k = levels; k >= 1; k--) {
        pb_varint(&b, k == levels ? 4 << 3 | 2 : 3 << 3 | 2); /* message_type, then nested */
        pb_varint(&b, size[k]);
        pb_bytes(&b, name.buf, name.len);
    }
    free(file_head.buf);
    free(name.buf);
    free(tmp.buf);
    free(size);
    return b;
}

static void test_nesting_up_to_the_limit_decodes(void **state)
{
    (void)state;
    pb_t set = pb_nested_set(COMPARE_MAX_DEPTH);
    compare_set_t *s = NULL;
    char err[ERRCAP];
    if (decode(&set, &s, err) != 0)
        fail_msg("%s", err);
    compare_report_t *r = NULL;
    assert_int_equal(compare_sets(s, s, &r), 0);
    assert_int_equal(compare_report_len(r), 0);
    compare_report_free(&r);
    compare_set_free(&s);
    free(set.buf);
}

static void test_nesting_beyond_the_limit_is_refused(void **state)
{
    (void)state;
    pb_t set = pb_nested_set(COMPARE_MAX_DEPTH + 1);
    expect_refused(&set, NHUB_ETOOBIG, "messages nested more than 64 deep");
    /* deep enough to overflow the stack of a decoder that recursed on it */
    set = pb_nested_set(200000);
    expect_refused(&set, NHUB_ETOOBIG, "messages nested more than 64 deep");
}

static void test_too_many_encoded_fields_are_refused(void **state)
{
    (void)state;
    pb_t set = {0}, file = {0};
    pb_string(&file, 1, "t.proto");
    for (size_t i = 0; i < COMPARE_MAX_ENTRIES; i++)
        pb_int(&file, 99, 0); /* unknown fields: protobuf-c would keep each one */
    pb_sub(&set, 1, &file);
    expect_refused(&set, NHUB_ETOOBIG, "more than 1000000 encoded fields");
}

static void test_renamed_enum_value_and_json_name_break(void **state)
{
    (void)state;
    pb_t sets[2];
    compare_set_t *s[2] = {NULL, NULL};
    char err[ERRCAP];
    for (int i = 0; i < 2; i++) {
        pb_t msg = {0}, f = {0}, e = {0}, v0 = {0}, v1 = {0};
        pb_string(&msg, 1, "M");
        pb_string(&f, 1, "a");
        pb_int(&f, 3, 1);
        pb_int(&f, 5, 9);
        pb_string(&f, 10, i ? "a\xc3\xa9" : "a"); /* "aé": UTF-8 is text */
        pb_sub(&msg, 2, &f);
        pb_string(&e, 1, "E");
        pb_string(&v0, 1, "E_NONE");
        pb_int(&v0, 2, 0);
        pb_sub(&e, 2, &v0);
        pb_string(&v1, 1, i ? "E_SECOND" : "E_FIRST");
        pb_int(&v1, 2, 1);
        pb_sub(&e, 2, &v1);
        pb_sub(&msg, 4, &e);
        sets[i] = pb_set_of_message(&msg);
        if (decode(&sets[i], &s[i], err) != 0)
            fail_msg("%s", err);
    }
    compare_report_t *r = NULL;
    assert_int_equal(compare_sets(s[0], s[1], &r), 0);
    expect(r, COMPARE_BREAKING,
           (const char *const[]){"t.v1.M.a (field 1): JSON name a -> a\xc3\xa9",
                                 "t.v1.M.E.E_FIRST (value 1): renamed E_FIRST -> E_SECOND", NULL});
    expect(r, COMPARE_ADDED, none);
    compare_report_free(&r);
    for (int i = 0; i < 2; i++) {
        compare_set_free(&s[i]);
        free(sets[i].buf);
    }
}

/* ---- robustness --------------------------------------------------------------------- */

/* Decode `buf`; if it decodes, compare it with `base` both ways. Never a crash. */
static void decode_and_compare(const uint8_t *buf, size_t len, const compare_set_t *base)
{
    compare_set_t *s = NULL;
    char err[ERRCAP];
    int rc = compare_set_decode(buf, len, "m.pb", &s, err, sizeof err);
    if (rc != 0) {
        if (rc != NHUB_EMALFORMED && rc != NHUB_ETOOBIG)
            fail_msg("rc %d: %s", rc, err);
        assert_null(s);
        assert_true(strncmp(err, "m.pb: ", 6) == 0);
        return;
    }
    compare_report_t *r = NULL;
    assert_int_equal(compare_sets(base, s, &r), 0);
    compare_report_free(&r);
    assert_int_equal(compare_sets(s, base, &r), 0);
    compare_report_free(&r);
    compare_set_free(&s);
}

static void test_every_truncation_is_refused_or_compares(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = fixture_bytes("compatible_addition", &len);
    compare_set_t *base = fixture_set("base");
    compare_set_t *s = NULL;
    char err[ERRCAP];
    for (size_t n = 1; n < len; n++)
        decode_and_compare(buf, n, base);
    /* cut inside the last file: refused, naming the place */
    assert_int_equal(compare_set_decode(buf, len - 1, "cut.pb", &s, err, sizeof err),
                     NHUB_EMALFORMED);
    assert_non_null(strstr(err, "cut.pb: not a descriptor set: truncated or corrupt at byte"));
    compare_set_free(&base);
    free(buf);
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_mutated_sets_are_refused_or_compare(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = fixture_bytes("compatible_addition", &len);
    uint8_t *buf = malloc(len);
    compare_set_t *base = fixture_set("base");
    uint64_t seed = 0x9e3779b97f4a7c15u;
    assert_non_null(buf);
    for (int round = 0; round < 5000; round++) {
        memcpy(buf, orig, len);
        int flips = 1 + (int)(xorshift(&seed) % 4);
        for (int k = 0; k < flips; k++)
            buf[xorshift(&seed) % len] = (uint8_t)xorshift(&seed);
        decode_and_compare(buf, len, base);
    }
    for (int round = 0; round < 500; round++) { /* plain noise */
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)xorshift(&seed);
        decode_and_compare(buf, 1 + xorshift(&seed) % len, base);
    }
    compare_set_free(&base);
    free(buf);
    free(orig);
}

/* ---- the program -------------------------------------------------------------------- */

/* Run nhub-schema-check with `args` (already quoted); its output, both streams, into
 * `out`. Returns the exit status. */
static int run_program(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/nhub-schema-check' %s 2>&1", bin_dir(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    /* a sanitizer report exits 1 too: the output tells them apart */
    assert_null(strstr(out, "Sanitizer"));
    assert_null(strstr(out, "runtime error"));
    return WEXITSTATUS(status);
}

static void fixture_pair(const char *old_name, const char *new_name, char *args, size_t cap)
{
    char a[512], b[512];
    snprintf(args, cap, "'%s' '%s'", fixture_path(old_name, a, sizeof a),
             fixture_path(new_name, b, sizeof b));
}

static void test_program_exits_1_naming_a_breaking_change(void **state)
{
    (void)state;
    char args[1200], out[8192];
    fixture_pair("base", "break_field_retyped", args, sizeof args);
    assert_int_equal(run_program(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "nhub-schema-check: breaking: nhub.push.v1.Feedback.handled_time "
                                "(field 5): type string -> int64\n"));
    assert_non_null(strstr(out, "break_field_retyped.pb: 1 breaking change, 0 additions\n"));
}

static void test_program_exits_0_on_a_compatible_addition(void **state)
{
    (void)state;
    char args[1200], out[8192];
    fixture_pair("insured_v1", "insured_v2", args, sizeof args);
    assert_int_equal(run_program(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "nhub-schema-check: added: nhub.insured.v2.Record.insured_since "
                                "(field 5): added\n"));
    assert_non_null(strstr(out, "insured_v2.pb: compatible, 1 addition\n"));
    assert_null(strstr(out, "breaking"));
}

static void test_program_exits_2_on_a_file_it_cannot_read(void **state)
{
    (void)state;
    char args[1200], out[8192], path[] = "/tmp/nhub-schema-XXXXXX", base[512];
    size_t len;
    uint8_t *buf = fixture_bytes("base", &len);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len / 2), (ssize_t)(len / 2));
    close(fd);
    free(buf);

    snprintf(args, sizeof args, "'%s' '%s'", fixture_path("base", base, sizeof base), path);
    assert_int_equal(run_program(args, out, sizeof out), 2);
    assert_non_null(strstr(out, path));
    assert_non_null(strstr(out, "not a descriptor set: truncated or corrupt at byte"));

    /* larger than a set may be: refused by its size, unread (a sparse file) */
    assert_int_equal(truncate(path, (off_t)COMPARE_MAX_BYTES + 1), 0);
    assert_int_equal(run_program(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "a descriptor set may have at most 64 MiB"));
    unlink(path);

    snprintf(args, sizeof args, "'%s' /nonexistent/x.pb", base);
    assert_int_equal(run_program(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "/nonexistent/x.pb: cannot open"));
}

static void test_program_exits_2_on_a_usage_error(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(run_program("", out, sizeof out), 2);
    assert_non_null(strstr(out, "give two descriptor sets, OLD and NEW"));
    assert_int_equal(run_program("a b c", out, sizeof out), 2);
    assert_int_equal(run_program("--frobnicate a b", out, sizeof out), 2);
    assert_int_equal(run_program("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: nhub-schema-check OLD NEW"));
    assert_non_null(strstr(out, "Versioned packages:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_sets_have_no_findings),
        cmocka_unit_test(test_additions_are_compatible_and_listed),
        cmocka_unit_test(test_removed_fields_and_values_are_breaking_the_other_way),
        cmocka_unit_test(test_renamed_message_breaks),
        cmocka_unit_test(test_renamed_enum_breaks_it_and_the_field_of_its_type),
        cmocka_unit_test(test_removed_field_breaks),
        cmocka_unit_test(test_renumbered_field_breaks),
        cmocka_unit_test(test_renamed_field_breaks),
        cmocka_unit_test(test_retyped_scalar_field_breaks),
        cmocka_unit_test(test_retyped_message_field_breaks),
        cmocka_unit_test(test_repeated_to_singular_breaks),
        cmocka_unit_test(test_moving_a_field_into_a_oneof_breaks),
        cmocka_unit_test(test_gaining_proto3_optional_breaks),
        cmocka_unit_test(test_removed_enum_value_breaks),
        cmocka_unit_test(test_renumbered_enum_value_breaks),
        cmocka_unit_test(test_renamed_package_breaks_once_and_names_the_new_one),
        cmocka_unit_test(test_next_version_maps_its_own_type_names),
        cmocka_unit_test(test_next_version_retype_is_named_in_both_versions),
        cmocka_unit_test(test_highest_version_is_the_counterpart),
        cmocka_unit_test(test_same_full_name_beats_another_version),
        cmocka_unit_test(test_bad_descriptors_are_refused_with_what_is_wrong),
        cmocka_unit_test(test_bad_files_are_refused),
        cmocka_unit_test(test_empty_and_oversized_input_is_refused_unread),
        cmocka_unit_test(test_nesting_up_to_the_limit_decodes),
        cmocka_unit_test(test_nesting_beyond_the_limit_is_refused),
        cmocka_unit_test(test_too_many_encoded_fields_are_refused),
        cmocka_unit_test(test_renamed_enum_value_and_json_name_break),
        cmocka_unit_test(test_every_truncation_is_refused_or_compares),
        cmocka_unit_test(test_mutated_sets_are_refused_or_compare),
        cmocka_unit_test(test_program_exits_1_naming_a_breaking_change),
        cmocka_unit_test(test_program_exits_0_on_a_compatible_addition),
        cmocka_unit_test(test_program_exits_2_on_a_file_it_cannot_read),
        cmocka_unit_test(test_program_exits_2_on_a_usage_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
