/*
 * Benchmark suites of `tessera bench`, one file each; bench.c dispatches to them.
 * Each takes the arguments after `bench` (argv[0] is the suite name).  The helpers
 * below (bench_util.c) are what every suite measures with, so that all of them
 * report time and memory the same way.
 */
#ifndef TS_CLI_BENCH_H
#define TS_CLI_BENCH_H

#include <stddef.h>

int bench_t5_main(int argc, char **argv);
int bench_unet_main(int argc, char **argv);
int bench_vae_main(int argc, char **argv);
int bench_flux_main(int argc, char **argv);

/* Monotonic wall clock, seconds. */
double bench_wall_seconds(void);
/* User + system CPU time of the whole process (all threads), seconds. */
double bench_cpu_seconds(void);
/* A "Name:   123 kB" line of /proc/self/status (VmHWM, RssAnon, ...), in bytes; -1 when unavailable. */
double bench_proc_status_bytes(const char *key);
/* n uniform values in [-1, 1) from an LCG; exits with a message when out of memory. */
float *bench_random_floats(size_t n, unsigned *seed);
/* A whole-number option value in [min, 1000000]; prints the complaint and returns -1 otherwise. */
int bench_parse_count(const char *option, const char *text, long min, long *out);

#endif
