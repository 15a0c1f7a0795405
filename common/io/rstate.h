/*
 * rstate.h - every key the project keeps in Redis but the change streams'
 * entries: their names, the encoding of their values, and typed calls for
 * each use. Commands go through redis.h; the stream commands are rstream.h's.
 *
 * Keys carry the index in a hash tag so that a Redis Cluster keeps all keys
 * of one index on one node, "<prefix>:{<base>}:<what>", where <base> is the
 * entry's key base (the alias for version 1, "<alias>_v<N>" after):
 *   changes    stream: the change records (rstream.h)
 *   load       stream: the work items of the initial load, one per range
 *   dlq        stream: dead letters (index, id, error, reason, entries, ts, doc)
 *   meta       hash:   truncated_lsn (the root TRUNCATE fence, 16 hex digits);
 *                      load_id, load_bounds (first page of each range, decimal,
 *                      comma-separated), load_parts, load_docs (the load in
 *                      progress); loaded_version, loaded_docs, loaded_at (the
 *                      last completed load); group:<stream key> (when the
 *                      stream's consumer group was first made, unix seconds)
 *   loaddone   set:    the ranges of the current load that are done
 * and, per alias, "<prefix>:{<alias>}:versions" (hash: see version.h).
 */
#ifndef PGS_RSTATE_H
#define PGS_RSTATE_H

#include <stdint.h>

#include "config.h"
#include "error.h"
#include "redis.h"

struct strbuf;
struct version_state;

/* "<prefix>:{<base>}:<what>" into "buf"; returns "buf". */
const char *rstate_key(const struct config *cfg, const char *base, const char *what, char *buf,
                       size_t len);

/* ---- encodings ---- */

#define RSTATE_LSN_LEN 17 /* 16 hex digits and the NUL */

/* A version (LSN) as 16 hex digits: of one width, they compare as strings like the numbers. */
void rstate_lsn_encode(uint64_t v, char out[RSTATE_LSN_LEN]);
/* Its number; 0 for NULL or "". */
uint64_t rstate_lsn_decode(const char *s);
/* "0,1000,2000": the ranges' first pages; *out is new (caller frees) even on -1. */
int rstate_bounds_decode(const char *s, long long **out, int *n);
void rstate_bounds_encode(const long long *bounds, int n, struct strbuf *out);

/* ---- the root TRUNCATE fence ---- */

/* The entry's fence (0 when none). */
int rstate_fence_read(struct redis_conn *rc, const struct config *cfg, const char *base,
                      uint64_t *fence, struct pgs_error *err) PGS_MUSTCHECK;
/* Raise the fence to "version" atomically; never lowers it. */
int rstate_fence_raise(struct redis_conn *rc, const struct config *cfg, const char *base,
                       uint64_t version, struct pgs_error *err) PGS_MUSTCHECK;

/* ---- the initial load ---- */

/*
 * The split of an interrupted load: its id into "load_id" and its ranges'
 * bounds into *bounds (new, caller frees); *found = 0 (and *bounds NULL)
 * when there is none or it does not decode.
 */
int rstate_load_split_read(struct redis_conn *rc, const struct config *cfg, const char *base,
                           char *load_id, size_t idlen, long long **bounds, int *nbounds,
                           int *found, struct pgs_error *err) PGS_MUSTCHECK;
/* Record a new split (no range done, no document counted yet). */
int rstate_load_split_begin(struct redis_conn *rc, const struct config *cfg, const char *base,
                            const char *load_id, const long long *bounds, int nbounds,
                            struct pgs_error *err) PGS_MUSTCHECK;
/* Is range "part" of load "load_id" still to do (the load is current, the range not done)? */
int rstate_load_range_wanted(struct redis_conn *rc, const struct config *cfg, const char *base,
                             const char *load_id, int part, int *wanted,
                             struct pgs_error *err) PGS_MUSTCHECK;
/* Mark range "part" of the current load done. */
int rstate_load_mark_done(struct redis_conn *rc, const struct config *cfg, const char *base,
                          int part, struct pgs_error *err) PGS_MUSTCHECK;
/* is_done[k] = 1 for every range k < "parts" done; *ndone counts them. */
int rstate_load_parts_done(struct redis_conn *rc, const struct config *cfg, const char *base,
                           int parts, char *is_done, int *ndone,
                           struct pgs_error *err) PGS_MUSTCHECK;
/* Count "n" more documents loaded (for the progress display: a caller may ignore a failure). */
int rstate_load_add_docs(struct redis_conn *rc, const struct config *cfg, const char *base,
                         long long n, struct pgs_error *err);
/* Documents loaded and ranges done so far. */
int rstate_load_progress(struct redis_conn *rc, const struct config *cfg, const char *base,
                         long long *docs, long long *parts_done,
                         struct pgs_error *err) PGS_MUSTCHECK;
/* Is load "load_id" over (every range done, or another load current)? */
int rstate_load_is_finished(struct redis_conn *rc, const struct config *cfg, const char *base,
                            const char *load_id, int *finished,
                            struct pgs_error *err) PGS_MUSTCHECK;
/* The load is complete at "version": remember it, forget the split. */
int rstate_load_finish(struct redis_conn *rc, const struct config *cfg, const char *base,
                       uint64_t version, long long docs, long long at_unix,
                       struct pgs_error *err) PGS_MUSTCHECK;
