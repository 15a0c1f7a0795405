/*
 * consume.c - the consumer daemon: its read / apply / acknowledge loop on a
 * libev loop, so that /metrics and /healthz are served from the same
 * thread. A timer runs one round at a time: for every entry's streams, a
 * batch is read (batch.c: own pending entries, then a dead consumer's, then
 * new ones), applied (sync.c and its stages), and acknowledged once its
 * bulks are answered (batch.c). The XREADGROUP BLOCK of a round is bounded
 * to CONSUME_MAX_BLOCK_MS so that an HTTP request never waits long.
 * Another timer measures the streams' lag; /healthz says what is down.
 */
#include "consume.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "batch.h"
#include "clock.h"
#include "es.h"
#include "load.h"
#include "log.h"
#include "metrics.h"
#include "rstate.h"
#include "rstream.h"
#include "strbuf.h"
#include "sync.h"

#define CONSUME_MAX_BLOCK_MS 400 /* longest XREADGROUP BLOCK of one round */
#define CONSUME_LAG_INTERVAL 5.0 /* seconds between XINFO GROUPS / XPENDING rounds */
#define CONSUME_TRIM_EVERY   12  /* lag rounds between two trims of the streams (a minute) */
#define CONSUME_STOP_CHECK   0.1 /* how often the stop flag is looked at while waiting */
#define KEEP_CLAIMS_MAX      10000 /* entries kept per stream while the engine refuses */

struct stream_state {
    const char *key;
    int load;                   /* the load stream: one item at a time */
    struct batch_reader *reader; /* owned */
    /* measured every CONSUME_LAG_INTERVAL (-1: not yet) */
    double undelivered; /* entries the group has not handed to anyone */
    double pending;     /* delivered, not acknowledged, by anyone */
    double own_pending; /* ... by this consumer */
    unsigned long long acked;
    struct metric *lag_gauge, *pending_gauge;
};

struct entry_state {
    struct app_entry *ae;
    struct syncer *sync;      /* owned */
    struct batch_acks *acks;  /* owned: batches applied, waiting for their bulks' answers */
    struct stream_state streams[2]; /* changes, load */
    unsigned long long load_ranges;
    struct metric *batch_latency;
};

/* Which part of the round was running when it failed: decides the /healthz reason. */
enum consume_stage { STAGE_REDIS, STAGE_ENGINE, STAGE_APPLY };
enum consume_down { DOWN_NONE, DOWN_REDIS, DOWN_PG, DOWN_ENGINE, DOWN_OTHER };

struct consumer {
    const struct config *cfg;
    struct app *app;
    const struct consume_opts *opts;
    volatile sig_atomic_t *stop;
    struct ev_loop *loop;
    ev_timer step; /* one round; at once after a good one, after the backoff after a failure */
    ev_timer stop_check;
    ev_timer lag_timer;
    int lag_rounds;
    struct es_client *es;
    struct redis_conn *rc;
    struct entry_state *states;
    struct backoff backoff;
    int failing, ensured, rv;
    double
        idle_since; /* start of the rounds that found nothing in a row (exit_when_idle); 0: none */
    /* health */
    enum consume_stage stage;
    struct syncer *cur_sync; /* the syncer of the batch in hand */
    int in_hand;             /* entries of the batch in hand: work waiting whatever the lag says */
    enum consume_down down;
    char down_why[400];
    int engine_failing;
    char engine_why[300];
    unsigned long long bulk_ok; /* answered _bulk requests: progress within a long batch */
    double claims_kept;         /* when keep_claims last ran */
    /* metrics */
    struct metrics *m;
    struct metric *bulk_latency, *bulk_retries, *bulk_retried_items, *failures;
};

/* "err" as the value of a log pair: error="..." stays one well-formed pair. */
static const char *log_error(const struct pgs_error *err, char *out, size_t len)
{
    char raw[1600];
    return pgs_log_value(pgs_error_str(err, raw, sizeof(raw)), out, len);
}

/*
 * Acknowledge, in order, the batches whose bulks were all answered; stops
 * at the first one still in flight. Takes the answered bulks first.
 */
