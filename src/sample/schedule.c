/*
 * Noise schedules and schedulers; see schedule.h.
 *
 * The integer timestep picks (legacy_ddpm, trailing, lcm, simple) truncate or round
 * values the references compute in float64 numpy/Python; the same expressions are
 * evaluated here in the same order, one IEEE operation per statement, so the
 * truncations land on the same integers (the build is ISO C11, where GCC does not
 * fuse a*b+c into an FMA, and clang does not fuse across statements).
 */
#include "sample/schedule.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "sample/names.h"

void ts_noise_ddpm(ts_noise_schedule *s, double linear_start, double linear_end)
{
    memset(s, 0, sizeof *s);
    s->kind = TS_NOISE_DISCRETE;
    /* ldm make_beta_schedule("linear"): linspace of the square roots, squared. */
    double a = sqrt(linear_start), b = sqrt(linear_end);
    double step = (b - a) / (TS_TRAIN_STEPS - 1);
    double abar = 1.0;
    for (int t = 0; t < TS_TRAIN_STEPS; t++) {
        double r = t == TS_TRAIN_STEPS - 1 ? b : a + t * step;
        s->betas[t] = r * r;
        abar *= 1.0 - s->betas[t];
        s->alphas_cumprod[t] = abar;
        s->sigmas[t] = sqrt((1.0 - abar) / abar);
        s->log_sigmas[t] = log(s->sigmas[t]);
    }
}

/* SD3 time_snr_shift: the flow sigma at u = t/1000 in [0, 1]. */
static double flow_sigma(double shift, double u)
{
    return shift * u / (1.0 + (shift - 1.0) * u);
}

void ts_noise_flow(ts_noise_schedule *s, double shift)
{
    memset(s, 0, sizeof *s);
    s->kind = TS_NOISE_FLOW;
    s->shift = shift;
    for (int i = 0; i < TS_TRAIN_STEPS; i++) {
        s->sigmas[i] = flow_sigma(shift, (i + 1) / (double)TS_TRAIN_STEPS);
        s->log_sigmas[i] = log(s->sigmas[i]);
    }
}

double ts_noise_sigma_min(const ts_noise_schedule *s)
{
    return s->sigmas[0];
}

double ts_noise_sigma_max(const ts_noise_schedule *s)
{
    return s->sigmas[TS_TRAIN_STEPS - 1];
}

double ts_noise_sigma(const ts_noise_schedule *s, double t)
{
    if (s->kind == TS_NOISE_FLOW)
        return flow_sigma(s->shift, t / TS_TRAIN_STEPS);
    t = fmin(fmax(t, 0.0), TS_TRAIN_STEPS - 1);
    double lo = floor(t), w = t - lo;
    int i = (int)lo, j = (int)ceil(t);
    return exp((1.0 - w) * s->log_sigmas[i] + w * s->log_sigmas[j]);
}

double ts_noise_timestep(const ts_noise_schedule *s, double sigma)
{
    if (s->kind == TS_NOISE_FLOW)
        return sigma * TS_TRAIN_STEPS;
    double ls = log(sigma), best = INFINITY;
    int arg = 0;
    for (int t = 0; t < TS_TRAIN_STEPS; t++) {
        double d = fabs(ls - s->log_sigmas[t]);
        if (d < best) { /* strict: ties go to the lower t, as argmin does */
            best = d;
            arg = t;
        }
    }
    return arg;
}

double ts_noise_timestep_frac(const ts_noise_schedule *s, double sigma)
{
    if (s->kind == TS_NOISE_FLOW)
        return sigma * TS_TRAIN_STEPS;
    double ls = log(sigma);
    /* low = the last t with log_sigmas[t] <= ls, kept inside [0, 998]. */
    int low = 0;
    for (int t = 0; t < TS_TRAIN_STEPS; t++)
        if (ls >= s->log_sigmas[t])
            low = t;
    if (low > TS_TRAIN_STEPS - 2)
        low = TS_TRAIN_STEPS - 2;
    double a = s->log_sigmas[low], b = s->log_sigmas[low + 1];
    double w = fmin(fmax((a - ls) / (a - b), 0.0), 1.0);
    return (1.0 - w) * low + w * (low + 1);
}

static const char *const scheduler_names[TS_SCHED_COUNT] = {
    [TS_SCHED_NORMAL] = "normal", [TS_SCHED_KARRAS] = "karras",           [TS_SCHED_EXPONENTIAL] = "exponential",
    [TS_SCHED_SIMPLE] = "simple", [TS_SCHED_SGM_UNIFORM] = "sgm_uniform", [TS_SCHED_LEGACY_DDPM] = "legacy_ddpm",
    [TS_SCHED_TURBO] = "turbo",   [TS_SCHED_TRAILING] = "trailing",       [TS_SCHED_LCM] = "lcm",
};

