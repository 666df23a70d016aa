/*
 * Prediction-type conversions and guidance; see denoiser.h.  Elementwise, in double
 * per element so guidance at scale 7-12 does not amplify float rounding.
 */
#include "sample/denoiser.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h"

double ts_pred_c_in(ts_prediction p, double sigma)
{
    return p == TS_PRED_FLOW ? 1.0 : 1.0 / sqrt(sigma * sigma + 1.0);
}

void ts_pred_denoised(ts_prediction p, double sigma, const float *x, const float *out, float *denoised, size_t n)
{
    double kx = 1.0, ko = -sigma;
    if (p == TS_PRED_V) {
        kx = 1.0 / (sigma * sigma + 1.0);
        ko = -sigma / sqrt(sigma * sigma + 1.0);
    }
    for (size_t i = 0; i < n; i++)
        denoised[i] = (float)(kx * x[i] + ko * out[i]);
}

void ts_pred_noise_scaling(ts_prediction p, double sigma, const float *noise, const float *latent, int full_denoise,
                           float *x, size_t n)
{
    double kn = sigma, kl = 1.0;
    if (p == TS_PRED_FLOW)
        kl = 1.0 - sigma;
    else if (full_denoise)
        kn = sqrt(1.0 + sigma * sigma);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(kn * noise[i] + (latent ? kl * latent[i] : 0.0));
}

int ts_model_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    const ts_model_denoiser *m = user;
    float *x_in = malloc((n ? n : 1) * sizeof *x_in);
    if (!x_in)
        return ts_fail(TS_ERR_NOMEM, "denoiser: out of memory for %zu floats", n);
    double c_in = ts_pred_c_in(m->prediction, sigma);
    for (size_t i = 0; i < n; i++)
        x_in[i] = (float)(c_in * x[i]);
    double t =
        m->fractional_timesteps ? ts_noise_timestep_frac(m->schedule, sigma) : ts_noise_timestep(m->schedule, sigma);
    int rc = m->model(m->model_user, x_in, n, t, denoised);
    free(x_in);
    if (rc == 0)
        ts_pred_denoised(m->prediction, sigma, x, denoised, denoised, n);
    return rc;
}

int ts_inpaint_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    const ts_inpaint_denoiser *p = user;
    if (n == 0)
        return 0;
    float *blend = malloc(n * sizeof *blend);
    if (!blend)
        return ts_fail(TS_ERR_NOMEM, "inpaint: out of memory for %zu floats", n);
    ts_pred_noise_scaling(p->prediction, sigma, p->noise, p->latent, 0, blend, n);
    for (size_t i = 0; i < n; i++) {
        double m = p->mask[i];
        blend[i] = (float)(x[i] * m + blend[i] * (1.0 - m));
    }
    int rc = p->inner(p->inner_user, blend, n, sigma, denoised);
    free(blend);
    if (rc == 0)
        for (size_t i = 0; i < n; i++) {
            double m = p->mask[i];
            denoised[i] = (float)(denoised[i] * m + p->latent[i] * (1.0 - m));
        }
    return rc;
}

void ts_cfg_combine(const float *cond, const float *uncond, double scale, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(uncond[i] + ((double)cond[i] - uncond[i]) * scale);
}

int ts_cfg_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    const ts_cfg_denoiser *g = user;
    int rc = g->cond(g->cond_user, x, n, sigma, denoised);
    if (rc || g->scale == 1.0)
        return rc;
    float *uncond = malloc((n ? n : 1) * sizeof *uncond);
    if (!uncond)
        return ts_fail(TS_ERR_NOMEM, "guidance: out of memory for %zu floats", n);
    rc = g->uncond(g->uncond_user, x, n, sigma, uncond);
    if (rc == 0)
        ts_cfg_combine(denoised, uncond, g->scale, denoised, n);
    free(uncond);
    return rc;
}

void ts_guidance_ip2p(const float *full, const float *image, const float *none, double text_scale, double image_scale,
                      float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double e0 = none[i], ei = image[i];
        out[i] = (float)(e0 + image_scale * (ei - e0) + text_scale * ((double)full[i] - ei));
    }
}
