/*
 * T5 v1.1 encoder: loading and the forward pass; see t5_encoder.h.
 *
 * Per block (transformers modeling_t5.py T5Block, encoder side):
 *   x = x + o(attention(rms_1(x)))
 *   x = x + wo(gelu_new(wi_0(rms_2(x))) * wi_1(rms_2(x)))
 * and the output is final_layer_norm(x).  The RMS norms have no mean and no bias
 * (eps 1e-6); the embedding is not scaled; attention scores are NOT divided by
 * sqrt(d_kv) (the scale is folded into the trained weights).  Position enters only
 * as an additive bias per head, bias[h, i, j] = table[bucket(j - i), h], built once
 * from block 0's table and shared by every block; a padding mask adds -FLT_MAX
 * (torch.finfo(float32).min, as HF does) to the masked keys of that bias.
 *
 * Memory: the bias is [H, T, T] (x B with a mask): 16 MB for T5-XXL at 256 tokens.
 * A block's temporaries (q, k, v, FFN branches) are released after it.
 */
#include "text/t5_encoder.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/st_names.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/norm.h"

#define T5_EPS 1e-6f

/* ---- loading ------------------------------------------------------------------ */

static int load_block(ts_weights *wf, const char *pre, const ts_t5_encoder *m, int i, ts_t5_block *b)
{
    const int64_t D = m->d_model, inner = (int64_t)m->heads * m->d_kv, F = m->d_ff;
    const int64_t vec[1] = {D}, in_proj[2] = {inner, D}, out_proj[2] = {D, inner};
    const int64_t ff_in[2] = {F, D}, ff_out[2] = {D, F};
    int rc = 0;
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->ln1, 1, vec, "encoder.block.%d.layer.0.layer_norm.weight", i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->q, 2, in_proj, "encoder.block.%d.layer.0.SelfAttention.q.weight", i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->k, 2, in_proj, "encoder.block.%d.layer.0.SelfAttention.k.weight", i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->v, 2, in_proj, "encoder.block.%d.layer.0.SelfAttention.v.weight", i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->o, 2, out_proj, "encoder.block.%d.layer.0.SelfAttention.o.weight", i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->ln2, 1, vec, "encoder.block.%d.layer.1.layer_norm.weight", i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->wi0, 2, ff_in, "encoder.block.%d.layer.1.DenseReluDense.wi_0.weight",
                                   i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->wi1, 2, ff_in, "encoder.block.%d.layer.1.DenseReluDense.wi_1.weight",
                                   i);
    rc = rc ? rc : ts_weights_getf(wf, pre, &b->wo, 2, ff_out, "encoder.block.%d.layer.1.DenseReluDense.wo.weight", i);
    return rc;
}

static const char *find_prefix(ts_weights *wf)
{
    static const char *const known[] = {"", "text_encoders.t5xxl.transformer."};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (ts_weights_find(wf, known[i], "encoder.final_layer_norm.weight"))
            return known[i];
    return NULL;
}

