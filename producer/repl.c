/*
 * repl.c - the replication stream of one database: its slot serves every
 * entry on it, and each change becomes a record in the stream of every
 * entry whose schema uses its table (with that entry's link columns).
 *
 * Reading: the socket's ev_io drains every CopyData frame available, decodes
 * it and appends change records to "pending"; a full batch is written to
 * Redis at once, so memory stays bounded whatever the transaction's size.
 * After the drain, pending records are written and the position of the last
 * complete transaction whose records Redis accepted becomes the flushed
 * position we report. Any failure (Redis or PostgreSQL) closes the stream
 * and retries with backoff: the slot resumes at the confirmed position, so
 * at worst records are written twice, never lost.
 */
#include "repl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "change.h"
#include "clock.h"
#include "log.h"
#include "lsn.h"
#include "pgoutput.h"
#include "routes.h"
#include "rstream.h"
#include "strbuf.h"

#define STATUS_INTERVAL 10.0 /* seconds between unsolicited status updates */
/*
 * A standby producer (another one reads the slot) asks again this often:
 * PostgreSQL releases the slot as soon as the active producer's connection
 * closes, and the standby takes it over within this time.
 */
#define STANDBY_POLL 1.0
/* a slot the user must recreate: asked again this often, to notice the fix */
#define SLOT_BROKEN_RETRY_S 10.0
/* a legacy slot being drained: status (with a reply asked for) this often */
#define LEGACY_STATUS_INTERVAL 1.0

/*
 * A record waiting for Redis, encoded by change_encode: its JSON texts are
 * built straight from the decoded tuple, without jansson or a malloc per
 * record, as offsets into the batch's arena (which may move as it grows).
 */
struct rec {
    char op;
    int ent;  /* index into repl.aes */
    int tref; /* index into that entry's tables */
    uint64_t lsn;
    uint32_t xid;
    size_t old_off, old_len, new_off, new_len; /* old_len/new_len 0: absent */
};

/* one entry that uses a relation: which of its tables, and where its link columns are */
struct reltarget {
    int ent;      /* index into repl.aes */
    int tref;     /* index into that entry's tables */
    int *colidx;  /* per link column: position in the relation, -1 = absent */
    char *iskey;  /* per link column: part of the replica identity ('K' tuples carry only those) */
    int ncols;
};

/* per relation oid: the entries whose schema uses it (none: a table no entry uses, or no longer) */
struct relmap {
    uint32_t oid;
    struct reltarget *t;
    int nt;
};

struct repl {
    struct change_source base; /* first: a struct change_source * is a struct repl * */
    struct ev_loop *loop;
    const struct config *cfg;
    const struct app *app;
    struct app_entry **aes; /* the entries served; aes[0] names the database */
    int nae;
    struct app_entry *ae;   /* aes[0] */
    const char **streams;   /* aes[i]->stream, for the routes (routes.h); the array is owned */
    const char *slot, *publication;
    /*
     * A slot of one entry's own, from before one slot per database: read
     * until it reaches the database slot's confirmed position (drain_until,
     * 0 until known), then dropped with its publication.
     */
    int legacy;
    uint64_t drain_until;
    int drained;
    unsigned long routes_conn; /* the Redis connection the routes were published on */
    struct redis_conn **rcp;
    PGconn *conn;
    struct pgo_decoder *dec;
    ev_io io;
    ev_timer status_timer;
    ev_timer retry_timer;
    struct backoff backoff;
    int failing;
    int broken; /* the slot is invalidated or its publication gone (slot_broken) */
    /* relation map */
    struct relmap *rels;
    int nrels;
    /* the transaction in hand */
    int in_txn;
    uint64_t txn_lsn;         /* Begin's final_lsn: the version of its records */
    uint32_t txn_xid;
    uint64_t last_commit_end; /* end of the last transaction fully decoded */
    /* records not yet in Redis: fixed slots, their texts in one arena */
    struct rec *pending;
    int npending;
    struct strbuf arena;
    uint64_t written_upto;    /* every transaction ending at or before this is in Redis */
    /*
     * Records written and not yet known to be on PGSYNC_REDIS_MIN_REPLICAS
     * replicas (WAIT), and the connection they were written on: nothing
     * past written_upto is confirmed until WAIT says so on that connection.
     */
    int unreplicated;
    unsigned long unreplicated_conn;
    int replicas_short_logged;
    struct source_stats stats;
};

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void legacy_target(struct repl *r);
static int publish_routes(struct repl *r, struct pgs_error *err);
static void legacy_done(struct repl *r, const char *why, int was_there);
static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void repl_start(struct change_source *src);
static int repl_stop(struct change_source *src);
static const struct source_stats *repl_get_stats(const struct change_source *src);
static void repl_free(struct change_source *src);

