/*
 * JPEG through libjpeg-turbo: decode baseline and progressive gray, YCbCr/RGB and
 * CMYK/YCCK files to 8-bit gray or RGB; encode 8-bit gray or RGB at a chosen quality.
 *
 * libjpeg's default error handler calls exit(), so an error manager here copies the
 * formatted message and longjmps back to the decoder's *_body function (setjmp
 * discipline as in png.c).  Two inputs that libjpeg would accept are refused on
 * purpose: a file that ends early (libjpeg only warns and pads the picture with
 * grey, which would hand a half image to a model) and a progressive file with an
 * absurd number of scans (each scan re-walks the whole coefficient buffer, a known
 * way to make a tiny file take minutes).
 *
 * CMYK is converted to RGB with the naive formula R = (1 - C)(1 - K); files with an
 * Adobe marker store inverted CMYK, as Photoshop writes them.  No colour profile is
 * applied, so this is approximate, but it beats refusing the file.
 */
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
/* jerror.h after jpeglib.h: it needs the types. */
#include <jerror.h>

#include "core/error.h"
#include "io/image_codec.h"

/* More scans than any real encoder emits (progressive files use about 10). */
#define JPEG_MAX_SCANS 500

typedef struct {
    struct jpeg_error_mgr pub; /* first, so libjpeg's pointer is also ours */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_errors;

static void on_jpeg_error(j_common_ptr c)
{
    jpeg_errors *e = (jpeg_errors *)c->err;
    c->err->format_message(c, e->message);
    longjmp(e->jump, 1);
}

static void on_jpeg_message(j_common_ptr c, int level)
{
    /* level < 0 is a warning about the data; only "premature end" is fatal. */
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_errors *e = (jpeg_errors *)c->err;
        snprintf(e->message, sizeof e->message, "file ends early (truncated JPEG)");
        longjmp(e->jump, 1);
    }
}

