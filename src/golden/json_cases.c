/* cases.json readers and id-list comparisons for the tokenizer families; see json_cases.h. */
#include "golden/json_cases.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "text/embedded.h"

cJSON *golden_read_cases(golden_case *gc)
{
    char path[4096];
    unsigned char *text = NULL;
    size_t size = 0;
    if (ts_read_file(golden_path(gc, "cases.json", path, sizeof path), &text, &size) != TS_OK)
        return NULL;
    cJSON *json = cJSON_ParseWithLength((const char *)text, size);
    free(text);
    if (!cJSON_IsArray(json)) {
        cJSON_Delete(json);
        ts_fail(TS_ERR_FORMAT, "%s: not a JSON array", path);
        return NULL;
    }
    return json;
}

void golden_fail_line(golden_case *gc, const char *label)
{
    printf("  %-40s FAIL (%s)\n", label, ts_error_message());
    gc->compared++;
    gc->failed++;
}

/* int32 -> int64 copy (golden_compare_ids works on int64), malloc'd. */
static int64_t *widen(const int32_t *v, int n)
{
    int64_t *w = malloc((size_t)(n > 0 ? n : 1) * sizeof *w);
    for (int i = 0; w && i < n; i++)
        w[i] = v[i];
    if (!w)
        ts_fail(TS_ERR_NOMEM, "out of memory");
    return w;
}

static int compare_wide(golden_case *gc, const char *label, const int64_t *got, int n_got, const int64_t *want,
                        int n_want)
{
    if (n_got == n_want)
        return golden_compare_ids(gc, label, got, want, n_want);
    printf("  %-40s FAIL (%d ids, expected %d)\n", label, n_got, n_want);
    gc->compared++;
    gc->failed++;
    return -1;
}

int golden_compare_i32(golden_case *gc, const char *label, const int32_t *got, int n_got, const int32_t *want,
                       int n_want)
{
    int64_t *g = widen(got, n_got), *w = widen(want, n_want);
    int rc = -1;
    if (g && w)
        rc = compare_wide(gc, label, g, n_got, w, n_want);
    else
        golden_fail_line(gc, label);
    free(g);
    free(w);
    return rc;
}

int golden_compare_json_i32(golden_case *gc, const char *label, const int32_t *got, int n_got, const cJSON *want)
{
    int n_want = cJSON_IsArray(want) ? cJSON_GetArraySize(want) : -1;
    int32_t *w = n_want >= 0 ? malloc((size_t)(n_want + 1) * sizeof *w) : NULL;
    int i = 0;
    for (const cJSON *v = w ? want->child : NULL; v && cJSON_IsNumber(v); v = v->next)
        w[i++] = (int32_t)v->valuedouble;
    int rc = -1;
    if (!w || i != n_want) {
        ts_fail(TS_ERR_FORMAT, "cases.json: expected an array of ids");
        golden_fail_line(gc, label);
    } else
        rc = golden_compare_i32(gc, label, got, n_got, w, n_want);
    free(w);
    return rc;
}
