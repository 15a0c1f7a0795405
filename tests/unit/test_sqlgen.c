/*
 * test_sqlgen.c - the generated SQL against catalogs built in memory:
 * golden fragments of the document and reverse queries, quoting of names
 * that need it, the 50-pair json_build_object chunking, reverse queries of
 * a depth-4 tree walking to the root, views, transforms, composite keys and
 * self-references. The SQL itself runs in tests/integration/test_20_schemas.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "schema.h"
#include "sqlgen.h"
#include "strbuf.h"

/* ------------------------------------------------------------- helpers */

struct fixture {
    struct schema s;
    struct catalog cat;
    struct sqlgen g;
    struct schema_entry *e;
};

/* Parse "json", resolve it against "cat" (taken over) and generate. */
static void build(struct fixture *f, const char *json, struct catalog *cat)
{
    struct schema_problems p = {0};
    struct pgs_error err = {0};

    memset(f, 0, sizeof(*f));
    f->cat = *cat;
    if (schema_parse_string(json, "t.json", &f->s, &p) != 0 ||
        schema_resolve(&f->s, &f->cat, &p) != 0) {
        for (int i = 0; i < p.n; i++)
            fprintf(stderr, "  problem: %s\n", p.items[i]);
        fail_msg("schema does not resolve");
    }
    schema_problems_free(&p);
    f->e = &f->s.entries[0];
    if (sqlgen_build(f->e, &f->cat, &f->g, &err) != 0)
        fail_msg("sqlgen_build: %s", err.msg);
}

static void done(struct fixture *f)
{
    sqlgen_free(&f->g);
    schema_free(&f->s);
    catalog_free(&f->cat);
}

static void expect_in(const char *sql, const char *frag)
{
    if (sql == NULL || strstr(sql, frag) == NULL) {
        fprintf(stderr, "  missing: %s\n  in:      %s\n", frag, sql ? sql : "(null)");
        fail();
    }
}

static void expect_not_in(const char *sql, const char *frag)
{
    if (sql != NULL && strstr(sql, frag) != NULL) {
        fprintf(stderr, "  unexpected: %s\n  in:         %s\n", frag, sql);
        fail();
    }
}

static int count_of(const char *s, const char *frag)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, frag)) != NULL; p += strlen(frag))
        n++;
    return n;
}

/* The book example: book > authors (through book_author), and a publisher. */
static void book_catalog(struct catalog *c)
{
    memset(c, 0, sizeof(*c));
    catalog_add_table(c, "public", "book", 'r',
                      "isbn character varying(20); title text; publisher_id integer", "isbn");
    catalog_add_table(c, "public", "author", 'r', "id integer; name text", "id");
    catalog_add_table(c, "public", "book_author", 'r',
                      "id integer; book_isbn character varying(20); author_id integer", "id");
    catalog_add_table(c, "public", "publisher", 'r', "id integer; name text", "id");
    assert_int_equal(catalog_add_fk(c, "ba_book", "book_author", "book_isbn", "book", "isbn", 1),
                     0);
    assert_int_equal(catalog_add_fk(c, "ba_author", "book_author", "author_id", "author", "id", 0),
                     0);
    assert_int_equal(catalog_add_fk(c, "b_pub", "book", "publisher_id", "publisher", "id", 0), 0);
}

/* -------------------------------------------------------------- tests */

