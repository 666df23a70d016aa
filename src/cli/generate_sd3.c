/*
 * tessera generate for SD3 / SD3.5 checkpoints: txt2img, img2img (--init-image) and
 * inpainting (--mask) over pipeline/sd3.h.
 *
 * generate.c hands over when -m names an SD3 file, so users keep one command and the
 * flags they know from SD; the defaults are SD3's own: 1024 pixels, CFG 5, DPM++ 2M
 * on the "normal" schedule (the reference's sigmas), flow shift 3.  Text encoders
 * come from the checkpoint or from --clip-l / --clip-g / --t5xxl; a bundle without
 * T5 conditions on CLIP alone, as the reference allows.  There is no InstructPix2Pix
 * SD3, nor tiling or resume (those are the UNet pipeline's).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/generate_common.h"
#include "core/error.h"
#include "core/threads.h"
#include "pipeline/sd3.h"

#define SD3_DEFAULT_CFG 5.0

static void sd3_usage(FILE *f)
{
    fprintf(f,
            "usage: tessera generate -m SD3_MODEL -p PROMPT -o OUT [options]\n\n"
            "Stable Diffusion 3 / 3.5 (medium, large, large turbo).  The mode follows from the inputs:\n"
            "  txt2img      (no image)\n"
            "  img2img      --init-image IMG [--strength S]\n"
            "  inpaint      --init-image IMG --mask MASK [--mask-blur R] [--strength S]\n\n"
            "model:\n"
            "  -m, --model FILE        checkpoint (.safetensors or .gguf) with the MMDiT\n"
            "      --vae FILE          separate 16-channel VAE (default: the checkpoint's)\n"
            "      --clip-l FILE       separate CLIP-L text encoder (default: the checkpoint's)\n"
            "      --clip-g FILE       separate OpenCLIP bigG text encoder (default: the checkpoint's)\n"
            "      --t5xxl FILE        separate T5-XXL encoder (default: the checkpoint's; without\n"
            "                          one, SD3 runs on CLIP alone)\n"
            "      --clip-heads N      CLIP head count (default 64-wide heads): for test models\n"
            "prompt:\n"
            "  -p, --prompt TEXT       what to draw; A1111 syntax for CLIP ((word:1.2), [word], BREAK);\n"
            "                          T5 reads the words with the emphasis removed\n"
            "  -n, --negative-prompt TEXT\n"
            "      --clip-skip N       CLIP layer to read, counted from the end (default: penultimate)\n"
            "sampling:\n"
            "  -W, --width N, -H, --height N\n"
            "                          multiples of 16; default 1024, or the input image's size\n"
            "      --steps N           default 20\n"
            "      --cfg S             guidance scale (default 5; 1 skips the negative prompt)\n"
            "      --sampler NAME      euler, euler_a, heun, dpmpp_2m (default), dpmpp_2m_sde, lcm\n"
            "      --scheduler NAME    normal (default), karras, exponential, sgm_uniform, simple\n"
            "      --seed N            default: random (printed)\n"
            "      --batch-count N     N images, seeds SEED, SEED+1, ... (default 1)\n"
            "      --strength S        img2img / inpaint denoise in (0, 1]; default 0.75 (inpaint 1)\n"
            "      --mask-blur R       Gaussian blur of the mask, sigma R pixels (default 4)\n"
            "high resolution (docs/highres.md):\n"
            "      --tile N, --tile-overlap N, --tile-batch N, --tile-blend uniform|gaussian\n"
            "                          tiled denoising in latent pixels; default: tiles of 1024 px\n"
            "                          (128) once the canvas exceeds it; each tile takes its place in\n"
            "                          the position grid (canvas coordinates while the canvas fits it)\n"
            "      --vae-tile N        exact tiled VAE (default 64 above 1024x1024; 0 = off)\n"
            "output:\n"
            "  -o, --output OUT        .png or .jpg; with --batch-count N > 1: OUT-1.png ... OUT-N.png\n"
            "      --threads N         worker threads (default: every core)\n\n"
            "Inpainting repaints where the mask is white; pixels where the (blurred) mask is 0 are\n"
            "copied from the input unchanged.  The mask must have the image's size.\n");
}

typedef struct {
    ts_sd3_files files;
    const char *prompt, *negative, *out, *init_image, *mask, *sampler, *scheduler;
    int width, height, steps, batch, clip_skip, threads, has_seed, instruct;
    double cfg, strength, mask_blur;
    uint64_t seed;
    gen_tiling_args tiling;
} sd3_args;

#define AT(field) offsetof(sd3_args, field)
static const flag_spec flags[] = {
    {"--model", "-m", FLAG_TEXT, AT(files.model), 0, 0, 0, NULL},
    {"--vae", NULL, FLAG_TEXT, AT(files.vae), 0, 0, 0, NULL},
    {"--clip-l", NULL, FLAG_TEXT, AT(files.clip_l), 0, 0, 0, NULL},
    {"--clip-g", NULL, FLAG_TEXT, AT(files.clip_g), 0, 0, 0, NULL},
    {"--t5xxl", NULL, FLAG_TEXT, AT(files.t5), 0, 0, 0, NULL},
    {"--clip-heads", NULL, FLAG_INT, AT(files.clip_heads), 0, 1, 1024, NULL},
    {"--prompt", "-p", FLAG_TEXT, AT(prompt), 0, 0, 0, NULL},
    {"--negative-prompt", "-n", FLAG_TEXT, AT(negative), 0, 0, 0, NULL},
    {"--clip-skip", NULL, FLAG_INT, AT(clip_skip), 0, 1, 48, NULL},
    {"--output", "-o", FLAG_TEXT, AT(out), 0, 0, 0, NULL},
    {"--init-image", NULL, FLAG_TEXT, AT(init_image), 0, 0, 0, NULL},
    {"--mask", NULL, FLAG_TEXT, AT(mask), 0, 0, 0, NULL},
    {"--sampler", NULL, FLAG_TEXT, AT(sampler), 0, 0, 0, NULL},
    {"--scheduler", NULL, FLAG_TEXT, AT(scheduler), 0, 0, 0, NULL},
    {"--width", "-W", FLAG_INT, AT(width), 0, 1, TS_IMAGE_MAX_SIDE, NULL},
    {"--height", "-H", FLAG_INT, AT(height), 0, 1, TS_IMAGE_MAX_SIDE, NULL},
    {"--steps", NULL, FLAG_INT, AT(steps), 0, 1, 1000, NULL},
    {"--batch-count", NULL, FLAG_INT, AT(batch), 0, 1, 10000, NULL},
    {"--threads", NULL, FLAG_INT, AT(threads), 0, 1, 1024, NULL},
    {"--cfg", NULL, FLAG_REAL, AT(cfg), 0, 0, 100, NULL},
    {"--strength", NULL, FLAG_REAL, AT(strength), 0, 1e-6, 1, NULL},
    {"--mask-blur", NULL, FLAG_REAL, AT(mask_blur), 0, 0, 256, NULL},
    {"--seed", NULL, FLAG_SEED, AT(seed), AT(has_seed), 0, 0, NULL},
    {"--instruct", NULL, FLAG_SWITCH, AT(instruct), 0, 0, 0, NULL}, /* refused below, with the reason */
    GEN_TILING_TABLE(sd3_args),
};

