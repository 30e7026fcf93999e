/*
 * test_session.c: the routing id -> session table (broker/session.h).
 *
 * Routing ids are opaque bytes; the tests use ZeroMQ-like 5-byte ids with a
 * leading 0 and a counter, plus edge lengths (1 and 255). Large tables are
 * filled past the bucket count so chains form, and removal is checked at the
 * head, middle and end of chains. Memory ownership (pattern copies, freeing
 * on remove and destroy) is checked by the ASan build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nhub_err.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

typedef struct rid {
    uint8_t b[5];
} rid_t;

static rid_t rid_of(uint32_t n)
{
    rid_t r = {{0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n}};
    return r;
}

static session_table_t *table(size_t max)
{
    session_table_t *t = session_table_new(max);
    assert_non_null(t);
    return t;
}

static session_t *add(session_table_t *t, uint32_t n)
{
    rid_t r = rid_of(n);
    session_t *s = session_get_or_add(t, r.b, sizeof r.b);
    assert_non_null(s);
    return s;
}

static session_t *find(session_table_t *t, uint32_t n)
{
    rid_t r = rid_of(n);
    return session_find(t, r.b, sizeof r.b);
}

static void test_add_find_remove(void **state)
{
    (void)state;
    session_table_t *t = table(8);
    assert_int_equal(session_count(t), 0);
    assert_null(find(t, 1));
    session_t *a = add(t, 1);
    session_t *b = add(t, 2);
    assert_ptr_not_equal(a, b);
    assert_int_equal(session_count(t), 2);
    assert_ptr_equal(find(t, 1), a);
    assert_ptr_equal(find(t, 2), b);
    session_remove(t, a);
    assert_int_equal(session_count(t), 1);
    assert_null(find(t, 1));
    assert_ptr_equal(find(t, 2), b);
    session_table_destroy(&t);
    assert_null(t);
    session_table_destroy(&t); /* NULL is accepted */
    session_table_destroy(NULL);
}

static void test_new_session_is_zeroed_with_region_minus_one(void **state)
{
    (void)state;
    session_table_t *t = table(4);
    rid_t r = rid_of(7);
    session_t *s = session_get_or_add(t, r.b, sizeof r.b);
    assert_non_null(s);
    assert_int_equal(s->region, -1);
    assert_int_equal(s->rid_len, 5);
    assert_memory_equal(s->rid, r.b, 5);
    assert_int_equal(s->credit, 0);
    assert_int_equal(s->last_seen_ms, 0);
    assert_int_equal(s->n_accepted, 0);
    uint8_t zero[16] = {0};
    assert_memory_equal(s->stream_id, zero, 16);
    session_table_destroy(&t);
}

static void test_get_or_add_returns_the_existing_session(void **state)
{
    (void)state;
    session_table_t *t = table(4);
    session_t *s = add(t, 3);
    s->region = 5;
    s->credit = 10;
    assert_ptr_equal(add(t, 3), s);
    assert_int_equal(s->region, 5); /* not reset */
    assert_int_equal(s->credit, 10);
    assert_int_equal(session_count(t), 1);
    session_table_destroy(&t);
}

static void test_rid_lengths_zero_and_over_255_are_refused(void **state)
{
    (void)state;
    session_table_t *t = table(4);
    uint8_t big[SESSION_RID_MAX + 1];
    memset(big, 0x5A, sizeof big);
    assert_null(session_get_or_add(t, big, 0));
    assert_null(session_get_or_add(t, big, SESSION_RID_MAX + 1));
    assert_int_equal(session_count(t), 0);
    assert_null(session_find(t, big, SESSION_RID_MAX + 1));
    session_t *s = session_get_or_add(t, big, SESSION_RID_MAX);
    assert_non_null(s);
    assert_ptr_equal(session_find(t, big, SESSION_RID_MAX), s);
    session_t *one = session_get_or_add(t, big, 1);
    assert_non_null(one);
    assert_ptr_not_equal(one, s);
    assert_int_equal(session_count(t), 2);
    session_table_destroy(&t);
}

static void test_rids_differing_only_in_length_are_different_sessions(void **state)
{
    (void)state;
    session_table_t *t = table(4);
    session_t *ab = session_get_or_add(t, "ab", 2);
    session_t *abc = session_get_or_add(t, "abc", 3);
    assert_non_null(ab);
    assert_non_null(abc);
    assert_ptr_not_equal(ab, abc);
    assert_ptr_equal(session_find(t, "ab", 2), ab);
    assert_ptr_equal(session_find(t, "abc", 3), abc);
    assert_null(session_find(t, "a", 1));
    assert_null(session_find(t, "abcd", 4));
    session_table_destroy(&t);
}

