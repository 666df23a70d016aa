/*
 * Flux.1 generation; see flux.h.
 *
 * The loop state is the packed token sequence [1, L, 64], not the latent image:
 * that is what the transformer reads and writes, so packing happens once before
 * sampling and unpacking once after, as in the reference.
 */
#include "pipeline/flux.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/family.h"
#include "models/vae_tiled.h"
#include "pipeline/sd.h"
#include "pipeline/tiles.h"
#include "sample/denoiser.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "sample/schedule.h"
#include "text/clip_text.h"
#include "text/clip_tokenizer.h"
#include "text/prompt.h"
#include "text/t5_encoder.h"

/* The mu line of flux.sampling.get_schedule (defaults of every Flux.1 model). */
#define FLUX_BASE_SHIFT 0.5
#define FLUX_MAX_SHIFT 1.15
#define FLUX_FAMILIES (TS_FAMILY_BIT(TS_FAMILY_FLUX_SCHNELL) | TS_FAMILY_BIT(TS_FAMILY_FLUX_DEV))

/* The prefix of component c in st, or a one-line error saying what the file is
 * instead (an SD checkpoint passed as --t5, say). */
static int find_part(const ts_weights *wf, ts_component c, const char **prefix)
{
    ts_model_info info;
    ts_family_detect(wf, &info);
    *prefix = info.comp[c].prefix;
    if (*prefix)
        return 0;
    return ts_fail(TS_ERR_MODEL, "%s: no %s in this file (detected: %s)", ts_weights_path(wf), ts_component_name(c),
                   ts_family_name(info.family));
}

