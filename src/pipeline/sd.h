/*
 * Stable Diffusion 1.x / 2.x / SDXL generation: txt2img, img2img, inpainting and
 * InstructPix2Pix editing over one model bundle.
 *
 * A bundle is what users keep on disk: a single checkpoint, or a checkpoint plus
 * parts (a separate VAE, separate CLIP-L / CLIP-G files, as in ComfyUI's folders).
 * Weights stay memory-mapped in their stored dtype; nothing is widened as a whole.
 * The text encoders are not held by the bundle: ts_sd_encode_prompts maps them,
 * encodes and unmaps them again, so their pages leave the resident set before the
 * UNet runs (on SD 1.5 f16 that is 250 MB of a 2.5 GB budget); likewise the UNet's
 * pages are dropped before the VAE decode, whose activations are the largest of a
 * generation (they fault back in from the page cache for the next image).
 *
 * Conventions are ComfyUI's where tools differ (see the pipeline_sd15 golden case,
 * which checks them): the network is fed the quantised timestep nearest in log
 * sigma; img2img at strength d samples the last steps+1 sigmas of an
 * int(steps / d)-step schedule; the start is latent + noise * sigma, or
 * noise * sqrt(1 + sigma^2) when sampling starts at the model's sigma_max; an
 * ordinary model inpaints by blending, at every model call, the sample outside the
 * (bilinearly downsampled) mask with the re-noised init latent, and the denoised
 * estimate with the init latent.  Inpainting models additionally see the mask and
 * the masked image's latent as extra input channels; InstructPix2Pix models see the
 * image's latent (unscaled, as the original and ComfyUI's SD 1.5 path do) and use
 * the dual guidance of Brooks et al.
 */
#ifndef TS_PIPELINE_SD_H
#define TS_PIPELINE_SD_H

#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"
#include "models/family.h"
#include "models/unet.h"
#include "models/vae.h"
#include "models/vae_tiled.h"
#include "pipeline/run_state.h"
#include "pipeline/tiles.h"
#include "sample/denoiser.h"
#include "sample/sampler.h"
#include "sample/schedule.h"

typedef enum { TS_SD_PRED_AUTO, TS_SD_PRED_EPS, TS_SD_PRED_V } ts_sd_prediction;

typedef struct {
    const char *model;  /* checkpoint with the UNet (model.diffusion_model.) */
    const char *vae;    /* NULL: the checkpoint's own */
    const char *clip_l; /* NULL: the checkpoint's own text encoder(s) */
    const char *clip_g; /* SDXL's second encoder; NULL: the checkpoint's */
    ts_sd_prediction prediction;
    /* Head counts cannot be read from weights.  Zero: the published rules (UNet: SD1 8
     * heads, SD2/SDXL 64-wide heads; CLIP: 64-wide heads); tiny test models set them. */
    ts_unet_config unet;
    int clip_heads;
} ts_sd_files;

typedef struct {
    ts_family family;
    ts_sd_files files; /* the paths, for the text encoders */
    ts_weights *main, *vae_file; /* vae_file NULL when the VAE is in main */
    ts_unet *unet;
    ts_vae vae;
    ts_prediction prediction;
    ts_noise_schedule schedule;
    ts_latent_format latent;
    int native_size;   /* pixels: 512 (SD1, SD2 eps), 768 (SD2 v), 1024 (SDXL) */
    int size_multiple; /* pixel sizes must be multiples of this (8 x the UNet's) */
} ts_sd_model;

/* Opens the files, checks each is what its role needs (a wrong family is named),
 * and loads the UNet and VAE views. */
int ts_sd_load(const ts_sd_files *files, ts_sd_model **out);
void ts_sd_free(ts_sd_model *m);

/* One prompt's conditioning: the UNet context [1, T, D] and, for SDXL, the pooled
 * text embedding (pooled_dim floats) the vector conditioning starts with. */
typedef struct {
    ts_tensor context;
    const float *pooled;
    int pooled_dim;
} ts_sd_cond;

typedef enum { TS_SD_TXT2IMG, TS_SD_IMG2IMG, TS_SD_INPAINT, TS_SD_INSTRUCT } ts_sd_mode;

/* A regional prompt (MultiDiffusion's region-based generation): inside its mask the
 * text-conditioned prediction comes from this prompt, the main prompt's weight
 * dropping by as much; the negative prompt stays global. */
typedef struct {
    ts_sd_cond cond;
    const float *mask; /* [H, W] pixels in [0, 1] */
} ts_sd_region;

