/*
 * Conversion round trips: a safetensors file with one tensor of each kind the rules
 * distinguish (a quantisable layer, a norm gain, a 3x3 conv, an embedding, a small
 * tensor, one with values beyond f16, integers, a scalar) goes to GGUF at several
 * types; every tensor must come back with the dtype the rules give, its name and
 * shape, and values within the bound of its type.  GGUF back to safetensors must be
 * exact (dequantised values bit for bit, f16 kept as is).
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/quant.h"
#include "gguf_build.h"
#include "io/convert.h"
#include "io/weights.h"
#include "test.h"

enum { N_TENSORS = 8, MAX_VALUES = 64 * 256 };

static const ts_out_tensor src_tensors[N_TENSORS] = {
    {"model.diffusion_model.a.weight", TS_DTYPE_F32, 2, {64, 256}},
    {"model.diffusion_model.norm.weight", TS_DTYPE_F32, 1, {256}},
    {"model.diffusion_model.conv.weight", TS_DTYPE_F32, 4, {8, 16, 3, 3}},
    {"cond.token_embedding.weight", TS_DTYPE_F32, 2, {64, 256}},
    {"small.weight", TS_DTYPE_F32, 2, {8, 32}},
    {"big.weight", TS_DTYPE_F32, 2, {4, 256}},
    {"pos_ids", TS_DTYPE_I64, 2, {1, 8}},
    {"scalar", TS_DTYPE_F32, 0, {0}},
};
static float src_values[N_TENSORS][MAX_VALUES];
static int64_t pos_ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};

static int64_t numel_of(const ts_out_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

static int src_fill(void *ctx, size_t i, FILE *f)
{
    (void)ctx;
    if (i == 6)
        return fwrite(pos_ids, 8, 8, f) == 8 ? 0 : TS_ERR_IO;
    size_t n = (size_t)numel_of(&src_tensors[i]);
    return fwrite(src_values[i], 4, n, f) == n ? 0 : TS_ERR_IO;
}

static void make_source(const char *path)
{
    unsigned long long seed = 21;
    for (int i = 0; i < N_TENSORS; i++)
        for (int j = 0; j < MAX_VALUES; j++)
            src_values[i][j] = test_randf(&seed) * (i == 5 ? 1e6f : 1.0f);
    const char *k[] = {"format"}, *v[] = {"pt"};
    CHECK(ts_st_write(path, k, v, 1, src_tensors, N_TENSORS, src_fill, NULL) == 0);
}

/* Largest |error| / absmax of its block, over a tensor read back as f32. */
static double worst_rel_error(const float *x, const float *y, int64_t n, int64_t block)
{
    double worst = 0;
    for (int64_t b = 0; b < n; b += block) {
        double amax = 1e-30;
        for (int64_t i = b; i < b + block && i < n; i++)
            amax = fmax(amax, fabs(x[i]));
        for (int64_t i = b; i < b + block && i < n; i++)
            worst = fmax(worst, fabs((double)x[i] - y[i]) / amax);
    }
    return worst;
}

/* Converts to `type` and checks every tensor's dtype, shape and error bound. */
static void to_gguf(const char *src, const char *out, ts_dtype type, const ts_dtype want[N_TENSORS], double bound)
{
    ts_convert_stats stats;
    int rc = ts_convert(src, out, type, &stats);
    CHECK_MSG(rc == 0, "%s: %s", ts_dtype_name(type), ts_error_message());
    ts_weights *wf = NULL;
    CHECK(rc == 0 && ts_weights_open(out, &wf) == 0 && ts_weights_format_of(wf) == TS_WEIGHTS_GGUF);
    if (!wf)
        return;
    CHECK(stats.out_bytes > 0 && stats.in_bytes > 0 && stats.tensors[want[0]] >= 1);
    static float y[MAX_VALUES];
    for (int i = 0; i < N_TENSORS; i++) {
        const ts_out_tensor *t = &src_tensors[i];
        const ts_weight_info *info = ts_weights_find(wf, NULL, t->name);
        CHECK_MSG(info && info->dtype == want[i], "%s %s: dtype %s, want %s", ts_dtype_name(type), t->name,
                  info ? ts_dtype_name(info->dtype) : "missing", ts_dtype_name(want[i]));
        if (!info)
            continue;
        int ndim = t->ndim ? t->ndim : 1; /* a scalar is stored as [1] */
        CHECK_MSG(info->ndim == ndim, "%s", t->name);
        for (int d = 0; d < t->ndim; d++)
            CHECK_MSG(info->shape[d] == t->shape[d], "%s dim %d", t->name, d);
        if (i == 6) {
            CHECK(memcmp(ts_weights_data(wf, info), pos_ids, sizeof pos_ids) == 0);
            continue;
        }
        ts_weight w;
        CHECK(ts_weights_get(wf, NULL, t->name, &w) == 0);
        int64_t n = numel_of(t);
        ts_weight_to_f32(&w, y);
        /* Rounding to f16/bf16 is within half an ulp of the value (2^-11, 2^-8 relative). */
        double tol = info->dtype == TS_DTYPE_F32    ? 0
                     : info->dtype == TS_DTYPE_F16  ? 1.0 / 2048
                     : info->dtype == TS_DTYPE_BF16 ? 1.0 / 256
                                                    : bound;
        double err = worst_rel_error(src_values[i], y, n, ts_dtype_is_block(info->dtype) ? ts_dtype_block_len(info->dtype) : 32);
        CHECK_MSG(err <= tol, "%s %s: error %.4g > %.4g", ts_dtype_name(type), t->name, err, tol);
    }
    uint64_t len = 0;
    const ts_gguf_kv *kv = ts_gguf_kv_find(ts_weights_gguf(wf), "format");
    const char *s = kv ? ts_gguf_kv_str(kv, 0, &len) : NULL;
    CHECK(s && len == 2 && memcmp(s, "pt", 2) == 0);
    ts_weights_close(wf);
}

