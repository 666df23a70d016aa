/*
 * tessera generate: Stable Diffusion 1.x / 2.x / SDXL from the command line —
 * txt2img, img2img (--init-image), inpainting (--mask) and InstructPix2Pix editing
 * (--instruct), over a checkpoint or a checkpoint plus separate parts.
 *
 * What a user of the usual UIs expects: A1111-style flags and defaults, the seed
 * printed when it was drawn, the settings in the PNG's "parameters" text, and the
 * same seed and settings giving the same file byte for byte (noise comes from the
 * seed alone, the kernels reduce in a fixed order for a given thread count, PNG
 * output carries no timestamp).  Sizes that the model cannot take are refused
 * with the nearest valid ones named, rather than silently changed: a user who asks
 * for 1000 pixels should know they are getting 960 or 1024.
 *
 * The other families' front ends (generate_flux.c) are handed the command when -m
 * names one of their models, and share this file's option walk, inputs, batch loop
 * and output writing (generate_common.h), so every family behaves alike.
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
            "Stable Diffusion 1.x, 2.x and SDXL.  The mode follows from the inputs:\n"
            "  txt2img      (no image)\n"
            "  img2img      --init-image IMG [--strength S]\n"
            "  inpaint      --init-image IMG --mask MASK [--mask-blur R] [--strength S]\n"
            "  edit         --init-image IMG --instruct [--image-cfg S]  (InstructPix2Pix models)\n\n"
            "model:\n"
            "  -m, --model FILE        checkpoint (.safetensors) with the UNet\n"
            "      --vae FILE          separate VAE (default: the checkpoint's)\n"
            "      --clip-l FILE       separate CLIP-L text encoder (SD1, SDXL)\n"
            "      --clip-g FILE       separate OpenCLIP bigG text encoder (SDXL)\n"
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
            "                          SDXL 1024), or the input image's size.  Must be multiples of\n"
            "                          64 (SD1/SD2) or 32 (SDXL); other sizes are refused.\n"
            "      --steps N           default 20\n"
            "      --cfg S             text guidance scale; default 7 (SDXL 5, --instruct 7.5)\n"
            "      --sampler NAME      euler, euler_a, heun, dpmpp_2m, dpmpp_2m_sde, lcm\n"
            "                          (default dpmpp_2m)\n"
            "      --scheduler NAME    normal, karras, exponential, simple, sgm_uniform, ...\n"
            "                          (default karras)\n"
            "      --seed N            default: random (printed)\n"
            "      --batch-count N     N images, seeds SEED, SEED+1, ... (default 1)\n"
            "      --strength S        img2img / inpaint denoise in (0, 1]; default 0.75 (inpaint 1)\n"
            "      --mask-blur R       Gaussian blur of the mask, sigma R pixels (default 4)\n"
            "      --image-cfg S       InstructPix2Pix image guidance (default 1.5)\n"
            "output:\n"
            "  -o, --output OUT        .png or .jpg; with --batch-count N > 1: OUT-1.png ... OUT-N.png\n"
            "      --threads N         worker threads (default: every core)\n\n"
            "Inpainting repaints where the mask is white; pixels where the (blurred) mask is 0 are\n"
            "copied from the input unchanged.  The mask must have the image's size.\n"
            "Flux.1 schnell / dev transformers have their own options: tessera generate -m FLUX --help\n");
}

typedef struct {
    ts_sd_files files;
    const char *prompt, *negative, *out, *init_image, *mask, *sampler, *scheduler;
    int width, height, steps, batch, clip_skip, threads, instruct, has_seed;
    double cfg, strength, mask_blur, image_cfg;
    uint64_t seed;
} gen_args;

int bad_value(const char *flag, const char *val)
{
    fprintf(stderr, "tessera generate: bad value '%s' for %s\n", val, flag);
    return 2;
}

int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!s[0] || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int parse_seed(const char *s, uint64_t *out)
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

/* One option of sd_options (val NULL for --instruct); returns 0, or 2 for a bad value. */
static int set_option(void *args, const char *arg, const char *val)
{
    gen_args *a = args;
    int bad = 0;
    if (!strcmp(arg, "--instruct"))
        a->instruct = 1;
    else if (!strcmp(arg, "-m") || !strcmp(arg, "--model"))
        a->files.model = val;
    else if (!strcmp(arg, "--vae"))
        a->files.vae = val;
    else if (!strcmp(arg, "--clip-l"))
        a->files.clip_l = val;
    else if (!strcmp(arg, "--clip-g"))
        a->files.clip_g = val;
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

int parse_options(int argc, char **argv, const gen_options *o, void *args)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            o->usage(stdout);
            return -1;
        }
        if (arg[0] != '-') {
            fprintf(stderr, "tessera generate: unexpected argument '%s' (see --help)\n", arg);
            return 2;
        }
        int valued = 0, plain = 0;
        for (const char *const *f = o->valued; *f; f++)
            valued |= !strcmp(arg, *f);
        for (const char *const *f = o->switches; f && *f; f++)
            plain |= !strcmp(arg, *f);
        if (!valued && !plain) {
            fprintf(stderr, "tessera generate: unknown option '%s' (see --help)\n", arg);
            return 2;
        }
        if (valued && i + 1 >= argc) {
            fprintf(stderr, "tessera generate: %s needs a value\n", arg);
            return 2;
        }
        int rc = o->set(args, arg, valued ? argv[++i] : NULL);
        if (rc)
            return rc;
    }
    return 0;
}

