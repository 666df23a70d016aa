/*
 * The Stable Diffusion UNet (ldm openaimodel.UNetModel with SpatialTransformer),
 * for SD 1.x, SD 2.x and SDXL, including the inpainting (9-channel) and
 * InstructPix2Pix (8-channel) variants.
 *
 * The block layout (levels, res blocks per level, where the transformers are and
 * how deep, conv or linear projections, the SDXL label embedding) is read from the
 * tensor names and shapes under `model.diffusion_model.`.  Only the attention head
 * rule cannot be seen in the weights, so the caller gives it: SD 1.x fixes the
 * number of heads (8), SD 2.x and SDXL fix the head width (64).
 */
#ifndef TS_MODELS_UNET_H
#define TS_MODELS_UNET_H

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"

typedef struct {
    int num_heads;     /* > 0: every transformer has this many heads (SD 1.x: 8) */
    int head_channels; /* > 0: heads = channels / head_channels (SD 2.x, SDXL: 64) */
} ts_unet_config;

typedef struct ts_unet ts_unet;

int ts_unet_load(ts_weights *wf, const char *prefix, ts_unet_config cfg, ts_unet **out);
void ts_unet_free(ts_unet *unet);

int ts_unet_in_channels(const ts_unet *unet);
int ts_unet_context_dim(const ts_unet *unet);
/* Size of the SDXL vector conditioning y (adm_in_channels), 0 when the model has none. */
int ts_unet_adm_channels(const ts_unet *unet);
/* What latent height and width must be multiples of: 2^(number of downsamplings). */
int ts_unet_size_multiple(const ts_unet *unet);

/* Called with each named intermediate ("mid.t_emb", "mid.time_embed",
 * "mid.input_blocks.N", "mid.middle_block", "mid.output_blocks.N") when set. */
typedef void (*ts_unet_probe)(void *ctx, const char *name, const ts_tensor *t);

typedef struct {
    const ts_tensor *x;         /* [B, in_channels, h, w] */
    const float *timesteps;     /* [B] (fractional values allowed) */
    const ts_tensor *context;   /* [B, tokens, context_dim] */
    const ts_tensor *y;         /* [B, adm_channels] for SDXL, else NULL */
    ts_unet_probe probe;
    void *probe_ctx;
} ts_unet_inputs;

/* out: [B, out_channels, h, w], allocated from the arena (everything else the pass
 * allocated is released). h and w must be multiples of 2^(levels-1). */
int ts_unet_forward(const ts_unet *unet, const ts_unet_inputs *in, ts_arena *arena, ts_tensor *out);

/* The sinusoidal timestep embedding [cos(t f_i), sin(t f_i)], f_i = 10000^(-i/half),
 * evaluated in double: dst has `dim` floats per timestep. Used for SDXL's size
 * embeddings too. */
void ts_timestep_embedding(const float *t, int64_t count, int dim, float *dst);
/* The same with the argument time_factor * t, and, when f32_freqs, the frequencies
 * rounded as the reference computes them in float32 (Flux: factor 1000, f32; a
 * factor that large makes the rounding visible at the output). */
void ts_timestep_embedding_scaled(const float *t, int64_t count, int dim, double time_factor, int f32_freqs,
                                  float *dst);

/* SDXL's vector conditioning y = [pooled | E(orig_h) E(orig_w) E(crop_top) E(crop_left)
 * E(target_h) E(target_w)], E = 256-dim timestep embedding.  sizes: 6 values per batch
 * item in that order; y: batch rows of pooled_dim + 1536 floats. */
#define TS_SDXL_SIZE_EMBED 256
void ts_sdxl_vector(const float *pooled, int64_t batch, int pooled_dim, const int64_t *sizes, float *y);

#endif
