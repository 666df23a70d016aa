/*
 * tessera generate for Flux.1 schnell and dev: txt2img, img2img (--init-image) and
 * inpainting (--mask) over the four files Flux is distributed as (transformer,
 * AutoEncoder, CLIP-L, T5-XXL).
 *
 * generate.c hands over when -m names a Flux transformer, so users keep one command
 * and the flags they know; what differs from SD is what Flux is: no negative prompt
 * and no CFG (schnell is distilled, dev embeds its guidance as an input), sizes in
 * multiples of 16 (2x2 latent tokens), 4 steps for schnell and 20 for dev as their
 * authors run them.  The prompt goes to both encoders as plain text (see flux.h):
 * A1111 emphasis is stripped, since neither the reference nor the models know it.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/generate_common.h"
#include "core/error.h"
#include "core/threads.h"
#include "models/family.h"
#include "pipeline/flux.h"

static void flux_usage(FILE *f)
{
    fprintf(f,
            "usage: tessera generate -m FLUX --ae AE --clip-l CLIP_L --t5 T5 -p PROMPT -o OUT [options]\n\n"
            "Flux.1 schnell and dev (told apart by the transformer: dev embeds guidance).\n"
            "  txt2img      (no image)\n"
            "  img2img      --init-image IMG [--strength S]\n"
            "  inpaint      --init-image IMG --mask MASK [--mask-blur R] [--strength S]\n\n"
            "model (all four files are required):\n"
            "  -m, --model FILE        the transformer (flux1-schnell / flux1-dev .safetensors)\n"
            "      --ae FILE           the 16-channel AutoEncoder (ae.safetensors)\n"
            "      --clip-l FILE       CLIP-L text encoder\n"
            "      --t5 FILE           T5-XXL encoder (t5xxl_fp16.safetensors, ...)\n"
            "      --t5-tokenizer FILE spiece.model or tokenizer.json (default: the built-in T5 one)\n"
            "      --rope-axes A,B,C   rotary split of a head (default 16,56,56), and\n"
            "      --clip-heads N      CLIP head count (default 64-wide heads): for test models\n"
            "prompt:\n"
            "  -p, --prompt TEXT       what to draw.  T5 reads up to 255 tokens (schnell) or 511\n"
            "                          (dev), CLIP-L 75; the rest is cut, with a warning.  Flux has\n"
            "                          no prompt weighting: A1111 emphasis is removed and its words\n"
            "                          kept, \"(red:1.3) [fox]\" reads \"red fox\"; write \\( \\) for\n"
            "                          literal brackets.  BREAK is read as a space.  There is no\n"
            "                          negative prompt.\n"
            "sampling:\n"
            "  -W, --width N, -H, --height N\n"
            "                          multiples of 16; default 1024, or the input image's size\n"
            "      --steps N           default 4 (schnell), 20 (dev)\n"
            "      --guidance S        dev's embedded guidance, default 3.5 (schnell has none)\n"
            "      --seed N            default: random (printed)\n"
            "      --batch-count N     N images, seeds SEED, SEED+1, ... (default 1)\n"
            "      --strength S        img2img / inpaint denoise in (0, 1]; default 0.75 (inpaint 1).\n"
            "                          At strength S the sampler runs STEPS steps: the last ones of\n"
            "                          an int(STEPS / S)-step schedule (ComfyUI's rule), starting\n"
            "                          from sigma * noise + (1 - sigma) * image latent.\n"
            "      --mask-blur R       Gaussian blur of the mask, sigma R pixels (default 4)\n"
            "high resolution (see tessera generate --help and docs/highres.md):\n"
            "      --tile N, --tile-overlap N, --tile-batch N, --tile-blend uniform|gaussian\n"
            "                          tiled denoising in latent pixels (even); default: tiles of\n"
            "                          1024 px (128) once the canvas exceeds it; each tile's tokens\n"
            "                          get RoPE positions in full-canvas coordinates\n"
            "      --vae-tile N        exact tiled AutoEncoder (default 64 above 1024x1024; 0 = off)\n"
            "output:\n"
            "  -o, --output OUT        .png or .jpg; with --batch-count N > 1: OUT-1.png ... OUT-N.png\n"
            "      --threads N         worker threads (default: every core)\n\n"
            "Inpainting repaints where the mask is white; pixels where the (blurred) mask is 0 are\n"
            "copied from the input unchanged.  The mask must have the image's size.\n");
}

typedef struct {
    ts_flux_files files;
    const char *prompt, *out, *init_image, *mask, *t5_tokenizer;
    int width, height, steps, batch, threads, has_seed, has_guidance;
    double guidance, strength, mask_blur;
    uint64_t seed;
    gen_tiling_args tiling;
} flux_args;

static int parse_axes(const char *value, void *field)
{
    return ts_flux_config_parse(value, field);
}

#define AT(field) offsetof(flux_args, field)
static const flag_spec flags[] = {
    {"--model", "-m", FLAG_TEXT, AT(files.model), 0, 0, 0, NULL},
    {"--ae", NULL, FLAG_TEXT, AT(files.ae), 0, 0, 0, NULL},
    {"--clip-l", NULL, FLAG_TEXT, AT(files.clip_l), 0, 0, 0, NULL},
    {"--t5", NULL, FLAG_TEXT, AT(files.t5), 0, 0, 0, NULL},
    {"--t5-tokenizer", NULL, FLAG_TEXT, AT(t5_tokenizer), 0, 0, 0, NULL},
    {"--rope-axes", NULL, FLAG_PARSE, AT(files.flux), 0, 0, 0, parse_axes},
    {"--clip-heads", NULL, FLAG_INT, AT(files.clip_heads), 0, 1, 1024, NULL},
    {"--prompt", "-p", FLAG_TEXT, AT(prompt), 0, 0, 0, NULL},
    {"--output", "-o", FLAG_TEXT, AT(out), 0, 0, 0, NULL},
    {"--init-image", NULL, FLAG_TEXT, AT(init_image), 0, 0, 0, NULL},
    {"--mask", NULL, FLAG_TEXT, AT(mask), 0, 0, 0, NULL},
    {"--width", "-W", FLAG_INT, AT(width), 0, 1, TS_IMAGE_MAX_SIDE, NULL},
    {"--height", "-H", FLAG_INT, AT(height), 0, 1, TS_IMAGE_MAX_SIDE, NULL},
    {"--steps", NULL, FLAG_INT, AT(steps), 0, 1, 1000, NULL},
    {"--batch-count", NULL, FLAG_INT, AT(batch), 0, 1, 10000, NULL},
    {"--threads", NULL, FLAG_INT, AT(threads), 0, 1, 1024, NULL},
    {"--guidance", NULL, FLAG_REAL, AT(guidance), AT(has_guidance), 0, 100, NULL},
    {"--strength", NULL, FLAG_REAL, AT(strength), 0, 1e-6, 1, NULL},
    {"--mask-blur", NULL, FLAG_REAL, AT(mask_blur), 0, 0, 256, NULL},
    {"--seed", NULL, FLAG_SEED, AT(seed), AT(has_seed), 0, 0, NULL},
    GEN_TILING_TABLE(flux_args),
};

static int usage_error(const char *what, const char *detail)
{
    fprintf(stderr, "tessera generate: %s%s\n", what, detail);
    return 2;
}

/* Returns 0, 2 for bad usage, -1 after --help. */
static int parse_args(int argc, char **argv, flux_args *a)
{
    *a = (flux_args){.batch = 1, .guidance = 3.5, .strength = -1, .mask_blur = 4, .tiling = gen_tiling_defaults()};
    int rc = parse_flag_table(argc, argv, flux_usage, flags, sizeof flags / sizeof flags[0], a);
    if (rc)
        return rc;
    const char *missing = !a->files.ae       ? "--ae AE"
                          : !a->files.clip_l ? "--clip-l CLIP_L"
                          : !a->files.t5     ? "--t5 T5"
                          : !a->prompt       ? "-p PROMPT"
                          : !a->out          ? "-o OUT"
                                             : NULL;
    if (missing)
        return usage_error(missing, " is required for Flux (see tessera generate -m FLUX --help)");
    if (a->mask && !a->init_image)
        return usage_error("--mask needs --init-image", "");
    return check_output_name(a->out);
}

