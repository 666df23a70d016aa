/*
 * The packed-panel GEMM engine shared by linear, conv2d and attention (internal to
 * src/ops).
 *
 * Every product here is C[M, N] (+)= alpha · A · Bᵀ where A is "M rows of K" and B is
 * "N rows of K".  Neither operand has to exist as a matrix: an operand is a recipe
 * (ts_operand) that the packer turns into narrow panels of contiguous f32 — a weight
 * in f16 is widened, a transposed matrix is gathered, an image is unfolded into
 * im2col columns — a cache-sized block at a time.  A register-blocked micro-kernel
 * (chosen at run time: AVX-512, AVX2+FMA or portable C) then only ever reads panels,
 * so one kernel serves every caller and every storage layout.
 */
#ifndef TS_OPS_GEMM_ENGINE_H
#define TS_OPS_GEMM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

/* How element (r, k) of an operand is found. */
typedef enum {
    TS_OPND_ROWS, /* data[r * ld + k] in `dtype` (f32, f16 or bf16): K contiguous */
    TS_OPND_COLS, /* data[k * ld + r], f32: R contiguous */
    TS_OPND_IM2COL, /* r = output pixel, k = (c, ky, kx) of a conv over one f32 CHW image */
} ts_operand_kind;

typedef struct {
    int64_t channels, height, width; /* input image */
    int64_t kh, kw, out_h, out_w;
    int stride, pad_top, pad_left;
} ts_im2col_geom;

typedef struct {
    ts_operand_kind kind;
    ts_dtype dtype;
    const void *data;
    int64_t ld;
    const ts_im2col_geom *conv; /* TS_OPND_IM2COL only */
} ts_operand;

/* A micro-kernel computes one full mr x nr tile of C from a panel of A (kc x mr,
 * row i of step k at a[k * mr + i]) and a panel of B (kc x nr): c = alpha · a·b, added
 * to c when `accumulate`, stored over it otherwise. */
typedef void (*ts_microkernel_fn)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                  int accumulate);

/* Packs one panel (rows <= width) of a TS_OPND_ROWS operand; see ts_pack_panels. */
typedef void (*ts_pack_fn)(const ts_operand *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
                           float *dst);

typedef struct {
    const char *name;
    int mr, nr;
    int64_t mc, kc, nc; /* cache blocks: A block mc x kc stays in L2, B block kc x nc in L3 */
    ts_microkernel_fn fn;
    ts_pack_fn pack_rows; /* a vector transposer for TS_OPND_ROWS, or NULL for the portable one */
} ts_gemm_kernel;

/* The kernel in use (the best the CPU supports unless ts_gemm_select chose another). */
const ts_gemm_kernel *ts_gemm_kernel_get(void);
/* True unless ts_gemm_select forced one of our kernels for every product. */
int ts_gemm_use_openblas(void);

/* A buffer that lives as long as its thread and only grows; out of memory aborts, as
 * for every pack buffer.  ts_scratch_trim frees it when it holds more than `keep`. */
typedef struct {
    void *p;
    size_t n;
} ts_scratch;
void *ts_scratch_get(ts_scratch *s, size_t bytes);
void ts_scratch_trim(ts_scratch *s, size_t keep);

/* Floats needed to pack `rows` rows of kc steps into panels `width` wide. */
static inline size_t ts_pack_floats(int64_t rows, int64_t kc, int width)
{
    return (size_t)((rows + width - 1) / width) * (size_t)width * (size_t)kc;
}

/* Packs rows [r0, r0 + rows) x steps [k0, k0 + kc) of op into panels `width` wide;
 * rows past the end of the last panel are zero. */
void ts_pack_panels(const ts_operand *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width, float *dst);

/* C[m, n] (+)= alpha · Ap · Bpᵀ for packed blocks of kc steps (single-threaded). */
void ts_gemm_macro(const ts_gemm_kernel *kern, int64_t m, int64_t n, int64_t kc, const float *ap, const float *bp,
                   float *c, int64_t ldc, float alpha, int accumulate);

/* C[M, N] = alpha · A · Bᵀ, added to C when `accumulate` (else C is overwritten; with
 * K == 0 it is zeroed).  Threads over tiles of C; runs serially inside a parallel job. */
void ts_gemm_run(int64_t M, int64_t N, int64_t K, const ts_operand *A, const ts_operand *B, float alpha, float *C,
                 int64_t ldc, int accumulate);

#endif
