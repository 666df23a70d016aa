/* safetensors reader: mmap, validated header, hashed name lookup; see safetensors.h. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/mapfile.h"
#include "io/name_index.h"

struct ts_safetensors {
    char *path;
    ts_mapped_file map;         /* empty when parsing a caller's buffer */
    const unsigned char *bytes; /* the whole file */
    uint64_t size;
    const unsigned char *data; /* first byte after the header */
    uint64_t data_size;
    ts_st_tensor *tensors;
    size_t count;
    char *names; /* one pool for every name */
    ts_name_index index;
    char **meta_keys, **meta_values;
    size_t meta_count;
};

static const ts_st_tensor *lookup(const ts_safetensors *st, const char *prefix, const char *name)
{
    return ts_name_index_find(&st->index, prefix, name);
}

static int compare_by_offset(const void *a, const void *b)
{
    const ts_st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_tensor(const cJSON *item, uint64_t data_size, ts_st_tensor *t)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": entry is not a JSON object", name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": missing or non-string \"dtype\"", name);
    if (ts_dtype_from_name(dtype->valuestring, &t->dtype) != 0)
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": unknown dtype \"%.32s\"", name, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": missing or non-array \"shape\"", name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TS_ST_MAX_DIMS)
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": %d dimensions (at most %d supported)", name, ndim,
                       TS_ST_MAX_DIMS);
    t->ndim = ndim;
    /* The product of the non-zero dims must fit too: a zero dim would otherwise hide dims
     * whose row length overflows int64 in the tensor helpers. */
    uint64_t numel = 1, nonzero = 1;
    int d = 0;
    for (const cJSON *dim = shape->child; dim; dim = dim->next, d++) {
        uint64_t v;
        if (json_uint(dim, &v) != 0)
            return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": shape entry %d is not a non-negative integer", name, d);
        if (__builtin_mul_overflow(numel, v, &numel) || (v && __builtin_mul_overflow(nonzero, v, &nonzero)) ||
            nonzero > INT64_MAX)
            return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": shape overflows 64 bits", name);
        t->shape[d] = (int64_t)v;
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)ts_dtype_size(t->dtype), &bytes))
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": byte size overflows 64 bits", name);
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || json_uint(offsets->child, &t->begin) != 0 ||
        json_uint(offsets->child->next, &t->end) != 0)
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": \"data_offsets\" must be two non-negative integers", name);
    if (t->begin > t->end)
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": data_offsets begin %llu > end %llu", name,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_size)
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": data ends at byte %llu but the file has %llu data bytes (truncated?)",
                       name, (unsigned long long)t->end, (unsigned long long)data_size);
    if (t->end - t->begin != bytes)
        return ts_fail(TS_ERR_FORMAT, "tensor \"%s\": shape and dtype need %llu bytes but data_offsets span %llu",
                       name, (unsigned long long)bytes, (unsigned long long)(t->end - t->begin));
    return 0;
}

static int parse_metadata(ts_safetensors *st, const cJSON *meta)
{
    if (!cJSON_IsObject(meta))
        return ts_fail(TS_ERR_FORMAT, "\"__metadata__\" is not a JSON object");
    size_t n = (size_t)cJSON_GetArraySize(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof(char *));
    st->meta_values = calloc(n ? n : 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_values)
        return ts_fail(TS_ERR_NOMEM, "out of memory reading metadata");
    for (const cJSON *item = meta->child; item; item = item->next) {
        if (!cJSON_IsString(item))
            return ts_fail(TS_ERR_FORMAT, "\"__metadata__\" value of \"%s\" is not a string", item->string);
        st->meta_keys[st->meta_count] = strdup(item->string);
        st->meta_values[st->meta_count] = strdup(item->valuestring);
        if (!st->meta_keys[st->meta_count] || !st->meta_values[st->meta_count])
            return ts_fail(TS_ERR_NOMEM, "out of memory reading metadata");
        st->meta_count++;
    }
    return 0;
}

static int check_overlaps(const ts_safetensors *st)
{
    uint64_t covered = 0;
    const char *last = NULL;
    for (size_t i = 0; i < st->count; i++) {
        const ts_st_tensor *t = &st->tensors[i];
        if (t->begin == t->end)
            continue;
        if (t->begin < covered)
            return ts_fail(TS_ERR_FORMAT, "tensors \"%s\" and \"%s\" overlap in the data section", last, t->name);
        covered = t->end;
        last = t->name;
    }
    return 0;
}

