/*
 * CLIP text transformer: loading both layouts and the forward pass; see clip_text.h.
 *
 * A layer is pre-LN (transformers modeling_clip.py CLIPEncoderLayer, open_clip
 * ResidualAttentionBlock):
 *   x = x + out_proj(attention(ln_1(x)))       causal, scale head_dim^-0.5
 *   x = x + fc2(act(fc1(ln_2(x))))
 * with LayerNorm eps 1e-5 everywhere.  SD passes no padding mask: the causal mask
 * alone makes padding positions see every earlier token, and they are part of the
 * conditioning.
 *
 * Memory: the residual stream x [B*T, W] is updated in place; a layer's temporaries
 * (normed input, q, k, v, MLP hidden) come from the arena and are released after it.
 */
#include "text/clip_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/st_names.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/norm.h"

#define CLIP_LN_EPS 1e-5f
#define CLIP_HEAD_DIM 64

/* ---- loading ------------------------------------------------------------------ */

typedef struct {
    ts_weights *wf;
    const char *prefix;
} loader;

/* Loads prefix + formatted name and checks its shape (-1 matches any size). */
#define LOAD(l, w, ndim, shape, ...) ts_weights_getf((l)->wf, (l)->prefix, (w), (ndim), (shape), __VA_ARGS__)

static int has(const loader *l, const char *name) { return ts_weights_find(l->wf, l->prefix, name) != NULL; }

/* Rows [first, first + count) of a [R, C] or [R] weight, as a view. */
static ts_weight row_view(const ts_weight *w, int64_t first, int64_t count)
{
    ts_weight v = *w;
    int64_t row = ts_weight_row_len(w);
    v.shape[0] = count;
    v.data = (const unsigned char *)w->data + ts_dtype_bytes(w->dtype, (uint64_t)(first * row));
    return v;
}

static int load_layer_hf(const loader *l, const ts_clip_text *m, int i, ts_clip_layer *y)
{
    const int64_t W = m->width, vec[1] = {W}, sq[2] = {W, W}, up[2] = {-1, W};
    const char *at = "text_model.encoder.layers";
    int rc = 0;
    rc = rc ? rc : LOAD(l, &y->ln1_w, 1, vec, "%s.%d.layer_norm1.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->ln1_b, 1, vec, "%s.%d.layer_norm1.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->ln2_w, 1, vec, "%s.%d.layer_norm2.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->ln2_b, 1, vec, "%s.%d.layer_norm2.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->q_w, 2, sq, "%s.%d.self_attn.q_proj.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->q_b, 1, vec, "%s.%d.self_attn.q_proj.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->k_w, 2, sq, "%s.%d.self_attn.k_proj.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->k_b, 1, vec, "%s.%d.self_attn.k_proj.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->v_w, 2, sq, "%s.%d.self_attn.v_proj.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->v_b, 1, vec, "%s.%d.self_attn.v_proj.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->out_w, 2, sq, "%s.%d.self_attn.out_proj.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->out_b, 1, vec, "%s.%d.self_attn.out_proj.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->fc1_w, 2, up, "%s.%d.mlp.fc1.weight", at, i);
    int64_t F = rc ? 0 : y->fc1_w.shape[0], down[2] = {W, F}, fb[1] = {F};
    rc = rc ? rc : LOAD(l, &y->fc1_b, 1, fb, "%s.%d.mlp.fc1.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->fc2_w, 2, down, "%s.%d.mlp.fc2.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->fc2_b, 1, vec, "%s.%d.mlp.fc2.bias", at, i);
    return rc;
}

