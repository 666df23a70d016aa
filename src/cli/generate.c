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
 * A run is never lost: Ctrl-C or SIGTERM stops it at the next step boundary, and a
 * failure once sampling has begun (the VAE decode's included) stops it too; either
 * way OUT.state receives the settings and where the run stood, and
 * `--resume OUT.state` finishes it with the file the uninterrupted run writes.  The
 * environment variable TESSERA_STOP_AFTER_STEP=N (for tests) raises SIGINT after
 * the Nth step the process makes (passes and images counted together): a Ctrl-C at a
 * known moment, which a signal sent from outside is not.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
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
#include "pipeline/highres.h"
#include "pipeline/upscale.h"
#include "pipeline/run_state.h"
#include "pipeline/sd.h"
#include "pipeline/sd_text.h"

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: tessera generate -m MODEL -p PROMPT -o OUT [options]\n"
            "       tessera generate --resume OUT.state [--threads N]\n\n"
            "Stable Diffusion 1.x, 2.x and SDXL (SD3 / SD3.5 and Flux.1: tessera generate -m FILE --help).\n"
            "The mode follows from the inputs:\n"
            "  txt2img      (no image)\n"
            "  img2img      --init-image IMG [--strength S]\n"
            "  inpaint      --init-image IMG --mask MASK [--mask-blur R] [--strength S]\n"
            "  edit         --init-image IMG --instruct [--image-cfg S]  (InstructPix2Pix models)\n\n"
            "model:\n"
            "  -m, --model FILE        checkpoint (.safetensors or .gguf) with the UNet\n"
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
            "high resolution (canvases beyond the model's native size):\n"
            "      --tile N            tile side in latent pixels (image pixels / 8); default: the\n"
            "                          model's native size once the canvas exceeds it; 0 = untiled\n"
            "      --tile-overlap N    latent pixels neighbouring tiles share (default tile/4)\n"
            "      --tile-batch N      tiles per UNet call (default 2)\n"
            "      --tile-blend B      uniform (MultiDiffusion) or gaussian (Mixture of Diffusers;\n"
            "                          default)\n"
            "      --hires auto|on|off two passes for text-to-image: the native size first, then the\n"
            "                          upscaled latent refined by tiled img2img (auto: on when the\n"
            "                          canvas has over twice the native area); see docs/highres.md\n"
            "      --hires-strength S  refinement denoise (default 0.6)\n"
            "      --hires-upscale U   how the first pass reaches the canvas: latent (default: its\n"
            "                          latent resized), pixel (decoded, resized, encoded), or an\n"
            "                          UpscalerJS model (slim, medium, thick, default; installed by\n"
            "                          scripts/fetch-models.sh) enlarging the picture first\n"
            "      --hires-size WxH    first pass size (default: native area, canvas aspect)\n"
            "      --skip-residual A   DemoFusion skip residual exponent (default 3; 0 = off)\n"
            "      --region \"X,Y,W,H:PROMPT\"\n"
            "                          a prompt for a rectangle (pixels, or fractions of the canvas\n"
            "                          when all four are at most 1); repeatable\n"
            "      --region-mask \"FILE:PROMPT\"\n"
            "                          a prompt where the mask image is white; repeatable\n"
            "      --vae-tile N        VAE tile side in latent pixels (default 64 once the image\n"
            "                          exceeds 1024x1024; 0 = untiled); exact, seam-free\n"
            "output:\n"
            "  -o, --output OUT        .png or .jpg; with --batch-count N > 1: OUT-1.png ... OUT-N.png\n"
            "      --threads N         worker threads (default: every core)\n"
            "      --resume FILE       finish the run that FILE (OUT.state) holds, with its settings:\n"
            "                          the image the uninterrupted run gives; FILE is removed then\n\n"
            "Inpainting repaints where the mask is white; pixels where the (blurred) mask is 0 are\n"
            "copied from the input unchanged.  The mask must have the image's size.\n\n"
            "Ctrl-C or SIGTERM stops at the end of the current step (exit 130, or 143 for SIGTERM;\n"
            "a second Ctrl-C quits at once); so does a failure once sampling has begun (exit 1).\n"
            "The run is then kept in OUT.state for --resume.  When the VAE decode does not fit in\n"
            "memory the exact tiled decode takes over.  TESSERA_MAX_ARENA=SIZE (bytes, or with K,\n"
            "M or G) caps the activation memory.\n");
}

