/*
 * version.h - versions of an index: every index we create is a physical
 * index "<alias>_v<N>" behind an alias named as the schema's "index", so
 * that a changed schema can be built beside the live index and swapped in
 * with one atomic _aliases call (zero-downtime migration).
 *
 * The state of an alias lives in the Redis hash "<prefix>:{<alias>}:versions":
 *   live, live_index, live_fp      the version searches see
 *   target, target_index, target_fp  a migration in progress (absent when none)
 *   schema:<N>                     the schema entry (its JSON) of every active version
 *   retired_index, retired_at      an old index waiting out its grace period
 *   generation                     bumped whenever the set of active versions changes;
 *                                  producers and consumers restart on it
 * When the hash is lost (Redis without persistence) it is rebuilt from the
 * engine: the alias names the live index, whose mapping _meta.pgsync holds
 * its version, fingerprint and schema.
 *
 * Version 1 keeps the unversioned Redis keys and slot name ("{books}"), so
 * a deployment from before versioning keeps its stream; an index created
 * before versioning (a concrete index named like the alias) is adopted as
 * version 1 and is replaced atomically by the first migration.
 */
#ifndef PGS_VERSION_H
#define PGS_VERSION_H

#include "redis.h"

#include "config.h"
#include "error.h"
#include "schema.h"

struct es_client;

#define VERSION_FP_LEN 17 /* 16 hex digits and the NUL */

struct version_state {
    int live;                         /* 0: never set up */
    char live_index[256];
    char live_fp[VERSION_FP_LEN];
    int target;                       /* 0: no migration in progress */
    char target_index[256];
    char target_fp[VERSION_FP_LEN];
    char retired_index[256];          /* "" when none */
    long long retired_at;             /* unix seconds */
    long long generation;
};

/* 64-bit FNV-1a of the entry's JSON (sorted keys), as 16 hex digits. */
void version_fingerprint(const struct schema_entry *e, char out[VERSION_FP_LEN]);
/* "<alias>_v<N>" */
void version_index_name(const char *alias, int version, char *out, size_t len);
/* The name Redis keys, the slot and the publication derive from: the alias for version 1. */
void version_key_base(const char *alias, int version, char *out, size_t len);
/* "<prefix>:{<alias>}:versions" */
void version_state_key(const struct config *cfg, const char *alias, char *out, size_t len);

/* Read the state; a missing hash leaves st->live == 0. */
int version_read(struct redis_conn *rc, const struct config *cfg, const char *alias,
                 struct version_state *st, struct pgs_error *err) PGS_MUSTCHECK;
/* The stored schema entry of version "v", a new string (caller frees), or NULL with "err". */
char *version_schema(struct redis_conn *rc, const struct config *cfg, const char *alias, int v,
                     struct pgs_error *err);

/*
 * The first call for an alias: rebuild the state from the engine (alias or
 * legacy index), or start version 1 with "e" when nothing exists. Atomic:
 * when two processes race, one state wins and both read it into "st".
 */
int version_init(struct redis_conn *rc, const struct config *cfg, struct es_client *es,
                 const struct schema_entry *e, struct version_state *st, struct pgs_error *err)
    PGS_MUSTCHECK;

/* Record a migration to version st->live+1 (or past an abandoned target) for entry "e". */
int version_begin_target(struct redis_conn *rc, const struct config *cfg,
                         const struct schema_entry *e, struct version_state *st,
                         struct pgs_error *err) PGS_MUSTCHECK;
/* Forget the target (after its objects were removed). */
int version_clear_target(struct redis_conn *rc, const struct config *cfg, const char *alias,
                         struct pgs_error *err) PGS_MUSTCHECK;
/* The target became live: the old live index is retired (now). */
int version_promote(struct redis_conn *rc, const struct config *cfg, const char *alias,
                    const struct version_state *st, struct pgs_error *err) PGS_MUSTCHECK;
/* The retired index was deleted (or kept for good). */
int version_forget_retired(struct redis_conn *rc, const struct config *cfg, const char *alias,
                           struct pgs_error *err) PGS_MUSTCHECK;

/* ---- the engine side ---- */

/* The concrete indices behind "alias" (a new NULL-terminated array),
                                        or NULL when it is no alias. */
char **version_alias_indices(struct es_client *es, const char *alias, struct pgs_error *err);
void version_strv_free(char **v);
/*
 * Point "alias" at "index" alone, in one _aliases request: removes it from
 * "old" (an index behind the alias), or deletes "old" when it is a concrete
 * index named like the alias (remove_index). "old" may be NULL.
 */
int version_alias_swap(struct es_client *es, const char *alias, const char *old, const char *index,
                       struct pgs_error *err) PGS_MUSTCHECK;

#endif
