/*
 * test_verify.c - the pure parts of pgsync-verify: semantic JSON equality,
 * the per-field diff and its lines, the order-preserving hex coding of ids,
 * and the merge of two sorted streams into missing / extra / different.
 * No server needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "verify.h"

static json_t *J(const char *text)
{
    struct pgs_error err;
    json_t *j = verify_json_parse(text, strlen(text), &err);
    assert_non_null(j);
    return j;
}

/* ---- equality ---- */

static const struct {
    const char *a, *b;
    int equal;
} equal_table[] = {
    {"{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}", 1}, /* key order */
    {"{\"a\":1}", "{\"a\":1.0}", 1},               /* integer and real */
    {"{\"a\":1.5}", "{\"a\":1.50}", 1},
    {"{\"a\":1e2}", "{\"a\":100}", 1},
    {"{\"a\":-0.0}", "{\"a\":0}", 1},
    {"{\"a\":1}", "{\"a\":1.1}", 0},
    {"{\"a\":9007199254740993}", "{\"a\":9007199254740992.0}", 0}, /* 2^53+1 is no real */
    {"{\"a\":1}", "{\"a\":\"1\"}", 0},                             /* number vs string */
    {"{\"a\":true}", "{\"a\":false}", 0},
    {"{\"a\":null}", "{}", 0},             /* null is not absent */
    {"{\"a\":[1,2]}", "{\"a\":[2,1]}", 0}, /* arrays keep order */
    {"{\"a\":[1,2]}", "{\"a\":[1,2,3]}", 0},
    {"{\"a\":{\"x\":[{\"y\":1}],\"z\":\"q\"}}", "{\"a\":{\"z\":\"q\",\"x\":[{\"y\":1.0}]}}", 1},
    {"\"a\\u0000b\"", "\"a\\u0000c\"", 0}, /* strings with NUL */
    {"{\"a\":123456789012345678901234567890}", "{\"a\":1.2345678901234568e29}", 1}, /* overflow */
};

static void test_equality_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(equal_table) / sizeof(equal_table[0]); i++) {
        json_t *a = J(equal_table[i].a), *b = J(equal_table[i].b);
        if (verify_json_equal(a, b) != equal_table[i].equal ||
            verify_json_equal(b, a) != equal_table[i].equal)
            fail_msg("row %zu: %s vs %s: expected %s", i, equal_table[i].a, equal_table[i].b,
                     equal_table[i].equal ? "equal" : "different");
        json_decref(a);
        json_decref(b);
    }
}

/* ---- diff ---- */

/* The diff lines of two documents, joined with "\n". */
static char *diff_text(const char *a, const char *b, int max, int *count)
{
    json_t *ja = J(a), *jb = J(b), *out = json_array(), *d;
    struct strbuf sb;
    size_t i;

    sb_init(&sb);
    sb_add(&sb, "");
    *count = verify_json_diff(ja, jb, out, max);
    json_array_foreach(out, i, d) {
        if (i)
            sb_addc(&sb, '\n');
        verify_diff_line(d, &sb);
    }
    json_decref(ja);
    json_decref(jb);
    json_decref(out);
    return sb_steal(&sb);
}

