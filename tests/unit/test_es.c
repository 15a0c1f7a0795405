/*
 * test_es.c - the pure parts of the search engine client: bulk item
 * classification, reading sample bulk responses, the NDJSON body with its
 * JSON escaping, and the gzip compressor. No server needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "es.h"

/* ---- classification table ---- */

static const struct {
    enum es_op op;
    int status;
    const char *type;
    enum es_item_class want;
} class_table[] = {
    {ES_OP_INDEX, 200, NULL, ES_ITEM_OK},
    {ES_OP_INDEX, 201, "", ES_ITEM_OK},
    {ES_OP_DELETE, 200, NULL, ES_ITEM_OK},
    {ES_OP_INDEX, 409, "version_conflict_engine_exception", ES_ITEM_OK},
    {ES_OP_DELETE, 409, "version_conflict_engine_exception", ES_ITEM_OK},
    {ES_OP_DELETE, 404, NULL, ES_ITEM_OK},
    {ES_OP_DELETE, 404, "index_not_found_exception", ES_ITEM_OK},
    {ES_OP_INDEX, 404, "index_not_found_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 429, "es_rejected_execution_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 429, "circuit_breaking_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 503, "unavailable_shards_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 502, NULL, ES_ITEM_RETRY},
    {ES_OP_INDEX, 504, NULL, ES_ITEM_RETRY},
    {ES_OP_INDEX, 500, "some_internal_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 0, NULL, ES_ITEM_RETRY},
    {ES_OP_INDEX, 401, "security_exception", ES_ITEM_FATAL},
    {ES_OP_INDEX, 403, NULL, ES_ITEM_FATAL},
    {ES_OP_INDEX, 403, "cluster_block_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 429, "cluster_block_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 400, "index_closed_exception", ES_ITEM_RETRY},
    {ES_OP_DELETE, 400, "index_closed_exception", ES_ITEM_RETRY},
    {ES_OP_INDEX, 400, "mapper_parsing_exception", ES_ITEM_REJECT},
    {ES_OP_INDEX, 400, "strict_dynamic_mapping_exception", ES_ITEM_REJECT},
    {ES_OP_INDEX, 400, "illegal_argument_exception", ES_ITEM_REJECT},
    {ES_OP_INDEX, 400, "document_parsing_exception", ES_ITEM_REJECT},
    {ES_OP_INDEX, 413, NULL, ES_ITEM_REJECT},
    {ES_OP_INDEX, 422, "something_new_exception", ES_ITEM_REJECT},
};

static void test_classify_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(class_table) / sizeof(class_table[0]); i++) {
        enum es_item_class got =
            es_classify_item(class_table[i].op, class_table[i].status, class_table[i].type);
        if (got != class_table[i].want)
            fail_msg("row %zu: op=%d status=%d type=%s: got %d, want %d", i, class_table[i].op,
                     class_table[i].status, class_table[i].type ? class_table[i].type : "(null)",
                     got, class_table[i].want);
    }
}

/* ---- reading a bulk response ---- */

static void add_sample_items(struct es_bulk *b)
{
    es_bulk_add(b, ES_OP_INDEX, "book", "1", 10, "{\"t\":1}", 7, NULL, NULL, NULL);
    es_bulk_add(b, ES_OP_INDEX, "book", "2", 5, "{\"t\":2}", 7, NULL, NULL, NULL);
    es_bulk_add(b, ES_OP_DELETE, "book", "3", 7, NULL, 0, NULL, NULL, NULL);
    es_bulk_add(b, ES_OP_INDEX, "book", "4", 11, "{\"t\":4}", 7, NULL, NULL, NULL);
    es_bulk_add(b, ES_OP_INDEX, "book", "5", 12, "{\"t\":\"x\"}", 9, NULL, NULL, NULL);
    es_bulk_add(b, ES_OP_INDEX, "book", "6", 13, "{\"t\":6}", 7, NULL, NULL, NULL);
}

