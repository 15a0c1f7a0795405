/*
 * test_schema.c - schema.json parsing (every structural problem, with its
 * place) and resolution against a catalog built in memory: tables, columns,
 * foreign keys in both directions, through tables, link columns.
 * PGS_TEST_PGHOST/PGS_TEST_PGPORT (optional) also load a real catalog.
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
#include "log.h"
#include "schema.h"

#define FIXTURES "tests/fixtures/schema/"

static const char *book_json =
    "[{\"database\": \"book\", \"index\": \"book\",\n"
    "  \"nodes\": {\"table\": \"book\", \"columns\": [\"isbn\", \"title\", \"description\"],\n"
    "    \"children\": [{\"table\": \"author\", \"columns\": [\"name\"], \"label\": \"authors\",\n"
    "       \"relationship\": {\"variant\": \"scalar\", \"type\": \"one_to_many\",\n"
    "                        \"through_tables\": [\"book_author\"]}}]}}]\n";

/* ------------------------------------------------------------- helpers */

static void dump_problems(const struct schema_problems *p)
{
    for (int i = 0; i < p->n; i++)
        fprintf(stderr, "  problem: %s\n", p->items[i]);
}

/* Does some problem contain every one of the NULL-terminated strings? */
static int has_problem(const struct schema_problems *p, ...)
{
    for (int i = 0; i < p->n; i++) {
        va_list ap;
        const char *s;
        int all = 1;
        va_start(ap, p);
        while ((s = va_arg(ap, const char *)) != NULL)
            if (strstr(p->items[i], s) == NULL)
                all = 0;
        va_end(ap);
        if (all)
            return 1;
    }
    return 0;
}

static void parse_ok(const char *text, struct schema *s)
{
    struct schema_problems p = {0};
    int rc = schema_parse_string(text, "t.json", s, &p);
    if (rc != 0)
        dump_problems(&p);
    assert_int_equal(rc, 0);
    assert_int_equal(p.n, 0);
    schema_problems_free(&p);
}

/* Parsing must fail; the problems stay in "p" for the caller to check. */
static void parse_bad(const char *text, struct schema_problems *p)
{
    struct schema s;
    memset(p, 0, sizeof(*p));
    assert_int_equal(schema_parse_string(text, "t.json", &s, p), -1);
    assert_true(p->n > 0);
    assert_null(s.entries);
    schema_free(&s);
}

/* One bad schema, one expected problem (all substrings in one line). */
#define EXPECT_PROBLEM(text, ...)                                                                  \
    do {                                                                                           \
        struct schema_problems p_;                                                                 \
        parse_bad(text, &p_);                                                                      \
        if (!has_problem(&p_, __VA_ARGS__, NULL))                                                  \
            dump_problems(&p_);                                                                    \
        assert_true(has_problem(&p_, __VA_ARGS__, NULL));                                          \
        schema_problems_free(&p_);                                                                 \
    } while (0)

/*
 * The test database:
 *   book(isbn pk, title, description, publisher_id -> publisher, data jsonb)
 *   author(id pk, name), book_author(id pk, book_isbn -> book, author_id -> author)
 *   publisher(id pk, name, city_id -> city), city(id pk, name, country_id -> country)
 *   country(id pk, name), review(id pk, book_isbn -> book, body)
 *   rating(id pk, book_isbn -> book, other_isbn -> book): two keys to book
 *   category(id pk, name, parent_id -> category), shelf(code, name): no pk
 *   book_view (view), edition(book_isbn, no int) with a composite key to lines
 */
static void build_catalog(struct catalog *c)
{
    memset(c, 0, sizeof(*c));
    catalog_add_table(c, "public", "book", 'r',
                      "isbn character varying(20); title text; description text; "
                      "publisher_id integer; data jsonb",
                      "isbn");
    catalog_add_table(c, "public", "author", 'r', "id integer; name text", "id");
    catalog_add_table(c, "public", "book_author", 'r',
                      "id integer; book_isbn character varying(20); author_id integer", "id");
    catalog_add_table(c, "public", "publisher", 'r', "id integer; name text; city_id integer",
                      "id");
    catalog_add_table(c, "public", "city", 'r', "id integer; name text; country_id integer", "id");
    catalog_add_table(c, "public", "country", 'r', "id integer; name text", "id");
    catalog_add_table(c, "public", "review", 'r', "id integer; book_isbn text; body text", "id");
    catalog_add_table(c, "public", "rating", 'r',
                      "id integer; book_isbn text; other_isbn text; stars integer", "id");
    catalog_add_table(c, "public", "category", 'r', "id integer; name text; parent_id integer",
                      "id");
    catalog_add_table(c, "public", "shelf", 'r', "code text; name text", "");
    catalog_add_table(c, "public", "book_view", 'v', "isbn text; title text", "");
    catalog_add_table(c, "public", "edition", 'r', "isbn text; no integer; year integer",
                      "isbn,no");
    catalog_add_table(c, "public", "line", 'r', "id integer; ed_isbn text; ed_no integer; txt text",
                      "id");
    catalog_add_table(c, "store", "book", 'r', "isbn text; price numeric(10,2)", "isbn");
    assert_int_equal(catalog_add_fk(c, "book_publisher_id_fkey", "book", "publisher_id",
                                    "publisher", "id", 1), 0);
    assert_int_equal(catalog_add_fk(c, "book_author_book_isbn_fkey", "book_author", "book_isbn",
                                    "book", "isbn", 1), 0);
    assert_int_equal(catalog_add_fk(c, "book_author_author_id_fkey", "book_author", "author_id",
                                    "author", "id", 0), 0);
    assert_int_equal(catalog_add_fk(c, "publisher_city_id_fkey", "publisher", "city_id", "city",
                                    "id", 0), 0);
    assert_int_equal(catalog_add_fk(c, "city_country_id_fkey", "city", "country_id", "country",
                                    "id", 0), 0);
    assert_int_equal(catalog_add_fk(c, "review_book_isbn_fkey", "review", "book_isbn", "book",
                                    "isbn", 0), 0);
    assert_int_equal(catalog_add_fk(c, "rating_book_isbn_fkey", "rating", "book_isbn", "book",
                                    "isbn", 0), 0);
    assert_int_equal(catalog_add_fk(c, "rating_other_isbn_fkey", "rating", "other_isbn", "book",
                                    "isbn", 0), 0);
    assert_int_equal(catalog_add_fk(c, "category_parent_id_fkey", "category", "parent_id",
                                    "category", "id", 0), 0);
    assert_int_equal(catalog_add_fk(c, "line_edition_fkey", "line", "ed_isbn,ed_no", "edition",
                                    "isbn,no", 1), 0);
}

