/* cli.c - the command-line parts every binary shares. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
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
                        "  -v, --verbose          --log-level debug\n"
                        "      --host HOST        PostgreSQL host (overrides PG_HOST, and PG_URL's)\n"
                        "      --port PORT        PostgreSQL port (overrides PG_PORT, and PG_URL's)\n"
                        "  -u, --user ROLE        PostgreSQL role (overrides PG_USER, and PG_URL's)\n"
                        "      --password         ask for the PostgreSQL password (from the\n"
                        "                         terminal, or a line of stdin)\n"
                        "      --sslmode MODE     overrides PG_SSLMODE\n"
                        "      --sslrootcert FILE overrides PG_SSLROOTCERT\n"
                        "      --ignore-plugins   go on without the schema's \"plugins\" (Python\n"
                        "                         classes that cannot run here; refused otherwise)\n"
                        "  (the schema file may also come from SCHEMA, as in PGSync)\n"
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
    case 1003:
        c->pg_host = arg;
        return 1;
    case 'p':
    case 1004:
        c->pg_port = arg;
        return 1;
    case 'u':
    case 1005:
        c->pg_user = arg;
        return 1;
    case 1006:
        c->ask_password = 1;
        return 1;
    case 1007:
        c->pg_sslmode = arg;
        return 1;
    case 1008:
        c->pg_sslrootcert = arg;
        return 1;
    case 'v':
        c->verbose = 1;
        return 1;
    case 1009:
        c->ignore_plugins = 1;
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
    if (c->verbose && !c->log_level)
        level = LOG_DEBUG;
    pgs_log_init(c->prog, (enum pgs_loglevel)level, json);
    /* PGSync reads the schema file's path from SCHEMA too */
    if (c->config == NULL && getenv("SCHEMA") && *getenv("SCHEMA"))
        c->config = getenv("SCHEMA");
    if (need_config && c->config == NULL)
        cli_die_usage(c->prog, "--config FILE is required");
    if (c->config && access(c->config, R_OK) != 0)
        cli_die_usage(c->prog, "cannot read the schema file \"%s\"", c->config);
}

/*
 * --password: from the terminal without echo, as PGSync prompts; without a
 * terminal, one line of stdin (a pipe from a secret store).
 */
static int cli_read_password(const char *prog, char *out, size_t len)
{
    FILE *in = fopen("/dev/tty", "r+");
    struct termios saved, quiet;
    int tty = in != NULL && tcgetattr(fileno(in), &saved) == 0;

    if (!tty) {
        if (in)
            fclose(in);
        in = stdin;
    } else {
        fprintf(in, "%s: PostgreSQL password: ", prog);
        fflush(in);
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(in), TCSAFLUSH, &quiet);
    }
    char *got = fgets(out, (int)len, in);
    if (tty) {
        tcsetattr(fileno(in), TCSAFLUSH, &saved);
        fputc('\n', in);
        fclose(in);
    }
    if (got == NULL)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

void cli_load_config(const struct cli_common *c, struct config *cfg)
{
    struct pgs_error err;
    char buf[1400];

    if (config_load(cfg, &err) < 0) {
        fprintf(stderr, "%s: %s\n", c->prog, pgs_error_str(&err, buf, sizeof(buf)));
        exit(2);
    }
    if (c->pg_host)
        cfg->pg_host = c->pg_host, cfg->pg_cli_override |= CONFIG_CLI_HOST;
    if (c->pg_port)
        cfg->pg_port = c->pg_port, cfg->pg_cli_override |= CONFIG_CLI_PORT;
    if (c->pg_user)
        cfg->pg_user = c->pg_user, cfg->pg_cli_override |= CONFIG_CLI_USER;
    if (c->pg_sslmode)
        cfg->pg_sslmode = c->pg_sslmode;
    if (c->pg_sslrootcert)
        cfg->pg_sslrootcert = c->pg_sslrootcert;
    if (c->ignore_plugins)
        cfg->ignore_plugins = 1;
    if (c->ask_password) {
        static char pw[256];
        if (cli_read_password(c->prog, pw, sizeof(pw)) < 0)
            cli_die_usage(c->prog, "--password: no password could be read");
        cfg->pg_password = pw;
    }
    config_warn_pgsync();
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
