/*
 * config.c - the settings table and the environment reader. Names and
 * defaults follow PGSync so that its users can switch without retyping.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL, CFG_MODE };
#define CFG_SECRET 1
#define CFG_MANUAL 2 /* read by hand in config_load (URL parts) */

struct cfg_key {
    const char *env;
    enum cfg_type type;
    size_t offset;
    const char *def; /* NULL: unset */
    long min, max;   /* CFG_INT bounds */
    int flags;
    const char *help;
};

#define S(field) CFG_STR, offsetof(struct config, field)
#define I(field) CFG_INT, offsetof(struct config, field)
#define B(field) CFG_BOOL, offsetof(struct config, field)
#define M(field) CFG_MODE, offsetof(struct config, field)

static const struct cfg_key cfg_keys[] = {
    {"PG_URL", S(pg_url), NULL, 0, 0, CFG_SECRET, "PostgreSQL URL (postgres://user:pass@host:port); the schema's database replaces its dbname"},
    {"PG_HOST", S(pg_host), "localhost", 0, 0, 0, "PostgreSQL host"},
    {"PG_PORT", S(pg_port), "5432", 0, 0, 0, "PostgreSQL port"},
    {"PG_USER", S(pg_user), "postgres", 0, 0, 0, "PostgreSQL role (needs REPLICATION and SELECT)"},
    {"PG_PASSWORD", S(pg_password), NULL, 0, 0, CFG_SECRET, "PostgreSQL password"},
    {"PG_SSLMODE", S(pg_sslmode), NULL, 0, 0, 0, "libpq sslmode (disable, require, verify-ca, verify-full)"},
    {"PG_SSLROOTCERT", S(pg_sslrootcert), NULL, 0, 0, 0, "CA file for verify-ca/verify-full"},
    {"ELASTICSEARCH_URL", S(es_url), NULL, 0, 0, CFG_SECRET, "search engine URL, or several nodes separated by commas; else built from the three below"},
    {"ELASTICSEARCH_SCHEME", S(es_url_buf), "http", 0, 0, CFG_MANUAL, "http or https"},
    {"ELASTICSEARCH_HOST", S(es_url_buf), "localhost", 0, 0, CFG_MANUAL, "search engine host, or several separated by commas"},
    {"ELASTICSEARCH_PORT", S(es_url_buf), "9200", 0, 0, CFG_MANUAL, "search engine port (one for every host, or one per host)"},
    {"ELASTICSEARCH_USER", S(es_user), NULL, 0, 0, 0, "basic auth user"},
    {"ELASTICSEARCH_PASSWORD", S(es_password), NULL, 0, 0, CFG_SECRET, "basic auth password"},
    {"ELASTICSEARCH_API_KEY", S(es_api_key), NULL, 0, 0, CFG_SECRET, "API key: base64 of id:key, or the key alone with ELASTICSEARCH_API_KEY_ID"},
    {"ELASTICSEARCH_API_KEY_ID", S(es_url_buf), NULL, 0, 0, CFG_MANUAL, "API key id (as PGSync): sent with ELASTICSEARCH_API_KEY as base64 of id:key"},
    {"ELASTICSEARCH_USE_SSL", S(es_url_buf), "false", 0, 0, CFG_MANUAL, "true: https, unless ELASTICSEARCH_SCHEME says otherwise (as PGSync)"},
    {"ELASTICSEARCH_CA_CERTS", S(es_ca_file), NULL, 0, 0, 0, "CA file for HTTPS"},
    {"ELASTICSEARCH_CLIENT_CERT", S(es_client_cert), NULL, 0, 0, 0, "client certificate (PEM)"},
    {"ELASTICSEARCH_CLIENT_KEY", S(es_client_key), NULL, 0, 0, 0, "client key (PEM)"},
    {"ELASTICSEARCH_VERIFY_CERTS", B(es_verify), "true", 0, 0, 0, "verify the server certificate"},
    {"ELASTICSEARCH_TIMEOUT", I(es_timeout_s), "120", 1, 3600, 0, "whole-request time-out, seconds"},
    {"PGSYNC_BULK_SHARD_TIMEOUT", I(bulk_timeout_s), "60", 1, 3600, 0, "how long the engine holds a bulk item for a shard it cannot write (a red index) before answering 503, seconds"},
    {"ELASTICSEARCH_GZIP", B(es_gzip), "false", 0, 0, 0, "gzip _bulk bodies"},
    {"ELASTICSEARCH_SNIFF", B(es_sniff), "false", 0, 0, 0, "add the nodes the cluster lists (GET /_nodes/http), every minute"},
    {"OPENSEARCH", B(opensearch), "false", 0, 0, 0, "the engine is OpenSearch (else detected from GET /)"},
    {"REDIS_URL", S(es_url_buf), NULL, 0, 0, CFG_SECRET | CFG_MANUAL, "redis://[user:pass@]host:port/db (rediss:// for TLS); overrides the five below"},
    {"REDIS_SCHEME", S(redis_scheme), "redis", 0, 0, 0, "redis, or rediss for TLS"},
    {"REDIS_HOST", S(redis_host), "localhost", 0, 0, 0, "Redis host"},
    {"REDIS_PORT", I(redis_port), "6379", 1, 65535, 0, "Redis port"},
    {"REDIS_DB", I(redis_db), "0", 0, 1000, 0, "Redis database number"},
    {"REDIS_AUTH", S(redis_auth), NULL, 0, 0, CFG_SECRET, "Redis password"},
    {"REDIS_USER", S(redis_user), NULL, 0, 0, 0, "Redis ACL user"},
    {"REDIS_TLS_CA_CERT", S(redis_tls_ca_cert), NULL, 0, 0, 0, "PEM file of the CAs to trust for Redis TLS (default: the system's)"},
    {"REDIS_TLS_CERT", S(redis_tls_cert), NULL, 0, 0, 0, "client certificate (PEM) for Redis TLS"},
    {"REDIS_TLS_KEY", S(redis_tls_key), NULL, 0, 0, 0, "its key (PEM)"},
    {"REDIS_TLS_SERVER_NAME", S(redis_tls_server_name), NULL, 0, 0, 0, "the name to send (SNI) and verify (default: the host)"},
    {"REDIS_TLS_VERIFY", S(redis_tls_verify), "full", 0, 0, 0, "full, or none to skip checking the server's certificate (warned at every start)"},
    {"REDIS_TIMEOUT_MS", I(redis_timeout_ms), "5000", 100, 600000, 0, "Redis command time-out"},
    {"REDIS_SENTINELS", S(redis_sentinels), NULL, 0, 0, 0, "host:port[,host:port...] of Redis Sentinels: the primary is asked of them (REDIS_HOST/PORT are then unused)"},
    {"REDIS_SENTINEL_MASTER", S(redis_sentinel_master), NULL, 0, 0, 0, "the name the sentinels monitor the primary under (required with REDIS_SENTINELS)"},
    {"REDIS_SENTINEL_PASSWORD", S(redis_sentinel_password), NULL, 0, 0, CFG_SECRET, "the sentinels' own password"},
    {"REDIS_CLUSTER_NODES", S(redis_cluster_nodes), NULL, 0, 0, 0, "host:port[,host:port...] of Redis Cluster nodes to learn the slots from (REDIS_HOST/PORT are then unused)"},
    {"PGSYNC_REDIS_MIN_REPLICAS", I(redis_min_replicas), "-1", -1, 64, 0, "Redis replicas that must hold the records before their WAL position is confirmed (WAIT); -1: 1 with REDIS_SENTINELS or REDIS_CLUSTER_NODES, else 0"},
    {"PGSYNC_REDIS_WAIT_MS", I(redis_wait_ms), "1000", 1, 600000, 0, "how long to wait for those replicas before retrying"},
    {"PGSYNC_BATCH_SIZE", I(batch_size), "1000", 1, 100000, 0, "stream entries per consumer batch"},
    {"PGSYNC_BLOCK_MS", I(block_ms), "1000", 1, 60000, 0, "how long a consumer waits for entries"},
    {"PGSYNC_CLAIM_IDLE_MS", I(claim_idle_ms), "30000", 100, 86400000, 0, "pending entries idle this long are taken over from a dead consumer"},
    {"PGSYNC_DOC_CHUNK", I(doc_chunk), "500", 1, 100000, 0, "root keys per document query"},
    {"PGSYNC_BULK_BYTES", I(bulk_max_bytes), "5242880", 1024, 104857600, 0, "_bulk request size"},
    {"ELASTICSEARCH_CHUNK_SIZE", I(bulk_max_docs), "0", 0, 1000000, 0, "documents per _bulk request at most (as PGSync; 0: only PGSYNC_BULK_BYTES cuts them)"},
    {"QUERY_CHUNK_SIZE", I(query_chunk), "1000", 1, 1000000, 0, "rows fetched per round trip of a document query (as PGSync)"},
    {"PGSYNC_PRODUCER_BATCH", I(producer_batch), "500", 1, 100000, 0, "records per Redis pipeline"},
    {"PGSYNC_STREAM_RETAIN", I(stream_retain_s), "86400", 0, 31536000, 0, "seconds of acknowledged stream history kept for pgsync-replay; older entries every group acknowledged are trimmed"},
    {"PGSYNC_CONSUMER_NAME", S(consumer_name), NULL, 0, 0, 0, "consumer name in the group (default host:pid)"},
    {"PGSYNC_SLOT", S(slot_name), NULL, 0, 0, 0, "replication slot name, with one schema entry (default pgsync_<database>, one per database)"},
    {"PGSYNC_MODE", M(mode), "logical", 0, 0, 0, "change capture: logical (replication slot, pgoutput) or notify (triggers and an outbox table; no wal_level=logical)"},
    {"PGSYNC_STREAM_PREFIX", S(stream_prefix), "pgsync", 0, 0, 0, "prefix of Redis keys"},
    {"PGSYNC_IGNORE_PLUGINS", B(ignore_plugins), "false", 0, 0, 0, "go on without a schema's \"plugins\" (Python classes pgsync-c cannot run; refused otherwise)"},
};

