/*
 * test_config.c - the settings table read from the environment: PGSync's
 * names and defaults, every type (text, whole numbers with bounds,
 * booleans), bad values refused with the setting named, the search engine
 * URL built from its parts, REDIS_URL's forms, --help, and a start-up dump
 * that never shows a secret. No server is needed: the PostgreSQL connect
 * test aims at a port where nothing listens.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* Every variable config_load reads (and libpq's password, which the log scrubs). */
static const char *const all_env[] = {
    "PG_URL", "PG_HOST", "PG_PORT", "PG_USER", "PG_PASSWORD", "PG_SSLMODE", "PG_SSLROOTCERT",
    "ELASTICSEARCH_URL", "ELASTICSEARCH_SCHEME", "ELASTICSEARCH_HOST", "ELASTICSEARCH_PORT",
    "ELASTICSEARCH_USER", "ELASTICSEARCH_PASSWORD", "ELASTICSEARCH_API_KEY",
    "ELASTICSEARCH_CA_CERTS", "ELASTICSEARCH_CLIENT_CERT", "ELASTICSEARCH_CLIENT_KEY",
    "ELASTICSEARCH_VERIFY_CERTS", "ELASTICSEARCH_TIMEOUT", "ELASTICSEARCH_GZIP", "OPENSEARCH",
    "ELASTICSEARCH_SNIFF", "PGSYNC_BULK_SHARD_TIMEOUT",
    "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_AUTH", "REDIS_USER",
    "REDIS_SCHEME", "REDIS_TLS_CA_CERT", "REDIS_TLS_CERT", "REDIS_TLS_KEY", "REDIS_TLS_SERVER_NAME",
    "REDIS_TLS_VERIFY", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
    "REDIS_TIMEOUT_MS", "PGSYNC_BATCH_SIZE", "PGSYNC_BLOCK_MS", "PGSYNC_CLAIM_IDLE_MS",
    "PGSYNC_DOC_CHUNK", "PGSYNC_BULK_BYTES", "PGSYNC_PRODUCER_BATCH", "PGSYNC_STREAM_RETAIN",
    "PGSYNC_CONSUMER_NAME", "PGSYNC_SLOT", "PGSYNC_MODE", "PGSYNC_STREAM_PREFIX", "PGPASSWORD",
    "ELASTICSEARCH_API_KEY_ID", "ELASTICSEARCH_USE_SSL", "ELASTICSEARCH_CHUNK_SIZE",
    "QUERY_CHUNK_SIZE",
    NULL,
};

/* Each test starts from an environment without any setting. */
static int clear_env(void **state)
{
    (void)state;
    for (int i = 0; all_env[i]; i++)
        unsetenv(all_env[i]);
    return 0;
}

