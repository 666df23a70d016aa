/*
 * One Stable Diffusion generation (see sd.h for the conventions).
 *
 * The guidance branches (cond / uncond, or InstructPix2Pix's three) run as one
 * UNet batch, as ComfyUI does: each weight is then read and widened once per step
 * instead of once per branch, and the GEMMs get twice the rows.  Everything the
 * sampler touches is the size of the latent and lives in malloc'd buffers; the
 * network's activations live in the arena and are released after every call.
 */
#include "pipeline/sd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "sample/rng.h"

#define MAX_BRANCHES 3

/* The denoiser the sampler sees: guidance over a batched UNet call, plus the
 * inpainting blend when a latent mask is set. */
typedef struct {
    const ts_sd_model *m;
    const ts_sd_request *r;
    ts_arena *arena;
    int branches, h, w, extra_channels;
    size_t n;             /* 4 * h * w */
    ts_tensor context;    /* [branches, T, D] */
    float *y;             /* [branches, adm] or NULL */
    float *extra;         /* [branches, extra_channels, h, w] or NULL */
    const float *mask;    /* latent mask [h, w] (blending) or NULL */
    const float *init;    /* init latent, model space [n] */
    const float *noise;   /* initial noise [n] */
    float *x_in;          /* scratch [n] */
    float *preds;         /* scratch [branches, n] */
} sd_denoiser;

static void probe(const ts_sd_request *r, const char *name, int step, float *data, int ndim, const int64_t *shape)
{
    if (r->probe) {
        ts_tensor t = ts_tensor_view(data, ndim, shape);
        r->probe(r->probe_ctx, name, step, &t);
    }
}

static void probe_latent(const sd_denoiser *d, const char *name, int step, const float *x)
{
    probe(d->r, name, step, (float *)x, 4, (int64_t[]){1, 4, d->h, d->w});
}

/* x_in = x * m + (L + noise * sigma) * (1 - m): outside the mask the sample is the
 * init latent re-noised to the current level (ComfyUI KSamplerX0Inpaint). */
static void blend_input(const sd_denoiser *d, const float *x, double sigma, float *out)
{
    size_t plane = (size_t)d->h * d->w;
    for (size_t i = 0; i < d->n; i++) {
        double m = d->mask[i % plane];
        out[i] = (float)(x[i] * m + (d->init[i] + d->noise[i] * sigma) * (1.0 - m));
    }
}

static int run_unet(sd_denoiser *d, const float *x, double sigma, float *preds)
{
    const ts_sd_model *m = d->m;
    int cin = 4 + d->extra_channels;
    size_t plane = (size_t)d->h * d->w, mark = ts_arena_mark(d->arena);
    ts_tensor in = ts_arena_tensor(d->arena, 4, (int64_t[]){d->branches, cin, d->h, d->w});
    if (!in.data)
        return TS_ERR_NOMEM;
    double c_in = ts_pred_c_in(m->prediction, sigma);
    for (int b = 0; b < d->branches; b++) {
        float *dst = in.data + (size_t)b * cin * plane;
        for (size_t i = 0; i < d->n; i++)
            dst[i] = (float)(c_in * x[i]);
        if (d->extra)
            memcpy(dst + d->n, d->extra + (size_t)b * d->extra_channels * plane,
                   (size_t)d->extra_channels * plane * sizeof(float));
    }
    float t = (float)ts_noise_timestep(&m->schedule, sigma), ts[MAX_BRANCHES];
    for (int b = 0; b < d->branches; b++)
        ts[b] = t;
    probe(d->r, "timestep", -1, &t, 1, (int64_t[]){1});
    ts_tensor y = ts_tensor_view(d->y, 2, (int64_t[]){d->branches, ts_unet_adm_channels(m->unet)});
    ts_unet_inputs ui = {.x = &in, .timesteps = ts, .context = &d->context, .y = d->y ? &y : NULL};
    ts_tensor out;
    int rc = ts_unet_forward(m->unet, &ui, d->arena, &out);
    if (rc == 0)
        memcpy(preds, out.data, (size_t)d->branches * d->n * sizeof(float));
    ts_arena_reset(d->arena, mark);
    return rc;
}

