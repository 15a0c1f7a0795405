/*
 * test_rstream.c - the pure parts of the stream module: entry ids ("ms-seq")
 * parsed, compared, formatted, and stepped back and forth at the edges of
 * their 64-bit halves; a field of a range entry; and the flat [key, value]
 * replies XINFO gives, read through redis.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "redis.h"
#include "rstream.h"

static void test_id_parse(void **state)
{
    (void)state;
    struct rstream_id id;
    assert_int_equal(rstream_id_parse("1712345678901-7", &id), 0);
    assert_true(id.ms == 1712345678901ULL && id.seq == 7);
    /* milliseconds alone: seq 0 */
    assert_int_equal(rstream_id_parse("1712345678901", &id), 0);
    assert_true(id.ms == 1712345678901ULL && id.seq == 0);
    assert_int_equal(rstream_id_parse("0-0", &id), 0);
    assert_true(id.ms == 0 && id.seq == 0);
    assert_int_equal(rstream_id_parse("18446744073709551615-18446744073709551615", &id), 0);
    assert_true(id.ms == UINT64_MAX && id.seq == UINT64_MAX);
}

static void test_id_parse_rejects(void **state)
{
    (void)state;
    struct rstream_id id;
    const char *bad[] = {"", "-", "1-", "-1", "1-2-3", "abc", "1-x", "12 -1", "+", "(1-0",
                         "18446744073709551616-0", "1-18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rstream_id_parse(bad[i], &id) == 0)
            fail_msg("\"%s\" parsed as an id", bad[i]);
    }
    assert_int_equal(rstream_id_parse(NULL, &id), -1);
}

static void test_id_cmp(void **state)
{
    (void)state;
    struct rstream_id a = {5, 9}, b = {6, 0}, c = {5, 10}, d = {5, 9};
    assert_true(rstream_id_cmp(&a, &b) < 0);
    assert_true(rstream_id_cmp(&b, &a) > 0);
    assert_true(rstream_id_cmp(&a, &c) < 0);
    assert_true(rstream_id_cmp(&c, &a) > 0);
    assert_int_equal(rstream_id_cmp(&a, &d), 0);
    /* the halves are unsigned: no wrap to negative at the top */
    struct rstream_id top = {UINT64_MAX, 0}, low = {1, UINT64_MAX};
    assert_true(rstream_id_cmp(&low, &top) < 0);
}

static void test_id_format_round_trip(void **state)
{
    (void)state;
    char buf[RSTREAM_ID_LEN];
    struct rstream_id ids[] = {{0, 0}, {1712345678901ULL, 3}, {UINT64_MAX, UINT64_MAX}}, back;
    assert_string_equal(rstream_id_format(&ids[1], buf, sizeof(buf)), "1712345678901-3");
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        rstream_id_format(&ids[i], buf, sizeof(buf));
        assert_int_equal(rstream_id_parse(buf, &back), 0);
        assert_int_equal(rstream_id_cmp(&ids[i], &back), 0);
    }
}

static void test_id_prev(void **state)
{
    (void)state;
    struct rstream_id out;
    struct rstream_id a = {10, 3}, b = {10, 0}, zero = {0, 0}, c = {0, 1};
    assert_int_equal(rstream_id_prev(&a, &out), 0);
    assert_true(out.ms == 10 && out.seq == 2);
    /* seq 0: the last possible id of the millisecond before */
    assert_int_equal(rstream_id_prev(&b, &out), 0);
    assert_true(out.ms == 9 && out.seq == UINT64_MAX);
    assert_int_equal(rstream_id_prev(&c, &out), 0);
    assert_true(out.ms == 0 && out.seq == 0);
    assert_int_equal(rstream_id_prev(&zero, &out), -1);
}

