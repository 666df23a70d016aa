/*
 * The seeded Gaussian noise generator behind `--seed`.
 *
 * Same seed -> same noise on every machine and every thread count, so a seed is a
 * reproducible description of an image.  Built as a counter-based generator
 * (Philox4x32-10, Salmon et al., SC'11) so that normal number i of a stream is a
 * pure function of (seed, i): how the caller chunks its requests never changes the
 * values, and a stream can be skipped ahead in O(1).
 *
 * Stream layout (the definition other implementations need to reproduce it):
 *   block b = Philox4x32-10(counter = {b mod 2^32, b >> 32, 0, 0},
 *                           key = {seed mod 2^32, seed >> 32}) -> words w0..w3;
 *   u(w) = (w + 0.5) / 2^32, strictly inside (0, 1);
 *   Box-Muller on (w0, w1) and (w2, w3): r = sqrt(-2 ln u(w_even)),
 *   theta = 2 pi u(w_odd); normals 4b+0, 4b+1 = r cos theta, r sin theta of the first
 *   pair; 4b+2, 4b+3 of the second; computed in double, rounded to float.
 * The only operations outside IEEE basic arithmetic are libm's log, cos and sin in
 * double; a last-bit difference between libms changes the float result only in the
 * rare case it lands on a float rounding boundary.
 */
#ifndef TS_SAMPLE_RNG_H
#define TS_SAMPLE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t seed;
    uint64_t offset; /* index of the next normal in the stream */
} ts_rng;

void ts_rng_init(ts_rng *rng, uint64_t seed);
/* The next n standard normals of the stream. */
void ts_rng_normal(ts_rng *rng, float *out, size_t n);

/* One Philox4x32-10 block (exposed for the known-answer test). */
void ts_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* Adapter for ts_sampler_config.noise: user is a ts_rng. */
int ts_rng_noise(void *user, double sigma, double sigma_next, float *noise, size_t n);

#endif
