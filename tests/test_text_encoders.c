/*
 * CLIP text and T5 encoders beyond the golden cases: the same weights re-stored in
 * the other CLIP layout or in f16 / bf16 must give the same outputs, the causal and
 * padding masks must make outputs independent of what they hide, T5's buckets must
 * follow their definition, and bad ids / options / files must fail cleanly.
 * The golden models in $TESSERA_SHARED/golden supply the weights.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden_file.h"
#include "st_build.h"
#include "test.h"
#include "text/clip_text.h"
#include "text/t5_encoder.h"

/* Max |a - b| relative to max |b|. */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0.0, s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0.0 ? d / s : d;
}

static float *tensor_f32(ts_weights *st, const ts_weight_info *t)
{
    size_t n = st_build_numel(t->ndim, t->shape);
    float *f = malloc((n ? n : 1) * sizeof *f);
    ts_to_f32(t->dtype, ts_weights_data(st, t), f, n);
    return f;
}

/* Re-stores every floating tensor of st in `dtype`, names unchanged; with `rounded`, keeps
 * f32 storage but rounds the values through `dtype` (the exact values the other holds). */
static void *restore_dtype(ts_weights *st, ts_dtype dtype, int rounded, size_t *len)
{
    st_build *b = calloc(1, sizeof *b);
    for (size_t i = 0; i < ts_weights_count(st); i++) {
        const ts_weight_info *t = ts_weights_info(st, i);
        if (t->dtype != TS_DTYPE_F32) {
            st_build_add(b, t->name, t->dtype, t->ndim, t->shape, ts_weights_data(st, t));
            continue;
        }
        size_t n = st_build_numel(t->ndim, t->shape);
        float *f = tensor_f32(st, t);
        if (rounded) {
            uint16_t *h = malloc(n * 2 + 2);
            if (dtype == TS_DTYPE_F16) {
                ts_f32_to_f16_n(f, h, n);
                ts_f16_to_f32_n(h, f, n);
            } else {
                ts_f32_to_bf16_n(f, h, n);
                ts_bf16_to_f32_n(h, f, n);
            }
            free(h);
        }
        st_build_add_f32(b, t->name, rounded ? TS_DTYPE_F32 : dtype, t->ndim, t->shape, f);
        free(f);
    }
    void *img = st_build_finish(b, len);
    free(b);
    return img;
}

/* The three prompts' ids of the clip_text_g case, rebuilt: BOS, a few words, EOS, pad 0. */
static void sample_ids(int32_t *ids, int64_t batch, int64_t tokens, int32_t pad)
{
    static const int32_t words[] = {320, 8853, 539, 550, 18376, 6765, 320, 4558};
    for (int64_t b = 0; b < batch; b++) {
        int64_t len = 2 + (b * 3) % 7;
        for (int64_t t = 0; t < tokens; t++)
            ids[b * tokens + t] = t == 0 ? 49406 : t <= len ? words[(t + b) % 8] : t == len + 1 ? 49407 : pad;
    }
}

typedef struct {
    ts_tensor hidden, pooled;
} clip_run;

static int run_clip(const ts_clip_text *m, const int32_t *ids, int64_t batch, int64_t tokens, int skip, int norm,
                    ts_arena *arena, clip_run *r)
{
    ts_clip_text_opts o = {skip, norm};
    return ts_clip_text_forward(m, ids, batch, tokens, &o, arena, &r->hidden, &r->pooled);
}

/* ---- CLIP layouts ------------------------------------------------------------- */

static void add_renamed(st_build *b, const char *name, const ts_weight *w)
{
    size_t n = (size_t)ts_weight_numel(w);
    float *f = malloc(n * sizeof *f);
    ts_weight_to_f32(w, f);
    st_build_add_f32(b, name, TS_DTYPE_F32, w->ndim, w->shape, f);
    free(f);
}

/* The OpenCLIP tower re-stored in HF layout (q/k/v split) under prefix `pre`, as converters
 * write it: the projection transposed to Linear convention (SD3's clip_g), or kept as
 * OpenCLIP's matrix under text_model.text_projection (stable-diffusion.cpp's SDXL files). */
