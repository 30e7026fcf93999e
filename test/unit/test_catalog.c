/*
 * test_catalog.c: the service-item catalogue (broker/catalog.h).
 *
 * Loads the shipped schemas/catalog.yaml and test/data/catalog-test.yaml (run
 * from the repository root), checks every rule of catalog_check() both ways
 * against a small catalogue, with the exact refusal text, and loads short
 * texts that break one file rule each, checking the FILE:LINE:COLUMN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "catalog.h"
#include "payload.h"
#include "nhub_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRCAP 512
#define WHYCAP 256

#define MINUTE_MS INT64_C(60000)
#define DAY_MS (INT64_C(24) * 60 * MINUTE_MS)

#define HEAD "version: 1\nitems:\n"

/*
 * A catalogue with explicit lists, so each rule can be met and broken:
 *   SI-VERIFY-001  request/response  110000, 440000 -> 320000, 650000
 *   SI-PUSH-001    push/feedback     every region -> 440000
 *   SI-NOTICE-001  notice            110000 -> 320000, 440000
 *   SI-ALL         every kind        every region -> every region
 */
static const char rules_text[] = HEAD "  - code: SI-VERIFY-001\n"
                                      "    name: 养老保险关系转移接续核验\n"
                                      "    kinds: [request, response]\n"
                                      "    senders: [\"440000\", \"110000\"]\n"
                                      "    receivers: [\"650000\", \"320000\"]\n"
                                      "    time_limit: 3d\n"
                                      "    reminder: 2d\n"
                                      "    grace: 1d\n"
                                      "  - code: SI-PUSH-001\n"
                                      "    name: push\n"
                                      "    kinds: [push, feedback]\n"
                                      "    senders: [\"*\"]\n"
                                      "    receivers: [440000]\n"
                                      "  - code: SI-NOTICE-001\n"
                                      "    name: notice\n"
                                      "    kinds: [notice]\n"
                                      "    senders: [\"110000\"]\n"
                                      "    receivers: [\"440000\", \"320000\"]\n"
                                      "  - code: SI-ALL\n"
                                      "    name: everything\n"
                                      "    kinds: [notice, feedback, push, response, request]\n"
                                      "    senders: [\"*\"]\n"
                                      "    receivers: [\"*\"]\n";

static int load(const char *text, catalog_t **cat, char *err)
{
    return catalog_load_string("c.yaml", text, strlen(text), cat, err, ERRCAP);
}

