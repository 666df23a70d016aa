/* Golden-case comparison and the case runner loop; see golden.h. */
#include "golden/golden.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct {
    double max_abs, rel_l2, max_rel; /* max_rel < 0: not checked */
} tolerance;

static int read_tolerance(const cJSON *obj, tolerance *t)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "max_abs");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(obj, "rel_l2");
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(r))
        return -1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "max_rel");
    t->max_abs = a->valuedouble;
    t->rel_l2 = r->valuedouble;
    t->max_rel = cJSON_IsNumber(m) ? m->valuedouble : -1;
    return 0;
}

/* An object whose keys are tensor-name patterns ("out.x", "out.karras_t.*"): the
 * first exact key, else the step key ("out.x_stepK" for out.x_step3), else the first
 * matching pattern. */
static int lookup_pattern(const cJSON *map, const char *name, tolerance *t)
{
    if (!cJSON_IsObject(map))
        return -1;
    const cJSON *exact = cJSON_GetObjectItemCaseSensitive(map, name);
    if (exact && read_tolerance(exact, t) == 0)
        return 0;
    /* Per-step tensors ("out.x_step3") share one key with the step number written K. */
    size_t len = strlen(name), digits = 0;
    while (digits < len && name[len - 1 - digits] >= '0' && name[len - 1 - digits] <= '9')
        digits++;
    if (digits > 0 && len < 128) {
        char step_key[130];
        snprintf(step_key, sizeof step_key, "%.*sK", (int)(len - digits), name);
        exact = cJSON_GetObjectItemCaseSensitive(map, step_key);
        if (exact && read_tolerance(exact, t) == 0)
            return 0;
    }
    for (const cJSON *item = map->child; item; item = item->next)
        if (fnmatch(item->string, name, 0) == 0 && read_tolerance(item, t) == 0)
            return 0;
    return -1;
}

static int tolerance_for(const golden_case *gc, const char *name, tolerance *t)
{
    if (lookup_pattern(cJSON_GetObjectItemCaseSensitive(gc->json, "tolerance_overrides"), name, t) == 0)
        return 0;
    if (strncmp(name, "mid.", 4) == 0 &&
        read_tolerance(cJSON_GetObjectItemCaseSensitive(gc->json, "tolerance_mid"), t) == 0)
        return 0;
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(gc->json, "tolerance");
    if (read_tolerance(base, t) == 0)
        return 0;
    return lookup_pattern(base, name, t);
}

static int record(golden_case *gc, int pass)
{
    gc->compared++;
    if (!pass)
        gc->failed++;
    return pass ? 0 : -1;
}

int golden_compare(golden_case *gc, const char *name, const float *got, int ndim, const int64_t *shape)
{
    const ts_st_tensor *want_t = gc->io ? ts_st_find(gc->io, name) : NULL;
    if (!want_t) {
        printf("  %-40s FAIL (no such tensor in io.safetensors)\n", name);
        return record(gc, 0);
    }
    int same_shape = want_t->ndim == ndim;
    for (int d = 0; same_shape && d < ndim; d++)
        same_shape = want_t->shape[d] == shape[d];
    if (!same_shape) {
        char a[96], b[96];
        printf("  %-40s FAIL (shape %s, expected %s)\n", name, ts_shape_str(a, sizeof a, ndim, shape),
               ts_shape_str(b, sizeof b, want_t->ndim, want_t->shape));
        return record(gc, 0);
    }
    tolerance tol;
    if (tolerance_for(gc, name, &tol) != 0) {
        printf("  %-40s FAIL (case.json gives no tolerance for it)\n", name);
        return record(gc, 0);
    }
    if (gc->rel_l2 > 0)
        tol = (tolerance){INFINITY, gc->rel_l2, -1};
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    float *want = malloc((n ? n : 1) * sizeof *want);
    if (!want) {
        printf("  %-40s FAIL (out of memory)\n", name);
        return record(gc, 0);
    }
    ts_to_f32(want_t->dtype, ts_st_data(gc->io, want_t), want, n);
    double max_abs = 0, max_rel = 0, diff2 = 0, want2 = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!isfinite(got[i]))
            finite = 0;
        if (d > max_abs)
            max_abs = d;
        double rel = d / (fabs((double)want[i]) > 1e-30 ? fabs((double)want[i]) : 1e-30);
        if (rel > max_rel)
            max_rel = rel;
        diff2 += d * d;
        want2 += (double)want[i] * want[i];
    }
    free(want);
    double rel_l2 = want2 > 0 ? sqrt(diff2 / want2) : sqrt(diff2);
    double s = gc->tolerance_scale;
    int pass = finite && max_abs <= tol.max_abs * s && rel_l2 <= tol.rel_l2 * s &&
               (tol.max_rel < 0 || max_rel <= tol.max_rel * s);
    printf("  %-40s max_abs=%.3g (tol %.3g)  rel_l2=%.3g (tol %.3g)", name, max_abs, tol.max_abs * s, rel_l2,
           tol.rel_l2 * s);
    if (tol.max_rel >= 0)
        printf("  max_rel=%.3g (tol %.3g)", max_rel, tol.max_rel * s);
    printf("  %s\n", pass ? "PASS" : finite ? "FAIL" : "FAIL (non-finite values)");
    return record(gc, pass);
}