static const struct change_source_ops repl_ops = {
    .start = repl_start, .stop = repl_stop, .stats = repl_get_stats, .free = repl_free};

static struct repl *repl_alloc(struct ev_loop *loop, const struct config *cfg,
                               const struct app *app, struct app_entry **aes, int nae,
                               struct redis_conn **rcp)
{
    struct repl *r = xcalloc(1, sizeof(*r));
    r->base.ops = &repl_ops;
    r->loop = loop;
    r->cfg = cfg;
    r->app = app;
    r->aes = xcalloc((size_t)nae, sizeof(*r->aes));
    memcpy(r->aes, aes, sizeof(*r->aes) * (size_t)nae);
    r->nae = nae;
    r->ae = aes[0];
    r->streams = xcalloc((size_t)nae, sizeof(*r->streams));
    for (int i = 0; i < nae; i++)
        r->streams[i] = aes[i]->stream;
    r->slot = r->ae->slot;
    r->publication = r->ae->publication;
    snprintf(r->stats.name, sizeof(r->stats.name), "%s", r->slot);
    r->rcp = rcp;
    backoff_init(&r->backoff, 0.2, 10);
    r->pending = xcalloc((size_t)cfg->producer_batch, sizeof(struct rec));
    sb_init(&r->arena);
    ev_timer_init(&r->status_timer, on_status_timer, STATUS_INTERVAL, STATUS_INTERVAL);
    r->status_timer.data = r;
    ev_timer_init(&r->retry_timer, on_retry_timer, 0, 0);
    r->retry_timer.data = r;
    return r;
}

struct change_source *repl_new(struct ev_loop *loop, const struct config *cfg,
                               const struct app *app, struct app_entry **aes, int nae,
                               struct redis_conn **rcp)
{
    return &repl_alloc(loop, cfg, app, aes, nae, rcp)->base;
}

struct change_source *repl_new_legacy(struct ev_loop *loop, const struct config *cfg,
                                      const struct app *app, struct app_entry *ae,
                                      struct redis_conn **rcp)
{
    struct repl *r = repl_alloc(loop, cfg, app, &ae, 1, rcp);
    r->legacy = 1;
    r->slot = ae->legacy_slot;
    r->publication = ae->legacy_publication;
    snprintf(r->stats.name, sizeof(r->stats.name), "%s", r->slot);
    /* asked often, with a reply requested: an idle slot still reaches the target */
    ev_timer_set(&r->status_timer, LEGACY_STATUS_INTERVAL, LEGACY_STATUS_INTERVAL);
    return &r->base;
}

static const struct source_stats *repl_get_stats(const struct change_source *src)
{
    return &((const struct repl *)src)->stats;
}

static void reltargets_free(struct relmap *m)
{
    for (int k = 0; k < m->nt; k++) {
        free(m->t[k].colidx);
        free(m->t[k].iskey);
    }
    free(m->t);
    m->t = NULL;
    m->nt = 0;
}

static void relmap_clear(struct repl *r)
{
    for (int i = 0; i < r->nrels; i++)
        reltargets_free(&r->rels[i]);
    free(r->rels);
    r->rels = NULL;
    r->nrels = 0;
}

static void pending_clear(struct repl *r)
{
    r->npending = 0;
    sb_reset(&r->arena);
}

static void close_stream(struct repl *r)
{
    if (r->conn) {
        ev_io_stop(r->loop, &r->io);
        ev_timer_stop(r->loop, &r->status_timer);
        PQfinish(r->conn);
        r->conn = NULL;
    }
    if (r->dec) {
        pgo_decoder_free(r->dec);
        r->dec = NULL;
    }
    relmap_clear(r);
    pending_clear(r);
    r->in_txn = 0;
    /*
     * Transactions decoded but not all in Redis must not be confirmed by a
     * later round: the stream restarts at the confirmed position and
     * decodes them again.
     */
    r->last_commit_end = r->written_upto;
    r->unreplicated = 0; /* read again from the confirmed position, written again */
    r->stats.connected = 0;
}

/*
 * A failure that may be the slot's own: invalidated by PostgreSQL, or its
 * publication dropped. Retrying changes nothing until the user acts, so
 * say so (once, as an error) with the commands, and ask again slowly.
 */
