/*
 * Golden runners for the sampling cases: sd-discrete-schedules (the DDPM table and
 * every scheduler), k-diffusion-samplers and classifier-free-guidance (the samplers
 * driven by the cases' toy denoiser with stored noise).
 *
 * The schedules runner walks every out.* tensor the case stores and derives what to
 * compute from its name, so a stored schedule that nothing here reproduces fails
 * instead of being skipped silently.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "sample/denoiser.h"
#include "sample/sampler.h"
#include "sample/schedule.h"

/* ---- schedules ---------------------------------------------------------------- */

static int compare_doubles(golden_case *gc, const char *name, const double *v, int64_t n)
{
    float *f = malloc((size_t)n * sizeof *f);
    if (!f)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    golden_compare(gc, name, f, 1, &n);
    free(f);
    return 0;
}

static const struct {
    const char *label; /* out.<label>.<steps> */
    ts_scheduler kind;
} stored_schedules[] = {
    {"normal", TS_SCHED_NORMAL},
    {"comfy_normal", TS_SCHED_NORMAL},
    {"karras", TS_SCHED_KARRAS},
    {"exponential", TS_SCHED_EXPONENTIAL},
    {"simple", TS_SCHED_SIMPLE},
    {"sgm_uniform", TS_SCHED_SGM_UNIFORM},
    {"sgm_legacy_ddpm", TS_SCHED_LEGACY_DDPM},
    {"comfy_sd_turbo", TS_SCHED_TURBO},
    {"trailing.sigmas", TS_SCHED_TRAILING},
};

/* Timesteps the network is fed for the karras sigmas: fractional (k-diffusion) or
 * nearest (ComfyUI). */
static int compare_karras_t(golden_case *gc, const char *name, const ts_noise_schedule *s, int steps, int comfy)
{
    float sigmas[TS_TRAIN_STEPS + 1];
    int rc = ts_schedule_sigmas(s, TS_SCHED_KARRAS, steps, sigmas);
    if (rc)
        return rc;
    float t[TS_TRAIN_STEPS];
    int64_t ti[TS_TRAIN_STEPS];
    for (int i = 0; i < steps; i++) {
        t[i] = (float)ts_noise_timestep_frac(s, sigmas[i]);
        ti[i] = (int64_t)ts_noise_timestep(s, sigmas[i]);
    }
    if (comfy)
        return golden_compare_int64(gc, name, ti, steps);
    int64_t n = steps;
    golden_compare(gc, name, t, 1, &n);
    return 0;
}

/* One stored tensor out.<label>.<steps>. */
static int run_schedule_tensor(golden_case *gc, const ts_noise_schedule *s, const char *name)
{
    const char *dot = strrchr(name, '.');
    char label[64];
    size_t len = (size_t)(dot - name) - 4;
    int steps = atoi(dot + 1);
    if (len >= sizeof label || steps < 1 || steps > TS_TRAIN_STEPS)
        return ts_fail(TS_ERR_FORMAT, "%s: unexpected output name", name);
    memcpy(label, name + 4, len);
    label[len] = 0;
    if (strcmp(label, "karras_t") == 0 || strcmp(label, "karras_t_comfy") == 0)
        return compare_karras_t(gc, name, s, steps, label[8] != 0);
    if (strcmp(label, "trailing.timesteps") == 0 || strcmp(label, "lcm.timesteps") == 0) {
        int64_t t[TS_TRAIN_STEPS];
        int rc = ts_schedule_timesteps(label[0] == 't' ? TS_SCHED_TRAILING : TS_SCHED_LCM, steps, t);
        return rc ? rc : golden_compare_int64(gc, name, t, steps);
    }
    for (size_t k = 0; k < sizeof stored_schedules / sizeof stored_schedules[0]; k++)
        if (strcmp(label, stored_schedules[k].label) == 0) {
            float sigmas[TS_TRAIN_STEPS + 1];
            int rc = ts_schedule_sigmas(s, stored_schedules[k].kind, steps, sigmas);
            int64_t n = steps + 1;
            if (rc == 0)
                golden_compare(gc, name, sigmas, 1, &n);
            return rc;
        }
    return ts_fail(TS_ERR_UNSUPPORTED, "%s: no scheduler reproduces this output", name);
}

