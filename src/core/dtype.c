/*
 * dtype names, sizes and f32 conversions.  The vector paths are chosen once, at the
 * first call, from what the CPU reports; the scalar code is the definition they
 * must agree with (tests/test_dtype.c checks every f16 and bf16 bit pattern).
 */
#include "core/dtype.h"

#include "core/cpu.h"
#include "core/quant.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;      /* bytes per block */
    int64_t block;    /* weights per block */
} dtype_info[TS_DTYPE_COUNT] = {
    [TS_DTYPE_F32] = {"F32", 4, 1},         [TS_DTYPE_F16] = {"F16", 2, 1},
    [TS_DTYPE_BF16] = {"BF16", 2, 1},       [TS_DTYPE_F64] = {"F64", 8, 1},
    [TS_DTYPE_F8_E4M3] = {"F8_E4M3", 1, 1}, [TS_DTYPE_F8_E5M2] = {"F8_E5M2", 1, 1},
    [TS_DTYPE_I64] = {"I64", 8, 1},         [TS_DTYPE_I32] = {"I32", 4, 1},
    [TS_DTYPE_I16] = {"I16", 2, 1},         [TS_DTYPE_I8] = {"I8", 1, 1},
    [TS_DTYPE_U64] = {"U64", 8, 1},         [TS_DTYPE_U32] = {"U32", 4, 1},
    [TS_DTYPE_U16] = {"U16", 2, 1},         [TS_DTYPE_U8] = {"U8", 1, 1},
    [TS_DTYPE_BOOL] = {"BOOL", 1, 1},
    [TS_DTYPE_Q8_0] = {"Q8_0", 34, 32},  [TS_DTYPE_Q4_0] = {"Q4_0", 18, 32},
    [TS_DTYPE_Q4_1] = {"Q4_1", 20, 32},  [TS_DTYPE_Q5_0] = {"Q5_0", 22, 32},
    [TS_DTYPE_Q5_1] = {"Q5_1", 24, 32},  [TS_DTYPE_Q4_K] = {"Q4_K", 144, 256},
    [TS_DTYPE_Q5_K] = {"Q5_K", 176, 256}, [TS_DTYPE_Q6_K] = {"Q6_K", 210, 256},
};

int ts_dtype_is_block(ts_dtype t) { return (unsigned)t < TS_DTYPE_COUNT && dtype_info[t].block > 1; }

size_t ts_dtype_size(ts_dtype t)
{
    return (unsigned)t < TS_DTYPE_COUNT && !ts_dtype_is_block(t) ? dtype_info[t].size : 0;
}

int64_t ts_dtype_block_len(ts_dtype t) { return ts_dtype_is_block(t) ? dtype_info[t].block : 1; }

size_t ts_dtype_block_bytes(ts_dtype t) { return (unsigned)t < TS_DTYPE_COUNT ? dtype_info[t].size : 0; }

uint64_t ts_dtype_bytes(ts_dtype t, uint64_t n)
{
    return n / (uint64_t)ts_dtype_block_len(t) * ts_dtype_block_bytes(t);
}

const char *ts_dtype_name(ts_dtype t) { return (unsigned)t < TS_DTYPE_COUNT ? dtype_info[t].name : "?"; }

int ts_dtype_from_name(const char *name, ts_dtype *out)
{
    for (int t = 0; t < TS_DTYPE_COUNT; t++)
        if (!ts_dtype_is_block((ts_dtype)t) && strcmp(name, dtype_info[t].name) == 0) {
            *out = (ts_dtype)t;
            return 0;
        }
    return -1;
}

int ts_dtype_is_float(ts_dtype t)
{
    return t == TS_DTYPE_F32 || t == TS_DTYPE_F16 || t == TS_DTYPE_BF16 || t == TS_DTYPE_F64 ||
           t == TS_DTYPE_F8_E4M3 || t == TS_DTYPE_F8_E5M2 || ts_dtype_is_block(t);
}

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float ts_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    if (exponent == 0x1f) /* inf, or a nan quietened with its payload kept, as F16C does */
        return bits_to_f32(sign | 0x7f800000u | (mantissa << 13) | (mantissa ? 0x400000u : 0));
    if (exponent == 0) { /* zero / subnormal: mantissa * 2^-24 */
        float v = (float)mantissa * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t ts_f32_to_f16(float f)
{
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf, or a quiet nan with the payload's top bits, as F16C does */
        return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 | ((abs >> 13) & 0x3ff) : 0);
    if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (abs < 0x38800000u) { /* below the smallest normal f16: subnormal or zero */
        float v = bits_to_f32(abs) * 0x1p24f; /* exact scaling; the FPU rounds to even */
        return sign | (uint16_t)lrintf(v);
    }
    uint32_t mantissa = abs & 0x7fffff;
    uint32_t exponent = (abs >> 23) - 112;
    uint32_t half = (exponent << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, which is correct rounding */
    return sign | (uint16_t)half;
}

float ts_bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

uint16_t ts_f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static float f8_e4m3_to_f32(uint8_t v)
{
    int sign = v >> 7, exponent = (v >> 3) & 0xf, mantissa = v & 7;
    float r;
    if (exponent == 0xf && mantissa == 7)
        r = NAN; /* e4m3fn has no infinities */
    else if (exponent == 0)
        r = ldexpf((float)mantissa, -9);
    else
        r = ldexpf((float)(8 + mantissa), exponent - 10);
    return sign ? -r : r;
}

static float f8_e5m2_to_f32(uint8_t v) { return ts_f16_to_f32((uint16_t)(v << 8)); }

/* ---- vector paths ------------------------------------------------------------ */

__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = ts_f16_to_f32(src[i]);
}

