/*
 * GGUF writer: the header (metadata, then tensor infos with offsets laid out at the
 * 32-byte alignment), padding, then each tensor's bytes from the caller's callback,
 * padded to the alignment in turn.  Dims are written innermost-first, the reverse of
 * the outermost-first shapes callers give.
 */
#include "io/gguf.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static int put_le(FILE *f, uint64_t v, int n)
{
    unsigned char b[8];
    for (int i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return ts_write_bytes(f, b, (size_t)n);
}

static int put_str(FILE *f, const char *s)
{
    size_t n = strlen(s);
    int rc = put_le(f, n, 8);
    return rc ? rc : ts_write_bytes(f, s, n);
}

static int put_kv(FILE *f, const ts_gguf_out_kv *kv)
{
    int rc = put_str(f, kv->key);
    if (rc == 0)
        rc = put_le(f, (uint64_t)kv->type, 4);
    if (rc == 0)
        rc = kv->type == TS_GGUF_STRING ? put_str(f, kv->str) : put_le(f, kv->u32, 4);
    return rc;
}

static uint64_t header_bytes(const ts_gguf_out_kv *kv, size_t nkv, const ts_out_tensor *t, size_t n,
                             const ts_gguf_out_kv *align)
{
    uint64_t size = 4 + 4 + 8 + 8;
    for (size_t i = 0; i <= nkv; i++) {
        const ts_gguf_out_kv *k = i < nkv ? &kv[i] : align;
        size += 8 + strlen(k->key) + 4 + (k->type == TS_GGUF_STRING ? 8 + strlen(k->str) : 4);
    }
    for (size_t i = 0; i < n; i++)
        size += 8 + strlen(t[i].name) + 4 + 8 * (uint64_t)t[i].ndim + 4 + 8;
    return size;
}

static int write_all(FILE *f, const ts_gguf_out_kv *kv, size_t nkv, const ts_out_tensor *t, size_t n,
                     const uint64_t *bytes, ts_tensor_fill fill, void *ctx)
{
    const ts_gguf_out_kv align = {"general.alignment", TS_GGUF_U32, NULL, TS_GGUF_DEFAULT_ALIGNMENT};
    int rc = ts_write_bytes(f, "GGUF", 4);
    if (rc == 0)
        rc = put_le(f, 3, 4);
    if (rc == 0)
        rc = put_le(f, n, 8);
    if (rc == 0)
        rc = put_le(f, nkv + 1, 8);
    for (size_t i = 0; i < nkv && rc == 0; i++)
        rc = put_kv(f, &kv[i]);
    if (rc == 0)
        rc = put_kv(f, &align);
    uint64_t offset = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = put_str(f, t[i].name);
        if (rc == 0)
            rc = put_le(f, (uint64_t)t[i].ndim, 4);
        for (int d = t[i].ndim - 1; d >= 0 && rc == 0; d--)
            rc = put_le(f, (uint64_t)t[i].shape[d], 8);
        if (rc == 0)
            rc = put_le(f, (uint64_t)ts_gguf_ggml_type(t[i].dtype), 4);
        if (rc == 0)
            rc = put_le(f, offset, 8);
        offset += bytes[i] + (TS_GGUF_DEFAULT_ALIGNMENT - bytes[i] % TS_GGUF_DEFAULT_ALIGNMENT) % TS_GGUF_DEFAULT_ALIGNMENT;
    }
    if (rc == 0)
        rc = ts_write_pad(f, header_bytes(kv, nkv, t, n, &align), TS_GGUF_DEFAULT_ALIGNMENT);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = ts_write_tensor(f, &t[i], bytes[i], fill, ctx, i);
        if (rc == 0)
            rc = ts_write_pad(f, bytes[i], TS_GGUF_DEFAULT_ALIGNMENT);
    }
    return rc;
}

int ts_gguf_write(const char *path, const ts_gguf_out_kv *kv, size_t nkv, const ts_out_tensor *t, size_t n,
                  ts_tensor_fill fill, void *ctx)
{
    uint64_t *bytes = calloc(n ? n : 1, sizeof *bytes);
    if (!bytes)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (t[i].ndim < 1 || t[i].ndim > TS_GGUF_MAX_DIMS || ts_gguf_ggml_type(t[i].dtype) < 0)
            rc = ts_fail(TS_ERR_ARG, "tensor \"%s\": %d dims of %s cannot be stored in GGUF", t[i].name, t[i].ndim,
                         ts_dtype_name(t[i].dtype));
        else
            rc = ts_out_tensor_bytes(&t[i], &bytes[i]);
    }
    char *tmp = NULL;
    FILE *f = NULL;
    if (rc == 0)
        rc = ts_write_begin(path, &tmp, &f);
    if (rc == 0) {
        rc = write_all(f, kv, nkv, t, n, bytes, fill, ctx);
        if (rc != 0)
            ts_fail_context(rc, "%s: ", path);
        rc = ts_write_end(path, tmp, f, rc);
    }
    free(bytes);
    return rc;
}
