/*
 * TF.js layers-model reader on files written here: weights split across shards at
 * odd offsets come back with their shapes and values, the topology's layers and
 * inbound names are read, and every kind of bad file (not JSON, short or long
 * shards, a shard path leaving the folder, quantized or non-float32 weights, bad
 * shapes, duplicates) fails with a message instead of crashing.  ts_rdn_load must
 * refuse a model that is not an RDN/RRDN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/tfjs.h"
#include "models/rdn.h"
#include "test.h"

static char dir[512];

static const char *path_of(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static void write_file(const char *name, const void *data, size_t size)
{
    FILE *f = fopen(path_of(name), "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, size, f) == size);
        fclose(f);
    }
}

/* model.json with `weights` (a JSON array body) over the shards named in `paths`. */
static void write_model(const char *weights, const char *paths)
{
    char json[4096];
    snprintf(json, sizeof json,
             "{\"format\": \"layers-model\", \"modelTopology\": {\"model_config\": {\"class_name\": \"Functional\","
             " \"config\": {\"layers\": ["
             "{\"class_name\": \"InputLayer\", \"name\": \"in\", \"config\": {}, \"inbound_nodes\": []},"
             "{\"class_name\": \"Conv2D\", \"name\": \"c\", \"config\": {\"kernel_size\": [3, 3], \"padding\": "
             "\"same\"}, \"inbound_nodes\": [[[\"in\", 0, 0, {}]]]},"
             "{\"class_name\": \"Add\", \"name\": \"sum\", \"config\": {}, \"inbound_nodes\": [[[\"c\", 0, 0, {}], "
             "[\"in\", 0, 0, {}]]]}],"
             " \"input_layers\": [[\"in\", 0, 0]], \"output_layers\": [[\"sum\", 0, 0]]}}},"
             " \"weightsManifest\": [{\"paths\": [%s], \"weights\": [%s]}]}",
             paths, weights);
    write_file("model.json", json, strlen(json));
}

static const char *good_weights = "{\"name\": \"c/kernel\", \"shape\": [3, 3, 1, 2], \"dtype\": \"float32\"},"
                                  "{\"name\": \"c/bias\", \"shape\": [2], \"dtype\": \"float32\"}";

/* Floats 0, 1, 2, ... in two shards, the first `first_bytes` long (cut mid-float). */
static void write_shards(size_t first_bytes, size_t total_floats)
{
    float v[64];
    for (size_t i = 0; i < total_floats; i++)
        v[i] = (float)i;
    write_file("s1.bin", v, first_bytes);
    write_file("s2.bin", (const char *)v + first_bytes, total_floats * 4 - first_bytes);
}

static void test_reads_weights_and_layers(void)
{
    write_model(good_weights, "\"s1.bin\", \"s2.bin\"");
    write_shards(7, 20);
    ts_tfjs_model m;
    CHECK_MSG(ts_tfjs_load(path_of("model.json"), &m) == TS_OK, "%s", ts_error_message());
    CHECK(m.n_weights == 2 && m.n_layers == 3);
    const ts_tfjs_weight *k = ts_tfjs_find_weight(&m, "c/kernel"), *b = ts_tfjs_find_weight(&m, "c/bias");
    CHECK(k && k->ndim == 4 && k->shape[0] == 3 && k->shape[3] == 2);
    CHECK(b && b->ndim == 1 && b->shape[0] == 2);
    if (k && b) {
        CHECK(k->data[0] == 0.0f && k->data[17] == 17.0f);
        CHECK(b->data[0] == 18.0f && b->data[1] == 19.0f);
    }
    const ts_tfjs_layer *sum = ts_tfjs_find_layer(&m, "sum"), *c = ts_tfjs_find_layer(&m, "c");
    CHECK(sum && sum->n_inputs == 2 && strcmp(sum->inputs[0], "c") == 0 && strcmp(sum->inputs[1], "in") == 0);
    int ks[2] = {0, 0};
    CHECK(c && ts_tfjs_config_ints(c, "kernel_size", ks, 2) == 2 && ks[0] == 3 && ks[1] == 3);
    CHECK(c && strcmp(ts_tfjs_config_str(c, "padding"), "same") == 0);
    CHECK(c && ts_tfjs_config_str(c, "missing") == NULL && ts_tfjs_config_ints(c, "padding", ks, 2) == 0);
    CHECK(ts_tfjs_count_class(&m, "Conv2D") == 1 && ts_tfjs_count_class(&m, "Dense") == 0);
    CHECK(strcmp(m.input, "in") == 0 && strcmp(m.output, "sum") == 0);
    ts_tfjs_free(&m);

    ts_rdn *r = NULL;
    CHECK(ts_rdn_load(path_of("model.json"), &r) == TS_ERR_MODEL && r == NULL);
    CHECK(strstr(ts_error_message(), "neither an RDN") != NULL);
}

