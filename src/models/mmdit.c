/*
 * SD3 / SD3.5 MMDiT forward pass; see mmdit.h.
 *
 * mmditx.MMDiTX as the checkpoints store it:
 *   x = x_embedder(latent) + crop(pos_embed)       tokens [B, h*w, D], row-major patches
 *   c = t_embedder(t) + y_embedder(y)              [B, D], every adaLN reads SiLU(c)
 *   ctx = context_embedder(context)                [B, Lc, D]
 *   joint blocks: each stream modulates LayerNorm(stream) (no affine, eps 1e-6) with
 *     its own adaLN chunks, projects q k v (RMS qk-norm per head in SD3.5), and all
 *     tokens attend together as [ctx; x]; each stream then adds its gated proj and
 *     gated GELU-tanh MLP.  The last block's context stream is pre-only (k, v only).
 *     MMDiT-X blocks add a second, x-only self-attention (attn2) with 3 more chunks.
 *   final_layer: modulate(LN(x)) -> linear -> unpatchify.
 *
 * The patch embedding is a stride-p p x p convolution, i.e. a Linear over each
 * patch flattened as (channel, row, col) -- the conv weight's own layout -- so it is
 * computed as one ts_linear over gathered patches, which writes tokens directly with
 * no NCHW intermediate.
 *
 * Memory: the two streams live at the bottom of the arena for the whole pass; each
 * block's temporaries (the joint qkv buffer dominates: 3 * D per token) are released
 * when the block ends.
 */
#include "models/mmdit.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/st_names.h"
#include "models/unet.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/norm.h"

#define HEAD_DIM 64
#define FREQ_DIM 256
#define NORM_EPS 1e-6f
#define MAX_DEPTH 64

/* adaLN chunk order along the modulation output (the reference's chunk() order). */
enum { SHIFT_MSA, SCALE_MSA, GATE_MSA, SHIFT_MLP, SCALE_MLP, GATE_MLP, SHIFT_MSA2, SCALE_MSA2, GATE_MSA2 };

typedef struct {
    ts_weight qkv_w, qkv_b; /* qkv_b.data NULL: no bias */
    ts_weight ln_q, ln_k;   /* data NULL: no qk-norm */
    ts_weight proj_w, proj_b;
} attention_weights;

/* One stream of a joint block (context_block or x_block). */
typedef struct {
    int chunks; /* 2 pre-only, 6 normal, 9 with attn2 */
    ts_weight ada_w, ada_b;
    attention_weights attn, attn2;
    ts_weight fc1_w, fc1_b, fc2_w, fc2_b;
} stream_block;

struct ts_mmdit {
    int patch, in_channels, out_channels, hidden, heads, depth, pos_size, adm_channels, context_dim;
    ts_weight x_w, x_b, pos_embed;
    ts_weight t_w1, t_b1, t_w2, t_b2, y_w1, y_b1, y_w2, y_b2;
    ts_weight ctx_w, ctx_b;
    ts_weight final_ada_w, final_ada_b, final_w, final_b;
    stream_block context_blocks[MAX_DEPTH], x_blocks[MAX_DEPTH];
};

/* ---- loading ------------------------------------------------------------------ */

/* base e.g. "joint_blocks.3.x_block.attn"; with_proj 0 for the pre-only context block. */
static int load_attention(const ts_st_scope *l, const char *base, int with_proj, attention_weights *a)
{
    int rc = ts_scope_weight(l, &a->qkv_w, "%s.qkv.weight", base);
    if (!rc && ts_scope_has(l, "%s.qkv.bias", base))
        rc = ts_scope_weight(l, &a->qkv_b, "%s.qkv.bias", base);
    if (!rc && ts_scope_has(l, "%s.ln_q.weight", base)) {
        rc = rc ? rc : ts_scope_weight(l, &a->ln_q, "%s.ln_q.weight", base);
        rc = rc ? rc : ts_scope_weight(l, &a->ln_k, "%s.ln_k.weight", base);
    }
    if (with_proj) {
        rc = rc ? rc : ts_scope_weight(l, &a->proj_w, "%s.proj.weight", base);
        rc = rc ? rc : ts_scope_weight(l, &a->proj_b, "%s.proj.bias", base);
    }
    return rc;
}

