/* rstream.c - Redis stream commands over a blocking hiredis context. */
#include "rstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "strbuf.h"

static int reply_error(redisContext *rc, redisReply *r, const char *what, struct pgs_error *err)
{
    if (r == NULL) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s failed", what);
        pgs_error_detail(err, "%s", rc->errstr[0] ? rc->errstr : "no reply");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "Redis %s failed", what);
        pgs_error_detail(err, "%s", r->str);
        /* an out-of-memory Redis recovers when consumers catch up: retry */
        if (strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0)
            err->kind = PGS_ERR_FATAL;
        return -1;
    }
    return 0;
}

redisContext *rstream_connect(const struct config *cfg, struct pgs_error *err)
{
    struct timeval tv = {cfg->redis_timeout_ms / 1000, (cfg->redis_timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    redisReply *r;

    if (rc == NULL || rc->err) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot connect to Redis at %s:%d",
                      cfg->redis_host, cfg->redis_port);
        pgs_error_detail(err, "%s", rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    redisEnableKeepAlive(rc);
    if (cfg->redis_auth && *cfg->redis_auth) {
        if (cfg->redis_user && *cfg->redis_user)
            r = redisCommand(rc, "AUTH %s %s", cfg->redis_user, cfg->redis_auth);
        else
            r = redisCommand(rc, "AUTH %s", cfg->redis_auth);
        if (reply_error(rc, r, "AUTH", err) < 0) {
            err->kind = PGS_ERR_FATAL;
            snprintf(err->detail, sizeof(err->detail), "%s",
                     r ? "authentication refused: check REDIS_AUTH / REDIS_URL" : rc->errstr);
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (cfg->redis_db != 0) {
        r = redisCommand(rc, "SELECT %d", cfg->redis_db);
        if (reply_error(rc, r, "SELECT", err) < 0) {
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    return rc;
}

const char *rstream_key(const struct config *cfg, const char *index, const char *what, char *buf,
                        size_t len)
{
    snprintf(buf, len, "%s:{%s}:%s", cfg->stream_prefix ? cfg->stream_prefix : "pgsync", index,
             what);
    return buf;
}

int rstream_add(redisContext *rc, const char *stream, const struct change *recs, int n,
                struct pgs_error *err)
{
    const char *argv[4 + CHANGE_MAX_FIELDS];
    size_t lens[4 + CHANGE_MAX_FIELDS];
    struct change_scratch scratch;
    int failed = 0;

    for (int i = 0; i < n; i++) {
        argv[0] = "XADD", lens[0] = 4;
        argv[1] = stream, lens[1] = strlen(stream);
        argv[2] = "*", lens[2] = 1;
        int nf = change_to_fields(&recs[i], &scratch, argv + 3, lens + 3);
        redisAppendCommandArgv(rc, 3 + nf, argv, lens);
        change_scratch_free(&scratch);
    }
    /* read every reply, even after an error, so the connection stays in step */
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            reply_error(rc, NULL, "XADD", err);
            return -1; /* the connection is unusable now */
        }
        if (!failed && reply_error(rc, r, "XADD", err) < 0)
            failed = 1;
        freeReplyObject(r);
    }
    return failed ? -1 : 0;
}

int rstream_group_create(redisContext *rc, const char *stream, const char *group,
                         struct pgs_error *err)
{
    redisReply *r = redisCommand(rc, "XGROUP CREATE %s %s 0 MKSTREAM", stream, group);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0) {
        freeReplyObject(r);
        return 0;
    }
    int rv = reply_error(rc, r, "XGROUP CREATE", err);
    freeReplyObject(r);
    return rv;
}

void rstream_batch_free(struct rstream_batch *b)
{
    for (int i = 0; i < b->n; i++)
        change_free(&b->recs[i]);
    free(b->recs);
    for (int i = 0; i < b->nbad; i++) {
        free(b->bad_ids[i]);
        free(b->bad_why[i]);
    }
    free(b->bad_ids);
    free(b->bad_why);
    memset(b, 0, sizeof(*b));
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
        struct pgs_error perr;
        struct change c;
        char **fields;
        size_t *lens;

        if (fv->type != REDIS_REPLY_ARRAY) {
            /* an entry deleted while pending comes back with nil fields */
            out->bad_ids = xrealloc(out->bad_ids, sizeof(char *) * (size_t)(out->nbad + 1));
            out->bad_why = xrealloc(out->bad_why, sizeof(char *) * (size_t)(out->nbad + 1));
            out->bad_ids[out->nbad] = xstrdup(id);
            out->bad_why[out->nbad++] = xstrdup("entry deleted from the stream");
            continue;
        }
        fields = xcalloc(fv->elements + 1, sizeof(char *));
        lens = xcalloc(fv->elements + 1, sizeof(size_t));
        for (size_t k = 0; k < fv->elements; k++) {
            fields[k] = fv->element[k]->str ? fv->element[k]->str : (char *)"";
            lens[k] = fv->element[k]->str ? fv->element[k]->len : 0;
        }
        if (change_from_fields(fields, lens, (int)fv->elements, &c, &perr) < 0) {
            out->bad_ids = xrealloc(out->bad_ids, sizeof(char *) * (size_t)(out->nbad + 1));
            out->bad_why = xrealloc(out->bad_why, sizeof(char *) * (size_t)(out->nbad + 1));
            out->bad_ids[out->nbad] = xstrdup(id);
            out->bad_why[out->nbad++] = xstrdup(perr.msg);
        } else {
            c.entry_id = xstrdup(id);
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->recs = xrealloc(out->recs, sizeof(struct change) * (size_t)out->cap);
            }
            out->recs[out->n++] = c;
        }
        free(fields);
        free(lens);
    }
}

static int read_group(redisContext *rc, const char *stream, const char *group,
                      const char *consumer, int count, int block_ms, const char *from,
                      struct rstream_batch *out, struct pgs_error *err)
{
    redisReply *r;

    if (block_ms >= 0)
        r = redisCommand(rc, "XREADGROUP GROUP %s %s COUNT %d BLOCK %d STREAMS %s %s", group,
                         consumer, count, block_ms, stream, from);
    else
        r = redisCommand(rc, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s %s", group, consumer,
                         count, stream, from);
    if (reply_error(rc, r, "XREADGROUP", err) < 0) {
        /* the group went away (Redis lost its data): make it again, then retry */
        struct pgs_error gerr;
        if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0 &&
            rstream_group_create(rc, stream, group, &gerr) < 0)
            pgs_log(LOG_WARN, "cannot recreate the consumer group", "stream=%s", stream);
        freeReplyObject(r);
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

int rstream_read(redisContext *rc, const char *stream, const char *group, const char *consumer,
                 int count, int block_ms, struct rstream_batch *out, struct pgs_error *err)
{
    return read_group(rc, stream, group, consumer, count, block_ms, ">", out, err);
}

int rstream_read_own_pending(redisContext *rc, const char *stream, const char *group,
                             const char *consumer, int count, struct rstream_batch *out,
                             struct pgs_error *err)
{
    return read_group(rc, stream, group, consumer, count, -1, "0", out, err);
}

int rstream_autoclaim(redisContext *rc, const char *stream, const char *group,
                      const char *consumer, int min_idle_ms, char *cursor, size_t cursor_len,
                      int count, struct rstream_batch *out, struct pgs_error *err)
{
    redisReply *r = redisCommand(rc, "XAUTOCLAIM %s %s %s %d %s COUNT %d", stream, group,
                                 consumer, min_idle_ms, cursor, count);
    if (reply_error(rc, r, "XAUTOCLAIM", err) < 0) {
        freeReplyObject(r);
        return -1;
    }
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

int rstream_ack(redisContext *rc, const char *stream, const char *group, char **ids, int n,
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
    redisReply *r = redisCommandArgv(rc, n + 3, argv, lens);
    free(argv);
    free(lens);
    int rv = reply_error(rc, r, "XACK", err);
    freeReplyObject(r);
    return rv;
}

redisReply *rstream_command(redisContext *rc, struct pgs_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (reply_error(rc, r, fmt, err) < 0) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* "ms-seq" -> numbers; 0 on success */
static int parse_id(const char *id, unsigned long long *ms, unsigned long long *seq)
{
    char *end;
    *ms = strtoull(id, &end, 10);
    if (*end != '-')
        return -1;
    *seq = strtoull(end + 1, &end, 10);
    return *end == '\0' ? 0 : -1;
}

static int id_less(unsigned long long ams, unsigned long long aseq, unsigned long long bms,
                   unsigned long long bseq)
{
    return ams < bms || (ams == bms && aseq < bseq);
}

int rstream_trim_acked(redisContext *rc, const char *stream, long long retain_ms,
                       long long *trimmed, struct pgs_error *err)
{
    unsigned long long min_ms = ~0ULL, min_seq = ~0ULL, ms, seq;
    int ngroups = 0;

    *trimmed = 0;
    redisReply *r = redisCommand(rc, "XINFO GROUPS %s", stream);
    if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "no such key")) {
        freeReplyObject(r);
        return 0;
    }
    if (reply_error(rc, r, "XINFO GROUPS", err) < 0) {
        freeReplyObject(r);
        return -1;
    }
    for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        redisReply *info = r->element[g];
        const char *name = NULL, *last = NULL;
        for (size_t k = 0; info->type == REDIS_REPLY_ARRAY && k + 1 < info->elements; k += 2) {
            const char *key = info->element[k]->str;
            if (key && !strcmp(key, "name"))
                name = info->element[k + 1]->str;
            else if (key && !strcmp(key, "last-delivered-id"))
                last = info->element[k + 1]->str;
        }
        if (name == NULL || last == NULL || parse_id(last, &ms, &seq) < 0)
            continue;
        ngroups++;
        /* everything after the last delivered entry is still to be read */
        if (id_less(ms, seq + 1, min_ms, min_seq)) {
            min_ms = ms;
            min_seq = seq + 1;
        }
        /* and the oldest pending entry is still to be acknowledged */
        redisReply *p = redisCommand(rc, "XPENDING %s %s", stream, name);
        if (reply_error(rc, p, "XPENDING", err) < 0) {
            freeReplyObject(p);
            freeReplyObject(r);
            return -1;
        }
        if (p->type == REDIS_REPLY_ARRAY && p->elements >= 2 &&
            p->element[1]->type == REDIS_REPLY_STRING &&
            parse_id(p->element[1]->str, &ms, &seq) == 0 && id_less(ms, seq, min_ms, min_seq)) {
            min_ms = ms;
            min_seq = seq;
        }
        freeReplyObject(p);
    }
    freeReplyObject(r);
    if (ngroups == 0 || min_ms == ~0ULL)
        return 0;
    /* keep the last "retain_ms" of history whatever was acknowledged */
    r = redisCommand(rc, "TIME");
    if (reply_error(rc, r, "TIME", err) < 0) {
        freeReplyObject(r);
        return -1;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->str) {
        unsigned long long now_ms = strtoull(r->element[0]->str, NULL, 10) * 1000ULL +
                                    strtoull(r->element[1]->str, NULL, 10) / 1000ULL;
        unsigned long long keep = retain_ms > 0 ? (unsigned long long)retain_ms : 0;
        unsigned long long horizon = now_ms > keep ? now_ms - keep : 0;
        if (id_less(horizon, 0, min_ms, min_seq)) {
            min_ms = horizon;
            min_seq = 0;
        }
    }
    freeReplyObject(r);
    r = redisCommand(rc, "XTRIM %s MINID %llu-%llu", stream, min_ms, min_seq);
    if (reply_error(rc, r, "XTRIM", err) < 0) {
        freeReplyObject(r);
        return -1;
    }
    if (r->type == REDIS_REPLY_INTEGER)
        *trimmed = r->integer;
    freeReplyObject(r);
    return 0;
}