static int setup_rules(void **state)
{
    catalog_t *cat = NULL;
    char err[ERRCAP];
    if (load(rules_text, &cat, err) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    *state = cat;
    return 0;
}

static int teardown_rules(void **state)
{
    catalog_t *cat = *state;
    catalog_destroy(&cat);
    return 0;
}

/* Load `text`, expect NHUB_ECONFIG, no result and an error equal to `want`. */
static void expect_error(const char *text, const char *want)
{
    catalog_t *cat = (catalog_t *)&cat;
    char err[ERRCAP];
    int rc = load(text, &cat, err);
    if (rc != NHUB_ECONFIG || cat != NULL || strcmp(err, want) != 0) {
        print_error("rc=%d\n got: %s\nwant: %s\n", rc, err, want);
        fail();
    }
}

/* Expect catalog_check() to allow the message and leave `why` empty. */
static void expect_allowed(const catalog_t *cat, const char *item, int kind, const char *src,
                           const char *dst)
{
    char why[WHYCAP] = "stale";
    int rc = catalog_check(cat, item, kind, src, dst, why, sizeof why);
    if (rc != 0 || why[0] != '\0') {
        print_error("%s kind %d %s -> %s: rc=%d why: %s\n", item, kind, src, dst, rc, why);
        fail();
    }
}

/* Expect catalog_check() to refuse the message with exactly `want`. */
static void expect_refused(const catalog_t *cat, const char *item, int kind, const char *src,
                           const char *dst, const char *want)
{
    char why[WHYCAP];
    int rc = catalog_check(cat, item, kind, src, dst, why, sizeof why);
    if (rc != NHUB_EREFUSED || strcmp(why, want) != 0) {
        print_error("%s kind %d %s -> %s: rc=%d\n got: %s\nwant: %s\n", item ? item : "(null)",
                    kind, src ? src : "(null)", dst ? dst : "(null)", rc, why, want);
        fail();
    }
}

/* ---- the shipped files ----------------------------------------------------- */

static void test_shipped_catalogue_loads_with_its_items(void **state)
{
    (void)state;
    catalog_t *cat = NULL;
    char err[ERRCAP];
    int rc = catalog_load("schemas/catalog.yaml", &cat, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    assert_int_equal(catalog_count(cat), 7);
    assert_string_equal(catalog_item_name(cat, "SI-VERIFY-001"), "养老保险关系转移接续核验");
    catalog_times_t t;
    assert_int_equal(catalog_times(cat, "SI-VERIFY-002", &t), 0);
    assert_int_equal(t.time_limit_ms, DAY_MS);
    assert_int_equal(t.reminder_ms, 16 * 60 * MINUTE_MS);
    assert_int_equal(t.grace_ms, DAY_MS);
    assert_int_equal(t.answer_valid_ms, 30 * DAY_MS);
    assert_int_equal(catalog_times(cat, "SI-NOPE", &t), NHUB_ENOTFOUND);
    assert_int_equal(t.time_limit_ms, 0);
    /* Every production item names its payload types. */
    const char *items[] = {"SI-VERIFY-001",   "SI-VERIFY-002", "SI-VERIFY-003", "SI-PUSH-001",
                           "SI-TRANSFER-001", "SI-UPLOAD-001", "SI-NOTICE-001"};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
        assert_int_equal(catalog_item_typed(cat, items[i]), 1);
    char why[WHYCAP];
    assert_int_equal(catalog_check_payload(cat, "SI-VERIFY-002", CATALOG_KIND_REQUEST,
                                           "nhub.insured.v2.StatusQuery", why, sizeof why),
                     0);
    assert_int_equal(catalog_check_payload(cat, "SI-PUSH-001", CATALOG_KIND_FEEDBACK,
                                           "nhub.push.v1.Application", why, sizeof why),
                     NHUB_EREFUSED);
    assert_string_equal(why, "catalogue: item SI-PUSH-001 does not carry nhub.push.v1.Application "
                             "as feedback (it carries nhub.push.v1.Feedback, "
                             "nhub.push.v2.Feedback)");
    /* A type name from the wire that is no known type is not repeated. */
    assert_int_equal(catalog_check_payload(cat, "SI-NOTICE-001", CATALOG_KIND_NOTICE,
                                           "x\x01y", why, sizeof why),
                     NHUB_EREFUSED);
    assert_string_equal(why, "catalogue: item SI-NOTICE-001 does not carry that type as notice "
                             "(it carries nhub.credit.v1.CreditNotice)");
    assert_int_equal(catalog_time_limit_ms(cat, "SI-VERIFY-001"), 3 * DAY_MS);
    assert_int_equal(catalog_time_limit_ms(cat, "SI-PUSH-001"), 5 * DAY_MS);
    assert_int_equal(catalog_time_limit_ms(cat, "SI-NOTICE-001"), 0);

    /* Verification both ways between any two provinces; a city under "*" too. */
    expect_allowed(cat, "SI-VERIFY-001", CATALOG_KIND_REQUEST, "110000", "440000");
    expect_allowed(cat, "SI-VERIFY-001", CATALOG_KIND_RESPONSE, "440000", "110000");
    expect_allowed(cat, "SI-VERIFY-002", CATALOG_KIND_REQUEST, "660000", "440100");
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_PUSH, "110000", "440000",
                   "catalogue: item SI-VERIFY-001 does not allow kind push");
    /* Business push and its feedback. */
    expect_allowed(cat, "SI-PUSH-001", CATALOG_KIND_PUSH, "110000", "440000");
    expect_allowed(cat, "SI-PUSH-001", CATALOG_KIND_FEEDBACK, "440000", "110000");
    /* The credit list goes to everyone. */
    expect_allowed(cat, "SI-NOTICE-001", CATALOG_KIND_NOTICE, "320000", "*");
    assert_int_equal(catalog_may_receive(cat, "SI-NOTICE-001", "650000"), 1);
    /* Test traffic is not in the production catalogue. */
    expect_refused(cat, "BENCH-ITEM", CATALOG_KIND_PUSH, "110000", "440000",
                   "catalogue: unknown item BENCH-ITEM");
    catalog_destroy(&cat);
    assert_null(cat);
}

/* The production items of the test catalogue must be the same as the shipped ones. */
static void expect_same_item(const catalog_t *a, const catalog_t *b, const char *item)
{
    static const char *const ends[][2] = {
        {"110000", "440000"}, {"440000", "110000"}, {"660000", "440100"}, {"320000", "*"}};
    char wa[WHYCAP];
    char wb[WHYCAP];

    assert_non_null(catalog_item_name(a, item));
    assert_string_equal(catalog_item_name(a, item), catalog_item_name(b, item));
    assert_int_equal(catalog_time_limit_ms(a, item), catalog_time_limit_ms(b, item));
    catalog_times_t ta, tb;
    assert_int_equal(catalog_times(a, item, &ta), 0);
    assert_int_equal(catalog_times(b, item, &tb), 0);
    assert_memory_equal(&ta, &tb, sizeof ta);
    assert_int_equal(catalog_item_typed(a, item), catalog_item_typed(b, item));
    for (size_t i = 0; i < payload_type_count(); i++) {
        const char *type = payload_type_at(i)->name;
        for (int k = CATALOG_KIND_REQUEST; k <= CATALOG_KIND_NOTICE; k++)
            assert_int_equal(catalog_check_payload(a, item, k, type, wa, sizeof wa),
                             catalog_check_payload(b, item, k, type, wb, sizeof wb));
    }
    for (int k = CATALOG_KIND_REQUEST; k <= CATALOG_KIND_NOTICE; k++) {
        for (size_t e = 0; e < sizeof ends / sizeof ends[0]; e++) {
            int ra = catalog_check(a, item, k, ends[e][0], ends[e][1], wa, sizeof wa);
            int rb = catalog_check(b, item, k, ends[e][0], ends[e][1], wb, sizeof wb);
            assert_int_equal(ra, rb);
            assert_string_equal(wa, wb);
        }
        assert_int_equal(catalog_may_receive(a, item, "650000"),
                         catalog_may_receive(b, item, "650000"));
    }
}

static void test_test_catalogue_has_tool_items_and_same_real_items(void **state)
{
    (void)state;
    catalog_t *real = NULL;
    catalog_t *cat = NULL;
    char err[ERRCAP];
    assert_int_equal(catalog_load("schemas/catalog.yaml", &real, err, sizeof err), 0);
    int rc = catalog_load("test/data/catalog-test.yaml", &cat, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(catalog_count(cat), catalog_count(real) + 7);

    const char *real_items[] = {"SI-VERIFY-001",   "SI-VERIFY-002", "SI-VERIFY-003", "SI-PUSH-001",
                                "SI-TRANSFER-001", "SI-UPLOAD-001", "SI-NOTICE-001"};
    for (size_t i = 0; i < sizeof real_items / sizeof real_items[0]; i++)
        expect_same_item(real, cat, real_items[i]);

    /* What the harness, integration tests, soak and bench send. */
    expect_allowed(cat, "SI-VERIFY-001", CATALOG_KIND_REQUEST, "110000", "660000");
    expect_allowed(cat, "SI-PUSH-001", CATALOG_KIND_PUSH, "440000", "110000");
    expect_allowed(cat, "SI-SOAK-001", CATALOG_KIND_PUSH, "120000", "650000");
    expect_allowed(cat, "TEST-VERIFY", CATALOG_KIND_REQUEST, "110000", "440000");
    expect_allowed(cat, "TEST-PUSH", CATALOG_KIND_FEEDBACK, "440000", "110000");
    assert_int_equal(catalog_item_typed(cat, "TEST-VERIFY"), 0);
    char why[WHYCAP];
    assert_int_equal(catalog_check_payload(cat, "TEST-VERIFY", CATALOG_KIND_REQUEST,
                                           "nhub.test.v1.Ping", why, sizeof why),
                     0);
    expect_allowed(cat, "BENCH-ITEM", CATALOG_KIND_PUSH, "110000", "440000");
    expect_allowed(cat, "BENCH-BIG", CATALOG_KIND_PUSH, "110000", "640000");
    expect_allowed(cat, "TEST-URGENT", CATALOG_KIND_REQUEST, "120000", "310000");
    expect_allowed(cat, "TEST-BULK", CATALOG_KIND_PUSH, "110000", "310000");
    /* Delivery classes (test_scheduling, the bench's priority section). */
    assert_int_equal(catalog_priority(cat, "TEST-URGENT"), CATALOG_PRIORITY_URGENT);
    assert_int_equal(catalog_priority(cat, "TEST-BULK"), CATALOG_PRIORITY_BULK);
    assert_int_equal(catalog_priority(cat, "TEST-PUSH"), CATALOG_PRIORITY_NORMAL);
    assert_int_equal(catalog_priority(real, "SI-VERIFY-002"), CATALOG_PRIORITY_URGENT);
    assert_int_equal(catalog_priority(real, "SI-UPLOAD-001"), CATALOG_PRIORITY_BULK);
    assert_int_equal(catalog_priority(real, "SI-NOPE"), CATALOG_PRIORITY_NORMAL);
    assert_int_equal(catalog_priority(NULL, "SI-VERIFY-002"), CATALOG_PRIORITY_NORMAL);
    assert_string_equal(catalog_priority_name(CATALOG_PRIORITY_BULK), "bulk");
    assert_string_equal(catalog_priority_name(7), "unknown");
    catalog_destroy(&cat);
    catalog_destroy(&real);
}

/* ---- the rule ---------------------------------------------------------------- */

static void test_unknown_item_is_refused_and_wire_text_is_made_safe(void **state)
{
    const catalog_t *cat = *state;
    expect_refused(cat, "SI-NOPE", CATALOG_KIND_REQUEST, "110000", "320000",
                   "catalogue: unknown item SI-NOPE");
    expect_refused(cat, "", CATALOG_KIND_REQUEST, "110000", "320000",
                   "catalogue: unknown item \"\"");
    expect_refused(cat, NULL, CATALOG_KIND_REQUEST, "110000", "320000",
                   "catalogue: unknown item \"\"");
    /* Codes are case-sensitive. */
    expect_refused(cat, "si-verify-001", CATALOG_KIND_REQUEST, "110000", "320000",
                   "catalogue: unknown item si-verify-001");
    /* A code from the wire cannot start a new log line or grow without bound. */
    expect_refused(cat, "X\nlevel=error msg=forged", CATALOG_KIND_REQUEST, "110000", "320000",
                   "catalogue: unknown item X?level=error?msg=forged");
    char long_item[200];
    memset(long_item, 'A', sizeof long_item - 1);
    long_item[sizeof long_item - 1] = '\0';
    char want[WHYCAP];
    snprintf(want, sizeof want, "catalogue: unknown item %.64s...", long_item);
    expect_refused(cat, long_item, CATALOG_KIND_REQUEST, "110000", "320000", want);
}

static void test_kind_outside_item_or_enum_is_refused(void **state)
{
    const catalog_t *cat = *state;
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_PUSH, "110000", "320000",
                   "catalogue: item SI-VERIFY-001 does not allow kind push");
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_NOTICE, "110000", "320000",
                   "catalogue: item SI-VERIFY-001 does not allow kind notice");
    expect_refused(cat, "SI-PUSH-001", CATALOG_KIND_REQUEST, "110000", "440000",
                   "catalogue: item SI-PUSH-001 does not allow kind request");
    expect_refused(cat, "SI-NOTICE-001", CATALOG_KIND_FEEDBACK, "440000", "110000",
                   "catalogue: item SI-NOTICE-001 does not allow kind feedback");
    expect_refused(cat, "SI-ALL", 0, "110000", "320000", "catalogue: unknown kind 0 (item SI-ALL)");
    expect_refused(cat, "SI-ALL", 6, "110000", "320000", "catalogue: unknown kind 6 (item SI-ALL)");
    expect_refused(cat, "SI-ALL", -1, "110000", "320000",
                   "catalogue: unknown kind -1 (item SI-ALL)");
}

