/* Whole-image super-resolution: model registry, tiles, alpha; see upscale.h. */
#include "pipeline/upscale.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/error.h"

/* ---- the registry of installed models -------------------------------------- */

/* Each UpscalerJS package and the scales it ships (scripts/fetch-models.sh). */
static const struct {
    const char *name, *package;
    int scales[4];
    const char *model_json; /* inside the package; %d is the scale */
} registry[] = {
    {"default", "default-model", {2}, "models/model.json"},
    {"slim", "esrgan-slim", {2, 3, 4, 8}, "models/x%d/model.json"},
    {"medium", "esrgan-medium", {2, 3, 4, 8}, "models/x%d/model.json"},
    {"thick", "esrgan-thick", {2, 3, 4, 8}, "models/x%d/model.json"},
};
#define REGISTRY_SIZE (int)(sizeof registry / sizeof registry[0])

static int find_model(const char *name)
{
    for (int i = 0; i < REGISTRY_SIZE; i++)
        if (strcmp(registry[i].name, name) == 0)
            return i;
    return ts_fail(TS_ERR_ARG, "unknown model '%s' (known: default, slim, medium, thick)", name);
}

int ts_upscaler_package_dir(const char *model_dir, const char *name, char *path, size_t size)
{
    int i = find_model(name);
    if (i < 0)
        return i;
    if (!model_dir)
        model_dir = getenv("TESSERA_MODEL_DIR");
    int n = model_dir && model_dir[0] ? snprintf(path, size, "%s/upscalerjs/%s", model_dir, registry[i].package)
                                      : snprintf(path, size, "%s/models/upscalerjs/%s", TESSERA_SOURCE_DIR,
                                                 registry[i].package);
    if (n < 0 || (size_t)n >= size)
        return ts_fail(TS_ERR_ARG, "model directory path too long");
    return TS_OK;
}

int ts_upscaler_model_path(const char *model_dir, const char *name, int scale, char *path, size_t size)
{
    int rc = ts_upscaler_package_dir(model_dir, name, path, size);
    if (rc < 0)
        return rc;
    int i = find_model(name), found = 0;
    char scales[32] = "";
    for (int k = 0; k < 4 && registry[i].scales[k]; k++) {
        found |= registry[i].scales[k] == scale;
        snprintf(scales + strlen(scales), sizeof scales - strlen(scales), "%s%d", k ? ", " : "",
                 registry[i].scales[k]);
    }
    if (!found)
        return ts_fail(TS_ERR_UNSUPPORTED, "model %s has no x%d (scales: %s)", name, scale, scales);
    size_t len = strlen(path);
    int n = snprintf(path + len, size - len, "/");
    n += snprintf(path + len + 1, size - len - 1, registry[i].model_json, scale);
    if (n < 0 || len + (size_t)n >= size)
        return ts_fail(TS_ERR_ARG, "model path too long");
    struct stat st;
    if (stat(path, &st) != 0)
        return ts_fail(TS_ERR_IO, "model %s is not installed (no %s): run scripts/fetch-models.sh, or point "
                                  "--model-dir / TESSERA_MODEL_DIR at the folder it filled", name, path);
    return TS_OK;
}

/* ---- tiles ------------------------------------------------------------------ */

/* Receives the core of a finished tile: planar [3, ch, cw] at output position (x, y). */
typedef int (*tile_sink)(void *ctx, const float *core, int x, int y, int cw, int ch);

/* Arena bytes for one tile whose region (core plus margins) is rh x rw. */
static size_t tile_bytes(const ts_rdn *m, int64_t rh, int64_t rw, int64_t core_h, int64_t core_w)
{
    int64_t s = ts_rdn_scale(m);
    return ts_rdn_workspace(m, rh, rw) + (size_t)(3 * rh * rw + 3 * s * s * rh * rw + 3 * s * s * core_h * core_w) *
                                             sizeof(float) + 4 * 64;
}

/* The largest core side (a multiple of 16) whose tile fits the budget, or the whole
 * image when it fits at once. */
