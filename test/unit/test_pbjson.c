/*
 * test_pbjson.c: the JSON converter (proto/pbjson.h). Every payload type of
 * the registry, and the test-only types of test/data/pbjson/kinds.proto
 * (every field kind, a oneof, a map, a recursive type), is filled with
 * non-default values generated from its descriptor and taken round
 * message -> JSON -> text -> JSON -> bytes -> JSON; hand-written JSON of
 * real types is checked field by field; each refusal is checked for its
 * code and the field it names.
 *
 * malloc is wrapped at link time (-Wl,--wrap=malloc, see the Makefile) and
 * jansson is given the same allocator, so the out-of-memory tests can fail
 * the n-th allocation for every n; the ASan build proves nothing leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kinds.pb-c.h"
#include "nhub/insured/v1/insured.pb-c.h"
#include "nhub/insured/v2/insured.pb-c.h"
#include "nhub_err.h"
#include "payload.h"
#include "pbjson.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failing allocations ------------------------------------------------ */

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);

static long mallocs_left = -1; /* -1: no failure armed */

void *__wrap_malloc(size_t n)
{
    if (mallocs_left == 0)
        return NULL;
    if (mallocs_left > 0)
        mallocs_left--;
    return __real_malloc(n);
}

static void *json_malloc(size_t n)
{
    return __wrap_malloc(n);
}

/* ---- filling a message from its descriptor ------------------------------ */

#define FILL_DEPTH 3 /* messages below this depth are left absent */
#define FILL_COUNT 2 /* entries of a repeated field */

static ProtobufCMessage *fill_message(const ProtobufCMessageDescriptor *d, unsigned depth,
                                      unsigned seed);

/* Index of oneof member `f` among the members of its oneof, and how many there are. */
static unsigned oneof_index(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                            unsigned *count)
{
    unsigned idx = 0, n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *g = &d->fields[i];
        if (!(g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            g->quantifier_offset != f->quantifier_offset)
            continue;
        if (g == f)
            idx = n;
        n++;
    }
    *count = n;
    return idx;
}

static bool oneof_chosen(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                         unsigned seed)
{
    unsigned n;
    unsigned idx = oneof_index(d, f, &n);
    return idx == seed % n;
}

static char *text_of(const char *s)
{
    char *p = malloc(strlen(s) + 1);
    assert_non_null(p);
    strcpy(p, s);
    return p;
}

/* A non-default value for one element `idx` of field `f`; false if none is made (a message too
 * deep). */
static bool fill_value(const ProtobufCFieldDescriptor *f, void *slot, unsigned depth, unsigned seed,
                       unsigned idx)
{
    unsigned k = f->id + idx;
    const ProtobufCEnumDescriptor *e;
    char buf[96];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)slot = seed % 2 ? INT32_MAX - (int32_t)k : INT32_MIN + (int32_t)k;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: *(uint32_t *)slot = UINT32_MAX - k; break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        /* Beyond 2^53: a JSON number would lose the last digits. */
        *(int64_t *)slot = seed % 2 ? (INT64_C(1) << 53) + 1 + k : INT64_MIN + k;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: *(uint64_t *)slot = UINT64_MAX - k; break;
    case PROTOBUF_C_TYPE_FLOAT: *(float *)slot = seed % 2 ? -3.4e38f : 0.1f * (float)k; break;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)slot = seed % 2 ? -1.7976931348623157e308 : 0.1 * k;
        break;
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)slot = 1; break;
    case PROTOBUF_C_TYPE_ENUM:
        e = f->descriptor;
        /* The last value, or (seed 2) a number the enum has no name for. */
        *(int32_t *)slot = seed == 2 ? 12345 : e->values[e->n_values - 1].value;
        break;
    case PROTOBUF_C_TYPE_STRING:
        snprintf(buf, sizeof buf, "v%u/%u 张三 \"quoted\" \\ \t", k, seed);
        *(char **)slot = text_of(buf);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        /* 1..5 bytes: every base64 padding, and 0xfb 0xff for '+' and '/'. */
        ProtobufCBinaryData *b = slot;
        b->len = 1 + (k + seed) % 5;
        b->data = malloc(b->len);
        assert_non_null(b->data);
        for (size_t i = 0; i < b->len; i++)
            b->data[i] = (uint8_t)(i % 2 ? 0xff - k : 0xfb + i);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        if (depth + 1 >= FILL_DEPTH)
            return false;
        *(ProtobufCMessage **)slot = fill_message(f->descriptor, depth + 1, seed);
        break;
    }
    return true;
}

static void fill_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, unsigned depth,
                       unsigned seed)
{
    char *base = (char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth + 1 >= FILL_DEPTH)
            return;
        size_t elem = payload_elem_size(f);
        char *arr = malloc(FILL_COUNT * elem);
        assert_non_null(arr);
        for (unsigned i = 0; i < FILL_COUNT; i++)
            fill_value(f, arr + i * elem, depth, seed, i);
        *(void **)(base + f->offset) = arr;
        *(size_t *)(base + f->quantifier_offset) = FILL_COUNT;
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (!oneof_chosen(m->descriptor, f, seed))
            return;
        if (fill_value(f, base + f->offset, depth, seed, 0))
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        return;
    }
    fill_value(f, base + f->offset, depth, seed, 0);
}

