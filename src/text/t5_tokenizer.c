/*
 * SentencePiece Unigram tokenizer for T5 (see t5_tokenizer.h and
 * shared/data/t5/README.md for the rules reproduced here).
 *
 * The model is read from a SentencePiece ModelProto (a tiny protobuf reader: only the
 * pieces and the normalizer's precompiled charsmap are needed) or from a Hugging Face
 * tokenizer.json (vocab + base64 charsmap).  The charsmap is a darts-clone double
 * array whose values index NUL-terminated replacement strings; it is used as stored,
 * because it is NFKC of an older Unicode plus T5's own rules, which no NFKC library
 * reproduces.  Pieces are found by hashing each prefix of up to the longest piece
 * length; prompts are short, so this beats building a trie.
 */
#include "text/t5_tokenizer.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "text/embedded.h"
#include "text/hash.h"
#include "text/unicode.h"

enum { PIECE_NORMAL = 1, PIECE_UNKNOWN = 2, PIECE_CONTROL = 3 };

struct ts_t5_tokenizer {
    int n_pieces;
    char **pieces;
    float *scores;
    uint8_t *types;
    int32_t *hash; /* NORMAL piece id + 1 by FNV-1a of its bytes, 0 = empty */
    uint32_t hash_mask;
    int max_piece_len;
    int32_t unk_id;
    float unk_score; /* min NORMAL score - 10, SentencePiece's unknown penalty */
    uint32_t *units; /* charsmap double array */
    size_t n_units;
    char *repl; /* replacement strings, NUL-terminated */
    size_t repl_size;
};

void ts_t5_tokenizer_free(ts_t5_tokenizer *tok)
{
    if (!tok)
        return;
    for (int i = 0; tok->pieces && i < tok->n_pieces; i++)
        free(tok->pieces[i]);
    free(tok->pieces);
    free(tok->scores);
    free(tok->types);
    free(tok->hash);
    free(tok->units);
    free(tok->repl);
    free(tok);
}

const char *ts_t5_piece(const ts_t5_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_pieces ? tok->pieces[id] : NULL;
}

/* The NORMAL piece equal to s[0..n), or -1; hash is ts_fnv1a(s, n). */
static int32_t piece_lookup_hashed(const ts_t5_tokenizer *t, const char *s, size_t n, uint32_t hash)
{
    for (uint32_t h = hash & t->hash_mask;; h = (h + 1) & t->hash_mask) {
        int32_t id = t->hash[h] - 1;
        if (id < 0)
            return -1;
        if (strlen(t->pieces[id]) == n && memcmp(t->pieces[id], s, n) == 0)
            return id;
    }
}

static int32_t piece_lookup(const ts_t5_tokenizer *t, const char *s, size_t n)
{
    return piece_lookup_hashed(t, s, n, ts_fnv1a(s, n));
}

/* Pieces, scores and types are filled: build the lookup hash and the unknown score. */
static int finish_model(ts_t5_tokenizer *t, const char *what)
{
    uint32_t size = 1;
    while (size < (uint32_t)t->n_pieces * 2u + 2u)
        size *= 2;
    t->hash = calloc(size, sizeof *t->hash);
    if (!t->hash)
        return ts_fail(TS_ERR_NOMEM, "%s: out of memory", what);
    t->hash_mask = size - 1;
    float min_score = 0;
    int any = 0;
    t->unk_id = -1;
    for (int i = 0; i < t->n_pieces; i++) {
        if (t->types[i] == PIECE_UNKNOWN && t->unk_id < 0)
            t->unk_id = i;
        if (t->types[i] != PIECE_NORMAL)
            continue;
        size_t n = strlen(t->pieces[i]);
        if (n == 0 || piece_lookup(t, t->pieces[i], n) >= 0)
            continue;
        uint32_t h = ts_fnv1a(t->pieces[i], n) & t->hash_mask;
        while (t->hash[h])
            h = (h + 1) & t->hash_mask;
        t->hash[h] = i + 1;
        if ((int)n > t->max_piece_len)
            t->max_piece_len = (int)n;
        if (!any || t->scores[i] < min_score)
            min_score = t->scores[i];
        any = 1;
    }
    if (!any || t->unk_id < 0)
        return ts_fail(TS_ERR_FORMAT, "%s: the vocabulary has no %s", what, any ? "unknown piece" : "normal pieces");
    t->unk_score = min_score - 10.0f;
    return TS_OK;
}

