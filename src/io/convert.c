/*
 * safetensors <-> GGUF conversion; see convert.h for the contract and docs/gguf.md for
 * the rules.  Every output dtype is decided before the header is written (the header
 * lists them), which for f16 outputs takes one extra read of the tensors whose values
 * might not fit in f16; then each tensor streams through the writer's callback in
 * chunks of whole rows: widen to f32, narrow or quantise, write.
 */
#include "io/convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/quant.h"
#include "io/weights.h"

/* f32 values per chunk (4 MB of buffer), rounded to whole rows. */
#define CHUNK (1 << 20)
#define F16_MAX 65504.0f

int ts_convert_type_from_name(const char *name, ts_dtype *out)
{
    static const struct {
        const char *name;
        ts_dtype t;
    } names[] = {{"f32", TS_DTYPE_F32},   {"f16", TS_DTYPE_F16},   {"bf16", TS_DTYPE_BF16}, {"q8_0", TS_DTYPE_Q8_0},
                 {"q4_0", TS_DTYPE_Q4_0}, {"q4_k", TS_DTYPE_Q4_K}, {"q6_k", TS_DTYPE_Q6_K}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].t;
            return 0;
        }
    return -1;
}

/* Norms and embeddings are small next to the layers they feed and sensitive to error
 * (ComfyUI-GGUF and llama.cpp keep them too).  SDXL's text encoders live under
 * "conditioner.embedders.", which names no embedding. */
static int keep_unquantised(const char *name)
{
    if (strncmp(name, "conditioner.embedders.", 22) == 0)
        name += 22;
    size_t n = strlen(name);
    return strstr(name, "norm") || strstr(name, "embed") || strstr(name, "label_emb") ||
           (n >= 13 && strcmp(name + n - 13, "shared.weight") == 0);
}

ts_dtype ts_convert_pick(ts_dtype type, int to_gguf, const char *name, ts_dtype src, int ndim, const int64_t *shape)
{
    if (!ts_dtype_is_float(src))
        return src;
    ts_dtype own = src == TS_DTYPE_F16 || src == TS_DTYPE_BF16 || src == TS_DTYPE_F32 ? src : TS_DTYPE_F32;
    if (type == TS_DTYPE_COUNT && !to_gguf)
        return own;
    if (type == TS_DTYPE_COUNT)
        type = TS_DTYPE_F16;
    if (ndim < 2)
        return own; /* biases, norm gains, scalars */
    if (!ts_dtype_is_block(type))
        return type;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++)
        numel *= shape[d];
    if (numel < TS_CONVERT_MIN_QUANT_ELEMENTS || shape[ndim - 1] % ts_dtype_block_len(type) != 0 ||
        keep_unquantised(name))
        return src == TS_DTYPE_BF16 ? TS_DTYPE_BF16 : TS_DTYPE_F16;
    return type;
}

typedef struct {
    ts_weights *wf;
    size_t n;
    ts_out_tensor *out;
    ts_weight *src; /* float tensors: the view; others: dtype and raw data */
} job;

static int64_t rows_chunk(const ts_weight *w)
{
    int64_t row = w->ndim ? w->shape[w->ndim - 1] : 1;
    if (row <= 0)
        return 1;
    return (CHUNK / row > 0 ? CHUNK / row : 1) * row;
}

/* 1 when every finite value fits in f16, 0 when one would overflow, or TS_ERR_NOMEM. */
static int fits_f16(const ts_weight *w)
{
    int64_t numel = ts_weight_numel(w), chunk = rows_chunk(w);
    float *buf = malloc((size_t)chunk * sizeof *buf);
    if (!buf)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    int fits = 1;
    for (int64_t off = 0; off < numel && fits; off += chunk) {
        int64_t n = numel - off < chunk ? numel - off : chunk;
        ts_to_f32(w->dtype, (const unsigned char *)w->data + ts_dtype_bytes(w->dtype, (uint64_t)off), buf, (size_t)n);
        for (int64_t i = 0; i < n && fits; i++)
            fits = !(fabsf(buf[i]) > F16_MAX && isfinite(buf[i]));
    }
    free(buf);
    return fits;
}

static int narrow(ts_dtype t, const float *x, void *dst, size_t n)
{
    switch (t) {
    case TS_DTYPE_F32: memcpy(dst, x, n * 4); return 0;
    case TS_DTYPE_F16: ts_f32_to_f16_n(x, dst, n); return 0;
    case TS_DTYPE_BF16: ts_f32_to_bf16_n(x, dst, n); return 0;
    default: return ts_quantize(t, x, dst, n);
    }
}

