/*
 * What the per-family halves of `tessera generate` share (generate.c parses the
 * flags and runs Stable Diffusion 1.x/2.x/SDXL; generate_sd3.c runs SD3 / SD3.5):
 * the parsed arguments, the images and buffers of a run, the progress line, the
 * seed, and writing an image with its A1111 parameters text.
 */
#ifndef TS_CLI_GENERATE_COMMON_H
#define TS_CLI_GENERATE_COMMON_H

#include <stdint.h>

#include "core/arena.h"
#include "io/image.h"
#include "pipeline/sd.h"

typedef struct {
    ts_sd_files files;
    const char *t5; /* --t5xxl (SD3) */
    const char *prompt, *negative, *out, *init_image, *mask, *sampler;
    const char *scheduler; /* NULL: the family's default */
    int width, height, steps, batch, clip_skip, threads, instruct, has_seed;
    double cfg, strength, mask_blur, image_cfg;
    uint64_t seed;
} gen_args;

/* One run's inputs and outputs.  req describes the run for every family (mode, size,
 * steps, sampler, scheduler, cfg, strength: what the parameters text records). */
typedef struct {
    ts_sd_model *model; /* Stable Diffusion only */
    ts_sd_request req;
    ts_image in;
    float *image, *mask, *pixels;
    ts_arena *arena;
} gen_state;

/* With req.mode set: the output size (the flags, the init image's, or native_size),
 * refused unless a multiple of size_multiple; loads the init image and blurred mask;
 * allocates the pixels and the arena. */
int prepare_io(const gen_args *a, gen_state *s, int native_size, int size_multiple);
/* Frees what prepare_io allocated (not the model). */
void free_state(gen_state *s);
/* a->seed, or a random 32-bit one, printed. */
uint64_t pick_seed(const gen_args *a);
/* s->pixels to the index-th output file (temp name, then rename) with the parameters
 * text; inpainting puts the input's pixels back where the mask is 0. */
int write_image(const gen_args *a, gen_state *s, int index, uint64_t seed);

typedef struct {
    double start;
    int image, images, tty;
} progress_bar;

double now(void);
/* ts_sd_progress over a progress_bar. */
int draw_progress(void *ctx, int done, int steps);

/* Whether the model file is an SD3 / SD3.5 checkpoint (an unreadable file is not:
 * the ordinary path reports it), and the SD3 run, returning the exit status. */
int is_sd3_model(const char *path);
int generate_sd3(const gen_args *a);

#endif
