/*
 * Flux transformer tests beyond the golden cases (which check the numbers against
 * the reference): the latent packing against a hand-worked example, position ids,
 * and the loader on checkpoints built here: BF16 storage (the published files' dtype)
 * must give what F32 storage of the same rounded values gives, and a file with a
 * missing or misshapen tensor must fail with a message, not crash.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/flux.h"
#include "st_build.h"
#include "test.h"

static void test_pack_example(void)
{
    /* One channel, 2x4: rows "a b c d" / "e f g h" -> tokens [a b e f], [c d g h]. */
    const float latent[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float want[8] = {1, 2, 5, 6, 3, 4, 7, 8};
    float tokens[8], back[8];
    ts_flux_pack(latent, 1, 1, 2, 4, tokens);
    for (int i = 0; i < 8; i++)
        CHECK(tokens[i] == want[i]);
    ts_flux_unpack(tokens, 1, 1, 2, 4, back);
    for (int i = 0; i < 8; i++)
        CHECK(back[i] == latent[i]);
}

static void test_pack_roundtrip(void)
{
    enum { B = 2, C = 3, H = 4, W = 6, N = B * C * H * W };
    float latent[N], tokens[N], back[N];
    unsigned long long s = 7;
    for (int i = 0; i < N; i++)
        latent[i] = test_randf(&s);
    ts_flux_pack(latent, B, C, H, W, tokens);
    /* Channel c, pixel (y, x) of batch b sits in token (y/2)*(W/2) + x/2 at c*4 + (y%2)*2 + x%2. */
    int b = 1, c = 2, y = 3, x = 4;
    CHECK(tokens[(b * 6 + (y / 2) * 3 + x / 2) * 12 + c * 4 + (y % 2) * 2 + x % 2] ==
          latent[((b * C + c) * H + y) * W + x]);
    ts_flux_unpack(tokens, B, C, H, W, back);
    CHECK(memcmp(back, latent, sizeof latent) == 0);
}

static void test_img_ids(void)
{
    float ids[6 * 3];
    ts_flux_img_ids(4, 6, ids); /* 2 x 3 tokens */
    CHECK(ids[0] == 0 && ids[1] == 0 && ids[2] == 0);
    CHECK(ids[4 * 3] == 0 && ids[4 * 3 + 1] == 1 && ids[4 * 3 + 2] == 1);
    CHECK(ids[5 * 3 + 1] == 1 && ids[5 * 3 + 2] == 2);
}

/* A tiny Flux: hidden 32, 2 heads of 16, MLP 64, one double and one single block. */
enum { HID = 32, MLP = 64, IN = 16, CTX = 24, VEC = 8, HEAD = 16 };

typedef struct {
    st_build *b;
    ts_dtype dtype;
    unsigned long long seed;
    const char *skip;   /* a key left out */
    const char *shrink; /* a key stored one row short */
} model_builder;

static void add(model_builder *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
    if (m->skip && strcmp(name, m->skip) == 0)
        return;
    int64_t shape[2] = {d0 - (m->shrink && strcmp(name, m->shrink) == 0), d1};
    size_t n = st_build_numel(ndim, shape);
    float *v = malloc(n * sizeof *v);
    uint16_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        v[i] = 0.2f * test_randf(&m->seed);
    /* Both storages hold the bf16-rounded values, so they describe the same model. */
    ts_f32_to_bf16_n(v, h, n);
    ts_bf16_to_f32_n(h, v, n);
    st_build_add_f32(m->b, name, m->dtype, ndim, shape, v);
    free(v);
    free(h);
}

static void add_linear(model_builder *m, const char *base, int64_t out, int64_t in)
{
    char name[128];
    snprintf(name, sizeof name, "%s.weight", base);
    add(m, name, 2, out, in);
    snprintf(name, sizeof name, "%s.bias", base);
    add(m, name, 1, out, 0);
}

