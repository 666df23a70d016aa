/*
 * tessera bench unet / vae / flux: the model workloads of an image (a Stable
 * Diffusion denoiser step, a VAE decode, a Flux transformer step), timed on a real
 * checkpoint with random inputs (the cost of a pass does not depend on the values it
 * reads).  `unet` takes the denoiser of any SD family: the UNet of SD1/SD2/SDXL or the
 * MMDiT of SD3/SD3.5 (context 77 CLIP + 77 T5 tokens, as a short prompt gives).
 *
 * `unet` runs K sampling steps with no warm-up: the first pass also faults the
 * memory-mapped weights in from the page cache (or the disk), so it is reported
 * apart from the median of the others.  With CFG the conditional and unconditional
 * halves go through as one batch of 2, which is how a sampler runs them, so one
 * forward is one sampling step.  `vae` is a single decode, the end of every image.
 * `flux` runs K transformer steps over the image's packed tokens and schnell's 256
 * (dev: 512) text tokens; checkpoints cut down to a few blocks (random-checkpoint
 * --subset) give the per-block cost of a model too large to page through RAM.
 *
 * Both print wall time and process CPU time divided by the thread count: the machine
 * this is developed on is shared, and the CPU figure is the one that compares with
 * numbers taken on an idle machine.  Peak RSS (VmHWM) counts the weights the passes
 * touched as well as the activations; the arena peak is the activations alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/threads.h"
#include "models/family.h"
#include "models/flux.h"
#include "models/mmdit.h"
#include "models/unet.h"
#include "models/vae.h"

/* Address space for activations; pages are committed only when touched. */
#define BENCH_ARENA_BYTES ((size_t)64 << 30)
#define CONTEXT_TOKENS 77
#define SD3_CONTEXT_TOKENS (2 * CONTEXT_TOKENS)

typedef struct {
    const char *model;
    long width, height, threads, steps;
    double cfg;
    int json;
    ts_flux_config rope; /* flux */
} model_opts;

typedef struct {
    double wall, cpu; /* seconds; cpu = process CPU time / threads */
} timing;

static void models_usage(FILE *f, const char *suite)
{
    if (strcmp(suite, "unet") == 0)
        fprintf(f, "usage: tessera bench unet --model FILE --width W --height H [--cfg S] [--threads N] [--steps K] "
                   "[--json]\n\n"
                   "Runs K (default 1) sampling steps of the UNet (SD1/SD2/SDXL) or the MMDiT (SD3/SD3.5) on\n"
                   "random latents of a WxH image: batch 2 (cond and uncond) unless --cfg is 1 (default 7).\n"
                   "Prints the first step (cold weights) and the median of the others, as wall and CPU/threads\n"
                   "seconds, and the peak resident memory.  FILE is a checkpoint or UNet-only file,\n"
                   ".safetensors or .gguf.\n");
    else if (strcmp(suite, "flux") == 0)
        fprintf(f, "usage: tessera bench flux --model FILE --width W --height H [--threads N] [--steps K] "
                   "[--rope-axes A,B,C] [--json]\n\n"
                   "Runs K (default 1) Flux transformer steps on random inputs for a WxH image (multiples of\n"
                   "16) and 256 text tokens (dev: 512).  Prints the first step (cold weights) and the median\n"
                   "of the others, as wall and CPU/threads seconds, and the peak resident memory.\n"
                   "--rope-axes: the rotary split of a head, for test models (default 16,56,56).\n");
    else
        fprintf(f, "usage: tessera bench vae --model FILE --width W --height H [--threads N] [--json]\n\n"
                   "Runs one VAE decode of a random latent to a WxH image and prints its wall and\n"
                   "CPU/threads seconds and the peak resident memory (FILE: .safetensors or .gguf).\n");
}

/* Parses the options of `suite` ("unet" takes --cfg and --steps too, "flux" --steps and
 * --rope-axes): 0, or the exit status. */
