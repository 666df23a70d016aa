/*
 * Run-state files (see run_state.h): written with the safetensors writer, read back
 * through the safetensors reader, whose header validation comes first; this file
 * adds what makes the bytes a run state: the format and version marks, the phase
 * name, step counts that make sense, parameters that parse as a JSON object, and
 * exactly the tensors the layout names, with matching shapes.
 */
#include "pipeline/run_state.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"

#define FORMAT "tessera-run-state"
#define VERSION "1"
#define RNG_WORDS 625 /* 624 state words and the index */
#define MAX_STEPS 100000

size_t ts_run_state_numel(const ts_run_state *s)
{
    return (size_t)(s->shape[0] * s->shape[1] * s->shape[2] * s->shape[3]);
}

/* ---- saving -------------------------------------------------------------------- */

static int fill(void *ctx, size_t i, FILE *f)
{
    const ts_run_state *s = ctx;
    size_t n = ts_run_state_numel(s);
    if (i == 0)
        return ts_write_bytes(f, s->x, n * sizeof(float));
    if (i == 1 && s->prev)
        return ts_write_bytes(f, s->prev, n * sizeof(float));
    uint32_t words[RNG_WORDS];
    memcpy(words, s->rng.mt, sizeof s->rng.mt);
    words[RNG_WORDS - 1] = (uint32_t)s->rng.index;
    return ts_write_bytes(f, words, sizeof words);
}

int ts_run_state_save(const char *path, const ts_run_state *s)
{
    char pass[16], step[16], steps[16];
    snprintf(pass, sizeof pass, "%d", s->pass);
    snprintf(step, sizeof step, "%d", s->step);
    snprintf(steps, sizeof steps, "%d", s->steps);
    const char *keys[] = {"format", "version", "phase", "pass", "step", "steps", "parameters"};
    const char *values[] = {FORMAT, VERSION, s->phase, pass, step, steps, s->params ? s->params : "{}"};
    ts_out_tensor t[3];
    size_t n = 0;
    t[n++] = (ts_out_tensor){"x", TS_DTYPE_F32, 4, {s->shape[0], s->shape[1], s->shape[2], s->shape[3]}};
    if (s->prev)
        t[n++] = (ts_out_tensor){"prev", TS_DTYPE_F32, 4, {s->shape[0], s->shape[1], s->shape[2], s->shape[3]}};
    if (s->has_rng)
        t[n++] = (ts_out_tensor){"rng.mt19937", TS_DTYPE_U32, 1, {RNG_WORDS}};
    return ts_st_write(path, keys, values, sizeof keys / sizeof keys[0], t, n, fill, (void *)s);
}

/* ---- loading ------------------------------------------------------------------- */

static const char *meta(const ts_safetensors *st, const char *key, int *rc)
{
    const char *v = ts_st_metadata(st, key);
    if (!v && *rc == 0)
        *rc = ts_fail(TS_ERR_FORMAT, "run state: no \"%s\" in the metadata", key);
    return v;
}