static int auto_tile(const ts_rdn *m, int w, int h, size_t budget)
{
    int halo = ts_rdn_halo(m), side = w > h ? w : h;
    if (tile_bytes(m, h, w, h, w) <= budget)
        return side;
    int t = side / 16 * 16;
    for (; t > 16; t -= 16) {
        int64_t rw = t + 2 * halo < w ? t + 2 * halo : w, rh = t + 2 * halo < h ? t + 2 * halo : h;
        if (tile_bytes(m, rh, rw, t, t) <= budget)
            break;
    }
    return t < 16 ? 16 : t;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int run_tiles(const ts_rdn *m, const float *in, int w, int h, const ts_upscale_opts *o, tile_sink sink,
                     void *ctx, ts_upscale_stats *stats)
{
    int s = ts_rdn_scale(m), halo = ts_rdn_halo(m);
    size_t budget = o->budget ? o->budget : TS_UPSCALE_DEFAULT_BUDGET;
    int core = o->tile > 0 ? o->tile : o->tile == 0 ? (w > h ? w : h) : auto_tile(m, w, h, budget);
    int nx = (w + core - 1) / core, ny = (h + core - 1) / core;
    int cw = (w + nx - 1) / nx, ch = (h + ny - 1) / ny; /* even tiles: no thin strip at the end */
    if ((nx - 1) * cw <= halo && cw + halo >= w && (ny - 1) * ch <= halo && ch + halo >= h) {
        nx = ny = 1; /* every tile would see the whole image: one pass does the same work once */
        cw = w;
        ch = h;
    }
    int rw = nx > 1 ? (cw + 2 * halo < w ? cw + 2 * halo : w) : w;
    int rh = ny > 1 ? (ch + 2 * halo < h ? ch + 2 * halo : h) : h;
    ts_arena *arena = ts_arena_create(tile_bytes(m, rh, rw, ch, cw) + (1 << 20));
    if (!arena)
        return TS_ERR_NOMEM;
    int rc = TS_OK;
    int64_t done = 0, total = (int64_t)w * h;
    for (int ty = 0; ty < ny && rc == TS_OK; ty++)
        for (int tx = 0; tx < nx && rc == TS_OK; tx++) {
            int x0 = tx * cw, x1 = clampi(x0 + cw, 0, w), y0 = ty * ch, y1 = clampi(y0 + ch, 0, h);
            int rx0 = clampi(x0 - halo, 0, w), rx1 = clampi(x1 + halo, 0, w);
            int ry0 = clampi(y0 - halo, 0, h), ry1 = clampi(y1 + halo, 0, h);
            int64_t rgw = rx1 - rx0, rgh = ry1 - ry0, kw = (int64_t)s * (x1 - x0), kh = (int64_t)s * (y1 - y0);
            ts_tensor x = ts_arena_tensor(arena, 4, (int64_t[]){1, 3, rgh, rgw});
            ts_tensor y = ts_arena_tensor(arena, 4, (int64_t[]){1, 3, s * rgh, s * rgw});
            float *kept = ts_arena_alloc(arena, (size_t)(3 * kh * kw) * sizeof(float));
            if (!x.data || !y.data || !kept) {
                rc = TS_ERR_NOMEM;
                break;
            }
            for (int c = 0; c < 3; c++)
                for (int64_t r = 0; r < rgh; r++)
                    memcpy(x.data + (c * rgh + r) * rgw, in + ((int64_t)c * h + ry0 + r) * w + rx0,
                           (size_t)rgw * sizeof(float));
            rc = ts_rdn_forward(m, &x, &y, arena);
            if (rc < 0)
                break;
            int64_t oy = (int64_t)s * (y0 - ry0), ox = (int64_t)s * (x0 - rx0);
            for (int c = 0; c < 3; c++)
                for (int64_t r = 0; r < kh; r++)
                    memcpy(kept + (c * kh + r) * kw, y.data + (c * s * rgh + oy + r) * s * rgw + ox,
                           (size_t)kw * sizeof(float));
            rc = sink(ctx, kept, s * x0, s * y0, (int)kw, (int)kh);
            ts_arena_reset(arena, 0);
            done += (int64_t)(x1 - x0) * (y1 - y0);
            if (o->progress)
                o->progress(o->progress_ctx, done, total);
        }
    if (stats) {
        stats->tile = cw > ch ? cw : ch;
        stats->tiles = nx * ny;
        stats->arena_peak = ts_arena_peak(arena);
    }
    ts_arena_destroy(arena);
    return rc;
}

/* ---- float output ------------------------------------------------------------- */

typedef struct {
    float *out;
    int64_t W, H; /* output size */
} planar_sink_ctx;

static int planar_sink(void *vctx, const float *core, int x, int y, int cw, int ch)
{
    planar_sink_ctx *p = vctx;
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < ch; r++)
            memcpy(p->out + (c * p->H + y + r) * p->W + x, core + ((int64_t)c * ch + r) * cw,
                   (size_t)cw * sizeof(float));
    return TS_OK;
}

