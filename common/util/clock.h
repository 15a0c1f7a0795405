/*
 * clock.h - time for intervals and retries: a monotonic clock in seconds,
 * and the exponential backoff with jitter that every reconnecting loop uses
 * (a wall-clock step must not stretch or skip a retry).
 */
#ifndef PGS_CLOCK_H
#define PGS_CLOCK_H

/* Seconds on the monotonic clock: for intervals only, never a date. */
double clock_now_s(void);

/*
 * Delays of "first" seconds, doubled after each failure up to "max", each
 * taken at random in [delay/2, delay] so that many processes retrying the
 * same server do not retry in step. backoff_reset() after a success.
 */
struct backoff {
    double first, max, next;
};
void backoff_init(struct backoff *b, double first, double max);
/* The delay to wait now, and the next one doubled. */
double backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);

#endif