static int slot_broken(struct repl *r, const struct pgs_error *err, struct pgs_error *out)
{
    static const char *const hints[] = {"replication slot", "publication", "already been removed",
                                        "invalidated"};
    struct pgs_error e2;
    char why[600];
    int maybe = 0;

    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
        if (strstr(err->msg, hints[i]) || strstr(err->detail, hints[i]))
            maybe = 1;
    if (!maybe || r->legacy || bootstrap_slot_broken(r->cfg, r->ae, why, sizeof(why), &e2) != 1)
        return 0;
    pgs_error_set(out, PGS_ERR_TRANSIENT, "%s", why);
    pgs_error_detail(out, "%s", err->detail[0] ? err->detail : err->msg);
    return 1;
}

/* Close and try again later; log once per state change, not once per retry. */
static void fail(struct repl *r, const struct pgs_error *err0)
{
    char buf[1600];
    struct pgs_error broken;
    const struct pgs_error *err = err0;
    int was_broken = r->broken;

    r->broken = slot_broken(r, err0, &broken);
    if (r->broken)
        err = &broken;
    if (r->broken && !was_broken)
        pgs_log(LOG_ERROR, "replication slot unusable: waiting for the user to recover",
                "slot=%s error=\"%s\"", r->slot, pgs_error_str(err, buf, sizeof(buf)));
    else if (r->broken)
        pgs_log(LOG_DEBUG, "slot still unusable", "slot=%s", r->slot);
    else if (!r->failing)
        pgs_log(LOG_WARN, "replication stream interrupted, retrying", "slot=%s error=\"%s\"",
                r->slot, pgs_error_str(err, buf, sizeof(buf)));
    else
        pgs_log(LOG_DEBUG, "retry failed", "slot=%s error=\"%s\"", r->slot,
                pgs_error_str(err, buf, sizeof(buf)));
    r->failing = 1;
    pgs_error_str(err, r->stats.last_error, sizeof(r->stats.last_error));
    close_stream(r);
    double delay = r->broken ? SLOT_BROKEN_RETRY_S : backoff_next(&r->backoff);
    ev_timer_set(&r->retry_timer, delay, 0);
    ev_timer_start(r->loop, &r->retry_timer);
}

static int send_status(struct repl *r, int reply, struct pgs_error *err)
{
    char msg[64];
    uint64_t pos = r->written_upto;
    size_t n = pgo_build_status(msg, pos, pos, pos, pgo_now(), reply);
    if (PQputCopyData(r->conn, msg, (int)n) <= 0 || PQflush(r->conn) < 0) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot send a status update on slot \"%s\"",
                      r->slot);
        pgs_error_detail(err, "%s", PQerrorMessage(r->conn));
        return -1;
    }
    if (pos != r->stats.confirmed_lsn) {
        char a[24];
        pgs_log(LOG_DEBUG, "position confirmed", "slot=%s lsn=%s", r->slot,
                lsn_str(pos, a));
    }
    r->stats.confirmed_lsn = pos;
    return 0;
}

/* XADD every pending record in one pipeline; 0 when Redis accepted all. */
static int write_records(struct repl *r, struct pgs_error *err)
{
    struct redis_conn *rc = *r->rcp;
    const char *fv[CHANGE_MAX_FIELDS];
    size_t lens[CHANGE_MAX_FIELDS];
    struct change_numbers nums;

    for (int i = 0; i < r->npending; i++) {
        const struct rec *c = &r->pending[i];
        const struct app_entry *ae = r->aes[c->ent];
        const struct schema_table_ref *t = &ae->tables[c->tref];
        struct change_ref ref = {.op = c->op,
                                 .schema = t->schema,
                                 .table = t->table,
                                 .lsn = c->lsn,
                                 .xid = c->xid};
        if (c->old_len) {
            ref.oldv = r->arena.buf + c->old_off;
            ref.old_len = c->old_len;
        }
        if (c->new_len) {
            ref.newv = r->arena.buf + c->new_off;
            ref.new_len = c->new_len;
        }
        int n = change_encode(&ref, &nums, fv, lens);
        if (rstream_add_queue(rc, ae->stream, fv, lens, n, err) < 0)
            return -1;
    }
    /* every reply is read, even after an error, so the connection stays in step */
    return rstream_add_replies(rc, r->npending, err);
}

