/*
 * tessera generate for SD3 / SD3.5 checkpoints: the same flags, files and output as
 * the Stable Diffusion path (generate.c, which parses the arguments and hands SD3
 * files here), over pipeline/sd3.h.  Defaults are SD3's own: 1024 pixels, CFG 5,
 * DPM++ 2M on the "normal" schedule (the reference's sigmas), flow shift 3.
 * Text encoders come from the checkpoint or from --clip-l / --clip-g / --t5xxl; a
 * bundle without T5 conditions on CLIP alone, as the reference allows.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/generate_common.h"
#include "core/error.h"
#include "pipeline/sd3.h"

#define SD3_DEFAULT_CFG 5.0

int is_sd3_model(const char *path)
{
    ts_safetensors *st = NULL;
    if (ts_st_open(path, &st) != 0)
        return 0;
    ts_model_info info;
    ts_family_detect(st, &info);
    ts_st_close(st);
    return info.family == TS_FAMILY_SD3 || info.family == TS_FAMILY_SD35;
}

/* The model and everything from the arguments that does not need the prompts. */
static int prepare(const gen_args *a, gen_state *s, ts_sd3_model **model)
{
    if (a->instruct)
        return ts_fail(TS_ERR_ARG, "--instruct needs an InstructPix2Pix model; SD3 has none");
    ts_sd3_files files = {.model = a->files.model, .vae = a->files.vae, .clip_l = a->files.clip_l,
                          .clip_g = a->files.clip_g, .t5 = a->t5, .clip_heads = a->files.clip_heads};
    int rc = ts_sd3_load(&files, model);
    if (rc)
        return rc;
    const ts_sd3_model *m = *model;
    ts_sd_request *r = &s->req;
    *r = (ts_sd_request){.mode = a->mask ? TS_SD_INPAINT : a->init_image ? TS_SD_IMG2IMG : TS_SD_TXT2IMG,
                         .steps = a->steps,
                         .cfg = a->cfg >= 0 ? a->cfg : SD3_DEFAULT_CFG};
    r->strength = a->strength > 0 ? a->strength : r->mode == TS_SD_INPAINT ? 1.0 : 0.75;
    rc = ts_sampler_from_name(a->sampler, &r->sampler);
    rc = rc ? rc : ts_scheduler_from_name(a->scheduler ? a->scheduler : "normal", &r->scheduler);
    rc = rc ? rc : prepare_io(a, s, m->native_size, m->size_multiple);
    return rc ? rc : ts_sd3_check_size(m, r->width, r->height);
}

static int run(const gen_args *a)
{
    gen_state s = {0};
    ts_sd3_model *m = NULL;
    ts_sd3_cond cond[2];
    memset(cond, 0, sizeof cond);
    int rc = prepare(a, &s, &m);
    rc = rc ? rc : ts_sd3_encode_prompts(m, a->prompt, a->negative, a->clip_skip, cond);
    uint64_t seed = rc ? 0 : pick_seed(a);
    progress_bar bar = {.images = a->batch, .tty = isatty(STDERR_FILENO)};
    const ts_sd_request *d = &s.req;
    ts_sd3_request r = {.mode = d->mode, .width = d->width, .height = d->height, .steps = d->steps,
                        .sampler = d->sampler, .scheduler = d->scheduler, .cfg = d->cfg, .strength = d->strength,
                        .cond = &cond[0], .uncond = &cond[1], .image = d->image, .mask = d->mask,
                        .progress = draw_progress, .progress_ctx = &bar};
    for (int i = 0; i < a->batch && rc == 0; i++) {
        r.seed = seed + (uint64_t)i;
        bar.image = i;
        bar.start = now();
        rc = ts_sd3_generate(m, &r, s.arena, s.pixels);
        rc = rc ? rc : write_image(a, &s, i, r.seed);
    }
    ts_sd3_cond_free(&cond[0]);
    ts_sd3_cond_free(&cond[1]);
    free_state(&s);
    ts_sd3_free(m);
    return rc;
}

int generate_sd3(const gen_args *a)
{
    if (run(a) < 0) {
        fprintf(stderr, "tessera generate: %s\n", ts_error_message());
        return 1;
    }
    return 0;
}