#define MAX_REGIONS 16

/* A --region or --region-mask: a rectangle (fractions when frac) or a mask file. */
typedef struct {
    double x, y, w, h;
    int frac;
    const char *spec, *mask_file, *prompt; /* spec: the option's value as given */
} region_arg;

typedef struct {
    ts_sd_files files;
    const char *prompt, *negative, *out, *init_image, *mask, *sampler, *scheduler, *hires, *resume;
    const char *hires_upscale; /* latent, pixel, or an UpscalerJS model name */
    int width, height, steps, batch, clip_skip, threads, instruct, has_seed;
    int first_image; /* a resumed batch continues at this image */
    int hires_w, hires_h, region_count;
    gen_tiling_args tiling;
    double cfg, strength, mask_blur, image_cfg, hires_strength, skip_residual;
    uint64_t seed;
    region_arg regions[MAX_REGIONS];
} gen_args;

/* "X,Y,W,H:PROMPT" or, for a mask, "FILE:PROMPT". */
static int parse_region(gen_args *a, const char *val, int is_mask)
{
    if (a->region_count == MAX_REGIONS) {
        fprintf(stderr, "tessera generate: at most %d regions\n", MAX_REGIONS);
        return -1;
    }
    const char *colon = strchr(val, ':');
    if (!colon || colon == val || !colon[1])
        return -1;
    region_arg *g = &a->regions[a->region_count];
    *g = (region_arg){.spec = val, .prompt = colon + 1};
    if (is_mask) {
        char *file = strndup(val, (size_t)(colon - val));
        if (!file)
            return -1;
        g->mask_file = file; /* freed by cmd_generate */
    } else {
        char tail;
        if (sscanf(val, "%lf,%lf,%lf,%lf%c", &g->x, &g->y, &g->w, &g->h, &tail) != 5 || tail != ':' ||
            g->x < 0 || g->y < 0 || !(g->w > 0) || !(g->h > 0))
            return -1;
        g->frac = g->x <= 1 && g->y <= 1 && g->w <= 1 && g->h <= 1;
    }
    a->region_count++;
    return 0;
}

static int parse_size(const char *val, int *w, int *h)
{
    char tail;
    return sscanf(val, "%dx%d%c", w, h, &tail) == 2 && *w > 0 && *h > 0 ? 0 : -1;
}

/* The high-resolution options; returns 1 when arg is not one of them. */
static int set_highres_option(gen_args *a, const char *arg, const char *val, int *bad)
{
    if (!set_tiling_option(&a->tiling, arg, val, bad))
        return 0;
    if (!strcmp(arg, "--hires")) {
        a->hires = val;
        *bad = strcmp(val, "auto") && strcmp(val, "on") && strcmp(val, "off");
    } else if (!strcmp(arg, "--hires-upscale")) {
        a->hires_upscale = val;
        *bad = strcmp(val, "latent") && strcmp(val, "pixel") && strcmp(val, "slim") && strcmp(val, "medium") &&
               strcmp(val, "thick") && strcmp(val, "default");
    } else if (!strcmp(arg, "--hires-strength"))
        *bad = parse_double(val, 1e-6, 1.0, &a->hires_strength);
    else if (!strcmp(arg, "--hires-size"))
        *bad = parse_size(val, &a->hires_w, &a->hires_h);
    else if (!strcmp(arg, "--skip-residual"))
        *bad = parse_double(val, 0.0, 100.0, &a->skip_residual);
    else if (!strcmp(arg, "--region") || !strcmp(arg, "--region-mask"))
        *bad = parse_region(a, val, !strcmp(arg, "--region-mask"));
    else
        return 1;
    return 0;
}

