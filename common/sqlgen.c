/*
 * sqlgen.c - generating the document and reverse queries from a resolved
 * schema entry. Aliases: node i is n<i> and its through table t<i> inside
 * the document query; the reverse walk uses a<k> for node rows and b<k> for
 * through rows, k counting up from the changed table towards the root.
 */
#include "sqlgen.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* json_build_object takes at most 100 arguments: 50 pairs per call */
#define PAIRS_PER_CALL 50

static const char *column_type(const struct catalog *cat, const struct schema_node *n,
                               const char *schema, const char *table, const char *col,
                               struct pgs_error *err)
{
    const struct catalog_table *t = catalog_find_table(cat, schema, table);
    const struct catalog_column *c = t ? catalog_find_column(t, col) : NULL;

    if (c == NULL) {
        pgs_error_set(err, PGS_ERR_SCHEMA, "%s: column \"%s\" of \"%s.%s\" not in the catalog",
                      n->jpath ? n->jpath : "$", col, schema, table);
        return NULL;
    }
    return c->type;
}

static void alias(struct strbuf *sb, char kind, int id)
{
    sb_printf(sb, "%c%d", kind, id);
}

static void qualified(struct strbuf *sb, const char *schema, const char *table)
{
    sb_ident(sb, schema);
    sb_addc(sb, '.');
    sb_ident(sb, table);
}

