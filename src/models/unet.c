/*
 * Stable Diffusion UNet forward pass; see unet.h.
 *
 * ldm openaimodel.UNetModel, as the checkpoints store it:
 *   emb = time_embed(timestep_embedding(t)) [+ label_emb(y) for SDXL]
 *   input_blocks.0.0 = conv_in; then per block either a Downsample
 *     (input_blocks.N.0.op, 3x3 stride 2 pad 1) or a ResBlock (input_blocks.N.0)
 *     optionally followed by a SpatialTransformer (input_blocks.N.1);
 *     every input block's output is pushed on the skip stack;
 *   middle_block = ResBlock, SpatialTransformer, ResBlock;
 *   output_blocks.N = cat(h, skip.pop()) -> ResBlock [-> SpatialTransformer]
 *     [-> Upsample: nearest x2, 3x3 conv];
 *   out = conv_out(SiLU(GroupNorm(h))).
 * ResBlock: h = conv(SiLU(GN(x))); h += Linear(SiLU(emb)); h = conv(SiLU(GN(h)));
 *   return skip(x) + h.  UNet GroupNorms: 32 groups, eps 1e-5.
 * SpatialTransformer: GN (eps 1e-6), proj_in, per block x += attn1(LN1 x),
 *   x += attn2(LN2 x, context), x += GEGLU-FF(LN3 x), proj_out, + input.
 *
 * Memory: the skip stack lives in the arena in push order, so popping it frees
 * memory in stack order; each block's output is moved over what it consumed.
 */
#include "models/unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/st_names.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/gemm.h"
#include "ops/norm.h"

#define UNET_GROUPS 32
#define UNET_GN_EPS 1e-5f
#define TRANSFORMER_GN_EPS 1e-6f
#define LAYERNORM_EPS 1e-5f
#define MAX_BLOCKS 32
#define MAX_DEPTH 16

typedef struct {
    ts_weight in_norm_w, in_norm_b, in_conv_w, in_conv_b;
    ts_weight emb_w, emb_b;
    ts_weight out_norm_w, out_norm_b, out_conv_w, out_conv_b;
    ts_weight skip_w, skip_b; /* data NULL: identity */
} resblock;

typedef struct {
    ts_weight q, k, v, out_w, out_b;
} attention_weights;

typedef struct {
    ts_weight norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm3_b;
    attention_weights self_attn, cross_attn;
    ts_weight ff_in_w, ff_in_b, ff_out_w, ff_out_b;
} transformer_block;

typedef struct {
    int depth, heads;
    ts_weight norm_w, norm_b, proj_in_w, proj_in_b, proj_out_w, proj_out_b;
    transformer_block blocks[MAX_DEPTH];
} spatial_transformer;

/* One entry of input_blocks / middle_block / output_blocks. */
typedef struct {
    int has_res, has_transformer, has_down, has_up, has_res2;
    resblock res, res2; /* res2: the middle block's second ResBlock */
    spatial_transformer transformer;
    ts_weight resample_w, resample_b;
} unet_block;

struct ts_unet {
    ts_unet_config cfg;
    int model_channels, in_channels, out_channels, context_dim, adm_channels;
    ts_weight conv_in_w, conv_in_b;
    ts_weight time_w1, time_b1, time_w2, time_b2;
    ts_weight label_w1, label_b1, label_w2, label_b2;
    int n_input, n_output;
    unet_block input[MAX_BLOCKS], middle, output[MAX_BLOCKS];
    ts_weight out_norm_w, out_norm_b, out_conv_w, out_conv_b;
};

/* ---- loading ------------------------------------------------------------------ */

/* The UNet's tensors (`top`) and those of the block part being loaded (`block`, whose
 * prefix is top's + e.g. "input_blocks.4.1."). */
typedef struct {
    ts_st_scope top, block;
    char block_prefix[192];
} loader;

static int load_resblock(loader *l, resblock *r)
{
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(&l->block, &r->in_norm_w, "in_layers.0.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->in_norm_b, "in_layers.0.bias");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->in_conv_w, "in_layers.2.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->in_conv_b, "in_layers.2.bias");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->emb_w, "emb_layers.1.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->emb_b, "emb_layers.1.bias");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->out_norm_w, "out_layers.0.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->out_norm_b, "out_layers.0.bias");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->out_conv_w, "out_layers.3.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &r->out_conv_b, "out_layers.3.bias");
    if (!rc && ts_scope_has(&l->block, "skip_connection.weight")) {
        rc = rc ? rc : ts_scope_weight(&l->block, &r->skip_w, "skip_connection.weight");
        rc = rc ? rc : ts_scope_weight(&l->block, &r->skip_b, "skip_connection.bias");
    }
    return rc;
}

static int load_attention(loader *l, attention_weights *a, const char *which)
{
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(&l->block, &a->q, "%s.to_q.weight", which);
    rc = rc ? rc : ts_scope_weight(&l->block, &a->k, "%s.to_k.weight", which);
    rc = rc ? rc : ts_scope_weight(&l->block, &a->v, "%s.to_v.weight", which);
    rc = rc ? rc : ts_scope_weight(&l->block, &a->out_w, "%s.to_out.0.weight", which);
    rc = rc ? rc : ts_scope_weight(&l->block, &a->out_b, "%s.to_out.0.bias", which);
    return rc;
}

