/*
 * tessera bench SUITE: speed figures for this machine.
 *
 * A suite is one entry of the table below (today `ops`; whole-model suites such as
 * `unet` slot in beside it).  Each case is timed as the best of a few runs after a
 * warm-up, because the minimum is the figure least disturbed by other processes on
 * a shared machine, and is reported as GFLOP/s and as a fraction of a measured
 * peak, so runs on different machines can be compared by ratio.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "core/threads.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/gemm.h"

typedef struct {
    int threads;
    int json;
} bench_opts;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef void (*bench_fn)(void *ctx);

/* Best time of up to max_reps runs after one warm-up, stopping once budget seconds
 * have been spent. */
static double best_time(bench_fn fn, void *ctx, int max_reps, double budget)
{
    fn(ctx);
    double best = 1e30, start = now();
    for (int r = 0; r < max_reps; r++) {
        double t0 = now();
        fn(ctx);
        double t = now() - t0;
        best = t < best ? t : best;
        if (now() - start > budget)
            break;
    }
    return best;
}

static float *random_floats(size_t n, unsigned *seed)
{
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "tessera bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = (float)(*seed >> 8) * (1.0f / 8388608.0f) - 1.0f;
    }
    return x;
}

/* A weight [n, k] stored in dtype, from random f32 values. */
static ts_weight random_weight(ts_dtype dtype, int64_t n, int64_t k, unsigned *seed)
{
    float *f = random_floats((size_t)(n * k), seed);
    ts_weight w = {.dtype = dtype, .ndim = 2, .shape = {n, k}, .data = f};
    if (dtype != TS_DTYPE_F32) {
        uint16_t *h = malloc((size_t)(n * k) * 2);
        if (dtype == TS_DTYPE_F16)
            ts_f32_to_f16_n(f, h, (size_t)(n * k));
        else
            ts_f32_to_bf16_n(f, h, (size_t)(n * k));
        free(f);
        w.data = h;
    }
    return w;
}

/* ---- the cases ---- */

typedef struct {
    int64_t m, n, k;
    const float *a;
    ts_weight w;
    float *c;
} gemm_ctx;

static void run_linear(void *ctx)
{
    gemm_ctx *g = ctx;
    ts_linear(g->a, g->k, g->m, &g->w, NULL, g->c, g->n);
}

static void run_blas(void *ctx)
{
    gemm_ctx *g = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->m, (int)g->n, (int)g->k, 1.0f, g->a, (int)g->k,
                g->w.data, (int)g->k, 0.0f, g->c, (int)g->n);
}

typedef struct {
    ts_tensor x, y;
    ts_weight w;
    ts_conv_params p;
} conv_ctx;

static void run_conv(void *ctx)
{
    conv_ctx *c = ctx;
    ts_conv2d(&c->x, &c->w, NULL, c->p, &c->y);
}

typedef struct {
    const float *q, *k, *v;
    float *out;
    ts_attn_params p;
} attn_ctx;

static void run_attention(void *ctx)
{
    attn_ctx *a = ctx;
    ts_attention(a->q, a->k, a->v, a->out, &a->p);
}

typedef struct {
    char label[96];
    double gflop, own, blas; /* seconds; blas < 0 when not measured */
} result;

typedef struct {
    const bench_opts *opt;
    double peak;
    result rows[64];
    int n;
} report;

static void add_row(report *r, const char *label, double gflop, double own, double blas)
{
    result *row = &r->rows[r->n++];
    snprintf(row->label, sizeof row->label, "%s", label);
    row->gflop = gflop;
    row->own = own;
    row->blas = blas;
    if (!r->opt->json) {
        printf("%-44s %8.2f ms %7.1f GFLOP/s  %4.0f%% of peak", label, own * 1e3, gflop / own,
               100.0 * gflop / own / r->peak);
        if (blas > 0)
            printf("   OpenBLAS %7.1f GFLOP/s", gflop / blas);
        printf("\n");
        fflush(stdout);
    }
}