static void test_book_golden_fragments(void **state)
{
    (void)state;
    struct catalog c;
    struct fixture f;
    book_catalog(&c);
    build(&f,
          "[{\"database\": \"d\", \"nodes\": {\"table\": \"book\", \"columns\": [\"isbn\", "
          "\"title\"], \"children\": ["
          "{\"table\": \"author\", \"columns\": [\"name\"], \"label\": \"authors\","
          " \"relationship\": {\"variant\": \"scalar\", \"type\": \"one_to_many\","
          " \"through_tables\": [\"book_author\"]}},"
          "{\"table\": \"publisher\", \"columns\": [\"name\"], \"relationship\": "
          "{\"variant\": \"object\", \"type\": \"one_to_one\"}}]}}]",
          &c);
    const struct sqlgen *g = &f.g;
    assert_int_equal(g->npk, 1);
    expect_in(g->doc_all, "SELECT n0.\"isbn\"::text AS _id, json_build_object('isbn', "
                          "n0.\"isbn\", 'title', n0.\"title\", 'authors', ");
    /* a stable order: the link table's key, then the child's */
    expect_in(g->doc_all, "(SELECT json_agg(n1.\"name\" ORDER BY t1.\"id\", n1.\"id\") FROM "
                          "\"public\".\"book_author\" t1 JOIN \"public\".\"author\" n1 ON "
                          "n1.\"id\" = t1.\"author_id\" WHERE t1.\"book_isbn\" = n0.\"isbn\")");
    expect_in(g->doc_all, "'publisher', (SELECT json_build_object('name', n2.\"name\") FROM "
                          "\"public\".\"publisher\" n2 WHERE n2.\"id\" = n0.\"publisher_id\" "
                          "ORDER BY n2.\"id\" LIMIT 1)");
    expect_in(g->doc_all, " AS doc, n0.\"isbn\"::text AS k0 FROM \"public\".\"book\" n0");
    expect_in(g->doc_by_keys,
              "WHERE n0.\"isbn\" = ANY($1::text[]::character varying(20)[])");
    expect_in(g->doc_by_range, "WHERE ($1::text IS NULL OR n0.\"isbn\" >= "
                               "$1::text::character varying(20)) AND ($2::text IS NULL OR "
                               "n0.\"isbn\" < $2::text::character varying(20)) ORDER BY "
                               "n0.\"isbn\"");
    assert_string_equal(g->doc_select, g->doc_all);

    assert_null(g->node_rev[0].sql);
    assert_string_equal(g->node_rev[1].sql,
                        "SELECT DISTINCT a0.\"isbn\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"book_author\" b0 ON "
                        "b0.\"author_id\" = v.v0::integer JOIN \"public\".\"book\" a0 ON "
                        "a0.\"isbn\" = b0.\"book_isbn\"");
    assert_int_equal(g->node_rev[1].nin, 1);
    assert_string_equal(g->node_rev[1].in_cols[0], "id");
    assert_string_equal(g->through_rev[1].sql,
                        "SELECT DISTINCT a0.\"isbn\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"book\" a0 ON "
                        "a0.\"isbn\" = v.v0::character varying(20)");
    assert_string_equal(g->through_rev[1].in_cols[0], "book_isbn");
    /* the parent holds the key: the publisher's id finds books by publisher_id */
    assert_string_equal(g->node_rev[2].sql,
                        "SELECT DISTINCT a0.\"isbn\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"book\" a0 ON "
                        "a0.\"publisher_id\" = v.v0::integer");
    assert_null(g->through_rev[2].sql);
    assert_null(g->base_rev[0]);
    done(&f);
}

static void test_weird_identifiers_are_quoted(void **state)
{
    (void)state;
    struct catalog c;
    struct fixture f;
    memset(&c, 0, sizeof(c));
    int t = catalog_add_table(&c, "Sch\"ema Ä", "Or der", 'r',
                              "Id integer; Total_Sum numeric; na\"me text", "Id");
    /* catalog_add_table splits names at the first space: rename by hand */
    free(c.tables[t].cols[1].name);
    c.tables[t].cols[1].name = strdup("Total Sum");
    catalog_add_table(&c, "public", "lïne", 'r', "id integer; Or\"der integer; Qty text", "id");
    assert_int_equal(catalog_add_fk(&c, "f", "lïne", "Or\"der", "Sch\"ema Ä.Or der", "Id", 1), 0);
    build(&f,
          "[{\"database\": \"d\", \"nodes\": {\"schema\": \"Sch\\\"ema Ä\", \"table\": \"Or der\","
          " \"columns\": [\"Id\", \"Total Sum\", \"na\\\"me\"], \"children\": [{\"table\": \"lïne\","
          " \"label\": \"it's\", \"columns\": [\"Qty\"], \"relationship\": {\"variant\": \"object\","
          " \"type\": \"one_to_many\"}}]}}]",
          &c);
    const struct sqlgen *g = &f.g;
    expect_in(g->doc_all, "FROM \"Sch\"\"ema Ä\".\"Or der\" n0");
    expect_in(g->doc_all, "'Total Sum', n0.\"Total Sum\"");
    expect_in(g->doc_all, "'na\"me', n0.\"na\"\"me\"");
    expect_in(g->doc_all, "'it''s', (SELECT json_agg(json_build_object('Qty', n1.\"Qty\") "
                          "ORDER BY n1.\"id\") FROM \"public\".\"lïne\" n1 WHERE "
                          "n1.\"Or\"\"der\" = n0.\"Id\")");
    expect_in(g->doc_by_keys, "n0.\"Id\" = ANY($1::text[]::integer[])");
    assert_string_equal(g->node_rev[1].sql,
                        "SELECT DISTINCT a0.\"Id\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"Sch\"\"ema Ä\".\"Or der\" a0 ON "
                        "a0.\"Id\" = v.v0::integer");
    assert_string_equal(g->node_rev[1].in_cols[0], "Or\"der");
    done(&f);
}

