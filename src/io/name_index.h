/*
 * Hashed lookup of tensors by name, shared by the container readers.
 *
 * Models ask for "prefix" + "name" (the component prefix and the layer's own name),
 * so the index hashes the two parts as if joined and compares without building the
 * joined string.  The index holds positions into the reader's own array of
 * records, each of which has a `const char *` name at a known offset.
 */
#ifndef TS_IO_NAME_INDEX_H
#define TS_IO_NAME_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t *slots; /* record numbers, -1 = empty; open addressing */
    size_t mask;
    const unsigned char *items;
    size_t stride, name_offset;
} ts_name_index;

/* Indexes count records of stride bytes.  Returns 0, TS_ERR_NOMEM (message set), or
 * TS_ERR_FORMAT with the message "tensor \"NAME\" appears twice" (no file named). */
int ts_name_index_build(ts_name_index *ix, const void *items, size_t count, size_t stride, size_t name_offset);
/* The record named prefix + name, or NULL. */
const void *ts_name_index_find(const ts_name_index *ix, const char *prefix, const char *name);
void ts_name_index_free(ts_name_index *ix);

#endif