static void resolve_ok(const char *text, struct schema *s, struct catalog *c)
{
    struct schema_problems p = {0};
    parse_ok(text, s);
    build_catalog(c);
    int rc = schema_resolve(s, c, &p);
    if (rc != 0)
        dump_problems(&p);
    assert_int_equal(rc, 0);
    schema_problems_free(&p);
}

/* Resolving must fail with a problem holding every substring. */
static void resolve_bad(const char *text, ...)
{
    struct schema s;
    struct catalog c;
    struct schema_problems p = {0};
    va_list ap;
    const char *want;

    parse_ok(text, &s);
    build_catalog(&c);
    assert_int_equal(schema_resolve(&s, &c, &p), -1);
    va_start(ap, text);
    while ((want = va_arg(ap, const char *)) != NULL) {
        int found = 0;
        for (int i = 0; i < p.n; i++)
            if (strstr(p.items[i], want) != NULL)
                found = 1;
        if (!found) {
            fprintf(stderr, "missing \"%s\" in:\n", want);
            dump_problems(&p);
        }
        assert_true(found);
    }
    va_end(ap);
    schema_problems_free(&p);
    schema_free(&s);
    catalog_free(&c);
}

static void assert_strv(char **v, int n, const char *csv)
{
    char buf[512] = "";
    for (int i = 0; i < n; i++) {
        strcat(buf, i ? "," : "");
        strcat(buf, v[i]);
    }
    assert_string_equal(buf, csv);
}

/* ----------------------------------------------------------- parse: good */

static void test_parse_book_example(void **state)
{
    (void)state;
    struct schema s;
    parse_ok(book_json, &s);
    assert_int_equal(s.nentries, 1);
    struct schema_entry *e = &s.entries[0];
    assert_string_equal(e->database, "book");
    assert_string_equal(e->index, "book");
    assert_string_equal(e->jpath, "$[0]");
    assert_int_equal(e->nnodes, 2);
    struct schema_node *r = e->root, *a = r->children[0];
    assert_ptr_equal(e->nodes[0], r);
    assert_ptr_equal(e->nodes[1], a);
    assert_string_equal(r->schema, "public");
    assert_string_equal(r->label, "book");
    assert_string_equal(r->jpath, "$[0].nodes");
    assert_int_equal(r->id, 0);
    assert_null(r->parent);
    assert_int_equal(r->line, 2);
    assert_int_equal(r->column, 12);
    assert_int_equal(r->nfields, 3);
    assert_string_equal(r->fields[1].column, "title");
    assert_string_equal(r->fields[1].key, "title");
    assert_int_equal(a->id, 1);
    assert_ptr_equal(a->parent, r);
    assert_string_equal(a->label, "authors");
    assert_string_equal(a->jpath, "$[0].nodes.children[0]");
    assert_int_equal(a->line, 3);
    assert_int_equal(a->variant, REL_SCALAR);
    assert_int_equal(a->rel_type, REL_ONE_TO_MANY);
    assert_string_equal(a->through_schema, "public");
    assert_string_equal(a->through_table, "book_author");
    assert_int_equal(a->nfk, 0);
    schema_free(&s);
}

static void test_parse_file_fixture(void **state)
{
    (void)state;
    struct schema s;
    struct schema_problems p = {0};
    assert_int_equal(schema_parse_file(FIXTURES "book.json", &s, &p), 0);
    assert_string_equal(s.filename, FIXTURES "book.json");
    assert_string_equal(s.entries[0].root->children[0]->label, "authors");
    assert_int_equal(s.entries[0].root->line, 5);
    assert_int_equal(s.entries[0].root->column, 18);
    schema_free(&s);

    assert_int_equal(schema_parse_file(FIXTURES "no-such.json", &s, &p), -1);
    assert_true(has_problem(&p, FIXTURES "no-such.json: cannot open the schema", NULL));
    schema_problems_free(&p);
}

static void test_parse_single_object_and_defaults(void **state)
{
    (void)state;
    struct schema s;
    parse_ok("{\"database\": \"db\", \"nodes\": {\"table\": \"t\", \"schema\": \"s\"}}", &s);
    assert_int_equal(s.nentries, 1);
    assert_string_equal(s.entries[0].jpath, "$");
    assert_string_equal(s.entries[0].index, "db");
    assert_string_equal(s.entries[0].root->schema, "s");
    assert_string_equal(s.entries[0].root->label, "t");
    assert_string_equal(s.entries[0].root->jpath, "$.nodes");
    assert_int_equal(s.entries[0].root->ncolumns, 0);
    assert_int_equal(s.entries[0].root->nfields, 0);
    schema_free(&s);
}

static void test_parse_nested_depth4_ids_depth_first(void **state)
{
    (void)state;
    struct schema s;
    struct schema_problems p = {0};
    assert_int_equal(schema_parse_file(FIXTURES "good_nested.json", &s, &p), 0);
    struct schema_entry *e = &s.entries[0];
    const char *tables[] = {"book", "publisher", "city", "country", "author"};
    assert_int_equal(e->nnodes, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(e->nodes[i]->id, i);
        assert_string_equal(e->nodes[i]->table, tables[i]);
    }
    assert_string_equal(e->nodes[3]->jpath, "$[0].nodes.children[0].children[0].children[0]");
    assert_ptr_equal(e->nodes[3]->parent, e->nodes[2]);
    assert_string_equal(e->nodes[4]->jpath, "$[0].nodes.children[1]");
    assert_int_equal(e->nodes[2]->nfk, 1);
    assert_string_equal(e->nodes[2]->fk_child[0], "id");
    assert_string_equal(e->nodes[2]->fk_parent[0], "city_id");
    schema_free(&s);
}

