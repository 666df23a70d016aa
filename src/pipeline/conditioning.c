/*
 * Prompt -> cross-attention context for SD1 / SD2 / SDXL (see conditioning.h for the
 * per-family choices and the A1111 behaviour reproduced).
 *
 * A "tower" is one CLIP text encoder with the padding id and hidden-state choice its
 * family uses.  Encoding tokenizes the prompt once per tower (the towers differ only
 * in their padding id, so chunks and weights line up), runs every chunk of a tower as
 * one batch, applies emphasis chunk by chunk, and writes each tower's features into
 * its column range of the shared context rows.  The empty-chunk encoding needed to pad
 * a negative prompt is cached in the encoder (one slot, keyed by clip skip, guarded by
 * a mutex since encoders are shared read-only between threads) so a prompt pair costs
 * one extra chunk once, not on every call.
 */
#include "pipeline/conditioning.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"

#define CHUNK TS_CLIP_CONTEXT /* 77 ids per chunk */

typedef struct {
    ts_clip_text model;
    int32_t pad_id;
    int final_norm;
} tower;

struct ts_text_encoders {
    ts_family family;
    int n_towers;
    tower t[2];
    int default_skip;
    ts_prompt_options prompt;
    pthread_mutex_t lock;
    int empty_skip; /* clip skip of the cached empty chunk; 0: none cached */
    float *empty;   /* [77, D] */
};

/* ---- loading ---- */

static int is_sd3(ts_family f) { return f == TS_FAMILY_SD3 || f == TS_FAMILY_SD35; }

/* Prefix of component `comp` in wf, else of its first CLIP tower; NULL when it has none. */
static const char *tower_prefix(ts_weights *wf, ts_component comp, int any)
{
    if (!wf)
        return NULL;
    ts_model_info info;
    ts_family_detect(wf, &info);
    if (info.comp[comp].prefix)
        return info.comp[comp].prefix;
    return any ? ts_clip_text_prefix(wf, 0) : NULL;
}

/* The tower from the main file if it has the component, else from the separate file. */
static int load_tower(tower *tw, ts_weights *main, ts_weights *separate, ts_component comp,
                      const ts_clip_load_opts *opts, int32_t pad_id, int final_norm)
{
    const char *what = ts_component_name(comp);
    const char *prefix = tower_prefix(main, comp, 0);
    ts_weights *wf = main;
    if (!prefix) {
        wf = separate;
        prefix = tower_prefix(separate, comp, 1);
    }
    if (!prefix) {
        if (separate)
            return ts_fail(TS_ERR_MODEL, "%s: no CLIP text encoder in the file", ts_weights_path(separate));
        if (comp == TS_COMP_OPENCLIP_H)
            return ts_fail(TS_ERR_MODEL, "%s: no %s text encoder in the file",
                           main ? ts_weights_path(main) : "(no model)", what);
        return ts_fail(TS_ERR_MODEL, "%s: no %s text encoder in the file (give a separate %s file)",
                       main ? ts_weights_path(main) : "(no model)", what, comp == TS_COMP_CLIP_G ? "clip_g" : "clip_l");
    }
    tw->pad_id = pad_id;
    tw->final_norm = final_norm;
    return ts_clip_text_load(wf, prefix, opts, &tw->model);
}

