/* Schedules, samplers, noise and guidance: the properties the golden cases do not
 * cover. The references are closed forms (Gaussian data has an exact denoiser and an
 * exact probability-flow solution), published known-answer vectors (Random123
 * Philox) and the flow-matching schedules stored in the SD3 and Flux golden cases. */
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "sample/denoiser.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "sample/schedule.h"
#include "test.h"

/* ---- noise ---- */

static void test_philox_known_answers(void)
{
    /* Random123 kat_vectors, "philox4x32 10". */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        ts_philox4x32(kat[v], kat[v] + 4, out);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(out[i] == kat[v][6 + i], "vector %d word %d: %08x", v, i, out[i]);
    }
}

static void test_rng_reproducible_and_chunk_independent(void)
{
    enum { N = 1001 };
    static float a[N], b[N], c[N];
    ts_rng r1, r2, r3;
    ts_rng_init(&r1, 12345);
    ts_rng_init(&r2, 12345);
    ts_rng_init(&r3, 12346);
    ts_rng_normal(&r1, a, N);
    /* Odd chunk sizes cross the 4-normal block boundaries at every offset. */
    for (size_t done = 0, chunk = 1; done < N; done += chunk, chunk = chunk % 7 + 1) {
        if (chunk > N - done)
            chunk = N - done;
        ts_rng_normal(&r2, b + done, chunk);
    }
    ts_rng_normal(&r3, c, N);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == c[i];
    CHECK_MSG(same < 3, "seeds 12345 and 12346 share %d of %d values", same, N);
    CHECK(r1.offset == N && r2.offset == N);
    /* Skipping ahead is setting the offset. */
    ts_rng r4;
    ts_rng_init(&r4, 12345);
    r4.offset = 517;
    float tail[N - 517];
    ts_rng_normal(&r4, tail, N - 517);
    CHECK(memcmp(tail, a + 517, sizeof tail) == 0);
}

static void test_rng_threads_do_not_change_the_stream(void)
{
    enum { N = 100003 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    ts_rng r1, r2;
    ts_rng_init(&r1, 77);
    ts_rng_init(&r2, 77);
    ts_threads_set(1);
    for (size_t done = 0; done < N; done += 997)
        ts_rng_normal(&r1, a + done, N - done < 997 ? N - done : 997);
    ts_threads_set(2);
    ts_rng_normal(&r2, b, 3); /* leaves the stream mid-block */
    ts_rng_normal(&r2, b + 3, N - 3);
    ts_threads_set(0);
    CHECK(memcmp(a, b, N * sizeof *a) == 0);
    free(a);
    free(b);
}

static void test_rng_moments(void)
{
    enum { N = 1 << 20 };
    float *z = malloc(N * sizeof *z);
    ts_rng r;
    ts_rng_init(&r, 0x5eed);
    ts_rng_normal(&r, z, N);
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0, lag = 0, inside = 0;
    for (int i = 0; i < N; i++) {
        double v = z[i];
        m1 += v, m2 += v * v, m3 += v * v * v, m4 += v * v * v * v;
        lag += i ? v * z[i - 1] : 0;
        inside += fabs(v) < 1.0;
    }
    m1 /= N, m2 /= N, m3 /= N, m4 /= N, lag /= N - 1, inside /= N;
    /* Bounds are about 5 standard errors of each estimate at N = 2^20. */
    CHECK_NEAR(m1, 0.0, 5e-3);
    CHECK_NEAR(m2, 1.0, 7e-3);
    CHECK_NEAR(m3, 0.0, 1.2e-2);
    CHECK_NEAR(m4, 3.0, 4e-2);
    CHECK_NEAR(lag, 0.0, 5e-3);
    CHECK_NEAR(inside, 0.682689, 2.5e-3);
    free(z);
}

static ts_safetensors *open_case_io(const char *case_name);

static void test_mt19937_known_answers(void)
{
    /* The C++ standard's check: the 10000th output of mt19937 seeded 5489. */
    ts_mt19937 g;
    ts_mt19937_seed(&g, 5489);
    CHECK(ts_mt19937_next(&g) == 3499211612u);
    for (int i = 1; i < 9999; i++)
        ts_mt19937_next(&g);
    CHECK(ts_mt19937_next(&g) == 4123659995u);
}

/* Max |got - stored| over a stored float tensor of a golden case, scaled by 1/scale;
 * -1 when the case or tensor is not available. */
static double stored_gap(const char *case_name, const char *name, const float *got, size_t n, double scale)
{
    ts_safetensors *io = open_case_io(case_name);
    const ts_st_tensor *t = io ? ts_st_find(io, name) : NULL;
    double gap = -1;
    if (t && t->dtype == TS_DTYPE_F32 && t->end - t->begin == n * sizeof(float)) {
        const float *want = ts_st_data(io, t);
        gap = 0;
        for (size_t i = 0; i < n; i++)
            gap = fmax(gap, fabs(got[i] - want[i] / scale));
    }
    ts_st_close(io);
    return gap;
}

static void test_torch_noise_matches_reference_scripts(void)
{
    /* Seeds and shapes of the golden cases that drew their noise with torch on CPU. */
    static const struct {
        const char *case_name, *tensor;
        uint64_t seed;
        size_t n;
    } cases[] = {
        {"sd3_sampling", "in.noise", 3003, 16 * 16 * 12},
        {"flux_sampling", "in.noise", 1003, 16 * 8 * 12},
        {"pipeline_sd15", "in.noise", 7105, 4 * 8 * 6},
    };
    static float z[4096];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ts_mt19937 g;
        ts_mt19937_seed(&g, cases[c].seed);
        CHECK(ts_torch_randn(&g, z, cases[c].n) == 0);
        double gap = stored_gap(cases[c].case_name, cases[c].tensor, z, cases[c].n, 1.0);
        printf("torch noise, %s seed %llu: max gap %.3g\n", cases[c].case_name, (unsigned long long)cases[c].seed, gap);
        CHECK_MSG(gap >= 0 && gap < 5e-6, "%s: gap %g", cases[c].case_name, gap);
    }
    /* The samplers case drew x_T = randn * sigmas[0], then noise 0..8, from one generator
     * (the noise through the sampler adapter). */
    ts_safetensors *io = open_case_io("samplers");
    const ts_st_tensor *t = io ? ts_st_find(io, "in.sigmas") : NULL;
    double sigma0 = t && t->dtype == TS_DTYPE_F32 ? *(const float *)ts_st_data(io, t) : 0;
    ts_st_close(io);
    ts_mt19937 g;
    ts_mt19937_seed(&g, 2001);
    for (int k = -1; sigma0 > 0 && k < 9; k++) {
        char name[32];
        snprintf(name, sizeof name, k < 0 ? "in.x_T" : "in.noise.%d", k);
        CHECK((k < 0 ? ts_torch_randn(&g, z, 2 * 4 * 8 * 6) : ts_torch_noise(&g, 1, 0.5, z, 2 * 4 * 8 * 6)) == 0);
        double gap = stored_gap("samplers", name, z, 2 * 4 * 8 * 6, k < 0 ? sigma0 : 1.0);
        CHECK_MSG(gap >= 0 && gap < 5e-6, "samplers %s: gap %g", name, gap);
    }
    CHECK(ts_torch_randn(&g, z, 15) == TS_ERR_ARG);
}

