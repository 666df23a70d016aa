/*
 * Vectorised max and exp-and-sum; see vmath.h.  The polynomial follows the classic
 * Cephes expf recipe: n = round(x·log2 e), r = x - n·ln 2 in two parts (so r is exact
 * to a few ulp), exp(r) by a minimax polynomial, then scaling by 2^n through the
 * exponent bits.  Inputs below -87.3 (where expf goes subnormal) give 0.
 */
#include "ops/vmath.h"

#include <math.h>

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

static int have_avx2(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
}
#else
static int have_avx2(void) { return 0; }
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
