/*
 * MMDiT (SD3 / SD3.5) checks beyond the golden cases, on the golden cases' tiny
 * models: the config read from the file, batch independence (the golden cases run
 * batch 1, and every per-item offset in the adaLN and joint-attention code would
 * hide there), the pos_embed crop at another latent size against the stored grid,
 * and bad inputs failing with an error instead of crashing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "models/mmdit.h"
#include "golden_file.h"
#include "test.h"

static void fill(float *p, int64_t n, unsigned long long seed)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = test_randf(&seed);
}

static void test_config(void)
{
    static const char *cases[] = {"mmdit_sd3", "mmdit_sd35"};
    for (int i = 0; i < 2; i++) {
        ts_weights *st = test_open_golden_weights(cases[i], "model.safetensors");
        ts_mmdit *m = NULL;
        CHECK(st && ts_mmdit_load(st, "model.diffusion_model.", &m) == 0);
        if (m) {
            CHECK(ts_mmdit_in_channels(m) == 16);
            CHECK(ts_mmdit_patch_size(m) == 2);
            CHECK(ts_mmdit_context_dim(m) == 48);
            CHECK(ts_mmdit_adm_channels(m) == 32);
            CHECK(ts_mmdit_pos_embed_size(m) == 16);
        }
        ts_mmdit_free(m);
        /* The UNet's prefix holds no MMDiT: an error naming it, not a crash. */
        CHECK(st && ts_mmdit_load(st, "first_stage_model.", &m) == TS_ERR_MODEL && m == NULL);
        ts_weights_close(st);
    }
}

enum { B = 2, C = 16, H = 8, W = 10, LC = 5, DC = 48, ADM = 32 };

typedef struct {
    float x[B * C * H * W], ctx[B * LC * DC], y[B * ADM], t[B];
} batch_inputs;

static int forward(const ts_mmdit *m, ts_arena *arena, float *x, int b, float *ctx, float *y, float *t,
                   ts_mmdit_probe probe, void *probe_ctx, ts_tensor *out)
{
    ts_tensor tx = ts_tensor_view(x, 4, (int64_t[]){b, C, H, W});
    ts_tensor tc = ts_tensor_view(ctx, 3, (int64_t[]){b, LC, DC});
    ts_tensor ty = ts_tensor_view(y, 2, (int64_t[]){b, ADM});
    ts_mmdit_inputs in = {.x = &tx, .timesteps = t, .context = &tc, .y = &ty, .probe = probe, .probe_ctx = probe_ctx};
    return ts_mmdit_forward(m, &in, arena, out);
}

/* A golden MMDiT with an arena and room for a batch of inputs. */
typedef struct {
    ts_weights *st;
    ts_mmdit *m;
    ts_arena *arena;
    batch_inputs *in;
} fixture;

/* Whether everything loaded (a failure is a failed check). */
static int fixture_open(fixture *f, const char *case_name)
{
    *f = (fixture){test_open_golden_weights(case_name, "model.safetensors"), NULL, NULL, NULL};
    CHECK(f->st && ts_mmdit_load(f->st, "model.diffusion_model.", &f->m) == 0);
    f->arena = ts_arena_create((size_t)1 << 28);
    f->in = malloc(sizeof *f->in);
    return f->m && f->arena && f->in;
}

static void fixture_close(fixture *f)
{
    free(f->in);
    ts_arena_destroy(f->arena);
    ts_mmdit_free(f->m);
    ts_weights_close(f->st);
}

