/*
 * load.c - the initial load: the coordinator (snapshot, ranges, work items,
 * workers, progress) and the work item itself (load_range).
 */
#include "load.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap.h"
#include "clock.h"
#include "consume.h"
#include "log.h"
#include "lsn.h"
#include "routes.h"
#include "rstate.h"
#include "rstream.h"
#include "strbuf.h"
#include "sync.h"

/* pages per range: about 8 MB of heap, a few seconds of work */
#define PAGES_PER_PART 1000
#define MAX_PARTS      10000
/* a small table is cut finer, down to ranges of this many pages (128 kB) */
#define RANGES_PER_WORKER  4
/* how long a load waits for the producer to write a new entry's stream (routes.h) */
#define ROUTES_WAIT_S 120
#define MIN_PAGES_PER_PART 16

/* ---- progress ---- */

struct progress {
    const char *index;
    long long total; /* estimate from the catalog; 0 = unknown */
    double start;
    double last;
    int tty;
    int quiet;
};

/*
 * The number of documents to expect: the estimate (estimate_rows) while it
 * is ahead of what is done, what is done once it is reached (the last
 * ranges are finishing); without an estimate (a view), once some ranges are
 * done, the documents so far per range done times the ranges (ranges are
 * equal runs of heap pages; an upper bound, as ranges in progress count
 * too). 0 when nothing tells yet; "*exact" when the load is over.
 */
static long long progress_total(const struct progress *p, long long done, int parts_done,
                                int parts, int final, int *exact)
{
    *exact = final;
    if (final)
        return done;
    if (p->total > done)
        return p->total;
    if (p->total > 0)
        return done;
    if (parts_done > 0 && parts_done < parts) {
        long long by_ranges = done * parts / parts_done;
        return by_ranges > done ? by_ranges : done + 1;
    }
    return 0;
}

static void progress_show(struct progress *p, long long done, int parts_done, int parts,
                          int final)
{
    double t = clock_now_s();
    double rate = done / (t - p->start > 1e-6 ? t - p->start : 1e-6);
    int exact;
    long long total = progress_total(p, done, parts_done, parts, final, &exact);

    if (p->quiet)
        return;
    if (p->tty) {
        if (!final && t - p->last < 0.2)
            return;
        int width = 30, fill = total > 0 ? (int)(width * done / total) : 0;
        char total_txt[32], eta_txt[32];
        if (total > 0)
            snprintf(total_txt, sizeof(total_txt), "%s%lld", exact ? "" : "~", total);
        else
            snprintf(total_txt, sizeof(total_txt), "?");
        if (final)
            snprintf(eta_txt, sizeof(eta_txt), "%.0fs", t - p->start);
        else if (total > 0 && rate > 0)
            snprintf(eta_txt, sizeof(eta_txt), "ETA %.0fs", (double)(total - done) / rate);
        else
            snprintf(eta_txt, sizeof(eta_txt), "ETA ?");
        /* \r and erase: log lines of the workers clear the line the same way (log.c) */
        fprintf(stderr, "\r\033[K%s [%.*s%*s] %lld/%s docs  %d/%d ranges  %.0f docs/s  %s",
                p->index, fill, "##############################", width - fill, "", done,
                total_txt, parts_done, parts, rate, eta_txt);
        if (final)
            fputc('\n', stderr);
        fflush(stderr);
    } else {
        if (!final && t - p->last < 5.0)
            return;
        pgs_log(LOG_INFO, final ? "load finished" : "loading",
                "index=%s docs=%lld total_estimate=%lld ranges_done=%d ranges=%d rate=%.0f",
                p->index, done, total, parts_done, parts, rate);
    }
    p->last = t;
}

/*
 * The documents to expect, for the progress bar: the catalog's reltuples;
 * for a table never ANALYZEd (reltuples -1) a count, exact up to 10,000
 * pages (80 MB: a fraction of a second) and from a 1% sample of the pages
 * above that. 0 when nothing tells (a view, an error): the bar says "?".
 */
