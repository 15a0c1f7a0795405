/*
 * main.c - pgsync-producer: the single reader of the database's changes.
 * One libev loop; one change source per database (source.h: its
 * replication slot, serving every entry on it) or, with --mode notify, per
 * entry (its trigger outbox); one Redis connection shared by all of them.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "app.h"
#include "bootstrap.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "strbuf.h"
#include "metrics.h"
#include "outbox.h"
#include "repl.h"
#include "source.h"

static const char usage[] =
    "Usage: pgsync-producer --config FILE [options]\n"
    "\n"
    "Reads every committed change to the schema's tables from the logical\n"
    "replication slot (pgoutput) and appends a compact record per change to\n"
    "the Redis stream of every entry whose schema uses the table: one slot\n"
    "per database, so run one producer per database, with a schema file\n"
    "holding every entry on it. Confirms a position to PostgreSQL only after\n"
    "Redis accepted every record up to it. Run exactly one per slot; run\n"
    "pgsync-bootstrap first.\n"
    "\n"
    "Options:\n"
    "  -m, --mode MODE        logical (default: the replication slot) or notify\n"
    "                         (the trigger mode's outbox, LISTEN and a 5 s poll;\n"
    "                         no wal_level=logical); also PGSYNC_MODE\n"
    "\n"
    "Metrics:\n" METRICS_HELP
    "  GET /healthz: 200 \"ok\", or 503 with the reason (not connected to\n"
    "  PostgreSQL or Redis, or WAL waiting and nothing confirmed for\n"
    "  PGSYNC_STALL_SECONDS [60]).\n";

struct producer {
    struct change_source **srcs;
    int n;
    const struct config *cfg;
    struct redis_conn **rcp;
    ev_timer evict_timer;
    char evict_why[512]; /* Redis may evict our keys: why ("" when not) */
};

#define EVICTION_CHECK_S 15.0 /* how often Redis's maxmemory-policy is read again */

/*
 * Redis's maxmemory-policy again (redis_connect checks it first): one set
 * to allkeys-* while we run marks the shared handle broken, so that no
 * position is confirmed until it is fixed, and /healthz says why.
 */
static void on_evict_check(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct producer *p = w->data;
    struct pgs_error err;
    int bad;
    (void)loop;
    (void)revents;

    pgs_error_clear(&err);
    if (*p->rcp != NULL && !redis_broken(*p->rcp)) {
        bad = redis_check_eviction(*p->rcp, &err) < 0;
    } else if (p->evict_why[0]) {
        /* still refused? a connection of our own tells, idle or not */
        struct redis_conn *probe = redis_connect(p->cfg, &err);
        bad = probe == NULL && strstr(err.msg, "maxmemory-policy") != NULL;
        redis_close(probe);
    } else {
        return;
    }
    if (bad && !p->evict_why[0]) {
        char buf[1600];
        pgs_log(LOG_ERROR, "Redis may evict our keys", "error=\"%s\"",
                pgs_error_str(&err, buf, sizeof(buf)));
    } else if (!bad && p->evict_why[0]) {
        pgs_log(LOG_INFO, "Redis keeps our keys again", NULL);
    }
    if (bad)
        snprintf(p->evict_why, sizeof(p->evict_why), "%s", err.msg);
    else
        p->evict_why[0] = '\0';
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    (void)w;
    pgs_log(LOG_INFO, "stopping", NULL);
    ev_break(loop, EVBREAK_ALL);
}

/* ---- metrics: --metrics-port, /healthz and the stall watchdog (common/metrics.h) ---- */

struct producer_watch {
    struct producer *p;
    struct app *app;
    struct redis_conn **rcp;
};

