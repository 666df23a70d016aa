/*
 * CLIP BPE tokenizer (see clip_tokenizer.h).
 *
 * Vocabulary layout (fixed by the reference): ids 0..255 are the 256 bytes in
 * bytes_to_unicode() order, 256..511 the same with "</w>", 512 + r the result of
 * merge rank r, then BOS and EOS.  Because a merge result's id is 512 + its rank,
 * BPE can run on integer ids alone: one hash maps an id pair to its rank, and the
 * strings are only needed to resolve the merges file and for debugging.
 */
#include "text/clip_tokenizer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/embedded.h"
#include "text/hash.h"
#include "text/fix_text.h"
#include "text/unicode.h"

#define N_MERGES (TS_CLIP_VOCAB - 512 - 2)
#define STR_HASH_SIZE (1 << 17) /* > 2 x 49408 */
#define PAIR_HASH_SIZE (1 << 17)

struct ts_clip_tokenizer {
    char *strings[TS_CLIP_VOCAB];
    int32_t byte_id[256];
    int32_t str_hash[STR_HASH_SIZE]; /* id + 1, 0 = empty */
    uint64_t pair_key[PAIR_HASH_SIZE];
    int32_t pair_rank[PAIR_HASH_SIZE]; /* rank + 1, 0 = empty */
};

static int32_t str_lookup(const ts_clip_tokenizer *t, const char *s, size_t n)
{
    for (uint32_t h = ts_fnv1a(s, n) & (STR_HASH_SIZE - 1);; h = (h + 1) & (STR_HASH_SIZE - 1)) {
        int32_t id = t->str_hash[h] - 1;
        if (id < 0)
            return -1;
        if (strlen(t->strings[id]) == n && memcmp(t->strings[id], s, n) == 0)
            return id;
    }
}

static void str_insert(ts_clip_tokenizer *t, int32_t id)
{
    const char *s = t->strings[id];
    uint32_t h = ts_fnv1a(s, strlen(s)) & (STR_HASH_SIZE - 1);
    while (t->str_hash[h])
        h = (h + 1) & (STR_HASH_SIZE - 1);
    t->str_hash[h] = id + 1;
}

static uint32_t pair_slot(const ts_clip_tokenizer *t, uint64_t key)
{
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 47) & (PAIR_HASH_SIZE - 1);
    while (t->pair_rank[h] && t->pair_key[h] != key)
        h = (h + 1) & (PAIR_HASH_SIZE - 1);
    return h;
}

/* Merge rank of the pair (a, b), or -1. */
static int32_t pair_rank(const ts_clip_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    return t->pair_rank[pair_slot(t, key)] - 1;
}

/* bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 to
 * U+0100.. in byte order; vocabulary order lists the printable ones first. */
static int byte_order(int32_t order_cp[256], uint8_t order_byte[256])
{
    int k = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            order_byte[k] = (uint8_t)b;
            order_cp[k++] = b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            order_byte[k] = (uint8_t)b;
            order_cp[k++] = 256 + extra++;
        }
    return k;
}

static char *str_dup2(const char *a, size_t na, const char *b, size_t nb)
{
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb);
        s[na + nb] = 0;
    }
    return s;
}

void ts_clip_tokenizer_free(ts_clip_tokenizer *tok)
{
    if (!tok)
        return;
    for (int i = 0; i < TS_CLIP_VOCAB; i++)
        free(tok->strings[i]);
    free(tok);
}

/* Reads merge line `rank` ("A B") and defines id 512 + rank. */
static int add_merge(ts_clip_tokenizer *t, const char *line, size_t len, int rank)
{
    const char *sp = memchr(line, ' ', len);
    int32_t a = sp ? str_lookup(t, line, (size_t)(sp - line)) : -1;
    int32_t b = sp ? str_lookup(t, sp + 1, len - (size_t)(sp - line) - 1) : -1;
    if (a < 0 || b < 0)
        return ts_fail(TS_ERR_FORMAT, "CLIP merges line %d: \"%.*s\" is not a pair of known symbols", rank + 2,
                       (int)len, line);
    int32_t id = 512 + rank;
    t->strings[id] = str_dup2(line, (size_t)(sp - line), sp + 1, len - (size_t)(sp - line) - 1);
    if (!t->strings[id])
        return ts_fail(TS_ERR_NOMEM, "CLIP vocabulary: out of memory");
    if (str_lookup(t, t->strings[id], strlen(t->strings[id])) < 0)
        str_insert(t, id);
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t slot = pair_slot(t, key);
    if (!t->pair_rank[slot]) {
        t->pair_key[slot] = key;
        t->pair_rank[slot] = rank + 1;
    }
    return TS_OK;
}

