/* migrate.c - building a new version of an index beside the live one (see migrate.h). */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap.h"
#include "clock.h"
#include "es.h"
#include "load.h"
#include "log.h"
#include "ops.h"
#include "routes.h"
#include "rstate.h"
#include "rstream.h"
#include "version.h"

#include "lsn.h"

/* Wait until every consumer of the version's group has been idle 3 s (they restarted without it). */
static void wait_consumers_gone(struct redis_conn *rc, const struct app_entry *ae, int secs,
                                volatile sig_atomic_t *stop)
{
    struct pgs_error err;
    for (int i = 0; i < secs * 4 && !*stop; i++) {
        struct rstream_consumer *cs = NULL;
        int n = 0;
        long long min_idle = -1;
        /* a failure reads as no consumer: the wait is only a courtesy */
        if (rstream_consumers(rc, ae->stream, RSTREAM_GROUP, &cs, &n, &err) < 0)
            n = 0;
        for (int c = 0; c < n; c++)
            if (min_idle < 0 || cs[c].idle_ms < min_idle)
                min_idle = cs[c].idle_ms;
        free(cs);
        if (min_idle < 0 || min_idle >= 3000)
            return;
        usleep(250 * 1000);
    }
}

/* Remove everything of one version but its index: slot, publication, triggers, Redis keys. */
static int remove_version_objects(const struct config *cfg, const struct app *app,
                                  struct app_entry *ae, struct redis_conn *rc,
                                  volatile sig_atomic_t *stop, struct pgs_error *err)
{
    struct pgs_error werr;
    /* the producer drops the version within a few seconds of the state change (a courtesy) */
    if (routes_wait(cfg, ae, 0, 60, stop, &werr) < 0 && !*stop) {
        char buf[1600];
        pgs_log(LOG_WARN, "removing the version anyway", "error=\"%s\"",
                pgs_error_str(&werr, buf, sizeof(buf)));
    }
    wait_consumers_gone(rc, ae, 60, stop);
    if (bootstrap_teardown(cfg, ae, app, err) < 0)
        return -1;
    return rstate_entry_delete(rc, cfg, ae->keybase, err);
}

/* Log, clear the target, remove the version's objects and its index. */
static int discard_version(const struct config *cfg, const struct app *app, struct app_entry *ae,
                           struct redis_conn *rc, struct es_client *es, const char *why,
                           struct pgs_error *err)
{
    volatile sig_atomic_t never = 0;

    pgs_log(LOG_WARN, "migration abandoned", "alias=%s index=%s version=%d why=\"%s\"",
            ae->e->index, ae->index, ae->version, why);
    /* first the state: nobody serves or recreates the version after this */
    if (version_clear_target(rc, cfg, ae->e->index, err) < 0)
        return -1;
    if (remove_version_objects(cfg, app, ae, rc, &never, err) < 0)
        return -1;
    return es_delete_index(es, ae->index, err);
}

/* Discard the version of the appended entries[idx] and drop the entry. */
static int abandon(const struct config *cfg, struct app *app, int idx, struct redis_conn *rc,
                   struct es_client *es, const char *why, struct pgs_error *err)
{
    if (discard_version(cfg, app, &app->entries[idx], rc, es, why, err) < 0)
        return -1;
    app_drop_entry(app, idx);
    return 0;
}

/* The appended entry serving version "v" of "alias" other than the file's, or -1. */
static int find_entry(const struct app *app, const char *alias, int live)
{
    for (int k = app->nfile; k < app->nentries; k++)
        if (!strcmp(app->entries[k].e->index, alias) && app->entries[k].live == live)
            return k;
    return -1;
}

int migrate_plan(const struct config *cfg, struct app *app, struct redis_conn *rc,
                 struct es_client *es, int abort_all, int *targets, struct pgs_error *err)
{
    *targets = 0;
    for (int i = 0; i < app->nfile; i++) {
        struct app_entry *ae = &app->entries[i];
        const char *alias = ae->e->index;
        int t = find_entry(app, alias, 0);
        if (abort_all) {
            if (t >= 0 && abandon(cfg, app, t, rc, es, "pgsync --abort", err) < 0)
                return -1;
            /* the file's own version was the target: discard it too */
            if (!ae->live && ae->version > 0 &&
                discard_version(cfg, app, ae, rc, es, "pgsync --abort", err) < 0)
                return -1;
            continue;
        }
        if (ae->live) {
            if (t >= 0 && abandon(cfg, app, t, rc, es,
                                  "the schema file is the live version's again", err) < 0)
                return -1;
            continue;
        }
        if (ae->version == 0) {
            if (t >= 0 && abandon(cfg, app, t, rc, es,
                                  "the schema file changed again: a newer migration replaces it",
                                  err) < 0)
                return -1;
            struct version_state st;
            if (version_read(rc, cfg, alias, &st, err) < 0 ||
                version_begin_target(rc, cfg, ae->e, &st, err) < 0)
                return -1;
            app_set_version(ae, cfg, app->nfile == 1, st.target, 0, st.target_index);
            pgs_log(LOG_INFO, "migration begun", "alias=%s from=%s to=%s version=%d", alias,
                    st.live_index, st.target_index, st.target);
        }
        (*targets)++;
    }
    return 0;
}

