/* routes.c - which streams the producer reading a slot writes to (see routes.h). */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "ops.h"
#include "rstate.h"
#include "strbuf.h"

int routes_publish(struct redis_conn *rc, const struct config *cfg, const char *slot, int pid,
                   const char *const *streams, int n, struct pgs_error *err)
{
    char key[256], pids[16];
    struct strbuf list;

    rstate_key(cfg, slot, "routes", key, sizeof(key));
    snprintf(pids, sizeof(pids), "%d", pid);
    sb_init(&list);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            sb_addc(&list, '\n');
        sb_add(&list, streams[i]);
    }
    const char *argv[6] = {"HSET", key, "pid", pids, "streams", list.buf ? list.buf : ""};
    redisReply *r = redis_command_argv(rc, err, 6, argv, NULL);
    sb_free(&list);
    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* Is "stream" a line of "list"? */
static int listed(const char *list, const char *stream)
{
    size_t n = strlen(stream);
    for (const char *p = list; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, stream, n) == 0)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

int routes_check(PGconn *conn, struct redis_conn *rc, const struct config *cfg, const char *slot,
                 const char *stream, int *reading, int *serves, struct pgs_error *err)
{
    struct ops_slot s;
    char key[256];

    *reading = *serves = 0;
    if (ops_slot_query(conn, slot, &s, err) < 0)
        return -1;
    if (!s.exists || !s.active)
        return 0;
    *reading = 1;
    rstate_key(cfg, slot, "routes", key, sizeof(key));
    const char *argv[4] = {"HMGET", key, "pid", "streams"};
    redisReply *r = redis_command_argv(rc, err, 4, argv, NULL);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        atoi(r->element[0]->str) == s.active_pid)
        *serves = listed(r->element[1]->str, stream);
    freeReplyObject(r);
    return 0;
}

int routes_lacking(struct redis_conn *rc, const struct config *cfg, const char *slot,
                   const char *const *streams, int n, int *lacking, struct pgs_error *err)
{
    char key[256];
    *lacking = -1;
    rstate_key(cfg, slot, "routes", key, sizeof(key));
    const char *argv[3] = {"HGET", key, "streams"};
    redisReply *r = redis_command_argv(rc, err, 3, argv, NULL);
    if (r == NULL)
        return -1;
    for (int i = 0; r->type == REDIS_REPLY_STRING && i < n && *lacking < 0; i++)
        if (!listed(r->str, streams[i]))
            *lacking = i;
    freeReplyObject(r);
    return 0;
}

int routes_wait(const struct config *cfg, const struct app_entry *ae, int serve, int timeout_s,
                volatile sig_atomic_t *stop, struct pgs_error *err)
{
    PGconn *conn = config_pg_connect(cfg, ae->e->database, 0, "pgsync-routes", err);
    if (conn == NULL)
        return -1;
    struct redis_conn *rc = redis_connect(cfg, err);
    double start = clock_now_s(), logged = start;
    int rv = -1, reading = 0, serves = 0;

    while (rc != NULL && !(stop && *stop)) {
        if (routes_check(conn, rc, cfg, ae->slot, ae->stream, &reading, &serves, err) < 0)
            break;
        if (!reading || serves == serve) {
            rv = 0;
            break;
        }
        double now = clock_now_s();
        if (timeout_s > 0 && now - start > timeout_s) {
            pgs_error_set(err, PGS_ERR_TRANSIENT,
                          serve ? "the producer reading slot \"%s\" does not write index \"%s\"'s "
                                  "stream after %d s: restart it with a schema file that has "
                                  "the index"
                                : "the producer reading slot \"%s\" still writes index \"%s\"'s "
                                  "stream after %d s: restart it",
                          ae->slot, app_entry_name(ae), timeout_s);
            break;
        }
        if (now - logged >= 10) {
            pgs_log(LOG_INFO,
                    serve ? "waiting for the producer to write the new index's stream (it "
                            "restarts by itself when an index's versions change; restart it "
                            "when the schema file gained an index)"
                          : "waiting for the producer to stop writing the index's stream",
                    "slot=%s index=%s stream=%s seconds=%.0f", ae->slot, app_entry_name(ae),
                    ae->stream, now - start);
            logged = now;
        }
        usleep(200 * 1000);
    }
    if (rv < 0 && stop && *stop && err->kind == PGS_OK)
        pgs_error_set(err, PGS_ERR_TRANSIENT, "stopped while waiting for the producer of slot \"%s\"",
                      ae->slot);
    if (rc)
        redis_close(rc);
    PQfinish(conn);
    return rv;
}
