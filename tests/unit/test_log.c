/*
 * test_log.c - the log line writer's pure parts: a value made safe for a
 * key="..." pair, a URL with its password redacted, registered secrets
 * scrubbed from every line, level names; and the lines themselves, read
 * back from stderr: one line per event, and with --log-format json one
 * object jansson parses, whatever the message or the values hold (quotes,
 * backslashes, newlines, control bytes, bytes that are not UTF-8).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"

/* ------------------------------------------------------------- capture */

static int cap_fd = -1, cap_saved = -1;

/* Send fd 2 to a temporary file until capture_end(). */
static void capture_begin(void)
{
    char path[] = "/tmp/pgs_test_log_XXXXXX";
    cap_fd = mkstemp(path);
    assert_true(cap_fd >= 0);
    unlink(path);
    fflush(stderr);
    cap_saved = dup(STDERR_FILENO);
    assert_true(cap_saved >= 0);
    assert_int_equal(dup2(cap_fd, STDERR_FILENO), STDERR_FILENO);
}

/* What was written since capture_begin(), as a new string; fd 2 restored. */
static char *capture_end(void)
{
    fflush(stderr);
    dup2(cap_saved, STDERR_FILENO);
    close(cap_saved);
    off_t n = lseek(cap_fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(cap_fd, out, (size_t)n, 0), n);
    close(cap_fd);
    cap_fd = cap_saved = -1;
    return out;
}

/* The output must be exactly one line, ending in '\n'. */
static void assert_one_line(const char *out)
{
    size_t n = strlen(out);
    assert_true(n > 0);
    assert_int_equal(out[n - 1], '\n');
    if (memchr(out, '\n', n - 1) != NULL)
        fail_msg("more than one line: %s", out);
}

