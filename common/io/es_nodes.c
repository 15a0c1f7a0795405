/*
 * es_nodes.c - the engine's node list, round-robin over the live nodes,
 * backoff for the ones that fail (es_nodes.h).
 */
#include "es_nodes.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define NODE_BACKOFF_FIRST_S 1.0
#define NODE_BACKOFF_MAX_S   30.0

struct es_node {
    char url[ES_NODE_URL_MAX];
    char safe[ES_NODE_URL_MAX]; /* url with any user:password@ redacted */
    int seed;                   /* given in the settings (kept when sniffing) */
    int failures;               /* in a row; 0 = up */
    double down_until;          /* monotonic; set aside before this */
    char why[160];
};

struct es_nodes {
    pthread_mutex_t mu;
    int refs;
    struct es_node *v;
    int n, cap;
    int next; /* round-robin cursor */
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fputs("pgsync: out of memory\n", stderr);
        abort();
    }
    return p;
}

static int find_url(const struct es_nodes *n, const char *url)
{
    for (int i = 0; i < n->n; i++)
        if (!strcmp(n->v[i].url, url))
            return i;
    return -1;
}

/* Append "url" unless listed; returns its index. */
static int add_url(struct es_nodes *n, const char *url, int seed)
{
    int i = find_url(n, url);
    if (i >= 0) {
        n->v[i].seed |= seed;
        return i;
    }
    if (n->n == n->cap) {
        int cap = n->cap ? n->cap * 2 : 4;
        struct es_node *v = realloc(n->v, (size_t)cap * sizeof(*v));
        if (v == NULL) {
            fputs("pgsync: out of memory\n", stderr);
            abort();
        }
        n->v = v;
        n->cap = cap;
    }
    struct es_node *x = &n->v[n->n];
    memset(x, 0, sizeof(*x));
    snprintf(x->url, sizeof(x->url), "%s", url);
    pgs_redact_url(x->url, x->safe, sizeof(x->safe));
    x->seed = seed;
    return n->n++;
}

struct es_nodes *es_nodes_new(const char *list, const char *setting, struct pgs_error *err)
{
    struct es_nodes *n = xcalloc(1, sizeof(*n));
    const char *p = list ? list : "";

    pthread_mutex_init(&n->mu, NULL);
    n->refs = 1;
    while (*p) {
        char url[ES_NODE_URL_MAX], safe[ES_NODE_URL_MAX];
        size_t len = strcspn(p, ",");
        const char *end = p + len;
        while (p < end && isspace((unsigned char)*p))
            p++;
        while (end > p && (isspace((unsigned char)end[-1]) || end[-1] == '/'))
            end--;
        len = (size_t)(end - p);
        if (len > 0) {
            if (len >= sizeof(url)) {
                pgs_error_set(err, PGS_ERR_USAGE, "%s: a node URL longer than %d characters",
                              setting, ES_NODE_URL_MAX - 1);
                es_nodes_unref(n);
                return NULL;
            }
            memcpy(url, p, len);
            url[len] = '\0';
            const char *host = !strncmp(url, "http://", 7)    ? url + 7
                               : !strncmp(url, "https://", 8) ? url + 8
                                                               : NULL;
            if (host == NULL || *host == '\0' || *host == ':') {
                pgs_error_set(err, PGS_ERR_USAGE,
                              "%s: node \"%s\" must be http://host[:port] or https://host[:port]",
                              setting, pgs_redact_url(url, safe, sizeof(safe)));
                es_nodes_unref(n);
                return NULL;
            }
            add_url(n, url, 1);
        }
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    if (n->n == 0) {
        pgs_error_set(err, PGS_ERR_USAGE, "no search engine URL: set %s", setting);
        es_nodes_unref(n);
        return NULL;
    }
    return n;
}

struct es_nodes *es_nodes_ref(struct es_nodes *n)
{
    pthread_mutex_lock(&n->mu);
    n->refs++;
    pthread_mutex_unlock(&n->mu);
    return n;
}

void es_nodes_unref(struct es_nodes *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->mu);
    int last = --n->refs == 0;
    pthread_mutex_unlock(&n->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&n->mu);
    free(n->v);
    free(n);
}

int es_nodes_count(struct es_nodes *n)
{
    pthread_mutex_lock(&n->mu);
    int count = n->n;
    pthread_mutex_unlock(&n->mu);
    return count;
}

void es_nodes_url(struct es_nodes *n, int i, char *url, size_t len)
{
    pthread_mutex_lock(&n->mu);
    snprintf(url, len, "%s", i >= 0 && i < n->n ? n->v[i].url : "");
    pthread_mutex_unlock(&n->mu);
}

int es_nodes_pick(struct es_nodes *n, double now, char *url, size_t len)
{
    int pick = -1;

    pthread_mutex_lock(&n->mu);
    for (int k = 0; k < n->n && pick < 0; k++) {
        int i = (n->next + k) % n->n;
        if (n->v[i].down_until <= now)
            pick = i;
    }
    if (pick < 0) /* every node set aside: the one due first */
        for (int i = 0; i < n->n; i++)
            if (pick < 0 || n->v[i].down_until < n->v[pick].down_until)
                pick = i;
    n->next = (pick + 1) % n->n;
    snprintf(url, len, "%s", n->v[pick].url);
    pthread_mutex_unlock(&n->mu);
    return pick;
}

int es_nodes_due(struct es_nodes *n, int i, double now)
{
    pthread_mutex_lock(&n->mu);
    int due = i >= 0 && i < n->n && n->v[i].failures > 0 && n->v[i].down_until <= now;
    pthread_mutex_unlock(&n->mu);
    return due;
}

