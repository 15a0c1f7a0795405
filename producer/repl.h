/*
 * repl.h - one logical replication stream (one schema entry's slot) in the
 * producer's libev loop: START_REPLICATION with pgoutput, decoding, change
 * records pushed to the entry's Redis stream in pipelined batches, and the
 * standby status updates that confirm a position only after Redis has
 * accepted every record up to it.
 */
#ifndef PGS_REPL_H
#define PGS_REPL_H

#include <stdint.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "app.h"
#include "config.h"

struct repl;

struct repl_stats {
    unsigned long long changes_read;   /* I/U/D/T messages for our tables */
    unsigned long long records_written;
    unsigned long long transactions;
    uint64_t confirmed_lsn;            /* last position reported as flushed */
    uint64_t server_lsn;               /* the server's end of WAL, from keepalives */
    int connected;
};

/*
 * "rcp" points at the producer's Redis context, shared by every stream; a
 * stream that finds it broken frees it and sets it to NULL, and the next
 * flush reconnects.
 */
struct repl *repl_new(struct ev_loop *loop, const struct config *cfg, struct app_entry *ae,
                      redisContext **rcp);
/* Connect and start streaming now, or schedule a retry on failure. */
void repl_start(struct repl *r);
/* Write what is pending, confirm what Redis holds, close. 0 when all pending was written. */
int repl_stop(struct repl *r);
void repl_free(struct repl *r);
const struct repl_stats *repl_get_stats(const struct repl *r);

#endif