static void test_forward_kinds_go_from_sender_to_receiver(void **state)
{
    const catalog_t *cat = *state;
    expect_allowed(cat, "SI-VERIFY-001", CATALOG_KIND_REQUEST, "110000", "320000");
    expect_allowed(cat, "SI-VERIFY-001", CATALOG_KIND_REQUEST, "440000", "650000");
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_REQUEST, "650000", "320000",
                   "catalogue: region 650000 is not a sender of item SI-VERIFY-001 (kind "
                   "request)");
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_REQUEST, "110000", "440000",
                   "catalogue: region 440000 is not a receiver of item SI-VERIFY-001 (kind "
                   "request)");
    /* A province code does not admit its cities. */
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_REQUEST, "440100", "320000",
                   "catalogue: region 440100 is not a sender of item SI-VERIFY-001 (kind "
                   "request)");
    /* push: every region may send, only 440000 may receive. */
    expect_allowed(cat, "SI-PUSH-001", CATALOG_KIND_PUSH, "650000", "440000");
    expect_allowed(cat, "SI-PUSH-001", CATALOG_KIND_PUSH, "440100", "440000");
    expect_refused(cat, "SI-PUSH-001", CATALOG_KIND_PUSH, "440000", "110000",
                   "catalogue: region 110000 is not a receiver of item SI-PUSH-001 (kind push)");
    /* notice to one region follows the same rule as a request. */
    expect_allowed(cat, "SI-NOTICE-001", CATALOG_KIND_NOTICE, "110000", "440000");
    expect_refused(cat, "SI-NOTICE-001", CATALOG_KIND_NOTICE, "110000", "650000",
                   "catalogue: region 650000 is not a receiver of item SI-NOTICE-001 (kind "
                   "notice)");
    expect_refused(cat, "SI-NOTICE-001", CATALOG_KIND_NOTICE, "440000", "320000",
                   "catalogue: region 440000 is not a sender of item SI-NOTICE-001 (kind "
                   "notice)");
}

