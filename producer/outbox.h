/*
 * outbox.h - the trigger outbox change source (source.h) of one entry
 * (PGSYNC_MODE=notify, for servers without logical decoding): LISTEN on the
 * entry's channel in the producer's libev loop, drain the outbox
 * pgsync."<outbox>" in id order into the entry's Redis stream (the same
 * records as the logical mode), and delete what Redis accepted. A poll
 * every few seconds covers a missed wake-up; what was written while the
 * producer was down is drained at start. The outbox's tables, function and
 * triggers are created by outbox_ddl.h.
 */
#ifndef PGS_OUTBOX_H
#define PGS_OUTBOX_H

#include "source.h"

/* A new source draining the entry's outbox ("rcp" as source.h says). */
struct change_source *outbox_new(struct ev_loop *loop, const struct config *cfg,
                                 struct app_entry *ae, struct redis_conn **rcp);

#endif
