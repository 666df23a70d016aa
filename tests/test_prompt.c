/*
 * A1111 prompt syntax: parsed segments against A1111's documented examples (its
 * parse_prompt_attention doctests) and the bracket/escape/BREAK rules, and packed
 * chunks against token lists built by hand from reference CLIP ids (the ids come
 * from shared/golden/clip_tokenizer: a 320, cat 2368, dog 1929, "," 267, ...).
 */
#include <string.h>

#include "core/error.h"
#include "test.h"
#include "text/prompt.h"

enum { A = 320, CAT = 2368, DOG = 1929, COMMA = 267, RED = 736, CAR = 1615, BREAK_WORD = 2568, BLUE = 1746,
       SKY = 2390, PHOTOGRAPH = 8853, OF = 539, AN = 550, ASTRONAUT = 18376, BOS = 49406, EOS = 49407 };

typedef struct {
    const char *text;
    double weight;
} want_seg;

/* Parses prompt and checks the segments exactly (weights compared with ==, as A1111
 * itself compares them when merging). */
static void check_parse(const char *prompt, const want_seg *want, int n_want)
{
    ts_prompt_segment *segs = NULL;
    int n = 0;
    CHECK_MSG(ts_prompt_parse(prompt, &segs, &n) == TS_OK, "%s: %s", prompt, ts_error_message());
    CHECK_MSG(n == n_want, "%s: %d segments, expected %d", prompt, n, n_want);
    for (int i = 0; i < n && i < n_want; i++) {
        CHECK_MSG(strcmp(segs[i].text, want[i].text) == 0, "%s: segment %d \"%s\", expected \"%s\"", prompt, i,
                  segs[i].text, want[i].text);
        CHECK_MSG(segs[i].weight == want[i].weight, "%s: segment %d weight %.17g, expected %.17g", prompt, i,
                  segs[i].weight, want[i].weight);
    }
    ts_prompt_segments_free(segs, n);
}

#define PARSE(prompt, ...)                                                                                             \
    do {                                                                                                               \
        static const want_seg w[] = {__VA_ARGS__};                                                                     \
        check_parse(prompt, w, (int)(sizeof w / sizeof w[0]));                                                         \
    } while (0)

static void test_a1111_doctests(void)
{
    PARSE("normal text", {"normal text", 1.0});
    PARSE("an (important) word", {"an ", 1.0}, {"important", 1.1}, {" word", 1.0});
    PARSE("(unbalanced", {"unbalanced", 1.1});
    PARSE("\\(literal\\]", {"(literal]", 1.0});
    PARSE("(unnecessary)(parens)", {"unnecessaryparens", 1.1});
    PARSE("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {"a ", 1.0}, {"house", 1.5730000000000004},
          {" ", 1.1}, {"on", 1.0}, {" a ", 1.1}, {"hill", 0.55}, {", sun, ", 1.1}, {"sky", 1.4641000000000006},
          {".", 1.1});
}

static void test_brackets(void)
{
    PARSE("[x]", {"x", 1 / 1.1});
    PARSE("[[x]]", {"x", (1 / 1.1) * (1 / 1.1)});
    PARSE("[x", {"x", 1 / 1.1});
    PARSE("(x:1.5)", {"x", 1.5});
    PARSE("(x : 1.5 )", {"x ", 1.5});          /* spaces around the number are allowed */
    PARSE("((x):0.5)", {"x", 1.1 * 0.5});      /* inner bracket first, then the weight */
    PARSE("(x:-1)", {"x", -1.0});
    PARSE("(x:.5)", {"x", 0.5});
    PARSE("a) b]", {"a) b]", 1.0});           /* closers without an opener are text */
    PARSE("a:1.2) b", {"a:1.2) b", 1.0});     /* a weight without "(" is text */
    PARSE("a: b", {"a: b", 1.0});
    PARSE("(a:b)", {"a:b", 1.1});             /* not a number: ':' is text */
    PARSE("", {"", 1.0});
    PARSE("()", {"", 1.0});
    PARSE("(a[b)c]", {"a", 1.1}, {"b", 1.1 * (1 / 1.1)}, {"c", 1 / 1.1}); /* stacks are independent */
}

static void test_escapes(void)
{
    PARSE("\\(a\\)", {"(a)", 1.0});
    PARSE("\\\\", {"\\", 1.0});
    PARSE("a\\b", {"ab", 1.0}); /* a lone backslash disappears */
    PARSE("(a\\)b)", {"a)b", 1.1});
    PARSE("\\[a\\]", {"[a]", 1.0});
}

