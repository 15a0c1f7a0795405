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

/*
 * Build a catalog by hand (unit tests, tools), starting from a zeroed struct;
 * free it with catalog_free. "columns" is "name type; name type; ..." (the
 * type is everything after the first space: "character varying(20)"), "pk"
 * is "a,b" or "" / NULL. Returns the new table's index. Adding a table moves
 * cat->tables: take pointers into it only once the catalog is complete.
 */
int catalog_add_table(struct catalog *cat, const char *schema, const char *name, char relkind,
                      const char *columns, const char *pk);
/* "from"/"to" are "table" (public) or "schema.table"; columns "a,b". -1 if a table is absent. */
int catalog_add_fk(struct catalog *cat, const char *name, const char *from, const char *from_cols,
                   const char *to, const char *to_cols, int has_index);

#endif