static void on_jpeg_progress(j_common_ptr c)
{
    if (c->is_decompressor && ((j_decompress_ptr)c)->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_errors *e = (jpeg_errors *)c->err;
        snprintf(e->message, sizeof e->message, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

static void init_errors(jpeg_errors *e)
{
    jpeg_std_error(&e->pub);
    e->pub.error_exit = on_jpeg_error;
    e->pub.emit_message = on_jpeg_message;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_errors err;
    struct jpeg_progress_mgr progress;
    const unsigned char *bytes;
    size_t size;
    int64_t max_pixels;
    ts_image *out;
    unsigned char *cmyk_row; /* scanline buffer for CMYK input */
} jpeg_reader;

static void cmyk_row_to_rgb(const unsigned char *cmyk, unsigned char *rgb, int width, int inverted)
{
    for (int x = 0; x < width; x++, cmyk += 4, rgb += 3) {
        unsigned k = inverted ? cmyk[3] : 255u - cmyk[3];
        for (int ch = 0; ch < 3; ch++) {
            unsigned v = inverted ? cmyk[ch] : 255u - cmyk[ch];
            rgb[ch] = (unsigned char)((v * k + 127) / 255);
        }
    }
}

static int jpeg_decode_body(jpeg_reader *r)
{
    j_decompress_ptr c = &r->cinfo;
    if (setjmp(r->err.jump))
        return ts_fail(TS_ERR_FORMAT, "bad JPEG: %s", r->err.message);
    jpeg_create_decompress(c);
    r->progress.progress_monitor = on_jpeg_progress;
    c->progress = &r->progress;
    jpeg_mem_src(c, r->bytes, (unsigned long)r->size);
    jpeg_read_header(c, TRUE);
    int rc = ts_image_check_size(c->image_width, c->image_height, r->max_pixels);
    if (rc < 0)
        return rc;

    int cmyk = c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK;
    int channels = c->jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    c->out_color_space = cmyk ? JCS_CMYK : channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(c);
    if (c->output_components != (cmyk ? 4 : channels))
        return ts_fail(TS_ERR_UNSUPPORTED, "JPEG decodes to %d components", c->output_components);
    rc = ts_image_alloc(r->out, (int)c->output_width, (int)c->output_height, channels, 8);
    if (rc < 0)
        return rc;
    if (cmyk && !(r->cmyk_row = malloc((size_t)c->output_width * 4)))
        return ts_fail(TS_ERR_NOMEM, "out of memory for a JPEG scanline");

    size_t stride = (size_t)c->output_width * (size_t)channels;
    unsigned char *pixels = r->out->data;
    while (c->output_scanline < c->output_height) {
        unsigned char *dst = pixels + (size_t)c->output_scanline * stride;
        JSAMPROW row = cmyk ? r->cmyk_row : dst;
        if (jpeg_read_scanlines(c, &row, 1) != 1)
            return ts_fail(TS_ERR_FORMAT, "bad JPEG: no data for row %u", c->output_scanline);
        if (cmyk)
            cmyk_row_to_rgb(row, dst, (int)c->output_width, c->saw_Adobe_marker);
    }
    jpeg_finish_decompress(c);
    return TS_OK;
}

int ts_jpeg_decode(const unsigned char *bytes, size_t size, int64_t max_pixels, ts_image *out)
{
    jpeg_reader *r = calloc(1, sizeof *r); /* jmp_buf and cinfo are large for the stack of a worker */
    if (!r)
        return ts_fail(TS_ERR_NOMEM, "cannot create a JPEG decoder");
    r->bytes = bytes;
    r->size = size;
    r->max_pixels = max_pixels;
    r->out = out;
    init_errors(&r->err);
    r->cinfo.err = &r->err.pub;
    int rc = jpeg_decode_body(r);
    jpeg_destroy_decompress(&r->cinfo);
    free(r->cmyk_row);
    free(r);
    if (rc < 0)
        ts_image_free(out);
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

typedef struct {
    struct jpeg_compress_struct cinfo;
    jpeg_errors err;
    FILE *f;
    const ts_image *img;
    int quality;
    unsigned char *row8; /* 16-bit input narrowed to 8 bits, one row at a time */
} jpeg_writer;

static int jpeg_encode_body(jpeg_writer *w)
{
    j_compress_ptr c = &w->cinfo;
    const ts_image *img = w->img;
    if (setjmp(w->err.jump))
        return ts_fail(TS_ERR_IO, "JPEG write failed: %s", w->err.message);
    jpeg_create_compress(c);
    jpeg_stdio_dest(c, w->f);
    c->image_width = (JDIMENSION)img->width;
    c->image_height = (JDIMENSION)img->height;
    c->input_components = img->channels;
    c->in_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(c);
    jpeg_set_quality(c, w->quality, TRUE);
    size_t samples = (size_t)img->width * (size_t)img->channels;
    if (img->depth == 16 && !(w->row8 = malloc(samples)))
        return ts_fail(TS_ERR_NOMEM, "out of memory for a JPEG scanline");
    jpeg_start_compress(c, TRUE);
    while (c->next_scanline < c->image_height) {
        size_t first = (size_t)c->next_scanline * samples;
        JSAMPROW row;
        if (img->depth == 16) {
            const uint16_t *src = (const uint16_t *)img->data + first;
            for (size_t i = 0; i < samples; i++)
                w->row8[i] = (unsigned char)((src[i] * 255u + 32767u) / 65535u);
            row = w->row8;
        } else {
            row = (unsigned char *)img->data + first; /* libjpeg only reads it */
        }
        jpeg_write_scanlines(c, &row, 1);
    }
    jpeg_finish_compress(c);
    return TS_OK;
}

int ts_jpeg_encode(FILE *f, const ts_image *img, const ts_image_write_opts *opts)
{
    int quality = opts && opts->jpeg_quality ? opts->jpeg_quality : TS_IMAGE_DEFAULT_JPEG_QUALITY;
    if (quality < 1 || quality > 100)
        return ts_fail(TS_ERR_ARG, "JPEG quality %d is outside 1..100", quality);
    if (img->channels == 2 || img->channels == 4)
        return ts_fail(TS_ERR_UNSUPPORTED, "JPEG has no alpha channel; write PNG or drop the alpha first");
    jpeg_writer *w = calloc(1, sizeof *w);
    if (!w)
        return ts_fail(TS_ERR_NOMEM, "cannot create a JPEG encoder");
    w->f = f;
    w->img = img;
    w->quality = quality;
    init_errors(&w->err);
    w->cinfo.err = &w->err.pub;
    int rc = jpeg_encode_body(w);
    jpeg_destroy_compress(&w->cinfo);
    free(w->row8);
    free(w);
    return rc;
}
