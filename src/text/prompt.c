/*
 * A1111 prompt syntax (see prompt.h and docs/prompt-syntax.md).
 *
 * The parser reproduces A1111's tokenizer regex alternative by alternative and its
 * bracket stacks, including its quirks (an unmatched ")" is text, an unclosed "(" still
 * weights everything after it, a lone backslash vanishes, "(BREAK)" is the word
 * "break" with weight -1.1), because users paste prompts tuned against A1111 and
 * expect the same weights.  Weights are kept in double and multiplied in A1111's
 * order so that its "merge equal neighbours" step sees the same values.  The text is
 * processed as code points since A1111's \s, \d and \b are Unicode-aware.
 */
#include "text/prompt.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>

#include "core/error.h"
#include "text/unicode.h"

typedef struct {
    ts_u32 text;
    double weight;
} seg;

typedef struct {
    seg *s;
    int n, cap;
} seg_list;

static int seg_push(seg_list *l, const int32_t *c, int n, double weight)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        seg *grown = realloc(l->s, (size_t)cap * sizeof *grown);
        if (!grown)
            return ts_fail(TS_ERR_NOMEM, "prompt: out of memory");
        l->s = grown;
        l->cap = cap;
    }
    l->s[l->n] = (seg){.weight = weight};
    int rc = n ? ts_u32_append(&l->s[l->n].text, c, n) : TS_OK;
    l->n++;
    return rc;
}

static void seg_list_free(seg_list *l)
{
    for (int i = 0; i < l->n; i++)
        ts_u32_free(&l->s[i].text);
    free(l->s);
}

/* Python's \w (letters, numbers, '_'): what \bBREAK\b must not touch. */
static int is_word(int32_t c)
{
    return ts_is_letter(c) || ts_is_number(c) || c == '_';
}

