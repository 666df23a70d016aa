/*
 * Model family detection on small in-memory checkpoints that carry only the keys
 * (and, where it matters, the shapes) that tell the families apart, plus the
 * loader-facing ts_family_require() messages.  Full published key sets are checked
 * by tests/cli/info.sh.
 */
#include <string.h>

#include "core/error.h"
#include "io/weights.h"
#include "models/family.h"
#include "test.h"

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
} key;

static char image[1 << 16];

/* A safetensors image of F16 tensors with these keys (data zero). */
static ts_weights *open_keys(const key *keys, int n)
{
    char header[1 << 15];
    int used = snprintf(header, sizeof header, "{");
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        used += snprintf(header + used, sizeof header - (size_t)used, "%s\"%s\": {\"dtype\": \"F16\", \"shape\": [",
                         i ? ", " : "", keys[i].name);
        for (int d = 0; d < keys[i].ndim; d++) {
            numel *= (uint64_t)keys[i].shape[d];
            used += snprintf(header + used, sizeof header - (size_t)used, "%s%lld", d ? ", " : "",
                             (long long)keys[i].shape[d]);
        }
        used += snprintf(header + used, sizeof header - (size_t)used, "], \"data_offsets\": [%llu, %llu]}",
                         (unsigned long long)at, (unsigned long long)(at + 2 * numel));
        at += 2 * numel;
    }
    used += snprintf(header + used, sizeof header - (size_t)used, "}");
    size_t len = 8 + (size_t)used + at;
    if (len > sizeof image)
        return NULL;
    memset(image, 0, len);
    for (int i = 0; i < 8; i++)
        image[i] = (char)((uint64_t)used >> (8 * i));
    memcpy(image + 8, header, (size_t)used);
    ts_weights *st = NULL;
    if (ts_weights_open_memory(image, len, &st) != 0)
        fprintf(stderr, "open failed: %s\n", ts_error_message());
    return st;
}

#define DETECT(keys, want_family)                                                                                      \
    do {                                                                                                               \
        ts_weights *st_ = open_keys(keys, (int)(sizeof keys / sizeof keys[0]));                                    \
        CHECK(st_ != NULL);                                                                                            \
        if (st_) {                                                                                                     \
            ts_family_detect(st_, &info);                                                                              \
            CHECK_MSG(info.family == (want_family), "%s: got %s, want %s", #keys, ts_family_name(info.family),         \
                      ts_family_name(want_family));                                                                    \
            ts_weights_close(st_);                                                                                     \
        }                                                                                                              \
    } while (0)

#define UNET "model.diffusion_model."

