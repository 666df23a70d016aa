/*
 * Container-neutral weight files: the same tensors written as safetensors and as GGUF
 * must look the same through ts_weights (names, PyTorch-order shapes, values); the
 * ComfyUI-GGUF "comfy.gguf.orig_shape" entries must restore shapes (as views when
 * rows stay whole blocks, widened otherwise) and be validated; lookups fail with
 * messages naming the tensor; metadata reads and page eviction work on both.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/quant.h"
#include "gguf_build.h"
#include "io/weights.h"
#include "test.h"

static float values[3][64];

static int fill_f32(void *ctx, size_t i, FILE *f)
{
    (void)ctx;
    size_t n = i == 0 ? 24 : i == 1 ? 5 : 64;
    return fwrite(values[i], 4, n, f) == n ? 0 : TS_ERR_IO;
}

static const ts_out_tensor tensors[] = {
    {"model.diffusion_model.conv.weight", TS_DTYPE_F32, 4, {2, 3, 2, 2}},
    {"model.diffusion_model.norm.bias", TS_DTYPE_F32, 1, {5}},
    {"first_stage_model.proj.weight", TS_DTYPE_F32, 2, {2, 32}},
};

static void same_view(ts_weights *wf, const char *what)
{
    CHECK_MSG(ts_weights_count(wf) == 3, "%s", what);
    for (size_t i = 0; i < 3; i++) {
        const ts_out_tensor *t = &tensors[i];
        const ts_weight_info *info = ts_weights_find(wf, NULL, t->name);
        CHECK_MSG(info && info->ndim == t->ndim && info->dtype == TS_DTYPE_F32, "%s: %s", what, t->name);
        for (int d = 0; info && d < t->ndim; d++)
            CHECK_MSG(info->shape[d] == t->shape[d], "%s: %s dim %d", what, t->name, d);
        ts_weight w;
        CHECK(ts_weights_get(wf, NULL, t->name, &w) == 0);
        float out[64];
        ts_weight_to_f32(&w, out);
        CHECK_MSG(memcmp(out, values[i], (size_t)ts_weight_numel(&w) * 4) == 0, "%s: %s values", what, t->name);
    }
    ts_weight w;
    CHECK(ts_weights_get_shaped(wf, "model.diffusion_model.", "conv.weight", 4, (int64_t[]){2, -1, 2, 2}, &w) == 0);
    CHECK(ts_weights_get_shaped(wf, "model.diffusion_model.", "conv.weight", 4, (int64_t[]){3, 2, 2, 2}, &w) ==
          TS_ERR_MODEL);
    CHECK_MSG(strstr(ts_error_message(), "\"model.diffusion_model.conv.weight\" has shape [2, 3, 2, 2], expected [3, 2, 2, 2]"),
              "%s", ts_error_message());
    CHECK(ts_weights_get(wf, "model.diffusion_model.", "missing", &w) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "missing tensor \"model.diffusion_model.missing\"") != NULL);
    CHECK(strstr(ts_error_message(), ts_weights_path(wf)) != NULL);
}

static void test_same_tensors_both_formats(void)
{
    unsigned long long seed = 5;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 64; j++)
            values[i][j] = test_randf(&seed);
    const char *keys[] = {"format"}, *vals[] = {"pt"};
    char st_path[512], gguf_path[512];
    snprintf(st_path, sizeof st_path, "%s", tmp_path("weights.safetensors"));
    snprintf(gguf_path, sizeof gguf_path, "%s", tmp_path("weights.gguf"));
    CHECK(ts_st_write(st_path, keys, vals, 1, tensors, 3, fill_f32, NULL) == 0);
    CHECK(ts_gguf_write(gguf_path, NULL, 0, tensors, 3, fill_f32, NULL) == 0);

    ts_weights *a = NULL, *b = NULL;
    int rc = ts_weights_open(st_path, &a);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    rc = ts_weights_open(gguf_path, &b);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (a) {
        CHECK(ts_weights_format_of(a) == TS_WEIGHTS_SAFETENSORS && ts_weights_safetensors(a) && !ts_weights_gguf(a));
        CHECK(strcmp(ts_st_metadata(ts_weights_safetensors(a), "format"), "pt") == 0);
        same_view(a, "safetensors");
    }
    if (b) {
        CHECK(ts_weights_format_of(b) == TS_WEIGHTS_GGUF && ts_weights_gguf(b) && !ts_weights_safetensors(b));
        same_view(b, "gguf");
        /* Stored innermost-first, seen outermost-first. */
        const ts_gguf_tensor *t = ts_gguf_find(ts_weights_gguf(b), "model.diffusion_model.conv.weight");
        CHECK(t && t->ne[0] == 2 && t->ne[3] == 2 && t->ne[2] == 3);
    }
    ts_weights_close(a);
    ts_weights_close(b);
    unlink(st_path);
    unlink(gguf_path);

    CHECK(ts_weights_open("/nonexistent/x.gguf", &a) == TS_ERR_IO && a == NULL);
    CHECK(strstr(ts_error_message(), "cannot open") != NULL);
    CHECK(ts_weights_open_memory("GGUF\3\0\0\0", 8, &a) == TS_ERR_FORMAT && a == NULL);
    CHECK(strstr(ts_error_message(), "too short for a GGUF header") != NULL);
    CHECK(ts_weights_open_memory("\2\0\0\0\0\0\0\0{}", 10, &a) == 0 && a && ts_weights_count(a) == 0);
    ts_weights_close(a);
}

