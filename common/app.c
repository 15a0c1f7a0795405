/* app.c - loading and checking everything a binary needs from --config. */
#include "app.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es.h"
#include "log.h"
#include "metrics.h"
#include "rstate.h"
#include "strbuf.h"
#include "version.h"

/*
 * Slot and publication names: lower-case letters, digits and _; 63 bytes at
 * most. "index" NULL: the database's own (shared by its entries).
 */
static void derive_name(char *out, size_t len, const char *database, const char *index)
{
    char raw[256];
    size_t j = 0;

    if (index)
        snprintf(raw, sizeof(raw), "pgsync_%s_%s", database, index);
    else
        snprintf(raw, sizeof(raw), "pgsync_%s", database);
    for (size_t i = 0; raw[i] && j + 1 < len && j < 63; i++) {
        unsigned char c = (unsigned char)raw[i];
        out[j++] = (char)(isalnum(c) ? tolower(c) : '_');
    }
    out[j] = '\0';
}

/* The version of "ae", its physical index, and the names of its slot, publication and keys. */
void app_set_version(struct app_entry *ae, const struct config *cfg, int single, int version,
                     int live, const char *index)
{
    const char *slot = cfg->slot_name;
    ae->version = version;
    ae->live = live;
    snprintf(ae->index, sizeof(ae->index), "%s", index);
    version_key_base(ae->e->index, ae->version, ae->keybase, sizeof(ae->keybase));
    /* the names of one slot per entry: the outbox keeps them, a legacy slot is found by them */
    if (slot && *slot && single) {
        if (ae->version <= 1)
            snprintf(ae->outbox, sizeof(ae->outbox), "%s", slot);
        else
            snprintf(ae->outbox, sizeof(ae->outbox), "%.50s_v%d", slot, ae->version % 100000);
    } else
        derive_name(ae->outbox, sizeof(ae->outbox), ae->e->database, ae->keybase);
    snprintf(ae->legacy_slot, sizeof(ae->legacy_slot), "%s", ae->outbox);
    derive_name(ae->legacy_publication, sizeof(ae->legacy_publication), ae->e->database,
                ae->keybase);
    /* one slot and one publication per database, shared by its entries and their versions */
    if (slot && *slot && single) {
        /*
         * PGSYNC_SLOT_NAME names an existing slot: it keeps the publication it
         * was made with (a younger one would be missing from its older WAL)
         */
        snprintf(ae->slot, sizeof(ae->slot), "%s", slot);
        derive_name(ae->publication, sizeof(ae->publication), ae->e->database, ae->e->index);
    } else {
        derive_name(ae->slot, sizeof(ae->slot), ae->e->database, NULL);
        derive_name(ae->publication, sizeof(ae->publication), ae->e->database, NULL);
    }
    rstate_key(cfg, ae->keybase, "changes", ae->stream, sizeof(ae->stream));
    rstate_key(cfg, ae->keybase, "load", ae->load_stream, sizeof(ae->load_stream));
    rstate_key(cfg, ae->keybase, "dlq", ae->dlq, sizeof(ae->dlq));
    rstate_key(cfg, ae->keybase, "meta", ae->meta, sizeof(ae->meta));
}

/* What entry_init built (the schema entry itself belongs to a struct schema). */
static void entry_free(struct app_entry *ae)
{
    catalog_free(&ae->cat);
    sqlgen_free(&ae->sql);
    if (ae->tables)
        schema_tables_free(ae->tables, ae->ntables);
}

