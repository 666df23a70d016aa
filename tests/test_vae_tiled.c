/*
 * Tiled VAE vs the untiled pass, on the tiny vae_kl golden model at sizes where the
 * tile grid matters (a 64x48 latent is 4x3 tiles of 16; 23x17 has ragged tiles of
 * 7): the tiled result must equal the untiled one to float rounding (largest
 * difference printed, bound 1e-5 of the output's range), for decode, encode,
 * batches and ragged grids.  f16 spill is an approximation that must stay within
 * 1e-2 but measurably differ; per-tile attention must differ and stay finite (on
 * this random-weight model its error is large, ~0.6 of the range: it is a real
 * approximation, hence exact attention up to the token limit).  The arena's high
 * water mark of a 16-tile decode is a fraction of the untiled one.  A spill
 * directory that does not exist is an error, not a crash.
 */
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "io/weights.h"
#include "models/vae.h"
#include "models/vae_tiled.h"
#include "test.h"

static ts_weights *model;
static ts_vae vae;
static ts_arena *arena;

static int setup(void)
{
    if (model)
        return 1;
    const char *shared = getenv("TESSERA_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/vae_kl/model.safetensors", shared ? shared : "../shared");
    int rc = ts_weights_open(path, &model);
    rc = rc ? rc : ts_vae_load(model, &vae);
    CHECK_MSG(rc == 0, "cannot load %s: %s", path, ts_error_message());
    if (rc)
        return 0;
    arena = ts_arena_create((size_t)4 << 30);
    return arena != NULL;
}

/* Deterministic values in [-1, 1]: smooth waves plus hash noise, so features vary
 * across tiles (a constant input would hide misplaced tiles). */
static ts_tensor pattern(int64_t b, int64_t c, int64_t h, int64_t w, float noise)
{
    int64_t shape[4] = {b, c, h, w};
    ts_tensor t = ts_arena_tensor(arena, 4, shape);
    uint32_t s = 12345;
    for (int64_t i = 0; i < ts_tensor_numel(&t); i++) {
        int64_t x = i % w, y = i / w % h, ch = i / (w * h);
        s = s * 1664525u + 1013904223u;
        float r = (float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
        t.data[i] = 0.6f * sinf(0.37f * (float)x + 0.9f * (float)ch) * cosf(0.23f * (float)y) + noise * r;
    }
    return t;
}

/* Largest |a - b| relative to the largest |a|; infinite when b is not finite. */
static double rel_diff(const ts_tensor *a, const ts_tensor *b)
{
    double diff = 0.0, range = 0.0;
    for (int64_t i = 0; i < ts_tensor_numel(a); i++) {
        if (!isfinite(b->data[i]))
            return INFINITY;
        diff = fmax(diff, fabs((double)a->data[i] - b->data[i]));
        range = fmax(range, fabs((double)a->data[i]));
    }
    return diff / range;
}

static int same_shape(const ts_tensor *a, const ts_tensor *b)
{
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof a->shape) == 0;
}

/* Tiled decode of `latent` vs the untiled `ref`; returns the relative difference or -1. */
static double decode_diff(const ts_tensor *latent, const ts_tensor *ref, const ts_vae_tiling *opts, const char *label)
{
    size_t mark = ts_arena_mark(arena);
    ts_tensor got;
    int rc = ts_vae_decode_tiled(&vae, latent, opts, arena, &got);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    double d = rc == 0 && same_shape(ref, &got) ? rel_diff(ref, &got) : -1;
    printf("  %s: decode [%lld, %lld, %lld, %lld] -> largest difference %.3g of the output range\n", label,
           (long long)latent->shape[0], (long long)latent->shape[1], (long long)latent->shape[2],
           (long long)latent->shape[3], d);
    ts_arena_reset(arena, mark);
    return d;
}

/* The untiled decode, the reference. */
static int decode_ref(const ts_tensor *latent, ts_tensor *ref)
{
    int rc = ts_vae_decode(&vae, latent, arena, ref);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    return rc == 0;
}

/* Tiled decode of a [batch, 4, h, w] latent must equal the untiled one to rounding. */
static void check_exact_decode(int64_t batch, int64_t h, int64_t w, int tile, const char *label)
{
    if (!setup())
        return;
    size_t mark = ts_arena_mark(arena);
    ts_tensor latent = pattern(batch, 4, h, w, 0.8f), ref;
    if (decode_ref(&latent, &ref)) {
        double d = decode_diff(&latent, &ref, &(ts_vae_tiling){.tile = tile}, label);
        CHECK(d >= 0 && d < 1e-5);
    }
    ts_arena_reset(arena, mark);
}

