/*
 * test_dispatch.c: the per-region delivery window (broker/dispatch.h).
 *
 * Time is a plain number passed in; nothing here sleeps. The window is
 * span-based: a confirmed message leaves the ring only once every message
 * before it is confirmed too, so confirming out of order frees no room until
 * the oldest unconfirmed message is confirmed. The last test drives the
 * window with a seeded pseudo-random sequence and checks it against a
 * plain-array model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dispatch.h"
#include "nhub_err.h"

#include <stdlib.h>
#include <string.h>

#define AFTER 1000
#define CAP 8000

static dispatch_t *window(uint32_t credit_max, uint32_t credit)
{
    dispatch_t *d = dispatch_new(credit_max, AFTER, CAP);
    assert_non_null(d);
    assert_int_equal(dispatch_reset(d, credit), 0);
    return d;
}

/* Send dseq first..last (seq = dseq + 100) at now_ms. */
static void send_range(dispatch_t *d, uint64_t first, uint64_t last, int64_t now_ms)
{
    for (uint64_t q = first; q <= last; q++)
        assert_int_equal(dispatch_sent(d, q, q + 100, now_ms), 0);
}

static void test_new_window_is_inactive_and_refuses_everything(void **state)
{
    (void)state;
    dispatch_t *d = dispatch_new(4, AFTER, CAP);
    assert_non_null(d);
    assert_int_equal(dispatch_active(d), 0);
    assert_int_equal(dispatch_room(d), 0);
    assert_int_equal(dispatch_inflight(d), 0);
    assert_int_equal(dispatch_cursor(d), 0);
    assert_int_equal(dispatch_next_due(d), INT64_MAX);
    assert_int_equal(dispatch_sent(d, 1, 1, 0), NHUB_EAGAIN);
    assert_int_equal(dispatch_confirm(d, 1), NHUB_ENOTFOUND);
    dispatch_entry_t out[4];
    assert_int_equal(dispatch_due(d, INT64_MAX, out, 4), 0);
    dispatch_destroy(&d);
    assert_null(d);
    dispatch_destroy(&d); /* NULL is accepted */
    dispatch_destroy(NULL);
}

static void test_zero_credit_max_is_refused(void **state)
{
    (void)state;
    assert_null(dispatch_new(0, AFTER, CAP));
}

static void test_room_respects_credit(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 3);
    assert_int_equal(dispatch_active(d), 1);
    assert_int_equal(dispatch_room(d), 3);
    assert_int_equal(dispatch_sent(d, 1, 101, 0), 0);
    assert_int_equal(dispatch_room(d), 2);
    send_range(d, 2, 3, 0);
    assert_int_equal(dispatch_room(d), 0);
    assert_int_equal(dispatch_inflight(d), 3);
    assert_int_equal(dispatch_sent(d, 4, 104, 0), NHUB_EAGAIN);
    assert_int_equal(dispatch_cursor(d), 4); /* the refused send moved nothing */
    assert_int_equal(dispatch_inflight(d), 3);
    dispatch_destroy(&d);
}

static void test_sent_moves_cursor_past_dseq(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 4);
    assert_int_equal(dispatch_cursor(d), 0);
    assert_int_equal(dispatch_sent(d, 1, 11, 0), 0);
    assert_int_equal(dispatch_cursor(d), 2);
    assert_int_equal(dispatch_sent(d, 5, 15, 0), 0); /* 2..4 were not sendable */
    assert_int_equal(dispatch_cursor(d), 6);
    dispatch_destroy(&d);
}

