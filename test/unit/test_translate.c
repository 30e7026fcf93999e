/*
 * test_translate.c: translations between payload versions (broker/translate.h)
 * with real payloads: the result passes the hub's check as its new type,
 * keeps what both versions have, and says when something was dropped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nhub/insured/v1/insured.pb-c.h"
#include "nhub/push/v1/push.pb-c.h"
#include "nhub/push/v2/push.pb-c.h"
#include "nhub_err.h"
#include "payload.h"
#include "samples.h"
#include "translate.h"

#include <stdlib.h>
#include <string.h>

static void test_target_is_the_version_the_receiver_accepts(void **state)
{
    (void)state;
    char *v1[] = {"nhub.insured.v1.*"};
    char *v2[] = {"nhub.insured.v2.*"};
    char *push1[] = {"nhub.push.v1.Feedback", "nhub.insured.v2.*"};
    char *other[] = {"nhub.credit.v1.*"};
    assert_string_equal(translate_target("nhub.insured.v2.StatusAnswer", v1, 1),
                        "nhub.insured.v1.StatusAnswer");
    assert_string_equal(translate_target("nhub.insured.v1.StatusQuery", v2, 1),
                        "nhub.insured.v2.StatusQuery");
    assert_null(translate_target("nhub.insured.v2.StatusAnswer", v2, 1)); /* accepted as is */
    assert_null(translate_target("nhub.insured.v2.StatusAnswer", NULL, 0)); /* accepts all */
    assert_string_equal(translate_target("nhub.push.v2.Feedback", push1, 2),
                        "nhub.push.v1.Feedback");
    assert_null(translate_target("nhub.push.v2.Application", push1, 2)); /* not accepted */
    assert_null(translate_target("nhub.insured.v2.StatusAnswer", other, 1));
    assert_null(translate_target("nhub.transfer.v1.TransferCheck", other, 1));
    assert_null(translate_target(NULL, v1, 1));
}

/* Translate the sample of `from` into `to`; the result must pass as `to`. */
static uint8_t *translated(const char *from, const char *to, const ProtobufCMessage *src,
                           size_t *len, bool *lossy)
{
    size_t in_len;
    uint8_t *in = sample_pack(src, &in_len);
    uint8_t *out = NULL;
    assert_int_equal(translate_payload(from, to, in, in_len, &out, len, lossy), 0);
    free(in);
    char why[256];
    payload_verdict_t v = payload_check(to, out, *len, NULL, why, sizeof why);
    if (v != PAYLOAD_OK)
        print_error("%s\n", why);
    assert_int_equal(v, PAYLOAD_OK);
    return out;
}

static void test_compatible_versions_translate_both_ways(void **state)
{
    (void)state;
    ProtobufCMessage *a2 = sample_new("nhub.insured.v2.StatusAnswer");
    size_t len;
    bool lossy;
    uint8_t *down = translated("nhub.insured.v2.StatusAnswer", "nhub.insured.v1.StatusAnswer",
                               a2, &len, &lossy);
    assert_true(lossy); /* periods and last_paid_month */
    ProtobufCMessage *m = NULL;
    assert_int_equal(payload_decode(payload_find("nhub.insured.v1.StatusAnswer"), down, len, &m),
                     0);
    const Nhub__Insured__V1__StatusAnswer *v1 = (const Nhub__Insured__V1__StatusAnswer *)m;
    assert_int_equal(m->n_unknown_fields, 0);
    assert_int_equal(v1->n_records, 1);
    assert_int_equal(v1->records[0]->base.n_unknown_fields, 0);
    assert_int_equal(v1->records[0]->paid_months, 182);
    assert_string_equal(v1->records[0]->since_month, "200807");
    assert_string_equal(v1->office->code, "1101000001");
    payload_free(&m);

    /* Up again: nothing lost, and v1 -> v2 -> v1 gives v1's bytes back. */
    ProtobufCMessage *a1 = sample_new("nhub.insured.v1.StatusAnswer");
    uint8_t *up = translated("nhub.insured.v1.StatusAnswer", "nhub.insured.v2.StatusAnswer", a1,
                             &len, &lossy);
    assert_false(lossy);
    uint8_t *back = NULL;
    size_t back_len;
    assert_int_equal(translate_payload("nhub.insured.v2.StatusAnswer",
                                       "nhub.insured.v1.StatusAnswer", up, len, &back, &back_len,
                                       &lossy),
                     0);
    assert_false(lossy);
    size_t orig_len;
    uint8_t *orig = sample_pack(a1, &orig_len);
    assert_int_equal(back_len, orig_len);
    assert_memory_equal(back, orig, orig_len);
    free(orig);
    free(back);
    free(up);
    free(down);
    sample_free(&a1);
    sample_free(&a2);
}

