/*
 * TensorFlow.js "layers-model" reader: model.json plus its binary weight shards.
 *
 * model.json holds the Keras topology (modelTopology.model_config: a Functional
 * model's layers, each {class_name, name, config, inbound_nodes}) and a
 * weightsManifest: groups of {paths: [shard files], weights: [{name, shape, dtype}]}.
 * A group's weights are the concatenation of its shards, in manifest order, densely
 * packed little-endian.  Tessera reads them as they are (no conversion step): the
 * shards are small (UpscalerJS's largest model is 27 MB) and the model code turns
 * the Keras layouts (conv kernels height x width x in x out) into its own at load.
 *
 * The file is untrusted: sizes are bounded, shard paths must be plain file names
 * next to model.json, and the bytes on disk must exactly fill the manifest.  Only
 * unquantized float32 weights are accepted, which is what every UpscalerJS model
 * ships.
 */
#ifndef TS_IO_TFJS_H
#define TS_IO_TFJS_H

#include <stdint.h>

#define TS_TFJS_MAX_JSON (64u << 20)
#define TS_TFJS_MAX_WEIGHT_BYTES ((int64_t)2 << 30)

typedef struct {
    const char *name; /* "F_1_1/kernel" */
    int ndim;         /* 1..4 */
    int64_t shape[4]; /* as stored: conv kernels [kh, kw, in, out] */
    const float *data;
} ts_tfjs_weight;

typedef struct {
    const char *class_name; /* "Conv2D", "Concatenate", "PixelShuffle4x", ... */
    const char *name;
    int n_inputs;
    const char **inputs; /* names of the layers feeding the first inbound node */
    const void *config;  /* the layer's cJSON "config" object (see ts_tfjs_config_*) */
} ts_tfjs_layer;

typedef struct {
    void *json; /* the parsed document (cJSON), owning every string above */
    int n_layers;
    ts_tfjs_layer *layers;
    int n_weights;
    ts_tfjs_weight *weights;
    float *data; /* every weight, one allocation */
    const char *input, *output; /* the model's single input and output layer names */
} ts_tfjs_model;

/* Reads model.json and its shards. On failure *m is zeroed and the message names the file. */
int ts_tfjs_load(const char *model_json_path, ts_tfjs_model *m);
void ts_tfjs_free(ts_tfjs_model *m);

const ts_tfjs_weight *ts_tfjs_find_weight(const ts_tfjs_model *m, const char *name);
const ts_tfjs_layer *ts_tfjs_find_layer(const ts_tfjs_model *m, const char *name);
/* Number of layers whose class_name is `class_name`. */
int ts_tfjs_count_class(const ts_tfjs_model *m, const char *class_name);

/* A string entry of the layer's config, or NULL. */
const char *ts_tfjs_config_str(const ts_tfjs_layer *l, const char *key);
/* An entry that is a number or an array of up to n numbers, into out[]; returns how many
 * were read (0 when absent or not integral). */
int ts_tfjs_config_ints(const ts_tfjs_layer *l, const char *key, int *out, int n);

#endif
