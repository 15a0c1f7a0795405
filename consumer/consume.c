/* consume.c - the consumer's read / apply / acknowledge loop. */
#include "consume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "es.h"
#include "load.h"
#include "log.h"
#include "rstream.h"
#include "strbuf.h"
#include "sync.h"

struct stream_state {
    const char *key;
    int load;             /* the load stream: one item at a time */
    char claim_cursor[64];
    double next_claim;
};

struct entry_state {
    struct app_entry *ae;
    struct syncer sync;
    struct stream_state streams[2]; /* changes, load */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_interruptible(double seconds, volatile sig_atomic_t *stop)
{
    double end = now_s() + seconds;
    while (!*stop && now_s() < end)
        usleep(50000);
}

/* Apply a batch and acknowledge it; dead-letter entries that did not decode. */
static int apply_batch(struct entry_state *st, struct stream_state *ss, redisContext *rc,
                       struct rstream_batch *b, struct pgs_error *err)
{
    char origin[160];

    if (b->n == 0 && b->nbad == 0)
        return 0;
    snprintf(origin, sizeof(origin), "%s..%s", b->n ? b->recs[0].entry_id : b->bad_ids[0],
             b->n ? b->recs[b->n - 1].entry_id : b->bad_ids[b->nbad - 1]);
    st->sync.origin = origin;
    st->sync.rc = rc;
    for (int i = 0; i < b->nbad; i++)
        if (syncer_dead_letter(&st->sync, NULL, b->bad_why[i], "bad_record", NULL, 0, err) < 0)
            return -1;
    if (ss->load) {
        for (int i = 0; i < b->n; i++) {
            int dropped = 0;
            if (b->recs[i].op != CHANGE_LOAD)
                continue;
            if (load_range(&st->sync, rc, &b->recs[i], &dropped, err) < 0)
                return -1;
        }
    } else if (syncer_process(&st->sync, b->recs, b->n, err) < 0) {
        return -1;
    }

