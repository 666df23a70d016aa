/*
 * tessera bench SUITE: speed figures for this machine.
 *
 * A suite is one entry of the table at the end (`ops` here; model suites such as
 * `t5` live in their own files and parse their own options).  Each ops case is
 * timed as the best of a few runs after a warm-up, because the minimum is the figure least disturbed by other processes on
 * a shared machine, and is reported as GFLOP/s and as a fraction of a measured
 * peak, so runs on different machines can be compared by ratio.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench.h"
#include "cli/commands.h"
#include "core/threads.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "core/quant.h"
#include "ops/gemm.h"
#include "ops/gemm_quant.h"

typedef struct {
    int threads;
    int json;
    int quant_only; /* --quant: the peak and the quantised-weight cases only */
} bench_opts;

typedef struct {
    double wall, cpu; /* seconds; cpu = process CPU time / threads */
} timing;

typedef void (*bench_fn)(void *ctx);

/* Best wall and best cpu time of up to max_reps runs after one warm-up, stopping
 * once `budget` wall seconds have been spent. */
static timing best_time(bench_fn fn, void *ctx, int max_reps, double budget)
{
    fn(ctx);
    timing best = {1e30, 1e30};
    double start = bench_wall_seconds();
    int threads = ts_threads_get();
    for (int r = 0; r < max_reps; r++) {
        double w0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
        fn(ctx);
        double w = bench_wall_seconds() - w0, c = (bench_cpu_seconds() - c0) / threads;
        best.wall = w < best.wall ? w : best.wall;
        best.cpu = c < best.cpu ? c : best.cpu;
        if (bench_wall_seconds() - start > budget)
            break;
    }
    return best;
}

/* A weight [n, k] stored in dtype (f32, f16, bf16 or a block type with a quantiser),
 * from random f32 values. */
static ts_weight random_weight(ts_dtype dtype, int64_t n, int64_t k, unsigned *seed)
{
    float *f = bench_random_floats((size_t)(n * k), seed);
    ts_weight w = {.dtype = dtype, .ndim = 2, .shape = {n, k}, .data = f};
    if (dtype == TS_DTYPE_F32)
        return w;
    void *p = malloc(ts_dtype_bytes(dtype, (uint64_t)(n * k)));
    if (dtype == TS_DTYPE_F16)
        ts_f32_to_f16_n(f, p, (size_t)(n * k));
    else if (dtype == TS_DTYPE_BF16)
        ts_f32_to_bf16_n(f, p, (size_t)(n * k));
    else
        ts_quantize(dtype, f, p, (size_t)(n * k));
    free(f);
    w.data = p;
    return w;
}

/* ---- the cases ---- */

typedef struct {
    int64_t m, n, k;
    const float *a;
    ts_weight w;
    float *c;
} gemm_ctx;

static void free_gemm(gemm_ctx *g)
{
    free((void *)g->a);
    free((void *)g->w.data);
    free(g->c);
}

static void run_linear(void *ctx)
{
    gemm_ctx *g = ctx;
    ts_linear(g->a, g->k, g->m, &g->w, NULL, g->c, g->n);
}

/* ts_linear as the library runs it by default: f32 x f32 through OpenBLAS, single-
 * threaded on each of our threads (the bench otherwise forces our kernel). */
static void run_linear_auto(void *ctx)
{
    const char *kernel = ts_gemm_kernel_name();
    ts_gemm_select("auto");
    run_linear(ctx);
    ts_gemm_select(kernel);
}

/* OpenBLAS called directly, with its own threads. */
static void run_blas(void *ctx)
{
    gemm_ctx *g = ctx;
    openblas_set_num_threads(ts_threads_get());
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
    double gflop;
    timing own, blas; /* blas.wall < 0 when not measured */
    double vs_f32;    /* quantised cases: f32 ts_linear's cpu time over ours; 0 otherwise */
} result;

typedef struct {
    const bench_opts *opt;
    double peak; /* cpu GFLOP/s */
    result rows[64];
    int n;
} report;