/* Loading must fail with `code` and a message containing `what`. */
static void expect_failure(const char *weights, const char *paths, int code, const char *what)
{
    write_model(weights, paths);
    ts_tfjs_model m;
    int rc = ts_tfjs_load(path_of("model.json"), &m);
    CHECK_MSG(rc == code, "want %d, got %d: %s", code, rc, ts_error_message());
    CHECK_MSG(strstr(ts_error_message(), what) != NULL, "message '%s' lacks '%s'", ts_error_message(), what);
    CHECK(m.n_weights == 0 && m.data == NULL && m.json == NULL);
}

static void test_bad_files_fail_cleanly(void)
{
    write_shards(7, 20);
    const char *paths = "\"s1.bin\", \"s2.bin\"";
    expect_failure(good_weights, "\"s1.bin\"", TS_ERR_FORMAT, "the shards hold 7 bytes");
    write_shards(40, 21); /* s2 holds one float too many */
    expect_failure(good_weights, paths, TS_ERR_FORMAT, "more than the manifest");
    write_shards(7, 20);
    expect_failure(good_weights, "\"../s1.bin\", \"s2.bin\"", TS_ERR_FORMAT, "not a plain file name");
    expect_failure(good_weights, "\"s1.bin\", \"nothere.bin\"", TS_ERR_IO, "nothere.bin");
    expect_failure(good_weights, "\"s1.bin\", 5", TS_ERR_FORMAT, "not a string");
    expect_failure("{\"name\": \"w\", \"shape\": [2], \"dtype\": \"float16\"}", paths, TS_ERR_UNSUPPORTED, "float32");
    expect_failure("{\"name\": \"w\", \"shape\": [2], \"dtype\": \"float32\", \"quantization\": {\"dtype\": "
                   "\"uint8\"}}",
                   paths, TS_ERR_UNSUPPORTED, "unquantized");
    expect_failure("{\"name\": \"w\", \"shape\": [-2], \"dtype\": \"float32\"}", paths, TS_ERR_FORMAT, "bad shape");
    expect_failure("{\"name\": \"w\", \"shape\": [1, 1, 1, 1, 1], \"dtype\": \"float32\"}", paths, TS_ERR_FORMAT,
                   "bad shape");
    expect_failure("{\"name\": \"w\", \"shape\": [100000, 100000], \"dtype\": \"float32\"}", paths, TS_ERR_FORMAT,
                   "bad shape");
    expect_failure("{\"name\": \"w\", \"shape\": [10], \"dtype\": \"float32\"},"
                   "{\"name\": \"w\", \"shape\": [10], \"dtype\": \"float32\"}",
                   paths, TS_ERR_FORMAT, "appears twice");
    expect_failure("{\"shape\": [2], \"dtype\": \"float32\"}", paths, TS_ERR_FORMAT, "no name");

    write_file("model.json", "{\"format\": ", 11);
    ts_tfjs_model m;
    CHECK(ts_tfjs_load(path_of("model.json"), &m) == TS_ERR_FORMAT);
    write_file("model.json", "{\"format\": \"graph-model\"}", 25);
    CHECK(ts_tfjs_load(path_of("model.json"), &m) == TS_ERR_UNSUPPORTED);
    write_file("model.json", "{\"modelTopology\": {}}", 21);
    CHECK(ts_tfjs_load(path_of("model.json"), &m) == TS_ERR_FORMAT);
    CHECK(ts_tfjs_load(path_of("absent.json"), &m) == TS_ERR_IO);
    CHECK(strstr(ts_error_message(), "absent.json") != NULL);
    CHECK(ts_tfjs_load(dir, &m) == TS_ERR_IO); /* a directory */
}

int main(void)
{
    const char *tmp = getenv("TESSERA_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/tfjs", tmp && tmp[0] ? tmp : "/tmp");
    mkdir(tmp && tmp[0] ? tmp : "/tmp", 0777);
    mkdir(dir, 0777);
    static const test_case tests[] = {TEST(test_reads_weights_and_layers), TEST(test_bad_files_fail_cleanly)};
    return test_run_all(tests, 2);
}
