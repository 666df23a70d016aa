/*
 * Prompt conditioning (src/pipeline/conditioning.c) against independent references:
 * the golden cases' stored encoder outputs (pipeline_sd15's out.cond / out.uncond, the
 * clip_text_l / clip_text_g hidden states and pooled output, re-stored under the SD2 and
 * SDXL prefixes with st_build), the lower-level ts_clip_text_forward for every chunk of
 * long and BREAK prompts, and A1111's emphasis formula recomputed here in double from
 * the unweighted encoding.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "pipeline/conditioning.h"
#include "st_build.h"
#include "test.h"

#define T77 TS_CLIP_CONTEXT

static const char *shared_dir(void)
{
    const char *s = getenv("TESSERA_SHARED");
    return s ? s : "../shared";
}

static ts_safetensors *open_case_file(const char *casename, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/%s/%s", shared_dir(), casename, file);
    ts_safetensors *st = NULL;
    if (ts_st_open(path, &st) != 0)
        fprintf(stderr, "%s\n", ts_error_message());
    return st;
}

static ts_weights *open_case_model(const char *casename)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/%s/model.safetensors", shared_dir(), casename);
    ts_weights *wf = NULL;
    if (ts_weights_open(path, &wf) != 0)
        fprintf(stderr, "%s\n", ts_error_message());
    return wf;
}

/* The case's max_abs tolerance for `key` (tolerance[key].max_abs, else tolerance.max_abs). */
static double case_tol(const char *casename, const char *key)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/golden/%s/case.json", shared_dir(), casename);
    FILE *f = fopen(path, "rb");
    double tol = 0.0;
    if (!f)
        return tol;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc(1, (size_t)n + 1);
    if (fread(text, 1, (size_t)n, f) == (size_t)n) {
        cJSON *root = cJSON_Parse(text);
        const cJSON *t = cJSON_GetObjectItem(root, "tolerance");
        const cJSON *k = cJSON_GetObjectItem(t, key);
        const cJSON *m = cJSON_GetObjectItem(k ? k : t, "max_abs");
        tol = cJSON_IsNumber(m) ? m->valuedouble : 0.0;
        cJSON_Delete(root);
    }
    free(text);
    fclose(f);
    return tol;
}

/* A stored tensor as f32 (malloc'd). */
static float *io_f32(const ts_safetensors *io, const char *name, int64_t *numel)
{
    const ts_st_tensor *t = ts_st_find(io, name);
    if (!t)
        return NULL;
    size_t n = ts_st_numel(t);
    float *f = malloc(n * sizeof *f);
    ts_to_f32(t->dtype, ts_st_data(io, t), f, n);
    if (numel)
        *numel = (int64_t)n;
    return f;
}

/* Row `row` of a stored int64 [B, 77] id tensor. */
/* A model tensor widened to f32 (malloc'd), NULL when missing. */
static float *weight_f32(ts_weights *wf, const char *name)
{
    ts_weight w;
    if (ts_weights_get(wf, NULL, name, &w) != 0)
        return NULL;
    float *f = malloc((size_t)ts_weight_numel(&w) * sizeof *f);
    if (f)
        ts_weight_to_f32(&w, f);
    return f;
}

static void io_ids(const ts_safetensors *io, const char *name, int row, int32_t *ids)
{
    const ts_st_tensor *t = ts_st_find(io, name);
    const int64_t *v = ts_st_data(io, t);
    for (int i = 0; i < T77; i++)
        ids[i] = (int32_t)v[row * T77 + i];
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double d = 0.0;
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* Max |a - b| over columns [col, col + w) of a's rows (stride lda) against b [rows, w]. */
static double max_abs_cols(const float *a, int64_t lda, int64_t col, const float *b, int64_t rows, int64_t w)
{
    double d = 0.0;
    for (int64_t r = 0; r < rows; r++)
        d = fmax(d, max_abs_diff(a + r * lda + col, b + r * w, w));
    return d;
}

static double mean_cols(const float *a, int64_t lda, int64_t col, int64_t rows, int64_t w)
{
    double s = 0.0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < w; c++)
            s += a[r * lda + col + c];
    return s / (double)(rows * w);
}