static int sd_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    sd_denoiser *d = user;
    const ts_sd_model *m = d->m;
    (void)n;
    if (d->mask) {
        blend_input(d, x, sigma, d->x_in);
        x = d->x_in;
    }
    int rc = run_unet(d, x, sigma, d->preds);
    if (rc)
        return rc;
    float *p[MAX_BRANCHES];
    for (int b = 0; b < d->branches; b++) {
        p[b] = d->preds + (size_t)b * d->n;
        ts_pred_denoised(m->prediction, sigma, x, p[b], p[b], d->n);
    }
    if (d->branches == 1)
        memcpy(denoised, p[0], d->n * sizeof(float));
    else if (d->branches == 2)
        ts_cfg_combine(p[0], p[1], d->r->cfg, denoised, d->n);
    else
        ts_guidance_ip2p(p[0], p[1], p[2], d->r->cfg, d->r->image_cfg, denoised, d->n);
    if (d->mask) {
        size_t plane = (size_t)d->h * d->w;
        for (size_t i = 0; i < d->n; i++) {
            double mk = d->mask[i % plane];
            denoised[i] = (float)(denoised[i] * mk + d->init[i] * (1.0 - mk));
        }
    }
    return 0;
}

typedef struct {
    sd_denoiser *d;
    int steps;
} step_ctx;

static int on_step(void *user, int i, int steps, double sigma, const float *x, const float *denoised)
{
    step_ctx *s = user;
    (void)sigma;
    probe_latent(s->d, "x", i, x);
    probe_latent(s->d, "denoised", i, denoised);
    const ts_sd_request *r = s->d->r;
    return r->progress ? r->progress(r->progress_ctx, i + 1, steps) : 0;
}

void ts_resize_bilinear(const float *src, int h, int w, float *dst, int dh, int dw)
{
    for (int j = 0; j < dh; j++) {
        double sy = fmax(((double)j + 0.5) * h / dh - 0.5, 0.0);
        int y0 = (int)sy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        double ly = sy - y0;
        for (int i = 0; i < dw; i++) {
            double sx = fmax(((double)i + 0.5) * w / dw - 0.5, 0.0);
            int x0 = (int)sx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double lx = sx - x0;
            double top = src[(size_t)y0 * w + x0] * (1 - lx) + src[(size_t)y0 * w + x1] * lx;
            double bottom = src[(size_t)y1 * w + x0] * (1 - lx) + src[(size_t)y1 * w + x1] * lx;
            dst[(size_t)j * dw + i] = (float)(top * (1 - ly) + bottom * ly);
        }
    }
}

/* One separable pass along rows (stride 1) or columns (stride w). */
static void blur_pass(const float *src, float *dst, int count, int len, size_t step, size_t line_step,
                      const double *k, int radius)
{
    for (int l = 0; l < count; l++)
        for (int i = 0; i < len; i++) {
            double acc = 0;
            for (int o = -radius; o <= radius; o++) {
                int j = i + o < 0 ? 0 : i + o >= len ? len - 1 : i + o;
                acc += k[o + radius] * src[(size_t)l * line_step + (size_t)j * step];
            }
            dst[(size_t)l * line_step + (size_t)i * step] = (float)acc;
        }
}

int ts_blur_plane(float *plane, int h, int w, double sigma)
{
    if (sigma <= 0)
        return 0;
    int radius = (int)(2.5 * sigma + 0.5);
    double *k = malloc((size_t)(2 * radius + 1) * sizeof *k), sum = 0;
    float *tmp = malloc((size_t)h * w * sizeof *tmp);
    if (!k || !tmp) {
        free(k);
        free(tmp);
        return ts_fail(TS_ERR_NOMEM, "out of memory blurring the mask");
    }
    for (int o = -radius; o <= radius; o++)
        sum += k[o + radius] = exp(-0.5 * o * o / (sigma * sigma));
    for (int o = 0; o <= 2 * radius; o++)
        k[o] /= sum;
    blur_pass(plane, tmp, h, w, 1, (size_t)w, k, radius);
    blur_pass(tmp, plane, w, h, (size_t)w, 1, k, radius);
    free(k);
    free(tmp);
    return 0;
}

