/*
 * config.h - every setting in one table: the environment variable PGSync
 * users already have, its default, and its help line. The table feeds
 * config_load(), the --help text and the redacted start-up dump. Secrets
 * (passwords, API keys) are flagged and never printed.
 */
#ifndef PGS_CONFIG_H
#define PGS_CONFIG_H

#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

/* Where changes are captured (PGSYNC_MODE), parsed once by config_load. */
enum capture_mode {
    CAPTURE_LOGICAL = 0, /* "logical": the replication slot, pgoutput */
    CAPTURE_NOTIFY = 1   /* "notify": triggers and an outbox table, no wal_level=logical */
};

#define CONFIG_CLI_HOST 1
#define CONFIG_CLI_PORT 2
#define CONFIG_CLI_USER 4

struct config {
    /* PostgreSQL */
    const char *pg_url, *pg_host, *pg_port, *pg_user, *pg_password, *pg_sslmode;
    const char *pg_sslrootcert;
    int pg_cli_override; /* CONFIG_CLI_*: given on the command line, they win over PG_URL's */
    /* search engine */
    const char *es_url; /* one node or several, comma-separated; built from
                           ELASTICSEARCH_SCHEME/HOST/PORT when unset */
    const char *es_user, *es_password, *es_api_key, *es_ca_file, *es_client_cert, *es_client_key;
    int es_verify;
    int opensearch; /* OPENSEARCH=true */
    int es_gzip;
    int es_timeout_s;
    int bulk_timeout_s; /* PGSYNC_BULK_SHARD_TIMEOUT */
    int es_sniff;   /* ELASTICSEARCH_SNIFF=true: ask the cluster for its nodes */
    /* Redis */
    const char *redis_host, *redis_auth, *redis_user;
    int redis_port, redis_db;
    int redis_timeout_ms;
    const char *redis_sentinels;         /* "host:port,...": ask them for the primary */
    const char *redis_sentinel_master;   /* the name the sentinels monitor */
    const char *redis_sentinel_password;
    const char *redis_cluster_nodes;     /* "host:port,...": seeds of a Redis Cluster */
    const char *redis_scheme;            /* "redis" or "rediss" (TLS) */
    int redis_tls;                       /* rediss:// or REDIS_SCHEME=rediss */
    const char *redis_tls_ca_cert, *redis_tls_cert, *redis_tls_key, *redis_tls_server_name;
    const char *redis_tls_verify;        /* "full" (default) or "none" */
    int redis_min_replicas; /* replicas that must hold a write before it counts (WAIT) */
    int redis_wait_ms;      /* how long WAIT waits for them */
    /* tuning */
    int batch_size;      /* stream entries per consumer batch */
    int block_ms;        /* XREADGROUP BLOCK */
    int claim_idle_ms;   /* XAUTOCLAIM min idle */
    int doc_chunk;       /* root keys per document query */
    int bulk_max_bytes;  /* _bulk request size */
    int bulk_max_docs;   /* ELASTICSEARCH_CHUNK_SIZE: documents per _bulk request (0: no cap) */
    int query_chunk;     /* QUERY_CHUNK_SIZE: rows per FETCH of the document query's cursor */
    int producer_batch;  /* records per XADD pipeline */
    int stream_retain_s; /* acknowledged stream entries kept this long (for replays) */
    const char *consumer_name;
    const char *slot_name;   /* override of the derived name */
    enum capture_mode mode;
    int ignore_plugins; /* PGSYNC_IGNORE_PLUGINS / --ignore-plugins: go on without "plugins" */
    const char *stream_prefix;
    /* where strings of a built URL live */
    char es_url_buf[2048];
    char es_api_key_buf[512]; /* base64 of ELASTICSEARCH_API_KEY_ID:ELASTICSEARCH_API_KEY */
};

/* Read every setting from the environment, with defaults; -1 on a bad value. */
int config_load(struct config *cfg, struct pgs_error *err) PGS_MUSTCHECK;

/*
 * A command line's override of PGSYNC_MODE: "value" ("logical" or "notify")
 * into cfg->mode; -1 naming "setting" (e.g. "--mode") and the bad value.
 */
int config_set_mode(struct config *cfg, const char *setting, const char *value,
                    struct pgs_error *err) PGS_MUSTCHECK;

/* A warning for each PGSync setting in the environment that has no meaning here, and the one that does the job. */
void config_warn_pgsync(void);

/* The "Environment:" section of --help: every variable, its default, its help. */
void config_print_help(FILE *out);

/* One log line per setting, secrets shown as "***". */
/* Is the Redis server's certificate checked (REDIS_TLS_VERIFY is not "none")? */
int config_redis_tls_verify(const struct config *cfg);
void config_log(const struct config *cfg);

/*
 * Connect to "dbname" (NULL: the one in PG_URL or the user's default);
 * replication != 0 opens a logical replication connection.
 */
PGconn *config_pg_connect(const struct config *cfg, const char *dbname, int replication,
                          const char *appname, struct pgs_error *err);

#endif