/* ---- schedules ---- */

static void check_descending_to_zero(const float *s, int steps, double sigma_max, const char *what)
{
    CHECK_MSG(s[steps] == 0.0f, "%s: last sigma %g", what, (double)s[steps]);
    CHECK_MSG(s[0] <= sigma_max * (1 + 1e-6), "%s: first sigma %g above sigma_max %g", what, (double)s[0], sigma_max);
    for (int i = 0; i < steps; i++)
        CHECK_MSG(s[i] > s[i + 1], "%s: sigma %d = %g, %d = %g", what, i, (double)s[i], i + 1, (double)s[i + 1]);
}

static void test_schedules_descend_to_zero(void)
{
    static ts_noise_schedule ddpm, flow;
    ts_noise_ddpm(&ddpm, 0.00085, 0.012);
    ts_noise_flow(&flow, 3.0);
    float s[TS_TRAIN_STEPS + 1];
    char what[96];
    for (int k = 0; k < TS_SCHED_COUNT; k++) {
        int max_steps = k == TS_SCHED_TURBO ? 10 : k == TS_SCHED_LCM ? TS_LCM_ORIGINAL_STEPS : 150;
        for (int steps = 1; steps <= max_steps; steps++) {
            snprintf(what, sizeof what, "ddpm %s %d", ts_scheduler_name((ts_scheduler)k), steps);
            CHECK_MSG(ts_schedule_sigmas(&ddpm, (ts_scheduler)k, steps, s) == 0, "%s", what);
            check_descending_to_zero(s, steps, ts_noise_sigma_max(&ddpm), what);
            int discrete_only = k >= TS_SCHED_LEGACY_DDPM;
            snprintf(what, sizeof what, "flow %s %d", ts_scheduler_name((ts_scheduler)k), steps);
            int rc = ts_schedule_sigmas(&flow, (ts_scheduler)k, steps, s);
            CHECK_MSG(discrete_only ? rc == TS_ERR_ARG : rc == 0, "%s: rc %d", what, rc);
            if (!discrete_only)
                check_descending_to_zero(s, steps, ts_noise_sigma_max(&flow), what);
        }
        CHECK(ts_schedule_sigmas(&ddpm, (ts_scheduler)k, 0, s) == TS_ERR_ARG);
    }
    CHECK(ts_schedule_sigmas(&ddpm, TS_SCHED_TURBO, 11, s) == TS_ERR_ARG);
    CHECK(ts_schedule_sigmas(&ddpm, TS_SCHED_LCM, 51, s) == TS_ERR_ARG);
    /* Full-denoise schedules start at the top of the table. */
    ts_schedule_sigmas(&ddpm, TS_SCHED_KARRAS, 20, s);
    CHECK_NEAR(s[0], 14.614641, 1e-5);
    ts_schedule_sigmas(&flow, TS_SCHED_NORMAL, 20, s);
    CHECK_NEAR(s[0], 1.0, 1e-7);
}

