/*
 * test_payload.c: the payload registry, bounded decoding and the field rules
 * (proto/payload.h), with real payloads of every schema type
 * (test/harness/samples.c) and one broken rule at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nhub_err.h"
#include "payload.h"
#include "samples.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_registry_holds_every_schema_type_sorted(void **state)
{
    (void)state;
    assert_true(payload_type_count() >= sample_type_count);
    for (size_t i = 1; i < payload_type_count(); i++)
        assert_true(strcmp(payload_type_at(i - 1)->name, payload_type_at(i)->name) < 0);
    for (size_t i = 0; i < sample_type_count; i++)
        assert_non_null(payload_find(sample_types[i]));
    assert_non_null(payload_find("nhub.common.v1.Person"));
    assert_null(payload_find("nhub.insured.v3.StatusQuery"));
    assert_null(payload_find(NULL));
    assert_null(payload_type_at(payload_type_count()));
}

static void test_self_check_every_rule_names_a_field_and_nothing_recurses(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(payload_self_check(why, sizeof why), 0);
    assert_string_equal(why, "");
}

static void test_type_versions(void **state)
{
    (void)state;
    unsigned v = 0;
    size_t prefix = 0;
    assert_int_equal(payload_type_version("nhub.insured.v2.StatusQuery", &v, &prefix), 0);
    assert_int_equal(v, 2);
    assert_int_equal(prefix, strlen("nhub.insured."));
    assert_int_equal(payload_type_version("nhub.push.v12.Feedback", &v, NULL), 0);
    assert_int_equal(v, 12);
    assert_int_equal(payload_type_version("nhub.push.Feedback", &v, NULL), NHUB_EINVAL);
    assert_int_equal(payload_type_version("nhub.push.v0.Feedback", &v, NULL), NHUB_EINVAL);
    assert_int_equal(payload_type_version("nhub.push.vx.Feedback", &v, NULL), NHUB_EINVAL);
    assert_int_equal(payload_type_version("v1.Feedback", &v, NULL), NHUB_EINVAL);
    assert_int_equal(payload_type_version("Feedback", &v, NULL), NHUB_EINVAL);
}

static void test_every_sample_passes_and_decodes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sample_type_count; i++) {
        size_t len = 0;
        uint8_t *b = sample_bytes(sample_types[i], &len);
        assert_non_null(b);
        char why[256];
        ProtobufCMessage *m = NULL;
        payload_verdict_t v = payload_check(sample_types[i], b, len, &m, why, sizeof why);
        if (v != PAYLOAD_OK)
            fprintf(stderr, "%s: %s\n", sample_types[i], why);
        assert_int_equal(v, PAYLOAD_OK);
        assert_non_null(m);
        assert_string_equal(m->descriptor->name, sample_types[i]);
        payload_free(&m);
        assert_null(m);
        free(b);
    }
}

static void test_unknown_type_and_unknown_version_named(void **state)
{
    (void)state;
    char why[256];
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    assert_int_equal(payload_check("nhub.insured.v9.StatusQuery", "", 0, &m, why, sizeof why),
                     PAYLOAD_UNKNOWN);
    assert_null(m);
    assert_string_equal(why, "payload: unknown type nhub.insured.v9.StatusQuery "
                             "(package nhub.insured has v1, v2)");
    assert_int_equal(payload_check("org.example.Thing", "", 0, NULL, why, sizeof why),
                     PAYLOAD_UNKNOWN);
    assert_string_equal(why, "payload: unknown type org.example.Thing");
    assert_int_equal(payload_check(NULL, "", 0, NULL, why, sizeof why), PAYLOAD_UNKNOWN);
}

static void test_bytes_that_do_not_decode_are_malformed(void **state)
{
    (void)state;
    char why[256];
    size_t len;
    uint8_t *b = sample_bytes("nhub.push.v1.Application", &len);
    /* Every truncation either decodes to a shorter message or is refused; none crashes. */
    for (size_t n = 0; n < len; n++)
        (void)payload_check("nhub.push.v1.Application", b, n, NULL, why, sizeof why);
    assert_int_equal(payload_check("nhub.push.v1.Application", b, len - 1, NULL, why, sizeof why),
                     PAYLOAD_MALFORMED);
    assert_string_equal(why, "payload: does not decode as nhub.push.v1.Application");
    free(b);
    /* A length prefix pointing past the end. */
    const uint8_t bad[] = {0x0a, 0x7f, 'x'};
    assert_int_equal(payload_check("nhub.push.v1.Application", bad, sizeof bad, NULL, why,
                                   sizeof why),
                     PAYLOAD_MALFORMED);
}