static ts_weights *build_model(ts_dtype dtype, int guidance, const char *skip, const char *shrink, void **img)
{
    model_builder m = {.b = calloc(1, sizeof(st_build)), .dtype = dtype, .seed = 42, .skip = skip, .shrink = shrink};
    add_linear(&m, "img_in", HID, IN);
    add_linear(&m, "txt_in", HID, CTX);
    const char *embedders[3] = {"time_in", "vector_in", "guidance_in"};
    for (int e = 0; e < 2 + guidance; e++) {
        char name[64];
        snprintf(name, sizeof name, "%s.in_layer", embedders[e]);
        add_linear(&m, name, HID, e == 1 ? VEC : 256);
        snprintf(name, sizeof name, "%s.out_layer", embedders[e]);
        add_linear(&m, name, HID, HID);
    }
    const char *streams[2] = {"img", "txt"};
    for (int s = 0; s < 2; s++) {
        char name[96];
        snprintf(name, sizeof name, "double_blocks.0.%s_mod.lin", streams[s]);
        add_linear(&m, name, 6 * HID, HID);
        snprintf(name, sizeof name, "double_blocks.0.%s_attn.qkv", streams[s]);
        add_linear(&m, name, 3 * HID, HID);
        snprintf(name, sizeof name, "double_blocks.0.%s_attn.proj", streams[s]);
        add_linear(&m, name, HID, HID);
        snprintf(name, sizeof name, "double_blocks.0.%s_mlp.0", streams[s]);
        add_linear(&m, name, MLP, HID);
        snprintf(name, sizeof name, "double_blocks.0.%s_mlp.2", streams[s]);
        add_linear(&m, name, HID, MLP);
        snprintf(name, sizeof name, "double_blocks.0.%s_attn.norm.query_norm.scale", streams[s]);
        add(&m, name, 1, HEAD, 0);
        snprintf(name, sizeof name, "double_blocks.0.%s_attn.norm.key_norm.scale", streams[s]);
        add(&m, name, 1, HEAD, 0);
    }
    add_linear(&m, "single_blocks.0.modulation.lin", 3 * HID, HID);
    add_linear(&m, "single_blocks.0.linear1", 3 * HID + MLP, HID);
    add_linear(&m, "single_blocks.0.linear2", HID, HID + MLP);
    add(&m, "single_blocks.0.norm.query_norm.scale", 1, HEAD, 0);
    add(&m, "single_blocks.0.norm.key_norm.scale", 1, HEAD, 0);
    add_linear(&m, "final_layer.adaLN_modulation.1", 2 * HID, HID);
    add_linear(&m, "final_layer.linear", IN, HID);
    size_t len;
    *img = st_build_finish(m.b, &len);
    free(m.b);
    ts_weights *st = NULL;
    if (ts_weights_open_memory(*img, len, &st) != 0)
        fprintf(stderr, "%s\n", ts_error_message());
    return st;
}

static ts_flux_config tiny_config(void)
{
    return (ts_flux_config){.n_axes = 3, .axes_dim = {4, 6, 6}, .theta = 10000.0};
}

/* Runs the tiny model on fixed inputs (2 batch items, 5 text and 6 image tokens). */
static int run(const ts_flux *f, float *out)
{
    enum { B = 2, LT = 5, LI = 6 };
    static float img[B * LI * IN], txt[B * LT * CTX], y[B * VEC], img_ids[B * LI * 3], txt_ids[B * LT * 3];
    unsigned long long s = 3;
    for (size_t i = 0; i < sizeof img / sizeof *img; i++)
        img[i] = test_randf(&s);
    for (size_t i = 0; i < sizeof txt / sizeof *txt; i++)
        txt[i] = test_randf(&s);
    for (size_t i = 0; i < sizeof y / sizeof *y; i++)
        y[i] = test_randf(&s);
    for (int b = 0; b < B; b++)
        ts_flux_img_ids(4, 6, img_ids + b * LI * 3);
    ts_tensor ti = ts_tensor_view(img, 3, (int64_t[]){B, LI, IN});
    ts_tensor tt = ts_tensor_view(txt, 3, (int64_t[]){B, LT, CTX});
    ts_tensor ty = ts_tensor_view(y, 2, (int64_t[]){B, VEC});
    ts_tensor tii = ts_tensor_view(img_ids, 3, (int64_t[]){B, LI, 3});
    ts_tensor tti = ts_tensor_view(txt_ids, 3, (int64_t[]){B, LT, 3});
    const float t[B] = {0.25f, 0.9f}, g[B] = {3.5f, 3.5f};
    ts_flux_inputs in = {.img = &ti, .img_ids = &tii, .txt = &tt, .txt_ids = &tti, .y = &ty, .timesteps = t,
                         .guidance = g};
    ts_arena *arena = ts_arena_create((size_t)64 << 20);
    ts_tensor pred;
    int rc = ts_flux_forward(f, &in, arena, &pred);
    if (!rc)
        memcpy(out, pred.data, sizeof(float) * B * LI * IN);
    ts_arena_destroy(arena);
    return rc;
}