static int load_transformer(loader *l, const ts_unet_config *cfg, spatial_transformer *t)
{
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(&l->block, &t->norm_w, "norm.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &t->norm_b, "norm.bias");
    rc = rc ? rc : ts_scope_weight(&l->block, &t->proj_in_w, "proj_in.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &t->proj_in_b, "proj_in.bias");
    rc = rc ? rc : ts_scope_weight(&l->block, &t->proj_out_w, "proj_out.weight");
    rc = rc ? rc : ts_scope_weight(&l->block, &t->proj_out_b, "proj_out.bias");
    if (rc)
        return rc;
    int64_t channels = t->proj_in_w.shape[0];
    t->heads = cfg->num_heads > 0 ? cfg->num_heads : (int)(channels / cfg->head_channels);
    if (t->heads < 1 || channels % t->heads)
        return ts_fail(TS_ERR_MODEL, "%s: %lld channels cannot be split into attention heads", l->block.prefix,
                       (long long)channels);
    t->depth = 0;
    while (t->depth < MAX_DEPTH && ts_scope_has(&l->block, "transformer_blocks.%d.norm1.weight", t->depth))
        t->depth++;
    for (int d = 0; d < t->depth && !rc; d++) {
        transformer_block *b = &t->blocks[d];
        char blk[32];
        snprintf(blk, sizeof blk, "transformer_blocks.%d", d);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->norm1_w, "%s.norm1.weight", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->norm1_b, "%s.norm1.bias", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->norm2_w, "%s.norm2.weight", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->norm2_b, "%s.norm2.bias", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->norm3_w, "%s.norm3.weight", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->norm3_b, "%s.norm3.bias", blk);
        char which[48];
        snprintf(which, sizeof which, "%s.attn1", blk);
        rc = rc ? rc : load_attention(l, &b->self_attn, which);
        snprintf(which, sizeof which, "%s.attn2", blk);
        rc = rc ? rc : load_attention(l, &b->cross_attn, which);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->ff_in_w, "%s.ff.net.0.proj.weight", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->ff_in_b, "%s.ff.net.0.proj.bias", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->ff_out_w, "%s.ff.net.2.weight", blk);
        rc = rc ? rc : ts_scope_weight(&l->block, &b->ff_out_b, "%s.ff.net.2.bias", blk);
    }
    return rc;
}

/* Loads one block: `base` is e.g. "input_blocks.3"; its parts are numbered .0, .1, .2. */
static int load_block(loader *l, const ts_unet_config *cfg, const char *base, unet_block *b)
{
    int rc = 0;
    memset(b, 0, sizeof *b);
    for (int part = 0; part < 3 && !rc; part++) {
        snprintf(l->block_prefix, sizeof l->block_prefix, "%s%s.%d.", l->top.prefix, base, part);
        l->block = (ts_st_scope){l->top.wf, l->block_prefix};
        if (ts_scope_has(&l->block, "op.weight")) {
            b->has_down = 1;
            rc = rc ? rc : ts_scope_weight(&l->block, &b->resample_w, "op.weight");
            rc = rc ? rc : ts_scope_weight(&l->block, &b->resample_b, "op.bias");
        } else if (ts_scope_has(&l->block, "conv.weight")) {
            b->has_up = 1;
            rc = rc ? rc : ts_scope_weight(&l->block, &b->resample_w, "conv.weight");
            rc = rc ? rc : ts_scope_weight(&l->block, &b->resample_b, "conv.bias");
        } else if (ts_scope_has(&l->block, "in_layers.0.weight")) {
            int second = b->has_res;
            b->has_res = 1;
            b->has_res2 = second;
            rc = load_resblock(l, second ? &b->res2 : &b->res);
        } else if (ts_scope_has(&l->block, "proj_in.weight")) {
            b->has_transformer = 1;
            rc = load_transformer(l, cfg, &b->transformer);
        }
    }
    return rc;
}

/* ---- shape checks ------------------------------------------------------------- */

/* The loader reads the architecture from a few shapes; every other weight must then
 * agree with the channel flow, or the forward pass would compute nonsense.  Checked
 * once here so a corrupt or mismatched file fails naming the tensor. */
typedef struct {
    const char *path, *prefix;
    char at[64]; /* e.g. "input_blocks.4.0" */
    int64_t emb, context;
} shape_check;

static int want(const shape_check *c, const ts_weight *w, const char *name, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3)
{
    const int64_t e[4] = {d0, d1, d2, d3};
    int ok = w->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = w->shape[i] == e[i];
    if (ok)
        return 0;
    char got[64], expected[64];
    return ts_fail(TS_ERR_MODEL, "%s: shape mismatch: %s%s%s is %s, expected %s", c->path, c->prefix, c->at, name,
                   ts_shape_str(got, sizeof got, w->ndim, w->shape), ts_shape_str(expected, sizeof expected, ndim, e));
}

/* A Linear [out, in] or a 1x1 conv [out, in, 1, 1] (SD1 proj_in/proj_out). */
static int want_proj(const shape_check *c, const ts_weight *w, const char *name, int64_t out, int64_t in)
{
    return want(c, w, name, w->ndim == 4 ? 4 : 2, out, in, 1, 1);
}

