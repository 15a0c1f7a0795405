/* cli.c - the command-line parts every binary shares. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "error.h"
#include "log.h"

void cli_die_usage(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", prog);
    exit(2);
}

int cli_common_option(struct cli_common *c, int opt, const char *arg, const char *usage)
{
    switch (opt) {
    case 'c':
        c->config = arg;
        return 1;
    case 'h':
        fputs(usage, stdout);
        fprintf(stdout, "\nCommon options:\n"
                        "  -c, --config FILE      the schema file (PGSync's schema.json format)\n"
                        "      --log-level LEVEL  debug, info, warn or error [info]\n"
                        "      --log-format FMT   text or json [text]\n"
                        "  -h, --help             this help\n"
                        "  -V, --version          the version\n");
        config_print_help(stdout);
        exit(0);
    case 'V':
        printf("%s %s\n", c->prog, PGS_VERSION);
        exit(0);
    case 1001:
        c->log_level = arg;
        return 1;
    case 1002:
        c->log_format = arg;
        return 1;
    case '?':
        cli_die_usage(c->prog, "bad argument");
    default:
        return 0;
    }
}

int cli_parse(struct cli_common *c, const struct cli_spec *spec, int argc, char **argv)
{
    int opt;

    while ((opt = getopt_long(argc, argv, spec->shortopts, spec->longopts, NULL)) != -1) {
        if (cli_common_option(c, opt, optarg, spec->usage))
            continue;
        if (spec->take == NULL || spec->take(spec->ctx, c->prog, opt, optarg) < 0)
            cli_die_usage(c->prog, "bad argument");
    }
    if (!spec->operands && optind < argc)
        cli_die_usage(c->prog, "unexpected argument \"%s\"", argv[optind]);
    return optind;
}

void cli_common_finish(struct cli_common *c, int need_config)
{
    int level = LOG_INFO, json = 0;

    if (c->log_level) {
        level = pgs_log_parse_level(c->log_level);
        if (level < 0)
            cli_die_usage(c->prog, "--log-level must be debug, info, warn or error, not \"%s\"",
                          c->log_level);
    }
    if (c->log_format) {
        if (!strcmp(c->log_format, "json"))
            json = 1;
        else if (strcmp(c->log_format, "text") != 0)
            cli_die_usage(c->prog, "--log-format must be text or json, not \"%s\"", c->log_format);
    }
    pgs_log_init(c->prog, (enum pgs_loglevel)level, json);
    if (need_config && c->config == NULL)
        cli_die_usage(c->prog, "--config FILE is required");
    if (c->config && access(c->config, R_OK) != 0)
        cli_die_usage(c->prog, "cannot read the schema file \"%s\"", c->config);
}

void cli_load_config(const struct cli_common *c, struct config *cfg)
{
    struct pgs_error err;
    char buf[1400];

    if (config_load(cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", c->prog, pgs_error_str(&err, buf, sizeof(buf)));
        exit(2);
    }
}

void cli_setup(struct cli_common *c, struct config *cfg)
{
    cli_common_finish(c, 1);
    cli_load_config(c, cfg);
}

void cli_print_error(const char *prog, const struct pgs_error *err)
{
    char buf[1600];

    pgs_error_str(err, buf, sizeof(buf));
    fprintf(stderr, "%s: %s\n", prog, pgs_log_scrub(buf, sizeof(buf)));
}

int cli_load_app(const struct cli_common *c, const struct config *cfg, struct app *app)
{
    struct pgs_error err;

    if (app_load(app, c->config, cfg, &err) == 0)
        return 0;
    cli_print_error(c->prog, &err);
    return -1;
}

static volatile sig_atomic_t *stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag)
        *stop_flag = 1;
}

void cli_install_signals(volatile sig_atomic_t *flag)
{
    struct sigaction sa;
    stop_flag = flag;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