static void test_full_table_returns_null_until_a_session_is_removed(void **state)
{
    (void)state;
    session_table_t *t = table(3);
    session_t *s[3];
    for (uint32_t i = 0; i < 3; i++)
        s[i] = add(t, i);
    rid_t r = rid_of(99);
    assert_null(session_get_or_add(t, r.b, sizeof r.b));
    assert_int_equal(session_count(t), 3);
    assert_null(find(t, 99));
    assert_ptr_equal(add(t, 1), s[1]); /* an existing one is still found */
    session_remove(t, s[1]);
    assert_non_null(add(t, 99));
    assert_int_equal(session_count(t), 3);
    assert_null(session_get_or_add(t, rid_of(100).b, 5));
    session_table_destroy(&t);
}

static void test_zero_max_table_holds_nothing(void **state)
{
    (void)state;
    session_table_t *t = table(0);
    assert_null(session_get_or_add(t, "x", 1));
    assert_int_equal(session_count(t), 0);
    session_table_destroy(&t);
}

/* More sessions than buckets: chains form; removal anywhere in a chain keeps
 * every other session findable. */
static void test_many_sessions_stay_findable_through_removals(void **state)
{
    (void)state;
    const uint32_t n = 5000;
    session_table_t *t = table(n);
    for (uint32_t i = 0; i < n; i++)
        add(t, i)->credit = i;
    assert_int_equal(session_count(t), n);
    assert_null(session_get_or_add(t, rid_of(n).b, 5));
    for (uint32_t i = 0; i < n; i += 3)
        session_remove(t, find(t, i));
    for (uint32_t i = 0; i < n; i++) {
        session_t *s = find(t, i);
        if (i % 3 == 0) {
            assert_null(s);
        } else {
            assert_non_null(s);
            assert_int_equal(s->credit, i);
        }
    }
    assert_int_equal(session_count(t), n - (n + 2) / 3);
    session_table_destroy(&t);
}

/* ---- accepted payload patterns --------------------------------------------- */

static void test_set_accepted_copies_the_patterns(void **state)
{
    (void)state;
    session_table_t *t = table(2);
    session_t *s = add(t, 1);
    char a[] = "nhub.verify.v1.*", b[] = "nhub.push.v1.Notice";
    char *pats[] = {a, b};
    assert_int_equal(session_set_accepted(s, pats, 2), 0);
    a[0] = 'X'; /* the caller's buffers are not kept */
    b[0] = 'X';
    assert_int_equal(s->n_accepted, 2);
    assert_string_equal(s->accepted[0], "nhub.verify.v1.*");
    assert_string_equal(s->accepted[1], "nhub.push.v1.Notice");
    assert_ptr_not_equal(s->accepted[0], a);
    session_table_destroy(&t);
}

static void test_set_accepted_replaces_previous_patterns(void **state)
{
    (void)state;
    session_table_t *t = table(2);
    session_t *s = add(t, 1);
    char *three[] = {"a.v1.*", "b.v1.X", "c.v1.Y"};
    char *one[] = {"d.v1.Z"};
    assert_int_equal(session_set_accepted(s, three, 3), 0);
    assert_int_equal(session_set_accepted(s, one, 1), 0);
    assert_int_equal(s->n_accepted, 1);
    assert_string_equal(s->accepted[0], "d.v1.Z");
    assert_int_equal(session_set_accepted(s, NULL, 0), 0); /* none = accept all */
    assert_int_equal(s->n_accepted, 0);
    assert_int_equal(session_set_accepted(s, three, 3), 0);
    session_remove(t, s); /* frees the copies (checked by ASan) */
    assert_int_equal(session_count(t), 0);
    session_table_destroy(&t);
}

static void test_set_accepted_from_its_own_array(void **state)
{
    (void)state;
    session_table_t *t = table(2);
    session_t *s = add(t, 1);
    char *two[] = {"a.v1.*", "b.v1.X"};
    assert_int_equal(session_set_accepted(s, two, 2), 0);
    assert_int_equal(session_set_accepted(s, s->accepted, 2), 0);
    assert_string_equal(s->accepted[0], "a.v1.*");
    assert_string_equal(s->accepted[1], "b.v1.X");
    assert_int_equal(session_set_accepted(s, s->accepted + 1, 1), 0);
    assert_int_equal(s->n_accepted, 1);
    assert_string_equal(s->accepted[0], "b.v1.X");
    session_table_destroy(&t);
}

