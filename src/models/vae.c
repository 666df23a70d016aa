/*
 * AutoencoderKL forward passes; see vae.h.
 *
 * Structure (ldm/modules/diffusionmodules/model.py):
 *   encoder: conv_in; per level i: num_res_blocks ResnetBlocks, then a Downsample
 *            (except the last level); mid (block_1, attn_1, block_2); GroupNorm,
 *            swish, conv_out to 2*z channels.
 *   decoder: conv_in; mid; levels from the last down to 0: num_res_blocks + 1
 *            ResnetBlocks, then an Upsample (except level 0); GroupNorm, swish, conv_out.
 * GroupNorm has 32 groups and eps 1e-6.  Downsample pads right and bottom by one
 * and convolves 3x3 with stride 2; Upsample is nearest x2 then a 3x3 conv.
 *
 * Memory: every layer's output is moved down over its input with ts_arena_keep, so
 * a pass holds one layer's input, temporaries and output at a time.  The layers the
 * tiled passes (vae_tiled.c) also run on a tile are shared through vae_layers.h.
 */
#include "models/vae.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "io/st_names.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/gemm.h"
#include "models/vae_layers.h"
#include "ops/norm.h"

/* ---- loading ------------------------------------------------------------------ */

static int load_resblock(const ts_st_scope *l, ts_vae_resblock *b, const char *at)
{
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(l, &b->norm1_w, "%s.norm1.weight", at);
    rc = rc ? rc : ts_scope_weight(l, &b->norm1_b, "%s.norm1.bias", at);
    rc = rc ? rc : ts_scope_weight(l, &b->conv1_w, "%s.conv1.weight", at);
    rc = rc ? rc : ts_scope_weight(l, &b->conv1_b, "%s.conv1.bias", at);
    rc = rc ? rc : ts_scope_weight(l, &b->norm2_w, "%s.norm2.weight", at);
    rc = rc ? rc : ts_scope_weight(l, &b->norm2_b, "%s.norm2.bias", at);
    rc = rc ? rc : ts_scope_weight(l, &b->conv2_w, "%s.conv2.weight", at);
    rc = rc ? rc : ts_scope_weight(l, &b->conv2_b, "%s.conv2.bias", at);
    if (rc)
        return rc;
    memset(&b->shortcut_w, 0, sizeof b->shortcut_w);
    memset(&b->shortcut_b, 0, sizeof b->shortcut_b);
    if (b->conv1_w.shape[0] != b->conv1_w.shape[1]) {
        rc = rc ? rc : ts_scope_weight(l, &b->shortcut_w, "%s.nin_shortcut.weight", at);
        rc = rc ? rc : ts_scope_weight(l, &b->shortcut_b, "%s.nin_shortcut.bias", at);
    }
    return rc;
}

static int load_mid(const ts_st_scope *l, ts_vae_mid *m, const char *part)
{
    char at[64];
    int rc = 0;
    snprintf(at, sizeof at, "%s.mid.block_1", part);
    rc = rc ? rc : load_resblock(l, &m->block_1, at);
    snprintf(at, sizeof at, "%s.mid.block_2", part);
    rc = rc ? rc : load_resblock(l, &m->block_2, at);
    ts_vae_attention *a = &m->attn;
    rc = rc ? rc : ts_scope_weight(l, &a->norm_w, "%s.mid.attn_1.norm.weight", part);
    rc = rc ? rc : ts_scope_weight(l, &a->norm_b, "%s.mid.attn_1.norm.bias", part);
    rc = rc ? rc : ts_scope_weight(l, &a->q_w, "%s.mid.attn_1.q.weight", part);
    rc = rc ? rc : ts_scope_weight(l, &a->q_b, "%s.mid.attn_1.q.bias", part);
    rc = rc ? rc : ts_scope_weight(l, &a->k_w, "%s.mid.attn_1.k.weight", part);
    rc = rc ? rc : ts_scope_weight(l, &a->k_b, "%s.mid.attn_1.k.bias", part);
    rc = rc ? rc : ts_scope_weight(l, &a->v_w, "%s.mid.attn_1.v.weight", part);
    rc = rc ? rc : ts_scope_weight(l, &a->v_b, "%s.mid.attn_1.v.bias", part);
    rc = rc ? rc : ts_scope_weight(l, &a->proj_w, "%s.mid.attn_1.proj_out.weight", part);
    rc = rc ? rc : ts_scope_weight(l, &a->proj_b, "%s.mid.attn_1.proj_out.bias", part);
    return rc;
}

