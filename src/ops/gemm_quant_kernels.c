/*
 * Micro-kernels of the integer GEMM (gemm_quant.h) and their run-time dispatch.
 *
 * Every kernel computes the same numbers bit for bit: the int32 dot products of a run
 * are exact, and each run then adds, in run order, fma(I, d·f0, acc) and
 * fma(d·Σq, f1, acc) (min form) or fma(I, d·f0, acc) and fma(I', d·f1, acc) (halves:
 * I and I' over the two halves), so a forced fallback must reproduce the fast path
 * exactly, which the tests check.  The x86 variants are compiled with target
 * attributes, like gemm_kernels.c, so one binary carries them all.
 */
#include <math.h>
#include <string.h>

#include "core/cpu.h"
#include "core/error.h"
#include "ops/gemm_quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TS_X86 1
#endif

/* Scale of one run: max|x| / 127, and its q rounded to nearest even (the rounding of
 * lrintf and of cvtps2dq alike) after clamping, which also sends NaN to -127 the
 * way maxps does. */
static void quantize_row_scalar(const float *x, int64_t runs, int8_t *q, float *d, int32_t *sum)
{
    for (int64_t b = 0; b < runs; b++, x += 32, q += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(x[j]);
            amax = a > amax ? a : amax;
        }
        float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        int32_t s[2] = {0, 0};
        for (int j = 0; j < 32; j++) {
            q[j] = (int8_t)lrintf(fminf(fmaxf(x[j] * id, -127.0f), 127.0f));
            s[j / 16] += q[j];
        }
        d[b] = db;
        sum[2 * b] = s[0];
        sum[2 * b + 1] = s[1];
    }
}

#define SCALAR_MR 2
#define SCALAR_LANES 8

/* Adds run b's terms to acc in the order every kernel uses; dot[h] is the int32 dot
 * product over half h (for the forms other than halves, dot[0] is the whole run's). */
static inline float add_run(float acc, ts_qform form, const int32_t dot[2], const float *f, float d,
                            const int32_t *sum)
{
    acc = fmaf((float)dot[0], f[0] * d, acc);
    if (form.kind == TS_QFORM_MIN)
        acc = fmaf(d * (float)(sum[0] + sum[1]), f[1], acc);
    else if (form.kind == TS_QFORM_HALVES)
        acc = fmaf((float)dot[1], f[1] * d, acc);
    return acc;
}

static void tile_scalar(const ts_qtile *t)
{
    int64_t rb = ts_qrun_bytes(SCALAR_LANES, t->form);
    int halves = t->form.kind == TS_QFORM_HALVES;
    for (int r = 0; r < t->rows; r++) {
        const int8_t *q = t->q + r * t->runs * 32;
        const float *d = t->d + r * t->runs;
        const int32_t *sum = t->sum + 2 * r * t->runs;
        for (int c = 0; c < t->cols; c++) {
            int lane = c % SCALAR_LANES;
            const uint8_t *w = t->w + c / SCALAR_LANES * t->panel_bytes;
            float acc = 0.0f;
            for (int64_t b = 0; b < t->runs; b++, w += rb) {
                int32_t dot[2] = {0, 0};
                for (int k = 0; k < 32; k++) {
                    int u = w[(k / 4 * SCALAR_LANES + lane) * 4 + k % 4];
                    dot[halves && k >= 16] += (u - t->form.zero) * q[32 * b + k];
                }
                const float *f = (const float *)(w + 32 * SCALAR_LANES);
                float fl[2] = {f[lane], t->form.kind == TS_QFORM_ZERO ? 0.0f : f[SCALAR_LANES + lane]};
                acc = add_run(acc, t->form, dot, fl, d[b], sum + 2 * b);
            }
            float *out = t->c + r * t->ldc + c;
            *out = t->accumulate ? *out + acc : acc;
        }
    }
}

#ifdef TS_X86
/* Activation pointers of the tile's mr rows; missing rows repeat the last one (their
 * results are computed and not stored). */
static inline void tile_rows(const ts_qtile *t, int mr, const int8_t **q, const float **d, const int32_t **sum)
{
    for (int r = 0; r < mr; r++) {
        int64_t rr = r < t->rows ? r : t->rows - 1;
        q[r] = t->q + rr * t->runs * 32;
        d[r] = t->d + rr * t->runs;
        sum[r] = t->sum + 2 * rr * t->runs;
    }
}

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define VNNI_MR 4
#define VNNI_LANES 16