/* Write the pending records to Redis. */
static int flush_pending(struct repl *r, struct pgs_error *err)
{
    if (r->npending == 0)
        return 0;
    if (*r->rcp != NULL && redis_broken(*r->rcp)) { /* marked so between writes (eviction) */
        redis_close(*r->rcp);
        *r->rcp = NULL;
    }
    if (*r->rcp == NULL) {
        *r->rcp = redis_connect(r->cfg, err);
        if (*r->rcp == NULL) {
            r->stats.redis_failing = 1;
            return -1;
        }
    }
    if (write_records(r, err) < 0) {
        if (redis_broken(*r->rcp)) {
            redis_close(*r->rcp);
            *r->rcp = NULL;
        }
        r->stats.redis_failing = 1;
        return -1;
    }
    if (r->stats.redis_failing)
        r->stats.last_error[0] = '\0';
    r->stats.redis_failing = 0;
    r->stats.records_written += (unsigned long long)r->npending;
    r->unreplicated = 1;
    r->unreplicated_conn = redis_connect_count();
    pending_clear(r);
    return 0;
}

/*
 * May what was written be confirmed? 1 when the replicas asked for hold it
 * (or none are asked for), 0 when not yet (WAIT came back short: confirm
 * nothing more for now and ask again later), -1 when the connection failed
 * or was replaced since the write: then the records may be gone with the
 * old primary, so the stream must be read again from the confirmed position.
 */
static int replicated(struct repl *r, struct pgs_error *err)
{
    if (!r->unreplicated)
        return 1;
    if (r->cfg->redis_min_replicas <= 0) {
        r->unreplicated = 0; /* one node: what it accepted counts */
        return 1;
    }
    if (*r->rcp == NULL || redis_connect_count() != r->unreplicated_conn) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "the Redis connection was replaced before the records of slot \"%s\" "
                      "reached its replicas: reading again from the confirmed position",
                      r->slot);
        return -1;
    }
    int rv = redis_wait_replicas(*r->rcp, r->cfg, err);
    if (rv < 0) {
        if (redis_broken(*r->rcp)) {
            redis_close(*r->rcp);
            *r->rcp = NULL;
        }
        return -1;
    }
    if (rv == 1) {
        char buf[1600];
        r->stats.replicas_short = 1;
        if (!r->replicas_short_logged)
            pgs_log(LOG_WARN, "records not yet on enough Redis replicas: not confirming",
                    "slot=%s error=\"%s\"", r->slot, pgs_error_str(err, buf, sizeof(buf)));
        r->replicas_short_logged = 1;
        return 0;
    }
    if (r->replicas_short_logged)
        pgs_log(LOG_INFO, "the Redis replicas hold the records again", "slot=%s", r->slot);
    r->replicas_short_logged = 0;
    r->stats.replicas_short = 0;
    r->unreplicated = 0;
    return 1;
}

static struct relmap *relmap_find(struct repl *r, uint32_t oid)
{
    for (int i = 0; i < r->nrels; i++)
        if (r->rels[i].oid == oid)
            return &r->rels[i];
    return NULL;
}

/* A Relation message: which entries use the table, and where are their link columns? */
static void relmap_update(struct repl *r, const struct pgo_relation *rel)
{
    struct relmap *m = relmap_find(r, rel->oid);
    const char *nsp = rel->nspname[0] ? rel->nspname : "pg_catalog";

    if (m == NULL) {
        r->rels = xrealloc(r->rels, sizeof(struct relmap) * (size_t)(r->nrels + 1));
        m = &r->rels[r->nrels++];
        memset(m, 0, sizeof(*m));
        m->oid = rel->oid;
    }
    reltargets_free(m);
    for (int e = 0; e < r->nae; e++) {
        int tref = app_table_index(r->aes[e], nsp, rel->relname);
        if (tref < 0)
            continue;
        const struct schema_table_ref *t = &r->aes[e]->tables[tref];
        m->t = xrealloc(m->t, sizeof(struct reltarget) * (size_t)(m->nt + 1));
        struct reltarget *rt = &m->t[m->nt++];
        rt->ent = e;
        rt->tref = tref;
        rt->ncols = t->nlink;
        rt->colidx = xcalloc((size_t)t->nlink, sizeof(int));
        rt->iskey = xcalloc((size_t)t->nlink, 1);
        for (int i = 0; i < t->nlink; i++) {
            rt->colidx[i] = -1;
            for (int c = 0; c < rel->ncols; c++)
                if (!strcmp(rel->cols[c].name, t->link_cols[i])) {
                    rt->colidx[i] = c;
                    rt->iskey[i] = (char)rel->cols[c].is_key;
                }
        }
    }
}