static int load_encoder(const ts_st_scope *l, ts_vae *vae)
{
    ts_vae_encoder *e = &vae->enc;
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(l, &e->conv_in_w, "encoder.conv_in.weight");
    rc = rc ? rc : ts_scope_weight(l, &e->conv_in_b, "encoder.conv_in.bias");
    char at[64];
    for (int i = 0; i < vae->levels && !rc; i++) {
        for (int j = 0; j < vae->blocks_per_level && !rc; j++) {
            snprintf(at, sizeof at, "encoder.down.%d.block.%d", i, j);
            rc = load_resblock(l, &e->blocks[i][j], at);
        }
        if (i + 1 < vae->levels) {
            rc = rc ? rc : ts_scope_weight(l, &e->downsample_w[i], "encoder.down.%d.downsample.conv.weight", i);
            rc = rc ? rc : ts_scope_weight(l, &e->downsample_b[i], "encoder.down.%d.downsample.conv.bias", i);
        }
    }
    rc = rc ? rc : load_mid(l, &e->mid, "encoder");
    rc = rc ? rc : ts_scope_weight(l, &e->norm_out_w, "encoder.norm_out.weight");
    rc = rc ? rc : ts_scope_weight(l, &e->norm_out_b, "encoder.norm_out.bias");
    rc = rc ? rc : ts_scope_weight(l, &e->conv_out_w, "encoder.conv_out.weight");
    rc = rc ? rc : ts_scope_weight(l, &e->conv_out_b, "encoder.conv_out.bias");
    if (!rc && e->conv_out_w.shape[0] != 2 * vae->z_channels)
        rc = ts_fail(TS_ERR_MODEL, "%s: VAE encoder.conv_out has %lld outputs, expected %d (2 x latent channels)",
                     ts_weights_path(l->wf), (long long)e->conv_out_w.shape[0], 2 * vae->z_channels);
    return rc;
}

static int load_decoder(const ts_st_scope *l, ts_vae *vae)
{
    ts_vae_decoder *d = &vae->dec;
    int rc = 0;
    rc = rc ? rc : ts_scope_weight(l, &d->conv_in_w, "decoder.conv_in.weight");
    rc = rc ? rc : ts_scope_weight(l, &d->conv_in_b, "decoder.conv_in.bias");
    rc = rc ? rc : load_mid(l, &d->mid, "decoder");
    char at[64];
    for (int i = 0; i < vae->levels && !rc; i++) {
        for (int j = 0; j <= vae->blocks_per_level && !rc; j++) {
            snprintf(at, sizeof at, "decoder.up.%d.block.%d", i, j);
            rc = load_resblock(l, &d->blocks[i][j], at);
        }
        if (i > 0) {
            rc = rc ? rc : ts_scope_weight(l, &d->upsample_w[i], "decoder.up.%d.upsample.conv.weight", i);
            rc = rc ? rc : ts_scope_weight(l, &d->upsample_b[i], "decoder.up.%d.upsample.conv.bias", i);
        }
    }
    rc = rc ? rc : ts_scope_weight(l, &d->norm_out_w, "decoder.norm_out.weight");
    rc = rc ? rc : ts_scope_weight(l, &d->norm_out_b, "decoder.norm_out.bias");
    rc = rc ? rc : ts_scope_weight(l, &d->conv_out_w, "decoder.conv_out.weight");
    rc = rc ? rc : ts_scope_weight(l, &d->conv_out_b, "decoder.conv_out.bias");
    return rc;
}

