/*
 * docs.c - the document query (by keys in chunks, or through a cursor), and
 * the waits before a batch's documents are read (docs.h).
 */
#include "docs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bulk.h"
#include "log.h"
#include "pgerr.h"
#include "rstream.h"
#include "strbuf.h"


struct docs {
    const struct config *cfg;
    const struct app_entry *ae;  /* borrowed */
    struct bulk_writer *w;       /* borrowed: where the documents go */
    volatile sig_atomic_t *stop; /* set by a signal: stop waiting */
};

struct docs *docs_new(const struct config *cfg, const struct app_entry *ae, struct bulk_writer *w,
                      volatile sig_atomic_t *stop)
{
    struct docs *d = xcalloc(1, sizeof(*d));
    d->cfg = cfg;
    d->ae = ae;
    d->w = w;
    d->stop = stop;
    return d;
}

void docs_free(struct docs *d)
{
    free(d);
}

void docs_prepare_failed(PGconn *pg, PGresult *res, const char *name, struct pgs_error *err)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /*
     * PREPARE takes its tables' locks, so a DBA's lock, a cancel or a
     * statement_timeout fails it too: retried like any query (pgerr.h),
     * never a reason to exit. A row's error cannot happen here.
     */
    pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot prepare the %s query: %s (SQLSTATE %s)", name,
                  pgerr_class_name(state), state ? state : "none");
    pgs_error_detail(err, "%s", PQerrorMessage(pg));
    PQclear(res);
}

int docs_prepare(const struct app_entry *ae, PGconn *pg, struct pgs_error *err)
{
    PGresult *res = PQprepare(pg, "doc_keys", ae->sql.doc_by_keys, ae->sql.npk, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        docs_prepare_failed(pg, res, "doc_keys", err);
        return -1;
    }
    PQclear(res);
    return 0;
}

int docs_query_failed(PGconn **pg, PGresult *res, const char *database, const char *what,
                      struct pgs_error *err)
{
    int gone = PQstatus(*pg) != CONNECTION_OK;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    enum pgs_errkind kind = pgerr_kind(state, !gone);

    if (kind == PGS_ERR_TRANSIENT && !gone)
        pgs_error_set(err, kind, "%s failed on database \"%s\": %s (SQLSTATE %s), retrying", what,
                      database, pgerr_class_name(state), state ? state : "none");
    else
        pgs_error_set(err, kind, "%s failed on database \"%s\"", what, database);
    pgs_error_detail(err, "%s", PQerrorMessage(*pg));
    PQclear(res);
    if (gone) {
        PQfinish(*pg);
        *pg = NULL;
    }
    return -1;
}

/*
 * The walsender may send a commit as soon as it is flushed, a moment
 * before the committing backend leaves the proc array; a document read in
 * that moment would miss the change yet carry its version, and win.
 */
int docs_wait_visible(struct docs *d, PGconn **pg, const struct change *recs, int n,
                      struct pgs_error *err)
{
    static const char sql[] =
        "WITH c AS (SELECT pg_current_snapshot() AS snap), "
        "e AS (SELECT snap, pg_snapshot_xmax(snap)::text::numeric AS xmax, "
        "floor(pg_snapshot_xmax(snap)::text::numeric / 4294967296) * 4294967296 AS base FROM c) "
        "SELECT coalesce(bool_and(pg_visible_in_snapshot((CASE WHEN e.base + x > e.xmax "
        "THEN e.base + x - 4294967296 ELSE e.base + x END)::text::xid8, e.snap)), true) "
        "FROM e, unnest($1::bigint[]) AS x";
    struct strbuf xids;
    uint32_t last = 0;
    int rv = -1;

    sb_init(&xids);
    sb_addc(&xids, '{');
    for (int i = 0; i < n; i++) {
        if (recs[i].xid == 0 || recs[i].xid == last)
            continue;
        last = recs[i].xid;
        sb_printf(&xids, "%s%" PRIu32, xids.len > 1 ? "," : "", recs[i].xid);
    }
    sb_addc(&xids, '}');
    for (int tries = 0;; tries++) {
        const char *params[1] = {xids.buf};
        PGresult *res = PQexecParams(*pg, sql, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            docs_query_failed(pg, res, d->ae->e->database, "the visibility check", err);
            goto out;
        }
        int visible = !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
        if (visible)
            break;
        if (tries == 2000) {
            /* 2 s: not a race of microseconds; proceed, later changes will correct it */
            pgs_log(LOG_WARN, "transactions of the batch still not visible; going on", NULL);
            break;
        }
        usleep(1000);
    }
    rv = 0;
out:
    sb_free(&xids);
    return rv;
}

