/*
 * log.c - the log line writer. Plain format:
 *   2026-11-25T15:00:00.123Z level=info proc=producer msg="slot created" slot=x
 * JSON format wraps the same pairs in one object; values stay strings.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

static const char *log_proc = "pgsync";
static enum pgs_loglevel log_level = LOG_INFO;
static int log_json;
static int log_tty; /* stderr is a terminal: a line may hold a progress bar */

static const char *level_names[] = {"debug", "info", "warn", "error"};

#define LOG_MAX_SECRETS 32
static char *log_secrets[LOG_MAX_SECRETS];
static int log_nsecrets;

void pgs_log_add_secret(const char *secret)
{
    if (secret == NULL || strlen(secret) < 4 || log_nsecrets == LOG_MAX_SECRETS)
        return;
    for (int i = 0; i < log_nsecrets; i++)
        if (strcmp(log_secrets[i], secret) == 0)
            return;
    char *copy = strdup(secret);
    if (copy != NULL)
        log_secrets[log_nsecrets++] = copy;
}

void pgs_log_add_url_secret(const char *url)
{
    char pass[512], dec[512];
    const char *scheme, *start, *at, *colon;
    size_t n, k = 0;

    if (url == NULL)
        return;
    scheme = strstr(url, "://");
    start = scheme ? scheme + 3 : url;
    at = strrchr(start, '@');
    if (scheme == NULL || at == NULL)
        return;
    colon = memchr(start, ':', (size_t)(at - start));
    /* redis://SECRET@host: a password alone */
    const char *p = colon ? colon + 1 : start;
    n = (size_t)(at - p);
    if (n == 0 || n >= sizeof(pass))
        return;
    memcpy(pass, p, n);
    pass[n] = '\0';
    pgs_log_add_secret(pass);
    for (size_t i = 0; i < n; i++) {
        if (pass[i] == '%' && i + 2 < n && str_hexval(pass[i + 1]) >= 0 &&
            str_hexval(pass[i + 2]) >= 0) {
            dec[k++] = (char)(str_hexval(pass[i + 1]) * 16 + str_hexval(pass[i + 2]));
            i += 2;
        } else {
            dec[k++] = pass[i];
        }
    }
    dec[k] = '\0';
    pgs_log_add_secret(dec);
}

char *pgs_log_scrub(char *buf, size_t len)
{
    (void)len; /* the text only shrinks: secrets are at least 4 bytes, "***" is 3 */
    for (int i = 0; i < log_nsecrets; i++) {
        size_t slen = strlen(log_secrets[i]);
        char *p;
        while ((p = strstr(buf, log_secrets[i])) != NULL) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + slen, strlen(p + slen) + 1);
        }
    }
    return buf;
}

void pgs_log_init(const char *proc, enum pgs_loglevel level, int json)
{
    /* the settings that hold secrets (config.c flags them CFG_SECRET), and libpq's own */
    static const char *const secret_env[] = {"PG_PASSWORD", "PGPASSWORD", "ELASTICSEARCH_PASSWORD",
                                             "ELASTICSEARCH_API_KEY", "REDIS_AUTH",
                                             "REDIS_SENTINEL_PASSWORD", NULL};
    static const char *const url_env[] = {"PG_URL", "ELASTICSEARCH_URL", "REDIS_URL", NULL};

    log_proc = proc;
    log_level = level;
    log_json = json;
    log_tty = isatty(STDERR_FILENO);
    for (int i = 0; secret_env[i]; i++)
        pgs_log_add_secret(getenv(secret_env[i]));
    for (int i = 0; url_env[i]; i++)
        pgs_log_add_url_secret(getenv(url_env[i]));
}

int pgs_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    if (strcmp(name, "warning") == 0)
        return LOG_WARN;
    return -1;
}

int pgs_log_enabled(enum pgs_loglevel level)
{
    return level >= log_level;
}