/* The posterior mean of the VAE encoder (VAE space) into mean [4, h, w]. */
static int encode_mean(const ts_sd_model *m, const float *image, int width, int height, ts_arena *arena, float *mean)
{
    if (!m->vae.has_encoder)
        return ts_fail(TS_ERR_MODEL, "the VAE has no encoder; img2img, inpainting and editing need one");
    size_t mark = ts_arena_mark(arena);
    ts_tensor in = ts_tensor_view((float *)image, 4, (int64_t[]){1, 3, height, width}), moments;
    int rc = ts_vae_encode(&m->vae, &in, arena, &moments);
    if (rc == 0)
        memcpy(mean, moments.data, (size_t)4 * (height / 8) * (width / 8) * sizeof(float));
    ts_arena_reset(arena, mark);
    return rc;
}

static void to_model_space(const ts_latent_format *f, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (x[i] - f->shift) * f->scale;
}

int ts_sd_check_mode(const ts_sd_model *m, ts_sd_mode mode)
{
    int cin = ts_unet_in_channels(m->unet);
    if (mode == TS_SD_INSTRUCT && cin != 8)
        return ts_fail(TS_ERR_ARG, "instruction editing needs an InstructPix2Pix model (8 UNet input channels); "
                                   "this one has %d", cin);
    if (mode != TS_SD_INSTRUCT && cin == 8)
        return ts_fail(TS_ERR_ARG, "this is an InstructPix2Pix model (8 UNet input channels): use instruction editing");
    if (cin != 4 && cin != 8 && cin != 9)
        return ts_fail(TS_ERR_UNSUPPORTED, "a UNet with %d input channels is not supported", cin);
    return 0;
}

static int check_request(const ts_sd_model *m, const ts_sd_request *r)
{
    int mult = m->size_multiple;
    if (r->width <= 0 || r->height <= 0 || r->width % mult || r->height % mult)
        return ts_fail(TS_ERR_ARG, "size %dx%d: width and height must be positive multiples of %d for this model",
                       r->width, r->height, mult);
    if (r->steps < 1)
        return ts_fail(TS_ERR_ARG, "steps must be at least 1");
    if (r->mode != TS_SD_TXT2IMG && !r->image)
        return ts_fail(TS_ERR_ARG, "this mode needs an input image");
    if (r->mode == TS_SD_INPAINT && !r->mask)
        return ts_fail(TS_ERR_ARG, "inpainting needs a mask");
    if ((r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT) && !(r->strength > 0 && r->strength <= 1))
        return ts_fail(TS_ERR_ARG, "strength %g is outside (0, 1]", r->strength);
    int rc = ts_sd_check_mode(m, r->mode);
    if (rc)
        return rc;
    const ts_sd_cond *c[2] = {&r->cond, &r->uncond};
    int need_uncond = r->cfg != 1.0 || r->mode == TS_SD_INSTRUCT, adm = ts_unet_adm_channels(m->unet);
    for (int i = 0; i < 1 + need_uncond; i++) {
        const ts_tensor *t = &c[i]->context;
        if (!t->data || t->ndim != 3 || t->shape[0] != 1 || t->shape[2] != ts_unet_context_dim(m->unet))
            return ts_fail(TS_ERR_ARG, "conditioning must be [1, T, %d]", ts_unet_context_dim(m->unet));
        if (t->shape[1] != c[0]->context.shape[1])
            return ts_fail(TS_ERR_ARG, "prompt and negative prompt conditionings differ in length (%lld, %lld)",
                           (long long)c[0]->context.shape[1], (long long)t->shape[1]);
        if (adm && (!c[i]->pooled || c[i]->pooled_dim + 6 * TS_SDXL_SIZE_EMBED != adm))
            return ts_fail(TS_ERR_ARG, "SDXL needs a pooled text embedding of %d values", adm - 6 * TS_SDXL_SIZE_EMBED);
    }
    return 0;
}

