/*
 * tessera generate: Stable Diffusion 1.x / 2.x / SDXL from the command line —
 * txt2img, img2img (--init-image), inpainting (--mask) and InstructPix2Pix editing
 * (--instruct), over a checkpoint or a checkpoint plus separate parts.  SD3 / SD3.5
 * checkpoints are handed to generate_sd3.c after the flags are parsed.
 *
 * What a user of the usual UIs expects: A1111-style flags and defaults, the seed
 * printed when it was drawn, the settings in the PNG's "parameters" text, and the
 * same seed and settings giving the same file byte for byte (noise comes from the
 * seed alone, the kernels reduce in a fixed order for a given thread count, PNG
 * output carries no timestamp).  Sizes that the model cannot take are refused
 * with the nearest valid ones named, rather than silently changed: a user who asks
 * for 1000 pixels should know they are getting 960 or 1024.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/generate_common.h"
#include "core/error.h"
#include "core/threads.h"
#include "io/image.h"
#include "pipeline/sd.h"
#include "pipeline/sd_text.h"

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: tessera generate -m MODEL -p PROMPT -o OUT [options]\n\n"
            "Stable Diffusion 1.x, 2.x, SDXL and SD3 / SD3.5.  The mode follows from the inputs:\n"
            "  txt2img      (no image)\n"
            "  img2img      --init-image IMG [--strength S]\n"
            "  inpaint      --init-image IMG --mask MASK [--mask-blur R] [--strength S]\n"
            "  edit         --init-image IMG --instruct [--image-cfg S]  (InstructPix2Pix models)\n\n"
            "model:\n"
            "  -m, --model FILE        checkpoint (.safetensors) with the UNet or MMDiT\n"
            "      --vae FILE          separate VAE (default: the checkpoint's)\n"
            "      --clip-l FILE       separate CLIP-L text encoder (SD1, SDXL, SD3)\n"
            "      --clip-g FILE       separate OpenCLIP bigG text encoder (SDXL, SD3)\n"
            "      --t5xxl FILE        separate T5-XXL text encoder (SD3; without one SD3 runs on CLIP alone)\n"
            "      --prediction eps|v  override detection (SD 2.x 768 models are v)\n"
            "      --unet-heads N, --clip-heads N\n"
            "                          attention head counts, for test models that do not follow\n"
            "                          the published rules (UNet: SD1 8, SD2/SDXL 64-wide; CLIP 64-wide)\n"
            "prompt:\n"
            "  -p, --prompt TEXT       what to draw (for --instruct: the instruction)\n"
            "  -n, --negative-prompt TEXT\n"
            "      --clip-skip N       1 = last CLIP layer (default: the family's own)\n"
            "sampling:\n"
            "  -W, --width N, -H, --height N\n"
            "                          default: the family's native size (SD1 512, SD2 768 v / 512,\n"
            "                          SDXL and SD3 1024), or the input image's size.  Must be multiples\n"
            "                          of 64 (SD1/SD2), 32 (SDXL) or 16 (SD3); other sizes are refused.\n"
            "      --steps N           default 20\n"
            "      --cfg S             text guidance scale; default 7 (SDXL and SD3 5, --instruct 7.5)\n"
            "      --sampler NAME      euler, euler_a, heun, dpmpp_2m, dpmpp_2m_sde, lcm\n"
            "                          (default dpmpp_2m)\n"
            "      --scheduler NAME    normal, karras, exponential, simple, sgm_uniform, ...\n"
            "                          (default karras; SD3: normal, its reference schedule)\n"
            "      --seed N            default: random (printed)\n"
            "      --batch-count N     N images, seeds SEED, SEED+1, ... (default 1)\n"
            "      --strength S        img2img / inpaint denoise in (0, 1]; default 0.75 (inpaint 1)\n"
            "      --mask-blur R       Gaussian blur of the mask, sigma R pixels (default 4)\n"
            "      --image-cfg S       InstructPix2Pix image guidance (default 1.5)\n"
            "output:\n"
            "  -o, --output OUT        .png or .jpg; with --batch-count N > 1: OUT-1.png ... OUT-N.png\n"
            "      --threads N         worker threads (default: every core)\n\n"
            "Inpainting repaints where the mask is white; pixels where the (blurred) mask is 0 are\n"
            "copied from the input unchanged.  The mask must have the image's size.\n");
}

static int bad_value(const char *flag, const char *val)
{
    fprintf(stderr, "tessera generate: bad value '%s' for %s\n", val, flag);
    return 2;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!s[0] || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    if (!s[0] || s[0] == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

/* One valued option (known to parse_args' list); returns 0, or 2 for a bad value. */
static int set_option(gen_args *a, const char *arg, const char *val)
{
    int bad = 0;
    if (!strcmp(arg, "-m") || !strcmp(arg, "--model"))
        a->files.model = val;
    else if (!strcmp(arg, "--vae"))
        a->files.vae = val;
    else if (!strcmp(arg, "--clip-l"))
        a->files.clip_l = val;
    else if (!strcmp(arg, "--clip-g"))
        a->files.clip_g = val;
    else if (!strcmp(arg, "--t5xxl"))
        a->t5 = val;
    else if (!strcmp(arg, "-p") || !strcmp(arg, "--prompt"))
        a->prompt = val;
    else if (!strcmp(arg, "-n") || !strcmp(arg, "--negative-prompt"))
        a->negative = val;
    else if (!strcmp(arg, "-o") || !strcmp(arg, "--output"))
        a->out = val;
    else if (!strcmp(arg, "--init-image"))
        a->init_image = val;
    else if (!strcmp(arg, "--mask"))
        a->mask = val;
    else if (!strcmp(arg, "--sampler"))
        a->sampler = val;
    else if (!strcmp(arg, "--scheduler"))
        a->scheduler = val;
    else if (!strcmp(arg, "-W") || !strcmp(arg, "--width"))
        bad = parse_int(val, 1, TS_IMAGE_MAX_SIDE, &a->width);
    else if (!strcmp(arg, "-H") || !strcmp(arg, "--height"))
        bad = parse_int(val, 1, TS_IMAGE_MAX_SIDE, &a->height);
    else if (!strcmp(arg, "--steps"))
        bad = parse_int(val, 1, 1000, &a->steps);
    else if (!strcmp(arg, "--batch-count"))
        bad = parse_int(val, 1, 10000, &a->batch);
    else if (!strcmp(arg, "--clip-skip"))
        bad = parse_int(val, 1, 48, &a->clip_skip);
    else if (!strcmp(arg, "--threads"))
        bad = parse_int(val, 1, 1024, &a->threads);
    else if (!strcmp(arg, "--unet-heads"))
        bad = parse_int(val, 1, 1024, &a->files.unet.num_heads);
    else if (!strcmp(arg, "--clip-heads"))
        bad = parse_int(val, 1, 1024, &a->files.clip_heads);
    else if (!strcmp(arg, "--cfg"))
        bad = parse_double(val, 0.0, 100.0, &a->cfg);
    else if (!strcmp(arg, "--strength"))
        bad = parse_double(val, 1e-6, 1.0, &a->strength);
    else if (!strcmp(arg, "--mask-blur"))
        bad = parse_double(val, 0.0, 256.0, &a->mask_blur);
    else if (!strcmp(arg, "--image-cfg"))
        bad = parse_double(val, 0.0, 100.0, &a->image_cfg);
    else if (!strcmp(arg, "--seed")) {
        bad = parse_seed(val, &a->seed);
        a->has_seed = 1;
    } else {
        bad = strcmp(arg, "--prediction") != 0;
        a->files.prediction = !strcmp(val, "v") ? TS_SD_PRED_V : TS_SD_PRED_EPS;
        bad |= strcmp(val, "eps") && strcmp(val, "v");
    }
    return bad ? bad_value(arg, val) : 0;
}