/* The precompiled charsmap blob: [u32 trie bytes][trie units][replacement strings]. */
static int set_charsmap(ts_t5_tokenizer *t, const unsigned char *blob, size_t size, const char *what)
{
    if (size < 4)
        return ts_fail(TS_ERR_FORMAT, "%s: precompiled charsmap of %zu bytes", what, size);
    size_t trie = (size_t)blob[0] | (size_t)blob[1] << 8 | (size_t)blob[2] << 16 | (size_t)blob[3] << 24;
    if (trie % 4 || trie < 4 || trie > size - 4)
        return ts_fail(TS_ERR_FORMAT, "%s: precompiled charsmap trie size %zu does not fit", what, trie);
    t->n_units = trie / 4;
    t->repl_size = size - 4 - trie;
    t->units = malloc(trie);
    t->repl = malloc(t->repl_size + 1);
    if (!t->units || !t->repl)
        return ts_fail(TS_ERR_NOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < t->n_units; i++) {
        const unsigned char *u = blob + 4 + 4 * i;
        t->units[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    memcpy(t->repl, blob + 4 + trie, t->repl_size);
    t->repl[t->repl_size] = 0; /* a final string without its NUL stays bounded */
    return TS_OK;
}

static int alloc_pieces(ts_t5_tokenizer *t, int n, const char *what)
{
    t->n_pieces = n;
    t->pieces = calloc((size_t)(n ? n : 1), sizeof *t->pieces);
    t->scores = calloc((size_t)(n ? n : 1), sizeof *t->scores);
    t->types = calloc((size_t)(n ? n : 1), sizeof *t->types);
    return t->pieces && t->scores && t->types ? TS_OK : ts_fail(TS_ERR_NOMEM, "%s: out of memory", what);
}

/* ---- SentencePiece ModelProto ------------------------------------------------------ */

typedef struct {
    const unsigned char *p, *end;
} pb_reader;

static int pb_varint(pb_reader *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        unsigned char b = *r->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* Reads one field header and its payload: varint (*v), fixed32/64 (*v) or bytes (*data, *len). */
static int pb_field(pb_reader *r, int *field, int *wire, uint64_t *v, const unsigned char **data, size_t *len)
{
    uint64_t tag;
    if (pb_varint(r, &tag) < 0)
        return -1;
    *field = (int)(tag >> 3);
    *wire = (int)(tag & 7);
    size_t avail = (size_t)(r->end - r->p);
    switch (*wire) {
    case 0:
        return pb_varint(r, v);
    case 1:
    case 5: {
        size_t n = *wire == 1 ? 8 : 4;
        if (avail < n)
            return -1;
        *v = 0;
        for (size_t i = 0; i < n; i++)
            *v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        return 0;
    }
    case 2:
        if (pb_varint(r, v) < 0 || *v > (uint64_t)(r->end - r->p))
            return -1;
        *data = r->p;
        *len = (size_t)*v;
        r->p += *len;
        return 0;
    }
    return -1;
}

/* SentencePiece { 1: piece, 2: score (float), 3: type (default NORMAL) }. */
static int parse_piece(ts_t5_tokenizer *t, int id, const unsigned char *data, size_t len)
{
    pb_reader r = {data, data + len};
    t->types[id] = PIECE_NORMAL;
    while (r.p < r.end) {
        int field, wire;
        uint64_t v = 0;
        const unsigned char *d = NULL;
        size_t n = 0;
        if (pb_field(&r, &field, &wire, &v, &d, &n) < 0)
            return -1;
        if (field == 1 && wire == 2) {
            free(t->pieces[id]);
            if (!(t->pieces[id] = malloc(n + 1)))
                return -1;
            memcpy(t->pieces[id], d, n);
            t->pieces[id][n] = 0;
        } else if (field == 2 && wire == 5) {
            uint32_t bits = (uint32_t)v;
            memcpy(&t->scores[id], &bits, sizeof bits);
        } else if (field == 3 && wire == 0)
            t->types[id] = (uint8_t)(v < 255 ? v : 255);
    }
    return t->pieces[id] ? 0 : -1;
}

static int parse_spiece(ts_t5_tokenizer *t, const unsigned char *data, size_t size, const char *what)
{
    int n = 0;
    for (int pass = 0; pass < 2; pass++) { /* count the pieces, then read them */
        pb_reader r = {data, data + size};
        int id = 0;
        while (r.p < r.end) {
            int field, wire;
            uint64_t v = 0;
            const unsigned char *d = NULL;
            size_t len = 0;
            if (pb_field(&r, &field, &wire, &v, &d, &len) < 0)
                return ts_fail(TS_ERR_FORMAT, "%s: not a SentencePiece model (bad protobuf)", what);
            if (field == 1 && wire == 2) {
                if (pass == 1 && parse_piece(t, id, d, len) < 0)
                    return ts_fail(TS_ERR_FORMAT, "%s: piece %d is malformed", what, id);
                id++;
            } else if (field == 3 && wire == 2 && pass == 1) {
                pb_reader nr = {d, d + len}; /* NormalizerSpec { 2: precompiled_charsmap } */
                while (nr.p < nr.end) {
                    int f2, w2;
                    const unsigned char *d2 = NULL;
                    size_t l2 = 0;
                    if (pb_field(&nr, &f2, &w2, &v, &d2, &l2) < 0)
                        return ts_fail(TS_ERR_FORMAT, "%s: malformed normalizer spec", what);
                    if (f2 == 2 && w2 == 2) {
                        int rc = set_charsmap(t, d2, l2, what);
                        if (rc < 0)
                            return rc;
                    }
                }
            }
        }
        if (pass == 0) {
            n = id;
            int rc = n > 0 ? alloc_pieces(t, n, what) : ts_fail(TS_ERR_FORMAT, "%s: no pieces", what);
            if (rc < 0)
                return rc;
        }
    }
    if (!t->units)
        return ts_fail(TS_ERR_UNSUPPORTED, "%s: the model has no precompiled charsmap", what);
    return TS_OK;
}

/* ---- Hugging Face tokenizer.json -------------------------------------------------- */

static int base64_value(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'                       ? 62
           : c == '/'                       ? 63
                                            : -1;
}

static unsigned char *base64_decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s), len = 0;
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (!out)
        return NULL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = base64_value((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = len;
    return out;
}

/* The precompiled_charsmap string of the normalizer, itself or inside a Sequence. */
static const char *json_charsmap(const cJSON *norm)
{
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(norm, "precompiled_charsmap");
    if (cJSON_IsString(cm))
        return cm->valuestring;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
    for (const cJSON *n = cJSON_IsArray(seq) ? seq->child : NULL; n; n = n->next) {
        const char *s = json_charsmap(n);
        if (s)
            return s;
    }
    return NULL;
}

static int parse_tokenizer_json(ts_t5_tokenizer *t, const unsigned char *data, size_t size, const char *what)
{
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
    const char *charsmap = json_charsmap(cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    int rc = TS_OK;
    if (!root)
        rc = ts_fail(TS_ERR_FORMAT, "%s: not valid JSON", what);
    else if (!cJSON_IsString(type) || strcmp(type->valuestring, "Unigram") != 0 || !cJSON_IsArray(vocab))
        rc = ts_fail(TS_ERR_UNSUPPORTED, "%s: not a Unigram (SentencePiece) tokenizer", what);
    else if (!charsmap)
        rc = ts_fail(TS_ERR_UNSUPPORTED, "%s: the normalizer has no precompiled_charsmap", what);
    if (rc == TS_OK)
        rc = alloc_pieces(t, cJSON_GetArraySize(vocab), what);
    int id = 0;
    for (const cJSON *e = rc == TS_OK ? vocab->child : NULL; e && rc == TS_OK; e = e->next, id++) {
        const cJSON *piece = cJSON_GetArrayItem(e, 0), *score = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsString(piece) || !cJSON_IsNumber(score))
            rc = ts_fail(TS_ERR_FORMAT, "%s: vocab entry %d is not [piece, score]", what, id);
        else if (!(t->pieces[id] = strdup(piece->valuestring)))
            rc = ts_fail(TS_ERR_NOMEM, "%s: out of memory", what);
        else {
            t->scores[id] = (float)score->valuedouble;
            t->types[id] = cJSON_IsNumber(unk) && unk->valueint == id ? PIECE_UNKNOWN : PIECE_NORMAL;
        }
    }
    /* special added tokens (<pad>, </s>, <extra_id_N>) are control pieces: never matched */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = cJSON_IsArray(added) && rc == TS_OK ? added->child : NULL; a; a = a->next) {
        const cJSON *aid = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special")) && cJSON_IsNumber(aid) &&
            aid->valueint >= 0 && aid->valueint < t->n_pieces && t->types[aid->valueint] == PIECE_NORMAL)
            t->types[aid->valueint] = PIECE_CONTROL;
    }
    if (rc == TS_OK) {
        size_t blob_len = 0;
        unsigned char *blob = base64_decode(charsmap, &blob_len);
        rc = blob ? set_charsmap(t, blob, blob_len, what)
                  : ts_fail(TS_ERR_FORMAT, "%s: precompiled_charsmap is not base64", what);
        free(blob);
    }
    cJSON_Delete(root);
    return rc;
}

int ts_t5_tokenizer_parse(const unsigned char *data, size_t size, const char *what, ts_t5_tokenizer **out)
{
    ts_t5_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return ts_fail(TS_ERR_NOMEM, "%s: out of memory", what);
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t'))
        i++;
    int rc = i < size && data[i] == '{' ? parse_tokenizer_json(t, data, size, what) : parse_spiece(t, data, size, what);
    if (rc == TS_OK)
        rc = finish_model(t, what);
    if (rc != TS_OK) {
        ts_t5_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return TS_OK;
}

int ts_t5_tokenizer_load(const char *path, ts_t5_tokenizer **out)
{
    unsigned char *data = NULL;
    size_t size = 0;
    int rc = ts_read_file(path, &data, &size);
    if (rc == TS_OK)
        rc = ts_t5_tokenizer_parse(data, size, path, out);
    free(data);
    return rc;
}

static ts_t5_tokenizer *default_tok;
static char default_error[256];

static void load_default(void)
{
    unsigned char *data = NULL;
    size_t size = 0;
    int rc = ts_blob_load(TS_BLOB_T5_SPIECE, &data, &size);
    if (rc == TS_OK)
        rc = ts_t5_tokenizer_parse(data, size, "embedded T5 spiece.model", &default_tok);
    free(data);
    if (rc != TS_OK)
        snprintf(default_error, sizeof default_error, "%s", ts_error_message());
}

const ts_t5_tokenizer *ts_t5_tokenizer_default(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, load_default);
    if (!default_tok)
        ts_fail(TS_ERR_FORMAT, "%s", default_error);
    return default_tok;
}

/* ---- normalization ------------------------------------------------------------------ */

typedef struct {
    char *s;
    size_t n, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown)
            return ts_fail(TS_ERR_NOMEM, "T5 tokenizer: out of memory");
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return TS_OK;
}

