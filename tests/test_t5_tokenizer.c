/*
 * T5 tokenizer: published ids (shared/golden/t5_tokenizer case.json "validation"),
 * empty input, truncation/padding, malformed UTF-8, the user-file overrides
 * (tokenizer.json and spiece.model from shared/data/t5 must tokenize every golden
 * prompt exactly as the embedded model), and rejection of broken model files.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "test.h"
#include "text/embedded.h"
#include "text/t5_tokenizer.h"

static const ts_t5_tokenizer *tok(void)
{
    const ts_t5_tokenizer *t = ts_t5_tokenizer_default();
    CHECK_MSG(t != NULL, "%s", ts_error_message());
    return t;
}

static void check_ids(const ts_t5_tokenizer *t, const char *text, const int32_t *want, int n_want)
{
    int32_t *ids = NULL;
    int n = 0;
    CHECK_MSG(ts_t5_encode(t, text, &ids, &n) == TS_OK, "%s", ts_error_message());
    CHECK_MSG(n == n_want, "\"%s\": %d ids, expected %d", text, n, n_want);
    for (int i = 0; i < n && i < n_want; i++)
        CHECK_MSG(ids[i] == want[i], "\"%s\" id %d: %d, expected %d", text, i, ids[i], want[i]);
    free(ids);
}

#define IDS(text, ...)                                                                                                 \
    do {                                                                                                               \
        static const int32_t w[] = {__VA_ARGS__};                                                                      \
        check_ids(tok(), text, w, (int)(sizeof w / sizeof w[0]));                                                      \
    } while (0)

static void test_published_ids(void)
{
    IDS("Hello world", 8774, 296, 1);
    IDS("Hello\tworld\nagain", 8774, 296, 541, 1);
    IDS("translate English to German: The house is wonderful.", 13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5, 1);
    IDS("Summary of the text.", 20698, 13, 8, 1499, 5, 1);
    IDS("", 1);
    IDS(" \t\n ", 1);
    IDS("\x01\x02", 1);           /* deleted controls only */
    IDS("a\xff" "b", 3, 9, 2, 115, 1); /* a stray byte is one <unk> */
    CHECK(strcmp(ts_t5_piece(tok(), 13959), "\xE2\x96\x81translate") == 0);
    CHECK(ts_t5_piece(tok(), -1) == NULL);
}

static void test_rows(void)
{
    int32_t row[6];
    int truncated = -1;
    CHECK(ts_t5_tokenize(tok(), "Hello world", row, 6, &truncated) == TS_OK);
    CHECK(truncated == 0);
    const int32_t want[6] = {8774, 296, 1, 0, 0, 0};
    CHECK(memcmp(row, want, sizeof want) == 0);
    CHECK(ts_t5_tokenize(tok(), "Hello world", row, 2, &truncated) == TS_OK);
    CHECK(truncated == 1 && row[0] == 8774 && row[1] == 1); /* L-1 text ids, then EOS */
    CHECK(ts_t5_tokenize(tok(), "Hello world", row, 1, NULL) == TS_OK && row[0] == 1);
    CHECK(ts_t5_tokenize(tok(), "Hello world", row, 0, NULL) == TS_ERR_ARG);
    char *norm = NULL;
    CHECK(ts_t5_normalize(tok(), "  Hello \t world  ", &norm) == TS_OK);
    CHECK(norm && strcmp(norm, "\xE2\x96\x81Hello\xE2\x96\x81world") == 0);
    free(norm);
}

/* Every golden prompt through `t` gives the golden ids. */
static void check_golden(const ts_t5_tokenizer *t, const char *shared)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/t5_tokenizer/cases.json", shared);
    unsigned char *text = NULL;
    size_t size = 0;
    CHECK_MSG(ts_read_file(path, &text, &size) == TS_OK, "%s", ts_error_message());
    cJSON *cases = text ? cJSON_Parse((const char *)text) : NULL;
    int n_cases = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, n_cases++) {
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t w[1024];
        int n = 0;
        for (const cJSON *v = want->child; v && n < 1024; v = v->next)
            w[n++] = (int32_t)v->valueint;
        check_ids(t, cJSON_GetObjectItem(c, "text")->valuestring, w, n);
    }
    CHECK(n_cases == 66);
    cJSON_Delete(cases);
    free(text);
}

static void test_user_files(void)
{
    const char *shared = getenv("TESSERA_SHARED");
    if (!shared)
        return;
    const char *files[] = {"tokenizer.json", "spiece.model"};
    for (int f = 0; f < 2; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/data/t5/%s", shared, files[f]);
        ts_t5_tokenizer *t = NULL;
        CHECK_MSG(ts_t5_tokenizer_load(path, &t) == TS_OK, "%s", ts_error_message());
        if (t)
            check_golden(t, shared);
        ts_t5_tokenizer_free(t);
    }
    check_golden(tok(), shared);
}

static void test_broken_models(void)
{
    ts_t5_tokenizer *t = NULL;
    const unsigned char junk[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
    CHECK(ts_t5_tokenizer_parse(junk, sizeof junk, "junk", &t) == TS_ERR_FORMAT);
    const char *json[] = {"{", "{\"model\": {\"type\": \"BPE\", \"vocab\": []}}",
                          "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1]]}, \"normalizer\": null}",
                          ("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1]]}, "
                           "\"normalizer\": {\"precompiled_charsmap\": \"!!\"}}")};
    for (int i = 0; i < 4; i++)
        CHECK(ts_t5_tokenizer_parse((const unsigned char *)json[i], strlen(json[i]), "json", &t) < 0);
    CHECK(ts_t5_tokenizer_load("/nonexistent/spiece.model", &t) == TS_ERR_IO);
    CHECK(t == NULL);
    /* every truncation of the real model either loads or fails cleanly */
    unsigned char *model = NULL;
    size_t size = 0;
    CHECK(ts_blob_load(TS_BLOB_T5_SPIECE, &model, &size) == TS_OK);
    for (size_t cut = 0; model && cut < size; cut += size / 7 + 1) {
        if (ts_t5_tokenizer_parse(model, cut, "cut", &t) == TS_OK)
            ts_t5_tokenizer_free(t);
        t = NULL;
    }
    free(model);
}

TEST_MAIN(TEST(test_published_ids), TEST(test_rows), TEST(test_user_files), TEST(test_broken_models))