static void *openclip_as_hf(const ts_clip_text *g, const char *pre, int linear_proj, size_t *len)
{
    char name[200];
    st_build *b = calloc(1, sizeof *b);
#define ADD(w, ...)                                                                                                    \
    do {                                                                                                               \
        int n_ = snprintf(name, sizeof name, "%s", pre);                                                               \
        snprintf(name + n_, sizeof name - (size_t)n_, __VA_ARGS__);                                                    \
        add_renamed(b, name, (w));                                                                                     \
    } while (0)
    ADD(&g->tok_emb, "text_model.embeddings.token_embedding.weight");
    ADD(&g->pos_emb, "text_model.embeddings.position_embedding.weight");
    for (int i = 0; i < g->layers; i++) {
        const ts_clip_layer *y = &g->layer[i];
        const char *at = "text_model.encoder.layers";
        ADD(&y->ln1_w, "%s.%d.layer_norm1.weight", at, i);
        ADD(&y->ln1_b, "%s.%d.layer_norm1.bias", at, i);
        ADD(&y->ln2_w, "%s.%d.layer_norm2.weight", at, i);
        ADD(&y->ln2_b, "%s.%d.layer_norm2.bias", at, i);
        ADD(&y->q_w, "%s.%d.self_attn.q_proj.weight", at, i);
        ADD(&y->q_b, "%s.%d.self_attn.q_proj.bias", at, i);
        ADD(&y->k_w, "%s.%d.self_attn.k_proj.weight", at, i);
        ADD(&y->k_b, "%s.%d.self_attn.k_proj.bias", at, i);
        ADD(&y->v_w, "%s.%d.self_attn.v_proj.weight", at, i);
        ADD(&y->v_b, "%s.%d.self_attn.v_proj.bias", at, i);
        ADD(&y->out_w, "%s.%d.self_attn.out_proj.weight", at, i);
        ADD(&y->out_b, "%s.%d.self_attn.out_proj.bias", at, i);
        ADD(&y->fc1_w, "%s.%d.mlp.fc1.weight", at, i);
        ADD(&y->fc1_b, "%s.%d.mlp.fc1.bias", at, i);
        ADD(&y->fc2_w, "%s.%d.mlp.fc2.weight", at, i);
        ADD(&y->fc2_b, "%s.%d.mlp.fc2.bias", at, i);
    }
    ADD(&g->final_w, "text_model.final_layer_norm.weight");
    ADD(&g->final_b, "text_model.final_layer_norm.bias");
#undef ADD
    if (linear_proj) {
        int64_t W = g->proj.shape[0], E = g->proj.shape[1];
        float *p = malloc((size_t)(W * E) * sizeof *p), *pt = malloc((size_t)(W * E) * sizeof *pt);
        ts_weight_to_f32(&g->proj, p);
        for (int64_t r = 0; r < W; r++)
            for (int64_t c = 0; c < E; c++)
                pt[c * W + r] = p[r * E + c];
        snprintf(name, sizeof name, "%stext_projection.weight", pre);
        st_build_add_f32(b, name, TS_DTYPE_F32, 2, (int64_t[]){E, W}, pt);
        free(p);
        free(pt);
    } else {
        snprintf(name, sizeof name, "%stext_model.text_projection", pre);
        add_renamed(b, name, &g->proj);
    }
    void *img = st_build_finish(b, len);
    free(b);
    return img;
}

