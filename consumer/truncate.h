/*
 * truncate.h - a TRUNCATE of the root table, which leaves no version behind
 * for documents not yet written: the fence and the sweep.
 *
 * The fence is the version of the newest TRUNCATE of the root table (field
 * "truncated_lsn" of the entry's meta hash; 0 when none). The sweep deletes,
 * at the fence's version, every document of the index written with an older
 * one. A write older than the fence that the engine accepted after the fence
 * was raised may have brought back a document the sweep did not see (it was
 * not in the index yet): its writer deletes it again, at the fence's
 * version, once its bulk is answered (truncate_check_answered).
 */
#ifndef PGS_TRUNCATE_H
#define PGS_TRUNCATE_H

#include <signal.h>
#include <stdint.h>

#include "redis.h"

#include "app.h"
#include "error.h"
#include "es.h"

struct truncate_fence;
struct bulk_writer;

/* The fence of "ae" (borrowed, as "es" and "stop"). */
struct truncate_fence *truncate_fence_new(const struct config *cfg, const struct app_entry *ae,
                                          struct es_client *es,
                                          volatile sig_atomic_t *stop);
void truncate_fence_free(struct truncate_fence *t);

/* The connection the fence is read from and raised in (borrowed; NULL: none yet). */
void truncate_set_redis(struct truncate_fence *t, struct redis_conn *rc);

/* Read the fence into *fence (0 when no root TRUNCATE was seen). */
int truncate_read_fence(struct truncate_fence *t, uint64_t *fence, struct pgs_error *err)
    PGS_MUSTCHECK;

/* Raise the fence to "version"; never lowers it. */
int truncate_raise_fence(struct truncate_fence *t, uint64_t version, struct pgs_error *err)
    PGS_MUSTCHECK;

/*
 * After bulk "done" was answered: when it held a write older than the fence,
 * delete those writes again at the fence's version. No-op without Redis.
 */
int truncate_check_answered(struct truncate_fence *t, const struct es_bulk *done,
                            struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Delete, at version "fence", every document of the index written with an
 * older version (a newer write keeps its own), through writer "w" after
 * draining it; once per fence per process unless "always". "why" names the
 * occasion in the log.
 */
int truncate_sweep(struct truncate_fence *t, struct bulk_writer *w, uint64_t fence, int always,
                   const char *why, struct pgs_error *err) PGS_MUSTCHECK;

#endif
