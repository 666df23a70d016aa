/*
 * 2-D convolution, NCHW activations, weights [O, C, kh, kw] in any floating dtype.
 */
#ifndef TS_OPS_CONV_H
#define TS_OPS_CONV_H

#include "core/tensor.h"

typedef struct {
    int stride;
    int pad_top, pad_left, pad_bottom, pad_right; /* zero padding */
} ts_conv_params;

/* Symmetric padding `pad` on every side. */
static inline ts_conv_params ts_conv_same(int stride, int pad)
{
    return (ts_conv_params){stride, pad, pad, pad, pad};
}

/* Output size of one spatial dim. */
static inline int64_t ts_conv_out_size(int64_t in, int64_t k, int stride, int pad_before, int pad_after)
{
    return (in + pad_before + pad_after - k) / stride + 1;
}

/* y[N, O, Ho, Wo] = conv2d(x[N, C, H, W], w) + bias.  y must be allocated with the
 * output shape; bias may be NULL.  Returns TS_ERR_ARG naming the mismatch when the
 * shapes do not agree. */
int ts_conv2d(const ts_tensor *x, const ts_weight *w, const ts_weight *bias, ts_conv_params p, ts_tensor *y);

#endif
