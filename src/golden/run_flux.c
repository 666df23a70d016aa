/*
 * Golden runner for the Flux.1 transformer cases (family "flux": flux_schnell,
 * flux_dev): packing, one forward pass, unpacking.
 *
 * The cases give tolerances for out.* only, so the mid.* tensors the model reports
 * are printed as diagnostics (max_abs against the stored value, not counted): they
 * show where a mismatch starts without inventing a tolerance the case does not set.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "models/flux.h"

static void report_probe(void *ctx, const char *name, const ts_tensor *t)
{
    golden_case *gc = ctx;
    const ts_st_tensor *want_t = ts_st_find(gc->io, name);
    int64_t n = ts_tensor_numel(t);
    if (!want_t || (int64_t)ts_st_numel(want_t) != n)
        return;
    float *want = golden_input(gc, name, NULL, NULL);
    if (!want)
        return;
    double max_abs = 0;
    for (int64_t i = 0; i < n; i++)
        max_abs = fmax(max_abs, fabs((double)t->data[i] - want[i]));
    printf("  %-40s max_abs=%.3g  (diagnostic, no tolerance in case)\n", name, max_abs);
    free(want);
}

/* config.axes_dim and config.theta of the case (Flux.1 defaults otherwise). */
static ts_flux_config case_config(golden_case *gc)
{
    ts_flux_config cfg = ts_flux_config_default();
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(config, "model");
    if (model)
        config = model;
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(config, "axes_dim");
    const cJSON *theta = cJSON_GetObjectItemCaseSensitive(config, "theta");
    if (cJSON_IsArray(axes) && cJSON_GetArraySize(axes) <= TS_FLUX_MAX_AXES) {
        cfg.n_axes = cJSON_GetArraySize(axes);
        for (int a = 0; a < cfg.n_axes; a++)
            cfg.axes_dim[a] = cJSON_GetArrayItem(axes, a)->valueint;
    }
    if (cJSON_IsNumber(theta))
        cfg.theta = theta->valuedouble;
    return cfg;
}

int golden_run_flux(golden_case *gc)
{
    char path[4096];
    ts_safetensors *st = NULL;
    ts_flux *flux = NULL;
    ts_arena *arena = NULL;
    ts_tensor latent = {0}, img = {0}, img_ids = {0}, txt = {0}, txt_ids = {0}, y = {0};
    float *timesteps = NULL, *guidance = NULL, *packed = NULL, *unpacked = NULL;
    int rc = ts_st_open(golden_path(gc, "model.safetensors", path, sizeof path), &st);
    rc = rc ? rc : ts_flux_load(st, "", case_config(gc), &flux);
    if (!rc) {
        arena = ts_arena_create((size_t)1 << 30);
        latent.data = golden_input(gc, "in.latent", &latent.ndim, latent.shape);
        img.data = golden_input(gc, "in.img", &img.ndim, img.shape);
        img_ids.data = golden_input(gc, "in.img_ids", &img_ids.ndim, img_ids.shape);
        txt.data = golden_input(gc, "in.txt", &txt.ndim, txt.shape);
        txt_ids.data = golden_input(gc, "in.txt_ids", &txt_ids.ndim, txt_ids.shape);
        y.data = golden_input(gc, "in.y", &y.ndim, y.shape);
        timesteps = golden_input(gc, "in.timesteps", NULL, NULL);
        if (ts_flux_has_guidance(flux))
            guidance = golden_input(gc, "in.guidance", NULL, NULL);
        if (!arena || !latent.data || latent.ndim != 4 || !img.data || !img_ids.data || !txt.data ||
            !txt_ids.data || !y.data || !timesteps || (ts_flux_has_guidance(flux) && !guidance))
            rc = rc ? rc : ts_fail(TS_ERR_FORMAT, "flux case lacks an input");
    }
    int64_t n = rc ? 0 : ts_tensor_numel(&latent);
    if (!rc && (!(packed = malloc((size_t)n * sizeof(float))) || !(unpacked = malloc((size_t)n * sizeof(float)))))
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    const int64_t *ls = latent.shape;
    if (!rc) {
        ts_flux_pack(latent.data, ls[0], ls[1], ls[2], ls[3], packed);
        golden_compare(gc, "out.packed", packed, 3, (int64_t[]){ls[0], ls[2] / 2 * (ls[3] / 2), ls[1] * 4});
        ts_flux_inputs in = {.img = &img, .img_ids = &img_ids, .txt = &txt, .txt_ids = &txt_ids, .y = &y,
                             .timesteps = timesteps, .guidance = guidance, .probe = report_probe,
                             .probe_ctx = gc};
        ts_tensor pred;
        rc = ts_flux_forward(flux, &in, arena, &pred);
        if (!rc) {
            golden_compare(gc, "out.pred", pred.data, pred.ndim, pred.shape);
            ts_flux_unpack(pred.data, ls[0], ls[1], ls[2], ls[3], unpacked);
            golden_compare(gc, "out.pred_unpacked", unpacked, 4, ls);
        }
    }
    float *inputs[] = {latent.data, img.data, img_ids.data, txt.data, txt_ids.data, y.data,
                       timesteps, guidance, packed, unpacked};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++)
        free(inputs[i]);
    ts_arena_destroy(arena);
    ts_flux_free(flux);
    ts_st_close(st);
    return rc;
}