/* Reports intermediate values: "sigmas" [steps+1], "init_latent" (VAE space, the
 * posterior mean), "latent_mask" [1, 4, h, w], "timestep" [1] (each model call),
 * "x" (step = i: sampler state at the start of step i; step = steps: the result),
 * "denoised" (step i), "latent" (model space), "latent_vae", "vector" (SDXL: the
 * [batch, adm] vector conditioning of each UNet call, one row per tile and branch). */
typedef void (*ts_sd_probe)(void *ctx, const char *name, int step, const ts_tensor *t);
/* Called after each step with the steps done; a non-zero return cancels the run
 * there (TS_ERR_CANCELLED). */
typedef int (*ts_sd_progress)(void *ctx, int done, int steps);

/* Never losing a run.  from (NULL: start afresh) continues a run that stopped: the
 * request must be the one that run had; the result is the uninterrupted run's.
 * on_stop (optional) receives, when a run is cancelled or fails once sampling has
 * begun (the VAE decode included: then phase "decode" with the final latent), where
 * it stood, which passed back as from finishes it; the state lives for the call. */
typedef struct {
    const ts_run_state *from;
    int pass; /* which pass of a multi-pass run this request is (0 for one pass) */
    void (*on_stop)(void *ctx, const ts_run_state *state);
    void *ctx;
} ts_sd_resume;

typedef struct {
    ts_sd_mode mode;
    int width, height; /* pixels, multiples of the model's size_multiple */
    int steps;
    ts_sampler sampler;
    ts_scheduler scheduler;
    double cfg;       /* text guidance scale; 1 skips the unconditional pass */
    double image_cfg; /* InstructPix2Pix image guidance scale */
    double strength;  /* img2img / inpaint denoise in (0, 1] */
    ts_sd_cond cond, uncond;
    const float *image; /* [1, 3, H, W] in [-1, 1]: init image, or the image to edit */
    const float *init_latent; /* img2img from a model-space latent [1, 4, h, w] instead of image */
    const float *mask;  /* [1, 1, H, W] in [0, 1], 1 = repaint (inpaint) */
    const float *noise; /* [1, 4, h, w] initial noise; NULL: drawn from seed */
    ts_tile_config tiling; /* size 0: the whole canvas in one piece */
    const ts_vae_tiling *vae_tiling; /* NULL: encode and decode in one piece */
    /* DemoFusion's skip residual (img2img from init_latent): after step i of n the
     * sample becomes c * (init noised to that level) + (1 - c) * sample, with
     * c = ((1 + cos(pi i / n)) / 2)^skip_residual; 0 = off. */
    double skip_residual;
    const ts_sd_region *regions;
    int region_count;
    uint64_t seed;
    ts_sd_probe probe;
    void *probe_ctx;
    ts_sd_progress progress;
    void *progress_ctx;
    ts_sd_resume resume;
} ts_sd_request;

/* Whether the model's UNet suits the mode (8 input channels for instruction editing
 * and only then; 4 or 9 otherwise), so callers can refuse before any work. */
int ts_sd_check_mode(const ts_sd_model *m, ts_sd_mode mode);

/* Runs one generation; image receives [1, 3, H, W], the raw decoder output (about
 * [-1, 1], not clamped).  Activations come from the arena and are released.  When
 * the whole-image VAE decode runs out of memory (TS_ERR_NOMEM) the exact tiled decode
 * takes over, with smaller tiles until one fits. */
int ts_sd_generate(const ts_sd_model *m, const ts_sd_request *r, ts_arena *arena, float *image);
/* As ts_sd_generate without the decode: latent receives the model-space result
 * [1, 4, h, w]. */
int ts_sd_sample(const ts_sd_model *m, const ts_sd_request *r, ts_arena *arena, float *latent);
/* The VAE encoder's posterior mean of image [1, 3, H, W] (r's size; tiled with
 * r->vae_tiling when set) in model space: latent [1, 4, H/8, W/8]. */
int ts_sd_encode(const ts_sd_model *m, const ts_sd_request *r, const float *image, ts_arena *arena, float *latent);
/* The VAE decode of a model-space latent [1, 4, h, w] into image [1, 3, 8h, 8w]
 * (tiled with r->vae_tiling when set); latent is clobbered. */
int ts_sd_decode(const ts_sd_model *m, const ts_sd_request *r, float *latent, ts_arena *arena, float *image);

/* Linear interpolation of a [h, w] plane to [dh, dw] with half-pixel centres
 * (PyTorch bilinear, align_corners=False, no antialiasing). */
void ts_resize_bilinear(const float *src, int h, int w, float *dst, int dh, int dw);

/* Gaussian blur of a [h, w] plane with standard deviation sigma, radius
 * int(2.5 sigma + 0.5), edges clamped.  sigma <= 0 leaves it unchanged. */
int ts_blur_plane(float *plane, int h, int w, double sigma);

#endif