static int finish_ready(struct consumer *c, struct entry_state *st, struct pgs_error *err)
{
    struct bulk_writer *w = syncer_writer(st->sync);

    if (bulk_poll(w, err) < 0)
        return -1;
    if (batch_acks_ready(st->acks, w))
        c->stage = STAGE_REDIS; /* what is left is Redis's: the load ranges, the acks */
    return batch_acks_finish_ready(st->acks, w, c->cfg, c->rc, st->ae, err);
}

/*
 * Wait for every bulk in flight, acknowledge the batches they completed,
 * forget the others: they stay pending in the stream and are read again.
 */
static int finish_all(struct consumer *c, struct entry_state *st, struct pgs_error *err)
{
    struct pgs_error e;
    int rv = 0;

    c->stage = STAGE_APPLY;
    c->cur_sync = st->sync;
    if (bulk_drain(syncer_writer(st->sync), err) < 0)
        rv = -1;
    /* a batch before the failure is still acknowledged; Redis may be the thing that failed */
    if (c->rc != NULL && !redis_broken(c->rc) && finish_ready(c, st, &e) < 0 && rv == 0) {
        *err = e;
        rv = -1;
    }
    batch_acks_forget(st->acks);
    bulk_forget_failures(syncer_writer(st->sync));
    return rv;
}

static int has_truncate(const struct rstream_batch *b)
{
    for (int i = 0; i < b->n; i++)
        if (b->recs[i].op == CHANGE_TRUNCATE)
            return 1;
    return 0;
}

/*
 * Apply a batch; dead-letter entries that did not decode. Its writes leave
 * through the syncer's pipe: the batch is acknowledged by finish_ready once
 * they are answered, while the next batch is being read and queried.
 */
static int apply_batch(struct consumer *c, struct entry_state *st, struct stream_state *ss,
                       struct rstream_batch *b, struct pgs_error *err)
{
    char origin[160];
    double t0 = clock_now_s();
    struct bulk_writer *w = syncer_writer(st->sync);
    int *parts = NULL, nparts = 0;

    if (rstream_batch_size(b) == 0)
        return 0;
    if (b->n)
        snprintf(origin, sizeof(origin), "%s..%s", b->recs[0].entry_id,
                 b->recs[b->n - 1].entry_id);
    else if (b->nitems)
        snprintf(origin, sizeof(origin), "%s..%s", b->items[0].entry_id,
                 b->items[b->nitems - 1].entry_id);
    else
        snprintf(origin, sizeof(origin), "%s..%s", b->bad_ids[0], b->bad_ids[b->nbad - 1]);
    syncer_set_origin(st->sync, origin);
    syncer_set_redis(st->sync, c->rc);
    c->stage = STAGE_APPLY;
    c->cur_sync = st->sync;
    c->in_hand = rstream_batch_size(b);
    for (int i = 0; i < b->nbad; i++)
        if (bulk_dead_letter(w, NULL, b->bad_why[i], "bad_record", NULL, 0, err) < 0)
            return -1;
    if (ss->load) {
        /* a load range never shares the wire with a change batch's writes */
        if (!c->opts->load_only && finish_all(c, st, err) < 0)
            goto fail;
        /* (change records on a load stream are not ours to apply: acknowledged) */
        parts = xcalloc((size_t)(b->nitems ? b->nitems : 1), sizeof(int));
        for (int i = 0; i < b->nitems; i++) {
            int dropped = 0;
            if (load_range(st->sync, c->rc, &b->items[i], &dropped, err) < 0)
                goto fail;
            if (!dropped)
                parts[nparts++] = b->items[i].part;
            st->load_ranges++;
        }
    } else {
        /*
         * A truncate waits for the earlier entries of the group to be
         * acknowledged (docs_wait_earlier_batches): ours first.
         */
        if (has_truncate(b) && finish_all(c, st, err) < 0)
            goto fail;
        if (syncer_process(st->sync, b->recs, b->n, err) < 0)
            goto fail;
    }
    syncer_set_origin(st->sync, NULL); /* "origin" is on this stack; the pipe keeps its own copy */

    /* every bulk sent so far, this batch's last included */
    batch_acks_push(st->acks, ss->key, b, parts, nparts, bulk_last_seq(w), t0, &ss->acked,
                    ss->load ? NULL : st->batch_latency);
    return finish_ready(c, st, err);
fail:
    syncer_set_origin(st->sync, NULL);
    free(parts);
    return -1;
}

/*
 * One round on one stream: what this consumer holds already (a failed
 * batch, or a restart under the same name), else what a dead consumer left
 * pending, else new entries. Adds the number of entries seen to *got.
 */