int ts_text_encoders_load_opts(ts_family family, ts_weights *main, ts_weights *clip_l,
                               ts_weights *clip_g, const ts_text_encoders_opts *opts,
                               ts_text_encoders **out)
{
    *out = NULL;
    if (family != TS_FAMILY_SD1 && family != TS_FAMILY_SD2 && family != TS_FAMILY_SDXL && !is_sd3(family))
        return ts_fail(TS_ERR_UNSUPPORTED, "CLIP prompt conditioning is for sd1, sd2, sdxl and sd3 models, not %s",
                       ts_family_name(family));
    const ts_text_encoders_opts none = {0};
    if (!opts)
        opts = &none;
    ts_text_encoders *enc = calloc(1, sizeof *enc);
    if (!enc)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    enc->family = family;
    enc->prompt = opts->prompt ? *opts->prompt : (ts_prompt_options){.emphasis = 1, .comma_backtrack = 20};
    int rc;
    switch (family) {
    case TS_FAMILY_SD1:
        enc->n_towers = 1;
        enc->default_skip = 1;
        rc = load_tower(&enc->t[0], main, clip_l, TS_COMP_CLIP_L, &opts->tower[0], TS_CLIP_EOS, 1);
        break;
    case TS_FAMILY_SD2:
        enc->n_towers = 1;
        enc->default_skip = 2;
        rc = load_tower(&enc->t[0], main, NULL, TS_COMP_OPENCLIP_H, &opts->tower[0], 0, 1);
        break;
    default:
        enc->n_towers = 2;
        enc->default_skip = 2;
        rc = load_tower(&enc->t[0], main, clip_l, TS_COMP_CLIP_L, &opts->tower[0], TS_CLIP_EOS, 0);
        if (!rc)
            rc = load_tower(&enc->t[1], main, clip_g, TS_COMP_CLIP_G, &opts->tower[1], 0, 0);
        /* SD3 pools CLIP-L without its projection (ComfyUI and the reference ask for the
         * unprojected output), whether or not the file carries one. */
        if (!rc && is_sd3(family)) {
            enc->t[0].model.proj.data = NULL;
            enc->t[0].model.proj_dim = enc->t[0].model.width;
        }
        break;
    }
    if (rc) {
        free(enc);
        return rc;
    }
    pthread_mutex_init(&enc->lock, NULL);
    *out = enc;
    return 0;
}

int ts_text_encoders_load(ts_family family, ts_weights *main, ts_weights *clip_l,
                          ts_weights *clip_g, ts_text_encoders **out)
{
    return ts_text_encoders_load_opts(family, main, clip_l, clip_g, NULL, out);
}

void ts_text_encoders_free(ts_text_encoders *enc)
{
    if (!enc)
        return;
    pthread_mutex_destroy(&enc->lock);
    free(enc->empty);
    free(enc);
}

ts_family ts_text_encoders_family(const ts_text_encoders *enc) { return enc->family; }

int ts_text_encoders_context_dim(const ts_text_encoders *enc)
{
    int d = 0;
    for (int i = 0; i < enc->n_towers; i++)
        d += enc->t[i].model.width;
    return d;
}

int ts_text_encoders_pooled_dim(const ts_text_encoders *enc)
{
    if (is_sd3(enc->family))
        return enc->t[0].model.proj_dim + enc->t[1].model.proj_dim;
    return enc->family == TS_FAMILY_SDXL ? enc->t[1].model.proj_dim : 0;
}

int ts_text_encoders_clip_skip(const ts_text_encoders *enc, int clip_skip)
{
    return clip_skip > 0 ? clip_skip : enc->default_skip;
}

/* ---- encoding ---- */

/* A1111 "Original" emphasis on one chunk z [tokens, width]: scale each token's row by its
 * weight, then the whole chunk by mean(before) / mean(after).  With every weight 1 this is
 * the identity, so it is skipped.  If the weighted chunk has mean exactly 0 the ratio is
 * undefined; the chunk is then left weighted but unscaled rather than turned into NaN. */
static void emphasize(float *z, const float *w, int64_t tokens, int64_t width)
{
    int64_t t;
    for (t = 0; t < tokens && w[t] == 1.0f; t++) {
    }
    if (t == tokens)
        return;
    const int64_t n = tokens * width;
    double before = 0.0, after = 0.0;
    for (int64_t i = 0; i < n; i++)
        before += z[i];
    for (t = 0; t < tokens; t++)
        for (int64_t c = 0; c < width; c++) {
            z[t * width + c] *= w[t];
            after += z[t * width + c];
        }
    if (after == 0.0 || !isfinite(before / after))
        return;
    const float scale = (float)(before / after);
    for (int64_t i = 0; i < n; i++)
        z[i] *= scale;
}

/* Runs every chunk of one tower as a batch and writes its emphasised features into columns
 * [col, col + W) of ctx rows (row stride ld); pooled (E floats) of the first chunk when asked. */