static int load_stream(const ts_st_scope *l, int hidden, const char *base, stream_block *s)
{
    char name[128];
    int rc = ts_scope_weight(l, &s->ada_w, "%s.adaLN_modulation.1.weight", base);
    rc = rc ? rc : ts_scope_weight(l, &s->ada_b, "%s.adaLN_modulation.1.bias", base);
    if (rc)
        return rc;
    s->chunks = (int)(s->ada_w.shape[0] / hidden);
    if (s->ada_w.ndim != 2 || s->ada_w.shape[0] % hidden || (s->chunks != 2 && s->chunks != 6 && s->chunks != 9))
        return ts_fail(TS_ERR_MODEL, "%s%s.adaLN_modulation.1.weight: %lld rows is not 2, 6 or 9 x %d",
                       l->prefix, base, (long long)s->ada_w.shape[0], hidden);
    snprintf(name, sizeof name, "%s.attn", base);
    rc = load_attention(l, name, s->chunks != 2, &s->attn);
    if (!rc && s->chunks == 9) {
        snprintf(name, sizeof name, "%s.attn2", base);
        rc = load_attention(l, name, 1, &s->attn2);
    }
    if (!rc && s->chunks != 2) {
        rc = rc ? rc : ts_scope_weight(l, &s->fc1_w, "%s.mlp.fc1.weight", base);
        rc = rc ? rc : ts_scope_weight(l, &s->fc1_b, "%s.mlp.fc1.bias", base);
        rc = rc ? rc : ts_scope_weight(l, &s->fc2_w, "%s.mlp.fc2.weight", base);
        rc = rc ? rc : ts_scope_weight(l, &s->fc2_b, "%s.mlp.fc2.bias", base);
    }
    return rc;
}