static const struct {
    const char *db, *ix, *want;
    int count;
} diff_table[] = {
    /* the README's example */
    {"{\"authors\":[\"Haruki Murakami\",\"Philip Gabriel\"],\"title\":\"Kafka\"}",
     "{\"title\":\"Kafka\",\"authors\":[\"Haruki Murakami\",\"Phil Gabriel\"]}",
     "authors[1]: \"Philip Gabriel\" != \"Phil Gabriel\"", 1},
    /* same content, other key order and number forms: nothing */
    {"{\"a\":1,\"b\":{\"c\":[1,2.5]}}", "{\"b\":{\"c\":[1.0,2.5]},\"a\":1.0}", "", 0},
    /* nested objects: the path walks down, keys in byte order */
    {"{\"b\":{\"x\":{\"y\":1}},\"a\":2}", "{\"a\":3,\"b\":{\"x\":{\"y\":2}}}",
     "a: 2 != 3\nb.x.y: 1 != 2", 2},
    /* a key on one side only */
    {"{\"a\":1,\"gone\":\"x\"}", "{\"a\":1,\"new\":[1]}",
     "gone: \"x\" != (absent)\nnew: (absent) != [1]", 2},
    /* arrays of different lengths: element by element, then the tail */
    {"{\"t\":[1,2,3]}", "{\"t\":[1,5]}", "t[1]: 2 != 5\nt[2]: 3 != (absent)", 2},
    {"{\"t\":[]}", "{\"t\":[\"a\",\"b\"]}", "t[0]: (absent) != \"a\"\nt[1]: (absent) != \"b\"", 2},
    /* objects inside arrays */
    {"{\"o\":[{\"n\":\"a\",\"k\":1}]}", "{\"o\":[{\"k\":1,\"n\":\"b\"}]}", "o[0].n: \"a\" != \"b\"",
     1},
    /* a type change is one line with both values */
    {"{\"a\":{\"b\":1}}", "{\"a\":[1]}", "a: {\"b\":1} != [1]", 1},
    {"{\"a\":null}", "{\"a\":0}", "a: null != 0", 1},
    /* keys that are not plain names are quoted */
    {"{\"first name\":\"x\",\"a.b\":1}", "{\"first name\":\"y\",\"a.b\":2}",
     "[\"a.b\"]: 1 != 2\n[\"first name\"]: \"x\" != \"y\"", 2},
    /* not objects at all */
    {"1", "2", ".: 1 != 2", 1},
};

static void test_diff_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(diff_table) / sizeof(diff_table[0]); i++) {
        int n;
        char *text = diff_text(diff_table[i].db, diff_table[i].ix, 20, &n);
        if (strcmp(text, diff_table[i].want) != 0 || n != diff_table[i].count)
            fail_msg("row %zu: got (%d)\n%s\nwant (%d)\n%s", i, n, text, diff_table[i].count,
                     diff_table[i].want);
        free(text);
    }
}

static void test_diff_counts_beyond_the_limit(void **state)
{
    (void)state;
    int n;
    char *text =
        diff_text("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", "{\"a\":0,\"b\":0,\"c\":0,\"d\":0}", 2, &n);
    assert_int_equal(n, 4);
    assert_string_equal(text, "a: 1 != 0\nb: 2 != 0");
    free(text);
}

static void test_diff_line_cuts_long_values_on_a_character(void **state)
{
    (void)state;
    /* 200 two-byte characters: the cut must not split one */
    char db[1024] = "{\"s\":\"";
    for (int i = 0; i < 200; i++)
        strcat(db, "\xc3\xa9");
    strcat(db, "\"}");
    int n;
    char *text = diff_text(db, "{\"s\":\"x\"}", 5, &n);
    assert_int_equal(n, 1);
    const char *dots = strstr(text, "... != \"x\"");
    assert_non_null(dots);
    /* "s: " + the quote + whole characters only */
    size_t cut = (size_t)(dots - text) - strlen("s: \"");
    assert_int_equal(cut % 2, 0);
    assert_true(cut <= 120);
    free(text);
}

/* ---- hex coding ---- */