int es_nodes_other_live(struct es_nodes *n, int i, double now)
{
    int live = 0;

    pthread_mutex_lock(&n->mu);
    for (int k = 0; k < n->n && !live; k++)
        live = k != i && n->v[k].down_until <= now;
    pthread_mutex_unlock(&n->mu);
    return live;
}

void es_nodes_failed(struct es_nodes *n, int i, double now, const char *why)
{
    pthread_mutex_lock(&n->mu);
    if (i >= 0 && i < n->n) {
        struct es_node *x = &n->v[i];
        double wait = NODE_BACKOFF_FIRST_S;
        for (int k = 0; k < x->failures && wait < NODE_BACKOFF_MAX_S; k++)
            wait *= 2;
        if (wait > NODE_BACKOFF_MAX_S)
            wait = NODE_BACKOFF_MAX_S;
        if (x->failures == 0 && n->n > 1) /* one node: the caller's own errors say it all */
            pgs_log(LOG_WARN, "search engine node set aside", "url=%s why=\"%s\"", x->safe,
                    why ? why : "");
        x->failures++;
        x->down_until = now + wait;
        snprintf(x->why, sizeof(x->why), "%s", why ? why : "failed");
    }
    pthread_mutex_unlock(&n->mu);
}

void es_nodes_ok(struct es_nodes *n, int i)
{
    pthread_mutex_lock(&n->mu);
    if (i >= 0 && i < n->n && n->v[i].failures > 0) {
        pgs_log(LOG_INFO, "search engine node back", "url=%s failures=%d", n->v[i].safe,
                n->v[i].failures);
        n->v[i].failures = 0;
        n->v[i].down_until = 0;
        n->v[i].why[0] = '\0';
    }
    pthread_mutex_unlock(&n->mu);
}

void es_nodes_set_sniffed(struct es_nodes *n, char **urls, int count)
{
    pthread_mutex_lock(&n->mu);
    /* keep the seeds and the sniffed nodes still there, with what is known of them */
    int w = 0;
    for (int i = 0; i < n->n; i++) {
        int keep = n->v[i].seed;
        for (int k = 0; k < count && !keep; k++)
            keep = !strcmp(n->v[i].url, urls[k]);
        if (keep)
            n->v[w++] = n->v[i];
    }
    n->n = w;
    for (int k = 0; k < count; k++)
        if (urls[k] != NULL && strlen(urls[k]) < ES_NODE_URL_MAX)
            add_url(n, urls[k], 0);
    if (n->next >= n->n)
        n->next = 0;
    pthread_mutex_unlock(&n->mu);
}

int es_nodes_status(struct es_nodes *n, double now, char *buf, size_t len)
{
    int down = 0;
    size_t used;

    pthread_mutex_lock(&n->mu);
    for (int i = 0; i < n->n; i++)
        down += n->v[i].failures > 0;
    buf[0] = '\0';
    if (down > 0) {
        used = (size_t)snprintf(buf, len, "%d of %d search engine nodes up; set aside:",
                                n->n - down, n->n);
        for (int i = 0; i < n->n && used < len; i++) {
            const struct es_node *x = &n->v[i];
            if (x->failures == 0)
                continue;
            double in = x->down_until - now;
            used += (size_t)snprintf(buf + used, len - used, " %s (%s, %s %.0f s)", x->safe,
                                     x->why, in > 0 ? "retry in" : "retry due", in > 0 ? in : 0);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return down;
}

json_t *es_nodes_json(struct es_nodes *n, double now)
{
    json_t *a = json_array();

    pthread_mutex_lock(&n->mu);
    for (int i = 0; i < n->n; i++) {
        const struct es_node *x = &n->v[i];
        double in = x->down_until - now;
        json_t *o = json_pack("{s:s, s:b, s:i}", "url", x->safe, "up", x->failures == 0,
                              "failures", x->failures);
        if (x->failures > 0) {
            json_object_set_new(o, "error", json_string(x->why));
            json_object_set_new(o, "retry_in_s", json_real(in > 0 ? in : 0));
        }
        json_array_append_new(a, o);
    }
    pthread_mutex_unlock(&n->mu);
    return a;
}

int es_nodes_parse_sniff(const char *resp, const char *scheme, char ***urls)
{
    json_t *root = json_loads(resp ? resp : "", 0, NULL);
    json_t *nodes = json_object_get(root, "nodes");
    const char *id;
    json_t *node;
    int count = 0;

    *urls = NULL;
    if (!json_is_object(nodes)) {
        json_decref(root);
        return -1;
    }
    *urls = xcalloc(json_object_size(nodes) + 1, sizeof(char *));
    json_object_foreach(nodes, id, node) {
        const char *addr =
            json_string_value(json_object_get(json_object_get(node, "http"), "publish_address"));
        if (addr == NULL || *addr == '\0')
            continue; /* a node without HTTP (a dedicated master, say) */
        const char *slash = strrchr(addr, '/');
        if (slash != NULL) /* "hostname/10.0.0.1:9200": the address, not the name */
            addr = slash + 1;
        if (*addr == '\0' || strlen(addr) + strlen(scheme) + 4 > ES_NODE_URL_MAX)
            continue;
        size_t sl = strlen(scheme), al = strlen(addr);
        char *u = xcalloc(1, sl + al + 4);
        memcpy(u, scheme, sl);
        memcpy(u + sl, "://", 3);
        memcpy(u + sl + 3, addr, al + 1);
        (*urls)[count++] = u;
    }
    (void)id;
    json_decref(root);
    return count;
}