/* Catalog, resolution, SQL and table list of one entry; problems of the schema go to "probs". */
static int entry_init(struct app_entry *ae, const struct config *cfg, const char *source,
                      struct schema_problems *probs, struct pgs_error *err)
{
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-catalog", err);
    if (conn == NULL)
        return -1;
    int rv = catalog_load(conn, &ae->cat, err);
    PQfinish(conn);
    if (rv < 0)
        return -1;
    struct schema one = {.entries = ae->e, .nentries = 1, .filename = (char *)source};
    if (schema_resolve(&one, &ae->cat, probs) < 0)
        return 1; /* the caller reports every entry's problems at once */
    if (sqlgen_build(ae->e, &ae->cat, &ae->sql, err) < 0)
        return -1;
    if (schema_entry_tables(ae->e, &ae->tables, &ae->ntables) < 0) {
        pgs_error_set(err, PGS_ERR_SCHEMA, "%s: cannot list the tables of entry %s", source,
                      ae->e->jpath);
        return -1;
    }
    return 0;
}

int app_load(struct app *app, const char *schema_path, const struct config *cfg,
             struct pgs_error *err)
{
    struct schema_problems probs = {0};

    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    if (schema_parse_file_flags(schema_path, &app->schema, &probs,
                                cfg->ignore_plugins ? SCHEMA_IGNORE_PLUGINS : 0) < 0)
        goto problems;

    app->nentries = app->nfile = app->schema.nentries;
    app->entries = xcalloc((size_t)app->nentries, sizeof(struct app_entry));
    for (int i = 0; i < app->nentries; i++) {
        struct app_entry *ae = &app->entries[i];
        ae->e = &app->schema.entries[i];
        /* until app_bind_versions: write through the alias (one index behind it) */
        app_set_version(ae, cfg, app->nfile == 1, 1, 1, ae->e->index);
        if (entry_init(ae, cfg, schema_path, &probs, err) < 0)
            goto fail;
    }
    if (probs.n > 0)
        goto problems;
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

/* Append an entry for version "v" of "alias" from the schema Redis stores with it. */
static int bind_stored(struct app *app, struct redis_conn *rc, const char *alias, int v,
                       const char *index, int live, struct pgs_error *err)
{
    char name[300];
    struct schema_problems probs = {0};
    char *text = version_schema(rc, app->cfg, alias, v, err);
    if (text == NULL)
        return -1;
    snprintf(name, sizeof(name), "the stored schema of index \"%s\" version %d", alias, v);
    /* jansson parses the entry alone: wrap it as the one-entry file it came from */
    struct strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "[%s]", text);
    free(text);
    app->stored = xrealloc(app->stored, (size_t)(app->nstored + 1) * sizeof(struct schema));
    struct schema *sc = &app->stored[app->nstored];
    memset(sc, 0, sizeof(*sc));
    int rv = schema_parse_string(sb.buf, name, sc, &probs);
    sb_free(&sb);
    if (rv < 0 || sc->nentries != 1) {
        pgs_error_set(err, PGS_ERR_SCHEMA, "%s does not parse", name);
        if (probs.n > 0)
            pgs_error_detail(err, "%s", probs.items[0]);
        schema_problems_free(&probs);
        schema_free(sc);
        return -1;
    }
    app->nstored++;
    app->entries = xrealloc(app->entries, (size_t)(app->nentries + 1) * sizeof(struct app_entry));
    struct app_entry *ae = &app->entries[app->nentries++];
    memset(ae, 0, sizeof(*ae));
    ae->e = &sc->entries[0];
    app_set_version(ae, app->cfg, app->nfile == 1, v, live, index);
    rv = entry_init(ae, app->cfg, name, &probs, err);
    if (rv == 0 && probs.n > 0)
        rv = 1;
    if (rv > 0) {
        /* e.g. a column the old version reads was dropped before the migration finished */
        pgs_error_set(err, PGS_ERR_SCHEMA, "%s no longer matches the database: %d problem%s",
                      name, probs.n, probs.n == 1 ? "" : "s");
        for (int i = 0; i < probs.n && i < 3; i++)
            pgs_error_detail(err, "%s", probs.items[i]);
        rv = -1;
    }
    schema_problems_free(&probs);
    return rv;
}