static int poll_stream(struct consumer *c, struct entry_state *st, struct stream_state *ss,
                       int block, int *got, struct pgs_error *err)
{
    struct rstream_batch b = {0};
    int redelivered = 0, rv = -1;
    /*
     * Writes in flight: what this consumer holds pending is (partly) on the
     * wire, so read only new entries, without waiting; with none, let the
     * writes finish and acknowledge them.
     */
    int busy = bulk_inflight(syncer_writer(st->sync)) > 0 || !batch_acks_empty(st->acks);

    c->stage = STAGE_REDIS;
    if (batch_read(ss->reader, c->rc, c->cfg, c->opts->name, block, busy, &b, &redelivered, err) <
        0)
        goto out;
    /* read before by someone: the syncer may have a stale write to undo (truncate.h) */
    syncer_set_redelivered(st->sync, redelivered);
    if (rstream_batch_size(&b) == 0 && busy && (!ss->load || c->opts->load_only)) {
        /* (the load stream of a change consumer is mostly empty: not a reason to wait) */
        rv = finish_all(c, st, err);
        goto out;
    }
    *got += rstream_batch_size(&b);
    rv = apply_batch(c, st, ss, &b, err);
out:
    rstream_batch_free(&b);
    return rv;
}

/*
 * One pass over every entry's streams. 0: done (*got entries seen); 1: a
 * load worker's load is finished; -1: failed (err).
 */
static int consume_round(struct consumer *c, int *got, struct pgs_error *err)
{
    const struct config *cfg = c->cfg;
    const struct consume_opts *opts = c->opts;
    struct app *app = c->app;

    c->stage = STAGE_REDIS;
    c->cur_sync = NULL;
    if (c->rc == NULL) {
        c->rc = redis_connect(cfg, err);
        if (c->rc == NULL)
            return -1;
        for (int i = 0; i < app->nentries; i++)
            for (int k = 0; k < 2; k++)
                /* made the first time only; one that existed and is gone: the alarm */
                if (rstate_group_ensure(c->rc, c->states[i].streams[k].key, c->states[i].ae->meta,
                                        RSTREAM_GROUP, err) != 0)
                    return -1;
    }
    if (!c->ensured) {
        c->stage = STAGE_ENGINE;
        if (app_check_engine(c->es, err) < 0)
            return -1;
        for (int i = 0; i < app->nentries; i++)
            if (app_ensure_index(&app->entries[i], c->es, err) < 0)
                return -1;
        c->ensured = 1;
    }
    /*
     * The changes streams share one bounded wait: the load stream only
     * rarely has work, and the loop must come back to serve HTTP soon.
     */
    int round_block = cfg->block_ms < CONSUME_MAX_BLOCK_MS ? cfg->block_ms : CONSUME_MAX_BLOCK_MS;
    int block = round_block / app->nentries > 0 ? round_block / app->nentries : 1;
    for (int i = 0; i < app->nentries && !*c->stop; i++) {
        struct entry_state *st = &c->states[i];
        int nstreams = opts->load_only ? 1 : 2;
        for (int k = 0; k < nstreams && !*c->stop; k++) {
            struct stream_state *ss = &st->streams[opts->load_only ? 1 : k];
            if (poll_stream(c, st, ss, ss->load && !opts->load_only ? -1 : block, got, err) < 0)
                return -1;
        }
        if (opts->load_only && *got == 0) {
            int finished = 0;
            c->stage = STAGE_REDIS;
            if (load_is_finished(cfg, c->rc, st->ae, opts->load_id, &finished, err) < 0)
                return -1;
            if (finished)
                return 1;
        }
    }
    return 0;
}

static void schedule_step(struct consumer *c, double delay)
{
    ev_timer_set(&c->step, delay, 0.);
    ev_timer_start(c->loop, &c->step);
}

