/*
 * Flux.1 transformer forward pass; see flux.h.
 *
 * flux@802fb47 model.Flux, as flux1-*.safetensors stores it:
 *   img = img_in(img); txt = txt_in(txt)
 *   vec = time_in(E(1000 t)) [+ guidance_in(E(1000 g))] + vector_in(y),
 *     E = [cos, sin] sinusoidal embedding of width 256, MLPEmbedder = out(SiLU(in(x)))
 *   double_blocks: per stream s in {txt, img}: [shift1 scale1 gate1 shift2 scale2 gate2]
 *     = s_mod.lin(SiLU vec); qkv = s_attn.qkv((1+scale1) LN(x) + shift1); RMS QK-norm
 *     per head; attention over [txt; img] with RoPE; x += gate1 s_attn.proj(attn_s);
 *     x += gate2 s_mlp((1+scale2) LN(x) + shift2), mlp = Linear, GELU-tanh, Linear
 *   single_blocks on x = [txt; img]: [shift scale gate] = modulation.lin(SiLU vec);
 *     [qkv | mlp] = linear1((1+scale) LN(x) + shift); x += gate linear2([attn | GELU(mlp)])
 *   out = final_layer.linear((1+scale) LN(img) + shift), [shift scale] = adaLN(SiLU vec)
 * LayerNorms have no affine, eps 1e-6.
 *
 * Layout: the whole pass keeps one joint stream [B, Lt + Li, hidden] with each
 * batch item's text tokens first, so the double blocks work on row ranges of it and
 * the single blocks on all of it, and no concatenation is ever made.  Projections
 * that belong to one stream run per batch item over its rows.
 */
#include "models/flux.h"

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

#define FLUX_LN_EPS 1e-6f
#define FLUX_QK_EPS 1e-6f
#define FLUX_TIME_DIM 256
#define FLUX_TIME_FACTOR 1000.0
#define MAX_DOUBLE 64
#define MAX_SINGLE 128

typedef struct {
    ts_weight w, b;
} linear;

typedef struct {
    linear in, out;
} mlp_embedder;

/* One stream (img or txt) of a double block. */
typedef struct {
    linear mod, qkv, proj, mlp0, mlp2;
    ts_weight q_scale, k_scale;
} stream_weights;

typedef struct {
    stream_weights img, txt;
} double_block;

typedef struct {
    linear mod, linear1, linear2;
    ts_weight q_scale, k_scale;
} single_block;

struct ts_flux {
    ts_flux_config cfg;
    int64_t hidden, heads, head_dim, mlp_hidden, in_channels, out_channels, context_dim, vec_dim;
    int has_guidance, n_double, n_single;
    linear img_in, txt_in, final_mod, final_linear;
    mlp_embedder time_in, guidance_in, vector_in;
    double_block *doubles;
    single_block *singles;
};

/* ---- loading ------------------------------------------------------------------ */

/* base.weight and base.bias */
static int load_linear(const ts_st_scope *l, linear *lin, const char *base)
{
    int rc = ts_scope_weight(l, &lin->w, "%s.weight", base);
    return rc ? rc : ts_scope_weight(l, &lin->b, "%s.bias", base);
}

static int load_embedder(const ts_st_scope *l, mlp_embedder *e, const char *base)
{
    char name[96];
    snprintf(name, sizeof name, "%s.in_layer", base);
    int rc = load_linear(l, &e->in, name);
    snprintf(name, sizeof name, "%s.out_layer", base);
    return rc ? rc : load_linear(l, &e->out, name);
}

static int load_stream(const ts_st_scope *l, stream_weights *s, int block, const char *which)
{
    char name[96];
    int rc = 0;
    snprintf(name, sizeof name, "double_blocks.%d.%s_mod.lin", block, which);
    rc = rc ? rc : load_linear(l, &s->mod, name);
    snprintf(name, sizeof name, "double_blocks.%d.%s_attn.qkv", block, which);
    rc = rc ? rc : load_linear(l, &s->qkv, name);
    snprintf(name, sizeof name, "double_blocks.%d.%s_attn.proj", block, which);
    rc = rc ? rc : load_linear(l, &s->proj, name);
    snprintf(name, sizeof name, "double_blocks.%d.%s_mlp.0", block, which);
    rc = rc ? rc : load_linear(l, &s->mlp0, name);
    snprintf(name, sizeof name, "double_blocks.%d.%s_mlp.2", block, which);
    rc = rc ? rc : load_linear(l, &s->mlp2, name);
    rc = rc ? rc : ts_scope_weight(l, &s->q_scale, "double_blocks.%d.%s_attn.norm.query_norm.scale", block, which);
    rc = rc ? rc : ts_scope_weight(l, &s->k_scale, "double_blocks.%d.%s_attn.norm.key_norm.scale", block, which);
    return rc;
}