static const ts_upscale_opts default_opts = {.tile = -1};

int ts_upscale_planar(const ts_rdn *m, const float *in, int w, int h, const ts_upscale_opts *opts, float *out,
                      ts_upscale_stats *stats)
{
    int s = ts_rdn_scale(m);
    planar_sink_ctx ctx = {out, (int64_t)s * w, (int64_t)s * h};
    return run_tiles(m, in, w, h, opts ? opts : &default_opts, planar_sink, &ctx, stats);
}

/* ---- image output ------------------------------------------------------------- */

/* Quantises planar [nc, bh, bw] in [0, 1] (as ts_image_from_planar does) into channels
 * [c0, c0 + nc) of `out` at (x, y). */
static int put_block(ts_image *out, int c0, const float *planar, int nc, int x, int y, int bw, int bh)
{
    ts_image block;
    int rc = ts_image_from_planar(planar, nc, bw, bh, out->depth, TS_RANGE_UNIT, &block);
    if (rc < 0)
        return rc;
    size_t ss = ts_image_sample_size(out);
    unsigned char *dst = out->data;
    const unsigned char *src = block.data;
    for (int r = 0; r < bh; r++)
        for (int col = 0; col < bw; col++)
            memcpy(dst + (((size_t)(y + r) * out->width + x + col) * out->channels + c0) * ss,
                   src + ((size_t)r * bw + col) * nc * ss, nc * ss);
    ts_image_free(&block);
    return TS_OK;
}

static int image_sink(void *ctx, const float *core, int x, int y, int cw, int ch)
{
    return put_block(ctx, 0, core, 3, x, y, cw, ch);
}

/* Keys cubic convolution weight (a = -0.5), the usual "bicubic". */
static float keys(float d)
{
    const float a = -0.5f;
    d = fabsf(d);
    if (d <= 1.0f)
        return ((a + 2.0f) * d - (a + 3.0f)) * d * d + 1.0f;
    if (d < 2.0f)
        return ((a * d - 5.0f * a) * d + 8.0f * a) * d - 4.0f * a;
    return 0.0f;
}

/* Source taps of output coordinate X for an s-times upscale of n samples, pixel centres
 * aligned, edges clamped. */
static void cubic_taps(int64_t X, int s, int n, int idx[4], float wt[4])
{
    float u = ((float)X + 0.5f) / (float)s - 0.5f;
    int i0 = (int)floorf(u);
    float t = u - (float)i0;
    for (int k = 0; k < 4; k++) {
        idx[k] = clampi(i0 - 1 + k, 0, n - 1);
        wt[k] = keys(t - (float)(k - 1));
    }
}

/* Upscales the 1-channel alpha plane `a` (w x h) by s with bicubic interpolation into
 * channel 3 of out, a band of rows at a time. */