static long long estimate_rows(PGconn *conn, const struct schema_node *root)
{
    const char *params[2] = {root->schema, root->table};
    PGresult *res = PQexecParams(conn,
                                 "SELECT c.reltuples::bigint, c.relkind, "
                                 "pg_relation_size(c.oid) / current_setting('block_size')::bigint "
                                 "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE n.nspname = $1 AND c.relname = $2",
                                 2, NULL, params, NULL, NULL, 0);
    long long n = 0, pages = 0;
    int counted = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        n = atoll(PQgetvalue(res, 0, 0));
        pages = atoll(PQgetvalue(res, 0, 2));
        counted = n < 0 && PQgetvalue(res, 0, 1)[0] == 'r';
    }
    PQclear(res);
    if (!counted)
        return n > 0 ? n : 0;

    struct strbuf q;
    sb_init(&q);
    sb_add(&q, pages <= 10000 ? "SELECT count(*) FROM " : "SELECT count(*) * 100 FROM ");
    sb_ident(&q, root->schema);
    sb_addc(&q, '.');
    sb_ident(&q, root->table);
    if (pages > 10000)
        sb_add(&q, " TABLESAMPLE SYSTEM (1)");
    res = PQexec(conn, q.buf);
    n = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0))
                                                                        : 0;
    PQclear(res);
    sb_free(&q);
    return n;
}

/* Heap pages of the root (the largest partition for a partitioned table); -1 for a view. */
static long long root_pages(PGconn *conn, const struct app_entry *ae)
{
    const struct catalog_table *t =
        catalog_find_table(&ae->cat, ae->e->root->schema, ae->e->root->table);
    struct strbuf q;
    long long pages = -1;

    if (t == NULL || t->relkind == 'v' || t->relkind == 'f')
        return -1;
    sb_init(&q);
    {
        /* pg_partition_tree() is empty for a plain table */
        struct strbuf name, lit;
        sb_init(&name);
        sb_init(&lit);
        sb_ident(&name, t->schema);
        sb_addc(&name, '.');
        sb_ident(&name, t->name);
        sb_literal(&lit, name.buf);
        sb_printf(&q,
                  "SELECT coalesce((SELECT max(pg_relation_size(relid)) FROM "
                  "pg_partition_tree(%s::regclass) WHERE isleaf), pg_relation_size(%s::regclass)) "
                  "/ current_setting('block_size')::bigint",
                  lit.buf, lit.buf);
        sb_free(&name);
        sb_free(&lit);
    }
    PGresult *res = PQexec(conn, q.buf);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        pages = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    sb_free(&q);
    return pages;
}

/* ---- one work item ---- */

struct range_progress {
    struct redis_conn *rc;
    const struct config *cfg;
    const char *keybase;
    long long reported;
};

static void range_progress(void *arg, long long done)
{
    struct range_progress *rp = arg;
    struct pgs_error err;
    /* only the progress display counts on it: a failure loses a few from the count */
    rstate_load_add_docs(rp->rc, rp->cfg, rp->keybase, done - rp->reported, &err);
    rp->reported = done;
}

/*
 * Open the range's transaction on the load's snapshot. Sets "*dropped" when
 * the snapshot is gone (its coordinator died: the next run issues the range
 * again); -1 when the connection is.
 */
static int load_range_begin(struct syncer *s, const struct load_item *item, int *dropped,
                            struct pgs_error *err)
{
    struct strbuf sql;

