/*
 * sync.c - from change records to versioned index writes. See sync.h for
 * the contract; the steps below follow the order of syncer_process().
 */
#include "sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rstream.h"
#include "strbuf.h"

/* how many tuples one reverse query takes at a time */
#define REVERSE_CHUNK 5000
/* rows fetched per cursor round trip */
#define FETCH_ROWS 1000

void syncer_init(struct syncer *s, const struct config *cfg, struct app_entry *ae,
                 struct es_client *es, redisContext *rc, volatile sig_atomic_t *stop)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->ae = ae;
    s->es = es;
    s->rc = rc;
    s->stop = stop;
    s->depth = SYNC_CHANGE_DEPTH;
    es_bulk_init(&s->bulk);
    keyset_init(&s->roots, ae->sql.npk);
    s->node_in = xcalloc((size_t)ae->e->nnodes, sizeof(struct keyset));
    s->through_in = xcalloc((size_t)ae->e->nnodes, sizeof(struct keyset));
    s->base_in = xcalloc((size_t)ae->e->nnodes, sizeof(struct keyset *));
    for (int i = 0; i < ae->e->nnodes; i++) {
        const struct schema_node *n = ae->e->nodes[i];
        keyset_init(&s->node_in[i], ae->sql.node_rev[i].nin);
        keyset_init(&s->through_in[i], ae->sql.through_rev[i].nin);
        if (n->nbase_tables > 0) {
            s->base_in[i] = xcalloc((size_t)n->nbase_tables, sizeof(struct keyset));
            for (int b = 0; b < n->nbase_tables; b++)
                keyset_init(&s->base_in[i][b], ae->sql.base_rev && ae->sql.base_rev[i]
                                                   ? ae->sql.base_rev[i][b].nin
                                                   : 0);
        }
    }
}

void syncer_deinit(struct syncer *s)
{
    if (s->pg)
        PQfinish(s->pg);
    es_pipe_free(s->pipe); /* waits for the requests on the wire; unanswered ones are not acked */
    for (int i = 0; i < s->nflights; i++)
        keyset_free(&s->flights[i].ids);
    es_bulk_deinit(&s->bulk);
    keyset_free(&s->roots);
    for (int i = 0; s->ae && i < s->ae->e->nnodes; i++) {
        keyset_free(&s->node_in[i]);
        keyset_free(&s->through_in[i]);
        for (int b = 0; s->base_in[i] && b < s->ae->e->nodes[i]->nbase_tables; b++)
            keyset_free(&s->base_in[i][b]);
        free(s->base_in[i]);
    }
    free(s->node_in);
    free(s->through_in);
    free(s->base_in);
    memset(s, 0, sizeof(*s));
}