static int fill(void *ctx, size_t i, FILE *f)
{
    const job *j = ctx;
    const ts_weight *w = &j->src[i];
    ts_dtype to = j->out[i].dtype;
    int64_t numel = ts_weight_numel(w);
    if (to == w->dtype) /* copied as stored */
        return ts_write_bytes(f, w->data, (size_t)ts_dtype_bytes(to, (uint64_t)numel));
    int64_t chunk = rows_chunk(w);
    float *buf = malloc((size_t)chunk * sizeof *buf);
    void *packed = malloc((size_t)chunk * sizeof *buf);
    int rc = buf && packed ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory converting \"%s\"", j->out[i].name);
    for (int64_t off = 0; off < numel && rc == 0; off += chunk) {
        int64_t n = numel - off < chunk ? numel - off : chunk;
        ts_to_f32(w->dtype, (const unsigned char *)w->data + ts_dtype_bytes(w->dtype, (uint64_t)off), buf, (size_t)n);
        if (narrow(to, buf, packed, (size_t)n) != 0)
            rc = ts_fail(TS_ERR_FORMAT, "tensor \"%s\" has non-finite values and cannot be quantised to %s",
                         j->out[i].name, ts_dtype_name(to));
        else
            rc = ts_write_bytes(f, packed, (size_t)ts_dtype_bytes(to, (uint64_t)n));
    }
    free(buf);
    free(packed);
    return rc;
}

/* Source view and output dtype/shape of every tensor. */
static int plan(job *j, ts_dtype type, int to_gguf)
{
    int rc = 0;
    for (size_t i = 0; i < j->n && rc == 0; i++) {
        const ts_weight_info *info = ts_weights_info(j->wf, i);
        ts_weight *w = &j->src[i];
        ts_out_tensor *o = &j->out[i];
        o->name = info->name;
        if (ts_dtype_is_float(info->dtype)) {
            rc = ts_weights_get(j->wf, NULL, info->name, w);
        } else if (info->ndim > TS_MAX_DIMS) {
            rc = ts_fail(TS_ERR_UNSUPPORTED, "tensor \"%s\" has %d dimensions", info->name, info->ndim);
        } else {
            w->dtype = info->dtype;
            w->ndim = info->ndim;
            memcpy(w->shape, info->shape, (size_t)info->ndim * sizeof info->shape[0]);
            w->data = ts_weights_data(j->wf, info);
        }
        if (rc != 0)
            break;
        o->dtype = ts_convert_pick(type, to_gguf, o->name, w->dtype, w->ndim, w->shape);
        o->ndim = w->ndim ? w->ndim : 1; /* GGUF has no 0-d tensors: a scalar becomes [1] */
        memcpy(o->shape, w->shape, (size_t)w->ndim * sizeof w->shape[0]);
        if (w->ndim == 0)
            o->shape[0] = 1;
        if (to_gguf && ts_gguf_ggml_type(o->dtype) < 0)
            rc = ts_fail(TS_ERR_UNSUPPORTED, "tensor \"%s\" has dtype %s, which GGUF cannot store", o->name,
                         ts_dtype_name(o->dtype));
        else if ((o->dtype == TS_DTYPE_F16 || ts_dtype_is_block(o->dtype)) && o->dtype != w->dtype &&
                 w->dtype != TS_DTYPE_F16) {
            /* f16 values, and the f16 scales of the block types, would turn large
             * values into infinities. */
            int fits = fits_f16(w);
            if (fits < 0)
                rc = fits;
            else if (!fits)
                o->dtype = TS_DTYPE_F32;
        }
    }
    return rc;
}

/* String metadata carried across (the format's own keys are not). */
static int carried(const char *key)
{
    return strcmp(key, "general.alignment") != 0 && strcmp(key, "general.quantization_version") != 0 &&
           strncmp(key, "comfy.gguf.orig_shape.", 22) != 0;
}

