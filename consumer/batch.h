/*
 * batch.h - the batches of one entry's streams: reading them with the
 * consumer group (what this consumer holds pending, else what a dead
 * consumer left pending, else new entries), and acknowledging them in the
 * order read once every bulk they sent was answered. The stream is the
 * redo log: an entry stays pending, and is read again after a failure or a
 * crash, until the engine has taken its writes.
 */
#ifndef PGS_BATCH_H
#define PGS_BATCH_H

#include <stdint.h>

#include "redis.h"

#include "app.h"
#include "config.h"
#include "error.h"
#include "metrics.h"
#include "rstream.h"

struct bulk_writer;

/* Where the reads of one stream stand: the XAUTOCLAIM cursor and when to claim next. */
struct batch_reader;

/* A reader of stream "key" (borrowed); "load": the load stream, one item at a time. */
struct batch_reader *batch_reader_new(const char *key, int load);
void batch_reader_free(struct batch_reader *r);

/*
 * Read the next batch of the stream into "b" for consumer "name": its own
 * pending entries, else entries idle for PGSYNC_CLAIM_IDLE_MS in another
 * consumer's hands, else new ones (waiting up to "block" ms; -1: no wait).
 * "busy" (writes of earlier batches in flight): new entries only, without
 * waiting, since what this consumer holds pending is partly on the wire.
 * *redelivered: the batch was delivered before (own pending, or claimed).
 */
int batch_read(struct batch_reader *r, struct redis_conn *rc, const struct config *cfg,
               const char *name, int block, int busy, struct rstream_batch *b, int *redelivered,
               struct pgs_error *err) PGS_MUSTCHECK;

/* The batches of one entry applied and not yet acknowledged, in the order read. */
struct batch_acks;

struct batch_acks *batch_acks_new(void);
/* Forgets the batches still listed: they stay pending in their streams. */
void batch_acks_free(struct batch_acks *a);

/*
 * List batch "b" of stream "key" (borrowed), applied at time "t0", whose
 * writes end with bulk "seq" (bulk_last_seq). "parts": load ranges to
 * record done before the acknowledgement (handed over; may be NULL).
 * "acked" counts the entries acknowledged, "latency" (NULL: none) the time
 * from "t0" to the acknowledgement; both borrowed.
 */
void batch_acks_push(struct batch_acks *a, const char *key, const struct rstream_batch *b,
                     int *parts, int nparts, uint64_t seq, double t0, unsigned long long *acked,
                     struct metric *latency);

/* No batch listed. */
int batch_acks_empty(const struct batch_acks *a);
/* Stream entries of the listed batches: work waiting on the engine. */
int batch_acks_entries(const struct batch_acks *a);
/* The oldest listed batch can be acknowledged: its bulks were answered (bulk_done). */
int batch_acks_ready(const struct batch_acks *a, const struct bulk_writer *w);

/*
 * Acknowledge, in order, the batches whose bulks were all answered, after
 * recording their load ranges done; stops at the first one still in flight.
 */
int batch_acks_finish_ready(struct batch_acks *a, const struct bulk_writer *w,
                            const struct config *cfg, struct redis_conn *rc,
                            const struct app_entry *ae, struct pgs_error *err) PGS_MUSTCHECK;

/* Forget every listed batch (after a failure: they are read again). */
void batch_acks_forget(struct batch_acks *a);

#endif