int ts_flux_model_load(const ts_flux_files *files, ts_flux_model **out)
{
    *out = NULL;
    if (!files->model || !files->ae)
        return ts_fail(TS_ERR_ARG, "a Flux bundle needs the transformer and the AutoEncoder");
    ts_flux_model *m = calloc(1, sizeof *m);
    if (!m)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    m->files = *files;
    if (m->files.flux.n_axes == 0)
        m->files.flux = ts_flux_config_default();
    m->latent = (ts_latent_format){0.3611f, 0.1159f};
    const char *prefix = NULL;
    int rc = ts_weights_open(files->model, &m->main);
    rc = rc ? rc : find_part(m->main, TS_COMP_FLUX, &prefix);
    rc = rc ? rc : ts_flux_load(m->main, prefix, m->files.flux, &m->flux);
    rc = rc ? rc : ts_weights_open(files->ae, &m->ae_file);
    rc = rc ? rc : find_part(m->ae_file, TS_COMP_VAE, &prefix);
    rc = rc ? rc : ts_vae_load(m->ae_file, &m->vae);
    if (rc == 0 && m->vae.z_channels * 4 != ts_flux_in_channels(m->flux))
        rc = ts_fail(TS_ERR_MODEL, "%s: a %d-channel AutoEncoder does not fit a transformer taking %d-wide tokens",
                     files->ae, m->vae.z_channels, ts_flux_in_channels(m->flux));
    if (rc) {
        ts_flux_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void ts_flux_model_free(ts_flux_model *m)
{
    if (!m)
        return;
    ts_flux_free(m->flux);
    ts_weights_close(m->ae_file);
    ts_weights_close(m->main);
    free(m);
}

static int encode_t5(const ts_flux_model *m, const int32_t *ids, int64_t tokens, ts_arena *arena, ts_tensor *txt)
{
    ts_weights *wf = NULL;
    ts_t5_encoder enc;
    const char *prefix = NULL;
    int rc = ts_weights_open(m->files.t5, &wf);
    rc = rc ? rc : find_part(wf, TS_COMP_T5, &prefix);
    rc = rc ? rc : ts_t5_load(wf, prefix, &enc);
    if (rc == 0 && enc.d_model != ts_flux_context_dim(m->flux))
        rc = ts_fail(TS_ERR_MODEL, "%s: T5 width %d, the transformer's txt_in takes %d", m->files.t5, enc.d_model,
                     ts_flux_context_dim(m->flux));
    rc = rc ? rc : ts_t5_forward(&enc, ids, NULL, 1, tokens, arena, txt);
    ts_weights_close(wf); /* its pages leave the resident set with the mapping */
    return rc;
}

static int encode_clip(const ts_flux_model *m, const int32_t *ids, int64_t tokens, ts_arena *arena, ts_tensor *vec)
{
    ts_weights *wf = NULL;
    ts_clip_text clip;
    ts_clip_load_opts opts = {.heads = m->files.clip_heads, .act = TS_CLIP_ACT_AUTO};
    ts_clip_text_opts run = {.clip_skip = 1, .final_norm = 1};
    const char *prefix = NULL;
    int rc = ts_weights_open(m->files.clip_l, &wf);
    rc = rc ? rc : find_part(wf, TS_COMP_CLIP_L, &prefix);
    rc = rc ? rc : ts_clip_text_load(wf, prefix, &opts, &clip);
    if (rc == 0 && clip.proj_dim != ts_flux_vec_dim(m->flux))
        rc = ts_fail(TS_ERR_MODEL, "%s: pooled width %d, the transformer's vector_in takes %d", m->files.clip_l,
                     clip.proj_dim, ts_flux_vec_dim(m->flux));
    size_t mark = ts_arena_mark(arena);
    ts_tensor hidden;
    rc = rc ? rc : ts_clip_text_forward(&clip, ids, 1, tokens, &run, arena, &hidden, vec);
    if (rc == 0)
        *vec = ts_arena_keep(arena, mark, *vec);
    ts_weights_close(wf);
    return rc;
}

int ts_flux_encode_ids(const ts_flux_model *m, const int32_t *t5_ids, int64_t t5_tokens, const int32_t *clip_ids,
                       int64_t clip_tokens, ts_arena *arena, ts_flux_cond *cond)
{
    memset(cond, 0, sizeof *cond);
    if (!m->files.t5 || !m->files.clip_l)
        return ts_fail(TS_ERR_ARG, "Flux conditioning needs both the T5 and the CLIP-L file");
    int rc = encode_t5(m, t5_ids, t5_tokens, arena, &cond->txt);
    return rc ? rc : encode_clip(m, clip_ids, clip_tokens, arena, &cond->vec);
}

int ts_flux_t5_length(const ts_flux_model *m)
{
    return ts_flux_has_guidance(m->flux) ? 512 : 256;
}

int ts_flux_tokenize(const ts_flux_model *m, const ts_t5_tokenizer *t5, const char *prompt, int32_t *t5_row,
                     int32_t *clip_row, int *truncated)
{
    const ts_clip_tokenizer *clip = ts_clip_tokenizer_default();
    if (!t5)
        t5 = ts_t5_tokenizer_default();
    if (!clip || !t5)
        return TS_ERR_FORMAT; /* the error is set */
    char *text = NULL;
    int cut_t5 = 0, cut_clip = 0, rc = ts_prompt_strip(prompt, &text);
    rc = rc ? rc : ts_t5_tokenize(t5, text, t5_row, ts_flux_t5_length(m), &cut_t5);
    /* CLIPTokenizer(padding="max_length") pads with its pad token, which for
     * openai/clip-vit-large-patch14 is the EOS id. */
    rc = rc ? rc : ts_clip_tokenize(clip, text, 49407, clip_row, TS_FLUX_CLIP_TOKENS, &cut_clip);
    free(text);
    if (truncated)
        *truncated = cut_t5 || cut_clip;
    return rc;
}

int ts_flux_encode_prompt(const ts_flux_model *m, const ts_t5_tokenizer *t5, const char *prompt, ts_arena *arena,
                          ts_flux_cond *cond, int *truncated)
{
    int t5_len = ts_flux_t5_length(m);
    int32_t *t5_row = malloc((size_t)t5_len * sizeof *t5_row), clip_row[TS_FLUX_CLIP_TOKENS];
    int rc = t5_row ? ts_flux_tokenize(m, t5, prompt, t5_row, clip_row, truncated)
                    : ts_fail(TS_ERR_NOMEM, "out of memory");
    rc = rc ? rc : ts_flux_encode_ids(m, t5_row, t5_len, clip_row, TS_FLUX_CLIP_TOKENS, arena, cond);
    free(t5_row);
    return rc;
}

/* What the denoiser callback needs besides x. */
typedef struct {
    const ts_flux_model *m;
    const ts_flux_request *r;
    ts_arena *arena;
    ts_tensor img, img_ids, txt_ids; /* img: shape only; data is the sampler's x */
    int64_t h, w;                    /* latent size */
    size_t n;                        /* 16 * h * w */
    float *noise, *init, *mask;      /* packed [n]; init and mask NULL for txt2img / img2img */
    ts_tile_plan plan;               /* one tile of the whole latent when untiled */
    int tile_batch;
    float *canvas, *acc, *wsum;      /* unpacked x, blended v [n]; weights [h * w] */
    double sigma;                    /* of the model call under way */
} flux_run;

static void probe(const ts_flux_request *r, const char *name, int step, const float *data, int ndim,
                  const int64_t *shape)
{
    if (!r->probe)
        return;
    ts_tensor t = ts_tensor_view((float *)data, ndim, shape);
    r->probe(r->probe_ctx, name, step, &t);
}

/* The transformer's velocity for `count` tiles from tile `first`: each tile of the
 * unpacked canvas is packed into its own tokens, with position ids in full-canvas
 * coordinates (RoPE then sees where the tile lies), and its output is unpacked and
 * blended into d->acc. */
static int run_tiles(void *user, int first, int count)
{
    flux_run *d = user;
    double sigma = d->sigma;
    const ts_tile_plan *p = &d->plan;
    const ts_flux_request *r = d->r;
    int64_t c = d->m->vae.z_channels, tokens = (p->th / 2) * (p->tw / 2);
    int64_t lt = r->cond->txt.shape[1], dt = r->cond->txt.shape[2], dv = r->cond->vec.shape[1];
    size_t tile_n = (size_t)c * p->th * p->tw, mark = ts_arena_mark(d->arena);
    ts_tensor img = ts_arena_tensor(d->arena, 3, (int64_t[]){count, tokens, 4 * c});
    ts_tensor ids = ts_arena_tensor(d->arena, 3, (int64_t[]){count, tokens, 3});
    ts_tensor txt = ts_arena_tensor(d->arena, 3, (int64_t[]){count, lt, dt});
    ts_tensor txt_ids = ts_arena_tensor(d->arena, 3, (int64_t[]){count, lt, 3});
    ts_tensor vec = ts_arena_tensor(d->arena, 2, (int64_t[]){count, dv});
    float *t = ts_arena_alloc(d->arena, 2 * (size_t)count * sizeof *t), *g = t + count;
    float *tile = ts_arena_alloc(d->arena, tile_n * sizeof *tile);
    if (!img.data || !ids.data || !txt.data || !txt_ids.data || !vec.data || !t || !tile) {
        ts_arena_reset(d->arena, mark);
        return ts_fail(TS_ERR_NOMEM, "out of memory for a batch of %d tiles", count);
    }
    memset(txt_ids.data, 0, (size_t)count * lt * 3 * sizeof(float));
    for (int k = 0; k < count; k++) {
        const ts_tile *o = &p->tiles[first + k];
        ts_tile_crop(p, first + k, d->canvas, (int)c, tile);
        ts_flux_pack(tile, 1, c, p->th, p->tw, img.data + (size_t)k * tile_n);
        float *id = ids.data + (size_t)k * tokens * 3;
        ts_flux_img_ids(p->th, p->tw, id);
        for (int64_t i = 0; i < tokens; i++) {
            id[i * 3 + 1] += (float)(o->y / 2);
            id[i * 3 + 2] += (float)(o->x / 2);
        }
        memcpy(txt.data + (size_t)k * lt * dt, r->cond->txt.data, (size_t)(lt * dt) * sizeof(float));
        memcpy(vec.data + (size_t)k * dv, r->cond->vec.data, (size_t)dv * sizeof(float));
        t[k] = (float)sigma;
        g[k] = (float)r->guidance;
    }
    ts_flux_inputs in = {.img = &img, .img_ids = &ids, .txt = &txt, .txt_ids = &txt_ids, .y = &vec,
                         .timesteps = t, .guidance = g};
    ts_tensor v;
    int rc = ts_flux_forward(d->m->flux, &in, d->arena, &v);
    for (int k = 0; rc == 0 && k < count; k++) {
        ts_flux_unpack(v.data + (size_t)k * tile_n, 1, c, p->th, p->tw, tile);
        ts_tile_accumulate(p, first + k, tile, (int)c, NULL, d->acc, d->wsum);
    }
    ts_arena_reset(d->arena, mark);
    return rc;
}

/* D(x, sigma) = x - sigma * v(x, t = sigma): the reference's x += (t_next - t) * v
 * is then exactly an Euler step.  v is blended from the tiles (tiles.h). */
static int flux_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    flux_run *d = user;
    int64_t c = d->m->vae.z_channels;
    size_t plane = (size_t)d->h * d->w;
    ts_flux_unpack(x, 1, c, d->h, d->w, d->canvas);
    memset(d->acc, 0, n * sizeof *d->acc);
    memset(d->wsum, 0, plane * sizeof *d->wsum);
    d->sigma = sigma;
    int rc = ts_tile_each_batch(&d->plan, d->tile_batch, d->arena, run_tiles, d);
    if (rc)
        return rc;
    ts_tile_normalize(d->acc, d->wsum, (int)c, plane);
    ts_flux_pack(d->acc, 1, c, d->h, d->w, denoised);
    for (size_t i = 0; i < n; i++)
        denoised[i] = (float)((double)x[i] - sigma * denoised[i]);
    return 0;
}

static int on_step(void *user, int i, int steps, double sigma, const float *x, const float *denoised)
{
    (void)sigma, (void)denoised;
    flux_run *d = user;
    probe(d->r, "img", i, x, 3, d->img.shape);
    return d->r->progress && i > 0 ? d->r->progress(d->r->progress_ctx, i, steps) : 0;
}

static int check_request(const ts_flux_model *m, const ts_flux_request *r)
{
    if (r->width <= 0 || r->height <= 0 || r->width % 16 || r->height % 16)
        return ts_fail(TS_ERR_ARG, "size %dx%d: width and height must be positive multiples of 16 for Flux",
                       r->width, r->height);
    if (r->steps < 1 || r->steps > 10000)
        return ts_fail(TS_ERR_ARG, "steps must be between 1 and 10000");
    if (r->mask && !r->image)
        return ts_fail(TS_ERR_ARG, "inpainting needs the image besides the mask");
    if (r->image && !(r->strength > 0 && r->strength <= 1))
        return ts_fail(TS_ERR_ARG, "strength %g is outside (0, 1]", r->strength);
    if (r->image && !m->vae.has_encoder)
        return ts_fail(TS_ERR_MODEL, "%s: the AutoEncoder has no encoder; img2img and inpainting need one",
                       m->files.ae);
    const ts_flux_cond *c = r->cond;
    if (!c || !c->txt.data || c->txt.ndim != 3 || c->txt.shape[0] != 1 ||
        c->txt.shape[2] != ts_flux_context_dim(m->flux))
        return ts_fail(TS_ERR_ARG, "Flux conditioning must be [1, T, %d]", ts_flux_context_dim(m->flux));
    if (!c->vec.data || c->vec.ndim != 2 || c->vec.shape[0] != 1 || c->vec.shape[1] != ts_flux_vec_dim(m->flux))
        return ts_fail(TS_ERR_ARG, "Flux needs a pooled vector of [1, %d]", ts_flux_vec_dim(m->flux));
    return 0;
}

/* The request's steps+1 sigmas: the whole schedule, or from an image at strength d
 * the tail of the int(steps / d)-step one (see flux.h). */
static int schedule(const flux_run *d, float *sigmas)
{
    const ts_flux_request *r = d->r;
    double total = r->image && r->strength <= 0.9999 ? r->steps / r->strength : r->steps;
    if (total > 10000)
        return ts_fail(TS_ERR_ARG, "%d steps at strength %g need %g steps in all (at most 10000)", r->steps,
                       r->strength, total);
    int all = (int)total;
    float *full = malloc((size_t)(all + 1) * sizeof *full);
    if (!full)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    int rc = ts_schedule_flux(all, d->img.shape[1], r->shift, FLUX_BASE_SHIFT, FLUX_MAX_SHIFT, full);
    if (rc == 0)
        memcpy(sigmas, full + (all - r->steps), (size_t)(r->steps + 1) * sizeof *sigmas);
    free(full);
    return rc;
}

/* The Euler loop from the starting tokens; x ends as the final packed tokens. */
static int sample(flux_run *d, const float *sigmas, float *x)
{
    const ts_flux_request *r = d->r;
    ts_inpaint_denoiser inpaint = {.inner = flux_denoise, .inner_user = d, .prediction = TS_PRED_FLOW,
                                   .mask = d->mask, .latent = d->init, .noise = d->noise};
    probe(r, "sigmas", -1, sigmas, 1, (int64_t[]){r->steps + 1});
    probe(r, "img_ids", -1, d->img_ids.data, 3, d->img_ids.shape);
    probe(r, "txt_ids", -1, d->txt_ids.data, 3, d->txt_ids.shape);
    ts_pred_noise_scaling(TS_PRED_FLOW, sigmas[0], d->noise, d->init, 0, x, d->n);
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = d->mask ? ts_inpaint_denoise : flux_denoise;
    cfg.denoise_user = d->mask ? (void *)&inpaint : (void *)d;
    cfg.on_step = on_step;
    cfg.step_user = d;
    int rc = ts_sample(TS_SAMPLER_EULER, &cfg, x, d->n, sigmas, r->steps);
    if (rc == 0) {
        probe(r, "img", r->steps, x, 3, d->img.shape);
        if (r->progress)
            rc = r->progress(r->progress_ctx, r->steps, r->steps);
    }
    return rc;
}

/* The image's AutoEncoder mean in model space, packed into d->init; with a mask, the
 * mask downsampled to the latent, repeated over the channels and packed into d->mask.
 * tmp: [n] scratch. */
static int prepare_image(flux_run *d, float *tmp)
{
    const ts_flux_model *m = d->m;
    const ts_flux_request *r = d->r;
    int64_t c = m->vae.z_channels, plane = d->h * d->w;
    size_t mark = ts_arena_mark(d->arena);
    ts_tensor in = ts_tensor_view((float *)r->image, 4, (int64_t[]){1, 3, r->height, r->width}), moments;
    int rc = r->vae_tiling ? ts_vae_encode_tiled(&m->vae, &in, r->vae_tiling, d->arena, &moments)
                           : ts_vae_encode(&m->vae, &in, d->arena, &moments);
    for (size_t i = 0; rc == 0 && i < d->n; i++)
        tmp[i] = (moments.data[i] - m->latent.shift) * m->latent.scale;
    ts_arena_reset(d->arena, mark);
    if (rc)
        return rc;
    probe(r, "init_latent", -1, tmp, 4, (int64_t[]){1, c, d->h, d->w});
    ts_flux_pack(tmp, 1, c, d->h, d->w, d->init);
    if (!d->mask)
        return 0;
    ts_resize_bilinear(r->mask, r->height, r->width, tmp, (int)d->h, (int)d->w);
    for (int64_t ch = 1; ch < c; ch++)
        memcpy(tmp + ch * plane, tmp, (size_t)plane * sizeof *tmp);
    ts_flux_pack(tmp, 1, c, d->h, d->w, d->mask);
    return 0;
}

/* Model-space latent -> AE input, then the decoder (the transformer's pages are
 * dropped first: they fault back in for the next image). */
static int decode(flux_run *d, float *latent, float *image)
{
    const ts_flux_model *m = d->m;
    float *z = malloc(d->n * sizeof *z);
    if (!z)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n; i++)
        z[i] = latent[i] / m->latent.scale + m->latent.shift;
    ts_weights_evict(m->main);
    size_t mark = ts_arena_mark(d->arena);
    ts_tensor lat = ts_tensor_view(z, 4, (int64_t[]){1, m->vae.z_channels, d->h, d->w}), out;
    int rc = d->r->vae_tiling ? ts_vae_decode_tiled_into(&m->vae, &lat, d->r->vae_tiling, d->arena, image)
                              : ts_vae_decode(&m->vae, &lat, d->arena, &out);
    if (rc == 0 && !d->r->vae_tiling)
        memcpy(image, out.data, (size_t)ts_tensor_numel(&out) * sizeof(float));
    ts_arena_reset(d->arena, mark);
    free(z);
    return rc;
}