static int check_resblock(shape_check *c, const resblock *r, int64_t in, int64_t out)
{
    int rc = 0;
    rc = rc ? rc : want(c, &r->in_norm_w, ".in_layers.0.weight", 1, in, 0, 0, 0);
    rc = rc ? rc : want(c, &r->in_norm_b, ".in_layers.0.bias", 1, in, 0, 0, 0);
    rc = rc ? rc : want(c, &r->in_conv_w, ".in_layers.2.weight", 4, out, in, 3, 3);
    rc = rc ? rc : want(c, &r->in_conv_b, ".in_layers.2.bias", 1, out, 0, 0, 0);
    rc = rc ? rc : want(c, &r->emb_w, ".emb_layers.1.weight", 2, out, c->emb, 0, 0);
    rc = rc ? rc : want(c, &r->emb_b, ".emb_layers.1.bias", 1, out, 0, 0, 0);
    rc = rc ? rc : want(c, &r->out_norm_w, ".out_layers.0.weight", 1, out, 0, 0, 0);
    rc = rc ? rc : want(c, &r->out_norm_b, ".out_layers.0.bias", 1, out, 0, 0, 0);
    rc = rc ? rc : want(c, &r->out_conv_w, ".out_layers.3.weight", 4, out, out, 3, 3);
    rc = rc ? rc : want(c, &r->out_conv_b, ".out_layers.3.bias", 1, out, 0, 0, 0);
    if (rc == 0 && !r->skip_w.data && in != out)
        return ts_fail(TS_ERR_MODEL, "%s: %s%s.skip_connection.weight is missing (%lld -> %lld channels)", c->path,
                       c->prefix, c->at, (long long)in, (long long)out);
    if (rc == 0 && r->skip_w.data) {
        rc = want(c, &r->skip_w, ".skip_connection.weight", 4, out, in, 1, 1);
        rc = rc ? rc : want(c, &r->skip_b, ".skip_connection.bias", 1, out, 0, 0, 0);
    }
    return rc;
}

static int check_attention(shape_check *c, const attention_weights *a, const char *which, int64_t inner, int64_t kv)
{
    char n[5][64];
    const char *parts[5] = {"to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias"};
    for (int i = 0; i < 5; i++)
        snprintf(n[i], sizeof n[i], "%s.%s", which, parts[i]);
    int rc = 0;
    rc = rc ? rc : want(c, &a->q, n[0], 2, inner, inner, 0, 0);
    rc = rc ? rc : want(c, &a->k, n[1], 2, inner, kv, 0, 0);
    rc = rc ? rc : want(c, &a->v, n[2], 2, inner, kv, 0, 0);
    rc = rc ? rc : want(c, &a->out_w, n[3], 2, inner, inner, 0, 0);
    rc = rc ? rc : want(c, &a->out_b, n[4], 1, inner, 0, 0, 0);
    return rc;
}

static int check_transformer(shape_check *c, const spatial_transformer *t, int64_t ch)
{
    int64_t inner = t->proj_in_w.shape[0];
    int rc = 0;
    rc = rc ? rc : want(c, &t->norm_w, ".norm.weight", 1, ch, 0, 0, 0);
    rc = rc ? rc : want(c, &t->norm_b, ".norm.bias", 1, ch, 0, 0, 0);
    rc = rc ? rc : want_proj(c, &t->proj_in_w, ".proj_in.weight", inner, ch);
    rc = rc ? rc : want(c, &t->proj_in_b, ".proj_in.bias", 1, inner, 0, 0, 0);
    rc = rc ? rc : want_proj(c, &t->proj_out_w, ".proj_out.weight", ch, inner);
    rc = rc ? rc : want(c, &t->proj_out_b, ".proj_out.bias", 1, ch, 0, 0, 0);
    for (int d = 0; d < t->depth && rc == 0; d++) {
        const transformer_block *b = &t->blocks[d];
        char n[8][64];
        const char *parts[8] = {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                                "norm3.weight", "norm3.bias", "attn1",        "attn2"};
        for (int i = 0; i < 8; i++)
            snprintf(n[i], sizeof n[i], ".transformer_blocks.%d.%s", d, parts[i]);
        const ts_weight *norms[6] = {&b->norm1_w, &b->norm1_b, &b->norm2_w, &b->norm2_b, &b->norm3_w, &b->norm3_b};
        for (int i = 0; i < 6 && rc == 0; i++)
            rc = want(c, norms[i], n[i], 1, inner, 0, 0, 0);
        rc = rc ? rc : check_attention(c, &b->self_attn, n[6], inner, inner);
        rc = rc ? rc : check_attention(c, &b->cross_attn, n[7], inner, c->context);
        int64_t ff = b->ff_in_w.shape[0] / 2;
        char ffn[4][64];
        const char *ffp[4] = {"ff.net.0.proj.weight", "ff.net.0.proj.bias", "ff.net.2.weight", "ff.net.2.bias"};
        for (int i = 0; i < 4; i++)
            snprintf(ffn[i], sizeof ffn[i], ".transformer_blocks.%d.%s", d, ffp[i]);
        rc = rc ? rc : want(c, &b->ff_in_w, ffn[0], 2, 2 * ff, inner, 0, 0);
        rc = rc ? rc : want(c, &b->ff_in_b, ffn[1], 1, 2 * ff, 0, 0, 0);
        rc = rc ? rc : want(c, &b->ff_out_w, ffn[2], 2, inner, ff, 0, 0);
        rc = rc ? rc : want(c, &b->ff_out_b, ffn[3], 1, inner, 0, 0, 0);
    }
    return rc;
}

static int check_resample(shape_check *c, const unet_block *b, int64_t ch)
{
    const char *w = b->has_down ? ".op.weight" : ".conv.weight", *bias = b->has_down ? ".op.bias" : ".conv.bias";
    int rc = want(c, &b->resample_w, w, 4, ch, ch, 3, 3);
    return rc ? rc : want(c, &b->resample_b, bias, 1, ch, 0, 0, 0);
}

/* One block from `in` channels; returns its output channels in *out.  Parts sit at
 * .0 (ResBlock or Downsample), .1 (transformer, or Upsample without one), .2. */
