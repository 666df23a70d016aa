/*
 * Builds safetensors images in memory for tests: a list of named tensors in, one
 * buffer out, opened with ts_st_open_memory.  Tests use it to re-store a golden
 * model under another layout or dtype, so that a loader's layout handling is
 * checked against the same weights without writing files.
 */
#ifndef TS_TESTS_ST_BUILD_H
#define TS_TESTS_ST_BUILD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"

#define ST_BUILD_MAX 512

typedef struct {
    char name[200];
    ts_dtype dtype;
    int ndim;
    int64_t shape[4];
    void *data;
    size_t bytes;
} st_build_tensor;

typedef struct {
    st_build_tensor t[ST_BUILD_MAX];
    int n;
} st_build;

static inline size_t st_build_numel(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    return n;
}

/* Adds a tensor (data copied). */
static inline void st_build_add(st_build *b, const char *name, ts_dtype dtype, int ndim, const int64_t *shape,
                                const void *data)
{
    if (b->n >= ST_BUILD_MAX) {
        fprintf(stderr, "st_build: more than %d tensors\n", ST_BUILD_MAX);
        abort();
    }
    st_build_tensor *t = &b->t[b->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->bytes = st_build_numel(ndim, shape) * ts_dtype_size(dtype);
    t->data = malloc(t->bytes ? t->bytes : 1);
    memcpy(t->data, data, t->bytes);
}

/* Adds f32 values stored as `dtype` (rounded to nearest even for f16 / bf16). */
static inline void st_build_add_f32(st_build *b, const char *name, ts_dtype dtype, int ndim, const int64_t *shape,
                                    const float *values)
{
    size_t n = st_build_numel(ndim, shape);
    void *tmp = malloc(n * 4 + 1);
    if (dtype == TS_DTYPE_F16)
        ts_f32_to_f16_n(values, tmp, n);
    else if (dtype == TS_DTYPE_BF16)
        ts_f32_to_bf16_n(values, tmp, n);
    else
        memcpy(tmp, values, n * sizeof *values);
    st_build_add(b, name, dtype, ndim, shape, tmp);
    free(tmp);
}

/* The file image (malloc'd; *len receives its size).  Frees the tensors. */
static inline void *st_build_finish(st_build *b, size_t *len)
{
    size_t cap = 256 + (size_t)b->n * 320, used = 0, data = 0;
    char *hdr = malloc(cap);
    used += (size_t)snprintf(hdr + used, cap - used, "{");
    for (int i = 0; i < b->n; i++) {
        st_build_tensor *t = &b->t[i];
        used += (size_t)snprintf(hdr + used, cap - used, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                                 t->name, ts_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            used += (size_t)snprintf(hdr + used, cap - used, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        used += (size_t)snprintf(hdr + used, cap - used, "],\"data_offsets\":[%zu,%zu]}", data, data + t->bytes);
        data += t->bytes;
    }
    used += (size_t)snprintf(hdr + used, cap - used, "}");
    while (used % 8)
        hdr[used++] = ' ';
    *len = 8 + used + data;
    unsigned char *img = malloc(*len);
    uint64_t n = used;
    for (int k = 0; k < 8; k++)
        img[k] = (unsigned char)(n >> (8 * k));
    memcpy(img + 8, hdr, used);
    size_t at = 8 + used;
    for (int i = 0; i < b->n; i++) {
        memcpy(img + at, b->t[i].data, b->t[i].bytes);
        at += b->t[i].bytes;
        free(b->t[i].data);
    }
    free(hdr);
    b->n = 0;
    return img;
}

#endif
