/* redis.c - connecting to Redis (one node, Sentinel, Cluster; plain or TLS) and running commands. */
#include "redis.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"
#include "rcluster.h"
#include "rconn.h"

/* Did Redis answer "text" (a code as "MOVED", matched at the start)? */
static int reply_starts(const redisReply *r, const char *text)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && r->str != NULL &&
           strncmp(r->str, text, strlen(text)) == 0;
}

/* The error of a failed call ("errstr": why the connection failed) or of an error reply. */
static int reply_error(const char *errstr, const redisReply *r, const char *what,
                       struct pgs_error *err)
{
    if (r == NULL) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s failed", what);
        pgs_error_detail(err, "%s", errstr && errstr[0] ? errstr : "no reply");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /*
         * Every error reply is worth retrying: an out-of-memory Redis recovers
         * when consumers catch up, and a missing password or permission is
         * granted on the server without restarting us.
         */
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s failed", what);
        pgs_error_detail(err, "%s", r->str);
        return -1;
    }
    return 0;
}

/* Run one command on a bare connection (connecting, asking a sentinel): NULL when it failed. */
static redisReply *bare_command(struct rconn *rc, const char *fmt, ...)
{
    char *buf;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    int rv = rconn_append(rc, buf, (size_t)len);
    free(buf);
    return rv < 0 ? NULL : rconn_read(rc);
}

/* The TLS settings of every Redis connection, sentinels and cluster nodes included. */
static void tls_settings(const struct config *cfg, struct rconn_tls *tls)
{
    static int warned;
    memset(tls, 0, sizeof(*tls));
    if (!cfg->redis_tls)
        return;
    tls->enabled = 1;
    tls->ca_file = cfg->redis_tls_ca_cert;
    tls->cert_file = cfg->redis_tls_cert;
    tls->key_file = cfg->redis_tls_key;
    tls->server_name = cfg->redis_tls_server_name;
    tls->verify = config_redis_tls_verify(cfg);
    if (!tls->verify && !warned) {
        pgs_log(LOG_WARN, "REDIS_TLS_VERIFY=none: the Redis server's certificate is not checked",
                "hint=\"anyone on the path can read and change the records: set "
                "REDIS_TLS_CA_CERT instead\"");
        warned = 1;
    }
}

/* A node at host:port, authenticated and on the configured database, or NULL with "err". */
/*
 * A maxmemory-policy that can evict our keys loses changes silently. The
 * streams, the fence and the versions carry no TTL, so only the allkeys-*
 * policies can evict them. Read from INFO memory: managed services often
 * refuse CONFIG. -1 with PGS_ERR_FATAL naming the policy and the fix.
 */
static int check_eviction(struct rconn *rc, const char *host, int port, struct pgs_error *err)
{
    redisReply *r = bare_command(rc, "INFO memory");
    char policy[64] = "";

    if (reply_error(rconn_errstr(rc), r, "INFO memory", err) < 0) {
        freeReplyObject(r);
        return -1;
    }
    const char *line = r->type == REDIS_REPLY_STRING
                           ? strstr(r->str, "maxmemory_policy:")
                           : NULL;
    if (line != NULL)
        snprintf(policy, sizeof(policy), "%.*s", (int)strcspn(line + 17, "\r\n"), line + 17);
    freeReplyObject(r);
    if (strncmp(policy, "allkeys-", 8) == 0) {
        pgs_error_set(err, PGS_ERR_FATAL,
                      "Redis at %s:%d has maxmemory-policy %s: it may evict the change streams "
                      "and lose changes for good",
                      host, port, policy);
        pgs_error_detail(err, "set maxmemory-policy noeviction (CONFIG SET maxmemory-policy "
                              "noeviction, or in redis.conf / the service's parameters); a "
                              "volatile-* policy is safe too: pgsync-c keys have no TTL");
        return -1;
    }
    return 0;
}

static struct rconn *connect_node(const struct config *cfg, const char *host, int port,
                                  struct pgs_error *err)
{
    struct rconn_tls tls;
    redisReply *r;

