/* rstream.c - the change streams over the connection of redis.c (see rstream.h). */
#include "rstream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"

/* ---- entry ids ---- */

int rstream_id_parse(const char *s, struct rstream_id *out)
{
    const char *dash;

    if (s == NULL)
        return -1;
    dash = strchr(s, '-');
    out->seq = 0;
    if (dash == NULL)
        return pgs_parse_u64(s, strlen(s), &out->ms);
    if (pgs_parse_u64(s, (size_t)(dash - s), &out->ms) < 0)
        return -1;
    return pgs_parse_u64(dash + 1, strlen(dash + 1), &out->seq);
}

int rstream_id_cmp(const struct rstream_id *a, const struct rstream_id *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

const char *rstream_id_format(const struct rstream_id *id, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIu64 "-%" PRIu64, id->ms, id->seq);
    return buf;
}

int rstream_id_prev(const struct rstream_id *id, struct rstream_id *out)
{
    if (id->seq > 0) {
        out->ms = id->ms;
        out->seq = id->seq - 1;
    } else if (id->ms > 0) {
        out->ms = id->ms - 1;
        out->seq = UINT64_MAX;
    } else {
        return -1;
    }
    return 0;
}

int rstream_id_next(const struct rstream_id *id, struct rstream_id *out)
{
    if (id->seq < UINT64_MAX) {
        out->ms = id->ms;
        out->seq = id->seq + 1;
    } else if (id->ms < UINT64_MAX) {
        out->ms = id->ms + 1;
        out->seq = 0;
    } else {
        return -1;
    }
    return 0;
}

/* ---- writing and reading changes ---- */

/* the most fields an XADD takes without a heap copy of its arguments */
#define ADD_STACK_ARGS (3 + 2 * 16)

int rstream_add_queue(struct redis_conn *rc, const char *stream, const char **fv,
                      const size_t *fvlen, int nfv, struct pgs_error *err)
{
    const char *stack_argv[ADD_STACK_ARGS];
    size_t stack_lens[ADD_STACK_ARGS];
    const char **argv = stack_argv;
    size_t *lens = stack_lens;
    int rv = 0;

    if (3 + nfv > ADD_STACK_ARGS) {
        argv = xcalloc((size_t)nfv + 3, sizeof(char *));
        lens = xcalloc((size_t)nfv + 3, sizeof(size_t));
    }
    argv[0] = "XADD", lens[0] = 4;
    argv[1] = stream, lens[1] = strlen(stream);
    argv[2] = "*", lens[2] = 1;
    for (int k = 0; k < nfv; k++) {
        argv[3 + k] = fv[k];
        lens[3 + k] = fvlen[k];
    }
    if (redis_pipeline_append(rc, 3 + nfv, argv, lens) < 0) {
        redis_reply_check(rc, NULL, "XADD", err);
        rv = -1;
    }
    if (argv != stack_argv) {
        free(argv);
        free(lens);
    }
    return rv;
}

int rstream_add_replies(struct redis_conn *rc, int n, struct pgs_error *err)
{
    int failed = 0;

    /* read every reply, even after an error, so the connection stays in step */
    for (int i = 0; i < n; i++) {
        redisReply *r = redis_pipeline_reply(rc, "XADD", err);
        if (r == NULL)
            return -1; /* the connection is unusable now */
        if (!failed && redis_reply_check(rc, r, "XADD", err) < 0)
            failed = 1;
        freeReplyObject(r);
    }
    return failed ? -1 : 0;
}

int rstream_add(struct redis_conn *rc, const char *stream, const struct change *recs, int n,
                struct pgs_error *err)
{
    /* the room the record codec was always given, one more than its most */
    const char *fv[CHANGE_MAX_FIELDS + 1];
    size_t fvlen[CHANGE_MAX_FIELDS + 1];
    struct change_scratch scratch;

    for (int i = 0; i < n; i++) {
        int nf = change_to_fields(&recs[i], &scratch, fv, fvlen);
        int rv = rstream_add_queue(rc, stream, fv, fvlen, nf, err);
        change_scratch_free(&scratch);
        if (rv < 0)
            return -1;
    }
    return rstream_add_replies(rc, n, err);
}

