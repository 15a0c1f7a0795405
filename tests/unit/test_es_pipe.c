/*
 * test_es_pipe.c - the bulk pipe against a tiny HTTP server in this process
 * (a thread per connection, keep-alive): every job comes back with every
 * item classified, several requests are on the wire at once, the seq
 * bookkeeping (oldest, in flight) holds, and a dead engine with "stop" set
 * gives a failed job, not a hang, and freeing a pipe with jobs in flight
 * waits for the requests on the wire, sends nothing more and ends every
 * thread (leaks are checked by the SANITIZE=1 run's LeakSanitizer).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "es.h"
#include "es_pipe.h"

/* ---- the fake engine ---- */

struct fake {
    int lfd;
    int port;
    pthread_t tid;
    pthread_mutex_t mu;
    int active, max_active; /* requests being answered at once */
    int requests;
    int answered;           /* responses written (counted just before the write) */
    int delay_ms;           /* per request: lets requests overlap */
};

/* One connection: answer each POST /_bulk with one item per action line. */
static void *fake_conn(void *arg)
{
    int fd = (int)(intptr_t)((void **)arg)[0];
    struct fake *f = ((void **)arg)[1];
    char *buf = malloc(1 << 20);
    size_t have = 0;

    free(arg);
    for (;;) {
        char *end;
        ssize_t n;
        while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
            n = read(fd, buf + have, (1 << 20) - have);
            if (n <= 0)
                goto out;
            have += (size_t)n;
        }
        size_t hlen = (size_t)(end - buf) + 4, clen = 0;
        char *cl = strcasestr(buf, "content-length:");
        if (cl && cl < end)
            clen = strtoul(cl + 15, NULL, 10);
        while (have < hlen + clen) {
            n = read(fd, buf + have, (1 << 20) - have);
            if (n <= 0)
                goto out;
            have += (size_t)n;
        }
        pthread_mutex_lock(&f->mu);
        f->requests++;
        if (++f->active > f->max_active)
            f->max_active = f->active;
        pthread_mutex_unlock(&f->mu);
        usleep((useconds_t)f->delay_ms * 1000);

        /* items: an action line is one that starts {"index" or {"delete" */
        char resp[65536];
        size_t rl = (size_t)snprintf(resp, sizeof(resp), "{\"errors\":false,\"items\":[");
        int k = 0;
        for (char *p = buf + hlen; p < buf + hlen + clen;) {
            char *nl = memchr(p, '\n', (size_t)(buf + hlen + clen - p));
            if (nl == NULL)
                break;
            if (!strncmp(p, "{\"index\"", 8) || !strncmp(p, "{\"delete\"", 9)) {
                /* a document whose id starts with "bad" is refused for good */
                int bad = strstr(p, "\"_id\":\"bad") != NULL && strstr(p, "\"_id\":\"bad") < nl;
                rl += (size_t)snprintf(resp + rl, sizeof(resp) - rl, "%s%s", k++ ? "," : "",
                                       bad ? "{\"index\":{\"status\":400,\"error\":{\"type\":"
                                             "\"mapper_parsing_exception\",\"reason\":\"no\"}}}"
                                           : "{\"index\":{\"status\":201}}");
            }
            p = nl + 1;
        }
        rl += (size_t)snprintf(resp + rl, sizeof(resp) - rl, "]}");
        char head[256];
        int hl = snprintf(head, sizeof(head),
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          rl);
        pthread_mutex_lock(&f->mu);
        f->active--;
        f->answered++;
        pthread_mutex_unlock(&f->mu);
        if (write(fd, head, (size_t)hl) != hl || write(fd, resp, rl) != (ssize_t)rl)
            goto out;
        memmove(buf, buf + hlen + clen, have - hlen - clen);
        have -= hlen + clen;
    }
out:
    close(fd);
    free(buf);
    return NULL;
}

static void *fake_accept(void *arg)
{
    struct fake *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        void **a = malloc(2 * sizeof(void *));
        a[0] = (void *)(intptr_t)fd;
        a[1] = f;
        pthread_t t;
        pthread_create(&t, NULL, fake_conn, a);
        pthread_detach(t);
    }
}

static void fake_start(struct fake *f, int delay_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->delay_ms = delay_ms;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    pthread_create(&f->tid, NULL, fake_accept, f);
    pthread_detach(f->tid);
}

