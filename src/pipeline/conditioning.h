/*
 * Text conditioning for the Stable Diffusion families: an A1111-syntax prompt in, the
 * UNet's cross-attention context (and SDXL's pooled vector) out.
 *
 * Each family conditions on a different hidden state of a different CLIP tower, and
 * users expect AUTOMATIC1111's results, so this layer reproduces its choices:
 *   SD1   CLIP-L, last layer, final LayerNorm           pad 49407   context 768
 *   SD2   OpenCLIP-H, penultimate layer, ln_final       pad 0       context 1024
 *   SDXL  CLIP-L and bigG, penultimate, no final norm   pad 49407 / 0, context 768 + 1280;
 *         pooled = bigG's projected pooled output of the first chunk
 *   SD3   as SDXL; pooled = CLIP-L's unprojected pooled output then bigG's projected one
 *         (768 + 1280); the pipeline adds T5 (pipeline/sd3.h)
 * A prompt becomes 77-token chunks (src/text/prompt.h); all chunks of a tower run as one
 * batch and their outputs are concatenated along tokens.  Emphasis is A1111's "Original"
 * method, applied per tower and per chunk: z *= weight of each token, then z is scaled
 * by mean(z before) / mean(z after) so the chunk keeps its mean.  The pooled output is
 * taken before emphasis, as in A1111.
 *
 * Prompt and negative prompt may need different numbers of chunks; the UNet wants one
 * context length for both, so the shorter one is padded with copies of the encoding of
 * an empty chunk (A1111's "pad prompt/negative prompt" behaviour).  That encoding
 * travels with each ts_conditioning (computed once per encoder and clip skip, then
 * shared), so padding needs no encoder.
 *
 * Note for callers: A1111 and SGM give SDXL an all-zero negative conditioning (context
 * and pooled) when the negative prompt is empty; that choice belongs to the pipeline.
 */
#ifndef TS_PIPELINE_CONDITIONING_H
#define TS_PIPELINE_CONDITIONING_H

#include "core/tensor.h"
#include "io/weights.h"
#include "models/family.h"
#include "text/clip_text.h"
#include "text/prompt.h"

typedef struct ts_text_encoders ts_text_encoders;

/* Text encoders of a Stable Diffusion family: from the main checkpoint (SD1: CLIP-L under
 * cond_stage_model.transformer.; SD2: OpenCLIP-H under cond_stage_model.model.; SDXL: CLIP-L under
 * conditioner.embedders.0.transformer. and bigG under conditioner.embedders.1.model.) or, when the
 * main file lacks them, from separate files (clip_l / clip_g paths, may be NULL). The handles must
 * stay open while the encoders are used. */
int ts_text_encoders_load(ts_family family, ts_weights *main, ts_weights *clip_l,
                          ts_weights *clip_g, ts_text_encoders **out);

typedef struct {
    /* Per tower: [0] CLIP-L (SD1, SDXL) or OpenCLIP-H (SD2), [1] bigG (SDXL).  Zero fields
     * keep the defaults (heads = width / 64, as in every published CLIP; activation from
     * the layout), which only tiny test models need to override. */
    ts_clip_load_opts tower[2];
    const ts_prompt_options *prompt; /* emphasis and comma backtrack (copied); NULL: A1111's defaults */
} ts_text_encoders_opts;

/* ts_text_encoders_load with options (NULL: defaults). */
int ts_text_encoders_load_opts(ts_family family, ts_weights *main, ts_weights *clip_l,
                               ts_weights *clip_g, const ts_text_encoders_opts *opts,
                               ts_text_encoders **out);
void ts_text_encoders_free(ts_text_encoders *enc);

ts_family ts_text_encoders_family(const ts_text_encoders *enc);
/* Width of the context rows (768 / 1024 / 2048) and of the pooled vector (SDXL 1280, SD3 2048, else 0). */
int ts_text_encoders_context_dim(const ts_text_encoders *enc);
int ts_text_encoders_pooled_dim(const ts_text_encoders *enc);
/* The clip skip a request resolves to: clip_skip when > 0, else the family default. */
int ts_text_encoders_clip_skip(const ts_text_encoders *enc, int clip_skip);

typedef struct {
    ts_tensor context; /* [1, 77 * chunks, D]: SD1 768, SD2 1024, SDXL 2048 (CLIP-L | bigG features) */
    ts_tensor pooled;  /* [1, 1280] for SDXL (bigG pooled, projected), [1, 2048] for SD3, else data NULL */
    ts_tensor empty;   /* [1, 77, D]: the encoding of an empty chunk, for ts_conditioning_match_length */
} ts_conditioning;

/* Encodes an A1111-syntax prompt: chunks of 75 tokens (+BOS/EOS) encoded separately and concatenated
 * along tokens; per-token weights multiplied into the encoder output, then the original mean restored
 * (A1111: mean before, z * weights, z * (mean_before / mean_after)); clip_skip 0 = the family default
 * (SD1 1, SD2 2, SDXL 2 as each reference does: see clip_text.h), otherwise the A1111 meaning. Tensors
 * are malloc'd; free with ts_conditioning_free.  Also fills `empty` (encoded once per encoder and
 * clip skip, then copied from a cache guarded by a lock: the encoder's only mutable state). */
int ts_encode_prompt(const ts_text_encoders *enc, const char *prompt, int clip_skip, ts_conditioning *out);

/* For inspection (tessera encode): the same context and pooled output, plus the chunks' ids and
 * weights of the first tower (tokens may be NULL; free with ts_prompt_tokens_free), but without
 * the empty-chunk encoding (out->empty stays NULL), which would double the work for one chunk. */
int ts_encode_prompt_tokens(const ts_text_encoders *enc, const char *prompt, int clip_skip, ts_conditioning *out,
                            ts_prompt_tokens *tokens);

/* Pads the one with fewer chunks by appending copies of its empty-chunk encoding until both
 * contexts have the same length (A1111 pad_cond).  Fails with TS_ERR_ARG when the widths
 * differ or the shorter one carries no empty-chunk encoding (not from ts_encode_prompt). */
int ts_conditioning_match_length(ts_conditioning *a, ts_conditioning *b);

void ts_conditioning_free(ts_conditioning *c);

#endif
