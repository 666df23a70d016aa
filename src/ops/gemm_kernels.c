/*
 * GEMM micro-kernels and their run-time dispatch.
 *
 * Each kernel keeps an mr x nr tile of C in registers for the whole kc loop and
 * reads A and B only from packed panels, so its inner loop is loads, broadcasts and
 * FMAs.  The x86 variants are compiled with target attributes (not with global
 * flags) so one binary carries them all and picks at run time; the portable C
 * kernel is the reference the others must agree with.  Sums run in k order with one
 * rounding per FMA, so results differ from a plain loop only by FMA contraction.
 */
#include <string.h>

#include "core/error.h"
#include "ops/gemm.h"
#include "ops/gemm_engine.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TS_X86 1
#endif

#define SCALAR_MR 4
#define SCALAR_NR 8

static void kernel_scalar(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                          int accumulate)
{
    float acc[SCALAR_MR][SCALAR_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++, a += SCALAR_MR, b += SCALAR_NR)
        for (int i = 0; i < SCALAR_MR; i++)
            for (int j = 0; j < SCALAR_NR; j++)
                acc[i][j] += a[i] * b[j];
    for (int i = 0; i < SCALAR_MR; i++)
        for (int j = 0; j < SCALAR_NR; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + alpha * acc[i][j] : alpha * acc[i][j];
}

#ifdef TS_X86
/* 6 x 16: twelve ymm accumulators, two B vectors and one broadcast A fill 15 of the
 * 16 registers. */
__attribute__((target("avx2,fma"))) static void kernel_avx2(int64_t kc, const float *a, const float *b, float *c,
                                                            int64_t ldc, float alpha, int accumulate)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps();
    __m256 c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps();
    __m256 c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define AVX2_STEP(o)                                                                                                   \
    do {                                                                                                               \
        __m256 b0 = _mm256_loadu_ps(b + 16 * (o)), b1 = _mm256_loadu_ps(b + 16 * (o) + 8), x;                          \
        x = _mm256_broadcast_ss(a + 6 * (o) + 0);                                                                      \
        c00 = _mm256_fmadd_ps(x, b0, c00);                                                                             \
        c01 = _mm256_fmadd_ps(x, b1, c01);                                                                             \
        x = _mm256_broadcast_ss(a + 6 * (o) + 1);                                                                      \
        c10 = _mm256_fmadd_ps(x, b0, c10);                                                                             \
        c11 = _mm256_fmadd_ps(x, b1, c11);                                                                             \
        x = _mm256_broadcast_ss(a + 6 * (o) + 2);                                                                      \
        c20 = _mm256_fmadd_ps(x, b0, c20);                                                                             \
        c21 = _mm256_fmadd_ps(x, b1, c21);                                                                             \
        x = _mm256_broadcast_ss(a + 6 * (o) + 3);                                                                      \
        c30 = _mm256_fmadd_ps(x, b0, c30);                                                                             \
        c31 = _mm256_fmadd_ps(x, b1, c31);                                                                             \
        x = _mm256_broadcast_ss(a + 6 * (o) + 4);                                                                      \
        c40 = _mm256_fmadd_ps(x, b0, c40);                                                                             \
        c41 = _mm256_fmadd_ps(x, b1, c41);                                                                             \
        x = _mm256_broadcast_ss(a + 6 * (o) + 5);                                                                      \
        c50 = _mm256_fmadd_ps(x, b0, c50);                                                                             \
        c51 = _mm256_fmadd_ps(x, b1, c51);                                                                             \
    } while (0)
    /* C is touched only after the loop: fetch its (possibly two) lines per row now. */
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4, a += 24, b += 64) {
        _mm_prefetch((const char *)(b + 256), _MM_HINT_T0);
        AVX2_STEP(0);
        AVX2_STEP(1);
        _mm_prefetch((const char *)(b + 288), _MM_HINT_T0);
        AVX2_STEP(2);
        AVX2_STEP(3);
    }
    for (; k < kc; k++, a += 6, b += 16)
        AVX2_STEP(0);
#undef AVX2_STEP
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    __m256 va = _mm256_set1_ps(alpha);
    for (int i = 0; i < 6; i++)
        for (int h = 0; h < 2; h++) {
            float *p = c + i * ldc + h * 8;
            __m256 v = accumulate ? _mm256_fmadd_ps(va, acc[2 * i + h], _mm256_loadu_ps(p))
                                  : _mm256_mul_ps(va, acc[2 * i + h]);
            _mm256_storeu_ps(p, v);
        }
}

/* 6 x 32 on zmm registers: the same shape as the AVX2 kernel at twice the width.
 * Not runnable on the development machine (no AVX-512); tests cover it wherever the
 * CPU has it. */
