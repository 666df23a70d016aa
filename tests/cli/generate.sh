#!/usr/bin/env bash
# tessera generate on the tiny pipeline_sd15 checkpoint (2 heads in UNet and CLIP): all four
# modes, parts in separate files, reproducibility, the A1111 parameters text, batch naming,
# inpainting keeping unmasked pixels exactly; then every error: a clear one-line message and a
# non-zero exit (1 for bad input, 2 for bad usage).
. "$(dirname "$0")/lib/sd15.sh" "$@" cli_generate
png() { python3 "$here/png_check.py" "$@"; }
edit() { python3 "$here/st_edit.py" "$@"; }
heads=(--unet-heads 2 --clip-heads 2)
gen() { "$tessera" generate "${heads[@]}" "$@"; }

. "$here/lib/expect_stderr.sh"

png make image "$tmp/init.png" 64 48
png make mask "$tmp/mask.png" 64 48
png make mask "$tmp/mask_small.png" 32 48
png make image "$tmp/init_odd.png" 60 48

# ---- the four modes ----------------------------------------------------------------------
expect 0 "wrote $tmp/a.png (64x48, seed 5)" -- gen -m "$model" -p "a red fox" -W 64 -H 48 --steps 3 --seed 5 -o "$tmp/a.png"
gen -m "$model" -p "a red fox" -W 64 -H 48 --steps 3 --seed 5 -o "$tmp/b.png" 2>/dev/null
cmp -s "$tmp/a.png" "$tmp/b.png" || bad "same seed and settings gave different files"
gen -m "$model" -p "a red fox" -W 64 -H 48 --steps 3 --seed 6 -o "$tmp/c.png" 2>/dev/null
cmp -s "$tmp/a.png" "$tmp/c.png" && bad "another seed gave the same file"
text=$(png text "$tmp/a.png")
grep -q "^a red fox$" <<<"$text" || bad "prompt missing from the parameters text: $text"
grep -q "Steps: 3, Sampler: DPM++ 2M, Schedule type: karras, CFG scale: 7, Seed: 5, Size: 64x48" <<<"$text" ||
    bad "settings line wrong: $text"
ls "$tmp" | grep -q tmp && bad "a temporary file was left behind"

expect 0 "^seed: [0-9]*$" -- gen -m "$model" -p "x" -W 64 -H 48 --steps 1 -o "$tmp/random.png"
expect 0 "step 2/2 .* ETA" -- gen -m "$model" -p "x" -W 64 -H 48 --steps 2 --seed 1 -o "$tmp/progress.png"

expect 0 "wrote $tmp/i2i.png (64x48" -- gen -m "$model" -p "a fox" --init-image "$tmp/init.png" --strength 0.5 \
    --steps 4 --seed 1 --sampler euler --scheduler normal -o "$tmp/i2i.png"
grep -q "Denoising strength: 0.5" <<<"$(png text "$tmp/i2i.png")" || bad "img2img strength not recorded"

for blur in 0 3; do
    expect 0 "wrote $tmp/inpaint$blur.png" -- gen -m "$model" -p "a fox" --init-image "$tmp/init.png" \
        --mask "$tmp/mask.png" --mask-blur $blur --steps 3 --seed 1 -o "$tmp/inpaint$blur.png"
    # Outside the blur's reach (radius int(2.5 sigma + 0.5)) every pixel is the input's.
    png keep "$tmp/inpaint$blur.png" "$tmp/init.png" "$tmp/mask.png" $(((blur * 5 + 1) / 2)) >/dev/null ||
        bad "inpaint (mask blur $blur) changed pixels outside the mask, or none inside"
done

edit "$model" "$tmp/inpainting.safetensors" inchannels:9
expect 0 "wrote $tmp/inpaint9.png" -- gen -m "$tmp/inpainting.safetensors" -p "a fox" --init-image "$tmp/init.png" \
    --mask "$tmp/mask.png" --steps 2 --seed 1 -o "$tmp/inpaint9.png"
png keep "$tmp/inpaint9.png" "$tmp/init.png" "$tmp/mask.png" 10 >/dev/null || bad "9-channel inpaint keep region"

edit "$model" "$tmp/ip2p.safetensors" inchannels:8
expect 0 "wrote $tmp/edit.png (64x48" -- gen -m "$tmp/ip2p.safetensors" -p "make it snow" --init-image "$tmp/init.png" \
    --instruct --image-cfg 1.2 --steps 2 --seed 1 -o "$tmp/edit.png"
grep -q "Image CFG scale: 1.2" <<<"$(png text "$tmp/edit.png")" || bad "image CFG not recorded"