static ProtobufCMessage *fill_message(const ProtobufCMessageDescriptor *d, unsigned depth,
                                      unsigned seed)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    assert_non_null(m);
    d->message_init(m);
    for (unsigned i = 0; i < d->n_fields; i++)
        fill_field(m, &d->fields[i], depth, seed);
    return m;
}

/* The JSON name protoc gives field `name`. */
static void camel(const char *name, char *out, size_t cap)
{
    size_t n = 0;
    bool up = false;
    for (; *name && n + 1 < cap; name++) {
        if (*name == '_') {
            up = true;
            continue;
        }
        out[n++] = up && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
        up = false;
    }
    out[n] = '\0';
}

/* Does `j` hold, in JSON names, every field fill_message() set (and nothing else)? */
static void assert_every_field(const json_t *j, const ProtobufCMessageDescriptor *d, unsigned depth,
                               unsigned seed)
{
    assert_true(json_is_object(j));
    size_t expected = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth + 1 >= FILL_DEPTH)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !oneof_chosen(d, f, seed))
            continue;
        char name[128];
        camel(f->name, name, sizeof name);
        const json_t *v = json_object_get(j, name);
        if (!v)
            fprintf(stderr, "%s: no %s in the JSON\n", d->name, name);
        assert_non_null(v);
        expected++;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            assert_int_equal(json_array_size(v), FILL_COUNT);
            for (size_t k = 0; k < FILL_COUNT; k++)
                assert_every_field(json_array_get(v, k), f->descriptor, depth + 1, seed);
        } else {
            assert_every_field(v, f->descriptor, depth + 1, seed);
        }
    }
    assert_int_equal(json_object_size(j), expected);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    protobuf_c_message_pack(m, b);
    return b;
}

/* message -> JSON -> text -> JSON -> bytes (as the message's) -> JSON (the same). */
static void round_trip(const ProtobufCMessageDescriptor *d, unsigned seed)
{
    char why[256];
    ProtobufCMessage *m0 = fill_message(d, 0, seed);
    size_t n0;
    uint8_t *b0 = pack(m0, &n0);

    json_t *j1 = pbjson_from_message(m0);
    if (!j1)
        fprintf(stderr, "%s (seed %u): no JSON\n", d->name, seed);
    assert_non_null(j1);
    assert_every_field(j1, d, 0, seed);

    char *text = json_dumps(j1, JSON_COMPACT);
    assert_non_null(text);
    json_error_t err;
    json_t *j2 = json_loads(text, 0, &err);
    assert_non_null(j2);
    assert_true(json_equal(j1, j2));

    uint8_t *b1 = NULL;
    size_t n1 = 0;
    int rc = pbjson_pack(d, j2, &b1, &n1, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "%s (seed %u): %s\n", d->name, seed, why);
    assert_int_equal(rc, 0);
    assert_string_equal(why, "");
    assert_int_equal(n1, n0);
    assert_memory_equal(b1, b0, n0);

    json_t *j3 = NULL;
    rc = pbjson_unpack(d, b1, n1, &j3, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "%s (seed %u): %s\n", d->name, seed, why);
    assert_int_equal(rc, 0);
    if (!json_equal(j1, j3)) {
        char *t3 = json_dumps(j3, JSON_COMPACT);
        fprintf(stderr, "%s (seed %u):\n  %s\n  %s\n", d->name, seed, text, t3);
        free(t3);
    }
    assert_true(json_equal(j1, j3));

    json_decref(j3);
    free(b1);
    json_decref(j2);
    free(text);
    json_decref(j1);
    free(b0);
    protobuf_c_message_free_unpacked(m0, NULL);
}

static void test_every_registry_type_round_trips_with_every_field_set(void **state)
{
    (void)state;
    assert_true(payload_type_count() > 10);
    for (size_t i = 0; i < payload_type_count(); i++)
        for (unsigned seed = 0; seed < 3; seed++)
            round_trip(payload_type_at(i), seed);
}

static void test_every_field_kind_and_each_oneof_member_round_trips(void **state)
{
    (void)state;
    /* Five seeds: each member of the oneof once, both signs, a nameless enum number. */
    for (unsigned seed = 0; seed < 5; seed++) {
        round_trip(&nhub__pbjsontest__v1__kinds__descriptor, seed);
        round_trip(&nhub__pbjsontest__v1__inner__descriptor, seed);
    }
}

/* ---- helpers for hand-written JSON -------------------------------------- */

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fprintf(stderr, "bad test JSON: %s: %s\n", err.text, text);
    assert_non_null(j);
    return j;
}

/* `text` as `d`: 0 and the message, or the error with `why`. */
static int convert(const ProtobufCMessageDescriptor *d, const char *text, ProtobufCMessage **m,
                   char *why, size_t whycap)
{
    json_t *j = parse(text);
    int rc = pbjson_to_message(d, j, m, why, whycap);
    json_decref(j);
    return rc;
}

/* `text` as `d` must be refused with exactly `expected`. */
static void refused(const ProtobufCMessageDescriptor *d, const char *text, const char *expected)
{
    char why[256] = "unset";
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    int rc = convert(d, text, &m, why, sizeof why);
    if (rc != NHUB_EINVAL || strcmp(why, expected) != 0)
        fprintf(stderr, "input: %s\n", text);
    assert_int_equal(rc, NHUB_EINVAL);
    assert_null(m);
    assert_string_equal(why, expected);
}

