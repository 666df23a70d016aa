/*
 * Family detection; see family.h.  A table lists where each component lives in the
 * published layouts (the original repos' prefixes, ComfyUI's, the bare ones of Hugging
 * Face files and of diffusion-model-only files such as ComfyUI-GGUF's) with one
 * marker key that only that component has.  Components with an empty
 * prefix also list their top-level roots, so that e.g. a T5's "encoder." keys and a
 * VAE's "encoder." keys are never both claimed and the per-component counts add up.
 */
#include "models/family.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    ts_component comp;
    const char *prefix;
    const char *marker; /* a key under prefix that identifies the component */
    const char *const *roots; /* NULL: every key under prefix belongs to the component */
} location;

static const char *const flux_roots[] = {"double_blocks.", "single_blocks.", "img_in.", "txt_in.", "time_in.",
                                         "vector_in.", "guidance_in.", "final_layer.", NULL};
static const char *const unet_roots[] = {"input_blocks.", "middle_block.", "output_blocks.", "time_embed.",
                                         "label_emb.", "out.", NULL};
static const char *const mmdit_roots[] = {"joint_blocks.", "x_embedder.", "pos_embed", "t_embedder.", "y_embedder.",
                                          "context_embedder.", "final_layer.", NULL};
static const char *const vae_roots[] = {"encoder.", "decoder.", "quant_conv.", "post_quant_conv.", NULL};
static const char *const t5_roots[] = {"encoder.", "shared.", NULL};
static const char *const hf_clip_roots[] = {"text_model.", "text_projection.", NULL};

#define CLIP_MARKER "text_model.embeddings.token_embedding.weight"
#define T5_MARKER "encoder.block.0.layer.0.SelfAttention.q.weight"

/* The first location that has its marker wins for a component. */
static const location locations[] = {
    {TS_COMP_UNET, "model.diffusion_model.", "input_blocks.0.0.weight", NULL},
    {TS_COMP_MMDIT, "model.diffusion_model.", "x_embedder.proj.weight", NULL},
    {TS_COMP_UNET, "", "input_blocks.0.0.weight", unet_roots},
    {TS_COMP_MMDIT, "", "x_embedder.proj.weight", mmdit_roots},
    {TS_COMP_FLUX, "", "double_blocks.0.img_attn.qkv.weight", flux_roots},
    {TS_COMP_FLUX, "model.diffusion_model.", "double_blocks.0.img_attn.qkv.weight", NULL},
    {TS_COMP_VAE, "first_stage_model.", "decoder.conv_in.weight", NULL},
    {TS_COMP_VAE, "first_stage_model.", "encoder.conv_in.weight", NULL},
    {TS_COMP_VAE, "vae.", "decoder.conv_in.weight", NULL},
    {TS_COMP_VAE, "", "decoder.conv_in.weight", vae_roots},
    {TS_COMP_VAE, "", "encoder.conv_in.weight", vae_roots},
    {TS_COMP_CLIP_L, "cond_stage_model.transformer.", CLIP_MARKER, NULL},
    {TS_COMP_CLIP_L, "conditioner.embedders.0.transformer.", CLIP_MARKER, NULL},
    {TS_COMP_CLIP_L, "text_encoders.clip_l.transformer.", CLIP_MARKER, NULL},
    {TS_COMP_CLIP_G, "conditioner.embedders.1.model.", "token_embedding.weight", NULL},
    {TS_COMP_CLIP_G, "text_encoders.clip_g.transformer.", CLIP_MARKER, NULL},
    {TS_COMP_CLIP_G, "cond_stage_model.1.transformer.", CLIP_MARKER, NULL}, /* stable-diffusion.cpp's SDXL files */
    {TS_COMP_OPENCLIP_H, "cond_stage_model.model.", "token_embedding.weight", NULL},
    {TS_COMP_T5, "", T5_MARKER, t5_roots},
    {TS_COMP_T5, "text_encoders.t5xxl.transformer.", T5_MARKER, NULL},
};

static const char *const family_names[TS_FAMILY_COUNT] = {
    [TS_FAMILY_UNKNOWN] = "unknown",
    [TS_FAMILY_SD1] = "sd1",
    [TS_FAMILY_SD2] = "sd2",
    [TS_FAMILY_SDXL] = "sdxl",
    [TS_FAMILY_SD3] = "sd3",
    [TS_FAMILY_SD35] = "sd3.5",
    [TS_FAMILY_FLUX_SCHNELL] = "flux-schnell",
    [TS_FAMILY_FLUX_DEV] = "flux-dev",
    [TS_FAMILY_VAE] = "vae",
    [TS_FAMILY_CLIP_L] = "clip-l",
    [TS_FAMILY_CLIP_G] = "clip-g",
    [TS_FAMILY_T5] = "t5",
};

