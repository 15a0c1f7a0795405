/* version.c - versions of an index behind its alias (see version.h). */
#include "version.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "es.h"
#include "log.h"
#include "ops.h"
#include "rstream.h"
#include "strbuf.h"

void version_fingerprint(const struct schema_entry *e, char out[VERSION_FP_LEN])
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)(e->source ? e->source : ""); *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    snprintf(out, VERSION_FP_LEN, "%016" PRIx64, h);
}

void version_index_name(const char *alias, int version, char *out, size_t len)
{
    snprintf(out, len, "%s_v%d", alias, version);
}

void version_key_base(const char *alias, int version, char *out, size_t len)
{
    if (version <= 1)
        snprintf(out, len, "%s", alias);
    else
        version_index_name(alias, version, out, len);
}

void version_state_key(const struct config *cfg, const char *alias, char *out, size_t len)
{
    rstream_key(cfg, alias, "versions", out, len);
}

static void copy_field(const redisReply *r, const char *name, char *out, size_t len)
{
    const char *v = ops_reply_str(r, name);
    snprintf(out, len, "%s", v ? v : "");
}

int version_read(redisContext *rc, const struct config *cfg, const char *alias,
                 struct version_state *st, struct pgs_error *err)
{
    char key[300];
    const char *v;

    memset(st, 0, sizeof(*st));
    version_state_key(cfg, alias, key, sizeof(key));
    /* only the small fields: the schema texts stay in Redis until asked for */
    redisReply *r = rstream_command(rc, err, "HGETALL %s", key);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        pgs_error_set(err, PGS_ERR_TRANSIENT, "%s is not a hash", key);
        return -1;
    }
    if ((v = ops_reply_str(r, "live")) != NULL)
        st->live = atoi(v);
    copy_field(r, "live_index", st->live_index, sizeof(st->live_index));
    copy_field(r, "live_fp", st->live_fp, sizeof(st->live_fp));
    if ((v = ops_reply_str(r, "target")) != NULL)
        st->target = atoi(v);
    copy_field(r, "target_index", st->target_index, sizeof(st->target_index));
    copy_field(r, "target_fp", st->target_fp, sizeof(st->target_fp));
    copy_field(r, "retired_index", st->retired_index, sizeof(st->retired_index));
    if ((v = ops_reply_str(r, "retired_at")) != NULL)
        st->retired_at = atoll(v);
    if ((v = ops_reply_str(r, "generation")) != NULL)
        st->generation = atoll(v);
    freeReplyObject(r);
    if (st->live > 0 && st->live_index[0] == '\0') {
        pgs_error_set(err, PGS_ERR_FATAL, "%s: version %d has no index name", key, st->live);
        return -1;
    }
    return 0;
}

char *version_schema(redisContext *rc, const struct config *cfg, const char *alias, int v,
                     struct pgs_error *err)
{
    char key[300];
    version_state_key(cfg, alias, key, sizeof(key));
    redisReply *r = rstream_command(rc, err, "HGET %s schema:%d", key, v);
    if (r == NULL)
        return NULL;
    char *out = r->type == REDIS_REPLY_STRING ? xstrdup(r->str) : NULL;
    freeReplyObject(r);
    if (out == NULL)
        pgs_error_set(err, PGS_ERR_FATAL,
                      "%s has no schema for version %d of index \"%s\" (abort the migration with "
                      "pgsync --abort, or restore the key)", key, v, alias);
    return out;
}

/* ---- the engine side ---- */

void version_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

char **version_alias_indices(struct es_client *es, const char *alias, struct pgs_error *err)
{
    char path[512];
    long status = 0;
    char *resp = NULL;

    pgs_error_clear(err);
    snprintf(path, sizeof(path), "/_alias/%s", alias);
    if (es_request(es, "GET", path, NULL, 0, NULL, &status, &resp, err) < 0)
        return NULL;
    if (status == 404) {
        free(resp);
        return NULL; /* no such alias: not an error */
    }
    json_t *j = status == 200 ? json_loads(resp, 0, NULL) : NULL;
    if (!json_is_object(j)) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "GET %s: HTTP %ld", path, status);
        pgs_error_detail(err, "%.200s", resp ? resp : "");
        json_decref(j);
        free(resp);
        return NULL;
    }
    free(resp);
    char **out = xcalloc(json_object_size(j) + 1, sizeof(char *));
    size_t n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val) out[n++] = xstrdup(key);
    json_decref(j);
    return out;
}

