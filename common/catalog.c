/*
 * catalog.c - loads what pg_catalog says about user tables: columns with
 * their types, primary keys and foreign keys (column order kept, and whether
 * an index backs the referencing side). Three queries at start-up; the
 * result is plain memory, read-only afterwards.
 */
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* System schemas hold nothing a schema.json may name; temp schemas are per session. */
#define CATALOG_SCHEMA_FILTER                                                                      \
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "                                      \
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' "

static const char *const catalog_columns_sql =
    "SELECT c.oid::int8, n.nspname, c.relname, c.relkind, a.attname, "
    "       format_type(a.atttypid, a.atttypmod), a.attnotnull "
    "FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND " CATALOG_SCHEMA_FILTER
    "ORDER BY n.nspname, c.relname, a.attnum";

/* unnest(conkey) WITH ORDINALITY keeps the key order of composite keys */
static const char *const catalog_pkeys_sql =
    "SELECT con.conrelid::int8, a.attname "
    "FROM pg_constraint con "
    "CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) "
    "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum "
    "JOIN pg_class c ON c.oid = con.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE con.contype = 'p' AND " CATALOG_SCHEMA_FILTER
    "ORDER BY con.conrelid, k.ord";

/*
 * Foreign keys, one row per column pair. Constraints cloned onto partitions
 * (conparentid <> 0) are left out: the partitioned parent carries the key.
 * has_index: some valid, non-partial index on the referencing table whose
 * leading columns are exactly the key's columns, in any order.
 */
static const char *const catalog_fkeys_sql =
    "SELECT con.oid::int8, con.conname, con.conrelid::int8, con.confrelid::int8, "
    "       a.attname, fa.attname, "
    "       EXISTS (SELECT 1 FROM pg_index i "
    "               WHERE i.indrelid = con.conrelid AND i.indisvalid AND i.indpred IS NULL "
    "                 AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey "
    "                 AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey) "
    "FROM pg_constraint con "
    "CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord) "
    "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum "
    "JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fattnum "
    "JOIN pg_class c ON c.oid = con.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE con.contype = 'f' AND con.conparentid = 0 AND " CATALOG_SCHEMA_FILTER
    "ORDER BY con.conrelid, con.conname, con.oid, k.ord";

struct oid_idx {
    long long oid;
    int idx;
};

static int oid_idx_cmp(const void *a, const void *b)
{
    const struct oid_idx *x = a, *y = b;
    return (x->oid > y->oid) - (x->oid < y->oid);
}

static int oid_lookup(const struct oid_idx *map, int n, long long oid)
{
    struct oid_idx key = {oid, -1};
    const struct oid_idx *hit = bsearch(&key, map, (size_t)n, sizeof(*map), oid_idx_cmp);
    return hit ? hit->idx : -1;
}

static PGresult *catalog_query(PGconn *conn, const char *sql, const char *what,
                               struct pgs_error *err)
{
    PGresult *res = PQexec(conn, sql);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* a dropped connection is worth a retry; a refused query is not */
        pgs_error_set(err, PQstatus(conn) == CONNECTION_BAD ? PGS_ERR_TRANSIENT : PGS_ERR_FATAL,
                      "catalog: reading %s failed", what);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return NULL;
    }
    return res;
}

/*
 * Relations and their columns, rows in attnum order, into "cat". Returns the
 * oid -> table index map, sorted for oid_lookup(); "*nmap" is its length.
 */
static struct oid_idx *catalog_add_tables(struct catalog *cat, const PGresult *res, int *nmap)
{
    struct oid_idx *map = NULL;
    int capt = 0;
    long long last_oid = -1;

    *nmap = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        long long oid = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        struct catalog_table *t;

        if (oid != last_oid) {
            if (cat->ntables == capt) {
                capt = capt ? capt * 2 : 64;
                cat->tables = xrealloc(cat->tables, (size_t)capt * sizeof(*cat->tables));
                map = xrealloc(map, (size_t)capt * sizeof(*map));
            }
            t = &cat->tables[cat->ntables];
            memset(t, 0, sizeof(*t));
            t->schema = xstrdup(PQgetvalue(res, r, 1));
            t->name = xstrdup(PQgetvalue(res, r, 2));
            t->relkind = PQgetvalue(res, r, 3)[0];
            map[*nmap].oid = oid;
            map[*nmap].idx = cat->ntables;
            (*nmap)++;
            cat->ntables++;
            last_oid = oid;
        }
        t = &cat->tables[cat->ntables - 1];
        if (PQgetisnull(res, r, 4))
            continue; /* a relation without columns */
        t->cols = xrealloc(t->cols, (size_t)(t->ncols + 1) * sizeof(*t->cols));
        t->cols[t->ncols].name = xstrdup(PQgetvalue(res, r, 4));
        t->cols[t->ncols].type = xstrdup(PQgetvalue(res, r, 5));
        t->cols[t->ncols].notnull = PQgetvalue(res, r, 6)[0] == 't';
        t->ncols++;
    }
    qsort(map, (size_t)*nmap, sizeof(*map), oid_idx_cmp);
    return map;
}