/* Returns 0, 2 for bad usage, -1 after --help. */
static int parse_args(int argc, char **argv, sd3_args *a)
{
    *a = (sd3_args){.negative = "", .sampler = "dpmpp_2m", .scheduler = "normal", .steps = 20, .batch = 1,
                    .cfg = SD3_DEFAULT_CFG, .strength = -1, .mask_blur = 4, .tiling = gen_tiling_defaults()};
    int rc = parse_flag_table(argc, argv, sd3_usage, flags, sizeof flags / sizeof flags[0], a);
    if (rc)
        return rc;
    const char *problem = !a->prompt       ? "-p PROMPT is required (see --help)"
                          : !a->out        ? "-o OUT is required (see --help)"
                          : a->instruct    ? "--instruct needs an InstructPix2Pix model; SD3 has none"
                          : a->mask && !a->init_image ? "--mask needs --init-image"
                                                      : NULL;
    if (problem) {
        fprintf(stderr, "tessera generate: %s\n", problem);
        return 2;
    }
    return check_output_name(a->out);
}

int generate_is_sd3(int argc, char **argv)
{
    return generate_model_in(argc, argv, TS_FAMILY_BIT(TS_FAMILY_SD3) | TS_FAMILY_BIT(TS_FAMILY_SD35));
}

/* ---- the run ------------------------------------------------------------------ */

