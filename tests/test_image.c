/*
 * Image I/O: exact PNG round trips for every layout, JPEG within a tolerance,
 * files built directly with libpng/libjpeg (palette, tRNS, low bit depth,
 * interlace, CMYK, Exif orientation) decoded against expected pixels computed here,
 * the parameters text in PNG (Latin-1 tEXt and UTF-8 iTXt) and JPEG (Exif
 * UserComment), and bad input (truncations, absurd headers, random bytes, bad names)
 * failing cleanly.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "core/error.h"
#include "io/image.h"
#include "test.h"

static char scratch_dir[512];

/* The path of a scratch file; the last four returned stay valid. */
static const char *scratch(const char *name)
{
    static char paths[4][1024];
    static int next;
    char *path = paths[next++ % 4];
    if (!scratch_dir[0]) {
        const char *dir = getenv("TESSERA_TEST_TMP");
        snprintf(scratch_dir, sizeof scratch_dir, "%s", dir && dir[0] ? dir : "/tmp");
        mkdir(scratch_dir, 0777);
    }
    snprintf(path, sizeof paths[0], "%s/image_%s", scratch_dir, name);
    return path;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int no_temp_left(const char *path)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    return !file_exists(tmp);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    *size = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)n);
    *size = fread(bytes, 1, (size_t)n, f);
    fclose(f);
    return bytes;
}

static void spill(const char *path, const void *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, size, f);
    fclose(f);
}

static void fill_random(ts_image *img, unsigned long long seed)
{
    size_t n = ts_image_bytes(img);
    unsigned char *p = img->data;
    for (size_t i = 0; i < n; i++) {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        p[i] = (unsigned char)((seed * 2685821657736338717ull) >> 56);
    }
}

/* A smooth RGB (or gray) picture, the kind JPEG is meant for. */
static void fill_smooth(ts_image *img)
{
    uint8_t *p = img->data;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < img->channels; c++)
                *p++ = (uint8_t)(40 + 150.0 * (0.5 + 0.5 * sin(x * 0.07 + c) * cos(y * 0.05 - c)));
}

static unsigned sample_at(const ts_image *img, size_t s)
{
    return img->depth == 16 ? ((const uint16_t *)img->data)[s] : ((const uint8_t *)img->data)[s];
}

static void test_png_roundtrip_all_layouts(void)
{
    for (int depth = 8; depth <= 16; depth += 8)
        for (int channels = 1; channels <= 4; channels++) {
            ts_image img, back;
            CHECK(ts_image_alloc(&img, 37, 23, channels, depth) == TS_OK);
            fill_random(&img, 1000u + (unsigned)(channels * depth));
            const char *path = scratch("roundtrip.png");
            int rc = ts_image_write(path, &img, NULL);
            CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
            CHECK(no_temp_left(path));
            rc = ts_image_read(path, &back);
            CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
            CHECK(back.width == 37 && back.height == 23);
            CHECK_MSG(back.channels == channels && back.depth == depth, "got %d ch %d bits", back.channels,
                      back.depth);
            CHECK(back.parameters == NULL);
            CHECK(rc == TS_OK && memcmp(img.data, back.data, ts_image_bytes(&img)) == 0);
            ts_image_free(&img);
            ts_image_free(&back);
        }
}

static void test_png_16bit_byte_order(void)
{
    /* PNG stores 16-bit samples big-endian; plain libpng (no swap) must see 01 02. */
    ts_image img;
    CHECK(ts_image_alloc(&img, 1, 1, 1, 16) == TS_OK);
    ((uint16_t *)img.data)[0] = 0x0102;
    const char *path = scratch("order.png");
    CHECK(ts_image_write(path, &img, NULL) == TS_OK);
    FILE *f = fopen(path, "rb");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_read_info(png, info);
    png_byte raw[2] = {0, 0};
    png_read_row(png, raw, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    CHECK_MSG(raw[0] == 1 && raw[1] == 2, "file holds %02x %02x", raw[0], raw[1]);
    ts_image_free(&img);
}

/* Writes a PNG with libpng directly, for layouts ts_image_write never produces. */
static void write_png_raw(const char *path, int w, int h, int bit_depth, int color_type, int interlace,
                          const png_color *palette, int palette_n, const png_byte *trans, int trans_n,
                          const png_color_16 *trans_color, png_bytep *rows)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bit_depth, color_type, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, palette_n);
    if (trans || trans_color)
        png_set_tRNS(png, info, trans, trans_n, trans_color);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_png_palette_with_transparency(void)
{
    const png_color palette[3] = {{255, 0, 0}, {0, 128, 0}, {10, 20, 30}};
    const png_byte trans[2] = {0, 77}; /* entry 2 has no tRNS entry: opaque */
    png_byte row0[1] = {0x06}, row1[1] = {0x24}; /* 2-bit indices: 0 0 1 2 / 0 2 1 0 */
    png_bytep rows[2] = {row0, row1};
    const char *path = scratch("palette.png");
    write_png_raw(path, 4, 2, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, palette, 3, trans, 2, NULL, rows);
    ts_image img;
    int rc = ts_image_read(path, &img);
    CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
    if (rc != TS_OK)
        return;
    CHECK(img.channels == 4 && img.depth == 8 && img.width == 4 && img.height == 2);
    const int idx[8] = {0, 0, 1, 2, 0, 2, 1, 0};
    const int alpha[3] = {0, 77, 255};
    const uint8_t *p = img.data;
    for (int i = 0; i < 8; i++) {
        CHECK(p[4 * i + 0] == palette[idx[i]].red);
        CHECK(p[4 * i + 1] == palette[idx[i]].green);
        CHECK(p[4 * i + 2] == palette[idx[i]].blue);
        CHECK(p[4 * i + 3] == alpha[idx[i]]);
    }
    ts_image_free(&img);
}