static void test_hex_round_trip_and_order(void **state)
{
    (void)state;
    static const char *ids[] = {"", "a", "a\tb", "ab", "abc", "a|b", "b", "\xc3\xa9", "\xff"};
    struct strbuf enc[9], dec;
    sb_init(&dec);
    for (int i = 0; i < 9; i++) {
        sb_init(&enc[i]);
        sb_add(&enc[i], "");
        verify_hex_encode(ids[i], strlen(ids[i]), &enc[i]);
        assert_int_equal(verify_hex_decode(enc[i].buf, enc[i].len, &dec), 0);
        assert_string_equal(dec.buf, ids[i]);
    }
    /* the list is in byte order; so are the codes, also when followed by a tab */
    for (int i = 1; i < 9; i++) {
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
        assert_true(strcmp(enc[i - 1].buf, enc[i].buf) < 0);
        sb_addc(&enc[i - 1], '\t');
        assert_true(strcmp(enc[i - 1].buf, enc[i].buf) < 0);
    }
    assert_int_equal(verify_hex_decode("abc", 3, &dec), -1);
    assert_int_equal(verify_hex_decode("zz", 2, &dec), -1);
    for (int i = 0; i < 9; i++)
        sb_free(&enc[i]);
    sb_free(&dec);
}

/* ---- merge ---- */

struct fake_doc {
    const char *id, *doc;
    uint64_t version;
};

struct fake_iter {
    const struct fake_doc *docs;
    int n, pos;
    int fail_at;                  /* return -1 at this position, or -1 for never */
    const char *const *routings; /* each doc's routing value (NULL: none at all) */
};

static int fake_next(void *ctx, struct verify_item *out, struct pgs_error *err)
{
    struct fake_iter *f = ctx;
    if (f->pos == f->fail_at) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "fake failure");
        return -1;
    }
    if (f->pos >= f->n)
        return 0;
    const struct fake_doc *d = &f->docs[f->pos++];
    out->id = d->id;
    out->doc = d->doc;
    out->doclen = strlen(d->doc);
    out->version = d->version;
    out->routing = f->routings ? f->routings[f->pos - 1] : NULL;
    return 1;
}

struct seen {
    char log[1024];
    int stop_after; /* return 1 after this many calls; 0 = never */
    int calls;
};

static int record_result(void *arg, enum verify_kind kind, const struct verify_item *db,
                         const struct verify_item *ix, const json_t *dj, const json_t *xj,
                         struct pgs_error *err)
{
    static const char *const names[] = {"same", "missing", "extra", "different", "newer"};
    struct seen *s = arg;
    (void)err;
    /* the documents come parsed exactly when both sides have the id */
    assert_true((db && ix) == (dj != NULL && xj != NULL));
    if (kind == VERIFY_MISSING)
        assert_true(db && !ix);
    if (kind == VERIFY_EXTRA)
        assert_true(ix && !db);
    snprintf(s->log + strlen(s->log), sizeof(s->log) - strlen(s->log), "%s%s:%s",
             s->log[0] ? " " : "", names[kind], db ? db->id : ix->id);
    return s->stop_after && ++s->calls >= s->stop_after;
}

static int run_merge(const struct fake_doc *db, int ndb, const struct fake_doc *ix, int nix,
                     uint64_t snap, struct seen *s, struct verify_counts *c, struct pgs_error *err)
{
    struct fake_iter fd = {db, ndb, 0, -1, NULL}, fx = {ix, nix, 0, -1, NULL};
    struct verify_iter a = {fake_next, &fd}, b = {fake_next, &fx};
    return verify_merge(&a, &b, snap, record_result, s, c, err);
}

static void test_merge_classifies_every_id(void **state)
{
    (void)state;
    static const struct fake_doc db[] = {
        {"1", "{\"t\":\"a\"}", 0}, {"2", "{\"t\":\"b\"}", 0}, {"3", "{\"n\":1}", 0},
        {"5", "{\"t\":\"e\"}", 0}, {"7", "{\"t\":\"g\"}", 0},
    };
    static const struct fake_doc ix[] = {
        {"0", "{\"t\":\"z\"}", 10}, {"2", "{\"t\":\"B\"}", 10},
        {"3", "{\"n\":1.0}", 10},   {"4", "{}", 10},
        {"5", "{\"t\":\"e\"}", 10}, {"9", "{}", 10},
    };
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;

    assert_int_equal(run_merge(db, 5, ix, 6, 100, &s, &c, &err), 0);
    assert_string_equal(s.log, "extra:0 missing:1 different:2 same:3 extra:4 same:5 missing:7 "
                               "extra:9");
    assert_int_equal(c.checked, 8);
    assert_int_equal(c.same, 2);
    assert_int_equal(c.missing, 2);
    assert_int_equal(c.extra, 3);
    assert_int_equal(c.different, 1);
    assert_int_equal(c.newer, 0);
}