/* One valued option (known to parse_args' list); returns 0, or 2 for a bad value. */
static int set_option(gen_args *a, const char *arg, const char *val)
{
    int bad = 0;
    if (!set_highres_option(a, arg, val, &bad))
        return bad ? bad_value(arg, val) : 0;
    if (!strcmp(arg, "-m") || !strcmp(arg, "--model"))
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
    else if (!strcmp(arg, "--resume"))
        a->resume = val;
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

static int is_valued(const char *arg)
{
    static const char *const valued[] = {
        "-m", "--model", "--vae", "--clip-l", "--clip-g", "--prediction", "--unet-heads", "--clip-heads",
        "-p", "--prompt", "-n", "--negative-prompt", "--clip-skip", "-W", "--width", "-H", "--height",
        "--steps", "--cfg", "--sampler", "--scheduler", "--seed", "--batch-count", "--init-image",
        "--strength", "--mask", "--mask-blur", "--image-cfg", "-o", "--output", "--threads", "--resume",
        GEN_TILING_FLAGS, "--hires", "--hires-strength", "--hires-upscale",
        "--hires-size", "--skip-residual", "--region", "--region-mask"};
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
        if (!strcmp(arg, valued[k]))
            return 1;
    return 0;
}

static void set_defaults(gen_args *a)
{
    *a = (gen_args){.negative = "", .sampler = "dpmpp_2m", .scheduler = "karras", .steps = 20, .batch = 1,
                    .cfg = -1, .strength = -1, .mask_blur = 4, .image_cfg = 1.5, .hires = "auto",
                    .tiling = gen_tiling_defaults(), .hires_strength = 0.6, .skip_residual = 3,
                    .hires_upscale = "latent"};
}

/* What the options must satisfy together; 0 or 2. */
static int check_args(const gen_args *a)
{
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

/* Returns 0, 2 for bad usage, -1 after --help. */
static int parse_args(int argc, char **argv, gen_args *a)
{
    set_defaults(a);
    int others = 0; /* options besides --threads and --resume */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            generate_usage(stdout);
            return -1;
        }
        if (!strcmp(arg, "--instruct")) {
            a->instruct = 1;
            others++;
            continue;
        }
        if (arg[0] != '-') {
            fprintf(stderr, "tessera generate: unexpected argument '%s' (see --help)\n", arg);
            return 2;
        }
        if (!is_valued(arg)) {
            fprintf(stderr, "tessera generate: unknown option '%s' (see --help)\n", arg);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tessera generate: %s needs a value\n", arg);
            return 2;
        }
        others += strcmp(arg, "--threads") && strcmp(arg, "--resume");
        int rc = set_option(a, arg, argv[++i]);
        if (rc)
            return rc;
    }
    if (a->resume && others) {
        fprintf(stderr, "tessera generate: --resume takes its settings from the file; only --threads may be given\n");
        return 2;
    }
    return a->resume ? 0 : check_args(a);
}

/* ---- run state ---------------------------------------------------------------- */

/* path made absolute (against the working directory), so that a resumed run finds
 * its files from anywhere, then ":" and tail when a tail is given (a --region-mask's
 * prompt). */
static void add_path_prefixed(cJSON *o, const char *key, const char *path, const char *tail)
{
    char cwd[4096], buf[12288];
    int absolute = path[0] == '/' || !getcwd(cwd, sizeof cwd);
    snprintf(buf, sizeof buf, "%s%s%s%s%s", absolute ? "" : cwd, absolute ? "" : "/", path, tail ? ":" : "",
             tail ? tail : "");
    cJSON_AddStringToObject(o, key, buf);
}

static void add_path(cJSON *o, const char *key, const char *path)
{
    if (path)
        add_path_prefixed(o, key, path, NULL);
}

static void add_number(cJSON *o, const char *key, const char *fmt, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    cJSON_AddStringToObject(o, key, buf);
}

/* The high-resolution options that were given (the others resolve the same again). */
static void add_highres_settings(cJSON *o, const gen_args *a)
{
    const struct {
        const char *key;
        int value;
    } ints[] = {{"tile", a->tiling.tile}, {"tile-overlap", a->tiling.overlap}, {"vae-tile", a->tiling.vae_tile}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].value >= 0)
            add_number(o, ints[i].key, "%.0f", ints[i].value);
    add_number(o, "tile-batch", "%.0f", a->tiling.batch);
    cJSON_AddStringToObject(o, "tile-blend", ts_tile_blend_name(a->tiling.blend));
    cJSON_AddStringToObject(o, "hires", a->hires);
    cJSON_AddStringToObject(o, "hires-upscale", a->hires_upscale);
    add_number(o, "hires-strength", "%.17g", a->hires_strength);
    add_number(o, "skip-residual", "%.17g", a->skip_residual);
    if (a->hires_w) {
        char size[32];
        snprintf(size, sizeof size, "%dx%d", a->hires_w, a->hires_h);
        cJSON_AddStringToObject(o, "hires-size", size);
    }
    /* Repeated keys, in order: a region list is a repeated option. */
    for (int k = 0; k < a->region_count; k++) {
        if (a->regions[k].mask_file)
            add_path_prefixed(o, "region-mask", a->regions[k].mask_file, a->regions[k].prompt);
        else
            cJSON_AddStringToObject(o, "region", a->regions[k].spec);
    }
}