static const char mixed_response[] =
    "{\"took\":3,\"errors\":true,\"items\":["
    "{\"index\":{\"_index\":\"book\",\"_id\":\"1\",\"_version\":10,\"result\":\"created\","
    "\"status\":201}},"
    "{\"index\":{\"_index\":\"book\",\"_id\":\"2\",\"status\":409,\"error\":{\"type\":"
    "\"version_conflict_engine_exception\",\"reason\":\"[2]: version conflict, current version "
    "[9] is higher than the one provided [5]\"}}},"
    "{\"delete\":{\"_index\":\"book\",\"_id\":\"3\",\"result\":\"not_found\",\"status\":404}},"
    "{\"index\":{\"_index\":\"book\",\"_id\":\"4\",\"status\":429,\"error\":{\"type\":"
    "\"es_rejected_execution_exception\",\"reason\":\"rejected execution of coordinating "
    "operation\"}}},"
    "{\"index\":{\"_index\":\"book\",\"_id\":\"5\",\"status\":400,\"error\":{\"type\":"
    "\"mapper_parsing_exception\",\"reason\":\"failed to parse field [t] of type [long]\","
    "\"caused_by\":{\"type\":\"number_format_exception\",\"reason\":\"For input string: "
    "\\\"x\\\"\"}}}},"
    "{\"index\":{\"_index\":\"book\",\"_id\":\"6\",\"status\":401,\"error\":{\"type\":"
    "\"security_exception\",\"reason\":\"missing authentication credentials\"}}}"
    "]}";

static void test_apply_mixed_response(void **state)
{
    struct es_bulk b;
    struct pgs_error err;
    int counts[4];

    (void)state;
    es_bulk_init(&b);
    add_sample_items(&b);
    pgs_error_clear(&err);
    assert_int_equal(es_bulk_apply_response(&b, NULL, 0, mixed_response,
                                            strlen(mixed_response), &err),
                     0);
    assert_int_equal(b.items[0].cls, ES_ITEM_OK);
    assert_int_equal(b.items[0].status, 201);
    assert_int_equal(b.items[1].cls, ES_ITEM_OK);
    assert_string_equal(b.items[1].error_type, "version_conflict_engine_exception");
    assert_int_equal(b.items[2].cls, ES_ITEM_OK);
    assert_int_equal(b.items[2].status, 404);
    assert_int_equal(b.items[3].cls, ES_ITEM_RETRY);
    assert_int_equal(b.items[4].cls, ES_ITEM_REJECT);
    assert_string_equal(b.items[4].error_type, "mapper_parsing_exception");
    /* the reason keeps the engine's words and the cause */
    assert_non_null(strstr(b.items[4].reason, "failed to parse field [t]"));
    assert_non_null(strstr(b.items[4].reason, "number_format_exception"));
    assert_int_equal(b.items[5].cls, ES_ITEM_FATAL);
    es_bulk_count(&b, counts);
    assert_int_equal(counts[ES_ITEM_OK], 3);
    assert_int_equal(counts[ES_ITEM_RETRY], 1);
    assert_int_equal(counts[ES_ITEM_REJECT], 1);
    assert_int_equal(counts[ES_ITEM_FATAL], 1);
    es_bulk_deinit(&b);
}

/* A retry round sends a subset: the answer's items map to the selected ones, in order. */
static void test_apply_response_to_subset(void **state)
{
    static const char resp[] = "{\"errors\":false,\"items\":[{\"index\":{\"status\":200}},"
                               "{\"index\":{\"status\":503,\"error\":{\"type\":"
                               "\"unavailable_shards_exception\",\"reason\":\"primary shard is "
                               "not active\"}}}]}";
    struct es_bulk b;
    struct pgs_error err;
    int sel[2] = {3, 5};

    (void)state;
    es_bulk_init(&b);
    add_sample_items(&b);
    for (int i = 0; i < b.n; i++)
        b.items[i].cls = ES_ITEM_OK;
    assert_int_equal(es_bulk_apply_response(&b, sel, 2, resp, strlen(resp), &err), 0);
    assert_int_equal(b.items[3].cls, ES_ITEM_OK);
    assert_int_equal(b.items[5].cls, ES_ITEM_RETRY);
    assert_int_equal(b.items[5].status, 503);
    assert_int_equal(b.items[4].cls, ES_ITEM_OK); /* untouched */
    es_bulk_deinit(&b);
}

static void test_apply_short_response_retries_missing(void **state)
{
    static const char resp[] = "{\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}";
    struct es_bulk b;
    struct pgs_error err;

    (void)state;
    es_bulk_init(&b);
    add_sample_items(&b);
    assert_int_equal(es_bulk_apply_response(&b, NULL, 0, resp, strlen(resp), &err), 0);
    assert_int_equal(b.items[0].cls, ES_ITEM_OK);
    for (int i = 1; i < b.n; i++)
        assert_int_equal(b.items[i].cls, ES_ITEM_RETRY);
    es_bulk_deinit(&b);
}

