/*
 * roots.h - from the change records of a batch to the root keys whose
 * documents they change. Each record is routed to the nodes (and through
 * tables, and view base tables) its table serves, which collects join
 * values; then one reverse query per node per batch turns them into root
 * keys. Records of the root table give their keys directly.
 *
 * The reverse queries are the statements rev_n<i>, rev_t<i> and
 * rev_b<i>_<b>, prepared on the connection by roots_prepare.
 */
#ifndef PGS_ROOTS_H
#define PGS_ROOTS_H

#include <libpq-fe.h>

#include "app.h"
#include "change.h"
#include "error.h"
#include "keyset.h"

struct roots;

/* The root keys of "ae" (borrowed), empty. */
struct roots *roots_new(const struct app_entry *ae);
void roots_free(struct roots *r);

/* Prepare the reverse queries on "pg" (a new connection). */
int roots_prepare(const struct app_entry *ae, PGconn *pg, struct pgs_error *err) PGS_MUSTCHECK;

/* Forget the last batch's keys and join values. */
void roots_clear(struct roots *r);

/* Which nodes (and through tables) a record's table serves; keep its join values. */
void roots_route_record(struct roots *r, const struct change *c);

/* The batch touched a table no reverse query can key (a view's): re-index everything. */
int roots_need_reindex(const struct roots *r);

/*
 * Run the reverse queries over the join values routed since roots_clear:
 * their rows join the root keys. "*pg" is closed and set to NULL when the
 * connection is lost.
 */
int roots_query(struct roots *r, PGconn **pg, struct pgs_error *err) PGS_MUSTCHECK;

/* The root keys of the batch so far (borrowed from "r"). */
const struct keyset *roots_keys(const struct roots *r);

#endif