static int encode_tower(const tower *tw, const ts_prompt_tokens *tok, int clip_skip, ts_arena *arena, float *ctx,
                        int64_t ld, int64_t col, float *pooled)
{
    const ts_clip_text *m = &tw->model;
    const int64_t W = m->width, B = tok->n_chunks;
    size_t mark = ts_arena_mark(arena);
    ts_clip_text_opts o = {clip_skip, tw->final_norm};
    ts_tensor hidden, pool;
    int rc = ts_clip_text_forward(m, tok->ids, B, CHUNK, &o, arena, &hidden, pooled ? &pool : NULL);
    if (rc)
        return rc;
    for (int64_t c = 0; c < B; c++) {
        float *z = hidden.data + c * CHUNK * W;
        emphasize(z, tok->weights + c * CHUNK, CHUNK, W);
        for (int64_t t = 0; t < CHUNK; t++)
            memcpy(ctx + (c * CHUNK + t) * ld + col, z + t * W, (size_t)W * sizeof(float));
    }
    if (pooled)
        memcpy(pooled, pool.data, (size_t)m->proj_dim * sizeof(float));
    ts_arena_reset(arena, mark);
    return 0;
}

/* Address space for one tower's batch: the forward pass holds its output, the residual
 * stream and one layer's temporaries (rows x (4W + F) floats). */
static size_t arena_bytes(const ts_text_encoders *enc, int64_t chunks)
{
    size_t most = 0;
    for (int i = 0; i < enc->n_towers; i++) {
        const ts_clip_text *m = &enc->t[i].model;
        size_t rows = (size_t)chunks * CHUNK;
        size_t floats = rows * (size_t)(6 * m->width + m->mlp) + (size_t)chunks * (size_t)m->proj_dim;
        if (floats > most)
            most = floats;
    }
    return 2 * most * sizeof(float) + ((size_t)16 << 20);
}

static ts_tensor alloc_tensor(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return ts_tensor_view(malloc((size_t)n * sizeof(float)), ndim, shape);
}

/* Tokenizes and encodes `prompt` into context (and pooled for SDXL); no empty chunk. */
static int encode_chunks(const ts_text_encoders *enc, const char *prompt, int clip_skip, ts_conditioning *out,
                         ts_prompt_tokens *tokens_out)
{
    const ts_clip_tokenizer *tokenizer = ts_clip_tokenizer_default();
    if (!tokenizer)
        return TS_ERR_FORMAT;
    ts_prompt_tokens tok[2];
    memset(tok, 0, sizeof tok);
    int rc = 0, n = 0;
    for (; n < enc->n_towers && !rc; n++)
        rc = ts_prompt_tokenize(tokenizer, prompt, enc->t[n].pad_id, &enc->prompt, &tok[n]);
    if (!rc && n == 2 && tok[1].n_chunks != tok[0].n_chunks) /* same text and rules: cannot differ */
        rc = ts_fail(TS_ERR_FORMAT, "prompt chunks differ between the text encoders");
    const int64_t D = ts_text_encoders_context_dim(enc), chunks = tok[0].n_chunks;
    const int pooled_dim = ts_text_encoders_pooled_dim(enc);
    ts_arena *arena = NULL;
    if (!rc) {
        out->context = alloc_tensor(3, (int64_t[]){1, chunks * CHUNK, D});
        if (pooled_dim)
            out->pooled = alloc_tensor(2, (int64_t[]){1, pooled_dim});
        arena = ts_arena_create(arena_bytes(enc, chunks));
        if (!out->context.data || (pooled_dim && !out->pooled.data))
            rc = ts_fail(TS_ERR_NOMEM, "out of memory for a %lld-chunk prompt", (long long)chunks);
        else if (!arena)
            rc = TS_ERR_NOMEM;
    }
    /* Pooled: SDXL bigG's; SD3 CLIP-L's then bigG's, side by side. */
    float *pooled = out->pooled.data;
    for (int i = 0, col = 0; i < enc->n_towers && !rc; col += enc->t[i].model.width, i++) {
        int pools = i == 1 || is_sd3(enc->family);
        rc = encode_tower(&enc->t[i], &tok[i], clip_skip, arena, out->context.data, D, col, pools ? pooled : NULL);
        pooled += pools ? enc->t[i].model.proj_dim : 0;
    }
    ts_arena_destroy(arena);
    for (int i = 0; i < n; i++) {
        if (i == 0 && tokens_out && !rc)
            *tokens_out = tok[0];
        else
            ts_prompt_tokens_free(&tok[i]);
    }
    return rc;
}