int golden_run_schedules(golden_case *gc)
{
    ts_noise_schedule *s = malloc(sizeof *s);
    if (!s)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    const cJSON *start = cJSON_GetObjectItemCaseSensitive(config, "linear_start");
    const cJSON *end = cJSON_GetObjectItemCaseSensitive(config, "linear_end");
    ts_noise_ddpm(s, cJSON_IsNumber(start) ? start->valuedouble : 0.00085,
                  cJSON_IsNumber(end) ? end->valuedouble : 0.012);
    int rc = compare_doubles(gc, "out.betas", s->betas, TS_TRAIN_STEPS);
    rc = rc ? rc : compare_doubles(gc, "out.alphas_cumprod", s->alphas_cumprod, TS_TRAIN_STEPS);
    rc = rc ? rc : compare_doubles(gc, "out.sigmas", s->sigmas, TS_TRAIN_STEPS);
    for (size_t i = 0; rc == 0 && i < ts_st_count(gc->io); i++) {
        const char *name = ts_st_at(gc->io, i)->name;
        if (strncmp(name, "out.", 4) == 0 && strcmp(name, "out.betas") && strcmp(name, "out.alphas_cumprod") &&
            strcmp(name, "out.sigmas"))
            rc = run_schedule_tensor(gc, s, name);
    }
    free(s);
    return rc;
}

/* ---- samplers ------------------------------------------------------------------ */

/* The cases' toy denoiser, elementwise with sigma s:
 * D_p(x, s) = tanh(x/sqrt(s^2+1) + p) / (1 + 0.1 s) + 0.05 s / (1 + s). */
typedef struct {
    double p;
} toy;

static int toy_denoise(void *user, const float *x, size_t n, double s, float *denoised)
{
    const toy *t = user;
    double c_in = 1.0 / sqrt(s * s + 1.0), scale = 1.0 / (1.0 + 0.1 * s), shift = 0.05 * s / (1.0 + s);
    for (size_t i = 0; i < n; i++)
        denoised[i] = (float)(tanh(x[i] * c_in + t->p) * scale + shift);
    return 0;
}

static double toy_p(const cJSON *config, const char *key)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(config, key), "p");
    return cJSON_IsNumber(p) ? p->valuedouble : 0.0;
}

/* Noise source handing out in.noise.0, in.noise.1, ... in draw order. */
typedef struct {
    golden_case *gc;
    int draws;
} stored_noise;

static int stored_noise_next(void *user, double sigma, double sigma_next, float *noise, size_t n)
{
    (void)sigma;
    (void)sigma_next;
    stored_noise *sn = user;
    char name[32];
    snprintf(name, sizeof name, "in.noise.%d", sn->draws++);
    int ndim;
    int64_t shape[TS_ST_MAX_DIMS];
    float *v = golden_input(sn->gc, name, &ndim, shape);
    if (!v)
        return TS_ERR_FORMAT;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= shape[d];
    if ((size_t)numel == n)
        memcpy(noise, v, n * sizeof *noise);
    free(v);
    return (size_t)numel == n
               ? 0
               : ts_fail(TS_ERR_FORMAT, "%s has %lld elements, the sample %zu", name, (long long)numel, n);
}

/* x_steps[i] and denoised[i] of each step, as the cases store them. */
typedef struct {
    float *x_steps, *denoised;
    size_t n;
} trace;

static int trace_step(void *user, int i, int steps, double sigma, const float *x, const float *denoised)
{
    (void)steps;
    (void)sigma;
    trace *t = user;
    memcpy(t->x_steps + (size_t)i * t->n, x, t->n * sizeof *x);
    memcpy(t->denoised + (size_t)i * t->n, denoised, t->n * sizeof *x);
    return 0;
}

typedef struct {
    float *x_T, *sigmas;
    int ndim, steps;
    int64_t shape[TS_ST_MAX_DIMS];
    size_t n;
} sampler_inputs;

static int read_sampler_inputs(golden_case *gc, sampler_inputs *in)
{
    int sdim;
    int64_t sshape[TS_ST_MAX_DIMS];
    memset(in, 0, sizeof *in);
    in->x_T = golden_input(gc, "in.x_T", &in->ndim, in->shape);
    in->sigmas = golden_input(gc, "in.sigmas", &sdim, sshape);
    if (!in->x_T || !in->sigmas)
        return TS_ERR_FORMAT;
    if (sdim != 1 || sshape[0] < 2 || in->ndim > TS_MAX_DIMS)
        return ts_fail(TS_ERR_FORMAT, "%s: in.sigmas must be [steps+1] and in.x_T at most 4-D", gc->dir);
    in->steps = (int)sshape[0] - 1;
    in->n = 1;
    for (int d = 0; d < in->ndim; d++)
        in->n *= (size_t)in->shape[d];
    return 0;
}

static void free_sampler_inputs(sampler_inputs *in)
{
    free(in->x_T);
    free(in->sigmas);
}