/* "s" as a JSON string: quotes, backslashes and control characters escaped. */
static void json_add_string(struct strbuf *sb, const char *s, size_t n)
{
    size_t from = 0;
    sb_addc(sb, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_addn(sb, s + from, i - from);
        if (c == '"' || c == '\\') {
            sb_addc(sb, '\\');
            sb_addc(sb, (char)c);
        } else {
            sb_printf(sb, "\\u%04x", c);
        }
        from = i + 1;
    }
    sb_addn(sb, s + from, n - from);
    sb_addc(sb, '"');
}

/*
 * The link columns of a tuple as {"col":"text"|null,...} appended to the
 * arena ("*off", "*len"); absent (unchanged TOAST) left out, and so are the
 * non-key columns of a 'K' (key only) tuple, which pgoutput sends as NULL
 * although they are not.
 */
static void tuple_text(struct repl *r, const struct reltarget *m, const struct schema_table_ref *t,
                       const struct pgo_tuple *tup, const struct pgo_tuple *fallback,
                       int key_only, size_t *off, size_t *len)
{
    struct strbuf *sb = &r->arena;
    int first = 1;

    *off = sb->len;
    sb_addc(sb, '{');
    for (int i = 0; i < m->ncols; i++) {
        int c = m->colidx[i];
        if (c < 0 || c >= tup->nvalues || (key_only && !m->iskey[i]))
            continue;
        const struct pgo_value *v = &tup->values[c];
        if (v->kind == 'u' && fallback && c < fallback->nvalues &&
            (fallback->values[c].kind == 't' || fallback->values[c].kind == 'b'))
            v = &fallback->values[c];
        if (v->kind != 'n' && v->kind != 't' && v->kind != 'b')
            continue;
        if (!first)
            sb_addc(sb, ',');
        first = 0;
        json_add_string(sb, t->link_cols[i], strlen(t->link_cols[i]));
        sb_addc(sb, ':');
        if (v->kind == 'n')
            sb_add(sb, "null");
        else
            json_add_string(sb, v->data, v->len);
    }
    sb_addc(sb, '}');
    *len = sb->len - *off;
}

static struct rec *new_record(struct repl *r, char op, const struct reltarget *rt,
                              struct pgs_error *err)
{
    if (r->npending == r->cfg->producer_batch && flush_pending(r, err) < 0)
        return NULL;
    struct rec *c = &r->pending[r->npending++];
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->ent = rt->ent;
    c->tref = rt->tref;
    c->lsn = r->txn_lsn;
    c->xid = r->txn_xid;
    return c;
}

static int handle_message(struct repl *r, const struct pgo_msg *m, struct pgs_error *err)
{
    struct relmap *rm;
    struct rec *c;

    switch (m->type) {
    case PGO_BEGIN:
        r->in_txn = 1;
        r->txn_lsn = m->final_lsn;
        r->txn_xid = m->xid;
        return 0;
    case PGO_COMMIT:
        r->in_txn = 0;
        r->last_commit_end = m->end_lsn;
        r->stats.transactions++;
        return 0;
    case PGO_RELATION:
        relmap_update(r, m->rel);
        return 0;
    case PGO_INSERT:
    case PGO_UPDATE:
    case PGO_DELETE:
        rm = relmap_find(r, m->rel->oid);
        if (rm == NULL)
            return 0;
        if (rm->nt > 0)
            r->stats.changes_read++;
        /* one record per entry that uses the table; none: a table no entry uses (or no longer) */
        for (int k = 0; k < rm->nt; k++) {
            const struct reltarget *rt = &rm->t[k];
            const struct schema_table_ref *t = &r->aes[rt->ent]->tables[rt->tref];
            c = new_record(r, (char)m->type, rt, err);
            if (c == NULL)
                return -1;
            const struct pgo_tuple *old = m->old_kind ? &m->oldtup : NULL;
            if (m->type != PGO_DELETE)
                tuple_text(r, rt, t, &m->newtup, old, 0, &c->new_off, &c->new_len);
            if (old)
                tuple_text(r, rt, t, old, NULL, m->old_kind == 'K', &c->old_off, &c->old_len);
        }
        return 0;
    case PGO_TRUNCATE:
        for (int i = 0; i < m->ntruncated; i++) {
            rm = relmap_find(r, m->truncated[i]->oid);
            if (rm != NULL && rm->nt > 0)
                r->stats.changes_read++;
            for (int k = 0; rm != NULL && k < rm->nt; k++)
                if (new_record(r, CHANGE_TRUNCATE, &rm->t[k], err) == NULL)
                    return -1;
        }
        return 0;
    default:
        return 0; /* Origin, Type, Message: nothing to index */
    }
}