/* `text` as `d` must be accepted; the message is returned (free with
 * protobuf_c_message_free_unpacked). */
static ProtobufCMessage *accepted(const ProtobufCMessageDescriptor *d, const char *text)
{
    char why[256];
    ProtobufCMessage *m = NULL;
    int rc = convert(d, text, &m, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "input: %s\n  %s\n", text, why);
    assert_int_equal(rc, 0);
    assert_non_null(m);
    return m;
}

static void assert_json_text(const ProtobufCMessage *m, const char *expected)
{
    json_t *j = pbjson_from_message(m);
    assert_non_null(j);
    char *t = json_dumps(j, JSON_COMPACT);
    assert_non_null(t);
    assert_string_equal(t, expected);
    free(t);
    json_decref(j);
}

#define KINDS (&nhub__pbjsontest__v1__kinds__descriptor)
#define QUERY_V1 (&nhub__insured__v1__status_query__descriptor)
#define ANSWER_V2 (&nhub__insured__v2__status_answer__descriptor)

/* ---- real types, by hand ------------------------------------------------ */

static void test_readme_example_is_the_txtpb_example_and_passes_the_rules(void **state)
{
    (void)state;
    json_error_t err;
    json_t *j = json_load_file("schemas/examples/insured-query.json", 0, &err);
    assert_non_null(j);
    char why[256];
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbjson_to_message(QUERY_V1, j, &m, why, sizeof why), 0);
    const Nhub__Insured__V1__StatusQuery *q = (const void *)m;
    assert_string_equal(q->person->id_number, "11010519491231002X");
    assert_string_equal(q->person->name, "张三");
    assert_int_equal(q->n_insurance_types, 1);
    assert_int_equal(q->insurance_types[0],
                     NHUB__COMMON__V1__INSURANCE_TYPE__INSURANCE_TYPE_ENTERPRISE_PENSION);
    assert_string_equal(q->purpose, "养老保险待遇领取资格认定");
    assert_string_equal(q->office->code, "1101000001");
    assert_string_equal(q->office->name, "北京市社会保险事业管理中心");

    /* The same bytes as protoc's encoding of the text-format example. */
    uint8_t *b = NULL;
    size_t n = 0;
    assert_int_equal(pbjson_pack(QUERY_V1, j, &b, &n, why, sizeof why), 0);
    FILE *f = popen("protoc-c -Ischemas --encode=nhub.insured.v1.StatusQuery "
                    "schemas/nhub/insured/v1/insured.proto <schemas/examples/insured-query.txtpb",
                    "r");
    assert_non_null(f);
    uint8_t ref[4096];
    size_t rn = fread(ref, 1, sizeof ref, f);
    assert_int_equal(pclose(f), 0);
    assert_int_equal(n, rn);
    assert_memory_equal(b, ref, n);
    assert_int_equal(payload_check(QUERY_V1->name, b, n, NULL, why, sizeof why), PAYLOAD_OK);

    /* And back: lowerCamelCase, the enum by name, in field order. */
    assert_json_text(
        m, "{\"person\":{\"idNumber\":\"11010519491231002X\",\"name\":\"张三\"},"
           "\"insuranceTypes\":[\"INSURANCE_TYPE_ENTERPRISE_PENSION\"],"
           "\"purpose\":\"养老保险待遇领取资格认定\","
           "\"office\":{\"code\":\"1101000001\",\"name\":\"北京市社会保险事业管理中心\"}}");
    free(b);
    protobuf_c_message_free_unpacked(m, NULL);
    json_decref(j);
}

static void test_proto_names_enum_numbers_and_nulls_are_accepted(void **state)
{
    (void)state;
    ProtobufCMessage *m =
        accepted(QUERY_V1, "{\"person\":{\"id_number\":\"11010519491231002X\",\"name\":null},"
                           "\"insurance_types\":[110,\"INSURANCE_TYPE_WORK_INJURY\",99],"
                           "\"purpose\":null,\"office\":null}");
    const Nhub__Insured__V1__StatusQuery *q = (const void *)m;
    assert_string_equal(q->person->id_number, "11010519491231002X");
    assert_string_equal(q->person->name, "");
    assert_int_equal(q->n_insurance_types, 3);
    assert_int_equal(q->insurance_types[0], 110);
    assert_int_equal(q->insurance_types[1], 410);
    assert_int_equal(q->insurance_types[2], 99); /* proto3 enums are open */
    assert_string_equal(q->purpose, "");
    assert_null(q->office);
    /* Defaults left out; a number without a name stays a number. */
    assert_json_text(m,
                     "{\"person\":{\"idNumber\":\"11010519491231002X\"},\"insuranceTypes\":"
                     "[\"INSURANCE_TYPE_ENTERPRISE_PENSION\",\"INSURANCE_TYPE_WORK_INJURY\",99]}");
    protobuf_c_message_free_unpacked(m, NULL);

    m = accepted(QUERY_V1, "{\"person\":null,\"insuranceTypes\":null}");
    assert_null(((const Nhub__Insured__V1__StatusQuery *)(const void *)m)->person);
    assert_json_text(m, "{}");
    protobuf_c_message_free_unpacked(m, NULL);
}