static void test_apply_html_is_transient_with_preview(void **state)
{
    char html[600];
    struct es_bulk b;
    struct pgs_error err;

    (void)state;
    memset(html, 'x', sizeof(html));
    memcpy(html, "<html><body>502 Bad Gateway</body>", 34);
    html[sizeof(html) - 1] = '\0';
    es_bulk_init(&b);
    add_sample_items(&b);
    pgs_error_clear(&err);
    assert_int_equal(es_bulk_apply_response(&b, NULL, 0, html, strlen(html), &err), -1);
    assert_int_equal(err.kind, PGS_ERR_TRANSIENT);
    assert_non_null(strstr(err.detail, "502 Bad Gateway"));
    assert_int_equal(strlen(err.detail), 200);
    for (int i = 0; i < b.n; i++)
        assert_int_equal(b.items[i].cls, ES_ITEM_RETRY);
    es_bulk_deinit(&b);
}

/* ---- the body ---- */

static void test_body_lines(void **state)
{
    struct es_bulk b;
    size_t len;
    char *body;

    (void)state;
    es_bulk_init(&b);
    es_bulk_add(&b, ES_OP_INDEX, "book", "9788374950978", 123, "{\"title\":\"x\"}", 13, "x", "p",
                NULL);
    es_bulk_add(&b, ES_OP_DELETE, "book", "42", 124, NULL, 0, NULL, "p", NULL);
    es_bulk_add(&b, ES_OP_INDEX, "book", "7", 0, "{}", 2, NULL, NULL, NULL);
    body = es_bulk_body(&b, NULL, 0, &len);
    assert_int_equal(len, strlen(body));
    assert_string_equal(body,
                        "{\"index\":{\"_index\":\"book\",\"_id\":\"9788374950978\",\"version\":123,"
                        "\"version_type\":\"external_gte\",\"routing\":\"x\",\"pipeline\":\"p\"}}\n"
                        "{\"title\":\"x\"}\n"
                        "{\"delete\":{\"_index\":\"book\",\"_id\":\"42\",\"version\":124,"
                        "\"version_type\":\"external_gte\"}}\n"
                        "{\"index\":{\"_index\":\"book\",\"_id\":\"7\"}}\n"
                        "{}\n");
    free(body);

    int sel[1] = {1};
    body = es_bulk_body(&b, sel, 1, &len);
    assert_string_equal(body, "{\"delete\":{\"_index\":\"book\",\"_id\":\"42\",\"version\":124,"
                              "\"version_type\":\"external_gte\"}}\n");
    free(body);
    es_bulk_deinit(&b);
}

