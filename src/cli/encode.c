/*
 * tessera encode -m MODEL -p PROMPT: what the text encoders make of a prompt, for users
 * debugging prompts (why a word has no effect, where a long prompt is cut into chunks).
 *
 * It runs exactly the conditioning generation uses (pipeline/conditioning.h) and prints
 * each 77-token chunk's ids with their vocabulary pieces, the weights that differ from
 * 1, and summary statistics of the context (and of SDXL's pooled vector); --json gives
 * the same as one object for scripts.  A file that holds only text encoders (no
 * diffusion model) is accepted and its family taken from the towers it has: CLIP-L
 * alone conditions like SD1, OpenCLIP-H like SD2, bigG (with CLIP-L, here or from
 * --clip-l) like SDXL.
 * Exit status: 0 success, 1 a file or prompt that cannot be encoded, 2 bad usage.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "pipeline/conditioning.h"

static void encode_usage(FILE *f)
{
    fprintf(f, "usage: tessera encode -m MODEL -p PROMPT [--clip-skip N] [--json]\n"
               "                      [--clip-l FILE] [--clip-g FILE] [--heads N]\n\n"
               "Encodes an AUTOMATIC1111-syntax prompt ((word:1.3), [word], BREAK; see\n"
               "docs/prompt-syntax.md) with the text encoders of an SD1, SD2 or SDXL checkpoint\n"
               "and prints each 77-token chunk's ids, the weights that are not 1, and the\n"
               "shape, mean, std, min and max of the conditioning (and of SDXL's pooled vector).\n\n"
               "  -m, --model FILE  checkpoint (.safetensors or .gguf), or a file with only text encoders\n"
               "  -p, --prompt TEXT the prompt\n"
               "  --clip-skip N     1 = last layer, 2 = penultimate, ...; default: the model's\n"
               "                    own (SD1 1, SD2 2, SDXL 2)\n"
               "  --clip-l FILE     CLIP-L weights when MODEL has none (SD1, SDXL)\n"
               "  --clip-g FILE     OpenCLIP bigG weights when MODEL has none (SDXL)\n"
               "  --heads N         attention heads per tower (default width / 64; only tiny\n"
               "                    test models need this)\n"
               "  --json            print one JSON object instead\n"
               "exit status: 0 success, 1 unreadable model or prompt, 2 bad usage.\n");
}

typedef struct {
    const char *model, *prompt, *clip_l, *clip_g;
    int clip_skip, heads, json;
} encode_args;

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Returns 0, or the exit status for bad usage (2) / --help (-1 -> 0). */
static int parse_args(int argc, char **argv, encode_args *a)
{
    *a = (encode_args){0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            encode_usage(stdout);
            return -1;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = 1;
            continue;
        }
        const char **str = strcmp(arg, "-m") == 0 || strcmp(arg, "--model") == 0    ? &a->model
                           : strcmp(arg, "-p") == 0 || strcmp(arg, "--prompt") == 0 ? &a->prompt
                           : strcmp(arg, "--clip-l") == 0                           ? &a->clip_l
                           : strcmp(arg, "--clip-g") == 0                           ? &a->clip_g
                                                                                    : NULL;
        int *num = strcmp(arg, "--clip-skip") == 0 ? &a->clip_skip : strcmp(arg, "--heads") == 0 ? &a->heads : NULL;
        if (!str && !num) {
            fprintf(stderr, "tessera encode: unknown option '%s' (see --help)\n", arg);
            return 2;
        }
        if (!val) {
            fprintf(stderr, "tessera encode: %s needs a value\n", arg);
            return 2;
        }
        if (str)
            *str = val;
        else if (parse_int(val, num == &a->heads ? 1 : 0, num == &a->heads ? 1024 : TS_CLIP_MAX_LAYERS, num)) {
            fprintf(stderr, "tessera encode: bad value '%s' for %s\n", val, arg);
            return 2;
        }
        i++;
    }
    if (!a->model || !a->prompt) {
        fprintf(stderr, "tessera encode: %s\n", !a->model ? "no model (-m FILE)" : "no prompt (-p TEXT)");
        return 2;
    }
    return 0;
}

/* The family whose conditioning to build: the checkpoint's, or for a file of text
 * encoders alone, the one its towers belong to. */