static void test_decode_matches_untiled(void) { check_exact_decode(1, 64, 48, 16, "tile 16"); }
static void test_ragged_tiles_and_batch(void) { check_exact_decode(2, 23, 17, 7, "tile 7, batch 2"); }

/* The point of tiling: the working set follows the tile, not the image. */
static void test_working_set_follows_the_tile(void)
{
    if (!setup())
        return;
    size_t mark = ts_arena_mark(arena);
    ts_tensor latent = pattern(1, 4, 32, 32, 0.8f), out;
    ts_arena *whole = ts_arena_create((size_t)1 << 30), *tiled = ts_arena_create((size_t)1 << 30);
    CHECK(whole && tiled);
    if (whole && tiled) {
        CHECK(ts_vae_decode(&vae, &latent, whole, &out) == 0);
        CHECK(ts_vae_decode_tiled(&vae, &latent, &(ts_vae_tiling){.tile = 8}, tiled, &out) == 0);
        size_t image = (size_t)ts_tensor_numel(&out) * sizeof(float);
        printf("  arena peak: untiled %zu KiB, 16 tiles %zu KiB (output %zu KiB)\n", ts_arena_peak(whole) >> 10,
               ts_arena_peak(tiled) >> 10, image >> 10);
        CHECK(ts_arena_peak(tiled) - image < (ts_arena_peak(whole) - image) / 8);
    }
    ts_arena_destroy(whole);
    ts_arena_destroy(tiled);
    ts_arena_reset(arena, mark);
}

static void test_encode_matches_untiled(void)
{
    if (!setup())
        return;
    size_t mark = ts_arena_mark(arena);
    ts_tensor image = pattern(1, 3, 256, 192, 0.2f), ref, got;
    int rc = ts_vae_encode(&vae, &image, arena, &ref);
    rc = rc ? rc : ts_vae_encode_tiled(&vae, &image, &(ts_vae_tiling){.tile = 10}, arena, &got);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (rc == 0) {
        CHECK(same_shape(&ref, &got) && got.shape[1] == 8 && got.shape[2] == 32 && got.shape[3] == 24);
        double d = rel_diff(&ref, &got);
        printf("  tile 10: encode [1, 3, 256, 192] -> largest difference %.3g of the output range\n", d);
        CHECK(d < 1e-5);
    }
    ts_arena_reset(arena, mark);
}

/* The approximate modes: close to exact, but not equal (so the option is honoured). */
static void test_f16_spill_and_tile_attention(void)
{
    if (!setup())
        return;
    size_t mark = ts_arena_mark(arena);
    ts_tensor latent = pattern(1, 4, 24, 24, 0.8f), ref;
    if (decode_ref(&latent, &ref)) {
        double d = decode_diff(&latent, &ref, &(ts_vae_tiling){.tile = 12, .spill = TS_SPILL_F16}, "f16 spill");
        CHECK(d > 1e-6 && d < 1e-2);
        d = decode_diff(&latent, &ref, &(ts_vae_tiling){.tile = 12, .attn_tokens = 576 - 1}, "per-tile attention");
        CHECK(d > 1e-6 && isfinite(d)); /* an approximation: runs, and is not the exact path */
        d = decode_diff(&latent, &ref, &(ts_vae_tiling){.tile = 12, .attn_tokens = 576}, "attention at the limit");
        CHECK(d >= 0 && d < 1e-5);
    }
    ts_arena_reset(arena, mark);
}

static void test_bad_spill_dir_fails(void)
{
    if (!setup())
        return;
    size_t mark = ts_arena_mark(arena);
    ts_tensor latent = pattern(1, 4, 8, 8, 0.5f), out;
    ts_vae_tiling opts = {.tile = 4, .spill_dir = "/nonexistent/tessera-spill"};
    size_t before = ts_arena_mark(arena);
    int rc = ts_vae_decode_tiled(&vae, &latent, &opts, arena, &out);
    CHECK(rc == TS_ERR_IO);
    CHECK(strstr(ts_error_message(), "/nonexistent/tessera-spill") != NULL);
    CHECK(ts_arena_mark(arena) == before); /* a failed pass releases what it took */
    ts_tensor wrong = pattern(1, 3, 8, 8, 0.5f);
    CHECK(ts_vae_decode_tiled(&vae, &wrong, NULL, arena, &out) == TS_ERR_ARG);
    ts_arena_reset(arena, mark);
}

TEST_MAIN(TEST(test_decode_matches_untiled), TEST(test_ragged_tiles_and_batch), TEST(test_working_set_follows_the_tile),
          TEST(test_encode_matches_untiled),
          TEST(test_f16_spill_and_tile_attention), TEST(test_bad_spill_dir_fails))
