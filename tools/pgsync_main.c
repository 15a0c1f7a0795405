/*
 * pgsync_main.c - pgsync: the one command most users run. Sets up what is
 * missing (publication, slot, index), loads every document, and exits; or,
 * with --daemon, then runs a producer and consumers and keeps them running.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "app.h"
#include "bootstrap.h"
#include "cli.h"
#include "clock.h"
#include "config.h"
#include "es.h"
#include "load.h"
#include "migrate.h"
#include "log.h"
#include "rstate.h"
#include "rstream.h"
#include "verify.h"

static const char usage[] =
    "Usage: pgsync --config FILE [--daemon] [options]\n"
    "\n"
    "Without --daemon: set up what is missing (publication, replication slot,\n"
    "index), load every document of every schema entry, and exit 0.\n"
    "With --daemon: the same (the load only when the index was never loaded,\n"
    "or with --resync), then run pgsync-producer and pgsync-consumer\n"
    "processes and restart them if they die, until SIGTERM or SIGINT.\n"
    "\n"
    "Options:\n"
    "  -d, --daemon           keep following changes after the load\n"
    "  -n, --consumers N      consumer processes to run with --daemon [1]\n"
    "                         (PGSync's --num_workers)\n"
    "      --standby-producer with --daemon, a second producer that waits and takes\n"
    "                         the slot over within a second if the first one dies\n"
    "      --workers N        load worker processes [the number of cores]; with 0 the\n"
    "                         running pgsync-consumers take the load's work items\n"
    "  -m, --mode MODE        logical (the replication slot, default) or notify\n"
    "                         (triggers and an outbox; no wal_level=logical)\n"
    "      --resync           load every document again, even if loaded before\n"
    "  -a, --analyze          print the plan of every generated query and warn about\n"
    "                         foreign keys without an index; changes nothing\n"
    "      --no-load          skip the load\n"
    "  -q, --quiet            no progress output\n"
    "\n"
    "PGSync's other flags: -w/--wal and -b/--bootstrap are what pgsync always does\n"
    "(logical replication; set up what is missing); -p PORT and -u ROLE are --port\n"
    "and --user. --producer, --consumer, --polling, --schema_url and\n"
    "--s3_schema_url do not apply: each says what to use instead.\n"
    "\n"
    "Schema changes: when the entry of an index differs from the version the\n"
    "index's alias serves, pgsync builds a new version (<index>_v<N>) beside it,\n"
    "loads it while changes keep reaching both, swaps the alias atomically once\n"
    "the new one has caught up, and deletes the old index after a grace period.\n"
    "An interrupted migration resumes on the next run.\n"
    "      --grace SECONDS    keep the old index this long after the swap [60]\n"
    "      --keep-old         never delete the old index\n"
    "      --abort            abandon the migrations in progress (the live index\n"
    "                         is untouched) and exit\n";

static volatile sig_atomic_t stop;

struct child {
    const char *what;
    const char *argv[8];
    int (*run)(void *arg); /* instead of argv: a function run in a forked copy of this process */
    void *arg;
    int once;              /* done for good when it exits 0 */
    pid_t pid;
    double started;
};

static void spawn(struct child *c)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (c->run)
            _exit(c->run(c->arg) == 0 ? 0 : 1);
        execv(c->argv[0], (char *const *)c->argv);
        fprintf(stderr, "pgsync: cannot run %s: %s\n", c->argv[0], strerror(errno));
        _exit(127);
    }
    c->pid = pid;
    c->started = clock_now_s();
    pgs_log(LOG_INFO, "started", "process=%s pid=%d", c->what, (int)pid);
}