static void producer_health(void *arg, struct metrics_health *h)
{
    const struct producer_watch *w = arg;

    if (w->p->evict_why[0])
        snprintf(h->down, sizeof(h->down), "%.390s", w->p->evict_why);
    for (int i = 0; i < w->p->n; i++) {
        const struct source_stats *st = source_get_stats(w->p->srcs[i]);
        if (st->drained)
            continue;
        if (!h->down[0] && *w->rcp == NULL)
            snprintf(h->down, sizeof(h->down), "not connected to Redis%s%.300s",
                     st->last_error[0] ? ": " : "", st->last_error);
        else if (!h->down[0] && !st->standby && st->redis_failing)
            /* a Redis that answers and refuses: NOPERM, OOM, READONLY */
            snprintf(h->down, sizeof(h->down), "Redis refuses the records (slot %.63s): %.280s",
                     st->name, st->last_error);
        else if (!h->down[0] && !st->connected && !st->standby && strstr(st->last_error, st->name))
            /* the error names the slot (slot_broken); the commands that recover must fit */
            snprintf(h->down, sizeof(h->down), "not connected to PostgreSQL: %.600s", st->last_error);
        else if (!h->down[0] && !st->connected && !st->standby)
            snprintf(h->down, sizeof(h->down), "not connected to PostgreSQL (slot %.63s)%s%.500s",
                     st->name, st->last_error[0] ? ": " : "", st->last_error);
        else if (!h->down[0] && st->standby && st->last_error[0])
            /* the active producer serves another schema file (repl.c) */
            snprintf(h->down, sizeof(h->down), "%.600s", st->last_error);
        else if (!h->down[0] && st->replicas_short)
            snprintf(h->down, sizeof(h->down),
                     "Redis has fewer replicas holding the records than "
                     "PGSYNC_REDIS_MIN_REPLICAS (slot %s): nothing new is confirmed",
                     st->name);
        if (st->server_lsn > st->confirmed_lsn)
            h->waiting += (double)(st->server_lsn - st->confirmed_lsn);
        h->progress += (double)st->records_written + (double)st->confirmed_lsn;
    }
}

/* NULL when --metrics-port cannot be served (logged). */
static struct metrics *producer_metrics_start(struct ev_loop *loop, struct app *app,
                                              struct producer *p, struct redis_conn **rcp,
                                              const struct metrics_opts *mo)
{
    static struct producer_watch w;
    struct metrics *m = metrics_new("producer");
    struct metrics_opts off = *mo;
    struct pgs_error err;
    char lab[128], buf[1600];

    for (int i = 0; i < p->n; i++) {
        const struct source_stats *st = source_get_stats(p->srcs[i]);
        metrics_labels(lab, sizeof(lab), "slot", st->name, NULL);
        metrics_counter_ptr(m, "pgsync_producer_changes_read_total",
                            "Row changes of the schema's tables read from the slot.", lab,
                            &st->changes_read);
        metrics_counter_ptr(m, "pgsync_producer_records_written_total",
                            "Change records Redis accepted.", lab, &st->records_written);
        metrics_counter_ptr(m, "pgsync_producer_transactions_total",
                            "Committed transactions decoded.", lab, &st->transactions);
        metrics_gauge_u64(m, "pgsync_producer_confirmed_lsn",
                          "WAL position last confirmed to PostgreSQL (as a number).", lab,
                          &st->confirmed_lsn);
        metrics_gauge_u64(m, "pgsync_producer_server_lsn",
                          "The server's end of WAL, from its last message (as a number).", lab,
                          &st->server_lsn);
        metrics_gauge_u64_diff(m, "pgsync_producer_replication_lag_bytes",
                               "WAL bytes between the server's end and the confirmed position.",
                               lab, &st->server_lsn, &st->confirmed_lsn);
        metrics_gauge_int(m, "pgsync_producer_connected",
                          "1 while the replication stream is connected.", lab, &st->connected);
    }
    w = (struct producer_watch){p, app, rcp};
    metrics_set_health(m, producer_health, &w, "bytes of WAL");
    if (metrics_start(m, loop, mo, &err) == 0)
        return m;
    pgs_log(mo->from_env ? LOG_WARN : LOG_ERROR, "cannot serve metrics", "error=\"%s\"",
            pgs_error_str(&err, buf, sizeof(buf)));
    off.port = 0; /* PGSYNC_METRICS_PORT may be inherited by several processes: not fatal */
    if (mo->from_env && metrics_start(m, loop, &off, &err) == 0)
        return m;
    metrics_free(m);
    return NULL;
}

/* ---- end of metrics ---- */

/* Stop and free every source, logging its totals; 0 when each wrote all it had pending. */
static int producer_stop(struct producer *p)
{
    int rv = 0;
    for (int i = 0; i < p->n; i++) {
        const struct source_stats *st = source_get_stats(p->srcs[i]);
        if (source_stop(p->srcs[i]) < 0)
            rv = 1;
        pgs_log(LOG_INFO, "totals", "slot=%s changes=%llu records=%llu transactions=%llu",
                st->name, st->changes_read, st->records_written, st->transactions);
        source_free(p->srcs[i]);
    }
    free(p->srcs);
    return rv;
}

/*
 * Does the entry have a slot of its own (from before one per database)?
 * When PostgreSQL cannot say now, assume so: its source finds out.
 */
