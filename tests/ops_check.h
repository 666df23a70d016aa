/*
 * Shared helpers of the tests/test_ops_*.c kernel tests: random data, weights stored
 * in each dtype, and the closeness check against float64 reference loops.
 */
#ifndef TS_TESTS_OPS_CHECK_H
#define TS_TESTS_OPS_CHECK_H

#include <stdint.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/tensor.h"
#include "test.h"

static const ts_dtype weight_dtypes[] = {TS_DTYPE_F32, TS_DTYPE_F16, TS_DTYPE_BF16};

static inline float *rand_floats(int64_t n, unsigned long long *seed)
{
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        x[i] = test_randf(seed);
    return x;
}

/* A weight of the given shape stored in `dtype` (a block type: quantised); `exact`
 * receives the f32 values it holds (the reference works on those, so rounding to f16
 * or quantisation is not an error). */
typedef struct {
    ts_weight w;
    void *storage;
    float *exact;
} test_weight;

static inline test_weight make_weight(ts_dtype dtype, int ndim, const int64_t *shape, unsigned long long *seed)
{
    test_weight t = {.w = {.dtype = dtype, .ndim = ndim}};
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= t.w.shape[i] = shape[i];
    float *f = rand_floats(n, seed);
    if (dtype == TS_DTYPE_F32) {
        t.storage = f;
    } else if (ts_dtype_is_block(dtype)) { /* n must be whole blocks */
        t.storage = malloc((size_t)ts_dtype_bytes(dtype, (uint64_t)n));
        ts_quantize(dtype, f, t.storage, (size_t)n);
        free(f);
    } else {
        uint16_t *h = malloc((size_t)n * 2);
        if (dtype == TS_DTYPE_F16)
            ts_f32_to_f16_n(f, h, (size_t)n);
        else
            ts_f32_to_bf16_n(f, h, (size_t)n);
        t.storage = h;
        free(f);
    }
    t.w.data = t.storage;
    t.exact = malloc((size_t)n * sizeof(float));
    ts_weight_to_f32(&t.w, t.exact);
    return t;
}

static inline void free_weight(test_weight *t)
{
    free(t->storage);
    free(t->exact);
}

/* max |got - ref| <= rel · max |ref| (and no NaN), reported with a label. */
#define CHECK_CLOSE(got, ref, n, rel, ...)                                                                             \
    do {                                                                                                               \
        double worst_ = 0.0, scale_ = 0.0;                                                                             \
        int nan_ = 0;                                                                                                  \
        for (int64_t i_ = 0; i_ < (n); i_++) {                                                                         \
            double e_ = fabs((double)(got)[i_] - (double)(ref)[i_]);                                                  \
            nan_ |= e_ != e_;                                                                                          \
            worst_ = e_ > worst_ ? e_ : worst_;                                                                        \
            scale_ = fabs((double)(ref)[i_]) > scale_ ? fabs((double)(ref)[i_]) : scale_;                              \
        }                                                                                                              \
        CHECK_MSG(!nan_ && worst_ <= (rel) * scale_, "max err %.3g, max |ref| %.3g", worst_, scale_);                  \
        if (nan_ || worst_ > (rel) * scale_) {                                                                         \
            fprintf(stderr, "  case: ");                                                                               \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

#endif
