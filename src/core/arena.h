/*
 * Arena allocator for activations.
 *
 * A model's forward pass allocates its intermediate tensors from an arena and
 * releases them in stack order (mark / reset), so memory for a whole denoising step
 * is bounded and known.  The arena reserves address space up front and the kernel
 * commits pages only when they are touched; ts_arena_peak() is the high-water mark
 * benchmarks report.
 */
#ifndef TS_CORE_ARENA_H
#define TS_CORE_ARENA_H

#include <stddef.h>

#include "core/tensor.h"

typedef struct ts_arena ts_arena;

/* Reserves `capacity` bytes of address space. Returns NULL (and sets the error) on failure.
 * The environment variable TESSERA_MAX_ARENA (bytes, or a number with a K, M or G
 * suffix) lowers every arena's capacity to that size: a run then fails, or takes its
 * low-memory path, exactly where a machine with that much memory would. */
ts_arena *ts_arena_create(size_t capacity);
void ts_arena_destroy(ts_arena *a);

/* 64-byte aligned, uninitialised. NULL with a TS_ERR_NOMEM message when the arena is full. */
void *ts_arena_alloc(ts_arena *a, size_t bytes);
/* Allocates an f32 tensor of the given shape; returns a tensor with data NULL on failure. */
ts_tensor ts_arena_tensor(ts_arena *a, int ndim, const int64_t *shape);

size_t ts_arena_mark(const ts_arena *a);
/* Frees everything allocated after `mark`; pages above `mark` are returned to the OS. */
void ts_arena_reset(ts_arena *a, size_t mark);
/* While held, resets keep the pages they free resident, for a loop that fills the
 * same space again and again (the layers of one forward pass, tiles of one step):
 * giving pages back at every layer's reset and faulting them in zeroed again cost
 * about a fifth of a UNet step or VAE decode in kernel time.  Holds nest (a model's
 * forward holds inside a pipeline's); the next reset after the outermost release
 * gives them all back. */
void ts_arena_hold_pages(ts_arena *a, int hold);

/* Moves tensor t (allocated after `mark`) down to `mark` and frees everything above it:
 * the step that lets a chain of layers overwrite its input, so a forward pass holds
 * one layer's input, temporaries and output at a time.  Returns the moved tensor. */
ts_tensor ts_arena_keep(ts_arena *a, size_t mark, ts_tensor t);

/* The mark at which p (a pointer returned by this arena) starts. */
size_t ts_arena_offset(const ts_arena *a, const void *p);

size_t ts_arena_used(const ts_arena *a);
size_t ts_arena_peak(const ts_arena *a);
size_t ts_arena_capacity(const ts_arena *a);

#endif