int generate_is_flux(int argc, char **argv)
{
    return generate_model_in(argc, argv, TS_FAMILY_BIT(TS_FAMILY_FLUX_SCHNELL) | TS_FAMILY_BIT(TS_FAMILY_FLUX_DEV));
}

/* ---- the run ------------------------------------------------------------------ */

typedef struct {
    const flux_args *args;
    ts_flux_model *model;
    ts_t5_tokenizer *tokenizer;
    ts_flux_request req;
    ts_flux_cond cond;
    gen_io io;
    ts_vae_tiling vae_tiling;
} flux_state;

static char *infotext(const flux_args *a, const flux_state *s, uint64_t seed)
{
    const ts_flux_request *r = &s->req;
    const char *model = strrchr(a->files.model, '/');
    char blur[32], guidance[32];
    snprintf(blur, sizeof blur, "%g", a->mask_blur);
    snprintf(guidance, sizeof guidance, "%g", r->guidance);
    char tiling[64];
    ts_infotext_pair extra[3];
    int n = 0;
    gen_tiling_pair(&r->tiling, tiling, sizeof tiling, extra, &n);
    if (ts_flux_has_guidance(s->model->flux))
        extra[n++] = (ts_infotext_pair){"Distilled CFG Scale", guidance};
    if (r->mask)
        extra[n++] = (ts_infotext_pair){"Mask blur", blur};
    ts_infotext info = {.prompt = a->prompt,
                        .steps = r->steps,
                        .sampler = "Euler",
                        .cfg_scale = 1,
                        .has_seed = 1,
                        .seed = seed,
                        .width = r->width,
                        .height = r->height,
                        .model = model ? model + 1 : a->files.model,
                        .denoising_strength = r->image ? r->strength : 0,
                        .extra = extra,
                        .extra_count = n};
    return ts_format_infotext(&info);
}