/* Read every frame available now; then write and confirm. */
static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct repl *r = w->data;
    struct pgs_error err;
    int reply = 0;
    uint64_t keepalive_end = 0;

    (void)loop;
    (void)revents;
    pgs_error_clear(&err);
    if (!PQconsumeInput(r->conn)) {
        pgs_error_set(&err, PGS_ERR_TRANSIENT, "lost the replication connection of slot \"%s\"",
                      r->slot);
        pgs_error_detail(&err, "%s", PQerrorMessage(r->conn));
        fail(r, &err);
        return;
    }
    for (;;) {
        char *buf = NULL;
        int len = PQgetCopyData(r->conn, &buf, 1);
        if (len == 0)
            break; /* nothing more for now */
        if (len < 0) {
            PGresult *res = PQgetResult(r->conn);
            pgs_error_set(&err, PGS_ERR_TRANSIENT, "replication stream of slot \"%s\" ended",
                          r->slot);
            pgs_error_detail(&err, "%s", PQerrorMessage(r->conn));
            PQclear(res);
            fail(r, &err);
            return;
        }
        struct pgo_frame f;
        struct pgo_msg m;
        int rv = pgo_parse_frame(buf, (size_t)len, &f, &err);
        if (rv == 0 && f.kind == 'k') {
            r->stats.server_lsn = f.wal_end;
            keepalive_end = f.wal_end;
            reply |= f.reply_requested;
        } else if (rv == 0 && f.kind == 'w') {
            if (f.wal_end > r->stats.server_lsn)
                r->stats.server_lsn = f.wal_end;
            rv = pgo_decode(r->dec, f.data, f.len, &m, &err);
            if (rv == 0)
                rv = handle_message(r, &m, &err);
        }
        PQfreemem(buf);
        if (rv < 0) {
            fail(r, &err);
            return;
        }
    }
    int held = flush_pending(r, &err) < 0 ? -1 : replicated(r, &err);
    if (held < 0) {
        fail(r, &err);
        return;
    }
    /* all decoded is in Redis (and on its replicas): complete transactions may be confirmed */
    if (held && r->last_commit_end > r->written_upto)
        r->written_upto = r->last_commit_end;
    /*
     * Idle, between transactions: the keepalive's position is safe to
     * confirm too, or a slot on an idle database would hold WAL forever.
     */
    if (held && !r->in_txn && keepalive_end > r->written_upto)
        r->written_upto = keepalive_end;
    if ((reply || r->written_upto != r->stats.confirmed_lsn) && send_status(r, 0, &err) < 0) {
        fail(r, &err);
        return;
    }
    if (r->legacy && r->drain_until != 0 && r->stats.confirmed_lsn >= r->drain_until) {
        legacy_done(r, "read up to the database slot's position", 1);
        return;
    }
    if (r->failing) {
        pgs_log(LOG_INFO, "replication stream recovered", "slot=%s", r->slot);
        r->failing = 0;
        backoff_reset(&r->backoff);
    }
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct repl *r = w->data;
    struct pgs_error err;
    (void)loop;
    (void)revents;
    if (r->conn == NULL)
        return;
    /* records a short WAIT held back: ask again, even when no WAL arrives */
    if (r->unreplicated) {
        int held = replicated(r, &err);
        if (held < 0) {
            fail(r, &err);
            return;
        }
        if (held && r->last_commit_end > r->written_upto)
            r->written_upto = r->last_commit_end;
    }
    if (r->legacy)
        legacy_target(r);
    /*
     * Redis replaced (a failover may have lost the hash): publish the routes
     * again, or a load would wait for them in vain.
     */
    if (!r->legacy && *r->rcp != NULL && redis_connect_count() != r->routes_conn &&
        publish_routes(r, &err) < 0)
        pgs_log(LOG_DEBUG, "cannot publish the routes yet", "slot=%s", r->slot);
    /* a legacy slot asks for a reply: the keepalive's position drains an idle slot */
    if (send_status(r, r->legacy, &err) < 0)
        fail(r, &err);
    else if (r->legacy && r->drain_until != 0 && r->stats.confirmed_lsn >= r->drain_until)
        legacy_done(r, "read up to the database slot's position", 1);
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct repl *r = w->data;
    if (!r->drained)
        repl_start(&r->base);
}

/* START_REPLICATION refused because another process reads the slot (SQLSTATE 55006)? */
static int is_slot_in_use(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state != NULL && strcmp(state, "55006") == 0;
}