static int load_single(const ts_st_scope *l, single_block *s, int block)
{
    char name[96];
    int rc = 0;
    snprintf(name, sizeof name, "single_blocks.%d.modulation.lin", block);
    rc = rc ? rc : load_linear(l, &s->mod, name);
    snprintf(name, sizeof name, "single_blocks.%d.linear1", block);
    rc = rc ? rc : load_linear(l, &s->linear1, name);
    snprintf(name, sizeof name, "single_blocks.%d.linear2", block);
    rc = rc ? rc : load_linear(l, &s->linear2, name);
    rc = rc ? rc : ts_scope_weight(l, &s->q_scale, "single_blocks.%d.norm.query_norm.scale", block);
    rc = rc ? rc : ts_scope_weight(l, &s->k_scale, "single_blocks.%d.norm.key_norm.scale", block);
    return rc;
}

/* A Linear of [out, in] with a bias of out; -1 matches any width. */
static int fits(const linear *l, int64_t out, int64_t in)
{
    return l->w.ndim == 2 && (out < 0 || l->w.shape[0] == out) && (in < 0 || l->w.shape[1] == in) &&
           ts_weight_numel(&l->b) == l->w.shape[0];
}

static int fits_embedder(const mlp_embedder *e, int64_t in, int64_t h)
{
    return fits(&e->in, h, in) && fits(&e->out, h, h);
}

/* Every width the forward pass relies on, checked once so bad files fail at load. */
static int check_shapes(const ts_flux *f, const char *path)
{
    int64_t h = f->hidden, d = f->head_dim, m = f->mlp_hidden;
    int ok = f->heads > 0 && h % d == 0 && d % 2 == 0 && fits(&f->img_in, h, -1) && fits(&f->txt_in, h, -1) &&
             fits(&f->final_mod, 2 * h, h) && fits(&f->final_linear, -1, h) &&
             fits_embedder(&f->time_in, FLUX_TIME_DIM, h) && fits_embedder(&f->vector_in, -1, h) &&
             (!f->has_guidance || fits_embedder(&f->guidance_in, FLUX_TIME_DIM, h));
    for (int i = 0; ok && i < f->n_double; i++) {
        const stream_weights *s[2] = {&f->doubles[i].img, &f->doubles[i].txt};
        for (int j = 0; j < 2; j++)
            ok = ok && fits(&s[j]->mod, 6 * h, h) && fits(&s[j]->qkv, 3 * h, h) && fits(&s[j]->proj, h, h) &&
                 fits(&s[j]->mlp0, m, h) && fits(&s[j]->mlp2, h, m) && ts_weight_numel(&s[j]->q_scale) == d &&
                 ts_weight_numel(&s[j]->k_scale) == d;
    }
    for (int i = 0; ok && i < f->n_single; i++) {
        const single_block *s = &f->singles[i];
        ok = fits(&s->mod, 3 * h, h) && fits(&s->linear1, 3 * h + m, h) && fits(&s->linear2, h, h + m) &&
             ts_weight_numel(&s->q_scale) == d && ts_weight_numel(&s->k_scale) == d;
    }
    if (!ok)
        return ts_fail(TS_ERR_MODEL, "%s: Flux tensor shapes do not fit together (hidden %lld, head %lld)", path,
                       (long long)h, (long long)d);
    int axes = 0;
    for (int a = 0; a < f->cfg.n_axes; a++)
        axes += f->cfg.axes_dim[a];
    if (f->cfg.n_axes < 1 || f->cfg.n_axes > TS_FLUX_MAX_AXES || axes != d)
        return ts_fail(TS_ERR_ARG, "Flux RoPE axes must sum to the head width %lld (they sum to %d)", (long long)d,
                       axes);
    return 0;
}

ts_flux_config ts_flux_config_default(void)
{
    return (ts_flux_config){.n_axes = 3, .axes_dim = {16, 56, 56}, .theta = 10000.0};
}

