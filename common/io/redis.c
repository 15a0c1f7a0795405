/* redis.c - connecting to Redis and running commands over a blocking hiredis context. */
#include "redis.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"

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
        /*
         * A replica (a demoted primary), one still loading, or one that lost
         * its primary: this connection must not be used again. Marking it
         * broken makes every caller reconnect, which asks the sentinels anew.
         */
        if (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "LOADING", 7) == 0 ||
            strncmp(r->str, "MASTERDOWN", 10) == 0) {
            rc->err = REDIS_ERR_OTHER;
            snprintf(rc->errstr, sizeof(rc->errstr), "%s", r->str);
        }
        return -1;
    }
    return 0;
}

static struct timeval ms_timeval(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* A node at host:port, authenticated and on the configured database, or NULL with "err". */
static redisContext *connect_node(const struct config *cfg, const char *host, int port,
                                  struct pgs_error *err)
{
    struct timeval tv = ms_timeval(cfg->redis_timeout_ms);
    redisContext *rc = redisConnectWithTimeout(host, port, tv);
    redisReply *r;

    if (rc == NULL || rc->err) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot connect to Redis at %s:%d", host, port);
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

/* ---- Sentinel ---- */

/* The "i"th "host:port" of the comma-separated "list" ("[v6]:port" too); -1 past the end. */
static int addr_nth(const char *list, int i, char *host, size_t hlen, int *port)
{
    const char *p = list;
    for (; i > 0 && p; i--) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    if (p == NULL || !*p)
        return -1;
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, ",");
    char item[300];
    snprintf(item, sizeof(item), "%.*s", (int)(n < sizeof(item) ? n : sizeof(item) - 1), p);
    char *colon = strrchr(item, ':');
    if (colon == NULL)
        return -2;
    *colon = '\0';
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return -2;
    const char *h = item;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    snprintf(host, hlen, "%.*s", (int)hl, h);
    *port = (int)v;
    return 0;
}

/* Ask one sentinel for the primary of REDIS_SENTINEL_MASTER: 0, 1 (it knows no such name), -1. */
static int sentinel_ask_one(const struct config *cfg, const char *shost, int sport, char *host,
                            size_t hlen, int *port, struct pgs_error *err)
{
    /* a sentinel that does not answer quickly is skipped for the next one */
    int ms = cfg->redis_timeout_ms < 2000 ? cfg->redis_timeout_ms : 2000;
    redisContext *sc = redisConnectWithTimeout(shost, sport, ms_timeval(ms));
    redisReply *r = NULL;
    int rv = -1;

    if (sc == NULL || sc->err) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot connect to the Redis Sentinel at %s:%d",
                      shost, sport);
        pgs_error_detail(err, "%s", sc ? sc->errstr : "out of memory");
        goto out;
    }
    redisSetTimeout(sc, ms_timeval(ms));
    if (cfg->redis_sentinel_password && *cfg->redis_sentinel_password) {
        r = redisCommand(sc, "AUTH %s", cfg->redis_sentinel_password);
        if (redis_reply_check(sc, r, "AUTH", err) < 0) {
            snprintf(err->msg, sizeof(err->msg),
                     "the Redis Sentinel at %s:%d refuses REDIS_SENTINEL_PASSWORD", shost, sport);
            goto out;
        }
        freeReplyObject(r);
    }
    r = redisCommand(sc, "SENTINEL get-master-addr-by-name %s", cfg->redis_sentinel_master);
    if (redis_reply_check(sc, r, "SENTINEL get-master-addr-by-name", err) < 0) {
        snprintf(err->msg, sizeof(err->msg), "the Redis Sentinel at %s:%d did not answer", shost,
                 sport);
        goto out;
    }
    if (r->type == REDIS_REPLY_NIL) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "REDIS_SENTINEL_MASTER \"%s\": the Redis Sentinel at %s:%d monitors no "
                      "primary of that name",
                      cfg->redis_sentinel_master, shost, sport);
        rv = 1;
        goto out;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "the Redis Sentinel at %s:%d gave no address for \"%s\"", shost, sport,
                      cfg->redis_sentinel_master);
        goto out;
    }
    snprintf(host, hlen, "%s", r->element[0]->str);
    *port = atoi(r->element[1]->str);
    rv = 0;
