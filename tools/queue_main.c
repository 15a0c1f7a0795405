/*
 * queue_main.c - pgsync-queue: how far behind the consumers are. Per schema
 * entry: the change stream (length, first and last ids), each consumer
 * group (position, pending entries, lag in entries and in time), each
 * consumer, the dead letters, and the replication slot's retained WAL.
 * Reads only; a table for people, stable JSON for scripts (man pgsync-queue).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "es.h"
#include "log.h"
#include "ops.h"
#include "rstate.h"
#include "rstream.h"
#include "strbuf.h"

static const char usage[] =
    "Usage: pgsync-queue [--config FILE | --index NAME...] [options]\n"
    "\n"
    "Shows, for each schema entry, the Redis change stream and how far each\n"
    "consumer group is behind it: pending (delivered, not yet acknowledged)\n"
    "entries, the lag in entries and in time, each consumer's pending count\n"
    "and idle time, the dead letters, (with --config) the replication\n"
    "slot: whether it is active and how much WAL it holds back, and each\n"
    "search engine node of ELASTICSEARCH_URL: up (its version) or down (why).\n"
    "\n"
    "Options:\n"
    "  -i, --index NAME       only this index (repeatable); without --config,\n"
    "                         shows its Redis keys only (no slot)\n"
    "  -j, --json             one JSON document (keys: man pgsync-queue)\n"
    "  -w, --watch SECONDS    refresh every SECONDS until Ctrl-C\n";

#define MAX_INDEXES 64

/* What to look at: one per schema entry, or per --index. */
struct queue_target {
    const char *index;
    const char *database; /* NULL without --config */
    const char *slot;     /* NULL without --config */
    char stream[256];
    char dlq[256];
};

struct queue_opts {
    int json;
    int watch;
    const char *indexes[MAX_INDEXES];
    int nindexes;
};

static volatile sig_atomic_t stop;

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/*
 * Entries after the group's last-delivered id. Redis 7.0 reports a "lag"
 * that is nil after XDEL or XGROUP SETID, so count: from whichever end the
 * ids' timestamps say is nearer, so a small backlog costs little.
 */
static int count_undelivered(struct redis_conn *rc, const char *stream, long long length,
                             const char *first, const char *last, const char *delivered,
                             long long *out, struct pgs_error *err)
{
    struct rstream_id f, l, d;
    char id[RSTREAM_ID_LEN], after[RSTREAM_ID_LEN + 8];

    if (length == 0 || *first == '\0' || *last == '\0') {
        *out = 0;
        return 0;
    }
    if (rstream_id_parse(delivered, &d) < 0)
        d.ms = d.seq = 0;
    if (rstream_id_parse(first, &f) < 0 || rstream_id_parse(last, &l) < 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "stream %s has ids that are not ms-seq", stream);
        return -1;
    }
    if (rstream_id_cmp(&d, &l) >= 0) {
        *out = 0;
        return 0;
    }
    if (rstream_id_cmp(&d, &f) < 0) {
        *out = length;
        return 0;
    }
    double span = (double)(l.ms - f.ms);
    double at = span > 0 ? (double)(d.ms - f.ms) / span : 0.5;
    rstream_id_format(&d, id, sizeof(id));
    snprintf(after, sizeof(after), "(%s", id);
    if (at >= 0.5)
        return rstream_count(rc, stream, after, "+", out, err);
    long long delivered_n;
    if (rstream_count(rc, stream, "-", id, &delivered_n, err) < 0)
        return -1;
    *out = length - delivered_n > 0 ? length - delivered_n : 0;
    return 0;
}

/* Milliseconds between the id's timestamp and "now_ms" (0 if in the future). */
static long long age_ms(const char *id, uint64_t now_ms)
{
    struct rstream_id s;
    if (id == NULL || rstream_id_parse(id, &s) < 0 || s.ms >= now_ms)
        return 0;
    return (long long)(now_ms - s.ms);
}

