/*
 * metrics.c - the registry, the Prometheus text rendering, /healthz with the
 * stall watchdog, and the tiny HTTP/1.0 server on the daemon's libev loop.
 * Nothing here blocks: sockets are non-blocking, a request is bounded
 * (METRICS_MAX_REQUEST bytes, METRICS_CLIENT_TIMEOUT seconds) and so is the
 * number of clients served at once.
 */
#include "metrics.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"

#define METRICS_MAX_REQUEST    8192 /* request line and headers */
#define METRICS_MAX_CLIENTS    16
#define METRICS_CLIENT_TIMEOUT 5.0 /* seconds for a whole exchange */
#define METRICS_WATCH_INTERVAL 1.0
#define METRICS_STALL_RELOG    600.0 /* a stall still going on is logged again this often */

enum metric_kind {
    M_COUNTER,
    M_COUNTER_PTR,
    M_GAUGE,
    M_GAUGE_FN,
    M_GAUGE_INT,
    M_GAUGE_U64,
    M_GAUGE_DIFF,
    M_HISTOGRAM
};

struct metric {
    enum metric_kind kind;
    const char *name, *help;
    char *labels;                  /* "" when none */
    unsigned long long count;      /* M_COUNTER; M_HISTOGRAM: observations */
    const unsigned long long *src; /* M_COUNTER_PTR */
    double value;                  /* M_GAUGE; M_HISTOGRAM: sum */
    metrics_value_fn fn;           /* M_GAUGE_FN */
    const void *arg;
    const int *isrc;       /* M_GAUGE_INT */
    const uint64_t *a, *b; /* M_GAUGE_U64 (a), M_GAUGE_DIFF (a - b) */
    int nbounds;           /* M_HISTOGRAM */
    double bounds[METRICS_MAX_BUCKETS];
    /* per bucket, not cumulative (rendering adds up); the last one is +Inf */
    unsigned long long buckets[METRICS_MAX_BUCKETS + 1];
};

struct client {
    struct metrics *m;
    int fd; /* -1: free slot */
    ev_io io;
    ev_timer timer;
    double deadline;
    char in[METRICS_MAX_REQUEST];
    size_t inlen;
    char *out;
    size_t outlen, outoff;
};

struct metrics {
    const char *proc;
    struct metric **v;
    int n, cap;
    /* health */
    metrics_health_fn health_fn;
    void *health_arg;
    const char *waiting_what;
    double stall_s;
    double last_progress, progress_at; /* the progress value seen, and when it last changed */
    int have_progress;
    int stalled, waiting;
    double stall_logged_at;
    struct metric *healthy_gauge, *stalled_gauge, *since_gauge;
    /* server */
    struct ev_loop *loop;
    int lfd;
    ev_io lio;
    ev_timer watch;
    int started;
    struct client clients[METRICS_MAX_CLIENTS];
    double polled_at, watched_at;
};

static double metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- registry ---- */

static int valid_name(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == ':'))
        return 0;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return 0;
    return 1;
}

static double since_progress(const void *arg)
{
    const struct metrics *m = arg;
    return m->waiting ? metrics_now() - m->progress_at : 0;
}

struct metrics *metrics_new(const char *proc)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    char lab[128];

    m->proc = proc;
    m->lfd = -1;
    m->stall_s = 60;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
        m->clients[i].fd = -1;
    metrics_set(metrics_gauge(m, "pgsync_info", "The version and the kind of process (always 1).",
                              metrics_labels(lab, sizeof(lab), "version", PGS_VERSION, "process",
                                             proc, NULL)),
                1);
    m->healthy_gauge = metrics_gauge(
        m, "pgsync_healthy", "1 when /healthz answers 200: connected and not stalled.", NULL);
    m->stalled_gauge =
        metrics_gauge(m, "pgsync_stalled",
                      "1 when work has been waiting and nothing moved for the stall time.", NULL);
    m->since_gauge = metrics_gauge_fn(
        m, "pgsync_seconds_without_progress",
        "Seconds that work has been waiting with nothing done (0 while idle or moving).", NULL,
        since_progress, m);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    metrics_stop(m);
    for (int i = 0; i < m->n; i++) {
        free(m->v[i]->labels);
        free(m->v[i]);
    }
    free(m->v);
    free(m);
}