/* darts-clone unit fields */
static uint32_t unit_offset(uint32_t u)
{
    return (u >> 10) << ((u & 0x200) >> 6);
}

/* Longest charsmap key at s (n bytes): its length, *repl its replacement; 0 if none. */
static size_t charsmap_match(const ts_t5_tokenizer *t, const unsigned char *s, size_t n, const char **repl)
{
    size_t best = 0;
    uint32_t node = unit_offset(t->units[0]);
    for (size_t i = 0; i < n; i++) {
        node ^= s[i];
        if (node >= t->n_units)
            break;
        uint32_t u = t->units[node];
        if ((u & 0x800000FFu) != s[i])
            break;
        node ^= unit_offset(u);
        if (node >= t->n_units)
            break;
        if ((u >> 8) & 1) {
            uint32_t value = t->units[node] & 0x7FFFFFFFu;
            if (value < t->repl_size) {
                best = i + 1;
                *repl = t->repl + value;
            }
        }
    }
    return best;
}

/* SentencePiece's normalize_prefix: the chunk at s and the bytes it consumes. */
static size_t next_chunk(const ts_t5_tokenizer *t, const unsigned char *s, size_t n, const char **chunk,
                         size_t *chunk_len)
{
    size_t len = charsmap_match(t, s, n, chunk);
    if (len) {
        *chunk_len = strlen(*chunk);
        return len;
    }
    int32_t cp;
    int cl = ts_utf8_char_len(s, n, &cp);
    if (cl) {
        *chunk = (const char *)s;
        *chunk_len = (size_t)cl;
        return (size_t)cl;
    }
    *chunk = "\xEF\xBF\xBD"; /* malformed byte: U+FFFD, consuming one byte */
    *chunk_len = 3;
    return 1;
}

