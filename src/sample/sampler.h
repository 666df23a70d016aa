/*
 * Samplers: integrate the probability-flow ODE (or its SDE) from sigmas[0] down to
 * sigmas[steps] = 0, in the k-diffusion convention every UI follows.
 *
 * The model is seen only through a denoiser D(x, sigma) -> estimate of the clean
 * sample (denoiser.h turns eps / v / flow network outputs into it and applies
 * guidance); x is the noisy sample with noise of standard deviation sigma, i.e.
 * x_T = noise * sigmas[0] for txt2img.  Randomness comes from a noise callback, so a
 * run with stored noise (golden cases) and a seeded run (rng.h) share every line.
 *
 * The state stays in float32 (it is the size of the latent); each per-element update
 * is evaluated in double, which keeps a 30-step run within a few float ulps of the
 * float64 references.
 */
#ifndef TS_SAMPLE_SAMPLER_H
#define TS_SAMPLE_SAMPLER_H

#include <stddef.h>

typedef enum {
    TS_SAMPLER_EULER,
    TS_SAMPLER_EULER_ANCESTRAL,
    TS_SAMPLER_HEUN,
    TS_SAMPLER_DPMPP_2M,
    TS_SAMPLER_DPMPP_2M_SDE, /* midpoint solver, independent Gaussian increments */
    TS_SAMPLER_LCM,
    TS_SAMPLER_COUNT
} ts_sampler;

/* How a sample is re-noised to level sigma (lcm): sigma*noise added for eps/v
 * models, (1 - sigma)*x + sigma*noise for flow models. */
typedef enum { TS_RENOISE_ADD, TS_RENOISE_LERP } ts_renoise;

/* D(x, sigma) for the whole batch x (n floats); writes denoised (n floats). */
typedef int (*ts_denoise_fn)(void *user, const float *x, size_t n, double sigma, float *denoised);
/* The next n standard normals for the step from sigma to sigma_next. */
typedef int (*ts_noise_fn)(void *user, double sigma, double sigma_next, float *noise, size_t n);
/* Called once per step after its first model call, with x at the start of step i and
 * D(x, sigmas[i]). A non-zero return stops sampling with that status. */
typedef int (*ts_step_fn)(void *user, int i, int steps, double sigma, const float *x, const float *denoised);
/* Called after step done-1 has moved x to sigmas[done]. It may change x (DemoFusion's
 * skip residual does) and stops sampling with a non-zero return.  prev is the history
 * the multistep samplers carry into the next step (D of the step just taken); with x
 * and the noise source's state it is all a run needs to continue later
 * (ts_sampler_config.start_step / start_prev). */
typedef int (*ts_between_fn)(void *user, int done, int steps, float *x, const float *prev, size_t n);

typedef struct {
    ts_denoise_fn denoise;
    void *denoise_user;
    ts_noise_fn noise; /* needed by euler_ancestral, dpmpp_2m_sde, lcm */
    void *noise_user;
    ts_step_fn on_step; /* optional */
    void *step_user;
    double eta;     /* ancestral / SDE noise amount; 1 by default */
    double s_noise; /* noise multiplier; 1 by default */
    ts_renoise renoise;
    ts_between_fn between; /* optional */
    void *between_user;
    /* Continuing a run: the first step to take (0: from the start) and, when it is
     * not 0, the prev its between call saw (n floats; NULL only for samplers that
     * keep no history). */
    int start_step;
    const float *start_prev;
} ts_sampler_config;

/* eta = s_noise = 1, additive re-noising, no callbacks. */
ts_sampler_config ts_sampler_config_default(void);

/* Parses a sampler name: euler, euler_ancestral (euler_a), heun, dpmpp_2m (dpm++2m),
 * dpmpp_2m_sde (dpm++2m_sde), lcm. TS_ERR_ARG with the known names otherwise. */
int ts_sampler_from_name(const char *name, ts_sampler *out);
const char *ts_sampler_name(ts_sampler kind);
/* Model calls a run of `steps` steps makes (heun: 2 per step but the last). */
int ts_sampler_model_calls(ts_sampler kind, int steps);

/* Runs the sampler over sigmas[0..steps] (descending, last 0). x holds the starting
 * sample on entry and the final sample on return. */
int ts_sample(ts_sampler kind, const ts_sampler_config *cfg, float *x, size_t n, const float *sigmas, int steps);

#endif
