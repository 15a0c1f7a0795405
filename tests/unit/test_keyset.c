/*
 * test_keyset.c - the key tuple set: a tuple is added once, kept in
 * insertion order, found again after the table grows; composite tuples
 * compare column by column ("ab","c" is not "a","bc"); clear empties
 * without forgetting how to add; the PostgreSQL array literal escapes
 * quotes and backslashes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyset.h"

static int add1(struct keyset *k, const char *v)
{
    const char *vals[1] = {v};
    return keyset_add(k, vals);
}

static int has1(const struct keyset *k, const char *v)
{
    const char *vals[1] = {v};
    return keyset_contains(k, vals);
}

static void test_add_dedupes_in_insertion_order(void **state)
{
    struct keyset k;
    (void)state;
    keyset_init(&k, 1);
    assert_int_equal(k.n, 0);
    assert_int_equal(has1(&k, "a"), 0); /* an empty set has nothing, and no table yet */
    assert_int_equal(add1(&k, "b"), 1);
    assert_int_equal(add1(&k, "a"), 1);
    assert_int_equal(add1(&k, "b"), 0);
    assert_int_equal(add1(&k, "c"), 1);
    assert_int_equal(add1(&k, "a"), 0);
    assert_int_equal(k.n, 3);
    assert_string_equal(keyset_tuple(&k, 0)[0], "b");
    assert_string_equal(keyset_tuple(&k, 1)[0], "a");
    assert_string_equal(keyset_tuple(&k, 2)[0], "c");
    assert_true(has1(&k, "a"));
    assert_true(has1(&k, "c"));
    assert_false(has1(&k, "d"));
    assert_false(has1(&k, ""));
    keyset_free(&k);
}

static void test_values_are_copied(void **state)
{
    struct keyset k;
    char buf[8] = "key";
    (void)state;
    keyset_init(&k, 1);
    assert_int_equal(add1(&k, buf), 1);
    strcpy(buf, "other");
    assert_string_equal(keyset_tuple(&k, 0)[0], "key");
    assert_true(has1(&k, "key"));
    assert_false(has1(&k, "other"));
    keyset_free(&k);
}

static void test_empty_string_is_a_key(void **state)
{
    struct keyset k;
    (void)state;
    keyset_init(&k, 1);
    assert_int_equal(add1(&k, ""), 1);
    assert_int_equal(add1(&k, ""), 0);
    assert_true(has1(&k, ""));
    assert_int_equal(k.n, 1);
    keyset_free(&k);
}

static void test_growth_keeps_every_key(void **state)
{
    enum { N = 10000 };
    struct keyset k;
    char v[32];
    (void)state;
    keyset_init(&k, 1);
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "%d", i);
        assert_int_equal(add1(&k, v), 1);
    }
    assert_int_equal(k.n, N);
    /* the table stays at most half full, a power of two for the mask */
    assert_true(k.nslots >= 2 * (size_t)N);
    assert_int_equal(k.nslots & (k.nslots - 1), 0);
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "%d", i);
        assert_true(has1(&k, v));
        assert_int_equal(add1(&k, v), 0);
        assert_string_equal(keyset_tuple(&k, i)[0], v);
    }
    assert_int_equal(k.n, N);
    snprintf(v, sizeof(v), "%d", N);
    assert_false(has1(&k, v));
    keyset_free(&k);
}

static void test_composite_keys(void **state)
{
    struct keyset k;
    (void)state;
    keyset_init(&k, 2);
    const char *ab_c[2] = {"ab", "c"}, *a_bc[2] = {"a", "bc"}, *c_ab[2] = {"c", "ab"};
    const char *abc_[2] = {"abc", ""}, *_abc[2] = {"", "abc"};
    assert_int_equal(keyset_add(&k, ab_c), 1);
    /* the same bytes split differently, or in another order, are other tuples */
    assert_false(keyset_contains(&k, a_bc));
    assert_int_equal(keyset_add(&k, a_bc), 1);
    assert_int_equal(keyset_add(&k, c_ab), 1);
    assert_int_equal(keyset_add(&k, abc_), 1);
    assert_int_equal(keyset_add(&k, _abc), 1);
    assert_int_equal(k.n, 5);
    const char *again[2] = {"ab", "c"};
    assert_int_equal(keyset_add(&k, again), 0);
    assert_true(keyset_contains(&k, again));
    /* only one column equal is not the tuple */
    const char *half[2] = {"ab", "x"};
    assert_false(keyset_contains(&k, half));
    char **t = keyset_tuple(&k, 1);
    assert_string_equal(t[0], "a");
    assert_string_equal(t[1], "bc");
    t = keyset_tuple(&k, 4);
    assert_string_equal(t[0], "");
    assert_string_equal(t[1], "abc");
    keyset_free(&k);
}