/* Span-based: the window spans oldest unconfirmed .. newest sent. */
static void test_confirm_out_of_order_frees_room_only_when_head_is_confirmed(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 3);
    send_range(d, 1, 3, 0);
    assert_int_equal(dispatch_confirm(d, 3), 0);
    assert_int_equal(dispatch_confirm(d, 2), 0);
    assert_int_equal(dispatch_inflight(d), 1);
    assert_int_equal(dispatch_room(d), 0);
    assert_int_equal(dispatch_sent(d, 4, 104, 0), NHUB_EAGAIN);
    assert_int_equal(dispatch_confirm(d, 1), 0);
    assert_int_equal(dispatch_inflight(d), 0);
    assert_int_equal(dispatch_room(d), 3);

    /* A confirmed head frees exactly the confirmed prefix. */
    send_range(d, 4, 6, 10);
    assert_int_equal(dispatch_confirm(d, 5), 0);
    assert_int_equal(dispatch_confirm(d, 4), 0);
    assert_int_equal(dispatch_room(d), 2);
    assert_int_equal(dispatch_inflight(d), 1);
    dispatch_destroy(&d);
}

static void test_confirm_of_dseq_not_in_flight_is_not_found(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 8);
    assert_int_equal(dispatch_confirm(d, 1), NHUB_ENOTFOUND); /* nothing sent */
    send_range(d, 5, 6, 0);
    dispatch_skip(d, 8);
    assert_int_equal(dispatch_sent(d, 9, 109, 0), 0);
    assert_int_equal(dispatch_confirm(d, 4), NHUB_ENOTFOUND);  /* before the window */
    assert_int_equal(dispatch_confirm(d, 7), NHUB_ENOTFOUND);  /* a gap inside it */
    assert_int_equal(dispatch_confirm(d, 8), NHUB_ENOTFOUND);  /* skipped */
    assert_int_equal(dispatch_confirm(d, 10), NHUB_ENOTFOUND); /* never sent */
    assert_int_equal(dispatch_confirm(d, UINT64_MAX), NHUB_ENOTFOUND);
    assert_int_equal(dispatch_inflight(d), 3);
    dispatch_destroy(&d);
}

static void test_confirm_finds_entries_across_dseq_gaps(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 8);
    assert_int_equal(dispatch_sent(d, 1, 101, 0), 0);
    dispatch_skip(d, 4);
    assert_int_equal(dispatch_sent(d, 5, 105, 0), 0);
    assert_int_equal(dispatch_sent(d, 9, 109, 0), 0);
    assert_int_equal(dispatch_sent(d, 10, 110, 0), 0);
    assert_int_equal(dispatch_confirm(d, 9), 0);
    assert_int_equal(dispatch_confirm(d, 5), 0);
    assert_int_equal(dispatch_confirm(d, 10), 0);
    assert_int_equal(dispatch_room(d), 4);
    assert_int_equal(dispatch_confirm(d, 1), 0);
    assert_int_equal(dispatch_room(d), 8);
    assert_int_equal(dispatch_inflight(d), 0);
    dispatch_destroy(&d);
}

static void test_double_confirm_is_not_found(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 4);
    send_range(d, 1, 3, 0);
    assert_int_equal(dispatch_confirm(d, 2), 0);
    assert_int_equal(dispatch_confirm(d, 2), NHUB_ENOTFOUND); /* confirmed, still in the ring */
    assert_int_equal(dispatch_confirm(d, 1), 0);
    assert_int_equal(dispatch_confirm(d, 1), NHUB_ENOTFOUND); /* confirmed and gone */
    assert_int_equal(dispatch_confirm(d, 2), NHUB_ENOTFOUND);
    assert_int_equal(dispatch_inflight(d), 1);
    assert_int_equal(dispatch_room(d), 3);
    dispatch_destroy(&d);
}

static void test_due_after_timeout_returns_entries_in_dseq_order_with_attempt_2(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 8);
    send_range(d, 1, 3, 0);
    dispatch_entry_t out[8];
    assert_int_equal(dispatch_due(d, AFTER - 1, out, 8), 0);
    assert_int_equal(dispatch_due(d, AFTER, out, 8), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out[i].dseq, i + 1);
        assert_int_equal(out[i].seq, i + 101);
        assert_int_equal(out[i].attempt, 2);
        assert_int_equal(out[i].due_ms, AFTER + 2 * AFTER);
        assert_int_equal(out[i].confirmed, 0);
    }
    /* Counted as sent again: not due again until the doubled timeout. */
    assert_int_equal(dispatch_due(d, 3 * AFTER - 1, out, 8), 0);
    assert_int_equal(dispatch_inflight(d), 3);
    dispatch_destroy(&d);
}