static ts_family text_family(const ts_model_info *m)
{
    if (m->family == TS_FAMILY_SD1 || m->family == TS_FAMILY_SD2 || m->family == TS_FAMILY_SDXL)
        return m->family;
    int diffusion = m->comp[TS_COMP_UNET].prefix || m->comp[TS_COMP_MMDIT].prefix || m->comp[TS_COMP_FLUX].prefix;
    if (diffusion)
        return m->family;
    if (m->comp[TS_COMP_CLIP_G].prefix) /* bigG alone: SDXL, CLIP-L from --clip-l */
        return TS_FAMILY_SDXL;
    if (m->comp[TS_COMP_OPENCLIP_H].prefix)
        return TS_FAMILY_SD2;
    if (m->comp[TS_COMP_CLIP_L].prefix && !m->comp[TS_COMP_T5].prefix)
        return TS_FAMILY_SD1;
    return m->family;
}

typedef struct {
    double mean, std, min, max;
} stats;

static stats tensor_stats(const ts_tensor *t)
{
    int64_t n = ts_tensor_numel(t);
    stats s = {0.0, 0.0, INFINITY, -INFINITY};
    for (int64_t i = 0; i < n; i++) {
        s.mean += t->data[i];
        s.min = fmin(s.min, t->data[i]);
        s.max = fmax(s.max, t->data[i]);
    }
    s.mean /= (double)n;
    for (int64_t i = 0; i < n; i++)
        s.std += ((double)t->data[i] - s.mean) * ((double)t->data[i] - s.mean);
    s.std = sqrt(s.std / (double)n);
    return s;
}

/* Ids worth showing: up to the trailing run of padding, keeping the EOS that starts it. */
static int shown_ids(const int32_t *ids)
{
    int k = TS_CLIP_CONTEXT - 1;
    while (k > 0 && ids[k - 1] == ids[TS_CLIP_CONTEXT - 1])
        k--;
    return ids[TS_CLIP_CONTEXT - 1] == TS_CLIP_EOS ? k + 1 : k;
}

/* A float32 weight as the decimal the user wrote (1.1f prints as 1.1, not 1.10000002). */
static double weight_value(float w)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)w);
    return strtod(buf, NULL);
}

static void print_stats_text(const char *label, const ts_tensor *t)
{
    char shape[64];
    stats s = tensor_stats(t);
    printf("%-11s %s  mean %.6g  std %.6g  min %.6g  max %.6g\n", label,
           ts_shape_str(shape, sizeof shape, t->ndim, t->shape), s.mean, s.std, s.min, s.max);
}

static void print_text(const encode_args *a, ts_family family, int skip, const ts_prompt_tokens *tok,
                       const ts_conditioning *c)
{
    const ts_clip_tokenizer *tz = ts_clip_tokenizer_default();
    printf("model       %s\n", a->model);
    printf("family      %s, clip skip %d\n", ts_family_name(family), skip);
    printf("tokens      %d in %d chunk%s\n", tok->token_count, tok->n_chunks, tok->n_chunks == 1 ? "" : "s");
    for (int k = 0; k < tok->n_chunks; k++) {
        const int32_t *ids = tok->ids + k * TS_CLIP_CONTEXT;
        const float *w = tok->weights + k * TS_CLIP_CONTEXT;
        int n = shown_ids(ids);
        printf("chunk %-5d", k + 1);
        for (int i = 0; i < n; i++)
            printf(" %d", (int)ids[i]);
        if (n < TS_CLIP_CONTEXT)
            printf(" (+%d x %d)", TS_CLIP_CONTEXT - n, (int)ids[TS_CLIP_CONTEXT - 1]);
        printf("\n  pieces   ");
        for (int i = 1; i < n && ids[i] != TS_CLIP_EOS; i++)
            printf(" %s", ts_clip_token_str(tz, ids[i]));
        printf("\n");
        int weighted = 0;
        for (int i = 0; i < TS_CLIP_CONTEXT; i++)
            if (w[i] != 1.0f)
                printf("%s %d:%g", weighted++ ? "" : "  weights  ", i, weight_value(w[i]));
        if (weighted)
            printf("   (position:weight)\n");
    }
    print_stats_text("context", &c->context);
    if (c->pooled.data)
        print_stats_text("pooled", &c->pooled);
}

