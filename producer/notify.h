/*
 * notify.h - the trigger-mode change source of one entry (PGSYNC_MODE=notify,
 * for servers without logical decoding): LISTEN on the entry's channel in
 * the producer's libev loop, drain the outbox pgsync."<slot>" in id order
 * into the entry's Redis stream (the same records as the logical mode), and
 * delete what Redis accepted. A poll every few seconds covers a missed
 * wake-up; what was written while the producer was down is drained at start.
 * repl.c forwards to it, so main.c and the metrics see one kind of stream.
 */
#ifndef PGS_NOTIFY_H
#define PGS_NOTIFY_H

#include <ev.h>
#include <hiredis/hiredis.h>

#include "app.h"
#include "config.h"
#include "repl.h"

struct notify;

/* "stats" is borrowed (the owning repl's) and updated in place. */
struct notify *notify_new(struct ev_loop *loop, const struct config *cfg, struct app_entry *ae,
                          redisContext **rcp, struct repl_stats *stats);
void notify_start(struct notify *n);
/* Drain what is committed now (when both servers answer), then close. 0 when all went well. */
int notify_stop(struct notify *n);
void notify_free(struct notify *n);

#endif