static void test_safetensors_to_gguf(void)
{
    char src[512], out[512];
    snprintf(src, sizeof src, "%s", tmp_path("convert_src.safetensors"));
    snprintf(out, sizeof out, "%s", tmp_path("convert_out.gguf"));
    make_source(src);
    const ts_dtype F32 = TS_DTYPE_F32, F16 = TS_DTYPE_F16, I64 = TS_DTYPE_I64;
    /* f16 everywhere from 2-D up, except the tensor whose values f16 cannot hold. */
    to_gguf(src, out, TS_DTYPE_F16, (ts_dtype[]){F16, F32, F16, F16, F16, F32, I64, F32}, 0);
    to_gguf(src, out, TS_DTYPE_COUNT, (ts_dtype[]){F16, F32, F16, F16, F16, F32, I64, F32}, 0);
    to_gguf(src, out, TS_DTYPE_BF16, (ts_dtype[]){TS_DTYPE_BF16, F32, TS_DTYPE_BF16, TS_DTYPE_BF16, TS_DTYPE_BF16,
                                                  TS_DTYPE_BF16, I64, F32}, 0);
    /* Quantised: the layer; conv rows of 3, the embedding and the small tensor stay
     * f16, the big tensor f32 (its block scales would overflow f16).  Bounds as in
     * test_quant.c. */
    ts_dtype q[] = {TS_DTYPE_Q8_0, TS_DTYPE_Q4_0, TS_DTYPE_Q4_K, TS_DTYPE_Q6_K};
    double bound[] = {0.5 / 127 + 1.0 / 2048, 1.0 / 8 + 1.0 / 1024, 2.0 / 15, 1.25 / 32};
    for (int k = 0; k < 4; k++)
        to_gguf(src, out, q[k], (ts_dtype[]){q[k], F32, F16, F16, F16, F32, I64, F32}, bound[k]);
    unlink(out);
    unlink(src);
}

static void test_gguf_to_safetensors(void)
{
    char src[512], mid[512], out[512];
    snprintf(src, sizeof src, "%s", tmp_path("convert_src2.safetensors"));
    snprintf(mid, sizeof mid, "%s", tmp_path("convert_mid.gguf"));
    snprintf(out, sizeof out, "%s", tmp_path("convert_back.safetensors"));
    make_source(src);
    CHECK(ts_convert(src, mid, TS_DTYPE_Q8_0, NULL) == 0);
    int rc = ts_convert(mid, out, TS_DTYPE_COUNT, NULL);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    ts_weights *g = NULL, *s = NULL;
    CHECK(ts_weights_open(mid, &g) == 0 && ts_weights_open(out, &s) == 0);
    if (!g || !s) {
        ts_weights_close(g);
        ts_weights_close(s);
        return;
    }
    CHECK(ts_weights_format_of(s) == TS_WEIGHTS_SAFETENSORS);
    CHECK(strcmp(ts_st_metadata(ts_weights_safetensors(s), "format"), "pt") == 0);
    CHECK(ts_st_metadata(ts_weights_safetensors(s), "general.quantization_version") == NULL);
    static float a[MAX_VALUES], b[MAX_VALUES];
    for (int i = 0; i < N_TENSORS; i++) {
        const ts_weight_info *gi = ts_weights_info(g, (size_t)i), *si = ts_weights_find(s, NULL, gi->name);
        CHECK_MSG(si && si->ndim == gi->ndim, "%s", gi->name);
        if (!si)
            continue;
        ts_dtype want = ts_dtype_is_block(gi->dtype) ? TS_DTYPE_F32 : gi->dtype;
        CHECK_MSG(si->dtype == want, "%s: %s", gi->name, ts_dtype_name(si->dtype));
        if (gi->dtype == want) {
            CHECK_MSG(si->bytes == gi->bytes && memcmp(ts_weights_data(s, si), ts_weights_data(g, gi), gi->bytes) == 0,
                      "%s not copied exactly", gi->name);
            continue;
        }
        ts_weight wg, ws;
        CHECK(ts_weights_get(g, NULL, gi->name, &wg) == 0 && ts_weights_get(s, NULL, gi->name, &ws) == 0);
        ts_weight_to_f32(&wg, a);
        ts_weight_to_f32(&ws, b);
        CHECK_MSG(memcmp(a, b, (size_t)ts_weight_numel(&wg) * 4) == 0, "%s not dequantised exactly", gi->name);
    }
    ts_weights_close(g);
    ts_weights_close(s);
    /* --type bf16 narrows every 2-D float tensor; 1-D keep their own type. */
    CHECK(ts_convert(mid, out, TS_DTYPE_BF16, NULL) == 0);
    CHECK(ts_weights_open(out, &s) == 0);
    if (s) {
        CHECK(ts_weights_find(s, NULL, "model.diffusion_model.a.weight")->dtype == TS_DTYPE_BF16);
        CHECK(ts_weights_find(s, NULL, "model.diffusion_model.norm.weight")->dtype == TS_DTYPE_F32);
        ts_weights_close(s);
    }
    unlink(src);
    unlink(mid);
    unlink(out);
}

