/*
 * The CLIP text transformer (Radford et al. 2021) that conditions SD1.x (OpenAI
 * CLIP ViT-L/14), SD2.x (OpenCLIP ViT-H/14), SDXL (both: CLIP-L and OpenCLIP bigG)
 * and SD3 (CLIP-L and CLIP-G next to T5).
 *
 * Two storage layouts hold the same network, and users have both:
 *   - Hugging Face `text_model.*` (CLIPTextModel): separate q/k/v/out projections,
 *     as inside SD1.x files (`cond_stage_model.transformer.`), SDXL's first encoder
 *     (`conditioner.embedders.0.transformer.`), SD3 files
 *     (`text_encoders.clip_{l,g}.transformer.`) and standalone clip_l / clip_g files,
 *     the latter with `text_projection.weight` [E, W] (Linear convention);
 *   - OpenCLIP (`token_embedding`, `positional_embedding`, `transformer.resblocks.N`
 *     with a fused `attn.in_proj_weight` [3W, W], `ln_final`, `text_projection`
 *     [W, E] used as x @ P), as in SD2.x (`cond_stage_model.model.`) and SDXL's
 *     second encoder (`conditioner.embedders.1.model.`).
 * Both load into one ts_clip_text (the fused projection is split into three row
 * views), so a single forward pass serves every file.  Width, layer count, MLP
 * size, context length and projection size are read from the shapes; the head
 * count is width / 64 for every published CLIP unless the caller says otherwise.
 *
 * Which hidden state conditions the UNet differs per family (ts_clip_text_opts):
 *   SD1.x              clip_skip 1, final_norm 1 (A1111 "CLIP skip 2": clip_skip 2, final_norm 1)
 *   SD2.x              clip_skip 2, final_norm 1 (FrozenOpenCLIPEmbedder, layer "penultimate")
 *   SDXL, both towers  clip_skip 2, final_norm 0; pooled output from bigG
 * The pooled output is always final_norm(last layer) at the EOS position (the
 * argmax of the ids, 49407 being the largest id), times the projection if any.
 */
#ifndef TS_TEXT_CLIP_TEXT_H
#define TS_TEXT_CLIP_TEXT_H

#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"

#define TS_CLIP_MAX_LAYERS 48

typedef enum {
    TS_CLIP_ACT_AUTO,       /* quick_gelu for an HF-layout tower narrower than 1024 (OpenAI CLIP-L), else gelu */
    TS_CLIP_ACT_QUICK_GELU, /* x * sigmoid(1.702 x): OpenAI CLIP */
    TS_CLIP_ACT_GELU,       /* exact erf GELU: OpenCLIP ViT-H and bigG */
} ts_clip_act;

typedef enum {
    TS_CLIP_LAYOUT_HF,
    TS_CLIP_LAYOUT_OPENCLIP,
} ts_clip_layout;

typedef struct {
    ts_weight ln1_w, ln1_b, ln2_w, ln2_b;
    ts_weight q_w, q_b, k_w, k_b, v_w, v_b; /* views of in_proj rows in the OpenCLIP layout */
    ts_weight out_w, out_b;
    ts_weight fc1_w, fc1_b, fc2_w, fc2_b;
} ts_clip_layer;

typedef struct {
    ts_clip_layout layout;
    int layers, width, heads, mlp, context, vocab;
    int proj_dim;       /* E: width of the pooled output (width when there is no projection) */
    ts_clip_act act;    /* resolved: never TS_CLIP_ACT_AUTO after loading */
    ts_weight tok_emb;  /* [vocab, W] */
    ts_weight pos_emb;  /* [context, W] */
    ts_clip_layer layer[TS_CLIP_MAX_LAYERS];
    ts_weight final_w, final_b;
    ts_weight proj;     /* data NULL when the file has none (SD1.x, clip_l) */
    int proj_is_linear; /* 1: [E, W] nn.Linear (HF); 0: [W, E] used as x @ P (OpenCLIP) */
} ts_clip_text;

typedef struct {
    int heads;       /* 0: width / 64 */
    ts_clip_act act; /* TS_CLIP_ACT_AUTO unless the caller knows better */
} ts_clip_load_opts;

/* The n-th (0-based) CLIP text tower in a file, in the order the family uses them
 * (SDXL embedders.0 before embedders.1, SD3 clip_l before clip_g), as the prefix to
 * pass to ts_clip_text_load; NULL when there are not that many.  A standalone file
 * (keys start with `text_model.`) yields "". */
const char *ts_clip_text_prefix(ts_weights *wf, int n);

/* Loads the tower under `prefix` (either layout) and checks every shape; opts may be NULL. */
int ts_clip_text_load(ts_weights *wf, const char *prefix, const ts_clip_load_opts *opts, ts_clip_text *m);

typedef struct {
    /* A1111's "CLIP skip": 1 = output of the last layer, 2 = of the penultimate, ...
     * (at most `layers`). */
    int clip_skip;
    int final_norm; /* apply the final LayerNorm to that output */
} ts_clip_text_opts;

/* token_embedding[ids] + position_embedding[0..T-1] into x [B*T, W]. ids [B, T] with
 * T <= context; an id outside the vocabulary is an error. */
int ts_clip_text_embed(const ts_clip_text *m, const int32_t *ids, int64_t batch, int64_t tokens, float *x);

/* Runs the tower on ids [B, T].  *hidden receives [B, T, W] chosen by opts; when
 * pooled is not NULL it receives [B, E] (which runs every layer whatever clip_skip).
 * Outputs are allocated from the arena; its temporaries are released before returning. */
int ts_clip_text_forward(const ts_clip_text *m, const int32_t *ids, int64_t batch, int64_t tokens,
                         const ts_clip_text_opts *opts, ts_arena *arena, ts_tensor *hidden, ts_tensor *pooled);

#endif
