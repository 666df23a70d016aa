/*
 * SD3 pipeline tests on the tiny bundle tests/cli/sd3_fixture.py builds from golden
 * parts (registered as the ctest fixture "sd3"; skipped when it is absent):
 *   - the conditioning layout against a computation done here tower by tower from
 *     the reference tokenizer's ids of the golden cases: [CLIP-L | CLIP-G | zeros]
 *     rows, then T5's rows (or zeros), pooled = [L | G];
 *   - img2img at strength 1 is txt2img from the same noise (sigma0 = 1); inpainting
 *     with an all-zero mask returns the decode of the input's latent (the denoised
 *     estimate is the latent everywhere, so flow Euler must land on it exactly and the
 *     latent format must round trip);
 *   - seeds reproduce, and bad bundles and requests fail with an error.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden_file.h"
#include "pipeline/sd3.h"
#include "test.h"
#include "text/clip_text.h"
#include "text/t5_encoder.h"
#include "text/t5_tokenizer.h"

#define W 64
#define H 48
#define CLIP_T 77
#define HEADS 4 /* the golden CLIPs' head count */

static char paths[5][4096];

/* sd3, mmdit_vae, clip_l, clip_g, t5 of the fixture; 0 when it has not been built. */
static int fixture(void)
{
    const char *tmp = getenv("TESSERA_TEST_TMP");
    const char *names[5] = {"sd3", "mmdit_vae", "clip_l", "clip_g", "t5"};
    for (int i = 0; i < 5; i++)
        snprintf(paths[i], sizeof paths[i], "%s/sd3_fixture/%s.safetensors", tmp ? tmp : "/tmp", names[i]);
    FILE *f = fopen(paths[0], "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

static ts_sd3_model *load(const ts_sd3_files *files)
{
    ts_sd3_model *m = NULL;
    int rc = ts_sd3_load(files, &m);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    return m;
}

/* Row `row` of a golden case's in.input_ids [B, 77] (int64). */
static void golden_ids(const char *case_name, int row, int32_t *ids)
{
    ts_safetensors *io = test_open_golden(case_name, "io.safetensors");
    const ts_st_tensor *t = io ? ts_st_find(io, "in.input_ids") : NULL;
    CHECK(t && t->dtype == TS_DTYPE_I64 && t->shape[1] == CLIP_T);
    const int64_t *v = t ? ts_st_data(io, t) : NULL;
    for (int i = 0; i < CLIP_T; i++)
        ids[i] = v ? (int32_t)v[(size_t)row * CLIP_T + i] : 0;
    ts_st_close(io);
}

/* One tower by itself: penultimate hidden states (no final norm) and pooled output. */
static void tower(const char *path, const int32_t *ids, int unprojected, ts_arena *arena, ts_tensor *hidden,
                  ts_tensor *pooled)
{
    ts_weights *wf = NULL;
    ts_clip_text clip;
    ts_clip_load_opts opts = {.heads = HEADS};
    CHECK(ts_weights_open(path, &wf) == 0);
    CHECK(wf && ts_clip_text_load(wf, "", &opts, &clip) == 0);
    if (unprojected) {
        clip.proj.data = NULL;
        clip.proj_dim = clip.width;
    }
    ts_clip_text_opts run = {.clip_skip = 2, .final_norm = 0};
    CHECK(ts_clip_text_forward(&clip, ids, 1, CLIP_T, &run, arena, hidden, pooled) == 0);
    ts_weights_close(wf);
}

/* T5 of the fixture on the prompt padded to 77 ids. */
static void t5_rows(const char *prompt, ts_arena *arena, ts_tensor *out)
{
    int32_t ids[CLIP_T];
    CHECK(ts_t5_tokenize(ts_t5_tokenizer_default(), prompt, ids, CLIP_T, NULL) == 0);
    ts_weights *wf = NULL;
    ts_t5_encoder enc;
    CHECK(ts_weights_open(paths[4], &wf) == 0);
    CHECK(wf && ts_t5_load(wf, NULL, &enc) == 0);
    CHECK(ts_t5_forward(&enc, ids, NULL, 1, CLIP_T, arena, out) == 0);
    ts_weights_close(wf);
}

/* The conditioning of prompt (golden row `row`) built by the rule, into ctx [154, D], pooled. */
static void expected(const char *prompt, int row, int with_t5, int dim, float *ctx, float *pooled)
{
    ts_arena *arena = ts_arena_create((size_t)1 << 30);
    int32_t ids_l[CLIP_T], ids_g[CLIP_T];
    golden_ids("clip_text_l", row, ids_l); /* padded with 49407 */
    golden_ids("clip_text_g", row, ids_g); /* padded with 0 */
    ts_tensor hl, pl, hg, pg, t5;
    tower(paths[2], ids_l, 1, arena, &hl, &pl);
    tower(paths[3], ids_g, 0, arena, &hg, &pg);
    int64_t wl = hl.shape[2], wg = hg.shape[2];
    memset(ctx, 0, (size_t)2 * CLIP_T * dim * sizeof *ctx);
    for (int t = 0; t < CLIP_T; t++) {
        memcpy(ctx + (size_t)t * dim, hl.data + t * wl, (size_t)wl * sizeof *ctx);
        memcpy(ctx + (size_t)t * dim + wl, hg.data + t * wg, (size_t)wg * sizeof *ctx);
    }
    memcpy(pooled, pl.data, (size_t)pl.shape[1] * sizeof *pooled);
    memcpy(pooled + pl.shape[1], pg.data, (size_t)pg.shape[1] * sizeof *pooled);
    if (with_t5) {
        t5_rows(prompt, arena, &t5);
        memcpy(ctx + (size_t)CLIP_T * dim, t5.data, (size_t)CLIP_T * dim * sizeof *ctx);
    }
    ts_arena_destroy(arena);
}

/* Both prompts of a bundle against the rule: the golden notes_prompts 0 and 1. */
static void check_layout(const ts_sd3_files *files, int with_t5)
{
    ts_sd3_model *m = load(files);
    if (!m)
        return;
    const char *prompts[2] = {"a photograph of an astronaut riding a horse", ""};
    ts_sd3_cond c[2];
    int rc = ts_sd3_encode_prompts(m, prompts[0], prompts[1], 0, c);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    int dim = ts_mmdit_context_dim(m->mmdit), adm = ts_mmdit_adm_channels(m->mmdit);
    float *ctx = malloc((size_t)2 * CLIP_T * dim * sizeof *ctx), *pooled = malloc((size_t)adm * sizeof *pooled);
    for (int i = 0; rc == 0 && i < 2; i++) {
        CHECK(c[i].context.shape[1] == 2 * CLIP_T && c[i].context.shape[2] == dim && c[i].pooled.shape[1] == adm);
        expected(prompts[i], i, with_t5, dim, ctx, pooled);
        double dc = test_max_abs_diff(c[i].context.data, ctx, (size_t)2 * CLIP_T * dim);
        double dp = test_max_abs_diff(c[i].pooled.data, pooled, (size_t)adm);
        CHECK_MSG(dc < 1e-5 && dp < 1e-5, "prompt %d: context max diff %g, pooled %g", i, dc, dp);
        /* The padding columns and (without T5) rows are exactly zero. */
        double pad = 0;
        for (int t = 0; t < 2 * CLIP_T; t++)
            for (int k = t < CLIP_T ? 128 : with_t5 ? dim : 0; k < dim; k++)
                pad = fmax(pad, fabs(c[i].context.data[(size_t)t * dim + k]));
        CHECK_MSG(pad == 0, "prompt %d: padding holds %g", i, pad);
    }
    free(ctx);
    free(pooled);
    ts_sd3_cond_free(&c[0]);
    ts_sd3_cond_free(&c[1]);
    ts_sd3_free(m);
}

static void test_conditioning_single_file(void)
{
    check_layout(&(ts_sd3_files){.model = paths[0], .clip_heads = HEADS}, 1);
}

static void test_conditioning_without_t5(void)
{
    check_layout(&(ts_sd3_files){.model = paths[1], .clip_l = paths[2], .clip_g = paths[3], .clip_heads = HEADS}, 0);
}

/* A long prompt: two CLIP chunks and more than 77 T5 ids; the short negative prompt is
 * padded to the same length (an empty CLIP chunk, T5 ids padded with 0). */
static void test_long_prompt(void)
{
    ts_sd3_model *m = load(&(ts_sd3_files){.model = paths[0], .clip_heads = HEADS});
    if (!m)
        return;
    char prompt[1024] = "";
    for (int i = 0; i < 30; i++)
        strcat(prompt, "a red fox, ");
    int32_t *ids = NULL;
    int n = 0;
    CHECK(ts_t5_encode(ts_t5_tokenizer_default(), prompt, &ids, &n) == 0);
    CHECK(n > CLIP_T);
    ts_sd3_cond c[2];
    CHECK(ts_sd3_encode_prompts(m, prompt, "blurry", 0, c) == 0);
    CHECK(c[0].context.shape[1] == 2 * CLIP_T + n && c[1].context.shape[1] == c[0].context.shape[1]);
    free(ids);
    ts_sd3_cond_free(&c[0]);
    ts_sd3_cond_free(&c[1]);
    ts_sd3_free(m);
}

/* The CLIP-L pooled and penultimate outputs match the golden case itself (same weights). */
static void test_clip_l_matches_golden(void)
{
    ts_arena *arena = ts_arena_create((size_t)1 << 28);
    int32_t ids[CLIP_T];
    golden_ids("clip_text_l", 0, ids);
    ts_tensor h, p;
    tower(paths[2], ids, 1, arena, &h, &p);
    ts_safetensors *io = test_open_golden("clip_text_l", "io.safetensors");
    const ts_st_tensor *want = io ? ts_st_find(io, "out.penultimate") : NULL;
    CHECK(want != NULL);
    if (want)
        CHECK_NEAR(test_max_abs_diff(h.data, ts_st_data(io, want), (size_t)CLIP_T * h.shape[2]), 0, 2e-5);
    ts_st_close(io);
    ts_arena_destroy(arena);
}

typedef struct {
    ts_sd3_model *m;
    ts_sd3_cond c[2];
    float *image, *mask, *noise, *out[2];
    ts_arena *arena;
} run_ctx;

static int setup(run_ctx *r)
{
    memset(r, 0, sizeof *r);
    r->m = load(&(ts_sd3_files){.model = paths[0], .clip_heads = HEADS});
    if (!r->m || ts_sd3_encode_prompts(r->m, "a red fox", "blurry", 0, r->c) != 0)
        return -1;
    size_t px = (size_t)W * H, lat = (size_t)16 * (W / 8) * (H / 8);
    r->image = malloc(3 * px * sizeof(float));
    r->mask = calloc(px, sizeof(float));
    r->noise = malloc(lat * sizeof(float));
    unsigned long long s = 7;
    for (size_t i = 0; i < 3 * px; i++)
        r->image[i] = 0.8f * test_randf(&s);
    for (size_t i = 0; i < lat; i++)
        r->noise[i] = test_randf(&s);
    for (int k = 0; k < 2; k++)
        r->out[k] = malloc(3 * px * sizeof(float));
    r->arena = ts_arena_create((size_t)1 << 30);
    return 0;
}

static void teardown(run_ctx *r)
{
    ts_sd3_cond_free(&r->c[0]);
    ts_sd3_cond_free(&r->c[1]);
    ts_sd3_free(r->m);
    free(r->image);
    free(r->mask);
    free(r->noise);
    free(r->out[0]);
    free(r->out[1]);
    ts_arena_destroy(r->arena);
}

static ts_sd3_request request(run_ctx *r, ts_sd_mode mode)
{
    return (ts_sd3_request){.mode = mode, .width = W, .height = H, .steps = 3, .sampler = TS_SAMPLER_EULER,
                            .scheduler = TS_SCHED_NORMAL, .cfg = 4.5, .strength = 1.0, .cond = &r->c[0],
                            .uncond = &r->c[1], .image = r->image, .mask = r->mask, .seed = 11};
}

static void test_seeds_reproduce(void)
{
    run_ctx r;
    if (setup(&r) == 0) {
        ts_sd3_request q = request(&r, TS_SD_TXT2IMG);
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == 0);
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[1]) == 0);
        CHECK(memcmp(r.out[0], r.out[1], (size_t)3 * W * H * sizeof(float)) == 0);
        q.seed = 12;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[1]) == 0);
        CHECK(test_max_abs_diff(r.out[0], r.out[1], (size_t)3 * W * H) > 1e-3);
    }
    teardown(&r);
}

