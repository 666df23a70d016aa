/*
 * Packing, blocking and threading of the GEMM engine (gemm_engine.h), and the two
 * public products built on it (gemm.h).
 *
 * The loop nest is the classic Goto one: for each kc x nc block of B (packed once,
 * in parallel), C is cut into tiles of mc rows by a slice of the nc columns; a
 * thread packs the mc x kc block of A for its tile and runs the micro-kernel over
 * it.  Slicing the columns as well as the rows keeps both cores busy when M is
 * small (conv weights, attention blocks, text tokens), at the cost of re-packing A
 * once per slice, which is cheap next to the mc · kc · slice FMAs it feeds.  When
 * all of M fits one A block, a second loop nest (run_small_m) keeps B in L2 instead.
 * Products of two f32 matrices go to OpenBLAS (blas_sgemm), measured faster on them;
 * block-quantised weights go to the integer kernels (gemm_quant.c).
 */
#include "ops/gemm.h"

#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "ops/gemm_engine.h"
#include "ops/gemm_quant.h"

#define PACK_KCHUNK 64
#define MAX_TILE (6 * 32) /* the largest mr x nr of the kernels */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Rows of a K-contiguous operand: widened PACK_KCHUNK steps at a time into tmp, then
 * transposed into the panel. */
static void pack_rows(const ts_operand *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width, float *dst)
{
    float tmp[32 * PACK_KCHUNK];
    const float *src[32];
    size_t esize = ts_dtype_size(op->dtype);
    for (int64_t kb = 0; kb < kc; kb += PACK_KCHUNK) {
        int64_t len = min64(PACK_KCHUNK, kc - kb);
        for (int i = 0; i < rows; i++) {
            const unsigned char *p = (const unsigned char *)op->data + ((r0 + i) * op->ld + k0 + kb) * (int64_t)esize;
            if (op->dtype == TS_DTYPE_F32) {
                src[i] = (const float *)p;
            } else {
                ts_to_f32(op->dtype, p, tmp + i * PACK_KCHUNK, (size_t)len);
                src[i] = tmp + i * PACK_KCHUNK;
            }
        }
        float *d = dst + kb * width;
        for (int64_t k = 0; k < len; k++, d += width) {
            int i = 0;
            for (; i < rows; i++)
                d[i] = src[i][k];
            for (; i < width; i++)
                d[i] = 0.0f;
        }
    }
}

/* One step of a panel.  Constant-size copies for the kernels' widths compile to a
 * couple of vector moves; a plain loop would be turned into a memmove call, whose
 * overhead dominates a 64-byte copy. */
static inline void copy_step(float *d, const float *s, int64_t n)
{
    switch (n) {
    case 8:
        memcpy(d, s, 8 * sizeof(float));
        return;
    case 16:
        memcpy(d, s, 16 * sizeof(float));
        return;
    case 32:
        memcpy(d, s, 32 * sizeof(float));
        return;
    default:
        memcpy(d, s, (size_t)n * sizeof(float));
    }
}

/* Rows of an R-contiguous operand: one contiguous copy per step. */
static void pack_cols(const ts_operand *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width, float *dst)
{
    const float *base = (const float *)op->data + k0 * op->ld + r0;
    for (int64_t k = 0; k < kc; k++, dst += width) {
        copy_step(dst, base + k * op->ld, rows);
        for (int64_t i = rows; i < width; i++)
            dst[i] = 0.0f;
    }
}

/* Output pixels [q0, q0 + n) of one im2col row (c, ky, kx): row runs of the output
 * image, each split into the left padding, the in-image stretch and the right
 * padding, so the in-image part is a plain (strided) copy. */
static void im2col_run(const ts_im2col_geom *g, const float *x, int64_t c, int64_t ky, int64_t kx, int64_t q0,
                       int64_t n, float *d)
{
    int64_t s = g->stride, oy = q0 / g->out_w, ox = q0 % g->out_w;
    for (int64_t i = 0; i < n; ox = 0, oy++) {
        int64_t run = min64(n - i, g->out_w - ox);
        int64_t iy = oy * s + ky - g->pad_top;
        int64_t ix0 = ox * s + kx - g->pad_left; /* input column of the run's first pixel */
        int64_t lo = 0, hi = 0;
        if (iy >= 0 && iy < g->height) {
            lo = ix0 >= 0 ? 0 : (-ix0 + s - 1) / s;
            hi = ix0 > g->width - 1 ? 0 : (g->width - 1 - ix0) / s + 1;
            lo = min64(lo, run);
            hi = min64(hi, run);
            if (hi < lo)
                hi = lo;
        }
        const float *row = x + (c * g->height + iy) * g->width + ix0;
        for (int64_t t = 0; t < lo; t++)
            d[i + t] = 0.0f;
        if (s == 1)
            memcpy(d + i + lo, row + lo, (size_t)(hi - lo) * sizeof(float));
        else
            for (int64_t t = lo; t < hi; t++)
                d[i + t] = row[t * s];
        for (int64_t t = hi; t < run; t++)
            d[i + t] = 0.0f;
        i += run;
    }
}

