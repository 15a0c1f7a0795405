/*
 * test_metrics.c - the Prometheus text rendering (HELP/TYPE headers, label
 * escaping, histogram buckets), /healthz and the stall clock, the HTTP
 * request handling without sockets, the --metrics-* argument taking, and
 * the log's secret scrubbing. No server needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "metrics.h"

/* The rendered text of "m" (freed by the caller). */
static char *render(struct metrics *m)
{
    size_t len;
    char *s = metrics_render(m, &len);
    assert_int_equal(strlen(s), len);
    return s;
}

static void assert_has(const char *text, const char *want)
{
    if (strstr(text, want) == NULL)
        fail_msg("missing \"%s\" in:\n%s", want, text);
}

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

static void test_counter_has_help_type_and_value(void **state)
{
    (void)state;
    struct metrics *m = metrics_new("test");
    struct metric *c = metrics_counter(m, "pgsync_things_total", "Things done.", NULL);
    metrics_add(c, 3);
    metrics_add(c, 4);
    char *s = render(m);
    assert_has(s, "# HELP pgsync_things_total Things done.\n# TYPE pgsync_things_total counter\n"
                  "pgsync_things_total 7\n");
    assert_true(metrics_value(c) == 7);
    /* every process says what it is */
    assert_has(s, "pgsync_info{version=\"" PGS_VERSION "\",process=\"test\"} 1\n");
    free(s);
    metrics_free(m);
}

static void test_labels_are_escaped(void **state)
{
    (void)state;
    char lab[256];
    metrics_labels(lab, sizeof(lab), "index", "a\"b\\c\nd", "stream", "changes", NULL);
    assert_string_equal(lab, "index=\"a\\\"b\\\\c\\nd\",stream=\"changes\"");
    /* too long: never a cut pair */
    char small[24], tiny[8];
    metrics_labels(small, sizeof(small), "index", "a-long-index-name", NULL);
    assert_string_equal(small, "labels_too_long=\"1\"");
    metrics_labels(tiny, sizeof(tiny), "index", "a-long-index-name", NULL);
    assert_string_equal(tiny, "");
}

static void test_help_is_escaped(void **state)
{
    (void)state;
    struct metrics *m = metrics_new("test");
    metrics_gauge(m, "pgsync_g", "line one\nback\\slash", NULL);
    char *s = render(m);
    assert_has(s, "# HELP pgsync_g line one\\nback\\\\slash\n");
    free(s);
    metrics_free(m);
}

static void test_one_header_per_family(void **state)
{
    (void)state;
    struct metrics *m = metrics_new("test");
    unsigned long long a = 5, b = 6;
    metrics_counter_ptr(m, "pgsync_docs_total", "Docs.", "index=\"a\"", &a);
    metrics_gauge(m, "pgsync_other", "Other.", NULL);
    metrics_counter_ptr(m, "pgsync_docs_total", "Docs.", "index=\"b\"", &b);
    b = 60; /* read at scrape time */
    char *s = render(m);
    assert_int_equal(count_of(s, "# TYPE pgsync_docs_total counter"), 1);
    assert_has(s, "pgsync_docs_total{index=\"a\"} 5\npgsync_docs_total{index=\"b\"} 60\n"
                  "# HELP pgsync_other");
    free(s);
    metrics_free(m);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    static const double bounds[] = {0.1, 1, 10};
    struct metrics *m = metrics_new("test");
    struct metric *h =
        metrics_histogram(m, "pgsync_lat_seconds", "Latency.", "index=\"x\"", bounds, 3);
    metrics_observe(h, 0.05);
    metrics_observe(h, 0.1); /* le: equal goes into its own bucket */
    metrics_observe(h, 0.5);
    metrics_observe(h, 20);
    metrics_observe(h, NAN); /* ignored */
    char *s = render(m);
    assert_has(s, "# TYPE pgsync_lat_seconds histogram\n"
                  "pgsync_lat_seconds_bucket{index=\"x\",le=\"0.1\"} 2\n"
                  "pgsync_lat_seconds_bucket{index=\"x\",le=\"1\"} 3\n"
                  "pgsync_lat_seconds_bucket{index=\"x\",le=\"10\"} 3\n"
                  "pgsync_lat_seconds_bucket{index=\"x\",le=\"+Inf\"} 4\n"
                  "pgsync_lat_seconds_sum{index=\"x\"} 20.65\n"
                  "pgsync_lat_seconds_count{index=\"x\"} 4\n");
    assert_true(metrics_value(h) == 4);
    free(s);
    metrics_free(m);
}

