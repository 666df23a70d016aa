/* TensorFlow.js layers-model reader: topology and weights; see tfjs.h. */
#include "io/tfjs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the TF.js shards are little-endian float32, read in place"
#endif

/* Reads a whole small file into a NUL-terminated buffer. */
static int read_text(const char *path, char **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ts_fail(TS_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ts_fail(TS_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > TS_TFJS_MAX_JSON) {
        fclose(f);
        return ts_fail(TS_ERR_LIMIT, "%s: %lld bytes is too large for a model.json", path, (long long)st.st_size);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return ts_fail(TS_ERR_NOMEM, "%s: no memory", path);
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        free(buf);
        return ts_fail(TS_ERR_IO, "%s: short read", path);
    }
    buf[n] = '\0';
    *out = buf;
    return TS_OK;
}

/* Appends the whole shard `dir/name` at dst, which has `room` bytes left; *used gets its size. */
static int read_shard(const char *dir, const char *name, unsigned char *dst, int64_t room, int64_t *used)
{
    if (!name[0] || strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return ts_fail(TS_ERR_FORMAT, "shard path '%s' is not a plain file name", name);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return ts_fail(TS_ERR_ARG, "shard path too long");
    FILE *f = fopen(path, "rb");
    if (!f)
        return ts_fail(TS_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = TS_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        rc = ts_fail(TS_ERR_IO, "%s: not a regular file", path);
    else if (st.st_size > room)
        rc = ts_fail(TS_ERR_FORMAT, "%s: %lld bytes, more than the manifest's weights still need (%lld)", path,
                     (long long)st.st_size, (long long)room);
    else if (fread(dst, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = ts_fail(TS_ERR_IO, "%s: short read", path);
    fclose(f);
    *used = st.st_size;
    return rc;
}

/* Shape of one manifest entry; returns its element count or -1. */
static int64_t parse_shape(const cJSON *shape, ts_tfjs_weight *w)
{
    int n = cJSON_GetArraySize(shape);
    if (!cJSON_IsArray(shape) || n > 4)
        return -1;
    int64_t numel = 1;
    w->ndim = n;
    for (int i = 0; i < n; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 1e9 || d->valuedouble != (int64_t)d->valuedouble)
            return -1;
        w->shape[i] = (int64_t)d->valuedouble;
        numel *= w->shape[i];
        if (numel > TS_TFJS_MAX_WEIGHT_BYTES / 4)
            return -1;
    }
    return numel;
}

static int64_t weight_numel(const ts_tfjs_weight *w)
{
    int64_t n = 1;
    for (int d = 0; d < w->ndim; d++)
        n *= w->shape[d];
    return n;
}

/* Fills m->weights with names and shapes; the data pointers are set once the shards
 * are read (the weights are packed back to back in manifest order). */
static int parse_manifest(const cJSON *manifest, ts_tfjs_model *m, int64_t *total_floats)
{
    int n = 0;
    const cJSON *group;
    if (!cJSON_IsArray(manifest))
        return ts_fail(TS_ERR_FORMAT, "weightsManifest is not an array");
    cJSON_ArrayForEach(group, manifest) n += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(group, "weights"));
    m->weights = calloc((size_t)n + 1, sizeof *m->weights);
    if (!m->weights)
        return ts_fail(TS_ERR_NOMEM, "no memory for %d weights", n);
    int64_t off = 0;
    cJSON_ArrayForEach(group, manifest)
    {
        const cJSON *w;
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(group, "weights"))
        {
            ts_tfjs_weight *t = &m->weights[m->n_weights];
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "name"));
            const char *dtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "dtype"));
            if (!name)
                return ts_fail(TS_ERR_FORMAT, "weight %d has no name", m->n_weights);
            if (!dtype || strcmp(dtype, "float32") != 0 || cJSON_GetObjectItemCaseSensitive(w, "quantization"))
                return ts_fail(TS_ERR_UNSUPPORTED, "weight %s: only unquantized float32 weights are supported", name);
            int64_t numel = parse_shape(cJSON_GetObjectItemCaseSensitive(w, "shape"), t);
            if (numel < 0)
                return ts_fail(TS_ERR_FORMAT, "weight %s: bad shape", name);
            if (ts_tfjs_find_weight(m, name))
                return ts_fail(TS_ERR_FORMAT, "weight %s appears twice", name);
            t->name = name;
            off += numel;
            if (off > TS_TFJS_MAX_WEIGHT_BYTES / 4)
                return ts_fail(TS_ERR_LIMIT, "weights exceed %lld bytes", (long long)TS_TFJS_MAX_WEIGHT_BYTES);
            m->n_weights++;
        }
    }
    *total_floats = off;
    return TS_OK;
}

