#!/usr/bin/env bash
# tessera generate on the tiny pipeline_flux files (transformer, AE, CLIP-L, T5): the prompt
# route end to end against the golden image, txt2img / img2img / inpaint reproducible byte for
# byte, inpainting keeping unmasked pixels, emphasis syntax stripped, a dev model's defaults,
# and the errors (a wrong file for a part, bad flags): one line and a non-zero exit.
set -u
tessera=${1:?usage: generate_flux.sh /path/to/tessera}
shared=${TESSERA_SHARED:?}
here=$(cd "$(dirname "$0")" && pwd)
tmp=${TESSERA_TEST_TMP:-/tmp}/cli_generate_flux
case=$shared/golden/pipeline_flux
sd=$shared/golden/pipeline_sd15/model.safetensors
[ -f "$case/model.safetensors" ] || exit 77
command -v python3 >/dev/null || exit 77
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
png() { python3 "$here/png_check.py" "$@"; }
golden() { python3 "$here/flux_golden.py" "$@"; }

. "$here/lib/expect_stderr.sh"

# The tiny T5 has no real tokenizer: this one maps the case's prompt to its synthetic ids.
golden tokenizer "$case" "$tmp/tok.json"
parts=(--ae "$case/ae.safetensors" --clip-l "$case/clip_l.safetensors" --t5 "$case/t5.safetensors"
    --t5-tokenizer "$tmp/tok.json" --rope-axes 8,12,12 --clip-heads 2)
gen() { "$tessera" generate "$@" "${parts[@]}"; }
model=$case/model.safetensors
prompt="a cat holding a sign that says hello world"

png make image "$tmp/init.png" 48 64
png make mask "$tmp/mask.png" 48 64
png make mask "$tmp/mask_wide.png" 64 48

# ---- txt2img: the golden image from the prompt text and the seed ---------------------------
expect 0 "wrote $tmp/a.png (48x64, seed 8105)" -- gen -m "$model" -p "$prompt" -W 48 -H 64 --seed 8105 -o "$tmp/a.png"
diff=$(golden image "$case" "$tmp/a.png")
[ "$diff" = 0 ] || bad "txt2img differs from the golden image by up to $diff levels"
gen -m "$model" -p "$prompt" -W 48 -H 64 --seed 8105 -o "$tmp/b.png" 2>/dev/null
cmp -s "$tmp/a.png" "$tmp/b.png" || bad "same seed and settings gave different files"
gen -m "$model" -p "$prompt" -W 48 -H 64 --seed 8106 -o "$tmp/c.png" 2>/dev/null
png same "$tmp/a.png" "$tmp/c.png" && bad "another seed gave the same pixels"
text=$(png text "$tmp/a.png")
grep -q "^$prompt$" <<<"$text" || bad "prompt missing from the parameters text: $text"
grep -q "^Steps: 4, Sampler: Euler, CFG scale: 1, Seed: 8105, Size: 48x64, Model: model.safetensors$" <<<"$text" ||
    bad "settings line wrong: $text"
ls "$tmp" | grep -q tmp && bad "a temporary file was left behind"

# Emphasis syntax is stripped (Flux has no prompt weighting): same pixels as the plain words.
expect 0 "wrote $tmp/emph.png" -- gen -m "$model" -p "(a cat:1.3) holding [a sign] that (says) hello BREAK world" \
    -W 48 -H 64 --seed 8105 -o "$tmp/emph.png"
png same "$tmp/a.png" "$tmp/emph.png" || bad "emphasis syntax changed the image"

expect 0 "^seed: [0-9]*$" -- gen -m "$model" -p x -W 48 -H 64 --steps 1 -o "$tmp/random.png"
expect 0 "step 2/2 .* ETA" -- gen -m "$model" -p x -W 48 -H 64 --steps 2 --seed 1 -o "$tmp/progress.png"
expect 0 "wrote $tmp/batch-2.png" -- gen -m "$model" -p x -W 48 -H 64 --steps 1 --seed 10 --batch-count 2 \
    -o "$tmp/batch.png"
gen -m "$model" -p x -W 48 -H 64 --steps 1 --seed 11 -o "$tmp/single11.png" 2>/dev/null
cmp -s "$tmp/batch-2.png" "$tmp/single11.png" || bad "batch image 2 differs from a single run at its seed"
expect 0 "flux-schnell embeds no guidance" -- gen -m "$model" -p x -W 48 -H 64 --steps 1 --seed 1 --guidance 2 \
    -o "$tmp/guidance.png"
png same "$tmp/guidance.png" "$tmp/single11.png" && bad "seed 1 and seed 11 gave the same pixels"

