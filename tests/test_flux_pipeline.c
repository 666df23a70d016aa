/*
 * Flux pipeline tests beyond the pipeline_flux golden case (which checks the
 * stored-noise path number by number): the seeded path draws exactly the torch
 * noise it documents, the bundle refuses mismatched parts, and bad requests fail
 * with an error instead of running.  Uses the tiny models of the golden case.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pipeline/flux.h"
#include "sample/rng.h"
#include "test.h"

#define H 32
#define W 48
#define LAT (16 * (H / 8) * (W / 8))

static char paths[4][4096];

static ts_flux_files case_files(void)
{
    const char *s = getenv("TESSERA_SHARED");
    const char *names[4] = {"model", "ae", "clip_l", "t5"};
    for (int i = 0; i < 4; i++)
        snprintf(paths[i], sizeof paths[i], "%s/golden/pipeline_flux/%s.safetensors", s ? s : "../shared",
                 names[i]);
    /* The tiny model's RoPE split and CLIP heads (case.json config). */
    return (ts_flux_files){.model = paths[0], .ae = paths[1], .clip_l = paths[2], .t5 = paths[3],
                           .flux = {.n_axes = 3, .axes_dim = {8, 12, 12}, .theta = 10000.0}, .clip_heads = 2};
}

/* One prompt's conditioning from fixed ids (contents do not matter here). */
static int encode(const ts_flux_model *m, ts_arena *arena, ts_flux_cond *cond)
{
    int32_t t5[16], clip[8] = {49406, 320, 2368, 49407, 49407, 49407, 49407, 49407};
    for (int i = 0; i < 16; i++)
        t5[i] = i < 5 ? 2 + 17 * i : i == 5 ? 1 : 0;
    return ts_flux_encode_ids(m, t5, 16, clip, 8, arena, cond);
}

static void test_seed_is_torch_noise(void)
{
    ts_flux_files files = case_files();
    ts_flux_model *m = NULL;
    ts_arena *arena = ts_arena_create((size_t)1 << 28);
    ts_flux_cond cond;
    CHECK(ts_flux_model_load(&files, &m) == 0);
    if (!m)
        return;
    CHECK(encode(m, arena, &cond) == 0);
    float *noise = malloc(LAT * sizeof *noise), *lat[2], *img[2];
    ts_mt19937 g;
    ts_mt19937_seed(&g, 1234);
    CHECK(ts_torch_randn(&g, noise, LAT) == 0);
    for (int k = 0; k < 2; k++) {
        lat[k] = malloc(LAT * sizeof(float));
        img[k] = malloc(3 * H * W * sizeof(float));
        ts_flux_request r = {.width = W, .height = H, .steps = 2, .cond = &cond, .seed = 1234,
                             .noise = k ? noise : NULL};
        CHECK(ts_flux_generate(m, &r, arena, lat[k], img[k]) == 0);
    }
    CHECK(memcmp(lat[0], lat[1], LAT * sizeof(float)) == 0);
    CHECK(memcmp(img[0], img[1], 3 * H * W * sizeof(float)) == 0);
    /* Sampling moved the latent away from the noise it started from. */
    double moved = 0;
    for (int i = 0; i < LAT; i++)
        moved += fabs((double)lat[0][i] - noise[i]);
    CHECK(moved > 1e-3 * LAT);
    for (int k = 0; k < 2; k++) {
        free(lat[k]);
        free(img[k]);
    }
    free(noise);
    ts_arena_destroy(arena);
    ts_flux_model_free(m);
}

static void test_bad_requests_fail(void)
{
    ts_flux_files files = case_files();
    ts_flux_model *m = NULL;
    ts_arena *arena = ts_arena_create((size_t)1 << 28);
    ts_flux_cond cond;
    CHECK(ts_flux_model_load(&files, &m) == 0);
    if (!m)
        return;
    CHECK(encode(m, arena, &cond) == 0);
    float lat[LAT], img[3 * H * W];
    ts_flux_request ok = {.width = W, .height = H, .steps = 1, .cond = &cond};
    ts_flux_request r = ok;
    r.width = 40; /* not a multiple of 16 */
    CHECK(ts_flux_generate(m, &r, arena, lat, img) == TS_ERR_ARG);
    r = ok;
    r.steps = 0;
    CHECK(ts_flux_generate(m, &r, arena, lat, img) == TS_ERR_ARG);
    ts_flux_cond narrow = cond;
    narrow.vec.shape[1] = 16;
    r = ok;
    r.cond = &narrow;
    CHECK(ts_flux_generate(m, &r, arena, lat, img) == TS_ERR_ARG);
    r.cond = NULL;
    CHECK(ts_flux_generate(m, &r, arena, lat, img) == TS_ERR_ARG);
    /* The T5 file where the CLIP file belongs: named, not crashed on. */
    ts_flux_model_free(m);
    files.clip_l = files.t5;
    CHECK(ts_flux_model_load(&files, &m) == 0);
    CHECK(m && encode(m, arena, &cond) < 0);
    ts_flux_model_free(m);
    /* The transformer given as the AutoEncoder. */
    files = case_files();
    files.ae = files.model;
    m = NULL;
    CHECK(ts_flux_model_load(&files, &m) < 0 && m == NULL);
    ts_arena_destroy(arena);
}

TEST_MAIN(TEST(test_seed_is_torch_noise), TEST(test_bad_requests_fail))