static void orig_shape_kv(const char *tensor, int n, const int32_t *dims)
{
    char key[128];
    snprintf(key, sizeof key, "comfy.gguf.orig_shape.%s", tensor);
    str(key);
    le(TS_GGUF_ARRAY, 4);
    le(TS_GGUF_I32, 4);
    le((uint64_t)n, 8);
    for (int i = 0; i < n; i++)
        le((uint32_t)dims[i], 4);
}

/* Three flattened tensors as ComfyUI-GGUF writes them, plus one orig_shape key. */
static void comfy_file(const int32_t *conv_shape, int conv_ndim)
{
    header(3, 3, 4);
    orig_shape_kv("a", 3, (int32_t[]){3, 2, 32}); /* Q8_0 rows of 64 stay whole blocks */
    orig_shape_kv("conv", conv_ndim, conv_shape); /* Q4_K: see test_comfy_orig_shape */
    orig_shape_kv("h", 4, (int32_t[]){4, 1, 3, 3}); /* f16: any shape is a view */
    orig_shape_kv("gone", 1, (int32_t[]){7});       /* names no tensor: ignored */
    tinfo("a", 2, (uint64_t[]){64, 3}, TS_GGML_Q8_0, 0);
    tinfo("conv", 2, (uint64_t[]){256, 1}, TS_GGML_Q4_K, 224);
    tinfo("h", 1, (uint64_t[]){36}, TS_GGML_F16, 384);
    pad_to(32);
    unsigned long long seed = 17;
    for (int i = 0; i < 460; i++)
        u8((unsigned)((test_randf(&seed) + 1.0f) * 100.0f));
    for (int b = 0; b < 6; b++) /* sane Q8_0 scales */
        buf[len - 460 + 34 * b + 1] = 0x30;
    buf[len - 460 + 224 + 1] = 0x30; /* Q4_K d and dmin */
    buf[len - 460 + 224 + 3] = 0x30;
}

