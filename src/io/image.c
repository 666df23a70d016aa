/*
 * The image type, file dispatch and pixel conversions; see image.h.
 *
 * Reading maps the file and hands the bytes to the decoder its magic number names,
 * so reading a file and fuzzing from memory run the same code.  Writing goes to a
 * temporary name in the same directory and is renamed over the target only after
 * the encoder and fclose() both succeed, so a crash, a full disk or a bad input
 * never leaves a half image under the real name.
 */
#include "io/image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/image_codec.h"

int ts_image_check_size(int64_t width, int64_t height, int64_t max_pixels)
{
    if (max_pixels <= 0)
        max_pixels = TS_IMAGE_DEFAULT_MAX_PIXELS;
    if (width < 1 || height < 1)
        return ts_fail(TS_ERR_FORMAT, "image has no pixels (%lldx%lld)", (long long)width, (long long)height);
    if (width > TS_IMAGE_MAX_SIDE || height > TS_IMAGE_MAX_SIDE)
        return ts_fail(TS_ERR_LIMIT, "image is %lldx%lld; sides above %d are refused", (long long)width,
                       (long long)height, TS_IMAGE_MAX_SIDE);
    if (width * height > max_pixels)
        return ts_fail(TS_ERR_LIMIT, "image is %lldx%lld = %lld pixels, above the limit of %lld", (long long)width,
                       (long long)height, (long long)(width * height), (long long)max_pixels);
    return TS_OK;
}

size_t ts_image_sample_size(const ts_image *img)
{
    return img->depth == 16 ? 2 : 1;
}

size_t ts_image_bytes(const ts_image *img)
{
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels * ts_image_sample_size(img);
}

static int check_layout(int width, int height, int channels, int depth)
{
    if (channels < 1 || channels > 4)
        return ts_fail(TS_ERR_ARG, "an image has 1 to 4 channels, not %d", channels);
    if (depth != 8 && depth != 16)
        return ts_fail(TS_ERR_ARG, "an image has 8 or 16 bits per sample, not %d", depth);
    if (width < 1 || height < 1 || width > TS_IMAGE_MAX_SIDE || height > TS_IMAGE_MAX_SIDE)
        return ts_fail(TS_ERR_LIMIT, "image size %dx%d is outside 1..%d", width, height, TS_IMAGE_MAX_SIDE);
    return TS_OK;
}

int ts_image_alloc(ts_image *img, int width, int height, int channels, int depth)
{
    memset(img, 0, sizeof *img);
    int rc = check_layout(width, height, channels, depth);
    if (rc < 0)
        return rc;
    ts_image shape = {.width = width, .height = height, .channels = channels, .depth = depth};
    void *data = calloc(1, ts_image_bytes(&shape));
    if (!data)
        return ts_fail(TS_ERR_NOMEM, "out of memory for a %dx%d image (%zu bytes)", width, height,
                       ts_image_bytes(&shape));
    *img = shape;
    img->data = data;
    return TS_OK;
}

void ts_image_free(ts_image *img)
{
    free(img->data);
    free(img->parameters);
    memset(img, 0, sizeof *img);
}

int ts_image_set_parameters(ts_image *img, const char *text)
{
    char *copy = NULL;
    if (text && !(copy = strdup(text)))
        return ts_fail(TS_ERR_NOMEM, "out of memory for the parameters text");
    free(img->parameters);
    img->parameters = copy;
    return TS_OK;
}

