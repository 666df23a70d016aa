/*
 * ftfy.fix_text and html.unescape, as far as the CLIP tokenizer needs them.
 *
 * OpenAI's CLIP tokenizer runs every prompt through ftfy.fix_text and then
 * html.unescape twice; reproducing its token ids therefore means reproducing what
 * those Python functions do to a prompt.  ftfy works segment by segment (a segment
 * ends after '\n'; once a segment contains '<', entities are left alone from then
 * on) and repeats its fixes until the text stops changing:
 *   unescape entities (ftfy's stricter &name; / &#n; form), fix mojibake, C1 controls
 *   -> Windows-1252, Latin ligatures, fullwidth -> halfwidth, curly quotes, line
 *   breaks, terminal escapes, control characters, NFC.
 * Mojibake is repaired the way ftfy's decode_inconsistent_utf8 does, locally: a run
 * of characters that are the Windows-1252/Latin-1 reading of the bytes of one valid
 * multi-byte UTF-8 character is replaced by that character.  ftfy's statistical
 * "badness" gate and its repairs of other single-byte codepages are not reproduced:
 * prompts are typed, not decoded from unknown files.
 */
#include "text/fix_text.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/html_entities.h"

/* Windows-1252 bytes 0x80..0x9F, undefined ones kept as the C1 code point
 * (Python's html._invalid_charrefs and ftfy's "sloppy-windows-1252"). */
static const int32_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* The byte a character stands for in sloppy Windows-1252, or -1. */
static int cp1252_byte(int32_t c)
{
    if (c < 0x100)
        return c;
    for (int i = 0; i < 32; i++)
        if (cp1252_high[i] == c)
            return 0x80 + i;
    return -1;
}

/* ---- HTML character references ---------------------------------------------- */

static int entity_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const ts_html_entity *)elem)->name);
}

/* The entity named by code points c[0..n), or NULL (names are ASCII). */
static const ts_html_entity *entity_find(const int32_t *c, int n)
{
    char name[40];
    if (n <= 0 || n >= (int)sizeof name)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (c[i] <= 0 || c[i] >= 0x80)
            return NULL;
        name[i] = (char)c[i];
    }
    name[n] = 0;
    return bsearch(name, ts_html_entities, (size_t)ts_html_entity_count, sizeof *ts_html_entities, entity_cmp);
}

static int push_entity(ts_u32 *out, const ts_html_entity *e)
{
    return ts_u32_append(out, e->cp, e->cp[1] ? 2 : 1);
}

static int is_digit(int32_t c, int hex)
{
    return (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
}

/* Characters that end an entity name in html.unescape's pattern [^\t\n\f <&#;]{1,32}. */
static int is_name_stop(int32_t c)
{
    return c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';';
}

/* html.unescape's numeric rule: the code point a reference &#num; stands for, or
 * -1 when it stands for nothing (Python drops non-characters and most controls). */
static int32_t numeric_ref(long long num)
{
    if (num == 0)
        return 0xFFFD;
    if (num == 0x0D)
        return 0x0D;
    if (num >= 0x80 && num <= 0x9F)
        return cp1252_high[num - 0x80];
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
        return 0xFFFD;
    if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) || num == 0x7F ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return -1;
    return (int32_t)num;
}

/* Parses digits at c[i..n) in base 10 or 16 (saturating); returns the end index. */
static int parse_number(const int32_t *c, int i, int n, int hex, long long *num)
{
    *num = 0;
    for (; i < n && is_digit(c[i], hex); i++) {
        int d = c[i] <= '9' ? c[i] - '0' : (c[i] | 0x20) - 'a' + 10;
        if (*num <= 0x7FFFFFFF)
            *num = *num * (hex ? 16 : 10) + d;
    }
    return i;
}

/* One reference at c[amp] == '&' as html.unescape reads it.  Appends the result and
 * returns the index after the consumed text, or -1 (NOMEM) on failure. */
