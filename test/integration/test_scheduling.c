/*
 * test_scheduling.c: how the hub shares one region's deliveries between
 * priority classes and sources (broker/dispatch.h), against a real nhubd on
 * the test catalogue (test/data/catalog-test.yaml: TEST-URGENT is urgent,
 * TEST-BULK bulk, TEST-PUSH normal).
 *
 * Each test fills the queue of a region that is not connected, then
 * connects its receiver with a small credit and looks at the order the
 * messages are handed over in: the order is the scheduler's, since
 * everything was queued before the first delivery.
 */
#include "harness.h"
#include "nhub.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TYPE "nhub.test.v1.Counter"
#define CREDIT 4

static int setup(void **state)
{
    th_hub_t *h = calloc(1, sizeof *h);
    if (!h || th_hub_init(h, NULL) != 0) {
        free(h);
        return -1;
    }
    if (th_hub_insecure_catalog(h, "test/data/catalog-test.yaml") != 0 || th_hub_start(h) != 0) {
        th_hub_cleanup(h);
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    return th_group_teardown(state);
}

static nhub_t *open_adapter(const th_hub_t *h, const char *region, uint32_t credit)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/adapter-%s", h->dir, region);
    nhub_options_t o;
    memset(&o, 0, sizeof o);
    o.region = region;
    o.hub_endpoint = h->endpoint;
    o.data_dir = path;
    o.credit = credit;
    o.send_only = credit == 0;
    o.heartbeat_ms = 500;
    o.insecure_plaintext = 1;
    nhub_t *a = NULL;
    if (nhub_open(&o, &a, err, sizeof err) != 0)
        fail_msg("nhub_open %s: %s", region, err);
    return a;
}

/* Send `n` messages "SRC:I" padded to `size` bytes, and wait for their ACKs. */
static void send_n(nhub_t *a, const char *src, const char *dst, const char *item, int kind, int n,
                   size_t size)
{
    char *payload = calloc(1, size + 32);
    assert_non_null(payload);
    for (int i = 0; i < n; i++) {
        int len = snprintf(payload, size + 32, "%s:%d", src, i);
        memset(payload + len, '.', size > (size_t)len ? size - (size_t)len : 0);
        nhub_message_t m;
        memset(&m, 0, sizeof m);
        m.destination = dst;
        m.item = item;
        m.kind = kind;
        m.payload_type = TYPE;
        m.payload = payload;
        m.payload_len = size > (size_t)len ? size : (size_t)len;
        assert_int_equal(nhub_send(a, &m, NULL), 0);
    }
    free(payload);
    assert_int_equal(nhub_flush(a, 30000), 0);
}

/* One hand-over: which source, which index. */
typedef struct handed {
    char src[8];
    int i;
} handed_t;

/* Receive `n` messages (bounded in time), confirming each, in order into out[]. */
static void receive_n(nhub_t *rx, handed_t *out, int n)
{
    int got = 0;
    int64_t deadline = th_now_ms() + 60000;
    while (got < n && th_now_ms() < deadline) {
        nhub_delivery_t *d = NULL;
        if (nhub_recv(rx, &d, 200) != 0)
            continue;
        char buf[32];
        size_t len = d->payload_len < 31 ? d->payload_len : 31;
        memcpy(buf, d->payload, len);
        buf[len] = 0;
        char *colon = strchr(buf, ':');
        assert_non_null(colon);
        assert_true(colon - buf == 6);
        memcpy(out[got].src, buf, 6);
        out[got].src[6] = 0;
        out[got].i = atoi(colon + 1);
        got++;
        assert_int_equal(nhub_confirm(rx, &d), 0);
    }
    assert_int_equal(got, n);
}

/* Per source, indexes 0, 1, 2, ... in order: the order of a lane is kept. */
static void assert_in_order(const handed_t *h, int n, const char *src, int count)
{
    int next = 0;
    for (int k = 0; k < n; k++)
        if (strcmp(h[k].src, src) == 0) {
            assert_int_equal(h[k].i, next);
            next++;
        }
    assert_int_equal(next, count);
}

/* Urgent requests queued after 300 bulk pushes are handed over first. */
static void test_urgent_overtakes_a_bulk_backlog(void **state)
{
    th_hub_t *h = *state;
    enum { BULK = 300, URGENT = 5 };
    nhub_t *bulk = open_adapter(h, "110000", 0), *urgent = open_adapter(h, "120000", 0);
    send_n(bulk, "110000", "310000", "TEST-BULK", NHUB_KIND_PUSH, BULK, 200);
    send_n(urgent, "120000", "310000", "TEST-URGENT", NHUB_KIND_REQUEST, URGENT, 200);

    nhub_t *rx = open_adapter(h, "310000", CREDIT);
    handed_t got[BULK + URGENT];
    receive_n(rx, got, BULK + URGENT);
    /* With weights 16 : 1 the urgent class takes the first slots. */
    int last_urgent = -1;
    for (int k = 0; k < BULK + URGENT; k++)
        if (strcmp(got[k].src, "120000") == 0)
            last_urgent = k;
    print_message("last urgent message handed over at position %d of %d\n", last_urgent,
                  BULK + URGENT);
    assert_true(last_urgent >= URGENT - 1 && last_urgent < URGENT + 2);
    assert_in_order(got, BULK + URGENT, "110000", BULK);
    assert_in_order(got, BULK + URGENT, "120000", URGENT);
    nhub_close(&rx);
    nhub_close(&urgent);
    nhub_close(&bulk);
}

/* Two sources of one class share bytes: 10 messages queued after 200 from
 * another source are not handed over behind all of them. */
static void test_sources_of_one_class_share(void **state)
{
    th_hub_t *h = *state;
    enum { FLOOD = 200, FEW = 10 };
    nhub_t *flood = open_adapter(h, "130000", 0), *few = open_adapter(h, "140000", 0);
    send_n(flood, "130000", "320000", "TEST-PUSH", NHUB_KIND_PUSH, FLOOD, 4096);
    send_n(few, "140000", "320000", "TEST-PUSH", NHUB_KIND_PUSH, FEW, 4096);

    nhub_t *rx = open_adapter(h, "320000", CREDIT);
    handed_t got[FLOOD + FEW];
    receive_n(rx, got, FLOOD + FEW);
    int last_few = -1, flood_before = 0;
    for (int k = 0; k < FLOOD + FEW; k++)
        if (strcmp(got[k].src, "140000") == 0)
            last_few = k;
    for (int k = 0; k < last_few; k++)
        flood_before += strcmp(got[k].src, "130000") == 0;
    print_message("the %d messages of the second source were handed over among the first %d; "
                  "%d of the flood before them\n",
                  FEW, last_few + 1, flood_before);
    /* Turns of DISPATCH_QUANTUM (16 KiB) bytes: about four 4 KiB messages each. */
    assert_true(flood_before <= 2 * FEW + 8);
    assert_in_order(got, FLOOD + FEW, "130000", FLOOD);
    assert_in_order(got, FLOOD + FEW, "140000", FEW);
    nhub_close(&rx);
    nhub_close(&few);
    nhub_close(&flood);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urgent_overtakes_a_bulk_backlog),
        cmocka_unit_test(test_sources_of_one_class_share),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
