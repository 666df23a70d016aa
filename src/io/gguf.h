/*
 * GGUF reader (versions 2 and 3, little-endian) and writer.
 *
 * Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count; the metadata as
 * key (u64 length + bytes), u32 value type, value (strings are u64 length + bytes,
 * arrays u32 element type + u64 count + elements); the tensor infos as name, u32
 * n_dims, n_dims x u64 ne (innermost first: ne[0] is the row length), u32 ggml type,
 * u64 offset into the data section; padding to the alignment (general.alignment,
 * default 32); the data.  Version 2 has the same layout (version 1, with 32-bit
 * counts, is refused).
 *
 * As with safetensors, the file is memory-mapped and everything is validated before a
 * tensor is used: counts bounded by the bytes that could hold them, every string and
 * array inside the file, known value and ggml types, dims that fit with a product that
 * does not overflow, rows made of whole blocks, offsets aligned and inside the data,
 * no overlaps, no duplicate names or keys.  Shapes are also given outermost-first
 * (PyTorch order) so a GGUF tensor reads like its safetensors original.
 */
#ifndef TS_IO_GGUF_H
#define TS_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/tensor.h"
#include "io/writer.h"

#define TS_GGUF_MAX_DIMS 4
#define TS_GGUF_DEFAULT_ALIGNMENT 32
/* Names and keys longer than this are corrupt (the format caps keys at 65535 bytes). */
#define TS_GGUF_MAX_NAME 65535

typedef enum {
    TS_GGUF_U8 = 0,
    TS_GGUF_I8 = 1,
    TS_GGUF_U16 = 2,
    TS_GGUF_I16 = 3,
    TS_GGUF_U32 = 4,
    TS_GGUF_I32 = 5,
    TS_GGUF_F32 = 6,
    TS_GGUF_BOOL = 7,
    TS_GGUF_STRING = 8,
    TS_GGUF_ARRAY = 9,
    TS_GGUF_U64 = 10,
    TS_GGUF_I64 = 11,
    TS_GGUF_F64 = 12,
    TS_GGUF_TYPE_COUNT
} ts_gguf_type;

/* ggml type ids of the supported tensor types (what the files store). */
enum {
    TS_GGML_F32 = 0,
    TS_GGML_F16 = 1,
    TS_GGML_Q4_0 = 2,
    TS_GGML_Q4_1 = 3,
    TS_GGML_Q5_0 = 6,
    TS_GGML_Q5_1 = 7,
    TS_GGML_Q8_0 = 8,
    TS_GGML_Q4_K = 12,
    TS_GGML_Q5_K = 13,
    TS_GGML_Q6_K = 14,
    TS_GGML_I8 = 24,
    TS_GGML_I16 = 25,
    TS_GGML_I32 = 26,
    TS_GGML_I64 = 27,
    TS_GGML_F64 = 28,
    TS_GGML_BF16 = 30,
};

typedef struct {
    const char *name;
    uint32_t ggml_type;
    ts_dtype dtype;
    int ndim;
    int64_t ne[TS_GGUF_MAX_DIMS];    /* as stored, innermost first */
    int64_t shape[TS_GGUF_MAX_DIMS]; /* outermost first: shape[ndim - 1] == ne[0] */
    uint64_t offset, bytes;          /* span inside the data section */
} ts_gguf_tensor;

typedef struct {
    const char *key;
    ts_gguf_type type;      /* TS_GGUF_ARRAY for arrays */
    ts_gguf_type elem_type; /* the element type of an array; = type otherwise */
    uint64_t count;         /* elements of an array; 1 otherwise */
    const unsigned char *value; /* first value byte in the file (private: use the accessors) */
    const uint64_t *str_at;     /* string values: offset of element i's length from value */
} ts_gguf_kv;

typedef struct ts_gguf ts_gguf;

/* Opens and validates a file; on failure the message names the file. */
int ts_gguf_open(const char *path, ts_gguf **out);
/* Parses an in-memory image (not copied: buf must outlive the handle). */
int ts_gguf_open_memory(const void *buf, size_t len, ts_gguf **out);
void ts_gguf_close(ts_gguf *g);
/* Drops the file's pages from the resident set, as ts_st_evict does. */
void ts_gguf_evict(const ts_gguf *g);

uint32_t ts_gguf_version(const ts_gguf *g);
uint32_t ts_gguf_alignment(const ts_gguf *g);
/* File offset of the data section. */
uint64_t ts_gguf_data_offset(const ts_gguf *g);
const char *ts_gguf_path(const ts_gguf *g);
uint64_t ts_gguf_file_size(const ts_gguf *g);

size_t ts_gguf_count(const ts_gguf *g);
/* Tensors in data order (ascending offset). */
const ts_gguf_tensor *ts_gguf_at(const ts_gguf *g, size_t i);
const ts_gguf_tensor *ts_gguf_find(const ts_gguf *g, const char *name);
const ts_gguf_tensor *ts_gguf_find_prefixed(const ts_gguf *g, const char *prefix, const char *name);
const void *ts_gguf_data(const ts_gguf *g, const ts_gguf_tensor *t);
uint64_t ts_gguf_numel(const ts_gguf_tensor *t);

/* Metadata in file order. */
size_t ts_gguf_kv_count(const ts_gguf *g);
const ts_gguf_kv *ts_gguf_kv_at(const ts_gguf *g, size_t i);
const ts_gguf_kv *ts_gguf_kv_find(const ts_gguf *g, const char *key);
/* Element i (0 for a scalar) of an integer or bool value; -1 for another type, an
 * index out of range or (for u64) a value above INT64_MAX. */
int ts_gguf_kv_int(const ts_gguf_kv *kv, uint64_t i, int64_t *out);
/* Element i of any numeric or bool value as a double; -1 otherwise. */
int ts_gguf_kv_float(const ts_gguf_kv *kv, uint64_t i, double *out);
/* Element i of a string value: its bytes (not NUL-terminated, may hold any byte) and
 * length; NULL for another type or an index out of range. */
const char *ts_gguf_kv_str(const ts_gguf_kv *kv, uint64_t i, uint64_t *len);
const char *ts_gguf_type_name(ts_gguf_type t);

/* Weight views of GGUF tensors: see io/weights.h. */

/* ---- writing ------------------------------------------------------------------- */

/* One metadata entry to write: a string or a u32 (general.alignment is added). */
typedef struct {
    const char *key;
    ts_gguf_type type; /* TS_GGUF_STRING or TS_GGUF_U32 */
    const char *str;
    uint32_t u32;
} ts_gguf_out_kv;

/* Writes a version 3 GGUF with 32-byte alignment to path (through path + ".tmp" and a
 * rename, so a failed write leaves no partial file).  Tensors take any dtype with a
 * ggml id (F32, F16, BF16, F64, I8..I64, the block types) and 1 to 4 dims. */
int ts_gguf_write(const char *path, const ts_gguf_out_kv *kv, size_t nkv, const ts_out_tensor *t, size_t n,
                  ts_tensor_fill fill, void *ctx);

/* The ggml id of a dtype, or -1 when ggml has none (F8, unsigned integers, bool). */
int ts_gguf_ggml_type(ts_dtype t);

#endif
