/*
 * dlq_main.c - pgsync-dlq: the documents the search engine refused for good
 * (the dead-letter stream each consumer writes, see bulk_dead_letter).
 * Lists them, shows one in full, re-queues documents for re-indexing once
 * the cause is fixed, or deletes them all.
 *
 * A retry appends an update record of the root row to the change stream:
 * consumers then re-read the document from PostgreSQL, as for any change,
 * with the current WAL position as its version so that it wins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "app.h"
#include "change.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "ops.h"
#include "rstate.h"
#include "rstream.h"
#include "sqlgen.h"
#include "strbuf.h"

static const char usage[] =
    "Usage: pgsync-dlq --config FILE list [--json]\n"
    "       pgsync-dlq --config FILE show ID\n"
    "       pgsync-dlq --config FILE retry [ID...]\n"
    "       pgsync-dlq --config FILE purge --yes\n"
    "\n"
    "The dead letters: documents the search engine refused for good (a mapping\n"
    "conflict, a document too large, ...) and records that could not be read.\n"
    "\n"
    "  list                   one line per dead letter: id, time, index,\n"
    "                         document id, error and reason\n"
    "  show ID                one dead letter in full, as JSON\n"
    "  retry [ID...]          re-queue the documents for re-indexing (all of\n"
    "                         them without IDs) and delete the dead letters\n"
    "  purge --yes            delete every dead letter\n"
    "\n"
    "Options:\n"
    "  -j, --json             list as a JSON array\n"
    "  -y, --yes              confirm purge\n"
    "  -i, --index NAME       only this schema entry (default: all)\n";

struct dlq_opts {
    int json, yes;
    const char *index;
};

static const char *fmt_time(const char *ts, char *buf, size_t len)
{
    time_t t = (time_t)strtoll(ts, NULL, 10);
    struct tm tm;
    if (*ts == '\0' || gmtime_r(&t, &tm) == NULL)
        return "";
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* Called on a dead letter of "ae" (borrowed for the call); -1 stops the walk. */
typedef int (*dlq_fn)(const struct app_entry *ae, const struct rstate_dead_letter *d, void *arg);

struct dlq_walk {
    const struct app_entry *ae;
    dlq_fn fn;
    void *arg;
};

static int walk_one(const struct rstate_dead_letter *d, void *arg)
{
    struct dlq_walk *w = arg;
    return w->fn(w->ae, d, w->arg);
}

/* Call "fn" on every dead letter of "ae", oldest first; stops at its first -1. */
static int dlq_foreach(struct redis_conn *rc, const struct app_entry *ae, dlq_fn fn, void *arg,
                       struct pgs_error *err)
{
    struct dlq_walk w = {ae, fn, arg};
    return rstate_dlq_foreach(rc, ae->dlq, walk_one, &w, err);
}

/* --- list and show ------------------------------------------------------------ */

static json_t *dead_letter_json(const struct app_entry *ae, const struct rstate_dead_letter *d,
                                int with_doc)
{
    char when[64] = "";
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(d->entry));
    json_object_set_new(o, "time", json_string(fmt_time(d->ts, when, sizeof(when))));
    json_object_set_new(o, "ts", json_integer(strtoll(d->ts, NULL, 10)));
    json_object_set_new(o, "index", json_string(*d->index ? d->index : ae->e->index));
    json_object_set_new(o, "doc_id", json_string(d->id));
    json_object_set_new(o, "error", json_string(d->error));
    json_object_set_new(o, "reason", json_string(d->reason));
    json_object_set_new(o, "entries", json_string(d->entries));
    json_object_set_new(o, "stream", json_string(ae->dlq));
    if (with_doc) {
        json_t *parsed = NULL;
        if (d->doc) {
            parsed = json_loadb(d->doc, d->doclen, JSON_DECODE_ANY, NULL);
            if (parsed == NULL)
                parsed = json_stringn_nocheck(d->doc, d->doclen);
        }
        json_object_set_new(o, "doc", parsed ? parsed : json_null());
    }
    return o;
}

struct list_state {
    const struct dlq_opts *o;
    json_t *all;
    int n;
};

