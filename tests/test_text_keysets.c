/*
 * The text encoders load the real published files: for each key set in
 * $TESSERA_SHARED/data/keysets (names, shapes and dtypes of sd15, sd21, sdxl_base,
 * clip_l, clip_g, t5xxl), a sparse safetensors file with exactly those tensors is
 * written (header only; the data is a hole, so a 9.8 GB T5-XXL costs no disk) and
 * the loaders must find every tower and read the published architecture from it.
 * The Flux transformers (flux1_schnell, flux1_dev) are checked here too, for the same
 * sparse-file machinery.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "models/flux.h"
#include "test.h"
#include "text/clip_text.h"
#include "text/t5_encoder.h"

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(f);
    return s;
}

static size_t dtype_bytes(const char *dt)
{
    return strcmp(dt, "F32") == 0 || strcmp(dt, "I32") == 0 ? 4 : strcmp(dt, "I64") == 0 ? 8 : 2;
}

/* Writes a sparse safetensors file with the key set's tensors; returns it opened, or NULL. */
static ts_weights *open_keyset(const char *name)
{
    const char *shared = getenv("TESSERA_SHARED"), *tmp = getenv("TESSERA_TEST_TMP");
    char path[4096];
    snprintf(path, sizeof path, "%s/data/keysets/%s.json", shared ? shared : "../shared", name);
    char *text = read_text(path);
    cJSON *json = text ? cJSON_Parse(text) : NULL;
    const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(json, "tensors");
    free(text);
    if (!tensors) {
        fprintf(stderr, "cannot read %s\n", path);
        cJSON_Delete(json);
        return NULL;
    }
    cJSON *header = cJSON_CreateObject();
    double offset = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tensors)
    {
        const char *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring;
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape"), *d;
        double bytes = (double)dtype_bytes(dt);
        cJSON_ArrayForEach(d, shape) bytes *= d->valuedouble;
        cJSON *e = cJSON_AddObjectToObject(header, t->string);
        cJSON_AddStringToObject(e, "dtype", dt);
        cJSON_AddItemToObject(e, "shape", cJSON_Duplicate(shape, 1));
        cJSON *span = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(span, cJSON_CreateNumber(offset));
        cJSON_AddItemToArray(span, cJSON_CreateNumber(offset + bytes));
        offset += bytes;
    }
    char *h = cJSON_PrintUnformatted(header);
    size_t hlen = strlen(h);
    snprintf(path, sizeof path, "%s/keyset_%s.safetensors", tmp ? tmp : "/tmp", name);
    if (tmp) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp);
        CHECK(system(cmd) == 0);
    }
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    unsigned char len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    int ok = fd >= 0 && write(fd, len8, 8) == 8 && write(fd, h, hlen) == (ssize_t)hlen &&
             ftruncate(fd, (off_t)(8 + hlen) + (off_t)offset) == 0;
    if (fd >= 0)
        close(fd);
    free(h);
    cJSON_Delete(header);
    cJSON_Delete(json);
    ts_weights *st = NULL;
    if (!ok || ts_weights_open(path, &st) != 0) {
        fprintf(stderr, "%s: %s\n", path, ts_error_message());
        st = NULL;
    }
    unlink(path); /* the mapping stays valid */
    return st;
}

typedef struct {
    const char *prefix;
    ts_clip_layout layout;
    int layers, width, heads, mlp;
    int proj_dim, proj_is_linear; /* proj_dim 0: no projection (the pooled output is width wide) */
    ts_clip_act act;
} clip_expect;

