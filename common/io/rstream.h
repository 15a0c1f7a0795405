/*
 * rstream.h - the change streams: XADD in pipelined batches, consumer
 * groups, XREADGROUP, XAUTOCLAIM, XACK, trimming, pages of a range, and the
 * typed readings of XINFO and XPENDING; stream entry ids ("ms-seq") and
 * their arithmetic. Commands go through redis.h; the key names and every
 * other key are rstate.h's.
 */
#ifndef PGS_RSTREAM_H
#define PGS_RSTREAM_H

#include <stdint.h>

#include "change.h"
#include "load_item.h"
#include "error.h"
#include "redis.h"

#define RSTREAM_GROUP "pgsync"

/* ---- entry ids ---- */

/* A stream entry id. */
struct rstream_id {
    uint64_t ms, seq;
};

/* Room for "ms-seq" of two 64-bit numbers and the NUL. */
#define RSTREAM_ID_LEN 48

/* "ms-seq", or "ms" alone (seq 0); -1 when "s" is not an id. */
int rstream_id_parse(const char *s, struct rstream_id *out);
int rstream_id_cmp(const struct rstream_id *a, const struct rstream_id *b);
/* "ms-seq" into "buf"; returns "buf". */
const char *rstream_id_format(const struct rstream_id *id, char *buf, size_t len);
/* The id just before "id" (XGROUP SETID to it delivers "id" next); -1 for 0-0. */
int rstream_id_prev(const struct rstream_id *id, struct rstream_id *out);
/* The id just after "id"; -1 for the largest one. */
int rstream_id_next(const struct rstream_id *id, struct rstream_id *out);

/* ---- writing and reading changes ---- */

/* XADD every record of "recs" to "stream" in one pipeline; 0 when Redis accepted all. */
int rstream_add(struct redis_conn *rc, const char *stream, const struct change *recs, int n,
                struct pgs_error *err) PGS_MUSTCHECK;

/*
 * rstream_add in two halves, for a caller that encodes its own records (the
 * producer's hot path): queue one XADD of "nfv" names and values (hiredis
 * copies them), then read the replies of the "n" XADDs queued; 0 when Redis
 * accepted all. A failed read leaves the connection unusable (redis_broken).
 */
int rstream_add_queue(struct redis_conn *rc, const char *stream, const char **fv,
                      const size_t *fvlen, int nfv, struct pgs_error *err) PGS_MUSTCHECK;
