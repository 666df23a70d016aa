/*
 * ts_linear on block-quantised weights (GGUF Q8_0, Q4_0, Q4_K, Q6_K) equals the
 * product with the dequantised weight, for row counts that cross the slab size and
 * with and without a bias.
 */
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "core/tensor.h"
#include "ops/gemm.h"
#include "test.h"

static void check_type(ts_dtype type, int64_t M, int64_t N, int64_t K, int with_bias)
{
    unsigned long long seed = 0x9e3779b97f4a7c15ull ^ (unsigned long long)(type * 131 + N);
    float *a = malloc((size_t)(M * K) * sizeof *a), *w = malloc((size_t)(N * K) * sizeof *w);
    float *wq = malloc((size_t)(N * K) * sizeof *wq), *bias = malloc((size_t)N * sizeof *bias);
    float *c = malloc((size_t)(M * N) * sizeof *c);
    void *blocks = malloc(ts_dtype_bytes(type, (size_t)(N * K)));
    for (int64_t i = 0; i < M * K; i++)
        a[i] = test_randf(&seed);
    for (int64_t i = 0; i < N * K; i++)
        w[i] = test_randf(&seed);
    for (int64_t i = 0; i < N; i++)
        bias[i] = test_randf(&seed);
    CHECK(ts_quantize(type, w, blocks, (size_t)(N * K)) == 0);
    ts_dequantize(type, blocks, wq, (size_t)(N * K));
    ts_weight W = {.dtype = type, .ndim = 2, .shape = {N, K}, .data = blocks};
    ts_weight B = {.dtype = TS_DTYPE_F32, .ndim = 1, .shape = {N}, .data = bias};
    ts_linear(a, K, M, &W, with_bias ? &B : NULL, c, N);
    double worst = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double want = with_bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < K; k++)
                want += (double)a[m * K + k] * wq[n * K + k];
            double d = fabs(want - c[m * N + n]) / (1.0 + fabs(want));
            worst = d > worst ? d : worst;
        }
    CHECK_MSG(worst < 1e-5, "%s M=%lld N=%lld K=%lld bias=%d: relative error %.3g", ts_dtype_name(type),
              (long long)M, (long long)N, (long long)K, with_bias, worst);
    free(a), free(w), free(wq), free(bias), free(c), free(blocks);
}

static void test_q8_0(void)
{
    check_type(TS_DTYPE_Q8_0, 7, 130, 64, 1);
    check_type(TS_DTYPE_Q8_0, 1, 65, 96, 0);
}

static void test_q4_0(void) { check_type(TS_DTYPE_Q4_0, 5, 70, 64, 1); }

static void test_k_quants(void)
{
    check_type(TS_DTYPE_Q4_K, 3, 67, 512, 1);
    check_type(TS_DTYPE_Q6_K, 4, 129, 256, 0);
}

TEST_MAIN(TEST(test_q8_0), TEST(test_q4_0), TEST(test_k_quants))