static void test_scheduler_names(void)
{
    ts_scheduler k;
    for (int i = 0; i < TS_SCHED_COUNT; i++) {
        CHECK(ts_scheduler_from_name(ts_scheduler_name((ts_scheduler)i), &k) == 0);
        CHECK(k == (ts_scheduler)i);
    }
    CHECK(ts_scheduler_from_name("discrete", &k) == 0 && k == TS_SCHED_NORMAL);
    CHECK(ts_scheduler_from_name("karas", &k) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "karas") != NULL);
}

static void test_sigma_timestep_inverse(void)
{
    static ts_noise_schedule s;
    ts_noise_ddpm(&s, 0.00085, 0.012);
    for (int t = 0; t < TS_TRAIN_STEPS; t++) {
        CHECK(ts_noise_timestep(&s, ts_noise_sigma(&s, t)) == t);
        CHECK_NEAR(ts_noise_timestep_frac(&s, ts_noise_sigma(&s, t)), t, 1e-9);
        if (t < TS_TRAIN_STEPS - 1)
            CHECK_NEAR(ts_noise_timestep_frac(&s, ts_noise_sigma(&s, t + 0.37)), t + 0.37, 1e-9);
    }
    /* Beyond the table ends the fractional timestep clamps. */
    CHECK(ts_noise_timestep_frac(&s, 1e-4) == 0);
    CHECK(ts_noise_timestep_frac(&s, 100.0) == TS_TRAIN_STEPS - 1);
    ts_noise_flow(&s, 3.0);
    CHECK_NEAR(ts_noise_timestep(&s, ts_noise_sigma(&s, 420.0)), 420.0 * 3 / (1 + 2 * 0.42), 1e-9);
}

/* Compares a schedule with a stored float tensor of a golden case, tol relative above 1. */
static void compare_stored(ts_safetensors *io, const char *name, const float *got, int64_t n, double tol)
{
    const ts_st_tensor *t = ts_st_find(io, name);
    CHECK_MSG(t && t->dtype == TS_DTYPE_F32 && t->ndim == 1 && t->shape[0] == n, "%s", name);
    if (!t || t->dtype != TS_DTYPE_F32 || t->ndim != 1 || t->shape[0] != n)
        return;
    const float *want = ts_st_data(io, t);
    for (int64_t i = 0; i < n; i++)
        CHECK_MSG(fabs((double)got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i])), "%s[%lld]: %.9g vs %.9g", name,
                  (long long)i, (double)got[i], (double)want[i]);
}

static ts_safetensors *open_case_io(const char *case_name)
{
    const char *shared = getenv("TESSERA_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/%s/io.safetensors", shared ? shared : "../shared", case_name);
    ts_safetensors *io = NULL;
    if (ts_st_open(path, &io) != 0)
        fprintf(stderr, "note: %s not available, flow schedule reference skipped\n", path);
    return io;
}

static void test_flow_schedules_match_references(void)
{
    /* SD3 reference: get_sigmas(ModelSamplingDiscreteFlow(shift), n) = our normal scheduler. */
    static const struct {
        int steps;
        double shift;
    } sd3[] = {{4, 3}, {28, 3}, {40, 3}, {50, 1}, {10, 6}, {1, 3}};
    ts_safetensors *io = open_case_io("sd3_sampling");
    static ts_noise_schedule s;
    float sig[64];
    char name[64];
    for (size_t i = 0; io && i < sizeof sd3 / sizeof sd3[0]; i++) {
        ts_noise_flow(&s, sd3[i].shift);
        CHECK(ts_schedule_sigmas(&s, TS_SCHED_NORMAL, sd3[i].steps, sig) == 0);
        snprintf(name, sizeof name, "out.sigmas.n%d_shift%d", sd3[i].steps, (int)sd3[i].shift);
        compare_stored(io, name, sig, sd3[i].steps + 1, 1e-6);
    }
    ts_st_close(io);
    static const struct {
        int steps, len, shift;
    } flux[] = {{4, 24, 0},    {4, 4096, 0},  {28, 4096, 1}, {50, 4096, 1},
                {20, 1024, 1}, {30, 4080, 1}, {8, 24, 1},    {1, 256, 1}};
    io = open_case_io("flux_sampling");
    for (size_t i = 0; io && i < sizeof flux / sizeof flux[0]; i++) {
        CHECK(ts_schedule_flux(flux[i].steps, flux[i].len, flux[i].shift, 0.5, 1.15, sig) == 0);
        snprintf(name, sizeof name, "out.schedule.n%d_len%d_%s", flux[i].steps, flux[i].len,
                 flux[i].shift ? "shift" : "noshift");
        compare_stored(io, name, sig, flux[i].steps + 1, 2e-6);
    }
    ts_st_close(io);
}