/* The one line of "out" parsed as a JSON object (a new reference), or the test fails. */
static json_t *parse_line(const char *out)
{
    json_error_t jerr;
    assert_one_line(out);
    json_t *j = json_loads(out, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        fail_msg("not JSON (%s at column %d): %s", jerr.text, jerr.column, out);
    assert_true(json_is_object(j));
    return j;
}

static const char *member(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    if (v == NULL)
        fail_msg("no \"%s\" member", key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* ------------------------------------------------------------- pgs_log_value */

static void test_value_escapes_quotes_and_backslashes(void **state)
{
    char out[64];
    (void)state;
    assert_string_equal(pgs_log_value("plain", out, sizeof(out)), "plain");
    assert_string_equal(pgs_log_value("", out, sizeof(out)), "");
    assert_string_equal(pgs_log_value("say \"hi\"", out, sizeof(out)), "say \\\"hi\\\"");
    assert_string_equal(pgs_log_value("C:\\x", out, sizeof(out)), "C:\\\\x");
    assert_string_equal(pgs_log_value("é ü", out, sizeof(out)), "é ü");
    assert_ptr_equal(pgs_log_value("x", out, sizeof(out)), out);
}

static void test_value_control_bytes_become_spaces(void **state)
{
    char out[64];
    (void)state;
    assert_string_equal(pgs_log_value("a\nb\rc\td\x01\x1f", out, sizeof(out)), "a b c d  ");
    /* 0x7f and bytes above are not control bytes of the line format */
    assert_string_equal(pgs_log_value("\x7f\xff", out, sizeof(out)), "\x7f\xff");
}

static void test_value_cut_at_len(void **state)
{
    char out[8];
    (void)state;
    assert_string_equal(pgs_log_value("0123456789", out, sizeof(out)), "0123456");
    /* an escape that does not fit is left out whole: never a lone backslash */
    assert_string_equal(pgs_log_value("012345\"", out, sizeof(out)), "012345");
    assert_string_equal(pgs_log_value("01234\"", out, sizeof(out)), "01234\\\"");
    assert_string_equal(pgs_log_value("\\\\\\\\", out, sizeof(out)), "\\\\\\\\\\\\");
    assert_string_equal(pgs_log_value("x", out, 1), "");
    out[0] = 'z';
    pgs_log_value("x", out, 0); /* no room at all: nothing written */
    assert_int_equal(out[0], 'z');
}

/* ------------------------------------------------------------- pgs_redact_url */

static void test_redact_url(void **state)
{
    char out[128];
    (void)state;
    assert_string_equal(pgs_redact_url("postgres://u:pw@db:5432/x", out, sizeof(out)),
                        "postgres://***@db:5432/x");
    assert_string_equal(pgs_redact_url("redis://:pw@cache:6379/0", out, sizeof(out)),
                        "redis://***@cache:6379/0");
    assert_string_equal(pgs_redact_url("redis://pw@cache", out, sizeof(out)),
                        "redis://***@cache");
    /* nothing to hide: unchanged */
    assert_string_equal(pgs_redact_url("http://localhost:9200", out, sizeof(out)),
                        "http://localhost:9200");
    assert_string_equal(pgs_redact_url("", out, sizeof(out)), "");
    /* a password with '@' or '/' unescaped: cut at the last '@' */
    assert_string_equal(pgs_redact_url("https://u:p@ss/w@es:443", out, sizeof(out)),
                        "https://***@es:443");
    /* no scheme */
    assert_string_equal(pgs_redact_url("u:pw@host", out, sizeof(out)), "***@host");
    /* a small buffer cuts, never overflows */
    char small[12];
    assert_string_equal(pgs_redact_url("http://u:secret@host", small, sizeof(small)),
                        "http://***@");
}

/* ------------------------------------------------------------- secrets */

static void test_scrub_registered_secrets(void **state)
{
    char buf[256];
    (void)state;
    pgs_log_add_secret("hunter22");
    pgs_log_add_secret("hunter22"); /* once is enough */
    pgs_log_add_secret("abc");      /* too short: would blank out words */
    pgs_log_add_secret(NULL);
    pgs_log_add_secret("");
    strcpy(buf, "pw=hunter22 again hunter22hunter22 abc");
    assert_string_equal(pgs_log_scrub(buf, sizeof(buf)), "pw=*** again ****** abc");
    strcpy(buf, "nothing here");
    assert_string_equal(pgs_log_scrub(buf, sizeof(buf)), "nothing here");
    strcpy(buf, "");
    assert_string_equal(pgs_log_scrub(buf, sizeof(buf)), "");
}

static void test_scrub_url_secrets_as_written_and_decoded(void **state)
{
    char buf[256];
    (void)state;
    pgs_log_add_url_secret("postgres://sync:p%40ss%2Fword@db/x");
    strcpy(buf, "a p%40ss%2Fword b p@ss/word c");
    assert_string_equal(pgs_log_scrub(buf, sizeof(buf)), "a *** b *** c");
    /* a password alone (redis://SECRET@host) */
    pgs_log_add_url_secret("redis://justapass@cache:6379");
    strcpy(buf, "AUTH justapass");
    assert_string_equal(pgs_log_scrub(buf, sizeof(buf)), "AUTH ***");
    /* no password: nothing registered, nothing blanked */
    pgs_log_add_url_secret("http://es.example:9200");
    pgs_log_add_url_secret("user@host");
    pgs_log_add_url_secret(NULL);
    strcpy(buf, "http://es.example:9200 user@host");
    assert_string_equal(pgs_log_scrub(buf, sizeof(buf)), "http://es.example:9200 user@host");
}

static void test_log_line_scrubbed(void **state)
{
    (void)state;
    pgs_log_add_secret("linesecret");
    for (int json = 0; json <= 1; json++) {
        pgs_log_init("test", LOG_DEBUG, json);
        capture_begin();
        pgs_log(LOG_WARN, "connect linesecret failed", "dsn=\"password=linesecret\" x=%s",
                "linesecret");
        char *out = capture_end();
        assert_one_line(out);
        if (strstr(out, "linesecret") != NULL)
            fail_msg("secret in the line: %s", out);
        assert_non_null(strstr(out, "***"));
        free(out);
    }
}

/* ------------------------------------------------------------- levels */

static void test_levels(void **state)
{
    (void)state;
    assert_int_equal(pgs_log_parse_level("debug"), LOG_DEBUG);
    assert_int_equal(pgs_log_parse_level("info"), LOG_INFO);
    assert_int_equal(pgs_log_parse_level("warn"), LOG_WARN);
    assert_int_equal(pgs_log_parse_level("warning"), LOG_WARN);
    assert_int_equal(pgs_log_parse_level("error"), LOG_ERROR);
    assert_int_equal(pgs_log_parse_level("INFO"), -1);
    assert_int_equal(pgs_log_parse_level(""), -1);
    assert_int_equal(pgs_log_parse_level("verbose"), -1);

    pgs_log_init("test", LOG_WARN, 0);
    assert_false(pgs_log_enabled(LOG_DEBUG));
    assert_false(pgs_log_enabled(LOG_INFO));
    assert_true(pgs_log_enabled(LOG_WARN));
    assert_true(pgs_log_enabled(LOG_ERROR));
    /* below the level nothing is written (nor formatted) */
    capture_begin();
    pgs_log(LOG_INFO, "hidden", "%s", "x");
    pgs_log(LOG_ERROR, "shown", NULL);
    char *out = capture_end();
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "level=error"));
    assert_non_null(strstr(out, "msg=\"shown\""));
    assert_one_line(out);
    free(out);
}

/* ------------------------------------------------------------- plain lines */

static void test_plain_line_shape(void **state)
{
    (void)state;
    pgs_log_init("tester", LOG_DEBUG, 0);
    capture_begin();
    pgs_log(LOG_INFO, "slot \"x\" at C:\\\nnext", "slot=%s n=%d", "books", 3);
    char *out = capture_end();
    assert_one_line(out);
    assert_non_null(strstr(out, "Z level=info proc=tester pid="));
    /* quotes and backslashes escaped, the newline a space */
    assert_non_null(strstr(out, " msg=\"slot \\\"x\\\" at C:\\\\ next\" slot=books n=3\n"));
    free(out);
}

/* ------------------------------------------------------------- JSON lines */

/* Log "msg" with "kv" (printf'd with one string "arg") as JSON; the parsed line. */
static json_t *json_line(const char *msg, const char *kv, const char *arg)
{
    pgs_log_init("jtest", LOG_DEBUG, 1);
    capture_begin();
    pgs_log_write(LOG_ERROR, msg, kv, arg);
    char *out = capture_end();
    json_t *j = parse_line(out);
    free(out);
    return j;
}

static void test_json_line_members(void **state)
{
    (void)state;
    json_t *j = json_line("slot created", "slot=%s lsn=0/16B3748 note=\"two words\"", "books");
    assert_string_equal(member(j, "level"), "error");
    assert_string_equal(member(j, "proc"), "jtest");
    assert_string_equal(member(j, "msg"), "slot created");
    assert_string_equal(member(j, "slot"), "books");
    assert_string_equal(member(j, "lsn"), "0/16B3748");
    assert_string_equal(member(j, "note"), "two words");
    const char *ts = member(j, "ts");
    assert_int_equal(strlen(ts), strlen("2026-11-25T15:00:00.123Z"));
    assert_int_equal(ts[strlen(ts) - 1], 'Z');
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    assert_string_equal(member(j, "pid"), pid);
    json_decref(j);
}

static void test_json_message_round_trips(void **state)
{
    static const char *const msgs[] = {
        "plain",
        "",
        "say \"hi\"",
        "C:\\temp\\",
        "\\\"",
        "line one\nline two\n",
        "tab\there\rcarriage",
        "bell\a esc\x1b[31m del\x7f unit\x1f",
        "é ü 書籍 😀",
        "{\"looks\": \"like json\"}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        json_t *j = json_line(msgs[i], NULL, NULL);
        assert_string_equal(member(j, "msg"), msgs[i]);
        json_decref(j);
    }
}

static void test_json_message_not_utf8_still_json(void **state)
{
    static const char *const msgs[] = {
        "\xff",
        "latin-1 caf\xe9 here",
        "cut \xe6\x9b",             /* a sequence cut short */
        "\xc0\xaf overlong slash",  /* an overlong '/' */
        "\xed\xa0\x80 a surrogate", /* UTF-16 surrogates are not UTF-8 */
        "\xf8\x88\x80\x80\x80 five bytes",
        "ok \xe2\x82\xac then \x80 lone continuation",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        json_t *j = json_line(msgs[i], NULL, NULL);
        const char *m = member(j, "msg");
        /* each bad byte is shown as U+FFFD */
        assert_non_null(strstr(m, "\xef\xbf\xbd"));
        /* the valid text around the bad bytes is kept */
        if (i == 1)
            assert_non_null(strstr(m, "latin-1 caf"));
        if (i == 6)
            assert_non_null(strstr(m, "ok \xe2\x82\xac then "));
        json_decref(j);
    }
}

static void test_json_values_round_trip(void **state)
{
    static const char *const vals[] = {
        "plain", "", "say \"hi\"", "C:\\temp", "a\\\"b", "é 書籍", "x=1 y=2", "{}",
    };
    char safe[256];
    (void)state;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        /* quoted, made safe with pgs_log_value as callers do */
        json_t *j = json_line("m", "detail=\"%s\"", pgs_log_value(vals[i], safe, sizeof(safe)));
        assert_string_equal(member(j, "detail"), vals[i]);
        json_decref(j);
    }
}

