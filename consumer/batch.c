/*
 * batch.c - reading batches with the consumer group, and the list of
 * batches waiting for their bulks' answers before they are acknowledged
 * (batch.h).
 */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulk.h"
#include "clock.h"
#include "load.h"
#include "log.h"
#include "strbuf.h"

struct batch_reader {
    const char *key; /* borrowed */
    int load;        /* the load stream: one item at a time */
    char claim_cursor[64];
    double next_claim;
};

/*
 * A batch whose writes are in the writer's pipe: acknowledged (and, for a
 * load item, its range recorded done) once bulk_done(seq) holds.
 */
struct pending_ack {
    const char *key; /* the stream (borrowed) */
    char **ids;      /* owned */
    int n;
    int *parts; /* load ranges to record done first (owned) */
    int nparts;
    uint64_t seq; /* the writer's last bulk when the batch was applied */
    double t0;
    unsigned long long *acked; /* borrowed */
    struct metric *latency;    /* borrowed; NULL: not measured */
    struct pending_ack *next;
};

struct batch_acks {
    struct pending_ack *head, *tail; /* in the order read */
};

struct batch_reader *batch_reader_new(const char *key, int load)
{
    struct batch_reader *r = xcalloc(1, sizeof(*r));
    r->key = key;
    r->load = load;
    snprintf(r->claim_cursor, sizeof(r->claim_cursor), "0-0");
    return r;
}

void batch_reader_free(struct batch_reader *r)
{
    free(r);
}

int batch_read(struct batch_reader *r, struct redis_conn *rc, const struct config *cfg,
               const char *name, int block, int busy, struct rstream_batch *b, int *redelivered,
               struct pgs_error *err)
{
    int count = r->load ? 1 : cfg->batch_size;

    *redelivered = 0;
    if (!busy && rstream_read_own_pending(rc, r->key, RSTREAM_GROUP, name, count, b, err) < 0)
        return -1;
    if (!busy && rstream_batch_size(b) == 0 && clock_now_s() >= r->next_claim) {
        if (rstream_autoclaim(rc, r->key, RSTREAM_GROUP, name, cfg->claim_idle_ms,
                              r->claim_cursor, sizeof(r->claim_cursor), count, b, err) < 0)
            return -1;
        if (rstream_batch_size(b) > 0)
            pgs_log(LOG_INFO, "claimed pending entries of another consumer", "stream=%s entries=%d",
                    r->key, rstream_batch_size(b));
        if (!strcmp(r->claim_cursor, "0-0"))
            r->next_claim = clock_now_s() + cfg->claim_idle_ms / 2000.0;
    }
    *redelivered = rstream_batch_size(b) > 0;
    if (rstream_batch_size(b) == 0 &&
        rstream_read(rc, r->key, RSTREAM_GROUP, name, count, busy ? -1 : block, b, err) < 0)
        return -1;
    return 0;
}

struct batch_acks *batch_acks_new(void)
{
    return xcalloc(1, sizeof(struct batch_acks));
}

void batch_acks_free(struct batch_acks *a)
{
    if (a == NULL)
        return;
    batch_acks_forget(a);
    free(a);
}

static void pending_free(struct pending_ack *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->ids[i]);
    free(p->ids);
    free(p->parts);
    free(p);
}

void batch_acks_push(struct batch_acks *a, const char *key, const struct rstream_batch *b,
                     int *parts, int nparts, uint64_t seq, double t0, unsigned long long *acked,
                     struct metric *latency)
{
    struct pending_ack *p = xcalloc(1, sizeof(*p));

    p->key = key;
    p->parts = parts;
    p->nparts = nparts;
    p->seq = seq;
    p->t0 = t0;
    p->acked = acked;
    p->latency = latency;
    p->ids = xcalloc((size_t)rstream_batch_size(b) + 1, sizeof(char *));
    for (int i = 0; i < b->n; i++)
        p->ids[p->n++] = xstrdup(b->recs[i].entry_id);
    for (int i = 0; i < b->nitems; i++)
        p->ids[p->n++] = xstrdup(b->items[i].entry_id);
    for (int i = 0; i < b->nbad; i++)
        p->ids[p->n++] = xstrdup(b->bad_ids[i]);
    if (a->tail)
        a->tail->next = p;
    else
        a->head = p;
    a->tail = p;
}

int batch_acks_empty(const struct batch_acks *a)
{
    return a->head == NULL;
}

int batch_acks_entries(const struct batch_acks *a)
{
    int n = 0;
    for (const struct pending_ack *p = a->head; p != NULL; p = p->next)
        n += p->n;
    return n;
}

int batch_acks_ready(const struct batch_acks *a, const struct bulk_writer *w)
{
    return a->head != NULL && bulk_done(w, a->head->seq);
}

int batch_acks_finish_ready(struct batch_acks *a, const struct bulk_writer *w,
                            const struct config *cfg, struct redis_conn *rc,
                            const struct app_entry *ae, struct pgs_error *err)
{
    while (batch_acks_ready(a, w)) {
        struct pending_ack *p = a->head;
        for (int i = 0; i < p->nparts; i++)
            if (load_range_done(cfg, rc, ae, p->parts[i], err) < 0)
                return -1;
        /* the stream is our redo log: acknowledge only what the engine accepted */
        if (rstream_ack(rc, p->key, RSTREAM_GROUP, p->ids, p->n, err) < 0)
            return -1;
        *p->acked += (unsigned long long)p->n;
        if (p->latency)
            metrics_observe(p->latency, clock_now_s() - p->t0);
        pgs_log(LOG_DEBUG, "batch done", "stream=%s entries=%d", p->key, p->n);
        a->head = p->next;
        if (a->head == NULL)
            a->tail = NULL;
        pending_free(p);
    }
    return 0;
}

void batch_acks_forget(struct batch_acks *a)
{
    while (a->head != NULL) {
        struct pending_ack *p = a->head;
        a->head = p->next;
        pending_free(p);
    }
    a->tail = NULL;
}