static json_t *collect_consumers(struct redis_conn *rc, const char *stream, const char *group,
                                 struct pgs_error *err)
{
    struct rstream_consumer *cs;
    int n;
    if (rstream_consumers(rc, stream, group, &cs, &n, err) < 0)
        return NULL;
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", str_or_null(cs[i].name));
        json_object_set_new(o, "pending", json_integer(cs[i].pending));
        json_object_set_new(o, "idle_ms", json_integer(cs[i].idle_ms));
        json_array_append_new(list, o);
    }
    free(cs);
    return list;
}

static json_t *collect_group(struct redis_conn *rc, const char *stream,
                             const struct rstream_group *g, const struct rstream_info *info,
                             uint64_t now_ms, struct pgs_error *err)
{
    const char *name = g->name;
    const char *delivered = g->last_delivered_id[0] ? g->last_delivered_id : NULL;
    long long pending = g->pending, undelivered = 0;
    char oldest[RSTREAM_ID_LEN] = "", after[RSTREAM_ID_LEN + 8], next[RSTREAM_ID_LEN] = "";
    const char *oldest_id = NULL;
    long long oldest_idle = -1;
    json_t *o = NULL, *consumers = NULL;
    int found;

    if (count_undelivered(rc, stream, info->length, info->first_id, info->last_id, delivered,
                          &undelivered, err) < 0)
        return NULL;
    /* the oldest pending entry: its id dates it, its idle says how long since delivery */
    if (pending > 0) {
        if (rstream_pending_oldest(rc, stream, name, NULL, oldest, sizeof(oldest), &oldest_idle,
                                   &found, err) < 0)
            return NULL;
        if (oldest[0])
            oldest_id = oldest;
    }
    /* the first entry not yet delivered */
    const char *first_undelivered = NULL;
    if (undelivered > 0) {
        snprintf(after, sizeof(after), "(%s", delivered ? delivered : "0-0");
        if (rstream_first_id(rc, stream, after, next, sizeof(next), err) < 0)
            return NULL;
        if (next[0])
            first_undelivered = next;
    }
    consumers = collect_consumers(rc, stream, name, err);
    if (consumers == NULL)
        return NULL;

    long long lag_ms = 0;
    if (oldest_id)
        lag_ms = age_ms(oldest_id, now_ms);
    if (first_undelivered && age_ms(first_undelivered, now_ms) > lag_ms)
        lag_ms = age_ms(first_undelivered, now_ms);

    o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "last_delivered_id", str_or_null(delivered));
    json_object_set_new(o, "pending", json_integer(pending));
    json_object_set_new(o, "oldest_pending_id", str_or_null(oldest_id));
    json_object_set_new(o, "oldest_pending_age_ms",
                        oldest_id ? json_integer(age_ms(oldest_id, now_ms)) : json_null());
    json_object_set_new(o, "oldest_pending_idle_ms",
                        oldest_idle >= 0 ? json_integer(oldest_idle) : json_null());
    json_object_set_new(o, "undelivered", json_integer(undelivered));
    json_object_set_new(o, "lag", json_integer(undelivered + pending));
    json_object_set_new(o, "lag_ms", json_integer(lag_ms));
    json_object_set_new(o, "lag_seconds", json_real((double)lag_ms / 1000.0));
    json_object_set_new(o, "consumers", consumers);
    return o;
}

static json_t *collect_slot(const struct config *cfg, const struct queue_target *t,
                            struct pgs_error *err)
{
    struct ops_slot s;
    PGconn *conn = config_pg_connect(cfg, t->database, 0, "pgsync-queue", err);
    if (conn == NULL)
        return NULL;
    int rv = ops_slot_query(conn, t->slot, &s, err);
    PQfinish(conn);
    return rv < 0 ? NULL : ops_slot_json(t->slot, &s);
}

