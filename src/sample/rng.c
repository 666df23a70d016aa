/*
 * Philox4x32-10 + Box-Muller; the stream is specified in rng.h.
 */
#include "sample/rng.h"

#include <math.h>

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

void ts_rng_normal(ts_rng *rng, float *out, size_t n)
{
    size_t i = 0;
    float block[4];
    while (i < n) {
        uint64_t b = rng->offset / 4;
        unsigned lane = (unsigned)(rng->offset % 4);
        normal_block(rng->seed, b, block);
        for (; lane < 4 && i < n; lane++, i++, rng->offset++)
            out[i] = block[lane];
    }
}

int ts_rng_noise(void *user, double sigma, double sigma_next, float *noise, size_t n)
{
    (void)sigma;
    (void)sigma_next;
    ts_rng_normal((ts_rng *)user, noise, n);
    return 0;
}
