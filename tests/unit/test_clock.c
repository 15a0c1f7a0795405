/*
 * test_clock.c - the monotonic clock and the retry backoff (common/util/clock.c):
 * each delay lies in [d/2, d], d doubles up to the cap, a reset starts again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "clock.h"

static void test_backoff_doubles_up_to_its_cap_with_jitter(void **state)
{
    static const double want[] = {0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10, 10};
    struct backoff b;

    (void)state;
    srand(7);
    backoff_init(&b, 0.2, 10);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        double d = backoff_next(&b);
        if (d < want[i] / 2 - 1e-9 || d > want[i] + 1e-9)
            fail_msg("delay %zu: %.3f is outside [%.3f, %.3f]", i, d, want[i] / 2, want[i]);
    }
    backoff_reset(&b);
    double d = backoff_next(&b);
    assert_true(d >= 0.1 - 1e-9 && d <= 0.2 + 1e-9);
}

static void test_backoff_delays_are_spread(void **state)
{
    struct backoff b;
    double lo = 1e9, hi = 0;

    (void)state;
    srand(11);
    /* many processes retrying together must not retry in step */
    for (int i = 0; i < 200; i++) {
        backoff_init(&b, 1, 1);
        double d = backoff_next(&b);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo < 0.6);
    assert_true(hi > 0.9);
}

static void test_clock_never_goes_back(void **state)
{
    (void)state;
    double prev = clock_now_s();
    for (int i = 0; i < 100000; i++) {
        double now = clock_now_s();
        if (now < prev)
            fail_msg("the clock went back: %.9f after %.9f", now, prev);
        prev = now;
    }
    assert_true(prev > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_up_to_its_cap_with_jitter),
        cmocka_unit_test(test_backoff_delays_are_spread),
        cmocka_unit_test(test_clock_never_goes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