static void test_answers_flow_from_receiver_back_to_sender(void **state)
{
    const catalog_t *cat = *state;
    expect_allowed(cat, "SI-VERIFY-001", CATALOG_KIND_RESPONSE, "320000", "110000");
    expect_allowed(cat, "SI-VERIFY-001", CATALOG_KIND_RESPONSE, "650000", "440000");
    /* The requester's direction is wrong for an answer. */
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_RESPONSE, "110000", "320000",
                   "catalogue: response of item SI-VERIFY-001 must go from a receiver (110000 "
                   "is not one)");
    expect_refused(cat, "SI-VERIFY-001", CATALOG_KIND_RESPONSE, "320000", "650000",
                   "catalogue: response of item SI-VERIFY-001 must go to a sender (650000 is "
                   "not one)");
    /* feedback: from the one receiver (440000) to anyone, since senders is "*". */
    expect_allowed(cat, "SI-PUSH-001", CATALOG_KIND_FEEDBACK, "440000", "110000");
    expect_allowed(cat, "SI-PUSH-001", CATALOG_KIND_FEEDBACK, "440000", "440100");
    expect_refused(cat, "SI-PUSH-001", CATALOG_KIND_FEEDBACK, "110000", "440000",
                   "catalogue: feedback of item SI-PUSH-001 must go from a receiver (110000 is "
                   "not one)");
}

static void test_broadcast_is_for_notices_to_receivers_only(void **state)
{
    const catalog_t *cat = *state;
    expect_allowed(cat, "SI-NOTICE-001", CATALOG_KIND_NOTICE, "110000", "*");
    expect_refused(cat, "SI-NOTICE-001", CATALOG_KIND_NOTICE, "440000", "*",
                   "catalogue: region 440000 is not a sender of item SI-NOTICE-001 (kind "
                   "notice)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_PUSH, "110000", "*",
                   "catalogue: broadcast is for notices only (item SI-ALL, kind push, from "
                   "110000)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_REQUEST, "110000", "*",
                   "catalogue: broadcast is for notices only (item SI-ALL, kind request, from "
                   "110000)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_RESPONSE, "110000", "*",
                   "catalogue: broadcast is for notices only (item SI-ALL, kind response, from "
                   "110000)");
    expect_allowed(cat, "SI-ALL", CATALOG_KIND_NOTICE, "660000", "*");

    /* The fan-out reaches receivers only. */
    assert_int_equal(catalog_may_receive(cat, "SI-NOTICE-001", "320000"), 1);
    assert_int_equal(catalog_may_receive(cat, "SI-NOTICE-001", "440000"), 1);
    assert_int_equal(catalog_may_receive(cat, "SI-NOTICE-001", "110000"), 0);
    assert_int_equal(catalog_may_receive(cat, "SI-NOTICE-001", "650000"), 0);
    assert_int_equal(catalog_may_receive(cat, "SI-NOTICE-001", "440100"), 0);
    assert_int_equal(catalog_may_receive(cat, "SI-ALL", "650000"), 1);
    assert_int_equal(catalog_may_receive(cat, "SI-ALL", "440100"), 1);
    assert_int_equal(catalog_may_receive(cat, "SI-ALL", "*"), 0);
    assert_int_equal(catalog_may_receive(cat, "SI-ALL", "4400"), 0);
    assert_int_equal(catalog_may_receive(cat, "SI-ALL", NULL), 0);
    assert_int_equal(catalog_may_receive(cat, "SI-NOPE", "440000"), 0);
    assert_int_equal(catalog_may_receive(cat, NULL, "440000"), 0);
    assert_int_equal(catalog_may_receive(NULL, "SI-ALL", "440000"), 0);
}

static void test_star_lists_admit_every_well_formed_code(void **state)
{
    const catalog_t *cat = *state;
    expect_allowed(cat, "SI-ALL", CATALOG_KIND_REQUEST, "000000", "999999");
    expect_allowed(cat, "SI-ALL", CATALOG_KIND_RESPONSE, "440300", "110000");
    expect_allowed(cat, "SI-ALL", CATALOG_KIND_FEEDBACK, "650000", "660000");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_REQUEST, "44000", "110000",
                   "catalogue: source 44000 is not a region code (item SI-ALL, kind request)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_REQUEST, NULL, "110000",
                   "catalogue: source \"\" is not a region code (item SI-ALL, kind request)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_REQUEST, "110000", "4400001",
                   "catalogue: destination 4400001 is not a region code or \"*\" (item SI-ALL, "
                   "kind request)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_NOTICE, "110000", "",
                   "catalogue: destination \"\" is not a region code or \"*\" (item SI-ALL, "
                   "kind notice)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_PUSH, "110000", "44 000",
                   "catalogue: destination 44?000 is not a region code or \"*\" (item SI-ALL, "
                   "kind push)");
    expect_refused(cat, "SI-ALL", CATALOG_KIND_NOTICE, "*", "*",
                   "catalogue: source * is not a region code (item SI-ALL, kind notice)");
}

