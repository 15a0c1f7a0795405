/*
 * analyze.h - `pgsync --config F --analyze`: the plan PostgreSQL chose for
 * each generated query of an entry, and the foreign keys its joins follow
 * that no index backs (each such join reads the whole referencing table).
 */
#ifndef PGS_ANALYZE_H
#define PGS_ANALYZE_H

#include <stdio.h>

#include "app.h"
#include "config.h"
#include "error.h"

/*
 * Connect to the entry's database and print to "out", for every generated
 * query (documents by keys, by range, all; every reverse query), its name,
 * its SQL and its generic plan (EXPLAIN (GENERIC_PLAN) on PostgreSQL 16+,
 * else PREPARE and EXPLAIN EXECUTE with plan_cache_mode=force_generic_plan);
 * then one "warning:" line per join over a foreign key without an index on
 * its referencing columns, with the CREATE INDEX that fixes it.
 * Returns the number of warnings (>= 0), or -1 with "err" set.
 */
int analyze_entry(const struct config *cfg, struct app_entry *ae, FILE *out,
                  struct pgs_error *err) PGS_MUSTCHECK;

#endif
