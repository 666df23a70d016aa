/*
 * safetensors reader.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each
 * tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
 * byte after the header) plus an optional "__metadata__" object of strings, then the
 * data.  The file is memory-mapped; tensors are views into the mapping, so opening a
 * 24 GB checkpoint costs only its header.
 *
 * Everything in the header is validated before any tensor is used: length bounds,
 * JSON validity, known dtypes, shapes that fit, offsets inside the data, spans that
 * match shape x dtype size, no overlaps, no duplicate names, no integer overflow.
 */
#ifndef TS_IO_SAFETENSORS_H
#define TS_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "io/writer.h"

#define TS_ST_MAX_DIMS 8
/* Real headers are at most a few MB (SDXL: ~0.3 MB); anything far larger is corrupt. */
#define TS_ST_MAX_HEADER (100u << 20)

typedef struct {
    const char *name;
    ts_dtype dtype;
    int ndim;
    int64_t shape[TS_ST_MAX_DIMS];
    uint64_t begin, end; /* byte span inside the data section */
} ts_st_tensor;

typedef struct ts_safetensors ts_safetensors;

/* Opens and validates a file. On failure returns a negative status; the message names the file. */
int ts_st_open(const char *path, ts_safetensors **out);
/* Parses an in-memory image of a file (not copied: buf must outlive the handle). */
int ts_st_open_memory(const void *buf, size_t len, ts_safetensors **out);
void ts_st_close(ts_safetensors *st);
/* Drops the file's pages from this process's resident set (they stay in the page cache
 * and fault back in on the next access): lets a pipeline step that is done with one
 * model, such as a UNet before the VAE decode, give its memory back. */
void ts_st_evict(const ts_safetensors *st);

size_t ts_st_count(const ts_safetensors *st);
/* Tensors in file order (ascending data offset). */
const ts_st_tensor *ts_st_at(const ts_safetensors *st, size_t i);
const ts_st_tensor *ts_st_find(const ts_safetensors *st, const char *name);
/* Looks up prefix + name without building the joined string at the call site. */
const ts_st_tensor *ts_st_find_prefixed(const ts_safetensors *st, const char *prefix, const char *name);
const void *ts_st_data(const ts_safetensors *st, const ts_st_tensor *t);
/* Element count (1 for a 0-d tensor); cannot overflow, the header was validated. */
uint64_t ts_st_numel(const ts_st_tensor *t);
/* Value of a "__metadata__" entry, or NULL. */
const char *ts_st_metadata(const ts_safetensors *st, const char *key);
/* The i-th "__metadata__" key in file order, or NULL past the last. */
const char *ts_st_metadata_key(const ts_safetensors *st, size_t i);
const char *ts_st_path(const ts_safetensors *st);
uint64_t ts_st_file_size(const ts_safetensors *st);

/* A weight view of prefix + name. Fails with TS_ERR_MODEL naming the tensor when it is
 * missing, has more than 4 dims, or is not a floating type. */
int ts_st_weight(const ts_safetensors *st, const char *prefix, const char *name, ts_weight *out);
/* Same, and checks the shape: a dim of -1 in `shape` matches anything. */
int ts_st_weight_shaped(const ts_safetensors *st, const char *prefix, const char *name, int ndim,
                        const int64_t *shape, ts_weight *out);

/* Writes a safetensors file to path (through path + ".tmp" and a rename).  meta_keys
 * and meta_values (nmeta strings each) become "__metadata__"; block types cannot be
 * stored.  Tensor data is aligned to 8 bytes. */
int ts_st_write(const char *path, const char *const *meta_keys, const char *const *meta_values, size_t nmeta,
                const ts_out_tensor *t, size_t n, ts_tensor_fill fill, void *ctx);

#endif
