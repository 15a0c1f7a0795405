/*
 * load.h - the initial load: every document of an entry, read from one
 * consistent snapshot and written with the snapshot's LSN as version, so
 * that a change committed during the load (it reaches the stream, since the
 * slot exists first) always wins over the loaded copy.
 *
 * The snapshot comes from a temporary logical slot created with
 * EXPORT_SNAPSHOT on a replication connection: its consistent point splits
 * the transactions exactly into those the snapshot sees and those the
 * stream will carry.
 */
#ifndef PGS_LOAD_H
#define PGS_LOAD_H

#include <signal.h>

#include <hiredis/hiredis.h>

#include "app.h"
#include "config.h"
#include "es.h"

struct load_opts {
    int quiet;   /* no progress output */
};

struct load_result {
    long long docs;
    double seconds;
    uint64_t version;
};

int load_entry(const struct config *cfg, struct app_entry *ae, struct es_client *es,
               redisContext *rc, const struct load_opts *opts, volatile sig_atomic_t *stop,
               struct load_result *result, struct pgs_error *err) PGS_MUSTCHECK;

#endif