int ts_vae_load(ts_weights *wf, ts_vae *vae)
{
    static const char *prefixes[] = {"first_stage_model.", "vae.", ""};
    ts_st_scope l = {.wf = wf};
    size_t p = 0;
    for (; p < sizeof prefixes / sizeof prefixes[0]; p++)
        if (ts_weights_find(wf, prefixes[p], "decoder.conv_in.weight"))
            break;
    if (p == sizeof prefixes / sizeof prefixes[0])
        return ts_fail(TS_ERR_MODEL, "%s: no VAE found (no decoder.conv_in.weight under first_stage_model., vae. or "
                                     "the top level)",
                       ts_weights_path(wf));
    l.prefix = prefixes[p];
    memset(vae, 0, sizeof *vae);
    vae->levels = ts_weights_count_indexed(wf, l.prefix, "decoder.up.%d.block.0.conv1.weight", TS_VAE_MAX_LEVELS);
    vae->blocks_per_level =
        ts_weights_count_indexed(wf, l.prefix, "decoder.up.0.block.%d.conv1.weight", TS_VAE_MAX_BLOCKS + 1) - 1;
    if (vae->levels < 1 || vae->levels > TS_VAE_MAX_LEVELS || vae->blocks_per_level < 1 ||
        vae->blocks_per_level > TS_VAE_MAX_BLOCKS)
        return ts_fail(TS_ERR_MODEL, "%s: VAE with %d levels of %d blocks is not a supported layout",
                       ts_weights_path(wf), vae->levels, vae->blocks_per_level + 1);
    int rc = load_decoder(&l, vae);
    if (rc)
        return rc;
    vae->z_channels = (int)vae->dec.conv_in_w.shape[1];
    vae->image_channels = (int)vae->dec.conv_out_w.shape[0];
    vae->has_quant_conv = ts_scope_has(&l, "post_quant_conv.weight");
    if (vae->has_quant_conv) {
        rc = rc ? rc : ts_scope_weight(&l, &vae->post_quant_w, "post_quant_conv.weight");
        rc = rc ? rc : ts_scope_weight(&l, &vae->post_quant_b, "post_quant_conv.bias");
        rc = rc ? rc : ts_scope_weight(&l, &vae->quant_w, "quant_conv.weight");
        rc = rc ? rc : ts_scope_weight(&l, &vae->quant_b, "quant_conv.bias");
    }
    vae->has_encoder = ts_scope_has(&l, "encoder.conv_in.weight");
    if (!rc && vae->has_encoder)
        rc = load_encoder(&l, vae);
    return rc;
}

/* ---- layers ------------------------------------------------------------------- */

static int64_t channels_of(const ts_weight *conv) { return conv->shape[0]; }

int ts_vae_conv(ts_arena *arena, const ts_tensor *x, const ts_weight *w, const ts_weight *b, ts_conv_params p,
                ts_tensor *y)
{
    int64_t kh = w->ndim == 4 ? w->shape[2] : 1, kw = w->ndim == 4 ? w->shape[3] : 1;
    int64_t shape[4] = {x->shape[0], channels_of(w), ts_conv_out_size(x->shape[2], kh, p.stride, p.pad_top, p.pad_bottom),
                        ts_conv_out_size(x->shape[3], kw, p.stride, p.pad_left, p.pad_right)};
    *y = ts_arena_tensor(arena, 4, shape);
    if (!y->data)
        return TS_ERR_NOMEM;
    return ts_conv2d(x, w, b, p, y);
}

/* y = swish(GroupNorm(x)), a new tensor. */
static int norm_swish(ts_arena *arena, const ts_tensor *x, const ts_weight *g, const ts_weight *b, ts_tensor *y)
{
    *y = ts_arena_tensor(arena, x->ndim, x->shape);
    if (!y->data)
        return TS_ERR_NOMEM;
    ts_group_norm(x, TS_VAE_GROUPS, g, b, TS_VAE_EPS, y);
    ts_silu(y->data, ts_tensor_numel(y));
    return 0;
}

