/* Shared pieces of the container writers; see writer.h. */
#include "io/writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

int ts_out_tensor_bytes(const ts_out_tensor *t, uint64_t *bytes)
{
    ts_weight w = {.dtype = t->dtype, .ndim = t->ndim};
    for (int d = 0; d < t->ndim && d < TS_MAX_DIMS; d++)
        w.shape[d] = t->shape[d];
    int64_t n = t->ndim >= 0 && t->ndim <= TS_MAX_DIMS ? ts_weight_numel(&w) : -1;
    int64_t row = t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
    if (n < 0)
        return ts_fail(TS_ERR_ARG, "tensor \"%s\": invalid shape", t->name);
    if (row % ts_dtype_block_len(t->dtype) != 0)
        return ts_fail(TS_ERR_ARG, "tensor \"%s\": row length %lld is not a multiple of the %s block length", t->name,
                       (long long)row, ts_dtype_name(t->dtype));
    *bytes = ts_dtype_bytes(t->dtype, (uint64_t)n);
    return 0;
}

int ts_write_begin(const char *path, char **tmp, FILE **f)
{
    size_t len = strlen(path);
    *f = NULL;
    *tmp = malloc(len + 5);
    if (!*tmp)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    memcpy(*tmp, path, len);
    memcpy(*tmp + len, ".tmp", 5);
    *f = fopen(*tmp, "wb");
    if (!*f) {
        int err = errno;
        free(*tmp);
        *tmp = NULL;
        return ts_fail(TS_ERR_IO, "%s: cannot create: %s", path, strerror(err));
    }
    return 0;
}

int ts_write_end(const char *path, char *tmp, FILE *f, int rc)
{
    if (fflush(f) != 0 && rc == 0)
        rc = ts_fail(TS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = ts_fail(TS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ts_fail(TS_ERR_IO, "%s: cannot rename the temporary file: %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int ts_write_tensor(FILE *f, const ts_out_tensor *t, uint64_t bytes, ts_tensor_fill fill, void *ctx, size_t i)
{
    long before = ftell(f);
    int rc = fill(ctx, i, f);
    if (rc == 0 && (uint64_t)(ftell(f) - before) != bytes)
        rc = ts_fail(TS_ERR_ARG, "tensor \"%s\": %ld bytes written, %llu expected", t->name, ftell(f) - before,
                     (unsigned long long)bytes);
    return rc;
}

int ts_write_bytes(FILE *f, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, f) != n)
        return ts_fail(TS_ERR_IO, "write failed: %s", strerror(errno));
    return 0;
}

int ts_write_pad(FILE *f, uint64_t pos, uint64_t align)
{
    static const unsigned char zeros[64];
    uint64_t pad = (align - pos % align) % align;
    while (pad > 0) {
        size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        int rc = ts_write_bytes(f, zeros, n);
        if (rc != 0)
            return rc;
        pad -= n;
    }
    return 0;
}
