/*
 * Seam score: exact values on a hand-computed 4x4 image, ~1.0 on smooth and on noisy
 * images without seams, clearly above 1.10 when tiles carry a small tone step, grid
 * offsets honoured, and errors for grids with no boundary inside the image.
 */
#include <string.h>

#include "core/error.h"
#include "pipeline/seams.h"
#include "test.h"

#define W 384
#define H 256

static float img[3 * H * W];

/* A smooth picture (waves whose periods do not divide the grid), plus optional
 * noise, plus a per-tile tone step of `step` x (tile index parity). */
static void picture(float noise, float step, int tile)
{
    uint32_t s = 7;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                s = s * 1664525u + 1013904223u;
                float r = (float)(s >> 8) / (float)(1u << 24) - 0.5f;
                int parity = (x / tile + y / tile) % 2;
                img[(c * H + y) * W + x] = 0.5f + 0.2f * sinf(0.31f * (float)x + (float)c) * cosf(0.23f * (float)y) + 0.1f * sinf(0.043f * (float)(x + y)) +
                                           noise * r + step * (float)parity;
            }
}

static double score(int tile, int ox, int oy)
{
    ts_seam_score s;
    ts_seam_grid g = {tile, tile, ox, oy};
    int rc = ts_seam_measure(img, 3, W, H, &g, &s);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    return rc ? -1 : s.ratio;
}

static void test_hand_computed(void)
{
    /* A ramp I = x (horizontal steps 1, vertical 0), grid 2: boundary pairs are the 4
     * across x=2 (diff 1) and the 4 across y=2 (diff 0): mean 0.5; interior pairs 16,
     * sum 8: mean 0.5. */
    float ramp[16], step[16];
    for (int i = 0; i < 16; i++) {
        ramp[i] = (float)(i % 4);
        step[i] = ramp[i] + (i % 4 >= 2 ? 1.0f : 0.0f);
    }
    ts_seam_grid g = {2, 2, 0, 0};
    ts_seam_score s;
    CHECK(ts_seam_measure(ramp, 1, 4, 4, &g, &s) == 0);
    CHECK(s.boundary_pairs == 8 && s.interior_pairs == 16);
    CHECK_NEAR(s.boundary, 0.5, 1e-12);
    CHECK_NEAR(s.interior, 0.5, 1e-12);
    CHECK_NEAR(s.ratio, 1.0, 1e-12);
    CHECK(ts_seam_measure(step, 1, 4, 4, &g, &s) == 0); /* the step doubles the boundary diffs */
    CHECK_NEAR(s.boundary, 1.0, 1e-12);
    CHECK_NEAR(s.ratio, 2.0, 1e-12);
    g.offset_x = 1; /* lines at x = 1 and 3: the step column is now interior */
    CHECK(ts_seam_measure(step, 1, 4, 4, &g, &s) == 0);
    CHECK(s.boundary_pairs == 12 && s.interior_pairs == 12);
    CHECK_NEAR(s.boundary, 8.0 / 12.0, 1e-12); /* 8 x 1 (x=1, x=3) + 4 x 0 (y=2) over 12 pairs */
    CHECK_NEAR(s.interior, 8.0 / 12.0, 1e-12); /* 4 x 2 (x=2) + 8 x 0 (y=1, y=3) over 12 pairs */
}

static void test_no_seam_scores_one(void)
{
    picture(0.0f, 0.0f, 64);
    double r = score(64, 0, 0);
    printf("  smooth: %.4f\n", r);
    CHECK(r > 0.95 && r < 1.05);
    picture(0.05f, 0.0f, 64);
    r = score(64, 0, 0);
    printf("  smooth + noise: %.4f\n", r);
    CHECK(r > 0.97 && r < 1.03);
}

static void test_seam_scores_high(void)
{
    picture(0.05f, 0.02f, 64); /* a 2% tone step between neighbouring tiles */
    double r = score(64, 0, 0);
    printf("  2%% step on the grid: %.4f\n", r);
    CHECK(r > 1.10);
    double shifted = score(64, 32, 32); /* a grid that misses the steps sees none */
    printf("  same image, grid shifted by half a tile: %.4f\n", shifted);
    CHECK(shifted > 0.95 && shifted < 1.05);
}

static void test_bad_grids(void)
{
    ts_seam_score s;
    picture(0.0f, 0.0f, 64);
    CHECK(ts_seam_measure(img, 3, W, H, &(ts_seam_grid){W, H, 0, 0}, &s) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "no boundary") != NULL);
    CHECK(ts_seam_measure(img, 3, W, H, &(ts_seam_grid){0, 64, 0, 0}, &s) == TS_ERR_ARG);
    CHECK(ts_seam_measure(img, 3, W, H, &(ts_seam_grid){W, H, 5, 0}, &s) == 0); /* one line at x = 5 */
    CHECK(s.boundary_pairs == 3 * H);
}

TEST_MAIN(TEST(test_hand_computed), TEST(test_no_seam_scores_one), TEST(test_seam_scores_high), TEST(test_bad_grids))
