/*
 * Image files: PNG and JPEG in, PNG and JPEG out, plus the bridge to model tensors.
 *
 * An image is interleaved samples, row-major, with 1 (gray), 2 (gray + alpha),
 * 3 (RGB) or 4 (RGBA) channels of 8- or 16-bit depth; 16-bit samples are native
 * uint16_t in memory whatever the file's byte order.  That is the one shape every
 * codec produces and consumes, so readers normalise (palette, low bit depths and
 * tRNS are expanded, CMYK JPEGs become RGB) and the rest of the engine never meets
 * a file-format corner case.  Models see planar f32 [C, H, W] (a batch of one:
 * [1, C, H, W]) in [0, 1] or [-1, 1]; alpha never goes through a model, so callers
 * split it off first and join it back after.
 *
 * Input is untrusted: the format is chosen by magic bytes, dimensions are checked
 * against bounds from the header before any pixel buffer is allocated, and any
 * libpng/libjpeg error becomes a ts_fail() message with nothing leaked.  Output
 * goes to "<path>.tmp.<pid>" and is renamed into place only when complete.
 *
 * Generation settings travel where AUTOMATIC1111's web UI puts them, so its PNG
 * Info tab and other tools read ours: the PNG text chunk "parameters", or in a
 * JPEG the Exif UserComment; ts_format_infotext builds the text in its layout.
 */
#ifndef TS_IO_IMAGE_H
#define TS_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Largest width or height accepted when reading or writing. */
#define TS_IMAGE_MAX_SIDE 65535
/* Default bound on width * height when reading (ts_image_read_opts.max_pixels = 0). */
#define TS_IMAGE_DEFAULT_MAX_PIXELS ((int64_t)1 << 30)
/* zlib level used when ts_image_write_opts.png_level is 0.  Level 4 is the first
 * lazy-matching level: on a 2048x2048 test picture it gave the same size as level 6
 * (libpng's default) in about 40% of the time, and big outputs are the point here. */
#define TS_IMAGE_DEFAULT_PNG_LEVEL 4
/* JPEG quality used when ts_image_write_opts.jpeg_quality is 0. */
#define TS_IMAGE_DEFAULT_JPEG_QUALITY 95

typedef struct {
    int width, height;
    int channels;      /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    int depth;         /* bits per sample: 8 (uint8_t) or 16 (uint16_t) */
    void *data;        /* height * width * channels samples, owned */
    char *parameters;  /* generation text found when reading (UTF-8), owned, or NULL */
} ts_image;

typedef struct {
    int64_t max_pixels; /* refuse width * height above this; 0 = TS_IMAGE_DEFAULT_MAX_PIXELS */
} ts_image_read_opts;

typedef struct {
    int jpeg_quality;       /* 1..100; 0 = TS_IMAGE_DEFAULT_JPEG_QUALITY */
    int png_level;          /* zlib level 1..9; 0 = TS_IMAGE_DEFAULT_PNG_LEVEL */
    const char *parameters; /* UTF-8 generation text to embed (PNG "parameters" chunk,
                             * JPEG Exif UserComment); NULL = none */
} ts_image_write_opts;

typedef enum {
    TS_RANGE_UNIT,   /* samples map to [0, 1] */
    TS_RANGE_SIGNED, /* samples map to [-1, 1], what diffusion VAEs take and give */
} ts_image_range;

/* Allocates a zeroed image. Fails on a bad layout or a side outside 1..TS_IMAGE_MAX_SIDE. */
int ts_image_alloc(ts_image *img, int width, int height, int channels, int depth);
/* Frees pixels and parameters and zeroes the struct; safe on a zeroed or freed image. */
void ts_image_free(ts_image *img);
/* Bytes per sample (1 or 2) and total bytes of pixel data. */
size_t ts_image_sample_size(const ts_image *img);
size_t ts_image_bytes(const ts_image *img);
/* Replaces img->parameters with a copy of text (NULL clears it). */
int ts_image_set_parameters(ts_image *img, const char *text);

/* Reads a PNG or JPEG (recognised by content, not name). opts may be NULL. On failure
 * *out is zeroed and the message names the path.  A JPEG's Exif Orientation is
 * applied, so pixels come out upright. */
int ts_image_read(const char *path, ts_image *out);
int ts_image_read_ex(const char *path, const ts_image_read_opts *opts, ts_image *out);
/* The same decoders over bytes in memory (what the fuzzer drives). */
int ts_image_decode_memory(const void *bytes, size_t size, const ts_image_read_opts *opts, ts_image *out);

/* Writes PNG for ".png", JPEG for ".jpg"/".jpeg" (any case); other names fail.
 * PNG keeps every layout and depth; JPEG stores 8-bit gray or RGB (16-bit input is
 * rounded to 8 bits, an alpha channel is refused) and its Exif block caps the
 * parameters text at about 32K UTF-16 units.  opts may be NULL. */
int ts_image_write(const char *path, const ts_image *img, const ts_image_write_opts *opts);

/* Planar f32 bridge. to_planar writes img->channels * height * width floats to dst,
 * channel-major ([C, H, W]). from_planar clamps to the range, rounds to the nearest
 * sample and allocates *out. */
void ts_image_to_planar(const ts_image *img, ts_image_range range, float *dst);
int ts_image_from_planar(const float *src, int channels, int width, int height, int depth, ts_image_range range,
                         ts_image *out);

/* Returns a new image with `channels` channels and `depth` bits: gray -> RGB repeats
 * the value, RGB -> gray takes Rec. 601 luma (0.299, 0.587, 0.114), a missing alpha
 * becomes opaque, an unwanted alpha is dropped; 8 <-> 16 bits scales by 257. */
int ts_image_convert(const ts_image *src, int channels, int depth, ts_image *out);
/* Splits a 2- or 4-channel image into its colour part (1 or 3 channels) and a
 * 1-channel alpha image of the same depth. */
int ts_image_split_alpha(const ts_image *src, ts_image *color, ts_image *alpha);
/* The inverse: colour (1 or 3 channels) plus 1-channel alpha of the same size and
 * depth into a 2- or 4-channel image. */
int ts_image_join_alpha(const ts_image *color, const ts_image *alpha, ts_image *out);

/* One extra "Key: value" pair of an infotext, written after the standard keys. */
typedef struct {
    const char *key, *value;
} ts_infotext_pair;

/* Settings of one generation, as AUTOMATIC1111 lists them.  Unset fields are left
 * out: NULL strings and zero numbers (so a zeroed struct plus a few fields works);
 * has_seed says whether seed is set, since 0 is a valid seed. */
typedef struct {
    const char *prompt, *negative_prompt;
    int steps;
    const char *sampler;   /* "Euler a", "DPM++ 2M", ... */
    const char *scheduler; /* written as "Schedule type" */
    double cfg_scale;
    int has_seed;
    uint64_t seed;
    int width, height;
    const char *model;
    double denoising_strength;
    const ts_infotext_pair *extra;
    int extra_count;
} ts_infotext;

/* Formats settings into the web UI's text: prompt, "\nNegative prompt: ...", then one
 * line "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 42,
 * Size: 512x512, Model: x, Denoising strength: 0.5, <extra>".  A value holding ',', ':'
 * or a newline is JSON-quoted, as the web UI does, so the line parses back.  Returns a
 * malloc'd string (caller frees) or NULL with the error set. */
char *ts_format_infotext(const ts_infotext *info);

#endif