expect 0 "wrote $tmp/batch-2.png" -- gen -m "$model" -p "x" -W 64 -H 48 --steps 1 --seed 10 --batch-count 2 \
    -o "$tmp/batch.png"
grep -q "Seed: 11," <<<"$(png text "$tmp/batch-2.png")" || bad "second batch image does not have seed + 1"
gen -m "$model" -p "x" -W 64 -H 48 --steps 1 --seed 11 -o "$tmp/single11.png" 2>/dev/null
cmp -s "$tmp/batch-2.png" "$tmp/single11.png" || bad "batch image 2 differs from a single run at its seed"
expect 0 "wrote $tmp/a.jpg" -- gen -m "$model" -p "x" -W 64 -H 48 --steps 1 --seed 1 -o "$tmp/a.jpg"

# v-prediction: --prediction v changes the result, and a file marked with a "v_pred" key
# (as v-prediction finetunes are) is detected as such.
edit "$model" "$tmp/vpred.safetensors" reshape:v_pred:1
gen -m "$model" --prediction v -p "a red fox" -W 64 -H 48 --steps 3 --seed 5 -o "$tmp/v_flag.png" 2>/dev/null
gen -m "$tmp/vpred.safetensors" -p "a red fox" -W 64 -H 48 --steps 3 --seed 5 -o "$tmp/v_key.png" 2>/dev/null
png same "$tmp/a.png" "$tmp/v_flag.png" && bad "--prediction v did not change the image"
png same "$tmp/v_flag.png" "$tmp/v_key.png" || bad "a v_pred file is not sampled as v-prediction"

# Parts as ComfyUI users keep them: a UNet-only checkpoint plus VAE and CLIP-L files.
edit "$model" "$tmp/unet.safetensors" only:model.diffusion_model.
edit "$model" "$tmp/vae.safetensors" only:first_stage_model. rename:first_stage_model.=
edit "$model" "$tmp/clip_l.safetensors" only:cond_stage_model.transformer. rename:cond_stage_model.transformer.=
gen -m "$model" -p "a fox" -n "blurry" -W 64 -H 48 --steps 2 --seed 3 -o "$tmp/whole.png" 2>/dev/null
expect 0 "wrote $tmp/parts.png" -- gen -m "$tmp/unet.safetensors" --vae "$tmp/vae.safetensors" \
    --clip-l "$tmp/clip_l.safetensors" -p "a fox" -n "blurry" -W 64 -H 48 --steps 2 --seed 3 -o "$tmp/parts.png"
png same "$tmp/whole.png" "$tmp/parts.png" || bad "the parts give another image than the single file"

# ---- errors -------------------------------------------------------------------------------
edit "$model" "$tmp/no_bias.safetensors" drop:model.diffusion_model.out.2.bias
edit "$model" "$tmp/bad_shape.safetensors" reshape:model.diffusion_model.input_blocks.1.0.in_layers.2.weight:32,16,3,3
edit "$model" "$tmp/vae_only.safetensors" only:first_stage_model.
edit "$model" "$tmp/flux.safetensors" only:none reshape:double_blocks.0.img_attn.qkv.weight:96,32
printf 'not an image' >"$tmp/garbage.png"

expect 1 "this is a vae checkpoint, expected sd1 or sd2 or sdxl" -- gen -m "$tmp/vae_only.safetensors" -p x -o "$tmp/e.png"
expect 2 "--ae AE is required for Flux" -- "$tessera" generate -m "$tmp/flux.safetensors" -p x -o "$tmp/e.png"
expect 1 "model.diffusion_model.out.2.bias" -- gen -m "$tmp/no_bias.safetensors" -p x -o "$tmp/e.png"
expect 1 "shape mismatch: model.diffusion_model.input_blocks.1.0.in_layers.2.weight is \[32, 16, 3, 3\], expected \[32, 32, 3, 3\]" -- \
    gen -m "$tmp/bad_shape.safetensors" -p x -o "$tmp/e.png"
