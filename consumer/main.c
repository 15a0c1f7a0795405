/*
 * main.c - pgsync-consumer: one member of the consumer group. Run as many
 * as you like, anywhere; together they keep the index equal to the
 * database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "consume.h"
#include "log.h"
#include "strbuf.h"
#include "metrics.h"

static const char usage[] =
    "Usage: pgsync-consumer --config FILE [options]\n"
    "\n"
    "Reads change records from the Redis stream of each schema entry as a\n"
    "member of the consumer group, re-reads the affected documents from\n"
    "PostgreSQL and writes them to the search engine; acknowledges entries\n"
    "only once the engine accepted them. Any number may run at once.\n"
    "\n"
    "Options:\n"
    "  -n, --name NAME        consumer name in the group [host:pid]\n"
    "      --batch-size N     stream entries per batch [PGSYNC_BATCH_SIZE]\n"
    "      --exit-when-idle   stop when the stream has nothing more to give\n" METRICS_HELP
    "\n"
    "GET /healthz answers 200 \"ok\", or 503 with the reason: not connected to Redis,\n"
    "PostgreSQL or the search engine, or entries waiting and nothing acknowledged\n"
    "for PGSYNC_STALL_SECONDS [60].\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"name", required_argument, NULL, 'n'},
                                             {"batch-size", required_argument, NULL, 'b'},
                                             {"exit-when-idle", no_argument, NULL, 'x'},
                                             {"metrics-port", required_argument, NULL, 2001},
                                             {"metrics-bind", required_argument, NULL, 2002},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-consumer"};
    struct consume_opts opts = {0};
    static volatile sig_atomic_t stop;
    struct config cfg;
    struct pgs_error err;
    struct app app;
    struct metrics_opts mopts;
    char name[300], host[256], buf[1600];
    int opt, batch = 0;

    if (metrics_opts_init(&mopts, &err) < 0) {
        fprintf(stderr, "pgsync-consumer: %s\n", err.msg);
        return 2;
    }

    while ((opt = getopt_long(argc, argv, "c:hVn:", longopts, NULL)) != -1) {
        if (cli_common_option(&cli, opt, optarg, usage))
            continue;
        switch (opt) {
        case 'n':
            opts.name = optarg;
            break;
        case 'b':
            batch = atoi(optarg);
            if (batch <= 0)
                cli_die_usage(cli.prog, "--batch-size must be a positive number");
            break;
        case 'x':
            opts.exit_when_idle = 1;
            break;
        case 2001:
        case 2002:
            if (metrics_opts_set(&mopts, opt == 2001 ? "port" : "bind", optarg, &err) < 0)
                cli_die_usage(cli.prog, "%s", err.msg);
            break;
        default:
            cli_die_usage(cli.prog, "bad argument");
        }
    }
    if (optind < argc)
        cli_die_usage(cli.prog, "unexpected argument \"%s\"", argv[optind]);
    cli_common_finish(&cli, 1);
    cli_load_config(&cli, &cfg);
    if (batch)
        cfg.batch_size = batch;
    if (opts.name == NULL) {
        if (cfg.consumer_name && *cfg.consumer_name) {
            opts.name = cfg.consumer_name;
        } else {
            gethostname(host, sizeof(host));
            host[sizeof(host) - 1] = '\0';
            snprintf(name, sizeof(name), "%s:%d", host, (int)getpid());
            opts.name = name;
        }
    }
    opts.metrics = &mopts;
    cli_install_signals(&stop);
    config_log(&cfg);
    if (app_load(&app, cli.config, &cfg, &err) < 0) {
        pgs_error_str(&err, buf, sizeof(buf));
        fprintf(stderr, "%s: %s\n", cli.prog, pgs_log_scrub(buf, sizeof(buf)));
        return 1;
    }
    static volatile sig_atomic_t restart;
    if (app_bind_at_start(&app, 0, &stop, &err) < 0 || app_watch_versions(&app, &restart, &err) < 0) {
        pgs_error_str(&err, buf, sizeof(buf));
        fprintf(stderr, "%s: %s\n", cli.prog, pgs_log_scrub(buf, sizeof(buf)));
        app_free(&app);
        return 1;
    }
    int rv = consume_run(&cfg, &app, &opts, &stop);
    app_free(&app);
    if (restart && rv == 0)
        app_restart_self();
    return rv == 0 ? 0 : 1;
}
