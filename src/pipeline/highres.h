/*
 * High-resolution generation with global coherence: a canvas far beyond the
 * model's training size, drawn without repeating the subject in every tile.
 *
 * Tiled denoising alone (tiles.h) keeps memory bounded and seams invisible, but
 * every tile sees only its own window and the prompt, so from pure noise each one
 * paints the whole subject.  The method here (see docs/highres.md) is the one the
 * hires-fix and DemoFusion (Du et al. 2024) established: a first pass at the
 * model's native resolution fixes the composition; its latent is upscaled to the
 * canvas and refined by tiled img2img at a moderate strength; during the refinement
 * a skip residual keeps pulling the sample towards the noised upscale, strongly at
 * first and not at all at the end, so the layout holds while the tiles add detail.
 */
#ifndef TS_PIPELINE_HIGHRES_H
#define TS_PIPELINE_HIGHRES_H

#include "models/rdn.h"
#include "pipeline/sd.h"

/* How the first pass reaches the canvas: its latent resized (cheap, soft), or its
 * picture decoded, enlarged (by a super-resolution network when one is given, then
 * resized to the exact size) and encoded again (sharper, costs a VAE round trip). */
typedef enum { TS_HIRES_LATENT, TS_HIRES_PIXEL } ts_hires_upscale;

typedef struct {
    int width, height;    /* first pass, pixels; 0: the native area at the canvas's aspect */
    double strength;      /* refinement denoise in (0, 1] */
    double skip_residual; /* cosine decay exponent (DemoFusion's alpha_1 = 3); 0 = off */
    ts_hires_upscale upscale;
    const ts_rdn *upscaler; /* TS_HIRES_PIXEL: super-resolution first; NULL: bilinear only */
} ts_sd_highres;

/* Defaults: strength 0.6, skip residual exponent 3, first pass size automatic. */
ts_sd_highres ts_sd_highres_default(void);

/* The first pass size for a canvas: the model's native area at the canvas's aspect,
 * in multiples of its size step, never larger than the canvas. */
void ts_sd_highres_first_size(const ts_sd_model *m, int width, int height, int *w1, int *h1);

/* Text-to-image at r->width x r->height in two passes (first pass untiled, the
 * refinement with r->tiling).  r must be a txt2img request; image as ts_sd_generate. */
int ts_sd_generate_highres(const ts_sd_model *m, const ts_sd_request *r, const ts_sd_highres *h, ts_arena *arena,
                           float *image);

#endif