    tls_settings(cfg, &tls);
    struct rconn *rc = rconn_open(host, port, &tls, cfg->redis_timeout_ms, err);
    if (rc == NULL)
        return NULL;
    if (cfg->redis_auth && *cfg->redis_auth) {
        if (cfg->redis_user && *cfg->redis_user)
            r = bare_command(rc, "AUTH %s %s", cfg->redis_user, cfg->redis_auth);
        else
            r = bare_command(rc, "AUTH %s", cfg->redis_auth);
        if (reply_error(rconn_errstr(rc), r, "AUTH", err) < 0) {
            if (r != NULL) {
                /* a refusal is a setting to fix; a connection lost meanwhile is not */
                err->kind = PGS_ERR_FATAL;
                snprintf(err->detail, sizeof(err->detail),
                         "authentication refused by %s:%d: check REDIS_USER and REDIS_AUTH / "
                         "REDIS_URL",
                         host, port);
            }
            freeReplyObject(r);
            rconn_close(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (cfg->redis_db != 0) {
        r = bare_command(rc, "SELECT %d", cfg->redis_db);
        if (reply_error(rconn_errstr(rc), r, "SELECT", err) < 0) {
            freeReplyObject(r);
            rconn_close(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (check_eviction(rc, host, port, err) < 0) {
        rconn_close(rc);
        return NULL;
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
    struct rconn_tls tls;
    redisReply *r = NULL;
    int rv = -1;

    tls_settings(cfg, &tls);
    struct rconn *sc = rconn_open(shost, sport, &tls, ms, err);
    if (sc == NULL) {
        char detail[sizeof(err->msg) + sizeof(err->detail) + 4];
        pgs_error_str(err, detail, sizeof(detail));
        pgs_error_set(err, err->kind, "cannot connect to the Redis Sentinel at %s:%d", shost,
                      sport);
        pgs_error_detail(err, "%s", detail);
        goto out;
    }
    if (cfg->redis_sentinel_password && *cfg->redis_sentinel_password) {
        r = bare_command(sc, "AUTH %s", cfg->redis_sentinel_password);
        if (reply_error(rconn_errstr(sc), r, "AUTH", err) < 0) {
            snprintf(err->msg, sizeof(err->msg),
                     "the Redis Sentinel at %s:%d refuses REDIS_SENTINEL_PASSWORD", shost, sport);
            goto out;
        }
        freeReplyObject(r);
    }
    r = bare_command(sc, "SENTINEL get-master-addr-by-name %s", cfg->redis_sentinel_master);
    if (reply_error(rconn_errstr(sc), r, "SENTINEL get-master-addr-by-name", err) < 0) {
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
    rconn_close(sc);
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
static int check_primary(struct rconn *rc, const char *host, int port, struct pgs_error *err)
{
    redisReply *r = bare_command(rc, "ROLE");
    int rv = reply_error(rconn_errstr(rc), r, "ROLE", err);

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

/* ---- the connection: one node, or the masters of a cluster ---- */

struct rnode {
    char host[256];
    int port;
    struct rconn *ctx; /* NULL until first used */
    int dirty;         /* commands sent since its last WAIT */
};

struct redis_conn {
    const struct config *cfg;
    int cluster;
    int broken; /* must not be used again: close it and connect anew */
    char errstr[400];
    struct rnode *nodes;
    int nnodes, cap;
    short *slot_node; /* cluster: the node serving each slot, -1 unknown */
    int last;         /* the node of the last keyed command: keyless ones follow it */
    int *fifo;        /* a pipeline: the node each pending reply comes from */
    size_t fifo_head, fifo_len, fifo_cap;
};

/* A cluster answers MOVED or ASK a few times in a row while a slot moves. */
#define REDIRECTS_MAX 5

static void conn_mark_broken(struct redis_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_mark_broken(struct redis_conn *c, const char *fmt, ...)
{
    if (c->broken)
        return; /* the first reason is the one worth telling */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
    c->broken = 1;
}

/* The index of the node at host:port, added when new; -1 out of memory. */
static int conn_node(struct redis_conn *c, const char *host, int port)
{
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0)
            return i;
    if (c->nnodes == c->cap) {
        int cap = c->cap ? c->cap * 2 : 4;
        struct rnode *n = realloc(c->nodes, (size_t)cap * sizeof(*n));
        if (n == NULL)
            return -1;
        c->nodes = n;
        c->cap = cap;
    }
    struct rnode *n = &c->nodes[c->nnodes];
    memset(n, 0, sizeof(*n));
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    return c->nnodes++;
}

/* The node's context, connected on first use; NULL (and the handle broken) when it fails. */
static struct rconn *conn_ctx(struct redis_conn *c, int i, struct pgs_error *err)
{
    struct rnode *n = &c->nodes[i];
    if (n->ctx == NULL) {
        n->ctx = connect_node(c->cfg, n->host, n->port, err);
        if (n->ctx == NULL) {
            if (err->kind == PGS_ERR_FATAL)
                err->kind = PGS_ERR_TRANSIENT; /* as in redis_connect */
            conn_mark_broken(c, "%s%s%s", err->msg, err->detail[0] ? ": " : "", err->detail);
            return NULL;
        }
    }
    if (rconn_broken(n->ctx)) {
        conn_mark_broken(c, "%s", rconn_errstr(n->ctx));
        pgs_error_set(err, PGS_ERR_TRANSIENT, "the connection to Redis at %s:%d failed",
                      n->host, n->port);
        pgs_error_detail(err, "%s", rconn_errstr(n->ctx));
        return NULL;
    }
    return n->ctx;
}

/* A read or write on node "i" failed: its socket is out of step for good. */
static void conn_node_failed(struct redis_conn *c, int i)
{
    struct rnode *n = &c->nodes[i];
    /* rconn's reasons name the node already */
    if (n->ctx && rconn_errstr(n->ctx)[0])
        conn_mark_broken(c, "%s", rconn_errstr(n->ctx));
    else
        conn_mark_broken(c, "%s:%d: no reply", n->host, n->port);
}

static struct redis_conn *conn_new(const struct config *cfg)
{
    struct redis_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    return c;
}

void redis_close(struct redis_conn *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nnodes; i++)
        rconn_close(c->nodes[i].ctx);
    free(c->nodes);
    free(c->slot_node);
    free(c->fifo);
    free(c);
}

int redis_broken(const struct redis_conn *c)
{
    if (c->broken)
        return 1;
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].ctx && rconn_broken(c->nodes[i].ctx))
            return 1;
    return 0;
}

const char *redis_errstr(const struct redis_conn *c)
{
    if (c->broken)
        return c->errstr;
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].ctx && rconn_broken(c->nodes[i].ctx))
            return rconn_errstr(c->nodes[i].ctx);
    return "";
}

int redis_reply_check(struct redis_conn *c, const redisReply *r, const char *what,
                      struct pgs_error *err)
{
    if (reply_error(redis_errstr(c), r, what, err) == 0)
        return 0;
    if (reply_starts(r, "NOPERM")) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "Redis user %s may not run %s: grant it to that ACL user (README: A "
                      "least-privilege ACL user; scripts/redis-acl.txt holds the whole rule)",
                      c->cfg->redis_user && *c->cfg->redis_user ? c->cfg->redis_user : "default",
                      what);
        pgs_error_detail(err, "%s", r->str);
    }
    /*
     * A replica (a demoted primary), one still loading, or one that lost
     * its primary; in a cluster, a slot that moved or has no master yet:
     * this connection must not be used again. Marking it broken makes every
     * caller reconnect, which asks the sentinels or the cluster anew.
     */
    if (reply_starts(r, "READONLY") || reply_starts(r, "LOADING") ||
        reply_starts(r, "MASTERDOWN") || reply_starts(r, "MOVED") || reply_starts(r, "ASK") ||
        reply_starts(r, "TRYAGAIN") || reply_starts(r, "CLUSTERDOWN"))
        conn_mark_broken(c, "%s", r->str);
    return -1;
}

/* ---- Cluster ---- */

/* The slot map from one node's CLUSTER SLOTS; -1 with "err" when it has none. */
static int cluster_slots_from(struct redis_conn *c, struct rconn *ctx, const char *seed_host,
                              int seed_port, struct pgs_error *err)
{
    redisReply *r = bare_command(ctx, "CLUSTER SLOTS");
    if (reply_error(rconn_errstr(ctx), r, "CLUSTER SLOTS", err) < 0) {
        if (r && strstr(r->str, "cluster support disabled")) {
            pgs_error_set(err, PGS_ERR_FATAL,
                          "REDIS_CLUSTER_NODES: the Redis at %s:%d is no cluster node (cluster "
                          "support disabled): name it in REDIS_URL or REDIS_HOST instead",
                          seed_host, seed_port);
        }
        freeReplyObject(r);
        return -1;
    }
    int covered = 0;
    for (int s = 0; s < RCLUSTER_SLOTS; s++)
        c->slot_node[s] = -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER ||
            range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2)
            continue;
        const redisReply *master = range->element[2];
        long long from = range->element[0]->integer, to = range->element[1]->integer;
        /* a node that does not know its own address reports "" */
        const char *host = master->element[0]->type == REDIS_REPLY_STRING &&
                                   master->element[0]->str[0]
                               ? master->element[0]->str
                               : seed_host;
        int port = master->element[1]->type == REDIS_REPLY_INTEGER
                       ? (int)master->element[1]->integer
                       : 0;
        if (from < 0 || to >= RCLUSTER_SLOTS || from > to || port <= 0)
            continue;
        int n = conn_node(c, host, port);
        if (n < 0) {
            freeReplyObject(r);
            pgs_error_set(err, PGS_ERR_TRANSIENT, "out of memory");
            return -1;
        }
        for (long long s = from; s <= to; s++)
            c->slot_node[s] = (short)n;
        covered += (int)(to - from + 1);
        c->last = n;
    }
    freeReplyObject(r);
    if (covered == 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "the Redis Cluster node at %s:%d serves no slots (CLUSTER SLOTS is empty): "
                      "is the cluster created?",
                      seed_host, seed_port);
        return -1;
    }
    if (covered < RCLUSTER_SLOTS)
        pgs_log(LOG_WARN, "Redis Cluster", "slots_covered=%d of=%d node=%s:%d", covered,
                RCLUSTER_SLOTS, seed_host, seed_port);
    return 0;
}