out:
    freeReplyObject(r);
    redisFree(sc);
    return rv;
}

/*
 * The primary's address from the first sentinel of REDIS_SENTINELS that
 * knows it. Fatal only when every sentinel that answered knows no such name.
 */
static int sentinel_primary(const struct config *cfg, char *host, size_t hlen, int *port,
                            struct pgs_error *err)
{
    char shost[256], first_unknown[sizeof(err->msg)] = "";
    int sport, failed = 0, rc;

    for (int i = 0; (rc = addr_nth(cfg->redis_sentinels, i, shost, sizeof(shost), &sport)) != -1;
         i++) {
        if (rc == -2) {
            pgs_error_set(err, PGS_ERR_USAGE,
                          "REDIS_SENTINELS: item %d is not host:port (\"%s\")", i + 1,
                          cfg->redis_sentinels);
            return -1;
        }
        rc = sentinel_ask_one(cfg, shost, sport, host, hlen, port, err);
        if (rc == 0)
            return 0;
        if (rc == 1 && !first_unknown[0])
            snprintf(first_unknown, sizeof(first_unknown), "%s", err->msg);
        failed += rc < 0;
    }
    if (failed == 0 && first_unknown[0]) {
        /* every sentinel answered, and none knows the name: a setting to fix */
        pgs_error_set(err, PGS_ERR_FATAL, "%s", first_unknown);
        return -1;
    }
    char last[sizeof(err->msg) + sizeof(err->detail) + 4];
    pgs_error_str(err, last, sizeof(last));
    pgs_error_set(err, PGS_ERR_TRANSIENT,
                  "no Redis Sentinel of REDIS_SENTINELS gave the primary of \"%s\"",
                  cfg->redis_sentinel_master);
    pgs_error_detail(err, "the last one: %s", last);
    return -1;
}

/*
 * The node the sentinels named must say it is the primary itself: during a
 * failover the sentinels' answer can be a step behind, and a demoted primary
 * must never be written to.
 */
static int check_primary(redisContext *rc, const char *host, int port, struct pgs_error *err)
{
    redisReply *r = redisCommand(rc, "ROLE");
    int rv = redis_reply_check(rc, r, "ROLE", err);

    if (rv == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
                    r->element[0]->type != REDIS_REPLY_STRING ||
                    strcmp(r->element[0]->str, "master") != 0)) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "the Redis node at %s:%d that the sentinels named is not the primary (a "
                      "failover is under way)",
                      host, port);
        pgs_error_detail(err, "ROLE: %s", r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                                                  r->element[0]->type == REDIS_REPLY_STRING
                                              ? r->element[0]->str
                                              : "?");
        rv = -1;
    }
    freeReplyObject(r);
    return rv;
}

static unsigned long connects; /* successful redis_connect calls in this process */

unsigned long redis_connect_count(void)
{
    return connects;
}

redisContext *redis_connect(const struct config *cfg, struct pgs_error *err)
{
    static char last[300]; /* the primary last connected to: log a change once */
    char host[256], addr[300];
    int port;
    redisContext *rc;

    if (cfg->redis_sentinels == NULL) {
        rc = connect_node(cfg, cfg->redis_host, cfg->redis_port, err);
        connects += rc != NULL;
        return rc;
    }
    if (sentinel_primary(cfg, host, sizeof(host), &port, err) < 0)
        return NULL;
    rc = connect_node(cfg, host, port, err);
    if (rc == NULL)
        return NULL;
    if (check_primary(rc, host, port, err) < 0) {
        redisFree(rc);
        return NULL;
    }
    snprintf(addr, sizeof(addr), "%s:%d", host, port);
    if (strcmp(addr, last) != 0) {
        pgs_log(LOG_INFO, "Redis primary", "addr=%s master=%s%s", addr,
                cfg->redis_sentinel_master, last[0] ? " changed=1" : "");
        snprintf(last, sizeof(last), "%s", addr);
    }
    connects++;
    return rc;
}

