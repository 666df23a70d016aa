/*
 * The Flux.1 transformer (black-forest-labs flux, schnell and dev): double-stream
 * blocks where text and image tokens keep their own weights but attend jointly,
 * then single-stream blocks over the concatenated [txt; img] sequence, with 3-axis
 * RoPE and adaLN modulation from vec = time_in(t) [+ guidance_in(g)] + vector_in(y).
 *
 * Everything but the rotary split is read from the tensor names and shapes of
 * flux1-*.safetensors (no key prefix): widths, depths, the head width (the QK-norm
 * scale is one head wide) and whether the model embeds guidance (dev).  The RoPE
 * axes and theta are not visible in the weights, so the caller gives them.
 */
#ifndef TS_MODELS_FLUX_H
#define TS_MODELS_FLUX_H

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"

#define TS_FLUX_MAX_AXES 4

typedef struct {
    int n_axes;                        /* position id components per token (3 for Flux.1) */
    int axes_dim[TS_FLUX_MAX_AXES];    /* rotary dims per axis; they sum to the head width */
    double theta;                      /* RoPE base (10000) */
} ts_flux_config;

/* Flux.1 schnell and dev: axes [16, 56, 56], theta 10000. */
ts_flux_config ts_flux_config_default(void);
/* The default with the axes from "A,B,C" (for test models with other head widths). */
int ts_flux_config_parse(const char *axes, ts_flux_config *cfg);

typedef struct ts_flux ts_flux;

int ts_flux_load(ts_weights *wf, const char *prefix, ts_flux_config cfg, ts_flux **out);
void ts_flux_free(ts_flux *flux);

int ts_flux_in_channels(const ts_flux *flux);  /* packed latent token width (64) */
int ts_flux_context_dim(const ts_flux *flux);  /* T5 feature width */
int ts_flux_vec_dim(const ts_flux *flux);      /* pooled CLIP width */
int ts_flux_has_guidance(const ts_flux *flux); /* dev: guidance_in present */
int ts_flux_double_blocks(const ts_flux *flux); /* 19 in Flux.1 */
int ts_flux_single_blocks(const ts_flux *flux); /* 38 in Flux.1 */

/* Called with each named intermediate ("mid.img_in", "mid.txt_in", "mid.time_in",
 * "mid.guidance_in", "mid.vector_in", "mid.vec", "mid.pe_embedder" as [B, L, head/2, 4]
 * rows (cos, -sin, sin, cos), "mid.double_blocks.N.img" / ".txt", "mid.single_blocks.N")
 * when set. */
typedef void (*ts_flux_probe)(void *ctx, const char *name, const ts_tensor *t);

typedef struct {
    const ts_tensor *img;     /* [B, Li, in_channels] packed latent tokens */
    const ts_tensor *img_ids; /* [B, Li, n_axes] */
    const ts_tensor *txt;     /* [B, Lt, context_dim] */
    const ts_tensor *txt_ids; /* [B, Lt, n_axes] */
    const ts_tensor *y;       /* [B, vec_dim] */
    const float *timesteps;   /* [B], t in [0, 1]; scaled by 1000 inside */
    const float *guidance;    /* [B] for dev (required), ignored otherwise */
    ts_flux_probe probe;
    void *probe_ctx;
} ts_flux_inputs;

/* out: [B, Li, out_channels], allocated from the arena (everything else the pass
 * allocated is released). */
int ts_flux_forward(const ts_flux *flux, const ts_flux_inputs *in, ts_arena *arena, ts_tensor *out);

/* Latent packing of flux.sampling: "b c (h 2) (w 2) -> b (h w) (c 2 2)" and back.
 * latent: [B, C, H, W] with H, W even; tokens: [B, (H/2)(W/2), 4C]. */
void ts_flux_pack(const float *latent, int64_t batch, int64_t channels, int64_t height, int64_t width, float *tokens);
void ts_flux_unpack(const float *tokens, int64_t batch, int64_t channels, int64_t height, int64_t width,
                    float *latent);
/* Image position ids of sampling.prepare: token r*(W/2)+c gets [0, r, c]; ids: [(H/2)(W/2), 3]. */
void ts_flux_img_ids(int64_t height, int64_t width, float *ids);

#endif
