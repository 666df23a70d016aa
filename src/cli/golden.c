/* tessera golden CASE_DIR...: run golden reference cases (see src/golden/golden.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "golden/golden.h"

static void golden_usage(FILE *f)
{
    fprintf(f, "usage: tessera golden [--vae-tile N] [--model FILE] [--rel-l2 X] CASE_DIR...\n\n"
               "Runs each golden case folder (case.json + model + io.safetensors, see\n"
               "shared/golden/FORMAT.md) and prints one line per compared tensor with its\n"
               "max_abs, rel_l2 and PASS/FAIL.\n\n"
               "  --vae-tile N  run the VAE cases through the tiled VAE, tiles of N latent\n"
               "                pixels, at 10x the case tolerances\n"
               "  --model FILE  load these weights instead of the case's model.safetensors\n"
               "                (e.g. a `tessera convert` GGUF of it)\n"
               "  --rel-l2 X    pass every output on relative L2 error <= X alone (for\n"
               "                rounded or quantised weights)\n\n"
               "exit status: 0 every case passed (or was skipped among others that ran),\n"
               "1 a comparison failed, 77 every case is of a family not implemented yet.\n");
}

int cmd_golden(int argc, char **argv)
{
    int ran = 0, skipped = 0, failed = 0, ncases = 0;
    const char *skipped_names[256];
    golden_options opts = {.tolerance_scale = 1.0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            golden_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--vae-tile") == 0) {
            char *end = NULL;
            long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (!end || *end || n < 1 || n > 1 << 16) {
                fprintf(stderr, "tessera golden: --vae-tile needs a tile size in latent pixels (1..65536)\n");
                return 2;
            }
            opts.tolerance_scale *= 10.0;
            opts.vae_tile = (int)n;
            i++;
        } else if (strcmp(argv[i], "--model") == 0 || strcmp(argv[i], "--rel-l2") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tessera golden: %s needs a value\n", argv[i]);
                return 2;
            }
            if (argv[i][2] == 'm') {
                opts.model = argv[++i];
                continue;
            }
            char *end = NULL;
            double limit = strtod(argv[++i], &end);
            if (!end || *end || !(limit > 0 && limit < 1)) {
                fprintf(stderr, "tessera golden: --rel-l2 needs a number between 0 and 1\n");
                return 2;
            }
            opts.rel_l2 = limit;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tessera golden: unknown option '%s'\n", argv[i]);
            return 2;
        } else {
            argv[++ncases] = argv[i];
        }
    }
    for (int i = 1; i <= ncases; i++) {
        int rc = golden_run_case(argv[i], &opts);
        if (rc == 77) {
            if (skipped < 256)
                skipped_names[skipped] = argv[i];
            skipped++;
        } else {
            ran++;
            failed += rc != 0;
        }
    }
    if (ran + skipped == 0) {
        golden_usage(stderr);
        return 2;
    }
    printf("golden: %d passed, %d failed, %d skipped\n", ran - failed, failed, skipped);
    for (int i = 0; i < skipped && i < 256; i++)
        printf("  skipped (not implemented): %s\n", skipped_names[i]);
    if (failed)
        return 1;
    return ran ? 0 : 77;
}