static void test_json_values_anything_still_json(void **state)
{
    /* what a careless caller may hand over: raw text, quoted or not */
    static const char *const vals[] = {
        "say \"hi\"",
        "a\\",
        "line\nbreak",
        "ctl\x01\x02\x1f",
        "server said \"x=1\" and y=\"2\"",
        "\xff\xfe not utf-8",
        "trailing backslash \\",
        "= starts with equals",
        "k\"ey=v",
    };
    static const char *const kvs[] = {"detail=%s", "detail=\"%s\"", "a=1 %s b=2"};
    (void)state;
    for (size_t k = 0; k < sizeof(kvs) / sizeof(kvs[0]); k++)
        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
            json_t *j = json_line("m", kvs[k], vals[i]);
            assert_string_equal(member(j, "msg"), "m");
            json_decref(j);
        }
}

static void test_json_long_message_still_json(void **state)
{
    /* every byte escaped six times over, in the message and in the values */
    char msg[4000], val[4000];
    (void)state;
    memset(msg, '\x01', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    memset(val, '\x02', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    json_t *j = json_line(msg, "v=%s", val);
    assert_true(strlen(member(j, "msg")) > 0);
    json_decref(j);

    /* a message cut inside a multi-byte character */
    char wide[3000] = "";
    for (int i = 0; i < 900; i++)
        strcat(wide, "€");
    j = json_line(wide, NULL, NULL);
    assert_true(strlen(member(j, "msg")) > 0);
    json_decref(j);
}

/* A failed assertion leaves fd 2 captured: give it back before cmocka reports. */
static int capture_restore(void **state)
{
    (void)state;
    if (cap_saved >= 0)
        free(capture_end());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_value_escapes_quotes_and_backslashes, capture_restore),
        cmocka_unit_test_teardown(test_value_control_bytes_become_spaces, capture_restore),
        cmocka_unit_test_teardown(test_value_cut_at_len, capture_restore),
        cmocka_unit_test_teardown(test_redact_url, capture_restore),
        cmocka_unit_test_teardown(test_scrub_registered_secrets, capture_restore),
        cmocka_unit_test_teardown(test_scrub_url_secrets_as_written_and_decoded, capture_restore),
        cmocka_unit_test_teardown(test_log_line_scrubbed, capture_restore),
        cmocka_unit_test_teardown(test_levels, capture_restore),
        cmocka_unit_test_teardown(test_plain_line_shape, capture_restore),
        cmocka_unit_test_teardown(test_json_line_members, capture_restore),
        cmocka_unit_test_teardown(test_json_message_round_trips, capture_restore),
        cmocka_unit_test_teardown(test_json_message_not_utf8_still_json, capture_restore),
        cmocka_unit_test_teardown(test_json_values_round_trip, capture_restore),
        cmocka_unit_test_teardown(test_json_values_anything_still_json, capture_restore),
        cmocka_unit_test_teardown(test_json_long_message_still_json, capture_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