int ts_flux_config_parse(const char *axes, ts_flux_config *cfg)
{
    *cfg = ts_flux_config_default();
    cfg->n_axes = 0;
    for (const char *p = axes; cfg->n_axes < TS_FLUX_MAX_AXES; p++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 2 || v > 4096 || v % 2)
            break;
        cfg->axes_dim[cfg->n_axes++] = (int)v;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            break;
        p = end;
    }
    return ts_fail(TS_ERR_ARG, "rotary axes '%s': up to %d even sizes, comma-separated", axes, TS_FLUX_MAX_AXES);
}

static int load_blocks(const ts_st_scope *l, ts_flux *f)
{
    while (f->n_double < MAX_DOUBLE && ts_scope_has(l, "double_blocks.%d.img_mod.lin.weight", f->n_double))
        f->n_double++;
    while (f->n_single < MAX_SINGLE && ts_scope_has(l, "single_blocks.%d.modulation.lin.weight", f->n_single))
        f->n_single++;
    f->doubles = calloc((size_t)f->n_double + 1, sizeof *f->doubles);
    f->singles = calloc((size_t)f->n_single + 1, sizeof *f->singles);
    if (!f->doubles || !f->singles)
        return ts_fail(TS_ERR_NOMEM, "out of memory loading Flux");
    int rc = 0;
    for (int i = 0; i < f->n_double && !rc; i++) {
        rc = load_stream(l, &f->doubles[i].img, i, "img");
        rc = rc ? rc : load_stream(l, &f->doubles[i].txt, i, "txt");
    }
    for (int i = 0; i < f->n_single && !rc; i++)
        rc = load_single(l, &f->singles[i], i);
    if (!rc && (f->n_double == 0 || f->n_single == 0))
        rc = ts_fail(TS_ERR_MODEL, "%s: no Flux double_blocks / single_blocks under \"%s\"", ts_weights_path(l->wf),
                     l->prefix);
    return rc;
}

int ts_flux_load(ts_weights *wf, const char *prefix, ts_flux_config cfg, ts_flux **out)
{
    *out = NULL;
    ts_flux *f = calloc(1, sizeof *f);
    if (!f)
        return ts_fail(TS_ERR_NOMEM, "out of memory loading Flux");
    f->cfg = cfg;
    ts_st_scope l = {.wf = wf, .prefix = prefix ? prefix : ""};
    int rc = 0;
    rc = rc ? rc : load_linear(&l, &f->img_in, "img_in");
    rc = rc ? rc : load_linear(&l, &f->txt_in, "txt_in");
    rc = rc ? rc : load_embedder(&l, &f->time_in, "time_in");
    rc = rc ? rc : load_embedder(&l, &f->vector_in, "vector_in");
    f->has_guidance = ts_scope_has(&l, "guidance_in.in_layer.weight");
    if (!rc && f->has_guidance)
        rc = load_embedder(&l, &f->guidance_in, "guidance_in");
    rc = rc ? rc : load_linear(&l, &f->final_mod, "final_layer.adaLN_modulation.1");
    rc = rc ? rc : load_linear(&l, &f->final_linear, "final_layer.linear");
    rc = rc ? rc : load_blocks(&l, f);
    if (!rc) {
        f->hidden = f->img_in.w.shape[0];
        f->in_channels = f->img_in.w.shape[1];
        f->out_channels = f->final_linear.w.shape[0];
        f->context_dim = f->txt_in.w.shape[1];
        f->vec_dim = f->vector_in.in.w.shape[1];
        f->head_dim = ts_weight_numel(&f->doubles[0].img.q_scale);
        f->heads = f->head_dim > 0 ? f->hidden / f->head_dim : 0;
        f->mlp_hidden = f->doubles[0].img.mlp0.w.shape[0];
        rc = check_shapes(f, ts_weights_path(wf));
    }
    if (rc) {
        ts_flux_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void ts_flux_free(ts_flux *flux)
{
    if (!flux)
        return;
    free(flux->doubles);
    free(flux->singles);
    free(flux);
}

int ts_flux_in_channels(const ts_flux *flux) { return (int)flux->in_channels; }
int ts_flux_context_dim(const ts_flux *flux) { return (int)flux->context_dim; }
int ts_flux_vec_dim(const ts_flux *flux) { return (int)flux->vec_dim; }
int ts_flux_has_guidance(const ts_flux *flux) { return flux->has_guidance; }

int ts_flux_double_blocks(const ts_flux *flux)
{
    return flux->n_double;
}

int ts_flux_single_blocks(const ts_flux *flux)
{
    return flux->n_single;
}

/* ---- packing ------------------------------------------------------------------ */

void ts_flux_pack(const float *latent, int64_t batch, int64_t channels, int64_t height, int64_t width, float *tokens)
{
    int64_t h2 = height / 2, w2 = width / 2, dim = 4 * channels;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < channels; c++)
            for (int64_t y = 0; y < height; y++)
                for (int64_t x = 0; x < width; x++)
                    tokens[(b * h2 * w2 + (y / 2) * w2 + x / 2) * dim + c * 4 + (y % 2) * 2 + x % 2] =
                        latent[((b * channels + c) * height + y) * width + x];
}

void ts_flux_unpack(const float *tokens, int64_t batch, int64_t channels, int64_t height, int64_t width,
                    float *latent)
{
    int64_t h2 = height / 2, w2 = width / 2, dim = 4 * channels;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < channels; c++)
            for (int64_t y = 0; y < height; y++)
                for (int64_t x = 0; x < width; x++)
                    latent[((b * channels + c) * height + y) * width + x] =
                        tokens[(b * h2 * w2 + (y / 2) * w2 + x / 2) * dim + c * 4 + (y % 2) * 2 + x % 2];
}

