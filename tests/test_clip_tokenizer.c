/*
 * CLIP tokenizer edge cases: empty and whitespace prompts, truncation past 75 tokens,
 * literal special tokens, the text clean-up (against the reference's own "cleaned"
 * strings in shared/golden/clip_tokenizer/cases.json, and Python html.unescape /
 * str.lower rules), and malformed input.  Full id agreement is the golden case.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "test.h"
#include "text/clip_tokenizer.h"
#include "text/embedded.h"

enum { CAT = 2368 };

static const ts_clip_tokenizer *tok(void)
{
    const ts_clip_tokenizer *t = ts_clip_tokenizer_default();
    CHECK_MSG(t != NULL, "%s", ts_error_message());
    return t;
}

static void check_row_prefix(const int32_t *row, int len, const int32_t *want, int n, int32_t pad)
{
    for (int i = 0; i < len; i++)
        CHECK_MSG(row[i] == (i < n ? want[i] : pad), "id %d: %d, expected %d", i, row[i], i < n ? want[i] : pad);
}

static void test_empty_and_whitespace(void)
{
    const char *prompts[] = {"", " ", "\t\n\r  ", "\xE3\x80\x80"}; /* U+3000 ideographic space too */
    for (int p = 0; p < 4; p++) {
        int32_t row[TS_CLIP_CONTEXT];
        int truncated = -1;
        CHECK(ts_clip_tokenize(tok(), prompts[p], 0, row, TS_CLIP_CONTEXT, &truncated) == TS_OK);
        check_row_prefix(row, TS_CLIP_CONTEXT, (const int32_t[]){TS_CLIP_BOS, TS_CLIP_EOS}, 2, 0);
        CHECK(truncated == 0);
    }
}

static void test_truncation(void)
{
    char prompt[1024] = "";
    for (int i = 0; i < 80; i++)
        strcat(prompt, "cat ");
    int32_t *ids = NULL, row[TS_CLIP_CONTEXT];
    int n = 0, truncated = 0;
    CHECK(ts_clip_encode(tok(), prompt, &ids, &n) == TS_OK);
    CHECK(n == 80); /* encode itself never truncates */
    free(ids);
    CHECK(ts_clip_tokenize(tok(), prompt, TS_CLIP_EOS, row, TS_CLIP_CONTEXT, &truncated) == TS_OK);
    CHECK(truncated == 1);
    CHECK(row[0] == TS_CLIP_BOS && row[76] == TS_CLIP_EOS);
    for (int i = 1; i <= 75; i++)
        CHECK(row[i] == CAT);
    /* a shorter context keeps BOS and EOS */
    int32_t small[4];
    CHECK(ts_clip_tokenize(tok(), prompt, 0, small, 4, &truncated) == TS_OK);
    check_row_prefix(small, 4, (const int32_t[]){TS_CLIP_BOS, CAT, CAT, TS_CLIP_EOS}, 4, 0);
    CHECK(ts_clip_tokenize(tok(), prompt, 0, small, 1, NULL) == TS_ERR_ARG);
}

static void test_literal_special_tokens(void)
{
    int32_t *ids = NULL;
    int n = 0;
    CHECK(ts_clip_encode(tok(), "<|startoftext|>cat<|endoftext|>", &ids, &n) == TS_OK);
    CHECK(n == 3 && ids[0] == TS_CLIP_BOS && ids[1] == CAT && ids[2] == TS_CLIP_EOS);
    free(ids);
    /* only at the start of a match: after punctuation the run swallows the '<' */
    CHECK(ts_clip_encode(tok(), "!<|endoftext|>", &ids, &n) == TS_OK);
    for (int i = 0; i < n; i++)
        CHECK(ids[i] != TS_CLIP_EOS);
    free(ids);
    CHECK(strcmp(ts_clip_token_str(tok(), TS_CLIP_EOS), "<|endoftext|>") == 0);
    CHECK(strcmp(ts_clip_token_str(tok(), CAT), "cat</w>") == 0);
    CHECK(ts_clip_token_str(tok(), TS_CLIP_VOCAB) == NULL);
}

static void check_clean(const char *text, const char *want)
{
    char *got = NULL;
    CHECK(ts_clip_clean(text, &got) == TS_OK);
    CHECK_MSG(got && strcmp(got, want) == 0, "clean(\"%s\") = \"%s\", expected \"%s\"", text, got ? got : "",
              want);
    free(got);
}

static void test_clean_rules(void)
{
    check_clean("&notit; &#x41;&#65 &#128; &#0; &bogus;", "\xC2\xACit; aa \xE2\x82\xAC \xEF\xBF\xBD &bogus;");
    check_clean("&amp;amp;amp;", "&");
    check_clean("&EACUTE;t&EACUTE;", "\xC3\xA9t\xC3\xA9");               /* ftfy's all-caps entity aliases */                        /* ftfy once + html.unescape twice */
    check_clean("a < b &amp;amp;amp;", "a < b &amp;");         /* '<': ftfy leaves entities */
    check_clean("sch\xC3\x83\xC2\xB6n", "sch\xC3\xB6n");       /* mojibake "schÃ¶n" */
    check_clean("\xCE\xA3\xCE\x91\xCE\xA3", "\xCF\x83\xCE\xB1\xCF\x82"); /* final sigma: σας */
    check_clean("\xEF\xAC\x83", "ffi");                        /* ligature */
    check_clean("a\x1b[31mred\x1b[0m", "ared");                /* terminal escapes */
    check_clean("\xE2\x80\x98x\xE2\x80\x99", "'x'");
}

/* The reference's "cleaned" text for every golden prompt. */
static void test_clean_golden(void)
{
    const char *shared = getenv("TESSERA_SHARED");
    if (!shared)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/clip_tokenizer/cases.json", shared);
    unsigned char *text = NULL;
    size_t size = 0;
    CHECK_MSG(ts_read_file(path, &text, &size) == TS_OK, "%s", ts_error_message());
    cJSON *cases = text ? cJSON_Parse((const char *)text) : NULL;
    int n = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, n++)
        check_clean(cJSON_GetObjectItem(c, "text")->valuestring, cJSON_GetObjectItem(c, "cleaned")->valuestring);
    CHECK(n == 61);
    cJSON_Delete(cases);
    free(text);
}

static void test_malformed_utf8(void)
{
    const char *bad[] = {"\xff\xfe abc", "\xC0\xAF", "\xED\xA0\x80", "caf\xC3", "\xF4\x90\x80\x80"};
    for (int i = 0; i < 5; i++) {
        int32_t *ids = NULL;
        int n = 0;
        CHECK(ts_clip_encode(tok(), bad[i], &ids, &n) == TS_OK);
        CHECK(n > 0);
        for (int k = 0; k < n; k++)
            CHECK(ids[k] >= 0 && ids[k] < TS_CLIP_VOCAB);
        free(ids);
    }
}

static void test_bad_merges_file(void)
{
    ts_clip_tokenizer *t = NULL;
    CHECK(ts_clip_tokenizer_new("header\nno such pair\n", &t) == TS_ERR_FORMAT);
    CHECK(ts_clip_tokenizer_new("header\n", &t) == TS_ERR_FORMAT);
    CHECK(t == NULL);
}

TEST_MAIN(TEST(test_empty_and_whitespace), TEST(test_truncation), TEST(test_literal_special_tokens),
          TEST(test_clean_rules), TEST(test_clean_golden), TEST(test_malformed_utf8), TEST(test_bad_merges_file))
