/*
 * outbox.c - draining the trigger mode's outbox into the Redis stream.
 *
 * Versions. The consumers version every write by the record's "lsn" and
 * read documents after the batch is visible; what they need is: a change
 * committed after a consumer read a document gets a strictly larger version
 * than that read's batch. The outbox id follows insert order, not commit
 * order, so it cannot be the version. Instead each drain, after reading its
 * rows, takes pg_current_wal_insert_lsn() as the version of all of them, in
 * a transaction that also takes an xid, so that its commit record lands
 * after the sample: the next drain's sample is strictly larger, even after
 * a crash. A change committed after a consumer's read was not visible to
 * the drain that fed that read, so a later drain takes it, with a larger
 * version. Draining needs no xmin horizon: rows are deleted once Redis
 * holds them, never skipped by a cursor, so a transaction that commits late
 * with a low id is simply taken by a later drain. The initial load's
 * version (bootstrap_export_snapshot: its sample minus one) is below the
 * version of every change its snapshot misses, for the same reason.
 */
#include "outbox.h"
#include "outbox_row.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "clock.h"
#include "log.h"
#include "lsn.h"
#include "outbox_ddl.h"
#include "rstream.h"
#include "strbuf.h"

#define POLL_INTERVAL 5.0 /* seconds: covers a lost wake-up */

struct outbox {
    struct change_source base; /* first: a struct change_source * is a struct outbox * */
    struct ev_loop *loop;
    const struct config *cfg;
    struct app_entry *ae;
    struct redis_conn **rcp;
    struct source_stats stats;
    PGconn *conn;
    ev_io io;
    ev_timer poll_timer;
    ev_timer retry_timer;
    struct backoff backoff;
    int failing;
    struct change *recs; /* one drain's records */
    struct strbuf ids;   /* and their outbox ids, as an array literal */
};

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_poll_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void outbox_start(struct change_source *src);
static int outbox_stop(struct change_source *src);
static const struct source_stats *outbox_get_stats(const struct change_source *src);
static void outbox_free(struct change_source *src);

static const struct change_source_ops outbox_ops = {
    .start = outbox_start, .stop = outbox_stop, .stats = outbox_get_stats, .free = outbox_free};

struct change_source *outbox_new(struct ev_loop *loop, const struct config *cfg,
                                 struct app_entry *ae, struct redis_conn **rcp)
{
    struct outbox *n = xcalloc(1, sizeof(*n));
    n->base.ops = &outbox_ops;
    n->loop = loop;
    n->cfg = cfg;
    n->ae = ae;
    n->rcp = rcp;
    snprintf(n->stats.name, sizeof(n->stats.name), "%s", ae->outbox);
    backoff_init(&n->backoff, 0.2, 10);
    n->recs = xcalloc((size_t)cfg->producer_batch, sizeof(struct change));
    sb_init(&n->ids);
    ev_timer_init(&n->poll_timer, on_poll_timer, POLL_INTERVAL, POLL_INTERVAL);
    n->poll_timer.data = n;
    ev_timer_init(&n->retry_timer, on_retry_timer, 0, 0);
    n->retry_timer.data = n;
    return &n->base;
}

static const struct source_stats *outbox_get_stats(const struct change_source *src)
{
    return &((const struct outbox *)src)->stats;
}

static void close_conn(struct outbox *n)
{
    if (n->conn) {
        ev_io_stop(n->loop, &n->io);
        ev_timer_stop(n->loop, &n->poll_timer);
        PQfinish(n->conn);
        n->conn = NULL;
    }
    n->stats.connected = 0;
}

static void fail(struct outbox *n, const struct pgs_error *err)
{
    char buf[1600];
    if (!n->failing)
        pgs_log(LOG_WARN, "outbox drain interrupted, retrying", "slot=%s error=\"%s\"",
                n->ae->outbox, pgs_error_str(err, buf, sizeof(buf)));
    else
        pgs_log(LOG_DEBUG, "retry failed", "slot=%s error=\"%s\"", n->ae->outbox,
                pgs_error_str(err, buf, sizeof(buf)));
    n->failing = 1;
    pgs_error_str(err, n->stats.last_error, sizeof(n->stats.last_error));
    close_conn(n);
    double delay = backoff_next(&n->backoff);
    ev_timer_set(&n->retry_timer, delay, 0);
    ev_timer_start(n->loop, &n->retry_timer);
}

static int pg_failed(struct outbox *n, PGresult *res, const char *what, struct pgs_error *err)
{
    pgs_error_set(err, PGS_ERR_TRANSIENT, "%s on outbox pgsync.\"%s\" failed", what, n->ae->outbox);
    pgs_error_detail(err, "%s", PQerrorMessage(n->conn));
    PQclear(res);
    return -1;
}