int rstream_group_create(struct redis_conn *rc, const char *stream, const char *group,
                         struct pgs_error *err)
{
    return rstream_group_create_at(rc, stream, group, "0", err);
}

int rstream_group_create_at(struct redis_conn *rc, const char *stream, const char *group,
                            const char *id, struct pgs_error *err)
{
    struct pgs_error gerr;
    redisReply *r =
        redis_command(rc, &gerr, "XGROUP CREATE %s %s %s MKSTREAM", stream, group, id);
    if (r == NULL) {
        if (redis_error_is(&gerr, "BUSYGROUP"))
            return 0;
        *err = gerr;
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

int rstream_group_setid(struct redis_conn *rc, const char *stream, const char *group,
                        const char *id, struct pgs_error *err)
{
    redisReply *r = redis_command(rc, err, "XGROUP SETID %s %s %s", stream, group, id);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

void rstream_batch_free(struct rstream_batch *b)
{
    for (int i = 0; i < b->n; i++)
        change_free(&b->recs[i]);
    free(b->recs);
    for (int i = 0; i < b->nitems; i++)
        load_item_free(&b->items[i]);
    free(b->items);
    for (int i = 0; i < b->nbad; i++) {
        free(b->bad_ids[i]);
        free(b->bad_why[i]);
    }
    free(b->bad_ids);
    free(b->bad_why);
    memset(b, 0, sizeof(*b));
}

int rstream_batch_size(const struct rstream_batch *b)
{
    return b->n + b->nitems + b->nbad;
}

/* "id" did not decode ("why"): acknowledged and dead-lettered by the caller. */
static void add_bad(struct rstream_batch *out, const char *id, const char *why)
{
    out->bad_ids = xrealloc(out->bad_ids, sizeof(char *) * (size_t)(out->nbad + 1));
    out->bad_why = xrealloc(out->bad_why, sizeof(char *) * (size_t)(out->nbad + 1));
    out->bad_ids[out->nbad] = xstrdup(id);
    out->bad_why[out->nbad++] = xstrdup(why);
}

/* One entry's fields, decoded as a load item or a change record, into "out". */
static void add_decoded(struct rstream_batch *out, const char *id, char **fields, size_t *lens,
                        int n)
{
    struct pgs_error perr;

    if (load_item_is(fields, lens, n)) {
        struct load_item it;
        if (load_item_from_fields(fields, lens, n, &it, &perr) < 0) {
            add_bad(out, id, perr.msg);
            return;
        }
        it.entry_id = xstrdup(id);
        if (out->nitems == out->items_cap) {
            out->items_cap = out->items_cap ? out->items_cap * 2 : 16;
            out->items = xrealloc(out->items, sizeof(struct load_item) * (size_t)out->items_cap);
        }
        out->items[out->nitems++] = it;
        return;
    }
    struct change c;
    if (change_from_fields(fields, lens, n, &c, &perr) < 0) {
        add_bad(out, id, perr.msg);
        return;
    }
    c.entry_id = xstrdup(id);
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 64;
        out->recs = xrealloc(out->recs, sizeof(struct change) * (size_t)out->cap);
    }
    out->recs[out->n++] = c;
}

/* Append the entries of a reply's [id, [field, value, ...]] list to "out". */
static void add_entries(redisReply *list, struct rstream_batch *out)
{
    for (size_t i = 0; i < list->elements; i++) {
        redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const char *id = e->element[0]->str;
        redisReply *fv = e->element[1];
        char **fields;
        size_t *lens;

        if (fv->type != REDIS_REPLY_ARRAY) {
            /* an entry deleted while pending comes back with nil fields */
            add_bad(out, id, "entry deleted from the stream");
            continue;
        }
        fields = xcalloc(fv->elements + 1, sizeof(char *));
        lens = xcalloc(fv->elements + 1, sizeof(size_t));
        for (size_t k = 0; k < fv->elements; k++) {
            fields[k] = fv->element[k]->str ? fv->element[k]->str : (char *)"";
            lens[k] = fv->element[k]->str ? fv->element[k]->len : 0;
        }
        add_decoded(out, id, fields, lens, (int)fv->elements);
        free(fields);
        free(lens);
    }
}

static int read_group(struct redis_conn *rc, const char *stream, const char *group,
                      const char *consumer, int count, int block_ms, const char *from,
                      struct rstream_batch *out, struct pgs_error *err)
{
    redisReply *r;

    if (block_ms >= 0)
        r = redis_command(rc, err, "XREADGROUP GROUP %s %s COUNT %d BLOCK %d STREAMS %s %s", group,
                          consumer, count, block_ms, stream, from);
    else
        r = redis_command(rc, err, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s %s", group,
                          consumer, count, stream, from);
    if (r == NULL) {
        /*
         * The group went away (Redis lost it). Never made again here: its
         * position is lost, and a new one would skip or re-read blindly.
         */
        if (redis_error_is(err, "NOGROUP")) {
            char detail[sizeof(err->detail)];
            snprintf(detail, sizeof(detail), "%s", err->msg);
            pgs_error_set(err, PGS_ERR_TRANSIENT,
                          "the consumer group \"%s\" of stream %s " RSTREAM_GROUP_GONE
                          " (Redis lost it); " RSTREAM_GROUP_RECOVERY,
                          group, stream);
            pgs_error_detail(err, "%s", detail);
        }
        return -1;
    }
    /* nil on time-out; else [[stream, [entries]]] */
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        redisReply *s = r->element[0];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 &&
            s->element[1]->type == REDIS_REPLY_ARRAY)
            add_entries(s->element[1], out);
    }
    freeReplyObject(r);
    return 0;
}

