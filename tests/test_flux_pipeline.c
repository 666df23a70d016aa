/*
 * Flux pipeline tests beyond the pipeline_flux golden case (which checks the
 * stored-noise path number by number): the seeded path draws exactly the torch
 * noise it documents, the prompt route gives the case's CLIP ids, img2img starts
 * where its rule says on the truncated schedule, inpainting's extremes (nothing
 * kept, everything kept) reduce to txt2img and to the input, a transformer with
 * guidance_in is run as dev (512 T5 positions, shifted schedule), the bundle refuses
 * mismatched parts, and bad requests fail with an error instead of running.  Uses
 * the tiny models of the golden case.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "golden_file.h"
#include "pipeline/flux.h"
#include "sample/rng.h"
#include "sample/schedule.h"
#include "st_build.h"
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

/* The case's prompt through ts_flux_tokenize: CLIP ids exactly the stored in.clip_ids
 * (its T5 ids are synthetic, see case.json); T5 ids end in EOS and 0-padding at
 * schnell's length; emphasis syntax leaves both rows as the plain words give them. */
static void test_prompt_ids(void)
{
    ts_flux_files files = case_files();
    ts_flux_model *m = NULL;
    ts_safetensors *io = test_open_golden("pipeline_flux", "io.safetensors");
    CHECK(io && ts_flux_model_load(&files, &m) == 0);
    if (!m || !io) {
        ts_st_close(io);
        ts_flux_model_free(m);
        return;
    }
    CHECK(ts_flux_t5_length(m) == 256);
    int32_t t5[2][256], clip[2][TS_FLUX_CLIP_TOKENS];
    int truncated = -1;
    CHECK(ts_flux_tokenize(m, NULL, "a cat holding a sign that says hello world", t5[0], clip[0], &truncated) == 0);
    CHECK(truncated == 0);
    CHECK(ts_flux_tokenize(m, NULL, "(a cat:1.3) holding [a sign] that \\(says\\) BREAK hello world", t5[1], clip[1],
                           NULL) == 0);
    const ts_st_tensor *t = ts_st_find(io, "in.clip_ids");
    CHECK(t && t->dtype == TS_DTYPE_I64 && ts_st_numel(t) == TS_FLUX_CLIP_TOKENS);
    const int64_t *want = t ? ts_st_data(io, t) : NULL;
    for (int i = 0; want && i < TS_FLUX_CLIP_TOKENS; i++)
        CHECK_MSG(clip[0][i] == want[i], "clip id %d: %d, stored %lld", i, clip[0][i], (long long)want[i]);
    int eos = 0;
    while (eos < 256 && t5[0][eos] != TS_T5_EOS)
        eos++;
    CHECK(eos > 0 && eos < 256);
    for (int i = eos + 1; i < 256; i++)
        CHECK(t5[0][i] == TS_T5_PAD);
    /* The escaped brackets stay as text: only they differ from the plain prompt. */
    CHECK(memcmp(clip[0], clip[1], sizeof clip[0]) != 0);
    CHECK(ts_flux_tokenize(m, NULL, "(a cat:1.3) holding [a sign] that (says) BREAK hello world", t5[1], clip[1],
                           NULL) == 0);
    CHECK(memcmp(t5[0], t5[1], sizeof t5[0]) == 0);
    CHECK(memcmp(clip[0], clip[1], sizeof clip[0]) == 0);
    ts_st_close(io);
    ts_flux_model_free(m);
}

/* What a probe saw: the sigmas, the first "img" (start tokens), "init_latent". */
typedef struct {
    float sigmas[16], start[LAT], init[LAT];
    int n_sigmas;
} seen;

static void record(void *ctx, const char *name, int step, const ts_tensor *t)
{
    seen *s = ctx;
    size_t n = (size_t)ts_tensor_numel(t);
    if (!strcmp(name, "sigmas") && n <= 16) {
        memcpy(s->sigmas, t->data, n * sizeof(float));
        s->n_sigmas = (int)n;
    } else if (!strcmp(name, "img") && step == 0 && n == LAT) {
        memcpy(s->start, t->data, n * sizeof(float));
    } else if (!strcmp(name, "init_latent") && n == LAT) {
        memcpy(s->init, t->data, n * sizeof(float));
    }
}