static void test_parse_json_path_columns(void **state)
{
    (void)state;
    struct schema s;
    parse_ok("[{\"database\": \"d\", \"nodes\": {\"table\": \"t\", \"columns\": [\"name\", "
             "\"data->key\", \"data->>key\", \"data->'a'->>'b'\", \"data -> a -> b\", "
             "\"data #>> '{x, y}'\"]}}]",
             &s);
    struct schema_node *n = s.entries[0].root;
    assert_int_equal(n->nfields, 6);
    assert_int_equal(n->fields[0].npath, 0);
    assert_string_equal(n->fields[1].column, "data");
    assert_int_equal(n->fields[1].npath, 1);
    assert_string_equal(n->fields[1].path[0], "key");
    assert_false(n->fields[1].last_text);
    assert_true(n->fields[2].last_text);
    assert_string_equal(n->fields[3].column, "data");
    assert_int_equal(n->fields[3].npath, 2);
    assert_string_equal(n->fields[3].path[0], "a");
    assert_string_equal(n->fields[3].path[1], "b");
    assert_true(n->fields[3].last_text);
    assert_string_equal(n->fields[3].key, "data_a_b"); /* PGSync's naming: the path joined by _ */
    assert_string_equal(n->fields[3].spec, "data->'a'->>'b'");
    assert_false(n->fields[4].last_text);
    assert_string_equal(n->fields[4].path[1], "b");
    assert_int_equal(n->fields[5].npath, 2);
    assert_string_equal(n->fields[5].path[1], "y");
    assert_true(n->fields[5].last_text);
    schema_free(&s);
}

static void test_parse_transform(void **state)
{
    (void)state;
    struct schema s;
    parse_ok("[{\"database\": \"d\", \"nodes\": {\"table\": \"t\", \"columns\": [\"a\", \"b\"],"
             " \"transform\": {\"rename\": {\"a\": \"alpha\"},"
             "   \"replace\": {\"b\": {\"-\": \"_\", \"x\": \"y\"}},"
             "   \"concat\": {\"columns\": [\"a\", \"b\"], \"destination\": \"ab\"},"
             "   \"mapping\": {\"alpha\": {\"type\": \"keyword\"}}}}}]",
             &s);
    struct schema_node *n = s.entries[0].root;
    assert_string_equal(n->fields[0].key, "alpha");
    assert_string_equal(n->fields[0].column, "a");
    assert_int_equal(n->fields[1].nreplace, 2);
    assert_string_equal(n->fields[1].replace_from[0], "-");
    assert_string_equal(n->fields[1].replace_to[0], "_");
    assert_string_equal(n->fields[1].replace_to[1], "y");
    assert_int_equal(n->nconcat, 1);
    assert_string_equal(n->concat[0].destination, "ab");
    assert_string_equal(n->concat[0].delimiter, "");
    assert_int_equal(n->concat[0].ncolumns, 2);
    assert_non_null(n->es_mapping);
    assert_non_null(json_object_get(n->es_mapping, "alpha"));
    assert_non_null(n->transform);
    schema_free(&s);

    /* concat as a list */
    parse_ok("[{\"database\": \"d\", \"nodes\": {\"table\": \"t\", \"transform\": {\"concat\": ["
             "{\"columns\": [\"a\"], \"destination\": \"x\", \"delimiter\": \"-\"},"
             "{\"columns\": [\"b\"], \"destination\": \"y\"}]}}}]",
             &s);
    assert_int_equal(s.entries[0].root->nconcat, 2);
    assert_string_equal(s.entries[0].root->concat[0].delimiter, "-");
    schema_free(&s);
}

static void test_parse_plugins_refused_unless_ignored(void **state)
{
    (void)state;
    struct schema s;
    struct schema_problems p = {0};
    /* refused, naming each plugin, the pipeline way and the flag */
    assert_int_equal(schema_parse_file(FIXTURES "plugins.json", &s, &p), -1);
    assert_true(has_problem(&p, "$.plugins", "plugins Hero, Villain are Python classes", NULL));
    assert_true(has_problem(&p, "$.plugins", "ingest pipeline", NULL));
    assert_true(has_problem(&p, "$.plugins", "--ignore-plugins", NULL));
    schema_problems_free(&p);
    /* asked to go on: a warning */
    memset(&p, 0, sizeof(p));
    assert_int_equal(
        schema_parse_file_flags(FIXTURES "plugins.json", &s, &p, SCHEMA_IGNORE_PLUGINS), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(s.warnings.n, 1);
    assert_true(has_problem(&s.warnings, "$.plugins", "plugins Hero, Villain are ignored", NULL));
    schema_free(&s);
}

/* PGSync reads optional keys with dict.get(): null is absent, except in what goes to the engine */
static void test_parse_null_is_absent(void **state)
{
    (void)state;
    struct schema s;
    parse_ok("[{\"database\": \"d\", \"index\": null, \"routing\": null, \"pipeline\": null,"
             " \"plugins\": null, \"mapping\": null,"
             " \"nodes\": {\"table\": \"t\", \"schema\": null, \"columns\": null,"
             " \"transform\": null, \"label\": null,"
             " \"children\": [{\"table\": \"c\", \"label\": null, \"children\": null,"
             " \"relationship\": {\"type\": \"one_to_many\", \"variant\": \"object\","
             " \"through_tables\": null, \"foreign_key\": null}}]},"
             " \"setting\": {\"index\": {\"refresh_interval\": null}}}]",
             &s);
    assert_string_equal(s.entries[0].index, "d"); /* as absent: the database's name */
    assert_null(s.entries[0].routing);
    assert_int_equal(s.entries[0].root->nchildren, 1);
    /* kept as written where the engine reads it */
    assert_true(json_is_null(
        json_object_get(json_object_get(s.entries[0].setting, "index"), "refresh_interval")));
    schema_free(&s);
}

static void test_parse_old_nodes_list(void **state)
{
    (void)state;
    struct schema s;
    parse_ok("[{\"database\": \"d\", \"nodes\": [{\"table\": \"t\"}]}]", &s);
    assert_string_equal(s.entries[0].root->table, "t");
    assert_int_equal(s.warnings.n, 1);
    schema_free(&s);
}

/* ------------------------------------------------------------ parse: bad */

static void test_bad_json_line_col(void **state)
{
    (void)state;
    struct schema s;
    struct schema_problems p = {0};
    assert_int_equal(schema_parse_file(FIXTURES "bad_syntax.json", &s, &p), -1);
    assert_int_equal(p.n, 1);
    assert_true(has_problem(&p, FIXTURES "bad_syntax.json:2:29: invalid JSON: ", NULL));
    schema_problems_free(&p);
    EXPECT_PROBLEM("[{\"database\": \"a\", \"database\": \"b\"}]", "t.json:1:", "invalid JSON",
                   "duplicate object key");
    EXPECT_PROBLEM("", "t.json", "invalid JSON");
    EXPECT_PROBLEM("\"just a string\"", "invalid JSON");
}

static void test_bad_unknown_key_suggests(void **state)
{
    (void)state;
    EXPECT_PROBLEM("[{\"database\": \"book\",\n"
                   "  \"nodes\": {\"table\": \"book\", \"children\": [\n"
                   "    {\"table\": \"x\", \"relationship\": {\"variant\": \"object\", \"type\": "
                   "\"one_to_one\"}},\n"
                   "    {\"table\": \"author\", \"childern\": [],\n"
                   "     \"relationship\": {\"variant\": \"object\", \"type\": "
                   "\"one_to_one\"}}]}}]",
                   "t.json:4:25: $[0].nodes.children[1]: unknown key \"childern\" in node "
                   "\"author\" (did you mean \"children\"?)");
    EXPECT_PROBLEM("[{\"databse\": \"book\", \"nodes\": {\"table\": \"b\"}}]",
                   "$[0]: unknown key \"databse\" in the entry (did you mean \"database\"?)");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"transform\": "
                   "{\"renam\": {}}}}]",
                   "$[0].nodes.transform: unknown transform \"renam\" in node \"b\" (did you mean "
                   "\"rename\"?)");
    /* nothing close: no suggestion */
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"zzzzzz\": 1}}]",
                   "unknown key \"zzzzzz\" in node \"b\"");
}

