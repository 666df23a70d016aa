/*
 * Direct 3x3 stride-1 convolution with AVX2+FMA, for layers with few output channels.
 *
 * The implicit GEMM in conv.c packs every im2col element once per output-channel
 * block; with O = 32 that packing costs as much as the FMAs it feeds.  Here the
 * image is read in place instead: a band of input rows is copied once into a
 * per-thread scratch with its zero border (so the inner loop has no edge tests and
 * the copy is ~1.5x the input, not 9x), and a register block of CB output channels
 * x up to 24 consecutive output pixels of one row accumulates over the 9 taps of a
 * chunk of input channels — CB broadcast weights and 3 unaligned input loads per 12
 * FMAs — and every output block reads the chunk while it is still in L1.
 * Weights are widened once per call to f32 laid out [O/CB][C][9][CB], so the
 * broadcasts walk memory in order.  Threads take bands of output rows.
 */
#include "ops/conv_direct.h"

#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TS_X86 1
#endif

#define CB 4          /* output channels per register block */
#define PXV 3         /* 8-pixel vectors per register block: CB x PXV accumulators + PXV inputs + 1 weight = 16 ymm */
#define BAND_ROWS 4   /* output rows per thread item */
#define CHUNK 32      /* input channels per pass: their rows stay in L1 while every output block reads them */
#define MAX_OUT 64    /* measured on RRDN: its O = 64 convs gain too; larger O is left to the GEMM, which reuses
                         each packed element O times (unmeasured above 64) */

int ts_conv2d_direct_fits(const ts_weight *w, ts_conv_params p)
{
#ifdef TS_X86
    return w->shape[2] == 3 && w->shape[3] == 3 && p.stride == 1 && w->shape[0] <= MAX_OUT &&
           ts_cpu_has(TS_CPU_AVX2 | TS_CPU_FMA);
#else
    (void)w;
    (void)p;
    return 0;
#endif
}

#ifdef TS_X86

typedef struct {
    const float *x, *wt, *bias; /* wt: [ob][C][9][CB]; bias: ob * CB (zeros past O) */
    float *y, *scratch;
    int64_t C, H, W, O, ho, wo;
    int64_t wp;     /* row stride of the padded band: room for the last vector's overrun */
    int64_t bands;  /* bands of output rows per image */
    size_t per_worker;
    int pad_top, pad_left;
} direct_job;

/* Copies input rows [oy0 - pad_top, oy0 - pad_top + rows + 2) of image n into s as
 * [C][rows + 2][wp], zero outside the image. */
static void pad_band(const direct_job *j, int64_t n, int64_t oy0, int64_t rows, float *s)
{
    const float *xn = j->x + n * j->C * j->H * j->W;
    for (int64_t c = 0; c < j->C; c++)
        for (int64_t r = 0; r < rows + 2; r++) {
            float *d = s + (c * (rows + 2) + r) * j->wp;
            int64_t iy = oy0 + r - j->pad_top;
            if (iy < 0 || iy >= j->H) {
                memset(d, 0, (size_t)j->wp * sizeof(float));
                continue;
            }
            memset(d, 0, (size_t)j->pad_left * sizeof(float));
            memcpy(d + j->pad_left, xn + (c * j->H + iy) * j->W, (size_t)j->W * sizeof(float));
            memset(d + j->pad_left + j->W, 0, (size_t)(j->wp - j->pad_left - j->W) * sizeof(float));
        }
}

/* One register block: CB output channels (nch of them real) x nv vectors of pixels
 * (npx real) of one output row, over input channels [c0, c0 + cn).  in points at
 * channel c0, the block's first tap; the sum starts from the bias b, or from out when
 * b is NULL (a later channel chunk).  nv is a constant in every caller, so the arrays
 * below live in registers. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
block(int nv, const float *in, int64_t cstride, int64_t wp, const float *wt, int64_t cn, const float *b, float *out,
      int64_t ostride, int nch, int npx)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 acc[CB][PXV];
    for (int o = 0; o < CB; o++) /* a variable bound on o would send acc to the stack */
        for (int v = 0; v < nv; v++) {
            const float *d = out + o * ostride + 8 * v;
            int left = npx - 8 * v;
            if (b)
                acc[o][v] = _mm256_set1_ps(b[o]);
            else if (o >= nch)
                acc[o][v] = _mm256_setzero_ps();
            else if (left >= 8)
                acc[o][v] = _mm256_loadu_ps(d);
            else
                acc[o][v] = _mm256_maskload_ps(d, _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane));
        }
    const int64_t off[9] = {0, 1, 2, wp, wp + 1, wp + 2, 2 * wp, 2 * wp + 1, 2 * wp + 2};
    for (int64_t c = 0; c < cn; c++, in += cstride)
#pragma GCC unroll 1 /* unrolled taps make the compiler spill the accumulators */
        for (int t = 0; t < 9; t++, wt += CB) {
            const float *p = in + off[t];
            __m256 xv[PXV];
            for (int v = 0; v < nv; v++)
                xv[v] = _mm256_loadu_ps(p + 8 * v);
            for (int o = 0; o < CB; o++) {
                __m256 wb = _mm256_broadcast_ss(wt + o);
                for (int v = 0; v < nv; v++)
                    acc[o][v] = _mm256_fmadd_ps(wb, xv[v], acc[o][v]);
            }
        }
    for (int o = 0; o < CB; o++)
        for (int v = 0; v < nv; v++) {
            float *d = out + o * ostride + 8 * v;
            int left = npx - 8 * v;
            if (o >= nch)
                continue;
            if (left >= 8)
                _mm256_storeu_ps(d, acc[o][v]);
            else
                _mm256_maskstore_ps(d, _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane), acc[o][v]);
        }
}