/* Every line of the body is JSON, and ids with quotes, backslashes and controls survive. */
static void test_body_escapes_ids(void **state)
{
    static const char *ids[] = {"a\"b", "back\\slash", "new\nline", "tab\there", "\x01\x1f",
                                "caf\xc3\xa9", "{\"index\":{}}"};
    const size_t nids = sizeof(ids) / sizeof(ids[0]);
    struct es_bulk b;
    size_t len;
    char *body, *line, *save = NULL;

    (void)state;
    es_bulk_init(&b);
    for (size_t i = 0; i < nids; i++)
        es_bulk_add(&b, ES_OP_DELETE, "in\"dex", ids[i], 0, NULL, 0, "r\\", NULL, NULL);
    body = es_bulk_body(&b, NULL, 0, &len);
    assert_true(len > 0 && body[len - 1] == '\n');
    size_t i = 0;
    for (line = strtok_r(body, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (j == NULL)
            fail_msg("line %zu is not JSON: %s (%s)", i, line, jerr.text);
        json_t *d = json_object_get(j, "delete");
        assert_string_equal(json_string_value(json_object_get(d, "_id")), ids[i]);
        assert_string_equal(json_string_value(json_object_get(d, "_index")), "in\"dex");
        assert_string_equal(json_string_value(json_object_get(d, "routing")), "r\\");
        json_decref(j);
        i++;
    }
    assert_int_equal(i, nids);
    free(body);
    es_bulk_deinit(&b);
}

/* A pretty-printed document must not break the NDJSON framing. */
static void test_body_flattens_newlines_in_docs(void **state)
{
    static const char doc[] = "{\n  \"a\": 1,\r\n  \"b\": \"x\"\n}";
    struct es_bulk b;
    size_t len;
    char *body;
    int lines = 0;

    (void)state;
    es_bulk_init(&b);
    es_bulk_add(&b, ES_OP_INDEX, "i", "1", 1, doc, strlen(doc), NULL, NULL, NULL);
    body = es_bulk_body(&b, NULL, 0, &len);
    for (size_t k = 0; k < len; k++)
        lines += body[k] == '\n';
    assert_int_equal(lines, 2);
    json_t *j = json_loads(strchr(body, '\n') + 1, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
    json_decref(j);
    free(body);
    es_bulk_deinit(&b);
}

static void test_reset_keeps_memory(void **state)
{
    struct es_bulk b;

    (void)state;
    es_bulk_init(&b);
    for (int i = 0; i < 100; i++)
        es_bulk_add(&b, ES_OP_INDEX, "i", "1", 1, "{}", 2, NULL, NULL, NULL);
    struct es_bulk_item *items = b.items;
    int cap = b.cap;
    assert_true(b.bytes > 0);
    es_bulk_reset(&b);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.bytes, 0);
    assert_ptr_equal(b.items, items);
    assert_int_equal(b.cap, cap);
    es_bulk_add(&b, ES_OP_INDEX, "i", "2", 1, "{}", 2, NULL, NULL, NULL);
    assert_string_equal(b.items[0].id, "2");
    es_bulk_deinit(&b);
    assert_null(b.items);
}

/* ---- gzip ---- */

static void test_gzip_round_trip(void **state)
{
    struct pgs_error err;
    size_t n = 100000, zlen;
    char *in = malloc(n), *z, *out = malloc(n + 1);
    z_stream zs;

    (void)state;
    for (size_t i = 0; i < n; i++)
        in[i] = (char)("{\"title\":\"abc\"}\n"[i % 16]);
    assert_int_equal(es_gzip(in, n, &z, &zlen, &err), 0);
    assert_true(zlen < n / 10);
    assert_int_equal((unsigned char)z[0], 0x1f); /* gzip magic */
    assert_int_equal((unsigned char)z[1], 0x8b);
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 16 + 15), Z_OK);
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)zlen;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)(n + 1);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, n);
    assert_memory_equal(in, out, n);
    inflateEnd(&zs);
    free(in);
    free(z);
    free(out);
}

static void test_gzip_empty(void **state)
{
    struct pgs_error err;
    size_t zlen;
    char *z;

    (void)state;
    assert_int_equal(es_gzip("", 0, &z, &zlen, &err), 0);
    assert_true(zlen >= 18); /* header and trailer */
    free(z);
}

/* ---- client construction (no request is made) ---- */

static void test_client_needs_http_url(void **state)
{
    struct es_config cfg = {0};
    struct pgs_error err;

    (void)state;
    pgs_error_clear(&err);
    assert_null(es_client_new(&cfg, &err));
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    cfg.url = "ftp://user:secret@host";
    assert_null(es_client_new(&cfg, &err));
    assert_int_equal(err.kind, PGS_ERR_USAGE);
    assert_null(strstr(err.msg, "secret")); /* never a password in a message */
    cfg.url = "http://127.0.0.1:9200/";
    struct es_client *c = es_client_new(&cfg, &err);
    assert_non_null(c);
    es_client_free(c);
}

