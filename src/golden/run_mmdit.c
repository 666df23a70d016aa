/*
 * Golden runners for the SD3 / SD3.5 family ("sd3-mmdit"): the MMDiT forward cases
 * (mmdit_sd3, mmdit_sd35: in.x -> out.x) and the sampling case (sd3_sampling:
 * in.noise -> flow sigmas, CFG, Euler, the latent handed to the VAE).  Both load the
 * case's model through the ordinary loader; which case it is shows in its inputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "models/family.h"
#include "models/mmdit.h"
#include "sample/denoiser.h"
#include "sample/sampler.h"
#include "sample/schedule.h"

typedef struct {
    ts_weights *wf;
    ts_mmdit *m;
    ts_arena *arena;
} loaded_model;

static int load_model(golden_case *gc, loaded_model *lm)
{
    char path[4096];
    memset(lm, 0, sizeof *lm);
    ts_model_info info;
    int rc = ts_weights_open(golden_model_path(gc, path, sizeof path), &lm->wf);
    /* The prefix as detected: a transformer-only file (ComfyUI-GGUF's) has bare names. */
    rc = rc ? rc : ts_family_require(lm->wf, TS_FAMILY_BIT(TS_FAMILY_SD3) | TS_FAMILY_BIT(TS_FAMILY_SD35), &info);
    rc = rc ? rc : ts_mmdit_load(lm->wf, info.comp[TS_COMP_MMDIT].prefix, &lm->m);
    if (!rc && !(lm->arena = ts_arena_create((size_t)1 << 30)))
        rc = TS_ERR_NOMEM;
    return rc;
}

static void free_model(loaded_model *lm)
{
    ts_arena_destroy(lm->arena);
    ts_mmdit_free(lm->m);
    ts_weights_close(lm->wf);
}

static int run_forward(golden_case *gc, const loaded_model *lm)
{
    ts_tensor x = {0}, context = {0}, y = {0};
    x.data = golden_input(gc, "in.x", &x.ndim, x.shape);
    context.data = golden_input(gc, "in.context", &context.ndim, context.shape);
    y.data = golden_input(gc, "in.y", &y.ndim, y.shape);
    float *t = golden_input(gc, "in.t", NULL, NULL);
    int rc = x.data && context.data && y.data && t ? 0 : TS_ERR_FORMAT;
    if (!rc) {
        ts_mmdit_inputs in = {.x = &x, .timesteps = t, .context = &context, .y = &y,
                              .probe = golden_compare_probe, .probe_ctx = gc};
        ts_tensor out;
        rc = ts_mmdit_forward(lm->m, &in, lm->arena, &out);
        if (!rc)
            golden_compare(gc, "out.x", out.data, out.ndim, out.shape);
    }
    free(x.data);
    free(context.data);
    free(y.data);
    free(t);
    return rc;
}

/* ---- sampling ----------------------------------------------------------------- */

/* The network under one conditioning, as a ts_model_fn. */
typedef struct {
    const loaded_model *lm;
    ts_tensor context, y;
    int ndim;
    int64_t shape[TS_MAX_DIMS];
} conditioned;

static int mmdit_model(void *user, const float *x_in, size_t n, double timestep, float *out)
{
    conditioned *c = user;
    ts_tensor x = ts_tensor_view((float *)x_in, c->ndim, c->shape);
    if ((size_t)ts_tensor_numel(&x) != n)
        return ts_fail(TS_ERR_ARG, "MMDiT model: %zu floats for a latent of %lld", n, (long long)ts_tensor_numel(&x));
    float t = (float)timestep;
    ts_mmdit_inputs in = {.x = &x, .timesteps = &t, .context = &c->context, .y = &c->y};
    ts_tensor v;
    size_t mark = ts_arena_mark(c->lm->arena);
    int rc = ts_mmdit_forward(c->lm->m, &in, c->lm->arena, &v);
    if (!rc)
        memcpy(out, v.data, n * sizeof *out);
    ts_arena_reset(c->lm->arena, mark);
    return rc;
}