/* A table with "ncols" columns c1..cN, all in the document. */
static void wide(struct fixture *f, int ncols)
{
    struct catalog c;
    struct strbuf cols, json;
    memset(&c, 0, sizeof(c));
    sb_init(&cols);
    sb_init(&json);
    sb_add(&cols, "id integer");
    sb_add(&json, "[{\"database\": \"d\", \"nodes\": {\"table\": \"w\", \"columns\": [\"id\"");
    for (int i = 1; i < ncols; i++) {
        sb_printf(&cols, "; c%d text", i);
        sb_printf(&json, ", \"c%d\"", i);
    }
    sb_add(&json, "]}}]");
    catalog_add_table(&c, "public", "w", 'r', cols.buf, "id");
    build(f, json.buf, &c);
    sb_free(&cols);
    sb_free(&json);
}

static void test_json_build_object_chunks_of_50_pairs(void **state)
{
    (void)state;
    struct fixture f;

    wide(&f, 50);
    assert_int_equal(count_of(f.g.doc_all, "json_build_object("), 1);
    expect_not_in(f.g.doc_all, "::jsonb");
    done(&f);

    wide(&f, 51);
    assert_int_equal(count_of(f.g.doc_all, "json_build_object("), 2);
    expect_in(f.g.doc_all, "AS _id, (json_build_object('id', n0.\"id\", ");
    expect_in(f.g.doc_all, "'c49', n0.\"c49\")::jsonb || json_build_object('c50', n0.\"c50\")"
                           "::jsonb)::json AS doc");
    done(&f);

    wide(&f, 120);
    assert_int_equal(count_of(f.g.doc_all, "json_build_object("), 3);
    assert_int_equal(count_of(f.g.doc_all, ")::jsonb || json_build_object("), 2);
    /* no call gets more than 100 arguments */
    expect_in(f.g.doc_all, "'c99', n0.\"c99\")::jsonb || json_build_object('c100'");
    done(&f);
}

/*
 * book > publisher > city > country > continent (depth 4), and
 * book > authors (through book_author) > city: every reverse query ends at
 * the root, through every level in between.
 */
