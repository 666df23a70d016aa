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
 *
 * The parameters text goes where the web UI puts it in a JPEG (through piexif): an
 * Exif APP1 block, big-endian TIFF, whose Exif IFD holds one UserComment tag with
 * the "UNICODE\0" prefix and UTF-16BE text.  Reading accepts either TIFF byte order
 * and the "ASCII" prefix too; a malformed Exif block is ignored, not fatal, since the
 * picture itself is fine.  The Exif Orientation tag of camera photos is applied, so
 * a portrait shot is upscaled standing up, as every viewer shows it.
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

#define EXIF_IFD_POINTER_TAG 0x8769
#define EXIF_USER_COMMENT_TAG 0x9286
#define EXIF_ORIENTATION_TAG 0x0112
#define JPEG_MARKER_MAX 65533 /* payload bytes in one marker segment */

static const unsigned char exif_header[6] = {'E', 'x', 'i', 'f', 0, 0};
static const unsigned char unicode_prefix[8] = {'U', 'N', 'I', 'C', 'O', 'D', 'E', 0};
static const unsigned char ascii_prefix[8] = {'A', 'S', 'C', 'I', 'I', 0, 0, 0};

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

/* ---- Exif UserComment ----------------------------------------------------- */

typedef struct {
    const unsigned char *p; /* the TIFF structure: offsets count from here */
    size_t n;
    int big_endian;
} tiff_view;

static unsigned tiff16(const tiff_view *t, size_t at)
{
    const unsigned char *p = t->p + at;
    return t->big_endian ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]);
}