static int exec_cmd(struct outbox *n, const char *sql, const char *what, struct pgs_error *err)
{
    PGresult *res = PQexec(n->conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        return pg_failed(n, res, what, err);
    PQclear(res);
    return 0;
}

/* The drain's rows as records of version "version", their ids into n->ids. */
static void records_from_rows(struct outbox *n, PGresult *res, int rows, uint64_t version)
{
    sb_reset(&n->ids);
    sb_addc(&n->ids, '{');
    for (int i = 0; i < rows; i++) {
        struct change *c = &n->recs[i];
        struct outbox_row row = {.id = PQgetvalue(res, i, 0),
                                 .xid = PQgetvalue(res, i, 1),
                                 .schema = PQgetvalue(res, i, 2),
                                 .table = PQgetvalue(res, i, 3),
                                 .op = PQgetvalue(res, i, 4)};
        if (!PQgetisnull(res, i, 5)) {
            row.oldv = PQgetvalue(res, i, 5);
            row.old_len = (size_t)PQgetlength(res, i, 5);
        }
        if (!PQgetisnull(res, i, 6)) {
            row.newv = PQgetvalue(res, i, 6);
            row.new_len = (size_t)PQgetlength(res, i, 6);
        }
        if (outbox_row_record(&row, version, c) != 0)
            pgs_log(LOG_WARN, "outbox row with an unknown op: passed on to be dead-lettered",
                    "id=%s op=\"%.16s\" table=%s.%s", row.id, row.op, row.schema, row.table);
        sb_printf(&n->ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
    }
    sb_addc(&n->ids, '}');
}

/*
 * One batch: read the oldest rows, take their version, write them to Redis,
 * delete them. Returns the number of rows (0: the outbox is empty), -1 on error.
 */
static int drain_batch(struct outbox *n, struct pgs_error *err)
{
    char limit[16];
    const char *params[1] = {limit};
    PGresult *res;
    uint64_t version = 0;
    int rows, rv;

    snprintf(limit, sizeof(limit), "%d", n->cfg->producer_batch);
    if (exec_cmd(n, "BEGIN", "BEGIN", err) < 0)
        return -1;
    res = PQexecPrepared(n->conn, "pgsync_drain", 1, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_failed(n, res, "reading", err);
        return -1;
    }
    rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return exec_cmd(n, "COMMIT", "COMMIT", err) < 0 ? -1 : 0;
    }
    /* the version, then a commit record after it (see the top of the file) */
    PGresult *vres = PQexec(n->conn, "SELECT pg_current_xact_id(), pg_current_wal_insert_lsn()");
    if (PQresultStatus(vres) != PGRES_TUPLES_OK ||
        lsn_parse(PQgetvalue(vres, 0, 1), &version) < 0) {
        PQclear(res);
        pg_failed(n, vres, "taking the version", err);
        return -1;
    }
    PQclear(vres);
    if (exec_cmd(n, "COMMIT", "COMMIT", err) < 0) {
        PQclear(res);
        return -1;
    }

    records_from_rows(n, res, rows, version);
    PQclear(res);

    if (*n->rcp != NULL && redis_broken(*n->rcp)) { /* marked so between writes (eviction) */
        redis_close(*n->rcp);
        *n->rcp = NULL;
    }
    if (*n->rcp == NULL && (*n->rcp = redis_connect(n->cfg, err)) == NULL)
        rv = -1;
    else
        rv = rstream_add(*n->rcp, n->ae->stream, n->recs, rows, err);
    /*
     * The rows are deleted below: before that, the records must be on the
     * replicas asked for, or a failover could lose them for good. Short:
     * not deleted, sent again by the next drain (the copies are harmless).
     */
    int held = rv == 0 ? redis_wait_replicas(*n->rcp, n->cfg, err) : 0;
    n->stats.replicas_short = held == 1;
    if (held != 0)
        rv = -1;
    if (rv < 0 && *n->rcp && redis_broken(*n->rcp)) {
        redis_close(*n->rcp);
        *n->rcp = NULL;
    }
    for (int i = 0; i < rows; i++)
        change_free(&n->recs[i]);
    if (rv < 0)
        return -1; /* not deleted: the next drain sends them again */
    n->stats.changes_read += (unsigned long long)rows;
    n->stats.records_written += (unsigned long long)rows;
    n->stats.transactions++;
    n->stats.confirmed_lsn = version;

    /* Redis holds them: forget them */
    const char *dparams[1] = {n->ids.buf};
    res = PQexecPrepared(n->conn, "pgsync_delete", 1, dparams, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_failed(n, res, "deleting drained rows", err);
        return -1;
    }
    PQclear(res);
    return rows;
}

/* Drain until the outbox is empty; also swallow the wake-ups that came meanwhile. */
static int drain(struct outbox *n, struct pgs_error *err)
{
    int rows;
    do {
        rows = drain_batch(n, err);
        if (rows < 0)
            return -1;
    } while (rows == n->cfg->producer_batch);
    PGnotify *note;
    while ((note = PQnotifies(n->conn)) != NULL)
        PQfreemem(note);
    return 0;
}

static void drain_or_fail(struct outbox *n)
{
    struct pgs_error err;
    pgs_error_clear(&err);
    if (drain(n, &err) < 0) {
        fail(n, &err);
        return;
    }
    if (n->failing) {
        pgs_log(LOG_INFO, "outbox drain recovered", "slot=%s", n->ae->outbox);
        n->failing = 0;
        backoff_reset(&n->backoff);
    }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct outbox *n = w->data;
    struct pgs_error err;
    int woken = 0;
    PGnotify *note;

    (void)loop;
    (void)revents;
    if (!PQconsumeInput(n->conn)) {
        pgs_error_set(&err, PGS_ERR_TRANSIENT, "lost the connection of outbox pgsync.\"%s\"",
                      n->ae->outbox);
        pgs_error_detail(&err, "%s", PQerrorMessage(n->conn));
        fail(n, &err);
        return;
    }
    while ((note = PQnotifies(n->conn)) != NULL) {
        woken = 1;
        PQfreemem(note);
    }
    if (woken)
        drain_or_fail(n);
}

static void on_poll_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    drain_or_fail(w->data);
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct outbox *n = w->data;
    outbox_start(&n->base);
}

