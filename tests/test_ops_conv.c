/* ts_conv2d against a float64 direct convolution: 3x3 and 1x1, stride 1 and 2,
 * symmetric and asymmetric padding, batch > 1, channel counts off every block size,
 * weights in f32 / f16 / bf16 and block-quantised kernels (GGUF files; rows that are
 * not whole blocks); and shape errors reported, not crashed on. */
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
#include "ops/conv.h"
#include "ops_check.h"

typedef struct {
    int64_t n, c, h, w, o, k;
    ts_conv_params p;
} conv_case;

static void check_conv(const conv_case *cc, ts_dtype dtype, int with_bias, unsigned long long *seed)
{
    const ts_conv_params p = cc->p;
    int64_t ho = ts_conv_out_size(cc->h, cc->k, p.stride, p.pad_top, p.pad_bottom);
    int64_t wo = ts_conv_out_size(cc->w, cc->k, p.stride, p.pad_left, p.pad_right);
    float *xd = rand_floats(cc->n * cc->c * cc->h * cc->w, seed);
    test_weight W = make_weight(dtype, 4, (int64_t[]){cc->o, cc->c, cc->k, cc->k}, seed);
    test_weight b = make_weight(ts_dtype_is_block(dtype) ? TS_DTYPE_F32 : dtype, 1, (int64_t[]){cc->o}, seed);
    int64_t ny = cc->n * cc->o * ho * wo;
    float *yd = rand_floats(ny, seed);
    double *ref = malloc((size_t)ny * sizeof(double));
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t o = 0; o < cc->o; o++)
            for (int64_t oy = 0; oy < ho; oy++)
                for (int64_t ox = 0; ox < wo; ox++) {
                    double s = with_bias ? b.exact[o] : 0.0;
                    for (int64_t c = 0; c < cc->c; c++)
                        for (int64_t ky = 0; ky < cc->k; ky++)
                            for (int64_t kx = 0; kx < cc->k; kx++) {
                                int64_t iy = oy * p.stride + ky - p.pad_top, ix = ox * p.stride + kx - p.pad_left;
                                if (iy < 0 || iy >= cc->h || ix < 0 || ix >= cc->w)
                                    continue;
                                s += (double)xd[((n * cc->c + c) * cc->h + iy) * cc->w + ix] *
                                     W.exact[((o * cc->c + c) * cc->k + ky) * cc->k + kx];
                            }
                    ref[((n * cc->o + o) * ho + oy) * wo + ox] = s;
                }
    ts_tensor x = ts_tensor_view(xd, 4, (int64_t[]){cc->n, cc->c, cc->h, cc->w});
    ts_tensor y = ts_tensor_view(yd, 4, (int64_t[]){cc->n, cc->o, ho, wo});
    CHECK(ts_conv2d(&x, &W.w, with_bias ? &b.w : NULL, p, &y) == 0);
    CHECK_CLOSE(yd, ref, ny, 1e-5, "conv %s n=%lld c=%lld %lldx%lld o=%lld k=%lld s=%d pad=(%d,%d,%d,%d) bias=%d",
                ts_dtype_name(dtype), (long long)cc->n, (long long)cc->c, (long long)cc->h, (long long)cc->w,
                (long long)cc->o, (long long)cc->k, p.stride, p.pad_top, p.pad_left, p.pad_bottom, p.pad_right,
                with_bias);
    free(xd);
    free(yd);
    free(ref);
    free_weight(&W);
    free_weight(&b);
}