static void test_composite_growth(void **state)
{
    enum { N = 3000 };
    struct keyset k;
    char a[16], b[16], c[16];
    (void)state;
    keyset_init(&k, 3);
    for (int i = 0; i < N; i++) {
        snprintf(a, sizeof(a), "%d", i / 100);
        snprintf(b, sizeof(b), "%d", i % 100);
        snprintf(c, sizeof(c), "x%d", i % 7);
        const char *v[3] = {a, b, c};
        assert_int_equal(keyset_add(&k, v), 1);
        assert_int_equal(keyset_add(&k, v), 0);
    }
    assert_int_equal(k.n, N);
    for (int i = 0; i < N; i++) {
        char **t = keyset_tuple(&k, i);
        snprintf(a, sizeof(a), "%d", i / 100);
        snprintf(b, sizeof(b), "%d", i % 100);
        snprintf(c, sizeof(c), "x%d", i % 7);
        assert_string_equal(t[0], a);
        assert_string_equal(t[1], b);
        assert_string_equal(t[2], c);
        const char *v[3] = {t[0], t[1], t[2]};
        assert_true(keyset_contains(&k, v));
    }
    keyset_free(&k);
}

static void test_clear_empties_and_stays_usable(void **state)
{
    struct keyset k;
    char v[16];
    (void)state;
    keyset_init(&k, 1);
    for (int i = 0; i < 500; i++) {
        snprintf(v, sizeof(v), "k%d", i);
        add1(&k, v);
    }
    size_t nslots = k.nslots;
    keyset_clear(&k);
    assert_int_equal(k.n, 0);
    assert_int_equal(k.width, 1);
    assert_int_equal(k.nslots, nslots); /* the table is kept for the next batch */
    for (int i = 0; i < 500; i++) {
        snprintf(v, sizeof(v), "k%d", i);
        assert_false(has1(&k, v));
    }
    /* added again after a clear: new, in the new order */
    assert_int_equal(add1(&k, "k7"), 1);
    assert_int_equal(add1(&k, "k3"), 1);
    assert_int_equal(add1(&k, "k7"), 0);
    assert_int_equal(k.n, 2);
    assert_string_equal(keyset_tuple(&k, 0)[0], "k7");
    assert_string_equal(keyset_tuple(&k, 1)[0], "k3");
    keyset_clear(&k);
    keyset_clear(&k); /* twice is harmless */
    keyset_free(&k);
    assert_null(k.vals);
    assert_null(k.slots);
    assert_int_equal(k.n, 0);

    /* clear and free of a set that never held anything */
    keyset_init(&k, 2);
    keyset_clear(&k);
    keyset_free(&k);
}

static void test_pg_array(void **state)
{
    struct keyset k;
    struct strbuf sb;
    (void)state;
    keyset_init(&k, 2);
    sb_init(&sb);
    const char *r0[2] = {"1", "plain"}, *r1[2] = {"2", "say \"hi\""}, *r2[2] = {"3", "a\\b"};
    const char *r3[2] = {"4", ""}, *r4[2] = {"5", "{x,y} NULL 'q'"};
    keyset_add(&k, r0);
    keyset_add(&k, r1);
    keyset_add(&k, r2);
    keyset_add(&k, r3);
    keyset_add(&k, r4);

    sb_add(&sb, "left over"); /* reset first */
    keyset_pg_array(&k, 0, 0, k.n, &sb);
    assert_string_equal(sb.buf, "{\"1\",\"2\",\"3\",\"4\",\"5\"}");
    keyset_pg_array(&k, 1, 0, k.n, &sb);
    assert_string_equal(sb.buf,
                        "{\"plain\",\"say \\\"hi\\\"\",\"a\\\\b\",\"\",\"{x,y} NULL 'q'\"}");
    /* a slice, and an empty one */
    keyset_pg_array(&k, 0, 1, 3, &sb);
    assert_string_equal(sb.buf, "{\"2\",\"3\"}");
    keyset_pg_array(&k, 0, 2, 2, &sb);
    assert_string_equal(sb.buf, "{}");
    sb_free(&sb);
    keyset_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_dedupes_in_insertion_order),
        cmocka_unit_test(test_values_are_copied),
        cmocka_unit_test(test_empty_string_is_a_key),
        cmocka_unit_test(test_growth_keeps_every_key),
        cmocka_unit_test(test_composite_keys),
        cmocka_unit_test(test_composite_growth),
        cmocka_unit_test(test_clear_empties_and_stays_usable),
        cmocka_unit_test(test_pg_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
