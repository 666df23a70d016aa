/*
 * Integer GEMM on block-quantised weights (internal to src/ops; ts_linear calls it).
 *
 * The weight is never widened to f32.  Activations are quantised per run of 32 to
 * int8 with one f32 scale (ggml's q8_0 scheme for activations: d = max|x| / 127,
 * q = round(x / d)), the weight runs are unpacked to their integer form (core/quant.h),
 * and each pair of runs meets in exact int32 dot products:
 *
 *     zero point:  Σ_j w_j·a_j = d·f0·Σ_j (u_j − z)·q_j
 *     min:                       d·f0·Σ_j u_j·q_j + d·Σ_j q_j · f1
 *     halves:                    d·f0·Σ_{j<16} (u_j − z)·q_j + d·f1·Σ_{j≥16} (u_j − z)·q_j
 *
 * so the only rounding beyond the activation quantisation is the f32 accumulation
 * of one or two such terms per run.  The int8 products run on AVX-512 VNNI
 * (vpdpbusd: u is the unsigned operand, q the signed one, and −z·Σq seeds the int32
 * sum), on AVX2 (pmaddubsw, arranged so that it never saturates), or in portable C.
 *
 * Packed weights: panels of `lanes` output columns; per run, the u bytes as 8 groups
 * of [lanes][4] (4 consecutive k of one column are one int32 lane), then `lanes`
 * values of f0, then (forms other than zero point) `lanes` of f1.  A micro-kernel
 * computes mr rows of C by two panels.
 */
#ifndef TS_OPS_GEMM_QUANT_H
#define TS_OPS_GEMM_QUANT_H

#include <stdint.h>

#include "core/quant.h"
#include "core/tensor.h"

/* Quantised activation rows: row r, run b has its 32 int8 at q + (r * runs + b) * 32,
 * its scale at d[r * runs + b] and the sums of its two halves of 16 q at
 * sum[2 * (r * runs + b)] and the next. */
typedef struct {
    int64_t runs;
    int8_t *q;
    float *d;
    int32_t *sum;
} ts_qact;

/* One micro-tile: rows [0, rows) of `act` (rows <= mr) times the columns [0, cols)
 * (cols <= 2 · lanes) of the two panels at w and w + panel_bytes, over all runs. */
typedef struct {
    const int8_t *q;
    const float *d;
    const int32_t *sum;
    int64_t runs;
    int rows, cols;
    const uint8_t *w;
    int64_t panel_bytes;
    ts_qform form;
    float *c;
    int64_t ldc;
    int accumulate;
} ts_qtile;

typedef struct {
    const char *name;
    int mr, lanes;
    void (*tile)(const ts_qtile *t);
    /* Quantises `runs` runs of 32 floats (one row) into q, d and the half sums; bit for
     * bit the same in every kernel. */
    void (*quantize_row)(const float *x, int64_t runs, int8_t *q, float *d, int32_t *sum);
} ts_qkernel;

/* Bytes of one run of one panel. */
static inline int64_t ts_qrun_bytes(int lanes, ts_qform form)
{
    return (int64_t)lanes * (32 + (form.kind == TS_QFORM_ZERO ? 4 : 8));
}

/* The kernel in use: the best this CPU runs (TESSERA_CPU caps it, see core/cpu.h)
 * unless ts_qgemm_select chose another. */
const ts_qkernel *ts_qgemm_kernel(void);
/* "avx512vnni", "avx2", "scalar", or NULL / "auto" for the best.  TS_ERR_UNSUPPORTED
 * when this CPU lacks the instructions, TS_ERR_ARG for an unknown name. */
int ts_qgemm_select(const char *name);

/* C[M, N] (+)= A[M, K] · Wᵀ for a block-quantised W [N, K] through the integer
 * kernels (threaded over tiles of C).  Every block type has an integer form; C is
 * filled with NaN for a type without one. */
void ts_linear_quantized(const float *A, int64_t lda, int64_t M, const ts_weight *W, float *C, int64_t ldc,
                        int accumulate);

#endif