static void bench_gemm(report *r, int64_t m, int64_t k, int64_t n, ts_dtype dtype, int with_blas, unsigned *seed)
{
    gemm_ctx g = {m, n, k, random_floats((size_t)(m * k), seed), random_weight(dtype, n, k, seed),
                  random_floats((size_t)(m * n), seed)};
    double gflop = 2e-9 * (double)m * (double)n * (double)k;
    double own = best_time(run_linear, &g, 20, 1.0);
    double blas = with_blas ? best_time(run_blas, &g, 20, 1.0) : -1.0;
    char label[96];
    snprintf(label, sizeof label, "linear M=%lld K=%lld N=%lld %s", (long long)m, (long long)k, (long long)n,
             ts_dtype_name(dtype));
    add_row(r, label, gflop, own, blas);
    free((void *)g.a);
    free((void *)g.w.data);
    free(g.c);
}

static void bench_conv(report *r, int64_t c, int64_t o, int64_t h, int64_t w, ts_dtype dtype, unsigned *seed)
{
    conv_ctx cc;
    cc.x = ts_tensor_view(random_floats((size_t)(c * h * w), seed), 4, (int64_t[]){1, c, h, w});
    cc.y = ts_tensor_view(random_floats((size_t)(o * h * w), seed), 4, (int64_t[]){1, o, h, w});
    cc.w = random_weight(dtype, o, c * 9, seed);
    cc.w.ndim = 4;
    cc.w.shape[1] = c, cc.w.shape[2] = 3, cc.w.shape[3] = 3;
    cc.p = ts_conv_same(1, 1);
    double gflop = 2e-9 * (double)o * (double)(c * 9) * (double)(h * w);
    double own = best_time(run_conv, &cc, 10, 1.5);
    char label[96];
    snprintf(label, sizeof label, "conv3x3 %lld->%lld %lldx%lld %s", (long long)c, (long long)o, (long long)h,
             (long long)w, ts_dtype_name(dtype));
    add_row(r, label, gflop, own, -1.0);
    free(cc.x.data);
    free(cc.y.data);
    free((void *)cc.w.data);
}

static void bench_attention(report *r, int64_t heads, int64_t t, int64_t dh, unsigned *seed)
{
    int64_t hd = heads * dh;
    attn_ctx a;
    a.q = random_floats((size_t)(t * hd), seed);
    a.k = random_floats((size_t)(t * hd), seed);
    a.v = random_floats((size_t)(t * hd), seed);
    a.out = random_floats((size_t)(t * hd), seed);
    a.p = (ts_attn_params){1, heads, t, t, dh, hd, hd, hd, hd, 1.0f / sqrtf((float)dh), 0, {NULL, 0, 0}};
    double gflop = 4e-9 * (double)heads * (double)t * (double)t * (double)dh;
    double own = best_time(run_attention, &a, 5, 1.5);
    char label[96];
    snprintf(label, sizeof label, "attention T=%lld heads=%lld dh=%lld", (long long)t, (long long)heads,
             (long long)dh);
    add_row(r, label, gflop, own, -1.0);
    free((void *)a.q);
    free((void *)a.k);
    free((void *)a.v);
    free(a.out);
}

/* Peak: the faster of OpenBLAS and ts_sgemm on a 4096^3 f32 product. */
static void measure_peak(report *r, unsigned *seed, double *own_out, double *blas_out)
{
    int64_t s = 4096;
    gemm_ctx g = {s, s, s, random_floats((size_t)(s * s), seed), random_weight(TS_DTYPE_F32, s, s, seed),
                  random_floats((size_t)(s * s), seed)};
    double gflop = 2e-9 * (double)s * (double)s * (double)s;
    *own_out = gflop / best_time(run_linear, &g, 2, 3.0);
    *blas_out = gflop / best_time(run_blas, &g, 2, 3.0);
    r->peak = *own_out > *blas_out ? *own_out : *blas_out;
    free((void *)g.a);
    free((void *)g.w.data);
    free(g.c);
}