/* Stacks the branch conditionings: contexts, SDXL vectors, extra input channels. */
static int build_branches(sd_denoiser *d, const ts_sd_cond *const *conds)
{
    const ts_sd_request *r = d->r;
    int64_t tokens = conds[0]->context.shape[1], dim = conds[0]->context.shape[2];
    size_t row = (size_t)(tokens * dim);
    d->context = ts_tensor_view(malloc((size_t)d->branches * row * sizeof(float)), 3,
                                (int64_t[]){d->branches, tokens, dim});
    if (!d->context.data)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (int b = 0; b < d->branches; b++)
        memcpy(d->context.data + b * row, conds[b]->context.data, row * sizeof(float));
    int adm = ts_unet_adm_channels(d->m->unet);
    if (adm) {
        d->y = malloc((size_t)d->branches * adm * sizeof(float));
        if (!d->y)
            return ts_fail(TS_ERR_NOMEM, "out of memory");
        /* Original size = target size = the output, no crop: what a plain generation asks for. */
        int64_t sizes[6] = {r->height, r->width, 0, 0, r->height, r->width};
        for (int b = 0; b < d->branches; b++)
            ts_sdxl_vector(conds[b]->pooled, 1, conds[b]->pooled_dim, sizes, d->y + (size_t)b * adm);
    }
    return 0;
}

/* Extra UNet input channels: inpainting models take [mask | masked-image latent],
 * InstructPix2Pix models the image latent (zeros in the image-unconditional branch). */
static int build_extra(sd_denoiser *d, const float *image_mean)
{
    const ts_sd_request *r = d->r;
    size_t plane = (size_t)d->h * d->w;
    d->extra_channels = ts_unet_in_channels(d->m->unet) - 4;
    if (!d->extra_channels)
        return 0;
    d->extra = calloc((size_t)d->branches * d->extra_channels * plane, sizeof(float));
    if (!d->extra)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    float *e = d->extra;
    if (d->extra_channels == 4) {
        for (int b = 0; b < d->branches - 1; b++)
            memcpy(e + (size_t)b * d->n, image_mean, d->n * sizeof(float));
        return 0;
    }
    /* Masked image: repainted pixels set to grey (0 in [-1, 1]); without a mask the
     * whole picture is to be painted, so the mask is all ones and the image all grey. */
    size_t pixels = (size_t)r->width * r->height;
    float *masked = calloc(3 * pixels, sizeof *masked);
    if (!masked)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; r->mask && i < 3 * pixels; i++)
        masked[i] = r->mask[i % pixels] < 0.5f ? r->image[i] : 0.0f;
    int rc = encode_mean(d->m, masked, r->width, r->height, d->arena, e + plane);
    free(masked);
    if (rc)
        return rc;
    to_model_space(&d->m->latent, e + plane, d->n);
    for (size_t i = 0; i < plane; i++)
        e[i] = d->mask ? d->mask[i] : 1.0f;
    for (int b = 1; b < d->branches; b++)
        memcpy(e + (size_t)b * 5 * plane, e, 5 * plane * sizeof(float));
    return 0;
}

static int draw_noise(const ts_sd_request *r, float *noise, size_t n)
{
    if (r->noise) {
        memcpy(noise, r->noise, n * sizeof *noise);
        return 0;
    }
    ts_mt19937 g;
    ts_mt19937_seed(&g, r->seed);
    return ts_torch_randn(&g, noise, n);
}

/* Samples from the starting point to the final model-space latent x. */
static int sample(sd_denoiser *d, const float *sigmas, float *x)
{
    const ts_sd_request *r = d->r;
    ts_mt19937 step_noise;
    /* ComfyUI's CPU step noise: a second generator seeded with seed + 1. */
    ts_mt19937_seed(&step_noise, r->seed + 1);
    step_ctx sc = {d, r->steps};
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = sd_denoise;
    cfg.denoise_user = d;
    cfg.noise = ts_torch_noise;
    cfg.noise_user = &step_noise;
    cfg.on_step = on_step;
    cfg.step_user = &sc;
    int rc = ts_sample(r->sampler, &cfg, x, d->n, sigmas, r->steps);
    if (rc == 0)
        probe_latent(d, "x", r->steps, x);
    return rc;
}

