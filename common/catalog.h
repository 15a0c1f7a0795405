/*
 * catalog.h - what the database says about its tables: columns and their
 * types, primary keys, foreign keys (and whether an index backs them), views.
 * Loaded once at start-up with a few catalog queries; read-only after.
 */
#ifndef PGS_CATALOG_H
#define PGS_CATALOG_H

#include <libpq-fe.h>

#include "error.h"

struct catalog_column {
    char *name;
    char *type; /* format_type(): "integer", "character varying(20)", "jsonb" */
    int notnull;
};

struct catalog_table {
    char *schema;
    char *name;
    char relkind; /* 'r' table, 'p' partitioned, 'v' view, 'm' materialized view, 'f' foreign */
    struct catalog_column *cols;
    int ncols;
    char **pk; /* primary key columns in key order; npk == 0 when none */
    int npk;
};

struct catalog_fk {
    char *name;
    int from_table; /* index into catalog.tables: the referencing table */
    int to_table;   /* the referenced table */
    char **from_cols;
    char **to_cols;
    int ncols;
    int has_index; /* an index on the referencing side starts with from_cols */
};

struct catalog {
    struct catalog_table *tables;
    int ntables;
    struct catalog_fk *fks;
    int nfks;
};

/* Load every table, view and foreign key outside pg_catalog/information_schema. */
int catalog_load(PGconn *conn, struct catalog *cat, struct pgs_error *err) PGS_MUSTCHECK;
void catalog_free(struct catalog *cat);

/* NULL when absent. */
const struct catalog_table *catalog_find_table(const struct catalog *cat, const char *schema,
                                               const char *name);
int catalog_table_index(const struct catalog *cat, const struct catalog_table *t);
const struct catalog_column *catalog_find_column(const struct catalog_table *t, const char *name);

#endif
