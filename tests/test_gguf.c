/*
 * GGUF reader and writer: files are assembled here field by field (a tiny builder
 * that knows the layout, nothing of the library), so valid files check that every
 * value type, alignment, shape order and tensor type read back as written, and
 * malformed ones that each broken field is refused with a message naming it (and the
 * file), through both the file and the memory entry points.  The writer is checked
 * by reading its output back.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/quant.h"
#include "io/gguf.h"
#include "gguf_build.h"
#include "test.h"

static void expect_fail(const char *name, int code, const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path(name));
    CHECK(write_file(path) == 0);
    ts_gguf *g = (ts_gguf *)1;
    int rc = ts_gguf_open(path, &g);
    const char *msg = ts_error_message();
    CHECK_MSG(rc == code && g == NULL, "%s: status %d, want %d (%s)", name, rc, code, msg);
    CHECK_MSG(strstr(msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", name, msg, needle);
    CHECK_MSG(strstr(msg, path) != NULL, "%s: message \"%s\" does not name the file", name, msg);
    CHECK_MSG(strchr(msg, '\n') == NULL, "%s: message is not one line", name);
    g = (ts_gguf *)1;
    rc = ts_gguf_open_memory(buf, len, &g);
    CHECK_MSG(rc == code && g == NULL, "%s (memory): status %d", name, rc);
    CHECK_MSG(strstr(ts_error_message(), needle) != NULL, "%s (memory): \"%s\"", name, ts_error_message());
    unlink(path);
}

/* One F32 tensor [2, 4] (ne 4, 2) at offset 0 after the given metadata. */
static void one_tensor_file(uint32_t type, uint64_t ne0, uint64_t offset, size_t data)
{
    tinfo("w", 2, (uint64_t[]){ne0, 2}, type, offset);
    pad_to(32);
    fill(data, 0x11);
}

static void test_malformed_framing(void)
{
    len = 0;
    expect_fail("empty", TS_ERR_FORMAT, "not a GGUF file");
    put("GGUF", 4);
    le(3, 4);
    expect_fail("short", TS_ERR_FORMAT, "too short for a GGUF header");
    header(3, 0, 0);
    memcpy(buf, "GGUG", 4);
    expect_fail("magic", TS_ERR_FORMAT, "no \"GGUF\" magic");
    header(1, 0, 0);
    expect_fail("version1", TS_ERR_UNSUPPORTED, "version 1 is not supported");
    header(4, 0, 0);
    expect_fail("version4", TS_ERR_UNSUPPORTED, "version 4 is not supported");
    header(3u << 24, 0, 0);
    expect_fail("big_endian", TS_ERR_UNSUPPORTED, "big-endian");
    header(3, 0, UINT64_MAX);
    expect_fail("kv_count_huge", TS_ERR_FORMAT, "metadata entries but the file has room for at most 0");
    header(3, 1ull << 40, 0);
    fill(64, 0);
    expect_fail("tensor_count_huge", TS_ERR_FORMAT, "tensors but the file has room for at most 2");
}

static void test_malformed_metadata(void)
{
    header(3, 0, 1);
    le(1000, 8);
    put("general.name", 12);
    fill(8, 0);
    expect_fail("key_past_end", TS_ERR_FORMAT, "metadata entry 0: key: needs 1000 bytes");
    header(3, 0, 1);
    str("");
    le(TS_GGUF_U8, 4);
    fill(16, 0);
    expect_fail("key_empty", TS_ERR_FORMAT, "name of 0 bytes");
    header(3, 0, 1);
    le(3, 8);
    put("a\0b", 3);
    le(TS_GGUF_U8, 4);
    fill(16, 0);
    expect_fail("key_nul", TS_ERR_FORMAT, "NUL");
    header(3, 0, 1);
    str("k");
    le(13, 4);
    fill(16, 0);
    expect_fail("value_type", TS_ERR_FORMAT, "metadata \"k\": unknown value type 13");
    header(3, 0, 1);
    str("k");
    le(TS_GGUF_ARRAY, 4);
    le(TS_GGUF_ARRAY, 4);
    le(1, 8);
    fill(16, 0);
    expect_fail("nested_array", TS_ERR_UNSUPPORTED, "arrays of arrays");
    header(3, 0, 1);
    str("k");
    le(TS_GGUF_ARRAY, 4);
    le(TS_GGUF_I64, 4);
    le(1ull << 61, 8);
    fill(16, 0);
    expect_fail("array_huge", TS_ERR_FORMAT, "metadata \"k\": 2305843009213693952 values of 8 bytes do not fit");
    header(3, 0, 1);
    str("vocab");
    le(TS_GGUF_ARRAY, 4);
    le(TS_GGUF_STRING, 4);
    le(2, 8);
    str("ab");
    le(500, 8);
    put("xyz", 3);
    expect_fail("array_string_truncated", TS_ERR_FORMAT, "metadata \"vocab\": string 1: needs 500 bytes");
    header(3, 0, 1);
    str("k");
    le(TS_GGUF_F64, 4);
    fill(5, 0);
    expect_fail("scalar_truncated", TS_ERR_FORMAT, "truncated");
    header(3, 0, 2);
    kv_u32("a.b", 1);
    kv_u32("a.b", 2);
    expect_fail("duplicate_key", TS_ERR_FORMAT, "metadata key \"a.b\" appears twice");
    header(3, 0, 1);
    kv_u32("general.alignment", 48);
    expect_fail("alignment_not_pow2", TS_ERR_FORMAT, "general.alignment 48 is not a power of two");
    header(3, 0, 1);
    kv_u32("general.alignment", 0);
    expect_fail("alignment_zero", TS_ERR_FORMAT, "not a power of two");
    header(3, 0, 1);
    str("general.alignment");
    le(TS_GGUF_STRING, 4);
    str("32");
    expect_fail("alignment_type", TS_ERR_FORMAT, "general.alignment is a string, a u32 expected");
}

