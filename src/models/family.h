/*
 * Model family detection from a checkpoint's key names and shapes.
 *
 * Checkpoints do not say what they are, and loading an SDXL UNet with the SD1 loader
 * fails late and confusingly (or worse, runs).  Every loader therefore starts with
 * ts_family_require(), which names what the file is when it is the wrong one.
 * Detection first finds the components (a UNet, an MMDiT, a Flux transformer, a VAE,
 * text encoders) by marker keys at the prefixes the published layouts use, then picks
 * the family from structural facts: SDXL has label_emb, SD2 an OpenCLIP-H text
 * encoder or 1024-wide cross-attention with linear proj_in, SD3.5 qk-norm (ln_q) or
 * MMDiT-X attn2 blocks, Flux dev a guidance embedding.  Shapes are used only where
 * keys cannot tell, so tiny test models of a family are detected like the real ones.
 */
#ifndef TS_MODELS_FAMILY_H
#define TS_MODELS_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "io/weights.h"

typedef enum {
    TS_FAMILY_UNKNOWN,
    TS_FAMILY_SD1,
    TS_FAMILY_SD2,
    TS_FAMILY_SDXL,
    TS_FAMILY_SD3,
    TS_FAMILY_SD35,
    TS_FAMILY_FLUX_SCHNELL,
    TS_FAMILY_FLUX_DEV,
    TS_FAMILY_VAE, /* a standalone autoencoder (SD "first_stage_model." or Flux/SD3 "ae") */
    TS_FAMILY_CLIP_L,
    TS_FAMILY_CLIP_G,
    TS_FAMILY_T5,
    TS_FAMILY_COUNT
} ts_family;

typedef enum {
    TS_COMP_UNET,
    TS_COMP_MMDIT,
    TS_COMP_FLUX,
    TS_COMP_VAE,
    TS_COMP_CLIP_L,
    TS_COMP_CLIP_G,
    TS_COMP_OPENCLIP_H,
    TS_COMP_T5,
    TS_COMP_COUNT
} ts_component;

typedef struct {
    const char *prefix; /* key prefix of the component, e.g. "model.diffusion_model."; NULL when absent */
    size_t tensors;
    uint64_t parameters;
} ts_component_info;

typedef struct {
    ts_family family;
    ts_component_info comp[TS_COMP_COUNT];
    size_t other_tensors; /* in no component: DDPM schedule buffers, EMA bookkeeping, ... */
} ts_model_info;

/* Fills `out`; never fails (an unrecognised file is TS_FAMILY_UNKNOWN). */
void ts_family_detect(const ts_weights *wf, ts_model_info *out);

/* "sd1", "sd2", "sdxl", "sd3", "sd3.5", "flux-schnell", "flux-dev", "vae", "clip-l", "clip-g", "t5", "unknown". */
const char *ts_family_name(ts_family f);
/* "unet", "mmdit", "flux", "vae", "clip-l", "clip-g", "openclip-h", "t5". */
const char *ts_component_name(ts_component c);

#define TS_FAMILY_BIT(f) (1u << (f))

/* Detects the family and fails with TS_ERR_MODEL ("<file>: this is a flux-dev checkpoint, expected
 * sd1 or sd2") unless it is one of `accepted`, a mask of TS_FAMILY_BIT()s.  out may be NULL. */
int ts_family_require(const ts_weights *wf, unsigned accepted, ts_model_info *out);

#endif
