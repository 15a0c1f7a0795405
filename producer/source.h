/*
 * source.h - where the producer's changes come from. Two implementations,
 * chosen by PGSYNC_MODE: logical replication (repl.c: one source per
 * database, its slot and pgoutput, writing to the stream of every entry on
 * it) and the trigger outbox (outbox.c: one source per entry, LISTEN and
 * its outbox table). Each implementation's constructor takes a shared
 * Redis context "rcp": a source that finds it broken frees it and sets it
 * to NULL, and the next write reconnects. main.c and the metrics drive
 * either through this header.
 */
#ifndef PGS_SOURCE_H
#define PGS_SOURCE_H

#include <stdint.h>

#include <ev.h>
#include "redis.h"

#include "app.h"
#include "config.h"

struct source_stats {
    char name[64]; /* the slot (logical) or the outbox (trigger mode) */
    int drained;   /* a legacy slot read to its end and dropped: no longer a source */
    unsigned long long changes_read; /* row changes of our tables (I/U/D/T) */
    unsigned long long records_written;
    unsigned long long transactions; /* logical: transactions decoded; outbox: drains */
    uint64_t confirmed_lsn;          /* last position confirmed (outbox: last drain's version) */
    uint64_t server_lsn;             /* the server's end of WAL, from keepalives */
    int connected;
    int replicas_short; /* the last WAIT found fewer Redis replicas than PGSYNC_REDIS_MIN_REPLICAS */
    int standby;        /* another producer reads the slot: this one waits to take over */
    int redis_failing;  /* the last write to Redis failed (refused, or the connection) */
    char last_error[640]; /* why the source last failed, for /healthz ("" once it streams) */
};

struct change_source;

/* What an implementation provides; every call takes the source it was built with. */
struct change_source_ops {
    /* Connect and start now, or schedule a retry on failure (logged, never fatal). */
    void (*start)(struct change_source *src);
    /* Write what is pending, confirm what Redis holds, close. 0 when all pending was written. */
    int (*stop)(struct change_source *src);
    const struct source_stats *(*stats)(const struct change_source *src);
    void (*free)(struct change_source *src);
};

/* The head of every implementation's object: its first member. */
struct change_source {
    const struct change_source_ops *ops;
};

void source_start(struct change_source *src);
int source_stop(struct change_source *src);
/* Borrowed, updated in place while the source runs: the metrics read it. */
const struct source_stats *source_get_stats(const struct change_source *src);
void source_free(struct change_source *src);

#endif
