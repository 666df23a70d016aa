/*
 * A minimal test harness: CHECK records a failure with its location and goes on;
 * TEST_MAIN runs the listed test functions and ends with the "N passed, N failed"
 * line CI reads.  A test binary exits non-zero if any check failed.
 */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_checks_failed;
static int test_current_failed;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                                   \
            test_checks_failed++;                                                                                      \
            test_current_failed = 1;                                                                                   \
        }                                                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            test_checks_failed++;                                                                                      \
            test_current_failed = 1;                                                                                   \
        }                                                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                                          \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %.3g)", (double)(a), (double)(b),          \
              (double)(tol))

typedef struct {
    const char *name;
    void (*fn)(void);
} test_case;

#define TEST(fn) {#fn, fn}

static inline int test_run_all(const test_case *tests, int n)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        test_current_failed = 0;
        tests[i].fn();
        if (test_current_failed) {
            failed++;
            fprintf(stderr, "FAIL %s\n", tests[i].name);
        } else {
            passed++;
            printf("ok   %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                                                                 \
    int main(void)                                                                                                     \
    {                                                                                                                  \
        static const test_case tests[] = {__VA_ARGS__};                                                                \
        return test_run_all(tests, (int)(sizeof tests / sizeof tests[0]));                                             \
    }

/* max |a[i] - b[i]| */
static inline double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

/* Deterministic pseudo-random floats in [-1, 1) for test data (xorshift64*). */
static inline float test_randf(unsigned long long *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    unsigned long long r = *state * 2685821657736338717ull;
    return (float)((r >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

#endif