/* The SD 1.5 pipeline case: txt2img and inpaint use the 6-step karras schedule,
 * img2img at strength 0.6 the tail of the int(6/0.6) = 10-step one; the UNet is fed
 * the nearest-table timestep of each sigma. */
static void test_pipeline_schedules_match_reference(void)
{
    ts_safetensors *io = open_case_io("pipeline_sd15");
    if (!io)
        return;
    static ts_noise_schedule s;
    ts_noise_ddpm(&s, 0.00085, 0.012);
    static const struct {
        const char *mode;
        double denoise;
        int full;
    } modes[] = {{"txt2img", 1.0, 1}, {"img2img", 0.6, 0}, {"inpaint", 1.0, 1}};
    for (int m = 0; m < 3; m++) {
        float sig[7];
        char name[64];
        CHECK(ts_schedule_sigmas_denoise(&s, TS_SCHED_KARRAS, 6, modes[m].denoise, sig) == 0);
        /* txt2img stores its schedule under the plain name. */
        snprintf(name, sizeof name, "out.%s%ssigmas", m ? modes[m].mode : "", m ? "." : "");
        compare_stored(io, name, sig, 7, 2e-6);
        CHECK_MSG(ts_noise_full_denoise(&s, sig[0]) == modes[m].full, "%s", modes[m].mode);
        snprintf(name, sizeof name, "mid.%s.timesteps", modes[m].mode);
        const ts_st_tensor *t = ts_st_find(io, name);
        CHECK_MSG(t && t->dtype == TS_DTYPE_I64 && t->shape[0] == 6, "%s", name);
        for (int i = 0; t && i < 6; i++) {
            int64_t want;
            memcpy(&want, (const char *)ts_st_data(io, t) + i * sizeof want, sizeof want);
            CHECK_MSG(ts_noise_timestep(&s, sig[i]) == (double)want, "%s[%d]: %g vs %lld", name, i,
                      ts_noise_timestep(&s, sig[i]), (long long)want);
        }
    }
    ts_st_close(io);
    float sig[8];
    CHECK(ts_schedule_sigmas_denoise(&s, TS_SCHED_KARRAS, 6, 0.0, sig) == TS_ERR_ARG);
    CHECK(ts_schedule_sigmas_denoise(&s, TS_SCHED_KARRAS, 6, 1.5, sig) == TS_ERR_ARG);
    CHECK(ts_schedule_sigmas_denoise(&s, TS_SCHED_KARRAS, 6, 0.001, sig) == TS_ERR_ARG);
}

/* ---- samplers ---- */

/* Data ~ N(mu, sd^2) per element: the exact denoiser is linear,
 * D(x, s) = mu + sd^2 / (sd^2 + s^2) * (x - mu), and along the probability-flow ODE
 * (x - mu) / sqrt(sd^2 + s^2) stays constant. */
typedef struct {
    double mu, sd;
    int calls;
} gaussian;

static int gaussian_denoise(void *user, const float *x, size_t n, double s, float *d)
{
    gaussian *g = user;
    double k = g->sd * g->sd / (g->sd * g->sd + s * s);
    for (size_t i = 0; i < n; i++)
        d[i] = (float)(g->mu + k * (x[i] - g->mu));
    g->calls++;
    return 0;
}

/* Max |x - exact| / |exact - mu| after a deterministic run from x_T. */
static double ode_error(ts_sampler kind, const float *sig, int steps)
{
    enum { N = 64 };
    gaussian g = {0.3, 0.5, 0};
    float x[N], x_T[N];
    ts_rng r;
    ts_rng_init(&r, 7);
    ts_rng_normal(&r, x_T, N);
    for (int i = 0; i < N; i++)
        x[i] = x_T[i] = x_T[i] * sig[0];
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = gaussian_denoise;
    cfg.denoise_user = &g;
    CHECK(ts_sample(kind, &cfg, x, N, sig, steps) == 0);
    CHECK_MSG(g.calls == ts_sampler_model_calls(kind, steps), "%s: %d calls", ts_sampler_name(kind), g.calls);
    /* Exact ODE down to the last non-zero sigma, then the final denoise every sampler makes. */
    double sd2 = g.sd * g.sd, last = sig[steps - 1];
    double k = sqrt(sd2 + last * last) / sqrt(sd2 + (double)sig[0] * sig[0]) * sd2 / (sd2 + last * last);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = g.mu + k * (x_T[i] - g.mu);
        worst = fmax(worst, fabs(x[i] - want) / fabs(want - g.mu));
    }
    return worst;
}

