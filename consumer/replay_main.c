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
    struct ops_sid from_id, to_id;
    int copy, dry_run;
};

/* The group's last-delivered id into "out"; *found = 0 when there is no such group. */
static int group_position(redisContext *rc, const char *stream, char *out, size_t len, int *found,
                          struct pgs_error *err)
{
    redisReply *r = rstream_command(rc, err, "XINFO GROUPS %s", stream);
    if (r == NULL)
        return -1;
    *found = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const char *name = ops_reply_str(r->element[i], "name");
        const char *pos = ops_reply_str(r->element[i], "last-delivered-id");
        if (name && pos && !strcmp(name, RSTREAM_GROUP)) {
            snprintf(out, len, "%s", pos);
            *found = 1;
        }
    }
    freeReplyObject(r);
    return 0;
}

/* Move the group back to just before --from. */
static int replay_setid(redisContext *rc, const struct app_entry *ae, const struct replay_opts *o,
                        struct pgs_error *err)
{
    char pos[64], target[64];
    struct ops_sid cur, prev;
    int found;
    long long n;

    if (group_position(rc, ae->stream, pos, sizeof(pos), &found, err) < 0)
        return -1;
    if (!found) {
        printf("%s: no consumer group \"%s\" yet: the first consumer will read the whole "
               "stream anyway; nothing to do\n",
               ae->stream, RSTREAM_GROUP);
        return 0;
    }
    if (ops_sid_prev(&o->from_id, &prev) < 0)
        snprintf(target, sizeof(target), "0-0");
    else
        ops_sid_format(&prev, target, sizeof(target));
    if (ops_sid_parse(pos, &cur) < 0)
        cur.ms = cur.seq = 0;
    ops_sid_parse(target, &prev);
    /* moving forward would skip entries nobody has read: never */
    if (ops_sid_cmp(&prev, &cur) >= 0) {
        printf("%s: group \"%s\" has not read past %s yet (it is at %s): those entries will be "
               "delivered anyway; nothing to do\n",
               ae->stream, RSTREAM_GROUP, o->from, pos);
        return 0;
    }
    if (ops_stream_count(rc, ae->stream, o->from, pos, &n, err) < 0)
        return -1;
    if (o->dry_run) {
        printf("%s: would move group \"%s\" back from %s to %s (XGROUP SETID): %lld "
               "entr%s would be delivered again (dry run: nothing changed)\n",
               ae->stream, RSTREAM_GROUP, pos, target, n, n == 1 ? "y" : "ies");
        return 0;
    }
    redisReply *r =
        rstream_command(rc, err, "XGROUP SETID %s %s %s", ae->stream, RSTREAM_GROUP, target);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    printf("%s: moved group \"%s\" back from %s to %s: %lld entr%s will be delivered again "
           "(pending entries stay pending)\n",
           ae->stream, RSTREAM_GROUP, pos, target, n, n == 1 ? "y" : "ies");
    return 0;
}

/* XADD a page of XRANGE entries ([id, [field, value...]]...) in one pipeline. */
static int copy_page(redisContext *rc, const char *stream, const redisReply *page, char *first_new,
                     char *last_new, size_t idlen, struct pgs_error *err)
{
    int sent = 0, failed = 0;

    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *e = page->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *fv = e->element[1];
        const char **argv = xcalloc(fv->elements + 3, sizeof(char *));
        size_t *lens = xcalloc(fv->elements + 3, sizeof(size_t));
        argv[0] = "XADD", lens[0] = 4;
        argv[1] = stream, lens[1] = strlen(stream);
        argv[2] = "*", lens[2] = 1;
        for (size_t k = 0; k < fv->elements; k++) {
            argv[3 + k] = fv->element[k]->str ? fv->element[k]->str : "";
            lens[3 + k] = fv->element[k]->str ? fv->element[k]->len : 0;
        }
        redisAppendCommandArgv(rc, (int)fv->elements + 3, argv, lens);
        free(argv);
        free(lens);
        sent++;
    }
    /* read every reply, even after an error, so the connection stays in step */
    for (int i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis XADD to %s failed", stream);
            pgs_error_detail(err, "%s", rc->errstr);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && !failed) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis XADD to %s failed", stream);
            pgs_error_detail(err, "%s", r->str);
            failed = 1;
        } else if (r->type == REDIS_REPLY_STRING) {
            if (!*first_new)
                snprintf(first_new, idlen, "%s", r->str);
            snprintf(last_new, idlen, "%s", r->str);
        }
        freeReplyObject(r);
    }
    return failed ? -1 : 0;
}

/* Copy [--from, --to] to the end of the stream as new entries. */
static int replay_copy(redisContext *rc, const struct app_entry *ae, const struct replay_opts *o,
                       struct pgs_error *err)
{
    char end[64], from[80], first_new[64] = "", last_new[64] = "";
    long long n, copied = 0;