static int parse_header(ts_safetensors *st)
{
    if (st->size < 8)
        return ts_fail(TS_ERR_FORMAT, "file is %llu bytes, too short for a safetensors header",
                       (unsigned long long)st->size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | st->bytes[i];
    if (header_len > st->size - 8)
        return ts_fail(TS_ERR_FORMAT, "header length %llu exceeds the file size %llu (truncated or not safetensors)",
                       (unsigned long long)header_len, (unsigned long long)st->size);
    if (header_len > TS_ST_MAX_HEADER)
        return ts_fail(TS_ERR_LIMIT, "header length %llu exceeds the %u MiB limit", (unsigned long long)header_len,
                       TS_ST_MAX_HEADER >> 20);
    if (header_len < 2 || st->bytes[8] != '{')
        return ts_fail(TS_ERR_FORMAT, "header does not start with a JSON object (not a safetensors file)");
    st->data = st->bytes + 8 + header_len;
    st->data_size = st->size - 8 - header_len;

    const char *json = (const char *)st->bytes + 8, *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)header_len, &json_end, 0);
    if (!root)
        return ts_fail(TS_ERR_FORMAT, "header is not valid JSON (error near byte %lld)",
                       (long long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : -1));
    int rc = 0;
    for (const char *p = json_end; p < json + header_len && rc == 0; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0')
            rc = ts_fail(TS_ERR_FORMAT, "unexpected bytes after the header's JSON object");
    if (rc == 0 && !cJSON_IsObject(root))
        rc = ts_fail(TS_ERR_FORMAT, "header is not a JSON object");

    size_t n = 0, names_len = 0;
    for (const cJSON *item = rc == 0 ? root->child : NULL; item; item = item->next)
        if (strcmp(item->string, "__metadata__") != 0) {
            n++;
            names_len += strlen(item->string) + 1;
        }
    if (rc == 0) {
        st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
        st->names = malloc(names_len ? names_len : 1);
        if (!st->tensors || !st->names)
            rc = ts_fail(TS_ERR_NOMEM, "out of memory reading a header of %zu tensors", n);
    }
    char *name_at = st->names;
    for (const cJSON *item = rc == 0 ? root->child : NULL; item && rc == 0; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            rc = st->meta_keys ? ts_fail(TS_ERR_FORMAT, "\"__metadata__\" appears twice") : parse_metadata(st, item);
            continue;
        }
        ts_st_tensor *t = &st->tensors[st->count];
        rc = parse_tensor(item, st->data_size, t);
        size_t len = strlen(item->string) + 1;
        memcpy(name_at, item->string, len);
        t->name = name_at;
        name_at += len;
        st->count++;
    }
    cJSON_Delete(root);
    if (rc != 0)
        return rc;
    qsort(st->tensors, st->count, sizeof *st->tensors, compare_by_offset);
    rc = check_overlaps(st);
    if (rc == 0)
        rc = ts_name_index_build(&st->index, st->tensors, st->count, sizeof *st->tensors,
                                 offsetof(ts_st_tensor, name));
    if (rc == TS_ERR_FORMAT)
        ts_fail_context(rc, "header: "); /* "tensor X appears twice" */
    return rc;
}

static int finish_open(ts_safetensors *st, ts_safetensors **out)
{
    int rc = parse_header(st);
    if (rc != 0) {
        ts_fail_context(rc, "%s: ", st->path);
        ts_st_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

int ts_st_open(const char *path, ts_safetensors **out)
{
    *out = NULL;
    ts_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return ts_fail(TS_ERR_NOMEM, "out of memory opening %s", path);
    }
    int rc = ts_map_file(path, &st->map);
    if (rc != 0) {
        ts_st_close(st);
        return rc;
    }
    st->bytes = st->map.bytes;
    st->size = st->map.size;
    return finish_open(st, out);
}

int ts_st_open_memory(const void *buf, size_t len, ts_safetensors **out)
{
    *out = NULL;
    ts_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup("<memory>"))) {
        free(st);
        return ts_fail(TS_ERR_NOMEM, "out of memory opening a buffer");
    }
    st->bytes = buf;
    st->size = len;
    return finish_open(st, out);
}

void ts_st_evict(const ts_safetensors *st)
{
    if (st)
        ts_evict_file(&st->map);
}

void ts_st_close(ts_safetensors *st)
{
    if (!st)
        return;
    ts_unmap_file(&st->map);
    for (size_t i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->tensors);
    free(st->names);
    ts_name_index_free(&st->index);
    free(st->path);
    free(st);
}

size_t ts_st_count(const ts_safetensors *st) { return st->count; }

const ts_st_tensor *ts_st_at(const ts_safetensors *st, size_t i) { return i < st->count ? &st->tensors[i] : NULL; }

const ts_st_tensor *ts_st_find(const ts_safetensors *st, const char *name) { return lookup(st, "", name); }

const ts_st_tensor *ts_st_find_prefixed(const ts_safetensors *st, const char *prefix, const char *name)
{
    return lookup(st, prefix ? prefix : "", name);
}

const void *ts_st_data(const ts_safetensors *st, const ts_st_tensor *t) { return st->data + t->begin; }

uint64_t ts_st_numel(const ts_st_tensor *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->shape[d];
    return n;
}

const char *ts_st_metadata(const ts_safetensors *st, const char *key)
{
    for (size_t i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

const char *ts_st_metadata_key(const ts_safetensors *st, size_t i)
{
    return i < st->meta_count ? st->meta_keys[i] : NULL;
}

const char *ts_st_path(const ts_safetensors *st) { return st->path; }

uint64_t ts_st_file_size(const ts_safetensors *st) { return st->size; }

int ts_st_weight(const ts_safetensors *st, const char *prefix, const char *name, ts_weight *out)
{
    prefix = prefix ? prefix : "";
    const ts_st_tensor *t = lookup(st, prefix, name);
    if (!t)
        return ts_fail(TS_ERR_MODEL, "%s: missing tensor \"%s%s\"", st->path, prefix, name);
    return ts_weight_make(st->path, t->name, t->dtype, t->ndim, t->shape, ts_st_data(st, t), out);
}

int ts_st_weight_shaped(const ts_safetensors *st, const char *prefix, const char *name, int ndim,
                        const int64_t *shape, ts_weight *out)
{
    int rc = ts_st_weight(st, prefix, name, out);
    return rc ? rc : ts_weight_expect_shape(out, st->path, prefix, name, ndim, shape);
}