static void load_ok(struct config *cfg)
{
    struct pgs_error err;
    pgs_error_clear(&err);
    int rc = config_load(cfg, &err);
    if (rc != 0)
        fprintf(stderr, "config_load: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

/* "name=value" must be refused, with the setting (and "want") in the message. */
static void load_bad(const char *name, const char *value, const char *want)
{
    struct config cfg;
    struct pgs_error err;
    clear_env(NULL);
    setenv(name, value, 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    if (strstr(err.msg, name) == NULL || strstr(err.msg, want) == NULL)
        fail_msg("%s=%s: message \"%s\" should name %s and say \"%s\"", name, value, err.msg,
                 name, want);
    unsetenv(name);
}

/* The current environment must be refused with "want" in the message. */
static void load_bad_keep(const char *want)
{
    struct config cfg;
    struct pgs_error err;
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" should say \"%s\"", err.msg, want);
}

/* What "fn" writes to stderr (fd 2), as a new string. */
static char *capture_stderr(void (*fn)(const void *), const void *arg)
{
    char path[] = "/tmp/pgs_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fd, out, (size_t)n, 0), n);
    close(fd);
    return out;
}

/* ------------------------------------------------------------- defaults */

static void test_defaults_are_pgsyncs(void **state)
{
    struct config cfg;
    (void)state;
    load_ok(&cfg);
    assert_null(cfg.pg_url);
    assert_string_equal(cfg.pg_host, "localhost");
    assert_string_equal(cfg.pg_port, "5432");
    assert_string_equal(cfg.pg_user, "postgres");
    assert_null(cfg.pg_password);
    assert_null(cfg.pg_sslmode);
    assert_string_equal(cfg.es_url, "http://localhost:9200");
    assert_null(cfg.es_user);
    assert_null(cfg.es_password);
    assert_null(cfg.es_api_key);
    assert_int_equal(cfg.es_verify, 1);
    assert_int_equal(cfg.es_gzip, 0);
    assert_int_equal(cfg.opensearch, 0);
    assert_int_equal(cfg.es_timeout_s, 120);
    assert_int_equal(cfg.bulk_timeout_s, 60);
    assert_string_equal(cfg.redis_host, "localhost");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.redis_db, 0);
    assert_null(cfg.redis_auth);
    assert_null(cfg.redis_user);
    assert_int_equal(cfg.redis_timeout_ms, 5000);
    assert_int_equal(cfg.batch_size, 1000);
    assert_int_equal(cfg.block_ms, 1000);
    assert_int_equal(cfg.claim_idle_ms, 30000);
    assert_int_equal(cfg.doc_chunk, 500);
    assert_int_equal(cfg.bulk_max_bytes, 5242880);
    assert_int_equal(cfg.producer_batch, 500);
    assert_int_equal(cfg.stream_retain_s, 86400);
    assert_null(cfg.consumer_name);
    assert_null(cfg.slot_name);
    assert_int_equal(cfg.mode, CAPTURE_LOGICAL);
    assert_string_equal(cfg.stream_prefix, "pgsync");
}

static void test_strings_taken_as_given(void **state)
{
    struct config cfg;
    (void)state;
    setenv("PG_HOST", "db.example", 1);
    setenv("PG_PORT", "6432", 1);
    setenv("PG_USER", "sync", 1);
    setenv("PG_PASSWORD", "s3cret", 1);
    setenv("PG_SSLMODE", "verify-full", 1);
    setenv("ELASTICSEARCH_USER", "elastic", 1);
    setenv("ELASTICSEARCH_API_KEY", "aWQ6a2V5", 1);
    setenv("REDIS_HOST", "cache", 1);
    setenv("REDIS_AUTH", "rpass", 1);
    setenv("PGSYNC_SLOT", "my_slot", 1);
    setenv("PGSYNC_MODE", "notify", 1);
    setenv("PGSYNC_STREAM_PREFIX", "p2", 1);
    setenv("PGSYNC_CONSUMER_NAME", "c-1", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.pg_host, "db.example");
    assert_string_equal(cfg.pg_port, "6432");
    assert_string_equal(cfg.pg_user, "sync");
    assert_string_equal(cfg.pg_password, "s3cret");
    assert_string_equal(cfg.pg_sslmode, "verify-full");
    assert_string_equal(cfg.es_user, "elastic");
    assert_string_equal(cfg.es_api_key, "aWQ6a2V5");
    assert_string_equal(cfg.redis_host, "cache");
    assert_string_equal(cfg.redis_auth, "rpass");
    assert_string_equal(cfg.slot_name, "my_slot");
    assert_int_equal(cfg.mode, CAPTURE_NOTIFY);
    assert_string_equal(cfg.stream_prefix, "p2");
    assert_string_equal(cfg.consumer_name, "c-1");
}

/* ------------------------------------------------------------- numbers */

static void test_numbers_at_their_bounds(void **state)
{
    struct config cfg;
    (void)state;
    setenv("REDIS_PORT", "1", 1);
    setenv("REDIS_DB", "1000", 1);
    setenv("PGSYNC_BATCH_SIZE", "100000", 1);
    setenv("PGSYNC_BLOCK_MS", "1", 1);
    setenv("PGSYNC_CLAIM_IDLE_MS", "86400000", 1);
    setenv("PGSYNC_BULK_BYTES", "1024", 1);
    setenv("PGSYNC_STREAM_RETAIN", "0", 1);
    setenv("ELASTICSEARCH_TIMEOUT", "3600", 1);
    setenv("REDIS_TIMEOUT_MS", "100", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.redis_port, 1);
    assert_int_equal(cfg.redis_db, 1000);
    assert_int_equal(cfg.batch_size, 100000);
    assert_int_equal(cfg.block_ms, 1);
    assert_int_equal(cfg.claim_idle_ms, 86400000);
    assert_int_equal(cfg.bulk_max_bytes, 1024);
    assert_int_equal(cfg.stream_retain_s, 0);
    assert_int_equal(cfg.es_timeout_s, 3600);
    assert_int_equal(cfg.redis_timeout_ms, 100);
}

static void test_numbers_out_of_bounds_name_the_setting(void **state)
{
    (void)state;
    load_bad("REDIS_PORT", "0", "from 1 to 65535");
    load_bad("REDIS_PORT", "65536", "from 1 to 65535");
    load_bad("REDIS_DB", "-1", "from 0 to 1000");
    load_bad("REDIS_DB", "1001", "from 0 to 1000");
    load_bad("PGSYNC_BATCH_SIZE", "0", "from 1 to 100000");
    load_bad("PGSYNC_BATCH_SIZE", "100001", "from 1 to 100000");
    load_bad("PGSYNC_BULK_BYTES", "1023", "from 1024 to 104857600");
    load_bad("PGSYNC_STREAM_RETAIN", "31536001", "from 0 to 31536000");
    load_bad("ELASTICSEARCH_TIMEOUT", "0", "from 1 to 3600");
    load_bad("REDIS_TIMEOUT_MS", "99", "from 100 to 600000");
    /* larger than a long: strtol saturates, still out of bounds */
    load_bad("PGSYNC_DOC_CHUNK", "99999999999999999999999", "PGSYNC_DOC_CHUNK=9999");
}

static void test_numbers_not_numbers_name_the_setting(void **state)
{
    (void)state;
    load_bad("PGSYNC_BATCH_SIZE", "ten", "expected a whole number");
    load_bad("PGSYNC_BATCH_SIZE", "10x", "PGSYNC_BATCH_SIZE=10x");
    load_bad("PGSYNC_BATCH_SIZE", "1.5", "expected a whole number");
    load_bad("PGSYNC_BLOCK_MS", "1e3", "expected a whole number");
    load_bad("REDIS_PORT", "6379 ", "expected a whole number");
    load_bad("PGSYNC_PRODUCER_BATCH", "-", "expected a whole number");
}

static void test_empty_number_or_bool_means_default(void **state)
{
    struct config cfg;
    (void)state;
    /* an empty value is "unset" (docker-compose's FOO= lines), not zero or false */
    setenv("PGSYNC_BATCH_SIZE", "", 1);
    setenv("REDIS_PORT", "", 1);
    setenv("ELASTICSEARCH_VERIFY_CERTS", "", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.batch_size, 1000);
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.es_verify, 1);
}

