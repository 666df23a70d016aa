/*
 * Tiled denoising in the SD pipeline with an SDXL UNet (the unet_sdxl golden model):
 * every tile's vector conditioning tells the truth about the crop (original size =
 * the canvas, crop = the tile's corner in pixels, target = the tile), each branch
 * keeps its own pooled text, and a canvas of one tile makes one UNet call per step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden_file.h"
#include "models/family.h"
#include "pipeline/sd.h"
#include "test.h"

enum { MAX_ROWS = 64 };

typedef struct {
    int calls, rows, adm;
    float y[MAX_ROWS * 1568];
} vectors;

static void keep_first_step(void *ctx, const char *name, int step, const ts_tensor *t)
{
    vectors *v = ctx;
    (void)step;
    if (strcmp(name, "vector") != 0)
        return;
    v->calls++;
    v->adm = (int)t->shape[1];
    for (int64_t r = 0; r < t->shape[0] && v->rows < MAX_ROWS; r++, v->rows++)
        memcpy(v->y + (size_t)v->rows * v->adm, t->data + r * v->adm, (size_t)v->adm * sizeof(float));
}

static ts_sd_model *load_sdxl_unet(ts_weights **wf)
{
    *wf = test_open_golden_weights("unet_sdxl", "model.safetensors");
    if (!*wf)
        return NULL;
    ts_model_info info;
    ts_family_detect(*wf, &info);
    ts_sd_model *m = calloc(1, sizeof *m);
    ts_unet_config cfg = {.head_channels = 16};
    if (ts_unet_load(*wf, info.comp[TS_COMP_UNET].prefix, cfg, &m->unet)) {
        free(m);
        return NULL;
    }
    m->family = TS_FAMILY_SDXL;
    m->prediction = TS_PRED_EPS;
    ts_noise_ddpm(&m->schedule, 0.00085, 0.012);
    m->latent = (ts_latent_format){0.13025f, 0.0f};
    m->native_size = 1024;
    m->size_multiple = 8 * ts_unet_size_multiple(m->unet);
    return m;
}

static void test_sdxl_tile_vectors(void)
{
    ts_weights *wf = NULL;
    ts_sd_model *m = load_sdxl_unet(&wf);
    CHECK(m != NULL);
    if (!m)
        return;
    int ctx_dim = ts_unet_context_dim(m->unet), adm = ts_unet_adm_channels(m->unet), pooled = adm - 1536;
    float *context = calloc((size_t)77 * ctx_dim, sizeof(float)), *pool_c = malloc(sizeof(float) * pooled);
    float *pool_u = malloc(sizeof(float) * pooled);
    for (int i = 0; i < pooled; i++) {
        pool_c[i] = (float)sin(i + 1.0);
        pool_u[i] = (float)cos(i + 1.0);
    }
    ts_sd_cond cond = {ts_tensor_view(context, 3, (int64_t[]){1, 77, ctx_dim}), pool_c, pooled};
    ts_sd_cond uncond = {ts_tensor_view(context, 3, (int64_t[]){1, 77, ctx_dim}), pool_u, pooled};
    /* 160x96 px = 20x12 latent; tiles of 8 overlapping by 4: 4 x 2 tiles, 2 per call. */
    ts_sd_request r = {.mode = TS_SD_TXT2IMG, .width = 160, .height = 96, .steps = 1, .cfg = 5,
                       .sampler = TS_SAMPLER_EULER, .cond = cond, .uncond = uncond, .seed = 3,
                       .tiling = {8, 4, 2, TS_TILE_BLEND_GAUSSIAN}, .probe = keep_first_step};
    vectors *v = calloc(1, sizeof *v);
    r.probe_ctx = v;
    ts_arena *arena = ts_arena_create((size_t)1 << 30);
    float *x = malloc(sizeof(float) * 4 * 20 * 12);
    CHECK(ts_sd_sample(m, &r, arena, x) == 0);
    ts_tile_plan plan;
    CHECK(ts_tile_plan_init(&plan, 12, 20, &r.tiling, m->size_multiple / 8) == 0);
    CHECK_MSG(v->calls == (plan.count + 1) / 2, "%d calls for %d tiles", v->calls, plan.count);
    CHECK(v->rows == 2 * plan.count && v->adm == adm);
    float *want = malloc(sizeof(float) * adm);
    for (int t = 0; t < plan.count && t < v->rows / 2; t++)
        for (int b = 0; b < 2; b++) {
            const ts_tile *o = &plan.tiles[t];
            int64_t sizes[6] = {96, 160, 8 * o->y, 8 * o->x, 8 * plan.th, 8 * plan.tw};
            ts_sdxl_vector(b ? pool_u : pool_c, 1, pooled, sizes, want);
            CHECK_MSG(memcmp(want, v->y + (size_t)(2 * t + b) * adm, sizeof(float) * adm) == 0,
                      "tile %d (%d,%d) branch %d", t, o->y, o->x, b);
        }
    /* One tile of the whole canvas: the untiled vector, one call. */
    memset(v, 0, sizeof *v);
    r.tiling = (ts_tile_config){0};
    CHECK(ts_sd_sample(m, &r, arena, x) == 0);
    int64_t whole[6] = {96, 160, 0, 0, 96, 160};
    ts_sdxl_vector(pool_c, 1, pooled, whole, want);
    CHECK(v->calls == 1 && memcmp(want, v->y, sizeof(float) * adm) == 0);
    ts_tile_plan_free(&plan);
    free(want);
    free(x);
    free(v);
    ts_arena_destroy(arena);
    free(context);
    free(pool_c);
    free(pool_u);
    ts_unet_free(m->unet);
    free(m);
    ts_weights_close(wf);
}

TEST_MAIN(TEST(test_sdxl_tile_vectors))
