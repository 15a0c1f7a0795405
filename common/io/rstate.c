/* rstate.c - the project's Redis keys other than the change streams' entries (see rstate.h). */
#include "rstate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "rstream.h"
#include "strbuf.h"
#include "version.h"

/* the meta hash's fields */
#define FENCE_FIELD "truncated_lsn"

#define KEY_LEN 300

const char *rstate_key(const struct config *cfg, const char *base, const char *what, char *buf,
                       size_t len)
{
    snprintf(buf, len, "%s:{%s}:%s", cfg->stream_prefix ? cfg->stream_prefix : "pgsync", base,
             what);
    return buf;
}

/* The result of a command whose reply only says that it worked (NULL: it did not). */
static int reply_ok(redisReply *r)
{
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* ---- encodings ---- */

void rstate_lsn_encode(uint64_t v, char out[RSTATE_LSN_LEN])
{
    snprintf(out, RSTATE_LSN_LEN, "%016" PRIx64, v);
}

uint64_t rstate_lsn_decode(const char *s)
{
    return s ? strtoull(s, NULL, 16) : 0;
}

int rstate_bounds_decode(const char *s, long long **out, int *n)
{
    int cap = 16;
    *out = xcalloc((size_t)cap, sizeof(long long));
    *n = 0;
    while (s && *s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s)
            return -1;
        if (*n == cap) {
            cap *= 2;
            *out = xrealloc(*out, sizeof(long long) * (size_t)cap);
        }
        (*out)[(*n)++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

void rstate_bounds_encode(const long long *bounds, int n, struct strbuf *out)
{
    for (int i = 0; i < n; i++)
        sb_printf(out, "%s%lld", i ? "," : "", bounds[i]);
}

/* ---- the root TRUNCATE fence ---- */

int rstate_fence_read(struct redis_conn *rc, const struct config *cfg, const char *base,
                      uint64_t *fence, struct pgs_error *err)
{
    char meta[KEY_LEN];
    *fence = 0;
    rstate_key(cfg, base, "meta", meta, sizeof(meta));
    redisReply *r = redis_command(rc, err, "HGET %s " FENCE_FIELD, meta);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_STRING)
        *fence = rstate_lsn_decode(r->str);
    freeReplyObject(r);
    return 0;
}

int rstate_fence_raise(struct redis_conn *rc, const struct config *cfg, const char *base,
                       uint64_t version, struct pgs_error *err)
{
    /* a string comparison: the hex is of one width (rstate_lsn_encode) */
    static const char script[] =
        "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
        "if not v or v < ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
        "return 0";
    char meta[KEY_LEN], hex[RSTATE_LSN_LEN];

    rstate_key(cfg, base, "meta", meta, sizeof(meta));
    rstate_lsn_encode(version, hex);
    if (reply_ok(redis_command(rc, err, "EVAL %s 1 %s %s %s", script, meta, FENCE_FIELD, hex)) < 0)
        return -1;
    /* a fence lost in a failover would let older writes back: on the replicas first */
    return redis_wait_replicas(rc, cfg, err) == 0 ? 0 : -1;
}

/* ---- the initial load ---- */

struct load_keys {
    char meta[KEY_LEN], done[KEY_LEN];
};

static void load_keys(const struct config *cfg, const char *base, struct load_keys *k)
{
    rstate_key(cfg, base, "meta", k->meta, sizeof(k->meta));
    rstate_key(cfg, base, "loaddone", k->done, sizeof(k->done));
}

int rstate_load_split_read(struct redis_conn *rc, const struct config *cfg, const char *base,
                           char *load_id, size_t idlen, long long **bounds, int *nbounds,
                           int *found, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    *found = 0;
    *bounds = NULL;
    *nbounds = 0;
    redisReply *r = redis_command(rc, err, "HMGET %s load_id load_bounds", k.meta);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
        if (rstate_bounds_decode(r->element[1]->str, bounds, nbounds) == 0 && *nbounds >= 1) {
            snprintf(load_id, idlen, "%s", r->element[0]->str);
            *found = 1;
        }
    }
    if (!*found) {
        free(*bounds);
        *bounds = NULL;
        *nbounds = 0;
    }
    freeReplyObject(r);
    return 0;
}

int rstate_load_split_begin(struct redis_conn *rc, const struct config *cfg, const char *base,
                            const char *load_id, const long long *bounds, int nbounds,
                            struct pgs_error *err)
{
    struct load_keys k;
    struct strbuf txt;
    load_keys(cfg, base, &k);
    if (reply_ok(redis_command(rc, err, "DEL %s", k.done)) < 0)
        return -1;
    sb_init(&txt);
    rstate_bounds_encode(bounds, nbounds, &txt);
    int rv = reply_ok(redis_command(rc, err,
                                    "HSET %s load_id %s load_bounds %s load_parts %d load_docs 0",
                                    k.meta, load_id, txt.buf ? txt.buf : "", nbounds));
    sb_free(&txt);
    return rv;
}

int rstate_load_range_wanted(struct redis_conn *rc, const struct config *cfg, const char *base,
                             const char *load_id, int part, int *wanted, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    *wanted = 0;
    /* obsolete: another load is current, or this range is done already */
    redisReply *r = redis_command(rc, err, "HGET %s load_id", k.meta);
    if (r == NULL)
        return -1;
    int current = r->type == REDIS_REPLY_STRING && load_id && !strcmp(r->str, load_id);
    freeReplyObject(r);
    if (!current)
        return 0;
    r = redis_command(rc, err, "SISMEMBER %s %d", k.done, part);
    if (r == NULL)
        return -1;
    *wanted = !(r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    return 0;
}

int rstate_load_mark_done(struct redis_conn *rc, const struct config *cfg, const char *base,
                          int part, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    return reply_ok(redis_command(rc, err, "SADD %s %d", k.done, part));
}

int rstate_load_parts_done(struct redis_conn *rc, const struct config *cfg, const char *base,
                           int parts, char *is_done, int *ndone, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    *ndone = 0;
    redisReply *r = redis_command(rc, err, "SMEMBERS %s", k.done);
    if (r == NULL)
        return -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        int p = atoi(r->element[i]->str);
        if (p >= 0 && p < parts && !is_done[p]) {
            is_done[p] = 1;
            ++*ndone;
        }
    }
    freeReplyObject(r);
    return 0;
}

int rstate_load_add_docs(struct redis_conn *rc, const struct config *cfg, const char *base,
                         long long n, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    char num[32];
    snprintf(num, sizeof(num), "%lld", n);
    return reply_ok(redis_command(rc, err, "HINCRBY %s load_docs %s", k.meta, num));
}

int rstate_load_progress(struct redis_conn *rc, const struct config *cfg, const char *base,
                         long long *docs, long long *parts_done, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    redisReply *r = redis_command(rc, err, "HGET %s load_docs", k.meta);
    if (r == NULL)
        return -1;
    *docs = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    r = redis_command(rc, err, "SCARD %s", k.done);
    if (r == NULL)
        return -1;
    *parts_done = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return 0;
}

int rstate_load_is_finished(struct redis_conn *rc, const struct config *cfg, const char *base,
                            const char *load_id, int *finished, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    redisReply *r = redis_command(rc, err, "HMGET %s load_id load_parts", k.meta);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, load_id) != 0) {
        *finished = 1; /* not the current load any more */
        freeReplyObject(r);
        return 0;
    }
    long long parts = r->element[1]->type == REDIS_REPLY_STRING ? atoll(r->element[1]->str) : 0;
    freeReplyObject(r);
    r = redis_command(rc, err, "SCARD %s", k.done);
    if (r == NULL)
        return -1;
    *finished = r->type == REDIS_REPLY_INTEGER && r->integer >= parts;
    freeReplyObject(r);
    return 0;
}

