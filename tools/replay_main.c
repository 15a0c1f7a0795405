/*
 * replay_main.c - pgsync-replay: have the consumers process a range of the
 * change stream again. Either moves the consumer group's position back
 * (XGROUP SETID: everything from --from to the end is delivered again), or
 * copies the entries [--from, --to] to the end of the same stream as new
 * entries. Both are safe: every write is idempotent and versioned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "ops.h"
#include "rstate.h"
#include "rstream.h"
#include "strbuf.h"

static const char usage[] =
    "Usage: pgsync-replay --config FILE --from ID [--to ID] [--copy] [--dry-run]\n"
    "\n"
    "Makes the consumers process the change stream's entries from ID again.\n"
    "Without --to and --copy, moves the consumer group \"pgsync\" back to just\n"
    "before ID (XGROUP SETID): every entry from ID to the end of the stream is\n"
    "delivered again; entries still pending stay pending. With --to (or\n"
    "--copy), copies the entries from ID to --to (default: the last entry) to\n"
    "the end of the same stream as new entries, which every consumer group\n"
    "then processes. Re-processing is safe: writes are idempotent and carry\n"
    "the change's version, so nothing newer is overwritten.\n"
    "\n"
    "A consumer group that existed and is gone (Redis lost it; the consumers\n"
    "wait and say so, and never make it again themselves) is made again just\n"
    "before ID: choose the first entry the index may not reflect yet.\n"
    "\n"
    "IDs are stream entry ids (1712345678901-0) or milliseconds (1712345678901).\n"
    "\n"
    "Options:\n"
    "  -f, --from ID          first entry to process again (required)\n"
    "  -t, --to ID            last entry to copy (implies --copy)\n"
    "      --copy             copy the entries instead of moving the group back\n"
    "  -n, --dry-run          say how many entries would be touched; change nothing\n"
    "  -i, --index NAME       only this schema entry's stream (default: all)\n";

#define COPY_PAGE 500

struct replay_opts {
    const char *from, *to, *index;
    struct rstream_id from_id, to_id;
    int copy, dry_run;
};

/* Move the group back to just before --from. */
static int replay_setid(struct redis_conn *rc, const struct app_entry *ae,
                        const struct replay_opts *o, struct pgs_error *err)
{
    char target[RSTREAM_ID_LEN];
    struct rstream_id cur, prev;
    struct rstream_group g;
    int found;
    long long n;

    if (rstream_id_prev(&o->from_id, &prev) < 0)
        snprintf(target, sizeof(target), "0-0");
    else
        rstream_id_format(&prev, target, sizeof(target));
    /* a group that existed and is gone (the consumers alarm): made again, at the position asked */
    int gone = rstate_group_ensure(rc, ae->stream, ae->meta, RSTREAM_GROUP, err);
    if (gone < 0)
        return -1;
    if (gone) {
        if (rstream_count(rc, ae->stream, o->from, "+", &n, err) < 0)
            return -1;
        if (o->dry_run) {
            printf("%s: the consumer group \"%s\" is gone: would make it again at %s: %lld "
                   "entr%s would be delivered (dry run: nothing changed)\n",
                   ae->stream, RSTREAM_GROUP, target, n, n == 1 ? "y" : "ies");
            return 0;
        }
        if (rstream_group_create_at(rc, ae->stream, RSTREAM_GROUP, target, err) < 0 ||
            rstate_group_mark(rc, ae->stream, ae->meta, err) < 0)
            return -1;
        printf("%s: the consumer group \"%s\" was gone: made again at %s: %lld entr%s will be "
               "delivered%s\n",
               ae->stream, RSTREAM_GROUP, target, n, n == 1 ? "y" : "ies",
               n == 0 ? " (the stream holds none from there: if Redis lost them, run "
                        "pgsync --resync, or pgsync-verify --repair)"
                      : "");
        return 0;
    }
    if (rstream_group_find(rc, ae->stream, RSTREAM_GROUP, &g, &found, err) < 0)
        return -1;
    /* a group without a position counts as none: it reads the whole stream anyway */
    found = found && g.last_delivered_id[0];
    const char *pos = g.last_delivered_id;
    if (!found) {
        printf("%s: no consumer group \"%s\" yet: the first consumer will read the whole "
               "stream anyway; nothing to do\n",
               ae->stream, RSTREAM_GROUP);
        return 0;
    }
    if (rstream_id_parse(pos, &cur) < 0)
        cur.ms = cur.seq = 0;
    rstream_id_parse(target, &prev);
    /* moving forward would skip entries nobody has read: never */
    if (rstream_id_cmp(&prev, &cur) >= 0) {
        printf("%s: group \"%s\" has not read past %s yet (it is at %s): those entries will be "
               "delivered anyway; nothing to do\n",
               ae->stream, RSTREAM_GROUP, o->from, pos);
        return 0;
    }
    if (rstream_count(rc, ae->stream, o->from, pos, &n, err) < 0)
        return -1;
    if (o->dry_run) {
        printf("%s: would move group \"%s\" back from %s to %s (XGROUP SETID): %lld "
               "entr%s would be delivered again (dry run: nothing changed)\n",
               ae->stream, RSTREAM_GROUP, pos, target, n, n == 1 ? "y" : "ies");
        return 0;
    }
    if (rstream_group_setid(rc, ae->stream, RSTREAM_GROUP, target, err) < 0)
        return -1;
    printf("%s: moved group \"%s\" back from %s to %s: %lld entr%s will be delivered again "
           "(pending entries stay pending)\n",
           ae->stream, RSTREAM_GROUP, pos, target, n, n == 1 ? "y" : "ies");
    return 0;
}

