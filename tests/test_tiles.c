/*
 * Tile planning and blending (pipeline/tiles.h): coverage, overlap, alignment, and
 * that blending tiles cut from one canvas gives the canvas back.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pipeline/tiles.h"
#include "test.h"

/* Every pixel covered; tiles inside the canvas, aligned, first at 0 and last on the
 * edge; horizontally or vertically adjacent tiles overlap by at least `overlap`. */
static void check_plan(int h, int w, int size, int overlap, int align)
{
    ts_tile_config c = {size, overlap, 1, TS_TILE_BLEND_UNIFORM};
    ts_tile_plan p;
    CHECK(ts_tile_plan_init(&p, h, w, &c, align) == 0);
    unsigned char *covered = calloc((size_t)h * w, 1);
    int max_x = 0, max_y = 0;
    for (int t = 0; t < p.count; t++) {
        ts_tile o = p.tiles[t];
        CHECK(o.y % align == 0 && o.x % align == 0);
        CHECK(o.y >= 0 && o.x >= 0 && o.y + p.th <= h && o.x + p.tw <= w);
        max_x = o.x > max_x ? o.x : max_x;
        max_y = o.y > max_y ? o.y : max_y;
        for (int y = 0; y < p.th; y++)
            memset(covered + (size_t)(o.y + y) * w + o.x, 1, (size_t)p.tw);
        if (t + 1 < p.count && p.tiles[t + 1].y == o.y)
            CHECK_MSG(o.x + p.tw - p.tiles[t + 1].x >= overlap, "%dx%d tile %d overlaps by %d", w, h, t,
                      o.x + p.tw - p.tiles[t + 1].x);
    }
    CHECK(max_x == w - p.tw && max_y == h - p.th);
    for (size_t i = 0; i < (size_t)h * w; i++)
        CHECK(covered[i]);
    /* Rows of tiles: the vertical spacing obeys the same bound. */
    for (int t = 0; t < p.count; t++)
        for (int u = t + 1; u < p.count; u++)
            if (p.tiles[u].x == p.tiles[t].x && p.tiles[u].y > p.tiles[t].y) {
                CHECK(p.tiles[t].y + p.th - p.tiles[u].y >= overlap);
                break;
            }
    free(covered);
    ts_tile_plan_free(&p);
}

static void test_plans_cover_and_overlap(void)
{
    check_plan(64, 64, 64, 16, 8);     /* one tile */
    check_plan(512, 512, 64, 16, 8);   /* a 4096 px SD1.5 canvas */
    check_plan(136, 200, 64, 16, 8);   /* ragged */
    check_plan(128, 96, 64, 17, 2);    /* overlap not a multiple of the alignment */
    check_plan(1024, 1024, 128, 32, 4);
    check_plan(40, 200, 64, 8, 8);     /* tile larger than one side */
}

static void test_plan_counts(void)
{
    ts_tile_config c = {64, 16, 1, TS_TILE_BLEND_UNIFORM};
    ts_tile_plan p;
    CHECK(ts_tile_plan_init(&p, 512, 512, &c, 8) == 0);
    /* Stride at most 48 over 448 pixels of travel: 10 steps, 11 tiles a side. */
    CHECK(p.count == 121);
    ts_tile_plan_free(&p);
    CHECK(ts_tile_plan_init(&p, 64, 128, &c, 8) == 0);
    CHECK(p.count == 3 && p.th == 64 && p.tw == 64); /* 64 of travel at stride <= 48 */
    ts_tile_plan_free(&p);
}

/* Cropping a canvas into tiles and blending them back is the identity, for both
 * weightings and with a mask that is positive everywhere. */
static void test_crop_blend_round_trip(void)
{
    enum { C = 3, H = 40, W = 56 };
    static float canvas[C * H * W], acc[C * H * W], wsum[H * W], mask[H * W], tile[C * 64 * 64];
    for (int i = 0; i < C * H * W; i++)
        canvas[i] = (float)sin(0.37 * i) * 3;
    for (int i = 0; i < H * W; i++)
        mask[i] = 0.25f + (float)(i % 7) / 7;
    for (int blend = 0; blend < 2; blend++)
        for (int masked = 0; masked < 2; masked++) {
            ts_tile_config c = {16, 6, 1, (ts_tile_blend)blend};
            ts_tile_plan p;
            CHECK(ts_tile_plan_init(&p, H, W, &c, 2) == 0);
            CHECK(p.count > 4);
            memset(acc, 0, sizeof acc);
            memset(wsum, 0, sizeof wsum);
            for (int t = 0; t < p.count; t++) {
                ts_tile_crop(&p, t, canvas, C, tile);
                ts_tile_accumulate(&p, t, tile, C, masked ? mask : NULL, acc, wsum);
            }
            ts_tile_normalize(acc, wsum, C, (size_t)H * W);
            for (int i = 0; i < C * H * W; i++)
                CHECK_NEAR(acc[i], canvas[i], 1e-5 * (1 + fabs(canvas[i])));
            ts_tile_plan_free(&p);
        }
}

