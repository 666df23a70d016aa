/*
 * tessera upscale IN -o OUT: photo super-resolution with the UpscalerJS RDN/RRDN
 * models (pipeline/upscale.h).
 *
 * Models are found by name in the folder scripts/fetch-models.sh fills, so the usual
 * call names no path.  Work is tiled automatically to a memory budget unless --tile
 * says otherwise; the result is the same either way (the tiles overlap by the
 * network's receptive field).  A progress bar goes to stderr when it is a terminal;
 * --verbose adds what ran, how long it took and the peak memory, which is what the
 * benchmarks record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/threads.h"
#include "io/image.h"
#include "models/rdn.h"
#include "pipeline/upscale.h"

static void upscale_usage(FILE *f)
{
    fprintf(f, "usage: tessera upscale IN -o OUT [--model slim|medium|thick|default] [--scale 2|3|4|8]\n"
               "                       [--tile N | --memory MIB] [--threads N] [--model-dir DIR] [--verbose]\n\n"
               "Super-resolves a PNG or JPEG photo with the UpscalerJS networks (MIT): default and\n"
               "slim are small RDNs, medium a larger RDN, thick an RRDN (ESRGAN blocks: best and\n"
               "slowest).  OUT is PNG or JPEG by its extension; an alpha channel is upscaled\n"
               "separately (bicubic) and kept in PNG output.\n\n"
               "  --model NAME    default: slim\n"
               "  --scale S       2, 3, 4 or 8 (default 4; the model 'default' has only 2)\n"
               "  --tile N        core tile side in input pixels; 0 = the whole image at once;\n"
               "                  default: the largest tile that fits --memory.  Tiles overlap by\n"
               "                  the receptive field, so the output does not depend on N.\n"
               "  --memory MIB    activation budget for the automatic tile (default 1024)\n"
               "  --threads N     worker threads (default: every core)\n"
               "  --model-dir DIR where scripts/fetch-models.sh put the models (default:\n"
               "                  $TESSERA_MODEL_DIR, else the source tree's models/)\n"
               "  --verbose       print the model, tiling, time and peak memory\n");
}

typedef struct {
    double start;
    int shown; /* percent last drawn, -1 before the first */
} progress_bar;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void draw_progress(void *ctx, int64_t done, int64_t total)
{
    progress_bar *p = ctx;
    int pct = (int)(100 * done / (total ? total : 1));
    if (pct == p->shown)
        return;
    p->shown = pct;
    double spent = now() - p->start;
    char bar[31];
    for (int i = 0; i < 30; i++)
        bar[i] = i < pct * 30 / 100 ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\rupscale [%s] %3d%%  %.0f s", bar, pct, spent);
    if (done > 0 && done < total)
        fprintf(stderr, ", about %.0f s left ", spent * (double)(total - done) / (double)done);
    else
        fprintf(stderr, "%20s", "");
    if (done == total)
        fputc('\n', stderr);
}

