/*
 * Helpers for golden families whose cases are a JSON list (cases.json) rather than
 * tensors in io.safetensors: the tokenizers, whose inputs are strings and whose
 * outputs are id lists.
 */
#ifndef TS_GOLDEN_JSON_CASES_H
#define TS_GOLDEN_JSON_CASES_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "golden/golden.h"

/* The parsed cases.json of the case folder (an array), or NULL with the error set. */
cJSON *golden_read_cases(golden_case *gc);

/* Exact comparison of got[0..n_got) with the JSON id list `want`, lengths included. */
int golden_compare_json_i32(golden_case *gc, const char *label, const int32_t *got, int n_got, const cJSON *want);
/* Exact comparison of two int32 sequences (ids, code points), lengths included. */
int golden_compare_i32(golden_case *gc, const char *label, const int32_t *got, int n_got, const int32_t *want,
                       int n_want);

/* Counts a comparison that could not be made, printing the current error message. */
void golden_fail_line(golden_case *gc, const char *label);

#endif