static int prepare(PGconn *conn, const char *name, const char *sql, int nparams,
                   struct pgs_error *err)
{
    PGresult *res = PQprepare(conn, name, sql, nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot prepare the %s query", name);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int syncer_connect(struct syncer *s, struct pgs_error *err)
{
    const struct sqlgen *g = &s->ae->sql;
    char name[32];

    if (s->pg)
        PQfinish(s->pg);
    s->pg = config_pg_connect(s->cfg, s->ae->e->database, 0, "pgsync-consumer", err);
    if (s->pg == NULL)
        return -1;
    if (prepare(s->pg, "doc_keys", g->doc_by_keys, g->npk, err) < 0)
        goto fail;
    for (int i = 1; i < g->nnodes; i++) {
        snprintf(name, sizeof(name), "rev_n%d", i);
        if (g->node_rev[i].sql && prepare(s->pg, name, g->node_rev[i].sql, g->node_rev[i].nin, err) < 0)
            goto fail;
        snprintf(name, sizeof(name), "rev_t%d", i);
        if (g->through_rev[i].sql &&
            prepare(s->pg, name, g->through_rev[i].sql, g->through_rev[i].nin, err) < 0)
            goto fail;
    }
    for (int i = 0; i < g->nnodes && g->base_rev; i++) {
        for (int b = 0; g->base_rev[i] && b < s->ae->e->nodes[i]->nbase_tables; b++) {
            snprintf(name, sizeof(name), "rev_b%d_%d", i, b);
            if (g->base_rev[i][b].sql &&
                prepare(s->pg, name, g->base_rev[i][b].sql, g->base_rev[i][b].nin, err) < 0)
                goto fail;
        }
    }
    return 0;
fail:
    PQfinish(s->pg);
    s->pg = NULL;
    return -1;
}

/* A failed query: the connection is gone (retry later) or the query is wrong. */
static int query_failed(struct syncer *s, const char *what, struct pgs_error *err)
{
    int gone = PQstatus(s->pg) != CONNECTION_OK;
    pgs_error_set(err, gone ? PGS_ERR_TRANSIENT : PGS_ERR_DOCUMENT, "%s failed on database \"%s\"",
                  what, s->ae->e->database);
    pgs_error_detail(err, "%s", PQerrorMessage(s->pg));
    if (gone) {
        PQfinish(s->pg);
        s->pg = NULL;
    }
    return -1;
}

/* The values of "cols" in a record's old or new image; 0 when one is absent or NULL. */
static int tuple_from(json_t *img, char **cols, int ncols, const char **out)
{
    if (img == NULL)
        return 0;
    for (int i = 0; i < ncols; i++) {
        json_t *v = json_object_get(img, cols[i]);
        if (!json_is_string(v))
            return 0; /* a NULL never joins */
        out[i] = json_string_value(v);
    }
    return 1;
}

static void collect(struct keyset *set, const struct change *c, char **cols, int ncols)
{
    const char *vals[64];
    if (ncols == 0 || ncols > 64)
        return;
    if (tuple_from(c->oldv, cols, ncols, vals))
        keyset_add(set, vals);
    if (tuple_from(c->newv, cols, ncols, vals))
        keyset_add(set, vals);
}

/* Which nodes (and through tables) a record's table serves; add its join values. */
static void route_record(struct syncer *s, const struct change *c)
{
    const struct schema_entry *e = s->ae->e;
    const struct sqlgen *g = &s->ae->sql;

    for (int i = 0; i < e->nnodes; i++) {
        const struct schema_node *n = e->nodes[i];
        if (!strcmp(n->schema, c->schema) && !strcmp(n->table, c->table)) {
            if (i == 0)
                collect(&s->roots, c, n->pk, n->npk);
            else
                collect(&s->node_in[i], c, g->node_rev[i].in_cols, g->node_rev[i].nin);
        }
        if (n->through_table && !strcmp(n->through_schema, c->schema) &&
            !strcmp(n->through_table, c->table))
            collect(&s->through_in[i], c, g->through_rev[i].in_cols, g->through_rev[i].nin);
        for (int b = 0; b < n->nbase_tables && g->base_rev; b++) {
            if (strcmp(n->bases[b].schema, c->schema) || strcmp(n->bases[b].table, c->table))
                continue;
            if (g->base_rev[i] == NULL || g->base_rev[i][b].sql == NULL)
                s->reindex_all = 1; /* the view cannot be keyed from this table */
            else
                collect(&s->base_in[i][b], c, g->base_rev[i][b].in_cols, g->base_rev[i][b].nin);
        }
    }
}

/* Run one reverse query over "in" in chunks; every row is a root key. */
static int run_reverse(struct syncer *s, const char *stmt, struct keyset *in,
                       struct pgs_error *err)
{
    struct strbuf *arrays = xcalloc((size_t)in->width, sizeof(struct strbuf));
    const char **params = xcalloc((size_t)in->width, sizeof(char *));
    int rv = 0;

    for (int c = 0; c < in->width; c++)
        sb_init(&arrays[c]);
    for (int from = 0; from < in->n && rv == 0; from += REVERSE_CHUNK) {
        int to = from + REVERSE_CHUNK < in->n ? from + REVERSE_CHUNK : in->n;
        for (int c = 0; c < in->width; c++) {
            keyset_pg_array(in, c, from, to, &arrays[c]);
            params[c] = arrays[c].buf;
        }
        PGresult *res = PQexecPrepared(s->pg, stmt, in->width, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            PQclear(res);
            rv = query_failed(s, "a reverse query", err);
            /* a wrong reverse query is not one document's fault: retry, don't drop */
            if (err->kind == PGS_ERR_DOCUMENT)
                err->kind = PGS_ERR_FATAL;
            break;
        }
        const char *vals[64];
        for (int r = 0; r < PQntuples(res); r++) {
            for (int k = 0; k < s->roots.width; k++)
                vals[k] = PQgetvalue(res, r, k);
            keyset_add(&s->roots, vals);
        }
        PQclear(res);
    }
    for (int c = 0; c < in->width; c++)
        sb_free(&arrays[c]);
    free(arrays);
    free(params);
    return rv;
}

static void make_id(char *const *key, int width, struct strbuf *sb)
{
    sb_reset(sb);
    for (int i = 0; i < width; i++) {
        if (i > 0)
            sb_add(sb, SQLGEN_ID_SEP);
        sb_add(sb, key[i]);
    }
}

/* The routing value: the document's field named by the entry's "routing". */
static char *routing_of(const struct schema_entry *e, const char *doc, size_t len)
{
    if (e->routing == NULL)
        return NULL;
    json_t *d = json_loadb(doc, len, 0, NULL);
    json_t *v = json_object_get(d, e->routing);
    char *out = NULL;
    if (json_is_string(v))
        out = xstrdup(json_string_value(v));
    else if (json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        out = xstrdup(buf);
    }
    json_decref(d);
    return out;
}

static void add_index(struct syncer *s, const char *id, const char *doc, size_t len,
                      uint64_t version)
{
    const struct schema_entry *e = s->ae->e;
    char *routing = routing_of(e, doc, len);
    es_bulk_add(&s->bulk, ES_OP_INDEX, s->ae->index, id, version, doc, len, routing, e->pipeline,
                NULL);
    free(routing);
}

static void add_delete(struct syncer *s, const char *id, uint64_t version)
{
    es_bulk_add(&s->bulk, ES_OP_DELETE, s->ae->index, id, version, NULL, 0, NULL, NULL, NULL);
}

int syncer_dead_letter(struct syncer *s, const char *id, const char *reason,
                       const char *error_type, const char *doc, size_t doclen,
                       struct pgs_error *err)
{
    char ts[32];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    const char *argv[] = {"XADD", s->ae->dlq, "*", "index", app_entry_name(s->ae), "id", id ? id : "",
                          "error", error_type ? error_type : "", "reason", reason ? reason : "",
                          "entries", s->origin ? s->origin : "", "ts", ts, "doc", doc ? doc : ""};
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    int n = (int)(sizeof(argv) / sizeof(argv[0]));
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    if (doc)
        lens[n - 1] = doclen;
    redisReply *r = redisCommandArgv(s->rc, n, argv, lens);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot write a dead letter to %s", s->ae->dlq);
        pgs_error_detail(err, "%s", r ? r->str : s->rc->errstr);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    s->docs_rejected++;
    pgs_log(LOG_WARN, "document dead-lettered", "index=%s id=%s error=%s reason=\"%s\"",
            s->ae->index, id ? id : "", error_type ? error_type : "",
            reason ? reason : "");
    return 0;
}

/*
 * Test hook (tests/integration/test_40_consumers.sh): while the file named
 * by PGSYNC_TEST_PAUSE_FILE exists, hold the documents already read before
 * sending them, to force the interleaving where a later change overtakes.
 */
static void test_pause(void)
{
    static const char *path;
    static int checked;
    if (!checked) {
        path = getenv("PGSYNC_TEST_PAUSE_FILE");
        checked = 1;
    }
    if (path == NULL)
        return;
    if (access(path, F_OK) == 0)
        pgs_log(LOG_INFO, "test pause: holding a bulk request", "file=%s", path);
    while (access(path, F_OK) == 0)
        usleep(50000);
}

/* ---- the root TRUNCATE fence (sync.h) ---- */

#define FENCE_FIELD "truncated_lsn"

int syncer_fence(struct syncer *s, uint64_t *fence, struct pgs_error *err)
{
    *fence = 0;
    redisReply *r = redis_command(s->rc, err, "HGET %s " FENCE_FIELD, s->ae->meta);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_STRING)
        *fence = strtoull(r->str, NULL, 16);
    freeReplyObject(r);
    return 0;
}

/* Raise the fence to "version"; never lowers it (hex of one width compares like the number). */
static int fence_raise(struct syncer *s, uint64_t version, struct pgs_error *err)
{
    static const char script[] =
        "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
        "if not v or v < ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
        "return 0";
    char hex[17];

    snprintf(hex, sizeof(hex), "%016" PRIx64, version);
    redisReply *r = redis_command(s->rc, err, "EVAL %s 1 %s %s %s", script, s->ae->meta,
                                    FENCE_FIELD, hex);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

/*
 * "done" was answered, some of it older than the fence, which the fence
 * read after the answer shows: had the fence been raised after the answer,
 * the truncate's sweep (which lists the index only then) would have found
 * these writes. Delete them at the fence's version: a document written
 * since for a newer row keeps its higher version (409, counted as done).
 */
static int fence_fixup(struct syncer *s, const struct es_bulk *done, uint64_t fence,
                       struct pgs_error *err)
{
    struct es_bulk fix;
    int rv;

    es_bulk_init(&fix);
    for (int i = 0; i < done->n; i++) {
        const struct es_bulk_item *it = &done->items[i];
        if (it->version < fence && it->cls != ES_ITEM_REJECT)
            es_bulk_add(&fix, ES_OP_DELETE, it->index, it->id, fence, NULL, 0, it->routing, NULL,
                        NULL);
    }
    rv = es_bulk_flush(s->es, &fix, s->stop, err);
    if (rv == 0)
        pgs_log(LOG_INFO, "writes older than a root TRUNCATE deleted again", "index=%s docs=%d",
                s->ae->index, fix.n);
    es_bulk_deinit(&fix);
    return rv;
}

/* After a bulk was answered: the fence check above, when the bulk held a versioned write. */
static int fence_check(struct syncer *s, const struct es_bulk *done, struct pgs_error *err)
{
    uint64_t lowest = UINT64_MAX, fence = 0;

    if (s->rc == NULL)
        return 0;
    for (int i = 0; i < done->n; i++)
        if (done->items[i].version > 0 && done->items[i].version < lowest)
            lowest = done->items[i].version;
    if (lowest == UINT64_MAX)
        return 0;
    if (syncer_fence(s, &fence, err) < 0)
        return -1;
    return fence > lowest ? fence_fixup(s, done, fence, err) : 0;
}

/*
 * One answered bulk: count what the engine took, dead-letter what it
 * refused for good. A failed bulk (fatal, or stopped while retrying) marks
 * its sequence number: no batch from it on is acknowledged.
 */
static int syncer_take(struct syncer *s, struct es_pipe_job *j, struct pgs_error *err)
{
    const char *origin = s->origin;
    int rv = 0;

    if (j == NULL)
        return 0;
    for (int i = 0; i < s->nflights; i++) {
        if (s->flights[i].seq == j->seq) {
            keyset_free(&s->flights[i].ids);
            s->flights[i] = s->flights[--s->nflights];
            break;
        }
    }
    if (j->rc < 0) {
        *err = j->err;
        rv = -1;
    }
    /* the dead letters name the entries of the batch that sent them */
    s->origin = j->origin;
    for (int i = 0; i < j->bulk.n && rv == 0; i++) {
        struct es_bulk_item *it = &j->bulk.items[i];
        if (it->cls == ES_ITEM_REJECT) {
            if (syncer_dead_letter(s, it->id, it->reason, it->error_type, it->doc, it->doclen,
                                   err) < 0)
                rv = -1;
        } else if (it->op == ES_OP_INDEX) {
            s->docs_indexed++;
        } else {
            s->docs_deleted++;
        }
    }
    s->origin = origin;
    if (rv == 0 && fence_check(s, &j->bulk, err) < 0)
        rv = -1;
    if (rv < 0 && (s->failed_seq == 0 || j->seq < s->failed_seq))
        s->failed_seq = j->seq;
    es_pipe_job_free(j);
    return rv;
}

/* Does a bulk in flight hold one of "ids"? */
static int flight_overlaps(const struct syncer *s, const struct keyset *ids)
{
    for (int f = 0; f < s->nflights; f++) {
        const struct keyset *in = &s->flights[f].ids;
        const struct keyset *small = in->n < ids->n ? in : ids, *big = small == in ? ids : in;
        for (int i = 0; i < small->n; i++)
            if (keyset_contains(big, (const char *const *)keyset_tuple(small, i)))
                return 1;
    }
    return 0;
}

int syncer_flush(struct syncer *s, struct pgs_error *err)
{
    if (s->bulk.n == 0)
        return 0;
    test_pause();
    if (s->pipe == NULL) {
        s->pipe = es_pipe_new(s->es, SYNC_MAX_DEPTH, s->stop, err);
        if (s->pipe == NULL)
            return -1;
        es_pipe_set_hooks(s->pipe, es_client_hooks(s->es));
    }
    struct keyset ids;
    keyset_init(&ids, 1);
    for (int i = 0; i < s->bulk.n; i++)
        keyset_add(&ids, (const char *const *)&s->bulk.items[i].id);
    /* room, and no _id of this bulk on the wire: else the earlier write is answered first */
    while (es_pipe_inflight(s->pipe) >= s->depth || flight_overlaps(s, &ids)) {
        if (syncer_take(s, es_pipe_next(s->pipe, 1), err) < 0) {
            keyset_free(&ids);
            return -1;
        }
    }
    s->last_seq = es_pipe_submit(s->pipe, &s->bulk, s->origin);
    s->flights[s->nflights].seq = s->last_seq;
    s->flights[s->nflights++].ids = ids; /* hands over */
    return 0;
}

int syncer_poll(struct syncer *s, struct pgs_error *err)
{
    struct es_pipe_job *j;
    int rv = 0;
    struct pgs_error e;

    while (s->pipe && (j = es_pipe_next(s->pipe, 0)) != NULL) {
        if (syncer_take(s, j, &e) < 0 && rv == 0) {
            *err = e;
            rv = -1;
        }
    }
    return rv;
}

int syncer_drain(struct syncer *s, struct pgs_error *err)
{
    int rv = 0;
    struct pgs_error e;

    while (s->pipe && es_pipe_inflight(s->pipe) > 0) {
        if (syncer_take(s, es_pipe_next(s->pipe, 1), &e) < 0 && rv == 0) {
            *err = e;
            rv = -1;
        }
    }
    return rv;
}

int syncer_inflight(const struct syncer *s)
{
    return s->pipe ? es_pipe_inflight(s->pipe) : 0;
}

int syncer_done(const struct syncer *s, uint64_t seq)
{
    if (seq == 0)
        return 1;
    if (s->pipe == NULL || seq >= es_pipe_oldest(s->pipe))
        return 0;
    return s->failed_seq == 0 || seq < s->failed_seq;
}

void syncer_forget_failures(struct syncer *s)
{
    s->failed_seq = 0;
}

static int maybe_flush(struct syncer *s, struct pgs_error *err)
{
    if (s->bulk.bytes >= (size_t)s->cfg->bulk_max_bytes)
        return syncer_flush(s, err);
    return 0;
}

/* Fetch documents for root keys [from, to) and queue index or delete writes. */
static int fetch_docs(struct syncer *s, int from, int to, uint64_t version,
                      struct pgs_error *err)
{
    int width = s->roots.width;
    struct strbuf *arrays = xcalloc((size_t)width, sizeof(struct strbuf));
    const char **params = xcalloc((size_t)width, sizeof(char *));
    struct keyset found;
    struct strbuf id;
    int rv = 0;

    keyset_init(&found, width);
    sb_init(&id);
    for (int c = 0; c < width; c++) {
        sb_init(&arrays[c]);
        keyset_pg_array(&s->roots, c, from, to, &arrays[c]);
        params[c] = arrays[c].buf;
    }
    PGresult *res = PQexecPrepared(s->pg, "doc_keys", width, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        rv = query_failed(s, "the document query", err);
        if (err->kind == PGS_ERR_DOCUMENT && to - from > 1) {
            /* one poison row must not hold the others back: split and retry */
            int mid = from + (to - from) / 2;
            rv = fetch_docs(s, from, mid, version, err);
            if (rv == 0)
                rv = fetch_docs(s, mid, to, version, err);
        } else if (err->kind == PGS_ERR_DOCUMENT) {
            make_id(keyset_tuple(&s->roots, from), width, &id);
            rv = syncer_dead_letter(s, id.buf, err->detail, "document_query_failed", NULL, 0, err);
        }
        goto out;
    }
    const char *vals[64];
    for (int r = 0; r < PQntuples(res); r++) {
        for (int k = 0; k < width; k++)
            vals[k] = PQgetvalue(res, r, 2 + k);
        keyset_add(&found, vals);
        add_index(s, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1),
                  version);
    }
    PQclear(res);
    /* keys asked for and not found: the root row is gone */
    for (int i = from; i < to; i++) {
        char **key = keyset_tuple(&s->roots, i);
        if (!keyset_contains(&found, (const char *const *)key)) {
            make_id(key, width, &id);
            add_delete(s, id.buf, version);
        }
    }
    rv = maybe_flush(s, err);
out:
    for (int c = 0; c < width; c++)
        sb_free(&arrays[c]);
    free(arrays);
    free(params);
    keyset_free(&found);
    sb_free(&id);
    return rv;
}

/*
 * Wait (bounded) until no stream entry older than "first_id" is still being
 * applied by another consumer: such a batch may hold documents read before
 * the truncate, not yet in the index, that no tombstone could stop.
 */
static void wait_earlier_batches(struct syncer *s, const char *first_id)
{
    struct pgs_error err;
    int waited_ms = 0;

    if (first_id == NULL || s->rc == NULL)
        return;
    for (;;) {
        redisReply *r = redis_command(s->rc, &err, "XPENDING %s %s - (%s 1", s->ae->stream,
                                        RSTREAM_GROUP, first_id);
        int busy = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
        freeReplyObject(r);
        if (!busy || (s->stop && *s->stop))
            return;
        /* bounded: a stalled consumer must not stop the truncate; tombstones cover most */
        if (waited_ms >= 10000) {
            pgs_log(LOG_WARN, "earlier entries still pending; truncating anyway", "index=%s",
                    s->ae->index);
            return;
        }
        usleep(100000);
        waited_ms += 100;
    }
}

/*
 * Delete every document of the index older than "fence", each at the
 * fence's version (sync.h). For a root TRUNCATE: a document written later
 * for a newer row keeps its higher version (skipped here, or 409); an older
 * copy still in flight meets the delete's tombstone and is refused, or is
 * deleted again by its writer (fence_check). A _delete_by_query could do
 * neither.
 */
int syncer_sweep(struct syncer *s, uint64_t fence, int always, const char *why,
                 struct pgs_error *err)
{
    const char *index = s->ae->index;
    char path[512], *resp = NULL, *scroll_id = NULL;
    long status = 0;
    long long n = 0;
    int rv = -1;