static int list_one(const struct app_entry *ae, const struct rstate_dead_letter *d, void *arg)
{
    struct list_state *st = arg;
    if (st->o->json) {
        json_array_append_new(st->all, dead_letter_json(ae, d, 0));
    } else {
        char when[64] = "";
        const char *reason = d->reason;
        int cut = strlen(reason) > 100;
        if (st->n == 0)
            printf("%-20s %-20s %-16s %-20s %-32s %s\n", "ID", "TIME", "INDEX", "DOC-ID", "ERROR",
                   "REASON");
        /* the table is for reading; show ID prints the whole reason */
        printf("%-20s %-20s %-16s %-20s %-32s %.*s%s\n", d->entry,
               fmt_time(d->ts, when, sizeof(when)), *d->index ? d->index : ae->e->index, d->id,
               d->error, cut ? 97 : 100, reason, cut ? "..." : "");
    }
    st->n++;
    return 0;
}

struct show_state {
    const char *want;
    json_t *found;
};

static int show_one(const struct app_entry *ae, const struct rstate_dead_letter *d, void *arg)
{
    struct show_state *st = arg;
    if (st->found == NULL && !strcmp(d->entry, st->want))
        st->found = dead_letter_json(ae, d, 1);
    return 0;
}

/* --- retry ---------------------------------------------------------------------- */

struct retry_state {
    struct redis_conn *rc;
    PGconn *pg;
    uint64_t lsn;
    char **ids; /* NULL: all */
    int nids;
    int *done; /* per id: found */
    int requeued, failed;
    struct pgs_error *err;
};

/* An update record of the root row "doc_id" (the _id: key columns joined with "|"). */
static int build_record(const struct app_entry *ae, const char *doc_id, uint64_t lsn,
                        struct change *c, char *why, size_t whylen)
{
    const struct schema_node *root = ae->e->root;
    char *copy = xstrdup(doc_id), *p = copy;
    json_t *newv = json_object();
    int k = 0;

    for (;; k++) {
        char *sep = strstr(p, SQLGEN_ID_SEP);
        if (sep)
            *sep = '\0';
        if (k < root->npk)
            json_object_set_new(newv, root->pk[k], json_string(p));
        if (sep == NULL)
            break;
        p = sep + strlen(SQLGEN_ID_SEP);
    }
    free(copy);
    if (k + 1 != root->npk) {
        snprintf(why, whylen,
                 "its document id \"%s\" has %d part%s, the primary key of %s.%s has %d", doc_id,
                 k + 1, k ? "s" : "", root->schema, root->table, root->npk);
        json_decref(newv);
        return -1;
    }
    memset(c, 0, sizeof(*c));
    c->op = CHANGE_UPDATE;
    c->schema = xstrdup(root->schema);
    c->table = xstrdup(root->table);
    c->lsn = lsn;
    c->newv = newv;
    return 0;
}

static int retry_one(const struct app_entry *ae, const struct rstate_dead_letter *d, void *arg)
{
    struct retry_state *st = arg;
    const char *doc_id = d->id;
    struct change c;
    char why[512];
    int want = st->ids == NULL;

    for (int i = 0; i < st->nids; i++)
        if (!strcmp(st->ids[i], d->entry))
            want = 1, st->done[i] = 1;
    if (!want)
        return 0;
    if (*doc_id == '\0') {
        printf("cannot retry %s: it names no document (error %s: %s); it stays\n", d->entry,
               d->error, d->reason);
        st->failed++;
        return 0;
    }
    if (build_record(ae, doc_id, st->lsn, &c, why, sizeof(why)) < 0) {
        printf("cannot retry %s: %s; it stays\n", d->entry, why);
        st->failed++;
        return 0;
    }
    int rv = rstream_add(st->rc, ae->stream, &c, 1, st->err);
    change_free(&c);
    if (rv < 0)
        return -1;
    /* only once the record is in the stream: a crash in between retries twice, harmlessly */
    if (rstate_dlq_delete(st->rc, ae->dlq, d->entry, st->err) < 0)
        return -1;
    printf("re-queued document %s of index %s (dead letter %s)\n", doc_id, ae->e->index, d->entry);
    st->requeued++;
    return 0;
}