static void test_depth4_reverse_walks_to_root(void **state)
{
    (void)state;
    struct catalog c;
    struct fixture f;
    memset(&c, 0, sizeof(c));
    catalog_add_table(&c, "public", "book", 'r', "isbn text; publisher_id integer", "isbn");
    catalog_add_table(&c, "public", "publisher", 'r', "id integer; name text; city_id integer",
                      "id");
    catalog_add_table(&c, "public", "city", 'r', "id integer; name text; country_id integer",
                      "id");
    catalog_add_table(&c, "geo", "country", 'r', "id integer; name text; continent_id integer",
                      "id");
    catalog_add_table(&c, "geo", "continent", 'r', "id integer; name text", "id");
    catalog_add_table(&c, "public", "author", 'r', "id integer; city_id integer", "id");
    catalog_add_table(&c, "public", "book_author", 'r', "id integer; isbn text; aid integer",
                      "id");
    catalog_add_fk(&c, "1", "book", "publisher_id", "publisher", "id", 0);
    catalog_add_fk(&c, "2", "publisher", "city_id", "city", "id", 0);
    catalog_add_fk(&c, "3", "city", "country_id", "geo.country", "id", 0);
    catalog_add_fk(&c, "4", "geo.country", "continent_id", "geo.continent", "id", 0);
    catalog_add_fk(&c, "5", "book_author", "isbn", "book", "isbn", 0);
    catalog_add_fk(&c, "6", "book_author", "aid", "author", "id", 0);
    catalog_add_fk(&c, "7", "author", "city_id", "city", "id", 0);
    build(&f,
          "[{\"database\": \"d\", \"nodes\": {\"table\": \"book\", \"children\": ["
          "{\"table\": \"publisher\", \"relationship\": {\"variant\": \"object\", \"type\": "
          "\"one_to_one\"}, \"children\": [{\"table\": \"city\", \"relationship\": {\"variant\": "
          "\"object\", \"type\": \"one_to_one\"}, \"children\": [{\"schema\": \"geo\", \"table\": "
          "\"country\", \"relationship\": {\"variant\": \"object\", \"type\": \"one_to_one\"}, "
          "\"children\": [{\"schema\": \"geo\", \"table\": \"continent\", \"columns\": [\"name\"],"
          " \"relationship\": {\"variant\": \"scalar\", \"type\": \"one_to_one\"}}]}]}]},"
          "{\"table\": \"author\", \"relationship\": {\"variant\": \"object\", \"type\": "
          "\"one_to_many\", \"through_tables\": [\"book_author\"]}, \"children\": [{\"table\": "
          "\"city\", \"label\": \"home\", \"relationship\": {\"variant\": \"object\", \"type\": "
          "\"one_to_one\"}}]}]}}]",
          &c);
    const struct sqlgen *g = &f.g;
    /* ids: 0 book, 1 publisher, 2 city, 3 country, 4 continent, 5 author, 6 home */
    assert_int_equal(g->nnodes, 7);
    for (int i = 1; i < g->nnodes; i++) {
        const struct schema_node *n = f.e->nodes[i];
        int depth = 0;
        for (const struct schema_node *p = n->parent; p != NULL; p = p->parent)
            depth++;
        char root[64];
        /* the root is a<depth - 1>: one alias per level above the changed row */
        snprintf(root, sizeof(root), "SELECT DISTINCT a%d.\"isbn\"::text FROM ", depth - 1);
        assert_non_null(g->node_rev[i].sql);
        assert_true(strncmp(g->node_rev[i].sql, root, strlen(root)) == 0);
        snprintf(root, sizeof(root), "JOIN \"public\".\"book\" a%d ON", depth - 1);
        expect_in(g->node_rev[i].sql, root);
        /* the inputs are the changed table's join columns */
        assert_int_equal(g->node_rev[i].nin, n->join.n);
        for (int k = 0; k < n->join.n; k++)
            assert_string_equal(g->node_rev[i].in_cols[k], n->join.child_cols[k]);
    }
    assert_string_equal(g->node_rev[4].sql,
                        "SELECT DISTINCT a3.\"isbn\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"geo\".\"country\" a0 ON "
                        "a0.\"continent_id\" = v.v0::integer JOIN \"public\".\"city\" a1 ON "
                        "a1.\"country_id\" = a0.\"id\" JOIN \"public\".\"publisher\" a2 ON "
                        "a2.\"city_id\" = a1.\"id\" JOIN \"public\".\"book\" a3 ON "
                        "a3.\"publisher_id\" = a2.\"id\"");
    /* under a through table: the walk passes the link rows */
    assert_string_equal(g->node_rev[6].sql,
                        "SELECT DISTINCT a1.\"isbn\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"author\" a0 ON "
                        "a0.\"city_id\" = v.v0::integer JOIN \"public\".\"book_author\" b1 ON "
                        "b1.\"aid\" = a0.\"id\" JOIN \"public\".\"book\" a1 ON "
                        "a1.\"isbn\" = b1.\"isbn\"");
    /* every column a reverse query reads is carried by the change records */
    struct schema_table_ref *t;
    int nt;
    assert_int_equal(schema_entry_tables(f.e, &t, &nt), 0);
    for (int i = 1; i < g->nnodes; i++) {
        const struct schema_node *n = f.e->nodes[i];
        for (int r = 0; r < 2; r++) {
            const struct sqlgen_reverse *rev = r ? &g->through_rev[i] : &g->node_rev[i];
            const char *schema = r ? n->through_schema : n->schema;
            const char *table = r ? n->through_table : n->table;
            if (rev->sql == NULL)
                continue;
            for (int k = 0; k < rev->nin; k++) {
                int found = 0;
                for (int x = 0; x < nt; x++) {
                    if (strcmp(t[x].schema, schema) || strcmp(t[x].table, table))
                        continue;
                    for (int y = 0; y < t[x].nlink; y++)
                        found |= !strcmp(t[x].link_cols[y], rev->in_cols[k]);
                }
                assert_true(found);
            }
        }
    }
    schema_tables_free(t, nt);
    done(&f);
}

