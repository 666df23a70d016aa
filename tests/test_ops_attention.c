/* ts_attention against a float64 full-matrix softmax: several blocks of queries and
 * keys (sizes off the block sizes), causal masks, Tq != Tk, broadcast biases with
 * -inf padding masks, odd and large head_dim, fused-qkv strides, both kernels. */
#include <math.h>
#include <string.h>

#include "core/threads.h"
#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops_check.h"

static void ref_attention(const float *q, const float *k, const float *v, double *out, const ts_attn_params *p)
{
    int64_t dh = p->head_dim;
    double *s = malloc((size_t)p->kv_len * sizeof(double));
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads; h++)
            for (int64_t i = 0; i < p->q_len; i++) {
                double m = -INFINITY, sum = 0.0;
                for (int64_t j = 0; j < p->kv_len; j++) {
                    double d = 0.0;
                    for (int64_t c = 0; c < dh; c++)
                        d += (double)q[(b * p->q_len + i) * p->ldq + h * dh + c] *
                             k[(b * p->kv_len + j) * p->ldk + h * dh + c];
                    d *= p->scale;
                    if (p->bias.data)
                        d += p->bias.data[b * p->bias.batch_stride + h * p->bias.head_stride + i * p->kv_len + j];
                    if (p->causal && j > i)
                        d = -INFINITY;
                    s[j] = d;
                    m = fmax(m, d);
                }
                for (int64_t j = 0; j < p->kv_len; j++)
                    sum += s[j] = m == -INFINITY ? 0.0 : exp(s[j] - m);
                for (int64_t c = 0; c < dh; c++) {
                    double o = 0.0;
                    for (int64_t j = 0; j < p->kv_len; j++)
                        o += s[j] * v[(b * p->kv_len + j) * p->ldv + h * dh + c];
                    out[(b * p->q_len + i) * dh * p->heads + h * dh + c] = sum > 0 ? o / sum : 0.0;
                }
            }
    free(s);
}

typedef struct {
    int64_t batch, heads, tq, tk, dh;
    int causal, fused;
    int bias; /* 0 none, 1 per head broadcast over batch, 2 per batch broadcast over heads (padding mask) */
} attn_case;

static void check_attention(const attn_case *c, unsigned long long *seed)
{
    int64_t hd = c->heads * c->dh, ldo = hd + 3;
    ts_attn_params p = {c->batch, c->heads, c->tq, c->tk, c->dh, hd, hd, hd, ldo, 1.0f / sqrtf((float)c->dh),
                        c->causal, {NULL, 0, 0}};
    float *qkv = NULL, *q, *k, *v;
    if (c->fused) { /* one [B, T, 3 * hd] buffer as a fused projection writes it */
        qkv = rand_floats(c->batch * c->tq * 3 * hd, seed);
        q = qkv, k = qkv + hd, v = qkv + 2 * hd;
        p.ldq = p.ldk = p.ldv = 3 * hd;
    } else {
        q = rand_floats(c->batch * c->tq * hd, seed);
        k = rand_floats(c->batch * c->tk * hd, seed);
        v = rand_floats(c->batch * c->tk * hd, seed);
    }
    for (int64_t i = 0; i < c->batch * c->tq * p.ldq; i++)
        q[i] *= 3.0f; /* peaky softmax rows */
    float *bias = NULL;
    if (c->bias == 1) {
        bias = rand_floats(c->heads * c->tq * c->tk, seed);
        p.bias = (ts_attn_bias){bias, 0, c->tq * c->tk};
    } else if (c->bias == 2) {
        bias = calloc((size_t)(c->batch * c->tq * c->tk), sizeof(float));
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t i = 0; i < c->tq; i++)
                for (int64_t j = c->tk - 3 - b * 40; j < c->tk; j++) /* padded keys at the end */
                    bias[(b * c->tq + i) * c->tk + j] = -INFINITY;
        p.bias = (ts_attn_bias){bias, c->tq * c->tk, 0};
    }
    double *ref = malloc((size_t)(c->batch * c->tq * hd) * sizeof(double));
    ref_attention(q, k, v, ref, &p);
    float *out = malloc((size_t)(c->batch * c->tq * ldo) * sizeof(float));
    ts_attention(q, k, v, out, &p);
    float *packed = malloc((size_t)(c->batch * c->tq * hd) * sizeof(float));
    for (int64_t r = 0; r < c->batch * c->tq; r++)
        memcpy(packed + r * hd, out + r * ldo, (size_t)hd * sizeof(float));
    CHECK_CLOSE(packed, ref, c->batch * c->tq * hd, 1e-5,
                "attention B=%lld H=%lld Tq=%lld Tk=%lld dh=%lld causal=%d fused=%d bias=%d kernel=%s",
                (long long)c->batch, (long long)c->heads, (long long)c->tq, (long long)c->tk, (long long)c->dh,
                c->causal, c->fused, c->bias, ts_gemm_kernel_name());
    if (c->fused) {
        free(qkv);
    } else {
        free(q);
        free(k);
        free(v);
    }
    free(bias);
    free(ref);
    free(out);
    free(packed);
}

static void test_attention_cases(void)
{
    static const attn_case cases[] = {
        {2, 3, 100, 100, 7, 0, 0, 0},   /* odd head_dim, queries past one block */
        {1, 2, 77, 77, 16, 1, 0, 0},    /* CLIP text: causal */
        {2, 2, 130, 300, 40, 0, 0, 1},  /* cross-attention shape, keys past one block, head bias */
        {2, 4, 50, 260, 8, 0, 0, 2},    /* padding mask broadcast over heads */
        {2, 2, 300, 300, 12, 1, 1, 0},  /* causal over several blocks, fused qkv */
        {1, 1, 40, 40, 130, 0, 1, 1},   /* large head_dim, fused */
        {1, 1, 1, 1, 3, 0, 0, 0},
    };
    const char *kernels[] = {"scalar", "auto"};
    unsigned long long seed = 8;
    for (int kn = 0; kn < 2; kn++) {
        CHECK(ts_gemm_select(kernels[kn]) == 0);
        ts_threads_set(kn + 1);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_attention(&cases[i], &seed);
    }
}

/* A query row whose every key is masked gives zeros; its neighbours are unaffected. */
static void test_fully_masked_row(void)
{
    unsigned long long seed = 10;
    int64_t t = 5, dh = 4;
    float *q = rand_floats(t * dh, &seed), *k = rand_floats(t * dh, &seed), *v = rand_floats(t * dh, &seed);
    float bias[25] = {0}, out[20];
    for (int j = 0; j < 5; j++)
        bias[2 * 5 + j] = -INFINITY; /* query 2 sees nothing */
    ts_attn_params p = {1, 1, t, t, dh, dh, dh, dh, dh, 0.5f, 0, {bias, 0, 0}};
    double ref[20];
    ref_attention(q, k, v, ref, &p);
    ts_attention(q, k, v, out, &p);
    for (int i = 0; i < 20; i++)
        CHECK_NEAR(out[i], ref[i], 1e-6);
    CHECK(out[2 * 4] == 0.0f && out[2 * 4 + 3] == 0.0f);
    free(q);
    free(k);
    free(v);
}

TEST_MAIN(TEST(test_attention_cases), TEST(test_fully_masked_row))