void ts_flux_img_ids(int64_t height, int64_t width, float *ids)
{
    int64_t h2 = height / 2, w2 = width / 2;
    for (int64_t r = 0; r < h2; r++)
        for (int64_t c = 0; c < w2; c++) {
            float *id = ids + (r * w2 + c) * 3;
            id[0] = 0.0f;
            id[1] = (float)r;
            id[2] = (float)c;
        }
}

/* ---- layers ------------------------------------------------------------------- */

static void probe(const ts_flux_inputs *in, const char *name, int ndim, const int64_t *shape, float *data)
{
    if (!in->probe)
        return;
    ts_tensor t = ts_tensor_view(data, ndim, shape);
    in->probe(in->probe_ctx, name, &t);
}

/* Rows (cos, -sin, sin, cos) per token and rotary pair, as math.rope builds them (in
 * double): pair i of axis a turns by ids[a] * theta^(-2j / axes_dim[a]). */
static void rope_table(const ts_flux_config *cfg, const float *ids, int64_t tokens, int64_t head_dim, float *table)
{
    for (int64_t t = 0; t < tokens; t++) {
        float *row = table + t * (head_dim / 2) * 4;
        for (int a = 0; a < cfg->n_axes; a++)
            for (int j = 0; j < cfg->axes_dim[a] / 2; j++, row += 4) {
                double omega = 1.0 / pow(cfg->theta, 2.0 * j / cfg->axes_dim[a]);
                double angle = ids[t * cfg->n_axes + a] * omega;
                row[0] = (float)cos(angle);
                row[1] = (float)-sin(angle);
                row[2] = (float)sin(angle);
                row[3] = (float)cos(angle);
            }
    }
}

/* Rotates adjacent pairs (2i, 2i+1) of every head of one token's q or k in place. */
static void apply_rope(float *x, const float *table, int64_t heads, int64_t head_dim)
{
    for (int64_t h = 0; h < heads; h++) {
        float *v = x + h * head_dim;
        for (int64_t i = 0; i < head_dim / 2; i++) {
            const float *r = table + i * 4;
            float x0 = v[2 * i], x1 = v[2 * i + 1];
            v[2 * i] = r[0] * x0 + r[1] * x1;
            v[2 * i + 1] = r[2] * x0 + r[3] * x1;
        }
    }
}

/* RMS QK-norm then RoPE on the q and k of `rows` tokens whose [q | k | v] rows are ld apart. */
static void prepare_qk(const ts_flux *f, float *qkv, int64_t ld, int64_t rows, const float *table,
                       const ts_weight *q_scale, const ts_weight *k_scale)
{
    int64_t h = f->hidden, d = f->head_dim;
    for (int64_t t = 0; t < rows; t++) {
        float *q = qkv + t * ld, *k = q + h;
        ts_rms_norm(q, q, f->heads, d, q_scale, FLUX_QK_EPS);
        ts_rms_norm(k, k, f->heads, d, k_scale, FLUX_QK_EPS);
        apply_rope(q, table + t * (d / 2) * 4, f->heads, d);
        apply_rope(k, table + t * (d / 2) * 4, f->heads, d);
    }
}