/* What the pages of a copy share. */
struct copy_state {
    struct redis_conn *rc;
    const char *stream;
    char first_new[RSTREAM_ID_LEN], last_new[RSTREAM_ID_LEN];
    long long copied;
    struct pgs_error *err;
};

/* XADD a page of the range as new entries, in one pipeline. */
static int copy_page(const struct rstream_entry *entries, int n, void *arg)
{
    struct copy_state *st = arg;
    if (rstream_copy(st->rc, st->stream, entries, n, st->first_new, st->last_new,
                     sizeof(st->first_new), st->err) < 0)
        return -1;
    st->copied += n;
    return 0;
}

/* Copy [--from, --to] to the end of the stream as new entries. */
static int replay_copy(struct redis_conn *rc, const struct app_entry *ae,
                       const struct replay_opts *o, struct pgs_error *err)
{
    char end[64];
    struct copy_state st = {.rc = rc, .stream = ae->stream, .err = err};
    long long n;

    /* stop at today's last entry: the copies land after it and must not be copied again */
    if (rstream_last_id(rc, ae->stream, end, sizeof(end), err) < 0)
        return -1;
    if (end[0] == '\0') {
        printf("%s: the stream is empty: nothing to copy\n", ae->stream);
        return 0;
    }
    if (o->to) {
        struct rstream_id last;
        if (rstream_id_parse(end, &last) == 0 && rstream_id_cmp(&o->to_id, &last) < 0)
            snprintf(end, sizeof(end), "%s", o->to);
    }
    if (rstream_count(rc, ae->stream, o->from, end, &n, err) < 0)
        return -1;
    if (o->dry_run || n == 0) {
        printf("%s: %s %lld entr%s from %s to %s as new entries%s\n", ae->stream,
               n == 0 ? "nothing to copy:" : "would copy", n, n == 1 ? "y" : "ies", o->from, end,
               o->dry_run ? " (dry run: nothing changed)" : "");
        return 0;
    }
    if (rstream_range(rc, ae->stream, o->from, end, COPY_PAGE, copy_page, &st, err) < 0) {
        /* a failed XRANGE copied nothing of its page; a failed copy_page may have some */
        fprintf(stderr, "pgsync-replay: %s: %lld entries were copied before the failure\n",
                ae->stream, st.copied);
        return -1;
    }
    printf("%s: copied %lld entr%s (%s to %s) as new entries %s to %s\n", ae->stream, st.copied,
           st.copied == 1 ? "y" : "ies", o->from, end, st.first_new, st.last_new);
    return 0;
}

