/*
 * Exact tiled AutoencoderKL encode and decode in bounded memory.
 *
 * The image is cut into a grid of tiles (a square of `tile` latent pixels, scaled
 * to every layer's resolution) and the network runs layer by layer in lockstep over
 * the tiles.  Every convolution reads its tile plus the halo its kernel needs (one
 * pixel for a 3x3) from the full previous activation, so zero padding happens only
 * at the true image border; every GroupNorm uses statistics gathered over all tiles'
 * interiors.  The result equals the untiled pass up to float rounding of the
 * statistics: tiles have no seams and no tone shift.
 *
 * The activation between two layers lives in a spill store: an unlinked temporary
 * file in `spill_dir`, read and written with pread/pwrite, so it sits in the page
 * cache (or on disk under memory pressure) and never in the process's resident
 * set.  RAM holds one tile's working set, the weights, the input and the output.
 *
 * The mid-block attention is global: over the whole latent while it has at most
 * `attn_tokens` positions (its cost grows with the square of that), and within each
 * tile beyond, which is an approximation (the only one; see docs in vae_tiled.c).
 */
#ifndef TS_MODELS_VAE_TILED_H
#define TS_MODELS_VAE_TILED_H

#include "core/arena.h"
#include "core/tensor.h"
#include "models/vae.h"

#define TS_VAE_TILE_DEFAULT 64            /* latent pixels: 512 image pixels */
#define TS_VAE_ATTN_TOKENS_DEFAULT 16384 /* 128x128 latent: exact attention up to 1024x1024 images */

typedef enum {
    TS_SPILL_F32, /* exact: tiled == untiled up to rounding of the statistics */
    TS_SPILL_F16, /* half the disk and I/O; each stored activation rounds to 11 bits */
} ts_spill_precision;

typedef struct {
    int tile;              /* tile side in latent pixels; 0 = TS_VAE_TILE_DEFAULT */
    int64_t attn_tokens;   /* attention over the whole latent up to this many positions; 0 = default */
    ts_spill_precision spill;
    const char *spill_dir; /* NULL = $TMPDIR, else /tmp */
} ts_vae_tiling;

/* As ts_vae_decode, tiled; opts may be NULL (defaults). */
int ts_vae_decode_tiled(const ts_vae *vae, const ts_tensor *latent, const ts_vae_tiling *opts, ts_arena *arena,
                        ts_tensor *image);
/* As ts_vae_decode_tiled, into caller memory: image [N, 3, 8h, 8w] floats, so a
 * large picture exists once. */
int ts_vae_decode_tiled_into(const ts_vae *vae, const ts_tensor *latent, const ts_vae_tiling *opts, ts_arena *arena,
                             float *image);
/* As ts_vae_encoder_forward, tiled. */
int ts_vae_encoder_forward_tiled(const ts_vae *vae, const ts_tensor *image, const ts_vae_tiling *opts,
                                 ts_arena *arena, ts_tensor *out);
/* As ts_vae_encode, tiled. */
int ts_vae_encode_tiled(const ts_vae *vae, const ts_tensor *image, const ts_vae_tiling *opts, ts_arena *arena,
                        ts_tensor *moments);

#endif
