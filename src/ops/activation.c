/*
 * Element-wise activations and row softmax, in f32 with libm's expf / erfcf (within
 * an ulp or two), computing PyTorch's formulas; softmax uses the vectorised exp of
 * vmath.h (same accuracy class, several times faster).  Large
 * arrays are split over the thread pool; each element is independent, so the
 * result does not depend on the thread count.
 */
#include "ops/activation.h"

#include <math.h>
#include <string.h>

#include "core/threads.h"
#include "ops/vmath.h"

#define ELEMENT_GRAIN 16384

typedef float (*unary_fn)(float);

typedef struct {
    float *x;
    unary_fn f;
} unary_job;

static void unary_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const unary_job *j = ctx;
    for (int64_t i = begin; i < end; i++)
        j->x[i] = j->f(j->x[i]);
}

static void apply(float *x, int64_t n, unary_fn f)
{
    unary_job j = {x, f};
    ts_parallel_for(n, ELEMENT_GRAIN, unary_range, &j);
}

static float silu(float v) { return v / (1.0f + expf(-v)); }
static float relu(float v) { return v > 0.0f ? v : 0.0f; }
/* The GELUs in forms without the 1 + (-1 + tiny) cancellation of the textbook ones on
 * the negative side: 1 + erf(u) = erfc(-u) and 1 + tanh(u) = 2 / (1 + exp(-2u)). */
static float gelu_erf(float v) { return 0.5f * v * erfcf(v * -0.70710678118654752f); }
static float gelu_tanh(float v)
{
    return v / (1.0f + expf(-1.5957691216057307f * (v + 0.044715f * v * v * v)));
}
static float quick_gelu(float v) { return v / (1.0f + expf(-1.702f * v)); }

void ts_silu(float *x, int64_t n) { apply(x, n, silu); }
void ts_relu(float *x, int64_t n) { apply(x, n, relu); }
void ts_gelu_erf(float *x, int64_t n) { apply(x, n, gelu_erf); }
void ts_gelu_tanh(float *x, int64_t n) { apply(x, n, gelu_tanh); }
void ts_quick_gelu(float *x, int64_t n) { apply(x, n, quick_gelu); }

typedef struct {
    float *x;
    int64_t n;
} softmax_job;

static void softmax_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const softmax_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        float *x = j->x + r * j->n;
        float m = ts_vmax(x, j->n);
        if (m == -INFINITY) { /* every entry masked: zeros rather than 0/0 */
            memset(x, 0, (size_t)j->n * sizeof(float));
            continue;
        }
        float inv = 1.0f / ts_vexp_sum(x, j->n, m);
        for (int64_t i = 0; i < j->n; i++)
            x[i] *= inv;
    }
}

void ts_softmax(float *x, int64_t rows, int64_t n)
{
    softmax_job j = {x, n};
    ts_parallel_for(rows, n >= ELEMENT_GRAIN ? 1 : ELEMENT_GRAIN / (n > 0 ? n : 1), softmax_range, &j);
}