static void test_answer_with_int64_as_strings_and_numbers(void **state)
{
    (void)state;
    ProtobufCMessage *m = accepted(
        ANSWER_V2, "{\"outcome\":\"OUTCOME_FOUND\",\"records\":[{\"insuranceType\":110,"
                   "\"status\":\"INSURED_STATUS_CONTRIBUTING\",\"sinceMonth\":\"201001\","
                   "\"paidMonths\":\"240\",\"periods\":[{\"fromMonth\":\"201001\"}]},"
                   "{\"insuranceType\":\"INSURANCE_TYPE_UNEMPLOYMENT\",\"paidMonths\":1.2e2}],"
                   "\"answeredMs\":\"1700000000123\",\"validUntilMs\":1700000000456}");
    const Nhub__Insured__V2__StatusAnswer *a = (const void *)m;
    assert_int_equal(a->outcome, NHUB__INSURED__V2__OUTCOME__OUTCOME_FOUND);
    assert_int_equal(a->n_records, 2);
    assert_int_equal(a->records[0]->insurance_type, 110);
    assert_int_equal(a->records[0]->status, 1);
    assert_string_equal(a->records[0]->since_month, "201001");
    assert_int_equal(a->records[0]->paid_months, 240);
    assert_int_equal(a->records[0]->n_periods, 1);
    assert_string_equal(a->records[0]->periods[0]->from_month, "201001");
    assert_string_equal(a->records[0]->periods[0]->to_month, "");
    assert_int_equal(a->records[1]->insurance_type, 210);
    assert_int_equal(a->records[1]->paid_months, 120);
    assert_true(a->answered_ms == INT64_C(1700000000123));
    assert_true(a->valid_until_ms == INT64_C(1700000000456));
    assert_json_text(m, "{\"outcome\":\"OUTCOME_FOUND\",\"records\":[{\"insuranceType\":"
                        "\"INSURANCE_TYPE_ENTERPRISE_PENSION\",\"status\":"
                        "\"INSURED_STATUS_CONTRIBUTING\",\"sinceMonth\":\"201001\","
                        "\"paidMonths\":240,\"periods\":[{\"fromMonth\":\"201001\"}]},"
                        "{\"insuranceType\":\"INSURANCE_TYPE_UNEMPLOYMENT\",\"paidMonths\":120}],"
                        "\"answeredMs\":\"1700000000123\",\"validUntilMs\":\"1700000000456\"}");
    protobuf_c_message_free_unpacked(m, NULL);
}

