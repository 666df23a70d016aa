/*
 * Code-point strings and the few Unicode services the tokenizers need.
 *
 * The CLIP tokenizer reproduces Python string operations (ftfy, html.unescape,
 * str.lower, a \p{L}/\p{N} regex), which are defined on code points, so its text is
 * processed as an array of code points rather than as UTF-8 bytes.  Normalization,
 * case mapping and character categories come from ICU (Debian libicu), never from
 * hand-made tables, so they follow one maintained Unicode version.
 */
#ifndef TS_TEXT_UNICODE_H
#define TS_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"

typedef struct {
    int32_t *c;
    int n, cap;
} ts_u32;

int ts_u32_push(ts_u32 *s, int32_t c);
int ts_u32_append(ts_u32 *s, const int32_t *c, int n);
void ts_u32_free(ts_u32 *s);
int ts_u32_has(const ts_u32 *s, int32_t c);

/* Decodes UTF-8 (len bytes) and appends to out; a byte that does not start a valid,
 * shortest-form character becomes U+FFFD and consumes that one byte. */
int ts_utf8_decode(const char *s, size_t len, ts_u32 *out);
/* A malloc'd NUL-terminated UTF-8 copy of s. */
char *ts_u32_to_utf8(const ts_u32 *s);

/* In place: Unicode NFC; full lower/upper case (root locale, as Python's str.lower()). */
int ts_u32_nfc(ts_u32 *s);
int ts_u32_lower(ts_u32 *s);
int ts_u32_upper(ts_u32 *s);
/* Appends NFKC(c) to out. */
int ts_nfkc_char(int32_t c, ts_u32 *out);

/* Python's character classes: \s as str.isspace() (White_Space plus U+001C..U+001F;
 * the `regex` module's \s lacks those four, which ftfy removes before CLIP splits),
 * \p{L} (categories L*), \p{N} (N*). */
int ts_is_space(int32_t c);
int ts_is_letter(int32_t c);
int ts_is_number(int32_t c);

#endif
