/*
 * Name-pattern helpers for model loaders; see st_names.h.
 */
#include "io/st_names.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

#define NAME_MAX_LEN 256

static int format_name(char *name, const char *fmt, va_list ap)
{
    int n = vsnprintf(name, NAME_MAX_LEN, fmt, ap);
    if (n < 0 || n >= NAME_MAX_LEN)
        return ts_fail(TS_ERR_ARG, "tensor name pattern \"%s\" too long", fmt);
    return 0;
}

int ts_weights_getf(ts_weights *wf, const char *prefix, ts_weight *out, int ndim, const int64_t *shape,
                    const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int rc = format_name(name, fmt, ap);
    va_end(ap);
    if (rc)
        return rc;
    if (ndim == 0)
        return ts_weights_get(wf, prefix, name, out);
    return ts_weights_get_shaped(wf, prefix, name, ndim, shape, out);
}

int ts_scope_weight(const ts_st_scope *s, ts_weight *out, const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int rc = format_name(name, fmt, ap);
    va_end(ap);
    return rc ? rc : ts_weights_get(s->wf, s->prefix, name, out);
}

int ts_scope_has(const ts_st_scope *s, const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int rc = format_name(name, fmt, ap);
    va_end(ap);
    return rc == 0 && ts_weights_find(s->wf, s->prefix, name) != NULL;
}

int ts_weights_count_indexed(const ts_weights *wf, const char *prefix, const char *fmt, int max)
{
    char name[256];
    int n = 0;
    for (; n <= max; n++) {
        snprintf(name, sizeof name, fmt, n);
        if (!ts_weights_find(wf, prefix, name))
            break;
    }
    return n;
}