int rstream_read(struct redis_conn *rc, const char *stream, const char *group, const char *consumer,
                 int count, int block_ms, struct rstream_batch *out, struct pgs_error *err)
{
    return read_group(rc, stream, group, consumer, count, block_ms, ">", out, err);
}

int rstream_read_own_pending(struct redis_conn *rc, const char *stream, const char *group,
                             const char *consumer, int count, struct rstream_batch *out,
                             struct pgs_error *err)
{
    return read_group(rc, stream, group, consumer, count, -1, "0", out, err);
}

int rstream_autoclaim(struct redis_conn *rc, const char *stream, const char *group,
                      const char *consumer, int min_idle_ms, char *cursor, size_t cursor_len,
                      int count, struct rstream_batch *out, struct pgs_error *err)
{
    redisReply *r = redis_command(rc, err, "XAUTOCLAIM %s %s %s %d %s COUNT %d", stream, group,
                                  consumer, min_idle_ms, cursor, count);
    if (r == NULL)
        return -1;
    /* [next-cursor, [entries], [deleted ids] (7.0)] */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        if (r->element[0]->type == REDIS_REPLY_STRING)
            snprintf(cursor, cursor_len, "%s", r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_ARRAY)
            add_entries(r->element[1], out);
    }
    freeReplyObject(r);
    return 0;
}

int rstream_ack(struct redis_conn *rc, const char *stream, const char *group, char **ids, int n,
                struct pgs_error *err)
{
    if (n == 0)
        return 0;
    const char **argv = xcalloc((size_t)n + 3, sizeof(char *));
    size_t *lens = xcalloc((size_t)n + 3, sizeof(size_t));
    argv[0] = "XACK", lens[0] = 4;
    argv[1] = stream, lens[1] = strlen(stream);
    argv[2] = group, lens[2] = strlen(group);
    for (int i = 0; i < n; i++)
        argv[3 + i] = ids[i], lens[3 + i] = strlen(ids[i]);
    redisReply *r = redis_command_argv(rc, err, n + 3, argv, lens);
    free(argv);
    free(lens);
    freeReplyObject(r);
    return r == NULL ? -1 : 0;
}

/* ---- XINFO and XPENDING ---- */

static void copy_str(char *out, size_t len, const char *s)
{
    snprintf(out, len, "%s", s ? s : "");
}

/* The id of an XINFO STREAM first-entry/last-entry ([id, fields] or nil). */
static const char *entry_id(const redisReply *e)
{
    if (e && e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
        e->element[0]->type == REDIS_REPLY_STRING)
        return e->element[0]->str;
    return NULL;
}