static void check_hf_layout(const ts_clip_text *g, const char *pre, int linear_proj)
{
    size_t len;
    ts_weights *hf_st = NULL;
    void *img = openclip_as_hf(g, pre, linear_proj, &len);
    CHECK(ts_weights_open_memory(img, len, &hf_st) == 0);
    const char *found = hf_st ? ts_clip_text_prefix(hf_st, 0) : NULL;
    CHECK_MSG(found && strcmp(found, pre) == 0, "%s", pre);
    CHECK(hf_st && ts_clip_text_prefix(hf_st, 1) == NULL);
    ts_clip_text h;
    ts_clip_load_opts gelu = {4, TS_CLIP_ACT_GELU};
    CHECK(hf_st && ts_clip_text_load(hf_st, pre, &gelu, &h) == 0);
    CHECK(h.layout == TS_CLIP_LAYOUT_HF && h.proj_is_linear == linear_proj && h.proj_dim == 80 &&
          h.act == TS_CLIP_ACT_GELU);

    enum { B = 3, T = 77 };
    int32_t ids[B * T];
    sample_ids(ids, B, T, 0);
    ts_arena *arena = ts_arena_create((size_t)1 << 28);
    for (int skip = 1; skip <= 3; skip++) {
        clip_run a, c;
        CHECK(run_clip(g, ids, B, T, skip, skip == 1, arena, &a) == 0);
        CHECK(run_clip(&h, ids, B, T, skip, skip == 1, arena, &c) == 0);
        CHECK_MSG(rel_diff(c.hidden.data, a.hidden.data, B * T * 64) == 0.0, "%s skip %d: HF layout differs", pre,
                  skip);
        CHECK_MSG(rel_diff(c.pooled.data, a.pooled.data, B * 80) < 1e-6, "%s pooled %g", pre,
                  rel_diff(c.pooled.data, a.pooled.data, B * 80));
    }
    ts_arena_destroy(arena);
    ts_weights_close(hf_st);
    free(img);
}

static void test_clip_layouts_agree(void)
{
    ts_weights *st = test_open_golden_weights("clip_text_g", "model.safetensors");
    CHECK(st != NULL);
    if (!st)
        return;
    ts_clip_text g;
    ts_clip_load_opts gelu = {4, TS_CLIP_ACT_GELU};
    CHECK(ts_clip_text_load(st, ts_clip_text_prefix(st, 0), &gelu, &g) == 0);
    CHECK(g.layout == TS_CLIP_LAYOUT_OPENCLIP && g.layers == 3 && g.width == 64 && g.proj_dim == 80);
    check_hf_layout(&g, "text_encoders.clip_g.transformer.", 1);
    check_hf_layout(&g, "cond_stage_model.1.transformer.", 0);
    ts_weights_close(st);
}

/* Position t attends to positions <= t only: changing later tokens leaves it unchanged. */
static void test_clip_causal(void)
{
    ts_weights *st = test_open_golden_weights("clip_text_l", "model.safetensors");
    CHECK(st != NULL);
    if (!st)
        return;
    ts_clip_text m;
    CHECK(ts_clip_text_load(st, ts_clip_text_prefix(st, 0), &(ts_clip_load_opts){4, TS_CLIP_ACT_AUTO}, &m) == 0);
    CHECK(m.act == TS_CLIP_ACT_QUICK_GELU && m.layout == TS_CLIP_LAYOUT_HF && !m.proj.data && m.proj_dim == 64);
    enum { T = 20, CUT = 6 };
    int32_t a[T], b[T];
    sample_ids(a, 1, T, 49407);
    memcpy(b, a, sizeof a);
    for (int t = CUT + 1; t < T; t++)
        b[t] = 1000 + t;
    ts_arena *arena = ts_arena_create((size_t)1 << 26);
    clip_run ra, rb;
    CHECK(run_clip(&m, a, 1, T, 1, 1, arena, &ra) == 0);
    CHECK(run_clip(&m, b, 1, T, 1, 1, arena, &rb) == 0);
    CHECK(rel_diff(ra.hidden.data, rb.hidden.data, (CUT + 1) * 64) == 0.0);
    CHECK(rel_diff(ra.hidden.data + (CUT + 1) * 64, rb.hidden.data + (CUT + 1) * 64, 64) > 1e-3);
    ts_arena_destroy(arena);
    ts_weights_close(st);
}

