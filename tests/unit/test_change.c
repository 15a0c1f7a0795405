/*
 * test_change.c - the stream record codec (common/change.h): the exact
 * field layout on the wire (consumers and existing streams depend on it),
 * round trips of every op, the borrowed-text encoder the
 * producer's fast path uses, and the decoder's refusals of hostile or
 * incomplete entries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"

/* The strings of an encoding joined as "k=v|k=v|...", for exact comparisons. */
static void joined(const char **argv, const size_t *lens, int n, char *out, size_t len)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i + 1 < n; i += 2)
        at += (size_t)snprintf(out + at, len - at, "%s%.*s=%.*s", i ? "|" : "", (int)lens[i],
                               argv[i], (int)lens[i + 1], argv[i + 1]);
}

/* Encode "c", decode the strings again into "out". */
static void round_trip(const struct change *c, struct change *out, char *wire, size_t wire_len)
{
    const char *argv[CHANGE_MAX_FIELDS];
    size_t lens[CHANGE_MAX_FIELDS];
    char *fields[CHANGE_MAX_FIELDS];
    struct change_scratch scratch;
    struct pgs_error err;

    int n = change_to_fields(c, &scratch, argv, lens);
    assert_true(n > 0 && n <= CHANGE_MAX_FIELDS && n % 2 == 0);
    if (wire)
        joined(argv, lens, n, wire, wire_len);
    for (int i = 0; i < n; i++) {
        fields[i] = malloc(lens[i] + 1);
        memcpy(fields[i], argv[i], lens[i]);
        fields[i][lens[i]] = '\0';
    }
    assert_int_equal(change_from_fields(fields, lens, n, out, &err), 0);
    for (int i = 0; i < n; i++)
        free(fields[i]);
    change_scratch_free(&scratch);
}