#define NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off") || !*v)
        *out = 0;
    else
        return -1;
    return 0;
}

/* "logical" | "notify" -> *out; -1 naming the setting and the value. */
static int parse_mode(const char *setting, const char *v, enum capture_mode *out,
                      struct pgs_error *err)
{
    if (!*v || !strcmp(v, "logical")) {
        *out = CAPTURE_LOGICAL;
    } else if (!strcmp(v, "notify")) {
        *out = CAPTURE_NOTIFY;
    } else {
        pgs_error_set(err, PGS_ERR_USAGE, "%s=%s: expected logical or notify", setting, v);
        return -1;
    }
    return 0;
}

int config_set_mode(struct config *cfg, const char *setting, const char *value,
                    struct pgs_error *err)
{
    return parse_mode(setting, value, &cfg->mode, err);
}

/* redis[s]://[user:pass@]host[:port][/db] */
static int parse_redis_url(struct config *cfg, const char *url, struct pgs_error *err)
{
    static char host[256], user[128], pass[256];
    const char *p = url;
    const char *at, *slash, *colon;

    if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
        cfg->redis_tls = 0;
    } else if (strncmp(p, "rediss://", 9) == 0) {
        p += 9;
        cfg->redis_tls = 1;
    } else {
        pgs_error_set(err, PGS_ERR_USAGE, "REDIS_URL must start with redis:// or rediss:// (TLS)");
        return -1;
    }
    at = strrchr(p, '@');
    if (at) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        if (c) {
            snprintf(user, sizeof(user), "%.*s", (int)(c - p), p);
            snprintf(pass, sizeof(pass), "%.*s", (int)(at - c - 1), c + 1);
            if (user[0])
                cfg->redis_user = user;
            cfg->redis_auth = pass;
        } else {
            snprintf(pass, sizeof(pass), "%.*s", (int)(at - p), p);
            cfg->redis_auth = pass;
        }
        p = at + 1;
    }
    slash = strchr(p, '/');
    colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
    size_t hl = colon ? (size_t)(colon - p) : (slash ? (size_t)(slash - p) : strlen(p));
    snprintf(host, sizeof(host), "%.*s", (int)hl, p);
    if (host[0])
        cfg->redis_host = host;
    if (colon) {
        cfg->redis_port = atoi(colon + 1);
        if (cfg->redis_port <= 0 || cfg->redis_port > 65535) {
            pgs_error_set(err, PGS_ERR_USAGE, "REDIS_URL: bad port");
            return -1;
        }
    }
    if (slash && slash[1])
        cfg->redis_db = atoi(slash + 1);
    return 0;
}