static void test_malformed_tensors(void)
{
    header(3, 1, 0);
    tinfo("w", 5, (uint64_t[]){1, 1, 1, 1, 1}, TS_GGML_F32, 0);
    expect_fail("five_dims", TS_ERR_FORMAT, "tensor \"w\": 5 dimensions");
    header(3, 1, 0);
    tinfo("w", 3, (uint64_t[]){1ull << 32, 1ull << 32, 16}, TS_GGML_F32, 0);
    expect_fail("dims_overflow", TS_ERR_FORMAT, "tensor \"w\": shape overflows");
    header(3, 1, 0);
    tinfo("w", 3, (uint64_t[]){0, 1ull << 40, 1ull << 40}, TS_GGML_F32, 0);
    expect_fail("dims_overflow_zero", TS_ERR_FORMAT, "shape overflows");
    header(3, 1, 0); /* 2^62 f32 values: the element count fits, the byte size does not */
    tinfo("w", 2, (uint64_t[]){32, 1ull << 57}, TS_GGML_F32, 0);
    expect_fail("bytes_overflow", TS_ERR_FORMAT, "tensor \"w\": byte size overflows");
    header(3, 1, 0);
    tinfo("w", 1, (uint64_t[]){UINT64_MAX}, TS_GGML_F32, 0);
    expect_fail("dim_negative", TS_ERR_FORMAT, "shape overflows");
    header(3, 1, 0);
    one_tensor_file(99, 4, 0, 32);
    expect_fail("unknown_type", TS_ERR_FORMAT, "tensor \"w\": unknown ggml type 99");
    header(3, 1, 0);
    one_tensor_file(10, 256, 0, 256);
    expect_fail("q2_k", TS_ERR_UNSUPPORTED, "ggml type q2_K (10) is not supported");
    header(3, 1, 0);
    one_tensor_file(TS_GGML_Q8_0, 48, 0, 128);
    expect_fail("partial_block", TS_ERR_FORMAT, "row length 48 is not a multiple of the Q8_0 block length 32");
    header(3, 1, 0);
    one_tensor_file(TS_GGML_F32, 4, 16, 64);
    expect_fail("misaligned", TS_ERR_FORMAT, "tensor \"w\": offset 16 is not a multiple of the alignment 32");
    header(3, 1, 0);
    one_tensor_file(TS_GGML_F32, 4, 0, 31);
    expect_fail("truncated_data", TS_ERR_FORMAT, "goes past the 31 data bytes of the file (truncated?)");
    header(3, 1, 0);
    one_tensor_file(TS_GGML_F32, 4, UINT64_MAX - 31, 64);
    expect_fail("offset_huge", TS_ERR_FORMAT, "goes past");
    header(3, 1, 0);
    tinfo("empty", 2, (uint64_t[]){0, 7}, TS_GGML_F32, 0);
    expect_fail("no_data_section", TS_ERR_FORMAT, "inside the padding before the data");
    header(3, 2, 0);
    tinfo("a", 1, (uint64_t[]){16}, TS_GGML_F32, 0);
    tinfo("b", 1, (uint64_t[]){8}, TS_GGML_F16, 32);
    pad_to(32);
    fill(64, 1);
    expect_fail("overlap", TS_ERR_FORMAT, "tensors \"a\" and \"b\" overlap");
    header(3, 2, 0);
    tinfo("a", 1, (uint64_t[]){8}, TS_GGML_F32, 0);
    tinfo("a", 1, (uint64_t[]){8}, TS_GGML_F32, 32);
    pad_to(32);
    fill(64, 1);
    expect_fail("duplicate_name", TS_ERR_FORMAT, "tensor \"a\" appears twice");
    header(3, 1, 0);
    str("a_longer_name");
    le(1, 4);
    le(4, 8);
    expect_fail("info_truncated", TS_ERR_FORMAT, "tensor \"a_longer_name\": needs 4 bytes");
    header(3, 1, 0);
    le(2, 8);
    put("w\0", 2);
    le(1, 4);
    le(4, 8);
    le(0, 4);
    le(0, 8);
    pad_to(32);
    fill(16, 0);
    expect_fail("name_nul", TS_ERR_FORMAT, "tensor 0: name: name contains a NUL byte");
}