/* Returns 0, 2 for bad usage, -1 after --help. */
static int parse_args(int argc, char **argv, gen_args *a)
{
    *a = (gen_args){.negative = "", .sampler = "dpmpp_2m", .steps = 20, .batch = 1,
                    .cfg = -1, .strength = -1, .mask_blur = 4, .image_cfg = 1.5};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            generate_usage(stdout);
            return -1;
        }
        if (!strcmp(arg, "--instruct")) {
            a->instruct = 1;
            continue;
        }
        if (arg[0] != '-') {
            fprintf(stderr, "tessera generate: unexpected argument '%s' (see --help)\n", arg);
            return 2;
        }
        static const char *const valued[] = {
            "-m", "--model", "--vae", "--clip-l", "--clip-g", "--t5xxl", "--prediction", "--unet-heads", "--clip-heads",
            "-p", "--prompt", "-n", "--negative-prompt", "--clip-skip", "-W", "--width", "-H", "--height",
            "--steps", "--cfg", "--sampler", "--scheduler", "--seed", "--batch-count", "--init-image",
            "--strength", "--mask", "--mask-blur", "--image-cfg", "-o", "--output", "--threads"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known |= !strcmp(arg, valued[k]);
        if (!known) {
            fprintf(stderr, "tessera generate: unknown option '%s' (see --help)\n", arg);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tessera generate: %s needs a value\n", arg);
            return 2;
        }
        int rc = set_option(a, arg, argv[++i]);
        if (rc)
            return rc;
    }
    const char *missing = !a->files.model ? "-m MODEL" : !a->prompt ? "-p PROMPT" : !a->out ? "-o OUT" : NULL;
    if (missing) {
        fprintf(stderr, "tessera generate: %s is required (see --help)\n", missing);
        return 2;
    }
    if ((a->mask || a->instruct) && !a->init_image) {
        fprintf(stderr, "tessera generate: %s needs --init-image\n", a->mask ? "--mask" : "--instruct");
        return 2;
    }
    const char *dot = strrchr(a->out, '.');
    if (!dot || (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg"))) {
        fprintf(stderr, "tessera generate: -o %s: the name must end in .png, .jpg or .jpeg\n", a->out);
        return 2;
    }
    if (a->mask && a->instruct) {
        fprintf(stderr, "tessera generate: --mask and --instruct cannot be combined\n");
        return 2;
    }
    return 0;
}

