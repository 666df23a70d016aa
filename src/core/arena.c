/* Bump allocator over one reserved mapping; see arena.h. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"

#define ARENA_ALIGN 64

struct ts_arena {
    unsigned char *base;
    size_t capacity;
    size_t used;
    size_t peak;
    size_t touched; /* end of the pages possibly resident above used */
    int hold_pages;
};

ts_arena *ts_arena_create(size_t capacity)
{
    ts_arena *a = calloc(1, sizeof *a);
    if (!a) {
        ts_fail(TS_ERR_NOMEM, "out of memory creating an arena");
        return NULL;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    capacity = (capacity + page - 1) / page * page;
    if (capacity == 0)
        capacity = page;
    void *p = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        free(a);
        ts_fail(TS_ERR_NOMEM, "cannot reserve %zu MiB of address space for activations", capacity >> 20);
        return NULL;
    }
    a->base = p;
    a->capacity = capacity;
    return a;
}

void ts_arena_destroy(ts_arena *a)
{
    if (!a)
        return;
    munmap(a->base, a->capacity);
    free(a);
}

void *ts_arena_alloc(ts_arena *a, size_t bytes)
{
    size_t start = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (start > a->capacity || bytes > a->capacity - start) {
        ts_fail(TS_ERR_NOMEM, "activation arena full: %zu MiB requested, %zu of %zu MiB in use", bytes >> 20,
                a->used >> 20, a->capacity >> 20);
        return NULL;
    }
    a->used = start + bytes;
    if (a->used > a->peak)
        a->peak = a->used;
    return a->base + start;
}

ts_tensor ts_arena_tensor(ts_arena *a, int ndim, const int64_t *shape)
{
    ts_tensor t = ts_tensor_view(NULL, ndim, shape);
    int64_t n = ts_tensor_numel(&t);
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float)) {
        ts_fail(TS_ERR_LIMIT, "tensor of %lld elements is too large", (long long)n);
        return t;
    }
    t.data = ts_arena_alloc(a, (size_t)n * sizeof(float));
    return t;
}

size_t ts_arena_mark(const ts_arena *a) { return a->used; }

void ts_arena_reset(ts_arena *a, size_t mark)
{
    if (mark > a->used)
        return;
    if (a->used > a->touched)
        a->touched = a->used;
    a->used = mark;
    if (a->hold_pages || a->touched <= mark)
        return;
    /* Give whole pages above the mark back, so a later smaller step does not keep them resident. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t first = (mark + page - 1) / page * page;
    size_t last = (a->touched + page - 1) / page * page;
    if (last > first)
        madvise(a->base + first, last - first, MADV_DONTNEED);
    a->touched = mark;
}

void ts_arena_hold_pages(ts_arena *a, int hold)
{
    a->hold_pages = hold;
}

ts_tensor ts_arena_keep(ts_arena *a, size_t mark, ts_tensor t)
{
    size_t bytes = (size_t)ts_tensor_numel(&t) * sizeof(float);
    size_t start = (mark + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    memmove(a->base + start, t.data, bytes); /* the destination is below the source */
    t.data = (float *)(a->base + start);
    ts_arena_reset(a, start + bytes);
    return t;
}

size_t ts_arena_offset(const ts_arena *a, const void *p) { return (size_t)((const unsigned char *)p - a->base); }

size_t ts_arena_used(const ts_arena *a) { return a->used; }
size_t ts_arena_peak(const ts_arena *a) { return a->peak; }
size_t ts_arena_capacity(const ts_arena *a) { return a->capacity; }