/* Every tensor of `src` under from_prefix, renamed to to_prefix + rest, data copied as stored. */
static void add_renamed(st_build *b, const ts_weights *src, const char *from_prefix, const char *to_prefix)
{
    size_t fl = strlen(from_prefix);
    for (size_t i = 0; i < ts_weights_count(src); i++) {
        const ts_weight_info *t = ts_weights_info(src, i);
        if (strncmp(t->name, from_prefix, fl) != 0)
            continue;
        char name[200];
        snprintf(name, sizeof name, "%s%s", to_prefix, t->name + fl);
        st_build_add(b, name, t->dtype, t->ndim, t->shape, ts_weights_data(src, t));
    }
}

/* Fixture: golden files, the encoders under test, and memory images that must outlive them. */
typedef struct {
    ts_weights *l, *g, *built;
    void *img;
    ts_text_encoders *enc;
} fixture;

static void fixture_free(fixture *f)
{
    ts_text_encoders_free(f->enc);
    ts_weights_close(f->built);
    free(f->img);
    ts_weights_close(f->l);
    ts_weights_close(f->g);
    memset(f, 0, sizeof *f);
}

static const ts_text_encoders_opts heads4 = {.tower = {{4, TS_CLIP_ACT_AUTO}, {4, TS_CLIP_ACT_AUTO}}};

/* A tiny SDXL text-encoder file: clip_text_l's CLIP-L under embedders.0 and clip_text_g's bigG
 * under embedders.1 (with_l 0: bigG only). */
static int build_sdxl(fixture *f, int with_l)
{
    f->l = open_case_model("clip_text_l");
    f->g = open_case_model("clip_text_g");
    if (!f->l || !f->g)
        return -1;
    st_build *b = calloc(1, sizeof *b);
    if (with_l)
        add_renamed(b, f->l, "cond_stage_model.transformer.", "conditioner.embedders.0.transformer.");
    add_renamed(b, f->g, "conditioner.embedders.1.model.", "conditioner.embedders.1.model.");
    size_t len;
    f->img = st_build_finish(b, &len);
    free(b);
    return ts_weights_open_memory(f->img, len, &f->built);
}

/* ---- SD1: the pipeline_sd15 checkpoint ---- */

static const char *const sd15_prompt = "a photograph of an astronaut riding a horse";

static int load_sd15(fixture *f)
{
    f->l = open_case_model("pipeline_sd15");
    if (!f->l)
        return -1;
    ts_model_info info;
    ts_family_detect(f->l, &info);
    CHECK(info.family == TS_FAMILY_SD1);
    ts_text_encoders_opts o = {.tower = {{2, TS_CLIP_ACT_AUTO}}}; /* the case's num_attention_heads */
    int rc = ts_text_encoders_load_opts(info.family, f->l, NULL, NULL, &o, &f->enc);
    if (rc)
        fprintf(stderr, "%s\n", ts_error_message());
    return rc;
}