static void test_clip_errors(void)
{
    ts_weights *st = test_open_golden_weights("clip_text_l", "model.safetensors");
    CHECK(st != NULL);
    if (!st)
        return;
    ts_clip_text m;
    CHECK(ts_clip_text_load(st, "nowhere.", NULL, &m) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "no CLIP text encoder") != NULL);
    CHECK(ts_clip_text_load(st, ts_clip_text_prefix(st, 0), &(ts_clip_load_opts){5, TS_CLIP_ACT_AUTO}, &m) ==
          TS_ERR_MODEL);
    CHECK(ts_clip_text_load(st, ts_clip_text_prefix(st, 0), &(ts_clip_load_opts){4, TS_CLIP_ACT_AUTO}, &m) == 0);
    ts_arena *arena = ts_arena_create((size_t)1 << 26);
    int32_t ids[78];
    sample_ids(ids, 1, 78, 49407);
    clip_run r;
    CHECK(run_clip(&m, ids, 1, 78, 1, 1, arena, &r) == TS_ERR_ARG);
    CHECK(run_clip(&m, ids, 1, 77, 0, 1, arena, &r) == TS_ERR_ARG);
    CHECK(run_clip(&m, ids, 1, 77, 4, 1, arena, &r) == TS_ERR_ARG);
    ids[3] = 49408;
    CHECK(run_clip(&m, ids, 1, 77, 1, 1, arena, &r) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "49408") != NULL);
    ids[3] = -1;
    CHECK(run_clip(&m, ids, 1, 77, 1, 1, arena, &r) == TS_ERR_ARG);
    CHECK(ts_arena_used(arena) == 0);
    ts_arena_destroy(arena);
    ts_weights_close(st);
}

/* ---- T5 ----------------------------------------------------------------------- */

/* The definition in double precision: exact below 8, log-spaced to 128, then 15; +16 for keys after the query. */
static int bucket_reference(int64_t rel)
{
    int64_t a = rel < 0 ? -rel : rel;
    int b = a < 8 ? (int)a : 8 + (int)(log((double)a / 8.0) / log(16.0) * 8.0);
    return (rel > 0 ? 16 : 0) + (b < 15 ? b : 15);
}

static void test_t5_buckets(void)
{
    int prev = -1;
    for (int64_t r = -1024; r <= 1024; r++) {
        int b = ts_t5_relative_bucket(r, 32, 128);
        CHECK_MSG(b == bucket_reference(r), "rel %lld: %d vs %d", (long long)r, b, bucket_reference(r));
        CHECK(b >= 0 && b < 32);
        if (r > 0) {
            CHECK(b == ts_t5_relative_bucket(-r, 32, 128) + 16);
            CHECK(b >= prev);
            prev = b;
        }
    }
    CHECK(ts_t5_relative_bucket(0, 32, 128) == 0);
    CHECK(ts_t5_relative_bucket(5, 32, 128) == 21 && ts_t5_relative_bucket(-5, 32, 128) == 5);
    CHECK(ts_t5_relative_bucket(90, 32, 128) == 30 && ts_t5_relative_bucket(91, 32, 128) == 31);
    CHECK(ts_t5_relative_bucket(-100000, 32, 128) == 15);
}

static const int32_t t5_ids[] = {37, 5, 91, 12, 64, 3, 100, 1, 0, 0, 0, 0};

/* With the mask hiding the padding, the real tokens' outputs are those of the
 * unpadded sequence (T5's position bias depends on distances only). */
static void test_t5_mask_hides_padding(void)
{
    ts_weights *st = test_open_golden_weights("t5_encoder", "model.safetensors");
    CHECK(st != NULL);
    if (!st)
        return;
    ts_t5_encoder m;
    CHECK(ts_t5_load(st, NULL, &m) == 0);
    CHECK(m.layers == 2 && m.heads == 4 && m.d_kv == 16 && m.d_ff == 96 && m.vocab == 128 && m.buckets == 32);
    enum { T = 12, REAL = 8 };
    int32_t mask[T];
    for (int t = 0; t < T; t++)
        mask[t] = t < REAL;
    ts_arena *arena = ts_arena_create((size_t)1 << 26);
    ts_tensor padded, alone, nomask;
    CHECK(ts_t5_forward(&m, t5_ids, mask, 1, T, arena, &padded) == 0);
    CHECK(ts_t5_forward(&m, t5_ids, NULL, 1, REAL, arena, &alone) == 0);
    CHECK(ts_t5_forward(&m, t5_ids, NULL, 1, T, arena, &nomask) == 0);
    CHECK_MSG(rel_diff(padded.data, alone.data, REAL * 64) < 1e-5, "%g", rel_diff(padded.data, alone.data, REAL * 64));
    CHECK(rel_diff(nomask.data, alone.data, REAL * 64) > 1e-3); /* without the mask, the pads are seen */
    /* a batch of two: each row's result is the same as alone */
    int32_t ids2[2 * T], mask2[2 * T];
    for (int t = 0; t < T; t++) {
        ids2[t] = t5_ids[(t + 3) % T] ? t5_ids[(t + 3) % T] : 7;
        mask2[t] = 1;
        ids2[T + t] = t5_ids[t];
        mask2[T + t] = mask[t];
    }
    ts_tensor both, first;
    CHECK(ts_t5_forward(&m, ids2, mask2, 2, T, arena, &both) == 0);
    CHECK(ts_t5_forward(&m, ids2, NULL, 1, T, arena, &first) == 0);
    CHECK(rel_diff(both.data, first.data, T * 64) < 1e-6);
    CHECK(rel_diff(both.data + T * 64, padded.data, T * 64) < 1e-6);
    ts_arena_destroy(arena);
    ts_weights_close(st);
}