/* Batch of two (SD3.5: qk-norm and attn2) equals each item run alone. */
static void test_batch_matches_single(void)
{
    fixture f;
    ts_mmdit *m = NULL;
    ts_arena *arena = NULL;
    batch_inputs *in = NULL;
    if (!fixture_open(&f, "mmdit_sd35"))
        goto done;
    m = f.m;
    arena = f.arena;
    in = f.in;
    fill(in->x, B * C * H * W, 1);
    fill(in->ctx, B * LC * DC, 2);
    fill(in->y, B * ADM, 3);
    in->t[0] = 250.0f;
    in->t[1] = 900.0f;
    ts_tensor both, one;
    CHECK(forward(m, arena, in->x, B, in->ctx, in->y, in->t, NULL, NULL, &both) == 0);
    CHECK(both.shape[0] == B && both.shape[1] == C && both.shape[2] == H && both.shape[3] == W);
    int64_t per = C * H * W;
    for (int b = 0; b < B; b++) {
        size_t mark = ts_arena_mark(arena);
        CHECK(forward(m, arena, in->x + b * per, 1, in->ctx + b * LC * DC, in->y + b * ADM, in->t + b, NULL, NULL,
                      &one) == 0);
        double worst = 0, scale = 0;
        for (int64_t i = 0; i < per; i++) {
            worst = fmax(worst, fabs((double)one.data[i] - both.data[b * per + i]));
            scale = fmax(scale, fabs((double)one.data[i]));
        }
        CHECK_MSG(scale > 0 && worst <= 1e-5 * scale, "item %d differs by %g (scale %g)", b, worst, scale);
        ts_arena_reset(arena, mark);
    }
    /* The two items differ, so the comparison above could fail. */
    CHECK(fabs((double)both.data[0] - both.data[per]) > 0);
done:
    fixture_close(&f);
}

typedef struct {
    float *got;
    int64_t n;
} captured;

static void capture_pos(void *ctx, const char *name, const ts_tensor *t)
{
    captured *c = ctx;
    if (strcmp(name, "mid.pos_embed_cropped") != 0)
        return;
    c->n = ts_tensor_numel(t);
    c->got = malloc((size_t)c->n * sizeof(float));
    if (c->got)
        memcpy(c->got, t->data, (size_t)c->n * sizeof(float));
}

/* A 4 x 5 patch latent takes rows 6..9, cols 5..9 of the 16 x 16 stored grid. */
static void test_pos_embed_crop(void)
{
    ts_weights *st = test_open_golden_weights("mmdit_sd3", "model.safetensors");
    ts_mmdit *m = NULL;
    CHECK(st && ts_mmdit_load(st, "model.diffusion_model.", &m) == 0);
    ts_arena *arena = ts_arena_create((size_t)1 << 28);
    batch_inputs *in = calloc(1, sizeof *in);
    captured cap = {0};
    const ts_weight_info *grid = st ? ts_weights_find(st, "", "model.diffusion_model.pos_embed") : NULL;
    ts_tensor out;
    if (!m || !arena || !in || !grid || grid->dtype != TS_DTYPE_F32)
        goto done;
    CHECK(forward(m, arena, in->x, 1, in->ctx, in->y, in->t, capture_pos, &cap, &out) == 0);
    const float *all = ts_weights_data(st, grid);
    int64_t d = grid->shape[2], h = H / 2, w = W / 2;
    CHECK(cap.got && cap.n == h * w * d);
    for (int64_t i = 0; cap.got && i < h; i++)
        for (int64_t j = 0; j < w; j++)
            CHECK(memcmp(cap.got + (i * w + j) * d, all + ((6 + i) * 16 + 5 + j) * d, (size_t)d * sizeof(float)) == 0);
done:
    free(cap.got);
    free(in);
    ts_arena_destroy(arena);
    ts_mmdit_free(m);
    ts_weights_close(st);
}

static int run_shape(const ts_mmdit *m, ts_arena *arena, int64_t h, int64_t w, int64_t dc, int with_y)
{
    float *x = calloc((size_t)(C * h * w), sizeof(float)), ctx[LC * 64] = {0}, y[ADM] = {0}, t = 500.0f;
    ts_tensor tx = ts_tensor_view(x, 4, (int64_t[]){1, C, h, w});
    ts_tensor tc = ts_tensor_view(ctx, 3, (int64_t[]){1, LC, dc});
    ts_tensor ty = ts_tensor_view(y, 2, (int64_t[]){1, ADM});
    ts_mmdit_inputs in = {.x = &tx, .timesteps = &t, .context = &tc, .y = with_y ? &ty : NULL};
    ts_tensor out;
    int rc = x ? ts_mmdit_forward(m, &in, arena, &out) : TS_ERR_NOMEM;
    free(x);
    return rc;
}

