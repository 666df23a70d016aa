/*
 * Unit tests for the pixel-space helpers of the SD pipeline: the mask's bilinear
 * downsampling (checked against PyTorch's half-pixel rule written out by hand) and the
 * Gaussian mask blur (against direct 2-D convolution).
 */
#include <math.h>
#include <stdlib.h>

#include "pipeline/sd.h"
#include "test.h"

/* For an exact factor 8, destination j samples source 8j + 3.5: the mean of 8j+3 and 8j+4. */
static void test_bilinear_factor_8(void)
{
    enum { H = 24, W = 40 };
    float src[H * W], dst[3 * 5];
    for (int i = 0; i < H * W; i++)
        src[i] = (float)((i * 7919) % 101) / 100.0f;
    ts_resize_bilinear(src, H, W, dst, 3, 5);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 5; i++) {
            double want = 0;
            for (int dy = 3; dy <= 4; dy++)
                for (int dx = 3; dx <= 4; dx++)
                    want += src[(8 * j + dy) * W + 8 * i + dx] / 4.0;
            CHECK_NEAR(dst[j * 5 + i], want, 1e-6);
        }
}

/* Upsampling: half-pixel centres clamp at the border, so corners copy the corner pixel. */
static void test_bilinear_upsample_edges(void)
{
    float src[4] = {0, 1, 2, 3}, dst[16];
    ts_resize_bilinear(src, 2, 2, dst, 4, 4);
    CHECK_NEAR(dst[0], 0, 1e-7);
    CHECK_NEAR(dst[15], 3, 1e-7);
    /* dst (0, 1) samples x = 0.25 in row 0: 0.75 * 0 + 0.25 * 1. */
    CHECK_NEAR(dst[1], 0.25, 1e-7);
}

static void test_blur_matches_direct_convolution(void)
{
    enum { H = 21, W = 23 };
    double sigma = 1.7;
    int r = (int)(2.5 * sigma + 0.5);
    float plane[H * W] = {0};
    plane[10 * W + 11] = 1.0f;
    plane[5 * W + 6] = 0.5f;
    float orig[H * W];
    for (int i = 0; i < H * W; i++)
        orig[i] = plane[i];
    CHECK(ts_blur_plane(plane, H, W, sigma) == 0);
    double norm = 0;
    for (int o = -r; o <= r; o++)
        norm += exp(-0.5 * o * o / (sigma * sigma));
    /* Both impulses lie at least r from the border, so no clamping is involved. */
    double total = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double want = 0;
            for (int sy = 0; sy < H; sy++)
                for (int sx = 0; sx < W; sx++) {
                    if (!orig[sy * W + sx] || abs(sy - y) > r || abs(sx - x) > r)
                        continue;
                    want += orig[sy * W + sx] * exp(-0.5 * ((sy - y) * (sy - y) + (sx - x) * (sx - x)) /
                                                    (sigma * sigma)) / (norm * norm);
                }
            CHECK_NEAR(plane[y * W + x], want, 1e-6);
            total += plane[y * W + x];
        }
    CHECK_NEAR(total, 1.5, 1e-5);
}

static void test_blur_zero_is_identity(void)
{
    float plane[6] = {0, 1, 0, 1, 1, 0};
    CHECK(ts_blur_plane(plane, 2, 3, 0) == 0);
    CHECK(plane[1] == 1 && plane[0] == 0 && plane[4] == 1);
}

TEST_MAIN(TEST(test_bilinear_factor_8), TEST(test_bilinear_upsample_edges), TEST(test_blur_matches_direct_convolution),
          TEST(test_blur_zero_is_identity))
