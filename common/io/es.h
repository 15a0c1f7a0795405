/*
 * es.h - the search engine client: Elasticsearch 7/8 and OpenSearch 1/2/3
 * over HTTP(S) with libcurl (one kept-alive handle per client) and jansson.
 *
 * The bulk API is the heart of it. es_bulk_send() sends a bulk body, reads
 * every item of the response and classifies it, because a 200 answer can
 * still refuse some of its items:
 *   ok:        2xx; 409 on a versioned write (newer already there); 404 on a delete
 *   retry:     429, 502, 503, 504, circuit breakers, connection reset, time-out
 *   reject:    mapper_parsing_exception, illegal_argument_exception, too large...
 *   fatal:     401, 403, cluster_block_exception, index closed
 * es_bulk_flush() retries the retryable items with exponential backoff and
 * jitter until each is ok or rejected, or "stop" is set. Fatal answers are
 * sent again too (a 403 while a role is being changed may pass), and once
 * ES_FATAL_ROUNDS rounds (es.c: 3) have had one, the flush fails with
 * PGS_ERR_FATAL.
 */
#ifndef PGS_ES_H
#define PGS_ES_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

struct es_config {
    const char *url;         /* "http://127.0.0.1:9200", or several nodes separated by commas */
    const char *user;        /* basic auth, or NULL */
    const char *password;
    const char *api_key;     /* "Authorization: ApiKey <api_key>", or NULL */
    const char *ca_file;     /* HTTPS: CA bundle, or NULL for the system's */
    const char *client_cert; /* HTTPS client certificate (PEM) and key, or NULL */
    const char *client_key;
    int verify_tls;          /* 1 = verify the server's certificate (default) */
    int force_opensearch;    /* OPENSEARCH=true: skip detection */
    long connect_timeout_ms; /* default 10 s */
    long timeout_ms;         /* whole-request time-out; default 120 s (never a 3 s read time-out) */
    int gzip;                /* gzip request bodies */
    int sniff;               /* ask GET /_nodes/http for the nodes, every minute */
    int bulk_timeout_s;      /* _bulk?timeout: how long the engine waits for a shard; 0: its own */
};

enum es_flavor { ES_FLAVOR_ELASTICSEARCH, ES_FLAVOR_OPENSEARCH };

struct es_client; /* one curl handle, headers, the config; not thread-safe: one per thread */

struct es_client *es_client_new(const struct es_config *cfg, struct pgs_error *err);
void es_client_free(struct es_client *c);
/* A new client with the settings of "c" (not its hooks): one for another thread. */
struct es_client *es_client_dup(const struct es_client *c, struct pgs_error *err);

/*
 * The engine's nodes (es_nodes.h): requests go round-robin over the live
 * ones; a node that refuses connections or answers 502/503/504 is set aside
 * with backoff, and a request that could not reach one is sent to another
 * at once. es_client_nodes_status: how many are set aside, and which, into
 * "buf" ("" when none); es_client_nodes_json: every node (new reference).
 */
int es_client_node_count(struct es_client *c);
int es_client_nodes_status(struct es_client *c, char *buf, size_t len);
json_t *es_client_nodes_json(struct es_client *c);
/*
 * Ask every node GET / now (a few seconds at most each), whatever the list
 * thinks of it: [{"url", "up", "version" or "error"}, ...] (new reference).
 * For tools; a daemon reads es_client_nodes_json instead.
 */
json_t *es_probe_nodes(struct es_client *c);
/*
 * Ask GET / of each node set aside whose retry is due (1 s to connect, 2 s
 * in all): an idle daemon learns that a node came back, or that it is still
 * down. Returns how many were asked.
 */
int es_client_probe_due(struct es_client *c);

/* Optional observers of the bulk path (metrics, health); any member may be NULL. */
struct es_hooks {
    /* after every _bulk request: how long it took and its HTTP status (0: no answer) */
    void (*bulk_request)(void *arg, double seconds, long status);
    /* es_bulk_flush is about to wait and resend "items" items; "why" is the failure */
    void (*bulk_retry)(void *arg, int items, const char *why);
    /*
     * Serve what cannot wait (never block): about every 50 ms while
     * es_bulk_flush waits to retry, about once a second during any request.
     */
    void (*waiting)(void *arg);
    void *arg;
};
/* Copies "hooks" (NULL: none). */
void es_client_set_hooks(struct es_client *c, const struct es_hooks *hooks);
/* The hooks set last (all members NULL when none): borrowed. */
const struct es_hooks *es_client_hooks(const struct es_client *c);

/* GET /: flavor and major version ("version.distribution" tells OpenSearch). */
int es_info(struct es_client *c, enum es_flavor *flavor, int *major, char *version, size_t vlen,
            struct pgs_error *err) PGS_MUSTCHECK;

/*
 * One request. "body" may be NULL. On a transport error returns -1 with
 * PGS_ERR_TRANSIENT. Otherwise 0, *status set and *resp a new NUL-terminated
 * buffer the caller frees (also for 4xx/5xx: the caller decides).
 */
int es_request(struct es_client *c, const char *method, const char *path, const char *body,
               size_t len, const char *content_type, long *status, char **resp,
               struct pgs_error *err) PGS_MUSTCHECK;