/* A gradient test picture in [-1, 1]. */
static void picture(float *img)
{
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                img[(c * H + y) * W + x] = (float)(c == 0 ? 2.0 * x / W - 1 : c == 1 ? 1 - 2.0 * y / H : 0.3);
}

typedef struct {
    ts_flux_model *m;
    ts_arena *arena;
    ts_flux_cond cond;
    float noise[LAT], image[3 * H * W];
} fixture;

static int setup(fixture *f)
{
    ts_flux_files files = case_files();
    f->m = NULL;
    f->arena = ts_arena_create((size_t)1 << 28);
    ts_mt19937 g;
    ts_mt19937_seed(&g, 77);
    picture(f->image);
    int rc = ts_torch_randn(&g, f->noise, LAT);
    rc = rc ? rc : ts_flux_model_load(&files, &f->m);
    return rc ? rc : encode(f->m, f->arena, &f->cond);
}

static void teardown(fixture *f)
{
    ts_arena_destroy(f->arena);
    ts_flux_model_free(f->m);
}

/* img2img at strength 0.5 over 3 steps runs the last 4 sigmas of the 6-step schedule
 * and starts from sigma * noise + (1 - sigma) * init latent (both packed alike). */
static void test_img2img_start(void)
{
    static fixture f;
    static seen s;
    CHECK(setup(&f) == 0);
    float lat[LAT], img[3 * H * W], full[7], mix[LAT], packed[LAT];
    ts_flux_request r = {.width = W, .height = H, .steps = 3, .cond = &f.cond, .noise = f.noise,
                         .image = f.image, .strength = 0.5, .probe = record, .probe_ctx = &s};
    CHECK(f.m && ts_flux_generate(f.m, &r, f.arena, lat, img) == 0);
    CHECK(ts_schedule_flux(6, (H / 16) * (W / 16), 0, 0.5, 1.15, full) == 0);
    CHECK(s.n_sigmas == 4);
    for (int i = 0; i < 4; i++)
        CHECK(s.sigmas[i] == full[3 + i]);
    double sigma = s.sigmas[0], err = 0, spread = 0;
    for (int i = 0; i < LAT; i++) {
        mix[i] = (float)(sigma * f.noise[i] + (1 - sigma) * s.init[i]);
        spread += fabs(s.init[i]);
    }
    ts_flux_pack(mix, 1, 16, H / 8, W / 8, packed);
    for (int i = 0; i < LAT; i++)
        err = fmax(err, fabs((double)packed[i] - s.start[i]));
    CHECK_MSG(err < 1e-6, "start differs by %g", err);
    CHECK(spread > 1e-2 * LAT); /* the init latent is not all zeros */
    teardown(&f);
}

/* Inpainting with a mask of all ones at strength 1 is txt2img (and so is img2img at
 * strength 1), bit for bit; with a mask of zeros the result is the init latent. */
static void test_inpaint_extremes(void)
{
    static fixture f;
    static seen s;
    static float lat[3][LAT], img[3][3 * H * W], ones[H * W], zeros[H * W];
    CHECK(setup(&f) == 0);
    for (int i = 0; i < H * W; i++)
        ones[i] = 1.0f;
    ts_flux_request r = {.width = W, .height = H, .steps = 2, .cond = &f.cond, .noise = f.noise};
    CHECK(f.m && ts_flux_generate(f.m, &r, f.arena, lat[0], img[0]) == 0);
    r.image = f.image;
    r.strength = 1;
    CHECK(f.m && ts_flux_generate(f.m, &r, f.arena, lat[1], img[1]) == 0);
    CHECK(memcmp(img[0], img[1], sizeof img[0]) == 0);
    r.mask = ones;
    CHECK(f.m && ts_flux_generate(f.m, &r, f.arena, lat[1], img[1]) == 0);
    CHECK(memcmp(img[0], img[1], sizeof img[0]) == 0);
    r.mask = zeros;
    r.strength = 0.7;
    r.probe = record;
    r.probe_ctx = &s;
    CHECK(f.m && ts_flux_generate(f.m, &r, f.arena, lat[2], img[2]) == 0);
    double err = 0;
    for (int i = 0; i < LAT; i++)
        err = fmax(err, fabs((double)lat[2][i] - s.init[i]));
    CHECK_MSG(err < 1e-5, "kept latent moved by %g", err);
    r.image = NULL; /* a mask alone */
    CHECK(ts_flux_generate(f.m, &r, f.arena, lat[2], img[2]) == TS_ERR_ARG);
    r.image = f.image;
    r.strength = 0;
    CHECK(ts_flux_generate(f.m, &r, f.arena, lat[2], img[2]) == TS_ERR_ARG);
    teardown(&f);
}