    if (!always && s->swept_fence >= fence)
        return 0;
    /* the bulks of earlier batches must be in the index before it is listed */
    if (syncer_drain(s, err) < 0)
        return -1;
    if (es_refresh(s->es, index, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "/%s/_search?scroll=2m", index);
    const char *first = "{\"size\":1000,\"_source\":false,\"version\":true,\"sort\":[\"_doc\"]}";
    if (es_request(s->es, "POST", path, first, strlen(first), "application/json", &status, &resp,
                   err) < 0)
        return -1;
    for (;;) {
        json_error_t je;
        json_t *body = json_loads(resp ? resp : "", 0, &je);
        free(resp);
        resp = NULL;
        if (status == 404) {
            json_decref(body);
            rv = 0; /* no index, nothing to delete */
            goto out;
        }
        json_t *hits = json_object_get(json_object_get(body, "hits"), "hits");
        if (status != 200 || !json_is_array(hits)) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "scrolling index \"%s\" failed (HTTP %ld)",
                          index, status);
            json_decref(body);
            goto out;
        }
        free(scroll_id);
        scroll_id = json_is_string(json_object_get(body, "_scroll_id"))
                        ? xstrdup(json_string_value(json_object_get(body, "_scroll_id")))
                        : NULL;
        size_t i;
        json_t *hit;
        json_array_foreach(hits, i, hit) {
            const char *id = json_string_value(json_object_get(hit, "_id"));
            json_t *v = json_object_get(hit, "_version");
            if (id == NULL || (json_is_integer(v) && (uint64_t)json_integer_value(v) >= fence))
                continue;
            es_bulk_add(&s->bulk, ES_OP_DELETE, index, id, fence, NULL, 0,
                        json_string_value(json_object_get(hit, "_routing")), NULL, NULL);
            n++;
        }
        size_t nhits = json_array_size(hits);
        json_decref(body);
        if (syncer_flush(s, err) < 0)
            goto out;
        if (nhits == 0 || scroll_id == NULL)
            break;
        json_t *next = json_pack("{s:s, s:s}", "scroll", "2m", "scroll_id", scroll_id);
        char *txt = json_dumps(next, JSON_COMPACT);
        json_decref(next);
        int r = es_request(s->es, "POST", "/_search/scroll", txt, strlen(txt),
                           "application/json", &status, &resp, err);
        free(txt);
        if (r < 0)
            goto out;
    }
    if (s->swept_fence < fence)
        s->swept_fence = fence;
    rv = 0;
    pgs_log(LOG_INFO, why, "index=%s docs=%lld", index, n);
out:
    if (scroll_id) {
        json_t *del = json_pack("{s:[s]}", "scroll_id", scroll_id);
        char *txt = json_dumps(del, JSON_COMPACT);
        char *ignored = NULL;
        struct pgs_error e2;
        if (es_request(s->es, "DELETE", "/_search/scroll", txt, strlen(txt), "application/json",
                       &status, &ignored, &e2) == 0)
            free(ignored);
        free(txt);
        json_decref(del);
        free(scroll_id);
    }
    free(resp);
    return rv;
}

