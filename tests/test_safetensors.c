/*
 * safetensors reader: hand-made malformed files must fail with a message that names
 * the problem (and the file), never crash; valid files of every dtype, with empty and
 * 0-d tensors, metadata, prefixed names and full-size sparse data must open and read
 * back exactly.  Files are written from here into TESSERA_TEST_TMP, and each one is
 * also parsed from memory so both entry points see the same cases.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "test.h"

static char file_bytes[1 << 17];

static const char *tmp_path(const char *name)
{
    static char path[512];
    const char *dir = getenv("TESSERA_TEST_TMP");
    if (!dir || !*dir)
        dir = "/tmp";
    mkdir(dir, 0755); /* ctest does not create it */
    snprintf(path, sizeof path, "%s/st_%s.safetensors", dir, name);
    return path;
}

static void write_raw(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(bytes, 1, len, f) == len);
    fclose(f);
}

/* 8-byte little-endian length + header + data_len bytes of a known pattern into file_bytes. */
static size_t build(uint64_t declared_len, const char *header, size_t data_len)
{
    size_t hlen = strlen(header);
    for (int i = 0; i < 8; i++)
        file_bytes[i] = (char)(declared_len >> (8 * i));
    memcpy(file_bytes + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++)
        file_bytes[8 + hlen + i] = (char)(i * 7 + 1);
    return 8 + hlen + data_len;
}

/* Opens the bytes both from a file and from memory; both must fail with `code` and `needle`. */
static void expect_bytes_fail(const char *name, size_t len, int code, const char *needle)
{
    const char *path = tmp_path(name);
    write_raw(path, file_bytes, len);
    ts_safetensors *st = (ts_safetensors *)1;
    ts_clear_error();
    int rc = ts_st_open(path, &st);
    CHECK_MSG(rc == code, "%s: status %d, want %d (%s)", name, rc, code, ts_error_message());
    CHECK(st == NULL);
    const char *msg = ts_error_message();
    CHECK_MSG(strstr(msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", name, msg, needle);
    CHECK_MSG(strstr(msg, path) != NULL, "%s: message \"%s\" does not name the file", name, msg);
    CHECK_MSG(strchr(msg, '\n') == NULL, "%s: message is not one line", name);

    st = (ts_safetensors *)1;
    rc = ts_st_open_memory(file_bytes, len, &st);
    CHECK_MSG(rc == code && st == NULL, "%s (memory): status %d", name, rc);
    CHECK_MSG(strstr(ts_error_message(), needle) != NULL, "%s (memory): \"%s\"", name, ts_error_message());
}

static void expect_fail(const char *name, const char *header, size_t data_len, const char *needle)
{
    expect_bytes_fail(name, build(strlen(header), header, data_len), TS_ERR_FORMAT, needle);
}

static void test_malformed_framing(void)
{
    expect_bytes_fail("empty", 0, TS_ERR_FORMAT, "too short");
    memcpy(file_bytes, "\x02\0\0\0", 4);
    expect_bytes_fail("short", 4, TS_ERR_FORMAT, "too short");
    expect_bytes_fail("len_past_end", build(1000, "{}", 0), TS_ERR_FORMAT, "exceeds the file size");
    expect_bytes_fail("len_2_63", build(1ull << 63, "{}", 0), TS_ERR_FORMAT, "exceeds the file size");
    expect_bytes_fail("len_max", build(UINT64_MAX, "{}", 0), TS_ERR_FORMAT, "exceeds the file size");
    expect_bytes_fail("len_zero", build(0, "", 16), TS_ERR_FORMAT, "JSON object");
    expect_fail("not_json", "{\"a\": {\"dtype\": \"F32\", ", 0, "not valid JSON");
    expect_fail("binary", "\x89PNG\r\n\x1a\n", 0, "JSON object");
    expect_fail("json_array", "[1, 2, 3]", 0, "JSON object");
    expect_fail("json_string", "\"hello\"", 0, "JSON object");
    expect_fail("trailing_garbage", "{} xyz", 0, "unexpected bytes after");
    expect_fail("two_objects", "{}{}", 0, "unexpected bytes after");
    /* Padding with spaces after the object is what writers do to align the data: allowed. */
    size_t len = build(8, "{}      ", 0);
    ts_safetensors *st = NULL;
    CHECK(ts_st_open_memory(file_bytes, len, &st) == 0 && st && ts_st_count(st) == 0);
    ts_st_close(st);
}

static void test_malformed_entries(void)
{
    expect_fail("entry_not_object", "{\"w\": [1, 2]}", 0, "\"w\": entry is not a JSON object");
    expect_fail("no_dtype", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "\"dtype\"");
    expect_fail("unknown_dtype", "{\"w\": {\"dtype\": \"F17\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                "unknown dtype \"F17\"");
    /* ggml block types exist only in GGUF. */
    expect_fail("block_dtype", "{\"w\": {\"dtype\": \"Q8_0\", \"shape\": [32], \"data_offsets\": [0, 34]}}", 34,
                "unknown dtype \"Q8_0\"");
    expect_fail("lowercase_dtype", "{\"w\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                "unknown dtype");
    expect_fail("shape_missing", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "\"shape\"");
    expect_fail("shape_negative", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 4]}}", 4,
                "shape entry 1 is not a non-negative integer");
    expect_fail("shape_float", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4,
                "shape entry 0 is not a non-negative integer");
    expect_fail("shape_string", "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", 4,
                "shape entry 0 is not");
    expect_fail("shape_null", "{\"w\": {\"dtype\": \"F32\", \"shape\": [null], \"data_offsets\": [0, 4]}}", 4,
                "shape entry 0 is not");
    expect_fail("shape_huge_number", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1e300], \"data_offsets\": [0, 4]}}",
                4, "shape entry 0 is not");
    expect_fail("shape_9_dims",
                "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
                "9 dimensions");
    expect_fail("shape_overflow",
                "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], \"data_offsets\": [0, 4]}}",
                4, "overflows");
    expect_fail("bytes_overflow",
                "{\"w\": {\"dtype\": \"F64\", \"shape\": [4294967296, 536870912], \"data_offsets\": [0, 4]}}", 4,
                "overflows");
    /* A zero dim must not hide an overflowing product of the others. */
    expect_fail("shape_overflow_zero",
                "{\"w\": {\"dtype\": \"F32\", \"shape\": [0, 9007199254740992, 9007199254740992], "
                "\"data_offsets\": [0, 0]}}",
                0, "overflows");
    expect_fail("offsets_missing", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "data_offsets");
    expect_fail("offsets_three", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 8,
                "data_offsets");
    expect_fail("offsets_negative", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4,
                "data_offsets");
    expect_fail("offsets_truncated", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 10,
                "truncated");
    expect_fail("offsets_reversed", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8,
                "begin 8 > end 4");
    expect_fail("span_mismatch", "{\"w\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8,
                "need 6 bytes but data_offsets span 8");
    expect_fail("overlap",
                "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                12, "overlap");
    expect_fail("same_span",
                "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                " \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                8, "overlap");
    expect_fail("duplicate",
                "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                8, "\"a\" appears twice");
    expect_fail("meta_number", "{\"__metadata__\": {\"format\": \"pt\", \"step\": 5}}", 0,
                "value of \"step\" is not a string");
    expect_fail("meta_object", "{\"__metadata__\": {\"nested\": {\"x\": \"y\"}}}", 0, "not a string");
    expect_fail("meta_not_object", "{\"__metadata__\": [\"a\"]}", 0, "\"__metadata__\" is not a JSON object");
    expect_fail("meta_twice", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, "appears twice");
}

