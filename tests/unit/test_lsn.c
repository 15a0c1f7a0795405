/*
 * test_lsn.c - WAL positions as text (common/lsn.c): "X/Y" both ways, and
 * the malformed forms PostgreSQL's pg_lsn_in refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lsn.h"

static void test_lsn_text_round_trips(void **state)
{
    static const uint64_t lsns[] = {0, 0x16B3748, 0x100000000ULL, 0xFFFFFFFFFFFFFFFFULL,
                                    0xAB000000CDULL};
    char buf[24];
    uint64_t back;

    (void)state;
    assert_string_equal(lsn_str(0x16B3748, buf), "0/16B3748");
    assert_string_equal(lsn_str(0xFFFFFFFFFFFFFFFFULL, buf), "FFFFFFFF/FFFFFFFF");
    assert_string_equal(lsn_str(0, buf), "0/0");
    for (size_t i = 0; i < sizeof(lsns) / sizeof(lsns[0]); i++) {
        assert_int_equal(lsn_parse(lsn_str(lsns[i], buf), &back), 0);
        assert_int_equal(back, lsns[i]);
    }
    assert_int_equal(lsn_parse("ab/cdef0", &back), 0);
    assert_int_equal(back, 0xAB000CDEF0ULL);
}

static void test_lsn_parse_rejects_malformed_text(void **state)
{
    static const char *const bad[] = {"",           "/",    "0/",          "/0",         "16B3748",
                                      "0/16B3748 ", " 0/1", "0x1/2",       "1/2/3",      "G/1",
                                      "-1/1",       "+1/1", "123456789/1", "1/123456789"};
    uint64_t lsn = 7;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lsn_parse(bad[i], &lsn) != -1)
            fail_msg("\"%s\" parsed as an LSN", bad[i]);
    }
    assert_int_equal(lsn_parse(NULL, &lsn), -1);
    assert_int_equal(lsn, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lsn_text_round_trips),
        cmocka_unit_test(test_lsn_parse_rejects_malformed_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
