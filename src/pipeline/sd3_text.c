/*
 * Prompts to SD3 conditioning (the layout is in sd3.h).
 *
 * The CLIP half is the SDXL machinery of pipeline/conditioning.c (two towers, A1111
 * chunks and emphasis, empty-chunk padding between prompt and negative prompt) with
 * SD3's pooled vector; T5 runs once on both prompts as a batch of two.  Every file
 * is mapped for the encoding only and closed before returning, so none of the text
 * encoders' pages stay resident while the MMDiT samples.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "pipeline/sd3.h"
#include "pipeline/sd_text.h"
#include "text/prompt.h"
#include "text/t5_encoder.h"
#include "text/t5_tokenizer.h"

#define T5_MIN_TOKENS 77 /* the reference pads T5's ids to at least this many */

/* Both prompts' T5 ids, EOS-terminated and 0-padded to one length >= 77. */
static int t5_ids(const char *const prompts[2], int32_t **ids, int *len)
{
    const ts_t5_tokenizer *tok = ts_t5_tokenizer_default();
    if (!tok)
        return TS_ERR_FORMAT;
    int32_t *row[2] = {NULL, NULL};
    int n[2] = {0, 0}, rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        char *text = NULL;
        rc = ts_prompt_strip(prompts[i], &text);
        rc = rc ? rc : ts_t5_encode(tok, text, &row[i], &n[i]);
        free(text);
    }
    *len = n[0] > n[1] ? n[0] : n[1];
    if (*len < T5_MIN_TOKENS)
        *len = T5_MIN_TOKENS;
    *ids = rc ? NULL : calloc((size_t)2 * *len, sizeof **ids);
    if (rc == 0 && !*ids)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < 2; i++)
        memcpy(*ids + (size_t)i * *len, row[i], (size_t)n[i] * sizeof **ids);
    free(row[0]);
    free(row[1]);
    return rc;
}

/* T5's hidden states for both prompts [2, len, D] into *out (malloc'd); *out NULL
 * and *len 0 when the bundle has no T5. */
static int encode_t5(const ts_sd3_model *m, const char *const prompts[2], float **out, int *len)
{
    *out = NULL;
    *len = 0;
    ts_model_info info;
    ts_family_detect(m->main, &info);
    if (!m->files.t5 && !info.comp[TS_COMP_T5].prefix)
        return 0;
    ts_weights *wf = NULL;
    ts_t5_encoder enc;
    int32_t *ids = NULL;
    ts_arena *arena = NULL;
    int rc = ts_weights_open(m->files.t5 ? m->files.t5 : m->files.model, &wf);
    rc = rc ? rc : ts_t5_load(wf, NULL, &enc);
    if (rc == 0 && enc.d_model != ts_mmdit_context_dim(m->mmdit))
        rc = ts_fail(TS_ERR_MODEL, "%s: T5 width %d, the MMDiT's context_embedder takes %d", ts_weights_path(wf),
                     enc.d_model, ts_mmdit_context_dim(m->mmdit));
    rc = rc ? rc : t5_ids(prompts, &ids, len);
    if (rc == 0 && !(arena = ts_arena_create((size_t)16 << 30)))
        rc = TS_ERR_NOMEM;
    ts_tensor hidden;
    rc = rc ? rc : ts_t5_forward(&enc, ids, NULL, 2, *len, arena, &hidden);
    size_t bytes = rc ? 0 : (size_t)ts_tensor_numel(&hidden) * sizeof(float);
    if (rc == 0 && !(*out = malloc(bytes)))
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc == 0)
        memcpy(*out, hidden.data, bytes);
    ts_arena_destroy(arena);
    free(ids);
    ts_weights_close(wf); /* its pages leave the resident set with the mapping */
    return rc;
}

/* The CLIP features must fit the MMDiT's context width and their pooled outputs its
 * y_embedder. */
static int mmdit_fits(const ts_text_encoders *enc, const void *model)
{
    const ts_sd3_model *m = model;
    int dim = ts_mmdit_context_dim(m->mmdit), adm = ts_mmdit_adm_channels(m->mmdit);
    if (ts_text_encoders_context_dim(enc) > dim)
        return ts_fail(TS_ERR_MODEL, "shape mismatch: the CLIP encoders give %d-wide features, wider than the "
                       "MMDiT's %d-wide context", ts_text_encoders_context_dim(enc), dim);
    if (ts_text_encoders_pooled_dim(enc) != adm)
        return ts_fail(TS_ERR_MODEL, "shape mismatch: the CLIP encoders pool %d values, the MMDiT's y_embedder "
                       "takes %d", ts_text_encoders_pooled_dim(enc), adm);
    return 0;
}

/* out = [clip | 0] rows, then the T5 rows (zeros when t5 is NULL). */
static int compose(const ts_conditioning *clip, const float *t5, int t5_len, int dim, ts_sd3_cond *out)
{
    int64_t tc = clip->context.shape[1], wc = clip->context.shape[2], tokens = tc + t5_len;
    int64_t adm = clip->pooled.shape[1];
    out->context = ts_tensor_view(calloc((size_t)(tokens * dim), sizeof(float)), 3, (int64_t[]){1, tokens, dim});
    out->pooled = ts_tensor_view(malloc((size_t)adm * sizeof(float)), 2, (int64_t[]){1, adm});
    if (!out->context.data || !out->pooled.data)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    for (int64_t t = 0; t < tc; t++)
        memcpy(out->context.data + t * dim, clip->context.data + t * wc, (size_t)wc * sizeof(float));
    if (t5)
        memcpy(out->context.data + tc * dim, t5, (size_t)(t5_len * dim) * sizeof(float));
    memcpy(out->pooled.data, clip->pooled.data, (size_t)adm * sizeof(float));
    return 0;
}

int ts_sd3_encode_prompts(const ts_sd3_model *m, const char *prompt, const char *negative, int clip_skip,
                          ts_sd3_cond out[2])
{
    memset(out, 0, 2 * sizeof *out);
    const char *prompts[2] = {prompt, negative ? negative : ""};
    ts_conditioning clip[2];
    float *t5 = NULL;
    int t5_len = 0, dim = ts_mmdit_context_dim(m->mmdit);
    const char *paths[3] = {m->files.model, m->files.clip_l, m->files.clip_g};
    int rc = ts_encode_prompt_pair(m->family, paths, m->files.clip_heads, mmdit_fits, m, prompts[0], prompts[1],
                                   clip_skip, clip);
    rc = rc ? rc : encode_t5(m, prompts, &t5, &t5_len);
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = compose(&clip[i], t5 ? t5 + (size_t)i * t5_len * dim : NULL, t5 ? t5_len : T5_MIN_TOKENS, dim, &out[i]);
    ts_conditioning_free(&clip[0]);
    ts_conditioning_free(&clip[1]);
    free(t5);
    if (rc) {
        ts_sd3_cond_free(&out[0]);
        ts_sd3_cond_free(&out[1]);
    }
    return rc;
}

void ts_sd3_cond_free(ts_sd3_cond *c)
{
    free(c->context.data);
    free(c->pooled.data);
    memset(c, 0, sizeof *c);
}
