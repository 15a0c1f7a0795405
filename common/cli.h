/*
 * cli.h - what every binary's command line shares: --config, --help,
 * --version, --log-level, --log-format, and turning a bad argument into a
 * one-line reason and exit code 2.
 */
#ifndef PGS_CLI_H
#define PGS_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdio.h>

/* PGSync's command-line overrides of the PostgreSQL settings, and --verbose, for every binary */
#define CLI_COMMON_LONGOPTS                                                                        \
    {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},                    \
        {"version", no_argument, NULL, 'V'}, {"log-level", required_argument, NULL, 1001},         \
        {"log-format", required_argument, NULL, 1002}, {"host", required_argument, NULL, 1003},    \
        {"port", required_argument, NULL, 1004}, {"user", required_argument, NULL, 1005},          \
        {"password", no_argument, NULL, 1006}, {"sslmode", required_argument, NULL, 1007},         \
        {"sslrootcert", required_argument, NULL, 1008}, {"verbose", no_argument, NULL, 'v'},      \
        {"ignore-plugins", no_argument, NULL, 1009}

struct cli_common {
    const char *prog;
    const char *config;
    const char *log_level;
    const char *log_format;
    /* PostgreSQL overrides (PGSync's --host ...): NULL when not given */
    const char *pg_host, *pg_port, *pg_user, *pg_sslmode, *pg_sslrootcert;
    int ask_password; /* --password: prompt for it */
    int verbose;      /* -v: --log-level debug */
    int ignore_plugins; /* --ignore-plugins */
};

/*
 * Handle a common option "opt"; returns 1 when handled, 0 when not a
 * common option. --help and --version print and exit 0 (only main calls this).
 */
int cli_common_option(struct cli_common *c, int opt, const char *arg, const char *usage);
/* After parsing: require --config, set up logging. Exits 2 with a reason on a bad value. */
void cli_common_finish(struct cli_common *c, int need_config);
/* Read the settings from the environment; a bad value exits 2 with the reason. */
struct config;
void cli_load_config(const struct cli_common *c, struct config *cfg);
/*
 * What a binary adds to the common options: getopt_long's "shortopts" and
 * "longopts" (CLI_COMMON_LONGOPTS among them), its --help text, and "take",
 * called with "ctx" for every option that is not a common one: 0 when the
 * option is the binary's, -1 when not (a bad argument).
 */
struct cli_spec {
    const char *shortopts;
    const struct option *longopts;
    const char *usage;
    int (*take)(void *ctx, const char *prog, int opt, const char *arg);
    void *ctx;
    int operands; /* arguments may follow the options (else each is refused) */
};
/*
 * Parse "argv" by "spec": a bad argument, or an operand where "spec" takes
 * none, exits 2 with the reason. Returns the index of the first operand.
 */
int cli_parse(struct cli_common *c, const struct cli_spec *spec, int argc, char **argv);
/* The tail of every daemon's parse: cli_common_finish(c, 1), then cli_load_config(). */
void cli_setup(struct cli_common *c, struct config *cfg);
/* app_load(), or print why (as cli_print_error) and return -1; app_free() is the caller's. */
struct app;
int cli_load_app(const struct cli_common *c, const struct config *cfg, struct app *app);
/* Print "prog: error: detail" on stderr, with no secret in it. */
struct pgs_error;
void cli_print_error(const char *prog, const struct pgs_error *err);
/* Exit 2 with "prog: reason" and a pointer to --help. */
void cli_die_usage(const char *prog, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* SIGTERM and SIGINT set *flag; SIGPIPE is ignored. */
void cli_install_signals(volatile sig_atomic_t *flag);

#endif
