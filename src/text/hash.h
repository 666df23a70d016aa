/* FNV-1a over bytes: the string hash of the tokenizers' vocabulary tables, which are
 * built once and probed a few times per input byte, so a simple hash is enough.  The
 * step form lets the T5 Viterbi hash every prefix at a position in one pass. */
#ifndef TS_TEXT_HASH_H
#define TS_TEXT_HASH_H

#include <stddef.h>
#include <stdint.h>

#define TS_FNV1A_INIT 2166136261u

static inline uint32_t ts_fnv1a_step(uint32_t h, unsigned char byte)
{
    return (h ^ byte) * 16777619u;
}

static inline uint32_t ts_fnv1a(const char *s, size_t n)
{
    uint32_t h = TS_FNV1A_INIT;
    for (size_t i = 0; i < n; i++)
        h = ts_fnv1a_step(h, (unsigned char)s[i]);
    return h;
}

#endif
