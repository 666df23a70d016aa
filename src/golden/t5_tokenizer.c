/*
 * Golden runner for family "t5_tokenizer": every prompt of cases.json through the
 * embedded T5 SentencePiece tokenizer, compared exactly with the reference's
 * normalized text (as code points), its untruncated ids and the rows padded to 77,
 * 256 and 512 (SD3, FLUX.1-schnell, FLUX.1-dev).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden/json_cases.h"
#include "text/t5_tokenizer.h"
#include "text/unicode.h"

/* The normalized string compared as code points, so a mismatch shows where. */
static void compare_normalized(golden_case *gc, const ts_t5_tokenizer *tok, int idx, const char *text,
                               const cJSON *want)
{
    char label[64];
    snprintf(label, sizeof label, "prompt %d normalized", idx);
    char *norm = NULL;
    ts_u32 got = {0}, exp = {0};
    if (!cJSON_IsString(want) || ts_t5_normalize(tok, text, &norm) != TS_OK ||
        ts_utf8_decode(norm, strlen(norm), &got) != TS_OK ||
        ts_utf8_decode(want->valuestring, strlen(want->valuestring), &exp) != TS_OK)
        golden_fail_line(gc, label);
    else
        golden_compare_i32(gc, label, got.c, got.n, exp.c, exp.n);
    free(norm);
    ts_u32_free(&got);
    ts_u32_free(&exp);
}

static void compare_row(golden_case *gc, const ts_t5_tokenizer *tok, int idx, const char *text, int len,
                        const cJSON *c)
{
    char field[16], label[64];
    snprintf(field, sizeof field, "ids_%d", len);
    snprintf(label, sizeof label, "prompt %d %s", idx, field);
    int32_t *row = malloc((size_t)len * sizeof *row);
    if (!row || ts_t5_tokenize(tok, text, row, len, NULL) != TS_OK)
        golden_fail_line(gc, label);
    else
        golden_compare_json_i32(gc, label, row, len, cJSON_GetObjectItemCaseSensitive(c, field));
    free(row);
}

int golden_run_t5_tokenizer(golden_case *gc)
{
    const ts_t5_tokenizer *tok = ts_t5_tokenizer_default();
    if (!tok)
        return TS_ERR_FORMAT;
    cJSON *cases = golden_read_cases(gc);
    if (!cases)
        return TS_ERR_FORMAT;
    int idx = 0, rc = TS_OK;
    for (const cJSON *c = cases->child; c; c = c->next, idx++) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");
        if (!cJSON_IsString(text)) {
            rc = ts_fail(TS_ERR_FORMAT, "cases.json: case %d has no \"text\"", idx);
            break;
        }
        compare_normalized(gc, tok, idx, text->valuestring, cJSON_GetObjectItemCaseSensitive(c, "normalized"));
        char label[64];
        snprintf(label, sizeof label, "prompt %d ids", idx);
        int32_t *ids = NULL;
        int n = 0;
        if (ts_t5_encode(tok, text->valuestring, &ids, &n) != TS_OK)
            golden_fail_line(gc, label);
        else
            golden_compare_json_i32(gc, label, ids, n, cJSON_GetObjectItemCaseSensitive(c, "ids"));
        free(ids);
        compare_row(gc, tok, idx, text->valuestring, 77, c);
        compare_row(gc, tok, idx, text->valuestring, 256, c);
        compare_row(gc, tok, idx, text->valuestring, 512, c);
    }
    cJSON_Delete(cases);
    return rc;
}