static void test_unet_families(void)
{
    ts_model_info info;
    const key sd1[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                       {UNET "input_blocks.1.1.proj_in.weight", 4, {8, 8, 1, 1}},
                       {UNET "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {8, 768}},
                       {"betas", 1, {10}}};
    DETECT(sd1, TS_FAMILY_SD1);
    CHECK(info.comp[TS_COMP_UNET].tensors == 3 && info.other_tensors == 1);
    CHECK(strcmp(info.comp[TS_COMP_UNET].prefix, UNET) == 0);
    CHECK(info.comp[TS_COMP_UNET].parameters == 8 * 4 * 9 + 64 + 8 * 768);
    const key sd2_width[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                             {UNET "input_blocks.1.1.proj_in.weight", 4, {8, 8, 1, 1}},
                             {UNET "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {8, 1024}}};
    DETECT(sd2_width, TS_FAMILY_SD2);
    const key sd2_linear[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                              {UNET "input_blocks.1.1.proj_in.weight", 2, {8, 8}}};
    DETECT(sd2_linear, TS_FAMILY_SD2);
    const key sd2_openclip[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                                {UNET "input_blocks.1.1.proj_in.weight", 4, {8, 8, 1, 1}},
                                {"cond_stage_model.model.token_embedding.weight", 2, {10, 8}},
                                {"cond_stage_model.model.positional_embedding", 2, {7, 8}}};
    DETECT(sd2_openclip, TS_FAMILY_SD2);
    CHECK(info.comp[TS_COMP_OPENCLIP_H].tensors == 2);
    const key sd1_full[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                            {UNET "input_blocks.1.1.proj_in.weight", 2, {8, 8}}, /* keys decide before shapes */
                            {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", 2, {10, 8}},
                            {"first_stage_model.decoder.conv_in.weight", 4, {8, 4, 3, 3}},
                            {"first_stage_model.quant_conv.weight", 4, {8, 8, 1, 1}}};
    DETECT(sd1_full, TS_FAMILY_SD1);
    CHECK(info.comp[TS_COMP_VAE].tensors == 2 && info.comp[TS_COMP_CLIP_L].tensors == 1);
    const key sdxl[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                        {UNET "label_emb.0.0.weight", 2, {8, 16}},
                        {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight", 2, {10, 8}},
                        {"conditioner.embedders.1.model.token_embedding.weight", 2, {10, 8}}};
    DETECT(sdxl, TS_FAMILY_SDXL);
    CHECK(info.comp[TS_COMP_CLIP_L].prefix && info.comp[TS_COMP_CLIP_G].prefix && !info.comp[TS_COMP_OPENCLIP_H].prefix);
    /* UNet-only files (ComfyUI-GGUF's) drop the prefix; their other keys are not the UNet's. */
    const key sd1_bare[] = {{"input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                            {"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {8, 768}},
                            {"out.2.weight", 4, {4, 8, 3, 3}},
                            {"betas", 1, {10}}};
    DETECT(sd1_bare, TS_FAMILY_SD1);
    CHECK(strcmp(info.comp[TS_COMP_UNET].prefix, "") == 0);
    CHECK(info.comp[TS_COMP_UNET].tensors == 3 && info.other_tensors == 1);
    /* stable-diffusion.cpp's SD2 files: OpenCLIP-H in HF layout where SD1 keeps CLIP-L. */
    const key sd2_sdcpp[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                             {UNET "input_blocks.1.1.proj_in.weight", 4, {8, 8, 1, 1}},
                             {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", 2, {4, 1024}}};
    DETECT(sd2_sdcpp, TS_FAMILY_SD2);
    CHECK(info.comp[TS_COMP_OPENCLIP_H].prefix && !info.comp[TS_COMP_CLIP_L].prefix);
    CHECK(strcmp(info.comp[TS_COMP_OPENCLIP_H].prefix, "cond_stage_model.transformer.") == 0);
    /* stable-diffusion.cpp's SDXL files: both towers in HF layout under cond_stage_model. */
    const key sdxl_sdcpp[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
                              {UNET "label_emb.0.0.weight", 2, {8, 16}},
                              {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", 2, {10, 8}},
                              {"cond_stage_model.1.transformer.text_model.embeddings.token_embedding.weight", 2, {10, 8}},
                              {"cond_stage_model.1.transformer.text_model.text_projection", 2, {8, 8}}};
    DETECT(sdxl_sdcpp, TS_FAMILY_SDXL);
    CHECK(strcmp(info.comp[TS_COMP_CLIP_G].prefix, "cond_stage_model.1.transformer.") == 0);
    CHECK(info.comp[TS_COMP_CLIP_G].tensors == 2 && info.comp[TS_COMP_CLIP_L].tensors == 1);
    const key sdxl_bare[] = {{"input_blocks.0.0.weight", 4, {8, 4, 3, 3}}, {"label_emb.0.0.weight", 2, {8, 16}}};
    DETECT(sdxl_bare, TS_FAMILY_SDXL);
}

static void test_transformer_families(void)
{
    ts_model_info info;
    const key sd3[] = {{UNET "x_embedder.proj.weight", 4, {64, 16, 2, 2}},
                       {UNET "joint_blocks.0.x_block.attn.qkv.weight", 2, {192, 64}},
                       {"first_stage_model.decoder.conv_in.weight", 4, {8, 16, 3, 3}}};
    DETECT(sd3, TS_FAMILY_SD3);
    CHECK(info.comp[TS_COMP_MMDIT].tensors == 2 && info.comp[TS_COMP_VAE].tensors == 1 && !info.comp[TS_COMP_UNET].prefix);
    const key sd35_large[] = {{UNET "x_embedder.proj.weight", 4, {64, 16, 2, 2}},
                              {UNET "joint_blocks.0.x_block.attn.ln_q.weight", 1, {64}}};
    DETECT(sd35_large, TS_FAMILY_SD35);
    const key sd35_medium[] = {{UNET "x_embedder.proj.weight", 4, {64, 16, 2, 2}},
                               {UNET "joint_blocks.0.x_block.attn2.qkv.weight", 2, {192, 64}}};
    DETECT(sd35_medium, TS_FAMILY_SD35);
    const key sd3_bare[] = {{"x_embedder.proj.weight", 4, {64, 16, 2, 2}},
                            {"joint_blocks.0.x_block.attn.qkv.weight", 2, {192, 64}}};
    DETECT(sd3_bare, TS_FAMILY_SD3);
    CHECK(info.comp[TS_COMP_MMDIT].tensors == 2 && strcmp(info.comp[TS_COMP_MMDIT].prefix, "") == 0);
    const key schnell[] = {{"double_blocks.0.img_attn.qkv.weight", 2, {24, 8}}, {"img_in.weight", 2, {8, 64}}};
    DETECT(schnell, TS_FAMILY_FLUX_SCHNELL);
    CHECK(info.comp[TS_COMP_FLUX].tensors == 2 && strcmp(info.comp[TS_COMP_FLUX].prefix, "") == 0);
    const key dev[] = {{"double_blocks.0.img_attn.qkv.weight", 2, {24, 8}}, {"guidance_in.in_layer.weight", 2, {8, 256}}};
    DETECT(dev, TS_FAMILY_FLUX_DEV);
    const key dev_comfy[] = {{UNET "double_blocks.0.img_attn.qkv.weight", 2, {24, 8}},
                             {UNET "guidance_in.in_layer.weight", 2, {8, 256}}};
    DETECT(dev_comfy, TS_FAMILY_FLUX_DEV);
}

static void test_standalone_parts(void)
{
    ts_model_info info;
    const key ae[] = {{"encoder.conv_in.weight", 4, {8, 3, 3, 3}}, {"decoder.conv_in.weight", 4, {8, 16, 3, 3}}};
    DETECT(ae, TS_FAMILY_VAE);
    CHECK(info.comp[TS_COMP_VAE].tensors == 2);
    const key sd_vae[] = {{"first_stage_model.encoder.conv_in.weight", 4, {8, 3, 3, 3}}};
    DETECT(sd_vae, TS_FAMILY_VAE);
    const key clip_l[] = {{"text_model.embeddings.token_embedding.weight", 2, {10, 768}},
                          {"text_model.final_layer_norm.weight", 1, {768}}};
    DETECT(clip_l, TS_FAMILY_CLIP_L);
    CHECK(info.comp[TS_COMP_CLIP_L].tensors == 2);
    const key clip_g[] = {{"text_model.embeddings.token_embedding.weight", 2, {10, 1280}},
                          {"text_projection.weight", 2, {4, 4}}};
    DETECT(clip_g, TS_FAMILY_CLIP_G);
    CHECK(info.comp[TS_COMP_CLIP_G].tensors == 2);
    const key clip_g_tiny[] = {{"text_model.embeddings.token_embedding.weight", 2, {10, 16}},
                               {"text_projection.weight", 2, {16, 16}}};
    DETECT(clip_g_tiny, TS_FAMILY_CLIP_G);
    const key sgm_clip_g[] = {{"conditioner.embedders.1.model.token_embedding.weight", 2, {10, 16}}};
    DETECT(sgm_clip_g, TS_FAMILY_CLIP_G);
    const key t5[] = {{"encoder.block.0.layer.0.SelfAttention.q.weight", 2, {8, 8}},
                      {"encoder.final_layer_norm.weight", 1, {8}},
                      {"shared.weight", 2, {10, 8}}};
    DETECT(t5, TS_FAMILY_T5);
    CHECK(info.comp[TS_COMP_T5].tensors == 3 && !info.comp[TS_COMP_VAE].prefix);
}

static void test_unknown(void)
{
    ts_model_info info;
    const key random[] = {{"foo.weight", 2, {4, 4}}, {"bar", 1, {3}}};
    DETECT(random, TS_FAMILY_UNKNOWN);
    CHECK(info.other_tensors == 2);
    const key two_parts[] = {{"text_model.embeddings.token_embedding.weight", 2, {10, 768}},
                             {"encoder.block.0.layer.0.SelfAttention.q.weight", 2, {8, 8}}};
    DETECT(two_parts, TS_FAMILY_UNKNOWN); /* two encoders and no diffusion model: not one family */
    CHECK(info.comp[TS_COMP_CLIP_L].prefix && info.comp[TS_COMP_T5].prefix);
    const key openclip_only[] = {{"cond_stage_model.model.token_embedding.weight", 2, {10, 8}}};
    DETECT(openclip_only, TS_FAMILY_UNKNOWN);
    const key near_miss[] = {{"model.diffusion_model.input_blocks.0.0.bias", 1, {8}}}; /* no marker key */
    DETECT(near_miss, TS_FAMILY_UNKNOWN);
}

static void test_require(void)
{
    const key sdxl[] = {{UNET "input_blocks.0.0.weight", 4, {8, 4, 3, 3}}, {UNET "label_emb.0.0.weight", 2, {8, 16}}};
    ts_weights *st = open_keys(sdxl, 2);
    ts_model_info info;
    CHECK(ts_family_require(st, TS_FAMILY_BIT(TS_FAMILY_SDXL), &info) == 0 && info.family == TS_FAMILY_SDXL);
    CHECK(ts_family_require(st, TS_FAMILY_BIT(TS_FAMILY_SD1) | TS_FAMILY_BIT(TS_FAMILY_SD2), NULL) == TS_ERR_MODEL);
    const char *msg = ts_error_message();
    CHECK_MSG(strstr(msg, "<memory>: this is a sdxl checkpoint, expected sd1 or sd2") != NULL, "%s", msg);
    ts_weights_close(st);
    const key random[] = {{"foo.weight", 2, {4, 4}}};
    st = open_keys(random, 1);
    CHECK(ts_family_require(st, TS_FAMILY_BIT(TS_FAMILY_T5), NULL) == TS_ERR_MODEL);
    CHECK(strstr(ts_error_message(), "not a checkpoint of a known model family (expected t5)") != NULL);
    ts_weights_close(st);
}

static void test_names(void)
{
    static const char *const want[] = {"unknown", "sd1",   "sd2",    "sdxl",   "sd3", "sd3.5",
                                       "flux-schnell", "flux-dev", "vae", "clip-l", "clip-g", "t5"};
    for (int f = 0; f < TS_FAMILY_COUNT; f++)
        CHECK(strcmp(ts_family_name((ts_family)f), want[f]) == 0);
    CHECK(strcmp(ts_family_name(TS_FAMILY_COUNT), "unknown") == 0);
    CHECK(strcmp(ts_component_name(TS_COMP_OPENCLIP_H), "openclip-h") == 0);
}

TEST_MAIN(TEST(test_unet_families), TEST(test_transformer_families), TEST(test_standalone_parts), TEST(test_unknown),
          TEST(test_require), TEST(test_names))
