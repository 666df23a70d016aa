/*
 * What the per-family front ends of tessera generate share with generate.c (SD):
 * option parsing, the input image and mask, the batch loop with its seeds and
 * progress line, writing the result (inpaint composite, naming, parameters text)
 * and the error line.  The definitions are generate.c's; one copy keeps every
 * family's CLI behaving alike.
 */
#ifndef TS_CLI_GENERATE_COMMON_H
#define TS_CLI_GENERATE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/arena.h"
#include "io/image.h"
#include "models/vae_tiled.h"
#include "pipeline/tiles.h"
#include "models/family.h"
#include "sample/sampler.h"
#include "sample/schedule.h"

/* A front end's flags: those taking a value and those without (NULL-terminated
 * lists); set(args, flag, value or NULL) returns 0 or 2 (bad value). */
typedef struct {
    void (*usage)(FILE *f);
    const char *const *valued;
    const char *const *switches;
    int (*set)(void *args, const char *flag, const char *value);
} gen_options;
/* Walks argv; returns 0, 2 for bad usage (one line printed), -1 after --help. */
int parse_options(int argc, char **argv, const gen_options *o, void *args);

/* A front end's flags as a table: kind says how the value is read into the field at
 * offset `at` of the args struct (lo..hi for numbers; parse for FLAG_PARSE, returning
 * non-zero for a bad value); FLAG_SWITCH takes no value and sets its int field to 1.
 * `seen` (when non-zero) is the offset of an int set to 1 when the flag is given. */
typedef enum { FLAG_TEXT, FLAG_INT, FLAG_REAL, FLAG_SEED, FLAG_SWITCH, FLAG_PARSE } flag_kind;
typedef struct {
    const char *name, *alias;
    flag_kind kind;
    size_t at, seen;
    double lo, hi;
    int (*parse)(const char *value, void *field);
} flag_spec;
/* parse_options over the n flags of the table. */
int parse_flag_table(int argc, char **argv, void (*usage)(FILE *f), const flag_spec *flags, size_t n, void *args);
/* 0, or 2 with a message when OUT does not end in .png, .jpg or .jpeg. */
int check_output_name(const char *out);

/* "tessera generate: bad value 'VAL' for FLAG"; returns 2 (bad usage). */
int bad_value(const char *flag, const char *val);
/* 0, or -1 when s is not a number in [lo, hi]. */
int parse_int(const char *s, int lo, int hi, int *out);
int parse_double(const char *s, double lo, double hi, double *out);
int parse_seed(const char *s, uint64_t *out);

/* The inputs of a run (flags; NULL / 0 when not given) and what they become. */
typedef struct {
    const char *init_image, *mask;
    double mask_blur;
    int width, height;
} gen_io_args;

typedef struct {
    int width, height;   /* settled: the init image's, else the flags', else the default */
    ts_image in;         /* the init image, RGB 8-bit (empty without one) */
    float *image, *mask; /* planar [3, H, W] in [-1, 1]; [H, W] in [0, 1] blurred; or NULL */
    float *pixels;       /* [3, H, W] for the decoder's output */
    ts_arena *arena;     /* for the networks' activations */
} gen_io;

/* Loads the init image and mask, settles the size (default def_size) and refuses one
 * that is not a multiple of mult, naming the valid ones; allocates pixels and arena. */
int gen_io_prepare(gen_io *io, const gen_io_args *a, int def_size, int mult);
void gen_io_free(gen_io *io);

typedef struct {
    double start;
    int image, images, tty;
    int first;      /* the step the run (re)started at */
    int stop_after; /* TESSERA_STOP_AFTER_STEP */
    int steps_made; /* by this process, over all passes and images */
} progress_bar;

/* Seconds on a monotonic clock. */
double now(void);
/* A pipeline progress callback over a progress_bar (ctx); returns non-zero (cancel)
 * once a stop signal arrived.  TESSERA_STOP_AFTER_STEP=N (tests) raises SIGINT after
 * the Nth step the process makes, a Ctrl-C at a known moment. */
int draw_progress(void *ctx, int done, int steps);
/* A bar for count images, with the test hook read from the environment. */
progress_bar progress_bar_for(int count);
/* The first SIGINT or SIGTERM asks the run to stop at the next step boundary; the
 * handler then resets, so a second one ends the process at once. */
void catch_stop_signals(void);
/* The signal that asked the run to stop, or 0. */
int stop_signal_caught(void);
/* seed when has_seed; else a random 32-bit one, printed as "seed: N". */
uint64_t pick_seed(int has_seed, uint64_t seed);

/* One image of a batch: generate at seed (reporting progress to bar) and write it. */
typedef int (*gen_one_fn)(void *ctx, int index, uint64_t seed, progress_bar *bar);
/* count images at seeds SEED, SEED+1, ...; without has_seed SEED is drawn at random
 * and printed as "seed: N". */