/* _meta.pgsync of "index" (a new reference) or NULL. */
static json_t *index_meta(struct es_client *es, const char *index, struct pgs_error *err)
{
    char path[512];
    long status = 0;
    char *resp = NULL;
    snprintf(path, sizeof(path), "/%s/_mapping", index);
    if (es_request(es, "GET", path, NULL, 0, NULL, &status, &resp, err) < 0)
        return NULL;
    json_t *j = status == 200 ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    json_t *meta = json_object_get(json_object_get(json_object_get(json_object_get(j, index),
                                                                   "mappings"), "_meta"),
                                   "pgsync");
    json_incref(meta);
    json_decref(j);
    return meta;
}

int version_alias_swap(struct es_client *es, const char *alias, const char *old, const char *index,
                       struct pgs_error *err)
{
    json_t *actions = json_array();
    if (old && !strcmp(old, alias))
        json_array_append_new(actions, json_pack("{s:{s:s}}", "remove_index", "index", old));
    else if (old && strcmp(old, index) != 0)
        json_array_append_new(actions,
                              json_pack("{s:{s:s,s:s}}", "remove", "index", old, "alias", alias));
    json_array_append_new(actions, json_pack("{s:{s:s,s:s}}", "add", "index", index, "alias", alias));
    json_t *body = json_pack("{s:o}", "actions", actions);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    long status = 0;
    char *resp = NULL;
    int rv = es_request(es, "POST", "/_aliases", text, strlen(text), "application/json", &status,
                        &resp, err);
    free(text);
    if (rv == 0 && status != 200) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot point alias \"%s\" at index \"%s\": HTTP %ld",
                      alias, index, status);
        pgs_error_detail(err, "%.300s", resp ? resp : "");
        rv = -1;
    }
    free(resp);
    return rv;
}

/* ---- changing the state ---- */

/* HSET key f1 v1 f2 v2 ... unless the hash already has "live"; returns 1 when written. */
static const char init_script[] =
    "if redis.call('HEXISTS', KEYS[1], 'live') == 1 then return 0 end "
    "redis.call('HSET', KEYS[1], unpack(ARGV)) return 1";

