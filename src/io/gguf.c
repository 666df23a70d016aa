/*
 * GGUF reader: one pass over the header with a bounds-checked cursor, then the
 * checks that need every tensor (alignment, data range, overlaps, duplicates).  See
 * gguf.h for the layout.  Nothing in the file is trusted to be small: every count is
 * compared with the bytes left before anything is allocated for it, so a 40-byte
 * file cannot ask for gigabytes.
 */
#include "io/gguf.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/mapfile.h"
#include "io/name_index.h"

struct ts_gguf {
    char *path;
    ts_mapped_file map; /* empty when parsing a caller's buffer */
    const unsigned char *bytes;
    uint64_t size;
    uint32_t version, alignment;
    uint64_t data_offset, data_size;
    ts_gguf_kv *kv;
    size_t kv_count;
    ts_gguf_tensor *tensors;
    size_t count;
    ts_name_index index;
};

/* ---- cursor -------------------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    uint64_t left;
} cursor;

static int take(cursor *c, uint64_t n, const unsigned char **out)
{
    if (n > c->left)
        return ts_fail(TS_ERR_FORMAT, "needs %llu bytes but the file ends %llu bytes later (truncated?)",
                       (unsigned long long)n, (unsigned long long)c->left);
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int read_u32(cursor *c, uint32_t *v)
{
    const unsigned char *p = NULL;
    int rc = take(c, 4, &p);
    if (rc == 0)
        *v = (uint32_t)le(p, 4);
    return rc;
}

static int read_u64(cursor *c, uint64_t *v)
{
    const unsigned char *p = NULL;
    int rc = take(c, 8, &p);
    if (rc == 0)
        *v = le(p, 8);
    return rc;
}

/* A length-prefixed string; *s points into the file. */
static int read_str(cursor *c, const unsigned char **s, uint64_t *len)
{
    int rc = read_u64(c, len);
    return rc ? rc : take(c, *len, s);
}

/* A NUL-terminated copy of a key or tensor name, which must be 1..TS_GGUF_MAX_NAME
 * bytes without NULs (a NUL would make two different names compare equal). */
static int read_name(cursor *c, char **out)
{
    const unsigned char *s = NULL;
    uint64_t len = 0;
    int rc = read_str(c, &s, &len);
    if (rc != 0)
        return rc;
    if (len == 0 || len > TS_GGUF_MAX_NAME)
        return ts_fail(TS_ERR_FORMAT, "name of %llu bytes (1 to %d allowed)", (unsigned long long)len,
                       TS_GGUF_MAX_NAME);
    if (memchr(s, 0, (size_t)len))
        return ts_fail(TS_ERR_FORMAT, "name contains a NUL byte");
    *out = malloc((size_t)len + 1);
    if (!*out)
        return ts_fail(TS_ERR_NOMEM, "out of memory reading a name");
    memcpy(*out, s, (size_t)len);
    (*out)[len] = '\0';
    return 0;
}

/* ---- metadata ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int size; /* bytes of one value; 0 = variable */
} value_types[TS_GGUF_TYPE_COUNT] = {
    [TS_GGUF_U8] = {"u8", 1},    [TS_GGUF_I8] = {"i8", 1},       [TS_GGUF_U16] = {"u16", 2},
    [TS_GGUF_I16] = {"i16", 2},  [TS_GGUF_U32] = {"u32", 4},     [TS_GGUF_I32] = {"i32", 4},
    [TS_GGUF_F32] = {"f32", 4},  [TS_GGUF_BOOL] = {"bool", 1},   [TS_GGUF_STRING] = {"string", 0},
    [TS_GGUF_ARRAY] = {"array", 0}, [TS_GGUF_U64] = {"u64", 8}, [TS_GGUF_I64] = {"i64", 8},
    [TS_GGUF_F64] = {"f64", 8},
};

const char *ts_gguf_type_name(ts_gguf_type t) { return (unsigned)t < TS_GGUF_TYPE_COUNT ? value_types[t].name : "?"; }