static void test_png_low_bit_gray_and_interlaced(void)
{
    /* 2-bit gray: value v expands to v * 85. */
    png_byte g0[1] = {0x1B}, g1[1] = {0xE4}; /* 0 1 2 3 / 3 2 1 0 */
    png_bytep grows[2] = {g0, g1};
    const char *path = scratch("gray2.png");
    write_png_raw(path, 4, 2, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL, grows);
    ts_image img;
    CHECK(ts_image_read(path, &img) == TS_OK);
    CHECK(img.channels == 1 && img.depth == 8);
    const uint8_t want[8] = {0, 85, 170, 255, 255, 170, 85, 0};
    CHECK(img.data && memcmp(img.data, want, 8) == 0);
    ts_image_free(&img);

    /* Adam7-interlaced 16-bit RGB: pixel (x, y) channel c = x * 1000 + y * 10 + c. */
    enum { W = 13, H = 11 };
    static png_byte raw[H][W * 6];
    png_bytep rows[H];
    for (int y = 0; y < H; y++) {
        rows[y] = raw[y];
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                unsigned v = (unsigned)(x * 1000 + y * 10 + c);
                raw[y][(x * 3 + c) * 2] = (png_byte)(v >> 8);
                raw[y][(x * 3 + c) * 2 + 1] = (png_byte)v;
            }
    }
    path = scratch("adam7.png");
    write_png_raw(path, W, H, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, NULL, 0, NULL, 0, NULL, rows);
    int rc = ts_image_read(path, &img);
    CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
    CHECK(img.channels == 3 && img.depth == 16 && img.width == W && img.height == H);
    int bad = 0;
    for (int y = 0; y < H && rc == TS_OK; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                bad += sample_at(&img, ((size_t)y * W + (size_t)x) * 3 + (size_t)c) !=
                       (unsigned)(x * 1000 + y * 10 + c);
    CHECK_MSG(bad == 0, "%d samples differ", bad);
    ts_image_free(&img);

    /* Gray with a tRNS colour key becomes gray + alpha. */
    png_byte k0[3] = {5, 9, 5};
    png_bytep krows[1] = {k0};
    png_color_16 key = {.gray = 5};
    path = scratch("graykey.png");
    write_png_raw(path, 3, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, &key, krows);
    CHECK(ts_image_read(path, &img) == TS_OK);
    const uint8_t want_ga[6] = {5, 0, 9, 255, 5, 0};
    CHECK(img.channels == 2 && img.data && memcmp(img.data, want_ga, 6) == 0);
    ts_image_free(&img);
}

static double mean_abs_diff(const ts_image *a, const ts_image *b, int *max_diff)
{
    size_t n = ts_image_bytes(a);
    const uint8_t *p = a->data, *q = b->data;
    double sum = 0;
    *max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)p[i] - (int)q[i]);
        sum += d;
        if (d > *max_diff)
            *max_diff = d;
    }
    return sum / (double)n;
}

static void test_jpeg_roundtrip(void)
{
    for (int channels = 1; channels <= 3; channels += 2) {
        ts_image img, back;
        CHECK(ts_image_alloc(&img, 67, 45, channels, 8) == TS_OK);
        fill_smooth(&img);
        const char *path = scratch(channels == 1 ? "gray.jpg" : "rgb.JPEG");
        ts_image_write_opts opts = {.jpeg_quality = 95};
        int rc = ts_image_write(path, &img, &opts);
        CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
        rc = ts_image_read(path, &back);
        CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
        CHECK(back.width == 67 && back.height == 45 && back.channels == channels && back.depth == 8);
        if (rc == TS_OK) {
            int max_diff;
            double mad = mean_abs_diff(&img, &back, &max_diff);
            CHECK_MSG(mad < 1.5 && max_diff <= 16, "mean %.3f max %d", mad, max_diff);
            CHECK(back.parameters == NULL);
        }
        ts_image_free(&img);
        ts_image_free(&back);
    }
}

