/* redis.c - connecting to Redis and running commands over a blocking hiredis context. */
#include "redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

int redis_reply_check(redisContext *rc, const redisReply *r, const char *what,
                      struct pgs_error *err)
{
    if (r == NULL) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s failed", what);
        pgs_error_detail(err, "%s", rc->errstr[0] ? rc->errstr : "no reply");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s failed", what);
        pgs_error_detail(err, "%s", r->str);
        /* an out-of-memory Redis recovers when consumers catch up: retry */
        if (strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0)
            err->kind = PGS_ERR_FATAL;
        return -1;
    }
    return 0;
}

redisContext *redis_connect(const struct config *cfg, struct pgs_error *err)
{
    struct timeval tv = {cfg->redis_timeout_ms / 1000, (cfg->redis_timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    redisReply *r;

    if (rc == NULL || rc->err) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot connect to Redis at %s:%d",
                      cfg->redis_host, cfg->redis_port);
        pgs_error_detail(err, "%s", rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    redisEnableKeepAlive(rc);
    if (cfg->redis_auth && *cfg->redis_auth) {
        if (cfg->redis_user && *cfg->redis_user)
            r = redisCommand(rc, "AUTH %s %s", cfg->redis_user, cfg->redis_auth);
        else
            r = redisCommand(rc, "AUTH %s", cfg->redis_auth);
        if (redis_reply_check(rc, r, "AUTH", err) < 0) {
            err->kind = PGS_ERR_FATAL;
            snprintf(err->detail, sizeof(err->detail), "%s",
                     r ? "authentication refused: check REDIS_AUTH / REDIS_URL" : rc->errstr);
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (cfg->redis_db != 0) {
        r = redisCommand(rc, "SELECT %d", cfg->redis_db);
        if (redis_reply_check(rc, r, "SELECT", err) < 0) {
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    return rc;
}

redisReply *redis_command(redisContext *rc, struct pgs_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (redis_reply_check(rc, r, fmt, err) < 0) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *redis_command_argv(redisContext *rc, struct pgs_error *err, int argc,
                               const char **argv, const size_t *lens)
{
    char what[96];
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);

    snprintf(what, sizeof(what), "%s %s", argv[0], argc > 1 ? argv[1] : "");
    if (redis_reply_check(rc, r, what, err) < 0) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int redis_error_is(const struct pgs_error *err, const char *text)
{
    return strstr(err->detail, text) != NULL;
}

int redis_pipeline_append(redisContext *rc, int argc, const char **argv, const size_t *lens)
{
    return redisAppendCommandArgv(rc, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

redisReply *redis_pipeline_reply(redisContext *rc, const char *what, struct pgs_error *err)
{
    redisReply *r = NULL;
    if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL) {
        redis_reply_check(rc, NULL, what, err);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

const redisReply *redis_map_get(const redisReply *map, const char *key)
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

long long redis_map_int(const redisReply *map, const char *key, long long def)
{
    const redisReply *v = redis_map_get(map, key);
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

const char *redis_map_str(const redisReply *map, const char *key)
{
    const redisReply *v = redis_map_get(map, key);
    if (v == NULL || (v->type != REDIS_REPLY_STRING && v->type != REDIS_REPLY_STATUS))
        return NULL;
    return v->str;
}
