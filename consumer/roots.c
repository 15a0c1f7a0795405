/*
 * roots.c - routing change records to schema nodes, and the reverse queries
 * that turn the join values they collect into root keys (roots.h).
 */
#include "roots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docs.h"
#include "strbuf.h"

/* how many tuples one reverse query takes at a time */
#define REVERSE_CHUNK 5000

struct roots {
    const struct app_entry *ae; /* borrowed */
    struct keyset keys;         /* root keys of the batch */
    struct keyset *node_in;     /* by node id: join values of changed rows */
    struct keyset *through_in;  /* by node id: join values of changed through rows */
    struct keyset **base_in;    /* by node id, base table: values of a view's changed base rows */
    int reindex_all;            /* the batch touched a table no reverse query can key */
};

struct roots *roots_new(const struct app_entry *ae)
{
    struct roots *r = xcalloc(1, sizeof(*r));
    int nnodes = ae->e->nnodes;

    r->ae = ae;
    keyset_init(&r->keys, ae->sql.npk);
    r->node_in = xcalloc((size_t)nnodes, sizeof(struct keyset));
    r->through_in = xcalloc((size_t)nnodes, sizeof(struct keyset));
    r->base_in = xcalloc((size_t)nnodes, sizeof(struct keyset *));
    for (int i = 0; i < nnodes; i++) {
        const struct schema_node *n = ae->e->nodes[i];
        keyset_init(&r->node_in[i], ae->sql.node_rev[i].nin);
        keyset_init(&r->through_in[i], ae->sql.through_rev[i].nin);
        if (n->nbase_tables > 0) {
            r->base_in[i] = xcalloc((size_t)n->nbase_tables, sizeof(struct keyset));
            for (int b = 0; b < n->nbase_tables; b++)
                keyset_init(&r->base_in[i][b], ae->sql.base_rev && ae->sql.base_rev[i]
                                                   ? ae->sql.base_rev[i][b].nin
                                                   : 0);
        }
    }
    return r;
}

void roots_free(struct roots *r)
{
    if (r == NULL)
        return;
    keyset_free(&r->keys);
    for (int i = 0; i < r->ae->e->nnodes; i++) {
        keyset_free(&r->node_in[i]);
        keyset_free(&r->through_in[i]);
        for (int b = 0; r->base_in[i] && b < r->ae->e->nodes[i]->nbase_tables; b++)
            keyset_free(&r->base_in[i][b]);
        free(r->base_in[i]);
    }
    free(r->node_in);
    free(r->through_in);
    free(r->base_in);
    free(r);
}

static int prepare(PGconn *conn, const char *name, const char *sql, int nparams,
                   struct pgs_error *err)
{
    PGresult *res = PQprepare(conn, name, sql, nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        docs_prepare_failed(conn, res, name, err);
        return -1;
    }
    PQclear(res);
    return 0;
}

int roots_prepare(const struct app_entry *ae, PGconn *pg, struct pgs_error *err)
{
    const struct sqlgen *g = &ae->sql;
    char name[32];

    for (int i = 1; i < g->nnodes; i++) {
        snprintf(name, sizeof(name), "rev_n%d", i);
        if (g->node_rev[i].sql &&
            prepare(pg, name, g->node_rev[i].sql, g->node_rev[i].nin, err) < 0)
            return -1;
        snprintf(name, sizeof(name), "rev_t%d", i);
        if (g->through_rev[i].sql &&
            prepare(pg, name, g->through_rev[i].sql, g->through_rev[i].nin, err) < 0)
            return -1;
    }
    for (int i = 0; i < g->nnodes && g->base_rev; i++) {
        for (int b = 0; g->base_rev[i] && b < ae->e->nodes[i]->nbase_tables; b++) {
            snprintf(name, sizeof(name), "rev_b%d_%d", i, b);
            if (g->base_rev[i][b].sql &&
                prepare(pg, name, g->base_rev[i][b].sql, g->base_rev[i][b].nin, err) < 0)
                return -1;
        }
    }
    return 0;
}

void roots_clear(struct roots *r)
{
    const struct schema_entry *e = r->ae->e;

    keyset_clear(&r->keys);
    for (int i = 0; i < e->nnodes; i++) {
        keyset_clear(&r->node_in[i]);
        keyset_clear(&r->through_in[i]);
        for (int b = 0; r->base_in[i] && b < e->nodes[i]->nbase_tables; b++)
            keyset_clear(&r->base_in[i][b]);
    }
    r->reindex_all = 0;
}

/* The values of "cols" in a record's old or new image; 0 when one is absent or NULL. */
static int tuple_from(json_t *img, char **cols, int ncols, const char **out)
{
    if (img == NULL)
        return 0;
    for (int i = 0; i < ncols; i++) {
        json_t *v = json_object_get(img, cols[i]);
        if (!json_is_string(v))
            return 0; /* a NULL never joins */
        out[i] = json_string_value(v);
    }
    return 1;
}

