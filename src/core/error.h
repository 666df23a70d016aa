/*
 * One error mechanism for the whole engine.
 *
 * A function that can fail returns a negative ts_status and leaves a one-line,
 * human-readable message in a thread-local buffer; callers either pass the status
 * up unchanged or print ts_error_message() and stop.  Messages name the file,
 * tensor or flag at fault, because the user has to act on them.
 */
#ifndef TS_CORE_ERROR_H
#define TS_CORE_ERROR_H

typedef enum {
    TS_OK = 0,
    TS_ERR_IO = -1,          /* open/read/write/mmap failed */
    TS_ERR_FORMAT = -2,      /* the bytes are not a valid file of the expected kind */
    TS_ERR_NOMEM = -3,       /* an allocation or an arena ran out */
    TS_ERR_ARG = -4,         /* a caller or user gave a bad value */
    TS_ERR_UNSUPPORTED = -5, /* valid, but not something Tessera handles (yet) */
    TS_ERR_LIMIT = -6,       /* a size bound was exceeded (absurd dimensions, huge header) */
    TS_ERR_MODEL = -7,       /* a checkpoint lacks a tensor, or one has the wrong shape */
    TS_ERR_CANCELLED = -8,   /* the caller asked to stop (a progress callback, SIGINT) */
} ts_status;

/* Records the message and returns code, so callers can write `return ts_fail(...)`. */
int ts_fail(ts_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with more context ("model.safetensors: " + message). */
int ts_fail_context(ts_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *ts_error_message(void);
void ts_clear_error(void);

#endif
