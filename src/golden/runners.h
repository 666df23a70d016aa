/*
 * Runner functions, one per golden family; registered in runners.c.
 */
#ifndef TS_GOLDEN_RUNNERS_H
#define TS_GOLDEN_RUNNERS_H

#include "golden/golden.h"
#include "models/flux.h"

int golden_run_vae_kl(golden_case *gc);
int golden_run_vae_kl16(golden_case *gc);
int golden_run_unet(golden_case *gc);
int golden_run_sdxl_vector(golden_case *gc);
int golden_run_clip_tokenizer(golden_case *gc);
int golden_run_t5_tokenizer(golden_case *gc);
int golden_run_schedules(golden_case *gc);
int golden_run_samplers(golden_case *gc);
int golden_run_cfg(golden_case *gc);
int golden_run_clip_text(golden_case *gc);
int golden_run_t5_encoder(golden_case *gc);
int golden_run_flux(golden_case *gc);
/* The RoPE split of a case (axes_dim, theta in the given config object; Flux.1
 * defaults for what is absent): the weights do not show it.  Shared by the Flux runners. */
ts_flux_config golden_flux_rope(const cJSON *config);
int golden_run_mmdit(golden_case *gc);
int golden_run_sd_pipeline(golden_case *gc);
int golden_run_flux_pipeline(golden_case *gc);

#endif