static void test_why_buffer_is_optional_and_truncated_safely(void **state)
{
    const catalog_t *cat = *state;
    char why[16];
    assert_int_equal(catalog_check(cat, "SI-NOPE", 1, "110000", "320000", NULL, 0), NHUB_EREFUSED);
    assert_int_equal(catalog_check(cat, "SI-VERIFY-001", 1, "110000", "320000", NULL, 0), 0);
    assert_int_equal(catalog_check(cat, "SI-NOPE", 1, "110000", "320000", why, sizeof why),
                     NHUB_EREFUSED);
    assert_string_equal(why, "catalogue: unkn");
    assert_int_equal(catalog_check(NULL, "SI-ALL", 1, "110000", "320000", why, sizeof why),
                     NHUB_EINVAL);
}

static void test_time_limit_is_kept_and_defaults_to_none(void **state)
{
    const catalog_t *cat = *state;
    assert_int_equal(catalog_time_limit_ms(cat, "SI-VERIFY-001"), 3 * DAY_MS);
    assert_int_equal(catalog_time_limit_ms(cat, "SI-PUSH-001"), 0);
    assert_int_equal(catalog_time_limit_ms(cat, "SI-NOPE"), 0);
    assert_int_equal(catalog_time_limit_ms(cat, NULL), 0);
    assert_int_equal(catalog_time_limit_ms(NULL, "SI-VERIFY-001"), 0);
    assert_int_equal(catalog_count(cat), 4);
    assert_string_equal(catalog_item_name(cat, "SI-PUSH-001"), "push");
    assert_null(catalog_item_name(cat, "SI-NOPE"));

    catalog_t *c = NULL;
    char err[ERRCAP];
    assert_int_equal(load(HEAD "  - {code: A, name: a, kinds: [push], senders: [\"*\"], "
                               "receivers: [\"*\"], time_limit: 2m, reminder: 1m, grace: 1m}\n"
                               "  - {code: B, name: b, kinds: [push], senders: [\"*\"], "
                               "receivers: [\"*\"], time_limit: 365d, reminder: 300d, "
                               "grace: 365d}\n"
                               "  - {code: C, name: c, kinds: [push], senders: [\"*\"], "
                               "receivers: [\"*\"], time_limit: 36h, reminder: 1d, grace: 1d}\n",
                          &c, err),
                     0);
    assert_int_equal(catalog_time_limit_ms(c, "A"), 2 * MINUTE_MS);
    assert_int_equal(catalog_time_limit_ms(c, "B"), 365 * DAY_MS);
    assert_int_equal(catalog_time_limit_ms(c, "C"), 36 * 60 * MINUTE_MS);
    catalog_destroy(&c);

    expect_error(HEAD "  - {code: A, name: a, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"], time_limit: 500ms}\n",
                 "c.yaml:3:85: \"items[0].time_limit\": \"500ms\" is out of range (expected 1s to "
                 "365d)");
    expect_error(HEAD "  - {code: A, name: a, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"], time_limit: 366d}\n",
                 "c.yaml:3:85: \"items[0].time_limit\": \"366d\" is out of range (expected 1s to "
                 "365d)");
    expect_error(HEAD "  - {code: A, name: a, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"], time_limit: 0}\n",
                 "c.yaml:3:85: \"items[0].time_limit\": \"0\" is out of range (expected 1s to "
                 "365d)");
    expect_error(HEAD "  - {code: A, name: a, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"], time_limit: soon}\n",
                 "c.yaml:3:85: \"items[0].time_limit\": expected a duration like 500ms, 5s, 2m, "
                 "1h or 7d, got \"soon\"");
}

/* ---- payload types and case times ------------------------------------------ */

#define ITEM_VQ "  - code: Q\n    name: q\n    kinds: [request, response]\n" \
                "    senders: [\"*\"]\n    receivers: [\"*\"]\n"

static void test_payload_types_are_checked_against_the_schemas(void **state)
{
    (void)state;
    expect_error(HEAD ITEM_VQ "    payloads:\n"
                              "      request: [nhub.insured.v3.StatusQuery]\n"
                              "      response: [nhub.insured.v1.StatusAnswer]\n",
                 "c.yaml:9:17: \"items[0].payloads.request[0]\": nhub.insured.v3.StatusQuery is "
                 "not a payload type of schemas/ compiled into this hub");
    expect_error(HEAD ITEM_VQ "    payloads:\n"
                              "      request: [nhub.insured.v1.StatusQuery]\n",
                 "c.yaml:9:7: \"items[0].payloads\": no payload types for kind response; name "
                 "them for every kind of the item");
    expect_error(HEAD ITEM_VQ "    payloads:\n"
                              "      request: [nhub.insured.v1.StatusQuery]\n"
                              "      response: [nhub.insured.v1.StatusAnswer]\n"
                              "      push: [nhub.push.v1.Application]\n",
                 "c.yaml:11:13: \"items[0].payloads.push\": the item does not carry kind push "
                 "(see its kinds)");
    expect_error(HEAD ITEM_VQ "    payloads:\n"
                              "      request: [nhub.insured.v1.StatusQuery, "
                              "nhub.insured.v1.StatusQuery]\n"
                              "      response: [nhub.insured.v1.StatusAnswer]\n",
                 "c.yaml:9:46: \"items[0].payloads.request[1]\": nhub.insured.v1.StatusQuery is "
                 "listed twice");
    expect_error(HEAD "  - code: P\n    name: p\n    kinds: [push, feedback]\n"
                      "    senders: [\"*\"]\n    receivers: [\"*\"]\n"
                      "    payloads:\n"
                      "      push: [nhub.push.v1.Application]\n"
                      "      feedback: [nhub.push.v1.Application]\n",
                 "c.yaml:10:18: \"items[0].payloads.feedback[0]\": a feedback type needs field 1 "
                 "\"stage\" of type nhub.common.v1.Stage; nhub.push.v1.Application has none");
    expect_error(HEAD ITEM_VQ "    payloads:\n"
                              "      request: [nhub.insured.v1.StatusQuery, a, b, c, d, e, f, g, "
                              "h]\n",
                 "c.yaml:9:67: \"items[0].payloads.request\": too many entries (at most 8)");
}