static const char *const component_names[TS_COMP_COUNT] = {
    [TS_COMP_UNET] = "unet",     [TS_COMP_MMDIT] = "mmdit",   [TS_COMP_FLUX] = "flux",
    [TS_COMP_VAE] = "vae",       [TS_COMP_CLIP_L] = "clip-l", [TS_COMP_CLIP_G] = "clip-g",
    [TS_COMP_OPENCLIP_H] = "openclip-h", [TS_COMP_T5] = "t5",
};

const char *ts_family_name(ts_family f) { return (unsigned)f < TS_FAMILY_COUNT ? family_names[f] : "unknown"; }

const char *ts_component_name(ts_component c) { return (unsigned)c < TS_COMP_COUNT ? component_names[c] : "?"; }

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Length of the component prefix `name` falls under, or -1. */
static int claim_length(const char *name, const char *prefix, const char *const *roots)
{
    if (!starts_with(name, prefix))
        return -1;
    if (!roots)
        return (int)strlen(prefix);
    for (; *roots; roots++)
        if (starts_with(name + strlen(prefix), *roots))
            return (int)strlen(prefix);
    return -1;
}

/* A bare Hugging Face text model ("text_model.*") is CLIP-L or bigG: by width, then by projection. */
static ts_component hf_clip_kind(const ts_weights *wf)
{
    const ts_weight_info *emb = ts_weights_find(wf, "", CLIP_MARKER);
    if (emb->ndim == 2 && emb->shape[1] == 1280)
        return TS_COMP_CLIP_G;
    if (emb->ndim == 2 && emb->shape[1] == 768)
        return TS_COMP_CLIP_L;
    return ts_weights_find(wf, "", "text_projection.weight") ? TS_COMP_CLIP_G : TS_COMP_CLIP_L;
}

static int has(const ts_weights *wf, const ts_model_info *info, ts_component c, const char *key)
{
    return info->comp[c].prefix && ts_weights_find(wf, info->comp[c].prefix, key) != NULL;
}

/* SD1 vs SD2 from the UNet alone: cross-attention width (768 / 1024), else proj_in's rank
 * (SD1 uses 1x1 convs, SD2 Linear layers). */
static ts_family sd1_or_sd2_unet(const ts_weights *wf, const char *prefix)
{
    int proj_rank = 0;
    for (size_t i = 0; i < ts_weights_count(wf); i++) {
        const ts_weight_info *t = ts_weights_info(wf, i);
        if (!starts_with(t->name, prefix))
            continue;
        if (ends_with(t->name, "attn2.to_k.weight") && t->ndim == 2 && (t->shape[1] == 768 || t->shape[1] == 1024))
            return t->shape[1] == 1024 ? TS_FAMILY_SD2 : TS_FAMILY_SD1;
        if (ends_with(t->name, "proj_in.weight") && !proj_rank)
            proj_rank = t->ndim;
    }
    return proj_rank == 2 ? TS_FAMILY_SD2 : TS_FAMILY_SD1;
}

static ts_family pick_family(const ts_weights *wf, const ts_model_info *info)
{
    const ts_component_info *c = info->comp;
    if (c[TS_COMP_UNET].prefix) {
        if (has(wf, info, TS_COMP_UNET, "label_emb.0.0.weight"))
            return TS_FAMILY_SDXL;
        if (c[TS_COMP_OPENCLIP_H].prefix)
            return TS_FAMILY_SD2;
        if (c[TS_COMP_CLIP_L].prefix && strcmp(c[TS_COMP_CLIP_L].prefix, "cond_stage_model.transformer.") == 0)
            return TS_FAMILY_SD1;
        return sd1_or_sd2_unet(wf, c[TS_COMP_UNET].prefix);
    }
    if (c[TS_COMP_MMDIT].prefix)
        return has(wf, info, TS_COMP_MMDIT, "joint_blocks.0.x_block.attn.ln_q.weight") ||
                       has(wf, info, TS_COMP_MMDIT, "joint_blocks.0.context_block.attn.ln_q.weight") ||
                       has(wf, info, TS_COMP_MMDIT, "joint_blocks.0.x_block.attn2.qkv.weight")
                   ? TS_FAMILY_SD35
                   : TS_FAMILY_SD3;
    if (c[TS_COMP_FLUX].prefix)
        return has(wf, info, TS_COMP_FLUX, "guidance_in.in_layer.weight") ? TS_FAMILY_FLUX_DEV
                                                                          : TS_FAMILY_FLUX_SCHNELL;
    /* Without a diffusion model, a file is a standalone part only if it holds exactly one. */
    int present = 0;
    ts_component only = TS_COMP_COUNT;
    for (int k = 0; k < TS_COMP_COUNT; k++)
        if (c[k].prefix) {
            present++;
            only = (ts_component)k;
        }
    if (present != 1)
        return TS_FAMILY_UNKNOWN;
    switch (only) {
    case TS_COMP_VAE: return TS_FAMILY_VAE;
    case TS_COMP_CLIP_L: return TS_FAMILY_CLIP_L;
    case TS_COMP_CLIP_G: return TS_FAMILY_CLIP_G;
    case TS_COMP_T5: return TS_FAMILY_T5;
    default: return TS_FAMILY_UNKNOWN;
    }
}

