/* load.c - the initial load from an exported snapshot, with progress. */
#include "load.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "sync.h"

#include "../producer/pgoutput.h"

struct progress {
    const char *index;
    long long total;  /* estimate from the catalog */
    double start;
    double last;
    int tty;
    int quiet;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_show(void *arg, long long done)
{
    struct progress *p = arg;
    double t = now_s();
    double rate = done / (t - p->start > 1e-6 ? t - p->start : 1e-6);
    long long total = p->total > done ? p->total : done;

    if (p->quiet)
        return;
    if (p->tty) {
        if (t - p->last < 0.2)
            return;
        int width = 30, fill = total > 0 ? (int)(width * done / total) : 0;
        double eta = rate > 0 ? (double)(total - done) / rate : 0;
        fprintf(stderr, "\r%s [%.*s%*s] %lld/%s%lld docs %.0f/s ETA %.0fs   ", p->index, fill,
                "##############################", width - fill, "", done,
                p->total > done ? "~" : "", total, rate, eta);
        fflush(stderr);
    } else {
        if (t - p->last < 5.0)
            return;
        pgs_log(LOG_INFO, "loading", "index=%s docs=%lld total_estimate=%lld rate=%.0f", p->index,
                done, p->total, rate);
    }
    p->last = t;
}

static long long estimate_rows(PGconn *conn, const struct schema_node *root)
{
    const char *params[2] = {root->schema, root->table};
    PGresult *res = PQexecParams(conn,
                                 "SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c JOIN "
                                 "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 "
                                 "AND c.relname = $2",
                                 2, NULL, params, NULL, NULL, 0);
    long long n = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static int exec_cmd(PGconn *conn, const char *sql, struct pgs_error *err)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "load: \"%s\" failed", sql);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int load_entry(const struct config *cfg, struct app_entry *ae, struct es_client *es,
               redisContext *rc, const struct load_opts *opts, volatile sig_atomic_t *stop,
               struct load_result *result, struct pgs_error *err)
{
    PGconn *repl = NULL, *conn = NULL;
    PGresult *res = NULL;
    struct syncer s;
    struct strbuf sql;
    char slot[64];
    uint64_t cp = 0;
    int rv = -1;

    memset(result, 0, sizeof(*result));
    syncer_init(&s, cfg, ae, es, rc, stop);
    sb_init(&sql);

    repl = config_pg_connect(cfg, ae->e->database, 1, "pgsync-load", err);
    if (repl == NULL)
        goto out;
    snprintf(slot, sizeof(slot), "pgsync_load_%d", (int)getpid());
    sb_add(&sql, "CREATE_REPLICATION_SLOT ");
    sb_ident(&sql, slot);
    sb_add(&sql, " TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT");
    res = PQexec(repl, sql.buf);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot create a temporary slot for the load snapshot");
        pgs_error_detail(err, "%s", PQerrorMessage(repl));
        goto out;
    }
    if (pgo_lsn_parse(PQgetvalue(res, 0, 1), &cp) < 0 || cp == 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "bad consistent point \"%s\"", PQgetvalue(res, 0, 1));
        goto out;
    }
    conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-load", err);
    if (conn == NULL)
        goto out;
    if (exec_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0)
        goto out;
    sb_reset(&sql);
    sb_add(&sql, "SET TRANSACTION SNAPSHOT ");
    sb_literal(&sql, PQgetvalue(res, 0, 2));
    if (exec_cmd(conn, sql.buf, err) < 0)
        goto out;
    PQclear(res);
    res = NULL;

    /*
     * Transactions committed before the consistent point are in the
     * snapshot; those after it come through the stream with a commit LSN
     * at or above it. One below it as the version lets them always win.
     */
    result->version = cp - 1;
    struct progress p = {ae->e->index, estimate_rows(conn, ae->e->root), now_s(), 0,
                         isatty(2), opts->quiet};
    if (syncer_index_query(&s, conn, ae->sql.doc_all, 0, NULL, result->version, progress_show, &p,
                           &result->docs, err) < 0)
        goto out;
    if (exec_cmd(conn, "COMMIT", err) < 0)
        goto out;
    result->seconds = now_s() - p.start;
    if (!opts->quiet && p.tty)
        fprintf(stderr, "\r%s: %lld documents in %.1fs (%.0f/s)%*s\n", ae->e->index,
                result->docs, result->seconds,
                result->docs / (result->seconds > 1e-6 ? result->seconds : 1e-6), 20, "");
    rv = 0;
out:
    PQclear(res);
    if (conn)
        PQfinish(conn);
    if (repl)
        PQfinish(repl); /* drops the temporary slot */
    syncer_deinit(&s);
    sb_free(&sql);
    return rv;
}
