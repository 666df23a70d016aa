/*
 * Stable Diffusion 3 / 3.5 generation: txt2img, img2img and inpainting over the
 * MMDiT, with CLIP-L + CLIP-G + T5-XXL conditioning and the 16-channel VAE.
 *
 * A bundle is what users keep: the single-file checkpoint (model.diffusion_model.,
 * first_stage_model., and in the *_incl_clips files text_encoders.clip_l.transformer.,
 * text_encoders.clip_g.transformer., text_encoders.t5xxl.transformer.), optionally
 * with the text encoders or the VAE as separate files, as ComfyUI's folders hold
 * them.  As in the SD pipeline the text encoders are mapped only while encoding
 * (T5-XXL alone is 9.8 GB in f16) and the MMDiT's pages are dropped before decoding.
 *
 * Conventions are the reference's (Stability sd3_infer.py, ComfyUI's sd3_clip):
 *   context = [CLIP-L penultimate | CLIP-G penultimate] (768 + 1280 on channels, no
 *             final norm) zero-padded to the MMDiT's context width (4096), followed on
 *             the token axis by T5's last hidden state over at least 77 tokens (ids +
 *             EOS, padded with 0, no attention mask); 77 zero tokens when there is no T5;
 *   pooled  = CLIP-L's pooled output (unprojected) | CLIP-G's projected one (2048);
 * the negative prompt, even empty, is encoded the same way.  CLIP prompts take the
 * A1111 syntax (pipeline/conditioning.h); T5 reads the prompt's text with the
 * emphasis brackets removed.  When the two prompts need different lengths the
 * shorter is padded as A1111 pads CLIP chunks, and T5's shorter id row with 0s,
 * so both run as one batch of the MMDiT.
 *
 * Sampling is flow matching with shift 3.0 (ModelSamplingSD3): the model sees the
 * latent itself and t = 1000 sigma, D = x - sigma v; the latent the MMDiT works in is
 * (vae_latent - 0.0609) * 1.5305.  img2img at strength d samples the last steps+1
 * sigmas of an int(steps / d)-step schedule from sigma0 noise + (1 - sigma0) latent;
 * inpainting blends in latent space at every model call (ComfyUI KSamplerX0Inpaint).
 * As with the SD pipeline, putting the input's pixels back where the mask is 0 is the
 * caller's last step, on the 8-bit image, where it is exact (tessera generate does).
 */
#ifndef TS_PIPELINE_SD3_H
#define TS_PIPELINE_SD3_H

#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"
#include "models/family.h"
#include "models/mmdit.h"
#include "models/vae.h"
#include "pipeline/sd.h"
#include "sample/sampler.h"
#include "sample/schedule.h"

#define TS_SD3_SHIFT 3.0

typedef struct {
    const char *model;  /* checkpoint with the MMDiT (model.diffusion_model.) */
    const char *vae;    /* NULL: the checkpoint's */
    const char *clip_l; /* NULL: the checkpoint's text_encoders.clip_l */
    const char *clip_g; /* NULL: the checkpoint's text_encoders.clip_g */
    const char *t5;     /* NULL: the checkpoint's text_encoders.t5xxl, else none (zeros) */
    int clip_heads;     /* 0: 64-wide heads; tiny test models set it */
} ts_sd3_files;

typedef struct {
    ts_family family; /* TS_FAMILY_SD3 or TS_FAMILY_SD35 */
    ts_sd3_files files;
    ts_weights *main, *vae_file; /* vae_file NULL when the VAE is in main */
    ts_mmdit *mmdit;
    ts_vae vae;
    ts_noise_schedule schedule;
    ts_latent_format latent;
    int native_size;   /* 1024 */
    int size_multiple; /* 8 x the patch size */
    int max_size;      /* pixels: the pos_embed grid covers this much per side */
} ts_sd3_model;

int ts_sd3_load(const ts_sd3_files *files, ts_sd3_model **out);
void ts_sd3_free(ts_sd3_model *m);

/* One prompt's conditioning (malloc'd): context [1, T, context_dim], pooled [1, adm]. */
typedef struct {
    ts_tensor context, pooled;
} ts_sd3_cond;

/* Encodes prompt and negative prompt into out[0] and out[1] (same length); clip_skip
 * 0 = the penultimate layer.  Fails naming the file when an encoder is missing or its
 * width does not fit the MMDiT. */
int ts_sd3_encode_prompts(const ts_sd3_model *m, const char *prompt, const char *negative, int clip_skip,
                          ts_sd3_cond out[2]);
void ts_sd3_cond_free(ts_sd3_cond *c);

typedef struct {
    ts_sd_mode mode; /* txt2img, img2img or inpaint */
    int width, height;
    int steps;
    ts_sampler sampler;
    ts_scheduler scheduler;
    double cfg;      /* 1 skips the unconditional branch */
    double strength; /* img2img / inpaint denoise in (0, 1] */
    const ts_sd3_cond *cond, *uncond;
    const float *image; /* [1, 3, H, W] in [-1, 1] */
    const float *mask;  /* [1, 1, H, W] in [0, 1], 1 = repaint */
    const float *noise; /* [1, 16, h, w]; NULL: torch.randn from seed */
    uint64_t seed;
    /* Tiled denoising (tiles.h): each tile's tokens get their place in the position
     * grid (the canvas's centred window while the canvas fits it).  size 0: untiled. */
    ts_tile_config tiling;
    const ts_vae_tiling *vae_tiling; /* NULL: encode and decode in one piece */
    ts_sd_progress progress;
    void *progress_ctx;
} ts_sd3_request;

/* Whether the model takes a width x height image: multiples of size_multiple, within
 * the pos_embed grid unless tiled (then only the tiles must fit it); TS_ERR_ARG
 * naming the limit otherwise. */
int ts_sd3_check_size(const ts_sd3_model *m, int width, int height, int tiled);

/* image receives [1, 3, H, W], the raw decoder output (about [-1, 1], not clamped).
 * Activations come from the arena and are released. */
int ts_sd3_generate(const ts_sd3_model *m, const ts_sd3_request *r, ts_arena *arena, float *image);

#endif
