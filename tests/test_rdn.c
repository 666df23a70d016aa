/*
 * RDN / RRDN against the UpscalerJS packages' own results: every shipped sample
 * (assets/fixture.png through each model, assets/samples/<s>x/result.png, produced by
 * TF.js) must be reproduced within one level of 255 at every pixel.  Then the
 * properties tiling rests on: a one-pixel change of the input moves no output pixel
 * further than the halo, tiled output equals untiled output, the arena peak is what
 * ts_rdn_workspace promises.  Needs scripts/fetch-models.sh; exits 77 (skipped)
 * without the models.  Under ASan (slow) only the small models run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/threads.h"
#include "io/image.h"
#include "models/rdn.h"
#include "pipeline/upscale.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static ts_rdn *load(const char *name, int scale)
{
    char path[1024];
    ts_rdn *m = NULL;
    int rc = ts_upscaler_model_path(NULL, name, scale, path, sizeof path);
    if (rc == TS_OK)
        rc = ts_rdn_load(path, &m);
    CHECK_MSG(rc == TS_OK, "%s x%d: %s", name, scale, ts_error_message());
    return m;
}

/* The package's fixture as planar RGB floats (the alpha is opaque). */
static float *fixture(const char *name, int *w, int *h)
{
    char dir[1024], path[1100];
    ts_image img = {0}, rgb = {0};
    CHECK(ts_upscaler_package_dir(NULL, name, dir, sizeof dir) == TS_OK);
    snprintf(path, sizeof path, "%s/assets/fixture.png", dir);
    if (ts_image_read(path, &img) < 0 || ts_image_convert(&img, 3, 8, &rgb) < 0) {
        CHECK_MSG(0, "%s", ts_error_message());
        return NULL;
    }
    float *x = malloc((size_t)img.width * img.height * 3 * sizeof *x);
    ts_image_to_planar(&rgb, TS_RANGE_UNIT, x);
    *w = img.width;
    *h = img.height;
    ts_image_free(&img);
    ts_image_free(&rgb);
    return x;
}

static void check_sample(const char *name, int scale)
{
    char dir[1024], path[1100];
    ts_image in = {0}, want = {0}, got = {0};
    ts_rdn *m = load(name, scale);
    CHECK(ts_upscaler_package_dir(NULL, name, dir, sizeof dir) == TS_OK);
    snprintf(path, sizeof path, "%s/assets/fixture.png", dir);
    CHECK_MSG(ts_image_read(path, &in) == TS_OK, "%s", ts_error_message());
    snprintf(path, sizeof path, "%s/assets/samples/%dx/result.png", dir, scale);
    CHECK_MSG(ts_image_read(path, &want) == TS_OK, "%s", ts_error_message());
    ts_upscale_opts untiled = {.tile = 0};
    if (m && in.data && want.data) {
        CHECK_MSG(ts_upscale_image(m, &in, &untiled, &got, NULL) == TS_OK, "%s", ts_error_message());
        CHECK(got.width == want.width && got.height == want.height && got.channels == want.channels &&
              got.depth == 8);
    }
    if (got.data && got.width == want.width && got.channels == want.channels) {
        const uint8_t *a = got.data, *b = want.data;
        int worst = 0;
        size_t off_by_one = 0, n = ts_image_bytes(&got);
        for (size_t i = 0; i < n; i++) {
            int d = abs(a[i] - b[i]);
            worst = d > worst ? d : worst;
            off_by_one += d == 1;
        }
        CHECK_MSG(worst <= 1, "%s x%d: a pixel is %d levels off", name, scale, worst);
        printf("     %-7s x%d  %s: max |diff| %d, %zu of %zu samples off by one\n", name, scale, ts_rdn_describe(m),
               worst, off_by_one, n);
    }
    ts_image_free(&in);
    ts_image_free(&want);
    ts_image_free(&got);
    ts_rdn_free(m);
}

static void test_samples_small(void)
{
    check_sample("default", 2);
    static const int scales[] = {2, 3, 4};
    for (int i = 0; i < 3; i++)
        check_sample("slim", scales[i]);
}

static void test_samples_large(void)
{
    if (SANITIZED)
        return;
    static const int scales[] = {2, 3, 4, 8};
    for (int i = 0; i < 3; i++)
        check_sample("medium", scales[i]);
    for (int i = 0; i < 4; i++)
        check_sample("thick", scales[i]);
}

