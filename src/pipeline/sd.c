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
#include "models/vae_tiled.h"
#include "pipeline/tiles.h"
#include "sample/rng.h"

#define MAX_BRANCHES 3

/* A prompt the text-conditioned branch is evaluated with: the main prompt, weighted
 * wherever no region claims the pixel, or a region's prompt weighted by its mask. */
typedef struct {
    const ts_sd_cond *cond;
    const float *weight; /* latent plane [h, w]; NULL = 1 everywhere */
} prompt_layer;

/* One network evaluation of a batch: a tile, in one guidance branch, with one prompt. */
typedef struct {
    int tile, branch, layer;
} work_item;

/* The denoiser the sampler sees: guidance over batched UNet calls on the canvas's
 * tiles (one tile when the canvas is within the tile size), regional prompts in the
 * text-conditioned branch, plus the inpainting blend when a latent mask is set. */
typedef struct {
    const ts_sd_model *m;
    const ts_sd_request *r;
    ts_arena *arena;
    int branches, h, w, extra_channels;
    size_t n;             /* 4 * h * w */
    const ts_sd_cond *branch_cond[MAX_BRANCHES];
    prompt_layer *layers; /* layers[0]: the main prompt, then one per region */
    int layer_count;
    float *layer_weights; /* [layer_count, h, w] when there are regions */
    ts_tile_plan plan;
    int tile_batch;
    work_item *items;     /* [tile_batch * (branches + regions)] scratch */
    float *extra;         /* [branches, extra_channels, h, w] or NULL */
    const float *mask;    /* latent mask [h, w] (blending) or NULL */
    const float *init;    /* init latent, model space [n] */
    const float *noise;   /* initial noise [n] */
    float *x_in;          /* scratch [n] */
    float *preds;         /* blended network outputs [branches, n] */
    float *wsum;          /* blend weights [branches, h, w] */
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

static const ts_sd_cond *item_cond(const sd_denoiser *d, const work_item *it)
{
    return it->branch == 0 ? d->layers[it->layer].cond : d->branch_cond[it->branch];
}

/* Runs the UNet on a batch of work items and accumulates each output into its
 * branch's blend. */
static int run_items(sd_denoiser *d, const work_item *items, int count, const float *x, double sigma)
{
    const ts_sd_model *m = d->m;
    const ts_tile_plan *p = &d->plan;
    int cin = 4 + d->extra_channels, adm = ts_unet_adm_channels(m->unet);
    size_t tile_plane = (size_t)p->th * p->tw, plane = (size_t)d->h * d->w, mark = ts_arena_mark(d->arena);
    int64_t tokens = item_cond(d, &items[0])->context.shape[1], dim = item_cond(d, &items[0])->context.shape[2];
    size_t row = (size_t)(tokens * dim);
    ts_tensor in = ts_arena_tensor(d->arena, 4, (int64_t[]){count, cin, p->th, p->tw});
    ts_tensor context = ts_arena_tensor(d->arena, 3, (int64_t[]){count, tokens, dim});
    ts_tensor y = ts_arena_tensor(d->arena, 2, (int64_t[]){count, adm ? adm : 1});
    float *ts = ts_arena_alloc(d->arena, (size_t)count * sizeof *ts);
    if (!in.data || !context.data || !y.data || !ts) {
        ts_arena_reset(d->arena, mark);
        return ts_fail(TS_ERR_NOMEM, "out of memory for a batch of %d tiles", count);
    }
    double c_in = ts_pred_c_in(m->prediction, sigma);
    float t = (float)ts_noise_timestep(&m->schedule, sigma);
    probe(d->r, "timestep", -1, &t, 1, (int64_t[]){1});
    for (int k = 0; k < count; k++) {
        const work_item *it = &items[k];
        const ts_tile *o = &p->tiles[it->tile];
        const ts_sd_cond *c = item_cond(d, it);
        float *dst = in.data + (size_t)k * cin * tile_plane;
        ts_tile_crop(p, it->tile, x, 4, dst);
        for (size_t i = 0; i < 4 * tile_plane; i++)
            dst[i] = (float)(c_in * dst[i]);
        if (d->extra)
            ts_tile_crop(p, it->tile, d->extra + (size_t)it->branch * d->extra_channels * plane, d->extra_channels,
                         dst + 4 * tile_plane);
        memcpy(context.data + k * row, c->context.data, row * sizeof(float));
        /* SDXL's micro-conditioning for a crop of the canvas: the original is the
         * whole canvas, the crop starts at the tile, the target is the tile. */
        int64_t sizes[6] = {d->r->height, d->r->width, 8 * o->y, 8 * o->x, 8 * p->th, 8 * p->tw};
        if (adm)
            ts_sdxl_vector(c->pooled, 1, c->pooled_dim, sizes, y.data + (size_t)k * adm);
        ts[k] = t;
    }
    if (adm)
        probe(d->r, "vector", -1, y.data, 2, y.shape);
    ts_unet_inputs ui = {.x = &in, .timesteps = ts, .context = &context, .y = adm ? &y : NULL};
    ts_tensor out;
    int rc = ts_unet_forward(m->unet, &ui, d->arena, &out);
    for (int k = 0; rc == 0 && k < count; k++) {
        const work_item *it = &items[k];
        const float *weight = it->branch == 0 ? d->layers[it->layer].weight : NULL;
        ts_tile_accumulate(p, it->tile, out.data + (size_t)k * 4 * tile_plane, 4, weight,
                           d->preds + (size_t)it->branch * d->n, d->wsum + (size_t)it->branch * plane);
    }
    ts_arena_reset(d->arena, mark);
    return rc;
}

/* Every branch's network output over the whole canvas, blended from the tiles:
 * work items go to the UNet in batches of up to tile_batch tiles, a batch ending
 * early where the prompt length changes (the context must be one tensor). */
static int run_canvas(sd_denoiser *d, const float *x, double sigma)
{
    size_t plane = (size_t)d->h * d->w;
    memset(d->preds, 0, (size_t)d->branches * d->n * sizeof *d->preds);
    memset(d->wsum, 0, (size_t)d->branches * plane * sizeof *d->wsum);
    int count = 0, tiles_in_batch = 0, rc = 0;
    size_t mark = ts_arena_mark(d->arena);
    ts_arena_hold_pages(d->arena, 1);
    for (int t = 0; rc == 0 && t < d->plan.count; t++) {
        /* The text-conditioned branch once per prompt layer with weight in the tile,
         * then the other branches (negative prompt, image-only), which are global. */
        for (int k = 0; k < d->layer_count + d->branches - 1; k++) {
            work_item it = {t, k < d->layer_count ? 0 : k - d->layer_count + 1, k < d->layer_count ? k : 0};
            const float *wt = d->layers[it.layer].weight;
            if (it.branch == 0 && wt && !ts_tile_touches(&d->plan, t, wt))
                continue;
            if (count && item_cond(d, &it)->context.shape[1] != item_cond(d, &d->items[0])->context.shape[1]) {
                rc = rc ? rc : run_items(d, d->items, count, x, sigma);
                count = tiles_in_batch = 0;
            }
            d->items[count++] = it;
        }
        if (++tiles_in_batch == d->tile_batch || t == d->plan.count - 1) {
            rc = rc || !count ? rc : run_items(d, d->items, count, x, sigma);
            count = tiles_in_batch = 0;
        }
    }
    ts_arena_hold_pages(d->arena, 0);
    ts_arena_reset(d->arena, mark);
    for (int b = 0; rc == 0 && b < d->branches; b++)
        ts_tile_normalize(d->preds + (size_t)b * d->n, d->wsum + (size_t)b * plane, 4, plane);
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
    int rc = run_canvas(d, x, sigma);
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

static int on_step(void *user, int i, int steps, double sigma, const float *x, const float *denoised)
{
    sd_denoiser *d = user;
    (void)steps;
    (void)sigma;
    probe_latent(d, "x", i, x);
    probe_latent(d, "denoised", i, denoised);
    return 0;
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
static int encode_mean(const ts_sd_model *m, const ts_sd_request *r, const float *image, ts_arena *arena, float *mean)
{
    if (!m->vae.has_encoder)
        return ts_fail(TS_ERR_MODEL, "the VAE has no encoder; img2img, inpainting and editing need one");
    size_t mark = ts_arena_mark(arena);
    ts_tensor in = ts_tensor_view((float *)image, 4, (int64_t[]){1, 3, r->height, r->width}), moments;
    int rc = r->vae_tiling ? ts_vae_encode_tiled(&m->vae, &in, r->vae_tiling, arena, &moments)
                           : ts_vae_encode(&m->vae, &in, arena, &moments);
    if (rc == 0)
        memcpy(mean, moments.data, (size_t)4 * (r->height / 8) * (r->width / 8) * sizeof(float));
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

/* A conditioning the UNet can take; the negative prompt's must have the prompt's
 * length, since both go through one UNet batch. */
static int check_cond(const ts_sd_model *m, const ts_sd_cond *c, int64_t prompt_tokens, int negative)
{
    const ts_tensor *t = &c->context;
    int adm = ts_unet_adm_channels(m->unet);
    if (!t->data || t->ndim != 3 || t->shape[0] != 1 || t->shape[2] != ts_unet_context_dim(m->unet))
        return ts_fail(TS_ERR_ARG, "conditioning must be [1, T, %d]", ts_unet_context_dim(m->unet));
    if (negative && t->shape[1] != prompt_tokens)
        return ts_fail(TS_ERR_ARG, "prompt and negative prompt conditionings differ in length (%lld, %lld)",
                       (long long)prompt_tokens, (long long)t->shape[1]);
    if (adm && (!c->pooled || c->pooled_dim + 6 * TS_SDXL_SIZE_EMBED != adm))
        return ts_fail(TS_ERR_ARG, "SDXL needs a pooled text embedding of %d values", adm - 6 * TS_SDXL_SIZE_EMBED);
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
    if (r->mode != TS_SD_TXT2IMG && !r->image && !(r->mode == TS_SD_IMG2IMG && r->init_latent))
        return ts_fail(TS_ERR_ARG, "this mode needs an input image");
    if (r->skip_residual < 0 || (r->skip_residual > 0 && !r->init_latent))
        return ts_fail(TS_ERR_ARG, "the skip residual needs an init latent and a positive exponent");
    if (r->mode == TS_SD_INPAINT && !r->mask)
        return ts_fail(TS_ERR_ARG, "inpainting needs a mask");
    if ((r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT) && !(r->strength > 0 && r->strength <= 1))
        return ts_fail(TS_ERR_ARG, "strength %g is outside (0, 1]", r->strength);
    int rc = ts_sd_check_mode(m, r->mode);
    if (rc)
        return rc;
    if (r->region_count < 0 || (r->region_count && !r->regions))
        return ts_fail(TS_ERR_ARG, "bad region list");
    int need_uncond = r->cfg != 1.0 || r->mode == TS_SD_INSTRUCT;
    for (int i = -1 - need_uncond; i < r->region_count; i++) {
        const ts_sd_cond *c = i == -2 ? &r->uncond : i == -1 ? &r->cond : &r->regions[i].cond;
        if (i >= 0 && !r->regions[i].mask)
            return ts_fail(TS_ERR_ARG, "region %d has no mask", i + 1);
        rc = check_cond(m, c, r->cond.context.shape[1], i == -2);
        if (rc)
            return rc;
    }
    return 0;
}

/* Prompt layers and their weight planes: a region's weight is its mask at latent
 * resolution; the main prompt keeps what the regions leave, 1 - min(1, sum). */
static int build_layers(sd_denoiser *d)
{
    const ts_sd_request *r = d->r;
    size_t plane = (size_t)d->h * d->w;
    d->layer_count = 1 + r->region_count;
    d->layers = calloc((size_t)d->layer_count, sizeof *d->layers);
    if (!d->layers)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    d->layers[0].cond = &r->cond;
    if (!r->region_count)
        return 0;
    d->layer_weights = calloc((size_t)d->layer_count * plane, sizeof(float));
    if (!d->layer_weights)
        return ts_fail(TS_ERR_NOMEM, "out of memory for %d region masks", r->region_count);
    float *main_weight = d->layer_weights;
    for (size_t i = 0; i < plane; i++)
        main_weight[i] = 1.0f;
    for (int k = 0; k < r->region_count; k++) {
        float *wt = d->layer_weights + (size_t)(k + 1) * plane;
        ts_resize_bilinear(r->regions[k].mask, r->height, r->width, wt, d->h, d->w);
        for (size_t i = 0; i < plane; i++)
            main_weight[i] -= wt[i];
        d->layers[k + 1] = (prompt_layer){&r->regions[k].cond, wt};
    }
    for (size_t i = 0; i < plane; i++)
        main_weight[i] = main_weight[i] < 0 ? 0 : main_weight[i];
    d->layers[0].weight = main_weight;
    return 0;
}

/* The tile plan (one tile of the whole canvas when untiled) and the blend buffers. */
static int build_tiling(sd_denoiser *d)
{
    const ts_sd_request *r = d->r;
    ts_tile_config tc = r->tiling;
    int align = d->m->size_multiple / 8;
    if (tc.size <= 0) {
        tc.size = d->h > d->w ? d->h : d->w;
        tc.overlap = 0;
        tc.batch = 1;
    }
    int rc = ts_tile_plan_init(&d->plan, d->h, d->w, &tc, align);
    if (rc)
        return rc;
    d->tile_batch = tc.batch;
    d->items = malloc((size_t)tc.batch * (d->branches + r->region_count) * sizeof *d->items);
    d->preds = malloc((size_t)d->branches * d->n * sizeof *d->preds);
    d->wsum = malloc((size_t)d->branches * d->n / 4 * sizeof *d->wsum);
    if (!d->items || !d->preds || !d->wsum)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
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
    int rc = encode_mean(d->m, r, masked, d->arena, e + plane);
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

/* What a run keeps at every step boundary: the state a stop there (by the caller, or
 * by a failure in the next step) hands to ts_sd_resume.on_stop. */
typedef struct {
    sd_denoiser *d;
    const float *sigmas;
    ts_run_state *at;
    float *prev; /* at->prev's storage once a step is done */
    const ts_mt19937 *rng;
} boundary;

/* DemoFusion's skip residual: early in the run the sample is pulled towards the
 * init latent noised to the current level, with a weight decaying as a cosine to 0,
 * so the global layout of the first pass survives while the tiles add detail. */
static void skip_residual(const boundary *b, int done, int steps, float *x, size_t n)
{
    const sd_denoiser *d = b->d;
    double c = pow((1 + cos(M_PI * done / steps)) / 2, d->r->skip_residual);
    if (d->r->skip_residual <= 0 || c <= 0)
        return;
    ts_pred_noise_scaling(d->m->prediction, b->sigmas[done], d->noise, d->init, 0, d->x_in, n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(c * d->x_in[i] + (1 - c) * x[i]);
}

static int at_boundary(void *user, int done, int steps, float *x, const float *prev, size_t n)
{
    boundary *b = user;
    skip_residual(b, done, steps, x, n);
    memcpy(b->at->x, x, n * sizeof *x);
    memcpy(b->prev, prev, n * sizeof *prev);
    b->at->prev = b->prev;
    b->at->rng = *b->rng;
    b->at->step = done;
    const ts_sd_request *r = b->d->r;
    if (r->progress && r->progress(r->progress_ctx, done, steps))
        return ts_fail(TS_ERR_CANCELLED, "cancelled after step %d of %d", done, steps);
    return 0;
}

/* Samples from x to the final model-space latent x; *at (x, step, prev, rng: where
 * the run starts) is kept at each step boundary reached. */
static int sample(sd_denoiser *d, const float *sigmas, float *x, ts_run_state *at, float *prev)
{
    const ts_sd_request *r = d->r;
    ts_mt19937 step_noise = at->rng;
    boundary b = {d, sigmas, at, prev, &step_noise};
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = sd_denoise;
    cfg.denoise_user = d;
    cfg.noise = ts_torch_noise;
    cfg.noise_user = &step_noise;
    cfg.on_step = on_step;
    cfg.step_user = d;
    cfg.between = at_boundary;
    cfg.between_user = &b;
    cfg.start_step = at->step;
    cfg.start_prev = at->prev;
    int rc = ts_sample(r->sampler, &cfg, x, d->n, sigmas, r->steps);
    if (rc == 0)
        probe_latent(d, "x", r->steps, x);
    return rc;
}

int ts_sd_encode(const ts_sd_model *m, const ts_sd_request *r, const float *image, ts_arena *arena, float *latent)
{
    int rc = encode_mean(m, r, image, arena, latent);
    if (rc == 0)
        to_model_space(&m->latent, latent, (size_t)4 * (r->height / 8) * (r->width / 8));
    return rc;
}

int ts_sd_decode(const ts_sd_model *m, const ts_sd_request *r, float *latent, ts_arena *arena, float *image)
{
    int h = r->height / 8, w = r->width / 8;
    size_t n = (size_t)4 * h * w;
    probe(r, "latent", -1, latent, 4, (int64_t[]){1, 4, h, w});
    for (size_t i = 0; i < n; i++)
        latent[i] = latent[i] / m->latent.scale + m->latent.shift;
    probe(r, "latent_vae", -1, latent, 4, (int64_t[]){1, 4, h, w});
    /* The UNet's pages are not needed while decoding (they fault back in for the next
     * image): without them the decoder's large activations fit the same budget. */
    ts_weights_evict(m->main);
    ts_tensor lat = ts_tensor_view(latent, 4, (int64_t[]){1, 4, h, w}), out;
    if (r->vae_tiling)
        return ts_vae_decode_tiled_into(&m->vae, &lat, r->vae_tiling, arena, image);
    size_t mark = ts_arena_mark(arena);
    int rc = ts_vae_decode(&m->vae, &lat, arena, &out);
    /* Rather than lose the run: the exact tiled decode holds one tile's activations,
     * and smaller tiles hold less. */
    for (int tile = TS_VAE_TILE_DEFAULT; rc == TS_ERR_NOMEM && tile >= 16; tile /= 2) {
        ts_arena_reset(arena, mark);
        rc = ts_vae_decode_tiled(&m->vae, &lat, &(ts_vae_tiling){.tile = tile}, arena, &out);
    }
    if (rc == 0)
        memcpy(image, out.data, (size_t)3 * 64 * n / 4 * sizeof(float));
    ts_arena_reset(arena, mark);
    return rc;
}

/* Init latent, latent mask and extra channels for the modes that start from an image. */
static int prepare_image(sd_denoiser *d, float *init, float *mask_lat, float *image_mean)
{
    const ts_sd_request *r = d->r;
    if (r->mode == TS_SD_TXT2IMG)
        return build_extra(d, NULL);
    if (r->init_latent) {
        memcpy(init, r->init_latent, d->n * sizeof *init);
        return build_extra(d, NULL);
    }
    int rc = encode_mean(d->m, r, r->image, d->arena, image_mean);
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

/* A run to continue must be one this request can have made. */
static int check_resume(const ts_sd_request *r, const ts_run_state *from)
{
    if (!from)
        return 0;
    int sampling = !strcmp(from->phase, "sample");
    const int64_t *s = from->shape, want[4] = {1, 4, r->height / 8, r->width / 8};
    if (!sampling && strcmp(from->phase, "decode"))
        return ts_fail(TS_ERR_ARG, "cannot continue a run in phase \"%s\"", from->phase);
    if (from->pass != r->resume.pass)
        return ts_fail(TS_ERR_ARG, "the run to continue stopped in pass %d, this request is pass %d", from->pass,
                       r->resume.pass);
    if (memcmp(s, want, sizeof want))
        return ts_fail(TS_ERR_ARG, "the run to continue has a [%lld, %lld, %lld, %lld] latent, this request "
                                   "[1, 4, %d, %d]",
                       (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], r->height / 8, r->width / 8);
    if (from->steps != r->steps || (!sampling && from->step != from->steps))
        return ts_fail(TS_ERR_ARG, "the run to continue stopped at step %d of %d; this request has %d steps",
                       from->step, from->steps, r->steps);
    if (sampling && !from->has_rng)
        return ts_fail(TS_ERR_ARG, "the run to continue lacks its step-noise generator state");
    if (sampling && from->step > 0 && !from->prev)
        return ts_fail(TS_ERR_ARG, "the run to continue lacks its sampler history (prev)");
    return 0;
}

/* Where sampling starts: a fresh run at step 0 with the step-noise generator seeded
 * (ComfyUI's CPU step noise: a second generator seeded with seed + 1), or where
 * r->resume.from stopped. */
static void start_state(const sd_denoiser *d, float *x, ts_run_state *at, float *prev)
{
    const ts_sd_request *r = d->r;
    const ts_run_state *from = r->resume.from;
    float *keep = at->x;
    *at = (ts_run_state){.phase = "sample", .pass = r->resume.pass, .steps = r->steps, .shape = {1, 4, d->h, d->w},
                         .x = keep, .has_rng = 1};
    ts_mt19937_seed(&at->rng, r->seed + 1);
    if (from) {
        memcpy(x, from->x, d->n * sizeof *x);
        at->step = from->step;
        at->rng = from->rng;
    }
    if (from && from->prev) {
        memcpy(prev, from->prev, d->n * sizeof *prev);
        at->prev = prev;
    }
    memcpy(at->x, x, d->n * sizeof *x);
}

int ts_sd_sample(const ts_sd_model *m, const ts_sd_request *r, ts_arena *arena, float *x)
{
    const ts_run_state *from = r->resume.from;
    int rc = check_request(m, r);
    rc = rc ? rc : check_resume(r, from);
    if (rc)
        return rc;
    sd_denoiser d = {.m = m, .r = r, .arena = arena, .h = r->height / 8, .w = r->width / 8};
    d.n = (size_t)4 * d.h * d.w;
    d.branch_cond[0] = &r->cond;
    d.branch_cond[1] = d.branch_cond[2] = &r->uncond;
    d.branches = r->mode == TS_SD_INSTRUCT ? 3 : r->cfg != 1.0 ? 2 : 1;
    size_t n = d.n;
    float *noise = malloc(n * sizeof *noise), *init = calloc(n, sizeof *init);
    float *mask_lat = malloc(n / 4 * sizeof *mask_lat), *image_mean = malloc(n * sizeof *image_mean);
    float *sigmas = malloc((size_t)(r->steps + 1) * sizeof *sigmas);
    float *at_prev = malloc(n * sizeof *at_prev);
    ts_run_state at = {.x = malloc(n * sizeof *at.x)};
    d.x_in = malloc(n * sizeof *d.x_in);
    if (!noise || !init || !mask_lat || !image_mean || !sigmas || !at_prev || !at.x || !d.x_in)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    d.init = init;
    d.noise = noise;
    /* A run stopped after sampling needs none of the sampler's inputs. */
    int decode_only = from && !strcmp(from->phase, "decode"), began = rc == 0 && decode_only;
    if (began)
        memcpy(x, from->x, n * sizeof *x);
    if (!decode_only) {
        rc = rc ? rc : build_layers(&d);
        rc = rc ? rc : build_tiling(&d);
        rc = rc ? rc : prepare_image(&d, init, mask_lat, image_mean);
        double denoise = r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT ? r->strength : 1.0;
        rc = rc ? rc : ts_schedule_sigmas_denoise(&m->schedule, r->scheduler, r->steps, denoise, sigmas);
        rc = rc ? rc : draw_noise(r, noise, n);
    }
    if (rc == 0 && !decode_only) {
        probe(r, "sigmas", -1, sigmas, 1, (int64_t[]){r->steps + 1});
        int from_image = r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT;
        ts_pred_noise_scaling(m->prediction, sigmas[0], noise, from_image ? init : NULL,
                              ts_noise_full_denoise(&m->schedule, sigmas[0]), x, n);
        start_state(&d, x, &at, at_prev);
        began = 1;
        rc = sample(&d, sigmas, x, &at, at_prev);
    }
    if (rc && began && r->resume.on_stop)
        r->resume.on_stop(r->resume.ctx, &at);
    free(noise);
    free(init);
    free(mask_lat);
    free(image_mean);
    free(sigmas);
    free(at_prev);
    free(at.x);
    free(d.x_in);
    free(d.preds);
    free(d.wsum);
    free(d.items);
    free(d.layers);
    free(d.layer_weights);
    ts_tile_plan_free(&d.plan);
    free(d.extra);
    return rc;
}

int ts_sd_generate(const ts_sd_model *m, const ts_sd_request *r, ts_arena *arena, float *image)
{
    size_t n = (size_t)4 * (r->height / 8) * (r->width / 8);
    float *x = malloc(n * sizeof *x), *kept = malloc(n * sizeof *kept);
    int rc = x && kept ? ts_sd_sample(m, r, arena, x) : ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc == 0) {
        memcpy(kept, x, n * sizeof *x); /* the decode scales x in place */
        rc = ts_sd_decode(m, r, x, arena, image);
        if (rc && r->resume.on_stop) { /* what a failing decode leaves to finish */
            ts_run_state at = {.phase = "decode", .pass = r->resume.pass, .step = r->steps, .steps = r->steps,
                               .shape = {1, 4, r->height / 8, r->width / 8}, .x = kept};
            r->resume.on_stop(r->resume.ctx, &at);
        }
    }
    free(x);
    free(kept);
    return rc;
}