static struct metric *add_metric(struct metrics *m, enum metric_kind kind, const char *name,
                                 const char *help, const char *labels)
{
    struct metric *x = xcalloc(1, sizeof(*x));

    /* names are ours, never input: a bad one is a bug */
    assert(valid_name(name));
    x->kind = kind;
    x->name = name;
    x->help = help;
    x->labels = xstrdup(labels ? labels : "");
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 32;
        m->v = xrealloc(m->v, sizeof(*m->v) * (size_t)m->cap);
    }
    m->v[m->n++] = x;
    return x;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels)
{
    return add_metric(m, M_COUNTER, name, help, labels);
}

struct metric *metrics_counter_ptr(struct metrics *m, const char *name, const char *help,
                                   const char *labels, const unsigned long long *src)
{
    struct metric *x = add_metric(m, M_COUNTER_PTR, name, help, labels);
    x->src = src;
    return x;
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels)
{
    return add_metric(m, M_GAUGE, name, help, labels);
}

struct metric *metrics_gauge_fn(struct metrics *m, const char *name, const char *help,
                                const char *labels, metrics_value_fn fn, const void *arg)
{
    struct metric *x = add_metric(m, M_GAUGE_FN, name, help, labels);
    x->fn = fn;
    x->arg = arg;
    return x;
}

struct metric *metrics_gauge_int(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const int *src)
{
    struct metric *x = add_metric(m, M_GAUGE_INT, name, help, labels);
    x->isrc = src;
    return x;
}

struct metric *metrics_gauge_u64(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const uint64_t *src)
{
    struct metric *x = add_metric(m, M_GAUGE_U64, name, help, labels);
    x->a = src;
    return x;
}

struct metric *metrics_gauge_u64_diff(struct metrics *m, const char *name, const char *help,
                                      const char *labels, const uint64_t *a, const uint64_t *b)
{
    struct metric *x = add_metric(m, M_GAUGE_DIFF, name, help, labels);
    x->a = a;
    x->b = b;
    return x;
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, int nbounds)
{
    struct metric *x = add_metric(m, M_HISTOGRAM, name, help, labels);
    assert(nbounds >= 0 && nbounds <= METRICS_MAX_BUCKETS);
    for (int i = 0; i < nbounds; i++) {
        assert(i == 0 || bounds[i] > bounds[i - 1]);
        x->bounds[i] = bounds[i];
    }
    x->nbounds = nbounds;
    return x;
}

void metrics_add(struct metric *x, unsigned long long n)
{
    if (x != NULL && x->kind == M_COUNTER)
        x->count += n;
}

void metrics_set(struct metric *x, double v)
{
    if (x != NULL && x->kind == M_GAUGE)
        x->value = v;
}

void metrics_observe(struct metric *x, double v)
{
    int i;

    if (x == NULL || x->kind != M_HISTOGRAM || isnan(v))
        return;
    /* "le": a value equal to a bound belongs to that bound's bucket */
    for (i = 0; i < x->nbounds && v > x->bounds[i]; i++)
        ;
    x->buckets[i]++;
    x->count++;
    x->value += v;
}

double metrics_value(const struct metric *x)
{
    switch (x->kind) {
    case M_COUNTER:
    case M_HISTOGRAM:
        return (double)x->count;
    case M_COUNTER_PTR:
        return (double)*x->src;
    case M_GAUGE:
        return x->value;
    case M_GAUGE_FN:
        return x->fn(x->arg);
    case M_GAUGE_INT:
        return (double)*x->isrc;
    case M_GAUGE_U64:
        return (double)*x->a;
    case M_GAUGE_DIFF:
        return *x->a > *x->b ? (double)(*x->a - *x->b) : 0;
    }
    return 0;
}

/* Append "s" with "\\", "\n" (and '"' when "quote") escaped, as the text format wants. */
static void add_escaped(struct strbuf *sb, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_add(sb, "\\\\");
        else if (*s == '\n')
            sb_add(sb, "\\n");
        else if (quote && *s == '"')
            sb_add(sb, "\\\"");
        else
            sb_addc(sb, *s);
    }
}