static void test_ode_samplers_converge(void)
{
    static ts_noise_schedule s;
    ts_noise_ddpm(&s, 0.00085, 0.012);
    float sig[101];
    ts_schedule_sigmas(&s, TS_SCHED_KARRAS, 25, sig);
    double e_euler = ode_error(TS_SAMPLER_EULER, sig, 25);
    double e_heun = ode_error(TS_SAMPLER_HEUN, sig, 25);
    double e_2m = ode_error(TS_SAMPLER_DPMPP_2M, sig, 25);
    ts_schedule_sigmas(&s, TS_SCHED_KARRAS, 100, sig);
    double e_euler100 = ode_error(TS_SAMPLER_EULER, sig, 100);
    double e_2m100 = ode_error(TS_SAMPLER_DPMPP_2M, sig, 100);
    printf("relative ODE error, 25 steps: euler %.3g heun %.3g dpmpp_2m %.3g; 100 steps: euler %.3g dpmpp_2m %.3g\n",
           e_euler, e_heun, e_2m, e_euler100, e_2m100);
    CHECK(e_euler < 0.1);
    CHECK(e_heun < e_euler / 5);
    CHECK(e_2m < e_euler / 5);
    /* First order: 4x the steps, about 4x less error; second order: about 16x. */
    CHECK(e_euler100 < e_euler / 3);
    CHECK(e_2m100 < e_2m / 8);
}

/* Std of the final sample of a seeded run on Gaussian data. */
static double sde_final_sd(ts_sampler kind, const gaussian *data, int steps, uint64_t seed)
{
    enum { N = 1 << 16 };
    static ts_noise_schedule s;
    ts_noise_ddpm(&s, 0.00085, 0.012);
    float sig[TS_TRAIN_STEPS + 1];
    ts_schedule_sigmas(&s, TS_SCHED_KARRAS, steps, sig);
    float *x = malloc(N * sizeof *x);
    gaussian g = *data;
    ts_rng r;
    ts_rng_init(&r, seed);
    ts_rng_normal(&r, x, N);
    for (int i = 0; i < N; i++)
        x[i] *= sig[0];
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = gaussian_denoise;
    cfg.denoise_user = &g;
    cfg.noise = ts_rng_noise;
    cfg.noise_user = &r;
    CHECK(ts_sample(kind, &cfg, x, N, sig, steps) == 0);
    /* One draw of N normals per step but the last, after the N of x_T. */
    CHECK_MSG(r.offset == (uint64_t)N * steps, "%s drew %llu normals", ts_sampler_name(kind),
              (unsigned long long)r.offset);
    double m = 0, v = 0;
    for (int i = 0; i < N; i++)
        m += x[i];
    m /= N;
    for (int i = 0; i < N; i++)
        v += (x[i] - m) * (x[i] - m);
    free(x);
    CHECK_NEAR(m, g.mu, 0.02);
    return sqrt(v / N);
}

static void test_sde_samplers_sample_the_data(void)
{
    const gaussian data = {-0.4, 0.7, 0};
    /* Euler ancestral is first order in the variance too: on linear data its final
     * variance follows var' = a^2 var + sigma_up^2 with a = 1 + (1-k)(sigma_down - s)/s,
     * k = sd^2/(sd^2 + s^2), which gives sd 0.6252 at 30 karras steps, 0.6876 at 200. */
    double ea30 = sde_final_sd(TS_SAMPLER_EULER_ANCESTRAL, &data, 30, 11);
    double ea200 = sde_final_sd(TS_SAMPLER_EULER_ANCESTRAL, &data, 200, 12);
    double sde30 = sde_final_sd(TS_SAMPLER_DPMPP_2M_SDE, &data, 30, 13);
    printf("final sd on N(-0.4, 0.7^2): euler_ancestral 30 steps %.4f, 200 steps %.4f; dpmpp_2m_sde 30 steps %.4f\n",
           ea30, ea200, sde30);
    CHECK_NEAR(ea30, 0.6252, 0.008);
    CHECK_NEAR(ea200, 0.6876, 0.008);
    CHECK_NEAR(sde30, data.sd, 0.02);
}

/* Denoiser that always answers the same clean sample. */
static int constant_denoise(void *user, const float *x, size_t n, double s, float *d)
{
    (void)x;
    (void)s;
    for (size_t i = 0; i < n; i++)
        d[i] = *(const float *)user;
    return 0;
}

static int zero_noise(void *user, double s, double sn, float *noise, size_t n)
{
    (void)user, (void)s, (void)sn;
    memset(noise, 0, n * sizeof *noise);
    return 0;
}