static void test_backoff_doubles_per_attempt_and_is_capped(void **state)
{
    (void)state;
    dispatch_t *d = window(4, 1);
    assert_int_equal(dispatch_sent(d, 1, 101, 0), 0);
    /* Timeouts per attempt: 1000, 2000, 4000, 8000 (cap), 8000, 8000. */
    const int64_t timeout[] = {1000, 2000, 4000, 8000, 8000, 8000};
    int64_t now = 0;
    dispatch_entry_t out[1];
    for (uint32_t k = 0; k < 6; k++) {
        int64_t due = now + timeout[k];
        assert_int_equal(dispatch_next_due(d), due);
        assert_int_equal(dispatch_due(d, due - 1, out, 1), 0);
        assert_int_equal(dispatch_due(d, due, out, 1), 1);
        assert_int_equal(out[0].attempt, k + 2);
        now = due;
    }
    dispatch_destroy(&d);
}

/* Late collection: the next timeout counts from the time of the resend. */
static void test_due_counts_next_timeout_from_the_resend_time(void **state)
{
    (void)state;
    dispatch_t *d = window(4, 2);
    assert_int_equal(dispatch_sent(d, 1, 101, 0), 0);
    dispatch_entry_t out[2];
    assert_int_equal(dispatch_due(d, 5000, out, 2), 1);
    assert_int_equal(out[0].due_ms, 5000 + 2 * AFTER);
    assert_int_equal(dispatch_next_due(d), 5000 + 2 * AFTER);
    dispatch_destroy(&d);
}

static void test_due_skips_confirmed_and_stops_at_max(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 8);
    send_range(d, 1, 4, 0);
    assert_int_equal(dispatch_confirm(d, 2), 0);
    dispatch_entry_t out[8];
    assert_int_equal(dispatch_due(d, AFTER, out, 2), 2);
    assert_int_equal(out[0].dseq, 1);
    assert_int_equal(out[1].dseq, 3);
    /* dseq 4 is still due: the next due time says so. */
    assert_true(dispatch_next_due(d) <= AFTER);
    assert_int_equal(dispatch_due(d, AFTER, out, 8), 1);
    assert_int_equal(out[0].dseq, 4);
    assert_int_equal(out[0].attempt, 2);
    assert_int_equal(dispatch_next_due(d), 3 * AFTER);
    dispatch_destroy(&d);
}

static void test_next_due_is_earliest_timeout_or_int64_max(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 8);
    assert_int_equal(dispatch_next_due(d), INT64_MAX);
    assert_int_equal(dispatch_sent(d, 1, 101, 500), 0);
    assert_int_equal(dispatch_sent(d, 2, 102, 200), 0);
    assert_int_equal(dispatch_next_due(d), 200 + AFTER);
    assert_int_equal(dispatch_confirm(d, 2), 0);
    /* next_due may be a lower bound until dispatch_due recomputes it. */
    assert_true(dispatch_next_due(d) <= 500 + AFTER);
    dispatch_entry_t out[2];
    assert_int_equal(dispatch_due(d, 200 + AFTER, out, 2), 0);
    assert_int_equal(dispatch_next_due(d), 500 + AFTER);
    assert_int_equal(dispatch_confirm(d, 1), 0);
    assert_int_equal(dispatch_next_due(d), INT64_MAX);
    dispatch_destroy(&d);
}