/* dst = (1 + scale) * LN(x) + shift over rows of width h. */
static void modulate(const float *x, float *dst, int64_t rows, int64_t h, const float *shift, const float *scale)
{
    ts_layer_norm(x, dst, rows, h, NULL, NULL, FLUX_LN_EPS);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < h; i++)
            dst[r * h + i] = (1.0f + scale[i]) * dst[r * h + i] + shift[i];
}

/* x += gate * y over rows of width h. */
static void gated_add(float *x, const float *y, int64_t rows, int64_t h, const float *gate)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < h; i++)
            x[r * h + i] += gate[i] * y[r * h + i];
}

/* mods[B, chunks * hidden] = lin(SiLU vec). */
static float *modulation(const ts_flux *f, ts_arena *arena, const float *vec_silu, int64_t batch, const linear *lin)
{
    int64_t n = lin->w.shape[0];
    float *mods = ts_arena_alloc(arena, (size_t)(batch * n) * sizeof(float));
    if (mods)
        ts_linear(vec_silu, f->hidden, batch, &lin->w, &lin->b, mods, n);
    return mods;
}

/* out[B, hidden] = out_layer(SiLU(in_layer(x))). */
static int embedder(const ts_flux *f, ts_arena *arena, const mlp_embedder *e, const float *x, int64_t batch,
                    float *out)
{
    size_t mark = ts_arena_mark(arena);
    float *hidden = ts_arena_alloc(arena, (size_t)(batch * f->hidden) * sizeof(float));
    if (!hidden)
        return TS_ERR_NOMEM;
    ts_linear(x, e->in.w.shape[1], batch, &e->in.w, &e->in.b, hidden, f->hidden);
    ts_silu(hidden, batch * f->hidden);
    ts_linear(hidden, f->hidden, batch, &e->out.w, &e->out.b, out, f->hidden);
    ts_arena_reset(arena, mark);
    return 0;
}

/* A stream's rows inside each batch item of the joint sequence. */
typedef struct {
    int64_t off, len;
} segment;

typedef struct {
    int64_t batch, len; /* len = Lt + Li */
    segment txt, img;
    const float *rope;  /* [batch * len, head_dim / 2, 4] */
} geometry;

static ts_attn_params attn_params(const ts_flux *f, const geometry *g, int64_t ld_qkv, int64_t ld_out)
{
    return (ts_attn_params){.batch = g->batch, .heads = f->heads, .q_len = g->len, .kv_len = g->len,
                            .head_dim = f->head_dim, .ldq = ld_qkv, .ldk = ld_qkv, .ldv = ld_qkv, .ldo = ld_out,
                            .scale = 1.0f / sqrtf((float)f->head_dim)};
}

/* After the joint attention: x_s += gate1 proj(attn_s); x_s += gate2 mlp(mod2(x_s)) for
 * one stream of one batch item (rows of width hidden starting at x). */
static int stream_update(const ts_flux *f, ts_arena *arena, const stream_weights *s, const float *mods,
                         const float *attn, float *x, int64_t rows)
{
    size_t mark = ts_arena_mark(arena);
    int64_t h = f->hidden, m = f->mlp_hidden;
    float *tmp = ts_arena_alloc(arena, (size_t)(rows * h) * sizeof(float));
    float *mid = ts_arena_alloc(arena, (size_t)(rows * m) * sizeof(float));
    if (!tmp || !mid)
        return TS_ERR_NOMEM;
    ts_linear(attn, h, rows, &s->proj.w, &s->proj.b, tmp, h);
    gated_add(x, tmp, rows, h, mods + 2 * h);
    modulate(x, tmp, rows, h, mods + 3 * h, mods + 4 * h);
    ts_linear(tmp, h, rows, &s->mlp0.w, &s->mlp0.b, mid, m);
    ts_gelu_tanh(mid, rows * m);
    ts_linear(mid, m, rows, &s->mlp2.w, &s->mlp2.b, tmp, h);
    gated_add(x, tmp, rows, h, mods + 5 * h);
    ts_arena_reset(arena, mark);
    return 0;
}