/* ---- weights stored in f16 / bf16 ----------------------------------------------- */

/* Loads the encoder of a model file, runs it on fixed ids, returns a copy of its output
 * (n floats) and the dtype its weights were loaded in. */
typedef float *(*encode_fn)(ts_weights *st, ts_arena *arena, int64_t *n, ts_dtype *dtype);

static float *copy_out(const float *x, int64_t n)
{
    float *c = malloc((size_t)n * sizeof *c);
    memcpy(c, x, (size_t)n * sizeof *c);
    return c;
}

static float *encode_clip_l(ts_weights *st, ts_arena *arena, int64_t *n, ts_dtype *dtype)
{
    enum { B = 2, T = 77 };
    int32_t ids[B * T];
    sample_ids(ids, B, T, 49407);
    ts_clip_text m;
    clip_run r;
    ts_clip_load_opts o = {4, TS_CLIP_ACT_AUTO};
    if (ts_clip_text_load(st, ts_clip_text_prefix(st, 0), &o, &m) || run_clip(&m, ids, B, T, 2, 1, arena, &r))
        return NULL;
    *dtype = m.layer[2].fc2_w.dtype;
    *n = ts_tensor_numel(&r.hidden);
    return copy_out(r.hidden.data, *n);
}

static float *encode_t5(ts_weights *st, ts_arena *arena, int64_t *n, ts_dtype *dtype)
{
    ts_t5_encoder m;
    ts_tensor out;
    if (ts_t5_load(st, NULL, &m) || ts_t5_forward(&m, t5_ids, NULL, 1, 12, arena, &out))
        return NULL;
    *dtype = m.block[1].wo.dtype;
    *n = ts_tensor_numel(&out);
    return copy_out(out.data, *n);
}

/* Weights stored in f16 / bf16 are used as they are: the result equals that of f32
 * storage of the same (rounded) values. */
static void check_half_weights(const char *casename, encode_fn encode)
{
    ts_weights *st = test_open_golden_weights(casename, "model.safetensors");
    CHECK(st != NULL);
    ts_arena *arena = ts_arena_create((size_t)1 << 27);
    for (int k = 0; st && k < 2; k++) {
        ts_dtype dt = k ? TS_DTYPE_BF16 : TS_DTYPE_F16, got_dt = TS_DTYPE_F32, ref_dt = TS_DTYPE_F16;
        size_t l1, l2;
        void *half = restore_dtype(st, dt, 0, &l1), *ref = restore_dtype(st, dt, 1, &l2);
        ts_weights *s1 = NULL, *s2 = NULL;
        CHECK(ts_weights_open_memory(half, l1, &s1) == 0 && ts_weights_open_memory(ref, l2, &s2) == 0);
        int64_t n1 = 0, n2 = 0;
        float *a = s1 ? encode(s1, arena, &n1, &got_dt) : NULL, *c = s2 ? encode(s2, arena, &n2, &ref_dt) : NULL;
        CHECK_MSG(a && c && n1 == n2 && got_dt == dt && ref_dt == TS_DTYPE_F32, "%s %s", casename, ts_dtype_name(dt));
        if (a && c && n1 == n2)
            CHECK_MSG(rel_diff(a, c, n1) < 1e-6, "%s %s: %g", casename, ts_dtype_name(dt), rel_diff(a, c, n1));
        ts_arena_reset(arena, 0);
        free(a);
        free(c);
        ts_weights_close(s1);
        ts_weights_close(s2);
        free(half);
        free(ref);
    }
    ts_arena_destroy(arena);
    ts_weights_close(st);
}

