/*
 * ggml block formats: every block type is built here byte by byte from chosen scales
 * and quants, and its dequantisation is checked against values computed element by
 * element from the format description (indexing by element, not by the block loops
 * the library uses).  Scales are powers of two and small integers, so the expected
 * floats are exact and compared with ==.  The quantisers are checked by their error
 * bounds, and the row helpers by agreement with whole-tensor widening.
 */
#include <math.h>
#include <string.h>

#include "core/quant.h"
#include "core/tensor.h"
#include "test.h"

static void put_f16(unsigned char *p, uint16_t h)
{
    p[0] = (unsigned char)(h & 0xff);
    p[1] = (unsigned char)(h >> 8);
}

static unsigned char rand_byte(unsigned long long *s) { return (unsigned char)((test_randf(s) + 1.0f) * 128.0f); }

static int count_mismatches(const float *got, const double *want, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        if ((double)got[i] != want[i]) {
            if (bad < 4)
                fprintf(stderr, "  element %d: got %.9g want %.9g\n", i, (double)got[i], want[i]);
            bad++;
        }
    return bad;
}

static void test_q8_0(void)
{
    unsigned char b[2 * 34];
    put_f16(b, 0x3800);      /* 0.5 */
    put_f16(b + 34, 0xb400); /* -0.25 */
    double want[64];
    for (int j = 0; j < 32; j++) {
        b[2 + j] = (unsigned char)(int8_t)(j * 8 - 128); /* -128 .. 120 */
        b[36 + j] = (unsigned char)(int8_t)(127 - j);
        want[j] = 0.5 * (j * 8 - 128);
        want[32 + j] = -0.25 * (127 - j);
    }
    float y[64];
    ts_dequantize(TS_DTYPE_Q8_0, b, y, 64);
    CHECK(y[0] == -64.0f && y[31] == 60.0f && y[32] == -31.75f);
    CHECK(count_mismatches(y, want, 64) == 0);
}

static void test_q4_0_q4_1(void)
{
    unsigned char b0[18], b1[20];
    put_f16(b0, 0x4000); /* 2.0 */
    put_f16(b1, 0x3800); /* d = 0.5 */
    put_f16(b1 + 2, 0xc000); /* m = -2.0 */
    double want0[32], want1[32];
    for (int j = 0; j < 16; j++) {
        int lo = j, hi = 15 - j;
        b0[2 + j] = b1[4 + j] = (unsigned char)(lo | hi << 4);
        want0[j] = 2.0 * (lo - 8);
        want0[j + 16] = 2.0 * (hi - 8);
        want1[j] = 0.5 * lo - 2.0;
        want1[j + 16] = 0.5 * hi - 2.0;
    }
    float y[32];
    ts_dequantize(TS_DTYPE_Q4_0, b0, y, 32);
    CHECK(y[0] == -16.0f && y[16] == 14.0f);
    CHECK(count_mismatches(y, want0, 32) == 0);
    ts_dequantize(TS_DTYPE_Q4_1, b1, y, 32);
    CHECK(y[0] == -2.0f && y[16] == 5.5f);
    CHECK(count_mismatches(y, want1, 32) == 0);
}

static void test_q5_0_q5_1(void)
{
    unsigned char b0[22], b1[24];
    const uint32_t qh = 0xA5C3F00Fu; /* mixed high bits for weights 0..31 */
    put_f16(b0, 0x3c00);     /* d = 1 */
    put_f16(b1, 0x3400);     /* d = 0.25 */
    put_f16(b1 + 2, 0x3c00); /* m = 1 */
    for (int i = 0; i < 4; i++)
        b0[2 + i] = b1[4 + i] = (unsigned char)(qh >> (8 * i));
    double want0[32], want1[32];
    for (int j = 0; j < 16; j++) {
        int lo = (j * 5) & 15, hi = (j * 3 + 7) & 15;
        b0[6 + j] = b1[8 + j] = (unsigned char)(lo | hi << 4);
    }
    for (int e = 0; e < 32; e++) {
        int nib = e < 16 ? b0[6 + e] & 15 : b0[6 + e - 16] >> 4;
        int q = nib + 16 * (int)((qh >> e) & 1);
        want0[e] = q - 16;
        want1[e] = 0.25 * q + 1.0;
    }
    float y[32];
    ts_dequantize(TS_DTYPE_Q5_0, b0, y, 32);
    CHECK(y[0] == 0.0f); /* nibble 0, high bit 1: q = 16 */
    CHECK(count_mismatches(y, want0, 32) == 0);
    ts_dequantize(TS_DTYPE_Q5_1, b1, y, 32);
    CHECK(count_mismatches(y, want1, 32) == 0);
}

