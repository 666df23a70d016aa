/* The direct 3x3 stride-1 conv (ops/conv_direct.c) against a float64 loop: sizes off
 * every block (W not a multiple of 8 or 24, odd C, O not a multiple of the channel
 * block, band rows that do not divide H), symmetric and (0,1,0,1) padding, batch 2,
 * f32 / f16 / bf16 weights, with and without bias, on 1 and 2 threads.  Called both
 * directly and through ts_conv2d, which must dispatch the same shapes to it. */
#include <stdio.h>

#include "core/threads.h"
#include "ops/conv.h"
#include "ops/conv_direct.h"
#include "ops_check.h"

typedef struct {
    int64_t n, c, h, w, o;
    ts_conv_params p;
} direct_case;

static double *reference(const direct_case *dc, const float *x, const float *w, const float *b, int64_t ho,
                         int64_t wo)
{
    double *ref = malloc((size_t)(dc->n * dc->o * ho * wo) * sizeof(double));
    for (int64_t n = 0; n < dc->n; n++)
        for (int64_t o = 0; o < dc->o; o++)
            for (int64_t oy = 0; oy < ho; oy++)
                for (int64_t ox = 0; ox < wo; ox++) {
                    double s = b ? b[o] : 0.0;
                    for (int64_t c = 0; c < dc->c; c++)
                        for (int64_t ky = 0; ky < 3; ky++)
                            for (int64_t kx = 0; kx < 3; kx++) {
                                int64_t iy = oy + ky - dc->p.pad_top, ix = ox + kx - dc->p.pad_left;
                                if (iy >= 0 && iy < dc->h && ix >= 0 && ix < dc->w)
                                    s += (double)x[((n * dc->c + c) * dc->h + iy) * dc->w + ix] *
                                         w[((o * dc->c + c) * 3 + ky) * 3 + kx];
                            }
                    ref[((n * dc->o + o) * ho + oy) * wo + ox] = s;
                }
    return ref;
}

static void check_direct(const direct_case *dc, ts_dtype dtype, int with_bias, int through_conv2d,
                         unsigned long long *seed)
{
    int64_t ho = ts_conv_out_size(dc->h, 3, 1, dc->p.pad_top, dc->p.pad_bottom);
    int64_t wo = ts_conv_out_size(dc->w, 3, 1, dc->p.pad_left, dc->p.pad_right);
    int64_t ny = dc->n * dc->o * ho * wo;
    float *xd = rand_floats(dc->n * dc->c * dc->h * dc->w, seed);
    test_weight W = make_weight(dtype, 4, (int64_t[]){dc->o, dc->c, 3, 3}, seed);
    test_weight b = make_weight(dtype, 1, (int64_t[]){dc->o}, seed);
    float *yd = rand_floats(ny, seed);
    double *ref = reference(dc, xd, W.exact, with_bias ? b.exact : NULL, ho, wo);
    ts_tensor x = ts_tensor_view(xd, 4, (int64_t[]){dc->n, dc->c, dc->h, dc->w});
    ts_tensor y = ts_tensor_view(yd, 4, (int64_t[]){dc->n, dc->o, ho, wo});
    const ts_weight *bw = with_bias ? &b.w : NULL;
    CHECK((through_conv2d ? ts_conv2d(&x, &W.w, bw, dc->p, &y) : ts_conv2d_direct(&x, &W.w, bw, dc->p, &y)) == 0);
    CHECK_CLOSE(yd, ref, ny, 1e-5, "direct %s via %s n=%lld c=%lld %lldx%lld o=%lld pad=(%d,%d,%d,%d) bias=%d",
                ts_dtype_name(dtype), through_conv2d ? "ts_conv2d" : "ts_conv2d_direct", (long long)dc->n,
                (long long)dc->c, (long long)dc->h, (long long)dc->w, (long long)dc->o, dc->p.pad_top,
                dc->p.pad_left, dc->p.pad_bottom, dc->p.pad_right, with_bias);
    free(xd);
    free(yd);
    free(ref);
    free_weight(&W);
    free_weight(&b);
}

static void test_direct_cases(void)
{
    static const direct_case cases[] = {
        {2, 5, 9, 11, 7, {1, 1, 1, 1, 1}},    /* batch 2, W < one vector, O off the block */
        {1, 33, 13, 29, 32, {1, 1, 1, 1, 1}}, /* 29 = 24 + 5: a full and a partial pixel block */
        {2, 7, 10, 17, 3, {1, 0, 0, 1, 1}},   /* (0,1,0,1) padding, 3 outputs like RRDN's last conv */
        {1, 3, 6, 50, 9, {1, 0, 0, 0, 0}},    /* unpadded: 48 = two full 24-pixel blocks */
        {1, 19, 5, 40, 64, {1, 2, 1, 1, 2}},  /* uneven padding, the largest O taken */
        {2, 4, 3, 3, 5, {1, 1, 1, 1, 1}},     /* tiny image: one band, one partial vector */
    };
    unsigned long long seed = 11;
    for (int threads = 1; threads <= 2; threads++) {
        ts_threads_set(threads);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int d = 0; d < 3; d++) {
                ts_weight probe = {.dtype = weight_dtypes[d], .ndim = 4, .shape = {cases[i].o, cases[i].c, 3, 3}};
                if (ts_conv2d_direct_fits(&probe, cases[i].p))
                    check_direct(&cases[i], weight_dtypes[d], (int)(i + d) % 2 == 0, 0, &seed);
                else if (i == 0 && d == 0 && threads == 1)
                    printf("direct conv not available on this CPU: checking ts_conv2d only\n");
                check_direct(&cases[i], weight_dtypes[d], (int)(i + d) % 2 == 1, 1, &seed);
            }
    }
}

/* Shapes the direct path must leave to the GEMM: stride 2, 1x1, many outputs. */
static void test_direct_declines(void)
{
    ts_weight w = {.dtype = TS_DTYPE_F32, .ndim = 4, .shape = {32, 8, 3, 3}};
    CHECK(!ts_conv2d_direct_fits(&w, ts_conv_same(2, 1)));
    w.shape[2] = w.shape[3] = 1;
    CHECK(!ts_conv2d_direct_fits(&w, ts_conv_same(1, 0)));
    w.shape[2] = w.shape[3] = 3;
    w.shape[0] = 65;
    CHECK(!ts_conv2d_direct_fits(&w, ts_conv_same(1, 1)));
}

TEST_MAIN(TEST(test_direct_cases), TEST(test_direct_declines))