# ---- img2img ------------------------------------------------------------------------------
for i in 1 2; do
    expect 0 "wrote $tmp/i2i$i.png (48x64" -- gen -m "$model" -p "$prompt" --init-image "$tmp/init.png" \
        --strength 0.5 --steps 3 --seed 1 -o "$tmp/i2i$i.png"
done
cmp -s "$tmp/i2i1.png" "$tmp/i2i2.png" || bad "img2img is not reproducible"
grep -q "Denoising strength: 0.5" <<<"$(png text "$tmp/i2i1.png")" || bad "img2img strength not recorded"
gen -m "$model" -p "$prompt" --init-image "$tmp/init.png" --strength 0.8 --steps 3 --seed 1 -o "$tmp/i2i08.png" 2>/dev/null
png same "$tmp/i2i1.png" "$tmp/i2i08.png" && bad "the strength changed nothing"
# At strength 1 sampling starts at sigma 1, i.e. from the noise alone: txt2img's image.
gen -m "$model" -p "$prompt" --init-image "$tmp/init.png" --strength 1 --seed 8105 -o "$tmp/i2i1full.png" 2>/dev/null
png same "$tmp/a.png" "$tmp/i2i1full.png" || bad "img2img at strength 1 differs from txt2img"

# ---- inpaint ------------------------------------------------------------------------------
for blur in 0 3; do
    expect 0 "wrote $tmp/inpaint$blur.png" -- gen -m "$model" -p "$prompt" --init-image "$tmp/init.png" \
        --mask "$tmp/mask.png" --mask-blur $blur --steps 3 --seed 1 -o "$tmp/inpaint$blur.png"
    png keep "$tmp/inpaint$blur.png" "$tmp/init.png" "$tmp/mask.png" $(((blur * 5 + 1) / 2)) >/dev/null ||
        bad "inpaint (mask blur $blur) changed pixels outside the mask, or none inside"
done
gen -m "$model" -p "$prompt" --init-image "$tmp/init.png" --mask "$tmp/mask.png" --mask-blur 0 --steps 3 --seed 1 \
    -o "$tmp/inpaint0b.png" 2>/dev/null
cmp -s "$tmp/inpaint0.png" "$tmp/inpaint0b.png" || bad "inpainting is not reproducible"
grep -q "Mask blur: 0" <<<"$(png text "$tmp/inpaint0.png")" || bad "mask blur not recorded"

# ---- dev: a transformer with guidance_in (zero here) is run as dev --------------------------
python3 "$here/st_edit.py" "$model" "$tmp/dev.safetensors" reshape:guidance_in.in_layer.weight:64,256 \
    reshape:guidance_in.in_layer.bias:64 reshape:guidance_in.out_layer.weight:64,64 reshape:guidance_in.out_layer.bias:64
expect 0 "step 20/20" -- gen -m "$tmp/dev.safetensors" -p "$prompt" -W 48 -H 64 --seed 8105 -o "$tmp/dev.png"
grep -q "Steps: 20, Sampler: Euler, CFG scale: 1, Seed: 8105, Size: 48x64, Model: dev.safetensors, Distilled CFG Scale: 3.5" \
    <<<"$(png text "$tmp/dev.png")" || bad "dev settings line wrong: $(png text "$tmp/dev.png")"
gen -m "$tmp/dev.safetensors" -p "$prompt" -W 48 -H 64 --seed 8105 --steps 4 -o "$tmp/dev4.png" 2>/dev/null
# Same weights otherwise, but dev reads 512 T5 positions and shifts its schedule.
png same "$tmp/a.png" "$tmp/dev4.png" && bad "the dev model ran like schnell"

# ---- errors -------------------------------------------------------------------------------
printf 'not an image' >"$tmp/garbage.png"
with() { # with FLAG FILE: the parts with FLAG's file replaced
    local flag=$1 file=$2 p=("${parts[@]}") k
    for k in "${!p[@]}"; do [ "${p[$k]}" = "$flag" ] && p[$((k + 1))]=$file; done
    "$tessera" generate -m "$model" -p x -W 48 -H 64 --steps 1 --seed 1 -o "$tmp/e.png" "${p[@]}"
}
if [ -f "$sd" ]; then
    expect 1 "sd15/model.safetensors: no t5 in this file (detected: sd1)" -- with --t5 "$sd"
    expect 1 "a 4-channel AutoEncoder does not fit" -- with --ae "$sd"