/* ------------------------------------------------------------- booleans */

static void test_booleans_every_spelling(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "1", "yes", "YES", "on", "On"};
    static const char *const no[] = {"false", "FALSE", "0", "no", "No", "off", "OFF"};
    struct config cfg;
    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        setenv("OPENSEARCH", yes[i], 1);
        setenv("ELASTICSEARCH_GZIP", yes[i], 1);
        setenv("ELASTICSEARCH_VERIFY_CERTS", yes[i], 1);
        load_ok(&cfg);
        assert_int_equal(cfg.opensearch, 1);
        assert_int_equal(cfg.es_gzip, 1);
        assert_int_equal(cfg.es_verify, 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        setenv("OPENSEARCH", no[i], 1);
        setenv("ELASTICSEARCH_GZIP", no[i], 1);
        setenv("ELASTICSEARCH_VERIFY_CERTS", no[i], 1);
        load_ok(&cfg);
        assert_int_equal(cfg.opensearch, 0);
        assert_int_equal(cfg.es_gzip, 0);
        assert_int_equal(cfg.es_verify, 0);
    }
}

static void test_booleans_bad_name_the_setting(void **state)
{
    (void)state;
    load_bad("OPENSEARCH", "maybe", "OPENSEARCH=maybe: expected true or false");
    load_bad("ELASTICSEARCH_VERIFY_CERTS", "2", "ELASTICSEARCH_VERIFY_CERTS=2");
    load_bad("ELASTICSEARCH_GZIP", "truee", "expected true or false");
    load_bad("ELASTICSEARCH_GZIP", " true", "expected true or false");
}

