/*
 * ops.h - what the operations tools (pgsync-queue, -replay, -dlq, -slot)
 * share: loading the config the way every binary does, the state of a
 * replication slot and the current WAL position (stream ids and XINFO
 * readings are rstream.h's). Nothing here prints but ops_load(), which
 * reports for main.
 */
#ifndef PGS_OPS_H
#define PGS_OPS_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "app.h"
#include "config.h"
#include "error.h"

/*
 * config_load() and app_load() for "prog"; on failure prints one line (and
 * the schema's problems) to stderr and returns the exit status main should
 * use (2 for a bad setting, 1 for a schema or database problem); 0 when
 * both are loaded (app_free() is then the caller's).
 */
int ops_load(const char *prog, const char *config_path, struct config *cfg, struct app *app);

/* One replication slot, as pg_replication_slots shows it. */
struct ops_slot {
    int exists;
    int active;
    int active_pid; /* 0 when none */
    char plugin[64];
    char database[128];
    char restart_lsn[32]; /* "" when null */
    char confirmed_flush_lsn[32];
    char wal_status[32];
    long long retained_bytes; /* pg_current_wal_lsn() - restart_lsn; -1 when unknown */
};

int ops_slot_query(PGconn *conn, const char *slot, struct ops_slot *out,
                   struct pgs_error *err) PGS_MUSTCHECK;
/* {"name", "exists", "active", "active_pid", ...}: a new reference. */
json_t *ops_slot_json(const char *name, const struct ops_slot *s);

/* pg_current_wal_lsn() as a number (the versions change records carry). */
int ops_wal_lsn(PGconn *conn, uint64_t *lsn, struct pgs_error *err) PGS_MUSTCHECK;

#endif