int app_bind_versions(struct app *app, struct redis_conn *rc, struct es_client *es, int flags,
                      struct pgs_error *err)
{
    free(app->generations);
    app->generations = xcalloc((size_t)app->nfile, sizeof(long long));
    for (int i = 0; i < app->nfile; i++) {
        struct app_entry *ae = &app->entries[i];
        struct version_state st;
        char fp[VERSION_FP_LEN];
        const char *alias = ae->e->index;

        if (version_init(rc, app->cfg, es, ae->e, &st, err) < 0)
            return -1;
        app->generations[i] = st.generation;
        version_fingerprint(ae->e, fp);
        if (!strcmp(fp, st.live_fp)) {
            app_set_version(ae, app->cfg, app->nfile == 1, st.live, 1, st.live_index);
            if (st.target > 0 &&
                bind_stored(app, rc, alias, st.target, st.target_index, 0, err) < 0)
                return -1;
        } else if (st.target > 0 && !strcmp(fp, st.target_fp)) {
            app_set_version(ae, app->cfg, app->nfile == 1, st.target, 0, st.target_index);
            if (bind_stored(app, rc, alias, st.live, st.live_index, 1, err) < 0)
                return -1;
        } else if (flags & APP_BIND_UNBOUND_OK) {
            /* pgsync decides: a new migration, after abandoning one in progress */
            ae->version = 0;
            ae->live = 0;
            if (bind_stored(app, rc, alias, st.live, st.live_index, 1, err) < 0)
                return -1;
            if (st.target > 0 &&
                bind_stored(app, rc, alias, st.target, st.target_index, 0, err) < 0)
                return -1;
            continue;
        } else {
            pgs_error_set(err, PGS_ERR_SCHEMA,
                          "%s: the entry for index \"%s\" differs from its live version %d "
                          "(index \"%s\")%s; run pgsync --config %s to migrate to it",
                          app->schema.filename ? app->schema.filename : "schema", alias, st.live,
                          st.live_index,
                          st.target > 0 ? " and from the migration in progress" : "",
                          app->schema.filename ? app->schema.filename : "FILE");
            return -1;
        }
        pgs_log(LOG_DEBUG, "index version", "alias=%s index=%s version=%d%s", alias, ae->index,
                ae->version, ae->live ? " live" : " migrating");
    }
    return 0;
}

void app_drop_entry(struct app *app, int idx)
{
    struct app_entry *ae = &app->entries[idx];
    entry_free(ae);
    memmove(ae, ae + 1, (size_t)(app->nentries - idx - 1) * sizeof(*ae));
    app->nentries--;
}

struct watch {
    struct app *app;
    volatile sig_atomic_t *restart;
};

static void *watch_main(void *arg)
{
    struct watch *w = arg;
    struct pgs_error err;
    struct redis_conn *rc = NULL;
    sigset_t all;
    /* signals go to the main thread, whose blocking calls they must interrupt */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        sleep(2);
        if (rc == NULL && (rc = redis_connect(w->app->cfg, &err)) == NULL)
            continue; /* Redis down: the process has its own ways of noticing */
        int changed = app_versions_changed(w->app, rc, &err);
        if (changed < 0) {
            redis_close(rc);
            rc = NULL;
        } else if (changed > 0) {
            pgs_log(LOG_INFO, "index versions changed: restarting to follow them", NULL);
            *w->restart = 1;
            kill(getpid(), SIGTERM); /* the usual clean stop, then app_restart_self */
            break;
        }
    }
    if (rc)
        redis_close(rc);
    free(w);
    return NULL;
}

int app_watch_versions(struct app *app, volatile sig_atomic_t *restart, struct pgs_error *err)
{
    pthread_t t;
    struct watch *w = xmalloc(sizeof(*w));
    w->app = app;
    w->restart = restart;
    if (pthread_create(&t, NULL, watch_main, w) != 0) {
        free(w);
        pgs_error_set(err, PGS_ERR_FATAL, "cannot start the index version watcher");
        return -1;
    }
    pthread_detach(t);
    return 0;
}