int rstream_add_replies(struct redis_conn *rc, int n, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * What a read says when the group is gone (rstate_group_ensure), and how to
 * recover: the consumers wait and alarm until the user chooses.
 */
#define RSTREAM_GROUP_GONE "is gone"
#define RSTREAM_GROUP_RECOVERY                                                                  \
    "not made again (what it had not delivered would be skipped or re-read blindly): recover "  \
    "with pgsync-replay --config FILE --from ID, or pgsync --config FILE --resync"

/* XGROUP CREATE stream group 0 MKSTREAM; an existing group is fine. */
int rstream_group_create(struct redis_conn *rc, const char *stream, const char *group,
                         struct pgs_error *err) PGS_MUSTCHECK;
/* The same, delivering what comes after "id" first. */
int rstream_group_create_at(struct redis_conn *rc, const char *stream, const char *group,
                            const char *id, struct pgs_error *err) PGS_MUSTCHECK;
/* XGROUP SETID stream group id: the group delivers what comes after "id" next. */
int rstream_group_setid(struct redis_conn *rc, const char *stream, const char *group,
                        const char *id, struct pgs_error *err) PGS_MUSTCHECK;

/* A batch of entries read from the stream, decoded. */
struct rstream_batch {
    struct change *recs;      /* change records (a change stream) */
    int n, cap;
    struct load_item *items;  /* the initial load's work items (a load stream) */
    int nitems, items_cap;
    char **bad_ids;    /* entries that did not decode (poison): acked and dead-lettered */
    char **bad_why;
    int nbad;
};
void rstream_batch_free(struct rstream_batch *b);
/* Every entry of the batch: records, load items and poison. */
int rstream_batch_size(const struct rstream_batch *b);

/* XREADGROUP ... COUNT count BLOCK block_ms STREAMS stream ">" ; appends to "out". */
int rstream_read(struct redis_conn *rc, const char *stream, const char *group, const char *consumer,
                 int count, int block_ms, struct rstream_batch *out, struct pgs_error *err)
    PGS_MUSTCHECK;
/* XREADGROUP ... STREAMS stream 0: what this consumer already holds (after a restart). */
int rstream_read_own_pending(struct redis_conn *rc, const char *stream, const char *group,
                             const char *consumer, int count, struct rstream_batch *out,
                             struct pgs_error *err) PGS_MUSTCHECK;
/* XAUTOCLAIM stream group consumer min_idle cursor COUNT count; advances "*cursor". */
int rstream_autoclaim(struct redis_conn *rc, const char *stream, const char *group,
                      const char *consumer, int min_idle_ms, char *cursor, size_t cursor_len,
                      int count, struct rstream_batch *out, struct pgs_error *err) PGS_MUSTCHECK;
/*
 * The entries "consumer" holds pending (up to "max") claimed again by it
 * (XCLAIM ... 0 ... JUSTID): their idle time starts over, so others do not
 * take them over while it retries them; *kept says how many.
 */
int rstream_keep_claims(struct redis_conn *rc, const char *stream, const char *group,
                        const char *consumer, int max, int *kept, struct pgs_error *err)
    PGS_MUSTCHECK;
/* XACK every id in one command. */
int rstream_ack(struct redis_conn *rc, const char *stream, const char *group, char **ids, int n,
                struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Trim "stream" to what some consumer group may still need: drop the
 * entries older than every group's oldest pending entry and last delivered
 * one (XTRIM MINID). Sets *trimmed to the number dropped. A stream without
 * groups is left alone: nobody has read it yet.
 */
int rstream_trim_acked(struct redis_conn *rc, const char *stream, long long retain_ms,
                       long long *trimmed, struct pgs_error *err) PGS_MUSTCHECK;

/* Redis's clock in milliseconds (TIME): stream ids carry Redis's clock, not ours. */
int rstream_clock_ms(struct redis_conn *rc, uint64_t *now_ms, struct pgs_error *err) PGS_MUSTCHECK;

/* ---- ranges ---- */

/* One entry of a range, borrowed: valid during the call that hands it over. */
struct rstream_entry {
    const char *id;
    int nfv;             /* names and values: two per field */
    const char **fv;     /* a nil is "" */
    const size_t *fvlen;
};
/* The value of field "name" of "e" (its length in *len when not NULL), or NULL. */
const char *rstream_entry_get(const struct rstream_entry *e, const char *name, size_t *len);

/* Called on each page of a range; -1 stops the walk (the callee sets the error). */
typedef int (*rstream_page_fn)(const struct rstream_entry *entries, int n, void *arg);

/*
 * Walk the entries of "stream" between "start" and "end" (XRANGE bounds:
 * "-", "+", "id", "(id" exclusive), oldest first, in pages of "count":
 * O(entries) in time, never in memory.
 */
int rstream_range(struct redis_conn *rc, const char *stream, const char *start, const char *end,
                  int count, rstream_page_fn fn, void *arg, struct pgs_error *err) PGS_MUSTCHECK;
/* Count the entries between "start" and "end" (bounds as rstream_range), exactly. */
int rstream_count(struct redis_conn *rc, const char *stream, const char *start, const char *end,
                  long long *n, struct pgs_error *err) PGS_MUSTCHECK;
/* The id of the first entry from "start" on into "id" ("" when none). */
int rstream_first_id(struct redis_conn *rc, const char *stream, const char *start, char *id,
                     size_t len, struct pgs_error *err) PGS_MUSTCHECK;
/* The id of the newest entry into "id" ("" when the stream is empty). */
int rstream_last_id(struct redis_conn *rc, const char *stream, char *id, size_t len,
                    struct pgs_error *err) PGS_MUSTCHECK;
/*
 * XADD the fields of each of "entries" to "stream" as new entries, in one
 * pipeline; the ids given to the first and last copies into "first_new"
 * (when still "") and "last_new".
 */
int rstream_copy(struct redis_conn *rc, const char *stream, const struct rstream_entry *entries,
                 int n, char *first_new, char *last_new, size_t idlen, struct pgs_error *err)
    PGS_MUSTCHECK;
/* XLEN: 0 for a stream that does not exist. */
int rstream_length(struct redis_conn *rc, const char *stream, long long *n,
                   struct pgs_error *err) PGS_MUSTCHECK;
/* XDEL one entry. */
int rstream_delete_entry(struct redis_conn *rc, const char *stream, const char *id,
                         struct pgs_error *err) PGS_MUSTCHECK;

/* ---- XINFO and XPENDING ---- */

/* XINFO STREAM. */
struct rstream_info {
    int exists;                          /* 0: no such stream (not an error); the rest is 0, "" */
    long long length;
    char first_id[RSTREAM_ID_LEN];       /* "" when empty */
    char last_id[RSTREAM_ID_LEN];
    char last_generated_id[RSTREAM_ID_LEN];
};
int rstream_info(struct redis_conn *rc, const char *stream, struct rstream_info *out,
                 struct pgs_error *err) PGS_MUSTCHECK;

/* One group of XINFO GROUPS. */
struct rstream_group {
    char name[128];
    char last_delivered_id[RSTREAM_ID_LEN]; /* "" when Redis gave none */
    long long pending;
    long long lag; /* undelivered entries; -1 when Redis cannot tell (7.0: after XDEL, SETID) */
};
/* Every group of "stream" (an error when it does not exist); *groups is the caller's to free. */
int rstream_groups(struct redis_conn *rc, const char *stream, struct rstream_group **groups, int *n,
                   struct pgs_error *err) PGS_MUSTCHECK;
/* The group "name" of "stream" into "out"; *found = 0 when there is none. */
int rstream_group_find(struct redis_conn *rc, const char *stream, const char *name,
                       struct rstream_group *out, int *found, struct pgs_error *err) PGS_MUSTCHECK;

/* One consumer of XINFO CONSUMERS. */
struct rstream_consumer {
    char name[128];
    long long pending;
    long long idle_ms;
};
/* Every consumer of "group"; *consumers is the caller's to free. */
int rstream_consumers(struct redis_conn *rc, const char *stream, const char *group,
                      struct rstream_consumer **consumers, int *n,
                      struct pgs_error *err) PGS_MUSTCHECK;

/* The XPENDING summary of a group. */
struct rstream_pending {
    long long count;
    char min_id[RSTREAM_ID_LEN];  /* the oldest pending entry; "" when none */
    char max_id[RSTREAM_ID_LEN];
    long long consumer_count;     /* pending entries of the consumer asked about */
};
/* XPENDING stream group; "consumer" (may be NULL) picks consumer_count. */
int rstream_pending_summary(struct redis_conn *rc, const char *stream, const char *group,
                            const char *consumer, struct rstream_pending *out,
                            struct pgs_error *err) PGS_MUSTCHECK;
/*
 * The oldest pending entry of "group" (XPENDING stream group - end 1), up
 * to "before" exclusive (NULL: any): its id into "id" and the time since
 * its delivery into *idle_ms (-1 when unknown); *found = 0 when none.
 */
int rstream_pending_oldest(struct redis_conn *rc, const char *stream, const char *group,
                           const char *before, char *id, size_t idlen, long long *idle_ms,
                           int *found, struct pgs_error *err) PGS_MUSTCHECK;

#endif