int redis_wait_replicas(redisContext *rc, const struct config *cfg, struct pgs_error *err)
{
    if (cfg->redis_min_replicas <= 0)
        return 0;
    redisReply *r = redisCommand(rc, "WAIT %d %d", cfg->redis_min_replicas, cfg->redis_wait_ms);
    if (redis_reply_check(rc, r, "WAIT", err) < 0) {
        freeReplyObject(r);
        return -1;
    }
    long long acked = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    if (acked >= cfg->redis_min_replicas)
        return 0;
    pgs_error_set(err, PGS_ERR_TRANSIENT,
                  "%lld of the %d Redis replicas (PGSYNC_REDIS_MIN_REPLICAS) hold the records "
                  "after %d ms",
                  acked, cfg->redis_min_replicas, cfg->redis_wait_ms);
    return 1;
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

/* "slaveN:ip=...,port=...,state=...,offset=...,lag=..." into "r"; -1 when it is no such line. */
static int parse_replica_line(const char *line, long long primary_offset,
                              struct redis_replica *r)
{
    char ip[48] = "", state[16] = "";
    long long port = 0, offset = 0, lag = -1;
    const char *p = strchr(line, ':');

    /* "slave0:", not "slave_read_only:" */
    if (strncmp(line, "slave", 5) != 0 || !isdigit((unsigned char)line[5]) || p == NULL)
        return -1;
    for (p++; *p && *p != '\r' && *p != '\n';) {
        size_t n = strcspn(p, ",\r\n");
        if (!strncmp(p, "ip=", 3))
            snprintf(ip, sizeof(ip), "%.*s", (int)(n - 3), p + 3);
        else if (!strncmp(p, "port=", 5))
            port = atoll(p + 5);
        else if (!strncmp(p, "state=", 6))
            snprintf(state, sizeof(state), "%.*s", (int)(n - 6), p + 6);
        else if (!strncmp(p, "offset=", 7))
            offset = atoll(p + 7);
        else if (!strncmp(p, "lag=", 4))
            lag = atoll(p + 4);
        p += n;
        if (*p == ',')
            p++;
    }
    snprintf(r->addr, sizeof(r->addr), "%s:%lld", ip, port);
    snprintf(r->state, sizeof(r->state), "%s", state);
    r->lag_bytes = primary_offset > offset ? primary_offset - offset : 0;
    r->lag_s = lag;
    return 0;
}

int redis_node_info(redisContext *rc, struct redis_node *out, struct pgs_error *err)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->addr, sizeof(out->addr), "%s:%d", rc->tcp.host ? rc->tcp.host : "?",
             rc->tcp.port);
    redisReply *r = redis_command(rc, err, "INFO replication");
    if (r == NULL)
        return -1;
    const char *text = r->type == REDIS_REPLY_STRING ? r->str : "";
    const char *off = strstr(text, "master_repl_offset:");
    long long primary_offset = off ? atoll(off + 19) : 0;
    for (const char *line = text; line && *line;) {
        if (!strncmp(line, "role:", 5))
            snprintf(out->role, sizeof(out->role), "%.*s", (int)strcspn(line + 5, "\r\n"),
                     line + 5);
        else if (out->nreplicas < (int)(sizeof(out->replicas) / sizeof(out->replicas[0])) &&
                 parse_replica_line(line, primary_offset, &out->replicas[out->nreplicas]) == 0)
            out->nreplicas++;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    freeReplyObject(r);
    return 0;
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
