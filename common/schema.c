/*
 * schema.c - reads PGSync's schema.json into a tree of nodes, reporting
 * every structural problem with its JSON path (and line:column, found by a
 * second pass over the text that follows jansson's tree), then resolves the
 * tree against the catalog: columns, primary keys, the joins between nodes
 * and the columns each table's change records must carry.
 */
#include "schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "strbuf.h"

#define SCHEMA_MAX_DEPTH    32       /* nesting of children; deeper is a mistake or a cycle */
#define SCHEMA_MAX_PROBLEMS 200      /* then one "too many problems" line */
#define SCHEMA_MAX_FILE     (16 << 20)
#define SCHEMA_MAX_REPLACE  8        /* schema_field.replace_from[] */

/* ------------------------------------------------------- string helpers */

static char *xasprintf(const char *fmt, ...) PGS_PRINTF(1, 2);
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void strv_free(char **v, int n)
{
    if (v == NULL)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char **strv_dup(char *const *v, int n)
{
    char **d;

    if (n <= 0)
        return NULL;
    d = xmalloc((size_t)n * sizeof(*d));
    for (int i = 0; i < n; i++)
        d[i] = xstrdup(v[i]);
    return d;
}

static int strv_index(char *const *v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return i;
    return -1;
}

/* Append "s" to the set "v" unless present. */
static void strv_add_unique(char ***v, int *n, const char *s)
{
    if (strv_index(*v, *n, s) >= 0)
        return;
    *v = xrealloc(*v, (size_t)(*n + 1) * sizeof(**v));
    (*v)[(*n)++] = xstrdup(s);
}

/* -------------------------------------------------------------- problems */

static void problems_vadd(struct schema_problems *p, const char *fmt, va_list ap)
{
    char *s;
    int n;
    va_list ap2;

    if (p->n > SCHEMA_MAX_PROBLEMS)
        return;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->items = xrealloc(p->items, (size_t)p->cap * sizeof(*p->items));
    }
    if (p->n == SCHEMA_MAX_PROBLEMS) {
        p->items[p->n++] = xasprintf("too many problems: only the first %d are shown",
                                     SCHEMA_MAX_PROBLEMS);
        return;
    }
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    s = xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    p->items[p->n++] = s;
}

void schema_problems_add(struct schema_problems *p, const char *fmt, ...)
{
    va_list ap;

    if (p == NULL)
        return;
    va_start(ap, fmt);
    problems_vadd(p, fmt, ap);
    va_end(ap);
}

void schema_problems_free(struct schema_problems *p)
{
    if (p == NULL)
        return;
    strv_free(p->items, p->n);
    memset(p, 0, sizeof(*p));
}

/* ---------------------------------------------------- did you mean ...? */

/* Optimal string alignment distance: a swap of two neighbours costs 1. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int *d, r;

    if (la > 64 || lb > 64)
        return 1000; /* not a typo of anything we know */
    d = xmalloc((la + 1) * (lb + 1) * sizeof(int));
#define D(i, j) d[(i) * (lb + 1) + (j)]
    for (size_t i = 0; i <= la; i++)
        D(i, 0) = (int)i;
    for (size_t j = 0; j <= lb; j++)
        D(0, j) = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = D(i - 1, j) + 1;
            if (D(i, j - 1) + 1 < v)
                v = D(i, j - 1) + 1;
            if (D(i - 1, j - 1) + cost < v)
                v = D(i - 1, j - 1) + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                D(i - 2, j - 2) + 1 < v)
                v = D(i - 2, j - 2) + 1;
            D(i, j) = v;
        }
    }
    r = D(la, lb);
#undef D
    free(d);
    return r;
}

/* Is "cand" close enough to "word" to suggest? Returns the distance or -1. */
static int near_miss(const char *word, const char *cand)
{
    int d = edit_distance(word, cand);
    int len = (int)strlen(word);
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;

    return d > 0 && d <= limit ? d : -1;
}

/* The closest of "cands" (NULL-terminated) to "word", or NULL. */
static const char *suggest(const char *word, const char *const *cands)
{
    const char *best = NULL;
    int bestd = 1000;

    for (; *cands != NULL; cands++) {
        int d = near_miss(word, *cands);
        if (d >= 0 && d < bestd) {
            best = *cands;
            bestd = d;
        }
    }
    return best;
}

/* ------------------------------------------------------------ formatting */

/* Ring of buffers for quoted names inside one message. */
struct qring {
    char buf[8][160];
    int i;
};