/*
 * Has the group acknowledged every entry up to "upto"? It has when its
 * last delivered id is at least "upto" and no entry at or before it is
 * still pending. Sets *behind to a rough count of what is left.
 */
static int group_done_upto(struct redis_conn *rc, const char *stream, const char *upto, int *done,
                           long long *behind, struct pgs_error *err)
{
    struct rstream_id want, delivered = {0}, minp;
    struct rstream_group ours;
    struct rstream_pending p;
    int found;
    *done = 0;
    *behind = -1;
    if (rstream_id_parse(upto, &want) < 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "bad stream id \"%s\"", upto);
        return -1;
    }
    if (rstream_group_find(rc, stream, RSTREAM_GROUP, &ours, &found, err) < 0)
        return -1;
    int have = found && rstream_id_parse(ours.last_delivered_id, &delivered) == 0;
    if (found)
        *behind = ours.lag;
    if (!have || rstream_id_cmp(&delivered, &want) < 0)
        return 0;
    if (rstream_pending_summary(rc, stream, RSTREAM_GROUP, NULL, &p, err) < 0)
        return -1;
    *done = p.count == 0 ||
            (rstream_id_parse(p.min_id, &minp) == 0 && rstream_id_cmp(&minp, &want) > 0);
    *behind = p.count;
    return 0;
}

/*
 * The new version has caught up when its producer confirmed a WAL position
 * sampled now (every earlier commit is in its stream) and its group has
 * read and acknowledged every entry.
 */
static int wait_caught_up(const struct config *cfg, struct app_entry *ae, struct redis_conn *rc,
                          const struct migrate_opts *opts, struct pgs_error *err)
{
    enum capture_mode mode = cfg->mode;
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-migrate", err);
    if (conn == NULL)
        return -1;
    uint64_t mark = 0;
    long long outbox_min, outbox_mark = 0;
    double start = clock_now_s(), last_log = 0, unserved_since = 0;
    char upto[64] = "", wal[32];
    int rv = -1, ok = ops_wal_lsn(conn, &mark, err) == 0;
    /* trigger mode: the outbox rows committed before the mark must be drained */
    if (ok && mode == CAPTURE_NOTIFY)
        ok = bootstrap_outbox_bounds(conn, ae, &outbox_min, &outbox_mark, err) == 0;
    lsn_str(mark, wal);
    while (ok && !*opts->stop) {
        int confirmed = 1, served = 1;
        if (mode == CAPTURE_LOGICAL) {
            struct ops_slot slot;
            uint64_t flushed = 0;
            if (ops_slot_query(conn, ae->slot, &slot, err) < 0)
                break;
            confirmed = slot.exists && lsn_parse(slot.confirmed_flush_lsn, &flushed) == 0 &&
                        flushed >= mark;
            /* read, and by a producer that writes the version's stream */
            int reading = 0;
            if (slot.active &&
                routes_check(conn, rc, cfg, ae->slot, ae->stream, &reading, &served, err) < 0)
                break;
            if (!slot.active)
                served = 0;
        } else if (upto[0] == '\0') {
            if (bootstrap_outbox_bounds(conn, ae, &outbox_min, NULL, err) < 0)
                break;
            confirmed = outbox_min < 0 || outbox_min > outbox_mark;
        }
        long long backlog = -1;
        if (confirmed && upto[0] == '\0') {
            /* every change committed before the mark is in the stream up to here */
            if (rstream_last_id(rc, ae->stream, upto, sizeof(upto), err) < 0)
                break;
            if (upto[0] == '\0')
                snprintf(upto, sizeof(upto), "0-0");
        }
        int done = 0;
        if (upto[0] && group_done_upto(rc, ae->stream, upto, &done, &backlog, err) < 0)
            break;
        if (done) {
            pgs_log(LOG_INFO, "new version caught up", "index=%s wal=%s stream=%s seconds=%.1f",
                    ae->index, wal, upto, clock_now_s() - start);
            rv = 0;
            break;
        }
        if (!served) {
            if (unserved_since == 0)
                unserved_since = clock_now_s();
            else if (clock_now_s() - unserved_since > 60) {
                pgs_error_set(err, PGS_ERR_TRANSIENT,
                              "index \"%s\" is loaded but no producer reading slot \"%s\" writes "
                              "its stream: run pgsync --daemon (or restart pgsync-producer and "
                              "pgsync-consumer), then pgsync again to make it live",
                              ae->index, ae->slot);
                break;
            }
        } else
            unserved_since = 0;
        if (clock_now_s() - start > opts->catchup_timeout_s) {
            pgs_error_set(err, PGS_ERR_TRANSIENT,
                          "index \"%s\" did not catch up within %d s (backlog %lld entries); run "
                          "pgsync again to resume", ae->index, opts->catchup_timeout_s, backlog);
            break;
        }
        if (clock_now_s() - last_log >= 5) {
            pgs_log(LOG_INFO, "waiting for the new version to catch up",
                    "index=%s wal=%s confirmed=%s backlog=%lld", ae->index, wal,
                    confirmed ? "yes" : "no", backlog);
            last_log = clock_now_s();
        }
        usleep(200 * 1000);
    }
    if (rv < 0 && *opts->stop && err->kind == PGS_OK)
        pgs_error_set(err, PGS_ERR_TRANSIENT, "stopped while waiting for \"%s\" to catch up",
                      ae->index);
    PQfinish(conn);
    return rv;
}

