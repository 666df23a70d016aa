/*
 * SD3 / SD3.5 bundle loading and generation; see sd3.h.
 *
 * The guidance branches run as one MMDiT batch (cond, uncond), as ComfyUI does, so
 * each weight is widened once per step.  Inpainting reuses the sampler-level blend
 * (ts_inpaint_denoiser) around that batched denoiser; everything the sampler touches
 * is latent-sized and malloc'd, the network's activations come from the arena.
 */
#include "pipeline/sd3.h"

#include "models/vae_tiled.h"
#include "pipeline/tiles.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/vae_tiled.h"
#include "pipeline/tiles.h"
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
    const ts_sd3_cond *branch_cond[2];
    ts_tile_plan plan; /* one tile of the whole latent when untiled */
    int tile_batch;
    int canvas_top, canvas_left; /* the canvas's window in the pos_embed grid; -1: too large */
    float *acc, *wsum; /* blended velocity [branches, n]; weights [branches, h * w] */
    const float *x;    /* the sample of the model call under way, and its level */
    double sigma;
} sd3_denoiser;

/* Where item's tile lies in the pos_embed grid: at its place in the canvas's centred
 * window when the whole canvas fits the grid, else (a canvas larger than the model
 * was made for) in the tile's own centred window. */
static void tile_origin(const sd3_denoiser *d, int t, int *origin)
{
    const ts_tile *o = &d->plan.tiles[t];
    int patch = ts_mmdit_patch_size(d->m->mmdit), grid = ts_mmdit_pos_embed_size(d->m->mmdit);
    if (d->canvas_top >= 0) {
        origin[0] = d->canvas_top + o->y / patch;
        origin[1] = d->canvas_left + o->x / patch;
    } else {
        origin[0] = (grid - d->plan.th / patch) / 2;
        origin[1] = (grid - d->plan.tw / patch) / 2;
    }
}

/* The MMDiT on `count` tiles from `first`, every guidance branch of each in one
 * batch; the velocities are blended into d->acc. */
static int run_tiles(void *user, int first, int count)
{
    sd3_denoiser *d = user;
    const float *x = d->x;
    double sigma = d->sigma;
    const ts_tile_plan *p = &d->plan;
    int64_t c = d->m->vae.z_channels, rows = (int64_t)count * d->branches;
    const ts_tensor *ctx0 = &d->branch_cond[0]->context;
    int64_t lt = ctx0->shape[1], dt = ctx0->shape[2], adm = d->branch_cond[0]->pooled.shape[1];
    size_t tile_n = (size_t)c * p->th * p->tw, plane = (size_t)d->h * d->w, mark = ts_arena_mark(d->arena);
    ts_tensor in = ts_arena_tensor(d->arena, 4, (int64_t[]){rows, c, p->th, p->tw});
    ts_tensor context = ts_arena_tensor(d->arena, 3, (int64_t[]){rows, lt, dt});
    ts_tensor y = ts_arena_tensor(d->arena, 2, (int64_t[]){rows, adm});
    float *t = ts_arena_alloc(d->arena, (size_t)rows * sizeof *t);
    int *origin = ts_arena_alloc(d->arena, 2 * (size_t)rows * sizeof *origin);
    if (!in.data || !context.data || !y.data || !t || !origin) {
        ts_arena_reset(d->arena, mark);
        return ts_fail(TS_ERR_NOMEM, "out of memory for a batch of %d tiles", count);
    }
    for (int64_t k = 0; k < rows; k++) {
        int tile = first + (int)(k / d->branches), b = (int)(k % d->branches);
        const ts_sd3_cond *cond = d->branch_cond[b];
        ts_tile_crop(p, tile, x, (int)c, in.data + k * tile_n);
        memcpy(context.data + k * lt * dt, cond->context.data, (size_t)(lt * dt) * sizeof(float));
        memcpy(y.data + k * adm, cond->pooled.data, (size_t)adm * sizeof(float));
        t[k] = (float)ts_noise_timestep(&d->m->schedule, sigma);
        tile_origin(d, tile, origin + 2 * k);
    }
    ts_mmdit_inputs mi = {.x = &in, .timesteps = t, .context = &context, .y = &y, .pos_origin = origin};
    ts_tensor v;
    int rc = ts_mmdit_forward(d->m->mmdit, &mi, d->arena, &v);
    for (int64_t k = 0; rc == 0 && k < rows; k++) {
        int b = (int)(k % d->branches);
        ts_tile_accumulate(p, first + (int)(k / d->branches), v.data + k * tile_n, (int)c, NULL,
                           d->acc + (size_t)b * d->n, d->wsum + (size_t)b * plane);
    }
    ts_arena_reset(d->arena, mark);
    return rc;
}

