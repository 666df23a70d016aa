/* tessera: the command-line front end.  Dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "tessera.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"convert", cmd_convert, "convert a checkpoint between safetensors and GGUF, quantising it"},
    {"generate", cmd_generate, "Stable Diffusion 1.x/2.x/SDXL: txt2img, img2img, inpaint, instruction editing"},
    {"golden", cmd_golden, "check the engine against golden reference cases"},
    {"info", cmd_info, "show a checkpoint's tensors, dtypes, model family and metadata"},
    {"bench", cmd_bench, "measure kernel and model speed and memory on this machine"},
    {"encode", cmd_encode, "show a prompt's tokens, weights and text-encoder output statistics"},
    {"upscale", cmd_upscale, "super-resolve a photo x2..x8 (RDN/RRDN models from UpscalerJS)"},
    {"seams", cmd_seams, "score how visible a tile grid is in an image"},
    {"vae-decode", cmd_vae_decode, "decode a random latent (tiled or not): time and peak memory"},
};

static void usage(FILE *f)
{
    fprintf(f, "tessera %s: diffusion image generation and editing at very high resolution\n\n", TESSERA_VERSION);
    fprintf(f, "usage: tessera COMMAND [options]   (tessera COMMAND --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("tessera %s\n", TESSERA_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tessera: unknown command '%s' (see tessera --help)\n", argv[1]);
    return 2;
}