static int check_block(shape_check *c, const char *base, const unet_block *b, int64_t in, int64_t *out)
{
    int rc = 0;
    int64_t ch = in;
    if (b->has_res) {
        snprintf(c->at, sizeof c->at, "%s.0", base);
        ch = b->res.in_conv_w.shape[0];
        rc = check_resblock(c, &b->res, in, ch);
    }
    if (rc == 0 && b->has_transformer) {
        snprintf(c->at, sizeof c->at, "%s.1", base);
        rc = check_transformer(c, &b->transformer, ch);
    }
    if (rc == 0 && b->has_res2) {
        snprintf(c->at, sizeof c->at, "%s.2", base);
        rc = check_resblock(c, &b->res2, ch, ch);
    }
    if (rc == 0 && (b->has_down || b->has_up)) {
        snprintf(c->at, sizeof c->at, "%s.%d", base, b->has_down ? 0 : b->has_transformer ? 2 : 1);
        rc = check_resample(c, b, ch);
    }
    *out = ch;
    return rc;
}

static int check_shapes(ts_weights *wf, const char *prefix, const ts_unet *u)
{
    shape_check c = {
        .path = ts_weights_path(wf), .prefix = prefix, .emb = u->time_w1.shape[0], .context = u->context_dim};
    int64_t mc = u->model_channels, skips[MAX_BLOCKS], ch = mc;
    int rc = 0;
    rc = rc ? rc : want(&c, &u->conv_in_w, "input_blocks.0.0.weight", 4, mc, u->in_channels, 3, 3);
    rc = rc ? rc : want(&c, &u->conv_in_b, "input_blocks.0.0.bias", 1, mc, 0, 0, 0);
    rc = rc ? rc : want(&c, &u->time_w1, "time_embed.0.weight", 2, c.emb, mc, 0, 0);
    rc = rc ? rc : want(&c, &u->time_b1, "time_embed.0.bias", 1, c.emb, 0, 0, 0);
    rc = rc ? rc : want(&c, &u->time_w2, "time_embed.2.weight", 2, c.emb, c.emb, 0, 0);
    rc = rc ? rc : want(&c, &u->time_b2, "time_embed.2.bias", 1, c.emb, 0, 0, 0);
    if (rc == 0 && u->adm_channels) {
        rc = want(&c, &u->label_b1, "label_emb.0.0.bias", 1, c.emb, 0, 0, 0);
        rc = rc ? rc : want(&c, &u->label_w1, "label_emb.0.0.weight", 2, c.emb, u->adm_channels, 0, 0);
        rc = rc ? rc : want(&c, &u->label_w2, "label_emb.0.2.weight", 2, c.emb, c.emb, 0, 0);
        rc = rc ? rc : want(&c, &u->label_b2, "label_emb.0.2.bias", 1, c.emb, 0, 0, 0);
    }
    skips[0] = mc;
    char base[48];
    for (int i = 1; i < u->n_input && rc == 0; i++) {
        snprintf(base, sizeof base, "input_blocks.%d", i);
        rc = check_block(&c, base, &u->input[i], ch, &ch);
        skips[i] = ch;
    }
    rc = rc ? rc : check_block(&c, "middle_block", &u->middle, ch, &ch);
    for (int i = 0; i < u->n_output && rc == 0; i++) {
        snprintf(base, sizeof base, "output_blocks.%d", i);
        rc = check_block(&c, base, &u->output[i], ch + skips[u->n_input - 1 - i], &ch);
    }
    c.at[0] = '\0';
    rc = rc ? rc : want(&c, &u->out_norm_w, "out.0.weight", 1, ch, 0, 0, 0);
    rc = rc ? rc : want(&c, &u->out_norm_b, "out.0.bias", 1, ch, 0, 0, 0);
    rc = rc ? rc : want(&c, &u->out_conv_w, "out.2.weight", 4, u->out_channels, ch, 3, 3);
    rc = rc ? rc : want(&c, &u->out_conv_b, "out.2.bias", 1, u->out_channels, 0, 0, 0);
    return rc;
}

