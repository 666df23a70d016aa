/*
 * Vectorised row primitives for softmax-like loops (internal to src/ops).
 *
 * libm's expf is accurate but scalar, and in attention one exp per score costs as
 * much as the two GEMMs around it.  These helpers use an AVX2 polynomial exp (a
 * Cody-Waite reduction and a degree-6 polynomial, within 2 ulp of expf over the
 * range softmax uses) when the CPU has AVX2+FMA, and libm otherwise.
 */
#ifndef TS_OPS_VMATH_H
#define TS_OPS_VMATH_H

#include <stdint.h>

/* max(x[0..n)), -INFINITY for n == 0. */
float ts_vmax(const float *x, int64_t n);
/* x[i] = exp(x[i] - shift) (exactly 0 where x[i] is -inf); returns the sum. */
float ts_vexp_sum(float *x, int64_t n, float shift);

#endif