static void test_bytes_accept_standard_url_safe_and_unpadded_base64(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
        size_t len;
    } cases[] = {
        {"+/8=", "+/8=", 2}, {"-_8", "+/8=", 2},  {"-_8=", "+/8=", 2}, {"QQ", "QQ==", 1},
        {"QUI", "QUI=", 2},  {"QUJD", "QUJD", 3}, {"", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64], expected[64];
        snprintf(text, sizeof text, "{\"rawBytes\":\"%s\"}", cases[i].in);
        ProtobufCMessage *m = accepted(KINDS, text);
        const Nhub__Pbjsontest__V1__Kinds *k = (const void *)m;
        assert_int_equal(k->raw_bytes.len, cases[i].len);
        if (cases[i].out)
            snprintf(expected, sizeof expected, "{\"rawBytes\":\"%s\"}", cases[i].out);
        else
            snprintf(expected, sizeof expected, "{}");
        assert_json_text(m, expected);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    ProtobufCMessage *m = accepted(KINDS, "{\"rawBytes\":\"+/8=\"}");
    const Nhub__Pbjsontest__V1__Kinds *k = (const void *)m;
    assert_int_equal(k->raw_bytes.data[0], 0xfb);
    assert_int_equal(k->raw_bytes.data[1], 0xff);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void test_numbers_at_their_limits_and_in_every_form(void **state)
{
    (void)state;
    ProtobufCMessage *m = accepted(
        KINDS,
        "{\"i32\":-2147483648,\"s32\":\"2147483647\",\"sf32\":-1e3,\"u32\":4294967295,"
        "\"f32\":\"4294967295\",\"i64\":\"-9223372036854775808\",\"s64\":9223372036854775807,"
        "\"sf64\":-1.0,\"u64\":\"18446744073709551615\",\"f64\":\"0\",\"d\":\"NaN\","
        "\"f\":\"-Infinity\",\"rDouble\":[\"Infinity\",\"1.5e3\",2,-0.25],"
        "\"rFloat\":[3.5],\"flag\":false,\"colour\":\"COLOUR_DEEP_BLUE\"}");
    const Nhub__Pbjsontest__V1__Kinds *k = (const void *)m;
    assert_int_equal(k->i32, INT32_MIN);
    assert_int_equal(k->s32, INT32_MAX);
    assert_int_equal(k->sf32, -1000);
    assert_int_equal(k->u32, UINT32_MAX);
    assert_int_equal(k->f32, UINT32_MAX);
    assert_true(k->i64 == INT64_MIN);
    assert_true(k->s64 == INT64_MAX);
    assert_true(k->sf64 == -1);
    assert_true(k->u64 == UINT64_MAX);
    assert_true(k->f64 == 0);
    assert_true(isnan(k->d));
    assert_true(isinf(k->f) && k->f < 0);
    assert_int_equal(k->n_r_double, 4);
    assert_true(isinf(k->r_double[0]) && k->r_double[0] > 0);
    assert_true(k->r_double[1] == 1500.0);
    assert_true(k->r_double[2] == 2.0);
    assert_true(k->r_double[3] == -0.25);
    assert_int_equal(k->colour, -3);
    assert_json_text(m, "{\"d\":\"NaN\",\"f\":\"-Infinity\",\"i32\":-2147483648,\"s32\":2147483647,"
                        "\"sf32\":-1000,\"u32\":4294967295,\"f32\":4294967295,"
                        "\"i64\":\"-9223372036854775808\",\"s64\":\"9223372036854775807\","
                        "\"sf64\":\"-1\",\"u64\":\"18446744073709551615\","
                        "\"colour\":\"COLOUR_DEEP_BLUE\","
                        "\"rDouble\":[\"Infinity\",1500.0,2.0,-0.25],\"rFloat\":[3.5]}");
    protobuf_c_message_free_unpacked(m, NULL);
}

static void test_a_oneof_member_set_to_its_default_is_written(void **state)
{
    (void)state;
    ProtobufCMessage *m = accepted(KINDS, "{\"choiceNumber\":0,\"choiceText\":null}");
    const Nhub__Pbjsontest__V1__Kinds *k = (const void *)m;
    assert_int_equal(k->choice_case, NHUB__PBJSONTEST__V1__KINDS__CHOICE_CHOICE_NUMBER);
    assert_json_text(m, "{\"choiceNumber\":0}");
    protobuf_c_message_free_unpacked(m, NULL);
    m = accepted(KINDS, "{\"choiceInner\":{}}");
    assert_json_text(m, "{\"choiceInner\":{}}");
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- refusals ------------------------------------------------------------ */

static void test_wrong_json_types_are_refused_naming_the_path(void **state)
{
    (void)state;
    refused(QUERY_V1, "{\"person\":{\"idNumber\":5}}", "person.idNumber: expected a string");
    refused(QUERY_V1, "{\"person\":[]}", "person: expected an object");
    refused(QUERY_V1, "{\"insuranceTypes\":\"INSURANCE_TYPE_WORK_INJURY\"}",
            "insuranceTypes: expected an array");
    refused(QUERY_V1, "{\"insuranceTypes\":[null]}", "insuranceTypes[0]: null in an array");
    refused(QUERY_V1, "{\"insuranceTypes\":[110,true]}",
            "insuranceTypes[1]: expected a name of nhub.common.v1.InsuranceType");
    refused(&nhub__insured__v2__status_query__descriptor, "{\"includePeriods\":1}",
            "includePeriods: expected true or false");
    refused(KINDS, "{\"d\":true}", "d: expected a number");
    refused(KINDS, "{\"d\":\"inf\"}", "d: expected a number");
    refused(KINDS, "{\"d\":\"1e5x\"}", "d: expected a number");
    refused(KINDS, "{\"rawBytes\":1}", "rawBytes: expected a base64 string");
    refused(KINDS, "{\"i32\":1.5}", "i32: expected an integer");
    refused(KINDS, "{\"i32\":\"\"}", "i32: expected an integer");
    refused(KINDS, "{\"i32\":\"+1\"}", "i32: expected an integer");
    refused(KINDS, "{\"i32\":\" 1\"}", "i32: expected an integer");
    refused(KINDS, "{\"i64\":\"1e3\"}", "i64: expected an integer");
    refused(KINDS, "{\"u64\":[1]}", "u64: expected an integer");
    refused(KINDS, "{\"rInner\":[{\"n\":1},{\"n\":\"x\"}]}", "rInner[1].n: expected an integer");

    /* Four records deep into a registration batch. */
    char text[1024];
    snprintf(text, sizeof text,
             "{\"batchId\":\"b\",\"records\":[%s,%s,%s,{\"person\":{\"idNumber\":%s}}]}",
             "{\"person\":{}}", "{}", "{}", "110105194912310021");
    refused(payload_find("nhub.registration.v1.RegistrationBatch"), text,
            "records[3].person.idNumber: expected a string");
}

static void test_unknown_fields_are_refused_by_name(void **state)
{
    (void)state;
    refused(QUERY_V1, "{\"person\":{\"idNumbr\":\"x\"}}", "person.idNumbr: unknown field");
    refused(QUERY_V1, "{\"IdNumber\":\"x\"}", "IdNumber: unknown field");
    refused(QUERY_V1, "{\"a\\u0001b\":1}", "a?b: unknown field");
    refused(QUERY_V1,
            "{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxyyyy\":1}",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...: unknown field");
    refused(QUERY_V1, "{\"person\":{\"idNumber\":\"x\",\"id_number\":\"y\"}}",
            "person.idNumber: given twice, by its JSON name and its .proto name");
    /* A key holding a NUL is no field's name. */
    json_t *j = json_object();
    assert_int_equal(json_object_setn_new(j, "purpose\0x", 9, json_string("p")), 0);
    char why[256];
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbjson_to_message(QUERY_V1, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "purpose?x: unknown field");
    json_decref(j);
}

static void test_out_of_range_numbers_are_refused(void **state)
{
    (void)state;
    refused(KINDS, "{\"i32\":2147483648}", "i32: out of range for int32");
    refused(KINDS, "{\"i32\":-2147483649}", "i32: out of range for int32");
    refused(KINDS, "{\"s32\":\"2147483648\"}", "s32: out of range for sint32");
    refused(KINDS, "{\"u32\":-1}", "u32: out of range for uint32");
    refused(KINDS, "{\"u32\":4294967296}", "u32: out of range for uint32");
    refused(KINDS, "{\"f32\":\"-1\"}", "f32: out of range for fixed32");
    refused(KINDS, "{\"i64\":\"9223372036854775808\"}", "i64: out of range for int64");
    refused(KINDS, "{\"i64\":\"-9223372036854775809\"}", "i64: out of range for int64");
    refused(KINDS, "{\"i64\":1e19}", "i64: out of range for int64");
    refused(KINDS, "{\"u64\":\"18446744073709551616\"}", "u64: out of range for uint64");
    refused(KINDS, "{\"u64\":\"-1\"}", "u64: out of range for uint64");
    refused(KINDS, "{\"u64\":1e20}", "u64: out of range for uint64");
    refused(KINDS, "{\"f\":1e39}", "f: out of range for float");
    refused(KINDS, "{\"d\":\"1e999\"}", "d: out of range for double");
    refused(KINDS, "{\"colour\":2147483648}", "colour: out of range for an enum (int32)");
    refused(ANSWER_V2, "{\"answeredMs\":\"9223372036854775808\"}",
            "answeredMs: out of range for int64");
    refused(ANSWER_V2, "{\"records\":[{\"paidMonths\":-1}]}",
            "records[0].paidMonths: out of range for uint32");
}

static void test_bad_base64_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "!!!!", "Q", "QQ=", "QQ===", "QR==", "QUJ=", "QQ==QQ==", "QU JD", "QUJD\\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"materials\":[{\"name\":\"n\",\"sha256\":\"%s\"}]}", bad[i]);
        refused(payload_find("nhub.push.v1.Application"), text, "materials[0].sha256: not base64");
    }
    json_t *j = json_pack("{s:s#}", "rawBytes", "QQ\0=", (size_t)4);
    assert_non_null(j);
    char why[256];
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbjson_to_message(KINDS, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "rawBytes: not base64");
    json_decref(j);
}

