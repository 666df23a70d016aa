/*
 * Benchmark suites of `tessera bench`, one file each; bench.c dispatches to them.
 * Each takes the arguments after `bench` (argv[0] is the suite name).
 */
#ifndef TS_CLI_BENCH_H
#define TS_CLI_BENCH_H

int bench_t5_main(int argc, char **argv);

#endif
