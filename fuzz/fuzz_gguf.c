/*
 * libFuzzer harness for the GGUF reader and the weight-file view over it.  Any byte
 * string must either be refused with a message or yield a handle whose every tensor
 * lies inside the buffer, can be found by name, widened row by row (block types
 * included) and seen through ts_weights with the same element count; every metadata
 * value must be readable through the accessors.  Inconsistencies abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/gguf.h"
#include "io/weights.h"

/* Widening is capped so one input stays fast; the bounds are still checked at both ends. */
#define MAX_CONVERT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch_tensor(const ts_gguf *g, const ts_gguf_tensor *t, const uint8_t *data, size_t size)
{
    static float out[MAX_CONVERT];
    const unsigned char *p = ts_gguf_data(g, t);
    if (ts_gguf_find(g, t->name) != t || p < data || t->bytes > size || p + t->bytes > data + size)
        abort();
    if (t->bytes != ts_dtype_bytes(t->dtype, ts_gguf_numel(t)) || t->offset % ts_gguf_alignment(g) != 0)
        abort();
    volatile unsigned char sink = 0;
    if (t->bytes)
        sink ^= p[0] ^ p[t->bytes - 1];
    (void)sink;
    uint64_t n = ts_gguf_numel(t);
    int64_t row = t->ndim ? t->ne[0] : 1;
    if (n > 0 && row > 0 && row <= MAX_CONVERT) { /* the last row, through the row helper */
        ts_weight w = {.dtype = t->dtype, .ndim = 2, .shape = {(int64_t)(n / (uint64_t)row), row}, .data = p};
        ts_weight_row_f32(&w, w.shape[0] - 1, out);
        ts_to_f32(t->dtype, p, out, (size_t)row);
    }
}

static void touch_kv(const ts_gguf_kv *kv)
{
    uint64_t last = kv->count ? kv->count - 1 : 0, len;
    int64_t i;
    double d;
    (void)ts_gguf_kv_int(kv, last, &i);
    (void)ts_gguf_kv_float(kv, last, &d);
    const char *s = ts_gguf_kv_str(kv, last, &len);
    volatile char sink = s && len ? s[0] ^ s[len - 1] : 0;
    (void)sink;
    (void)ts_gguf_type_name(kv->type);
}

static void touch_weights(const uint8_t *data, size_t size, const ts_gguf *g)
{
    ts_weights *wf = NULL;
    if (ts_weights_open_memory(data, size, &wf) != 0)
        return; /* a bad comfy.gguf.orig_shape entry */
    if (ts_weights_count(wf) != ts_gguf_count(g))
        abort();
    for (size_t i = 0; i < ts_weights_count(wf); i++) {
        const ts_weight_info *info = ts_weights_info(wf, i);
        uint64_t n = 1;
        for (int d = 0; d < info->ndim; d++)
            n *= (uint64_t)info->shape[d];
        if (n != ts_gguf_numel(ts_gguf_at(g, i)) || ts_weights_find(wf, "", info->name) != info)
            abort();
        ts_weight w;
        if (n <= MAX_CONVERT && ts_weights_get(wf, NULL, info->name, &w) == 0 && w.ndim > 0 && w.shape[0] > 0) {
            static float out[MAX_CONVERT];
            ts_weight_row_f32(&w, w.shape[0] - 1, out);
        }
    }
    ts_weights_close(wf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_gguf *g = NULL;
    if (ts_gguf_open_memory(data, size, &g) != 0) {
        if (g != NULL || ts_error_message()[0] == '\0')
            abort();
        return 0;
    }
    uint64_t last = 0;
    for (size_t i = 0; i < ts_gguf_count(g); i++) {
        const ts_gguf_tensor *t = ts_gguf_at(g, i);
        if (t->offset < last)
            abort();
        last = t->offset;
        touch_tensor(g, t, data, size);
    }
    for (size_t i = 0; i < ts_gguf_kv_count(g); i++) {
        const ts_gguf_kv *kv = ts_gguf_kv_at(g, i);
        if (ts_gguf_kv_find(g, kv->key) != kv)
            abort();
        touch_kv(kv);
    }
    touch_weights(data, size, g);
    ts_gguf_close(g);
    return 0;
}
