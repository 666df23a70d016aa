/*
 * Golden runner for sd1-pipeline (pipeline_sd15): the whole Stable Diffusion 1.x
 * path — text encoder, schedule, sampler with guidance, VAE — in txt2img, img2img
 * and inpaint, through the same ts_sd_generate the CLI uses.
 *
 * The case stores its prompts as CLIP ids and its initial noise, so the runner
 * encodes the ids with the checkpoint's text tower directly and hands the noise in
 * place of the RNG; everything else (sigmas, timesteps, per-step states, masks) is
 * the pipeline's own, observed through its probe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "pipeline/sd.h"
#include "text/clip_text.h"
#include "text/clip_tokenizer.h"

/* What one mode's probe collected. */
typedef struct {
    int steps, calls;
    size_t n; /* latent floats */
    float sigmas[64];
    int64_t timesteps[64];
    float *x_steps, *denoised, *latent, *latent_vae, *init_latent, *latent_mask;
} trace;

static void keep(float **dst, const ts_tensor *t)
{
    size_t bytes = (size_t)ts_tensor_numel(t) * sizeof(float);
    free(*dst);
    *dst = malloc(bytes);
    if (*dst)
        memcpy(*dst, t->data, bytes);
}

static void record(void *ctx, const char *name, int step, const ts_tensor *t)
{
    trace *tr = ctx;
    if (strcmp(name, "sigmas") == 0 && t->shape[0] <= 64)
        memcpy(tr->sigmas, t->data, (size_t)t->shape[0] * sizeof(float));
    else if (strcmp(name, "timestep") == 0 && tr->calls < 64)
        tr->timesteps[tr->calls++] = (int64_t)t->data[0];
    else if (strcmp(name, "x") == 0 && step <= tr->steps)
        memcpy(tr->x_steps + (size_t)step * tr->n, t->data, tr->n * sizeof(float));
    else if (strcmp(name, "denoised") == 0 && step < tr->steps)
        memcpy(tr->denoised + (size_t)step * tr->n, t->data, tr->n * sizeof(float));
    else if (strcmp(name, "latent") == 0)
        keep(&tr->latent, t);
    else if (strcmp(name, "latent_vae") == 0)
        keep(&tr->latent_vae, t);
    else if (strcmp(name, "init_latent") == 0)
        keep(&tr->init_latent, t);
    else if (strcmp(name, "latent_mask") == 0)
        keep(&tr->latent_mask, t);
}

static void free_trace(trace *tr)
{
    free(tr->x_steps);
    free(tr->denoised);
    free(tr->latent);
    free(tr->latent_vae);
    free(tr->init_latent);
    free(tr->latent_mask);
}