/* Primary key columns, rows in key order, onto the tables already loaded. */
static void catalog_add_pkeys(struct catalog *cat, const PGresult *res, const struct oid_idx *map,
                              int nmap)
{
    for (int r = 0; r < PQntuples(res); r++) {
        int ti = oid_lookup(map, nmap, strtoll(PQgetvalue(res, r, 0), NULL, 10));
        if (ti < 0)
            continue;
        struct catalog_table *t = &cat->tables[ti];
        t->pk = xrealloc(t->pk, (size_t)(t->npk + 1) * sizeof(*t->pk));
        t->pk[t->npk++] = xstrdup(PQgetvalue(res, r, 1));
    }
}

/* Foreign keys, one row per column pair, consecutive rows per constraint. */
static void catalog_add_fkeys(struct catalog *cat, const PGresult *res, const struct oid_idx *map,
                              int nmap)
{
    long long last_oid = -1;
    int capf = 0, skip = 0;

    for (int r = 0; r < PQntuples(res); r++) {
        long long oid = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        struct catalog_fk *fk;

        if (oid != last_oid) {
            int from = oid_lookup(map, nmap, strtoll(PQgetvalue(res, r, 2), NULL, 10));
            int to = oid_lookup(map, nmap, strtoll(PQgetvalue(res, r, 3), NULL, 10));
            last_oid = oid;
            /* a key to a table we did not load (a system schema) is of no use */
            skip = from < 0 || to < 0;
            if (skip)
                continue;
            if (cat->nfks == capf) {
                capf = capf ? capf * 2 : 32;
                cat->fks = xrealloc(cat->fks, (size_t)capf * sizeof(*cat->fks));
            }
            fk = &cat->fks[cat->nfks++];
            memset(fk, 0, sizeof(*fk));
            fk->name = xstrdup(PQgetvalue(res, r, 1));
            fk->from_table = from;
            fk->to_table = to;
            fk->has_index = PQgetvalue(res, r, 6)[0] == 't';
        } else if (skip) {
            continue;
        }
        fk = &cat->fks[cat->nfks - 1];
        fk->from_cols = xrealloc(fk->from_cols, (size_t)(fk->ncols + 1) * sizeof(char *));
        fk->to_cols = xrealloc(fk->to_cols, (size_t)(fk->ncols + 1) * sizeof(char *));
        fk->from_cols[fk->ncols] = xstrdup(PQgetvalue(res, r, 4));
        fk->to_cols[fk->ncols] = xstrdup(PQgetvalue(res, r, 5));
        fk->ncols++;
    }
}

int catalog_load(PGconn *conn, struct catalog *cat, struct pgs_error *err)
{
    PGresult *res;
    struct oid_idx *map;
    int nmap;

    memset(cat, 0, sizeof(*cat));

    res = catalog_query(conn, catalog_columns_sql, "tables and columns", err);
    if (res == NULL)
        return -1;
    map = catalog_add_tables(cat, res, &nmap);
    PQclear(res);

    res = catalog_query(conn, catalog_pkeys_sql, "primary keys", err);
    if (res == NULL)
        goto fail;
    catalog_add_pkeys(cat, res, map, nmap);
    PQclear(res);

    res = catalog_query(conn, catalog_fkeys_sql, "foreign keys", err);
    if (res == NULL)
        goto fail;
    catalog_add_fkeys(cat, res, map, nmap);
    PQclear(res);
    free(map);
    return 0;

fail:
    free(map);
    catalog_free(cat);
    return -1;
}

void catalog_free(struct catalog *cat)
{
    if (cat == NULL)
        return;
    for (int i = 0; i < cat->ntables; i++) {
        struct catalog_table *t = &cat->tables[i];
        free(t->schema);
        free(t->name);
        for (int j = 0; j < t->ncols; j++) {
            free(t->cols[j].name);
            free(t->cols[j].type);
        }
        free(t->cols);
        for (int j = 0; j < t->npk; j++)
            free(t->pk[j]);
        free(t->pk);
    }
    free(cat->tables);
    for (int i = 0; i < cat->nfks; i++) {
        struct catalog_fk *fk = &cat->fks[i];
        free(fk->name);
        for (int j = 0; j < fk->ncols; j++) {
            free(fk->from_cols[j]);
            free(fk->to_cols[j]);
        }
        free(fk->from_cols);
        free(fk->to_cols);
    }
    free(cat->fks);
    memset(cat, 0, sizeof(*cat));
}