static void colref(struct strbuf *sb, char kind, int id, const char *col)
{
    alias(sb, kind, id);
    sb_addc(sb, '.');
    sb_ident(sb, col);
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* The value of one field: a column, a JSON path into it, replace() applied. */
static void field_expr(struct strbuf *sb, const struct schema_node *n, const struct schema_field *f)
{
    struct strbuf base;

    sb_init(&base);
    colref(&base, 'n', n->id, f->column);
    for (int i = 0; i < f->npath; i++) {
        sb_add(&base, (i == f->npath - 1 && f->last_text) ? "->>" : "->");
        if (all_digits(f->path[i]))
            sb_add(&base, f->path[i]); /* array index */
        else
            sb_literal(&base, f->path[i]);
    }
    if (f->nreplace == 0) {
        sb_add(sb, base.buf);
    } else {
        for (int i = 0; i < f->nreplace; i++)
            sb_add(sb, "replace(");
        sb_printf(sb, "(%s)::text", base.buf);
        for (int i = 0; i < f->nreplace; i++) {
            sb_add(sb, ", ");
            sb_literal(sb, f->replace_from[i]);
            sb_add(sb, ", ");
            sb_literal(sb, f->replace_to[i]);
            sb_add(sb, ")");
        }
    }
    sb_free(&base);
}

static void object_expr(struct strbuf *sb, const struct schema_node *n);

/* "a.x = b.y AND ..." for the pairs of a join */
static void join_cond(struct strbuf *sb, char lk, int lid, char **lcols, char rk, int rid,
                      char **rcols, int ncols)
{
    for (int i = 0; i < ncols; i++) {
        if (i > 0)
            sb_add(sb, " AND ");
        colref(sb, lk, lid, lcols[i]);
        sb_add(sb, " = ");
        colref(sb, rk, rid, rcols[i]);
    }
}

static void order_by_pk(struct strbuf *sb, char kind, int id, char **pk, int npk)
{
    if (npk == 0)
        return;
    sb_add(sb, " ORDER BY ");
    for (int i = 0; i < npk; i++) {
        if (i > 0)
            sb_add(sb, ", ");
        colref(sb, kind, id, pk[i]);
    }
}

/* The subquery that yields child "c" of the row n<parent> as JSON. */
static void child_expr(struct strbuf *sb, const struct schema_node *c)
{
    const struct schema_node *p = c->parent;
    struct strbuf sel;
    int many = c->rel_type == REL_ONE_TO_MANY;

    sb_init(&sel);
    if (c->variant == REL_SCALAR && c->nfields > 0)
        field_expr(&sel, c, &c->fields[0]);
    else
        object_expr(&sel, c);

    sb_add(sb, "(SELECT ");
    if (many)
        sb_printf(sb, "json_agg(%s", sel.buf);
    else
        sb_add(sb, sel.buf);
    if (many) {
        /* a stable order: links in the order they were made, else the child's key */
        if (c->through_table != NULL)
            order_by_pk(sb, 't', c->id, c->through_link_cols, c->nthrough_link > 0 ? 1 : 0);
        else
            order_by_pk(sb, 'n', c->id, c->pk, c->npk);
        sb_add(sb, ")");
    }
    sb_add(sb, " FROM ");
    if (c->through_table != NULL) {
        qualified(sb, c->through_schema, c->through_table);
        sb_addc(sb, ' ');
        alias(sb, 't', c->id);
        sb_add(sb, " JOIN ");
        qualified(sb, c->schema, c->table);
        sb_addc(sb, ' ');
        alias(sb, 'n', c->id);
        sb_add(sb, " ON ");
        join_cond(sb, 'n', c->id, c->join.child_cols, 't', c->id, c->join.parent_cols,
                  c->join.n);
        sb_add(sb, " WHERE ");
        join_cond(sb, 't', c->id, c->through_join.child_cols, 'n', p->id,
                  c->through_join.parent_cols, c->through_join.n);
    } else {
        qualified(sb, c->schema, c->table);
        sb_addc(sb, ' ');
        alias(sb, 'n', c->id);
        sb_add(sb, " WHERE ");
        join_cond(sb, 'n', c->id, c->join.child_cols, 'n', p->id, c->join.parent_cols,
                  c->join.n);
    }
    if (!many)
        sb_add(sb, " LIMIT 1");
    sb_add(sb, ")");
    sb_free(&sel);
}

/* json_build_object over every field, concat and child of "n", chunked by 50 pairs. */
static void object_expr(struct strbuf *sb, const struct schema_node *n)
{
    int total = n->nfields + n->nconcat + n->nchildren;
    int pair = 0;

    if (total == 0) {
        sb_add(sb, "json_build_object()");
        return;
    }
    if (total > PAIRS_PER_CALL)
        sb_add(sb, "(");
    for (int i = 0; i < total; i++, pair++) {
        if (pair % PAIRS_PER_CALL == 0) {
            if (pair > 0)
                sb_add(sb, ")::jsonb || ");
            sb_add(sb, "json_build_object(");
        } else {
            sb_add(sb, ", ");
        }
        if (i < n->nfields) {
            const struct schema_field *f = &n->fields[i];
            sb_literal(sb, f->key);
            sb_add(sb, ", ");
            field_expr(sb, n, f);
        } else if (i < n->nfields + n->nconcat) {
            const struct schema_concat *cc = &n->concat[i - n->nfields];
            sb_literal(sb, cc->destination);
            sb_add(sb, ", concat_ws(");
            sb_literal(sb, cc->delimiter ? cc->delimiter : "");
            for (int k = 0; k < cc->ncolumns; k++) {
                sb_add(sb, ", ");
                colref(sb, 'n', n->id, cc->columns[k]);
            }
            sb_add(sb, ")");
        } else {
            const struct schema_node *c = n->children[i - n->nfields - n->nconcat];
            sb_literal(sb, c->label);
            sb_add(sb, ", ");
            child_expr(sb, c);
        }
    }
    sb_add(sb, ")");
    if (total > PAIRS_PER_CALL)
        sb_add(sb, "::jsonb)::json");
}

/* $k::text[]::<type>[] */
static void typed_array_param(struct strbuf *sb, int k, const char *type)
{
    sb_printf(sb, "$%d::text[]::%s[]", k, type);
}

static int build_documents(const struct schema_entry *e, const struct catalog *cat,
                           struct sqlgen *g, struct pgs_error *err)
{
    const struct schema_node *r = e->root;
    struct strbuf sel, q;

    sb_init(&sel);
    sb_add(&sel, "SELECT ");
    if (r->npk == 1) {
        colref(&sel, 'n', 0, r->pk[0]);
        sb_add(&sel, "::text");
    } else {
        sb_add(&sel, "concat_ws('" SQLGEN_ID_SEP "'");
        for (int i = 0; i < r->npk; i++) {
            sb_add(&sel, ", ");
            colref(&sel, 'n', 0, r->pk[i]);
            sb_add(&sel, "::text");
        }
        sb_add(&sel, ")");
    }
    sb_add(&sel, " AS _id, ");
    object_expr(&sel, r);
    sb_add(&sel, " AS doc");
    for (int i = 0; i < r->npk; i++) {
        sb_add(&sel, ", ");
        colref(&sel, 'n', 0, r->pk[i]);
        sb_printf(&sel, "::text AS k%d", i);
    }
    sb_add(&sel, " FROM ");
    qualified(&sel, r->schema, r->table);
    sb_add(&sel, " n0");

    /* by keys */
    sb_init(&q);
    sb_add(&q, sel.buf);
    if (r->npk == 1) {
        const char *t = column_type(cat, r, r->schema, r->table, r->pk[0], err);
        if (t == NULL)
            goto fail;
        sb_add(&q, " WHERE ");
        colref(&q, 'n', 0, r->pk[0]);
        sb_add(&q, " = ANY(");
        typed_array_param(&q, 1, t);
        sb_add(&q, ")");
    } else {
        sb_add(&q, " JOIN (SELECT DISTINCT * FROM unnest(");
        for (int i = 0; i < r->npk; i++)
            sb_printf(&q, "%s$%d::text[]", i ? ", " : "", i + 1);
        sb_add(&q, ") AS u(");
        for (int i = 0; i < r->npk; i++)
            sb_printf(&q, "%sk%d", i ? ", " : "", i);
        sb_add(&q, ")) k ON ");
        for (int i = 0; i < r->npk; i++) {
            const char *t = column_type(cat, r, r->schema, r->table, r->pk[i], err);
            if (t == NULL)
                goto fail;
            if (i > 0)
                sb_add(&q, " AND ");
            colref(&q, 'n', 0, r->pk[i]);
            sb_printf(&q, " = k.k%d::%s", i, t);
        }
    }
    g->doc_by_keys = sb_steal(&q);

    /* by range of a single key: [$1, $2), either end open when NULL */
    sb_init(&q);
    if (r->npk == 1) {
        const char *t = column_type(cat, r, r->schema, r->table, r->pk[0], err);
        if (t == NULL)
            goto fail;
        sb_add(&q, sel.buf);
        sb_printf(&q, " WHERE ($1::text IS NULL OR ");
        colref(&q, 'n', 0, r->pk[0]);
        sb_printf(&q, " >= $1::text::%s) AND ($2::text IS NULL OR ", t);
        colref(&q, 'n', 0, r->pk[0]);
        sb_printf(&q, " < $2::text::%s) ORDER BY ", t);
        colref(&q, 'n', 0, r->pk[0]);
        g->doc_by_range = sb_steal(&q);
    } else {
        sb_free(&q);
    }

    g->doc_all = xstrdup(sel.buf);
    g->doc_select = sb_steal(&sel);
    g->npk = r->npk;
    return 0;
fail:
    sb_free(&sel);
    sb_free(&q);
    return -1;
}

/*
 * FROM (SELECT DISTINCT * FROM unnest($1::text[], ...) AS u(v0, ...)) v
 * JOIN <table> <kind><id> ON <kind><id>.col_i = v.v_i::type_i
 */
static int values_join(struct strbuf *sb, const struct catalog *cat, const struct schema_node *n,
                       const char *schema, const char *table, char kind, int id, char **cols,
                       int ncols, struct pgs_error *err)
{
    sb_add(sb, " FROM (SELECT DISTINCT * FROM unnest(");
    for (int i = 0; i < ncols; i++)
        sb_printf(sb, "%s$%d::text[]", i ? ", " : "", i + 1);
    sb_add(sb, ") AS u(");
    for (int i = 0; i < ncols; i++)
        sb_printf(sb, "%sv%d", i ? ", " : "", i);
    sb_add(sb, ")) v JOIN ");
    qualified(sb, schema, table);
    sb_addc(sb, ' ');
    alias(sb, kind, id);
    sb_add(sb, " ON ");
    for (int i = 0; i < ncols; i++) {
        const char *t = column_type(cat, n, schema, table, cols[i], err);
        if (t == NULL)
            return -1;
        if (i > 0)
            sb_add(sb, " AND ");
        colref(sb, kind, id, cols[i]);
        sb_printf(sb, " = v.v%d::%s", i, t);
    }
    return 0;
}

/* From the row a<k> of node "p" up to the root: JOINs, then returns the root's alias number. */
static int walk_up(struct strbuf *sb, const struct schema_node *p, int k)
{
    while (p->parent != NULL) {
        const struct schema_node *g = p->parent;
        if (p->through_table != NULL) {
            sb_add(sb, " JOIN ");
            qualified(sb, p->through_schema, p->through_table);
            sb_printf(sb, " b%d ON ", k + 1);
            join_cond(sb, 'b', k + 1, p->join.parent_cols, 'a', k, p->join.child_cols,
                      p->join.n);
            sb_add(sb, " JOIN ");
            qualified(sb, g->schema, g->table);
            sb_printf(sb, " a%d ON ", k + 1);
            join_cond(sb, 'a', k + 1, p->through_join.parent_cols, 'b', k + 1,
                      p->through_join.child_cols, p->through_join.n);
        } else {
            sb_add(sb, " JOIN ");
            qualified(sb, g->schema, g->table);
            sb_printf(sb, " a%d ON ", k + 1);
            join_cond(sb, 'a', k + 1, p->join.parent_cols, 'a', k, p->join.child_cols, p->join.n);
        }
        p = g;
        k++;
    }
    return k;
}

static char *select_root_keys(const struct schema_node *root, int k, const char *from)
{
    struct strbuf sb;

    sb_init(&sb);
    sb_add(&sb, "SELECT DISTINCT ");
    for (int i = 0; i < root->npk; i++) {
        if (i > 0)
            sb_add(&sb, ", ");
        colref(&sb, 'a', k, root->pk[i]);
        sb_add(&sb, "::text");
    }
    sb_add(&sb, from);
    return sb_steal(&sb);
}

static char **copy_cols(char **cols, int n)
{
    char **out = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++)
        out[i] = xstrdup(cols[i]);
    return out;
}

