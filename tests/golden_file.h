/*
 * Opens a file of a shared golden case ($TESSERA_SHARED/golden/<case>/<file>, or
 * ../shared when unset) for tests that reuse the cases' tiny models and data.
 */
#ifndef TS_TESTS_GOLDEN_FILE_H
#define TS_TESTS_GOLDEN_FILE_H

#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "io/safetensors.h"

/* NULL (message on stderr) when the file cannot be opened. */
static inline ts_safetensors *test_open_golden(const char *case_name, const char *file)
{
    const char *shared = getenv("TESSERA_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/%s/%s", shared ? shared : "../shared", case_name, file);
    ts_safetensors *st = NULL;
    if (ts_st_open(path, &st) != 0)
        fprintf(stderr, "%s\n", ts_error_message());
    return st;
}

#endif