/* Everything about one target, as the JSON object the man page documents. */
static json_t *collect_target(struct redis_conn *rc, const struct config *cfg,
                              const struct queue_target *t, uint64_t now_ms, struct pgs_error *err)
{
    json_t *o = json_object(), *groups = json_array();
    struct rstream_info info;
    struct rstream_group *gr = NULL;
    int ngroups = 0;
    long long dlq_length;

    json_object_set_new(o, "index", json_string(t->index));
    json_object_set_new(o, "database", str_or_null(t->database));
    json_object_set_new(o, "stream", json_string(t->stream));

    /* a stream that does not exist yet is empty, not an error */
    if (rstream_info(rc, t->stream, &info, err) < 0)
        goto fail;
    json_object_set_new(o, "exists", json_boolean(info.exists));
    json_object_set_new(o, "length", json_integer(info.length));
    json_object_set_new(o, "first_id", str_or_null(info.first_id));
    json_object_set_new(o, "last_id", str_or_null(info.last_id));

    if (info.exists) {
        if (rstream_groups(rc, t->stream, &gr, &ngroups, err) < 0)
            goto fail;
        for (int i = 0; i < ngroups; i++) {
            json_t *g = collect_group(rc, t->stream, &gr[i], &info, now_ms, err);
            if (g == NULL)
                goto fail;
            json_array_append_new(groups, g);
        }
    }
    json_object_set_new(o, "groups", groups);
    groups = NULL;

    if (rstate_dlq_length(rc, t->dlq, &dlq_length, err) < 0)
        goto fail;
    json_t *dlq = json_object();
    json_object_set_new(dlq, "key", json_string(t->dlq));
    json_object_set_new(dlq, "length", json_integer(dlq_length));
    json_object_set_new(o, "dlq", dlq);

    if (t->slot) {
        json_t *slot = collect_slot(cfg, t, err);
        if (slot == NULL)
            goto fail;
        json_object_set_new(o, "slot", slot);
    } else {
        json_object_set_new(o, "slot", json_null());
    }
    free(gr);
    return o;
fail:
    free(gr);
    json_decref(groups);
    json_decref(o);
    return NULL;
}

/* A Redis node and its replicas, as pgsync-queue --json shows them. */
static json_t *node_json(const struct redis_node *node, const struct config *cfg)
{
    json_t *replicas = json_array();
    for (int i = 0; i < node->nreplicas; i++)
        json_array_append_new(replicas,
                              json_pack("{s:s, s:s, s:I, s:I}", "addr", node->replicas[i].addr,
                                        "state", node->replicas[i].state, "lag_bytes",
                                        (json_int_t)node->replicas[i].lag_bytes, "lag_seconds",
                                        (json_int_t)node->replicas[i].lag_s));
    return json_pack("{s:s, s:s, s:i, s:o}", "addr", node->addr, "role", node->role,
                     "min_replicas", cfg->redis_min_replicas, "replicas", replicas);
}

/* {"nodes": [{"url", "up", "version" | "error"}...]}: every node asked GET / now. */
static json_t *collect_engine(const struct config *cfg)
{
    struct pgs_error err;
    char buf[1600];
    struct es_client *es = app_es_client(cfg, &err);

    if (es == NULL)
        return json_pack("{s:[], s:s}", "nodes", "error", pgs_error_str(&err, buf, sizeof(buf)));
    json_t *engine = json_pack("{s:o}", "nodes", es_probe_nodes(es));
    es_client_free(es);
    return engine;
}

static json_t *collect_all(struct redis_conn *rc, const struct config *cfg,
                           const struct queue_target *targets, int n, struct pgs_error *err)
{
    uint64_t now_ms;
    struct redis_node node;
    if (rstream_clock_ms(rc, &now_ms, err) < 0 ||
        redis_node_info(rc, targets[0].stream, &node, err) < 0)
        return NULL;
    json_t *root = json_object(), *list = json_array();
    json_object_set_new(root, "time", json_integer((json_int_t)(now_ms / 1000)));
    /* the node of the first index: with one node or Sentinel, every index's */
    json_object_set_new(root, "redis", node_json(&node, cfg));
    json_object_set_new(root, "entries", list);
    for (int i = 0; i < n; i++) {
        json_t *e = collect_target(rc, cfg, &targets[i], now_ms, err);
        /* in a Redis Cluster each index lives on the master serving its slot */
        if (e == NULL || redis_node_info(rc, targets[i].stream, &node, err) < 0) {
            json_decref(e);
            json_decref(root);
            return NULL;
        }
        json_object_set_new(e, "redis", node_json(&node, cfg));
        json_array_append_new(list, e);
    }
    json_object_set_new(root, "engine", collect_engine(cfg));
    return root;
}

