/*
 * PNG through libpng: decode any PNG into the 8/16-bit interleaved layout of
 * image.h, encode every layout back, and carry the "parameters" text chunk.
 *
 * libpng reports errors by longjmp.  Each setjmp lives in a small *_body function
 * whose state sits in a struct owned by its caller, so nothing the body changes is
 * an automatic variable of the function that called setjmp (whose values the C
 * standard leaves indeterminate after the jump); the caller then frees whatever
 * the body got as far as allocating.  libpng's own message is copied out before the
 * jump and becomes the ts_fail text.
 *
 * Text follows what the web UI (through PIL) writes: tEXt, which is Latin-1, when
 * the text fits Latin-1, otherwise uncompressed iTXt, which is UTF-8.
 */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/image_codec.h"

static const char parameters_key[] = "parameters";

typedef struct {
    png_structp png;
    png_infop info;
    char message[256]; /* libpng's last error */
} png_state;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_state *s = png_get_error_ptr(png);
    snprintf(s->message, sizeof s->message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    /* Warnings (a bad CRC in an ancillary chunk, an odd sRGB profile) do not stop
     * decoding, and a library must not print to stderr. */
    (void)png;
    (void)msg;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct {
    png_state s;
    const unsigned char *bytes;
    size_t size, pos;
    int64_t max_pixels;
    ts_image *out;
} png_reader;

static void read_from_memory(png_structp png, png_bytep dst, size_t n)
{
    png_reader *r = png_get_io_ptr(png);
    if (n > r->size - r->pos)
        png_error(png, "file ends early (truncated PNG)");
    memcpy(dst, r->bytes + r->pos, n);
    r->pos += n;
}

/* Latin-1 bytes to a new UTF-8 string. */
static char *latin1_to_utf8(const char *src, size_t n)
{
    char *dst = malloc(2 * n + 1);
    if (!dst)
        return NULL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += ts_utf8_put(dst + len, (unsigned char)src[i]);
    dst[len] = '\0';
    return dst;
}

static int take_parameters(png_reader *r)
{
    png_textp text;
    int count = 0;
    png_get_text(r->s.png, r->s.info, &text, &count);
    for (int i = 0; i < count; i++) {
        if (strcmp(text[i].key, parameters_key) != 0)
            continue;
        int utf8 = text[i].compression == PNG_ITXT_COMPRESSION_NONE || text[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        size_t n = utf8 ? text[i].itxt_length : text[i].text_length;
        r->out->parameters = utf8 ? strndup(text[i].text, n) : latin1_to_utf8(text[i].text, n);
        if (!r->out->parameters)
            return ts_fail(TS_ERR_NOMEM, "out of memory for the PNG parameters text");
        return TS_OK;
    }
    return TS_OK;
}

static int png_decode_body(png_reader *r)
{
    png_structp png = r->s.png;
    png_infop info = r->s.info;
    if (setjmp(png_jmpbuf(png)))
        return ts_fail(TS_ERR_FORMAT, "bad PNG: %s", r->s.message);
    png_set_read_fn(png, r, read_from_memory);
    png_read_info(png, info);

    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    int rc = ts_image_check_size(width, height, r->max_pixels);
    if (rc < 0)
        return rc;

    /* Normalise to 8/16-bit gray, gray+alpha, RGB or RGBA. */
    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    if (bit_depth == 16 && host_is_little_endian())
        png_set_swap(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info), depth = png_get_bit_depth(png, info);
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16))
        return ts_fail(TS_ERR_UNSUPPORTED, "PNG decodes to %d channels of %d bits", channels, depth);
    rc = ts_image_alloc(r->out, (int)width, (int)height, channels, depth);
    if (rc < 0)
        return rc;

    size_t stride = (size_t)width * (size_t)channels * ts_image_sample_size(r->out);
    unsigned char *pixels = r->out->data;
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < height; y++)
            png_read_row(png, pixels + y * stride, NULL);
    png_read_end(png, info); /* text chunks may follow the image data */
    return take_parameters(r);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks that every chunk up to IEND fits in the file.  libpng allocates an
 * ancillary chunk's length before reading it, so a 50-byte file whose tEXt claims
 * 2 GB would otherwise cost a 2 GB allocation before the truncation shows. */
static int check_chunk_lengths(const unsigned char *bytes, size_t size)
{
    for (size_t pos = 8; pos + 12 <= size;) {
        size_t length = be32(bytes + pos);
        if (length > size - pos - 12)
            return ts_fail(TS_ERR_FORMAT, "bad PNG: the chunk at byte %zu claims %zu bytes but the file ends early "
                                          "(truncated PNG)", pos, length);
        if (memcmp(bytes + pos + 4, "IEND", 4) == 0)
            break;
        pos += 12 + length;
    }
    return TS_OK;
}

