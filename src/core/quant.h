/*
 * ggml block formats: dequantisation of every block type Tessera reads from GGUF, and
 * the reference quantisers `tessera convert` writes with.
 *
 * A block type packs a fixed run of weights (32, or 256 for the K-quants) with its
 * own scales, so a row of a weight matrix is a whole number of blocks and can be
 * widened on its own, which is what the kernels do.  The layouts and formulas are
 * ggml's, bit for bit (all multi-byte fields little-endian, f16 scales):
 *
 *   Q8_0  34 B: d f16, 32 x int8 q;                  w = d * q
 *   Q4_0  18 B: d, 16 B nibbles;                     w = d * (q - 8)
 *   Q4_1  20 B: d, m, 16 B nibbles;                  w = d * q + m
 *   Q5_0  22 B: d, 4 B high bits, 16 B nibbles;      w = d * (q - 16)
 *   Q5_1  24 B: d, m, 4 B high bits, 16 B nibbles;   w = d * q + m
 *     (in the 32-weight types, weight j < 16 is the low nibble of byte j and weight
 *      j + 16 its high nibble; the 5th bit of weight j is bit j of the high-bit word)
 *   Q4_K 144 B: d, dmin, 12 B of 6-bit scale/min pairs for 8 sub-blocks of 32,
 *               128 B nibbles;                       w = d*sc * q - dmin*m
 *   Q5_K 176 B: as Q4_K plus 32 B of 5th bits
 *   Q6_K 210 B: 128 B low nibbles, 64 B 2-bit highs, 16 int8 scales for 16
 *               sub-blocks of 16, d;                 w = d*sc * (q - 32)
 *
 * The quantisers are the simple reference roundings (no error-weighted search):
 * absmax scales for Q8_0/Q4_0, per-sub-block min/max then 6-bit quantised scales for
 * Q4_K, absmax sub-block scales then 8-bit quantised scales for Q6_K.
 */
#ifndef TS_CORE_QUANT_H
#define TS_CORE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

/* Widens n weights (a multiple of the block length) of block type t into dst. */
void ts_dequantize(ts_dtype t, const void *src, float *dst, size_t n);

/* The integer form of every block type, which the integer GEMM kernels read: each
 * run of 32 weights is 32 integers u[j] in [0, 255] and two floats f, as
 *     TS_QFORM_ZERO    w[j] = f[0] · (u[j] − zero)         Q8_0 (zero 128: u = q + 128),
 *                                                          Q4_0 (8), Q5_0 (16)
 *     TS_QFORM_MIN     w[j] = f[0] · u[j] + f[1]           Q4_1, Q5_1, Q4_K, Q5_K
 *     TS_QFORM_HALVES  w[j] = f[j / 16] · (u[j] − zero)    Q6_K (zero 32; its sub-blocks
 *                                                          of 16 have scales of their own)
 * ts_dequantize is defined through it. */
typedef enum { TS_QFORM_ZERO, TS_QFORM_MIN, TS_QFORM_HALVES } ts_qform_kind;
typedef struct {
    ts_qform_kind kind;
    int zero;
    int max_u; /* the largest u the type can hold: 255, 63, 31 or 15 */
} ts_qform;

/* Returns 0 for a type without an integer form (the element types). */
int ts_quant_int_form(ts_dtype t, ts_qform *form);
/* Run `sub` (0 .. block_len / 32 - 1) of the block at `block`. */
void ts_quant_unpack32(ts_dtype t, const void *block, int sub, uint8_t u[32], float f[2]);
/* Weight j of an unpacked run, as the formulas above compute it in f32. */
float ts_qform_weight(ts_qform form, const float f[2], int j, uint8_t u);

/* True for the block types ts_quantize writes (Q8_0, Q4_0, Q4_K, Q6_K). */
int ts_quantize_supported(ts_dtype t);
/* Packs n floats (a multiple of the block length) into ts_dtype_bytes(t, n) bytes.
 * Returns -1, writing nothing useful, when a value is not finite or t has no
 * quantiser; the caller names the tensor. */
int ts_quantize(ts_dtype t, const float *src, void *dst, size_t n);

#endif