static int normalize(const ts_t5_tokenizer *t, const char *text, buf *out)
{
    static const char space_sym[] = "\xE2\x96\x81"; /* U+2581 */
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), pos = 0;
    const char *chunk;
    size_t clen, used;
    while (pos < n && (used = next_chunk(t, s + pos, n - pos, &chunk, &clen)) && clen == 1 && chunk[0] == ' ')
        pos += used; /* leading whitespace */
    int rc = buf_add(out, "", 0);
    if (pos == n || rc < 0)
        return rc;
    rc = buf_add(out, space_sym, 3); /* dummy prefix */
    int prev_space = 1;
    while (pos < n && rc == TS_OK) {
        used = next_chunk(t, s + pos, n - pos, &chunk, &clen);
        pos += used;
        while (prev_space && clen > 0 && chunk[0] == ' ') {
            chunk++;
            clen--;
        }
        if (clen == 0)
            continue;
        for (size_t i = 0; i < clen && rc == TS_OK; i++)
            rc = chunk[i] == ' ' ? buf_add(out, space_sym, 3) : buf_add(out, chunk + i, 1);
        prev_space = chunk[clen - 1] == ' ';
    }
    while (out->n >= 3 && memcmp(out->s + out->n - 3, space_sym, 3) == 0)
        out->s[out->n -= 3] = 0;
    return rc;
}

