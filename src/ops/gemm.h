/*
 * Matrix products.
 *
 * ts_linear is the workhorse of every model: activations [M, K] times a stored
 * weight [N, K] (PyTorch Linear / flattened conv layout) in its own dtype (f32,
 * f16, bf16), widened panel by panel inside the kernel, never as a whole.  A
 * block-quantised weight (GGUF Q8_0, Q4_K, ...) is not widened at all: the
 * activations are quantised to int8 per run of 32 and the product runs on integer
 * kernels (gemm_quant.h), which adds the activation rounding (relative error about
 * 1/254 of each run's largest |x|) to the weight's own.
 * ts_sgemm is a plain row-major f32 GEMM for activation x activation products.
 */
#ifndef TS_OPS_GEMM_H
#define TS_OPS_GEMM_H

#include <stdint.h>

#include "core/tensor.h"

/* C[M, N] = A[M, K] · Wᵀ (+ bias[N]).  W: [N, K] (or [N, K1, K2, ...] flattened to K),
 * any floating or block dtype; bias may be NULL.  lda / ldc are row strides in floats. */
void ts_linear(const float *A, int64_t lda, int64_t M, const ts_weight *W, const ts_weight *bias, float *C,
               int64_t ldc);

/* C[M, N] = alpha · op(A) · op(B) + beta · C, all row-major f32; op(X) = Xᵀ when trans_x.
 * A is [M, K] (or [K, M] transposed), B is [K, N] (or [N, K] transposed). */
void ts_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The micro-kernel in use: "avx512" (6x32), "avx2" (6x16, FMA) or "scalar" (4x8).  The
 * best one the CPU supports is picked at the first call.  By default ("auto") the
 * products of two f32 operands (ts_sgemm, ts_linear with an f32 weight) go to
 * OpenBLAS, which is faster on them; everything else uses the kernel. */
const char *ts_gemm_kernel_name(void);
/* Forces a kernel by name for every product, OpenBLAS's included (tests and
 * benchmarks compare them); NULL or "auto" restores the default.  Returns
 * TS_ERR_UNSUPPORTED when this CPU cannot run it.  Our kernel sums every element in
 * the same order whatever M, N or the thread count, so its results are bit for bit
 * reproducible across batch sizes and threads; OpenBLAS's are not. */
int ts_gemm_select(const char *name);

#endif
