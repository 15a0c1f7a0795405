/*
 * pgerr.h - what a failed PostgreSQL statement means for the pipeline, by
 * its SQLSTATE (and whether the connection still lives), not by the text.
 *
 *   PGS_ERR_TRANSIENT  the connection, a cancel or timeout, a deadlock or a
 *                      serialization failure, too many connections, out of
 *                      memory or disk, a lock not granted, a read-only
 *                      standby, an object or privilege missing (fixed by a
 *                      DBA, not by dropping documents): retry with backoff,
 *                      never dead-letter
 *   PGS_ERR_DOCUMENT   an error that belongs to a row: a value that will not
 *                      cast or is out of range (class 22), a constraint
 *                      (23), an exception raised by a function (P0, 38, 39):
 *                      the row alone is dead-lettered
 */
#ifndef PGS_PGERR_H
#define PGS_PGERR_H

#include "error.h"

/* "sqlstate" may be NULL (libpq's own failure); "connection_ok": PQstatus is CONNECTION_OK. */
enum pgs_errkind pgerr_kind(const char *sqlstate, int connection_ok);

/* A short name of the SQLSTATE's class for messages ("query canceled", ...), never NULL. */
const char *pgerr_class_name(const char *sqlstate);

#endif