int ts_t5_normalize(const ts_t5_tokenizer *tok, const char *text, char **out)
{
    buf b = {0};
    int rc = normalize(tok, text, &b);
    if (rc < 0) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    return TS_OK;
}

/* ---- Viterbi ---------------------------------------------------------------------- */

static int utf8_lead_len(unsigned char b)
{
    return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
}

/* Best segmentation of the normalized bytes into ids[] (room for n; unknown runs merged). */
static int viterbi(const ts_t5_tokenizer *t, const char *s, size_t n, int32_t *ids, int *count)
{
    float *best = malloc((n + 1) * sizeof *best);
    int32_t *from = malloc((n + 1) * sizeof *from), *piece = malloc((n + 1) * sizeof *piece);
    int32_t *path = malloc((n + 1) * sizeof *path);
    if (!best || !from || !piece || !path) {
        free(best);
        free(from);
        free(piece);
        free(path);
        return ts_fail(TS_ERR_NOMEM, "T5 tokenizer: out of memory");
    }
    for (size_t i = 0; i <= n; i++)
        from[i] = -1;
    best[0] = 0;
    from[0] = 0;
    for (size_t st = 0; st < n; st += (size_t)utf8_lead_len((unsigned char)s[st])) {
        int char_len = utf8_lead_len((unsigned char)s[st]), single = 0;
        uint32_t hash = TS_FNV1A_INIT; /* ts_fnv1a of s[st, st + len), extended byte by byte */
        for (int len = 1; len <= t->max_piece_len && st + (size_t)len <= n; len++) {
            hash = ts_fnv1a_step(hash, (unsigned char)s[st + (size_t)len - 1]);
            int32_t id = piece_lookup_hashed(t, s + st, (size_t)len, hash);
            if (id < 0)
                continue;
            double cand = (double)best[st] + (double)t->scores[id];
            size_t e = st + (size_t)len;
            if (from[e] < 0 || cand > (double)best[e]) {
                best[e] = (float)cand;
                from[e] = (int32_t)st;
                piece[e] = id;
            }
            single |= len == char_len;
        }
        size_t e = st + (size_t)char_len;
        if (!single && e <= n) {
            float cand = best[st] + t->unk_score;
            if (from[e] < 0 || cand > best[e]) {
                best[e] = cand;
                from[e] = (int32_t)st;
                piece[e] = t->unk_id;
            }
        }
    }
    int m = 0;
    for (size_t e = n; e > 0; e = (size_t)from[e])
        path[m++] = piece[e];
    int k = 0; /* reverse, merging runs of unknowns */
    for (int i = m - 1; i >= 0; i--)
        if (!(path[i] == t->unk_id && k > 0 && ids[k - 1] == t->unk_id))
            ids[k++] = path[i];
    *count = k;
    free(best);
    free(from);
    free(piece);
    free(path);
    return TS_OK;
}

int ts_t5_encode(const ts_t5_tokenizer *tok, const char *text, int32_t **ids, int *n)
{
    buf b = {0};
    int rc = normalize(tok, text, &b);
    int32_t *out = rc == TS_OK ? malloc((b.n + 1) * sizeof *out) : NULL;
    if (rc == TS_OK && !out)
        rc = ts_fail(TS_ERR_NOMEM, "T5 tokenizer: out of memory");
    int count = 0;
    if (rc == TS_OK)
        rc = viterbi(tok, b.s, b.n, out, &count);
    free(b.s);
    if (rc != TS_OK) {
        free(out);
        return rc;
    }
    out[count++] = TS_T5_EOS;
    *ids = out;
    *n = count;
    return TS_OK;
}

int ts_t5_tokenize(const ts_t5_tokenizer *tok, const char *text, int32_t *row, int len, int *truncated)
{
    if (len < 1)
        return ts_fail(TS_ERR_ARG, "T5 sequence length %d: needs room for EOS", len);
    int32_t *ids = NULL;
    int n = 0;
    int rc = ts_t5_encode(tok, text, &ids, &n);
    if (rc != TS_OK)
        return rc;
    int keep = n - 1 < len - 1 ? n - 1 : len - 1;
    if (keep > 0)
        memcpy(row, ids, (size_t)keep * sizeof *row);
    row[keep] = TS_T5_EOS;
    for (int i = keep + 1; i < len; i++)
        row[i] = TS_T5_PAD;
    if (truncated)
        *truncated = n > len;
    free(ids);
    return TS_OK;
}