static void test_sd15_matches_golden(void)
{
    fixture f = {0};
    ts_safetensors *io = open_case_file("pipeline_sd15", "io.safetensors");
    CHECK(io && load_sd15(&f) == 0);
    if (!io || !f.enc) {
        fixture_free(&f);
        ts_st_close(io);
        return;
    }
    CHECK(ts_text_encoders_context_dim(f.enc) == 32 && ts_text_encoders_pooled_dim(f.enc) == 0);
    CHECK(ts_text_encoders_clip_skip(f.enc, 0) == 1);
    const char *prompts[2] = {sd15_prompt, "blurry, low quality, watermark"};
    const char *outs[2] = {"out.cond", "out.uncond"}, *ids_names[2] = {"in.cond_ids", "in.uncond_ids"};
    for (int k = 0; k < 2; k++) {
        ts_conditioning c;
        ts_prompt_tokens tok;
        CHECK(ts_encode_prompt_tokens(f.enc, prompts[k], 0, &c, &tok) == 0);
        CHECK(c.context.ndim == 3 && c.context.shape[0] == 1 && c.context.shape[1] == T77 && c.context.shape[2] == 32);
        CHECK(c.pooled.data == NULL);
        int32_t want_ids[T77];
        io_ids(io, ids_names[k], 0, want_ids);
        CHECK(tok.n_chunks == 1 && memcmp(tok.ids, want_ids, sizeof want_ids) == 0);
        float *want = io_f32(io, outs[k], NULL);
        double d = max_abs_diff(c.context.data, want, T77 * 32), tol = case_tol("pipeline_sd15", outs[k]);
        CHECK_MSG(tol > 0 && d <= tol, "%s: max |diff| %g, tolerance %g", outs[k], d, tol);
        free(want);
        ts_prompt_tokens_free(&tok);
        ts_conditioning_free(&c);
    }
    ts_st_close(io);
    fixture_free(&f);
}

/* "(astronaut:1.5)": same ids; the result is A1111's formula applied to the plain encoding. */
static void test_weight_restores_mean(void)
{
    fixture f = {0};
    if (load_sd15(&f) != 0) {
        CHECK(0);
        fixture_free(&f);
        return;
    }
    ts_conditioning plain, w;
    ts_prompt_tokens tp, tw;
    CHECK(ts_encode_prompt_tokens(f.enc, sd15_prompt, 0, &plain, &tp) == 0);
    CHECK(ts_encode_prompt_tokens(f.enc, "a photograph of an (astronaut:1.5) riding a horse", 0, &w, &tw) == 0);
    CHECK(memcmp(tp.ids, tw.ids, sizeof(int32_t) * T77) == 0);
    int weighted = 0;
    for (int t = 0; t < T77; t++) {
        CHECK(tw.weights[t] == 1.0f || tw.weights[t] == 1.5f);
        weighted += tw.weights[t] == 1.5f;
    }
    CHECK(weighted >= 1 && tw.weights[0] == 1.0f);

    const int64_t D = 32, n = T77 * D;
    const float *z = plain.context.data;
    double before = 0.0, after = 0.0;
    for (int64_t i = 0; i < n; i++) {
        before += z[i];
        after += (double)z[i] * tw.weights[i / D];
    }
    double worst = 0.0, scale = before / after, zmax = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double want = (double)z[i] * tw.weights[i / D] * scale;
        worst = fmax(worst, fabs(want - w.context.data[i]));
        zmax = fmax(zmax, fabs(want));
    }
    CHECK_MSG(worst <= 1e-6 * zmax, "weighted encoding off by %g (scale %g)", worst, scale);
    CHECK(fabs(scale - 1.0) > 1e-4); /* the test would not see a missing rescale otherwise */
    CHECK_NEAR(mean_cols(w.context.data, D, 0, T77, D), before / (double)n, 1e-6 * zmax);
    ts_prompt_tokens_free(&tp);
    ts_prompt_tokens_free(&tw);
    ts_conditioning_free(&plain);
    ts_conditioning_free(&w);
    fixture_free(&f);
}

/* A chunk encoded in a batch and alone may differ in the last bits: the f32 GEMM
 * (OpenBLAS) blocks the sums differently for different row counts. */
#define BATCH_ORDER_TOL 1e-5

/* Each chunk of the conditioning equals the encoder run directly on that chunk's ids. */
static void check_chunks_direct(ts_weights *st, const char *prefix, int heads, const ts_conditioning *c,
                                const ts_prompt_tokens *tok)
{
    ts_clip_text m;
    ts_clip_load_opts lo = {heads, TS_CLIP_ACT_AUTO};
    CHECK(ts_clip_text_load(st, prefix, &lo, &m) == 0);
    ts_arena *arena = ts_arena_create((size_t)1 << 26);
    for (int k = 0; k < tok->n_chunks; k++) {
        ts_tensor h;
        ts_clip_text_opts o = {1, 1};
        CHECK(ts_clip_text_forward(&m, tok->ids + k * T77, 1, T77, &o, arena, &h, NULL) == 0);
        const float *got = c->context.data + (int64_t)k * T77 * m.width;
        CHECK_MSG(max_abs_diff(got, h.data, T77 * m.width) <= BATCH_ORDER_TOL, "chunk %d differs from a direct run", k);
        ts_arena_reset(arena, 0);
    }
    ts_arena_destroy(arena);
}