/*
 * The active producer of a database slot writes the streams it publishes
 * (routes.h). One that lacks some of ours runs another schema file: our
 * indices would get nothing while we wait, so say so (once, and /healthz).
 */
static void standby_check_routes(struct repl *r)
{
    struct pgs_error err;
    int lacking = -1;
    if (r->legacy || *r->rcp == NULL ||
        routes_lacking(*r->rcp, r->cfg, r->slot, r->streams, r->nae, &lacking, &err) < 0)
        lacking = -1;
    if (lacking < 0) {
        r->stats.last_error[0] = '\0';
        return;
    }
    int first = r->stats.last_error[0] == '\0';
    snprintf(r->stats.last_error, sizeof(r->stats.last_error),
             "slot \"%s\" is read by another producer that does not write index \"%s\"'s "
             "stream (another schema file?): run one producer per database, with a schema "
             "file that holds every index on it",
             r->slot, app_entry_name(r->aes[lacking]));
    if (first)
        pgs_log(LOG_ERROR, "standby of a producer that serves other indices", "slot=%s error=\"%s\"",
                r->slot, r->stats.last_error);
}

/*
 * Another producer reads the slot: this one is its standby. It is no
 * failure (PostgreSQL lets one reader at a time), so no backoff: ask again
 * every STANDBY_POLL seconds and take over when the slot is free.
 */
static void wait_as_standby(struct repl *r)
{
    if (!r->stats.standby)
        pgs_log(LOG_INFO, "standby: another producer reads the slot; taking over when it stops",
                "slot=%s", r->slot);
    r->stats.standby = 1;
    standby_check_routes(r);
    close_stream(r);
    ev_timer_set(&r->retry_timer, STANDBY_POLL, 0);
    ev_timer_start(r->loop, &r->retry_timer);
}

/*
 * Streaming now, before reading a change: if the versions changed since
 * binding, the producer restarts within seconds (app_watch_versions) and
 * must not route a change without the new ones; otherwise publish which
 * streams this walsender feeds (routes.h). 0: go on; 1: closed, retried.
 */
static int publish_routes(struct repl *r, struct pgs_error *err)
{
    int rv = routes_publish(*r->rcp, r->cfg, r->slot, PQbackendPID(r->conn), r->streams, r->nae,
                            err);
    if (rv == 0)
        r->routes_conn = redis_connect_count();
    return rv;
}

static int serve_or_wait(struct repl *r, struct pgs_error *err)
{
    int changed = app_versions_changed(r->app, *r->rcp, err), rv = 0;
    if (changed == 0)
        rv = publish_routes(r, err);
    if (changed < 0 || rv < 0) {
        if (*r->rcp != NULL && redis_broken(*r->rcp)) {
            redis_close(*r->rcp);
            *r->rcp = NULL;
        }
        fail(r, err);
        return 1;
    }
    if (changed > 0) {
        pgs_log(LOG_INFO, "the index versions changed: reading nothing until the restart",
                "slot=%s", r->slot);
        close_stream(r);
        ev_timer_set(&r->retry_timer, STANDBY_POLL, 0);
        ev_timer_start(r->loop, &r->retry_timer);
        return 1;
    }
    return 0;
}

/* The database slot's confirmed position, the end of a legacy slot's drain (0: not yet). */
static void legacy_target(struct repl *r)
{
    struct pgs_error err;
    uint64_t lsn = 0;
    if (r->drain_until != 0 || bootstrap_slot_position(r->cfg, r->ae, &lsn, &err) < 0 || lsn == 0)
        return;
    char a[24];
    r->drain_until = lsn;
    pgs_log(LOG_DEBUG, "legacy slot: draining up to the database slot's position",
            "slot=%s until=%s database_slot=%s", r->slot, lsn_str(lsn, a), r->ae->slot);
}

/* A legacy slot has given all the database slot lacks (or is gone): drop it and its publication. */
static void legacy_done(struct repl *r, const char *why, int was_there)
{
    struct pgs_error err;
    char buf[1600];
    close_stream(r);
    ev_timer_stop(r->loop, &r->retry_timer);
    if (bootstrap_drop_legacy(r->cfg, r->ae, &err) < 0)
        pgs_log(LOG_WARN, "cannot drop a legacy slot: drop it by hand once the producer runs",
                "slot=%s publication=%s error=\"%s\"", r->slot, r->publication,
                pgs_error_str(&err, buf, sizeof(buf)));
    pgs_log(was_there ? LOG_INFO : LOG_DEBUG,
            "legacy slot done: the database slot serves the index now",
            "slot=%s publication=%s index=%s why=\"%s\"", r->slot, r->publication,
            app_entry_name(r->ae), why);
    r->drained = 1;
    r->stats.drained = 1;
    r->stats.last_error[0] = '\0';
}