/* The settings of image `index` of a run as the options that give them (long names
 * without the dashes, values as typed), with what the run resolved (seed, size,
 * guidance, strength) written out; so --resume repeats the run exactly. */
static char *settings_json(const gen_args *a, const ts_sd_request *r, uint64_t seed, int index)
{
    cJSON *o = cJSON_CreateObject();
    add_path(o, "model", a->files.model);
    add_path(o, "vae", a->files.vae);
    add_path(o, "clip-l", a->files.clip_l);
    add_path(o, "clip-g", a->files.clip_g);
    add_path(o, "init-image", a->init_image);
    add_path(o, "mask", a->mask);
    add_path(o, "output", a->out);
    cJSON_AddStringToObject(o, "prompt", a->prompt);
    cJSON_AddStringToObject(o, "negative-prompt", a->negative);
    cJSON_AddStringToObject(o, "sampler", a->sampler);
    cJSON_AddStringToObject(o, "scheduler", a->scheduler);
    if (a->files.prediction != TS_SD_PRED_AUTO)
        cJSON_AddStringToObject(o, "prediction", a->files.prediction == TS_SD_PRED_V ? "v" : "eps");
    if (a->instruct)
        cJSON_AddStringToObject(o, "instruct", "yes");
    const struct {
        const char *key;
        int value;
    } ints[] = {{"unet-heads", a->files.unet.num_heads}, {"clip-heads", a->files.clip_heads},
                {"clip-skip", a->clip_skip}, {"threads", a->threads}, {"width", r->width}, {"height", r->height},
                {"steps", r->steps}, {"batch-count", a->batch}, {"batch-index", index}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].value)
            add_number(o, ints[i].key, "%.0f", ints[i].value);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
    cJSON_AddStringToObject(o, "seed", buf);
    add_number(o, "cfg", "%.17g", r->cfg);
    add_number(o, "strength", "%.17g", r->strength);
    add_number(o, "mask-blur", "%.17g", a->mask_blur);
    add_number(o, "image-cfg", "%.17g", r->image_cfg);
    add_highres_settings(o, a);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return json;
}

/* One setting of a run state, applied as its option would be (so a state file gets
 * the command line's validation); 0, or 2 after the message. */
static int apply_setting(const cJSON *e, const char *path, gen_args *a)
{
    char flag[64];
    const char *key = e->string, *value = e->valuestring;
    snprintf(flag, sizeof flag, "--%.60s", key);
    if (!cJSON_IsString(e) || strlen(key) > 60 || !strcmp(key, "resume") ||
        (strcmp(key, "instruct") && strcmp(key, "batch-index") && !is_valued(flag))) {
        fprintf(stderr, "tessera generate: %s: the setting '%.60s' is not one this version knows\n", path, key);
        return 2;
    }
    if (!strcmp(key, "instruct"))
        a->instruct = 1;
    else if (!strcmp(key, "batch-index"))
        return parse_int(value, 0, 9999, &a->first_image) ? bad_value(flag, value) : 0;
    else
        return set_option(a, flag, value);
    return 0;
}

/* The run's settings back from its state (st->params): in a, whose strings point
 * into *tree; --threads given with --resume wins over the state's. */
static int restore_settings(const ts_run_state *st, const char *path, gen_args *a, cJSON **tree)
{
    int threads = a->threads;
    set_defaults(a);
    a->resume = path;
    *tree = cJSON_Parse(st->params);
    const cJSON *e;
    int rc = 0;
    cJSON_ArrayForEach(e, *tree)
    {
        rc = apply_setting(e, path, a);
        if (rc)
            return rc;
    }
    if (threads)
        a->threads = threads;
    rc = check_args(a);
    if (rc == 0 && a->first_image >= a->batch) {
        fprintf(stderr, "tessera generate: %s: image %d of a batch of %d\n", path, a->first_image + 1, a->batch);
        rc = 2;
    }
    return rc;
}