static void test_case_times_come_together_and_in_order(void **state)
{
    (void)state;
    catalog_t *c = NULL;
    char err[ERRCAP];
    assert_int_equal(load(HEAD ITEM_VQ "    time_limit: 3d\n    reminder: 2d\n    grace: 12h\n"
                                       "    answer_valid: 3650d\n",
                          &c, err),
                     0);
    catalog_times_t t;
    assert_int_equal(catalog_times(c, "Q", &t), 0);
    assert_int_equal(t.time_limit_ms, 3 * DAY_MS);
    assert_int_equal(t.reminder_ms, 2 * DAY_MS);
    assert_int_equal(t.grace_ms, 12 * 60 * MINUTE_MS);
    assert_int_equal(t.answer_valid_ms, 3650 * DAY_MS);
    assert_int_equal(catalog_item_typed(c, "Q"), 0);
    catalog_destroy(&c);

    expect_error(HEAD ITEM_VQ "    time_limit: 3d\n",
                 "c.yaml:3:5: \"items[0]\": an item with a time_limit needs reminder and grace "
                 "too");
    expect_error(HEAD ITEM_VQ "    time_limit: 3d\n    reminder: 3d\n    grace: 1d\n",
                 "c.yaml:9:15: \"items[0].reminder\": the reminder must come before the "
                 "time_limit");
    expect_error(HEAD ITEM_VQ "    grace: 1d\n",
                 "c.yaml:8:12: \"items[0].grace\": reminder and grace need a time_limit");
    expect_error(HEAD "  - {code: N, name: n, kinds: [notice], senders: [\"*\"], "
                      "receivers: [\"*\"], time_limit: 1d, reminder: 1h, grace: 1h}\n",
                 "c.yaml:3:87: \"items[0].time_limit\": only an item with requests or pushes "
                 "has cases with a time limit");
    expect_error(HEAD "  - {code: N, name: n, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"], answer_valid: 1d}\n",
                 "c.yaml:3:87: \"items[0].answer_valid\": only an item with responses or "
                 "feedback has answers");
}

/* ---- the file ------------------------------------------------------------------ */

static void test_version_must_be_1(void **state)
{
    (void)state;
    expect_error("items:\n  - {code: A, name: a, kinds: [push], senders: [\"*\"], "
                 "receivers: [\"*\"]}\n",
                 "c.yaml:1:1: missing required key \"version\" at the top level");
    expect_error("version: 2\nitems:\n  - {code: A, name: a, kinds: [push], senders: [\"*\"], "
                 "receivers: [\"*\"]}\n",
                 "c.yaml:1:10: \"version\": catalogue format version 2 is not supported "
                 "(expected 1)");
    expect_error("version: one\n", "c.yaml:1:10: \"version\": expected an integer, got \"one\"");
}

static void test_items_must_be_present_non_empty_and_known_keys(void **state)
{
    (void)state;
    expect_error("version: 1\n", "c.yaml:1:1: missing required key \"items\" at the top level");
    expect_error("version: 1\nitems: []\n",
                 "c.yaml:2:8: \"items\": expected at least 1 entries, got 0");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\"]\n"
                      "    legal_basis: none\n",
                 "c.yaml:8:5: unknown key \"legal_basis\" in \"items[0]\" (expected one of: code, "
                 "name, kinds, senders, receivers, time_limit, reminder, grace, answer_valid, "
                 "priority, payloads)");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n",
                 "c.yaml:3:5: missing required key \"receivers\" in \"items[0]\"");
}

static void test_item_code_shape_is_checked(void **state)
{
    (void)state;
    expect_error(HEAD "  - {code: \"SI VERIFY\", name: a, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"]}\n",
                 "c.yaml:3:12: \"items[0].code\": an item code is 1 to 64 printable ASCII "
                 "characters without spaces");
    expect_error(HEAD "  - {code: \"\", name: a, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"]}\n",
                 "c.yaml:3:12: \"items[0].code\": an item code is 1 to 64 printable ASCII "
                 "characters without spaces");
    expect_error(HEAD "  - {code: \"核验\", name: a, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"]}\n",
                 "c.yaml:3:12: \"items[0].code\": an item code is 1 to 64 printable ASCII "
                 "characters without spaces");

    char text[1024];
    char code[80];
    catalog_t *cat = NULL;
    char err[ERRCAP];
    memset(code, 'C', 64);
    code[64] = '\0';
    snprintf(text, sizeof text,
             HEAD "  - {code: %s, name: a, kinds: [push], senders: [\"*\"], "
                  "receivers: [\"*\"]}\n",
             code);
    assert_int_equal(load(text, &cat, err), 0);
    assert_string_equal(catalog_item_name(cat, code), "a");
    catalog_destroy(&cat);
    code[64] = 'C';
    code[65] = '\0';
    snprintf(text, sizeof text,
             HEAD "  - {code: %s, name: a, kinds: [push], senders: [\"*\"], "
                  "receivers: [\"*\"]}\n",
             code);
    expect_error(text, "c.yaml:3:12: \"items[0].code\": string is too long (65 bytes, at most 64)");
}

