/* Tensor and weight-view helpers: element counts, row access in every stored float type, shape strings. */
#include <string.h>

#include "core/tensor.h"
#include "test.h"

static void test_numel(void)
{
    float buf[24];
    ts_tensor t = ts_tensor_view(buf, 3, (int64_t[]){2, 3, 4});
    CHECK(t.data == buf && t.ndim == 3 && ts_tensor_numel(&t) == 24);
    ts_tensor scalar = ts_tensor_view(buf, 0, NULL);
    CHECK(ts_tensor_numel(&scalar) == 1);
    ts_tensor empty = ts_tensor_view(buf, 2, (int64_t[]){0, 5});
    CHECK(ts_tensor_numel(&empty) == 0);
    ts_tensor huge = ts_tensor_view(NULL, 3, (int64_t[]){1ll << 31, 1ll << 31, 1ll << 2});
    CHECK(ts_tensor_numel(&huge) == -1); /* 2^64 does not fit */
    ts_tensor negative = ts_tensor_view(NULL, 2, (int64_t[]){3, -2});
    CHECK(ts_tensor_numel(&negative) == -1);
    ts_weight w = {.dtype = TS_DTYPE_F16, .ndim = 4, .shape = {8, 3, 3, 3}};
    CHECK(ts_weight_numel(&w) == 216 && ts_weight_row_len(&w) == 27);
    ts_weight v = {.dtype = TS_DTYPE_F32, .ndim = 1, .shape = {7}};
    CHECK(ts_weight_row_len(&v) == 1);
}

static void test_weight_rows(void)
{
    enum { R = 3, C = 5 };
    float ref[R * C];
    unsigned long long seed = 3;
    for (int i = 0; i < R * C; i++)
        ref[i] = test_randf(&seed);
    uint16_t h[R * C], b[R * C];
    for (int i = 0; i < R * C; i++) {
        h[i] = ts_f32_to_f16(ref[i]);
        b[i] = ts_f32_to_bf16(ref[i]);
    }
    const void *data[] = {ref, h, b};
    const ts_dtype types[] = {TS_DTYPE_F32, TS_DTYPE_F16, TS_DTYPE_BF16};
    for (int k = 0; k < 3; k++) {
        ts_weight w = {.dtype = types[k], .ndim = 2, .shape = {R, C}, .data = data[k]};
        float row[C], all[R * C];
        ts_weight_to_f32(&w, all);
        for (int r = 0; r < R; r++) {
            ts_weight_row_f32(&w, r, row);
            for (int c = 0; c < C; c++) {
                float want = k == 0 ? ref[r * C + c] : k == 1 ? ts_f16_to_f32(h[r * C + c]) : ts_bf16_to_f32(b[r * C + c]);
                CHECK(row[c] == want);
                CHECK(all[r * C + c] == want);
                CHECK_NEAR(row[c], ref[r * C + c], k == 2 ? 4e-3 : 5e-4);
            }
        }
    }
}

static void test_shape_str(void)
{
    char buf[64];
    CHECK(strcmp(ts_shape_str(buf, sizeof buf, 3, (int64_t[]){2, 77, 768}), "[2, 77, 768]") == 0);
    CHECK(strcmp(ts_shape_str(buf, sizeof buf, 0, NULL), "[]") == 0);
    CHECK(strcmp(ts_shape_str(buf, sizeof buf, 1, (int64_t[]){-1}), "[-1]") == 0);
    /* Truncation keeps a terminated prefix and never writes past the buffer. */
    char small[8];
    memset(small, 'x', sizeof small);
    ts_shape_str(small, 6, 3, (int64_t[]){123456, 2, 3});
    CHECK(strlen(small) == 5 && strncmp(small, "[1234", 5) == 0);
    CHECK(small[6] == 'x' && small[7] == 'x');
}

TEST_MAIN(TEST(test_numel), TEST(test_weight_rows), TEST(test_shape_str))
