/*
 * safetensors writer: the JSON header is built first (cJSON, so names are escaped
 * correctly) with every tensor's span laid out back to back, padded with spaces to a
 * multiple of 8 so 8-byte dtypes stay aligned, then the data streams from the caller.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"

static cJSON *build_header(const char *const *keys, const char *const *values, size_t nmeta, const ts_out_tensor *t,
                           size_t n, const uint64_t *bytes)
{
    cJSON *root = cJSON_CreateObject();
    if (nmeta) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; i < nmeta; i++)
            cJSON_AddStringToObject(meta, keys[i], values[i]);
    }
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name), *shape = cJSON_AddArrayToObject(e, "shape"),
              *offsets = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddStringToObject(e, "dtype", ts_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)at));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(at + bytes[i])));
        at += bytes[i];
    }
    return root;
}

static int write_all(FILE *f, const char *json, const ts_out_tensor *t, size_t n, const uint64_t *bytes,
                     ts_tensor_fill fill, void *ctx)
{
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int rc = ts_write_bytes(f, prefix, 8);
    if (rc == 0)
        rc = ts_write_bytes(f, json, len);
    if (rc == 0)
        rc = ts_write_bytes(f, "        ", padded - len);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ts_write_tensor(f, &t[i], bytes[i], fill, ctx, i);
    return rc;
}

int ts_st_write(const char *path, const char *const *meta_keys, const char *const *meta_values, size_t nmeta,
                const ts_out_tensor *t, size_t n, ts_tensor_fill fill, void *ctx)
{
    uint64_t *bytes = calloc(n ? n : 1, sizeof *bytes);
    if (!bytes)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ts_dtype_is_block(t[i].dtype)
                 ? ts_fail(TS_ERR_ARG, "tensor \"%s\": %s cannot be stored in safetensors", t[i].name,
                           ts_dtype_name(t[i].dtype))
                 : ts_out_tensor_bytes(&t[i], &bytes[i]);
    cJSON *root = rc == 0 ? build_header(meta_keys, meta_values, nmeta, t, n, bytes) : NULL;
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (rc == 0 && !json)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory building the header");
    char *tmp = NULL;
    FILE *f = NULL;
    if (rc == 0)
        rc = ts_write_begin(path, &tmp, &f);
    if (rc == 0) {
        rc = write_all(f, json, t, n, bytes, fill, ctx);
        if (rc != 0)
            ts_fail_context(rc, "%s: ", path);
        rc = ts_write_end(path, tmp, f, rc);
    }
    free(json);
    free(bytes);
    return rc;
}