static void test_half_weights(void)
{
    check_half_weights("clip_text_l", encode_clip_l);
    check_half_weights("t5_encoder", encode_t5);
}

/* embed_tokens instead of shared (SD3's reference loads that name), under SD3's prefix;
 * a v1.0 file (ReLU `wi`) is refused by name; bad ids fail. */
static void test_t5_names_and_errors(void)
{
    ts_weights *st = test_open_golden_weights("t5_encoder", "model.safetensors");
    CHECK(st != NULL);
    if (!st)
        return;
    st_build *b = calloc(1, sizeof *b);
    char name[200];
    for (size_t i = 0; i < ts_weights_count(st); i++) {
        const ts_weight_info *t = ts_weights_info(st, i);
        const char *n = strcmp(t->name, "shared.weight") == 0 ? "encoder.embed_tokens.weight" : t->name;
        snprintf(name, sizeof name, "text_encoders.t5xxl.transformer.%s", n);
        st_build_add(b, name, t->dtype, t->ndim, t->shape, ts_weights_data(st, t));
    }
    size_t len;
    void *img = st_build_finish(b, &len);
    ts_weights *s2 = NULL;
    CHECK(ts_weights_open_memory(img, len, &s2) == 0);
    ts_t5_encoder m1, m2;
    CHECK(ts_t5_load(st, NULL, &m1) == 0);
    CHECK(ts_t5_load(s2, NULL, &m2) == 0);
    ts_arena *arena = ts_arena_create((size_t)1 << 26);
    ts_tensor a, c;
    CHECK(ts_t5_forward(&m1, t5_ids, NULL, 1, 12, arena, &a) == 0);
    CHECK(ts_t5_forward(&m2, t5_ids, NULL, 1, 12, arena, &c) == 0);
    CHECK(rel_diff(a.data, c.data, 12 * 64) == 0.0);
    int32_t bad[3] = {5, 128, 1};
    size_t used = ts_arena_used(arena);
    CHECK(ts_t5_forward(&m1, bad, NULL, 1, 3, arena, &a) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "128") != NULL && ts_arena_used(arena) == used);
    CHECK(ts_t5_forward(&m1, bad, NULL, 1, 0, arena, &a) == TS_ERR_ARG);
    ts_weights_close(s2);
    free(img);

    for (size_t i = 0; i < ts_weights_count(st); i++) {
        const ts_weight_info *t = ts_weights_info(st, i);
        char *at = strstr(strcpy(name, t->name), "wi_0");
        if (strstr(t->name, "wi_1"))
            continue;
        if (at)
            memmove(at + 2, at + 4, strlen(at + 4) + 1);
        st_build_add(b, name, t->dtype, t->ndim, t->shape, ts_weights_data(st, t));
    }
    img = st_build_finish(b, &len);
    CHECK(ts_weights_open_memory(img, len, &s2) == 0);
    CHECK(ts_t5_load(s2, NULL, &m2) == TS_ERR_UNSUPPORTED);
    CHECK(strstr(ts_error_message(), "v1.0") != NULL);
    CHECK(ts_t5_load(s2, "nowhere.", &m2) == TS_ERR_MODEL);
    ts_weights_close(s2);
    free(img);
    free(b);
    ts_arena_destroy(arena);
    ts_weights_close(st);
}

TEST_MAIN(TEST(test_clip_layouts_agree), TEST(test_clip_causal), TEST(test_clip_errors), 
          TEST(test_t5_buckets), TEST(test_t5_mask_hides_padding), TEST(test_half_weights),
          TEST(test_t5_names_and_errors))
