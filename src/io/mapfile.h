/*
 * Read-only memory mapping of a whole file, shared by the container readers
 * (safetensors, GGUF).  Weights are views into the mapping, so opening a 24 GB
 * checkpoint costs no memory until pages are touched, and the kernel may drop clean
 * pages under pressure instead of swapping.
 */
#ifndef TS_IO_MAPFILE_H
#define TS_IO_MAPFILE_H

#include <stdint.h>

typedef struct {
    const unsigned char *bytes; /* NULL for an empty file */
    uint64_t size;
} ts_mapped_file;

/* Maps a regular file.  Fails with TS_ERR_IO and a message naming the path. */
int ts_map_file(const char *path, ts_mapped_file *out);
/* Drops the mapping's pages from the process (they stay in the page cache and fault
 * back in on the next touch): how a pipeline gives back a model it is done with. */
void ts_evict_file(const ts_mapped_file *m);
/* Unmaps; a zeroed struct is a no-op. */
void ts_unmap_file(ts_mapped_file *m);

#endif
