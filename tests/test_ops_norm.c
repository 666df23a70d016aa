/* Group, layer and RMS norm against float64 loops, with affine weights in each dtype,
 * in place and out of place. */
#include <math.h>
#include <string.h>

#include "core/threads.h"
#include "ops/norm.h"
#include "ops_check.h"

/* Reference normalisation of n values with stride 1; gamma/beta indexed by element / per. */
static void ref_norm(const float *x, double *y, int64_t n, int64_t per, const float *gamma, const float *beta,
                     int64_t c0, double eps, int rms)
{
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < n; i++)
        mean += x[i];
    mean = rms ? 0.0 : mean / (double)n;
    for (int64_t i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    double inv = 1.0 / sqrt(var / (double)n + eps);
    for (int64_t i = 0; i < n; i++) {
        int64_t c = c0 + i / per;
        y[i] = (x[i] - mean) * inv * (gamma ? gamma[c] : 1.0) + (beta ? beta[c] : 0.0);
    }
}

static void check_group_norm(int ndim, const int64_t *shape, int groups, ts_dtype dtype, int affine, int in_place,
                             unsigned long long *seed)
{
    int64_t n = shape[0], c = shape[1], spatial = 1;
    for (int d = 2; d < ndim; d++)
        spatial *= shape[d];
    int64_t total = n * c * spatial, per_group = c / groups;
    float *xd = rand_floats(total, seed);
    for (int64_t i = 0; i < total; i++)
        xd[i] = xd[i] * 3.0f + 5.0f; /* an offset mean, as real activations have */
    test_weight g = make_weight(dtype, 1, (int64_t[]){c}, seed), b = make_weight(dtype, 1, (int64_t[]){c}, seed);
    double *ref = malloc((size_t)total * sizeof(double));
    for (int64_t i = 0; i < n * groups; i++)
        ref_norm(xd + i * per_group * spatial, ref + i * per_group * spatial, per_group * spatial, spatial,
                 affine ? g.exact : NULL, affine ? b.exact : NULL, (i % groups) * per_group, 1e-6, 0);
    float *yd = in_place ? xd : malloc((size_t)total * sizeof(float));
    ts_tensor x = ts_tensor_view(xd, ndim, shape), y = ts_tensor_view(yd, ndim, shape);
    ts_group_norm(&x, groups, affine ? &g.w : NULL, affine ? &b.w : NULL, 1e-6f, &y);
    CHECK_CLOSE(yd, ref, total, 1e-5, "group_norm %s groups=%d affine=%d in_place=%d", ts_dtype_name(dtype), groups,
                affine, in_place);
    if (!in_place)
        free(yd);
    free(xd);
    free(ref);
    free_weight(&g);
    free_weight(&b);
}

static void test_group_norm(void)
{
    unsigned long long seed = 4;
    ts_threads_set(2);
    for (int d = 0; d < 3; d++) {
        check_group_norm(4, (int64_t[]){2, 12, 5, 7}, 4, weight_dtypes[d], 1, d == 1, &seed);
        check_group_norm(4, (int64_t[]){1, 64, 9, 9}, 32, weight_dtypes[d], 1, 0, &seed);
        check_group_norm(3, (int64_t[]){3, 6, 11}, 1, weight_dtypes[d], d != 2, 1, &seed);
        check_group_norm(2, (int64_t[]){2, 10}, 5, weight_dtypes[d], 1, 0, &seed);
    }
}

static void check_rows(int rms, int64_t rows, int64_t d, ts_dtype dtype, int affine, unsigned long long *seed)
{
    float *x = rand_floats(rows * d, seed);
    for (int64_t i = 0; i < rows * d; i++)
        x[i] = x[i] * 4.0f - 1.5f;
    test_weight g = make_weight(dtype, 1, (int64_t[]){d}, seed), b = make_weight(dtype, 1, (int64_t[]){d}, seed);
    double *ref = malloc((size_t)(rows * d) * sizeof(double));
    for (int64_t r = 0; r < rows; r++)
        ref_norm(x + r * d, ref + r * d, d, 1, affine ? g.exact : NULL, affine && !rms ? b.exact : NULL, 0, 1e-5,
                 rms);
    float *y = malloc((size_t)(rows * d) * sizeof(float));
    if (rms)
        ts_rms_norm(x, y, rows, d, affine ? &g.w : NULL, 1e-5f);
    else
        ts_layer_norm(x, y, rows, d, affine ? &g.w : NULL, affine ? &b.w : NULL, 1e-5f);
    CHECK_CLOSE(y, ref, rows * d, 1e-5, "%s %s rows=%lld d=%lld affine=%d", rms ? "rms_norm" : "layer_norm",
                ts_dtype_name(dtype), (long long)rows, (long long)d, affine);
    /* in place gives the same bits */
    float *copy = malloc((size_t)(rows * d) * sizeof(float));
    memcpy(copy, x, (size_t)(rows * d) * sizeof(float));
    if (rms)
        ts_rms_norm(copy, copy, rows, d, affine ? &g.w : NULL, 1e-5f);
    else
        ts_layer_norm(copy, copy, rows, d, affine ? &g.w : NULL, affine ? &b.w : NULL, 1e-5f);
    CHECK(memcmp(copy, y, (size_t)(rows * d) * sizeof(float)) == 0);
    free(x);
    free(y);
    free(copy);
    free(ref);
    free_weight(&g);
    free_weight(&b);
}

static void test_layer_and_rms_norm(void)
{
    unsigned long long seed = 5;
    ts_threads_set(2);
    for (int rms = 0; rms < 2; rms++)
        for (int d = 0; d < 3; d++) {
            check_rows(rms, 5, 33, weight_dtypes[d], 1, &seed);
            check_rows(rms, 77, 768, weight_dtypes[d], d != 1, &seed);
            check_rows(rms, 1, 1, weight_dtypes[d], 1, &seed);
        }
}

TEST_MAIN(TEST(test_group_norm), TEST(test_layer_and_rms_norm))