static void test_valid_file(void)
{
    header(3, 4, 16);
    str("general.architecture");
    le(TS_GGUF_STRING, 4);
    str("sdxl");
    kv_u32("general.alignment", 64);
    static const struct {
        const char *key;
        ts_gguf_type t;
        int size;
        uint64_t bits;
        double value;
    } scalars[] = {{"t.u8", TS_GGUF_U8, 1, 200, 200},
                   {"t.i8", TS_GGUF_I8, 1, 0x80, -128},
                   {"t.u16", TS_GGUF_U16, 2, 65535, 65535},
                   {"t.i16", TS_GGUF_I16, 2, 0xfffe, -2},
                   {"t.i32", TS_GGUF_I32, 4, 0x80000000u, -2147483648.0},
                   {"t.f32", TS_GGUF_F32, 4, 0x3fc00000u, 1.5},
                   {"t.bool", TS_GGUF_BOOL, 1, 1, 1},
                   {"t.u64", TS_GGUF_U64, 8, 1ull << 40, 1099511627776.0},
                   {"t.i64", TS_GGUF_I64, 8, (uint64_t)-5, -5},
                   {"t.f64", TS_GGUF_F64, 8, 0xc004000000000000ull, -2.5}};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        str(scalars[i].key);
        le(scalars[i].t, 4);
        le(scalars[i].bits, scalars[i].size);
    }
    str("t.ints");
    le(TS_GGUF_ARRAY, 4);
    le(TS_GGUF_I32, 4);
    le(3, 8);
    le(7, 4);
    le((uint64_t)-8, 4);
    le(9, 4);
    str("t.strs");
    le(TS_GGUF_ARRAY, 4);
    le(TS_GGUF_STRING, 4);
    le(3, 8);
    str("one");
    str("");
    le(3, 8);
    put("a\0b", 3);
    str("t.empty");
    le(TS_GGUF_ARRAY, 4);
    le(TS_GGUF_F32, 4);
    le(0, 8);
    str("t.u64max");
    le(TS_GGUF_U64, 4);
    le(UINT64_MAX, 8);
    /* Declared out of data order; offsets multiples of 64. */
    tinfo("model.diffusion_model.out.weight", 2, (uint64_t[]){3, 2}, TS_GGML_F32, 192);
    tinfo("q", 2, (uint64_t[]){64, 2}, TS_GGML_Q8_0, 0);
    tinfo("h", 4, (uint64_t[]){1, 1, 2, 1}, TS_GGML_F16, 256);
    tinfo("empty", 2, (uint64_t[]){0, 5}, TS_GGML_BF16, 256);
    pad_to(64);
    size_t data_at = len;
    unsigned char q8[4 * 34];
    for (int b = 0; b < 4; b++) {
        q8[34 * b] = 0x00;
        q8[34 * b + 1] = 0x3c; /* d = 1 */
        for (int j = 0; j < 32; j++)
            q8[34 * b + 2 + j] = (unsigned char)(b * 32 + j - 64);
    }
    put(q8, sizeof q8);
    pad_to(64);
    float f[6] = {1, 2, 3, 4, 5, 6};
    put(f, sizeof f);
    pad_to(64);
    le(0x3c00, 2);
    le(0xc000, 2);

    ts_gguf *g = NULL;
    const char *path = tmp_path("gguf_valid.gguf");
    CHECK(write_file(path) == 0);
    int rc = ts_gguf_open(path, &g);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (!g)
        return;
    CHECK(ts_gguf_version(g) == 3 && ts_gguf_alignment(g) == 64 && ts_gguf_data_offset(g) == data_at);
    CHECK(ts_gguf_file_size(g) == len && strcmp(ts_gguf_path(g), path) == 0);
    CHECK(ts_gguf_kv_count(g) == 16 && strcmp(ts_gguf_kv_at(g, 0)->key, "general.architecture") == 0);
    uint64_t slen = 0;
    const char *s = ts_gguf_kv_str(ts_gguf_kv_find(g, "general.architecture"), 0, &slen);
    CHECK(s && slen == 4 && memcmp(s, "sdxl", 4) == 0);
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        const ts_gguf_kv *kv = ts_gguf_kv_find(g, scalars[i].key);
        double v = 0;
        CHECK_MSG(kv && kv->type == scalars[i].t && kv->count == 1, "%s", scalars[i].key);
        CHECK_MSG(kv && ts_gguf_kv_float(kv, 0, &v) == 0 && v == scalars[i].value, "%s: %g", scalars[i].key, v);
        int64_t iv;
        int is_int = scalars[i].t != TS_GGUF_F32 && scalars[i].t != TS_GGUF_F64;
        CHECK_MSG(kv && (ts_gguf_kv_int(kv, 0, &iv) == 0) == is_int && (!is_int || (double)iv == scalars[i].value),
                  "%s", scalars[i].key);
        CHECK(kv && ts_gguf_kv_str(kv, 0, &slen) == NULL && ts_gguf_kv_int(kv, 1, &iv) == -1);
    }
    const ts_gguf_kv *ints = ts_gguf_kv_find(g, "t.ints"), *strs = ts_gguf_kv_find(g, "t.strs");
    int64_t iv = 0;
    CHECK(ints && ints->type == TS_GGUF_ARRAY && ints->elem_type == TS_GGUF_I32 && ints->count == 3);
    CHECK(ints && ts_gguf_kv_int(ints, 1, &iv) == 0 && iv == -8 && ts_gguf_kv_int(ints, 3, &iv) == -1);
    CHECK(strs && strs->count == 3 && (s = ts_gguf_kv_str(strs, 0, &slen)) && slen == 3 && memcmp(s, "one", 3) == 0);
    CHECK(strs && ts_gguf_kv_str(strs, 1, &slen) && slen == 0);
    CHECK(strs && (s = ts_gguf_kv_str(strs, 2, &slen)) && slen == 3 && memcmp(s, "a\0b", 3) == 0);
    CHECK(strs && ts_gguf_kv_str(strs, 3, &slen) == NULL);
    CHECK(ts_gguf_kv_find(g, "t.empty")->count == 0);
    double dv;
    CHECK(ts_gguf_kv_int(ts_gguf_kv_find(g, "t.u64max"), 0, &iv) == -1);
    CHECK(ts_gguf_kv_float(ts_gguf_kv_find(g, "t.u64max"), 0, &dv) == 0 && dv == 18446744073709551615.0);
    CHECK(ts_gguf_kv_find(g, "missing") == NULL);

    CHECK(ts_gguf_count(g) == 4);
    const ts_gguf_tensor *q = ts_gguf_at(g, 0), *o = ts_gguf_at(g, 1), *h = ts_gguf_find(g, "h");
    CHECK(q && strcmp(q->name, "q") == 0 && q->dtype == TS_DTYPE_Q8_0 && q->bytes == 136);
    CHECK(q && q->ndim == 2 && q->ne[0] == 64 && q->shape[0] == 2 && q->shape[1] == 64);
    CHECK(o && o == ts_gguf_find_prefixed(g, "model.diffusion_model.", "out.weight"));
    CHECK(o && o->shape[0] == 2 && o->shape[1] == 3 && o->offset == 192 && o->bytes == 24);
    CHECK(o && memcmp(ts_gguf_data(g, o), f, sizeof f) == 0);
    CHECK(h && h->ndim == 4 && h->shape[0] == 1 && h->shape[1] == 2 && h->shape[3] == 1 && ts_gguf_numel(h) == 2);
    const ts_gguf_tensor *e = ts_gguf_find(g, "empty");
    CHECK(e && e->bytes == 0 && ts_gguf_numel(e) == 0 && e->dtype == TS_DTYPE_BF16);
    float y[128];
    ts_to_f32(q->dtype, ts_gguf_data(g, q), y, 128);
    CHECK(y[0] == -64 && y[127] == 63);
    CHECK(ts_gguf_find(g, "out.weight") == NULL && ts_gguf_at(g, 4) == NULL);
    ts_gguf_close(g);

    /* Version 2 has the same layout. */
    buf[4] = 2;
    CHECK(ts_gguf_open_memory(buf, len, &g) == 0 && g && ts_gguf_version(g) == 2);
    ts_gguf_close(g);
    unlink(path);
}