static void test_bad_wrong_types(void **state)
{
    (void)state;
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": 5}}]",
                   "$[0].nodes.table: \"table\" of a node must be a string, not an integer");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"columns\": \"x\"}}]",
                   "$[0].nodes.columns: \"columns\" of node \"b\" must be an array of strings, "
                   "not a string");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"columns\": [\"a\", "
                   "null]}}]",
                   "$[0].nodes.columns[1]: \"columns\" of node \"b\" must hold non-empty strings, "
                   "not null");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"children\": {}}}]",
                   "$[0].nodes.children: \"children\" of node \"b\" must be an array of nodes, "
                   "not an object");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"children\": [3]}}]",
                   "$[0].nodes.children[0]: a node must be an object");
    EXPECT_PROBLEM("[{\"database\": 1, \"nodes\": {\"table\": \"b\"}}]",
                   "\"database\" of the entry must be a string, not an integer");
    EXPECT_PROBLEM("[7]", "$[0]: an entry must be an object");
    EXPECT_PROBLEM("[]", "$: no entries");
}

static void test_bad_missing_table_database_nodes(void **state)
{
    (void)state;
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"columns\": [\"a\"]}}]",
                   "t.json:1:29: $[0].nodes: node has no \"table\"");
    EXPECT_PROBLEM("[{\"nodes\": {\"table\": \"b\"}}]", "$[0]: the entry has no \"database\"");
    EXPECT_PROBLEM("[{\"database\": \"b\"}]", "$[0]: the entry has no \"nodes\"");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {}}]", "$[0].nodes: \"nodes\" is empty");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": [{\"table\": \"a\"}, {\"table\": \"b\"}]}]",
                   "$[0].nodes: \"nodes\" must be one object (the root node), not an array of 2");
}

static void test_bad_relationship(void **state)
{
    (void)state;
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"book\", \"children\": "
                   "[{\"table\": \"author\"}]}}]",
                   "$[0].nodes.children[0]: node \"author\" has no \"relationship\"");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"book\", \"relationship\": "
                   "{\"variant\": \"object\", \"type\": \"one_to_one\"}}}]",
                   "$[0].nodes.relationship: the root node \"book\" can't have a relationship");
    const char *rel = "[{\"database\": \"b\", \"nodes\": {\"table\": \"book\", \"children\": "
                      "[{\"table\": \"author\", \"relationship\": %s}]}}]";
    char buf[1024];
    snprintf(buf, sizeof(buf), rel, "{\"variant\": \"scaler\", \"type\": \"one_to_one\"}");
    EXPECT_PROBLEM(buf, "$[0].nodes.children[0].relationship.variant: unknown variant \"scaler\"",
                   "did you mean \"scalar\"?");
    snprintf(buf, sizeof(buf), rel, "{\"variant\": \"object\", \"type\": \"many_to_many\"}");
    EXPECT_PROBLEM(buf, "relationship.type: unknown type \"many_to_many\"",
                   "expected \"one_to_one\" or \"one_to_many\"");
    snprintf(buf, sizeof(buf), rel, "{\"variant\": \"object\"}");
    EXPECT_PROBLEM(buf, "$[0].nodes.children[0].relationship: the relationship of node "
                        "\"author\" has no \"type\"");
    snprintf(buf, sizeof(buf), rel,
             "{\"variant\": \"object\", \"type\": \"one_to_one\", \"thru_tables\": []}");
    EXPECT_PROBLEM(buf, "unknown key \"thru_tables\" in the relationship of node \"author\"",
                   "did you mean \"through_tables\"?");
    snprintf(buf, sizeof(buf), rel,
             "{\"variant\": \"object\", \"type\": \"one_to_one\", \"through_tables\": [\"a\", "
             "\"b\"]}");
    EXPECT_PROBLEM(buf, "relationship.through_tables: 2 through tables",
                   "only one through table is supported yet");
    snprintf(buf, sizeof(buf), rel,
             "{\"variant\": \"object\", \"type\": \"one_to_one\", \"foreign_key\": {\"child\": "
             "[\"a\", \"b\"], \"parent\": [\"c\"]}}");
    EXPECT_PROBLEM(buf, "relationship.foreign_key: the foreign_key of node \"author\": \"child\" "
                        "has 2 columns but \"parent\" has 1");
    snprintf(buf, sizeof(buf), rel,
             "{\"variant\": \"object\", \"type\": \"one_to_one\", \"foreign_key\": {\"child\": "
             "[\"a\"]}}");
    EXPECT_PROBLEM(buf, "needs both \"child\" and \"parent\"");
    /* PGSync lowercases variant and type */
    struct schema s;
    snprintf(buf, sizeof(buf), rel, "{\"variant\": \"Scalar\", \"type\": \"ONE_TO_MANY\"}");
    parse_ok(buf, &s);
    assert_int_equal(s.entries[0].root->children[0]->variant, REL_SCALAR);
    schema_free(&s);
}