/* Gaussian weights: largest in the middle, tiny but positive at the edges. */
static void test_gaussian_weights(void)
{
    ts_tile_config c = {64, 16, 1, TS_TILE_BLEND_GAUSSIAN};
    ts_tile_plan p;
    CHECK(ts_tile_plan_init(&p, 128, 128, &c, 8) == 0);
    float centre = p.weight[31 * 64 + 31], edge = p.weight[0];
    CHECK(edge > 0 && centre > 1000 * edge);
    CHECK(p.weight[31 * 64 + 31] == p.weight[32 * 64 + 32]); /* symmetric about the centre */
    ts_tile_plan_free(&p);
    /* A lone tile blends with weight 1, so an untiled run stays exact. */
    CHECK(ts_tile_plan_init(&p, 64, 64, &c, 8) == 0);
    CHECK(p.count == 1 && p.weight[0] == 1.0f && p.weight[31 * 64 + 31] == 1.0f);
    ts_tile_plan_free(&p);
}

static void test_touches(void)
{
    enum { H = 32, W = 32 };
    static float mask[H * W];
    mask[5 * W + 30] = 1; /* top right */
    ts_tile_config c = {16, 0, 1, TS_TILE_BLEND_UNIFORM};
    ts_tile_plan p;
    CHECK(ts_tile_plan_init(&p, H, W, &c, 8) == 0);
    CHECK(p.count == 4);
    CHECK(!ts_tile_touches(&p, 0, mask) && ts_tile_touches(&p, 1, mask));
    CHECK(!ts_tile_touches(&p, 2, mask) && !ts_tile_touches(&p, 3, mask));
    ts_tile_plan_free(&p);
}

static void test_bad_configurations(void)
{
    ts_tile_plan p;
    ts_tile_config c = {64, 16, 1, TS_TILE_BLEND_UNIFORM};
    CHECK(ts_tile_plan_init(&p, 100, 128, &c, 8) == TS_ERR_ARG); /* canvas not aligned */
    c.size = 60;
    CHECK(ts_tile_plan_init(&p, 128, 128, &c, 8) == TS_ERR_ARG); /* tile not aligned */
    c = (ts_tile_config){64, 64, 1, TS_TILE_BLEND_UNIFORM};
    CHECK(ts_tile_plan_init(&p, 128, 128, &c, 8) == TS_ERR_ARG); /* overlap = size */
    c = (ts_tile_config){64, 60, 1, TS_TILE_BLEND_UNIFORM};
    CHECK(ts_tile_plan_init(&p, 128, 128, &c, 8) == TS_ERR_ARG); /* no stride left at the alignment */
    c = (ts_tile_config){64, 8, 0, TS_TILE_BLEND_UNIFORM};
    CHECK(ts_tile_plan_init(&p, 128, 128, &c, 8) == TS_ERR_ARG); /* batch 0 */
    ts_tile_blend b;
    CHECK(ts_tile_blend_from_name("mixture", &b) == 0 && b == TS_TILE_BLEND_GAUSSIAN);
    CHECK(ts_tile_blend_from_name("multidiffusion", &b) == 0 && b == TS_TILE_BLEND_UNIFORM);
    CHECK(ts_tile_blend_from_name("feather", &b) == TS_ERR_ARG);
}

typedef struct {
    int next, calls, stop_at;
} batch_log;

static int log_batch(void *user, int first, int count)
{
    batch_log *b = user;
    CHECK(first == b->next && count >= 1 && count <= 3);
    b->next += count;
    return ++b->calls == b->stop_at ? ts_fail(TS_ERR_ARG, "stop") : 0;
}

/* Batches cover the tiles in order, at most `batch` at a time; an error stops them. */
static void test_each_batch(void)
{
    ts_tile_config c = {16, 4, 3, TS_TILE_BLEND_UNIFORM};
    ts_tile_plan p;
    CHECK(ts_tile_plan_init(&p, 40, 64, &c, 4) == 0);
    ts_arena *arena = ts_arena_create((size_t)1 << 20);
    batch_log b = {0};
    CHECK(ts_tile_each_batch(&p, 3, arena, log_batch, &b) == 0);
    CHECK(b.next == p.count && b.calls == (p.count + 2) / 3);
    b = (batch_log){.stop_at = 2};
    CHECK(ts_tile_each_batch(&p, 3, arena, log_batch, &b) == TS_ERR_ARG && b.calls == 2);
    ts_arena_destroy(arena);
    ts_tile_plan_free(&p);
}

TEST_MAIN(TEST(test_plans_cover_and_overlap), TEST(test_plan_counts), TEST(test_crop_blend_round_trip),
          TEST(test_gaussian_weights), TEST(test_touches), TEST(test_bad_configurations), TEST(test_each_batch))