static void test_v2_feedback_is_not_a_v1_feedback(void **state)
{
    (void)state;
    char why[256];
    size_t len;
    uint8_t *b = sample_bytes("nhub.push.v2.Feedback", &len);
    /* handled_ms is a varint where v1 has a string: not a v1 Feedback. */
    assert_int_not_equal(payload_check("nhub.push.v1.Feedback", b, len, NULL, why, sizeof why),
                         PAYLOAD_OK);
    free(b);
}

/* Check `m` as its own type; return the verdict and leave the text in `why`. */
static payload_verdict_t check_msg(ProtobufCMessage *m, char *why, size_t cap)
{
    size_t len;
    uint8_t *b = sample_pack(m, &len);
    payload_verdict_t v = payload_check(m->descriptor->name, b, len, NULL, why, cap);
    free(b);
    return v;
}

typedef struct breakage {
    const char *type;
    const char *path;
    const char *value; /* NULL: clear the field */
    const char *why;
} breakage_t;

static const breakage_t BREAKAGES[] = {
    {"nhub.insured.v1.StatusQuery", "person.id_number", "110105194912310021",
     "payload: nhub.insured.v1.StatusQuery person.id_number: wrong check digit"},
    {"nhub.insured.v1.StatusQuery", "person.id_number", "11010519491231002",
     "payload: nhub.insured.v1.StatusQuery person.id_number: 17 characters, an ID number has 18"},
    {"nhub.insured.v1.StatusQuery", "person.id_number", "11010519491331002X",
     "payload: nhub.insured.v1.StatusQuery person.id_number: no such birth date"},
    {"nhub.insured.v1.StatusQuery", "person.id_number", "1101051949123100x2",
     "payload: nhub.insured.v1.StatusQuery person.id_number: 17 digits and a check digit 0-9 or "
     "X expected"},
    {"nhub.insured.v1.StatusQuery", "person.id_number", NULL,
     "payload: nhub.insured.v1.StatusQuery person.id_number: required, missing"},
    {"nhub.insured.v1.StatusQuery", "person.name", NULL,
     "payload: nhub.insured.v1.StatusQuery person.name: required, missing"},
    {"nhub.insured.v1.StatusQuery", "person", NULL,
     "payload: nhub.insured.v1.StatusQuery person: required, missing"},
    {"nhub.insured.v1.StatusQuery", "office.code", "44010",
     "payload: nhub.insured.v1.StatusQuery office.code: six digits of a region then up to ten "
     "of [0-9A-Z] expected"},
    {"nhub.insured.v1.StatusQuery", "insurance_types[0]", "999",
     "payload: nhub.insured.v1.StatusQuery insurance_types[0]: value 999 is not one of "
     "nhub.common.v1.InsuranceType"},
    {"nhub.insured.v1.StatusQuery", "purpose", "a\x01z",
     "payload: nhub.insured.v1.StatusQuery purpose: not UTF-8 text without control characters"},
    {"nhub.insured.v1.StatusQuery", "purpose", "\xe5\xbe",
     "payload: nhub.insured.v1.StatusQuery purpose: not UTF-8 text without control characters"},
    {"nhub.insured.v1.StatusAnswer", "records[0].since_month", "200813",
     "payload: nhub.insured.v1.StatusAnswer records[0].since_month: not a month YYYYMM"},
    {"nhub.insured.v1.StatusAnswer", "records[0].paid_months", "1201",
     "payload: nhub.insured.v1.StatusAnswer records[0].paid_months: more than 1200"},
    {"nhub.insured.v2.StatusAnswer", "records[0].periods[0].to_month", "200806",
     "payload: nhub.insured.v2.StatusAnswer records[0].periods[0].to_month: before from_month"},
    {"nhub.transfer.v1.TransferCheckAnswer", "account_balance_fen", "-1",
     "payload: nhub.transfer.v1.TransferCheckAnswer account_balance_fen: negative"},
    {"nhub.transfer.v1.TransferFeedback", "stage", "STAGE_REFUSED",
     "payload: nhub.transfer.v1.TransferFeedback refusal_reason: required when stage is 4, "
     "missing"},
    {"nhub.commitment.v1.CommitmentAnswer", "evidence_ref", NULL,
     "payload: nhub.commitment.v1.CommitmentAnswer evidence_ref: required when finding is 1, "
     "missing"},
    {"nhub.push.v1.Application", "materials[0].sha256", "0102",
     "payload: nhub.push.v1.Application materials[0].sha256: 2 bytes, must be empty or 32"},
    {"nhub.push.v1.Feedback", "handled_time", "20260230093000",
     "payload: nhub.push.v1.Feedback handled_time: not a time YYYYMMDDhhmmss"},
    {"nhub.push.v2.Feedback", "handled_ms", NULL,
     "payload: nhub.push.v2.Feedback handled_ms: required, missing"},
    {"nhub.push.v2.Feedback", "handled_ms", "7258089600000",
     "payload: nhub.push.v2.Feedback handled_ms: out of range -2209017600000..7258089599999"},
    {"nhub.registration.v1.RegistrationBatch", "records", NULL,
     "payload: nhub.registration.v1.RegistrationBatch records: 0 entries, must be 1 to 10000"},
    {"nhub.credit.v1.CreditNotice", "entries[0].person.name",
     "一二三四五六七八九十一二三四五六七八九十一",
     "payload: nhub.credit.v1.CreditNotice entries[0].person.name: 63 bytes, at most 60"},
};

