/*
 * test_strbuf.c - the string buffer and its SQL quoting: every identifier
 * and literal comes out as one token PostgreSQL reads back as the same
 * text (quotes doubled, backslashes left alone), growth keeps the text and
 * the terminating NUL, and pgs_parse_u64 takes exactly digits, no overflow.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* sb_ident or sb_literal of "in" into a fresh buffer must give "want". */
static void check_quoted(void (*quote)(struct strbuf *, const char *), const char *in,
                         const char *want)
{
    struct strbuf sb;
    sb_init(&sb);
    quote(&sb, in);
    assert_string_equal(sb.buf, want);
    assert_int_equal(sb.len, strlen(want));
    sb_free(&sb);
}

/*
 * Read a quoted token back the way PostgreSQL's scanner does: the first
 * byte is the quote, a doubled quote is one, a single quote ends it.
 * Returns the body, or NULL when the token ends before the text does.
 */
static char *unquote(const char *tok, char q)
{
    size_t n = strlen(tok), k = 0;
    char *out = malloc(n + 1);
    assert_true(n >= 2 && tok[0] == q);
    for (size_t i = 1; i < n; i++) {
        if (tok[i] == q) {
            if (i + 1 < n && tok[i + 1] == q) {
                out[k++] = q;
                i++;
                continue;
            }
            if (i + 1 != n) { /* the token closed early: an injection */
                free(out);
                return NULL;
            }
            out[k] = '\0';
            return out;
        }
        out[k++] = tok[i];
    }
    free(out);
    return NULL; /* never closed */
}

/* ------------------------------------------------------------- quoting */

static void test_ident_plain_and_empty(void **state)
{
    (void)state;
    check_quoted(sb_ident, "book", "\"book\"");
    check_quoted(sb_ident, "Book Title", "\"Book Title\"");
    check_quoted(sb_ident, "", "\"\"");
}

static void test_ident_doubles_embedded_quotes(void **state)
{
    (void)state;
    check_quoted(sb_ident, "a\"b", "\"a\"\"b\"");
    check_quoted(sb_ident, "\"", "\"\"\"\"");
    check_quoted(sb_ident, "\"\"", "\"\"\"\"\"\"");
    check_quoted(sb_ident, "x\"; DROP TABLE t; --", "\"x\"\"; DROP TABLE t; --\"");
    /* the other quote is plain text inside an identifier */
    check_quoted(sb_ident, "it's", "\"it's\"");
}

static void test_ident_backslash_untouched(void **state)
{
    (void)state;
    /* identifiers have no escapes: a backslash is a character */
    check_quoted(sb_ident, "a\\b", "\"a\\b\"");
    check_quoted(sb_ident, "\\", "\"\\\"");
    check_quoted(sb_ident, "a\\\"", "\"a\\\"\"\"");
}

static void test_literal_plain_and_empty(void **state)
{
    (void)state;
    check_quoted(sb_literal, "hello", "'hello'");
    check_quoted(sb_literal, "", "''");
    check_quoted(sb_literal, "two words", "'two words'");
}

static void test_literal_doubles_embedded_quotes(void **state)
{
    (void)state;
    check_quoted(sb_literal, "O'Reilly", "'O''Reilly'");
    check_quoted(sb_literal, "'", "''''");
    check_quoted(sb_literal, "''", "''''''");
    check_quoted(sb_literal, "x'); DROP TABLE t; --", "'x''); DROP TABLE t; --'");
    check_quoted(sb_literal, "say \"hi\"", "'say \"hi\"'");
}

static void test_literal_backslash_untouched(void **state)
{
    (void)state;
    /*
     * standard_conforming_strings (on since 9.1): a backslash is itself, so
     * doubling it would change the value and an E'' string is not needed.
     */
    check_quoted(sb_literal, "C:\\temp", "'C:\\temp'");
    check_quoted(sb_literal, "\\'", "'\\'''");
    check_quoted(sb_literal, "end\\", "'end\\'");
}

static void test_quoting_non_ascii_and_control_bytes(void **state)
{
    (void)state;
    check_quoted(sb_ident, "café", "\"café\"");
    check_quoted(sb_ident, "書籍", "\"書籍\"");
    check_quoted(sb_literal, "naïve 'ü' 😀", "'naïve ''ü'' 😀'");
    /* bytes that are not UTF-8 and control characters go through as they are */
    check_quoted(sb_literal, "\xff\xfe", "'\xff\xfe'");
    check_quoted(sb_literal, "a\nb\tc", "'a\nb\tc'");
    check_quoted(sb_ident, "a\nb", "\"a\nb\"");
}

