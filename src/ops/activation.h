/*
 * Element-wise activations (in place) and softmax.
 */
#ifndef TS_OPS_ACTIVATION_H
#define TS_OPS_ACTIVATION_H

#include <stdint.h>

void ts_silu(float *x, int64_t n);
void ts_relu(float *x, int64_t n);
void ts_gelu_erf(float *x, int64_t n);
void ts_gelu_tanh(float *x, int64_t n);
void ts_quick_gelu(float *x, int64_t n); /* x * sigmoid(1.702 x), OpenAI CLIP */
/* Softmax over each row of length n, in place.  A row that is all -inf becomes all
 * zeros (not NaN). */
void ts_softmax(float *x, int64_t rows, int64_t n);

#endif
