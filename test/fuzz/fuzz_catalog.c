/*
 * fuzz_catalog.c: libFuzzer target for the service-item catalogue reader
 * (broker/catalog.h), the hub's access rules.
 *
 * The input is loaded with catalog_load_string(). Besides memory safety it
 * checks what the header promises; each failure aborts with a line on
 * stderr:
 *
 *   - a failed load leaves *out NULL, returns NHUB_ECONFIG or NHUB_ENOMEM,
 *     and its error names the file;
 *   - a loaded catalogue answers catalog_check() with 0 or NHUB_EREFUSED
 *     only, an empty reason exactly when allowed and a "catalogue: " one
 *     otherwise; never allows an unknown item, a kind outside 1..5, or a
 *     broadcast of anything but a notice; and its time limits are 0 or in
 *     1 minute .. 365 days.
 *
 * Speed: the loader's record of the file as read is tens of MiB of fixed
 * arrays (catalog.c), which ASan maps, poisons and unmaps on every load:
 * about 40 inputs/s. It is kept across inputs instead (keep_block.h).
 */
#include "catalog.h"

#include "nhub_err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz-catalog.yaml"
#define DAY_MS (86400000LL)

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_catalog: property failed: %s\n", what);
    abort();
}

#include "keep_block.h"

/* Items and regions to ask about: the seeds' own, and some that no catalogue
 * can hold. */
static const char *const items[] = {"SI-VERIFY-001", "SI-PUSH-001",  "SI-NOTICE-001",
                                    "BENCH-ITEM",    "SI-VERIFY-00", ""};
static const char *const regions[] = {"110000", "440000", "650000", "*", "11000"};

static void check_rules(const catalog_t *c)
{
    char why[256];
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        int64_t limit = catalog_time_limit_ms(c, items[i]);
        if (limit != 0 && (limit < 1000 || limit > 365 * DAY_MS))
            fail("a time limit out of 1s..365d");
        const char *name = catalog_item_name(c, items[i]);
        for (int kind = 0; kind <= 6; kind++)
            for (size_t s = 0; s < sizeof regions / sizeof regions[0]; s++)
                for (size_t d = 0; d < sizeof regions / sizeof regions[0]; d++) {
                    memset(why, 'x', sizeof why);
                    int rc = catalog_check(c, items[i], kind, regions[s], regions[d], why,
                                           sizeof why);
                    if (!memchr(why, '\0', sizeof why))
                        fail("reason not terminated");
                    if (rc != 0 && rc != NHUB_EREFUSED)
                        fail("catalog_check: undocumented code");
                    if ((rc == 0) != (why[0] == '\0'))
                        fail("a reason given with an allowance, or none with a refusal");
                    if (rc != 0 && strncmp(why, "catalogue: ", 11) != 0)
                        fail("a refusal whose reason does not start with \"catalogue: \"");
                    if (rc == 0 && (!name || kind < 1 || kind > 5))
                        fail("an unknown item or kind allowed");
                    if (rc == 0 && strcmp(regions[d], "*") == 0 && kind != CATALOG_KIND_NOTICE)
                        fail("a broadcast of something other than a notice allowed");
                }
        for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++) {
            int may = catalog_may_receive(c, items[i], regions[r]);
            if (may != 0 && may != 1)
                fail("catalog_may_receive: not 0 or 1");
            if (may && !name)
                fail("a receiver of an unknown item");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    keep_block_min = (size_t)1 << 20; /* the loader's record; nothing else is as large */
    static char sentinel;
    catalog_t *c = (catalog_t *)(void *)&sentinel; /* must be set to NULL on failure */
    char err[512];
    memset(err, 'x', sizeof err);
    int rc = catalog_load_string(NAME, (const char *)data, size, &c, err, sizeof err);
    if (!memchr(err, '\0', sizeof err))
        fail("error message not terminated");
    if (rc != 0) {
        if (c != NULL)
            fail("a failed load left *out set");
        if (rc != NHUB_ECONFIG && rc != NHUB_ENOMEM)
            fail("a load failed with an undocumented code");
        if (!strstr(err, NAME))
            fail("an error message does not name the file");
        if (keep_block_in_use())
            fail("the loader's record is still allocated after a failed load");
        return 0;
    }
    if (!c || err[0] != '\0')
        fail("a successful load without a result or with a message");
    check_rules(c);
    catalog_destroy(&c);
    if (c)
        fail("catalog_destroy did not clear the pointer");
    if (keep_block_in_use())
        fail("the loader's record is still allocated after the load");
    return 0;
}
