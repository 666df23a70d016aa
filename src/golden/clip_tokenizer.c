/*
 * Golden runner for family "clip_tokenizer": every prompt of cases.json through the
 * embedded CLIP tokenizer, compared exactly with the reference's untruncated BPE ids
 * and its two 77-id rows (padded with 49407 as SD1.x, with 0 as OpenCLIP).
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "golden/json_cases.h"
#include "text/clip_tokenizer.h"

static void compare_row(golden_case *gc, const ts_clip_tokenizer *tok, int idx, const char *text, int32_t pad,
                        const char *field, const cJSON *c)
{
    int32_t row[TS_CLIP_CONTEXT];
    char label[64];
    snprintf(label, sizeof label, "prompt %d %s", idx, field);
    if (ts_clip_tokenize(tok, text, pad, row, TS_CLIP_CONTEXT, NULL) != TS_OK)
        golden_fail_line(gc, label);
    else
        golden_compare_json_i32(gc, label, row, TS_CLIP_CONTEXT, cJSON_GetObjectItemCaseSensitive(c, field));
}

static void compare_bpe(golden_case *gc, const ts_clip_tokenizer *tok, int idx, const char *text, const cJSON *c)
{
    char label[64];
    snprintf(label, sizeof label, "prompt %d bpe", idx);
    int32_t *ids = NULL;
    int n = 0;
    if (ts_clip_encode(tok, text, &ids, &n) != TS_OK)
        golden_fail_line(gc, label);
    else
        golden_compare_json_i32(gc, label, ids, n, cJSON_GetObjectItemCaseSensitive(c, "bpe"));
    free(ids);
}

int golden_run_clip_tokenizer(golden_case *gc)
{
    const ts_clip_tokenizer *tok = ts_clip_tokenizer_default();
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
        compare_row(gc, tok, idx, text->valuestring, TS_CLIP_EOS, "ids", c);
        compare_row(gc, tok, idx, text->valuestring, 0, "ids_pad0", c);
        compare_bpe(gc, tok, idx, text->valuestring, c);
    }
    cJSON_Delete(cases);
    return rc;
}
