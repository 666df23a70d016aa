/*
 * SD3 / SD3.5 bundle loading and generation; see sd3.h.
 *
 * The guidance branches run as one MMDiT batch (cond, uncond), as ComfyUI does, so
 * each weight is widened once per step.  Inpainting reuses the sampler-level blend
 * (ts_inpaint_denoiser) around that batched denoiser; everything the sampler touches
 * is latent-sized and malloc'd, the network's activations come from the arena.
 */
#include "pipeline/sd3.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sample/denoiser.h"
#include "sample/rng.h"

#define SD3_FAMILIES (TS_FAMILY_BIT(TS_FAMILY_SD3) | TS_FAMILY_BIT(TS_FAMILY_SD35))

/* The VAE from the checkpoint or the separate file; it must be a 16-channel one. */
static int load_vae(ts_sd3_model *m)
{
    ts_weights *wf = m->main;
    if (m->files.vae) {
        int rc = ts_weights_open(m->files.vae, &m->vae_file);
        if (rc)
            return rc;
        wf = m->vae_file;
    }
    ts_model_info info;
    ts_family_detect(wf, &info);
    if (!info.comp[TS_COMP_VAE].prefix)
        return m->files.vae ? ts_fail(TS_ERR_MODEL, "%s: no VAE in this file (it is a %s checkpoint)", m->files.vae,
                                      ts_family_name(info.family))
                            : ts_fail(TS_ERR_MODEL, "%s: the checkpoint has no VAE; give one with --vae",
                                      m->files.model);
    int rc = ts_vae_load(wf, &m->vae);
    if (rc == 0 && m->vae.z_channels != ts_mmdit_in_channels(m->mmdit))
        rc = ts_fail(TS_ERR_MODEL, "%s: this VAE has %d latent channels; the MMDiT takes %d", ts_weights_path(wf),
                     m->vae.z_channels, ts_mmdit_in_channels(m->mmdit));
    return rc;
}

int ts_sd3_load(const ts_sd3_files *files, ts_sd3_model **out)
{
    *out = NULL;
    ts_sd3_model *m = calloc(1, sizeof *m);
    if (!m)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    m->files = *files;
    ts_model_info info;
    int rc = ts_weights_open(files->model, &m->main);
    rc = rc ? rc : ts_family_require(m->main, SD3_FAMILIES, &info);
    rc = rc ? rc : ts_mmdit_load(m->main, info.comp[TS_COMP_MMDIT].prefix, &m->mmdit);
    rc = rc ? rc : load_vae(m);
    if (rc) {
        ts_sd3_free(m);
        return rc;
    }
    m->family = info.family;
    ts_noise_flow(&m->schedule, TS_SD3_SHIFT);
    m->latent = (ts_latent_format){TS_SD3_LATENT_SCALE, TS_SD3_LATENT_SHIFT};
    m->native_size = 1024;
    m->size_multiple = 8 * ts_mmdit_patch_size(m->mmdit);
    m->max_size = m->size_multiple * ts_mmdit_pos_embed_size(m->mmdit);
    *out = m;
    return 0;
}

void ts_sd3_free(ts_sd3_model *m)
{
    if (!m)
        return;
    ts_mmdit_free(m->mmdit);
    ts_weights_close(m->vae_file);
    ts_weights_close(m->main);
    free(m);
}

/* ---- one generation ---- */

typedef struct {
    const ts_sd3_model *m;
    const ts_sd3_request *r;
    ts_arena *arena;
    int branches, h, w;
    size_t n;          /* 16 * h * w */
    ts_tensor context; /* [branches, T, D] */
    ts_tensor y;       /* [branches, adm] */
    float *x_in;       /* [branches, n] */
} sd3_denoiser;

/* D(x, sigma) with guidance: both branches in one MMDiT call at t = 1000 sigma. */
static int sd3_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    sd3_denoiser *d = user;
    int64_t c = d->m->vae.z_channels;
    for (int b = 0; b < d->branches; b++)
        memcpy(d->x_in + b * n, x, n * sizeof *x);
    ts_tensor in = ts_tensor_view(d->x_in, 4, (int64_t[]){d->branches, c, d->h, d->w}), v;
    float t0 = (float)ts_noise_timestep(&d->m->schedule, sigma), t[2] = {t0, t0};
    ts_mmdit_inputs mi = {.x = &in, .timesteps = t, .context = &d->context, .y = &d->y};
    size_t mark = ts_arena_mark(d->arena);
    int rc = ts_mmdit_forward(d->m->mmdit, &mi, d->arena, &v);
    if (rc == 0) {
        for (int b = 0; b < d->branches; b++)
            ts_pred_denoised(TS_PRED_FLOW, sigma, x, v.data + b * n, v.data + b * n, n);
        if (d->branches == 2)
            ts_cfg_combine(v.data, v.data + n, d->r->cfg, denoised, n);
        else
            memcpy(denoised, v.data, n * sizeof *denoised);
    }
    ts_arena_reset(d->arena, mark);
    return rc;
}