static void test_composite_root_key(void **state)
{
    (void)state;
    struct catalog c;
    struct fixture f;
    memset(&c, 0, sizeof(c));
    catalog_add_table(&c, "public", "edition", 'r', "isbn text; no integer; title text",
                      "isbn,no");
    catalog_add_table(&c, "public", "line", 'r', "id integer; ed_isbn text; ed_no integer", "id");
    catalog_add_fk(&c, "f", "line", "ed_isbn,ed_no", "edition", "isbn,no", 1);
    build(&f,
          "[{\"database\": \"d\", \"nodes\": {\"table\": \"edition\", \"children\": [{\"table\": "
          "\"line\", \"relationship\": {\"variant\": \"object\", \"type\": \"one_to_many\"}}]}}]",
          &c);
    const struct sqlgen *g = &f.g;
    assert_int_equal(g->npk, 2);
    expect_in(g->doc_all, "SELECT concat_ws('|', n0.\"isbn\"::text, n0.\"no\"::text) AS _id");
    expect_in(g->doc_all, "n0.\"isbn\"::text AS k0, n0.\"no\"::text AS k1");
    expect_in(g->doc_by_keys, "JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS "
                              "u(k0, k1)) k ON n0.\"isbn\" = k.k0::text AND n0.\"no\" = "
                              "k.k1::integer");
    assert_null(g->doc_by_range);
    assert_string_equal(g->node_rev[1].sql,
                        "SELECT DISTINCT a0.\"isbn\"::text, a0.\"no\"::text FROM (SELECT "
                        "DISTINCT * FROM unnest($1::text[], $2::text[]) AS u(v0, v1)) v JOIN "
                        "\"public\".\"edition\" a0 ON a0.\"isbn\" = v.v0::text AND a0.\"no\" = "
                        "v.v1::integer");
    assert_int_equal(g->node_rev[1].nin, 2);
    assert_string_equal(g->node_rev[1].in_cols[1], "ed_no");
    done(&f);
}