/* The case's transformer plus a zero guidance_in, written to path: a dev model whose
 * guidance embedding adds nothing. */
static int write_dev_model(const char *src, const char *path)
{
    ts_safetensors *st = NULL;
    if (ts_st_open(src, &st))
        return -1;
    static st_build b;
    for (size_t i = 0; i < ts_st_count(st); i++) {
        const ts_st_tensor *t = ts_st_at(st, i);
        st_build_add(&b, t->name, t->dtype, t->ndim, t->shape, ts_st_data(st, t));
    }
    ts_st_close(st);
    static const float zeros[64 * 256];
    st_build_add(&b, "guidance_in.in_layer.weight", TS_DTYPE_F32, 2, (int64_t[]){64, 256}, zeros);
    st_build_add(&b, "guidance_in.in_layer.bias", TS_DTYPE_F32, 1, (int64_t[]){64}, zeros);
    st_build_add(&b, "guidance_in.out_layer.weight", TS_DTYPE_F32, 2, (int64_t[]){64, 64}, zeros);
    st_build_add(&b, "guidance_in.out_layer.bias", TS_DTYPE_F32, 1, (int64_t[]){64}, zeros);
    size_t len;
    void *img = st_build_finish(&b, &len);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(img, 1, len, f) == len;
    ok = f && fclose(f) == 0 && ok;
    free(img);
    return ok ? 0 : -1;
}

/* Dev is told from schnell by guidance_in: T5 rows of 512, and the schedule shifted
 * for the image's token count (what the CLI asks for with shift = dev). */
static void test_dev_model(void)
{
    ts_flux_files files = case_files();
    char path[4096];
    const char *dir = getenv("TESSERA_TEST_TMP");
    snprintf(path, sizeof path, "%s/flux_dev_%d.safetensors", dir ? dir : "/tmp", (int)getpid());
    CHECK(write_dev_model(files.model, path) == 0);
    files.model = path;
    ts_flux_model *m = NULL;
    CHECK(ts_flux_model_load(&files, &m) == 0);
    if (!m) {
        remove(path);
        return;
    }
    CHECK(ts_flux_has_guidance(m->flux) && ts_flux_t5_length(m) == 512);
    static int32_t t5[512], clip[TS_FLUX_CLIP_TOKENS];
    for (int i = 0; i < 512; i++)
        t5[i] = -1;
    CHECK(ts_flux_tokenize(m, NULL, "a cat", t5, clip, NULL) == 0);
    int eos = 0;
    while (eos < 512 && t5[eos] != TS_T5_EOS)
        eos++;
    CHECK(eos > 0 && eos < 16);
    for (int i = eos + 1; i < 512; i++)
        CHECK(t5[i] == TS_T5_PAD);
    ts_arena *arena = ts_arena_create((size_t)1 << 28);
    ts_flux_cond cond;
    static seen s;
    static float lat[LAT], img[3 * H * W];
    float want[4];
    CHECK(encode(m, arena, &cond) == 0);
    ts_flux_request r = {.width = W, .height = H, .steps = 3, .shift = 1, .guidance = 3.5, .cond = &cond,
                         .seed = 5, .probe = record, .probe_ctx = &s};
    CHECK(ts_flux_generate(m, &r, arena, lat, img) == 0);
    CHECK(ts_schedule_flux(3, (H / 16) * (W / 16), 1, 0.5, 1.15, want) == 0);
    CHECK(s.n_sigmas == 4 && memcmp(s.sigmas, want, sizeof want) == 0);
    CHECK(s.sigmas[1] > 2.0f / 3.0f); /* shifted towards noise */
    ts_arena_destroy(arena);
    ts_flux_model_free(m);
    remove(path);
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

TEST_MAIN(TEST(test_seed_is_torch_noise), TEST(test_prompt_ids), TEST(test_img2img_start), TEST(test_inpaint_extremes),
          TEST(test_dev_model), TEST(test_bad_requests_fail))