static void test_unknown_enum_names_are_refused(void **state)
{
    (void)state;
    refused(QUERY_V1, "{\"insuranceTypes\":[110,\"INSURANCE_TYPE_NOPE\"]}",
            "insuranceTypes[1]: unknown name for nhub.common.v1.InsuranceType");
    refused(KINDS, "{\"colour\":\"colour_red\"}",
            "colour: unknown name for nhub.pbjsontest.v1.Colour");
    refused(KINDS, "{\"colour\":\"1\"}", "colour: unknown name for nhub.pbjsontest.v1.Colour");
}

static void test_two_members_of_one_oneof_are_refused(void **state)
{
    (void)state;
    refused(KINDS, "{\"choiceText\":\"a\",\"choiceNumber\":1}",
            "choiceNumber: another field of its oneof is set (choiceText)");
    refused(KINDS, "{\"choiceInner\":{\"label\":\"x\"},\"choice_raw\":\"QQ==\"}",
            "choiceRaw: another field of its oneof is set (choiceInner)");
    refused(KINDS, "{\"inner\":{},\"child\":{\"choiceColour\":1,\"choiceText\":\"\"}}",
            "child.choiceText: another field of its oneof is set (choiceColour)");
    /* A member that fails leaves nothing behind (the ASan build checks). */
    refused(KINDS, "{\"choiceInner\":{\"label\":\"x\",\"n\":\"y\"}}",
            "choiceInner.n: expected an integer");
}

static void test_a_top_level_that_is_not_an_object_is_refused(void **state)
{
    (void)state;
    static const char *const tops[] = {"[]", "[{}]", "\"x\"", "1", "null", "true"};
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        json_t *j = json_loads(tops[i], JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        char why[256];
        ProtobufCMessage *m = (ProtobufCMessage *)1;
        assert_int_equal(pbjson_to_message(QUERY_V1, j, &m, why, sizeof why), NHUB_EINVAL);
        assert_null(m);
        assert_string_equal(why, "the top level is not a JSON object");
        uint8_t *b = (uint8_t *)1;
        size_t n = 1;
        assert_int_equal(pbjson_pack(QUERY_V1, j, &b, &n, why, sizeof why), NHUB_EINVAL);
        assert_null(b);
        assert_int_equal(n, 0);
        json_decref(j);
    }
    char why[256];
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbjson_to_message(QUERY_V1, NULL, &m, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "the top level is not a JSON object");
    assert_int_equal(pbjson_to_message(NULL, NULL, &m, why, sizeof why), NHUB_EINVAL);
    /* No room for a reason is no reason to crash. */
    assert_int_equal(pbjson_to_message(QUERY_V1, NULL, &m, NULL, 0), NHUB_EINVAL);
    char tiny[4];
    assert_int_equal(pbjson_to_message(QUERY_V1, NULL, &m, tiny, sizeof tiny), NHUB_EINVAL);
    assert_string_equal(tiny, "the");
}

/* {"child":{"child":...{}}} with `levels` children below the top. */
static json_t *nested(unsigned levels)
{
    json_t *j = json_pack("{s:s}", "textValue", "bottom");
    for (unsigned i = 0; i < levels; i++)
        j = json_pack("{s:o}", "child", j);
    assert_non_null(j);
    return j;
}

