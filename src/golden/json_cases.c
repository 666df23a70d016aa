/* cases.json readers for the tokenizer families; see json_cases.h. */
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

int64_t *golden_json_ids(const cJSON *arr, int *n)
{
    if (!cJSON_IsArray(arr)) {
        ts_fail(TS_ERR_FORMAT, "cases.json: expected an array of ids");
        return NULL;
    }
    *n = cJSON_GetArraySize(arr);
    int64_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    if (!ids) {
        ts_fail(TS_ERR_NOMEM, "cases.json: out of memory");
        return NULL;
    }
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next) {
        if (!cJSON_IsNumber(v)) {
            free(ids);
            ts_fail(TS_ERR_FORMAT, "cases.json: id %d is not a number", i);
            return NULL;
        }
        ids[i++] = (int64_t)v->valuedouble;
    }
    return ids;
}

int golden_compare_json_ids(golden_case *gc, const char *label, const int64_t *got, int n_got, const cJSON *want)
{
    int n_want = 0;
    int64_t *w = golden_json_ids(want, &n_want);
    if (!w)
        return -1;
    int rc;
    if (n_got != n_want) {
        printf("  %-40s FAIL (%d ids, expected %d)\n", label, n_got, n_want);
        gc->compared++;
        gc->failed++;
        rc = -1;
    } else
        rc = golden_compare_ids(gc, label, got, w, n_want);
    free(w);
    return rc;
}