int ts_scheduler_from_name(const char *name, ts_scheduler *out)
{
    static const char *const aliases[][2] = {{"discrete", "normal"}, {"sd_turbo", "turbo"}, {NULL, NULL}};
    int k = ts_name_index(name, scheduler_names, TS_SCHED_COUNT, aliases);
    if (k < 0)
        return ts_fail(TS_ERR_ARG,
                       "unknown scheduler '%s' (known: normal, karras, exponential, simple, sgm_uniform, "
                       "legacy_ddpm, turbo, trailing, lcm)",
                       name);
    *out = (ts_scheduler)k;
    return 0;
}

const char *ts_scheduler_name(ts_scheduler kind)
{
    return kind >= 0 && kind < TS_SCHED_COUNT ? scheduler_names[kind] : "?";
}

/* numpy linspace(start, stop, num, endpoint) element i: i*step + start. */
static double np_linspace(double start, double stop, int num, int endpoint, int i)
{
    if (endpoint && i == num - 1)
        return stop;
    double step = (stop - start) / (endpoint ? num - 1 : num);
    double y = i * step;
    return y + start;
}

/* diffusers EulerDiscreteScheduler "trailing": round(arange(1000, 0, -1000/n)) - 1,
 * numpy rounding half to even (nearbyint in the default rounding mode). */
static int64_t trailing_timestep(int steps, int i)
{
    double ratio = (double)TS_TRAIN_STEPS / steps;
    double v = i * ratio;
    return (int64_t)nearbyint(TS_TRAIN_STEPS - v) - 1;
}

/* diffusers LCMScheduler: the distillation timesteps 999, 979, ..., 19 picked at
 * floor(linspace(0, 50, n, endpoint=False)). */
static int64_t lcm_timestep(int steps, int i)
{
    int k = TS_TRAIN_STEPS / TS_LCM_ORIGINAL_STEPS;
    int64_t pick = (int64_t)floor(np_linspace(0, TS_LCM_ORIGINAL_STEPS, steps, 0, i));
    return (int64_t)TS_TRAIN_STEPS - 1 - pick * k;
}

int ts_schedule_timesteps(ts_scheduler kind, int steps, int64_t *timesteps)
{
    int max_steps = kind == TS_SCHED_TURBO ? 10 : kind == TS_SCHED_LCM ? TS_LCM_ORIGINAL_STEPS : TS_TRAIN_STEPS;
    if (kind != TS_SCHED_LEGACY_DDPM && kind != TS_SCHED_TURBO && kind != TS_SCHED_TRAILING && kind != TS_SCHED_LCM)
        return ts_fail(TS_ERR_ARG, "scheduler %s is not defined by integer timesteps", ts_scheduler_name(kind));
    if (steps < 1 || steps > max_steps)
        return ts_fail(TS_ERR_ARG, "scheduler %s takes 1..%d steps, not %d", ts_scheduler_name(kind), max_steps, steps);
    for (int i = 0; i < steps; i++)
        switch (kind) {
        case TS_SCHED_LEGACY_DDPM:
            timesteps[i] = (int64_t)np_linspace(TS_TRAIN_STEPS - 1, 0, steps, 0, i);
            break;
        case TS_SCHED_TURBO:
            timesteps[i] = TS_TRAIN_STEPS - 1 - 100 * i;
            break;
        case TS_SCHED_TRAILING:
            timesteps[i] = trailing_timestep(steps, i);
            break;
        default:
            timesteps[i] = lcm_timestep(steps, i);
            break;
        }
    return 0;
}

/* Sigmas at linearly spaced timesteps between t(sigma_max) and t(sigma_min): ComfyUI
 * normal_scheduler (count = steps) and sgm_uniform (count = steps + 1, last dropped). */
static void linear_timesteps(const ts_noise_schedule *s, int steps, int count, float *sigmas)
{
    double start = ts_noise_timestep(s, ts_noise_sigma_max(s));
    double end = ts_noise_timestep(s, ts_noise_sigma_min(s));
    for (int i = 0; i < steps; i++) {
        double t = count == 1 ? start : start + (end - start) * i / (count - 1);
        sigmas[i] = (float)ts_noise_sigma(s, t);
    }
}

static void karras(double sigma_min, double sigma_max, int steps, float *sigmas)
{
    const double rho = 7.0;
    double lo = pow(sigma_min, 1.0 / rho), hi = pow(sigma_max, 1.0 / rho);
    for (int i = 0; i < steps; i++) {
        double ramp = steps == 1 ? 0.0 : (double)i / (steps - 1);
        sigmas[i] = (float)pow(hi + ramp * (lo - hi), rho);
    }
}

