/*
 * Prompt encoding for a Stable Diffusion bundle; see sd_text.h.
 */
#include "pipeline/sd_text.h"

#include <string.h>

#include "core/error.h"

static void view(const ts_conditioning *c, ts_sd_cond *out)
{
    out->context = c->context;
    out->pooled = c->pooled.data;
    out->pooled_dim = c->pooled.data ? (int)c->pooled.shape[1] : 0;
}

/* The SD check: the encoders' width must be the UNet's cross-attention width. */
static int unet_fits(const ts_text_encoders *enc, const void *model)
{
    const ts_sd_model *m = model;
    if (ts_text_encoders_context_dim(enc) == ts_unet_context_dim(m->unet))
        return 0;
    return ts_fail(TS_ERR_MODEL,
                   "shape mismatch: the text encoders give %d-wide context, the UNet's cross-attention "
                   "(attn2.to_k.weight) takes %d",
                   ts_text_encoders_context_dim(enc), ts_unet_context_dim(m->unet));
}

int ts_encode_prompt_pair(ts_family family, const char *const paths[3], int clip_heads, ts_text_fit_fn fits,
                          const void *model, const char *prompt, const char *negative, int clip_skip,
                          ts_conditioning out[2])
{
    memset(out, 0, 2 * sizeof *out);
    /* Own mappings, closed below: their pages leave the resident set with them. */
    ts_weights *wf[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        if (paths[i])
            rc = ts_weights_open(paths[i], &wf[i]);
    ts_text_encoders_opts opts = {.tower = {{.heads = clip_heads}, {.heads = clip_heads}}};
    ts_text_encoders *enc = NULL;
    rc = rc ? rc : ts_text_encoders_load_opts(family, wf[0], wf[1], wf[2], &opts, &enc);
    rc = rc ? rc : fits(enc, model);
    rc = rc ? rc : ts_encode_prompt(enc, prompt, clip_skip, &out[0]);
    rc = rc ? rc : ts_encode_prompt(enc, negative, clip_skip, &out[1]);
    rc = rc ? rc : ts_conditioning_match_length(&out[0], &out[1]);
    ts_text_encoders_free(enc);
    for (int i = 0; i < 3; i++)
        ts_weights_close(wf[i]);
    if (rc) {
        ts_conditioning_free(&out[0]);
        ts_conditioning_free(&out[1]);
    }
    return rc;
}

int ts_sd_encode_prompts(const ts_sd_model *m, const char *prompt, const char *negative, int clip_skip,
                         ts_sd_prompts *out)
{
    memset(out, 0, sizeof *out);
    const char *paths[3] = {m->files.model, m->files.clip_l, m->files.clip_g};
    int rc = ts_encode_prompt_pair(m->family, paths, m->files.clip_heads, unet_fits, m, prompt, negative, clip_skip,
                                   out->c);
    if (rc)
        return rc;
    view(&out->c[0], &out->cond);
    view(&out->c[1], &out->uncond);
    return 0;
}

void ts_sd_prompts_free(ts_sd_prompts *p)
{
    ts_conditioning_free(&p->c[0]);
    ts_conditioning_free(&p->c[1]);
    memset(p, 0, sizeof *p);
}
