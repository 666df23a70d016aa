/*
 * Thread pool: ts_parallel_for must hand out every index exactly once, in chunks no
 * smaller than the grain (but the last), with worker ids that are in range and never
 * shared by two calls running at the same time; nested calls run serially on the
 * calling thread with its own worker id.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/threads.h"
#include "test.h"

enum { MAX_N = 5000, MAX_WORKERS = 64 };

typedef struct {
    atomic_int hits[MAX_N];
    atomic_int busy[MAX_WORKERS];
    atomic_int bad_worker, shared_worker, small_chunk, calls;
    int64_t n, grain;
    int threads;
} cover_ctx;

static void cover(void *p, int64_t begin, int64_t end, int worker)
{
    cover_ctx *c = p;
    atomic_fetch_add(&c->calls, 1);
    if (worker < 0 || worker >= c->threads) {
        atomic_fetch_add(&c->bad_worker, 1);
        return;
    }
    if (atomic_exchange(&c->busy[worker], 1) != 0)
        atomic_fetch_add(&c->shared_worker, 1);
    if (end - begin < c->grain && end != c->n)
        atomic_fetch_add(&c->small_chunk, 1);
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
    atomic_store(&c->busy[worker], 0);
}

static void test_covers_every_index_once(void)
{
    static const int64_t ns[] = {0, 1, 2, 3, 7, 8, 63, 64, 65, 1000, 4097, MAX_N};
    static const int64_t grains[] = {0, 1, 2, 7, 64, 1000, 6000};
    static cover_ctx c;
    for (int threads = 1; threads <= 4; threads++) {
        ts_threads_set(threads);
        CHECK(ts_threads_get() == threads);
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                memset(&c, 0, sizeof c);
                c.n = ns[i];
                c.grain = grains[g] < 1 ? 1 : grains[g];
                c.threads = threads;
                ts_parallel_for(c.n, grains[g], cover, &c);
                int wrong = 0;
                for (int64_t k = 0; k < c.n; k++)
                    wrong += atomic_load(&c.hits[k]) != 1;
                CHECK_MSG(wrong == 0, "threads %d n %lld grain %lld: %d indices not hit exactly once", threads,
                          (long long)c.n, (long long)grains[g], wrong);
                CHECK(atomic_load(&c.bad_worker) == 0);
                CHECK(atomic_load(&c.shared_worker) == 0);
                CHECK(atomic_load(&c.small_chunk) == 0);
                CHECK(c.n > 0 || atomic_load(&c.calls) == 0);
            }
    }
}

typedef struct {
    atomic_int inner_calls, inner_wrong;
    int threads;
} nested_ctx;

typedef struct {
    nested_ctx *outer;
    pthread_t thread;
    int worker, calls;
    int64_t begin, end;
} inner_ctx;

static void inner(void *p, int64_t begin, int64_t end, int worker)
{
    inner_ctx *c = p;
    c->calls++;
    c->begin = begin, c->end = end;
    if (worker != c->worker || !pthread_equal(pthread_self(), c->thread))
        atomic_fetch_add(&c->outer->inner_wrong, 1);
}

static void outer(void *p, int64_t begin, int64_t end, int worker)
{
    nested_ctx *c = p;
    for (int64_t i = begin; i < end; i++) {
        usleep(200); /* long enough that the workers, not just the caller, take chunks */
        inner_ctx ic = {.outer = c, .thread = pthread_self(), .worker = worker};
        ts_parallel_for(100, 1, inner, &ic);
        atomic_fetch_add(&c->inner_calls, ic.calls);
        if (ic.calls != 1 || ic.begin != 0 || ic.end != 100)
            atomic_fetch_add(&c->inner_wrong, 1);
    }
}

static void test_nested_calls_run_serially(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        ts_threads_set(threads);
        nested_ctx c = {.threads = threads};
        ts_parallel_for(64, 1, outer, &c);
        CHECK(atomic_load(&c.inner_calls) == 64);
        CHECK_MSG(atomic_load(&c.inner_wrong) == 0, "threads %d: %d nested calls were split or moved", threads,
                  atomic_load(&c.inner_wrong));
    }
}

static void test_thread_count_settings(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ts_threads_set(0);
    CHECK(ts_threads_get() == (cores < 1 ? 1 : cores > 256 ? 256 : (int)cores));
    ts_threads_set(3);
    CHECK(ts_threads_get() == 3);
    ts_threads_set(1);
    CHECK(ts_threads_get() == 1);
    ts_threads_set(4); /* grows again after shrinking */
    CHECK(ts_threads_get() == 4);
    ts_threads_set(-5);
    CHECK(ts_threads_get() >= 1);
}

TEST_MAIN(TEST(test_covers_every_index_once), TEST(test_nested_calls_run_serially), TEST(test_thread_count_settings))