/* The slot map from the first seed of REDIS_CLUSTER_NODES that gives one. */
static int cluster_discover(struct redis_conn *c, struct pgs_error *err)
{
    char host[256], last[sizeof(err->msg) + sizeof(err->detail) + 4] = "";
    int port, rc;

    for (int i = 0;
         (rc = addr_nth(c->cfg->redis_cluster_nodes, i, host, sizeof(host), &port)) != -1; i++) {
        if (rc == -2) {
            pgs_error_set(err, PGS_ERR_USAGE,
                          "REDIS_CLUSTER_NODES: item %d is not host:port (\"%s\")", i + 1,
                          c->cfg->redis_cluster_nodes);
            return -1;
        }
        struct rconn *ctx = connect_node(c->cfg, host, port, err);
        if (ctx == NULL) {
            if (err->kind == PGS_ERR_FATAL)
                return -1;
            pgs_error_str(err, last, sizeof(last));
            continue;
        }
        rc = cluster_slots_from(c, ctx, host, port, err);
        rconn_close(ctx);
        if (rc == 0)
            return 0;
        if (err->kind == PGS_ERR_FATAL)
            return -1;
        pgs_error_str(err, last, sizeof(last));
    }
    pgs_error_set(err, PGS_ERR_TRANSIENT,
                  "no node of REDIS_CLUSTER_NODES gave the cluster's slots");
    pgs_error_detail(err, "the last one: %s", last[0] ? last : "none listed");
    return -1;
}