const char *metrics_labels(char *buf, size_t len, const char *key, ...)
{
    struct strbuf sb;
    va_list ap;

    sb_init(&sb);
    va_start(ap, key);
    for (const char *k = key; k != NULL; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (sb.len)
            sb_addc(&sb, ',');
        sb_add(&sb, k);
        sb_add(&sb, "=\"");
        add_escaped(&sb, v ? v : "", 1);
        sb_addc(&sb, '"');
    }
    va_end(ap);
    /* cutting a label pair would make the whole exposition unreadable: say so instead */
    if (sb.len >= len) {
        static const char marker[] = "labels_too_long=\"1\"";
        snprintf(buf, len, "%s", sizeof(marker) <= len ? marker : "");
    } else
        snprintf(buf, len, "%s", sb.buf ? sb.buf : "");
    sb_free(&sb);
    return buf;
}

/* A sample value: integers exactly, NaN and infinities as the format spells them. */
static void add_double(struct strbuf *sb, double v)
{
    if (isnan(v))
        sb_add(sb, "NaN");
    else if (isinf(v))
        sb_add(sb, v > 0 ? "+Inf" : "-Inf");
    else
        sb_printf(sb, "%.15g", v);
}

/* name{labels[,extra]} */
static void add_series(struct strbuf *sb, const char *name, const char *suffix, const char *labels,
                       const char *extra)
{
    sb_add(sb, name);
    sb_add(sb, suffix);
    if (labels[0] || extra) {
        sb_addc(sb, '{');
        sb_add(sb, labels);
        if (extra) {
            if (labels[0])
                sb_addc(sb, ',');
            sb_add(sb, extra);
        }
        sb_addc(sb, '}');
    }
    sb_addc(sb, ' ');
}

static void render_one(struct strbuf *sb, const struct metric *x)
{
    char le[64];
    unsigned long long cum = 0;

    switch (x->kind) {
    case M_COUNTER:
        add_series(sb, x->name, "", x->labels, NULL);
        sb_printf(sb, "%llu\n", x->count);
        break;
    case M_COUNTER_PTR:
        add_series(sb, x->name, "", x->labels, NULL);
        sb_printf(sb, "%llu\n", *x->src);
        break;
    case M_GAUGE_U64:
        /* exact: an LSN does not fit a double's 53 bits forever */
        add_series(sb, x->name, "", x->labels, NULL);
        sb_printf(sb, "%llu\n", (unsigned long long)*x->a);
        break;
    case M_GAUGE:
    case M_GAUGE_FN:
    case M_GAUGE_INT:
    case M_GAUGE_DIFF:
        add_series(sb, x->name, "", x->labels, NULL);
        add_double(sb, metrics_value(x));
        sb_addc(sb, '\n');
        break;
    case M_HISTOGRAM:
        for (int i = 0; i <= x->nbounds; i++) {
            cum += x->buckets[i];
            if (i < x->nbounds)
                snprintf(le, sizeof(le), "le=\"%.15g\"", x->bounds[i]);
            else
                snprintf(le, sizeof(le), "le=\"+Inf\"");
            add_series(sb, x->name, "_bucket", x->labels, le);
            sb_printf(sb, "%llu\n", cum);
        }
        add_series(sb, x->name, "_sum", x->labels, NULL);
        add_double(sb, x->value);
        sb_addc(sb, '\n');
        add_series(sb, x->name, "_count", x->labels, NULL);
        sb_printf(sb, "%llu\n", x->count);
        break;
    }
}

static const char *type_name(enum metric_kind k)
{
    switch (k) {
    case M_COUNTER:
    case M_COUNTER_PTR:
        return "counter";
    case M_HISTOGRAM:
        return "histogram";
    default:
        return "gauge";
    }
}

char *metrics_render(struct metrics *m, size_t *len)
{
    struct strbuf sb;
    char why[8];

    /* the health gauges are as fresh as the scrape */
    metrics_health_at(m, metrics_now(), why, sizeof(why));
    sb_init(&sb);
    for (int i = 0; i < m->n; i++) {
        const struct metric *x = m->v[i];
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !strcmp(m->v[j]->name, x->name);
        if (seen)
            continue; /* rendered with the first of its name */
        sb_add(&sb, "# HELP ");
        sb_add(&sb, x->name);
        sb_addc(&sb, ' ');
        add_escaped(&sb, x->help, 0);
        sb_printf(&sb, "\n# TYPE %s %s\n", x->name, type_name(x->kind));
        for (int j = i; j < m->n; j++)
            if (!strcmp(m->v[j]->name, x->name))
                render_one(&sb, m->v[j]);
    }
    if (sb.buf == NULL)
        sb_add(&sb, "");
    *len = sb.len;
    return sb_steal(&sb);
}