VNNI_TARGET static void quantize_row_avx512(const float *x, int64_t runs, int8_t *q, float *d, int32_t *sum)
{
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (int64_t b = 0; b < runs; b++, x += 32, q += 32) {
        __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps()); /* a NaN lane keeps 0 */
        m = _mm512_max_ps(_mm512_abs_ps(x1), m);
        float db = _mm512_reduce_max_ps(m) / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x0, vid), lo), hi));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x1, vid), lo), hi));
        _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(q1));
        d[b] = db;
        sum[2 * b] = _mm512_reduce_add_epi32(q0);
        sum[2 * b + 1] = _mm512_reduce_add_epi32(q1);
    }
}

/* 4 rows x 32 columns: 8 int32 sums of the current run (16 for halves) and 8 f32
 * accumulators.  Per group of 4 k, two loads of u feed 8 vpdpbusd with 4 broadcast
 * activations.  `kind` is a constant in each instance. */
VNNI_TARGET static inline __attribute__((always_inline)) void tile_vnni_body(const ts_qtile *t,
                                                                             const ts_qform_kind kind)
{
    const int64_t rb = ts_qrun_bytes(VNNI_LANES, t->form);
    const int halves = kind == TS_QFORM_HALVES;
    const int8_t *q[VNNI_MR];
    const float *d[VNNI_MR];
    const int32_t *sum[VNNI_MR];
    tile_rows(t, VNNI_MR, q, d, sum);
    __m512 acc[VNNI_MR][2];
    for (int r = 0; r < VNNI_MR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const uint8_t *w0 = t->w, *w1 = t->w + t->panel_bytes;
    for (int64_t b = 0; b < t->runs; b++, w0 += rb, w1 += rb) {
        __m512i dot[2][VNNI_MR][2]; /* [half][row][panel]; half 1 only for halves */
        for (int r = 0; r < VNNI_MR; r++) {
            int32_t s0 = sum[r][2 * b], s1 = sum[r][2 * b + 1];
            dot[0][r][0] = dot[0][r][1] = _mm512_set1_epi32(-t->form.zero * (halves ? s0 : s0 + s1));
            dot[1][r][0] = dot[1][r][1] = _mm512_set1_epi32(-t->form.zero * s1);
        }
        for (int g = 0; g < 8; g++) {
            __m512i u0 = _mm512_loadu_si512(w0 + 64 * g), u1 = _mm512_loadu_si512(w1 + 64 * g);
            int h = halves && g >= 4;
            for (int r = 0; r < VNNI_MR; r++) {
                int32_t a4;
                memcpy(&a4, q[r] + 32 * b + 4 * g, 4);
                __m512i a = _mm512_set1_epi32(a4);
                dot[h][r][0] = _mm512_dpbusd_epi32(dot[h][r][0], u0, a);
                dot[h][r][1] = _mm512_dpbusd_epi32(dot[h][r][1], u1, a);
            }
        }
        const float *f0 = (const float *)(w0 + 32 * VNNI_LANES), *f1 = (const float *)(w1 + 32 * VNNI_LANES);
        __m512 a0 = _mm512_loadu_ps(f0), a1 = _mm512_loadu_ps(f1);
        for (int r = 0; r < VNNI_MR; r++) {
            __m512 dr = _mm512_set1_ps(d[r][b]);
            acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[0][r][0]), _mm512_mul_ps(a0, dr), acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[0][r][1]), _mm512_mul_ps(a1, dr), acc[r][1]);
        }
        if (kind == TS_QFORM_ZERO)
            continue;
        __m512 b0 = _mm512_loadu_ps(f0 + VNNI_LANES), b1 = _mm512_loadu_ps(f1 + VNNI_LANES);
        for (int r = 0; r < VNNI_MR; r++) {
            if (halves) {
                __m512 dr = _mm512_set1_ps(d[r][b]);
                acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[1][r][0]), _mm512_mul_ps(b0, dr), acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[1][r][1]), _mm512_mul_ps(b1, dr), acc[r][1]);
            } else {
                __m512 e = _mm512_set1_ps(d[r][b] * (float)(sum[r][2 * b] + sum[r][2 * b + 1]));
                acc[r][0] = _mm512_fmadd_ps(e, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(e, b1, acc[r][1]);
            }
        }
    }
    for (int r = 0; r < t->rows; r++)
        for (int h = 0; h < 2; h++) {
            int n = t->cols - VNNI_LANES * h;
            if (n <= 0)
                break;
            __mmask16 mask = (__mmask16)((1u << (n < VNNI_LANES ? n : VNNI_LANES)) - 1);
            float *c = t->c + r * t->ldc + VNNI_LANES * h;
            __m512 v = acc[r][h];
            if (t->accumulate)
                v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, c), v);
            _mm512_mask_storeu_ps(c, mask, v);
        }
}

