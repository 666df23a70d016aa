/*
 * tessera info FILE [--json]: what a safetensors or GGUF checkpoint holds, without loading it.
 *
 * Only the header is read (the data stays mapped and untouched), so this answers in
 * milliseconds for a 24 GB file.  It reports what a user needs before choosing
 * flags: the model family and components as the loaders will see them, parameter and
 * byte counts per dtype, and the metadata keys.  Exit status: 0 a known family,
 * 3 an unknown one (the summary is still printed), 1 an unreadable or malformed
 * file, 2 bad usage.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "io/weights.h"
#include "models/family.h"

typedef struct {
    uint64_t parameters, bytes;
    size_t per_dtype_tensors[TS_DTYPE_COUNT];
    uint64_t per_dtype_bytes[TS_DTYPE_COUNT];
} totals;

static void info_usage(FILE *f)
{
    fprintf(f, "usage: tessera info FILE [--json]\n\n"
               "Summarises a .safetensors or .gguf checkpoint from its header: tensor count, parameters,\n"
               "dtypes (tensors and bytes each), the detected model family and components,\n"
               "and the metadata keys (__metadata__, or the GGUF keys).  --json prints one JSON object instead.\n\n"
               "families: sd1 sd2 sdxl sd3 sd3.5 flux-schnell flux-dev vae clip-l clip-g t5\n"
               "exit status: 0 known family, 3 unknown family, 1 unreadable file, 2 bad usage.\n");
}

static void count(const ts_weights *wf, totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < ts_weights_count(wf); i++) {
        const ts_weight_info *x = ts_weights_info(wf, i);
        t->parameters += ts_weight_info_numel(x);
        t->bytes += x->bytes;
        t->per_dtype_tensors[x->dtype]++;
        t->per_dtype_bytes[x->dtype] += x->bytes;
    }
}

/* 1234567 -> "1.23 M"; exact counts are printed next to it. */
static const char *human(char *buf, size_t size, uint64_t v, const char *const units[4])
{
    double x = (double)v;
    int u = 0;
    while (x >= 1000 && u < 3) {
        x /= 1000;
        u++;
    }
    snprintf(buf, size, u ? "%.2f %s" : "%.0f%s", x, units[u]);
    return buf;
}

static const char *const count_units[] = {"", "K", "M", "B"};
static const char *const byte_units[] = {" B", "KB", "MB", "GB"};

static void print_text(const ts_weights *wf, const totals *t, const ts_model_info *m)
{
    char h[32];
    printf("file        %s (%llu bytes)\n", ts_weights_path(wf), (unsigned long long)ts_weights_file_size(wf));
    printf("tensors     %zu\n", ts_weights_count(wf));
    printf("parameters  %llu (%s)\n", (unsigned long long)t->parameters,
           human(h, sizeof h, t->parameters, count_units));
    printf("data bytes  %llu (%s)\n", (unsigned long long)t->bytes, human(h, sizeof h, t->bytes, byte_units));
    for (int d = 0; d < TS_DTYPE_COUNT; d++)
        if (t->per_dtype_tensors[d])
            printf("  %-8s  %zu tensors, %llu bytes (%s)\n", ts_dtype_name((ts_dtype)d), t->per_dtype_tensors[d],
                   (unsigned long long)t->per_dtype_bytes[d], human(h, sizeof h, t->per_dtype_bytes[d], byte_units));
    printf("family      %s\n", m->family == TS_FAMILY_UNKNOWN ? "unknown family" : ts_family_name(m->family));
    for (int c = 0; c < TS_COMP_COUNT; c++)
        if (m->comp[c].prefix)
            printf("  %-10s  %zu tensors, %s parameters, prefix \"%s\"\n", ts_component_name((ts_component)c),
                   m->comp[c].tensors, human(h, sizeof h, m->comp[c].parameters, count_units), m->comp[c].prefix);
    if (m->other_tensors)
        printf("  %-10s  %zu tensors\n", "(other)", m->other_tensors);
    const char *meta = ts_weights_metadata_key(wf, 0);
    printf("metadata    %s", meta ? "" : "(none)");
    for (size_t i = 0; (meta = ts_weights_metadata_key(wf, i)) != NULL; i++)
        printf("%s%s", i ? ", " : "", meta);
    printf("\n");
}

static int print_json(const ts_weights *wf, const totals *t, const ts_model_info *m)
{
    cJSON *root = cJSON_CreateObject(), *dtypes = cJSON_CreateObject(), *comps = cJSON_CreateArray(),
          *details = cJSON_CreateObject(), *meta = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "file", ts_weights_path(wf));
    cJSON_AddNumberToObject(root, "file_bytes", (double)ts_weights_file_size(wf));
    cJSON_AddNumberToObject(root, "tensors", (double)ts_weights_count(wf));
    cJSON_AddNumberToObject(root, "parameters", (double)t->parameters);
    cJSON_AddNumberToObject(root, "data_bytes", (double)t->bytes);
    for (int d = 0; d < TS_DTYPE_COUNT; d++)
        if (t->per_dtype_tensors[d]) {
            cJSON *e = cJSON_AddObjectToObject(dtypes, ts_dtype_name((ts_dtype)d));
            cJSON_AddNumberToObject(e, "tensors", (double)t->per_dtype_tensors[d]);
            cJSON_AddNumberToObject(e, "bytes", (double)t->per_dtype_bytes[d]);
        }
    cJSON_AddItemToObject(root, "dtypes", dtypes);
    cJSON_AddStringToObject(root, "family", ts_family_name(m->family));
    for (int c = 0; c < TS_COMP_COUNT; c++)
        if (m->comp[c].prefix) {
            const char *name = ts_component_name((ts_component)c);
            cJSON_AddItemToArray(comps, cJSON_CreateString(name));
            cJSON *e = cJSON_AddObjectToObject(details, name);
            cJSON_AddStringToObject(e, "prefix", m->comp[c].prefix);
            cJSON_AddNumberToObject(e, "tensors", (double)m->comp[c].tensors);
            cJSON_AddNumberToObject(e, "parameters", (double)m->comp[c].parameters);
        }
    cJSON_AddItemToObject(root, "components", comps);
    cJSON_AddItemToObject(root, "component_counts", details);
    cJSON_AddNumberToObject(root, "other_tensors", (double)m->other_tensors);
    const char *key;
    for (size_t i = 0; (key = ts_weights_metadata_key(wf, i)) != NULL; i++)
        cJSON_AddItemToArray(meta, cJSON_CreateString(key));
    cJSON_AddItemToObject(root, "metadata_keys", meta);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "tessera info: out of memory\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}

/* The reason goes on one line even when a tensor name in it holds control characters. */
static void print_error(void)
{
    fputs("tessera info: ", stderr);
    for (const char *p = ts_error_message(); *p; p++)
        fputc((unsigned char)*p < 0x20 ? '?' : *p, stderr);
    fputc('\n', stderr);
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            info_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "tessera info: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "tessera info: one FILE at a time ('%s' and '%s' given)\n", path, argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        info_usage(stderr);
        return 2;
    }
    ts_weights *wf;
    if (ts_weights_open(path, &wf) != 0) {
        print_error();
        return 1;
    }
    totals t;
    ts_model_info m;
    count(wf, &t);
    ts_family_detect(wf, &m);
    int rc = 0;
    if (json)
        rc = print_json(wf, &t, &m);
    else
        print_text(wf, &t, &m);
    ts_weights_close(wf);
    if (rc != 0)
        return rc;
    return m.family == TS_FAMILY_UNKNOWN ? 3 : 0;
}
