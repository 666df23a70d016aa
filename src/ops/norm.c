/*
 * Group, layer and RMS normalisation.
 *
 * Statistics are accumulated in double: a group of a 1024x1024 VAE feature map has
 * millions of elements, where an f32 running sum would drift well past the 1e-5 the
 * golden tests allow.  Mean and variance take two passes (no E[x²] - E[x]²
 * cancellation).  Work is split over (image, group) or over rows.
 */
#include "ops/norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/threads.h"

/* gamma / beta widened once per call (they are at most a few thousand values). */
static float *widen(const ts_weight *w)
{
    if (!w)
        return NULL;
    float *f = malloc((size_t)ts_weight_numel(w) * sizeof(float));
    if (!f) {
        fprintf(stderr, "tessera: out of memory widening a norm weight\n");
        abort();
    }
    ts_weight_to_f32(w, f);
    return f;
}

/* Sum of x[i] - shift in double, over 8 interleaved partial sums: independent
 * accumulators let the compiler vectorise (and are no less accurate than one). */
static double sum_shifted(const float *x, int64_t n, double shift, int squares)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            double d = (double)x[i + j] - shift;
            acc[j] += squares ? d * d : d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - shift;
        acc[0] += squares ? d * d : d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Mean and 1 / sqrt(variance + eps) of n values, two passes. */
static void moments(const float *x, int64_t n, double *mean, double *inv_std, float eps)
{
    double m = sum_shifted(x, n, 0.0, 0) / (double)n;
    *mean = m;
    *inv_std = 1.0 / sqrt(sum_shifted(x, n, m, 1) / (double)n + eps);
}

typedef struct {
    const float *x;
    float *y;
    const float *gamma, *beta;
    int64_t groups, per_group, spatial; /* channels per group, positions per channel */
    float eps;
} group_job;

static void group_norm_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const group_job *j = ctx;
    int64_t len = j->per_group * j->spatial;
    for (int64_t g = begin; g < end; g++) {
        const float *x = j->x + g * len;
        float *y = j->y + g * len;
        double mean, inv;
        moments(x, len, &mean, &inv, j->eps);
        int64_t c0 = (g % j->groups) * j->per_group;
        for (int64_t c = 0; c < j->per_group; c++) {
            float scale = (float)inv * (j->gamma ? j->gamma[c0 + c] : 1.0f);
            float shift = (j->beta ? j->beta[c0 + c] : 0.0f) - (float)mean * scale;
            const float *xc = x + c * j->spatial;
            float *yc = y + c * j->spatial;
            for (int64_t i = 0; i < j->spatial; i++)
                yc[i] = xc[i] * scale + shift;
        }
    }
}

void ts_group_norm(const ts_tensor *x, int groups, const ts_weight *gamma, const ts_weight *beta, float eps,
                   ts_tensor *y)
{
    int64_t n = x->shape[0], c = x->shape[1], spatial = 1;
    if (groups <= 0 || c % groups) { /* a caller bug (model code checks its config), not bad input */
        fprintf(stderr, "tessera: group_norm: %lld channels in %d groups\n", (long long)c, groups);
        abort();
    }
    for (int d = 2; d < x->ndim; d++)
        spatial *= x->shape[d];
    float *g = widen(gamma), *b = widen(beta);
    group_job j = {x->data, y->data, g, b, groups, c / groups, spatial, eps};
    ts_parallel_for(n * groups, 1, group_norm_range, &j);
    free(g);
    free(b);
}

typedef struct {
    const float *x;
    float *y;
    const float *gamma, *beta;
    int64_t d;
    float eps;
    int rms;
} row_job;

static void row_norm_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const row_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const float *x = j->x + r * j->d;
        float *y = j->y + r * j->d;
        double mean = 0.0, inv;
        if (j->rms) {
            inv = 1.0 / sqrt(sum_shifted(x, j->d, 0.0, 1) / (double)j->d + j->eps);
        } else {
            moments(x, j->d, &mean, &inv, j->eps);
        }
        for (int64_t i = 0; i < j->d; i++) {
            float v = (float)((x[i] - mean) * inv);
            y[i] = v * (j->gamma ? j->gamma[i] : 1.0f) + (j->beta ? j->beta[i] : 0.0f);
        }
    }
}

static void row_norm(const float *x, float *y, int64_t rows, int64_t d, const ts_weight *gamma,
                     const ts_weight *beta, float eps, int rms)
{
    float *g = widen(gamma), *b = widen(beta);
    row_job j = {x, y, g, b, d, eps, rms};
    ts_parallel_for(rows, 16, row_norm_range, &j);
    free(g);
    free(b);
}

void ts_layer_norm(const float *x, float *y, int64_t rows, int64_t d, const ts_weight *gamma, const ts_weight *beta,
                   float eps)
{
    row_norm(x, y, rows, d, gamma, beta, eps, 0);
}

void ts_rms_norm(const float *x, float *y, int64_t rows, int64_t d, const ts_weight *gamma, float eps)
{
    row_norm(x, y, rows, d, gamma, NULL, eps, 1);
}
