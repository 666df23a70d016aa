/*
 * Vectorised exp-based primitives for softmax rows and activations (internal to
 * src/ops).
 *
 * libm's expf is accurate but scalar, and in attention one exp per score costs as
 * much as the two GEMMs around it.  These helpers use an AVX2 polynomial exp (a
 * Cody-Waite reduction and a degree-6 polynomial, within 2 ulp of expf over the
 * range softmax uses) when the GEMM kernel in use is a vector one (AVX2 or AVX-512),
 * and libm otherwise.
 */
#ifndef TS_OPS_VMATH_H
#define TS_OPS_VMATH_H

#include <stdint.h>

/* max(x[0..n)), -INFINITY for n == 0. */
float ts_vmax(const float *x, int64_t n);
/* x[i] = exp(x[i] - shift) (exactly 0 where x[i] is -inf); returns the sum. */
float ts_vexp_sum(float *x, int64_t n, float shift);
/* x[i] = x[i] · sigmoid(k · x[i]): SiLU (k = 1), QuickGELU (k = 1.702). */
void ts_vsilu(float *x, int64_t n, float k);
/* x[i] = x[i] · sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x³): GELU, tanh form. */
void ts_vgelu_tanh(float *x, int64_t n);
/* x[i] = x[i] / 2 · erfc(-x[i] / sqrt 2): GELU, erf form.  erfc is the Chebyshev-fitted
 * t · exp(-z² + P(t)), t = 1 / (1 + z/2) (Numerical Recipes' erfcc, fractional error
 * below 1.2e-7), evaluated in f32.  Measured against double: absolute error below
 * 4e-7 on [-10, 10], relative error below 6e-6 on (-8, 8) (the worst in the far
 * negative tail, where the values are under 1e-14). */
void ts_vgelu_erf(float *x, int64_t n);

#endif