static void test_open_errors(void)
{
    ts_safetensors *st = (ts_safetensors *)1;
    CHECK(ts_st_open("/nonexistent/dir/x.safetensors", &st) == TS_ERR_IO && st == NULL);
    CHECK(strstr(ts_error_message(), "cannot open") != NULL);
    const char *dir = getenv("TESSERA_TEST_TMP") ? getenv("TESSERA_TEST_TMP") : "/tmp";
    CHECK(ts_st_open(dir, &st) == TS_ERR_IO && st == NULL);
    CHECK(strstr(ts_error_message(), "not a regular file") != NULL);
}

/* A header over 100 MiB is refused before parsing; sparse, so it costs no disk. */
static void test_header_limit(void)
{
    const char *path = tmp_path("huge_header");
    uint64_t hlen = 200ull << 20;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(hlen >> (8 * i));
    write_raw(path, len, 8);
    CHECK(truncate(path, (off_t)(8 + hlen)) == 0);
    ts_safetensors *st = NULL;
    CHECK(ts_st_open(path, &st) == TS_ERR_LIMIT && st == NULL);
    CHECK(strstr(ts_error_message(), "MiB limit") != NULL);
    unlink(path);
}

#define ST_DTYPES (TS_DTYPE_BOOL + 1)

static void test_every_dtype(void)
{
    /* One 2-element tensor per safetensors dtype (the element types, which come
     * before the ggml block types), packed in declaration order. */
    char header[4096];
    int used = snprintf(header, sizeof header, "{");
    uint64_t at = 0;
    for (int t = 0; t < ST_DTYPES; t++) {
        size_t bytes = 2 * ts_dtype_size((ts_dtype)t);
        used += snprintf(header + used, sizeof header - (size_t)used,
                         "%s\"t_%s\": {\"dtype\": \"%s\", \"shape\": [2], \"data_offsets\": [%llu, %llu]}", t ? ", " : "",
                         ts_dtype_name((ts_dtype)t), ts_dtype_name((ts_dtype)t), (unsigned long long)at,
                         (unsigned long long)(at + bytes));
        at += bytes;
    }
    snprintf(header + used, sizeof header - (size_t)used, "}");
    size_t len = build(strlen(header), header, (size_t)at);
    unsigned char *data = (unsigned char *)file_bytes + 8 + strlen(header);
    /* Put known values in a few tensors. */
    size_t off_f32 = 0, off_f16 = 8, off_bf16 = 12;
    float f32v[2] = {1.5f, -3.25f};
    uint16_t f16v[2] = {0x3c00, 0xc000}, bf16v[2] = {0x3f80, 0x4049};
    memcpy(data + off_f32, f32v, 8);
    memcpy(data + off_f16, f16v, 4);
    memcpy(data + off_bf16, bf16v, 4);
    const char *path = tmp_path("every_dtype");
    write_raw(path, file_bytes, len);

    ts_safetensors *st = NULL;
    int rc = ts_st_open(path, &st);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (rc != 0)
        return;
    CHECK(ts_st_count(st) == ST_DTYPES);
    CHECK(ts_st_file_size(st) == len);
    CHECK(strcmp(ts_st_path(st), path) == 0);
    for (int t = 0; t < ST_DTYPES; t++) {
        char name[32];
        snprintf(name, sizeof name, "t_%s", ts_dtype_name((ts_dtype)t));
        const ts_st_tensor *x = ts_st_find(st, name);
        CHECK_MSG(x && x->dtype == (ts_dtype)t && x->ndim == 1 && x->shape[0] == 2, "%s", name);
        CHECK(x && x->end - x->begin == 2 * ts_dtype_size((ts_dtype)t));
        CHECK(x == ts_st_at(st, (size_t)t)); /* file order = ascending offset */
    }
    float out[2];
    ts_weight w;
    CHECK(ts_st_weight(st, NULL, "t_F32", &w) == 0);
    ts_weight_to_f32(&w, out);
    CHECK(out[0] == 1.5f && out[1] == -3.25f);
    CHECK(ts_st_weight(st, "", "t_F16", &w) == 0);
    ts_weight_to_f32(&w, out);
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
    CHECK(ts_st_weight(st, "t_", "BF16", &w) == 0);
    ts_weight_to_f32(&w, out);
    CHECK(out[0] == 1.0f && out[1] == 0x1.92p1f);
    CHECK(memcmp(ts_st_data(st, ts_st_find(st, "t_F16")), f16v, 4) == 0);
    /* Integer types are not weights. */
    CHECK(ts_st_weight(st, NULL, "t_I64", &w) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "\"t_I64\" has dtype I64") != NULL);
    ts_st_close(st);
}