int check_output_name(const char *out)
{
    const char *dot = strrchr(out, '.');
    if (dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        return 0;
    fprintf(stderr, "tessera generate: -o %s: the name must end in .png, .jpg or .jpeg\n", out);
    return 2;
}

/* Returns 0, 2 for bad usage, -1 after --help. */
static int parse_args(int argc, char **argv, gen_args *a)
{
    static const char *const valued[] = {
        "-m", "--model", "--vae", "--clip-l", "--clip-g", "--prediction", "--unet-heads", "--clip-heads",
        "-p", "--prompt", "-n", "--negative-prompt", "--clip-skip", "-W", "--width", "-H", "--height",
        "--steps", "--cfg", "--sampler", "--scheduler", "--seed", "--batch-count", "--init-image",
        "--strength", "--mask", "--mask-blur", "--image-cfg", "-o", "--output", "--threads", NULL};
    static const char *const switches[] = {"--instruct", NULL};
    static const gen_options sd_options = {generate_usage, valued, switches, set_option};
    *a = (gen_args){.negative = "", .sampler = "dpmpp_2m", .scheduler = "karras", .steps = 20, .batch = 1,
                    .cfg = -1, .strength = -1, .mask_blur = 4, .image_cfg = 1.5};
    int rc = parse_options(argc, argv, &sd_options, a);
    if (rc)
        return rc;
    const char *missing = !a->files.model ? "-m MODEL" : !a->prompt ? "-p PROMPT" : !a->out ? "-o OUT" : NULL;
    if (missing) {
        fprintf(stderr, "tessera generate: %s is required (see --help)\n", missing);
        return 2;
    }
    if ((a->mask || a->instruct) && !a->init_image) {
        fprintf(stderr, "tessera generate: %s needs --init-image\n", a->mask ? "--mask" : "--instruct");
        return 2;
    }
    if (check_output_name(a->out))
        return 2;
    if (a->mask && a->instruct) {
        fprintf(stderr, "tessera generate: --mask and --instruct cannot be combined\n");
        return 2;
    }
    return 0;
}

/* ---- progress ----------------------------------------------------------------- */

static double now(void)
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

int gen_io_prepare(gen_io *io, const gen_io_args *a, int def_size, int mult)
{
    io->width = a->width ? a->width : def_size;
    io->height = a->height ? a->height : def_size;
    int rc = 0;
    if (a->init_image) {
        rc = load_image(a->init_image, &io->in, &io->image);
        if (rc == 0 && ((a->width && a->width != io->in.width) || (a->height && a->height != io->in.height)))
            rc = ts_fail(TS_ERR_ARG, "--width/--height must match the init image (%dx%d) or be left out",
                         io->in.width, io->in.height);
        io->width = io->in.width;
        io->height = io->in.height;
    }
    rc = rc ? rc : check_size(a->init_image ? "init image width" : "width", io->width, mult);
    rc = rc ? rc : check_size(a->init_image ? "init image height" : "height", io->height, mult);
    if (rc == 0 && a->mask)
        rc = load_mask(a->mask, &io->in, a->mask_blur, &io->mask);
    if (rc == 0) {
        io->pixels = malloc((size_t)3 * io->width * io->height * sizeof *io->pixels);
        /* Address space only: pages are committed as a step touches them. */
        io->arena = ts_arena_create((size_t)64 << 30);
        if (!io->pixels || !io->arena)
            rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    return rc;
}

void gen_io_free(gen_io *io)
{
    ts_arena_destroy(io->arena);
    free(io->pixels);
    free(io->image);
    free(io->mask);
    ts_image_free(&io->in);
}

typedef struct {
    ts_sd_model *model;
    ts_sd_request req;
    ts_sd_prompts prompts;
    const gen_args *args;
    gen_io io;
} gen_state;

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
    rc = rc ? rc : ts_scheduler_from_name(a->scheduler, &r->scheduler);
    rc = rc ? rc : ts_sd_check_mode(m, r->mode);
    gen_io_args io = {a->init_image, a->mask, a->mask_blur, a->width, a->height};
    rc = rc ? rc : gen_io_prepare(&s->io, &io, m->native_size, m->size_multiple);
    r->width = s->io.width;
    r->height = s->io.height;
    r->image = s->io.image;
    r->mask = s->io.mask;
    return rc;
}

int write_result(const gen_output *o, const float *pixels, int index, uint64_t seed, const char *text)
{
    char path[4096];
    ts_image out = {0};
    int rc = ts_image_from_planar(pixels, 3, o->width, o->height, 8, TS_RANGE_SIGNED, &out);
    if (rc)
        return rc;
    if (o->mask)
        compose(&out, o->in, o->mask);
    output_path(o->out, index, o->count, path, sizeof path);
    ts_image_write_opts opts = {.parameters = text};
    rc = text ? ts_image_write(path, &out, &opts) : TS_ERR_NOMEM;
    if (rc == 0)
        fprintf(stderr, "wrote %s (%dx%d, seed %llu)\n", path, o->width, o->height, (unsigned long long)seed);
    ts_image_free(&out);
    return rc;
}

static int write_image(const gen_args *a, gen_state *s, int index, uint64_t seed)
{
    const ts_sd_request *r = &s->req;
    gen_output o = {a->out, a->batch, r->width, r->height, &s->io.in, r->mode == TS_SD_INPAINT ? s->io.mask : NULL};
    char *text = infotext(a, r, seed);
    int rc = write_result(&o, s->io.pixels, index, seed, text);
    free(text);
    return rc;
}

/* seed when has_seed; else a random 32-bit one, printed as "seed: N". */
static uint64_t pick_seed(int has_seed, uint64_t seed)
{
    if (has_seed)
        return seed;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)time(NULL);
    seed &= 0xffffffffu; /* what the UIs accept and show */
    fprintf(stderr, "seed: %llu\n", (unsigned long long)seed);
    return seed;
}