static void test_img2img_full_strength_is_txt2img(void)
{
    run_ctx r;
    if (setup(&r) == 0) {
        ts_sd3_request q = request(&r, TS_SD_TXT2IMG);
        q.noise = r.noise;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == 0);
        q.mode = TS_SD_IMG2IMG;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[1]) == 0);
        CHECK_NEAR(test_max_abs_diff(r.out[0], r.out[1], (size_t)3 * W * H), 0, 1e-5);
        q.strength = 0.5; /* now the image shows */
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[1]) == 0);
        CHECK(test_max_abs_diff(r.out[0], r.out[1], (size_t)3 * W * H) > 1e-3);
    }
    teardown(&r);
}

/* With nothing to repaint D is the latent at every call, so each Euler step scales
 * x - latent by sigma_next / sigma and the last (sigma 0) lands on the latent: the
 * result is decode(encode(image)). */
static void test_inpaint_empty_mask_keeps_latent(void)
{
    run_ctx r;
    if (setup(&r) == 0) {
        ts_sd3_request q = request(&r, TS_SD_INPAINT);
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == 0);
        ts_tensor in = ts_tensor_view(r.image, 4, (int64_t[]){1, 3, H, W}), moments, dec;
        CHECK(ts_vae_encode(&r.m->vae, &in, r.arena, &moments) == 0);
        ts_tensor mean = ts_tensor_view(moments.data, 4, (int64_t[]){1, 16, H / 8, W / 8});
        CHECK(ts_vae_decode(&r.m->vae, &mean, r.arena, &dec) == 0);
        CHECK_NEAR(test_max_abs_diff(r.out[0], dec.data, (size_t)3 * W * H), 0, 1e-4);
        for (int i = 0; i < W * H; i++)
            r.mask[i] = 1.0f;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[1]) == 0);
        CHECK(test_max_abs_diff(r.out[0], r.out[1], (size_t)3 * W * H) > 1e-3);
    }
    teardown(&r);
}

