/*
 * Golden-case harness: runs one case folder of shared/golden (see its FORMAT.md)
 * and compares what the engine computes with what the reference stored.
 *
 * A case names its `family`; a runner registered for that family (runners.c)
 * loads the case's model through the ordinary loader, feeds it the stored inputs,
 * and hands every output to golden_compare(), which applies the case's tolerance:
 * a flat {max_abs, rel_l2[, max_rel]}, a per-output map whose keys may end in '*'
 * (or in 'K' for a step number: "out.x_stepK" covers out.x_step1, ...),
 * `tolerance_mid` for intermediate `mid.*` tensors, and `tolerance_overrides`.
 */
#ifndef TS_GOLDEN_GOLDEN_H
#define TS_GOLDEN_GOLDEN_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/tensor.h"
#include "io/safetensors.h"

typedef struct {
    const char *dir;
    cJSON *json;            /* case.json */
    ts_safetensors *io;     /* io.safetensors, or NULL when the case has none */
    const char *model;      /* the weights to load instead of model.safetensors (NULL: that) */
    double rel_l2;          /* > 0: see golden_options */
    double tolerance_scale; /* multiplies every tolerance (e.g. tiled runs) */
    int vae_tile;           /* > 0: VAE runners use the tiled passes with this tile (latent pixels) */
    int compared, failed;
} golden_case;

/* How golden_run_case runs a case. */
typedef struct {
    double tolerance_scale; /* 0 means 1 */
    int vae_tile;           /* 0: untiled VAE */
    const char *model;      /* NULL: the case's model.safetensors; else e.g. a GGUF conversion of it */
    /* > 0: every float output passes on rel_l2 <= this alone.  For rounded or quantised
     * weights (a converted model), which move every output by a relative amount: the
     * case's absolute bounds were set for f32 weights. */
    double rel_l2;
} golden_options;

/* Compares got (float32, numel elements) with the stored tensor `name`; prints one
 * line "  name  max_abs=...  rel_l2=...  PASS|FAIL" and counts the result.
 * A shape mismatch or a missing expected tensor counts as a failure. */
int golden_compare(golden_case *gc, const char *name, const float *got, int ndim, const int64_t *shape);
/* A model probe callback (ctx = the golden_case): compares each intermediate the model
 * reports with the stored tensor of that name, when the case stored one and gives it a
 * tolerance (a mid.* tensor without one is only there to localise a mismatch). */
void golden_compare_probe(void *ctx, const char *name, const ts_tensor *t);
/* Exact comparison of integer sequences (token ids); label names the comparison. */
int golden_compare_ids(golden_case *gc, const char *label, const int64_t *got, const int64_t *want, int64_t n);
/* Exact comparison with the stored int64 tensor `name` of n entries (missing or of
 * another type or shape counts as a failure). */
int golden_compare_int64(golden_case *gc, const char *name, const int64_t *got, int64_t n);

/* Reads an io.safetensors input as f32 (any stored dtype) into a malloc'd buffer;
 * shape_out (may be NULL) receives its shape. NULL with the error set when missing. */
float *golden_input(golden_case *gc, const char *name, int *ndim_out, int64_t *shape_out);
/* Path of a file inside the case folder (static buffer per call site is not kept: copy). */
const char *golden_path(golden_case *gc, const char *file, char *buf, int buf_size);

/* The case's weights: golden_options.model, else model.safetensors in the case folder. */
const char *golden_model_path(golden_case *gc, char *buf, int buf_size);

/* case.json config.<section>.<key> (section NULL: config.<key>); NULL when absent. */
const cJSON *golden_config(golden_case *gc, const char *section, const char *key);
/* The same as a number; 0 when absent or not a number. */
double golden_config_number(golden_case *gc, const char *section, const char *key);

typedef int (*golden_runner_fn)(golden_case *gc);

/* The runner for a family, or NULL when that family is not implemented yet. */
golden_runner_fn golden_runner_for(const char *family);

/* Runs one case folder. Returns 0 all passed, 1 a comparison failed or the case could not
 * run (message printed), 77 the family is not implemented yet. */
int golden_run_case(const char *dir, const golden_options *opts);

#endif