static const timing not_measured = {-1.0, -1.0};

static void add_row(report *r, const char *label, double gflop, timing own, timing blas, double vs_f32)
{
    result *row = &r->rows[r->n++];
    snprintf(row->label, sizeof row->label, "%s", label);
    row->gflop = gflop;
    row->own = own;
    row->blas = blas;
    row->vs_f32 = vs_f32;
    if (!r->opt->json) {
        printf("%-36s %9.2f %7.1f %7.1f %5.0f%%", label, own.wall * 1e3, gflop / own.wall, gflop / own.cpu,
               100.0 * gflop / own.cpu / r->peak);
        if (blas.wall > 0)
            printf(" %8.1f %8.1f", gflop / blas.wall, gflop / blas.cpu);
        if (vs_f32 > 0)
            printf(" %8.2fx f32", vs_f32);
        printf("\n");
        fflush(stdout);
    }
}

static void bench_gemm(report *r, int64_t m, int64_t k, int64_t n, ts_dtype dtype, int with_blas, unsigned *seed)
{
    gemm_ctx g = {m, n, k, bench_random_floats((size_t)(m * k), seed), random_weight(dtype, n, k, seed),
                  bench_random_floats((size_t)(m * n), seed)};
    double gflop = 2e-9 * (double)m * (double)n * (double)k;
    timing own = best_time(run_linear, &g, 20, 1.0);
    timing blas = with_blas ? best_time(run_linear_auto, &g, 20, 1.0) : not_measured;
    char label[96];
    snprintf(label, sizeof label, "linear M=%lld K=%lld N=%lld %s", (long long)m, (long long)k, (long long)n,
             ts_dtype_name(dtype));
    add_row(r, label, gflop, own, blas, 0.0);
    free_gemm(&g);
}

/* Quantised weights through the integer kernels (gemm_quant.h) against the same
 * product with the f32 weight, by our kernel and by OpenBLAS as ts_linear calls it;
 * the ratio is to the faster of the two. */
static void bench_quant_gemm(report *r, int64_t m, int64_t k, int64_t n, unsigned *seed)
{
    static const ts_dtype types[] = {TS_DTYPE_Q8_0, TS_DTYPE_Q4_0, TS_DTYPE_Q4_K, TS_DTYPE_Q6_K};
    gemm_ctx g = {m, n, k, bench_random_floats((size_t)(m * k), seed), random_weight(TS_DTYPE_F32, n, k, seed),
                  bench_random_floats((size_t)(m * n), seed)};
    double gflop = 2e-9 * (double)m * (double)n * (double)k, budget = gflop > 50 ? 2.0 : 1.0;
    timing own = best_time(run_linear, &g, 10, budget), blas = best_time(run_linear_auto, &g, 10, budget);
    double f32_cpu = own.cpu < blas.cpu ? own.cpu : blas.cpu;
    char label[96];
    snprintf(label, sizeof label, "linear M=%lld K=%lld N=%lld F32", (long long)m, (long long)k, (long long)n);
    add_row(r, label, gflop, own, blas, 0.0);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        free((void *)g.w.data);
        g.w = random_weight(types[i], n, k, seed);
        own = best_time(run_linear, &g, 10, budget);
        snprintf(label, sizeof label, "linear M=%lld K=%lld N=%lld %s", (long long)m, (long long)k, (long long)n,
                 ts_dtype_name(types[i]));
        add_row(r, label, gflop, own, not_measured, f32_cpu / own.cpu);
    }
    free_gemm(&g);
}

