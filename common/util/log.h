/*
 * log.h - one line per event: a timestamp, a level, the process, a message
 * and key=value pairs (or one JSON object per line with --log-format json).
 *
 *   pgs_log(LOG_INFO, "slot created", "slot=%s lsn=%X/%X", ...);
 *
 * The level is tested before anything is formatted. Values that may hold a
 * secret are redacted by the caller with pgs_redact_url(); as a second
 * line of defence every line is scrubbed of the secrets registered with
 * pgs_log_add_secret() (pgs_log_init registers those of the environment),
 * so that a library echoing a connection string cannot leak a password.
 */
#ifndef PGS_LOG_H
#define PGS_LOG_H

#include <stddef.h>

#include "error.h"

enum pgs_loglevel { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void pgs_log_init(const char *proc, enum pgs_loglevel level, int json);
/* "debug", "info", "warn", "error" -> level; -1 when unknown */
int pgs_log_parse_level(const char *name);
int pgs_log_enabled(enum pgs_loglevel level);
/* "kv" is a printf format of space-separated key=value pairs, or NULL */
void pgs_log_write(enum pgs_loglevel level, const char *msg, const char *kv, ...) PGS_PRINTF(3, 4);

#define pgs_log(level, msg, ...)                                                                   \
    do {                                                                                           \
        if (pgs_log_enabled(level))                                                                \
            pgs_log_write(level, msg, __VA_ARGS__);                                                \
    } while (0)

/*
 * "s" made safe inside a key="..." pair: '"' and '\\' escaped, control
 * characters as spaces (cut at "len"). Returns "out".
 */
const char *pgs_log_value(const char *s, char *out, size_t len);

/* Copy "url" into "out" with any user:password@ replaced by "***@". */
const char *pgs_redact_url(const char *url, char *out, size_t len);

/*
 * Never print "secret" (copied; shorter than 4 bytes: ignored, it would
 * blank out ordinary words). A URL's password is registered with
 * pgs_log_add_url_secret(), as written and percent-decoded.
 */
void pgs_log_add_secret(const char *secret);
void pgs_log_add_url_secret(const char *url);
/* Replace every registered secret in the NUL-terminated "buf" with "***" (never grows). */
char *pgs_log_scrub(char *buf, size_t len);

#endif