__attribute__((target("avx512f"))) static void kernel_avx512(int64_t kc, const float *a, const float *b, float *c,
                                                             int64_t ldc, float alpha, int accumulate)
{
    __m512 acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += 6, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        for (int i = 0; i < 6; i++) {
            __m512 x = _mm512_set1_ps(a[i]);
            acc[2 * i] = _mm512_fmadd_ps(x, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm512_fmadd_ps(x, b1, acc[2 * i + 1]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    for (int i = 0; i < 6; i++)
        for (int h = 0; h < 2; h++) {
            float *p = c + i * ldc + h * 16;
            __m512 v = accumulate ? _mm512_fmadd_ps(va, acc[2 * i + h], _mm512_loadu_ps(p))
                                  : _mm512_mul_ps(va, acc[2 * i + h]);
            _mm512_storeu_ps(p, v);
        }
}

/* 8 rows x 8 steps of a K-contiguous operand, transposed in registers. */
__attribute__((target("avx2,fma,f16c"))) static __m256 load8(ts_dtype t, const void *row, int64_t k)
{
    if (t == TS_DTYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + k)));
    if (t == TS_DTYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + k))), 16));
    return _mm256_loadu_ps((const float *)row + k);
}

__attribute__((target("avx2,fma,f16c"))) static void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* One panel (rows <= width <= 32) of a K-contiguous f32 / f16 / bf16 operand: groups
 * of 8 rows by 8 steps go through an in-register transpose; leftover steps and rows
 * past `rows` are handled one element at a time / as zeros. */
__attribute__((target("avx2,fma,f16c"))) static void pack_rows_avx2(const ts_operand *op, int64_t r0, int64_t rows,
                                                                   int64_t k0, int64_t kc, int width, float *dst)
{
    size_t es = ts_dtype_size(op->dtype);
    const unsigned char *base = (const unsigned char *)op->data + (r0 * op->ld + k0) * (int64_t)es;
    int64_t k8 = kc & ~(int64_t)7;
    for (int g = 0; g < width; g += 8) {
        int n = width - g < 8 ? width - g : 8; /* lanes stored */
        const void *row[8];
        for (int i = 0; i < 8; i++)
            row[i] = g + i < rows ? base + (g + i) * op->ld * (int64_t)es : NULL;
        for (int64_t k = 0; k < k8; k += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = row[i] ? load8(op->dtype, row[i], k) : _mm256_setzero_ps();
            transpose8(r);
            for (int j = 0; j < 8; j++) {
                float *d = dst + (k + j) * width + g;
                if (n == 8) {
                    _mm256_storeu_ps(d, r[j]);
                } else if (n == 6) { /* the mr = 6 A panels */
                    _mm_storeu_ps(d, _mm256_castps256_ps128(r[j]));
                    _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(r[j], 1));
                } else {
                    float tmp[8];
                    _mm256_storeu_ps(tmp, r[j]);
                    for (int i = 0; i < n; i++)
                        d[i] = tmp[i];
                }
            }
        }
        for (int64_t k = k8; k < kc; k++)
            for (int i = 0; i < n; i++) {
                float v = 0.0f;
                if (row[i])
                    ts_to_f32(op->dtype, (const unsigned char *)row[i] + k * (int64_t)es, &v, 1);
                dst[k * width + g + i] = v;
            }
    }
}
#endif

/* Cache blocks: mc x kc of A (~210 KB) sits in a 512 KB L2, a kc x nr panel of B
 * (20 KB) in L1 next to one of A, the kc x nc block of B in L3. */
static const ts_gemm_kernel kernels[] = {
#ifdef TS_X86
    {"avx512", 6, 32, 168, 320, 3072, kernel_avx512, pack_rows_avx2},
    {"avx2", 6, 16, 168, 320, 3072, kernel_avx2, pack_rows_avx2},
#endif
    {"scalar", SCALAR_MR, SCALAR_NR, 128, 256, 2048, kernel_scalar, NULL},
};
#define KERNEL_COUNT ((int)(sizeof kernels / sizeof kernels[0]))

static int cpu_runs(const ts_gemm_kernel *k)
{
#ifdef TS_X86
    if (strcmp(k->name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f");
    if (strcmp(k->name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return strcmp(k->name, "scalar") == 0;
}

static const ts_gemm_kernel *selected;

static const ts_gemm_kernel *best_kernel(void)
{
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (cpu_runs(&kernels[i]))
            return &kernels[i];
    return &kernels[KERNEL_COUNT - 1];
}

const ts_gemm_kernel *ts_gemm_kernel_get(void)
{
    if (!selected)
        selected = best_kernel();
    return selected;
}

const char *ts_gemm_kernel_name(void) { return ts_gemm_kernel_get()->name; }

int ts_gemm_select(const char *name)
{
    if (!name || strcmp(name, "auto") == 0) {
        selected = best_kernel();
        return TS_OK;
    }
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (strcmp(kernels[i].name, name) == 0) {
            if (!cpu_runs(&kernels[i]))
                return ts_fail(TS_ERR_UNSUPPORTED, "GEMM kernel '%s' needs instructions this CPU lacks", name);
            selected = &kernels[i];
            return TS_OK;
        }
    return ts_fail(TS_ERR_ARG, "unknown GEMM kernel '%s' (avx512, avx2, scalar or auto)", name);
}
