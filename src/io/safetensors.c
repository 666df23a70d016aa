/* safetensors reader: mmap, validated header, hashed name lookup; see safetensors.h. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

struct ts_safetensors {
    char *path;
    const unsigned char *bytes; /* the whole file */
    uint64_t size;
    int mapped;
    const unsigned char *data; /* first byte after the header */
    uint64_t data_size;
    ts_st_tensor *tensors;
    size_t count;
    char *names; /* one pool for every name */
    int32_t *slots; /* hash table of tensor indices, -1 = empty */
    size_t slot_mask;
    char **meta_keys, **meta_values;
    size_t meta_count;
};

static uint64_t hash_name(const char *a, size_t alen, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ (unsigned char)a[i]) * 1099511628211ull;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

/* True when prefix+name equals the stored full name. */
static int name_matches(const char *full, const char *prefix, size_t plen, const char *name)
{
    return strncmp(full, prefix, plen) == 0 && strcmp(full + plen, name) == 0;
}

static const ts_st_tensor *lookup(const ts_safetensors *st, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix);
    for (size_t s = hash_name(prefix, plen, name) & st->slot_mask;; s = (s + 1) & st->slot_mask) {
        int32_t i = st->slots[s];
        if (i < 0)
            return NULL;
        if (name_matches(st->tensors[i].name, prefix, plen, name))
            return &st->tensors[i];
    }
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

static int build_index(ts_safetensors *st)
{
    size_t slots = 16;
    while (slots < st->count * 2)
        slots <<= 1;
    st->slots = malloc(slots * sizeof *st->slots);
    if (!st->slots)
        return ts_fail(TS_ERR_NOMEM, "out of memory indexing %zu tensors", st->count);
    memset(st->slots, 0xff, slots * sizeof *st->slots);
    st->slot_mask = slots - 1;
    for (size_t i = 0; i < st->count; i++) {
        const char *name = st->tensors[i].name;
        size_t s = hash_name("", 0, name) & st->slot_mask;
        for (; st->slots[s] >= 0; s = (s + 1) & st->slot_mask)
            if (strcmp(st->tensors[st->slots[s]].name, name) == 0)
                return ts_fail(TS_ERR_FORMAT, "tensor \"%s\" appears twice in the header", name);
        st->slots[s] = (int32_t)i;
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
    return rc ? rc : build_index(st);
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        ts_st_close(st);
        return ts_fail(TS_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        ts_st_close(st);
        return ts_fail(TS_ERR_IO, "%s: not a regular file", path);
    }
    st->size = (uint64_t)sb.st_size;
    if (st->size > 0) {
        void *p = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            close(fd);
            ts_st_close(st);
            return ts_fail(TS_ERR_IO, "%s: cannot map: %s", path, strerror(err));
        }
        st->bytes = p;
        st->mapped = 1;
    }
    close(fd);
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
    if (st && st->mapped)
        madvise((void *)st->bytes, st->size, MADV_DONTNEED);
}

void ts_st_close(ts_safetensors *st)
{
    if (!st)
        return;
    if (st->mapped)
        munmap((void *)st->bytes, st->size);
    for (size_t i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->tensors);
    free(st->names);
    free(st->slots);
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
    if (t->ndim > TS_MAX_DIMS)
        return ts_fail(TS_ERR_MODEL, "%s: tensor \"%s\" has %d dimensions, at most %d expected", st->path, t->name,
                       t->ndim, TS_MAX_DIMS);
    if (!ts_dtype_is_float(t->dtype))
        return ts_fail(TS_ERR_MODEL, "%s: tensor \"%s\" has dtype %s, a floating type expected", st->path, t->name,
                       ts_dtype_name(t->dtype));
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
        out->shape[d] = t->shape[d];
    out->data = ts_st_data(st, t);
    return 0;
}

int ts_st_weight_shaped(const ts_safetensors *st, const char *prefix, const char *name, int ndim,
                        const int64_t *shape, ts_weight *out)
{
    int rc = ts_st_weight(st, prefix, name, out);
    if (rc != 0)
        return rc;
    int ok = out->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] < 0 || shape[d] == out->shape[d];
    if (!ok) {
        char got[96], want[96];
        return ts_fail(TS_ERR_MODEL, "%s: tensor \"%s%s\" has shape %s, expected %s", st->path, prefix ? prefix : "",
                       name, ts_shape_str(got, sizeof got, out->ndim, out->shape), ts_shape_str(want, sizeof want, ndim, shape));
    }
    return 0;
}
