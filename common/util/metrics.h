/*
 * metrics.h - what a daemon tells its operators: counters, gauges and
 * histograms in the Prometheus text format (0.0.4) on GET /metrics, its
 * health on GET /healthz, and a watchdog that logs a stall (work waiting,
 * nothing done for PGSYNC_STALL_SECONDS) once per state change: a daemon
 * that is alive but makes no progress must not look healthy. The HTTP/1.0 server lives on the daemon's own libev loop:
 * accept, read the request line and headers (bounded), write, close.
 *
 *   struct metrics *m = metrics_new("consumer");
 *   struct metric *b = metrics_counter(m, "pgsync_consumer_batches_total", "Batches.", NULL);
 *   metrics_add(b, 1);
 *   metrics_start(m, loop, &opts, &err);   // opts.port == 0: watchdog only
 *
 * Labels are pre-formatted pairs without braces (metrics_labels() escapes
 * the values): `index="book",stream="changes"`.
 */
#ifndef PGS_METRICS_H
#define PGS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "error.h"

struct metrics;
struct metric;

/* Upper bounds (seconds) for latency histograms: 5 ms to 2 min, +Inf implied. */
#define METRICS_LATENCY_BUCKETS                                                                    \
    {                                                                                              \
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120                       \
    }
#define METRICS_MAX_BUCKETS 32

struct metrics *metrics_new(const char *proc);
void metrics_free(struct metrics *m);

/*
 * Registration: "name" and "help" must be string constants (borrowed);
 * "labels" is copied. Metrics of one name are rendered together under one
 * HELP/TYPE header, in the order they were registered.
 */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels);
/* A counter read from "*src" at every scrape; "src" is borrowed and must outlive "m". */
struct metric *metrics_counter_ptr(struct metrics *m, const char *name, const char *help,
                                   const char *labels, const unsigned long long *src);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels);
/* A gauge computed at every scrape by "fn(arg)". */
typedef double (*metrics_value_fn)(const void *arg);
struct metric *metrics_gauge_fn(struct metrics *m, const char *name, const char *help,
                                const char *labels, metrics_value_fn fn, const void *arg);
/* Gauges read from "*src" (borrowed) at every scrape; _diff: *a - *b, 0 when *b >= *a (a lag). */
struct metric *metrics_gauge_int(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const int *src);
struct metric *metrics_gauge_u64(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const uint64_t *src);
struct metric *metrics_gauge_u64_diff(struct metrics *m, const char *name, const char *help,
                                      const char *labels, const uint64_t *a, const uint64_t *b);
/* "bounds": "nbounds" ascending upper bounds (copied, at most METRICS_MAX_BUCKETS). */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, int nbounds);

void metrics_add(struct metric *counter, unsigned long long n);
void metrics_set(struct metric *gauge, double v);
void metrics_observe(struct metric *histogram, double v);
/* The current value (a histogram's count); for tests and logs. */
double metrics_value(const struct metric *x);

/*
 * Label pairs: metrics_labels(buf, len, "index", ix, "stream", "changes", NULL)
 * writes `index="<ix escaped>",stream="changes"`. Returns "buf".
 */
const char *metrics_labels(char *buf, size_t len, const char *key, ...) __attribute__((sentinel));

/* The whole exposition text: a new NUL-terminated buffer (caller frees), its length in *len. */
char *metrics_render(struct metrics *m, size_t *len);

/* ---- health and the stall watchdog ---- */

struct metrics_health {
    char down[640];  /* "" when every connection is up; else the reason ("not connected to Redis:
                        ...") */
    double waiting;  /* work waiting (stream entries, WAL bytes); 0 = none */
    double progress; /* any number that grows whenever work gets done */
    char note[400];  /* "" or a line shown after the verdict, healthy or not ("1 of 3 search
                        engine nodes up; set aside: ...") */
};
/* Fills "h" from the daemon's state; reads memory only (no I/O: it runs on every /healthz). */
typedef void (*metrics_health_fn)(void *arg, struct metrics_health *h);
/* "waiting_what" names the unit of "waiting" in messages ("stream entries", "bytes of WAL"). */
void metrics_set_health(struct metrics *m, metrics_health_fn fn, void *arg,
                        const char *waiting_what);

/*
 * 1 when healthy; else 0 with the reason in "why": the health's "down", or
 * "stalled: ..." when work has been waiting and nothing moved for the stall
 * time. "now" is a monotonic time in seconds. Also feeds the watchdog.
 */
int metrics_health_at(struct metrics *m, double now, char *why, size_t len);

/* ---- options and the server ---- */

struct metrics_opts {
    int port;       /* 0: no HTTP server (the watchdog still runs) */
    char bind[64];  /* listen address [127.0.0.1] */
    double stall_s; /* PGSYNC_STALL_SECONDS [60] */
    int from_env;   /* the port came from PGSYNC_METRICS_PORT (a busy port is then not fatal) */
};

#define METRICS_HELP                                                                               \
    "      --metrics-port N   serve /metrics and /healthz on port N [PGSYNC_METRICS_PORT]\n"       \
    "      --metrics-bind A   the address to listen on [PGSYNC_METRICS_BIND or 127.0.0.1]\n"

/* Defaults from PGSYNC_METRICS_PORT, PGSYNC_METRICS_BIND, PGSYNC_STALL_SECONDS. */
int metrics_opts_init(struct metrics_opts *o, struct pgs_error *err) PGS_MUSTCHECK;
/* --metrics-port / --metrics-bind: "opt" is "port" or "bind". */
int metrics_opts_set(struct metrics_opts *o, const char *opt, const char *value,
                     struct pgs_error *err) PGS_MUSTCHECK;
/*
 * For a main whose getopt loop is shared with others: take --metrics-port P,
 * --metrics-port=P, --metrics-bind A and --metrics-bind=A out of argv
 * (*argc shrinks) before getopt sees them.
 */
int metrics_opts_take_args(struct metrics_opts *o, int *argc, char **argv,
                           struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Start the watchdog (every second) and, when o->port > 0, the HTTP server
 * on "loop". -1 when the port cannot be bound (with the address and the reason).
 */
int metrics_start(struct metrics *m, struct ev_loop *loop, const struct metrics_opts *o,
                  struct pgs_error *err) PGS_MUSTCHECK;
void metrics_stop(struct metrics *m);

/*
 * Serve waiting HTTP clients and run the watchdog without the loop: for a
 * caller stuck in a long blocking step (a bulk retry, a long query). Never
 * blocks; does nothing when called again within 20 ms.
 */
void metrics_poll(struct metrics *m);

/*
 * The HTTP part without sockets, for tests: the response to the request
 * "req" ("len" bytes so far). Returns 1 and a new buffer in *out when the
 * request is complete (or bad, or too large), 0 when more bytes are needed.
 */
int metrics_http_respond(struct metrics *m, const char *req, size_t len, char **out,
                         size_t *outlen);

#endif