/* The 12 scale bytes of Q4_K/Q5_K as the format defines them: bytes 0-3 hold sc[0..3]
 * in their low 6 bits and the top 2 bits of sc[4..7]; bytes 4-7 the same for the mins;
 * bytes 8-11 the low nibbles of sc[4..7] (low half) and m[4..7] (high half). */
static void pack_k_scales(const int *sc, const int *m, unsigned char *s)
{
    for (int j = 0; j < 4; j++) {
        s[j] = (unsigned char)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (unsigned char)(m[j] | (m[j + 4] >> 4) << 6);
        s[j + 8] = (unsigned char)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

static void test_q4_k_q5_k(void)
{
    static const int sc[8] = {3, 63, 17, 0, 48, 5, 33, 62}, m[8] = {2, 0, 63, 31, 16, 47, 1, 60};
    unsigned char b4[144], b5[176];
    put_f16(b4, 0x3800);     /* d = 0.5 */
    put_f16(b4 + 2, 0x3400); /* dmin = 0.25 */
    pack_k_scales(sc, m, b4 + 4);
    memcpy(b5, b4, 16);
    unsigned long long seed = 7;
    for (int i = 0; i < 128; i++)
        b4[16 + i] = b5[48 + i] = rand_byte(&seed);
    for (int i = 0; i < 32; i++)
        b5[16 + i] = rand_byte(&seed);
    b4[16] = 0x5A; /* weight 0: nibble 10 in sub-block 0; weight 32: nibble 5 in sub-block 1 */
    double want4[256], want5[256];
    for (int e = 0; e < 256; e++) {
        int s = e / 32, c = e / 64, l = e % 32;
        unsigned char byte = b4[16 + 32 * c + l];
        int q = s % 2 ? byte >> 4 : byte & 15;
        int high = (b5[16 + l] >> s) & 1;
        want4[e] = 0.5 * sc[s] * q - 0.25 * m[s];
        want5[e] = 0.5 * sc[s] * (q + 16 * high) - 0.25 * m[s];
    }
    b5[48] = 0x5A;
    float y[256];
    ts_dequantize(TS_DTYPE_Q4_K, b4, y, 256);
    CHECK(y[0] == 0.5f * 3 * 10 - 0.25f * 2 && y[32] == 0.5f * 63 * 5);
    CHECK(count_mismatches(y, want4, 256) == 0);
    ts_dequantize(TS_DTYPE_Q5_K, b5, y, 256);
    CHECK(count_mismatches(y, want5, 256) == 0);
}

static void test_q6_k(void)
{
    unsigned char b[210];
    unsigned long long seed = 11;
    for (int i = 0; i < 192; i++)
        b[i] = rand_byte(&seed);
    for (int s = 0; s < 16; s++)
        b[192 + s] = (unsigned char)(int8_t)(s * 17 - 128); /* -128 .. 127 */
    put_f16(b + 208, 0x3000);                               /* d = 0.125 */
    double want[256];
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, i = r / 32, l = r % 32;
        unsigned char low_byte = b[64 * h + l + 32 * (i % 2)];
        int low = i < 2 ? low_byte & 15 : low_byte >> 4;
        int high = (b[128 + 32 * h + l] >> (2 * i)) & 3;
        want[e] = 0.125 * (int8_t)b[192 + e / 16] * ((low | high << 4) - 32);
    }
    float y[256];
    ts_dequantize(TS_DTYPE_Q6_K, b, y, 256);
    CHECK(count_mismatches(y, want, 256) == 0);
    /* All quants at 0 (q = -32) with scale -128: the most negative scale times the most
     * negative quant. */
    memset(b, 0, 192);
    ts_dequantize(TS_DTYPE_Q6_K, b, y, 256);
    CHECK(y[0] == 0.125f * -128 * -32 && y[255] == 0.125f * 127 * -32);
}

/* Several blocks in a row, through ts_to_f32 and a weight's rows. */
static void test_rows_and_dispatch(void)
{
    enum { ROWS = 3, COLS = 64 };
    unsigned char b[ROWS * 2 * 34];
    unsigned long long seed = 3;
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = rand_byte(&seed);
    for (int k = 0; k < ROWS * 2; k++)
        put_f16(b + 34 * k, (uint16_t)(0x3000 + 0x400 * k)); /* finite scales */
    float all[ROWS * COLS], via_dispatch[ROWS * COLS], row[COLS];
    ts_dequantize(TS_DTYPE_Q8_0, b, all, ROWS * COLS);
    ts_to_f32(TS_DTYPE_Q8_0, b, via_dispatch, ROWS * COLS);
    CHECK(memcmp(all, via_dispatch, sizeof all) == 0);
    ts_weight w = {.dtype = TS_DTYPE_Q8_0, .ndim = 2, .shape = {ROWS, COLS}, .data = b};
    for (int r = 0; r < ROWS; r++) {
        ts_weight_row_f32(&w, r, row);
        CHECK_MSG(memcmp(row, all + r * COLS, sizeof row) == 0, "row %d", r);
    }
    float whole[ROWS * COLS];
    ts_weight_to_f32(&w, whole);
    CHECK(memcmp(whole, all, sizeof all) == 0);
}

static void test_sizes(void)
{
    static const struct {
        ts_dtype t;
        int64_t len;
        size_t bytes;
    } want[] = {{TS_DTYPE_Q8_0, 32, 34},  {TS_DTYPE_Q4_0, 32, 18},  {TS_DTYPE_Q4_1, 32, 20},
                {TS_DTYPE_Q5_0, 32, 22},  {TS_DTYPE_Q5_1, 32, 24},  {TS_DTYPE_Q4_K, 256, 144},
                {TS_DTYPE_Q5_K, 256, 176}, {TS_DTYPE_Q6_K, 256, 210}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(ts_dtype_is_block(want[i].t) && ts_dtype_is_float(want[i].t));
        CHECK(ts_dtype_block_len(want[i].t) == want[i].len && ts_dtype_block_bytes(want[i].t) == want[i].bytes);
        CHECK(ts_dtype_size(want[i].t) == 0);
        CHECK(ts_dtype_bytes(want[i].t, (uint64_t)want[i].len * 5) == want[i].bytes * 5);
    }
    CHECK(!ts_dtype_is_block(TS_DTYPE_F16) && ts_dtype_block_len(TS_DTYPE_F16) == 1);
    CHECK(ts_dtype_bytes(TS_DTYPE_BF16, 7) == 14 && ts_dtype_block_bytes(TS_DTYPE_F64) == 8);
}

/* Quantise then dequantise random data; max error against the bound each format
 * guarantees, and rms error relative to the data's rms. */
static void roundtrip(ts_dtype t, int n, double max_rel_to_absmax, double rms_rel)
{
    static float x[4096], y[4096];
    static unsigned char q[4096 * 2];
    unsigned long long seed = 99 + (unsigned)t;
    for (int i = 0; i < n; i++)
        x[i] = test_randf(&seed) * (i % 97 == 0 ? 4.0f : 1.0f); /* a few outliers */
    CHECK(ts_quantize(t, x, q, (size_t)n) == 0);
    ts_dequantize(t, q, y, (size_t)n);
    int64_t block = ts_dtype_block_len(t);
    double worst = 0, err2 = 0, sig2 = 0;
    for (int b = 0; b < n; b += (int)block) {
        double amax = 0;
        for (int i = b; i < b + block; i++)
            amax = fmax(amax, fabs(x[i]));
        for (int i = b; i < b + block; i++) {
            double e = fabs((double)x[i] - y[i]);
            worst = fmax(worst, e / amax);
            err2 += e * e;
            sig2 += (double)x[i] * x[i];
        }
    }
    double rms = sqrt(err2 / sig2);
    CHECK_MSG(worst <= max_rel_to_absmax, "%s: max error %.4g x absmax > %.4g", ts_dtype_name(t), worst,
              max_rel_to_absmax);
    CHECK_MSG(rms <= rms_rel, "%s: rms error %.4g > %.4g", ts_dtype_name(t), rms, rms_rel);
}

static void test_quantisers(void)
{
    /* Q8_0: half a step of absmax/127, plus the f16 rounding of d (2^-11 relative). */
    roundtrip(TS_DTYPE_Q8_0, 4096, 0.5 / 127 + 1.0 / 2048, 0.01);
    /* Q4_0: one step of absmax/8 at the clamped end. */
    roundtrip(TS_DTYPE_Q4_0, 4096, 1.0 / 8 + 1.0 / 1024, 0.12);
    /* Q4_K: half a step of range/15 (range <= 2 absmax), the 6-bit scale and min
     * rounding add at most about as much again. */
    roundtrip(TS_DTYPE_Q4_K, 4096, 2.0 / 15, 0.12);
    /* Q6_K: the extreme maps to -32, so the other side clamps at +31: one step of
     * absmax/32, plus 32 x half the 8-bit scale step (max scale / 256) = 1/8 step. */
    roundtrip(TS_DTYPE_Q6_K, 4096, 1.25 / 32, 0.03);

    float x[256] = {0}, y[256];
    unsigned char q[8 * 34]; /* the largest: 256 weights of Q8_0 */
    for (int k = 0; k < 4; k++) { /* all-zero input stays zero */
        ts_dtype t = (ts_dtype[]){TS_DTYPE_Q8_0, TS_DTYPE_Q4_0, TS_DTYPE_Q4_K, TS_DTYPE_Q6_K}[k];
        CHECK(ts_quantize_supported(t));
        CHECK(ts_quantize(t, x, q, 256) == 0);
        ts_dequantize(t, q, y, 256);
        int nonzero = 0;
        for (int i = 0; i < 256; i++)
            nonzero += y[i] != 0.0f;
        CHECK_MSG(nonzero == 0, "%s", ts_dtype_name(t));
    }
    /* Exactly representable Q8_0 input comes back unchanged. */
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16) * 4.0f;
    x[0] = -127.0f * 4.0f;
    CHECK(ts_quantize(TS_DTYPE_Q8_0, x, q, 32) == 0);
    ts_dequantize(TS_DTYPE_Q8_0, q, y, 32);
    CHECK(memcmp(x, y, 32 * sizeof(float)) == 0);
    x[3] = NAN;
    CHECK(ts_quantize(TS_DTYPE_Q8_0, x, q, 32) == -1);
    x[3] = INFINITY;
    CHECK(ts_quantize(TS_DTYPE_Q4_K, x, q, 256) == -1);
    CHECK(!ts_quantize_supported(TS_DTYPE_Q5_1) && ts_quantize(TS_DTYPE_Q5_1, x, q, 32) == -1);
}

TEST_MAIN(TEST(test_q8_0), TEST(test_q4_0_q4_1), TEST(test_q5_0_q5_1), TEST(test_q4_k_q5_k), TEST(test_q6_k),
          TEST(test_rows_and_dispatch), TEST(test_sizes), TEST(test_quantisers))
