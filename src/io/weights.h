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
 * memory the handle owns.  A 4-D conv kernel larger than 1x1 only needs its element
 * count to be whole blocks (the convolution widens its kernel per call, see
 * ops/conv.c); anything else needs rows (the dims after the first) of whole blocks,
 * as ts_linear reads it row by row.  So only the odd tensor is ever widened, never a
 * model.
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
/* Drops the file's pages from the resident set (see ts_st_evict); a NULL handle is a no-op. */
void ts_weights_evict(const ts_weights *wf);

ts_weights_format ts_weights_format_of(const ts_weights *wf);
const char *ts_weights_path(const ts_weights *wf);
uint64_t ts_weights_file_size(const ts_weights *wf);
/* A string metadata value (safetensors "__metadata__", a GGUF string key): its bytes,
 * not NUL-terminated for GGUF, and length; NULL when absent or not a string. */
const char *ts_weights_metadata(const ts_weights *wf, const char *key, size_t *len);
/* The i-th metadata key in file order (GGUF: every key, typed or not), NULL past the last. */
const char *ts_weights_metadata_key(const ts_weights *wf, size_t i);
/* The underlying reader, or NULL when the file is the other format. */
const ts_safetensors *ts_weights_safetensors(const ts_weights *wf);
const ts_gguf *ts_weights_gguf(const ts_weights *wf);

/* Tensors in file order; info is NULL past the last. */
size_t ts_weights_count(const ts_weights *wf);
const ts_weight_info *ts_weights_info(const ts_weights *wf, size_t i);
const ts_weight_info *ts_weights_find(const ts_weights *wf, const char *prefix, const char *name);
/* Element count of a tensor (1 for a 0-d one). */
uint64_t ts_weight_info_numel(const ts_weight_info *info);

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
