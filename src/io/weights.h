/*
 * A weight file, whatever the container: safetensors or GGUF, told apart by their
 * first bytes.  Model loaders ask for prefix + name and get a ts_weight in PyTorch
 * order (outermost dim first), the same for both containers, so a loader written
 * against this handle reads a ComfyUI-GGUF or stable-diffusion.cpp file as it reads
 * the safetensors checkpoint it was converted from.
 *
 * GGUF stores dims innermost-first; the view reverses them.  A GGUF tensor that
 * ComfyUI-GGUF flattened to rows of 256 (its "comfy.gguf.orig_shape.NAME" key, for
 * conv weights whose rows are not whole blocks) is given its original shape: as a
 * view when that shape's rows are whole blocks, otherwise widened once to f32 into
 * memory the handle owns (such tensors are small and few).
 */
#ifndef TS_IO_WEIGHTS_H
#define TS_IO_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "io/gguf.h"
#include "io/safetensors.h"

typedef struct ts_weights ts_weights;

typedef enum { TS_WEIGHTS_SAFETENSORS, TS_WEIGHTS_GGUF } ts_weights_format;

/* One tensor as a model sees it. */
typedef struct {
    const char *name;
    ts_dtype dtype; /* as stored (a tensor widened on load still reports its stored type) */
    int ndim;
    int64_t shape[TS_ST_MAX_DIMS]; /* outermost first */
    uint64_t bytes;                /* stored bytes */
} ts_weight_info;

/* Opens path as GGUF when it starts with "GGUF", as safetensors otherwise. */
int ts_weights_open(const char *path, ts_weights **out);
/* The same on an in-memory image (buf must outlive the handle). */
int ts_weights_open_memory(const void *buf, size_t len, ts_weights **out);
void ts_weights_close(ts_weights *wf);

ts_weights_format ts_weights_format_of(const ts_weights *wf);
const char *ts_weights_path(const ts_weights *wf);
/* The underlying reader, or NULL when the file is the other format. */
const ts_safetensors *ts_weights_safetensors(const ts_weights *wf);
const ts_gguf *ts_weights_gguf(const ts_weights *wf);

/* Tensors in file order; info is NULL past the last. */
size_t ts_weights_count(const ts_weights *wf);
const ts_weight_info *ts_weights_info(const ts_weights *wf, size_t i);
const ts_weight_info *ts_weights_find(const ts_weights *wf, const char *prefix, const char *name);

/* The stored bytes of a tensor (info->bytes of them, in info->dtype). */
const void *ts_weights_data(const ts_weights *wf, const ts_weight_info *info);

/* A weight view of prefix + name (the drop-in for ts_st_weight).  Fails with
 * TS_ERR_MODEL naming the tensor when it is missing, has more than 4 dims or is not a
 * floating or block type; TS_ERR_NOMEM if a flattened tensor cannot be widened. */
int ts_weights_get(ts_weights *wf, const char *prefix, const char *name, ts_weight *out);
/* Same, and checks the shape: a dim of -1 in `shape` matches anything. */
int ts_weights_get_shaped(ts_weights *wf, const char *prefix, const char *name, int ndim, const int64_t *shape,
                          ts_weight *out);

#endif