static void test_views_base_tables(void **state)
{
    (void)state;
    struct catalog c;
    struct fixture f;
    memset(&c, 0, sizeof(c));
    catalog_add_table(&c, "public", "book", 'r', "id integer; title text; pub_id integer", "id");
    catalog_add_table(&c, "public", "publisher", 'r', "id integer; name text", "id");
    catalog_add_table(&c, "public", "sale", 'r', "id integer; book_id integer; qty integer",
                      "id");
    catalog_add_table(&c, "public", "book_view", 'v', "id integer; title text; pub_id integer",
                      "");
    catalog_add_table(&c, "public", "pub_view", 'v', "id integer; name text", "");
    catalog_add_table(&c, "public", "sales_mv", 'm', "book_id integer; total integer", "");
    build(&f,
          "[{\"database\": \"d\", \"nodes\": {\"table\": \"book_view\", \"primary_key\": [\"id\"],"
          " \"base_tables\": [\"book\"], \"children\": ["
          "{\"table\": \"pub_view\", \"primary_key\": [\"id\"], \"base_tables\": [\"publisher\"],"
          " \"relationship\": {\"variant\": \"object\", \"type\": \"one_to_one\", "
          "\"foreign_key\": {\"child\": [\"id\"], \"parent\": [\"pub_id\"]}}},"
          "{\"table\": \"sales_mv\", \"primary_key\": [\"book_id\"], \"base_tables\": [\"sale\"],"
          " \"relationship\": {\"variant\": \"scalar\", \"type\": \"one_to_one\", "
          "\"foreign_key\": {\"child\": [\"book_id\"], \"parent\": [\"id\"]}}}]}}]",
          &c);
    const struct sqlgen *g = &f.g;
    assert_int_equal(g->nbase_rev[0], 1);
    /* root view: the view's rows, and the keys themselves (a row that left the view) */
    assert_string_equal(g->base_rev[0][0].sql,
                        "SELECT DISTINCT a0.\"id\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"book_view\" a0 ON "
                        "a0.\"id\" = v.v0::integer UNION SELECT DISTINCT v.v0::integer::text "
                        "FROM (SELECT DISTINCT * FROM unnest($1::text[]) AS u(v0)) v");
    assert_string_equal(g->base_rev[0][0].in_cols[0], "id");
    /* child view: the view's rows walked up, and its join values to the parent */
    assert_string_equal(g->base_rev[1][0].sql,
                        "SELECT DISTINCT a1.\"id\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"pub_view\" a0 ON "
                        "a0.\"id\" = v.v0::integer JOIN \"public\".\"book_view\" a1 ON "
                        "a1.\"pub_id\" = a0.\"id\" UNION SELECT DISTINCT a0.\"id\"::text FROM "
                        "(SELECT DISTINCT * FROM unnest($1::text[]) AS u(v0)) v JOIN "
                        "\"public\".\"book_view\" a0 ON a0.\"pub_id\" = v.v0::integer");
    /* the materialized view does not show sale's key: no keyed reverse query */
    assert_int_equal(g->nbase_rev[2], 1);
    assert_null(g->base_rev[2][0].sql);
    assert_int_equal(g->base_rev[2][0].nin, 0);
    done(&f);
}

static void test_transforms(void **state)
{
    (void)state;
    struct catalog c;
    struct fixture f;
    memset(&c, 0, sizeof(c));
    catalog_add_table(&c, "public", "item", 'r',
                      "id integer; code text; name text; data jsonb; maker_id integer", "id");
    catalog_add_table(&c, "public", "maker", 'r', "id integer; name text", "id");
    catalog_add_fk(&c, "f", "item", "maker_id", "maker", "id", 0);
    build(&f,
          "[{\"database\": \"d\", \"nodes\": {\"table\": \"item\", \"columns\": [\"id\", \"code\","
          " \"name\", \"data->dims->>w\", \"data->'a b'\"], \"transform\": {"
          "\"replace\": {\"code\": {\"-\": \"_\"}},"
          "\"rename\": {\"name\": \"title\", \"data_dims_w\": \"width\", \"maker\": \"made_by\"},"
          "\"concat\": [{\"columns\": [\"title\", \"nope\"], \"destination\": \"label\"},"
          "{\"columns\": [\"code\", \"label\"], \"destination\": \"code\", \"delimiter\": \":\"}]},"
          "\"children\": [{\"table\": \"maker\", \"columns\": [\"name\"], \"relationship\": "
          "{\"variant\": \"scalar\", \"type\": \"one_to_one\"}}]}}]",
          &c);
    const char *sql = f.g.doc_all;
    /* PGSync's names of JSON path fields: column and keys joined with "_" */
    assert_string_equal(f.e->root->fields[3].key, "width");
    assert_string_equal(f.e->root->fields[4].key, "data_a b");
    expect_in(sql, "'width', n0.\"data\"->'dims'->>'w'");
    expect_in(sql, "'data_a b', n0.\"data\"->'a b'");
    /* replace works on the JSON string value */
    expect_in(sql, "WHEN 'string' THEN to_json(replace(r.v #>> '{}', '-', '_'))");
    /* a concat into a field's own key replaces it: "code" once */
    assert_int_equal(count_of(sql, "'code', "), 1);
    expect_in(sql, "'label', concat_ws('', ");
    /* a name that is no document key is taken literally, as PGSync does */
    expect_in(sql, ", 'nope')");
    expect_in(sql, "'code', concat_ws(':', ");
    /* the parent's rename names the child */
    expect_in(sql, "'made_by', (SELECT n1.\"name\" FROM");
    expect_not_in(sql, "'maker'");
    assert_string_equal(sqlgen_child_key(f.e->nodes[1]), "made_by");
    done(&f);
}

