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
#include "io/weights.h"

static inline const char *test_golden_path(const char *case_name, const char *file, char *path, size_t size)
{
    const char *shared = getenv("TESSERA_SHARED");
    snprintf(path, size, "%s/golden/%s/%s", shared ? shared : "../shared", case_name, file);
    return path;
}

static inline void test_report_open(int rc)
{
    if (rc != 0)
        fprintf(stderr, "%s\n", ts_error_message());
}

/* NULL (message on stderr) when the file cannot be opened. */
static inline ts_safetensors *test_open_golden(const char *case_name, const char *file)
{
    char path[4096];
    ts_safetensors *st = NULL;
    test_report_open(ts_st_open(test_golden_path(case_name, file, path, sizeof path), &st));
    return st;
}

/* The same as a weight file, for the model loaders. */
static inline ts_weights *test_open_golden_weights(const char *case_name, const char *file)
{
    char path[4096];
    ts_weights *wf = NULL;
    test_report_open(ts_weights_open(test_golden_path(case_name, file, path, sizeof path), &wf));
    return wf;
}

#endif