/* The node for argv's key: the slot's owner, else the node of the last keyed command. */
static int route_argv(struct redis_conn *c, int argc, const char **argv, const size_t *lens)
{
    if (!c->cluster)
        return 0;
    int k = rcluster_key_index(argc, argv, lens);
    if (k < 0)
        return c->last;
    int n = c->slot_node[rcluster_slot(argv[k], lens[k])];
    /* a slot no one serves: any node answers MOVED or CLUSTERDOWN */
    if (n >= 0)
        c->last = n;
    return c->last;
}

void redis_route(struct redis_conn *c, const char *key)
{
    if (c->cluster && key != NULL) {
        int n = c->slot_node[rcluster_slot(key, strlen(key))];
        if (n >= 0)
            c->last = n;
    }
}

/* ---- connecting ---- */

static unsigned long connects; /* successful redis_connect calls in this process */

unsigned long redis_connect_count(void)
{
    return connects;
}

struct redis_conn *redis_connect(const struct config *cfg, struct pgs_error *err)
{
    static char last[300]; /* the primary last connected to: log a change once */
    char host[256], addr[300];
    int port;
    struct redis_conn *c = conn_new(cfg);

    if (c == NULL) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "out of memory");
        return NULL;
    }
    if (cfg->redis_cluster_nodes) {
        c->cluster = 1;
        c->slot_node = malloc(RCLUSTER_SLOTS * sizeof(*c->slot_node));
        if (c->slot_node == NULL) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "out of memory");
            goto fail;
        }
        if (cluster_discover(c, err) < 0)
            goto fail;
        connects++;
        return c;
    }
    if (cfg->redis_sentinels == NULL) {
        snprintf(host, sizeof(host), "%s", cfg->redis_host);
        port = cfg->redis_port;
    } else if (sentinel_primary(cfg, host, sizeof(host), &port, err) < 0) {
        goto fail;
    }
    if (conn_node(c, host, port) != 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "out of memory");
        goto fail;
    }
    c->nodes[0].ctx = connect_node(cfg, host, port, err);
    if (c->nodes[0].ctx == NULL)
        goto fail;
    if (cfg->redis_sentinels) {
        if (check_primary(c->nodes[0].ctx, host, port, err) < 0)
            goto fail;
        snprintf(addr, sizeof(addr), "%s:%d", host, port);
        if (strcmp(addr, last) != 0) {
            pgs_log(LOG_INFO, "Redis primary", "addr=%s master=%s%s", addr,
                    cfg->redis_sentinel_master, last[0] ? " changed=1" : "");
            snprintf(last, sizeof(last), "%s", addr);
        }
    }
    connects++;
    return c;