static void test_every_sampler_reaches_a_point_mass(void)
{
    static ts_noise_schedule s;
    ts_noise_ddpm(&s, 0.00085, 0.012);
    float sig[11], c = 0.625f;
    ts_schedule_sigmas(&s, TS_SCHED_NORMAL, 10, sig);
    for (int k = 0; k < TS_SAMPLER_COUNT; k++) {
        float x[5] = {-20, -3, 0, 7, 30};
        ts_sampler_config cfg = ts_sampler_config_default();
        cfg.denoise = constant_denoise;
        cfg.denoise_user = &c;
        cfg.noise = zero_noise;
        CHECK(ts_sample((ts_sampler)k, &cfg, x, 5, sig, 10) == 0);
        for (int i = 0; i < 5; i++)
            CHECK_MSG(fabsf(x[i] - c) < 1e-6f, "%s: %g", ts_sampler_name((ts_sampler)k), (double)x[i]);
    }
}

static int stop_at_step_3(void *user, int i, int steps, double sigma, const float *x, const float *d)
{
    (void)user, (void)steps, (void)sigma, (void)x, (void)d;
    return i == 3 ? ts_fail(TS_ERR_ARG, "cancelled") : 0;
}

static void test_sampler_errors(void)
{
    float c = 0, x[2] = {1, 2};
    float good[3] = {2, 1, 0}, rising[3] = {1, 2, 0}, no_zero[3] = {2, 1, 0.5f}, nan_s[3] = {NAN, 1, 0};
    ts_sampler_config cfg = ts_sampler_config_default();
    cfg.denoise = constant_denoise;
    cfg.denoise_user = &c;
    CHECK(ts_sample(TS_SAMPLER_EULER, &cfg, x, 2, rising, 2) == TS_ERR_ARG);
    CHECK(ts_sample(TS_SAMPLER_EULER, &cfg, x, 2, nan_s, 2) == TS_ERR_ARG);
    CHECK(ts_sample(TS_SAMPLER_EULER, &cfg, x, 2, good, 0) == TS_ERR_ARG);
    /* Not ending at 0 is allowed (img2img tails, split runs); ascending is not. */
    CHECK(ts_sample(TS_SAMPLER_EULER, &cfg, x, 2, no_zero, 2) == 0);
    CHECK(ts_sample(TS_SAMPLER_EULER_ANCESTRAL, &cfg, x, 2, good, 2) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "noise") != NULL);
    CHECK(ts_sample((ts_sampler)99, &cfg, x, 2, good, 2) == TS_ERR_ARG);
    float sig[8] = {7, 6, 5, 4, 3, 2, 1, 0};
    cfg.on_step = stop_at_step_3;
    CHECK(ts_sample(TS_SAMPLER_EULER, &cfg, x, 2, sig, 7) == TS_ERR_ARG);
    CHECK(strcmp(ts_error_message(), "cancelled") == 0);
    ts_sampler k;
    CHECK(ts_sampler_from_name("euler_a", &k) == 0 && k == TS_SAMPLER_EULER_ANCESTRAL);
    CHECK(ts_sampler_from_name("dpm++2m", &k) == 0 && k == TS_SAMPLER_DPMPP_2M);
    CHECK(ts_sampler_from_name("ddim", &k) == TS_ERR_ARG);
    for (int i = 0; i < TS_SAMPLER_COUNT; i++)
        CHECK(ts_sampler_from_name(ts_sampler_name((ts_sampler)i), &k) == 0 && k == (ts_sampler)i);
}

/* ---- predictions and guidance ---- */

static void test_predictions_recover_the_clean_sample(void)
{
    const float x0[3] = {0.5f, -1.25f, 2.0f}, e[3] = {-0.3f, 1.7f, 0.9f};
    const double sigmas[] = {0.03, 0.7, 14.6};
    for (size_t k = 0; k < 3; k++) {
        double s = sigmas[k], a = 1 / sqrt(1 + s * s), b = s / sqrt(1 + s * s);
        float x[3], x_flow[3], eps[3], v[3], v_flow[3], d[3];
        for (int i = 0; i < 3; i++) {
            x[i] = (float)(x0[i] + s * e[i]);                /* k-diffusion sample */
            eps[i] = e[i];                                   /* eps target */
            v[i] = (float)(a * e[i] - b * x0[i]);            /* v target in the VP space x_vp = a*x */
            x_flow[i] = (float)((1 - s) * x0[i] + s * e[i]); /* rectified flow sample */
            v_flow[i] = e[i] - x0[i];
        }
        ts_pred_denoised(TS_PRED_EPS, s, x, eps, d, 3);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(d[i], x0[i], 2e-5 * (1 + s));
        ts_pred_denoised(TS_PRED_V, s, x, v, d, 3);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(d[i], x0[i], 2e-5 * (1 + s));
        ts_pred_denoised(TS_PRED_FLOW, s, x_flow, v_flow, d, 3);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(d[i], x0[i], 2e-5 * (1 + s));
        CHECK_NEAR(ts_pred_c_in(TS_PRED_EPS, s), a, 1e-15);
        CHECK(ts_pred_c_in(TS_PRED_FLOW, s) == 1.0);
        /* Noise scaling: the k-diffusion sample, ComfyUI's full-denoise variant, flow lerp. */
        ts_pred_noise_scaling(TS_PRED_EPS, s, e, x0, 0, d, 3);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(d[i], x[i], 1e-6 * (1 + s));
        ts_pred_noise_scaling(TS_PRED_EPS, s, e, NULL, 1, d, 3);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(d[i], e[i] * sqrt(1 + s * s), 1e-6 * (1 + s));
        ts_pred_noise_scaling(TS_PRED_FLOW, s, e, x0, 1, d, 3);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(d[i], x_flow[i], 1e-6);
    }
}