static void bench_conv(report *r, int64_t c, int64_t o, int64_t h, int64_t w, ts_dtype dtype, unsigned *seed)
{
    conv_ctx cc;
    cc.x = ts_tensor_view(bench_random_floats((size_t)(c * h * w), seed), 4, (int64_t[]){1, c, h, w});
    cc.y = ts_tensor_view(bench_random_floats((size_t)(o * h * w), seed), 4, (int64_t[]){1, o, h, w});
    cc.w = random_weight(dtype, o, c * 9, seed);
    cc.w.ndim = 4;
    cc.w.shape[1] = c, cc.w.shape[2] = 3, cc.w.shape[3] = 3;
    cc.p = ts_conv_same(1, 1);
    double gflop = 2e-9 * (double)o * (double)(c * 9) * (double)(h * w);
    timing own = best_time(run_conv, &cc, 10, 1.5);
    char label[96];
    snprintf(label, sizeof label, "conv3x3 %lld->%lld %lldx%lld %s", (long long)c, (long long)o, (long long)h,
             (long long)w, ts_dtype_name(dtype));
    add_row(r, label, gflop, own, not_measured, 0.0);
    free(cc.x.data);
    free(cc.y.data);
    free((void *)cc.w.data);
}

static void bench_attention(report *r, int64_t heads, int64_t t, int64_t dh, unsigned *seed)
{
    int64_t hd = heads * dh;
    attn_ctx a;
    a.q = bench_random_floats((size_t)(t * hd), seed);
    a.k = bench_random_floats((size_t)(t * hd), seed);
    a.v = bench_random_floats((size_t)(t * hd), seed);
    a.out = bench_random_floats((size_t)(t * hd), seed);
    a.p = (ts_attn_params){1, heads, t, t, dh, hd, hd, hd, hd, 1.0f / sqrtf((float)dh), 0, {NULL, 0, 0}};
    double gflop = 4e-9 * (double)heads * (double)t * (double)t * (double)dh;
    timing own = best_time(run_attention, &a, 5, 1.5);
    char label[96];
    snprintf(label, sizeof label, "attention T=%lld heads=%lld dh=%lld", (long long)t, (long long)heads,
             (long long)dh);
    add_row(r, label, gflop, own, not_measured, 0.0);
    free((void *)a.q);
    free((void *)a.k);
    free((void *)a.v);
    free(a.out);
}

static gemm_ctx square_gemm(int64_t s, unsigned *seed)
{
    return (gemm_ctx){s, s, s, bench_random_floats((size_t)(s * s), seed), random_weight(TS_DTYPE_F32, s, s, seed),
                      bench_random_floats((size_t)(s * s), seed)};
}

/* Peak: the faster (cpu clock) of OpenBLAS and ts_linear on a 4096^3 f32 product. */
static void measure_peak(report *r, unsigned *seed, timing *own, timing *blas)
{
    gemm_ctx g = square_gemm(4096, seed);
    double gflop = 2e-9 * 4096.0 * 4096.0 * 4096.0;
    *own = best_time(run_linear, &g, 2, 3.0);
    *blas = best_time(run_blas, &g, 2, 3.0);
    double o = gflop / own->cpu, b = gflop / blas->cpu;
    r->peak = o > b ? o : b;
    own->wall = gflop / own->wall, own->cpu = o; /* returned as GFLOP/s */
    blas->wall = gflop / blas->wall, blas->cpu = b;
    free_gemm(&g);
}

/* Thread scaling of ts_linear on 2048^3: 1 thread, then the configured count. */
static void measure_scaling(const bench_opts *opt, unsigned *seed, timing *one, timing *many)
{
    gemm_ctx g = square_gemm(2048, seed);
    ts_threads_set(1);
    *one = best_time(run_linear, &g, 5, 2.0);
    ts_threads_set(opt->threads);
    *many = best_time(run_linear, &g, 5, 2.0);
    free_gemm(&g);
}

