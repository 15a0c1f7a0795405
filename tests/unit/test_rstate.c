/*
 * test_rstate.c - the pure parts of the Redis state: key names (with the
 * hash tag that keeps an index's keys on one Cluster node), the fence's
 * hex encoding (fixed width, so that Redis compares it as a string the way
 * the numbers compare), and the load's list of range bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rstate.h"
#include "strbuf.h"

static void test_key_names(void **state)
{
    (void)state;
    struct config cfg;
    char buf[128];
    memset(&cfg, 0, sizeof(cfg));
    assert_string_equal(rstate_key(&cfg, "book", "meta", buf, sizeof(buf)), "pgsync:{book}:meta");
    cfg.stream_prefix = "app";
    assert_string_equal(rstate_key(&cfg, "book_v2", "loaddone", buf, sizeof(buf)),
                        "app:{book_v2}:loaddone");
    assert_string_equal(rstate_versions_key(&cfg, "book", buf, sizeof(buf)), "app:{book}:versions");
    /* a short buffer is cut, never overrun */
    char small[8];
    rstate_key(&cfg, "book", "changes", small, sizeof(small));
    assert_int_equal(strlen(small), 7);
}

static void test_lsn_encoding(void **state)
{
    (void)state;
    char hex[RSTATE_LSN_LEN];
    rstate_lsn_encode(0x16B3748, hex);
    assert_string_equal(hex, "00000000016b3748");
    rstate_lsn_encode(0, hex);
    assert_string_equal(hex, "0000000000000000");
    rstate_lsn_encode(UINT64_MAX, hex);
    assert_string_equal(hex, "ffffffffffffffff");
    assert_true(rstate_lsn_decode("ffffffffffffffff") == UINT64_MAX);
    assert_true(rstate_lsn_decode("00000000016b3748") == 0x16B3748);
    assert_true(rstate_lsn_decode(NULL) == 0);
    assert_true(rstate_lsn_decode("") == 0);
}

/* The fence's Lua script compares the stored strings: their order must be the numbers'. */
static void test_lsn_order_is_string_order(void **state)
{
    (void)state;
    uint64_t v[] = {0, 1, 9, 10, 15, 16, 255, 256, 0x16B3748, 0xFFFFFFFFULL, 0x100000000ULL,
                    UINT64_MAX - 1, UINT64_MAX};
    size_t n = sizeof(v) / sizeof(v[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < n; k++) {
            char a[RSTATE_LSN_LEN], b[RSTATE_LSN_LEN];
            rstate_lsn_encode(v[i], a);
            rstate_lsn_encode(v[k], b);
            int s = strcmp(a, b);
            int want = v[i] < v[k] ? -1 : v[i] > v[k];
            assert_int_equal(s < 0 ? -1 : s > 0, want);
            assert_true(rstate_lsn_decode(a) == v[i]);
        }
}

static void test_bounds_round_trip(void **state)
{
    (void)state;
    long long in[] = {0, 1000, 2000, 123456789012LL}, *out = NULL;
    struct strbuf sb;
    int n = 0;

    sb_init(&sb);
    rstate_bounds_encode(in, 4, &sb);
    assert_string_equal(sb.buf, "0,1000,2000,123456789012");
    assert_int_equal(rstate_bounds_decode(sb.buf, &out, &n), 0);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++)
        assert_true(out[i] == in[i]);
    free(out);
    sb_free(&sb);

    /* a view is one range, bound -1 */
    long long view[] = {-1};
    sb_init(&sb);
    rstate_bounds_encode(view, 1, &sb);
    assert_string_equal(sb.buf, "-1");
    assert_int_equal(rstate_bounds_decode(sb.buf, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_true(out[0] == -1);
    free(out);
    sb_free(&sb);
}

static void test_bounds_decode_edges(void **state)
{
    (void)state;
    long long *out = NULL;
    int n = -1;
    /* nothing stored: no bounds (the caller starts a new split) */
    assert_int_equal(rstate_bounds_decode("", &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
    assert_int_equal(rstate_bounds_decode(NULL, &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
    /* garbage does not decode; the array is still the caller's to free */
    assert_int_equal(rstate_bounds_decode("0,x", &out, &n), -1);
    free(out);
    assert_int_equal(rstate_bounds_decode("abc", &out, &n), -1);
    free(out);
    /* more bounds than the first allocation holds */
    struct strbuf sb;
    sb_init(&sb);
    long long many[100];
    for (int i = 0; i < 100; i++)
        many[i] = (long long)i * 16;
    rstate_bounds_encode(many, 100, &sb);
    assert_int_equal(rstate_bounds_decode(sb.buf, &out, &n), 0);
    assert_int_equal(n, 100);
    assert_true(out[99] == 99 * 16);
    free(out);
    sb_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_lsn_encoding),
        cmocka_unit_test(test_lsn_order_is_string_order),
        cmocka_unit_test(test_bounds_round_trip),
        cmocka_unit_test(test_bounds_decode_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
