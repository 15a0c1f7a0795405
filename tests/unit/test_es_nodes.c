/*
 * test_es_nodes.c - the engine's node list (common/io/es_nodes.h): parsing
 * ELASTICSEARCH_URL lists, round-robin over the live nodes, backoff for the
 * failing ones, the status line, and the addresses in a /_nodes/http answer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "es_nodes.h"

static struct es_nodes *nodes_ok(const char *list)
{
    struct pgs_error err;
    pgs_error_clear(&err);
    struct es_nodes *n = es_nodes_new(list, "ELASTICSEARCH_URL", &err);
    if (n == NULL)
        fail_msg("%s: %s", list, err.msg);
    return n;
}

static void nodes_bad(const char *list, const char *want)
{
    struct pgs_error err;
    pgs_error_clear(&err);
    assert_null(es_nodes_new(list, "ELASTICSEARCH_URL", &err));
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    if (strstr(err.msg, "ELASTICSEARCH_URL") == NULL || strstr(err.msg, want) == NULL)
        fail_msg("\"%s\": message \"%s\" should name the setting and say \"%s\"", list, err.msg,
                 want);
    assert_null(strstr(err.msg, "s3cret")); /* a password never shows */
}

static const char *pick(struct es_nodes *n, double now)
{
    static char url[ES_NODE_URL_MAX];
    es_nodes_pick(n, now, url, sizeof(url));
    return url;
}

static void test_parse(void **state)
{
    (void)state;
    struct es_nodes *n = nodes_ok("http://127.0.0.1:9200/");
    assert_int_equal(es_nodes_count(n), 1);
    assert_string_equal(pick(n, 0), "http://127.0.0.1:9200");
    es_nodes_unref(n);

    /* spaces, trailing slashes, empty parts and repeats */
    n = nodes_ok(" http://a:9200/ ,https://b:9201,, http://a:9200");
    assert_int_equal(es_nodes_count(n), 2);
    assert_string_equal(pick(n, 0), "http://a:9200");
    assert_string_equal(pick(n, 0), "https://b:9201");
    es_nodes_unref(n);

    nodes_bad("", "no search engine URL");
    nodes_bad(" , ", "no search engine URL");
    nodes_bad("http://a:9200,ftp://b", "\"ftp://b\" must be http://");
    nodes_bad("http://a:9200,localhost:9200", "\"localhost:9200\" must be");
    nodes_bad("http://", "must be http://");
    nodes_bad("http://a:9200,x://elastic:s3cret@b:9200", "must be http://");
}

static void test_round_robin_and_backoff(void **state)
{
    (void)state;
    struct es_nodes *n = nodes_ok("http://a,http://b,http://c");
    char status[1024];

    /* spread over every node */
    assert_string_equal(pick(n, 0), "http://a");
    assert_string_equal(pick(n, 0), "http://b");
    assert_string_equal(pick(n, 0), "http://c");
    assert_string_equal(pick(n, 0), "http://a");
    assert_int_equal(es_nodes_status(n, 0, status, sizeof(status)), 0);
    assert_string_equal(status, "");

    /* b refuses: set aside for 1 s, the others share the work */
    es_nodes_failed(n, 1, 100.0, "Connection refused");
    assert_true(es_nodes_other_live(n, 1, 100.0));
    for (int i = 0; i < 6; i++)
        assert_string_not_equal(pick(n, 100.5), "http://b");
    assert_int_equal(es_nodes_status(n, 100.5, status, sizeof(status)), 1);
    assert_non_null(strstr(status, "2 of 3 search engine nodes up"));
    assert_non_null(strstr(status, "http://b (Connection refused, retry in 0 s)"));

    /* its time is up: a real request tries it again */
    int seen = 0;
    for (int i = 0; i < 3; i++)
        seen |= !strcmp(pick(n, 101.1), "http://b");
    assert_true(seen);
    /* it fails again: 2 s this time, then 4 s; capped at 30 s */
    es_nodes_failed(n, 1, 101.1, "Connection refused");
    for (int i = 0; i < 6; i++)
        assert_string_not_equal(pick(n, 102.5), "http://b");
    es_nodes_failed(n, 1, 103.2, "HTTP 503");
    for (int i = 0; i < 6; i++)
        assert_string_not_equal(pick(n, 107.0), "http://b");
    for (int k = 0; k < 10; k++)
        es_nodes_failed(n, 1, 200.0, "HTTP 503");
    for (int i = 0; i < 6; i++)
        assert_string_not_equal(pick(n, 229.9), "http://b");
    seen = 0;
    for (int i = 0; i < 3; i++)
        seen |= !strcmp(pick(n, 230.1), "http://b");
    assert_true(seen);

    /* it answers: back in the rotation, backoff reset */
    es_nodes_ok(n, 1);
    assert_int_equal(es_nodes_status(n, 231, status, sizeof(status)), 0);
    es_nodes_failed(n, 1, 300.0, "Connection refused");
    seen = 0;
    for (int i = 0; i < 3; i++)
        seen |= !strcmp(pick(n, 301.1), "http://b");
    assert_true(seen);
    es_nodes_unref(n);
}

