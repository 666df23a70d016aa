/*
 * Element-wise activations and row softmax in f32, computing PyTorch's formulas.
 * All but ReLU go through the vectorised exp of vmath.h (within 2.5 ulp of expf):
 * SiLU, QuickGELU and tanh-GELU as x·sigmoid(·), erf-GELU through a fitted erfc,
 * softmax directly; libm (expf, erfcf) is the fallback without AVX2.  Large
 * arrays are split over the thread pool; each element is independent, so the
 * result does not depend on the thread count.
 */
#include "ops/activation.h"

#include <math.h>
#include <string.h>

#include "core/threads.h"
#include "ops/vmath.h"

#define ELEMENT_GRAIN 16384

/* An activation over a contiguous chunk; the pool splits the array into chunks. */
typedef void (*chunk_fn)(float *x, int64_t n);

typedef struct {
    float *x;
    chunk_fn f;
} chunk_job;

static void chunk_range(void *ctx, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const chunk_job *j = ctx;
    j->f(j->x + begin, end - begin);
}

static void apply(float *x, int64_t n, chunk_fn f)
{
    chunk_job j = {x, f};
    ts_parallel_for(n, ELEMENT_GRAIN, chunk_range, &j);
}

static void silu(float *x, int64_t n) { ts_vsilu(x, n, 1.0f); }
static void quick_gelu(float *x, int64_t n) { ts_vsilu(x, n, 1.702f); }

static void relu(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ts_silu(float *x, int64_t n) { apply(x, n, silu); }
void ts_relu(float *x, int64_t n) { apply(x, n, relu); }
void ts_gelu_erf(float *x, int64_t n) { apply(x, n, ts_vgelu_erf); }
void ts_gelu_tanh(float *x, int64_t n) { apply(x, n, ts_vgelu_tanh); }
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