/* No tensors, no padding after the header: valid. */
static void test_empty_file(void)
{
    header(3, 0, 0);
    ts_gguf *g = NULL;
    CHECK(ts_gguf_open_memory(buf, len, &g) == 0 && g && ts_gguf_count(g) == 0 && ts_gguf_kv_count(g) == 0);
    CHECK(g && ts_gguf_alignment(g) == TS_GGUF_DEFAULT_ALIGNMENT);
    ts_gguf_close(g);
}

static const float write_src[2][64] = {{1, 2, 3}, {0.5f, -0.25f}};

static int write_fill(void *ctx, size_t i, FILE *f)
{
    (void)ctx;
    if (i == 0)
        return fwrite(write_src[0], 4, 6, f) == 6 ? 0 : TS_ERR_IO;
    unsigned char q[2 * 34];
    CHECK(ts_quantize(TS_DTYPE_Q8_0, write_src[1], q, 64) == 0);
    return fwrite(q, 1, sizeof q, f) == sizeof q ? 0 : TS_ERR_IO;
}

static int short_fill(void *ctx, size_t i, FILE *f)
{
    (void)ctx;
    (void)i;
    return fwrite("x", 1, 1, f) == 1 ? 0 : TS_ERR_IO;
}

static void test_writer(void)
{
    const char *path = tmp_path("gguf_written.gguf");
    ts_gguf_out_kv kv[] = {{"general.architecture", TS_GGUF_STRING, "sd1", 0}, {"t.n", TS_GGUF_U32, NULL, 7}};
    ts_out_tensor t[] = {{"a.weight", TS_DTYPE_F32, 2, {2, 3}}, {"b.weight", TS_DTYPE_Q8_0, 1, {64}}};
    int rc = ts_gguf_write(path, kv, 2, t, 2, write_fill, NULL);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    ts_gguf *g = NULL;
    rc = ts_gguf_open(path, &g);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    if (!g)
        return;
    const ts_gguf_tensor *a = ts_gguf_find(g, "a.weight"), *b = ts_gguf_find(g, "b.weight");
    CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->ne[0] == 3);
    CHECK(a && memcmp(ts_gguf_data(g, a), write_src[0], 24) == 0);
    CHECK(b && b->dtype == TS_DTYPE_Q8_0 && b->ggml_type == TS_GGML_Q8_0 && b->offset % 32 == 0);
    float y[64];
    ts_to_f32(b->dtype, ts_gguf_data(g, b), y, 64);
    CHECK_NEAR(y[0], 0.5, 0.5 / 127);
    CHECK_NEAR(y[1], -0.25, 0.5 / 127);
    CHECK(y[2] == 0.0f && y[63] == 0.0f);
    int64_t n = 0;
    CHECK(ts_gguf_kv_int(ts_gguf_kv_find(g, "t.n"), 0, &n) == 0 && n == 7);
    CHECK(ts_gguf_kv_int(ts_gguf_kv_find(g, "general.alignment"), 0, &n) == 0 && n == 32);
    ts_gguf_close(g);

    /* A fill that writes the wrong size fails, and leaves neither the file nor the temp. */
    unlink(path);
    CHECK(ts_gguf_write(path, kv, 2, t, 2, short_fill, NULL) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "1 bytes written, 24 expected") != NULL);
    CHECK(access(path, F_OK) != 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    /* Shapes GGUF cannot hold are refused before anything is written. */
    ts_out_tensor bad[] = {{"c", TS_DTYPE_Q4_K, 2, {2, 32}}};
    CHECK(ts_gguf_write(path, NULL, 0, bad, 1, write_fill, NULL) == TS_ERR_ARG);
    CHECK(strstr(ts_error_message(), "row length 32 is not a multiple of the Q4_K block") != NULL);
    ts_out_tensor u8t[] = {{"d", TS_DTYPE_U8, 1, {4}}};
    CHECK(ts_gguf_write(path, NULL, 0, u8t, 1, write_fill, NULL) == TS_ERR_ARG);
    CHECK(access(path, F_OK) != 0);
}

TEST_MAIN(TEST(test_malformed_framing), TEST(test_malformed_metadata), TEST(test_malformed_tensors),
          TEST(test_valid_file), TEST(test_empty_file), TEST(test_writer))
