/*
 * The parts of `tessera generate` every model family's front end shares (see
 * generate_common.h): option parsing, the input image and mask, the progress line
 * and stop signals, the batch loop with its seeds, writing a result.
 */
#include "cli/generate_common.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "pipeline/sd.h"

/* The signal that asked the run to stop (SIGINT, SIGTERM), or 0. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

int stop_signal_caught(void)
{
    return stop_signal;
}

progress_bar progress_bar_for(int count)
{
    const char *stop_after = getenv("TESSERA_STOP_AFTER_STEP");
    return (progress_bar){.images = count, .tty = isatty(STDERR_FILENO), .stop_after = stop_after ? atoi(stop_after) : -1};
}

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
    double spent = now() - p->start, rate = spent > 0 ? (done - p->first) / spent : 0;
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
    if (++p->steps_made == p->stop_after)
        raise(SIGINT);
    if (stop_signal && p->tty)
        fputc('\n', stderr);
    return stop_signal != 0;
}

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

/* The first SIGINT or SIGTERM stops the run at the next step boundary; the handler
 * then resets, so a second one ends the process at once. */
void catch_stop_signals(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
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

typedef struct {
    const flag_spec *flags;
    size_t n;
    void *args;
} flag_table;

/* gen_options.set over a flag table (parse_options passes only listed flags). */
static int set_from_table(void *ctx, const char *arg, const char *val)
{
    const flag_table *t = ctx;
    const flag_spec *f = t->flags;
    while (strcmp(arg, f->name) && !(f->alias && !strcmp(arg, f->alias)))
        f++;
    char *field = (char *)t->args + f->at;
    int bad = 0;
    if (f->kind == FLAG_TEXT)
        *(const char **)field = val;
    else if (f->kind == FLAG_INT)
        bad = parse_int(val, (int)f->lo, (int)f->hi, (int *)field);
    else if (f->kind == FLAG_REAL)
        bad = parse_double(val, f->lo, f->hi, (double *)field);
    else if (f->kind == FLAG_SEED)
        bad = parse_seed(val, (uint64_t *)field);
    else if (f->kind == FLAG_SWITCH)
        *(int *)field = 1;
    else
        bad = f->parse(val, field);
    if (f->seen)
        *(int *)((char *)t->args + f->seen) = 1;
    return bad ? bad_value(arg, val) : 0;
}

int parse_flag_table(int argc, char **argv, void (*usage)(FILE *f), const flag_spec *flags, size_t n, void *args)
{
    const char **valued = calloc(2 * n + 1, sizeof *valued), **switches = calloc(2 * n + 1, sizeof *switches);
    if (!valued || !switches) {
        free(valued);
        free(switches);
        fprintf(stderr, "tessera generate: out of memory\n");
        return 2;
    }
    for (size_t i = 0, nv = 0, ns = 0; i < n; i++) {
        const char **list = flags[i].kind == FLAG_SWITCH ? switches : valued;
        size_t *at = flags[i].kind == FLAG_SWITCH ? &ns : &nv;
        list[(*at)++] = flags[i].name;
        if (flags[i].alias)
            list[(*at)++] = flags[i].alias;
    }
    flag_table t = {flags, n, args};
    gen_options o = {usage, valued, switches, set_from_table};
    int rc = parse_options(argc, argv, &o, &t);
    free(valued);
    free(switches);
    return rc;
}

int check_output_name(const char *out)
{
    const char *dot = strrchr(out, '.');
    if (dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        return 0;
    fprintf(stderr, "tessera generate: -o %s: the name must end in .png, .jpg or .jpeg\n", out);
    return 2;
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
        /* A failed arena has said why (TESSERA_MAX_ARENA, say). */
        rc = !io->arena ? TS_ERR_NOMEM : !io->pixels ? ts_fail(TS_ERR_NOMEM, "out of memory") : 0;
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

uint64_t pick_seed(int has_seed, uint64_t seed)
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
    progress_bar bar = progress_bar_for(count);
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        bar.image = i;
        bar.start = now();
        rc = one(ctx, i, seed + (uint64_t)i, &bar);
    }
    return rc;
}

static const char *a1111_sampler(ts_sampler s)
{
    static const char *const names[TS_SAMPLER_COUNT] = {"Euler", "Euler a", "Heun", "DPM++ 2M", "DPM++ 2M SDE", "LCM"};
    return (unsigned)s < TS_SAMPLER_COUNT ? names[s] : ts_sampler_name(s);
}

char *gen_infotext(const gen_params *p, uint64_t seed)
{
    ts_infotext_pair extra[10];
    int n = p->extra_count < 8 ? p->extra_count : 8;
    memcpy(extra, p->extra, (size_t)n * sizeof *extra);
    char blur[32], skip[16];
    snprintf(blur, sizeof blur, "%g", p->mask_blur);
    snprintf(skip, sizeof skip, "%d", p->clip_skip);
    if (p->inpaint)
        extra[n++] = (ts_infotext_pair){"Mask blur", blur};
    if (p->clip_skip)
        extra[n++] = (ts_infotext_pair){"Clip skip", skip};
    const char *model = strrchr(p->model, '/');
    ts_infotext info = {.prompt = p->prompt,
                        .negative_prompt = p->negative,
                        .steps = p->steps,
                        .sampler = a1111_sampler(p->sampler),
                        .scheduler = ts_scheduler_name(p->scheduler),
                        .cfg_scale = p->cfg,
                        .has_seed = 1,
                        .seed = seed,
                        .width = p->width,
                        .height = p->height,
                        .model = model ? model + 1 : p->model,
                        .denoising_strength = p->strength,
                        .extra = extra,
                        .extra_count = n};
    return ts_format_infotext(&info);
}

int generate_model_in(int argc, char **argv, unsigned families)
{
    const char *model = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model"))
            model = argv[i + 1];
    ts_weights *wf = NULL;
    if (!model || ts_weights_open(model, &wf))
        return 0;
    ts_model_info info;
    ts_family_detect(wf, &info);
    ts_weights_close(wf);
    return (families & TS_FAMILY_BIT(info.family)) != 0;
}

int report_failure(int rc)
{
    if (rc >= 0)
        return 0;
    fprintf(stderr, "tessera generate: %s\n", ts_error_message());
    return 1;
}


gen_tiling_args gen_tiling_defaults(void)
{
    return (gen_tiling_args){.tile = -1, .overlap = -1, .batch = 2, .vae_tile = -1, .blend = TS_TILE_BLEND_GAUSSIAN};
}

int parse_tile_blend(const char *val, void *field)
{
    return ts_tile_blend_from_name(val, field) ? -1 : 0;
}

int set_tiling_option(gen_tiling_args *t, const char *arg, const char *val, int *bad)
{
    if (!strcmp(arg, "--tile"))
        *bad = parse_int(val, 0, 1 << 16, &t->tile);
    else if (!strcmp(arg, "--tile-overlap"))
        *bad = parse_int(val, 0, 1 << 16, &t->overlap);
    else if (!strcmp(arg, "--tile-batch"))
        *bad = parse_int(val, 1, 64, &t->batch);
    else if (!strcmp(arg, "--tile-blend"))
        *bad = ts_tile_blend_from_name(val, &t->blend) ? -1 : 0;
    else if (!strcmp(arg, "--vae-tile"))
        *bad = parse_int(val, 0, 1 << 16, &t->vae_tile);
    else
        return 1;
    return 0;
}

void gen_tiling_resolve(const gen_tiling_args *t, int width, int height, int native_px, ts_tile_config *tiles,
                        ts_vae_tiling *vae, const ts_vae_tiling **vae_used)
{
    int beyond = width > native_px || height > native_px;
    int tile = t->tile >= 0 ? t->tile : beyond ? native_px / 8 : 0;
    *tiles = tile > 0 ? (ts_tile_config){tile, t->overlap >= 0 ? t->overlap : tile / 4, t->batch, t->blend}
                      : (ts_tile_config){0};
    int vae_tile = t->vae_tile >= 0 ? t->vae_tile : (long)width * height > 1024L * 1024 ? 64 : 0;
    *vae = (ts_vae_tiling){.tile = vae_tile};
    *vae_used = vae_tile > 0 ? vae : NULL;
}

int describe_tiling(const ts_tile_config *tiles, int width, int height, int align, const char *note)
{
    if (tiles->size <= 0)
        return 0;
    ts_tile_plan plan;
    int rc = ts_tile_plan_init(&plan, height / 8, width / 8, tiles, align);
    if (rc)
        return rc;
    fprintf(stderr, "canvas %dx%d: %d tiles of %dx%d px per step (overlap %d px, %s blend, %d per batch)%s\n", width,
            height, plan.count, 8 * plan.tw, 8 * plan.th, 8 * tiles->overlap, ts_tile_blend_name(tiles->blend),
            tiles->batch, note);
    ts_tile_plan_free(&plan);
    return 0;
}

void gen_tiling_pair(const ts_tile_config *tiles, char *buf, size_t size, ts_infotext_pair *pairs, int *n)
{
    if (tiles->size <= 0)
        return;
    snprintf(buf, size, "%d/%d %s", tiles->size, tiles->overlap, ts_tile_blend_name(tiles->blend));
    pairs[(*n)++] = (ts_infotext_pair){"Tiled diffusion", buf};
}