static int double_block_forward(const ts_flux *f, ts_arena *arena, const double_block *blk, const geometry *g,
                                const float *vec_silu, float *x)
{
    size_t mark = ts_arena_mark(arena);
    int64_t h = f->hidden, rows = g->batch * g->len;
    const stream_weights *streams[2] = {&blk->txt, &blk->img};
    const segment *segs[2] = {&g->txt, &g->img};
    float *mods[2] = {modulation(f, arena, vec_silu, g->batch, &blk->txt.mod),
                      modulation(f, arena, vec_silu, g->batch, &blk->img.mod)};
    float *qkv = ts_arena_alloc(arena, (size_t)(rows * 3 * h) * sizeof(float));
    float *attn = ts_arena_alloc(arena, (size_t)(rows * h) * sizeof(float));
    float *tmp = ts_arena_alloc(arena, (size_t)(g->len * h) * sizeof(float));
    if (!mods[0] || !mods[1] || !qkv || !attn || !tmp)
        return TS_ERR_NOMEM;
    for (int64_t b = 0; b < g->batch; b++)
        for (int s = 0; s < 2; s++) {
            int64_t first = b * g->len + segs[s]->off, len = segs[s]->len;
            const float *mod = mods[s] + b * 6 * h;
            modulate(x + first * h, tmp, len, h, mod, mod + h);
            ts_linear(tmp, h, len, &streams[s]->qkv.w, &streams[s]->qkv.b, qkv + first * 3 * h, 3 * h);
            prepare_qk(f, qkv + first * 3 * h, 3 * h, len, g->rope + first * (f->head_dim / 2) * 4,
                       &streams[s]->q_scale, &streams[s]->k_scale);
        }
    ts_attn_params p = attn_params(f, g, 3 * h, h);
    ts_attention(qkv, qkv + h, qkv + 2 * h, attn, &p);
    int rc = 0;
    for (int64_t b = 0; b < g->batch && !rc; b++)
        for (int s = 0; s < 2 && !rc; s++) {
            int64_t first = b * g->len + segs[s]->off;
            rc = stream_update(f, arena, streams[s], mods[s] + b * 6 * h, attn + first * h, x + first * h,
                               segs[s]->len);
        }
    ts_arena_reset(arena, mark);
    return rc;
}

static int single_block_forward(const ts_flux *f, ts_arena *arena, const single_block *blk, const geometry *g,
                                const float *vec_silu, float *x)
{
    size_t mark = ts_arena_mark(arena);
    int64_t h = f->hidden, m = f->mlp_hidden, len = g->len, rows = g->batch * len;
    int64_t wide = 3 * h + m, cat = h + m;
    float *mods = modulation(f, arena, vec_silu, g->batch, &blk->mod);
    float *lin1 = ts_arena_alloc(arena, (size_t)(rows * wide) * sizeof(float));
    float *joined = ts_arena_alloc(arena, (size_t)(rows * cat) * sizeof(float));
    float *tmp = ts_arena_alloc(arena, (size_t)(len * h) * sizeof(float));
    if (!mods || !lin1 || !joined || !tmp)
        return TS_ERR_NOMEM;
    for (int64_t b = 0; b < g->batch; b++) {
        modulate(x + b * len * h, tmp, len, h, mods + b * 3 * h, mods + b * 3 * h + h);
        ts_linear(tmp, h, len, &blk->linear1.w, &blk->linear1.b, lin1 + b * len * wide, wide);
    }
    prepare_qk(f, lin1, wide, rows, g->rope, &blk->q_scale, &blk->k_scale);
    ts_attn_params p = attn_params(f, g, wide, cat);
    ts_attention(lin1, lin1 + h, lin1 + 2 * h, joined, &p);
    for (int64_t r = 0; r < rows; r++) {
        float *act = joined + r * cat + h;
        memcpy(act, lin1 + r * wide + 3 * h, (size_t)m * sizeof(float));
        ts_gelu_tanh(act, m);
    }
    for (int64_t b = 0; b < g->batch; b++) {
        ts_linear(joined + b * len * cat, cat, len, &blk->linear2.w, &blk->linear2.b, tmp, h);
        gated_add(x + b * len * h, tmp, len, h, mods + b * 3 * h + 2 * h);
    }
    ts_arena_reset(arena, mark);
    return 0;
}

/* vec = time_in(E(1000 t)) [+ guidance_in(E(1000 g))] + vector_in(y), in the reference's
 * order of summation. */