static void collect(struct keyset *set, const struct change *c, char **cols, int ncols)
{
    const char *vals[64];
    if (ncols == 0 || ncols > 64)
        return;
    if (tuple_from(c->oldv, cols, ncols, vals))
        keyset_add(set, vals);
    if (tuple_from(c->newv, cols, ncols, vals))
        keyset_add(set, vals);
}

void roots_route_record(struct roots *r, const struct change *c)
{
    const struct schema_entry *e = r->ae->e;
    const struct sqlgen *g = &r->ae->sql;

    for (int i = 0; i < e->nnodes; i++) {
        const struct schema_node *n = e->nodes[i];
        if (!strcmp(n->schema, c->schema) && !strcmp(n->table, c->table)) {
            if (i == 0)
                collect(&r->keys, c, n->pk, n->npk);
            else
                collect(&r->node_in[i], c, g->node_rev[i].in_cols, g->node_rev[i].nin);
        }
        if (n->through_table && !strcmp(n->through_schema, c->schema) &&
            !strcmp(n->through_table, c->table))
            collect(&r->through_in[i], c, g->through_rev[i].in_cols, g->through_rev[i].nin);
        for (int b = 0; b < n->nbase_tables && g->base_rev; b++) {
            if (strcmp(n->bases[b].schema, c->schema) || strcmp(n->bases[b].table, c->table))
                continue;
            if (g->base_rev[i] == NULL || g->base_rev[i][b].sql == NULL)
                r->reindex_all = 1; /* the view cannot be keyed from this table */
            else
                collect(&r->base_in[i][b], c, g->base_rev[i][b].in_cols, g->base_rev[i][b].nin);
        }
    }
}

int roots_need_reindex(const struct roots *r)
{
    return r->reindex_all;
}

/* Run one reverse query over "in" in chunks; every row is a root key. */
static int run_reverse(struct roots *r, PGconn **pg, const char *stmt, struct keyset *in,
                       struct pgs_error *err)
{
    struct strbuf *arrays = xcalloc((size_t)in->width, sizeof(struct strbuf));
    const char **params = xcalloc((size_t)in->width, sizeof(char *));
    int rv = 0;

    for (int c = 0; c < in->width; c++)
        sb_init(&arrays[c]);
    for (int from = 0; from < in->n && rv == 0; from += REVERSE_CHUNK) {
        int to = from + REVERSE_CHUNK < in->n ? from + REVERSE_CHUNK : in->n;
        for (int c = 0; c < in->width; c++) {
            keyset_pg_array(in, c, from, to, &arrays[c]);
            params[c] = arrays[c].buf;
        }
        PGresult *res = PQexecPrepared(*pg, stmt, in->width, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rv = docs_query_failed(pg, res, r->ae->e->database, "a reverse query", err);
            /*
             * Not one document's fault either way: a row error here has no
             * document to dead-letter, so it waits for a fix like the rest
             * (retried with backoff, /healthz says why); it never exits.
             */
            if (err->kind == PGS_ERR_DOCUMENT)
                err->kind = PGS_ERR_TRANSIENT;
            break;
        }
        const char *vals[64];
        for (int row = 0; row < PQntuples(res); row++) {
            for (int k = 0; k < r->keys.width; k++)
                vals[k] = PQgetvalue(res, row, k);
            keyset_add(&r->keys, vals);
        }
        PQclear(res);
    }
    for (int c = 0; c < in->width; c++)
        sb_free(&arrays[c]);
    free(arrays);
    free(params);
    return rv;
}

/* One reverse query per node (and through table, and view base table) per batch. */
int roots_query(struct roots *r, PGconn **pg, struct pgs_error *err)
{
    const struct schema_entry *e = r->ae->e;
    char name[32];
    int rv = 0;

    for (int i = 1; i < e->nnodes && rv == 0; i++) {
        if (r->node_in[i].n > 0) {
            snprintf(name, sizeof(name), "rev_n%d", i);
            rv = run_reverse(r, pg, name, &r->node_in[i], err);
        }
        if (rv == 0 && r->through_in[i].n > 0) {
            snprintf(name, sizeof(name), "rev_t%d", i);
            rv = run_reverse(r, pg, name, &r->through_in[i], err);
        }
    }
    for (int i = 0; i < e->nnodes && rv == 0; i++) {
        for (int b = 0; r->base_in[i] && b < e->nodes[i]->nbase_tables && rv == 0; b++) {
            if (r->base_in[i][b].n == 0)
                continue;
            snprintf(name, sizeof(name), "rev_b%d_%d", i, b);
            rv = run_reverse(r, pg, name, &r->base_in[i][b], err);
        }
    }
    return rv;
}

const struct keyset *roots_keys(const struct roots *r)
{
    return &r->keys;
}