/* Run the children until a signal; restart any that dies, with a pause if it dies young. */
static int supervise(struct child *kids, int n)
{
    for (int i = 0; i < n; i++)
        spawn(&kids[i]);
    while (!stop) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (kids[i].pid != pid)
                continue;
            kids[i].pid = 0;
            pgs_log(LOG_WARN, "process ended", "process=%s pid=%d status=%d", kids[i].what,
                    (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            if (stop)
                break;
            if (kids[i].once && WIFEXITED(status) && WEXITSTATUS(status) == 0)
                continue;
            if (clock_now_s() - kids[i].started < 5)
                sleep(2);
            if (!stop)
                spawn(&kids[i]);
        }
    }
    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0)
            kill(kids[i].pid, SIGTERM);
    for (int i = 0; i < n; i++)
        if (kids[i].pid > 0)
            waitpid(kids[i].pid, NULL, 0);
    pgs_log(LOG_INFO, "daemon stopped", NULL);
    return 0;
}

struct migrator {
    const struct config *cfg;
    struct app *app;
    struct migrate_opts mo;
};

/* Finish every migration in progress, one after the other (the daemon's migrator process). */
static int run_migrations(void *arg)
{
    struct migrator *m = arg;
    struct pgs_error err;
    char buf[1600];
    for (int i = 0; i < m->app->nentries; i++) {
        if (m->app->entries[i].live)
            continue;
        if (migrate_finish(m->cfg, m->app, i, &m->mo, &err) < 0) {
            pgs_log(LOG_ERROR, "migration failed", "index=%s error=\"%s\"",
                    m->app->entries[i].index, pgs_error_str(&err, buf, sizeof(buf)));
            return -1;
        }
    }
    return 0;
}

/* Is a new version of "alias" being built? */
static int migrating(const struct app *app, const char *alias)
{
    for (int i = 0; i < app->nentries; i++)
        if (!app->entries[i].live && !strcmp(app->entries[i].e->index, alias))
            return 1;
    return 0;
}

/* A load of "ae" was completed before (a Redis error counts as no: load again). */
static int was_loaded(const struct config *cfg, struct redis_conn *rc, const struct app_entry *ae)
{
    struct pgs_error err;
    int loaded = 0;
    return load_was_completed(cfg, rc, ae, &loaded, &err) == 0 && loaded;
}

/* The command line. */
struct pgsync_args {
    int daemon, consumers, resync, noload, quiet, workers, analyze, abort_mig, standby;
    struct migrate_opts mo;
};

static int pgsync_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct pgsync_args *a = ctx;
    char *end;
    long g;

    switch (opt) {
    case 'd':
        a->daemon = 1;
        return 0;
    case 'n':
        a->consumers = atoi(arg);
        if (a->consumers < 1 || a->consumers > 64)
            cli_die_usage(prog, "--consumers must be from 1 to 64");
        return 0;
    case 'r':
        a->resync = 1;
        return 0;
    case 'S':
        a->standby = 1;
        return 0;
    case 'N':
        a->noload = 1;
        return 0;
    case 'q':
        a->quiet = 1;
        return 0;
    case 'A':
        a->analyze = 1;
        return 0;
    case 'G':
        g = strtol(arg, &end, 10);
        if (*arg == '\0' || *end || g < 0 || g > 30L * 86400)
            cli_die_usage(prog, "--grace must be a number of seconds (0 to 2592000)");
        a->mo.grace_s = (int)g;
        return 0;
    case 'K':
        a->mo.keep_old = 1;
        return 0;
    case 'X':
        a->abort_mig = 1;
        return 0;
    case 'm':
        /* the environment carries it to the producer and consumers we start */
        setenv("PGSYNC_MODE", arg, 1);
        return 0;
    case 'a':
        a->analyze = 1;
        return 0;
    case 'w': /* PGSync's --wal: logical replication is what we do */
    case 'b': /* PGSync's --bootstrap: pgsync sets up what is missing anyway */
        return 0;
    case 2001:
        cli_die_usage(prog, "--producer: run pgsync-producer --config FILE (pgsync --daemon runs "
                            "the producer and the consumers)");
    case 2002:
        cli_die_usage(prog, "--consumer: run pgsync-consumer --config FILE, as many as you like "
                            "(pgsync --daemon runs the producer and the consumers)");
    case 2003:
        cli_die_usage(prog, "--polling does not apply: changes are streamed from the replication "
                            "slot (or, without wal_level=logical, --mode notify)");
    case 2004:
    case 2005:
        cli_die_usage(prog, "--schema_url and --s3_schema_url do not apply: download the file and "
                            "give it with --config (or SCHEMA)");
    case 'W':
        a->workers = atoi(arg);
        if (a->workers < 0 || a->workers > 256)
            cli_die_usage(prog, "--workers must be from 0 to 256");
        return 0;
    default:
        return -1;
    }
}