/* count values of type t (not an array); strings get their offsets recorded. */
static int read_values(cursor *c, ts_gguf_kv *kv)
{
    kv->value = c->p;
    if (kv->elem_type != TS_GGUF_STRING) {
        const unsigned char *p = NULL;
        uint64_t size = (uint64_t)value_types[kv->elem_type].size;
        if (kv->count > c->left / size)
            return ts_fail(TS_ERR_FORMAT, "%llu values of %d bytes do not fit in the %llu bytes left (truncated?)",
                           (unsigned long long)kv->count, (int)size, (unsigned long long)c->left);
        return take(c, kv->count * size, &p);
    }
    if (kv->count > c->left / 8)
        return ts_fail(TS_ERR_FORMAT, "%llu strings do not fit in the %llu bytes left (truncated?)",
                       (unsigned long long)kv->count, (unsigned long long)c->left);
    uint64_t *at = malloc((size_t)(kv->count ? kv->count : 1) * sizeof *at);
    if (!at)
        return ts_fail(TS_ERR_NOMEM, "out of memory reading %llu strings", (unsigned long long)kv->count);
    kv->str_at = at;
    for (uint64_t i = 0; i < kv->count; i++) {
        const unsigned char *s = NULL;
        uint64_t len = 0;
        at[i] = (uint64_t)(c->p - kv->value);
        int rc = read_str(c, &s, &len);
        if (rc != 0)
            return ts_fail_context(rc, "string %llu: ", (unsigned long long)i);
    }
    return 0;
}

static int read_kv(cursor *c, ts_gguf_kv *kv)
{
    uint32_t type;
    int rc = read_u32(c, &type);
    if (rc != 0)
        return rc;
    if (type >= TS_GGUF_TYPE_COUNT)
        return ts_fail(TS_ERR_FORMAT, "unknown value type %u", type);
    kv->type = kv->elem_type = (ts_gguf_type)type;
    kv->count = 1;
    if (type == TS_GGUF_ARRAY) {
        uint32_t elem;
        if ((rc = read_u32(c, &elem)) != 0 || (rc = read_u64(c, &kv->count)) != 0)
            return rc;
        if (elem == TS_GGUF_ARRAY)
            return ts_fail(TS_ERR_UNSUPPORTED, "arrays of arrays are not supported");
        if (elem >= TS_GGUF_TYPE_COUNT)
            return ts_fail(TS_ERR_FORMAT, "array of unknown value type %u", elem);
        kv->elem_type = (ts_gguf_type)elem;
    }
    return read_values(c, kv);
}

static int compare_keys(const void *a, const void *b)
{
    const ts_gguf_kv *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

static int check_unique_keys(const ts_gguf *g)
{
    if (g->kv_count < 2)
        return 0;
    const ts_gguf_kv **sorted = malloc(g->kv_count * sizeof *sorted);
    if (!sorted)
        return ts_fail(TS_ERR_NOMEM, "out of memory checking %zu keys", g->kv_count);
    for (size_t i = 0; i < g->kv_count; i++)
        sorted[i] = &g->kv[i];
    qsort(sorted, g->kv_count, sizeof *sorted, compare_keys);
    int rc = 0;
    for (size_t i = 1; i < g->kv_count && rc == 0; i++)
        if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0)
            rc = ts_fail(TS_ERR_FORMAT, "metadata key \"%s\" appears twice", sorted[i]->key);
    free(sorted);
    return rc;
}

/* n records of `size` bytes, after checking that the bytes left could hold n entries
 * of at least min_bytes each. */
static int alloc_counted(const cursor *c, uint64_t n, uint64_t min_bytes, size_t size, const char *what, void **out)
{
    if (n > c->left / min_bytes)
        return ts_fail(TS_ERR_FORMAT, "header claims %llu %s but the file has room for at most %llu",
                       (unsigned long long)n, what, (unsigned long long)(c->left / min_bytes));
    *out = calloc(n ? (size_t)n : 1, size);
    return *out ? 0 : ts_fail(TS_ERR_NOMEM, "out of memory reading %llu %s", (unsigned long long)n, what);
}

