/*
 * Noise schedules: which noise level (sigma) each sampling step runs at.
 *
 * A model's training noise process is kept as a table of 1000 sigmas, ascending in
 * the training timestep t, plus the two conversions the model wrapper needs:
 * sigma(t) (fractional t allowed) and t(sigma), the timestep the network is fed.
 * Two kinds of process exist:
 *   - discrete DDPM (SD 1.x/2.x/SDXL): betas from the ldm "linear" schedule
 *     (= diffusers "scaled_linear"), sigma[t] = sqrt((1 - abar[t]) / abar[t]);
 *     between integer timesteps log sigma is interpolated linearly, as ComfyUI and
 *     k-diffusion do;
 *   - flow matching (SD3): sigma(t) = shift*u / (1 + (shift-1)*u), u = t/1000,
 *     table = sigma(1..1000), t(sigma) = 1000*sigma.
 * Schedulers then pick steps+1 descending sigmas, the last always 0.  Every
 * scheduler is defined through the table and the two conversions, so the same
 * names (normal, karras, simple, ...) work for both kinds, as in ComfyUI.
 *
 * Everything is computed in double: the references differ among themselves in
 * where they round to float32 (see the schedules golden case), and the float64
 * values sit inside all of their spreads.
 */
#ifndef TS_SAMPLE_SCHEDULE_H
#define TS_SAMPLE_SCHEDULE_H

#include <stdint.h>

#define TS_TRAIN_STEPS 1000
/* LCM distillation ran on this many DDIM-spaced timesteps (diffusers original_inference_steps). */
#define TS_LCM_ORIGINAL_STEPS 50

typedef enum {
    TS_NOISE_DISCRETE, /* DDPM timesteps 0..999, eps or v prediction */
    TS_NOISE_FLOW,     /* rectified flow, SD3 style shift */
} ts_noise_kind;

typedef struct {
    ts_noise_kind kind;
    double shift;                          /* flow only */
    double betas[TS_TRAIN_STEPS];          /* discrete only */
    double alphas_cumprod[TS_TRAIN_STEPS]; /* discrete only */
    double sigmas[TS_TRAIN_STEPS];         /* ascending: sigmas[0] = sigma_min */
    double log_sigmas[TS_TRAIN_STEPS];
} ts_noise_schedule;

/* The DDPM process of SD 1.x/2.x/SDXL: ts_noise_ddpm(s, 0.00085, 0.012). */
void ts_noise_ddpm(ts_noise_schedule *s, double linear_start, double linear_end);
/* The SD3 flow process with the given shift (SD3/3.5: 3.0). */
void ts_noise_flow(ts_noise_schedule *s, double shift);

double ts_noise_sigma_min(const ts_noise_schedule *s);
double ts_noise_sigma_max(const ts_noise_schedule *s);
/* sigma at a (possibly fractional) timestep. */
double ts_noise_sigma(const ts_noise_schedule *s, double t);
/* The timestep the network is fed for sigma: the nearest table entry in log sigma for
 * discrete models (ComfyUI ModelSamplingDiscrete.timestep), 1000*sigma for flow. */
double ts_noise_timestep(const ts_noise_schedule *s, double sigma);
/* Fractional timestep with log sigma interpolated between the bracketing table
 * entries (k-diffusion DiscreteSchedule.sigma_to_t, quantize=False); flow: 1000*sigma. */
double ts_noise_timestep_frac(const ts_noise_schedule *s, double sigma);

typedef enum {
    TS_SCHED_NORMAL,      /* timesteps linspace(t(sigma_max), t(sigma_min), n) (ComfyUI normal, SD3) */
    TS_SCHED_KARRAS,      /* rho = 7 ramp between sigma_max and sigma_min */
    TS_SCHED_EXPONENTIAL, /* log-uniform between sigma_max and sigma_min */
    TS_SCHED_SIMPLE,      /* every (1000/n)-th table entry from the top (ComfyUI simple) */
    TS_SCHED_SGM_UNIFORM, /* linspace over n+1 timesteps, last dropped (ComfyUI sgm_uniform) */
    TS_SCHED_LEGACY_DDPM, /* t = int(linspace(999, 0, n, endpoint=False)) (SDXL reference sampler) */
    TS_SCHED_TURBO,       /* t = 999, 899, ...: SD-Turbo / SDXL-Turbo (ComfyUI SDTurboScheduler), n <= 10 */
    TS_SCHED_TRAILING,    /* diffusers timestep_spacing "trailing" */
    TS_SCHED_LCM,         /* diffusers LCMScheduler timesteps, n <= 50 */
    TS_SCHED_COUNT
} ts_scheduler;

/* Parses a scheduler name ("normal", "karras", ...; "discrete" = normal, "sd_turbo" =
 * turbo). Fails with TS_ERR_ARG listing the known names. */
int ts_scheduler_from_name(const char *name, ts_scheduler *out);
const char *ts_scheduler_name(ts_scheduler kind);

/* Fills sigmas[0..steps] (descending, sigmas[steps] = 0). Fails with TS_ERR_ARG when
 * steps is out of the scheduler's range or the scheduler needs a discrete model. */
int ts_schedule_sigmas(const ts_noise_schedule *s, ts_scheduler kind, int steps, float *sigmas);

/* Partial denoising (img2img strength, ComfyUI KSampler denoise): for denoise < 1 the
 * schedule of int(steps / denoise) steps is built and its last steps+1 sigmas kept, so
 * sampling starts part way down; denoise >= 0.9999 is the full schedule. Fills
 * sigmas[0..steps]; TS_ERR_ARG for denoise <= 0. */
int ts_schedule_sigmas_denoise(const ts_noise_schedule *s, ts_scheduler kind, int steps, double denoise, float *sigmas);
/* Whether sampling from sigma starts from pure noise, i.e. sigma is the model's
 * sigma_max or above (relative tolerance 1e-5, as ComfyUI decides max_denoise). */
int ts_noise_full_denoise(const ts_noise_schedule *s, double sigma);

/* The integer training timesteps of the schedulers defined by them (legacy_ddpm,
 * turbo, trailing, lcm), descending, steps entries; TS_ERR_ARG for the others. */
int ts_schedule_timesteps(ts_scheduler kind, int steps, int64_t *timesteps);

/* Flux (black-forest-labs get_schedule): linspace(1, 0, steps+1), and when shift is set
 * the resolution-dependent time shift with mu on the line through (256, base_shift)
 * and (4096, max_shift); image_seq_len = number of packed 2x2 latent tokens. */
int ts_schedule_flux(int steps, int64_t image_seq_len, int shift, double base_shift, double max_shift, float *sigmas);

#endif
