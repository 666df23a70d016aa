/*
 * Golden runner for the Flux.1 cases (family "flux"): flux_schnell and flux_dev test
 * packing, one forward pass and unpacking; flux_sampling (the case with in.noise)
 * tests get_schedule and the Euler loop of flux.sampling.denoise.
 *
 * The cases give tolerances for out.* only, so the mid.* tensors the model reports
 * are printed as diagnostics (max_abs against the stored value, not counted): they
 * show where a mismatch starts without inventing a tolerance the case does not set.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "models/flux.h"
#include "sample/sampler.h"
#include "sample/schedule.h"

static void report_probe(void *ctx, const char *name, const ts_tensor *t)
{
    golden_case *gc = ctx;
    const ts_st_tensor *want_t = ts_st_find(gc->io, name);
    int64_t n = ts_tensor_numel(t);
    if (!want_t || (int64_t)ts_st_numel(want_t) != n)
        return;
    float *want = golden_input(gc, name, NULL, NULL);
    if (!want)
        return;
    double max_abs = 0;
    for (int64_t i = 0; i < n; i++)
        max_abs = fmax(max_abs, fabs((double)t->data[i] - want[i]));
    printf("  %-40s max_abs=%.3g  (diagnostic, no tolerance in case)\n", name, max_abs);
    free(want);
}

ts_flux_config golden_flux_rope(const cJSON *config)
{
    ts_flux_config cfg = ts_flux_config_default();
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(config, "axes_dim");
    const cJSON *theta = cJSON_GetObjectItemCaseSensitive(config, "theta");
    if (cJSON_IsArray(axes) && cJSON_GetArraySize(axes) <= TS_FLUX_MAX_AXES) {
        cfg.n_axes = cJSON_GetArraySize(axes);
        for (int a = 0; a < cfg.n_axes; a++)
            cfg.axes_dim[a] = cJSON_GetArrayItem(axes, a)->valueint;
    }
    if (cJSON_IsNumber(theta))
        cfg.theta = theta->valuedouble;
    return cfg;
}

/* config.model, or config itself, holds axes_dim and theta. */
static ts_flux_config case_config(golden_case *gc)
{
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(config, "model");
    return golden_flux_rope(model ? model : config);
}

/* What both kinds of case feed the model besides the image tokens. */
typedef struct {
    ts_weights *wf;
    ts_flux *flux;
    ts_arena *arena;
    ts_tensor img, img_ids, txt, txt_ids, y;
} flux_case;

static void close_case(flux_case *c)
{
    float *inputs[] = {c->img.data, c->img_ids.data, c->txt.data, c->txt_ids.data, c->y.data};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++)
        free(inputs[i]);
    ts_arena_destroy(c->arena);
    ts_flux_free(c->flux);
    ts_weights_close(c->wf);
}

static int open_case(golden_case *gc, flux_case *c)
{
    char path[4096];
    memset(c, 0, sizeof *c);
    int rc = ts_weights_open(golden_model_path(gc, path, sizeof path), &c->wf);
    rc = rc ? rc : ts_flux_load(c->wf, "", case_config(gc), &c->flux);
    if (rc)
        return rc;
    c->arena = ts_arena_create((size_t)1 << 30);
    c->img.data = golden_input(gc, "in.img", &c->img.ndim, c->img.shape);
    c->img_ids.data = golden_input(gc, "in.img_ids", &c->img_ids.ndim, c->img_ids.shape);
    c->txt.data = golden_input(gc, "in.txt", &c->txt.ndim, c->txt.shape);
    c->txt_ids.data = golden_input(gc, "in.txt_ids", &c->txt_ids.ndim, c->txt_ids.shape);
    c->y.data = golden_input(gc, "in.y", &c->y.ndim, c->y.shape);
    if (!c->arena || !c->img.data || !c->img_ids.data || !c->txt.data || !c->txt_ids.data || !c->y.data)
        return TS_ERR_FORMAT;
    return 0;
}

static ts_flux_inputs model_inputs(golden_case *gc, flux_case *c, const float *timesteps, const float *guidance)
{
    return (ts_flux_inputs){.img = &c->img, .img_ids = &c->img_ids, .txt = &c->txt, .txt_ids = &c->txt_ids,
                            .y = &c->y, .timesteps = timesteps, .guidance = guidance, .probe = report_probe,
                            .probe_ctx = gc};
}

/* flux_schnell / flux_dev: pack in.latent, one forward pass on in.img, unpack. */
static int run_forward(golden_case *gc, flux_case *c)
{
    ts_tensor latent = {0};
    float *timesteps = golden_input(gc, "in.timesteps", NULL, NULL), *guidance = NULL, *packed = NULL,
          *unpacked = NULL;
    latent.data = golden_input(gc, "in.latent", &latent.ndim, latent.shape);
    if (ts_flux_has_guidance(c->flux))
        guidance = golden_input(gc, "in.guidance", NULL, NULL);
    int rc = timesteps && latent.data && latent.ndim == 4 && (guidance || !ts_flux_has_guidance(c->flux))
                 ? 0
                 : ts_fail(TS_ERR_FORMAT, "flux case lacks an input");
    int64_t n = rc ? 0 : ts_tensor_numel(&latent);
    if (!rc && (!(packed = malloc((size_t)n * sizeof(float))) || !(unpacked = malloc((size_t)n * sizeof(float)))))
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    const int64_t *ls = latent.shape;
    if (!rc) {
        ts_flux_pack(latent.data, ls[0], ls[1], ls[2], ls[3], packed);
        golden_compare(gc, "out.packed", packed, 3, (int64_t[]){ls[0], ls[2] / 2 * (ls[3] / 2), ls[1] * 4});
        ts_flux_inputs in = model_inputs(gc, c, timesteps, guidance);
        ts_tensor pred;
        rc = ts_flux_forward(c->flux, &in, c->arena, &pred);
        if (!rc) {
            golden_compare(gc, "out.pred", pred.data, pred.ndim, pred.shape);
            ts_flux_unpack(pred.data, ls[0], ls[1], ls[2], ls[3], unpacked);
            golden_compare(gc, "out.pred_unpacked", unpacked, 4, ls);
        }
    }
    free(latent.data);
    free(timesteps);
    free(guidance);
    free(packed);
    free(unpacked);
    return rc;
}

