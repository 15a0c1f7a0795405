/*
 * schema.h - the document model, read from a PGSync schema.json.
 *
 * schema_parse() turns the file into a tree of nodes and reports every
 * structural problem (JSON syntax with line:column, unknown keys, wrong
 * types) with its JSON path. schema_resolve() then checks the tree against
 * the database catalog and fills in the resolved part of each node: columns,
 * primary key and the join to the parent. Parsing does no I/O but reading
 * the file; nothing here talks to a server.
 */
#ifndef PGS_SCHEMA_H
#define PGS_SCHEMA_H

#include <jansson.h>

#include "catalog.h"
#include "error.h"

enum schema_rel_type { REL_ONE_TO_ONE = 0, REL_ONE_TO_MANY };
enum schema_rel_variant { REL_OBJECT = 0, REL_SCALAR };

/* Every problem found, in file order; each line names the place and the object. */
struct schema_problems {
    char **items;
    int n;
    int cap;
};

/* One field of a node's document object. */
struct schema_field {
    char *spec;      /* as written in "columns": "name", "data->>key", "data->'a'->'b'" */
    char *column;    /* the table column: "data" */
    char **path;     /* JSON path keys after the column, NULL when none */
    int npath;
    int last_text;   /* the last step is ->> (text), not -> (json) */
    char *key;       /* the document key (after "rename"): defaults to the last path key or column */
    char *replace_from[8]; /* transform.replace pairs applied in order (text columns) */
    char *replace_to[8];
    int nreplace;
    const char *type; /* catalog type (borrowed from the catalog), set by schema_resolve */
};

/* One of a view's "base_tables", split; "pk" is filled by schema_resolve from the catalog. */
struct schema_base_table {
    char *schema;
    char *table;
    char **pk;
    int npk;
};

/* transform.concat: destination = columns joined by delimiter */
struct schema_concat {
    char **columns;
    int ncolumns;
    char *destination;
    char *delimiter;
};

/* parent.parent_cols[i] = child.child_cols[i] */
struct schema_join {
    char **parent_cols;
    char **child_cols;
    int n;
};

struct schema_node {
    /* as written */
    char *schema;            /* default "public" */
    char *table;
    char *label;             /* default: the table name */
    char **columns;          /* NULL/0 = all columns */
    int ncolumns;
    char **primary_key;      /* explicit (views); NULL when absent */
    int nprimary_key;
    char **base_tables;      /* for views: "table" or "schema.table" */
    int nbase_tables;
    struct schema_base_table *bases; /* base_tables split into schema and table (nbase_tables) */
    json_t *transform;       /* the raw "transform" object (a reference owned here), or NULL */
    struct schema_concat *concat; /* parsed transform.concat */
    int nconcat;
    json_t *es_mapping;      /* transform.mapping: field -> ES mapping (owned reference) or NULL */
    enum schema_rel_type rel_type;
    enum schema_rel_variant variant;
    char *through_schema;    /* relationship.through_tables[0], NULL when none */
    char *through_table;
    char **fk_child;         /* relationship.foreign_key.child */
    char **fk_parent;        /* relationship.foreign_key.parent */
    int nfk;

    struct schema_node *parent; /* NULL for the root */
    struct schema_node **children;
    int nchildren;
    int id;                  /* 0 for the root, then depth-first order, unique in the entry */
    char *jpath;             /* "$[0].nodes.children[1]" */
    int line, column;        /* where the node's object starts in the file (1-based), 0 if unknown */

    /* resolved by schema_resolve() */
    struct schema_field *fields; /* the columns (all of them when "columns" is empty) */
    int nfields;
    char **pk;               /* primary key: catalog or "primary_key" */
    int npk;
    struct schema_join join;     /* parent -> this node, or through -> this node */
    struct schema_join through_join; /* parent -> through table (only with a through table) */
    char **link_cols;        /* this table's columns a change must carry: pk + join columns */
    int nlink;
    char **through_link_cols; /* the through table's pk + join columns */
    int nthrough_link;
    const struct catalog_table *cat_table;   /* borrowed from the catalog given to schema_resolve */
    const struct catalog_table *cat_through; /* the through table's, NULL when none */
};

struct schema_entry {
    char *database;
    char *index;             /* default: the database name */
    struct schema_node *root;
    json_t *setting;         /* owned references or NULL */
    json_t *mapping;
    json_t *mappings; /* the engine's "mappings" body as given ("mapping" wins over it) */
    char *routing;
    char *pipeline;
    int nnodes;
    struct schema_node **nodes; /* every node by id (nodes[0] is the root) */
    char *jpath;             /* "$[0]" */
    char *source;            /* the entry's JSON, compact with sorted keys: what a version stores */
};

struct schema {
    struct schema_entry *entries;
    int nentries;
    char *filename;
    /* accepted but ignored ("plugins", "move", nested "rename"); also logged at warn level */
    struct schema_problems warnings;
};

/*
 * Parse; returns 0, or -1 with every problem in "probs" ("file:line:col: $.path: ..." or
 * "file: $.path: ..."). On -1 "out" is already freed (schema_free on it is harmless).
 * Problems are appended to "probs", which may be NULL; at most 200 are kept.
 */
int schema_parse_file(const char *path, struct schema *out, struct schema_problems *probs) PGS_MUSTCHECK;
/* "plugins" refused unless ignored (a warning) on request; a string (a stored schema) ignores them */
#define SCHEMA_IGNORE_PLUGINS 1
int schema_parse_file_flags(const char *path, struct schema *out, struct schema_problems *probs,
                            int flags) PGS_MUSTCHECK;
int schema_parse_string(const char *text, const char *filename, struct schema *out,
                        struct schema_problems *probs) PGS_MUSTCHECK;
/*
 * Check against the catalog and fill in the resolved fields; -1 with every problem in "probs".
 * The resolved nodes borrow type names and catalog_table pointers from "cat": keep it alive.
 */
int schema_resolve(struct schema *s, const struct catalog *cat, struct schema_problems *probs) PGS_MUSTCHECK;
void schema_free(struct schema *s);

void schema_problems_add(struct schema_problems *p, const char *fmt, ...) PGS_PRINTF(2, 3);
void schema_problems_free(struct schema_problems *p);

/*
 * A table whose changes matter to an entry, with the columns its change
 * records must carry. A table can serve several nodes (and as a through table).
 */
struct schema_table_ref {
    char *schema;
    char *table;
    char **link_cols;  /* union of what every use needs, pk first */
    int nlink;
};
/* Every distinct table of "e" (nodes, through tables, view base tables); caller frees with schema_tables_free. */
int schema_entry_tables(const struct schema_entry *e, struct schema_table_ref **out, int *n);
void schema_tables_free(struct schema_table_ref *t, int n);

#endif