static int build_reverse(const struct schema_entry *e, const struct catalog *cat,
                         const struct schema_node *n, struct sqlgen *g, struct pgs_error *err)
{
    const struct schema_node *p = n->parent;
    struct strbuf from;
    int k;

    /* the node's own rows: their join values lead to the parent rows */
    sb_init(&from);
    if (n->through_table != NULL) {
        /* changed child -> through rows pointing at it -> parent rows */
        if (values_join(&from, cat, n, n->through_schema, n->through_table, 'b', 0,
                        n->join.parent_cols, n->join.n, err) < 0)
            goto fail;
        sb_add(&from, " JOIN ");
        qualified(&from, p->schema, p->table);
        sb_add(&from, " a0 ON ");
        join_cond(&from, 'a', 0, n->through_join.parent_cols, 'b', 0, n->through_join.child_cols,
                  n->through_join.n);
    } else {
        if (values_join(&from, cat, n, p->schema, p->table, 'a', 0, n->join.parent_cols,
                        n->join.n, err) < 0)
            goto fail;
    }
    k = walk_up(&from, p, 0);
    g->node_rev[n->id].sql = select_root_keys(e->root, k, from.buf);
    g->node_rev[n->id].in_cols = copy_cols(n->join.child_cols, n->join.n);
    g->node_rev[n->id].nin = n->join.n;
    sb_free(&from);

    if (n->through_table != NULL) {
        /* changed through row -> parent rows */
        sb_init(&from);
        if (values_join(&from, cat, n, p->schema, p->table, 'a', 0, n->through_join.parent_cols,
                        n->through_join.n, err) < 0)
            goto fail;
        k = walk_up(&from, p, 0);
        g->through_rev[n->id].sql = select_root_keys(e->root, k, from.buf);
        g->through_rev[n->id].in_cols = copy_cols(n->through_join.child_cols, n->through_join.n);
        g->through_rev[n->id].nin = n->through_join.n;
        sb_free(&from);
    }
    return 0;
fail:
    sb_free(&from);
    return -1;
}