/* One branch of the MMDiT at sigma: D = x - sigma v. */
static void denoised(run_ctx *r, const ts_sd3_cond *c, const float *x, double sigma, float *d, size_t n)
{
    ts_tensor in = ts_tensor_view((float *)x, 4, (int64_t[]){1, 16, H / 8, W / 8}), v;
    float t = (float)(1000.0 * sigma);
    ts_mmdit_inputs mi = {.x = &in, .timesteps = &t, .context = &c->context, .y = &c->pooled};
    CHECK(ts_mmdit_forward(r->m->mmdit, &mi, r->arena, &v) == 0);
    for (size_t i = 0; i < n; i++)
        d[i] = (float)(x[i] - sigma * v.data[i]);
}

/* One Euler step of img2img, worked out here: x0 = s0 noise + (1 - s0) latent in the
 * MMDiT's space ((mean - 0.0609) * 1.5305), D by guidance over the two prompts run one
 * at a time, and x1 = D since the step ends at sigma 0; then the VAE decode. */
static void test_img2img_one_step(void)
{
    run_ctx r;
    if (setup(&r) == 0) {
        ts_sd3_request q = request(&r, TS_SD_IMG2IMG);
        q.steps = 1;
        q.strength = 0.5;
        q.noise = r.noise;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == 0);
        float sig[2];
        CHECK(ts_schedule_sigmas_denoise(&r.m->schedule, TS_SCHED_NORMAL, 1, 0.5, sig) == 0);
        size_t n = (size_t)16 * (H / 8) * (W / 8);
        ts_tensor in = ts_tensor_view(r.image, 4, (int64_t[]){1, 3, H, W}), moments, dec;
        CHECK(ts_vae_encode(&r.m->vae, &in, r.arena, &moments) == 0);
        float *x = malloc(n * sizeof *x), *dc = malloc(n * sizeof *dc), *du = malloc(n * sizeof *du);
        for (size_t i = 0; i < n; i++)
            x[i] = sig[0] * r.noise[i] + (1 - sig[0]) * (moments.data[i] - 0.0609f) * 1.5305f;
        denoised(&r, &r.c[0], x, sig[0], dc, n);
        denoised(&r, &r.c[1], x, sig[0], du, n);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(du[i] + 4.5 * ((double)dc[i] - du[i])) / 1.5305f + 0.0609f;
        ts_tensor lat = ts_tensor_view(x, 4, (int64_t[]){1, 16, H / 8, W / 8});
        CHECK(ts_vae_decode(&r.m->vae, &lat, r.arena, &dec) == 0);
        CHECK_NEAR(test_max_abs_diff(r.out[0], dec.data, (size_t)3 * W * H), 0, 1e-4);
        free(x);
        free(dc);
        free(du);
    }
    teardown(&r);
}

