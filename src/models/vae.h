/*
 * AutoencoderKL (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
 * Diffusion Models"): the VAE every Stable Diffusion, SD3 and Flux model decodes
 * its latents with.
 *
 * One loader serves every layout users have: SD1/SD2/SDXL single files
 * (`first_stage_model.` with quant convs), SD3 single files (`first_stage_model.`
 * without them), Flux `ae.safetensors` (no prefix, 16 latent channels) and
 * standalone VAE files (`vae.` or no prefix).  The architecture (channels, levels,
 * blocks per level, latent channels) is read from the tensor shapes, so tiny test
 * models and real checkpoints take the same path.
 *
 * Latents here are in VAE space: the diffusion model's latent is
 * (vae_latent - shift) * scale, with the family's scale and shift (ts_vae_latent_format).
 */
#ifndef TS_MODELS_VAE_H
#define TS_MODELS_VAE_H

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"

#define TS_VAE_MAX_LEVELS 6
#define TS_VAE_MAX_BLOCKS 4

typedef struct {
    ts_weight norm1_w, norm1_b, conv1_w, conv1_b;
    ts_weight norm2_w, norm2_b, conv2_w, conv2_b;
    ts_weight shortcut_w, shortcut_b; /* 1x1 conv when in != out channels; data NULL otherwise */
} ts_vae_resblock;

typedef struct {
    ts_weight norm_w, norm_b, q_w, q_b, k_w, k_b, v_w, v_b, proj_w, proj_b;
} ts_vae_attention;

typedef struct {
    ts_vae_resblock block_1, block_2;
    ts_vae_attention attn;
} ts_vae_mid;

typedef struct {
    ts_weight conv_in_w, conv_in_b;
    ts_vae_resblock blocks[TS_VAE_MAX_LEVELS][TS_VAE_MAX_BLOCKS];
    ts_weight downsample_w[TS_VAE_MAX_LEVELS], downsample_b[TS_VAE_MAX_LEVELS];
    ts_vae_mid mid;
    ts_weight norm_out_w, norm_out_b, conv_out_w, conv_out_b;
} ts_vae_encoder;

typedef struct {
    ts_weight conv_in_w, conv_in_b;
    ts_vae_mid mid;
    ts_vae_resblock blocks[TS_VAE_MAX_LEVELS][TS_VAE_MAX_BLOCKS + 1];
    ts_weight upsample_w[TS_VAE_MAX_LEVELS], upsample_b[TS_VAE_MAX_LEVELS];
    ts_weight norm_out_w, norm_out_b, conv_out_w, conv_out_b;
} ts_vae_decoder;

typedef struct {
    int levels;          /* len(ch_mult) */
    int blocks_per_level; /* num_res_blocks */
    int z_channels;      /* latent channels: 4 (SD1/SD2/SDXL) or 16 (SD3, Flux) */
    int image_channels;  /* 3 */
    int has_encoder, has_quant_conv;
    ts_vae_encoder enc;
    ts_vae_decoder dec;
    ts_weight quant_w, quant_b, post_quant_w, post_quant_b;
} ts_vae;

/* Finds the VAE in a file (prefix first_stage_model., vae. or none) and reads its
 * architecture from the shapes.  A file without the encoder loads decode-only. */
int ts_vae_load(ts_weights *wf, ts_vae *vae);

/* The latent a diffusion model sees is (vae_latent - shift) * scale. */
typedef struct {
    float scale, shift;
} ts_latent_format;

/* The encoder network alone: image -> [B, 2z, H/8, W/8], before quant_conv. */
int ts_vae_encoder_forward(const ts_vae *vae, const ts_tensor *image, ts_arena *arena, ts_tensor *out);

/* image [B, 3, H, W] in [-1, 1], H and W multiples of 8 -> moments [B, 2z, H/8, W/8]
 * (after quant_conv when present): mean = channels [0, z), logvar = [z, 2z).
 * Activations come from the arena and are released before returning, except the result. */
int ts_vae_encode(const ts_vae *vae, const ts_tensor *image, ts_arena *arena, ts_tensor *moments);

/* latent [B, z, h, w] in VAE space -> image [B, 3, 8h, 8w], raw (not clamped). */
int ts_vae_decode(const ts_vae *vae, const ts_tensor *latent, ts_arena *arena, ts_tensor *image);

#endif
