/*
 * sync.c - the driver of the stages of a batch (sync.h): it owns the
 * database connection and one object per stage, and runs them in order in
 * syncer_process().
 */
#include "sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lsn.h"
#include "roots.h"
#include "truncate.h"

struct syncer {
    const struct config *cfg;
    struct app_entry *ae;        /* borrowed */
    PGconn *pg;                  /* owned; NULL while disconnected */
    struct redis_conn *rc;            /* borrowed: the stream, for the truncate's wait */
    struct roots *roots;         /* owned: the batch's root keys */
    struct docs *docs;           /* owned: the document reader */
    struct bulk_writer *writer;  /* owned: the bulks in flight */
    struct truncate_fence *fence; /* owned: the root TRUNCATE fence */
    int redelivered;             /* the batch was delivered before (own pending, or claimed) */
    struct syncer_stats stats;
};

struct syncer *syncer_new(const struct config *cfg, struct app_entry *ae, struct es_client *es,
                          volatile sig_atomic_t *stop)
{
    struct syncer *s = xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    s->ae = ae;
    s->roots = roots_new(ae);
    s->writer = bulk_writer_new(cfg, ae, es, stop);
    s->docs = docs_new(cfg, ae, s->writer, stop);
    s->fence = truncate_fence_new(cfg, ae, es, stop);
    bulk_set_fence(s->writer, s->fence);
    return s;
}

void syncer_free(struct syncer *s)
{
    if (s == NULL)
        return;
    if (s->pg)
        PQfinish(s->pg);
    bulk_writer_free(s->writer); /* first: its answers may still check the fence */
    truncate_fence_free(s->fence);
    docs_free(s->docs);
    roots_free(s->roots);
    free(s);
}

void syncer_set_redis(struct syncer *s, struct redis_conn *rc)
{
    s->rc = rc;
    bulk_set_redis(s->writer, rc);
    truncate_set_redis(s->fence, rc);
}

void syncer_set_origin(struct syncer *s, const char *origin)
{
    bulk_set_origin(s->writer, origin);
}

void syncer_set_redelivered(struct syncer *s, int redelivered)
{
    s->redelivered = redelivered;
}

void syncer_set_depth(struct syncer *s, int depth)
{
    bulk_set_depth(s->writer, depth);
}

int syncer_connect(struct syncer *s, struct pgs_error *err)
{
    if (s->pg)
        PQfinish(s->pg);
    s->pg = config_pg_connect(s->cfg, s->ae->e->database, 0, "pgsync-consumer", err);
    if (s->pg == NULL)
        return -1;
    if (docs_prepare(s->ae, s->pg, err) < 0 || roots_prepare(s->ae, s->pg, err) < 0) {
        syncer_disconnect(s);
        return -1;
    }
    return 0;
}

void syncer_disconnect(struct syncer *s)
{
    if (s->pg)
        PQfinish(s->pg);
    s->pg = NULL;
}

PGconn *syncer_pg(const struct syncer *s)
{
    return s->pg;
}

struct app_entry *syncer_entry(const struct syncer *s)
{
    return s->ae;
}

const struct config *syncer_config(const struct syncer *s)
{
    return s->cfg;
}

struct bulk_writer *syncer_writer(const struct syncer *s)
{
    return s->writer;
}

const struct syncer_stats *syncer_stats(const struct syncer *s)
{
    return &s->stats;
}

int syncer_index_query(struct syncer *s, PGconn *conn, const char *sql, int nparams,
                       const char *const *params, uint64_t version, docs_progress_fn progress,
                       void *arg, long long *ndocs, struct pgs_error *err)
{
    return docs_index_query(s->docs, conn, sql, nparams, params, version, progress, arg, ndocs,
                            err);
}

int syncer_fence(struct syncer *s, uint64_t *fence, struct pgs_error *err)
{
    return truncate_read_fence(s->fence, fence, err);
}

int syncer_sweep(struct syncer *s, uint64_t fence, int always, const char *why,
                 struct pgs_error *err)
{
    return truncate_sweep(s->fence, s->writer, fence, always, why, err);
}

/* What the first pass over a batch's records found. */
struct batch_scan {
    uint64_t version;          /* the newest commit: every write's version */
    uint64_t oldest;           /* the oldest commit */
    int truncate_root;         /* a TRUNCATE of the root table ... */
    uint64_t truncate_version; /* ... the newest one's commit */
    int truncate_other;        /* a TRUNCATE of another table of the entry */
};

/* One pass over the records: the batch's versions and truncates; route the others to nodes. */
static void scan_batch(struct syncer *s, const struct change *recs, int n, struct batch_scan *sc)
{
    const struct schema_entry *e = s->ae->e;

    memset(sc, 0, sizeof(*sc));
    sc->oldest = UINT64_MAX;
    for (int i = 0; i < n; i++) {
        const struct change *c = &recs[i];
        if (c->lsn > sc->version)
            sc->version = c->lsn;
        if (c->lsn < sc->oldest)
            sc->oldest = c->lsn;
        if (c->op == CHANGE_TRUNCATE) {
            if (!strcmp(c->schema, e->root->schema) && !strcmp(c->table, e->root->table)) {
                sc->truncate_root = 1;
                if (c->lsn > sc->truncate_version)
                    sc->truncate_version = c->lsn;
            }
            else if (app_table_index(s->ae, c->schema, c->table) >= 0)
                sc->truncate_other = 1;
            continue;
        }
        roots_route_record(s->roots, c);
    }
}