static void test_merge_empty_sides(void **state)
{
    (void)state;
    static const struct fake_doc docs[] = {{"a", "{}", 0}, {"b", "{}", 0}};
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;

    assert_int_equal(run_merge(NULL, 0, NULL, 0, 0, &s, &c, &err), 0);
    assert_int_equal(c.checked, 0);
    assert_int_equal(run_merge(docs, 2, NULL, 0, 0, &s, &c, &err), 0);
    assert_int_equal(c.missing, 2);
    s.log[0] = '\0';
    assert_int_equal(run_merge(NULL, 0, docs, 2, 0, &s, &c, &err), 0);
    assert_string_equal(s.log, "extra:a extra:b");
}

static void test_merge_byte_order_not_locale_order(void **state)
{
    (void)state;
    /* "B" < "a" < "\xc3\xa9" in byte order (C collation); a locale would say otherwise */
    static const struct fake_doc db[] = {{"B", "{}", 0}, {"a", "{}", 0}, {"\xc3\xa9", "{}", 0}};
    static const struct fake_doc ix[] = {{"B", "{}", 1}, {"a", "{}", 1}, {"\xc3\xa9", "{}", 1}};
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;

    assert_int_equal(run_merge(db, 3, ix, 3, 0, &s, &c, &err), 0);
    assert_int_equal(c.same, 3);
    assert_int_equal(c.checked, 3);
}

static void test_merge_newer_index_copies_are_not_drift(void **state)
{
    (void)state;
    static const struct fake_doc db[] = {{"1", "{\"v\":1}", 0}, {"2", "{\"v\":1}", 0}};
    static const struct fake_doc ix[] = {
        {"1", "{\"v\":2}", 501}, /* a consumer wrote it after the snapshot */
        {"2", "{\"v\":2}", 500}, /* at the snapshot: drift */
        {"3", "{}", 700},        /* created after the snapshot */
    };
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;

    assert_int_equal(run_merge(db, 2, ix, 3, 500, &s, &c, &err), 0);
    assert_string_equal(s.log, "newer:1 different:2 newer:3");
    assert_int_equal(c.newer, 2);
    assert_int_equal(c.different, 1);
    /* without a snapshot version, nothing is "newer" */
    s.log[0] = '\0';
    assert_int_equal(run_merge(db, 2, ix, 3, 0, &s, &c, &err), 0);
    assert_string_equal(s.log, "different:1 different:2 extra:3");
}

static void test_merge_index_duplicate_is_extra(void **state)
{
    (void)state;
    static const struct fake_doc db[] = {{"1", "{}", 0}, {"2", "{}", 0}};
    static const struct fake_doc ix[] = {{"1", "{}", 1}, {"1", "{}", 1}, {"2", "{}", 1}};
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;

    assert_int_equal(run_merge(db, 2, ix, 3, 0, &s, &c, &err), 0);
    assert_string_equal(s.log, "same:1 extra:1 same:2");
}

