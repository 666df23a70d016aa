/*
 * ggml block formats (see quant.h for the layouts).  Plain scalar code, one run of 32
 * at a time: every block type is decoded only here, into its integer form, which both
 * the dequantiser and the integer GEMM's weight packer (ops/gemm_quant.c) build on.
 * Fields are read byte by byte, because blocks of 18, 22 or 210 bytes leave their
 * scales at any address.
 */
#include "core/quant.h"

#include <math.h>
#include <string.h>

static float rd_f16(const unsigned char *p) { return ts_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static void wr_f16(unsigned char *p, float v)
{
    uint16_t h = ts_f32_to_f16(v);
    p[0] = (unsigned char)h;
    p[1] = (unsigned char)(h >> 8);
}

static uint32_t rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- the integer form of 32-weight runs ---------------------------------------- */

/* Q4_0, Q4_1, Q5_0 and Q5_1 differ only in the optional min and the optional 5th bits
 * (qh is 0 for the types without). */
static void unpack_nibbles(const unsigned char *qs, uint32_t qh, uint8_t *u)
{
    for (int j = 0; j < 16; j++) {
        u[j] = (uint8_t)((qs[j] & 0xF) | ((qh >> j) & 1) << 4);
        u[j + 16] = (uint8_t)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
    }
}

/* Scale and min of sub-block j (0..7) from the 12 packed bytes: the first four pairs
 * are the low 6 bits of bytes j and j+4; the last four keep their low nibbles in
 * bytes 8..11 and their top 2 bits in the spare top bits of bytes 0..7. */
static void k_scale_min(const unsigned char *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K and Q5_K: four chunks of 64 weights, each the low then high nibbles of 32 bytes
 * (sub-blocks 2c and 2c+1); Q5_K's 5th bit of weight l of sub-block s is bit s of qh[l]. */
static void unpack_k_4_5(const unsigned char *b, const unsigned char *qh, const unsigned char *qs, int s, uint8_t *u,
                         float *f)
{
    int sc, m, half = s & 1;
    k_scale_min(b + 4, s, &sc, &m);
    f[0] = rd_f16(b) * (float)sc;
    f[1] = -(rd_f16(b + 2) * (float)m);
    qs += 32 * (s / 2);
    for (int l = 0; l < 32; l++)
        u[l] = (uint8_t)((half ? qs[l] >> 4 : qs[l] & 0xF) | (qh ? (qh[l] >> s & 1) << 4 : 0));
}

/* Q6_K: two halves of 128 weights; in a half, weight l + 32 i (i = 0..3, run 4h + i)
 * takes its low 4 bits from ql[l + 32 (i & 1)] (low nibble for i < 2, high otherwise)
 * and its top 2 bits from bits 2i..2i+1 of qh[l]; int8 sub-block scales cover 16
 * weights each, so a run has two. */
static void unpack_q6_k(const unsigned char *b, int s, uint8_t *u, float *f)
{
    int h = s / 4, i = s % 4;
    const unsigned char *ql = b + 64 * h + 32 * (i & 1), *qh = b + 128 + 32 * h;
    const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
    float d = rd_f16(b + 208);
    f[0] = d * (float)sc[2 * i];
    f[1] = d * (float)sc[2 * i + 1];
    for (int l = 0; l < 32; l++)
        u[l] = (uint8_t)((i < 2 ? ql[l] & 0xF : ql[l] >> 4) | ((qh[l] >> (2 * i)) & 3) << 4);
}

int ts_quant_int_form(ts_dtype t, ts_qform *form)
{
    static const struct {
        ts_dtype t;
        ts_qform form;
    } forms[] = {{TS_DTYPE_Q8_0, {TS_QFORM_ZERO, 128, 255}}, {TS_DTYPE_Q4_0, {TS_QFORM_ZERO, 8, 15}},
                 {TS_DTYPE_Q5_0, {TS_QFORM_ZERO, 16, 31}},   {TS_DTYPE_Q4_1, {TS_QFORM_MIN, 0, 15}},
                 {TS_DTYPE_Q5_1, {TS_QFORM_MIN, 0, 31}},     {TS_DTYPE_Q4_K, {TS_QFORM_MIN, 0, 15}},
                 {TS_DTYPE_Q5_K, {TS_QFORM_MIN, 0, 31}},     {TS_DTYPE_Q6_K, {TS_QFORM_HALVES, 32, 63}}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (forms[i].t == t) {
            *form = forms[i].form;
            return 1;
        }
    return 0;
}

void ts_quant_unpack32(ts_dtype t, const void *block, int sub, uint8_t u[32], float f[2])
{
    const unsigned char *b = block;
    f[0] = rd_f16(b);
    f[1] = 0.0f;
    switch (t) {
    case TS_DTYPE_Q8_0:
        for (int j = 0; j < 32; j++)
            u[j] = (uint8_t)(b[2 + j] ^ 0x80); /* q + 128 */
        break;
    case TS_DTYPE_Q4_0: unpack_nibbles(b + 2, 0, u); break;
    case TS_DTYPE_Q5_0: unpack_nibbles(b + 6, rd_u32(b + 2), u); break;
    case TS_DTYPE_Q4_1:
        f[1] = rd_f16(b + 2);
        unpack_nibbles(b + 4, 0, u);
        break;
    case TS_DTYPE_Q5_1:
        f[1] = rd_f16(b + 2);
        unpack_nibbles(b + 8, rd_u32(b + 4), u);
        break;
    case TS_DTYPE_Q4_K: unpack_k_4_5(b, NULL, b + 16, sub, u, f); break;
    case TS_DTYPE_Q5_K: unpack_k_4_5(b, b + 16, b + 48, sub, u, f); break;
    case TS_DTYPE_Q6_K: unpack_q6_k(b, sub, u, f); break;
    default:
        memset(u, 0, 32);
        f[0] = f[1] = NAN;
    }
}

/* ---- dequantisation -------------------------------------------------------------- */

float ts_qform_weight(ts_qform form, const float f[2], int j, uint8_t u)
{
    if (form.kind == TS_QFORM_MIN)
        return f[0] * (float)u + f[1];
    return f[form.kind == TS_QFORM_HALVES ? j / 16 : 0] * (float)(u - form.zero);
}

void ts_dequantize(ts_dtype t, const void *src, float *dst, size_t n)
{
    ts_qform form;
    if (!ts_quant_int_form(t, &form)) {
        for (size_t i = 0; i < n; i++)
            dst[i] = NAN;
        return;
    }
    size_t len = (size_t)ts_dtype_block_len(t), bytes = ts_dtype_block_bytes(t);
    const unsigned char *p = src;
    uint8_t u[32];
    float f[2];
    for (size_t i = 0; i + len <= n; i += len, p += bytes)
        for (int s = 0; s < (int)len / 32; s++) {
            ts_quant_unpack32(t, p, s, u, f);
            for (int j = 0; j < 32; j++)
                dst[i + 32 * (size_t)s + (size_t)j] = ts_qform_weight(form, f, j, u[j]);
        }
}

/* ---- quantisers ---------------------------------------------------------------- */

static int clampi(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* The value of largest magnitude, sign kept. */
static float signed_absmax(const float *x, int n)
{
    float best = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > fabsf(best))
            best = x[i];
    return best;
}

static void quant_q8_0(const float *x, unsigned char *b)
{
    float d = fabsf(signed_absmax(x, 32)) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (unsigned char)(int8_t)clampi((long)roundf(x[j] * id), -127, 127);
}

/* The extreme value maps to -8, so the 16 levels cover [-8, 7] x |d| asymmetrically
 * toward the sign of the extreme, as ggml does. */
static void quant_q4_0(const float *x, unsigned char *b)
{
    float d = signed_absmax(x, 32) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < 16; j++) {
        int lo = clampi((long)(x[j] * id + 8.5f), 0, 15), hi = clampi((long)(x[j + 16] * id + 8.5f), 0, 15);
        b[2 + j] = (unsigned char)(lo | hi << 4);
    }
}

/* Inverse of k_scale_min. */
static void k_pack_scales(const int *sc, const int *m, unsigned char *s)
{
    memset(s, 0, 12);
    for (int j = 0; j < 4; j++) {
        s[j] = (unsigned char)sc[j];
        s[j + 4] = (unsigned char)m[j];
    }
    for (int j = 4; j < 8; j++) {
        s[j + 4] = (unsigned char)((sc[j] & 0xF) | (m[j] & 0xF) << 4);
        s[j - 4] |= (unsigned char)((sc[j] >> 4) << 6);
        s[j] |= (unsigned char)((m[j] >> 4) << 6);
    }
}

/* Each sub-block of 32 spans [min(0, lo), hi] in 15 steps; the 8 step sizes and the 8
 * offsets are then quantised to 6 bits against their maxima, and the weights are
 * rounded again with the scales as stored. */
static void quant_q4_k(const float *x, unsigned char *b)
{
    float step[8], off[8], max_step = 0.0f, max_off = 0.0f;
    for (int s = 0; s < 8; s++) {
        float lo = 0.0f, hi = x[32 * s];
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * s + l]);
            hi = fmaxf(hi, x[32 * s + l]);
        }
        step[s] = (hi - lo) / 15.0f;
        off[s] = -lo;
        max_step = fmaxf(max_step, step[s]);
        max_off = fmaxf(max_off, off[s]);
    }
    int sc[8], m[8];
    for (int s = 0; s < 8; s++) {
        sc[s] = max_step > 0.0f ? clampi(lrintf(63.0f * step[s] / max_step), 0, 63) : 0;
        m[s] = max_off > 0.0f ? clampi(lrintf(63.0f * off[s] / max_off), 0, 63) : 0;
    }
    wr_f16(b, max_step / 63.0f);
    wr_f16(b + 2, max_off / 63.0f);
    k_pack_scales(sc, m, b + 4);
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    unsigned char q[256];
    for (int s = 0; s < 8; s++) {
        float ds = d * (float)sc[s], ms = dmin * (float)m[s];
        for (int l = 0; l < 32; l++)
            q[32 * s + l] = (unsigned char)(ds > 0.0f ? clampi(lrintf((x[32 * s + l] + ms) / ds), 0, 15) : 0);
    }
    unsigned char *qs = b + 16;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (unsigned char)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
}