    /* the stream is our redo log: acknowledge only what the engine accepted */
    char **ids = xcalloc((size_t)(b->n + b->nbad), sizeof(char *));
    int n = 0;
    for (int i = 0; i < b->n; i++)
        ids[n++] = b->recs[i].entry_id;
    for (int i = 0; i < b->nbad; i++)
        ids[n++] = b->bad_ids[i];
    int rv = rstream_ack(rc, ss->key, RSTREAM_GROUP, ids, n, err);
    free(ids);
    if (rv == 0)
        pgs_log(LOG_DEBUG, "batch done", "stream=%s entries=%d roots=%d", ss->key, n,
                st->sync.roots.n);
    return rv;
}

/*
 * One round on one stream: what this consumer holds already (a failed
 * batch, or a restart under the same name), else what a dead consumer left
 * pending, else new entries. Adds the number of entries seen to *got.
 */
static int poll_stream(const struct config *cfg, const struct consume_opts *opts,
                       struct entry_state *st, struct stream_state *ss, redisContext *rc,
                       int block, int *got, struct pgs_error *err)
{
    struct rstream_batch b = {0};
    int count = ss->load ? 1 : cfg->batch_size;
    int rv = -1;

    if (rstream_read_own_pending(rc, ss->key, RSTREAM_GROUP, opts->name, count, &b, err) < 0)
        goto out;
    if (b.n == 0 && b.nbad == 0 && now_s() >= ss->next_claim) {
        if (rstream_autoclaim(rc, ss->key, RSTREAM_GROUP, opts->name, cfg->claim_idle_ms,
                              ss->claim_cursor, sizeof(ss->claim_cursor), count, &b, err) < 0)
            goto out;
        if (b.n > 0 || b.nbad > 0)
            pgs_log(LOG_INFO, "claimed pending entries of another consumer",
                    "stream=%s entries=%d", ss->key, b.n + b.nbad);
        if (!strcmp(ss->claim_cursor, "0-0"))
            ss->next_claim = now_s() + cfg->claim_idle_ms / 2000.0;
    }
    if (b.n == 0 && b.nbad == 0 &&
        rstream_read(rc, ss->key, RSTREAM_GROUP, opts->name, count, block, &b, err) < 0)
        goto out;
    *got += b.n + b.nbad;
    rv = apply_batch(st, ss, rc, &b, err);
out:
    rstream_batch_free(&b);
    return rv;
}

int consume_run(const struct config *cfg, struct app *app, const struct consume_opts *opts,
                volatile sig_atomic_t *stop)
{
    struct es_config ecfg = {
        .url = cfg->es_url,
        .user = cfg->es_user,
        .password = cfg->es_password,
        .api_key = cfg->es_api_key,
        .ca_file = cfg->es_ca_file,
        .client_cert = cfg->es_client_cert,
        .client_key = cfg->es_client_key,
        .verify_tls = cfg->es_verify,
        .force_opensearch = cfg->opensearch,
        .timeout_ms = (long)cfg->es_timeout_s * 1000,
        .gzip = cfg->es_gzip,
    };
    struct pgs_error err;
    struct es_client *es = NULL;
    redisContext *rc = NULL;
    struct entry_state *states = xcalloc((size_t)app->nentries, sizeof(struct entry_state));
    double backoff = 0.1;
    int rv = -1, failing = 0;
    char buf[1600];

    es = es_client_new(&ecfg, &err);
    if (es == NULL) {
        pgs_log(LOG_ERROR, "cannot set up the search engine client", "error=\"%s\"",
                pgs_error_str(&err, buf, sizeof(buf)));
        free(states);
        return -1;
    }
    for (int i = 0; i < app->nentries; i++) {
        states[i].ae = &app->entries[i];
        syncer_init(&states[i].sync, cfg, &app->entries[i], es, NULL, stop);
        states[i].streams[0] = (struct stream_state){.key = app->entries[i].stream};
        states[i].streams[1] = (struct stream_state){.key = app->entries[i].load_stream, .load = 1};
        for (int k = 0; k < 2; k++)
            snprintf(states[i].streams[k].claim_cursor, sizeof(states[i].streams[k].claim_cursor),
                     "0-0");
    }
    pgs_log(LOG_INFO, "consumer started", "name=%s entries=%d", opts->name, app->nentries);

    int ensured = 0;
    while (!*stop) {
        int got = 0;
        pgs_error_clear(&err);
        if (rc == NULL) {
            rc = rstream_connect(cfg, &err);
            if (rc == NULL)
                goto failed;
            for (int i = 0; i < app->nentries; i++)
                for (int k = 0; k < 2; k++)
                    if (rstream_group_create(rc, states[i].streams[k].key, RSTREAM_GROUP, &err) < 0)
                        goto failed;
        }
        if (!ensured) {
            for (int i = 0; i < app->nentries; i++)
                if (app_ensure_index(&app->entries[i], es, &err) < 0)
                    goto failed;
            ensured = 1;
        }
        for (int i = 0; i < app->nentries && !*stop; i++) {
            struct entry_state *st = &states[i];
            int nstreams = opts->load_only ? 1 : 2;
            /* the load stream only rarely has work: wait on the changes stream */
            int block = cfg->block_ms / app->nentries;
            for (int k = 0; k < nstreams && !*stop; k++) {
                struct stream_state *ss = &st->streams[opts->load_only ? 1 : k];
                if (poll_stream(cfg, opts, st, ss, rc, ss->load && !opts->load_only ? -1 : block,
                                &got, &err) < 0)
                    goto failed;
            }
            if (opts->load_only && got == 0) {
                int finished = 0;
                if (load_is_finished(cfg, rc, st->ae, opts->load_id, &finished, &err) < 0)
                    goto failed;
                if (finished)
                    goto done;
            }
        }
        if (failing) {
            pgs_log(LOG_INFO, "recovered", "name=%s", opts->name);
            failing = 0;
        }
        backoff = 0.1;
        if (got == 0 && opts->exit_when_idle)
            break;
        continue;
    done:
        break;

    failed:
        if (err.kind == PGS_ERR_FATAL) {
            pgs_log(LOG_ERROR, "stopping", "error=\"%s\"", pgs_error_str(&err, buf, sizeof(buf)));
            goto out;
        }
        /* log once per state change, not once per retry */
        if (!failing)
            pgs_log(LOG_WARN, "retrying", "error=\"%s\"", pgs_error_str(&err, buf, sizeof(buf)));
        failing = 1;
        if (rc && rc->err) {
            redisFree(rc);
            rc = NULL;
        }
        sleep_interruptible(backoff * (0.5 + (double)rand() / RAND_MAX / 2), stop);
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
    }
    rv = 0;
    pgs_log(LOG_INFO, "consumer stopped", "name=%s", opts->name);
out:
    for (int i = 0; i < app->nentries; i++) {
        pgs_log(LOG_INFO, "totals", "index=%s records=%llu batches=%llu indexed=%llu deleted=%llu "
                "dead_lettered=%llu", states[i].ae->e->index, states[i].sync.records,
                states[i].sync.batches, states[i].sync.docs_indexed, states[i].sync.docs_deleted,
                states[i].sync.docs_rejected);
        syncer_deinit(&states[i].sync);
    }
    free(states);
    if (rc)
        redisFree(rc);
    es_client_free(es);
    return rv;
}