static void test_jpeg_quality_and_depth(void)
{
    ts_image img, img16, back;
    CHECK(ts_image_alloc(&img, 64, 64, 3, 8) == TS_OK);
    fill_smooth(&img);
    /* Lower quality must give a smaller file: the setting reaches the encoder. */
    const char *path = scratch("q.jpg");
    size_t size_hi = 0, size_lo = 0;
    CHECK(ts_image_write(path, &img, &(ts_image_write_opts){.jpeg_quality = 95}) == TS_OK);
    free(slurp(path, &size_hi));
    CHECK(ts_image_write(path, &img, &(ts_image_write_opts){.jpeg_quality = 20}) == TS_OK);
    free(slurp(path, &size_lo));
    CHECK_MSG(size_lo < size_hi, "q20 %zu bytes, q95 %zu bytes", size_lo, size_hi);
    CHECK(ts_image_write(path, &img, &(ts_image_write_opts){.jpeg_quality = 101}) == TS_ERR_ARG);

    /* 16-bit input is narrowed to 8 bits on the way into JPEG. */
    CHECK(ts_image_convert(&img, 3, 16, &img16) == TS_OK);
    CHECK(ts_image_write(path, &img16, NULL) == TS_OK);
    CHECK(ts_image_read(path, &back) == TS_OK);
    int max_diff;
    CHECK(back.depth == 8 && back.data && mean_abs_diff(&img, &back, &max_diff) < 1.5);
    ts_image_free(&back);
    ts_image_free(&img16);

    /* Alpha is refused, and the refusal leaves no file behind. */
    ts_image rgba;
    CHECK(ts_image_convert(&img, 4, 8, &rgba) == TS_OK);
    const char *apath = scratch("alpha.jpg");
    unlink(apath);
    CHECK(ts_image_write(apath, &rgba, NULL) == TS_ERR_UNSUPPORTED);
    CHECK(strstr(ts_error_message(), "alpha") != NULL);
    CHECK(!file_exists(apath) && no_temp_left(apath));
    ts_image_free(&rgba);
    ts_image_free(&img);
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} test_jpeg_err;

static void test_jpeg_error_exit(j_common_ptr c)
{
    longjmp(((test_jpeg_err *)c->err)->jump, 1);
}

static void test_jpeg_cmyk_becomes_rgb(void)
{
    /* libjpeg writes CMYK with an Adobe marker, i.e. in Photoshop's inverted
     * convention, where R = C * K / 255 on the stored values. */
    enum { W = 16, H = 8 };
    static unsigned char cmyk[H][W * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char px[4] = {200, 100, 255, (unsigned char)(y < 4 ? 255 : 128)};
            memcpy(&cmyk[y][x * 4], px, 4);
        }
    const char *path = scratch("cmyk.jpg");
    FILE *f = fopen(path, "wb");
    struct jpeg_compress_struct c;
    test_jpeg_err err;
    c.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = test_jpeg_error_exit;
    if (setjmp(err.jump)) {
        CHECK(!"libjpeg failed writing the CMYK test file");
        fclose(f);
        return;
    }
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = W;
    c.image_height = H;
    c.input_components = 4;
    c.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < H; y++) {
        JSAMPROW row = cmyk[y];
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);

    ts_image img;
    int rc = ts_image_read(path, &img);
    CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
    if (rc != TS_OK)
        return;
    CHECK(img.channels == 3 && img.width == W && img.height == H);
    const uint8_t *p = img.data;
    for (int y = 0; y < H; y += H - 1) {
        int k = y < 4 ? 255 : 128;
        const int want[3] = {200 * k / 255, 100 * k / 255, 255 * k / 255};
        for (int ch = 0; ch < 3; ch++)
            CHECK_MSG(abs(p[((size_t)y * W + 3) * 3 + (size_t)ch] - want[ch]) <= 3, "y %d ch %d: %d vs %d", y, ch,
                      p[((size_t)y * W + 3) * 3 + (size_t)ch], want[ch]);
    }
    ts_image_free(&img);
}