static void repl_start(struct change_source *src)
{
    struct repl *r = (struct repl *)src;
    struct pgs_error err;
    struct strbuf sql;
    PGresult *res;

    pgs_error_clear(&err);
    if (r->legacy)
        legacy_target(r);
    /* Redis first: no point reading WAL that cannot be written anywhere */
    if (*r->rcp == NULL && (*r->rcp = redis_connect(r->cfg, &err)) == NULL) {
        fail(r, &err);
        return;
    }
    r->conn = config_pg_connect(r->cfg, r->ae->e->database, 1, "pgsync-producer", &err);
    if (r->conn == NULL) {
        fail(r, &err);
        return;
    }
    sb_init(&sql);
    sb_add(&sql, "START_REPLICATION SLOT ");
    sb_ident(&sql, r->slot);
    sb_add(&sql, " LOGICAL 0/0 (proto_version '1', publication_names ");
    {
        struct strbuf pub;
        sb_init(&pub);
        sb_ident(&pub, r->publication);
        sb_literal(&sql, pub.buf);
        sb_free(&pub);
    }
    sb_add(&sql, ")");
    res = PQexec(r->conn, sql.buf);
    sb_free(&sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH && is_slot_in_use(res)) {
        PQclear(res);
        wait_as_standby(r);
        return;
    }
    if (PQresultStatus(res) != PGRES_COPY_BOTH && r->legacy &&
        strstr(PQerrorMessage(r->conn), "does not exist")) {
        PQclear(res);
        legacy_done(r, "it does not exist", 0);
        return;
    }
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        pgs_error_set(&err, PGS_ERR_TRANSIENT, "cannot start replication on slot \"%s\"",
                      r->slot);
        pgs_error_detail(&err, "%s", PQerrorMessage(r->conn));
        if (strstr(PQerrorMessage(r->conn), "does not exist"))
            snprintf(err.msg, sizeof(err.msg),
                     "replication slot \"%s\" does not exist: run pgsync-bootstrap --config FILE",
                     r->slot);
        PQclear(res);
        fail(r, &err);
        return;
    }
    PQclear(res);
    if (!r->legacy && serve_or_wait(r, &err) != 0)
        return;
    PQsetnonblocking(r->conn, 1);
    r->dec = pgo_decoder_new();
    ev_io_init(&r->io, on_readable, PQsocket(r->conn), EV_READ);
    r->io.data = r;
    ev_io_start(r->loop, &r->io);
    ev_timer_again(r->loop, &r->status_timer);
    r->stats.connected = 1;
    /* a refusal by Redis stays the reason until a write succeeds (flush_pending) */
    if (!r->stats.redis_failing)
        r->stats.last_error[0] = '\0';
    if (r->stats.standby)
        pgs_log(LOG_INFO, "standby producer taking over the slot", "slot=%s", r->slot);
    r->stats.standby = 0;
    if (r->legacy)
        pgs_log(LOG_INFO, "draining a slot of one index's own into its stream",
                "slot=%s publication=%s stream=%s until=%s", r->slot, r->publication,
                r->ae->stream, r->drain_until ? "the database slot's position" : "(not yet known)");
    else
        pgs_log(LOG_INFO, "streaming", "slot=%s publication=%s streams=%d first=%s", r->slot,
                r->publication, r->nae, r->ae->stream);
    /* data may already be buffered inside libpq */
    ev_feed_event(r->loop, &r->io, EV_READ);
}

static int repl_stop(struct change_source *src)
{
    struct repl *r = (struct repl *)src;
    struct pgs_error err;
    int rv = 0;

    ev_timer_stop(r->loop, &r->retry_timer);
    if (r->conn) {
        /* finish the batch in hand and confirm what Redis (and its replicas) has */
        if (flush_pending(r, &err) < 0 || replicated(r, &err) < 1)
            rv = -1;
        else if (r->last_commit_end > r->written_upto)
            r->written_upto = r->last_commit_end;
        if (send_status(r, 0, &err) < 0)
            rv = -1;
    }
    close_stream(r);
    return rv;
}

static void repl_free(struct change_source *src)
{
    struct repl *r = (struct repl *)src;

    close_stream(r);
    free(r->aes);
    free(r->streams);
    free(r->pending);
    sb_free(&r->arena);
    free(r);
}