int rstream_info(struct redis_conn *rc, const char *stream, struct rstream_info *out,
                 struct pgs_error *err)
{
    memset(out, 0, sizeof(*out));
    redisReply *r = redis_command(rc, err, "XINFO STREAM %s", stream);
    if (r == NULL) {
        /* a stream that does not exist yet is empty, not an error */
        if (redis_error_is(err, "no such key")) {
            pgs_error_clear(err);
            return 0;
        }
        return -1;
    }
    out->exists = 1;
    out->length = redis_map_int(r, "length", 0);
    copy_str(out->first_id, sizeof(out->first_id), entry_id(redis_map_get(r, "first-entry")));
    copy_str(out->last_id, sizeof(out->last_id), entry_id(redis_map_get(r, "last-entry")));
    copy_str(out->last_generated_id, sizeof(out->last_generated_id),
             redis_map_str(r, "last-generated-id"));
    freeReplyObject(r);
    return 0;
}

static void group_from_map(const redisReply *m, struct rstream_group *g)
{
    copy_str(g->name, sizeof(g->name), redis_map_str(m, "name"));
    copy_str(g->last_delivered_id, sizeof(g->last_delivered_id),
             redis_map_str(m, "last-delivered-id"));
    g->pending = redis_map_int(m, "pending", 0);
    g->lag = redis_map_int(m, "lag", -1);
}

/* XINFO GROUPS; with "missing_ok", a stream that does not exist has no groups. */
static int read_groups(struct redis_conn *rc, const char *stream, int missing_ok,
                       struct rstream_group **groups, int *n, struct pgs_error *err)
{
    *groups = NULL;
    *n = 0;
    redisReply *r = redis_command(rc, err, "XINFO GROUPS %s", stream);
    if (r == NULL) {
        if (missing_ok && redis_error_is(err, "no such key")) {
            pgs_error_clear(err);
            return 0;
        }
        return -1;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        *groups = xcalloc(r->elements, sizeof(**groups));
        for (size_t i = 0; i < r->elements; i++)
            group_from_map(r->element[i], &(*groups)[(*n)++]);
    }
    freeReplyObject(r);
    return 0;
}

int rstream_groups(struct redis_conn *rc, const char *stream, struct rstream_group **groups, int *n,
                   struct pgs_error *err)
{
    return read_groups(rc, stream, 0, groups, n, err);
}

int rstream_group_find(struct redis_conn *rc, const char *stream, const char *name,
                       struct rstream_group *out, int *found, struct pgs_error *err)
{
    struct rstream_group *groups;
    int n;

    *found = 0;
    memset(out, 0, sizeof(*out));
    out->lag = -1;
    if (rstream_groups(rc, stream, &groups, &n, err) < 0)
        return -1;
    for (int i = 0; i < n && !*found; i++)
        if (!strcmp(groups[i].name, name)) {
            *out = groups[i];
            *found = 1;
        }
    free(groups);
    return 0;
}

int rstream_consumers(struct redis_conn *rc, const char *stream, const char *group,
                      struct rstream_consumer **consumers, int *n, struct pgs_error *err)
{
    *consumers = NULL;
    *n = 0;
    redisReply *r = redis_command(rc, err, "XINFO CONSUMERS %s %s", stream, group);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        *consumers = xcalloc(r->elements, sizeof(**consumers));
        for (size_t i = 0; i < r->elements; i++) {
            struct rstream_consumer *c = &(*consumers)[(*n)++];
            copy_str(c->name, sizeof(c->name), redis_map_str(r->element[i], "name"));
            c->pending = redis_map_int(r->element[i], "pending", 0);
            c->idle_ms = redis_map_int(r->element[i], "idle", 0);
        }
    }
    freeReplyObject(r);
    return 0;
}