/*
 * Such a batch may hold documents read before the truncate, not yet in the
 * index, that no tombstone could stop.
 */
void docs_wait_earlier_batches(struct docs *d, struct redis_conn *rc, const char *first_id)
{
    struct pgs_error err;
    int waited_ms = 0;

    if (first_id == NULL || rc == NULL)
        return;
    for (;;) {
        char oldest[RSTREAM_ID_LEN];
        long long idle;
        int busy = 0;
        /* a failed read counts as nothing pending: the wait only saves work */
        if (rstream_pending_oldest(rc, d->ae->stream, RSTREAM_GROUP, first_id, oldest,
                                   sizeof(oldest), &idle, &busy, &err) < 0)
            busy = 0;
        if (!busy || (d->stop && *d->stop))
            return;
        /* bounded: a stalled consumer must not stop the truncate; tombstones cover most */
        if (waited_ms >= 10000) {
            pgs_log(LOG_WARN, "earlier entries still pending; truncating anyway", "index=%s",
                    d->ae->index);
            return;
        }
        usleep(100000);
        waited_ms += 100;
    }
}

static void make_id(char *const *key, int width, struct strbuf *sb)
{
    sb_reset(sb);
    for (int i = 0; i < width; i++) {
        if (i > 0)
            sb_add(sb, SQLGEN_ID_SEP);
        sb_add(sb, key[i]);
    }
}

/*
 * An index with "routing": the _ids of the chunk, each with the routing it
 * has now (from its document) or none (its row is gone); bulk.c deletes
 * every copy elsewhere.
 */
static int drop_misrouted(struct docs *d, PGresult *res, const struct keyset *keys, int from,
                          int to, const struct keyset *found, uint64_t version,
                          struct pgs_error *err)
{
    int width = keys->width, n = 0, rows = PQntuples(res);
    const char **ids = xcalloc((size_t)(to - from + rows), sizeof(char *));
    const char **want = xcalloc((size_t)(to - from + rows), sizeof(char *));
    char **owned = xcalloc((size_t)(to - from + rows), sizeof(char *));
    struct strbuf id;

    sb_init(&id);
    for (int r = 0; r < rows; r++) {
        ids[n] = PQgetvalue(res, r, 0);
        owned[n] = bulk_routing_of(d->w, PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1));
        want[n] = owned[n];
        n++;
    }
    for (int i = from; i < to; i++) {
        char **key = keyset_tuple(keys, i);
        if (keyset_contains(found, (const char *const *)key))
            continue;
        make_id(key, width, &id);
        owned[n] = xstrdup(id.buf);
        ids[n] = owned[n];
        want[n++] = NULL;
    }
    int rv = bulk_drop_misrouted(d->w, ids, want, n, version, err);
    for (int i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(ids);
    free(want);
    sb_free(&id);
    return rv;
}

/* Fetch documents for root keys [from, to) and queue index or delete writes. */
static int fetch_chunk(struct docs *d, PGconn **pg, const struct keyset *keys, int from, int to,
                       uint64_t version, struct pgs_error *err)
{
    int width = keys->width;
    struct strbuf *arrays = xcalloc((size_t)width, sizeof(struct strbuf));
    const char **params = xcalloc((size_t)width, sizeof(char *));
    struct keyset found;
    struct strbuf id;
    int rv = 0;

    keyset_init(&found, width);
    sb_init(&id);
    for (int c = 0; c < width; c++) {
        sb_init(&arrays[c]);
        keyset_pg_array(keys, c, from, to, &arrays[c]);
        params[c] = arrays[c].buf;
    }
    PGresult *res = PQexecPrepared(*pg, "doc_keys", width, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rv = docs_query_failed(pg, res, d->ae->e->database, "the document query", err);
        if (err->kind == PGS_ERR_DOCUMENT && to - from > 1) {
            /* one poison row must not hold the others back: split and retry */
            int mid = from + (to - from) / 2;
            rv = fetch_chunk(d, pg, keys, from, mid, version, err);
            if (rv == 0)
                rv = fetch_chunk(d, pg, keys, mid, to, version, err);
        } else if (err->kind == PGS_ERR_DOCUMENT) {
            make_id(keyset_tuple(keys, from), width, &id);
            rv = bulk_dead_letter(d->w, id.buf, err->detail, "document_query_failed", NULL, 0,
                                  err);
        }
        goto out;
    }
    const char *vals[64];
    for (int r = 0; r < PQntuples(res); r++) {
        for (int k = 0; k < width; k++)
            vals[k] = PQgetvalue(res, r, 2 + k);
        keyset_add(&found, vals);
    }
    /* with custom routing, copies under another routing value go first */
    if (d->ae->e->routing != NULL &&
        drop_misrouted(d, res, keys, from, to, &found, version, err) < 0) {
        PQclear(res);
        rv = -1;
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        bulk_add_index(d->w, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                       (size_t)PQgetlength(res, r, 1), version);
        /* a document cap (ELASTICSEARCH_CHUNK_SIZE) may cut a chunk */
        if (bulk_flush_if_full(d->w, err) < 0) {
            PQclear(res);
            rv = -1;
            goto out;
        }
    }
    PQclear(res);
    /* keys asked for and not found: the root row is gone (routed: deleted above) */
    for (int i = from; i < to && d->ae->e->routing == NULL; i++) {
        char **key = keyset_tuple(keys, i);
        if (!keyset_contains(&found, (const char *const *)key)) {
            make_id(key, width, &id);
            bulk_add_delete(d->w, id.buf, version, NULL);
        }
    }
    rv = bulk_flush_if_full(d->w, err);
out:
    for (int c = 0; c < width; c++)
        sb_free(&arrays[c]);
    free(arrays);
    free(params);
    keyset_free(&found);
    sb_free(&id);
    return rv;
}