/* ---- progress ----------------------------------------------------------------- */


/* ---- images ------------------------------------------------------------------- */

/* ---- the run ------------------------------------------------------------------ */

static char *infotext(const gen_args *a, const ts_sd_request *r, const ts_sd_highres *highres, uint64_t seed)
{
    char icfg[32], tiling[64], hires[64];
    snprintf(icfg, sizeof icfg, "%g", r->image_cfg);
    ts_infotext_pair extra[4];
    int n = 0;
    gen_tiling_pair(&r->tiling, tiling, sizeof tiling, extra, &n);
    if (highres) {
        snprintf(hires, sizeof hires, "%g, skip residual %g", highres->strength, highres->skip_residual);
        extra[n++] = (ts_infotext_pair){"Hires strength", hires};
        extra[n++] = (ts_infotext_pair){"Hires upscaler", a->hires_upscale};
    }
    if (r->mode == TS_SD_INSTRUCT)
        extra[n++] = (ts_infotext_pair){"Image CFG scale", icfg};
    gen_params p = {.prompt = a->prompt, .negative = a->negative, .model = a->files.model, .steps = r->steps,
                    .width = r->width, .height = r->height, .clip_skip = a->clip_skip,
                    .inpaint = r->mode == TS_SD_INPAINT, .sampler = r->sampler, .scheduler = r->scheduler,
                    .cfg = r->cfg, .mask_blur = a->mask_blur, .extra = extra, .extra_count = n,
                    .strength = r->mode == TS_SD_IMG2IMG || r->mode == TS_SD_INPAINT ? r->strength : 0};
    return gen_infotext(&p, seed);
}

typedef struct {
    ts_sd_model *model;
    ts_sd_request req;
    gen_io io;
    ts_vae_tiling vae_tiling;
    ts_sd_highres highres;
    int use_highres;
    ts_rdn *upscaler; /* --hires-upscale MODEL */
    float *region_masks; /* [region_count, H, W] */
    ts_sd_region regions[MAX_REGIONS];
    ts_sd_prompts region_prompts[MAX_REGIONS];
} gen_state;

/* Region weight planes at the canvas's size: rectangles, or mask images resized. */
static int build_region_masks(const gen_args *a, gen_state *s)
{
    int W = s->req.width, H = s->req.height;
    size_t plane = (size_t)W * H;
    s->region_masks = calloc((size_t)a->region_count * plane, sizeof(float));
    if (!s->region_masks)
        return ts_fail(TS_ERR_NOMEM, "out of memory for %d region masks", a->region_count);
    for (int k = 0; k < a->region_count; k++) {
        const region_arg *g = &a->regions[k];
        float *m = s->region_masks + (size_t)k * plane;
        s->regions[k].mask = m;
        if (g->mask_file) {
            ts_image raw = {0}, gray = {0};
            int rc = ts_image_read(g->mask_file, &raw);
            rc = rc ? rc : ts_image_convert(&raw, 1, 8, &gray);
            float *src = rc ? NULL : malloc(sizeof *src * (size_t)gray.width * gray.height);
            if (rc == 0 && !src)
                rc = ts_fail(TS_ERR_NOMEM, "out of memory");
            if (rc == 0) {
                ts_image_to_planar(&gray, TS_RANGE_UNIT, src);
                ts_resize_bilinear(src, gray.height, gray.width, m, H, W);
            }
            free(src);
            ts_image_free(&raw);
            ts_image_free(&gray);
            if (rc)
                return rc;
            continue;
        }
        double sx = g->frac ? W : 1, sy = g->frac ? H : 1;
        int x0 = (int)lround(g->x * sx), y0 = (int)lround(g->y * sy);
        int x1 = (int)lround((g->x + g->w) * sx), y1 = (int)lround((g->y + g->h) * sy);
        x1 = x1 > W ? W : x1;
        y1 = y1 > H ? H : y1;
        if (x0 >= x1 || y0 >= y1)
            return ts_fail(TS_ERR_ARG, "region %d (%g,%g,%g,%g) lies outside the %dx%d canvas", k + 1, g->x, g->y,
                           g->w, g->h, W, H);
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                m[(size_t)y * W + x] = 1.0f;
    }
    return 0;
}

