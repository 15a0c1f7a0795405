/*
 * rconn-tls.c - the cost of TLS on one rconn connection: commands/s of PING
 * pipelined 100 at a time and of SET one at a time, plain against TLS on the
 * same redis-server, alternating, the median of the rounds. Driven by
 * bench/rconn-tls.sh, which starts the server.
 *
 *   rconn-tls PLAIN_PORT TLS_PORT CA_FILE [SECONDS_PER_ROUND [ROUNDS]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rconn.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Commands per second for "secs": "batch" PINGs per round trip, or (batch 0) one SET each. */
static double run(struct rconn *c, int batch, double secs)
{
    const char *ping[] = {"PING"}, *set[] = {"SET", "bench:key", "value-of-sixteen"};
    double t0 = now_s(), t;
    long n = 0;
    do {
        int k = batch > 0 ? batch : 1;
        for (int i = 0; i < k; i++)
            if ((batch > 0 ? rconn_append_argv(c, 1, ping, NULL)
                           : rconn_append_argv(c, 3, set, NULL)) < 0)
                return -1;
        for (int i = 0; i < k; i++) {
            redisReply *r = rconn_read(c);
            if (r == NULL) {
                fprintf(stderr, "rconn-tls: %s\n", rconn_errstr(c));
                exit(1);
            }
            freeReplyObject(r);
        }
        n += k;
    } while ((t = now_s() - t0) < secs);
    return (double)n / t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    struct rconn_tls tls = {.enabled = 1, .verify = 1};
    struct pgs_error err;
    struct rconn *c[2];
    double secs = argc > 4 ? atof(argv[4]) : 1.0, res[2][2][16];
    int rounds = argc > 5 ? atoi(argv[5]) : 5;
    const char *names[] = {"PING, pipelined by 100", "SET, one at a time"};

    if (argc < 4 || rounds < 1 || rounds > 16) {
        fprintf(stderr, "usage: rconn-tls PLAIN_PORT TLS_PORT CA_FILE [SECONDS [ROUNDS<=16]]\n");
        return 2;
    }
    tls.ca_file = argv[3];
    for (int m = 0; m < 2; m++) {
        c[m] = rconn_open("127.0.0.1", atoi(argv[1 + m]), m ? &tls : NULL, 2000, &err);
        if (c[m] == NULL) {
            fprintf(stderr, "rconn-tls: %s %s\n", err.msg, err.detail);
            return 1;
        }
    }
    /* alternate plain and TLS so that drift in the machine hits both alike */
    for (int r = 0; r < rounds; r++)
        for (int w = 0; w < 2; w++)
            for (int m = 0; m < 2; m++)
                res[w][m][r] = run(c[m], w == 0 ? 100 : 0, secs);
    printf("%-24s %12s %12s %10s\n", "commands/s (median)", "plain", "TLS", "TLS/plain");
    for (int w = 0; w < 2; w++) {
        double med[2];
        for (int m = 0; m < 2; m++) {
            qsort(res[w][m], (size_t)rounds, sizeof(double), cmp);
            med[m] = res[w][m][rounds / 2];
        }
        printf("%-24s %12.0f %12.0f %10.2f\n", names[w], med[0], med[1], med[1] / med[0]);
    }
    rconn_close(c[0]);
    rconn_close(c[1]);
    return 0;
}