static void test_id_next(void **state)
{
    (void)state;
    struct rstream_id out;
    struct rstream_id a = {10, 3}, b = {10, UINT64_MAX}, top = {UINT64_MAX, UINT64_MAX};
    assert_int_equal(rstream_id_next(&a, &out), 0);
    assert_true(out.ms == 10 && out.seq == 4);
    assert_int_equal(rstream_id_next(&b, &out), 0);
    assert_true(out.ms == 11 && out.seq == 0);
    assert_int_equal(rstream_id_next(&top, &out), -1);
    /* next and prev undo each other */
    struct rstream_id back;
    assert_int_equal(rstream_id_next(&b, &out), 0);
    assert_int_equal(rstream_id_prev(&out, &back), 0);
    assert_int_equal(rstream_id_cmp(&back, &b), 0);
}

static void test_entry_get(void **state)
{
    (void)state;
    const char *fv[] = {"index", "book", "doc", "{\"a\":1}", "empty", ""};
    size_t fvlen[] = {5, 4, 3, 7, 5, 0};
    struct rstream_entry e = {"1-0", 6, fv, fvlen};
    size_t len = 99;
    assert_string_equal(rstream_entry_get(&e, "index", NULL), "book");
    assert_string_equal(rstream_entry_get(&e, "doc", &len), "{\"a\":1}");
    assert_int_equal(len, 7);
    assert_string_equal(rstream_entry_get(&e, "empty", &len), "");
    assert_int_equal(len, 0);
    assert_null(rstream_entry_get(&e, "missing", NULL));
    /* a value is never taken for a name */
    assert_null(rstream_entry_get(&e, "book", NULL));
}

/* A flat XINFO-style map, built by hand as hiredis would. */
static redisReply str_reply(const char *s)
{
    redisReply r = {0};
    r.type = REDIS_REPLY_STRING;
    r.str = (char *)s;
    r.len = strlen(s);
    return r;
}

static void test_map_readers(void **state)
{
    (void)state;
    redisReply k1 = str_reply("name"), v1 = str_reply("pgsync");
    redisReply k2 = str_reply("pending"), v2 = {0};
    redisReply k3 = str_reply("lag"), v3 = {0};
    redisReply k4 = str_reply("entries-read"), v4 = str_reply("42");
    redisReply k5 = str_reply("odd"), v5 = str_reply("4x");
    v2.type = REDIS_REPLY_INTEGER;
    v2.integer = 7;
    v3.type = REDIS_REPLY_NIL;
    redisReply *elems[] = {&k1, &v1, &k2, &v2, &k3, &v3, &k4, &v4, &k5, &v5};
    redisReply map = {0};
    map.type = REDIS_REPLY_ARRAY;
    map.elements = sizeof(elems) / sizeof(elems[0]);
    map.element = elems;

    assert_string_equal(redis_map_str(&map, "name"), "pgsync");
    assert_null(redis_map_str(&map, "pending")); /* an integer is no string */
    assert_null(redis_map_str(&map, "missing"));
    assert_int_equal(redis_map_int(&map, "pending", -1), 7);
    assert_int_equal(redis_map_int(&map, "lag", -1), -1); /* nil: the default */
    assert_int_equal(redis_map_int(&map, "entries-read", -1), 42);
    assert_int_equal(redis_map_int(&map, "odd", -1), -1);
    assert_int_equal(redis_map_int(&map, "missing", -5), -5);
    assert_ptr_equal(redis_map_get(&map, "lag"), &v3);
    /* a value is never taken for a key, and a non-map has no keys */
    assert_null(redis_map_get(&map, "pgsync"));
    assert_null(redis_map_get(&v1, "name"));
    assert_null(redis_map_get(NULL, "name"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_parse),
        cmocka_unit_test(test_id_parse_rejects),
        cmocka_unit_test(test_id_cmp),
        cmocka_unit_test(test_id_format_round_trip),
        cmocka_unit_test(test_id_prev),
        cmocka_unit_test(test_id_next),
        cmocka_unit_test(test_entry_get),
        cmocka_unit_test(test_map_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