int version_init(redisContext *rc, const struct config *cfg, struct es_client *es,
                 const struct schema_entry *e, struct version_state *st, struct pgs_error *err)
{
    char key[300], fp[VERSION_FP_LEN], index[256], live[16];
    const char *alias = e->index;
    const char *schema_text = e->source;
    json_t *meta = NULL;
    int version = 1;

    if (version_read(rc, cfg, alias, st, err) < 0)
        return -1;
    if (st->live > 0)
        return 0;

    version_fingerprint(e, fp);
    char **behind = version_alias_indices(es, alias, err);
    if (behind == NULL && err->kind != PGS_OK)
        return -1;
    if (behind && behind[0]) {
        /* Redis lost its state: the engine still knows which index is live */
        snprintf(index, sizeof(index), "%s", behind[0]);
        meta = index_meta(es, index, err);
        if (json_is_integer(json_object_get(meta, "version")))
            version = (int)json_integer_value(json_object_get(meta, "version"));
        if (json_is_string(json_object_get(meta, "fingerprint")))
            snprintf(fp, sizeof(fp), "%s", json_string_value(json_object_get(meta, "fingerprint")));
        if (json_is_string(json_object_get(meta, "schema")))
            schema_text = json_string_value(json_object_get(meta, "schema"));
        pgs_log(LOG_INFO, "index version recovered from the engine", "alias=%s index=%s version=%d",
                alias, index, version);
    } else {
        int exists = 0;
        if (es_index_exists(es, alias, &exists, err) < 0) {
            version_strv_free(behind);
            return -1;
        }
        if (exists) {
            /* made before versioning: adopted as it is, replaced by the first migration */
            snprintf(index, sizeof(index), "%s", alias);
            pgs_log(LOG_INFO, "existing index adopted as version 1", "index=%s", alias);
        } else
            version_index_name(alias, 1, index, sizeof(index));
    }
    version_strv_free(behind);

    version_state_key(cfg, alias, key, sizeof(key));
    snprintf(live, sizeof(live), "%d", version);
    char schema_field[32];
    snprintf(schema_field, sizeof(schema_field), "schema:%d", version);
    const char *argv[] = {"EVAL", init_script, "1", key, "live", live, "live_index", index,
                          "live_fp", fp, schema_field, schema_text ? schema_text : "",
                          "generation", "1"};
    redisReply *r = redisCommandArgv(rc, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
    json_decref(meta);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot write %s", key);
        pgs_error_detail(err, "%s", r ? r->str : rc->errstr);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return version_read(rc, cfg, alias, st, err);
}

static int hash_command(redisContext *rc, struct pgs_error *err, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s %s failed", argv[0], argv[1]);
        pgs_error_detail(err, "%s", r ? r->str : rc->errstr);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

/* MULTI, the commands, HINCRBY generation, EXEC: readers never see half a change. */
static int state_change(redisContext *rc, const char *key, struct pgs_error *err, int ncmd,
                        const char **cmds[], const int *argcs)
{
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *bump[] = {"HINCRBY", key, "generation", "1"};
    redisAppendCommandArgv(rc, 1, multi, NULL);
    for (int i = 0; i < ncmd; i++)
        redisAppendCommandArgv(rc, argcs[i], cmds[i], NULL);
    redisAppendCommandArgv(rc, 4, bump, NULL);
    redisAppendCommandArgv(rc, 1, exec, NULL);
    int failed = 0;
    for (int i = 0; i < ncmd + 3; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot change %s: %s", key, rc->errstr);
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

int version_begin_target(redisContext *rc, const struct config *cfg, const struct schema_entry *e,
                         struct version_state *st, struct pgs_error *err)
{
    char key[300], fp[VERSION_FP_LEN], index[256], tv[16], sf[32];
    int v = (st->target > st->live ? st->target : st->live) + 1;

    version_fingerprint(e, fp);
    version_index_name(e->index, v, index, sizeof(index));
    version_state_key(cfg, e->index, key, sizeof(key));
    snprintf(tv, sizeof(tv), "%d", v);
    snprintf(sf, sizeof(sf), "schema:%d", v);
    const char *set[] = {"HSET", key, "target", tv, "target_index", index, "target_fp", fp,
                         sf, e->source ? e->source : ""};
    const char **cmds[] = {set};
    int argcs[] = {10};
    if (state_change(rc, key, err, 1, cmds, argcs) < 0)
        return -1;
    return version_read(rc, cfg, e->index, st, err);
}

int version_clear_target(redisContext *rc, const struct config *cfg, const char *alias,
                         struct pgs_error *err)
{
    char key[300], sf[32];
    struct version_state st;
    if (version_read(rc, cfg, alias, &st, err) < 0)
        return -1;
    version_state_key(cfg, alias, key, sizeof(key));
    snprintf(sf, sizeof(sf), "schema:%d", st.target);
    const char *del[] = {"HDEL", key, "target", "target_index", "target_fp", sf};
    const char **cmds[] = {del};
    int argcs[] = {st.target > 0 ? 6 : 5};
    return state_change(rc, key, err, 1, cmds, argcs);
}

int version_promote(redisContext *rc, const struct config *cfg, const char *alias,
                    const struct version_state *st, struct pgs_error *err)
{
    char key[300], lv[16], old_schema[32], now[32];
    version_state_key(cfg, alias, key, sizeof(key));
    snprintf(lv, sizeof(lv), "%d", st->target);
    snprintf(old_schema, sizeof(old_schema), "schema:%d", st->live);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *set[] = {"HSET", key, "live", lv, "live_index", st->target_index, "live_fp",
                         st->target_fp, "retired_index", st->live_index, "retired_at", now};
    const char *del[] = {"HDEL", key, "target", "target_index", "target_fp", old_schema};
    const char **cmds[] = {set, del};
    int argcs[] = {12, 6};
    return state_change(rc, key, err, 2, cmds, argcs);
}

int version_forget_retired(redisContext *rc, const struct config *cfg, const char *alias,
                           struct pgs_error *err)
{
    char key[300];
    version_state_key(cfg, alias, key, sizeof(key));
    const char *del[] = {"HDEL", key, "retired_index", "retired_at"};
    return hash_command(rc, err, 4, del);
}