int run_batch(int count, int has_seed, uint64_t seed, gen_one_fn one, void *ctx);

/* The planar result [3, H, W] in [-1, 1] as 8-bit OUT (OUT-<index+1>.ext when count >
 * 1, temp name then rename) with the parameters text; with a mask, input pixels where
 * it is 0 are kept byte for byte.  Prints "wrote PATH (WxH, seed N)". */
typedef struct {
    const char *out;
    int count, width, height;
    const ts_image *in; /* the input image, for the composite */
    const float *mask;  /* [H, W] in [0, 1], or NULL */
} gen_output;
int write_result(const gen_output *o, const float *pixels, int index, uint64_t seed, const char *text);

/* The high-resolution tiling flags every front end takes: --tile, --tile-overlap,
 * --tile-batch, --tile-blend, --vae-tile (-1: decided by the canvas size). */
typedef struct {
    int tile, overlap, batch, vae_tile;
    ts_tile_blend blend;
} gen_tiling_args;

#define GEN_TILING_FLAGS "--tile", "--tile-overlap", "--tile-batch", "--tile-blend", "--vae-tile"
/* The same flags as flag_spec entries of a front end whose args struct `type` has a
 * gen_tiling_args member named tiling. */
int parse_tile_blend(const char *val, void *field);
#define GEN_TILING_TABLE(type)                                                                                   \
    {"--tile", NULL, FLAG_INT, offsetof(type, tiling.tile), 0, 0, 1 << 16, NULL},                                \
        {"--tile-overlap", NULL, FLAG_INT, offsetof(type, tiling.overlap), 0, 0, 1 << 16, NULL},                 \
        {"--tile-batch", NULL, FLAG_INT, offsetof(type, tiling.batch), 0, 1, 64, NULL},                          \
        {"--tile-blend", NULL, FLAG_PARSE, offsetof(type, tiling.blend), 0, 0, 0, parse_tile_blend},             \
        {"--vae-tile", NULL, FLAG_INT, offsetof(type, tiling.vae_tile), 0, 0, 1 << 16, NULL}
gen_tiling_args gen_tiling_defaults(void);
/* Sets the flag when it is a tiling one (*bad: 0, or non-zero for a bad value);
 * returns 1 when it is not. */
int set_tiling_option(gen_tiling_args *t, const char *arg, const char *val, int *bad);
/* What the flags mean for a WxH canvas of a model whose native size is native_px:
 * tiles of the native size once the canvas exceeds it (overlap a quarter), VAE tiles
 * of 64 latent pixels above 1024x1024; size 0 / NULL when untiled. */
void gen_tiling_resolve(const gen_tiling_args *t, int width, int height, int native_px, ts_tile_config *tiles,
                        ts_vae_tiling *vae, const ts_vae_tiling **vae_used);
/* Appends the "Tiled diffusion: SIZE/OVERLAP BLEND" parameters entry to pairs[*n]
 * when tiles is tiled; buf (32 bytes or more) holds its text. */
void gen_tiling_pair(const ts_tile_config *tiles, char *buf, size_t size, ts_infotext_pair *pairs, int *n);
/* Checks the plan (align: latent pixels tile positions must be multiples of) and
 * prints one line on how the canvas will be covered, so a long run's cost is no
 * surprise; note is appended to it. */
int describe_tiling(const ts_tile_config *tiles, int width, int height, int align, const char *note);

/* The exit status of a run: 0, or 1 after printing "tessera generate: <error>". */
int report_failure(int rc);

/* What a Stable Diffusion run (1.x/2.x/XL, SD3) records in the parameters text. */
typedef struct {
    const char *prompt, *negative, *model; /* model: the -m path (its base name is recorded) */
    int steps, width, height, clip_skip, inpaint;
    ts_sampler sampler;
    ts_scheduler scheduler;
    double cfg, strength, mask_blur; /* strength 0: the run started from noise */
    const ts_infotext_pair *extra;   /* the family's own pairs, written first (at most 8) */
    int extra_count;
} gen_params;
/* The A1111 parameters text (malloc'd; NULL when out of memory). */
char *gen_infotext(const gen_params *p, uint64_t seed);

/* Whether the file -m names is of one of the families (a TS_FAMILY_BIT mask); 0 when
 * there is none or it cannot be read (the SD front end then reports it). */
int generate_model_in(int argc, char **argv, unsigned families);

/* generate_flux.c: whether -m names a Flux transformer, and its front end. */
int generate_is_flux(int argc, char **argv);
int cmd_generate_flux(int argc, char **argv);
/* generate_sd3.c: whether -m names an SD3 / SD3.5 checkpoint, and its front end. */
int generate_is_sd3(int argc, char **argv);
int cmd_generate_sd3(int argc, char **argv);

#endif