int ts_unet_load(ts_weights *wf, const char *prefix, ts_unet_config cfg, ts_unet **out)
{
    *out = NULL;
    if (cfg.num_heads <= 0 && cfg.head_channels <= 0)
        return ts_fail(TS_ERR_ARG, "UNet config needs num_heads or head_channels");
    ts_unet *u = calloc(1, sizeof *u);
    if (!u)
        return ts_fail(TS_ERR_NOMEM, "out of memory loading the UNet");
    u->cfg = cfg;
    loader l = {.top = {wf, prefix ? prefix : ""}};
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(&l.top, &u->conv_in_w, "input_blocks.0.0.weight");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->conv_in_b, "input_blocks.0.0.bias");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->time_w1, "time_embed.0.weight");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->time_b1, "time_embed.0.bias");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->time_w2, "time_embed.2.weight");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->time_b2, "time_embed.2.bias");
    if (!rc && ts_scope_has(&l.top, "label_emb.0.0.weight")) {
        rc = rc ? rc : ts_scope_weight(&l.top, &u->label_w1, "label_emb.0.0.weight");
        rc = rc ? rc : ts_scope_weight(&l.top, &u->label_b1, "label_emb.0.0.bias");
        rc = rc ? rc : ts_scope_weight(&l.top, &u->label_w2, "label_emb.0.2.weight");
        rc = rc ? rc : ts_scope_weight(&l.top, &u->label_b2, "label_emb.0.2.bias");
        u->adm_channels = rc ? 0 : (int)u->label_w1.shape[1];
    }
    rc = rc ? rc : ts_scope_weight(&l.top, &u->out_norm_w, "out.0.weight");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->out_norm_b, "out.0.bias");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->out_conv_w, "out.2.weight");
    rc = rc ? rc : ts_scope_weight(&l.top, &u->out_conv_b, "out.2.bias");
    if (rc) {
        free(u);
        return rc;
    }
    u->model_channels = (int)u->conv_in_w.shape[0];
    u->in_channels = (int)u->conv_in_w.shape[1];
    u->out_channels = (int)u->out_conv_w.shape[0];
    char base[48];
    for (u->n_input = 1; u->n_input < MAX_BLOCKS && !rc; u->n_input++) {
        snprintf(base, sizeof base, "input_blocks.%d", u->n_input);
        if (!ts_scope_has(&l.top, "%s.0.op.weight", base) && !ts_scope_has(&l.top, "%s.0.in_layers.0.weight", base))
            break;
        rc = load_block(&l, &cfg, base, &u->input[u->n_input]);
    }
    rc = rc ? rc : load_block(&l, &cfg, "middle_block", &u->middle);
    for (u->n_output = 0; u->n_output < MAX_BLOCKS && !rc; u->n_output++) {
        snprintf(base, sizeof base, "output_blocks.%d", u->n_output);
        if (!ts_scope_has(&l.top, "%s.0.in_layers.0.weight", base))
            break;
        rc = load_block(&l, &cfg, base, &u->output[u->n_output]);
    }
    if (!rc && (u->n_output != u->n_input || !u->middle.has_res))
        rc = ts_fail(TS_ERR_MODEL, "%s: UNet has %d input and %d output blocks; not a Stable Diffusion UNet",
                     ts_weights_path(wf), u->n_input, u->n_output);
    for (int i = 0; !rc && i < MAX_BLOCKS; i++)
        if (u->input[i].has_transformer || u->output[i].has_transformer) {
            const spatial_transformer *t = u->input[i].has_transformer ? &u->input[i].transformer
                                                                       : &u->output[i].transformer;
            u->context_dim = (int)t->blocks[0].cross_attn.k.shape[1];
            break;
        }
    rc = rc ? rc : check_shapes(wf, l.top.prefix, u);
    if (rc) {
        free(u);
        return rc;
    }
    *out = u;
    return 0;
}

void ts_unet_free(ts_unet *unet) { free(unet); }
int ts_unet_in_channels(const ts_unet *unet) { return unet->in_channels; }
int ts_unet_context_dim(const ts_unet *unet) { return unet->context_dim; }
int ts_unet_adm_channels(const ts_unet *unet) { return unet->adm_channels; }

int ts_unet_size_multiple(const ts_unet *u)
{
    int multiple = 1;
    for (int i = 1; i < u->n_input; i++)
        multiple *= u->input[i].has_down ? 2 : 1;
    return multiple;
}

/* ---- layers ------------------------------------------------------------------- */

void ts_sdxl_vector(const float *pooled, int64_t batch, int pooled_dim, const int64_t *sizes, float *y)
{
    int64_t dim = pooled_dim + 6 * TS_SDXL_SIZE_EMBED;
    for (int64_t b = 0; b < batch; b++) {
        float *row = y + b * dim;
        memcpy(row, pooled + b * pooled_dim, (size_t)pooled_dim * sizeof(float));
        for (int i = 0; i < 6; i++) {
            float value = (float)sizes[b * 6 + i];
            ts_timestep_embedding(&value, 1, TS_SDXL_SIZE_EMBED, row + pooled_dim + i * TS_SDXL_SIZE_EMBED);
        }
    }
}

void ts_timestep_embedding(const float *t, int64_t count, int dim, float *dst)
{
    ts_timestep_embedding_scaled(t, count, dim, 1.0, 0, dst);
}

void ts_timestep_embedding_scaled(const float *t, int64_t count, int dim, double time_factor, int f32_freqs,
                                  float *dst)
{
    int half = dim / 2;
    for (int64_t b = 0; b < count; b++) {
        float *row = dst + b * dim;
        double arg = time_factor * t[b];
        for (int i = 0; i < half; i++) {
            /* torch: exp(-ln(10000) * arange(half, float32) / half), every step in float32 */
            double freq = f32_freqs ? (double)expf((float)-log(10000.0) * (float)i / (float)half)
                                    : exp(-log(10000.0) * i / half);
            row[i] = (float)cos(arg * freq);
            row[half + i] = (float)sin(arg * freq);
        }
        if (dim % 2)
            row[dim - 1] = 0.0f;
    }
}

static ts_tensor alloc_like(ts_arena *a, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t shape[4] = {d0, d1, d2, d3};
    return ts_arena_tensor(a, ndim, shape);
}

static int conv(ts_arena *arena, const ts_tensor *x, const ts_weight *w, const ts_weight *b, ts_conv_params p,
                ts_tensor *y)
{
    int64_t k = w->shape[2];
    *y = alloc_like(arena, 4, x->shape[0], w->shape[0], ts_conv_out_size(x->shape[2], k, p.stride, p.pad_top, p.pad_bottom),
                    ts_conv_out_size(x->shape[3], k, p.stride, p.pad_left, p.pad_right));
    return y->data ? ts_conv2d(x, w, b, p, y) : TS_ERR_NOMEM;
}

static int norm_silu(ts_arena *arena, const ts_tensor *x, const ts_weight *g, const ts_weight *b, ts_tensor *y)
{
    *y = ts_arena_tensor(arena, x->ndim, x->shape);
    if (!y->data)
        return TS_ERR_NOMEM;
    ts_group_norm(x, UNET_GROUPS, g, b, UNET_GN_EPS, y);
    ts_silu(y->data, ts_tensor_numel(y));
    return 0;
}

