/*
 * verify_main.c - pgsync-verify: rebuilds every document from PostgreSQL and
 * compares it with the index (missing, extra, different, with a per-field
 * diff); with --repair, fixes the drift with versioned writes. Exit 0: no
 * drift, 1: drift, 2: could not verify (usage, schema, connection).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "es.h"
#include "log.h"
#include "verify.h"

static const char usage[] =
    "Usage: pgsync-verify --config FILE [--repair] [--sample N] [--json] [--max-diffs N]\n"
    "\n"
    "Rebuilds the documents of every schema entry from PostgreSQL with the\n"
    "document query and compares them with the index, by _id: documents\n"
    "missing from the index, extra in it, and different (compared as JSON:\n"
    "key order does not matter, 1 equals 1.0). Both sides are streamed in _id\n"
    "order, so memory stays bounded whatever the size of the index; the index\n"
    "side is sorted by `sort` in $TMPDIR. Index copies written after the\n"
    "database snapshot (by a running consumer) are not judged.\n"
    "\n"
    "Options:\n"
    "      --repair           re-index missing and different documents, delete\n"
    "                         extra ones; every write is versioned, so a newer\n"
    "                         copy written meanwhile is left alone\n"
    "      --sample N         check only N random root documents (a realtime\n"
    "                         _mget): faster, but cannot find extra documents\n"
    "      --json             print one JSON summary on stdout:\n"
    "                         {\"entries\":[{\"index\":..,\"checked\":N,\"missing\":N,\n"
    "                         \"extra\":N,\"different\":N,\"repaired\":N,...}]}\n"
    "      --max-diffs N      drifted documents to show in detail [5]\n"
    "  -q, --quiet            no progress lines on stderr\n"
    "\n"
    "Exit status: 0 no drift, 1 drift found (also when --repair fixed it),\n"
    "2 usage, schema or connection error.\n";

static long long parse_count(const char *prog, const char *opt, const char *arg, long long min)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > INT_MAX)
        cli_die_usage(prog, "%s must be a whole number from %lld to %d, not \"%s\"", opt, min,
                      INT_MAX, arg);
    return v;
}

static void print_entry(const struct verify_result *res, const struct verify_opts *opts)
{
    struct strbuf line;
    size_t i;
    json_t *d;
    long long drift = res->counts.missing + res->counts.extra + res->counts.different;

    sb_init(&line);
    json_array_foreach(res->diffs, i, d) {
        const char *kind = json_string_value(json_object_get(d, "kind"));
        const char *id = json_string_value(json_object_get(d, "id"));
        json_t *fields = json_object_get(d, "fields"), *f;
        size_t k;
        if (fields)
            printf("%-9s %s (database != index)\n", kind, id);
        else
            printf("%-9s %s\n", kind, id);
        json_array_foreach(fields, k, f) {
            sb_reset(&line);
            verify_diff_line(f, &line);
            printf("    %s\n", line.buf);
        }
        json_t *more = json_object_get(d, "more_fields");
        if (more)
            printf("    ... and %lld more fields\n", (long long)json_integer_value(more));
    }
    sb_free(&line);

    printf("%s: %s%lld documents checked: ", res->index, res->sampled ? "sample of " : "",
           res->counts.checked);
    if (drift == 0)
        printf("no drift");
    else if (res->sampled)
        printf("%lld missing, %lld different", res->counts.missing, res->counts.different);
    else
        printf("%lld missing, %lld extra, %lld different", res->counts.missing, res->counts.extra,
               res->counts.different);
    if (res->counts.newer)
        printf(", %lld changed during the check (not judged)", res->counts.newer);
    if (drift > (long long)json_array_size(res->diffs))
        printf(" (first %zu shown, see --max-diffs)", json_array_size(res->diffs));
    if (res->sampled)
        printf(" (a sample cannot find extra documents)");
    printf(" in %.1fs\n", res->seconds);
    if (opts->repair && drift > 0)
        printf("%s: repaired %lld documents (%lld left alone: changed since the snapshot, %lld "
               "refused by the engine)\n",
               res->index, res->repaired, res->repair_conflicts, res->repair_failed);
}

static json_t *entry_json(const struct verify_result *res)
{
    json_t *o = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:O}", "index", res->index,
        "checked", (json_int_t)res->counts.checked, "missing", (json_int_t)res->counts.missing,
        "extra", (json_int_t)res->counts.extra, "different", (json_int_t)res->counts.different,
        "repaired", (json_int_t)res->repaired, "sampled", res->sampled, "changed_during_check",
        (json_int_t)res->counts.newer, "repair_conflicts", (json_int_t)res->repair_conflicts,
        "repair_failed", (json_int_t)res->repair_failed, "milliseconds",
        (json_int_t)(res->seconds * 1000), "diffs", res->diffs ? res->diffs : json_array());
    return o;
}

/* The command line. */
struct verify_args {
    struct verify_opts opts;
    int json;
};