/* The f32, f16 and bf16 weight cases, convolutions and attention. */
static void bench_float_cases(report *r, unsigned *seed)
{
    static const int64_t gemms[][3] = {{4096, 320, 320}, {4096, 320, 1280}, {4096, 1280, 320}, {1024, 640, 640},
                                       {154, 768, 768},  {154, 768, 3072}};
    for (size_t i = 0; i < sizeof gemms / sizeof gemms[0]; i++)
        bench_gemm(r, gemms[i][0], gemms[i][1], gemms[i][2], TS_DTYPE_F32, 1, seed);
    bench_gemm(r, 4096, 320, 1280, TS_DTYPE_F16, 0, seed);
    bench_gemm(r, 4096, 320, 1280, TS_DTYPE_BF16, 0, seed);
    bench_gemm(r, 154, 768, 3072, TS_DTYPE_F16, 0, seed);
    bench_conv(r, 320, 320, 64, 64, TS_DTYPE_F32, seed);
    bench_conv(r, 320, 320, 64, 64, TS_DTYPE_F16, seed);
    bench_conv(r, 512, 512, 64, 64, TS_DTYPE_F32, seed);
    bench_conv(r, 128, 128, 512, 512, TS_DTYPE_F32, seed);
    bench_attention(r, 8, 4096, 40, seed);
    bench_attention(r, 1, 4096, 512, seed);
}

static int bench_ops_run(const bench_opts *opt)
{
    report r = {.opt = opt};
    unsigned seed = 12345;
    const char *coretype = getenv("OPENBLAS_CORETYPE"), *l2 = getenv("OPENBLAS_L2_SIZE");
    double load[1] = {-1.0};
    getloadavg(load, 1);
    timing own_peak, blas_peak, one, many;
    measure_peak(&r, &seed, &own_peak, &blas_peak);
    measure_scaling(opt, &seed, &one, &many);
    if (!opt->json) {
        printf("tessera bench ops: %d thread(s), GEMM kernel %s, OpenBLAS core %s (OPENBLAS_CORETYPE=%s, "
               "OPENBLAS_L2_SIZE=%s), load average %.2f\n",
               opt->threads, ts_gemm_kernel_name(), openblas_get_corename(), coretype ? coretype : "unset",
               l2 ? l2 : "unset", load[0]);
        printf("peak = best cpu GFLOP/s of sgemm 4096^3: own %.1f (wall %.1f), OpenBLAS %.1f (wall %.1f) -> %.1f\n",
               own_peak.cpu, own_peak.wall, blas_peak.cpu, blas_peak.wall, r.peak);
        printf("threads: ts_linear 2048^3 with 1 thread %.1f ms wall, with %d: %.1f ms wall (x%.2f), cpu x%.2f\n\n",
               one.wall * 1e3, opt->threads, many.wall * 1e3, one.wall / many.wall, one.cpu / many.cpu);
        printf("columns: our kernel's wall ms, wall GFLOP/s, cpu GFLOP/s, cpu %% of peak; then OpenBLAS as ts_linear\n"
               "calls it by default (f32 weights only: single-threaded per pool thread), wall and cpu GFLOP/s\n\n");
        printf("quantised weights: integer kernel %s; \"x f32\" = the faster cpu time of the f32 weight (our kernel\n"
               "or OpenBLAS) over the quantised one's, same shape, same run\n\n",
               ts_qgemm_kernel()->name);
        printf("%-36s %9s %7s %7s %6s %8s %8s\n", "case", "ms", "GFLOP/s", "cpu", "%peak", "OpenBLAS", "cpu");
    }
    if (!opt->quant_only)
        bench_float_cases(&r, &seed);
    static const int64_t quant[][3] = {{4096, 320, 320},   {4096, 320, 1280},  {4096, 640, 640}, {4096, 640, 2560},
                                       {4096, 1280, 1280}, {4096, 1280, 5120}, {8192, 3072, 3072}};
    for (size_t i = 0; i < sizeof quant / sizeof quant[0]; i++)
        bench_quant_gemm(&r, quant[i][0], quant[i][1], quant[i][2], &seed);

    if (opt->json) {
        printf("{\"suite\": \"ops\", \"threads\": %d, \"kernel\": \"%s\", \"openblas_core\": \"%s\", "
               "\"openblas_coretype\": \"%s\", \"openblas_l2_size\": \"%s\", \"load_average\": %.2f,\n",
               opt->threads, ts_gemm_kernel_name(), openblas_get_corename(), coretype ? coretype : "",
               l2 ? l2 : "", load[0]);
        printf(" \"peak_gflops\": %.2f, \"peak_own\": {\"cpu_gflops\": %.2f, \"wall_gflops\": %.2f}, "
               "\"peak_openblas\": {\"cpu_gflops\": %.2f, \"wall_gflops\": %.2f},\n",
               r.peak, own_peak.cpu, own_peak.wall, blas_peak.cpu, blas_peak.wall);
        printf(" \"scaling_2048\": {\"wall_ms_1\": %.2f, \"wall_ms_n\": %.2f, \"cpu_ms_1\": %.2f, \"cpu_ms_n\": %.2f},\n",
               one.wall * 1e3, many.wall * 1e3, one.cpu * 1e3, many.cpu * 1e3);
        printf(" \"cases\": [\n");
        for (int i = 0; i < r.n; i++) {
            const result *x = &r.rows[i];
            printf("  {\"name\": \"%s\", \"gflop\": %.4f, \"ms\": %.3f, \"gflops\": %.2f, \"cpu_gflops\": %.2f, "
                   "\"of_peak\": %.3f",
                   x->label, x->gflop, x->own.wall * 1e3, x->gflop / x->own.wall, x->gflop / x->own.cpu,
                   x->gflop / x->own.cpu / r.peak);
            if (x->blas.wall > 0)
                printf(", \"openblas_gflops\": %.2f, \"openblas_cpu_gflops\": %.2f", x->gflop / x->blas.wall,
                       x->gflop / x->blas.cpu);
            if (x->vs_f32 > 0)
                printf(", \"vs_f32_cpu\": %.3f", x->vs_f32);
            printf("}%s\n", i + 1 < r.n ? "," : "");
        }
        printf(" ]}\n");
    }
    return 0;
}

