/*
 * main.c - pgsync-producer: the single reader of the database's changes.
 * One libev loop; one replication stream per schema entry; one Redis
 * connection shared by all of them.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "repl.h"

static const char usage[] =
    "Usage: pgsync-producer --config FILE [options]\n"
    "\n"
    "Reads every committed change to the schema's tables from the logical\n"
    "replication slot (pgoutput) and appends a compact record per change to\n"
    "the entry's Redis stream. Confirms a position to PostgreSQL only after\n"
    "Redis accepted every record up to it. Run exactly one per slot; run\n"
    "pgsync-bootstrap first.\n";

struct producer {
    struct repl **repls;
    int n;
};

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    (void)w;
    pgs_log(LOG_INFO, "stopping", NULL);
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-producer"};
    struct config cfg;
    struct pgs_error err;
    struct app app;
    char buf[1600];
    int opt, rv = 0;

    while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        if (!cli_common_option(&cli, opt, optarg, usage))
            cli_die_usage(cli.prog, "bad argument");
    }
    if (optind < argc)
        cli_die_usage(cli.prog, "unexpected argument \"%s\"", argv[optind]);
    cli_common_finish(&cli, 1);
    if (config_load(&cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", cli.prog, err.msg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    config_log(&cfg);
    if (app_load(&app, cli.config, &cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
        return 1;
    }

    struct ev_loop *loop = EV_DEFAULT;
    redisContext *rc = NULL;
    struct producer p = {calloc((size_t)app.nentries, sizeof(struct repl *)), app.nentries};
    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);

    for (int i = 0; i < p.n; i++) {
        p.repls[i] = repl_new(loop, &cfg, &app.entries[i], &rc);
        repl_start(p.repls[i]);
    }
    ev_run(loop, 0);

    for (int i = 0; i < p.n; i++) {
        const struct repl_stats *st = repl_get_stats(p.repls[i]);
        if (repl_stop(p.repls[i]) < 0)
            rv = 1;
        pgs_log(LOG_INFO, "totals", "slot=%s changes=%llu records=%llu transactions=%llu",
                app.entries[i].slot, st->changes_read, st->records_written, st->transactions);
        repl_free(p.repls[i]);
    }
    free(p.repls);
    if (rc)
        redisFree(rc);
    app_free(&app);
    ev_loop_destroy(loop);
    return rv;
}
