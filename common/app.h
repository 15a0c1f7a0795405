/*
 * app.h - what every binary builds at start-up from --config: the parsed
 * schema, and per entry the database catalog, the generated SQL, the table
 * list, and the names of its slot, publication and Redis keys. Everything
 * is checked before anything is written anywhere.
 */
#ifndef PGS_APP_H
#define PGS_APP_H

#include "catalog.h"
#include "config.h"
#include "error.h"
#include "schema.h"
#include "sqlgen.h"

struct app_entry {
    struct schema_entry *e; /* borrowed from app.schema; e->index is the alias searches use */
    char index[256];        /* the physical index documents are written to */
    struct catalog cat;
    struct sqlgen sql;
    struct schema_table_ref *tables;
    int ntables;
    char slot[64];
    char publication[64];
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
};

/*
 * Parse "schema_path", connect to each entry's database, load its catalog,
 * resolve and generate SQL. Problems are printed to stderr, all of them,
 * and -1 returned; nothing is written anywhere.
 */
int app_load(struct app *app, const char *schema_path, const struct config *cfg,
             struct pgs_error *err) PGS_MUSTCHECK;
void app_free(struct app *app);

/* The entry's table that matches schema.table, or -1. */
int app_table_index(const struct app_entry *ae, const char *schema, const char *table);

struct es_client;
/* A search engine client from the settings (ELASTICSEARCH_*, OPENSEARCH); NULL with "err". */
struct es_client *app_es_client(const struct config *cfg, struct pgs_error *err);
/*
 * GET / must come from a search engine (version.number): a wrong URL, a
 * proxy's HTML page or any other HTTP server is an error, not an index
 * that "exists". Logs the engine and its version.
 */
int app_check_engine(struct es_client *es, struct pgs_error *err) PGS_MUSTCHECK;

/* Create the index with the entry's settings and mappings when it is missing. */
int app_ensure_index(const struct app_entry *ae, struct es_client *es, struct pgs_error *err)
    PGS_MUSTCHECK;

#endif
