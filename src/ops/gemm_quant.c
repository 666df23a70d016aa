/*
 * Blocking and threading of the integer GEMM (see gemm_quant.h for the arithmetic).
 *
 * All rows of A are quantised once, in parallel.  The weight is then taken a column
 * block at a time (a few MB packed, so the block stays in L3 while every row of A
 * passes over it): its panels are unpacked from the stored blocks in parallel, and
 * threads share out tiles of C, each a band of rows by a slice of panel pairs.
 * Within a tile a pair of panels (K · 32 bytes plus scales) stays in L2 while the
 * band's rows run past it mr at a time.
 */
#include "ops/gemm_quant.h"

#include <math.h>
#include <string.h>

#include "core/quant.h"
#include "core/threads.h"
#include "ops/gemm_engine.h"

#define PACK_BLOCK_BYTES (4 << 20) /* packed weight per column block */
#define BAND_ROWS 64               /* rows of A per tile */
#define ACT_KEEP_BYTES (8 << 20)   /* larger activation buffers are freed after the call */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

typedef struct {
    const ts_qkernel *kern;
    const float *A;
    int64_t lda, M;
    ts_qact act;
    /* the weight and its integer form */
    const ts_weight *W;
    int64_t N, runs, row_bytes;
    ts_qform form;
    int runs_per_block;
    /* the current column block, packed */
    int64_t n0, ncols, pairs, panel_bytes;
    uint8_t *packed;
    /* tiles */
    int64_t bands, slices, slice_pairs;
    float *C;
    int64_t ldc;
    int accumulate;
} qjob;

static void quantize_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const qjob *j = ctx;
    int64_t runs = j->act.runs;
    for (int64_t r = begin; r < end; r++)
        j->kern->quantize_row(j->A + r * j->lda, runs, j->act.q + r * runs * 32, j->act.d + r * runs,
                              j->act.sum + 2 * r * runs);
}

/* Panel p of the current column block; columns past N are zero (scale 0). */
static void pack_panel(const qjob *j, int64_t p)
{
    int lanes = j->kern->lanes;
    int64_t rb = ts_qrun_bytes(lanes, j->form), block_bytes = (int64_t)ts_dtype_block_bytes(j->W->dtype);
    uint8_t *dst = j->packed + p * j->panel_bytes;
    for (int lane = 0; lane < lanes; lane++) {
        int64_t n = j->n0 + p * lanes + lane;
        const uint8_t *row = n < j->N ? (const uint8_t *)j->W->data + n * j->row_bytes : NULL;
        uint8_t *run = dst;
        for (int64_t b = 0; b < j->runs; b++, run += rb) {
            uint8_t u[32] = {0};
            float f[2] = {0.0f, 0.0f};
            if (row)
                ts_quant_unpack32(j->W->dtype, row + b / j->runs_per_block * block_bytes, (int)(b % j->runs_per_block),
                                  u, f);
            for (int g = 0; g < 8; g++)
                memcpy(run + (g * lanes + lane) * 4, u + 4 * g, 4);
            float *packed_f = (float *)(run + 32 * lanes);
            packed_f[lane] = f[0];
            if (j->form.kind != TS_QFORM_ZERO)
                packed_f[lanes + lane] = f[1];
        }
    }
}

static void pack_panels(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    for (int64_t p = begin; p < end; p++)
        pack_panel(ctx, p);
}

static void run_tiles(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const qjob *j = ctx;
    const ts_qkernel *k = j->kern;
    int64_t runs = j->act.runs;
    for (int64_t t = begin; t < end; t++) {
        int64_t r0 = t / j->slices * BAND_ROWS, r1 = min64(j->M, r0 + BAND_ROWS);
        int64_t p0 = t % j->slices * j->slice_pairs, p1 = min64(j->pairs, p0 + j->slice_pairs);
        for (int64_t p = p0; p < p1; p++) {
            int64_t c0 = p * 2 * k->lanes;
            ts_qtile tile = {.runs = runs,
                             .cols = (int)min64(2 * k->lanes, j->ncols - c0),
                             .w = j->packed + 2 * p * j->panel_bytes,
                             .panel_bytes = j->panel_bytes,
                             .form = j->form,
                             .ldc = j->ldc,
                             .accumulate = j->accumulate};
            for (int64_t r = r0; r < r1; r += k->mr) {
                tile.q = j->act.q + r * runs * 32;
                tile.d = j->act.d + r * runs;
                tile.sum = j->act.sum + 2 * r * runs;
                tile.rows = (int)min64(k->mr, r1 - r);
                tile.c = j->C + r * j->ldc + j->n0 + c0;
                k->tile(&tile);
            }
        }
    }
}

