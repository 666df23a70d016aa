/*
 * Normalisations.  gamma / beta are weights in any floating dtype and may be NULL
 * (no affine).  y may alias x.
 */
#ifndef TS_OPS_NORM_H
#define TS_OPS_NORM_H

#include <stdint.h>

#include "core/tensor.h"

/* x: [N, C, ...spatial] (ndim >= 2); statistics over each group of C/groups channels
 * and all spatial positions.  groups must divide C (the process aborts otherwise:
 * callers check their model config). */
void ts_group_norm(const ts_tensor *x, int groups, const ts_weight *gamma, const ts_weight *beta, float eps,
                   ts_tensor *y);
/* x: rows of length d; per-row mean / variance. */
void ts_layer_norm(const float *x, float *y, int64_t rows, int64_t d, const ts_weight *gamma, const ts_weight *beta,
                   float eps);
/* x: rows of length d; y = x / sqrt(mean(x²) + eps) · gamma. */
void ts_rms_norm(const float *x, float *y, int64_t rows, int64_t d, const ts_weight *gamma, float eps);

#endif
