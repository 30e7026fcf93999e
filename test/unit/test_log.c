/*
 * test_log.c: the logging module's time text (proto/log.h): log_time and
 * log_time_parse read each other back, and bad text is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"
#include "nhub_err.h"

static void test_time_parse_reads_what_log_time_writes(void **state)
{
    (void)state;
    const int64_t times[] = {0, INT64_C(1796083200000), INT64_C(1796083200001),
                             INT64_C(1835481599999), INT64_C(4102444799123)};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char buf[32];
        int64_t ms = -1;
        assert_int_equal(log_time_parse(log_time(buf, sizeof buf, times[i]), &ms), 0);
        assert_int_equal(ms, times[i]);
    }
    int64_t ms = -1;
    assert_int_equal(log_time_parse("2026-12-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1796083200000));
    assert_int_equal(log_time_parse("2026-12-01T00:00:00.5Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1796083200500));
    assert_int_equal(log_time_parse("2026-12-01T00:00:00.25Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1796083200250));
    assert_int_equal(log_time_parse("2026-12-01", &ms), 0);
    assert_int_equal(ms, INT64_C(1796083200000));
    assert_int_equal(log_time_parse("2028-02-29T23:59:59Z", &ms), 0);
}

static void test_time_parse_refuses_what_is_not_a_time(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "yesterday",
        "2026-12-01T00:00:00",      /* no Z */
        "2026-12-01T00:00:00z",     /* lower case */
        "2026-12-01T00:00:00.Z",    /* a point without digits */
        "2026-12-01T00:00:00.1234Z", /* beyond ms */
        "2026-12-01T00:00:00.1xZ",
        "2026-12-01T00:00:00+08:00", /* UTC only */
        "2026-12-01 00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-02-30",
        "2027-02-29T00:00:00Z",
        "2026-12-01T24:00:00Z",
        "2026-12-01T00:60:00Z",
        "2026-12-01T00:00:60Z",
        "2026-13-01",
        "1969-12-31T23:59:59Z",
        "2026-1-01",
        " 2026-12-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -1;
        if (log_time_parse(bad[i], &ms) != NHUB_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(ms, -1);
    }
    int64_t ms = -1;
    assert_int_equal(log_time_parse(NULL, &ms), NHUB_EINVAL);
}

/* log_unhex reads back what log_hex writes, in either case, and nothing else. */
static void test_unhex_reads_what_log_hex_writes(void **state)
{
    (void)state;
    const uint8_t id[4] = {0x00, 0x9f, 0xa5, 0xff};
    uint8_t out[4];
    char hex[9];
    assert_int_equal(log_unhex(log_hex(hex, sizeof hex, id, 4), out, 4), 0);
    assert_memory_equal(out, id, 4);
    assert_int_equal(log_unhex("009FA5FF", out, 4), 0);
    assert_memory_equal(out, id, 4);
    const char *bad[] = {"009fa5f", "009fa5fff", "009fa5fg", " 09fa5ff", "0x9fa5ff", "", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(log_unhex(bad[i], out, 4), -1);
    assert_int_equal(log_unhex(NULL, out, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse_reads_what_log_time_writes),
        cmocka_unit_test(test_time_parse_refuses_what_is_not_a_time),
        cmocka_unit_test(test_unhex_reads_what_log_hex_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