static int norm_swish_replace(ts_arena *arena, ts_tensor *x, const ts_weight *g, const ts_weight *b)
{
    ts_tensor y;
    int rc = norm_swish(arena, x, g, b, &y);
    if (rc == 0)
        *x = ts_arena_keep(arena, ts_arena_offset(arena, x->data), y);
    return rc;
}

int ts_vae_add_shortcut(ts_arena *arena, const ts_vae_resblock *blk, const ts_tensor *x, ts_tensor *out)
{
    size_t mark = ts_arena_mark(arena);
    ts_tensor s = *x;
    if (blk->shortcut_w.data) {
        int rc = ts_vae_conv(arena, x, &blk->shortcut_w, &blk->shortcut_b, ts_conv_same(1, 0), &s);
        if (rc)
            return rc;
    }
    int64_t n = ts_tensor_numel(out);
    for (int64_t i = 0; i < n; i++)
        out->data[i] += s.data[i];
    ts_arena_reset(arena, mark);
    return 0;
}

/* out = shortcut(x) + conv2(swish(norm2(conv1(swish(norm1(x)))))); replaces *x. */
static int resblock(ts_arena *arena, const ts_vae_resblock *blk, ts_tensor *x)
{
    ts_tensor a, h, out;
    int rc = norm_swish(arena, x, &blk->norm1_w, &blk->norm1_b, &a);
    rc = rc ? rc : ts_vae_conv(arena, &a, &blk->conv1_w, &blk->conv1_b, ts_conv_same(1, 1), &h);
    rc = rc ? rc : norm_swish(arena, &h, &blk->norm2_w, &blk->norm2_b, &a);
    rc = rc ? rc : ts_vae_conv(arena, &a, &blk->conv2_w, &blk->conv2_b, ts_conv_same(1, 1), &out);
    rc = rc ? rc : ts_vae_add_shortcut(arena, blk, x, &out);
    if (rc)
        return rc;
    *x = ts_arena_keep(arena, ts_arena_offset(arena, x->data), out);
    return 0;
}

/* NCHW [B, C, S] <-> token-major [B, S, C]. */
static void transpose_cs(const float *src, float *dst, int64_t batch, int64_t rows, int64_t cols)
{
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                dst[(b * cols + c) * rows + r] = src[(b * rows + r) * cols + c];
}

int ts_vae_attention_add(ts_arena *arena, const ts_vae_attention *at, ts_tensor *normed, ts_tensor *x)
{
    size_t mark = ts_arena_mark(arena);
    int64_t batch = x->shape[0], c = x->shape[1], s = x->shape[2] * x->shape[3];
    int64_t tok_shape[3] = {batch, s, c};
    ts_tensor tokens = ts_arena_tensor(arena, 3, tok_shape), q = ts_arena_tensor(arena, 3, tok_shape);
    ts_tensor k = ts_arena_tensor(arena, 3, tok_shape), v = ts_arena_tensor(arena, 3, tok_shape);
    if (!tokens.data || !q.data || !k.data || !v.data)
        return TS_ERR_NOMEM;
    transpose_cs(normed->data, tokens.data, batch, c, s);
    ts_linear(tokens.data, c, batch * s, &at->q_w, &at->q_b, q.data, c);
    ts_linear(tokens.data, c, batch * s, &at->k_w, &at->k_b, k.data, c);
    ts_linear(tokens.data, c, batch * s, &at->v_w, &at->v_b, v.data, c);
    ts_attn_params p = {.batch = batch, .heads = 1, .q_len = s, .kv_len = s, .head_dim = c,
                        .ldq = c, .ldk = c, .ldv = c, .ldo = c, .scale = 1.0f / sqrtf((float)c)};
    ts_attention(q.data, k.data, v.data, tokens.data, &p);
    ts_linear(tokens.data, c, batch * s, &at->proj_w, &at->proj_b, q.data, c);
    transpose_cs(q.data, normed->data, batch, s, c);
    int64_t n = ts_tensor_numel(x);
    for (int64_t i = 0; i < n; i++)
        x->data[i] += normed->data[i];
    ts_arena_reset(arena, mark);
    return 0;
}