/* Writes a gray JPEG with libjpeg directly, with an APP1 payload. */
static void write_jpeg_with_app1(const char *path, const unsigned char *gray, int w, int h, const unsigned char *app1,
                                 unsigned app1_size)
{
    FILE *f = fopen(path, "wb");
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    jpeg_write_marker(&c, JPEG_APP0 + 1, app1, app1_size);
    for (int y = 0; y < h; y++) {
        JSAMPROW r = (JSAMPROW)(gray + (size_t)y * (size_t)w);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void test_jpeg_orientation(void)
{
    /* Stored 32x16 picture in quadrants TL 0, TR 80, BL 160, BR 240; for each Exif
     * orientation, the quadrants as a viewer shows them upright. */
    enum { W = 32, H = 16 };
    static unsigned char gray[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            gray[y * W + x] = (unsigned char)(80 * (x >= W / 2) + 160 * (y >= H / 2));
    static const int upright[9][4] = {
        {0}, {0, 80, 160, 240}, {80, 0, 240, 160}, {240, 160, 80, 0}, {160, 240, 0, 80},
        {0, 160, 80, 240}, {160, 0, 240, 80}, {240, 80, 160, 0}, {80, 240, 0, 160},
    };
    const char *path = scratch("orient.jpg");
    for (int o = 1; o <= 8; o++) {
        const unsigned char exif[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, /* IFD0 at 8 */
                                      1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (unsigned char)o, 0, 0, 0, 0, 0, 0, 0};
        write_jpeg_with_app1(path, gray, W, H, exif, sizeof exif);
        ts_image img;
        int rc = ts_image_read(path, &img);
        CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
        if (rc != TS_OK)
            continue;
        int ow = o >= 5 ? H : W, oh = o >= 5 ? W : H;
        CHECK_MSG(img.width == ow && img.height == oh, "orientation %d: %dx%d", o, img.width, img.height);
        const uint8_t *p = img.data;
        for (int q = 0; q < 4 && img.width == ow; q++) {
            int x = (q % 2 ? 3 : 1) * ow / 4, y = (q / 2 ? 3 : 1) * oh / 4;
            CHECK_MSG(abs(p[y * ow + x] - upright[o][q]) <= 6, "orientation %d quadrant %d: %d, want %d", o, q,
                      p[y * ow + x], upright[o][q]);
        }
        ts_image_free(&img);
    }
}

static void test_jpeg_parameters(void)
{
    ts_image img, back;
    CHECK(ts_image_alloc(&img, 16, 8, 3, 8) == TS_OK);
    fill_smooth(&img);
    const char *path = scratch("params.jpg");
    /* ASCII, Latin-1, CJK and an emoji (a UTF-16 surrogate pair). */
    const char *text = "a cat, \xc3\xa9t\xc3\xa9\nSteps: 20, Seed: 42 \xe7\x8c\xab\xf0\x9f\x90\x88";
    CHECK(ts_image_write(path, &img, &(ts_image_write_opts){.parameters = text}) == TS_OK);
    CHECK(ts_image_read(path, &back) == TS_OK);
    CHECK_MSG(back.parameters && strcmp(back.parameters, text) == 0, "read back \"%s\"",
              back.parameters ? back.parameters : "(null)");
    ts_image_free(&back);

    /* The bytes follow piexif's layout: big-endian TIFF, UNICODE prefix, UTF-16BE. */
    size_t size;
    unsigned char *bytes = slurp(path, &size);
    static const unsigned char want[] = {'U', 'N', 'I', 'C', 'O', 'D', 'E', 0, 0, 'a', 0, ' ', 0, 'c'};
    int found = 0;
    for (size_t i = 0; bytes && i + sizeof want <= size; i++)
        found |= memcmp(bytes + i, want, sizeof want) == 0;
    CHECK(found && bytes && memcmp(bytes + 2, "\xff\xe0", 2) == 0); /* JFIF first, then Exif */
    free(bytes);

    /* Too long for one marker segment: a clear error, no file. */
    char *long_text = malloc(40000);
    memset(long_text, 'x', 39999);
    long_text[39999] = '\0';
    const char *lpath = scratch("long.jpg");
    unlink(lpath);
    CHECK(ts_image_write(lpath, &img, &(ts_image_write_opts){.parameters = long_text}) == TS_ERR_LIMIT);
    CHECK(!file_exists(lpath) && no_temp_left(lpath));
    free(long_text);

    /* A little-endian Exif block with an ASCII comment, as other tools write it. */
    static const unsigned char le[] = {
        'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0,  /* header, IFD0 at 8 */
        1, 0, 0x69, 0x87, 4, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0, 0, 0, 0, /* Exif IFD at 26 */
        1, 0, 0x86, 0x92, 7, 0, 11, 0, 0, 0, 44, 0, 0, 0, 0, 0, 0, 0, /* 11 bytes at 44 */
        'A', 'S', 'C', 'I', 'I', 0, 0, 0, 'h', 'e', 'y'};
    static const unsigned char black[64];
    write_jpeg_with_app1(path, black, 8, 8, le, sizeof le);
    CHECK(ts_image_read(path, &back) == TS_OK);
    CHECK_MSG(back.parameters && strcmp(back.parameters, "hey") == 0, "got \"%s\"",
              back.parameters ? back.parameters : "(null)");
    ts_image_free(&back);

    /* A broken Exif block (offset past its end) is ignored; the picture still loads. */
    unsigned char broken[sizeof le];
    memcpy(broken, le, sizeof le);
    broken[40] = 200;
    write_jpeg_with_app1(path, black, 8, 8, broken, sizeof broken);
    CHECK(ts_image_read(path, &back) == TS_OK);
    CHECK(back.parameters == NULL && back.width == 8);
    ts_image_free(&back);
    ts_image_free(&img);
}

/* Whether the file holds a chunk of this type whose keyword is "parameters". */
static int has_text_chunk(const char *path, const char *type)
{
    size_t size = 0;
    unsigned char *bytes = slurp(path, &size);
    char needle[32];
    snprintf(needle, sizeof needle, "%sparameters", type);
    int found = 0;
    for (size_t i = 0; bytes && i + strlen(needle) <= size; i++)
        if (memcmp(bytes + i, needle, strlen(needle)) == 0)
            found = 1;
    free(bytes);
    return found;
}

static void test_parameters_chunk(void)
{
    static const struct {
        const char *text, *chunk;
    } cases[] = {
        {"a cat\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: x",
         "tEXt"},
        {"caf\xc3\xa9 au lait, \xc2\xb5-scale", "tEXt"},            /* fits Latin-1 */
        {"\xe7\x8c\xab \xf0\x9f\x90\x88 and caf\xc3\xa9", "iTXt"}, /* CJK and an emoji */
    };
    ts_image img;
    CHECK(ts_image_alloc(&img, 5, 4, 3, 8) == TS_OK);
    fill_random(&img, 7);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = scratch("params.png");
        ts_image_write_opts opts = {.parameters = cases[i].text};
        int rc = ts_image_write(path, &img, &opts);
        CHECK_MSG(rc == TS_OK, "%s", ts_error_message());
        CHECK_MSG(has_text_chunk(path, cases[i].chunk), "case %zu has no %s chunk", i, cases[i].chunk);
        ts_image back;
        CHECK(ts_image_read(path, &back) == TS_OK);
        CHECK_MSG(back.parameters && strcmp(back.parameters, cases[i].text) == 0, "case %zu read back \"%s\"", i,
                  back.parameters ? back.parameters : "(null)");
        ts_image_free(&back);
    }
    /* Malformed UTF-8 is refused before anything is written. */
    const char *bad = scratch("badtext.png");
    unlink(bad);
    CHECK(ts_image_write(bad, &img, &(ts_image_write_opts){.parameters = "ok \xc3("}) == TS_ERR_ARG);
    CHECK(ts_image_write(bad, &img, &(ts_image_write_opts){.parameters = "\xe7\x8c\xab \xed\xa0\x80"}) == TS_ERR_ARG);
    CHECK(!file_exists(bad) && no_temp_left(bad));
    ts_image_free(&img);
}

static void test_parameters_chunk_after_image_data(void)
{
    /* Text chunks may also follow IDAT; libpng keeps them in the end info. */
    const char *path = scratch("late.png");
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, 2, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_byte row[2] = {1, 2};
    png_write_row(png, row);
    png_text t = {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "parameters", .text = "late \xe9"};
    png_set_text(png, info, &t, 1);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    ts_image img;
    CHECK(ts_image_read(path, &img) == TS_OK);
    CHECK_MSG(img.parameters && strcmp(img.parameters, "late \xc3\xa9") == 0, "got \"%s\"",
              img.parameters ? img.parameters : "(null)");
    ts_image_free(&img);
}

static void check_truncations(const char *path)
{
    size_t size = 0;
    unsigned char *bytes = slurp(path, &size);
    CHECK(bytes != NULL);
    ts_image img;
    CHECK(bytes && ts_image_decode_memory(bytes, size, NULL, &img) == TS_OK);
    ts_image_free(&img);
    const size_t cuts[] = {0, 1, 3, 8, 20, 33, 60, 100, size / 3, size / 2, size - 40, size - 12, size - 2, size - 1};
    for (size_t i = 0; bytes && i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= size)
            continue;
        int rc = ts_image_decode_memory(bytes, cuts[i], NULL, &img);
        CHECK_MSG(rc < 0, "%s cut at %zu of %zu decoded", path, cuts[i], size);
        CHECK(img.data == NULL && img.parameters == NULL);
    }
    /* Corrupt one byte in the middle of the data. */
    if (bytes) {
        bytes[size / 2] ^= 0x55;
        int rc = ts_image_decode_memory(bytes, size, NULL, &img);
        ts_image_free(&img);
        (void)rc; /* JPEG may absorb a flipped byte; what matters is no crash */
    }
    free(bytes);
}

static void test_truncated_files(void)
{
    ts_image img;
    CHECK(ts_image_alloc(&img, 40, 30, 3, 8) == TS_OK);
    fill_smooth(&img);
    const char *png = scratch("cut.png");
    CHECK(ts_image_write(png, &img, &(ts_image_write_opts){.parameters = "Steps: 1"}) == TS_OK);
    check_truncations(png);
    const char *jpg = scratch("cut.jpg");
    CHECK(ts_image_write(jpg, &img, NULL) == TS_OK);
    check_truncations(jpg);
    /* A truncated file read by path names the path in the message. */
    size_t size = 0;
    unsigned char *bytes = slurp(png, &size);
    const char *half = scratch("half.png");
    spill(half, bytes, size / 2);
    ts_image none;
    CHECK(ts_image_read(half, &none) == TS_ERR_FORMAT);
    CHECK(strstr(ts_error_message(), "half.png") && strstr(ts_error_message(), "truncated"));
    free(bytes);
    ts_image_free(&img);
}

static uint32_t crc32_plain(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Signature + IHDR (8-bit RGB of the given size) + IEND, valid CRCs, no image data. */
static size_t png_header_only(unsigned char *out, uint32_t width, uint32_t height)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    memcpy(out, sig, 8);
    unsigned char *ihdr = out + 8;
    put_be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put_be32(ihdr + 8, width);
    put_be32(ihdr + 12, height);
    const unsigned char rest[5] = {8, 2, 0, 0, 0};
    memcpy(ihdr + 16, rest, 5);
    put_be32(ihdr + 21, crc32_plain(ihdr + 4, 17));
    unsigned char *iend = ihdr + 25;
    put_be32(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    put_be32(iend + 8, crc32_plain(iend + 4, 4));
    return 8 + 25 + 12;
}

static void test_bounds(void)
{
    unsigned char bytes[64];
    ts_image img;
    size_t n = png_header_only(bytes, 100000, 100000);
    CHECK(ts_image_decode_memory(bytes, n, NULL, &img) == TS_ERR_LIMIT);
    CHECK_MSG(strstr(ts_error_message(), "100000x100000") != NULL, "%s", ts_error_message());
    CHECK(img.data == NULL);
    /* Within the side limit but above the pixel budget given by the caller. */
    n = png_header_only(bytes, 4000, 3000);
    CHECK(ts_image_decode_memory(bytes, n, &(ts_image_read_opts){.max_pixels = 1000000}, &img) == TS_ERR_LIMIT);
    /* Same header under the budget: passes the check, then fails on the missing data. */
    CHECK(ts_image_decode_memory(bytes, n, NULL, &img) == TS_ERR_FORMAT);
    CHECK(img.data == NULL);
    /* A text chunk claiming 2 GB in a tiny file is caught before libpng allocates it. */
    n = png_header_only(bytes, 4, 4) - 12; /* drop IEND */
    put_be32(bytes + n, 0x7FFFFFFF);
    memcpy(bytes + n + 4, "tEXtparam", 9);
    CHECK(ts_image_decode_memory(bytes, n + 13, NULL, &img) == TS_ERR_FORMAT);
    CHECK_MSG(strstr(ts_error_message(), "claims 2147483647 bytes") != NULL, "%s", ts_error_message());
    /* The budget applies to JPEG too. */
    ts_image small;
    CHECK(ts_image_alloc(&small, 20, 10, 1, 8) == TS_OK);
    const char *path = scratch("budget.jpg");
    CHECK(ts_image_write(path, &small, NULL) == TS_OK);
    CHECK(ts_image_read_ex(path, &(ts_image_read_opts){.max_pixels = 199}, &img) == TS_ERR_LIMIT);
    CHECK(ts_image_read_ex(path, &(ts_image_read_opts){.max_pixels = 200}, &img) == TS_OK);
    ts_image_free(&img);
    ts_image_free(&small);
    CHECK(ts_image_alloc(&img, 65536, 1, 1, 8) == TS_ERR_LIMIT);
    CHECK(ts_image_alloc(&img, 1, 1, 5, 8) == TS_ERR_ARG);
    CHECK(ts_image_alloc(&img, 1, 1, 3, 12) == TS_ERR_ARG);
}

static void test_random_bytes(void)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    static const unsigned char jpeg_sig[4] = {0xFF, 0xD8, 0xFF, 0xE0};
    unsigned long long state = 12345;
    unsigned char buf[4096];
    for (int trial = 0; trial < 600; trial++) {
        size_t n = 1 + (size_t)(trial * 37) % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((test_randf(&state) + 1.0f) * 127.9f);
        if (trial % 3 == 1 && n >= 8)
            memcpy(buf, png_sig, 8);
        if (trial % 3 == 2 && n >= 4)
            memcpy(buf, jpeg_sig, 4);
        ts_image img;
        int rc = ts_image_decode_memory(buf, n, NULL, &img);
        CHECK_MSG(rc < 0, "random buffer %d decoded", trial);
        CHECK(img.data == NULL);
    }
    const char *path = scratch("random.bin");
    memset(buf, 'x', 1000);
    spill(path, buf, 1000);
    ts_image img;
    CHECK(ts_image_read(path, &img) == TS_ERR_FORMAT);
    CHECK(strstr(ts_error_message(), "not a PNG or JPEG") != NULL);
    const char *missing = scratch("does-not-exist.png");
    unlink(missing);
    CHECK(ts_image_read(missing, &img) == TS_ERR_IO);
    spill(path, buf, 0);
    CHECK(ts_image_read(path, &img) == TS_ERR_FORMAT);
}

static void test_write_names(void)
{
    ts_image img;
    CHECK(ts_image_alloc(&img, 3, 3, 3, 8) == TS_OK);
    const char *names[] = {"out.bmp", "out", "out.png.txt", "dir.png/out", "out.webp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *path = scratch(names[i]);
        CHECK_MSG(ts_image_write(path, &img, NULL) == TS_ERR_ARG, "%s", names[i]);
        CHECK(strstr(ts_error_message(), ".png, .jpg or .jpeg") != NULL);
        CHECK(!file_exists(path));
    }
    CHECK(ts_image_write(scratch("UPPER.PNG"), &img, NULL) == TS_OK);
    CHECK(ts_image_write(scratch("no/such/dir/x.png"), &img, NULL) == TS_ERR_IO);
    /* Overwriting replaces the old file in one step. */
    const char *path = scratch("replace.png");
    CHECK(ts_image_write(path, &img, NULL) == TS_OK);
    ts_image bigger, back;
    CHECK(ts_image_alloc(&bigger, 9, 2, 1, 16) == TS_OK);
    CHECK(ts_image_write(path, &bigger, NULL) == TS_OK);
    CHECK(ts_image_read(path, &back) == TS_OK && back.width == 9 && back.depth == 16);
    ts_image_free(&back);
    ts_image_free(&bigger);
    ts_image_free(&img);
}

static void test_planar_f32(void)
{
    for (int depth = 8; depth <= 16; depth += 8)
        for (int range = TS_RANGE_UNIT; range <= TS_RANGE_SIGNED; range++) {
            ts_image img, back;
            CHECK(ts_image_alloc(&img, 7, 5, 3, depth) == TS_OK);
            fill_random(&img, 99u + (unsigned)depth);
            float *planar = malloc(sizeof(float) * 3 * 7 * 5);
            ts_image_to_planar(&img, (ts_image_range)range, planar);
            /* Channel-major layout and the range mapping, checked with a plain formula. */
            double max = depth == 16 ? 65535.0 : 255.0;
            int bad = 0;
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 35; i++) {
                    double v = sample_at(&img, (size_t)i * 3 + (size_t)c) / max;
                    if (range == TS_RANGE_SIGNED)
                        v = v * 2.0 - 1.0;
                    bad += fabs(planar[c * 35 + i] - v) > 1e-6;
                }
            CHECK_MSG(bad == 0, "%d floats off (depth %d range %d)", bad, depth, range);
            CHECK(ts_image_from_planar(planar, 3, 7, 5, depth, (ts_image_range)range, &back) == TS_OK);
            CHECK(back.data && memcmp(back.data, img.data, ts_image_bytes(&img)) == 0);
            free(planar);
            ts_image_free(&img);
            ts_image_free(&back);
        }
    /* Out-of-range values clamp; NaN becomes 0; halves round to nearest. */
    const float src[6] = {-3.0f, 2.0f, NAN, 0.0f, 1.0f, 0.5f};
    ts_image img;
    CHECK(ts_image_from_planar(src, 1, 6, 1, 8, TS_RANGE_SIGNED, &img) == TS_OK);
    const uint8_t want[6] = {0, 255, 0, 128, 255, 191};
    CHECK(img.data && memcmp(img.data, want, 6) == 0);
    ts_image_free(&img);
}

