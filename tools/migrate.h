/*
 * migrate.h - zero-downtime schema changes (see version.h for the state).
 *
 * When the schema of an index changes, pgsync builds version N+1 beside the
 * live version N: its own slot and publication (created before the load's
 * snapshot, so no change is missed), stream and group, and physical index.
 * Producers and consumers serve both versions meanwhile (they restart when
 * the set of versions changes), so the live index stays fresh and the new
 * one catches up. Once the new one has every change up to a WAL position
 * sampled after its load, one _aliases request moves the alias; the old
 * version's slot, publication, triggers and Redis keys are removed, and its
 * index is deleted after a grace period (or kept).
 */
#ifndef PGS_MIGRATE_H
#define PGS_MIGRATE_H

#include "redis.h"
#include <signal.h>

#include "app.h"
#include "config.h"
#include "error.h"

struct es_client;

struct migrate_opts {
    int grace_s;           /* the old index is deleted this long after the swap */
    int keep_old;          /* never delete the old index */
    int catchup_timeout_s; /* give up waiting for the new version to catch up */
    int quiet;
    int workers;           /* load workers */
    volatile sig_atomic_t *stop;
};

/*
 * After app_bind_versions(APP_BIND_UNBOUND_OK): begin a migration for every
 * file entry that matches no active version (abandoning another migration
 * of the same index first), and abandon a migration whose index's file entry
 * is the live version again. On return every entry of "app" is bound and
 * *targets counts the migrations to finish. With "abort_all", abandon every
 * migration and begin none: "app" is then only fit to be freed.
 */
int migrate_plan(const struct config *cfg, struct app *app, struct redis_conn *rc,
                 struct es_client *es, int abort_all, int *targets, struct pgs_error *err)
    PGS_MUSTCHECK;

/*
 * Finish the migration whose target is entries[idx]: load it (resuming a
 * load in progress), wait until it has caught up, swap the alias, retire
 * the old version and, after the grace period, delete its index. Needs a
 * producer and consumers serving both versions while it waits (pgsync
 * --daemon runs them; standalone ones restart on the version change).
 */
int migrate_finish(const struct config *cfg, struct app *app, int idx,
                   const struct migrate_opts *opts, struct pgs_error *err) PGS_MUSTCHECK;

/* Delete retired indices whose grace period has passed (after an interrupted run). */
int migrate_reap(const struct config *cfg, struct app *app, struct redis_conn *rc,
                 struct es_client *es, const struct migrate_opts *opts, struct pgs_error *err)
    PGS_MUSTCHECK;

#endif