VNNI_TARGET static void tile_vnni(const ts_qtile *t)
{
    switch (t->form.kind) {
    case TS_QFORM_ZERO: tile_vnni_body(t, TS_QFORM_ZERO); break;
    case TS_QFORM_MIN: tile_vnni_body(t, TS_QFORM_MIN); break;
    case TS_QFORM_HALVES: tile_vnni_body(t, TS_QFORM_HALVES); break;
    }
}

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define AVX2_MR 2
#define AVX2_LANES 8

/* 2 rows x 16 columns on pmaddubsw (unsigned x signed bytes, pairs summed to int16 with
 * saturation) and pmaddwd (int16 pairs to int32).  Types whose u is small enough
 * (2 · max_u · 127 < 32768: all but Q8_0) multiply u itself, −z·Σq seeding the int32
 * sum as on VNNI, and sum `group` pmaddubsw results in int16 before widening (8 for
 * 4-bit u, 4 for 5-bit, 2 for 6-bit: never past 32767).  Q8_0 (`sign`) takes u − z
 * back to int8 (exact: it lies in [-128, 127]) and multiplies |u − z| by q carrying
 * its sign: each pair sum is at most 2 · 128 · 127, widened at once.  `kind` and
 * `sign` are constants in each instance. */
AVX2_TARGET static inline __attribute__((always_inline)) void tile_avx2_body(const ts_qtile *t,
                                                                             const ts_qform_kind kind, const int sign)
{
    const int64_t rb = ts_qrun_bytes(AVX2_LANES, t->form);
    const int halves = kind == TS_QFORM_HALVES;
    int group = 1;
    while (!sign && group < (halves ? 4 : 8) && 2 * group * 2 * 127 * t->form.max_u <= 32767)
        group *= 2;
    const int8_t *q[AVX2_MR];
    const float *d[AVX2_MR];
    const int32_t *sum[AVX2_MR];
    tile_rows(t, AVX2_MR, q, d, sum);
    const __m256i zero = _mm256_set1_epi8((char)t->form.zero), ones = _mm256_set1_epi16(1);
    __m256 acc[AVX2_MR][2];
    for (int r = 0; r < AVX2_MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const uint8_t *w0 = t->w, *w1 = t->w + t->panel_bytes;
    for (int64_t b = 0; b < t->runs; b++, w0 += rb, w1 += rb) {
        __m256i dot[2][AVX2_MR][2];
        for (int r = 0; r < AVX2_MR; r++) {
            int32_t s0 = sum[r][2 * b], s1 = sum[r][2 * b + 1], z = sign ? 0 : t->form.zero;
            dot[0][r][0] = dot[0][r][1] = _mm256_set1_epi32(-z * (halves ? s0 : s0 + s1));
            dot[1][r][0] = dot[1][r][1] = _mm256_set1_epi32(-z * s1);
        }
        for (int g0 = 0; g0 < 8; g0 += group) {
            __m256i p[AVX2_MR][2];
            for (int r = 0; r < AVX2_MR; r++)
                p[r][0] = p[r][1] = _mm256_setzero_si256();
            for (int g = g0; g < g0 + group; g++) {
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(w0 + 32 * g));
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(w1 + 32 * g));
                if (sign) {
                    v0 = _mm256_sub_epi8(v0, zero);
                    v1 = _mm256_sub_epi8(v1, zero);
                }
                __m256i a0 = sign ? _mm256_abs_epi8(v0) : v0, a1 = sign ? _mm256_abs_epi8(v1) : v1;
                for (int r = 0; r < AVX2_MR; r++) {
                    int32_t a4;
                    memcpy(&a4, q[r] + 32 * b + 4 * g, 4);
                    __m256i x = _mm256_set1_epi32(a4);
                    p[r][0] = _mm256_add_epi16(p[r][0], _mm256_maddubs_epi16(a0, sign ? _mm256_sign_epi8(x, v0) : x));
                    p[r][1] = _mm256_add_epi16(p[r][1], _mm256_maddubs_epi16(a1, sign ? _mm256_sign_epi8(x, v1) : x));
                }
            }
            int h = halves && g0 >= 4;
            for (int r = 0; r < AVX2_MR; r++) {
                dot[h][r][0] = _mm256_add_epi32(dot[h][r][0], _mm256_madd_epi16(p[r][0], ones));
                dot[h][r][1] = _mm256_add_epi32(dot[h][r][1], _mm256_madd_epi16(p[r][1], ones));
            }
        }
        const float *f0 = (const float *)(w0 + 32 * AVX2_LANES), *f1 = (const float *)(w1 + 32 * AVX2_LANES);
        __m256 s0 = _mm256_loadu_ps(f0), s1 = _mm256_loadu_ps(f1);
        for (int r = 0; r < AVX2_MR; r++) {
            __m256 dr = _mm256_set1_ps(d[r][b]);
            acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[0][r][0]), _mm256_mul_ps(s0, dr), acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[0][r][1]), _mm256_mul_ps(s1, dr), acc[r][1]);
        }
        if (kind == TS_QFORM_ZERO)
            continue;
        __m256 m0 = _mm256_loadu_ps(f0 + AVX2_LANES), m1 = _mm256_loadu_ps(f1 + AVX2_LANES);
        for (int r = 0; r < AVX2_MR; r++) {
            if (halves) {
                __m256 dr = _mm256_set1_ps(d[r][b]);
                acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[1][r][0]), _mm256_mul_ps(m0, dr), acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[1][r][1]), _mm256_mul_ps(m1, dr), acc[r][1]);
            } else {
                __m256 e = _mm256_set1_ps(d[r][b] * (float)(sum[r][2 * b] + sum[r][2 * b + 1]));
                acc[r][0] = _mm256_fmadd_ps(e, m0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(e, m1, acc[r][1]);
            }
        }
    }
    for (int r = 0; r < t->rows; r++)
        for (int h = 0; h < 2; h++) {
            int n = t->cols - AVX2_LANES * h;
            if (n <= 0)
                break;
            float *c = t->c + r * t->ldc + AVX2_LANES * h;
            __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            __m256 v = acc[r][h];
            if (t->accumulate)
                v = _mm256_add_ps(_mm256_maskload_ps(c, mask), v);
            _mm256_maskstore_ps(c, mask, v);
        }
}

