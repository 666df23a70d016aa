/*
 * Run-state files: where a generation stood when it stopped, so that it can be
 * finished later with the result an uninterrupted run gives, bit for bit.
 *
 * A run between two sampler steps is fully described by its settings, the step
 * reached, the sample x, the multistep history prev (the last step's denoised
 * estimate) and the state of the step-noise generator; once sampling is done, by the
 * final latent alone.  The file is a safetensors file, so the usual tools can look
 * into it:
 *   __metadata__: format "tessera-run-state", version "1", phase ("sample": steps
 *                 remain; "decode": sampling done, the VAE decode pending), pass
 *                 (0, or the pass of a multi-pass run), step, steps, and parameters:
 *                 the caller's settings as a JSON object (for the CLI: its options);
 *   tensors:      x (F32, the model-space latent), prev (F32, x's shape; absent
 *                 before the first step), rng.mt19937 (U32 [625]: the generator's
 *                 624 words, then its index; absent when no noise is drawn).
 * Loading validates all of it, so a truncated, edited or foreign file is refused
 * with one line naming the file.
 */
#ifndef TS_PIPELINE_RUN_STATE_H
#define TS_PIPELINE_RUN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "sample/rng.h"

#define TS_RUN_PHASE_MAX 16

typedef struct {
    char *params;                 /* JSON object text; NULL inside the pipeline */
    char phase[TS_RUN_PHASE_MAX]; /* "sample" or "decode" */
    int pass;
    int step, steps; /* steps done, of steps */
    int64_t shape[4];
    float *x, *prev; /* prev NULL: no history */
    int has_rng;
    ts_mt19937 rng;
} ts_run_state;

/* Writes s to path (through a temporary file and a rename). */
int ts_run_state_save(const char *path, const ts_run_state *s);
/* Reads and validates a file; s's params, x and prev are malloc'd (ts_run_state_free). */
int ts_run_state_load(const char *path, ts_run_state *s);
/* The same over an image of the file in memory (the fuzz harness's entry point). */
int ts_run_state_load_memory(const void *buf, size_t len, ts_run_state *s);
/* Frees what a load allocated and zeroes s. */
void ts_run_state_free(ts_run_state *s);

/* Elements of x (and of prev). */
size_t ts_run_state_numel(const ts_run_state *s);

#endif
