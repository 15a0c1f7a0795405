/*
 * redis.h - the connection to Redis, and nothing else: connecting (AUTH,
 * SELECT, TLS, time-outs), running one command with its failure turned
 * into a pgs_error, and pipelining. Blocking calls with a time-out on every
 * wait (rconn.h: our socket, plain or TLS, with hiredis's reply parser); a
 * failed call returns NULL (or -1) with PGS_ERR_TRANSIENT and the caller
 * reconnects.
 *
 * One handle is a single node, the primary the sentinels name, or the
 * masters of a Redis Cluster: each command goes to the node serving its key's
 * slot (every key of an index carries its {hash tag}, so an index lives in
 * one slot), connected on first use. Debian 12's hiredis (0.14) has no
 * cluster support and no TLS, so the routing and the socket are ours.
 * Keep the surface small: only rstream.c (the change streams) and rstate.c
 * (every other key) call it; no other file sends a command.
 */
#ifndef PGS_REDIS_H
#define PGS_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "error.h"

struct redis_conn;

/*
 * A connected, authenticated handle on the configured database, or NULL
 * with "err". With REDIS_SENTINELS the sentinels are asked for the primary
 * (the first that answers), and the node must say ROLE master itself. With
 * REDIS_CLUSTER_NODES the first node that answers gives the slot map
 * (CLUSTER SLOTS). A failed node, or a reply of READONLY, LOADING,
 * MASTERDOWN (or in a pipeline MOVED, ASK, TRYAGAIN, CLUSTERDOWN) marks the
 * handle broken: the caller closes it and connects again, to the new
 * primary or slot map. "cfg" must outlive the handle.
 */
struct redis_conn *redis_connect(const struct config *cfg, struct pgs_error *err);
void redis_close(struct redis_conn *c);
/*
 * Every connected node's maxmemory-policy again (redis_connect checks it
 * first): an allkeys-* policy, set while we run, marks the handle broken
 * and fails with the reason, and reconnecting fails the same way until it
 * is fixed. 0 when the policy keeps our keys.
 */
int redis_check_eviction(struct redis_conn *c, struct pgs_error *err) PGS_MUSTCHECK;
/* Must the handle be closed and connected again? And why ("" while it is fine). */
int redis_broken(const struct redis_conn *c);
const char *redis_errstr(const struct redis_conn *c);
/*
 * Send the next keyless commands (MULTI, EXEC) to the node of "key": a
 * transaction over one key's slot. Keyed commands route themselves.
 */
void redis_route(struct redis_conn *c, const char *key);

/*
 * How many connections redis_connect made in this process: a writer that
 * must WAIT on the connection it wrote with sees that it was replaced.
 */
unsigned long redis_connect_count(void);

/*
 * Redis replication is asynchronous: after a failover the writes the old
 * primary had not yet sent to its replica are gone. WAIT for
 * cfg->redis_min_replicas replicas to hold every write made so far on "c"
 * (at most cfg->redis_wait_ms; in a cluster, on each master written to):
 * 0 when they do (or none are asked for), 1 when fewer did in time ("err"
 * says how many), -1 when the command failed.
 * It narrows the window and does not close it: a replica can fail too.
 */
int redis_wait_replicas(struct redis_conn *c, const struct config *cfg,
                        struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Run one command (printf-style, "%s" arguments binary-unsafe); returns a
 * new reply, or NULL with "err" when the connection failed or Redis
 * answered an error (its text in err->detail; NOAUTH/WRONGPASS are fatal).
 */
redisReply *redis_command(struct redis_conn *c, struct pgs_error *err, const char *fmt, ...);
/* The same with an argument vector ("lens" NULL: strlen of each). */
redisReply *redis_command_argv(struct redis_conn *c, struct pgs_error *err, int argc,
                               const char **argv, const size_t *lens);
/* Did the command behind "err" fail with Redis's error "text" (a code as "BUSYGROUP", or words)? */
int redis_error_is(const struct pgs_error *err, const char *text);

/*
 * A pipeline: append the commands (-1 only when out of memory), then read
 * one reply for each, in order, even after an error reply, so the
 * connection stays in step. redis_pipeline_reply returns a new reply (error
 * replies included), or NULL with "err" when the connection failed: it is
 * unusable then.
 */
int redis_pipeline_append(struct redis_conn *c, int argc, const char **argv, const size_t *lens);
redisReply *redis_pipeline_reply(struct redis_conn *c, const char *what, struct pgs_error *err);
/* 0 for a reply that is no error; -1 with "err" ("what" names the command) for NULL or an error. */
int redis_reply_check(struct redis_conn *c, const redisReply *r, const char *what,
                      struct pgs_error *err);

/* The node serving "key" (NULL: the last one used), and its replicas (INFO replication). */
struct redis_replica {
    char addr[64];
    char state[16];      /* "online", "wait_bgsave", ... */
    long long lag_bytes; /* replication offset behind the primary */
    long long lag_s;     /* seconds since its last acknowledgement */
};
struct redis_node {
    char addr[300];
    char role[16]; /* "master", "slave" */
    int nreplicas;
    struct redis_replica replicas[8];
};
int redis_node_info(struct redis_conn *c, const char *key, struct redis_node *out,
                    struct pgs_error *err) PGS_MUSTCHECK;

/* In a flat [key, value, ...] reply (XINFO, HGETALL): the value of "key", or NULL. */
const redisReply *redis_map_get(const redisReply *map, const char *key);
/* Its integer (or a numeric string) value, or "def" when absent or nil. */
long long redis_map_int(const redisReply *map, const char *key, long long def);
/* Its string value, or NULL when absent or nil. */
const char *redis_map_str(const redisReply *map, const char *key);

#endif