static int bench_ops(const bench_opts *opt)
{
    report r = {.opt = opt};
    unsigned seed = 12345;
    const char *coretype = getenv("OPENBLAS_CORETYPE"), *l2 = getenv("OPENBLAS_L2_SIZE");
    double own_peak, blas_peak;
    measure_peak(&r, &seed, &own_peak, &blas_peak);
    if (!opt->json) {
        printf("tessera bench ops: %d thread(s), GEMM kernel %s, OpenBLAS core %s (OPENBLAS_CORETYPE=%s, "
               "OPENBLAS_L2_SIZE=%s)\n",
               opt->threads, ts_gemm_kernel_name(), openblas_get_corename(), coretype ? coretype : "unset",
               l2 ? l2 : "unset");
        printf("peak = best of sgemm 4096^3: own %.1f GFLOP/s, OpenBLAS %.1f GFLOP/s -> %.1f GFLOP/s\n\n", own_peak,
               blas_peak, r.peak);
    }
    static const int64_t gemms[][3] = {{4096, 320, 320}, {4096, 320, 1280}, {4096, 1280, 320}, {1024, 640, 640},
                                       {154, 768, 768},  {154, 768, 3072}};
    for (size_t i = 0; i < sizeof gemms / sizeof gemms[0]; i++)
        bench_gemm(&r, gemms[i][0], gemms[i][1], gemms[i][2], TS_DTYPE_F32, 1, &seed);
    bench_gemm(&r, 4096, 320, 1280, TS_DTYPE_F16, 0, &seed);
    bench_gemm(&r, 4096, 320, 1280, TS_DTYPE_BF16, 0, &seed);
    bench_gemm(&r, 154, 768, 3072, TS_DTYPE_F16, 0, &seed);
    bench_conv(&r, 320, 320, 64, 64, TS_DTYPE_F32, &seed);
    bench_conv(&r, 320, 320, 64, 64, TS_DTYPE_F16, &seed);
    bench_conv(&r, 512, 512, 64, 64, TS_DTYPE_F32, &seed);
    bench_conv(&r, 128, 128, 512, 512, TS_DTYPE_F32, &seed);
    bench_attention(&r, 8, 4096, 40, &seed);
    bench_attention(&r, 1, 4096, 512, &seed);

    if (opt->json) {
        printf("{\"suite\": \"ops\", \"threads\": %d, \"kernel\": \"%s\", \"openblas_core\": \"%s\", "
               "\"openblas_coretype\": \"%s\", \"openblas_l2_size\": \"%s\",\n",
               opt->threads, ts_gemm_kernel_name(), openblas_get_corename(), coretype ? coretype : "",
               l2 ? l2 : "");
        printf(" \"peak_gflops\": %.2f, \"peak_own_gflops\": %.2f, \"peak_openblas_gflops\": %.2f,\n \"cases\": [\n",
               r.peak, own_peak, blas_peak);
        for (int i = 0; i < r.n; i++) {
            const result *x = &r.rows[i];
            printf("  {\"name\": \"%s\", \"gflop\": %.4f, \"ms\": %.3f, \"gflops\": %.2f, \"of_peak\": %.3f",
                   x->label, x->gflop, x->own * 1e3, x->gflop / x->own, x->gflop / x->own / r.peak);
            if (x->blas > 0)
                printf(", \"openblas_gflops\": %.2f", x->gflop / x->blas);
            printf("}%s\n", i + 1 < r.n ? "," : "");
        }
        printf(" ]}\n");
    }
    return 0;
}

static const struct {
    const char *name;
    int (*run)(const bench_opts *opt);
    const char *summary;
} suites[] = {
    {"ops", bench_ops, "GEMM, conv2d and attention kernels against a measured sgemm peak"},
};

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: tessera bench SUITE [--threads N] [--json]\n\nsuites:\n");
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        fprintf(f, "  %-6s %s\n", suites[i].name, suites[i].summary);
    fprintf(f, "\n--threads N   worker threads (default: all cores)\n--json        one JSON object instead of a table\n");
}

int cmd_bench(int argc, char **argv)
{
    bench_opts opt = {0, 0};
    const char *suite = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bench_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            opt.json = 1;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "tessera bench: --threads wants a number from 1 to 256, not '%s'\n", argv[i]);
                return 2;
            }
            opt.threads = (int)n;
        } else if (argv[i][0] == '-' || suite) {
            fprintf(stderr, "tessera bench: unexpected argument '%s'\n", argv[i]);
            return 2;
        } else {
            suite = argv[i];
        }
    }
    if (!suite) {
        bench_usage(stderr);
        return 2;
    }
    ts_threads_set(opt.threads);
    opt.threads = ts_threads_get();
    openblas_set_num_threads(opt.threads);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (strcmp(suite, suites[i].name) == 0)
            return suites[i].run(&opt);
    fprintf(stderr, "tessera bench: unknown suite '%s' (see tessera bench --help)\n", suite);
    return 2;
}
