/*
 * The seeded Gaussian noise generator behind `--seed`.
 *
 * Same seed -> same noise on every machine and every thread count, so a seed is a
 * reproducible description of an image.  Built as a counter-based generator
 * (Philox4x32-10, Salmon et al., SC'11) so that normal number i of a stream is a
 * pure function of (seed, i): neither how the caller chunks its requests nor the
 * thread count (large requests fill on the thread pool) changes the values, and a
 * stream can be skipped ahead in O(1) by setting its offset.
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

/*
 * PyTorch-compatible CPU noise, so that a seed taken from ComfyUI, A1111 (CPU noise),
 * the SD3 or Flux reference scripts gives the same starting latent here:
 * torch.manual_seed(seed); torch.randn(n) in float32 for n >= 16.  It is torch's CPU
 * recipe: an MT19937 stream seeded with the low 32 bits of the seed; n uniforms
 * u = (r & 0xffffff) / 2^24; Box-Muller on blocks of 16 (u1 = 1 - u[j], u2 = u[j+8],
 * j < 8, giving r cos to j and r sin to j+8), and when n is not a multiple of 16 the
 * last 16 values are redrawn from 16 further uniforms.  Evaluated in float as torch's
 * portable path does; torch's AVX2 path uses other log/sin/cos approximations, so
 * values agree to a few float ulps, not bit for bit.
 */
typedef struct {
    uint32_t mt[624];
    int index;
} ts_mt19937;

/* torch.manual_seed(seed) (the low 32 bits seed the MT19937 stream). */
void ts_mt19937_seed(ts_mt19937 *g, uint64_t seed);
uint32_t ts_mt19937_next(ts_mt19937 *g);

/* torch.randn(n) on generator g (successive calls continue the stream as torch's
 * do). n must be >= 16: torch uses another recipe below that; TS_ERR_ARG otherwise. */
int ts_torch_randn(ts_mt19937 *g, float *out, size_t n);

/* Adapter for ts_sampler_config.noise: user is a ts_mt19937. ComfyUI's ancestral
 * samplers draw their step noise this way, from a second generator seeded from the
 * noise seed (k-diffusion default_noise_sampler with extra_args seed: the same seed in
 * older releases, seed + 1 for CPU noise in newer ones). */
int ts_torch_noise(void *user, double sigma, double sigma_next, float *noise, size_t n);

#endif