static struct es_client *client_for(int port)
{
    char url[64];
    struct pgs_error err;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    struct es_config cfg = {.url = url, .connect_timeout_ms = 1000, .timeout_ms = 5000};
    struct es_client *c = es_client_new(&cfg, &err);
    assert_non_null(c);
    return c;
}

static void fill(struct es_bulk *b, int n, const char *prefix)
{
    char id[32];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s%d", prefix, i);
        es_bulk_add(b, ES_OP_INDEX, "books", id, 7, "{\"a\":1}", 7, NULL, NULL, NULL);
    }
}

/* ---- tests ---- */

static void test_every_job_returns_classified(void **state)
{
    struct fake f;
    struct pgs_error err;
    struct es_bulk b;
    int seen[6] = {0};
    (void)state;

    fake_start(&f, 0);
    struct es_client *c = client_for(f.port);
    struct es_pipe *p = es_pipe_new(c, 3, NULL, &err);
    assert_non_null(p);
    es_bulk_init(&b);
    for (int k = 1; k <= 5; k++) {
        fill(&b, 10, k == 3 ? "bad" : "ok");
        assert_int_equal(es_pipe_submit(p, &b, "1-0..2-0"), (uint64_t)k);
        assert_int_equal(b.n, 0); /* the job took the items */
    }
    assert_int_equal(es_pipe_inflight(p), 5);
    assert_int_equal(es_pipe_oldest(p), 1);
    for (int k = 0; k < 5; k++) {
        struct es_pipe_job *j = es_pipe_next(p, 1);
        assert_non_null(j);
        assert_int_equal(j->rc, 0);
        assert_string_equal(j->origin, "1-0..2-0");
        int counts[4];
        es_bulk_count(&j->bulk, counts);
        assert_int_equal(counts[ES_ITEM_OK], j->seq == 3 ? 0 : 10);
        assert_int_equal(counts[ES_ITEM_REJECT], j->seq == 3 ? 10 : 0);
        seen[j->seq]++;
        es_pipe_job_free(j);
    }
    for (int k = 1; k <= 5; k++)
        assert_int_equal(seen[k], 1);
    assert_int_equal(es_pipe_inflight(p), 0);
    assert_int_equal(es_pipe_oldest(p), 6);
    assert_null(es_pipe_next(p, 1)); /* nothing in flight: no wait */
    es_pipe_free(p);
    es_client_free(c);
    es_bulk_deinit(&b);
}

static void test_requests_overlap(void **state)
{
    struct fake f;
    struct pgs_error err;
    struct es_bulk b;
    (void)state;

    fake_start(&f, 200);
    struct es_client *c = client_for(f.port);
    struct es_pipe *p = es_pipe_new(c, 3, NULL, &err);
    assert_non_null(p);
    es_bulk_init(&b);
    for (int k = 0; k < 3; k++) {
        fill(&b, 5, "ok");
        es_pipe_submit(p, &b, NULL);
    }
    while (es_pipe_inflight(p) > 0) {
        struct es_pipe_job *j = es_pipe_next(p, 1);
        assert_non_null(j);
        assert_int_equal(j->rc, 0);
        es_pipe_job_free(j);
    }
    assert_int_equal(f.requests, 3);
    assert_int_equal(f.max_active, 3); /* three senders, three requests at once */
    es_pipe_free(p);
    es_client_free(c);
    es_bulk_deinit(&b);
}

static int hook_requests;
static void count_request(void *arg, double seconds, long status)
{
    (void)arg, (void)seconds;
    if (status == 200)
        hook_requests++;
}

static void test_hooks_run_on_the_callers_thread(void **state)
{
    struct fake f;
    struct pgs_error err;
    struct es_bulk b;
    (void)state;

    fake_start(&f, 0);
    struct es_client *c = client_for(f.port);
    struct es_pipe *p = es_pipe_new(c, 2, NULL, &err);
    struct es_hooks h = {.bulk_request = count_request};
    es_pipe_set_hooks(p, &h);
    es_bulk_init(&b);
    hook_requests = 0;
    for (int k = 0; k < 4; k++) {
        fill(&b, 2, "ok");
        es_pipe_submit(p, &b, NULL);
    }
    while (es_pipe_inflight(p) > 0)
        es_pipe_job_free(es_pipe_next(p, 1));
    assert_int_equal(hook_requests, 4);
    es_pipe_free(p);
    es_client_free(c);
    es_bulk_deinit(&b);
}