/*
 * ELASTICSEARCH_HOST "a,b,c" with ELASTICSEARCH_PORT "9200" (every host) or
 * "9200,9201,9202" (one per host) into "scheme://a:9200,scheme://b:9200,...".
 */
static int build_es_url(struct config *cfg, const char *scheme, const char *hosts,
                        const char *ports, struct pgs_error *err)
{
    size_t used = 0, cap = sizeof(cfg->es_url_buf);
    int nhosts = 1, nports = 1;
    const char *h = hosts, *p = ports;

    for (const char *q = hosts; *q; q++)
        nhosts += *q == ',';
    for (const char *q = ports; *q; q++)
        nports += *q == ',';
    if (nports != 1 && nports != nhosts) {
        pgs_error_set(err, PGS_ERR_USAGE,
                      "ELASTICSEARCH_PORT=%s: give one port for every host, or one per host "
                      "(ELASTICSEARCH_HOST names %d)",
                      ports, nhosts);
        return -1;
    }
    cfg->es_url_buf[0] = '\0';
    for (int i = 0; i < nhosts; i++) {
        size_t hl = strcspn(h, ","), pl = strcspn(p, ",");
        while (hl > 0 && *h == ' ')
            h++, hl--;
        while (pl > 0 && *p == ' ')
            p++, pl--;
        int n = snprintf(cfg->es_url_buf + used, cap - used, "%s%s://%.*s:%.*s", i ? "," : "",
                         scheme, (int)hl, h, (int)pl, p);
        if (n < 0 || (size_t)n >= cap - used) {
            pgs_error_set(err, PGS_ERR_USAGE, "ELASTICSEARCH_HOST: too many hosts (%d)", nhosts);
            return -1;
        }
        used += (size_t)n;
        h += hl + (h[hl] == ',');
        if (nports > 1)
            p += pl + (p[pl] == ',');
    }
    return 0;
}