AVX2_TARGET static void tile_avx2(const ts_qtile *t)
{
    switch (t->form.kind) {
    case TS_QFORM_ZERO:
        if (2 * 127 * t->form.max_u > 32767)
            tile_avx2_body(t, TS_QFORM_ZERO, 1);
        else
            tile_avx2_body(t, TS_QFORM_ZERO, 0);
        break;
    case TS_QFORM_MIN: tile_avx2_body(t, TS_QFORM_MIN, 0); break;
    case TS_QFORM_HALVES: tile_avx2_body(t, TS_QFORM_HALVES, 0); break;
    }
}
#endif

static const ts_qkernel qkernels[] = {
#ifdef TS_X86
    {"avx512vnni", VNNI_MR, VNNI_LANES, tile_vnni, quantize_row_avx512},
    {"avx2", AVX2_MR, AVX2_LANES, tile_avx2, quantize_row_scalar},
#endif
    {"scalar", SCALAR_MR, SCALAR_LANES, tile_scalar, quantize_row_scalar},
};
#define QKERNEL_COUNT ((int)(sizeof qkernels / sizeof qkernels[0]))

static int cpu_runs(const ts_qkernel *k)
{
    if (strcmp(k->name, "avx512vnni") == 0)
        return ts_cpu_has(TS_CPU_AVX512F | TS_CPU_AVX512BW | TS_CPU_AVX512VNNI);
    if (strcmp(k->name, "avx2") == 0)
        return ts_cpu_has(TS_CPU_AVX2 | TS_CPU_FMA);
    return 1;
}

static const ts_qkernel *best_kernel(void)
{
    for (int i = 0; i < QKERNEL_COUNT; i++)
        if (cpu_runs(&qkernels[i]))
            return &qkernels[i];
    return &qkernels[QKERNEL_COUNT - 1];
}

static const ts_qkernel *selected;

const ts_qkernel *ts_qgemm_kernel(void)
{
    if (!selected)
        selected = best_kernel();
    return selected;
}

int ts_qgemm_select(const char *name)
{
    if (!name || strcmp(name, "auto") == 0) {
        selected = best_kernel();
        return TS_OK;
    }
    for (int i = 0; i < QKERNEL_COUNT; i++)
        if (strcmp(qkernels[i].name, name) == 0) {
            if (!cpu_runs(&qkernels[i]))
                return ts_fail(TS_ERR_UNSUPPORTED, "quantised GEMM kernel '%s' needs instructions this CPU lacks",
                               name);
            selected = &qkernels[i];
            return TS_OK;
        }
    return ts_fail(TS_ERR_ARG, "unknown quantised GEMM kernel '%s' (avx512vnni, avx2, scalar or auto)", name);
}