static int parse_count(const char *s, const char *key, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < lo || v > hi)
        return ts_fail(TS_ERR_FORMAT, "run state: %s \"%s\" is not a number in [%d, %d]", key, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int check_phase(const char *phase, ts_run_state *s)
{
    size_t len = strlen(phase);
    int ok = len > 0 && len < TS_RUN_PHASE_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = (phase[i] >= 'a' && phase[i] <= 'z') || phase[i] == '_';
    if (!ok)
        return ts_fail(TS_ERR_FORMAT, "run state: phase \"%.32s\" is not a phase name", phase);
    memcpy(s->phase, phase, len + 1);
    return 0;
}

static int check_params(const char *json, ts_run_state *s)
{
    cJSON *root = cJSON_Parse(json);
    int object = cJSON_IsObject(root);
    cJSON_Delete(root);
    if (!object)
        return ts_fail(TS_ERR_FORMAT, "run state: the parameters are not a JSON object");
    s->params = strdup(json);
    return s->params ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory");
}

static int read_metadata(const ts_safetensors *st, ts_run_state *s)
{
    const char *format = ts_st_metadata(st, "format"), *version = ts_st_metadata(st, "version");
    if (!format || strcmp(format, FORMAT) != 0)
        return ts_fail(TS_ERR_FORMAT, "not a Tessera run state (no format \"" FORMAT "\" in its metadata)");
    if (!version || strcmp(version, VERSION) != 0)
        return ts_fail(TS_ERR_UNSUPPORTED, "run state version \"%.32s\" is not supported (this build reads " VERSION
                                           ")", version ? version : "");
    int rc = 0;
    const char *phase = meta(st, "phase", &rc), *pass = meta(st, "pass", &rc), *step = meta(st, "step", &rc),
               *steps = meta(st, "steps", &rc), *params = meta(st, "parameters", &rc);
    rc = rc ? rc : check_phase(phase, s);
    rc = rc ? rc : parse_count(pass, "pass", 0, 64, &s->pass);
    rc = rc ? rc : parse_count(steps, "steps", 1, MAX_STEPS, &s->steps);
    rc = rc ? rc : parse_count(step, "step", 0, s->steps, &s->step);
    return rc ? rc : check_params(params, s);
}

/* A malloc'd copy of a float tensor of x's shape. */
static int copy_latent(const ts_safetensors *st, const ts_st_tensor *t, const ts_run_state *s, float **out)
{
    int same = t->dtype == TS_DTYPE_F32 && t->ndim == 4;
    for (int d = 0; same && d < 4; d++)
        same = t->shape[d] == s->shape[d];
    if (!same)
        return ts_fail(TS_ERR_FORMAT, "run state: tensor \"%s\" is not F32 of x's shape", t->name);
    *out = malloc(t->end - t->begin);
    if (!*out)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    memcpy(*out, ts_st_data(st, t), t->end - t->begin);
    return 0;
}

static int read_rng(const ts_safetensors *st, const ts_st_tensor *t, ts_run_state *s)
{
    if (t->dtype != TS_DTYPE_U32 || t->ndim != 1 || t->shape[0] != RNG_WORDS)
        return ts_fail(TS_ERR_FORMAT, "run state: rng.mt19937 must be U32 [%d]", RNG_WORDS);
    uint32_t words[RNG_WORDS];
    memcpy(words, ts_st_data(st, t), sizeof words);
    if (words[RNG_WORDS - 1] > 624)
        return ts_fail(TS_ERR_FORMAT, "run state: the generator index %u is outside [0, 624]", words[RNG_WORDS - 1]);
    memcpy(s->rng.mt, words, sizeof s->rng.mt);
    s->rng.index = (int)words[RNG_WORDS - 1];
    s->has_rng = 1;
    return 0;
}

static int read_tensors(const ts_safetensors *st, ts_run_state *s)
{
    const ts_st_tensor *x = ts_st_find(st, "x"), *prev = ts_st_find(st, "prev"), *rng = ts_st_find(st, "rng.mt19937");
    size_t known = (x != NULL) + (prev != NULL) + (rng != NULL);
    if (!x)
        return ts_fail(TS_ERR_FORMAT, "run state: no tensor \"x\"");
    if (ts_st_count(st) != known)
        return ts_fail(TS_ERR_FORMAT, "run state: tensors other than x, prev and rng.mt19937");
    if (x->ndim != 4)
        return ts_fail(TS_ERR_FORMAT, "run state: x has %d dimensions, not 4", x->ndim);
    int64_t numel = 1;
    for (int d = 0; d < 4; d++) {
        s->shape[d] = x->shape[d];
        numel *= x->shape[d] > 0 ? x->shape[d] : 0;
    }
    if (numel == 0 || numel > INT_MAX)
        return ts_fail(TS_ERR_FORMAT, "run state: x is empty or too large");
    int rc = copy_latent(st, x, s, &s->x);
    rc = rc || !prev ? rc : copy_latent(st, prev, s, &s->prev);
    return rc || !rng ? rc : read_rng(st, rng, s);
}

static int load(ts_safetensors *st, ts_run_state *s)
{
    int rc = read_metadata(st, s);
    rc = rc ? rc : read_tensors(st, s);
    ts_st_close(st);
    if (rc)
        ts_run_state_free(s);
    return rc;
}

int ts_run_state_load(const char *path, ts_run_state *s)
{
    ts_safetensors *st = NULL;
    *s = (ts_run_state){0};
    int rc = ts_st_open(path, &st);
    if (rc)
        return rc;
    rc = load(st, s);
    return rc ? ts_fail_context(rc, "%s: ", path) : 0;
}

int ts_run_state_load_memory(const void *buf, size_t len, ts_run_state *s)
{
    ts_safetensors *st = NULL;
    *s = (ts_run_state){0};
    int rc = ts_st_open_memory(buf, len, &st);
    return rc ? rc : load(st, s);
}

void ts_run_state_free(ts_run_state *s)
{
    free(s->params);
    free(s->x);
    free(s->prev);
    *s = (ts_run_state){0};
}