static void test_break_syntax(void)
{
    PARSE("red car BREAK blue sky", {"red car", 1.0}, {"BREAK", -1.0}, {"blue sky", 1.0});
    PARSE("a\nBREAK\tb", {"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0});
    PARSE("BREAKfast break BREAK_", {"BREAKfast break BREAK_", 1.0});
    PARSE("a, BREAK, b", {"a,", 1.0}, {"BREAK", -1.0}, {", b", 1.0});
    PARSE("(BREAK)", {"", 1.1}, {"BREAK", -1.1}, {"", 1.1}); /* A1111: then the word "break", weight -1.1 */
}

static void test_bad_weight(void)
{
    ts_prompt_segment *segs = NULL;
    int n = 0;
    CHECK(ts_prompt_parse("(x:1.2.3)", &segs, &n) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "1.2.3") != NULL);
    CHECK(ts_prompt_parse("(x:.)", &segs, &n) == TS_ERR_ARG);
}

/* Checks chunk `c` against ids[0..n) (the rest of the 77 being `fill`) and weights
 * w[0..n) (NULL: all 1.0; the rest 1.0). */
static void check_chunk(const ts_prompt_tokens *t, int c, const int32_t *ids, const float *w, int n, int32_t fill)
{
    CHECK(c < t->n_chunks);
    if (c >= t->n_chunks)
        return;
    const int32_t *got = t->ids + c * TS_CLIP_CONTEXT;
    const float *gw = t->weights + c * TS_CLIP_CONTEXT;
    for (int i = 0; i < TS_CLIP_CONTEXT; i++) {
        int32_t want = i < n ? ids[i] : fill;
        float want_w = i < n && w ? w[i] : 1.0f;
        CHECK_MSG(got[i] == want, "chunk %d id %d: %d, expected %d", c, i, got[i], want);
        CHECK_MSG(gw[i] == want_w, "chunk %d weight %d: %g, expected %g", c, i, gw[i], want_w);
    }
}

static void test_weights_per_token(void)
{
    ts_prompt_tokens t;
    const ts_clip_tokenizer *tok = ts_clip_tokenizer_default();
    CHECK(tok != NULL);
    CHECK(ts_prompt_tokenize(tok, "a (photograph:1.5) of [an] ((astronaut))", EOS, NULL, &t) == TS_OK);
    CHECK(t.n_chunks == 1 && t.token_count == 5);
    const int32_t ids[] = {BOS, A, PHOTOGRAPH, OF, AN, ASTRONAUT, EOS};
    const float w[] = {1, 1, 1.5f, 1, (float)(1 / 1.1), (float)(1.1 * 1.1), 1};
    check_chunk(&t, 0, ids, w, 7, EOS);
    ts_prompt_tokens_free(&t);
}

static void test_empty_prompt(void)
{
    ts_prompt_tokens t;
    const ts_clip_tokenizer *tok = ts_clip_tokenizer_default();
    const int32_t ids[] = {BOS, EOS};
    for (int pad = 0; pad < 2; pad++) {
        CHECK(ts_prompt_tokenize(tok, pad ? "   " : "", pad ? 0 : EOS, NULL, &t) == TS_OK);
        CHECK(t.n_chunks == 1 && t.token_count == 0);
        check_chunk(&t, 0, ids, NULL, 2, pad ? 0 : EOS);
        if (pad)
            CHECK(t.ids[TS_CLIP_CONTEXT - 1] == 0); /* OpenCLIP: all zeros after the first EOS */
        ts_prompt_tokens_free(&t);
    }
}

/* "word word ... " with n copies, into buf. */
static char *repeat(char *buf, const char *word, int n)
{
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        strcat(buf, word);
        strcat(buf, " ");
    }
    return buf;
}

static void test_long_prompt_chunks(void)
{
    static char prompt[4096];
    ts_prompt_tokens t;
    const ts_clip_tokenizer *tok = ts_clip_tokenizer_default();
    CHECK(ts_prompt_tokenize(tok, repeat(prompt, "cat", 80), EOS, NULL, &t) == TS_OK);
    CHECK(t.n_chunks == 2 && t.token_count == 80);
    int32_t ids[77];
    ids[0] = BOS;
    for (int i = 1; i <= 75; i++)
        ids[i] = CAT;
    check_chunk(&t, 0, ids, NULL, 76, EOS);
    check_chunk(&t, 1, ids, NULL, 6, EOS);
    ts_prompt_tokens_free(&t);

    /* exactly 75 tokens: one full chunk, no empty second one */
    CHECK(ts_prompt_tokenize(tok, repeat(prompt, "cat", 75), EOS, NULL, &t) == TS_OK);
    CHECK(t.n_chunks == 1 && t.token_count == 75);
    ts_prompt_tokens_free(&t);
}

