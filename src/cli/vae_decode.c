/*
 * tessera vae-decode MODEL --size WxH [options]: decodes a seeded random latent with
 * the VAE in MODEL, untiled or tiled, and reports wall time and peak RSS; -o writes
 * the image.  It exists to measure the tiled VAE (bench/tiled_vae.md) and to try
 * tiling options on a real checkpoint without a diffusion run.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/commands.h"
#include "core/arena.h"
#include "core/error.h"
#include "io/image.h"
#include "io/weights.h"
#include "models/vae.h"
#include "models/vae_tiled.h"

static void vae_decode_usage(FILE *f)
{
    fprintf(f, "usage: tessera vae-decode MODEL --size WxH [--seed N] [--untiled|--naive] [--tile N]\n"
               "                          [--attn-tokens N] [--spill f32|f16] [--spill-dir DIR] [-o OUT.png]\n\n"
               "Decodes a random latent (normal, seeded) of WxH image pixels (multiples of 8) with\n"
               "the VAE in MODEL and prints the time and the peak resident memory.\n\n"
               "  --untiled          the whole-image pass (default: tiled)\n"
               "  --naive            each tile decoded on its own and pasted (no halo, local\n"
               "                     statistics): the seam-prone scheme, a negative control for seams\n"
               "  --tile N           tile side in latent pixels (default %d)\n"
               "  --attn-tokens N    mid-block attention over the whole latent up to N positions,\n"
               "                     per tile beyond (default %d)\n"
               "  --spill f32|f16    precision of the activations stored between layers (default f32: exact)\n"
               "  --spill-dir DIR    where the spill files go (default $TMPDIR or /tmp)\n",
            TS_VAE_TILE_DEFAULT, TS_VAE_ATTN_TOKENS_DEFAULT);
}

/* Standard normal values from a seeded xorshift generator (Box-Muller). */
static void random_normal(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        double u[2];
        for (int k = 0; k < 2; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            u[k] = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        }
        x[i] = (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int write_png(const char *path, const ts_tensor *image)
{
    ts_image img = {0};
    int rc = ts_image_from_planar(image->data, (int)image->shape[1], (int)image->shape[3], (int)image->shape[2], 8,
                                  TS_RANGE_SIGNED, &img);
    rc = rc ? rc : ts_image_write(path, &img, NULL);
    ts_image_free(&img);
    return rc;
}

/* The naive scheme: every tile of the latent decoded independently, pasted into image. */
static int decode_naive(const ts_vae *vae, const ts_tensor *latent, int tile, ts_arena *arena, ts_tensor *image)
{
    int64_t z = latent->shape[1], h = latent->shape[2], w = latent->shape[3], f = (int64_t)1 << (vae->levels - 1);
    *image = ts_arena_tensor(arena, 4, (int64_t[]){1, vae->image_channels, h * f, w * f});
    if (!image->data)
        return TS_ERR_NOMEM;
    for (int64_t y0 = 0; y0 < h; y0 += tile)
        for (int64_t x0 = 0; x0 < w; x0 += tile) {
            int64_t th = y0 + tile < h ? tile : h - y0, tw = x0 + tile < w ? tile : w - x0;
            size_t mark = ts_arena_mark(arena);
            ts_tensor crop = ts_arena_tensor(arena, 4, (int64_t[]){1, z, th, tw}), out;
            if (!crop.data)
                return TS_ERR_NOMEM;
            for (int64_t c = 0; c < z; c++)
                for (int64_t y = 0; y < th; y++)
                    memcpy(crop.data + (c * th + y) * tw, latent->data + (c * h + y0 + y) * w + x0,
                           (size_t)tw * sizeof(float));
            int rc = ts_vae_decode(vae, &crop, arena, &out);
            if (rc)
                return rc;
            for (int64_t c = 0; c < vae->image_channels; c++)
                for (int64_t y = 0; y < th * f; y++)
                    memcpy(image->data + (c * h * f + y0 * f + y) * w * f + x0 * f, out.data + (c * th * f + y) * tw * f,
                           (size_t)(tw * f) * sizeof(float));
            ts_arena_reset(arena, mark);
        }
    return 0;
}

typedef struct {
    const char *model, *out;
    int width, height, untiled, naive;
    uint64_t seed;
    ts_vae_tiling tiling;
} decode_args;

static int decode(const decode_args *a)
{
    ts_weights *wf = NULL;
    ts_vae vae;
    ts_arena *arena = NULL;
    int rc = ts_weights_open(a->model, &wf);
    rc = rc ? rc : ts_vae_load(wf, &vae);
    if (!rc && !(arena = ts_arena_create((size_t)1 << 40)))
        rc = TS_ERR_NOMEM;
    if (rc) {
        ts_weights_close(wf);
        return rc;
    }
    int64_t f = (int64_t)1 << (vae.levels - 1);
    int64_t shape[4] = {1, vae.z_channels, a->height / f, a->width / f};
    ts_tensor latent = ts_arena_tensor(arena, 4, shape), image;
    rc = latent.data ? 0 : TS_ERR_NOMEM;
    if (!rc) {
        random_normal(latent.data, ts_tensor_numel(&latent), a->seed);
        double t0 = now();
        int tile = a->tiling.tile ? a->tiling.tile : TS_VAE_TILE_DEFAULT;
        rc = a->untiled ? ts_vae_decode(&vae, &latent, arena, &image)
             : a->naive ? decode_naive(&vae, &latent, tile, arena, &image)
                        : ts_vae_decode_tiled(&vae, &latent, &a->tiling, arena, &image);
        double t1 = now();
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        if (!rc)
            printf("decoded %lldx%lld (%s) in %.2f s, peak RSS %.0f MiB, arena peak %.0f MiB\n",
                   (long long)image.shape[3], (long long)image.shape[2], a->untiled ? "untiled" : a->naive ? "naive tiles" : "tiled", t1 - t0,
                   (double)ru.ru_maxrss / 1024.0, (double)ts_arena_peak(arena) / 1048576.0);
    }
    if (!rc && a->out)
        rc = write_png(a->out, &image);
    ts_arena_destroy(arena);
    ts_weights_close(wf);
    return rc;
}

int cmd_vae_decode(int argc, char **argv)
{
    decode_args a = {.seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        int bad = 0, takes = 1;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            vae_decode_usage(stdout);
            return 0;
        } else if (strcmp(o, "--untiled") == 0) {
            a.untiled = 1, takes = 0;
        } else if (strcmp(o, "--naive") == 0) {
            a.naive = 1, takes = 0;
        } else if (!v && o[0] == '-') {
            bad = 1;
        } else if (strcmp(o, "--size") == 0) {
            bad = sscanf(v, "%dx%d", &a.width, &a.height) != 2 || a.width < 8 || a.height < 8 || a.width % 8 ||
                  a.height % 8 || a.width > 65536 || a.height > 65536;
        } else if (strcmp(o, "--seed") == 0) {
            a.seed = strtoull(v, &end, 10), bad = *end != 0;
        } else if (strcmp(o, "--tile") == 0) {
            a.tiling.tile = (int)strtol(v, &end, 10), bad = *end || a.tiling.tile < 1;
        } else if (strcmp(o, "--attn-tokens") == 0) {
            a.tiling.attn_tokens = strtoll(v, &end, 10), bad = *end || a.tiling.attn_tokens < 1;
        } else if (strcmp(o, "--spill") == 0) {
            bad = strcmp(v, "f32") != 0 && strcmp(v, "f16") != 0;
            a.tiling.spill = strcmp(v, "f16") == 0 ? TS_SPILL_F16 : TS_SPILL_F32;
        } else if (strcmp(o, "--spill-dir") == 0) {
            a.tiling.spill_dir = v;
        } else if (strcmp(o, "-o") == 0) {
            a.out = v;
        } else if (o[0] == '-' || a.model) {
            bad = 1;
        } else {
            a.model = o, takes = 0;
        }
        if (bad) {
            fprintf(stderr, "tessera vae-decode: bad argument '%s'%s%s\n", o, v && takes ? " " : "", v && takes ? v : "");
            return 2;
        }
        i += takes;
    }
    if (!a.model || !a.width) {
        vae_decode_usage(stderr);
        return 2;
    }
    if (decode(&a)) {
        fprintf(stderr, "tessera vae-decode: %s\n", ts_error_message());
        return 1;
    }
    return 0;
}