static uint32_t tiff32(const tiff_view *t, size_t at)
{
    const unsigned char *p = t->p + at;
    return t->big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                         : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Offset of the 12-byte entry for tag in the IFD at ifd, or 0 if absent or out of bounds. */
static size_t tiff_find(const tiff_view *t, size_t ifd, unsigned tag)
{
    if (ifd < 8 || ifd > t->n || t->n - ifd < 2)
        return 0;
    size_t count = tiff16(t, ifd);
    for (size_t i = 0; i < count; i++) {
        size_t entry = ifd + 2 + 12 * i;
        if (entry + 12 > t->n)
            return 0;
        if (tiff16(t, entry) == tag)
            return entry;
    }
    return 0;
}

/* UTF-16 code units (in the TIFF's byte order) to a new UTF-8 string; stops at a
 * NUL unit; unpaired surrogates become U+FFFD. */
static char *utf16_to_utf8(const tiff_view *t, size_t at, size_t units)
{
    char *dst = malloc(3 * units + 1); /* a pair (2 units) makes 4 bytes, a lone unit at most 3 */
    if (!dst)
        return NULL;
    size_t len = 0;
    for (size_t i = 0; i < units; i++) {
        long cp = (long)tiff16(t, at + 2 * i);
        if (cp == 0)
            break;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < units) {
            long low = (long)tiff16(t, at + 2 * i + 2);
            if (low >= 0xDC00 && low <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i++;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 0xFFFD;
        len += ts_utf8_put(dst + len, cp);
    }
    dst[len] = '\0';
    return dst;
}

/* Points t at the TIFF structure of an Exif APP1 payload; returns 0 if it is not one. */
static int exif_tiff(const unsigned char *app1, size_t n, tiff_view *t)
{
    if (n < sizeof exif_header + 8 || memcmp(app1, exif_header, sizeof exif_header) != 0)
        return 0;
    *t = (tiff_view){app1 + sizeof exif_header, n - sizeof exif_header, app1[sizeof exif_header] == 'M'};
    return memcmp(t->p, t->big_endian ? "MM" : "II", 2) == 0 && tiff16(t, 2) == 42;
}

/* The IFD0 Orientation tag (1..8), 1 when absent or invalid. */
static int exif_orientation(const tiff_view *t)
{
    size_t entry = tiff_find(t, tiff32(t, 4), EXIF_ORIENTATION_TAG);
    unsigned v = entry && tiff16(t, entry + 2) == 3 /* SHORT */ ? tiff16(t, entry + 8) : 1;
    return v >= 1 && v <= 8 ? (int)v : 1;
}

/* Sets *text to the UserComment, or leaves it NULL when there is none (or it is
 * malformed). Fails only when out of memory. */
static int exif_user_comment(const tiff_view *t, char **text)
{
    size_t entry = tiff_find(t, tiff32(t, 4), EXIF_IFD_POINTER_TAG);
    if (!entry || !(entry = tiff_find(t, tiff32(t, entry + 8), EXIF_USER_COMMENT_TAG)))
        return TS_OK;
    size_t count = tiff32(t, entry + 4), at = tiff32(t, entry + 8);
    if (count < 8 || at > t->n || count > t->n - at)
        return TS_OK; /* (a comment of 4 bytes or fewer would be inline, but cannot hold a prefix) */
    const unsigned char *value = t->p + at;
    if (memcmp(value, unicode_prefix, 8) == 0)
        *text = utf16_to_utf8(t, at + 8, (count - 8) / 2);
    else if (memcmp(value, ascii_prefix, 8) == 0)
        *text = strndup((const char *)value + 8, count - 8);
    else
        return TS_OK;
    return *text ? TS_OK : ts_fail(TS_ERR_NOMEM, "out of memory for the JPEG parameters text");
}

/* Builds the APP1 payload holding text as an Exif UserComment (see the top comment). */
static int exif_block(const char *text, unsigned char **block, size_t *size)
{
    enum { IFD0 = 8, EXIF_IFD = IFD0 + 18, COMMENT = EXIF_IFD + 18 }; /* TIFF offsets */
    const unsigned char *s = (const unsigned char *)text;
    size_t units = 0, n = strlen(text);
    for (size_t i = 0; i < n; units++) {
        long cp = ts_utf8_next(s, &i);
        if (cp < 0)
            return ts_fail(TS_ERR_ARG, "the parameters text is not valid UTF-8 (byte %zu)", i);
        units += cp > 0xFFFF;
    }
    size_t comment = 8 + 2 * units, total = sizeof exif_header + COMMENT + comment;
    if (total > JPEG_MARKER_MAX)
        return ts_fail(TS_ERR_LIMIT, "the parameters text is too long for a JPEG Exif block (%zu bytes, max %d)",
                       total, JPEG_MARKER_MAX);
    unsigned char *b = calloc(1, total), *tiff = b + sizeof exif_header;
    if (!b)
        return ts_fail(TS_ERR_NOMEM, "out of memory for the JPEG Exif block");
    memcpy(b, exif_header, sizeof exif_header);
    const unsigned char head[8] = {'M', 'M', 0, 42, 0, 0, 0, IFD0};
    memcpy(tiff, head, 8);
    /* Each IFD: entry count 1, one entry (tag, type, count, value/offset), next IFD 0. */
    const unsigned char ifd0[18] = {0, 1, 0x87, 0x69, 0, 4, 0, 0, 0, 1, 0, 0, 0, EXIF_IFD};
    unsigned char exif_ifd[18] = {0, 1, 0x92, 0x86, 0, 7};
    for (int k = 0; k < 4; k++)
        exif_ifd[6 + k] = (unsigned char)(comment >> (24 - 8 * k));
    exif_ifd[13] = COMMENT;
    memcpy(tiff + IFD0, ifd0, sizeof ifd0);
    memcpy(tiff + EXIF_IFD, exif_ifd, sizeof exif_ifd);
    unsigned char *p = tiff + COMMENT;
    memcpy(p, unicode_prefix, 8);
    p += 8;
    for (size_t i = 0; i < n;) {
        long cp = ts_utf8_next(s, &i);
        if (cp > 0xFFFF) { /* a surrogate pair */
            long v = cp - 0x10000;
            long hi = 0xD800 + (v >> 10), lo = 0xDC00 + (v & 0x3FF);
            *p++ = (unsigned char)(hi >> 8);
            *p++ = (unsigned char)hi;
            cp = lo;
        }
        *p++ = (unsigned char)(cp >> 8);
        *p++ = (unsigned char)cp;
    }
    *block = b;
    *size = total;
    return TS_OK;
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
    char *parameters;        /* the Exif UserComment, handed to out on success */
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
    jpeg_save_markers(c, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(c, TRUE);
    int rc = ts_image_check_size(c->image_width, c->image_height, r->max_pixels);
    if (rc < 0)
        return rc;
    /* Saved markers live in the image pool, which finish_decompress frees. */
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = c->marker_list; m; m = m->next) {
        tiff_view t;
        if (!exif_tiff(m->data, m->data_length, &t))
            continue;
        if (!r->parameters && (rc = exif_user_comment(&t, &r->parameters)) < 0)
            return rc;
        if (orientation == 1)
            orientation = exif_orientation(&t);
    }

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
    r->out->parameters = r->parameters;
    r->parameters = NULL;
    return ts_image_orient(r->out, orientation);
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
    free(r->parameters);
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
    unsigned char *exif; /* APP1 payload carrying the parameters text, or NULL */
    size_t exif_size;
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
    if (w->exif)
        jpeg_write_marker(c, JPEG_APP0 + 1, w->exif, (unsigned)w->exif_size);
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
    int rc = opts && opts->parameters ? exif_block(opts->parameters, &w->exif, &w->exif_size) : TS_OK;
    if (rc == TS_OK)
        rc = jpeg_encode_body(w);
    jpeg_destroy_compress(&w->cinfo);
    free(w->exif);
    free(w->row8);
    free(w);
    return rc;
}
