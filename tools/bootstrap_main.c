/*
 * bootstrap_main.c - pgsync-bootstrap: set up (or, with --teardown, remove)
 * the database side of every schema entry: publication, replica
 * identities, replication slot. Safe to run again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "bootstrap.h"
#include "cli.h"
#include "config.h"
#include "log.h"

static const char usage[] =
    "Usage: pgsync-bootstrap --config FILE [--mode logical|notify] [--teardown]\n"
    "                        [--recreate-slot]\n"
    "\n"
    "Checks the database (wal_level, replication slots, the role's rights)\n"
    "and creates what the schema entries need: one logical replication slot\n"
    "(pgoutput) and one publication per database, pgsync_<database>, holding\n"
    "the union of its entries' tables (an entry's missing tables are added),\n"
    "and REPLICA IDENTITY FULL on tables whose changes must carry join\n"
    "columns. Idempotent.\n"
    "With --mode notify (servers without logical decoding): per entry an outbox\n"
    "table pgsync.\"<outbox>\", its trigger function and a row and a TRUNCATE trigger\n"
    "per table. Steps the role may not take are printed as one SQL script for\n"
    "a superuser or the tables' owner; run it, then run this again.\n"
    "\n"
    "Options:\n"
    "  -m, --mode MODE        logical (default) or notify; also PGSYNC_MODE\n"
    "  -t, --teardown         remove everything of both modes instead\n"
    "  -p PORT, -u ROLE       as --port, --user (PGSync's short flags)\n"
    "      --recreate-slot    drop a slot PostgreSQL invalidated (wal_status lost,\n"
    "                         after max_slot_wal_keep_size) or whose publication\n"
    "                         was dropped, and make both again; refused for a\n"
    "                         usable slot. Run pgsync --resync right after: the\n"
    "                         changes in between reached no stream\n";

/* The command line. */
struct bootstrap_args {
    const char *mode;
    int teardown;
    int recreate_slot;
};

static int bootstrap_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct bootstrap_args *a = ctx;

    if (opt == 't')
        a->teardown = 1;
    else if (opt == 'R')
        a->recreate_slot = 1;
    else if (opt == 'm')
        a->mode = arg;
    else if (opt == 2001)
        cli_die_usage(prog, "--no-create (-nc) does not apply: pgsync-bootstrap creates only what "
                            "is missing; run it as a role that may not create, and it prints the "
                            "SQL for a DBA instead");
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"teardown", no_argument, NULL, 't'},
                                             {"recreate-slot", no_argument, NULL, 'R'},
                                             {"mode", required_argument, NULL, 'm'},
                                             {"no-create", no_argument, NULL, 2001},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-bootstrap"};
    struct config cfg;
    struct pgs_error err;
    struct app app;
    char buf[1600];
    struct bootstrap_args a = {0};
    struct cli_spec spec = {"c:hVtm:u:p:v", longopts, usage, bootstrap_option, &a, 0};
    int rv = 0;

    /* PGSync spells --no-create "-nc", which getopt would read as -n -c */
    static char no_create[] = "--no-create";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-nc"))
            argv[i] = no_create;
    cli_parse(&cli, &spec, argc, argv);
    cli_setup(&cli, &cfg);
    if (a.mode && config_set_mode(&cfg, "--mode", a.mode, &err) < 0)
        cli_die_usage(cli.prog, "%s", err.msg);
    if (cli_load_app(&cli, &cfg, &app) < 0)
        return 1;
    /* the slot and publication of every active version of each index */
    if (app_bind_once(&app, 0, &err) < 0) {
        fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
        app_free(&app);
        return 1;
    }
    for (int i = 0; i < app.nentries; i++) {
        struct app_entry *ae = &app.entries[i];
        /* the entries of one database share its slot: recreated once, then joined */
        int again = 0;
        for (int k = 0; k < i; k++)
            again |= !strcmp(app.entries[k].slot, ae->slot);
        int r = a.teardown                  ? bootstrap_teardown(&cfg, ae, NULL, &err)
                : a.recreate_slot && !again ? bootstrap_recreate_slot(&cfg, ae, &err)
                                            : bootstrap_setup(&cfg, ae, NULL, &err);
        if (r < 0) {
            fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
            rv = 1;
        } else if (a.recreate_slot) {
            printf("%s: recreated database=%s index=%s slot=%s publication=%s: now run "
                   "pgsync --config %s --resync (the changes since the old slot's position "
                   "reached no stream)\n",
                   cli.prog, ae->e->database, ae->e->index, ae->slot, ae->publication,
                   cli.config);
        } else if (a.teardown || cfg.mode == CAPTURE_LOGICAL) {
            printf("%s: %s database=%s index=%s slot=%s publication=%s\n", cli.prog,
                   a.teardown ? "removed" : "ready", ae->e->database, ae->e->index, ae->slot,
                   ae->publication);
        } else {
            printf("%s: ready database=%s index=%s mode=notify outbox=pgsync.%s channel=%s\n",
                   cli.prog, ae->e->database, ae->e->index, ae->outbox, ae->outbox);
        }
    }
    app_free(&app);
    return rv;
}
