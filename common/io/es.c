/*
 * es.c - the search engine client: one kept-alive libcurl easy handle per
 * client, JSON through jansson, gzip request bodies through zlib. The bulk
 * path reads every item of every response and classifies it (es.h): a
 * tool that checkpoints after a bulk without reading each item loses the
 * documents it refused, silently. es_bulk_flush() retries what is retryable
 * with capped exponential backoff and full jitter.
 */
#include "es.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zlib.h>

#include "es_nodes.h"
#include "log.h"

#define ES_DEFAULT_CONNECT_MS 10000L
#define ES_DEFAULT_TIMEOUT_MS 120000L
#define ES_MAX_RESPONSE       (256u * 1024 * 1024) /* a response larger than this is an error */
#define ES_BACKOFF_FIRST_MS   100L
#define ES_BACKOFF_MAX_MS     30000L
#define ES_FATAL_ROUNDS       3   /* fatal answers are retried this often before we give up */
#define ES_PREVIEW            200 /* characters of a non-JSON response quoted in a detail */
#define ES_SNIFF_EVERY_S      60.0 /* ELASTICSEARCH_SNIFF: how often the node list is asked for */
#define ES_SNIFF_RETRY_S      10.0 /* ... and how soon again after a failed attempt */

/* ---- small growable buffer ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        /* as everywhere in pgsync-c: abort on OOM, the stream replays */
        fputs("out of memory\n", stderr);
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n;
    char *p;

    if (s == NULL)
        return NULL;
    n = strlen(s) + 1;
    p = xrealloc(NULL, n);
    memcpy(p, s, n);
    return p;
}

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

static void buf_add(struct buf *b, const void *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Append "s" as a quoted JSON string; bytes >= 0x80 pass through (UTF-8). */
static void buf_add_jstr(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[7];
        switch (*p) {
        case '"':
            buf_add(b, "\\\"", 2);
            break;
        case '\\':
            buf_add(b, "\\\\", 2);
            break;
        case '\n':
            buf_add(b, "\\n", 2);
            break;
        case '\r':
            buf_add(b, "\\r", 2);
            break;
        case '\t':
            buf_add(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                buf_add(b, esc, 6);
            } else {
                buf_add(b, p, 1);
            }
        }
    }
    buf_add(b, "\"", 1);
}

/* Copy "src" into "dst", marking a cut with "...": texts here are for people. */
static void es_copy(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);

    if (n < len) {
        memcpy(dst, src, n + 1);
        return;
    }
    memcpy(dst, src, len - 4);
    memcpy(dst + len - 4, "...", 4);
}

/* ---- the client ---- */

struct es_client {
    CURL *h;
    char *url;                 /* the settings' node list, as given */
    struct es_nodes *nodes;    /* shared with the dups */
    char node_url[ES_NODE_URL_MAX]; /* the node of the request under way (or the last one) */
    char safe_url[ES_NODE_URL_MAX]; /* the same with any user:password@ redacted: for messages */
    int sniff;                 /* ELASTICSEARCH_SNIFF: ask the cluster for its nodes */
    int sniffing;              /* a sniff request is under way: do not start another */
    double next_sniff;         /* monotonic */
    char *user, *password, *api_key;
    char *ca_file, *client_cert, *client_key;
    int verify_tls, force_opensearch, gzip;
    int bulk_timeout_s;
    long connect_timeout_ms, timeout_ms;
    char errbuf[CURL_ERROR_SIZE];
    struct buf resp;
    int resp_too_large;
    uint64_t rng;
    int failing; /* the bulk path is in a failure streak: log only the changes */
    struct es_hooks hooks;
};

void es_client_set_hooks(struct es_client *c, const struct es_hooks *hooks)
{
    if (hooks != NULL)
        c->hooks = *hooks;
    else
        memset(&c->hooks, 0, sizeof(c->hooks));
}

const struct es_hooks *es_client_hooks(const struct es_client *c)
{
    return &c->hooks;
}

static double es_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pthread_once_t es_curl_once = PTHREAD_ONCE_INIT;

static void es_curl_global_init(void)
{
    /* not thread-safe in every libcurl build: run it once, before any handle */
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A client on "nodes" (a new reference taken): the settings of "cfg" but its URL. */
static struct es_client *es_client_on(const struct es_config *cfg, struct es_nodes *nodes,
                                      struct pgs_error *err)
{
    struct es_client *c;

    pthread_once(&es_curl_once, es_curl_global_init);
    c = xrealloc(NULL, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->h = curl_easy_init();
    if (c->h == NULL) {
        free(c);
        pgs_error_set(err, PGS_ERR_FATAL, "cannot create a libcurl handle");
        return NULL;
    }
    c->nodes = es_nodes_ref(nodes);
    c->url = xstrdup(cfg->url);
    c->sniff = cfg->sniff;
    c->bulk_timeout_s = cfg->bulk_timeout_s;
    /* the first node names the engine in messages until a request picks one */
    es_nodes_url(c->nodes, 0, c->node_url, sizeof(c->node_url));
    pgs_redact_url(c->node_url, c->safe_url, sizeof(c->safe_url));
    c->user = xstrdup(cfg->user && cfg->user[0] ? cfg->user : NULL);
    c->password = xstrdup(cfg->password);
    c->api_key = xstrdup(cfg->api_key && cfg->api_key[0] ? cfg->api_key : NULL);
    c->ca_file = xstrdup(cfg->ca_file && cfg->ca_file[0] ? cfg->ca_file : NULL);
    c->client_cert = xstrdup(cfg->client_cert && cfg->client_cert[0] ? cfg->client_cert : NULL);
    c->client_key = xstrdup(cfg->client_key && cfg->client_key[0] ? cfg->client_key : NULL);
    c->verify_tls = cfg->verify_tls;
    c->force_opensearch = cfg->force_opensearch;
    c->gzip = cfg->gzip;
    c->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : ES_DEFAULT_CONNECT_MS;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : ES_DEFAULT_TIMEOUT_MS;
    c->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    if (c->rng == 0)
        c->rng = 0x9e3779b97f4a7c15ull;
    return c;
}

struct es_client *es_client_new(const struct es_config *cfg, struct pgs_error *err)
{
    struct es_nodes *nodes;
    struct es_client *c;

    if (cfg == NULL || cfg->url == NULL || cfg->url[0] == '\0') {
        pgs_error_set(err, PGS_ERR_USAGE, "no search engine URL: set ELASTICSEARCH_URL");
        return NULL;
    }
    nodes = es_nodes_new(cfg->url, "ELASTICSEARCH_URL", err);
    if (nodes == NULL)
        return NULL;
    c = es_client_on(cfg, nodes, err);
    es_nodes_unref(nodes); /* the client holds its own reference */
    if (c != NULL && !c->verify_tls && strstr(c->url, "https://") != NULL)
        pgs_log(LOG_WARN, "TLS certificate verification is off", "url=%s", c->safe_url);
    return c;
}

struct es_client *es_client_dup(const struct es_client *c, struct pgs_error *err)
{
    struct es_config cfg = {
        .url = c->url,
        .user = c->user,
        .password = c->password,
        .api_key = c->api_key,
        .ca_file = c->ca_file,
        .client_cert = c->client_cert,
        .client_key = c->client_key,
        .verify_tls = c->verify_tls,
        .force_opensearch = c->force_opensearch,
        .connect_timeout_ms = c->connect_timeout_ms,
        .timeout_ms = c->timeout_ms,
        .gzip = c->gzip,
        .sniff = c->sniff,
        .bulk_timeout_s = c->bulk_timeout_s,
    };
    /* the same node list: what one thread learns of a node, the others use */
    return es_client_on(&cfg, c->nodes, err);
}

void es_client_free(struct es_client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->h);
    es_nodes_unref(c->nodes);
    free(c->url);
    free(c->user);
    if (c->password != NULL) /* do not leave the secret in freed memory */
        memset(c->password, 0, strlen(c->password));
    free(c->password);
    if (c->api_key != NULL)
        memset(c->api_key, 0, strlen(c->api_key));
    free(c->api_key);
    free(c->ca_file);
    free(c->client_cert);
    free(c->client_key);
    free(c->resp.p);
    free(c);
}

static size_t es_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct es_client *c = ud;
    size_t n = size * nmemb;

    if (c->resp.len + n > ES_MAX_RESPONSE) {
        c->resp_too_large = 1;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    buf_add(&c->resp, ptr, n);
    return n;
}

static uint64_t es_rand(struct es_client *c)
{
    /* xorshift64*: jitter only, no need for more */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545f4914f6cdd1dull;
}

/* curl's progress callback, about once a second during a request: the waiting hook */
static int es_progress_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    struct es_client *c = ud;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    c->hooks.waiting(c->hooks.arg);
    return 0;
}