const struct catalog_table *catalog_find_table(const struct catalog *cat, const char *schema,
                                               const char *name)
{
    if (schema == NULL)
        schema = "public";
    for (int i = 0; i < cat->ntables; i++)
        if (strcmp(cat->tables[i].name, name) == 0 && strcmp(cat->tables[i].schema, schema) == 0)
            return &cat->tables[i];
    return NULL;
}

int catalog_table_index(const struct catalog *cat, const struct catalog_table *t)
{
    if (t == NULL || t < cat->tables || t >= cat->tables + cat->ntables)
        return -1;
    return (int)(t - cat->tables);
}

const struct catalog_column *catalog_find_column(const struct catalog_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

/* Split "s" at "sep" into trimmed, non-empty pieces; returns the count. */
static int cat_split(const char *s, char sep, char ***out)
{
    char **v = NULL;
    int n = 0;

    while (s != NULL && *s != '\0') {
        const char *e = strchr(s, sep);
        const char *stop = e ? e : s + strlen(s);
        const char *b = s;
        while (b < stop && (*b == ' ' || *b == '\t' || *b == '\n'))
            b++;
        const char *t = stop;
        while (t > b && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\n'))
            t--;
        if (t > b) {
            v = xrealloc(v, (size_t)(n + 1) * sizeof(*v));
            v[n] = xmalloc((size_t)(t - b) + 1);
            memcpy(v[n], b, (size_t)(t - b));
            v[n][t - b] = '\0';
            n++;
        }
        s = e ? e + 1 : NULL;
    }
    *out = v;
    return n;
}

static void cat_split_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int catalog_add_table(struct catalog *cat, const char *schema, const char *name, char relkind,
                      const char *columns, const char *pk)
{
    char **defs;
    int ndefs = cat_split(columns, ';', &defs);
    struct catalog_table *t;

    cat->tables = xrealloc(cat->tables, (size_t)(cat->ntables + 1) * sizeof(*cat->tables));
    t = &cat->tables[cat->ntables];
    memset(t, 0, sizeof(*t));
    t->schema = xstrdup(schema ? schema : "public");
    t->name = xstrdup(name);
    t->relkind = relkind;
    t->cols = xmalloc((size_t)ndefs * sizeof(*t->cols));
    for (int i = 0; i < ndefs; i++) {
        char *sp = strchr(defs[i], ' ');
        if (sp != NULL)
            *sp = '\0';
        t->cols[i].name = xstrdup(defs[i]);
        t->cols[i].type = xstrdup(sp ? sp + 1 : "text");
        t->cols[i].notnull = 0;
    }
    t->ncols = ndefs;
    cat_split_free(defs, ndefs);
    t->npk = cat_split(pk, ',', &t->pk);
    return cat->ntables++;
}

/* "schema.table" or "table" (in public) -> table index, -1 when absent */
static int cat_lookup_qualified(const struct catalog *cat, const char *qname)
{
    const char *dot = strchr(qname, '.');
    const struct catalog_table *t;

    if (dot == NULL) {
        t = catalog_find_table(cat, "public", qname);
    } else {
        char *schema = xstrdup(qname);
        schema[dot - qname] = '\0';
        t = catalog_find_table(cat, schema, dot + 1);
        free(schema);
    }
    return catalog_table_index(cat, t);
}

int catalog_add_fk(struct catalog *cat, const char *name, const char *from, const char *from_cols,
                   const char *to, const char *to_cols, int has_index)
{
    int fi = cat_lookup_qualified(cat, from), ti = cat_lookup_qualified(cat, to);
    char **fc, **tc;
    int nf, nt;
    struct catalog_fk *fk;

    if (fi < 0 || ti < 0)
        return -1;
    nf = cat_split(from_cols, ',', &fc);
    nt = cat_split(to_cols, ',', &tc);
    if (nf != nt || nf == 0) {
        cat_split_free(fc, nf);
        cat_split_free(tc, nt);
        return -1;
    }
    cat->fks = xrealloc(cat->fks, (size_t)(cat->nfks + 1) * sizeof(*cat->fks));
    fk = &cat->fks[cat->nfks++];
    fk->name = xstrdup(name);
    fk->from_table = fi;
    fk->to_table = ti;
    fk->from_cols = fc;
    fk->to_cols = tc;
    fk->ncols = nf;
    fk->has_index = has_index;
    return 0;
}
