/*
 * test_streamid.c - Redis stream entry ids ("1700000000000-5"): parsed
 * strictly (two unsigned 64-bit numbers, or "ms" alone), ordered by time
 * then sequence, written back the same, and stepped back by one (XGROUP
 * SETID to the id before "id" delivers "id" next), across the ms boundary.
 * Tests the public rstream_id_* functions of common/rstream.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "rstream.h"

static struct rstream_id sid(const char *s)
{
    struct rstream_id id;
    if (rstream_id_parse(s, &id) != 0)
        fail_msg("\"%s\" should parse", s);
    return id;
}

static void test_parse_full_and_ms_alone(void **state)
{
    (void)state;
    struct rstream_id id = sid("1700000000000-5");
    assert_true(id.ms == 1700000000000ULL);
    assert_true(id.seq == 5);
    id = sid("0-0");
    assert_true(id.ms == 0 && id.seq == 0);
    id = sid("1700000000000"); /* ms alone: seq 0, as XRANGE reads it */
    assert_true(id.ms == 1700000000000ULL && id.seq == 0);
    id = sid("18446744073709551615-18446744073709551615");
    assert_true(id.ms == UINT64_MAX && id.seq == UINT64_MAX);
}

static void test_parse_refuses_what_is_not_an_id(void **state)
{
    static const char *const bad[] = {
        "", "-", "-5", "5-", "a-1", "1-a", "1-2-3", " 1-2", "1-2 ", "+1-2", "1-+2", "1--2",
        "1.5-2", "0x10-1", "18446744073709551616-0", "0-18446744073709551616", "*", "$", ">",
        "(1-2",
    };
    struct rstream_id id;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rstream_id_parse(bad[i], &id) != -1)
            fail_msg("\"%s\" is not a stream id", bad[i]);
    assert_int_equal(rstream_id_parse(NULL, &id), -1);
}

static void test_compare_time_then_sequence(void **state)
{
    (void)state;
    /* in order, each strictly before the next */
    static const char *const ordered[] = {
        "0-0", "0-1", "1-0", "9-0", "10-0", "1700000000000-0", "1700000000000-1",
        "1700000000000-2", "1700000000000-10", "1700000000001-0",
        "18446744073709551615-18446744073709551615",
    };
    size_t n = sizeof(ordered) / sizeof(ordered[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            struct rstream_id a = sid(ordered[i]), b = sid(ordered[j]);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if (rstream_id_cmp(&a, &b) != want)
                fail_msg("cmp(%s, %s) should be %d", ordered[i], ordered[j], want);
        }
    /* "ms" alone is "ms-0" */
    struct rstream_id a = sid("5"), b = sid("5-0");
    assert_int_equal(rstream_id_cmp(&a, &b), 0);
}

static void test_format_round_trips(void **state)
{
    static const char *const ids[] = {"0-0", "1-2", "1700000000000-5",
                                      "18446744073709551615-18446744073709551615"};
    char buf[48];
    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct rstream_id id = sid(ids[i]);
        assert_ptr_equal(rstream_id_format(&id, buf, sizeof(buf)), buf);
        assert_string_equal(buf, ids[i]);
    }
    struct rstream_id id = sid("42");
    assert_string_equal(rstream_id_format(&id, buf, sizeof(buf)), "42-0");
    /* a short buffer is cut, never overrun */
    char small[6];
    id = sid("1700000000000-5");
    assert_string_equal(rstream_id_format(&id, small, sizeof(small)), "17000");
}

static void prev_is(const char *from, const char *want)
{
    struct rstream_id id = sid(from), out;
    char buf[48];
    assert_int_equal(rstream_id_prev(&id, &out), 0);
    rstream_id_format(&out, buf, sizeof(buf));
    if (strcmp(buf, want) != 0)
        fail_msg("prev(%s) is %s, expected %s", from, buf, want);
    /* strictly before, and nothing between: the next id after "out" is "from" */
    assert_int_equal(rstream_id_cmp(&out, &id), -1);
}

static void test_prev_steps_back_one(void **state)
{
    struct rstream_id zero = {0, 0}, out = {7, 7};
    (void)state;
    prev_is("1700000000000-5", "1700000000000-4");
    prev_is("1700000000000-1", "1700000000000-0");
    /* across the ms boundary: the last possible sequence of the ms before */
    prev_is("1700000000000-0", "1699999999999-18446744073709551615");
    prev_is("1-0", "0-18446744073709551615");
    prev_is("0-1", "0-0");
    prev_is("18446744073709551615-18446744073709551615",
            "18446744073709551615-18446744073709551614");
    /* nothing is before 0-0 */
    assert_int_equal(rstream_id_prev(&zero, &out), -1);
    /* in place */
    struct rstream_id id = sid("3-0");
    assert_int_equal(rstream_id_prev(&id, &id), 0);
    assert_true(id.ms == 2 && id.seq == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full_and_ms_alone),
        cmocka_unit_test(test_parse_refuses_what_is_not_an_id),
        cmocka_unit_test(test_compare_time_then_sequence),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_prev_steps_back_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