/* Reads every group's shards back to back; each group must be filled exactly. */
static int read_shards(const cJSON *manifest, const char *dir, ts_tfjs_model *m, int64_t total_floats)
{
    m->data = malloc((size_t)total_floats * sizeof(float) + 1);
    if (!m->data)
        return ts_fail(TS_ERR_NOMEM, "no memory for %lld bytes of weights", (long long)total_floats * 4);
    unsigned char *bytes = (unsigned char *)m->data;
    int64_t pos = 0;
    int wi = 0;
    const cJSON *group;
    cJSON_ArrayForEach(group, manifest)
    {
        int64_t group_end = pos;
        for (int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(group, "weights")); n > 0; n--)
            group_end += weight_numel(&m->weights[wi++]) * 4;
        const cJSON *path;
        cJSON_ArrayForEach(path, cJSON_GetObjectItemCaseSensitive(group, "paths"))
        {
            const char *name = cJSON_GetStringValue(path);
            int64_t used = 0;
            if (!name)
                return ts_fail(TS_ERR_FORMAT, "a shard path is not a string");
            int rc = read_shard(dir, name, bytes + pos, group_end - pos, &used);
            if (rc < 0)
                return rc;
            pos += used;
        }
        if (pos != group_end)
            return ts_fail(TS_ERR_FORMAT, "the shards hold %lld bytes, the manifest needs %lld", (long long)pos,
                           (long long)group_end);
    }
    int64_t off = 0;
    for (int i = 0; i < m->n_weights; i++) {
        m->weights[i].data = m->data + off;
        off += weight_numel(&m->weights[i]);
    }
    return TS_OK;
}

/* The name in a Keras [name, node_index, tensor_index, kwargs] reference. */
static const char *ref_name(const cJSON *ref)
{
    return cJSON_IsArray(ref) ? cJSON_GetStringValue(cJSON_GetArrayItem(ref, 0)) : NULL;
}

static int parse_layers(const cJSON *config, ts_tfjs_model *m)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(config, "layers");
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(config, "input_layers");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(config, "output_layers");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(ins) != 1 || cJSON_GetArraySize(outs) != 1)
        return ts_fail(TS_ERR_UNSUPPORTED, "only functional models with one input and one output are supported");
    m->input = ref_name(cJSON_GetArrayItem(ins, 0));
    m->output = ref_name(cJSON_GetArrayItem(outs, 0));
    if (!m->input || !m->output)
        return ts_fail(TS_ERR_FORMAT, "bad input_layers or output_layers");
    int n = cJSON_GetArraySize(layers), total_inputs = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, layers)
    {
        const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(l, "inbound_nodes");
        if (cJSON_GetArraySize(nodes) > 1)
            return ts_fail(TS_ERR_UNSUPPORTED, "a layer is called more than once (shared layers)");
        total_inputs += cJSON_GetArraySize(cJSON_GetArrayItem(nodes, 0));
    }
    m->layers = calloc((size_t)n + 1, sizeof *m->layers);
    const char **names = calloc((size_t)total_inputs + 1, sizeof *names);
    if (!m->layers || !names) {
        free(names);
        return ts_fail(TS_ERR_NOMEM, "no memory for %d layers", n);
    }
    m->layers[0].inputs = names; /* owns the pool; freed with the model */
    cJSON_ArrayForEach(l, layers)
    {
        ts_tfjs_layer *t = &m->layers[m->n_layers];
        t->class_name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "class_name"));
        t->name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "name"));
        t->config = cJSON_GetObjectItemCaseSensitive(l, "config");
        if (!t->class_name || !t->name || !cJSON_IsObject((const cJSON *)t->config))
            return ts_fail(TS_ERR_FORMAT, "layer %d lacks class_name, name or config", m->n_layers);
        if (ts_tfjs_find_layer(m, t->name))
            return ts_fail(TS_ERR_FORMAT, "layer %s appears twice", t->name);
        t->inputs = names;
        const cJSON *ref;
        cJSON_ArrayForEach(ref, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(l, "inbound_nodes"), 0))
        {
            if (!(t->inputs[t->n_inputs++] = ref_name(ref)))
                return ts_fail(TS_ERR_FORMAT, "layer %s: bad inbound node", t->name);
        }
        names += t->n_inputs;
        m->n_layers++;
    }
    return TS_OK;
}

