/*
 * consume.h - the consumer loop: read a batch from the entry's stream with
 * the consumer group, apply it, acknowledge it; take over what dead
 * consumers left pending; survive Redis, PostgreSQL and search engine
 * restarts by retrying the same batch (it stays pending until acked).
 */
#ifndef PGS_CONSUME_H
#define PGS_CONSUME_H

#include <signal.h>

#include "app.h"
#include "config.h"

struct metrics_opts;

struct consume_opts {
    const char *name;    /* consumer name in the group */
    int exit_when_idle;  /* stop after PGSYNC_BLOCK_MS with nothing read (tests, catch-up runs) */
    int load_only;       /* a load worker: only the load stream, until load_id is finished */
    const char *load_id;
    const struct metrics_opts *metrics; /* /metrics and /healthz; NULL: the stall watchdog only */
};

/*
 * Runs on a libev loop of its own until *stop (looked at between rounds and
 * every 100 ms while waiting); returns 0 on a clean stop, -1 on a fatal
 * error (logged).
 */
int consume_run(const struct config *cfg, struct app *app, const struct consume_opts *opts,
                volatile sig_atomic_t *stop);

#endif
