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
#include "sample/rng.h"
#include "sample/sampler.h"
#include "sample/schedule.h"
#include "text/clip_text.h"
#include "text/t5_encoder.h"

/* The mu line of flux.sampling.get_schedule (defaults of every Flux.1 model). */
#define FLUX_BASE_SHIFT 0.5
#define FLUX_MAX_SHIFT 1.15
#define FLUX_FAMILIES (TS_FAMILY_BIT(TS_FAMILY_FLUX_SCHNELL) | TS_FAMILY_BIT(TS_FAMILY_FLUX_DEV))

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
    /* Bare names (BFL, ComfyUI-GGUF) or ComfyUI's model.diffusion_model. prefix. */
    ts_model_info info;
    int rc = ts_weights_open(files->model, &m->main);
    rc = rc ? rc : ts_family_require(m->main, FLUX_FAMILIES, &info);
    rc = rc ? rc : ts_flux_load(m->main, info.comp[TS_COMP_FLUX].prefix, m->files.flux, &m->flux);
    rc = rc ? rc : ts_weights_open(files->ae, &m->ae_file);
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
    int rc = ts_weights_open(m->files.t5, &wf);
    rc = rc ? rc : ts_t5_load(wf, NULL, &enc);
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
    int rc = ts_weights_open(m->files.clip_l, &wf);
    const char *prefix = rc ? NULL : ts_clip_text_prefix(wf, 0);
    if (rc == 0 && !prefix)
        rc = ts_fail(TS_ERR_MODEL, "%s: no CLIP text encoder", m->files.clip_l);
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

/* What the denoiser callback needs besides x. */
typedef struct {
    const ts_flux_model *m;
    const ts_flux_request *r;
    ts_arena *arena;
    ts_tensor img, img_ids, txt_ids; /* img: shape only; data is the sampler's x */
    int64_t h, w;                    /* latent size */
} flux_run;

static void probe(const ts_flux_request *r, const char *name, int step, const float *data, int ndim,
                  const int64_t *shape)
{
    if (!r->probe)
        return;
    ts_tensor t = ts_tensor_view((float *)data, ndim, shape);
    r->probe(r->probe_ctx, name, step, &t);
}

/* D(x, sigma) = x - sigma * v(x, t = sigma): the reference's x += (t_next - t) * v
 * is then exactly an Euler step. */
static int flux_denoise(void *user, const float *x, size_t n, double sigma, float *denoised)
{
    flux_run *d = user;
    float t = (float)sigma, g = (float)d->r->guidance;
    ts_tensor img = d->img;
    img.data = (float *)x;
    ts_flux_inputs in = {.img = &img, .img_ids = &d->img_ids, .txt = &d->r->cond->txt, .txt_ids = &d->txt_ids,
                         .y = &d->r->cond->vec, .timesteps = &t, .guidance = &g};
    size_t mark = ts_arena_mark(d->arena);
    ts_tensor v;
    int rc = ts_flux_forward(d->m->flux, &in, d->arena, &v);
    for (size_t i = 0; rc == 0 && i < n; i++)
        denoised[i] = (float)((double)x[i] - sigma * v.data[i]);
    ts_arena_reset(d->arena, mark);
    return rc;
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
    const ts_flux_cond *c = r->cond;
    if (!c || !c->txt.data || c->txt.ndim != 3 || c->txt.shape[0] != 1 ||
        c->txt.shape[2] != ts_flux_context_dim(m->flux))
        return ts_fail(TS_ERR_ARG, "Flux conditioning must be [1, T, %d]", ts_flux_context_dim(m->flux));
    if (!c->vec.data || c->vec.ndim != 2 || c->vec.shape[0] != 1 || c->vec.shape[1] != ts_flux_vec_dim(m->flux))
        return ts_fail(TS_ERR_ARG, "Flux needs a pooled vector of [1, %d]", ts_flux_vec_dim(m->flux));
    return 0;
}

/* Schedule, starting tokens and position ids, then the Euler loop; x ends as the
 * final packed tokens. */