/* A failed round: stop on a fatal error, else say what is down and try again later. */
static void round_failed(struct consumer *c, const struct pgs_error *err)
{
    char buf[1600], q[1700];

    pgs_error_str(err, buf, sizeof(buf));
    log_error(err, q, sizeof(q));
    metrics_add(c->failures, 1);
    if (err->kind == PGS_ERR_FATAL) {
        pgs_log(LOG_ERROR, "stopping", "error=\"%s\"", q);
        c->rv = -1;
        ev_break(c->loop, EVBREAK_ALL);
        return;
    }
    /* what is down, for /healthz: the broken connection first, then the step that failed */
    if (c->rc == NULL || redis_broken(c->rc)) {
        c->down = DOWN_REDIS;
        snprintf(c->down_why, sizeof(c->down_why), "not connected to Redis: %.340s", buf);
    } else if (c->stage == STAGE_APPLY && c->cur_sync && syncer_pg(c->cur_sync) == NULL) {
        c->down = DOWN_PG;
        snprintf(c->down_why, sizeof(c->down_why), "not connected to PostgreSQL: %.340s", buf);
    } else if (c->stage == STAGE_ENGINE || c->engine_failing) {
        c->down = DOWN_ENGINE;
        snprintf(c->down_why, sizeof(c->down_why), "not connected to the search engine: %.340s",
                 buf);
    } else {
        c->down = DOWN_OTHER;
        snprintf(c->down_why, sizeof(c->down_why), "failing: %.340s", buf);
    }
    /* log once per state change, not once per retry */
    if (!c->failing && strstr(err->msg, RSTREAM_GROUP_GONE) && strstr(err->msg, "consumer group"))
        pgs_log(LOG_ERROR, "consumer group gone: waiting for the user to recover", "error=\"%s\"",
                q);
    else if (!c->failing)
        pgs_log(LOG_WARN, "retrying", "error=\"%s\"", q);
    c->failing = 1;
    if (c->rc && redis_broken(c->rc)) {
        redis_close(c->rc);
        c->rc = NULL;
    }
    schedule_step(c, backoff_next(&c->backoff));
}

static void on_step(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct consumer *c = w->data;
    struct pgs_error err;
    int got = 0;
    double started = clock_now_s();
    (void)revents;

    if (*c->stop) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    pgs_error_clear(&err);
    int rv = consume_round(c, &got, &err);
    c->in_hand = 0;
    if (rv < 0) {
        /* nothing of the failed round may stay on the wire when its entries are read again */
        enum consume_stage stage = c->stage; /* what failed, for /healthz */
        struct syncer *cur = c->cur_sync;
        for (int i = 0; i < c->app->nentries; i++) {
            struct pgs_error e2;
            (void)finish_all(c, &c->states[i], &e2);
        }
        c->stage = stage;
        c->cur_sync = cur;
        c->idle_since = 0;
        round_failed(c, &err);
        c->cur_sync = NULL;
        return;
    }
    c->cur_sync = NULL;
    if (c->failing) {
        pgs_log(LOG_INFO, "recovered", "name=%s", c->opts->name);
        c->failing = 0;
    }
    c->down = DOWN_NONE;
    backoff_reset(&c->backoff);
    if (rv == 1 || *c->stop) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (got > 0) {
        c->idle_since = 0;
    } else if (c->opts->exit_when_idle) {
        /* idle for as long as one PGSYNC_BLOCK_MS wait used to be: nothing more to give */
        if (c->idle_since == 0)
            c->idle_since = started;
        if (clock_now_s() - c->idle_since >= c->cfg->block_ms / 1000.0 - 0.001) {
            ev_break(loop, EVBREAK_ALL);
            return;
        }
    }
    schedule_step(c, 0.);
}

static void on_stop_check(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct consumer *c = w->data;
    (void)revents;
    if (*c->stop)
        ev_break(loop, EVBREAK_ALL);
}

/* ---- stream lag: XINFO GROUPS and the XPENDING summary ---- */

static int measure_stream(struct consumer *c, struct stream_state *ss, struct pgs_error *err)
{
    struct rstream_group g;
    struct rstream_pending p;
    int found = 0;

    if (rstream_group_find(c->rc, ss->key, RSTREAM_GROUP, &g, &found, err) < 0)
        return -1;
    if (!found) {
        ss->undelivered = ss->pending = ss->own_pending = 0;
        return 0;
    }
    ss->pending = (double)g.pending;
    ss->undelivered = (double)g.lag;
    if (g.lag < 0) {
        /* Redis cannot count it (entries were deleted): "at least one" when the group is behind */
        struct rstream_info info;
        if (rstream_info(c->rc, ss->key, &info, err) < 0)
            return -1;
        ss->undelivered =
            info.last_generated_id[0] && strcmp(info.last_generated_id, g.last_delivered_id) != 0;
    }
    if (rstream_pending_summary(c->rc, ss->key, RSTREAM_GROUP, c->opts->name, &p, err) < 0)
        return -1;
    ss->own_pending = (double)p.consumer_count;
    metrics_set(ss->lag_gauge, ss->undelivered + ss->pending);
    metrics_set(ss->pending_gauge, ss->pending);
    return 0;
}

