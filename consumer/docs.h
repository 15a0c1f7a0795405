/*
 * docs.h - reading documents: the document query for the root keys of a
 * batch (in chunks of PGSYNC_DOC_CHUNK), a whole document query through a
 * cursor (a load range, a re-index), and the waits that make a read
 * see every change it is versioned with (docs_wait_visible) or that a
 * root TRUNCATE must not overtake (docs_wait_earlier_batches). Every row
 * read becomes an index write, every key not found a delete, in the
 * writer's bulk (bulk.h).
 */
#ifndef PGS_DOCS_H
#define PGS_DOCS_H

#include <signal.h>
#include <stdint.h>

#include "redis.h"
#include <libpq-fe.h>

#include "app.h"
#include "change.h"
#include "config.h"
#include "error.h"
#include "keyset.h"

struct docs;
struct bulk_writer;

/* Progress callback of docs_index_query: documents done so far. */
typedef void (*docs_progress_fn)(void *arg, long long done);

/* The document reader of "ae", writing through "w" (all borrowed). */
struct docs *docs_new(const struct config *cfg, const struct app_entry *ae, struct bulk_writer *w,
                      volatile sig_atomic_t *stop);
void docs_free(struct docs *d);

/* Prepare the document query by keys (statement doc_keys) on "pg" (a new connection). */
int docs_prepare(const struct app_entry *ae, PGconn *pg, struct pgs_error *err) PGS_MUSTCHECK;
/* A failed PREPARE of "name" ("res" cleared here): PGS_ERR_TRANSIENT with the SQLSTATE. */
void docs_prepare_failed(PGconn *pg, PGresult *res, const char *name, struct pgs_error *err);

/*
 * A failed query on "*pg" whose result is "res" (cleared here): its kind by
 * SQLSTATE (pgerr.h): PGS_ERR_DOCUMENT only for an error that belongs to a
 * row, else PGS_ERR_TRANSIENT; a connection that is gone is closed and *pg
 * set to NULL. Returns -1.
 */
int docs_query_failed(PGconn **pg, PGresult *res, const char *database, const char *what,
                      struct pgs_error *err);

/*
 * Wait until every transaction of "recs" is visible to new snapshots
 * (bounded: 2 s). "*pg" is closed and set to NULL when the connection is lost.
 */
int docs_wait_visible(struct docs *d, PGconn **pg, const struct change *recs, int n,
                      struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Wait (bounded: 10 s) until no stream entry older than "first_id" is still
 * being applied by another consumer. No-op without "rc".
 */
void docs_wait_earlier_batches(struct docs *d, struct redis_conn *rc, const char *first_id);

/*
 * Read the documents of root keys "keys" at "version" in chunks, and queue
 * an index for each row, a delete for each key not found. A row the query
 * fails on is dead-lettered (the chunk is split to find it). "*pg" is
 * closed and set to NULL when the connection is lost.
 */
int docs_fetch(struct docs *d, PGconn **pg, const struct keyset *keys, uint64_t version,
               struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Run a document query ("sql" with text params) through a cursor on "conn"
 * (in a transaction the caller opened) and index every row with "version";
 * the writer's bulk is flushed at the end.
 */
int docs_index_query(struct docs *d, PGconn *conn, const char *sql, int nparams,
                     const char *const *params, uint64_t version, docs_progress_fn progress,
                     void *arg, long long *ndocs, struct pgs_error *err) PGS_MUSTCHECK;

/* Index every document of the entry at "version", in a snapshot of its own, on "pg". */
int docs_reindex_all(struct docs *d, PGconn *pg, uint64_t version,
                     struct pgs_error *err) PGS_MUSTCHECK;

#endif
