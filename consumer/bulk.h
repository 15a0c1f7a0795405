/*
 * bulk.h - the writer of one entry: index and delete writes go into a bulk,
 * and full bulks leave through a pipe of sender threads (es_pipe.h), so that
 * the next documents are read while a bulk is in flight. Documents the
 * engine refuses for good go to the dead-letter stream with the reason.
 *
 * At most "depth" bulks are in flight, and a bulk leaves only when none in
 * flight holds one of its _ids: two writes of one _id on the wire at once
 * may be applied in either order, and the engine would keep whichever came
 * last (a stale write). A later write of a document waits for the earlier
 * one's answer. Each bulk gets a sequence number: bulk_done(w, seq) tells
 * when every bulk up to "seq" was answered, and its rejects dead-lettered.
 */
#ifndef PGS_BULK_H
#define PGS_BULK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "redis.h"

#include "app.h"
#include "config.h"
#include "error.h"
#include "es.h"

/*
 * Bulks in flight during a load range, per worker, while the next one is
 * filled from the cursor. With the one being filled, at most
 * (BULK_LOAD_DEPTH + 1) x PGSYNC_BULK_MAX_BYTES of documents per process
 * (plus a request body of that size per bulk on the wire). 1, not 2: on 2
 * cores the load is CPU-bound and 2 was not measurably faster (bench/RESULTS.md)
 * but cost 19 MiB more over the process tree (83 -> 102 MiB, 100,000 books).
 */
#define BULK_LOAD_DEPTH 1
/*
 * Bulks of change batches in flight: the next batch's bulk leaves while the
 * previous one's is on the wire only when they share no _id (never two
 * writes of one _id in flight: see above).
 */
#define BULK_CHANGE_DEPTH 2
#define BULK_MAX_DEPTH    2 /* the larger of the two: sender threads, flights */

struct bulk_writer;
struct truncate_fence;

/* What the engine answered, for logs and metrics. */
struct bulk_stats {
    unsigned long long docs_indexed, docs_deleted, docs_rejected;
    unsigned long long docs_rerouted; /* copies deleted from a shard their routing left */
};

/* A writer for "ae" (borrowed, as "cfg", "es" and "stop"); depth BULK_CHANGE_DEPTH. */
struct bulk_writer *bulk_writer_new(const struct config *cfg, const struct app_entry *ae,
                                    struct es_client *es, volatile sig_atomic_t *stop);
/* Waits for the requests on the wire; unanswered ones are not acknowledged. */
void bulk_writer_free(struct bulk_writer *w);

/* The dead-letter stream's connection (borrowed; NULL: none yet). */
void bulk_set_redis(struct bulk_writer *w, struct redis_conn *rc);
/* The fence each answered bulk is checked against (borrowed; truncate.h). */
void bulk_set_fence(struct bulk_writer *w, struct truncate_fence *t);
/* The stream ids of the batch being written, named by its dead letters (borrowed; NULL: none). */
void bulk_set_origin(struct bulk_writer *w, const char *origin);
/* Bulks in flight at most: BULK_CHANGE_DEPTH or BULK_LOAD_DEPTH. */
void bulk_set_depth(struct bulk_writer *w, int depth);

/* Forget what the bulk being filled holds (nothing of it was sent). */
void bulk_reset(struct bulk_writer *w);
/* Queue an index of "doc" (routed by the entry's "routing" field) at "version". */
void bulk_add_index(struct bulk_writer *w, const char *id, const char *doc, size_t len,
                    uint64_t version);
/* The routing value of "doc" (the entry's "routing" field; NULL: none); caller frees. */
char *bulk_routing_of(const struct bulk_writer *w, const char *doc, size_t len);
/*
 * With custom routing a document lives on the shard of its routing value:
 * a delete must name the value, and a document whose value changed leaves a
 * copy on its old shard. Find every copy of "ids" (after every write of
 * them was answered, and a refresh) and queue a delete, at "version", of
 * each one not under want[i] (NULL: the row is gone, no copy may stay) and
 * not newer than "version".
 */
int bulk_drop_misrouted(struct bulk_writer *w, const char *const *ids, const char *const *want,
                        int n, uint64_t version, struct pgs_error *err) PGS_MUSTCHECK;
/* Queue a delete of "id" at "version" ("routing" may be NULL). */
void bulk_add_delete(struct bulk_writer *w, const char *id, uint64_t version, const char *routing);

/*
 * Hand what the bulk holds to the pipe, after waiting for room (fewer than
 * "depth" in flight, none holding one of its _ids). -1 when a bulk answered
 * meanwhile failed.
 */
int bulk_flush(struct bulk_writer *w, struct pgs_error *err) PGS_MUSTCHECK;
/* bulk_flush once the bulk holds PGSYNC_BULK_BYTES or more, or ELASTICSEARCH_CHUNK_SIZE documents. */
int bulk_flush_if_full(struct bulk_writer *w, struct pgs_error *err) PGS_MUSTCHECK;
/* Take the answered bulks, without waiting: count them, dead-letter their rejects. */
int bulk_poll(struct bulk_writer *w, struct pgs_error *err) PGS_MUSTCHECK;
/* Wait for every bulk in flight and take them; -1 with the first failure's error. */
int bulk_drain(struct bulk_writer *w, struct pgs_error *err) PGS_MUSTCHECK;

/* Bulks handed to the pipe and not yet taken back. */
int bulk_inflight(const struct bulk_writer *w);
/* The last bulk handed to the pipe (0: none yet). */
uint64_t bulk_last_seq(const struct bulk_writer *w);
/* 1 when every bulk up to "seq" was answered and taken, and none of them failed. */
int bulk_done(const struct bulk_writer *w, uint64_t seq);
/* After bulk_drain: forget the failed bulks (their batches are read again). */
void bulk_forget_failures(struct bulk_writer *w);

/* Write one dead letter (fields as in the README); 0 when Redis accepted it. */
int bulk_dead_letter(struct bulk_writer *w, const char *id, const char *reason,
                     const char *error_type, const char *doc, size_t doclen,
                     struct pgs_error *err) PGS_MUSTCHECK;

/* Counters that live as long as "w" (metrics read them at every scrape). */
const struct bulk_stats *bulk_writer_stats(const struct bulk_writer *w);

#endif
