/*
 * UTF-8 encoding and decoding, shared by the tokenizers (which work on code points)
 * and the image codecs (which carry the generation-parameters text).  Decoding is
 * strict: overlong forms, surrogates and code points past U+10FFFF are malformed.
 */
#ifndef TS_CORE_UTF8_H
#define TS_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length in bytes of the valid UTF-8 character at s (len bytes left) with its code
 * point in *cp, or 0 when the bytes there are not a valid character. */
int ts_utf8_char_len(const unsigned char *s, size_t len, int32_t *cp);
/* Decodes the character at s[*i] of an n-byte string and advances *i past it;
 * returns -1 (leaving *i) when it is malformed. */
int32_t ts_utf8_next(const unsigned char *s, size_t n, size_t *i);
/* Writes the UTF-8 form of c (at most 4 bytes) and returns its length. */
int ts_utf8_put(int32_t c, char *buf);

#endif