/* The empty chunk's encoding [77, D] into dst, from the cache or encoded now. */
static int empty_chunk(ts_text_encoders *enc, int clip_skip, float *dst)
{
    const size_t bytes = (size_t)CHUNK * (size_t)ts_text_encoders_context_dim(enc) * sizeof(float);
    pthread_mutex_lock(&enc->lock);
    int rc = 0;
    if (enc->empty_skip != clip_skip) {
        ts_conditioning e = {0};
        rc = encode_chunks(enc, "", clip_skip, &e, NULL);
        if (!rc) {
            free(enc->empty);
            enc->empty = e.context.data;
            enc->empty_skip = clip_skip;
            e.context.data = NULL;
        }
        ts_conditioning_free(&e);
    }
    if (!rc)
        memcpy(dst, enc->empty, bytes);
    pthread_mutex_unlock(&enc->lock);
    return rc;
}

int ts_encode_prompt_tokens(const ts_text_encoders *enc, const char *prompt, int clip_skip, ts_conditioning *out,
                            ts_prompt_tokens *tokens)
{
    memset(out, 0, sizeof *out);
    if (tokens)
        memset(tokens, 0, sizeof *tokens);
    if (!prompt)
        return ts_fail(TS_ERR_ARG, "no prompt");
    if (clip_skip < 0)
        return ts_fail(TS_ERR_ARG, "CLIP skip %d: must be 0 (the model's default) or more", clip_skip);
    int rc = encode_chunks(enc, prompt, ts_text_encoders_clip_skip(enc, clip_skip), out, tokens);
    if (rc)
        ts_conditioning_free(out);
    return rc;
}

int ts_encode_prompt(const ts_text_encoders *enc, const char *prompt, int clip_skip, ts_conditioning *out)
{
    int rc = ts_encode_prompt_tokens(enc, prompt, clip_skip, out, NULL);
    if (rc)
        return rc;
    out->empty = alloc_tensor(3, (int64_t[]){1, CHUNK, ts_text_encoders_context_dim(enc)});
    /* The cache is the encoder's only mutable state: the encoder is otherwise read-only. */
    rc = out->empty.data ? empty_chunk((ts_text_encoders *)enc, ts_text_encoders_clip_skip(enc, clip_skip),
                                       out->empty.data)
                         : ts_fail(TS_ERR_NOMEM, "out of memory");
    if (rc)
        ts_conditioning_free(out);
    return rc;
}

int ts_conditioning_match_length(ts_conditioning *a, ts_conditioning *b)
{
    const int64_t D = a->context.shape[2];
    if (a->context.ndim != 3 || b->context.ndim != 3 || b->context.shape[2] != D)
        return ts_fail(TS_ERR_ARG, "conditionings of different widths cannot be matched");
    ts_conditioning *s = a->context.shape[1] < b->context.shape[1] ? a : b;
    const int64_t have = s->context.shape[1], want = (s == a ? b : a)->context.shape[1];
    if (have == want)
        return 0;
    if (!s->empty.data || s->empty.shape[1] <= 0 || s->empty.shape[2] != D || (want - have) % s->empty.shape[1])
        return ts_fail(TS_ERR_ARG, "cannot pad a %lld-token conditioning to %lld tokens: no empty-chunk encoding",
                       (long long)have, (long long)want);
    float *grown = realloc(s->context.data, (size_t)(want * D) * sizeof(float));
    if (!grown)
        return ts_fail(TS_ERR_NOMEM, "out of memory");
    const int64_t chunk = s->empty.shape[1];
    for (int64_t at = have; at < want; at += chunk)
        memcpy(grown + at * D, s->empty.data, (size_t)(chunk * D) * sizeof(float));
    s->context.data = grown;
    s->context.shape[1] = want;
    return 0;
}

void ts_conditioning_free(ts_conditioning *c)
{
    if (!c)
        return;
    free(c->context.data);
    free(c->pooled.data);
    free(c->empty.data);
    memset(c, 0, sizeof *c);
}
