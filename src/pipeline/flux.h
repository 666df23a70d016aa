/*
 * Flux.1 generation (schnell and dev): T5 + CLIP-L conditioning, the flow-matching
 * Euler loop of black-forest-labs flux (sampling.denoise) over packed 2x2 latent
 * tokens, and the 16-channel AutoEncoder decode.
 *
 * A bundle is the four files users keep: the transformer (flux1-*.safetensors), the
 * AutoEncoder (ae.safetensors) and the two text encoders (clip_l, t5xxl).  Like the SD
 * pipeline, the text encoders are not held by the bundle: ts_flux_encode_ids maps
 * them, encodes, and unmaps them again, so T5-XXL's pages are gone before the
 * transformer runs.
 *
 * Conventions are the reference's (checked by the pipeline_flux golden case): the
 * conditioning is T5's last hidden state over every position (padding included, no
 * mask) plus CLIP-L's pooled output; txt_ids are zero; the schedule is
 * linspace(1, 0, steps + 1), optionally time-shifted with mu depending on the token
 * count (dev); each step is x += (t_next - t) * v, which the sampler sees as Euler on
 * D(x, sigma) = x - sigma * v.
 *
 * Prompts: the reference tokenizes the text as it is, with no prompt weighting for
 * either encoder, so A1111 emphasis syntax is stripped to its words (ts_prompt_strip)
 * rather than sent to T5 as literal brackets.
 *
 * img2img and inpainting follow ComfyUI (the reference CLI offers neither for the
 * base models): at strength d sampling runs the last steps+1 sigmas of the
 * int(steps / d)-step schedule (dev's time shift computed for that longer schedule),
 * so `steps` is always the number of model calls (diffusers' FluxImg2ImgPipeline
 * instead runs the last int(steps * d) of `steps`); it starts from
 * sigma * noise + (1 - sigma) * latent, the latent being the
 * AutoEncoder's posterior mean in model space.  Inpainting blends, before every model
 * call, the sample outside the mask (bilinearly downsampled to the latent) with the
 * init latent at the current sigma, and the denoised estimate with the init latent
 * (ts_inpaint_denoiser); the packed layout is a permutation, so the blend runs on
 * packed tokens with the mask packed alike.  Keeping the unmasked pixels exactly is
 * the caller's composite after decoding.
 */
#ifndef TS_PIPELINE_FLUX_H
#define TS_PIPELINE_FLUX_H

#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"
#include "models/flux.h"
#include "models/vae.h"
#include "models/vae_tiled.h"
#include "pipeline/tiles.h"
#include "text/t5_tokenizer.h"

#define TS_FLUX_CLIP_TOKENS 77

typedef struct {
    const char *model;  /* the transformer */
    const char *ae;     /* the 16-channel AutoEncoder */
    const char *clip_l; /* CLIP-L text encoder (HF layout) */
    const char *t5;     /* T5 encoder (HF T5EncoderModel layout) */
    ts_flux_config flux; /* n_axes 0: ts_flux_config_default() */
    int clip_heads;      /* 0: 64-wide heads (CLIP-L: 12); tiny test models set it */
} ts_flux_files;

typedef struct {
    ts_flux_files files;
    ts_weights *main, *ae_file;
    ts_flux *flux;
    ts_vae vae;
    ts_latent_format latent; /* scale 0.3611, shift 0.1159 */
} ts_flux_model;

int ts_flux_model_load(const ts_flux_files *files, ts_flux_model **out);
void ts_flux_model_free(ts_flux_model *m);

/* txt [1, Lt, context_dim] (T5) and vec [1, vec_dim] (CLIP-L pooled). */
typedef struct {
    ts_tensor txt, vec;
} ts_flux_cond;

/* Encodes token ids (T5 ids padded to the length the model expects: 256 schnell,
 * 512 dev; CLIP ids padded to 77) into cond, allocated from the arena. */
int ts_flux_encode_ids(const ts_flux_model *m, const int32_t *t5_ids, int64_t t5_tokens, const int32_t *clip_ids,
                       int64_t clip_tokens, ts_arena *arena, ts_flux_cond *cond);

/* The T5 row length the model was trained with: 512 for dev (it embeds guidance),
 * 256 for schnell. */
int ts_flux_t5_length(const ts_flux_model *m);

/* A prompt's token rows as the reference's HFEmbedders make them, after stripping the
 * emphasis syntax: t5_row receives ts_flux_t5_length(m) ids (text, EOS, 0-padding),
 * clip_row TS_FLUX_CLIP_TOKENS ids (BOS, text, EOS, EOS-padding).  t5 NULL: the
 * built-in vocabulary.  *truncated (may be NULL): whether either row cut the text. */
int ts_flux_tokenize(const ts_flux_model *m, const ts_t5_tokenizer *t5, const char *prompt, int32_t *t5_row,
                     int32_t *clip_row, int *truncated);

/* ts_flux_tokenize, then ts_flux_encode_ids. */
int ts_flux_encode_prompt(const ts_flux_model *m, const ts_t5_tokenizer *t5, const char *prompt, ts_arena *arena,
                          ts_flux_cond *cond, int *truncated);

/* Reports intermediate values: "sigmas" [steps+1], "img_ids", "txt_ids", "img"
 * (step = i: packed tokens at the start of step i; step = steps: the result),
 * "latent" [1, 16, h, w] (model space), "init_latent" (model space, from the image). */
typedef void (*ts_flux_probe_fn)(void *ctx, const char *name, int step, const ts_tensor *t);
/* Called after each step with the steps done; a non-zero return cancels. */
typedef int (*ts_flux_progress_fn)(void *ctx, int done, int steps);

typedef struct {
    int width, height; /* pixels, multiples of 16 */
    int steps;
    int shift;         /* resolution-dependent time shift (dev: 1; schnell: 0) */
    double guidance;   /* dev's embedded guidance; ignored by schnell */
    const ts_flux_cond *cond;
    const float *image; /* [1, 3, H, W] in [-1, 1]: img2img / inpaint start; NULL: txt2img */
    const float *mask;  /* [1, 1, H, W] in [0, 1], 1 = repaint: inpaint (needs image) */
    double strength;    /* img2img / inpaint denoise in (0, 1] */
    const float *noise; /* [1, 16, h, w] initial noise; NULL: torch.randn from seed */
    uint64_t seed;
    /* Tiled denoising (tiles.h; latent pixels, even): tiles get RoPE positions in
     * full-canvas coordinates.  size 0: the whole latent in one piece. */
    ts_tile_config tiling;
    const ts_vae_tiling *vae_tiling; /* NULL: encode and decode in one piece */
    ts_flux_probe_fn probe;
    void *probe_ctx;
    ts_flux_progress_fn progress;
    void *progress_ctx;
} ts_flux_request;

/* Runs one generation (txt2img, img2img with image, inpainting with image and mask).  latent (may be NULL) receives [1, 16, H/8, W/8] in
 * model space; image receives [1, 3, H, W], the raw decoder output (about [-1, 1],
 * not clamped).  Activations come from the arena and are released. */
int ts_flux_generate(const ts_flux_model *m, const ts_flux_request *r, ts_arena *arena, float *latent,
                     float *image);

#endif
