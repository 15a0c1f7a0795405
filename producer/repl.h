/*
 * repl.h - the logical replication change source (source.h) of one
 * database in the producer's libev loop: START_REPLICATION with pgoutput, decoding,
 * change records pushed to the entry's Redis stream in pipelined batches,
 * and the standby status updates that confirm a position only after Redis
 * has accepted every record up to it.
 */
#ifndef PGS_REPL_H
#define PGS_REPL_H

#include "source.h"

/*
 * A new source reading the database slot of the "nae" entries "aes" (all on
 * one database, aes[0] names it); "app" is asked whether the versions
 * changed before a change is read (routes.h). Others as source_new.
 */
struct change_source *repl_new(struct ev_loop *loop, const struct config *cfg,
                               const struct app *app, struct app_entry **aes, int nae,
                               struct redis_conn **rcp);
/*
 * A source reading the entry's legacy slot (one per entry, from before one
 * per database) into its stream until it reaches the database slot's
 * confirmed position; then it drops that slot and its publication.
 */
struct change_source *repl_new_legacy(struct ev_loop *loop, const struct config *cfg,
                                      const struct app *app, struct app_entry *ae,
                                      struct redis_conn **rcp);

#endif