static int decode(const ts_sd_model *m, sd_denoiser *d, float *x, float *image)
{
    probe_latent(d, "latent", -1, x);
    for (size_t i = 0; i < d->n; i++)
        x[i] = x[i] / m->latent.scale + m->latent.shift;
    probe_latent(d, "latent_vae", -1, x);
    /* The UNet's pages are not needed while decoding (they fault back in for the next
     * image): without them the decoder's large activations fit the same budget. */
    ts_weights_evict(m->main);
    size_t mark = ts_arena_mark(d->arena);
    ts_tensor lat = ts_tensor_view(x, 4, (int64_t[]){1, 4, d->h, d->w}), out;
    int rc = ts_vae_decode(&m->vae, &lat, d->arena, &out);
    if (rc == 0)
        memcpy(image, out.data, (size_t)3 * 64 * d->n / 4 * sizeof(float));
    ts_arena_reset(d->arena, mark);
    return rc;
}

/* Init latent, latent mask and extra channels for the modes that start from an image. */
static int prepare_image(sd_denoiser *d, float *init, float *mask_lat, float *image_mean)
{
    const ts_sd_request *r = d->r;
    if (r->mode == TS_SD_TXT2IMG)
        return build_extra(d, NULL);
    int rc = encode_mean(d->m, r->image, r->width, r->height, d->arena, image_mean);
    if (rc)
        return rc;
    probe(r, "init_latent", -1, image_mean, 4, (int64_t[]){1, 4, d->h, d->w});
    if (r->mode != TS_SD_INSTRUCT) {
        memcpy(init, image_mean, d->n * sizeof *init);
        to_model_space(&d->m->latent, init, d->n);
    }
    if (r->mode == TS_SD_INPAINT) {
        ts_resize_bilinear(r->mask, r->height, r->width, mask_lat, d->h, d->w);
        d->mask = mask_lat;
        float *rep = malloc(d->n * sizeof *rep);
        for (size_t i = 0; rep && i < d->n; i++)
            rep[i] = mask_lat[i % ((size_t)d->h * d->w)];
        if (rep)
            probe(r, "latent_mask", -1, rep, 4, (int64_t[]){1, 4, d->h, d->w});
        free(rep);
    }
    return build_extra(d, image_mean);
}

int ts_sd_generate(const ts_sd_model *m, const ts_sd_request *r, ts_arena *arena, float *image)
{
    int rc = check_request(m, r);
    if (rc)
        return rc;
    sd_denoiser d = {.m = m, .r = r, .arena = arena, .h = r->height / 8, .w = r->width / 8};
    d.n = (size_t)4 * d.h * d.w;
    const ts_sd_cond *conds[MAX_BRANCHES] = {&r->cond, &r->uncond, &r->uncond};
    d.branches = r->mode == TS_SD_INSTRUCT ? 3 : r->cfg != 1.0 ? 2 : 1;
    size_t n = d.n;
    float *x = malloc(n * sizeof *x), *noise = malloc(n * sizeof *noise), *init = calloc(n, sizeof *init);
    float *mask_lat = malloc(n / 4 * sizeof *mask_lat), *image_mean = malloc(n * sizeof *image_mean);
    float *sigmas = malloc((size_t)(r->steps + 1) * sizeof *sigmas);
    d.x_in = malloc(n * sizeof *d.x_in);
    d.preds = malloc((size_t)d.branches * n * sizeof *d.preds);
    if (!x || !noise || !init || !mask_lat || !image_mean || !sigmas || !d.x_in || !d.preds)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    d.init = init;
    d.noise = noise;
    rc = rc ? rc : build_branches(&d, conds);
    rc = rc ? rc : prepare_image(&d, init, mask_lat, image_mean);
    double denoise = r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT ? r->strength : 1.0;
    rc = rc ? rc : ts_schedule_sigmas_denoise(&m->schedule, r->scheduler, r->steps, denoise, sigmas);
    rc = rc ? rc : draw_noise(r, noise, n);
    if (rc == 0) {
        probe(r, "sigmas", -1, sigmas, 1, (int64_t[]){r->steps + 1});
        int from_image = r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT;
        ts_pred_noise_scaling(m->prediction, sigmas[0], noise, from_image ? init : NULL,
                              ts_noise_full_denoise(&m->schedule, sigmas[0]), x, n);
        rc = sample(&d, sigmas, x);
    }
    rc = rc ? rc : decode(m, &d, x, image);
    free(x);
    free(noise);
    free(init);
    free(mask_lat);
    free(image_mean);
    free(sigmas);
    free(d.x_in);
    free(d.preds);
    free(d.context.data);
    free(d.y);
    free(d.extra);
    return rc;
}