int rstate_load_finish(struct redis_conn *rc, const struct config *cfg, const char *base,
                       uint64_t version, long long docs, long long at_unix,
                       struct pgs_error *err)
{
    struct load_keys k;
    struct pgs_error ignored;
    char v[32], d[32], t[32];

    load_keys(cfg, base, &k);
    snprintf(v, sizeof(v), "%" PRIu64, version);
    snprintf(d, sizeof(d), "%lld", docs);
    snprintf(t, sizeof(t), "%lld", at_unix);
    if (reply_ok(redis_command(rc, err, "HSET %s loaded_version %s loaded_docs %s loaded_at %s",
                               k.meta, v, d, t)) < 0)
        return -1;
    /* the load is remembered: a split left behind is only untidy, a new load replaces it */
    (void)reply_ok(redis_command(rc, &ignored, "HDEL %s load_id load_bounds load_parts", k.meta));
    (void)reply_ok(redis_command(rc, &ignored, "DEL %s", k.done));
    return 0;
}

int rstate_load_completed(struct redis_conn *rc, const struct config *cfg, const char *base,
                          int *completed, struct pgs_error *err)
{
    struct load_keys k;
    load_keys(cfg, base, &k);
    redisReply *r = redis_command(rc, err, "HGET %s loaded_version", k.meta);
    if (r == NULL)
        return -1;
    *completed = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return 0;
}