static int count_one(const struct app_entry *ae, const struct rstate_dead_letter *d, void *arg)
{
    (void)ae, (void)d;
    ++*(long long *)arg;
    return 0;
}

/* --- main ----------------------------------------------------------------------- */

static int selected(const struct dlq_opts *o, const struct app_entry *ae)
{
    return o->index == NULL || !strcmp(o->index, ae->e->index);
}

static int fail(const char *prog, struct pgs_error *err)
{
    cli_print_error(prog, err);
    return 1;
}

static int cmd_list(struct redis_conn *rc, struct app *app, const struct dlq_opts *o,
                    struct pgs_error *err)
{
    struct list_state st = {o, json_array(), 0};
    for (int i = 0; i < app->nentries; i++)
        if (selected(o, &app->entries[i]) &&
            dlq_foreach(rc, &app->entries[i], list_one, &st, err) < 0) {
            json_decref(st.all);
            return fail("pgsync-dlq", err);
        }
    if (o->json) {
        char *text = json_dumps(st.all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(text);
        free(text);
    } else if (st.n == 0) {
        printf("no dead letters\n");
    }
    json_decref(st.all);
    return 0;
}

static int cmd_show(struct redis_conn *rc, struct app *app, const struct dlq_opts *o,
                    const char *id, struct pgs_error *err)
{
    struct show_state st = {id, NULL};
    for (int i = 0; i < app->nentries && st.found == NULL; i++) {
        struct app_entry *ae = &app->entries[i];
        if (!selected(o, ae))
            continue;
        struct dlq_walk w = {ae, show_one, &st};
        if (rstate_dlq_find(rc, ae->dlq, id, walk_one, &w, err) < 0)
            return fail("pgsync-dlq", err);
    }
    if (st.found == NULL) {
        fprintf(stderr, "pgsync-dlq: no dead letter %s (see pgsync-dlq list)\n", id);
        return 1;
    }
    char *text = json_dumps(st.found, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(text);
    free(text);
    json_decref(st.found);
    return 0;
}

static int cmd_retry(struct redis_conn *rc, struct app *app, const struct dlq_opts *o, char **ids,
                     int nids, struct pgs_error *err)
{
    struct retry_state st = {.rc = rc, .ids = nids ? ids : NULL, .nids = nids, .err = err};
    int rv = 0;

    st.done = xcalloc((size_t)nids + 1, sizeof(int));
    for (int i = 0; i < app->nentries && rv == 0; i++) {
        struct app_entry *ae = &app->entries[i];
        long long n = 0;
        if (!selected(o, ae))
            continue;
        if (dlq_foreach(rc, ae, count_one, &n, err) < 0) {
            rv = fail("pgsync-dlq", err);
            break;
        }
        if (n == 0)
            continue;
        /* the version of the retry: newer than any write the document has had */
        st.pg = config_pg_connect(app->cfg, ae->e->database, 0, "pgsync-dlq", err);
        if (st.pg == NULL || ops_wal_lsn(st.pg, &st.lsn, err) < 0 ||
            dlq_foreach(rc, ae, retry_one, &st, err) < 0)
            rv = fail("pgsync-dlq", err);
        PQfinish(st.pg);
        st.pg = NULL;
    }
    for (int i = 0; i < nids; i++) {
        if (!st.done[i]) {
            fprintf(stderr, "pgsync-dlq: no dead letter %s (see pgsync-dlq list)\n", ids[i]);
            st.failed++;
        }
    }
    free(st.done);
    if (rv == 0)
        printf("%d document%s re-queued%s", st.requeued, st.requeued == 1 ? "" : "s",
               st.failed ? "" : "\n");
    if (rv == 0 && st.failed)
        printf(", %d dead letter%s not retried\n", st.failed, st.failed == 1 ? "" : "s");
    return rv ? rv : (st.failed ? 1 : 0);
}

static int cmd_purge(struct redis_conn *rc, struct app *app, const struct dlq_opts *o,
                     struct pgs_error *err)
{
    long long total = 0;
    for (int i = 0; i < app->nentries; i++) {
        struct app_entry *ae = &app->entries[i];
        long long n = 0;
        if (!selected(o, ae))
            continue;
        if (dlq_foreach(rc, ae, count_one, &n, err) < 0)
            return fail("pgsync-dlq", err);
        if (o->yes && n > 0) {
            if (rstate_dlq_purge(rc, ae->dlq, err) < 0)
                return fail("pgsync-dlq", err);
        }
        total += n;
    }
    if (!o->yes) {
        fprintf(stderr, "pgsync-dlq: purge would delete %lld dead letter%s for good: add --yes\n",
                total, total == 1 ? "" : "s");
        return 2;
    }
    printf("deleted %lld dead letter%s\n", total, total == 1 ? "" : "s");
    return 0;
}

static int dlq_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct dlq_opts *o = ctx;

    (void)prog;
    switch (opt) {
    case 'j':
        o->json = 1;
        return 0;
    case 'y':
        o->yes = 1;
        return 0;
    case 'i':
        o->index = arg;
        return 0;
    default:
        return -1;
    }
}

/* The command and its "nargs" arguments at "args": each as its command wants, or exit 2. */
static void dlq_check_command(const char *prog, const char *cmd, char **args, int nargs,
                              const struct dlq_opts *o)
{
    if (!strcmp(cmd, "list") || !strcmp(cmd, "purge")) {
        if (nargs > 0)
            cli_die_usage(prog, "%s takes no argument, not \"%s\"", cmd, args[0]);
    } else if (!strcmp(cmd, "show")) {
        if (nargs != 1)
            cli_die_usage(prog, "show needs exactly one dead-letter ID");
    } else if (strcmp(cmd, "retry") != 0) {
        cli_die_usage(prog, "unknown command \"%s\": list, show, retry or purge", cmd);
    }
    for (int i = 0; i < nargs; i++) {
        struct rstream_id id;
        if (rstream_id_parse(args[i], &id) < 0 || strchr(args[i], '-') == NULL)
            cli_die_usage(prog, "\"%s\" is not a dead-letter ID (as 1712345678901-0)", args[i]);
    }
    if (o->yes && strcmp(cmd, "purge") != 0)
        cli_die_usage(prog, "--yes goes with purge only");
}

static int dlq_run(const char *cmd, char **args, int nargs, const struct config *cfg,
                   struct app *app, const struct dlq_opts *o)
{
    struct pgs_error err;
    int rv;