int run_batch(int count, int has_seed, uint64_t seed, gen_one_fn one, void *ctx)
{
    seed = pick_seed(has_seed, seed);
    progress_bar bar = {.images = count, .tty = isatty(STDERR_FILENO)};
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        bar.image = i;
        bar.start = now();
        rc = one(ctx, i, seed + (uint64_t)i, &bar);
    }
    return rc;
}

int report_failure(int rc)
{
    if (rc >= 0)
        return 0;
    fprintf(stderr, "tessera generate: %s\n", ts_error_message());
    return 1;
}

static int generate_one(void *ctx, int index, uint64_t seed, progress_bar *bar)
{
    gen_state *s = ctx;
    s->req.seed = seed;
    s->req.progress = draw_progress;
    s->req.progress_ctx = bar;
    int rc = ts_sd_generate(s->model, &s->req, s->io.arena, s->io.pixels);
    return rc ? rc : write_image(s->args, s, index, seed);
}

static int run(const gen_args *a)
{
    gen_state s = {.args = a};
    int rc = prepare(a, &s);
    rc = rc ? rc : ts_sd_encode_prompts(s.model, a->prompt, a->negative, a->clip_skip, &s.prompts);
    s.req.cond = s.prompts.cond;
    s.req.uncond = s.prompts.uncond;
    rc = rc ? rc : run_batch(a->batch, a->has_seed, a->seed, generate_one, &s);
    ts_sd_prompts_free(&s.prompts);
    gen_io_free(&s.io);
    ts_sd_free(s.model);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    if (generate_is_flux(argc, argv))
        return cmd_generate_flux(argc, argv);
    gen_args a;
    int status = parse_args(argc, argv, &a);
    if (status)
        return status < 0 ? 0 : status;
    ts_threads_set(a.threads);
    return report_failure(run(&a));
}