static int load(const char *path, ts_tfjs_model *m)
{
    char *text;
    int rc = read_text(path, &text);
    if (rc < 0)
        return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return ts_fail(TS_ERR_FORMAT, "not valid JSON");
    m->json = root;
    const char *format = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "format"));
    if (format && strcmp(format, "layers-model") != 0)
        return ts_fail(TS_ERR_UNSUPPORTED, "format '%s' (only TF.js layers models are supported)", format);
    const cJSON *topology = cJSON_GetObjectItemCaseSensitive(root, "modelTopology");
    const cJSON *model_config = cJSON_GetObjectItemCaseSensitive(topology, "model_config");
    if (!model_config)
        model_config = topology;
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(model_config, "config");
    if (!cJSON_IsObject(config))
        return ts_fail(TS_ERR_FORMAT, "no modelTopology.model_config.config");
    rc = parse_layers(config, m);
    if (rc < 0)
        return rc;
    const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(root, "weightsManifest");
    int64_t total_floats = 0;
    rc = parse_manifest(manifest, m, &total_floats);
    if (rc < 0)
        return rc;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    if (dir_len >= (int)sizeof dir)
        return ts_fail(TS_ERR_ARG, "path too long");
    snprintf(dir, sizeof dir, "%.*s", dir_len, slash ? path : ".");
    return read_shards(manifest, dir, m, total_floats);
}

int ts_tfjs_load(const char *model_json_path, ts_tfjs_model *m)
{
    memset(m, 0, sizeof *m);
    int rc = load(model_json_path, m);
    if (rc < 0) {
        ts_tfjs_free(m);
        return ts_fail_context(rc, "%s: ", model_json_path);
    }
    return TS_OK;
}

void ts_tfjs_free(ts_tfjs_model *m)
{
    if (m->layers)
        free((void *)m->layers[0].inputs);
    free(m->layers);
    free(m->weights);
    free(m->data);
    cJSON_Delete(m->json);
    memset(m, 0, sizeof *m);
}

const ts_tfjs_weight *ts_tfjs_find_weight(const ts_tfjs_model *m, const char *name)
{
    for (int i = 0; i < m->n_weights; i++)
        if (strcmp(m->weights[i].name, name) == 0)
            return &m->weights[i];
    return NULL;
}

const ts_tfjs_layer *ts_tfjs_find_layer(const ts_tfjs_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0)
            return &m->layers[i];
    return NULL;
}

int ts_tfjs_count_class(const ts_tfjs_model *m, const char *class_name)
{
    int n = 0;
    for (int i = 0; i < m->n_layers; i++)
        n += strcmp(m->layers[i].class_name, class_name) == 0;
    return n;
}

const char *ts_tfjs_config_str(const ts_tfjs_layer *l, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive((const cJSON *)l->config, key));
}

static int json_int(const cJSON *v, int *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

int ts_tfjs_config_ints(const ts_tfjs_layer *l, const char *key, int *out, int n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)l->config, key);
    if (!cJSON_IsArray(v))
        return n > 0 && json_int(v, out);
    int count = cJSON_GetArraySize(v);
    if (count > n)
        return 0;
    for (int i = 0; i < count; i++)
        if (!json_int(cJSON_GetArrayItem(v, i), &out[i]))
            return 0;
    return count;
}
