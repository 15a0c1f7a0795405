/*
 * test_rcluster.c - the pure part of Redis Cluster routing: key slots (the
 * specification's CRC16 and its hash-tag rule, checked against values
 * CLUSTER KEYSLOT gives), the arguments of a formatted command, which one is
 * the key, and MOVED/ASK redirections. Tests common/io/rcluster.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "rcluster.h"

static int slot(const char *key)
{
    return rcluster_slot(key, strlen(key));
}

static void test_slots_match_redis(void **state)
{
    (void)state;
    /* the specification's check value, and CLUSTER KEYSLOT on redis-server 7.0 */
    assert_int_equal(slot("123456789"), 12739);
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("hello"), 866);
    assert_int_equal(slot(""), 0);
}

static void test_hash_tags(void **state)
{
    (void)state;
    /* every key of an index shares its slot */
    assert_int_equal(slot("pgsync:{book_v1}:changes"), slot("book_v1"));
    assert_int_equal(slot("pgsync:{book_v1}:meta"), slot("pgsync:{book_v1}:loaddone"));
    assert_int_equal(slot("{foo}bar"), slot("foo"));
    /* only the first {...}; an empty one or an unclosed one hashes the whole key */
    assert_int_equal(slot("a{b}{c}"), slot("b"));
    assert_int_equal(slot("{}foo"), rcluster_slot("{}foo", 5));
    assert_int_not_equal(slot("{}foo"), slot("foo"));
    assert_int_equal(slot("foo{"), rcluster_slot("foo{", 4));
    assert_int_equal(slot("x{}{b}"), rcluster_slot("x{}{b}", 6));
    /* binary keys: the length counts, not a NUL */
    assert_int_not_equal(rcluster_slot("a\0b", 3), slot("a"));
}

static void test_resp_args(void **state)
{
    (void)state;
    char *cmd;
    int len = redisFormatCommand(&cmd, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s %s", "g",
                                 "c 1", 10, "pgsync:{b}:changes", ">");
    assert_true(len > 0);
    const char *argv[16];
    size_t lens[16];
    int argc = rcluster_resp_args(cmd, (size_t)len, argv, lens, 16);
    assert_int_equal(argc, 9);
    assert_int_equal(lens[7], strlen("pgsync:{b}:changes"));
    assert_memory_equal(argv[7], "pgsync:{b}:changes", lens[7]);
    assert_int_equal(rcluster_key_index(argc, argv, lens), 7);
    /* truncated or malformed: refused */
    assert_int_equal(rcluster_resp_args(cmd, (size_t)len - 3, argv, lens, 16), -1);
    assert_int_equal(rcluster_resp_args("PING\r\n", 6, argv, lens, 16), -1);
    assert_int_equal(rcluster_resp_args("*1\r\n$5\r\nPING\r\n", 14, argv, lens, 16), -1);
    free(cmd);
    /* a value with CR LF inside is counted by its length */
    const char *av[] = {"SET", "k", "a\r\nb"};
    size_t al[] = {3, 1, 4};
    len = redisFormatCommandArgv(&cmd, 3, av, al);
    assert_int_equal(rcluster_resp_args(cmd, (size_t)len, argv, lens, 16), 3);
    assert_int_equal(lens[2], 4);
    /* more arguments than kept: the first ones */
    assert_int_equal(rcluster_resp_args(cmd, (size_t)len, argv, lens, 2), 2);
    free(cmd);
}

static int key_of(int argc, const char **argv)
{
    size_t lens[16];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return rcluster_key_index(argc, argv, lens);
}

static void test_key_index(void **state)
{
    (void)state;
    const char *xadd[] = {"XADD", "s", "*", "f", "v"};
    const char *xinfo[] = {"XINFO", "GROUPS", "s"};
    const char *xgroup[] = {"xgroup", "CREATE", "s", "g", "0"};
    const char *eval1[] = {"EVAL", "return 1", "1", "k", "a"};
    const char *eval0[] = {"EVAL", "return 1", "0"};
    const char *wait[] = {"WAIT", "1", "100"};
    const char *multi[] = {"MULTI"};
    const char *time[] = {"TIME"};
    const char *xread[] = {"XREAD", "COUNT", "1", "STREAMS", "s", "0"};
    const char *xreadbad[] = {"XREAD", "COUNT", "1"};
    assert_int_equal(key_of(5, xadd), 1);
    assert_int_equal(key_of(3, xinfo), 2);
    assert_int_equal(key_of(5, xgroup), 2);
    assert_int_equal(key_of(5, eval1), 3);
    assert_int_equal(key_of(3, eval0), -1);
    assert_int_equal(key_of(3, wait), -1);
    assert_int_equal(key_of(1, multi), -1);
    assert_int_equal(key_of(1, time), -1);
    assert_int_equal(key_of(6, xread), 4);
    assert_int_equal(key_of(3, xreadbad), -1);
}

static void test_redirects(void **state)
{
    (void)state;
    char host[64];
    int s = -1, port = -1;
    assert_int_equal(rcluster_redirect("MOVED 3999 127.0.0.1:6381", &s, host, sizeof(host), &port),
                     1);
    assert_int_equal(s, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    assert_int_equal(rcluster_redirect("ASK 12182 [::1]:7002", &s, host, sizeof(host), &port), 2);
    assert_int_equal(s, 12182);
    assert_string_equal(host, "[::1]");
    assert_int_equal(port, 7002);
    assert_int_equal(rcluster_redirect("MOVED 1 :7000", &s, host, sizeof(host), &port), 1);
    assert_string_equal(host, "");
    /* not redirections */
    assert_int_equal(rcluster_redirect("ERR unknown command", &s, host, sizeof(host), &port), 0);
    assert_int_equal(rcluster_redirect("MOVED 16384 h:1", &s, host, sizeof(host), &port), 0);
    assert_int_equal(rcluster_redirect("MOVED x h:1", &s, host, sizeof(host), &port), 0);
    assert_int_equal(rcluster_redirect("MOVED 1 h", &s, host, sizeof(host), &port), 0);
    assert_int_equal(rcluster_redirect("MOVED 1 h:0", &s, host, sizeof(host), &port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_match_redis), cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_resp_args),         cmocka_unit_test(test_key_index),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
