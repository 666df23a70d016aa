/*
 * Golden runner for flux-pipeline (pipeline_flux): the whole Flux.1 schnell path —
 * T5 + CLIP-L conditioning, schedule, Euler loop over packed tokens, AutoEncoder —
 * through the same ts_flux_encode_ids / ts_flux_generate the CLI uses.
 *
 * The case stores both prompts' token ids (its T5 ids are synthetic: the tiny T5 has
 * no tokenizer) and the initial noise, so the runner feeds those; everything else
 * (schedule, position ids, per-step tokens) is the pipeline's own, observed through
 * its probe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "pipeline/flux.h"

/* A stored [1, T] id row as int32; *tokens receives T. */
static int32_t *read_ids(golden_case *gc, const char *name, int64_t *tokens)
{
    int ndim;
    int64_t shape[TS_ST_MAX_DIMS];
    float *f = golden_input(gc, name, &ndim, shape);
    if (!f)
        return NULL;
    *tokens = shape[ndim - 1];
    int32_t *ids = malloc((size_t)*tokens * sizeof *ids);
    for (int64_t i = 0; ids && i < *tokens; i++)
        ids[i] = (int32_t)f[i];
    free(f);
    return ids;
}

typedef struct {
    golden_case *gc;
    int steps;
} probe_ctx;

/* Every probed tensor with a stored counterpart: "img" at step 0 is mid.img, at step
 * K < steps mid.img_stepK, at the end out.img; "sigmas" is out.timesteps. */
static void compare_probe(void *ctx, const char *name, int step, const ts_tensor *t)
{
    golden_case *gc = ((probe_ctx *)ctx)->gc;
    int steps = ((probe_ctx *)ctx)->steps;
    char key[64];
    if (strcmp(name, "img") == 0) {
        if (step == 0)
            snprintf(key, sizeof key, "mid.img");
        else if (step < steps)
            snprintf(key, sizeof key, "mid.img_step%d", step);
        else
            snprintf(key, sizeof key, "out.img");
    } else if (strcmp(name, "sigmas") == 0) {
        snprintf(key, sizeof key, "out.timesteps");
    } else {
        snprintf(key, sizeof key, "%s.%s", strcmp(name, "latent") == 0 ? "out" : "mid", name);
    }
    golden_compare(gc, key, t->data, t->ndim, t->shape);
}

int golden_run_flux_pipeline(golden_case *gc)
{
    char paths[4][4096];
    ts_flux_files files = {.model = golden_model_path(gc, paths[0], sizeof paths[0]),
                           .ae = golden_path(gc, "ae.safetensors", paths[1], sizeof paths[1]),
                           .clip_l = golden_path(gc, "clip_l.safetensors", paths[2], sizeof paths[2]),
                           .t5 = golden_path(gc, "t5.safetensors", paths[3], sizeof paths[3]),
                           .flux = golden_flux_rope(golden_config(gc, NULL, "transformer")),
                           .clip_heads = (int)golden_config_number(gc, "clip_l", "num_attention_heads")};
    ts_flux_model *m = NULL;
    ts_arena *arena = ts_arena_create((size_t)1 << 30);
    int64_t t5_tokens = 0, clip_tokens = 0;
    int32_t *t5_ids = read_ids(gc, "in.t5_ids", &t5_tokens), *clip_ids = read_ids(gc, "in.clip_ids", &clip_tokens);
    float *noise = golden_input(gc, "in.noise", NULL, NULL), *latent = NULL, *image = NULL;
    int rc = arena && t5_ids && clip_ids && noise ? 0 : ts_fail(TS_ERR_FORMAT, "pipeline_flux: an input is missing");
    rc = rc ? rc : ts_flux_model_load(&files, &m);
    ts_flux_cond cond;
    rc = rc ? rc : ts_flux_encode_ids(m, t5_ids, t5_tokens, clip_ids, clip_tokens, arena, &cond);
    if (rc == 0) {
        golden_compare(gc, "out.txt", cond.txt.data, cond.txt.ndim, cond.txt.shape);
        golden_compare(gc, "out.vec", cond.vec.data, cond.vec.ndim, cond.vec.shape);
    }
    const cJSON *hw = golden_config(gc, NULL, "image_hw");
    ts_flux_request req = {.steps = (int)golden_config_number(gc, NULL, "num_steps"),
                           .shift = cJSON_IsTrue(golden_config(gc, NULL, "shift")),
                           .guidance = golden_config_number(gc, NULL, "guidance"),
                           .cond = &cond,
                           .noise = noise};
    if (rc == 0 && cJSON_GetArraySize(hw) != 2)
        rc = ts_fail(TS_ERR_FORMAT, "case.json: config.image_hw is missing");
    if (rc == 0) {
        req.height = cJSON_GetArrayItem(hw, 0)->valueint;
        req.width = cJSON_GetArrayItem(hw, 1)->valueint;
        latent = malloc((size_t)16 * (req.height / 8) * (req.width / 8) * sizeof *latent);
        image = malloc((size_t)3 * req.height * req.width * sizeof *image);
        if (!latent || !image)
            rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    probe_ctx pc = {gc, req.steps};
    req.probe = compare_probe;
    req.probe_ctx = &pc;
    rc = rc ? rc : ts_flux_generate(m, &req, arena, latent, image);
    if (rc == 0)
        golden_compare(gc, "out.image", image, 4, (int64_t[]){1, 3, req.height, req.width});
    free(latent);
    free(image);
    free(noise);
    free(t5_ids);
    free(clip_ids);
    ts_flux_model_free(m);
    ts_arena_destroy(arena);
    return rc;
}
