/*
 * A byte-level GGUF builder for tests: it knows the layout (see io/gguf.h) and
 * nothing of the library, so files built with it check the reader independently.
 * One file at a time, in the static buffer `buf` of `len` bytes.
 */
#ifndef TS_TESTS_GGUF_BUILD_H
#define TS_TESTS_GGUF_BUILD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"

static unsigned char buf[1 << 16];
static size_t len;

static inline void put(const void *p, size_t n)
{
    memcpy(buf + len, p, n);
    len += n;
}

static inline void u8(unsigned v) { buf[len++] = (unsigned char)v; }

static inline void le(uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        u8((unsigned)(v >> (8 * i)) & 0xff);
}

static inline void str(const char *s)
{
    le(strlen(s), 8);
    put(s, strlen(s));
}

static inline void header(uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    len = 0;
    put("GGUF", 4);
    le(version, 4);
    le(n_tensors, 8);
    le(n_kv, 8);
}

static inline void kv_u32(const char *key, uint32_t v)
{
    str(key);
    le(TS_GGUF_U32, 4);
    le(v, 4);
}

/* Tensor info with dims given innermost-first, as stored. */
static inline void tinfo(const char *name, int ndim, const uint64_t *ne, uint32_t type, uint64_t offset)
{
    str(name);
    le((uint64_t)ndim, 4);
    for (int d = 0; d < ndim; d++)
        le(ne[d], 8);
    le(type, 4);
    le(offset, 8);
}

static inline void pad_to(size_t align)
{
    while (len % align)
        u8(0);
}

static inline void fill(size_t n, unsigned char v)
{
    memset(buf + len, v, n);
    len += n;
}

/* A scratch path for name under TESSERA_TEST_TMP (or /tmp). */
static inline const char *tmp_path(const char *name)
{
    static char path[512];
    const char *dir = getenv("TESSERA_TEST_TMP");
    if (!dir || !*dir)
        dir = "/tmp";
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* Writes buf to path. */
static inline int write_file(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(buf, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

#endif