/* A stream id or milliseconds for option "name", or exit 2. */
static void replay_parse_id(const char *prog, const char *name, const char *arg,
                            struct rstream_id *id)
{
    if (rstream_id_parse(arg, id) < 0)
        cli_die_usage(prog, "%s needs a stream id (1712345678901-0) or milliseconds, not \"%s\"",
                      name, arg);
}

static int replay_option(void *ctx, const char *prog, int opt, const char *arg)
{
    struct replay_opts *o = ctx;

    switch (opt) {
    case 'f':
        o->from = arg;
        replay_parse_id(prog, "--from", arg, &o->from_id);
        return 0;
    case 't':
        o->to = arg;
        replay_parse_id(prog, "--to", arg, &o->to_id);
        /* "ms" alone ends at the last entry of that millisecond, as in XRANGE */
        if (strchr(arg, '-') == NULL)
            o->to_id.seq = UINT64_MAX;
        return 0;
    case 'C':
        o->copy = 1;
        return 0;
    case 'n':
        o->dry_run = 1;
        return 0;
    case 'i':
        o->index = arg;
        return 0;
    default:
        return -1;
    }
}

/* Replay the stream of every entry --index selects; 0, 1 on a failure, 2 when none matched. */
static int replay_entries(struct redis_conn *rc, struct app *app, const struct replay_opts *o,
                          const char *config_path)
{
    struct pgs_error err;
    int rv = 0, matched = 0;

    for (int i = 0; i < app->nentries && rv == 0; i++) {
        struct app_entry *ae = &app->entries[i];
        if (o->index && strcmp(o->index, ae->e->index) != 0)
            continue;
        matched++;
        if ((o->copy || o->to ? replay_copy(rc, ae, o, &err) : replay_setid(rc, ae, o, &err)) < 0) {
            cli_print_error("pgsync-replay", &err);
            rv = 1;
        }
    }
    if (o->index && matched == 0) {
        fprintf(stderr, "pgsync-replay: index \"%s\" is not in %s\n", o->index, config_path);
        rv = 2;
    }
    return rv;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"from", required_argument, NULL, 'f'},
                                             {"to", required_argument, NULL, 't'},
                                             {"copy", no_argument, NULL, 'C'},
                                             {"dry-run", no_argument, NULL, 'n'},
                                             {"index", required_argument, NULL, 'i'},
                                             {NULL, 0, NULL, 0}};
    struct cli_common cli = {.prog = "pgsync-replay", .log_level = "warn"};
    struct replay_opts o = {0};
    struct cli_spec spec = {"c:hVf:t:ni:", longopts, usage, replay_option, &o, 0};
    struct config cfg;
    struct app app;
    struct pgs_error err;
    int rv;

    cli_parse(&cli, &spec, argc, argv);
    cli_common_finish(&cli, 1);
    if (o.from == NULL)
        cli_die_usage(cli.prog, "--from ID is required");
    if (o.to && rstream_id_cmp(&o.to_id, &o.from_id) < 0)
        cli_die_usage(cli.prog, "--to %s is before --from %s", o.to, o.from);
    if (o.to && !o.copy)
        printf("--to given: copying the entries (moving the group back cannot stop at --to)\n");

    if ((rv = ops_load(cli.prog, cli.config, &cfg, &app)) != 0)
        return rv;
    struct redis_conn *rc = redis_connect(&cfg, &err);
    if (rc == NULL) {
        cli_print_error(cli.prog, &err);
        app_free(&app);
        return 1;
    }
    rv = replay_entries(rc, &app, &o, cli.config);
    redis_close(rc);
    app_free(&app);
    return rv;
}
