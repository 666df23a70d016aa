/*
 * Blocked attention with an online softmax ("flash" style, on the CPU).
 *
 * K and V are first packed into GEMM panels, once per (batch, head, block of BK
 * keys), so the many query blocks that read them do not each repack them.  Then one
 * job is (batch, head, block of BQ queries): it packs its queries, and walks the
 * keys BK at a time: S = scale · Q Kᵀ for the block (GEMM micro-kernel), bias and
 * causal mask, a running row max / row sum update that rescales the partial output
 * (vectorised exp), and O += P V (micro-kernel again).  Only BQ x BK scores exist
 * per thread at any time, so score memory does not grow with the sequence (the
 * packed K and V are the size of K and V).  Blocks entirely above the causal
 * diagonal are skipped.  A query whose every key is masked gets a zero output.
 */
#include "ops/attention.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "ops/gemm_engine.h"
#include "ops/vmath.h"

#define BQ 96
#define BK 256

typedef struct {
    const float *q, *k, *v;
    float *out;
    const ts_attn_params *p;
    const ts_gemm_kernel *kern;
    int64_t qblocks, kblocks;
    size_t kp_floats, vp_floats; /* one packed key block of K, of V */
    float *kp, *vp;              /* [batch, heads, kblocks] packed blocks */
    float **scratch;             /* per worker */
} attn_job;

typedef struct {
    float *qp, *pp, *s, *o, *m, *l;
} attn_scratch;

static attn_scratch carve(float *base, const ts_gemm_kernel *kern, int64_t dh)
{
    attn_scratch w;
    w.qp = base;
    w.pp = w.qp + ts_pack_floats(BQ, dh, kern->mr);
    w.s = w.pp + ts_pack_floats(BQ, BK, kern->mr);
    w.o = w.s + BQ * BK;
    w.m = w.o + BQ * dh;
    w.l = w.m + BQ;
    return w;
}

static size_t scratch_floats(const ts_gemm_kernel *kern, int64_t dh)
{
    return ts_pack_floats(BQ, dh, kern->mr) + ts_pack_floats(BQ, BK, kern->mr) + BQ * BK + BQ * dh + 2 * BQ;
}

