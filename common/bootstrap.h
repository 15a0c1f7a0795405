/*
 * bootstrap.h - the database side of an entry: checks (wal_level, slots,
 * the role's rights), the publication of exactly the entry's tables,
 * REPLICA IDENTITY FULL where a change must carry non-key join columns,
 * and the logical replication slot. Idempotent; teardown undoes it.
 * Where the role may not do a step, the error says the SQL a DBA must run.
 */
#ifndef PGS_BOOTSTRAP_H
#define PGS_BOOTSTRAP_H

#include "app.h"
#include "config.h"
#include "error.h"

/* Create what is missing; "created_slot" (may be NULL) tells whether the slot is new. */
int bootstrap_setup(const struct config *cfg, struct app_entry *ae, int *created_slot,
                    struct pgs_error *err) PGS_MUSTCHECK;
int bootstrap_teardown(const struct config *cfg, struct app_entry *ae, struct pgs_error *err)
    PGS_MUSTCHECK;
/* Does the entry's slot exist? */
int bootstrap_slot_exists(PGconn *conn, const char *slot, int *exists, struct pgs_error *err)
    PGS_MUSTCHECK;

#endif