    /* stop at today's last entry: the copies land after it and must not be copied again */
    redisReply *r = rstream_command(rc, err, "XREVRANGE %s + - COUNT 1", ae->stream);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        freeReplyObject(r);
        printf("%s: the stream is empty: nothing to copy\n", ae->stream);
        return 0;
    }
    snprintf(end, sizeof(end), "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    if (o->to) {
        struct ops_sid last;
        if (ops_sid_parse(end, &last) == 0 && ops_sid_cmp(&o->to_id, &last) < 0)
            snprintf(end, sizeof(end), "%s", o->to);
    }
    if (ops_stream_count(rc, ae->stream, o->from, end, &n, err) < 0)
        return -1;
    if (o->dry_run || n == 0) {
        printf("%s: %s %lld entr%s from %s to %s as new entries%s\n", ae->stream,
               n == 0 ? "nothing to copy:" : "would copy", n, n == 1 ? "y" : "ies", o->from, end,
               o->dry_run ? " (dry run: nothing changed)" : "");
        return 0;
    }
    snprintf(from, sizeof(from), "%s", o->from);
    for (;;) {
        r = rstream_command(rc, err, "XRANGE %s %s %s COUNT %d", ae->stream, from, end, COPY_PAGE);
        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            break;
        }
        if (copy_page(rc, ae->stream, r, first_new, last_new, sizeof(first_new), err) < 0) {
            freeReplyObject(r);
            fprintf(stderr, "pgsync-replay: %s: %lld entries were copied before the failure\n",
                    ae->stream, copied);
            return -1;
        }
        copied += (long long)r->elements;
        const redisReply *last = r->element[r->elements - 1];
        int more = r->elements == COPY_PAGE;
        if (more)
            snprintf(from, sizeof(from), "(%s", last->element[0]->str);
        freeReplyObject(r);
        if (!more)
            break;
    }
    printf("%s: copied %lld entr%s (%s to %s) as new entries %s to %s\n", ae->stream, copied,
           copied == 1 ? "y" : "ies", o->from, end, first_new, last_new);
    return 0;
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
    struct config cfg;
    struct app app;
    struct pgs_error err;
    char buf[1600];
    int opt, rv = 0, matched = 0;

    while ((opt = getopt_long(argc, argv, "c:hVf:t:ni:", longopts, NULL)) != -1) {
        if (cli_common_option(&cli, opt, optarg, usage))
            continue;
        switch (opt) {
        case 'f':
            o.from = optarg;
            if (ops_sid_parse(optarg, &o.from_id) < 0)
                cli_die_usage(cli.prog,
                              "--from needs a stream id (1712345678901-0) or "
                              "milliseconds, not \"%s\"",
                              optarg);
            break;
        case 't':
            o.to = optarg;
            if (ops_sid_parse(optarg, &o.to_id) < 0)
                cli_die_usage(cli.prog,
                              "--to needs a stream id (1712345678901-0) or "
                              "milliseconds, not \"%s\"",
                              optarg);
            /* "ms" alone ends at the last entry of that millisecond, as in XRANGE */
            if (strchr(optarg, '-') == NULL)
                o.to_id.seq = UINT64_MAX;
            break;
        case 'C':
            o.copy = 1;
            break;
        case 'n':
            o.dry_run = 1;
            break;
        case 'i':
            o.index = optarg;
            break;
        default:
            cli_die_usage(cli.prog, "bad argument");
        }
    }
    if (optind < argc)
        cli_die_usage(cli.prog, "unexpected argument \"%s\"", argv[optind]);
    cli_common_finish(&cli, 1);
    if (o.from == NULL)
        cli_die_usage(cli.prog, "--from ID is required");
    if (o.to && ops_sid_cmp(&o.to_id, &o.from_id) < 0)
        cli_die_usage(cli.prog, "--to %s is before --from %s", o.to, o.from);
    if (o.to && !o.copy)
        printf("--to given: copying the entries (moving the group back cannot stop at --to)\n");

    if ((rv = ops_load(cli.prog, cli.config, &cfg, &app)) != 0)
        return rv;
    redisContext *rc = rstream_connect(&cfg, &err);
    if (rc == NULL) {
        fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
        app_free(&app);
        return 1;
    }
    for (int i = 0; i < app.nentries && rv == 0; i++) {
        struct app_entry *ae = &app.entries[i];
        if (o.index && strcmp(o.index, ae->e->index) != 0)
            continue;
        matched++;
        if ((o.copy || o.to ? replay_copy(rc, ae, &o, &err) : replay_setid(rc, ae, &o, &err)) < 0) {
            fprintf(stderr, "%s: %s\n", cli.prog, pgs_error_str(&err, buf, sizeof(buf)));
            rv = 1;
        }
    }
    if (o.index && matched == 0) {
        fprintf(stderr, "%s: index \"%s\" is not in %s\n", cli.prog, o.index, cli.config);
        rv = 2;
    }
    redisFree(rc);
    app_free(&app);
    return rv;
}
