/*
 * dtype conversions against an independent reference.
 *
 * The reference decodes and rounds with double arithmetic (ldexp, nearbyint) instead of
 * bit manipulation, so it shares no code path with src/core/dtype.c.  Widening is checked
 * for all 65536 f16 and bf16 patterns; narrowing on every halfway point between adjacent
 * f16 values (and its neighbours), subnormals, overflow and a broad sweep of f32 patterns.
 * The vector paths must give the same bits as the scalar functions, NaN payloads included.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"
#include "test.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A binary float format: `mant` stored mantissa bits, exponent bias `bias`, `exp_bits` exponent bits. */
typedef struct {
    int mant, bias, exp_bits;
} fmt_t;

static const fmt_t F16 = {10, 15, 5}, BF16 = {7, 127, 8};

/* Value of a non-nan pattern of the format, computed arithmetically. */
static double ref_decode(fmt_t f, uint32_t v)
{
    uint32_t sign = v >> (f.mant + f.exp_bits) & 1;
    uint32_t e = v >> f.mant & ((1u << f.exp_bits) - 1), m = v & ((1u << f.mant) - 1);
    double r;
    if (e == (1u << f.exp_bits) - 1)
        r = INFINITY;
    else if (e == 0)
        r = ldexp((double)m, 1 - f.bias - f.mant);
    else
        r = ldexp((double)((1u << f.mant) + m), (int)e - f.bias - f.mant);
    return sign ? -r : r;
}

/* Round-to-nearest-even encoding of a finite or infinite non-nan x in the format. */
static uint32_t ref_encode(fmt_t f, double x)
{
    uint32_t sign = signbit(x) ? 1u << (f.mant + f.exp_bits) : 0;
    x = fabs(x);
    uint32_t inf = ((1u << f.exp_bits) - 1) << f.mant;
    int emin = 1 - f.bias, emax = f.bias;
    if (isinf(x))
        return sign | inf;
    int e;
    frexp(x, &e);
    e -= 1; /* x = 1.xxx * 2^e */
    if (e < emin)
        e = emin;
    double q = nearbyint(ldexp(x, f.mant - e)); /* units of the last place at exponent e */
    if (e > emax)
        return sign | inf;
    uint32_t body = x < ldexp(1.0, emin) ? (uint32_t)q : ((uint32_t)(e + f.bias) << f.mant) + (uint32_t)q - (1u << f.mant);
    return sign | (body >= inf ? inf : body);
}

static void test_f16_widen_all(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = ts_f16_to_f32((uint16_t)h);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            /* quiet nan, same sign, payload shifted into the top mantissa bits */
            uint32_t want = (h & 0x8000u) << 16 | 0x7fc00000u | (h & 0x3ffu) << 13;
            bad += bits(got) != want;
        } else {
            double want = ref_decode(F16, h);
            bad += (double)got != want || !!signbit(got) != !!signbit(want);
        }
    }
    CHECK_MSG(bad == 0, "%d f16 patterns widen wrongly", bad);
}

static void test_bf16_widen_all(void)
{
    int bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        float got = ts_bf16_to_f32((uint16_t)b);
        if ((b & 0x7f80) == 0x7f80 && (b & 0x7f))
            bad += bits(got) != b << 16; /* widening a nan keeps it as stored */
        else
            bad += (double)got != ref_decode(BF16, b) || !!signbit(got) != (int)(b >> 15);
    }
    CHECK_MSG(bad == 0, "%d bf16 patterns widen wrongly", bad);
}

