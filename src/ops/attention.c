/*
 * Blocked attention with an online softmax ("flash" style, on the CPU).
 *
 * One job is (batch, head, block of BQ queries).  It packs its queries once, then
 * walks the keys BK at a time: S = scale · Q Kᵀ for the block (GEMM micro-kernel),
 * bias and causal mask, a running row max / row sum update that rescales the partial
 * output, and O += P V (micro-kernel again).  Only BQ x BK scores exist at any time,
 * so memory does not grow with the sequence; blocks entirely above the causal
 * diagonal are skipped.  A query whose every key is masked gets a zero output.
 */
#include "ops/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "ops/gemm_engine.h"

#define BQ 96
#define BK 256

typedef struct {
    const float *q, *k, *v;
    float *out;
    const ts_attn_params *p;
    const ts_gemm_kernel *kern;
    int64_t qblocks;
    float **scratch; /* per worker */
} attn_job;

typedef struct {
    float *qp, *kp, *vp, *pp, *s, *o, *m, *l;
} attn_scratch;

static attn_scratch carve(float *base, const ts_gemm_kernel *kern, int64_t dh)
{
    attn_scratch w;
    w.qp = base;
    w.kp = w.qp + ts_pack_floats(BQ, dh, kern->mr);
    w.vp = w.kp + ts_pack_floats(BK, dh, kern->nr);
    w.pp = w.vp + ts_pack_floats(dh, BK, kern->nr);
    w.s = w.pp + ts_pack_floats(BQ, BK, kern->mr);
    w.o = w.s + BQ * BK;
    w.m = w.o + BQ * dh;
    w.l = w.m + BQ;
    return w;
}

static size_t scratch_floats(const ts_gemm_kernel *kern, int64_t dh)
{
    return ts_pack_floats(BQ, dh, kern->mr) + ts_pack_floats(BK, dh, kern->nr) + ts_pack_floats(dh, BK, kern->nr) +
           ts_pack_floats(BQ, BK, kern->mr) + BQ * BK + BQ * dh + 2 * BQ;
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
        float mx = w->m[i];
        for (int64_t j = 0; j < nk; j++)
            mx = s[j] > mx ? s[j] : mx;
        if (mx == -INFINITY) {
            memset(s, 0, (size_t)nk * sizeof(float));
            continue;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
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
    const float *kbase = j->k + b * p->kv_len * p->ldk + h * dh;
    const float *vbase = j->v + b * p->kv_len * p->ldv + h * dh;
    const float *bias = p->bias.data ? p->bias.data + b * p->bias.batch_stride + h * p->bias.head_stride : NULL;

    ts_operand qa = {.kind = TS_OPND_ROWS, .dtype = TS_DTYPE_F32, .data = q, .ld = p->ldq};
    ts_pack_panels(&qa, 0, nq, 0, dh, kern->mr, w->qp);
    memset(w->o, 0, (size_t)(nq * dh) * sizeof(float));
    for (int64_t i = 0; i < nq; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    int64_t kv_end = p->causal && q0 + nq < p->kv_len ? q0 + nq : p->kv_len;
    for (int64_t k0 = 0; k0 < kv_end; k0 += BK) {
        int64_t nk = kv_end - k0 < BK ? kv_end - k0 : BK;
        ts_operand ka = {.kind = TS_OPND_ROWS, .dtype = TS_DTYPE_F32, .data = kbase + k0 * p->ldk, .ld = p->ldk};
        ts_pack_panels(&ka, 0, nk, 0, dh, kern->nr, w->kp);
        ts_gemm_macro(kern, nq, nk, dh, w->qp, w->kp, w->s, BK, p->scale, 0);
        softmax_block(p, bias, q0, nq, k0, nk, w);
        ts_operand pa = {.kind = TS_OPND_ROWS, .dtype = TS_DTYPE_F32, .data = w->s, .ld = BK};
        ts_operand va = {.kind = TS_OPND_COLS, .dtype = TS_DTYPE_F32, .data = vbase + k0 * p->ldv, .ld = p->ldv};
        ts_pack_panels(&pa, 0, nq, 0, nk, kern->mr, w->pp);
        ts_pack_panels(&va, 0, dh, 0, nk, kern->nr, w->vp);
        ts_gemm_macro(kern, nq, dh, nk, w->pp, w->vp, w->o, dh, 1.0f, 1);
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
    attn_job j = {q, k, v, out, p, ts_gemm_kernel_get(), (p->q_len + BQ - 1) / BQ, NULL};
    int threads = ts_threads_get();
    size_t floats = scratch_floats(j.kern, p->head_dim);
    j.scratch = malloc((size_t)threads * sizeof *j.scratch);
    for (int t = 0; t < threads; t++)
        j.scratch[t] = malloc(floats * sizeof(float));
    ts_parallel_for(p->batch * p->heads * j.qblocks, 1, attention_range, &j);
    for (int t = 0; t < threads; t++)
        free(j.scratch[t]);
    free(j.scratch);
}