/* stable-diffusion.cpp's SD2 files keep OpenCLIP-H in HF layout where SD1 has CLIP-L
 * ("cond_stage_model.transformer."): 1024 wide instead of 768. */
static void sd2_tower_in_hf_layout(const ts_weights *wf, ts_model_info *out)
{
    const char *l = out->comp[TS_COMP_CLIP_L].prefix;
    if (!l || out->comp[TS_COMP_OPENCLIP_H].prefix || strcmp(l, "cond_stage_model.transformer.") != 0)
        return;
    const ts_weight_info *emb = ts_weights_find(wf, l, CLIP_MARKER);
    if (emb->ndim == 2 && emb->shape[1] == 1024) {
        out->comp[TS_COMP_OPENCLIP_H].prefix = l;
        out->comp[TS_COMP_CLIP_L].prefix = NULL;
    }
}

void ts_family_detect(const ts_weights *wf, ts_model_info *out)
{
    memset(out, 0, sizeof *out);
    const char *const *roots[TS_COMP_COUNT] = {0};
    for (size_t i = 0; i < sizeof locations / sizeof locations[0]; i++) {
        const location *l = &locations[i];
        if (!out->comp[l->comp].prefix && ts_weights_find(wf, l->prefix, l->marker)) {
            out->comp[l->comp].prefix = l->prefix;
            roots[l->comp] = l->roots;
        }
    }
    sd2_tower_in_hf_layout(wf, out);
    if (ts_weights_find(wf, "", CLIP_MARKER)) {
        ts_component kind = hf_clip_kind(wf);
        if (!out->comp[kind].prefix) {
            out->comp[kind].prefix = "";
            roots[kind] = hf_clip_roots;
        }
    }
    for (size_t i = 0; i < ts_weights_count(wf); i++) {
        const ts_weight_info *t = ts_weights_info(wf, i);
        int best = -1, best_len = -1;
        for (int k = 0; k < TS_COMP_COUNT; k++) {
            int len = out->comp[k].prefix ? claim_length(t->name, out->comp[k].prefix, roots[k]) : -1;
            if (len > best_len)
                best = k, best_len = len;
        }
        if (best < 0) {
            out->other_tensors++;
            continue;
        }
        out->comp[best].tensors++;
        out->comp[best].parameters += ts_weight_info_numel(t);
    }
    out->family = pick_family(wf, out);
}

int ts_family_require(const ts_weights *wf, unsigned accepted, ts_model_info *out)
{
    ts_model_info local;
    if (!out)
        out = &local;
    ts_family_detect(wf, out);
    if (accepted & TS_FAMILY_BIT(out->family))
        return 0;
    char want[256] = "";
    size_t used = 0;
    for (int f = 0; f < TS_FAMILY_COUNT && used < sizeof want; f++)
        if (accepted & TS_FAMILY_BIT(f))
            used += (size_t)snprintf(want + used, sizeof want - used, "%s%s", used ? " or " : "", family_names[f]);
    if (out->family == TS_FAMILY_UNKNOWN)
        return ts_fail(TS_ERR_MODEL, "%s: not a checkpoint of a known model family (expected %s)", ts_weights_path(wf),
                       want);
    return ts_fail(TS_ERR_MODEL, "%s: this is a %s checkpoint, expected %s", ts_weights_path(wf),
                   family_names[out->family], want);
}
