/*
 * truncate.c - the root TRUNCATE fence (raise, read, the fix-up after each
 * answered bulk) and the sweep of the index. See truncate.h for why a
 * truncate needs more than the versions every other write relies on.
 */
#include "truncate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "log.h"
#include "rstate.h"
#include "rstream.h"
#include "strbuf.h"


struct truncate_fence {
    const struct config *cfg;    /* borrowed */
    const struct app_entry *ae;  /* borrowed */
    struct es_client *es;        /* borrowed */
    struct redis_conn *rc;            /* borrowed: the entry's meta hash */
    volatile sig_atomic_t *stop; /* set by a signal: stop retrying */
    uint64_t swept_fence;        /* the fence this process last swept the index at */
};

struct truncate_fence *truncate_fence_new(const struct config *cfg, const struct app_entry *ae,
                                          struct es_client *es, volatile sig_atomic_t *stop)
{
    struct truncate_fence *t = xcalloc(1, sizeof(*t));
    t->cfg = cfg;
    t->ae = ae;
    t->es = es;
    t->stop = stop;
    return t;
}

void truncate_fence_free(struct truncate_fence *t)
{
    free(t);
}

void truncate_set_redis(struct truncate_fence *t, struct redis_conn *rc)
{
    t->rc = rc;
}

int truncate_read_fence(struct truncate_fence *t, uint64_t *fence, struct pgs_error *err)
{
    return rstate_fence_read(t->rc, t->cfg, t->ae->keybase, fence, err);
}

int truncate_raise_fence(struct truncate_fence *t, uint64_t version, struct pgs_error *err)
{
    return rstate_fence_raise(t->rc, t->cfg, t->ae->keybase, version, err);
}

/*
 * "done" was answered, some of it older than the fence, which the fence
 * read after the answer shows: had the fence been raised after the answer,
 * the truncate's sweep (which lists the index only then) would have found
 * these writes. Delete them at the fence's version: a document written
 * since for a newer row keeps its higher version (409, counted as done).
 */
static int fence_fixup(struct truncate_fence *t, const struct es_bulk *done, uint64_t fence,
                       struct pgs_error *err)
{
    struct es_bulk fix;
    int rv;

    es_bulk_init(&fix);
    for (int i = 0; i < done->n; i++) {
        const struct es_bulk_item *it = &done->items[i];
        if (it->version < fence && it->cls != ES_ITEM_REJECT)
            es_bulk_add(&fix, ES_OP_DELETE, it->index, it->id, fence, NULL, 0, it->routing, NULL,
                        NULL);
    }
    rv = es_bulk_flush(t->es, &fix, t->stop, err);
    if (rv == 0)
        pgs_log(LOG_INFO, "writes older than a root TRUNCATE deleted again", "index=%s docs=%d",
                t->ae->index, fix.n);
    es_bulk_deinit(&fix);
    return rv;
}

int truncate_check_answered(struct truncate_fence *t, const struct es_bulk *done,
                            struct pgs_error *err)
{
    uint64_t lowest = UINT64_MAX, fence = 0;

    if (t->rc == NULL)
        return 0;
    for (int i = 0; i < done->n; i++)
        if (done->items[i].version > 0 && done->items[i].version < lowest)
            lowest = done->items[i].version;
    if (lowest == UINT64_MAX)
        return 0; /* no versioned write in it */
    if (truncate_read_fence(t, &fence, err) < 0)
        return -1;
    return fence > lowest ? fence_fixup(t, done, fence, err) : 0;
}

/*
 * Queue a delete, at "fence", of every hit of one scroll page older than it;
 * adds their number to *n.
 */
