/*
 * The table of golden runners: family name (case.json "family") -> the function
 * that reproduces it.  A family missing here is reported as "not implemented".
 */
#include <string.h>

#include "golden/golden.h"
#include "golden/runners.h"

static const struct {
    const char *family;
    golden_runner_fn run;
} runners[] = {
    {"vae_kl", golden_run_vae_kl},
    {"vae_kl16", golden_run_vae_kl16},
    {"sd1-unet", golden_run_unet},
    {"sd1-unet-inpaint", golden_run_unet},
    {"sdxl-unet", golden_run_unet},
    {"sdxl-vector-conditioning", golden_run_sdxl_vector},
    {"clip_tokenizer", golden_run_clip_tokenizer},
    {"t5_tokenizer", golden_run_t5_tokenizer},
    {"sd-discrete-schedules", golden_run_schedules},
    {"k-diffusion-samplers", golden_run_samplers},
    {"classifier-free-guidance", golden_run_cfg},
    {"clip_text_l", golden_run_clip_text},
    {"clip_text_g", golden_run_clip_text},
    {"t5-encoder", golden_run_t5_encoder},
    {"flux", golden_run_flux},
    {"sd3-mmdit", golden_run_mmdit},
    {"sd1-pipeline", golden_run_sd_pipeline},
    {"flux-pipeline", golden_run_flux_pipeline},
    {NULL, NULL},
};

golden_runner_fn golden_runner_for(const char *family)
{
    for (size_t i = 0; runners[i].family; i++)
        if (strcmp(runners[i].family, family) == 0)
            return runners[i].run;
    return NULL;
}