/* "s" as a double-quoted, escaped, length-limited string for a message. */
static const char *q(struct qring *r, const char *s)
{
    char *out = r->buf[r->i++ % 8];
    size_t o = 0, cap = sizeof(r->buf[0]);

    if (s == NULL)
        return "(none)";
    out[o++] = '"';
    for (; *s != '\0' && o < cap - 8; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (*s != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static const char *json_type_word(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

static int ident_like(const char *k)
{
    if (*k == '\0')
        return 0;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '-'))
            return 0;
    return 1;
}

/* "$[0].nodes" + "children" -> "$[0].nodes.children"; odd keys as ["k"] */
static char *jp_key(const char *base, const char *key)
{
    if (ident_like(key))
        return xasprintf("%s.%s", base, key);
    struct qring r = {.i = 0};
    return xasprintf("%s[%s]", base, q(&r, key));
}

static char *jp_idx(const char *base, size_t i)
{
    return xasprintf("%s[%zu]", base, i);
}

/* ------------------------------------------------- positions in the text */

/*
 * jansson gives no positions for values, so a second pass walks the text
 * alongside the parsed tree: jansson keeps object keys in insertion order
 * and we reject duplicate keys, so the i-th key in the text is the i-th key
 * of the object. Positions are recorded by the address of the json_t (or of
 * the key string) and looked up by binary search.
 */
struct pos {
    const void *ptr;
    int line, col;
};

struct posidx {
    struct pos *v;
    int n, cap;
};

struct walker {
    const char *p, *end;
    int line, col;
    struct posidx *idx;
};

static void pos_add(struct posidx *x, const void *ptr, int line, int col)
{
    if (ptr == NULL)
        return;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 256;
        x->v = xrealloc(x->v, (size_t)x->cap * sizeof(*x->v));
    }
    x->v[x->n].ptr = ptr;
    x->v[x->n].line = line;
    x->v[x->n].col = col;
    x->n++;
}

static int pos_cmp(const void *a, const void *b)
{
    const struct pos *x = a, *y = b;
    return (x->ptr > y->ptr) - (x->ptr < y->ptr);
}

static void pos_find(const struct posidx *x, const void *ptr, int *line, int *col)
{
    struct pos key = {ptr, 0, 0};
    const struct pos *hit = NULL;

    if (x != NULL && x->n > 0 && ptr != NULL)
        hit = bsearch(&key, x->v, (size_t)x->n, sizeof(*x->v), pos_cmp);
    *line = hit ? hit->line : 0;
    *col = hit ? hit->col : 0;
}

/* Columns count characters, as jansson's do: UTF-8 continuation bytes don't count. */
static void w_adv(struct walker *w)
{
    if (w->p >= w->end)
        return;
    if (*w->p == '\n') {
        w->line++;
        w->col = 1;
    } else if (((unsigned char)*w->p & 0xC0) != 0x80) {
        w->col++;
    }
    w->p++;
}

static void w_ws(struct walker *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
        w_adv(w);
}

static void w_string(struct walker *w)
{
    w_adv(w); /* the opening quote */
    while (w->p < w->end && *w->p != '"') {
        if (*w->p == '\\')
            w_adv(w);
        w_adv(w);
    }
    w_adv(w);
}

static int w_at(const struct walker *w, char c)
{
    return w->p < w->end && *w->p == c;
}

/* Walk one value; "v" is its jansson twin or NULL when the two went out of step. */
static void w_value(struct walker *w, json_t *v, int depth)
{
    w_ws(w);
    if (w->p >= w->end || depth > 4096)
        return;
    if (v != NULL && !json_is_true(v) && !json_is_false(v) && !json_is_null(v))
        pos_add(w->idx, v, w->line, w->col);
    if (*w->p == '{') {
        void *it = json_is_object(v) ? json_object_iter(v) : NULL;
        w_adv(w);
        w_ws(w);
        while (w->p < w->end && *w->p != '}') {
            if (!w_at(w, '"'))
                return;
            if (it != NULL)
                pos_add(w->idx, json_object_iter_key(it), w->line, w->col);
            w_string(w);
            w_ws(w);
            if (!w_at(w, ':'))
                return;
            w_adv(w);
            w_value(w, it ? json_object_iter_value(it) : NULL, depth + 1);
            if (it != NULL)
                it = json_object_iter_next(v, it);
            w_ws(w);
            if (!w_at(w, ','))
                break;
            w_adv(w);
            w_ws(w);
        }
        w_adv(w);
    } else if (*w->p == '[') {
        size_t i = 0;
        w_adv(w);
        w_ws(w);
        while (w->p < w->end && *w->p != ']') {
            const char *before = w->p;
            w_value(w, json_is_array(v) ? json_array_get(v, i) : NULL, depth + 1);
            i++;
            w_ws(w);
            if (w->p == before)
                return; /* no progress: not the JSON we expected */
            if (!w_at(w, ','))
                break;
            w_adv(w);
            w_ws(w);
        }
        w_adv(w);
    } else if (*w->p == '"') {
        w_string(w);
    } else {
        while (w->p < w->end && strchr(",]} \t\r\n", *w->p) == NULL)
            w_adv(w);
    }
}

/* ------------------------------------------------------------ the parser */

struct pctx {
    const char *file;
    int flags; /* SCHEMA_IGNORE_PLUGINS */
    struct posidx pos;
    struct schema_problems *probs;
    struct schema_problems *warnings;
    int nerr;
    struct qring qr;
    struct schema_node **nodes; /* of the entry being parsed, by id */
    int nnodes, capnodes;
};

static void vreport(struct schema_problems *p, const char *file, int line, int col,
                    const char *jpath, const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (line > 0)
        schema_problems_add(p, "%s:%d:%d: %s: %s", file, line, col, jpath, msg);
    else
        schema_problems_add(p, "%s: %s: %s", file, jpath, msg);
}

/* A problem about the value (or key string) at address "at", whose path is "jpath". */
static void prob(struct pctx *c, const void *at, const char *jpath, const char *fmt, ...)
    PGS_PRINTF(4, 5);
static void prob(struct pctx *c, const void *at, const char *jpath, const char *fmt, ...)
{
    va_list ap;
    int line, col;

    pos_find(&c->pos, at, &line, &col);
    c->nerr++;
    va_start(ap, fmt);
    vreport(c->probs, c->file, line, col, jpath, fmt, ap);
    va_end(ap);
}

static void warn(struct pctx *c, const void *at, const char *jpath, const char *fmt, ...)
    PGS_PRINTF(4, 5);
static void warn(struct pctx *c, const void *at, const char *jpath, const char *fmt, ...)
{
    va_list ap;
    int line, col;

    pos_find(&c->pos, at, &line, &col);
    va_start(ap, fmt);
    vreport(c->warnings, c->file, line, col, jpath, fmt, ap);
    va_end(ap);
    if (c->warnings->n > 0 && c->warnings->n <= SCHEMA_MAX_PROBLEMS)
        pgs_log(LOG_WARN, c->warnings->items[c->warnings->n - 1], NULL);
}

/* Report every key of "obj" not in "known", with a suggestion. "in" names the object. */
static void check_keys(struct pctx *c, json_t *obj, const char *jpath, const char *const *known,
                       const char *what, const char *in)
{
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val) {
        int ok = 0;
        for (const char *const *k = known; *k != NULL; k++)
            if (strcmp(*k, key) == 0)
                ok = 1;
        if (ok)
            continue;
        const char *s = suggest(key, known);
        char hint[200] = "";
        if (s != NULL)
            snprintf(hint, sizeof(hint), " (did you mean %s?)", q(&c->qr, s));
        prob(c, key, jpath, "unknown %s %s in %s%s", what, q(&c->qr, key), in, hint);
    }
}

/* Optional string member: 1 when set, 0 when absent, -1 (reported) when not a string. */
static int get_string(struct pctx *c, json_t *obj, const char *key, const char *jpath,
                      const char *in, int nonempty, char **out)
{
    json_t *v = json_object_get(obj, key);
    char *p;

    if (v == NULL)
        return 0;
    p = jp_key(jpath, key);
    if (!json_is_string(v)) {
        prob(c, v, p, "%s of %s must be a string, not %s", q(&c->qr, key), in, json_type_word(v));
        free(p);
        return -1;
    }
    if (nonempty && json_string_length(v) == 0) {
        prob(c, v, p, "%s of %s is empty", q(&c->qr, key), in);
        free(p);
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        prob(c, v, p, "%s of %s holds a NUL character", q(&c->qr, key), in);
        free(p);
        return -1;
    }
    free(p);
    *out = xstrdup(json_string_value(v));
    return 1;
}

/* Optional array-of-strings member; same returns as get_string. */
static int get_strv(struct pctx *c, json_t *obj, const char *key, const char *jpath,
                    const char *in, char ***out, int *nout)
{
    json_t *v = json_object_get(obj, key), *el;
    char *p;
    size_t i;
    int bad = 0;

    *out = NULL;
    *nout = 0;
    if (v == NULL)
        return 0;
    p = jp_key(jpath, key);
    if (!json_is_array(v)) {
        prob(c, v, p, "%s of %s must be an array of strings, not %s", q(&c->qr, key), in,
             json_type_word(v));
        free(p);
        return -1;
    }
    json_array_foreach(v, i, el) {
        if (!json_is_string(el) || json_string_length(el) == 0 ||
            strlen(json_string_value(el)) != json_string_length(el)) {
            char *pi = jp_idx(p, i);
            prob(c, el, pi, "%s of %s must hold non-empty strings, not %s", q(&c->qr, key), in,
                 json_is_string(el) ? "an empty string" : json_type_word(el));
            free(pi);
            bad = 1;
        }
    }
    if (bad) {
        free(p);
        return -1;
    }
    *nout = (int)json_array_size(v);
    *out = xmalloc((size_t)*nout * sizeof(char *));
    json_array_foreach(v, i, el) {
        (*out)[i] = xstrdup(json_string_value(el));
    }
    free(p);
    return 1;
}

/* "a.b" -> schema "a", table "b"; "b" -> "dflt", "b" */
static void split_qualified(const char *name, const char *dflt, char **schema, char **table)
{
    const char *dot = strchr(name, '.');

    if (dot != NULL && dot != name && dot[1] != '\0') {
        *schema = xstrndup(name, (size_t)(dot - name));
        *table = xstrdup(dot + 1);
    } else {
        *schema = xstrdup(dflt);
        *table = xstrdup(name);
    }
}