    PGresult *res = PQexec(syncer_pg(s), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    PQclear(res);
    sb_init(&sql);
    sb_add(&sql, "SET TRANSACTION SNAPSHOT ");
    sb_literal(&sql, item->snapshot ? item->snapshot : "");
    res = PQexec(syncer_pg(s), sql.buf);
    sb_free(&sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return 0;
    }
    int gone = PQstatus(syncer_pg(s)) != CONNECTION_OK;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* "invalid snapshot identifier": its exporter is gone; anything else is retried */
    int snapshot_gone = !gone && state != NULL && !strcmp(state, "22023");
    pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot import the load's snapshot");
    pgs_error_detail(err, "%s", PQerrorMessage(syncer_pg(s)));
    PQclear(res);
    if (gone) {
        syncer_disconnect(s);
        return -1;
    }
    PQclear(PQexec(syncer_pg(s), "ROLLBACK"));
    if (!snapshot_gone)
        return -1;
    /* its coordinator is gone; the next run issues the range again */
    pgs_log(LOG_INFO, "load item dropped: its snapshot is gone", "load=%s part=%d", item->load_id,
            item->part);
    *dropped = 1;
    return 0;
}

/* The document query of the range's ctids into "sql", its parameters into "params". */
static int load_range_query(const struct app_entry *ae, const struct load_item *item,
                            struct strbuf *sql, const char *params[2])
{
    int nparams = 0;

    if (item->lo == NULL && item->hi == NULL) {
        sb_add(sql, ae->sql.doc_all);
        return 0;
    }
    sb_add(sql, ae->sql.doc_select);
    sb_add(sql, " WHERE n0.ctid >= $1::tid");
    params[nparams++] = item->lo ? item->lo : "(0,0)";
    if (item->hi) {
        sb_add(sql, " AND n0.ctid < $2::tid");
        params[nparams++] = item->hi;
    }
    return nparams;
}

int load_range(struct syncer *s, struct redis_conn *rc, const struct load_item *item, int *dropped,
               struct pgs_error *err)
{
    const struct app_entry *ae = syncer_entry(s);
    struct strbuf sql;
    const char *params[2];
    int wanted;

    *dropped = 0;
    /* obsolete: another load is current, or this range is done already */
    if (rstate_load_range_wanted(rc, syncer_config(s), ae->keybase, item->load_id, item->part,
        &wanted,
                                 err) < 0)
        return -1;
    if (!wanted) {
        *dropped = 1;
        return 0;
    }
    /* the root table was truncated after the load's snapshot: nothing of the range is left */
    uint64_t fence = 0;
    if (syncer_fence(s, &fence, err) < 0)
        return -1;
    if (fence > item->version) {
        pgs_log(LOG_INFO, "load range skipped: the root table was truncated after its snapshot",
                "load=%s part=%d", item->load_id, item->part);
        /* an earlier reader of the range may have died before its fence check (truncate.h) */
        return syncer_sweep(s, fence, 0, "documents older than a root TRUNCATE deleted", err);
    }

    if (syncer_pg(s) == NULL && syncer_connect(s, err) < 0)
        return -1;
    if (load_range_begin(s, item, dropped, err) < 0)
        return -1;
    if (*dropped)
        return 0;

    sb_init(&sql);
    int nparams = load_range_query(ae, item, &sql, params);
    struct range_progress rp = {rc, syncer_config(s), ae->keybase, 0};
    long long n = 0;
    /* the rows of a load are distinct roots: several bulks may fly at once */
    syncer_set_depth(s, BULK_LOAD_DEPTH);
    int rv = syncer_index_query(s, syncer_pg(s), sql.buf, nparams, params, item->version,
                                range_progress, &rp, &n, err);
    syncer_set_depth(s, BULK_CHANGE_DEPTH);
    sb_free(&sql);
    if (rv < 0) {
        if (syncer_pg(s) && PQstatus(syncer_pg(s)) == CONNECTION_OK)
            PQclear(PQexec(syncer_pg(s), "ROLLBACK"));
        return -1;
    }
    PQclear(PQexec(syncer_pg(s), "COMMIT"));
    pgs_log(LOG_DEBUG, "load range read", "load=%s part=%d docs=%lld", item->load_id, item->part,
            n);
    return 0;
}

int load_range_done(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                    int part, struct pgs_error *err)
{
    if (rstate_load_mark_done(rc, cfg, ae->keybase, part, err) < 0)
        return -1;
    pgs_log(LOG_DEBUG, "load range done", "index=%s part=%d", ae->index, part);
    return 0;
}

int load_was_completed(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                       int *completed, struct pgs_error *err)
{
    return rstate_load_completed(rc, cfg, ae->keybase, completed, err);
}

int load_is_finished(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                     const char *load_id, int *finished, struct pgs_error *err)
{
    return rstate_load_is_finished(rc, cfg, ae->keybase, load_id, finished, err);
}

/* ---- the coordinator ---- */

static pid_t spawn_worker(const struct config *cfg, struct app_entry *ae, const char *load_id,
                          int n)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* a worker must not outlive its coordinator: the snapshot dies with it */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    static volatile sig_atomic_t stop;
    char name[64];
    struct app one = {.entries = ae, .nentries = 1, .cfg = cfg};
    snprintf(name, sizeof(name), "load-worker:%d:%d", (int)getppid(), n);
    struct consume_opts opts = {.name = name, .load_only = 1, .load_id = load_id};
    _exit(consume_run(cfg, &one, &opts, &stop) == 0 ? 0 : 1);
}