static void test_histogram_without_labels(void **state)
{
    (void)state;
    static const double bounds[] = METRICS_LATENCY_BUCKETS;
    struct metrics *m = metrics_new("test");
    struct metric *h = metrics_histogram(m, "pgsync_bulk_seconds", "Bulk.", NULL, bounds,
                                         (int)(sizeof(bounds) / sizeof(bounds[0])));
    metrics_observe(h, 0.003);
    char *s = render(m);
    assert_has(s, "pgsync_bulk_seconds_bucket{le=\"0.005\"} 1\n");
    assert_has(
        s, "pgsync_bulk_seconds_bucket{le=\"120\"} 1\npgsync_bulk_seconds_bucket{le=\"+Inf\"} 1\n");
    assert_has(s, "pgsync_bulk_seconds_sum 0.003\npgsync_bulk_seconds_count 1\n");
    free(s);
    metrics_free(m);
}

static double half(const void *arg)
{
    return *(const double *)arg / 2;
}

static void test_gauge_sources(void **state)
{
    (void)state;
    struct metrics *m = metrics_new("test");
    int up = 1;
    uint64_t end = 0xFFFFFFFFFFFFFF01ull, confirmed = 0xFFFFFFFFFFFFFE01ull;
    double ten = 10;
    metrics_gauge_int(m, "pgsync_up", "Up.", NULL, &up);
    metrics_gauge_u64(m, "pgsync_lsn", "LSN.", NULL, &end);
    metrics_gauge_u64_diff(m, "pgsync_lag_bytes", "Lag.", NULL, &end, &confirmed);
    metrics_gauge_u64_diff(m, "pgsync_lag2_bytes", "Lag, never negative.", NULL, &confirmed, &end);
    metrics_gauge_fn(m, "pgsync_half", "Half.", NULL, half, &ten);
    struct metric *g = metrics_gauge(m, "pgsync_nan", "NaN.", NULL);
    metrics_set(g, NAN);
    struct metric *i = metrics_gauge(m, "pgsync_inf", "Inf.", NULL);
    metrics_set(i, -INFINITY);
    up = 0;
    char *s = render(m);
    assert_has(s, "pgsync_up 0\n");
    assert_has(s, "pgsync_lsn 18446744073709551361\n"); /* exact, not a rounded double */
    assert_has(s, "pgsync_lag_bytes 256\n");
    assert_has(s, "pgsync_lag2_bytes 0\n");
    assert_has(s, "pgsync_half 5\n");
    assert_has(s, "pgsync_nan NaN\n");
    assert_has(s, "pgsync_inf -Inf\n");
    free(s);
    metrics_free(m);
}

/* ---- health ---- */

struct fake_health {
    const char *down;
    double waiting, progress;
};

static void fake_health_fn(void *arg, struct metrics_health *h)
{
    const struct fake_health *f = arg;
    if (f->down)
        snprintf(h->down, sizeof(h->down), "%s", f->down);
    h->waiting = f->waiting;
    h->progress = f->progress;
}

static struct metrics *health_fixture(struct fake_health *f, struct ev_loop **loop)
{
    struct metrics *m = metrics_new("test");
    struct metrics_opts o = {.port = 0, .stall_s = 10};
    struct pgs_error err;
    *loop = ev_loop_new(EVFLAG_AUTO);
    metrics_set_health(m, fake_health_fn, f, "stream entries");
    assert_int_equal(metrics_start(m, *loop, &o, &err), 0);
    return m;
}

static void test_health_idle_is_not_a_stall(void **state)
{
    (void)state;
    struct fake_health f = {NULL, 0, 1};
    struct ev_loop *loop;
    struct metrics *m = health_fixture(&f, &loop);
    char why[512];

    assert_int_equal(metrics_health_at(m, 1000, why, sizeof(why)), 1);
    assert_string_equal(why, "ok");
    /* an hour idle, then work arrives: the clock starts now, not an hour ago */
    assert_int_equal(metrics_health_at(m, 4600, why, sizeof(why)), 1);
    f.waiting = 5;
    assert_int_equal(metrics_health_at(m, 4601, why, sizeof(why)), 1);
    assert_int_equal(metrics_health_at(m, 4609, why, sizeof(why)), 1);
    /* nothing moved for the stall time while work waits */
    assert_int_equal(metrics_health_at(m, 4612, why, sizeof(why)), 0);
    assert_string_equal(why, "stalled: 5 stream entries waiting and nothing done for 12 s");
    /* progress: healthy again, and the clock restarts */
    f.progress = 2;
    assert_int_equal(metrics_health_at(m, 4613, why, sizeof(why)), 1);
    assert_int_equal(metrics_health_at(m, 4622, why, sizeof(why)), 1);
    assert_int_equal(metrics_health_at(m, 4623.5, why, sizeof(why)), 0);
    metrics_free(m);
    ev_loop_destroy(loop);
}