fi
expect 1 "t5.safetensors: no vae in this file (detected: t5)" -- with --ae "$case/t5.safetensors"
expect 1 "t5.safetensors: no clip-l in this file (detected: t5)" -- with --clip-l "$case/t5.safetensors"
expect 1 "ae.safetensors: no t5 in this file (detected: vae)" -- with --t5 "$case/ae.safetensors"
expect 1 "$tmp/nope.safetensors" -- with --t5 "$tmp/nope.safetensors"
expect 1 "garbage.png" -- with --t5-tokenizer "$tmp/garbage.png"
expect 1 "T5 encoder: token id .* outside the vocabulary" -- "$tessera" generate -m "$model" -p "$prompt" -W 48 -H 64 \
    --steps 1 -o "$tmp/e.png" --ae "$case/ae.safetensors" --clip-l "$case/clip_l.safetensors" \
    --t5 "$case/t5.safetensors" --rope-axes 8,12,12 --clip-heads 2
expect 1 "width 50 is not a multiple of 16, as this model needs; use 48 or 64" -- gen -m "$model" -p x -W 50 -H 64 -o "$tmp/e.png"
expect 1 "the mask is 64x48 but the init image is 48x64" -- gen -m "$model" -p x --init-image "$tmp/init.png" \
    --mask "$tmp/mask_wide.png" -o "$tmp/e.png"
expect 1 "$tmp/garbage.png" -- gen -m "$model" -p x --init-image "$tmp/garbage.png" -o "$tmp/e.png"
[ -e "$tmp/e.png" ] && bad "a failed run left an output file"

expect 2 "--ae AE is required for Flux" -- "$tessera" generate -m "$model" -p x -o "$tmp/e.png"
expect 2 "unknown option '-n' (see --help)" -- gen -m "$model" -p x -n blurry -o "$tmp/e.png"
expect 2 "bad value '8,x' for --rope-axes" -- gen -m "$model" -p x -o "$tmp/e.png" --rope-axes 8,x
expect 2 "bad value '1.5' for --strength" -- gen -m "$model" -p x -o "$tmp/e.png" --strength 1.5
expect 2 "--mask needs --init-image" -- gen -m "$model" -p x --mask "$tmp/mask.png" -o "$tmp/e.png"
"$tessera" generate -m "$model" --help | grep -q "no prompt weighting" || bad "the Flux --help is not shown"
# ---- tiled denoising: one tile of the whole canvas is the untiled run; small tiles run in
# every mode, reproducibly, whatever the batch; inpainting still keeps unmasked pixels.
maxdiff() { python3 "$here/lib/png_maxdiff.py" "$1" "$2"; }
t=(-m "$model" -p "$prompt" --steps 2 --seed 3)
gen "${t[@]}" -W 96 -H 64 --tile 0 -o "$tmp/t_untiled.png" 2>/dev/null
gen "${t[@]}" -W 96 -H 64 --tile 12 -o "$tmp/t_one.png" 2>/dev/null
[ "$(maxdiff "$tmp/t_untiled.png" "$tmp/t_one.png")" = 0 ] && echo "ok: one tile is the untiled run" \
    || bad "one tile differs from the untiled run"
gen "${t[@]}" -W 96 -H 64 --tile 4 --tile-overlap 2 --tile-batch 1 -o "$tmp/t_b1.png" 2>/dev/null
expect 0 "canvas 96x64: 15 tiles of 32x32 px" -- gen "${t[@]}" -W 96 -H 64 --tile 4 --tile-overlap 2 --tile-batch 4 \
    -o "$tmp/t_b4.png"
[ "$(maxdiff "$tmp/t_b1.png" "$tmp/t_b4.png")" -le 1 ] && echo "ok: tile batching does not change the result" \
    || bad "tile batch 1 vs 4: $(maxdiff "$tmp/t_b1.png" "$tmp/t_b4.png")"
[ "$(maxdiff "$tmp/t_untiled.png" "$tmp/t_b1.png")" -gt 2 ] || bad "small tiles did not change the picture"
grep -q "Tiled diffusion: 4/2 gaussian" <<<"$(png text "$tmp/t_b4.png")" || bad "tiling not recorded"
gen -m "$model" -p "$prompt" --init-image "$tmp/init.png" --mask "$tmp/mask.png" --mask-blur 0 --steps 2 --seed 1 \
    --tile 4 --tile-overlap 2 --vae-tile 2 -o "$tmp/t_inpaint.png" 2>/dev/null || bad "tiled inpainting failed"
png keep "$tmp/t_inpaint.png" "$tmp/init.png" "$tmp/mask.png" 0 >/dev/null ||
    bad "tiled inpainting changed pixels outside the mask"
expect 1 "tile size 5 must be a positive multiple of 2" -- gen "${t[@]}" -W 96 -H 64 --tile 5 -o "$tmp/e.png"

exit $fail
