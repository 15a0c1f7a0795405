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
#include "rstate.h"
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
    rstate_versions_key(cfg, alias, out, len);
}

int version_read(struct redis_conn *rc, const struct config *cfg, const char *alias,
                 struct version_state *st, struct pgs_error *err)
{
    if (rstate_versions_read(rc, cfg, alias, st, err) < 0)
        return -1;
    if (st->live > 0 && st->live_index[0] == '\0') {
        char key[300];
        version_state_key(cfg, alias, key, sizeof(key));
        pgs_error_set(err, PGS_ERR_FATAL, "%s: version %d has no index name", key, st->live);
        return -1;
    }
    return 0;
}

char *version_schema(struct redis_conn *rc, const struct config *cfg, const char *alias, int v,
                     struct pgs_error *err)
{
    char key[300], *out;
    if (rstate_versions_schema(rc, cfg, alias, v, &out, err) < 0)
        return NULL;
    if (out == NULL) {
        version_state_key(cfg, alias, key, sizeof(key));
        pgs_error_set(err, PGS_ERR_FATAL,
                      "%s has no schema for version %d of index \"%s\" (abort the migration with "
                      "pgsync --abort, or restore the key)", key, v, alias);
    }
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
    json_array_append_new(actions, json_pack("{s:{s:s,s:s}}", "add", "index", index, "alias",
                          alias));
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

int version_init(struct redis_conn *rc, const struct config *cfg, struct es_client *es,
                 const struct schema_entry *e, struct version_state *st, struct pgs_error *err)
{
    char fp[VERSION_FP_LEN], index[256];
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

    int rv = rstate_versions_init(rc, cfg, alias, version, index, fp, schema_text, err);
    json_decref(meta);
    if (rv < 0)
        return -1;
    return version_read(rc, cfg, alias, st, err);
}

int version_begin_target(struct redis_conn *rc, const struct config *cfg,
                         const struct schema_entry *e, struct version_state *st,
                         struct pgs_error *err)
{
    char fp[VERSION_FP_LEN], index[256];
    int v = (st->target > st->live ? st->target : st->live) + 1;

    version_fingerprint(e, fp);
    version_index_name(e->index, v, index, sizeof(index));
    if (rstate_versions_set_target(rc, cfg, e->index, v, index, fp, e->source, err) < 0)
        return -1;
    return version_read(rc, cfg, e->index, st, err);
}

int version_clear_target(struct redis_conn *rc, const struct config *cfg, const char *alias,
                         struct pgs_error *err)
{
    struct version_state st;
    if (version_read(rc, cfg, alias, &st, err) < 0)
        return -1;
    return rstate_versions_clear_target(rc, cfg, alias, st.target, err);
}

int version_promote(struct redis_conn *rc, const struct config *cfg, const char *alias,
                    const struct version_state *st, struct pgs_error *err)
{
    return rstate_versions_promote(rc, cfg, alias, st, (long long)time(NULL), err);
}

int version_forget_retired(struct redis_conn *rc, const struct config *cfg, const char *alias,
                           struct pgs_error *err)
{
    return rstate_versions_forget_retired(rc, cfg, alias, err);
}