static int parse_model_opts(int argc, char **argv, model_opts *o, int *done)
{
    int unet = strcmp(argv[0], "unet") == 0, flux = strcmp(argv[0], "flux") == 0;
    *o = (model_opts){.cfg = 7.0, .steps = 1, .rope = ts_flux_config_default()};
    *done = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            models_usage(stdout, argv[0]);
            *done = 1;
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tessera bench: option '%s' needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0) {
            o->model = v;
        } else if (strcmp(a, "--width") == 0) {
            bad = bench_parse_count(a, v, 8, &o->width);
        } else if (strcmp(a, "--height") == 0) {
            bad = bench_parse_count(a, v, 8, &o->height);
        } else if (strcmp(a, "--threads") == 0) {
            bad = bench_parse_count(a, v, 0, &o->threads) || o->threads > 256;
        } else if ((unet || flux) && strcmp(a, "--steps") == 0) {
            bad = bench_parse_count(a, v, 1, &o->steps);
        } else if (flux && strcmp(a, "--rope-axes") == 0) {
            bad = ts_flux_config_parse(v, &o->rope) != 0;
        } else if (unet && strcmp(a, "--cfg") == 0) {
            char *end;
            o->cfg = strtod(v, &end);
            bad = end == v || *end || !(o->cfg >= 0.0 && o->cfg <= 100.0);
        } else {
            fprintf(stderr, "tessera bench %s: unknown option '%s'\n", argv[0], a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "tessera bench: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!o->model || !o->width || !o->height) {
        models_usage(stderr, argv[0]);
        return 2;
    }
    int mult = flux ? 16 : 8;
    if (o->width % mult || o->height % mult) {
        fprintf(stderr, "tessera bench: --width and --height must be multiples of %d\n", mult);
        return 2;
    }
    ts_threads_set((int)o->threads);
    o->threads = ts_threads_get();
    return 0;
}

