/*
 * conv2d as an implicit GEMM: for one image, y[O, Ho·Wo] = W[O, C·kh·kw] · im2col(x)
 * where the im2col matrix is never built — the GEMM packer unfolds the kc x nc block
 * it needs straight from the image (TS_OPND_IM2COL).  The output layout of that
 * product is already NCHW, and the weight is read in its stored dtype as the A
 * operand (a block-quantised one, from a GGUF file, is widened per call).  A 1x1
 * stride-1 unpadded conv is the plain product W · x[C, H·W].  3x3 stride-1 convs
 * with few output channels, where packing would cost as much as the product, go to
 * the direct kernel in conv_direct.c instead.
 */
#include "ops/conv.h"

#include <stdlib.h>

#include "core/error.h"
#include "ops/conv_direct.h"
#include "ops/gemm_engine.h"

static int check_shapes(const ts_tensor *x, const ts_weight *w, const ts_weight *bias, ts_conv_params p,
                        const ts_tensor *y)
{
    char a[64], b[64];
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4)
        return ts_fail(TS_ERR_ARG, "conv2d: x %s, w %s, y %s must all be 4-D",
                       ts_shape_str(a, sizeof a, x->ndim, x->shape), ts_shape_str(b, sizeof b, w->ndim, w->shape),
                       ts_shape_str(b, sizeof b, y->ndim, y->shape));
    if (p.stride < 1 || p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0)
        return ts_fail(TS_ERR_ARG, "conv2d: bad stride %d or padding (%d, %d, %d, %d)", p.stride, p.pad_top,
                       p.pad_left, p.pad_bottom, p.pad_right);
    if (w->shape[1] != x->shape[1])
        return ts_fail(TS_ERR_ARG, "conv2d: weight %s expects %lld input channels, x %s has %lld",
                       ts_shape_str(a, sizeof a, w->ndim, w->shape), (long long)w->shape[1],
                       ts_shape_str(b, sizeof b, x->ndim, x->shape), (long long)x->shape[1]);
    if (!ts_dtype_is_float(w->dtype) || (bias && !ts_dtype_is_float(bias->dtype)))
        return ts_fail(TS_ERR_ARG, "conv2d: weight dtype %s is not floating", ts_dtype_name(w->dtype));
    if (bias && ts_weight_numel(bias) != w->shape[0])
        return ts_fail(TS_ERR_ARG, "conv2d: bias has %lld elements for %lld output channels",
                       (long long)ts_weight_numel(bias), (long long)w->shape[0]);
    if (x->shape[2] + p.pad_top + p.pad_bottom < w->shape[2] || x->shape[3] + p.pad_left + p.pad_right < w->shape[3])
        return ts_fail(TS_ERR_ARG, "conv2d: kernel %s is larger than the padded input %s",
                       ts_shape_str(a, sizeof a, w->ndim, w->shape), ts_shape_str(b, sizeof b, x->ndim, x->shape));
    int64_t ho = ts_conv_out_size(x->shape[2], w->shape[2], p.stride, p.pad_top, p.pad_bottom);
    int64_t wo = ts_conv_out_size(x->shape[3], w->shape[3], p.stride, p.pad_left, p.pad_right);
    if (ho < 1 || wo < 1 || y->shape[0] != x->shape[0] || y->shape[1] != w->shape[0] || y->shape[2] != ho ||
        y->shape[3] != wo)
        return ts_fail(TS_ERR_ARG, "conv2d: output %s should be [%lld, %lld, %lld, %lld]",
                       ts_shape_str(a, sizeof a, y->ndim, y->shape), (long long)x->shape[0], (long long)w->shape[0],
                       (long long)ho, (long long)wo);
    return TS_OK;
}

/* A block-quantised kernel (from a GGUF file) is widened for this call only: the
 * GEMM packer reads element types, and a kernel's rows need not be whole blocks. */
static int conv_widened(const ts_tensor *x, const ts_weight *w, const ts_weight *bias, ts_conv_params p, ts_tensor *y)
{
    ts_weight wide = *w;
    float *f = malloc((size_t)ts_weight_numel(w) * sizeof *f);
    if (!f)
        return ts_fail(TS_ERR_NOMEM, "conv2d: no memory to widen a %s kernel", ts_dtype_name(w->dtype));
    ts_weight_to_f32(w, f);
    wide.dtype = TS_DTYPE_F32;
    wide.data = f;
    int rc = ts_conv2d(x, &wide, bias, p, y);
    free(f);
    return rc;
}

int ts_conv2d(const ts_tensor *x, const ts_weight *w, const ts_weight *bias, ts_conv_params p, ts_tensor *y)
{
    int rc = check_shapes(x, w, bias, p, y);
    if (rc < 0)
        return rc;
    if (ts_dtype_is_block(w->dtype))
        return conv_widened(x, w, bias, p, y);
    if (ts_conv2d_direct_fits(w, p))
        return ts_conv2d_direct(x, w, bias, p, y);
    int64_t batch = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t O = w->shape[0], kh = w->shape[2], kw = w->shape[3], ho = y->shape[2], wo = y->shape[3];
    int64_t K = C * kh * kw, P = ho * wo;

    float *b = NULL;
    ts_operand wa = {.kind = TS_OPND_ROWS, .dtype = w->dtype, .data = w->data, .ld = K};
    if (bias) {
        b = malloc((size_t)O * sizeof(float));
        if (!b)
            return ts_fail(TS_ERR_NOMEM, "conv2d: no memory for the bias");
        ts_weight_to_f32(bias, b);
    }

    ts_im2col_geom g = {C, H, W, kh, kw, ho, wo, p.stride, p.pad_top, p.pad_left};
    int plain = kh == 1 && kw == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0 && p.pad_bottom == 0 &&
                p.pad_right == 0;
    for (int64_t n = 0; n < batch; n++) {
        const float *xn = x->data + n * C * H * W;
        float *yn = y->data + n * O * P;
        ts_operand cols = plain ? (ts_operand){.kind = TS_OPND_COLS, .dtype = TS_DTYPE_F32, .data = xn, .ld = P}
                                : (ts_operand){.kind = TS_OPND_IM2COL, .dtype = TS_DTYPE_F32, .data = xn, .conv = &g};
        if (b)
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < P; i++)
                    yn[o * P + i] = b[o];
        ts_gemm_run(O, P, K, &wa, &cols, 1.0f, yn, P, b != NULL);
    }
    free(b);
    return TS_OK;
}