static int vector_conditioning(const ts_flux *f, const ts_flux_inputs *in, ts_arena *arena, float *vec)
{
    int64_t batch = in->img->shape[0], h = f->hidden;
    float *emb = ts_arena_alloc(arena, (size_t)(batch * FLUX_TIME_DIM) * sizeof(float));
    float *part = ts_arena_alloc(arena, (size_t)(batch * h) * sizeof(float));
    if (!emb || !part)
        return TS_ERR_NOMEM;
    int64_t shape[2] = {batch, h};
    ts_timestep_embedding_scaled(in->timesteps, batch, FLUX_TIME_DIM, FLUX_TIME_FACTOR, 1, emb);
    int rc = embedder(f, arena, &f->time_in, emb, batch, vec);
    if (!rc)
        probe(in, "mid.time_in", 2, shape, vec);
    if (!rc && f->has_guidance) {
        ts_timestep_embedding_scaled(in->guidance, batch, FLUX_TIME_DIM, FLUX_TIME_FACTOR, 1, emb);
        rc = embedder(f, arena, &f->guidance_in, emb, batch, part);
        if (!rc)
            probe(in, "mid.guidance_in", 2, shape, part);
        for (int64_t i = 0; !rc && i < batch * h; i++)
            vec[i] += part[i];
    }
    rc = rc ? rc : embedder(f, arena, &f->vector_in, in->y->data, batch, part);
    if (!rc) {
        probe(in, "mid.vector_in", 2, shape, part);
        for (int64_t i = 0; i < batch * h; i++)
            vec[i] += part[i];
        probe(in, "mid.vec", 2, shape, vec);
    }
    return rc;
}

static int check_tokens(const ts_tensor *t, int64_t batch, int64_t width, const char *what)
{
    if (!t || t->ndim != 3 || t->shape[0] != batch || t->shape[2] != width)
        return ts_fail(TS_ERR_ARG, "Flux %s must be [%lld, tokens, %lld]", what, (long long)batch, (long long)width);
    return 0;
}

static int check_inputs(const ts_flux *f, const ts_flux_inputs *in)
{
    int64_t batch = in->img ? in->img->shape[0] : 0;
    int rc = check_tokens(in->img, batch, f->in_channels, "img");
    rc = rc ? rc : check_tokens(in->txt, batch, f->context_dim, "txt");
    rc = rc ? rc : check_tokens(in->img_ids, batch, f->cfg.n_axes, "img_ids");
    rc = rc ? rc : check_tokens(in->txt_ids, batch, f->cfg.n_axes, "txt_ids");
    if (!rc && (in->img_ids->shape[1] != in->img->shape[1] || in->txt_ids->shape[1] != in->txt->shape[1]))
        rc = ts_fail(TS_ERR_ARG, "Flux position ids must have one row per token");
    if (!rc && (!in->y || in->y->ndim != 2 || in->y->shape[0] != batch || in->y->shape[1] != f->vec_dim))
        rc = ts_fail(TS_ERR_ARG, "Flux needs the pooled vector y of [%lld, %lld]", (long long)batch,
                     (long long)f->vec_dim);
    if (!rc && (!in->timesteps || (f->has_guidance && !in->guidance)))
        rc = ts_fail(TS_ERR_ARG, "Flux needs timesteps%s", f->has_guidance ? " and guidance (dev model)" : "");
    return rc;
}

/* Joint stream [B, Lt + Li, hidden] = [txt_in(txt); img_in(img)] per batch item, and the
 * RoPE table of ids = [txt_ids; img_ids]. */
static int embed_tokens(const ts_flux *f, const ts_flux_inputs *in, ts_arena *arena, const geometry *g, float *x,
                        float *rope)
{
    int64_t h = f->hidden, lt = g->txt.len, li = g->img.len, half = f->head_dim / 2, na = f->cfg.n_axes;
    float *ids = ts_arena_alloc(arena, (size_t)(g->batch * g->len * na) * sizeof(float));
    if (!ids)
        return TS_ERR_NOMEM;
    for (int64_t b = 0; b < g->batch; b++) {
        float *row = x + b * g->len * h;
        ts_linear(in->txt->data + b * lt * f->context_dim, f->context_dim, lt, &f->txt_in.w, &f->txt_in.b, row, h);
        ts_linear(in->img->data + b * li * f->in_channels, f->in_channels, li, &f->img_in.w, &f->img_in.b,
                  row + lt * h, h);
        memcpy(ids + b * g->len * na, in->txt_ids->data + b * lt * na, (size_t)(lt * na) * sizeof(float));
        memcpy(ids + (b * g->len + lt) * na, in->img_ids->data + b * li * na, (size_t)(li * na) * sizeof(float));
    }
    rope_table(&f->cfg, ids, g->batch * g->len, f->head_dim, rope);
    if (in->probe && g->batch == 1) {
        probe(in, "mid.txt_in", 3, (int64_t[]){1, lt, h}, x);
        probe(in, "mid.img_in", 3, (int64_t[]){1, li, h}, x + lt * h);
    }
    probe(in, "mid.pe_embedder", 4, (int64_t[]){g->batch, g->len, half, 4}, rope);
    return 0;
}