static void on_lag_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct consumer *c = w->data;
    struct pgs_error err;
    (void)loop;
    (void)revents;

    /* an idle consumer learns too when a search engine node set aside is back */
    if (c->es != NULL && es_client_node_count(c->es) > 1)
        (void)es_client_probe_due(c->es);
    /*
     * A broken connection is the round's to repair; the next measure comes
     * after it. Failing elsewhere (the engine, PostgreSQL) is when the lag
     * matters most: measure then too.
     */
    if (c->rc == NULL || redis_broken(c->rc))
        return;
    /* an eviction policy set while we run: the next round reconnects, and fails until fixed */
    pgs_error_clear(&err);
    if (redis_check_eviction(c->rc, &err) < 0) {
        char buf[1600];
        pgs_log(LOG_ERROR, "Redis may evict our keys", "error=\"%s\"",
                log_error(&err, buf, sizeof(buf)));
        return;
    }
    for (int i = 0; i < c->app->nentries; i++)
        for (int k = c->opts->load_only ? 1 : 0; k < 2; k++) {
            pgs_error_clear(&err);
            if (measure_stream(c, &c->states[i].streams[k], &err) < 0) {
                char buf[1600];
                pgs_log(LOG_DEBUG, "cannot measure the stream lag", "stream=%s error=\"%s\"",
                        c->states[i].streams[k].key, log_error(&err, buf, sizeof(buf)));
                return;
            }
        }
    /*
     * Entries every group has read and acknowledged are of no use to anyone:
     * trim them, or the stream (the whole history) would only ever grow.
     * Any consumer may do it; it is idempotent.
     */
    if (++c->lag_rounds % CONSUME_TRIM_EVERY != 0)
        return;
    for (int i = 0; i < c->app->nentries; i++)
        for (int k = c->opts->load_only ? 1 : 0; k < 2; k++) {
            long long trimmed = 0;
            pgs_error_clear(&err);
            if (rstream_trim_acked(c->rc, c->states[i].streams[k].key,
                                   (long long)c->cfg->stream_retain_s * 1000, &trimmed, &err) < 0)
                return;
            if (trimmed > 0)
                pgs_log(LOG_DEBUG, "stream trimmed", "stream=%s entries=%lld",
                        c->states[i].streams[k].key, trimmed);
        }
}

/* ---- health and metrics ---- */

static void consumer_health(void *arg, struct metrics_health *h)
{
    struct consumer *c = arg;

    if (c->down != DOWN_NONE)
        snprintf(h->down, sizeof(h->down), "%s", c->down_why);
    else if (c->engine_failing)
        snprintf(h->down, sizeof(h->down), "the search engine is failing: %s", c->engine_why);
    if (c->es != NULL && es_client_node_count(c->es) > 1)
        es_client_nodes_status(c->es, h->note, sizeof(h->note));
    h->progress = (double)c->bulk_ok;
    h->waiting = c->in_hand;
    for (int i = 0; i < c->app->nentries; i++) {
        const struct entry_state *st = &c->states[i];
        const struct bulk_stats *bs = bulk_writer_stats(syncer_writer(st->sync));
        h->progress +=
            (double)(bs->docs_indexed + bs->docs_deleted + bs->docs_rejected + st->load_ranges);
        /* batches applied whose writes are still on the wire: work waiting on the engine */
        h->waiting += batch_acks_entries(st->acks);
        for (int k = 0; k < 2; k++) {
            const struct stream_state *ss = &st->streams[k];
            h->progress += (double)ss->acked;
            /*
             * What this consumer should be doing: the group's new entries and
             * its own pending (measured between rounds: the batch in hand is
             * counted above while a round runs).
             */
            if (ss->undelivered > 0)
                h->waiting += ss->undelivered;
            if (ss->own_pending > 0 && c->in_hand == 0)
                h->waiting += ss->own_pending;
        }
    }
}