static void test_bf16_matches_f32(void)
{
    enum { OUT = 2 * 6 * IN };
    float a[OUT], b[OUT];
    void *img_a, *img_b;
    ts_weights *st_a = build_model(TS_DTYPE_BF16, 1, NULL, NULL, &img_a);
    ts_weights *st_b = build_model(TS_DTYPE_F32, 1, NULL, NULL, &img_b);
    ts_flux *fa = NULL, *fb = NULL;
    CHECK(st_a && ts_flux_load(st_a, "", tiny_config(), &fa) == 0);
    CHECK(st_b && ts_flux_load(st_b, "", tiny_config(), &fb) == 0);
    if (fa && fb) {
        CHECK(ts_flux_has_guidance(fa) && ts_flux_in_channels(fa) == IN && ts_flux_context_dim(fa) == CTX &&
              ts_flux_vec_dim(fa) == VEC);
        CHECK(run(fa, a) == 0);
        CHECK(run(fb, b) == 0);
        double d = 0, m = 0;
        for (int i = 0; i < OUT; i++) {
            CHECK(isfinite(a[i]));
            d = fmax(d, fabs((double)a[i] - b[i]));
            m = fmax(m, fabs((double)b[i]));
        }
        CHECK_MSG(m > 0 && d <= 1e-5 * m, "max diff %g of %g", d, m);
        /* The two batch items have different inputs and timesteps, so different outputs. */
        CHECK(memcmp(a, a + OUT / 2, sizeof(float) * (OUT / 2)) != 0);
    }
    ts_flux_free(fa);
    ts_flux_free(fb);
    ts_weights_close(st_a);
    ts_weights_close(st_b);
    free(img_a);
    free(img_b);
}

static void test_bad_files(void)
{
    static const char *const cases[][2] = {
        {"single_blocks.0.linear2.weight", NULL},
        {"double_blocks.0.txt_attn.norm.key_norm.scale", NULL},
        {NULL, "double_blocks.0.img_mlp.2.weight"},
        {NULL, "single_blocks.0.linear1.weight"},
        {NULL, "final_layer.adaLN_modulation.1.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        void *img;
        ts_weights *st = build_model(TS_DTYPE_BF16, 0, cases[i][0], cases[i][1], &img);
        ts_flux *f = NULL;
        int rc = st ? ts_flux_load(st, "", tiny_config(), &f) : 0;
        CHECK_MSG(st && rc == TS_ERR_MODEL && !f, "case %zu: rc %d", i, rc);
        ts_flux_free(f);
        ts_weights_close(st);
        free(img);
    }
    /* Axes that do not add up to the head width are refused at load. */
    void *img;
    ts_weights *st = build_model(TS_DTYPE_BF16, 0, NULL, NULL, &img);
    ts_flux *f = NULL;
    ts_flux_config cfg = tiny_config();
    cfg.axes_dim[0] = 6;
    CHECK(st && ts_flux_load(st, "", cfg, &f) == TS_ERR_ARG && !f);
    /* A dev model called without guidance fails instead of reading NULL. */
    void *img_dev;
    ts_weights *st_dev = build_model(TS_DTYPE_BF16, 1, NULL, NULL, &img_dev);
    CHECK(st_dev && ts_flux_load(st_dev, "", tiny_config(), &f) == 0);
    if (f) {
        float img_in[6 * IN] = {0}, txt[5 * CTX] = {0}, y[VEC] = {0}, ids[6 * 3] = {0}, t = 0.5f;
        ts_tensor ti = ts_tensor_view(img_in, 3, (int64_t[]){1, 6, IN}), tt = ts_tensor_view(txt, 3, (int64_t[]){1, 5, CTX});
        ts_tensor ty = ts_tensor_view(y, 2, (int64_t[]){1, VEC}), tii = ts_tensor_view(ids, 3, (int64_t[]){1, 6, 3});
        ts_tensor tti = ts_tensor_view(ids, 3, (int64_t[]){1, 5, 3});
        ts_flux_inputs in = {.img = &ti, .img_ids = &tii, .txt = &tt, .txt_ids = &tti, .y = &ty, .timesteps = &t};
        ts_arena *arena = ts_arena_create((size_t)16 << 20);
        ts_tensor out;
        CHECK(ts_flux_forward(f, &in, arena, &out) == TS_ERR_ARG);
        ts_arena_destroy(arena);
    }
    ts_flux_free(f);
    ts_weights_close(st);
    ts_weights_close(st_dev);
    free(img);
    free(img_dev);
}

TEST_MAIN(TEST(test_pack_example), TEST(test_pack_roundtrip), TEST(test_img_ids), TEST(test_bf16_matches_f32),
          TEST(test_bad_files))