/* D(x, sigma) with guidance: the branches' velocities, blended over the tiles
 * (tiles.h), at t = 1000 sigma. */
static int sd3_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    sd3_denoiser *d = user;
    int64_t c = d->m->vae.z_channels;
    size_t plane = (size_t)d->h * d->w;
    memset(d->acc, 0, (size_t)d->branches * n * sizeof *d->acc);
    memset(d->wsum, 0, (size_t)d->branches * plane * sizeof *d->wsum);
    d->x = x;
    d->sigma = sigma;
    int rc = ts_tile_each_batch(&d->plan, d->tile_batch, d->arena, run_tiles, d);
    if (rc)
        return rc;
    for (int b = 0; b < d->branches; b++) {
        float *v = d->acc + (size_t)b * n;
        ts_tile_normalize(v, d->wsum + (size_t)b * plane, (int)c, plane);
        ts_pred_denoised(TS_PRED_FLOW, sigma, x, v, v, n);
    }
    if (d->branches == 2)
        ts_cfg_combine(d->acc, d->acc + n, d->r->cfg, denoised, n);
    else
        memcpy(denoised, d->acc, n * sizeof *denoised);
    return 0;
}

int ts_sd3_check_size(const ts_sd3_model *m, int width, int height, int tiled)
{
    int mult = m->size_multiple;
    if (width <= 0 || height <= 0 || width % mult || height % mult)
        return ts_fail(TS_ERR_ARG, "size %dx%d: width and height must be positive multiples of %d for this model",
                       width, height, mult);
    if (!tiled && (width > m->max_size || height > m->max_size))
        return ts_fail(TS_ERR_ARG, "size %dx%d: this model's position grid covers at most %dx%d pixels", width,
                       height, m->max_size, m->max_size);
    return 0;
}

static int check_request(const ts_sd3_model *m, const ts_sd3_request *r)
{
    int rc = ts_sd3_check_size(m, r->width, r->height, r->tiling.size > 0);
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

/* The tile plan and the blend buffers; where the canvas sits in the position grid. */
static int build_tiling(sd3_denoiser *d)
{
    const ts_sd3_request *r = d->r;
    ts_tile_config tc = r->tiling;
    int patch = ts_mmdit_patch_size(d->m->mmdit), grid = ts_mmdit_pos_embed_size(d->m->mmdit);
    if (tc.size <= 0)
        tc = (ts_tile_config){d->h > d->w ? d->h : d->w, 0, 1, TS_TILE_BLEND_UNIFORM};
    int rc = ts_tile_plan_init(&d->plan, d->h, d->w, &tc, d->m->size_multiple / 8);
    if (rc)
        return rc;
    if (d->plan.th / patch > grid || d->plan.tw / patch > grid)
        return ts_fail(TS_ERR_ARG, "tiles of %dx%d latent pixels exceed this model's %dx%d position grid",
                       d->plan.tw, d->plan.th, grid * patch, grid * patch);
    int fits = d->h / patch <= grid && d->w / patch <= grid;
    d->canvas_top = fits ? (grid - d->h / patch) / 2 : -1;
    d->canvas_left = fits ? (grid - d->w / patch) / 2 : -1;
    d->tile_batch = tc.batch;
    d->acc = malloc((size_t)d->branches * d->n * sizeof *d->acc);
    d->wsum = malloc((size_t)d->branches * d->h * d->w * sizeof *d->wsum);
    if (!d->acc || !d->wsum)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
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
    int rc = d->r->vae_tiling ? ts_vae_encode_tiled(&m->vae, &in, d->r->vae_tiling, d->arena, &moments)
                              : ts_vae_encode(&m->vae, &in, d->arena, &moments);
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
    if (d->r->vae_tiling)
        return ts_vae_decode_tiled_into(&m->vae, &lat, d->r->vae_tiling, d->arena, image);
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
    d.branch_cond[0] = r->cond;
    d.branch_cond[1] = r->uncond;
    rc = rc ? rc : build_tiling(&d);
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
    free(d.acc);
    free(d.wsum);
    ts_tile_plan_free(&d.plan);
    return rc;
}