/* "1.2s", "3m04s", "2h05m", "-" for null. */
static const char *fmt_ms(const json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v))
        return "-";
    long long ms = json_integer_value(v);
    if (ms < 60000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, len, "%lldm%02llds", ms / 60000, (ms / 1000) % 60);
    else
        snprintf(buf, len, "%lldh%02lldm", ms / 3600000, (ms / 60000) % 60);
    return buf;
}

static const char *fmt_bytes(long long b, char *buf, size_t len)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lld B", b);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void print_table(const json_t *root)
{
    size_t i, j, k;
    json_t *e, *g, *c;
    char b1[32], b2[32], b3[32];

    json_t *redis = json_object_get(root, "redis");
    printf("redis %s (%s), %zu replica%s", jstr(redis, "addr"), jstr(redis, "role"),
           json_array_size(json_object_get(redis, "replicas")),
           json_array_size(json_object_get(redis, "replicas")) == 1 ? "" : "s");
    if (jint(redis, "min_replicas") > 0)
        printf(" (records count once %lld hold them)", jint(redis, "min_replicas"));
    putchar('\n');
    json_array_foreach(json_object_get(redis, "replicas"), i, c)
    {
        printf("  replica  %s %s, %s behind, last ack %llds ago\n", jstr(c, "addr"),
               jstr(c, "state"), fmt_bytes(jint(c, "lag_bytes"), b1, sizeof(b1)),
               jint(c, "lag_seconds"));
    }
    json_t *nodes = json_object_get(json_object_get(root, "engine"), "nodes");
    size_t up = 0;
    json_array_foreach(nodes, i, c) up += json_is_true(json_object_get(c, "up"));
    printf("engine %zu of %zu node%s up", up, json_array_size(nodes),
           json_array_size(nodes) == 1 ? "" : "s");
    if (json_object_get(json_object_get(root, "engine"), "error"))
        printf(": %s", jstr(json_object_get(root, "engine"), "error"));
    putchar('\n');
    json_array_foreach(nodes, i, c)
    {
        if (json_is_true(json_object_get(c, "up")))
            printf("  node     %s up (version %s)\n", jstr(c, "url"), jstr(c, "version"));
        else
            printf("  node     %s DOWN: %s\n", jstr(c, "url"), jstr(c, "error"));
    }
    json_array_foreach(json_object_get(root, "entries"), i, e)
    {
        putchar('\n');
        printf("index %s", jstr(e, "index"));
        if (json_is_string(json_object_get(e, "database")))
            printf(" (database %s)", jstr(e, "database"));
        json_t *enode = json_object_get(e, "redis");
        if (strcmp(jstr(enode, "addr"), jstr(redis, "addr")) != 0)
            printf("\n  redis    %s (%s), %zu replica%s", jstr(enode, "addr"), jstr(enode, "role"),
                   json_array_size(json_object_get(enode, "replicas")),
                   json_array_size(json_object_get(enode, "replicas")) == 1 ? "" : "s");
        printf("\n  stream   %s: ", jstr(e, "stream"));
        if (json_is_true(json_object_get(e, "exists")))
            printf("%lld entries, first %s, last %s\n", jint(e, "length"), jstr(e, "first_id"),
                   jstr(e, "last_id"));
        else
            printf("does not exist yet\n");
        json_t *dlq = json_object_get(e, "dlq");
        printf("  dlq      %s: %lld dead letter%s\n", jstr(dlq, "key"), jint(dlq, "length"),
               jint(dlq, "length") == 1 ? "" : "s");
        json_t *groups = json_object_get(e, "groups");
        if (json_array_size(groups) == 0) {
            printf("  groups   none (no consumer has started yet)\n");
        } else {
            printf("  %-10s %-22s %9s %9s %9s %-9s %-12s %s\n", "GROUP", "LAST-DELIVERED",
                   "PENDING", "UNDELIV", "LAG", "LAG-AGE", "OLDEST-PEND", "OLDEST-IDLE");
            json_array_foreach(groups, j, g)
            {
                printf("  %-10s %-22s %9lld %9lld %9lld %-9s %-12s %s\n", jstr(g, "name"),
                       jstr(g, "last_delivered_id"), jint(g, "pending"), jint(g, "undelivered"),
                       jint(g, "lag"), fmt_ms(json_object_get(g, "lag_ms"), b1, sizeof(b1)),
                       fmt_ms(json_object_get(g, "oldest_pending_age_ms"), b2, sizeof(b2)),
                       fmt_ms(json_object_get(g, "oldest_pending_idle_ms"), b3, sizeof(b3)));
                json_array_foreach(json_object_get(g, "consumers"), k, c)
                {
                    printf("    consumer %-30s pending %lld, idle %s\n", jstr(c, "name"),
                           jint(c, "pending"),
                           fmt_ms(json_object_get(c, "idle_ms"), b1, sizeof(b1)));
                }
            }
        }
        json_t *slot = json_object_get(e, "slot");
        if (json_is_object(slot)) {
            printf("  slot     %s: ", jstr(slot, "name"));
            if (!json_is_true(json_object_get(slot, "exists"))) {
                printf("does not exist (run pgsync-bootstrap)\n");
                continue;
            }
            if (json_is_true(json_object_get(slot, "active")))
                printf("active (pid %lld)", jint(slot, "active_pid"));
            else
                printf("inactive");
            json_t *ret = json_object_get(slot, "retained_wal_bytes");
            printf(", retains %s of WAL, confirmed %s, restart %s, wal_status %s\n",
                   json_is_integer(ret) ? fmt_bytes(json_integer_value(ret), b1, sizeof(b1)) : "?",
                   jstr(slot, "confirmed_flush_lsn"), jstr(slot, "restart_lsn"),
                   jstr(slot, "wal_status"));
        }
    }
}