/* Was a load ever completed? */
int rstate_load_completed(struct redis_conn *rc, const struct config *cfg, const char *base,
                          int *completed, struct pgs_error *err) PGS_MUSTCHECK;

/* ---- dead letters (the entry's "dlq" stream, named by its key as the tools show it) ---- */

/* One dead letter; every string is "" when absent (never NULL on read). */
struct rstate_dead_letter {
    const char *entry; /* its id in the dead-letter stream (read only) */
    const char *index, *id, *error, *reason, *entries;
    const char *ts;    /* unix seconds; on write NULL: now */
    const char *doc;   /* the document as sent; NULL (read: or empty) when none */
    size_t doclen;
};
int rstate_dlq_add(struct redis_conn *rc, const char *dlq, const struct rstate_dead_letter *d,
                   struct pgs_error *err) PGS_MUSTCHECK;
/* Called on each dead letter (borrowed for the call); -1 stops (the callee sets the error). */
typedef int (*rstate_dead_letter_fn)(const struct rstate_dead_letter *d, void *arg);
/* Every dead letter of "dlq", oldest first. */
int rstate_dlq_foreach(struct redis_conn *rc, const char *dlq, rstate_dead_letter_fn fn, void *arg,
                       struct pgs_error *err) PGS_MUSTCHECK;
/* The dead letter "entry" of "dlq", if there is one. */
int rstate_dlq_find(struct redis_conn *rc, const char *dlq, const char *entry,
                    rstate_dead_letter_fn fn, void *arg, struct pgs_error *err) PGS_MUSTCHECK;
int rstate_dlq_delete(struct redis_conn *rc, const char *dlq, const char *entry,
                      struct pgs_error *err) PGS_MUSTCHECK;
/* Delete every dead letter of "dlq". */
int rstate_dlq_purge(struct redis_conn *rc, const char *dlq, struct pgs_error *err) PGS_MUSTCHECK;
int rstate_dlq_length(struct redis_conn *rc, const char *dlq, long long *n,
                      struct pgs_error *err) PGS_MUSTCHECK;

/* ---- the versions of an alias (version.h decides, this stores) ---- */

/* "<prefix>:{<alias>}:versions" */
const char *rstate_versions_key(const struct config *cfg, const char *alias, char *buf,
                                size_t len);
/* Read the small fields into "st" (zeroed first; a missing hash leaves it so). */
int rstate_versions_read(struct redis_conn *rc, const struct config *cfg, const char *alias,
                         struct version_state *st, struct pgs_error *err) PGS_MUSTCHECK;
/* The stored schema text of version "v": new (caller frees), or NULL (err untouched) when none. */
int rstate_versions_schema(struct redis_conn *rc, const struct config *cfg, const char *alias,
                           int v, char **schema, struct pgs_error *err) PGS_MUSTCHECK;
/* Version "live" as the first state, unless a state exists already (atomic: one racer wins). */
int rstate_versions_init(struct redis_conn *rc, const struct config *cfg, const char *alias,
                         int live, const char *index, const char *fp, const char *schema,
                         struct pgs_error *err) PGS_MUSTCHECK;
/*
 * The changes of the state: each in one MULTI/EXEC with a bump of the
 * generation, so that readers never see half a change and see that it changed.
 */
int rstate_versions_set_target(struct redis_conn *rc, const struct config *cfg, const char *alias,
                               int target, const char *index, const char *fp, const char *schema,
                               struct pgs_error *err) PGS_MUSTCHECK;
/* Forget target "target" (0: none recorded, its schema neither). */
int rstate_versions_clear_target(struct redis_conn *rc, const struct config *cfg, const char *alias,
                                 int target, struct pgs_error *err) PGS_MUSTCHECK;
/* st->target becomes live, st->live_index retired at "now_unix". */
int rstate_versions_promote(struct redis_conn *rc, const struct config *cfg, const char *alias,
                            const struct version_state *st, long long now_unix,
                            struct pgs_error *err) PGS_MUSTCHECK;
/* Forget the retired index (no generation bump: nobody serves it). */
int rstate_versions_forget_retired(struct redis_conn *rc, const struct config *cfg,
                                   const char *alias, struct pgs_error *err) PGS_MUSTCHECK;

/* ---- consumer groups ---- */

/*
 * The consumer group "group" of "stream", made (at the stream's start) the
 * first time only: its creation is recorded in "meta", and a group that
 * existed and is gone is never made again behind the user's back (its
 * position is lost: what was not yet read would be skipped or re-read
 * blindly). 0: the group is there; 1: it disappeared ("err" says so, when
 * it was made and how to recover); -1: Redis failed (err).
 */
int rstate_group_ensure(struct redis_conn *rc, const char *stream, const char *meta,
                        const char *group, struct pgs_error *err) PGS_MUSTCHECK;
/* Record that "group" of "stream" exists (after an explicit creation: a load, a replay). */
int rstate_group_mark(struct redis_conn *rc, const char *stream, const char *meta,
                      struct pgs_error *err) PGS_MUSTCHECK;

/* ---- a whole entry ---- */

/* Delete every key of the entry "base" (a discarded version's): streams, meta, load state. */
int rstate_entry_delete(struct redis_conn *rc, const struct config *cfg, const char *base,
                        struct pgs_error *err) PGS_MUSTCHECK;

#endif