/* The options every request starts from (curl_easy_reset keeps the live connections). */
static void es_setopts(struct es_client *c)
{
    CURL *h = c->h;

    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    /*
     * A whole-request limit only, and a long one: a slow bulk is not a dead
     * one, and a read time-out of a few seconds would retry (and so double)
     * exactly the bulks a loaded engine is busy with.
     */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 15L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip responses, decoded by curl */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, es_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "pgsync-c");
    if (c->hooks.waiting) {
        /* a slow request (up to the time-out) must not starve the daemon's /healthz */
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, es_progress_cb);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (c->api_key == NULL && c->user != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    if (c->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->client_cert != NULL)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->client_cert);
    if (c->client_key != NULL)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->client_key);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->verify_tls ? 2L : 0L);
}

int es_gzip(const char *in, size_t len, char **out, size_t *outlen, struct pgs_error *err)
{
    z_stream zs;
    size_t cap;
    char *p;
    int rc;

    memset(&zs, 0, sizeof(zs));
    /* 16 + 15: a gzip wrapper, as Content-Encoding: gzip wants */
    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        pgs_error_set(err, PGS_ERR_FATAL, "cannot start gzip compression");
        return -1;
    }
    cap = deflateBound(&zs, (uLong)len) + 32;
    p = xrealloc(NULL, cap);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)p;
    zs.avail_out = (uInt)cap;
    /* deflateBound is an upper bound: one Z_FINISH call is enough */
    rc = deflate(&zs, Z_FINISH);
    if (rc != Z_STREAM_END || len > UINT32_MAX || cap > UINT32_MAX) {
        deflateEnd(&zs);
        free(p);
        pgs_error_set(err, PGS_ERR_FATAL, "gzip compression of %zu bytes failed", len);
        pgs_error_detail(err, "zlib: %d", rc);
        return -1;
    }
    *outlen = zs.total_out;
    deflateEnd(&zs);
    *out = p;
    return 0;
}

/*
 * The method and, unless HEAD or a bodyless GET, the body: gzipped when the
 * client says so ("*gz" then owns the compressed copy and "*hdrs" gets its
 * Content-Encoding). -1 only when compression fails.
 */
static int es_set_body(struct es_client *c, const char *method, const char *body, size_t len,
                       char **gz, struct curl_slist **hdrs, struct pgs_error *err)
{
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
        return 0;
    }
    if (strcmp(method, "GET") == 0 && body == NULL) {
        curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
        return 0;
    }
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL && c->gzip && len > 0) {
        size_t gzlen;
        if (es_gzip(body, len, gz, &gzlen, err) < 0)
            return -1;
        body = *gz;
        len = gzlen;
        *hdrs = curl_slist_append(*hdrs, "Content-Encoding: gzip");
    }
    /* an empty body still gets "Content-Length: 0", which some proxies insist on */
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body != NULL ? len : 0));
    return 0;
}

