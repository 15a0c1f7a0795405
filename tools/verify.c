/*
 * verify.c - compare an entry's documents in PostgreSQL with its index, and
 * repair the drift. See verify.h. The pure parts come first (equality, diff,
 * hex coding of ids, the merge); then the two streams (a cursor over the
 * document query ordered by _id COLLATE "C", and the index's scroll piped
 * through `LC_ALL=C sort`), the sample mode (random roots, realtime _mget)
 * and the versioned repair writes.
 */
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "keyset.h"
#include "log.h"
#include "lsn.h"

/* rows per FETCH from the database cursor */
#define VERIFY_FETCH_ROWS   1000
/* hits per scroll page */
#define VERIFY_SCROLL_SIZE  1000
/* root keys per document query and _mget in sample mode */
#define VERIFY_SAMPLE_CHUNK 500
/* differing paths kept per document */
#define VERIFY_MAX_FIELDS   20
/* a diff value longer than this is cut */
#define VERIFY_VALUE_MAX    120
/* drifted roots read again per query before their repair writes */
#define VERIFY_REPAIR_CHUNK 500
/* seconds between progress lines */
#define VERIFY_PROGRESS_S   5.0

/* ------------------------------------------------------------------------ */
/* pure parts: equality                                                     */
/* ------------------------------------------------------------------------ */

/* Integer and real compare by value: 1 == 1.0, but 2^53 + 1 != 2^53 as a real. */
static int verify_number_equal(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    if (json_is_real(a) && json_is_real(b))
        return json_real_value(a) == json_real_value(b);
    const json_t *i = json_is_integer(a) ? a : b;
    double r = json_real_value(json_is_integer(a) ? b : a);
    /* a real equals an integer only when it is integral and in range */
    if (r != floor(r) || r < -9223372036854775808.0 || r >= 9223372036854775808.0)
        return 0;
    return (json_int_t)r == json_integer_value(i);
}

int verify_json_equal(const json_t *a, const json_t *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (json_is_number(a) && json_is_number(b))
        return verify_number_equal(a, b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, key, v) {
            json_t *w = json_object_get(b, key);
            if (w == NULL || !verify_json_equal(v, w))
                return 0;
        }
        return 1;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!verify_json_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default:
        return 1; /* true, false, null: the type says it all */
    }
}

/* ------------------------------------------------------------------------ */
/* pure parts: diff                                                         */
/* ------------------------------------------------------------------------ */

static int verify_key_plain(const char *k)
{
    if (*k == '\0' || (*k >= '0' && *k <= '9'))
        return 0;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '-' || *k == '@' || *k == '$'))
            return 0;
    return 1;
}

/* "title", "a.b", or a quoted form for keys that would read ambiguously: a["x y"] */
static void verify_path_key(struct strbuf *path, const char *key)
{
    if (verify_key_plain(key)) {
        if (path->len > 0)
            sb_addc(path, '.');
        sb_add(path, key);
        return;
    }
    json_t *s = json_string(key);
    char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    sb_addc(path, '[');
    sb_add(path, q ? q : "\"?\"");
    sb_addc(path, ']');
    free(q);
    json_decref(s);
}

static void verify_path_truncate(struct strbuf *path, size_t len)
{
    path->len = len;
    path->buf[len] = '\0';
}

static int verify_cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void verify_diff_rec(const json_t *db, const json_t *ix, struct strbuf *path, json_t *out,
                            int max_paths, int *n)
{
    if (verify_json_equal(db, ix))
        return;
    if (json_is_object(db) && json_is_object(ix)) {
        /* the union of both key sets, in byte order, so the output is stable */
        size_t cap = json_object_size(db) + json_object_size(ix), nk = 0;
        const char **keys = xcalloc(cap ? cap : 1, sizeof(char *));
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)db, key, v) {
            keys[nk++] = key;
        }
        json_object_foreach((json_t *)ix, key, v) {
            if (json_object_get(db, key) == NULL)
                keys[nk++] = key;
        }
        qsort(keys, nk, sizeof(char *), verify_cmp_keys);
        for (size_t i = 0; i < nk; i++) {
            size_t len = path->len;
            verify_path_key(path, keys[i]);
            verify_diff_rec(json_object_get(db, keys[i]), json_object_get(ix, keys[i]), path, out,
                            max_paths, n);
            verify_path_truncate(path, len);
        }
        free(keys);
        return;
    }
    if (json_is_array(db) && json_is_array(ix)) {
        size_t na = json_array_size(db), nb = json_array_size(ix);
        for (size_t i = 0; i < (na > nb ? na : nb); i++) {
            size_t len = path->len;
            sb_printf(path, "[%zu]", i);
            verify_diff_rec(json_array_get(db, i), json_array_get(ix, i), path, out, max_paths, n);
            verify_path_truncate(path, len);
        }
        return;
    }
    /* a leaf, or two values of different types: one line */
    if (++*n > max_paths)
        return;
    json_t *d = json_object();
    json_object_set_new(d, "path", json_string(path->len ? path->buf : "."));
    if (db)
        json_object_set(d, "database", (json_t *)db);
    if (ix)
        json_object_set(d, "index", (json_t *)ix);
    json_array_append_new(out, d);
}

int verify_json_diff(const json_t *db, const json_t *ix, json_t *out, int max_paths)
{
    struct strbuf path;
    int n = 0;

    sb_init(&path);
    sb_add(&path, "");
    verify_diff_rec(db, ix, &path, out, max_paths, &n);
    sb_free(&path);
    return n;
}