static void check_towers(const char *keyset, const clip_expect *want, int n)
{
    ts_weights *st = open_keyset(keyset);
    CHECK_MSG(st != NULL, "%s", keyset);
    if (!st)
        return;
    for (int i = 0; i < n; i++) {
        const clip_expect *w = &want[i];
        const char *pre = ts_clip_text_prefix(st, i);
        CHECK_MSG(pre && strcmp(pre, w->prefix) == 0, "%s tower %d: prefix %s", keyset, i, pre ? pre : "(none)");
        ts_clip_text m;
        int rc = ts_clip_text_load(st, pre, NULL, &m);
        CHECK_MSG(rc == 0, "%s: %s", keyset, ts_error_message());
        if (rc)
            continue;
        CHECK_MSG(m.layout == w->layout && m.layers == w->layers && m.width == w->width && m.heads == w->heads &&
                      m.mlp == w->mlp && m.context == 77 && m.vocab == 49408 && m.act == w->act,
                  "%s tower %d: layout %d, %d layers, width %d, %d heads, mlp %d, act %d", keyset, i, (int)m.layout,
                  m.layers, m.width, m.heads, m.mlp, (int)m.act);
        int proj_ok = w->proj_dim ? m.proj.data && m.proj_dim == w->proj_dim && m.proj_is_linear == w->proj_is_linear
                                  : !m.proj.data && m.proj_dim == m.width;
        CHECK_MSG(proj_ok, "%s tower %d: projection %s, dim %d, linear %d", keyset, i, m.proj.data ? "yes" : "no",
                  m.proj_dim, m.proj_is_linear);
    }
    CHECK_MSG(ts_clip_text_prefix(st, n) == NULL, "%s: more than %d towers", keyset, n);
    ts_weights_close(st);
}

#define HF TS_CLIP_LAYOUT_HF
#define OC TS_CLIP_LAYOUT_OPENCLIP
#define QG TS_CLIP_ACT_QUICK_GELU
#define GE TS_CLIP_ACT_GELU

static void test_sd15(void)
{
    const clip_expect w[] = {{"cond_stage_model.transformer.", HF, 12, 768, 12, 3072, 0, 0, QG}};
    check_towers("sd15", w, 1);
}

static void test_sd21(void)
{
    const clip_expect w[] = {{"cond_stage_model.model.", OC, 24, 1024, 16, 4096, 1024, 0, GE}};
    check_towers("sd21", w, 1);
}

static void test_sdxl(void)
{
    const clip_expect w[] = {{"conditioner.embedders.0.transformer.", HF, 12, 768, 12, 3072, 0, 0, QG},
                             {"conditioner.embedders.1.model.", OC, 32, 1280, 20, 5120, 1280, 0, GE}};
    check_towers("sdxl_base", w, 2);
}

static void test_clip_l_and_g(void)
{
    const clip_expect l[] = {{"", HF, 12, 768, 12, 3072, 0, 0, QG}};
    const clip_expect g[] = {{"", HF, 32, 1280, 20, 5120, 1280, 1, GE}};
    check_towers("clip_l", l, 1);
    check_towers("clip_g", g, 1);
}

static void test_t5xxl(void)
{
    ts_weights *st = open_keyset("t5xxl");
    CHECK(st != NULL);
    if (!st)
        return;
    ts_t5_encoder m;
    int rc = ts_t5_load(st, NULL, &m);
    CHECK_MSG(rc == 0, "%s", ts_error_message());
    CHECK(m.layers == 24 && m.d_model == 4096 && m.heads == 64 && m.d_kv == 64 && m.d_ff == 10240 &&
          m.vocab == 32128 && m.buckets == 32 && m.block[23].wo.dtype == TS_DTYPE_F16);
    ts_clip_text c;
    CHECK(ts_clip_text_prefix(st, 0) == NULL && ts_clip_text_load(st, "", NULL, &c) == TS_ERR_MODEL);
    ts_weights_close(st);
}

static void check_flux(const char *keyset, int guidance)
{
    ts_weights *st = open_keyset(keyset);
    CHECK_MSG(st != NULL, "%s", keyset);
    if (!st)
        return;
    ts_flux *f = NULL;
    int rc = ts_flux_load(st, "", ts_flux_config_default(), &f);
    CHECK_MSG(rc == 0, "%s: %s", keyset, ts_error_message());
    if (f)
        CHECK_MSG(ts_flux_in_channels(f) == 64 && ts_flux_context_dim(f) == 4096 && ts_flux_vec_dim(f) == 768 &&
                      ts_flux_has_guidance(f) == guidance,
                  "%s: in %d, context %d, vec %d, guidance %d", keyset, ts_flux_in_channels(f),
                  ts_flux_context_dim(f), ts_flux_vec_dim(f), ts_flux_has_guidance(f));
    ts_flux_free(f);
    ts_weights_close(st);
}

static void test_flux(void)
{
    check_flux("flux1_schnell", 0);
    check_flux("flux1_dev", 1);
}

TEST_MAIN(TEST(test_sd15), TEST(test_sd21), TEST(test_sdxl), TEST(test_clip_l_and_g), TEST(test_t5xxl),
          TEST(test_flux))