static int load_layer_openclip(const loader *l, const ts_clip_text *m, int i, ts_clip_layer *y)
{
    const int64_t W = m->width, vec[1] = {W}, sq[2] = {W, W}, qkv[2] = {3 * W, W}, qkvb[1] = {3 * W};
    const int64_t up[2] = {-1, W};
    const char *at = "transformer.resblocks";
    ts_weight in_w, in_b;
    int rc = 0;
    rc = rc ? rc : LOAD(l, &y->ln1_w, 1, vec, "%s.%d.ln_1.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->ln1_b, 1, vec, "%s.%d.ln_1.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->ln2_w, 1, vec, "%s.%d.ln_2.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->ln2_b, 1, vec, "%s.%d.ln_2.bias", at, i);
    rc = rc ? rc : LOAD(l, &in_w, 2, qkv, "%s.%d.attn.in_proj_weight", at, i);
    rc = rc ? rc : LOAD(l, &in_b, 1, qkvb, "%s.%d.attn.in_proj_bias", at, i);
    rc = rc ? rc : LOAD(l, &y->out_w, 2, sq, "%s.%d.attn.out_proj.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->out_b, 1, vec, "%s.%d.attn.out_proj.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->fc1_w, 2, up, "%s.%d.mlp.c_fc.weight", at, i);
    int64_t F = rc ? 0 : y->fc1_w.shape[0], down[2] = {W, F}, fb[1] = {F};
    rc = rc ? rc : LOAD(l, &y->fc1_b, 1, fb, "%s.%d.mlp.c_fc.bias", at, i);
    rc = rc ? rc : LOAD(l, &y->fc2_w, 2, down, "%s.%d.mlp.c_proj.weight", at, i);
    rc = rc ? rc : LOAD(l, &y->fc2_b, 1, vec, "%s.%d.mlp.c_proj.bias", at, i);
    if (rc)
        return rc;
    /* nn.MultiheadAttention stacks the projections as rows q | k | v. */
    y->q_w = row_view(&in_w, 0, W);
    y->k_w = row_view(&in_w, W, W);
    y->v_w = row_view(&in_w, 2 * W, W);
    y->q_b = row_view(&in_b, 0, W);
    y->k_b = row_view(&in_b, W, W);
    y->v_b = row_view(&in_b, 2 * W, W);
    return 0;
}

/* Names that differ between the layouts; the layer loops are per layout. */
typedef struct {
    const char *tok, *pos, *final_w, *final_b, *layer_fmt;
    int (*load_layer)(const loader *, const ts_clip_text *, int, ts_clip_layer *);
} layout_names;

static const layout_names hf_names = {
    "text_model.embeddings.token_embedding.weight",
    "text_model.embeddings.position_embedding.weight",
    "text_model.final_layer_norm.weight",
    "text_model.final_layer_norm.bias",
    "text_model.encoder.layers.%d.layer_norm1.weight",
    load_layer_hf,
};

static const layout_names openclip_names = {
    "token_embedding.weight",
    "positional_embedding",
    "ln_final.weight",
    "ln_final.bias",
    "transformer.resblocks.%d.ln_1.weight",
    load_layer_openclip,
};

const char *ts_clip_text_prefix(ts_weights *wf, int n)
{
    static const char *const known[] = {
        "cond_stage_model.transformer.",       "cond_stage_model.model.",
        "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model.",
        "text_encoders.clip_l.transformer.",   "text_encoders.clip_g.transformer.",
        "cond_stage_model.1.transformer.",     "",
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        loader l = {wf, known[i]};
        if ((has(&l, hf_names.tok) || has(&l, openclip_names.tok)) && n-- == 0)
            return known[i];
    }
    return NULL;
}

/* The projection, if the file has one: HF text_projection.weight [E, W], OpenCLIP text_projection [W, E];
 * stable-diffusion.cpp's SDXL files keep OpenCLIP's matrix in the HF layout as text_model.text_projection. */
static int load_projection(const loader *l, ts_clip_text *m)
{
    const int64_t any_by_w[2] = {-1, m->width}, w_by_any[2] = {m->width, -1};
    const char *matrix = m->layout == TS_CLIP_LAYOUT_HF ? "text_model.text_projection" : "text_projection";
    int rc = 0;
    memset(&m->proj, 0, sizeof m->proj);
    m->proj_dim = m->width;
    if (m->layout == TS_CLIP_LAYOUT_HF && has(l, "text_projection.weight")) {
        rc = LOAD(l, &m->proj, 2, any_by_w, "text_projection.weight");
        m->proj_is_linear = 1;
        m->proj_dim = rc ? 0 : (int)m->proj.shape[0];
    } else if (has(l, matrix)) {
        rc = LOAD(l, &m->proj, 2, w_by_any, "%s", matrix);
        m->proj_is_linear = 0;
        m->proj_dim = rc ? 0 : (int)m->proj.shape[1];
    }
    return rc;
}

static ts_clip_act resolve_act(const ts_clip_text *m, ts_clip_act requested)
{
    if (requested != TS_CLIP_ACT_AUTO)
        return requested;
    return m->layout == TS_CLIP_LAYOUT_HF && m->width < 1024 ? TS_CLIP_ACT_QUICK_GELU : TS_CLIP_ACT_GELU;
}

int ts_clip_text_load(ts_weights *wf, const char *prefix, const ts_clip_load_opts *opts, ts_clip_text *m)
{
    loader l = {wf, prefix ? prefix : ""};
    memset(m, 0, sizeof *m);
    const layout_names *names;
    if (has(&l, hf_names.tok))
        names = &hf_names, m->layout = TS_CLIP_LAYOUT_HF;
    else if (has(&l, openclip_names.tok))
        names = &openclip_names, m->layout = TS_CLIP_LAYOUT_OPENCLIP;
    else
        return ts_fail(TS_ERR_MODEL, "%s: no CLIP text encoder under \"%s\" (neither %s nor %s)", ts_weights_path(wf),
                       l.prefix, hf_names.tok, openclip_names.tok);
    const int64_t two_any[2] = {-1, -1};
    int rc = LOAD(&l, &m->tok_emb, 2, two_any, "%s", names->tok);
    if (rc)
        return rc;
    m->vocab = (int)m->tok_emb.shape[0];
    m->width = (int)m->tok_emb.shape[1];
    const int64_t pos_shape[2] = {-1, m->width}, vec[1] = {m->width};
    rc = LOAD(&l, &m->pos_emb, 2, pos_shape, "%s", names->pos);
    rc = rc ? rc : LOAD(&l, &m->final_w, 1, vec, "%s", names->final_w);
    rc = rc ? rc : LOAD(&l, &m->final_b, 1, vec, "%s", names->final_b);
    if (rc)
        return rc;
    m->context = (int)m->pos_emb.shape[0];
    m->layers = ts_weights_count_indexed(wf, l.prefix, names->layer_fmt, TS_CLIP_MAX_LAYERS);
    if (m->layers == 0 || m->layers > TS_CLIP_MAX_LAYERS)
        return ts_fail(TS_ERR_MODEL, "%s: CLIP text encoder under \"%s\" has %d layers (1..%d supported)",
                       ts_weights_path(wf), l.prefix, m->layers, TS_CLIP_MAX_LAYERS);
    m->heads = opts && opts->heads > 0 ? opts->heads : m->width / CLIP_HEAD_DIM;
    if (m->heads <= 0 || m->width % m->heads != 0)
        return ts_fail(TS_ERR_MODEL, "%s: CLIP width %d does not split into %d heads", ts_weights_path(wf), m->width,
                       m->heads);
    for (int i = 0; i < m->layers && !rc; i++)
        rc = names->load_layer(&l, m, i, &m->layer[i]);
    rc = rc ? rc : load_projection(&l, m);
    if (rc)
        return rc;
    m->mlp = (int)m->layer[0].fc1_w.shape[0];
    m->act = resolve_act(m, opts ? opts->act : TS_CLIP_ACT_AUTO);
    return 0;
}

/* ---- forward ------------------------------------------------------------------ */

int ts_clip_text_embed(const ts_clip_text *m, const int32_t *ids, int64_t batch, int64_t tokens, float *x)
{
    const int64_t W = m->width;
    if (tokens < 1 || tokens > m->context || batch < 1)
        return ts_fail(TS_ERR_ARG, "CLIP text encoder: %lld x %lld tokens (1..%d per sequence)", (long long)batch,
                       (long long)tokens, m->context);
    for (int64_t i = 0; i < batch * tokens; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return ts_fail(TS_ERR_ARG, "CLIP text encoder: token id %ld outside the vocabulary (0..%d)",
                           (long)ids[i], m->vocab - 1);
    float *tok = malloc((size_t)W * sizeof *tok);
    if (!tok)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < tokens; t++) {
            float *row = x + (b * tokens + t) * W;
            ts_weight_row_f32(&m->pos_emb, t, row);
            ts_weight_row_f32(&m->tok_emb, ids[b * tokens + t], tok);
            for (int64_t c = 0; c < W; c++)
                row[c] += tok[c];
        }
    free(tok);
    return 0;
}

static void add_into(float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* One pre-LN layer over x [B*T, W], in place. */
static int layer_forward(const ts_clip_text *m, const ts_clip_layer *y, float *x, int64_t batch, int64_t tokens,
                         ts_arena *arena)
{
    const int64_t W = m->width, F = m->mlp, rows = batch * tokens;
    size_t mark = ts_arena_mark(arena);
    float *h = ts_arena_alloc(arena, (size_t)(rows * W) * sizeof(float));
    float *q = ts_arena_alloc(arena, (size_t)(rows * W) * sizeof(float));
    float *k = ts_arena_alloc(arena, (size_t)(rows * W) * sizeof(float));
    float *v = ts_arena_alloc(arena, (size_t)(rows * W) * sizeof(float));
    float *f = ts_arena_alloc(arena, (size_t)(rows * F) * sizeof(float));
    if (!h || !q || !k || !v || !f) {
        ts_arena_reset(arena, mark);
        return TS_ERR_NOMEM;
    }
    ts_layer_norm(x, h, rows, W, &y->ln1_w, &y->ln1_b, CLIP_LN_EPS);
    ts_linear(h, W, rows, &y->q_w, &y->q_b, q, W);
    ts_linear(h, W, rows, &y->k_w, &y->k_b, k, W);
    ts_linear(h, W, rows, &y->v_w, &y->v_b, v, W);
    int64_t dh = W / m->heads;
    ts_attn_params p = {
        .batch = batch, .heads = m->heads, .q_len = tokens, .kv_len = tokens, .head_dim = dh,
        .ldq = W, .ldk = W, .ldv = W, .ldo = W, .scale = 1.0f / sqrtf((float)dh), .causal = 1,
    };
    ts_attention(q, k, v, h, &p);
    ts_linear(h, W, rows, &y->out_w, &y->out_b, q, W);
    add_into(x, q, rows * W);

    ts_layer_norm(x, h, rows, W, &y->ln2_w, &y->ln2_b, CLIP_LN_EPS);
    ts_linear(h, W, rows, &y->fc1_w, &y->fc1_b, f, F);
    if (m->act == TS_CLIP_ACT_QUICK_GELU)
        ts_quick_gelu(f, rows * F);
    else
        ts_gelu_erf(f, rows * F);
    ts_linear(f, F, rows, &y->fc2_w, &y->fc2_b, q, W);
    add_into(x, q, rows * W);
    ts_arena_reset(arena, mark);
    return 0;
}

/* Pooled output: final LN of the last layer's row at argmax(ids) (the first EOS), projected. */
static int pool(const ts_clip_text *m, const int32_t *ids, const float *x, int64_t batch, int64_t tokens,
                ts_arena *arena, float *pooled)
{
    const int64_t W = m->width, E = m->proj_dim;
    float *normed = ts_arena_alloc(arena, (size_t)W * sizeof(float));
    float *prow = ts_arena_alloc(arena, (size_t)E * sizeof(float));
    if (!normed || !prow)
        return TS_ERR_NOMEM;
    for (int64_t b = 0; b < batch; b++) {
        const int32_t *row_ids = ids + b * tokens;
        int64_t eos = 0;
        for (int64_t t = 1; t < tokens; t++)
            if (row_ids[t] > row_ids[eos])
                eos = t;
        ts_layer_norm(x + (b * tokens + eos) * W, normed, 1, W, &m->final_w, &m->final_b, CLIP_LN_EPS);
        float *out = pooled + b * E;
        if (!m->proj.data) {
            memcpy(out, normed, (size_t)W * sizeof(float));
        } else if (m->proj_is_linear) {
            ts_linear(normed, W, 1, &m->proj, NULL, out, E);
        } else {
            /* x @ P with P [W, E]: accumulate the rows of P weighted by x. */
            memset(out, 0, (size_t)E * sizeof(float));
            for (int64_t c = 0; c < W; c++) {
                ts_weight_row_f32(&m->proj, c, prow);
                for (int64_t e = 0; e < E; e++)
                    out[e] += normed[c] * prow[e];
            }
        }
    }
    return 0;
}

int ts_clip_text_forward(const ts_clip_text *m, const int32_t *ids, int64_t batch, int64_t tokens,
                         const ts_clip_text_opts *opts, ts_arena *arena, ts_tensor *hidden, ts_tensor *pooled)
{
    if (opts->clip_skip < 1 || opts->clip_skip > m->layers)
        return ts_fail(TS_ERR_ARG, "CLIP skip %d: must be 1..%d for this %d-layer text encoder", opts->clip_skip,
                       m->layers, m->layers);
    const int64_t W = m->width, rows = batch * tokens;
    const int stop = m->layers - (opts->clip_skip - 1); /* layers whose output is `hidden` */
    const int run = pooled ? m->layers : stop;
    size_t start = ts_arena_mark(arena);
    *hidden = ts_arena_tensor(arena, 3, (int64_t[]){batch, tokens, W});
    if (pooled)
        *pooled = ts_arena_tensor(arena, 2, (int64_t[]){batch, m->proj_dim});
    size_t work = ts_arena_mark(arena);
    float *x = ts_arena_alloc(arena, (size_t)(rows * W) * sizeof(float));
    if (!hidden->data || (pooled && !pooled->data) || !x) {
        ts_arena_reset(arena, start);
        return TS_ERR_NOMEM;
    }
    int rc = ts_clip_text_embed(m, ids, batch, tokens, x);
    for (int i = 0; i < run && !rc; i++) {
        rc = layer_forward(m, &m->layer[i], x, batch, tokens, arena);
        if (!rc && i + 1 == stop) {
            if (opts->final_norm)
                ts_layer_norm(x, hidden->data, rows, W, &m->final_w, &m->final_b, CLIP_LN_EPS);
            else
                memcpy(hidden->data, x, (size_t)(rows * W) * sizeof(float));
        }
    }
    if (!rc && pooled)
        rc = pool(m, ids, x, batch, tokens, arena, pooled->data);
    ts_arena_reset(arena, rc ? start : work);
    return rc;
}
