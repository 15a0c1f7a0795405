/*
 * analyze.c - the plans of an entry's generated queries, and the joins over
 * foreign keys that no index backs. Reads only: EXPLAIN never runs a query.
 */
#include "analyze.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "sqlgen.h"
#include "strbuf.h"

/* PostgreSQL 16 has EXPLAIN (GENERIC_PLAN): plan a query with $n unbound. */
#define PG_GENERIC_PLAN_VERSION 160000

static int exec_ok(PGconn *conn, const char *sql, struct pgs_error *err)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) {
        pgs_error_set(err, PGS_ERR_FATAL, "analyze: \"%.60s\" failed", sql);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
    }
    PQclear(res);
    return ok ? 0 : -1;
}

static void print_plan(FILE *out, PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++)
        fprintf(out, "    %s\n", PQgetvalue(res, r, 0));
}

/*
 * EXPLAIN one query with "nparams" parameters. On PostgreSQL 15 and older a
 * prepared statement executed with NULL parameters: with a forced generic
 * plan the values do not shape the plan.
 */
static int explain_one(PGconn *conn, FILE *out, const char *name, const char *sql, int nparams,
                       struct pgs_error *err)
{
    struct strbuf q;
    PGresult *res;
    int rv = 0;

    fprintf(out, "-- %s\n%s\n  plan:\n", name, sql);
    sb_init(&q);
    if (PQserverVersion(conn) >= PG_GENERIC_PLAN_VERSION || nparams == 0) {
        sb_add(&q, nparams > 0 ? "EXPLAIN (GENERIC_PLAN) " : "EXPLAIN ");
        sb_add(&q, sql);
        res = PQexec(conn, q.buf);
    } else {
        res = PQprepare(conn, "pgsync_analyze", sql, nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            goto failed;
        PQclear(res);
        sb_add(&q, "EXPLAIN EXECUTE pgsync_analyze(");
        for (int i = 0; i < nparams; i++)
            sb_add(&q, i ? ", NULL" : "NULL");
        sb_add(&q, ")");
        res = PQexec(conn, q.buf);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            print_plan(out, res);
        else
            rv = -1;
        PQclear(res);
        res = PQexec(conn, "DEALLOCATE pgsync_analyze");
        PQclear(res);
        if (rv < 0) {
            pgs_error_set(err, PGS_ERR_SCHEMA, "analyze: cannot explain the %s query", name);
            pgs_error_detail(err, "%s", PQerrorMessage(conn));
        }
        sb_free(&q);
        return rv;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto failed;
    print_plan(out, res);
    PQclear(res);
    sb_free(&q);
    return 0;
failed:
    pgs_error_set(err, PGS_ERR_SCHEMA, "analyze: cannot explain the %s query", name);
    pgs_error_detail(err, "%s", PQerrorMessage(conn));
    PQclear(res);
    sb_free(&q);
    return -1;
}

/* Do "a" and "b" hold the same column names, in any order? */
static int same_cols(char **a, int na, char **b, int nb)
{
    if (na != nb)
        return 0;
    for (int i = 0; i < na; i++) {
        int hit = 0;
        for (int k = 0; k < nb && !hit; k++)
            hit = strcmp(a[i], b[k]) == 0;
        if (!hit)
            return 0;
    }
    return 1;
}

/*
 * One join of the tree: "p_table".p_cols = "c_table".c_cols. Follows a
 * catalog foreign key in either direction; warn when the referencing
 * columns have no index. Returns 1 when it warned.
 */
static int check_join(FILE *out, const struct catalog *cat, const char *what,
                      const struct catalog_table *pt, char **p_cols,
                      const struct catalog_table *ct, char **c_cols, int n)
{
    int pi = catalog_table_index(cat, pt), ci = catalog_table_index(cat, ct);

    if (pi < 0 || ci < 0 || n == 0)
        return 0;
    for (int i = 0; i < cat->nfks; i++) {
        const struct catalog_fk *fk = &cat->fks[i];
        int fwd = fk->from_table == ci && fk->to_table == pi &&
                  same_cols(fk->from_cols, fk->ncols, c_cols, n) &&
                  same_cols(fk->to_cols, fk->ncols, p_cols, n);
        int back = fk->from_table == pi && fk->to_table == ci &&
                   same_cols(fk->from_cols, fk->ncols, p_cols, n) &&
                   same_cols(fk->to_cols, fk->ncols, c_cols, n);
        if (!fwd && !back)
            continue;
        if (fk->has_index)
            return 0;
        const struct catalog_table *from = &cat->tables[fk->from_table];
        struct strbuf sb;
        sb_init(&sb);
        sb_add(&sb, "CREATE INDEX ON ");
        sb_ident(&sb, from->schema);
        sb_addc(&sb, '.');
        sb_ident(&sb, from->name);
        sb_add(&sb, " (");
        for (int k = 0; k < fk->ncols; k++) {
            if (k > 0)
                sb_add(&sb, ", ");
            sb_ident(&sb, fk->from_cols[k]);
        }
        sb_add(&sb, ");");
        fprintf(out,
                "warning: %s joins over foreign key \"%s\" of \"%s.%s\", which no index "
                "backs: every lookup reads the whole table\n  hint: %s\n",
                what, fk->name, from->schema, from->name, sb.buf);
        sb_free(&sb);
        return 1;
    }
    return 0;
}

static int check_indexes(FILE *out, const struct app_entry *ae)
{
    const struct schema_entry *e = ae->e;
    int warnings = 0;
    char what[512];

    for (int i = 1; i < e->nnodes; i++) {
        const struct schema_node *n = e->nodes[i];
        const struct catalog_table *pt = n->parent ? n->parent->cat_table : NULL;
        if (n->cat_table == NULL || pt == NULL)
            continue;
        snprintf(what, sizeof(what), "node \"%s\" (%s)", n->label, n->jpath);
        if (n->cat_through != NULL) {
            warnings += check_join(out, &ae->cat, what, pt, n->through_join.parent_cols,
                                   n->cat_through, n->through_join.child_cols,
                                   n->through_join.n);
            warnings += check_join(out, &ae->cat, what, n->cat_through, n->join.parent_cols,
                                   n->cat_table, n->join.child_cols, n->join.n);
        } else {
            warnings += check_join(out, &ae->cat, what, pt, n->join.parent_cols, n->cat_table,
                                   n->join.child_cols, n->join.n);
        }
    }
    return warnings;
}

int analyze_entry(const struct config *cfg, struct app_entry *ae, FILE *out,
                  struct pgs_error *err)
{
    const struct sqlgen *g = &ae->sql;
    const struct schema_entry *e = ae->e;
    char name[512];
    int rv = 0;

    PGconn *conn = config_pg_connect(cfg, e->database, 0, "pgsync-analyze", err);
    if (conn == NULL)
        return -1;
    if (PQserverVersion(conn) < PG_GENERIC_PLAN_VERSION &&
        exec_ok(conn, "SET plan_cache_mode = force_generic_plan", err) < 0) {
        PQfinish(conn);
        return -1;
    }
    fprintf(out, "== index \"%s\", database \"%s\" (PostgreSQL %d)\n", e->index, e->database,
            PQserverVersion(conn));

    rv = explain_one(conn, out, "documents by keys", g->doc_by_keys, g->npk, err);
    if (rv == 0 && g->doc_by_range)
        rv = explain_one(conn, out, "documents by key range", g->doc_by_range, 2, err);
    if (rv == 0)
        rv = explain_one(conn, out, "all documents", g->doc_all, 0, err);
    for (int i = 1; i < g->nnodes && rv == 0; i++) {
        const struct schema_node *n = e->nodes[i];
        if (g->node_rev[i].sql) {
            snprintf(name, sizeof(name), "reverse of node \"%s\" (%s.%s changed)", n->label,
                     n->schema, n->table);
            rv = explain_one(conn, out, name, g->node_rev[i].sql, g->node_rev[i].nin, err);
        }
        if (rv == 0 && g->through_rev[i].sql) {
            snprintf(name, sizeof(name), "reverse of node \"%s\" (through table %s.%s changed)",
                     n->label, n->through_schema, n->through_table);
            rv = explain_one(conn, out, name, g->through_rev[i].sql, g->through_rev[i].nin,
                             err);
        }
    }
    for (int i = 0; i < g->nnodes && rv == 0; i++) {
        const struct schema_node *n = e->nodes[i];
        for (int b = 0; g->base_rev && g->base_rev[i] && b < g->nbase_rev[i] && rv == 0; b++) {
            if (g->base_rev[i][b].sql == NULL) {
                fprintf(out, "-- view node \"%s\": base table %s.%s shows no key in the view: "
                             "its changes re-index every document\n",
                        n->label, n->bases[b].schema, n->bases[b].table);
                continue;
            }
            snprintf(name, sizeof(name), "reverse of view node \"%s\" (base table %s.%s changed)",
                     n->label, n->bases[b].schema, n->bases[b].table);
            rv = explain_one(conn, out, name, g->base_rev[i][b].sql, g->base_rev[i][b].nin, err);
        }
    }
    PQfinish(conn);
    if (rv < 0)
        return -1;
    return check_indexes(out, ae);
}