static int verify_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct verify_args *a = ctx;

    switch (opt) {
    case 'r':
        a->opts.repair = 1;
        return 0;
    case 's':
        a->opts.sample = parse_count(prog, "--sample", arg, 1);
        return 0;
    case 'j':
        a->json = 1;
        return 0;
    case 'm':
        a->opts.max_diffs = (int)parse_count(prog, "--max-diffs", arg, 0);
        return 0;
    case 'q':
        a->opts.progress = 0;
        return 0;
    default:
        return -1;
    }
}

/* The app's versions bound and a checked engine client; NULL when either failed (said). */
static struct es_client *verify_connect(struct app *app, const struct config *cfg)
{
    struct pgs_error err;
    struct es_client *es;

    if (app_bind_once(app, 0, &err) < 0) {
        cli_print_error("pgsync-verify", &err);
        return NULL;
    }
    es = app_es_client(cfg, &err);
    if (es != NULL && app_check_engine(es, &err) < 0) {
        es_client_free(es);
        es = NULL;
    }
    if (es == NULL)
        cli_print_error("pgsync-verify", &err);
    return es;
}

/*
 * Verify every entry, printing each (or, with --json, one summary at the
 * end). Returns the exit status: 2 when an entry could not be verified or
 * the run was stopped, 1 on drift, else 0.
 */
static int verify_all(const struct config *cfg, struct app *app, struct es_client *es,
                      const struct verify_args *a)
{
    struct pgs_error err;
    char buf[1600];
    int errors = 0, drift = 0;
    const volatile sig_atomic_t *stop = a->opts.stop;

    json_t *entries = json_array();
    for (int i = 0; i < app->nentries && !*stop; i++) {
        struct verify_result res;
        const char *index = app->entries[i].e->index;
        if (verify_entry(cfg, &app->entries[i], es, &a->opts, &res, &err) < 0) {
            pgs_error_str(&err, buf, sizeof(buf));
            fprintf(stderr, "pgsync-verify: index \"%s\": %s\n", index, buf);
            if (a->json)
                json_array_append_new(entries,
                                      json_pack("{s:s, s:s}", "index", index, "error", buf));
            errors++;
        } else {
            drift |= verify_result_drift(&res);
            if (a->json)
                json_array_append_new(entries, entry_json(&res));
            else
                print_entry(&res, &a->opts);
        }
        verify_result_free(&res);
        fflush(stdout);
    }
    if (a->json) {
        json_t *out = json_pack("{s:o, s:b}", "entries", entries, "drift", drift);
        char *text = json_dumps(out, JSON_COMPACT);
        puts(text ? text : "{}");
        free(text);
        json_decref(out);
    } else {
        json_decref(entries);
    }
    if (errors || *stop)
        return 2;
    return drift ? 1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"repair", no_argument, NULL, 'r'},
                                             {"sample", required_argument, NULL, 's'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"max-diffs", required_argument, NULL, 'm'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-verify"};
    struct verify_args a = {.opts = {.max_diffs = 5, .progress = 1}};
    struct cli_spec spec = {"c:hVq", longopts, usage, verify_option, &a, 0};
    static volatile sig_atomic_t stop;
    struct config cfg;
    struct app app;

    cli_parse(&cli, &spec, argc, argv);
    cli_setup(&cli, &cfg);
    cli_install_signals(&stop);
    a.opts.stop = &stop;
    if (cli_load_app(&cli, &cfg, &app) < 0)
        return 2;
    struct es_client *es = verify_connect(&app, &cfg);
    if (es == NULL) {
        app_free(&app);
        return 2;
    }
    int rv = verify_all(&cfg, &app, es, &a);
    es_client_free(es);
    app_free(&app);
    return rv;
}