/* An eps network that knows the clean sample: given c_in*x at timestep t it returns
 * (x - x0)/sigma, recovering sigma from t through the table. */
typedef struct {
    const ts_noise_schedule *s;
    const float *x0;
    double last_t;
} oracle;

static int oracle_eps(void *user, const float *x_in, size_t n, double t, float *out)
{
    oracle *o = user;
    double sigma = ts_noise_sigma(o->s, t);
    double c_in = 1 / sqrt(sigma * sigma + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((x_in[i] / c_in - o->x0[i]) / sigma);
    o->last_t = t;
    return 0;
}

static void test_model_denoiser(void)
{
    static ts_noise_schedule s;
    ts_noise_ddpm(&s, 0.00085, 0.012);
    const float x0[4] = {0.25f, -0.5f, 1.0f, 0.0f};
    oracle o = {&s, x0, -1};
    ts_model_denoiser m = {oracle_eps, &o, TS_PRED_EPS, &s, 0};
    for (int t = 0; t < TS_TRAIN_STEPS; t += 111) {
        double sigma = ts_noise_sigma(&s, t);
        float x[4], d[4];
        for (int i = 0; i < 4; i++)
            x[i] = (float)(x0[i] + sigma * (i - 1.5));
        CHECK(ts_model_denoise(&m, x, 4, sigma, d) == 0);
        CHECK(o.last_t == t);
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(d[i], x0[i], 1e-5 * (1 + sigma));
    }
    m.fractional_timesteps = 1;
    double sigma = ts_noise_sigma(&s, 500.25);
    float x[4] = {0, 0, 0, 0}, d[4];
    CHECK(ts_model_denoise(&m, x, 4, sigma, d) == 0);
    CHECK_NEAR(o.last_t, 500.25, 1e-9);
}

typedef struct {
    float value;
    int calls;
} counted;

static int counted_denoise(void *user, const float *x, size_t n, double s, float *d)
{
    (void)s;
    counted *c = user;
    for (size_t i = 0; i < n; i++)
        d[i] = x[i] + c->value;
    c->calls++;
    return 0;
}

static void test_cfg_and_ip2p(void)
{
    counted cond = {1.0f, 0}, uncond = {-0.5f, 0};
    ts_cfg_denoiser g = {counted_denoise, &cond, counted_denoise, &uncond, 7.5};
    float x[4] = {0, 1, 2, 3}, d[4];
    CHECK(ts_cfg_denoise(&g, x, 4, 1.0, d) == 0);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(d[i], (x[i] - 0.5) + ((x[i] + 1.0) - (x[i] - 0.5)) * 7.5, 1e-5);
    CHECK(cond.calls == 1 && uncond.calls == 1);
    g.scale = 1.0;
    CHECK(ts_cfg_denoise(&g, x, 4, 1.0, d) == 0);
    CHECK(cond.calls == 2 && uncond.calls == 1); /* scale 1: the uncond pass is skipped */
    for (int i = 0; i < 4; i++)
        CHECK(d[i] == x[i] + 1.0f);
    float full[2] = {1, 2}, image[2] = {3, 5}, none[2] = {-1, 4}, out[2];
    ts_guidance_ip2p(full, image, none, 7.5, 1.5, out, 2);
    for (int i = 0; i < 2; i++)
        CHECK_NEAR(out[i], none[i] + 1.5 * (image[i] - none[i]) + 7.5 * (full[i] - image[i]), 1e-5);
    ts_guidance_ip2p(full, image, none, 1, 1, out, 2);
    CHECK(out[0] == full[0] && out[1] == full[1]);
    ts_guidance_ip2p(full, image, none, 0, 0, out, 2);
    CHECK(out[0] == none[0] && out[1] == none[1]);
}

/* Records the input it was called with; answers 2*x. */
typedef struct {
    float seen[4];
} recorder;

static int record_denoise(void *user, const float *x, size_t n, double s, float *d)
{
    (void)s;
    recorder *r = user;
    for (size_t i = 0; i < n; i++) {
        r->seen[i] = x[i];
        d[i] = 2 * x[i];
    }
    return 0;
}

static void test_inpaint_blending(void)
{
    recorder rec;
    const float mask[4] = {1, 0, 0.25f, 1}, latent[4] = {0.5f, -1, 2, 3}, noise[4] = {1, -2, 0.5f, 0};
    const float x[4] = {10, 20, 30, 40};
    const double sigma = 3.0;
    float d[4];
    ts_inpaint_denoiser p = {record_denoise, &rec, TS_PRED_EPS, mask, latent, noise};
    CHECK(ts_inpaint_denoise(&p, x, 4, sigma, d) == 0);
    for (int i = 0; i < 4; i++) {
        double kept = latent[i] + noise[i] * sigma; /* the original, noised to sigma */
        double in = x[i] * mask[i] + kept * (1 - mask[i]);
        CHECK_NEAR(rec.seen[i], in, 1e-5);
        CHECK_NEAR(d[i], 2 * in * mask[i] + latent[i] * (1 - mask[i]), 1e-5);
    }
    CHECK(d[1] == latent[1]); /* fully kept: exactly the input latent */
    p.prediction = TS_PRED_FLOW;
    CHECK(ts_inpaint_denoise(&p, x, 4, 0.25, d) == 0);
    CHECK_NEAR(rec.seen[1], 0.75 * latent[1] + 0.25 * noise[1], 1e-6);
}

/* Stops a run after `at` steps, keeping what a later run needs to continue it. */
typedef struct {
    int at;
    float x[64], prev[64];
    ts_rng rng_at_stop;
    const ts_rng *rng;
} stopper;

static int stop_and_keep(void *user, int done, int steps, float *x, const float *prev, size_t n)
{
    stopper *s = user;
    (void)steps;
    if (done != s->at)
        return 0;
    memcpy(s->x, x, n * sizeof *x);
    memcpy(s->prev, prev, n * sizeof *prev);
    s->rng_at_stop = *s->rng;
    return ts_fail(TS_ERR_CANCELLED, "stopped");
}

/* A run stopped between steps and continued from its saved state ends bit for bit
 * where the uninterrupted run does, for every sampler. */
static void test_stopped_run_continues_exactly(void)
{
    enum { N = 64, STEPS = 8 };
    static ts_noise_schedule s;
    ts_noise_ddpm(&s, 0.00085, 0.012);
    float sig[STEPS + 1];
    ts_schedule_sigmas(&s, TS_SCHED_KARRAS, STEPS, sig);
    for (int k = 0; k < TS_SAMPLER_COUNT; k++) {
        gaussian g = {0.3, 0.5, 0};
        float whole[N], part[N];
        ts_rng r;
        ts_rng_init(&r, 11);
        ts_rng_normal(&r, whole, N);
        memcpy(part, whole, sizeof whole);
        ts_rng start = r;
        ts_sampler_config cfg = ts_sampler_config_default();
        cfg.denoise = gaussian_denoise;
        cfg.denoise_user = &g;
        cfg.noise = ts_rng_noise;
        cfg.noise_user = &r;
        CHECK(ts_sample((ts_sampler)k, &cfg, whole, N, sig, STEPS) == 0);

        r = start;
        stopper st = {.at = 3, .rng = &r};
        cfg.between = stop_and_keep;
        cfg.between_user = &st;
        CHECK(ts_sample((ts_sampler)k, &cfg, part, N, sig, STEPS) == TS_ERR_CANCELLED);
        r = st.rng_at_stop;
        cfg.between = NULL;
        cfg.start_step = st.at;
        cfg.start_prev = st.prev;
        CHECK(ts_sample((ts_sampler)k, &cfg, st.x, N, sig, STEPS) == 0);
        CHECK_MSG(memcmp(st.x, whole, sizeof whole) == 0, "%s", ts_sampler_name((ts_sampler)k));
    }
    ts_sampler_config cfg = ts_sampler_config_default();
    gaussian g = {0, 1, 0};
    float x[N] = {0};
    cfg.denoise = gaussian_denoise;
    cfg.denoise_user = &g;
    cfg.start_step = STEPS + 1;
    CHECK(ts_sample(TS_SAMPLER_EULER, &cfg, x, N, sig, STEPS) == TS_ERR_ARG);
}

TEST_MAIN(TEST(test_philox_known_answers), TEST(test_mt19937_known_answers),
          TEST(test_torch_noise_matches_reference_scripts), TEST(test_rng_reproducible_and_chunk_independent),
          TEST(test_rng_threads_do_not_change_the_stream), TEST(test_rng_moments), TEST(test_schedules_descend_to_zero),
          TEST(test_scheduler_names), TEST(test_sigma_timestep_inverse), TEST(test_flow_schedules_match_references),
          TEST(test_pipeline_schedules_match_reference), TEST(test_model_denoiser), TEST(test_ode_samplers_converge),
          TEST(test_sde_samplers_sample_the_data), TEST(test_every_sampler_reaches_a_point_mass),
          TEST(test_sampler_errors), TEST(test_predictions_recover_the_clean_sample), TEST(test_cfg_and_ip2p),
          TEST(test_inpaint_blending), TEST(test_stopped_run_continues_exactly))