static void test_bad_inputs(void)
{
    ts_weights *st = test_open_golden_weights("mmdit_sd3", "model.safetensors");
    ts_mmdit *m = NULL;
    CHECK(st && ts_mmdit_load(st, "model.diffusion_model.", &m) == 0);
    ts_arena *arena = ts_arena_create((size_t)1 << 28);
    if (m && arena) {
        CHECK(run_shape(m, arena, 34, 8, DC, 1) == TS_ERR_ARG);   /* beyond pos_embed */
        CHECK(run_shape(m, arena, 15, 8, DC, 1) == TS_ERR_ARG);   /* not whole patches */
        CHECK(run_shape(m, arena, 8, 8, DC + 1, 1) == TS_ERR_ARG); /* wrong context width */
        CHECK(run_shape(m, arena, 8, 8, DC, 0) == TS_ERR_ARG);    /* no pooled vector */
        CHECK(ts_arena_used(arena) == 0); /* failures leave nothing behind */
        CHECK(run_shape(m, arena, 32, 32, DC, 1) == 0); /* the whole grid */
    }
    ts_arena_destroy(arena);
    ts_mmdit_free(m);
    ts_weights_close(st);
}

/* Windows at given origins (tiles of a larger canvas): the centred origin is the
 * default window, another origin changes the prediction, and one leaving the grid is
 * refused. */
static void test_pos_origin(void)
{
    fixture f;
    ts_mmdit *m = NULL;
    ts_arena *arena = NULL;
    batch_inputs *in = NULL;
    if (!fixture_open(&f, "mmdit_sd3"))
        goto done;
    m = f.m;
    arena = f.arena;
    in = f.in;
    int64_t per = C * H * W;
    fill(in->x, per, 4);
    fill(in->ctx, LC * DC, 5);
    fill(in->y, ADM, 6);
    memcpy(in->x + per, in->x, per * sizeof(float));
    memcpy(in->ctx + LC * DC, in->ctx, LC * DC * sizeof(float));
    memcpy(in->y + ADM, in->y, ADM * sizeof(float));
    in->t[0] = in->t[1] = 600.0f;
    ts_tensor tx = ts_tensor_view(in->x, 4, (int64_t[]){B, C, H, W});
    ts_tensor tc = ts_tensor_view(in->ctx, 3, (int64_t[]){B, LC, DC});
    ts_tensor ty = ts_tensor_view(in->y, 2, (int64_t[]){B, ADM});
    int origins[4] = {6, 5, 0, 11}; /* the centred 4 x 5 window of 16 x 16, and the top right corner */
    ts_mmdit_inputs mi = {.x = &tx, .timesteps = in->t, .context = &tc, .y = &ty, .pos_origin = origins};
    ts_tensor placed, centred;
    CHECK(ts_mmdit_forward(m, &mi, arena, &placed) == 0);
    mi.pos_origin = NULL;
    CHECK(ts_mmdit_forward(m, &mi, arena, &centred) == 0);
    CHECK(memcmp(placed.data, centred.data, per * sizeof(float)) == 0);
    double moved = 0;
    for (int64_t i = 0; i < per; i++)
        moved = fmax(moved, fabs((double)placed.data[per + i] - centred.data[per + i]));
    CHECK_MSG(moved > 1e-3, "another window changed the prediction by only %g", moved);
    int outside[4] = {6, 5, 13, 0}; /* rows 13..16 of 16 */
    mi.pos_origin = outside;
    CHECK(ts_mmdit_forward(m, &mi, arena, &placed) == TS_ERR_ARG);
done:
    fixture_close(&f);
}

TEST_MAIN(TEST(test_config), TEST(test_batch_matches_single), TEST(test_pos_embed_crop), TEST(test_bad_inputs), TEST(test_pos_origin))
