/*
 * Prompts to Stable Diffusion conditioning for a model bundle (sd.h).
 *
 * The text encoders are mapped from their files for the encoding only and unmapped
 * right after, so the sampling loop's resident set holds no text-encoder pages.
 * The negative prompt is always encoded, even when empty (ComfyUI's choice; A1111
 * and SGM zero SDXL's empty negative instead), and both are padded to one length.
 */
#ifndef TS_PIPELINE_SD_TEXT_H
#define TS_PIPELINE_SD_TEXT_H

#include "pipeline/conditioning.h"
#include "pipeline/sd.h"

typedef struct {
    ts_conditioning c[2]; /* prompt, negative prompt (owned) */
    ts_sd_cond cond, uncond; /* views of c for ts_sd_request */
} ts_sd_prompts;

/* clip_skip 0 = the family's default.  Fails naming the files when the encoders are
 * missing or their width does not match the UNet's cross-attention. */
int ts_sd_encode_prompts(const ts_sd_model *m, const char *prompt, const char *negative, int clip_skip,
                         ts_sd_prompts *out);
void ts_sd_prompts_free(ts_sd_prompts *p);

/* Whether the loaded encoders suit the diffusion model (0, or the error). */
typedef int (*ts_text_fit_fn)(const ts_text_encoders *enc, const void *model);

/* What ts_sd_encode_prompts does, for any CLIP-conditioned family: maps the files
 * (paths: checkpoint, clip_l, clip_g; NULL skipped), loads the encoders (clip_heads 0:
 * 64-wide heads), asks fits, encodes both prompts to one length into out (malloc'd;
 * freed on failure) and unmaps the files. */
int ts_encode_prompt_pair(ts_family family, const char *const paths[3], int clip_heads, ts_text_fit_fn fits,
                          const void *model, const char *prompt, const char *negative, int clip_skip,
                          ts_conditioning out[2]);

#endif