/* The probes of the two streams after a double block (batch 1: they are row ranges). */
static void probe_streams(const ts_flux_inputs *in, const geometry *g, int64_t h, int block, const float *x)
{
    if (!in->probe || g->batch != 1)
        return;
    char name[64];
    snprintf(name, sizeof name, "mid.double_blocks.%d.img", block);
    probe(in, name, 3, (int64_t[]){1, g->img.len, h}, (float *)x + g->img.off * h);
    snprintf(name, sizeof name, "mid.double_blocks.%d.txt", block);
    probe(in, name, 3, (int64_t[]){1, g->txt.len, h}, (float *)x);
}

/* out[B, Li, out] = final_layer(img part of x). */
static int final_layer(const ts_flux *f, ts_arena *arena, const geometry *g, const float *vec_silu, const float *x,
                       float *out)
{
    int64_t h = f->hidden, li = g->img.len;
    float *mods = modulation(f, arena, vec_silu, g->batch, &f->final_mod);
    float *tmp = ts_arena_alloc(arena, (size_t)(li * h) * sizeof(float));
    if (!mods || !tmp)
        return TS_ERR_NOMEM;
    for (int64_t b = 0; b < g->batch; b++) {
        modulate(x + (b * g->len + g->img.off) * h, tmp, li, h, mods + b * 2 * h, mods + b * 2 * h + h);
        ts_linear(tmp, h, li, &f->final_linear.w, &f->final_linear.b, out + b * li * f->out_channels,
                  f->out_channels);
    }
    return 0;
}

int ts_flux_forward(const ts_flux *f, const ts_flux_inputs *in, ts_arena *arena, ts_tensor *out)
{
    int rc = check_inputs(f, in);
    if (rc)
        return rc;
    size_t base = ts_arena_mark(arena);
    int64_t batch = in->img->shape[0], lt = in->txt->shape[1], li = in->img->shape[1], h = f->hidden;
    geometry g = {.batch = batch, .len = lt + li, .txt = {0, lt}, .img = {lt, li}};
    ts_tensor result = ts_arena_tensor(arena, 3, (int64_t[]){batch, li, f->out_channels});
    float *vec = ts_arena_alloc(arena, (size_t)(batch * h) * sizeof(float));
    float *x = ts_arena_alloc(arena, (size_t)(batch * g.len * h) * sizeof(float));
    float *rope = ts_arena_alloc(arena, (size_t)(batch * g.len * f->head_dim * 2) * sizeof(float));
    if (!result.data || !vec || !x || !rope)
        rc = TS_ERR_NOMEM;
    g.rope = rope;
    rc = rc ? rc : vector_conditioning(f, in, arena, vec);
    rc = rc ? rc : embed_tokens(f, in, arena, &g, x, rope);
    if (!rc)
        ts_silu(vec, batch * h);
    for (int i = 0; i < f->n_double && !rc; i++) {
        rc = double_block_forward(f, arena, &f->doubles[i], &g, vec, x);
        if (!rc)
            probe_streams(in, &g, h, i, x);
    }
    for (int i = 0; i < f->n_single && !rc; i++) {
        rc = single_block_forward(f, arena, &f->singles[i], &g, vec, x);
        char name[64];
        snprintf(name, sizeof name, "mid.single_blocks.%d", i);
        if (!rc)
            probe(in, name, 3, (int64_t[]){batch, g.len, h}, x);
    }
    rc = rc ? rc : final_layer(f, arena, &g, vec, x, result.data);
    if (rc) {
        ts_arena_reset(arena, base);
        return rc;
    }
    *out = ts_arena_keep(arena, base, result);
    return 0;
}
