/* Thread-local last-error message; see error.h. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[1024];

int ts_fail(ts_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return code;
}

int ts_fail_context(ts_status code, const char *fmt, ...)
{
    char previous[sizeof last_message];
    memcpy(previous, last_message, sizeof previous);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof last_message)
        snprintf(last_message + n, sizeof last_message - (size_t)n, "%s", previous);
    return code;
}

const char *ts_error_message(void)
{
    return last_message[0] ? last_message : "unknown error";
}

void ts_clear_error(void)
{
    last_message[0] = '\0';
}