static int read_metadata(ts_gguf *g, cursor *c, uint64_t n)
{
    /* Smallest entry: 8-byte key length, 1-byte key, 4-byte type, 1-byte value. */
    int rc = alloc_counted(c, n, 14, sizeof *g->kv, "metadata entries", (void **)&g->kv);
    if (rc != 0)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        ts_gguf_kv *kv = &g->kv[g->kv_count];
        rc = read_name(c, (char **)&kv->key);
        if (rc != 0)
            return ts_fail_context(rc, "metadata entry %llu: key: ", (unsigned long long)i);
        g->kv_count++;
        if ((rc = read_kv(c, kv)) != 0)
            return ts_fail_context(rc, "metadata \"%s\": ", kv->key);
    }
    return check_unique_keys(g);
}

static int read_alignment(ts_gguf *g)
{
    g->alignment = TS_GGUF_DEFAULT_ALIGNMENT;
    const ts_gguf_kv *kv = ts_gguf_kv_find(g, "general.alignment");
    if (!kv)
        return 0;
    int64_t v;
    if (kv->type != TS_GGUF_U32 || ts_gguf_kv_int(kv, 0, &v) != 0)
        return ts_fail(TS_ERR_FORMAT, "general.alignment is a %s, a u32 expected", ts_gguf_type_name(kv->type));
    if (v == 0 || (v & (v - 1)) != 0)
        return ts_fail(TS_ERR_FORMAT, "general.alignment %lld is not a power of two", (long long)v);
    g->alignment = (uint32_t)v;
    return 0;
}

/* ---- tensor infos -------------------------------------------------------------- */

static const struct {
    uint32_t ggml;
    ts_dtype dtype;
} ggml_types[] = {
    {TS_GGML_F32, TS_DTYPE_F32},   {TS_GGML_F16, TS_DTYPE_F16},   {TS_GGML_BF16, TS_DTYPE_BF16},
    {TS_GGML_F64, TS_DTYPE_F64},   {TS_GGML_I8, TS_DTYPE_I8},     {TS_GGML_I16, TS_DTYPE_I16},
    {TS_GGML_I32, TS_DTYPE_I32},   {TS_GGML_I64, TS_DTYPE_I64},   {TS_GGML_Q8_0, TS_DTYPE_Q8_0},
    {TS_GGML_Q4_0, TS_DTYPE_Q4_0}, {TS_GGML_Q4_1, TS_DTYPE_Q4_1}, {TS_GGML_Q5_0, TS_DTYPE_Q5_0},
    {TS_GGML_Q5_1, TS_DTYPE_Q5_1}, {TS_GGML_Q4_K, TS_DTYPE_Q4_K}, {TS_GGML_Q5_K, TS_DTYPE_Q5_K},
    {TS_GGML_Q6_K, TS_DTYPE_Q6_K},
};

int ts_gguf_ggml_type(ts_dtype t)
{
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].dtype == t)
            return (int)ggml_types[i].ggml;
    return -1;
}

/* ggml ids up to 39 exist (removed ones included); Tessera reads the table above. */
static int map_ggml_type(uint32_t id, ts_dtype *out)
{
    static const char *const unsupported[] = {[9] = "q8_1",     [10] = "q2_K",    [11] = "q3_K",   [15] = "q8_K",
                                              [16] = "iq2_xxs", [17] = "iq2_xs",  [18] = "iq3_xxs", [19] = "iq1_s",
                                              [20] = "iq4_nl",  [21] = "iq3_s",   [22] = "iq2_s",  [23] = "iq4_xs",
                                              [29] = "iq1_m",   [34] = "tq1_0",   [35] = "tq2_0",  [39] = "mxfp4"};
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].ggml == id) {
            *out = ggml_types[i].dtype;
            return 0;
        }
    if (id < sizeof unsupported / sizeof unsupported[0] && unsupported[id])
        return ts_fail(TS_ERR_UNSUPPORTED, "ggml type %s (%u) is not supported", unsupported[id], id);
    return ts_fail(TS_ERR_FORMAT, "unknown ggml type %u", id);
}