/* Content-Type, Accept and the API key onto "hdrs"; returns the list. */
static struct curl_slist *es_add_headers(struct es_client *c, struct curl_slist *hdrs,
                                         const char *content_type)
{
    char hdr[64];

    if (content_type != NULL) {
        snprintf(hdr, sizeof(hdr), "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, hdr);
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (c->api_key != NULL) {
        size_t alen = strlen(c->api_key) + 32;
        char *auth = xrealloc(NULL, alen);
        snprintf(auth, alen, "Authorization: ApiKey %s", c->api_key);
        hdrs = curl_slist_append(hdrs, auth); /* copies */
        memset(auth, 0, alen);
        free(auth);
    }
    return hdrs;
}

/* The status and a NUL-terminated copy of the answer, "*resp" new for the caller. */
static void es_take_response(struct es_client *c, long *status, char **resp)
{
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, status);
    *resp = xrealloc(NULL, c->resp.len + 1);
    if (c->resp.len > 0)
        memcpy(*resp, c->resp.p, c->resp.len);
    (*resp)[c->resp.len] = '\0';
    /* keep the buffer for the next request, but not a huge one */
    if (c->resp.cap > 4u * 1024 * 1024) {
        free(c->resp.p);
        memset(&c->resp, 0, sizeof(c->resp));
    }
}

/*
 * One attempt on the node in c->node_url. A transport failure returns -1
 * with PGS_ERR_TRANSIENT and *transport set; *sent says whether any of the
 * request may have left (not when the connection was refused or the name
 * did not resolve: then another node may get it at once).
 */
static int es_request_once(struct es_client *c, const char *method, const char *path,
                           const char *body, size_t len, const char *content_type, long *status,
                           char **resp, int *transport, int *sent, struct pgs_error *err)
{
    struct curl_slist *hdrs = NULL;
    char *url, *gz = NULL;
    size_t ulen;
    CURLcode rc;

    *status = 0;
    *resp = NULL;
    *transport = 0;
    *sent = 1;
    ulen = strlen(c->node_url) + strlen(path) + 2;
    url = xrealloc(NULL, ulen);
    snprintf(url, ulen, "%s%s%s", c->node_url, path[0] == '/' ? "" : "/", path);

    curl_easy_reset(c->h);
    es_setopts(c);
    c->errbuf[0] = '\0';
    c->resp.len = 0;
    c->resp_too_large = 0;
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    if (es_set_body(c, method, body, len, &gz, &hdrs, err) < 0) {
        free(url);
        return -1;
    }
    hdrs = es_add_headers(c, hdrs, content_type);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);

    rc = curl_easy_perform(c->h);
    curl_slist_free_all(hdrs);
    free(gz);
    free(url);
    if (rc != CURLE_OK) {
        *transport = 1;
        /* no connection, nothing sent: another node may have it at once */
        *sent = rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST &&
                rc != CURLE_COULDNT_RESOLVE_PROXY;
        /* the path without its query string: "POST http://host:9200/_bulk" */
        pgs_error_set(err, PGS_ERR_TRANSIENT, "%s %s%.*s: no answer from the search engine",
                      method, c->safe_url, (int)strcspn(path, "?"), path);
        if (c->resp_too_large)
            pgs_error_detail(err, "response larger than %u bytes", ES_MAX_RESPONSE);
        else
            pgs_error_detail(err, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        return -1;
    }
    es_take_response(c, status, resp);
    return 0;
}

/*
 * Does this answer say the node (or the proxy before it) cannot serve? 502
 * and 504 always; 503 unless the engine itself names a shard problem (a red
 * index: every node would say so, and the index, not the node, must alarm).
 */
static int es_node_unavailable(long status, const char *resp)
{
    if (status == 502 || status == 504)
        return 1;
    if (status != 503)
        return 0;
    return resp == NULL || strstr(resp, "shard") == NULL;
}

static void es_sniff(struct es_client *c)
{
    const char *scheme = !strncmp(c->node_url, "https://", 8) ? "https" : "http";
    long status;
    char *resp = NULL, **urls = NULL;
    struct pgs_error err;
    int n = -1;

    c->sniffing = 1;
    c->next_sniff = es_now() + ES_SNIFF_RETRY_S;
    if (es_request(c, "GET", "/_nodes/http", NULL, 0, NULL, &status, &resp, &err) < 0) {
        char buf[600];
        pgs_log(LOG_WARN, "sniffing the search engine's nodes failed", "error=\"%s\"",
                pgs_error_str(&err, buf, sizeof(buf)));
    } else if (status != 200 || (n = es_nodes_parse_sniff(resp, scheme, &urls)) <= 0) {
        pgs_log(LOG_WARN, "sniffing the search engine's nodes failed", "url=%s status=%ld nodes=%d",
                c->safe_url, status, n);
    } else {
        es_nodes_set_sniffed(c->nodes, urls, n);
        pgs_log(LOG_DEBUG, "sniffed the search engine's nodes", "nodes=%d listed=%d", n,
                es_nodes_count(c->nodes));
        c->next_sniff = es_now() + ES_SNIFF_EVERY_S;
    }
    for (int i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
    free(resp);
    c->sniffing = 0;
}

int es_request(struct es_client *c, const char *method, const char *path, const char *body,
               size_t len, const char *content_type, long *status, char **resp,
               struct pgs_error *err)
{
    int tries = 0, transport, sent;

    if (c->sniff && !c->sniffing && es_now() >= c->next_sniff)
        es_sniff(c);
    for (;;) {
        int node = es_nodes_pick(c->nodes, es_now(), c->node_url, sizeof(c->node_url));
        pgs_redact_url(c->node_url, c->safe_url, sizeof(c->safe_url));
        if (es_request_once(c, method, path, body, len, content_type, status, resp, &transport,
                            &sent, err) == 0) {
            if (es_node_unavailable(*status, *resp)) {
                char why[32];
                snprintf(why, sizeof(why), "HTTP %ld", *status);
                es_nodes_failed(c->nodes, node, es_now(), why);
            } else {
                es_nodes_ok(c->nodes, node);
            }
            return 0;
        }
        if (!transport)
            return -1;
        es_nodes_failed(c->nodes, node, es_now(),
                        c->errbuf[0] ? c->errbuf : "no answer");
        /* nothing left: another live node gets it now (else the caller's backoff decides) */
        if (sent || ++tries >= es_nodes_count(c->nodes) ||
            !es_nodes_other_live(c->nodes, node, es_now()))
            return -1;
        pgs_log(LOG_DEBUG, "trying another search engine node", "failed=%s", c->safe_url);
    }
}

int es_client_node_count(struct es_client *c)
{
    return es_nodes_count(c->nodes);
}

int es_client_nodes_status(struct es_client *c, char *buf, size_t len)
{
    return es_nodes_status(c->nodes, es_now(), buf, len);
}

json_t *es_client_nodes_json(struct es_client *c)
{
    return es_nodes_json(c->nodes, es_now());
}

/*
 * GET / on node "i" itself, whatever the list thinks of it, with short
 * time-outs (a probe must not hold a daemon's loop): es_request_once's result.
 */
static int es_get_root_on(struct es_client *c, int i, long connect_ms, long timeout_ms,
                          long *status, char **resp, struct pgs_error *err)
{
    long saved_connect = c->connect_timeout_ms, saved_timeout = c->timeout_ms;
    int transport, sent, rv;

    c->connect_timeout_ms = connect_ms;
    c->timeout_ms = timeout_ms;
    es_nodes_url(c->nodes, i, c->node_url, sizeof(c->node_url));
    pgs_redact_url(c->node_url, c->safe_url, sizeof(c->safe_url));
    rv = es_request_once(c, "GET", "/", NULL, 0, NULL, status, resp, &transport, &sent, err);
    c->connect_timeout_ms = saved_connect;
    c->timeout_ms = saved_timeout;
    return rv;
}

int es_client_probe_due(struct es_client *c)
{
    int probed = 0;

    for (int i = 0; i < es_nodes_count(c->nodes); i++) {
        struct pgs_error err;
        long status;
        char *resp = NULL;

        if (!es_nodes_due(c->nodes, i, es_now()))
            continue;
        if (es_get_root_on(c, i, 1000, 2000, &status, &resp, &err) < 0) {
            es_nodes_failed(c->nodes, i, es_now(), c->errbuf[0] ? c->errbuf : "no answer");
        } else if (status != 200) {
            char why[32];
            snprintf(why, sizeof(why), "HTTP %ld", status);
            es_nodes_failed(c->nodes, i, es_now(), why);
        } else {
            es_nodes_ok(c->nodes, i);
        }
        free(resp);
        probed++;
    }
    return probed;
}

json_t *es_probe_nodes(struct es_client *c)
{
    json_t *list = json_array();

    for (int i = 0; i < es_nodes_count(c->nodes); i++) {
        struct pgs_error err;
        long status;
        char *resp = NULL;
        int rv = es_get_root_on(c, i, 2000, 5000, &status, &resp, &err);
        json_t *o = json_pack("{s:s}", "url", c->safe_url);

        if (rv < 0) {
            char buf[600];
            json_object_set_new(o, "up", json_false());
            json_object_set_new(o, "error", json_string(pgs_error_str(&err, buf, sizeof(buf))));
        } else {
            json_t *root = json_loads(resp, 0, NULL);
            const char *v = json_string_value(
                json_object_get(json_object_get(root, "version"), "number"));
            int up = status == 200 && v != NULL;
            char why[64];
            snprintf(why, sizeof(why), "HTTP %ld", status);
            json_object_set_new(o, "up", json_boolean(up));
            json_object_set_new(o, up ? "version" : "error", json_string(up ? v : why));
            json_decref(root);
        }
        free(resp);
        json_array_append_new(list, o);
    }
    return list;
}

/* ---- helpers for the admin calls ---- */

/* "/<escaped index><suffix>" into a new string. */
static char *es_index_path(struct es_client *c, const char *index, const char *suffix)
{
    char *esc = curl_easy_escape(c->h, index, 0);
    size_t n;
    char *p;

    if (esc == NULL) {
        fputs("out of memory\n", stderr);
        abort();
    }
    n = strlen(esc) + strlen(suffix) + 2;
    p = xrealloc(NULL, n);
    snprintf(p, n, "/%s%s", esc, suffix);
    curl_free(esc);
    return p;
}

/* First "n" characters of "s", control characters flattened: a preview for a detail. */
static void es_preview(const char *s, char *out, size_t outlen, size_t n)
{
    size_t i;

    for (i = 0; i < n && i + 1 < outlen && s[i]; i++)
        out[i] = ((unsigned char)s[i] < 0x20) ? ' ' : s[i];
    out[i] = '\0';
}

/* error.type and error.reason of an error response into "type"/"reason" ("" when none). */
static void es_error_of(json_t *root, char *type, size_t tlen, char *reason, size_t rlen)
{
    json_t *e = json_object_get(root, "error");
    json_t *cause;

    type[0] = reason[0] = '\0';
    if (json_is_string(e)) { /* very old engines: "error": "text" */
        snprintf(reason, rlen, "%s", json_string_value(e));
        return;
    }
    if (!json_is_object(e))
        return;
    if (json_is_string(json_object_get(e, "type")))
        snprintf(type, tlen, "%s", json_string_value(json_object_get(e, "type")));
    if (json_is_string(json_object_get(e, "reason")))
        snprintf(reason, rlen, "%s", json_string_value(json_object_get(e, "reason")));
    /* a mapping error's useful half is often in caused_by */
    cause = json_object_get(e, "caused_by");
    if (json_is_object(cause) && json_is_string(json_object_get(cause, "reason"))) {
        size_t n = strlen(reason);
        snprintf(reason + n, rlen - n, "%s(caused by %s: %s)", n ? " " : "",
                 json_is_string(json_object_get(cause, "type"))
                     ? json_string_value(json_object_get(cause, "type"))
                     : "?",
                 json_string_value(json_object_get(cause, "reason")));
    }
}

static enum pgs_errkind es_kind_of_status(long status)
{
    if (status == 401 || status == 403)
        return PGS_ERR_FATAL;
    if (status == 408 || status == 429 || status >= 500)
        return PGS_ERR_TRANSIENT;
    return PGS_ERR_USAGE;
}

/*
 * Turn a failed answer into "err": "what" names the call and the object,
 * the engine's error.type and error.reason (or the first characters of a
 * non-JSON body) go into the message. 401/403 get the hint about credentials.
 */
static void es_status_error(struct es_client *c, long status, const char *resp,
                            enum pgs_errkind other, const char *what, struct pgs_error *err)
{
    char type[128], reason[512], preview[ES_PREVIEW + 1];
    json_t *root = json_loads(resp, 0, NULL);
    enum pgs_errkind kind = es_kind_of_status(status);

    if (kind == PGS_ERR_USAGE)
        kind = other;
    if (status == 401 || status == 403) {
        if (status == 401)
            pgs_error_set(err, PGS_ERR_FATAL,
                          "authentication to %s failed (401): check ELASTICSEARCH_USER/PASSWORD "
                          "or ELASTICSEARCH_API_KEY",
                          c->safe_url);
        else
            pgs_error_set(err, PGS_ERR_FATAL,
                          "access to %s denied (403): check the privileges of ELASTICSEARCH_USER "
                          "or ELASTICSEARCH_API_KEY",
                          c->safe_url);
        es_error_of(root, type, sizeof(type), reason, sizeof(reason));
        if (reason[0])
            pgs_error_detail(err, "%s: %s%s%s", what, type[0] ? type : "error", ": ", reason);
        else
            pgs_error_detail(err, "%s", what);
    } else if (root == NULL) {
        /* HTML from a proxy, or nothing: transient, the engine may be behind it */
        pgs_error_set(err, PGS_ERR_TRANSIENT, "%s: the search engine at %s answered %ld", what,
                      c->safe_url, status);
        es_preview(resp, preview, sizeof(preview), ES_PREVIEW);
        if (preview[0])
            pgs_error_detail(err, "%s", preview);
    } else {
        es_error_of(root, type, sizeof(type), reason, sizeof(reason));
        pgs_error_set(err, kind, "%s: %s%s%s (HTTP %ld)", what, type[0] ? type : "error",
                      reason[0] ? ": " : "", reason, status);
    }
    json_decref(root);
}

/* ---- admin calls ---- */

int es_info(struct es_client *c, enum es_flavor *flavor, int *major, char *version, size_t vlen,
            struct pgs_error *err)
{
    long status;
    char *resp, preview[ES_PREVIEW + 1];
    json_t *root, *ver;
    const char *num, *dist;
    json_error_t jerr;

    if (es_request(c, "GET", "/", NULL, 0, NULL, &status, &resp, err) < 0)
        return -1;
    if (status != 200) {
        es_status_error(c, status, resp, PGS_ERR_FATAL, "GET /", err);
        free(resp);
        return -1;
    }
    root = json_loads(resp, 0, &jerr);
    ver = json_object_get(root, "version");
    num = json_string_value(json_object_get(ver, "number"));
    if (num == NULL) {
        pgs_error_set(err, PGS_ERR_TRANSIENT,
                      "GET %s/: not a search engine answer (no version.number)", c->safe_url);
        es_preview(resp, preview, sizeof(preview), ES_PREVIEW);
        pgs_error_detail(err, "%s", preview);
        json_decref(root);
        free(resp);
        return -1;
    }
    dist = json_string_value(json_object_get(ver, "distribution"));
    if (flavor != NULL)
        *flavor = (c->force_opensearch || (dist != NULL && strcmp(dist, "opensearch") == 0))
                      ? ES_FLAVOR_OPENSEARCH
                      : ES_FLAVOR_ELASTICSEARCH;
    if (major != NULL)
        *major = atoi(num);
    if (version != NULL && vlen > 0)
        snprintf(version, vlen, "%s", num);
    json_decref(root);
    free(resp);
    return 0;
}

int es_create_index(struct es_client *c, const char *index, json_t *settings, json_t *mappings,
                    struct pgs_error *err)
{
    json_t *body = json_object();
    char *text, *path, *resp, what[300], type[128], reason[512];
    long status;
    int rc;

    /* borrowed: the caller keeps its references */
    if (settings != NULL)
        json_object_set(body, "settings", settings);
    if (mappings != NULL)
        json_object_set(body, "mappings", mappings);
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        pgs_error_set(err, PGS_ERR_SCHEMA, "cannot create index \"%s\": settings or mappings "
                      "cannot be written as JSON", index);
        return -1;
    }
    path = es_index_path(c, index, "");
    rc = es_request(c, "PUT", path, text, strlen(text), "application/json", &status, &resp, err);
    free(text);
    free(path);
    if (rc < 0)
        return -1;
    if (status >= 200 && status < 300) {
        free(resp);
        return 0;
    }
    snprintf(what, sizeof(what), "cannot create index \"%s\"", index);
    if (status == 400) {
        json_t *root = json_loads(resp, 0, NULL);
        es_error_of(root, type, sizeof(type), reason, sizeof(reason));
        json_decref(root);
        if (strcmp(type, "resource_already_exists_exception") == 0) {
            free(resp);
            return 0;
        }
    }
    /* a 400 here is the schema's mapping or settings: the user fixes it */
    es_status_error(c, status, resp, PGS_ERR_SCHEMA, what, err);
    free(resp);
    return -1;
}

int es_index_exists(struct es_client *c, const char *index, int *exists, struct pgs_error *err)
{
    char *path = es_index_path(c, index, ""), *resp, what[300];
    long status;
    int rc = es_request(c, "HEAD", path, NULL, 0, NULL, &status, &resp, err);

    free(path);
    if (rc < 0)
        return -1;
    if (status == 200 || status == 404) {
        *exists = status == 200;
        free(resp);
        return 0;
    }
    snprintf(what, sizeof(what), "cannot check index \"%s\"", index);
    es_status_error(c, status, resp, PGS_ERR_FATAL, what, err);
    free(resp);
    return -1;
}

/* One admin call on "index" where 2xx (and 404 when "missing_ok") is success. */
static int es_simple(struct es_client *c, const char *method, const char *index,
                     const char *suffix, const char *body, int missing_ok, const char *verb,
                     long *status_out, char **resp_out, struct pgs_error *err)
{
    char *path = es_index_path(c, index, suffix), *resp, what[300];
    long status;
    int rc = es_request(c, method, path, body, body ? strlen(body) : 0,
                        body ? "application/json" : NULL, &status, &resp, err);

    free(path);
    if (rc < 0)
        return -1;
    if ((status >= 200 && status < 300) || (missing_ok && status == 404)) {
        if (status_out != NULL)
            *status_out = status;
        if (resp_out != NULL)
            *resp_out = resp;
        else
            free(resp);
        return 0;
    }
    snprintf(what, sizeof(what), "cannot %s index \"%s\"", verb, index);
    es_status_error(c, status, resp, PGS_ERR_FATAL, what, err);
    free(resp);
    return -1;
}

int es_delete_index(struct es_client *c, const char *index, struct pgs_error *err)
{
    return es_simple(c, "DELETE", index, "", NULL, 1, "delete", NULL, NULL, err);
}

int es_refresh(struct es_client *c, const char *index, struct pgs_error *err)
{
    return es_simple(c, "POST", index, "/_refresh", NULL, 0, "refresh", NULL, NULL, err);
}

int es_delete_all(struct es_client *c, const char *index, struct pgs_error *err)
{
    long status;
    char *resp, what[300];
    json_t *root, *failures;

    /*
     * _delete_by_query only sees what the last refresh made searchable: a
     * document indexed a moment ago would survive the TRUNCATE it stands for.
     */
    if (es_simple(c, "POST", index, "/_refresh", NULL, 1, "refresh", &status, NULL, err) < 0)
        return -1;
    if (status == 404)
        return 0; /* no index, no documents */
    if (es_simple(c, "POST", index, "/_delete_by_query?conflicts=proceed&refresh=true",
                  "{\"query\":{\"match_all\":{}}}", 1, "empty", &status, &resp, err) < 0)
        return -1;
    root = json_loads(resp, 0, NULL);
    failures = json_object_get(root, "failures");
    if (json_array_size(failures) > 0) {
        char *text = json_dumps(json_array_get(failures, 0), JSON_COMPACT);
        snprintf(what, sizeof(what), "cannot empty index \"%s\": %zu documents failed", index,
                 json_array_size(failures));
        pgs_error_set(err, PGS_ERR_TRANSIENT, "%s", what);
        pgs_error_detail(err, "%s", text ? text : "");
        free(text);
        json_decref(root);
        free(resp);
        return -1;
    }
    json_decref(root);
    free(resp);
    return 0;
}

void es_answer_error(const char *resp, char *buf, size_t len)
{
    char type[128], reason[512];
    json_t *root = resp ? json_loads(resp, 0, NULL) : NULL;

    es_error_of(root, type, sizeof(type), reason, sizeof(reason));
    json_decref(root);
    if (type[0] || reason[0])
        snprintf(buf, len, "%s: %s", type, reason);
    else
        snprintf(buf, len, "%.200s", resp ? resp : "");
}

int es_search_complete(const json_t *resp, const char *index, struct pgs_error *err)
{
    json_t *sh = json_object_get(resp, "_shards");
    json_int_t total = json_integer_value(json_object_get(sh, "total"));
    json_int_t ok = json_integer_value(json_object_get(sh, "successful"));
    json_int_t failed = json_integer_value(json_object_get(sh, "failed"));

    if (!json_is_object(sh) || (failed == 0 && ok >= total))
        return 0;
    /* a shard failure: {"shard": 0, "index": ..., "reason": {"type": ..., "reason": ...}} */
    json_t *why = json_object_get(json_array_get(json_object_get(sh, "failures"), 0), "reason");
    const char *type = json_string_value(json_object_get(why, "type"));
    const char *reason = json_string_value(json_object_get(why, "reason"));
    pgs_error_set(err, PGS_ERR_TRANSIENT,
                  "searching index \"%s\": %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
                  " shards did not answer",
                  index, total - ok, total);
    if (type || reason)
        pgs_error_detail(err, "%s: %s", type ? type : "", reason ? reason : "");
    return -1;
}

int es_count(struct es_client *c, const char *index, long long *count, struct pgs_error *err)
{
    long status;
    char *resp, preview[ES_PREVIEW + 1];
    json_t *root, *n;

    if (es_simple(c, "GET", index, "/_count", NULL, 0, "count", &status, &resp, err) < 0)
        return -1;
    root = json_loads(resp, 0, NULL);
    n = json_object_get(root, "count");
    if (!json_is_integer(n)) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "cannot count index \"%s\": no \"count\" in the "
                      "answer", index);
        es_preview(resp, preview, sizeof(preview), ES_PREVIEW);
        pgs_error_detail(err, "%s", preview);
        json_decref(root);
        free(resp);
        return -1;
    }
    *count = (long long)json_integer_value(n);
    json_decref(root);
    free(resp);
    return 0;
}