static int legacy_slot_may_exist(const struct config *cfg, const struct app_entry *ae)
{
    struct pgs_error err;
    int exists = 1;
    if (strcmp(ae->legacy_slot, ae->slot) == 0)
        return 0;
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-producer", &err);
    if (conn != NULL && bootstrap_slot_exists(conn, ae->legacy_slot, &exists, &err) < 0)
        exists = 1;
    PQfinish(conn);
    return exists;
}

/*
 * The sources: in trigger mode one per entry; in logical mode one per slot
 * (a database's, serving all its entries), and one per legacy slot of an
 * entry's own that may still hold changes (repl_new_legacy; one that does
 * not exist is done at once).
 */
static void producer_sources(struct producer *p, struct ev_loop *loop, const struct config *cfg,
                             struct app *app, struct redis_conn **rcp)
{
    int n = app->nentries;
    struct app_entry **group = xcalloc((size_t)n, sizeof(*group));
    p->srcs = xcalloc((size_t)n * 2, sizeof(struct change_source *));
    p->n = 0;
    for (int i = 0; i < n; i++) {
        struct app_entry *ae = &app->entries[i];
        if (cfg->mode == CAPTURE_NOTIFY) {
            p->srcs[p->n++] = outbox_new(loop, cfg, ae, rcp);
            continue;
        }
        int first = 1, ng = 0;
        for (int k = 0; k < i; k++)
            first &= strcmp(app->entries[k].slot, ae->slot) != 0;
        if (first) {
            for (int k = i; k < n; k++)
                if (!strcmp(app->entries[k].slot, ae->slot))
                    group[ng++] = &app->entries[k];
            p->srcs[p->n++] = repl_new(loop, cfg, app, group, ng, rcp);
        }
        if (legacy_slot_may_exist(cfg, ae))
            p->srcs[p->n++] = repl_new_legacy(loop, cfg, app, ae, rcp);
    }
    free(group);
}

/* --mode, the producer's one option of its own: into "ctx", a const char *. */
static int producer_option(void *ctx, const char *prog, int opt, const char *arg)
{
    (void)prog;
    if (opt != 'm')
        return -1;
    *(const char **)ctx = arg;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"mode", required_argument, NULL, 'm'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-producer"};
    const char *mode_arg = NULL;
    struct cli_spec spec = {"c:hVm:", longopts, usage, producer_option, &mode_arg, 0};
    struct config cfg;
    struct pgs_error err;
    struct app app;
    char buf[1600];
    int rv = 0;

    struct metrics_opts mopts; /* metrics: --metrics-port/--metrics-bind, before getopt */
    if (metrics_opts_init(&mopts, &err) < 0 || metrics_opts_take_args(&mopts, &argc, argv,
        &err) < 0)
        cli_die_usage(cli.prog, "%s", err.msg);

    cli_parse(&cli, &spec, argc, argv);
    cli_setup(&cli, &cfg);
    if (mode_arg && config_set_mode(&cfg, "--mode", mode_arg, &err) < 0)
        cli_die_usage(cli.prog, "%s", err.msg);
    signal(SIGPIPE, SIG_IGN);
    config_log(&cfg);
    if (cli_load_app(&cli, &cfg, &app) < 0)
        return 1;

    static volatile sig_atomic_t stop_bind, restart;
    if (app_bind_at_start(&app, 0, &stop_bind, &mopts, "producer", &err) < 0 ||
        app_watch_versions(&app, &restart, &err) < 0) {
        fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
        app_free(&app);
        return 1;
    }

    struct ev_loop *loop = EV_DEFAULT;
    struct redis_conn *rc = NULL;
    struct producer p = {.cfg = &cfg, .rcp = &rc};
    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);

    producer_sources(&p, loop, &cfg, &app, &rc);
    for (int i = 0; i < p.n; i++)
        source_start(p.srcs[i]);
    ev_timer_init(&p.evict_timer, on_evict_check, EVICTION_CHECK_S, EVICTION_CHECK_S);
    p.evict_timer.data = &p;
    ev_timer_start(loop, &p.evict_timer);
    struct metrics *met = producer_metrics_start(loop, &app, &p, &rc, &mopts); /* metrics */
    if (met != NULL)
        ev_run(loop, 0);
    else
        rv = 1;
    metrics_free(met); /* metrics */
    ev_timer_stop(loop, &p.evict_timer);

    if (producer_stop(&p) != 0)
        rv = 1;
    if (rc)
        redis_close(rc);
    app_free(&app);
    ev_loop_destroy(loop);
    if (restart && rv == 0)
        app_restart_self();
    return rv;
}
