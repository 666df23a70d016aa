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
    for (int64_t k = 0; k < kc; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), x;
        x = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(x, b0, c20);
        c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(x, b0, c30);
        c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(x, b0, c40);
        c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(x, b0, c50);
        c51 = _mm256_fmadd_ps(x, b1, c51);
    }
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
#endif

/* Cache blocks: mc x kc of A (~150 KB) sits in a 512 KB L2, a kc x nr panel of B in
 * L1, the kc x nc block of B in L3. */
static const ts_gemm_kernel kernels[] = {
#ifdef TS_X86
    {"avx512", 6, 32, 144, 256, 3072, kernel_avx512},
    {"avx2", 6, 16, 144, 256, 3072, kernel_avx2},
#endif
    {"scalar", SCALAR_MR, SCALAR_NR, 128, 256, 2048, kernel_scalar},
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
