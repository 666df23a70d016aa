/*
 * Tiled evaluation of a denoising network over a canvas larger than it was trained
 * on: the arithmetic every backbone shares.
 *
 * The canvas latent [C, h, w] is covered by overlapping tiles; at every model call
 * each tile is cropped out, the network predicts it, and the predictions are
 * accumulated per pixel with a weight, then divided by the summed weights.  That
 * is MultiDiffusion (Bar-Tal et al. 2023) with uniform weights, and Mixture of
 * Diffusers (Jiménez 2023) with Gaussian ones that fade towards tile edges.  Because
 * the blend happens on the network's prediction, before the sampler sees it, it
 * works with every sampler; and because the eps / v / flow-to-denoised conversion
 * and guidance are affine per pixel, blending predictions equals blending denoised
 * estimates.
 *
 * Tiles are spread evenly so that neighbours share at least `overlap` pixels and
 * the last tile ends exactly on the canvas edge; positions and sizes are multiples
 * of an alignment the backbone needs (Flux packs 2x2 latent pixels into a token).
 * A weight mask per pixel (regional prompts) multiplies the tile weight.
 */
#ifndef TS_PIPELINE_TILES_H
#define TS_PIPELINE_TILES_H

#include <stddef.h>

#include "core/arena.h"

typedef enum { TS_TILE_BLEND_UNIFORM, TS_TILE_BLEND_GAUSSIAN } ts_tile_blend;

typedef struct {
    int size;    /* tile side in latent pixels; 0: the model's native size */
    int overlap; /* latent pixels neighbouring tiles share at least */
    int batch;   /* tiles per network call (each with all guidance branches) */
    ts_tile_blend blend;
} ts_tile_config;

typedef struct {
    int y, x; /* top-left corner, latent pixels */
} ts_tile;

typedef struct {
    int h, w;       /* canvas, latent pixels */
    int th, tw;     /* tile size: the configured size, or the canvas side if smaller */
    int count;
    ts_tile *tiles;
    float *weight; /* [th * tw] blend weight of one tile, all > 0 */
} ts_tile_plan;

/* Parses "uniform" (alias multidiffusion) or "gaussian" (alias mixture). */
int ts_tile_blend_from_name(const char *name, ts_tile_blend *out);
const char *ts_tile_blend_name(ts_tile_blend blend);

/* Plans tiles of side c->size over an h x w canvas; align divides h, w, the tile
 * size and every position.  Checks the configuration (size a positive multiple of
 * align, 0 <= overlap < size, batch >= 1). */
int ts_tile_plan_init(ts_tile_plan *p, int h, int w, const ts_tile_config *c, int align);
void ts_tile_plan_free(ts_tile_plan *p);

/* tile [channels, th, tw] = canvas [channels, h, w] at tile t. */
void ts_tile_crop(const ts_tile_plan *p, int t, const float *canvas, int channels, float *tile);

/* Accumulates tile t's prediction [channels, th, tw] into acc [channels, h, w] with
 * the tile weight times mask (a [h, w] plane, NULL = 1), and that weight into
 * wsum [h, w]. */
void ts_tile_accumulate(const ts_tile_plan *p, int t, const float *tile, int channels, const float *mask, float *acc,
                        float *wsum);

/* acc [channels, h*w] /= wsum, per pixel. */
void ts_tile_normalize(float *acc, const float *wsum, int channels, size_t plane);

/* Calls run(user, first, count) for the plan's tiles in batches of up to `batch`,
 * keeping the arena's pages resident between the batches (each fills the same space
 * again) and giving them back after the last; stops at the first non-zero return. */
int ts_tile_each_batch(const ts_tile_plan *p, int batch, ts_arena *arena, int (*run)(void *user, int first, int count),
                       void *user);

/* Whether mask (a [h, w] plane) is non-zero anywhere inside tile t. */
int ts_tile_touches(const ts_tile_plan *p, int t, const float *mask);

#endif