static void test_reset_forgets_in_flight_and_cursor(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 4);
    send_range(d, 1, 4, 0);
    assert_int_equal(dispatch_confirm(d, 3), 0);
    assert_int_equal(dispatch_reset(d, 4), 0);
    assert_int_equal(dispatch_active(d), 1);
    assert_int_equal(dispatch_inflight(d), 0);
    assert_int_equal(dispatch_cursor(d), 0);
    assert_int_equal(dispatch_room(d), 4);
    assert_int_equal(dispatch_next_due(d), INT64_MAX);
    assert_int_equal(dispatch_confirm(d, 1), NHUB_ENOTFOUND); /* an earlier session's */
    dispatch_entry_t out[4];
    assert_int_equal(dispatch_due(d, INT64_MAX - CAP, out, 4), 0);
    /* The new session starts from the head of the queue again. */
    send_range(d, 1, 2, 50);
    assert_int_equal(dispatch_cursor(d), 3);
    assert_int_equal(dispatch_next_due(d), 50 + AFTER);
    dispatch_destroy(&d);
}

static void test_stop_makes_room_zero_and_forgets_in_flight(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 4);
    send_range(d, 1, 2, 0);
    dispatch_stop(d);
    assert_int_equal(dispatch_active(d), 0);
    assert_int_equal(dispatch_room(d), 0);
    assert_int_equal(dispatch_inflight(d), 0);
    assert_int_equal(dispatch_next_due(d), INT64_MAX);
    assert_int_equal(dispatch_sent(d, 3, 103, 0), NHUB_EAGAIN);
    assert_int_equal(dispatch_confirm(d, 1), NHUB_ENOTFOUND);
    dispatch_entry_t out[4];
    assert_int_equal(dispatch_due(d, 10 * CAP, out, 4), 0);
    assert_int_equal(dispatch_reset(d, 2), 0);
    assert_int_equal(dispatch_room(d), 2);
    dispatch_destroy(&d);
}

static void test_skip_moves_cursor_forward_only(void **state)
{
    (void)state;
    dispatch_t *d = window(16, 4);
    dispatch_skip(d, 1);
    assert_int_equal(dispatch_cursor(d), 2);
    dispatch_skip(d, 5);
    assert_int_equal(dispatch_cursor(d), 6);
    dispatch_skip(d, 3);
    assert_int_equal(dispatch_cursor(d), 6);
    assert_int_equal(dispatch_room(d), 4); /* skipping takes no room */
    assert_int_equal(dispatch_inflight(d), 0);
    dispatch_destroy(&d);
}

static void test_credit_is_clamped_to_one_and_credit_max(void **state)
{
    (void)state;
    dispatch_t *d = window(4, 100);
    assert_int_equal(dispatch_room(d), 4);
    send_range(d, 1, 4, 0);
    assert_int_equal(dispatch_sent(d, 5, 105, 0), NHUB_EAGAIN);
    assert_int_equal(dispatch_reset(d, 0), 0);
    assert_int_equal(dispatch_room(d), 1);
    dispatch_destroy(&d);
}

/* The ring is allocated for the credit in use; a larger credit must grow it
 * (ASan would catch a write past a ring that did not grow). */
static void test_reset_with_larger_credit_grows_ring(void **state)
{
    (void)state;
    dispatch_t *d = window(64, 2);
    send_range(d, 1, 2, 0);
    assert_int_equal(dispatch_sent(d, 3, 103, 0), NHUB_EAGAIN);
    assert_int_equal(dispatch_reset(d, 64), 0);
    assert_int_equal(dispatch_room(d), 64);
    send_range(d, 1, 64, 0);
    assert_int_equal(dispatch_room(d), 0);
    dispatch_entry_t out[64];
    assert_int_equal(dispatch_due(d, AFTER, out, 64), 64);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(out[i].dseq, i + 1);
    for (uint64_t q = 64; q >= 2; q--)
        assert_int_equal(dispatch_confirm(d, q), 0);
    assert_int_equal(dispatch_room(d), 0);
    assert_int_equal(dispatch_confirm(d, 1), 0);
    assert_int_equal(dispatch_room(d), 64);
    /* And back down: a smaller credit uses part of the larger ring. */
    assert_int_equal(dispatch_reset(d, 3), 0);
    assert_int_equal(dispatch_room(d), 3);
    dispatch_destroy(&d);
}