/* The load's snapshot: its name, and the connection that holds it open. */
struct load_snapshot {
    PGconn *repl;  /* PQfinish drops the temporary slot and with it the snapshot */
    char name[128];
    uint64_t cp;   /* the consistent point: the load's id starts with it */
};

/*
 * Trigger mode may have no logical decoding: a plain exported snapshot,
 * versioned below the WAL position sampled before it (see
 * bootstrap_export_snapshot); the connection holds it open.
 */
static int load_snapshot_export(const struct config *cfg, const struct app_entry *ae,
                                struct load_snapshot *snap, uint64_t *version,
                                struct pgs_error *err)
{
    snap->repl = config_pg_connect(cfg, ae->e->database, 0, "pgsync-load", err);
    if (snap->repl == NULL)
        return -1;
    if (bootstrap_export_snapshot(snap->repl, snap->name, sizeof(snap->name), version, err) < 0)
        return -1;
    snap->cp = *version + 1;
    return 0;
}

/* The snapshot of a temporary slot, created after the entry's own slot. */
static int load_snapshot_slot(const struct config *cfg, const struct app_entry *ae,
                              struct load_snapshot *snap, uint64_t *version,
                              struct pgs_error *err)
{
    struct strbuf sql;
    char slot[64];
    int rv = -1;

    snap->repl = config_pg_connect(cfg, ae->e->database, 1, "pgsync-load", err);
    if (snap->repl == NULL)
        return -1;
    snprintf(slot, sizeof(slot), "pgsync_load_%d", (int)getpid());
    sb_init(&sql);
    sb_add(&sql, "CREATE_REPLICATION_SLOT ");
    sb_ident(&sql, slot);
    sb_add(&sql, " TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT");
    PGresult *res = PQexec(snap->repl, sql.buf);
    sb_free(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot create a temporary slot for the load snapshot");
        pgs_error_detail(err, "%s", PQerrorMessage(snap->repl));
        goto out;
    }
    if (lsn_parse(PQgetvalue(res, 0, 1), &snap->cp) < 0 || snap->cp == 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "bad consistent point \"%s\"", PQgetvalue(res, 0, 1));
        goto out;
    }
    snprintf(snap->name, sizeof(snap->name), "%s", PQgetvalue(res, 0, 2));
    /*
     * Transactions committed before the consistent point are in the
     * snapshot; those after it come through the stream with a commit
     * LSN at or above it. One below it as the version lets them win.
     */
    *version = snap->cp - 1;
    rv = 0;
out:
    PQclear(res);
    return rv;
}

/*
 * Cut the root table into ranges of heap pages: the first page of each
 * into a new "*bounds" (the caller's to free), -1 alone for a view (one
 * range, the whole query).
 */