/* Many panels at once: per im2col row, the pixels of up to IM2COL_LINE panels are
 * unfolded into a line (long contiguous runs) and then dealt out to the panels. */
#define IM2COL_LINE 2048

static void pack_im2col(const ts_operand *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width,
                        float *dst)
{
    const ts_im2col_geom *g = op->conv;
    int64_t taps = g->kh * g->kw, step = IM2COL_LINE / width * width;
    float line[IM2COL_LINE];
    for (int64_t q = 0; q < rows; q += step, dst += step * kc) {
        int64_t n = min64(step, rows - q), panels = (n + width - 1) / width;
        for (int64_t i = n; i < panels * width; i++)
            line[i] = 0.0f;
        for (int64_t k = 0; k < kc; k++) {
            int64_t kk = k0 + k, c = kk / taps, t = kk % taps;
            im2col_run(g, op->data, c, t / g->kw, t % g->kw, r0 + q, n, line);
            for (int64_t p = 0; p < panels; p++) {
                copy_step(dst + p * width * kc + k * width, line + p * width, width);
            }
        }
    }
}

void ts_pack_panels(const ts_operand *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int width, float *dst)
{
    if (op->kind == TS_OPND_IM2COL) {
        pack_im2col(op, r0, rows, k0, kc, width, dst);
        return;
    }
    ts_pack_fn fast = ts_gemm_kernel_get()->pack_rows; /* knows f32, f16 and bf16 only */
    if (op->dtype != TS_DTYPE_F32 && op->dtype != TS_DTYPE_F16 && op->dtype != TS_DTYPE_BF16)
        fast = NULL;
    for (int64_t p = 0; p < rows; p += width, dst += width * kc) {
        int64_t n = min64(width, rows - p);
        if (op->kind == TS_OPND_ROWS)
            (fast && width <= 32 ? fast : pack_rows)(op, r0 + p, n, k0, kc, width, dst);
        else
            pack_cols(op, r0 + p, n, k0, kc, width, dst);
    }
}

void ts_gemm_macro(const ts_gemm_kernel *kern, int64_t m, int64_t n, int64_t kc, const float *ap, const float *bp,
                   float *c, int64_t ldc, float alpha, int accumulate)
{
    int mr = kern->mr, nr = kern->nr;
    for (int64_t j = 0; j < n; j += nr) {
        const float *b = bp + j * kc;
        int64_t nn = min64(nr, n - j);
        for (int64_t i = 0; i < m; i += mr) {
            const float *a = ap + i * kc;
            int64_t mm = min64(mr, m - i);
            float *cij = c + i * ldc + j;
            if (mm == mr && nn == nr) {
                kern->fn(kc, a, b, cij, ldc, alpha, accumulate);
                continue;
            }
            float tile[MAX_TILE];
            kern->fn(kc, a, b, tile, nr, alpha, 0);
            for (int64_t ii = 0; ii < mm; ii++)
                for (int64_t jj = 0; jj < nn; jj++)
                    cij[ii * ldc + jj] = accumulate ? cij[ii * ldc + jj] + tile[ii * nr + jj] : tile[ii * nr + jj];
        }
    }
}

/* Pack buffers live as long as their thread and only grow: a fresh multi-megabyte
 * buffer per call would cost a page fault per 4 KB, several percent of a GEMM. */
void *ts_scratch_get(ts_scratch *s, size_t bytes)
{
    if (s->n < bytes) {
        free(s->p);
        s->p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!s->p) {
            fprintf(stderr, "tessera: out of memory for a %zu-byte GEMM buffer\n", bytes);
            abort();
        }
        s->n = bytes;
    }
    return s->p;
}

void ts_scratch_trim(ts_scratch *s, size_t keep)
{
    if (s->n > keep) {
        free(s->p);
        *s = (ts_scratch){NULL, 0};
    }
}

static _Thread_local ts_scratch a_scratch, b_scratch, whole_a_scratch;

static float *scratch_get(ts_scratch *s, size_t n) { return ts_scratch_get(s, n * sizeof(float)); }

typedef struct {
    const ts_gemm_kernel *kern;
    const ts_operand *A, *B;
    int64_t M, N;
    float alpha, *C;
    int64_t ldc;
    /* the current block of B */
    int64_t jc, nc, pc, kc;
    int accumulate;
    float *bp;
    /* tiles: m blocks of mc rows times column slices of slice_w */
    int64_t mc;
    int64_t slices, slice_w;
    size_t ap_floats; /* each thread packs its A block into its own a_scratch */
} gemm_job;

