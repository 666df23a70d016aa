/*
 * Never losing an SD run, on the tiny pipeline_sd15 checkpoint: a run cancelled at a
 * step boundary, or whose VAE decode runs out of memory, hands over a state from
 * which ts_sd_generate finishes with the uninterrupted run's image bit for bit, for
 * every sampler, in txt2img and in inpainting (which re-noises the init latent with
 * the initial noise at every call).  A decode that only fits tiled is done tiled.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pipeline/sd.h"
#include "test.h"

enum { W = 64, H = 48, STEPS = 4, T = 5 };
#define LATENT (4 * (H / 8) * (W / 8))
#define PIXELS (3 * W * H)

static ts_sd_model *model;
static float context[2][T * 768], image[PIXELS], mask[W * H];

/* A deep copy of the state a stopped run handed over. */
typedef struct {
    ts_run_state s;
    float x[LATENT], prev[LATENT];
    int stops;
} kept;

static void keep(void *ctx, const ts_run_state *s)
{
    kept *k = ctx;
    CHECK(ts_run_state_numel(s) == LATENT);
    k->s = *s;
    memcpy(k->x, s->x, sizeof k->x);
    k->s.x = k->x;
    if (s->prev) {
        memcpy(k->prev, s->prev, sizeof k->prev);
        k->s.prev = k->prev;
    }
    k->stops++;
}

static const int cancel_at = 2;

static int cancel(void *ctx, int done, int steps)
{
    (void)ctx;
    (void)steps;
    return done == cancel_at;
}

static int load(void)
{
    if (model)
        return 0;
    char path[512];
    const char *shared = getenv("TESSERA_SHARED");
    snprintf(path, sizeof path, "%s/golden/pipeline_sd15/model.safetensors", shared ? shared : "../shared");
    ts_sd_files files = {.model = path, .unet = {.num_heads = 2}, .clip_heads = 2};
    if (ts_sd_load(&files, &model) != 0)
        return -1;
    unsigned long long seed = 7;
    int dim = ts_unet_context_dim(model->unet);
    CHECK(dim <= 768);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < T * dim; i++)
            context[b][i] = test_randf(&seed);
    for (int i = 0; i < PIXELS; i++)
        image[i] = test_randf(&seed);
    for (int i = 0; i < W * H; i++)
        mask[i] = (i % W) >= W / 3;
    return 0;
}

static ts_sd_request request(ts_sampler sampler, ts_sd_mode mode)
{
    int dim = ts_unet_context_dim(model->unet);
    ts_sd_request r = {.mode = mode, .width = W, .height = H, .steps = STEPS, .sampler = sampler,
                       .scheduler = TS_SCHED_KARRAS, .cfg = 5.0, .strength = 1.0, .seed = 42};
    r.cond.context = ts_tensor_view(context[0], 3, (int64_t[]){1, T, dim});
    r.uncond.context = ts_tensor_view(context[1], 3, (int64_t[]){1, T, dim});
    if (mode == TS_SD_INPAINT) {
        r.image = image;
        r.mask = mask;
    }
    return r;
}

static float *generate(const ts_sd_request *r, size_t arena_bytes, int want)
{
    static float out[PIXELS];
    ts_arena *arena = ts_arena_create(arena_bytes);
    CHECK(arena != NULL);
    int rc = ts_sd_generate(model, r, arena, out);
    CHECK_MSG(rc == want, "status %d, expected %d: %s", rc, want, ts_error_message());
    ts_arena_destroy(arena);
    return out;
}

#define ROOMY ((size_t)1 << 30)