static void test_comfy_orig_shape(void)
{
    comfy_file((int32_t[]){16, 16}, 2); /* rows of 16 are not whole Q4_K blocks: widened */
    ts_weights *wf = NULL;
    int rc = ts_weights_open_memory(buf, len, &wf);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (!wf)
        return;
    const ts_gguf *g = ts_weights_gguf(wf);
    ts_weight w;
    CHECK(ts_weights_get(wf, NULL, "a", &w) == 0);
    CHECK(w.dtype == TS_DTYPE_Q8_0 && w.ndim == 3 && w.shape[0] == 3 && w.shape[1] == 2 && w.shape[2] == 32);
    CHECK(w.data == ts_gguf_data(g, ts_gguf_find(g, "a")));
    float row[64], all[256];
    ts_to_f32(TS_DTYPE_Q8_0, w.data, all, 192);
    ts_weight_row_f32(&w, 2, row);
    CHECK(memcmp(row, all + 128, sizeof row) == 0);

    CHECK(ts_weights_get(wf, NULL, "conv", &w) == 0);
    CHECK(w.dtype == TS_DTYPE_F32 && w.ndim == 2 && w.shape[0] == 16 && w.shape[1] == 16);
    const ts_gguf_tensor *conv = ts_gguf_find(g, "conv");
    ts_dequantize(TS_DTYPE_Q4_K, ts_gguf_data(g, conv), all, 256);
    CHECK(memcmp(w.data, all, sizeof all) == 0);
    const void *first = w.data;
    CHECK(ts_weights_get(wf, NULL, "conv", &w) == 0 && w.data == first); /* widened once */
    CHECK(ts_weights_find(wf, NULL, "conv")->dtype == TS_DTYPE_Q4_K);     /* info keeps the stored type */

    CHECK(ts_weights_get(wf, NULL, "h", &w) == 0);
    CHECK(w.dtype == TS_DTYPE_F16 && w.ndim == 4 && w.shape[1] == 1 && w.shape[2] == 3);
    ts_weights_close(wf);

    /* A 4x4 conv kernel is widened per convolution, so it stays a view of the blocks
     * (and a 1x1 one, read as a matrix, is widened like any other). */
    comfy_file((int32_t[]){4, 4, 4, 4}, 4);
    CHECK(ts_weights_open_memory(buf, len, &wf) == 0);
    CHECK(wf && ts_weights_get(wf, NULL, "conv", &w) == 0);
    CHECK(w.dtype == TS_DTYPE_Q4_K && w.ndim == 4 && w.shape[3] == 4);
    CHECK(wf && w.data == ts_gguf_data(ts_weights_gguf(wf), ts_gguf_find(ts_weights_gguf(wf), "conv")));
    ts_weights_close(wf);
    comfy_file((int32_t[]){16, 16, 1, 1}, 4);
    CHECK(ts_weights_open_memory(buf, len, &wf) == 0);
    CHECK(wf && ts_weights_get(wf, NULL, "conv", &w) == 0 && w.dtype == TS_DTYPE_F32);
    ts_weights_close(wf);

    comfy_file((int32_t[]){4, 4, 4, 5}, 4);
    CHECK(ts_weights_open_memory(buf, len, &wf) == TS_ERR_FORMAT && wf == NULL);
    CHECK_MSG(strstr(ts_error_message(), "comfy.gguf.orig_shape.conv: 320 elements, but the tensor has 256"), "%s",
              ts_error_message());
    comfy_file((int32_t[]){-4, -64}, 2);
    CHECK(ts_weights_open_memory(buf, len, &wf) == TS_ERR_FORMAT && wf == NULL);
    CHECK(strstr(ts_error_message(), "entry 0 is not a valid dim") != NULL);
    comfy_file(NULL, 0);
    CHECK(ts_weights_open_memory(buf, len, &wf) == TS_ERR_FORMAT && wf == NULL);
    CHECK(strstr(ts_error_message(), "expected an array of 1 to 8 integers") != NULL);
}

