/*
 * repl.h - the logical replication change source (source.h) of one entry
 * in the producer's libev loop: START_REPLICATION with pgoutput, decoding,
 * change records pushed to the entry's Redis stream in pipelined batches,
 * and the standby status updates that confirm a position only after Redis
 * has accepted every record up to it.
 */
#ifndef PGS_REPL_H
#define PGS_REPL_H

#include "source.h"

/* A new source reading the entry's slot; arguments as source_new. */
struct change_source *repl_new(struct ev_loop *loop, const struct config *cfg,
                               struct app_entry *ae, struct redis_conn **rcp);

#endif
