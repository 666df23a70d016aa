/*
 * Arena allocator: alignment, stack-order mark/reset, the high-water mark, the
 * full-arena error, the release of pages above a reset point and the nesting holds
 * that keep them.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/error.h"
#include "test.h"

static void test_alignment_and_accounting(void)
{
    ts_arena *a = ts_arena_create(1 << 20);
    CHECK(a != NULL);
    CHECK(ts_arena_capacity(a) >= (1 << 20));
    CHECK(ts_arena_used(a) == 0 && ts_arena_peak(a) == 0);
    size_t sizes[] = {1, 3, 64, 65, 100, 0, 4096, 7};
    size_t expected_end = 0;
    unsigned char *prev = NULL;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = ts_arena_alloc(a, sizes[i]);
        CHECK(p != NULL);
        CHECK_MSG(((uintptr_t)p & 63) == 0, "allocation %zu at %p is not 64-byte aligned", i, (void *)p);
        CHECK(prev == NULL || p >= prev); /* bump order */
        memset(p, 0xab, sizes[i]);         /* writable (ASan would flag otherwise) */
        expected_end = ((expected_end + 63) & ~(size_t)63) + sizes[i];
        prev = p + sizes[i];
    }
    CHECK(ts_arena_used(a) == expected_end);
    CHECK(ts_arena_peak(a) == expected_end);
    ts_arena_destroy(a);
    ts_arena_destroy(NULL); /* allowed, like free() */
}

static void test_mark_reset_peak(void)
{
    ts_arena *a = ts_arena_create(1 << 20);
    void *base = ts_arena_alloc(a, 1000);
    size_t mark = ts_arena_mark(a);
    void *x = ts_arena_alloc(a, 5000);
    void *y = ts_arena_alloc(a, 300);
    CHECK(x != NULL && y != NULL);
    size_t high = ts_arena_used(a);
    ts_arena_reset(a, mark);
    CHECK(ts_arena_used(a) == mark);
    CHECK(ts_arena_peak(a) == high);
    void *x2 = ts_arena_alloc(a, 5000);
    CHECK(x2 == x); /* the released range is reused */
    ts_arena_reset(a, mark);
    ts_arena_alloc(a, 10);
    CHECK(ts_arena_peak(a) == high); /* a smaller step does not lower the peak */
    ts_arena_reset(a, ts_arena_used(a) + 4096); /* a mark above the top is a no-op */
    CHECK(ts_arena_used(a) == mark + 10 || ts_arena_used(a) == ((mark + 63) & ~(size_t)63) + 10);
    ts_arena_reset(a, 0);
    CHECK(ts_arena_used(a) == 0);
    CHECK(ts_arena_alloc(a, 1) == base);
    ts_arena_destroy(a);
}

/* Fills 4 pages after mark with 0x5a, resets to mark and counts the bytes of the same
 * 4 pages, allocated again, that are not zero: 0 when the reset gave the pages back. */
static size_t kept_after_reset(ts_arena *a, size_t mark, size_t page)
{
    unsigned char *p = ts_arena_alloc(a, 4 * page);
    memset(p, 0x5a, 4 * page);
    ts_arena_reset(a, mark);
    unsigned char *q = ts_arena_alloc(a, 4 * page);
    CHECK(q == p);
    size_t kept = 0;
    for (size_t i = 0; i < 4 * page; i++)
        kept += q[i] != 0;
    ts_arena_reset(a, mark);
    return kept;
}

static void test_reset_returns_pages(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ts_arena *a = ts_arena_create(16 * page);
    unsigned char *first = ts_arena_alloc(a, page); /* the mark below falls on a page boundary */
    size_t mark = ts_arena_mark(a);
    CHECK(first != NULL && ts_arena_alloc(a, 0) == first + page);
    size_t kept = kept_after_reset(a, mark, page);
    CHECK_MSG(kept == 0, "%zu bytes kept their old contents: pages were not released", kept);
    ts_arena_destroy(a);
}

/* Holds nest: pages stay resident until the outermost hold is released, then the next
 * reset gives them back. */
static void test_hold_pages_nests(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    ts_arena *a = ts_arena_create(16 * page);
    CHECK(ts_arena_alloc(a, page) != NULL);
    size_t mark = ts_arena_mark(a);
    ts_arena_hold_pages(a, 1);
    ts_arena_hold_pages(a, 1);
    CHECK(kept_after_reset(a, mark, page) == 4 * page);
    ts_arena_hold_pages(a, 0); /* the inner release: still held */
    CHECK(kept_after_reset(a, mark, page) == 4 * page);
    ts_arena_hold_pages(a, 0);
    CHECK(kept_after_reset(a, mark, page) == 0);
    ts_arena_hold_pages(a, 0); /* an unmatched release changes nothing */
    ts_arena_hold_pages(a, 1);
    CHECK(kept_after_reset(a, mark, page) == 4 * page);
    ts_arena_destroy(a);
}

static void test_full_arena(void)
{
    ts_arena *a = ts_arena_create(8192);
    size_t cap = ts_arena_capacity(a);
    ts_clear_error();
    CHECK(ts_arena_alloc(a, cap + 1) == NULL);
    CHECK(strstr(ts_error_message(), "arena full") != NULL);
    CHECK(ts_arena_used(a) == 0); /* a failed request changes nothing */
    CHECK(ts_arena_alloc(a, cap) != NULL); /* exactly full is fine */
    CHECK(ts_arena_alloc(a, 1) == NULL);
    ts_arena_reset(a, 0);
    CHECK(ts_arena_alloc(a, 1) != NULL);
    CHECK(ts_arena_alloc(a, SIZE_MAX) == NULL); /* no wrap-around in the bounds check */
    CHECK(ts_arena_alloc(a, SIZE_MAX - 32) == NULL);
    ts_arena_destroy(a);
}

static void test_arena_tensor(void)
{
    ts_arena *a = ts_arena_create(1 << 20);
    ts_tensor t = ts_arena_tensor(a, 3, (int64_t[]){2, 3, 5});
    CHECK(t.data != NULL && t.ndim == 3 && t.shape[0] == 2 && t.shape[1] == 3 && t.shape[2] == 5);
    CHECK(ts_arena_used(a) == 2 * 3 * 5 * sizeof(float));
    ts_tensor big = ts_arena_tensor(a, 2, (int64_t[]){1 << 20, 1 << 20});
    CHECK(big.data == NULL);
    ts_tensor overflow = ts_arena_tensor(a, 3, (int64_t[]){1ll << 40, 1ll << 40, 4});
    CHECK(overflow.data == NULL);
    CHECK(strstr(ts_error_message(), "too large") != NULL);
    ts_tensor negative = ts_arena_tensor(a, 2, (int64_t[]){-1, 4});
    CHECK(negative.data == NULL);
    ts_arena_destroy(a);
}

TEST_MAIN(TEST(test_alignment_and_accounting), TEST(test_mark_reset_peak), TEST(test_reset_returns_pages),
          TEST(test_hold_pages_nests), TEST(test_full_arena), TEST(test_arena_tensor))