static int read_dims(cursor *c, ts_gguf_tensor *t)
{
    uint32_t ndim;
    int rc = read_u32(c, &ndim);
    if (rc != 0)
        return rc;
    if (ndim > TS_GGUF_MAX_DIMS)
        return ts_fail(TS_ERR_FORMAT, "%u dimensions (at most %d)", ndim, TS_GGUF_MAX_DIMS);
    t->ndim = (int)ndim;
    /* As for safetensors, the product of the non-zero dims must fit too. */
    uint64_t nonzero = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t v;
        if ((rc = read_u64(c, &v)) != 0)
            return rc;
        if (v > INT64_MAX || (v && __builtin_mul_overflow(nonzero, v, &nonzero)) || nonzero > INT64_MAX)
            return ts_fail(TS_ERR_FORMAT, "shape overflows 64 bits");
        t->ne[d] = (int64_t)v;
        t->shape[t->ndim - 1 - d] = (int64_t)v;
    }
    return 0;
}

static int read_tensor_info(cursor *c, ts_gguf_tensor *t)
{
    uint32_t type;
    int rc = read_dims(c, t);
    if (rc == 0)
        rc = read_u32(c, &type);
    if (rc == 0)
        rc = map_ggml_type(type, &t->dtype);
    if (rc == 0)
        rc = read_u64(c, &t->offset);
    if (rc != 0)
        return rc;
    t->ggml_type = type;
    int64_t block = ts_dtype_block_len(t->dtype);
    if (t->ndim > 0 && t->ne[0] % block != 0)
        return ts_fail(TS_ERR_FORMAT, "row length %lld is not a multiple of the %s block length %lld",
                       (long long)t->ne[0], ts_dtype_name(t->dtype), (long long)block);
    if (__builtin_mul_overflow(ts_gguf_numel(t) / (uint64_t)block, (uint64_t)ts_dtype_block_bytes(t->dtype), &t->bytes))
        return ts_fail(TS_ERR_FORMAT, "byte size overflows 64 bits");
    return 0;
}

static int read_tensor_infos(ts_gguf *g, cursor *c, uint64_t n)
{
    /* Smallest info: 8-byte name length, 1-byte name, n_dims, type, offset. */
    int rc = alloc_counted(c, n, 25, sizeof *g->tensors, "tensors", (void **)&g->tensors);
    if (rc != 0)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        ts_gguf_tensor *t = &g->tensors[g->count];
        rc = read_name(c, (char **)&t->name);
        if (rc != 0)
            return ts_fail_context(rc, "tensor %llu: name: ", (unsigned long long)i);
        g->count++;
        if ((rc = read_tensor_info(c, t)) != 0)
            return ts_fail_context(rc, "tensor \"%s\": ", t->name);
    }
    return 0;
}

static int compare_by_offset(const void *a, const void *b)
{
    const ts_gguf_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->bytes < y->bytes ? -1 : x->bytes > y->bytes;
}

/* Offsets aligned, spans inside the data, no two spans sharing a byte. */
static int check_spans(ts_gguf *g)
{
    for (size_t i = 0; i < g->count; i++) {
        const ts_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": offset %llu is not a multiple of the alignment %u", t->name,
                           (unsigned long long)t->offset, g->alignment);
        if (t->offset > g->data_size || t->bytes > g->data_size - t->offset)
            return ts_fail(TS_ERR_FORMAT,
                           "tensor \"%s\": data [%llu, +%llu) goes past the %llu data bytes of the file (truncated?)",
                           t->name, (unsigned long long)t->offset, (unsigned long long)t->bytes,
                           (unsigned long long)g->data_size);
    }
    qsort(g->tensors, g->count, sizeof *g->tensors, compare_by_offset);
    uint64_t covered = 0;
    const char *last = NULL;
    for (size_t i = 0; i < g->count; i++) {
        const ts_gguf_tensor *t = &g->tensors[i];
        if (t->bytes == 0)
            continue;
        if (t->offset < covered)
            return ts_fail(TS_ERR_FORMAT, "tensors \"%s\" and \"%s\" overlap in the data section", last, t->name);
        covered = t->offset + t->bytes;
        last = t->name;
    }
    return 0;
}

