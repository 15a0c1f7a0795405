/* app.c - loading and checking everything a binary needs from --config. */
#include "app.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es.h"
#include "log.h"
#include "rstream.h"
#include "strbuf.h"

/* Slot and publication names: lower-case letters, digits and _; 63 bytes at most. */
static void derive_name(char *out, size_t len, const char *database, const char *index)
{
    char raw[256];
    size_t j = 0;

    snprintf(raw, sizeof(raw), "pgsync_%s_%s", database, index);
    for (size_t i = 0; raw[i] && j + 1 < len && j < 63; i++) {
        unsigned char c = (unsigned char)raw[i];
        out[j++] = (char)(isalnum(c) ? tolower(c) : '_');
    }
    out[j] = '\0';
}

int app_load(struct app *app, const char *schema_path, const struct config *cfg,
             struct pgs_error *err)
{
    struct schema_problems probs = {0};

    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    if (schema_parse_file(schema_path, &app->schema, &probs) < 0)
        goto problems;

    app->nentries = app->schema.nentries;
    app->entries = xcalloc((size_t)app->nentries, sizeof(struct app_entry));
    for (int i = 0; i < app->nentries; i++) {
        struct app_entry *ae = &app->entries[i];
        ae->e = &app->schema.entries[i];
        PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-catalog", err);
        if (conn == NULL)
            goto fail;
        int rv = catalog_load(conn, &ae->cat, err);
        PQfinish(conn);
        if (rv < 0)
            goto fail;
    }
    /* resolve every entry against its own database's catalog */
    for (int i = 0; i < app->nentries; i++) {
        struct app_entry *ae = &app->entries[i];
        struct schema one = app->schema;
        one.entries = ae->e;
        one.nentries = 1;
        if (schema_resolve(&one, &ae->cat, &probs) < 0)
            continue;
    }
    if (probs.n > 0)
        goto problems;

    for (int i = 0; i < app->nentries; i++) {
        struct app_entry *ae = &app->entries[i];
        const char *slot = cfg->slot_name;
        if (sqlgen_build(ae->e, &ae->cat, &ae->sql, err) < 0)
            goto fail;
        if (schema_entry_tables(ae->e, &ae->tables, &ae->ntables) < 0) {
            pgs_error_set(err, PGS_ERR_SCHEMA, "%s: cannot list the tables of entry %s",
                          schema_path, ae->e->jpath);
            goto fail;
        }
        if (slot && *slot && app->nentries == 1)
            snprintf(ae->slot, sizeof(ae->slot), "%s", slot);
        else
            derive_name(ae->slot, sizeof(ae->slot), ae->e->database, ae->e->index);
        snprintf(ae->index, sizeof(ae->index), "%s", ae->e->index);
        derive_name(ae->publication, sizeof(ae->publication), ae->e->database, ae->e->index);
        rstream_key(cfg, ae->e->index, "changes", ae->stream, sizeof(ae->stream));
        rstream_key(cfg, ae->e->index, "load", ae->load_stream, sizeof(ae->load_stream));
        rstream_key(cfg, ae->e->index, "dlq", ae->dlq, sizeof(ae->dlq));
        rstream_key(cfg, ae->e->index, "meta", ae->meta, sizeof(ae->meta));
    }
    return 0;

problems:
    for (int i = 0; i < probs.n; i++)
        fprintf(stderr, "%s\n", probs.items[i]);
    pgs_error_set(err, PGS_ERR_SCHEMA, "%s: %d problem%s in the schema; nothing was changed",
                  schema_path, probs.n, probs.n == 1 ? "" : "s");
    schema_problems_free(&probs);
    app_free(app);
    return -1;
fail:
    schema_problems_free(&probs);
    app_free(app);
    return -1;
}

void app_free(struct app *app)
{
    for (int i = 0; i < app->nentries; i++) {
        struct app_entry *ae = &app->entries[i];
        catalog_free(&ae->cat);
        sqlgen_free(&ae->sql);
        if (ae->tables)
            schema_tables_free(ae->tables, ae->ntables);
    }
    free(app->entries);
    if (app->schema.entries || app->schema.filename)
        schema_free(&app->schema);
    memset(app, 0, sizeof(*app));
}

