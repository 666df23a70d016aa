/* Activations against float64 formulas, and softmax stability (huge inputs, -inf). */
#include <math.h>
#include <string.h>

#include "core/threads.h"
#include "ops/activation.h"
#include "ops/gemm.h"
#include "ops_check.h"

typedef void (*act_fn)(float *, int64_t);

static double ref_silu(double v) { return v / (1.0 + exp(-v)); }
static double ref_relu(double v) { return v > 0 ? v : 0; }
static double ref_gelu_erf(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }
static double ref_gelu_tanh(double v)
{
    return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
}
static double ref_quick_gelu(double v) { return v / (1.0 + exp(-1.702 * v)); }

/* Element-wise error relative to max(|ref|, 1e-3): activations are checked point by point. */
static void check_act(const char *name, act_fn f, double (*ref)(double), int64_t n, unsigned long long *seed)
{
    float *x = rand_floats(n, seed);
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++)
        x[i] *= 12.0f; /* covers the saturating tails */
    double *want = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        want[i] = ref(x[i]);
    f(x, n);
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(x[i] - want[i]) / fmax(fabs(want[i]), 1e-3);
        worst = e > worst || e != e ? e : worst;
    }
    CHECK_MSG(worst <= 2e-6, "%s: worst relative error %.3g", name, worst);
    free(x);
    free(want);
}

static void test_activations(void)
{
    unsigned long long seed = 6;
    ts_threads_set(2);
    for (int64_t n = 1; n <= 100001; n += 50000) { /* below and above the threading grain */
        check_act("silu", ts_silu, ref_silu, n, &seed);
        check_act("relu", ts_relu, ref_relu, n, &seed);
        check_act("gelu_erf", ts_gelu_erf, ref_gelu_erf, n, &seed);
        check_act("gelu_tanh", ts_gelu_tanh, ref_gelu_tanh, n, &seed);
        check_act("quick_gelu", ts_quick_gelu, ref_quick_gelu, n, &seed);
    }
}

/* The erf and tanh forms differ by up to ~4.7e-4 near x = 2.7: each must be its own. */
static void test_gelu_forms_differ(void)
{
    float a = 2.7f, b = 2.7f;
    ts_gelu_erf(&a, 1);
    ts_gelu_tanh(&b, 1);
    CHECK_NEAR(a, ref_gelu_erf(2.7f), 1e-6);
    CHECK_NEAR(b, ref_gelu_tanh(2.7f), 1e-6);
    CHECK(fabs(a - b) > 1e-4);
}

/* The fitted erfc on a dense grid: absolute error and, where values are not tiny,
 * relative error. */
static void test_gelu_erf_grid(void)
{
    enum { N = 200001 };
    float *x = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        x[i] = -10.0f + (float)i * 1e-4f;
    float *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        y[i] = x[i];
    ts_gelu_erf(y, N);
    double worst_abs = 0.0, worst_rel = 0.0;
    for (int i = 0; i < N; i++) {
        double r = ref_gelu_erf(x[i]), e = fabs(y[i] - r);
        worst_abs = e > worst_abs || e != e ? e : worst_abs;
        if (fabs(x[i]) < 4.0f && r != 0.0)
            worst_rel = fmax(worst_rel, e / fabs(r));
    }
    CHECK_MSG(worst_abs < 5e-7, "worst absolute error %.3g", worst_abs);
    CHECK_MSG(worst_rel < 2e-6, "worst relative error on (-4, 4) %.3g", worst_rel);
    free(x);
    free(y);
}

static void test_softmax(void)
{
    unsigned long long seed = 7;
    int64_t rows = 9, n = 1031;
    float *x = rand_floats(rows * n, &seed);
    for (int64_t i = 0; i < rows * n; i++)
        x[i] = x[i] * 30.0f + (i / n == 3 ? 1e4f : 0.0f); /* row 3 would overflow a naive exp */
    x[5 * n + 7] = -INFINITY; /* masked entries */
    x[5 * n + 8] = -INFINITY;
    double *ref = malloc((size_t)(rows * n) * sizeof(double));
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0.0;
        for (int64_t j = 0; j < n; j++)
            m = fmax(m, x[r * n + j]);
        for (int64_t j = 0; j < n; j++)
            s += exp(x[r * n + j] - m);
        for (int64_t j = 0; j < n; j++)
            ref[r * n + j] = exp(x[r * n + j] - m) / s;
    }
    ts_softmax(x, rows, n);
    CHECK_CLOSE(x, ref, rows * n, 1e-5, "softmax");
    CHECK(x[5 * n + 7] == 0.0f);
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++)
        sum += x[3 * n + j];
    CHECK_NEAR(sum, 1.0, 1e-5);
    float masked[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    ts_softmax(masked, 1, 4); /* every entry masked: zeros, not NaN */
    CHECK(masked[0] == 0.0f && masked[3] == 0.0f);
    free(x);
    free(ref);
}

/* The same with every vector path off: the libm fallbacks of non-AVX2 machines. */
static void test_portable_paths(void)
{
    CHECK(ts_gemm_select("scalar") == 0);
    test_activations();
    test_gelu_forms_differ();
    test_gelu_erf_grid();
    test_softmax();
    CHECK(ts_gemm_select("auto") == 0);
}

TEST_MAIN(TEST(test_activations), TEST(test_gelu_forms_differ), TEST(test_gelu_erf_grid), TEST(test_softmax),
          TEST(test_portable_paths))
