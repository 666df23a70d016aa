/*
 * Tile planning and blending; see tiles.h.
 */
#include "pipeline/tiles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sample/names.h"

static const char *const blend_names[] = {"uniform", "gaussian"};

int ts_tile_blend_from_name(const char *name, ts_tile_blend *out)
{
    static const char *const aliases[][2] = {{"multidiffusion", "uniform"}, {"mixture", "gaussian"}, {NULL, NULL}};
    int k = ts_name_index(name, blend_names, 2, aliases);
    if (k < 0)
        return ts_fail(TS_ERR_ARG, "unknown tile blend '%s' (known: uniform, gaussian)", name);
    *out = (ts_tile_blend)k;
    return 0;
}

const char *ts_tile_blend_name(ts_tile_blend blend)
{
    return blend == TS_TILE_BLEND_GAUSSIAN ? "gaussian" : "uniform";
}

/* Start positions along one axis of length len (units of the alignment): the fewest
 * tiles whose neighbours overlap by at least `overlap`, spread evenly, the first at
 * 0 and the last ending on the edge.  floor(i * q) steps by at most ceil(q), which
 * the tile count bounds by size - overlap. */
static int axis_positions(int len, int size, int overlap, int *pos)
{
    if (len <= size) {
        pos[0] = 0;
        return 1;
    }
    int stride = size - overlap, n = 1 + (len - size + stride - 1) / stride;
    for (int i = 0; i < n; i++)
        pos[i] = (int)((long long)i * (len - size) / (n - 1));
    return n;
}

/* Mixture of Diffusers' weight along one axis: a Gaussian of variance 0.01 (in tile
 * lengths) centred on the tile, so a tile's edge pixels count for almost nothing
 * where a neighbour covers them. */
static double gaussian_weight(int i, int len)
{
    double mid = (len - 1) / 2.0, d = (i - mid) / len;
    return exp(-d * d / (2 * 0.01)) / sqrt(2 * M_PI * 0.01);
}

int ts_tile_plan_init(ts_tile_plan *p, int h, int w, const ts_tile_config *c, int align)
{
    memset(p, 0, sizeof *p);
    if (align < 1 || h % align || w % align)
        return ts_fail(TS_ERR_ARG, "tiling: canvas %dx%d is not a multiple of %d", w, h, align);
    if (c->size <= 0 || c->size % align)
        return ts_fail(TS_ERR_ARG, "tile size %d must be a positive multiple of %d latent pixels", c->size, align);
    if (c->overlap < 0 || c->overlap >= c->size)
        return ts_fail(TS_ERR_ARG, "tile overlap %d must be at least 0 and less than the tile size %d", c->overlap,
                       c->size);
    if (c->batch < 1)
        return ts_fail(TS_ERR_ARG, "tile batch %d must be at least 1", c->batch);
    int unit_overlap = (c->overlap + align - 1) / align, unit_size = c->size / align;
    if (unit_overlap >= unit_size)
        return ts_fail(TS_ERR_ARG, "tile overlap %d leaves no stride at alignment %d", c->overlap, align);
    p->h = h;
    p->w = w;
    p->th = c->size < h ? c->size : h;
    p->tw = c->size < w ? c->size : w;
    int *ys = malloc(sizeof(int) * (size_t)(h / align + 1)), *xs = malloc(sizeof(int) * (size_t)(w / align + 1));
    if (!ys || !xs) {
        free(ys);
        free(xs);
        return ts_fail(TS_ERR_NOMEM, "tiling: out of memory");
    }
    int ny = axis_positions(h / align, p->th / align, unit_overlap, ys);
    int nx = axis_positions(w / align, p->tw / align, unit_overlap, xs);
    p->count = ny * nx;
    p->tiles = malloc(sizeof *p->tiles * (size_t)p->count);
    p->weight = malloc(sizeof *p->weight * (size_t)p->th * p->tw);
    if (p->tiles && p->weight) {
        for (int j = 0; j < ny; j++)
            for (int i = 0; i < nx; i++)
                p->tiles[j * nx + i] = (ts_tile){ys[j] * align, xs[i] * align};
        for (int y = 0; y < p->th; y++)
            for (int x = 0; x < p->tw; x++)
                p->weight[(size_t)y * p->tw + x] =
                    c->blend == TS_TILE_BLEND_GAUSSIAN && p->count > 1
                        ? (float)(gaussian_weight(y, p->th) * gaussian_weight(x, p->tw))
                        : 1.0f; /* a lone tile's weight divides out: 1 keeps it exact */
    }
    free(ys);
    free(xs);
    if (!p->tiles || !p->weight) {
        ts_tile_plan_free(p);
        return ts_fail(TS_ERR_NOMEM, "tiling: out of memory");
    }
    return 0;
}

void ts_tile_plan_free(ts_tile_plan *p)
{
    free(p->tiles);
    free(p->weight);
    p->tiles = NULL;
    p->weight = NULL;
    p->count = 0;
}

void ts_tile_crop(const ts_tile_plan *p, int t, const float *canvas, int channels, float *tile)
{
    const ts_tile *o = &p->tiles[t];
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < p->th; y++)
            memcpy(tile + ((size_t)c * p->th + y) * p->tw, canvas + ((size_t)c * p->h + o->y + y) * p->w + o->x,
                   (size_t)p->tw * sizeof *tile);
}

void ts_tile_accumulate(const ts_tile_plan *p, int t, const float *tile, int channels, const float *mask, float *acc,
                        float *wsum)
{
    const ts_tile *o = &p->tiles[t];
    size_t plane = (size_t)p->h * p->w;
    for (int y = 0; y < p->th; y++)
        for (int x = 0; x < p->tw; x++) {
            size_t at = (size_t)(o->y + y) * p->w + o->x + x, in = (size_t)y * p->tw + x;
            float wt = p->weight[in] * (mask ? mask[at] : 1.0f);
            if (wt == 0)
                continue;
            wsum[at] += wt;
            for (int c = 0; c < channels; c++)
                acc[c * plane + at] += wt * tile[(size_t)c * p->th * p->tw + in];
        }
}

void ts_tile_normalize(float *acc, const float *wsum, int channels, size_t plane)
{
    for (size_t i = 0; i < plane; i++) {
        float inv = 1.0f / wsum[i];
        for (int c = 0; c < channels; c++)
            acc[c * plane + i] *= inv;
    }
}

int ts_tile_touches(const ts_tile_plan *p, int t, const float *mask)
{
    const ts_tile *o = &p->tiles[t];
    for (int y = 0; y < p->th; y++)
        for (int x = 0; x < p->tw; x++)
            if (mask[(size_t)(o->y + y) * p->w + o->x + x] != 0)
                return 1;
    return 0;
}

int ts_tile_each_batch(const ts_tile_plan *p, int batch, ts_arena *arena, int (*run)(void *user, int first, int count),
                       void *user)
{
    size_t mark = ts_arena_mark(arena);
    int rc = 0;
    ts_arena_hold_pages(arena, 1);
    for (int t = 0; rc == 0 && t < p->count; t += batch)
        rc = run(user, t, p->count - t < batch ? p->count - t : batch);
    ts_arena_hold_pages(arena, 0);
    ts_arena_reset(arena, mark);
    return rc;
}