static void test_long_prompt_chunks(void)
{
    fixture f = {0};
    if (load_sd15(&f) != 0) {
        CHECK(0);
        fixture_free(&f);
        return;
    }
    char prompt[2048] = "";
    for (int i = 0; i < 60; i++)
        strcat(prompt, i % 3 ? "red cat, " : "tall blue house, ");
    ts_conditioning c;
    ts_prompt_tokens tok;
    CHECK(ts_encode_prompt_tokens(f.enc, prompt, 0, &c, &tok) == 0);
    CHECK_MSG(tok.n_chunks >= 2, "%d chunks", tok.n_chunks);
    CHECK(c.context.shape[1] == (int64_t)tok.n_chunks * T77);
    check_chunks_direct(f.l, "cond_stage_model.transformer.", 2, &c, &tok);
    ts_prompt_tokens_free(&tok);
    ts_conditioning_free(&c);

    /* BREAK: two chunks, each the encoding of its half alone. */
    ts_conditioning br, a, b;
    CHECK(ts_encode_prompt_tokens(f.enc, "a red cat BREAK on a (blue:1.2) house", 0, &br, &tok) == 0);
    CHECK(tok.n_chunks == 2 && br.context.shape[1] == 2 * T77);
    CHECK(ts_encode_prompt(f.enc, "a red cat", 0, &a) == 0);
    CHECK(ts_encode_prompt(f.enc, "on a (blue:1.2) house", 0, &b) == 0);
    if (tok.n_chunks == 2) {
        CHECK(max_abs_diff(br.context.data, a.context.data, T77 * 32) <= BATCH_ORDER_TOL);
        CHECK(max_abs_diff(br.context.data + T77 * 32, b.context.data, T77 * 32) <= BATCH_ORDER_TOL);
    }
    ts_prompt_tokens_free(&tok);
    ts_conditioning_free(&br);
    ts_conditioning_free(&a);
    ts_conditioning_free(&b);
    fixture_free(&f);
}

static void test_match_length(void)
{
    fixture f = {0};
    if (load_sd15(&f) != 0) {
        CHECK(0);
        fixture_free(&f);
        return;
    }
    ts_conditioning cond, uncond, empty;
    CHECK(ts_encode_prompt(f.enc, "a cat BREAK a dog BREAK a bird", 0, &cond) == 0);
    CHECK(ts_encode_prompt(f.enc, "blurry", 0, &uncond) == 0);
    CHECK(ts_encode_prompt(f.enc, "", 0, &empty) == 0);
    CHECK(max_abs_diff(uncond.empty.data, empty.context.data, T77 * 32) == 0.0);
    float *first = malloc(T77 * 32 * sizeof *first), *cond_copy = malloc(3 * T77 * 32 * sizeof *cond_copy);
    memcpy(first, uncond.context.data, T77 * 32 * sizeof *first);
    memcpy(cond_copy, cond.context.data, 3 * T77 * 32 * sizeof *cond_copy);

    CHECK(ts_conditioning_match_length(&uncond, &cond) == 0); /* either order */
    CHECK(uncond.context.shape[1] == 3 * T77 && cond.context.shape[1] == 3 * T77);
    CHECK(max_abs_diff(uncond.context.data, first, T77 * 32) == 0.0);
    for (int k = 1; k < 3; k++)
        CHECK(max_abs_diff(uncond.context.data + k * T77 * 32, empty.context.data, T77 * 32) == 0.0);
    CHECK(max_abs_diff(cond.context.data, cond_copy, 3 * T77 * 32) == 0.0);
    CHECK(ts_conditioning_match_length(&cond, &uncond) == 0 && cond.context.shape[1] == 3 * T77);

    /* A hand-made conditioning has no empty-chunk encoding to pad with. */
    float data[T77 * 32] = {0};
    ts_conditioning bare = {.context = ts_tensor_view(data, 3, (int64_t[]){1, T77, 32})};
    CHECK(ts_conditioning_match_length(&bare, &cond) == TS_ERR_ARG);
    ts_conditioning narrow = {.context = ts_tensor_view(data, 3, (int64_t[]){1, T77, 16})};
    CHECK(ts_conditioning_match_length(&cond, &narrow) == TS_ERR_ARG);
    free(first);
    free(cond_copy);
    ts_conditioning_free(&cond);
    ts_conditioning_free(&uncond);
    ts_conditioning_free(&empty);
    fixture_free(&f);
}