static void test_channel_conversions(void)
{
    ts_image rgb, gray, rgba, back, color, alpha, joined, wide;
    CHECK(ts_image_alloc(&rgb, 6, 4, 3, 8) == TS_OK);
    fill_random(&rgb, 5);
    const uint8_t *p = rgb.data;

    CHECK(ts_image_convert(&rgb, 1, 8, &gray) == TS_OK);
    int bad = 0;
    for (int i = 0; i < 24; i++) {
        double y = 0.299 * p[3 * i] + 0.587 * p[3 * i + 1] + 0.114 * p[3 * i + 2];
        bad += fabs(((uint8_t *)gray.data)[i] - y) > 0.51;
    }
    CHECK_MSG(bad == 0, "%d luma values off", bad);

    /* gray -> RGB repeats the value. */
    CHECK(ts_image_convert(&gray, 3, 8, &back) == TS_OK);
    bad = 0;
    for (int i = 0; i < 24; i++)
        for (int c = 0; c < 3; c++)
            bad += ((uint8_t *)back.data)[3 * i + c] != ((uint8_t *)gray.data)[i];
    CHECK(bad == 0);
    ts_image_free(&back);

    /* RGB -> RGBA is opaque; split gives back RGB and an all-255 alpha; join restores. */
    CHECK(ts_image_convert(&rgb, 4, 8, &rgba) == TS_OK);
    CHECK(ts_image_split_alpha(&rgba, &color, &alpha) == TS_OK);
    CHECK(color.channels == 3 && alpha.channels == 1);
    CHECK(memcmp(color.data, rgb.data, ts_image_bytes(&rgb)) == 0);
    bad = 0;
    for (int i = 0; i < 24; i++)
        bad += ((uint8_t *)alpha.data)[i] != 255;
    CHECK(bad == 0);
    ((uint8_t *)alpha.data)[5] = 17;
    CHECK(ts_image_join_alpha(&color, &alpha, &joined) == TS_OK);
    CHECK(joined.channels == 4 && ((uint8_t *)joined.data)[5 * 4 + 3] == 17);
    CHECK(memcmp(joined.data, rgba.data, 5 * 4) == 0);
    ts_image_free(&alpha);
    CHECK(ts_image_split_alpha(&rgb, &back, &alpha) == TS_ERR_ARG);
    CHECK(ts_image_join_alpha(&rgba, &color, &back) == TS_ERR_ARG);

    /* 8 -> 16 -> 8 bits is exact, and 16-bit values are v * 257. */
    CHECK(ts_image_convert(&rgb, 3, 16, &wide) == TS_OK);
    CHECK(((uint16_t *)wide.data)[7] == p[7] * 257u);
    CHECK(ts_image_convert(&wide, 3, 8, &back) == TS_OK);
    CHECK(memcmp(back.data, rgb.data, ts_image_bytes(&rgb)) == 0);
    ts_image_free(&back);

    ts_image_free(&wide);
    ts_image_free(&joined);
    ts_image_free(&color);
    ts_image_free(&rgba);
    ts_image_free(&gray);
    ts_image_free(&rgb);
}