__attribute__((target("avx2,fma"))) static void run_bands(void *ctx, int64_t begin, int64_t end, int worker)
{
    const direct_job *j = ctx;
    float *s = j->scratch + (size_t)worker * j->per_worker;
    int64_t P = j->ho * j->wo, obs = (j->O + CB - 1) / CB;
    for (int64_t item = begin; item < end; item++) {
        int64_t n = item / j->bands, oy0 = item % j->bands * BAND_ROWS;
        int64_t rows = j->ho - oy0 < BAND_ROWS ? j->ho - oy0 : BAND_ROWS, cstride = (rows + 2) * j->wp;
        pad_band(j, n, oy0, rows, s);
        for (int64_t c0 = 0; c0 < j->C; c0 += CHUNK) {
            int64_t cn = j->C - c0 < CHUNK ? j->C - c0 : CHUNK;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t ox = 0; ox < j->wo; ox += 8 * PXV) {
                    int npx = j->wo - ox < 8 * PXV ? (int)(j->wo - ox) : 8 * PXV;
                    const float *in = s + c0 * cstride + r * j->wp + ox;
                    for (int64_t ob = 0; ob < obs; ob++) {
                        const float *wt = j->wt + (ob * j->C + c0) * 9 * CB, *b = c0 ? NULL : j->bias + ob * CB;
                        int nch = j->O - ob * CB < CB ? (int)(j->O - ob * CB) : CB;
                        float *out = j->y + (n * j->O + ob * CB) * P + (oy0 + r) * j->wo + ox;
                        if (npx > 16)
                            block(3, in, cstride, j->wp, wt, cn, b, out, P, nch, npx);
                        else if (npx > 8)
                            block(2, in, cstride, j->wp, wt, cn, b, out, P, nch, npx);
                        else
                            block(1, in, cstride, j->wp, wt, cn, b, out, P, nch, npx);
                    }
                }
        }
    }
}

/* w[O][C][3][3] (any float dtype) -> f32 [ob][C][9][CB], zero rows past O. */
static void layout_weights(const ts_weight *w, const float *wf, float *wt)
{
    int64_t O = w->shape[0], C = w->shape[1], obs = (O + CB - 1) / CB;
    memset(wt, 0, (size_t)(obs * C * 9 * CB) * sizeof(float));
    for (int64_t o = 0; o < O; o++)
        for (int64_t c = 0; c < C; c++)
            for (int k = 0; k < 9; k++)
                wt[((o / CB * C + c) * 9 + k) * CB + o % CB] = wf[(o * C + c) * 9 + k];
}

int ts_conv2d_direct(const ts_tensor *x, const ts_weight *w, const ts_weight *bias, ts_conv_params p, ts_tensor *y)
{
    direct_job j = {.x = x->data, .y = y->data, .C = x->shape[1], .H = x->shape[2], .W = x->shape[3],
                    .O = w->shape[0], .ho = y->shape[2], .wo = y->shape[3], .pad_top = p.pad_top,
                    .pad_left = p.pad_left};
    int64_t obs = (j.O + CB - 1) / CB, wsize = obs * j.C * 9 * CB;
    /* The last vector of a row may read up to 7 floats past the output width, +2 for the taps;
     * this also covers pad_left + W + pad_right = wo + 2. */
    j.wp = (j.wo + 7) / 8 * 8 + 2;
    j.bands = (j.ho + BAND_ROWS - 1) / BAND_ROWS;
    j.per_worker = (size_t)(j.C * (BAND_ROWS + 2) * j.wp);
    int threads = ts_threads_get();
    float *wf = malloc((size_t)(j.O * j.C * 9) * sizeof(float));
    float *wt = malloc((size_t)wsize * sizeof(float));
    float *b = calloc((size_t)(obs * CB), sizeof(float));
    float *scratch = malloc(j.per_worker * (size_t)threads * sizeof(float));
    if (!wf || !wt || !b || !scratch) {
        free(wf);
        free(wt);
        free(b);
        free(scratch);
        return ts_fail(TS_ERR_NOMEM, "conv2d: no memory for the direct 3x3 scratch");
    }
    ts_weight_to_f32(w, wf);
    layout_weights(w, wf, wt);
    if (bias)
        ts_weight_to_f32(bias, b);
    j.wt = wt;
    j.bias = b;
    j.scratch = scratch;
    ts_parallel_for(x->shape[0] * j.bands, 1, run_bands, &j);
    free(wf);
    free(wt);
    free(b);
    free(scratch);
    return TS_OK;
}

#else

int ts_conv2d_direct(const ts_tensor *x, const ts_weight *w, const ts_weight *bias, ts_conv_params p, ts_tensor *y)
{
    (void)x;
    (void)w;
    (void)bias;
    (void)p;
    (void)y;
    return ts_fail(TS_ERR_UNSUPPORTED, "conv2d: the direct 3x3 path needs x86");
}

#endif