/* ---- clip skip on CLIP-L (clip_text_l's SD1-layout model) ---- */

static void test_sd1_clip_skip(void)
{
    ts_weights *st = open_case_model("clip_text_l");
    ts_safetensors *io = open_case_file("clip_text_l", "io.safetensors");
    ts_text_encoders *enc = NULL;
    CHECK(st && io && ts_text_encoders_load_opts(TS_FAMILY_SD1, st, NULL, NULL, &heads4, &enc) == 0);
    if (!enc) {
        ts_weights_close(st);
        ts_st_close(io);
        return;
    }
    const double tol = case_tol("clip_text_l", "out.last_hidden_state");
    const char *prompts[2] = {sd15_prompt, ""};
    float *last = io_f32(io, "out.last_hidden_state", NULL), *pen = io_f32(io, "out.penultimate_normed", NULL);
    for (int p = 0; p < 2; p++) {
        ts_conditioning c1, c2;
        ts_prompt_tokens tok;
        int32_t want[T77];
        io_ids(io, "in.input_ids", p, want);
        CHECK(ts_encode_prompt_tokens(enc, prompts[p], 0, &c1, &tok) == 0);
        CHECK(memcmp(tok.ids, want, sizeof want) == 0);
        CHECK(ts_encode_prompt(enc, prompts[p], 2, &c2) == 0);
        double d1 = max_abs_diff(c1.context.data, last + p * T77 * 64, T77 * 64);
        double d2 = max_abs_diff(c2.context.data, pen + p * T77 * 64, T77 * 64);
        CHECK_MSG(tol > 0 && d1 <= tol && d2 <= tol, "prompt %d: skip 1 %g, skip 2 %g (tol %g)", p, d1, d2, tol);
        ts_prompt_tokens_free(&tok);
        ts_conditioning_free(&c1);
        ts_conditioning_free(&c2);
    }
    /* The cached empty chunk follows the clip skip of each request. */
    for (int round = 0; round < 2; round++)
        for (int skip = 1; skip <= 2; skip++) {
            ts_conditioning x, e;
            CHECK(ts_encode_prompt(enc, "x", skip, &x) == 0);
            CHECK(ts_encode_prompt_tokens(enc, "", skip, &e, NULL) == 0 && e.empty.data == NULL);
            CHECK_MSG(max_abs_diff(x.empty.data, e.context.data, T77 * 64) == 0.0, "skip %d round %d", skip, round);
            ts_conditioning_free(&x);
            ts_conditioning_free(&e);
        }
    ts_conditioning c;
    CHECK(ts_encode_prompt(enc, "x", 4, &c) == TS_ERR_ARG && c.context.data == NULL); /* 3 layers */
    CHECK(ts_encode_prompt(enc, "x", -1, &c) == TS_ERR_ARG);
    CHECK(ts_encode_prompt(enc, "(x:1.2.3)", 0, &c) == TS_ERR_ARG);
    free(last);
    free(pen);
    ts_text_encoders_free(enc);
    ts_weights_close(st);
    ts_st_close(io);
}

/* ---- SD2: clip_text_g's OpenCLIP tower under cond_stage_model.model. ---- */