int ts_png_decode(const unsigned char *bytes, size_t size, int64_t max_pixels, ts_image *out)
{
    int rc = check_chunk_lengths(bytes, size);
    if (rc < 0)
        return rc;
    /* IHDR must come first; checking its size here refuses an absurd image before
     * libpng reads on (png_read_info stops only at the first IDAT). */
    if (size >= 24 && memcmp(bytes + 12, "IHDR", 4) == 0 &&
        (rc = ts_image_check_size(be32(bytes + 16), be32(bytes + 20), max_pixels)) < 0)
        return rc;
    png_reader r = {.bytes = bytes, .size = size, .max_pixels = max_pixels, .out = out};
    r.s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r.s, on_png_error, on_png_warning);
    r.s.info = r.s.png ? png_create_info_struct(r.s.png) : NULL;
    rc = r.s.info ? png_decode_body(&r) : ts_fail(TS_ERR_NOMEM, "cannot create a PNG decoder");
    png_destroy_read_struct(&r.s.png, &r.s.info, NULL);
    if (rc < 0)
        ts_image_free(out);
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

/* Sets *latin1 to the text re-encoded as Latin-1 when every character fits, else NULL.
 * Fails on malformed UTF-8. */
static int utf8_to_latin1(const char *text, char **latin1)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), i = 0, j = 0;
    char *dst = malloc(n + 1);
    if (!dst)
        return ts_fail(TS_ERR_NOMEM, "out of memory for the PNG parameters text");
    while (i < n) {
        long cp = ts_utf8_next(s, &i);
        if (cp < 0) {
            free(dst);
            return ts_fail(TS_ERR_ARG, "the parameters text is not valid UTF-8 (byte %zu)", i);
        }
        if (cp > 0xFF) {
            /* keep scanning: the whole text must be valid UTF-8 for iTXt too */
            free(dst);
            dst = NULL;
            while (i < n)
                if (ts_utf8_next(s, &i) < 0)
                    return ts_fail(TS_ERR_ARG, "the parameters text is not valid UTF-8 (byte %zu)", i);
            break;
        }
        dst[j++] = (char)cp;
    }
    if (dst)
        dst[j] = '\0';
    *latin1 = dst;
    return TS_OK;
}

typedef struct {
    png_state s;
    FILE *f;
    const ts_image *img;
    const ts_image_write_opts *opts;
    char *latin1; /* the parameters text as Latin-1, when it fits */
} png_writer;

static int png_encode_body(png_writer *w)
{
    static const int color_types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                      PNG_COLOR_TYPE_RGB_ALPHA};
    png_structp png = w->s.png;
    const ts_image *img = w->img;
    const char *parameters = w->opts ? w->opts->parameters : NULL;
    if (setjmp(png_jmpbuf(png)))
        return ts_fail(TS_ERR_IO, "PNG write failed: %s", w->s.message);
    png_init_io(png, w->f);
    png_set_IHDR(png, w->s.info, (png_uint_32)img->width, (png_uint_32)img->height, img->depth,
                 color_types[img->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, w->opts && w->opts->png_level ? w->opts->png_level : TS_IMAGE_DEFAULT_PNG_LEVEL);
    if (parameters) {
        png_text t = {.key = (png_charp)parameters_key};
        if (w->latin1) {
            t.compression = PNG_TEXT_COMPRESSION_NONE;
            t.text = w->latin1;
        } else {
            t.compression = PNG_ITXT_COMPRESSION_NONE;
            t.text = (png_charp)parameters;
        }
        png_set_text(png, w->s.info, &t, 1);
    }
    png_write_info(png, w->s.info);
    if (img->depth == 16 && host_is_little_endian())
        png_set_swap(png);
    size_t stride = (size_t)img->width * (size_t)img->channels * ts_image_sample_size(img);
    const unsigned char *pixels = img->data;
    for (int y = 0; y < img->height; y++)
        png_write_row(png, pixels + (size_t)y * stride);
    png_write_end(png, NULL);
    return TS_OK;
}

int ts_png_encode(FILE *f, const ts_image *img, const ts_image_write_opts *opts)
{
    png_writer w = {.f = f, .img = img, .opts = opts};
    if (opts && (opts->png_level < 0 || opts->png_level > 9))
        return ts_fail(TS_ERR_ARG, "PNG compression level %d is outside 1..9", opts->png_level);
    if (opts && opts->parameters) {
        int rc = utf8_to_latin1(opts->parameters, &w.latin1);
        if (rc < 0)
            return rc;
    }
    w.s.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w.s, on_png_error, on_png_warning);
    w.s.info = w.s.png ? png_create_info_struct(w.s.png) : NULL;
    int rc = w.s.info ? png_encode_body(&w) : ts_fail(TS_ERR_NOMEM, "cannot create a PNG encoder");
    png_destroy_write_struct(&w.s.png, &w.s.info);
    free(w.latin1);
    return rc;
}
