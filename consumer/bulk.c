/*
 * bulk.c - the writer: the bulk being filled, the pipe of bulks in flight
 * with the _ids each one holds (so that no two writes of one _id are on the
 * wire at once), the sequence numbers that tell which batches may be
 * acknowledged, and the dead letters of what the engine refused for good.
 */
#include "bulk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "es_pipe.h"
#include "keyset.h"
#include "log.h"
#include "rstate.h"
#include "truncate.h"

/* The _ids of one bulk in flight. */
struct bulk_flight {
    uint64_t seq;
    struct keyset ids;
};

struct bulk_writer {
    const struct config *cfg;
    const struct app_entry *ae;  /* borrowed */
    struct es_client *es;        /* borrowed */
    struct redis_conn *rc;            /* borrowed: the dead-letter stream */
    struct truncate_fence *fence; /* borrowed: checked after each answered bulk */
    volatile sig_atomic_t *stop; /* set by a signal: stop retrying */
    struct es_bulk bulk;         /* the bulk being filled */
    struct es_pipe *pipe;        /* owned: the bulks in flight; made at the first flush */
    int depth;                   /* bulks in flight at most (BULK_CHANGE_DEPTH, BULK_LOAD_DEPTH) */
    struct bulk_flight flights[BULK_MAX_DEPTH]; /* the bulks in flight and their _ids */
    int nflights;
    uint64_t last_seq;   /* the last bulk handed to the pipe (0: none yet) */
    uint64_t failed_seq; /* the lowest bulk that failed (0: none) */
    const char *origin;  /* stream ids of the batch, for dead letters */
    struct bulk_stats stats;
};

struct bulk_writer *bulk_writer_new(const struct config *cfg, const struct app_entry *ae,
                                    struct es_client *es, volatile sig_atomic_t *stop)
{
    struct bulk_writer *w = xcalloc(1, sizeof(*w));
    w->cfg = cfg;
    w->ae = ae;
    w->es = es;
    w->stop = stop;
    w->depth = BULK_CHANGE_DEPTH;
    es_bulk_init(&w->bulk);
    return w;
}

void bulk_writer_free(struct bulk_writer *w)
{
    if (w == NULL)
        return;
    es_pipe_free(w->pipe); /* waits for the requests on the wire; unanswered ones are not acked */
    for (int i = 0; i < w->nflights; i++)
        keyset_free(&w->flights[i].ids);
    es_bulk_deinit(&w->bulk);
    free(w);
}

void bulk_set_redis(struct bulk_writer *w, struct redis_conn *rc)
{
    w->rc = rc;
}

void bulk_set_fence(struct bulk_writer *w, struct truncate_fence *t)
{
    w->fence = t;
}

void bulk_set_origin(struct bulk_writer *w, const char *origin)
{
    w->origin = origin;
}

void bulk_set_depth(struct bulk_writer *w, int depth)
{
    w->depth = depth;
}

void bulk_reset(struct bulk_writer *w)
{
    es_bulk_reset(&w->bulk);
}

/* The routing value: the document's field named by the entry's "routing". */
static char *routing_of(const struct schema_entry *e, const char *doc, size_t len)
{
    if (e->routing == NULL)
        return NULL;
    json_t *d = json_loadb(doc, len, 0, NULL);
    json_t *v = json_object_get(d, e->routing);
    char *out = NULL;
    if (json_is_string(v))
        out = xstrdup(json_string_value(v));
    else if (json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        out = xstrdup(buf);
    }
    json_decref(d);
    return out;
}

void bulk_add_index(struct bulk_writer *w, const char *id, const char *doc, size_t len,
                    uint64_t version)
{
    const struct schema_entry *e = w->ae->e;
    char *routing = routing_of(e, doc, len);
    es_bulk_add(&w->bulk, ES_OP_INDEX, w->ae->index, id, version, doc, len, routing, e->pipeline,
                NULL);
    free(routing);
}

void bulk_add_delete(struct bulk_writer *w, const char *id, uint64_t version, const char *routing)
{
    es_bulk_add(&w->bulk, ES_OP_DELETE, w->ae->index, id, version, NULL, 0, routing, NULL, NULL);
}

char *bulk_routing_of(const struct bulk_writer *w, const char *doc, size_t len)
{
    return routing_of(w->ae->e, doc, len);
}