/* --analyze: the plans and warnings of every entry. Returns 3 on a warning, 0 without, -1. */
static int pgsync_analyze(const struct config *cfg, struct app *app, struct pgs_error *err)
{
    int warnings = 0;

    for (int i = 0; i < app->nentries; i++) {
        int w = analyze_entry(cfg, &app->entries[i], stdout, err);
        if (w < 0)
            return -1;
        warnings += w;
    }
    return warnings > 0 ? 3 : 0;
}

/*
 * A rebuild from scratch also drops what the database no longer generates:
 * documents a lost delete left behind, say. The sweep is versioned like
 * every write, so it never undoes newer work.
 */
static int pgsync_resync_sweep(const struct config *cfg, struct app_entry *ae,
                               struct es_client *es, const struct pgsync_args *a,
                               struct pgs_error *err)
{
    struct verify_opts vo = {.repair = 1, .max_diffs = 0, .progress = !a->quiet, .stop = &stop};
    struct verify_result vr;

    if (verify_entry(cfg, ae, es, &vo, &vr, err) < 0)
        return -1;
    pgs_log(LOG_INFO, "resync sweep done",
            "index=%s checked=%lld extra_deleted=%lld missing=%lld different=%lld", ae->index,
            vr.counts.checked, vr.counts.extra, vr.counts.missing, vr.counts.different);
    verify_result_free(&vr);
    return 0;
}

/* Whether this run loads "ae": not when a load is not wanted or not needed (said in the log). */
static int pgsync_wants_load(const struct config *cfg, const struct app *app,
                             const struct app_entry *ae, struct redis_conn *rc,
                             const struct pgsync_args *a)
{
    if (!a->resync && migrating(app, ae->e->index) && was_loaded(cfg, rc, ae)) {
        /* the run is for the new version; the live one only needs to keep up */
        pgs_log(LOG_INFO, "load skipped", "index=%s why=\"a migration is building %s\"",
                ae->index, ae->e->index);
        return 0;
    }
    if (a->noload || (a->daemon && !a->resync && was_loaded(cfg, rc, ae))) {
        pgs_log(LOG_INFO, "load skipped", "index=%s", ae->index);
        return 0;
    }
    return 1;
}

/* Set up what "ae" is missing (slot, group, index), then load it if this run should. */
static int pgsync_entry(const struct config *cfg, const struct app *app, struct app_entry *ae,
                        struct es_client *es, struct redis_conn *rc, const struct pgsync_args *a,
                        struct pgs_error *err)
{
    struct load_opts lo = {.quiet = a->quiet, .workers = a->workers, .resync = a->resync};
    struct load_result lr;