static void test_ring_wraps_around_keeping_dseq_order(void **state)
{
    (void)state;
    dispatch_t *d = window(3, 3);
    send_range(d, 1, 3, 0);
    assert_int_equal(dispatch_confirm(d, 1), 0);
    assert_int_equal(dispatch_sent(d, 4, 104, 10), 0); /* takes slot 0 again */
    assert_int_equal(dispatch_confirm(d, 3), 0);
    assert_int_equal(dispatch_room(d), 0);
    dispatch_entry_t out[3];
    assert_int_equal(dispatch_due(d, AFTER + 10, out, 3), 2);
    assert_int_equal(out[0].dseq, 2);
    assert_int_equal(out[1].dseq, 4);
    assert_int_equal(dispatch_confirm(d, 4), 0);
    assert_int_equal(dispatch_confirm(d, 2), 0);
    assert_int_equal(dispatch_room(d), 3);
    assert_int_equal(dispatch_inflight(d), 0);
    dispatch_destroy(&d);
}

static void test_timeouts_are_clamped_and_can_be_changed(void **state)
{
    (void)state;
    dispatch_t *d = dispatch_new(4, 0, -5); /* after at least 1, cap at least after */
    assert_non_null(d);
    assert_int_equal(dispatch_reset(d, 4), 0);
    assert_int_equal(dispatch_sent(d, 1, 101, 100), 0);
    assert_int_equal(dispatch_next_due(d), 101);
    dispatch_set_timeouts(d, 50, 120);
    assert_int_equal(dispatch_sent(d, 2, 102, 100), 0);
    dispatch_entry_t out[4];
    assert_int_equal(dispatch_due(d, 150, out, 4), 2);
    assert_int_equal(out[0].due_ms, 150 + 100); /* attempt 2 of 50 ms: 100 */
    assert_int_equal(out[1].due_ms, 150 + 100);
    assert_int_equal(dispatch_due(d, 250, out, 4), 2);
    assert_int_equal(out[0].due_ms, 250 + 120); /* 200 capped at 120 */
    dispatch_set_timeouts(d, 500, 100);           /* cap below after: cap = after */
    assert_int_equal(dispatch_due(d, 370, out, 4), 2);
    assert_int_equal(out[0].due_ms, 370 + 500);
    dispatch_destroy(&d);
}

/* ---- model check ----------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#define MODEL_MAX 64

typedef struct model {
    uint64_t dseq[MODEL_MAX]; /* oldest unconfirmed .. newest sent */
    int confirmed[MODEL_MAX];
    size_t n;
} model_t;

static size_t model_unconfirmed(const model_t *m)
{
    size_t u = 0;
    for (size_t i = 0; i < m->n; i++)
        u += !m->confirmed[i];
    return u;
}

static void model_pop(model_t *m)
{
    size_t k = 0;
    while (k < m->n && m->confirmed[k])
        k++;
    memmove(m->dseq, m->dseq + k, (m->n - k) * sizeof m->dseq[0]);
    memmove(m->confirmed, m->confirmed + k, (m->n - k) * sizeof m->confirmed[0]);
    m->n -= k;
}

/* Each entry names the dseq sent before it, across skips, and a resend
 * keeps the prev it was first sent with. */
static void test_entries_carry_the_previously_sent_dseq(void **state)
{
    (void)state;
    dispatch_t *d = dispatch_new(8, 100, 1000);
    assert_non_null(d);
    assert_int_equal(dispatch_reset(d, 8), 0);
    assert_int_equal(dispatch_last_sent(d), 0);
    assert_int_equal(dispatch_sent(d, 1, 11, 0), 0);
    dispatch_skip(d, 2); /* set aside */
    dispatch_skip(d, 3);
    assert_int_equal(dispatch_last_sent(d), 1);
    assert_int_equal(dispatch_sent(d, 4, 14, 0), 0);
    dispatch_entry_t due[4];
    assert_int_equal(dispatch_due(d, 100, due, 4), 2);
    assert_int_equal(due[0].dseq, 1);
    assert_int_equal(due[0].prev_dseq, 0);
    assert_int_equal(due[1].dseq, 4);
    assert_int_equal(due[1].prev_dseq, 1);
    assert_int_equal(dispatch_reset(d, 8), 0);
    assert_int_equal(dispatch_last_sent(d), 0);
    dispatch_destroy(&d);
}