/* Parses a whole decimal number in [lo, hi]. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

typedef struct {
    const char *in, *out, *model, *model_dir;
    int scale, tile, threads, verbose, memory_mib;
} upscale_args;

/* Returns 0, or the exit status for bad usage (2) / --help (-1 → 0). */
static int parse_args(int argc, char **argv, upscale_args *a)
{
    *a = (upscale_args){.model = "slim", .scale = 0, .tile = -1, .threads = 0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            upscale_usage(stdout);
            return -1;
        } else if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
            a->verbose = 1;
            continue;
        } else if (arg[0] != '-' || !arg[1]) {
            if (a->in) {
                fprintf(stderr, "tessera upscale: more than one input ('%s', '%s')\n", a->in, arg);
                return 2;
            }
            a->in = arg;
            continue;
        }
        static const char *const valued[] = {"-o",      "--output", "--model",  "--model-dir",
                                             "--scale", "--tile",   "--threads", "--memory"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            known |= strcmp(arg, valued[k]) == 0;
        if (!known) {
            fprintf(stderr, "tessera upscale: unknown option '%s' (see --help)\n", arg);
            return 2;
        }
        if (!val) {
            fprintf(stderr, "tessera upscale: %s needs a value\n", arg);
            return 2;
        }
        if (strcmp(arg, "-o") == 0 || strcmp(arg, "--output") == 0) {
            a->out = val;
        } else if (strcmp(arg, "--model") == 0) {
            a->model = val;
        } else if (strcmp(arg, "--model-dir") == 0) {
            a->model_dir = val;
        } else if (strcmp(arg, "--scale") == 0) {
            bad = parse_int(val, 1, 64, &a->scale);
        } else if (strcmp(arg, "--tile") == 0) {
            bad = parse_int(val, 0, 1 << 20, &a->tile);
            bad |= a->tile > 0 && a->tile < 8;
        } else if (strcmp(arg, "--memory") == 0) {
            bad = parse_int(val, 16, 1 << 24, &a->memory_mib);
        } else {
            bad = parse_int(val, 1, 1024, &a->threads);
        }
        if (bad) {
            fprintf(stderr, "tessera upscale: bad value '%s' for %s\n", val, arg);
            return 2;
        }
        i++;
    }
    if (!a->in || !a->out) {
        upscale_usage(stderr);
        return 2;
    }
    if (!a->scale)
        a->scale = strcmp(a->model, "default") == 0 ? 2 : 4;
    return 0;
}

/* JPEG has no alpha: drop it, and say so. */
static int write_result(const char *path, ts_image *img)
{
    const char *dot = strrchr(path, '.');
    int jpeg = dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
    if (jpeg && img->channels == 4) {
        ts_image rgb;
        int rc = ts_image_convert(img, 3, img->depth, &rgb);
        if (rc < 0)
            return rc;
        fprintf(stderr, "tessera upscale: JPEG has no alpha channel; %s is written without it\n", path);
        ts_image_free(img);
        *img = rgb;
    }
    return ts_image_write(path, img, NULL);
}

static int run(const upscale_args *a)
{
    char path[4096];
    ts_rdn *m = NULL;
    ts_image in = {0}, out = {0};
    ts_upscale_stats st = {0};
    progress_bar bar = {now(), -1};
    ts_upscale_opts opts = {.tile = a->tile, .budget = (size_t)a->memory_mib << 20};
    if (isatty(STDERR_FILENO)) {
        opts.progress = draw_progress;
        opts.progress_ctx = &bar;
    }
    int rc = ts_upscaler_model_path(a->model_dir, a->model, a->scale, path, sizeof path);
    if (rc == TS_OK)
        rc = ts_rdn_load(path, &m);
    if (rc == TS_OK)
        rc = ts_image_read(a->in, &in);
    if (rc == TS_OK) {
        if (a->verbose)
            fprintf(stderr, "model: %s (%s), halo %d px; input %dx%d, %d channel(s), %d-bit; %d thread(s)\n",
                    ts_rdn_describe(m), path, ts_rdn_halo(m), in.width, in.height, in.channels, in.depth,
                    ts_threads_get());
        bar.start = now();
        rc = ts_upscale_image(m, &in, &opts, &out, &st);
    }
    double seconds = now() - bar.start;
    if (rc == TS_OK)
        rc = write_result(a->out, &out);
    if (rc == TS_OK && a->verbose) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double mpx = (double)out.width * out.height / 1e6;
        fprintf(stderr,
                "output: %s, %dx%d; %d tile(s) of %d px core; %.2f s, %.3f s per output megapixel;"
                " activations peak %.1f MiB; peak RSS %.1f MiB\n",
                a->out, out.width, out.height, st.tiles, st.tile, seconds, seconds / mpx,
                (double)st.arena_peak / (1 << 20), (double)ru.ru_maxrss / 1024);
    }
    ts_image_free(&in);
    ts_image_free(&out);
    ts_rdn_free(m);
    return rc;
}

int cmd_upscale(int argc, char **argv)
{
    upscale_args a;
    int status = parse_args(argc, argv, &a);
    if (status)
        return status < 0 ? 0 : status;
    ts_threads_set(a.threads);
    if (run(&a) < 0) {
        fprintf(stderr, "tessera upscale: %s\n", ts_error_message());
        return 1;
    }
    return 0;
}
