/*
 * Container-neutral weight files; see weights.h.  The per-tensor infos are built once
 * at open (for GGUF: dims reversed, ComfyUI-GGUF original shapes applied), so lookups
 * and iteration do not care which reader is underneath.  Widened copies of flattened
 * tensors are made on first use and kept until close (loading is single-threaded).
 */
#include "io/weights.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/name_index.h"

#define ORIG_SHAPE_KEY "comfy.gguf.orig_shape."

struct ts_weights {
    ts_safetensors *st;
    ts_gguf *gguf;
    ts_weight_info *info;
    const void **data;   /* stored bytes of each tensor */
    unsigned char *widen; /* GGUF: 1 when the shape's rows are not whole blocks */
    float **wide;        /* widened copies, made on demand */
    size_t count;
    ts_name_index index;
};

static void set_info(ts_weights *wf, size_t i, const char *name, ts_dtype dtype, int ndim, const int64_t *shape,
                     uint64_t bytes, const void *data)
{
    ts_weight_info *w = &wf->info[i];
    w->name = name;
    w->dtype = dtype;
    w->ndim = ndim;
    memcpy(w->shape, shape, (size_t)ndim * sizeof shape[0]);
    w->bytes = bytes;
    wf->data[i] = data;
}

static void info_from_st(ts_weights *wf)
{
    for (size_t i = 0; i < wf->count; i++) {
        const ts_st_tensor *t = ts_st_at(wf->st, i);
        set_info(wf, i, t->name, t->dtype, t->ndim, t->shape, t->end - t->begin, ts_st_data(wf->st, t));
    }
}

/* Whether a tensor of this shape can stay a block view: a conv kernel larger than 1x1
 * is widened whole per call, so it needs whole blocks only; everything else is read
 * by rows (dims after the first). */
static int whole_blocks(const ts_weight_info *w, int64_t block)
{
    uint64_t numel = ts_weight_info_numel(w);
    int conv_kernel = w->ndim == 4 && (w->shape[2] > 1 || w->shape[3] > 1);
    uint64_t unit = conv_kernel || w->ndim < 2 || w->shape[0] == 0 ? numel : numel / (uint64_t)w->shape[0];
    return unit % (uint64_t)block == 0;
}

/* Applies a "comfy.gguf.orig_shape.NAME" entry: an integer array whose product is the
 * stored element count. */
static int apply_orig_shape(const ts_gguf_kv *kv, const ts_gguf_tensor *t, ts_weight_info *w, unsigned char *widen)
{
    if (kv->type != TS_GGUF_ARRAY || kv->count == 0 || kv->count > TS_ST_MAX_DIMS)
        return ts_fail(TS_ERR_FORMAT, "%s%s: expected an array of 1 to %d integers", ORIG_SHAPE_KEY, t->name,
                       TS_ST_MAX_DIMS);
    uint64_t numel = 1;
    int64_t shape[TS_ST_MAX_DIMS];
    for (uint64_t d = 0; d < kv->count; d++) {
        if (ts_gguf_kv_int(kv, d, &shape[d]) != 0 || shape[d] < 0 ||
            __builtin_mul_overflow(numel, (uint64_t)shape[d], &numel))
            return ts_fail(TS_ERR_FORMAT, "%s%s: entry %llu is not a valid dim", ORIG_SHAPE_KEY, t->name,
                           (unsigned long long)d);
    }
    if (numel != ts_gguf_numel(t))
        return ts_fail(TS_ERR_FORMAT, "%s%s: %llu elements, but the tensor has %llu", ORIG_SHAPE_KEY, t->name,
                       (unsigned long long)numel, (unsigned long long)ts_gguf_numel(t));
    w->ndim = (int)kv->count;
    memcpy(w->shape, shape, (size_t)w->ndim * sizeof shape[0]);
    *widen = !whole_blocks(w, ts_dtype_block_len(t->dtype));
    return 0;
}