/* Sleep "seconds", waking early on Ctrl-C. */
static void nap(int seconds)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    for (int i = 0; i < seconds * 10 && !stop; i++)
        nanosleep(&ts, NULL);
}

static int run(const struct config *cfg, const struct queue_target *targets, int n,
               const struct queue_opts *o)
{
    struct redis_conn *rc = NULL;
    struct pgs_error err;
    char buf[1600];
    int rv = 0, tty = isatty(STDOUT_FILENO);

    do {
        pgs_error_clear(&err);
        if (rc == NULL)
            rc = redis_connect(cfg, &err);
        json_t *root = rc ? collect_all(rc, cfg, targets, n, &err) : NULL;
        if (root == NULL) {
            fprintf(stderr, "pgsync-queue: %s\n", pgs_error_str(&err, buf, sizeof(buf)));
            rv = 1;
            if (rc && redis_broken(rc)) {
                redis_close(rc);
                rc = NULL;
            }
        } else {
            rv = 0;
            if (o->json) {
                char *text = json_dumps(root, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15) |
                                                  (o->watch ? JSON_COMPACT : JSON_INDENT(2)));
                puts(text);
                free(text);
            } else {
                if (o->watch && tty)
                    fputs("\033[H\033[2J", stdout);
                if (o->watch) {
                    time_t now = time(NULL);
                    char when[64];
                    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&now));
                    printf("every %ds: %s (Ctrl-C to stop)\n\n", o->watch, when);
                }
                print_table(root);
            }
            fflush(stdout);
            json_decref(root);
        }
        if (o->watch)
            nap(o->watch);
    } while (o->watch && !stop);
    redis_close(rc);
    return o->watch ? 0 : rv;
}