static _Thread_local ts_scratch act_scratch, pack_scratch;

/* Quantises every row of A into act_scratch. */
static void quantize_activations(qjob *j)
{
    int64_t runs = j->act.runs, n = j->M * runs;
    size_t scalars = sizeof(float) + 2 * sizeof(int32_t);
    uint8_t *p = ts_scratch_get(&act_scratch, (size_t)n * (32 + scalars));
    j->act.d = (float *)p;
    j->act.sum = (int32_t *)(p + n * sizeof(float));
    j->act.q = (int8_t *)(p + n * scalars);
    ts_parallel_for(j->M, 16, quantize_rows, j);
}

/* Splits the column block's tiles: bands of rows by slices of panel pairs, enough
 * of them for a few per thread. */
static void plan_tiles(qjob *j)
{
    int threads = ts_threads_get();
    j->bands = (j->M + BAND_ROWS - 1) / BAND_ROWS;
    int64_t want = threads > 1 ? (4 * threads + j->bands - 1) / j->bands : 1;
    j->slices = min64(want, j->pairs);
    j->slice_pairs = (j->pairs + j->slices - 1) / j->slices;
    j->slices = (j->pairs + j->slice_pairs - 1) / j->slice_pairs;
}

/* C rows set to `v` (K = 0: zero unless accumulating; no integer form: NaN). */
static void fill_rows(float *C, int64_t ldc, int64_t M, int64_t N, float v)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++)
            C[i * ldc + n] = v;
}

void ts_linear_quantized(const float *A, int64_t lda, int64_t M, const ts_weight *W, float *C, int64_t ldc,
                         int accumulate)
{
    qjob j = {
        .kern = ts_qgemm_kernel(), .A = A, .lda = lda, .M = M, .W = W, .C = C, .ldc = ldc, .accumulate = accumulate};
    int64_t K = ts_weight_row_len(W);
    j.N = W->shape[0];
    if (M <= 0 || j.N <= 0)
        return;
    if (!ts_quant_int_form(W->dtype, &j.form)) {
        fill_rows(C, ldc, M, j.N, NAN);
        return;
    }
    if (K <= 0) {
        if (!accumulate)
            fill_rows(C, ldc, M, j.N, 0.0f);
        return;
    }
    j.runs = j.act.runs = K / 32;
    j.runs_per_block = (int)(ts_dtype_block_len(W->dtype) / 32);
    j.row_bytes = (int64_t)ts_dtype_bytes(W->dtype, (uint64_t)K);
    quantize_activations(&j);

    int lanes = j.kern->lanes;
    int64_t run_bytes = ts_qrun_bytes(lanes, j.form), pair_bytes = 2 * j.runs * run_bytes;
    int64_t block_pairs = PACK_BLOCK_BYTES / pair_bytes > 0 ? PACK_BLOCK_BYTES / pair_bytes : 1;
    j.panel_bytes = j.runs * run_bytes;
    j.packed =
        ts_scratch_get(&pack_scratch, (size_t)(min64(block_pairs, (j.N + 2 * lanes - 1) / (2 * lanes)) * pair_bytes));
    for (j.n0 = 0; j.n0 < j.N; j.n0 += j.ncols) {
        j.ncols = min64(block_pairs * 2 * lanes, j.N - j.n0);
        j.pairs = (j.ncols + 2 * lanes - 1) / (2 * lanes);
        ts_parallel_for(2 * j.pairs, 1, pack_panels, &j);
        plan_tiles(&j);
        ts_parallel_for(j.bands * j.slices, 1, run_tiles, &j);
    }
    ts_scratch_trim(&act_scratch, ACT_KEEP_BYTES);
}