static void ops_usage(FILE *f)
{
    fprintf(f, "usage: tessera bench ops [--threads N] [--json] [--quant]\n\n"
               "GEMM, conv2d and attention kernels at Stable-Diffusion-like shapes, as GFLOP/s and\n"
               "as a fraction of this machine's measured sgemm peak.\n\n"
               "--threads N   worker threads (default: all cores)\n--json        one JSON object instead of a table\n"
               "--quant       only the peak and the quantised-weight GEMMs (Q8_0, Q4_0, Q4_K, Q6_K against f32)\n");
}

static int bench_ops(int argc, char **argv)
{
    bench_opts opt = {0, 0, 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ops_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            opt.json = 1;
        } else if (strcmp(argv[i], "--quant") == 0) {
            opt.quant_only = 1;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "tessera bench: --threads wants a number from 1 to 256, not '%s'\n", argv[i]);
                return 2;
            }
            opt.threads = (int)n;
        } else {
            fprintf(stderr, "tessera bench ops: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    ts_threads_set(opt.threads);
    opt.threads = ts_threads_get();
    ts_gemm_select(ts_gemm_kernel_name()); /* "own" figures are our kernel's, f32 included */
    return bench_ops_run(&opt);
}

/* Each suite parses its own options: argv[0] is the suite name. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} suites[] = {
    {"ops", bench_ops, "GEMM, conv2d and attention kernels against a measured sgemm peak"},
    {"t5", bench_t5_main, "one T5 encoder pass on a checkpoint: time and peak memory"},
    {"unet", bench_unet_main, "UNet / MMDiT sampling steps (SD1, SD2, SDXL, SD3) on a checkpoint: time and peak memory"},
    {"vae", bench_vae_main, "one VAE decode on a checkpoint: time and peak memory"},
    {"flux", bench_flux_main, "Flux transformer steps on a checkpoint: time and peak memory"},
};

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: tessera bench SUITE [options]   (tessera bench SUITE --help)\n\nsuites:\n");
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        fprintf(f, "  %-6s %s\n", suites[i].name, suites[i].summary);
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        bench_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        bench_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        if (strcmp(argv[1], suites[i].name) == 0)
            return suites[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tessera bench: unknown suite '%s' (see tessera bench --help)\n", argv[1]);
    return 2;
}