static void test_bad_duplicate_labels(void **state)
{
    (void)state;
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"book\", \"children\": ["
                   "{\"table\": \"author\", \"label\": \"x\", \"relationship\": {\"variant\": "
                   "\"object\", \"type\": \"one_to_one\"}},"
                   "{\"table\": \"review\", \"label\": \"x\", \"relationship\": {\"variant\": "
                   "\"object\", \"type\": \"one_to_one\"}}]}}]",
                   "$[0].nodes.children[1]: label \"x\" is used by two children of node \"book\" "
                   "(the other is at $[0].nodes.children[0])");
}

static void test_bad_depth_limit(void **state)
{
    (void)state;
    char *buf = malloc(40 * 200 + 200), *p = buf;
    p += sprintf(p, "[{\"database\": \"b\", \"nodes\": ");
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "{\"table\": \"t%d\", \"relationship\": {\"variant\": \"object\", "
                        "\"type\": \"one_to_one\"}, \"children\": [",
                     i);
    p += sprintf(p, "{\"table\": \"leaf\"}");
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "]}");
    sprintf(p, "}]");
    EXPECT_PROBLEM(buf, "nodes are nested deeper than 32 levels");
    free(buf);
}

static void test_bad_column_specs(void **state)
{
    (void)state;
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"columns\": "
                   "[\"data->\"]}}]",
                   "$[0].nodes.columns[0]: column \"data->\" of node \"b\": an empty key");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"columns\": "
                   "[\"->>x\"]}}]",
                   "no column name");
    EXPECT_PROBLEM("[{\"database\": \"b\", \"nodes\": {\"table\": \"b\", \"columns\": "
                   "[\"data->'x\"]}}]",
                   "unterminated quote");
}

static void test_bad_many_at_once(void **state)
{
    (void)state;
    struct schema s;
    struct schema_problems p = {0};
    assert_int_equal(schema_parse_file(FIXTURES "bad_many.json", &s, &p), -1);
    const char *f = FIXTURES "bad_many.json";
    assert_true(has_problem(&p, f, ":3:5: $[0]: unknown key \"databse\"", NULL));
    assert_true(has_problem(&p, "$[0]: the entry has no \"database\"", NULL));
    assert_true(has_problem(&p, ":7:26: $[0].nodes.columns[1]: ", "not an integer", NULL) ||
                has_problem(&p, "$[0].nodes.columns[1]", "not an integer", NULL));
    assert_true(has_problem(&p, "the root node \"book\" can't have a relationship", NULL));
    assert_true(has_problem(&p, "$[0].nodes.children[0]: unknown key \"childern\"", NULL));
    assert_true(has_problem(&p, "unknown variant \"scaler\"", NULL));
    assert_true(has_problem(&p, "2 through tables", NULL));
    assert_true(has_problem(&p, "$[0].nodes.children[1]: node \"review\" has no \"relationship\"",
                            NULL));
    assert_true(has_problem(&p, "label \"authors\"", NULL) == 0); /* author's label is "author" */
    assert_true(has_problem(&p, "\"child\" has 2 columns but \"parent\" has 1", NULL));
    assert_int_equal(p.n, 9);
    schema_problems_free(&p);
}

static void test_problem_cap(void **state)
{
    (void)state;
    char *buf = malloc(400 * 20 + 100), *p = buf;
    p += sprintf(p, "[{\"database\": \"b\", \"nodes\": {\"table\": \"b\"");
    for (int i = 0; i < 400; i++)
        p += sprintf(p, ", \"k%d\": 1", i);
    sprintf(p, "}}]");
    struct schema_problems pr;
    parse_bad(buf, &pr);
    assert_int_equal(pr.n, 201);
    assert_true(has_problem(&pr, "too many problems", NULL));
    schema_problems_free(&pr);
    free(buf);
}

/* --------------------------------------------------------------- resolve */

