/* error.c - filling and printing struct pgs_error. */
#include "error.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void pgs_error_clear(struct pgs_error *err)
{
    err->kind = PGS_OK;
    err->msg[0] = '\0';
    err->detail[0] = '\0';
}

void pgs_error_set(struct pgs_error *err, enum pgs_errkind kind, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    err->kind = kind;
    err->detail[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    pgs_log_scrub(err->msg, sizeof(err->msg));
}

void pgs_error_detail(struct pgs_error *err, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
    /* a library may echo a connection string (libpq does, for a bad URI): no password */
    pgs_log_scrub(err->detail, sizeof(err->detail));
    /* libpq and curl messages end in a newline; a log line must not */
    n = strlen(err->detail);
    while (n > 0 && (err->detail[n - 1] == '\n' || err->detail[n - 1] == '\r'))
        err->detail[--n] = '\0';
}

const char *pgs_error_str(const struct pgs_error *err, char *buf, size_t len)
{
    if (err->detail[0] != '\0')
        snprintf(buf, len, "%s: %s", err->msg, err->detail);
    else
        snprintf(buf, len, "%s", err->msg);
    return buf;
}
