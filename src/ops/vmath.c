/*
 * Vectorised max and exp-and-sum; see vmath.h.  The polynomial follows the classic
 * Cephes expf recipe: n = round(x·log2 e), r = x - n·ln 2 in two parts (so r is exact
 * to a few ulp), exp(r) by a minimax polynomial, then scaling by 2^n through the
 * exponent bits.  Inputs below -87.3 (where expf goes subnormal) give 0.
 */
#include "ops/vmath.h"

#include <math.h>

#include "ops/gemm_engine.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.37626f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(underflow, y);
}

__attribute__((target("avx2,fma"))) static float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static float vmax_avx2(const float *x, int64_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

__attribute__((target("avx2,fma"))) static float vexp_sum_avx2(float *x, int64_t n, float shift)
{
    __m256 s = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 y = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        _mm256_storeu_ps(x + i, y);
        s = _mm256_add_ps(s, y);
    }
    if (i < n) { /* the tail through a padded vector, so every element sees the same exp */
        float t[8];
        int64_t rest = n - i;
        for (int j = 0; j < 8; j++)
            t[j] = j < rest ? x[i + j] : -INFINITY;
        __m256 y = exp8(_mm256_sub_ps(_mm256_loadu_ps(t), sh));
        _mm256_storeu_ps(t, y);
        s = _mm256_add_ps(s, y);
        for (int64_t j = 0; j < rest; j++)
            x[i + j] = t[j];
    }
    return hsum8(s);
}

/* x · sigmoid(z) = x / (1 + exp(-z)) for z = k·x (cubic = 0) or the tanh-GELU
 * argument (cubic = 0.044715); exp8 saturates instead of overflowing, so very
 * negative x gives a tiny value rather than -0. */
__attribute__((target("avx2,fma"))) static void vsigmoid_mul_avx2(float *x, int64_t n, float k, float cubic)
{
    const __m256 vk = _mm256_set1_ps(-k), vc = _mm256_set1_ps(cubic), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(vk, _mm256_fmadd_ps(_mm256_mul_ps(vc, v), _mm256_mul_ps(v, v), v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, exp8(z))));
    }
    if (i < n) {
        float t[8] = {0};
        for (int64_t j = i; j < n; j++)
            t[j - i] = x[j];
        vsigmoid_mul_avx2(t, 8, k, cubic);
        for (int64_t j = i; j < n; j++)
            x[j] = t[j - i];
    }
}

static const float erfc_coef[10] = {-1.26551223f, 1.00002368f, 0.37409196f,  0.09678418f, -0.18628806f,
                                     0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};

__attribute__((target("avx2,fma"))) static void vgelu_erf_avx2(float *x, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), two = _mm256_set1_ps(2.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f), scale = _mm256_set1_ps(-0.70710678118654752f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), w = _mm256_mul_ps(v, scale); /* erfc(w), w = -x / sqrt 2 */
        __m256 z = _mm256_andnot_ps(sign, w);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
        __m256 p = _mm256_set1_ps(erfc_coef[9]);
        for (int c = 8; c >= 0; c--)
            p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(erfc_coef[c]));
        __m256 e = _mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(z, z, p)));
        __m256 erfc = _mm256_blendv_ps(e, _mm256_sub_ps(two, e), w); /* w < 0: 2 - erfc(|w|) */
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), erfc));
    }
    if (i < n) {
        float t[8] = {0};
        for (int64_t j = i; j < n; j++)
            t[j - i] = x[j];
        vgelu_erf_avx2(t, 8);
        for (int64_t j = i; j < n; j++)
            x[j] = t[j - i];
    }
}

/* The vector paths follow the GEMM kernel choice: the AVX2 and AVX-512 kernels
 * (which need AVX2) carry the vector packer, and ts_gemm_select("scalar") turns
 * every vector path off at once, which is how the tests reach the libm fallbacks. */
static int have_avx2(void) { return ts_gemm_kernel_get()->pack_rows != NULL; }
#else
static int have_avx2(void) { return 0; }
static void vsigmoid_mul_avx2(float *x, int64_t n, float k, float cubic) { (void)x, (void)n, (void)k, (void)cubic; }
static void vgelu_erf_avx2(float *x, int64_t n) { (void)x, (void)n; }
static float vmax_avx2(const float *x, int64_t n) { return (void)x, (void)n, 0.0f; }
static float vexp_sum_avx2(float *x, int64_t n, float shift) { return (void)x, (void)n, (void)shift, 0.0f; }
#endif

float ts_vmax(const float *x, int64_t n)
{
    if (have_avx2())
        return vmax_avx2(x, n);
    float r = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        r = x[i] > r ? x[i] : r;
    return r;
}

float ts_vexp_sum(float *x, int64_t n, float shift)
{
    if (have_avx2())
        return vexp_sum_avx2(x, n, shift);
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += x[i] = expf(x[i] - shift);
    return s;
}

static void sigmoid_mul(float *x, int64_t n, float k, float cubic)
{
    if (have_avx2()) {
        vsigmoid_mul_avx2(x, n, k, cubic);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-k * (x[i] + cubic * x[i] * x[i] * x[i])));
}

void ts_vsilu(float *x, int64_t n, float k) { sigmoid_mul(x, n, k, 0.0f); }

void ts_vgelu_tanh(float *x, int64_t n) { sigmoid_mul(x, n, 1.5957691216057307f, 0.044715f); }

void ts_vgelu_erf(float *x, int64_t n)
{
    if (have_avx2()) {
        vgelu_erf_avx2(x, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) /* 1 + erf(u) = erfc(-u): no cancellation for x < 0 */
        x[i] = 0.5f * x[i] * erfcf(x[i] * -0.70710678118654752f);
}
