/*
 * sync.h - turning a batch of change records into index writes: the driver
 * of the stages, one file each.
 *
 *   records -> roots.c (routing, reverse queries: one per node per batch)
 *           -> root keys -> docs.c (visibility wait, document query in
 *              chunks) -> bulk.c (_bulk index or delete through a pipe of
 *              bulks in flight; dead letters)
 *   truncate.c: a root TRUNCATE's fence and sweep.
 *
 * Every write is versioned by the batch's highest commit LSN (version_type
 * external_gte), so that an older read can never replace a newer one in the
 * index, whatever the number of consumers (a root TRUNCATE, which leaves no
 * version behind for documents not yet written, has its own fence:
 * truncate.h). The caller acknowledges a batch only when syncer_process()
 * returned 0 and then bulk_done() says that every bulk sent up to the
 * batch's last (bulk_last_seq) was answered, and its rejects dead-lettered.
 */
#ifndef PGS_SYNC_H
#define PGS_SYNC_H

#include <signal.h>
#include <stdint.h>

#include "redis.h"
#include <libpq-fe.h>

#include "app.h"
#include "bulk.h"
#include "change.h"
#include "config.h"
#include "docs.h"
#include "es.h"

struct syncer;

/* Counters of the batches applied, for logs and metrics. */
struct syncer_stats {
    unsigned long long batches, records;
};

/* A syncer for "ae"; "cfg", "ae", "es" and "stop" are borrowed. */
struct syncer *syncer_new(const struct config *cfg, struct app_entry *ae, struct es_client *es,
                          volatile sig_atomic_t *stop);
void syncer_free(struct syncer *s);

/* The connection for dead letters, the fence and the stream (borrowed; NULL: none yet). */
void syncer_set_redis(struct syncer *s, struct redis_conn *rc);
/* The stream ids of the batch being applied, for dead letters (borrowed; NULL: none). */
void syncer_set_origin(struct syncer *s, const char *origin);
/* The batch was delivered before (own pending, or claimed): it may have a stale write to undo. */
void syncer_set_redelivered(struct syncer *s, int redelivered);
/* Bulks in flight at most (bulk.h: BULK_CHANGE_DEPTH, BULK_LOAD_DEPTH). */
void syncer_set_depth(struct syncer *s, int depth);

/* Connect (or reconnect) to the entry's database and prepare the statements. */
int syncer_connect(struct syncer *s, struct pgs_error *err) PGS_MUSTCHECK;
/* Close the connection (it is lost); the next step connects again. */
void syncer_disconnect(struct syncer *s);
/* The connection (borrowed); NULL while disconnected. */
PGconn *syncer_pg(const struct syncer *s);

struct app_entry *syncer_entry(const struct syncer *s);
const struct config *syncer_config(const struct syncer *s);
/* The writer of the syncer's bulks (borrowed). */
struct bulk_writer *syncer_writer(const struct syncer *s);
const struct syncer_stats *syncer_stats(const struct syncer *s);

/*
 * Apply "n" records. 0: every write of the batch is in the pipe, up to and
 * including bulk bulk_last_seq(); acknowledge the batch once bulk_done()
 * says so. -1: nothing may be acknowledged (PGS_ERR_TRANSIENT: try the
 * batch again; PGS_ERR_FATAL: stop); the caller then calls bulk_drain().
 */
int syncer_process(struct syncer *s, const struct change *recs, int n, struct pgs_error *err)
    PGS_MUSTCHECK;

/* docs_index_query with the syncer's reader and writer. */
int syncer_index_query(struct syncer *s, PGconn *conn, const char *sql, int nparams,
                       const char *const *params, uint64_t version, docs_progress_fn progress,
                       void *arg, long long *ndocs, struct pgs_error *err) PGS_MUSTCHECK;

/* The root TRUNCATE fence (truncate_read_fence). */
int syncer_fence(struct syncer *s, uint64_t *fence, struct pgs_error *err) PGS_MUSTCHECK;

/* truncate_sweep through the syncer's writer. */
int syncer_sweep(struct syncer *s, uint64_t fence, int always, const char *why,
                 struct pgs_error *err) PGS_MUSTCHECK;

#endif
