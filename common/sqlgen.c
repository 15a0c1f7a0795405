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

static int str_index(char *const *v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------ documents */

/* The raw value of a field: the column, or a JSON path into it. */
static void field_raw(struct strbuf *sb, const struct schema_node *n, const struct schema_field *f)
{
    colref(sb, 'n', n->id, f->column);
    for (int i = 0; i < f->npath; i++) {
        sb_add(sb, (i == f->npath - 1 && f->last_text) ? "->>" : "->");
        if (all_digits(f->path[i]))
            sb_add(sb, f->path[i]); /* array index */
        else
            sb_literal(sb, f->path[i]);
    }
}

/* replace(replace(<text>, 'a', 'b'), 'c', 'd') over the text expression "s" */
static void replace_chain(struct strbuf *sb, const struct schema_field *f, const char *s)
{
    for (int i = 0; i < f->nreplace; i++)
        sb_add(sb, "replace(");
    sb_add(sb, s);
    for (int i = 0; i < f->nreplace; i++) {
        sb_add(sb, ", ");
        sb_literal(sb, f->replace_from[i]);
        sb_add(sb, ", ");
        sb_literal(sb, f->replace_to[i]);
        sb_add(sb, ")");
    }
}

/*
 * The value of one field. transform.replace works as in PGSync, on the
 * value as the document shows it: a JSON string has its substrings
 * replaced (dates and timestamps too, they are strings there), each string
 * of an array likewise, and numbers, booleans, objects and null are left
 * alone.
 */
static void field_expr(struct strbuf *sb, const struct schema_node *n, const struct schema_field *f)
{
    struct strbuf raw;

    if (f->nreplace == 0) {
        field_raw(sb, n, f);
        return;
    }
    sb_init(&raw);
    field_raw(&raw, n, f);
    sb_add(sb, "(SELECT CASE json_typeof(r.v) WHEN 'string' THEN to_json(");
    replace_chain(sb, f, "r.v #>> '{}'");
    sb_add(sb, ") WHEN 'array' THEN (SELECT json_agg(CASE json_typeof(e.x) WHEN 'string' "
               "THEN to_json(");
    replace_chain(sb, f, "e.x #>> '{}'");
    sb_add(sb, ") ELSE e.x END ORDER BY e.o) FROM json_array_elements(r.v) WITH ORDINALITY "
               "AS e(x, o)) ELSE r.v END FROM (SELECT to_json(");
    sb_add(sb, raw.buf);
    sb_add(sb, ") AS v) r)");
    sb_free(&raw);
}

static int node_has_rename(const struct schema_node *n)
{
    if (json_is_object(json_object_get(n->transform, "rename")) &&
        json_object_size(json_object_get(n->transform, "rename")) > 0)
        return 1;
    for (int i = 0; i < n->nchildren; i++)
        if (node_has_rename(n->children[i]))
            return 1;
    return 0;
}

/*
 * PGSync renames a child's label through the parent's "rename" unless the
 * child (or one of its descendants) has a "rename" of its own, which then
 * takes that place in PGSync's transform tree.
 */
const char *sqlgen_child_key(const struct schema_node *c)
{
    const struct schema_node *p = c->parent;
    json_t *to;

    if (p == NULL || c->label == NULL)
        return c->label;
    to = json_object_get(json_object_get(p->transform, "rename"), c->label);
    if (json_is_string(to) && json_string_length(to) > 0 && !node_has_rename(c))
        return json_string_value(to);
    return c->label;
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

static void order_cols(struct strbuf *sb, int *first, char kind, int id, char **cols, int n)
{
    for (int i = 0; i < n; i++) {
        sb_add(sb, *first ? " ORDER BY " : ", ");
        *first = 0;
        colref(sb, kind, id, cols[i]);
    }
}

/* A stable order of a child's rows: links in key order (through table), then the child's key. */
static void child_order(struct strbuf *sb, const struct schema_node *c)
{
    int first = 1;

    if (c->through_table != NULL && c->cat_through != NULL)
        order_cols(sb, &first, 't', c->id, c->cat_through->pk, c->cat_through->npk);
    order_cols(sb, &first, 'n', c->id, c->pk, c->npk);
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
    if (many) {
        sb_printf(sb, "json_agg(%s", sel.buf);
        child_order(sb, c);
        sb_add(sb, ")");
    } else {
        sb_add(sb, sel.buf);
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
    if (!many) {
        /* several matching rows: always the same one */
        child_order(sb, c);
        sb_add(sb, " LIMIT 1");
    }
    sb_add(sb, ")");
    sb_free(&sel);
}

/* Is "key" the destination of one of the node's concats? */
static int is_concat_destination(const struct schema_node *n, const char *key)
{
    for (int i = 0; i < n->nconcat; i++)
        if (strcmp(n->concat[i].destination, key) == 0)
            return 1;
    return 0;
}

/*
 * One value of a concat, as text or NULL, the way PGSync's
 * delimiter.join(map(str, filter(None, values))) sees it: null, "", 0,
 * false and empty arrays or objects drop out; true is "True".
 */
static void concat_piece(struct strbuf *sb, const char *json_expr)
{
    sb_add(sb, "(SELECT CASE json_typeof(p.v) WHEN 'string' THEN NULLIF(p.v #>> '{}', '') "
               "WHEN 'number' THEN CASE WHEN (p.v #>> '{}')::numeric = 0 THEN NULL "
               "ELSE p.v #>> '{}' END "
               "WHEN 'boolean' THEN CASE WHEN (p.v #>> '{}')::boolean THEN 'True' END "
               "WHEN 'array' THEN CASE WHEN json_array_length(p.v) > 0 THEN p.v::text END "
               "WHEN 'object' THEN CASE WHEN p.v::text NOT IN ('{}', '{ }') THEN p.v::text END "
               "END FROM (SELECT to_json(");
    sb_add(sb, json_expr);
    sb_add(sb, ") AS v) p)");
}

/*
 * transform.concat of node "n", number "k": PGSync concatenates the
 * document's values after rename, so "columns" names document keys (a
 * field's key, or an earlier concat's destination); a name that is no key
 * is taken literally, as PGSync does (data.get(key, key)).
 */
static void concat_expr(struct strbuf *sb, const struct schema_node *n, int k)
{
    const struct schema_concat *cc = &n->concat[k];
    struct strbuf v;

    sb_init(&v);
    sb_add(sb, "concat_ws(");
    sb_literal(sb, cc->delimiter ? cc->delimiter : "");
    for (int i = 0; i < cc->ncolumns; i++) {
        const char *name = cc->columns[i];
        int found = 0;
        sb_reset(&v);
        /* the latest value under that key: an earlier concat may have overwritten a field */
        for (int j = k - 1; j >= 0 && !found; j--) {
            if (strcmp(n->concat[j].destination, name) == 0) {
                concat_expr(&v, n, j);
                found = 1;
            }
        }
        for (int j = 0; j < n->nfields && !found; j++) {
            if (strcmp(n->fields[j].key, name) == 0) {
                field_expr(&v, n, &n->fields[j]);
                found = 1;
            }
        }
        sb_add(sb, ", ");
        if (found)
            concat_piece(sb, v.buf);
        else
            sb_literal(sb, name);
    }
    sb_add(sb, ")");
    sb_free(&v);
}

/* One key-value pair of a node's object; "i" counts fields, concats, then children. */
struct pair {
    int kind; /* 0 field, 1 concat, 2 child */
    int idx;
};

/* json_build_object over every field, concat and child of "n", chunked by 50 pairs. */
static void object_expr(struct strbuf *sb, const struct schema_node *n)
{
    int total = n->nfields + n->nconcat + n->nchildren, npairs = 0;
    struct pair *pairs = xcalloc((size_t)total + 1, sizeof(*pairs));

    for (int i = 0; i < n->nfields; i++) {
        /* a concat into a field's own key replaces it: one key, never two */
        if (is_concat_destination(n, n->fields[i].key))
            continue;
        pairs[npairs++] = (struct pair){0, i};
    }
    for (int i = 0; i < n->nconcat; i++) {
        int later = 0;
        for (int j = i + 1; j < n->nconcat; j++)
            if (strcmp(n->concat[j].destination, n->concat[i].destination) == 0)
                later = 1;
        if (!later)
            pairs[npairs++] = (struct pair){1, i};
    }
    for (int i = 0; i < n->nchildren; i++)
        pairs[npairs++] = (struct pair){2, i};

    if (npairs == 0) {
        sb_add(sb, "json_build_object()");
        free(pairs);
        return;
    }
    if (npairs > PAIRS_PER_CALL)
        sb_add(sb, "(");
    for (int i = 0; i < npairs; i++) {
        if (i % PAIRS_PER_CALL == 0) {
            if (i > 0)
                sb_add(sb, ")::jsonb || ");
            sb_add(sb, "json_build_object(");
        } else {
            sb_add(sb, ", ");
        }
        if (pairs[i].kind == 0) {
            const struct schema_field *f = &n->fields[pairs[i].idx];
            sb_literal(sb, f->key);
            sb_add(sb, ", ");
            field_expr(sb, n, f);
        } else if (pairs[i].kind == 1) {
            sb_literal(sb, n->concat[pairs[i].idx].destination);
            sb_add(sb, ", ");
            concat_expr(sb, n, pairs[i].idx);
        } else {
            const struct schema_node *c = n->children[pairs[i].idx];
            sb_literal(sb, sqlgen_child_key(c));
            sb_add(sb, ", ");
            child_expr(sb, c);
        }
    }
    sb_add(sb, ")");
    if (npairs > PAIRS_PER_CALL)
        sb_add(sb, "::jsonb)::json");
    free(pairs);
}

/* $k::text[]::<type>[] */
static void typed_array_param(struct strbuf *sb, int k, const char *type)
{
    sb_printf(sb, "$%d::text[]::%s[]", k, type);
}

/*
 * SELECT <_id> AS _id, <document> AS doc, <key i>::text AS k<i>... FROM <root> n0:
 * the document query without its WHERE, for the root "r".
 */
static void doc_select(struct strbuf *sel, const struct schema_node *r)
{
    sb_add(sel, "SELECT ");
    if (r->npk == 1) {
        colref(sel, 'n', 0, r->pk[0]);
        sb_add(sel, "::text");
    } else {
        sb_add(sel, "concat_ws('" SQLGEN_ID_SEP "'");
        for (int i = 0; i < r->npk; i++) {
            sb_add(sel, ", ");
            colref(sel, 'n', 0, r->pk[i]);
            sb_add(sel, "::text");
        }
        sb_add(sel, ")");
    }
    sb_add(sel, " AS _id, ");
    object_expr(sel, r);
    sb_add(sel, " AS doc");
    for (int i = 0; i < r->npk; i++) {
        sb_add(sel, ", ");
        colref(sel, 'n', 0, r->pk[i]);
        sb_printf(sel, "::text AS k%d", i);
    }
    sb_add(sel, " FROM ");
    qualified(sel, r->schema, r->table);
    sb_add(sel, " n0");
}

/*
 * "sel" for the roots whose keys are given: = ANY($1) for one key column,
 * a join to unnest($1, $2, ...) for a composite key. A new string, or NULL.
 */
static char *doc_by_keys_query(const char *sel, const struct catalog *cat,
                               const struct schema_node *r, struct pgs_error *err)
{
    struct strbuf q;

    sb_init(&q);
    sb_add(&q, sel);
    if (r->npk == 1) {
        const char *t = column_type(cat, r, r->schema, r->table, r->pk[0], err);
        if (t == NULL)
            goto fail;
        sb_add(&q, " WHERE ");
        colref(&q, 'n', 0, r->pk[0]);
        sb_add(&q, " = ANY(");
        typed_array_param(&q, 1, t);
        sb_add(&q, ")");
        return sb_steal(&q);
    }
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
    return sb_steal(&q);
fail:
    sb_free(&q);
    return NULL;
}

/* "sel" by range of a single key: [$1, $2), either end open when NULL. A new string, or NULL. */
static char *doc_by_range_query(const char *sel, const struct catalog *cat,
                                const struct schema_node *r, struct pgs_error *err)
{
    struct strbuf q;
    const char *t = column_type(cat, r, r->schema, r->table, r->pk[0], err);

    if (t == NULL)
        return NULL;
    sb_init(&q);
    sb_add(&q, sel);
    sb_add(&q, " WHERE ($1::text IS NULL OR ");
    colref(&q, 'n', 0, r->pk[0]);
    sb_printf(&q, " >= $1::text::%s) AND ($2::text IS NULL OR ", t);
    colref(&q, 'n', 0, r->pk[0]);
    sb_printf(&q, " < $2::text::%s) ORDER BY ", t);
    colref(&q, 'n', 0, r->pk[0]);
    return sb_steal(&q);
}

static int build_documents(const struct schema_entry *e, const struct catalog *cat,
                           struct sqlgen *g, struct pgs_error *err)
{
    const struct schema_node *r = e->root;
    struct strbuf sel;

    sb_init(&sel);
    doc_select(&sel, r);
    g->doc_by_keys = doc_by_keys_query(sel.buf, cat, r, err);
    if (g->doc_by_keys == NULL)
        goto fail;
    /* a key range needs a single key column; doc_by_range stays NULL otherwise */
    if (r->npk == 1) {
        g->doc_by_range = doc_by_range_query(sel.buf, cat, r, err);
        if (g->doc_by_range == NULL)
            goto fail;
    }
    g->doc_all = xstrdup(sel.buf);
    g->doc_select = sb_steal(&sel);
    g->npk = r->npk;
    return 0;
fail:
    sb_free(&sel);
    return -1;
}

/* ------------------------------------------------------ reverse queries */

/*
 * FROM (SELECT DISTINCT * FROM unnest($1::text[], ... $<nparams>) AS u(v0, ...)) v
 * JOIN <table> <kind><id> ON <kind><id>.cols[i] = v.v<pidx[i]>::type_i
 * ("pidx" NULL: column i takes parameter i).
 */
static int values_join(struct strbuf *sb, const struct catalog *cat, const struct schema_node *n,
                       const char *schema, const char *table, char kind, int id, char **cols,
                       int ncols, const int *pidx, int nparams, struct pgs_error *err)
{
    sb_add(sb, " FROM (SELECT DISTINCT * FROM unnest(");
    for (int i = 0; i < nparams; i++)
        sb_printf(sb, "%s$%d::text[]", i ? ", " : "", i + 1);
    sb_add(sb, ") AS u(");
    for (int i = 0; i < nparams; i++)
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
        sb_printf(sb, " = v.v%d::%s", pidx ? pidx[i] : i, t);
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

static void select_root_keys(struct strbuf *sb, const struct schema_node *root, int k,
                             const char *from)
{
    sb_add(sb, "SELECT DISTINCT ");
    for (int i = 0; i < root->npk; i++) {
        if (i > 0)
            sb_add(sb, ", ");
        colref(sb, 'a', k, root->pk[i]);
        sb_add(sb, "::text");
    }
    sb_add(sb, from);
}

static char **copy_cols(char **cols, int n)
{
    char **out = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++)
        out[i] = xstrdup(cols[i]);
    return out;
}

/*
 * Rows of node "n" given by the values of its join columns (join.child_cols,
 * parameter pidx[i] for column i) -> the parent rows they hang from -> root
 * keys. The changed rows themselves are never read: after a delete (or a
 * move) they are gone, but their old values still lead to the old parent.
 */
static int reverse_from_join_values(struct strbuf *sb, const struct schema_entry *e,
                                    const struct catalog *cat, const struct schema_node *n,
                                    const int *pidx, int nparams, struct pgs_error *err)
{
    const struct schema_node *p = n->parent;
    struct strbuf from;
    int k;

    sb_init(&from);
    if (n->through_table != NULL) {
        /* changed child -> through rows pointing at it -> parent rows */
        if (values_join(&from, cat, n, n->through_schema, n->through_table, 'b', 0,
                        n->join.parent_cols, n->join.n, pidx, nparams, err) < 0)
            goto fail;
        sb_add(&from, " JOIN ");
        qualified(&from, p->schema, p->table);
        sb_add(&from, " a0 ON ");
        join_cond(&from, 'a', 0, n->through_join.parent_cols, 'b', 0, n->through_join.child_cols,
                  n->through_join.n);
    } else {
        if (values_join(&from, cat, n, p->schema, p->table, 'a', 0, n->join.parent_cols,
                        n->join.n, pidx, nparams, err) < 0)
            goto fail;
    }
    k = walk_up(&from, p, 0); /* before reading from.buf: it may move */
    select_root_keys(sb, e->root, k, from.buf);
    sb_free(&from);
    return 0;
fail:
    sb_free(&from);
    return -1;
}

static int build_reverse(const struct schema_entry *e, const struct catalog *cat,
                         const struct schema_node *n, struct sqlgen *g, struct pgs_error *err)
{
    const struct schema_node *p = n->parent;
    struct strbuf sb, from;
    int k;

    /* the node's own rows: their join values lead to the parent rows */
    sb_init(&sb);
    if (reverse_from_join_values(&sb, e, cat, n, NULL, n->join.n, err) < 0) {
        sb_free(&sb);
        return -1;
    }
    g->node_rev[n->id].sql = sb_steal(&sb);
    g->node_rev[n->id].in_cols = copy_cols(n->join.child_cols, n->join.n);
    g->node_rev[n->id].nin = n->join.n;

    if (n->through_table != NULL) {
        /* changed through row -> parent rows */
        sb_init(&from);
        if (values_join(&from, cat, n, p->schema, p->table, 'a', 0, n->through_join.parent_cols,
                        n->through_join.n, NULL, n->through_join.n, err) < 0) {
            sb_free(&from);
            return -1;
        }
        sb_init(&sb);
        k = walk_up(&from, p, 0);
        select_root_keys(&sb, e->root, k, from.buf);
        g->through_rev[n->id].sql = sb_steal(&sb);
        g->through_rev[n->id].in_cols = copy_cols(n->through_join.child_cols, n->through_join.n);
        g->through_rev[n->id].nin = n->through_join.n;
        sb_free(&from);
    }
    return 0;
}

/*
 * A view node "n" and its base table "b": the base table's changed rows
 * (their primary key values) -> root keys. Two parts, united:
 *  A. the view's rows that show those keys (same column names), walked up
 *     to the root: every row the change is now visible in;
 *  B. when the keys include the view node's own join columns (its primary
 *     key for a root view), those values lead to the parent without
 *     reading the view: the rows a delete, or an update that moved the row
 *     out of the view, took away.
 * Extra root keys only cost a document read; a missing one is a stale
 * document, so both parts are kept. NULL sql when the view does not show
 * the base table's key: the caller then re-indexes everything.
 */
static int build_base_reverse(const struct schema_entry *e, const struct catalog *cat,
                              const struct schema_node *n, int b, struct sqlgen_reverse *out,
                              struct pgs_error *err)
{
    const struct schema_base_table *bt = &n->bases[b];
    const struct catalog_table *view = n->cat_table;
    struct strbuf sb, from;
    int *pidx = NULL;
    int ok_b = 1, k;

    memset(out, 0, sizeof(*out));
    if (view == NULL || bt->npk == 0)
        return 0;
    for (int i = 0; i < bt->npk; i++)
        if (catalog_find_column(view, bt->pk[i]) == NULL)
            return 0;

    sb_init(&sb);
    sb_init(&from);
    /* A */
    if (values_join(&from, cat, n, n->schema, n->table, 'a', 0, bt->pk, bt->npk, NULL, bt->npk,
                    err) < 0)
        goto fail;
    k = walk_up(&from, n, 0);
    select_root_keys(&sb, e->root, k, from.buf);

    /* B */
    if (n->parent == NULL) {
        pidx = xcalloc((size_t)n->npk + 1, sizeof(int));
        for (int i = 0; i < n->npk && ok_b; i++)
            ok_b = (pidx[i] = str_index(bt->pk, bt->npk, n->pk[i])) >= 0;
        if (ok_b && n->npk > 0) {
            sb_add(&sb, " UNION SELECT DISTINCT ");
            for (int i = 0; i < n->npk; i++) {
                const char *t = column_type(cat, n, n->schema, n->table, n->pk[i], err);
                if (t == NULL)
                    goto fail;
                sb_printf(&sb, "%sv.v%d::%s::text", i ? ", " : "", pidx[i], t);
            }
            sb_add(&sb, " FROM (SELECT DISTINCT * FROM unnest(");
            for (int i = 0; i < bt->npk; i++)
                sb_printf(&sb, "%s$%d::text[]", i ? ", " : "", i + 1);
            sb_add(&sb, ") AS u(");
            for (int i = 0; i < bt->npk; i++)
                sb_printf(&sb, "%sv%d", i ? ", " : "", i);
            sb_add(&sb, ")) v");
        }
    } else {
        pidx = xcalloc((size_t)n->join.n + 1, sizeof(int));
        for (int i = 0; i < n->join.n && ok_b; i++)
            ok_b = (pidx[i] = str_index(bt->pk, bt->npk, n->join.child_cols[i])) >= 0;
        if (ok_b && n->join.n > 0) {
            sb_add(&sb, " UNION ");
            if (reverse_from_join_values(&sb, e, cat, n, pidx, bt->npk, err) < 0)
                goto fail;
        }
    }
    out->sql = sb_steal(&sb);
    out->in_cols = copy_cols(bt->pk, bt->npk);
    out->nin = bt->npk;
    sb_free(&from);
    free(pidx);
    return 0;
fail:
    sb_free(&sb);
    sb_free(&from);
    free(pidx);
    return -1;
}

int sqlgen_build(const struct schema_entry *e, const struct catalog *cat, struct sqlgen *out,
                 struct pgs_error *err)
{
    memset(out, 0, sizeof(*out));
    out->nnodes = e->nnodes;
    out->node_rev = xcalloc((size_t)e->nnodes, sizeof(struct sqlgen_reverse));
    out->through_rev = xcalloc((size_t)e->nnodes, sizeof(struct sqlgen_reverse));
    out->base_rev = xcalloc((size_t)e->nnodes, sizeof(struct sqlgen_reverse *));
    out->nbase_rev = xcalloc((size_t)e->nnodes, sizeof(int));
    if (e->root->npk == 0) {
        pgs_error_set(err, PGS_ERR_SCHEMA, "%s: root table \"%s.%s\" has no primary key",
                      e->root->jpath, e->root->schema, e->root->table);
        goto fail;
    }
    if (build_documents(e, cat, out, err) < 0)
        goto fail;
    for (int i = 0; i < e->nnodes; i++) {
        const struct schema_node *n = e->nodes[i];
        if (i > 0 && build_reverse(e, cat, n, out, err) < 0)
            goto fail;
        if (n->nbase_tables > 0 && n->bases != NULL) {
            out->base_rev[i] = xcalloc((size_t)n->nbase_tables, sizeof(struct sqlgen_reverse));
            out->nbase_rev[i] = n->nbase_tables;
            for (int b = 0; b < n->nbase_tables; b++)
                if (build_base_reverse(e, cat, n, b, &out->base_rev[i][b], err) < 0)
                    goto fail;
        }
    }
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
    memset(r, 0, sizeof(*r));
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
        if (g->base_rev && g->base_rev[i]) {
            for (int b = 0; b < g->nbase_rev[i]; b++)
                reverse_free(&g->base_rev[i][b]);
            free(g->base_rev[i]);
        }
    }
    free(g->node_rev);
    free(g->through_rev);
    free(g->base_rev);
    free(g->nbase_rev);
    memset(g, 0, sizeof(*g));
}
