/*
 * Name-pattern helpers for model loaders; see st_names.h.
 */
#include "io/st_names.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

int ts_st_weightf(const ts_safetensors *st, const char *prefix, ts_weight *out, int ndim, const int64_t *shape,
                  const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name)
        return ts_fail(TS_ERR_ARG, "tensor name pattern \"%s\" too long", fmt);
    if (ndim == 0)
        return ts_st_weight(st, prefix, name, out);
    return ts_st_weight_shaped(st, prefix, name, ndim, shape, out);
}

int ts_st_count_indexed(const ts_safetensors *st, const char *prefix, const char *fmt, int max)
{
    char name[256];
    int n = 0;
    for (; n <= max; n++) {
        snprintf(name, sizeof name, fmt, n);
        if (!ts_st_find_prefixed(st, prefix, name))
            break;
    }
    return n;
}