static void test_set_accepted_over_limit_is_toobig_and_keeps_old(void **state)
{
    (void)state;
    session_table_t *t = table(2);
    session_t *s = add(t, 1);
    char *old[] = {"keep.v1.*"};
    assert_int_equal(session_set_accepted(s, old, 1), 0);
    char *many[SESSION_ACCEPT_MAX + 1];
    for (size_t i = 0; i <= SESSION_ACCEPT_MAX; i++)
        many[i] = "p.v1.*";
    assert_int_equal(session_set_accepted(s, many, SESSION_ACCEPT_MAX + 1), NHUB_ETOOBIG);
    assert_int_equal(s->n_accepted, 1);
    assert_string_equal(s->accepted[0], "keep.v1.*");
    assert_int_equal(session_set_accepted(s, many, SESSION_ACCEPT_MAX), 0);
    assert_int_equal(s->n_accepted, SESSION_ACCEPT_MAX);
    session_table_destroy(&t);
}

/* ---- foreach --------------------------------------------------------------- */

typedef struct visit {
    uint32_t seen[4096];
    size_t n;
    int remove_odd;
    size_t stop_after;
    session_table_t *t;
} visit_t;

static int visit_fn(void *arg, session_t *s)
{
    visit_t *v = arg;
    v->seen[v->n++] = s->credit;
    if (v->remove_odd && (s->credit & 1))
        session_remove(v->t, s);
    return v->stop_after && v->n >= v->stop_after;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_foreach_visits_each_once_and_may_remove_current(void **state)
{
    (void)state;
    const uint32_t n = 2000; /* 4096 buckets: some chains of 2 or more */
    session_table_t *t = table(n);
    for (uint32_t i = 0; i < n; i++)
        add(t, i)->credit = i;
    static visit_t v;
    memset(&v, 0, sizeof v);
    v.remove_odd = 1;
    v.t = t;
    session_foreach(t, visit_fn, &v);
    assert_int_equal(v.n, n);
    qsort(v.seen, v.n, sizeof v.seen[0], cmp_u32);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(v.seen[i], i);
    assert_int_equal(session_count(t), n / 2);
    for (uint32_t i = 0; i < n; i++) {
        if (i & 1)
            assert_null(find(t, i));
        else
            assert_non_null(find(t, i));
    }

    /* Remove everything while walking. */
    memset(&v, 0, sizeof v);
    v.t = t;
    v.remove_odd = 1;
    for (uint32_t i = 0; i < n; i += 2)
        find(t, i)->credit = i + 1; /* make the rest "odd" */
    session_foreach(t, visit_fn, &v);
    assert_int_equal(v.n, n / 2);
    assert_int_equal(session_count(t), 0);
    session_table_destroy(&t);
}

static void test_foreach_stops_when_fn_returns_nonzero(void **state)
{
    (void)state;
    session_table_t *t = table(16);
    for (uint32_t i = 0; i < 10; i++)
        add(t, i)->credit = i;
    static visit_t v;
    memset(&v, 0, sizeof v);
    v.stop_after = 4;
    session_foreach(t, visit_fn, &v);
    assert_int_equal(v.n, 4);
    assert_int_equal(session_count(t), 10);
    session_table_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_remove),
        cmocka_unit_test(test_new_session_is_zeroed_with_region_minus_one),
        cmocka_unit_test(test_get_or_add_returns_the_existing_session),
        cmocka_unit_test(test_rid_lengths_zero_and_over_255_are_refused),
        cmocka_unit_test(test_rids_differing_only_in_length_are_different_sessions),
        cmocka_unit_test(test_full_table_returns_null_until_a_session_is_removed),
        cmocka_unit_test(test_zero_max_table_holds_nothing),
        cmocka_unit_test(test_many_sessions_stay_findable_through_removals),
        cmocka_unit_test(test_set_accepted_copies_the_patterns),
        cmocka_unit_test(test_set_accepted_replaces_previous_patterns),
        cmocka_unit_test(test_set_accepted_from_its_own_array),
        cmocka_unit_test(test_set_accepted_over_limit_is_toobig_and_keeps_old),
        cmocka_unit_test(test_foreach_visits_each_once_and_may_remove_current),
        cmocka_unit_test(test_foreach_stops_when_fn_returns_nonzero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
