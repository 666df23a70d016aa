/*
 * tessera bench t5: one forward pass of a T5 v1.1 encoder (e.g. t5xxl_fp16.safetensors)
 * on a prompt of --tokens ids, reporting wall time and peak memory.  The ids are a
 * fixed pseudo-random sequence ending in EOS: the cost of an encoder does not depend
 * on which tokens it reads.
 *
 * Peak RSS is the kernel's high-water mark for the whole process (VmHWM), which
 * includes the memory-mapped weights the pass touched; the anonymous and file-backed
 * parts are printed separately so a reader can tell weights (file) from activations
 * and copies (anon).  Timings on a shared machine are noisy: run it more than once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/threads.h"
#include "text/t5_encoder.h"

static void t5_usage(FILE *f)
{
    fprintf(f, "usage: tessera bench t5 --model FILE [--tokens N] [--threads N]\n\n"
               "Runs one forward pass of the T5 encoder in FILE on N tokens (default 256)\n"
               "and prints the time, the peak resident memory and the arena's peak.\n");
}

static int bench_t5(const char *model, long tokens)
{
    ts_weights *wf = NULL;
    ts_t5_encoder m;
    double t0 = bench_wall_seconds();
    int rc = ts_weights_open(model, &wf);
    rc = rc ? rc : ts_t5_load(wf, NULL, &m);
    if (rc) {
        ts_weights_close(wf);
        return rc;
    }
    double t_load = bench_wall_seconds() - t0;
    int32_t *ids = malloc((size_t)tokens * sizeof *ids);
    /* reserve: activations (x, h, q, k, v, o, two FFN branches) plus the [H, T, T] bias, doubled */
    size_t need = (size_t)tokens * (size_t)(6 * m.d_model + 2 * m.d_ff) * sizeof(float) +
                  (size_t)m.heads * (size_t)tokens * (size_t)tokens * sizeof(float);
    ts_arena *arena = ts_arena_create(2 * need + ((size_t)64 << 20));
    if (!ids || !arena) {
        free(ids);
        ts_arena_destroy(arena);
        ts_weights_close(wf);
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    }
    for (long i = 0; i < tokens; i++)
        ids[i] = i + 1 == tokens || m.vocab <= 2 ? 1 : (int32_t)(2 + (i * 7919 + 13) % (m.vocab - 2));
    ts_tensor out;
    t0 = bench_wall_seconds();
    rc = ts_t5_forward(&m, ids, NULL, 1, tokens, arena, &out);
    double t_run = bench_wall_seconds() - t0;
    if (!rc) {
        double s = 0.0;
        for (int64_t i = 0; i < ts_tensor_numel(&out); i++)
            s += (double)out.data[i] * out.data[i];
        const char *dt = ts_dtype_name(m.block[0].q.dtype);
        printf("model    %s: T5 encoder, %d blocks, d_model %d, %d heads, d_ff %d, %s weights (%.2f GB file)\n",
               model, m.layers, m.d_model, m.heads, m.d_ff, dt, (double)ts_weights_file_size(wf) / 1e9);
        printf("run      %ld tokens, %d threads: %.2f s (open + load %.3f s); output rms %.4f\n", tokens,
               ts_threads_get(), t_run, t_load, sqrt(s / (double)ts_tensor_numel(&out)));
        printf("memory   peak RSS %.0f MB (VmHWM); now RssAnon %.0f MB, RssFile %.0f MB; arena peak %.1f MB\n",
               bench_proc_status_bytes("VmHWM") / 1e6, bench_proc_status_bytes("RssAnon") / 1e6,
               bench_proc_status_bytes("RssFile") / 1e6, (double)ts_arena_peak(arena) / 1e6);
    }
    free(ids);
    ts_arena_destroy(arena);
    ts_weights_close(wf);
    return rc;
}

int bench_t5_main(int argc, char **argv)
{
    const char *model = NULL;
    long tokens = 256, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            t5_usage(stdout);
            return 0;
        }
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "tessera bench: option '%s' needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0) {
            model = argv[++i];
        } else if (strcmp(a, "--tokens") == 0) {
            if (bench_parse_count(a, argv[++i], 1, &tokens))
                return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (bench_parse_count(a, argv[++i], 0, &threads))
                return 2;
        } else {
            fprintf(stderr, "tessera bench: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!model) {
        t5_usage(stderr);
        return 2;
    }
    ts_threads_set((int)threads);
    if (bench_t5(model, tokens) != 0) {
        fprintf(stderr, "tessera bench: %s\n", ts_error_message());
        return 1;
    }
    return 0;
}