/* The characters A1111's plain-text alternative [^\\()\[\]:]+ stops at. */
static int is_syntax(int32_t c)
{
    return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

/* \d (any decimal digit): its value, or -1. */
static int digit_value(int32_t c)
{
    return u_charType(c) == U_DECIMAL_DIGIT_NUMBER ? u_charDigitValue(c) : -1;
}

/* re.split(r"\s*\bBREAK\b\s*", text): appends the parts with a BREAK marker between them. */
static int push_text(seg_list *l, const int32_t *c, int n)
{
    static const int32_t brk[5] = {'B', 'R', 'E', 'A', 'K'};
    int start = 0, rc = TS_OK;
    for (int p = 0; p + 5 <= n && rc == TS_OK; p++) {
        if (memcmp(c + p, brk, sizeof brk) != 0 || (p > 0 && is_word(c[p - 1])) || (p + 5 < n && is_word(c[p + 5])))
            continue;
        int a = p, b = p + 5;
        while (a > start && ts_is_space(c[a - 1]))
            a--;
        while (b < n && ts_is_space(c[b]))
            b++;
        rc = seg_push(l, c + start, a - start, 1.0);
        if (rc == TS_OK)
            rc = seg_push(l, brk, 5, -1.0);
        start = b;
        p = b - 1;
    }
    return rc == TS_OK ? seg_push(l, c + start, n - start, 1.0) : rc;
}

/* The weight alternative ":\s*([+-]?[.\d]+)\s*\)" at c[i] == ':': its length (0 if
 * none) and the number's span [*num, *num + *num_len). */
static int weight_at(const int32_t *c, int n, int i, int *num, int *num_len)
{
    int k = i + 1;
    while (k < n && ts_is_space(c[k]))
        k++;
    *num = k;
    if (k < n && (c[k] == '+' || c[k] == '-'))
        k++;
    int body = k;
    while (k < n && (c[k] == '.' || digit_value(c[k]) >= 0))
        k++;
    if (k == body)
        return 0;
    *num_len = k - *num;
    while (k < n && ts_is_space(c[k]))
        k++;
    return k < n && c[k] == ')' ? k + 1 - i : 0;
}

/* Python float() of the matched number: digits of any script, one '.' at most. */
static int parse_weight(const int32_t *c, int n, double *w)
{
    char s[64];
    int len = 0, dots = 0, digits = 0;
    for (int k = 0; k < n && len < (int)sizeof s - 1; k++) {
        int d = digit_value(c[k]);
        s[len++] = d >= 0 ? (char)('0' + d) : (char)c[k];
        dots += c[k] == '.';
        digits += d >= 0;
    }
    s[len] = 0;
    if (dots > 1 || digits == 0 || len < n)
        return ts_fail(TS_ERR_ARG, "prompt: \"%s\" is not a number (in a \"(text:weight)\" group)", s);
    *w = strtod(s, NULL);
    return TS_OK;
}

static void multiply_range(seg_list *l, int from, double m)
{
    for (int p = from; p < l->n; p++)
        l->s[p].weight *= m;
}

static int parse(const ts_u32 *t, seg_list *res)
{
    const int32_t *c = t->c;
    int n = t->n;
    int *round = malloc((size_t)(n + 1) * sizeof *round), *square = malloc((size_t)(n + 1) * sizeof *square);
    int n_round = 0, n_square = 0, rc = round && square ? TS_OK : ts_fail(TS_ERR_NOMEM, "prompt: out of memory");
    for (int i = 0; i < n && rc == TS_OK;) {
        int num = 0, num_len = 0, len = 1;
        if (c[i] == '\\') {
            int esc = i + 1 < n && is_syntax(c[i + 1]) && c[i + 1] != ':';
            len = esc ? 2 : 1;
            rc = seg_push(res, c + i + 1, esc, 1.0); /* a lone backslash leaves "" */
        } else if (c[i] == '(')
            round[n_round++] = res->n;
        else if (c[i] == '[')
            square[n_square++] = res->n;
        else if (c[i] == ':' && (len = weight_at(c, n, i, &num, &num_len)) > 0 && n_round > 0) {
            double w = 1.0;
            rc = parse_weight(c + num, num_len, &w);
            if (rc == TS_OK)
                multiply_range(res, round[--n_round], w);
        } else if (c[i] == ')' && n_round > 0)
            multiply_range(res, round[--n_round], 1.1);
        else if (c[i] == ']' && n_square > 0)
            multiply_range(res, square[--n_square], 1 / 1.1);
        else {
            if (c[i] == ':')
                len = len > 0 ? len : 1; /* a weight with no open "(" is text; else ':' alone */
            else if (c[i] != ')' && c[i] != ']')
                for (len = 0; i + len < n && !is_syntax(c[i + len]);)
                    len++;
            rc = push_text(res, c + i, len);
        }
        i += len;
    }
    for (int k = 0; k < n_round && rc == TS_OK; k++)
        multiply_range(res, round[k], 1.1);
    for (int k = 0; k < n_square && rc == TS_OK; k++)
        multiply_range(res, square[k], 1 / 1.1);
    free(round);
    free(square);
    if (rc == TS_OK && res->n == 0)
        rc = seg_push(res, NULL, 0, 1.0);
    for (int i = 0; i + 1 < res->n && rc == TS_OK;) { /* merge neighbours of equal weight */
        if (res->s[i].weight != res->s[i + 1].weight) {
            i++;
            continue;
        }
        rc = ts_u32_append(&res->s[i].text, res->s[i + 1].text.c, res->s[i + 1].text.n);
        ts_u32_free(&res->s[i + 1].text);
        memmove(res->s + i + 1, res->s + i + 2, (size_t)(res->n - i - 2) * sizeof *res->s);
        res->n--;
    }
    return rc;
}

void ts_prompt_segments_free(ts_prompt_segment *segs, int n)
{
    for (int i = 0; segs && i < n; i++)
        free(segs[i].text);
    free(segs);
}

int ts_prompt_parse(const char *prompt, ts_prompt_segment **segs, int *n)
{
    ts_u32 t = {0};
    seg_list l = {0};
    int rc = ts_utf8_decode(prompt, strlen(prompt), &t);
    if (rc == TS_OK)
        rc = parse(&t, &l);
    ts_u32_free(&t);
    ts_prompt_segment *out = rc == TS_OK ? calloc((size_t)l.n + 1, sizeof *out) : NULL;
    if (rc == TS_OK && !out)
        rc = ts_fail(TS_ERR_NOMEM, "prompt: out of memory");
    for (int i = 0; i < l.n && rc == TS_OK; i++) {
        out[i].weight = l.s[i].weight;
        if (!(out[i].text = ts_u32_to_utf8(&l.s[i].text)))
            rc = TS_ERR_NOMEM;
    }
    if (rc != TS_OK)
        ts_prompt_segments_free(out, l.n);
    else {
        *segs = out;
        *n = l.n;
    }
    seg_list_free(&l);
    return rc;
}

/* ---- chunking ------------------------------------------------------------------ */

typedef struct {
    int32_t tokens[TS_PROMPT_CHUNK_TOKENS + 1];
    float mults[TS_PROMPT_CHUNK_TOKENS + 1];
    int n;
} chunk;

typedef struct {
    ts_prompt_tokens *out;
    int cap;
    int32_t pad_id;
} chunk_out;

/* A1111's next_chunk(): pad the open chunk to 75 with EOS, wrap it in BOS/EOS, emit. */
static int emit_chunk(chunk_out *o, chunk *ch, int is_last)
{
    ts_prompt_tokens *t = o->out;
    if (t->n_chunks == o->cap) {
        int cap = o->cap ? o->cap * 2 : 4;
        int32_t *ids = realloc(t->ids, (size_t)cap * TS_CLIP_CONTEXT * sizeof *ids);
        if (ids)
            t->ids = ids;
        float *w = ids ? realloc(t->weights, (size_t)cap * TS_CLIP_CONTEXT * sizeof *w) : NULL;
        if (!w)
            return ts_fail(TS_ERR_NOMEM, "prompt: out of memory");
        t->weights = w;
        o->cap = cap;
    }
    t->token_count += is_last ? ch->n : TS_PROMPT_CHUNK_TOKENS;
    int32_t *ids = t->ids + (size_t)t->n_chunks * TS_CLIP_CONTEXT;
    float *w = t->weights + (size_t)t->n_chunks * TS_CLIP_CONTEXT;
    ids[0] = TS_CLIP_BOS;
    w[0] = 1.0f;
    for (int i = 0; i < TS_PROMPT_CHUNK_TOKENS; i++) {
        ids[1 + i] = i < ch->n ? ch->tokens[i] : TS_CLIP_EOS;
        w[1 + i] = i < ch->n ? ch->mults[i] : 1.0f;
    }
    ids[TS_CLIP_CONTEXT - 1] = TS_CLIP_EOS;
    w[TS_CLIP_CONTEXT - 1] = 1.0f;
    /* OpenCLIP pads with 0: A1111 rewrites everything after the chunk's first EOS */
    int first_eos = 0;
    while (ids[first_eos] != TS_CLIP_EOS)
        first_eos++;
    for (int i = first_eos + 1; i < TS_CLIP_CONTEXT && o->pad_id != TS_CLIP_EOS; i++)
        ids[i] = o->pad_id;
    t->n_chunks++;
    ch->n = 0;
    return TS_OK;
}

static int is_break(const ts_prompt_segment *s)
{
    return s->weight == -1.0 && strcmp(s->text, "BREAK") == 0;
}

int ts_prompt_strip(const char *prompt, char **out)
{
    ts_prompt_segment *segs = NULL;
    int n = 0, rc = ts_prompt_parse(prompt, &segs, &n);
    if (rc != TS_OK)
        return rc;
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(segs[i].text);
    /* Each BREAK becomes one space, never longer than the word it replaces. */
    char *s = *out = malloc(len);
    if (!s)
        rc = ts_fail(TS_ERR_NOMEM, "prompt: out of memory");
    else
        *s = '\0';
    for (int i = 0; s && i < n; i++)
        s = stpcpy(s, is_break(&segs[i]) ? " " : segs[i].text);
    ts_prompt_segments_free(segs, n);
    return rc;
}

/* A1111's tokenize_line loop over the segments' tokens. */
static int pack(const ts_clip_tokenizer *tok, const ts_prompt_segment *segs, int n_segs, int backtrack, chunk_out *o)
{
    int32_t *comma = NULL;
    int n_comma = 0;
    int rc = ts_clip_encode(tok, ",", &comma, &n_comma);
    int32_t comma_id = rc == TS_OK && n_comma == 1 ? comma[0] : -1;
    free(comma);
    chunk ch = {.n = 0};
    int last_comma = -1;
    for (int s = 0; s < n_segs && rc == TS_OK; s++) {
        if (is_break(&segs[s])) {
            rc = emit_chunk(o, &ch, 0);
            last_comma = -1;
            continue;
        }
        int32_t *ids = NULL;
        int n = 0;
        rc = ts_clip_encode(tok, segs[s].text, &ids, &n);
        for (int p = 0; p < n && rc == TS_OK; p++) {
            if (ids[p] == comma_id)
                last_comma = ch.n;
            else if (backtrack != 0 && ch.n == TS_PROMPT_CHUNK_TOKENS && last_comma != -1 &&
                     ch.n - last_comma <= backtrack) {
                /* move the words after the last comma into the next chunk */
                chunk moved = {.n = ch.n - (last_comma + 1)};
                memcpy(moved.tokens, ch.tokens + last_comma + 1, (size_t)moved.n * sizeof *moved.tokens);
                memcpy(moved.mults, ch.mults + last_comma + 1, (size_t)moved.n * sizeof *moved.mults);
                ch.n = last_comma + 1;
                rc = emit_chunk(o, &ch, 0);
                ch = moved;
                last_comma = -1;
            }
            if (rc == TS_OK && ch.n == TS_PROMPT_CHUNK_TOKENS) {
                rc = emit_chunk(o, &ch, 0);
                last_comma = -1;
            }
            ch.tokens[ch.n] = ids[p];
            ch.mults[ch.n++] = (float)segs[s].weight;
        }
        free(ids);
    }
    if (rc == TS_OK && (ch.n > 0 || o->out->n_chunks == 0))
        rc = emit_chunk(o, &ch, 1);
    return rc;
}

void ts_prompt_tokens_free(ts_prompt_tokens *t)
{
    free(t->ids);
    free(t->weights);
    *t = (ts_prompt_tokens){0};
}

int ts_prompt_tokenize(const ts_clip_tokenizer *tok, const char *prompt, int32_t pad_id,
                       const ts_prompt_options *opts, ts_prompt_tokens *out)
{
    ts_prompt_options def = {.emphasis = 1, .comma_backtrack = 20};
    if (!opts)
        opts = &def;
    ts_prompt_segment plain = {.text = (char *)prompt, .weight = 1.0}, *segs = &plain;
    int n_segs = 1, rc = TS_OK;
    if (opts->emphasis)
        rc = ts_prompt_parse(prompt, &segs, &n_segs);
    if (rc != TS_OK)
        return rc;
    *out = (ts_prompt_tokens){0};
    chunk_out o = {.out = out, .pad_id = pad_id};
    rc = pack(tok, segs, n_segs, opts->comma_backtrack, &o);
    if (opts->emphasis)
        ts_prompt_segments_free(segs, n_segs);
    if (rc != TS_OK)
        ts_prompt_tokens_free(out);
    return rc;
}
