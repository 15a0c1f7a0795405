/*
 * sync.h - turning a batch of change records into index writes.
 *
 * records -> (reverse queries, one per node per batch) -> root keys ->
 * (document query, in chunks) -> _bulk index or delete, every write
 * versioned by the batch's highest commit LSN (version_type external_gte),
 * so that an older read can never replace a newer one in the index,
 * whatever the number of consumers (a root TRUNCATE, which leaves no
 * version behind for documents not yet written, has its own fence:
 * syncer_fence below). Documents the engine refuses for good
 * go to the dead-letter stream with the reason.
 *
 * Bulks leave through a pipe of sender threads (es_pipe.h), so that the
 * next documents are read while a bulk is in flight. At most "depth" are
 * in flight, and a bulk leaves only when none in flight holds one of its
 * _ids (LESSONS.md "Stale writes"): a later write of a document waits for
 * the earlier one's answer. Each bulk gets a sequence number; the
 * caller acknowledges a batch only when syncer_process() returned 0 and
 * then syncer_done(s, s->last_seq) says that every bulk it sent so far was
 * answered, and its rejects dead-lettered.
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
#include "es_pipe.h"
#include "keyset.h"

/*
 * Bulks in flight during a load range, per worker, while the next one is
 * filled from the cursor. With the one being filled, at most
 * (SYNC_LOAD_DEPTH + 1) x PGSYNC_BULK_MAX_BYTES of documents per process
 * (plus a request body of that size per bulk on the wire). 1, not 2: on 2
 * cores the load is CPU-bound and 2 was not measurably faster (bench/RESULTS.md)
 * but cost 19 MiB more over the process tree (83 -> 102 MiB, 100,000 books).
 */
#define SYNC_LOAD_DEPTH 1
/*
 * Bulks of change batches in flight: the next batch's bulk leaves while the
 * previous one's is on the wire only when they share no _id (LESSONS.md
 * "Stale writes": never two writes of one _id in flight).
 */
#define SYNC_CHANGE_DEPTH 2
#define SYNC_MAX_DEPTH    2 /* the larger of the two: sender threads, flights */

/* The _ids of one bulk in flight. */
struct syncer_flight {
    uint64_t seq;
    struct keyset ids;
};

struct syncer {
    const struct config *cfg;
    struct app_entry *ae;        /* borrowed */
    PGconn *pg;                  /* owned; NULL while disconnected */
    struct es_client *es;        /* borrowed */
    redisContext *rc;            /* borrowed: the dead-letter stream */
    volatile sig_atomic_t *stop; /* set by a signal: stop retrying */
    struct es_bulk bulk;         /* the bulk being filled */
    struct es_pipe *pipe;        /* owned: the bulks in flight; made at the first flush */
    int depth;                   /* bulks in flight at most (SYNC_CHANGE_DEPTH, SYNC_LOAD_DEPTH) */
    struct syncer_flight flights[SYNC_MAX_DEPTH]; /* the bulks in flight and their _ids */
    int nflights;
    uint64_t last_seq;           /* the last bulk handed to the pipe (0: none yet) */
    uint64_t failed_seq;         /* the lowest bulk that failed (0: none) */
    struct keyset roots;         /* root keys of the batch */
    struct keyset *node_in;      /* by node id: join values of changed rows */
    struct keyset *through_in;   /* by node id: join values of changed through rows */
    struct keyset **base_in;     /* by node id, base table: values of a view's changed base rows */
    int reindex_all;             /* the batch touched a table no reverse query can key */
    const char *origin;          /* stream ids of the batch, for dead letters */
    int redelivered;             /* the batch was delivered before (own pending, or claimed) */
    uint64_t swept_fence;        /* the truncate fence this process last swept the index at */
    /* counters, for logs and metrics */
    unsigned long long docs_indexed, docs_deleted, docs_rejected, batches, records;
};

void syncer_init(struct syncer *s, const struct config *cfg, struct app_entry *ae,
                 struct es_client *es, redisContext *rc, volatile sig_atomic_t *stop);
void syncer_deinit(struct syncer *s);

/* Connect (or reconnect) to the entry's database and prepare the statements. */
int syncer_connect(struct syncer *s, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Apply "n" records. 0: every write of the batch is in the pipe, up to and
 * including bulk "s->last_seq"; acknowledge the batch once syncer_done()
 * says so. -1: nothing may be acknowledged (PGS_ERR_TRANSIENT: try the
 * batch again; PGS_ERR_FATAL: stop); the caller then calls syncer_drain().
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

/*
 * Hand what the bulk buffer holds to the pipe, after waiting for room
 * (fewer than "depth" in flight). -1 when a bulk answered meanwhile failed.
 */
int syncer_flush(struct syncer *s, struct pgs_error *err) PGS_MUSTCHECK;

/* Take the answered bulks, without waiting: count them, dead-letter their rejects. */
int syncer_poll(struct syncer *s, struct pgs_error *err) PGS_MUSTCHECK;

/* Wait for every bulk in flight and take them; -1 with the first failure's error. */
int syncer_drain(struct syncer *s, struct pgs_error *err) PGS_MUSTCHECK;

/* Bulks handed to the pipe and not yet taken back. */
int syncer_inflight(const struct syncer *s);

/* 1 when every bulk up to "seq" was answered and taken, and none of them failed. */
int syncer_done(const struct syncer *s, uint64_t seq);

/* After syncer_drain: forget the failed bulks (their batches are read again). */
void syncer_forget_failures(struct syncer *s);

/*
 * The root TRUNCATE fence: the version of the newest TRUNCATE of the root
 * table (field "truncated_lsn" of the entry's meta hash; 0 when none). A
 * write older than the fence that the engine accepted after the fence was
 * raised may have brought back a document the truncate's sweep did not see
 * (it was not in the index yet): the writer deletes it again, at the
 * fence's version, once its bulk is answered (syncer_take).
 */
int syncer_fence(struct syncer *s, uint64_t *fence, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Delete, at version "fence", every document of the index written with an
 * older version (a newer write keeps its own); once per fence per process
 * unless "always". "why" names the occasion in the log.
 */
int syncer_sweep(struct syncer *s, uint64_t fence, int always, const char *why,
                 struct pgs_error *err) PGS_MUSTCHECK;

/* Write one dead letter (fields as in the README); 0 when Redis accepted it. */
int syncer_dead_letter(struct syncer *s, const char *id, const char *reason, const char *error_type,
                       const char *doc, size_t doclen, struct pgs_error *err) PGS_MUSTCHECK;

#endif
