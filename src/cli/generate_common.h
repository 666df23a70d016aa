/*
 * What the per-family front ends of tessera generate share with generate.c (SD):
 * flag value parsing, the progress line, input image and mask loading, the inpaint
 * composite and output naming.  The definitions are generate.c's; one copy keeps
 * every family's CLI behaving alike.
 */
#ifndef TS_CLI_GENERATE_COMMON_H
#define TS_CLI_GENERATE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/image.h"

/* "tessera generate: bad value 'VAL' for FLAG"; returns 2 (bad usage). */
int bad_value(const char *flag, const char *val);
/* 0, or -1 when s is not a number in [lo, hi]. */
int parse_int(const char *s, int lo, int hi, int *out);
int parse_double(const char *s, double lo, double hi, double *out);
int parse_seed(const char *s, uint64_t *out);

typedef struct {
    double start;
    int image, images, tty;
} progress_bar;

double now(void);
/* ts progress callback over a progress_bar (ctx). */
int draw_progress(void *ctx, int done, int steps);

/* The input image as RGB 8-bit, and planar in [-1, 1] (malloc'd). */
int load_image(const char *path, ts_image *rgb, float **planar);
/* The mask as one plane in [0, 1] (white = repaint) of the image's size, blurred. */
int load_mask(const char *path, const ts_image *image, double blur, float **mask);
/* Where the mask is 0 the input pixel is kept byte for byte; elsewhere mixed. */
void compose(ts_image *out, const ts_image *in, const float *mask);
/* OUT, or OUT-<index+1>.ext when count > 1. */
void output_path(const char *out, int index, int count, char *buf, size_t size);
/* A one-line error naming the valid sizes around v when it is not a multiple of mult. */
int check_size(const char *what, int v, int mult);

/* generate_flux.c: whether -m names a Flux transformer, and its front end. */
int generate_is_flux(int argc, char **argv);
int cmd_generate_flux(int argc, char **argv);

#endif
