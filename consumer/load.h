/*
 * load.h - the initial load: every document of an entry, read from one
 * consistent snapshot and written with the version just below the
 * snapshot's LSN, so that a change committed during the load (it reaches
 * the stream: the slot exists first) always wins over the loaded copy.
 *
 * The coordinator (load_entry) creates a temporary logical slot with
 * EXPORT_SNAPSHOT on a replication connection and holds it open: its
 * consistent point splits the transactions exactly into those the snapshot
 * sees and those the stream carries. It splits the root table into ranges
 * of ctid pages and puts one work item per range on the entry's load
 * stream; every consumer of the group (its own forked workers and any
 * pgsync-consumer running) takes items one at a time, imports the snapshot
 * and indexes the range. Finished ranges are recorded in Redis, so a load
 * killed half-way and run again reads only what is left.
 */
#ifndef PGS_LOAD_H
#define PGS_LOAD_H

#include <signal.h>

#include "redis.h"

#include "app.h"
#include "load_item.h"
#include "change.h"
#include "config.h"
#include "es.h"

struct syncer;

struct load_opts {
    int quiet;   /* no progress output */
    int workers; /* worker processes forked by the coordinator (0 = only other consumers) */
    int resync;  /* start a new load even if one was finished or is half-done */
};

struct load_result {
    long long docs;
    double seconds;
    uint64_t version;
    int parts;
    int parts_already_done;
};

/* Coordinate a whole load of "ae" and wait for it; -1 on error (the load can be resumed). */
int load_entry(const struct config *cfg, struct app_entry *ae, struct redis_conn *rc,
               const struct load_opts *opts, volatile sig_atomic_t *stop,
               struct load_result *result, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Read the range of one work item with the syncer's connection and hand
 * its documents to the syncer's pipe. Sets *dropped when the item is
 * obsolete (its range is done, or its snapshot is gone because its
 * coordinator died: a new run re-issues the range). After a 0 return the
 * caller waits until the bulks are answered (bulk_done() of bulk_last_seq(), bulk.h),
 * then calls load_range_done (unless dropped) and acknowledges the item.
 */
int load_range(struct syncer *s, struct redis_conn *rc, const struct load_item *item, int *dropped,
               struct pgs_error *err) PGS_MUSTCHECK;

/* Record range "part" of the current load of "ae" as indexed. */
int load_range_done(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                    int part, struct pgs_error *err) PGS_MUSTCHECK;

/* Was a load of "ae" ever completed (its meta holds loaded_version)? */
int load_was_completed(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                       int *completed, struct pgs_error *err) PGS_MUSTCHECK;

/* Is the load "load_id" of "ae" complete (every range done, or no longer current)? */
int load_is_finished(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                     const char *load_id, int *finished, struct pgs_error *err) PGS_MUSTCHECK;

#endif
