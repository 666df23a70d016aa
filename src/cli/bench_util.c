/*
 * Measuring helpers shared by the `tessera bench` suites (see bench.h).
 *
 * CPU time comes from getrusage and covers every thread of the process: on a shared
 * machine the wall clock mostly measures the neighbours, while CPU time divided by
 * the thread count approximates what the wall time would be on an idle one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/bench.h"

double bench_wall_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double bench_cpu_seconds(void)
{
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0)
        return 0.0;
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double bench_proc_status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = -1.0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtod(line + n + 1, NULL) * 1024.0;
            break;
        }
    if (f)
        fclose(f);
    return v;
}

float *bench_random_floats(size_t n, unsigned *seed)
{
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "tessera bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = (float)(*seed >> 8) * (1.0f / 8388608.0f) - 1.0f;
    }
    return x;
}

int bench_parse_count(const char *option, const char *text, long min, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < min || v > 1000000) {
        fprintf(stderr, "tessera bench: bad value '%s' for %s\n", text, option);
        return -1;
    }
    *out = v;
    return 0;
}
