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

/* The integers of a JSON array, malloc'd; *n their count.  NULL with the error set
 * when the item is not an array of numbers. */
int64_t *golden_json_ids(const cJSON *arr, int *n);

/* Compares got[0..n_got) with the JSON id list `want` exactly (lengths included). */
int golden_compare_json_ids(golden_case *gc, const char *label, const int64_t *got, int n_got, const cJSON *want);

#endif