static void test_conv_cases(void)
{
    static const conv_case cases[] = {
        {2, 5, 9, 11, 7, 3, {1, 1, 1, 1, 1}},     /* 3x3 same, batch 2 */
        {1, 37, 10, 13, 20, 3, {1, 1, 1, 1, 1}},  /* K = 333 > one kc block */
        {2, 6, 9, 12, 9, 3, {2, 0, 0, 1, 1}},     /* SD VAE downsample: stride 2, pad (0,1,0,1) */
        {1, 13, 17, 17, 11, 3, {2, 1, 1, 1, 1}},  /* stride 2, odd size */
        {2, 19, 7, 9, 23, 1, {1, 0, 0, 0, 0}},    /* 1x1 as plain GEMM */
        {1, 10, 9, 8, 6, 1, {2, 0, 0, 0, 0}},     /* 1x1 stride 2 */
        {1, 4, 6, 5, 3, 3, {1, 2, 0, 1, 3}},      /* uneven padding on every side */
        {1, 3, 40, 70, 5, 3, {1, 1, 1, 1, 1}},    /* many output pixels: N past one nc block */
        {2, 40, 31, 29, 7, 3, {1, 1, 1, 1, 1}},   /* few outputs, many pixels: the small-M path, 2 k blocks */
        {1, 24, 40, 36, 9, 1, {1, 0, 0, 0, 0}},   /* small-M path on a plain 1x1 */
    };
    unsigned long long seed = 3;
    for (int threads = 1; threads <= 2; threads++) {
        ts_threads_set(threads);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int d = 0; d < 3; d++)
                check_conv(&cases[i], weight_dtypes[d], (int)(i + d) % 2 == 0, &seed);
    }
}

/* Quantised kernels are widened per call: the result is the convolution with the
 * values the blocks hold. */
static void test_conv_block_kernels(void)
{
    static const conv_case cases[] = {
        {1, 32, 9, 11, 8, 3, {1, 1, 1, 1, 1}},  /* rows of 288: whole Q8_0 blocks, not Q4_K ones */
        {2, 16, 6, 7, 16, 1, {1, 0, 0, 0, 0}},  /* 1x1 */
        {1, 32, 12, 12, 8, 3, {2, 0, 0, 1, 1}}, /* VAE downsample */
    };
    const ts_dtype types[] = {TS_DTYPE_Q8_0, TS_DTYPE_Q4_K};
    unsigned long long seed = 5;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int d = 0; d < 2; d++)
            check_conv(&cases[i], types[d], (int)i % 2 == 0, &seed);
}

static void test_conv_shape_errors(void)
{
    float buf[64] = {0};
    float wbuf[64] = {0};
    ts_weight w = {.dtype = TS_DTYPE_F32, .ndim = 4, .shape = {2, 3, 3, 3}, .data = wbuf};
    ts_tensor x = ts_tensor_view(buf, 4, (int64_t[]){1, 2, 4, 4}); /* 2 channels, weight wants 3 */
    ts_tensor y = ts_tensor_view(buf, 4, (int64_t[]){1, 2, 4, 4});
    CHECK(ts_conv2d(&x, &w, NULL, ts_conv_same(1, 1), &y) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "input channels") != NULL);
    x.shape[1] = 3;
    y.shape[2] = 5; /* wrong output size */
    CHECK(ts_conv2d(&x, &w, NULL, ts_conv_same(1, 1), &y) == TS_ERR_ARG);
    y.shape[2] = 4;
    CHECK(ts_conv2d(&x, &w, NULL, ts_conv_same(0, 1), &y) == TS_ERR_ARG);
    ts_tensor small = ts_tensor_view(buf, 4, (int64_t[]){1, 3, 1, 1}); /* kernel larger than the padded input */
    CHECK(ts_conv2d(&small, &w, NULL, ts_conv_same(1, 0), &y) == TS_ERR_ARG);
    ts_tensor two = ts_tensor_view(buf, 4, (int64_t[]){1, 3, 2, 2}); /* (2 - 3) / 2 + 1 would say 1 */
    ts_tensor one = ts_tensor_view(buf, 4, (int64_t[]){1, 2, 1, 1});
    CHECK(ts_conv2d(&two, &w, NULL, ts_conv_same(2, 0), &one) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "larger than") != NULL);
}

TEST_MAIN(TEST(test_conv_cases), TEST(test_conv_block_kernels), TEST(test_conv_shape_errors))
