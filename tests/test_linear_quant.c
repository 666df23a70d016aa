/*
 * ts_linear on block-quantised weights.
 *
 * Every block type (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K, Q6_K) runs the integer
 * kernels: every kernel this CPU has (forced in turn) must match a float64 product of
 * the dequantised weight with the quantised activations up to f32 rounding, give the
 * same bits as the portable kernel and as itself on 1 and 2 threads, and stay within
 * the activation quantisation's error bound of the product with the f32 activations.
 * Weights are random block bytes (every u, q = -128 included) with finite scales.
 * The activation quantiser is checked on its own.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/quant.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "ops/gemm.h"
#include "ops/gemm_quant.h"
#include "test.h"

static const char *const kernels[] = {"scalar", "avx2", "avx512vnni"};
#define KERNEL_COUNT 3

/* Every block type, with the offsets of its f16 scale fields in a block. */
static const struct {
    ts_dtype type;
    int f16_at[2]; /* -1: none */
} block_types[] = {{TS_DTYPE_Q8_0, {0, -1}}, {TS_DTYPE_Q4_0, {0, -1}}, {TS_DTYPE_Q5_0, {0, -1}},
                   {TS_DTYPE_Q4_1, {0, 2}},  {TS_DTYPE_Q5_1, {0, 2}},  {TS_DTYPE_Q4_K, {0, 2}},
                   {TS_DTYPE_Q5_K, {0, 2}},  {TS_DTYPE_Q6_K, {208, -1}}};
#define BLOCK_TYPE_COUNT ((int)(sizeof block_types / sizeof block_types[0]))

static float *rand_floats(int64_t n, unsigned long long *seed)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = test_randf(seed);
    return x;
}

static void put_f16(unsigned char *p, float v)
{
    uint16_t h = ts_f32_to_f16(v);
    p[0] = (unsigned char)h;
    p[1] = (unsigned char)(h >> 8);
}

/* Random bytes, then the f16 fields (scale, and min or dmin where there is one) set to
 * finite values. */
static unsigned char *random_blocks(int type_index, int64_t n, unsigned long long *seed)
{
    ts_dtype t = block_types[type_index].type;
    size_t bytes = ts_dtype_bytes(t, (uint64_t)n), bb = ts_dtype_block_bytes(t);
    unsigned char *p = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        p[i] = (unsigned char)((test_randf(seed) + 1.0f) * 128.0f);
    for (size_t b = 0; b < bytes; b += bb)
        for (int f = 0; f < 2; f++)
            if (block_types[type_index].f16_at[f] >= 0)
                put_f16(p + b + block_types[type_index].f16_at[f], 0.05f * test_randf(seed));
    return p;
}

/* Rows of A as the kernel in use quantises them. */
static void quantize(const float *a, int64_t M, int64_t K, int8_t *q, float *d, int32_t *sum)
{
    for (int64_t r = 0; r < M; r++)
        ts_qgemm_kernel()->quantize_row(a + r * K, K / 32, q + r * K, d + r * K / 32, sum + 2 * r * K / 32);
}

static int select_kernel(const char *name) { return ts_qgemm_select(name) == TS_OK; }