int ts_clip_tokenizer_new(const char *merges_text, ts_clip_tokenizer **out)
{
    ts_clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return ts_fail(TS_ERR_NOMEM, "CLIP tokenizer: out of memory");
    int32_t order_cp[256];
    uint8_t order_byte[256];
    byte_order(order_cp, order_byte);
    int rc = TS_OK;
    for (int i = 0; i < 256 && rc == TS_OK; i++) {
        char u[5];
        int n = ts_utf8_put(order_cp[i], u);
        t->byte_id[order_byte[i]] = i;
        t->strings[i] = str_dup2(u, (size_t)n, "", 0);
        t->strings[256 + i] = str_dup2(u, (size_t)n, "</w>", 4);
        if (!t->strings[i] || !t->strings[256 + i])
            rc = ts_fail(TS_ERR_NOMEM, "CLIP tokenizer: out of memory");
        else {
            str_insert(t, i);
            str_insert(t, 256 + i);
        }
    }
    const char *p = strchr(merges_text, '\n'); /* line 0 is a version header */
    for (int rank = 0; rank < N_MERGES && rc == TS_OK; rank++) {
        if (!p || !p[1]) {
            rc = ts_fail(TS_ERR_FORMAT, "CLIP merges: %d lines, expected at least %d", rank + 1, N_MERGES + 1);
            break;
        }
        const char *line = p + 1, *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        rc = add_merge(t, line, len, rank);
        p = end;
    }
    if (rc == TS_OK) {
        t->strings[TS_CLIP_BOS] = str_dup2("<|startoftext|>", 15, "", 0);
        t->strings[TS_CLIP_EOS] = str_dup2("<|endoftext|>", 13, "", 0);
        if (!t->strings[TS_CLIP_BOS] || !t->strings[TS_CLIP_EOS])
            rc = ts_fail(TS_ERR_NOMEM, "CLIP tokenizer: out of memory");
    }
    if (rc != TS_OK) {
        ts_clip_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return TS_OK;
}

static ts_clip_tokenizer *default_tok;
static char default_error[256];

static void load_default(void)
{
    unsigned char *text = NULL;
    size_t size = 0;
    int rc = ts_blob_load(TS_BLOB_CLIP_BPE, &text, &size);
    if (rc == TS_OK)
        rc = ts_clip_tokenizer_new((const char *)text, &default_tok);
    free(text);
    if (rc != TS_OK)
        snprintf(default_error, sizeof default_error, "%s", ts_error_message());
}

const ts_clip_tokenizer *ts_clip_tokenizer_default(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, load_default);
    if (!default_tok)
        ts_fail(TS_ERR_FORMAT, "embedded CLIP vocabulary: %s", default_error);
    return default_tok;
}

const char *ts_clip_token_str(const ts_clip_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < TS_CLIP_VOCAB ? tok->strings[id] : NULL;
}

/* ---- cleaning ------------------------------------------------------------------ */

/* whitespace_clean(): runs of whitespace -> one ' ', then strip. */
static void collapse_spaces(ts_u32 *s)
{
    int n = 0, in_run = 0;
    for (int i = 0; i < s->n; i++) {
        int space = ts_is_space(s->c[i]);
        if (!space || !in_run)
            s->c[n++] = space ? ' ' : s->c[i];
        in_run = space;
    }
    int lead = n > 0 && s->c[0] == ' ';
    if (n > lead && s->c[n - 1] == ' ')
        n--;
    if (lead)
        memmove(s->c, s->c + 1, (size_t)(n - 1) * sizeof *s->c);
    s->n = n - lead;
}

static int clean(const char *text, ts_u32 *s)
{
    int rc = ts_utf8_decode(text, strlen(text), s);
    if (rc == TS_OK)
        rc = ts_fix_text(s);
    if (rc == TS_OK)
        rc = ts_html_unescape(s);
    if (rc == TS_OK)
        rc = ts_html_unescape(s);
    if (rc == TS_OK) {
        collapse_spaces(s);
        rc = ts_u32_lower(s);
    }
    return rc;
}

int ts_clip_clean(const char *text, char **out)
{
    ts_u32 s = {0};
    int rc = clean(text, &s);
    if (rc == TS_OK) {
        *out = ts_u32_to_utf8(&s);
        rc = *out ? TS_OK : TS_ERR_NOMEM;
    }
    ts_u32_free(&s);
    return rc;
}

/* ---- pre-split and BPE ----------------------------------------------------------- */

typedef struct {
    int32_t *ids;
    int n, cap;
} id_list;

static int ids_push(id_list *l, int32_t id)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        int32_t *grown = realloc(l->ids, (size_t)cap * sizeof *grown);
        if (!grown)
            return ts_fail(TS_ERR_NOMEM, "CLIP tokenizer: out of memory");
        l->ids = grown;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return TS_OK;
}

/* BPE of one pre-split piece (its UTF-8 bytes): merge the lowest-ranked adjacent
 * pair everywhere, left to right, until no pair has a rank. */