static int unescape_one(const int32_t *c, int n, int amp, ts_u32 *out)
{
    int i = amp + 1;
    if (i < n && c[i] == '#') {
        int hex = i + 1 < n && (c[i + 1] == 'x' || c[i + 1] == 'X') && i + 2 < n && is_digit(c[i + 2], 1);
        int start = i + 1 + hex;
        if (!hex && !(start < n && is_digit(c[start], 0)))
            return ts_u32_push(out, '&') < 0 ? -1 : amp + 1;
        long long num;
        int end = parse_number(c, start, n, hex, &num);
        if (end < n && c[end] == ';')
            end++;
        int32_t cp = numeric_ref(num);
        if (cp >= 0 && ts_u32_push(out, cp) < 0)
            return -1;
        return end;
    }
    int end = i;
    while (end < n && end - i < 32 && !is_name_stop(c[end]))
        end++;
    if (end == i)
        return ts_u32_push(out, '&') < 0 ? -1 : amp + 1;
    if (end < n && c[end] == ';')
        end++;
    const ts_html_entity *e = entity_find(c + i, end - i);
    if (e)
        return push_entity(out, e) < 0 ? -1 : end;
    for (int x = end - i - 1; x >= 2; x--) /* longest known prefix (legacy "&amp" forms) */
        if ((e = entity_find(c + i, x)))
            return push_entity(out, e) < 0 || ts_u32_append(out, c + i + x, end - i - x) < 0 ? -1 : end;
    return ts_u32_push(out, '&') < 0 || ts_u32_append(out, c + i, end - i) < 0 ? -1 : end;
}

int ts_html_unescape(ts_u32 *s)
{
    ts_u32 out = {0};
    for (int i = 0; i < s->n;) {
        int next = s->c[i] == '&' ? unescape_one(s->c, s->n, i, &out) : ts_u32_push(&out, s->c[i]) < 0 ? -1 : i + 1;
        if (next < 0) {
            ts_u32_free(&out);
            return TS_ERR_NOMEM;
        }
        i = next;
    }
    ts_u32_free(s);
    *s = out;
    return TS_OK;
}

static int same(const ts_u32 *a, const ts_u32 *b)
{
    return a->n == b->n && (a->n == 0 || !memcmp(a->c, b->c, (size_t)a->n * sizeof *a->c));
}