/* ---- health and the watchdog ---- */

void metrics_set_health(struct metrics *m, metrics_health_fn fn, void *arg,
                        const char *waiting_what)
{
    m->health_fn = fn;
    m->health_arg = arg;
    m->waiting_what = waiting_what;
}

int metrics_health_at(struct metrics *m, double now, char *why, size_t len)
{
    struct metrics_health h;
    int ok;

    memset(&h, 0, sizeof(h));
    if (m->health_fn)
        m->health_fn(m->health_arg, &h);
    /*
     * The stall clock runs only while work is waiting: an idle daemon is
     * not a stalled one, and the first entry after an idle hour is not late.
     */
    if (!m->have_progress || h.progress != m->last_progress || h.waiting <= 0) {
        m->last_progress = h.progress;
        m->progress_at = now;
        m->have_progress = 1;
    }
    m->waiting = h.waiting > 0;
    int stalled = m->waiting && now - m->progress_at >= m->stall_s;
    if (h.down[0]) {
        pgs_log_scrub(h.down, sizeof(h.down));
        snprintf(why, len, "%s", h.down);
        ok = 0;
    } else if (stalled) {
        snprintf(why, len, "stalled: %.0f %s waiting and nothing done for %.0f s", h.waiting,
                 m->waiting_what ? m->waiting_what : "items", now - m->progress_at);
        ok = 0;
    } else {
        snprintf(why, len, "ok");
        ok = 1;
    }
    if (h.note[0]) { /* on a line of its own: "ok" stays the first line of a healthy answer */
        size_t used = strlen(why);
        pgs_log_scrub(h.note, sizeof(h.note));
        if (used + 1 < len)
            snprintf(why + used, len - used, "\n%s", h.note);
    }
    /* the watchdog line: once per state change, and again while a stall goes on */
    if (stalled && (!m->stalled || now - m->stall_logged_at >= METRICS_STALL_RELOG)) {
        char down[sizeof(h.down) * 2];
        pgs_log_value(h.down, down, sizeof(down));
        pgs_log(LOG_WARN, "watchdog: stalled, work is waiting and nothing moves",
                "waiting=%.0f unit=\"%s\" idle_s=%.0f stall_s=%.0f down=\"%s\"", h.waiting,
                m->waiting_what ? m->waiting_what : "items", now - m->progress_at, m->stall_s,
                down);
        m->stall_logged_at = now;
    } else if (!stalled && m->stalled) {
        pgs_log(LOG_INFO, "watchdog: progressing again", "waiting=%.0f", h.waiting);
    }
    m->stalled = stalled;
    metrics_set(m->healthy_gauge, ok);
    metrics_set(m->stalled_gauge, stalled);
    return ok;
}

/* ---- options ---- */

static int parse_port(const char *v, int *port, const char *what, struct pgs_error *err)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 0 || n > 65535) {
        pgs_error_set(err, PGS_ERR_USAGE,
                      "%s must be a port number from 1 to 65535 (0: off), not \"%s\"", what, v);
        return -1;
    }
    *port = (int)n;
    return 0;
}

int metrics_opts_init(struct metrics_opts *o, struct pgs_error *err)
{
    const char *v;

    memset(o, 0, sizeof(*o));
    snprintf(o->bind, sizeof(o->bind), "127.0.0.1");
    o->stall_s = 60;
    v = getenv("PGSYNC_METRICS_PORT");
    if (v && *v) {
        if (parse_port(v, &o->port, "PGSYNC_METRICS_PORT", err) < 0)
            return -1;
        o->from_env = 1;
    }
    v = getenv("PGSYNC_METRICS_BIND");
    if (v && *v && metrics_opts_set(o, "bind", v, err) < 0)
        return -1;
    v = getenv("PGSYNC_STALL_SECONDS");
    if (v && *v) {
        char *end;
        double s = strtod(v, &end);
        if (end == v || *end != '\0' || !(s >= 1 && s <= 86400)) {
            pgs_error_set(err, PGS_ERR_USAGE,
                          "PGSYNC_STALL_SECONDS=%s: expected a number of seconds from 1 to 86400",
                          v);
            return -1;
        }
        o->stall_s = s;
    }
    return 0;
}

