/*
 * sync.h - turning a batch of change records into index writes.
 *
 * records -> (reverse queries, one per node per batch) -> root keys ->
 * (document query, in chunks) -> _bulk index or delete, every write
 * versioned by the batch's highest commit LSN (version_type external_gte),
 * so that an older read can never replace a newer one in the index,
 * whatever the number of consumers. Documents the engine refuses for good
 * go to the dead-letter stream with the reason. The caller acknowledges the
 * batch only when syncer_process() returned 0.
 */
#ifndef PGS_SYNC_H
#define PGS_SYNC_H

#include <signal.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "app.h"
#include "change.h"
#include "config.h"
#include "es.h"
#include "keyset.h"

struct syncer {
    const struct config *cfg;
    struct app_entry *ae;        /* borrowed */
    PGconn *pg;                  /* owned; NULL while disconnected */
    struct es_client *es;        /* borrowed */
    redisContext *rc;            /* borrowed: the dead-letter stream */
    volatile sig_atomic_t *stop; /* set by a signal: stop retrying */
    struct es_bulk bulk;
    struct keyset roots;         /* root keys of the batch */
    struct keyset *node_in;      /* by node id: join values of changed rows */
    struct keyset *through_in;   /* by node id: join values of changed through rows */
    struct keyset **base_in;     /* by node id, base table: values of a view's changed base rows */
    int reindex_all;             /* the batch touched a table no reverse query can key */
    const char *origin;          /* stream ids of the batch, for dead letters */
    /* counters, for logs and metrics */
    unsigned long long docs_indexed, docs_deleted, docs_rejected, batches, records;
};

void syncer_init(struct syncer *s, const struct config *cfg, struct app_entry *ae,
                 struct es_client *es, redisContext *rc, volatile sig_atomic_t *stop);
void syncer_deinit(struct syncer *s);

/* Connect (or reconnect) to the entry's database and prepare the statements. */
int syncer_connect(struct syncer *s, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Apply "n" records. 0: every affected document is indexed, deleted or
 * dead-lettered. -1: nothing may be acknowledged (PGS_ERR_TRANSIENT: try
 * the batch again; PGS_ERR_FATAL: stop).
 */
int syncer_process(struct syncer *s, const struct change *recs, int n, struct pgs_error *err)
    PGS_MUSTCHECK;

/* Progress callback of syncer_index_query: documents done so far. */
typedef void (*syncer_progress_fn)(void *arg, long long done);

/*
 * Run a document query ("sql" with text params) through a cursor on "conn"
 * (in a transaction the caller opened) and index every row with "version".
 */
int syncer_index_query(struct syncer *s, PGconn *conn, const char *sql, int nparams,
                       const char *const *params, uint64_t version, syncer_progress_fn progress,
                       void *arg, long long *ndocs, struct pgs_error *err) PGS_MUSTCHECK;

/* Send what the bulk buffer holds, dead-letter the rejects. */
int syncer_flush(struct syncer *s, struct pgs_error *err) PGS_MUSTCHECK;

/* Write one dead letter (fields as in the README); 0 when Redis accepted it. */
int syncer_dead_letter(struct syncer *s, const char *id, const char *reason, const char *error_type,
                       const char *doc, size_t doclen, struct pgs_error *err) PGS_MUSTCHECK;

#endif
