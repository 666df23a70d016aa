/*
 * ts_linear on block-quantised weights.
 *
 * Types with an integer form (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K) run the integer
 * kernels: every kernel this CPU has (forced in turn) must match a float64 product of
 * the dequantised weight with the quantised activations up to f32 rounding, give the
 * same bits as the portable kernel and as itself on 1 and 2 threads, and stay within
 * the activation quantisation's error bound of the product with the f32 activations.
 * Weights are random block bytes (every u, q = -128 included) with finite scales.
 * The activation quantiser is checked on its own; Q6_K (dequantised to f32) must
 * equal the product with the dequantised weight.
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

static const ts_dtype int_types[] = {TS_DTYPE_Q8_0, TS_DTYPE_Q4_0, TS_DTYPE_Q5_0, TS_DTYPE_Q4_1,
                                     TS_DTYPE_Q5_1, TS_DTYPE_Q4_K, TS_DTYPE_Q5_K};

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

/* Random bytes, then the f16 scale (and the min or dmin, for the types with one) set
 * to finite values. */
static unsigned char *random_blocks(ts_dtype t, int64_t n, unsigned long long *seed)
{
    int zero, has_min;
    CHECK(ts_quant_int_form(t, &zero, &has_min));
    size_t bytes = ts_dtype_bytes(t, (uint64_t)n), bb = ts_dtype_block_bytes(t);
    unsigned char *p = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        p[i] = (unsigned char)((test_randf(seed) + 1.0f) * 128.0f);
    for (size_t b = 0; b < bytes; b += bb) {
        put_f16(p + b, 0.05f * test_randf(seed));
        if (has_min)
            put_f16(p + b + 2, 0.05f * test_randf(seed));
    }
    return p;
}

/* Rows of A as the kernel in use quantises them. */
static void quantize(const float *a, int64_t M, int64_t K, int8_t *q, float *d, int32_t *sum)
{
    for (int64_t r = 0; r < M; r++)
        ts_qgemm_kernel()->quantize_row(a + r * K, K / 32, q + r * K, d + r * K / 32, sum + r * K / 32);
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
    int32_t s0[RUNS], s[RUNS];
    CHECK(select_kernel("scalar"));
    quantize(x, 1, 32 * RUNS, q0, d0, s0);
    for (int b = 0; b < RUNS; b++) {
        int sum = 0, top = 0;
        for (int j = 0; j < 32; j++) {
            int k = 32 * b + j;
            sum += q0[k];
            top = abs(q0[k]) > top ? abs(q0[k]) : top;
            if (k != 64 + 5)
                CHECK_MSG(fabs((double)x[k] - (double)d0[b] * q0[k]) <= 0.5000001 * d0[b], "run %d element %d", b, j);
        }
        CHECK(sum == s0[b]);
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

static qcase make_case(ts_dtype type, int64_t M, int64_t N, int64_t K, unsigned long long seed)
{
    qcase c = {type,
               M,
               N,
               K,
               rand_floats(M * K, &seed),
               malloc((size_t)(N * K) * sizeof(float)),
               rand_floats(N, &seed),
               malloc((size_t)(M * N) * sizeof(float)),
               random_blocks(type, N * K, &seed)};
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
    int32_t *sum = malloc((size_t)(M * runs) * sizeof *sum);
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
static void check_case(ts_dtype type, int64_t M, int64_t N, int64_t K, int with_bias)
{
    qcase c = make_case(type, M, N, K, 0x9e3779b97f4a7c15ull ^ (unsigned long long)(type * 131 + N * 7 + M));
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
                          ts_dtype_name(type), (long long)M, (long long)N, (long long)K);
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

static void test_integer_types(void)
{
    for (size_t t = 0; t < sizeof int_types / sizeof int_types[0]; t++) {
        int64_t block = ts_dtype_block_len(int_types[t]);
        check_case(int_types[t], 1, 1, block, 0);
        check_case(int_types[t], 7, 37, 3 * block, 1);
        check_case(int_types[t], 70, 67, 2 * block, 0);
    }
}

/* Sizes that cross a band of rows, several panels and a column block of packed weights. */
static void test_large(void)
{
    check_case(TS_DTYPE_Q8_0, 131, 300, 1280, 1);
    check_case(TS_DTYPE_Q4_K, 66, 1100, 4096, 0);
}

/* Q6_K has no integer form: it is dequantised and multiplied as f32. */
static void test_q6_k(void)
{
    qcase c = {TS_DTYPE_Q6_K, 4, 129, 256, NULL, NULL, NULL, NULL, NULL};
    unsigned long long seed = 99;
    c.a = rand_floats(c.M * c.K, &seed);
    float *w = rand_floats(c.N * c.K, &seed);
    c.bias = rand_floats(c.N, &seed);
    c.blocks = malloc(ts_dtype_bytes(c.type, (uint64_t)(c.N * c.K)));
    CHECK(ts_quantize(c.type, w, c.blocks, (size_t)(c.N * c.K)) == 0);
    ts_dequantize(c.type, c.blocks, w, (size_t)(c.N * c.K));
    c.want = malloc((size_t)(c.M * c.N) * sizeof(float));
    run_linear(&c, 1, c.want);
    double worst = 0;
    for (int64_t m = 0; m < c.M; m++)
        for (int64_t n = 0; n < c.N; n++) {
            double want = c.bias[n];
            for (int64_t k = 0; k < c.K; k++)
                want += (double)c.a[m * c.K + k] * w[n * c.K + k];
            double d = fabs(want - c.want[m * c.N + n]) / (1.0 + fabs(want));
            worst = d > worst ? d : worst;
        }
    CHECK_MSG(worst < 1e-5, "Q6_K: relative error %.3g", worst);
    free(w);
    free_case(&c);
}

TEST_MAIN(TEST(test_activation_quantiser), TEST(test_integer_types), TEST(test_large), TEST(test_q6_k))
