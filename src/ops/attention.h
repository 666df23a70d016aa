/*
 * Scaled dot-product attention with a blocked online softmax: the scores of one
 * block of queries against one block of keys live in a small buffer, never the
 * full Tq x Tk matrix, so memory is O(block) at any sequence length.
 */
#ifndef TS_OPS_ATTENTION_H
#define TS_OPS_ATTENTION_H

#include <stdint.h>

/* Additive score bias broadcast over batch and/or heads: element (b, h, i, j) is
 * data[b * batch_stride + h * head_stride + i * Tk + j]; a zero stride broadcasts. */
typedef struct {
    const float *data;
    int64_t batch_stride, head_stride;
} ts_attn_bias;

typedef struct {
    int64_t batch, heads, q_len, kv_len, head_dim;
    /* Row strides (floats) of one token in q, k, v and out: a token's heads are stored
     * consecutively (PyTorch's [B, T, heads * head_dim]), so a fused qkv buffer works
     * by passing its three offsets with ld = 3 * heads * head_dim. */
    int64_t ldq, ldk, ldv, ldo;
    float scale;       /* usually 1/sqrt(head_dim) */
    int causal;        /* key j > query i is masked (CLIP text) */
    ts_attn_bias bias; /* data NULL: none (T5 relative bias, padding masks) */
} ts_attn_params;

/* out[b, i, h*dh:(h+1)*dh] = softmax_j(q·k·scale + bias) · v.  A query whose keys are
 * all masked (-inf bias) gets zeros.  Memory: O(threads · block) for scores, plus K
 * and V repacked once (their own size). */
void ts_attention(const float *q, const float *k, const float *v, float *out, const ts_attn_params *p);

#endif