static int parse(ts_gguf *g)
{
    if (g->size < 4 || memcmp(g->bytes, "GGUF", 4) != 0)
        return ts_fail(TS_ERR_FORMAT, "no \"GGUF\" magic at the start (not a GGUF file)");
    cursor c = {g->bytes + 4, g->size - 4};
    uint64_t n_tensors, n_kv;
    if (read_u32(&c, &g->version) != 0 || read_u64(&c, &n_tensors) != 0 || read_u64(&c, &n_kv) != 0)
        return ts_fail(TS_ERR_FORMAT, "file is %llu bytes, too short for a GGUF header", (unsigned long long)g->size);
    if (g->version == 1)
        return ts_fail(TS_ERR_UNSUPPORTED, "GGUF version 1 is not supported (re-save the file as version 3)");
    if (g->version != 2 && g->version != 3)
        return ts_fail(TS_ERR_UNSUPPORTED, "GGUF version %u is not supported (2 and 3 are%s)", g->version,
                       (g->version & 0xffff) == 0 ? "; big-endian files are not" : "");
    int rc = read_metadata(g, &c, n_kv);
    if (rc == 0)
        rc = read_alignment(g);
    if (rc == 0)
        rc = read_tensor_infos(g, &c, n_tensors);
    if (rc != 0)
        return rc;
    uint64_t end = g->size - c.left, pad = (g->alignment - end % g->alignment) % g->alignment;
    g->data_offset = end + pad;
    /* Only a file without tensors may end before its data section (no padding). */
    if (g->data_offset > g->size && g->count > 0)
        return ts_fail(TS_ERR_FORMAT, "file ends at byte %llu, inside the padding before the data at %llu (truncated?)",
                       (unsigned long long)g->size, (unsigned long long)g->data_offset);
    g->data_size = g->data_offset <= g->size ? g->size - g->data_offset : 0;
    if ((rc = check_spans(g)) != 0)
        return rc;
    rc = ts_name_index_build(&g->index, g->tensors, g->count, sizeof *g->tensors, offsetof(ts_gguf_tensor, name));
    return rc;
}