/* ---- dead letters ---- */

int rstate_dlq_add(struct redis_conn *rc, const char *dlq, const struct rstate_dead_letter *d,
                   struct pgs_error *err)
{
    char now[32];
#define S(x) ((x) ? (x) : "")
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *argv[] = {"XADD",    dlq,         "*",         "index", S(d->index), "id",
                          S(d->id),  "error",     S(d->error), "reason", S(d->reason),
                          "entries", S(d->entries), "ts",      d->ts ? d->ts : now,
                          "doc",     S(d->doc)};
#undef S
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    int n = (int)(sizeof(argv) / sizeof(argv[0]));
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    if (d->doc)
        lens[n - 1] = d->doclen;
    redisReply *r = redis_command_argv(rc, err, n, argv, lens);
    if (r == NULL) {
        /* the server's words stay in the detail */
        char detail[sizeof(err->detail)];
        snprintf(detail, sizeof(detail), "%s", err->detail);
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot write a dead letter to %s", dlq);
        pgs_error_detail(err, "%s", detail);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

struct dlq_walk {
    rstate_dead_letter_fn fn;
    void *arg;
};

static const char *entry_str(const struct rstream_entry *e, const char *name)
{
    const char *v = rstream_entry_get(e, name, NULL);
    return v ? v : "";
}

static int dlq_page(const struct rstream_entry *entries, int n, void *arg)
{
    struct dlq_walk *w = arg;
    for (int i = 0; i < n; i++) {
        const struct rstream_entry *e = &entries[i];
        struct rstate_dead_letter d = {
            .entry = e->id,
            .index = entry_str(e, "index"),
            .id = entry_str(e, "id"),
            .error = entry_str(e, "error"),
            .reason = entry_str(e, "reason"),
            .entries = entry_str(e, "entries"),
            .ts = entry_str(e, "ts"),
        };
        d.doc = rstream_entry_get(e, "doc", &d.doclen);
        if (d.doc && d.doclen == 0)
            d.doc = NULL;
        if (w->fn(&d, w->arg) < 0)
            return -1;
    }
    return 0;
}

#define DLQ_PAGE 500

int rstate_dlq_foreach(struct redis_conn *rc, const char *dlq, rstate_dead_letter_fn fn, void *arg,
                       struct pgs_error *err)
{
    struct dlq_walk w = {fn, arg};
    return rstream_range(rc, dlq, "-", "+", DLQ_PAGE, dlq_page, &w, err);
}

int rstate_dlq_find(struct redis_conn *rc, const char *dlq, const char *entry,
                    rstate_dead_letter_fn fn, void *arg, struct pgs_error *err)
{
    struct dlq_walk w = {fn, arg};
    return rstream_range(rc, dlq, entry, entry, DLQ_PAGE, dlq_page, &w, err);
}

int rstate_dlq_delete(struct redis_conn *rc, const char *dlq, const char *entry,
                      struct pgs_error *err)
{
    return rstream_delete_entry(rc, dlq, entry, err);
}

int rstate_dlq_purge(struct redis_conn *rc, const char *dlq, struct pgs_error *err)
{
    return reply_ok(redis_command(rc, err, "DEL %s", dlq));
}

int rstate_dlq_length(struct redis_conn *rc, const char *dlq, long long *n, struct pgs_error *err)
{
    return rstream_length(rc, dlq, n, err);
}

/* ---- the versions of an alias ---- */

const char *rstate_versions_key(const struct config *cfg, const char *alias, char *buf,
                                size_t len)
{
    return rstate_key(cfg, alias, "versions", buf, len);
}

static void copy_field(const redisReply *r, const char *name, char *out, size_t len)
{
    const char *v = redis_map_str(r, name);
    snprintf(out, len, "%s", v ? v : "");
}

int rstate_versions_read(struct redis_conn *rc, const struct config *cfg, const char *alias,
                         struct version_state *st, struct pgs_error *err)
{
    char key[KEY_LEN];
    const char *v;

    memset(st, 0, sizeof(*st));
    rstate_versions_key(cfg, alias, key, sizeof(key));
    /* only the small fields: the schema texts stay in Redis until asked for */
    redisReply *r = redis_command(rc, err, "HGETALL %s", key);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        pgs_error_set(err, PGS_ERR_TRANSIENT, "%s is not a hash", key);
        return -1;
    }
    if ((v = redis_map_str(r, "live")) != NULL)
        st->live = atoi(v);
    copy_field(r, "live_index", st->live_index, sizeof(st->live_index));
    copy_field(r, "live_fp", st->live_fp, sizeof(st->live_fp));
    if ((v = redis_map_str(r, "target")) != NULL)
        st->target = atoi(v);
    copy_field(r, "target_index", st->target_index, sizeof(st->target_index));
    copy_field(r, "target_fp", st->target_fp, sizeof(st->target_fp));
    copy_field(r, "retired_index", st->retired_index, sizeof(st->retired_index));
    if ((v = redis_map_str(r, "retired_at")) != NULL)
        st->retired_at = atoll(v);
    if ((v = redis_map_str(r, "generation")) != NULL)
        st->generation = atoll(v);
    freeReplyObject(r);
    return 0;
}

int rstate_versions_schema(struct redis_conn *rc, const struct config *cfg, const char *alias,
                           int v, char **schema, struct pgs_error *err)
{
    char key[KEY_LEN];
    rstate_versions_key(cfg, alias, key, sizeof(key));
    *schema = NULL;
    redisReply *r = redis_command(rc, err, "HGET %s schema:%d", key, v);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_STRING)
        *schema = xstrdup(r->str);
    freeReplyObject(r);
    return 0;
}