static void test_each_broken_rule_is_invalid_and_names_the_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BREAKAGES / sizeof BREAKAGES[0]; i++) {
        const breakage_t *b = &BREAKAGES[i];
        ProtobufCMessage *m = sample_new(b->type);
        assert_non_null(m);
        int rc = b->value ? sample_set(m, b->path, b->value) : sample_clear(m, b->path);
        assert_int_equal(rc, 0);
        char why[256];
        payload_verdict_t v = check_msg(m, why, sizeof why);
        if (v != PAYLOAD_INVALID || strcmp(why, b->why) != 0)
            fprintf(stderr, "case %zu: verdict %d: %s\n", i, (int)v, why);
        assert_int_equal(v, PAYLOAD_INVALID);
        assert_string_equal(why, b->why);
        /* The text never carries the value. */
        if (b->value && strlen(b->value) > 4)
            assert_null(strstr(why, b->value));
        sample_free(&m);
    }
}

static void test_a_field_the_type_does_not_have_is_invalid(void **state)
{
    (void)state;
    /* A v2 record (with periods, field 6) sent as v1. */
    size_t len;
    uint8_t *b = sample_bytes("nhub.insured.v2.StatusAnswer", &len);
    char why[256];
    assert_int_equal(payload_check("nhub.insured.v1.StatusAnswer", b, len, NULL, why, sizeof why),
                     PAYLOAD_INVALID);
    assert_string_equal(why, "payload: nhub.insured.v1.StatusAnswer records[0]: field number 6 "
                             "is not in nhub.insured.v1.InsuranceRecord");
    free(b);
}

