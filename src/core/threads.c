/*
 * Thread pool: workers sleep on a condition variable between jobs; a job is a
 * range split into chunks that workers (and the caller) claim with an atomic
 * counter, which balances uneven chunks without a scheduler.
 */
#include "core/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 256

typedef struct {
    ts_range_fn fn;
    void *ctx;
    int64_t n, chunk, chunks;
    atomic_llong next_chunk;
    atomic_int running; /* workers still inside this job */
} job_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_t workers[MAX_THREADS];
    int nthreads;  /* including the caller */
    int nworkers;  /* started pool threads */
    unsigned long generation;
    job_t *job;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER,
          .nthreads = 0};

static _Thread_local int inside_job;
/* This thread's worker index, so a nested (serial) call reports the same index as the
 * call around it and per-worker scratch never collides with another thread's. */
static _Thread_local int current_worker;

static void run_chunks(job_t *job, int worker)
{
    for (;;) {
        int64_t c = atomic_fetch_add(&job->next_chunk, 1);
        if (c >= job->chunks)
            break;
        int64_t begin = c * job->chunk;
        int64_t end = begin + job->chunk < job->n ? begin + job->chunk : job->n;
        job->fn(job->ctx, begin, end, worker);
    }
}

static void *worker_main(void *arg)
{
    int worker = (int)(intptr_t)arg;
    unsigned long seen = 0;
    inside_job = 1;
    current_worker = worker;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.job || pool.generation == seen || worker >= pool.nthreads)
            pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        job_t *job = pool.job;
        pthread_mutex_unlock(&pool.lock);
        run_chunks(job, worker);
        pthread_mutex_lock(&pool.lock);
        if (atomic_fetch_sub(&job->running, 1) == 1)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

void ts_threads_set(int n)
{
    if (n <= 0)
        n = online_cores();
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    pthread_mutex_lock(&pool.lock);
    /* Workers are indexed 1..n-1 (the caller is 0); start the missing ones, idle the rest. */
    while (pool.nworkers < n - 1) {
        int index = pool.nworkers + 1;
        if (pthread_create(&pool.workers[pool.nworkers], NULL, worker_main, (void *)(intptr_t)index) != 0)
            break;
        pthread_detach(pool.workers[pool.nworkers]);
        pool.nworkers++;
    }
    pool.nthreads = pool.nworkers + 1 < n ? pool.nworkers + 1 : n;
    pthread_mutex_unlock(&pool.lock);
}

int ts_threads_get(void)
{
    if (pool.nthreads == 0)
        ts_threads_set(0);
    return pool.nthreads;
}

void ts_parallel_for(int64_t n, int64_t grain, ts_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int threads = ts_threads_get();
    if (inside_job || threads == 1 || n <= grain) {
        fn(ctx, 0, n, current_worker);
        return;
    }
    /* A few chunks per thread balances uneven work; never below the grain. */
    int64_t chunk = (n + threads * 4 - 1) / (threads * 4);
    if (chunk < grain)
        chunk = grain;
    job_t job = {.fn = fn, .ctx = ctx, .n = n, .chunk = chunk, .chunks = (n + chunk - 1) / chunk};
    atomic_init(&job.next_chunk, 0);
    atomic_init(&job.running, threads - 1);

    pthread_mutex_lock(&pool.lock);
    pool.job = &job;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    inside_job = 1;
    run_chunks(&job, 0);
    inside_job = 0;

    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&job.running) > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pool.job = NULL; /* a late or spurious wake-up must not see this stack frame */
    pthread_mutex_unlock(&pool.lock);
}
