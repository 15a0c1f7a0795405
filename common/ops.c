/* ops.c - helpers of the operations tools: config, stream ids, XINFO replies, slots. */
#include "ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

int ops_load(const char *prog, const char *config_path, struct config *cfg, struct app *app)
{
    struct pgs_error err;
    char buf[1600];

    pgs_error_clear(&err);
    if (config_load(cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, pgs_error_str(&err, buf, sizeof(buf)));
        return 2;
    }
    if (app_load(app, config_path, cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, pgs_error_str(&err, buf, sizeof(buf)));
        return 1;
    }
    if (app_bind_once(app, 0, &err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, pgs_error_str(&err, buf, sizeof(buf)));
        app_free(app);
        return 1;
    }
    return 0;
}

int ops_sid_parse(const char *s, struct ops_sid *out)
{
    const char *dash;

    if (s == NULL)
        return -1;
    dash = strchr(s, '-');
    out->seq = 0;
    if (dash == NULL)
        return pgs_parse_u64(s, strlen(s), &out->ms);
    if (pgs_parse_u64(s, (size_t)(dash - s), &out->ms) < 0)
        return -1;
    return pgs_parse_u64(dash + 1, strlen(dash + 1), &out->seq);
}

int ops_sid_cmp(const struct ops_sid *a, const struct ops_sid *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

const char *ops_sid_format(const struct ops_sid *id, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIu64 "-%" PRIu64, id->ms, id->seq);
    return buf;
}

int ops_sid_prev(const struct ops_sid *id, struct ops_sid *out)
{
    if (id->seq > 0) {
        out->ms = id->ms;
        out->seq = id->seq - 1;
    } else if (id->ms > 0) {
        out->ms = id->ms - 1;
        out->seq = UINT64_MAX;
    } else {
        return -1;
    }
    return 0;
}

const redisReply *ops_reply_get(const redisReply *map, const char *key)
{
    if (map == NULL || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            !strcmp(k->str, key))
            return map->element[i + 1];
    }
    return NULL;
}

long long ops_reply_int(const redisReply *map, const char *key, long long def)
{
    const redisReply *v = ops_reply_get(map, key);
    if (v == NULL)
        return def;
    if (v->type == REDIS_REPLY_INTEGER)
        return v->integer;
    if (v->type == REDIS_REPLY_STRING) {
        char *end;
        long long n = strtoll(v->str, &end, 10);
        return *v->str && *end == '\0' ? n : def;
    }
    return def;
}

const char *ops_reply_str(const redisReply *map, const char *key)
{
    const redisReply *v = ops_reply_get(map, key);
    if (v == NULL || (v->type != REDIS_REPLY_STRING && v->type != REDIS_REPLY_STATUS))
        return NULL;
    return v->str;
}

static int redis_failed(redisContext *rc, redisReply *r, const char *what, const char *key,
                        struct pgs_error *err)
{
    pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s on %s failed", what, key);
    pgs_error_detail(err, "%s", r ? r->str : (rc->errstr[0] ? rc->errstr : "no reply"));
    freeReplyObject(r);
    return -1;
}

#define COUNT_PAGE 1000

int ops_stream_count(redisContext *rc, const char *stream, const char *start, const char *end,
                     long long *n, struct pgs_error *err)
{
    char from[64];
    long long total = 0;

    snprintf(from, sizeof(from), "%s", start);
    for (;;) {
        redisReply *r = redisCommand(rc, "XRANGE %s %s %s COUNT %d", stream, from, end, COUNT_PAGE);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            return redis_failed(rc, r, "XRANGE", stream, err);
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            break;
        }
        total += (long long)r->elements;
        const redisReply *last = r->element[r->elements - 1];
        int more = r->elements == COUNT_PAGE && last->type == REDIS_REPLY_ARRAY &&
                   last->elements >= 1 && last->element[0]->type == REDIS_REPLY_STRING;
        if (more)
            snprintf(from, sizeof(from), "(%s", last->element[0]->str);
        freeReplyObject(r);
        if (!more)
            break;
    }
    *n = total;
    return 0;
}

int ops_redis_now_ms(redisContext *rc, uint64_t *now_ms, struct pgs_error *err)
{
    redisReply *r = redisCommand(rc, "TIME");
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return redis_failed(rc, r, "TIME", "the server", err);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis TIME gave an unexpected reply");
        return -1;
    }
    *now_ms = strtoull(r->element[0]->str, NULL, 10) * 1000 +
              strtoull(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return 0;
}

static void copy_value(PGresult *res, int col, char *out, size_t len)
{
    snprintf(out, len, "%s", PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col));
}

int ops_slot_query(PGconn *conn, const char *slot, struct ops_slot *out, struct pgs_error *err)
{
    /* pg_current_wal_lsn() fails on a standby, where slots cannot be read from anyway */
    static const char sql[] =
        "SELECT active, coalesce(active_pid, 0), plugin, database, restart_lsn, "
        "confirmed_flush_lsn, wal_status, "
        "CASE WHEN pg_is_in_recovery() THEN NULL "
        "ELSE pg_current_wal_lsn() - restart_lsn END "
        "FROM pg_replication_slots WHERE slot_name = $1";
    const char *params[1] = {slot};

    memset(out, 0, sizeof(*out));
    out->retained_bytes = -1;
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot read the state of replication slot \"%s\"", slot);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 1) {
        out->exists = 1;
        out->active = !strcmp(PQgetvalue(res, 0, 0), "t");
        out->active_pid = atoi(PQgetvalue(res, 0, 1));
        copy_value(res, 2, out->plugin, sizeof(out->plugin));
        copy_value(res, 3, out->database, sizeof(out->database));
        copy_value(res, 4, out->restart_lsn, sizeof(out->restart_lsn));
        copy_value(res, 5, out->confirmed_flush_lsn, sizeof(out->confirmed_flush_lsn));
        copy_value(res, 6, out->wal_status, sizeof(out->wal_status));
        if (!PQgetisnull(res, 0, 7))
            out->retained_bytes = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    }
    PQclear(res);
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *ops_slot_json(const char *name, const struct ops_slot *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "exists", json_boolean(s->exists));
    json_object_set_new(o, "active", json_boolean(s->active));
    json_object_set_new(o, "active_pid", s->active_pid ? json_integer(s->active_pid) : json_null());
    json_object_set_new(o, "plugin", str_or_null(s->plugin));
    json_object_set_new(o, "database", str_or_null(s->database));
    json_object_set_new(o, "restart_lsn", str_or_null(s->restart_lsn));
    json_object_set_new(o, "confirmed_flush_lsn", str_or_null(s->confirmed_flush_lsn));
    json_object_set_new(o, "retained_wal_bytes",
                        s->retained_bytes >= 0 ? json_integer(s->retained_bytes) : json_null());
    json_object_set_new(o, "wal_status", str_or_null(s->wal_status));
    return o;
}

int ops_wal_lsn(PGconn *conn, uint64_t *lsn, struct pgs_error *err)
{
    PGresult *res = PQexec(conn, "SELECT pg_current_wal_lsn() - '0/0'");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot read the current WAL position");
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    *lsn = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}