fail:
    /*
     * A refused password or certificate is a setting to fix, and the message
     * says which; but it is fixed on the server as often as here (a renewed
     * certificate, an ACL user created late), so daemons keep retrying with
     * backoff and /healthz says why. Tools stop on any failure anyway.
     */
    if (err->kind == PGS_ERR_FATAL)
        err->kind = PGS_ERR_TRANSIENT;
    redis_close(c);
    return NULL;
}

int redis_check_eviction(struct redis_conn *c, struct pgs_error *err)
{
    for (int i = 0; i < c->nnodes && !c->broken; i++) {
        struct rnode *n = &c->nodes[i];
        if (n->ctx == NULL)
            continue;
        if (check_eviction(n->ctx, n->host, n->port, err) < 0) {
            conn_mark_broken(c, "%s", err->msg);
            return -1;
        }
    }
    return 0;
}

/* ---- commands ---- */

/*
 * Send the formatted command "buf" to node "n" (after ASKING when "asking")
 * and read its reply: NULL, with the handle broken, when the node failed.
 */
static redisReply *node_roundtrip(struct redis_conn *c, int n, const char *buf, size_t len,
                                  int asking, struct pgs_error *err)
{
    static const char *asking_argv[] = {"ASKING"};
    struct rconn *ctx = conn_ctx(c, n, err);
    redisReply *r = NULL;
    if (ctx == NULL)
        return NULL;
    c->nodes[n].dirty = 1;
    if ((asking && rconn_append_argv(ctx, 1, asking_argv, NULL) < 0) ||
        rconn_append(ctx, buf, len) < 0)
        goto failed;
    if (asking) {
        if ((r = rconn_read(ctx)) == NULL)
            goto failed;
        freeReplyObject(r);
        r = NULL;
    }
    if ((r = rconn_read(ctx)) == NULL)
        goto failed;
    return r;
failed:
    freeReplyObject(r);
    conn_node_failed(c, n);
    pgs_error_set(err, PGS_ERR_TRANSIENT, "the connection to Redis at %s:%d failed",
                  c->nodes[n].host, c->nodes[n].port);
    pgs_error_detail(err, "%s", c->errstr);
    return NULL;
}