static void verify_value_text(const json_t *v, struct strbuf *sb)
{
    if (v == NULL) {
        sb_add(sb, "(absent)");
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = s ? strlen(s) : 0;
    if (len > VERIFY_VALUE_MAX) {
        len = VERIFY_VALUE_MAX;
        /* never cut a UTF-8 sequence in two */
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
        sb_addn(sb, s, len);
        sb_add(sb, "...");
    } else {
        sb_addn(sb, s ? s : "?", s ? len : 1);
    }
    free(s);
}

void verify_diff_line(const json_t *d, struct strbuf *sb)
{
    const char *path = json_string_value(json_object_get(d, "path"));
    sb_add(sb, path ? path : ".");
    sb_add(sb, ": ");
    verify_value_text(json_object_get(d, "database"), sb);
    sb_add(sb, " != ");
    verify_value_text(json_object_get(d, "index"), sb);
}

json_t *verify_json_parse(const char *text, size_t len, struct pgs_error *err)
{
    json_error_t je;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *j = json_loadb(text, len, flags, &je);

    /* a huge integer: compare it as a real rather than not at all */
    if (j == NULL && json_error_code(&je) == json_error_numeric_overflow)
        j = json_loadb(text, len, flags | JSON_DECODE_INT_AS_REAL, &je);
    if (j == NULL) {
        pgs_error_set(err, PGS_ERR_FATAL, "unreadable JSON document");
        pgs_error_detail(err, "%s at line %d column %d", je.text, je.line, je.column);
    }
    return j;
}

/* ------------------------------------------------------------------------ */
/* pure parts: hex coding of ids                                            */
/* ------------------------------------------------------------------------ */

void verify_hex_encode(const char *s, size_t len, struct strbuf *sb)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        sb_addc(sb, digits[c >> 4]);
        sb_addc(sb, digits[c & 15]);
    }
}

int verify_hex_decode(const char *hex, size_t len, struct strbuf *sb)
{
    sb_reset(sb);
    sb_add(sb, "");
    if (len % 2)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = str_hexval(hex[i]), lo = str_hexval(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        sb_addc(sb, (char)(hi << 4 | lo));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* pure parts: the merge                                                    */
/* ------------------------------------------------------------------------ */

/* Step "it" to its next item; ids must ascend (strictly when "strict"). */
static int verify_advance(struct verify_iter *it, struct verify_item *cur, struct strbuf *prev,
                          int strict, const char *side, struct pgs_error *err)
{
    sb_reset(prev);
    sb_add(prev, cur->id);
    int r = it->next(it->ctx, cur, err);
    if (r > 0) {
        int c = strcmp(cur->id, prev->buf);
        if (c < 0 || (strict && c == 0)) {
            pgs_error_set(err, PGS_ERR_FATAL,
                          "the %s side is not in _id byte order: \"%s\" after "
                          "\"%s\"",
                          side, cur->id, prev->buf);
            return -1;
        }
    }
    return r;
}

int verify_merge(struct verify_iter *db, struct verify_iter *ix, uint64_t snapshot_version,
                 verify_result_fn fn, void *arg, struct verify_counts *counts,
                 struct pgs_error *err)
{
    struct verify_item d = {0}, x = {0};
    struct strbuf prev_d, prev_x;
    int hd, hx, rv = -1;

    memset(counts, 0, sizeof(*counts));
    sb_init(&prev_d);
    sb_init(&prev_x);
    hd = db->next(db->ctx, &d, err);
    if (hd < 0)
        goto out;
    hx = ix->next(ix->ctx, &x, err);
    if (hx < 0)
        goto out;

    while (hd > 0 || hx > 0) {
        int c = hx <= 0 ? -1 : hd <= 0 ? 1 : strcmp(d.id, x.id);
        /*
         * With custom routing, a copy under another routing value than the
         * row's (a value that changed, a delete that missed it) is not the
         * row's document: it is extra, and the row waits for its own copy
         * among the next ones of that _id (none: missing).
         */
        if (c == 0 && (d.routing != NULL || x.routing != NULL) &&
            (d.routing == NULL || x.routing == NULL || strcmp(d.routing, x.routing) != 0))
            c = 1;
        int newer = c >= 0 && snapshot_version > 0 && x.version > snapshot_version;
        enum verify_kind kind;
        json_t *dj = NULL, *xj = NULL;

        if (c == 0) {
            dj = verify_json_parse(d.doc, d.doclen, err);
            if (dj == NULL) {
                pgs_error_set(err, PGS_ERR_FATAL, "the database document \"%s\" is not JSON", d.id);
                goto out;
            }
            xj = verify_json_parse(x.doc, x.doclen, err);
            if (xj == NULL) {
                json_decref(dj);
                pgs_error_set(err, PGS_ERR_FATAL, "the index document \"%s\" is not JSON", x.id);
                goto out;
            }
            kind = verify_json_equal(dj, xj) ? VERIFY_SAME
                   : newer                   ? VERIFY_NEWER
                                             : VERIFY_DIFFERENT;
        } else if (c < 0) {
            kind = VERIFY_MISSING;
        } else {
            /* an index duplicate of an _id (custom routing) also lands here */
            kind = newer ? VERIFY_NEWER : VERIFY_EXTRA;
        }
        counts->checked++;
        switch (kind) {
        case VERIFY_SAME:
            counts->same++;
            break;
        case VERIFY_MISSING:
            counts->missing++;
            break;
        case VERIFY_EXTRA:
            counts->extra++;
            break;
        case VERIFY_DIFFERENT:
            counts->different++;
            break;
        case VERIFY_NEWER:
            counts->newer++;
            break;
        }
        int r = fn(arg, kind, c <= 0 ? &d : NULL, c >= 0 ? &x : NULL, dj, xj, err);
        json_decref(dj);
        json_decref(xj);
        if (r != 0)
            goto out;
        if (c <= 0 && (hd = verify_advance(db, &d, &prev_d, 1, "database", err)) < 0)
            goto out;
        if (c >= 0 && (hx = verify_advance(ix, &x, &prev_x, 0, "index", err)) < 0)
            goto out;
    }
    rv = 0;
out:
    sb_free(&prev_d);
    sb_free(&prev_x);
    return rv;
}

/* ------------------------------------------------------------------------ */
/* I/O: progress, the run's state, repair writes                            */
/* ------------------------------------------------------------------------ */

static double verify_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct verify_run {
    const struct config *cfg;
    struct app_entry *ae;
    struct es_client *es;
    const struct verify_opts *opts;
    struct verify_result *res;
    struct es_bulk bulk;
    struct keyset pending; /* root keys of documents to re-index */
    PGconn *fresh;         /* reads the documents to write, outside the snapshot */
    double start, last;
    long long seen;
};

static void verify_progress(struct verify_run *r, const char *phase, long long n)
{
    double t = verify_now();
    if (!r->opts->progress || t - r->last < VERIFY_PROGRESS_S)
        return;
    r->last = t;
    pgs_log(LOG_INFO, "verifying", "index=%s phase=%s docs=%lld rate=%.0f", r->res->index, phase, n,
            n / (t - r->start > 1e-6 ? t - r->start : 1e-6));
}

static int verify_stopped(struct verify_run *r, struct pgs_error *err)
{
    if (r->opts->stop && *r->opts->stop) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "interrupted");
        return 1;
    }
    return 0;
}