/* The UpscalerJS model `name` at the scale nearest the first pass's enlargement. */
static int load_upscaler(const char *name, double ratio, ts_rdn **out)
{
    char path[4096];
    int scale = ratio > 3 ? 4 : 2;
    int rc = ts_upscaler_model_path(NULL, name, scale, path, sizeof path);
    return rc ? rc : ts_rdn_load(path, out);
}

/* Tiles, VAE tiles and the two-pass mode, from the flags or the canvas size. */
static int configure_highres(const gen_args *a, gen_state *s)
{
    ts_sd_request *r = &s->req;
    const ts_sd_model *m = s->model;
    int native = m->native_size;
    gen_tiling_resolve(&a->tiling, r->width, r->height, native, &r->tiling, &s->vae_tiling, &r->vae_tiling);
    s->highres = ts_sd_highres_default();
    s->highres.strength = a->hires_strength;
    s->highres.skip_residual = a->skip_residual;
    s->highres.width = a->hires_w;
    s->highres.height = a->hires_h;
    s->highres.upscale = strcmp(a->hires_upscale, "latent") ? TS_HIRES_PIXEL : TS_HIRES_LATENT;
    long area = (long)r->width * r->height, native_area = (long)native * native;
    s->use_highres = r->mode == TS_SD_TXT2IMG &&
                     (!strcmp(a->hires, "on") || (!strcmp(a->hires, "auto") && area > 2 * native_area));
    if (!strcmp(a->hires, "on") && r->mode != TS_SD_TXT2IMG)
        return ts_fail(TS_ERR_ARG, "--hires on is for text-to-image (no --init-image)");
    if (s->use_highres && s->highres.upscale == TS_HIRES_PIXEL && strcmp(a->hires_upscale, "pixel")) {
        int w1 = a->hires_w, h1 = a->hires_h;
        if (!w1)
            ts_sd_highres_first_size(m, r->width, r->height, &w1, &h1);
        int rc = load_upscaler(a->hires_upscale, (double)r->width / w1, &s->upscaler);
        if (rc)
            return rc;
        s->highres.upscaler = s->upscaler;
    }
    int rc = a->region_count ? build_region_masks(a, s) : 0;
    return rc ? rc : describe_tiling(&r->tiling, r->width, r->height, m->size_multiple / 8,
                                     s->use_highres ? ", after an untiled first pass" : "");
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
    rc = rc ? rc : ts_scheduler_from_name(a->scheduler, &r->scheduler);
    rc = rc ? rc : ts_sd_check_mode(m, r->mode);
    gen_io_args io = {a->init_image, a->mask, a->mask_blur, a->width, a->height};
    rc = rc ? rc : gen_io_prepare(&s->io, &io, m->native_size, m->size_multiple);
    r->width = s->io.width;
    r->height = s->io.height;
    r->image = s->io.image;
    r->mask = s->io.mask;
    rc = rc ? rc : configure_highres(a, s);
    return rc;
}

static int write_image(const gen_args *a, gen_state *s, int index, uint64_t seed)
{
    const ts_sd_request *r = &s->req;
    gen_output o = {a->out, a->batch, r->width, r->height, &s->io.in, r->mode == TS_SD_INPAINT ? s->io.mask : NULL};
    char *text = infotext(a, r, s->use_highres ? &s->highres : NULL, seed);
    int rc = write_result(&o, s->io.pixels, index, seed, text);
    free(text);
    return rc;
}

/* Where a stopped run is kept, and how that went. */
typedef struct {
    char *settings; /* settings_json of the image being made */
    char path[4096];
    char why[512]; /* the message the run stopped with */
    int saved;     /* 1: saved; -1: saving failed (the message says why) */
} stop_ctx;

static void save_run(void *ctx, const ts_run_state *state)
{
    stop_ctx *c = ctx;
    snprintf(c->why, sizeof c->why, "%s", ts_error_message());
    ts_run_state s = *state;
    s.params = c->settings;
    c->saved = ts_run_state_save(c->path, &s) == 0 ? 1 : -1;
}

