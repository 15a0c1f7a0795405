/*
 * ops.h - what the operations tools (pgsync-queue, -replay, -dlq, -slot)
 * share: loading the config the way every binary does, stream entry ids
 * ("ms-seq") and their arithmetic, reading XINFO-style replies, counting a
 * range of a stream, the state of a replication slot and the current WAL
 * position. Nothing here prints but ops_load(), which reports for main.
 */
#ifndef PGS_OPS_H
#define PGS_OPS_H

#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "app.h"
#include "config.h"
#include "error.h"

/*
 * config_load() and app_load() for "prog"; on failure prints one line (and
 * the schema's problems) to stderr and returns the exit status main should
 * use (2 for a bad setting, 1 for a schema or database problem); 0 when
 * both are loaded (app_free() is then the caller's).
 */
int ops_load(const char *prog, const char *config_path, struct config *cfg, struct app *app);

/* A stream entry id. */
struct ops_sid {
    uint64_t ms, seq;
};

/* "ms-seq", or "ms" alone (seq 0); -1 when "s" is not an id. */
int ops_sid_parse(const char *s, struct ops_sid *out);
int ops_sid_cmp(const struct ops_sid *a, const struct ops_sid *b);
/* "ms-seq" into "buf"; returns "buf". */
const char *ops_sid_format(const struct ops_sid *id, char *buf, size_t len);
/* The id just before "id" (XGROUP SETID to it delivers "id" next); -1 for 0-0. */
int ops_sid_prev(const struct ops_sid *id, struct ops_sid *out);

/* The value of "key" in a flat [key, value, ...] reply (XINFO), or NULL. */
const redisReply *ops_reply_get(const redisReply *map, const char *key);
/* Its integer (or a numeric string) value, or "def" when absent or nil. */
long long ops_reply_int(const redisReply *map, const char *key, long long def);
/* Its string value, or NULL when absent or nil. */
const char *ops_reply_str(const redisReply *map, const char *key);

/*
 * Count the entries of "stream" between "start" and "end" (XRANGE bounds:
 * "-", "+", "id", "(id" exclusive). Pages through the range: exact, and
 * O(entries) in time, never in memory.
 */
int ops_stream_count(redisContext *rc, const char *stream, const char *start, const char *end,
                     long long *n, struct pgs_error *err) PGS_MUSTCHECK;

/* Redis's clock in milliseconds (TIME): stream ids carry Redis's clock, not ours. */
int ops_redis_now_ms(redisContext *rc, uint64_t *now_ms, struct pgs_error *err) PGS_MUSTCHECK;

/* One replication slot, as pg_replication_slots shows it. */
struct ops_slot {
    int exists;
    int active;
    int active_pid; /* 0 when none */
    char plugin[64];
    char database[128];
    char restart_lsn[32]; /* "" when null */
    char confirmed_flush_lsn[32];
    char wal_status[32];
    long long retained_bytes; /* pg_current_wal_lsn() - restart_lsn; -1 when unknown */
};

int ops_slot_query(PGconn *conn, const char *slot, struct ops_slot *out,
                   struct pgs_error *err) PGS_MUSTCHECK;
/* {"name", "exists", "active", "active_pid", ...}: a new reference. */
json_t *ops_slot_json(const char *name, const struct ops_slot *s);

/* pg_current_wal_lsn() as a number (the versions change records carry). */
int ops_wal_lsn(PGconn *conn, uint64_t *lsn, struct pgs_error *err) PGS_MUSTCHECK;

#endif
