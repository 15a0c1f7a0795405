/*
 * bootstrap.h - the database side of an entry, in either capture mode.
 *
 * logical (default): checks (wal_level, free slots and WAL senders, the
 * role's REPLICATION and SELECT), the publication of exactly the entry's
 * tables, REPLICA IDENTITY FULL where a change must carry non-key join
 * columns, and the logical replication slot (pgoutput).
 * notify (PGSYNC_MODE=notify, for servers without logical decoding): the
 * outbox table pgsync."<slot>", the trigger function pgsync."<slot>"() and
 * per table a row trigger "<slot>" and a TRUNCATE trigger "<slot>_t"
 * (producer/outbox_ddl.h).
 *
 * Idempotent: only what is missing or different is changed. A step the
 * role may not take (it needs a superuser or the table's owner) is not an
 * error on its own: every such step is collected and printed to stderr as
 * one SQL script for a DBA, and the call fails; run it again afterwards.
 * Teardown removes the objects of both modes; it leaves REPLICA IDENTITY
 * FULL in place (the previous setting is not recorded, and FULL is harmless
 * beyond extra WAL): ALTER TABLE ... REPLICA IDENTITY DEFAULT reverts it.
 */
#ifndef PGS_BOOTSTRAP_H
#define PGS_BOOTSTRAP_H

#include <stdint.h>

#include "app.h"
#include "config.h"
#include "error.h"

/* Create what is missing for cfg->mode; "created_slot" (may be NULL) tells whether a slot is new. */
int bootstrap_setup(const struct config *cfg, struct app_entry *ae, int *created_slot,
                    struct pgs_error *err) PGS_MUSTCHECK;
/*
 * Remove the entry's objects: the triggers, the function and the outbox;
 * its tables from the database's publication, and that publication and its
 * slot with them unless another entry of "stay" (may be NULL: none) uses
 * them; a slot and publication of its own from before one per database.
 */
int bootstrap_teardown(const struct config *cfg, struct app_entry *ae, const struct app *stay,
                       struct pgs_error *err)
    PGS_MUSTCHECK;
/*
 * Can the entry's slot still deliver? 1 when PostgreSQL invalidated it
 * (wal_status "lost", after max_slot_wal_keep_size) or its publication is
 * gone: "why" says which and the commands that recover. 0: usable (or
 * missing: bootstrap makes it); -1: the check itself failed (err).
 */
int bootstrap_slot_broken(const struct config *cfg, const struct app_entry *ae, char *why,
                          size_t why_len, struct pgs_error *err) PGS_MUSTCHECK;
/*
 * Drop a broken slot (bootstrap_slot_broken) and set up a new one with its
 * publication. Refused for a usable slot (it would lose the changes it
 * holds) and for one a producer reads. The changes between the old slot's
 * position and the new one reach no stream: a resync must follow.
 */
int bootstrap_recreate_slot(const struct config *cfg, struct app_entry *ae,
                            struct pgs_error *err) PGS_MUSTCHECK;
/* Does the entry's slot exist? */
int bootstrap_slot_exists(PGconn *conn, const char *slot, int *exists, struct pgs_error *err)
    PGS_MUSTCHECK;

/* The confirmed position of the entry's (database's) slot; 0 when it has none or is missing. */
int bootstrap_slot_position(const struct config *cfg, const struct app_entry *ae,
                            uint64_t *confirmed, struct pgs_error *err) PGS_MUSTCHECK;
/* Drop the entry's legacy slot and publication (one of its own, before one per database). */
int bootstrap_drop_legacy(const struct config *cfg, const struct app_entry *ae,
                          struct pgs_error *err) PGS_MUSTCHECK;

/*
 * For the initial load where no logical slot can export a snapshot (notify
 * mode without wal_level=logical): on "conn", a plain connection that must
 * stay open, with no transaction, for as long as the snapshot is used,
 * samples pg_current_wal_insert_lsn(), then opens a REPEATABLE READ
 * transaction and exports its snapshot into "snap". "*version" is the
 * sample minus one: every change missing from the snapshot commits after
 * it, so the producer drains it later with a version (its drain's insert
 * LSN, see producer/outbox.c) of at least the sample; it wins.
 */
int bootstrap_export_snapshot(PGconn *conn, char *snap, size_t snap_len, uint64_t *version,
                              struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Trigger mode: the lowest and highest id in the entry's outbox (*min -1
 * and *max 0 when it is empty; "max" may be NULL). Rows are deleted once Redis holds them, so
 * every change committed when *max was read is drained once *min > *max
 * or the outbox is empty.
 */
int bootstrap_outbox_bounds(PGconn *conn, const struct app_entry *ae, long long *min,
                            long long *max, struct pgs_error *err) PGS_MUSTCHECK;

#endif