/* A refused connection is transient, names the redacted URL, and hides the password. */
static void test_refused_connection_is_transient(void **state)
{
    struct es_config cfg = {0};
    struct pgs_error err;
    struct es_bulk b;
    long status;
    char *resp;

    (void)state;
    cfg.url = "http://elastic:hunter2@127.0.0.1:1"; /* port 1: nobody listens */
    cfg.verify_tls = 1;
    struct es_client *c = es_client_new(&cfg, &err);
    assert_non_null(c);
    assert_int_equal(es_request(c, "GET", "/", NULL, 0, NULL, &status, &resp, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_TRANSIENT);
    assert_null(strstr(err.msg, "hunter2"));
    assert_null(strstr(err.detail, "hunter2"));
    assert_non_null(strstr(err.msg, "***@127.0.0.1:1"));

    /* es_bulk_flush with "stop" already set: one try, then a transient error */
    volatile sig_atomic_t stop = 1;
    es_bulk_init(&b);
    es_bulk_add(&b, ES_OP_INDEX, "i", "1", 1, "{}", 2, NULL, NULL, NULL);
    assert_int_equal(es_bulk_flush(c, &b, &stop, &err), -1);
    assert_int_equal(err.kind, PGS_ERR_TRANSIENT);
    assert_int_equal(b.items[0].cls, ES_ITEM_RETRY);
    assert_null(strstr(err.msg, "hunter2"));
    es_bulk_deinit(&b);
    es_client_free(c);
}

/* A missing ingest pipeline fails every document alike: retried, never dead-lettered. */
static void test_missing_pipeline_is_retried(void **state)
{
    struct es_bulk b;
    struct pgs_error err;
    (void)state;
    static const char resp[] =
        "{\"errors\":true,\"items\":[{\"index\":{\"_index\":\"book\",\"_id\":\"1\","
        "\"status\":400,\"error\":{\"type\":\"illegal_argument_exception\",\"reason\":"
        "\"pipeline with id [books] does not exist\"}}},{\"index\":{\"_index\":\"book\","
        "\"_id\":\"2\",\"status\":400,\"error\":{\"type\":\"illegal_argument_exception\","
        "\"reason\":\"field [x] is not a number\"}}}]}";
    es_bulk_init(&b);
    es_bulk_add(&b, ES_OP_INDEX, "book", "1", 1, "{}", 2, NULL, "books", NULL);
    es_bulk_add(&b, ES_OP_INDEX, "book", "2", 1, "{}", 2, NULL, "books", NULL);
    pgs_error_clear(&err);
    assert_int_equal(es_bulk_apply_response(&b, NULL, 0, resp, strlen(resp), &err), 0);
    assert_int_equal(b.items[0].cls, ES_ITEM_RETRY);
    assert_int_equal(b.items[1].cls, ES_ITEM_REJECT);
    es_bulk_deinit(&b);
}

/* A search that left out a shard is an error naming the index, the count and the reason. */
static void test_search_complete(void **state)
{
    struct pgs_error err;
    (void)state;
    json_t *all = json_loads("{\"_shards\":{\"total\":3,\"successful\":3,\"skipped\":0,"
                             "\"failed\":0},\"hits\":{\"hits\":[]}}", 0, NULL);
    json_t *part = json_loads(
        "{\"_shards\":{\"total\":3,\"successful\":2,\"failed\":1,\"failures\":[{\"shard\":1,"
        "\"index\":\"books\",\"reason\":{\"type\":\"no_shard_available_action_exception\","
        "\"reason\":\"No shard available\"}}]},\"hits\":{\"hits\":[]}}", 0, NULL);
    /* an unassigned shard is neither successful nor counted as failed */
    json_t *missing = json_loads("{\"_shards\":{\"total\":3,\"successful\":2,\"failed\":0}}",
                                 0, NULL);
    json_t *none = json_loads("{\"hits\":{\"hits\":[]}}", 0, NULL);
    assert_non_null(all);
    assert_non_null(part);

    pgs_error_clear(&err);
    assert_int_equal(es_search_complete(all, "books", &err), 0);
    assert_int_equal(es_search_complete(none, "books", &err), 0);
    assert_int_equal(es_search_complete(part, "books", &err), -1);
    assert_int_equal(err.kind, PGS_ERR_TRANSIENT);
    assert_non_null(strstr(err.msg, "\"books\": 1 of 3 shards"));
    assert_non_null(strstr(err.detail, "no_shard_available_action_exception"));
    pgs_error_clear(&err);
    assert_int_equal(es_search_complete(missing, "books", &err), -1);
    json_decref(all);
    json_decref(part);
    json_decref(missing);
    json_decref(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_apply_mixed_response),
        cmocka_unit_test(test_apply_response_to_subset),
        cmocka_unit_test(test_apply_short_response_retries_missing),
        cmocka_unit_test(test_apply_html_is_transient_with_preview),
        cmocka_unit_test(test_body_lines),
        cmocka_unit_test(test_body_escapes_ids),
        cmocka_unit_test(test_body_flattens_newlines_in_docs),
        cmocka_unit_test(test_reset_keeps_memory),
        cmocka_unit_test(test_gzip_round_trip),
        cmocka_unit_test(test_gzip_empty),
        cmocka_unit_test(test_client_needs_http_url),
        cmocka_unit_test(test_refused_connection_is_transient),
        cmocka_unit_test(test_search_complete),
        cmocka_unit_test(test_missing_pipeline_is_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
