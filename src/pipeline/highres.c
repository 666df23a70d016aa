/*
 * Two-pass high-resolution generation; see highres.h and docs/highres.md.
 */
#include "pipeline/highres.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pipeline/upscale.h"

ts_sd_highres ts_sd_highres_default(void)
{
    return (ts_sd_highres){.strength = 0.6, .skip_residual = 3.0};
}

static int round_to(double v, int mult, int hi)
{
    int r = (int)lround(v / mult) * mult;
    return r < mult ? mult : r > hi ? hi : r;
}

void ts_sd_highres_first_size(const ts_sd_model *m, int width, int height, int *w1, int *h1)
{
    double aspect = (double)width / height, side = m->native_size;
    *w1 = round_to(side * sqrt(aspect), m->size_multiple, width);
    *h1 = round_to(side / sqrt(aspect), m->size_multiple, height);
}

/* The first pass: the same prompts, regions and seed at the small size, untiled. */
static int first_pass(const ts_sd_model *m, const ts_sd_request *r, int w1, int h1, const ts_run_state *from,
                      ts_arena *arena, float *latent)
{
    ts_sd_request first = *r;
    first.resume.pass = 0;
    first.resume.from = from;
    first.width = w1;
    first.height = h1;
    first.tiling = (ts_tile_config){0};
    first.noise = NULL;
    first.probe = NULL;
    /* Region masks are given at the canvas's size; the pipeline resizes them to the
     * latent, so they are resampled here to the first pass's pixels. */
    ts_sd_region *regions = NULL;
    float *masks = NULL;
    if (r->region_count) {
        regions = malloc(sizeof *regions * (size_t)r->region_count);
        masks = malloc(sizeof *masks * (size_t)r->region_count * w1 * h1);
        if (!regions || !masks) {
            free(regions);
            free(masks);
            return ts_fail(TS_ERR_NOMEM, "out of memory");
        }
        for (int k = 0; k < r->region_count; k++) {
            regions[k] = r->regions[k];
            regions[k].mask = masks + (size_t)k * w1 * h1;
            ts_resize_bilinear(r->regions[k].mask, r->height, r->width, masks + (size_t)k * w1 * h1, h1, w1);
        }
        first.regions = regions;
    }
    int rc = ts_sd_sample(m, &first, arena, latent);
    free(regions);
    free(masks);
    return rc;
}

/* The first pass's picture brought to the canvas and encoded: decode (small, in one
 * piece), enlarge (super-resolution, then bilinear to the exact size), encode with
 * the canvas request's VAE tiling.  small is clobbered; up receives the latent. */
static int upscale_pixels(const ts_sd_model *m, const ts_sd_request *r, const ts_sd_highres *h, int w1, int h1,
                          ts_arena *arena, float *small, float *up)
{
    ts_sd_request first = *r;
    first.width = w1;
    first.height = h1;
    first.vae_tiling = NULL;
    first.probe = NULL;
    int s = h->upscaler ? ts_rdn_scale(h->upscaler) : 1;
    size_t canvas = (size_t)r->width * r->height, sr = (size_t)w1 * s * h1 * s;
    float *pic = malloc(sizeof *pic * 3 * (size_t)w1 * h1), *big = malloc(sizeof *big * 3 * sr);
    float *full = malloc(sizeof *full * 3 * canvas);
    int rc = pic && big && full ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory for the upscaled first pass");
    rc = rc ? rc : ts_sd_decode(m, &first, small, arena, pic);
    if (rc == 0 && h->upscaler) { /* the networks take [0, 1] */
        for (size_t i = 0; i < 3 * (size_t)w1 * h1; i++)
            pic[i] = fminf(fmaxf(pic[i] * 0.5f + 0.5f, 0.0f), 1.0f);
        ts_upscale_opts opts = {.tile = -1};
        rc = ts_upscale_planar(h->upscaler, pic, w1, h1, &opts, big, NULL);
        for (size_t i = 0; rc == 0 && i < 3 * sr; i++)
            big[i] = big[i] * 2.0f - 1.0f;
    } else if (rc == 0) {
        memcpy(big, pic, sizeof *big * 3 * sr);
    }
    for (int c = 0; rc == 0 && c < 3; c++)
        ts_resize_bilinear(big + c * sr, h1 * s, w1 * s, full + c * canvas, r->height, r->width);
    rc = rc ? rc : ts_sd_encode(m, r, full, arena, up);
    free(pic);
    free(big);
    free(full);
    return rc;
}

int ts_sd_generate_highres(const ts_sd_model *m, const ts_sd_request *r, const ts_sd_highres *h, ts_arena *arena,
                           float *image)
{
    if (r->mode != TS_SD_TXT2IMG)
        return ts_fail(TS_ERR_ARG, "the two-pass high-resolution mode is for text-to-image");
    if (!(h->strength > 0 && h->strength <= 1) || h->skip_residual < 0)
        return ts_fail(TS_ERR_ARG, "hires strength %g must be in (0, 1] and the skip residual exponent >= 0",
                       h->strength);
    int w1 = h->width, h1 = h->height;
    if (!w1 || !h1)
        ts_sd_highres_first_size(m, r->width, r->height, &w1, &h1);
    if (w1 % m->size_multiple || h1 % m->size_multiple || w1 > r->width || h1 > r->height)
        return ts_fail(TS_ERR_ARG, "first pass %dx%d must be multiples of %d within the canvas", w1, h1,
                       m->size_multiple);
    int lw = r->width / 8, lh = r->height / 8;
    float *small = malloc(sizeof *small * 4 * (size_t)(w1 / 8) * (h1 / 8));
    float *up = malloc(sizeof *up * 4 * (size_t)lw * lh);
    int rc = small && up ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory for the %dx%d canvas", r->width, r->height);
    /* A stopped run continues in the pass it stopped in; the first pass is made again
     * when the refinement needs its latent (it is deterministic, and small). */
    const ts_run_state *from = r->resume.from;
    int decode_only = from && from->pass == 1 && !strcmp(from->phase, "decode");
    if (rc == 0 && !decode_only)
        rc = first_pass(m, r, w1, h1, from && from->pass == 0 ? from : NULL, arena, small);
    if (rc == 0 && !decode_only && h->upscale == TS_HIRES_PIXEL)
        rc = upscale_pixels(m, r, h, w1, h1, arena, small, up);
    if (rc == 0) {
        for (int c = 0; c < 4 && !decode_only && h->upscale == TS_HIRES_LATENT; c++)
            ts_resize_bilinear(small + (size_t)c * (h1 / 8) * (w1 / 8), h1 / 8, w1 / 8, up + (size_t)c * lh * lw, lh,
                               lw);
        ts_sd_request second = *r;
        second.mode = TS_SD_IMG2IMG;
        second.init_latent = up;
        second.strength = h->strength;
        second.skip_residual = h->skip_residual;
        /* Fresh noise for the refinement, as a different seed stream from the first pass. */
        second.seed = r->seed + 0x9e3779b97f4a7c15ull;
        second.resume.pass = 1;
        second.resume.from = from && from->pass == 1 ? from : NULL;
        rc = ts_sd_generate(m, &second, arena, image);
    }
    free(small);
    free(up);
    return rc;
}