static void test_random_operations_match_span_model(void **state)
{
    (void)state;
    const uint32_t credit = 7;
    dispatch_t *d = window(credit, credit);
    model_t m = {0};
    uint64_t rng = 0x9E3779B97F4A7C15ull, next = 1;
    for (int step = 0; step < 20000; step++) {
        uint64_t r = rng_next(&rng);
        if (r % 3 == 0 && m.n < credit) {
            next += (r >> 8) % 3; /* sometimes leave a gap (set aside) */
            assert_int_equal(dispatch_sent(d, next, next, step), 0);
            m.dseq[m.n] = next++;
            m.confirmed[m.n++] = 0;
        } else if (r % 3 == 0) {
            assert_int_equal(dispatch_sent(d, next, next, step), NHUB_EAGAIN);
        } else {
            uint64_t q = m.n ? m.dseq[0] + (r >> 8) % (m.dseq[m.n - 1] - m.dseq[0] + 2) : next;
            int want = NHUB_ENOTFOUND;
            for (size_t i = 0; i < m.n; i++)
                if (m.dseq[i] == q && !m.confirmed[i]) {
                    m.confirmed[i] = 1;
                    want = 0;
                }
            assert_int_equal(dispatch_confirm(d, q), want);
            model_pop(&m);
        }
        assert_int_equal(dispatch_room(d), credit - m.n);
        assert_int_equal(dispatch_inflight(d), model_unconfirmed(&m));
        assert_int_equal(dispatch_cursor(d), next);
    }
    dispatch_destroy(&d);
}

/* ---- lanes ------------------------------------------------------------------ */

/* A model of a region's queue: lanes of messages, each lane in dseq order. */
typedef struct model_lane {
    store_lane_t key;
    uint32_t size;  /* every message of the lane has this size */
    uint64_t count; /* messages in it: dseq lane_base + 1 .. + count */
    uint64_t base;
} model_lane_t;

/* Run the scheduler the way deliver.c does for `sends` deliveries, each
 * confirmed at once; `got[l]` counts lane l's sends, `bytes[l]` their bytes,
 * and `order` (if not NULL) records the lane of each send. */
static void drive(dispatch_t *d, model_lane_t *m, size_t n, size_t sends, uint64_t *got,
                  uint64_t *bytes, int *order)
{
    store_lane_t keys[8];
    for (size_t i = 0; i < n; i++)
        keys[i] = m[i].key;
    assert_int_equal(dispatch_lanes_sync(d, keys, n), 0);
    size_t sent = 0;
    while (sent < sends) {
        int li = dispatch_next_lane(d);
        if (li < 0)
            break;
        uint64_t next = dispatch_lane_cursor(d, (size_t)li);
        model_lane_t *l = &m[li];
        uint64_t first = l->base + 1;
        uint64_t dseq = next < first ? first : next;
        if (dseq > l->base + l->count) {
            dispatch_lane_empty(d, (size_t)li);
            continue;
        }
        if (!dispatch_lane_fits(d, (size_t)li, l->size)) {
            dispatch_lane_turn(d, (size_t)li);
            continue;
        }
        assert_int_equal(dispatch_sent_lane(d, (size_t)li, dseq, dseq, l->size, 0, 0), 0);
        assert_int_equal(dispatch_confirm(d, dseq), 0);
        got[li]++;
        bytes[li] += l->size;
        if (order)
            order[sent] = li;
        sent++;
    }
}