/* RFC 4648 base64 of "len" bytes into "out" (room for 4 * ((len + 2) / 3) + 1). */
static void base64(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t j = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[j++] = tab[v >> 18 & 63];
        out[j++] = tab[v >> 12 & 63];
        out[j++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
        out[j++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[j] = '\0';
}

/*
 * PGSync gives an API key as two settings, ELASTICSEARCH_API_KEY_ID and
 * ELASTICSEARCH_API_KEY; the engine takes base64 of "id:key".
 */
static int api_key_from_id(struct config *cfg, struct pgs_error *err)
{
    const char *id = getenv("ELASTICSEARCH_API_KEY_ID");
    char raw[380];
    if (id == NULL || !*id)
        return 0;
    if (cfg->es_api_key == NULL || !*cfg->es_api_key) {
        pgs_error_set(err, PGS_ERR_USAGE,
                      "ELASTICSEARCH_API_KEY_ID is set but ELASTICSEARCH_API_KEY is not: give the "
                      "key too (or ELASTICSEARCH_API_KEY alone, as base64 of id:key)");
        return -1;
    }
    int n = snprintf(raw, sizeof(raw), "%s:%s", id, cfg->es_api_key);
    if (n < 0 || (size_t)n >= sizeof(raw)) {
        pgs_error_set(err, PGS_ERR_USAGE, "ELASTICSEARCH_API_KEY_ID and ELASTICSEARCH_API_KEY: too long");
        return -1;
    }
    base64((const unsigned char *)raw, (size_t)n, cfg->es_api_key_buf);
    explicit_bzero(raw, sizeof(raw));
    cfg->es_api_key = cfg->es_api_key_buf;
    return 0;
}

int config_load(struct config *cfg, struct pgs_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        const char *v = getenv(k->env);
        if (v == NULL || (*v == '\0' && k->type != CFG_STR))
            v = k->def;
        if (v == NULL || (k->flags & CFG_MANUAL))
            continue;
        void *field = (char *)cfg + k->offset;
        if (k->type == CFG_STR) {
            *(const char **)field = v;
        } else if (k->type == CFG_INT) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end != '\0' || end == v || n < k->min || n > k->max) {
                pgs_error_set(err, PGS_ERR_USAGE, "%s=%s: expected a whole number from %ld to %ld",
                              k->env, v, k->min, k->max);
                return -1;
            }
            *(int *)field = (int)n;
        } else if (k->type == CFG_MODE) {
            if (parse_mode(k->env, v, (enum capture_mode *)field, err) < 0)
                return -1;
        } else if (parse_bool(v, (int *)field) < 0) {
            pgs_error_set(err, PGS_ERR_USAGE, "%s=%s: expected true or false", k->env, v);
            return -1;
        }
    }
    if (cfg->es_url == NULL || !*cfg->es_url) {
        const char *scheme = getenv("ELASTICSEARCH_SCHEME");
        const char *ssl = getenv("ELASTICSEARCH_USE_SSL");
        int use_ssl = 0;
        if (ssl && parse_bool(ssl, &use_ssl) < 0) {
            pgs_error_set(err, PGS_ERR_USAGE, "ELASTICSEARCH_USE_SSL=%s: expected true or false",
                          ssl);
            return -1;
        }
        if (use_ssl && scheme && *scheme && strcmp(scheme, "https") != 0) {
            pgs_error_set(err, PGS_ERR_USAGE,
                          "ELASTICSEARCH_USE_SSL=true but ELASTICSEARCH_SCHEME=%s: set one", scheme);
            return -1;
        }
        if (use_ssl && !(scheme && *scheme))
            scheme = "https";
        const char *host = getenv("ELASTICSEARCH_HOST");
        const char *port = getenv("ELASTICSEARCH_PORT");
        if (build_es_url(cfg, scheme && *scheme ? scheme : "http",
                         host && *host ? host : "localhost", port && *port ? port : "9200",
                         err) < 0)
            return -1;
        cfg->es_url = cfg->es_url_buf;
    }
    if (api_key_from_id(cfg, err) < 0)
        return -1;
    if (cfg->redis_scheme && !strcmp(cfg->redis_scheme, "rediss")) {
        cfg->redis_tls = 1;
    } else if (cfg->redis_scheme && *cfg->redis_scheme && strcmp(cfg->redis_scheme, "redis")) {
        pgs_error_set(err, PGS_ERR_USAGE, "REDIS_SCHEME=%s: expected redis or rediss (TLS)",
                      cfg->redis_scheme);
        return -1;
    }
    /* REDIS_URL's scheme wins over REDIS_SCHEME, as its host wins over REDIS_HOST */
    const char *rurl = getenv("REDIS_URL");
    if (rurl && *rurl && parse_redis_url(cfg, rurl, err) < 0)
        return -1;
    const char **tls_files[] = {&cfg->redis_tls_ca_cert, &cfg->redis_tls_cert, &cfg->redis_tls_key,
                                &cfg->redis_tls_server_name};
    for (size_t i = 0; i < sizeof(tls_files) / sizeof(tls_files[0]); i++)
        if (*tls_files[i] && !**tls_files[i])
            *tls_files[i] = NULL;
    if (cfg->redis_tls_verify && *cfg->redis_tls_verify && strcmp(cfg->redis_tls_verify, "full") &&
        strcmp(cfg->redis_tls_verify, "none")) {
        pgs_error_set(err, PGS_ERR_USAGE, "REDIS_TLS_VERIFY=%s: expected full or none",
                      cfg->redis_tls_verify);
        return -1;
    }
    if (!cfg->redis_tls && (cfg->redis_tls_ca_cert || cfg->redis_tls_cert || cfg->redis_tls_key)) {
        /* certificates without TLS are a half-done setting: never fall back to plaintext */
        pgs_error_set(err, PGS_ERR_USAGE,
                      "REDIS_TLS_CA_CERT, REDIS_TLS_CERT or REDIS_TLS_KEY is set, but Redis is "
                      "reached without TLS: use a rediss:// REDIS_URL or REDIS_SCHEME=rediss");
        return -1;
    }
    if (cfg->redis_sentinels && !*cfg->redis_sentinels)
        cfg->redis_sentinels = NULL;
    if (cfg->redis_sentinels &&
        (cfg->redis_sentinel_master == NULL || !*cfg->redis_sentinel_master)) {
        pgs_error_set(err, PGS_ERR_USAGE,
                      "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not: name the primary "
                      "the sentinels monitor (sentinel monitor NAME ...)");
        return -1;
    }
    if (cfg->redis_cluster_nodes && !*cfg->redis_cluster_nodes)
        cfg->redis_cluster_nodes = NULL;
    if (cfg->redis_cluster_nodes && cfg->redis_sentinels) {
        pgs_error_set(err, PGS_ERR_USAGE,
                      "REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: a Redis Cluster "
                      "fails over by itself, set only one");
        return -1;
    }
    if (cfg->redis_cluster_nodes && cfg->redis_db != 0) {
        pgs_error_set(err, PGS_ERR_USAGE,
                      "REDIS_DB is %d, but a Redis Cluster (REDIS_CLUSTER_NODES) has only "
                      "database 0",
                      cfg->redis_db);
        return -1;
    }
    /*
     * The engine must answer a bulk held for a missing shard before our
     * request times out: else a red index looks like a dead node.
     */
    if (cfg->bulk_timeout_s >= cfg->es_timeout_s) {
        if (getenv("PGSYNC_BULK_SHARD_TIMEOUT") != NULL) {
            pgs_error_set(err, PGS_ERR_USAGE,
                          "PGSYNC_BULK_SHARD_TIMEOUT (%d s) must be shorter than "
                          "ELASTICSEARCH_TIMEOUT (%d s)",
                          cfg->bulk_timeout_s, cfg->es_timeout_s);
            return -1;
        }
        cfg->bulk_timeout_s = cfg->es_timeout_s * 3 / 4 > 0 ? cfg->es_timeout_s * 3 / 4 : 1;
    }
    /* replicated Redis: a record counts once a replica holds it too */
    if (cfg->redis_min_replicas < 0)
        cfg->redis_min_replicas = cfg->redis_sentinels || cfg->redis_cluster_nodes ? 1 : 0;
    return 0;
}

