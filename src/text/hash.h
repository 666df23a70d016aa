/* FNV-1a over bytes: the string hash of the tokenizers' vocabulary tables, which are
 * built once and probed a few times per input byte, so a simple hash is enough. */
#ifndef TS_TEXT_HASH_H
#define TS_TEXT_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t ts_fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

#endif