/* Sizes from the shapes of the embedding, block 0's bias table and FFN. */
static int read_dims(ts_weights *wf, const char *pre, ts_t5_encoder *m)
{
    const char *embed = ts_weights_find(wf, pre, "shared.weight") ? "shared.weight" : "encoder.embed_tokens.weight";
    const int64_t any2[2] = {-1, -1};
    ts_weight q, wi0;
    int rc = ts_weights_getf(wf, pre, &m->embed, 2, any2, "%s", embed);
    rc = rc ? rc : ts_weights_getf(wf, pre, &m->rel_bias, 2, any2, "%s",
                                 "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    rc = rc ? rc : ts_weights_getf(wf, pre, &q, 2, any2, "%s", "encoder.block.0.layer.0.SelfAttention.q.weight");
    if (!rc && !ts_weights_find(wf, pre, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight") &&
        ts_weights_find(wf, pre, "encoder.block.0.layer.1.DenseReluDense.wi.weight"))
        return ts_fail(TS_ERR_UNSUPPORTED, "%s: T5 v1.0 (ReLU feed-forward `wi`) is not supported, only v1.1 (gated GELU)",
                       ts_weights_path(wf));
    rc = rc ? rc : ts_weights_getf(wf, pre, &wi0, 2, any2, "%s", "encoder.block.0.layer.1.DenseReluDense.wi_0.weight");
    if (rc)
        return rc;
    m->vocab = (int)m->embed.shape[0];
    m->d_model = (int)m->embed.shape[1];
    m->buckets = (int)m->rel_bias.shape[0];
    m->heads = (int)m->rel_bias.shape[1];
    m->d_ff = (int)wi0.shape[0];
    if (m->heads <= 0 || q.shape[0] % m->heads != 0 || m->buckets < 4)
        return ts_fail(TS_ERR_MODEL, "%s: T5 inner width %lld does not split into %d heads (or %d buckets < 4)",
                       ts_weights_path(wf), (long long)q.shape[0], m->heads, m->buckets);
    m->d_kv = (int)(q.shape[0] / m->heads);
    return 0;
}

int ts_t5_load(ts_weights *wf, const char *prefix, ts_t5_encoder *m)
{
    memset(m, 0, sizeof *m);
    const char *pre = prefix ? prefix : find_prefix(wf);
    if (!pre)
        return ts_fail(TS_ERR_MODEL, "%s: no T5 encoder (encoder.final_layer_norm.weight) in this file",
                       ts_weights_path(wf));
    int rc = read_dims(wf, pre, m);
    if (rc)
        return rc;
    m->layers = ts_weights_count_indexed(wf, pre, "encoder.block.%d.layer.0.layer_norm.weight", TS_T5_MAX_LAYERS);
    if (m->layers > TS_T5_MAX_LAYERS)
        return ts_fail(TS_ERR_MODEL, "%s: T5 encoder with more than %d blocks", ts_weights_path(wf), TS_T5_MAX_LAYERS);
    for (int i = 0; i < m->layers && !rc; i++)
        rc = load_block(wf, pre, m, i, &m->block[i]);
    const int64_t vec[1] = {m->d_model};
    rc = rc ? rc : ts_weights_getf(wf, pre, &m->final_ln, 1, vec, "%s", "encoder.final_layer_norm.weight");
    return rc;
}

/* ---- forward ------------------------------------------------------------------ */

int ts_t5_relative_bucket(int64_t rel, int num_buckets, int max_distance)
{
    int half = num_buckets / 2, exact = half / 2;
    int bucket = rel > 0 ? half : 0;
    int64_t a = rel < 0 ? -rel : rel;
    if (a < exact)
        return bucket + (int)a;
    /* float32 log and product, truncated toward zero, as the reference computes it */
    float scaled = logf((float)a / (float)exact) / logf((float)max_distance / (float)exact) * (float)(half - exact);
    int large = exact + (int)scaled;
    return bucket + (large < half - 1 ? large : half - 1);
}

/* bias [B or 1, H, T, T]: the relative-position table per head, plus -FLT_MAX on masked keys. */
static float *position_bias(const ts_t5_encoder *m, const int32_t *mask, int64_t batch, int64_t tokens,
                            ts_arena *arena)
{
    const int64_t H = m->heads, T = tokens, nb = mask ? batch : 1;
    float *bias = ts_arena_alloc(arena, (size_t)(nb * H * T * T) * sizeof(float));
    float *table = ts_arena_alloc(arena, (size_t)(m->buckets * H) * sizeof(float));
    int *bucket = ts_arena_alloc(arena, (size_t)(2 * T - 1) * sizeof(int));
    if (!bias || !table || !bucket)
        return NULL;
    ts_weight_to_f32(&m->rel_bias, table);
    for (int64_t r = -(T - 1); r <= T - 1; r++)
        bucket[r + T - 1] = ts_t5_relative_bucket(r, m->buckets, TS_T5_MAX_DISTANCE);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j < T; j++)
                bias[(h * T + i) * T + j] = table[bucket[j - i + T - 1] * H + h];
    for (int64_t b = 0; mask && b < batch; b++) {
        float *dst = bias + b * H * T * T;
        if (b > 0)
            memcpy(dst, bias, (size_t)(H * T * T) * sizeof(float));
        for (int64_t r = 0; r < H * T; r++)
            for (int64_t j = 0; j < T; j++)
                if (!mask[b * T + j])
                    dst[r * T + j] += -FLT_MAX;
    }
    return bias;
}

static void add_into(float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* One block over x [B*T, D], in place. */
static int block_forward(const ts_t5_encoder *m, const ts_t5_block *b, const ts_attn_bias *bias, float *x,
                         int64_t batch, int64_t tokens, ts_arena *arena)
{
    const int64_t D = m->d_model, inner = (int64_t)m->heads * m->d_kv, F = m->d_ff, rows = batch * tokens;
    size_t mark = ts_arena_mark(arena);
    float *h = ts_arena_alloc(arena, (size_t)(rows * D) * sizeof(float));
    float *q = ts_arena_alloc(arena, (size_t)(rows * inner) * sizeof(float));
    float *k = ts_arena_alloc(arena, (size_t)(rows * inner) * sizeof(float));
    float *v = ts_arena_alloc(arena, (size_t)(rows * inner) * sizeof(float));
    float *o = ts_arena_alloc(arena, (size_t)(rows * inner) * sizeof(float));
    if (!h || !q || !k || !v || !o) {
        ts_arena_reset(arena, mark);
        return TS_ERR_NOMEM;
    }
    ts_rms_norm(x, h, rows, D, &b->ln1, T5_EPS);
    ts_linear(h, D, rows, &b->q, NULL, q, inner);
    ts_linear(h, D, rows, &b->k, NULL, k, inner);
    ts_linear(h, D, rows, &b->v, NULL, v, inner);
    ts_attn_params p = {
        .batch = batch, .heads = m->heads, .q_len = tokens, .kv_len = tokens, .head_dim = m->d_kv,
        .ldq = inner, .ldk = inner, .ldv = inner, .ldo = inner, .scale = 1.0f, .causal = 0, .bias = *bias,
    };
    ts_attention(q, k, v, o, &p);
    ts_linear(o, inner, rows, &b->o, NULL, h, D);
    add_into(x, h, rows * D);
    ts_arena_reset(arena, mark);

    h = ts_arena_alloc(arena, (size_t)(rows * D) * sizeof(float));
    float *gate = ts_arena_alloc(arena, (size_t)(rows * F) * sizeof(float));
    float *lin = ts_arena_alloc(arena, (size_t)(rows * F) * sizeof(float));
    if (!h || !gate || !lin) {
        ts_arena_reset(arena, mark);
        return TS_ERR_NOMEM;
    }
    ts_rms_norm(x, h, rows, D, &b->ln2, T5_EPS);
    ts_linear(h, D, rows, &b->wi0, NULL, gate, F);
    ts_linear(h, D, rows, &b->wi1, NULL, lin, F);
    ts_gelu_tanh(gate, rows * F);
    for (int64_t i = 0; i < rows * F; i++)
        gate[i] *= lin[i];
    ts_linear(gate, F, rows, &b->wo, NULL, h, D);
    add_into(x, h, rows * D);
    ts_arena_reset(arena, mark);
    return 0;
}

static int embed(const ts_t5_encoder *m, const int32_t *ids, int64_t n, float *x)
{
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return ts_fail(TS_ERR_ARG, "T5 encoder: token id %ld outside the vocabulary (0..%d)", (long)ids[i],
                           m->vocab - 1);
        ts_weight_row_f32(&m->embed, ids[i], x + i * m->d_model);
    }
    return 0;
}

int ts_t5_forward(const ts_t5_encoder *m, const int32_t *ids, const int32_t *mask, int64_t batch, int64_t tokens,
                  ts_arena *arena, ts_tensor *out)
{
    if (batch < 1 || tokens < 1)
        return ts_fail(TS_ERR_ARG, "T5 encoder: empty input (%lld x %lld tokens)", (long long)batch,
                       (long long)tokens);
    const int64_t D = m->d_model, rows = batch * tokens;
    size_t start = ts_arena_mark(arena);
    *out = ts_arena_tensor(arena, 3, (int64_t[]){batch, tokens, D});
    size_t work = ts_arena_mark(arena);
    float *x = ts_arena_alloc(arena, (size_t)(rows * D) * sizeof(float));
    float *bias = x ? position_bias(m, mask, batch, tokens, arena) : NULL;
    if (!out->data || !bias) {
        ts_arena_reset(arena, start);
        return TS_ERR_NOMEM;
    }
    const int64_t plane = (int64_t)m->heads * tokens * tokens;
    ts_attn_bias ab = {bias, mask ? plane : 0, tokens * tokens};
    int rc = embed(m, ids, rows, x);
    for (int i = 0; i < m->layers && !rc; i++)
        rc = block_forward(m, &m->block[i], &ab, x, batch, tokens, arena);
    if (!rc)
        ts_rms_norm(x, out->data, rows, D, &m->final_ln, T5_EPS);
    ts_arena_reset(arena, rc ? start : work);
    return rc;
}