/* "euler (ComfyUI sampler_name ...)" -> "euler". */
static void first_word(golden_case *gc, const char *key, char *buf, size_t size)
{
    const cJSON *v = golden_config(gc, NULL, key);
    snprintf(buf, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
    buf[strcspn(buf, " ")] = '\0';
}

/* Encodes a stored [1, 77] id row with the checkpoint's CLIP and compares it. */
static int encode_ids(golden_case *gc, const ts_clip_text *clip, const char *in_name, const char *out_name,
                      ts_arena *arena, ts_tensor *hidden)
{
    int64_t shape[TS_ST_MAX_DIMS];
    float *f = golden_input(gc, in_name, NULL, shape);
    if (!f)
        return TS_ERR_FORMAT;
    int32_t ids[TS_CLIP_CONTEXT];
    int64_t tokens = shape[1] < TS_CLIP_CONTEXT ? shape[1] : TS_CLIP_CONTEXT;
    for (int64_t i = 0; i < tokens; i++)
        ids[i] = (int32_t)f[i];
    free(f);
    ts_clip_text_opts opts = {.clip_skip = 1, .final_norm = 1};
    int rc = ts_clip_text_forward(clip, ids, 1, tokens, &opts, arena, hidden, NULL);
    if (rc == 0)
        golden_compare(gc, out_name, hidden->data, hidden->ndim, hidden->shape);
    return rc;
}

static void compare_latent(golden_case *gc, const char *fmt, const char *mode, const float *v, int64_t rows,
                           int64_t h, int64_t w)
{
    char name[96];
    snprintf(name, sizeof name, fmt, mode);
    golden_compare(gc, name, v, 4, (int64_t[]){rows, 4, h, w});
}

/* out.sigmas for txt2img, out.<mode>.sigmas otherwise. */
static const char *out_name(char *buf, size_t size, const char *mode, const char *what)
{
    if (strcmp(mode, "txt2img") == 0)
        snprintf(buf, size, "out.%s", what);
    else
        snprintf(buf, size, "out.%s.%s", mode, what);
    return buf;
}

static int run_mode(golden_case *gc, const ts_sd_model *m, ts_sd_request req, ts_arena *arena)
{
    static const char *const names[] = {"txt2img", "img2img", "inpaint"};
    const char *mode = names[req.mode];
    int64_t h = req.height / 8, w = req.width / 8;
    trace tr = {.steps = req.steps, .n = (size_t)(4 * h * w)};
    tr.x_steps = malloc((size_t)(req.steps + 1) * tr.n * sizeof(float));
    tr.denoised = malloc((size_t)req.steps * tr.n * sizeof(float));
    float *image = malloc((size_t)3 * req.width * req.height * sizeof *image);
    req.probe = record;
    req.probe_ctx = &tr;
    int rc = tr.x_steps && tr.denoised && image ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory");
    rc = rc ? rc : ts_sd_generate(m, &req, arena, image);
    if (rc == 0 && (!tr.latent || !tr.latent_vae || tr.calls != req.steps))
        rc = ts_fail(TS_ERR_FORMAT, "%s: the pipeline did not report its latents and %d timesteps", mode, req.steps);
    if (rc == 0) {
        char name[96];
        int64_t sigma_count = req.steps + 1;
        golden_compare(gc, out_name(name, sizeof name, mode, "sigmas"), tr.sigmas, 1, &sigma_count);
        snprintf(name, sizeof name, "mid.%s.timesteps", mode);
        golden_compare_int64(gc, name, tr.timesteps, req.steps);
        compare_latent(gc, "mid.%s.x_steps", mode, tr.x_steps, req.steps + 1, h, w);
        compare_latent(gc, "mid.%s.denoised", mode, tr.denoised, req.steps, h, w);
        golden_compare(gc, out_name(name, sizeof name, mode, "latent"), tr.latent, 4, (int64_t[]){1, 4, h, w});
        golden_compare(gc, out_name(name, sizeof name, mode, "latent_vae"), tr.latent_vae, 4,
                       (int64_t[]){1, 4, h, w});
        golden_compare(gc, out_name(name, sizeof name, mode, "image"), image, 4,
                       (int64_t[]){1, 3, req.height, req.width});
        if (req.mode == TS_SD_IMG2IMG && tr.init_latent)
            golden_compare(gc, "mid.init_latent", tr.init_latent, 4, (int64_t[]){1, 4, h, w});
        if (req.mode == TS_SD_INPAINT && tr.latent_mask)
            golden_compare(gc, "mid.inpaint.latent_mask", tr.latent_mask, 4, (int64_t[]){1, 4, h, w});
    }
    free_trace(&tr);
    free(image);
    return rc;
}

typedef struct {
    ts_weights *wf;
    ts_clip_text clip;
    ts_sd_model *model;
    ts_arena *arena;
    float *noise, *image, *mask;
} pipeline_case;

static int open_case(golden_case *gc, pipeline_case *pc, char *path, size_t size)
{
    golden_model_path(gc, path, (int)size);
    ts_clip_load_opts clip_opts = {.heads = (int)golden_config_number(gc, "text_encoder", "num_attention_heads"),
                                   .act = TS_CLIP_ACT_QUICK_GELU};
    int rc = ts_weights_open(path, &pc->wf);
    const char *prefix = rc ? NULL : ts_clip_text_prefix(pc->wf, 0);
    if (rc == 0 && !prefix)
        rc = ts_fail(TS_ERR_MODEL, "%s: no CLIP text encoder", path);
    rc = rc ? rc : ts_clip_text_load(pc->wf, prefix, &clip_opts, &pc->clip);
    ts_sd_files files = {.model = path, .unet = {.num_heads = (int)golden_config_number(gc, "unet", "num_heads")}};
    rc = rc ? rc : ts_sd_load(&files, &pc->model);
    if (rc)
        return rc;
    pc->arena = ts_arena_create((size_t)1 << 30);
    pc->noise = golden_input(gc, "in.noise", NULL, NULL);
    pc->image = golden_input(gc, "in.init_image", NULL, NULL);
    pc->mask = golden_input(gc, "in.mask", NULL, NULL);
    return pc->arena && pc->noise && pc->image && pc->mask ? 0 : TS_ERR_FORMAT;
}

int golden_run_sd_pipeline(golden_case *gc)
{
    char path[4096], sampler[64], scheduler[64];
    pipeline_case pc = {0};
    ts_tensor cond = {0}, uncond = {0};
    int rc = open_case(gc, &pc, path, sizeof path);
    rc = rc ? rc : encode_ids(gc, &pc.clip, "in.cond_ids", "out.cond", pc.arena, &cond);
    rc = rc ? rc : encode_ids(gc, &pc.clip, "in.uncond_ids", "out.uncond", pc.arena, &uncond);
    ts_sd_request req = {.steps = (int)golden_config_number(gc, NULL, "steps"),
                         .cfg = golden_config_number(gc, NULL, "cfg_scale"),
                         .cond = {.context = cond},
                         .uncond = {.context = uncond},
                         .noise = pc.noise,
                         .image = pc.image,
                         .mask = pc.mask};
    const cJSON *hw = golden_config(gc, NULL, "image_hw");
    if (rc == 0 && (cJSON_GetArraySize(hw) != 2 || req.steps < 1 || req.steps >= 64))
        rc = ts_fail(TS_ERR_FORMAT, "case.json: config.image_hw or config.steps is missing or out of range");
    if (rc == 0) {
        req.height = cJSON_GetArrayItem(hw, 0)->valueint;
        req.width = cJSON_GetArrayItem(hw, 1)->valueint;
    }
    first_word(gc, "sampler", sampler, sizeof sampler);
    first_word(gc, "scheduler", scheduler, sizeof scheduler);
    rc = rc ? rc : ts_sampler_from_name(sampler, &req.sampler);
    rc = rc ? rc : ts_scheduler_from_name(scheduler, &req.scheduler);
    struct {
        ts_sd_mode mode;
        double strength;
    } modes[] = {{TS_SD_TXT2IMG, 1.0},
                 {TS_SD_IMG2IMG, golden_config_number(gc, NULL, "img2img_strength")},
                 {TS_SD_INPAINT, golden_config_number(gc, NULL, "inpaint_denoise")}};
    for (int i = 0; i < 3 && rc == 0; i++) {
        req.mode = modes[i].mode;
        req.strength = modes[i].strength;
        rc = run_mode(gc, pc.model, req, pc.arena);
    }
    free(pc.noise);
    free(pc.image);
    free(pc.mask);
    ts_arena_destroy(pc.arena);
    ts_sd_free(pc.model);
    ts_weights_close(pc.wf);
    return rc;
}