/* Mirrors coordinate v into [0, n), so a crop may be larger than its source. */
static int mirror(int v, int n)
{
    v %= 2 * n;
    return v < n ? v : 2 * n - 1 - v;
}

/* Crop [x0, x0 + w) x [y0, y0 + h) of a planar RGB image of width W, height H,
 * continued by mirroring beyond its edges. */
static float *crop(const float *src, int W, int H, int x0, int y0, int w, int h)
{
    float *dst = malloc((size_t)w * h * 3 * sizeof *dst);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                dst[((size_t)c * h + y) * w + x] = src[((size_t)c * H + mirror(y0 + y, H)) * W + mirror(x0 + x, W)];
    return dst;
}

static float *run(const ts_rdn *m, const float *x, int w, int h, int tile, ts_upscale_stats *st)
{
    int s = ts_rdn_scale(m);
    float *y = malloc((size_t)w * h * s * s * 3 * sizeof *y);
    ts_upscale_opts o = {.tile = tile};
    CHECK_MSG(ts_upscale_planar(m, x, w, h, &o, y, st) == TS_OK, "%s", ts_error_message());
    return y;
}

/* Tiles that overlap by the halo give the untiled result, however the image is cut. */
static void check_tiled(const char *name, int scale, int w, int h, int tile, int min_tiles)
{
    int W, H;
    ts_rdn *m = load(name, scale);
    float *full = fixture(name, &W, &H);
    if (!m || !full)
        return;
    float *x = crop(full, W, H, 0, 0, w, h);
    ts_upscale_stats one, many;
    float *a = run(m, x, w, h, 0, &one), *b = run(m, x, w, h, tile, &many);
    double d = test_max_abs_diff(a, b, (size_t)w * h * scale * scale * 3);
    CHECK(one.tiles == 1);
    CHECK_MSG(many.tiles >= min_tiles, "%d tiles", many.tiles);
    CHECK_MSG(d <= 0.5 / 255, "%s x%d: tiled differs from untiled by %g", name, scale, d);
    printf("     %-7s x%d  %dx%d, tile %d (halo %d): %d tiles, max |tiled - untiled| = %.3g\n", name, scale, w, h,
           tile, ts_rdn_halo(m), many.tiles, d);
    free(a);
    free(b);
    free(x);
    free(full);
    ts_rdn_free(m);
}

static void test_tiled_equals_untiled(void)
{
    check_tiled("slim", 3, 100, 90, 24, 16);
    check_tiled("medium", 2, 96, 80, 20, 20);
    if (!SANITIZED) /* RRDN's halo is 154: a wide strip gives tiles cut on both sides */
        check_tiled("thick", 2, 340, 8, 100, 4);
}

/* Changing one input pixel changes output pixels only within s * halo of it. */
static void test_receptive_field_within_halo(void)
{
    int W, H, s = 2, cx = 40, cy = 36, w = 80, h = 72;
    ts_rdn *m = load("slim", s);
    float *full = fixture("slim", &W, &H);
    if (!m || !full)
        return;
    float *x = crop(full, W, H, 20, 20, w, h);
    float *a = run(m, x, w, h, 0, NULL);
    for (int c = 0; c < 3; c++)
        x[((size_t)c * h + cy) * w + cx] = 1.0f - x[((size_t)c * h + cy) * w + cx];
    float *b = run(m, x, w, h, 0, NULL);
    int reach = 0, halo = ts_rdn_halo(m);
    for (int c = 0; c < 3; c++)
        for (int Y = 0; Y < s * h; Y++)
            for (int X = 0; X < s * w; X++) {
                size_t i = ((size_t)c * s * h + Y) * s * w + X;
                if (a[i] != b[i]) {
                    int dy = abs(Y / s - cy), dx = abs(X / s - cx);
                    reach = dy > reach ? dy : dx > reach ? dx : reach;
                }
            }
    CHECK_MSG(reach <= halo, "a change reached %d pixels, the halo is %d", reach, halo);
    CHECK_MSG(reach >= halo / 2, "a change reached only %d pixels (halo %d)", reach, halo);
    printf("     slim x2: a one-pixel change reaches %d input pixels (halo %d)\n", reach, halo);
    free(a);
    free(b);
    free(x);
    free(full);
    ts_rdn_free(m);
}

