/*
 * Golden runners for the text encoders: clip_text_l (HF layout inside an SD1.x file),
 * clip_text_g (OpenCLIP bigG inside an SDXL file) and t5-encoder.
 *
 * The CLIP cases store every hidden state a family can ask for (last layer normed,
 * penultimate raw and normed, each layer's output, the pooled projection), so the
 * runner asks the encoder for each through its public options (clip_skip,
 * final_norm) rather than through a debugging side door.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/golden.h"
#include "golden/runners.h"
#include "text/clip_text.h"
#include "text/t5_encoder.h"

static const cJSON *config_item(golden_case *gc, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(gc->json, "config"), key);
}

/* An integer input tensor [B, T] as int32; shape_out gets its two dims. */
static int32_t *int_input(golden_case *gc, const char *name, int64_t shape_out[2])
{
    int ndim;
    int64_t shape[TS_ST_MAX_DIMS];
    float *f = golden_input(gc, name, &ndim, shape);
    if (!f)
        return NULL;
    if (ndim != 2) {
        free(f);
        ts_fail(TS_ERR_FORMAT, "%s: expected 2 dims, got %d", name, ndim);
        return NULL;
    }
    int32_t *ids = malloc((size_t)(shape[0] * shape[1]) * sizeof *ids);
    if (!ids)
        ts_fail(TS_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; ids && i < shape[0] * shape[1]; i++)
        ids[i] = (int32_t)f[i];
    free(f);
    shape_out[0] = shape[0];
    shape_out[1] = shape[1];
    return ids;
}

static int open_model(golden_case *gc, ts_weights **wf, ts_arena **arena)
{
    char path[4096];
    *arena = NULL;
    int rc = ts_weights_open(golden_model_path(gc, path, sizeof path), wf);
    if (rc)
        return rc;
    *arena = ts_arena_create((size_t)1 << 30);
    return *arena ? 0 : TS_ERR_NOMEM;
}

/* ---- CLIP --------------------------------------------------------------------- */

static ts_clip_act config_act(golden_case *gc)
{
    const cJSON *a = config_item(gc, "hidden_act");
    a = a ? a : config_item(gc, "act");
    if (!cJSON_IsString(a))
        return TS_CLIP_ACT_AUTO;
    if (strncmp(a->valuestring, "quick_gelu", 10) == 0)
        return TS_CLIP_ACT_QUICK_GELU;
    return strncmp(a->valuestring, "gelu", 4) == 0 ? TS_CLIP_ACT_GELU : TS_CLIP_ACT_AUTO;
}

static int config_heads(golden_case *gc)
{
    const cJSON *h = config_item(gc, "num_attention_heads");
    h = h ? h : config_item(gc, "heads");
    return cJSON_IsNumber(h) ? h->valueint : 0;
}

/* Finds the tower the way a checkpoint loader does and checks it is where case.json says. */
static int load_clip(golden_case *gc, ts_weights *wf, ts_clip_text *m)
{
    const char *found = ts_clip_text_prefix(wf, 0);
    const cJSON *want = config_item(gc, "prefix");
    if (!found)
        return ts_fail(TS_ERR_MODEL, "no CLIP text encoder found in the case's model");
    if (cJSON_IsString(want) && strcmp(found, want->valuestring) != 0)
        return ts_fail(TS_ERR_MODEL, "CLIP text encoder found under \"%s\", case.json says \"%s\"", found,
                       want->valuestring);
    ts_clip_load_opts opts = {config_heads(gc), config_act(gc)};
    return ts_clip_text_load(wf, found, &opts, m);
}

static int compare_if_stored(golden_case *gc, const char *name, const ts_tensor *t)
{
    if (!ts_st_find(gc->io, name))
        return 0;
    return golden_compare(gc, name, t->data, t->ndim, t->shape);
}

/* One hidden state chosen by (clip_skip, final_norm), plus the pooled output when `pooled_name` is set. */
static int clip_output(golden_case *gc, const ts_clip_text *m, const int32_t *ids, const int64_t shape[2],
                       ts_arena *arena, const char *name, int clip_skip, int final_norm, const char *pooled_name)
{
    ts_tensor hidden, pooled;
    size_t mark = ts_arena_mark(arena);
    ts_clip_text_opts o = {clip_skip, final_norm};
    int rc = ts_clip_text_forward(m, ids, shape[0], shape[1], &o, arena, &hidden, pooled_name ? &pooled : NULL);
    if (!rc)
        compare_if_stored(gc, name, &hidden);
    if (!rc && pooled_name)
        compare_if_stored(gc, pooled_name, &pooled);
    ts_arena_reset(arena, mark);
    return rc;
}