/* ---- bulk: items ---- */

void es_bulk_init(struct es_bulk *b)
{
    memset(b, 0, sizeof(*b));
}

void es_bulk_add(struct es_bulk *b, enum es_op op, const char *index, const char *id,
                 uint64_t version, const char *doc, size_t doclen, const char *routing,
                 const char *pipeline, void *tag)
{
    struct es_bulk_item *it;

    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->items = xrealloc(b->items, (size_t)b->cap * sizeof(*b->items));
    }
    it = &b->items[b->n++];
    memset(it, 0, sizeof(*it));
    it->op = op;
    it->index = xstrdup(index);
    it->id = xstrdup(id);
    it->version = version;
    it->routing = xstrdup(routing);
    it->pipeline = xstrdup(pipeline);
    it->tag = tag;
    it->cls = ES_ITEM_RETRY; /* not sent yet */
    if (op == ES_OP_INDEX) {
        if (doc == NULL) {
            doc = "{}";
            doclen = 2;
        }
        it->doc = xrealloc(NULL, doclen + 1);
        memcpy(it->doc, doc, doclen);
        it->doc[doclen] = '\0';
        it->doclen = doclen;
        /*
         * NDJSON: a line break inside a document would end it early. Outside
         * strings it is whitespace; inside one it is invalid JSON anyway. So a
         * space in its place never changes a valid document.
         */
        for (size_t i = 0; i < doclen; i++)
            if (it->doc[i] == '\n' || it->doc[i] == '\r')
                it->doc[i] = ' ';
    }
    b->bytes += it->doclen + strlen(index) + strlen(id) + 96 + (routing ? strlen(routing) : 0) +
                (pipeline ? strlen(pipeline) : 0);
}