/* Integer tensors are listed but are not weights. */
static void test_not_a_weight(void)
{
    header(3, 1, 0);
    tinfo("ids", 1, (uint64_t[]){8}, TS_GGML_I32, 0);
    pad_to(32);
    fill(32, 1);
    ts_weights *wf = NULL;
    CHECK(ts_weights_open_memory(buf, len, &wf) == 0 && wf);
    if (!wf)
        return;
    ts_weight w;
    CHECK(ts_weights_info(wf, 0) && ts_weights_info(wf, 0)->dtype == TS_DTYPE_I32 && ts_weights_info(wf, 1) == NULL);
    CHECK(ts_weights_get(wf, NULL, "ids", &w) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "\"ids\" has dtype I32") != NULL);
    ts_weights_close(wf);
}

/* ---- metadata and page eviction, both containers ---- */

#define BIG_ROWS 1024 /* a 1024 x 1024 f32 tensor: 4 MiB of pages to fault in and drop */

static int fill_big(void *ctx, size_t i, FILE *f)
{
    (void)ctx;
    (void)i;
    float row[BIG_ROWS];
    for (int r = 0; r < BIG_ROWS; r++) {
        for (int c = 0; c < BIG_ROWS; c++)
            row[c] = (float)((r * 7 + c) % 251);
        if (fwrite(row, sizeof row, 1, f) != 1)
            return TS_ERR_IO;
    }
    return 0;
}

/* This process's file-backed resident memory in kB (/proc/self/status RssFile), -1 if unknown. */
static long rss_file_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssFile: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static double touch(ts_weights *wf)
{
    ts_weight w;
    if (ts_weights_get(wf, NULL, "big", &w) != 0)
        return -1;
    const volatile float *p = w.data;
    double sum = 0;
    for (int64_t i = 0; i < (int64_t)BIG_ROWS * BIG_ROWS; i++)
        sum += p[i];
    return sum;
}

static void check_evict(const char *path, const char *what)
{
    ts_weights *wf = NULL;
    CHECK_MSG(ts_weights_open(path, &wf) == 0, "%s: %s", what, ts_error_message());
    if (!wf)
        return;
    size_t len = 0;
    const char *v = ts_weights_metadata(wf, "modelspec.prediction_type", &len);
    CHECK_MSG(v && len == 1 && v[0] == 'v', "%s: metadata", what);
    CHECK_MSG(ts_weights_metadata(wf, "absent", &len) == NULL, "%s", what);
    CHECK_MSG(strcmp(ts_weights_metadata_key(wf, 0), "modelspec.prediction_type") == 0, "%s", what);
    double sum = touch(wf);
    long before = rss_file_kb();
    ts_weights_evict(wf);
    long after = rss_file_kb();
    CHECK_MSG(before >= 0 && before - after >= 3 * 1024, "%s: RssFile %ld kB -> %ld kB after evicting 4 MiB", what,
              before, after);
    CHECK_MSG(touch(wf) == sum, "%s: the pages fault back in with the same values", what);
    ts_weights_close(wf);
    ts_weights_evict(NULL);
}

static void test_metadata_and_evict(void)
{
    const ts_out_tensor big = {"big", TS_DTYPE_F32, 2, {BIG_ROWS, BIG_ROWS}};
    const char *keys[] = {"modelspec.prediction_type"}, *vals[] = {"v"};
    const ts_gguf_out_kv kv = {"modelspec.prediction_type", TS_GGUF_STRING, "v", 0};
    char st_path[512], gguf_path[512];
    snprintf(st_path, sizeof st_path, "%s", tmp_path("evict.safetensors"));
    snprintf(gguf_path, sizeof gguf_path, "%s", tmp_path("evict.gguf"));
    CHECK(ts_st_write(st_path, keys, vals, 1, &big, 1, fill_big, NULL) == 0);
    CHECK(ts_gguf_write(gguf_path, &kv, 1, &big, 1, fill_big, NULL) == 0);
    check_evict(st_path, "safetensors");
    check_evict(gguf_path, "gguf");
    unlink(st_path);
    unlink(gguf_path);
}

TEST_MAIN(TEST(test_same_tensors_both_formats), TEST(test_metadata_and_evict), TEST(test_comfy_orig_shape),
          TEST(test_not_a_weight))