int golden_compare_ids(golden_case *gc, const char *label, const int64_t *got, const int64_t *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            printf("  %-40s FAIL (id %lld: got %lld, expected %lld)\n", label, (long long)i, (long long)got[i],
                   (long long)want[i]);
            return record(gc, 0);
        }
    printf("  %-40s %lld ids exact  PASS\n", label, (long long)n);
    return record(gc, 1);
}

/* Exact comparison with a stored int64 tensor of n entries. */
int golden_compare_int64(golden_case *gc, const char *name, const int64_t *got, int64_t n)
{
    const ts_st_tensor *t = ts_st_find(gc->io, name);
    if (!t || t->dtype != TS_DTYPE_I64 || t->ndim != 1 || t->shape[0] != n) {
        printf("  %-40s FAIL (missing, not int64, or not [%lld])\n", name, (long long)n);
        gc->compared++;
        gc->failed++;
        return 0;
    }
    int64_t *want = malloc((size_t)n * sizeof *want);
    if (!want)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    memcpy(want, ts_st_data(gc->io, t), (size_t)n * sizeof *want);
    golden_compare_ids(gc, name, got, want, n);
    free(want);
    return 0;
}

float *golden_input(golden_case *gc, const char *name, int *ndim_out, int64_t *shape_out)
{
    const ts_st_tensor *t = gc->io ? ts_st_find(gc->io, name) : NULL;
    if (!t) {
        ts_fail(TS_ERR_FORMAT, "%s: io.safetensors has no tensor \"%s\"", gc->dir, name);
        return NULL;
    }
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        n *= (size_t)t->shape[d];
        if (shape_out)
            shape_out[d] = t->shape[d];
    }
    if (ndim_out)
        *ndim_out = t->ndim;
    float *buf = malloc((n ? n : 1) * sizeof *buf);
    if (!buf) {
        ts_fail(TS_ERR_NOMEM, "out of memory reading \"%s\"", name);
        return NULL;
    }
    ts_to_f32(t->dtype, ts_st_data(gc->io, t), buf, n);
    return buf;
}

void golden_compare_probe(void *ctx, const char *name, const ts_tensor *t)
{
    golden_case *gc = ctx;
    tolerance tol;
    if (ts_st_find(gc->io, name) && tolerance_for(gc, name, &tol) == 0)
        golden_compare(gc, name, t->data, t->ndim, t->shape);
}

const char *golden_path(golden_case *gc, const char *file, char *buf, int buf_size)
{
    snprintf(buf, (size_t)buf_size, "%s/%s", gc->dir, file);
    return buf;
}

const char *golden_model_path(golden_case *gc, char *buf, int buf_size)
{
    if (!gc->model)
        return golden_path(gc, "model.safetensors", buf, buf_size);
    snprintf(buf, (size_t)buf_size, "%s", gc->model);
    return buf;
}

const cJSON *golden_config(golden_case *gc, const char *section, const char *key)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(gc->json, "config");
    if (section)
        c = cJSON_GetObjectItemCaseSensitive(c, section);
    return cJSON_GetObjectItemCaseSensitive(c, key);
}

double golden_config_number(golden_case *gc, const char *section, const char *key)
{
    const cJSON *v = golden_config(gc, section, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static cJSON *read_json_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ts_fail(TS_ERR_IO, "%s: cannot open", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = size > 0 ? malloc((size_t)size) : NULL;
    cJSON *json = NULL;
    if (text && fread(text, 1, (size_t)size, f) == (size_t)size)
        json = cJSON_ParseWithLength(text, (size_t)size);
    free(text);
    fclose(f);
    if (!json)
        ts_fail(TS_ERR_FORMAT, "%s: not valid JSON", path);
    return json;
}

int golden_run_case(const char *dir, const golden_options *opts)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/case.json", dir);
    golden_case gc = {.dir = dir, .tolerance_scale = opts->tolerance_scale > 0 ? opts->tolerance_scale : 1.0,
                      .vae_tile = opts->vae_tile, .model = opts->model, .rel_l2 = opts->rel_l2};
    gc.json = read_json_file(path);
    if (!gc.json) {
        printf("%s: FAIL: %s\n", dir, ts_error_message());
        return 1;
    }
    const cJSON *family = cJSON_GetObjectItemCaseSensitive(gc.json, "family");
    const char *family_name = cJSON_IsString(family) ? family->valuestring : "?";
    golden_runner_fn run = golden_runner_for(family_name);
    if (!run) {
        printf("%s: skipped: not implemented (family %s)\n", dir, family_name);
        cJSON_Delete(gc.json);
        return 77;
    }
    printf("%s (family %s)\n", dir, family_name);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    FILE *probe = fopen(path, "rb");
    int status = 0;
    if (probe) {
        fclose(probe);
        if (ts_st_open(path, &gc.io) != 0) {
            printf("%s: FAIL: %s\n", dir, ts_error_message());
            status = 1;
        }
    }
    if (status == 0 && run(&gc) != 0) {
        printf("%s: FAIL: %s\n", dir, ts_error_message());
        status = 1;
    }
    if (status == 0 && gc.compared == 0) {
        printf("%s: FAIL: the runner compared nothing\n", dir);
        status = 1;
    }
    if (status == 0 && gc.failed)
        status = 1;
    printf("%s: %s (%d compared, %d failed)\n", dir, status ? "FAIL" : "PASS", gc.compared, gc.failed);
    ts_st_close(gc.io);
    cJSON_Delete(gc.json);
    return status;
}