static int queue_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct queue_opts *o = ctx;
    char *end;

    switch (opt) {
    case 'i':
        if (o->nindexes == MAX_INDEXES)
            cli_die_usage(prog, "at most %d --index options", MAX_INDEXES);
        if (*arg == '\0')
            cli_die_usage(prog, "--index needs a name");
        o->indexes[o->nindexes++] = arg;
        return 0;
    case 'j':
        o->json = 1;
        return 0;
    case 'w': {
        long v = strtol(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || v < 1 || v > 86400)
            cli_die_usage(prog, "--watch needs a number of seconds from 1 to 86400, not \"%s\"",
                          arg);
        o->watch = (int)v;
        return 0;
    }
    default:
        return -1;
    }
}

/*
 * The targets of the schema file: its entries named by --index (all without
 * one). Fills "*targets" (the caller's to free) and "*n"; returns 0, or 2
 * when an --index is not in the file (said on stderr).
 */
static int targets_from_app(const struct app *app, const struct queue_opts *o,
                            const char *config_path, struct queue_target **targets, int *n)
{
    struct queue_target *t = xcalloc((size_t)app->nentries, sizeof(*t));

    *n = 0;
    for (int i = 0; i < app->nentries; i++) {
        struct app_entry *ae = &app->entries[i];
        int wanted = o->nindexes == 0;
        for (int k = 0; k < o->nindexes; k++)
            if (!strcmp(o->indexes[k], ae->e->index))
                wanted = 1;
        if (!wanted)
            continue;
        t[*n].index = app_entry_name(ae); /* a migration's new version by its own name */
        t[*n].database = ae->e->database;
        t[*n].slot = ae->slot;
        snprintf(t[*n].stream, sizeof(t[*n].stream), "%s", ae->stream);
        snprintf(t[*n].dlq, sizeof(t[*n].dlq), "%s", ae->dlq);
        (*n)++;
    }
    for (int k = 0; k < o->nindexes; k++) {
        int found = 0;
        for (int i = 0; i < *n; i++)
            found |= !strcmp(t[i].index, o->indexes[k]);
        if (!found) {
            fprintf(stderr, "pgsync-queue: index \"%s\" is not in %s\n", o->indexes[k],
                    config_path);
            free(t);
            return 2;
        }
    }
    *targets = t;
    return 0;
}

/* Without a schema file: the streams of the --index names, by the key layout alone. */
static struct queue_target *targets_from_names(const struct config *cfg,
                                               const struct queue_opts *o)
{
    struct queue_target *t = xcalloc((size_t)o->nindexes, sizeof(*t));

    for (int k = 0; k < o->nindexes; k++) {
        t[k].index = o->indexes[k];
        rstate_key(cfg, o->indexes[k], "changes", t[k].stream, sizeof(t[k].stream));
        rstate_key(cfg, o->indexes[k], "dlq", t[k].dlq, sizeof(t[k].dlq));
    }
    return t;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"index", required_argument, NULL, 'i'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"watch", required_argument, NULL, 'w'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-queue", .log_level = "warn"};
    struct queue_opts o = {0};
    struct cli_spec spec = {"c:hVi:jw:", longopts, usage, queue_option, &o, 0};
    struct queue_target *targets;
    struct config cfg;
    struct app app = {0};
    int n = 0, rv;

    cli_parse(&cli, &spec, argc, argv);
    cli_common_finish(&cli, 0);
    if (cli.config == NULL && o.nindexes == 0)
        cli_die_usage(cli.prog, "--config FILE or --index NAME is required");

    if (cli.config) {
        if ((rv = ops_load(cli.prog, cli.config, &cfg, &app)) != 0)
            return rv;
        if ((rv = targets_from_app(&app, &o, cli.config, &targets, &n)) != 0) {
            app_free(&app);
            return rv;
        }
    } else {
        cli_load_config(&cli, &cfg);
        targets = targets_from_names(&cfg, &o);
        n = o.nindexes;
    }
    cli_install_signals(&stop);
    rv = run(&cfg, targets, n, &o);
    free(targets);
    if (cli.config)
        app_free(&app);
    return rv;
}