void config_print_help(FILE *out)
{
    fprintf(out, "\nEnvironment (PGSync's names):\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        fprintf(out, "  %-26s %s", k->env, k->help);
        if (k->def && !(k->flags & CFG_SECRET))
            fprintf(out, " [%s]", k->def);
        fputc('\n', out);
    }
}

int config_redis_tls_verify(const struct config *cfg)
{
    return !(cfg->redis_tls_verify && !strcmp(cfg->redis_tls_verify, "none"));
}

/* PGSync's settings that have no meaning here, and what does the job instead. */
static const struct {
    const char *env, *why;
} pgsync_unused[] = {
    {"ELASTICSEARCH_MAX_RETRIES", "transient failures are retried until they succeed; a document "
                                  "the engine refuses is dead-lettered (pgsync-dlq)"},
    {"ELASTICSEARCH_MAX_BACKOFF", "retries back off up to 30 s, then go on every 30 s"},
    {"ELASTICSEARCH_THREAD_COUNT", "_bulk requests are pipelined per consumer; run more "
                                   "consumers (pgsync --consumers N)"},
    {"ELASTICSEARCH_QUEUE_SIZE", "see ELASTICSEARCH_THREAD_COUNT"},
    {"ELASTICSEARCH_POOL_MAXSIZE", "one connection per node and consumer"},
    {"ELASTICSEARCH_CLOUD_ID", "give the deployment's endpoint in ELASTICSEARCH_URL"},
    {"ELASTICSEARCH_AWS_HOSTED", "AWS request signing is not supported: use basic auth or an API "
                                 "key"},
    {"OPENSEARCH_AWS_HOSTED", "AWS request signing is not supported: use basic auth"},
    {"ELASTICSEARCH_BEARER_AUTH", "use ELASTICSEARCH_API_KEY or ELASTICSEARCH_USER/PASSWORD"},
    {"NUM_WORKERS", "pgsync --consumers N (or -n): consumer processes"},
    {"REDIS_READ_CHUNK_SIZE", "PGSYNC_BATCH_SIZE: stream entries per consumer batch"},
    {"REDIS_WRITE_CHUNK_SIZE", "PGSYNC_PRODUCER_BATCH: records per Redis pipeline"},
    {"REDIS_POLL_INTERVAL", "consumers block on the stream (PGSYNC_BLOCK_MS)"},
    {"REDIS_SOCKET_TIMEOUT", "REDIS_TIMEOUT_MS"},
    {"LOGICAL_SLOT_CHUNK_SIZE", "the producer streams the slot (START_REPLICATION)"},
    {"POLL_TIMEOUT", "the producer is woken by PostgreSQL, not polled"},
    {"CHECKPOINT_PATH", "positions live in the slot and in Redis: no checkpoint file"},
    {"REDIS_CHECKPOINT", "positions live in the slot and in Redis: no checkpoint file"},
    {"SCHEMA_URL", "give a local file: --config or SCHEMA"},
    {"S3_SCHEMA_URL", "give a local file: --config or SCHEMA"},
    {"PG_URL_RO", "one PostgreSQL connection setting serves every query"},
    {"PG_HOST_RO", "one PostgreSQL connection setting serves every query"},
};

