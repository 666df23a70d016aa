/* Tensor and weight-view helpers; see tensor.h. */
#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

/* -1 for a negative dim or a product past INT64_MAX, so callers can size-check without UB. */
static int64_t shape_product(int ndim, const int64_t *shape, int from)
{
    int64_t n = 1;
    for (int i = from; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n))
            return -1;
    return n;
}

ts_tensor ts_tensor_view(float *data, int ndim, const int64_t *shape)
{
    ts_tensor t = {.data = data, .ndim = ndim};
    for (int i = 0; i < ndim && i < TS_MAX_DIMS; i++)
        t.shape[i] = shape[i];
    return t;
}

int64_t ts_tensor_numel(const ts_tensor *t) { return shape_product(t->ndim, t->shape, 0); }

int64_t ts_weight_numel(const ts_weight *w) { return shape_product(w->ndim, w->shape, 0); }

int64_t ts_weight_row_len(const ts_weight *w) { return shape_product(w->ndim, w->shape, 1); }

void ts_weight_row_f32(const ts_weight *w, int64_t r, float *dst)
{
    int64_t len = ts_weight_row_len(w);
    const unsigned char *base = w->data;
    /* A block type's rows are whole blocks, so the row starts at a block boundary. */
    ts_to_f32(w->dtype, base + ts_dtype_bytes(w->dtype, (uint64_t)(r * len)), dst, (size_t)len);
}

void ts_weight_to_f32(const ts_weight *w, float *dst)
{
    ts_to_f32(w->dtype, w->data, dst, (size_t)ts_weight_numel(w));
}

const char *ts_shape_str(char *buf, int buf_size, int ndim, const int64_t *shape)
{
    int used = snprintf(buf, (size_t)buf_size, "[");
    for (int i = 0; i < ndim && used < buf_size; i++)
        used += snprintf(buf + used, (size_t)(buf_size - used), i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < buf_size)
        snprintf(buf + used, (size_t)(buf_size - used), "]");
    return buf;
}

int ts_weight_make(const char *path, const char *name, ts_dtype dtype, int ndim, const int64_t *shape,
                   const void *data, ts_weight *out)
{
    if (ndim > TS_MAX_DIMS)
        return ts_fail(TS_ERR_MODEL, "%s: tensor \"%s\" has %d dimensions, at most %d expected", path, name, ndim,
                       TS_MAX_DIMS);
    if (!ts_dtype_is_float(dtype))
        return ts_fail(TS_ERR_MODEL, "%s: tensor \"%s\" has dtype %s, a floating type expected", path, name,
                       ts_dtype_name(dtype));
    out->dtype = dtype;
    out->ndim = ndim;
    memcpy(out->shape, shape, (size_t)ndim * sizeof shape[0]);
    out->data = data;
    return 0;
}

int ts_weight_expect_shape(const ts_weight *w, const char *path, const char *prefix, const char *name, int ndim,
                           const int64_t *shape)
{
    int ok = w->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] < 0 || shape[d] == w->shape[d];
    if (ok)
        return 0;
    char got[96], want[96];
    return ts_fail(TS_ERR_MODEL, "%s: tensor \"%s%s\" has shape %s, expected %s", path, prefix ? prefix : "", name,
                   ts_shape_str(got, sizeof got, w->ndim, w->shape), ts_shape_str(want, sizeof want, ndim, shape));
}