static void test_all_down(void **state)
{
    (void)state;
    struct es_nodes *n = nodes_ok("http://a,http://b");
    char status[1024];

    es_nodes_failed(n, 0, 10.0, "Connection refused");
    es_nodes_failed(n, 0, 11.0, "Connection refused"); /* a: until 13 */
    es_nodes_failed(n, 1, 10.0, "HTTP 502");           /* b: until 11 */
    assert_false(es_nodes_other_live(n, 0, 10.5));
    /* nothing live: still a node, the one due first */
    assert_string_equal(pick(n, 10.5), "http://b");
    assert_string_equal(pick(n, 10.5), "http://b");
    assert_int_equal(es_nodes_status(n, 10.5, status, sizeof(status)), 2);
    assert_non_null(strstr(status, "0 of 2 search engine nodes up"));

    /* JSON for pgsync-queue */
    json_t *j = es_nodes_json(n, 10.5);
    assert_int_equal(json_array_size(j), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "url")),
                        "http://b");
    assert_true(json_is_false(json_object_get(json_array_get(j, 1), "up")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "error")),
                        "HTTP 502");
    json_decref(j);
    es_nodes_unref(n);
}

static void test_redacts_passwords(void **state)
{
    (void)state;
    struct es_nodes *n = nodes_ok("http://elastic:s3cret@a:9200,http://elastic:s3cret@b:9200");
    char status[1024];

    /* the request goes with the credentials; the status and the JSON never show them */
    assert_string_equal(pick(n, 0), "http://elastic:s3cret@a:9200");
    es_nodes_failed(n, 0, 1.0, "Connection refused");
    es_nodes_status(n, 1.0, status, sizeof(status));
    assert_null(strstr(status, "s3cret"));
    json_t *j = es_nodes_json(n, 1.0);
    char *text = json_dumps(j, 0);
    assert_null(strstr(text, "s3cret"));
    free(text);
    json_decref(j);
    es_nodes_unref(n);
}

static void test_sniff(void **state)
{
    (void)state;
    /* the shape of GET /_nodes/http on OpenSearch 2 and Elasticsearch 7 */
    const char *resp =
        "{\"_nodes\":{\"total\":4},\"cluster_name\":\"c\",\"nodes\":{"
        "\"n1\":{\"name\":\"Node 1\",\"http\":{\"publish_address\":\"127.0.0.1:9201\"}},"
        "\"n2\":{\"name\":\"Node 2\",\"http\":{\"publish_address\":\"es2.local/10.0.0.2:9200\"}},"
        "\"n3\":{\"name\":\"master\"},"
        "\"n4\":{\"http\":{\"publish_address\":\"[::1]:9203\"}}}}";
    char **urls = NULL;
    int count = es_nodes_parse_sniff(resp, "https", &urls);
    assert_int_equal(count, 3);
    assert_string_equal(urls[0], "https://127.0.0.1:9201");
    assert_string_equal(urls[1], "https://10.0.0.2:9200");
    assert_string_equal(urls[2], "https://[::1]:9203");

    /* the seed stays (a load balancer, say), sniffed nodes join; state is kept */
    struct es_nodes *n = nodes_ok("https://seed:9200,https://127.0.0.1:9201");
    es_nodes_failed(n, 1, 5.0, "Connection refused");
    es_nodes_set_sniffed(n, urls, count);
    assert_int_equal(es_nodes_count(n), 4);
    json_t *j = es_nodes_json(n, 5.0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "url")),
                        "https://127.0.0.1:9201");
    assert_true(json_is_false(json_object_get(json_array_get(j, 1), "up")));
    json_decref(j);
    /* a node no longer listed leaves; the seeds never do */
    es_nodes_set_sniffed(n, urls, 1);
    assert_int_equal(es_nodes_count(n), 2);
    for (int i = 0; i < count; i++)
        free(urls[i]);
    free(urls);
    es_nodes_unref(n);

    assert_int_equal(es_nodes_parse_sniff("<html>", "http", &urls), -1);
    free(urls);
    assert_int_equal(es_nodes_parse_sniff("{\"nodes\":{}}", "http", &urls), 0);
    free(urls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),           cmocka_unit_test(test_round_robin_and_backoff),
        cmocka_unit_test(test_all_down),        cmocka_unit_test(test_redacts_passwords),
        cmocka_unit_test(test_sniff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