/* ---- progress ----------------------------------------------------------------- */

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "step 7/20 [#######.............] 1.52 it/s, ETA 9 s" (s/it below one step a second,
 * as the web UIs show it); on a terminal redrawn in place, else one line per step. */
int draw_progress(void *ctx, int done, int steps)
{
    progress_bar *p = ctx;
    double spent = now() - p->start, rate = spent > 0 ? done / spent : 0;
    char bar[21];
    for (int i = 0; i < 20; i++)
        bar[i] = i < done * 20 / steps ? '#' : '.';
    bar[20] = '\0';
    char speed[32];
    if (rate >= 1 || rate == 0)
        snprintf(speed, sizeof speed, "%.2f it/s", rate);
    else
        snprintf(speed, sizeof speed, "%.2f s/it", 1 / rate);
    char image[32] = "";
    if (p->images > 1)
        snprintf(image, sizeof image, "image %d/%d ", p->image + 1, p->images);
    fprintf(stderr, "%s%sstep %d/%d [%s] %s, ETA %.0f s%s", p->tty ? "\r" : "", image, done, steps, bar, speed,
            rate > 0 ? (steps - done) / rate : 0.0, p->tty && done < steps ? "   " : "\n");
    return 0;
}

/* ---- images ------------------------------------------------------------------- */

/* The input image as RGB 8-bit, planar in [-1, 1]. */
static int load_image(const char *path, ts_image *rgb, float **planar)
{
    ts_image raw = {0};
    int rc = ts_image_read(path, &raw);
    rc = rc ? rc : ts_image_convert(&raw, 3, 8, rgb);
    ts_image_free(&raw);
    if (rc)
        return rc;
    *planar = malloc((size_t)3 * rgb->width * rgb->height * sizeof **planar);
    if (!*planar)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    ts_image_to_planar(rgb, TS_RANGE_SIGNED, *planar);
    return 0;
}