/* --------------------------------------------------------- column specs */

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* Length of the JSON operator at "s" (->, ->>, #>, #>>), 0 when none. */
static int json_op_len(const char *s)
{
    if ((s[0] == '-' || s[0] == '#') && s[1] == '>')
        return s[2] == '>' ? 3 : 2;
    return 0;
}

static void field_push_path(struct schema_field *f, const char *b, size_t n)
{
    f->path = xrealloc(f->path, (size_t)(f->npath + 1) * sizeof(char *));
    f->path[f->npath++] = xstrndup(b, n);
}

/* Trim the spaces and tabs before "end", not going back past "begin". */
static const char *trim_end(const char *begin, const char *end)
{
    while (end > begin && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

/* #> '{a,b}': the keys of a path array, each pushed onto f->path. */
static int field_push_hash_path(struct schema_field *f, const char *b, const char *z, char *why,
                                size_t whylen)
{
    if (*b == '{' && z[-1] == '}') {
        b++;
        z--;
    }
    while (b < z) {
        const char *comma = memchr(b, ',', (size_t)(z - b));
        const char *ke = comma ? comma : z, *kb = b;
        while (kb < ke && *kb == ' ')
            kb++;
        while (ke > kb && ke[-1] == ' ')
            ke--;
        if (ke == kb) {
            snprintf(why, whylen, "an empty key in a #> path");
            return -1;
        }
        field_push_path(f, kb, (size_t)(ke - kb));
        b = comma ? comma + 1 : z;
    }
    if (f->npath == 0) {
        snprintf(why, whylen, "an empty #> path");
        return -1;
    }
    return 0;
}

/*
 * One JSON operator at "*pe" and its operand, quoted or bare: the operand's
 * keys go onto f->path and "*pe" moves to the next operator or the end.
 */
static int field_parse_step(struct schema_field *f, const char **pe, char *why, size_t whylen)
{
    const char *e = *pe;
    int oplen = json_op_len(e);
    int is_hash = e[0] == '#';
    const char *opnd, *stop;

    f->last_text = oplen == 3;
    opnd = skip_space(e + oplen);
    if (*opnd == '\'' || *opnd == '"') {
        char quote = *opnd;
        stop = strchr(opnd + 1, quote);
        if (stop == NULL) {
            snprintf(why, whylen, "unterminated quote after the JSON operator");
            return -1;
        }
        opnd++;
        e = skip_space(stop + 1);
        if (*e != '\0' && json_op_len(e) == 0) {
            snprintf(why, whylen, "unexpected text after a quoted JSON key");
            return -1;
        }
    } else {
        for (stop = opnd; *stop != '\0' && json_op_len(stop) == 0; stop++)
            ;
        e = stop;
        stop = trim_end(opnd, stop);
    }
    *pe = e;
    if (stop == opnd) {
        snprintf(why, whylen, "an empty key after a JSON operator");
        return -1;
    }
    if (is_hash)
        return field_push_hash_path(f, opnd, stop, why, whylen);
    field_push_path(f, opnd, (size_t)(stop - opnd));
    return 0;
}

/*
 * PGSync names a JSON path field by its column and path keys joined with
 * "_" ("data->key" and "data->>key" are "data_key", "tags->0" is
 * "tags_0"): "rename" refers to that name.
 */
static void field_make_key(struct schema_field *f)
{
    size_t len = strlen(f->column) + 1;

    for (int i = 0; i < f->npath; i++)
        len += strlen(f->path[i]) + 1;
    f->key = xmalloc(len);
    strcpy(f->key, f->column);
    for (int i = 0; i < f->npath; i++) {
        strcat(f->key, "_");
        strcat(f->key, f->path[i]);
    }
}

/*
 * "name", "data->key", "data->>key", "data->'a'->>'b'", "data #>> '{a,b}'":
 * the column, then JSON path keys. Returns 0, or -1 with a reason in "why".
 */
static int field_parse_spec(struct schema_field *f, const char *spec, char *why, size_t whylen)
{
    const char *s = skip_space(spec), *e, *t;

    memset(f, 0, sizeof(*f));
    f->spec = xstrdup(spec);
    for (e = s; *e != '\0' && json_op_len(e) == 0; e++)
        ;
    t = trim_end(s, e);
    if (t == s) {
        snprintf(why, whylen, "no column name before the JSON operator");
        return -1;
    }
    f->column = xstrndup(s, (size_t)(t - s));
    while (*e != '\0')
        if (field_parse_step(f, &e, why, whylen) < 0)
            return -1;
    field_make_key(f);
    return 0;
}

static void field_free(struct schema_field *f)
{
    free(f->spec);
    free(f->column);
    strv_free(f->path, f->npath);
    free(f->key);
    for (int i = 0; i < f->nreplace; i++) {
        free(f->replace_from[i]);
        free(f->replace_to[i]);
    }
    memset(f, 0, sizeof(*f));
}

/* transform.rename and transform.replace onto the fields' keys. */
static void fields_apply_transform(struct schema_node *n)
{
    json_t *rename = json_object_get(n->transform, "rename");
    json_t *replace = json_object_get(n->transform, "replace");

    for (int i = 0; i < n->nfields; i++) {
        struct schema_field *f = &n->fields[i];
        json_t *to = json_object_get(rename, f->key);
        json_t *pairs = json_object_get(replace, f->key);
        const char *from;
        json_t *val;

        if (json_is_string(to)) {
            if (pairs == NULL)
                pairs = json_object_get(replace, json_string_value(to));
            free(f->key);
            f->key = xstrdup(json_string_value(to));
        }
        if (!json_is_object(pairs))
            continue;
        json_object_foreach(pairs, from, val) {
            if (f->nreplace == SCHEMA_MAX_REPLACE || !json_is_string(val))
                break;
            f->replace_from[f->nreplace] = xstrdup(from);
            f->replace_to[f->nreplace] = xstrdup(json_string_value(val));
            f->nreplace++;
        }
    }
}

/* ------------------------------------------------------------ transform */

static const char *const transform_keys[] = {"rename",  "mapping", "concat",
                                             "replace", "move",    NULL};
static const char *const concat_keys[] = {"columns", "destination", "delimiter", NULL};

static void parse_concat_one(struct pctx *c, struct schema_node *n, json_t *j, const char *jpath,
                             const char *in)
{
    struct schema_concat cc = {0};

    if (!json_is_object(j)) {
        prob(c, j, jpath, "a concat in %s must be an object with \"columns\" and \"destination\", "
                          "not %s", in, json_type_word(j));
        return;
    }
    check_keys(c, j, jpath, concat_keys, "key", "a concat transform");
    int okc = get_strv(c, j, "columns", jpath, "a concat transform", &cc.columns, &cc.ncolumns);
    int okd = get_string(c, j, "destination", jpath, "a concat transform", 1, &cc.destination);
    int okl = get_string(c, j, "delimiter", jpath, "a concat transform", 0, &cc.delimiter);
    if (okc == 0 || (okc > 0 && cc.ncolumns == 0))
        prob(c, j, jpath, "a concat transform in %s needs a non-empty \"columns\"", in);
    if (okd == 0)
        prob(c, j, jpath, "a concat transform in %s needs a \"destination\"", in);
    if (okc <= 0 || cc.ncolumns == 0 || okd <= 0 || okl < 0) {
        strv_free(cc.columns, cc.ncolumns);
        free(cc.destination);
        free(cc.delimiter);
        return;
    }
    if (cc.delimiter == NULL)
        cc.delimiter = xstrdup("");
    n->concat = xrealloc(n->concat, (size_t)(n->nconcat + 1) * sizeof(*n->concat));
    n->concat[n->nconcat++] = cc;
}

/* transform.rename: "column": "new name"; nested renames are warned about, not done. */
static void parse_transform_rename(struct pctx *c, json_t *v, const char *p)
{
    json_t *el;
    const char *key;

    if (!json_is_object(v)) {
        prob(c, v, p, "\"rename\" must be an object of \"column\": \"new name\", not %s",
             json_type_word(v));
        return;
    }
    json_object_foreach(v, key, el) {
        if (json_is_object(el))
            warn(c, key, p, "renaming keys inside %s (a nested rename) is not supported: "
                            "ignored", q(&c->qr, key));
        else if (!json_is_string(el) || json_string_length(el) == 0)
            prob(c, el, p, "the new name of %s must be a non-empty string, not %s",
                 q(&c->qr, key), json_type_word(el));
    }
}

/* transform.mapping: kept as the node's index mapping only when every entry is an object. */
static void parse_transform_mapping(struct pctx *c, struct schema_node *n, json_t *v,
                                    const char *p)
{
    json_t *el;
    const char *key;
    int ok = 1;

    if (!json_is_object(v)) {
        prob(c, v, p, "\"mapping\" must be an object of \"field\": {\"type\": ...}, not %s",
             json_type_word(v));
        return;
    }
    json_object_foreach(v, key, el) {
        if (!json_is_object(el)) {
            prob(c, el, p, "the mapping of %s must be an object, not %s", q(&c->qr, key),
                 json_type_word(el));
            ok = 0;
        }
    }
    if (ok)
        n->es_mapping = json_incref(v);
}

/* transform.concat: one concat object or an array of them. */
static void parse_transform_concat(struct pctx *c, struct schema_node *n, json_t *v,
                                   const char *p, const char *in)
{
    json_t *el;
    size_t i;

    if (!json_is_array(v)) {
        parse_concat_one(c, n, v, p, in);
        return;
    }
    json_array_foreach(v, i, el) {
        char *pi = jp_idx(p, i);
        parse_concat_one(c, n, el, pi, in);
        free(pi);
    }
}

/* transform.replace: "column": {"old": "new", ...}, at most SCHEMA_MAX_REPLACE pairs. */
static void parse_transform_replace(struct pctx *c, json_t *v, const char *p)
{
    json_t *el;
    const char *key;

    if (!json_is_object(v)) {
        prob(c, v, p, "\"replace\" must be an object of \"column\": {\"old\": \"new\"}, not %s",
             json_type_word(v));
        return;
    }
    json_object_foreach(v, key, el) {
        const char *from;
        json_t *to;
        if (!json_is_object(el)) {
            prob(c, el, p, "the replacements of %s must be an object of \"old\": \"new\", "
                           "not %s", q(&c->qr, key), json_type_word(el));
            continue;
        }
        if (json_object_size(el) > SCHEMA_MAX_REPLACE)
            prob(c, el, p, "%s has %zu replacements; at most %d are supported",
                 q(&c->qr, key), json_object_size(el), SCHEMA_MAX_REPLACE);
        json_object_foreach(el, from, to) {
            if (!json_is_string(to))
                prob(c, to, p, "the replacement of %s in %s must be a string, not %s",
                     q(&c->qr, from), q(&c->qr, key), json_type_word(to));
        }
    }
}

static void parse_transform(struct pctx *c, struct schema_node *n, json_t *t, const char *jpath,
                            const char *in)
{
    json_t *v;
    char *p;

    if (!json_is_object(t)) {
        prob(c, t, jpath, "\"transform\" of %s must be an object, not %s", in, json_type_word(t));
        return;
    }
    n->transform = json_incref(t);
    check_keys(c, t, jpath, transform_keys, "transform", in);

    if ((v = json_object_get(t, "rename")) != NULL) {
        p = jp_key(jpath, "rename");
        parse_transform_rename(c, v, p);
        free(p);
    }
    if ((v = json_object_get(t, "mapping")) != NULL) {
        p = jp_key(jpath, "mapping");
        parse_transform_mapping(c, n, v, p);
        free(p);
    }
    if ((v = json_object_get(t, "concat")) != NULL) {
        p = jp_key(jpath, "concat");
        parse_transform_concat(c, n, v, p, in);
        free(p);
    }
    if ((v = json_object_get(t, "replace")) != NULL) {
        p = jp_key(jpath, "replace");
        parse_transform_replace(c, v, p);
        free(p);
    }
    if ((v = json_object_get(t, "move")) != NULL)
        warn(c, v, jpath, "transform \"move\" of %s is not supported: ignored", in);
}

/* ----------------------------------------------------------- relationship */

static const char *const rel_keys[] = {"variant", "type", "through_tables", "foreign_key", NULL};
static const char *const fk_keys[] = {"child", "parent", NULL};
static const char *const variant_words[] = {"object", "scalar", NULL};
static const char *const type_words[] = {"one_to_one", "one_to_many", NULL};

/* "word" among "words" ignoring case (PGSync lowercases them); index or -1 */
static int word_index(const char *word, const char *const *words)
{
    for (int i = 0; words[i] != NULL; i++)
        if (strcasecmp(word, words[i]) == 0)
            return i;
    return -1;
}

/*
 * The word member "key" of relationship "r", one of "words" ignoring case
 * ("expected" names them for people). Returns 1 with its index in "*w" (-1
 * when unknown, reported with a suggestion), or 0 when absent or not a
 * non-empty string (reported).
 */
static int parse_rel_word(struct pctx *c, json_t *r, const char *jpath, const char *what,
                          const char *key, const char *const *words, const char *expected, int *w)
{
    char *s = NULL;
    int ok = get_string(c, r, key, jpath, what, 1, &s);

    if (ok == 0)
        prob(c, r, jpath, "%s has no \"%s\" (%s)", what, key, expected);
    if (ok <= 0)
        return 0;
    *w = word_index(s, words);
    if (*w < 0) {
        const char *sg = suggest(s, words);
        char *p = jp_key(jpath, key);
        prob(c, json_object_get(r, key), p, "unknown %s %s in %s (expected %s)%s%s%s", key,
             q(&c->qr, s), what, expected, sg ? "; did you mean " : "", sg ? q(&c->qr, sg) : "",
             sg ? "?" : "");
        free(p);
    }
    free(s);
    return 1;
}

/* relationship.through_tables: one table, qualified by the node's schema when bare. */
static void parse_rel_through(struct pctx *c, struct schema_node *n, json_t *r, const char *jpath,
                              const char *what)
{
    char **tt = NULL;
    int ntt = 0;

    if (get_strv(c, r, "through_tables", jpath, what, &tt, &ntt) <= 0)
        return;
    if (ntt > 1) {
        char *p = jp_key(jpath, "through_tables");
        prob(c, json_object_get(r, "through_tables"), p,
             "%d through tables in %s: only one through table is supported yet", ntt, what);
        free(p);
    } else if (ntt == 1) {
        split_qualified(tt[0], n->schema ? n->schema : "public", &n->through_schema,
                        &n->through_table);
    }
    strv_free(tt, ntt);
}

/* relationship.foreign_key: {"child": [...], "parent": [...]}, as many columns on each side. */
static void parse_rel_foreign_key(struct pctx *c, struct schema_node *n, json_t *fk,
                                  const char *p, const char *in)
{
    char **ch = NULL, **pa = NULL;
    int nch = 0, npa = 0;

    if (!json_is_object(fk)) {
        prob(c, fk, p, "\"foreign_key\" of %s must be an object {\"child\": [...], \"parent\": "
                       "[...]}, not %s", in, json_type_word(fk));
        return;
    }
    char *fwhat = xasprintf("the foreign_key of %s", in);
    check_keys(c, fk, p, fk_keys, "key", fwhat);
    int okc = get_strv(c, fk, "child", p, fwhat, &ch, &nch);
    int okp = get_strv(c, fk, "parent", p, fwhat, &pa, &npa);
    if (okc == 0 || okp == 0)
        prob(c, fk, p, "%s needs both \"child\" and \"parent\" columns", fwhat);
    else if (okc > 0 && okp > 0 && (nch != npa || nch == 0))
        prob(c, fk, p, "%s: \"child\" has %d columns but \"parent\" has %d", fwhat, nch, npa);
    else if (okc > 0 && okp > 0) {
        n->fk_child = ch;
        n->fk_parent = pa;
        n->nfk = nch;
        ch = pa = NULL;
    }
    if (n->nfk > 0 && n->through_table != NULL)
        warn(c, fk, p, "%s is ignored with a through table: the catalog's foreign keys "
                       "are used", fwhat);
    strv_free(ch, nch);
    strv_free(pa, npa);
    free(fwhat);
}

static void parse_relationship(struct pctx *c, struct schema_node *n, json_t *r,
                               const char *jpath, const char *in)
{
    json_t *fk;
    int w;

    if (!json_is_object(r)) {
        prob(c, r, jpath, "\"relationship\" of %s must be an object, not %s", in,
             json_type_word(r));
        return;
    }
    char *what = xasprintf("the relationship of %s", in);
    check_keys(c, r, jpath, rel_keys, "key", what);

    if (parse_rel_word(c, r, jpath, what, "variant", variant_words, "\"object\" or \"scalar\"",
                       &w))
        n->variant = w == 1 ? REL_SCALAR : REL_OBJECT;
    if (parse_rel_word(c, r, jpath, what, "type", type_words,
                       "\"one_to_one\" or \"one_to_many\"", &w))
        n->rel_type = w == 1 ? REL_ONE_TO_MANY : REL_ONE_TO_ONE;
    parse_rel_through(c, n, r, jpath, what);

    fk = json_object_get(r, "foreign_key");
    if (fk != NULL) {
        char *p = jp_key(jpath, "foreign_key");
        parse_rel_foreign_key(c, n, fk, p, in);
        free(p);
    }
    free(what);
}

/* ------------------------------------------------------------------ nodes */

static const char *const node_keys[] = {"table",       "schema",    "columns",  "label",
                                        "primary_key", "base_tables", "transform", "children",
                                        "relationship", NULL};

/* A new node, numbered and listed in "c" (which owns it) before its members are read. */
static struct schema_node *node_new(struct pctx *c, json_t *j, struct schema_node *parent,
                                    const char *jpath)
{
    struct schema_node *n = xcalloc(1, sizeof(*n));

    n->parent = parent;
    n->id = c->nnodes;
    n->jpath = xstrdup(jpath);
    pos_find(&c->pos, j, &n->line, &n->column);
    if (c->nnodes == c->capnodes) {
        c->capnodes = c->capnodes ? c->capnodes * 2 : 8;
        c->nodes = xrealloc(c->nodes, (size_t)c->capnodes * sizeof(*c->nodes));
    }
    c->nodes[c->nnodes++] = n;
    return n;
}

/*
 * table, schema, label, primary_key and base_tables. Returns how problems
 * name the node ("node \"book\"", or "a node" without a table), a new string.
 */
static char *parse_node_names(struct pctx *c, struct schema_node *n, json_t *j, const char *jpath)
{
    char *in;

    if (json_object_get(j, "table") == NULL)
        prob(c, j, jpath, "node has no \"table\"");
    get_string(c, j, "table", jpath, "a node", 1, &n->table);
    in = n->table ? xasprintf("node %s", q(&c->qr, n->table)) : xstrdup("a node");

    check_keys(c, j, jpath, node_keys, "key", in);
    if (get_string(c, j, "schema", jpath, in, 1, &n->schema) <= 0)
        n->schema = xstrdup("public");
    get_string(c, j, "label", jpath, in, 1, &n->label);
    if (n->label == NULL && n->table != NULL)
        n->label = xstrdup(n->table);
    get_strv(c, j, "primary_key", jpath, in, &n->primary_key, &n->nprimary_key);

    if (get_strv(c, j, "base_tables", jpath, in, &n->base_tables, &n->nbase_tables) > 0) {
        n->bases = xcalloc((size_t)n->nbase_tables, sizeof(*n->bases));
        for (int i = 0; i < n->nbase_tables; i++)
            split_qualified(n->base_tables[i], n->schema, &n->bases[i].schema,
                            &n->bases[i].table);
    }
    return in;
}

/* "columns": each spec parsed into n->fields; a bad spec is reported and left out. */
static void parse_node_columns(struct pctx *c, struct schema_node *n, json_t *j,
                               const char *jpath, const char *in)
{
    if (get_strv(c, j, "columns", jpath, in, &n->columns, &n->ncolumns) <= 0 || n->ncolumns == 0)
        return;
    char *p = jp_key(jpath, "columns");
    json_t *arr = json_object_get(j, "columns");
    n->fields = xcalloc((size_t)n->ncolumns, sizeof(*n->fields));
    for (int i = 0; i < n->ncolumns; i++) {
        char why[160];
        if (field_parse_spec(&n->fields[n->nfields], n->columns[i], why, sizeof(why)) < 0) {
            char *pi = jp_idx(p, (size_t)i);
            prob(c, json_array_get(arr, (size_t)i), pi, "column %s of %s: %s",
                 q(&c->qr, n->columns[i]), in, why);
            free(pi);
            field_free(&n->fields[n->nfields]);
            continue;
        }
        n->nfields++;
    }
    free(p);
}

/* "relationship": required on a child, refused on the root. */
static void parse_node_relationship(struct pctx *c, struct schema_node *n, json_t *j,
                                    const char *jpath, const char *in)
{
    json_t *v = json_object_get(j, "relationship");

    if (n->parent == NULL && v != NULL) {
        char *p = jp_key(jpath, "relationship");
        prob(c, v, p, "the root %s can't have a relationship: only children join to a parent",
             in);
        free(p);
    } else if (n->parent != NULL && v == NULL) {
        prob(c, j, jpath, "%s has no \"relationship\": every child needs one with \"variant\" "
                          "and \"type\"", in);
    } else if (v != NULL) {
        char *p = jp_key(jpath, "relationship");
        parse_relationship(c, n, v, p, in);
        free(p);
    }
}

/* Two children with one label would overwrite each other in the document. */
static void check_sibling_label(struct pctx *c, const struct schema_node *n,
                                const struct schema_node *kid, json_t *ch, const char *in)
{
    for (int k = 0; k < n->nchildren; k++) {
        const struct schema_node *sib = n->children[k];
        if (kid->label != NULL && sib->label != NULL && strcmp(kid->label, sib->label) == 0) {
            prob(c, ch, kid->jpath,
                 "label %s is used by two children of %s (the other is at %s): "
                 "give one a different \"label\"",
                 q(&c->qr, kid->label), in, sib->jpath);
            return;
        }
    }
}

static struct schema_node *parse_node(struct pctx *c, json_t *j, struct schema_node *parent,
                                      const char *jpath, int depth);

/* "children": each parsed one level deeper; a child that can't be a node is left out. */
static void parse_node_children(struct pctx *c, struct schema_node *n, json_t *v,
                                const char *p, const char *in, int depth)
{
    json_t *ch;
    size_t i;

    if (!json_is_array(v)) {
        prob(c, v, p, "\"children\" of %s must be an array of nodes, not %s", in,
             json_type_word(v));
        return;
    }
    n->children = xcalloc(json_array_size(v), sizeof(*n->children));
    json_array_foreach(v, i, ch) {
        char *pi = jp_idx(p, i);
        struct schema_node *kid = parse_node(c, ch, n, pi, depth + 1);
        free(pi);
        if (kid == NULL)
            continue;
        check_sibling_label(c, n, kid, ch, in);
        n->children[n->nchildren++] = kid;
    }
}

static struct schema_node *parse_node(struct pctx *c, json_t *j, struct schema_node *parent,
                                      const char *jpath, int depth)
{
    struct schema_node *n;
    json_t *v;
    char *in;

    if (depth > SCHEMA_MAX_DEPTH) {
        prob(c, j, jpath, "nodes are nested deeper than %d levels", SCHEMA_MAX_DEPTH);
        return NULL;
    }
    if (!json_is_object(j)) {
        prob(c, j, jpath, "a node must be an object with at least \"table\", not %s",
             json_type_word(j));
        return NULL;
    }

    n = node_new(c, j, parent, jpath);
    in = parse_node_names(c, n, j, jpath);
    parse_node_columns(c, n, j, jpath, in);
    if ((v = json_object_get(j, "transform")) != NULL) {
        char *p = jp_key(jpath, "transform");
        parse_transform(c, n, v, p, in);
        free(p);
    }
    fields_apply_transform(n);
    parse_node_relationship(c, n, j, jpath, in);
    if ((v = json_object_get(j, "children")) != NULL) {
        char *p = jp_key(jpath, "children");
        parse_node_children(c, n, v, p, in, depth);
        free(p);
    }
    free(in);
    return n;
}

/* ---------------------------------------------------------------- entries */

/*
 * PGSync's plugins are Python classes that change each document; we cannot
 * run them. Going on without them would give other documents than PGSync
 * does, unnoticed: refused, naming each, unless the user said to go on.
 */
static void parse_plugins(struct pctx *c, json_t *v, const char *p)
{
    json_t *name;
    size_t i;
    struct strbuf names;

    if (!json_is_array(v)) {
        prob(c, v, p, "\"plugins\" must be an array of plugin names, not %s", json_type_word(v));
        return;
    }
    if (json_array_size(v) == 0)
        return;
    sb_init(&names);
    json_array_foreach(v, i, name) {
        if (!json_is_string(name)) {
            prob(c, name, p, "a plugin name must be a string, not %s", json_type_word(name));
            continue;
        }
        sb_printf(&names, "%s%s", i ? ", " : "", json_string_value(name));
    }
    if (c->flags & SCHEMA_IGNORE_PLUGINS)
        warn(c, v, p, "plugins %s are ignored (--ignore-plugins): the documents lack what they "
             "would add", names.buf ? names.buf : "");
    else
        prob(c, v, p,
             "plugins %s are Python classes pgsync-c cannot run, and the documents would differ "
             "from PGSync's without them: do the same with an ingest pipeline (\"pipeline\": "
             "\"NAME\" in the entry), or run with --ignore-plugins (PGSYNC_IGNORE_PLUGINS=true) "
             "to go on without them",
             names.buf ? names.buf : "");
    sb_free(&names);
}

static const char *const entry_keys[] = {"database", "index",    "nodes",   "setting", "mapping",
                                         "mappings", "routing",  "pipeline", "plugins", NULL};

static void parse_entry(struct pctx *c, json_t *j, struct schema_entry *e, const char *jpath)
{
    json_t *v;

    e->jpath = xstrdup(jpath);
    e->source = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (!json_is_object(j)) {
        prob(c, j, jpath, "an entry must be an object with \"database\" and \"nodes\", not %s",
             json_type_word(j));
        return;
    }
    check_keys(c, j, jpath, entry_keys, "key", "the entry");
    if (json_object_get(j, "database") == NULL)
        prob(c, j, jpath, "the entry has no \"database\"");
    get_string(c, j, "database", jpath, "the entry", 1, &e->database);
    get_string(c, j, "index", jpath, "the entry", 1, &e->index);
    if (e->index == NULL && e->database != NULL)
        e->index = xstrdup(e->database);
    get_string(c, j, "routing", jpath, "the entry", 1, &e->routing);
    get_string(c, j, "pipeline", jpath, "the entry", 1, &e->pipeline);

    if ((v = json_object_get(j, "setting")) != NULL) {
        char *p = jp_key(jpath, "setting");
        if (json_is_object(v))
            e->setting = json_incref(v);
        else
            prob(c, v, p, "\"setting\" must be an object (index settings), not %s",
                 json_type_word(v));
        free(p);
    }
    if ((v = json_object_get(j, "mapping")) != NULL) {
        char *p = jp_key(jpath, "mapping");
        if (json_is_object(v))
            e->mapping = json_incref(v);
        else
            prob(c, v, p, "\"mapping\" must be an object (index mappings), not %s",
                 json_type_word(v));
        free(p);
    }
    /* the engine's own "mappings" body; "mapping" wins over it, as in PGSync */
    if ((v = json_object_get(j, "mappings")) != NULL) {
        char *p = jp_key(jpath, "mappings");
        if (!json_is_object(v))
            prob(c, v, p, "\"mappings\" must be an object (the index's mappings), not %s",
                 json_type_word(v));
        else if (e->mapping != NULL)
            warn(c, v, p, "both \"mapping\" and \"mappings\" are given: \"mapping\" is used");
        else
            e->mappings = json_incref(v);
        free(p);
    }
    if ((v = json_object_get(j, "plugins")) != NULL) {
        char *p = jp_key(jpath, "plugins");
        parse_plugins(c, v, p);
        free(p);
    }

    v = json_object_get(j, "nodes");
    char *p = jp_key(jpath, "nodes");
    if (v == NULL) {
        prob(c, j, jpath, "the entry has no \"nodes\" (the root node)");
    } else if (json_is_array(v) && json_array_size(v) == 1) {
        /* PGSync's first schema format: "nodes" was a list holding the root */
        warn(c, v, p, "\"nodes\" as a one-element list is the old format: use the object itself");
        char *p0 = jp_idx(p, 0);
        e->root = parse_node(c, json_array_get(v, 0), NULL, p0, 1);
        free(p0);
    } else if (json_is_array(v)) {
        prob(c, v, p, "\"nodes\" must be one object (the root node), not an array of %zu",
             json_array_size(v));
    } else if (json_is_object(v) && json_object_size(v) == 0) {
        prob(c, v, p, "\"nodes\" is empty: give the root node, at least {\"table\": ...}");
    } else {
        e->root = parse_node(c, v, NULL, p, 1);
    }
    free(p);

    e->nodes = c->nodes;
    e->nnodes = c->nnodes;
    c->nodes = NULL;
    c->nnodes = c->capnodes = 0;
}

/*
 * PGSync reads every optional key with dict.get(): a key given as null is
 * absent. The same here, except inside what goes to the engine as written
 * ("setting", "mapping", "mappings"), where null may mean something.
 */
static void strip_nulls(json_t *j, int depth)
{
    const char *key;
    json_t *v;
    void *tmp;
    size_t i;

    if (depth > SCHEMA_MAX_DEPTH * 4)
        return;
    if (json_is_array(j))
        json_array_foreach(j, i, v) strip_nulls(v, depth + 1);
    if (!json_is_object(j))
        return;
    json_object_foreach_safe(j, tmp, key, v) {
        if (json_is_null(v))
            json_object_del(j, key);
        else if (strcmp(key, "setting") != 0 && strcmp(key, "mapping") != 0 &&
                 strcmp(key, "mappings") != 0)
            strip_nulls(v, depth + 1);
    }
}

static int parse_buffer(const char *text, size_t len, struct schema *out,
                        struct schema_problems *probs, int flags)
{
    struct pctx c;
    json_error_t jerr;
    json_t *root;

    memset(&c, 0, sizeof(c));
    c.flags = flags;
    c.file = out->filename;
    c.probs = probs;
    c.warnings = &out->warnings;

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (jerr.line > 0)
            schema_problems_add(probs, "%s:%d:%d: invalid JSON: %s", out->filename, jerr.line,
                                jerr.column, jerr.text);
        else
            schema_problems_add(probs, "%s: invalid JSON: %s", out->filename, jerr.text);
        schema_free(out);
        return -1;
    }

    struct walker w = {text, text + len, 1, 1, &c.pos};
    w_value(&w, root, 0);
    qsort(c.pos.v, (size_t)c.pos.n, sizeof(*c.pos.v), pos_cmp);
    /* after the walk: it pairs the text with the values as written */
    strip_nulls(root, 0);

    if (json_is_object(root)) {
        out->entries = xcalloc(1, sizeof(*out->entries));
        out->nentries = 1;
        parse_entry(&c, root, &out->entries[0], "$");
    } else if (json_array_size(root) == 0) {
        prob(&c, root, "$", "no entries: the file must hold [{\"database\": ..., \"nodes\": ...}]");
    } else {
        size_t i;
        json_t *e;
        out->entries = xcalloc(json_array_size(root), sizeof(*out->entries));
        out->nentries = (int)json_array_size(root);
        json_array_foreach(root, i, e) {
            char *p = jp_idx("$", i);
            parse_entry(&c, e, &out->entries[i], p);
            free(p);
        }
    }
    json_decref(root);
    free(c.pos.v);
    if (c.nerr > 0) {
        schema_free(out);
        return -1;
    }
    return 0;
}

int schema_parse_string(const char *text, const char *filename, struct schema *out,
                        struct schema_problems *probs)
{
    memset(out, 0, sizeof(*out));
    out->filename = xstrdup(filename ? filename : "<string>");
    return parse_buffer(text, strlen(text), out, probs, SCHEMA_IGNORE_PLUGINS);
}

int schema_parse_file(const char *path, struct schema *out, struct schema_problems *probs)
{
    return schema_parse_file_flags(path, out, probs, 0);
}

int schema_parse_file_flags(const char *path, struct schema *out, struct schema_problems *probs,
                            int flags)
{
    FILE *f;
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    int rc;

    memset(out, 0, sizeof(*out));
    f = fopen(path, "rb");
    if (f == NULL) {
        schema_problems_add(probs, "%s: cannot open the schema: %s", path, strerror(errno));
        return -1;
    }
    do {
        if (len + 65536 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            buf = xrealloc(buf, cap + 1);
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0 && len <= SCHEMA_MAX_FILE);
    if (ferror(f) || len > SCHEMA_MAX_FILE) {
        schema_problems_add(probs, "%s: cannot read the schema: %s", path,
                            ferror(f) ? strerror(errno) : "larger than 16 MB");
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    buf[len] = '\0';
    out->filename = xstrdup(path);
    rc = parse_buffer(buf, len, out, probs, flags);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ free */

static void join_free(struct schema_join *j)
{
    strv_free(j->parent_cols, j->n);
    strv_free(j->child_cols, j->n);
    memset(j, 0, sizeof(*j));
}

/* Forget what schema_resolve filled in (so it can run again). */
static void node_unresolve(struct schema_node *n, int keep_written_fields)
{
    if (!keep_written_fields || n->ncolumns == 0) {
        for (int i = 0; i < n->nfields; i++)
            field_free(&n->fields[i]);
        free(n->fields);
        n->fields = NULL;
        n->nfields = 0;
    }
    strv_free(n->pk, n->npk);
    n->pk = NULL;
    n->npk = 0;
    join_free(&n->join);
    join_free(&n->through_join);
    strv_free(n->link_cols, n->nlink);
    n->link_cols = NULL;
    n->nlink = 0;
    strv_free(n->through_link_cols, n->nthrough_link);
    n->through_link_cols = NULL;
    n->nthrough_link = 0;
    for (int i = 0; i < n->nbase_tables && n->bases != NULL; i++) {
        strv_free(n->bases[i].pk, n->bases[i].npk);
        n->bases[i].pk = NULL;
        n->bases[i].npk = 0;
    }
    n->cat_table = n->cat_through = NULL;
}

static void node_free(struct schema_node *n)
{
    node_unresolve(n, 0);
    free(n->schema);
    free(n->table);
    free(n->label);
    strv_free(n->columns, n->ncolumns);
    strv_free(n->primary_key, n->nprimary_key);
    for (int i = 0; i < n->nbase_tables && n->bases != NULL; i++) {
        free(n->bases[i].schema);
        free(n->bases[i].table);
    }
    free(n->bases);
    strv_free(n->base_tables, n->nbase_tables);
    json_decref(n->transform);
    json_decref(n->es_mapping);
    for (int i = 0; i < n->nconcat; i++) {
        strv_free(n->concat[i].columns, n->concat[i].ncolumns);
        free(n->concat[i].destination);
        free(n->concat[i].delimiter);
    }
    free(n->concat);
    free(n->through_schema);
    free(n->through_table);
    strv_free(n->fk_child, n->nfk);
    strv_free(n->fk_parent, n->nfk);
    free(n->children);
    free(n->jpath);
    free(n);
}

void schema_free(struct schema *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nentries; i++) {
        struct schema_entry *e = &s->entries[i];
        for (int k = 0; k < e->nnodes; k++)
            node_free(e->nodes[k]);
        free(e->nodes);
        free(e->database);
        free(e->index);
        json_decref(e->setting);
        json_decref(e->mapping);
        json_decref(e->mappings);
        free(e->routing);
        free(e->pipeline);
        free(e->jpath);
        free(e->source);
    }
    free(s->entries);
    free(s->filename);
    schema_problems_free(&s->warnings);
    memset(s, 0, sizeof(*s));
}

/* --------------------------------------------------------------- resolve */

struct rctx {
    const char *file;
    const struct catalog *cat;
    const struct schema_entry *e;
    struct schema_problems *probs;
    int nerr;
    struct qring qr;
};

static void rprob(struct rctx *r, const struct schema_node *n, const char *fmt, ...)
    PGS_PRINTF(3, 4);
static void rprob(struct rctx *r, const struct schema_node *n, const char *fmt, ...)
{
    va_list ap;

    r->nerr++;
    va_start(ap, fmt);
    vreport(r->probs, r->file, n->line, n->column, n->jpath, fmt, ap);
    va_end(ap);
}

static const char *qname(struct rctx *r, const char *schema, const char *table)
{
    char buf[300];
    snprintf(buf, sizeof(buf), "%s.%s", schema, table);
    return q(&r->qr, buf);
}

static int is_view(const struct catalog_table *t)
{
    return t->relkind == 'v' || t->relkind == 'm';
}

static int is_json_type(const char *type)
{
    return strcmp(type, "json") == 0 || strcmp(type, "jsonb") == 0;
}

/* A table in the catalog, or a reported problem with the nearest name. */
static const struct catalog_table *find_table(struct rctx *r, const struct schema_node *n,
                                              const char *what, const char *schema,
                                              const char *table)
{
    const struct catalog_table *t = catalog_find_table(r->cat, schema, table), *best = NULL;
    int bestd = 1000;

    if (t != NULL)
        return t;
    for (int i = 0; i < r->cat->ntables; i++) {
        const struct catalog_table *c = &r->cat->tables[i];
        int d = strcmp(c->name, table) == 0 ? 0 : near_miss(table, c->name);
        if (d < 0)
            continue;
        d = d * 2 + (strcmp(c->schema, schema) != 0); /* same schema first */
        if (d < bestd) {
            best = c;
            bestd = d;
        }
    }
    char hint[400] = "";
    if (best != NULL && strcmp(best->schema, schema) == 0)
        snprintf(hint, sizeof(hint), " (did you mean %s?)", q(&r->qr, best->name));
    else if (best != NULL)
        snprintf(hint, sizeof(hint), " (did you mean %s?)", qname(r, best->schema, best->name));
    rprob(r, n, "%s %s does not exist in database %s%s", what, qname(r, schema, table),
          q(&r->qr, r->e->database), hint);
    return NULL;
}

/* The column or a reported problem with the nearest name; "role" says where it was named. */
static const struct catalog_column *find_column(struct rctx *r, const struct schema_node *n,
                                                const struct catalog_table *t, const char *col,
                                                const char *role)
{
    const struct catalog_column *c = catalog_find_column(t, col);
    const char *best = NULL;
    int bestd = 1000;

    if (c != NULL)
        return c;
    for (int i = 0; i < t->ncols; i++) {
        int d = near_miss(col, t->cols[i].name);
        if (d >= 0 && d < bestd) {
            best = t->cols[i].name;
            bestd = d;
        }
    }
    char hint[200] = "";
    if (best != NULL)
        snprintf(hint, sizeof(hint), " (did you mean %s?)", q(&r->qr, best));
    rprob(r, n, "column %s%s does not exist in %s %s%s", q(&r->qr, col), role,
          is_view(t) ? "view" : "table", qname(r, t->schema, t->name), hint);
    return NULL;
}

static void join_set(struct schema_join *j, char *const *parent_cols, char *const *child_cols,
                     int n)
{
    join_free(j);
    j->parent_cols = strv_dup(parent_cols, n);
    j->child_cols = strv_dup(child_cols, n);
    j->n = n;
}

/*
 * The one catalog foreign key between tables "a" and "b" (either direction),
 * oriented so parent_cols belong to "parent" (one of the two). For a table
 * joined to itself the referencing columns are the child's: child rows
 * point at their parent row. Reports none / several.
 */
static int join_from_catalog(struct rctx *r, const struct schema_node *n,
                             const struct catalog_table *parent, const struct catalog_table *child,
                             struct schema_join *out, const char *hint)
{
    int pi = catalog_table_index(r->cat, parent), ci = catalog_table_index(r->cat, child);
    const struct catalog_fk *hit = NULL;
    int nhit = 0;
    char names[400] = "";
    size_t o = 0;

    for (int i = 0; i < r->cat->nfks; i++) {
        const struct catalog_fk *fk = &r->cat->fks[i];
        if (!((fk->from_table == ci && fk->to_table == pi) ||
              (fk->from_table == pi && fk->to_table == ci)))
            continue;
        nhit++;
        hit = fk;
        if (o < sizeof(names) - 1)
            o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", nhit > 1 ? ", " : "",
                                  fk->name);
    }
    if (nhit == 0) {
        rprob(r, n, "no foreign key between %s and %s: %s", qname(r, parent->schema, parent->name),
              qname(r, child->schema, child->name), hint);
        return -1;
    }
    if (nhit > 1) {
        rprob(r, n, "%d foreign keys between %s and %s (%s): ambiguous; %s", nhit,
              qname(r, parent->schema, parent->name), qname(r, child->schema, child->name), names,
              hint);
        return -1;
    }
    if (hit->from_table == ci)
        join_set(out, hit->to_cols, hit->from_cols, hit->ncols); /* child references parent */
    else
        join_set(out, hit->from_cols, hit->to_cols, hit->ncols); /* parent references child */
    return 0;
}

static void resolve_fields(struct rctx *r, struct schema_node *n, const struct catalog_table *t)
{
    if (n->ncolumns == 0) {
        /* no "columns": every column, in table order */
        n->fields = xcalloc((size_t)t->ncols, sizeof(*n->fields));
        for (int i = 0; i < t->ncols; i++) {
            struct schema_field *f = &n->fields[i];
            f->spec = xstrdup(t->cols[i].name);
            f->column = xstrdup(t->cols[i].name);
            f->key = xstrdup(t->cols[i].name);
        }
        n->nfields = t->ncols;
        fields_apply_transform(n);
    }
    for (int i = 0; i < n->nfields; i++) {
        struct schema_field *f = &n->fields[i];
        char role[300] = "";
        if (f->npath > 0)
            snprintf(role, sizeof(role), " (of %s)", q(&r->qr, f->spec));
        const struct catalog_column *c = find_column(r, n, t, f->column, role);
        if (c == NULL)
            continue;
        f->type = c->type;
        if (f->npath > 0 && !is_json_type(c->type))
            rprob(r, n, "column %s of %s is %s, not json or jsonb: %s needs a JSON column",
                  q(&r->qr, f->column), qname(r, t->schema, t->name), c->type, q(&r->qr, f->spec));
    }
}

/* The i-th key of a node's document object: fields, then concat destinations, then children. */
static const char *doc_key(const struct schema_node *n, int i, int *is_concat)
{
    *is_concat = i >= n->nfields && i < n->nfields + n->nconcat;
    if (i < n->nfields)
        return n->fields[i].key;
    if (*is_concat)
        return n->concat[i - n->nfields].destination;
    return n->children[i - n->nfields - n->nconcat]->label;
}

static void check_document_keys(struct rctx *r, struct schema_node *n)
{
    int total = n->nfields + n->nconcat + n->nchildren, concat, concat_k;

    for (int i = 0; i < total; i++) {
        const char *ki = doc_key(n, i, &concat);
        /* a concat may overwrite a column it joins, as in PGSync */
        if (ki == NULL || concat)
            continue;
        for (int k = 0; k < i; k++) {
            const char *kk = doc_key(n, k, &concat_k);
            if (kk != NULL && strcmp(ki, kk) == 0) {
                rprob(r, n, "document key %s appears twice in node %s: rename a column "
                            "(transform.rename) or give the child another \"label\"",
                      q(&r->qr, ki), q(&r->qr, n->label));
                break;
            }
        }
    }
}

static void resolve_node(struct rctx *r, struct schema_node *n)
{
    const struct catalog_table *t, *pt, *tt = NULL;

    if (n->table == NULL)
        return;
    t = find_table(r, n, "table", n->schema, n->table);
    n->cat_table = t;
    if (t == NULL)
        return;

    resolve_fields(r, n, t);
    check_document_keys(r, n);

    /* primary key: the catalog's, else "primary_key" (views have none in the catalog) */
    if (t->npk > 0) {
        n->pk = strv_dup(t->pk, t->npk);
        n->npk = t->npk;
    } else if (n->nprimary_key > 0) {
        int ok = 1;
        for (int i = 0; i < n->nprimary_key; i++)
            if (find_column(r, n, t, n->primary_key[i], " (in \"primary_key\")") == NULL)
                ok = 0;
        if (ok) {
            n->pk = strv_dup(n->primary_key, n->nprimary_key);
            n->npk = n->nprimary_key;
        }
    } else if (is_view(t)) {
        rprob(r, n, "%s %s has no primary key: give \"primary_key\" in the node",
              t->relkind == 'm' ? "materialized view" : "view", qname(r, t->schema, t->name));
    } else {
        rprob(r, n, "table %s has no primary key: add one or give \"primary_key\" in the node",
              qname(r, t->schema, t->name));
    }

    for (int i = 0; i < n->nbase_tables; i++) {
        const struct catalog_table *b =
            find_table(r, n, "base table", n->bases[i].schema, n->bases[i].table);
        if (b == NULL)
            continue;
        if (b->npk == 0)
            rprob(r, n, "base table %s has no primary key: its changes can't be traced",
                  qname(r, b->schema, b->name));
        n->bases[i].pk = strv_dup(b->pk, b->npk);
        n->bases[i].npk = b->npk;
    }

    if (n->parent == NULL || (pt = n->parent->cat_table) == NULL)
        return;

    if (n->through_table != NULL) {
        tt = find_table(r, n, "through table", n->through_schema, n->through_table);
        n->cat_through = tt;
        if (tt == NULL)
            return;
        join_from_catalog(r, n, pt, tt, &n->through_join,
                          "a through table needs exactly one foreign key to each side");
        join_from_catalog(r, n, tt, t, &n->join,
                          "a through table needs exactly one foreign key to each side");
    } else if (n->nfk > 0) {
        int ok = 1;
        for (int i = 0; i < n->nfk; i++) {
            if (find_column(r, n, pt, n->fk_parent[i], " (in foreign_key.parent)") == NULL)
                ok = 0;
            if (find_column(r, n, t, n->fk_child[i], " (in foreign_key.child)") == NULL)
                ok = 0;
        }
        if (ok)
            join_set(&n->join, n->fk_parent, n->fk_child, n->nfk);
    } else {
        join_from_catalog(r, n, pt, t, &n->join,
                          "add one or give relationship.foreign_key");
    }
}

/* pk first, then the columns this node's joins use on its side. */
static void compute_link_cols(struct schema_node *n)
{
    for (int i = 0; i < n->npk; i++)
        strv_add_unique(&n->link_cols, &n->nlink, n->pk[i]);
    for (int i = 0; i < n->join.n; i++)
        strv_add_unique(&n->link_cols, &n->nlink, n->join.child_cols[i]);
    for (int k = 0; k < n->nchildren; k++) {
        const struct schema_node *c = n->children[k];
        const struct schema_join *j = c->through_table ? &c->through_join : &c->join;
        for (int i = 0; i < j->n; i++)
            strv_add_unique(&n->link_cols, &n->nlink, j->parent_cols[i]);
    }
    if (n->cat_through != NULL) {
        for (int i = 0; i < n->cat_through->npk; i++)
            strv_add_unique(&n->through_link_cols, &n->nthrough_link, n->cat_through->pk[i]);
        for (int i = 0; i < n->through_join.n; i++)
            strv_add_unique(&n->through_link_cols, &n->nthrough_link,
                            n->through_join.child_cols[i]);
        for (int i = 0; i < n->join.n; i++)
            strv_add_unique(&n->through_link_cols, &n->nthrough_link, n->join.parent_cols[i]);
    }
}

int schema_resolve(struct schema *s, const struct catalog *cat, struct schema_problems *probs)
{
    struct rctx r;

    memset(&r, 0, sizeof(r));
    r.file = s->filename ? s->filename : "<string>";
    r.cat = cat;
    r.probs = probs;
    for (int i = 0; i < s->nentries; i++) {
        struct schema_entry *e = &s->entries[i];
        r.e = e;
        /* nodes are in depth-first order: a parent is resolved before its children */
        for (int k = 0; k < e->nnodes; k++) {
            node_unresolve(e->nodes[k], 1);
            resolve_node(&r, e->nodes[k]);
        }
        for (int k = 0; k < e->nnodes; k++)
            compute_link_cols(e->nodes[k]);
    }
    return r.nerr > 0 ? -1 : 0;
}

/* ----------------------------------------------------------- entry tables */

static void tables_add(struct schema_table_ref **v, int *n, const char *schema, const char *table,
                       char *const *cols, int ncols)
{
    struct schema_table_ref *t = NULL;

    for (int i = 0; i < *n; i++)
        if (strcmp((*v)[i].schema, schema) == 0 && strcmp((*v)[i].table, table) == 0)
            t = &(*v)[i];
    if (t == NULL) {
        *v = xrealloc(*v, (size_t)(*n + 1) * sizeof(**v));
        t = &(*v)[(*n)++];
        memset(t, 0, sizeof(*t));
        t->schema = xstrdup(schema);
        t->table = xstrdup(table);
    }
    for (int i = 0; i < ncols; i++)
        strv_add_unique(&t->link_cols, &t->nlink, cols[i]);
}

int schema_entry_tables(const struct schema_entry *e, struct schema_table_ref **out, int *n)
{
    *out = NULL;
    *n = 0;
    for (int k = 0; k < e->nnodes; k++) {
        const struct schema_node *nd = e->nodes[k];
        if (nd->table == NULL)
            continue;
        tables_add(out, n, nd->schema, nd->table, nd->link_cols, nd->nlink);
        if (nd->through_table != NULL)
            tables_add(out, n, nd->through_schema, nd->through_table, nd->through_link_cols,
                       nd->nthrough_link);
        for (int i = 0; i < nd->nbase_tables; i++)
            tables_add(out, n, nd->bases[i].schema, nd->bases[i].table, nd->bases[i].pk,
                       nd->bases[i].npk);
    }
    return 0;
}

void schema_tables_free(struct schema_table_ref *t, int n)
{
    for (int i = 0; i < n; i++) {
        free(t[i].schema);
        free(t[i].table);
        strv_free(t[i].link_cols, t[i].nlink);
    }
    free(t);
}