    struct redis_conn *rc = redis_connect(cfg, &err);
    if (rc == NULL)
        rv = fail("pgsync-dlq", &err);
    else if (!strcmp(cmd, "list"))
        rv = cmd_list(rc, app, o, &err);
    else if (!strcmp(cmd, "show"))
        rv = cmd_show(rc, app, o, args[0], &err);
    else if (!strcmp(cmd, "retry"))
        rv = cmd_retry(rc, app, o, args, nargs, &err);
    else
        rv = cmd_purge(rc, app, o, &err);
    redis_close(rc);
    return rv;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"json", no_argument, NULL, 'j'},
                                             {"yes", no_argument, NULL, 'y'},
                                             {"index", required_argument, NULL, 'i'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-dlq", .log_level = "warn"};
    struct dlq_opts o = {0};
    struct cli_spec spec = {"c:hVjyi:", longopts, usage, dlq_option, &o, 1};
    struct config cfg;
    struct app app;
    int rv;

    int first = cli_parse(&cli, &spec, argc, argv);
    if (first >= argc)
        cli_die_usage(cli.prog, "a command is required: list, show ID, retry [ID...] or purge");
    const char *cmd = argv[first];
    char **args = argv + first + 1;
    int nargs = argc - first - 1;
    dlq_check_command(cli.prog, cmd, args, nargs, &o);
    cli_common_finish(&cli, 1);

    if ((rv = ops_load(cli.prog, cli.config, &cfg, &app)) != 0)
        return rv;
    if (o.index) {
        int found = 0;
        for (int i = 0; i < app.nentries; i++)
            found |= selected(&o, &app.entries[i]);
        if (!found) {
            fprintf(stderr, "%s: index \"%s\" is not in %s\n", cli.prog, o.index, cli.config);
            app_free(&app);
            return 2;
        }
    }
    rv = dlq_run(cmd, args, nargs, &cfg, &app, &o);
    app_free(&app);
    return rv;
}
