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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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
} flux_args;

/* "16,56,56": the rotary dims per position axis. */
static int parse_axes(const char *s, ts_flux_config *cfg)
{
    *cfg = ts_flux_config_default();
    cfg->n_axes = 0;
    for (const char *p = s; cfg->n_axes < TS_FLUX_MAX_AXES; p++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 2 || v > 4096 || v % 2)
            return -1;
        cfg->axes_dim[cfg->n_axes++] = (int)v;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return -1;
        p = end;
    }
    return -1;
}

static int set_option(flux_args *a, const char *arg, const char *val)
{
    int bad = 0;
    if (!strcmp(arg, "-m") || !strcmp(arg, "--model"))
        a->files.model = val;
    else if (!strcmp(arg, "--ae"))
        a->files.ae = val;
    else if (!strcmp(arg, "--clip-l"))
        a->files.clip_l = val;
    else if (!strcmp(arg, "--t5"))
        a->files.t5 = val;
    else if (!strcmp(arg, "--t5-tokenizer"))
        a->t5_tokenizer = val;
    else if (!strcmp(arg, "-p") || !strcmp(arg, "--prompt"))
        a->prompt = val;
    else if (!strcmp(arg, "-o") || !strcmp(arg, "--output"))
        a->out = val;
    else if (!strcmp(arg, "--init-image"))
        a->init_image = val;
    else if (!strcmp(arg, "--mask"))
        a->mask = val;
    else if (!strcmp(arg, "--rope-axes"))
        bad = parse_axes(val, &a->files.flux);
    else if (!strcmp(arg, "--clip-heads"))
        bad = parse_int(val, 1, 1024, &a->files.clip_heads);
    else if (!strcmp(arg, "-W") || !strcmp(arg, "--width"))
        bad = parse_int(val, 1, TS_IMAGE_MAX_SIDE, &a->width);
    else if (!strcmp(arg, "-H") || !strcmp(arg, "--height"))
        bad = parse_int(val, 1, TS_IMAGE_MAX_SIDE, &a->height);
    else if (!strcmp(arg, "--steps"))
        bad = parse_int(val, 1, 1000, &a->steps);
    else if (!strcmp(arg, "--batch-count"))
        bad = parse_int(val, 1, 10000, &a->batch);
    else if (!strcmp(arg, "--threads"))
        bad = parse_int(val, 1, 1024, &a->threads);
    else if (!strcmp(arg, "--guidance")) {
        bad = parse_double(val, 0.0, 100.0, &a->guidance);
        a->has_guidance = 1;
    } else if (!strcmp(arg, "--strength"))
        bad = parse_double(val, 1e-6, 1.0, &a->strength);
    else if (!strcmp(arg, "--mask-blur"))
        bad = parse_double(val, 0.0, 256.0, &a->mask_blur);
    else {
        bad = parse_seed(val, &a->seed);
        a->has_seed = 1;
    }
    return bad ? bad_value(arg, val) : 0;
}

static int usage_error(const char *what, const char *detail)
{
    fprintf(stderr, "tessera generate: %s%s\n", what, detail);
    return 2;
}