/* Single-head self-attention over the h*w positions; adds its output to *x in place. */
static int attention(ts_arena *arena, const ts_vae_attention *at, ts_tensor *x)
{
    size_t mark = ts_arena_mark(arena);
    ts_tensor normed = ts_arena_tensor(arena, x->ndim, x->shape);
    if (!normed.data)
        return TS_ERR_NOMEM;
    ts_group_norm(x, TS_VAE_GROUPS, &at->norm_w, &at->norm_b, TS_VAE_EPS, &normed);
    int rc = ts_vae_attention_add(arena, at, &normed, x);
    ts_arena_reset(arena, mark);
    return rc;
}

static int mid(ts_arena *arena, const ts_vae_mid *m, ts_tensor *x)
{
    int rc = resblock(arena, &m->block_1, x);
    rc = rc ? rc : attention(arena, &m->attn, x);
    return rc ? rc : resblock(arena, &m->block_2, x);
}

int ts_vae_conv_replace(ts_arena *arena, ts_tensor *x, const ts_weight *w, const ts_weight *b, ts_conv_params p)
{
    ts_tensor y;
    int rc = ts_vae_conv(arena, x, w, b, p, &y);
    if (rc)
        return rc;
    *x = ts_arena_keep(arena, ts_arena_offset(arena, x->data), y);
    return 0;
}

int ts_vae_upsample2(ts_arena *arena, ts_tensor *x)
{
    int64_t h = x->shape[2], w = x->shape[3];
    int64_t shape[4] = {x->shape[0], x->shape[1], 2 * h, 2 * w};
    ts_tensor y = ts_arena_tensor(arena, 4, shape);
    if (!y.data)
        return TS_ERR_NOMEM;
    for (int64_t plane = 0; plane < shape[0] * shape[1]; plane++)
        for (int64_t i = 0; i < 2 * h; i++)
            for (int64_t j = 0; j < 2 * w; j++)
                y.data[(plane * 2 * h + i) * 2 * w + j] = x->data[(plane * h + i / 2) * w + j / 2];
    *x = ts_arena_keep(arena, ts_arena_offset(arena, x->data), y);
    return 0;
}

/* Copies t to the top of the arena so the pass can overwrite it layer by layer. */
static int push_copy(ts_arena *arena, const ts_tensor *t, ts_tensor *out)
{
    *out = ts_arena_tensor(arena, t->ndim, t->shape);
    if (!out->data)
        return TS_ERR_NOMEM;
    memcpy(out->data, t->data, (size_t)ts_tensor_numel(t) * sizeof(float));
    return 0;
}

int ts_vae_check_input(const ts_tensor *t, int64_t channels, int64_t multiple, const char *what)
{
    if (t->ndim != 4 || t->shape[1] != channels || t->shape[2] % multiple || t->shape[3] % multiple ||
        t->shape[2] <= 0 || t->shape[3] <= 0)
        return ts_fail(TS_ERR_ARG, "VAE %s: expected [B, %lld, H, W] with H and W multiples of %lld", what,
                       (long long)channels, (long long)multiple);
    return 0;
}

int ts_vae_encoder_check(const ts_vae *vae, const ts_tensor *image)
{
    if (!vae->has_encoder)
        return ts_fail(TS_ERR_MODEL, "this VAE file has no encoder (decode-only)");
    return ts_vae_check_input(image, vae->image_channels, 1 << (vae->levels - 1), "encode");
}

