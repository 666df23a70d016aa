/*
 * Golden runners for the Stable Diffusion UNet cases (sd1-unet, sd1-unet-inpaint,
 * sdxl-unet) and SDXL's vector conditioning (sdxl-vector-conditioning).
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "models/family.h"
#include "models/unet.h"

#define UNET_FAMILIES (TS_FAMILY_BIT(TS_FAMILY_SD1) | TS_FAMILY_BIT(TS_FAMILY_SD2) | TS_FAMILY_BIT(TS_FAMILY_SDXL))

static int config_int(golden_case *gc, const char *key, int fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(gc->json, "config"), key);
    return cJSON_IsNumber(v) ? v->valueint : fallback;
}

int golden_run_unet(golden_case *gc)
{
    char path[4096];
    ts_weights *wf = NULL;
    ts_unet *unet = NULL;
    ts_arena *arena = NULL;
    ts_tensor x = {0}, context = {0}, y = {0};
    float *timesteps = NULL;
    /* SD1 fixes the head count; SD2 and SDXL the head width (num_head_channels). */
    int head_channels = config_int(gc, "num_head_channels", -1);
    ts_unet_config cfg = {.num_heads = head_channels > 0 ? 0 : config_int(gc, "num_heads", 0),
                          .head_channels = head_channels > 0 ? head_channels : 0};
    ts_model_info info;
    int rc = ts_weights_open(golden_model_path(gc, path, sizeof path), &wf);
    /* The prefix as detected: a UNet-only file (ComfyUI-GGUF's) has bare names. */
    rc = rc ? rc : ts_family_require(wf, UNET_FAMILIES, &info);
    rc = rc ? rc : ts_unet_load(wf, info.comp[TS_COMP_UNET].prefix, cfg, &unet);
    if (!rc) {
        arena = ts_arena_create((size_t)1 << 30);
        x.data = golden_input(gc, "in.x", &x.ndim, x.shape);
        context.data = golden_input(gc, "in.context", &context.ndim, context.shape);
        timesteps = golden_input(gc, "in.timesteps", NULL, NULL);
        if (ts_unet_adm_channels(unet))
            y.data = golden_input(gc, "in.y", &y.ndim, y.shape);
        if (!arena || !x.data || !context.data || !timesteps || (ts_unet_adm_channels(unet) && !y.data))
            rc = TS_ERR_FORMAT;
    }
    if (!rc) {
        ts_unet_inputs in = {.x = &x, .timesteps = timesteps, .context = &context, .y = y.data ? &y : NULL,
                             .probe = golden_compare_probe, .probe_ctx = gc};
        ts_tensor eps;
        rc = ts_unet_forward(unet, &in, arena, &eps);
        if (!rc)
            golden_compare(gc, "out.eps", eps.data, eps.ndim, eps.shape);
    }
    free(x.data);
    free(context.data);
    free(timesteps);
    free(y.data);
    ts_arena_destroy(arena);
    ts_unet_free(unet);
    ts_weights_close(wf);
    return rc;
}

int golden_run_sdxl_vector(golden_case *gc)
{
    int64_t pooled_shape[2];
    float *pooled = golden_input(gc, "in.pooled", NULL, pooled_shape);
    static const char *pairs[3] = {"in.original_size_as_tuple", "in.crop_coords_top_left", "in.target_size_as_tuple"};
    float *values[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        values[i] = golden_input(gc, pairs[i], NULL, NULL);
    int rc = pooled && values[0] && values[1] && values[2] ? 0 : TS_ERR_FORMAT;
    int64_t batch = pooled_shape[0], pooled_dim = pooled_shape[1];
    int64_t *sizes = rc ? NULL : malloc((size_t)(batch * 6) * sizeof *sizes);
    float *y = rc ? NULL : malloc((size_t)(batch * (pooled_dim + 6 * TS_SDXL_SIZE_EMBED)) * sizeof *y);
    if (!rc && (!sizes || !y))
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    if (!rc) {
        for (int64_t b = 0; b < batch; b++)
            for (int i = 0; i < 3; i++) {
                sizes[b * 6 + 2 * i] = (int64_t)values[i][b * 2];
                sizes[b * 6 + 2 * i + 1] = (int64_t)values[i][b * 2 + 1];
            }
        ts_sdxl_vector(pooled, batch, (int)pooled_dim, sizes, y);
        golden_compare(gc, "out.vector", y, 2, (int64_t[]){batch, pooled_dim + 6 * TS_SDXL_SIZE_EMBED});
    }
    free(sizes);
    free(y);
    free(pooled);
    for (int i = 0; i < 3; i++)
        free(values[i]);
    return rc;
}