int metrics_opts_set(struct metrics_opts *o, const char *opt, const char *value,
                     struct pgs_error *err)
{
    if (!strcmp(opt, "port")) {
        if (parse_port(value, &o->port, "--metrics-port", err) < 0)
            return -1;
        o->from_env = 0;
        return 0;
    }
    if (!strcmp(opt, "bind")) {
        if (!*value || strlen(value) >= sizeof(o->bind)) {
            pgs_error_set(err, PGS_ERR_USAGE, "--metrics-bind: \"%s\" is not an address", value);
            return -1;
        }
        snprintf(o->bind, sizeof(o->bind), "%s", value);
        return 0;
    }
    pgs_error_set(err, PGS_ERR_USAGE, "unknown metrics option \"%s\"", opt);
    return -1;
}

int metrics_opts_take_args(struct metrics_opts *o, int *argc, char **argv, struct pgs_error *err)
{
    static const char *const names[] = {"port", "bind"};
    int out = 1, i;

    for (i = 1; i < *argc; i++) {
        const char *a = argv[i];
        int taken = 0;
        if (!strcmp(a, "--"))
            break; /* the rest is not options: leave it as it is */
        for (int k = 0; k < 2 && !taken; k++) {
            char flag[32];
            size_t fl = (size_t)snprintf(flag, sizeof(flag), "--metrics-%s", names[k]);
            if (strncmp(a, flag, fl) != 0)
                continue;
            if (a[fl] == '=') {
                if (metrics_opts_set(o, names[k], a + fl + 1, err) < 0)
                    return -1;
                taken = 1;
            } else if (a[fl] == '\0') {
                if (i + 1 >= *argc) {
                    pgs_error_set(err, PGS_ERR_USAGE, "%s needs a value", flag);
                    return -1;
                }
                if (metrics_opts_set(o, names[k], argv[++i], err) < 0)
                    return -1;
                taken = 1;
            }
        }
        if (!taken)
            argv[out++] = argv[i];
    }
    for (; i < *argc; i++)
        argv[out++] = argv[i];
    argv[out] = NULL;
    *argc = out;
    return 0;
}

/* ---- HTTP ---- */

static char *http_reply(int code, const char *reason, const char *ctype, const char *body,
                        size_t blen, int head, size_t *outlen)
{
    struct strbuf sb;

    sb_init(&sb);
    sb_printf(&sb,
              "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
              code, reason, ctype, blen);
    if (!head)
        sb_addn(&sb, body, blen);
    *outlen = sb.len;
    return sb_steal(&sb);
}