void app_restart_self(void)
{
    /* the command line as started: getopt only permuted our copy of the pointers */
    static char buf[65536];
    char *argv[256];
    int argc = 0;
    FILE *f = fopen("/proc/self/cmdline", "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n && argc < 255; i += strlen(buf + i) + 1)
        argv[argc++] = buf + i;
    argv[argc] = NULL;
    if (argc > 0)
        execv("/proc/self/exe", argv);
    pgs_log(LOG_ERROR, "cannot restart", "error=\"%s\"", strerror(errno));
}

int app_bind_once(struct app *app, int flags, struct pgs_error *err)
{
    struct redis_conn *rc = redis_connect(app->cfg, err);
    struct es_client *es = NULL;
    int rv = -1;
    if (rc) {
        /* the engine is only asked when Redis has no state for an index yet */
        es = app_es_client(app->cfg, err);
        if (es)
            rv = app_bind_versions(app, rc, es, flags, err);
    }
    if (rc)
        redis_close(rc);
    es_client_free(es);
    return rv;
}

/* /healthz while the versions cannot be read yet: 503 with the reason. */
struct start_health {
    char down[400];
};

static void start_health_fn(void *arg, struct metrics_health *h)
{
    const struct start_health *sh = arg;
    snprintf(h->down, sizeof(h->down), "%s", sh->down);
    h->waiting = 0;
    h->progress = 0;
}

int app_bind_at_start(struct app *app, int flags, volatile sig_atomic_t *stop,
                      const struct metrics_opts *health, const char *proc, struct pgs_error *err)
{
    struct start_health sh = {""};
    struct ev_loop *loop = NULL;
    struct metrics *m = NULL;
    int said = 0, rv = -1;

    while (!*stop) {
        if (app_bind_once(app, flags, err) == 0) {
            rv = 0;
            break;
        }
        if (err->kind != PGS_ERR_TRANSIENT)
            break;
        char buf[600];
        pgs_error_str(err, buf, sizeof(buf));
        if (!said++)
            pgs_log(LOG_WARN, "waiting for Redis and the search engine to read the index versions",
                    "error=\"%s\"", buf);
        snprintf(sh.down, sizeof(sh.down), "waiting to read the index versions: %.360s", buf);
        /*
         * A daemon that cannot start yet (a refused certificate, a password
         * to fix) answers /healthz meanwhile, so that its orchestrator sees
         * why; the server is its own, closed before the daemon's starts.
         */
        if (health != NULL && health->port > 0 && m == NULL && loop == NULL) {
            struct pgs_error merr;
            loop = ev_loop_new(EVFLAG_AUTO);
            m = loop ? metrics_new(proc) : NULL;
            if (m != NULL) {
                metrics_set_health(m, start_health_fn, &sh, "nothing");
                if (metrics_start(m, loop, health, &merr) < 0) {
                    metrics_free(m);
                    m = NULL;
                }
            }
        }
        for (int i = 0; i < 20 && !*stop; i++) {
            metrics_poll(m);
            usleep(50000);
        }
    }
    if (m != NULL) {
        metrics_stop(m);
        metrics_free(m);
    }
    if (loop != NULL)
        ev_loop_destroy(loop);
    if (rv < 0 && *stop)
        pgs_error_set(err, PGS_ERR_TRANSIENT, "stopped before the index versions were read");
    return rv;
}

int app_versions_changed(const struct app *app, struct redis_conn *rc, struct pgs_error *err)
{
    if (app->generations == NULL)
        return 0;
    for (int i = 0; i < app->nfile; i++) {
        struct version_state st;
        if (version_read(rc, app->cfg, app->entries[i].e->index, &st, err) < 0)
            return -1;
        if (st.generation != app->generations[i])
            return 1;
    }
    return 0;
}

void app_free(struct app *app)
{
    for (int i = 0; i < app->nentries; i++)
        entry_free(&app->entries[i]);
    free(app->entries);
    if (app->schema.entries || app->schema.filename)
        schema_free(&app->schema);
    for (int i = 0; i < app->nstored; i++)
        schema_free(&app->stored[i]);
    free(app->stored);
    free(app->generations);
    memset(app, 0, sizeof(*app));
}

const char *app_entry_name(const struct app_entry *ae)
{
    return ae->live ? ae->e->index : ae->index;
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
        .sniff = cfg->es_sniff,
        .bulk_timeout_s = cfg->bulk_timeout_s,
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

int app_create_index(const struct app_entry *ae, struct es_client *es, struct pgs_error *err)
{

    json_t *settings = ae->e->setting ? json_deep_copy(ae->e->setting) : json_object();
    json_t *mappings;
    /* "mapping" as PGSync reads it: field mappings, or a whole body when it looks like one */
    if (ae->e->mapping && (json_object_get(ae->e->mapping, "properties") ||
                           json_object_get(ae->e->mapping, "dynamic") ||
                           json_object_get(ae->e->mapping, "dynamic_templates")))
        mappings = json_deep_copy(ae->e->mapping);
    else if (ae->e->mapping == NULL && ae->e->mappings != NULL)
        mappings = json_deep_copy(ae->e->mappings);
    else {
        mappings = json_object();
        json_object_set_new(mappings, "properties",
                            ae->e->mapping ? json_deep_copy(ae->e->mapping) : json_object());
    }
    if (!json_is_object(json_object_get(mappings, "properties")))
        json_object_set_new(mappings, "properties", json_object());
    add_node_mappings(ae->e->root, json_object_get(mappings, "properties"));
    /* what rebuilds the version state when Redis lost it (version.h) */
    char fp[VERSION_FP_LEN];
    version_fingerprint(ae->e, fp);
    json_t *meta = json_object_get(mappings, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(mappings, "_meta", meta);
    }
    json_object_set_new(meta, "pgsync",
                        json_pack("{s:i, s:s, s:s, s:s}", "version", ae->version, "fingerprint", fp,
                                  "alias", ae->e->index, "schema", ae->e->source ? ae->e->source : ""));
    /*
     * Deletes are versioned too; their tombstones must outlive the slowest
     * in-flight write of an older version, or that write could bring a
     * deleted document back. The engine's default is 60 s.
     */
    if (json_object_get(settings, "index.gc_deletes") == NULL &&
        !(json_object_get(settings, "index") &&
          json_object_get(json_object_get(settings, "index"), "gc_deletes")))
        json_object_set_new(settings, "index.gc_deletes", json_string("1h"));
    int rv = es_create_index(es, ae->index, settings, mappings, err);
    json_decref(settings);
    json_decref(mappings);
    if (rv == 0)
        pgs_log(LOG_INFO, "index created", "index=%s version=%d", ae->index, ae->version);
    return rv;
}

int app_ensure_index(const struct app_entry *ae, struct es_client *es, struct pgs_error *err)
{
    int exists = 0;
    if (es_index_exists(es, ae->index, &exists, err) < 0)
        return -1;
    if (!exists && app_create_index(ae, es, err) < 0)
        return -1;
    if (!ae->live || !strcmp(ae->index, ae->e->index))
        return 0;
    /* the alias searches use; missing on a first run, or when its index was deleted */
    char **behind = version_alias_indices(es, ae->e->index, err);
    if (behind == NULL && err->kind != PGS_OK)
        return -1;
    int rv = 0;
    if (behind == NULL || behind[0] == NULL) {
        rv = version_alias_swap(es, ae->e->index, NULL, ae->index, err);
        if (rv == 0)
            pgs_log(LOG_INFO, "alias set", "alias=%s index=%s", ae->e->index, ae->index);
    } else if (strcmp(behind[0], ae->index) != 0 || behind[1] != NULL) {
        /*
         * Never move an alias from here: only a migration's swap does, and a
         * process that started just before it is restarted right after.
         */
        pgs_log(LOG_WARN, "the alias points at another index", "alias=%s index=%s expected=%s",
                ae->e->index, behind[0], ae->index);
    }
    version_strv_free(behind);
    return rv;
}
