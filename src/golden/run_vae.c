/*
 * Golden runners for the VAE cases: vae_kl (SD layout with quant convs, 4 latent
 * channels) and vae_kl16 (Flux ae.safetensors layout, 16 channels, scale and shift).
 * With gc->vae_tile set, every pass goes through the tiled VAE instead.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "models/vae.h"
#include "models/vae_tiled.h"

/* Channels [from, from + count) of an NCHW tensor, as a new buffer. */
static float *channel_slice(const ts_tensor *t, int64_t from, int64_t count)
{
    int64_t plane = t->shape[2] * t->shape[3];
    float *out = malloc((size_t)(t->shape[0] * count * plane) * sizeof *out);
    if (!out)
        return NULL;
    for (int64_t b = 0; b < t->shape[0]; b++)
        memcpy(out + b * count * plane, t->data + (b * t->shape[1] + from) * plane,
               (size_t)(count * plane) * sizeof *out);
    return out;
}

static int compare_tensor(golden_case *gc, const char *name, const ts_tensor *t)
{
    return golden_compare(gc, name, t->data, t->ndim, t->shape);
}

static int compare_moments(golden_case *gc, const ts_tensor *moments, int z, int clamp_logvar)
{
    int64_t shape[4] = {moments->shape[0], z, moments->shape[2], moments->shape[3]};
    float *mean = channel_slice(moments, 0, z), *logvar = channel_slice(moments, z, z);
    if (!mean || !logvar) {
        free(mean);
        free(logvar);
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    int64_t n = shape[0] * z * shape[2] * shape[3];
    if (clamp_logvar)
        for (int64_t i = 0; i < n; i++)
            logvar[i] = fminf(fmaxf(logvar[i], -30.0f), 20.0f);
    golden_compare(gc, "out.posterior_mean", mean, 4, shape);
    golden_compare(gc, "out.posterior_logvar", logvar, 4, shape);
    free(mean);
    free(logvar);
    return 0;
}

typedef struct {
    ts_weights *model;
    ts_vae vae;
    ts_arena *arena;
    ts_tensor image, latent;
} vae_case;

static int open_vae_case(golden_case *gc, vae_case *vc)
{
    char path[4096];
    memset(vc, 0, sizeof *vc);
    int rc = ts_weights_open(golden_model_path(gc, path, sizeof path), &vc->model);
    rc = rc ? rc : ts_vae_load(vc->model, &vc->vae);
    if (rc)
        return rc;
    vc->arena = ts_arena_create((size_t)1 << 30);
    if (!vc->arena)
        return TS_ERR_NOMEM;
    vc->image.data = golden_input(gc, "in.image", &vc->image.ndim, vc->image.shape);
    vc->latent.data = golden_input(gc, "in.latent", &vc->latent.ndim, vc->latent.shape);
    return vc->image.data && vc->latent.data ? 0 : TS_ERR_FORMAT;
}

static void close_vae_case(vae_case *vc)
{
    free(vc->image.data);
    free(vc->latent.data);
    ts_arena_destroy(vc->arena);
    ts_weights_close(vc->model);
}

/* The three passes, untiled or tiled as the case asks. */
static int encoder_forward(golden_case *gc, vae_case *vc, ts_tensor *out)
{
    ts_vae_tiling t = {.tile = gc->vae_tile};
    return gc->vae_tile ? ts_vae_encoder_forward_tiled(&vc->vae, &vc->image, &t, vc->arena, out)
                        : ts_vae_encoder_forward(&vc->vae, &vc->image, vc->arena, out);
}

static int encode(golden_case *gc, vae_case *vc, ts_tensor *moments)
{
    ts_vae_tiling t = {.tile = gc->vae_tile};
    return gc->vae_tile ? ts_vae_encode_tiled(&vc->vae, &vc->image, &t, vc->arena, moments)
                        : ts_vae_encode(&vc->vae, &vc->image, vc->arena, moments);
}

static int decode(golden_case *gc, vae_case *vc, ts_tensor *image)
{
    ts_vae_tiling t = {.tile = gc->vae_tile};
    return gc->vae_tile ? ts_vae_decode_tiled(&vc->vae, &vc->latent, &t, vc->arena, image)
                        : ts_vae_decode(&vc->vae, &vc->latent, vc->arena, image);
}

/* Encoder output, moments, and the raw decode: the part both layouts share. */
static int run_common(golden_case *gc, vae_case *vc, int clamp_logvar)
{
    ts_tensor t;
    size_t mark = ts_arena_mark(vc->arena);
    int rc = encoder_forward(gc, vc, &t);
    if (!rc)
        compare_tensor(gc, "mid.encoder_out", &t);
    ts_arena_reset(vc->arena, mark);
    rc = rc ? rc : encode(gc, vc, &t);
    if (!rc)
        rc = compare_moments(gc, &t, vc->vae.z_channels, clamp_logvar);
    ts_arena_reset(vc->arena, mark);
    rc = rc ? rc : decode(gc, vc, &t);
    if (!rc)
        compare_tensor(gc, "out.decoded", &t);
    ts_arena_reset(vc->arena, mark);
    return rc;
}

int golden_run_vae_kl(golden_case *gc)
{
    vae_case vc;
    int rc = open_vae_case(gc, &vc);
    rc = rc ? rc : run_common(gc, &vc, 1);
    close_vae_case(&vc);
    return rc;
}

static double config_number(golden_case *gc, const char *key)
{
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int golden_run_vae_kl16(golden_case *gc)
{
    vae_case vc;
    int rc = open_vae_case(gc, &vc);
    rc = rc ? rc : run_common(gc, &vc, 0);
    ts_latent_format fmt = {(float)config_number(gc, "scale_factor"), (float)config_number(gc, "shift_factor")};
    if (!rc && (isnan(fmt.scale) || isnan(fmt.shift)))
        rc = ts_fail(TS_ERR_FORMAT, "case.json config lacks scale_factor / shift_factor");
    ts_tensor t;
    if (!rc)
        rc = encode(gc, &vc, &t);
    if (!rc) {
        /* Flux encodes to the mean (no sampling), then scales and shifts. */
        int64_t z = vc.vae.z_channels, shape[4] = {t.shape[0], z, t.shape[2], t.shape[3]};
        float *mean = channel_slice(&t, 0, z);
        int64_t n = shape[0] * z * shape[2] * shape[3];
        for (int64_t i = 0; mean && i < n; i++)
            mean[i] = (mean[i] - fmt.shift) * fmt.scale;
        if (mean)
            golden_compare(gc, "out.latent_scaled", mean, 4, shape);
        free(mean);
        int64_t ln = ts_tensor_numel(&vc.latent);
        for (int64_t i = 0; i < ln; i++)
            vc.latent.data[i] = vc.latent.data[i] / fmt.scale + fmt.shift;
        rc = decode(gc, &vc, &t);
        if (!rc)
            compare_tensor(gc, "out.decoded_scaled", &t);
    }
    close_vae_case(&vc);
    return rc;
}
