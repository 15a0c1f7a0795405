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

/* The command line, and what it fills. */
struct consumer_args {
    struct consume_opts opts;
    struct metrics_opts mopts;
    int batch;
};

static int consumer_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct consumer_args *a = ctx;
    struct pgs_error err;

    switch (opt) {
    case 'n':
        a->opts.name = arg;
        return 0;
    case 'b':
        a->batch = atoi(arg);
        if (a->batch <= 0)
            cli_die_usage(prog, "--batch-size must be a positive number");
        return 0;
    case 'x':
        a->opts.exit_when_idle = 1;
        return 0;
    case 2001:
    case 2002:
        if (metrics_opts_set(&a->mopts, opt == 2001 ? "port" : "bind", arg, &err) < 0)
            cli_die_usage(prog, "%s", err.msg);
        return 0;
    default:
        return -1;
    }
}

/* The name in the group: --name, else PGSYNC_CONSUMER_NAME, else host:pid (in "buf"). */
static const char *consumer_name(const struct consumer_args *a, const struct config *cfg,
                                 char *buf, size_t len)
{
    char host[256];

    if (a->opts.name)
        return a->opts.name;
    if (cfg->consumer_name && *cfg->consumer_name)
        return cfg->consumer_name;
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    snprintf(buf, len, "%s:%d", host, (int)getpid());
    return buf;
}

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
    struct consumer_args a = {0};
    struct cli_spec spec = {"c:hVn:", longopts, usage, consumer_option, &a, 0};
    static volatile sig_atomic_t stop, restart;
    struct config cfg;
    struct pgs_error err;
    struct app app;
    char name[300];

    if (metrics_opts_init(&a.mopts, &err) < 0) {
        fprintf(stderr, "pgsync-consumer: %s\n", err.msg);
        return 2;
    }
    cli_parse(&cli, &spec, argc, argv);
    cli_setup(&cli, &cfg);
    if (a.batch)
        cfg.batch_size = a.batch;
    a.opts.name = consumer_name(&a, &cfg, name, sizeof(name));
    a.opts.metrics = &a.mopts;
    cli_install_signals(&stop);
    config_log(&cfg);
    if (cli_load_app(&cli, &cfg, &app) < 0)
        return 1;
    if (app_bind_at_start(&app, 0, &stop, &a.mopts, "consumer", &err) < 0 || app_watch_versions(&app, &restart, &err) < 0) {
        cli_print_error(cli.prog, &err);
        app_free(&app);
        return 1;
    }
    int rv = consume_run(&cfg, &app, &a.opts, &stop);
    app_free(&app);
    if (restart && rv == 0)
        app_restart_self();
    return rv == 0 ? 0 : 1;
}