int golden_run_clip_text(golden_case *gc)
{
    ts_weights *wf = NULL;
    ts_arena *arena = NULL;
    ts_clip_text m;
    int64_t shape[2];
    int32_t *ids = NULL;
    int rc = open_model(gc, &wf, &arena);
    rc = rc ? rc : load_clip(gc, wf, &m);
    if (!rc && !(ids = int_input(gc, "in.input_ids", shape)))
        rc = TS_ERR_FORMAT;
    if (!rc) {
        ts_tensor emb = ts_arena_tensor(arena, 3, (int64_t[]){shape[0], shape[1], m.width});
        rc = emb.data ? ts_clip_text_embed(&m, ids, shape[0], shape[1], emb.data) : TS_ERR_NOMEM;
        if (!rc)
            compare_if_stored(gc, "mid.embeddings", &emb);
    }
    char name[32];
    for (int k = 0; k < m.layers && !rc; k++) {
        snprintf(name, sizeof name, "mid.layer%d", k);
        rc = clip_output(gc, &m, ids, shape, arena, name, m.layers - k, 0, NULL);
    }
    rc = rc ? rc : clip_output(gc, &m, ids, shape, arena, "out.last_hidden_state", 1, 1, "out.pooled");
    rc = rc ? rc : clip_output(gc, &m, ids, shape, arena, "out.penultimate", 2, 0, NULL);
    rc = rc ? rc : clip_output(gc, &m, ids, shape, arena, "out.penultimate_normed", 2, 1, NULL);
    free(ids);
    ts_arena_destroy(arena);
    ts_weights_close(wf);
    return rc;
}

/* ---- T5 ----------------------------------------------------------------------- */

static int t5_output(golden_case *gc, const ts_t5_encoder *m, const char *ids_name, const char *mask_name,
                     const char *out_name, ts_arena *arena)
{
    int64_t shape[2], mshape[2];
    int32_t *ids = int_input(gc, ids_name, shape);
    int32_t *mask = mask_name ? int_input(gc, mask_name, mshape) : NULL;
    int rc = 0;
    if (!ids || (mask_name && !mask))
        rc = TS_ERR_FORMAT;
    else if (mask && (mshape[0] != shape[0] || mshape[1] != shape[1]))
        rc = ts_fail(TS_ERR_FORMAT, "%s and %s differ in shape", ids_name, mask_name);
    ts_tensor out;
    size_t mark = ts_arena_mark(arena);
    rc = rc ? rc : ts_t5_forward(m, ids, mask, shape[0], shape[1], arena, &out);
    if (!rc)
        golden_compare(gc, out_name, out.data, out.ndim, out.shape);
    ts_arena_reset(arena, mark);
    free(ids);
    free(mask);
    return rc;
}

/* Every bucket of in.relative_position, exactly. */
static int t5_buckets(golden_case *gc, const ts_t5_encoder *m)
{
    const ts_st_tensor *rel = ts_st_find(gc->io, "in.relative_position");
    const ts_st_tensor *want = ts_st_find(gc->io, "out.relative_bucket");
    if (!rel || !want || rel->dtype != TS_DTYPE_I64 || want->dtype != TS_DTYPE_I64 || rel->ndim != 1 ||
        want->ndim != 1 || rel->shape[0] != want->shape[0])
        return ts_fail(TS_ERR_FORMAT, "in.relative_position / out.relative_bucket missing or not matching int64 [N]");
    int64_t n = rel->shape[0];
    int64_t *r = malloc((size_t)n * sizeof *r), *w = malloc((size_t)n * sizeof *w), *got = malloc((size_t)n * sizeof *got);
    int rc = r && w && got ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory");
    if (!rc) {
        memcpy(r, ts_st_data(gc->io, rel), (size_t)n * sizeof *r);
        memcpy(w, ts_st_data(gc->io, want), (size_t)n * sizeof *w);
        for (int64_t i = 0; i < n; i++)
            got[i] = ts_t5_relative_bucket(r[i], m->buckets, TS_T5_MAX_DISTANCE);
        golden_compare_ids(gc, "out.relative_bucket", got, w, n);
    }
    free(r);
    free(w);
    free(got);
    return rc;
}

int golden_run_t5_encoder(golden_case *gc)
{
    ts_weights *wf = NULL;
    ts_arena *arena = NULL;
    ts_t5_encoder m;
    int rc = open_model(gc, &wf, &arena);
    rc = rc ? rc : ts_t5_load(wf, NULL, &m);
    rc = rc ? rc : t5_buckets(gc, &m);
    rc = rc ? rc : t5_output(gc, &m, "in.input_ids", "in.attention_mask", "out.last_hidden_state", arena);
    rc = rc ? rc : t5_output(gc, &m, "in.input_ids", NULL, "out.last_hidden_state_nomask", arena);
    rc = rc ? rc : t5_output(gc, &m, "in.input_ids_long", NULL, "out.last_hidden_state_long", arena);
    ts_arena_destroy(arena);
    ts_weights_close(wf);
    return rc;
}