/* Returns 0, 2 for bad usage, -1 after --help. */
static int parse_args(int argc, char **argv, flux_args *a)
{
    *a = (flux_args){.batch = 1, .guidance = 3.5, .strength = -1, .mask_blur = 4};
    static const char *const valued[] = {
        "-m", "--model", "--ae", "--clip-l", "--t5", "--t5-tokenizer", "--rope-axes", "--clip-heads", "-p",
        "--prompt", "-W", "--width", "-H", "--height", "--steps", "--guidance", "--seed", "--batch-count",
        "--init-image", "--strength", "--mask", "--mask-blur", "-o", "--output", "--threads"};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            flux_usage(stdout);
            return -1;
        }
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known |= !strcmp(arg, valued[k]);
        if (arg[0] != '-')
            return usage_error(arg, ": unexpected argument (see --help)");
        if (!known)
            return usage_error(arg, ": not a Flux option (see tessera generate -m FLUX --help)");
        if (i + 1 >= argc)
            return usage_error(arg, " needs a value");
        int rc = set_option(a, arg, argv[++i]);
        if (rc)
            return rc;
    }
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
    const char *dot = strrchr(a->out, '.');
    if (!dot || (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg")))
        return usage_error(a->out, ": the output name must end in .png, .jpg or .jpeg");
    return 0;
}

int generate_is_flux(int argc, char **argv)
{
    const char *model = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model"))
            model = argv[i + 1];
    ts_safetensors *st = NULL;
    if (!model || ts_st_open(model, &st))
        return 0; /* the SD front end reports the file */
    ts_model_info info;
    ts_family_detect(st, &info);
    ts_st_close(st);
    return info.family == TS_FAMILY_FLUX_SCHNELL || info.family == TS_FAMILY_FLUX_DEV;
}

/* ---- the run ------------------------------------------------------------------ */

typedef struct {
    ts_flux_model *model;
    ts_t5_tokenizer *tokenizer;
    ts_flux_request req;
    ts_flux_cond cond;
    ts_image in;
    float *image, *mask, *pixels;
    ts_arena *arena;
} flux_state;

static char *infotext(const flux_args *a, const flux_state *s, uint64_t seed)
{
    const ts_flux_request *r = &s->req;
    const char *model = strrchr(a->files.model, '/');
    char blur[32], guidance[32];
    snprintf(blur, sizeof blur, "%g", a->mask_blur);
    snprintf(guidance, sizeof guidance, "%g", r->guidance);
    ts_infotext_pair extra[2];
    int n = 0;
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

/* The input image (and mask) into the request, sizes settled and checked. */
static int prepare_images(const flux_args *a, flux_state *s)
{
    ts_flux_request *r = &s->req;
    r->width = a->width ? a->width : 1024;
    r->height = a->height ? a->height : 1024;
    int rc = 0;
    if (a->init_image) {
        rc = load_image(a->init_image, &s->in, &s->image);
        if (rc == 0 && ((a->width && a->width != s->in.width) || (a->height && a->height != s->in.height)))
            rc = ts_fail(TS_ERR_ARG, "--width/--height must match the init image (%dx%d) or be left out",
                         s->in.width, s->in.height);
        r->width = s->in.width;
        r->height = s->in.height;
        r->image = s->image;
    }
    rc = rc ? rc : check_size(a->init_image ? "init image width" : "width", r->width, 16);
    rc = rc ? rc : check_size(a->init_image ? "init image height" : "height", r->height, 16);
    if (rc == 0 && a->mask) {
        rc = load_mask(a->mask, &s->in, a->mask_blur, &s->mask);
        r->mask = s->mask;
    }
    return rc;
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
    rc = prepare_images(a, s);
    if (rc == 0) {
        s->pixels = malloc((size_t)3 * r->width * r->height * sizeof *s->pixels);
        /* Address space only: pages are committed as a step touches them. */
        s->arena = ts_arena_create((size_t)64 << 30);
        if (!s->pixels || !s->arena)
            rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    if (rc == 0 && a->t5_tokenizer)
        rc = ts_t5_tokenizer_load(a->t5_tokenizer, &s->tokenizer);
    int truncated = 0;
    rc = rc ? rc : ts_flux_encode_prompt(s->model, s->tokenizer, a->prompt, s->arena, &s->cond, &truncated);
    if (rc == 0 && truncated)
        fprintf(stderr, "warning: the prompt is longer than the text encoders read; the end is ignored\n");
    r->cond = &s->cond;
    return rc;
}

static int write_image(const flux_args *a, flux_state *s, int index, uint64_t seed)
{
    const ts_flux_request *r = &s->req;
    char path[4096];
    ts_image out = {0};
    int rc = ts_image_from_planar(s->pixels, 3, r->width, r->height, 8, TS_RANGE_SIGNED, &out);
    if (rc)
        return rc;
    if (r->mask)
        compose(&out, &s->in, s->mask);
    char *text = infotext(a, s, seed);
    output_path(a->out, index, a->batch, path, sizeof path);
    ts_image_write_opts opts = {.parameters = text};
    rc = text ? ts_image_write(path, &out, &opts) : TS_ERR_NOMEM;
    if (rc == 0)
        fprintf(stderr, "wrote %s (%dx%d, seed %llu)\n", path, r->width, r->height, (unsigned long long)seed);
    free(text);
    ts_image_free(&out);
    return rc;
}

static int run(const flux_args *a)
{
    flux_state s = {0};
    int rc = prepare(a, &s);
    uint64_t seed = a->seed;
    if (rc == 0 && !a->has_seed) {
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
            seed = (uint64_t)time(NULL);
        seed &= 0xffffffffu; /* what the UIs accept and show */
        fprintf(stderr, "seed: %llu\n", (unsigned long long)seed);
    }
    progress_bar bar = {.images = a->batch, .tty = isatty(STDERR_FILENO)};
    s.req.progress = draw_progress;
    s.req.progress_ctx = &bar;
    for (int i = 0; i < a->batch && rc == 0; i++) {
        s.req.seed = seed + (uint64_t)i;
        bar.image = i;
        bar.start = now();
        rc = ts_flux_generate(s.model, &s.req, s.arena, NULL, s.pixels);
        rc = rc ? rc : write_image(a, &s, i, s.req.seed);
    }
    ts_arena_destroy(s.arena);
    ts_t5_tokenizer_free(s.tokenizer);
    free(s.pixels);
    free(s.image);
    free(s.mask);
    ts_image_free(&s.in);
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
    if (run(&a) < 0) {
        fprintf(stderr, "tessera generate: %s\n", ts_error_message());
        return 1;
    }
    return 0;
}