static void test_sd2_penultimate_normed(void)
{
    fixture f = {0};
    f.g = open_case_model("clip_text_g");
    ts_safetensors *io = open_case_file("clip_text_g", "io.safetensors");
    CHECK(f.g && io);
    if (!f.g || !io) {
        fixture_free(&f);
        ts_st_close(io);
        return;
    }
    st_build *b = calloc(1, sizeof *b);
    add_renamed(b, f.g, "conditioner.embedders.1.model.", "cond_stage_model.model.");
    size_t len;
    f.img = st_build_finish(b, &len);
    free(b);
    CHECK(ts_weights_open_memory(f.img, len, &f.built) == 0);
    CHECK(ts_text_encoders_load_opts(TS_FAMILY_SD2, f.built, NULL, NULL, &heads4, &f.enc) == 0);
    if (f.enc) {
        CHECK(ts_text_encoders_clip_skip(f.enc, 0) == 2 && ts_text_encoders_context_dim(f.enc) == 64);
        ts_conditioning c;
        ts_prompt_tokens tok;
        int32_t want_ids[T77];
        io_ids(io, "in.input_ids", 0, want_ids); /* padded with 0 */
        CHECK(ts_encode_prompt_tokens(f.enc, sd15_prompt, 0, &c, &tok) == 0);
        CHECK(memcmp(tok.ids, want_ids, sizeof want_ids) == 0);
        /* ln_final(penultimate), by plain loops from the stored weights */
        float *pen = io_f32(io, "out.penultimate", NULL);
        float *lw = weight_f32(f.g, "conditioner.embedders.1.model.ln_final.weight");
        float *lb = weight_f32(f.g, "conditioner.embedders.1.model.ln_final.bias");
        double worst = 0.0;
        for (int t = 0; t < T77; t++) {
            const float *x = pen + t * 64;
            double mu = 0.0, var = 0.0;
            for (int k = 0; k < 64; k++)
                mu += x[k] / 64.0;
            for (int k = 0; k < 64; k++)
                var += (x[k] - mu) * (x[k] - mu) / 64.0;
            for (int k = 0; k < 64; k++) {
                double want = (x[k] - mu) / sqrt(var + 1e-5) * lw[k] + lb[k];
                worst = fmax(worst, fabs(want - c.context.data[t * 64 + k]));
            }
        }
        CHECK_MSG(worst <= 1e-4, "SD2 context off by %g", worst);
        free(pen);
        free(lw);
        free(lb);
        ts_prompt_tokens_free(&tok);
        ts_conditioning_free(&c);
    }
    ts_st_close(io);
    fixture_free(&f);
}

/* ---- SDXL: CLIP-L | bigG penultimate, pooled from bigG ---- */