/* Classes share by weight, interleaved: 16 urgent, 4 normal, 1 bulk in 21. */
static void test_classes_share_by_weight_and_interleave(void **state)
{
    (void)state;
    dispatch_t *d = window(64, 64);
    model_lane_t m[3] = {
        {{0, "110000"}, 100, 100000, 0},      /* normal */
        {{1, "120000"}, 100, 100000, 100000}, /* urgent */
        {{2, "130000"}, 100, 100000, 200000}, /* bulk */
    };
    uint64_t got[3] = {0}, bytes[3] = {0};
    int order[2100];
    drive(d, m, 3, 2100, got, bytes, order);
    assert_int_equal(got[1], 1600);
    assert_int_equal(got[0], 400);
    assert_int_equal(got[2], 100);
    /* Never more than two other sends between two urgent ones. */
    int since = 0, worst = 0;
    for (int i = 0; i < 2100; i++) {
        since = order[i] == 1 ? 0 : since + 1;
        worst = since > worst ? since : worst;
    }
    assert_true(worst <= 2);
    dispatch_destroy(&d);
}

/* Within a class the lanes share bytes: 1 MiB envelopes do not take 1000x. */
static void test_lanes_of_a_class_share_bytes(void **state)
{
    (void)state;
    dispatch_t *d = window(64, 64);
    model_lane_t m[2] = {
        {{0, "110000"}, 1 << 20, 100000, 0},  /* big envelopes */
        {{0, "120000"}, 1024, 1000000, 100000}, /* small ones */
    };
    uint64_t got[2] = {0}, bytes[2] = {0};
    drive(d, m, 2, 20000, got, bytes, NULL);
    assert_true(got[0] > 0 && got[1] > 0);
    /* Equal bytes within one big envelope and a quantum. */
    uint64_t diff = bytes[0] > bytes[1] ? bytes[0] - bytes[1] : bytes[1] - bytes[0];
    assert_true(diff <= (1u << 20) + DISPATCH_QUANTUM);
    dispatch_destroy(&d);
}

/* One lane alone gets every delivery, however big its messages. */
static void test_a_lane_alone_is_never_held_back(void **state)
{
    (void)state;
    dispatch_t *d = window(64, 64);
    model_lane_t m[1] = {{{2, "110000"}, 8u << 20, 10, 0}};
    uint64_t got[1] = {0}, bytes[1] = {0};
    drive(d, m, 1, 100, got, bytes, NULL);
    assert_int_equal(got[0], 10);
    assert_int_equal(dispatch_next_lane(d), -1); /* empty now */
    dispatch_destroy(&d);
}

/* A sync keeps what it knows (cursor), forgets lanes gone, adds new ones. */
static void test_sync_keeps_cursors_and_forgets_lanes_gone(void **state)
{
    (void)state;
    dispatch_t *d = window(64, 64);
    model_lane_t m[2] = {{{0, "110000"}, 10, 5, 0}, {{0, "120000"}, 10, 5, 5}};
    uint64_t got[2] = {0}, bytes[2] = {0};
    drive(d, m, 2, 4, got, bytes, NULL);
    assert_int_equal(got[0] + got[1], 4);
    uint64_t c0 = dispatch_lane_cursor(d, 0), c1 = dispatch_lane_cursor(d, 1);
    assert_true(c0 > 0 || c1 > 0);

    store_lane_t keys[2] = {{0, "100000"}, {0, "120000"}};
    assert_int_equal(dispatch_lanes_sync(d, keys, 2), 0);
    assert_int_equal(dispatch_lane_count(d), 2);
    assert_string_equal(dispatch_lane_key(d, 0)->source, "100000");
    assert_int_equal(dispatch_lane_cursor(d, 0), 0); /* new */
    assert_int_equal(dispatch_lane_cursor(d, 1), c1); /* kept */
    assert_int_equal(dispatch_lanes_sync(d, NULL, 0), 0);
    assert_int_equal(dispatch_lane_count(d), 0);
    assert_int_equal(dispatch_next_lane(d), -1);
    /* A new session starts every lane from the head again. */
    assert_int_equal(dispatch_lanes_sync(d, keys, 2), 0);
    assert_int_equal(dispatch_sent_lane(d, 1, 9, 9, 10, 0, 0), 0);
    assert_int_equal(dispatch_lane_cursor(d, 1), 10);
    assert_int_equal(dispatch_reset(d, 64), 0);
    assert_int_equal(dispatch_lane_cursor(d, 1), 0);
    dispatch_destroy(&d);
}