/* ------------------------------------------------------------- search engine URL */

static void test_es_node_lists(void **state)
{
    struct config cfg;
    struct pgs_error err;
    (void)state;
    /* several hosts, one port for all */
    setenv("ELASTICSEARCH_HOST", "es1, es2,es3", 1);
    setenv("ELASTICSEARCH_PORT", "9200", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "http://es1:9200,http://es2:9200,http://es3:9200");
    assert_int_equal(cfg.es_sniff, 0);
    /* one port per host */
    setenv("ELASTICSEARCH_SCHEME", "https", 1);
    setenv("ELASTICSEARCH_PORT", "9201,9202, 9203", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "https://es1:9201,https://es2:9202,https://es3:9203");
    /* two ports for three hosts: which goes where? */
    setenv("ELASTICSEARCH_PORT", "9201,9202", 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    assert_non_null(strstr(err.msg, "ELASTICSEARCH_PORT=9201,9202"));
    assert_non_null(strstr(err.msg, "ELASTICSEARCH_HOST names 3"));
    /* a URL list is taken as given (es_nodes checks each node) */
    clear_env(NULL);
    setenv("ELASTICSEARCH_URL", "http://a:9200,http://b:9200", 1);
    setenv("ELASTICSEARCH_SNIFF", "true", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "http://a:9200,http://b:9200");
    assert_int_equal(cfg.es_sniff, 1);
}

static void test_es_url_built_from_parts(void **state)
{
    struct config cfg;
    (void)state;
    setenv("ELASTICSEARCH_SCHEME", "https", 1);
    setenv("ELASTICSEARCH_HOST", "search.local", 1);
    setenv("ELASTICSEARCH_PORT", "9243", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "https://search.local:9243");
    assert_ptr_equal(cfg.es_url, cfg.es_url_buf);

    /* one part alone: the others default */
    clear_env(NULL);
    setenv("ELASTICSEARCH_HOST", "es", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "http://es:9200");

    /* empty parts default too */
    setenv("ELASTICSEARCH_SCHEME", "", 1);
    setenv("ELASTICSEARCH_PORT", "", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "http://es:9200");
}

static void test_es_url_wins_over_parts(void **state)
{
    struct config cfg;
    (void)state;
    setenv("ELASTICSEARCH_URL", "https://u:p@cloud.example:443/prefix", 1);
    setenv("ELASTICSEARCH_HOST", "ignored", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "https://u:p@cloud.example:443/prefix");

    /* an empty URL is no URL */
    setenv("ELASTICSEARCH_URL", "", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "http://ignored:9200");
}

/* ------------------------------------------------------------- REDIS_URL */

static void redis_url_ok(const char *url, const char *host, int port, int db, const char *user,
                         const char *auth)
{
    struct config cfg;
    setenv("REDIS_URL", url, 1);
    load_ok(&cfg);
    assert_string_equal(cfg.redis_host, host);
    assert_int_equal(cfg.redis_port, port);
    assert_int_equal(cfg.redis_db, db);
    if (user)
        assert_string_equal(cfg.redis_user, user);
    else
        assert_null(cfg.redis_user);
    if (auth)
        assert_string_equal(cfg.redis_auth, auth);
    else
        assert_null(cfg.redis_auth);
    unsetenv("REDIS_URL");
}

static void test_redis_url_forms(void **state)
{
    (void)state;
    redis_url_ok("redis://cache", "cache", 6379, 0, NULL, NULL);
    redis_url_ok("redis://cache:6380", "cache", 6380, 0, NULL, NULL);
    redis_url_ok("redis://cache:6380/3", "cache", 6380, 3, NULL, NULL);
    redis_url_ok("redis://cache/5", "cache", 6379, 5, NULL, NULL);
    redis_url_ok("redis://cache/", "cache", 6379, 0, NULL, NULL);
    redis_url_ok("redis://:pw12@cache:1", "cache", 1, 0, NULL, "pw12");
    redis_url_ok("redis://bob:pw12@cache:7000/2", "cache", 7000, 2, "bob", "pw12");
    redis_url_ok("redis://onlypass@cache", "cache", 6379, 0, NULL, "onlypass");
    /* a password holding '@' or ':': the host starts after the last '@' */
    redis_url_ok("redis://bob:p@ss:w@cache:7001", "cache", 7001, 0, "bob", "p@ss:w");
    /* no host: REDIS_HOST (or its default) stays */
    redis_url_ok("redis://:6390", "localhost", 6390, 0, NULL, NULL);
}

/* TLS: rediss:// or REDIS_SCHEME=rediss; never plaintext with certificates set. */
static void test_redis_tls(void **state)
{
    (void)state;
    struct config cfg;
    struct pgs_error err;

    load_ok(&cfg);
    assert_int_equal(cfg.redis_tls, 0);
    setenv("REDIS_URL", "rediss://u:pw@cache.example.com:6380/0", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.redis_tls, 1);
    assert_string_equal(cfg.redis_host, "cache.example.com");
    assert_int_equal(cfg.redis_port, 6380);
    assert_int_equal(config_redis_tls_verify(&cfg), 1);
    /* the URL's scheme wins over REDIS_SCHEME, either way */
    setenv("REDIS_SCHEME", "redis", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.redis_tls, 1);
    setenv("REDIS_URL", "redis://cache", 1);
    setenv("REDIS_SCHEME", "rediss", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.redis_tls, 0);
    unsetenv("REDIS_URL");
    /* PGSync's form: REDIS_SCHEME with the parts */
    load_ok(&cfg);
    assert_int_equal(cfg.redis_tls, 1);
    setenv("REDIS_TLS_VERIFY", "none", 1);
    load_ok(&cfg);
    assert_int_equal(config_redis_tls_verify(&cfg), 0);
    setenv("REDIS_TLS_VERIFY", "maybe", 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "REDIS_TLS_VERIFY=maybe"));
    unsetenv("REDIS_TLS_VERIFY");
    setenv("REDIS_SCHEME", "http", 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "REDIS_SCHEME=http"));
    /* a CA without TLS: refused, not silently plaintext */
    setenv("REDIS_SCHEME", "redis", 1);
    setenv("REDIS_TLS_CA_CERT", "/etc/ca.pem", 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    assert_non_null(strstr(err.msg, "rediss://"));
    unsetenv("REDIS_TLS_CA_CERT");
    unsetenv("REDIS_SCHEME");
}

