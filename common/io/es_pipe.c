/*
 * es_pipe.c - sender threads for _bulk requests (see es_pipe.h). One mutex
 * guards the queues and the hook events; each sender owns its es_client;
 * jobs move todo -> (a sender) -> done -> the caller.
 */
#include "es_pipe.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "strbuf.h"

#define PIPE_MAX_SENDERS 16
#define PIPE_EVENTS      64 /* hook events kept between two looks of the caller */
#define PIPE_WAIT_MS     50 /* the "waiting" hook's period while the caller blocks */

enum pipe_ev_kind { PIPE_EV_REQUEST, PIPE_EV_RETRY };

struct pipe_event {
    enum pipe_ev_kind kind;
    double seconds;
    long status;
    int items;
    char why[300];
};

struct sender {
    struct es_pipe *p;
    struct es_client *es;
    pthread_t tid;
    int started;
};

struct es_pipe {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job to send, or quit */
    pthread_cond_t done; /* a job finished */
    struct es_pipe_job *todo, *todo_tail, *fin, *fin_tail;
    int quit;
    volatile sig_atomic_t *stop;
    struct sender senders[PIPE_MAX_SENDERS];
    int nsenders;
    /* the caller's side only: no lock */
    uint64_t next_seq;
    uint64_t *live; /* seqs submitted and not returned, ascending */
    int nlive, caplive;
    struct es_hooks hooks;
    /* hook events of the senders, under "mu" (a ring; the oldest go when it is full) */
    struct pipe_event ev[PIPE_EVENTS];
    int ev_head, ev_n;
};

static void pipe_push_event(struct es_pipe *p, const struct pipe_event *e)
{
    pthread_mutex_lock(&p->mu);
    if (p->ev_n == PIPE_EVENTS) { /* metrics only: drop the oldest */
        p->ev_head = (p->ev_head + 1) % PIPE_EVENTS;
        p->ev_n--;
    }
    p->ev[(p->ev_head + p->ev_n) % PIPE_EVENTS] = *e;
    p->ev_n++;
    pthread_mutex_unlock(&p->mu);
}

/* The senders' client hooks: queue the event for the caller's thread. */
static void sender_bulk_request(void *arg, double seconds, long status)
{
    struct sender *sd = arg;
    struct pipe_event e = {.kind = PIPE_EV_REQUEST, .seconds = seconds, .status = status};
    pipe_push_event(sd->p, &e);
}

static void sender_bulk_retry(void *arg, int items, const char *why)
{
    struct sender *sd = arg;
    struct pipe_event e = {.kind = PIPE_EV_RETRY, .items = items};
    snprintf(e.why, sizeof(e.why), "%s", why ? why : "");
    pipe_push_event(sd->p, &e);
}

static void *sender_main(void *arg)
{
    struct sender *sd = arg;
    struct es_pipe *p = sd->p;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->todo == NULL && !p->quit)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->quit)
            break;
        struct es_pipe_job *j = p->todo;
        p->todo = j->next;
        if (p->todo == NULL)
            p->todo_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        pgs_error_clear(&j->err);
        j->rc = es_bulk_flush(sd->es, &j->bulk, p->stop, &j->err);

        pthread_mutex_lock(&p->mu);
        j->next = NULL;
        if (p->fin_tail)
            p->fin_tail->next = j;
        else
            p->fin = j;
        p->fin_tail = j;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void free_list(struct es_pipe_job *j)
{
    while (j) {
        struct es_pipe_job *next = j->next;
        es_pipe_job_free(j);
        j = next;
    }
}

struct es_pipe *es_pipe_new(const struct es_client *proto, int senders,
                            volatile sig_atomic_t *stop, struct pgs_error *err)
{
    struct es_pipe *p = xcalloc(1, sizeof(*p));
    sigset_t all, old;

    if (senders < 1)
        senders = 1;
    if (senders > PIPE_MAX_SENDERS)
        senders = PIPE_MAX_SENDERS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->stop = stop;
    p->next_seq = 1;
    /* signals stay with the caller's thread: its EINTR and stop-flag handling is unchanged */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < senders; i++) {
        struct sender *sd = &p->senders[i];
        sd->p = p;
        sd->es = es_client_dup(proto, err);
        if (sd->es == NULL)
            break;
        struct es_hooks h = {sender_bulk_request, sender_bulk_retry, NULL, sd};
        es_client_set_hooks(sd->es, &h);
        int rc = pthread_create(&sd->tid, NULL, sender_main, sd);
        if (rc != 0) {
            pgs_error_set(err, PGS_ERR_FATAL, "cannot start a bulk sender thread");
            pgs_error_detail(err, "%s", strerror(rc));
            es_client_free(sd->es);
            sd->es = NULL;
            break;
        }
        sd->started = 1;
        p->nsenders++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->nsenders < senders) {
        es_pipe_free(p);
        return NULL;
    }
    return p;
}