static void pack_b_panels(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    gemm_job *j = ctx;
    int nr = j->kern->nr;
    int64_t r0 = begin * nr, rows = min64(end * nr, j->nc) - r0;
    ts_pack_panels(j->B, j->jc + r0, rows, j->pc, j->kc, nr, j->bp + r0 * j->kc);
}

static void run_tiles(void *ctx, int64_t begin, int64_t end, int worker)
{
    gemm_job *j = ctx;
    const ts_gemm_kernel *kern = j->kern;
    int64_t packed = -1;
    float *ap = scratch_get(&a_scratch, j->ap_floats);
    (void)worker;
    for (int64_t t = begin; t < end; t++) {
        int64_t mb = t / j->slices, s = t % j->slices;
        int64_t i0 = mb * j->mc, m = min64(j->mc, j->M - i0);
        if (mb != packed) {
            ts_pack_panels(j->A, i0, m, j->pc, j->kc, kern->mr, ap);
            packed = mb;
        }
        int64_t c0 = s * j->slice_w, n = min64(j->slice_w, j->nc - c0);
        if (n <= 0)
            continue;
        ts_gemm_macro(kern, m, n, j->kc, ap, j->bp + c0 * j->kc, j->C + i0 * j->ldc + j->jc + c0, j->ldc,
                      j->alpha, j->accumulate);
    }
}

/* One A block covers all of M (conv with few output channels, small heads): A is
 * packed once for every k block, and threads take column chunks sized so their kc x
 * chunk of B stays in L2, running the whole k loop on each.  The general path would
 * write each kc x nc block of B out to L3 only to read it back. */
#define SMALL_M_B_BYTES (256 * 1024)

typedef struct {
    const ts_gemm_kernel *kern;
    const ts_operand *B;
    int64_t M, N, K, kc_max, chunk;
    size_t a_block; /* floats per packed k block of A */
    const float *ap;
    float alpha, *C;
    int64_t ldc;
    int accumulate;
} small_m_job;

static void run_small_m(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const small_m_job *j = ctx;
    float *bp = scratch_get(&b_scratch, ts_pack_floats(j->chunk, j->kc_max, j->kern->nr));
    for (int64_t c = begin; c < end; c++) {
        int64_t n0 = c * j->chunk, n = min64(j->chunk, j->N - n0);
        for (int64_t pc = 0, b = 0; pc < j->K; pc += j->kc_max, b++) {
            int64_t kc = min64(j->kc_max, j->K - pc);
            ts_pack_panels(j->B, n0, n, pc, kc, j->kern->nr, bp);
            ts_gemm_macro(j->kern, j->M, n, kc, j->ap + (size_t)b * j->a_block, bp, j->C + n0, j->ldc, j->alpha,
                          j->accumulate || pc > 0);
        }
    }
}

void ts_gemm_run(int64_t M, int64_t N, int64_t K, const ts_operand *A, const ts_operand *B, float alpha, float *C,
                 int64_t ldc, int accumulate)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++)
                memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    const ts_gemm_kernel *kern = ts_gemm_kernel_get();
    int threads = ts_threads_get();
    /* Equal k blocks (K = 320 as 320, not 256 + 64: a short block pays C's load and store for little work). */
    int64_t kblocks = (K + kern->kc - 1) / kern->kc;
    int64_t kc_max = (K + kblocks - 1) / kblocks, nc_max = min64(kern->nc, N);

    int64_t chunk = SMALL_M_B_BYTES / (kc_max * (int64_t)sizeof(float)) / kern->nr * kern->nr;
    if (M <= kern->mc && chunk >= 4 * kern->nr && N >= 2 * chunk) {
        small_m_job s = {kern, B, M, N, K, kc_max, chunk, ts_pack_floats(M, kc_max, kern->mr), NULL, alpha, C, ldc,
                         accumulate};
        float *ap = scratch_get(&whole_a_scratch, s.a_block * (size_t)kblocks);
        for (int64_t pc = 0, b = 0; pc < K; pc += kc_max, b++)
            ts_pack_panels(A, 0, M, pc, min64(kc_max, K - pc), kern->mr, ap + (size_t)b * s.a_block);
        s.ap = ap;
        ts_parallel_for((N + chunk - 1) / chunk, 1, run_small_m, &s);
        return;
    }

    gemm_job j = {.kern = kern, .A = A, .B = B, .M = M, .N = N, .alpha = alpha, .C = C, .ldc = ldc};
    j.bp = scratch_get(&b_scratch, ts_pack_floats(nc_max, kc_max, kern->nr));
    /* Equal m blocks too, whole panels each: M = 154 is one block of 156, not 144 + 10
     * (a 10-row block would stream all of B from L3 for two micro-panels). */
    int64_t mblocks = (M + kern->mc - 1) / kern->mc, mr = kern->mr;
    j.mc = ((M + mblocks - 1) / mblocks + mr - 1) / mr * mr;
    j.ap_floats = ts_pack_floats(j.mc, kc_max, kern->mr);

    for (j.jc = 0; j.jc < N; j.jc += j.nc) {
        j.nc = min64(nc_max, N - j.jc);
        /* Enough tiles for a few per thread, each slice at least 4 panels wide. */
        int64_t want = threads > 1 ? (4 * threads + mblocks - 1) / mblocks : 1;
        int64_t panels = (j.nc + kern->nr - 1) / kern->nr;
        int64_t per_slice = (panels + want - 1) / want;
        if (per_slice < 4)
            per_slice = 4;
        j.slice_w = per_slice * kern->nr;
        j.slices = (j.nc + j.slice_w - 1) / j.slice_w;
        for (j.pc = 0; j.pc < K; j.pc += j.kc) {
            j.kc = min64(kc_max, K - j.pc);
            j.accumulate = accumulate || j.pc > 0;
            ts_parallel_for(panels, 4, pack_b_panels, &j);
            ts_parallel_for(mblocks * j.slices, 1, run_tiles, &j);
        }
    }
}