    /* the slot first: every change after the load's snapshot reaches the stream */
    if (bootstrap_setup(cfg, ae, NULL, err) < 0)
        return -1;
    /* a group that existed and is gone is made again only when asked (--resync) */
    int gone = a->resync ? 0 : rstate_group_ensure(rc, ae->stream, ae->meta, RSTREAM_GROUP, err);
    if (gone != 0) {
        if (gone > 0)
            err->kind = PGS_ERR_FATAL; /* a one-shot run: the user chooses the recovery */
        return -1;
    }
    if (a->resync && (rstream_group_create(rc, ae->stream, RSTREAM_GROUP, err) < 0 ||
                      rstate_group_mark(rc, ae->stream, ae->meta, err) < 0))
        return -1;
    if (app_ensure_index(ae, es, err) < 0)
        return -1;
    if (!ae->live)
        return 0; /* a migration's new version: migrate_finish loads it */
    if (!pgsync_wants_load(cfg, app, ae, rc, a))
        return 0;
    if (load_entry(cfg, ae, rc, &lo, &stop, &lr, err) < 0)
        return -1;
    if (es_refresh(es, ae->index, err) < 0)
        return -1;
    pgs_log(LOG_INFO, "load done",
            "index=%s docs=%lld seconds=%.2f rate=%.0f ranges=%d ranges_resumed=%d version=%llu",
            ae->index, lr.docs, lr.seconds, lr.docs / (lr.seconds > 1e-6 ? lr.seconds : 1e-6),
            lr.parts, lr.parts_already_done, (unsigned long long)lr.version);
    if (!a->daemon)
        printf("pgsync: %lld documents loaded into \"%s\"\n", lr.docs, ae->index);
    if (a->resync)
        return pgsync_resync_sweep(cfg, ae, es, a, err);
    return 0;
}

/*
 * Connect to the engine and Redis, bind each index's version and plan the
 * migrations ("*targets" of them; with --abort, abandon them and stop
 * there), then set up and load every entry.
 */
static int pgsync_load_all(const struct config *cfg, struct app *app, struct pgsync_args *a,
                           int *targets, struct pgs_error *err)
{
    struct es_client *es = NULL;
    struct redis_conn *rc = NULL;
    int rv = -1;

    es = app_es_client(cfg, err);
    if (es == NULL || app_check_engine(es, err) < 0)
        goto out;
    rc = redis_connect(cfg, err);
    if (rc == NULL)
        goto out;
    /* which version of each index the schema file is, and what to migrate */
    if (app_bind_versions(app, rc, es, APP_BIND_UNBOUND_OK, err) < 0)
        goto out;
    if (migrate_plan(cfg, app, rc, es, a->abort_mig, targets, err) < 0)
        goto out;
    if (a->abort_mig) {
        rv = 0;
        goto out;
    }
    if (migrate_reap(cfg, app, rc, es, &a->mo, err) < 0)
        goto out;
    for (int i = 0; i < app->nentries; i++)
        if (pgsync_entry(cfg, app, &app->entries[i], es, rc, a, err) < 0)
            goto out;
    rv = 0;
out:
    if (rc)
        redis_close(rc);
    es_client_free(es);
    return rv;
}

/* Without --daemon: finish every migration in progress here, saying which alias serves what. */
static int pgsync_finish_migrations(const struct config *cfg, struct app *app,
                                    const struct migrate_opts *mo, struct pgs_error *err)
{
    char alias[256], index[256];

    for (int i = 0; i < app->nentries; i++) {
        if (app->entries[i].live)
            continue;
        snprintf(alias, sizeof(alias), "%s", app->entries[i].e->index);
        snprintf(index, sizeof(index), "%s", app->entries[i].index);
        if (migrate_finish(cfg, app, i, mo, err) < 0)
            return -1;
        printf("pgsync: index \"%s\" now serves \"%s\"\n", alias, index);
    }
    return 0;
}