/* The routing value: the document's field named by the entry's "routing" (as bulk.c). */
static char *verify_routing_of(const struct schema_entry *e, const json_t *doc)
{
    json_t *v = e->routing ? json_object_get(doc, e->routing) : NULL;
    char buf[32];
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return xstrdup(buf);
    }
    return NULL;
}

static int verify_repair_flush(struct verify_run *r, struct pgs_error *err)
{
    if (r->bulk.n == 0)
        return 0;
    if (es_bulk_flush(r->es, &r->bulk, r->opts->stop, err) < 0)
        return -1;
    for (int i = 0; i < r->bulk.n; i++) {
        const struct es_bulk_item *it = &r->bulk.items[i];
        if (it->cls == ES_ITEM_OK && it->status == 409) {
            r->res->repair_conflicts++; /* a newer copy is there: it wins, as it should */
        } else if (it->cls == ES_ITEM_OK) {
            r->res->repaired++;
        } else {
            r->res->repair_failed++;
            pgs_log(LOG_WARN, "repair refused", "index=%s id=%s status=%d error=%s reason=\"%s\"",
                    it->index, it->id, it->status, it->error_type, it->reason);
        }
    }
    es_bulk_reset(&r->bulk);
    return 0;
}

/*
 * Queue index writes for the pending roots, read again now, outside the
 * snapshot: a root deleted since the snapshot must not come back (by the
 * time we write, the index may have forgotten the tombstone of the delete
 * that removed it), and a fresher copy can only be better. The version stays
 * the snapshot's, so a consumer's write of any later commit still wins.
 */
static int verify_repair_fetch(struct verify_run *r, struct pgs_error *err)
{
    const struct sqlgen *g = &r->ae->sql;
    const struct schema_entry *e = r->ae->e;
    struct strbuf *arrays;
    const char **params;
    PGresult *res;
    int rv = -1;

    if (r->pending.n == 0)
        return 0;
    if (r->fresh == NULL) {
        r->fresh = config_pg_connect(r->cfg, e->database, 0, "pgsync-verify", err);
        if (r->fresh == NULL)
            return -1;
    }
    arrays = xcalloc((size_t)g->npk, sizeof(struct strbuf));
    params = xcalloc((size_t)g->npk, sizeof(char *));
    for (int c = 0; c < g->npk; c++) {
        sb_init(&arrays[c]);
        keyset_pg_array(&r->pending, c, 0, r->pending.n, &arrays[c]);
        params[c] = arrays[c].buf;
    }
    res = PQexecParams(r->fresh, g->doc_by_keys, g->npk, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "the document query failed on database \"%s\"",
                      e->database);
        pgs_error_detail(err, "%s", PQerrorMessage(r->fresh));
        goto out;
    }
    /* roots gone since the snapshot: the consumers delete their documents */
    r->res->repair_conflicts += r->pending.n - PQntuples(res);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *doc = PQgetvalue(res, i, 1);
        size_t len = (size_t)PQgetlength(res, i, 1);
        char *routing = NULL;
        if (e->routing) {
            json_t *parsed = verify_json_parse(doc, len, err);
            routing = verify_routing_of(e, parsed);
            json_decref(parsed);
        }
        es_bulk_add(&r->bulk, ES_OP_INDEX, r->ae->index, PQgetvalue(res, i, 0), r->res->version, doc,
                    len, routing, e->pipeline, NULL);
        free(routing);
    }
    keyset_clear(&r->pending);
    rv = 0;
    if (r->bulk.bytes >= (size_t)r->cfg->bulk_max_bytes)
        rv = verify_repair_flush(r, err);
out:
    PQclear(res);
    for (int c = 0; c < g->npk; c++)
        sb_free(&arrays[c]);
    free(arrays);
    free(params);
    return rv;
}

/* The last repairs: what is pending, then what is buffered. */
static int verify_repair_finish(struct verify_run *r, struct pgs_error *err)
{
    if (verify_repair_fetch(r, err) < 0)
        return -1;
    return verify_repair_flush(r, err);
}

/* Keep the first few drifted documents, with their field diff, for the report. */
static void verify_record(struct verify_run *r, enum verify_kind kind, const char *id,
                          const json_t *dj, const json_t *xj)
{
    static const char *const names[] = {"same", "missing", "extra", "different", "newer"};
    if ((int)json_array_size(r->res->diffs) >= r->opts->max_diffs)
        return;
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(names[kind]));
    json_object_set_new(o, "id", json_string(id));
    if (kind == VERIFY_DIFFERENT) {
        json_t *fields = json_array();
        int n = verify_json_diff(dj, xj, fields, VERIFY_MAX_FIELDS);
        json_object_set_new(o, "fields", fields);
        if (n > VERIFY_MAX_FIELDS)
            json_object_set_new(o, "more_fields", json_integer(n - VERIFY_MAX_FIELDS));
    }
    json_array_append_new(r->res->diffs, o);
}

