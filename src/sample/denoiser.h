/*
 * From network outputs to the denoised estimate the samplers consume.
 *
 * Three parameterisations exist among the supported models, all written here in the
 * k-diffusion convention where x = clean + sigma * noise:
 *   eps  (SD 1.x, SDXL):  the network sees c_in*x with c_in = 1/sqrt(sigma^2+1) and
 *                         predicts the noise: D = x - sigma*eps;
 *   v    (SD 2.x 768):    same input; D = x/(sigma^2+1) - v*sigma/sqrt(sigma^2+1);
 *   flow (SD3, Flux):     the network sees x itself and predicts the velocity:
 *                         D = x - sigma*v.
 * Guidance is combined in the denoised domain; because D is affine in the network
 * output with x and sigma shared, this equals combining eps (or v) predictions.
 */
#ifndef TS_SAMPLE_DENOISER_H
#define TS_SAMPLE_DENOISER_H

#include <stddef.h>

#include "sample/sampler.h"
#include "sample/schedule.h"

typedef enum { TS_PRED_EPS, TS_PRED_V, TS_PRED_FLOW } ts_prediction;

/* Factor applied to x before it enters the network. */
double ts_pred_c_in(ts_prediction p, double sigma);
/* denoised[i] = D from x and the network output at sigma (may alias out). */
void ts_pred_denoised(ts_prediction p, double sigma, const float *x, const float *out, float *denoised, size_t n);
/* The starting sample at noise level sigma from unit noise and a clean latent (NULL =
 * zeros, txt2img). eps/v: latent + noise*sigma, or noise*sqrt(1 + sigma^2) added when
 * full_denoise (ComfyUI's rule when sigma is the model's sigma_max); flow:
 * sigma*noise + (1 - sigma)*latent. */
void ts_pred_noise_scaling(ts_prediction p, double sigma, const float *noise, const float *latent, int full_denoise,
                           float *x, size_t n);

/* The network as a function of its own input: x_in = c_in * x and the timestep
 * (ts_noise_timestep of sigma, or the fractional one) -> eps, v or flow velocity. */
typedef int (*ts_model_fn)(void *user, const float *x_in, size_t n, double timestep, float *out);

/* A denoiser around a network: scales the input, converts sigma to the timestep the
 * network was trained with, and turns its output into D(x, sigma). */
typedef struct {
    ts_model_fn model;
    void *model_user;
    ts_prediction prediction;
    const ts_noise_schedule *schedule;
    int fractional_timesteps; /* k-diffusion quantize=False; 0 = nearest (ComfyUI) */
} ts_model_denoiser;

/* ts_denoise_fn over a ts_model_denoiser (user). */
int ts_model_denoise(void *user, const float *x, size_t n, double sigma, float *denoised);

/* Inpainting with an ordinary model (ComfyUI KSamplerX0Inpaint): before each model
 * call the kept region of x is replaced by the original latent noised to the current
 * sigma (ts_pred_noise_scaling of the starting noise), and after it the kept region
 * of D is the original latent, so the unmasked area follows the input exactly while
 * the masked area is generated in context. */
typedef struct {
    ts_denoise_fn inner;
    void *inner_user;
    ts_prediction prediction;
    const float *mask;   /* n values: 1 = repaint, 0 = keep (soft values blend) */
    const float *latent; /* the latent being inpainted, n values */
    const float *noise;  /* the unit noise sampling started from, n values */
} ts_inpaint_denoiser;

/* ts_denoise_fn over a ts_inpaint_denoiser (user). */
int ts_inpaint_denoise(void *user, const float *x, size_t n, double sigma, float *denoised);

/* out = uncond + (cond - uncond) * scale. */
void ts_cfg_combine(const float *cond, const float *uncond, double scale, float *out, size_t n);

/* A denoiser with classifier-free guidance over two denoisers that differ only in
 * their conditioning. At scale 1 the uncond pass is skipped (ComfyUI), since it
 * cannot change the result. */
typedef struct {
    ts_denoise_fn cond;
    void *cond_user;
    ts_denoise_fn uncond;
    void *uncond_user;
    double scale;
} ts_cfg_denoiser;

/* ts_denoise_fn over a ts_cfg_denoiser (user). */
int ts_cfg_denoise(void *user, const float *x, size_t n, double sigma, float *denoised);

/* InstructPix2Pix dual guidance (Brooks et al.):
 * out = none + image_scale*(image - none) + text_scale*(full - image), where full is
 * the prediction with image and text conditioning, image with the image only, none
 * with neither. */
void ts_guidance_ip2p(const float *full, const float *image, const float *none, double text_scale, double image_scale,
                      float *out, size_t n);

#endif