int bulk_drop_misrouted(struct bulk_writer *w, const char *const *ids, const char *const *want,
                        int n, uint64_t version, struct pgs_error *err)
{
    char path[512], *resp = NULL;
    long status = 0;
    int rv = -1;

    if (n == 0)
        return 0;
    /*
     * The search sees what is refreshed only: first every write of these
     * _ids must be answered (none in flight, none waiting in the bulk), then
     * refreshed. Only indices with "routing" pay this.
     */
    if (bulk_flush(w, err) < 0 || bulk_drain(w, err) < 0 ||
        es_refresh(w->es, w->ae->index, err) < 0)
        return -1;
    json_t *values = json_array(), *wanted = json_object();
    for (int i = 0; i < n; i++) {
        json_array_append_new(values, json_string(ids[i]));
        json_object_set_new(wanted, ids[i], want[i] ? json_string(want[i]) : json_null());
    }
    /* an ids query reaches every shard: each copy of an _id, whatever its routing */
    json_t *q = json_pack("{s:i, s:b, s:b, s:{s:{s:o}}}", "size", n * 4, "_source", 0, "version", 1,
                          "query", "ids", "values", values);
    char *body = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    snprintf(path, sizeof(path), "/%s/_search?allow_partial_search_results=false", w->ae->index);
    if (es_request(w->es, "POST", path, body, strlen(body), "application/json", &status, &resp,
                   err) < 0)
        goto out;
    json_t *r = status == 200 ? json_loads(resp, 0, NULL) : NULL;
    json_t *hits = json_object_get(json_object_get(r, "hits"), "hits");
    if (json_is_array(hits) && es_search_complete(r, w->ae->index, err) < 0) {
        json_decref(r);
        goto out;
    }
    if (!json_is_array(hits)) {
        char why[700];
        es_answer_error(resp, why, sizeof(why));
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "cannot find the copies of %d documents of index \"%s\" (routing): "
                      "HTTP %ld %.300s",
                      n, w->ae->index, status, why);
        json_decref(r);
        goto out;
    }
    size_t i;
    json_t *hit;
    json_array_foreach(hits, i, hit) {
        const char *id = json_string_value(json_object_get(hit, "_id"));
        const char *at = json_string_value(json_object_get(hit, "_routing"));
        json_t *v = json_object_get(hit, "_version");
        json_t *w_routing = id ? json_object_get(wanted, id) : NULL;
        const char *should = json_string_value(w_routing);
        if (id == NULL || w_routing == NULL)
            continue;
        /* the copy where the document belongs now, or one newer than this write: kept */
        if ((should && at && strcmp(should, at) == 0) ||
            (json_is_integer(v) && (uint64_t)json_integer_value(v) >= version))
            continue;
        bulk_add_delete(w, id, version, at);
        w->stats.docs_rerouted++;
    }
    json_decref(r);
    rv = 0;
out:
    json_decref(wanted);
    free(body);
    free(resp);
    return rv;
}

int bulk_dead_letter(struct bulk_writer *w, const char *id, const char *reason,
                     const char *error_type, const char *doc, size_t doclen,
                     struct pgs_error *err)
{
    struct rstate_dead_letter d = {.index = app_entry_name(w->ae),
                                   .id = id,
                                   .error = error_type,
                                   .reason = reason,
                                   .entries = w->origin,
                                   .doc = doc,
                                   .doclen = doclen};
    if (rstate_dlq_add(w->rc, w->ae->dlq, &d, err) < 0)
        return -1;
    w->stats.docs_rejected++;
    pgs_log(LOG_WARN, "document dead-lettered", "index=%s id=%s error=%s reason=\"%s\"",
            w->ae->index, id ? id : "", error_type ? error_type : "",
            reason ? reason : "");
    return 0;
}

/*
 * Test hook (tests/integration/test_40_consumers.sh): while the file named
 * by PGSYNC_TEST_PAUSE_FILE exists, hold the documents already read before
 * sending them, to force the interleaving where a later change overtakes.
 */
static void test_pause(void)
{
    static const char *path;
    static int checked;
    if (!checked) {
        path = getenv("PGSYNC_TEST_PAUSE_FILE");
        checked = 1;
    }
    if (path == NULL)
        return;
    if (access(path, F_OK) == 0)
        pgs_log(LOG_INFO, "test pause: holding a bulk request", "file=%s", path);
    while (access(path, F_OK) == 0)
        usleep(50000);
}

/*
 * One answered bulk: count what the engine took, dead-letter what it
 * refused for good, then undo what a root TRUNCATE raced past
 * (truncate_check_answered). A failed bulk (fatal, or stopped while
 * retrying) marks its sequence number: no batch from it on is acknowledged.
 */