/* Length of the valid UTF-8 sequence at "s" (at most "n" bytes), 0 when not valid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        len = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4;
    else
        return 0;
    /* no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF */
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    if (len > n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/*
 * Append the "n" bytes of "s" to "out" as a JSON string body (no quotes).
 * A byte that is not part of valid UTF-8 (a Latin-1 value from the
 * database, a message cut inside a character) becomes U+FFFD: a JSON
 * reader would refuse the whole line for it.
 */
static void json_escape_n(FILE *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    while (p < end) {
        unsigned char c = *p;
        size_t len = utf8_seq_len(p, (size_t)(end - p));
        if (len == 0) {
            fputs("\\ufffd", out);
            p++;
        } else if (len > 1) {
            fwrite(p, 1, len, out);
            p += len;
        } else {
            if (c == '"' || c == '\\')
                fprintf(out, "\\%c", c);
            else if (c == '\n')
                fputs("\\n", out);
            else if (c < 0x20)
                fprintf(out, "\\u%04x", c);
            else
                fputc(c, out);
            p++;
        }
    }
}

static void json_escape(FILE *out, const char *s)
{
    json_escape_n(out, s, strlen(s));
}

/*
 * Write the pairs of "kv" ("a=1 b=\"x y\"") as JSON members. Keys and
 * values go through json_escape: "kv" may hold anything a caller put in it.
 */
static void json_pairs(FILE *out, const char *kv)
{
    const char *p = kv;
    char val[4096]; /* "kv" comes from a 4096-byte buffer: any value fits */

    while (*p) {
        size_t n = 0;
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        fputs(",\"", out);
        json_escape_n(out, p, (size_t)(eq - p));
        fputs("\":\"", out);
        p = eq + 1;
        if (*p == '"') {
            p++;
            while (*p && *p != '"' && n + 1 < sizeof(val)) {
                if (*p == '\\' && p[1])
                    p++;
                val[n++] = *p++;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ' && n + 1 < sizeof(val))
                val[n++] = *p++;
        }
        val[n] = '\0';
        json_escape(out, val);
        fputc('"', out);
    }
}

void pgs_log_write(enum pgs_loglevel level, const char *msg, const char *kv, ...)
{
    char ts[40], pairs[4096] = "";
    struct timeval tv;
    struct tm tm;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    if (kv != NULL) {
        va_start(ap, kv);
        vsnprintf(pairs, sizeof(pairs), kv, ap);
        va_end(ap);
        pgs_log_scrub(pairs, sizeof(pairs));
    }
    char msgbuf[1024];
    snprintf(msgbuf, sizeof(msgbuf), "%s", msg);
    msg = pgs_log_scrub(msgbuf, sizeof(msgbuf));
    /*
     * One fprintf per line so that lines of several processes do not mix.
     * Room for the worst case, so that a JSON line is never cut: escaping
     * turns each byte of "msgbuf" and "pairs" into at most 6.
     */
    char line[256 + 6 * (sizeof(msgbuf) + sizeof(pairs))];
    FILE *out = fmemopen(line, sizeof(line) - 2, "w");
    if (out == NULL)
        return;
    if (log_json) {
        fprintf(out, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"proc\":\"%s\",\"pid\":\"%d\",\"msg\":\"",
                ts, (long)tv.tv_usec / 1000, level_names[level], log_proc, (int)getpid());
        json_escape(out, msg);
        fputc('"', out);
        json_pairs(out, pairs);
        fputs("}", out);
    } else {
        fprintf(out, "%s.%03ldZ level=%s proc=%s pid=%d msg=\"", ts, (long)tv.tv_usec / 1000,
                level_names[level], log_proc, (int)getpid());
        for (const char *m = msg; *m; m++) {
            if (*m == '"' || *m == '\\')
                fputc('\\', out);
            fputc(*m == '\n' ? ' ' : *m, out);
        }
        fputc('"', out);
        if (pairs[0]) {
            fputc(' ', out);
            fputs(pairs, out);
        }
    }
    long n = ftell(out);
    fclose(out);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n] = '\0';
    pgs_log_scrub(line, sizeof(line)); /* the escaped forms of what was scrubbed above */
    n = (long)strlen(line);
    line[n] = '\n';
    line[n + 1] = '\0';
    /*
     * On a terminal a progress bar may stand on the current line without a
     * newline (load.c redraws it with \r): erase it first, so that the log
     * line starts at the left edge and the bar is drawn again below it.
     */
    fprintf(stderr, "%s%s", log_tty && !log_json ? "\r\033[K" : "", line);
    fflush(stderr);
}

const char *pgs_log_value(const char *s, char *out, size_t len)
{
    size_t k = 0;

    if (len == 0)
        return out;
    for (; *s && k + 1 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            if (k + 2 >= len)
                break; /* never a lone backslash at the end */
            out[k++] = '\\';
            out[k++] = (char)c;
        } else {
            out[k++] = c < 0x20 ? ' ' : (char)c;
        }
    }
    out[k] = '\0';
    return out;
}

const char *pgs_redact_url(const char *url, char *out, size_t len)
{
    const char *scheme = strstr(url, "://");
    const char *start = scheme ? scheme + 3 : url;
    /*
     * The last '@': a password may hold '@' or '/' written unescaped; at
     * worst a path with an '@' is redacted too, never a password shown.
     */
    const char *at = strrchr(start, '@');

    if (at == NULL) {
        snprintf(out, len, "%s", url);
        return out;
    }
    snprintf(out, len, "%.*s***@%s", (int)(start - url), url, at + 1);
    return out;
}
