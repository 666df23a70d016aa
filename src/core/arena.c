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
    int hold_pages; /* nesting depth of ts_arena_hold_pages(a, 1) */
};

/* TESSERA_MAX_ARENA caps every arena: bytes, with an optional K, M or G suffix.
 * Returns 0 and leaves *cap alone when it is unset. */
static int env_limit(size_t *cap)
{
    const char *s = getenv("TESSERA_MAX_ARENA");
    if (!s)
        return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    end += shift != 0;
    if (!s[0] || s[0] == '-' || *end || v == 0 || v > (SIZE_MAX >> shift))
        return ts_fail(TS_ERR_ARG, "TESSERA_MAX_ARENA=%s: not a size (bytes, or a number with K, M or G)", s);
    if ((size_t)v << shift < *cap)
        *cap = (size_t)v << shift;
    return 0;
}

ts_arena *ts_arena_create(size_t capacity)
{
    if (env_limit(&capacity))
        return NULL;
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
        ts_fail(TS_ERR_NOMEM, "activation arena full: %.1f MiB requested, %.1f of %.1f MiB in use",
                (double)bytes / 1048576, (double)a->used / 1048576, (double)a->capacity / 1048576);
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
    if (hold)
        a->hold_pages++;
    else if (a->hold_pages > 0)
        a->hold_pages--;
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