static int load_top(const ts_st_scope *l, ts_mmdit *m)
{
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(l, &m->x_w, "x_embedder.proj.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->x_b, "x_embedder.proj.bias");
    rc = rc ? rc : ts_scope_weight(l, &m->pos_embed, "pos_embed");
    rc = rc ? rc : ts_scope_weight(l, &m->t_w1, "t_embedder.mlp.0.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->t_b1, "t_embedder.mlp.0.bias");
    rc = rc ? rc : ts_scope_weight(l, &m->t_w2, "t_embedder.mlp.2.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->t_b2, "t_embedder.mlp.2.bias");
    rc = rc ? rc : ts_scope_weight(l, &m->y_w1, "y_embedder.mlp.0.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->y_b1, "y_embedder.mlp.0.bias");
    rc = rc ? rc : ts_scope_weight(l, &m->y_w2, "y_embedder.mlp.2.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->y_b2, "y_embedder.mlp.2.bias");
    rc = rc ? rc : ts_scope_weight(l, &m->ctx_w, "context_embedder.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->ctx_b, "context_embedder.bias");
    rc = rc ? rc : ts_scope_weight(l, &m->final_ada_w, "final_layer.adaLN_modulation.1.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->final_ada_b, "final_layer.adaLN_modulation.1.bias");
    rc = rc ? rc : ts_scope_weight(l, &m->final_w, "final_layer.linear.weight");
    rc = rc ? rc : ts_scope_weight(l, &m->final_b, "final_layer.linear.bias");
    if (rc)
        return rc;
    const ts_weight *xw = &m->x_w;
    if (xw->ndim != 4 || xw->shape[2] != xw->shape[3] || xw->shape[0] % HEAD_DIM)
        return ts_fail(TS_ERR_MODEL, "%sx_embedder.proj.weight: not a square patch conv with a multiple of %d outputs",
                       l->prefix, HEAD_DIM);
    m->hidden = (int)xw->shape[0];
    m->heads = m->hidden / HEAD_DIM;
    m->in_channels = (int)xw->shape[1];
    m->patch = (int)xw->shape[2];
    m->adm_channels = (int)m->y_w1.shape[1];
    m->context_dim = (int)m->ctx_w.shape[1];
    int64_t grid = m->pos_embed.ndim == 3 ? m->pos_embed.shape[1] : 0;
    m->pos_size = (int)llround(sqrt((double)grid));
    if ((int64_t)m->pos_size * m->pos_size != grid || m->pos_embed.shape[2] != m->hidden)
        return ts_fail(TS_ERR_MODEL, "%spos_embed: expected [1, M*M, %d]", l->prefix, m->hidden);
    int64_t pp = (int64_t)m->patch * m->patch;
    if (m->final_w.shape[0] % pp || m->final_ada_w.shape[0] != 2 * m->hidden)
        return ts_fail(TS_ERR_MODEL, "%sfinal_layer: shapes do not match patch %d, hidden %d", l->prefix, m->patch,
                       m->hidden);
    m->out_channels = (int)(m->final_w.shape[0] / pp);
    return 0;
}

int ts_mmdit_load(ts_weights *wf, const char *prefix, ts_mmdit **out)
{
    *out = NULL;
    ts_mmdit *m = calloc(1, sizeof *m);
    if (!m)
        return ts_fail(TS_ERR_NOMEM, "out of memory loading the MMDiT");
    ts_st_scope l = {.wf = wf, .prefix = prefix ? prefix : ""};
    int rc = load_top(&l, m);
    while (!rc && m->depth < MAX_DEPTH && ts_scope_has(&l, "joint_blocks.%d.x_block.adaLN_modulation.1.weight", m->depth))
        m->depth++;
    char base[64];
    for (int i = 0; i < m->depth && !rc; i++) {
        snprintf(base, sizeof base, "joint_blocks.%d.context_block", i);
        rc = load_stream(&l, m->hidden, base, &m->context_blocks[i]);
        snprintf(base, sizeof base, "joint_blocks.%d.x_block", i);
        rc = rc ? rc : load_stream(&l, m->hidden, base, &m->x_blocks[i]);
        /* Only the last context stream may be pre-only, and no x stream is. */
        if (!rc && (m->x_blocks[i].chunks == 2 || (m->context_blocks[i].chunks == 2) != (i == m->depth - 1) ||
                    m->context_blocks[i].chunks == 9))
            rc = ts_fail(TS_ERR_MODEL, "%sjoint_blocks.%d: unexpected adaLN sizes for an MMDiT block", l.prefix, i);
    }
    if (!rc && m->depth == 0)
        rc = ts_fail(TS_ERR_MODEL, "%s: no joint_blocks under %s; not an SD3 MMDiT", ts_weights_path(wf), l.prefix);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void ts_mmdit_free(ts_mmdit *m) { free(m); }
int ts_mmdit_in_channels(const ts_mmdit *m) { return m->in_channels; }
int ts_mmdit_context_dim(const ts_mmdit *m) { return m->context_dim; }
int ts_mmdit_adm_channels(const ts_mmdit *m) { return m->adm_channels; }
int ts_mmdit_patch_size(const ts_mmdit *m) { return m->patch; }
int ts_mmdit_pos_embed_size(const ts_mmdit *m) { return m->pos_size; }

/* ---- layers ------------------------------------------------------------------- */

/* Pass-wide values the layers share. */
typedef struct {
    const ts_mmdit *m;
    ts_arena *arena;
    int64_t batch, d;
    const float *c_silu; /* [B, D] */
} pass;

static void probe(const ts_mmdit_inputs *in, const char *name, float *data, int ndim, const int64_t *shape)
{
    if (!in->probe)
        return;
    ts_tensor view = ts_tensor_view(data, ndim, shape);
    in->probe(in->probe_ctx, name, &view);
}

/* dst[b, chunk k] = ada(SiLU(c))[b, k*D:(k+1)*D], all chunks: [B, chunks * D]. */
static float *modulation(const pass *p, const ts_weight *w, const ts_weight *b)
{
    int64_t n = w->shape[0];
    float *ada = ts_arena_alloc(p->arena, (size_t)(p->batch * n) * sizeof(float));
    if (ada)
        ts_linear(p->c_silu, p->d, p->batch, w, b, ada, n);
    return ada;
}

/* dst = LayerNorm(x) * (1 + scale) + shift per batch item; x, dst: [B, len, D]. */
static void modulate(const pass *p, const float *x, float *dst, int64_t len, const float *ada, int chunks, int shift,
                     int scale)
{
    int64_t d = p->d;
    ts_layer_norm(x, dst, p->batch * len, d, NULL, NULL, NORM_EPS);
    for (int64_t b = 0; b < p->batch; b++) {
        const float *sh = ada + (b * chunks + shift) * d, *sc = ada + (b * chunks + scale) * d;
        for (int64_t t = 0; t < len; t++) {
            float *row = dst + (b * len + t) * d;
            for (int64_t i = 0; i < d; i++)
                row[i] = row[i] * (1.0f + sc[i]) + sh[i];
        }
    }
}

/* x += gate * y per batch item; x, y: [B, len, D]. */
static void gated_add(const pass *p, float *x, const float *y, int64_t len, const float *ada, int chunks, int gate)
{
    int64_t d = p->d;
    for (int64_t b = 0; b < p->batch; b++) {
        const float *g = ada + (b * chunks + gate) * d;
        for (int64_t t = 0; t < len; t++)
            for (int64_t i = 0; i < d; i++)
                x[(b * len + t) * d + i] += g[i] * y[(b * len + t) * d + i];
    }
}

/* Projects normed tokens [B, len, D] to q|k|v rows written at qkv + offset tokens of
 * each batch item's [B, total, 3D] block, then RMS-normalises each head of q and k. */
static void project_qkv(const pass *p, const attention_weights *a, const float *normed, int64_t len, float *qkv,
                        int64_t total, int64_t offset)
{
    int64_t d = p->d, heads = p->m->heads;
    for (int64_t b = 0; b < p->batch; b++) {
        float *dst = qkv + (b * total + offset) * 3 * d;
        ts_linear(normed + b * len * d, d, len, &a->qkv_w, a->qkv_b.data ? &a->qkv_b : NULL, dst, 3 * d);
        if (!a->ln_q.data)
            continue;
        for (int64_t t = 0; t < len; t++) {
            ts_rms_norm(dst + t * 3 * d, dst + t * 3 * d, heads, HEAD_DIM, &a->ln_q, NORM_EPS);
            ts_rms_norm(dst + t * 3 * d + d, dst + t * 3 * d + d, heads, HEAD_DIM, &a->ln_k, NORM_EPS);
        }
    }
}

/* out [B, len, D] = softmax(q k^T / 8) v over a fused qkv buffer [B, len, 3D]. */
static void attend(const pass *p, const float *qkv, int64_t len, float *out)
{
    int64_t d = p->d;
    ts_attn_params ap = {.batch = p->batch, .heads = p->m->heads, .q_len = len, .kv_len = len, .head_dim = HEAD_DIM,
                         .ldq = 3 * d, .ldk = 3 * d, .ldv = 3 * d, .ldo = d, .scale = 1.0f / sqrtf((float)HEAD_DIM)};
    ts_attention(qkv, qkv + d, qkv + 2 * d, out, &ap);
}

/* x += gate * proj(attn) where attn rows sit at `offset` of each batch item's `total`. */
static int attention_out(const pass *p, const attention_weights *a, const float *attn, int64_t total, int64_t offset,
                         float *x, int64_t len, const float *ada, int chunks, int gate)
{
    int64_t d = p->d;
    float *proj = ts_arena_alloc(p->arena, (size_t)(p->batch * len * d) * sizeof(float));
    if (!proj)
        return TS_ERR_NOMEM;
    for (int64_t b = 0; b < p->batch; b++)
        ts_linear(attn + (b * total + offset) * d, d, len, &a->proj_w, &a->proj_b, proj + b * len * d, d);
    gated_add(p, x, proj, len, ada, chunks, gate);
    return 0;
}

/* x += gate_mlp * fc2(gelu_tanh(fc1(modulate(LN x, shift_mlp, scale_mlp)))). */
static int mlp(const pass *p, const stream_block *s, float *x, int64_t len, const float *ada)
{
    int64_t d = p->d, rows = p->batch * len, inner = s->fc1_w.shape[0];
    float *normed = ts_arena_alloc(p->arena, (size_t)(rows * d) * sizeof(float));
    float *hidden = ts_arena_alloc(p->arena, (size_t)(rows * inner) * sizeof(float));
    if (!normed || !hidden)
        return TS_ERR_NOMEM;
    modulate(p, x, normed, len, ada, s->chunks, SHIFT_MLP, SCALE_MLP);
    ts_linear(normed, d, rows, &s->fc1_w, &s->fc1_b, hidden, inner);
    ts_gelu_tanh(hidden, rows * inner);
    ts_linear(hidden, inner, rows, &s->fc2_w, &s->fc2_b, normed, d);
    gated_add(p, x, normed, len, ada, s->chunks, GATE_MLP);
    return 0;
}

/* MMDiT-X: x += gate_msa2 * attn2.proj(self-attention over x of modulate(x_norm, msa2)). */
static int second_attention(const pass *p, const stream_block *s, const float *x_in, float *x, int64_t len,
                            const float *ada)
{
    int64_t d = p->d, rows = p->batch * len;
    float *normed = ts_arena_alloc(p->arena, (size_t)(rows * d) * sizeof(float));
    float *qkv = ts_arena_alloc(p->arena, (size_t)(rows * 3 * d) * sizeof(float));
    float *out = ts_arena_alloc(p->arena, (size_t)(rows * d) * sizeof(float));
    if (!normed || !qkv || !out)
        return TS_ERR_NOMEM;
    modulate(p, x_in, normed, len, ada, s->chunks, SHIFT_MSA2, SCALE_MSA2);
    project_qkv(p, &s->attn2, normed, len, qkv, len, 0);
    attend(p, qkv, len, out);
    return attention_out(p, &s->attn2, out, len, 0, x, len, ada, s->chunks, GATE_MSA2);
}

/* One joint block: ctx [B, lc, D] and x [B, lx, D] updated in place. */
static int joint_block(const pass *p, int index, float *ctx, int64_t lc, float *x, int64_t lx)
{
    const stream_block *cs = &p->m->context_blocks[index], *xs = &p->m->x_blocks[index];
    size_t mark = ts_arena_mark(p->arena);
    int64_t d = p->d, total = lc + lx;
    float *ada_c = modulation(p, &cs->ada_w, &cs->ada_b);
    float *ada_x = modulation(p, &xs->ada_w, &xs->ada_b);
    float *normed = ts_arena_alloc(p->arena, (size_t)(p->batch * total * d) * sizeof(float));
    float *qkv = ts_arena_alloc(p->arena, (size_t)(p->batch * total * 3 * d) * sizeof(float));
    float *attn = ts_arena_alloc(p->arena, (size_t)(p->batch * total * d) * sizeof(float));
    /* attn2 reads the block's input x, which the joint attention output overwrites. */
    float *x_in = xs->chunks == 9 ? ts_arena_alloc(p->arena, (size_t)(p->batch * lx * d) * sizeof(float)) : x;
    if (!ada_c || !ada_x || !normed || !qkv || !attn || !x_in)
        return TS_ERR_NOMEM;
    if (x_in != x)
        memcpy(x_in, x, (size_t)(p->batch * lx * d) * sizeof(float));
    float *normed_x = normed + p->batch * lc * d;
    modulate(p, ctx, normed, lc, ada_c, cs->chunks, SHIFT_MSA, SCALE_MSA);
    modulate(p, x, normed_x, lx, ada_x, xs->chunks, SHIFT_MSA, SCALE_MSA);
    project_qkv(p, &cs->attn, normed, lc, qkv, total, 0);
    project_qkv(p, &xs->attn, normed_x, lx, qkv, total, lc);
    attend(p, qkv, total, attn);
    int rc = 0;
    if (cs->chunks != 2) {
        rc = attention_out(p, &cs->attn, attn, total, 0, ctx, lc, ada_c, cs->chunks, GATE_MSA);
        rc = rc ? rc : mlp(p, cs, ctx, lc, ada_c);
    }
    rc = rc ? rc : attention_out(p, &xs->attn, attn, total, lc, x, lx, ada_x, xs->chunks, GATE_MSA);
    if (!rc && xs->chunks == 9)
        rc = second_attention(p, xs, x_in, x, lx, ada_x);
    rc = rc ? rc : mlp(p, xs, x, lx, ada_x);
    ts_arena_reset(p->arena, mark);
    return rc;
}

/* tokens[b, i*w + j, (c, r, s)] = latent[b, c, i*p + r, j*p + s]: the patch conv's input rows. */
static void patchify(const ts_tensor *latent, int p, float *tokens)
{
    int64_t batch = latent->shape[0], ch = latent->shape[1], hh = latent->shape[2], ww = latent->shape[3];
    int64_t h = hh / p, w = ww / p, k = ch * p * p;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                float *row = tokens + ((b * h + i) * w + j) * k;
                for (int64_t c = 0; c < ch; c++)
                    for (int r = 0; r < p; r++)
                        for (int s = 0; s < p; s++)
                            *row++ = latent->data[((b * ch + c) * hh + i * p + r) * ww + j * p + s];
            }
}

/* out[b, c, i*p + r, j*p + s] = tokens[b, i*w + j, (r*p + s)*C + c] (channel fastest). */
static void unpatchify(const float *tokens, int p, int64_t channels, ts_tensor *out)
{
    int64_t batch = out->shape[0], hh = out->shape[2], ww = out->shape[3], h = hh / p, w = ww / p;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                const float *row = tokens + ((b * h + i) * w + j) * p * p * channels;
                for (int r = 0; r < p; r++)
                    for (int s = 0; s < p; s++)
                        for (int64_t c = 0; c < channels; c++)
                            out->data[((b * channels + c) * hh + i * p + r) * ww + j * p + s] =
                                row[(r * p + s) * channels + c];
            }
}

/* dst [h*w, D]: the h x w window of the M x M pos_embed grid at (top, left). */
static void cropped_pos_embed(const ts_mmdit *m, int64_t h, int64_t w, int64_t top, int64_t left, float *dst)
{
    ts_weight grid = m->pos_embed;
    grid.ndim = 2;
    grid.shape[0] = (int64_t)m->pos_size * m->pos_size;
    grid.shape[1] = m->hidden;
    for (int64_t i = 0; i < h; i++)
        for (int64_t j = 0; j < w; j++)
            ts_weight_row_f32(&grid, (top + i) * m->pos_size + left + j, dst + (i * w + j) * m->hidden);
}

/* dst [B, D] = w2(SiLU(w1 src + b1)) + b2, src [B, k]. */
static int embed_mlp(const pass *p, const float *src, int64_t k, const ts_weight *w1, const ts_weight *b1,
                     const ts_weight *w2, const ts_weight *b2, float *dst)
{
    size_t mark = ts_arena_mark(p->arena);
    float *hidden = ts_arena_alloc(p->arena, (size_t)(p->batch * p->d) * sizeof(float));
    if (!hidden)
        return TS_ERR_NOMEM;
    ts_linear(src, k, p->batch, w1, b1, hidden, p->d);
    ts_silu(hidden, p->batch * p->d);
    ts_linear(hidden, p->d, p->batch, w2, b2, dst, p->d);
    ts_arena_reset(p->arena, mark);
    return 0;
}

/* c = t_embedder(t) + y_embedder(y); returns SiLU(c), what every adaLN reads. */
static int conditioning(pass *p, const ts_mmdit_inputs *in, float **c_silu)
{
    const ts_mmdit *m = p->m;
    int64_t batch = p->batch, d = p->d;
    float *freq = ts_arena_alloc(p->arena, (size_t)(batch * FREQ_DIM) * sizeof(float));
    float *c = ts_arena_alloc(p->arena, (size_t)(batch * d) * sizeof(float));
    float *yv = ts_arena_alloc(p->arena, (size_t)(batch * d) * sizeof(float));
    if (!freq || !c || !yv)
        return TS_ERR_NOMEM;
    ts_timestep_embedding(in->timesteps, batch, FREQ_DIM, freq);
    int rc = embed_mlp(p, freq, FREQ_DIM, &m->t_w1, &m->t_b1, &m->t_w2, &m->t_b2, c);
    rc = rc ? rc : embed_mlp(p, in->y->data, m->adm_channels, &m->y_w1, &m->y_b1, &m->y_w2, &m->y_b2, yv);
    if (rc)
        return rc;
    probe(in, "mid.t_embedder", c, 2, (int64_t[]){batch, d});
    probe(in, "mid.y_embedder", yv, 2, (int64_t[]){batch, d});
    for (int64_t i = 0; i < batch * d; i++)
        c[i] += yv[i];
    probe(in, "mid.c", c, 2, (int64_t[]){batch, d});
    ts_silu(c, batch * d);
    *c_silu = c;
    return 0;
}

static int check_inputs(const ts_mmdit *m, const ts_mmdit_inputs *in)
{
    const ts_tensor *x = in->x;
    int64_t max = (int64_t)m->pos_size * m->patch;
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != m->in_channels || x->shape[2] % m->patch || x->shape[3] % m->patch ||
        x->shape[2] > max || x->shape[3] > max || x->shape[2] < m->patch || x->shape[3] < m->patch)
        return ts_fail(TS_ERR_ARG, "MMDiT input must be [B, %d, h, w] with h and w multiples of %d up to %lld",
                       m->in_channels, m->patch, (long long)max);
    if (!in->context || in->context->ndim != 3 || in->context->shape[0] != x->shape[0] ||
        in->context->shape[2] != m->context_dim)
        return ts_fail(TS_ERR_ARG, "MMDiT context must be [%lld, tokens, %d]", (long long)x->shape[0],
                       m->context_dim);
    if (!in->y || in->y->ndim != 2 || in->y->shape[0] != x->shape[0] || in->y->shape[1] != m->adm_channels)
        return ts_fail(TS_ERR_ARG, "MMDiT pooled vector y must be [%lld, %d]", (long long)x->shape[0],
                       m->adm_channels);
    if (!in->timesteps)
        return ts_fail(TS_ERR_ARG, "MMDiT needs timesteps");
    return 0;
}

/* Everything after the checks; leaves the output tensor at the arena top. */
static int forward(pass *p, const ts_mmdit_inputs *in, ts_tensor *out)
{
    const ts_mmdit *m = p->m;
    int64_t batch = p->batch, d = p->d, pp = (int64_t)m->patch * m->patch;
    int64_t h = in->x->shape[2] / m->patch, w = in->x->shape[3] / m->patch, lx = h * w;
    int64_t lc = in->context->shape[1];
    float *x = ts_arena_alloc(p->arena, (size_t)(batch * lx * d) * sizeof(float));
    float *ctx = ts_arena_alloc(p->arena, (size_t)(batch * lc * d) * sizeof(float));
    float *c_silu = NULL;
    int rc = x && ctx ? conditioning(p, in, &c_silu) : TS_ERR_NOMEM;
    if (rc)
        return rc;
    p->c_silu = c_silu;
    size_t mark = ts_arena_mark(p->arena);
    float *patches = ts_arena_alloc(p->arena, (size_t)(batch * lx * m->in_channels * pp) * sizeof(float));
    float *pos = ts_arena_alloc(p->arena, (size_t)(lx * d) * sizeof(float));
    if (!patches || !pos)
        return TS_ERR_NOMEM;
    patchify(in->x, m->patch, patches);
    ts_linear(patches, m->in_channels * pp, batch * lx, &m->x_w, &m->x_b, x, d);
    probe(in, "mid.x_embedder", x, 3, (int64_t[]){batch, lx, d});
    for (int64_t b = 0; in->pos_origin && b < batch; b++) {
        int64_t t = in->pos_origin[2 * b], l = in->pos_origin[2 * b + 1];
        if (t < 0 || l < 0 || t + h > m->pos_size || l + w > m->pos_size) {
            ts_arena_reset(p->arena, mark);
            return ts_fail(TS_ERR_ARG, "mmdit: a %lldx%lld-patch window at (%lld, %lld) leaves the %dx%d position grid",
                           (long long)h, (long long)w, (long long)t, (long long)l, m->pos_size, m->pos_size);
        }
    }
    /* The reference's window is the centred one (floor offsets). */
    int64_t top = (m->pos_size - h) / 2, left = (m->pos_size - w) / 2;
    for (int64_t b = 0; b < batch; b++) {
        if (b == 0 || in->pos_origin)
            cropped_pos_embed(m, h, w, in->pos_origin ? in->pos_origin[2 * b] : top,
                              in->pos_origin ? in->pos_origin[2 * b + 1] : left, pos);
        if (b == 0)
            probe(in, "mid.pos_embed_cropped", pos, 3, (int64_t[]){1, lx, d});
        for (int64_t i = 0; i < lx * d; i++)
            x[b * lx * d + i] += pos[i];
    }
    ts_arena_reset(p->arena, mark);
    ts_linear(in->context->data, m->context_dim, batch * lc, &m->ctx_w, &m->ctx_b, ctx, d);
    probe(in, "mid.context_embedder", ctx, 3, (int64_t[]){batch, lc, d});
    char name[64];
    for (int i = 0; i < m->depth && !rc; i++) {
        rc = joint_block(p, i, ctx, lc, x, lx);
        if (!rc && m->context_blocks[i].chunks != 2) {
            snprintf(name, sizeof name, "mid.joint_blocks.%d.context", i);
            probe(in, name, ctx, 3, (int64_t[]){batch, lc, d});
        }
        snprintf(name, sizeof name, "mid.joint_blocks.%d.x", i);
        if (!rc)
            probe(in, name, x, 3, (int64_t[]){batch, lx, d});
    }
    if (rc)
        return rc;
    int64_t n_out = m->final_w.shape[0];
    float *ada = modulation(p, &m->final_ada_w, &m->final_ada_b);
    float *normed = ts_arena_alloc(p->arena, (size_t)(batch * lx * d) * sizeof(float));
    float *tokens = ts_arena_alloc(p->arena, (size_t)(batch * lx * n_out) * sizeof(float));
    *out = ts_arena_tensor(p->arena, 4, (int64_t[]){batch, m->out_channels, in->x->shape[2], in->x->shape[3]});
    if (!ada || !normed || !tokens || !out->data)
        return TS_ERR_NOMEM;
    /* final_layer chunks are [shift, scale], the same positions as the msa pair. */
    modulate(p, x, normed, lx, ada, 2, SHIFT_MSA, SCALE_MSA);
    ts_linear(normed, d, batch * lx, &m->final_w, &m->final_b, tokens, n_out);
    probe(in, "mid.final_layer", tokens, 3, (int64_t[]){batch, lx, n_out});
    unpatchify(tokens, m->patch, m->out_channels, out);
    return 0;
}

int ts_mmdit_forward(const ts_mmdit *m, const ts_mmdit_inputs *in, ts_arena *arena, ts_tensor *out)
{
    int rc = check_inputs(m, in);
    if (rc)
        return rc;
    size_t base = ts_arena_mark(arena);
    pass p = {.m = m, .arena = arena, .batch = in->x->shape[0], .d = m->hidden};
    ts_tensor result;
    rc = forward(&p, in, &result);
    if (rc) {
        ts_arena_reset(arena, base);
        return rc;
    }
    *out = ts_arena_keep(arena, base, result);
    return 0;
}
