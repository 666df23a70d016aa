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
    TS_DTYPE_COUNT
} ts_dtype;

/* Bytes per element. */
size_t ts_dtype_size(ts_dtype t);
/* The safetensors spelling ("F16", "BF16", "F8_E4M3", ...). */
const char *ts_dtype_name(ts_dtype t);
/* Parses the safetensors spelling; returns -1 for an unknown name. */
int ts_dtype_from_name(const char *name, ts_dtype *out);
/* True for the types ts_to_f32 can widen (every floating and integer type). */
int ts_dtype_is_float(ts_dtype t);

float ts_f16_to_f32(uint16_t h);
uint16_t ts_f32_to_f16(float f);
float ts_bf16_to_f32(uint16_t b);
uint16_t ts_f32_to_bf16(float f);

void ts_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void ts_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void ts_f32_to_f16_n(const float *src, uint16_t *dst, size_t n);
void ts_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n);

/* Widens n elements of any dtype to f32 (integers are converted by value). */
void ts_to_f32(ts_dtype t, const void *src, float *dst, size_t n);

#endif