static void hook_bulk_request(void *arg, double seconds, long status)
{
    struct consumer *c = arg;
    metrics_observe(c->bulk_latency, seconds);
    if (status >= 200 && status < 300) {
        c->bulk_ok++;
        c->engine_failing = 0;
    }
}

static void hook_bulk_retry(void *arg, int items, const char *why)
{
    struct consumer *c = arg;
    metrics_add(c->bulk_retries, 1);
    metrics_add(c->bulk_retried_items, (unsigned long long)items);
    c->engine_failing = 1;
    snprintf(c->engine_why, sizeof(c->engine_why), "%s", why);
}

/*
 * While the engine refuses (429, 503, a block) this consumer retries what it
 * holds: keep those entries its own, or others would take them over after
 * PGSYNC_CLAIM_IDLE_MS and send the same work to an engine already
 * overloaded. Every third of that time, during the retries only.
 */
static void keep_claims(struct consumer *c)
{
    struct pgs_error err;
    char buf[1600];
    double now = clock_now_s();
    if (!c->engine_failing || c->rc == NULL || now - c->claims_kept < c->cfg->claim_idle_ms / 3000.0)
        return;
    c->claims_kept = now;
    for (int i = 0; i < c->app->nentries; i++)
        for (int k = 0; k < 2; k++) {
            const char *key = c->states[i].streams[k].key;
            int kept = 0;
            if (key == NULL)
                continue;
            if (rstream_keep_claims(c->rc, key, RSTREAM_GROUP, c->opts->name, KEEP_CLAIMS_MAX,
                                    &kept, &err) < 0) {
                pgs_log(LOG_DEBUG, "cannot keep the claim on the entries in hand", "stream=%s error=%s",
                        key, log_error(&err, buf, sizeof(buf)));
                return; /* the round's own Redis calls will say what is wrong */
            }
            if (kept > 0)
                pgs_log(LOG_DEBUG, "claim kept while the engine refuses", "stream=%s entries=%d", key,
                        kept);
        }
}

static void hook_waiting(void *arg)
{
    struct consumer *c = arg;
    metrics_poll(c->m);
    keep_claims(c);
}

static double connected_redis(const void *arg)
{
    const struct consumer *c = arg;
    return c->rc != NULL && c->down != DOWN_REDIS;
}

static double connected_pg(const void *arg)
{
    const struct consumer *c = arg;
    return c->down != DOWN_PG;
}

static double connected_engine(const void *arg)
{
    const struct consumer *c = arg;
    return c->down != DOWN_ENGINE && !c->engine_failing;
}