static int sample(flux_run *d, const float *noise, float *x)
{
    const ts_flux_request *r = d->r;
    size_t n = (size_t)ts_tensor_numel(&d->img);
    float *sigmas = malloc((size_t)(r->steps + 1) * sizeof *sigmas);
    if (!sigmas)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    int rc = ts_schedule_flux(r->steps, d->img.shape[1], r->shift, FLUX_BASE_SHIFT, FLUX_MAX_SHIFT, sigmas);
    if (rc == 0) {
        probe(r, "sigmas", -1, sigmas, 1, (int64_t[]){r->steps + 1});
        probe(r, "img_ids", -1, d->img_ids.data, 3, d->img_ids.shape);
        probe(r, "txt_ids", -1, d->txt_ids.data, 3, d->txt_ids.shape);
        ts_flux_pack(noise, 1, d->m->vae.z_channels, d->h, d->w, x);
        ts_sampler_config cfg = ts_sampler_config_default();
        cfg.denoise = flux_denoise;
        cfg.denoise_user = d;
        cfg.on_step = on_step;
        cfg.step_user = d;
        rc = ts_sample(TS_SAMPLER_EULER, &cfg, x, n, sigmas, r->steps);
    }
    if (rc == 0) {
        probe(r, "img", r->steps, x, 3, d->img.shape);
        if (r->progress)
            rc = r->progress(r->progress_ctx, r->steps, r->steps);
    }
    free(sigmas);
    return rc;
}

/* Model-space latent -> AE input, then the decoder (the transformer's pages are
 * dropped first: they fault back in for the next image). */
static int decode(flux_run *d, float *latent, float *image)
{
    const ts_flux_model *m = d->m;
    int64_t c = m->vae.z_channels;
    size_t n = (size_t)(c * d->h * d->w);
    float *z = malloc(n * sizeof *z);
    if (!z)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        z[i] = latent[i] / m->latent.scale + m->latent.shift;
    ts_weights_evict(m->main);
    size_t mark = ts_arena_mark(d->arena);
    ts_tensor lat = ts_tensor_view(z, 4, (int64_t[]){1, c, d->h, d->w}), out;
    int rc = ts_vae_decode(&m->vae, &lat, d->arena, &out);
    if (rc == 0)
        memcpy(image, out.data, (size_t)ts_tensor_numel(&out) * sizeof(float));
    ts_arena_reset(d->arena, mark);
    free(z);
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
    flux_run d = {.m = m, .r = r, .arena = arena, .h = h, .w = w};
    d.img = ts_tensor_view(NULL, 3, (int64_t[]){1, tokens, 4 * c});
    d.img_ids = ts_tensor_view(malloc((size_t)tokens * 3 * sizeof(float)), 3, (int64_t[]){1, tokens, 3});
    d.txt_ids = ts_tensor_view(calloc((size_t)txt_len * 3, sizeof(float)), 3, (int64_t[]){1, txt_len, 3});
    size_t n = (size_t)(c * h * w);
    float *noise = malloc(n * sizeof *noise), *x = malloc(n * sizeof *x);
    float *lat = latent ? latent : malloc(n * sizeof *lat);
    if (!d.img_ids.data || !d.txt_ids.data || !noise || !x || !lat)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc == 0) {
        ts_flux_img_ids(h, w, d.img_ids.data);
        if (r->noise) {
            memcpy(noise, r->noise, n * sizeof *noise);
        } else {
            /* flux.sampling.get_noise: torch.randn([1, 16, h, w]) on a generator seeded with seed. */
            ts_mt19937 g;
            ts_mt19937_seed(&g, r->seed);
            rc = ts_torch_randn(&g, noise, n);
        }
    }
    rc = rc ? rc : sample(&d, noise, x);
    if (rc == 0) {
        ts_flux_unpack(x, 1, c, h, w, lat);
        probe(r, "latent", -1, lat, 4, (int64_t[]){1, c, h, w});
    }
    rc = rc ? rc : decode(&d, lat, image);
    if (lat != latent)
        free(lat);
    free(noise);
    free(x);
    free(d.img_ids.data);
    free(d.txt_ids.data);
    return rc;
}
