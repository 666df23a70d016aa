/*
 * The generation-parameters text ("infotext") in AUTOMATIC1111's layout; see
 * image.h.  Tools that read PNG metadata (the web UI's PNG Info tab, image
 * browsers, civitai) parse this exact shape: prompt lines, an optional
 * "Negative prompt: " line, then one line of "Key: value" pairs joined by ", " in
 * a fixed key order.  Values that would break that line (holding ',', ':' or a
 * newline) are written as JSON strings, which is how the web UI escapes them.
 * Numbers are printed in their shortest exact form (7, 7.5, 0.35).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/image.h"

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} text_buf;

static void buf_append(text_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_puts(text_buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

/* Appends s as a JSON string literal with non-ASCII kept as is. */
static void buf_json_string(text_buf *b, const char *s)
{
    buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        switch (c) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\b': buf_puts(b, "\\b"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                buf_puts(b, esc);
            } else {
                buf_append(b, (const char *)&c, 1);
            }
        }
    }
    buf_puts(b, "\"");
}

/* Appends ", Key: value" (no comma before the first pair). */
static void buf_pair(text_buf *b, int *first, const char *key, const char *value)
{
    if (!*first)
        buf_puts(b, ", ");
    *first = 0;
    buf_puts(b, key);
    buf_puts(b, ": ");
    if (strpbrk(value, ",:\n"))
        buf_json_string(b, value);
    else
        buf_puts(b, value);
}

/* The shortest %g form that reads back as the same double. */
static void format_number(char *dst, size_t size, double v)
{
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(dst, size, "%.*g", precision, v);
        if (strtod(dst, NULL) == v)
            return;
    }
}

char *ts_format_infotext(const ts_infotext *info)
{
    text_buf b = {0};
    char num[64];
    int first = 1;
    buf_puts(&b, info->prompt ? info->prompt : "");
    if (info->negative_prompt && info->negative_prompt[0]) {
        buf_puts(&b, "\nNegative prompt: ");
        buf_puts(&b, info->negative_prompt);
    }
    buf_puts(&b, "\n");
    if (info->steps > 0) {
        snprintf(num, sizeof num, "%d", info->steps);
        buf_pair(&b, &first, "Steps", num);
    }
    if (info->sampler)
        buf_pair(&b, &first, "Sampler", info->sampler);
    if (info->scheduler)
        buf_pair(&b, &first, "Schedule type", info->scheduler);
    if (info->cfg_scale > 0) {
        format_number(num, sizeof num, info->cfg_scale);
        buf_pair(&b, &first, "CFG scale", num);
    }
    if (info->has_seed) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)info->seed);
        buf_pair(&b, &first, "Seed", num);
    }
    if (info->width > 0 && info->height > 0) {
        snprintf(num, sizeof num, "%dx%d", info->width, info->height);
        buf_pair(&b, &first, "Size", num);
    }
    if (info->model)
        buf_pair(&b, &first, "Model", info->model);
    if (info->denoising_strength > 0) {
        format_number(num, sizeof num, info->denoising_strength);
        buf_pair(&b, &first, "Denoising strength", num);
    }
    for (int i = 0; i < info->extra_count; i++)
        if (info->extra[i].key && info->extra[i].value)
            buf_pair(&b, &first, info->extra[i].key, info->extra[i].value);
    if (b.failed) {
        free(b.s);
        ts_fail(TS_ERR_NOMEM, "out of memory formatting the parameters text");
        return NULL;
    }
    /* The web UI strips the whole text, so an empty prompt leaves no blank first line. */
    size_t start = 0;
    while (start < b.len && isspace((unsigned char)b.s[start]))
        start++;
    while (b.len > start && isspace((unsigned char)b.s[b.len - 1]))
        b.len--;
    memmove(b.s, b.s + start, b.len - start);
    b.s[b.len - start] = '\0';
    return b.s;
}