/* One line on why the run stopped and how to resume it; returns the exit status. */
static int report_stop(const stop_ctx *c, int rc)
{
    if (c->saved > 0)
        fprintf(stderr, "tessera generate: %s; resume with: tessera generate --resume %s\n", c->why, c->path);
    else if (c->saved < 0)
        fprintf(stderr, "tessera generate: %s; the run could not be kept: %s\n", c->why, ts_error_message());
    else
        fprintf(stderr, "tessera generate: %s\n", ts_error_message());
    return rc == TS_ERR_CANCELLED ? 128 + (stop_signal_caught() ? stop_signal_caught() : SIGINT) : 1;
}

/* Makes the images (from the state `from` on, when resuming); returns the exit status. */
static int run(const gen_args *a, const ts_run_state *from)
{
    gen_state s = {0};
    ts_sd_prompts prompts = {0};
    stop_ctx stop = {0};
    snprintf(stop.path, sizeof stop.path, "%s.state", a->out);
    int rc = prepare(a, &s);
    rc = rc ? rc : ts_sd_encode_prompts(s.model, a->prompt, a->negative, a->clip_skip, &prompts);
    uint64_t seed = rc == 0 ? pick_seed(a->has_seed, a->seed) : 0;
    progress_bar bar = progress_bar_for(a->batch);
    for (int k = 0; rc == 0 && k < a->region_count; k++) {
        rc = ts_sd_encode_prompts(s.model, a->regions[k].prompt, a->negative, a->clip_skip, &s.region_prompts[k]);
        s.regions[k].cond = s.region_prompts[k].cond;
    }
    s.req.regions = s.regions;
    s.req.region_count = a->region_count;
    s.req.cond = prompts.cond;
    s.req.uncond = prompts.uncond;
    s.req.progress = draw_progress;
    s.req.progress_ctx = &bar;
    s.req.resume = (ts_sd_resume){.from = from, .on_stop = save_run, .ctx = &stop};
    for (int i = a->first_image; i < a->batch && rc == 0; i++) {
        s.req.seed = seed + (uint64_t)i;
        bar.image = i;
        bar.first = s.req.resume.from ? from->step : 0;
        bar.start = now();
        free(stop.settings);
        stop.settings = settings_json(a, &s.req, seed, i);
        rc = stop.settings ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory");
        if (rc == 0)
            rc = s.use_highres ? ts_sd_generate_highres(s.model, &s.req, &s.highres, s.io.arena, s.io.pixels)
                               : ts_sd_generate(s.model, &s.req, s.io.arena, s.io.pixels);
        rc = rc ? rc : write_image(a, &s, i, s.req.seed);
        s.req.resume.from = NULL;
    }
    ts_sd_prompts_free(&prompts);
    for (int k = 0; k < a->region_count; k++)
        ts_sd_prompts_free(&s.region_prompts[k]);
    free(s.region_masks);
    ts_rdn_free(s.upscaler);
    gen_io_free(&s.io);
    ts_sd_free(s.model);
    free(stop.settings);
    if (rc == 0 && a->resume)
        unlink(a->resume);
    return rc ? report_stop(&stop, rc) : 0;
}

int cmd_generate(int argc, char **argv)
{
    if (generate_is_flux(argc, argv))
        return cmd_generate_flux(argc, argv);
    if (generate_is_sd3(argc, argv))
        return cmd_generate_sd3(argc, argv);
    gen_args a;
    int status = parse_args(argc, argv, &a);
    if (status)
        return status < 0 ? 0 : status;
    ts_run_state from = {0};
    cJSON *settings = NULL;
    if (a.resume && ts_run_state_load(a.resume, &from)) {
        fprintf(stderr, "tessera generate: %s\n", ts_error_message());
        return 1;
    }
    if (a.resume)
        status = restore_settings(&from, a.resume, &a, &settings);
    if (status == 0) {
        ts_threads_set(a.threads);
        catch_stop_signals();
        status = run(&a, a.resume ? &from : NULL);
    }
    cJSON_Delete(settings);
    ts_run_state_free(&from);
    for (int k = 0; k < a.region_count; k++)
        free((char *)a.regions[k].mask_file);
    return status;
}