static void test_health_down_reason(void **state)
{
    (void)state;
    struct fake_health f = {"not connected to Redis: Connection refused", 0, 0};
    struct ev_loop *loop;
    struct metrics *m = health_fixture(&f, &loop);
    char why[512];

    assert_int_equal(metrics_health_at(m, 1, why, sizeof(why)), 0);
    assert_string_equal(why, "not connected to Redis: Connection refused");
    char *s = render(m);
    assert_has(s, "pgsync_healthy 0\n");
    free(s);
    metrics_free(m);
    ev_loop_destroy(loop);
}

/* ---- HTTP without sockets ---- */

static char *respond(struct metrics *m, const char *req, int *complete)
{
    char *out = NULL;
    size_t len = 0;
    *complete = metrics_http_respond(m, req, strlen(req), &out, &len);
    if (*complete)
        assert_int_equal(strlen(out), len);
    return out;
}

static void test_http_paths(void **state)
{
    (void)state;
    struct fake_health f = {NULL, 0, 0};
    struct ev_loop *loop;
    struct metrics *m = health_fixture(&f, &loop);
    int done;
    char *r;

    r = respond(m, "GET /metrics HTTP/1.1\r\nHost: x\r\n", &done);
    assert_int_equal(done, 0); /* the headers have not ended yet */
    r = respond(m, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", &done);
    assert_int_equal(done, 1);
    assert_has(r, "HTTP/1.0 200 OK\r\n");
    assert_has(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
    assert_has(r, "\r\n\r\n# HELP pgsync_info");
    free(r);

    r = respond(m, "GET /healthz?verbose=1 HTTP/1.0\n\n", &done);
    assert_has(r, "HTTP/1.0 200 OK\r\n");
    assert_has(r, "Content-Length: 3\r\n");
    assert_has(r, "\r\n\r\nok\n");
    free(r);

    f.down = "not connected to the search engine: refused";
    r = respond(m, "GET /healthz\r\n", &done); /* HTTP/0.9: the line alone */
    assert_int_equal(done, 1);
    assert_has(r, "HTTP/1.0 503 Service Unavailable\r\n");
    assert_has(r, "\r\n\r\nnot connected to the search engine: refused\n");
    free(r);

    r = respond(m, "HEAD /metrics HTTP/1.0\r\n\r\n", &done);
    assert_has(r, "HTTP/1.0 200 OK\r\n");
    assert_true(strstr(r, "\r\n\r\n")[4] == '\0'); /* no body */
    free(r);

    r = respond(m, "GET /other HTTP/1.0\r\n\r\n", &done);
    assert_has(r, "HTTP/1.0 404 Not Found\r\n");
    free(r);
    r = respond(m, "POST /metrics HTTP/1.0\r\n\r\n", &done);
    assert_has(r, "HTTP/1.0 405 Method Not Allowed\r\n");
    free(r);
    r = respond(m, "\r\n", &done);
    assert_has(r, "HTTP/1.0 400 Bad Request\r\n");
    free(r);

    /* bounded: a request line or headers that never end are refused, not buffered */
    char *big = malloc(9000);
    memset(big, 'a', 8999);
    big[8999] = '\0';
    r = respond(m, big, &done);
    assert_int_equal(done, 1);
    assert_has(r, "HTTP/1.0 414");
    free(r);
    memcpy(big, "GET /metrics HTTP/1.0\r\n", 23);
    r = respond(m, big, &done);
    assert_int_equal(done, 1);
    assert_has(r, "HTTP/1.0 431");
    free(r);
    free(big);
    metrics_free(m);
    ev_loop_destroy(loop);
}

/* ---- options ---- */

static void test_take_args(void **state)
{
    (void)state;
    struct metrics_opts o;
    struct pgs_error err;
    static const char *const args[] = {
        "prog",        "--config", "f.json", "--metrics-port", "9187", "--metrics-bind=0.0.0.0",
        "--log-level", "debug",    "--",     "--metrics-port"};
    char *argv[11];
    int argc = 10;
    for (int i = 0; i < argc; i++)
        argv[i] = strdup(args[i]);
    argv[argc] = NULL;
    char *copy[10];
    memcpy(copy, argv, sizeof(copy));

    unsetenv("PGSYNC_METRICS_PORT");
    unsetenv("PGSYNC_METRICS_BIND");
    unsetenv("PGSYNC_STALL_SECONDS");
    assert_int_equal(metrics_opts_init(&o, &err), 0);
    assert_int_equal(o.port, 0);
    assert_string_equal(o.bind, "127.0.0.1");
    assert_true(o.stall_s == 60);
    assert_int_equal(metrics_opts_take_args(&o, &argc, argv, &err), 0);
    assert_int_equal(argc, 7);
    assert_string_equal(argv[3], "--log-level");
    assert_string_equal(argv[5], "--");
    assert_string_equal(argv[6], "--metrics-port"); /* after "--": left alone */
    assert_null(argv[7]);
    assert_int_equal(o.port, 9187);
    assert_string_equal(o.bind, "0.0.0.0");

    for (int i = 0; i < 10; i++)
        free(copy[i]);

    char p0[] = "prog", p1[] = "--metrics-port", p2[] = "http";
    char *bad[] = {p0, p1, p2, NULL};
    argc = 3;
    assert_int_equal(metrics_opts_take_args(&o, &argc, bad, &err), -1);
    assert_non_null(strstr(err.msg, "--metrics-port"));

    setenv("PGSYNC_METRICS_PORT", "9188", 1);
    setenv("PGSYNC_STALL_SECONDS", "15", 1);
    assert_int_equal(metrics_opts_init(&o, &err), 0);
    assert_int_equal(o.port, 9188);
    assert_int_equal(o.from_env, 1);
    assert_true(o.stall_s == 15);
    setenv("PGSYNC_STALL_SECONDS", "0", 1);
    assert_int_equal(metrics_opts_init(&o, &err), -1);
    unsetenv("PGSYNC_METRICS_PORT");
    unsetenv("PGSYNC_STALL_SECONDS");
}

/* ---- secrets in logs ---- */

static void test_scrub_and_redact(void **state)
{
    (void)state;
    char buf[256], url[256];

    pgs_log_add_secret("s3cr3t-pw");
    pgs_log_add_secret("abc"); /* too short to scrub blindly: ignored */
    pgs_log_add_url_secret("postgres://user:p%40ss%2Fword@db:5432/x");
    snprintf(buf, sizeof(buf),
             "password s3cr3t-pw twice s3cr3t-pw; abc; p@ss/word; p%%40ss%%2Fword");
    assert_string_equal(pgs_log_scrub(buf, sizeof(buf)), "password *** twice ***; abc; ***; ***");

    assert_string_equal(pgs_redact_url("http://elastic:pw@host:9200", url, sizeof(url)),
                        "http://***@host:9200");
    /* a password with '/' or '@' written as is must not leak either */
    assert_string_equal(pgs_redact_url("redis://:pa/ss@wd@host:6379/0", url, sizeof(url)),
                        "redis://***@host:6379/0");
    assert_string_equal(pgs_redact_url("http://host:9200/", url, sizeof(url)), "http://host:9200/");

    /* a value with quotes stays one key="..." pair */
    assert_string_equal(pgs_log_value("database \"x\" at c:\\d\nend", url, sizeof(url)),
                        "database \\\"x\\\" at c:\\\\d end");
    char tiny[4];
    assert_string_equal(pgs_log_value("ab\"", tiny, sizeof(tiny)), "ab"); /* no lone backslash */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_has_help_type_and_value),
        cmocka_unit_test(test_labels_are_escaped),
        cmocka_unit_test(test_help_is_escaped),
        cmocka_unit_test(test_one_header_per_family),
        cmocka_unit_test(test_histogram_buckets_are_cumulative),
        cmocka_unit_test(test_histogram_without_labels),
        cmocka_unit_test(test_gauge_sources),
        cmocka_unit_test(test_health_idle_is_not_a_stall),
        cmocka_unit_test(test_health_down_reason),
        cmocka_unit_test(test_http_paths),
        cmocka_unit_test(test_take_args),
        cmocka_unit_test(test_scrub_and_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