static void load_split(PGconn *conn, const struct app_entry *ae, int workers, long long **bounds,
                       int *nbounds)
{
    long long pages = root_pages(conn, ae);
    long long *b = xcalloc(MAX_PARTS + 1, sizeof(long long));
    int n = 0;

    if (pages < 0) {
        b[n++] = -1;
    } else {
        long long step = PAGES_PER_PART;
        /* at least RANGES_PER_WORKER ranges a worker: none idles while another has two left */
        long long want = RANGES_PER_WORKER * (workers > 1 ? workers : 1);
        if (pages / step < want)
            step = pages / want > MIN_PAGES_PER_PART ? pages / want : MIN_PAGES_PER_PART;
        if (pages / step > MAX_PARTS)
            step = pages / MAX_PARTS + 1;
        for (long long p = 0; p <= pages - step || n == 0; p += step)
            b[n++] = p;
    }
    *bounds = b;
    *nbounds = n;
}

/* The split of an interrupted load (resumed), or a new one recorded under a new "load_id". */
static int load_plan(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                     PGconn *conn, const struct load_opts *opts, uint64_t cp, char *load_id,
                     size_t idlen, long long **bounds, int *nbounds, struct pgs_error *err)
{
    int found = 0;

    if (rstate_load_split_read(rc, cfg, ae->keybase, load_id, idlen, bounds, nbounds, &found,
                               err) < 0)
        return -1;
    if (!opts->resync && found) {
        pgs_log(LOG_INFO, "resuming an interrupted load", "index=%s load=%s", ae->index,
                load_id);
        return 0;
    }
    free(*bounds);
    load_split(conn, ae, opts->workers, bounds, nbounds);
    snprintf(load_id, idlen, "%" PRIx64 "-%d", cp, (int)getpid());
    return rstate_load_split_begin(rc, cfg, ae->keybase, load_id, *bounds, *nbounds, err);
}

/* One work item per range not done yet ("*already_done" of them are), on the load stream. */
static int load_queue(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae,
                      char *load_id, struct load_snapshot *snap, uint64_t version,
                      const long long *bounds, int parts, int *already_done,
                      struct pgs_error *err)
{
    char *is_done = xcalloc((size_t)parts, 1);
    if (rstate_load_parts_done(rc, cfg, ae->keybase, parts, is_done, already_done, err) < 0) {
        free(is_done);
        return -1;
    }
    /* pipelined: hiredis copies each item's strings as it is queued */
    char lo[64], hi[64];
    const char *fv[LOAD_ITEM_MAX_FIELDS];
    size_t lens[LOAD_ITEM_MAX_FIELDS];
    struct load_item_numbers nums;
    int nitems = 0, rv = 0;
    for (int i = 0; i < parts && rv == 0; i++) {
        if (is_done[i])
            continue;
        struct load_item_ref item = {
            .load_id = load_id, .snapshot = snap->name, .part = i, .version = version};
        if (bounds[i] >= 0) {
            snprintf(lo, sizeof(lo), "(%lld,0)", bounds[i]);
            item.lo = lo;
            if (i + 1 < parts) {
                snprintf(hi, sizeof(hi), "(%lld,0)", bounds[i + 1]);
                item.hi = hi;
            }
        }
        int n = load_item_encode(&item, &nums, fv, lens);
        rv = rstream_add_queue(rc, ae->load_stream, fv, lens, n, err);
        nitems += rv == 0;
    }
    if (rv == 0 && nitems)
        rv = rstream_add_replies(rc, nitems, err);
    free(is_done);
    return rv;
}

/*
 * Wait for every range, showing progress, until all "parts" are done; a
 * worker that died is replaced, one that finished early stays gone.
 */