void config_warn_pgsync(void)
{
    for (size_t i = 0; i < sizeof(pgsync_unused) / sizeof(pgsync_unused[0]); i++) {
        const char *v = getenv(pgsync_unused[i].env);
        if (v && *v)
            pgs_log(LOG_WARN, "a PGSync setting that does not apply here is ignored",
                    "setting=%s instead=\"%s\"", pgsync_unused[i].env, pgsync_unused[i].why);
    }
}

void config_log(const struct config *cfg)
{
    char url[512], redis[600];
    if (cfg->redis_cluster_nodes)
        snprintf(redis, sizeof(redis), "cluster:%s", cfg->redis_cluster_nodes);
    else if (cfg->redis_sentinels)
        snprintf(redis, sizeof(redis), "sentinels:%s/%s/%d", cfg->redis_sentinels,
                 cfg->redis_sentinel_master, cfg->redis_db);
    else
        snprintf(redis, sizeof(redis), "%s:%d/%d", cfg->redis_host, cfg->redis_port,
                 cfg->redis_db);
    pgs_log(LOG_INFO, "settings",
            "pg_host=%s pg_port=%s pg_user=%s pg_url=%s search=%s redis=%s redis_tls=%s "
            "redis_min_replicas=%d batch_size=%d",
            cfg->pg_host, cfg->pg_port, cfg->pg_user, cfg->pg_url ? "***" : "-",
            pgs_redact_url(cfg->es_url, url, sizeof(url)), redis,
            !cfg->redis_tls ? "off" : config_redis_tls_verify(cfg) ? "on" : "on-unverified",
            cfg->redis_min_replicas, cfg->batch_size);

}