static void test_every_row_op_round_trips_with_its_layout(void **state)
{
    (void)state;
    static const struct {
        char op;
        int has_old, has_new;
        const char *wire;
    } cases[] = {
        {CHANGE_INSERT, 0, 1, "op=I|s=public|t=book|lsn=23456789|xid=4242|new={\"id\":\"7\"}"},
        {CHANGE_UPDATE, 1, 1,
         "op=U|s=public|t=book|lsn=23456789|xid=4242|old={\"id\":\"6\"}|new={\"id\":\"7\"}"},
        {CHANGE_DELETE, 1, 0, "op=D|s=public|t=book|lsn=23456789|xid=4242|old={\"id\":\"6\"}"},
        {CHANGE_TRUNCATE, 0, 0, "op=T|s=public|t=book|lsn=23456789|xid=4242"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct change c = {.op = cases[i].op, .lsn = 23456789, .xid = 4242};
        struct change back;
        char wire[512];
        c.schema = strdup("public");
        c.table = strdup("book");
        if (cases[i].has_old)
            c.oldv = json_pack("{s:s}", "id", "6");
        if (cases[i].has_new)
            c.newv = json_pack("{s:s}", "id", "7");
        round_trip(&c, &back, wire, sizeof(wire));
        assert_string_equal(wire, cases[i].wire);
        assert_int_equal(back.op, c.op);
        assert_string_equal(back.schema, "public");
        assert_string_equal(back.table, "book");
        assert_true(back.lsn == 23456789 && back.xid == 4242);
        assert_int_equal(back.oldv != NULL, cases[i].has_old);
        assert_int_equal(back.newv != NULL, cases[i].has_new);
        if (c.oldv)
            assert_true(json_equal(back.oldv, c.oldv));
        if (c.newv)
            assert_true(json_equal(back.newv, c.newv));
        change_free(&back);
        change_free(&c);
    }
}

/* The fast path's borrowed texts need no NUL and give the same bytes as a struct change. */
static void test_encode_borrowed_text_matches_change_to_fields(void **state)
{
    (void)state;
    const char arena[] = "xx{\"id\":\"6\",\"a\\\"b\":null}{\"id\":\"7\"}yy";
    struct change_ref ref = {.op = CHANGE_UPDATE,
                             .schema = "s p",
                             .table = "bo\"ok",
                             .lsn = 1,
                             .xid = UINT32_MAX,
                             .oldv = arena + 2,
                             .old_len = 22,
                             .newv = arena + 24,
                             .new_len = 10};
    struct change_numbers nums;
    const char *argv[CHANGE_MAX_FIELDS];
    size_t lens[CHANGE_MAX_FIELDS];
    char fast[512], slow[512];

    int n = change_encode(&ref, &nums, argv, lens);
    assert_int_equal(n, 14);
    joined(argv, lens, n, fast, sizeof(fast));
    assert_string_equal(fast, "op=U|s=s p|t=bo\"ok|lsn=1|xid=4294967295|"
                              "old={\"id\":\"6\",\"a\\\"b\":null}|new={\"id\":\"7\"}");

    struct change c = {.op = CHANGE_UPDATE, .lsn = 1, .xid = UINT32_MAX};
    struct change back;
    c.schema = strdup("s p");
    c.table = strdup("bo\"ok");
    c.oldv = json_loadb(ref.oldv, ref.old_len, 0, NULL);
    c.newv = json_loadb(ref.newv, ref.new_len, 0, NULL);
    assert_non_null(c.oldv);
    assert_non_null(c.newv);
    round_trip(&c, &back, slow, sizeof(slow));
    assert_string_equal(fast, slow);
    change_free(&back);
    change_free(&c);
}

/* Decode a table of field strings (NULL-terminated) and expect "want" as the error, or success. */
static void expect_decode(const char *const *strs, const char *want)
{
    char *fields[32];
    size_t lens[32];
    int n = 0;
    struct change c;
    struct pgs_error err;

    for (; strs[n]; n++) {
        fields[n] = (char *)strs[n];
        lens[n] = strlen(strs[n]);
    }
    int rv = change_from_fields(fields, lens, n, &c, &err);
    if (want == NULL) {
        assert_int_equal(rv, 0);
        change_free(&c);
        return;
    }
    assert_int_equal(rv, -1);
    assert_string_equal(err.msg, want);
}

static void test_hostile_and_missing_fields_are_refused(void **state)
{
    (void)state;
    static const char *const no_op[] = {"s", "public", "t", "book", NULL};
    static const char *const bad_op[] = {"op", "IU", "s", "public", "t", "book", NULL};
    static const char *const no_table[] = {"op", "I", "s", "public", NULL};
    static const char *const twice[] = {"op", "I", "s", "a", "t", "b", "s", "c", NULL};
    static const char *const bad_lsn[] = {"op", "I", "s", "a", "t", "b", "lsn", "-1", NULL};
    static const char *const bad_xid[] = {"op", "I", "s", "a", "t", "b", "xid", "4294967296", NULL};
    static const char *const old_array[] = {"op", "D", "s", "a", "t", "b", "old", "[1]", NULL};
    static const char *const new_broken[] = {"op", "I", "s", "a", "t", "b", "new", "{\"a\"", NULL};
    static const char *const load_item[] = {"op", "L", "load", "x", "part", "1", NULL};
    static const char *const unknown_field[] = {"op", "T", "s", "a", "t", "b", "zz", "1", NULL};
    static const char *const odd[] = {"op", "T", "s", "a", "t", "b", "lsn", NULL};

    expect_decode(no_op, "change record: no op field");
    expect_decode(bad_op, "change record: unknown op \"IU\"");
    expect_decode(no_table, "change record: no table (fields s and t)");
    expect_decode(twice, "change record: field \"s\" given twice");
    expect_decode(bad_lsn, "change record: bad lsn");
    expect_decode(bad_xid, "change record: bad xid");
    expect_decode(old_array, "change record: field \"old\" is not a JSON object");
    expect_decode(new_broken, "change record: field \"new\" is not a JSON object");
    expect_decode(load_item, "change record: unknown op \"L\""); /* load_item.h reads it */
    expect_decode(unknown_field, NULL); /* newer producers may add fields */
    expect_decode(odd, NULL);           /* a last field without a value is ignored */
}

static void test_nul_inside_a_value_is_refused(void **state)
{
    (void)state;
    char op[] = "op", i[] = "I", s[] = "s", pub[] = "pub\0lic", t[] = "t", book[] = "book";
    char *fields[] = {op, i, s, pub, t, book};
    size_t lens[] = {2, 1, 1, 7, 1, 4};
    struct change c;
    struct pgs_error err;

    assert_int_equal(change_from_fields(fields, lens, 6, &c, &err), -1);
    assert_string_equal(err.msg, "change record: a NUL byte in field \"s\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_op_round_trips_with_its_layout),
        cmocka_unit_test(test_encode_borrowed_text_matches_change_to_fields),
        cmocka_unit_test(test_hostile_and_missing_fields_are_refused),
        cmocka_unit_test(test_nul_inside_a_value_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