/* Runs one sampler from in.x_T and compares out.<name>, .x_steps and .denoised. */
static int run_sampler(golden_case *gc, const sampler_inputs *in, const char *name, ts_sampler_config cfg)
{
    ts_sampler kind;
    int rc = ts_sampler_from_name(name, &kind);
    if (rc)
        return rc;
    size_t n = in->n;
    trace tr = {malloc((size_t)(in->steps + 1) * n * sizeof(float)), malloc((size_t)in->steps * n * sizeof(float)), n};
    if (!tr.x_steps || !tr.denoised) {
        free(tr.x_steps);
        free(tr.denoised);
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    stored_noise noise = {gc, 0};
    cfg.noise = stored_noise_next;
    cfg.noise_user = &noise;
    cfg.on_step = trace_step;
    cfg.step_user = &tr;
    float *x = tr.x_steps + (size_t)in->steps * n;
    memcpy(x, in->x_T, n * sizeof *x);
    rc = ts_sample(kind, &cfg, x, n, in->sigmas, in->steps);
    if (rc == 0) {
        char label[96];
        int64_t shape[TS_MAX_DIMS + 1] = {in->steps + 1};
        memcpy(shape + 1, in->shape, (size_t)in->ndim * sizeof *shape);
        snprintf(label, sizeof label, "out.%s", name);
        golden_compare(gc, label, x, in->ndim, in->shape);
        snprintf(label, sizeof label, "out.%s.x_steps", name);
        golden_compare(gc, label, tr.x_steps, in->ndim + 1, shape);
        shape[0] = in->steps;
        snprintf(label, sizeof label, "out.%s.denoised", name);
        golden_compare(gc, label, tr.denoised, in->ndim + 1, shape);
        printf("  %-40s %d noise draws\n", name, noise.draws);
    }
    free(tr.x_steps);
    free(tr.denoised);
    return rc;
}

static double kwarg(const cJSON *kwargs, const char *key, double fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(kwargs, key);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

int golden_run_samplers(golden_case *gc)
{
    sampler_inputs in;
    int rc = read_sampler_inputs(gc, &in);
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    toy model = {toy_p(config, "toy_denoiser")};
    const cJSON *samplers = cJSON_GetObjectItemCaseSensitive(config, "sampler_kwargs");
    if (rc == 0 && !cJSON_IsObject(samplers))
        rc = ts_fail(TS_ERR_FORMAT, "%s: config has no sampler_kwargs", gc->dir);
    for (const cJSON *s = rc ? NULL : samplers->child; s && rc == 0; s = s->next) {
        const cJSON *solver = cJSON_GetObjectItemCaseSensitive(s, "solver_type");
        if (cJSON_IsString(solver) && strcmp(solver->valuestring, "midpoint") != 0) {
            rc = ts_fail(TS_ERR_UNSUPPORTED, "%s: solver_type %s (only midpoint)", s->string, solver->valuestring);
            break;
        }
        ts_sampler_config cfg = ts_sampler_config_default();
        cfg.denoise = toy_denoise;
        cfg.denoise_user = &model;
        cfg.eta = kwarg(s, "eta", cfg.eta);
        cfg.s_noise = kwarg(s, "s_noise", cfg.s_noise);
        rc = run_sampler(gc, &in, s->string, cfg);
    }
    free_sampler_inputs(&in);
    return rc;
}

int golden_run_cfg(golden_case *gc)
{
    sampler_inputs in;
    int rc = read_sampler_inputs(gc, &in);
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(config, "cfg_scale");
    toy cond = {toy_p(config, "toy_cond")}, uncond = {toy_p(config, "toy_uncond")};
    ts_cfg_denoiser guided = {toy_denoise, &cond, toy_denoise, &uncond, cJSON_IsNumber(scale) ? scale->valuedouble : 1};
    float *d[3] = {NULL, NULL, NULL};
    for (int k = 0; rc == 0 && k < 3; k++)
        if (!(d[k] = malloc(in.n * sizeof(float))))
            rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc == 0) {
        double s0 = in.sigmas[0];
        toy_denoise(&cond, in.x_T, in.n, s0, d[0]);
        toy_denoise(&uncond, in.x_T, in.n, s0, d[1]);
        rc = ts_cfg_denoise(&guided, in.x_T, in.n, s0, d[2]);
    }
    if (rc == 0) {
        golden_compare(gc, "out.cfg.cond", d[0], in.ndim, in.shape);
        golden_compare(gc, "out.cfg.uncond", d[1], in.ndim, in.shape);
        golden_compare(gc, "out.cfg.denoised", d[2], in.ndim, in.shape);
    }
    /* Every out.<sampler> the case stores is a run with the guided denoiser. */
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(gc->json, "outputs");
    for (const cJSON *o = rc || !outputs ? NULL : outputs->child; o && rc == 0; o = o->next) {
        ts_sampler kind;
        if (strncmp(o->string, "out.", 4) != 0 || strchr(o->string + 4, '.'))
            continue;
        if (ts_sampler_from_name(o->string + 4, &kind) != 0) {
            rc = ts_fail_context(TS_ERR_UNSUPPORTED, "%s: ", o->string);
            break;
        }
        ts_sampler_config cfg = ts_sampler_config_default();
        cfg.denoise = ts_cfg_denoise;
        cfg.denoise_user = &guided;
        rc = run_sampler(gc, &in, o->string + 4, cfg);
    }
    for (int k = 0; k < 3; k++)
        free(d[k]);
    free_sampler_inputs(&in);
    return rc;
}
