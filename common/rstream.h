/*
 * rstream.h - the Redis side: connecting, naming the keys, and the stream
 * commands (XADD in pipelined batches, consumer groups, XREADGROUP,
 * XAUTOCLAIM, XACK). Blocking hiredis calls with a socket time-out; a
 * failed call returns -1 with PGS_ERR_TRANSIENT and the caller reconnects.
 *
 * Key names carry the index in a hash tag so that a Redis Cluster keeps all
 * keys of one index on one node: "<prefix>:{<index>}:changes", ":dlq", ...
 */
#ifndef PGS_RSTREAM_H
#define PGS_RSTREAM_H

#include <hiredis/hiredis.h>

#include "change.h"
#include "config.h"
#include "error.h"

#define RSTREAM_GROUP "pgsync"

redisContext *rstream_connect(const struct config *cfg, struct pgs_error *err);

/* "<prefix>:{<index>}:<what>" into "buf"; returns "buf". */
const char *rstream_key(const struct config *cfg, const char *index, const char *what, char *buf,
                        size_t len);

/* XADD every record of "recs" to "stream" in one pipeline; 0 when Redis accepted all. */
int rstream_add(redisContext *rc, const char *stream, const struct change *recs, int n,
                struct pgs_error *err) PGS_MUSTCHECK;

/* XGROUP CREATE stream group 0 MKSTREAM; an existing group is fine. */
int rstream_group_create(redisContext *rc, const char *stream, const char *group,
                         struct pgs_error *err) PGS_MUSTCHECK;

/* A batch of entries read from the stream, decoded. */
struct rstream_batch {
    struct change *recs;
    int n, cap;
    char **bad_ids;    /* entries that did not decode (poison): acked and dead-lettered */
    char **bad_why;
    int nbad;
};
void rstream_batch_free(struct rstream_batch *b);

/* XREADGROUP ... COUNT count BLOCK block_ms STREAMS stream ">" ; appends to "out". */
int rstream_read(redisContext *rc, const char *stream, const char *group, const char *consumer,
                 int count, int block_ms, struct rstream_batch *out, struct pgs_error *err)
    PGS_MUSTCHECK;
/* XREADGROUP ... STREAMS stream 0: what this consumer already holds (after a restart). */
int rstream_read_own_pending(redisContext *rc, const char *stream, const char *group,
                             const char *consumer, int count, struct rstream_batch *out,
                             struct pgs_error *err) PGS_MUSTCHECK;
/* XAUTOCLAIM stream group consumer min_idle cursor COUNT count; advances "*cursor". */
int rstream_autoclaim(redisContext *rc, const char *stream, const char *group,
                      const char *consumer, int min_idle_ms, char *cursor, size_t cursor_len,
                      int count, struct rstream_batch *out, struct pgs_error *err) PGS_MUSTCHECK;
/* XACK every id in one command. */
int rstream_ack(redisContext *rc, const char *stream, const char *group, char **ids, int n,
                struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Trim "stream" to what some consumer group may still need: drop the
 * entries older than every group's oldest pending entry and last delivered
 * one (XTRIM MINID). Sets *trimmed to the number dropped. A stream without
 * groups is left alone: nobody has read it yet.
 */
int rstream_trim_acked(redisContext *rc, const char *stream, long long retain_ms,
                       long long *trimmed, struct pgs_error *err) PGS_MUSTCHECK;

/* Run one command that must not fail (strings only); returns the reply or NULL. */
redisReply *rstream_command(redisContext *rc, struct pgs_error *err, const char *fmt, ...);

#endif