/* Model, images, request and the prompt's conditioning. */
static int prepare(const flux_args *a, flux_state *s)
{
    ts_flux_request *r = &s->req;
    int rc = ts_flux_model_load(&a->files, &s->model);
    if (rc)
        return rc;
    int dev = ts_flux_has_guidance(s->model->flux);
    if (a->has_guidance && !dev)
        fprintf(stderr, "note: flux-schnell embeds no guidance; --guidance is ignored\n");
    r->steps = a->steps ? a->steps : dev ? 20 : 4;
    r->shift = dev; /* the reference shifts every model but schnell */
    r->guidance = a->guidance;
    r->strength = a->strength > 0 ? a->strength : a->mask ? 1.0 : 0.75;
    gen_io_args io = {a->init_image, a->mask, a->mask_blur, a->width, a->height};
    rc = gen_io_prepare(&s->io, &io, 1024, 16);
    r->width = s->io.width;
    r->height = s->io.height;
    r->image = s->io.image;
    r->mask = s->io.mask;
    gen_tiling_resolve(&a->tiling, r->width, r->height, 1024, &r->tiling, &s->vae_tiling, &r->vae_tiling);
    rc = rc ? rc : describe_tiling(&r->tiling, r->width, r->height, 2, "");
    if (rc == 0 && a->t5_tokenizer)
        rc = ts_t5_tokenizer_load(a->t5_tokenizer, &s->tokenizer);
    int truncated = 0;
    rc = rc ? rc : ts_flux_encode_prompt(s->model, s->tokenizer, a->prompt, s->io.arena, &s->cond, &truncated);
    if (rc == 0 && truncated)
        fprintf(stderr, "warning: the prompt is longer than the text encoders read; the end is ignored\n");
    r->cond = &s->cond;
    return rc;
}

static int generate_one(void *ctx, int index, uint64_t seed, progress_bar *bar)
{
    flux_state *s = ctx;
    const flux_args *a = s->args;
    ts_flux_request *r = &s->req;
    r->seed = seed;
    r->progress = draw_progress;
    r->progress_ctx = bar;
    int rc = ts_flux_generate(s->model, r, s->io.arena, NULL, s->io.pixels);
    gen_output o = {a->out, a->batch, r->width, r->height, &s->io.in, s->io.mask};
    char *text = rc ? NULL : infotext(a, s, seed);
    rc = rc ? rc : write_result(&o, s->io.pixels, index, seed, text);
    free(text);
    return rc;
}

static int run(const flux_args *a)
{
    flux_state s = {.args = a};
    int rc = prepare(a, &s);
    rc = rc ? rc : run_batch(a->batch, a->has_seed, a->seed, generate_one, &s);
    ts_t5_tokenizer_free(s.tokenizer);
    gen_io_free(&s.io);
    ts_flux_model_free(s.model);
    return rc;
}

int cmd_generate_flux(int argc, char **argv)
{
    flux_args a;
    int status = parse_args(argc, argv, &a);
    if (status)
        return status < 0 ? 0 : status;
    ts_threads_set(a.threads);
    return report_failure(run(&a));
}
