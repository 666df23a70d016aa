/*
 * Golden runner for the SD3 / SD3.5 MMDiT forward cases (family "sd3-mmdit",
 * mmdit_sd3 and mmdit_sd35).  The family's sampling case (sd3_sampling) stores
 * in.noise instead of in.x and is reported as not implemented yet.
 */
#include <stdlib.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "models/mmdit.h"

int golden_run_mmdit(golden_case *gc)
{
    if (!ts_st_find(gc->io, "in.x"))
        return ts_fail(TS_ERR_UNSUPPORTED, "%s: the SD3 sampling case is not implemented yet", gc->dir);
    char path[4096];
    ts_safetensors *st = NULL;
    ts_mmdit *m = NULL;
    ts_arena *arena = NULL;
    ts_tensor x = {0}, context = {0}, y = {0};
    float *t = NULL;
    int rc = ts_st_open(golden_path(gc, "model.safetensors", path, sizeof path), &st);
    rc = rc ? rc : ts_mmdit_load(st, "model.diffusion_model.", &m);
    if (!rc) {
        arena = ts_arena_create((size_t)1 << 30);
        x.data = golden_input(gc, "in.x", &x.ndim, x.shape);
        context.data = golden_input(gc, "in.context", &context.ndim, context.shape);
        y.data = golden_input(gc, "in.y", &y.ndim, y.shape);
        t = golden_input(gc, "in.t", NULL, NULL);
        if (!arena || !x.data || !context.data || !y.data || !t)
            rc = TS_ERR_FORMAT;
    }
    if (!rc) {
        ts_mmdit_inputs in = {.x = &x, .timesteps = t, .context = &context, .y = &y,
                              .probe = golden_compare_probe, .probe_ctx = gc};
        ts_tensor out;
        rc = ts_mmdit_forward(m, &in, arena, &out);
        if (!rc)
            golden_compare(gc, "out.x", out.data, out.ndim, out.shape);
    }
    free(x.data);
    free(context.data);
    free(y.data);
    free(t);
    ts_arena_destroy(arena);
    ts_mmdit_free(m);
    ts_st_close(st);
    return rc;
}