static int reindex_all(struct syncer *s, uint64_t version, struct pgs_error *err)
{
    long long n = 0;
    PGresult *res = PQexec(s->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    PQclear(res);
    int rv = syncer_index_query(s, s->pg, s->ae->sql.doc_all, 0, NULL, version, NULL, NULL, &n,
                                err);
    res = PQexec(s->pg, rv == 0 ? "COMMIT" : "ROLLBACK");
    PQclear(res);
    if (rv == 0)
        pgs_log(LOG_INFO, "documents re-indexed after a truncate", "index=%s docs=%lld",
                s->ae->index, n);
    return rv;
}

/*
 * Wait until every transaction of the batch is visible to new snapshots.
 * The walsender may send a commit as soon as it is flushed, a moment
 * before the committing backend leaves the proc array; a document read in
 * that moment would miss the change yet carry its version, and win.
 */
static int wait_visible(struct syncer *s, const struct change *recs, int n, struct pgs_error *err)
{
    static const char sql[] =
        "WITH c AS (SELECT pg_current_snapshot() AS snap), "
        "e AS (SELECT snap, pg_snapshot_xmax(snap)::text::numeric AS xmax, "
        "floor(pg_snapshot_xmax(snap)::text::numeric / 4294967296) * 4294967296 AS base FROM c) "
        "SELECT coalesce(bool_and(pg_visible_in_snapshot((CASE WHEN e.base + x > e.xmax "
        "THEN e.base + x - 4294967296 ELSE e.base + x END)::text::xid8, e.snap)), true) "
        "FROM e, unnest($1::bigint[]) AS x";
    struct strbuf xids;
    uint32_t last = 0;
    int rv = -1;

    sb_init(&xids);
    sb_addc(&xids, '{');
    for (int i = 0; i < n; i++) {
        if (recs[i].op == CHANGE_LOAD || recs[i].xid == 0 || recs[i].xid == last)
            continue;
        last = recs[i].xid;
        sb_printf(&xids, "%s%" PRIu32, xids.len > 1 ? "," : "", recs[i].xid);
    }
    sb_addc(&xids, '}');
    for (int tries = 0;; tries++) {
        const char *params[1] = {xids.buf};
        PGresult *res = PQexecParams(s->pg, sql, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            PQclear(res);
            query_failed(s, "the visibility check", err);
            goto out;
        }
        int visible = !strcmp(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
        if (visible)
            break;
        if (tries == 2000) {
            /* 2 s: not a race of microseconds; proceed, later changes will correct it */
            pgs_log(LOG_WARN, "transactions of the batch still not visible; going on", NULL);
            break;
        }
        usleep(1000);
    }
    rv = 0;
out:
    sb_free(&xids);
    return rv;
}

int syncer_process(struct syncer *s, const struct change *recs, int n, struct pgs_error *err)
{
    const struct schema_entry *e = s->ae->e;
    uint64_t version = 0;
    int truncate_root = 0, truncate_other = 0;
    uint64_t truncate_version = 0, oldest = UINT64_MAX; /* oldest: the batch's first commit */
    char name[32];
    int rv = 0;

    if (s->pg == NULL && syncer_connect(s, err) < 0)
        return -1;
    keyset_clear(&s->roots);
    for (int i = 0; i < e->nnodes; i++) {
        keyset_clear(&s->node_in[i]);
        keyset_clear(&s->through_in[i]);
        for (int b = 0; s->base_in[i] && b < e->nodes[i]->nbase_tables; b++)
            keyset_clear(&s->base_in[i][b]);
    }
    s->reindex_all = 0;
    es_bulk_reset(&s->bulk);

    /* 1. one version for the batch: its newest commit; every read below is newer still */
    for (int i = 0; i < n; i++) {
        const struct change *c = &recs[i];
        if (c->op == CHANGE_LOAD)
            continue;
        if (c->lsn > version)
            version = c->lsn;
        if (c->lsn < oldest)
            oldest = c->lsn;
        if (c->op == CHANGE_TRUNCATE) {
            if (!strcmp(c->schema, e->root->schema) && !strcmp(c->table, e->root->table)) {
                truncate_root = 1;
                if (c->lsn > truncate_version)
                    truncate_version = c->lsn;
            }
            else if (app_table_index(s->ae, c->schema, c->table) >= 0)
                truncate_other = 1;
            continue;
        }
        route_record(s, c);
    }
    s->records += (unsigned long long)n;
    if (version == 0)
        return 0; /* nothing but load items or nothing at all */
    if (wait_visible(s, recs, n, err) < 0)
        return -1;

    if (truncate_root) {
        /* fewer stale writes to undo; the fence (sync.h) is what makes it right */
        wait_earlier_batches(s, recs[0].entry_id);
        if (fence_raise(s, truncate_version, err) < 0 ||
            syncer_sweep(s, truncate_version, 1, "root table truncated: documents deleted", err) < 0)
            return -1;
    } else if (s->redelivered && s->rc != NULL) {
        /*
         * Read before: its first reader may have died between its bulk's
         * answer and the fence check (fence_check), leaving writes older
         * than a truncate that came since. Sweep once at that fence.
         */
        uint64_t fence = 0;
        if (syncer_fence(s, &fence, err) < 0)
            return -1;
        if (fence > oldest &&
            syncer_sweep(s, fence, 0, "documents older than a root TRUNCATE deleted", err) < 0)
            return -1;
    }
    if ((truncate_other || s->reindex_all) && !truncate_root) {
        /*
         * The keyed steps below still run: a root deleted in the same batch
         * is not in the re-index and must become a delete.
         */
        if (reindex_all(s, version, err) < 0)
            return -1;
    }

    /* 2. reverse queries: one per node (and through table) per batch */
    for (int i = 1; i < e->nnodes && rv == 0; i++) {
        if (s->node_in[i].n > 0) {
            snprintf(name, sizeof(name), "rev_n%d", i);
            rv = run_reverse(s, name, &s->node_in[i], err);
        }
        if (rv == 0 && s->through_in[i].n > 0) {
            snprintf(name, sizeof(name), "rev_t%d", i);
            rv = run_reverse(s, name, &s->through_in[i], err);
        }
    }
    for (int i = 0; i < e->nnodes && rv == 0; i++) {
        for (int b = 0; s->base_in[i] && b < e->nodes[i]->nbase_tables && rv == 0; b++) {
            if (s->base_in[i][b].n == 0)
                continue;
            snprintf(name, sizeof(name), "rev_b%d_%d", i, b);
            rv = run_reverse(s, name, &s->base_in[i][b], err);
        }
    }
    if (rv < 0)
        return -1;

    /* 3. documents for every affected root, in chunks; 4. bulk */
    for (int from = 0; from < s->roots.n; from += s->cfg->doc_chunk) {
        int to = from + s->cfg->doc_chunk < s->roots.n ? from + s->cfg->doc_chunk : s->roots.n;
        if (fetch_docs(s, from, to, version, err) < 0)
            return -1;
    }
    if (syncer_flush(s, err) < 0)
        return -1;
    s->batches++;
    return 0;
}

int syncer_index_query(struct syncer *s, PGconn *conn, const char *sql, int nparams,
                       const char *const *params, uint64_t version, syncer_progress_fn progress,
                       void *arg, long long *ndocs, struct pgs_error *err)
{
    struct strbuf q;
    char fetch[64];
    PGresult *res;
    long long done = 0;

    sb_init(&q);
    sb_printf(&q, "DECLARE pgsync_docs NO SCROLL CURSOR FOR %s", sql);
    res = PQexecParams(conn, q.buf, nparams, NULL, params, NULL, NULL, 0);
    sb_free(&q);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgs_error_set(err, PQstatus(conn) == CONNECTION_OK ? PGS_ERR_FATAL : PGS_ERR_TRANSIENT,
                      "the document query failed on database \"%s\"", s->ae->e->database);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    snprintf(fetch, sizeof(fetch), "FETCH %d FROM pgsync_docs", FETCH_ROWS);
    for (;;) {
        res = PQexec(conn, fetch);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            pgs_error_set(err, PQstatus(conn) == CONNECTION_OK ? PGS_ERR_FATAL : PGS_ERR_TRANSIENT,
                          "fetching documents failed on database \"%s\"", s->ae->e->database);
            pgs_error_detail(err, "%s", PQerrorMessage(conn));
            PQclear(res);
            return -1;
        }
        int rows = PQntuples(res);
        for (int r = 0; r < rows; r++)
            add_index(s, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                      (size_t)PQgetlength(res, r, 1), version);
        PQclear(res);
        done += rows;
        if (maybe_flush(s, err) < 0)
            return -1;
        if (progress)
            progress(arg, done);
        if (rows < FETCH_ROWS)
            break;
        if (s->stop && *s->stop) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "interrupted");
            return -1;
        }
    }
    res = PQexec(conn, "CLOSE pgsync_docs");
    PQclear(res);
    if (syncer_flush(s, err) < 0)
        return -1;
    if (ndocs)
        *ndocs = done;
    return 0;
}