static void test_comma_backtrack(void)
{
    static char prompt[4096];
    char dogs[128];
    ts_prompt_tokens t;
    const ts_clip_tokenizer *tok = ts_clip_tokenizer_default();
    repeat(prompt, "cat", 70);
    strcat(prompt, ", ");
    strcat(prompt, repeat(dogs, "dog", 10));
    /* 70 cats, ',', then the 5th dog would be token 76: the dogs after the comma move on */
    CHECK(ts_prompt_tokenize(tok, prompt, EOS, NULL, &t) == TS_OK);
    CHECK(t.n_chunks == 2 && t.token_count == 85);
    int32_t c0[73], c1[11];
    c0[0] = c1[0] = BOS;
    for (int i = 1; i <= 70; i++)
        c0[i] = CAT;
    c0[71] = COMMA;
    c0[72] = EOS;
    for (int i = 1; i <= 10; i++)
        c1[i] = DOG;
    check_chunk(&t, 0, c0, NULL, 73, EOS);
    check_chunk(&t, 1, c1, NULL, 11, EOS);
    ts_prompt_tokens_free(&t);

    /* backtracking off: the chunk is cut at 75 tokens */
    ts_prompt_options opts = {.emphasis = 1, .comma_backtrack = 0};
    CHECK(ts_prompt_tokenize(tok, prompt, EOS, &opts, &t) == TS_OK);
    CHECK(t.n_chunks == 2 && t.token_count == 81);
    int32_t d0[77];
    memcpy(d0, c0, 72 * sizeof *d0);
    for (int i = 72; i <= 75; i++)
        d0[i] = DOG;
    check_chunk(&t, 0, d0, NULL, 76, EOS);
    check_chunk(&t, 1, c1, NULL, 7, EOS);
    ts_prompt_tokens_free(&t);
}

static void test_break_chunks(void)
{
    ts_prompt_tokens t;
    const ts_clip_tokenizer *tok = ts_clip_tokenizer_default();
    CHECK(ts_prompt_tokenize(tok, "red car BREAK blue sky", EOS, NULL, &t) == TS_OK);
    CHECK(t.n_chunks == 2 && t.token_count == 77);
    check_chunk(&t, 0, (const int32_t[]){BOS, RED, CAR}, NULL, 3, EOS);
    check_chunk(&t, 1, (const int32_t[]){BOS, BLUE, SKY}, NULL, 3, EOS);
    ts_prompt_tokens_free(&t);

    /* emphasis off: BREAK and brackets are plain text */
    ts_prompt_options plain = {.emphasis = 0, .comma_backtrack = 20};
    CHECK(ts_prompt_tokenize(tok, "red car BREAK blue sky", EOS, &plain, &t) == TS_OK);
    CHECK(t.n_chunks == 1);
    check_chunk(&t, 0, (const int32_t[]){BOS, RED, CAR, BREAK_WORD, BLUE, SKY}, NULL, 6, EOS);
    ts_prompt_tokens_free(&t);

    /* "(BREAK)" is the word "break" with weight -1.1, as in A1111 */
    CHECK(ts_prompt_tokenize(tok, "red (BREAK)", EOS, NULL, &t) == TS_OK);
    CHECK(t.n_chunks == 1);
    check_chunk(&t, 0, (const int32_t[]){BOS, RED, BREAK_WORD}, (const float[]){1, 1, (float)-1.1}, 3, EOS);
    ts_prompt_tokens_free(&t);
}

static void test_literal_eos_pad0(void)
{
    ts_prompt_tokens t;
    const ts_clip_tokenizer *tok = ts_clip_tokenizer_default();
    /* A1111 rewrites everything after the FIRST EOS with the pad id, a typed one included */
    CHECK(ts_prompt_tokenize(tok, "a <|endoftext|> cat", 0, NULL, &t) == TS_OK);
    check_chunk(&t, 0, (const int32_t[]){BOS, A, EOS}, NULL, 3, 0);
    CHECK(t.ids[TS_CLIP_CONTEXT - 1] == 0);
    ts_prompt_tokens_free(&t);
    CHECK(ts_prompt_tokenize(tok, "a <|endoftext|> cat", EOS, NULL, &t) == TS_OK);
    check_chunk(&t, 0, (const int32_t[]){BOS, A, EOS, CAT}, NULL, 4, EOS);
    ts_prompt_tokens_free(&t);
}

/* The words without the syntax, as Flux's encoders get them. */
static void test_strip(void)
{
    static const char *const cases[][2] = {
        {"a (red:1.3) car", "a red car"},
        {"((a)) [[b]] (c:0.5)", "a b c"},
        {"a \\(b\\) \\[c\\]", "a (b) [c]"},
        {"x BREAK y", "x y"},
        {"(unclosed", "unclosed"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        CHECK(ts_prompt_strip(cases[i][0], &out) == TS_OK);
        CHECK_MSG(out && strcmp(out, cases[i][1]) == 0, "'%s' -> '%s', expected '%s'", cases[i][0], out ? out : "",
                  cases[i][1]);
        free(out);
    }
    char *out = NULL;
    CHECK(ts_prompt_strip("(x:1.2.3)", &out) == TS_ERR_ARG && out == NULL);
}

TEST_MAIN(TEST(test_strip), TEST(test_a1111_doctests), TEST(test_brackets), TEST(test_escapes), TEST(test_break_syntax),
          TEST(test_bad_weight), TEST(test_weights_per_token), TEST(test_empty_prompt), TEST(test_long_prompt_chunks),
          TEST(test_comma_backtrack), TEST(test_break_chunks), TEST(test_literal_eos_pad0))
