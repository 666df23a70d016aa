/*
 * The SD3 / SD3.5 multimodal diffusion transformer (Stability's mmditx.MMDiTX):
 * image tokens and text tokens keep their own weights but attend jointly.
 *
 * Everything is read from the tensor names and shapes under
 * `model.diffusion_model.`, the way the reference derives its config: hidden size
 * from the patch embedding (heads of 64), the block count, the pos_embed grid, RMS
 * qk-norm when ln_q / ln_k exist, the MMDiT-X second attention (SD3.5 medium) where
 * x_block.attn2 exists, and the last block's pre-only context stream.
 */
#ifndef TS_MODELS_MMDIT_H
#define TS_MODELS_MMDIT_H

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"

/* SD3's latent format: the MMDiT sees (vae_latent - shift) * scale. */
#define TS_SD3_LATENT_SCALE 1.5305f
#define TS_SD3_LATENT_SHIFT 0.0609f

typedef struct ts_mmdit ts_mmdit;

int ts_mmdit_load(ts_weights *wf, const char *prefix, ts_mmdit **out);
void ts_mmdit_free(ts_mmdit *m);

int ts_mmdit_in_channels(const ts_mmdit *m);
int ts_mmdit_context_dim(const ts_mmdit *m);
int ts_mmdit_adm_channels(const ts_mmdit *m);
int ts_mmdit_patch_size(const ts_mmdit *m);
/* Side of the stored pos_embed grid, in patches: the largest latent is patch * this. */
int ts_mmdit_pos_embed_size(const ts_mmdit *m);

/* Called with each named intermediate ("mid.x_embedder", "mid.pos_embed_cropped",
 * "mid.t_embedder", "mid.y_embedder", "mid.c", "mid.context_embedder",
 * "mid.joint_blocks.N.context", "mid.joint_blocks.N.x", "mid.final_layer") when set. */
typedef void (*ts_mmdit_probe)(void *ctx, const char *name, const ts_tensor *t);

typedef struct {
    const ts_tensor *x;       /* [B, in_channels, H, W], H and W multiples of the patch */
    const float *timesteps;   /* [B], 0..1000 (sampling passes sigma * 1000) */
    const ts_tensor *context; /* [B, tokens, context_dim] */
    const ts_tensor *y;       /* [B, adm_channels] pooled vector */
    /* [B, 2]: top and left patch of each item's window in the pos_embed grid, so a
     * tile of a larger canvas is told where it lies; NULL: the centred window. */
    const int *pos_origin;
    ts_mmdit_probe probe;
    void *probe_ctx;
} ts_mmdit_inputs;

/* out: [B, out_channels, H, W] (the flow / velocity prediction), allocated from the
 * arena; everything else the pass allocated is released. */
int ts_mmdit_forward(const ts_mmdit *m, const ts_mmdit_inputs *in, ts_arena *arena, ts_tensor *out);

#endif