/* The daemon: one producer, N consumers, all siblings of this binary, and the migrator. */
static int pgsync_daemon(const struct cli_common *cli, const struct config *cfg, struct app *app,
                         const struct pgsync_args *a, int targets, struct pgs_error *err)
{
    char self[PATH_MAX], dir[PATH_MAX], prod[PATH_MAX + 32], cons[PATH_MAX + 32];
    int consumers = a->consumers;

    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot find my own binary");
        return -1;
    }
    self[n] = '\0';
    snprintf(dir, sizeof(dir), "%s", dirname(self));
    snprintf(prod, sizeof(prod), "%s/pgsync-producer", dir);
    snprintf(cons, sizeof(cons), "%s/pgsync-consumer", dir);
    struct child *kids = calloc((size_t)consumers + 3, sizeof(struct child));
    kids[0] = (struct child){.what = "producer", .argv = {prod, "--config", cli->config, NULL}};
    for (int i = 1; i <= consumers; i++)
        kids[i] = (struct child){.what = "consumer", .argv = {cons, "--config", cli->config, NULL}};
    int nkids = consumers + 1;
    /* a second producer waits on the slot PostgreSQL lets one reader hold, and takes it over */
    if (a->standby)
        kids[nkids++] =
            (struct child){.what = "standby producer", .argv = {prod, "--config", cli->config,
             NULL}};
    if (cli->log_level)
        for (int i = 0; i < nkids; i++) {
            kids[i].argv[3] = "--log-level";
            kids[i].argv[4] = cli->log_level;
        }
    struct migrator mig = {cfg, app, a->mo};
    if (targets > 0)
        kids[nkids++] =
            (struct child){.what = "migration", .run = run_migrations, .arg = &mig, .once = 1};
    pgs_log(LOG_INFO, "daemon running", "consumers=%d standby_producer=%d migrations=%d", consumers,
            a->standby, targets);
    int rv = supervise(kids, nkids);
    free(kids);
    return rv;
}

/* Load what needs it; then, with --abort, stop; without --daemon, migrate; else supervise. */
static int pgsync_run(const struct cli_common *cli, const struct config *cfg, struct app *app,
                      struct pgsync_args *a, struct pgs_error *err)
{
    int targets = 0;

    if (pgsync_load_all(cfg, app, a, &targets, err) < 0)
        return -1;
    if (a->abort_mig) {
        printf("%s: no migration is in progress now; the live indices are untouched\n",
               cli->prog);
        return 0;
    }
    if (!a->daemon)
        return pgsync_finish_migrations(cfg, app, &a->mo, err);
    return pgsync_daemon(cli, cfg, app, a, targets, err);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"daemon", no_argument, NULL, 'd'},
                                             {"consumers", required_argument, NULL, 'n'},
                                             {"num_workers", required_argument, NULL, 'n'},
                                             {"wal", no_argument, NULL, 'w'},
                                             {"bootstrap", no_argument, NULL, 'b'},
                                             {"producer", no_argument, NULL, 2001},
                                             {"consumer", no_argument, NULL, 2002},
                                             {"polling", no_argument, NULL, 2003},
                                             {"schema_url", required_argument, NULL, 2004},
                                             {"s3_schema_url", required_argument, NULL, 2005},
                                             {"resync", no_argument, NULL, 'r'},
                                             {"no-load", no_argument, NULL, 'N'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"workers", required_argument, NULL, 'W'},
                                             {"analyze", no_argument, NULL, 'A'},
                                             {"mode", required_argument, NULL, 'm'},
                                             {"grace", required_argument, NULL, 'G'},
                                             {"keep-old", no_argument, NULL, 'K'},
                                             {"abort", no_argument, NULL, 'X'},
                                             {"standby-producer", no_argument, NULL, 'S'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync"};
    struct pgsync_args a = {
        .consumers = 1,
        .workers = (int)sysconf(_SC_NPROCESSORS_ONLN),
        .mo = {.grace_s = 60, .catchup_timeout_s = 3600, .stop = &stop},
    };
    struct cli_spec spec = {"c:hVdn:qm:u:p:vawb", longopts, usage, pgsync_option, &a, 0};
    struct config cfg;
    struct pgs_error err;
    struct app app;
    int rv;

    cli_parse(&cli, &spec, argc, argv);
    cli_setup(&cli, &cfg);
    cli_install_signals(&stop);
    a.mo.quiet = a.quiet;
    a.mo.workers = a.workers;
    if (cli_load_app(&cli, &cfg, &app) < 0)
        return 1;
    rv = a.analyze ? pgsync_analyze(&cfg, &app, &err) : pgsync_run(&cli, &cfg, &app, &a, &err);
    if (rv < 0) {
        cli_print_error(cli.prog, &err);
        rv = 1;
    }
    app_free(&app);
    return rv;
}