static void es_item_free(struct es_bulk_item *it)
{
    free(it->index);
    free(it->id);
    free(it->routing);
    free(it->pipeline);
    free(it->doc);
}

void es_bulk_reset(struct es_bulk *b)
{
    for (int i = 0; i < b->n; i++)
        es_item_free(&b->items[i]);
    b->n = 0;
    b->bytes = 0;
}

void es_bulk_deinit(struct es_bulk *b)
{
    es_bulk_reset(b);
    free(b->items);
    memset(b, 0, sizeof(*b));
}

void es_bulk_count(const struct es_bulk *b, int counts[4])
{
    counts[0] = counts[1] = counts[2] = counts[3] = 0;
    for (int i = 0; i < b->n; i++)
        counts[b->items[i].cls]++;
}

/* ---- bulk: pure parts ---- */

static int es_type_in(const char *type, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(type, *list) == 0)
            return 1;
    return 0;
}

enum es_item_class es_classify_item(enum es_op op, int status, const char *error_type)
{
    static const char *const fatal_types[] = {"security_exception", NULL};
    /*
     * The index's state, not the document's: closed, blocked (flood stage,
     * index.blocks.write), gone with auto-create off. Every document would
     * fail the same way: wait for the fix, and never dead-letter.
     */
    static const char *const stall_types[] = {"cluster_block_exception", "index_closed_exception",
                                              "index_not_found_exception", NULL};
    static const char *const retry_types[] = {
        "es_rejected_execution_exception", "rejected_execution_exception",
        "circuit_breaking_exception", "unavailable_shards_exception",
        "process_cluster_event_timeout_exception", "node_not_connected_exception",
        "no_shard_available_action_exception", NULL};
    const char *t = error_type ? error_type : "";

