/*
 * sqlgen.h - the SQL that builds documents and finds affected roots.
 *
 * Generated once per schema entry from the resolved node tree:
 *  - the document query: per root row its _id and the whole nested document,
 *    built by PostgreSQL (json_build_object / json_agg in correlated
 *    subqueries, so every child aggregate is restricted to the roots asked
 *    for); three forms: by a set of keys, by a key range, and all rows;
 *  - per node, the reverse query: from changed rows' join values (text
 *    arrays, one per column) to the distinct root keys whose documents hold
 *    them, walking up through parents and through tables in one statement;
 *  - per node with a through table, the same from the through table's rows;
 *  - per view node and base table, the same from the base table's rows.
 * Identifiers are always quoted; every value is a parameter. No I/O here.
 *
 * Documents follow PGSync: an empty one_to_many and a missing one_to_one
 * are null; json_agg orders by the through table's key, then the child's
 * key, so a document is the same every time it is built. Transforms apply
 * as PGSync's latest does: replace (on string values), then rename, then
 * concat (see sqlgen.c).
 *
 * A materialized view changes only on REFRESH, which logical replication
 * does not carry: after a REFRESH, run a full sync (pgsync --config F).
 */
#ifndef PGS_SQLGEN_H
#define PGS_SQLGEN_H

#include "catalog.h"
#include "error.h"
#include "schema.h"

struct sqlgen_reverse {
    char *sql;         /* NULL when not needed; params: one text[] per input column */
    char **in_cols;    /* the changed table's columns whose values are the inputs */
    int nin;
};

struct sqlgen {
    /*
     * Output columns of every document query: _id text, doc json, then the
     * root key columns as text (k0, k1, ...).
     * doc_by_keys:  $1..$npk text[] (the root key columns, as text)
     * doc_by_range: single key only (NULL otherwise): rows with
     *               $1 <= key < $2, either bound NULL = open; ordered by key
     * doc_all:      every root row
     */
    char *doc_by_keys;
    char *doc_by_range;
    char *doc_all;
    char *doc_select;  /* the shared "SELECT ... FROM root n0" part, for COPY or EXPLAIN */
    int npk;           /* root key columns */
    struct sqlgen_reverse *node_rev;    /* by node id; [0] (the root) has sql NULL */
    struct sqlgen_reverse *through_rev; /* by node id; sql NULL when the node has no through table */
    /*
     * By node id, then by index into the node's "bases" (views only): from a
     * base table's changed rows to root keys; in_cols are the base table's
     * primary key columns, which the view must show under the same names.
     * sql NULL (with nin 0) means the view cannot be keyed from that
     * base table: a change to it re-indexes every document of the entry.
     * base_rev[id] is NULL for a node without base tables.
     */
    struct sqlgen_reverse **base_rev;
    int *nbase_rev;    /* by node id: entries in base_rev[id] */
    int nnodes;
};

int sqlgen_build(const struct schema_entry *e, const struct catalog *cat, struct sqlgen *out,
                 struct pgs_error *err) PGS_MUSTCHECK;
void sqlgen_free(struct sqlgen *g);

/* The document key of child "c" in its parent's object: its label, or the parent's rename of it. */
const char *sqlgen_child_key(const struct schema_node *c);

/* The separator of composite key values in a document _id. */
#define SQLGEN_ID_SEP "|"

#endif