/* ---- consumer groups ---- */

/*
 * KEYS: stream, meta; ARGV: group, field, now. One script: no consumer can
 * see the group missing and another make it in between. XINFO GROUPS of a
 * missing stream is an error, hence pcall.
 */
static const char group_script[] =
    "local ok, gs = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1]) "
    "if ok then for _, g in ipairs(gs) do "
    "  for i = 1, #g, 2 do if g[i] == 'name' and g[i + 1] == ARGV[1] then "
    "    if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then "
    "      redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end "
    "    return 0 end end end end "
    "local since = redis.call('HGET', KEYS[2], ARGV[2]) "
    "if since then return since end "
    "redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM') "
    "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) "
    "return 0";

/* The meta field recording the group of "stream", and now in unix seconds. */
static void group_field(const char *stream, char field[KEY_LEN + 8], char now[32])
{
    snprintf(field, KEY_LEN + 8, "group:%s", stream);
    snprintf(now, 32, "%lld", (long long)time(NULL));
}

int rstate_group_ensure(struct redis_conn *rc, const char *stream, const char *meta,
                        const char *group, struct pgs_error *err)
{
    char field[KEY_LEN + 8], now[32], when[64] = "?";
    group_field(stream, field, now);
    const char *argv[] = {"EVAL", group_script, "2", stream, meta, group, field, now};
    redisReply *r = redis_command_argv(rc, err, 8, argv, NULL);
    if (r == NULL)
        return -1;
    int gone = r->type == REDIS_REPLY_STRING;
    if (gone) {
        time_t t = (time_t)strtoll(r->str, NULL, 10);
        struct tm tm;
        if (t > 0 && gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "the consumer group \"%s\" of stream %s " RSTREAM_GROUP_GONE
                      " (it was made at %s; Redis lost it); " RSTREAM_GROUP_RECOVERY,
                      group, stream, when);
    }
    freeReplyObject(r);
    return gone;
}

int rstate_group_mark(struct redis_conn *rc, const char *stream, const char *meta,
                      struct pgs_error *err)
{
    char field[KEY_LEN + 8], now[32];
    group_field(stream, field, now);
    return reply_ok(redis_command(rc, err, "HSET %s %s %s", meta, field, now));
}

/* HSET key f1 v1 f2 v2 ... unless the hash already has "live"; returns 1 when written. */
static const char init_script[] =
    "if redis.call('HEXISTS', KEYS[1], 'live') == 1 then return 0 end "
    "redis.call('HSET', KEYS[1], unpack(ARGV)) return 1";