/* Every out.schedule.n<steps>_len<L>_<shift|noshift> against ts_schedule_flux. */
static int compare_schedules(golden_case *gc)
{
    for (size_t i = 0; i < ts_st_count(gc->io); i++) {
        const char *name = ts_st_at(gc->io, i)->name;
        int steps;
        long long len;
        char mode[16];
        if (sscanf(name, "out.schedule.n%d_len%lld_%15s", &steps, &len, mode) != 3 || steps < 1 || steps > 10000)
            continue;
        float sigmas[10001];
        int rc = ts_schedule_flux(steps, len, strcmp(mode, "shift") == 0, 0.5, 1.15, sigmas);
        if (rc)
            return rc;
        golden_compare(gc, name, sigmas, 1, (int64_t[]){steps + 1});
    }
    return 0;
}

/* The flow model as the samplers see it: D(x, sigma) = x - sigma * v(x, t = sigma). */
typedef struct {
    golden_case *gc;
    flux_case *c;
    float guidance;
} flow_denoiser;

static int flux_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    flow_denoiser *d = user;
    float t = (float)sigma;
    ts_tensor img = d->c->img;
    img.data = (float *)x;
    ts_flux_inputs in = model_inputs(d->gc, d->c, &t, &d->guidance);
    in.img = &img;
    in.probe = NULL;
    ts_tensor pred;
    size_t mark = ts_arena_mark(d->c->arena);
    int rc = ts_flux_forward(d->c->flux, &in, d->c->arena, &pred);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        denoised[i] = (float)((double)x[i] - sigma * pred.data[i]);
    ts_arena_reset(d->c->arena, mark);
    return 0;
}

/* mid.img_stepK is the state after K Euler steps, i.e. x at the start of step K. */
static int report_step(void *user, int i, int steps, double sigma, const float *x, const float *denoised)
{
    (void)steps, (void)sigma, (void)denoised;
    flow_denoiser *d = user;
    char name[32];
    snprintf(name, sizeof name, "mid.img_step%d", i);
    ts_tensor t = ts_tensor_view((float *)x, 3, d->c->img.shape);
    if (i > 0)
        report_probe(d->gc, name, &t);
    return 0;
}

/* flux_sampling: get_schedule, then Euler from in.img (the packed noise at t = 1). */
static int run_sampling(golden_case *gc, flux_case *c)
{
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    const cJSON *steps_j = cJSON_GetObjectItemCaseSensitive(config, "num_steps");
    int steps = cJSON_IsNumber(steps_j) ? steps_j->valueint : 0;
    int shift = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(config, "shift"));
    int rc = compare_schedules(gc);
    float *sigmas = rc || steps < 1 || steps > 10000 ? NULL : malloc((size_t)(steps + 1) * sizeof(float));
    if (!rc && !sigmas)
        rc = ts_fail(TS_ERR_FORMAT, "flux_sampling: config.num_steps missing or out of range");
    rc = rc ? rc : ts_schedule_flux(steps, c->img.shape[1], shift, 0.5, 1.15, sigmas);
    if (!rc)
        golden_compare(gc, "out.timesteps", sigmas, 1, (int64_t[]){steps + 1});
    /* The reference passes guidance 4.0; a schnell model ignores it. */
    flow_denoiser d = {.gc = gc, .c = c, .guidance = 4.0f};
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = flux_denoise;
    cfg.denoise_user = &d;
    cfg.on_step = report_step;
    cfg.step_user = &d;
    int64_t n = ts_tensor_numel(&c->img);
    rc = rc ? rc : ts_sample(TS_SAMPLER_EULER, &cfg, c->img.data, (size_t)n, sigmas, steps);
    if (!rc) {
        golden_compare(gc, "out.img", c->img.data, 3, c->img.shape);
        int64_t shape[4];
        float *latent = golden_input(gc, "in.noise", NULL, shape); /* the latent's shape and storage */
        if (!latent)
            rc = TS_ERR_FORMAT;
        if (!rc) {
            ts_flux_unpack(c->img.data, shape[0], shape[1], shape[2], shape[3], latent);
            golden_compare(gc, "out.latent", latent, 4, shape);
        }
        free(latent);
    }
    free(sigmas);
    return rc;
}

int golden_run_flux(golden_case *gc)
{
    flux_case c;
    int rc = open_case(gc, &c);
    if (!rc)
        rc = ts_st_find(gc->io, "in.noise") ? run_sampling(gc, &c) : run_forward(gc, &c);
    close_case(&c);
    return rc;
}
