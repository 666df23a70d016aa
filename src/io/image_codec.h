/*
 * Private interface between image.c (dispatch, bounds, temp files) and the codecs
 * png.c and jpeg.c.  Decoders take the whole file in memory, so files and the
 * fuzzer share one code path; encoders write to an open stream that image.c owns.
 */
#ifndef TS_IO_IMAGE_CODEC_H
#define TS_IO_IMAGE_CODEC_H

#include <stdio.h>

#include "io/image.h"

/* Checks header dimensions against the bounds before anything is allocated. */
int ts_image_check_size(int64_t width, int64_t height, int64_t max_pixels);

/* Decodes the UTF-8 sequence at s[*i] and advances *i past it; returns the code
 * point, or -1 (leaving *i) on a malformed, overlong or surrogate sequence.  s must
 * be NUL-terminated: a sequence cut by the NUL is malformed. */
long ts_utf8_next(const unsigned char *s, size_t *i);
/* Writes code point cp (at most 0x10FFFF) as 1 to 4 bytes at dst; returns the count. */
size_t ts_utf8_put(char *dst, long cp);

/* Rotates/flips img in place from Exif orientation 1..8 to upright (1 is a no-op). */
int ts_image_orient(ts_image *img, int orientation);

int ts_png_decode(const unsigned char *bytes, size_t size, int64_t max_pixels, ts_image *out);
int ts_png_encode(FILE *f, const ts_image *img, const ts_image_write_opts *opts);

int ts_jpeg_decode(const unsigned char *bytes, size_t size, int64_t max_pixels, ts_image *out);
int ts_jpeg_encode(FILE *f, const ts_image *img, const ts_image_write_opts *opts);

#endif