int rstream_pending_summary(struct redis_conn *rc, const char *stream, const char *group,
                            const char *consumer, struct rstream_pending *out,
                            struct pgs_error *err)
{
    memset(out, 0, sizeof(*out));
    redisReply *r = redis_command(rc, err, "XPENDING %s %s", stream, group);
    if (r == NULL)
        return -1;
    /* [count, min, max, [[consumer, count], ...]]; min and max nil when nothing is pending */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        if (r->element[0]->type == REDIS_REPLY_INTEGER)
            out->count = r->element[0]->integer;
        if (r->element[1]->type == REDIS_REPLY_STRING)
            copy_str(out->min_id, sizeof(out->min_id), r->element[1]->str);
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
        r->element[2]->type == REDIS_REPLY_STRING)
        copy_str(out->max_id, sizeof(out->max_id), r->element[2]->str);
    if (consumer && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 &&
        r->element[3]->type == REDIS_REPLY_ARRAY) {
        redisReply *list = r->element[3];
        for (size_t i = 0; i < list->elements; i++) {
            redisReply *e = list->element[i];
            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                e->element[0]->type == REDIS_REPLY_STRING && !strcmp(e->element[0]->str, consumer))
                out->consumer_count = e->element[1]->type == REDIS_REPLY_INTEGER
                                          ? e->element[1]->integer
                                          : atoll(e->element[1]->str ? e->element[1]->str : "0");
        }
    }
    freeReplyObject(r);
    return 0;
}

int rstream_pending_oldest(struct redis_conn *rc, const char *stream, const char *group,
                           const char *before, char *id, size_t idlen, long long *idle_ms,
                           int *found, struct pgs_error *err)
{
    redisReply *r;

    *found = 0;
    *idle_ms = -1;
    if (idlen)
        id[0] = '\0';
    if (before)
        r = redis_command(rc, err, "XPENDING %s %s - (%s 1", stream, group, before);
    else
        r = redis_command(rc, err, "XPENDING %s %s - + 1", stream, group);
    if (r == NULL)
        return -1;
    /* [[id, consumer, idle, deliveries]] */
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        *found = 1;
        const redisReply *e = r->element[0];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 3) {
            if (e->element[0]->type == REDIS_REPLY_STRING)
                copy_str(id, idlen, e->element[0]->str);
            if (e->element[2]->type == REDIS_REPLY_INTEGER)
                *idle_ms = e->element[2]->integer;
        }
    }
    freeReplyObject(r);
    return 0;
}

int rstream_keep_claims(struct redis_conn *rc, const char *stream, const char *group,
                        const char *consumer, int max, int *kept, struct pgs_error *err)
{
    char count[16];
    *kept = 0;
    snprintf(count, sizeof(count), "%d", max);
    const char *q[7] = {"XPENDING", stream, group, "-", "+", count, consumer};
    redisReply *r = redis_command_argv(rc, err, 7, q, NULL);
    if (r == NULL)
        return -1;
    /* [[id, consumer, idle, deliveries], ...] */
    int n = r->type == REDIS_REPLY_ARRAY ? (int)r->elements : 0;
    if (n == 0) {
        freeReplyObject(r);
        return 0;
    }
    const char *head[5] = {"XCLAIM", stream, group, consumer, "0"};
    const char **argv = xcalloc((size_t)n + 6, sizeof(char *));
    int argc = 5;
    memcpy(argv, head, sizeof(head));
    for (int i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
            e->element[0]->type == REDIS_REPLY_STRING)
            argv[argc++] = e->element[0]->str;
    }
    /* JUSTID: the idle time starts again, the delivery count stays (no redelivery) */
    argv[argc++] = "JUSTID";
    redisReply *c = argc > 6 ? redis_command_argv(rc, err, argc, argv, NULL) : NULL;
    int rv = argc > 6 && c == NULL ? -1 : 0;
    if (c != NULL && c->type == REDIS_REPLY_ARRAY)
        *kept = (int)c->elements;
    if (c != NULL)
        freeReplyObject(c);
    free(argv);
    freeReplyObject(r);
    return rv;
}

/* ---- trimming ---- */

int rstream_clock_ms(struct redis_conn *rc, uint64_t *now_ms, struct pgs_error *err)
{
    redisReply *r = redis_command(rc, err, "TIME");
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis TIME gave an unexpected reply");
        return -1;
    }
    *now_ms = strtoull(r->element[0]->str, NULL, 10) * 1000 +
              strtoull(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return 0;
}

