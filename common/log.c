/*
 * log.c - the log line writer. Plain format:
 *   2026-11-25T15:00:00.123Z level=info proc=producer msg="slot created" slot=x
 * JSON format wraps the same pairs in one object; values stay strings.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_proc = "pgsync";
static enum pgs_loglevel log_level = LOG_INFO;
static int log_json;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void pgs_log_init(const char *proc, enum pgs_loglevel level, int json)
{
    log_proc = proc;
    log_level = level;
    log_json = json;
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

/* Append "s" to "out" as a JSON string body (no quotes). */
static void json_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
}

/* Write the pairs of "kv" ("a=1 b=\"x y\"") as JSON members. */
static void json_pairs(FILE *out, const char *kv)
{
    const char *p = kv;

    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        fputs(",\"", out);
        fwrite(p, 1, (size_t)(eq - p), out);
        fputs("\":\"", out);
        p = eq + 1;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (*p == '"' || *p == '\\')
                    fputc('\\', out);
                fputc(*p++, out);
            }
            if (*p == '"')
                p++;
        } else {
            const char *end = strchr(p, ' ');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            char tmp[1024];
            if (n >= sizeof(tmp))
                n = sizeof(tmp) - 1;
            memcpy(tmp, p, n);
            tmp[n] = '\0';
            json_escape(out, tmp);
            p += n;
        }
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
    }
    /* one fprintf per line so that lines of several processes do not mix */
    char line[8192];
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
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
    fflush(stderr);
}

const char *pgs_redact_url(const char *url, char *out, size_t len)
{
    const char *scheme = strstr(url, "://");
    const char *start = scheme ? scheme + 3 : url;
    const char *at = strchr(start, '@');
    const char *slash = strchr(start, '/');

    if (at == NULL || (slash != NULL && slash < at)) {
        snprintf(out, len, "%s", url);
        return out;
    }
    snprintf(out, len, "%.*s***@%s", (int)(start - url), url, at + 1);
    return out;
}
