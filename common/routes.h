/*
 * routes.h - which streams the producer reading a slot writes to.
 *
 * One slot serves every entry of a database, and a producer learns of a new
 * entry or index version only as it (re)starts. A load must not take its
 * snapshot before the producer writes the entry's stream, or the changes
 * right after the snapshot would reach no stream. So the producer, once
 * streaming and before it reads a change, publishes its walsender's pid and
 * its streams in the hash "<prefix>:{<slot>}:routes"; a reader of the hash
 * trusts it only when that pid is the slot's active_pid in PostgreSQL (the
 * producer that reads the slot now). A slot nobody reads is safe too: the
 * next producer binds the versions before it reads, and checks them again
 * once streaming (repl.c).
 */
#ifndef PGS_ROUTES_H
#define PGS_ROUTES_H

#include <signal.h>

#include <libpq-fe.h>

#include "app.h"
#include "config.h"
#include "error.h"
#include "redis.h"

/* Publish that the reader of "slot" (walsender "pid") writes the "n" streams. */
int routes_publish(struct redis_conn *rc, const struct config *cfg, const char *slot, int pid,
                   const char *const *streams, int n, struct pgs_error *err) PGS_MUSTCHECK;

/* *reading: a producer reads the slot now; *serves: and it writes to "stream". */
int routes_check(PGconn *conn, struct redis_conn *rc, const struct config *cfg, const char *slot,
                 const char *stream, int *reading, int *serves, struct pgs_error *err)
    PGS_MUSTCHECK;

/*
 * For a standby: the first of the "n" streams that the published routes of
 * "slot" lack (*lacking), or -1 when they hold all (or none are published).
 * Another producer that reads the slot without them serves another schema
 * file: these streams would get nothing.
 */
int routes_lacking(struct redis_conn *rc, const struct config *cfg, const char *slot,
                   const char *const *streams, int n, int *lacking, struct pgs_error *err)
    PGS_MUSTCHECK;

/*
 * Wait until no producer reads the entry's slot, or the one that does
 * writes its stream ("serve" 1) or no longer does ("serve" 0). Logs what it
 * waits for every 10 s; an error after "timeout_s" (0: no limit) or *stop.
 */
int routes_wait(const struct config *cfg, const struct app_entry *ae, int serve, int timeout_s,
                volatile sig_atomic_t *stop, struct pgs_error *err) PGS_MUSTCHECK;

#endif