static void test_dead_engine_with_stop_fails_the_job(void **state)
{
    struct pgs_error err;
    struct es_bulk b;
    volatile sig_atomic_t stop = 1;
    (void)state;

    struct es_client *c = client_for(1); /* nothing listens on port 1 */
    struct es_pipe *p = es_pipe_new(c, 1, &stop, &err);
    es_bulk_init(&b);
    fill(&b, 3, "ok");
    es_pipe_submit(p, &b, NULL);
    struct es_pipe_job *j = es_pipe_next(p, 1);
    assert_non_null(j);
    assert_int_equal(j->rc, -1);
    assert_int_equal(j->err.kind, PGS_ERR_TRANSIENT);
    assert_int_equal(j->bulk.items[0].cls, ES_ITEM_RETRY);
    es_pipe_job_free(j);
    es_pipe_free(p);
    es_client_free(c);
    es_bulk_deinit(&b);
}

static int fake_get(struct fake *f, const int *field)
{
    pthread_mutex_lock(&f->mu);
    int v = *field;
    pthread_mutex_unlock(&f->mu);
    return v;
}

/* Threads of this process now (the "Threads:" line of /proc/self/status). */
static int thread_count(void)
{
    char line[256];
    int n = -1;
    FILE *st = fopen("/proc/self/status", "r");
    assert_non_null(st);
    while (fgets(line, sizeof(line), st))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(st);
    assert_true(n > 0);
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * The thread count once the connection threads of earlier tests' fakes
 * have ended (their clients are freed, they see EOF at once): the same
 * for 100 ms.
 */
static int settled_thread_count(void)
{
    int n = thread_count(), same = 0;
    for (int i = 0; i < 2000 && same < 100; i++) {
        sleep_ms(1);
        int m = thread_count();
        same = m == n ? same + 1 : 0;
        n = m;
    }
    return n;
}

static void test_free_with_jobs_queued(void **state)
{
    struct fake f;
    struct pgs_error err;
    struct es_bulk b;
    (void)state;

    fake_start(&f, 300);
    struct es_client *c = client_for(f.port);
    int base = settled_thread_count(); /* the fake's accept thread is in it */
    struct es_pipe *p = es_pipe_new(c, 2, NULL, &err);
    assert_non_null(p);
    assert_int_equal(thread_count(), base + 2);
    es_bulk_init(&b);
    for (int k = 0; k < 5; k++) {
        fill(&b, 2, "ok");
        es_pipe_submit(p, &b, "x");
    }
    /* both senders have a request on the wire, the fake holds them 300 ms */
    for (int i = 0; i < 2000 && fake_get(&f, &f.requests) < 2; i++)
        sleep_ms(1);
    assert_int_equal(fake_get(&f, &f.requests), 2);
    assert_int_equal(fake_get(&f, &f.answered), 0);

    es_pipe_free(p); /* waits for the requests on the wire, drops the rest */

    /* both answers were read before it returned: it waited for its senders */
    assert_int_equal(fake_get(&f, &f.answered), 2);
    /* the three jobs still queued were dropped, never sent */
    assert_int_equal(fake_get(&f, &f.requests), 2);
    /*
     * The senders are gone (joined); the fake's two connection threads end
     * once they see the senders' connections closed.
     */
    assert_true(thread_count() <= base + 2);
    for (int i = 0; i < 2000 && thread_count() > base; i++)
        sleep_ms(1);
    assert_int_equal(thread_count(), base);
    sleep_ms(100);
    assert_int_equal(fake_get(&f, &f.requests), 2);
    es_client_free(c);
    es_bulk_deinit(&b);
}

static void test_free_idle_and_null(void **state)
{
    struct fake f;
    struct pgs_error err;
    (void)state;

    es_pipe_free(NULL);
    fake_start(&f, 0);
    struct es_client *c = client_for(f.port);
    int base = settled_thread_count();
    struct es_pipe *p = es_pipe_new(c, 3, NULL, &err);
    assert_non_null(p);
    assert_int_equal(thread_count(), base + 3);
    es_pipe_free(p); /* idle senders wake up and end */
    assert_int_equal(thread_count(), base);
    assert_int_equal(fake_get(&f, &f.requests), 0);
    es_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_returns_classified),
        cmocka_unit_test(test_requests_overlap),
        cmocka_unit_test(test_hooks_run_on_the_callers_thread),
        cmocka_unit_test(test_dead_engine_with_stop_fails_the_job),
        cmocka_unit_test(test_free_with_jobs_queued),
        cmocka_unit_test(test_free_idle_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
