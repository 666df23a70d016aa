/*
 * The T5 v1.1 encoder (Raffel et al. 2020; v1.1: gated-GELU FFN, no bias, untied
 * head) that conditions SD3 and Flux: T5-XXL, 24 blocks of width 4096, 4.7 B
 * parameters, 9.8 GB in f16.
 *
 * Layout: the Hugging Face T5EncoderModel state dict (t5xxl_fp16.safetensors, FLUX.1
 * text_encoder_2, SD3 single files under `text_encoders.t5xxl.transformer.`):
 * `shared.weight` or `encoder.embed_tokens.weight` (token embedding),
 * `encoder.block.N.layer.0.{layer_norm, SelfAttention.{q,k,v,o}}`,
 * `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight` [buckets,
 * heads] (block 0 only; every block reuses it), `encoder.block.N.layer.1.{layer_norm,
 * DenseReluDense.{wi_0,wi_1,wo}}`, `encoder.final_layer_norm`.  Sizes come from the
 * shapes (heads from the bias table, d_kv = inner / heads).
 *
 * Weights stay in their stored dtype, memory-mapped: every product goes through
 * ts_linear, which widens a cache block at a time, and the embedding is read row by
 * row, so the encoder never holds an f32 copy of the model.
 */
#ifndef TS_TEXT_T5_ENCODER_H
#define TS_TEXT_T5_ENCODER_H

#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "io/weights.h"

#define TS_T5_MAX_LAYERS 64
#define TS_T5_MAX_DISTANCE 128 /* relative_attention_max_distance of every T5 v1.1 */

typedef struct {
    ts_weight ln1, q, k, v, o;  /* self-attention, no biases */
    ts_weight ln2, wi0, wi1, wo; /* gated-GELU FFN: wo(gelu_new(wi0 x) * wi1 x) */
} ts_t5_block;

typedef struct {
    int layers, d_model, heads, d_kv, d_ff, vocab, buckets;
    ts_weight embed;    /* [vocab, d_model] */
    ts_weight rel_bias; /* [buckets, heads] */
    ts_weight final_ln;
    ts_t5_block block[TS_T5_MAX_LAYERS];
} ts_t5_encoder;

/* Loads the encoder under `prefix`; NULL finds it ("" or "text_encoders.t5xxl.transformer."). */
int ts_t5_load(ts_weights *wf, const char *prefix, ts_t5_encoder *m);

/* T5's bidirectional relative-position bucket of rel = key - query: exact offsets
 * below num_buckets / 4, log-spaced up to max_distance, then the last bucket; keys
 * after the query use the upper half of the buckets. */
int ts_t5_relative_bucket(int64_t rel, int num_buckets, int max_distance);

/* ids [B, T] -> out [B, T, d_model] (allocated from the arena; temporaries released).
 * mask [B, T] (nonzero = token, 0 = padding) hides padding keys from every query as
 * Hugging Face does with attention_mask; NULL lets every token see every token, which
 * is how Flux and SD3 call it. */
int ts_t5_forward(const ts_t5_encoder *m, const int32_t *ids, const int32_t *mask, int64_t batch, int64_t tokens,
                  ts_arena *arena, ts_tensor *out);

#endif