expect 1 "has no VAE; give one with --vae" -- gen -m "$tmp/unet.safetensors" --clip-l "$tmp/clip_l.safetensors" -p x -o "$tmp/e.png"
expect 1 "no VAE in this file" -- gen -m "$model" --vae "$tmp/clip_l.safetensors" -p x -o "$tmp/e.png"
expect 1 "width 50 is not a multiple of 16, as this model needs; use 48 or 64" -- gen -m "$model" -p x -W 50 -H 48 -o "$tmp/e.png"
expect 1 "init image width 60 is not a multiple of 16" -- gen -m "$model" -p x --init-image "$tmp/init_odd.png" -o "$tmp/e.png"
expect 1 "must match the init image (64x48)" -- gen -m "$model" -p x --init-image "$tmp/init.png" -W 128 -o "$tmp/e.png"
expect 1 "unknown sampler" -- gen -m "$model" -p x --sampler dpm_fast -o "$tmp/e.png"
expect 1 "unknown scheduler" -- gen -m "$model" -p x --scheduler beta -o "$tmp/e.png"
expect 1 "$tmp/missing.png" -- gen -m "$model" -p x --init-image "$tmp/missing.png" -o "$tmp/e.png"
expect 1 "$tmp/garbage.png" -- gen -m "$model" -p x --init-image "$tmp/garbage.png" -o "$tmp/e.png"
expect 1 "the mask is 32x48 but the init image is 64x48" -- gen -m "$model" -p x --init-image "$tmp/init.png" \
    --mask "$tmp/mask_small.png" -o "$tmp/e.png"
expect 1 "needs an InstructPix2Pix model" -- gen -m "$model" -p x --init-image "$tmp/init.png" --instruct -o "$tmp/e.png"
expect 1 "is an InstructPix2Pix model" -- gen -m "$tmp/ip2p.safetensors" -p x -W 64 -H 48 -o "$tmp/e.png"
expect 1 "$tmp/nope.safetensors" -- gen -m "$tmp/nope.safetensors" -p x -o "$tmp/e.png"
expect 2 "e.bmp: the name must end in .png, .jpg or .jpeg" -- gen -m "$model" -p x -W 64 -H 48 --steps 1 --seed 1 -o "$tmp/e.bmp"
[ -e "$tmp/e.png" ] && bad "a failed run left an output file"

# The size rule on the published layouts (full-size sparse files: real headers, data left as
# holes): SD 1.x/2.x UNets downsample 3 times (64-pixel multiples), SDXL twice (32), SD3 by its patch.
if [ -d "$shared/data/keysets" ]; then
    python3 - "$shared/data/keysets" "$tmp" <<'PY'
import json, struct, sys
size = {"F64": 8, "F32": 4, "I64": 8, "I32": 4, "F16": 2, "BF16": 2, "U8": 1}
for name in ["sd21", "sdxl_base", "sd3_medium"]:
    tensors = json.load(open(f"{sys.argv[1]}/{name}.json"))["tensors"]
    header, at = {}, 0
    for key in sorted(tensors):
        t, n = tensors[key], 1
        for d in t["shape"]:
            n *= d
        header[key] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [at, at + n * size[t["dtype"]]]}
        at += n * size[t["dtype"]]
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(f"{sys.argv[2]}/sparse_{name}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + at)
PY
    expect 1 "width 1000 is not a multiple of 64, as this model needs; use 960 or 1024" -- \
        gen -m "$tmp/sparse_sd21.safetensors" -p x -W 1000 -o "$tmp/e.png"
    expect 1 "height 1000 is not a multiple of 32, as this model needs; use 992 or 1024" -- \
        gen -m "$tmp/sparse_sdxl_base.safetensors" -p x -W 1024 -H 1000 -o "$tmp/e.png"
    # SD3 medium: patch 2 (16-pixel multiples) on a 192-patch position grid (3072 pixels).
    expect 1 "size 3088x1024: this model's position grid covers at most 3072x3072 pixels" -- \
        "$tessera" generate -m "$tmp/sparse_sd3_medium.safetensors" -p x -W 3088 -H 1024 --tile 0 -o "$tmp/e.png"
fi

expect 2 "unknown option '--bogus'" -- gen -m "$model" -p x -o "$tmp/e.png" --bogus
expect 2 "--steps needs a value" -- gen -m "$model" -p x -o "$tmp/e.png" --steps
expect 2 "bad value '0' for --width" -- gen -m "$model" -p x -o "$tmp/e.png" --width 0
expect 2 "bad value '1.5' for --strength" -- gen -m "$model" -p x -o "$tmp/e.png" --strength 1.5
expect 2 "bad value 'x' for --prediction" -- gen -m "$model" -p x -o "$tmp/e.png" --prediction x
expect 2 "bad value '-3' for --seed" -- gen -m "$model" -p x -o "$tmp/e.png" --seed -3
expect 2 "-p PROMPT is required" -- gen -m "$model" -o "$tmp/e.png"
expect 2 "--mask needs --init-image" -- gen -m "$model" -p x --mask "$tmp/mask.png" -o "$tmp/e.png"
exit $fail