/* f32 x f32 products go to OpenBLAS (faster than our kernel on them, see bench/),
 * called single-threaded on each of our threads' share: only our pool ever runs,
 * because OpenBLAS's own workers spin after a call and would take the cores from
 * whatever kernel comes next.  The split is over the larger of M and N. */
typedef struct {
    int trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc, parts;
} blas_job;

static void blas_parts(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const blas_job *j = ctx;
    int split_m = j->M >= j->N;
    int64_t len = split_m ? j->M : j->N, lo = len * begin / j->parts, hi = len * end / j->parts;
    if (hi <= lo)
        return;
    const float *A = j->A, *B = j->B;
    float *C = j->C;
    if (split_m) {
        A += j->trans_a ? lo : lo * j->lda;
        C += lo * j->ldc;
    } else {
        B += j->trans_b ? lo * j->ldb : lo;
        C += lo;
    }
    cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans, j->trans_b ? CblasTrans : CblasNoTrans,
                (int)(split_m ? hi - lo : j->M), (int)(split_m ? j->N : hi - lo), (int)j->K, j->alpha, A,
                (int)j->lda, B, (int)j->ldb, j->beta, C, (int)j->ldc);
}

/* True when the product went to OpenBLAS. */
static int blas_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    int64_t limit = INT_MAX;
    if (!ts_gemm_use_openblas() || M > limit || N > limit || K > limit || lda > limit || ldb > limit ||
        ldc > limit || M <= 0 || N <= 0)
        return 0;
    openblas_set_num_threads(1);
    int64_t parts = (double)M * (double)N * (double)K < 1e6 ? 1 : ts_threads_get();
    blas_job j = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, parts};
    ts_parallel_for(parts, 1, blas_parts, &j);
    return 1;
}

void ts_linear(const float *A, int64_t lda, int64_t M, const ts_weight *W, const ts_weight *bias, float *C,
               int64_t ldc)
{
    int64_t N = W->shape[0], K = ts_weight_row_len(W);
    if (bias && M > 0) { /* widened into C's first row, then copied down */
        ts_weight_to_f32(bias, C);
        for (int64_t i = 1; i < M; i++)
            memcpy(C + i * ldc, C, (size_t)N * sizeof(float));
    }
    if (W->dtype == TS_DTYPE_F32 && blas_sgemm(0, 1, M, N, K, 1.0f, A, lda, W->data, K, bias ? 1.0f : 0.0f, C, ldc))
        return;
    if (ts_dtype_is_block(W->dtype)) {
        ts_linear_quantized(A, lda, M, W, C, ldc, bias != NULL);
        return;
    }
    ts_operand a = {.kind = TS_OPND_ROWS, .dtype = TS_DTYPE_F32, .data = A, .ld = lda};
    ts_operand w = {.kind = TS_OPND_ROWS, .dtype = W->dtype, .data = W->data, .ld = K};
    ts_gemm_run(M, N, K, &a, &w, 1.0f, C, ldc, bias != NULL);
}

void ts_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (blas_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    if (beta != 0.0f && beta != 1.0f)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] *= beta;
    ts_operand a = {.kind = trans_a ? TS_OPND_COLS : TS_OPND_ROWS, .dtype = TS_DTYPE_F32, .data = A, .ld = lda};
    ts_operand b = {.kind = trans_b ? TS_OPND_ROWS : TS_OPND_COLS, .dtype = TS_DTYPE_F32, .data = B, .ld = ldb};
    ts_gemm_run(M, N, K, &a, &b, alpha, C, ldc, beta != 0.0f);
}