static int bulk_take(struct bulk_writer *w, struct es_pipe_job *j, struct pgs_error *err)
{
    const char *origin = w->origin;
    int rv = 0;

    if (j == NULL)
        return 0;
    for (int i = 0; i < w->nflights; i++) {
        if (w->flights[i].seq == j->seq) {
            keyset_free(&w->flights[i].ids);
            w->flights[i] = w->flights[--w->nflights];
            break;
        }
    }
    if (j->rc < 0) {
        *err = j->err;
        rv = -1;
    }
    /* the dead letters name the entries of the batch that sent them */
    w->origin = j->origin;
    for (int i = 0; i < j->bulk.n && rv == 0; i++) {
        struct es_bulk_item *it = &j->bulk.items[i];
        if (it->cls == ES_ITEM_REJECT) {
            if (bulk_dead_letter(w, it->id, it->reason, it->error_type, it->doc, it->doclen,
                                 err) < 0)
                rv = -1;
        } else if (it->op == ES_OP_INDEX) {
            w->stats.docs_indexed++;
        } else {
            w->stats.docs_deleted++;
        }
    }
    w->origin = origin;
    if (rv == 0 && w->fence && truncate_check_answered(w->fence, &j->bulk, err) < 0)
        rv = -1;
    if (rv < 0 && (w->failed_seq == 0 || j->seq < w->failed_seq))
        w->failed_seq = j->seq;
    es_pipe_job_free(j);
    return rv;
}

/* Does a bulk in flight hold one of "ids"? */
static int flight_overlaps(const struct bulk_writer *w, const struct keyset *ids)
{
    for (int f = 0; f < w->nflights; f++) {
        const struct keyset *in = &w->flights[f].ids;
        const struct keyset *small = in->n < ids->n ? in : ids, *big = small == in ? ids : in;
        for (int i = 0; i < small->n; i++)
            if (keyset_contains(big, (const char *const *)keyset_tuple(small, i)))
                return 1;
    }
    return 0;
}

int bulk_flush(struct bulk_writer *w, struct pgs_error *err)
{
    if (w->bulk.n == 0)
        return 0;
    test_pause();
    pgs_log(LOG_DEBUG, "bulk request", "items=%d bytes=%zu", w->bulk.n, w->bulk.bytes);
    if (w->pipe == NULL) {
        w->pipe = es_pipe_new(w->es, BULK_MAX_DEPTH, w->stop, err);
        if (w->pipe == NULL)
            return -1;
        es_pipe_set_hooks(w->pipe, es_client_hooks(w->es));
    }
    struct keyset ids;
    keyset_init(&ids, 1);
    for (int i = 0; i < w->bulk.n; i++)
        keyset_add(&ids, (const char *const *)&w->bulk.items[i].id);
    /* room, and no _id of this bulk on the wire: else the earlier write is answered first */
    while (es_pipe_inflight(w->pipe) >= w->depth || flight_overlaps(w, &ids)) {
        if (bulk_take(w, es_pipe_next(w->pipe, 1), err) < 0) {
            keyset_free(&ids);
            return -1;
        }
    }
    w->last_seq = es_pipe_submit(w->pipe, &w->bulk, w->origin);
    w->flights[w->nflights].seq = w->last_seq;
    w->flights[w->nflights++].ids = ids; /* hands over */
    return 0;
}

int bulk_flush_if_full(struct bulk_writer *w, struct pgs_error *err)
{
    if (w->bulk.bytes >= (size_t)w->cfg->bulk_max_bytes ||
        (w->cfg->bulk_max_docs > 0 && w->bulk.n >= w->cfg->bulk_max_docs))
        return bulk_flush(w, err);
    return 0;
}

int bulk_poll(struct bulk_writer *w, struct pgs_error *err)
{
    struct es_pipe_job *j;
    int rv = 0;
    struct pgs_error e;

    while (w->pipe && (j = es_pipe_next(w->pipe, 0)) != NULL) {
        if (bulk_take(w, j, &e) < 0 && rv == 0) {
            *err = e;
            rv = -1;
        }
    }
    return rv;
}

int bulk_drain(struct bulk_writer *w, struct pgs_error *err)
{
    int rv = 0;
    struct pgs_error e;

    while (w->pipe && es_pipe_inflight(w->pipe) > 0) {
        if (bulk_take(w, es_pipe_next(w->pipe, 1), &e) < 0 && rv == 0) {
            *err = e;
            rv = -1;
        }
    }
    return rv;
}

int bulk_inflight(const struct bulk_writer *w)
{
    return w->pipe ? es_pipe_inflight(w->pipe) : 0;
}

uint64_t bulk_last_seq(const struct bulk_writer *w)
{
    return w->last_seq;
}

int bulk_done(const struct bulk_writer *w, uint64_t seq)
{
    if (seq == 0)
        return 1;
    if (w->pipe == NULL || seq >= es_pipe_oldest(w->pipe))
        return 0;
    return w->failed_seq == 0 || seq < w->failed_seq;
}

void bulk_forget_failures(struct bulk_writer *w)
{
    w->failed_seq = 0;
}

const struct bulk_stats *bulk_writer_stats(const struct bulk_writer *w)
{
    return &w->stats;
}