static void register_metrics(struct consumer *c)
{
    static const double latency[] = METRICS_LATENCY_BUCKETS;
    static const char *const stream_names[] = {"changes", "load"};
    struct metrics *m = c->m;
    char lab[512];

    for (int i = 0; i < c->app->nentries; i++) {
        struct entry_state *st = &c->states[i];
        const struct syncer_stats *s = syncer_stats(st->sync);
        const struct bulk_stats *bs = bulk_writer_stats(syncer_writer(st->sync));
        const char *ix = app_entry_name(st->ae);
        metrics_labels(lab, sizeof(lab), "index", ix, NULL);
        metrics_counter_ptr(m, "pgsync_consumer_batches_total",
                            "Batches of change records applied.", lab, &s->batches);
        metrics_counter_ptr(m, "pgsync_consumer_records_total", "Change records processed.", lab,
                            &s->records);
        metrics_counter_ptr(m, "pgsync_consumer_documents_indexed_total",
                            "Documents the search engine accepted.", lab, &bs->docs_indexed);
        metrics_counter_ptr(m, "pgsync_consumer_documents_deleted_total",
                            "Documents deleted from the index.", lab, &bs->docs_deleted);
        metrics_counter_ptr(m, "pgsync_consumer_documents_dead_lettered_total",
                            "Documents and records refused for good, written to the dead-letter "
                            "stream.",
                            lab, &bs->docs_rejected);
        metrics_counter_ptr(m, "pgsync_consumer_load_ranges_total",
                            "Ranges of the initial load indexed.", lab, &st->load_ranges);
        st->batch_latency =
            metrics_histogram(m, "pgsync_consumer_batch_duration_seconds",
                              "Time from reading a batch of change records to acknowledging it.",
                              lab, latency, (int)(sizeof(latency) / sizeof(latency[0])));
        for (int k = 0; k < 2; k++) {
            struct stream_state *ss = &st->streams[k];
            metrics_labels(lab, sizeof(lab), "index", ix, "stream", stream_names[k], NULL);
            metrics_counter_ptr(m, "pgsync_consumer_entries_acked_total",
                                "Stream entries acknowledged by this consumer.", lab, &ss->acked);
            ss->lag_gauge = metrics_gauge(
                m, "pgsync_consumer_stream_lag_entries",
                "Entries of the stream not yet acknowledged by the group: never delivered plus "
                "pending (measured every 5 s).",
                lab);
            ss->pending_gauge =
                metrics_gauge(m, "pgsync_consumer_stream_pending_entries",
                              "Entries delivered to a consumer of the group and not yet "
                              "acknowledged.",
                              lab);
        }
    }
    c->bulk_latency = metrics_histogram(m, "pgsync_consumer_bulk_request_duration_seconds",
                                        "Duration of one _bulk request to the search engine.", NULL,
                                        latency, (int)(sizeof(latency) / sizeof(latency[0])));
    c->bulk_retries = metrics_counter(m, "pgsync_consumer_bulk_retries_total",
                                      "_bulk requests sent again after a transient failure.", NULL);
    c->bulk_retried_items =
        metrics_counter(m, "pgsync_consumer_bulk_retried_items_total",
                        "Documents of _bulk requests sent again after a transient failure.", NULL);
    c->failures = metrics_counter(m, "pgsync_consumer_failures_total",
                                  "Rounds that failed and were retried after a backoff.", NULL);
    metrics_gauge_fn(m, "pgsync_consumer_connected", "1 when the connection works.",
                     metrics_labels(lab, sizeof(lab), "to", "redis", NULL), connected_redis, c);
    metrics_gauge_fn(m, "pgsync_consumer_connected", "1 when the connection works.",
                     metrics_labels(lab, sizeof(lab), "to", "postgresql", NULL), connected_pg, c);
    metrics_gauge_fn(m, "pgsync_consumer_connected", "1 when the connection works.",
                     metrics_labels(lab, sizeof(lab), "to", "search_engine", NULL),
                     connected_engine, c);
}

/* Start /metrics and the watchdog; a busy port from the environment only costs the server. */
static int start_metrics(struct consumer *c)
{
    struct metrics_opts mo;
    struct pgs_error err;
    char buf[1600];

    if (c->opts->metrics)
        mo = *c->opts->metrics;
    else
        memset(&mo, 0, sizeof(mo)); /* load workers: the watchdog only */
    if (metrics_start(c->m, c->loop, &mo, &err) == 0)
        return 0;
    if (!mo.from_env) {
        pgs_log(LOG_ERROR, "cannot serve metrics", "error=\"%s\"",
                log_error(&err, buf, sizeof(buf)));
        return -1;
    }
    /* PGSYNC_METRICS_PORT is shared by every process that inherits it: the first one wins */
    pgs_log(LOG_WARN, "cannot serve metrics, going on without", "error=\"%s\"",
            log_error(&err, buf, sizeof(buf)));
    mo.port = 0;
    return metrics_start(c->m, c->loop, &mo, &err);
}

/* One state per entry: its syncer, its batches waiting to be acknowledged, its two streams. */
static void states_init(struct consumer *c)
{
    struct app *app = c->app;

    c->states = xcalloc((size_t)app->nentries, sizeof(struct entry_state));
    for (int i = 0; i < app->nentries; i++) {
        struct entry_state *st = &c->states[i];
        st->ae = &app->entries[i];
        st->sync = syncer_new(c->cfg, &app->entries[i], c->es, c->stop);
        st->acks = batch_acks_new();
        st->streams[0] = (struct stream_state){.key = app->entries[i].stream};
        st->streams[1] = (struct stream_state){.key = app->entries[i].load_stream, .load = 1};
        for (int k = 0; k < 2; k++) {
            st->streams[k].reader = batch_reader_new(st->streams[k].key, st->streams[k].load);
            st->streams[k].undelivered = st->streams[k].pending = st->streams[k].own_pending = -1;
        }
    }
}

