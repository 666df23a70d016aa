/*
 * Name-pattern helpers for model loaders.
 *
 * A checkpoint names its tensors by position in the network
 * ("text_model.encoder.layers.7.mlp.fc1.weight"), so loaders build names with
 * printf-style patterns under a family prefix and count the numbered blocks a file
 * holds to learn the depth.  These helpers keep that formatting and the shape check
 * in one place instead of in every model file.  They read through io/weights.h, so
 * every loader takes safetensors and GGUF files alike.
 */
#ifndef TS_IO_ST_NAMES_H
#define TS_IO_ST_NAMES_H

#include <stdint.h>

#include "core/tensor.h"
#include "io/weights.h"

/* ts_weights_get_shaped on prefix + the formatted name; ndim 0 accepts any shape. */
int ts_weights_getf(ts_weights *wf, const char *prefix, ts_weight *out, int ndim, const int64_t *shape,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* How many consecutive indices 0, 1, ... have prefix + fmt(index) in the file (at most max + 1,
 * so a caller can tell "more than max" apart). */
int ts_weights_count_indexed(const ts_weights *wf, const char *prefix, const char *fmt, int max);

/* A checkpoint seen under one key prefix: what a model loader reads its weights from. */
typedef struct {
    ts_weights *wf;
    const char *prefix;
} ts_st_scope;

/* ts_weights_get on the scope's prefix + the formatted name. */
int ts_scope_weight(const ts_st_scope *s, ts_weight *out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* True when the scope's prefix + the formatted name is in the file. */
int ts_scope_has(const ts_st_scope *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