/* Returns a new tensor at the arena top: skip(x) + conv(SiLU(GN(conv(SiLU(GN x)) + emb))). */
static int resblock_forward(ts_arena *arena, const resblock *r, const ts_tensor *x, const float *emb_silu,
                            int64_t emb_dim, ts_tensor *out)
{
    size_t mark = ts_arena_mark(arena);
    ts_tensor a, h, o, skip = *x;
    int rc = norm_silu(arena, x, &r->in_norm_w, &r->in_norm_b, &a);
    rc = rc ? rc : conv(arena, &a, &r->in_conv_w, &r->in_conv_b, ts_conv_same(1, 1), &h);
    if (rc)
        return rc;
    int64_t batch = h.shape[0], ch = h.shape[1], plane = h.shape[2] * h.shape[3];
    float *e = ts_arena_alloc(arena, (size_t)(batch * ch) * sizeof(float));
    if (!e)
        return TS_ERR_NOMEM;
    ts_linear(emb_silu, emb_dim, batch, &r->emb_w, &r->emb_b, e, ch);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < ch; c++) {
            float *p = h.data + (b * ch + c) * plane;
            for (int64_t i = 0; i < plane; i++)
                p[i] += e[b * ch + c];
        }
    rc = norm_silu(arena, &h, &r->out_norm_w, &r->out_norm_b, &a);
    rc = rc ? rc : conv(arena, &a, &r->out_conv_w, &r->out_conv_b, ts_conv_same(1, 1), &o);
    if (!rc && r->skip_w.data)
        rc = conv(arena, x, &r->skip_w, &r->skip_b, ts_conv_same(1, 0), &skip);
    if (rc)
        return rc;
    int64_t n = ts_tensor_numel(&o);
    for (int64_t i = 0; i < n; i++)
        o.data[i] += skip.data[i];
    *out = ts_arena_keep(arena, mark, o);
    return 0;
}

/* tokens [B, S, C] <-> NCHW [B, C, S]: dst[b, c, s] = src[b, s, c] and back. */
static void transpose_last2(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols)
{
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                dst[(b * cols + c) * rows + r] = src[(b * rows + r) * cols + c];
}

/* x [B, S, C] += out_proj(attention(LN x Wq, ctx Wk, ctx Wv)); ctx NULL = self. */
static int attention_block(ts_arena *arena, const attention_weights *w, int heads, const float *normed,
                           const ts_tensor *ctx, float *x, int64_t batch, int64_t s, int64_t c)
{
    size_t mark = ts_arena_mark(arena);
    int64_t kv_len = ctx ? ctx->shape[1] : s, kv_dim = ctx ? ctx->shape[2] : c;
    const float *kv_src = ctx ? ctx->data : normed;
    float *q = ts_arena_alloc(arena, (size_t)(batch * s * c) * sizeof(float));
    float *k = ts_arena_alloc(arena, (size_t)(batch * kv_len * c) * sizeof(float));
    float *v = ts_arena_alloc(arena, (size_t)(batch * kv_len * c) * sizeof(float));
    float *o = ts_arena_alloc(arena, (size_t)(batch * s * c) * sizeof(float));
    if (!q || !k || !v || !o)
        return TS_ERR_NOMEM;
    ts_linear(normed, c, batch * s, &w->q, NULL, q, c);
    ts_linear(kv_src, kv_dim, batch * kv_len, &w->k, NULL, k, c);
    ts_linear(kv_src, kv_dim, batch * kv_len, &w->v, NULL, v, c);
    int64_t head_dim = c / heads;
    ts_attn_params p = {.batch = batch, .heads = heads, .q_len = s, .kv_len = kv_len, .head_dim = head_dim,
                        .ldq = c, .ldk = c, .ldv = c, .ldo = c, .scale = 1.0f / sqrtf((float)head_dim)};
    ts_attention(q, k, v, o, &p);
    ts_linear(o, c, batch * s, &w->out_w, &w->out_b, q, c);
    for (int64_t i = 0; i < batch * s * c; i++)
        x[i] += q[i];
    ts_arena_reset(arena, mark);
    return 0;
}

/* x [B*S, C] += W2 (a * GELU(gate)), [a | gate] = W1 LN(x). */
static int geglu_block(ts_arena *arena, const transformer_block *b, const float *normed, float *x, int64_t rows,
                       int64_t c)
{
    size_t mark = ts_arena_mark(arena);
    int64_t inner = b->ff_in_w.shape[0] / 2;
    float *proj = ts_arena_alloc(arena, (size_t)(rows * 2 * inner) * sizeof(float));
    float *act = ts_arena_alloc(arena, (size_t)(rows * inner) * sizeof(float));
    float *out = ts_arena_alloc(arena, (size_t)(rows * c) * sizeof(float));
    if (!proj || !act || !out)
        return TS_ERR_NOMEM;
    ts_linear(normed, c, rows, &b->ff_in_w, &b->ff_in_b, proj, 2 * inner);
    for (int64_t r = 0; r < rows; r++) {
        float *gate = proj + r * 2 * inner + inner;
        ts_gelu_erf(gate, inner);
        for (int64_t i = 0; i < inner; i++)
            act[r * inner + i] = proj[r * 2 * inner + i] * gate[i];
    }
    ts_linear(act, inner, rows, &b->ff_out_w, &b->ff_out_b, out, c);
    for (int64_t i = 0; i < rows * c; i++)
        x[i] += out[i];
    ts_arena_reset(arena, mark);
    return 0;
}