/* Sub-blocks of 16 get absmax scales (extreme -> -32); the 16 scales are quantised to
 * int8 against the largest, then the weights are rounded with the stored scales. */
static void quant_q6_k(const float *x, unsigned char *b)
{
    float scale[16], max_scale = 0.0f;
    for (int s = 0; s < 16; s++) {
        scale[s] = signed_absmax(x + 16 * s, 16) / -32.0f;
        if (fabsf(scale[s]) > fabsf(max_scale))
            max_scale = scale[s];
    }
    float iscale = max_scale != 0.0f ? -128.0f / max_scale : 0.0f;
    int8_t *sc = (int8_t *)(b + 192);
    for (int s = 0; s < 16; s++)
        sc[s] = (int8_t)clampi(lrintf(iscale * scale[s]), -128, 127);
    wr_f16(b + 208, iscale != 0.0f ? 1.0f / iscale : 0.0f);
    float d = rd_f16(b + 208);
    unsigned char q[256];
    for (int i = 0; i < 256; i++) {
        float ds = d * (float)sc[i / 16];
        q[i] = (unsigned char)(ds != 0.0f ? clampi(lrintf(x[i] / ds), -32, 31) + 32 : 32);
    }
    unsigned char *ql = b, *qh = b + 128;
    for (int h = 0; h < 2; h++, ql += 64, qh += 32) {
        const unsigned char *v = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (unsigned char)((v[l] & 0xF) | (v[l + 64] & 0xF) << 4);
            ql[l + 32] = (unsigned char)((v[l + 32] & 0xF) | (v[l + 96] & 0xF) << 4);
            qh[l] = (unsigned char)(v[l] >> 4 | (v[l + 32] >> 4) << 2 | (v[l + 64] >> 4) << 4 | (v[l + 96] >> 4) << 6);
        }
    }
}

int ts_quantize_supported(ts_dtype t)
{
    return t == TS_DTYPE_Q8_0 || t == TS_DTYPE_Q4_0 || t == TS_DTYPE_Q4_K || t == TS_DTYPE_Q6_K;
}

int ts_quantize(ts_dtype t, const float *src, void *dst, size_t n)
{
    void (*block)(const float *, unsigned char *);
    switch (t) {
    case TS_DTYPE_Q8_0: block = quant_q8_0; break;
    case TS_DTYPE_Q4_0: block = quant_q4_0; break;
    case TS_DTYPE_Q4_K: block = quant_q4_k; break;
    case TS_DTYPE_Q6_K: block = quant_q6_k; break;
    default: return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return -1;
    size_t len = (size_t)ts_dtype_block_len(t), bytes = ts_dtype_block_bytes(t);
    unsigned char *p = dst;
    for (size_t i = 0; i + len <= n; i += len, p += bytes)
        block(src + i, p);
    return 0;
}