static void test_activation_quantiser(void)
{
    enum { RUNS = 40 };
    unsigned long long seed = 7;
    float *x = rand_floats(32 * RUNS, &seed);
    for (int j = 0; j < 32; j++) /* an all-zero run, a run of huge values, a lone NaN */
        x[j] = 0.0f, x[32 + j] *= 1e30f;
    x[64 + 5] = NAN;
    int8_t q0[32 * RUNS], q[32 * RUNS];
    float d0[RUNS], d[RUNS];
    int32_t s0[2 * RUNS], s[2 * RUNS];
    CHECK(select_kernel("scalar"));
    quantize(x, 1, 32 * RUNS, q0, d0, s0);
    for (int b = 0; b < RUNS; b++) {
        int sum[2] = {0, 0}, top = 0;
        for (int j = 0; j < 32; j++) {
            int k = 32 * b + j;
            sum[j / 16] += q0[k];
            top = abs(q0[k]) > top ? abs(q0[k]) : top;
            if (k != 64 + 5)
                CHECK_MSG(fabs((double)x[k] - (double)d0[b] * q0[k]) <= 0.5000001 * d0[b], "run %d element %d", b, j);
        }
        CHECK(sum[0] == s0[2 * b] && sum[1] == s0[2 * b + 1]);
        CHECK(b == 0 ? d0[b] == 0.0f && top == 0 : top == 127);
    }
    CHECK(q0[64 + 5] == -127);
    for (int i = 1; i < KERNEL_COUNT; i++) {
        if (!select_kernel(kernels[i]))
            continue;
        quantize(x, 1, 32 * RUNS, q, d, s);
        CHECK_MSG(!memcmp(q, q0, sizeof q) && !memcmp(d, d0, sizeof d) && !memcmp(s, s0, sizeof s), "%s", kernels[i]);
    }
    ts_qgemm_select("auto");
    free(x);
}

typedef struct {
    ts_dtype type;
    int64_t M, N, K;
    float *a, *wf, *bias, *want;
    unsigned char *blocks;
} qcase;

static qcase make_case(int type_index, int64_t M, int64_t N, int64_t K, unsigned long long seed)
{
    ts_dtype type = block_types[type_index].type;
    qcase c = {type,
               M,
               N,
               K,
               rand_floats(M * K, &seed),
               malloc((size_t)(N * K) * sizeof(float)),
               rand_floats(N, &seed),
               malloc((size_t)(M * N) * sizeof(float)),
               random_blocks(type_index, N * K, &seed)};
    ts_dequantize(type, c.blocks, c.wf, (size_t)(N * K));
    return c;
}

static void free_case(qcase *c) { free(c->a), free(c->wf), free(c->bias), free(c->want), free(c->blocks); }

static void run_linear(const qcase *c, int with_bias, float *out)
{
    ts_weight W = {.dtype = c->type, .ndim = 2, .shape = {c->N, c->K}, .data = c->blocks};
    ts_weight B = {.dtype = TS_DTYPE_F32, .ndim = 1, .shape = {c->N}, .data = c->bias};
    ts_linear(c->a, c->K, c->M, &W, with_bias ? &B : NULL, out, c->N);
}

/* The kernel in use against float64 sums over the quantised activations, and against
 * the product with the f32 activations within Σ_runs d/2 · Σ|w| (the quantiser's
 * rounding bound) plus the same f32 slack. */
static void check_against_reference(const qcase *c, int with_bias, const float *got, const char *kernel)
{
    int64_t M = c->M, N = c->N, K = c->K, runs = K / 32;
    int8_t *q = malloc((size_t)(M * K));
    float *d = malloc((size_t)(M * runs) * sizeof *d);
    int32_t *sum = malloc((size_t)(2 * M * runs) * sizeof *sum);
    quantize(c->a, M, K, q, d, sum);
    double worst = 0.0, worst_f32 = 0.0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double exact = with_bias ? c->bias[n] : 0.0, f32 = exact, mag = fabs(exact), bound = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double w = c->wf[n * K + k], dk = d[m * runs + k / 32];
                exact += dk * q[m * K + k] * w;
                f32 += (double)c->a[m * K + k] * w;
                mag += fabs(dk * q[m * K + k] * w);
                bound += 0.5 * dk * fabs(w);
            }
            double tol = (double)(2 * runs + 4) * 6e-8 * mag + 1e-30, e = fabs(got[m * N + n] - exact) / tol;
            double e32 = fabs(got[m * N + n] - f32) / (bound * 1.0001 + tol);
            worst = e > worst ? e : worst;
            worst_f32 = e32 > worst_f32 ? e32 : worst_f32;
        }
    CHECK_MSG(worst <= 1.0 && worst_f32 <= 1.0,
              "%s %s M=%lld N=%lld K=%lld bias=%d: %.3g of the f32 tolerance, %.3g of the quantisation bound", kernel,
              ts_dtype_name(c->type), (long long)M, (long long)N, (long long)K, with_bias, worst, worst_f32);
    free(q), free(d), free(sum);
}

