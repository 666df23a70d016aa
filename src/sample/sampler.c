/*
 * The samplers of sampler.h, each one step function over a shared loop.
 *
 * The formulas are those of k-diffusion's sample_* functions (and ComfyUI's
 * sample_lcm); per step the loop makes the first model call, reports it, then the
 * step function moves x from sigmas[i] to sigmas[i+1].  Step coefficients depend
 * only on the sigmas and are computed once per step in double; the per-element
 * work is a fused loop in double over float storage.
 */
#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sample/names.h"

static const char *const sampler_names[TS_SAMPLER_COUNT] = {
    [TS_SAMPLER_EULER] = "euler",       [TS_SAMPLER_EULER_ANCESTRAL] = "euler_ancestral", [TS_SAMPLER_HEUN] = "heun",
    [TS_SAMPLER_DPMPP_2M] = "dpmpp_2m", [TS_SAMPLER_DPMPP_2M_SDE] = "dpmpp_2m_sde",       [TS_SAMPLER_LCM] = "lcm",
};

ts_sampler_config ts_sampler_config_default(void)
{
    return (ts_sampler_config){.eta = 1.0, .s_noise = 1.0, .renoise = TS_RENOISE_ADD};
}

int ts_sampler_from_name(const char *name, ts_sampler *out)
{
    static const char *const aliases[][2] = {
        {"euler_a", "euler_ancestral"}, {"dpm++2m", "dpmpp_2m"}, {"dpm++2m_sde", "dpmpp_2m_sde"}, {NULL, NULL}};
    int k = ts_name_index(name, sampler_names, TS_SAMPLER_COUNT, aliases);
    if (k < 0)
        return ts_fail(TS_ERR_ARG,
                       "unknown sampler '%s' (known: euler, euler_ancestral, heun, dpmpp_2m, dpmpp_2m_sde, lcm)", name);
    *out = (ts_sampler)k;
    return 0;
}

const char *ts_sampler_name(ts_sampler kind)
{
    return kind >= 0 && kind < TS_SAMPLER_COUNT ? sampler_names[kind] : "?";
}

int ts_sampler_model_calls(ts_sampler kind, int steps)
{
    return kind == TS_SAMPLER_HEUN && steps > 0 ? 2 * steps - 1 : steps;
}

typedef struct {
    const ts_sampler_config *cfg;
    ts_sampler kind;
    float *x;
    size_t n;
    const float *sigmas;
    int i;       /* current step */
    float *den;  /* D(x, sigmas[i]) */
    float *prev; /* D of the previous step (multistep samplers) */
    float *aux;  /* noise, or heun's predictor */
    int have_prev;
} run;

static int draw_noise(run *r, double s, double sn)
{
    if (!r->cfg->noise)
        return ts_fail(TS_ERR_ARG, "sampler %s needs a noise source", ts_sampler_name(r->kind));
    return r->cfg->noise(r->cfg->noise_user, s, sn, r->aux, r->n);
}

/* x += (x - D)/s * (target - s): the Euler move along the ODE to sigma target. */
static void euler_move(run *r, double s, double target)
{
    double k = (target - s) / s;
    for (size_t j = 0; j < r->n; j++) {
        double x = r->x[j];
        r->x[j] = (float)(x + (x - r->den[j]) * k);
    }
}

static int step_euler(run *r, double s, double sn)
{
    euler_move(r, s, sn);
    return 0;
}

static int step_euler_ancestral(run *r, double s, double sn)
{
    double eta = r->cfg->eta;
    double up = eta ? fmin(sn, eta * sqrt(sn * sn * (s * s - sn * sn) / (s * s))) : 0.0;
    double down = sqrt(sn * sn - up * up);
    euler_move(r, s, down);
    if (sn > 0) {
        int rc = draw_noise(r, s, sn);
        if (rc)
            return rc;
        double k = r->cfg->s_noise * up;
        for (size_t j = 0; j < r->n; j++)
            r->x[j] = (float)(r->x[j] + (double)r->aux[j] * k);
    }
    return 0;
}

static int step_heun(run *r, double s, double sn)
{
    if (sn == 0) {
        euler_move(r, s, sn);
        return 0;
    }
    double dt = sn - s;
    for (size_t j = 0; j < r->n; j++)
        r->aux[j] = (float)(r->x[j] + (r->x[j] - (double)r->den[j]) / s * dt);
    float *den2 = r->prev;
    int rc = r->cfg->denoise(r->cfg->denoise_user, r->aux, r->n, sn, den2);
    if (rc)
        return rc;
    for (size_t j = 0; j < r->n; j++) {
        double d1 = (r->x[j] - (double)r->den[j]) / s;
        double d2 = (r->aux[j] - (double)den2[j]) / sn;
        r->x[j] = (float)(r->x[j] + (d1 + d2) * 0.5 * dt);
    }
    return 0;
}

static int step_dpmpp_2m(run *r, double s, double sn)
{
    if (sn == 0) {
        memcpy(r->x, r->den, r->n * sizeof *r->x);
        return 0;
    }
    double h = log(s) - log(sn);
    double ratio = sn / s, c = -expm1(-h);
    double a = 1.0, b = 0.0; /* D' = a*D + b*D_prev */
    if (r->have_prev) {
        double h_last = log((double)r->sigmas[r->i - 1]) - log(s);
        double half_inv_r = h / (2.0 * h_last);
        a = 1.0 + half_inv_r;
        b = -half_inv_r;
    }
    for (size_t j = 0; j < r->n; j++) {
        double d = a * r->den[j] + (b != 0 ? b * r->prev[j] : 0.0);
        r->x[j] = (float)(ratio * r->x[j] + c * d);
    }
    return 0;
}