static int bpe_piece(const ts_clip_tokenizer *t, const unsigned char *bytes, int n, id_list *out)
{
    int32_t *sym = malloc((size_t)n * sizeof *sym);
    if (!sym)
        return ts_fail(TS_ERR_NOMEM, "CLIP tokenizer: out of memory");
    for (int i = 0; i < n; i++)
        sym[i] = t->byte_id[bytes[i]];
    sym[n - 1] += 256; /* the word-final symbol carries "</w>" */
    int m = n;
    for (;;) {
        int32_t best = -1;
        for (int i = 0; i + 1 < m; i++) {
            int32_t r = pair_rank(t, sym[i], sym[i + 1]);
            if (r >= 0 && (best < 0 || r < best))
                best = r;
        }
        if (best < 0)
            break;
        int32_t merged = 512 + best;
        int k = 0;
        for (int i = 0; i < m; i++) {
            if (i + 1 < m && pair_rank(t, sym[i], sym[i + 1]) == best) {
                sym[k++] = merged;
                i++;
            } else
                sym[k++] = sym[i];
        }
        m = k;
    }
    int rc = TS_OK;
    for (int i = 0; i < m && rc == TS_OK; i++)
        rc = ids_push(out, sym[i]);
    free(sym);
    return rc;
}

static int starts_with(const ts_u32 *s, int i, const char *lit)
{
    for (int k = 0; lit[k]; k++)
        if (i + k >= s->n || s->c[i + k] != (unsigned char)lit[k])
            return 0;
    return 1;
}

static int32_t ascii_lower(int32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Length of the contraction 's 't 're 've 'm 'll 'd at i (case-insensitive), else 0. */
static int contraction_at(const ts_u32 *s, int i)
{
    if (s->c[i] != '\'' || i + 1 >= s->n)
        return 0;
    int32_t a = ascii_lower(s->c[i + 1]), b = i + 2 < s->n ? ascii_lower(s->c[i + 2]) : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* The reference regex, alternatives in order:
 * <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d | \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+
 * Returns the match length at i (0: whitespace, skipped); *special the id of a literal special token. */
static int match_at(const ts_u32 *s, int i, int32_t *special)
{
    *special = -1;
    if (starts_with(s, i, "<|startoftext|>")) {
        *special = TS_CLIP_BOS;
        return 15;
    }
    if (starts_with(s, i, "<|endoftext|>")) {
        *special = TS_CLIP_EOS;
        return 13;
    }
    int len = contraction_at(s, i);
    if (len)
        return len;
    int32_t c = s->c[i];
    if (ts_is_letter(c)) {
        while (i + len < s->n && ts_is_letter(s->c[i + len]))
            len++;
        return len;
    }
    if (ts_is_number(c))
        return 1;
    while (i + len < s->n && !ts_is_space(s->c[i + len]) && !ts_is_letter(s->c[i + len]) &&
           !ts_is_number(s->c[i + len]))
        len++;
    return len;
}

static int encode_clean(const ts_clip_tokenizer *t, const ts_u32 *s, id_list *out)
{
    unsigned char *bytes = malloc((size_t)s->n * 4 + 1);
    if (!bytes)
        return ts_fail(TS_ERR_NOMEM, "CLIP tokenizer: out of memory");
    int rc = TS_OK;
    for (int i = 0; i < s->n && rc == TS_OK;) {
        int32_t special;
        int len = match_at(s, i, &special);
        if (len == 0) {
            i++;
            continue;
        }
        if (special >= 0)
            rc = ids_push(out, special);
        else {
            int nb = 0;
            for (int k = 0; k < len; k++)
                nb += ts_utf8_put(s->c[i + k], (char *)bytes + nb);
            rc = bpe_piece(t, bytes, nb, out);
        }
        i += len;
    }
    free(bytes);
    return rc;
}

int ts_clip_encode(const ts_clip_tokenizer *tok, const char *text, int32_t **ids, int *n)
{
    ts_u32 s = {0};
    id_list out = {0};
    int rc = clean(text, &s);
    if (rc == TS_OK)
        rc = encode_clean(tok, &s, &out);
    ts_u32_free(&s);
    if (rc != TS_OK) {
        free(out.ids);
        return rc;
    }
    *ids = out.ids;
    *n = out.n;
    return TS_OK;
}

int ts_clip_tokenize(const ts_clip_tokenizer *tok, const char *text, int32_t pad_id, int32_t *row, int len,
                     int *truncated)
{
    if (len < 2)
        return ts_fail(TS_ERR_ARG, "CLIP context length %d: needs room for BOS and EOS", len);
    int32_t *ids = NULL;
    int n = 0;
    int rc = ts_clip_encode(tok, text, &ids, &n);
    if (rc != TS_OK)
        return rc;
    int keep = n < len - 2 ? n : len - 2;
    row[0] = TS_CLIP_BOS;
    if (keep > 0)
        memcpy(row + 1, ids, (size_t)keep * sizeof *row);
    row[1 + keep] = TS_CLIP_EOS;
    for (int i = 2 + keep; i < len; i++)
        row[i] = pad_id;
    if (truncated)
        *truncated = n > len - 2;
    free(ids);
    return TS_OK;
}
