/*
 * What the container writers (GGUF, safetensors) share: the list of tensors to write,
 * the callback that streams each one's bytes (so a converter holds one tensor at a
 * time, never the model), and the write-to-temp-then-rename discipline that keeps a
 * failed or interrupted write from leaving a partial file under the real name.
 */
#ifndef TS_IO_WRITER_H
#define TS_IO_WRITER_H

#include <stddef.h>
#include <stdio.h>

#include "core/tensor.h"

/* One tensor to write, shape outermost-first as in ts_weight. */
typedef struct {
    const char *name;
    ts_dtype dtype;
    int ndim;
    int64_t shape[TS_MAX_DIMS];
} ts_out_tensor;

/* Writes tensor i's ts_dtype_bytes(dtype, numel) bytes to f; returns 0 or a negative
 * status with the message set. */
typedef int (*ts_tensor_fill)(void *ctx, size_t i, FILE *f);

/* Bytes of tensor t's data; 0 with the message set when the shape is invalid or a
 * block type's row length is not a whole number of blocks. */
int ts_out_tensor_bytes(const ts_out_tensor *t, uint64_t *bytes);

/* Opens path + ".tmp" for writing; *tmp receives the malloc'd temp name. */
int ts_write_begin(const char *path, char **tmp, FILE **f);
/* rc == 0: flushes, closes and renames the temp file over path; otherwise (or if that
 * fails) removes it.  Returns the final status; frees tmp. */
int ts_write_end(const char *path, char *tmp, FILE *f, int rc);
/* Runs fill for tensor i and checks it wrote exactly `bytes` bytes. */
int ts_write_tensor(FILE *f, const ts_out_tensor *t, uint64_t bytes, ts_tensor_fill fill, void *ctx, size_t i);
/* fwrite that fails with TS_ERR_IO. */
int ts_write_bytes(FILE *f, const void *p, size_t n);
/* Zero bytes up to the next multiple of align of the file position. */
int ts_write_pad(FILE *f, uint64_t pos, uint64_t align);

#endif