static int is_ascii_alnum(int32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ftfy's entity pattern "&#?[0-9A-Za-z]{1,24};" at c[i]: its length, else 0. */
static int ftfy_ref_len(const int32_t *c, int n, int i)
{
    if (c[i] != '&')
        return 0;
    int j = i + 1 + (i + 1 < n && c[i + 1] == '#'), k = j;
    while (k < n && k - j < 24 && is_ascii_alnum(c[k]))
        k++;
    return k > j && k < n && c[k] == ';' ? k + 1 - i : 0;
}

/* ftfy's upper-case aliases: "&EACUTE;" stands for upper("é") when "&eacute;" is an
 * entity and html.unescape leaves "&EACUTE;" alone.  Appends the value and returns 1,
 * returns 0 when ref is no such alias, or a negative status. */
static int upper_alias(const ts_u32 *ref, ts_u32 *out)
{
    ts_u32 lower = {0}, upper = {0}, probe = {0}, value = {0};
    int rc = ts_u32_append(&lower, ref->c, ref->n);
    if (rc == TS_OK)
        rc = ts_u32_lower(&lower);
    const ts_html_entity *e = rc == TS_OK ? entity_find(lower.c + 1, lower.n - 1) : NULL;
    if (e)
        rc = ts_u32_append(&upper, lower.c, lower.n);
    if (e && rc == TS_OK)
        rc = ts_u32_upper(&upper);
    int alias = e && rc == TS_OK && same(&upper, ref);
    if (alias)
        rc = ts_u32_append(&probe, ref->c, ref->n);
    if (alias && rc == TS_OK)
        rc = ts_html_unescape(&probe);
    alias = alias && rc == TS_OK && same(&probe, ref);
    if (alias)
        rc = push_entity(&value, e);
    if (alias && rc == TS_OK)
        rc = ts_u32_upper(&value);
    if (alias && rc == TS_OK)
        rc = ts_u32_append(out, value.c, value.n);
    ts_u32_free(&lower);
    ts_u32_free(&upper);
    ts_u32_free(&probe);
    ts_u32_free(&value);
    return rc < 0 ? rc : alias;
}

/* ftfy's unescape_html: a known "&name;" is replaced (or its all-caps alias); a
 * numeric reference only when html.unescape resolves it without leftovers. */
static int ftfy_unescape(ts_u32 *s)
{
    ts_u32 out = {0};
    int rc = TS_OK;
    for (int i = 0; i < s->n && rc == TS_OK;) {
        int len = ftfy_ref_len(s->c, s->n, i);
        if (!len) {
            rc = ts_u32_push(&out, s->c[i++]);
            continue;
        }
        const ts_html_entity *e = s->c[i + 1] == '#' ? NULL : entity_find(s->c + i + 1, len - 1);
        ts_u32 ref = {0};
        rc = ts_u32_append(&ref, s->c + i, len);
        if (rc == TS_OK && s->c[i + 1] == '#') {
            rc = ts_html_unescape(&ref);
            if (rc == TS_OK)
                rc = ts_u32_has(&ref, ';') ? ts_u32_append(&out, s->c + i, len) : ts_u32_append(&out, ref.c, ref.n);
        } else if (rc == TS_OK && e)
            rc = push_entity(&out, e);
        else if (rc == TS_OK) {
            int alias = upper_alias(&ref, &out);
            rc = alias < 0 ? alias : alias ? TS_OK : ts_u32_append(&out, s->c + i, len);
        }
        ts_u32_free(&ref);
        i += len;
    }
    if (rc == TS_OK) {
        ts_u32_free(s);
        *s = out;
    } else
        ts_u32_free(&out);
    return rc;
}

/* ---- ftfy's character fixes ----------------------------------------------------- */

/* decode_inconsistent_utf8: c[i..] read as Windows-1252 bytes that form one valid
 * multi-byte UTF-8 character -> its length in code points, *cp the character. */
static int mojibake_at(const int32_t *c, int n, int i, int32_t *cp)
{
    unsigned char bytes[4];
    int lead = cp1252_byte(c[i]);
    int len = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    if (len == 0 || i + len > n)
        return 0;
    for (int k = 0; k < len; k++) {
        int b = cp1252_byte(c[i + k]);
        if (b < 0)
            return 0;
        bytes[k] = (unsigned char)b;
    }
    return ts_utf8_char_len(bytes, (size_t)len, cp) == len ? len : 0;
}

static const struct {
    int32_t from;
    int32_t to[3]; /* 0-terminated when shorter */
} ligatures[] = {
    {0x0132, {'I', 'J'}},     {0x0133, {'i', 'j'}},     {0x0149, {0x02BC, 'n'}},  {0x01C4, {'D', 0x017D}},
    {0x01C5, {'D', 0x017E}},  {0x01C6, {'d', 0x017E}},  {0x01C7, {'L', 'J'}},     {0x01C8, {'L', 'j'}},
    {0x01C9, {'l', 'j'}},     {0x01CA, {'N', 'J'}},     {0x01CB, {'N', 'j'}},     {0x01CC, {'n', 'j'}},
    {0x01F1, {'D', 'Z'}},     {0x01F2, {'D', 'z'}},     {0x01F3, {'d', 'z'}},     {0xFB00, {'f', 'f'}},
    {0xFB01, {'f', 'i'}},     {0xFB02, {'f', 'l'}},     {0xFB03, {'f', 'f', 'i'}}, {0xFB04, {'f', 'f', 'l'}},
    {0xFB05, {0x017F, 't'}},  {0xFB06, {'s', 't'}},
};

/* ftfy's remove_control_chars set: C0 controls other than \t \n \f \r, DEL, the
 * deprecated Arabic format controls, the BOM and the interlinear annotation marks. */
static int is_removed_control(int32_t c)
{
    return (c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* A terminal escape ESC '[' [0-9;]* [A-Za-z] at c[i]: its length, else 0. */
static int terminal_escape_at(const int32_t *c, int n, int i)
{
    if (c[i] != 0x1B || i + 1 >= n || c[i + 1] != '[')
        return 0;
    int k = i + 2;
    while (k < n && ((c[k] >= '0' && c[k] <= '9') || c[k] == ';'))
        k++;
    return k < n && c[k] < 0x80 && ((c[k] | 0x20) >= 'a' && (c[k] | 0x20) <= 'z') ? k + 1 - i : 0;
}

/* One pass of the per-character fixers, in ftfy's order; each sees the previous's output. */
static int fix_chars(ts_u32 *s)
{
    ts_u32 a = {0}, b = {0};
    int rc = TS_OK;
    /* mojibake, then C1 controls -> Windows-1252 */
    for (int i = 0; i < s->n && rc == TS_OK;) {
        int32_t cp;
        int len = mojibake_at(s->c, s->n, i, &cp);
        if (!len) {
            cp = s->c[i] >= 0x80 && s->c[i] <= 0x9F ? cp1252_high[s->c[i] - 0x80] : s->c[i];
            len = 1;
        }
        rc = ts_u32_push(&a, cp);
        i += len;
    }
    /* ligatures, fullwidth, quotes, line breaks */
    for (int i = 0; i < a.n && rc == TS_OK; i++) {
        int32_t c = a.c[i];
        size_t l = 0;
        while (l < sizeof ligatures / sizeof *ligatures && ligatures[l].from != c)
            l++;
        if (l < sizeof ligatures / sizeof *ligatures)
            rc = ts_u32_append(&b, ligatures[l].to, ligatures[l].to[2] ? 3 : 2);
        else if (c >= 0xFF01 && c <= 0xFFEF)
            rc = ts_nfkc_char(c, &b);
        else if (c == 0x3000)
            rc = ts_u32_push(&b, ' ');
        else if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
            rc = ts_u32_push(&b, '\'');
        else if (c >= 0x201C && c <= 0x201F)
            rc = ts_u32_push(&b, '"');
        else if (c == '\r' && i + 1 < a.n && a.c[i + 1] == '\n')
            continue; /* the '\n' follows */
        else if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85)
            rc = ts_u32_push(&b, '\n');
        else
            rc = ts_u32_push(&b, c);
    }
    /* terminal escapes, control characters */
    a.n = 0;
    for (int i = 0; i < b.n && rc == TS_OK;) {
        int esc = terminal_escape_at(b.c, b.n, i);
        if (esc)
            i += esc;
        else if (is_removed_control(b.c[i]))
            i++;
        else
            rc = ts_u32_push(&a, b.c[i++]);
    }
    if (rc == TS_OK)
        rc = ts_u32_nfc(&a);
    ts_u32_free(&b);
    if (rc == TS_OK) {
        ts_u32_free(s);
        *s = a;
    } else
        ts_u32_free(&a);
    return rc;
}

/* ftfy's fix_and_explain on one segment: all fixes until a fixed point. */
static int fix_segment(ts_u32 *seg, int unescape)
{
    for (int round = 0; round < 16; round++) {
        ts_u32 before = {0};
        int rc = ts_u32_append(&before, seg->c, seg->n);
        if (rc == TS_OK && unescape)
            rc = ftfy_unescape(seg);
        if (rc == TS_OK)
            rc = fix_chars(seg);
        int done = rc != TS_OK || same(&before, seg);
        ts_u32_free(&before);
        if (done)
            return rc;
    }
    return TS_OK;
}

int ts_fix_text(ts_u32 *s)
{
    ts_u32 out = {0};
    int unescape = 1, rc = TS_OK;
    for (int pos = 0; pos < s->n && rc == TS_OK;) {
        int end = pos;
        while (end < s->n && s->c[end] != '\n')
            end++;
        end += end < s->n; /* the segment keeps its '\n' */
        ts_u32 seg = {0};
        rc = ts_u32_append(&seg, s->c + pos, end - pos);
        for (int i = pos; i < end; i++)
            unescape &= s->c[i] != '<'; /* ftfy: once a segment has '<', entities stay */
        if (rc == TS_OK)
            rc = fix_segment(&seg, unescape);
        if (rc == TS_OK)
            rc = ts_u32_append(&out, seg.c, seg.n);
        ts_u32_free(&seg);
        pos = end;
    }
    if (rc == TS_OK) {
        ts_u32_free(s);
        *s = out;
    } else
        ts_u32_free(&out);
    return rc;
}