int metrics_http_respond(struct metrics *m, const char *req, size_t len, char **out, size_t *outlen)
{
    static const char text[] = "text/plain; charset=utf-8";
    const char *eol = memchr(req, '\n', len);
    char method[16], path[256], version[16], why[1024];

    if (eol == NULL) {
        if (len >= METRICS_MAX_REQUEST) {
            *out = http_reply(414, "URI Too Long", text, "request line too long\n", 22, 0, outlen);
            return 1;
        }
        return 0;
    }
    /* the request line: METHOD SP PATH [SP HTTP/x.y] */
    size_t ll = (size_t)(eol - req);
    char line[512];
    if (ll >= sizeof(line)) {
        *out = http_reply(414, "URI Too Long", text, "request line too long\n", 22, 0, outlen);
        return 1;
    }
    memcpy(line, req, ll);
    line[ll] = '\0';
    if (ll > 0 && line[ll - 1] == '\r')
        line[--ll] = '\0';
    version[0] = '\0';
    if (sscanf(line, "%15s %255s %15s", method, path, version) < 2) {
        *out = http_reply(400, "Bad Request", text, "bad request\n", 12, 0, outlen);
        return 1;
    }
    /* an HTTP/1.x request ends with an empty line; HTTP/0.9 is the line alone */
    if (version[0]) {
        int done = 0;
        for (size_t i = ll; i + 1 < len && !done; i++)
            if (req[i] == '\n' &&
                (req[i + 1] == '\n' || (req[i + 1] == '\r' && i + 2 < len && req[i + 2] == '\n')))
                done = 1;
        if (!done) {
            if (len >= METRICS_MAX_REQUEST) {
                *out = http_reply(431, "Request Header Fields Too Large", text,
                                  "headers too large\n", 18, 0, outlen);
                return 1;
            }
            return 0;
        }
    }
    int head = !strcmp(method, "HEAD");
    if (strcmp(method, "GET") != 0 && !head) {
        *out = http_reply(405, "Method Not Allowed", text, "only GET and HEAD\n", 18, 0, outlen);
        return 1;
    }
    path[strcspn(path, "?")] = '\0'; /* Prometheus may add parameters */
    if (!strcmp(path, "/metrics")) {
        size_t blen;
        char *body = metrics_render(m, &blen);
        *out = http_reply(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, blen, head,
                          outlen);
        free(body);
    } else if (!strcmp(path, "/healthz")) {
        int ok = metrics_health_at(m, metrics_now(), why, sizeof(why) - 1);
        strcat(why, "\n");
        *out = http_reply(ok ? 200 : 503, ok ? "OK" : "Service Unavailable", text, why, strlen(why),
                          head, outlen);
    } else {
        *out = http_reply(404, "Not Found", text, "try /metrics or /healthz\n", 25, head, outlen);
    }
    return 1;
}

/* ---- the server ---- */

static void client_close(struct client *c)
{
    struct metrics *m = c->m;
    if (c->fd < 0)
        return;
    if (m->started) {
        ev_io_stop(m->loop, &c->io);
        ev_timer_stop(m->loop, &c->timer);
    }
    close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->inlen = c->outlen = c->outoff = 0;
}

/* Write what the socket takes; close when all is written. */
static void client_write(struct client *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* the rest when the socket is writable */
        if (n <= 0) {
            client_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    /* HTTP/1.0: the end of the body is the end of the connection */
    shutdown(c->fd, SHUT_WR);
    client_close(c);
}

static void client_read(struct client *c)
{
    for (;;) {
        if (c->inlen >= sizeof(c->in))
            break;
        ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == 0 && c->inlen > 0) {
            /* the client closed its side: answer what it sent if that is a request */
            if (metrics_http_respond(c->m, c->in, c->inlen, &c->out, &c->outlen))
                break;
        }
        if (n <= 0) {
            client_close(c); /* gone before asking anything complete */
            return;
        }
        c->inlen += (size_t)n;
    }
    if (c->out == NULL && !metrics_http_respond(c->m, c->in, c->inlen, &c->out, &c->outlen))
        return;
    if (c->m->started) {
        ev_io_stop(c->m->loop, &c->io);
        ev_io_set(&c->io, c->fd, EV_WRITE);
        ev_io_start(c->m->loop, &c->io);
    }
    client_write(c);
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct client *c = w->data;
    (void)loop;
    if (c->out == NULL && (revents & EV_READ))
        client_read(c);
    else if (c->out != NULL && (revents & EV_WRITE))
        client_write(c);
}

static void on_client_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    client_close(w->data);
}

static void accept_clients(struct metrics *m)
{
    for (;;) {
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                pgs_log(LOG_DEBUG, "metrics: accept failed", "error=\"%s\"", strerror(errno));
            return;
        }
        struct client *c = NULL;
        for (int i = 0; i < METRICS_MAX_CLIENTS && c == NULL; i++)
            if (m->clients[i].fd < 0)
                c = &m->clients[i];
        if (c == NULL) {
            static const char busy[] = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 5\r\n"
                                       "Connection: close\r\n\r\nbusy\n";
            ssize_t rv = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)rv;
            close(fd);
            continue;
        }
        c->m = m;
        c->fd = fd;
        c->inlen = c->outlen = c->outoff = 0;
        c->out = NULL;
        c->deadline = metrics_now() + METRICS_CLIENT_TIMEOUT;
        if (m->started) {
            ev_io_init(&c->io, on_client_io, fd, EV_READ);
            c->io.data = c;
            ev_io_start(m->loop, &c->io);
            ev_timer_init(&c->timer, on_client_timeout, METRICS_CLIENT_TIMEOUT, 0);
            c->timer.data = c;
            ev_timer_start(m->loop, &c->timer);
        }
    }
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    accept_clients(w->data);
}