static void test_nul_inside_a_nested_string_is_malformed(void **state)
{
    (void)state;
    ProtobufCMessage *m = sample_new("nhub.insured.v1.StatusQuery");
    sample_set(m, "person.name", "AB");
    size_t len;
    uint8_t *b = sample_pack(m, &len);
    uint8_t *p = memmem(b, len, "AB", 2);
    assert_non_null(p);
    p[1] = 0;
    char why[256];
    assert_int_equal(payload_check("nhub.insured.v1.StatusQuery", b, len, NULL, why, sizeof why),
                     PAYLOAD_MALFORMED);
    free(b);
    sample_free(&m);
}

static void test_id_number_check_digit(void **state)
{
    (void)state;
    assert_int_equal(payload_id_check_char("11010519491231002"), 'X');
    assert_true(payload_id_number_valid("11010519491231002X"));
    assert_false(payload_id_number_valid("11010519491231002x"));
    assert_false(payload_id_number_valid("110105194902290013")); /* 1949 is no leap year */
    char id[19] = "44030420000229001";
    id[17] = payload_id_check_char(id);
    id[18] = '\0';
    assert_true(payload_id_number_valid(id)); /* 2000 is */
    assert_int_equal(payload_id_check_char("1101051949123100A"), 0);
    assert_false(payload_id_number_valid(NULL));
}

static void test_months(void **state)
{
    (void)state;
    assert_true(payload_month_valid("202612"));
    assert_true(payload_month_valid("190001"));
    assert_false(payload_month_valid("202613"));
    assert_false(payload_month_valid("202600"));
    assert_false(payload_month_valid("18991"));
    assert_false(payload_month_valid("189912"));
    assert_false(payload_month_valid("2026-1"));
}

static void test_beijing_time_round_trips(void **state)
{
    (void)state;
    int64_t ms = 0;
    /* 2026-12-06 09:30:00 in Beijing is 01:30:00 UTC. */
    assert_int_equal(payload_beijing_parse("20261206093000", &ms), 0);
    assert_int_equal(ms, 1796520600000LL);
    char out[15];
    payload_beijing_format(1796520600999LL, out);
    assert_string_equal(out, "20261206093000");
    payload_beijing_format(0, out);
    assert_string_equal(out, "19700101080000");
    assert_int_equal(payload_beijing_parse("19700101080000", &ms), 0);
    assert_int_equal(ms, 0);
    payload_beijing_format(-1, out);
    assert_string_equal(out, "19700101075959");
    assert_int_equal(payload_beijing_parse("20261206246000", &ms), NHUB_EINVAL);
    assert_int_equal(payload_beijing_parse("2026120609300", &ms), NHUB_EINVAL);
    assert_int_equal(payload_beijing_parse("19000101000000", &ms), 0);
    assert_int_equal(ms, PAYLOAD_TIME_MIN_MS);
    assert_int_equal(payload_beijing_parse("21991231235959", &ms), 0);
    assert_int_equal(ms, PAYLOAD_TIME_MAX_MS - 999);
    assert_int_equal(payload_beijing_parse("20240229000000", &ms), 0);
    assert_int_equal(payload_beijing_parse("20230229000000", &ms), NHUB_EINVAL);
}

static void test_stage_field_of_feedbacks(void **state)
{
    (void)state;
    const char *feedbacks[] = {"nhub.push.v1.Feedback", "nhub.push.v2.Feedback",
                               "nhub.transfer.v1.TransferFeedback",
                               "nhub.registration.v1.BatchFeedback"};
    for (size_t i = 0; i < 4; i++) {
        ProtobufCMessage *m = sample_new(feedbacks[i]);
        assert_int_equal(payload_enum_field(m, 1), 3); /* STAGE_DONE */
        sample_free(&m);
    }
    ProtobufCMessage *q = sample_new("nhub.push.v1.Application");
    assert_int_equal(payload_enum_field(q, 1), -1); /* application_id is a string */
    assert_int_equal(payload_enum_field(q, 99), -1);
    assert_int_equal(payload_enum_field(NULL, 1), -1);
    sample_free(&q);
}