static cJSON *stats_json(const ts_tensor *t)
{
    cJSON *o = cJSON_CreateObject(), *shape = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t->ndim; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    stats s = tensor_stats(t);
    cJSON_AddNumberToObject(o, "mean", s.mean);
    cJSON_AddNumberToObject(o, "std", s.std);
    cJSON_AddNumberToObject(o, "min", s.min);
    cJSON_AddNumberToObject(o, "max", s.max);
    return o;
}

static int print_json(const encode_args *a, ts_family family, int skip, const ts_prompt_tokens *tok,
                      const ts_conditioning *c)
{
    const ts_clip_tokenizer *tz = ts_clip_tokenizer_default();
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", a->model);
    cJSON_AddStringToObject(root, "family", ts_family_name(family));
    cJSON_AddNumberToObject(root, "clip_skip", skip);
    cJSON_AddNumberToObject(root, "token_count", tok->token_count);
    cJSON *chunks = cJSON_AddArrayToObject(root, "chunks");
    for (int k = 0; k < tok->n_chunks; k++) {
        cJSON *ch = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(ch, "ids");
        cJSON *w = cJSON_AddArrayToObject(ch, "weights"), *pieces = cJSON_AddArrayToObject(ch, "pieces");
        const int32_t *id = tok->ids + k * TS_CLIP_CONTEXT;
        for (int i = 0; i < TS_CLIP_CONTEXT; i++) {
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(id[i]));
            cJSON_AddItemToArray(w, cJSON_CreateNumber(weight_value(tok->weights[k * TS_CLIP_CONTEXT + i])));
            const char *p = ts_clip_token_str(tz, id[i]);
            cJSON_AddItemToArray(pieces, cJSON_CreateString(p ? p : ""));
        }
        cJSON_AddItemToArray(chunks, ch);
    }
    cJSON_AddItemToObject(root, "context", stats_json(&c->context));
    cJSON_AddItemToObject(root, "pooled", c->pooled.data ? stats_json(&c->pooled) : cJSON_CreateNull());
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "tessera encode: out of memory\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}

/* The reason goes on one line even when a name in it holds control characters. */
static int fail_line(void)
{
    fputs("tessera encode: ", stderr);
    for (const char *p = ts_error_message(); *p; p++)
        fputc((unsigned char)*p < 0x20 ? '?' : *p, stderr);
    fputc('\n', stderr);
    return 1;
}

static int open_optional(const char *path, ts_weights **wf)
{
    *wf = NULL;
    return path ? ts_weights_open(path, wf) : 0;
}

int cmd_encode(int argc, char **argv)
{
    encode_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    ts_weights *main = NULL, *clip_l = NULL, *clip_g = NULL;
    ts_text_encoders *enc = NULL;
    ts_conditioning c = {0};
    ts_prompt_tokens tok = {0};
    rc = ts_weights_open(a.model, &main);
    if (!rc)
        rc = open_optional(a.clip_l, &clip_l);
    if (!rc)
        rc = open_optional(a.clip_g, &clip_g);
    ts_family family = TS_FAMILY_UNKNOWN;
    if (!rc) {
        ts_model_info info;
        ts_family_detect(main, &info);
        family = text_family(&info);
        if (family == TS_FAMILY_UNKNOWN)
            rc = ts_fail(TS_ERR_MODEL, "%s: unknown model family and no CLIP text encoder in the file", a.model);
    }
    if (!rc) {
        ts_text_encoders_opts o = {.tower = {{a.heads, TS_CLIP_ACT_AUTO}, {a.heads, TS_CLIP_ACT_AUTO}}};
        rc = ts_text_encoders_load_opts(family, main, clip_l, clip_g, &o, &enc);
        if (rc == TS_ERR_UNSUPPORTED)
            ts_fail_context(rc, "%s: ", a.model);
    }
    if (!rc)
        rc = ts_encode_prompt_tokens(enc, a.prompt, a.clip_skip, &c, &tok);
    int status = rc ? fail_line() : 0;
    if (!rc) {
        int skip = ts_text_encoders_clip_skip(enc, a.clip_skip);
        if (a.json)
            status = print_json(&a, family, skip, &tok, &c);
        else
            print_text(&a, family, skip, &tok, &c);
    }
    ts_prompt_tokens_free(&tok);
    ts_conditioning_free(&c);
    ts_text_encoders_free(enc);
    ts_weights_close(clip_g);
    ts_weights_close(clip_l);
    ts_weights_close(main);
    return status;
}
