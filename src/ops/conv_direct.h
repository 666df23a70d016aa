/*
 * Direct AVX2+FMA convolution for 3x3 stride-1 layers with few output channels
 * (internal to src/ops; ts_conv2d dispatches to it).
 *
 * With 32 output channels — RRDN's dense blocks — the implicit GEMM spends as long
 * unfolding im2col panels as multiplying them, since each packed element feeds only
 * O FMAs.  Reading the (zero-padded) image directly with unaligned loads removes
 * the packing altogether.
 */
#ifndef TS_OPS_CONV_DIRECT_H
#define TS_OPS_CONV_DIRECT_H

#include "core/tensor.h"
#include "ops/conv.h"

/* True when ts_conv2d_direct handles this (already validated) convolution on this CPU. */
int ts_conv2d_direct_fits(const ts_weight *w, ts_conv_params p);

/* Same contract as ts_conv2d, for shapes checked by it and accepted by ts_conv2d_direct_fits. */
int ts_conv2d_direct(const ts_tensor *x, const ts_weight *w, const ts_weight *bias, ts_conv_params p, ts_tensor *y);

#endif