static void *alloc_or_die(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "tessera: out of memory for attention buffers (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

/* Packs key block t = (b, h, kb): K rows as B panels (n = key, k = dim) and V as B
 * panels (n = dim, k = key). */
static void pack_kv(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const attn_job *j = ctx;
    const ts_attn_params *p = j->p;
    int64_t dh = p->head_dim;
    for (int64_t t = begin; t < end; t++) {
        int64_t kb = t % j->kblocks, bh = t / j->kblocks, b = bh / p->heads, h = bh % p->heads;
        int64_t k0 = kb * BK, nk = p->kv_len - k0 < BK ? p->kv_len - k0 : BK;
        ts_operand ka = {.kind = TS_OPND_ROWS, .dtype = TS_DTYPE_F32,
                         .data = j->k + (b * p->kv_len + k0) * p->ldk + h * dh, .ld = p->ldk};
        ts_operand va = {.kind = TS_OPND_COLS, .dtype = TS_DTYPE_F32,
                         .data = j->v + (b * p->kv_len + k0) * p->ldv + h * dh, .ld = p->ldv};
        ts_pack_panels(&ka, 0, nk, 0, dh, j->kern->nr, j->kp + t * j->kp_floats);
        ts_pack_panels(&va, 0, dh, 0, nk, j->kern->nr, j->vp + t * j->vp_floats);
    }
}

/* Bias and causal mask on the scores of queries q0.., keys k0..; then the online
 * softmax step, which leaves the probabilities in s and rescales o. */
static void softmax_block(const ts_attn_params *p, const float *bias, int64_t q0, int64_t nq, int64_t k0,
                          int64_t nk, attn_scratch *w)
{
    int64_t dh = p->head_dim;
    for (int64_t i = 0; i < nq; i++) {
        float *s = w->s + i * BK;
        if (bias)
            for (int64_t j = 0; j < nk; j++)
                s[j] += bias[(q0 + i) * p->kv_len + k0 + j];
        if (p->causal)
            for (int64_t j = q0 + i + 1 - k0 < 0 ? 0 : q0 + i + 1 - k0; j < nk; j++)
                s[j] = -INFINITY;
        float mx = ts_vmax(s, nk);
        mx = mx > w->m[i] ? mx : w->m[i];
        if (mx == -INFINITY) {
            memset(s, 0, (size_t)nk * sizeof(float));
            continue;
        }
        float sum = ts_vexp_sum(s, nk, mx);
        float corr = expf(w->m[i] - mx); /* 0 on the first unmasked block */
        w->l[i] = w->l[i] * corr + sum;
        w->m[i] = mx;
        if (corr != 1.0f)
            for (int64_t d = 0; d < dh; d++)
                w->o[i * dh + d] *= corr;
    }
}

static void attention_block(const attn_job *j, int64_t b, int64_t h, int64_t q0, attn_scratch *w)
{
    const ts_attn_params *p = j->p;
    const ts_gemm_kernel *kern = j->kern;
    int64_t dh = p->head_dim, nq = p->q_len - q0 < BQ ? p->q_len - q0 : BQ;
    const float *q = j->q + (b * p->q_len + q0) * p->ldq + h * dh;
    const float *bias = p->bias.data ? p->bias.data + b * p->bias.batch_stride + h * p->bias.head_stride : NULL;
    int64_t first = (b * p->heads + h) * j->kblocks;

    ts_operand qa = {.kind = TS_OPND_ROWS, .dtype = TS_DTYPE_F32, .data = q, .ld = p->ldq};
    ts_pack_panels(&qa, 0, nq, 0, dh, kern->mr, w->qp);
    memset(w->o, 0, (size_t)(nq * dh) * sizeof(float));
    for (int64_t i = 0; i < nq; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    /* Causal: only key blocks that start at or before the last query; a block is
     * always taken whole (its packed V panels have the block's full key count as
     * stride), the mask zeroes the keys past the diagonal. */
    int64_t kv_end = p->causal && q0 + nq < p->kv_len ? q0 + nq : p->kv_len;
    for (int64_t kb = 0; kb * BK < kv_end; kb++) {
        int64_t k0 = kb * BK, nk = p->kv_len - k0 < BK ? p->kv_len - k0 : BK;
        ts_gemm_macro(kern, nq, nk, dh, w->qp, j->kp + (first + kb) * j->kp_floats, w->s, BK, p->scale, 0);
        softmax_block(p, bias, q0, nq, k0, nk, w);
        ts_operand pa = {.kind = TS_OPND_ROWS, .dtype = TS_DTYPE_F32, .data = w->s, .ld = BK};
        ts_pack_panels(&pa, 0, nq, 0, nk, kern->mr, w->pp);
        ts_gemm_macro(kern, nq, dh, nk, w->pp, j->vp + (first + kb) * j->vp_floats, w->o, dh, 1.0f, 1);
    }
    float *out = j->out + (b * p->q_len + q0) * p->ldo + h * dh;
    for (int64_t i = 0; i < nq; i++) {
        float inv = w->l[i] > 0.0f ? 1.0f / w->l[i] : 0.0f;
        for (int64_t d = 0; d < dh; d++)
            out[i * p->ldo + d] = w->o[i * dh + d] * inv;
    }
}

static void attention_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    const attn_job *j = ctx;
    attn_scratch w = carve(j->scratch[worker], j->kern, j->p->head_dim);
    for (int64_t t = begin; t < end; t++) {
        int64_t qb = t % j->qblocks, bh = t / j->qblocks;
        attention_block(j, bh / j->p->heads, bh % j->p->heads, qb * BQ, &w);
    }
}

void ts_attention(const float *q, const float *k, const float *v, float *out, const ts_attn_params *p)
{
    if (p->batch <= 0 || p->heads <= 0 || p->q_len <= 0)
        return;
    const ts_gemm_kernel *kern = ts_gemm_kernel_get();
    int64_t kblocks = (p->kv_len + BK - 1) / BK, dh = p->head_dim;
    attn_job j = {q, k, v, out, p, kern, (p->q_len + BQ - 1) / BQ, kblocks,
                  ts_pack_floats(BK, dh, kern->nr), ts_pack_floats(dh, BK, kern->nr), NULL, NULL, NULL};
    int64_t nkv = p->batch * p->heads * kblocks;
    j.kp = alloc_or_die(j.kp_floats * (size_t)nkv * sizeof(float));
    j.vp = alloc_or_die(j.vp_floats * (size_t)nkv * sizeof(float));
    ts_parallel_for(nkv, 1, pack_kv, &j);

    int threads = ts_threads_get();
    size_t floats = scratch_floats(kern, dh);
    j.scratch = alloc_or_die((size_t)threads * sizeof *j.scratch);
    for (int t = 0; t < threads; t++)
        j.scratch[t] = alloc_or_die(floats * sizeof(float));
    ts_parallel_for(p->batch * p->heads * j.qblocks, 1, attention_range, &j);
    for (int t = 0; t < threads; t++)
        free(j.scratch[t]);
    free(j.scratch);
    free(j.kp);
    free(j.vp);
}
