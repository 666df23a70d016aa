/*
 * Element types of stored tensors and their conversion to f32.
 *
 * Activations are always f32; weights stay in the dtype they were stored in and are
 * widened a block at a time by the kernels.  The converters here pick an F16C or
 * AVX-512 path at run time and fall back to exact scalar code, so results are the
 * same bit for bit on every machine (f16/bf16 -> f32 is exact; f32 -> f16/bf16
 * rounds to nearest even).
 */
#ifndef TS_CORE_DTYPE_H
#define TS_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TS_DTYPE_F32,
    TS_DTYPE_F16,
    TS_DTYPE_BF16,
    TS_DTYPE_F64,
    TS_DTYPE_F8_E4M3,
    TS_DTYPE_F8_E5M2,
    TS_DTYPE_I64,
    TS_DTYPE_I32,
    TS_DTYPE_I16,
    TS_DTYPE_I8,
    TS_DTYPE_U64,
    TS_DTYPE_U32,
    TS_DTYPE_U16,
    TS_DTYPE_U8,
    TS_DTYPE_BOOL,
    /* ggml block types (GGUF files): a row is a run of fixed-size blocks, each holding
     * ts_dtype_block_len() weights and its own scales; see core/quant.h. */
    TS_DTYPE_Q8_0,
    TS_DTYPE_Q4_0,
    TS_DTYPE_Q4_1,
    TS_DTYPE_Q5_0,
    TS_DTYPE_Q5_1,
    TS_DTYPE_Q4_K,
    TS_DTYPE_Q5_K,
    TS_DTYPE_Q6_K,
    TS_DTYPE_COUNT
} ts_dtype;

/* Bytes per element; 0 for the block types, which have no per-element size (use
 * ts_dtype_bytes). */
size_t ts_dtype_size(ts_dtype t);
/* Weights per block: 1 for element types, 32 or 256 for the block types. */
int64_t ts_dtype_block_len(ts_dtype t);
/* Bytes per block (= ts_dtype_size for element types). */
size_t ts_dtype_block_bytes(ts_dtype t);
int ts_dtype_is_block(ts_dtype t);
/* Bytes that n weights take; n must be a multiple of the block length. */
uint64_t ts_dtype_bytes(ts_dtype t, uint64_t n);
/* The safetensors spelling ("F16", "BF16", "F8_E4M3", ...); ggml's for block types ("Q8_0"). */
const char *ts_dtype_name(ts_dtype t);
/* Parses the safetensors spelling; returns -1 for an unknown name.  Block types are not
 * safetensors dtypes and do not parse. */
int ts_dtype_from_name(const char *name, ts_dtype *out);
/* True for the types a weight may have: the floating types, block types included. */
int ts_dtype_is_float(ts_dtype t);

float ts_f16_to_f32(uint16_t h);
uint16_t ts_f32_to_f16(float f);
float ts_bf16_to_f32(uint16_t b);
uint16_t ts_f32_to_bf16(float f);

void ts_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void ts_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void ts_f32_to_f16_n(const float *src, uint16_t *dst, size_t n);
void ts_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n);

/* Widens n elements of any dtype to f32 (integers are converted by value).  For a block
 * type, src must start at a block and n be a multiple of the block length. */
void ts_to_f32(ts_dtype t, const void *src, float *dst, size_t n);

#endif