static void check_sdxl(const ts_text_encoders *enc)
{
    ts_safetensors *iol = open_case_file("clip_text_l", "io.safetensors");
    ts_safetensors *iog = open_case_file("clip_text_g", "io.safetensors");
    float *lpen = io_f32(iol, "out.penultimate", NULL), *gpen = io_f32(iog, "out.penultimate", NULL);
    float *gpool = io_f32(iog, "out.pooled", NULL);
    const double tol = fmax(case_tol("clip_text_l", "out.penultimate"), case_tol("clip_text_g", "out.penultimate"));
    CHECK(ts_text_encoders_context_dim(enc) == 128 && ts_text_encoders_pooled_dim(enc) == 80);
    const char *prompts[2] = {sd15_prompt, ""};
    for (int p = 0; p < 2; p++) {
        ts_conditioning c;
        CHECK(ts_encode_prompt(enc, prompts[p], 0, &c) == 0);
        CHECK(c.context.shape[1] == T77 && c.context.shape[2] == 128);
        CHECK(c.pooled.ndim == 2 && c.pooled.shape[0] == 1 && c.pooled.shape[1] == 80);
        double dl = max_abs_cols(c.context.data, 128, 0, lpen + p * T77 * 64, T77, 64);
        double dg = max_abs_cols(c.context.data, 128, 64, gpen + p * T77 * 64, T77, 64);
        double dp = max_abs_diff(c.pooled.data, gpool + p * 80, 80);
        CHECK_MSG(tol > 0 && dl <= tol && dg <= tol && dp <= tol, "prompt %d: L %g G %g pooled %g (tol %g)", p, dl,
                  dg, dp, tol);
        ts_conditioning_free(&c);
    }
    /* Emphasis restores each tower's mean on its own (A1111 hijacks each embedder); the
     * pooled vector is taken before emphasis. */
    ts_conditioning plain, w;
    CHECK(ts_encode_prompt(enc, sd15_prompt, 0, &plain) == 0);
    CHECK(ts_encode_prompt(enc, "a photograph of an (astronaut:1.8) riding a [horse]", 0, &w) == 0);
    for (int col = 0; col <= 64; col += 64) {
        double m0 = mean_cols(plain.context.data, 128, col, T77, 64), m1 = mean_cols(w.context.data, 128, col, T77, 64);
        CHECK_MSG(fabs(m0 - m1) <= 1e-6 * fmax(1.0, fabs(m0)), "tower at column %d: mean %g -> %g", col, m0, m1);
    }
    CHECK(max_abs_diff(plain.context.data, w.context.data, T77 * 128) > 1e-3);
    CHECK(max_abs_diff(plain.pooled.data, w.pooled.data, 80) == 0.0);
    ts_conditioning_free(&plain);
    ts_conditioning_free(&w);

    /* Pooled comes from the first chunk only. */
    ts_conditioning two, one;
    CHECK(ts_encode_prompt(enc, "a photograph of an astronaut riding a horse BREAK a cat", 0, &two) == 0);
    CHECK(ts_encode_prompt(enc, sd15_prompt, 0, &one) == 0);
    CHECK(two.context.shape[1] == 2 * T77);
    CHECK(max_abs_diff(two.pooled.data, one.pooled.data, 80) == 0.0);
    ts_conditioning_free(&two);
    ts_conditioning_free(&one);
    free(lpen);
    free(gpen);
    free(gpool);
    ts_st_close(iol);
    ts_st_close(iog);
}

static void test_sdxl_from_one_file(void)
{
    fixture f = {0};
    CHECK(build_sdxl(&f, 1) == 0);
    CHECK(f.built && ts_text_encoders_load_opts(TS_FAMILY_SDXL, f.built, NULL, NULL, &heads4, &f.enc) == 0);
    if (f.enc)
        check_sdxl(f.enc);
    fixture_free(&f);
}

/* CLIP-L missing from the main file: taken from a separate clip_l file; without one, a clear error. */
static void test_sdxl_separate_clip_l(void)
{
    fixture f = {0};
    CHECK(build_sdxl(&f, 0) == 0);
    ts_text_encoders *enc = NULL;
    CHECK(ts_text_encoders_load_opts(TS_FAMILY_SDXL, f.built, NULL, NULL, &heads4, &enc) == TS_ERR_MODEL);
    CHECK(enc == NULL && strstr(ts_error_message(), "clip-l") && strstr(ts_error_message(), "clip_l"));
    CHECK(ts_text_encoders_load_opts(TS_FAMILY_SDXL, f.built, f.l, NULL, &heads4, &f.enc) == 0);
    if (f.enc)
        check_sdxl(f.enc);
    CHECK(ts_text_encoders_load(TS_FAMILY_FLUX_DEV, f.built, NULL, NULL, &enc) == TS_ERR_UNSUPPORTED);
    CHECK(ts_text_encoders_load_opts(TS_FAMILY_SD2, f.l, NULL, NULL, &heads4, &enc) == TS_ERR_MODEL);
    fixture_free(&f);
}

TEST_MAIN(TEST(test_sd15_matches_golden), TEST(test_weight_restores_mean), TEST(test_long_prompt_chunks),
          TEST(test_match_length), TEST(test_sd1_clip_skip), TEST(test_sd2_penultimate_normed),
          TEST(test_sdxl_from_one_file), TEST(test_sdxl_separate_clip_l))
