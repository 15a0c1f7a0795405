/*
 * outbox_ddl.h - the database objects of the trigger outbox (PGSYNC_MODE=
 * notify): the schema pgsync, the outbox table pgsync."<slot>", the trigger
 * function pgsync."<slot>"() that writes the link columns of each change to
 * it and wakes the producer, and per table a row trigger "<slot>" and a
 * TRUNCATE trigger "<slot>_t". bootstrap.c calls these inside its run (its
 * plan collects what the role may not do); the producer's drain (outbox.c)
 * reads the table they create.
 */
#ifndef PGS_OUTBOX_DDL_H
#define PGS_OUTBOX_DDL_H

#include "app.h"
#include "bootstrap_plan.h"
#include "error.h"
#include "strbuf.h"

#define OUTBOX_SCHEMA "pgsync"

/* The outbox table of "slot", quoted as needed: pgsync."<slot>". */
void outbox_ddl_add_name(struct strbuf *sb, const char *slot);

/* Create or bring up to date what the entry's outbox needs (idempotent). */
int outbox_ddl_setup(struct bootstrap_plan *p, struct pgs_error *err) PGS_MUSTCHECK;

/* Remove the triggers, the function and the outbox; the schema once it is empty. */
int outbox_ddl_teardown(struct bootstrap_plan *p, struct pgs_error *err) PGS_MUSTCHECK;

#endif
