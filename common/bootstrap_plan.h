/*
 * bootstrap_plan.h - one bootstrap run's steps, shared by the two capture
 * modes' DDL (the logical mode's in bootstrap.c, the trigger outbox's in
 * producer/outbox_ddl.c): the connection, the DDL steps taken, and the SQL
 * script left for a DBA when the role may not take a step. Only the
 * bootstrap code includes it; everyone else uses bootstrap.h.
 */
#ifndef PGS_BOOTSTRAP_PLAN_H
#define PGS_BOOTSTRAP_PLAN_H

#include <libpq-fe.h>

#include "app.h"
#include "error.h"
#include "strbuf.h"

struct bootstrap_plan {
    PGconn *conn;
    const struct app_entry *ae;
    const char *role;
    struct strbuf dba; /* SQL script for a superuser or the tables' owner */
    int ndba;
    int restart;       /* the script holds ALTER SYSTEM lines */
    int defer_rest;    /* a step was deferred: later steps depend on it, defer them too */
};

/*
 * Run one DDL step, or leave it to the DBA when the role lacks the right
 * (or an earlier step it depends on was left to the DBA). "dep": the step
 * needs the deferred ones before it. "done_msg" (may be NULL) is logged
 * when the step ran.
 */
int bootstrap_plan_step(struct bootstrap_plan *p, const char *sql, int dep, const char *done_msg,
                        struct pgs_error *err) PGS_MUSTCHECK;
/* Leave "sql" to the DBA's script. */
void bootstrap_plan_defer(struct bootstrap_plan *p, const char *sql);

/* The first value of the first row ("" when no row or NULL); a new string, or NULL on error. */
char *bootstrap_query_value(PGconn *conn, const char *sql, int nparams,
                            const char *const *params, struct pgs_error *err);

/* Is table "i" of the entry a view (its changes come through its base tables)? */
int bootstrap_table_is_view(const struct app_entry *ae, int i);
/* schema.table, each quoted as needed */
void bootstrap_add_table_name(struct strbuf *sb, const struct schema_table_ref *t);

#endif
