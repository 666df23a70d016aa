/*
 * tessera convert IN -o OUT [--type T]: safetensors <-> GGUF, with quantisation.
 *
 * The output format follows OUT's extension.  To GGUF the default type is f16;
 * q8_0/q4_0/q4_k/q6_k quantise the layers whose rows are whole blocks and keep norms,
 * embeddings, biases and small tensors in float (docs/gguf.md).  To safetensors
 * block types are widened to f32 and f16/bf16/f32 are kept unless --type asks for
 * one.  A one-line summary per output dtype goes to stdout.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "io/convert.h"

static void convert_usage(FILE *f)
{
    fprintf(f, "usage: tessera convert IN -o OUT.gguf [--type f16|bf16|f32|q8_0|q4_0|q4_k|q6_k]\n"
               "       tessera convert IN.gguf -o OUT.safetensors [--type f32|f16|bf16]\n\n"
               "Converts a checkpoint between safetensors and GGUF, keeping tensor names and shapes.\n"
               "To GGUF (default f16), the quantised types apply to layers whose rows are whole\n"
               "blocks; norms, embeddings, biases and tensors under %d values stay in float.\n"
               "To safetensors, quantised tensors are widened to f32 and f16/bf16 are kept.\n"
               "exit status: 0 done, 1 unreadable input or failed write, 2 bad usage.\n",
            TS_CONVERT_MIN_QUANT_ELEMENTS);
}

int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    ts_dtype type = TS_DTYPE_COUNT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            convert_usage(stdout);
            return 0;
        }
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--type") == 0) && i + 1 >= argc) {
            fprintf(stderr, "tessera convert: %s needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "-o") == 0) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--type") == 0) {
            if (ts_convert_type_from_name(argv[++i], &type) != 0) {
                fprintf(stderr, "tessera convert: unknown --type '%s' (f16 bf16 f32 q8_0 q4_0 q4_k q6_k)\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "tessera convert: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (in) {
            fprintf(stderr, "tessera convert: one input at a time ('%s' and '%s' given)\n", in, argv[i]);
            return 2;
        } else {
            in = argv[i];
        }
    }
    if (!in || !out) {
        convert_usage(stderr);
        return 2;
    }
    ts_convert_stats stats;
    int rc = ts_convert(in, out, type, &stats);
    if (rc != 0) {
        fprintf(stderr, "tessera convert: %s\n", ts_error_message());
        return rc == TS_ERR_ARG ? 2 : 1;
    }
    printf("%s: %llu bytes -> %s: %llu bytes\n", in, (unsigned long long)stats.in_bytes, out,
           (unsigned long long)stats.out_bytes);
    for (int d = 0; d < TS_DTYPE_COUNT; d++)
        if (stats.tensors[d])
            printf("  %-5s %6zu tensors, %llu bytes\n", ts_dtype_name((ts_dtype)d), stats.tensors[d],
                   (unsigned long long)stats.bytes[d]);
    return 0;
}