/* flux.sampling.get_noise: torch.randn([1, 16, h, w]) on a generator seeded with
 * seed, packed into d->noise.  tmp: [n] scratch. */
static int draw_noise(flux_run *d, float *tmp)
{
    const ts_flux_request *r = d->r;
    int rc = 0;
    if (r->noise) {
        memcpy(tmp, r->noise, d->n * sizeof *tmp);
    } else {
        ts_mt19937 g;
        ts_mt19937_seed(&g, r->seed);
        rc = ts_torch_randn(&g, tmp, d->n);
    }
    if (rc == 0)
        ts_flux_pack(tmp, 1, d->m->vae.z_channels, d->h, d->w, d->noise);
    return rc;
}

int ts_flux_generate(const ts_flux_model *m, const ts_flux_request *r, ts_arena *arena, float *latent,
                     float *image)
{
    int rc = check_request(m, r);
    if (rc)
        return rc;
    int64_t c = m->vae.z_channels, h = r->height / 8, w = r->width / 8, tokens = (h / 2) * (w / 2);
    int64_t txt_len = r->cond->txt.shape[1];
    flux_run d = {.m = m, .r = r, .arena = arena, .h = h, .w = w, .n = (size_t)(c * h * w)};
    size_t n = d.n;
    d.img = ts_tensor_view(NULL, 3, (int64_t[]){1, tokens, 4 * c});
    d.img_ids = ts_tensor_view(malloc((size_t)tokens * 3 * sizeof(float)), 3, (int64_t[]){1, tokens, 3});
    d.txt_ids = ts_tensor_view(calloc((size_t)txt_len * 3, sizeof(float)), 3, (int64_t[]){1, txt_len, 3});
    d.noise = malloc(n * sizeof *d.noise);
    d.init = r->image ? malloc(n * sizeof *d.init) : NULL;
    d.mask = r->mask ? malloc(n * sizeof *d.mask) : NULL;
    float *x = malloc(n * sizeof *x), *lat = latent ? latent : malloc(n * sizeof *lat);
    float *sigmas = malloc((size_t)(r->steps + 1) * sizeof *sigmas);
    if (!d.img_ids.data || !d.txt_ids.data || !d.noise || (r->image && !d.init) || (r->mask && !d.mask) || !x ||
        !lat || !sigmas)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    ts_tile_config tc = r->tiling;
    if (tc.size <= 0) /* one tile of the whole latent: the untiled pass */
        tc = (ts_tile_config){(int)(h > w ? h : w), 0, 1, TS_TILE_BLEND_UNIFORM};
    rc = rc ? rc : ts_tile_plan_init(&d.plan, (int)h, (int)w, &tc, 2);
    d.tile_batch = tc.batch;
    d.canvas = malloc(n * sizeof *d.canvas);
    d.acc = malloc(n * sizeof *d.acc);
    d.wsum = malloc((size_t)(h * w) * sizeof *d.wsum);
    if (rc == 0 && (!d.canvas || !d.acc || !d.wsum))
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc == 0)
        ts_flux_img_ids(h, w, d.img_ids.data);
    rc = rc ? rc : draw_noise(&d, lat);
    rc = rc || !r->image ? rc : prepare_image(&d, lat);
    rc = rc ? rc : schedule(&d, sigmas);
    rc = rc ? rc : sample(&d, sigmas, x);
    if (rc == 0) {
        ts_flux_unpack(x, 1, c, h, w, lat);
        probe(r, "latent", -1, lat, 4, (int64_t[]){1, c, h, w});
    }
    rc = rc ? rc : decode(&d, lat, image);
    if (lat != latent)
        free(lat);
    free(x);
    free(sigmas);
    free(d.noise);
    free(d.init);
    free(d.mask);
    free(d.img_ids.data);
    free(d.txt_ids.data);
    free(d.canvas);
    free(d.acc);
    free(d.wsum);
    ts_tile_plan_free(&d.plan);
    return rc;
}