static double config_number(golden_case *gc, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(gc->json, "config"), key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Every stored out.sigmas.n<steps>_shift<shift> schedule, and out.sigmas itself. */
static int compare_schedules(golden_case *gc, const float *sigmas, int steps)
{
    int64_t len = steps + 1;
    golden_compare(gc, "out.sigmas", sigmas, 1, &len);
    for (size_t i = 0; i < ts_st_count(gc->io); i++) {
        const char *name = ts_st_at(gc->io, i)->name;
        int n;
        double shift;
        if (sscanf(name, "out.sigmas.n%d_shift%lf", &n, &shift) != 2)
            continue;
        if (n < 1 || n > TS_TRAIN_STEPS)
            return ts_fail(TS_ERR_FORMAT, "%s: %s: bad step count", gc->dir, name);
        ts_noise_schedule s;
        float got[TS_TRAIN_STEPS + 1];
        ts_noise_flow(&s, shift);
        int rc = ts_schedule_sigmas(&s, TS_SCHED_NORMAL, n, got);
        if (rc)
            return rc;
        len = n + 1;
        golden_compare(gc, name, got, 1, &len);
    }
    return 0;
}

typedef struct {
    golden_case *gc;
    int ndim;
    const int64_t *shape;
} step_trace;

/* x at the start of step i > 0 is the result of step i; denoised is D at step i. */
static int trace_step(void *user, int i, int steps, double sigma, const float *x, const float *denoised)
{
    (void)steps;
    (void)sigma;
    step_trace *t = user;
    char name[64];
    snprintf(name, sizeof name, "mid.denoised_step%d", i);
    golden_compare(t->gc, name, denoised, t->ndim, t->shape);
    if (i > 0) {
        snprintf(name, sizeof name, "out.x_step%d", i);
        golden_compare(t->gc, name, x, t->ndim, t->shape);
    }
    return 0;
}

static int run_sampling(golden_case *gc, const loaded_model *lm)
{
    int steps = (int)config_number(gc, "steps");
    double shift = config_number(gc, "shift"), scale = config_number(gc, "cfg_scale");
    if (steps < 1 || steps > TS_TRAIN_STEPS || shift <= 0 || scale < 0)
        return ts_fail(TS_ERR_FORMAT, "%s: config needs steps, shift and cfg_scale", gc->dir);
    conditioned cond = {.lm = lm}, uncond = {.lm = lm};
    float *noise = golden_input(gc, "in.noise", &cond.ndim, cond.shape);
    cond.context.data = golden_input(gc, "in.context_cond", &cond.context.ndim, cond.context.shape);
    cond.y.data = golden_input(gc, "in.y_cond", &cond.y.ndim, cond.y.shape);
    uncond.context.data = golden_input(gc, "in.context_uncond", &uncond.context.ndim, uncond.context.shape);
    uncond.y.data = golden_input(gc, "in.y_uncond", &uncond.y.ndim, uncond.y.shape);
    uncond.ndim = cond.ndim;
    memcpy(uncond.shape, cond.shape, sizeof cond.shape);
    ts_tensor latent = ts_tensor_view(noise, cond.ndim, cond.shape);
    size_t n = noise ? (size_t)ts_tensor_numel(&latent) : 0;
    float *x = malloc((n ? n : 1) * sizeof *x);
    float sigmas[TS_TRAIN_STEPS + 1];
    ts_noise_schedule s;
    ts_noise_flow(&s, shift);
    int rc = noise && cond.context.data && cond.y.data && uncond.context.data && uncond.y.data ? 0 : TS_ERR_FORMAT;
    if (!rc && !x)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    rc = rc ? rc : ts_schedule_sigmas(&s, TS_SCHED_NORMAL, steps, sigmas);
    rc = rc ? rc : compare_schedules(gc, sigmas, steps);
    if (!rc) {
        ts_model_denoiser dc = {mmdit_model, &cond, TS_PRED_FLOW, &s, 0};
        ts_model_denoiser du = {mmdit_model, &uncond, TS_PRED_FLOW, &s, 0};
        ts_cfg_denoiser cfg = {ts_model_denoise, &dc, ts_model_denoise, &du, scale};
        step_trace tr = {gc, cond.ndim, cond.shape};
        ts_sampler_config sc = ts_sampler_config_default();
        sc.denoise = ts_cfg_denoise;
        sc.denoise_user = &cfg;
        sc.on_step = trace_step;
        sc.step_user = &tr;
        ts_pred_noise_scaling(TS_PRED_FLOW, sigmas[0], noise, NULL, ts_noise_full_denoise(&s, sigmas[0]), x, n);
        rc = ts_sample(TS_SAMPLER_EULER, &sc, x, n, sigmas, steps);
    }
    if (!rc) {
        char name[64];
        snprintf(name, sizeof name, "out.x_step%d", steps);
        golden_compare(gc, name, x, cond.ndim, cond.shape);
        golden_compare(gc, "out.x", x, cond.ndim, cond.shape);
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] / TS_SD3_LATENT_SCALE + TS_SD3_LATENT_SHIFT;
        golden_compare(gc, "out.latent_out", x, cond.ndim, cond.shape);
    }
    free(x);
    free(noise);
    free(cond.context.data);
    free(cond.y.data);
    free(uncond.context.data);
    free(uncond.y.data);
    return rc;
}

int golden_run_mmdit(golden_case *gc)
{
    loaded_model lm;
    int rc = load_model(gc, &lm);
    if (!rc)
        rc = ts_st_find(gc->io, "in.noise") ? run_sampling(gc, &lm) : run_forward(gc, &lm);
    free_model(&lm);
    return rc;
}
