/*
 * error.h - the error value every fallible function fills in.
 *
 * Functions return 0 / -1 (or NULL) and describe what went wrong in a
 * caller-owned struct pgs_error: the kind decides what the caller does
 * (retry, dead-letter, stop), the text is for people.
 */
#ifndef PGS_ERROR_H
#define PGS_ERROR_H

#include <stddef.h>

#define PGS_MUSTCHECK __attribute__((warn_unused_result))
#define PGS_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum pgs_errkind {
    PGS_OK = 0,
    PGS_ERR_USAGE,     /* bad argument or setting: fix the command line */
    PGS_ERR_SCHEMA,    /* schema file or its match with the database */
    PGS_ERR_TRANSIENT, /* network, server restart, 429/5xx: retry later */
    PGS_ERR_DOCUMENT,  /* one document refused for good: dead-letter it */
    PGS_ERR_FATAL      /* auth, permissions, closed index: stop and say why */
};

struct pgs_error {
    enum pgs_errkind kind;
    char msg[512];    /* what failed, the object and the place */
    char detail[768]; /* the library's own words (PQerrorMessage, errstr) */
};

void pgs_error_clear(struct pgs_error *err);
void pgs_error_set(struct pgs_error *err, enum pgs_errkind kind, const char *fmt, ...)
    PGS_PRINTF(3, 4);
void pgs_error_detail(struct pgs_error *err, const char *fmt, ...) PGS_PRINTF(2, 3);
/* "msg: detail" or "msg" into "buf" for one log line; returns "buf". */
const char *pgs_error_str(const struct pgs_error *err, char *buf, size_t len);

#endif