static void test_quoting_round_trips(void **state)
{
    static const char *const samples[] = {
        "", "a", "'", "\"", "''\"\"", "a'b\"c\\d", "'; --", "\\", "é'è", "x\"y'z\"",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        struct strbuf sb;
        char *back;

        sb_init(&sb);
        sb_ident(&sb, samples[i]);
        back = unquote(sb.buf, '"');
        assert_non_null(back);
        assert_string_equal(back, samples[i]);
        free(back);

        sb_reset(&sb);
        sb_literal(&sb, samples[i]);
        back = unquote(sb.buf, '\'');
        assert_non_null(back);
        assert_string_equal(back, samples[i]);
        free(back);
        sb_free(&sb);
    }
}

static void test_quoting_very_long_names(void **state)
{
    enum { N = 100000 };
    char *name = malloc(N + 1);
    struct strbuf sb;
    (void)state;

    /* every third byte a quote: the output grows by a third */
    for (size_t i = 0; i < N; i++)
        name[i] = i % 3 == 0 ? '"' : 'x';
    name[N] = '\0';
    sb_init(&sb);
    sb_ident(&sb, name);
    size_t quotes = (N + 2) / 3;
    assert_int_equal(sb.len, N + quotes + 2);
    assert_int_equal(strlen(sb.buf), sb.len);
    char *back = unquote(sb.buf, '"');
    assert_non_null(back);
    assert_memory_equal(back, name, N + 1);
    free(back);
    sb_free(&sb);
    free(name);
}

static void test_quoting_appends(void **state)
{
    struct strbuf sb;
    (void)state;
    sb_init(&sb);
    sb_add(&sb, "SELECT ");
    sb_ident(&sb, "t\"x");
    sb_add(&sb, " FROM t WHERE a = ");
    sb_literal(&sb, "it's");
    assert_string_equal(sb.buf, "SELECT \"t\"\"x\" FROM t WHERE a = 'it''s'");
    sb_free(&sb);
}

/* ------------------------------------------------------------- buffer */

static void test_init_is_empty_string(void **state)
{
    struct strbuf sb;
    (void)state;
    sb_init(&sb);
    assert_non_null(sb.buf);
    assert_string_equal(sb.buf, "");
    assert_int_equal(sb.len, 0);
    assert_true(sb.cap >= 1);
    sb_free(&sb);
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.cap, 0);
    sb_free(&sb); /* twice is harmless */
}

static void test_add_addn_addc(void **state)
{
    struct strbuf sb;
    (void)state;
    sb_init(&sb);
    sb_add(&sb, "ab");
    sb_addn(&sb, "cdef", 2);
    sb_addc(&sb, 'e');
    sb_addn(&sb, "zzz", 0);
    sb_add(&sb, "");
    assert_string_equal(sb.buf, "abcde");
    assert_int_equal(sb.len, 5);
    /* sb_addn copies bytes, NULs included; the buffer stays terminated after them */
    sb_addn(&sb, "x\0y", 3);
    assert_int_equal(sb.len, 8);
    assert_memory_equal(sb.buf, "abcdex\0y", 9);
    sb_free(&sb);
}

static void test_reset_keeps_capacity(void **state)
{
    struct strbuf sb;
    (void)state;
    sb_init(&sb);
    for (int i = 0; i < 100; i++)
        sb_add(&sb, "0123456789");
    size_t cap = sb.cap;
    char *buf = sb.buf;
    sb_reset(&sb);
    assert_int_equal(sb.len, 0);
    assert_string_equal(sb.buf, "");
    assert_int_equal(sb.cap, cap);
    assert_ptr_equal(sb.buf, buf);
    sb_add(&sb, "again");
    assert_string_equal(sb.buf, "again");
    sb_free(&sb);

    /* a zeroed buffer that never held anything can be reset too */
    struct strbuf z = {0};
    sb_reset(&z);
    assert_null(z.buf);
    sb_add(&z, "x");
    assert_string_equal(z.buf, "x");
    sb_free(&z);
}

static void test_growth_keeps_every_byte(void **state)
{
    struct strbuf sb;
    (void)state;
    sb_init(&sb);
    for (int i = 0; i < 20000; i++) {
        sb_addc(&sb, (char)('a' + i % 26));
        assert_true(sb.cap > sb.len);
        assert_int_equal(sb.buf[sb.len], '\0');
    }
    assert_int_equal(sb.len, 20000);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(sb.buf[i], 'a' + i % 26);
    sb_free(&sb);
}