/* Log each entry's totals and free the states. */
static void states_free(struct consumer *c)
{
    for (int i = 0; i < c->app->nentries; i++) {
        struct entry_state *st = &c->states[i];
        const struct syncer_stats *ss = syncer_stats(st->sync);
        const struct bulk_stats *bs = bulk_writer_stats(syncer_writer(st->sync));
        pgs_log(LOG_INFO, "totals",
                "index=%s records=%llu batches=%llu indexed=%llu deleted=%llu "
                "dead_lettered=%llu",
                st->ae->index, ss->records, ss->batches, bs->docs_indexed, bs->docs_deleted,
                bs->docs_rejected);
        syncer_free(st->sync);
        batch_acks_free(st->acks);
        for (int k = 0; k < 2; k++)
            batch_reader_free(st->streams[k].reader);
    }
    free(c->states);
}

/* Acknowledge what the engine took before the stop; the rest is read again. */
static void finish_at_stop(struct consumer *c)
{
    for (int i = 0; i < c->app->nentries && c->m; i++) {
        struct pgs_error e2;
        if (c->rc != NULL && finish_all(c, &c->states[i], &e2) < 0)
            pgs_log(LOG_INFO, "bulk requests in flight at the stop not acknowledged", "index=%s",
                    c->states[i].ae->index);
    }
}

/* The timers (a round, the stop flag, the lag) on the loop, until a stop or a fatal error. */
static void run_loop(struct consumer *c)
{
    pgs_log(LOG_INFO, "consumer started", "name=%s entries=%d", c->opts->name, c->app->nentries);
    ev_timer_init(&c->step, on_step, 0., 0.);
    c->step.data = c;
    ev_timer_start(c->loop, &c->step);
    ev_timer_init(&c->stop_check, on_stop_check, CONSUME_STOP_CHECK, CONSUME_STOP_CHECK);
    c->stop_check.data = c;
    ev_timer_start(c->loop, &c->stop_check);
    ev_timer_init(&c->lag_timer, on_lag_timer, 0.5, CONSUME_LAG_INTERVAL);
    c->lag_timer.data = c;
    ev_timer_start(c->loop, &c->lag_timer);
    ev_run(c->loop, 0);
    ev_timer_stop(c->loop, &c->step);
    ev_timer_stop(c->loop, &c->stop_check);
    ev_timer_stop(c->loop, &c->lag_timer);
    if (c->rv == 0)
        pgs_log(LOG_INFO, "consumer stopped", "name=%s", c->opts->name);
}

int consume_run(const struct config *cfg, struct app *app, const struct consume_opts *opts,
                volatile sig_atomic_t *stop)
{
    struct consumer cs = {
        .cfg = cfg,
        .app = app,
        .opts = opts,
        .stop = stop,
        .rv = 0,
    };
    backoff_init(&cs.backoff, 0.1, 30);

    /*
     * Memory that grows with the length of a load, not its batch size:
     * glibc raises its mmap threshold after the first large free and keeps
     * the bulk bodies (MBs, one per request) on the heap, and every sender
     * thread gets its own arena; both keep freed memory resident. Large
     * blocks from mmap always (returned on free) and two arenas.
     */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
    struct consumer *c = &cs;
    struct pgs_error err;
    char buf[1600];

    c->es = app_es_client(cfg, &err);
    if (c->es == NULL) {
        pgs_log(LOG_ERROR, "cannot set up the search engine client", "error=\"%s\"",
                log_error(&err, buf, sizeof(buf)));
        return -1;
    }
    /* a loop of our own: load workers run this in a forked child */
    c->loop = ev_loop_new(EVFLAG_AUTO);
    if (c->loop == NULL) {
        pgs_log(LOG_ERROR, "cannot create an event loop", NULL);
        es_client_free(c->es);
        return -1;
    }
    states_init(c);
    c->m = metrics_new("consumer");
    register_metrics(c);
    metrics_set_health(c->m, consumer_health, c, "stream entries");
    struct es_hooks hooks = {hook_bulk_request, hook_bulk_retry, hook_waiting, c};
    es_client_set_hooks(c->es, &hooks);

    if (start_metrics(c) < 0)
        c->rv = -1;
    else
        run_loop(c);
    finish_at_stop(c);
    metrics_free(c->m);
    es_client_set_hooks(c->es, NULL);
    states_free(c);
    if (c->rc)
        redis_close(c->rc);
    es_client_free(c->es);
    ev_loop_destroy(c->loop);
    return c->rv;
}