/* Returns a new tensor at the arena top: x + proj_out(blocks(proj_in(GN x))). */
static int transformer_forward(ts_arena *arena, const spatial_transformer *t, const ts_tensor *x,
                               const ts_tensor *context, ts_tensor *out)
{
    size_t mark = ts_arena_mark(arena);
    int64_t batch = x->shape[0], c = x->shape[1], s = x->shape[2] * x->shape[3], rows = batch * s;
    ts_tensor normed = ts_arena_tensor(arena, 4, x->shape);
    float *tokens = ts_arena_alloc(arena, (size_t)(rows * c) * sizeof(float));
    float *h = ts_arena_alloc(arena, (size_t)(rows * c) * sizeof(float));
    float *ln = ts_arena_alloc(arena, (size_t)(rows * c) * sizeof(float));
    if (!normed.data || !tokens || !h || !ln)
        return TS_ERR_NOMEM;
    ts_group_norm(x, UNET_GROUPS, &t->norm_w, &t->norm_b, TRANSFORMER_GN_EPS, &normed);
    /* proj_in is a 1x1 conv (SD1) or a Linear (SD2, SDXL): the same product on tokens. */
    transpose_last2(normed.data, tokens, batch, c, s);
    ts_linear(tokens, c, rows, &t->proj_in_w, &t->proj_in_b, h, c);
    int rc = 0;
    for (int d = 0; d < t->depth && !rc; d++) {
        const transformer_block *b = &t->blocks[d];
        ts_layer_norm(h, ln, rows, c, &b->norm1_w, &b->norm1_b, LAYERNORM_EPS);
        rc = attention_block(arena, &b->self_attn, t->heads, ln, NULL, h, batch, s, c);
        ts_layer_norm(h, ln, rows, c, &b->norm2_w, &b->norm2_b, LAYERNORM_EPS);
        rc = rc ? rc : attention_block(arena, &b->cross_attn, t->heads, ln, context, h, batch, s, c);
        ts_layer_norm(h, ln, rows, c, &b->norm3_w, &b->norm3_b, LAYERNORM_EPS);
        rc = rc ? rc : geglu_block(arena, b, ln, h, rows, c);
    }
    if (rc)
        return rc;
    ts_linear(h, c, rows, &t->proj_out_w, &t->proj_out_b, tokens, c);
    transpose_last2(tokens, normed.data, batch, s, c);
    int64_t n = ts_tensor_numel(x);
    for (int64_t i = 0; i < n; i++)
        normed.data[i] += x->data[i];
    *out = ts_arena_keep(arena, mark, normed);
    return 0;
}

static int upsample_conv(ts_arena *arena, const unet_block *b, const ts_tensor *x, ts_tensor *out)
{
    size_t mark = ts_arena_mark(arena);
    int64_t h = x->shape[2], w = x->shape[3];
    ts_tensor up = alloc_like(arena, 4, x->shape[0], x->shape[1], 2 * h, 2 * w);
    if (!up.data)
        return TS_ERR_NOMEM;
    for (int64_t plane = 0; plane < x->shape[0] * x->shape[1]; plane++)
        for (int64_t i = 0; i < 2 * h; i++)
            for (int64_t j = 0; j < 2 * w; j++)
                up.data[(plane * 2 * h + i) * 2 * w + j] = x->data[(plane * h + i / 2) * w + j / 2];
    ts_tensor y;
    int rc = conv(arena, &up, &b->resample_w, &b->resample_b, ts_conv_same(1, 1), &y);
    if (rc == 0)
        *out = ts_arena_keep(arena, mark, y);
    return rc;
}

/* Runs one block on x; the result is a new tensor at the arena top. */
static int block_forward(ts_arena *arena, const unet_block *b, const ts_tensor *x, const float *emb_silu,
                         int64_t emb_dim, const ts_tensor *context, ts_tensor *out)
{
    size_t mark = ts_arena_mark(arena);
    ts_tensor h = *x, next;
    int rc = 0;
    if (b->has_down) {
        rc = conv(arena, x, &b->resample_w, &b->resample_b, ts_conv_same(2, 1), &h);
        if (rc == 0)
            *out = h;
        return rc;
    }
    if (b->has_res) {
        rc = resblock_forward(arena, &b->res, &h, emb_silu, emb_dim, &next);
        h = next;
    }
    if (!rc && b->has_transformer) {
        rc = transformer_forward(arena, &b->transformer, &h, context, &next);
        if (!rc)
            h = ts_arena_keep(arena, mark, next);
    }
    if (!rc && b->has_res2) {
        rc = resblock_forward(arena, &b->res2, &h, emb_silu, emb_dim, &next);
        if (!rc)
            h = ts_arena_keep(arena, mark, next);
    }
    if (!rc && b->has_up) {
        rc = upsample_conv(arena, b, &h, &next);
        if (!rc)
            h = ts_arena_keep(arena, mark, next);
    }
    if (rc == 0)
        *out = h;
    return rc;
}

static void probe(const ts_unet_inputs *in, const char *fmt, int index, const ts_tensor *t)
{
    if (!in->probe)
        return;
    char name[64];
    snprintf(name, sizeof name, fmt, index);
    in->probe(in->probe_ctx, name, t);
}

/* emb = time_embed(t) [+ label_emb(y)], returned as SiLU(emb) since every ResBlock
 * applies SiLU first. */