static void test_push_feedback_time_converts_between_text_and_ms(void **state)
{
    (void)state;
    size_t len;
    bool lossy;
    ProtobufCMessage *f1 = sample_new("nhub.push.v1.Feedback"); /* 20261206093000 */
    uint8_t *up = translated("nhub.push.v1.Feedback", "nhub.push.v2.Feedback", f1, &len, &lossy);
    assert_false(lossy);
    ProtobufCMessage *m = NULL;
    assert_int_equal(payload_decode(&nhub__push__v2__feedback__descriptor, up, len, &m), 0);
    const Nhub__Push__V2__Feedback *v2 = (const Nhub__Push__V2__Feedback *)m;
    assert_int_equal(v2->handled_ms, 1796520600000LL);
    assert_int_equal(v2->stage, NHUB__COMMON__V1__STAGE__STAGE_DONE);
    assert_string_equal(v2->application_id, "SL4401202612050007");
    assert_string_equal(v2->handled_by->code, "1101000001");
    assert_string_equal(v2->result, "准予办理");
    payload_free(&m);
    free(up);

    ProtobufCMessage *f2 = sample_new("nhub.push.v2.Feedback"); /* with handler_name */
    uint8_t *down = translated("nhub.push.v2.Feedback", "nhub.push.v1.Feedback", f2, &len,
                               &lossy);
    assert_true(lossy);
    assert_int_equal(payload_decode(&nhub__push__v1__feedback__descriptor, down, len, &m), 0);
    assert_string_equal(((const Nhub__Push__V1__Feedback *)m)->handled_time, "20261206093000");
    payload_free(&m);
    free(down);
    /* Whole seconds and no handler name: nothing is lost. */
    sample_clear(f2, "handler_name");
    down = translated("nhub.push.v2.Feedback", "nhub.push.v1.Feedback", f2, &len, &lossy);
    assert_false(lossy);
    free(down);
    sample_set(f2, "handled_ms", "1796520600123");
    down = translated("nhub.push.v2.Feedback", "nhub.push.v1.Feedback", f2, &len, &lossy);
    assert_true(lossy);
    free(down);
    /* Application is the same in both versions. */
    ProtobufCMessage *ap = sample_new("nhub.push.v2.Application");
    down = translated("nhub.push.v2.Application", "nhub.push.v1.Application", ap, &len, &lossy);
    assert_false(lossy);
    free(down);
    sample_free(&ap);
    sample_free(&f1);
    sample_free(&f2);
}

static void test_pairs_not_registered_are_not_translated(void **state)
{
    (void)state;
    uint8_t *out = (uint8_t *)1;
    size_t len;
    bool lossy;
    assert_int_equal(translate_payload("nhub.transfer.v1.TransferCheck",
                                       "nhub.transfer.v2.TransferCheck", "", 0, &out, &len,
                                       &lossy),
                     NHUB_ENOTFOUND);
    assert_null(out);
    assert_int_equal(translate_payload("nhub.insured.v1.StatusQuery",
                                       "nhub.insured.v2.StatusAnswer", "", 0, &out, &len, &lossy),
                     NHUB_ENOTFOUND);
    assert_int_equal(translate_payload("nhub.insured.v1.StatusQuery",
                                       "nhub.insured.v1.StatusQuery", "", 0, &out, &len, &lossy),
                     NHUB_ENOTFOUND);
    assert_int_equal(translate_payload("nhub.insured.v1.StatusQuery", "nhub.push.v2.StatusQuery",
                                       "", 0, &out, &len, &lossy),
                     NHUB_ENOTFOUND);
    const uint8_t junk[] = {0x0a, 0x7f, 'x'};
    assert_int_equal(translate_payload("nhub.insured.v1.StatusQuery",
                                       "nhub.insured.v2.StatusQuery", junk, sizeof junk, &out,
                                       &len, &lossy),
                     NHUB_EMALFORMED);
    assert_int_equal(translate_payload("nhub.push.v1.Feedback", "nhub.push.v2.Feedback", junk,
                                       sizeof junk, &out, &len, &lossy),
                     NHUB_EMALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_is_the_version_the_receiver_accepts),
        cmocka_unit_test(test_compatible_versions_translate_both_ways),
        cmocka_unit_test(test_push_feedback_time_converts_between_text_and_ms),
        cmocka_unit_test(test_pairs_not_registered_are_not_translated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