/* Every f16 midpoint (exactly representable in f32), one f32 ulp either side, and the values themselves. */
static void test_f16_narrow_halfway(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        for (int s = 0; s < 2; s++) {
            double lo = ref_decode(F16, h), hi = ref_decode(F16, h + 1);
            double mid = h + 1 == 0x7c00 ? 65520.0 : (lo + hi) / 2;
            float c[4] = {(float)lo, (float)mid, nextafterf((float)mid, 0), nextafterf((float)mid, INFINITY)};
            for (int i = 0; i < 4; i++) {
                float x = s ? -c[i] : c[i];
                uint16_t got = ts_f32_to_f16(x);
                uint32_t want = ref_encode(F16, x);
                if (got != want && bad++ < 5)
                    fprintf(stderr, "f32 %a -> f16 %04x, want %04x\n", (double)x, got, want);
            }
        }
    }
    CHECK_MSG(bad == 0, "%d halfway cases round wrongly", bad);
    /* Known anchors the reference must agree with, too. */
    CHECK(ts_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(ts_f32_to_f16(65519.99f) == 0x7bff);
    CHECK(ts_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(ts_f32_to_f16(1e10f) == 0x7c00);
    CHECK(ts_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(ts_f32_to_f16(0x1p-24f) == 0x0001);
    CHECK(ts_f32_to_f16(0x1p-25f) == 0x0000);                           /* tie to even: 0 */
    CHECK(ts_f32_to_f16(0x1.8p-24f) == 0x0002);                         /* tie to even: 2 */
    CHECK(ts_f32_to_f16(nextafterf(0x1p-25f, 1)) == 0x0001);
    CHECK(ts_f32_to_f16(0x1.ffcp-15f) == 0x0400);                       /* largest subnormal + half: carries */
    CHECK(ts_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);                    /* tie to even: 1.0 */
    CHECK(ts_f32_to_f16(1.0f + 0x1.8p-10f) == 0x3c02);
    CHECK(ts_f32_to_f16(-0.0f) == 0x8000);
    CHECK(ts_f32_to_f16(1e-30f) == 0x0000);
}

static void test_f32_sweep(void)
{
    int bad16 = 0, badbf = 0;
    /* Stride through the whole f32 space (prime step), skipping nans. */
    for (uint64_t u = 0; u < (1ull << 32); u += 1021) {
        float x = from_bits((uint32_t)u);
        if (isnan(x))
            continue;
        bad16 += ts_f32_to_f16(x) != ref_encode(F16, x);
        badbf += ts_f32_to_bf16(x) != ref_encode(BF16, x);
    }
    CHECK_MSG(bad16 == 0, "%d f32 -> f16 mismatches", bad16);
    CHECK_MSG(badbf == 0, "%d f32 -> bf16 mismatches", badbf);
}

static void test_bf16_narrow_edges(void)
{
    int bad = 0;
    /* Midpoints between adjacent bf16 values and their f32 neighbours, for every bf16 pattern. */
    for (uint32_t b = 0; b < 0x7f80; b++) {
        uint32_t mid = b << 16 | 0x8000;
        uint32_t c[4] = {b << 16, mid, mid - 1, mid + 1};
        for (int i = 0; i < 4; i++)
            for (int s = 0; s < 2; s++) {
                float x = from_bits(c[i] | (uint32_t)s << 31);
                bad += ts_f32_to_bf16(x) != ref_encode(BF16, x);
            }
    }
    CHECK_MSG(bad == 0, "%d bf16 halfway cases round wrongly", bad);
    CHECK(ts_f32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80); /* FLT_MAX rounds up to inf */
    CHECK(ts_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(ts_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(ts_f32_to_bf16(from_bits(0x00008000)) == 0x0000); /* subnormal tie to even */
    CHECK(ts_f32_to_bf16(from_bits(0x00018000)) == 0x0002);
}

static void test_nan_narrowing(void)
{
    static const uint32_t nans[] = {0x7f800001, 0x7fc00000, 0xffc00000, 0x7f802000, 0x7fffffff, 0xffa00001};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        float x = from_bits(nans[i]);
        uint16_t h = ts_f32_to_f16(x), b = ts_f32_to_bf16(x);
        CHECK_MSG((h & 0x7e00) == 0x7e00 && (h >> 15) == (nans[i] >> 31), "%08x -> f16 %04x", nans[i], h);
        CHECK_MSG((b & 0x7fc0) == 0x7fc0 && (b >> 15) == (nans[i] >> 31), "%08x -> bf16 %04x", nans[i], b);
        CHECK(isnan(ts_f16_to_f32(h)) && isnan(ts_bf16_to_f32(b)));
    }
}

/* Values that exercise every branch: specials, subnormals, ties, random normals. */
static void fill_inputs(float *x, size_t n, unsigned long long seed)
{
    static const uint32_t special[] = {0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001,
                                       0xffa00001, 0x477ff000, 0x477fefff, 0x33000000, 0x33000001, 0x387fc000,
                                       0x3f801000, 0x3f803000, 0x00008000, 0x7f7fffff, 0x00000001, 0x3f808000};
    for (size_t i = 0; i < n; i++) {
        if (i % 3 == 0)
            x[i] = from_bits(special[(i / 3) % (sizeof special / sizeof special[0])]);
        else
            x[i] = test_randf(&seed) * ldexpf(1.0f, (int)(i % 40) - 28);
    }
}

static void test_vector_paths_match_scalar(void)
{
    enum { MAX = 1031 };
    static uint16_t h[MAX + 1], out16[MAX + 1];
    static float f[MAX + 1], outf[MAX + 1];
    unsigned long long seed = 7;
    for (int i = 0; i <= MAX; i++)
        h[i] = (uint16_t)(test_randf(&seed) * 32768.0f + 32768.0f) ^ (uint16_t)(i * 2654435761u);
    h[3] = 0x7c01, h[4] = 0xfe55, h[5] = 0x7f81; /* nans, in f16 and bf16 terms */
    fill_inputs(f, MAX + 1, 11);
    int bad = 0;
    for (size_t n = 0; n <= MAX; n = n < 40 ? n + 1 : n * 2 + 1) {
        for (size_t off = 0; off < 2 && off + n <= MAX + 1; off++) {
            ts_f16_to_f32_n(h + off, outf, n);
            for (size_t i = 0; i < n; i++)
                bad += bits(outf[i]) != bits(ts_f16_to_f32(h[off + i]));
            ts_bf16_to_f32_n(h + off, outf, n);
            for (size_t i = 0; i < n; i++)
                bad += bits(outf[i]) != bits(ts_bf16_to_f32(h[off + i]));
            ts_f32_to_f16_n(f + off, out16, n);
            for (size_t i = 0; i < n; i++)
                bad += out16[i] != ts_f32_to_f16(f[off + i]);
            ts_f32_to_bf16_n(f + off, out16, n);
            for (size_t i = 0; i < n; i++)
                bad += out16[i] != ts_f32_to_bf16(f[off + i]);
        }
    }
    CHECK_MSG(bad == 0, "%d vector/scalar mismatches", bad);
}

static void test_names_and_sizes(void)
{
    static const size_t want_size[TS_DTYPE_COUNT] = {
        [TS_DTYPE_F32] = 4, [TS_DTYPE_F16] = 2, [TS_DTYPE_BF16] = 2, [TS_DTYPE_F64] = 8, [TS_DTYPE_F8_E4M3] = 1,
        [TS_DTYPE_F8_E5M2] = 1, [TS_DTYPE_I64] = 8, [TS_DTYPE_I32] = 4, [TS_DTYPE_I16] = 2, [TS_DTYPE_I8] = 1,
        [TS_DTYPE_U64] = 8, [TS_DTYPE_U32] = 4, [TS_DTYPE_U16] = 2, [TS_DTYPE_U8] = 1, [TS_DTYPE_BOOL] = 1};
    for (int t = 0; t < TS_DTYPE_COUNT; t++) {
        ts_dtype back = TS_DTYPE_COUNT;
        CHECK(ts_dtype_size((ts_dtype)t) == want_size[t]);
        if (ts_dtype_is_block((ts_dtype)t)) /* ggml block types are not safetensors dtypes */
            CHECK(ts_dtype_from_name(ts_dtype_name((ts_dtype)t), &back) == -1);
        else
            CHECK(ts_dtype_from_name(ts_dtype_name((ts_dtype)t), &back) == 0 && back == (ts_dtype)t);
    }
    ts_dtype d;
    CHECK(ts_dtype_from_name("f16", &d) == -1); /* the format's spelling is upper case */
    CHECK(ts_dtype_from_name("F4", &d) == -1);
    CHECK(ts_dtype_from_name("", &d) == -1);
    CHECK(ts_dtype_size(TS_DTYPE_COUNT) == 0);
}

static void test_to_f32_other_types(void)
{
    float out[4];
    const double f64[] = {1.5, -2.25, 1e300, 0.1};
    ts_to_f32(TS_DTYPE_F64, f64, out, 4);
    CHECK(out[0] == 1.5f && out[1] == -2.25f && isinf(out[2]) && out[3] == 0.1f);
    const int64_t i64[] = {-3, 1ll << 40, 0, 7};
    ts_to_f32(TS_DTYPE_I64, i64, out, 4);
    CHECK(out[0] == -3.0f && out[1] == 0x1p40f && out[2] == 0.0f && out[3] == 7.0f);
    const int8_t i8[] = {-128, 127, -1, 0};
    ts_to_f32(TS_DTYPE_I8, i8, out, 4);
    CHECK(out[0] == -128.0f && out[1] == 127.0f && out[2] == -1.0f && out[3] == 0.0f);
    const uint16_t u16[] = {65535, 0, 1, 300};
    ts_to_f32(TS_DTYPE_U16, u16, out, 4);
    CHECK(out[0] == 65535.0f && out[1] == 0.0f && out[2] == 1.0f && out[3] == 300.0f);
    /* Unaligned source: an I32 array starting at an odd address. */
    unsigned char raw[17];
    int32_t vals[4] = {-5, 1 << 20, 2, -1};
    memcpy(raw + 1, vals, 16);
    ts_to_f32(TS_DTYPE_I32, raw + 1, out, 4);
    CHECK(out[0] == -5.0f && out[1] == 0x1p20f && out[2] == 2.0f && out[3] == -1.0f);
    /* Unaligned 16-bit floats (safetensors data need not be aligned) give the aligned results. */
    uint16_t h16[4] = {0x3c00, 0xc000, 0x7c00, 0x0001}, b16[4] = {0x3f80, 0xc040, 0xff80, 0x0001};
    float aligned[4];
    memcpy(raw + 1, h16, 8);
    ts_to_f32(TS_DTYPE_F16, raw + 1, out, 4);
    ts_to_f32(TS_DTYPE_F16, h16, aligned, 4);
    CHECK(memcmp(out, aligned, sizeof out) == 0 && out[1] == -2.0f);
    memcpy(raw + 1, b16, 8);
    ts_to_f32(TS_DTYPE_BF16, raw + 1, out, 4);
    ts_to_f32(TS_DTYPE_BF16, b16, aligned, 4);
    CHECK(memcmp(out, aligned, sizeof out) == 0 && out[1] == -3.0f);

    /* F8: every pattern against the arithmetic definition (e4m3fn: bias 7, no inf, 0x7f nan; e5m2: f16's top byte). */
    int bad = 0;
    for (int v = 0; v < 256; v++) {
        uint8_t b = (uint8_t)v;
        float e4, e5;
        ts_to_f32(TS_DTYPE_F8_E4M3, &b, &e4, 1);
        ts_to_f32(TS_DTYPE_F8_E5M2, &b, &e5, 1);
        int e = v >> 3 & 15, m = v & 7;
        if ((v & 0x7f) == 0x7f)
            bad += !isnan(e4);
        else {
            double want = e ? ldexp(1.0 + m / 8.0, e - 7) : ldexp(m / 8.0, -6);
            bad += (double)e4 != (v & 0x80 ? -want : want);
        }
        if ((v & 0x7c) == 0x7c)
            bad += (v & 3) ? !isnan(e5) : !isinf(e5);
        else
            bad += (double)e5 != ref_decode(F16, (uint32_t)v << 8);
    }
    CHECK_MSG(bad == 0, "%d f8 patterns decode wrongly", bad);
    uint8_t max_e4m3 = 0x7e;
    ts_to_f32(TS_DTYPE_F8_E4M3, &max_e4m3, out, 1);
    CHECK(out[0] == 448.0f);
}

TEST_MAIN(TEST(test_f16_widen_all), TEST(test_bf16_widen_all), TEST(test_f16_narrow_halfway), TEST(test_f32_sweep),
          TEST(test_bf16_narrow_edges), TEST(test_nan_narrowing), TEST(test_vector_paths_match_scalar),
          TEST(test_names_and_sizes), TEST(test_to_f32_other_types))
