/*
 * test_load_item.c - the initial load's work items (common/load_item.c):
 * the exact layout on the wire (existing load streams decode unchanged),
 * round trips with open and closed bounds, and the decoder's refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "load_item.h"

static void joined(const char **argv, const size_t *lens, int n, char *out, size_t len)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i + 1 < n; i += 2)
        at += (size_t)snprintf(out + at, len - at, "%s%.*s=%.*s", i ? "|" : "", (int)lens[i],
                               argv[i], (int)lens[i + 1], argv[i + 1]);
}

/* Encode "ref", check the wire, decode it again into "out". */
static void round_trip(const struct load_item_ref *ref, const char *wire_want,
                       struct load_item *out)
{
    const char *argv[LOAD_ITEM_MAX_FIELDS];
    size_t lens[LOAD_ITEM_MAX_FIELDS];
    struct load_item_numbers nums;
    struct pgs_error err;
    char wire[512];

    int n = load_item_encode(ref, &nums, argv, lens);
    assert_true(n > 0 && n <= LOAD_ITEM_MAX_FIELDS && n % 2 == 0);
    joined(argv, lens, n, wire, sizeof(wire));
    assert_string_equal(wire, wire_want);
    assert_true(load_item_is((char **)argv, lens, n));
    assert_int_equal(load_item_from_fields((char **)argv, lens, n, out, &err), 0);
}

static void test_item_round_trips_with_the_layout_of_old_streams(void **state)
{
    (void)state;
    struct load_item_ref ref = {.load_id = "load-1",
                                .snapshot = "00000003-0000001B-1",
                                .lo = "(100,0)",
                                .part = 12,
                                .version = UINT64_MAX};
    struct load_item back;

    /* the bytes the change codec wrote for op "L" before load items had a type */
    round_trip(&ref,
               "op=L|lsn=18446744073709551615|xid=0|lo=(100,0)|hi=|load=load-1|"
               "snap=00000003-0000001B-1|part=12",
               &back);
    assert_true(back.version == UINT64_MAX);
    assert_string_equal(back.lo, "(100,0)");
    assert_null(back.hi); /* "" is an open bound */
    assert_string_equal(back.load_id, "load-1");
    assert_string_equal(back.snapshot, "00000003-0000001B-1");
    assert_int_equal(back.part, 12);
    load_item_free(&back);
}

static void test_a_view_item_has_no_bounds_and_no_snapshot(void **state)
{
    (void)state;
    struct load_item_ref ref = {.load_id = "l", .part = 0, .version = 7};
    struct load_item back;

    round_trip(&ref, "op=L|lsn=7|xid=0|lo=|hi=|load=l|snap=|part=0", &back);
    assert_null(back.lo);
    assert_null(back.hi);
    assert_null(back.snapshot);
    load_item_free(&back);
}

static void expect_refused(const char *const *strs, const char *want)
{
    char *fields[32];
    size_t lens[32];
    int n = 0;
    struct load_item it;
    struct pgs_error err;

    for (; strs[n]; n++) {
        fields[n] = (char *)strs[n];
        lens[n] = strlen(strs[n]);
    }
    assert_int_equal(load_item_from_fields(fields, lens, n, &it, &err), -1);
    assert_string_equal(err.msg, want);
    assert_null(it.load_id); /* nothing left to free */
}

static void test_hostile_items_are_refused(void **state)
{
    (void)state;
    static const char *const bad_part[] = {"op", "L", "load", "x", "part", "1000000001", NULL};
    static const char *const bad_lsn[] = {"op", "L", "load", "x", "lsn", "1e3", NULL};
    static const char *const no_load[] = {"op", "L", "part", "1", NULL};
    static const char *const twice[] = {"op", "L", "load", "x", "load", "y", NULL};
    static const char *const not_l[] = {"op", "I", "load", "x", NULL};

    expect_refused(bad_part, "load item: bad part");
    expect_refused(bad_lsn, "load item: bad lsn");
    expect_refused(no_load, "load item: no load field");
    expect_refused(twice, "load item: field \"load\" given twice");
    expect_refused(not_l, "load item: op \"I\" is not \"L\"");
}

static void test_only_op_l_is_a_load_item(void **state)
{
    (void)state;
    char op[] = "op", i[] = "I", l[] = "L", s[] = "s", pub[] = "public", lsn[] = "lsn", one[] = "1";
    char *change[] = {op, i, s, pub};
    char *item[] = {lsn, one, op, l};
    char *none[] = {s, pub};
    size_t lc[] = {2, 1, 1, 6}, li[] = {3, 1, 2, 1}, ln[] = {1, 6};

    assert_false(load_item_is(change, lc, 4));
    assert_true(load_item_is(item, li, 4));
    assert_false(load_item_is(none, ln, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_round_trips_with_the_layout_of_old_streams),
        cmocka_unit_test(test_a_view_item_has_no_bounds_and_no_snapshot),
        cmocka_unit_test(test_hostile_items_are_refused),
        cmocka_unit_test(test_only_op_l_is_a_load_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