/* Requests that cannot run fail before any work, with the image left alone. */
static void test_bad_requests(void)
{
    run_ctx r;
    if (setup(&r) == 0) {
        ts_sd3_request base = request(&r, TS_SD_IMG2IMG), q;
        r.out[0][0] = 42.0f;
        q = base, q.uncond = NULL;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == TS_ERR_ARG);
        q.cfg = 1.0; /* no unconditional branch: fine */
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[1]) == 0);
        q = base, q.steps = 0;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == TS_ERR_ARG);
        q = base, q.strength = 0;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == TS_ERR_ARG);
        q = base, q.image = NULL;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == TS_ERR_ARG);
        q = base, q.mode = TS_SD_INSTRUCT;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == TS_ERR_UNSUPPORTED);
        q = base, q.width = 520;
        CHECK(ts_sd3_generate(r.m, &q, r.arena, r.out[0]) == TS_ERR_ARG);
        CHECK(r.out[0][0] == 42.0f);
    }
    teardown(&r);
}

static void test_errors(void)
{
    char sd15[4096];
    const char *shared = getenv("TESSERA_SHARED");
    snprintf(sd15, sizeof sd15, "%s/golden/pipeline_sd15/model.safetensors", shared ? shared : "../shared");
    ts_sd3_model *m = NULL;
    CHECK(ts_sd3_load(&(ts_sd3_files){.model = sd15}, &m) == TS_ERR_MODEL && !m);
    CHECK(strstr(ts_error_message(), "this is a sd1 checkpoint") != NULL);
    /* A Flux-width T5 (the golden one, 64 wide) does not fit a 160-wide context. */
    char t5[4096];
    snprintf(t5, sizeof t5, "%s/golden/t5_encoder/model.safetensors", shared ? shared : "../shared");
    m = load(&(ts_sd3_files){.model = paths[1], .clip_l = paths[2], .clip_g = paths[3], .t5 = t5, .clip_heads = HEADS});
    ts_sd3_cond c[2];
    CHECK(m && ts_sd3_encode_prompts(m, "x", "", 0, c) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "T5 width 64") != NULL);
    ts_sd3_free(m);
    /* No CLIP anywhere. */
    m = load(&(ts_sd3_files){.model = paths[1]});
    CHECK(m && ts_sd3_encode_prompts(m, "x", "", 0, c) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "no clip-l text encoder") != NULL);
    /* Sizes: the 16x16 pos_embed grid of patch 2 covers 256 pixels. */
    CHECK(m && ts_sd3_check_size(m, 256, 240, 0) == 0);
    CHECK(m && ts_sd3_check_size(m, 272, 64, 0) == TS_ERR_ARG);
    CHECK(m && ts_sd3_check_size(m, 272, 64, 1) == 0); /* tiled: only the tiles must fit */
    CHECK(strstr(ts_error_message(), "at most 256x256") != NULL);
    CHECK(m && ts_sd3_check_size(m, 72, 64, 0) == TS_ERR_ARG);
    ts_sd3_free(m);
}

int main(void)
{
    if (!fixture()) {
        fprintf(stderr, "no SD3 fixture at %s (ctest builds it: fixture sd3)\n", paths[0]);
        return 77;
    }
    static const test_case tests[] = {
        TEST(test_conditioning_single_file), TEST(test_conditioning_without_t5), TEST(test_clip_l_matches_golden), TEST(test_long_prompt),
        TEST(test_seeds_reproduce),          TEST(test_img2img_full_strength_is_txt2img), TEST(test_img2img_one_step),
        TEST(test_inpaint_empty_mask_keeps_latent), TEST(test_bad_requests), TEST(test_errors),
    };
    return test_run_all(tests, (int)(sizeof tests / sizeof tests[0]));
}