/* Create "index" with settings and mappings (either may be NULL); an existing index is fine. */
int es_create_index(struct es_client *c, const char *index, json_t *settings, json_t *mappings,
                    struct pgs_error *err) PGS_MUSTCHECK;
int es_index_exists(struct es_client *c, const char *index, int *exists, struct pgs_error *err)
    PGS_MUSTCHECK;
int es_delete_index(struct es_client *c, const char *index, struct pgs_error *err) PGS_MUSTCHECK;
int es_refresh(struct es_client *c, const char *index, struct pgs_error *err) PGS_MUSTCHECK;
/* _delete_by_query match_all with conflicts=proceed and refresh. */
int es_delete_all(struct es_client *c, const char *index, struct pgs_error *err) PGS_MUSTCHECK;
/*
 * A search answer that left out some shards (a red index, a node lost
 * mid-search): -1 with the count and the first failure's reason in "err",
 * naming "index". A partial list of copies must never be taken for all of
 * them: what sits on the missing shard would survive a delete.
 */
int es_search_complete(const json_t *resp, const char *index, struct pgs_error *err)
    PGS_MUSTCHECK;
/*
 * An error answer as "type: reason (caused by type: reason)" into "buf", or
 * the start of the body when it is no error object.
 */
void es_answer_error(const char *resp, char *buf, size_t len);
/* _count of the index into *count. */
int es_count(struct es_client *c, const char *index, long long *count, struct pgs_error *err)
    PGS_MUSTCHECK;

/* ---- bulk ---- */

enum es_op { ES_OP_INDEX, ES_OP_DELETE };
enum es_item_class { ES_ITEM_OK = 0, ES_ITEM_RETRY, ES_ITEM_REJECT, ES_ITEM_FATAL };

struct es_bulk_item {
    enum es_op op;
    char *index;
    char *id;
    uint64_t version;       /* 0 = no external version */
    char *routing;          /* NULL when none */
    char *pipeline;         /* NULL when none */
    char *doc;              /* ES_OP_INDEX: the JSON document */
    size_t doclen;
    void *tag;              /* the caller's; untouched */
    /* filled by es_bulk_send / es_bulk_flush */
    int status;
    enum es_item_class cls;
    char error_type[128];
    char reason[512];
};

struct es_bulk {
    struct es_bulk_item *items;
    int n, cap;
    size_t bytes;           /* approximate body size so far */
};

void es_bulk_init(struct es_bulk *b);
/* Copies "index", "id", "doc" etc.; versioned with version_type=external_gte when version > 0. */
void es_bulk_add(struct es_bulk *b, enum es_op op, const char *index, const char *id,
                 uint64_t version, const char *doc, size_t doclen, const char *routing,
                 const char *pipeline, void *tag);
void es_bulk_reset(struct es_bulk *b); /* forget the items, keep the memory */
void es_bulk_deinit(struct es_bulk *b);

/* Send every item once and classify each; -1 only when the request itself failed. */
int es_bulk_send(struct es_client *c, struct es_bulk *b, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * Send, then resend the items classed ES_ITEM_RETRY (and the whole request on
 * a transport error) with backoff from 100 ms doubling to 30 s, with jitter,
 * until none is left. Returns 0 when every item is OK or REJECT (the caller
 * dead-letters the rejects); -1 with PGS_ERR_FATAL on a fatal item or status,
 * or PGS_ERR_TRANSIENT when *stop became non-zero while retrying.
 */
int es_bulk_flush(struct es_client *c, struct es_bulk *b, volatile sig_atomic_t *stop,
                  struct pgs_error *err) PGS_MUSTCHECK;

/* ---- pure parts (no I/O), exposed for the unit tests ---- */

/* The class of one bulk item from its HTTP "status" and "error_type" (NULL or "" when none). */
enum es_item_class es_classify_item(enum es_op op, int status, const char *error_type);

/*
 * The NDJSON body for the items "sel[0..nsel)" of "b" (all items when "sel"
 * is NULL): one action line per item, then the document for ES_OP_INDEX; it
 * ends with a newline. Returns a new buffer (caller frees), its length in *len.
 */
char *es_bulk_body(const struct es_bulk *b, const int *sel, int nsel, size_t *len);

/*
 * Read a bulk response "resp" for the items "sel[0..nsel)" (all when NULL),
 * in order, filling each item's status, error_type, reason and cls. An item
 * missing from the response is ES_ITEM_RETRY. Returns -1 with
 * PGS_ERR_TRANSIENT (and every selected item ES_ITEM_RETRY) when "resp" is
 * not a bulk response (HTML from a proxy: its first 200 characters go to
 * the detail); 0 otherwise.
 */
int es_bulk_apply_response(struct es_bulk *b, const int *sel, int nsel, const char *resp,
                           size_t len, struct pgs_error *err) PGS_MUSTCHECK;

/* Count the items of "b" per class into "counts[ES_ITEM_OK..ES_ITEM_FATAL]". */
void es_bulk_count(const struct es_bulk *b, int counts[4]);

/* gzip "in" (a gzip stream, as for Content-Encoding: gzip) into a new buffer *out. */
int es_gzip(const char *in, size_t len, char **out, size_t *outlen, struct pgs_error *err)
    PGS_MUSTCHECK;

#endif
