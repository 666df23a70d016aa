/*
 * Code-point strings, UTF-8 conversion and the ICU calls behind normalization, case
 * mapping and categories (see unicode.h).  ICU works in UTF-16, so each service
 * converts through a temporary UChar buffer; prompts are short, so the copies cost
 * nothing that matters.
 */
#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/utf16.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "core/error.h"

int ts_u32_push(ts_u32 *s, int32_t c)
{
    return ts_u32_append(s, &c, 1);
}

int ts_u32_append(ts_u32 *s, const int32_t *c, int n)
{
    if (n <= 0)
        return TS_OK;
    if (s->n + n > s->cap) {
        int cap = s->cap ? s->cap : 16;
        while (cap < s->n + n)
            cap *= 2;
        int32_t *grown = realloc(s->c, (size_t)cap * sizeof *grown);
        if (!grown)
            return ts_fail(TS_ERR_NOMEM, "text: out of memory");
        s->c = grown;
        s->cap = cap;
    }
    memcpy(s->c + s->n, c, (size_t)n * sizeof *c);
    s->n += n;
    return TS_OK;
}

void ts_u32_free(ts_u32 *s)
{
    free(s->c);
    *s = (ts_u32){0};
}

int ts_u32_has(const ts_u32 *s, int32_t c)
{
    for (int i = 0; i < s->n; i++)
        if (s->c[i] == c)
            return 1;
    return 0;
}

int ts_utf8_decode(const char *s, size_t len, ts_u32 *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        int32_t c = 0xFFFD;
        int n = ts_utf8_char_len(p + i, len - i, &c);
        int rc = ts_u32_push(out, n ? c : 0xFFFD);
        if (rc < 0)
            return rc;
        i += n ? (size_t)n : 1;
    }
    return TS_OK;
}

char *ts_u32_to_utf8(const ts_u32 *s)
{
    char *out = malloc((size_t)s->n * 4 + 1);
    if (!out) {
        ts_fail(TS_ERR_NOMEM, "text: out of memory");
        return NULL;
    }
    size_t len = 0;
    for (int i = 0; i < s->n; i++)
        len += (size_t)ts_utf8_put(s->c[i], out + len);
    out[len] = 0;
    return out;
}

/* UTF-16 round trip for ICU: s -> UChar[], fn(src) -> UChar[], -> s. */
typedef int32_t (*u16_transform)(const UChar *src, int32_t n, UChar *dst, int32_t cap, UErrorCode *err);

static int u32_transform(ts_u32 *s, u16_transform fn, const char *what)
{
    UErrorCode err = U_ZERO_ERROR;
    int32_t n16 = 0, m = 0;
    u_strFromUTF32(NULL, 0, &n16, s->c, s->n, &err); /* preflight: reports overflow */
    err = U_ZERO_ERROR;
    UChar *src = malloc((size_t)(n16 + 1) * sizeof *src), *dst = NULL;
    if (src)
        u_strFromUTF32(src, n16 + 1, NULL, s->c, s->n, &err);
    /* NFC and case mapping grow text by at most 3x; retry with ICU's size if not */
    for (int32_t cap = n16 * 3 + 16; src && U_SUCCESS(err);) {
        free(dst);
        if (!(dst = malloc((size_t)cap * sizeof *dst)))
            break;
        m = fn(src, n16, dst, cap, &err);
        if (err != U_BUFFER_OVERFLOW_ERROR)
            break;
        err = U_ZERO_ERROR;
        cap = m + 1;
    }
    int rc = !src || !dst ? ts_fail(TS_ERR_NOMEM, "text: out of memory")
             : U_FAILURE(err) ? ts_fail(TS_ERR_ARG, "text: %s: %s", what, u_errorName(err))
                              : TS_OK;
    if (rc == TS_OK) { /* back to code points: at most one per UTF-16 unit */
        s->n = 0;
        for (int32_t i = 0; i < m && rc == TS_OK;) {
            UChar32 c;
            U16_NEXT(dst, i, m, c);
            rc = ts_u32_push(s, c);
        }
    }
    free(src);
    free(dst);
    return rc;
}

static int32_t icu_nfc(const UChar *src, int32_t n, UChar *dst, int32_t cap, UErrorCode *err)
{
    const UNormalizer2 *nfc = unorm2_getNFCInstance(err);
    return U_SUCCESS(*err) ? unorm2_normalize(nfc, src, n, dst, cap, err) : 0;
}

static int32_t icu_nfkc(const UChar *src, int32_t n, UChar *dst, int32_t cap, UErrorCode *err)
{
    const UNormalizer2 *nfkc = unorm2_getNFKCInstance(err);
    return U_SUCCESS(*err) ? unorm2_normalize(nfkc, src, n, dst, cap, err) : 0;
}

static int32_t icu_lower(const UChar *src, int32_t n, UChar *dst, int32_t cap, UErrorCode *err)
{
    return u_strToLower(dst, cap, src, n, "", err);
}

static int32_t icu_upper(const UChar *src, int32_t n, UChar *dst, int32_t cap, UErrorCode *err)
{
    return u_strToUpper(dst, cap, src, n, "", err);
}

int ts_u32_nfc(ts_u32 *s)
{
    return u32_transform(s, icu_nfc, "NFC");
}

int ts_u32_lower(ts_u32 *s)
{
    return u32_transform(s, icu_lower, "lowercase");
}

int ts_u32_upper(ts_u32 *s)
{
    return u32_transform(s, icu_upper, "uppercase");
}

int ts_nfkc_char(int32_t c, ts_u32 *out)
{
    ts_u32 one = {0};
    int rc = ts_u32_push(&one, c);
    if (rc == TS_OK)
        rc = u32_transform(&one, icu_nfkc, "NFKC");
    if (rc == TS_OK)
        rc = ts_u32_append(out, one.c, one.n);
    ts_u32_free(&one);
    return rc;
}

int ts_is_space(int32_t c)
{
    return u_isUWhiteSpace(c) || (c >= 0x1C && c <= 0x1F);
}

int ts_is_letter(int32_t c)
{
    return (U_GET_GC_MASK(c) & U_GC_L_MASK) != 0;
}

int ts_is_number(int32_t c)
{
    return (U_GET_GC_MASK(c) & U_GC_N_MASK) != 0;
}