    if (status >= 200 && status < 300)
        return ES_ITEM_OK;
    /* external versions: a 409 means a newer version is already indexed */
    if (status == 409)
        return ES_ITEM_OK;
    /* the document is gone, which is what a delete wants */
    if (status == 404 && op == ES_OP_DELETE)
        return ES_ITEM_OK;
    if (es_type_in(t, stall_types))
        return ES_ITEM_RETRY;
    if (es_type_in(t, fatal_types) || status == 401 || status == 403)
        return ES_ITEM_FATAL;
    if (es_type_in(t, retry_types) || status == 408 || status == 429 || status >= 500)
        return ES_ITEM_RETRY;
    if (status >= 400)
        return ES_ITEM_REJECT; /* mapping, illegal argument, too large, any other 4xx */
    /* no status (missing from the answer), 1xx, 3xx: writes are idempotent, resend */
    return ES_ITEM_RETRY;
}

static void es_action_line(struct buf *o, const struct es_bulk_item *it)
{
    char num[32];

    buf_adds(o, it->op == ES_OP_DELETE ? "{\"delete\":{\"_index\":" : "{\"index\":{\"_index\":");
    buf_add_jstr(o, it->index);
    buf_adds(o, ",\"_id\":");
    buf_add_jstr(o, it->id);
    if (it->version > 0) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)it->version);
        buf_adds(o, ",\"version\":");
        buf_adds(o, num);
        /* equal versions are accepted: a replay of the same commit rewrites it */
        buf_adds(o, ",\"version_type\":\"external_gte\"");
    }
    if (it->routing != NULL) {
        buf_adds(o, ",\"routing\":");
        buf_add_jstr(o, it->routing);
    }
    if (it->pipeline != NULL && it->op == ES_OP_INDEX) {
        buf_adds(o, ",\"pipeline\":");
        buf_add_jstr(o, it->pipeline);
    }
    buf_adds(o, "}}\n");
}

