/*
 * Super-resolution of whole images with the UpscalerJS RDN/RRDN models
 * (models/rdn.h): model lookup by name, tiled inference in bounded memory, alpha.
 *
 * Tiles: the input is cut into core tiles; each is run with a margin of
 * ts_rdn_halo() input pixels on every side (clipped at the image border, where the
 * network's own zero padding applies), and only the core of its output is kept.
 * Since no output pixel sees further than the halo, every kept pixel is computed
 * from exactly the inputs the untiled pass would use: tiled == untiled up to float
 * summation order.  Finished tiles go straight into the 8- or 16-bit output image,
 * so memory is the input, the output image and one tile's activations.
 *
 * Alpha never enters the network: it is upscaled on its own with bicubic
 * interpolation (Keys, a = -0.5) and joined back.
 */
#ifndef TS_PIPELINE_UPSCALE_H
#define TS_PIPELINE_UPSCALE_H

#include <stddef.h>
#include <stdint.h>

#include "io/image.h"
#include "models/rdn.h"

/* Activation memory an automatic tile is sized to (ts_upscale_opts.budget = 0). */
#define TS_UPSCALE_DEFAULT_BUDGET ((size_t)1 << 30)

/* Finds model.json of an installed UpscalerJS model: name is default, slim, medium or
 * thick; model_dir is the folder scripts/fetch-models.sh filled (NULL: $TESSERA_MODEL_DIR,
 * else the source tree's models/).  Fails with the available scales, or with a hint to
 * run the fetch script when the package is not installed. */
int ts_upscaler_model_path(const char *model_dir, const char *name, int scale, char *path, size_t size);
/* The unpacked package folder of model `name` (holding models/, assets/, LICENSE). */
int ts_upscaler_package_dir(const char *model_dir, const char *name, char *path, size_t size);

typedef struct {
    int tile;      /* core tile side in input pixels; 0 = the whole image at once; < 0 = automatic */
    size_t budget; /* bytes of activations an automatic tile may take; 0 = TS_UPSCALE_DEFAULT_BUDGET */
    /* called after each tile with input pixels done and in total; may be NULL */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} ts_upscale_opts;

typedef struct {
    int tile;           /* the core tile side used */
    int tiles;          /* how many tiles ran */
    size_t arena_peak;  /* activation bytes at the peak */
} ts_upscale_stats;

/* RGB planar [3, h, w] in [0, 1] to [3, s*h, s*w]: the tiled forward pass on floats. */
int ts_upscale_planar(const ts_rdn *m, const float *in, int w, int h, const ts_upscale_opts *opts, float *out,
                      ts_upscale_stats *stats);

/* Any ts_image (gray or RGB, with or without alpha, 8 or 16 bits) to one `scale` times
 * larger: RGB or RGBA at the input's depth.  stats may be NULL. */
int ts_upscale_image(const ts_rdn *m, const ts_image *in, const ts_upscale_opts *opts, ts_image *out,
                     ts_upscale_stats *stats);

#endif
