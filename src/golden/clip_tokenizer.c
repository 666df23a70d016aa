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
                        const char *field, const cJSON *want)
{
    int32_t row[TS_CLIP_CONTEXT];
    int64_t got[TS_CLIP_CONTEXT];
    char label[64];
    snprintf(label, sizeof label, "prompt %d %s", idx, field);
    if (ts_clip_tokenize(tok, text, pad, row, TS_CLIP_CONTEXT, NULL) != TS_OK) {
        printf("  %-40s FAIL (%s)\n", label, ts_error_message());
        gc->compared++;
        gc->failed++;
        return;
    }
    for (int i = 0; i < TS_CLIP_CONTEXT; i++)
        got[i] = row[i];
    golden_compare_json_ids(gc, label, got, TS_CLIP_CONTEXT, want);
}

static void compare_bpe(golden_case *gc, const ts_clip_tokenizer *tok, int idx, const char *text, const cJSON *want)
{
    char label[64];
    snprintf(label, sizeof label, "prompt %d bpe", idx);
    int32_t *ids = NULL;
    int n = 0;
    if (ts_clip_encode(tok, text, &ids, &n) != TS_OK) {
        printf("  %-40s FAIL (%s)\n", label, ts_error_message());
        gc->compared++;
        gc->failed++;
        return;
    }
    int64_t *got = malloc((size_t)(n ? n : 1) * sizeof *got);
    for (int i = 0; got && i < n; i++)
        got[i] = ids[i];
    if (got)
        golden_compare_json_ids(gc, label, got, n, want);
    free(got);
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
        compare_row(gc, tok, idx, text->valuestring, TS_CLIP_EOS, "ids", cJSON_GetObjectItem(c, "ids"));
        compare_row(gc, tok, idx, text->valuestring, 0, "ids_pad0", cJSON_GetObjectItem(c, "ids_pad0"));
        compare_bpe(gc, tok, idx, text->valuestring, cJSON_GetObjectItem(c, "bpe"));
    }
    cJSON_Delete(cases);
    return rc;
}