typedef struct {
    const sd3_args *args;
    ts_sd3_model *model;
    ts_sd3_request req;
    ts_sd3_cond cond[2]; /* prompt, negative prompt */
    gen_io io;
    ts_vae_tiling vae_tiling;
} sd3_state;

/* Model, images, request and both prompts' conditioning. */
static int prepare(const sd3_args *a, sd3_state *s)
{
    int rc = ts_sd3_load(&a->files, &s->model);
    if (rc)
        return rc;
    const ts_sd3_model *m = s->model;
    gen_io_args io = {a->init_image, a->mask, a->mask_blur, a->width, a->height};
    rc = gen_io_prepare(&s->io, &io, m->native_size, m->size_multiple);
    ts_sd_mode mode = a->mask ? TS_SD_INPAINT : a->init_image ? TS_SD_IMG2IMG : TS_SD_TXT2IMG;
    s->req = (ts_sd3_request){.mode = mode, .width = s->io.width, .height = s->io.height, .image = s->io.image,
                              .mask = s->io.mask, .steps = a->steps, .cfg = a->cfg,
                              .strength = a->strength > 0 ? a->strength : mode == TS_SD_INPAINT ? 1.0 : 0.75,
                              .cond = &s->cond[0], .uncond = &s->cond[1], .progress = draw_progress};
    rc = rc ? rc : ts_sampler_from_name(a->sampler, &s->req.sampler);
    rc = rc ? rc : ts_scheduler_from_name(a->scheduler, &s->req.scheduler);
    /* Default tiles: the native size, or the position grid when that is smaller. */
    int tile_px = m->native_size < m->max_size ? m->native_size : m->max_size;
    gen_tiling_resolve(&a->tiling, s->io.width, s->io.height, tile_px, &s->req.tiling, &s->vae_tiling,
                       &s->req.vae_tiling);
    rc = rc ? rc : ts_sd3_check_size(m, s->io.width, s->io.height, s->req.tiling.size > 0);
    rc = rc ? rc : describe_tiling(&s->req.tiling, s->io.width, s->io.height, m->size_multiple / 8, "");
    return rc ? rc : ts_sd3_encode_prompts(m, a->prompt, a->negative, a->clip_skip, s->cond);
}

/* The image with its parameters text; inpainting keeps the input where the mask is 0. */
static int write_image(const sd3_state *s, int index, uint64_t seed)
{
    const sd3_args *a = s->args;
    const ts_sd3_request *r = &s->req;
    int inpaint = r->mode == TS_SD_INPAINT;
    gen_params p = {.prompt = a->prompt, .negative = a->negative, .model = a->files.model, .steps = r->steps,
                    .width = r->width, .height = r->height, .clip_skip = a->clip_skip, .inpaint = inpaint,
                    .sampler = r->sampler, .scheduler = r->scheduler, .cfg = r->cfg, .mask_blur = a->mask_blur,
                    .strength = r->mode != TS_SD_TXT2IMG ? r->strength : 0};
    char tiling[64];
    ts_infotext_pair extra[1];
    gen_tiling_pair(&r->tiling, tiling, sizeof tiling, extra, &p.extra_count);
    p.extra = extra;
    gen_output o = {a->out, a->batch, r->width, r->height, &s->io.in, inpaint ? s->io.mask : NULL};
    char *text = gen_infotext(&p, seed);
    int rc = write_result(&o, s->io.pixels, index, seed, text);
    free(text);
    return rc;
}

static int generate_one(void *ctx, int index, uint64_t seed, progress_bar *bar)
{
    sd3_state *s = ctx;
    s->req.seed = seed;
    s->req.progress_ctx = bar;
    int rc = ts_sd3_generate(s->model, &s->req, s->io.arena, s->io.pixels);
    return rc ? rc : write_image(s, index, seed);
}

static int run(const sd3_args *a)
{
    sd3_state s = {.args = a};
    int rc = prepare(a, &s);
    rc = rc ? rc : run_batch(a->batch, a->has_seed, a->seed, generate_one, &s);
    ts_sd3_cond_free(&s.cond[0]);
    ts_sd3_cond_free(&s.cond[1]);
    gen_io_free(&s.io);
    ts_sd3_free(s.model);
    return rc;
}

int cmd_generate_sd3(int argc, char **argv)
{
    sd3_args a;
    int status = parse_args(argc, argv, &a);
    if (status)
        return status < 0 ? 0 : status;
    ts_threads_set(a.threads);
    return report_failure(run(&a));
}
