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

static int encode(const ts_sd_model *m, ts_weights *const wf[3], const char *prompt, const char *negative,
                  int clip_skip, ts_sd_prompts *out)
{
    ts_text_encoders_opts opts = {.tower = {{.heads = m->files.clip_heads}, {.heads = m->files.clip_heads}}};
    ts_text_encoders *enc = NULL;
    int rc = ts_text_encoders_load_opts(m->family, wf[0], wf[1], wf[2], &opts, &enc);
    if (rc == 0 && ts_text_encoders_context_dim(enc) != ts_unet_context_dim(m->unet))
        rc = ts_fail(TS_ERR_MODEL,
                     "shape mismatch: the text encoders give %d-wide context, the UNet's cross-attention "
                     "(attn2.to_k.weight) takes %d",
                     ts_text_encoders_context_dim(enc), ts_unet_context_dim(m->unet));
    rc = rc ? rc : ts_encode_prompt(enc, prompt, clip_skip, &out->c[0]);
    rc = rc ? rc : ts_encode_prompt(enc, negative, clip_skip, &out->c[1]);
    rc = rc ? rc : ts_conditioning_match_length(&out->c[0], &out->c[1]);
    ts_text_encoders_free(enc);
    return rc;
}

int ts_sd_encode_prompts(const ts_sd_model *m, const char *prompt, const char *negative, int clip_skip,
                         ts_sd_prompts *out)
{
    memset(out, 0, sizeof *out);
    /* Own mappings, closed below: their pages leave the resident set with them. */
    ts_weights *wf[3] = {NULL, NULL, NULL};
    const char *paths[3] = {m->files.model, m->files.clip_l, m->files.clip_g};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        if (paths[i])
            rc = ts_weights_open(paths[i], &wf[i]);
    rc = rc ? rc : encode(m, wf, prompt, negative, clip_skip, out);
    for (int i = 0; i < 3; i++)
        ts_weights_close(wf[i]);
    if (rc) {
        ts_sd_prompts_free(out);
        return rc;
    }
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