__attribute__((target("avx,f16c"))) static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = ts_f32_to_f16(src[i]);
}

__attribute__((target("avx512f"))) static void f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++)
        dst[i] = ts_f16_to_f32(src[i]);
}

__attribute__((target("avx2"))) static void bf16_to_f32_avx2(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
    }
    for (; i < n; i++)
        dst[i] = ts_bf16_to_f32(src[i]);
}

static void f16_to_f32_scalar(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ts_f16_to_f32(src[i]);
}

static void f32_to_f16_scalar(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ts_f32_to_f16(src[i]);
}

static void bf16_to_f32_scalar(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ts_bf16_to_f32(src[i]);
}

void ts_f16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
    static void (*impl)(const uint16_t *, float *, size_t);
    if (!impl)
        impl = ts_cpu_has(TS_CPU_AVX512F) ? f16_to_f32_avx512
               : ts_cpu_has(TS_CPU_F16C)  ? f16_to_f32_f16c
                                                 : f16_to_f32_scalar;
    impl(src, dst, n);
}

void ts_f32_to_f16_n(const float *src, uint16_t *dst, size_t n)
{
    static void (*impl)(const float *, uint16_t *, size_t);
    if (!impl)
        impl = ts_cpu_has(TS_CPU_F16C) ? f32_to_f16_f16c : f32_to_f16_scalar;
    impl(src, dst, n);
}

void ts_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n)
{
    static void (*impl)(const uint16_t *, float *, size_t);
    if (!impl)
        impl = ts_cpu_has(TS_CPU_AVX2) ? bf16_to_f32_avx2 : bf16_to_f32_scalar;
    impl(src, dst, n);
}

void ts_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ts_f32_to_bf16(src[i]);
}

void ts_to_f32(ts_dtype t, const void *src, float *dst, size_t n)
{
    switch (t) {
    case TS_DTYPE_F32: memcpy(dst, src, n * 4); return;
    /* safetensors does not promise aligned data: an odd address takes the slow path below. */
    case TS_DTYPE_F16:
        if (((uintptr_t)src & 1) == 0) {
            ts_f16_to_f32_n(src, dst, n);
            return;
        }
        break;
    case TS_DTYPE_BF16:
        if (((uintptr_t)src & 1) == 0) {
            ts_bf16_to_f32_n(src, dst, n);
            return;
        }
        break;
    default:
        if (ts_dtype_is_block(t)) {
            ts_dequantize(t, src, dst, n);
            return;
        }
        break;
    }
    /* Rare types and unaligned 16-bit floats: element by element, unaligned-safe. */
    const unsigned char *p = src;
    size_t size = ts_dtype_size(t);
    for (size_t i = 0; i < n; i++, p += size) {
        union {
            double f64;
            int64_t i64;
            uint64_t u64;
            int32_t i32;
            uint32_t u32;
            int16_t i16;
            uint16_t u16;
            int8_t i8;
            uint8_t u8;
        } v;
        memcpy(&v, p, size);
        switch (t) {
        case TS_DTYPE_F16: dst[i] = ts_f16_to_f32(v.u16); break;
        case TS_DTYPE_BF16: dst[i] = ts_bf16_to_f32(v.u16); break;
        case TS_DTYPE_F64: dst[i] = (float)v.f64; break;
        case TS_DTYPE_F8_E4M3: dst[i] = f8_e4m3_to_f32(v.u8); break;
        case TS_DTYPE_F8_E5M2: dst[i] = f8_e5m2_to_f32(v.u8); break;
        case TS_DTYPE_I64: dst[i] = (float)v.i64; break;
        case TS_DTYPE_I32: dst[i] = (float)v.i32; break;
        case TS_DTYPE_I16: dst[i] = (float)v.i16; break;
        case TS_DTYPE_I8: dst[i] = (float)v.i8; break;
        case TS_DTYPE_U64: dst[i] = (float)v.u64; break;
        case TS_DTYPE_U32: dst[i] = (float)v.u32; break;
        case TS_DTYPE_U16: dst[i] = (float)v.u16; break;
        case TS_DTYPE_U8:
        case TS_DTYPE_BOOL: dst[i] = (float)v.u8; break;
        default: dst[i] = NAN; break;
        }
    }
}
