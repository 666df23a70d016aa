/* Name lookup for container readers (FNV-1a over prefix then name); see name_index.h. */
#include "io/name_index.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static uint64_t hash_name(const char *a, size_t alen, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ (unsigned char)a[i]) * 1099511628211ull;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

static const char *name_of(const ts_name_index *ix, size_t i)
{
    const char *name;
    memcpy(&name, ix->items + i * ix->stride + ix->name_offset, sizeof name);
    return name;
}

int ts_name_index_build(ts_name_index *ix, const void *items, size_t count, size_t stride, size_t name_offset)
{
    size_t slots = 16;
    while (slots < count * 2)
        slots <<= 1;
    ix->items = items;
    ix->stride = stride;
    ix->name_offset = name_offset;
    ix->slots = malloc(slots * sizeof *ix->slots);
    if (!ix->slots)
        return ts_fail(TS_ERR_NOMEM, "out of memory indexing %zu tensors", count);
    memset(ix->slots, 0xff, slots * sizeof *ix->slots);
    ix->mask = slots - 1;
    for (size_t i = 0; i < count; i++) {
        const char *name = name_of(ix, i);
        size_t s = hash_name("", 0, name) & ix->mask;
        for (; ix->slots[s] >= 0; s = (s + 1) & ix->mask)
            if (strcmp(name_of(ix, (size_t)ix->slots[s]), name) == 0)
                return ts_fail(TS_ERR_FORMAT, "tensor \"%s\" appears twice", name);
        ix->slots[s] = (int32_t)i;
    }
    return 0;
}

const void *ts_name_index_find(const ts_name_index *ix, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix);
    for (size_t s = hash_name(prefix, plen, name) & ix->mask;; s = (s + 1) & ix->mask) {
        int32_t i = ix->slots[s];
        if (i < 0)
            return NULL;
        const char *full = name_of(ix, (size_t)i);
        if (strncmp(full, prefix, plen) == 0 && strcmp(full + plen, name) == 0)
            return ix->items + (size_t)i * ix->stride;
    }
}

void ts_name_index_free(ts_name_index *ix)
{
    free(ix->slots);
    ix->slots = NULL;
}