/* The mask as one plane in [0, 1] (white = repaint), blurred. */
static int load_mask(const char *path, const ts_image *image, double blur, float **mask)
{
    ts_image raw = {0}, gray = {0};
    int rc = ts_image_read(path, &raw);
    rc = rc ? rc : ts_image_convert(&raw, 1, 8, &gray);
    ts_image_free(&raw);
    if (rc == 0 && (gray.width != image->width || gray.height != image->height))
        rc = ts_fail(TS_ERR_ARG, "%s: the mask is %dx%d but the init image is %dx%d", path, gray.width, gray.height,
                     image->width, image->height);
    if (rc == 0) {
        *mask = malloc((size_t)gray.width * gray.height * sizeof **mask);
        if (!*mask)
            rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    if (rc == 0) {
        ts_image_to_planar(&gray, TS_RANGE_UNIT, *mask);
        rc = ts_blur_plane(*mask, gray.height, gray.width, blur);
    }
    ts_image_free(&gray);
    return rc;
}

/* Where the mask is 0 the input pixel is kept as it was, byte for byte; elsewhere
 * generated and input pixels are mixed by the mask. */
static void compose(ts_image *out, const ts_image *in, const float *mask)
{
    uint8_t *o = out->data;
    const uint8_t *src = in->data;
    size_t pixels = (size_t)out->width * out->height;
    for (size_t p = 0; p < pixels; p++) {
        double m = mask[p];
        for (int c = 0; c < 3; c++) {
            size_t i = p * 3 + c;
            o[i] = m <= 0 ? src[i] : (uint8_t)lrint(m * o[i] + (1 - m) * src[i]);
        }
    }
}

/* ---- the run ------------------------------------------------------------------ */

static const char *a1111_sampler(ts_sampler s)
{
    static const char *const names[TS_SAMPLER_COUNT] = {"Euler", "Euler a", "Heun", "DPM++ 2M", "DPM++ 2M SDE", "LCM"};
    return (unsigned)s < TS_SAMPLER_COUNT ? names[s] : ts_sampler_name(s);
}

static void output_path(const char *out, int index, int count, char *buf, size_t size)
{
    if (count == 1) {
        snprintf(buf, size, "%s", out);
        return;
    }
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (!dot || (slash && dot < slash))
        dot = out + strlen(out);
    snprintf(buf, size, "%.*s-%d%s", (int)(dot - out), out, index + 1, dot);
}

static char *infotext(const gen_args *a, const ts_sd_request *r, uint64_t seed)
{
    const char *model = strrchr(a->files.model, '/');
    char blur[32], icfg[32], skip[16];
    snprintf(blur, sizeof blur, "%g", a->mask_blur);
    snprintf(icfg, sizeof icfg, "%g", r->image_cfg);
    snprintf(skip, sizeof skip, "%d", a->clip_skip);
    ts_infotext_pair extra[3];
    int n = 0;
    if (r->mode == TS_SD_INPAINT)
        extra[n++] = (ts_infotext_pair){"Mask blur", blur};
    if (r->mode == TS_SD_INSTRUCT)
        extra[n++] = (ts_infotext_pair){"Image CFG scale", icfg};
    if (a->clip_skip)
        extra[n++] = (ts_infotext_pair){"Clip skip", skip};
    ts_infotext info = {.prompt = a->prompt,
                        .negative_prompt = a->negative,
                        .steps = r->steps,
                        .sampler = a1111_sampler(r->sampler),
                        .scheduler = ts_scheduler_name(r->scheduler),
                        .cfg_scale = r->cfg,
                        .has_seed = 1,
                        .seed = seed,
                        .width = r->width,
                        .height = r->height,
                        .model = model ? model + 1 : a->files.model,
                        .denoising_strength = r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT ? r->strength : 0,
                        .extra = extra,
                        .extra_count = n};
    return ts_format_infotext(&info);
}

/* Suggests the valid sizes on either side of a refused one. */
static int check_size(const char *what, int v, int mult)
{
    if (v % mult == 0)
        return 0;
    int lo = v / mult * mult, hi = lo + mult;
    if (lo == 0)
        return ts_fail(TS_ERR_ARG, "%s %d is not a multiple of %d, as this model needs; use %d", what, v, mult, hi);
    return ts_fail(TS_ERR_ARG, "%s %d is not a multiple of %d, as this model needs; use %d or %d", what, v, mult, lo,
                   hi);
}

/* Everything from the arguments that does not need the prompts: model, images, request. */
static int prepare(const gen_args *a, gen_state *s)
{
    ts_sd_request *r = &s->req;
    int rc = ts_sd_load(&a->files, &s->model);
    if (rc)
        return rc;
    const ts_sd_model *m = s->model;
    *r = (ts_sd_request){.mode = a->instruct ? TS_SD_INSTRUCT
                                 : a->mask   ? TS_SD_INPAINT
                                 : a->init_image ? TS_SD_IMG2IMG
                                                 : TS_SD_TXT2IMG,
                         .steps = a->steps, .image_cfg = a->image_cfg};
    r->cfg = a->cfg >= 0 ? a->cfg : a->instruct ? 7.5 : m->family == TS_FAMILY_SDXL ? 5.0 : 7.0;
    r->strength = a->strength > 0 ? a->strength : r->mode == TS_SD_INPAINT ? 1.0 : 0.75;
    rc = ts_sampler_from_name(a->sampler, &r->sampler);
    rc = rc ? rc : ts_scheduler_from_name(a->scheduler ? a->scheduler : "karras", &r->scheduler);
    rc = rc ? rc : ts_sd_check_mode(m, r->mode);
    return rc ? rc : prepare_io(a, s, m->native_size, m->size_multiple);
}

int prepare_io(const gen_args *a, gen_state *s, int native_size, int size_multiple)
{
    ts_sd_request *r = &s->req;
    int rc = 0;
    r->width = a->width ? a->width : native_size;
    r->height = a->height ? a->height : native_size;
    if (rc == 0 && a->init_image) {
        rc = load_image(a->init_image, &s->in, &s->image);
        if (rc == 0 && ((a->width && a->width != s->in.width) || (a->height && a->height != s->in.height)))
            rc = ts_fail(TS_ERR_ARG, "--width/--height must match the init image (%dx%d) or be left out",
                         s->in.width, s->in.height);
        r->width = s->in.width;
        r->height = s->in.height;
        r->image = s->image;
    }
    rc = rc ? rc : check_size(a->init_image ? "init image width" : "width", r->width, size_multiple);
    rc = rc ? rc : check_size(a->init_image ? "init image height" : "height", r->height, size_multiple);
    if (rc == 0 && a->mask) {
        rc = load_mask(a->mask, &s->in, a->mask_blur, &s->mask);
        r->mask = s->mask;
    }
    if (rc == 0) {
        s->pixels = malloc((size_t)3 * r->width * r->height * sizeof *s->pixels);
        /* Address space only: pages are committed as a step touches them. */
        s->arena = ts_arena_create((size_t)64 << 30);
        if (!s->pixels || !s->arena)
            rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    return rc;
}

int write_image(const gen_args *a, gen_state *s, int index, uint64_t seed)
{
    const ts_sd_request *r = &s->req;
    char path[4096];
    ts_image out = {0};
    int rc = ts_image_from_planar(s->pixels, 3, r->width, r->height, 8, TS_RANGE_SIGNED, &out);
    if (rc)
        return rc;
    if (r->mode == TS_SD_INPAINT)
        compose(&out, &s->in, s->mask);
    char *text = infotext(a, r, seed);
    output_path(a->out, index, a->batch, path, sizeof path);
    ts_image_write_opts opts = {.parameters = text};
    rc = text ? ts_image_write(path, &out, &opts) : TS_ERR_NOMEM;
    if (rc == 0)
        fprintf(stderr, "wrote %s (%dx%d, seed %llu)\n", path, r->width, r->height, (unsigned long long)seed);
    free(text);
    ts_image_free(&out);
    return rc;
}

static int run(const gen_args *a)
{
    gen_state s = {0};
    ts_sd_prompts prompts = {0};
    int rc = prepare(a, &s);
    rc = rc ? rc : ts_sd_encode_prompts(s.model, a->prompt, a->negative, a->clip_skip, &prompts);
    uint64_t seed = rc ? 0 : pick_seed(a);
    progress_bar bar = {.images = a->batch, .tty = isatty(STDERR_FILENO)};
    s.req.cond = prompts.cond;
    s.req.uncond = prompts.uncond;
    s.req.progress = draw_progress;
    s.req.progress_ctx = &bar;
    for (int i = 0; i < a->batch && rc == 0; i++) {
        s.req.seed = seed + (uint64_t)i;
        bar.image = i;
        bar.start = now();
        rc = ts_sd_generate(s.model, &s.req, s.arena, s.pixels);
        rc = rc ? rc : write_image(a, &s, i, s.req.seed);
    }
    ts_sd_prompts_free(&prompts);
    free_state(&s);
    ts_sd_free(s.model);
    return rc;
}

uint64_t pick_seed(const gen_args *a)
{
    uint64_t seed = a->seed;
    if (!a->has_seed) {
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
            seed = (uint64_t)time(NULL);
        seed &= 0xffffffffu; /* what the UIs accept and show */
        fprintf(stderr, "seed: %llu\n", (unsigned long long)seed);
    }
    return seed;
}

void free_state(gen_state *s)
{
    ts_arena_destroy(s->arena);
    free(s->pixels);
    free(s->image);
    free(s->mask);
    ts_image_free(&s->in);
}

int cmd_generate(int argc, char **argv)
{
    gen_args a;
    int status = parse_args(argc, argv, &a);
    if (status)
        return status < 0 ? 0 : status;
    ts_threads_set(a.threads);
    if (is_sd3_model(a.files.model))
        return generate_sd3(&a);
    if (run(&a) < 0) {
        fprintf(stderr, "tessera generate: %s\n", ts_error_message());
        return 1;
    }
    return 0;
}