int rstream_trim_acked(struct redis_conn *rc, const char *stream, long long retain_ms,
                       long long *trimmed, struct pgs_error *err)
{
    struct rstream_id min = {UINT64_MAX, UINT64_MAX}, id, next;
    struct rstream_group *groups;
    int n, ngroups = 0;
    uint64_t now_ms;
    char minid[RSTREAM_ID_LEN];

    *trimmed = 0;
    if (read_groups(rc, stream, 1, &groups, &n, err) < 0)
        return -1;
    for (int g = 0; g < n; g++) {
        struct rstream_pending p;
        if (groups[g].name[0] == '\0' || rstream_id_parse(groups[g].last_delivered_id, &id) < 0)
            continue;
        ngroups++;
        /* everything after the last delivered entry is still to be read */
        if (rstream_id_next(&id, &next) == 0 && rstream_id_cmp(&next, &min) < 0)
            min = next;
        /* and the oldest pending entry is still to be acknowledged */
        if (rstream_pending_summary(rc, stream, groups[g].name, NULL, &p, err) < 0) {
            free(groups);
            return -1;
        }
        if (rstream_id_parse(p.min_id, &id) == 0 && rstream_id_cmp(&id, &min) < 0)
            min = id;
    }
    free(groups);
    if (ngroups == 0 || min.ms == UINT64_MAX)
        return 0;
    /* keep the last "retain_ms" of history whatever was acknowledged */
    if (rstream_clock_ms(rc, &now_ms, err) < 0)
        return -1;
    uint64_t keep = retain_ms > 0 ? (uint64_t)retain_ms : 0;
    struct rstream_id horizon = {now_ms > keep ? now_ms - keep : 0, 0};
    if (rstream_id_cmp(&horizon, &min) < 0)
        min = horizon;
    rstream_id_format(&min, minid, sizeof(minid));
    redisReply *r = redis_command(rc, err, "XTRIM %s MINID %s", stream, minid);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER)
        *trimmed = r->integer;
    freeReplyObject(r);
    return 0;
}

/* ---- ranges ---- */

const char *rstream_entry_get(const struct rstream_entry *e, const char *name, size_t *len)
{
    for (int i = 0; i + 1 < e->nfv; i += 2)
        if (!strcmp(e->fv[i], name)) {
            if (len)
                *len = e->fvlen[i + 1];
            return e->fv[i + 1];
        }
    return NULL;
}

/*
 * The entries of one XRANGE page as rstream_entry values borrowing the
 * reply's strings; malformed ones are left out. *fvs is one array for all.
 */
static int page_entries(const redisReply *page, struct rstream_entry **entries, const char ***fvs,
                        size_t **fvlens)
{
    size_t total = 0;
    int n = 0;

    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *e = page->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[1]->type == REDIS_REPLY_ARRAY)
            total += e->element[1]->elements;
    }
    *entries = xcalloc(page->elements + 1, sizeof(**entries));
    *fvs = xcalloc(total + 1, sizeof(char *));
    *fvlens = xcalloc(total + 1, sizeof(size_t));
    total = 0;
    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *e = page->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *fv = e->element[1];
        struct rstream_entry *out = &(*entries)[n++];
        out->id = e->element[0]->str;
        out->nfv = (int)fv->elements;
        out->fv = *fvs + total;
        out->fvlen = *fvlens + total;
        for (size_t k = 0; k < fv->elements; k++, total++) {
            (*fvs)[total] = fv->element[k]->str ? fv->element[k]->str : "";
            (*fvlens)[total] = fv->element[k]->str ? fv->element[k]->len : 0;
        }
    }
    return n;
}

/* The id of the last element of a page, or NULL. */
static const char *page_last_id(const redisReply *page)
{
    return page->elements ? entry_id(page->element[page->elements - 1]) : NULL;
}

/* The pages of a range; "fn" NULL only counts them into *total. */
static int range_walk(struct redis_conn *rc, const char *stream, const char *start, const char *end,
                      int count, rstream_page_fn fn, void *arg, long long *total,
                      struct pgs_error *err)
{
    const char *from = start;
    char next[RSTREAM_ID_LEN + 8];