static int finish_open(ts_gguf *g, ts_gguf **out)
{
    int rc = parse(g);
    if (rc != 0) {
        ts_fail_context(rc, "%s: ", g->path);
        ts_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

static ts_gguf *new_handle(const char *path)
{
    ts_gguf *g = calloc(1, sizeof *g);
    if (g && !(g->path = strdup(path))) {
        free(g);
        g = NULL;
    }
    if (!g)
        ts_fail(TS_ERR_NOMEM, "out of memory opening %s", path);
    return g;
}

int ts_gguf_open(const char *path, ts_gguf **out)
{
    *out = NULL;
    ts_gguf *g = new_handle(path);
    if (!g)
        return TS_ERR_NOMEM;
    int rc = ts_map_file(path, &g->map);
    if (rc != 0) {
        ts_gguf_close(g);
        return rc;
    }
    g->bytes = g->map.bytes;
    g->size = g->map.size;
    return finish_open(g, out);
}

int ts_gguf_open_memory(const void *buf, size_t len, ts_gguf **out)
{
    *out = NULL;
    ts_gguf *g = new_handle("<memory>");
    if (!g)
        return TS_ERR_NOMEM;
    g->bytes = buf;
    g->size = len;
    return finish_open(g, out);
}

void ts_gguf_evict(const ts_gguf *g)
{
    if (g)
        ts_evict_file(&g->map);
}

void ts_gguf_close(ts_gguf *g)
{
    if (!g)
        return;
    ts_unmap_file(&g->map);
    for (size_t i = 0; i < g->kv_count; i++) {
        free((char *)g->kv[i].key);
        free((uint64_t *)g->kv[i].str_at);
    }
    for (size_t i = 0; i < g->count; i++)
        free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    ts_name_index_free(&g->index);
    free(g->path);
    free(g);
}

/* ---- accessors ----------------------------------------------------------------- */

uint32_t ts_gguf_version(const ts_gguf *g) { return g->version; }
uint32_t ts_gguf_alignment(const ts_gguf *g) { return g->alignment; }
uint64_t ts_gguf_data_offset(const ts_gguf *g) { return g->data_offset; }
const char *ts_gguf_path(const ts_gguf *g) { return g->path; }
uint64_t ts_gguf_file_size(const ts_gguf *g) { return g->size; }
size_t ts_gguf_count(const ts_gguf *g) { return g->count; }
const ts_gguf_tensor *ts_gguf_at(const ts_gguf *g, size_t i) { return i < g->count ? &g->tensors[i] : NULL; }
const ts_gguf_tensor *ts_gguf_find(const ts_gguf *g, const char *name) { return ts_gguf_find_prefixed(g, "", name); }

const ts_gguf_tensor *ts_gguf_find_prefixed(const ts_gguf *g, const char *prefix, const char *name)
{
    return ts_name_index_find(&g->index, prefix ? prefix : "", name);
}

const void *ts_gguf_data(const ts_gguf *g, const ts_gguf_tensor *t) { return g->bytes + g->data_offset + t->offset; }

uint64_t ts_gguf_numel(const ts_gguf_tensor *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->ne[d];
    return n;
}

size_t ts_gguf_kv_count(const ts_gguf *g) { return g->kv_count; }
const ts_gguf_kv *ts_gguf_kv_at(const ts_gguf *g, size_t i) { return i < g->kv_count ? &g->kv[i] : NULL; }

const ts_gguf_kv *ts_gguf_kv_find(const ts_gguf *g, const char *key)
{
    for (size_t i = 0; i < g->kv_count; i++)
        if (strcmp(g->kv[i].key, key) == 0)
            return &g->kv[i];
    return NULL;
}

int ts_gguf_kv_int(const ts_gguf_kv *kv, uint64_t i, int64_t *out)
{
    if (i >= kv->count)
        return -1;
    int size = value_types[kv->elem_type].size;
    const unsigned char *p = kv->value + i * (uint64_t)size;
    uint64_t u = size ? le(p, size) : 0;
    switch (kv->elem_type) {
    case TS_GGUF_U8:
    case TS_GGUF_U16:
    case TS_GGUF_U32:
    case TS_GGUF_BOOL: *out = (int64_t)u; return 0;
    case TS_GGUF_U64:
        if (u > INT64_MAX)
            return -1;
        *out = (int64_t)u;
        return 0;
    case TS_GGUF_I8: *out = (int8_t)u; return 0;
    case TS_GGUF_I16: *out = (int16_t)u; return 0;
    case TS_GGUF_I32: *out = (int32_t)u; return 0;
    case TS_GGUF_I64: memcpy(out, &u, 8); return 0;
    default: return -1;
    }
}

int ts_gguf_kv_float(const ts_gguf_kv *kv, uint64_t i, double *out)
{
    if (i >= kv->count)
        return -1;
    if (kv->elem_type == TS_GGUF_F32) {
        uint32_t u = (uint32_t)le(kv->value + 4 * i, 4);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return 0;
    }
    if (kv->elem_type == TS_GGUF_F64) {
        uint64_t u = le(kv->value + 8 * i, 8);
        memcpy(out, &u, 8);
        return 0;
    }
    int64_t v;
    if (ts_gguf_kv_int(kv, i, &v) != 0) {
        if (kv->elem_type != TS_GGUF_U64)
            return -1;
        *out = (double)le(kv->value + 8 * i, 8);
        return 0;
    }
    *out = (double)v;
    return 0;
}

const char *ts_gguf_kv_str(const ts_gguf_kv *kv, uint64_t i, uint64_t *len)
{
    if (kv->elem_type != TS_GGUF_STRING || i >= kv->count)
        return NULL;
    const unsigned char *p = kv->value + kv->str_at[i];
    *len = le(p, 8);
    return (const char *)p + 8;
}