/* Custom routing: only the copy under the row's routing value is its document. */
static void test_merge_routing(void **state)
{
    (void)state;
    static const struct fake_doc db[] = {{"1", "{}", 0}, {"2", "{}", 0}, {"3", "{}", 0},
                                         {"4", "{}", 0}};
    static const char *const db_routing[] = {"a", "b", "c", "d"};
    /* 1: a stale copy first, then the right one; 2: the right one, then a stale one;
       3: only a copy under an old value; 4: a copy indexed without routing */
    static const struct fake_doc ix[] = {{"1", "{}", 1}, {"1", "{}", 1}, {"2", "{}", 1},
                                         {"2", "{}", 1}, {"3", "{}", 1}, {"4", "{}", 1}};
    static const char *const ix_routing[] = {"old", "a", "b", "old", "old", NULL};
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;
    struct fake_iter fd = {db, 4, 0, -1, db_routing}, fx = {ix, 6, 0, -1, ix_routing};
    struct verify_iter a = {fake_next, &fd}, b = {fake_next, &fx};

    assert_int_equal(verify_merge(&a, &b, 0, record_result, &s, &c, &err), 0);
    assert_string_equal(s.log,
                        "extra:1 same:1 same:2 extra:2 extra:3 missing:3 extra:4 missing:4");
    assert_int_equal(c.extra, 4);
    assert_int_equal(c.missing, 2);
}

static void test_merge_rejects_unsorted_input(void **state)
{
    (void)state;
    static const struct fake_doc bad[] = {{"b", "{}", 0}, {"a", "{}", 0}};
    static const struct fake_doc dup[] = {{"a", "{}", 0}, {"a", "{}", 0}};
    static const struct fake_doc ok[] = {{"a", "{}", 0}, {"b", "{}", 0}};
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;

    assert_int_equal(run_merge(bad, 2, ok, 2, 0, &s, &c, &err), -1);
    assert_non_null(strstr(err.msg, "byte order"));
    assert_int_equal(run_merge(ok, 2, bad, 2, 0, &s, &c, &err), -1);
    /* the database side never repeats an _id */
    assert_int_equal(run_merge(dup, 2, ok, 2, 0, &s, &c, &err), -1);
}

static void test_merge_stops_on_errors(void **state)
{
    (void)state;
    static const struct fake_doc docs[] = {{"1", "{}", 0}, {"2", "{}", 0}, {"3", "{}", 0}};
    static const struct fake_doc broken[] = {{"1", "{not json", 0}};
    struct fake_iter fd = {docs, 3, 0, 2, NULL}, fx = {docs, 3, 0, -1, NULL};
    struct verify_iter a = {fake_next, &fd}, b = {fake_next, &fx};
    struct seen s = {.stop_after = 0};
    struct verify_counts c;
    struct pgs_error err;

    /* an iterator's error ends the merge with it */
    assert_int_equal(verify_merge(&a, &b, 0, record_result, &s, &c, &err), -1);
    assert_string_equal(err.msg, "fake failure");
    /* so does a callback's non-zero answer */
    s = (struct seen){.stop_after = 1};
    assert_int_equal(run_merge(docs, 3, docs, 3, 0, &s, &c, &err), -1);
    assert_string_equal(s.log, "same:1");
    /* and a document that is not JSON */
    s = (struct seen){.stop_after = 0};
    assert_int_equal(run_merge(broken, 1, docs, 1, 0, &s, &c, &err), -1);
    assert_non_null(strstr(err.msg, "\"1\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equality_table),
        cmocka_unit_test(test_diff_table),
        cmocka_unit_test(test_diff_counts_beyond_the_limit),
        cmocka_unit_test(test_diff_line_cuts_long_values_on_a_character),
        cmocka_unit_test(test_hex_round_trip_and_order),
        cmocka_unit_test(test_merge_classifies_every_id),
        cmocka_unit_test(test_merge_empty_sides),
        cmocka_unit_test(test_merge_byte_order_not_locale_order),
        cmocka_unit_test(test_merge_newer_index_copies_are_not_drift),
        cmocka_unit_test(test_merge_index_duplicate_is_extra),
        cmocka_unit_test(test_merge_routing),
        cmocka_unit_test(test_merge_rejects_unsorted_input),
        cmocka_unit_test(test_merge_stops_on_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