static void test_item_names_are_bounded_utf8(void **state)
{
    (void)state;
    char text[1024];
    char cjk[160] = "";
    catalog_t *cat = NULL;
    char err[ERRCAP];

    /* 127 bytes: 42 three-byte characters and one ASCII byte. */
    for (int i = 0; i < 42; i++)
        strcat(cjk, "核");
    strcat(cjk, "x");
    snprintf(text, sizeof text,
             HEAD "  - {code: A, name: %s, kinds: [push], senders: [\"*\"], "
                  "receivers: [\"*\"]}\n",
             cjk);
    assert_int_equal(load(text, &cat, err), 0);
    assert_string_equal(catalog_item_name(cat, "A"), cjk);
    catalog_destroy(&cat);

    strcat(cjk, "y");
    snprintf(text, sizeof text,
             HEAD "  - {code: A, name: %s, kinds: [push], senders: [\"*\"], "
                  "receivers: [\"*\"]}\n",
             cjk);
    expect_error(text, "c.yaml:3:21: \"items[0].name\": string is too long (128 bytes, at most "
                       "127)");
    expect_error(HEAD "  - {code: A, name: \"\", kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"]}\n",
                 "c.yaml:3:21: \"items[0].name\": an item name must be non-empty, without "
                 "control characters");
    expect_error(HEAD "  - {code: A, name: \"a\\nb\", kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"]}\n",
                 "c.yaml:3:21: \"items[0].name\": an item name must be non-empty, without "
                 "control characters");
}

static void test_kinds_must_be_known_and_not_repeated(void **state)
{
    (void)state;
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [request, pull]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:5:22: \"items[0].kinds[1]\": unknown kind pull (expected one of: "
                 "request, response, push, feedback, notice)");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [Request]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:5:13: \"items[0].kinds[0]\": unknown kind Request (expected one of: "
                 "request, response, push, feedback, notice)");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push, feedback, push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:5:29: \"items[0].kinds[2]\": kind push is listed twice");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: []\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:5:12: \"items[0].kinds\": expected at least 1 entries, got 0");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: push\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:5:12: \"items[0].kinds\": expected a list of strings, got \"push\"");
}

static void test_region_lists_are_star_or_codes(void **state)
{
    (void)state;
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"110000\", \"*\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:6:25: \"items[0].senders[1]\": \"*\" (every region) must be the only "
                 "entry of senders");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\", 440000]\n",
                 "c.yaml:7:17: \"items[0].receivers[0]\": \"*\" (every region) must be the only "
                 "entry of receivers");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"110000\", \"12000a\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:6:25: \"items[0].senders[1]\": a region code is exactly 6 ASCII digits "
                 "(GB/T 2260), or \"*\" for every region");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [44000]\n",
                 "c.yaml:7:17: \"items[0].receivers[0]\": a region code is exactly 6 ASCII digits "
                 "(GB/T 2260), or \"*\" for every region");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"4400000\"]\n",
                 "c.yaml:7:17: \"items[0].receivers[0]\": string is too long (7 bytes, at most "
                 "6)");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"all\"]\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:6:15: \"items[0].senders[0]\": a region code is exactly 6 ASCII digits "
                 "(GB/T 2260), or \"*\" for every region");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: []\n"
                      "    receivers: [\"*\"]\n",
                 "c.yaml:6:14: \"items[0].senders\": expected at least 1 entries, got 0");
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers:\n",
                 "c.yaml:7:15: \"items[0].receivers\": expected at least 1 entries, got 0");
}

static void test_repeated_region_names_both_positions(void **state)
{
    (void)state;
    expect_error(HEAD "  - code: A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"440000\", \"110000\", \"320000\", \"110000\", "
                      "\"440000\"]\n",
                 "c.yaml:7:47: \"items[0].receivers[3]\": region 110000 is listed twice (first "
                 "as receivers[1])");
}

static void test_unquoted_star_is_a_yaml_error(void **state)
{
    (void)state;
    catalog_t *cat = (catalog_t *)&cat;
    char err[ERRCAP];
    assert_int_equal(load(HEAD "  - code: A\n"
                               "    name: a\n"
                               "    kinds: [push]\n"
                               "    senders: [*]\n"
                               "    receivers: [\"*\"]\n",
                          &cat, err),
                     NHUB_ECONFIG);
    assert_null(cat);
    /* libyaml words the message; the position and the cause are ours to check. */
    assert_true(strncmp(err, "c.yaml:6:16: ", 13) == 0);
    assert_non_null(strstr(err, "alias"));
}

static void test_duplicate_item_codes_name_both_positions(void **state)
{
    (void)state;
    expect_error(HEAD "  - code: SI-A\n"
                      "    name: a\n"
                      "    kinds: [push]\n"
                      "    senders: [\"*\"]\n"
                      "    receivers: [\"*\"]\n"
                      "  - {code: SI-B, name: b, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"]}\n"
                      "  - {code: SI-A, name: a2, kinds: [push], senders: [\"*\"], "
                      "receivers: [\"*\"]}\n",
                 "c.yaml:9:12: \"items[2].code\": duplicate item code SI-A (first listed as "
                 "items[0] at line 3, column 11)");
}

/* `n` items I0000.. in reverse order, each with a distinct sender and the region list full. */
static char *many_items(size_t n, size_t regions)
{
    size_t cap = 256 + n * (128 + regions * 10);
    char *text = malloc(cap);
    assert_non_null(text);
    size_t o = (size_t)snprintf(text, cap, HEAD);
    for (size_t i = n; i-- > 0;) {
        o += (size_t)snprintf(text + o, cap - o,
                              "  - {code: I%04zu, name: n%zu, kinds: [request, response], "
                              "senders: [\"%06zu\"], receivers: [",
                              i, i, 100000 + i);
        for (size_t r = 0; r < regions; r++)
            o += (size_t)snprintf(text + o, cap - o, "%s\"%06zu\"", r ? ", " : "", 200000 + r * 7);
        o += (size_t)snprintf(text + o, cap - o, "]}\n");
        assert_true(o < cap);
    }
    return text;
}