    for (;;) {
        redisReply *r =
            redis_command(rc, err, "XRANGE %s %s %s COUNT %d", stream, from, end, count);
        if (r == NULL)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            return 0;
        }
        if (total)
            *total += (long long)r->elements;
        if (fn) {
            struct rstream_entry *entries;
            const char **fvs;
            size_t *fvlens;
            int n = page_entries(r, &entries, &fvs, &fvlens);
            int rv = n > 0 ? fn(entries, n, arg) : 0;
            free(entries);
            free(fvs);
            free(fvlens);
            if (rv < 0) {
                freeReplyObject(r);
                return -1;
            }
        }
        const char *last = page_last_id(r);
        int more = r->elements == (size_t)count && last != NULL;
        if (more) {
            snprintf(next, sizeof(next), "(%s", last);
            from = next;
        }
        freeReplyObject(r);
        if (!more)
            return 0;
    }
}

int rstream_range(struct redis_conn *rc, const char *stream, const char *start, const char *end,
                  int count, rstream_page_fn fn, void *arg, struct pgs_error *err)
{
    return range_walk(rc, stream, start, end, count, fn, arg, NULL, err);
}

#define COUNT_PAGE 1000

int rstream_count(struct redis_conn *rc, const char *stream, const char *start, const char *end,
                  long long *n, struct pgs_error *err)
{
    long long total = 0;
    if (range_walk(rc, stream, start, end, COUNT_PAGE, NULL, NULL, &total, err) < 0)
        return -1;
    *n = total;
    return 0;
}

int rstream_first_id(struct redis_conn *rc, const char *stream, const char *start, char *id,
                     size_t len, struct pgs_error *err)
{
    redisReply *r = redis_command(rc, err, "XRANGE %s %s + COUNT 1", stream, start);
    if (r == NULL)
        return -1;
    copy_str(id, len, r->type == REDIS_REPLY_ARRAY ? page_last_id(r) : NULL);
    freeReplyObject(r);
    return 0;
}

int rstream_last_id(struct redis_conn *rc, const char *stream, char *id, size_t len,
                    struct pgs_error *err)
{
    redisReply *r = redis_command(rc, err, "XREVRANGE %s + - COUNT 1", stream);
    if (r == NULL)
        return -1;
    copy_str(id, len, r->type == REDIS_REPLY_ARRAY ? page_last_id(r) : NULL);
    freeReplyObject(r);
    return 0;
}

int rstream_copy(struct redis_conn *rc, const char *stream, const struct rstream_entry *entries,
                 int n, char *first_new, char *last_new, size_t idlen, struct pgs_error *err)
{
    int failed = 0;

    for (int i = 0; i < n; i++) {
        const struct rstream_entry *e = &entries[i];
        const char **argv = xcalloc((size_t)e->nfv + 3, sizeof(char *));
        size_t *lens = xcalloc((size_t)e->nfv + 3, sizeof(size_t));
        argv[0] = "XADD", lens[0] = 4;
        argv[1] = stream, lens[1] = strlen(stream);
        argv[2] = "*", lens[2] = 1;
        for (int k = 0; k < e->nfv; k++) {
            argv[3 + k] = e->fv[k];
            lens[3 + k] = e->fvlen[k];
        }
        redis_pipeline_append(rc, e->nfv + 3, argv, lens);
        free(argv);
        free(lens);
    }
    /* read every reply, even after an error, so the connection stays in step */
    for (int i = 0; i < n; i++) {
        redisReply *r = redis_pipeline_reply(rc, "XADD", err);
        if (r == NULL) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis XADD to %s failed", stream);
            pgs_error_detail(err, "%s", redis_errstr(rc));
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

int rstream_length(struct redis_conn *rc, const char *stream, long long *n, struct pgs_error *err)
{
    redisReply *r = redis_command(rc, err, "XLEN %s", stream);
    if (r == NULL)
        return -1;
    *n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return 0;
}

int rstream_delete_entry(struct redis_conn *rc, const char *stream, const char *id,
                         struct pgs_error *err)
{
    redisReply *r = redis_command(rc, err, "XDEL %s %s", stream, id);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}