static void test_empty_scalar_metadata_prefix(void)
{
    const char *header =
        "{\"__metadata__\": {\"format\": \"pt\", \"modelspec.title\": \"t\\u00e9st\"},"
        " \"model.diffusion_model.out.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [4, 16]},"
        " \"scale\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]},"
        " \"empty\": {\"dtype\": \"F16\", \"shape\": [0, 320], \"data_offsets\": [4, 4]},"
        " \"empty2\": {\"dtype\": \"BF16\", \"shape\": [5, 0], \"data_offsets\": [16, 16]},"
        " \"model.diffusion_model.w\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [16, 28]}}";
    size_t len = build(strlen(header), header, 28);
    ts_safetensors *st = NULL;
    int rc = ts_st_open_memory(file_bytes, len, &st);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (rc != 0)
        return;
    CHECK(ts_st_count(st) == 5);
    CHECK(strcmp(ts_st_metadata(st, "format"), "pt") == 0);
    CHECK(strcmp(ts_st_metadata(st, "modelspec.title"), "t\xc3\xa9st") == 0);
    CHECK(ts_st_metadata(st, "missing") == NULL);
    CHECK(strcmp(ts_st_metadata_key(st, 0), "format") == 0);
    CHECK(strcmp(ts_st_metadata_key(st, 1), "modelspec.title") == 0);
    CHECK(ts_st_metadata_key(st, 2) == NULL);
    const ts_st_tensor *s = ts_st_find(st, "scale");
    CHECK(s && s->ndim == 0 && s->begin == 0 && s->end == 4);
    ts_weight w;
    CHECK(ts_st_weight(st, NULL, "scale", &w) == 0 && w.ndim == 0 && ts_weight_numel(&w) == 1);
    CHECK(ts_st_numel(s) == 1);
    CHECK(ts_st_numel(ts_st_find(st, "model.diffusion_model.w")) == 6);
    const ts_st_tensor *e = ts_st_find(st, "empty");
    CHECK(e && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 320 && e->begin == e->end);
    CHECK(ts_st_find(st, "empty2") != NULL && ts_st_numel(e) == 0);

    const char *prefix = "model.diffusion_model.";
    const ts_st_tensor *b = ts_st_find_prefixed(st, prefix, "out.bias");
    CHECK(b && b == ts_st_find(st, "model.diffusion_model.out.bias"));
    CHECK(ts_st_find(st, "out.bias") == NULL);
    CHECK(ts_st_find_prefixed(st, prefix, "model.diffusion_model.out.bias") == NULL);
    CHECK(ts_st_find_prefixed(st, "model.", "diffusion_model.out.bias") == b); /* any split of the name */
    CHECK(ts_st_find_prefixed(st, NULL, "scale") == s);

    CHECK(ts_st_weight_shaped(st, prefix, "w", 2, (int64_t[]){2, 3}, &w) == 0);
    CHECK(w.dtype == TS_DTYPE_F16 && w.shape[0] == 2 && w.shape[1] == 3);
    CHECK(ts_st_weight_shaped(st, prefix, "w", 2, (int64_t[]){-1, 3}, &w) == 0);
    CHECK(ts_st_weight_shaped(st, prefix, "w", 2, (int64_t[]){3, 2}, &w) == TS_ERR_MODEL);
    const char *msg = ts_error_message();
    CHECK_MSG(strstr(msg, "\"model.diffusion_model.w\"") && strstr(msg, "[2, 3]") && strstr(msg, "expected [3, 2]"),
              "%s", msg);
    CHECK(ts_st_weight_shaped(st, prefix, "w", 1, (int64_t[]){6}, &w) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "model.diffusion_model.w") != NULL);
    CHECK(ts_st_weight(st, prefix, "input.weight", &w) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "missing tensor \"model.diffusion_model.input.weight\"") != NULL);
    ts_st_close(st);
}