int ts_sd3_check_size(const ts_sd3_model *m, int width, int height)
{
    int mult = m->size_multiple;
    if (width <= 0 || height <= 0 || width % mult || height % mult)
        return ts_fail(TS_ERR_ARG, "size %dx%d: width and height must be positive multiples of %d for this model",
                       width, height, mult);
    if (width > m->max_size || height > m->max_size)
        return ts_fail(TS_ERR_ARG, "size %dx%d: this model's position grid covers at most %dx%d pixels", width,
                       height, m->max_size, m->max_size);
    return 0;
}

static int check_request(const ts_sd3_model *m, const ts_sd3_request *r)
{
    int rc = ts_sd3_check_size(m, r->width, r->height);
    if (rc)
        return rc;
    if (r->steps < 1 || r->steps > 10000)
        return ts_fail(TS_ERR_ARG, "steps must be between 1 and 10000");
    if (r->mode == TS_SD_INSTRUCT)
        return ts_fail(TS_ERR_UNSUPPORTED, "instruction editing is not available for SD3 models");
    if (r->mode != TS_SD_TXT2IMG && !r->image)
        return ts_fail(TS_ERR_ARG, "this mode needs an input image");
    if (r->mode == TS_SD_INPAINT && !r->mask)
        return ts_fail(TS_ERR_ARG, "inpainting needs a mask");
    if (r->mode != TS_SD_TXT2IMG && !(r->strength > 0 && r->strength <= 1))
        return ts_fail(TS_ERR_ARG, "strength %g is outside (0, 1]", r->strength);
    int branches = r->cfg != 1.0 ? 2 : 1;
    const ts_sd3_cond *c[2] = {r->cond, r->uncond};
    int dim = ts_mmdit_context_dim(m->mmdit), adm = ts_mmdit_adm_channels(m->mmdit);
    for (int i = 0; i < branches; i++) {
        const ts_tensor *t = c[i] ? &c[i]->context : NULL, *p = c[i] ? &c[i]->pooled : NULL;
        if (!t || !t->data || t->ndim != 3 || t->shape[0] != 1 || t->shape[2] != dim ||
            t->shape[1] != c[0]->context.shape[1])
            return ts_fail(TS_ERR_ARG, "SD3 conditioning must be [1, T, %d], the same T for both prompts", dim);
        if (!p->data || p->ndim != 2 || p->shape[1] != adm)
            return ts_fail(TS_ERR_ARG, "SD3 needs a pooled vector of %d values", adm);
    }
    return 0;
}

/* Stacks the branches' contexts and pooled vectors. */
static int build_branches(sd3_denoiser *d)
{
    const ts_sd3_cond *c[2] = {d->r->cond, d->r->uncond};
    const ts_tensor *ctx = &c[0]->context;
    size_t row = (size_t)(ctx->shape[1] * ctx->shape[2]), adm = (size_t)c[0]->pooled.shape[1];
    d->context = ts_tensor_view(malloc(d->branches * row * sizeof(float)), 3,
                                (int64_t[]){d->branches, ctx->shape[1], ctx->shape[2]});
    d->y = ts_tensor_view(malloc(d->branches * adm * sizeof(float)), 2, (int64_t[]){d->branches, (int64_t)adm});
    d->x_in = malloc(d->branches * d->n * sizeof(float));
    if (!d->context.data || !d->y.data || !d->x_in)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (int b = 0; b < d->branches; b++) {
        memcpy(d->context.data + b * row, c[b]->context.data, row * sizeof(float));
        memcpy(d->y.data + b * adm, c[b]->pooled.data, adm * sizeof(float));
    }
    return 0;
}

/* The init image's posterior mean in model space. */
static int encode_init(const sd3_denoiser *d, float *init)
{
    const ts_sd3_model *m = d->m;
    if (!m->vae.has_encoder)
        return ts_fail(TS_ERR_MODEL, "the VAE has no encoder; img2img and inpainting need one");
    size_t mark = ts_arena_mark(d->arena);
    ts_tensor in = ts_tensor_view((float *)d->r->image, 4, (int64_t[]){1, 3, d->r->height, d->r->width}), moments;
    int rc = ts_vae_encode(&m->vae, &in, d->arena, &moments);
    for (size_t i = 0; rc == 0 && i < d->n; i++)
        init[i] = (moments.data[i] - m->latent.shift) * m->latent.scale;
    ts_arena_reset(d->arena, mark);
    return rc;
}