static int info_from_gguf(ts_weights *wf)
{
    for (size_t i = 0; i < wf->count; i++) {
        const ts_gguf_tensor *t = ts_gguf_at(wf->gguf, i);
        set_info(wf, i, t->name, t->dtype, t->ndim, t->shape, t->bytes, ts_gguf_data(wf->gguf, t));
    }
    for (size_t k = 0; k < ts_gguf_kv_count(wf->gguf); k++) {
        const ts_gguf_kv *kv = ts_gguf_kv_at(wf->gguf, k);
        if (strncmp(kv->key, ORIG_SHAPE_KEY, strlen(ORIG_SHAPE_KEY)) != 0)
            continue;
        const ts_gguf_tensor *t = ts_gguf_find(wf->gguf, kv->key + strlen(ORIG_SHAPE_KEY));
        if (!t)
            continue; /* a stale key names nothing to reshape */
        size_t i = (size_t)(t - ts_gguf_at(wf->gguf, 0));
        int rc = apply_orig_shape(kv, t, &wf->info[i], &wf->widen[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int finish_open(ts_weights *wf, ts_weights **out)
{
    wf->count = wf->st ? ts_st_count(wf->st) : ts_gguf_count(wf->gguf);
    size_t n = wf->count ? wf->count : 1;
    wf->info = calloc(n, sizeof *wf->info);
    wf->data = calloc(n, sizeof *wf->data);
    wf->widen = calloc(n, 1);
    wf->wide = calloc(n, sizeof *wf->wide);
    int rc = 0;
    if (!wf->info || !wf->data || !wf->widen || !wf->wide)
        rc = ts_fail(TS_ERR_NOMEM, "out of memory indexing %zu tensors", wf->count);
    else if (wf->st)
        info_from_st(wf);
    else
        rc = info_from_gguf(wf);
    if (rc == 0)
        rc = ts_name_index_build(&wf->index, wf->info, wf->count, sizeof *wf->info, offsetof(ts_weight_info, name));
    if (rc != 0) {
        ts_fail_context(rc, "%s: ", ts_weights_path(wf));
        ts_weights_close(wf);
        return rc;
    }
    *out = wf;
    return 0;
}

static int is_gguf(const void *bytes, size_t len) { return len >= 4 && memcmp(bytes, "GGUF", 4) == 0; }

int ts_weights_open(const char *path, ts_weights **out)
{
    *out = NULL;
    unsigned char magic[4] = {0};
    size_t got = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        got = fread(magic, 1, sizeof magic, f);
        fclose(f);
    }
    ts_weights *wf = calloc(1, sizeof *wf);
    if (!wf)
        return ts_fail(TS_ERR_NOMEM, "out of memory opening %s", path);
    /* An unreadable file goes to the safetensors reader, whose message says why. */
    int rc = is_gguf(magic, got) ? ts_gguf_open(path, &wf->gguf) : ts_st_open(path, &wf->st);
    if (rc != 0) {
        free(wf);
        return rc;
    }
    return finish_open(wf, out);
}

int ts_weights_open_memory(const void *buf, size_t len, ts_weights **out)
{
    *out = NULL;
    ts_weights *wf = calloc(1, sizeof *wf);
    if (!wf)
        return ts_fail(TS_ERR_NOMEM, "out of memory opening a buffer");
    int rc = is_gguf(buf, len) ? ts_gguf_open_memory(buf, len, &wf->gguf) : ts_st_open_memory(buf, len, &wf->st);
    if (rc != 0) {
        free(wf);
        return rc;
    }
    return finish_open(wf, out);
}

void ts_weights_close(ts_weights *wf)
{
    if (!wf)
        return;
    for (size_t i = 0; wf->wide && i < wf->count; i++)
        free(wf->wide[i]);
    free(wf->wide);
    free(wf->widen);
    free(wf->data);
    free(wf->info);
    ts_name_index_free(&wf->index);
    ts_st_close(wf->st);
    ts_gguf_close(wf->gguf);
    free(wf);
}

void ts_weights_evict(const ts_weights *wf)
{
    if (!wf)
        return;
    ts_st_evict(wf->st);
    ts_gguf_evict(wf->gguf);
}

ts_weights_format ts_weights_format_of(const ts_weights *wf)
{
    return wf->gguf ? TS_WEIGHTS_GGUF : TS_WEIGHTS_SAFETENSORS;
}

const char *ts_weights_path(const ts_weights *wf) { return wf->gguf ? ts_gguf_path(wf->gguf) : ts_st_path(wf->st); }
uint64_t ts_weights_file_size(const ts_weights *wf)
{
    return wf->gguf ? ts_gguf_file_size(wf->gguf) : ts_st_file_size(wf->st);
}

const char *ts_weights_metadata(const ts_weights *wf, const char *key, size_t *len)
{
    if (wf->st) {
        const char *v = ts_st_metadata(wf->st, key);
        *len = v ? strlen(v) : 0;
        return v;
    }
    const ts_gguf_kv *kv = ts_gguf_kv_find(wf->gguf, key);
    uint64_t n = 0;
    const char *v = kv && kv->type == TS_GGUF_STRING ? ts_gguf_kv_str(kv, 0, &n) : NULL;
    *len = (size_t)n;
    return v;
}

const char *ts_weights_metadata_key(const ts_weights *wf, size_t i)
{
    if (wf->st)
        return ts_st_metadata_key(wf->st, i);
    const ts_gguf_kv *kv = ts_gguf_kv_at(wf->gguf, i);
    return kv ? kv->key : NULL;
}

const ts_safetensors *ts_weights_safetensors(const ts_weights *wf) { return wf->st; }
const ts_gguf *ts_weights_gguf(const ts_weights *wf) { return wf->gguf; }
size_t ts_weights_count(const ts_weights *wf) { return wf->count; }

const ts_weight_info *ts_weights_info(const ts_weights *wf, size_t i) { return i < wf->count ? &wf->info[i] : NULL; }

const ts_weight_info *ts_weights_find(const ts_weights *wf, const char *prefix, const char *name)
{
    return ts_name_index_find(&wf->index, prefix ? prefix : "", name);
}

uint64_t ts_weight_info_numel(const ts_weight_info *info)
{
    uint64_t n = 1;
    for (int d = 0; d < info->ndim; d++)
        n *= (uint64_t)info->shape[d];
    return n;
}

const void *ts_weights_data(const ts_weights *wf, const ts_weight_info *info) { return wf->data[info - wf->info]; }

/* The f32 copy of a tensor whose rows are not whole blocks, made once. */
static int widened(ts_weights *wf, size_t i, const float **out)
{
    if (!wf->wide[i]) {
        uint64_t n = ts_gguf_numel(ts_gguf_at(wf->gguf, i));
        float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
        if (!p)
            return ts_fail(TS_ERR_NOMEM, "%s: out of memory widening tensor \"%s\" (%llu values)", ts_weights_path(wf),
                           wf->info[i].name, (unsigned long long)n);
        ts_to_f32(wf->info[i].dtype, wf->data[i], p, (size_t)n);
        wf->wide[i] = p;
    }
    *out = wf->wide[i];
    return 0;
}

int ts_weights_get(ts_weights *wf, const char *prefix, const char *name, ts_weight *out)
{
    prefix = prefix ? prefix : "";
    const ts_weight_info *w = ts_weights_find(wf, prefix, name);
    const char *path = ts_weights_path(wf);
    if (!w)
        return ts_fail(TS_ERR_MODEL, "%s: missing tensor \"%s%s\"", path, prefix, name);
    size_t i = (size_t)(w - wf->info);
    int rc = ts_weight_make(path, w->name, w->dtype, w->ndim, w->shape, wf->data[i], out);
    if (rc == 0 && wf->widen[i]) {
        const float *p = NULL;
        if ((rc = widened(wf, i, &p)) != 0)
            return rc;
        out->dtype = TS_DTYPE_F32;
        out->data = p;
    }
    return rc;
}

int ts_weights_get_shaped(ts_weights *wf, const char *prefix, const char *name, int ndim, const int64_t *shape,
                          ts_weight *out)
{
    int rc = ts_weights_get(wf, prefix, name, out);
    return rc ? rc : ts_weight_expect_shape(out, ts_weights_path(wf), prefix, name, ndim, shape);
}
