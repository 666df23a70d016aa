/*
 * The embedded vocabularies (see embedded.h) and the two small readers that the
 * tokenizers share: gunzip and read-whole-file.  The byte lists are generated at
 * build time by xxd from the .gz files in data/ (CMakeLists.txt), so the repository keeps only the
 * compressed originals.
 */
#include "text/embedded.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "core/error.h"

static const unsigned char clip_bpe_gz[] = {
#include "bpe_simple_vocab_16e6.txt.gz.inc"
};

static const unsigned char t5_spiece_gz[] = {
#include "t5_spiece.model.gz.inc"
};

int ts_gunzip(const unsigned char *gz, size_t gz_size, unsigned char **out, size_t *size)
{
    z_stream zs = {0};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return ts_fail(TS_ERR_NOMEM, "gunzip: inflateInit failed");
    size_t cap = gz_size * 4 + 1024, len = 0;
    unsigned char *buf = malloc(cap);
    int rc = buf ? Z_OK : Z_MEM_ERROR;
    zs.next_in = (unsigned char *)gz;
    zs.avail_in = (uInt)gz_size;
    while (rc == Z_OK) {
        if (cap - len < 2) {
            unsigned char *grown = realloc(buf, cap * 2);
            if (!grown) {
                rc = Z_MEM_ERROR;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        zs.next_out = buf + len;
        zs.avail_out = (uInt)(cap - len - 1);
        rc = inflate(&zs, Z_NO_FLUSH);
        len = cap - 1 - zs.avail_out;
        if (rc == Z_BUF_ERROR && zs.avail_in == 0)
            break; /* truncated input: no progress possible */
        if (rc == Z_BUF_ERROR)
            rc = Z_OK;
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return rc == Z_MEM_ERROR ? ts_fail(TS_ERR_NOMEM, "gunzip: out of memory")
                                 : ts_fail(TS_ERR_FORMAT, "gunzip: corrupt or truncated gzip data");
    }
    buf[len] = 0;
    *out = buf;
    *size = len;
    return TS_OK;
}

int ts_blob_load(ts_blob which, unsigned char **out, size_t *size)
{
    switch (which) {
    case TS_BLOB_CLIP_BPE:
        return ts_gunzip(clip_bpe_gz, sizeof clip_bpe_gz, out, size);
    case TS_BLOB_T5_SPIECE:
        return ts_gunzip(t5_spiece_gz, sizeof t5_spiece_gz, out, size);
    }
    return ts_fail(TS_ERR_ARG, "unknown embedded blob %d", (int)which);
}

int ts_read_file(const char *path, unsigned char **out, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ts_fail(TS_ERR_IO, "%s: cannot open", path);
    long n = -1;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return ts_fail(TS_ERR_IO, "%s: cannot read (not a regular file?)", path);
    }
    unsigned char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return ts_fail(TS_ERR_NOMEM, "%s: out of memory for %ld bytes", path, n);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(buf);
        return ts_fail(TS_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    *size = (size_t)n;
    return TS_OK;
}
