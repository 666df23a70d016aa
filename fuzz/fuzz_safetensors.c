/*
 * libFuzzer harness for the safetensors reader.  Any byte string must either be
 * refused with a message or yield a handle whose every tensor can be looked up by
 * name, converted and read end to end inside the buffer (ASan checks the bounds).
 * Family detection runs on every valid header too.  A lookup that does not return the
 * same tensor, or tensors the family counts lose, are bugs, so they abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/family.h"

/* Converting is capped so one input stays fast; the bounds are still checked at both ends. */
#define MAX_CONVERT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const ts_safetensors *st, const ts_st_tensor *t)
{
    static float out[MAX_CONVERT];
    if (ts_st_find(st, t->name) != t)
        abort();
    const unsigned char *p = ts_st_data(st, t);
    volatile unsigned char sink = 0;
    if (t->end > t->begin)
        sink ^= p[0] ^ p[t->end - t->begin - 1];
    (void)sink;
    ts_weight w;
    if (ts_st_weight(st, NULL, t->name, &w) != 0)
        return;
    int64_t n = ts_weight_numel(&w);
    if (n < 0 || (uint64_t)n * ts_dtype_size(w.dtype) != t->end - t->begin)
        abort();
    ts_to_f32(w.dtype, w.data, out, (size_t)(n < MAX_CONVERT ? n : MAX_CONVERT));
    if (w.ndim > 0 && w.shape[0] > 0 && ts_weight_row_len(&w) <= MAX_CONVERT)
        ts_weight_row_f32(&w, w.shape[0] - 1, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_safetensors *st = NULL;
    if (ts_st_open_memory(data, size, &st) != 0) {
        if (st != NULL || ts_error_message()[0] == '\0')
            abort();
        return 0;
    }
    uint64_t last_begin = 0;
    for (size_t i = 0; i < ts_st_count(st); i++) {
        const ts_st_tensor *t = ts_st_at(st, i);
        if (t->begin < last_begin || t->end > size)
            abort();
        last_begin = t->begin;
        touch(st, t);
    }
    /* The same bytes through the container-neutral reader the loaders use: it must
     * accept them too, and family detection must account for every tensor. */
    ts_weights *wf = NULL;
    if (ts_weights_open_memory(data, size, &wf) != 0 || ts_weights_count(wf) != ts_st_count(st))
        abort();
    ts_model_info info;
    ts_family_detect(wf, &info);
    size_t claimed = info.other_tensors;
    for (int c = 0; c < TS_COMP_COUNT; c++)
        claimed += info.comp[c].tensors;
    if (claimed != ts_st_count(st))
        abort();
    ts_weights_close(wf);
    (void)ts_st_metadata(st, "format");
    for (size_t i = 0; ts_st_metadata_key(st, i); i++)
        (void)ts_st_metadata(st, ts_st_metadata_key(st, i));
    (void)ts_st_find_prefixed(st, "model.diffusion_model.", "input_blocks.0.0.weight");
    ts_st_close(st);
    return 0;
}
