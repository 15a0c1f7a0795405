/*
 * outbox_row.h - one row of the trigger mode's outbox as a change record.
 * Pure (no connection), so that the fuzzer can feed it what anyone able to
 * insert into the outbox could write: the columns come as libpq's text.
 */
#ifndef PGS_OUTBOX_ROW_H
#define PGS_OUTBOX_ROW_H

#include <stddef.h>
#include <stdint.h>

#include "change.h"

/* The text of the columns id, xid, s, t, op, old, new; "oldv"/"newv" NULL for SQL NULL. */
struct outbox_row {
    const char *id, *xid, *schema, *table, *op;
    const char *oldv, *newv;
    size_t old_len, new_len;
};

/*
 * Fill "c" (its strings new: change_free) with the row's record at
 * "version". 0 for an op the triggers write (I, U, D, T); 1 for any other:
 * it becomes an op the consumers refuse and dead-letter with the reason
 * ('?' or the unknown letter), never a TRUNCATE. A JSON value that is not
 * an object is left out, as if NULL.
 */
int outbox_row_record(const struct outbox_row *row, uint64_t version, struct change *c);

#endif
