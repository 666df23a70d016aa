/*
 * Checkpoint conversion between safetensors and GGUF, with quantisation (the engine
 * of `tessera convert`; the rules are documented in docs/gguf.md).
 *
 * Tensor names are kept exactly, so a converted file loads wherever its original did
 * (stable-diffusion.cpp and ComfyUI-GGUF files use the checkpoint names too).  Shapes
 * are kept too: a tensor is quantised only when its rows (the innermost dim) are
 * whole blocks, never reshaped.  The conversion streams one tensor at a time through
 * a bounded f32 buffer, so memory stays near the largest tensor's row chunk, not the
 * model.
 */
#ifndef TS_IO_CONVERT_H
#define TS_IO_CONVERT_H

#include <stdint.h>

#include "core/dtype.h"

/* Tensors with fewer elements than this stay unquantised (ComfyUI-GGUF's threshold). */
#define TS_CONVERT_MIN_QUANT_ELEMENTS 1024

typedef struct {
    size_t tensors[TS_DTYPE_COUNT]; /* per output dtype */
    uint64_t bytes[TS_DTYPE_COUNT];
    uint64_t in_bytes, out_bytes; /* file sizes */
} ts_convert_stats;

/* Parses a --type value: f32 f16 bf16 q8_0 q4_0 q4_k q6_k (ggml's spellings, any case). */
int ts_convert_type_from_name(const char *name, ts_dtype *out);

/* The dtype a tensor is stored as in the output: type is the requested type
 * (TS_DTYPE_COUNT for the default: f16 for GGUF, keep f16/bf16/f32 for safetensors),
 * src the tensor's own dtype (after widening of block types for safetensors).  A
 * block type is used only for a tensor that is at least 2-D, has at least
 * TS_CONVERT_MIN_QUANT_ELEMENTS elements and rows of whole blocks, and is not a norm
 * or an embedding; the others keep a float type (1-D: f32 or their own f16/bf16).
 * (ts_convert then also keeps in f32 any tensor with values beyond f16's range that
 * this picks f16 or a block type for: their scales are f16.) */
ts_dtype ts_convert_pick(ts_dtype type, int to_gguf, const char *name, ts_dtype src, int ndim, const int64_t *shape);

/* Converts in (safetensors or GGUF) to out (".gguf" or ".safetensors", chosen by the
 * extension), written through a temp file and a rename.  stats may be NULL. */
int ts_convert(const char *in, const char *out, ts_dtype type, ts_convert_stats *stats);

#endif
