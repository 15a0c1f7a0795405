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
    "  -w, --workers N        load worker processes [the number of cores]; with 0 the\n"
    "                         running pgsync-consumers take the load's work items\n"
    "  -m, --mode MODE        logical (the replication slot, default) or notify\n"
    "                         (triggers and an outbox; no wal_level=logical)\n"
    "      --resync           load every document again, even if loaded before\n"
    "      --analyze          print the plan of every generated query and warn about\n"
    "                         foreign keys without an index; changes nothing\n"
    "      --no-load          skip the load\n"
    "  -q, --quiet            no progress output\n"
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
static int was_loaded(const struct config *cfg, redisContext *rc, const struct app_entry *ae)
{
    struct pgs_error err;
    int loaded = 0;
    return load_was_completed(cfg, rc, ae, &loaded, &err) == 0 && loaded;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"daemon", no_argument, NULL, 'd'},
                                             {"consumers", required_argument, NULL, 'n'},
                                             {"resync", no_argument, NULL, 'r'},
                                             {"no-load", no_argument, NULL, 'N'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"workers", required_argument, NULL, 'w'},
                                             {"analyze", no_argument, NULL, 'A'},
                                             {"mode", required_argument, NULL, 'm'},
                                             {"grace", required_argument, NULL, 'G'},
                                             {"keep-old", no_argument, NULL, 'K'},
                                             {"abort", no_argument, NULL, 'X'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync"};
    struct config cfg;
    struct pgs_error err;
    struct app app;
    char buf[1600];
    int opt, daemon = 0, consumers = 1, resync = 0, noload = 0, quiet = 0, rv = 1;
    int workers = (int)sysconf(_SC_NPROCESSORS_ONLN), analyze = 0, abort_mig = 0, targets = 0;
    struct migrate_opts mo = {.grace_s = 60, .catchup_timeout_s = 3600, .stop = &stop};
    struct es_client *es = NULL;
    redisContext *rc = NULL;

    while ((opt = getopt_long(argc, argv, "c:hVdn:qw:m:", longopts, NULL)) != -1) {
        if (cli_common_option(&cli, opt, optarg, usage))
            continue;
        switch (opt) {
        case 'd':
            daemon = 1;
            break;
        case 'n':
            consumers = atoi(optarg);
            if (consumers < 1 || consumers > 64)
                cli_die_usage(cli.prog, "--consumers must be from 1 to 64");
            break;
        case 'r':
            resync = 1;
            break;
        case 'N':
            noload = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'A':
            analyze = 1;
            break;
        case 'G': {
            char *end;
            long g = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || g < 0 || g > 30L * 86400)
                cli_die_usage(cli.prog, "--grace must be a number of seconds (0 to 2592000)");
            mo.grace_s = (int)g;
            break;
        }
        case 'K':
            mo.keep_old = 1;
            break;
        case 'X':
            abort_mig = 1;
            break;
        case 'm':
            /* the environment carries it to the producer and consumers we start */
            setenv("PGSYNC_MODE", optarg, 1);
            break;
        case 'w':
            workers = atoi(optarg);
            if (workers < 0 || workers > 256)
                cli_die_usage(cli.prog, "--workers must be from 0 to 256");
            break;
        default:
            cli_die_usage(cli.prog, "bad argument");
        }
    }
    if (optind < argc)
        cli_die_usage(cli.prog, "unexpected argument \"%s\"", argv[optind]);
    cli_common_finish(&cli, 1);
    cli_load_config(&cli, &cfg);
    cli_install_signals(&stop);
    if (app_load(&app, cli.config, &cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
        return 1;
    }

    if (analyze) {
        int warnings = 0;
        for (int i = 0; i < app.nentries; i++) {
            int w = analyze_entry(&cfg, &app.entries[i], stdout, &err);
            if (w < 0)
                goto fail;
            warnings += w;
        }
        app_free(&app);
        return warnings > 0 ? 3 : 0;
    }

    es = app_es_client(&cfg, &err);
    if (es == NULL)
        goto fail;
    if (app_check_engine(es, &err) < 0)
        goto fail;
    rc = redis_connect(&cfg, &err);
    if (rc == NULL)
        goto fail;
    /* which version of each index the schema file is, and what to migrate */
    if (app_bind_versions(&app, rc, es, APP_BIND_UNBOUND_OK, &err) < 0)
        goto fail;
    if (migrate_plan(&cfg, &app, rc, es, abort_mig, &targets, &err) < 0)
        goto fail;
    if (abort_mig) {
        printf("%s: no migration is in progress now; the live indices are untouched\n", cli.prog);
        redisFree(rc);
        es_client_free(es);
        app_free(&app);
        return 0;
    }
    mo.quiet = quiet;
    mo.workers = workers;
    if (migrate_reap(&cfg, &app, rc, es, &mo, &err) < 0)
        goto fail;

    for (int i = 0; i < app.nentries; i++) {
        struct app_entry *ae = &app.entries[i];
        struct load_opts lo = {.quiet = quiet, .workers = workers, .resync = resync};
        struct load_result lr;

        /* the slot first: every change after the load's snapshot reaches the stream */
        if (bootstrap_setup(&cfg, ae, NULL, &err) < 0)
            goto fail;
        if (rstream_group_create(rc, ae->stream, RSTREAM_GROUP, &err) < 0)
            goto fail;
        if (app_ensure_index(ae, es, &err) < 0)
            goto fail;
        if (!ae->live)
            continue; /* a migration's new version: migrate_finish loads it */
        if (!resync && migrating(&app, ae->e->index) && was_loaded(&cfg, rc, ae)) {
            /* the run is for the new version; the live one only needs to keep up */
            pgs_log(LOG_INFO, "load skipped", "index=%s why=\"a migration is building %s\"",
                    ae->index, ae->e->index);
            continue;
        }
        if (noload || (daemon && !resync && was_loaded(&cfg, rc, ae))) {
            pgs_log(LOG_INFO, "load skipped", "index=%s", ae->index);
            continue;
        }
        if (load_entry(&cfg, ae, rc, &lo, &stop, &lr, &err) < 0)
            goto fail;
        if (es_refresh(es, ae->index, &err) < 0)
            goto fail;
        pgs_log(LOG_INFO, "load done",
                "index=%s docs=%lld seconds=%.2f rate=%.0f ranges=%d ranges_resumed=%d version=%llu",
                ae->index, lr.docs, lr.seconds, lr.docs / (lr.seconds > 1e-6 ? lr.seconds : 1e-6),
                lr.parts, lr.parts_already_done, (unsigned long long)lr.version);
        if (!daemon)
            printf("%s: %lld documents loaded into \"%s\"\n", cli.prog, lr.docs, ae->index);
        if (resync) {
            /*
             * A rebuild from scratch also drops what the database no longer
             * generates: documents a lost delete left behind, say. The sweep
             * is versioned like every write, so it never undoes newer work.
             */
            struct verify_opts vo = {.repair = 1, .max_diffs = 0, .progress = !quiet,
                                     .stop = &stop};
            struct verify_result vr;
            if (verify_entry(&cfg, ae, es, &vo, &vr, &err) < 0)
                goto fail;
            pgs_log(LOG_INFO, "resync sweep done",
                    "index=%s checked=%lld extra_deleted=%lld missing=%lld different=%lld",
                    ae->index, vr.counts.checked, vr.counts.extra, vr.counts.missing,
                    vr.counts.different);
            verify_result_free(&vr);
        }
    }
    redisFree(rc);
    rc = NULL;
    es_client_free(es);
    es = NULL;
    if (!daemon) {
        for (int i = 0; i < app.nentries; i++) {
            if (app.entries[i].live)
                continue;
            char alias[256];
            snprintf(alias, sizeof(alias), "%s", app.entries[i].e->index);
            char index[256];
            snprintf(index, sizeof(index), "%s", app.entries[i].index);
            if (migrate_finish(&cfg, &app, i, &mo, &err) < 0)
                goto fail;
            printf("%s: index \"%s\" now serves \"%s\"\n", cli.prog, alias, index);
        }
        app_free(&app);
        return 0;
    }

    /* the daemon: one producer, N consumers, all siblings of this binary */
    {
        char self[PATH_MAX], dir[PATH_MAX], prod[PATH_MAX + 32], cons[PATH_MAX + 32];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) {
            pgs_error_set(&err, PGS_ERR_FATAL, "cannot find my own binary");
            goto fail;
        }
        self[n] = '\0';
        snprintf(dir, sizeof(dir), "%s", dirname(self));
        snprintf(prod, sizeof(prod), "%s/pgsync-producer", dir);
        snprintf(cons, sizeof(cons), "%s/pgsync-consumer", dir);
        struct child *kids = calloc((size_t)consumers + 2, sizeof(struct child));
        const char *config_path = cli.config;
        kids[0] = (struct child){.what = "producer", .argv = {prod, "--config", config_path, NULL}};
        for (int i = 1; i <= consumers; i++)
            kids[i] = (struct child){.what = "consumer", .argv = {cons, "--config", config_path, NULL}};
        if (cli.log_level)
            for (int i = 0; i <= consumers; i++) {
                kids[i].argv[3] = "--log-level";
                kids[i].argv[4] = cli.log_level;
            }
        struct migrator mig = {&cfg, &app, mo};
        int nkids = consumers + 1;
        if (targets > 0)
            kids[nkids++] = (struct child){.what = "migration", .run = run_migrations, .arg = &mig,
                                           .once = 1};
        pgs_log(LOG_INFO, "daemon running", "consumers=%d migrations=%d", consumers, targets);
        rv = supervise(kids, nkids);
        free(kids);
    }
    app_free(&app);
    return rv;

fail:
    fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
    if (rc)
        redisFree(rc);
    es_client_free(es);
    app_free(&app);
    return 1;
}