static void outbox_start(struct change_source *src)
{
    struct outbox *n = (struct outbox *)src;
    struct pgs_error err;
    struct strbuf sql, box;

    pgs_error_clear(&err);
    if (*n->rcp == NULL && (*n->rcp = redis_connect(n->cfg, &err)) == NULL) {
        fail(n, &err);
        return;
    }
    n->conn = config_pg_connect(n->cfg, n->ae->e->database, 0, "pgsync-producer", &err);
    if (n->conn == NULL) {
        fail(n, &err);
        return;
    }
    sb_init(&sql);
    sb_init(&box);
    outbox_ddl_add_name(&box, n->ae->outbox);
    {
        const char *params[1] = {box.buf};
        PGresult *res = PQexecParams(n->conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL,
                                     params, NULL, NULL, 0);
        int ok = PQresultStatus(res) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
        if (!ok) {
            pgs_error_set(&err, PGS_ERR_FATAL,
                          "outbox %s does not exist: run pgsync-bootstrap --mode notify "
                          "--config FILE",
                          box.buf);
            goto fail;
        }
    }
    sb_add(&sql, "LISTEN ");
    sb_ident(&sql, n->ae->outbox);
    if (exec_cmd(n, sql.buf, "LISTEN", &err) < 0)
        goto fail;
    sb_reset(&sql);
    sb_printf(&sql,
              "SELECT id, xid::text, s, t, op, old::text, new::text FROM %s ORDER BY id "
              "LIMIT $1",
              box.buf);
    PGresult *res = PQprepare(n->conn, "pgsync_drain", sql.buf, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_failed(n, res, "preparing the drain", &err);
        goto fail;
    }
    PQclear(res);
    sb_reset(&sql);
    sb_printf(&sql, "DELETE FROM %s WHERE id = ANY($1::bigint[])", box.buf);
    res = PQprepare(n->conn, "pgsync_delete", sql.buf, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_failed(n, res, "preparing the delete", &err);
        goto fail;
    }
    PQclear(res);
    sb_free(&sql);
    sb_free(&box);

    ev_io_init(&n->io, on_readable, PQsocket(n->conn), EV_READ);
    n->io.data = n;
    ev_io_start(n->loop, &n->io);
    ev_timer_again(n->loop, &n->poll_timer);
    n->stats.connected = 1;
    n->stats.last_error[0] = '\0';
    pgs_log(LOG_INFO, "draining the outbox", "slot=%s outbox=pgsync.%s stream=%s", n->ae->outbox,
            n->ae->outbox, n->ae->stream);
    /* what was written while we were away: LISTEN came first, so nothing is missed */
    drain_or_fail(n);
    return;
fail:
    sb_free(&sql);
    sb_free(&box);
    fail(n, &err);
}

static int outbox_stop(struct change_source *src)
{
    struct outbox *n = (struct outbox *)src;
    struct pgs_error err;
    int rv = 0;

    ev_timer_stop(n->loop, &n->retry_timer);
    if (n->conn && drain(n, &err) < 0)
        rv = -1;
    close_conn(n);
    return rv;
}

static void outbox_free(struct change_source *src)
{
    struct outbox *n = (struct outbox *)src;

    close_conn(n);
    free(n->recs);
    sb_free(&n->ids);
    free(n);
}
