/*
 * Loading a Stable Diffusion model bundle (see sd.h): which file plays which role,
 * whether each is the right kind, and the facts the weights do not state outright
 * (prediction type, latent scale, native size).
 *
 * Every check happens here, before any sampling, so a wrong file costs a second and
 * says what it is rather than failing half way through a generation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pipeline/sd.h"

#define SD_FAMILIES (TS_FAMILY_BIT(TS_FAMILY_SD1) | TS_FAMILY_BIT(TS_FAMILY_SD2) | TS_FAMILY_BIT(TS_FAMILY_SDXL))

/* SD 2.x 768 checkpoints are v-prediction and nothing in their keys says so.  The
 * known tell (used by ComfyUI's detection too) is that training with v moved the
 * last transformer's first LayerNorm bias far from zero: its standard deviation is
 * above 0.09 in the v models and well below in the eps ones. */
static int sd2_looks_v(ts_weights *wf, const char *prefix)
{
    ts_weight w;
    if (ts_weights_get(wf, prefix, "output_blocks.11.1.transformer_blocks.0.norm1.bias", &w) != 0)
        return 0;
    int64_t n = ts_weight_numel(&w);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return 0;
    ts_weight_to_f32(&w, v);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++)
        sum += v[i];
    for (int64_t i = 0; i < n; i++)
        sq += (v[i] - sum / n) * (v[i] - sum / n);
    free(v);
    return sqrt(sq / n) > 0.09;
}

static ts_prediction detect_prediction(const ts_sd_model *m, const char *unet_prefix)
{
    if (m->files.prediction != TS_SD_PRED_AUTO)
        return m->files.prediction == TS_SD_PRED_V ? TS_PRED_V : TS_PRED_EPS;
    size_t len = 0;
    const char *meta = ts_weights_metadata(m->main, "modelspec.prediction_type", &len);
    if (meta)
        return len > 0 && meta[0] == 'v' ? TS_PRED_V : TS_PRED_EPS;
    /* Trainers of v-prediction SDXL finetunes mark them with an empty "v_pred" tensor. */
    if (ts_weights_find(m->main, "", "v_pred"))
        return TS_PRED_V;
    if (m->family == TS_FAMILY_SD2 && ts_unet_in_channels(m->unet) == 4 && sd2_looks_v(m->main, unet_prefix))
        return TS_PRED_V;
    return TS_PRED_EPS;
}

static int load_vae(ts_sd_model *m)
{
    ts_weights *wf = m->main;
    if (m->files.vae) {
        int rc = ts_weights_open(m->files.vae, &m->vae_file);
        if (rc)
            return rc;
        ts_model_info info;
        ts_family_detect(m->vae_file, &info);
        if (!info.comp[TS_COMP_VAE].prefix)
            return ts_fail(TS_ERR_MODEL, "%s: no VAE in this file (it is a %s checkpoint)", m->files.vae,
                           ts_family_name(info.family));
        wf = m->vae_file;
    } else {
        ts_model_info info;
        ts_family_detect(wf, &info);
        if (!info.comp[TS_COMP_VAE].prefix)
            return ts_fail(TS_ERR_MODEL, "%s: the checkpoint has no VAE; give one with --vae", m->files.model);
    }
    int rc = ts_vae_load(wf, &m->vae);
    if (rc)
        return rc;
    if (m->vae.z_channels != 4)
        return ts_fail(TS_ERR_MODEL, "%s: this VAE has %d latent channels (an SD3 or Flux VAE); %s needs 4",
                       ts_weights_path(wf), m->vae.z_channels, ts_family_name(m->family));
    return 0;
}

int ts_sd_load(const ts_sd_files *files, ts_sd_model **out)
{
    *out = NULL;
    ts_sd_model *m = calloc(1, sizeof *m);
    if (!m)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    m->files = *files;
    ts_model_info info;
    int rc = ts_weights_open(files->model, &m->main);
    rc = rc ? rc : ts_family_require(m->main, SD_FAMILIES, &info);
    if (rc == 0) {
        m->family = info.family;
        ts_unet_config cfg = files->unet;
        if (cfg.num_heads <= 0 && cfg.head_channels <= 0) {
            cfg.num_heads = m->family == TS_FAMILY_SD1 ? 8 : 0;
            cfg.head_channels = m->family == TS_FAMILY_SD1 ? 0 : 64;
        }
        rc = ts_unet_load(m->main, info.comp[TS_COMP_UNET].prefix, cfg, &m->unet);
    }
    rc = rc ? rc : load_vae(m);
    if (rc) {
        ts_sd_free(m);
        return rc;
    }
    m->prediction = detect_prediction(m, info.comp[TS_COMP_UNET].prefix);
    ts_noise_ddpm(&m->schedule, 0.00085, 0.012);
    m->latent = (ts_latent_format){m->family == TS_FAMILY_SDXL ? 0.13025f : 0.18215f, 0.0f};
    m->native_size = m->family == TS_FAMILY_SDXL ? 1024 : m->prediction == TS_PRED_V ? 768 : 512;
    m->size_multiple = 8 * ts_unet_size_multiple(m->unet);
    *out = m;
    return 0;
}

void ts_sd_free(ts_sd_model *m)
{
    if (!m)
        return;
    ts_unet_free(m->unet);
    ts_weights_close(m->vae_file);
    ts_weights_close(m->main);
    free(m);
}