char *es_bulk_body(const struct es_bulk *b, const int *sel, int nsel, size_t *len)
{
    struct buf o = {0};
    int n = sel ? nsel : b->n;

    buf_reserve(&o, b->bytes + 64);
    for (int k = 0; k < n; k++) {
        const struct es_bulk_item *it = &b->items[sel ? sel[k] : k];
        es_action_line(&o, it);
        if (it->op == ES_OP_INDEX) {
            buf_add(&o, it->doc, it->doclen);
            buf_add(&o, "\n", 1);
        }
    }
    if (o.p == NULL)
        buf_reserve(&o, 0);
    *len = o.len;
    return o.p;
}

static void es_item_set(struct es_bulk_item *it, int status, const char *type, const char *reason)
{
    it->status = status;
    es_copy(it->error_type, sizeof(it->error_type), type ? type : "");
    es_copy(it->reason, sizeof(it->reason), reason ? reason : "");
    /* one line: the reason goes to logs and to the dead-letter stream */
    for (char *p = it->reason; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    it->cls = es_classify_item(it->op, status, it->error_type);
    /* a missing ingest pipeline fails every document alike: wait for it, do not dead-letter */
    if (it->cls == ES_ITEM_REJECT && strstr(it->reason, "pipeline with id [") != NULL &&
        strstr(it->reason, "does not exist") != NULL)
        it->cls = ES_ITEM_RETRY;
}

int es_bulk_apply_response(struct es_bulk *b, const int *sel, int nsel, const char *resp,
                           size_t len, struct pgs_error *err)
{
    int n = sel ? nsel : b->n;
    json_t *root = json_loadb(resp, len, 0, NULL);
    json_t *items = json_object_get(root, "items");
    char preview[ES_PREVIEW + 1];
    size_t nitems;

    if (!json_is_array(items)) {
        pgs_error_set(err, PGS_ERR_TRANSIENT, "bulk request: the answer is not a bulk response");
        es_preview(resp, preview, sizeof(preview), len < ES_PREVIEW ? len : ES_PREVIEW);
        pgs_error_detail(err, "%s", preview);
        for (int k = 0; k < n; k++)
            es_item_set(&b->items[sel ? sel[k] : k], 0, "", "no bulk response");
        json_decref(root);
        return -1;
    }
    nitems = json_array_size(items);
    for (int k = 0; k < n; k++) {
        struct es_bulk_item *it = &b->items[sel ? sel[k] : k];
        json_t *wrap = (size_t)k < nitems ? json_array_get(items, (size_t)k) : NULL;
        /* {"index": {...}} or {"delete": {...}}: the one member, whatever its name */
        json_t *res = json_is_object(wrap) ? json_object_iter_value(json_object_iter(wrap)) : NULL;
        char type[128], reason[512];

        if (!json_is_object(res)) {
            es_item_set(it, 0, "", "missing from the bulk response");
            continue;
        }
        es_error_of(res, type, sizeof(type), reason, sizeof(reason));
        es_item_set(it, (int)json_integer_value(json_object_get(res, "status")), type, reason);
    }
    json_decref(root);
    return 0;
}

/* ---- bulk: sending ---- */

static void es_mark(struct es_bulk *b, const int *sel, int n, int status, enum es_item_class cls,
                    const char *type, const char *reason)
{
    for (int k = 0; k < n; k++) {
        struct es_bulk_item *it = &b->items[sel[k]];
        it->status = status;
        it->cls = cls;
        es_copy(it->error_type, sizeof(it->error_type), type);
        es_copy(it->reason, sizeof(it->reason), reason);
    }
}

/* Keep the worse of two request failures in "acc": fatal over transient over none. */
static void es_merge_error(struct pgs_error *acc, const struct pgs_error *e)
{
    if (e->kind == PGS_OK)
        return;
    if (acc->kind == PGS_OK || (e->kind == PGS_ERR_FATAL && acc->kind != PGS_ERR_FATAL))
        *acc = *e;
}

/*
 * Send the items "sel[0..n)" in one request and classify them. A 413 (body
 * too large) or a 400 for the whole request (one line the engine cannot
 * read) splits the items in halves and sends each, down to one item, which
 * is then rejected with the engine's reason.
 */
#define BULK_FILTER "filter_path=errors,items.*.status,items.*.error"

static int es_bulk_send_sel(struct es_client *c, struct es_bulk *b, const int *sel, int n,
                            struct pgs_error *err)
{
    char *body, *resp;
    size_t len;
    long status;
    int rc;

    if (n == 0)
        return 0;
    body = es_bulk_body(b, sel, n, &len);
    double t0 = es_now();
    /*
     * filter_path: a 10,000-item answer shrinks to what we read. timeout: an
     * item for a shard without a primary answers 503 after it, and is retried.
     */
    char path[128];
    if (c->bulk_timeout_s > 0)
        snprintf(path, sizeof(path), "/_bulk?timeout=%ds&%s", c->bulk_timeout_s, BULK_FILTER);
    else
        snprintf(path, sizeof(path), "/_bulk?%s", BULK_FILTER);
    rc = es_request(c, "POST", path, body, len, "application/x-ndjson", &status, &resp, err);
    free(body);
    if (c->hooks.bulk_request)
        c->hooks.bulk_request(c->hooks.arg, es_now() - t0, rc < 0 ? 0 : status);
    if (rc < 0) {
        es_mark(b, sel, n, 0, ES_ITEM_RETRY, "transport", err->detail[0] ? err->detail : err->msg);
        return -1;
    }
    if (status >= 200 && status < 300) {
        rc = es_bulk_apply_response(b, sel, n, resp, strlen(resp), err);
        if (rc < 0)
            snprintf(err->msg, sizeof(err->msg),
                     "POST %.300s/_bulk: the answer (HTTP %ld) is not a bulk response", c->safe_url,
                     status);
        free(resp);
        return rc;
    }
    if (status == 413 || status == 400) {
        char type[128] = "", reason[512] = "";
        json_t *root = json_loads(resp, 0, NULL);
        if (root != NULL)
            es_error_of(root, type, sizeof(type), reason, sizeof(reason));
        json_decref(root);
        free(resp);
        if (n == 1) {
            if (status == 413)
                snprintf(reason, sizeof(reason),
                         "document too large for one bulk request (%zu bytes in the request)",
                         len);
            es_mark(b, sel, 1, (int)status, ES_ITEM_REJECT,
                    type[0] ? type : (status == 413 ? "request_entity_too_large" : "bad_request"),
                    reason[0] ? reason : "the engine refused the request");
            return 0;
        }
        struct pgs_error e1, e2;
        int h = n / 2;
        pgs_error_clear(&e1);
        pgs_error_clear(&e2);
        int r1 = es_bulk_send_sel(c, b, sel, h, &e1);
        int r2 = es_bulk_send_sel(c, b, sel + h, n - h, &e2);
        if (r1 == 0 && r2 == 0)
            return 0;
        pgs_error_clear(err);
        es_merge_error(err, &e1);
        es_merge_error(err, &e2);
        return -1;
    }
    es_status_error(c, status, resp, PGS_ERR_FATAL, "bulk request", err);
    free(resp);
    es_mark(b, sel, n, (int)status, err->kind == PGS_ERR_FATAL ? ES_ITEM_FATAL : ES_ITEM_RETRY,
            "request", err->msg);
    return -1;
}

int es_bulk_send(struct es_client *c, struct es_bulk *b, struct pgs_error *err)
{
    int *sel, rc;

    pgs_error_clear(err);
    if (b->n == 0)
        return 0;
    sel = xrealloc(NULL, (size_t)b->n * sizeof(*sel));
    for (int i = 0; i < b->n; i++)
        sel[i] = i;
    rc = es_bulk_send_sel(c, b, sel, b->n, err);
    free(sel);
    return rc;
}

/* Sleep "ms", in slices, returning early (1) when "stop" is set. */
static int es_sleep(struct es_client *c, long ms, volatile sig_atomic_t *stop)
{
    while (ms > 0) {
        long slice = ms < 50 ? ms : 50;
        struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
        if (c->hooks.waiting)
            c->hooks.waiting(c->hooks.arg);
        if (stop != NULL && *stop)
            return 1;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            if (stop != NULL && *stop)
                return 1;
        ms -= slice;
    }
    return stop != NULL && *stop;
}

/* Quote-free text for a key="value" log pair. */
static const char *es_logsafe(const char *s, char *out, size_t len)
{
    size_t i;

    for (i = 0; s[i] && i + 1 < len; i++)
        out[i] = (s[i] == '"' || s[i] == '\\' || (unsigned char)s[i] < 0x20) ? '\'' : s[i];
    out[i] = '\0';
    return out;
}

/* The indices of the items still to send, into "sel"; returns how many. */
static int es_bulk_pending(const struct es_bulk *b, int *sel)
{
    int nsel = 0;

    /* resend only what still needs it: never an ok item twice */
    for (int i = 0; i < b->n; i++)
        if (b->items[i].cls == ES_ITEM_RETRY || b->items[i].cls == ES_ITEM_FATAL)
            sel[nsel++] = i;
    return nsel;
}

/*
 * One line for the logs and the hooks on why a round failed: the request's
 * error "e", else the first failing item's (a fatal one when there is one).
 */
static void es_bulk_describe_failure(const struct es_bulk *b, const int *counts,
                                     const struct pgs_error *e, char *text, size_t len)
{
    const struct es_bulk_item *bad = NULL;

    for (int i = 0; i < b->n && bad == NULL; i++)
        if (b->items[i].cls == (counts[ES_ITEM_FATAL] ? ES_ITEM_FATAL : ES_ITEM_RETRY))
            bad = &b->items[i];
    if (e->kind != PGS_OK && (counts[ES_ITEM_FATAL] == 0 || e->kind == PGS_ERR_FATAL))
        pgs_error_str(e, text, len);
    else
        snprintf(text, len, "%s \"%s\" in index \"%s\": %s%s%s (HTTP %d)",
                 bad->op == ES_OP_DELETE ? "delete of" : "write of", bad->id, bad->index,
                 bad->error_type[0] ? bad->error_type : "error", bad->reason[0] ? ": " : "",
                 bad->reason, bad->status);
}

int es_bulk_flush(struct es_client *c, struct es_bulk *b, volatile sig_atomic_t *stop,
                  struct pgs_error *err)
{
    long delay = ES_BACKOFF_FIRST_MS;
    int *sel, nsel, rounds = 0, fatal_rounds = 0, counts[4];
    char text[1400], safe[1400];
    struct pgs_error e;

    pgs_error_clear(err);
    if (b->n == 0)
        return 0;
    sel = xrealloc(NULL, (size_t)b->n * sizeof(*sel));
    for (int i = 0; i < b->n; i++) {
        b->items[i].cls = ES_ITEM_RETRY;
        b->items[i].status = 0;
        b->items[i].error_type[0] = b->items[i].reason[0] = '\0';
    }
    for (;;) {
        nsel = es_bulk_pending(b, sel);
        if (nsel == 0)
            break;
        pgs_error_clear(&e);
        rounds++;
        (void)es_bulk_send_sel(c, b, sel, nsel, &e);
        es_bulk_count(b, counts);
        if (counts[ES_ITEM_RETRY] == 0 && counts[ES_ITEM_FATAL] == 0)
            break;

        es_bulk_describe_failure(b, counts, &e, text, sizeof(text));

        if (counts[ES_ITEM_FATAL] > 0 && ++fatal_rounds >= ES_FATAL_ROUNDS) {
            if (e.kind == PGS_ERR_FATAL) {
                *err = e;
            } else {
                pgs_error_set(err, PGS_ERR_FATAL, "the search engine at %s refuses writes: %s",
                              c->safe_url, text);
            }
            pgs_log(LOG_ERROR, "search engine bulk failed for good", "url=%s items=%d error=\"%s\"",
                    c->safe_url, counts[ES_ITEM_FATAL], es_logsafe(text, safe, sizeof(safe)));
            c->failing = 1;
            free(sel);
            return -1;
        }
        if (!c->failing) {
            c->failing = 1;
            pgs_log(LOG_WARN, "search engine bulk failing, retrying", "url=%s items=%d error=\"%s\"",
                    c->safe_url, counts[ES_ITEM_RETRY] + counts[ES_ITEM_FATAL],
                    es_logsafe(text, safe, sizeof(safe)));
        }
        if (c->hooks.bulk_retry)
            c->hooks.bulk_retry(c->hooks.arg, counts[ES_ITEM_RETRY] + counts[ES_ITEM_FATAL], text);
        /* full jitter: anywhere in [0, delay], so that many consumers do not retry in step */
        if (es_sleep(c, (long)(es_rand(c) % (uint64_t)(delay + 1)), stop)) {
            pgs_error_set(err, PGS_ERR_TRANSIENT, "bulk request to %s stopped while retrying",
                          c->safe_url);
            pgs_error_detail(err, "%s", text);
            free(sel);
            return -1;
        }
        delay = delay * 2 > ES_BACKOFF_MAX_MS ? ES_BACKOFF_MAX_MS : delay * 2;
    }
    free(sel);
    if (c->failing) {
        c->failing = 0;
        pgs_log(LOG_INFO, "search engine bulk recovered", "url=%s attempts=%d", c->safe_url, rounds);
    }
    return 0;
}