static int embeddings(const ts_unet *u, const ts_unet_inputs *in, ts_arena *arena, float **emb_silu)
{
    int64_t batch = in->x->shape[0], mc = u->model_channels, ed = u->time_w2.shape[0];
    float *t_emb = ts_arena_alloc(arena, (size_t)(batch * mc) * sizeof(float));
    float *hidden = ts_arena_alloc(arena, (size_t)(batch * ed) * sizeof(float));
    float *emb = ts_arena_alloc(arena, (size_t)(batch * ed) * sizeof(float));
    if (!t_emb || !hidden || !emb)
        return TS_ERR_NOMEM;
    ts_timestep_embedding(in->timesteps, batch, (int)mc, t_emb);
    ts_tensor view = ts_tensor_view(t_emb, 2, (int64_t[]){batch, mc});
    probe(in, "mid.t_emb", 0, &view);
    ts_linear(t_emb, mc, batch, &u->time_w1, &u->time_b1, hidden, ed);
    ts_silu(hidden, batch * ed);
    ts_linear(hidden, ed, batch, &u->time_w2, &u->time_b2, emb, ed);
    view = ts_tensor_view(emb, 2, (int64_t[]){batch, ed});
    probe(in, "mid.time_embed", 0, &view);
    if (u->adm_channels) {
        if (!in->y || in->y->ndim != 2 || in->y->shape[0] != batch || in->y->shape[1] != u->adm_channels)
            return ts_fail(TS_ERR_ARG, "this UNet needs the SDXL vector conditioning y of [%lld, %d]",
                           (long long)batch, u->adm_channels);
        float *label = ts_arena_alloc(arena, (size_t)(batch * ed) * sizeof(float));
        if (!label)
            return TS_ERR_NOMEM;
        ts_linear(in->y->data, u->adm_channels, batch, &u->label_w1, &u->label_b1, hidden, ed);
        ts_silu(hidden, batch * ed);
        ts_linear(hidden, ed, batch, &u->label_w2, &u->label_b2, label, ed);
        view = ts_tensor_view(label, 2, (int64_t[]){batch, ed});
        probe(in, "mid.label_emb", 0, &view);
        for (int64_t i = 0; i < batch * ed; i++)
            emb[i] += label[i];
    }
    ts_silu(emb, batch * ed);
    *emb_silu = emb;
    return 0;
}

static int check_inputs(const ts_unet *u, const ts_unet_inputs *in)
{
    const ts_tensor *x = in->x;
    int64_t multiple = ts_unet_size_multiple(u);
    if (x->ndim != 4 || x->shape[1] != u->in_channels || x->shape[2] % multiple || x->shape[3] % multiple)
        return ts_fail(TS_ERR_ARG, "UNet input must be [B, %d, h, w] with h and w multiples of %lld", u->in_channels,
                       (long long)multiple);
    if (u->context_dim && (!in->context || in->context->ndim != 3 || in->context->shape[0] != x->shape[0] ||
                           in->context->shape[2] != u->context_dim))
        return ts_fail(TS_ERR_ARG, "UNet context must be [%lld, tokens, %d]", (long long)x->shape[0], u->context_dim);
    return 0;
}

/* Concatenates a and b along channels into a new tensor at the arena top. */
static int concat_channels(ts_arena *arena, const ts_tensor *a, const ts_tensor *b, ts_tensor *out)
{
    int64_t batch = a->shape[0], plane = a->shape[2] * a->shape[3], ca = a->shape[1], cb = b->shape[1];
    *out = alloc_like(arena, 4, batch, ca + cb, a->shape[2], a->shape[3]);
    if (!out->data)
        return TS_ERR_NOMEM;
    for (int64_t n = 0; n < batch; n++) {
        memcpy(out->data + n * (ca + cb) * plane, a->data + n * ca * plane, (size_t)(ca * plane) * sizeof(float));
        memcpy(out->data + (n * (ca + cb) + ca) * plane, b->data + n * cb * plane, (size_t)(cb * plane) * sizeof(float));
    }
    return 0;
}

int ts_unet_forward(const ts_unet *u, const ts_unet_inputs *in, ts_arena *arena, ts_tensor *out)
{
    int rc = check_inputs(u, in);
    if (rc)
        return rc;
    size_t base = ts_arena_mark(arena);
    float *emb_silu = NULL;
    rc = embeddings(u, in, arena, &emb_silu);
    int64_t emb_dim = u->time_w2.shape[0];
    ts_tensor skips[MAX_BLOCKS], h;
    rc = rc ? rc : conv(arena, in->x, &u->conv_in_w, &u->conv_in_b, ts_conv_same(1, 1), &skips[0]);
    if (!rc)
        probe(in, "mid.input_blocks.%d", 0, &skips[0]);
    for (int i = 1; i < u->n_input && !rc; i++) {
        rc = block_forward(arena, &u->input[i], &skips[i - 1], emb_silu, emb_dim, in->context, &skips[i]);
        if (!rc)
            probe(in, "mid.input_blocks.%d", i, &skips[i]);
    }
    rc = rc ? rc : block_forward(arena, &u->middle, &skips[u->n_input - 1], emb_silu, emb_dim, in->context, &h);
    if (!rc)
        probe(in, "mid.middle_block", 0, &h);
    for (int i = 0; i < u->n_output && !rc; i++) {
        const ts_tensor *skip = &skips[u->n_input - 1 - i];
        ts_tensor cat, next;
        rc = concat_channels(arena, &h, skip, &cat);
        rc = rc ? rc : block_forward(arena, &u->output[i], &cat, emb_silu, emb_dim, in->context, &next);
        if (!rc) {
            h = ts_arena_keep(arena, ts_arena_offset(arena, skip->data), next);
            probe(in, "mid.output_blocks.%d", i, &h);
        }
    }
    ts_tensor a, result;
    rc = rc ? rc : norm_silu(arena, &h, &u->out_norm_w, &u->out_norm_b, &a);
    rc = rc ? rc : conv(arena, &a, &u->out_conv_w, &u->out_conv_b, ts_conv_same(1, 1), &result);
    if (rc) {
        ts_arena_reset(arena, base);
        return rc;
    }
    *out = ts_arena_keep(arena, base, result);
    return 0;
}