int docs_fetch(struct docs *d, PGconn **pg, const struct keyset *keys, uint64_t version,
               struct pgs_error *err)
{
    int chunk = d->cfg->doc_chunk;

    for (int from = 0; from < keys->n; from += chunk) {
        int to = from + chunk < keys->n ? from + chunk : keys->n;
        if (fetch_chunk(d, pg, keys, from, to, version, err) < 0)
            return -1;
    }
    return 0;
}

int docs_index_query(struct docs *d, PGconn *conn, const char *sql, int nparams,
                     const char *const *params, uint64_t version, docs_progress_fn progress,
                     void *arg, long long *ndocs, struct pgs_error *err)
{
    struct strbuf q;
    char fetch[64];
    PGresult *res;
    long long done = 0;

    sb_init(&q);
    sb_printf(&q, "DECLARE pgsync_docs NO SCROLL CURSOR FOR %s", sql);
    res = PQexecParams(conn, q.buf, nparams, NULL, params, NULL, NULL, 0);
    sb_free(&q);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgs_error_set(err, PQstatus(conn) == CONNECTION_OK ? PGS_ERR_FATAL : PGS_ERR_TRANSIENT,
                      "the document query failed on database \"%s\"", d->ae->e->database);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    snprintf(fetch, sizeof(fetch), "FETCH %d FROM pgsync_docs", d->cfg->query_chunk);
    for (;;) {
        res = PQexec(conn, fetch);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            pgs_error_set(err, PQstatus(conn) == CONNECTION_OK ? PGS_ERR_FATAL : PGS_ERR_TRANSIENT,
                          "fetching documents failed on database \"%s\"", d->ae->e->database);
            pgs_error_detail(err, "%s", PQerrorMessage(conn));
            PQclear(res);
            return -1;
        }
        int rows = PQntuples(res);
        for (int r = 0; r < rows; r++) {
            bulk_add_index(d->w, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                           (size_t)PQgetlength(res, r, 1), version);
            if (bulk_flush_if_full(d->w, err) < 0) {
                PQclear(res);
                return -1;
            }
        }
        PQclear(res);
        done += rows;
        if (progress)
            progress(arg, done);
        if (rows < d->cfg->query_chunk)
            break;
        if (d->stop && *d->stop) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "interrupted");
            return -1;
        }
    }
    res = PQexec(conn, "CLOSE pgsync_docs");
    PQclear(res);
    if (bulk_flush(d->w, err) < 0)
        return -1;
    if (ndocs)
        *ndocs = done;
    return 0;
}

int docs_reindex_all(struct docs *d, PGconn *pg, uint64_t version, struct pgs_error *err)
{
    long long n = 0;
    PGresult *res = PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    PQclear(res);
    int rv = docs_index_query(d, pg, d->ae->sql.doc_all, 0, NULL, version, NULL, NULL, &n, err);
    res = PQexec(pg, rv == 0 ? "COMMIT" : "ROLLBACK");
    PQclear(res);
    if (rv == 0)
        pgs_log(LOG_INFO, "documents re-indexed after a truncate", "index=%s docs=%lld",
                d->ae->index, n);
    return rv;
}