long ts_utf8_next(const unsigned char *s, size_t *i)
{
    unsigned c = s[*i];
    int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (extra < 0)
        return -1;
    long cp = extra == 0 ? (long)c : (long)(c & (0x3F >> extra));
    for (int k = 1; k <= extra; k++) {
        if ((s[*i + (size_t)k] & 0xC0) != 0x80) /* also stops at the terminating NUL */
            return -1;
        cp = (cp << 6) | (s[*i + (size_t)k] & 0x3F);
    }
    static const long min_for_length[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_for_length[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += (size_t)extra + 1;
    return cp;
}

size_t ts_utf8_put(char *dst, long cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    int extra = cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
    static const unsigned char lead[] = {0, 0xC0, 0xE0, 0xF0};
    dst[0] = (char)(lead[extra] | (cp >> (6 * extra)));
    for (int k = 1; k <= extra; k++)
        dst[k] = (char)(0x80 | ((cp >> (6 * (extra - k))) & 0x3F));
    return (size_t)extra + 1;
}

/* ---- reading ------------------------------------------------------------- */

int ts_image_decode_memory(const void *bytes, size_t size, const ts_image_read_opts *opts, ts_image *out)
{
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    static const unsigned char jpeg_magic[3] = {0xFF, 0xD8, 0xFF};
    int64_t max_pixels = opts ? opts->max_pixels : 0;
    memset(out, 0, sizeof *out);
    if (size >= sizeof png_magic && memcmp(bytes, png_magic, sizeof png_magic) == 0)
        return ts_png_decode(bytes, size, max_pixels, out);
    if (size >= sizeof jpeg_magic && memcmp(bytes, jpeg_magic, sizeof jpeg_magic) == 0)
        return ts_jpeg_decode(bytes, size, max_pixels, out);
    return ts_fail(TS_ERR_FORMAT, "not a PNG or JPEG file (%zu bytes, unknown signature)", size);
}

int ts_image_read(const char *path, ts_image *out)
{
    return ts_image_read_ex(path, NULL, out);
}

int ts_image_read_ex(const char *path, const ts_image_read_opts *opts, ts_image *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ts_fail(TS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ts_fail(TS_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return ts_fail(TS_ERR_FORMAT, "%s: empty file", path);
    }
    size_t size = (size_t)st.st_size;
    void *bytes = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (bytes == MAP_FAILED)
        return ts_fail(TS_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    int rc = ts_image_decode_memory(bytes, size, opts, out);
    munmap(bytes, size);
    if (rc < 0)
        return ts_fail_context(rc, "%s: ", path);
    return rc;
}

int ts_image_orient(ts_image *img, int orientation)
{
    if (orientation <= 1 || orientation > 8)
        return TS_OK;
    int w = img->width, h = img->height, swap = orientation >= 5, out_w = swap ? h : w;
    size_t px = (size_t)img->channels * ts_image_sample_size(img);
    unsigned char *dst = malloc(ts_image_bytes(img));
    if (!dst)
        return ts_fail(TS_ERR_NOMEM, "out of memory rotating a %dx%d image", w, h);
    const unsigned char *src = img->data;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int dx, dy; /* where the stored pixel (x, y) lands when shown upright */
            switch (orientation) {
            case 2: dx = w - 1 - x; dy = y; break;         /* mirrored */
            case 3: dx = w - 1 - x; dy = h - 1 - y; break; /* upside down */
            case 4: dx = x; dy = h - 1 - y; break;         /* flipped */
            case 5: dx = y; dy = x; break;                 /* transposed */
            case 6: dx = h - 1 - y; dy = x; break;         /* needs 90 degrees clockwise */
            case 7: dx = h - 1 - y; dy = w - 1 - x; break; /* transversed */
            default: dx = y; dy = w - 1 - x; break;        /* 8: needs 90 degrees counter-clockwise */
            }
            memcpy(dst + ((size_t)dy * (size_t)out_w + (size_t)dx) * px, src + ((size_t)y * (size_t)w + (size_t)x) * px,
                   px);
        }
    free(img->data);
    img->data = dst;
    img->width = out_w;
    img->height = swap ? w : h;
    return TS_OK;
}

/* ---- writing ------------------------------------------------------------- */

typedef int (*image_encoder)(FILE *f, const ts_image *img, const ts_image_write_opts *opts);

static image_encoder encoder_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (!dot)
        return NULL;
    if (strcasecmp(dot, ".png") == 0)
        return ts_png_encode;
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0)
        return ts_jpeg_encode;
    return NULL;
}

int ts_image_write(const char *path, const ts_image *img, const ts_image_write_opts *opts)
{
    image_encoder encode = encoder_for(path);
    if (!encode)
        return ts_fail(TS_ERR_ARG, "%s: unknown image type; the name must end in .png, .jpg or .jpeg", path);
    int rc = check_layout(img->width, img->height, img->channels, img->depth);
    if (rc < 0)
        return ts_fail_context(rc, "%s: ", path);
    if (!img->data)
        return ts_fail(TS_ERR_ARG, "%s: image has no pixel data", path);

    size_t tmp_size = strlen(path) + 32;
    char *tmp = malloc(tmp_size);
    if (!tmp)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wbx");
    if (!f) {
        rc = ts_fail(TS_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    rc = encode(f, img, opts);
    if (fclose(f) != 0 && rc == TS_OK)
        rc = ts_fail(TS_ERR_IO, "write failed: %s", strerror(errno));
    if (rc == TS_OK && rename(tmp, path) != 0)
        rc = ts_fail(TS_ERR_IO, "cannot rename %s into place: %s", tmp, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
        ts_fail_context(rc, "%s: ", path);
    }
    free(tmp);
    return rc;
}

/* ---- conversions --------------------------------------------------------- */

static float sample_max(int depth)
{
    return depth == 16 ? 65535.0f : 255.0f;
}

void ts_image_to_planar(const ts_image *img, ts_image_range range, float *dst)
{
    size_t plane = (size_t)img->width * (size_t)img->height;
    int channels = img->channels;
    float scale = (range == TS_RANGE_SIGNED ? 2.0f : 1.0f) / sample_max(img->depth);
    float offset = range == TS_RANGE_SIGNED ? -1.0f : 0.0f;
    const uint8_t *p8 = img->data;
    const uint16_t *p16 = img->data;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < channels; c++) {
            size_t s = i * (size_t)channels + (size_t)c;
            float v = img->depth == 16 ? (float)p16[s] : (float)p8[s];
            dst[(size_t)c * plane + i] = v * scale + offset;
        }
}

int ts_image_from_planar(const float *src, int channels, int width, int height, int depth, ts_image_range range,
                         ts_image *out)
{
    int rc = ts_image_alloc(out, width, height, channels, depth);
    if (rc < 0)
        return rc;
    size_t plane = (size_t)width * (size_t)height;
    float max = sample_max(depth);
    float lo = range == TS_RANGE_SIGNED ? -1.0f : 0.0f;
    float scale = max / (range == TS_RANGE_SIGNED ? 2.0f : 1.0f);
    uint8_t *p8 = out->data;
    uint16_t *p16 = out->data;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < channels; c++) {
            float v = (src[(size_t)c * plane + i] - lo) * scale;
            v = v > 0.0f ? (v < max ? v : max) : 0.0f; /* NaN lands on 0 too */
            size_t s = i * (size_t)channels + (size_t)c;
            if (depth == 16)
                p16[s] = (uint16_t)lrintf(v);
            else
                p8[s] = (uint8_t)lrintf(v);
        }
    return TS_OK;
}

/* Reads sample s of img widened to 16 bits (8-bit v becomes v * 257, which keeps 0 and max). */
static uint32_t get16(const ts_image *img, size_t s)
{
    return img->depth == 16 ? ((const uint16_t *)img->data)[s] : ((const uint8_t *)img->data)[s] * 257u;
}

static void put16(ts_image *img, size_t s, uint32_t v)
{
    if (img->depth == 16)
        ((uint16_t *)img->data)[s] = (uint16_t)v;
    else
        ((uint8_t *)img->data)[s] = (uint8_t)((v * 255u + 32767u) / 65535u);
}

int ts_image_convert(const ts_image *src, int channels, int depth, ts_image *out)
{
    int rc = ts_image_alloc(out, src->width, src->height, channels, depth);
    if (rc < 0)
        return rc;
    int in_color = src->channels <= 2 ? 1 : 3, in_alpha = src->channels % 2 == 0;
    int out_color = channels <= 2 ? 1 : 3, out_alpha = channels % 2 == 0;
    size_t pixels = (size_t)src->width * (size_t)src->height;
    for (size_t i = 0; i < pixels; i++) {
        size_t s = i * (size_t)src->channels, d = i * (size_t)channels;
        uint32_t rgb[3];
        for (int c = 0; c < 3; c++)
            rgb[c] = get16(src, s + (size_t)(in_color == 3 ? c : 0));
        if (out_color == 1 && in_color == 3) /* Rec. 601 luma in fixed point: weights sum to 1000 */
            rgb[0] = (299u * rgb[0] + 587u * rgb[1] + 114u * rgb[2] + 500u) / 1000u;
        for (int c = 0; c < out_color; c++)
            put16(out, d + (size_t)c, rgb[c]);
        if (out_alpha)
            put16(out, d + (size_t)out_color, in_alpha ? get16(src, s + (size_t)in_color) : 65535u);
    }
    return TS_OK;
}

int ts_image_split_alpha(const ts_image *src, ts_image *color, ts_image *alpha)
{
    memset(color, 0, sizeof *color);
    memset(alpha, 0, sizeof *alpha);
    if (src->channels % 2 != 0)
        return ts_fail(TS_ERR_ARG, "image has %d channels and no alpha to split off", src->channels);
    int rc = ts_image_convert(src, src->channels - 1, src->depth, color);
    if (rc < 0)
        return rc;
    rc = ts_image_alloc(alpha, src->width, src->height, 1, src->depth);
    if (rc < 0) {
        ts_image_free(color);
        return rc;
    }
    size_t pixels = (size_t)src->width * (size_t)src->height;
    for (size_t i = 0; i < pixels; i++)
        put16(alpha, i, get16(src, i * (size_t)src->channels + (size_t)src->channels - 1));
    return TS_OK;
}

int ts_image_join_alpha(const ts_image *color, const ts_image *alpha, ts_image *out)
{
    memset(out, 0, sizeof *out);
    if ((color->channels != 1 && color->channels != 3) || alpha->channels != 1)
        return ts_fail(TS_ERR_ARG, "join_alpha takes 1- or 3-channel colour and 1-channel alpha, not %d and %d",
                       color->channels, alpha->channels);
    if (color->width != alpha->width || color->height != alpha->height || color->depth != alpha->depth)
        return ts_fail(TS_ERR_ARG, "colour is %dx%d at %d bits but alpha is %dx%d at %d bits", color->width,
                       color->height, color->depth, alpha->width, alpha->height, alpha->depth);
    int rc = ts_image_convert(color, color->channels + 1, color->depth, out);
    if (rc < 0)
        return rc;
    size_t pixels = (size_t)color->width * (size_t)color->height;
    for (size_t i = 0; i < pixels; i++)
        put16(out, i * (size_t)out->channels + (size_t)color->channels, get16(alpha, i));
    return TS_OK;
}