static void test_resolve_book_through_table(void **state)
{
    (void)state;
    struct schema s;
    struct catalog c;
    resolve_ok(book_json, &s, &c);
    struct schema_node *b = s.entries[0].root, *a = b->children[0];
    assert_ptr_equal(b->cat_table, catalog_find_table(&c, "public", "book"));
    assert_strv(b->pk, b->npk, "isbn");
    assert_string_equal(b->fields[0].type, "character varying(20)");
    assert_strv(a->pk, a->npk, "id");
    assert_non_null(a->cat_through);
    /* book.isbn = book_author.book_isbn */
    assert_strv(a->through_join.parent_cols, a->through_join.n, "isbn");
    assert_strv(a->through_join.child_cols, a->through_join.n, "book_isbn");
    /* book_author.author_id = author.id */
    assert_strv(a->join.parent_cols, a->join.n, "author_id");
    assert_strv(a->join.child_cols, a->join.n, "id");
    assert_strv(b->link_cols, b->nlink, "isbn");
    assert_strv(a->link_cols, a->nlink, "id");
    assert_strv(a->through_link_cols, a->nthrough_link, "id,book_isbn,author_id");

    struct schema_table_ref *t;
    int n;
    assert_int_equal(schema_entry_tables(&s.entries[0], &t, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(t[0].table, "book");
    assert_string_equal(t[1].table, "author");
    assert_string_equal(t[2].table, "book_author");
    assert_strv(t[2].link_cols, t[2].nlink, "id,book_isbn,author_id");
    schema_tables_free(t, n);
    schema_free(&s);
    catalog_free(&c);
}

static void test_resolve_fk_both_directions(void **state)
{
    (void)state;
    struct schema s;
    struct catalog c;
    /* publisher: the parent (book) references the child; review references the parent */
    resolve_ok("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"columns\": "
               "[\"title\"], \"children\": ["
               "{\"table\": \"publisher\", \"columns\": [\"name\"], \"relationship\": "
               "{\"variant\": \"object\", \"type\": \"one_to_one\"}},"
               "{\"table\": \"review\", \"columns\": [\"body\"], \"relationship\": "
               "{\"variant\": \"object\", \"type\": \"one_to_many\"}}]}}]",
               &s, &c);
    struct schema_node *b = s.entries[0].root, *pub = b->children[0], *rev = b->children[1];
    assert_strv(pub->join.parent_cols, pub->join.n, "publisher_id");
    assert_strv(pub->join.child_cols, pub->join.n, "id");
    assert_strv(rev->join.parent_cols, rev->join.n, "isbn");
    assert_strv(rev->join.child_cols, rev->join.n, "book_isbn");
    /* book carries its pk and the column publisher joins on */
    assert_strv(b->link_cols, b->nlink, "isbn,publisher_id");
    assert_strv(pub->link_cols, pub->nlink, "id");
    assert_strv(rev->link_cols, rev->nlink, "id,book_isbn");
    schema_free(&s);
    catalog_free(&c);
}

static void test_resolve_deep_and_explicit_fk(void **state)
{
    (void)state;
    struct schema s;
    struct schema_problems p = {0};
    struct catalog c;
    assert_int_equal(schema_parse_file(FIXTURES "good_nested.json", &s, &p), 0);
    build_catalog(&c);
    int rc = schema_resolve(&s, &c, &p);
    if (rc != 0)
        dump_problems(&p);
    assert_int_equal(rc, 0);
    struct schema_entry *e = &s.entries[0];
    struct schema_node *book = e->nodes[0], *pub = e->nodes[1], *city = e->nodes[2],
                       *country = e->nodes[3];
    /* explicit: publisher.city_id = city.id */
    assert_strv(city->join.parent_cols, city->join.n, "city_id");
    assert_strv(city->join.child_cols, city->join.n, "id");
    assert_strv(country->join.parent_cols, country->join.n, "country_id");
    assert_strv(pub->link_cols, pub->nlink, "id,city_id");
    assert_strv(city->link_cols, city->nlink, "id,country_id");
    /* city has no "columns": every column, in table order */
    assert_int_equal(city->nfields, 3);
    assert_string_equal(city->fields[2].key, "country_id");
    /* json paths on a jsonb column, rename, replace */
    assert_int_equal(book->nfields, 4);
    assert_string_equal(book->fields[1].key, "book_title");
    assert_int_equal(book->fields[1].nreplace, 1);
    assert_string_equal(book->fields[3].type, "jsonb");
    assert_strv(book->link_cols, book->nlink, "isbn,publisher_id");
    schema_free(&s);
    catalog_free(&c);
}

static void test_resolve_self_reference(void **state)
{
    (void)state;
    struct schema s;
    struct catalog c;
    resolve_ok("[{\"database\": \"book\", \"nodes\": {\"table\": \"category\", \"children\": ["
               "{\"table\": \"category\", \"label\": \"subcategories\", \"relationship\": "
               "{\"variant\": \"object\", \"type\": \"one_to_many\"}}]}}]",
               &s, &c);
    struct schema_node *root = s.entries[0].root, *sub = root->children[0];
    /* child rows point at their parent: sub.parent_id = root.id */
    assert_strv(sub->join.parent_cols, sub->join.n, "id");
    assert_strv(sub->join.child_cols, sub->join.n, "parent_id");
    struct schema_table_ref *t;
    int n;
    assert_int_equal(schema_entry_tables(&s.entries[0], &t, &n), 0);
    assert_int_equal(n, 1);
    assert_strv(t[0].link_cols, t[0].nlink, "id,parent_id");
    schema_tables_free(t, n);
    schema_free(&s);
    catalog_free(&c);
}

static void test_resolve_composite_fk(void **state)
{
    (void)state;
    struct schema s;
    struct catalog c;
    resolve_ok("[{\"database\": \"book\", \"nodes\": {\"table\": \"edition\", \"children\": ["
               "{\"table\": \"line\", \"columns\": [\"txt\"], \"relationship\": "
               "{\"variant\": \"scalar\", \"type\": \"one_to_many\"}}]}}]",
               &s, &c);
    struct schema_node *ed = s.entries[0].root, *ln = ed->children[0];
    assert_strv(ed->pk, ed->npk, "isbn,no");
    assert_strv(ln->join.parent_cols, ln->join.n, "isbn,no");
    assert_strv(ln->join.child_cols, ln->join.n, "ed_isbn,ed_no");
    assert_strv(ln->link_cols, ln->nlink, "id,ed_isbn,ed_no");
    schema_free(&s);
    catalog_free(&c);
}

static void test_resolve_missing_table_suggests(void **state)
{
    (void)state;
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"children\": ["
                "{\"table\": \"authr\", \"relationship\": {\"variant\": \"object\", \"type\": "
                "\"one_to_one\"}}]}}]",
                "t.json:1:63: $[0].nodes.children[0]: table \"public.authr\" does not exist in "
                "database \"book\" (did you mean \"author\"?)",
                NULL);
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"children\": ["
                "{\"table\": \"author\", \"relationship\": {\"variant\": \"object\", \"type\": "
                "\"one_to_one\", \"through_tables\": [\"book_autor\"]}}]}}]",
                "through table \"public.book_autor\" does not exist in database \"book\" (did you "
                "mean \"book_author\"?)",
                NULL);
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"zzzz\"}}]",
                "table \"public.zzzz\" does not exist in database \"book\"", NULL);
}

static void test_resolve_missing_column(void **state)
{
    (void)state;
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"columns\": "
                "[\"isbn\", \"titel\"]}}]",
                "$[0].nodes: column \"titel\" does not exist in table \"public.book\" (did you "
                "mean \"title\"?)",
                NULL);
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"children\": ["
                "{\"table\": \"publisher\", \"relationship\": {\"variant\": \"object\", "
                "\"type\": \"one_to_one\", \"foreign_key\": {\"child\": [\"id\"], \"parent\": "
                "[\"pub_id\"]}}}]}}]",
                "column \"pub_id\" (in foreign_key.parent) does not exist in table \"public.book\"",
                NULL);
}