static void test_cancelled_runs_finish_exactly(void)
{
    if (load() != 0) {
        printf("skip (no pipeline_sd15 case: %s)\n", ts_error_message());
        return;
    }
    static float whole[PIXELS];
    for (int mode = 0; mode < 2; mode++)
        for (int k = 0; k < TS_SAMPLER_COUNT; k++) {
            ts_sd_request r = request((ts_sampler)k, mode ? TS_SD_INPAINT : TS_SD_TXT2IMG);
            memcpy(whole, generate(&r, ROOMY, 0), sizeof whole);
            kept st = {0};
            r.progress = cancel;
            r.resume = (ts_sd_resume){.on_stop = keep, .ctx = &st};
            generate(&r, ROOMY, TS_ERR_CANCELLED);
            CHECK(st.stops == 1 && st.s.step == cancel_at && !strcmp(st.s.phase, "sample"));
            CHECK(st.s.has_rng && st.s.prev != NULL);
            r.progress = NULL;
            r.resume = (ts_sd_resume){.from = &st.s};
            const float *resumed = generate(&r, ROOMY, 0);
            CHECK_MSG(memcmp(resumed, whole, sizeof whole) == 0, "%s, %s", ts_sampler_name((ts_sampler)k),
                      mode ? "inpaint" : "txt2img");
        }
}

/* Arena sizes for this model at 64x48: a UNet call needs ~0.3 MiB, the tiled decode
 * ~1.2 MiB, the untiled one ~1.9 MiB. */
static void test_decode_out_of_memory(void)
{
    if (load() != 0)
        return;
    static float whole[PIXELS];
    ts_sd_request r = request(TS_SAMPLER_DPMPP_2M, TS_SD_TXT2IMG);
    memcpy(whole, generate(&r, ROOMY, 0), sizeof whole);

    /* Room for neither decode: the run is kept with its final latent. */
    kept st = {0};
    r.resume = (ts_sd_resume){.on_stop = keep, .ctx = &st};
    generate(&r, 600 << 10, TS_ERR_NOMEM);
    CHECK(st.stops == 1 && !strcmp(st.s.phase, "decode") && st.s.step == STEPS && !st.s.prev);
    r.resume = (ts_sd_resume){.from = &st.s};
    CHECK(memcmp(generate(&r, ROOMY, 0), whole, sizeof whole) == 0);

    /* Room for the tiled decode only: it takes over, equal up to float rounding. */
    r.resume = (ts_sd_resume){.on_stop = keep, .ctx = &st};
    const float *tiled = generate(&r, 1500 << 10, 0);
    CHECK(st.stops == 1);
    double worst = 0;
    for (int i = 0; i < PIXELS; i++)
        worst = fmax(worst, fabs(tiled[i] - whole[i]));
    CHECK_MSG(worst < 1e-4, "tiled decode differs by %g", worst);
    ts_arena *small = ts_arena_create(1500 << 10);
    ts_tensor lat = ts_tensor_view(st.x, 4, (int64_t[]){1, 4, H / 8, W / 8}), out;
    CHECK(ts_vae_decode(&model->vae, &lat, small, &out) == TS_ERR_NOMEM); /* so the fallback did run */
    ts_arena_destroy(small);
}

/* A state from another request is refused before any work. */
static void test_mismatched_state_refused(void)
{
    if (load() != 0)
        return;
    static float x[LATENT];
    ts_run_state s = {.phase = "sample", .steps = STEPS, .shape = {1, 4, H / 8, W / 8}, .x = x, .has_rng = 1};
    ts_sd_request r = request(TS_SAMPLER_EULER, TS_SD_TXT2IMG);
    r.resume.from = &s;
    generate(&r, ROOMY, 0);
    s.steps = STEPS + 1;
    generate(&r, ROOMY, TS_ERR_ARG);
    s.steps = STEPS;
    s.shape[3] = W / 16;
    generate(&r, ROOMY, TS_ERR_ARG);
    s.shape[3] = W / 8;
    s.step = 2; /* no history */
    generate(&r, ROOMY, TS_ERR_ARG);
    memcpy(s.phase, "upscale", 8);
    generate(&r, ROOMY, TS_ERR_ARG);
    memcpy(s.phase, "decode", 7);
    generate(&r, ROOMY, TS_ERR_ARG); /* a decode state is at the last step */
}

TEST_MAIN(TEST(test_cancelled_runs_finish_exactly), TEST(test_decode_out_of_memory),
          TEST(test_mismatched_state_refused))