/*
 * Run one formatted command on the node serving its key, following a
 * cluster's MOVED (the slot moved: remember where), ASK (it is moving: ask
 * there once), TRYAGAIN and CLUSTERDOWN (a failover or a move under way:
 * wait a little) a few times before giving up.
 */
static redisReply *command_run(struct redis_conn *c, const char *buf, size_t len,
                               struct pgs_error *err)
{
    const char *argv[16];
    size_t lens[16];
    char what[160];
    int argc = rcluster_resp_args(buf, len, argv, lens, 16);
    int n = argc > 0 ? route_argv(c, argc, argv, lens) : c->last, asking = 0;

    /* errors name the command and its key: "XGROUP CREATE pgsync:{book}:changes" */
    int k = argc > 0 ? rcluster_key_index(argc, argv, lens) : -1;
    int shown = k >= 0 ? k + 1 : (argc > 2 ? 2 : argc);
    what[0] = '\0';
    for (int i = 0, at = 0; i < shown && at < (int)sizeof(what) - 1; i++)
        at += snprintf(what + at, sizeof(what) - (size_t)at, "%s%.*s", i ? " " : "",
                       (int)(lens[i] < 100 ? lens[i] : 100), argv[i]);

    if (c->broken) { /* a handle marked broken is not used again: reconnect (redis.h) */
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s not sent: the connection must be made anew",
                      what);
        pgs_error_detail(err, "%s", c->errstr);
        return NULL;
    }
    for (int attempt = 0;; attempt++) {
        redisReply *r = node_roundtrip(c, n, buf, len, asking, err);
        if (r == NULL) {
            snprintf(err->msg, sizeof(err->msg), "Redis %s failed", what);
            return NULL;
        }
        asking = 0;
        if (c->cluster && r->type == REDIS_REPLY_ERROR && attempt < REDIRECTS_MAX) {
            char host[256];
            int slot, port, kind = rcluster_redirect(r->str, &slot, host, sizeof(host), &port);
            if (kind != 0) {
                int m = conn_node(c, host[0] ? host : c->nodes[n].host, port);
                if (m >= 0) {
                    if (kind == 1) {
                        pgs_log(LOG_INFO, "Redis Cluster slot moved", "slot=%d to=%s:%d", slot,
                                c->nodes[m].host, port);
                        c->slot_node[slot] = (short)m;
                        c->last = m;
                    }
                    asking = kind == 2;
                    n = m;
                    freeReplyObject(r);
                    continue;
                }
            } else if (reply_starts(r, "TRYAGAIN") || reply_starts(r, "CLUSTERDOWN")) {
                freeReplyObject(r);
                struct timespec ts = {0, 100000000L * (attempt + 1)};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        if (redis_reply_check(c, r, what, err) < 0) {
            freeReplyObject(r);
            return NULL;
        }
        return r;
    }
}

redisReply *redis_command(struct redis_conn *c, struct pgs_error *err, const char *fmt, ...)
{
    char *buf;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    if (len < 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s: cannot format the command", fmt);
        return NULL;
    }
    redisReply *r = command_run(c, buf, (size_t)len, err);
    free(buf);
    return r;
}

redisReply *redis_command_argv(struct redis_conn *c, struct pgs_error *err, int argc,
                               const char **argv, const size_t *lens)
{
    char what[96], *buf;
    long long len = redisFormatCommandArgv(&buf, argc, argv, lens);

    snprintf(what, sizeof(what), "%s %s", argv[0], argc > 1 ? argv[1] : "");
    if (len < 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s: cannot format the command", what);
        return NULL;
    }
    redisReply *r = command_run(c, buf, (size_t)len, err);
    free(buf);
    return r;
}

int redis_error_is(const struct pgs_error *err, const char *text)
{
    return strstr(err->detail, text) != NULL;
}

int redis_wait_replicas(struct redis_conn *c, const struct config *cfg, struct pgs_error *err)
{
    if (cfg->redis_min_replicas <= 0)
        return 0;
    /* WAIT counts per primary: ask each one this handle wrote to */
    for (int i = 0; i < c->nnodes; i++) {
        if (!c->nodes[i].dirty)
            continue;
        char *buf;
        int len = redisFormatCommand(&buf, "WAIT %d %d", cfg->redis_min_replicas,
                                     cfg->redis_wait_ms);
        if (len < 0) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "out of memory");
            return -1;
        }
        redisReply *r = node_roundtrip(c, i, buf, (size_t)len, 0, err);
        free(buf);
        if (redis_reply_check(c, r, "WAIT", err) < 0) {
            freeReplyObject(r);
            return -1;
        }
        long long acked = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        if (acked < cfg->redis_min_replicas) {
            pgs_error_set(err, PGS_ERR_TRANSIENT,
                          "%lld of the %d Redis replicas (PGSYNC_REDIS_MIN_REPLICAS) of %s:%d "
                          "hold the records after %d ms",
                          acked, cfg->redis_min_replicas, c->nodes[i].host, c->nodes[i].port,
                          cfg->redis_wait_ms);
            return 1;
        }
        c->nodes[i].dirty = 0;
    }
    return 0;
}

