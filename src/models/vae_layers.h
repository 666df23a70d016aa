/*
 * Layers of the AutoencoderKL shared by the whole-image passes (vae.c) and the tiled
 * passes (vae_tiled.c), internal to src/models.
 *
 * The tiled passes run the very same layer code on one tile at a time, so a tile's
 * interior is computed by the same kernels, in the same order, as the untiled image:
 * only the GroupNorm statistics are gathered differently (over all tiles).
 * All tensors come from the arena; a function that allocates temporaries releases
 * them before returning.
 */
#ifndef TS_MODELS_VAE_LAYERS_H
#define TS_MODELS_VAE_LAYERS_H

#include "core/arena.h"
#include "models/vae.h"
#include "ops/conv.h"

#define TS_VAE_GROUPS 32
#define TS_VAE_EPS 1e-6f

/* y = conv(x) + bias, y allocated from the arena with the output shape of p. */
int ts_vae_conv(ts_arena *arena, const ts_tensor *x, const ts_weight *w, const ts_weight *b, ts_conv_params p,
                ts_tensor *y);
/* Replaces *x (the newest arena allocation) with conv(x). */
int ts_vae_conv_replace(ts_arena *arena, ts_tensor *x, const ts_weight *w, const ts_weight *b, ts_conv_params p);
/* out += shortcut(x): x itself, or the block's 1x1 nin_shortcut of it. */
int ts_vae_add_shortcut(ts_arena *arena, const ts_vae_resblock *blk, const ts_tensor *x, ts_tensor *out);
/* x += proj(attention(q(normed), k(normed), v(normed))) over all positions of x; normed
 * is the block's GroupNorm of x and is overwritten. */
int ts_vae_attention_add(ts_arena *arena, const ts_vae_attention *at, ts_tensor *normed, ts_tensor *x);
/* Replaces *x (the newest arena allocation) with its nearest-neighbour x2 upsampling. */
int ts_vae_upsample2(ts_arena *arena, ts_tensor *x);
/* Checks [B, channels, H, W] with H and W positive multiples of `multiple`. */
int ts_vae_check_input(const ts_tensor *t, int64_t channels, int64_t multiple, const char *what);
/* Fails unless the VAE has an encoder and image is a valid encoder input. */
int ts_vae_encoder_check(const ts_vae *vae, const ts_tensor *image);
/* quant_conv over encoder output in place, when the layout has one. */
int ts_vae_quant(const ts_vae *vae, ts_arena *arena, ts_tensor *moments);
/* Checks the latent and pushes the decoder's input on the arena: a copy of it, through
 * post_quant_conv when the layout has one. */
int ts_vae_decoder_input(const ts_vae *vae, const ts_tensor *latent, ts_arena *arena, ts_tensor *x);

#endif
