/*
 * Tensors: f32 activations and typed weight views.
 *
 * Shapes are explicit and outermost-first, as in PyTorch: an image batch is
 * [N, C, H, W], a token sequence [B, T, D], a Linear weight [out, in], a conv weight
 * [out, in, kh, kw].  Activations own (or borrow from an arena) contiguous f32
 * storage; weights are read-only views into a memory-mapped file in their stored
 * dtype, so a model is never copied to f32 as a whole.
 */
#ifndef TS_CORE_TENSOR_H
#define TS_CORE_TENSOR_H

#include <stdint.h>

#include "core/dtype.h"

#define TS_MAX_DIMS 4

typedef struct {
    float *data;
    int ndim;
    int64_t shape[TS_MAX_DIMS];
} ts_tensor;

typedef struct {
    ts_dtype dtype;
    int ndim;
    int64_t shape[TS_MAX_DIMS];
    const void *data;
} ts_weight;

/* Builds a tensor header over existing storage: ts_tensor_view(p, 3, (int64_t[]){2, 77, 768}). */
ts_tensor ts_tensor_view(float *data, int ndim, const int64_t *shape);
/* Element counts are -1 when a dim is negative or the product overflows int64. */
int64_t ts_tensor_numel(const ts_tensor *t);
int64_t ts_weight_numel(const ts_weight *w);
/* Number of elements per outer row: the product of all dims but the first. */
int64_t ts_weight_row_len(const ts_weight *w);

/* Copies row r of a weight (dims after the first, flattened) into dst as f32.  For a
 * block type the row length must be a multiple of the block length (io/weights.h
 * guarantees it for every weight but a conv kernel, which is only widened whole). */
void ts_weight_row_f32(const ts_weight *w, int64_t r, float *dst);
/* Widens a whole weight (any dtype) into dst, numel floats. */
void ts_weight_to_f32(const ts_weight *w, float *dst);

/* Fills a weight view of a stored tensor after the checks every loader makes: at most
 * TS_MAX_DIMS dims and a floating (or block) dtype.  Fails with TS_ERR_MODEL naming
 * path and name otherwise. */
int ts_weight_make(const char *path, const char *name, ts_dtype dtype, int ndim, const int64_t *shape,
                   const void *data, ts_weight *out);
/* TS_ERR_MODEL naming path and prefix + name unless w has ndim dims equal to shape
 * (a dim of -1 in shape matches anything). */
int ts_weight_expect_shape(const ts_weight *w, const char *path, const char *prefix, const char *name, int ndim,
                           const int64_t *shape);

/* Formats a shape as "[2, 77, 768]" into buf (for error messages). */
const char *ts_shape_str(char *buf, int buf_size, int ndim, const int64_t *shape);

#endif