static void test_a_batch_of_ten_thousand_records_decodes_within_bounds(void **state)
{
    (void)state;
    ProtobufCMessage *m = sample_new("nhub.registration.v1.RegistrationBatch");
    for (int i = 1; i < 10000; i++) {
        char path[64];
        sample_set(m, "records[+].status", "REGISTRATION_STATUS_INSURED");
        snprintf(path, sizeof path, "records[%d].person.id_number", i);
        sample_set(m, path, "11010519491231002X");
        snprintf(path, sizeof path, "records[%d].person.name", i);
        sample_set(m, path, "王五");
    }
    size_t len;
    uint8_t *b = sample_pack(m, &len);
    char why[256];
    assert_int_equal(payload_check(m->descriptor->name, b, len, NULL, why, sizeof why),
                     PAYLOAD_OK);
    sample_set(m, "records[+].status", "REGISTRATION_STATUS_INSURED");
    sample_set(m, "records[10000].person.id_number", "11010519491231002X");
    sample_set(m, "records[10000].person.name", "王五");
    assert_int_equal(check_msg(m, why, sizeof why), PAYLOAD_INVALID);
    assert_string_equal(why, "payload: nhub.registration.v1.RegistrationBatch records: 10001 "
                             "entries, must be 1 to 10000");
    free(b);
    sample_free(&m);
}

/* The text-format examples of schemas/examples/, encoded by protoc-c as README shows. */
static void test_schema_examples_encode_and_pass(void **state)
{
    (void)state;
    static const char *const ex[][3] = {
        {"insured-query", "insured/v1/insured.proto", "nhub.insured.v1.StatusQuery"},
        {"insured-answer", "insured/v1/insured.proto", "nhub.insured.v1.StatusAnswer"},
        {"push-application", "push/v1/push.proto", "nhub.push.v1.Application"},
        {"push-feedback", "push/v1/push.proto", "nhub.push.v1.Feedback"},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "protoc-c -Ischemas --encode=%s schemas/nhub/%s <schemas/examples/%s.txtpb",
                 ex[i][2], ex[i][1], ex[i][0]);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        uint8_t buf[4096];
        size_t len = fread(buf, 1, sizeof buf, f);
        assert_int_equal(pclose(f), 0);
        assert_true(len > 0);
        char why[256];
        payload_verdict_t v = payload_check(ex[i][2], buf, len, NULL, why, sizeof why);
        if (v != PAYLOAD_OK)
            fprintf(stderr, "%s: %s\n", ex[i][0], why);
        assert_int_equal(v, PAYLOAD_OK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_holds_every_schema_type_sorted),
        cmocka_unit_test(test_self_check_every_rule_names_a_field_and_nothing_recurses),
        cmocka_unit_test(test_type_versions),
        cmocka_unit_test(test_every_sample_passes_and_decodes),
        cmocka_unit_test(test_unknown_type_and_unknown_version_named),
        cmocka_unit_test(test_bytes_that_do_not_decode_are_malformed),
        cmocka_unit_test(test_v2_feedback_is_not_a_v1_feedback),
        cmocka_unit_test(test_each_broken_rule_is_invalid_and_names_the_field),
        cmocka_unit_test(test_a_field_the_type_does_not_have_is_invalid),
        cmocka_unit_test(test_nul_inside_a_nested_string_is_malformed),
        cmocka_unit_test(test_id_number_check_digit),
        cmocka_unit_test(test_months),
        cmocka_unit_test(test_beijing_time_round_trips),
        cmocka_unit_test(test_stage_field_of_feedbacks),
        cmocka_unit_test(test_a_batch_of_ten_thousand_records_decodes_within_bounds),
        cmocka_unit_test(test_schema_examples_encode_and_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
