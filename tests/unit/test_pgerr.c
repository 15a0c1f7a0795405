/*
 * test_pgerr.c - a failed statement's kind by SQLSTATE (common/pgerr.h):
 * what production meets on a live connection (timeouts, cancels, deadlocks,
 * too many connections) is retried, only a row's own error dead-letters it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pgerr.h"

static void test_transient(void **state)
{
    (void)state;
    const char *retry[] = {
        "57014", /* statement_timeout, pg_cancel_backend */
        "57P01", /* admin shutdown */
        "55P03", /* lock_timeout */
        "40P01", /* deadlock */
        "40001", /* serialization failure */
        "53300", /* too many connections */
        "53200", /* out of memory */
        "53100", /* disk full */
        "08006", /* connection failure */
        "25006", /* read-only transaction: a standby */
        "42501", /* a privilege revoked: a DBA's fix */
        "42P01", /* a table dropped */
        "XX000", /* internal error */
        NULL,
    };
    for (int i = 0; retry[i]; i++)
        if (pgerr_kind(retry[i], 1) != PGS_ERR_TRANSIENT)
            fail_msg("SQLSTATE %s should be retried", retry[i]);
}

static void test_row_errors(void **state)
{
    (void)state;
    const char *row[] = {
        "22P02", /* invalid text representation: a cast of this row's value */
        "22003", /* numeric value out of range */
        "22012", /* division by zero */
        "23505", /* unique violation */
        "P0001", /* RAISE EXCEPTION in a function the query calls */
        "39000", /* external routine invocation */
        NULL,
    };
    for (int i = 0; row[i]; i++)
        if (pgerr_kind(row[i], 1) != PGS_ERR_DOCUMENT)
            fail_msg("SQLSTATE %s belongs to a row", row[i]);
}

static void test_connection_gone_wins(void **state)
{
    (void)state;
    /* a row error on a connection that died meanwhile: retry, the row may be fine */
    assert_int_equal(pgerr_kind("22P02", 0), PGS_ERR_TRANSIENT);
    /* libpq's own failure, or garbage */
    assert_int_equal(pgerr_kind(NULL, 1), PGS_ERR_TRANSIENT);
    assert_int_equal(pgerr_kind("", 1), PGS_ERR_TRANSIENT);
    assert_int_equal(pgerr_kind("22", 1), PGS_ERR_TRANSIENT);
}

static void test_names(void **state)
{
    (void)state;
    assert_non_null(strstr(pgerr_class_name("57014"), "statement_timeout"));
    assert_non_null(strstr(pgerr_class_name("55P03"), "lock_timeout"));
    assert_string_equal(pgerr_class_name("08001"), "connection exception");
    assert_string_equal(pgerr_class_name("22P02"), "data exception");
    assert_string_equal(pgerr_class_name(NULL), "no SQLSTATE");
    assert_string_equal(pgerr_class_name("HV000"), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient),
        cmocka_unit_test(test_row_errors),
        cmocka_unit_test(test_connection_gone_wins),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