static void test_resolve_json_path_needs_json_column(void **state)
{
    (void)state;
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"columns\": "
                "[\"title->>x\"]}}]",
                "column \"title\" of \"public.book\" is text, not json or jsonb: \"title->>x\" "
                "needs a JSON column",
                NULL);
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"columns\": "
                "[\"dta->>x\"]}}]",
                "column \"dta\" (of \"dta->>x\") does not exist in table \"public.book\" (did you "
                "mean \"data\"?)",
                NULL);
}

static void test_resolve_fk_none_and_ambiguous(void **state)
{
    (void)state;
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"children\": ["
                "{\"table\": \"country\", \"relationship\": {\"variant\": \"object\", \"type\": "
                "\"one_to_one\"}}]}}]",
                "no foreign key between \"public.book\" and \"public.country\": add one or give "
                "relationship.foreign_key",
                NULL);
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"children\": ["
                "{\"table\": \"rating\", \"relationship\": {\"variant\": \"object\", \"type\": "
                "\"one_to_many\"}}]}}]",
                "2 foreign keys between \"public.book\" and \"public.rating\" "
                "(rating_book_isbn_fkey, rating_other_isbn_fkey): ambiguous",
                NULL);
    /* the explicit foreign_key settles it */
    struct schema s;
    struct catalog c;
    resolve_ok("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"children\": ["
               "{\"table\": \"rating\", \"relationship\": {\"variant\": \"object\", \"type\": "
               "\"one_to_many\", \"foreign_key\": {\"child\": [\"other_isbn\"], \"parent\": "
               "[\"isbn\"]}}}]}}]",
               &s, &c);
    assert_strv(s.entries[0].root->children[0]->join.child_cols, 1, "other_isbn");
    schema_free(&s);
    catalog_free(&c);
}