/* Cluster seeds exclude Sentinel and a database other than 0. */
static void test_redis_cluster_settings(void **state)
{
    (void)state;
    struct config cfg;
    struct pgs_error err;

    setenv("REDIS_CLUSTER_NODES", "a:7000,b:7001", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.redis_cluster_nodes, "a:7000,b:7001");
    assert_int_equal(cfg.redis_min_replicas, 1);
    setenv("REDIS_DB", "2", 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "database 0"));
    unsetenv("REDIS_DB");
    setenv("REDIS_SENTINELS", "s:26379", 1);
    setenv("REDIS_SENTINEL_MASTER", "m", 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "REDIS_CLUSTER_NODES and REDIS_SENTINELS"));
    unsetenv("REDIS_SENTINELS");
    unsetenv("REDIS_SENTINEL_MASTER");
    unsetenv("REDIS_CLUSTER_NODES");
}

static void test_redis_url_overrides_parts(void **state)
{
    (void)state;
    setenv("REDIS_HOST", "old", 1);
    setenv("REDIS_PORT", "1234", 1);
    setenv("REDIS_DB", "9", 1);
    setenv("REDIS_AUTH", "oldpass", 1);
    redis_url_ok("redis://u:newpass@new:4321/1", "new", 4321, 1, "u", "newpass");
    /* what the URL leaves out comes from the parts */
    redis_url_ok("redis://new", "new", 1234, 9, NULL, "oldpass");
}