static void test_infotext_format(void)
{
    ts_infotext info = {.prompt = "a cat", .negative_prompt = "ugly", .steps = 20, .sampler = "Euler a",
                        .cfg_scale = 7, .has_seed = 1, .seed = 42, .width = 512, .height = 512, .model = "x"};
    char *s = ts_format_infotext(&info);
    CHECK(s && strcmp(s, "a cat\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, "
                         "Size: 512x512, Model: x") == 0);
    free(s);

    const ts_infotext_pair extra[] = {{"Hires upscaler", "4x-UltraSharp"}, {"Note", "a, \"b\": c\nd"}};
    ts_infotext full = {.prompt = "line one\nline two", .steps = 30, .sampler = "DPM++ 2M", .scheduler = "Karras",
                        .cfg_scale = 4.5, .has_seed = 1, .seed = 18446744073709551615ull, .width = 1024,
                        .height = 768, .model = "sdxl: base", .denoising_strength = 0.35, .extra = extra,
                        .extra_count = 2};
    s = ts_format_infotext(&full);
    CHECK_MSG(s && strcmp(s, "line one\nline two\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: "
                             "4.5, Seed: 18446744073709551615, Size: 1024x768, Model: \"sdxl: base\", Denoising "
                             "strength: 0.35, Hires upscaler: 4x-UltraSharp, Note: \"a, \\\"b\\\": c\\nd\"") == 0,
              "%s", s);
    free(s);

    /* Without a prompt the text starts with the settings line. */
    ts_infotext bare = {.steps = 1};
    s = ts_format_infotext(&bare);
    CHECK(s && strcmp(s, "Steps: 1") == 0);
    free(s);
}

TEST_MAIN(TEST(test_png_roundtrip_all_layouts), TEST(test_png_16bit_byte_order),
          TEST(test_png_palette_with_transparency), TEST(test_png_low_bit_gray_and_interlaced),
          TEST(test_jpeg_roundtrip), TEST(test_jpeg_quality_and_depth), TEST(test_jpeg_cmyk_becomes_rgb),
          TEST(test_jpeg_parameters), TEST(test_jpeg_orientation),
          TEST(test_parameters_chunk), TEST(test_parameters_chunk_after_image_data), TEST(test_truncated_files),
          TEST(test_bounds), TEST(test_random_bytes), TEST(test_write_names), TEST(test_planar_f32),
          TEST(test_channel_conversions), TEST(test_infotext_format))