void es_pipe_free(struct es_pipe *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < PIPE_MAX_SENDERS; i++) {
        if (p->senders[i].started)
            pthread_join(p->senders[i].tid, NULL);
        es_client_free(p->senders[i].es);
    }
    free_list(p->todo);
    free_list(p->fin);
    free(p->live);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void es_pipe_set_hooks(struct es_pipe *p, const struct es_hooks *hooks)
{
    if (hooks != NULL)
        p->hooks = *hooks;
    else
        memset(&p->hooks, 0, sizeof(p->hooks));
}

uint64_t es_pipe_submit(struct es_pipe *p, struct es_bulk *b, const char *origin)
{
    struct es_pipe_job *j = xcalloc(1, sizeof(*j));

    /* the job takes the items (and their memory); "b" starts again empty */
    j->bulk = *b;
    es_bulk_init(b);
    j->seq = p->next_seq++;
    j->origin = origin ? xstrdup(origin) : NULL;
    if (p->nlive == p->caplive) {
        p->caplive = p->caplive ? p->caplive * 2 : 8;
        p->live = xrealloc(p->live, sizeof(*p->live) * (size_t)p->caplive);
    }
    p->live[p->nlive++] = j->seq;

    pthread_mutex_lock(&p->mu);
    if (p->todo_tail)
        p->todo_tail->next = j;
    else
        p->todo = j;
    p->todo_tail = j;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return j->seq;
}

int es_pipe_inflight(const struct es_pipe *p)
{
    return p->nlive;
}

uint64_t es_pipe_oldest(const struct es_pipe *p)
{
    return p->nlive > 0 ? p->live[0] : p->next_seq;
}

/* Forward the queued hook events; called with "mu" held, drops it around the hooks. */
static void pipe_forward_events(struct es_pipe *p)
{
    while (p->ev_n > 0) {
        struct pipe_event e = p->ev[p->ev_head];
        p->ev_head = (p->ev_head + 1) % PIPE_EVENTS;
        p->ev_n--;
        pthread_mutex_unlock(&p->mu);
        if (e.kind == PIPE_EV_REQUEST && p->hooks.bulk_request)
            p->hooks.bulk_request(p->hooks.arg, e.seconds, e.status);
        else if (e.kind == PIPE_EV_RETRY && p->hooks.bulk_retry)
            p->hooks.bulk_retry(p->hooks.arg, e.items, e.why);
        pthread_mutex_lock(&p->mu);
    }
}

struct es_pipe_job *es_pipe_next(struct es_pipe *p, int block)
{
    struct es_pipe_job *j;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        pipe_forward_events(p);
        if (p->fin != NULL || !block || p->nlive == 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += PIPE_WAIT_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait(&p->done, &p->mu, &ts);
        if (rc == ETIMEDOUT && p->fin == NULL && p->hooks.waiting) {
            /* serve /healthz and /metrics while a long request or a retry runs */
            pthread_mutex_unlock(&p->mu);
            p->hooks.waiting(p->hooks.arg);
            pthread_mutex_lock(&p->mu);
        }
    }
    j = p->fin;
    if (j != NULL) {
        p->fin = j->next;
        if (p->fin == NULL)
            p->fin_tail = NULL;
        j->next = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (j != NULL) {
        /* no longer live: keep the others in order */
        for (int i = 0; i < p->nlive; i++) {
            if (p->live[i] == j->seq) {
                memmove(&p->live[i], &p->live[i + 1], sizeof(*p->live) * (size_t)(p->nlive - i - 1));
                p->nlive--;
                break;
            }
        }
    }
    return j;
}

void es_pipe_job_free(struct es_pipe_job *j)
{
    if (j == NULL)
        return;
    es_bulk_deinit(&j->bulk);
    free(j->origin);
    free(j);
}