static int on_step(void *user, int i, int steps, double sigma, const float *x, const float *denoised)
{
    (void)sigma, (void)x, (void)denoised;
    const ts_sd3_request *r = user;
    return r->progress ? r->progress(r->progress_ctx, i + 1, steps) : 0;
}

/* Samples x (the starting sample) down the schedule; inpainting wraps the denoiser
 * in the latent blend over the mask replicated on every channel. */
static int sample(sd3_denoiser *d, const float *sigmas, const float *noise, const float *init, float *x)
{
    const ts_sd3_request *r = d->r;
    ts_mt19937 step_noise;
    ts_mt19937_seed(&step_noise, r->seed + 1); /* ComfyUI's CPU step noise, as in the SD pipeline */
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = sd3_denoise;
    cfg.denoise_user = d;
    cfg.noise = ts_torch_noise;
    cfg.noise_user = &step_noise;
    cfg.renoise = TS_RENOISE_LERP;
    cfg.on_step = on_step;
    cfg.step_user = (void *)r;
    float *mask = NULL;
    ts_inpaint_denoiser inpaint = {sd3_denoise, d, TS_PRED_FLOW, NULL, init, noise};
    if (r->mode == TS_SD_INPAINT) {
        size_t plane = (size_t)d->h * d->w;
        mask = malloc(d->n * sizeof *mask);
        if (!mask)
            return ts_fail(TS_ERR_NOMEM, "out of memory");
        ts_resize_bilinear(r->mask, r->height, r->width, mask, d->h, d->w);
        for (size_t i = plane; i < d->n; i++)
            mask[i] = mask[i % plane];
        inpaint.mask = mask;
        cfg.denoise = ts_inpaint_denoise;
        cfg.denoise_user = &inpaint;
    }
    int rc = ts_sample(r->sampler, &cfg, x, d->n, sigmas, r->steps);
    free(mask);
    return rc;
}

/* Model-space latent -> pixels; the MMDiT's pages are dropped first (they fault back
 * in for the next image) so the decoder's activations fit the same budget. */
static int decode(const sd3_denoiser *d, float *x, float *image)
{
    const ts_sd3_model *m = d->m;
    for (size_t i = 0; i < d->n; i++)
        x[i] = x[i] / m->latent.scale + m->latent.shift;
    ts_weights_evict(m->main);
    size_t mark = ts_arena_mark(d->arena);
    ts_tensor lat = ts_tensor_view(x, 4, (int64_t[]){1, m->vae.z_channels, d->h, d->w}), out;
    int rc = ts_vae_decode(&m->vae, &lat, d->arena, &out);
    if (rc == 0)
        memcpy(image, out.data, (size_t)ts_tensor_numel(&out) * sizeof(float));
    ts_arena_reset(d->arena, mark);
    return rc;
}

static int draw_noise(const ts_sd3_request *r, float *noise, size_t n)
{
    if (r->noise) {
        memcpy(noise, r->noise, n * sizeof *noise);
        return 0;
    }
    ts_mt19937 g; /* SD3Inferencer.get_noise: torch.manual_seed(seed); randn */
    ts_mt19937_seed(&g, r->seed);
    return ts_torch_randn(&g, noise, n);
}

int ts_sd3_generate(const ts_sd3_model *m, const ts_sd3_request *r, ts_arena *arena, float *image)
{
    int rc = check_request(m, r);
    if (rc)
        return rc;
    sd3_denoiser d = {.m = m, .r = r, .arena = arena, .h = r->height / 8, .w = r->width / 8};
    d.branches = r->cfg != 1.0 ? 2 : 1;
    d.n = (size_t)m->vae.z_channels * d.h * d.w;
    float *x = malloc(d.n * sizeof *x), *noise = malloc(d.n * sizeof *noise), *init = calloc(d.n, sizeof *init);
    float *sigmas = malloc((size_t)(r->steps + 1) * sizeof *sigmas);
    if (!x || !noise || !init || !sigmas)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    rc = rc ? rc : build_branches(&d);
    int from_image = r->mode != TS_SD_TXT2IMG;
    rc = rc || !from_image ? rc : encode_init(&d, init);
    rc = rc ? rc : ts_schedule_sigmas_denoise(&m->schedule, r->scheduler, r->steps, from_image ? r->strength : 1.0,
                                              sigmas);
    rc = rc ? rc : draw_noise(r, noise, d.n);
    if (rc == 0) {
        ts_pred_noise_scaling(TS_PRED_FLOW, sigmas[0], noise, init, 0, x, d.n);
        rc = sample(&d, sigmas, noise, init, x);
    }
    rc = rc ? rc : decode(&d, x, image);
    free(x);
    free(noise);
    free(init);
    free(sigmas);
    free(d.context.data);
    free(d.y.data);
    free(d.x_in);
    return rc;
}