static void test_errors(void)
{
    char src[512], out[512];
    snprintf(src, sizeof src, "%s", tmp_path("convert_bad.safetensors"));
    snprintf(out, sizeof out, "%s", tmp_path("convert_bad.gguf"));
    make_source(src);
    CHECK(ts_convert(src, "x.bin", TS_DTYPE_F16, NULL) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "must end in .gguf or .safetensors") != NULL);
    CHECK(ts_convert(src, "x.safetensors", TS_DTYPE_Q4_K, NULL) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "safetensors cannot hold Q4_K") != NULL);
    src_values[0][77] = NAN;
    const char *k[] = {"format"}, *v[] = {"pt"};
    CHECK(ts_st_write(src, k, v, 1, src_tensors, N_TENSORS, src_fill, NULL) == 0);
    CHECK(ts_convert(src, out, TS_DTYPE_Q8_0, NULL) == TS_ERR_FORMAT);
    CHECK_MSG(strstr(ts_error_message(), "\"model.diffusion_model.a.weight\" has non-finite values"), "%s",
              ts_error_message());
    CHECK(access(out, F_OK) != 0);
    CHECK(ts_convert("/nonexistent.gguf", out, TS_DTYPE_F16, NULL) == TS_ERR_IO);
    unlink(src);

    ts_dtype t;
    CHECK(ts_convert_type_from_name("Q4_K", &t) == 0 && t == TS_DTYPE_Q4_K);
    CHECK(ts_convert_type_from_name("q5_1", &t) == -1 && ts_convert_type_from_name("", &t) == -1);
    /* The rules on their own. */
    const int64_t layer[] = {320, 1280}, conv1[] = {320, 320, 1, 1};
    CHECK(ts_convert_pick(TS_DTYPE_Q4_K, 1, "x.proj.weight", TS_DTYPE_F16, 2, layer) == TS_DTYPE_Q4_K);
    CHECK(ts_convert_pick(TS_DTYPE_Q4_K, 1, "x.proj.weight", TS_DTYPE_BF16, 4, conv1) == TS_DTYPE_BF16);
    CHECK(ts_convert_pick(TS_DTYPE_Q8_0, 1, "label_emb.0.0.weight", TS_DTYPE_F32, 2, layer) == TS_DTYPE_F16);
    CHECK(ts_convert_pick(TS_DTYPE_Q8_0, 1, "encoder.shared.weight", TS_DTYPE_F32, 2, layer) == TS_DTYPE_F16);
    CHECK(ts_convert_pick(TS_DTYPE_Q8_0, 1, "conditioner.embedders.1.model.transformer.resblocks.0.mlp.c_fc.weight",
                          TS_DTYPE_F32, 2, layer) == TS_DTYPE_Q8_0);
    CHECK(ts_convert_pick(TS_DTYPE_Q8_0, 1, "conditioner.embedders.1.model.token_embedding.weight", TS_DTYPE_F32, 2,
                          layer) == TS_DTYPE_F16);
    CHECK(ts_convert_pick(TS_DTYPE_Q8_0, 1, "x.bias", TS_DTYPE_F16, 1, layer) == TS_DTYPE_F16);
    CHECK(ts_convert_pick(TS_DTYPE_COUNT, 0, "x.weight", TS_DTYPE_Q6_K, 2, layer) == TS_DTYPE_F32);
    CHECK(ts_convert_pick(TS_DTYPE_COUNT, 0, "x.weight", TS_DTYPE_BF16, 2, layer) == TS_DTYPE_BF16);
    CHECK(ts_convert_pick(TS_DTYPE_Q8_0, 1, "ids", TS_DTYPE_I32, 2, layer) == TS_DTYPE_I32);
}

TEST_MAIN(TEST(test_safetensors_to_gguf), TEST(test_gguf_to_safetensors), TEST(test_errors))