int sqlgen_build(const struct schema_entry *e, const struct catalog *cat, struct sqlgen *out,
                 struct pgs_error *err)
{
    memset(out, 0, sizeof(*out));
    out->nnodes = e->nnodes;
    out->node_rev = xcalloc((size_t)e->nnodes, sizeof(struct sqlgen_reverse));
    out->through_rev = xcalloc((size_t)e->nnodes, sizeof(struct sqlgen_reverse));
    if (e->root->npk == 0) {
        pgs_error_set(err, PGS_ERR_SCHEMA, "%s: root table \"%s.%s\" has no primary key",
                      e->root->jpath, e->root->schema, e->root->table);
        goto fail;
    }
    if (build_documents(e, cat, out, err) < 0)
        goto fail;
    for (int i = 1; i < e->nnodes; i++)
        if (build_reverse(e, cat, e->nodes[i], out, err) < 0)
            goto fail;
    return 0;
fail:
    sqlgen_free(out);
    return -1;
}

static void reverse_free(struct sqlgen_reverse *r)
{
    free(r->sql);
    for (int i = 0; i < r->nin; i++)
        free(r->in_cols[i]);
    free(r->in_cols);
}

void sqlgen_free(struct sqlgen *g)
{
    free(g->doc_by_keys);
    free(g->doc_by_range);
    free(g->doc_all);
    free(g->doc_select);
    for (int i = 0; i < g->nnodes; i++) {
        if (g->node_rev)
            reverse_free(&g->node_rev[i]);
        if (g->through_rev)
            reverse_free(&g->through_rev[i]);
    }
    free(g->node_rev);
    free(g->through_rev);
    memset(g, 0, sizeof(*g));
}
