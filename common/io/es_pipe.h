/*
 * es_pipe.h - _bulk requests in flight while the caller goes on working.
 *
 * A pipe owns a few sender threads, each with its own es_client (a client
 * is not thread-safe). es_pipe_submit() hands a bulk over and returns at
 * once; a sender runs es_bulk_flush() on it (every item read, classified,
 * retried as ever); es_pipe_next() gives the finished job back to the
 * caller's thread, which acts on the classes (dead letters, counts). The
 * client hooks (metrics, health) are not thread-safe either: the senders
 * queue their events and es_pipe_next() forwards them from the caller's
 * thread, calling "waiting" about every 50 ms while it blocks.
 *
 * The pipe does not order anything: a caller that must never have two
 * writes of one _id in flight (two bulks in flight can be answered in
 * either order, and the older copy would win) keeps at most
 * one job in flight, or only jobs with disjoint _id sets.
 */
#ifndef PGS_ES_PIPE_H
#define PGS_ES_PIPE_H

#include <signal.h>
#include <stdint.h>

#include "es.h"

struct es_pipe_job {
    struct es_bulk bulk;     /* the items, classified by es_bulk_flush */
    uint64_t seq;            /* 1, 2, ... in the order of es_pipe_submit */
    int rc;                  /* es_bulk_flush's return */
    struct pgs_error err;    /* its error when rc < 0 */
    char *origin;            /* the caller's label (owned by the job), or NULL */
    struct es_pipe_job *next; /* the pipe's queues */
};

struct es_pipe;

/*
 * A pipe of "senders" threads, each with a copy of "proto"'s settings (not
 * its hooks); "stop" (may be NULL) ends their retries. NULL with "err" when
 * a client or a thread cannot be made.
 */
struct es_pipe *es_pipe_new(const struct es_client *proto, int senders,
                            volatile sig_atomic_t *stop, struct pgs_error *err);
/* Waits for the requests being sent, drops the jobs not returned yet. */
void es_pipe_free(struct es_pipe *p);

/* Hooks called from the caller's thread by es_pipe_next (copied; NULL: none). */
void es_pipe_set_hooks(struct es_pipe *p, const struct es_hooks *hooks);

/*
 * Hand the items of "b" to a new job and queue it; "b" is left empty for
 * the next items. Never blocks. "origin" is copied. Returns the job's seq.
 */
uint64_t es_pipe_submit(struct es_pipe *p, struct es_bulk *b, const char *origin);

/* Jobs submitted and not yet returned by es_pipe_next. */
int es_pipe_inflight(const struct es_pipe *p);

/* The lowest seq not yet returned by es_pipe_next (the next seq when none is). */
uint64_t es_pipe_oldest(const struct es_pipe *p);

/*
 * A finished job (the caller frees it with es_pipe_job_free), or NULL: with
 * "block" 0 when none has finished yet, with "block" 1 only when none is in
 * flight. Forwards the senders' hook events either way.
 */
struct es_pipe_job *es_pipe_next(struct es_pipe *p, int block);

void es_pipe_job_free(struct es_pipe_job *j);

#endif
