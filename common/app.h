/*
 * app.h - what every binary builds at start-up from --config: the parsed
 * schema, and per entry the database catalog, the generated SQL, the table
 * list, and the names of its slot, publication and Redis keys. Everything
 * is checked before anything is written anywhere.
 */
#ifndef PGS_APP_H
#define PGS_APP_H

#include "redis.h"
#include <signal.h>

#include "catalog.h"
#include "config.h"
#include "error.h"
#include "schema.h"
#include "sqlgen.h"

struct app_entry {
    struct schema_entry *e; /* borrowed from app.schema; e->index is the alias searches use */
    char index[256];        /* the physical index documents are written to */
    int version;            /* of the index (version.h); 1 until app_bind_versions */
    int live;               /* 1: the version behind the alias; 0: a migration's target */
    char keybase[256];      /* what the Redis keys, slot and publication are named after */
    struct catalog cat;
    struct sqlgen sql;
    struct schema_table_ref *tables;
    int ntables;
    char slot[64];        /* the database's slot: one for every entry on that database */
    char publication[64]; /* the database's publication: the union of its entries' tables */
    char outbox[64];      /* trigger mode: the entry's own outbox table and NOTIFY channel */
    /* one slot and publication per entry, before one per database: drained, then dropped */
    char legacy_slot[64];
    char legacy_publication[64];
    char stream[256];  /* change records */
    char load_stream[256]; /* work items of the initial load (one per range) */
    char dlq[256];     /* dead letters */
    char meta[256];    /* a hash: load progress, schema fingerprint */
};

struct app {
    struct schema schema;
    struct app_entry *entries;
    int nentries;
    const struct config *cfg; /* borrowed */
    struct schema *stored;    /* the schemas of other active versions, parsed from Redis */
    int nstored;
    long long *generations;   /* per file entry: the version state's generation at binding */
    int nfile;                /* entries from the schema file (the first nfile of entries) */
};

/*
 * Parse "schema_path", connect to each entry's database, load its catalog,
 * resolve and generate SQL. Problems are printed to stderr, all of them,
 * and -1 returned; nothing is written anywhere.
 */
int app_load(struct app *app, const char *schema_path, const struct config *cfg,
             struct pgs_error *err) PGS_MUSTCHECK;
void app_free(struct app *app);

/*
 * Bind every entry of the schema file to a version of its index (version.h),
 * creating the state of an index seen for the first time, and append an
 * entry for each other active version (the live one during a migration to
 * the file's schema, or the target of a migration away from it), built from
 * the schema stored with that version. A file entry that is neither the live
 * version nor the target of a migration is an error naming the index: only
 * pgsync starts a migration (version_begin_target before this call).
 */
struct es_client;
/* with APP_BIND_UNBOUND_OK, a file entry that matches no active version gets version 0 */
#define APP_BIND_UNBOUND_OK 1
int app_bind_versions(struct app *app, struct redis_conn *rc, struct es_client *es, int flags,
                      struct pgs_error *err) PGS_MUSTCHECK;
/* Connect to Redis and the engine and bind, once. */
int app_bind_once(struct app *app, int flags, struct pgs_error *err) PGS_MUSTCHECK;
/*
 * Bind at start-up: retry while Redis or the engine is unreachable, until
 * *stop. With "health" (a daemon's --metrics-port), /healthz answers 503 and
 * the reason meanwhile ("proc" names the process in /metrics).
 */
struct metrics_opts;
int app_bind_at_start(struct app *app, int flags, volatile sig_atomic_t *stop,
                      const struct metrics_opts *health, const char *proc,
                      struct pgs_error *err) PGS_MUSTCHECK;
/* Give "ae" another version and the names that go with it. */
void app_set_version(struct app_entry *ae, const struct config *cfg, int single, int version,
                     int live, const char *index);
/* Remove entries[idx] (an abandoned version). */
void app_drop_entry(struct app *app, int idx);
/*
 * A thread that polls the version state every 2 s; when the set of active
 * versions changes it sets *restart and sends this process SIGTERM: after
 * its usual clean stop, main calls app_restart_self() to serve the new set.
 */
int app_watch_versions(struct app *app, volatile sig_atomic_t *restart, struct pgs_error *err)
    PGS_MUSTCHECK;
void app_restart_self(void);
/* 1 when the set of active versions changed since binding (restart to follow it), 0, or -1. */
int app_versions_changed(const struct app *app, struct redis_conn *rc, struct pgs_error *err);

/*
 * The name to show users, in logs, metrics and dead letters: the alias for
 * the live version, the physical index for a migration's new version.
 */
const char *app_entry_name(const struct app_entry *ae);

/* The entry's table that matches schema.table, or -1. */
int app_table_index(const struct app_entry *ae, const char *schema, const char *table);

/* A search engine client from the settings (ELASTICSEARCH_*, OPENSEARCH); NULL with "err". */
struct es_client *app_es_client(const struct config *cfg, struct pgs_error *err);
/*
 * GET / must come from a search engine (version.number): a wrong URL, a
 * proxy's HTML page or any other HTTP server is an error, not an index
 * that "exists". Logs the engine and its version.
 */
int app_check_engine(struct es_client *es, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Create the entry's physical index with its settings and mappings (and its
 * version in _meta) when it is missing; for the live version, also point the
 * alias at it when the alias is missing.
 */
int app_ensure_index(const struct app_entry *ae, struct es_client *es, struct pgs_error *err)
    PGS_MUSTCHECK;
/* Create the physical index (it must not exist). */
int app_create_index(const struct app_entry *ae, struct es_client *es, struct pgs_error *err)
    PGS_MUSTCHECK;

#endif
