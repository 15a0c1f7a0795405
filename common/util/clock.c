/* clock.c - the monotonic clock and retry backoff (clock.h). */
#include "clock.h"

#include <stdlib.h>
#include <time.h>

double clock_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void backoff_init(struct backoff *b, double first, double max)
{
    b->first = first;
    b->max = max;
    b->next = first;
}

double backoff_next(struct backoff *b)
{
    double delay = b->next * (0.5 + (double)rand() / RAND_MAX / 2);
    b->next = b->next * 2 > b->max ? b->max : b->next * 2;
    return delay;
}

void backoff_reset(struct backoff *b)
{
    b->next = b->first;
}