int ts_vae_encoder_forward(const ts_vae *vae, const ts_tensor *image, ts_arena *arena, ts_tensor *out)
{
    int rc = ts_vae_encoder_check(vae, image);
    if (rc)
        return rc;
    const ts_vae_encoder *e = &vae->enc;
    ts_tensor x;
    rc = push_copy(arena, image, &x);
    rc = rc ? rc : ts_vae_conv_replace(arena, &x, &e->conv_in_w, &e->conv_in_b, ts_conv_same(1, 1));
    for (int i = 0; i < vae->levels && !rc; i++) {
        for (int j = 0; j < vae->blocks_per_level && !rc; j++)
            rc = resblock(arena, &e->blocks[i][j], &x);
        if (!rc && i + 1 < vae->levels) /* pad right and bottom by one, 3x3 stride 2 */
            rc = ts_vae_conv_replace(arena, &x, &e->downsample_w[i], &e->downsample_b[i], (ts_conv_params){2, 0, 0, 1, 1});
    }
    rc = rc ? rc : mid(arena, &e->mid, &x);
    rc = rc ? rc : norm_swish_replace(arena, &x, &e->norm_out_w, &e->norm_out_b);
    rc = rc ? rc : ts_vae_conv_replace(arena, &x, &e->conv_out_w, &e->conv_out_b, ts_conv_same(1, 1));
    if (rc == 0)
        *out = x;
    return rc;
}

int ts_vae_quant(const ts_vae *vae, ts_arena *arena, ts_tensor *moments)
{
    if (!vae->has_quant_conv)
        return 0;
    return ts_vae_conv_replace(arena, moments, &vae->quant_w, &vae->quant_b, ts_conv_same(1, 0));
}

int ts_vae_encode(const ts_vae *vae, const ts_tensor *image, ts_arena *arena, ts_tensor *moments)
{
    int rc = ts_vae_encoder_forward(vae, image, arena, moments);
    return rc ? rc : ts_vae_quant(vae, arena, moments);
}

int ts_vae_decoder_input(const ts_vae *vae, const ts_tensor *latent, ts_arena *arena, ts_tensor *x)
{
    int rc = ts_vae_check_input(latent, vae->z_channels, 1, "decode");
    rc = rc ? rc : push_copy(arena, latent, x);
    if (!rc && vae->has_quant_conv)
        rc = ts_vae_conv_replace(arena, x, &vae->post_quant_w, &vae->post_quant_b, ts_conv_same(1, 0));
    return rc;
}

int ts_vae_decode(const ts_vae *vae, const ts_tensor *latent, ts_arena *arena, ts_tensor *image)
{
    const ts_vae_decoder *d = &vae->dec;
    ts_tensor x;
    /* Every layer reuses the space its predecessor freed: keep those pages (arena.h). */
    ts_arena_hold_pages(arena, 1);
    int rc = ts_vae_decoder_input(vae, latent, arena, &x);
    rc = rc ? rc : ts_vae_conv_replace(arena, &x, &d->conv_in_w, &d->conv_in_b, ts_conv_same(1, 1));
    rc = rc ? rc : mid(arena, &d->mid, &x);
    for (int i = vae->levels - 1; i >= 0 && !rc; i--) {
        for (int j = 0; j <= vae->blocks_per_level && !rc; j++)
            rc = resblock(arena, &d->blocks[i][j], &x);
        if (!rc && i > 0) {
            rc = ts_vae_upsample2(arena, &x);
            rc = rc ? rc : ts_vae_conv_replace(arena, &x, &d->upsample_w[i], &d->upsample_b[i], ts_conv_same(1, 1));
        }
    }
    rc = rc ? rc : norm_swish_replace(arena, &x, &d->norm_out_w, &d->norm_out_b);
    rc = rc ? rc : ts_vae_conv_replace(arena, &x, &d->conv_out_w, &d->conv_out_b, ts_conv_same(1, 1));
    ts_arena_hold_pages(arena, 0);
    if (rc == 0)
        *image = x;
    return rc;
}