static void test_item_count_and_list_length_are_capped(void **state)
{
    (void)state;
    catalog_t *cat = NULL;
    char err[ERRCAP];
    char *text = many_items(CATALOG_ITEMS_MAX, 3);
    assert_int_equal(load(text, &cat, err), 0);
    assert_int_equal(catalog_count(cat), CATALOG_ITEMS_MAX);
    /* Items are found by code whatever their order in the file. */
    for (size_t i = 0; i < CATALOG_ITEMS_MAX; i += 97) {
        char item[16];
        char src[8];
        snprintf(item, sizeof item, "I%04zu", i);
        snprintf(src, sizeof src, "%06zu", 100000 + i);
        expect_allowed(cat, item, CATALOG_KIND_REQUEST, src, "200014");
        expect_allowed(cat, item, CATALOG_KIND_RESPONSE, "200007", src);
        assert_int_equal(catalog_may_receive(cat, item, "200001"), 0);
    }
    catalog_destroy(&cat);
    free(text);

    text = many_items(CATALOG_ITEMS_MAX + 1, 1);
    expect_error(text, "c.yaml:4099:5: \"items\": too many entries (at most 4096)");
    free(text);

    /* A full list: every code is found by binary search. */
    text = many_items(2, CATALOG_REGIONS_MAX);
    assert_int_equal(load(text, &cat, err), 0);
    for (size_t r = 0; r < CATALOG_REGIONS_MAX; r++) {
        char dst[8];
        snprintf(dst, sizeof dst, "%06zu", 200000 + r * 7);
        assert_int_equal(catalog_may_receive(cat, "I0001", dst), 1);
        snprintf(dst, sizeof dst, "%06zu", 200000 + r * 7 + 1);
        assert_int_equal(catalog_may_receive(cat, "I0001", dst), 0);
    }
    catalog_destroy(&cat);
    free(text);

    text = many_items(1, CATALOG_REGIONS_MAX + 1);
    assert_int_equal(load(text, &cat, err), NHUB_ECONFIG);
    assert_non_null(strstr(err, "\"items[0].receivers\": too many entries (at most 512)"));
    free(text);
}

static void test_file_errors_name_the_file(void **state)
{
    (void)state;
    catalog_t *cat = (catalog_t *)&cat;
    char err[ERRCAP];
    assert_int_equal(catalog_load("schemas/no-such.yaml", &cat, err, sizeof err), NHUB_EIO);
    assert_null(cat);
    assert_string_equal(err, "schemas/no-such.yaml: cannot open: No such file or directory");

    char dir[] = "/tmp/test_catalog.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/catalog.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(HEAD "  - {code: A, name: a, kinds: [notice], senders: [\"*\"], receivers: [\"*\"]}\n"
               "  - {code: A, name: a, kinds: [notice], senders: [\"*\"], receivers: [\"*\"]}\n",
          f);
    fclose(f);
    assert_int_equal(catalog_load(path, &cat, err, sizeof err), NHUB_ECONFIG);
    char want[256];
    snprintf(want, sizeof want,
             "%s:4:12: \"items[1].code\": duplicate item code A (first listed as items[0] at "
             "line 3, column 12)",
             path);
    assert_string_equal(err, want);
    unlink(path);
    rmdir(dir);
}

static void test_null_arguments_are_refused_and_destroy_accepts_null(void **state)
{
    (void)state;
    catalog_t *cat = (catalog_t *)&cat;
    char err[ERRCAP];
    assert_int_equal(catalog_load(NULL, &cat, err, sizeof err), NHUB_EINVAL);
    assert_null(cat);
    assert_int_equal(catalog_load("schemas/catalog.yaml", NULL, err, sizeof err), NHUB_EINVAL);
    assert_int_equal(catalog_load_string("x", NULL, 0, &cat, NULL, 0), NHUB_EINVAL);
    assert_int_equal(catalog_count(NULL), 0);
    catalog_destroy(NULL);
    cat = NULL;
    catalog_destroy(&cat);
    assert_null(cat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_catalogue_loads_with_its_items),
        cmocka_unit_test(test_test_catalogue_has_tool_items_and_same_real_items),
        cmocka_unit_test_setup_teardown(test_unknown_item_is_refused_and_wire_text_is_made_safe,
                                        setup_rules, teardown_rules),
        cmocka_unit_test_setup_teardown(test_kind_outside_item_or_enum_is_refused, setup_rules,
                                        teardown_rules),
        cmocka_unit_test_setup_teardown(test_forward_kinds_go_from_sender_to_receiver, setup_rules,
                                        teardown_rules),
        cmocka_unit_test_setup_teardown(test_answers_flow_from_receiver_back_to_sender, setup_rules,
                                        teardown_rules),
        cmocka_unit_test_setup_teardown(test_broadcast_is_for_notices_to_receivers_only,
                                        setup_rules, teardown_rules),
        cmocka_unit_test_setup_teardown(test_star_lists_admit_every_well_formed_code, setup_rules,
                                        teardown_rules),
        cmocka_unit_test_setup_teardown(test_why_buffer_is_optional_and_truncated_safely,
                                        setup_rules, teardown_rules),
        cmocka_unit_test_setup_teardown(test_time_limit_is_kept_and_defaults_to_none, setup_rules,
                                        teardown_rules),
        cmocka_unit_test(test_payload_types_are_checked_against_the_schemas),
        cmocka_unit_test(test_case_times_come_together_and_in_order),
        cmocka_unit_test(test_version_must_be_1),
        cmocka_unit_test(test_items_must_be_present_non_empty_and_known_keys),
        cmocka_unit_test(test_item_code_shape_is_checked),
        cmocka_unit_test(test_item_names_are_bounded_utf8),
        cmocka_unit_test(test_kinds_must_be_known_and_not_repeated),
        cmocka_unit_test(test_region_lists_are_star_or_codes),
        cmocka_unit_test(test_repeated_region_names_both_positions),
        cmocka_unit_test(test_unquoted_star_is_a_yaml_error),
        cmocka_unit_test(test_duplicate_item_codes_name_both_positions),
        cmocka_unit_test(test_item_count_and_list_length_are_capped),
        cmocka_unit_test(test_file_errors_name_the_file),
        cmocka_unit_test(test_null_arguments_are_refused_and_destroy_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
