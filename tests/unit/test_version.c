/*
 * test_version.c - the pure parts of index versions: the schema fingerprint
 * (stable under formatting and key order, different for any real change,
 * the same after a round trip through the stored text), and the names of a
 * version's index and keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "strbuf.h"
#include "version.h"

static void fingerprint_of(const char *text, char fp[VERSION_FP_LEN])
{
    struct schema s;
    struct schema_problems probs = {0};
    assert_int_equal(schema_parse_string(text, "test", &s, &probs), 0);
    assert_int_equal(s.nentries, 1);
    version_fingerprint(&s.entries[0], fp);
    schema_free(&s);
    schema_problems_free(&probs);
}

static const char *base =
    "[{\"database\": \"book\", \"index\": \"book\", \"nodes\": {\"table\": \"book\", "
    "\"columns\": [\"isbn\", \"title\"]}}]";

static void test_fingerprint_ignores_layout(void **state)
{
    (void)state;
    char a[VERSION_FP_LEN], b[VERSION_FP_LEN];
    fingerprint_of(base, a);
    fingerprint_of("[\n  {\"nodes\": {\"columns\": [\"isbn\", \"title\"],\n \"table\": \"book\"},\n"
                   "   \"index\": \"book\",   \"database\": \"book\"}\n]\n",
                   b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 16);
}

static void test_fingerprint_sees_changes(void **state)
{
    (void)state;
    char a[VERSION_FP_LEN], b[VERSION_FP_LEN], c[VERSION_FP_LEN];
    fingerprint_of(base, a);
    /* a column more, and the same columns in another order: both change the documents */
    fingerprint_of("[{\"database\": \"book\", \"index\": \"book\", \"nodes\": {\"table\": \"book\", "
                   "\"columns\": [\"isbn\", \"title\", \"description\"]}}]",
                   b);
    fingerprint_of("[{\"database\": \"book\", \"index\": \"book\", \"nodes\": {\"table\": \"book\", "
                   "\"columns\": [\"title\", \"isbn\"]}}]",
                   c);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, c);
}

/* What Redis stores (the entry's source) parses back to the same fingerprint. */
static void test_fingerprint_survives_storage(void **state)
{
    (void)state;
    struct schema s;
    struct schema_problems probs = {0};
    char a[VERSION_FP_LEN], b[VERSION_FP_LEN];
    assert_int_equal(schema_parse_string(base, "test", &s, &probs), 0);
    version_fingerprint(&s.entries[0], a);
    struct strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "[%s]", s.entries[0].source);
    schema_free(&s);
    fingerprint_of(sb.buf, b);
    sb_free(&sb);
    assert_string_equal(a, b);
}

static void test_names(void **state)
{
    (void)state;
    char buf[64];
    version_index_name("books", 3, buf, sizeof(buf));
    assert_string_equal(buf, "books_v3");
    version_key_base("books", 1, buf, sizeof(buf));
    assert_string_equal(buf, "books"); /* version 1 keeps the keys of before versioning */
    version_key_base("books", 2, buf, sizeof(buf));
    assert_string_equal(buf, "books_v2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint_ignores_layout),
        cmocka_unit_test(test_fingerprint_sees_changes),
        cmocka_unit_test(test_fingerprint_survives_storage),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