static int step_dpmpp_2m_sde(run *r, double s, double sn)
{
    if (sn == 0) {
        memcpy(r->x, r->den, r->n * sizeof *r->x);
        return 0;
    }
    double eta = r->cfg->eta;
    double h = log(s) - log(sn), eta_h = eta * h;
    double ratio = sn / s * exp(-eta_h), c = -expm1(-h - eta_h);
    double corr = 0.0; /* midpoint correction weight on (D - D_prev) */
    if (r->have_prev) {
        double h_last = log((double)r->sigmas[r->i - 1]) - log(s);
        corr = 0.5 * c * (h / h_last);
    }
    double kn = 0.0;
    if (eta) {
        int rc = draw_noise(r, s, sn);
        if (rc)
            return rc;
        kn = sn * sqrt(-expm1(-2.0 * eta_h)) * r->cfg->s_noise;
    }
    for (size_t j = 0; j < r->n; j++) {
        double x = ratio * r->x[j] + c * r->den[j];
        if (r->have_prev)
            x += corr * ((double)r->den[j] - r->prev[j]);
        if (eta)
            x += (double)r->aux[j] * kn;
        r->x[j] = (float)x;
    }
    return 0;
}

static int step_lcm(run *r, double s, double sn)
{
    if (sn > 0) {
        int rc = draw_noise(r, s, sn);
        if (rc)
            return rc;
        int lerp = r->cfg->renoise == TS_RENOISE_LERP;
        for (size_t j = 0; j < r->n; j++) {
            double d = r->den[j], z = r->aux[j];
            r->x[j] = (float)(lerp ? sn * z + (1.0 - sn) * d : d + z * sn);
        }
    } else {
        memcpy(r->x, r->den, r->n * sizeof *r->x);
    }
    return 0;
}

typedef int (*step_fn)(run *r, double s, double sn);

static const step_fn step_fns[TS_SAMPLER_COUNT] = {
    [TS_SAMPLER_EULER] = step_euler,
    [TS_SAMPLER_EULER_ANCESTRAL] = step_euler_ancestral,
    [TS_SAMPLER_HEUN] = step_heun,
    [TS_SAMPLER_DPMPP_2M] = step_dpmpp_2m,
    [TS_SAMPLER_DPMPP_2M_SDE] = step_dpmpp_2m_sde,
    [TS_SAMPLER_LCM] = step_lcm,
};

static int check_sigmas(const float *sigmas, int steps)
{
    if (steps < 1)
        return ts_fail(TS_ERR_ARG, "sampling needs at least 1 step, got %d", steps);
    for (int i = 0; i < steps; i++)
        if (!(sigmas[i] > 0) || !(sigmas[i + 1] < sigmas[i]) || !(sigmas[i + 1] >= 0))
            return ts_fail(TS_ERR_ARG,
                           "sigmas must be finite, positive and strictly descending to 0 (step %d: %g -> %g)", i,
                           (double)sigmas[i], (double)sigmas[i + 1]);
    return 0;
}

int ts_sample(ts_sampler kind, const ts_sampler_config *cfg, float *x, size_t n, const float *sigmas, int steps)
{
    if (kind < 0 || kind >= TS_SAMPLER_COUNT)
        return ts_fail(TS_ERR_ARG, "unknown sampler %d", (int)kind);
    if (!cfg->denoise)
        return ts_fail(TS_ERR_ARG, "sampler %s: no denoiser given", ts_sampler_name(kind));
    int rc = check_sigmas(sigmas, steps);
    if (rc)
        return rc;
    run r = {.cfg = cfg, .kind = kind, .x = x, .n = n, .sigmas = sigmas};
    size_t bytes = (n ? n : 1) * sizeof(float);
    r.den = malloc(bytes);
    r.prev = malloc(bytes);
    r.aux = malloc(bytes);
    if (!r.den || !r.prev || !r.aux)
        rc = ts_fail(TS_ERR_NOMEM, "sampler %s: out of memory for 3 x %zu floats", ts_sampler_name(kind), n);
    if (rc == 0 && (cfg->start_step < 0 || cfg->start_step > steps))
        rc = ts_fail(TS_ERR_ARG, "sampler %s: cannot start at step %d of %d", ts_sampler_name(kind), cfg->start_step,
                     steps);
    if (rc == 0 && cfg->start_step > 0 && cfg->start_prev) {
        memcpy(r.prev, cfg->start_prev, n * sizeof(float));
        r.have_prev = 1;
    }
    for (int i = rc == 0 ? cfg->start_step : steps; rc == 0 && i < steps; i++) {
        double s = sigmas[i], sn = sigmas[i + 1];
        r.i = i;
        rc = cfg->denoise(cfg->denoise_user, x, n, s, r.den);
        if (rc == 0 && cfg->on_step)
            rc = cfg->on_step(cfg->step_user, i, steps, s, x, r.den);
        if (rc == 0)
            rc = step_fns[kind](&r, s, sn);
        /* The multistep samplers keep this step's D as the next step's D_prev. */
        float *t = r.prev;
        r.prev = r.den;
        r.den = t;
        r.have_prev = 1;
        if (rc == 0 && cfg->between)
            rc = cfg->between(cfg->between_user, i + 1, steps, x, r.prev, n);
    }
    free(r.den);
    free(r.prev);
    free(r.aux);
    return rc;
}