static int load_wait(const struct config *cfg, struct redis_conn *rc, struct app_entry *ae,
                     const char *load_id, int parts, pid_t *kids, int workers,
                     volatile sig_atomic_t *stop, struct progress *p, struct load_result *result,
                     struct pgs_error *err)
{
    for (;;) {
        long long docs = 0, ndone = 0;
        if (*stop) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "load interrupted; run again to resume");
            return -1;
        }
        if (rstate_load_progress(rc, cfg, ae->keybase, &docs, &ndone, err) < 0)
            return -1;
        result->docs = docs;
        if (ndone >= parts) {
            progress_show(p, docs, (int)ndone, parts, 1);
            return 0;
        }
        progress_show(p, docs, (int)ndone, parts, 0);
        for (int i = 0; i < workers; i++) {
            int status;
            if (kids[i] > 0 && waitpid(kids[i], &status, WNOHANG) == kids[i]) {
                if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                    pgs_log(LOG_WARN, "load worker died; starting another", "pid=%d",
                            (int)kids[i]);
                    kids[i] = spawn_worker(cfg, ae, load_id, i);
                } else {
                    kids[i] = 0;
                }
            }
        }
        usleep(200000);
    }
}

/* Stop the workers still running and free "kids". */
static void load_stop_workers(pid_t *kids, int workers)
{
    if (kids == NULL)
        return;
    for (int i = 0; i < workers; i++)
        if (kids[i] > 0) {
            kill(kids[i], SIGTERM);
            waitpid(kids[i], NULL, 0);
        }
    free(kids);
}

int load_entry(const struct config *cfg, struct app_entry *ae, struct redis_conn *rc,
               const struct load_opts *opts, volatile sig_atomic_t *stop,
               struct load_result *result, struct pgs_error *err)
{
    struct load_snapshot snap = {0};
    PGconn *conn = NULL;
    char load_id[40];
    long long *bounds = NULL;
    int nbounds = 0, rv = -1;
    pid_t *kids = NULL;

    memset(result, 0, sizeof(*result));

    /*
     * 1. the snapshot, from a temporary slot created after the database's
     * slot. A producer reading that slot must write this entry's stream
     * before the snapshot, or the changes after it would reach no stream.
     */
    if (cfg->mode == CAPTURE_LOGICAL &&
        routes_wait(cfg, ae, 1, ROUTES_WAIT_S, stop, err) < 0)
        return -1;
    if ((cfg->mode == CAPTURE_NOTIFY ? load_snapshot_export(cfg, ae, &snap, &result->version, err)
                                     : load_snapshot_slot(cfg, ae, &snap, &result->version, err)) <
        0)
        goto out;
    conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-load", err);
    if (conn == NULL)
        goto out;
    struct progress p = {ae->index, estimate_rows(conn, ae->e->root), clock_now_s(), 0, isatty(2),
                         opts->quiet};

    /* 2. a new split, or the one of a load that was interrupted */
    if (load_plan(cfg, rc, ae, conn, opts, snap.cp, load_id, sizeof(load_id), &bounds, &nbounds,
                  err) < 0)
        goto out;
    result->parts = nbounds;

    /* 3. one work item per range not done yet */
    if (load_queue(cfg, rc, ae, load_id, &snap, result->version, bounds, nbounds,
                   &result->parts_already_done, err) < 0)
        goto out;
    pgs_log(LOG_INFO, "load started", "index=%s load=%s ranges=%d already_done=%d "
            "workers=%d version=%" PRIu64, ae->index, load_id, nbounds,
            result->parts_already_done, opts->workers, result->version);

    /* 4. workers; then wait for every range, showing progress */
    kids = xcalloc((size_t)(opts->workers > 0 ? opts->workers : 1), sizeof(pid_t));
    for (int i = 0; i < opts->workers; i++)
        kids[i] = spawn_worker(cfg, ae, load_id, i);
    if (load_wait(cfg, rc, ae, load_id, nbounds, kids, opts->workers, stop, &p, result, err) < 0)
        goto out;
    result->seconds = clock_now_s() - p.start;

    /* 5. done: remember it, forget the split */
    if (rstate_load_finish(rc, cfg, ae->keybase, result->version, result->docs,
                           (long long)time(NULL), err) < 0)
        goto out;
    rv = 0;
out:
    load_stop_workers(kids, opts->workers);
    if (conn)
        PQfinish(conn);
    if (snap.repl)
        PQfinish(snap.repl); /* drops the temporary slot and with it the snapshot */
    free(bounds);
    return rv;
}