int app_table_index(const struct app_entry *ae, const char *schema, const char *table)
{
    for (int i = 0; i < ae->ntables; i++)
        if (!strcmp(ae->tables[i].schema, schema) && !strcmp(ae->tables[i].table, table))
            return i;
    return -1;
}

/* Put transform.mapping of "n" into "props" at the node's place in the document. */
static void add_node_mappings(const struct schema_node *n, json_t *props)
{
    if (n->es_mapping) {
        const char *field;
        json_t *m;
        json_object_foreach(n->es_mapping, field, m) {
            if (json_object_get(props, field) == NULL)
                json_object_set(props, field, m);
        }
    }
    for (int i = 0; i < n->nchildren; i++) {
        const struct schema_node *c = n->children[i];
        /* the child's key in the document: its label, or a parent's rename of it */
        const char *key = sqlgen_child_key(c);
        if (c->variant == REL_SCALAR) {
            /* a scalar child is a value or list of values under its label */
            if (c->es_mapping && c->nfields > 0) {
                json_t *m = json_object_get(c->es_mapping, c->fields[0].key);
                if (m && json_object_get(props, key) == NULL)
                    json_object_set(props, key, m);
            }
            continue;
        }
        json_t *sub = json_object_get(props, key);
        if (sub == NULL) {
            sub = json_object();
            json_object_set_new(props, key, sub);
        }
        json_t *subprops = json_object_get(sub, "properties");
        if (subprops == NULL) {
            subprops = json_object();
            json_object_set_new(sub, "properties", subprops);
        }
        add_node_mappings(c, subprops);
        if (json_object_size(subprops) == 0)
            json_object_del(props, key);
    }
}

struct es_client *app_es_client(const struct config *cfg, struct pgs_error *err)
{
    struct es_config ecfg = {
        .url = cfg->es_url,
        .user = cfg->es_user,
        .password = cfg->es_password,
        .api_key = cfg->es_api_key,
        .ca_file = cfg->es_ca_file,
        .client_cert = cfg->es_client_cert,
        .client_key = cfg->es_client_key,
        .verify_tls = cfg->es_verify,
        .force_opensearch = cfg->opensearch,
        .timeout_ms = (long)cfg->es_timeout_s * 1000,
        .gzip = cfg->es_gzip,
    };
    return es_client_new(&ecfg, err); /* it copies what it keeps */
}

int app_check_engine(struct es_client *es, struct pgs_error *err)
{
    enum es_flavor flavor;
    int major;
    char version[64];

    if (es_info(es, &flavor, &major, version, sizeof(version), err) < 0)
        return -1;
    pgs_log(LOG_DEBUG, "search engine", "engine=%s version=%s",
            flavor == ES_FLAVOR_OPENSEARCH ? "opensearch" : "elasticsearch", version);
    return 0;
}

int app_ensure_index(const struct app_entry *ae, struct es_client *es, struct pgs_error *err)
{
    int exists = 0;
    if (es_index_exists(es, ae->e->index, &exists, err) < 0)
        return -1;
    if (exists)
        return 0;

    json_t *settings = ae->e->setting ? json_deep_copy(ae->e->setting) : json_object();
    json_t *mappings;
    if (ae->e->mapping && (json_object_get(ae->e->mapping, "properties") ||
                           json_object_get(ae->e->mapping, "dynamic")))
        mappings = json_deep_copy(ae->e->mapping);
    else {
        mappings = json_object();
        json_object_set_new(mappings, "properties",
                            ae->e->mapping ? json_deep_copy(ae->e->mapping) : json_object());
    }
    add_node_mappings(ae->e->root, json_object_get(mappings, "properties"));
    /*
     * Deletes are versioned too; their tombstones must outlive the slowest
     * in-flight write of an older version, or that write could bring a
     * deleted document back. The engine's default is 60 s.
     */
    if (json_object_get(settings, "index.gc_deletes") == NULL &&
        !(json_object_get(settings, "index") &&
          json_object_get(json_object_get(settings, "index"), "gc_deletes")))
        json_object_set_new(settings, "index.gc_deletes", json_string("1h"));
    int rv = es_create_index(es, ae->e->index, settings, mappings, err);
    json_decref(settings);
    json_decref(mappings);
    if (rv == 0)
        pgs_log(LOG_INFO, "index created", "index=%s", ae->e->index);
    return rv;
}
