/*
 * slot_main.c - pgsync-slot: the replication slot of each schema entry (is
 * a producer attached, how much WAL it holds back, its confirmed position)
 * and, with --drop --yes, removing it: never while a producer reads it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "ops.h"

static const char usage[] =
    "Usage: pgsync-slot --config FILE [--json] [--drop --yes]\n"
    "\n"
    "Shows the logical replication slot of each schema entry (one per\n"
    "database, shared by its entries): whether a\n"
    "producer is attached (active, active_pid), restart_lsn and\n"
    "confirmed_flush_lsn, the WAL it keeps on the server (retained bytes)\n"
    "and wal_status. With --drop --yes, drops it; a slot in use (a producer\n"
    "is running) is refused. After a drop, changes are no longer captured:\n"
    "run pgsync --config FILE to create it again and reload the documents.\n"
    "\n"
    "Options:\n"
    "  -j, --json             the state as JSON\n"
    "      --drop             drop the slot (needs --yes)\n"
    "  -y, --yes              confirm --drop\n"
    "  -i, --index NAME       only this schema entry (default: all)\n";

static void print_slot(const struct ops_slot *s, const char *name, const char *database)
{
    if (!s->exists) {
        printf("slot %s (database %s): does not exist (run pgsync-bootstrap --config FILE)\n", name,
               database);
        return;
    }
    printf("slot %s (database %s)\n", name, database);
    if (s->active)
        printf("  active               yes (pid %d)\n", s->active_pid);
    else
        printf("  active               no\n");
    printf("  restart_lsn          %s\n", *s->restart_lsn ? s->restart_lsn : "-");
    printf("  confirmed_flush_lsn  %s\n", *s->confirmed_flush_lsn ? s->confirmed_flush_lsn : "-");
    if (s->retained_bytes >= 0)
        printf("  retained WAL         %lld bytes\n", s->retained_bytes);
    else
        printf("  retained WAL         unknown\n");
    printf("  wal_status           %s\n", *s->wal_status ? s->wal_status : "-");
}

static int drop_slot(PGconn *conn, const char *name, const struct ops_slot *s)
{
    const char *params[1] = {name};

    if (!s->exists) {
        printf("slot %s does not exist: nothing to drop\n", name);
        return 0;
    }
    if (s->active) {
        fprintf(stderr,
                "pgsync-slot: slot %s is active: a producer (pid %d) is reading it; stop the "
                "producer first, then drop it\n",
                name, s->active_pid);
        return 1;
    }
    PGresult *res =
        PQexecParams(conn, "SELECT pg_drop_replication_slot($1)", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* a producer may have attached since we looked */
        fprintf(stderr, "pgsync-slot: cannot drop slot %s: %s", name, PQerrorMessage(conn));
        PQclear(res);
        return 1;
    }
    PQclear(res);
    printf("slot %s dropped: changes are no longer captured; run pgsync --config FILE to create "
           "it again and reload\n",
           name);
    return 0;
}

/* The command line. */
struct slot_args {
    const char *index;
    int json, drop, yes;
};

static int slot_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct slot_args *a = ctx;

    (void)prog;
    switch (opt) {
    case 'j':
        a->json = 1;
        return 0;
    case 'D':
        a->drop = 1;
        return 0;
    case 'y':
        a->yes = 1;
        return 0;
    case 'i':
        a->index = arg;
        return 0;
    default:
        return -1;
    }
}

/* Show or drop the slot of "ae" (its JSON into "all"); 0, or 1 when it failed. */
static int slot_entry(const struct slot_args *a, const struct config *cfg,
                      const struct app_entry *ae, json_t *all)
{
    struct pgs_error err;
    struct ops_slot s;
    int rv = 0;

    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-slot", &err);
    if (conn == NULL || ops_slot_query(conn, ae->slot, &s, &err) < 0) {
        cli_print_error("pgsync-slot", &err);
        PQfinish(conn);
        return 1;
    }
    if (a->drop) {
        if (drop_slot(conn, ae->slot, &s) != 0)
            rv = 1;
    } else if (a->json) {
        json_t *o = ops_slot_json(ae->slot, &s);
        json_object_set_new(o, "index", json_string(ae->e->index));
        json_array_append_new(all, o);
    } else {
        print_slot(&s, ae->slot, ae->e->database);
    }
    PQfinish(conn);
    return rv;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"json", no_argument, NULL, 'j'},
                                             {"drop", no_argument, NULL, 'D'},
                                             {"yes", no_argument, NULL, 'y'},
                                             {"index", required_argument, NULL, 'i'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-slot", .log_level = "warn"};
    struct slot_args a = {0};
    struct cli_spec spec = {"c:hVjyi:", longopts, usage, slot_option, &a, 0};
    struct config cfg;
    struct app app;
    int rv, matched = 0;

    cli_parse(&cli, &spec, argc, argv);
    if (a.drop && !a.yes)
        cli_die_usage(cli.prog, "--drop removes the slot and stops change capture: add --yes");
    if (a.yes && !a.drop)
        cli_die_usage(cli.prog, "--yes goes with --drop only");
    cli_common_finish(&cli, 1);

    if ((rv = ops_load(cli.prog, cli.config, &cfg, &app)) != 0)
        return rv;
    json_t *all = json_array();
    for (int i = 0; i < app.nentries; i++) {
        if (a.index && strcmp(a.index, app.entries[i].e->index) != 0)
            continue;
        matched++;
        if (slot_entry(&a, &cfg, &app.entries[i], all) != 0)
            rv = 1;
    }
    if (a.index && matched == 0) {
        fprintf(stderr, "%s: index \"%s\" is not in %s\n", cli.prog, a.index, cli.config);
        rv = 2;
    } else if (a.json && !a.drop) {
        char *text = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(text);
        free(text);
    }
    json_decref(all);
    app_free(&app);
    return rv;
}