static timing time_since(double wall0, double cpu0, long threads)
{
    return (timing){bench_wall_seconds() - wall0, (bench_cpu_seconds() - cpu0) / (double)threads};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print_memory_text(const ts_arena *arena)
{
    printf("memory   peak RSS %.0f MB (VmHWM); now RssAnon %.0f MB, RssFile %.0f MB; arena peak %.1f MB\n",
           bench_proc_status_bytes("VmHWM") / 1e6, bench_proc_status_bytes("RssAnon") / 1e6,
           bench_proc_status_bytes("RssFile") / 1e6, (double)ts_arena_peak(arena) / 1e6);
}

static void print_memory_json(const ts_arena *arena)
{
    double load[1] = {-1.0};
    getloadavg(load, 1);
    printf(", \"peak_rss_bytes\": %.0f, \"rss_anon_bytes\": %.0f, \"rss_file_bytes\": %.0f, "
           "\"arena_peak_bytes\": %zu, \"load_average\": %.2f}\n",
           bench_proc_status_bytes("VmHWM"), bench_proc_status_bytes("RssAnon"), bench_proc_status_bytes("RssFile"),
           ts_arena_peak(arena), load[0]);
}

/* ---- unet ---- */

/* The random inputs of one CFG step: x [B, C, h, w], context [B, T, D], y [B, adm] or none. */
typedef struct {
    ts_tensor x, context, y;
    float timesteps[2];
} unet_batch;

/* The network a step runs: one of the two. */
typedef struct {
    ts_unet *unet;
    ts_mmdit *mmdit;
} step_net;

static void unet_batch_free(unet_batch *b)
{
    free(b->x.data);
    free(b->context.data);
    free(b->y.data);
}

/* SDXL's y is built as a sampler would: a zero pooled text vector and the image size, no crop;
 * the MMDiT's pooled vector is random like the rest. */
static int unet_batch_make(const step_net *n, const model_opts *o, int64_t batch, unet_batch *b)
{
    unsigned seed = 2024;
    int64_t c = n->mmdit ? ts_mmdit_in_channels(n->mmdit) : ts_unet_in_channels(n->unet);
    int64_t d = n->mmdit ? ts_mmdit_context_dim(n->mmdit) : ts_unet_context_dim(n->unet);
    int64_t adm = n->mmdit ? ts_mmdit_adm_channels(n->mmdit) : ts_unet_adm_channels(n->unet);
    int64_t h = o->height / 8, w = o->width / 8, tokens = n->mmdit ? SD3_CONTEXT_TOKENS : CONTEXT_TOKENS;
    *b = (unet_batch){.timesteps = {500.0f, 500.0f}};
    b->x = ts_tensor_view(bench_random_floats((size_t)(batch * c * h * w), &seed), 4, (int64_t[]){batch, c, h, w});
    b->context = ts_tensor_view(bench_random_floats((size_t)(batch * tokens * d), &seed), 3,
                                (int64_t[]){batch, tokens, d});
    if (n->mmdit)
        b->y = ts_tensor_view(bench_random_floats((size_t)(batch * adm), &seed), 2, (int64_t[]){batch, adm});
    if (adm == 0 || n->mmdit)
        return 0;
    int64_t pooled_dim = adm - 6 * TS_SDXL_SIZE_EMBED;
    if (pooled_dim < 0)
        return ts_fail(TS_ERR_MODEL, "%s: adm_in_channels %lld is too small for SDXL's size embedding", o->model,
                       (long long)adm);
    float *pooled = calloc((size_t)(batch * pooled_dim + 1), sizeof *pooled);
    b->y = ts_tensor_view(malloc((size_t)(batch * adm) * sizeof(float)), 2, (int64_t[]){batch, adm});
    if (!pooled || !b->y.data) {
        free(pooled);
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    int64_t sizes[12];
    for (int64_t i = 0; i < batch; i++) {
        int64_t *s = sizes + 6 * i;
        s[0] = o->height, s[1] = o->width, s[2] = 0, s[3] = 0, s[4] = o->height, s[5] = o->width;
    }
    ts_sdxl_vector(pooled, batch, (int)pooled_dim, sizes, b->y.data);
    free(pooled);
    return 0;
}

typedef struct {
    const char *family, *net;
    int64_t batch;
    double load_seconds;
    timing first, rest; /* rest.wall < 0 with one step */
} unet_result;

static void unet_report(const model_opts *o, const unet_result *r, const ts_arena *arena)
{
    double step = r->rest.wall >= 0 ? r->rest.wall : r->first.wall;
    double step_cpu = r->rest.wall >= 0 ? r->rest.cpu : r->first.cpu;
    if (o->json) {
        printf("{\"suite\": \"unet\", \"family\": \"%s\", \"width\": %ld, \"height\": %ld, \"batch\": %lld, "
               "\"cfg\": %g, \"threads\": %ld, \"steps\": %ld, \"load_seconds\": %.3f, "
               "\"first_step_seconds\": %.3f, \"first_step_cpu_seconds\": %.3f, "
               "\"step_seconds\": %.3f, \"step_cpu_seconds\": %.3f",
               r->family, o->width, o->height, (long long)r->batch, o->cfg, o->threads, o->steps, r->load_seconds,
               r->first.wall, r->first.cpu, step, step_cpu);
        print_memory_json(arena);
        return;
    }
    printf("model    %s: %s %s; %ldx%ld, batch %lld (CFG %g), %ld threads; open + load %.3f s\n", o->model,
           r->family, r->net, o->width, o->height, (long long)r->batch, o->cfg, o->threads, r->load_seconds);
    printf("step     first (cold weights) %.3f s wall, %.3f s cpu/thread\n", r->first.wall, r->first.cpu);
    if (r->rest.wall >= 0)
        printf("step     median of the other %ld: %.3f s wall, %.3f s cpu/thread\n", o->steps - 1, r->rest.wall,
               r->rest.cpu);
    print_memory_text(arena);
}

/* One forward of a stepping suite's network on its prepared inputs. */
typedef int (*step_fn)(const void *call, ts_arena *arena);

/* Times o->steps calls of step: the first apart (cold weights), the median of the rest. */
static int timed_steps(step_fn step, const void *call, const model_opts *o, ts_arena *arena, timing *first,
                       timing *rest)
{
    double *wall = malloc((size_t)o->steps * sizeof *wall), *cpu = malloc((size_t)o->steps * sizeof *cpu);
    int rc = wall && cpu ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory");
    size_t mark = ts_arena_mark(arena);
    for (long k = 0; k < o->steps && !rc; k++) {
        double w0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
        ts_arena_hold_pages(arena, 1); /* as the pipelines' denoisers do around a step */
        rc = step(call, arena);
        ts_arena_hold_pages(arena, 0);
        timing t = time_since(w0, c0, o->threads);
        wall[k] = t.wall, cpu[k] = t.cpu;
        ts_arena_reset(arena, mark);
    }
    if (!rc) {
        *first = (timing){wall[0], cpu[0]};
        *rest = o->steps > 1 ? (timing){median(wall + 1, o->steps - 1), median(cpu + 1, o->steps - 1)}
                             : (timing){-1.0, -1.0};
    }
    free(wall);
    free(cpu);
    return rc;
}

typedef struct {
    const ts_unet *unet;
    ts_unet_inputs in;
} unet_call;

static int unet_step(const void *call, ts_arena *arena)
{
    const unet_call *c = call;
    ts_tensor eps;
    return ts_unet_forward(c->unet, &c->in, arena, &eps);
}

typedef struct {
    const ts_mmdit *mmdit;
    ts_mmdit_inputs in;
} mmdit_call;

static int mmdit_step(const void *call, ts_arena *arena)
{
    const mmdit_call *c = call;
    ts_tensor v;
    return ts_mmdit_forward(c->mmdit, &c->in, arena, &v);
}

static int bench_unet(const model_opts *o)
{
    ts_weights *wf = NULL;
    step_net net = {0};
    ts_arena *arena = NULL;
    unet_batch b = {0};
    ts_model_info info;
    unet_result r = {.batch = o->cfg != 1.0 ? 2 : 1, .net = "UNet"};
    double t0 = bench_wall_seconds();
    unsigned accepted = TS_FAMILY_BIT(TS_FAMILY_SD1) | TS_FAMILY_BIT(TS_FAMILY_SD2) | TS_FAMILY_BIT(TS_FAMILY_SDXL) |
                        TS_FAMILY_BIT(TS_FAMILY_SD3) | TS_FAMILY_BIT(TS_FAMILY_SD35);
    int rc = ts_weights_open(o->model, &wf);
    rc = rc ? rc : ts_family_require(wf, accepted, &info);
    r.family = rc ? NULL : ts_family_name(info.family);
    if (!rc && info.comp[TS_COMP_MMDIT].prefix) {
        r.net = "MMDiT";
        rc = ts_mmdit_load(wf, info.comp[TS_COMP_MMDIT].prefix, &net.mmdit);
    } else if (!rc) {
        /* The head rule is the one thing the weights do not say (see unet.h). */
        ts_unet_config cfg = info.family == TS_FAMILY_SD1 ? (ts_unet_config){.num_heads = 8}
                                                          : (ts_unet_config){.head_channels = 64};
        rc = ts_unet_load(wf, info.comp[TS_COMP_UNET].prefix, cfg, &net.unet);
    }
    r.load_seconds = bench_wall_seconds() - t0;
    rc = rc ? rc : unet_batch_make(&net, o, r.batch, &b);
    if (!rc && !(arena = ts_arena_create(BENCH_ARENA_BYTES)))
        rc = TS_ERR_NOMEM;
    unet_call ucall = {net.unet, {.x = &b.x, .timesteps = b.timesteps, .context = &b.context,
                                  .y = b.y.data ? &b.y : NULL}};
    mmdit_call mcall = {net.mmdit, {.x = &b.x, .timesteps = b.timesteps, .context = &b.context, .y = &b.y}};
    if (!rc)
        rc = net.mmdit ? timed_steps(mmdit_step, &mcall, o, arena, &r.first, &r.rest)
                       : timed_steps(unet_step, &ucall, o, arena, &r.first, &r.rest);
    if (!rc)
        unet_report(o, &r, arena);
    unet_batch_free(&b);
    ts_arena_destroy(arena);
    ts_unet_free(net.unet);
    ts_mmdit_free(net.mmdit);
    ts_weights_close(wf);
    return rc;
}

/* ---- vae ---- */

static int bench_vae(const model_opts *o)
{
    ts_weights *wf = NULL;
    ts_arena *arena = NULL;
    ts_vae vae;
    ts_tensor latent = {0}, image;
    unsigned seed = 2024;
    double t0 = bench_wall_seconds();
    int rc = ts_weights_open(o->model, &wf);
    rc = rc ? rc : ts_vae_load(wf, &vae);
    double load_seconds = bench_wall_seconds() - t0;
    if (!rc && !(arena = ts_arena_create(BENCH_ARENA_BYTES)))
        rc = TS_ERR_NOMEM;
    timing t = {0, 0};
    if (!rc) {
        int64_t z = vae.z_channels, h = o->height / 8, w = o->width / 8;
        latent = ts_tensor_view(bench_random_floats((size_t)(z * h * w), &seed), 4, (int64_t[]){1, z, h, w});
        double w0 = bench_wall_seconds(), c0 = bench_cpu_seconds();
        rc = ts_vae_decode(&vae, &latent, arena, &image);
        t = time_since(w0, c0, o->threads);
    }
    if (!rc && o->json) {
        printf("{\"suite\": \"vae\", \"width\": %ld, \"height\": %ld, \"latent_channels\": %d, \"threads\": %ld, "
               "\"load_seconds\": %.3f, \"decode_seconds\": %.3f, \"decode_cpu_seconds\": %.3f",
               o->width, o->height, vae.z_channels, o->threads, load_seconds, t.wall, t.cpu);
        print_memory_json(arena);
    } else if (!rc) {
        printf("model    %s: VAE decoder, %d latent channels, %d levels; %ldx%ld, %ld threads; open + load %.3f s\n",
               o->model, vae.z_channels, vae.levels, o->width, o->height, o->threads, load_seconds);
        printf("decode   %.3f s wall, %.3f s cpu/thread\n", t.wall, t.cpu);
        print_memory_text(arena);
    }
    free(latent.data);
    ts_arena_destroy(arena);
    ts_weights_close(wf);
    return rc;
}

/* ---- flux ---- */

/* Random inputs of one step: tokens, text, pooled vector; ids as sampling makes them. */
typedef struct {
    const ts_flux *flux;
    ts_tensor img, img_ids, txt, txt_ids, y;
    float t, guidance;
    ts_flux_inputs in;
} flux_call;

static void flux_call_free(flux_call *c)
{
    free(c->img.data);
    free(c->img_ids.data);
    free(c->txt.data);
    free(c->txt_ids.data);
    free(c->y.data);
}

static int flux_call_make(const ts_flux *flux, const model_opts *o, flux_call *c)
{
    unsigned seed = 2024;
    int64_t li = (o->height / 16) * (o->width / 16), lt = ts_flux_has_guidance(flux) ? 512 : 256;
    int64_t ctx = ts_flux_context_dim(flux), vec = ts_flux_vec_dim(flux);
    *c = (flux_call){.flux = flux, .t = 1.0f, .guidance = 3.5f};
    c->img = ts_tensor_view(bench_random_floats((size_t)(li * ts_flux_in_channels(flux)), &seed), 3,
                            (int64_t[]){1, li, ts_flux_in_channels(flux)});
    c->txt = ts_tensor_view(bench_random_floats((size_t)(lt * ctx), &seed), 3, (int64_t[]){1, lt, ctx});
    c->y = ts_tensor_view(bench_random_floats((size_t)vec, &seed), 2, (int64_t[]){1, vec});
    c->img_ids = ts_tensor_view(malloc((size_t)li * 3 * sizeof(float)), 3, (int64_t[]){1, li, 3});
    c->txt_ids = ts_tensor_view(calloc((size_t)lt * 3, sizeof(float)), 3, (int64_t[]){1, lt, 3});
    if (!c->img_ids.data || !c->txt_ids.data)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    ts_flux_img_ids(o->height / 8, o->width / 8, c->img_ids.data);
    c->in = (ts_flux_inputs){.img = &c->img, .img_ids = &c->img_ids, .txt = &c->txt, .txt_ids = &c->txt_ids,
                             .y = &c->y, .timesteps = &c->t, .guidance = &c->guidance};
    return 0;
}

static int flux_step(const void *call, ts_arena *arena)
{
    const flux_call *c = call;
    ts_tensor v;
    return ts_flux_forward(c->flux, &c->in, arena, &v);
}

static void flux_report(const model_opts *o, const ts_flux *flux, const char *family, double load, timing first,
                        timing rest, const ts_arena *arena)
{
    int64_t li = (o->height / 16) * (o->width / 16), lt = ts_flux_has_guidance(flux) ? 512 : 256;
    if (o->json) {
        printf("{\"suite\": \"flux\", \"family\": \"%s\", \"width\": %ld, \"height\": %ld, "
               "\"double_blocks\": %d, \"single_blocks\": %d, \"image_tokens\": %lld, \"text_tokens\": %lld, "
               "\"threads\": %ld, \"steps\": %ld, \"load_seconds\": %.3f, \"first_step_seconds\": %.3f, "
               "\"first_step_cpu_seconds\": %.3f, \"step_seconds\": %.3f, \"step_cpu_seconds\": %.3f",
               family, o->width, o->height, ts_flux_double_blocks(flux), ts_flux_single_blocks(flux), (long long)li,
               (long long)lt, o->threads, o->steps, load, first.wall, first.cpu, rest.wall >= 0 ? rest.wall : first.wall,
               rest.wall >= 0 ? rest.cpu : first.cpu);
        print_memory_json(arena);
        return;
    }
    printf("model    %s: %s transformer, %d double + %d single blocks; %ldx%ld = %lld image + %lld text tokens, "
           "%ld threads; open + load %.3f s\n",
           o->model, family, ts_flux_double_blocks(flux), ts_flux_single_blocks(flux), o->width, o->height,
           (long long)li, (long long)lt, o->threads, load);
    printf("step     first (cold weights) %.3f s wall, %.3f s cpu/thread\n", first.wall, first.cpu);
    if (rest.wall >= 0)
        printf("step     median of the other %ld: %.3f s wall, %.3f s cpu/thread\n", o->steps - 1, rest.wall, rest.cpu);
    print_memory_text(arena);
}

static int bench_flux(const model_opts *o)
{
    ts_weights *wf = NULL;
    ts_flux *flux = NULL;
    ts_arena *arena = NULL;
    ts_model_info info;
    flux_call call = {0};
    timing first = {0, 0}, rest = {-1, -1};
    double t0 = bench_wall_seconds();
    int rc = ts_weights_open(o->model, &wf);
    rc = rc ? rc : ts_family_require(wf, TS_FAMILY_BIT(TS_FAMILY_FLUX_SCHNELL) | TS_FAMILY_BIT(TS_FAMILY_FLUX_DEV),
                                     &info);
    rc = rc ? rc : ts_flux_load(wf, info.comp[TS_COMP_FLUX].prefix, o->rope, &flux);
    double load = bench_wall_seconds() - t0;
    rc = rc ? rc : flux_call_make(flux, o, &call);
    if (!rc && !(arena = ts_arena_create(BENCH_ARENA_BYTES)))
        rc = TS_ERR_NOMEM;
    rc = rc ? rc : timed_steps(flux_step, &call, o, arena, &first, &rest);
    if (!rc)
        flux_report(o, flux, ts_family_name(info.family), load, first, rest, arena);
    flux_call_free(&call);
    ts_arena_destroy(arena);
    ts_flux_free(flux);
    ts_weights_close(wf);
    return rc;
}

static int run_suite(int argc, char **argv, int (*bench)(const model_opts *o))
{
    model_opts o;
    int done;
    int rc = parse_model_opts(argc, argv, &o, &done);
    if (rc || done)
        return rc;
    if (bench(&o) != 0) {
        fprintf(stderr, "tessera bench: %s\n", ts_error_message());
        return 1;
    }
    return 0;
}

int bench_unet_main(int argc, char **argv)
{
    return run_suite(argc, argv, bench_unet);
}

int bench_vae_main(int argc, char **argv)
{
    return run_suite(argc, argv, bench_vae);
}

int bench_flux_main(int argc, char **argv)
{
    return run_suite(argc, argv, bench_flux);
}