static void exponential(double sigma_min, double sigma_max, int steps, float *sigmas)
{
    double lo = log(sigma_min), hi = log(sigma_max);
    for (int i = 0; i < steps; i++) {
        double ramp = steps == 1 ? 0.0 : (double)i / (steps - 1);
        sigmas[i] = (float)exp(hi + ramp * (lo - hi));
    }
}

/* ComfyUI simple_scheduler: table[-(1 + int(i * 1000/n))]. */
static void simple(const ts_noise_schedule *s, int steps, float *sigmas)
{
    double ss = (double)TS_TRAIN_STEPS / steps;
    for (int i = 0; i < steps; i++) {
        double pos = i * ss;
        sigmas[i] = (float)s->sigmas[TS_TRAIN_STEPS - 1 - (int)pos];
    }
}

int ts_schedule_sigmas(const ts_noise_schedule *s, ts_scheduler kind, int steps, float *sigmas)
{
    if (steps < 1 || steps > TS_TRAIN_STEPS)
        return ts_fail(TS_ERR_ARG, "steps must be 1..%d, not %d", TS_TRAIN_STEPS, steps);
    switch (kind) {
    case TS_SCHED_NORMAL:
        linear_timesteps(s, steps, steps, sigmas);
        break;
    case TS_SCHED_SGM_UNIFORM:
        linear_timesteps(s, steps, steps + 1, sigmas);
        break;
    case TS_SCHED_KARRAS:
        karras(ts_noise_sigma_min(s), ts_noise_sigma_max(s), steps, sigmas);
        break;
    case TS_SCHED_EXPONENTIAL:
        exponential(ts_noise_sigma_min(s), ts_noise_sigma_max(s), steps, sigmas);
        break;
    case TS_SCHED_SIMPLE:
        simple(s, steps, sigmas);
        break;
    case TS_SCHED_LEGACY_DDPM:
    case TS_SCHED_TURBO:
    case TS_SCHED_TRAILING:
    case TS_SCHED_LCM: {
        if (s->kind != TS_NOISE_DISCRETE)
            return ts_fail(TS_ERR_ARG, "scheduler %s needs a discrete-time (DDPM) model", ts_scheduler_name(kind));
        int64_t t[TS_TRAIN_STEPS];
        int rc = ts_schedule_timesteps(kind, steps, t);
        if (rc)
            return rc;
        for (int i = 0; i < steps; i++)
            sigmas[i] = (float)s->sigmas[t[i]];
        break;
    }
    default:
        return ts_fail(TS_ERR_ARG, "unknown scheduler %d", (int)kind);
    }
    sigmas[steps] = 0.0f;
    return 0;
}

int ts_schedule_sigmas_denoise(const ts_noise_schedule *s, ts_scheduler kind, int steps, double denoise, float *sigmas)
{
    if (!(denoise > 0) || denoise > 1)
        return ts_fail(TS_ERR_ARG, "denoise strength must be in (0, 1], not %g", denoise);
    if (denoise > 0.9999)
        return ts_schedule_sigmas(s, kind, steps, sigmas);
    double total = steps / denoise;
    if (steps < 1 || total > TS_TRAIN_STEPS)
        return ts_fail(TS_ERR_ARG, "%d steps at denoise %g need %g steps in all (at most %d)", steps, denoise, total,
                       TS_TRAIN_STEPS);
    int all = (int)total;
    float full[TS_TRAIN_STEPS + 1];
    int rc = ts_schedule_sigmas(s, kind, all, full);
    if (rc == 0)
        memcpy(sigmas, full + (all - steps), (size_t)(steps + 1) * sizeof *sigmas);
    return rc;
}

int ts_noise_full_denoise(const ts_noise_schedule *s, double sigma)
{
    double top = ts_noise_sigma_max(s);
    return sigma > top || fabs(sigma - top) <= 1e-5 * fmax(fabs(sigma), fabs(top));
}

int ts_schedule_flux(int steps, int64_t image_seq_len, int shift, double base_shift, double max_shift, float *sigmas)
{
    if (steps < 1 || steps > 10000)
        return ts_fail(TS_ERR_ARG, "steps must be 1..10000, not %d", steps);
    double m = (max_shift - base_shift) / (4096 - 256);
    double mu = m * (double)image_seq_len + (base_shift - m * 256);
    for (int i = 0; i <= steps; i++) {
        double t = 1.0 - (double)i / steps;
        if (shift && t > 0)
            t = exp(mu) / (exp(mu) + (1.0 / t - 1.0));
        sigmas[i] = (float)t;
    }
    sigmas[steps] = 0.0f;
    return 0;
}