int rstate_versions_init(struct redis_conn *rc, const struct config *cfg, const char *alias,
                         int live, const char *index, const char *fp, const char *schema,
                         struct pgs_error *err)
{
    char key[KEY_LEN], lv[16], sf[32];
    rstate_versions_key(cfg, alias, key, sizeof(key));
    snprintf(lv, sizeof(lv), "%d", live);
    snprintf(sf, sizeof(sf), "schema:%d", live);
    const char *argv[] = {"EVAL",   init_script, "1",  key, "live",     lv,
                          "live_index", index,  "live_fp", fp, sf, schema ? schema : "",
                          "generation", "1"};
    redisReply *r = redis_command_argv(rc, err, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    if (r == NULL) {
        char detail[sizeof(err->detail)];
        snprintf(detail, sizeof(detail), "%s", err->detail);
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot write %s", key);
        pgs_error_detail(err, "%s", detail);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

/* MULTI, the commands, HINCRBY generation, EXEC: readers never see half a change. */
static int state_change(struct redis_conn *rc, const char *key, struct pgs_error *err, int ncmd,
                        const char **cmds[], const int *argcs)
{
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *bump[] = {"HINCRBY", key, "generation", "1"};
    redis_route(rc, key); /* MULTI and EXEC go to the node of "key" */
    redis_pipeline_append(rc, 1, multi, NULL);
    for (int i = 0; i < ncmd; i++)
        redis_pipeline_append(rc, argcs[i], cmds[i], NULL);
    redis_pipeline_append(rc, 4, bump, NULL);
    redis_pipeline_append(rc, 1, exec, NULL);
    int failed = 0;
    for (int i = 0; i < ncmd + 3; i++) {
        redisReply *r = redis_pipeline_reply(rc, "MULTI", err);
        if (r == NULL) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot change %s: %s", key, redis_errstr(rc));
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR || (i == ncmd + 2 && r->type == REDIS_REPLY_NIL)) {
            if (!failed)
                pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot change %s: %s", key,
                              r->type == REDIS_REPLY_ERROR ? r->str : "transaction aborted");
            failed = 1;
        }
        freeReplyObject(r);
    }
    return failed ? -1 : 0;
}

int rstate_versions_set_target(struct redis_conn *rc, const struct config *cfg, const char *alias,
                               int target, const char *index, const char *fp, const char *schema,
                               struct pgs_error *err)
{
    char key[KEY_LEN], tv[16], sf[32];
    rstate_versions_key(cfg, alias, key, sizeof(key));
    snprintf(tv, sizeof(tv), "%d", target);
    snprintf(sf, sizeof(sf), "schema:%d", target);
    const char *set[] = {"HSET", key, "target", tv, "target_index", index, "target_fp", fp,
                         sf, schema ? schema : ""};
    const char **cmds[] = {set};
    int argcs[] = {10};
    return state_change(rc, key, err, 1, cmds, argcs);
}

int rstate_versions_clear_target(struct redis_conn *rc, const struct config *cfg, const char *alias,
                                 int target, struct pgs_error *err)
{
    char key[KEY_LEN], sf[32];
    rstate_versions_key(cfg, alias, key, sizeof(key));
    snprintf(sf, sizeof(sf), "schema:%d", target);
    const char *del[] = {"HDEL", key, "target", "target_index", "target_fp", sf};
    const char **cmds[] = {del};
    int argcs[] = {target > 0 ? 6 : 5};
    return state_change(rc, key, err, 1, cmds, argcs);
}

int rstate_versions_promote(struct redis_conn *rc, const struct config *cfg, const char *alias,
                            const struct version_state *st, long long now_unix,
                            struct pgs_error *err)
{
    char key[KEY_LEN], lv[16], old_schema[32], now[32];
    rstate_versions_key(cfg, alias, key, sizeof(key));
    snprintf(lv, sizeof(lv), "%d", st->target);
    snprintf(old_schema, sizeof(old_schema), "schema:%d", st->live);
    snprintf(now, sizeof(now), "%lld", now_unix);
    const char *set[] = {"HSET", key, "live", lv, "live_index", st->target_index, "live_fp",
                         st->target_fp, "retired_index", st->live_index, "retired_at", now};
    const char *del[] = {"HDEL", key, "target", "target_index", "target_fp", old_schema};
    const char **cmds[] = {set, del};
    int argcs[] = {12, 6};
    return state_change(rc, key, err, 2, cmds, argcs);
}

int rstate_versions_forget_retired(struct redis_conn *rc, const struct config *cfg,
                                   const char *alias, struct pgs_error *err)
{
    char key[KEY_LEN];
    rstate_versions_key(cfg, alias, key, sizeof(key));
    const char *del[] = {"HDEL", key, "retired_index", "retired_at"};
    return reply_ok(redis_command_argv(rc, err, 4, del, NULL));
}

/* ---- a whole entry ---- */

int rstate_entry_delete(struct redis_conn *rc, const struct config *cfg, const char *base,
                        struct pgs_error *err)
{
    char changes[KEY_LEN], load[KEY_LEN], dlq[KEY_LEN], meta[KEY_LEN], done[KEY_LEN];
    rstate_key(cfg, base, "changes", changes, sizeof(changes));
    rstate_key(cfg, base, "load", load, sizeof(load));
    rstate_key(cfg, base, "dlq", dlq, sizeof(dlq));
    rstate_key(cfg, base, "meta", meta, sizeof(meta));
    rstate_key(cfg, base, "loaddone", done, sizeof(done));
    return reply_ok(redis_command(rc, err, "DEL %s %s %s %s %s", changes, load, dlq, meta, done));
}