static void test_printf_formats_and_grows(void **state)
{
    struct strbuf sb;
    (void)state;
    sb_init(&sb);
    sb_printf(&sb, "%d-%s", 42, "x");
    assert_string_equal(sb.buf, "42-x");
    sb_printf(&sb, "%s", "");
    assert_string_equal(sb.buf, "42-x");
    assert_int_equal(sb.len, 4);

    /* one call far larger than the capacity: grows once, exactly */
    char *big = malloc(50001);
    memset(big, 'q', 50000);
    big[50000] = '\0';
    sb_printf(&sb, "[%s]", big);
    assert_int_equal(sb.len, 4 + 50002);
    assert_int_equal(strlen(sb.buf), sb.len);
    assert_int_equal(sb.buf[4], '[');
    assert_int_equal(sb.buf[sb.len - 1], ']');
    assert_true(sb.cap > sb.len);

    /* output that fits the remaining space exactly (the NUL included) */
    struct strbuf t;
    sb_init(&t);
    size_t room = t.cap - t.len - 1;
    char *fill = malloc(room + 1);
    memset(fill, 'f', room);
    fill[room] = '\0';
    size_t cap = t.cap;
    sb_printf(&t, "%s", fill);
    assert_int_equal(t.len, room);
    assert_int_equal(t.cap, cap);
    sb_printf(&t, "%c", 'g');
    assert_int_equal(t.len, room + 1);
    assert_true(t.cap > cap);
    assert_int_equal(t.buf[room], 'g');
    assert_int_equal(t.buf[room + 1], '\0');
    free(fill);
    sb_free(&t);
    free(big);
    sb_free(&sb);
}

static void test_steal_hands_over_and_resets(void **state)
{
    struct strbuf sb;
    (void)state;
    sb_init(&sb);
    sb_add(&sb, "mine");
    char *s = sb_steal(&sb);
    assert_string_equal(s, "mine");
    assert_null(sb.buf);
    assert_int_equal(sb.len, 0);
    assert_int_equal(sb.cap, 0);
    /* the stolen-from buffer is usable again */
    sb_add(&sb, "next");
    assert_string_equal(sb.buf, "next");
    assert_string_equal(s, "mine");
    free(s);
    sb_free(&sb);
}

static void test_xstrndup_and_xcalloc(void **state)
{
    (void)state;
    char *s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = xstrdup("");
    assert_string_equal(s, "");
    free(s);
    int *z = xcalloc(16, sizeof(int));
    for (int i = 0; i < 16; i++)
        assert_int_equal(z[i], 0);
    free(z);
    /* zero sizes still give a pointer that free() takes */
    void *p = xmalloc(0);
    assert_non_null(p);
    p = xrealloc(p, 0);
    assert_non_null(p);
    free(p);
}

/* ------------------------------------------------------------- numbers */

static void test_parse_u64(void **state)
{
    uint64_t v = 7;
    (void)state;
    assert_int_equal(pgs_parse_u64("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(pgs_parse_u64("1700000000000", 13, &v), 0);
    assert_int_equal(v, 1700000000000ULL);
    assert_int_equal(pgs_parse_u64("007", 3, &v), 0);
    assert_int_equal(v, 7);
    /* "len" bounds the read: the rest is not looked at */
    assert_int_equal(pgs_parse_u64("12-34", 2, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(pgs_parse_u64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);

    v = 99;
    assert_int_equal(pgs_parse_u64("18446744073709551616", 20, &v), -1); /* UINT64_MAX + 1 */
    assert_int_equal(pgs_parse_u64("99999999999999999999", 20, &v), -1);
    assert_int_equal(pgs_parse_u64("000000000000000000001", 21, &v), -1); /* too long */
    assert_int_equal(pgs_parse_u64("", 0, &v), -1);
    assert_int_equal(pgs_parse_u64("-1", 2, &v), -1);
    assert_int_equal(pgs_parse_u64("+1", 2, &v), -1);
    assert_int_equal(pgs_parse_u64(" 1", 2, &v), -1);
    assert_int_equal(pgs_parse_u64("1 ", 2, &v), -1);
    assert_int_equal(pgs_parse_u64("1a", 2, &v), -1);
    assert_int_equal(pgs_parse_u64("0x10", 4, &v), -1);
    assert_int_equal(v, 99); /* a failure leaves the output alone */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ident_plain_and_empty),
        cmocka_unit_test(test_ident_doubles_embedded_quotes),
        cmocka_unit_test(test_ident_backslash_untouched),
        cmocka_unit_test(test_literal_plain_and_empty),
        cmocka_unit_test(test_literal_doubles_embedded_quotes),
        cmocka_unit_test(test_literal_backslash_untouched),
        cmocka_unit_test(test_quoting_non_ascii_and_control_bytes),
        cmocka_unit_test(test_quoting_round_trips),
        cmocka_unit_test(test_quoting_very_long_names),
        cmocka_unit_test(test_quoting_appends),
        cmocka_unit_test(test_init_is_empty_string),
        cmocka_unit_test(test_add_addn_addc),
        cmocka_unit_test(test_reset_keeps_capacity),
        cmocka_unit_test(test_growth_keeps_every_byte),
        cmocka_unit_test(test_printf_formats_and_grows),
        cmocka_unit_test(test_steal_hands_over_and_resets),
        cmocka_unit_test(test_xstrndup_and_xcalloc),
        cmocka_unit_test(test_parse_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