static void on_watch(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct metrics *m = w->data;
    char why[512];
    (void)loop;
    (void)revents;
    m->watched_at = metrics_now();
    metrics_health_at(m, m->watched_at, why, sizeof(why));
}

int metrics_start(struct metrics *m, struct ev_loop *loop, const struct metrics_opts *o,
                  struct pgs_error *err)
{
    m->loop = loop;
    m->stall_s = o->stall_s > 0 ? o->stall_s : 60;
    if (o->port > 0) {
        struct addrinfo hints, *ai = NULL;
        char port[16];
        int one = 1, rc;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        snprintf(port, sizeof(port), "%d", o->port);
        rc = getaddrinfo(o->bind, port, &hints, &ai);
        if (rc != 0) {
            pgs_error_set(err, PGS_ERR_USAGE, "metrics: cannot use the address \"%s\"", o->bind);
            pgs_error_detail(err, "%s", gai_strerror(rc));
            return -1;
        }
        m->lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (m->lfd < 0 || setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(m->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(m->lfd, 16) < 0) {
            pgs_error_set(err, PGS_ERR_USAGE,
                          "metrics: cannot listen on %s port %d: choose another --metrics-port",
                          o->bind, o->port);
            pgs_error_detail(err, "%s", strerror(errno));
            if (m->lfd >= 0)
                close(m->lfd);
            m->lfd = -1;
            freeaddrinfo(ai);
            return -1;
        }
        freeaddrinfo(ai);
        ev_io_init(&m->lio, on_accept, m->lfd, EV_READ);
        m->lio.data = m;
        ev_io_start(loop, &m->lio);
        pgs_log(LOG_INFO, "serving metrics", "address=%s port=%d paths=\"/metrics /healthz\"",
                o->bind, o->port);
    }
    ev_timer_init(&m->watch, on_watch, METRICS_WATCH_INTERVAL, METRICS_WATCH_INTERVAL);
    m->watch.data = m;
    ev_timer_start(loop, &m->watch);
    /* the watchdog must not keep a loop alive that has nothing else to do */
    ev_unref(loop);
    m->started = 1;
    return 0;
}

void metrics_stop(struct metrics *m)
{
    if (!m->started)
        return;
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
        client_close(&m->clients[i]);
    if (m->lfd >= 0) {
        ev_io_stop(m->loop, &m->lio);
        close(m->lfd);
        m->lfd = -1;
    }
    ev_ref(m->loop);
    ev_timer_stop(m->loop, &m->watch);
    m->started = 0;
}

void metrics_poll(struct metrics *m)
{
    struct pollfd pf[1 + METRICS_MAX_CLIENTS];
    struct client *who[1 + METRICS_MAX_CLIENTS];
    double now = metrics_now();
    int n = 0;
    char why[512];

    if (m == NULL || !m->started || now - m->polled_at < 0.02)
        return;
    m->polled_at = now;
    if (m->lfd >= 0) {
        pf[n] = (struct pollfd){.fd = m->lfd, .events = POLLIN};
        who[n++] = NULL;
    }
    for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
        struct client *c = &m->clients[i];
        if (c->fd < 0)
            continue;
        if (now >= c->deadline) {
            client_close(c);
            continue;
        }
        pf[n] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
        who[n++] = c;
    }
    if (n > 0 && poll(pf, (nfds_t)n, 0) > 0) {
        for (int i = 0; i < n; i++) {
            if (pf[i].revents == 0)
                continue;
            if (who[i] == NULL)
                accept_clients(m);
            else if (who[i]->fd == pf[i].fd && who[i]->out == NULL)
                client_read(who[i]);
            else if (who[i]->fd == pf[i].fd)
                client_write(who[i]);
        }
    }
    /* the watchdog's timer cannot fire while the loop waits for us */
    if (now - m->watched_at >= METRICS_WATCH_INTERVAL) {
        m->watched_at = now;
        metrics_health_at(m, now, why, sizeof(why));
    }
}