int redis_pipeline_append(struct redis_conn *c, int argc, const char **argv, const size_t *lens)
{
    int n = route_argv(c, argc, argv, lens);
    if (c->fifo_head + c->fifo_len == c->fifo_cap) {
        if (c->fifo_head > 0) {
            memmove(c->fifo, c->fifo + c->fifo_head, c->fifo_len * sizeof(*c->fifo));
            c->fifo_head = 0;
        } else {
            size_t cap = c->fifo_cap ? c->fifo_cap * 2 : 64;
            int *f = realloc(c->fifo, cap * sizeof(*f));
            if (f == NULL)
                return -1;
            c->fifo = f;
            c->fifo_cap = cap;
        }
    }
    c->fifo[c->fifo_head + c->fifo_len++] = n;
    struct pgs_error e;
    pgs_error_clear(&e);
    struct rconn *ctx = conn_ctx(c, n, &e);
    /* a node that cannot be reached answers NULL in redis_pipeline_reply */
    if (ctx == NULL)
        return 0;
    c->nodes[n].dirty = 1;
    /* a connection that broke answers NULL in redis_pipeline_reply too */
    if (rconn_append_argv(ctx, argc, argv, lens) < 0 && !rconn_broken(ctx))
        return -1;
    return 0;
}

redisReply *redis_pipeline_reply(struct redis_conn *c, const char *what, struct pgs_error *err)
{
    redisReply *r = NULL;
    if (c->fifo_len == 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s: no reply is pending", what);
        return NULL;
    }
    int n = c->fifo[c->fifo_head++];
    if (--c->fifo_len == 0)
        c->fifo_head = 0;
    struct rconn *ctx = c->nodes[n].ctx;
    if (ctx == NULL || rconn_broken(ctx) || (r = rconn_read(ctx)) == NULL) {
        if (ctx != NULL)
            conn_node_failed(c, n);
        reply_error(redis_errstr(c), NULL, what, err);
        freeReplyObject(r);
        return NULL;
    }
    /* a slot that moved: this handle's map is stale, so the caller reconnects */
    if (c->cluster && (reply_starts(r, "MOVED") || reply_starts(r, "ASK") ||
                       reply_starts(r, "TRYAGAIN") || reply_starts(r, "CLUSTERDOWN")))
        conn_mark_broken(c, "%s:%d: %s", c->nodes[n].host, c->nodes[n].port, r->str);
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

int redis_node_info(struct redis_conn *c, const char *key, struct redis_node *out,
                    struct pgs_error *err)
{
    memset(out, 0, sizeof(*out));
    redis_route(c, key);
    int n = c->cluster ? c->last : 0;
    snprintf(out->addr, sizeof(out->addr), "%s:%d", c->nodes[n].host, c->nodes[n].port);
    char *buf;
    int len = redisFormatCommand(&buf, "INFO replication");
    if (len < 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "out of memory");
        return -1;
    }
    redisReply *r = node_roundtrip(c, n, buf, (size_t)len, 0, err);
    free(buf);
    if (redis_reply_check(c, r, "INFO replication", err) < 0) {
        freeReplyObject(r);
        return -1;
    }
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