static void redis_url_bad(const char *url, const char *want)
{
    struct config cfg;
    struct pgs_error err;
    setenv("REDIS_URL", url, 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    if (strstr(err.msg, "REDIS_URL") == NULL || strstr(err.msg, want) == NULL)
        fail_msg("REDIS_URL=%s: message \"%s\" should say \"%s\"", url, err.msg, want);
    unsetenv("REDIS_URL");
}

static void test_redis_url_bad(void **state)
{
    (void)state;
    redis_url_bad("http://cache", "must start with redis://");
    redis_url_bad("cache:6379", "must start with redis://");
    redis_url_bad("redis://cache:0", "bad port");
    redis_url_bad("redis://cache:70000", "bad port");
    redis_url_bad("redis://cache:port", "bad port");
    redis_url_bad("redis://cache:", "bad port");
}

/* ------------------------------------------------------------- help and dump */

static void test_help_lists_every_setting(void **state)
{
    char *text = NULL;
    size_t len = 0;
    (void)state;
    FILE *f = open_memstream(&text, &len);
    config_print_help(f);
    fclose(f);
    for (int i = 0; all_env[i]; i++) {
        if (!strcmp(all_env[i], "PGPASSWORD"))
            continue; /* libpq's, not ours */
        char want[64];
        snprintf(want, sizeof(want), "  %s ", all_env[i]);
        if (strstr(text, want) == NULL)
            fail_msg("--help does not list %s", all_env[i]);
    }
    assert_non_null(strstr(text, "PGSYNC_BATCH_SIZE"));
    assert_non_null(strstr(text, "[1000]"));
    assert_non_null(strstr(text, "[localhost]"));
    assert_non_null(strstr(text, "[logical]"));
    free(text);
}

static void run_config_log(const void *cfg)
{
    config_log(cfg);
}

static void test_dump_redacts_secrets(void **state)
{
    struct config cfg;
    (void)state;
    /*
     * The log's own scrubbing (secrets of the environment, registered by
     * pgs_log_init) ran before any of these were set: what is checked here
     * is that config_log itself never prints them.
     */
    setenv("PG_URL", "postgres://sync:pgurlsecret@db:5432/books", 1);
    setenv("PG_PASSWORD", "pgpasssecret", 1);
    setenv("ELASTICSEARCH_URL", "https://elastic:essecret@es.example:9200", 1);
    setenv("ELASTICSEARCH_PASSWORD", "espasssecret", 1);
    setenv("ELASTICSEARCH_API_KEY", "apikeysecret", 1);
    setenv("REDIS_URL", "redis://ruser:redissecret@cache:6380/2", 1);
    load_ok(&cfg);
    char *out = capture_stderr(run_config_log, &cfg);
    static const char *const secrets[] = {"pgurlsecret", "pgpasssecret", "essecret",
                                          "espasssecret", "apikeysecret", "redissecret"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (strstr(out, secrets[i]) != NULL)
            fail_msg("the settings dump shows %s: %s", secrets[i], out);
    /* and it still says what it is about */
    assert_non_null(strstr(out, "msg=\"settings\""));
    assert_non_null(strstr(out, "pg_url=***"));
    assert_non_null(strstr(out, "search=https://***@es.example:9200"));
    assert_non_null(strstr(out, "redis=cache:6380/2"));
    assert_non_null(strstr(out, "batch_size=1000"));
    free(out);

    /* without PG_URL the dump says so */
    clear_env(NULL);
    load_ok(&cfg);
    out = capture_stderr(run_config_log, &cfg);
    assert_non_null(strstr(out, "pg_url=-"));
    assert_non_null(strstr(out, "search=http://localhost:9200"));
    free(out);
}

/* ------------------------------------------------------------- connecting */

static void test_pg_connect_refused_names_the_place(void **state)
{
    struct config cfg;
    struct pgs_error err;
    (void)state;
    setenv("PG_HOST", "127.0.0.1", 1);
    setenv("PG_PORT", "1", 1); /* nothing listens on port 1 */
    setenv("PG_PASSWORD", "connsecret", 1);
    load_ok(&cfg);
    pgs_error_clear(&err);
    assert_null(config_pg_connect(&cfg, "books", 0, "test", &err));
    assert_int_equal(err.kind, PGS_ERR_TRANSIENT); /* a server not up yet: retried */
    assert_non_null(strstr(err.msg, "127.0.0.1:1"));
    assert_non_null(strstr(err.msg, "\"books\""));
    assert_true(err.detail[0] != '\0');
    assert_null(strstr(err.msg, "connsecret"));
    assert_null(strstr(err.detail, "connsecret"));

    /* through PG_URL: the same place, no password in the words */
    clear_env(NULL);
    setenv("PG_URL", "postgresql://sync:urlconnsecret@127.0.0.1:1/other", 1);
    load_ok(&cfg);
    pgs_error_clear(&err);
    assert_null(config_pg_connect(&cfg, NULL, 1, NULL, &err));
    assert_non_null(strstr(err.msg, "127.0.0.1:1"));
    assert_non_null(strstr(err.msg, "(default)"));
    assert_null(strstr(err.msg, "urlconnsecret"));
    assert_null(strstr(err.detail, "urlconnsecret"));
}

/*
 * The engine must answer a bulk held for a missing shard before the request
 * times out: an explicit PGSYNC_BULK_SHARD_TIMEOUT at or above
 * ELASTICSEARCH_TIMEOUT is refused naming both; the default follows a
 * shorter ELASTICSEARCH_TIMEOUT down.
 */
/* PGSync's settings with PGSync's meaning: the API key in two parts, USE_SSL, the chunk sizes. */
static void test_pgsync_settings(void **state)
{
    struct config cfg;
    struct pgs_error err;
    (void)state;

    load_ok(&cfg);
    assert_int_equal(cfg.bulk_max_docs, 0); /* no document cap unless asked */
    assert_int_equal(cfg.query_chunk, 1000);
    setenv("ELASTICSEARCH_API_KEY_ID", "VuaCfGcBCdbkQm-e5aOx", 1);
    setenv("ELASTICSEARCH_API_KEY", "ui2lp2axTNmsyakw9tvNnw", 1);
    load_ok(&cfg);
    /* the engine's documented example: base64("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw") */
    assert_string_equal(cfg.es_api_key, "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
    unsetenv("ELASTICSEARCH_API_KEY");
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "ELASTICSEARCH_API_KEY_ID is set but ELASTICSEARCH_API_KEY is not"));
    unsetenv("ELASTICSEARCH_API_KEY_ID");

    setenv("ELASTICSEARCH_USE_SSL", "true", 1);
    setenv("ELASTICSEARCH_HOST", "es1,es2", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.es_url, "https://es1:9200,https://es2:9200");
    setenv("ELASTICSEARCH_SCHEME", "http", 1);
    load_bad_keep("ELASTICSEARCH_USE_SSL=true but ELASTICSEARCH_SCHEME=http");
    unsetenv("ELASTICSEARCH_SCHEME");
    setenv("ELASTICSEARCH_USE_SSL", "maybe", 1);
    load_bad_keep("ELASTICSEARCH_USE_SSL=maybe: expected true or false");
    unsetenv("ELASTICSEARCH_USE_SSL");
    unsetenv("ELASTICSEARCH_HOST");

    setenv("ELASTICSEARCH_CHUNK_SIZE", "2000", 1);
    setenv("QUERY_CHUNK_SIZE", "10000", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.bulk_max_docs, 2000);
    assert_int_equal(cfg.query_chunk, 10000);
    load_bad("QUERY_CHUNK_SIZE", "0", "from 1 to");
    load_bad("ELASTICSEARCH_CHUNK_SIZE", "-1", "from 0 to");
}

static void test_bulk_shard_timeout_below_request_timeout(void **state)
{
    struct config cfg;
    struct pgs_error err;
    (void)state;
    setenv("ELASTICSEARCH_TIMEOUT", "10", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.bulk_timeout_s, 7);
    setenv("PGSYNC_BULK_SHARD_TIMEOUT", "5", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.bulk_timeout_s, 5);
    setenv("PGSYNC_BULK_SHARD_TIMEOUT", "10", 1);
    pgs_error_clear(&err);
    assert_int_equal(config_load(&cfg, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    assert_non_null(strstr(err.msg, "PGSYNC_BULK_SHARD_TIMEOUT"));
    assert_non_null(strstr(err.msg, "ELASTICSEARCH_TIMEOUT"));
    unsetenv("ELASTICSEARCH_TIMEOUT");
    unsetenv("PGSYNC_BULK_SHARD_TIMEOUT");
}

int main(void)
{
    clear_env(NULL);
    pgs_log_init("test", LOG_INFO, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_are_pgsyncs, clear_env),
        cmocka_unit_test_setup(test_strings_taken_as_given, clear_env),
        cmocka_unit_test_setup(test_numbers_at_their_bounds, clear_env),
        cmocka_unit_test_setup(test_numbers_out_of_bounds_name_the_setting, clear_env),
        cmocka_unit_test_setup(test_numbers_not_numbers_name_the_setting, clear_env),
        cmocka_unit_test_setup(test_empty_number_or_bool_means_default, clear_env),
        cmocka_unit_test_setup(test_booleans_every_spelling, clear_env),
        cmocka_unit_test_setup(test_booleans_bad_name_the_setting, clear_env),
        cmocka_unit_test_setup(test_es_url_built_from_parts, clear_env),
        cmocka_unit_test_setup(test_es_url_wins_over_parts, clear_env),
        cmocka_unit_test_setup(test_redis_url_forms, clear_env),
        cmocka_unit_test_setup(test_redis_url_overrides_parts, clear_env),
        cmocka_unit_test_setup(test_redis_tls, clear_env),
        cmocka_unit_test_setup(test_redis_cluster_settings, clear_env),
        cmocka_unit_test_setup(test_redis_url_bad, clear_env),
        cmocka_unit_test_setup(test_help_lists_every_setting, clear_env),
        cmocka_unit_test_setup(test_es_node_lists, clear_env),
        cmocka_unit_test_setup(test_bulk_shard_timeout_below_request_timeout, clear_env),
        cmocka_unit_test_setup(test_pgsync_settings, clear_env),
        cmocka_unit_test_setup(test_dump_redacts_secrets, clear_env),
        cmocka_unit_test_setup(test_pg_connect_refused_names_the_place, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, clear_env);
}
