/* ts_linear and ts_sgemm against float64 loops, for every micro-kernel this CPU runs,
 * every weight dtype, sizes that are not multiples of any block, 1 and 2 threads. */
#include <string.h>

#include "core/threads.h"
#include "ops/gemm.h"
#include "ops_check.h"

/* "auto" sends the f32-weight cases to OpenBLAS; the named kernels take every case. */
static const char *kernel_names[] = {"scalar", "avx2", "avx512", "auto"};

/* M, N, K: tiny, odd, K past one kc block, N past one nc block, M past one mc block. */
static const int64_t shapes[][3] = {{1, 1, 1},      {7, 13, 5},    {37, 51, 300}, {5, 3100, 9},
                                    {151, 35, 517}, {13, 40, 64}, {7, 2000, 400}}; /* the last: small-M path */

static void check_linear(int64_t M, int64_t N, int64_t K, ts_dtype dtype, int with_bias, unsigned long long *seed)
{
    int64_t lda = K + 3, ldc = N + 2;
    float *A = rand_floats(M * lda, seed);
    test_weight W = make_weight(dtype, 2, (int64_t[]){N, K}, seed);
    test_weight b = make_weight(dtype, 1, (int64_t[]){N}, seed);
    float *C = rand_floats(M * ldc, seed);
    double *ref = malloc((size_t)(M * ldc) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            double s = with_bias ? b.exact[j < N ? j : 0] : 0.0;
            for (int64_t k = 0; k < K && j < N; k++)
                s += (double)A[i * lda + k] * W.exact[j * K + k];
            ref[i * ldc + j] = j < N ? s : C[i * ldc + j]; /* the row padding must be untouched */
        }
    ts_linear(A, lda, M, &W.w, with_bias ? &b.w : NULL, C, ldc);
    CHECK_CLOSE(C, ref, M * ldc, 1e-5, "linear %s M=%lld N=%lld K=%lld bias=%d kernel=%s threads=%d",
                ts_dtype_name(dtype), (long long)M, (long long)N, (long long)K, with_bias, ts_gemm_kernel_name(),
                ts_threads_get());
    free(A);
    free(C);
    free(ref);
    free_weight(&W);
    free_weight(&b);
}

static void test_linear_all_kernels(void)
{
    unsigned long long seed = 1;
    for (int kn = 0; kn < 4; kn++) {
        if (ts_gemm_select(kernel_names[kn]) != 0)
            continue;
        for (int threads = 1; threads <= 2; threads++) {
            ts_threads_set(threads);
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int d = 0; d < 3; d++)
                    check_linear(shapes[s][0], shapes[s][1], shapes[s][2], weight_dtypes[d], (int)(s + d) % 2,
                                 &seed);
        }
    }
    CHECK(ts_gemm_select("auto") == 0);
    CHECK(ts_gemm_select("nonsense") < 0);
}

/* Other float dtypes (f64 here) take the portable packer: the vector one knows
 * f32 / f16 / bf16 only. */
static void test_linear_f64_weight(void)
{
    unsigned long long seed = 11;
    int64_t M = 9, N = 21, K = 70;
    float *A = rand_floats(M * K, &seed), *C = malloc((size_t)(M * N) * sizeof(float));
    double *w = malloc((size_t)(N * K) * sizeof(double)), *ref = malloc((size_t)(M * N) * sizeof(double));
    for (int64_t i = 0; i < N * K; i++)
        w[i] = (double)test_randf(&seed);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)A[i * K + k] * (double)(float)w[j * K + k];
            ref[i * N + j] = s;
        }
    ts_weight W = {.dtype = TS_DTYPE_F64, .ndim = 2, .shape = {N, K}, .data = w};
    ts_linear(A, K, M, &W, NULL, C, N);
    CHECK_CLOSE(C, ref, M * N, 1e-5, "linear f64 weight kernel=%s", ts_gemm_kernel_name());
    free(A);
    free(C);
    free(w);
    free(ref);
}

/* With our kernel, a row of C does not depend on how many rows come with it, on the
 * blocking path taken, or on the thread count: every element is summed in the same
 * kc-block order.  (The OpenBLAS path for f32 weights promises no such thing.) */
static void test_linear_reproducible(void)
{
    unsigned long long seed = 12;
    int64_t M = 300, N = 700, K = 650;
    float *A = rand_floats(M * K, &seed);
    test_weight W = make_weight(TS_DTYPE_F16, 2, (int64_t[]){N, K}, &seed);
    float *all = malloc((size_t)(M * N) * sizeof(float)), *few = malloc((size_t)(7 * N) * sizeof(float));
    ts_threads_set(2);
    ts_linear(A, K, M, &W.w, NULL, all, N);
    ts_threads_set(1);
    ts_linear(A + 100 * K, K, 7, &W.w, NULL, few, N); /* 7 rows: the small-M path */
    CHECK(memcmp(few, all + 100 * N, (size_t)(7 * N) * sizeof(float)) == 0);
    ts_threads_set(2);
    free(A);
    free(all);
    free(few);
    free_weight(&W);
}

static void check_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                        unsigned long long *seed)
{
    int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 1;
    float *A = rand_floats((ta ? K : M) * lda, seed), *B = rand_floats((tb ? N : K) * ldb, seed);
    float *C = rand_floats(M * ldc, seed);
    if (beta == 0.0f)
        for (int64_t i = 0; i < M * ldc; i++)
            C[i] = NAN; /* beta = 0 must ignore C, NaN included */
    double *ref = malloc((size_t)(M * ldc) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= N) {
                ref[i * ldc + j] = C[i * ldc + j];
                continue;
            }
            double s = 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            ref[i * ldc + j] = alpha * s + (beta != 0.0f ? beta * (double)C[i * ldc + j] : 0.0);
        }
    ts_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    /* the NaN padding columns compare NaN to NaN: check only the product part there */
    double *got = malloc((size_t)(M * N) * sizeof(double)), *want = malloc((size_t)(M * N) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            got[i * N + j] = C[i * ldc + j];
            want[i * N + j] = ref[i * ldc + j];
        }
    CHECK_CLOSE(got, want, M * N, 1e-5, "sgemm ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g kernel=%s", ta, tb,
                (long long)M, (long long)N, (long long)K, alpha, beta, ts_gemm_kernel_name());
    free(A);
    free(B);
    free(C);
    free(ref);
    free(got);
    free(want);
}

static void test_sgemm_transposes(void)
{
    unsigned long long seed = 2;
    ts_threads_set(2);
    for (int kn = 0; kn < 4; kn++) {
        if (ts_gemm_select(kernel_names[kn]) != 0)
            continue;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_sgemm(ta, tb, 23, 45, 270, 1.0f, 0.0f, &seed);
                check_sgemm(ta, tb, 150, 17, 33, 0.5f, 1.0f, &seed);
                check_sgemm(ta, tb, 9, 70, 3, -2.0f, 0.25f, &seed);
                check_sgemm(ta, tb, 130, 120, 90, 1.0f, 0.0f, &seed); /* split over threads */
                check_sgemm(ta, tb, 20, 900, 70, 1.5f, 1.0f, &seed); /* split over N */
            }
        check_sgemm(0, 0, 4, 5, 0, 1.0f, 0.0f, &seed); /* K = 0: C = 0 */
    }
}

TEST_MAIN(TEST(test_linear_all_kernels), TEST(test_linear_f64_weight), TEST(test_linear_reproducible), TEST(test_sgemm_transposes))