/*
 * One _id's verdict: remember it for the report and queue its repair. The
 * repair writes carry the snapshot's version with external_gte, so a copy
 * the consumers wrote after the snapshot is never replaced (409, left alone).
 */
static int verify_on_result(void *arg, enum verify_kind kind, const struct verify_item *db,
                            const struct verify_item *ix, const json_t *dj, const json_t *xj,
                            struct pgs_error *err)
{
    struct verify_run *r = arg;
    const struct schema_entry *e = r->ae->e;

    verify_progress(r, "compare", ++r->seen);
    if (kind == VERIFY_SAME || kind == VERIFY_NEWER)
        return 0;
    verify_record(r, kind, db ? db->id : ix->id, dj, xj);
    if (!r->opts->repair)
        return 0;
    if (kind == VERIFY_EXTRA) {
        es_bulk_add(&r->bulk, ES_OP_DELETE, r->ae->index, ix->id, r->res->version, NULL, 0, ix->routing,
                    NULL, NULL);
    } else if (db->keys) {
        keyset_add(&r->pending, db->keys);
        if (r->pending.n >= VERIFY_REPAIR_CHUNK)
            return verify_repair_fetch(r, err);
    } else {
        char *routing = NULL;
        if (e->routing) {
            json_t *parsed = dj ? NULL : verify_json_parse(db->doc, db->doclen, err);
            routing = verify_routing_of(e, dj ? dj : parsed);
            json_decref(parsed);
        }
        es_bulk_add(&r->bulk, ES_OP_INDEX, r->ae->index, db->id, r->res->version, db->doc, db->doclen,
                    routing, e->pipeline, NULL);
        free(routing);
    }
    if (r->bulk.bytes >= (size_t)r->cfg->bulk_max_bytes)
        return verify_repair_flush(r, err);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* I/O: the database side                                                   */
/* ------------------------------------------------------------------------ */

static int verify_exec(PGconn *conn, const char *sql, ExecStatusType want, PGresult **out,
                       struct pgs_error *err)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != want) {
        pgs_error_set(err, PQstatus(conn) == CONNECTION_OK ? PGS_ERR_FATAL : PGS_ERR_TRANSIENT,
                      "verify: \"%.80s%s\" failed", sql, strlen(sql) > 80 ? "..." : "");
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

/*
 * Open a REPEATABLE READ transaction on "conn" and set r->res->version so
 * that every transaction in the snapshot committed at or below it.
 *
 * With --repair the version guards writes, so it must be exact: like the
 * initial load, take the snapshot a temporary slot exports and use one below
 * its consistent point (changes committed later come through the stream with
 * a higher version and win). Read-only, the WAL position read before the
 * snapshot is enough (it only tells copies written after the snapshot) and
 * needs no replication privilege.
 */
static int verify_snapshot(struct verify_run *r, PGconn **conn, PGconn **repl,
                           struct pgs_error *err)
{
    const char *db = r->ae->e->database;
    PGresult *res = NULL;
    struct strbuf sql;
    char slot[64];
    int rv = -1;

    sb_init(&sql);
    *conn = config_pg_connect(r->cfg, db, 0, "pgsync-verify", err);
    if (*conn == NULL)
        goto out;
    if (r->opts->repair) {
        *repl = config_pg_connect(r->cfg, db, 1, "pgsync-verify", err);
        if (*repl == NULL)
            goto out;
        snprintf(slot, sizeof(slot), "pgsync_verify_%d", (int)getpid());
        sb_add(&sql, "CREATE_REPLICATION_SLOT ");
        sb_ident(&sql, slot);
        sb_add(&sql, " TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT");
        if (verify_exec(*repl, sql.buf, PGRES_TUPLES_OK, &res, err) < 0)
            goto out;
        uint64_t cp = 0;
        if (PQntuples(res) != 1 || lsn_parse(PQgetvalue(res, 0, 1), &cp) < 0 || cp == 0) {
            pgs_error_set(err, PGS_ERR_FATAL, "verify: bad answer to CREATE_REPLICATION_SLOT");
            goto out;
        }
        r->res->version = cp - 1;
        if (verify_exec(*conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK,
                        NULL, err) < 0)
            goto out;
        sb_reset(&sql);
        sb_add(&sql, "SET TRANSACTION SNAPSHOT ");
        sb_literal(&sql, PQgetvalue(res, 0, 2));
        if (verify_exec(*conn, sql.buf, PGRES_COMMAND_OK, NULL, err) < 0)
            goto out;
    } else {
        if (verify_exec(*conn, "SELECT (pg_current_wal_lsn() - '0/0')::text", PGRES_TUPLES_OK, &res,
                        err) < 0)
            goto out;
        r->res->version = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        /* the snapshot is taken by the transaction's first query, after the read above */
        if (verify_exec(*conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK,
                        NULL, err) < 0)
            goto out;
    }
    rv = 0;
out:
    PQclear(res);
    sb_free(&sql);
    return rv;
}

struct verify_cursor {
    PGconn *conn;
    PGresult *res;
    int row, nrows, last;
    struct verify_run *run;
    const char *keys[64];
    char *routing; /* the current row's routing value (entries with "routing") */
};

static int verify_cursor_next(void *ctx, struct verify_item *out, struct pgs_error *err)
{
    struct verify_cursor *c = ctx;
    char fetch[64];

    if (c->row >= c->nrows) {
        PQclear(c->res);
        c->res = NULL;
        c->row = c->nrows = 0;
        if (c->last || verify_stopped(c->run, err))
            return c->last ? 0 : -1;
        snprintf(fetch, sizeof(fetch), "FETCH %d FROM pgsync_verify", VERIFY_FETCH_ROWS);
        if (verify_exec(c->conn, fetch, PGRES_TUPLES_OK, &c->res, err) < 0)
            return -1;
        c->nrows = PQntuples(c->res);
        c->last = c->nrows < VERIFY_FETCH_ROWS;
        if (c->nrows == 0)
            return 0;
    }
    out->id = PQgetvalue(c->res, c->row, 0);
    out->doc = PQgetvalue(c->res, c->row, 1);
    out->doclen = (size_t)PQgetlength(c->res, c->row, 1);
    out->version = 0;
    free(c->routing);
    c->routing = NULL;
    if (c->run->ae->e->routing != NULL) {
        json_t *doc = verify_json_parse(out->doc, out->doclen, err);
        if (doc == NULL)
            return -1;
        c->routing = verify_routing_of(c->run->ae->e, doc);
        json_decref(doc);
    }
    out->routing = c->routing;
    for (int k = 0; k < c->run->ae->sql.npk; k++)
        c->keys[k] = PQgetvalue(c->res, c->row, 2 + k);
    out->keys = c->keys;
    c->row++;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* I/O: the index side                                                      */
/* ------------------------------------------------------------------------ */

/* "/<index><suffix>" with the index percent-escaped. */
static void verify_index_path(struct strbuf *sb, const char *index, const char *suffix)
{
    sb_reset(sb);
    sb_addc(sb, '/');
    for (const char *p = index; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-')
            sb_addc(sb, (char)c);
        else
            sb_printf(sb, "%%%02X", c);
    }
    sb_add(sb, suffix);
}

/* An answer that is not 2xx: the status and the start of the body. */
static void verify_http_error(struct pgs_error *err, const char *what, const char *index,
                              long status, const char *resp)
{
    pgs_error_set(err,
                  status == 401 || status == 403 || (status >= 400 && status < 429)
                      ? PGS_ERR_FATAL
                      : PGS_ERR_TRANSIENT,
                  "cannot %s index \"%s\": HTTP %ld", what, index, status);
    pgs_error_detail(err, "%.300s", resp ? resp : "");
}

/*
 * `LC_ALL=C sort` as a child: we write lines to "to", close it, and read them
 * back sorted from "from". sort keeps at most 16 MB in memory and spills the
 * rest to $TMPDIR; it writes nothing before its input ends, so the two
 * pipes cannot deadlock.
 */
struct verify_sorter {
    pid_t pid;
    FILE *to, *from;
};

static int verify_sorter_start(struct verify_sorter *s, struct pgs_error *err)
{
    int in[2], out[2];

    memset(s, 0, sizeof(*s));
    if (pipe2(in, O_CLOEXEC) < 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot create a pipe: %s", strerror(errno));
        close(in[0]);
        close(in[1]);
        return -1;
    }
    /* byte order on both sides: our locale is never consulted, sort's must be C */
    setenv("LC_ALL", "C", 1);
    fflush(NULL);
    s->pid = fork();
    if (s->pid == 0) {
        /* dup2 clears close-on-exec on 0 and 1 only: sort holds no other pipe end */
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(127);
        execlp("sort", "sort", "-S", "16M", "--parallel=1", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (s->pid < 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot start sort: %s", strerror(errno));
        close(in[1]);
        close(out[0]);
        return -1;
    }
    s->to = fdopen(in[1], "w");
    s->from = fdopen(out[0], "r");
    return 0;
}

/* Close both pipes and reap sort; -1 when it failed (only checked when "check"). */
static int verify_sorter_end(struct verify_sorter *s, int check, struct pgs_error *err)
{
    int status = 0;
    if (s->pid <= 0)
        return 0;
    /* giving up: stop the sort we started (by its pid) before it writes into a closed pipe */
    if (!check)
        kill(s->pid, SIGTERM);
    if (s->to)
        fclose(s->to);
    if (s->from)
        fclose(s->from);
    s->to = s->from = NULL;
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
    if (check && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        pgs_error_set(err, PGS_ERR_FATAL, "sort failed (status %d)",
                      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        pgs_error_detail(err, "is coreutils' sort on PATH, and is there room in $TMPDIR?");
        return -1;
    }
    return 0;
}

/* One scroll hit as a line: hex(_id) TAB _version TAB hex(_routing) TAB compact _source. */
static int verify_write_hit(FILE *to, const json_t *hit, struct strbuf *line)
{
    const char *id = json_string_value(json_object_get(hit, "_id"));
    const char *routing = json_string_value(json_object_get(hit, "_routing"));
    json_t *src = json_object_get(hit, "_source");
    json_t *ver = json_object_get(hit, "_version");

    if (id == NULL)
        return 0;
    sb_reset(line);
    verify_hex_encode(id, strlen(id), line);
    sb_printf(line, "\t%" JSON_INTEGER_FORMAT "\t",
              json_is_integer(ver) ? json_integer_value(ver) : (json_int_t)0);
    if (routing)
        verify_hex_encode(routing, strlen(routing), line);
    sb_addc(line, '\t');
    /* compact JSON escapes every control character: the line ends where it should */
    char *doc = json_dumps(src ? src : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    sb_add(line, doc ? doc : "null");
    free(doc);
    sb_addc(line, '\n');
    return fwrite(line->buf, 1, line->len, to) == line->len ? 0 : -1;
}

/*
 * One page of the scroll: its hits written to the sorter "to" ("*nhits" of
 * them), its "_scroll_id" kept in "*scroll_id" (replacing the one before).
 */
static int verify_scroll_page(struct verify_run *r, FILE *to, const char *resp, char **scroll_id,
                              size_t *nhits, struct strbuf *line, struct pgs_error *err)
{
    json_error_t je;
    int rv = -1;

    json_t *root = json_loads(resp, JSON_ALLOW_NUL, &je);
    if (root == NULL)
        root = json_loads(resp, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
    json_t *hits = json_object_get(json_object_get(root, "hits"), "hits");
    const char *sid = json_string_value(json_object_get(root, "_scroll_id"));
    if (!json_is_array(hits) || sid == NULL) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "cannot scroll index \"%s\": no hits or "
                      "_scroll_id in the answer",
                      r->ae->index);
        goto out;
    }
    /* a shard left out would read as missing documents, and --repair would rewrite them */
    if (es_search_complete(root, r->ae->index, err) < 0)
        goto out;
    free(*scroll_id);
    *scroll_id = xstrdup(sid);
    *nhits = json_array_size(hits);
    for (size_t i = 0; i < *nhits; i++) {
        if (verify_write_hit(to, json_array_get(hits, i), line) < 0) {
            pgs_error_set(err, PGS_ERR_FATAL, "cannot write to sort: %s", strerror(errno));
            goto out;
        }
    }
    rv = 0;
out:
    json_decref(root);
    return rv;
}

/* The request of the scroll's next page into "path" and "body". */
static void verify_scroll_next(struct strbuf *path, struct strbuf *body, const char *scroll_id)
{
    sb_reset(path);
    sb_add(path, "/_search/scroll");
    json_t *b = json_pack("{s:s, s:s}", "scroll", "2m", "scroll_id", scroll_id);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    sb_reset(body);
    sb_add(body, text);
    free(text);
}

/* Free the search context now rather than in two minutes; the answer does not matter. */
static void verify_scroll_clear(struct verify_run *r, const char *scroll_id)
{
    json_t *b = json_pack("{s:[s]}", "scroll_id", scroll_id);
    char *text = json_dumps(b, JSON_COMPACT);
    struct pgs_error ignored;
    char *resp = NULL;
    long status;

    if (es_request(r->es, "DELETE", "/_search/scroll", text, strlen(text), "application/json",
                   &status, &resp, &ignored) == 0)
        free(resp);
    free(text);
    json_decref(b);
}

/* Scroll the whole index (_doc order: the cheapest) into the sorter. */
static int verify_dump_index(struct verify_run *r, FILE *to, struct pgs_error *err)
{
    const char *index = r->ae->index;
    struct strbuf path, body, line;
    char *resp = NULL, *scroll_id = NULL;
    long status;
    long long n = 0;
    int rv = -1;

    sb_init(&path);
    sb_init(&body);
    sb_init(&line);
    verify_index_path(&path, index, "/_search?scroll=2m&allow_partial_search_results=false");
    sb_printf(&body,
              "{\"size\":%d,\"sort\":[\"_doc\"],\"version\":true,"
              "\"query\":{\"match_all\":{}}}",
              VERIFY_SCROLL_SIZE);
    for (;;) {
        size_t nh = 0;
        if (verify_stopped(r, err))
            goto out;
        if (es_request(r->es, "POST", path.buf, body.buf, body.len, "application/json", &status,
                       &resp, err) < 0)
            goto out;
        if (status != 200) {
            verify_http_error(err, "scroll", index, status, resp);
            goto out;
        }
        int page = verify_scroll_page(r, to, resp, &scroll_id, &nh, &line, err);
        free(resp);
        resp = NULL;
        if (page < 0)
            goto out;
        n += (long long)nh;
        verify_progress(r, "read-index", n);
        if (nh == 0)
            break;
        verify_scroll_next(&path, &body, scroll_id);
    }
    rv = 0;
out:
    if (scroll_id)
        verify_scroll_clear(r, scroll_id);
    free(scroll_id);
    free(resp);
    sb_free(&path);
    sb_free(&body);
    sb_free(&line);
    return rv;
}

/* The sorted lines read back as items. */
struct verify_lines {
    FILE *in; /* NULL: an empty side (no index) */
    char *line;
    size_t cap;
    struct strbuf id, routing;
};

static int verify_lines_next(void *ctx, struct verify_item *out, struct pgs_error *err)
{
    struct verify_lines *l = ctx;
    if (l->in == NULL)
        return 0;
    errno = 0;
    ssize_t n = getline(&l->line, &l->cap, l->in);
    if (n < 0) {
        if (ferror(l->in)) {
            pgs_error_set(err, PGS_ERR_FATAL, "cannot read from sort: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    if (n > 0 && l->line[n - 1] == '\n')
        l->line[--n] = '\0';
    char *t1 = memchr(l->line, '\t', (size_t)n);
    char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
    if (t3 == NULL || verify_hex_decode(l->line, (size_t)(t1 - l->line), &l->id) < 0 ||
        verify_hex_decode(t2 + 1, (size_t)(t3 - t2 - 1), &l->routing) < 0) {
        pgs_error_set(err, PGS_ERR_FATAL, "a bad line came back from sort");
        pgs_error_detail(err, "%.200s", l->line);
        return -1;
    }
    out->id = l->id.buf;
    out->version = strtoull(t1 + 1, NULL, 10);
    out->routing = l->routing.len ? l->routing.buf : NULL;
    out->doc = t3 + 1;
    out->doclen = (size_t)(l->line + n - (t3 + 1));
    return 1;
}

/* ------------------------------------------------------------------------ */
/* the whole comparison                                                     */
/* ------------------------------------------------------------------------ */

static int verify_full(struct verify_run *r, PGconn *conn, int index_exists, struct pgs_error *err)
{
    struct verify_sorter sorter = {0};
    struct verify_lines lines = {0};
    struct verify_cursor cursor = {.conn = conn, .run = r};
    struct strbuf sql;
    long status;
    char *resp = NULL;
    int rv = -1;

    sb_init(&sql);
    sb_init(&lines.id);
    sb_init(&lines.routing);
    /* C collation is byte order: the same order as strcmp and as sort under LC_ALL=C */
    sb_add(&sql, "DECLARE pgsync_verify NO SCROLL CURSOR FOR SELECT _id, doc");
    for (int k = 0; k < r->ae->sql.npk; k++)
        sb_printf(&sql, ", k%d", k);
    sb_printf(&sql, " FROM (%s) d ORDER BY _id COLLATE \"C\"", r->ae->sql.doc_all);
    if (verify_exec(conn, sql.buf, PGRES_COMMAND_OK, NULL, err) < 0)
        goto out;

    if (index_exists) {
        /* a search sees only what the last refresh published */
        sb_reset(&sql);
        verify_index_path(&sql, r->ae->index, "/_refresh");
        if (es_request(r->es, "POST", sql.buf, NULL, 0, NULL, &status, &resp, err) < 0)
            goto out;
        if (status != 200) {
            verify_http_error(err, "refresh", r->ae->index, status, resp);
            goto out;
        }
        free(resp);
        resp = NULL;
        if (verify_sorter_start(&sorter, err) < 0)
            goto out;
        if (verify_dump_index(r, sorter.to, err) < 0)
            goto out;
        if (fclose(sorter.to) != 0) {
            sorter.to = NULL;
            pgs_error_set(err, PGS_ERR_FATAL, "cannot write to sort: %s", strerror(errno));
            goto out;
        }
        sorter.to = NULL; /* EOF: sort starts writing */
        lines.in = sorter.from;
    }

    struct verify_iter db = {verify_cursor_next, &cursor}, ix = {verify_lines_next, &lines};
    if (verify_merge(&db, &ix, r->res->version, verify_on_result, r, &r->res->counts, err) < 0)
        goto out;
    if (verify_repair_finish(r, err) < 0)
        goto out;
    if (verify_sorter_end(&sorter, 1, err) < 0)
        goto out;
    rv = 0;
out:
    if (rv < 0)
        verify_sorter_end(&sorter, 0, err);
    PQclear(cursor.res);
    free(cursor.routing);
    free(lines.line);
    sb_free(&lines.id);
    sb_free(&lines.routing);
    sb_free(&sql);
    free(resp);
    return rv;
}

/* _mget "n" documents of "res" (rows from the document query); fills "found" per row. */
static int verify_mget(struct verify_run *r, PGresult *res, int n, json_t **found,
                       struct pgs_error *err)
{
    const struct schema_entry *e = r->ae->e;
    json_t *docs = json_array(), *body = json_pack("{s:o}", "docs", docs);
    struct strbuf path;
    char *text, *resp = NULL;
    long status;
    int rv = -1;

    for (int i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s}", "_id", PQgetvalue(res, i, 0));
        if (e->routing) {
            json_t *doc =
                verify_json_parse(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), err);
            char *routing = verify_routing_of(e, doc);
            if (routing)
                json_object_set_new(d, "routing", json_string(routing));
            free(routing);
            json_decref(doc);
        }
        json_array_append_new(docs, d);
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    sb_init(&path);
    verify_index_path(&path, r->ae->index, "/_mget?realtime=true");
    int q = es_request(r->es, "POST", path.buf, text, strlen(text), "application/json", &status,
                       &resp, err);
    free(text);
    sb_free(&path);
    if (q < 0)
        return -1;
    if (status == 404) {
        rv = 0; /* no index: every document is missing */
        goto out;
    }
    if (status != 200) {
        verify_http_error(err, "read (_mget) from", r->ae->index, status, resp);
        goto out;
    }
    json_error_t je;
    json_t *root = json_loads(resp, JSON_ALLOW_NUL, &je);
    if (root == NULL)
        root = json_loads(resp, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
    json_t *got = json_object_get(root, "docs");
    if (json_array_size(got) != (size_t)n) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "cannot read (_mget) from index \"%s\": %zu "
                      "answers for %d ids",
                      r->ae->index, json_array_size(got), n);
        json_decref(root);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        json_t *g = json_array_get(got, (size_t)i);
        if (json_is_true(json_object_get(g, "found")))
            found[i] = json_incref(g);
    }
    json_decref(root);
    rv = 0;
out:
    free(resp);
    return rv;
}

/* The keys of "--sample" random root rows into "keys". */
static int verify_sample_keys(struct verify_run *r, PGconn *conn, struct keyset *keys,
                              struct pgs_error *err)
{
    const struct schema_node *root = r->ae->e->root;
    struct strbuf sql;
    PGresult *res = NULL;

    sb_init(&sql);
    sb_add(&sql, "SELECT ");
    for (int k = 0; k < root->npk; k++) {
        if (k)
            sb_add(&sql, ", ");
        sb_ident(&sql, root->pk[k]);
        sb_add(&sql, "::text");
    }
    sb_add(&sql, " FROM ");
    sb_ident(&sql, root->schema);
    sb_addc(&sql, '.');
    sb_ident(&sql, root->table);
    sb_printf(&sql, " ORDER BY random() LIMIT %lld", r->opts->sample);
    int rv = verify_exec(conn, sql.buf, PGRES_TUPLES_OK, &res, err);
    sb_free(&sql);
    if (rv < 0)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *vals[64];
        for (int k = 0; k < r->ae->sql.npk; k++)
            vals[k] = PQgetvalue(res, i, k);
        keyset_add(keys, vals);
    }
    PQclear(res);
    return 0;
}

/*
 * Judge row "i" of the document query against "found" (its _mget answer,
 * NULL when the index has no such document) and record the result.
 * Returns 0, or non-zero to stop.
 */
static int verify_sample_row(struct verify_run *r, PGresult *res, int i, json_t *found,
                             struct pgs_error *err)
{
    const char *kv[64];
    for (int k = 0; k < r->ae->sql.npk; k++)
        kv[k] = PQgetvalue(res, i, 2 + k);
    struct verify_item d = {PQgetvalue(res, i, 0),
                            PQgetvalue(res, i, 1),
                            (size_t)PQgetlength(res, i, 1),
                            0,
                            NULL,
                            kv};
    struct verify_item x = {d.id, NULL, 0, 0, NULL, NULL};
    json_t *dj = NULL, *xj = found ? json_object_get(found, "_source") : NULL;
    enum verify_kind kind = VERIFY_MISSING;
    struct verify_counts *cnt = &r->res->counts;

    if (xj) {
        json_t *v = json_object_get(found, "_version");
        x.version = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
        x.routing = json_string_value(json_object_get(found, "_routing"));
        dj = verify_json_parse(d.doc, d.doclen, err);
        if (dj == NULL)
            return -1;
        kind = verify_json_equal(dj, xj)     ? VERIFY_SAME
               : x.version > r->res->version ? VERIFY_NEWER
                                             : VERIFY_DIFFERENT;
    }
    cnt->checked++;
    cnt->same += kind == VERIFY_SAME;
    cnt->missing += kind == VERIFY_MISSING;
    cnt->different += kind == VERIFY_DIFFERENT;
    cnt->newer += kind == VERIFY_NEWER;
    int cb = verify_on_result(r, kind, &d, xj ? &x : NULL, dj, xj, err);
    json_decref(dj);
    return cb;
}

/* The keys [from, to) of "keys": their documents from the database, then from the index. */
static int verify_sample_chunk(struct verify_run *r, PGconn *conn, const struct keyset *keys,
                               int from, int to, struct strbuf *arrays, json_t **found,
                               struct pgs_error *err)
{
    const struct sqlgen *g = &r->ae->sql;
    const char **params = xcalloc((size_t)g->npk, sizeof(char *));
    int rv = -1, n = 0;

    for (int c = 0; c < g->npk; c++) {
        keyset_pg_array(keys, c, from, to, &arrays[c]);
        params[c] = arrays[c].buf;
    }
    PGresult *res = PQexecParams(conn, g->doc_by_keys, g->npk, NULL, params, NULL, NULL, 0);
    free(params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "the document query failed on database \"%s\"",
                      r->ae->e->database);
        pgs_error_detail(err, "%s", PQerrorMessage(conn));
        goto out;
    }
    n = PQntuples(res);
    memset(found, 0, VERIFY_SAMPLE_CHUNK * sizeof(json_t *));
    if (n > 0 && verify_mget(r, res, n, found, err) < 0)
        goto out;
    for (int i = 0; i < n; i++)
        if (verify_sample_row(r, res, i, found[i], err) != 0)
            goto out;
    rv = 0;
out:
    for (int i = 0; i < n; i++) {
        json_decref(found[i]);
        found[i] = NULL;
    }
    PQclear(res);
    return rv;
}

/* --sample: random root rows, their documents by key, and a realtime _mget of those ids. */
static int verify_sample(struct verify_run *r, PGconn *conn, struct pgs_error *err)
{
    const struct sqlgen *g = &r->ae->sql;
    struct keyset keys;
    struct strbuf *arrays = xcalloc((size_t)g->npk, sizeof(struct strbuf));
    json_t **found = xcalloc(VERIFY_SAMPLE_CHUNK, sizeof(json_t *));
    int rv = -1;

    keyset_init(&keys, g->npk);
    for (int c = 0; c < g->npk; c++)
        sb_init(&arrays[c]);
    if (verify_sample_keys(r, conn, &keys, err) < 0)
        goto out;
    for (int from = 0; from < keys.n; from += VERIFY_SAMPLE_CHUNK) {
        int to = from + VERIFY_SAMPLE_CHUNK < keys.n ? from + VERIFY_SAMPLE_CHUNK : keys.n;
        if (verify_stopped(r, err))
            goto out;
        if (verify_sample_chunk(r, conn, &keys, from, to, arrays, found, err) < 0)
            goto out;
    }
    if (verify_repair_finish(r, err) < 0)
        goto out;
    rv = 0;
out:
    free(found);
    keyset_free(&keys);
    for (int c = 0; c < g->npk; c++)
        sb_free(&arrays[c]);
    free(arrays);
    return rv;
}

int verify_entry(const struct config *cfg, struct app_entry *ae, struct es_client *es,
                 const struct verify_opts *opts, struct verify_result *res, struct pgs_error *err)
{
    struct verify_run r = {.cfg = cfg, .ae = ae, .es = es, .opts = opts, .res = res};
    PGconn *conn = NULL, *repl = NULL;
    int exists = 0, rv = -1;

    memset(res, 0, sizeof(*res));
    snprintf(res->index, sizeof(res->index), "%s", app_entry_name(ae));
    res->sampled = opts->sample > 0;
    res->diffs = json_array();
    r.start = r.last = verify_now();
    es_bulk_init(&r.bulk);
    keyset_init(&r.pending, ae->sql.npk);

    if (ae->sql.npk > 64) {
        pgs_error_set(err, PGS_ERR_SCHEMA, "index \"%s\": more than 64 root key columns",
                      ae->index);
        goto out;
    }
    if (es_index_exists(es, ae->index, &exists, err) < 0)
        goto out;
    if (!exists && opts->repair) {
        if (app_ensure_index(ae, es, err) < 0)
            goto out;
        exists = 1;
    }
    if (verify_snapshot(&r, &conn, &repl, err) < 0)
        goto out;
    int cmp = opts->sample > 0 ? verify_sample(&r, conn, err) : verify_full(&r, conn, exists, err);
    if (cmp < 0)
        goto out;
    if (verify_exec(conn, "COMMIT", PGRES_COMMAND_OK, NULL, err) < 0)
        goto out;
    rv = 0;
out:
    res->seconds = verify_now() - r.start;
    es_bulk_deinit(&r.bulk);
    keyset_free(&r.pending);
    if (r.fresh)
        PQfinish(r.fresh);
    if (conn)
        PQfinish(conn);
    if (repl)
        PQfinish(repl); /* drops the temporary slot */
    return rv;
}

void verify_result_free(struct verify_result *res)
{
    json_decref(res->diffs);
    res->diffs = NULL;
}

int verify_result_drift(const struct verify_result *res)
{
    return res->counts.missing + res->counts.extra + res->counts.different > 0;
}