/* Every kernel and thread count on one case; all must give the portable kernel's bits. */
static void check_case(int type_index, int64_t M, int64_t N, int64_t K, int with_bias)
{
    unsigned long long seed = 0x9e3779b97f4a7c15ull ^ (unsigned long long)(type_index * 131 + N * 7 + M);
    qcase c = make_case(type_index, M, N, K, seed);
    float *got = malloc((size_t)(M * N) * sizeof *got);
    for (int i = 0; i < KERNEL_COUNT; i++) {
        if (!select_kernel(kernels[i]))
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            ts_threads_set(threads);
            run_linear(&c, with_bias, got);
            if (i == 0 && threads == 1) {
                check_against_reference(&c, with_bias, got, kernels[i]);
                memcpy(c.want, got, (size_t)(M * N) * sizeof *got);
            } else {
                CHECK_MSG(!memcmp(got, c.want, (size_t)(M * N) * sizeof *got),
                          "%s on %d threads differs from scalar (%s M=%lld N=%lld K=%lld)", kernels[i], threads,
                          ts_dtype_name(c.type), (long long)M, (long long)N, (long long)K);
                if (threads == 1)
                    check_against_reference(&c, with_bias, got, kernels[i]);
            }
        }
    }
    ts_qgemm_select("auto");
    ts_threads_set(0);
    free(got);
    free_case(&c);
}

static void test_block_types(void)
{
    for (int t = 0; t < BLOCK_TYPE_COUNT; t++) {
        int64_t block = ts_dtype_block_len(block_types[t].type);
        check_case(t, 1, 1, block, 0);
        check_case(t, 7, 37, 3 * block, 1);
        check_case(t, 70, 67, 2 * block, 0);
    }
}

/* Sizes that cross a band of rows, several panels and a column block of packed weights
 * (Q8_0: index 0, Q4_K: 5, Q6_K: 7). */
static void test_large(void)
{
    check_case(0, 131, 300, 1280, 1);
    check_case(5, 66, 1100, 4096, 0);
    check_case(7, 9, 1100, 4096, 1);
}

/* Row strides of A and C wider than K and N: the same bits as the packed case, and C's
 * padding untouched. */
static void test_strides(void)
{
    enum { M = 9, N = 45, K = 256, LDA = K + 5, LDC = N + 3 };
    qcase c = make_case(5, M, N, K, 31);
    run_linear(&c, 1, c.want);
    float *a = malloc(sizeof(float) * M * LDA), *out = malloc(sizeof(float) * M * LDC);
    for (int i = 0; i < M * LDA; i++)
        a[i] = NAN;
    for (int i = 0; i < M * LDC; i++)
        out[i] = -1.0f;
    for (int m = 0; m < M; m++)
        memcpy(a + m * LDA, c.a + m * K, K * sizeof(float));
    ts_weight W = {.dtype = c.type, .ndim = 2, .shape = {N, K}, .data = c.blocks};
    ts_weight B = {.dtype = TS_DTYPE_F32, .ndim = 1, .shape = {N}, .data = c.bias};
    ts_linear(a, LDA, M, &W, &B, out, LDC);
    int same = 1;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < LDC; n++)
            same &= n < N ? !memcmp(&out[m * LDC + n], &c.want[m * N + n], sizeof(float)) : out[m * LDC + n] == -1.0f;
    CHECK(same);
    free(a), free(out);
    free_case(&c);
}

TEST_MAIN(TEST(test_activation_quantiser), TEST(test_block_types), TEST(test_large), TEST(test_strides))