static int upscale_alpha(const float *a, int w, int h, int s, ts_image *out)
{
    enum { BAND = 64 };
    int W = out->width, H = out->height;
    float *row = malloc((size_t)w * sizeof *row), *band = malloc((size_t)BAND * W * sizeof *band);
    int (*xi)[4] = malloc((size_t)W * sizeof *xi);
    float (*xw)[4] = malloc((size_t)W * sizeof *xw);
    int rc = row && band && xi && xw ? TS_OK : ts_fail(TS_ERR_NOMEM, "no memory for the alpha channel");
    for (int X = 0; X < W && rc == TS_OK; X++)
        cubic_taps(X, s, w, xi[X], xw[X]);
    for (int Y0 = 0; Y0 < H && rc == TS_OK; Y0 += BAND) {
        int bh = H - Y0 < BAND ? H - Y0 : BAND;
        for (int r = 0; r < bh; r++) {
            int yi[4];
            float yw[4];
            cubic_taps(Y0 + r, s, h, yi, yw);
            for (int x = 0; x < w; x++)
                row[x] = yw[0] * a[(size_t)yi[0] * w + x] + yw[1] * a[(size_t)yi[1] * w + x] +
                         yw[2] * a[(size_t)yi[2] * w + x] + yw[3] * a[(size_t)yi[3] * w + x];
            for (int X = 0; X < W; X++)
                band[(size_t)r * W + X] = xw[X][0] * row[xi[X][0]] + xw[X][1] * row[xi[X][1]] +
                                          xw[X][2] * row[xi[X][2]] + xw[X][3] * row[xi[X][3]];
        }
        rc = put_block(out, 3, band, 1, 0, Y0, W, bh);
    }
    free(row);
    free(band);
    free(xi);
    free(xw);
    return rc;
}

static int upscale_image(const ts_rdn *m, const ts_image *in, const ts_upscale_opts *opts, ts_image *out,
                         ts_upscale_stats *stats, ts_image *rgba, ts_image *color, ts_image *alpha, float **planes)
{
    int s = ts_rdn_scale(m), w = in->width, h = in->height, rc;
    const ts_image *src = in;
    if (in->channels <= 2) { /* gray: the networks take RGB */
        if ((rc = ts_image_convert(in, in->channels + 2, in->depth, rgba)) < 0)
            return rc;
        src = rgba;
    }
    int has_alpha = src->channels == 4;
    if (has_alpha) {
        if ((rc = ts_image_split_alpha(src, color, alpha)) < 0)
            return rc;
        src = color;
    }
    if ((int64_t)s * w > TS_IMAGE_MAX_SIDE || (int64_t)s * h > TS_IMAGE_MAX_SIDE)
        return ts_fail(TS_ERR_LIMIT, "%dx%d upscaled x%d exceeds %d pixels a side", w, h, s, TS_IMAGE_MAX_SIDE);
    *planes = malloc((size_t)w * h * 3 * sizeof(float));
    if (!*planes)
        return ts_fail(TS_ERR_NOMEM, "no memory for a %dx%d image", w, h);
    ts_image_to_planar(src, TS_RANGE_UNIT, *planes);
    if ((rc = ts_image_alloc(out, s * w, s * h, has_alpha ? 4 : 3, in->depth)) < 0)
        return rc;
    if ((rc = run_tiles(m, *planes, w, h, opts ? opts : &default_opts, image_sink, out, stats)) < 0)
        return rc;
    if (has_alpha) {
        ts_image_to_planar(alpha, TS_RANGE_UNIT, *planes);
        rc = upscale_alpha(*planes, w, h, s, out);
    }
    return rc;
}

int ts_upscale_image(const ts_rdn *m, const ts_image *in, const ts_upscale_opts *opts, ts_image *out,
                     ts_upscale_stats *stats)
{
    ts_image rgba = {0}, color = {0}, alpha = {0};
    float *planes = NULL;
    memset(out, 0, sizeof *out);
    int rc = upscale_image(m, in, opts, out, stats, &rgba, &color, &alpha, &planes);
    ts_image_free(&rgba);
    ts_image_free(&color);
    ts_image_free(&alpha);
    free(planes);
    if (rc < 0)
        ts_image_free(out);
    return rc;
}