/*
 * A root TRUNCATE in the batch: raise the fence and sweep the index. Else,
 * for a batch read before, undo what a truncate since may have raced past.
 */
static int apply_truncates(struct syncer *s, const struct change *recs,
                           const struct batch_scan *sc, struct pgs_error *err)
{
    if (sc->truncate_root) {
        /* fewer stale writes to undo; the fence (truncate.h) is what makes it right */
        docs_wait_earlier_batches(s->docs, s->rc, recs[0].entry_id);
        if (truncate_raise_fence(s->fence, sc->truncate_version, err) < 0 ||
            syncer_sweep(s, sc->truncate_version, 1, "root table truncated: documents deleted",
                         err) < 0)
            return -1;
    } else if (s->redelivered && s->rc != NULL) {
        /*
         * Read before: its first reader may have died between its bulk's
         * answer and the fence check (truncate_check_answered), leaving
         * writes older than a truncate that came since. Sweep once at that
         * fence.
         */
        uint64_t fence = 0;
        if (syncer_fence(s, &fence, err) < 0)
            return -1;
        if (fence > sc->oldest &&
            syncer_sweep(s, fence, 0, "documents older than a root TRUNCATE deleted", err) < 0)
            return -1;
    }
    return 0;
}

/*
 * Records that cannot be true are dead-lettered with the reason and never
 * acted on: a table that is not in the entry's schema, or a version beyond
 * the database's WAL insert position (a forged root TRUNCATE far ahead would
 * otherwise fence every write out, a forged version would freeze documents).
 * The others go into "*kept" (a new array of shallow copies, or "recs"
 * itself when all are fine; the caller frees it when it differs).
 */
static int drop_impossible(struct syncer *s, const struct change *recs, int n,
                           const struct change **kept, int *nkept, struct pgs_error *err)
{
    uint64_t wal_end = 0;
    struct change *copy = NULL;
    int m = 0;

    *kept = recs;
    *nkept = n;
    PGresult *res = PQexec(s->pg, "SELECT pg_current_wal_insert_lsn()");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        lsn_parse(PQgetvalue(res, 0, 0), &wal_end) < 0)
        wal_end = 0;
    PQclear(res); /* a standby cannot say: then the version is not checked */
    for (int i = 0; i < n; i++) {
        const struct change *c = &recs[i];
        char why[400];
        why[0] = '\0';
        if (app_table_index(s->ae, c->schema, c->table) < 0) /* every table, the root too */
            snprintf(why, sizeof(why), "change record %s: table %.100s.%.100s is not in the schema",
                     c->entry_id ? c->entry_id : "?", c->schema, c->table);
        else if (wal_end != 0 && c->lsn > wal_end)
            snprintf(why, sizeof(why),
                     "change record %s: version %" PRIu64 " is beyond the database's WAL "
                     "position %" PRIu64,
                     c->entry_id ? c->entry_id : "?", c->lsn, wal_end);
        if (why[0] == '\0') {
            if (copy != NULL)
                copy[m++] = *c;
            continue;
        }
        if (copy == NULL) { /* the first bad one: keep the good ones before it */
            copy = xcalloc((size_t)n, sizeof(*copy));
            for (m = 0; m < i; m++)
                copy[m] = recs[m];
        }
        pgs_log(LOG_WARN, "record dead-lettered: it cannot be true", "why=\"%s\"", why);
        if (bulk_dead_letter(s->writer, NULL, why, "impossible_record", NULL, 0, err) < 0) {
            free(copy);
            return -1;
        }
    }
    if (copy != NULL) {
        *kept = copy;
        *nkept = m;
    }
    return 0;
}

/* The batch's records that can be true: versions, truncates, reverse queries, documents, bulk. */
static int process_kept(struct syncer *s, const struct change *recs, int n, struct pgs_error *err)
{
    struct batch_scan sc;

    /* 1. one version for the batch: its newest commit; every read below is newer still */
    scan_batch(s, recs, n, &sc);
    s->stats.records += (unsigned long long)n;
    if (sc.version == 0)
        return 0; /* nothing but load items or nothing at all */
    if (docs_wait_visible(s->docs, &s->pg, recs, n, err) < 0)
        return -1;
    if (apply_truncates(s, recs, &sc, err) < 0)
        return -1;
    if ((sc.truncate_other || roots_need_reindex(s->roots)) && !sc.truncate_root) {
        /*
         * The keyed steps below still run: a root deleted in the same batch
         * is not in the re-index and must become a delete.
         */
        if (docs_reindex_all(s->docs, s->pg, sc.version, err) < 0)
            return -1;
    }

    /* 2. reverse queries: one per node (and through table) per batch */
    if (roots_query(s->roots, &s->pg, err) < 0)
        return -1;

    /* 3. documents for every affected root, in chunks; 4. bulk */
    if (docs_fetch(s->docs, &s->pg, roots_keys(s->roots), sc.version, err) < 0)
        return -1;
    if (bulk_flush(s->writer, err) < 0)
        return -1;
    s->stats.batches++;
    return 0;
}

int syncer_process(struct syncer *s, const struct change *all, int nall, struct pgs_error *err)
{
    const struct change *recs;
    int n, rv;

    if (s->pg == NULL && syncer_connect(s, err) < 0)
        return -1;
    roots_clear(s->roots);
    bulk_reset(s->writer);
    if (drop_impossible(s, all, nall, &recs, &n, err) < 0)
        return -1;
    rv = process_kept(s, recs, n, err);
    if (recs != all)
        free((void *)recs);
    return rv;
}