static void test_resolve_views_and_missing_pk(void **state)
{
    (void)state;
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book_view\"}}]",
                "$[0].nodes: view \"public.book_view\" has no primary key: give \"primary_key\"",
                NULL);
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"shelf\"}}]",
                "table \"public.shelf\" has no primary key: add one or give \"primary_key\"", NULL);
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book_view\", \"primary_key\": "
                "[\"isbn\"], \"base_tables\": [\"bok\"]}}]",
                "base table \"public.bok\" does not exist", NULL);

    struct schema s;
    struct catalog c;
    resolve_ok("[{\"database\": \"book\", \"nodes\": {\"table\": \"book_view\", \"primary_key\": "
               "[\"isbn\"], \"base_tables\": [\"book\", \"store.book\"]}}]",
               &s, &c);
    struct schema_node *v = s.entries[0].root;
    assert_strv(v->pk, v->npk, "isbn");
    assert_string_equal(v->bases[1].schema, "store");
    struct schema_table_ref *t;
    int n;
    assert_int_equal(schema_entry_tables(&s.entries[0], &t, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(t[1].schema, "public");
    assert_string_equal(t[1].table, "book");
    assert_strv(t[1].link_cols, t[1].nlink, "isbn");
    assert_string_equal(t[2].schema, "store");
    schema_tables_free(t, n);
    schema_free(&s);
    catalog_free(&c);
}

static void test_resolve_duplicate_document_key(void **state)
{
    (void)state;
    resolve_bad("[{\"database\": \"book\", \"nodes\": {\"table\": \"book\", \"columns\": "
                "[\"isbn\", \"title\"], \"transform\": {\"rename\": {\"isbn\": \"title\"}}}}]",
                "document key \"title\" appears twice in node \"book\"", NULL);
}

static void test_resolve_twice_is_clean(void **state)
{
    (void)state;
    struct schema s;
    struct catalog c;
    struct schema_problems p = {0};
    resolve_ok(book_json, &s, &c);
    assert_int_equal(schema_resolve(&s, &c, &p), 0);
    assert_strv(s.entries[0].root->link_cols, s.entries[0].root->nlink, "isbn");
    schema_free(&s);
    catalog_free(&c);
}

/* Print what catalog_load found: shown by test_05 when an assertion below fails. */
static void print_catalog(const struct catalog *c)
{
    for (int i = 0; i < c->ntables; i++) {
        const struct catalog_table *t = &c->tables[i];
        printf("table %s.%s kind=%c pk=(", t->schema, t->name, t->relkind);
        for (int k = 0; k < t->npk; k++)
            printf("%s%s", k ? "," : "", t->pk[k]);
        printf(")\n");
        for (int k = 0; k < t->ncols; k++)
            printf("  %s %s%s\n", t->cols[k].name, t->cols[k].type,
                   t->cols[k].notnull ? " not null" : "");
    }
    for (int i = 0; i < c->nfks; i++) {
        const struct catalog_fk *f = &c->fks[i];
        printf("fk %s: %s(", f->name, c->tables[f->from_table].name);
        for (int k = 0; k < f->ncols; k++)
            printf("%s%s", k ? "," : "", f->from_cols[k]);
        printf(") -> %s(", c->tables[f->to_table].name);
        for (int k = 0; k < f->ncols; k++)
            printf("%s%s", k ? "," : "", f->to_cols[k]);
        printf(") index=%d\n", f->has_index);
    }
}

/* Column "name" of "t" has type "type" and that NOT NULL flag. */
static void assert_column(const struct catalog_table *t, const char *name, const char *type,
                          int notnull)
{
    const struct catalog_column *col = catalog_find_column(t, name);
    if (col == NULL)
        fail_msg("%s has no column %s", t->name, name);
    assert_string_equal(col->type, type);
    assert_int_equal(col->notnull, notnull);
}

/* The one foreign key from "from"("from_col") to "to"("to_col"), or the test fails. */
static const struct catalog_fk *find_fk(const struct catalog *c, const char *from,
                                        const char *from_col, const char *to, const char *to_col)
{
    const struct catalog_fk *found = NULL;
    for (int i = 0; i < c->nfks; i++) {
        const struct catalog_fk *f = &c->fks[i];
        if (f->ncols == 1 && !strcmp(c->tables[f->from_table].name, from) &&
            !strcmp(c->tables[f->to_table].name, to) && !strcmp(f->from_cols[0], from_col) &&
            !strcmp(f->to_cols[0], to_col)) {
            assert_null(found);
            found = f;
        }
    }
    if (found == NULL)
        fail_msg("no foreign key %s(%s) -> %s(%s)", from, from_col, to, to_col);
    return found;
}

/*
 * With PGS_TEST_PGHOST set: load the catalog of a real database
 * (PGS_TEST_PGDATABASE) holding tests/fixtures/book.sql and nothing else,
 * and check it is what that file creates.
 */
static void test_catalog_load_live(void **state)
{
    (void)state;
    const char *host = getenv("PGS_TEST_PGHOST");
    char conninfo[512];
    snprintf(conninfo, sizeof(conninfo), "host=%s port=%s dbname=%s user=%s", host,
             getenv("PGS_TEST_PGPORT") ? getenv("PGS_TEST_PGPORT") : "5432",
             getenv("PGS_TEST_PGDATABASE") ? getenv("PGS_TEST_PGDATABASE") : "book",
             getenv("PGS_TEST_PGUSER") ? getenv("PGS_TEST_PGUSER") : "postgres");
    PGconn *conn = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    struct catalog c;
    struct pgs_error err;
    pgs_error_clear(&err);
    assert_int_equal(catalog_load(conn, &c, &err), 0);
    print_catalog(&c);

    /* the three tables of book.sql, their keys and columns */
    assert_int_equal(c.ntables, 3);
    const struct catalog_table *book = catalog_find_table(&c, "public", "book");
    const struct catalog_table *author = catalog_find_table(&c, "public", "author");
    const struct catalog_table *link = catalog_find_table(&c, "public", "book_author");
    assert_non_null(book);
    assert_non_null(author);
    assert_non_null(link);
    assert_null(catalog_find_table(&c, "public", "no_such_table"));
    assert_int_equal(book->relkind, 'r');
    assert_int_equal(book->npk, 1);
    assert_string_equal(book->pk[0], "isbn");
    assert_int_equal(book->ncols, 3);
    assert_column(book, "isbn", "character varying(13)", 1);
    assert_column(book, "title", "text", 1);
    assert_column(book, "description", "text", 0);
    assert_int_equal(author->npk, 1);
    assert_string_equal(author->pk[0], "id");
    assert_int_equal(author->ncols, 2);
    assert_column(author, "id", "integer", 1);
    assert_column(author, "name", "text", 1);
    assert_int_equal(link->npk, 1);
    assert_string_equal(link->pk[0], "id");
    assert_int_equal(link->ncols, 3);
    assert_column(link, "id", "integer", 1);
    assert_column(link, "book_isbn", "character varying(13)", 1);
    assert_column(link, "author_id", "integer", 1);
    assert_null(catalog_find_column(book, "no_such_column"));

    /* its two foreign keys, each backed by an index */
    assert_int_equal(c.nfks, 2);
    const struct catalog_fk *to_book = find_fk(&c, "book_author", "book_isbn", "book", "isbn");
    const struct catalog_fk *to_author = find_fk(&c, "book_author", "author_id", "author", "id");
    assert_int_equal(to_book->has_index, 1);
    assert_int_equal(to_author->has_index, 1);
    assert_int_equal(to_book->from_table, catalog_table_index(&c, link));
    assert_int_equal(to_book->to_table, catalog_table_index(&c, book));
    assert_int_equal(to_author->to_table, catalog_table_index(&c, author));

    /* the book example resolves against it */
    struct schema s;
    struct schema_problems p = {0};
    assert_int_equal(schema_parse_file(FIXTURES "book.json", &s, &p), 0);
    int rc = schema_resolve(&s, &c, &p);
    if (rc != 0)
        dump_problems(&p);
    assert_int_equal(rc, 0);
    schema_free(&s);
    catalog_free(&c);

    /* a failing query: an error with libpq's words in the detail */
    PQfinish(conn);
    conn = PQconnectdb(conninfo);
    PGresult *res = PQexec(conn, "BEGIN; SELECT 1/0");
    PQclear(res);
    assert_int_equal(catalog_load(conn, &c, &err), -1);
    assert_non_null(strstr(err.detail, "current transaction is aborted"));
    PQfinish(conn);
}

int main(void)
{
    pgs_log_init("test", LOG_ERROR, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_book_example),
        cmocka_unit_test(test_parse_file_fixture),
        cmocka_unit_test(test_parse_single_object_and_defaults),
        cmocka_unit_test(test_parse_nested_depth4_ids_depth_first),
        cmocka_unit_test(test_parse_json_path_columns),
        cmocka_unit_test(test_parse_transform),
        cmocka_unit_test(test_parse_plugins_refused_unless_ignored),
        cmocka_unit_test(test_parse_null_is_absent),
        cmocka_unit_test(test_parse_old_nodes_list),
        cmocka_unit_test(test_bad_json_line_col),
        cmocka_unit_test(test_bad_unknown_key_suggests),
        cmocka_unit_test(test_bad_wrong_types),
        cmocka_unit_test(test_bad_missing_table_database_nodes),
        cmocka_unit_test(test_bad_relationship),
        cmocka_unit_test(test_bad_duplicate_labels),
        cmocka_unit_test(test_bad_depth_limit),
        cmocka_unit_test(test_bad_column_specs),
        cmocka_unit_test(test_bad_many_at_once),
        cmocka_unit_test(test_problem_cap),
        cmocka_unit_test(test_resolve_book_through_table),
        cmocka_unit_test(test_resolve_fk_both_directions),
        cmocka_unit_test(test_resolve_deep_and_explicit_fk),
        cmocka_unit_test(test_resolve_self_reference),
        cmocka_unit_test(test_resolve_composite_fk),
        cmocka_unit_test(test_resolve_missing_table_suggests),
        cmocka_unit_test(test_resolve_missing_column),
        cmocka_unit_test(test_resolve_json_path_needs_json_column),
        cmocka_unit_test(test_resolve_fk_none_and_ambiguous),
        cmocka_unit_test(test_resolve_views_and_missing_pk),
        cmocka_unit_test(test_resolve_duplicate_document_key),
        cmocka_unit_test(test_resolve_twice_is_clean),
    };
    /* run by tests/integration/test_05_catalog_live.sh, which has a database */
    const struct CMUnitTest live[] = {
        cmocka_unit_test(test_catalog_load_live),
    };
    if (getenv("PGS_TEST_PGHOST") != NULL)
        return cmocka_run_group_tests(live, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