static void test_nesting_deeper_than_the_bound_is_refused(void **state)
{
    (void)state;
    char why[256];
    ProtobufCMessage *m = NULL;
    json_t *j = nested(PBJSON_DEPTH_MAX);
    assert_int_equal(pbjson_to_message(KINDS, j, &m, why, sizeof why), 0);
    json_t *back = pbjson_from_message(m);
    assert_true(json_equal(back, j));
    json_decref(back);

    /* One level more: refused in both directions. */
    Nhub__Pbjsontest__V1__Kinds top = NHUB__PBJSONTEST__V1__KINDS__INIT;
    top.child = (Nhub__Pbjsontest__V1__Kinds *)m;
    assert_null(pbjson_from_message(&top.base));
    size_t n = 0;
    uint8_t *b = pack(&top.base, &n);
    json_t *out = (json_t *)1;
    assert_int_equal(pbjson_unpack(KINDS, b, n, &out, why, sizeof why), NHUB_EINVAL);
    assert_null(out);
    assert_string_equal(why, "child.child.child.child.child.child.child.child.child: nested more "
                             "than 8 deep");
    free(b);
    protobuf_c_message_free_unpacked(m, NULL);
    json_decref(j);

    j = nested(PBJSON_DEPTH_MAX + 1);
    m = (ProtobufCMessage *)1;
    assert_int_equal(pbjson_to_message(KINDS, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_null(m);
    assert_string_equal(why, "child.child.child.child.child.child.child.child.child: nested more "
                             "than 8 deep");
    json_decref(j);
}

static void test_a_string_holding_a_nul_is_refused(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:{s:s#}}", "person", "name", "a\0b", (size_t)3);
    assert_non_null(j);
    char why[256];
    ProtobufCMessage *m = NULL;
    assert_int_equal(pbjson_to_message(QUERY_V1, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_null(m);
    assert_string_equal(why, "person.name: a string holds a NUL");
    json_decref(j);
    j = json_pack("{s:[s,s#]}", "rText", "ok", "\0", (size_t)1);
    assert_int_equal(pbjson_to_message(KINDS, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "rText[1]: a string holds a NUL");
    json_decref(j);
    j = json_pack("{s:s#}", "colour", "COLOUR_RED\0", (size_t)11);
    assert_int_equal(pbjson_to_message(KINDS, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "colour: unknown name for nhub.pbjsontest.v1.Colour");
    json_decref(j);
    j = json_pack("{s:s#}", "d", "1\0", (size_t)2);
    assert_int_equal(pbjson_to_message(KINDS, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "d: expected a number");
    json_decref(j);
    j = json_pack("{s:s#}", "i32", "1\0", (size_t)2);
    assert_int_equal(pbjson_to_message(KINDS, j, &m, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "i32: expected an integer");
    json_decref(j);
}

static void test_map_fields_are_refused_clearly(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &nhub__pbjsontest__v1__with_map__descriptor;
    refused(d, "{\"name\":\"x\",\"counts\":{\"a\":1}}", "counts: map fields are not supported");
    refused(d, "{\"counts\":null}", "counts: map fields are not supported");
    ProtobufCMessage *m = accepted(d, "{\"name\":\"x\"}");
    assert_json_text(m, "{\"name\":\"x\"}");

    /* With an entry: no JSON, and unpack says why. */
    Nhub__Pbjsontest__V1__WithMap *w = (void *)m;
    Nhub__Pbjsontest__V1__WithMap__CountsEntry e =
        NHUB__PBJSONTEST__V1__WITH_MAP__COUNTS_ENTRY__INIT;
    Nhub__Pbjsontest__V1__WithMap__CountsEntry *ep = &e;
    e.value = 1;
    w->counts = &ep;
    w->n_counts = 1;
    assert_null(pbjson_from_message(m));
    size_t n = 0;
    uint8_t *b = pack(m, &n);
    w->counts = NULL;
    w->n_counts = 0;
    char why[256];
    json_t *out = NULL;
    assert_int_equal(pbjson_unpack(d, b, n, &out, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "counts: map fields are not supported");
    free(b);
    protobuf_c_message_free_unpacked(m, NULL);

    /* A repeated message that only looks like an entry is not a map. */
    m = accepted(KINDS, "{\"rInner\":[{\"label\":\"a\"}]}");
    assert_json_text(m, "{\"rInner\":[{\"label\":\"a\"}]}");
    protobuf_c_message_free_unpacked(m, NULL);
}

static void test_unpack_refuses_what_json_cannot_carry(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *fb = payload_find("nhub.push.v1.Feedback");
    char why[256];
    json_t *out = NULL;
    static const uint8_t garbage[] = {0xff, 0xff, 0xff};
    assert_int_equal(pbjson_unpack(fb, garbage, sizeof garbage, &out, why, sizeof why),
                     NHUB_EINVAL);
    assert_null(out);
    assert_string_equal(why, "does not decode as nhub.push.v1.Feedback");
    /* handled_by (3) holding field 9, which Office does not have. */
    static const uint8_t unknown[] = {0x1a, 0x02, 0x48, 0x01};
    assert_int_equal(pbjson_unpack(fb, unknown, sizeof unknown, &out, why, sizeof why),
                     NHUB_EINVAL);
    assert_string_equal(why, "handledBy: field number 9 is not in nhub.common.v1.Office");
    static const uint8_t top_unknown[] = {0x78, 0x01};
    assert_int_equal(pbjson_unpack(fb, top_unknown, sizeof top_unknown, &out, why, sizeof why),
                     NHUB_EINVAL);
    assert_string_equal(why, "field number 15 is not in nhub.push.v1.Feedback");
    /* application_id (2) = one byte 0xff. */
    static const uint8_t not_utf8[] = {0x12, 0x01, 0xff};
    assert_int_equal(pbjson_unpack(fb, not_utf8, sizeof not_utf8, &out, why, sizeof why),
                     NHUB_EINVAL);
    assert_string_equal(why, "applicationId: a string is not UTF-8");
    static const uint8_t nul[] = {0x12, 0x01, 0x00};
    assert_int_equal(pbjson_unpack(fb, nul, sizeof nul, &out, why, sizeof why), NHUB_EINVAL);
    assert_string_equal(why, "does not decode as nhub.push.v1.Feedback");
    /* Nothing at all is the empty message. */
    assert_int_equal(pbjson_unpack(fb, NULL, 0, &out, why, sizeof why), 0);
    assert_int_equal(json_object_size(out), 0);
    json_decref(out);
}

/* ---- out of memory ------------------------------------------------------- */

/* Fail the n-th allocation for n = 0, 1, ... until the call succeeds; each failure must be clean.
 */
static void test_every_allocation_failure_is_reported_and_leaks_nothing(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *types[] = {KINDS, ANSWER_V2};
    for (size_t t = 0; t < 2; t++) {
        ProtobufCMessage *m0 = fill_message(types[t], 0, 0);
        json_t *j = pbjson_from_message(m0);
        assert_non_null(j);
        size_t blen = 0;
        uint8_t *bytes = pack(m0, &blen);
        char why[256];
        long n;

        for (n = 0;; n++) {
            ProtobufCMessage *m = (ProtobufCMessage *)1;
            mallocs_left = n;
            int rc = pbjson_to_message(types[t], j, &m, why, sizeof why);
            mallocs_left = -1;
            if (rc == 0) {
                protobuf_c_message_free_unpacked(m, NULL);
                break;
            }
            assert_int_equal(rc, NHUB_ENOMEM);
            assert_null(m);
        }
        assert_true(n > 10);

        for (n = 0;; n++) {
            mallocs_left = n;
            json_t *out = pbjson_from_message(m0);
            mallocs_left = -1;
            if (out) {
                assert_true(json_equal(out, j));
                json_decref(out);
                break;
            }
        }
        assert_true(n > 10);

        for (n = 0;; n++) {
            uint8_t *b = NULL;
            size_t len = 0;
            mallocs_left = n;
            int rc = pbjson_pack(types[t], j, &b, &len, why, sizeof why);
            mallocs_left = -1;
            if (rc == 0) {
                assert_memory_equal(b, bytes, blen);
                free(b);
                break;
            }
            assert_int_equal(rc, NHUB_ENOMEM);
            assert_null(b);
        }

        /* A decode that runs out of memory reads as bytes that do not decode. */
        for (n = 0;; n++) {
            json_t *out = (json_t *)1;
            mallocs_left = n;
            int rc = pbjson_unpack(types[t], bytes, blen, &out, why, sizeof why);
            mallocs_left = -1;
            if (rc == 0) {
                assert_true(json_equal(out, j));
                json_decref(out);
                break;
            }
            assert_true(rc == NHUB_ENOMEM || rc == NHUB_EINVAL);
            assert_null(out);
        }

        free(bytes);
        json_decref(j);
        protobuf_c_message_free_unpacked(m0, NULL);
    }
}

int main(void)
{
    json_set_alloc_funcs(json_malloc, free);
    /* The payload registry is built once, on first use: not under a failing malloc. */
    (void)payload_type_count();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_registry_type_round_trips_with_every_field_set),
        cmocka_unit_test(test_every_field_kind_and_each_oneof_member_round_trips),
        cmocka_unit_test(test_readme_example_is_the_txtpb_example_and_passes_the_rules),
        cmocka_unit_test(test_proto_names_enum_numbers_and_nulls_are_accepted),
        cmocka_unit_test(test_answer_with_int64_as_strings_and_numbers),
        cmocka_unit_test(test_bytes_accept_standard_url_safe_and_unpadded_base64),
        cmocka_unit_test(test_numbers_at_their_limits_and_in_every_form),
        cmocka_unit_test(test_a_oneof_member_set_to_its_default_is_written),
        cmocka_unit_test(test_wrong_json_types_are_refused_naming_the_path),
        cmocka_unit_test(test_unknown_fields_are_refused_by_name),
        cmocka_unit_test(test_out_of_range_numbers_are_refused),
        cmocka_unit_test(test_bad_base64_is_refused),
        cmocka_unit_test(test_unknown_enum_names_are_refused),
        cmocka_unit_test(test_two_members_of_one_oneof_are_refused),
        cmocka_unit_test(test_a_top_level_that_is_not_an_object_is_refused),
        cmocka_unit_test(test_nesting_deeper_than_the_bound_is_refused),
        cmocka_unit_test(test_a_string_holding_a_nul_is_refused),
        cmocka_unit_test(test_map_fields_are_refused_clearly),
        cmocka_unit_test(test_unpack_refuses_what_json_cannot_carry),
        cmocka_unit_test(test_every_allocation_failure_is_reported_and_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