/* ts_rdn_workspace is what a forward pass takes from the arena, not a loose guess. */
static void test_workspace_matches_peak(void)
{
    static const struct {
        const char *name;
        int scale;
    } models[] = {{"slim", 4}, {"medium", 8}, {"thick", 3}};
    for (int i = 0; i < 3; i++) {
        ts_rdn *m = load(models[i].name, models[i].scale);
        if (!m)
            continue;
        int s = models[i].scale, h = 9, w = 13;
        ts_arena *a = ts_arena_create(ts_rdn_workspace(m, h, w) + (1 << 20));
        ts_tensor x = ts_arena_tensor(a, 4, (int64_t[]){1, 3, h, w});
        ts_tensor y = ts_arena_tensor(a, 4, (int64_t[]){1, 3, s * h, s * w});
        for (int64_t k = 0; k < ts_tensor_numel(&x); k++)
            x.data[k] = (float)(k % 17) / 16.0f;
        size_t before = ts_arena_mark(a);
        CHECK_MSG(ts_rdn_forward(m, &x, &y, a) == TS_OK, "%s", ts_error_message());
        size_t used = ts_arena_peak(a) - before, promised = ts_rdn_workspace(m, h, w);
        CHECK_MSG(used <= promised && used * 10 >= promised * 9, "%s: peak %zu, workspace %zu", models[i].name, used,
                  promised);
        CHECK(ts_arena_used(a) == before);
        ts_arena_destroy(a);
        ts_rdn_free(m);
    }
}

static void test_registry_errors(void)
{
    char path[1024];
    CHECK(ts_upscaler_model_path(NULL, "slim", 5, path, sizeof path) == TS_ERR_UNSUPPORTED);
    CHECK(strstr(ts_error_message(), "scales: 2, 3, 4, 8") != NULL);
    CHECK(ts_upscaler_model_path(NULL, "default", 4, path, sizeof path) == TS_ERR_UNSUPPORTED);
    CHECK(ts_upscaler_model_path(NULL, "huge", 2, path, sizeof path) == TS_ERR_ARG);
    CHECK(ts_upscaler_model_path("/nonexistent", "thick", 4, path, sizeof path) == TS_ERR_IO);
    CHECK(strstr(ts_error_message(), "fetch-models.sh") != NULL);
}

/* Gray + alpha in: RGB from the network, alpha carried through by bicubic
 * interpolation, which keeps flat regions flat. */
static void test_gray_alpha_image(void)
{
    ts_rdn *m = load("slim", 2);
    ts_image in = {0}, out = {0};
    if (!m || ts_image_alloc(&in, 24, 20, 2, 16) < 0)
        return;
    uint16_t *p = in.data;
    for (int i = 0; i < 24 * 20; i++) {
        p[2 * i] = (uint16_t)(i * 131 % 65536);
        p[2 * i + 1] = i % 24 < 12 ? 65535 : 1000;
    }
    ts_upscale_opts o = {.tile = 8};
    CHECK_MSG(ts_upscale_image(m, &in, &o, &out, NULL) == TS_OK, "%s", ts_error_message());
    CHECK(out.width == 48 && out.height == 40 && out.channels == 4 && out.depth == 16);
    if (out.data) {
        const uint16_t *q = out.data;
        CHECK(q[3] == 65535);                      /* top-left: inside the opaque half */
        CHECK(q[47 * 4 + 3] == 1000);             /* top-right: inside the translucent half */
        CHECK(q[(39 * 48 + 10) * 4 + 3] == 65535); /* two input pixels from the step: still flat */
    }
    ts_image_free(&in);
    ts_image_free(&out);
    ts_rdn_free(m);
}

int main(void)
{
    char path[1024];
    if (ts_upscaler_model_path(NULL, "thick", 8, path, sizeof path) < 0 ||
        ts_upscaler_model_path(NULL, "default", 2, path, sizeof path) < 0) {
        printf("skipped: %s\n", ts_error_message());
        return 77;
    }
    ts_threads_set(0);
    static const test_case tests[] = {
        TEST(test_registry_errors),
        TEST(test_samples_small),
        TEST(test_receptive_field_within_halo),
        TEST(test_tiled_equals_untiled),
        TEST(test_workspace_matches_peak),
        TEST(test_gray_alpha_image),
        TEST(test_samples_large),
    };
    return test_run_all(tests, (int)(sizeof tests / sizeof tests[0]));
}