static void sweep_page(struct bulk_writer *w, json_t *hits, uint64_t fence, long long *n)
{
    size_t i;
    json_t *hit;

    json_array_foreach(hits, i, hit) {
        const char *id = json_string_value(json_object_get(hit, "_id"));
        json_t *v = json_object_get(hit, "_version");
        if (id == NULL || (json_is_integer(v) && (uint64_t)json_integer_value(v) >= fence))
            continue;
        bulk_add_delete(w, id, fence, json_string_value(json_object_get(hit, "_routing")));
        (*n)++;
    }
}

/* Let the engine free a scroll context before its keep-alive ends. */
static void sweep_clear_scroll(struct truncate_fence *t, const char *scroll_id)
{
    json_t *del = json_pack("{s:[s]}", "scroll_id", scroll_id);
    char *txt = json_dumps(del, JSON_COMPACT);
    char *ignored = NULL;
    long status = 0;
    struct pgs_error e2;

    if (es_request(t->es, "DELETE", "/_search/scroll", txt, strlen(txt), "application/json",
                   &status, &ignored, &e2) == 0)
        free(ignored);
    free(txt);
    json_decref(del);
}

/*
 * For a root TRUNCATE: a document written later for a newer row keeps its
 * higher version (skipped here, or 409); an older copy still in flight
 * meets the delete's tombstone and is refused, or is deleted again by its
 * writer (truncate_check_answered). A _delete_by_query could do neither.
 */
int truncate_sweep(struct truncate_fence *t, struct bulk_writer *w, uint64_t fence, int always,
                   const char *why, struct pgs_error *err)
{
    const char *index = t->ae->index;
    char path[512], *resp = NULL, *scroll_id = NULL;
    long status = 0;
    long long n = 0;
    int rv = -1;

    if (!always && t->swept_fence >= fence)
        return 0;
    /* the bulks of earlier batches must be in the index before it is listed */
    if (bulk_drain(w, err) < 0)
        return -1;
    if (es_refresh(t->es, index, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "/%s/_search?scroll=2m&allow_partial_search_results=false",
             index);
    const char *first = "{\"size\":1000,\"_source\":false,\"version\":true,\"sort\":[\"_doc\"]}";
    if (es_request(t->es, "POST", path, first, strlen(first), "application/json", &status, &resp,
                   err) < 0)
        return -1;
    for (;;) {
        json_error_t je;
        json_t *body = json_loads(resp ? resp : "", 0, &je);
        free(resp);
        resp = NULL;
        if (status == 404) {
            json_decref(body);
            rv = 0; /* no index, nothing to delete */
            goto out;
        }
        json_t *hits = json_object_get(json_object_get(body, "hits"), "hits");
        if (status != 200 || !json_is_array(hits)) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "scrolling index \"%s\" failed (HTTP %ld)",
                          index, status);
            json_decref(body);
            goto out;
        }
        if (es_search_complete(body, index, err) < 0) {
            json_decref(body);
            goto out;
        }
        free(scroll_id);
        scroll_id = json_is_string(json_object_get(body, "_scroll_id"))
                        ? xstrdup(json_string_value(json_object_get(body, "_scroll_id")))
                        : NULL;
        sweep_page(w, hits, fence, &n);
        size_t nhits = json_array_size(hits);
        json_decref(body);
        if (bulk_flush(w, err) < 0)
            goto out;
        if (nhits == 0 || scroll_id == NULL)
            break;
        json_t *next = json_pack("{s:s, s:s}", "scroll", "2m", "scroll_id", scroll_id);
        char *txt = json_dumps(next, JSON_COMPACT);
        json_decref(next);
        int r = es_request(t->es, "POST", "/_search/scroll", txt, strlen(txt),
                           "application/json", &status, &resp, err);
        free(txt);
        if (r < 0)
            goto out;
    }
    if (t->swept_fence < fence)
        t->swept_fence = fence;
    rv = 0;
    pgs_log(LOG_INFO, why, "index=%s docs=%lld", index, n);
out:
    if (scroll_id) {
        sweep_clear_scroll(t, scroll_id);
        free(scroll_id);
    }
    free(resp);
    return rv;
}
