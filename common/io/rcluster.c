/* rcluster.c - slots, command keys and redirections of a Redis Cluster. */
#include "rcluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* CRC16-CCITT (XMODEM), the one the Redis Cluster specification names. */
static unsigned crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
        crc &= 0xffff;
    }
    return crc;
}

int rcluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        /* "{}" hashes the whole key, as Redis does */
        if (close != NULL && close > key + from)
            return (int)(crc16(key + from, (size_t)(close - key) - from) & (RCLUSTER_SLOTS - 1));
    }
    return (int)(crc16(key, len) & (RCLUSTER_SLOTS - 1));
}

/* The decimal number at *p up to "\r\n"; -1 when there is none. */
static long long resp_number(const char **p, const char *end)
{
    long long n = 0;
    const char *q = *p;
    if (q >= end || *q < '0' || *q > '9')
        return -1;
    while (q < end && *q >= '0' && *q <= '9') {
        n = n * 10 + (*q - '0');
        if (n > (1LL << 40))
            return -1;
        q++;
    }
    if (end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return -1;
    *p = q + 2;
    return n;
}

int rcluster_resp_args(const char *buf, size_t len, const char **argv, size_t *lens, int max)
{
    const char *p = buf, *end = buf + len;
    if (p >= end || *p++ != '*')
        return -1;
    long long n = resp_number(&p, end);
    if (n < 1)
        return -1;
    for (long long i = 0; i < n; i++) {
        if (p >= end || *p++ != '$')
            return -1;
        long long l = resp_number(&p, end);
        if (l < 0 || end - p < l + 2 || p[l] != '\r' || p[l + 1] != '\n')
            return -1;
        if (i < max) {
            argv[i] = p;
            lens[i] = (size_t)l;
        }
        p += l + 2;
    }
    return (int)(n < max ? n : max);
}

static int arg_is(const char *arg, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

int rcluster_key_index(int argc, const char **argv, const size_t *lens)
{
    static const char *const keyless[] = {"PING", "TIME",  "WAIT",   "INFO",   "ROLE",
                                          "MULTI", "EXEC", "DISCARD", "ASKING", "AUTH",
                                          "SELECT", "CLUSTER", "SCRIPT", "CLIENT", "DBSIZE",
                                          "CONFIG", "HELLO", "READONLY", "READWRITE"};
    if (argc < 1)
        return -1;
    for (size_t i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
        if (arg_is(argv[0], lens[0], keyless[i]))
            return -1;
    if (arg_is(argv[0], lens[0], "XREAD") || arg_is(argv[0], lens[0], "XREADGROUP")) {
        for (int i = 1; i + 1 < argc; i++)
            if (arg_is(argv[i], lens[i], "STREAMS"))
                return i + 1;
        return -1;
    }
    if (arg_is(argv[0], lens[0], "XINFO") || arg_is(argv[0], lens[0], "XGROUP"))
        return argc > 2 ? 2 : -1;
    if (arg_is(argv[0], lens[0], "EVAL") || arg_is(argv[0], lens[0], "EVALSHA")) {
        if (argc < 4)
            return -1;
        char num[24];
        snprintf(num, sizeof(num), "%.*s", (int)(lens[2] < 23 ? lens[2] : 23), argv[2]);
        return atoi(num) > 0 ? 3 : -1;
    }
    return argc > 1 ? 1 : -1;
}

int rcluster_redirect(const char *msg, int *slot, char *host, size_t hlen, int *port)
{
    int kind;
    if (strncmp(msg, "MOVED ", 6) == 0)
        kind = 1;
    else if (strncmp(msg, "ASK ", 4) == 0)
        kind = 2;
    else
        return 0;
    const char *p = strchr(msg, ' ') + 1;
    char *end;
    long s = strtol(p, &end, 10);
    if (end == p || *end != ' ' || s < 0 || s >= RCLUSTER_SLOTS)
        return 0;
    p = end + 1;
    const char *colon = strrchr(p, ':');
    if (colon == NULL)
        return 0;
    long pt = strtol(colon + 1, &end, 10);
    if (pt < 1 || pt > 65535 || (*end && *end != ' ' && *end != '\r' && *end != '\n'))
        return 0;
    size_t hl = (size_t)(colon - p);
    /* "MOVED 3999 :6381": an empty host means the node answering */
    snprintf(host, hlen, "%.*s", (int)hl, p);
    *slot = (int)s;
    *port = (int)pt;
    return kind;
}