static void test_many_tensors_lookup(void)
{
    /* Enough names to force several hash-table growths and collisions. */
    static char header[1 << 16];
    int used = snprintf(header, sizeof header, "{");
    for (int i = 0; i < 500; i++)
        used += snprintf(header + used, sizeof header - (size_t)used,
                         "%s\"blk.%d.w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [%d, %d]}", i ? "," : "",
                         499 - i, i, i + 1);
    snprintf(header + used, sizeof header - (size_t)used, "}");
    size_t len = build(strlen(header), header, 500);
    ts_safetensors *st = NULL;
    CHECK(ts_st_open_memory(file_bytes, len, &st) == 0);
    if (!st)
        return;
    int bad = 0;
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d.w", i);
        const ts_st_tensor *t = ts_st_find_prefixed(st, "blk.", name);
        bad += !t || t->begin != (uint64_t)(499 - i);
    }
    CHECK_MSG(bad == 0, "%d lookups failed", bad);
    CHECK(ts_st_find(st, "blk.500.w") == NULL);
    CHECK(ts_st_at(st, 500) == NULL);
    ts_st_close(st);
}

/* A header-only file extended with ftruncate to the size a 24 GB checkpoint would have. */
static void test_sparse_full_size(void)
{
    const char *header = "{\"big\": {\"dtype\": \"BF16\", \"shape\": [3072, 3072, 1280], \"data_offsets\": [0, "
                         "24159191040]}, \"tail\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [24159191040, "
                         "24159191056]}}";
    size_t len = build(strlen(header), header, 0);
    const char *path = tmp_path("sparse");
    write_raw(path, file_bytes, len);
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)(len + 24159191056ull)) == 0);
    close(fd);
    ts_safetensors *st = NULL;
    int rc = ts_st_open(path, &st);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (st) {
        CHECK(ts_st_count(st) == 2);
        const ts_st_tensor *t = ts_st_find(st, "tail");
        float v[4] = {1, 1, 1, 1};
        ts_to_f32(t->dtype, ts_st_data(st, t), v, 4); /* the hole reads as zeros */
        CHECK(v[0] == 0 && v[3] == 0);
        ts_st_close(st);
    }
    /* One byte short: the last tensor is out of range. */
    CHECK(truncate(path, (off_t)(len + 24159191055ull)) == 0);
    CHECK(ts_st_open(path, &st) == TS_ERR_FORMAT && st == NULL);
    CHECK(strstr(ts_error_message(), "\"tail\"") && strstr(ts_error_message(), "truncated"));
    unlink(path);
}

TEST_MAIN(TEST(test_malformed_framing), TEST(test_malformed_entries), TEST(test_open_errors), TEST(test_header_limit),
          TEST(test_every_dtype), TEST(test_empty_scalar_metadata_prefix), TEST(test_many_tensors_lookup),
          TEST(test_sparse_full_size))