/* GGUF strings may hold NULs or lack a terminator: copied into a pool. */
static int collect_metadata(const ts_weights *wf, const char ***keys, const char ***values, size_t *n, char **pool)
{
    const ts_safetensors *st = ts_weights_safetensors(wf);
    const ts_gguf *g = ts_weights_gguf(wf);
    size_t cap = st ? 0 : ts_gguf_kv_count(g), pool_len = 0;
    if (st)
        while (ts_st_metadata_key(st, cap))
            cap++;
    for (size_t i = 0; g && i < cap; i++) {
        const ts_gguf_kv *kv = ts_gguf_kv_at(g, i);
        uint64_t len = 0;
        if (kv->type == TS_GGUF_STRING && ts_gguf_kv_str(kv, 0, &len))
            pool_len += (size_t)len + 1;
    }
    *keys = calloc(cap + 1, sizeof **keys);
    *values = calloc(cap + 1, sizeof **values);
    *pool = malloc(pool_len + 1);
    *n = 0;
    if (!*keys || !*values || !*pool)
        return ts_fail(TS_ERR_NOMEM, "out of memory reading metadata");
    char *at = *pool;
    for (size_t i = 0; i < cap; i++) {
        const char *key = st ? ts_st_metadata_key(st, i) : ts_gguf_kv_at(g, i)->key, *value = NULL;
        if (st) {
            value = ts_st_metadata(st, key);
        } else {
            const ts_gguf_kv *kv = ts_gguf_kv_at(g, i);
            uint64_t len = 0;
            const char *s = kv->type == TS_GGUF_STRING ? ts_gguf_kv_str(kv, 0, &len) : NULL;
            if (s && !memchr(s, 0, (size_t)len)) {
                memcpy(at, s, (size_t)len);
                at[len] = '\0';
                value = at;
                at += len + 1;
            }
        }
        if (value && carried(key)) {
            (*keys)[*n] = key;
            (*values)[*n] = value;
            (*n)++;
        }
    }
    return 0;
}

static int write_output(const char *out, int to_gguf, job *j)
{
    const char **keys = NULL, **values = NULL;
    char *pool = NULL;
    size_t nmeta = 0;
    int rc = collect_metadata(j->wf, &keys, &values, &nmeta, &pool);
    ts_gguf_out_kv *kv = rc == 0 && to_gguf ? calloc(nmeta + 1, sizeof *kv) : NULL;
    if (rc == 0 && to_gguf && !kv)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc == 0 && to_gguf) {
        for (size_t i = 0; i < nmeta; i++)
            kv[i] = (ts_gguf_out_kv){keys[i], TS_GGUF_STRING, values[i], 0};
        kv[nmeta] = (ts_gguf_out_kv){"general.quantization_version", TS_GGUF_U32, NULL, 2};
        rc = ts_gguf_write(out, kv, nmeta + 1, j->out, j->n, fill, j);
    } else if (rc == 0) {
        rc = ts_st_write(out, keys, values, nmeta, j->out, j->n, fill, j);
    }
    free(kv);
    free(keys);
    free(values);
    free(pool);
    return rc;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int ts_convert(const char *in, const char *out, ts_dtype type, ts_convert_stats *stats)
{
    int to_gguf = has_suffix(out, ".gguf");
    if (!to_gguf && !has_suffix(out, ".safetensors"))
        return ts_fail(TS_ERR_ARG, "%s: the output must end in .gguf or .safetensors", out);
    if (!to_gguf && ts_dtype_is_block(type))
        return ts_fail(TS_ERR_ARG, "%s: safetensors cannot hold %s; use f32, f16 or bf16", out, ts_dtype_name(type));
    job j = {0};
    int rc = ts_weights_open(in, &j.wf);
    if (rc != 0)
        return rc;
    j.n = ts_weights_count(j.wf);
    j.out = calloc(j.n ? j.n : 1, sizeof *j.out);
    j.src = calloc(j.n ? j.n : 1, sizeof *j.src);
    rc = j.out && j.src ? plan(&j, type, to_gguf) : ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc != 0)
        ts_fail_context(rc, "%s: ", in);
    else
        rc = write_output(out, to_gguf, &j);
    if (rc == 0 && stats) {
        memset(stats, 0, sizeof *stats);
        for (size_t i = 0; i < j.n; i++) {
            uint64_t bytes = 0;
            ts_out_tensor_bytes(&j.out[i], &bytes);
            stats->tensors[j.out[i].dtype]++;
            stats->bytes[j.out[i].dtype] += bytes;
        }
        struct stat sb;
        stats->in_bytes = stat(in, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        stats->out_bytes = stat(out, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    }
    free(j.out);
    free(j.src);
    ts_weights_close(j.wf);
    return rc;
}