/* node > parent (ancestors, explicit key) > parent, and node > children (catalog key) */
static void test_self_reference(void **state)
{
    (void)state;
    struct catalog c;
    struct fixture f;
    memset(&c, 0, sizeof(c));
    catalog_add_table(&c, "public", "node", 'r', "id integer; name text; parent_id integer", "id");
    catalog_add_fk(&c, "f", "node", "parent_id", "node", "id", 1);
    build(&f,
          "[{\"database\": \"d\", \"nodes\": {\"table\": \"node\", \"children\": ["
          "{\"table\": \"node\", \"label\": \"parent\", \"relationship\": {\"variant\": "
          "\"object\", \"type\": \"one_to_one\", \"foreign_key\": {\"child\": [\"id\"], "
          "\"parent\": [\"parent_id\"]}}, \"children\": [{\"table\": \"node\", \"label\": "
          "\"parent\", \"columns\": [\"name\"], \"relationship\": {\"variant\": \"scalar\", "
          "\"type\": \"one_to_one\", \"foreign_key\": {\"child\": [\"id\"], \"parent\": "
          "[\"parent_id\"]}}}]},"
          "{\"table\": \"node\", \"label\": \"children\", \"columns\": [\"name\"], "
          "\"relationship\": {\"variant\": \"scalar\", \"type\": \"one_to_many\"}}]}}]",
          &c);
    const struct sqlgen *g = &f.g;
    expect_in(g->doc_all, "'parent', (SELECT json_build_object('id', n1.\"id\", 'name', "
                          "n1.\"name\", 'parent_id', n1.\"parent_id\", 'parent', (SELECT "
                          "n2.\"name\" FROM \"public\".\"node\" n2 WHERE n2.\"id\" = "
                          "n1.\"parent_id\"");
    expect_in(g->doc_all, "'children', (SELECT json_agg(n3.\"name\" ORDER BY n3.\"id\") FROM "
                          "\"public\".\"node\" n3 WHERE n3.\"parent_id\" = n0.\"id\")");
    /* a changed row: the documents of its children (parent), grandchildren, and its parent */
    assert_string_equal(g->node_rev[1].sql,
                        "SELECT DISTINCT a0.\"id\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"node\" a0 ON "
                        "a0.\"parent_id\" = v.v0::integer");
    assert_string_equal(g->node_rev[1].in_cols[0], "id");
    assert_string_equal(g->node_rev[2].sql,
                        "SELECT DISTINCT a1.\"id\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"node\" a0 ON "
                        "a0.\"parent_id\" = v.v0::integer JOIN \"public\".\"node\" a1 ON "
                        "a1.\"parent_id\" = a0.\"id\"");
    assert_string_equal(g->node_rev[3].sql,
                        "SELECT DISTINCT a0.\"id\"::text FROM (SELECT DISTINCT * FROM "
                        "unnest($1::text[]) AS u(v0)) v JOIN \"public\".\"node\" a0 ON "
                        "a0.\"id\" = v.v0::integer");
    assert_string_equal(g->node_rev[3].in_cols[0], "parent_id");
    /* one table, four uses: its records carry both columns */
    struct schema_table_ref *t;
    int nt;
    assert_int_equal(schema_entry_tables(f.e, &t, &nt), 0);
    assert_int_equal(nt, 1);
    assert_int_equal(t[0].nlink, 2);
    assert_string_equal(t[0].link_cols[0], "id");
    assert_string_equal(t[0].link_cols[1], "parent_id");
    schema_tables_free(t, nt);
    done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_book_golden_fragments),
        cmocka_unit_test(test_weird_identifiers_are_quoted),
        cmocka_unit_test(test_json_build_object_chunks_of_50_pairs),
        cmocka_unit_test(test_depth4_reverse_walks_to_root),
        cmocka_unit_test(test_composite_root_key),
        cmocka_unit_test(test_views_base_tables),
        cmocka_unit_test(test_transforms),
        cmocka_unit_test(test_self_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