static int delete_retired(const struct config *cfg, const char *alias, const char *index,
                          struct redis_conn *rc, struct es_client *es, struct pgs_error *err)
{
    /* a legacy index named like the alias was removed by the swap itself */
    if (strcmp(index, alias) != 0 && es_delete_index(es, index, err) < 0)
        return -1;
    pgs_log(LOG_INFO, "old index deleted", "alias=%s index=%s", alias, index);
    return version_forget_retired(rc, cfg, alias, err);
}

int migrate_finish(const struct config *cfg, struct app *app, int idx,
                   const struct migrate_opts *opts, struct pgs_error *err)
{
    struct app_entry *ae = &app->entries[idx];
    const char *alias = ae->e->index;
    struct redis_conn *rc = redis_connect(cfg, err);
    struct es_client *es = rc ? app_es_client(cfg, err) : NULL;
    struct version_state st;
    int rv = -1;

    if (es == NULL)
        goto out;
    if (version_read(rc, cfg, alias, &st, err) < 0)
        goto out;
    if (st.target != ae->version) {
        pgs_error_set(err, PGS_ERR_FATAL, "index \"%s\": version %d is no longer being migrated to",
                      alias, ae->version);
        goto out;
    }
    int loaded = 0;
    if (load_was_completed(cfg, rc, ae, &loaded, err) < 0)
        goto out;
    if (!loaded) {
        struct load_opts lo = {.quiet = opts->quiet, .workers = opts->workers};
        struct load_result lr;
        pgs_log(LOG_INFO, "loading the new version", "alias=%s index=%s version=%d", alias,
                ae->index, ae->version);
        if (load_entry(cfg, ae, rc, &lo, opts->stop, &lr, err) < 0)
            goto out;
        pgs_log(LOG_INFO, "new version loaded", "index=%s docs=%lld seconds=%.2f", ae->index,
                lr.docs, lr.seconds);
    }
    if (wait_caught_up(cfg, ae, rc, opts, err) < 0)
        goto out;
    if (es_refresh(es, ae->index, err) < 0)
        goto out;

    /* the one moment searches change index: atomic on the engine's side */
    if (version_alias_swap(es, alias, st.live_index, ae->index, err) < 0)
        goto out;
    pgs_log(LOG_INFO, "alias swapped", "alias=%s from=%s to=%s", alias, st.live_index, ae->index);
    if (version_promote(rc, cfg, alias, &st, err) < 0)
        goto out;

    /* the old version: producers and consumers drop it as they restart */
    int old = -1;
    for (int k = 0; k < app->nentries; k++)
        if (k != idx && !strcmp(app->entries[k].e->index, alias) && app->entries[k].live)
            old = k;
    if (old >= 0 &&
        remove_version_objects(cfg, app, &app->entries[old], rc, opts->stop, err) < 0)
        goto out;
    if (opts->keep_old) {
        pgs_log(LOG_INFO, "old index kept", "alias=%s index=%s", alias, st.live_index);
        rv = version_forget_retired(rc, cfg, alias, err);
        goto out;
    }
    if (opts->grace_s > 0)
        pgs_log(LOG_INFO, "old index is deleted after the grace period", "index=%s seconds=%d",
                st.live_index, opts->grace_s);
    for (double until = clock_now_s() + opts->grace_s; clock_now_s() < until && !*opts->stop;)
        usleep(200 * 1000);
    if (*opts->stop) {
        rv = 0; /* the next run deletes it (migrate_reap) */
        goto out;
    }
    rv = delete_retired(cfg, alias, st.live_index, rc, es, err);
out:
    if (rc)
        redis_close(rc);
    es_client_free(es);
    return rv;
}

int migrate_reap(const struct config *cfg, struct app *app, struct redis_conn *rc,
                 struct es_client *es, const struct migrate_opts *opts, struct pgs_error *err)
{
    for (int i = 0; i < app->nfile; i++) {
        const char *alias = app->entries[i].e->index;
        struct version_state st;
        if (version_read(rc, cfg, alias, &st, err) < 0)
            return -1;
        if (st.retired_index[0] == '\0')
            continue;
        if (opts->keep_old) {
            if (version_forget_retired(rc, cfg, alias, err) < 0)
                return -1;
            continue;
        }
        if (time(NULL) - st.retired_at >= opts->grace_s &&
            delete_retired(cfg, alias, st.retired_index, rc, es, err) < 0)
            return -1;
    }
    return 0;
}