/*
 * libpq's default sslmode (prefer) falls back to plaintext without a word:
 * say so, once per process. A warning unless the server is on this machine
 * (a unix socket, or loopback), where nothing crosses a network.
 */
static void note_plaintext(PGconn *conn)
{
    static int said;
    const char *host = PQhost(conn), *mode = NULL;

    if (said || PQsslInUse(conn) || host == NULL || host[0] == '/')
        return;
    PQconninfoOption *opts = PQconninfo(conn);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "sslmode") == 0)
            mode = o->val;
    int local = strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
                strcmp(host, "::1") == 0;
    said = 1;
    pgs_log(local ? LOG_DEBUG : LOG_WARN, "the connection to PostgreSQL is not encrypted",
            "host=%s port=%s sslmode=%s hint=\"set PG_SSLMODE=verify-full (with PG_SSLROOTCERT) "
            "or require to refuse plaintext\"",
            host, PQport(conn), mode ? mode : "prefer");
    PQconninfoFree(opts);
}

PGconn *config_pg_connect(const struct config *cfg, const char *dbname, int replication,
                          const char *appname, struct pgs_error *err)
{
    const char *keys[16], *vals[16];
    int n = 0;

    /* PG_URL first (expanded), then the discrete settings, then the database */
    if (cfg->pg_url && *cfg->pg_url) {
        keys[n] = "dbname", vals[n++] = cfg->pg_url;
        /* --host, --port, --user on the command line win over the URL's (later keys win) */
        if (cfg->pg_cli_override & CONFIG_CLI_HOST)
            keys[n] = "host", vals[n++] = cfg->pg_host;
        if (cfg->pg_cli_override & CONFIG_CLI_PORT)
            keys[n] = "port", vals[n++] = cfg->pg_port;
        if (cfg->pg_cli_override & CONFIG_CLI_USER)
            keys[n] = "user", vals[n++] = cfg->pg_user;
    } else {
        keys[n] = "host", vals[n++] = cfg->pg_host;
        keys[n] = "port", vals[n++] = cfg->pg_port;
        keys[n] = "user", vals[n++] = cfg->pg_user;
    }
    if (cfg->pg_password && *cfg->pg_password)
        keys[n] = "password", vals[n++] = cfg->pg_password;
    if (cfg->pg_sslmode && *cfg->pg_sslmode)
        keys[n] = "sslmode", vals[n++] = cfg->pg_sslmode;
    else if (cfg->pg_sslrootcert && *cfg->pg_sslrootcert && getenv("PGSSLMODE") == NULL &&
             !(cfg->pg_url && strstr(cfg->pg_url, "sslmode")))
        /* a CA given is a CA to check against: the host name too, as for Redis and the engine */
        keys[n] = "sslmode", vals[n++] = "verify-full";
    if (cfg->pg_sslrootcert && *cfg->pg_sslrootcert)
        keys[n] = "sslrootcert", vals[n++] = cfg->pg_sslrootcert;
    if (dbname)
        keys[n] = "dbname", vals[n++] = dbname;
    if (replication)
        keys[n] = "replication", vals[n++] = "database";
    keys[n] = "application_name", vals[n++] = appname ? appname : "pgsync-c";
    /*
     * The document queries are estimated expensive (a subquery per row),
     * so JIT would compile them on every range and batch: seconds lost
     * for queries that run in milliseconds per row.
     */
    if (!replication)
        keys[n] = "options", vals[n++] = "-c jit=off";
    keys[n] = "connect_timeout", vals[n++] = "10";
    keys[n] = NULL, vals[n] = NULL;

    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        const char *host = PQhost(conn) ? PQhost(conn) : cfg->pg_host;
        const char *port = PQport(conn) ? PQport(conn) : cfg->pg_port;
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot connect to PostgreSQL at %s:%s database \"%s\"",
                      host ? host : "?", port ? port : "?", dbname ? dbname : "(default)");
        pgs_error_detail(err, "%s", conn ? PQerrorMessage(conn) : "out of memory");
        if (conn && strstr(PQerrorMessage(conn), "password authentication failed"))
            err->kind = PGS_ERR_FATAL;
        if (conn && strstr(PQerrorMessage(conn), "does not exist"))
            err->kind = PGS_ERR_FATAL;
        PQfinish(conn);
        return NULL;
    }
    note_plaintext(conn);
    return conn;
}
