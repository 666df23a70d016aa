/*
 * A fixed pool of worker threads and a parallel-for over index ranges.
 *
 * The caller takes part in the work, so ts_threads_set(1) runs everything on the
 * calling thread.  A parallel-for issued from inside a worker runs serially: kernels
 * parallelise at one level and never oversubscribe the cores.
 */
#ifndef TS_CORE_THREADS_H
#define TS_CORE_THREADS_H

#include <stdint.h>

/* fn processes indices [begin, end); `worker` is in [0, ts_threads_get()) and is unique
 * among the calls running at the same time, for per-thread scratch buffers. */
typedef void (*ts_range_fn)(void *ctx, int64_t begin, int64_t end, int worker);

/* Sets the number of threads (>= 1); 0 means the number of online cores. */
void ts_threads_set(int n);
int ts_threads_get(void);

/* Splits [0, n) into chunks of at least `grain` indices and runs them on the pool. */
void ts_parallel_for(int64_t n, int64_t grain, ts_range_fn fn, void *ctx);

#endif
