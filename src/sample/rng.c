/*
 * Philox4x32-10 + Box-Muller, and the PyTorch CPU normal recipe; both streams are
 * specified in rng.h.
 */
#include "sample/rng.h"

#include <math.h>

#include "core/error.h"
#include "core/threads.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void ts_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void ts_rng_init(ts_rng *rng, uint64_t seed)
{
    rng->seed = seed;
    rng->offset = 0;
}

static double unit_open(uint32_t w)
{
    return ((double)w + 0.5) * (1.0 / 4294967296.0);
}

/* The four normals of block b. */
static void normal_block(uint64_t seed, uint64_t b, float out[4])
{
    const uint32_t counter[4] = {(uint32_t)b, (uint32_t)(b >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    ts_philox4x32(counter, key, w);
    const double two_pi = 6.283185307179586;
    for (int pair = 0; pair < 2; pair++) {
        double r = sqrt(-2.0 * log(unit_open(w[2 * pair])));
        double theta = two_pi * unit_open(w[2 * pair + 1]);
        out[2 * pair] = (float)(r * cos(theta));
        out[2 * pair + 1] = (float)(r * sin(theta));
    }
}

typedef struct {
    uint64_t seed, first_block;
    float *out;
} fill_job;

static void fill_blocks(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const fill_job *job = ctx;
    for (int64_t b = begin; b < end; b++)
        normal_block(job->seed, job->first_block + (uint64_t)b, job->out + 4 * b);
}

/* Normals one at a time up to the end of the current block (or of the request). */
static size_t fill_partial(ts_rng *rng, float *out, size_t n)
{
    float block[4];
    size_t i = 0;
    normal_block(rng->seed, rng->offset / 4, block);
    for (unsigned lane = (unsigned)(rng->offset % 4); lane < 4 && i < n; lane++, i++, rng->offset++)
        out[i] = block[lane];
    return i;
}

void ts_rng_normal(ts_rng *rng, float *out, size_t n)
{
    size_t i = rng->offset % 4 && n ? fill_partial(rng, out, n) : 0;
    /* Whole blocks are independent (counter-based), so they fill in parallel. */
    size_t blocks = (n - i) / 4;
    fill_job job = {rng->seed, rng->offset / 4, out + i};
    ts_parallel_for((int64_t)blocks, 4096, fill_blocks, &job);
    rng->offset += 4 * blocks;
    i += 4 * blocks;
    if (i < n)
        fill_partial(rng, out + i, n - i);
}

int ts_rng_noise(void *user, double sigma, double sigma_next, float *noise, size_t n)
{
    (void)sigma;
    (void)sigma_next;
    ts_rng_normal((ts_rng *)user, noise, n);
    return 0;
}

/* MT19937 (Matsumoto & Nishimura 1998), the 32-bit engine torch's CPU generator runs. */
void ts_mt19937_seed(ts_mt19937 *g, uint64_t seed)
{
    g->mt[0] = (uint32_t)seed;
    for (int i = 1; i < 624; i++)
        g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->index = 624;
}

static void mt19937_twist(ts_mt19937 *g)
{
    for (int i = 0; i < 624; i++) {
        uint32_t y = (g->mt[i] & 0x80000000u) | (g->mt[(i + 1) % 624] & 0x7fffffffu);
        g->mt[i] = g->mt[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0u);
    }
    g->index = 0;
}

uint32_t ts_mt19937_next(ts_mt19937 *g)
{
    if (g->index >= 624)
        mt19937_twist(g);
    uint32_t y = g->mt[g->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* torch uniform_real_distribution<float>(0, 1): the low 24 bits of one draw. */
static float torch_uniform(ts_mt19937 *g)
{
    return (float)(ts_mt19937_next(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* Box-Muller over 16 uniforms in place, in float as torch's normal_fill_16. */
static void torch_normal_16(float *v)
{
    const double pi = 3.141592653589793;
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - v[j], u2 = v[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0f * pi * u2);
        v[j] = radius * cosf(theta);
        v[j + 8] = radius * sinf(theta);
    }
}

int ts_torch_randn(ts_mt19937 *g, float *out, size_t n)
{
    if (n < 16)
        return ts_fail(TS_ERR_ARG, "torch-compatible noise needs at least 16 values, not %zu", n);
    for (size_t i = 0; i < n; i++)
        out[i] = torch_uniform(g);
    for (size_t i = 0; i + 16 <= n; i += 16)
        torch_normal_16(out + i);
    if (n % 16) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++)
            tail[i] = torch_uniform(g);
        torch_normal_16(tail);
    }
    return 0;
}

int ts_torch_noise(void *user, double sigma, double sigma_next, float *noise, size_t n)
{
    (void)sigma;
    (void)sigma_next;
    return ts_torch_randn((ts_mt19937 *)user, noise, n);
}