/* Sends out of dseq order (lanes) are still confirmed and redelivered. */
static void test_out_of_order_sends_confirm_and_redeliver(void **state)
{
    (void)state;
    dispatch_t *d = window(8, 8);
    const uint64_t sends[] = {50, 3, 51, 4};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(dispatch_sent(d, sends[i], sends[i], 0), 0);
    assert_int_equal(dispatch_confirm(d, 3), 0);
    assert_int_equal(dispatch_confirm(d, 3), NHUB_ENOTFOUND);
    assert_int_equal(dispatch_confirm(d, 52), NHUB_ENOTFOUND);
    assert_int_equal(dispatch_inflight(d), 3);
    dispatch_entry_t due[8];
    assert_int_equal(dispatch_due(d, AFTER, due, 8), 3);
    assert_int_equal(due[0].dseq, 50); /* send order */
    assert_int_equal(due[1].dseq, 51);
    assert_int_equal(due[1].prev_dseq, 3);
    assert_int_equal(due[2].dseq, 4);
    assert_int_equal(dispatch_confirm(d, 50), 0);
    assert_int_equal(dispatch_room(d), 6); /* 50 and 3 left the ring */
    dispatch_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_window_is_inactive_and_refuses_everything),
        cmocka_unit_test(test_zero_credit_max_is_refused),
        cmocka_unit_test(test_room_respects_credit),
        cmocka_unit_test(test_sent_moves_cursor_past_dseq),
        cmocka_unit_test(test_confirm_out_of_order_frees_room_only_when_head_is_confirmed),
        cmocka_unit_test(test_confirm_of_dseq_not_in_flight_is_not_found),
        cmocka_unit_test(test_confirm_finds_entries_across_dseq_gaps),
        cmocka_unit_test(test_double_confirm_is_not_found),
        cmocka_unit_test(test_due_after_timeout_returns_entries_in_dseq_order_with_attempt_2),
        cmocka_unit_test(test_backoff_doubles_per_attempt_and_is_capped),
        cmocka_unit_test(test_due_counts_next_timeout_from_the_resend_time),
        cmocka_unit_test(test_due_skips_confirmed_and_stops_at_max),
        cmocka_unit_test(test_next_due_is_earliest_timeout_or_int64_max),
        cmocka_unit_test(test_reset_forgets_in_flight_and_cursor),
        cmocka_unit_test(test_stop_makes_room_zero_and_forgets_in_flight),
        cmocka_unit_test(test_skip_moves_cursor_forward_only),
        cmocka_unit_test(test_credit_is_clamped_to_one_and_credit_max),
        cmocka_unit_test(test_reset_with_larger_credit_grows_ring),
        cmocka_unit_test(test_ring_wraps_around_keeping_dseq_order),
        cmocka_unit_test(test_timeouts_are_clamped_and_can_be_changed),
        cmocka_unit_test(test_entries_carry_the_previously_sent_dseq),
        cmocka_unit_test(test_random_operations_match_span_model),
        cmocka_unit_test(test_classes_share_by_weight_and_interleave),
        cmocka_unit_test(test_lanes_of_a_class_share_bytes),
        cmocka_unit_test(test_a_lane_alone_is_never_held_back),
        cmocka_unit_test(test_sync_keeps_cursors_and_forgets_lanes_gone),
        cmocka_unit_test(test_out_of_order_sends_confirm_and_redeliver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
