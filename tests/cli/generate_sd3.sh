#!/usr/bin/env bash
# tessera generate on a tiny SD3 bundle built from golden parts (sd3_fixture.py; CLIP heads 4):
# txt2img, img2img and inpainting, each byte-identical for the same seed; inpainting keeps the
# unmasked pixels exactly; the parts as separate files give the single file's image; a bundle
# without T5 runs on CLIP alone; then the errors: one line, non-zero exit.
set -u
tessera=${1:?usage: generate_sd3.sh /path/to/tessera}
shared=${TESSERA_SHARED:?}
here=$(cd "$(dirname "$0")" && pwd)
tmp=${TESSERA_TEST_TMP:-/tmp}/cli_generate_sd3
[ -f "$shared/golden/mmdit_sd3/model.safetensors" ] || exit 77
command -v python3 >/dev/null || exit 77
rm -rf "$tmp" && mkdir -p "$tmp"
python3 "$here/sd3_fixture.py" "$shared/golden" "$tmp" || exit 1
fail=0
. "$here/lib/expect_stderr.sh"
bad() { echo "FAIL: $*"; fail=1; }
png() { python3 "$here/png_check.py" "$@"; }
model=$tmp/sd3.safetensors
gen() { "$tessera" generate --clip-heads 4 "$@"; }
small=(-W 64 -H 48)

png make image "$tmp/init.png" 64 48
png make mask "$tmp/mask.png" 64 48

# ---- txt2img -----------------------------------------------------------------------------
expect 0 "wrote $tmp/a.png (64x48, seed 5)" -- gen -m "$model" -p "a red fox" "${small[@]}" --steps 3 --seed 5 -o "$tmp/a.png"
gen -m "$model" -p "a red fox" "${small[@]}" --steps 3 --seed 5 -o "$tmp/b.png" 2>/dev/null
cmp -s "$tmp/a.png" "$tmp/b.png" || bad "txt2img: same seed and settings gave different files"
gen -m "$model" -p "a red fox" "${small[@]}" --steps 3 --seed 6 -o "$tmp/c.png" 2>/dev/null
cmp -s "$tmp/a.png" "$tmp/c.png" && bad "txt2img: another seed gave the same file"
gen -m "$model" -p "a (red:1.3) fox" "${small[@]}" --steps 3 --seed 5 -o "$tmp/weighted.png" 2>/dev/null
png same "$tmp/a.png" "$tmp/weighted.png" && bad "prompt emphasis changed nothing"
text=$(png text "$tmp/a.png")
grep -q "^a red fox$" <<<"$text" || bad "prompt missing from the parameters text: $text"
grep -q "Steps: 3, Sampler: DPM++ 2M, Schedule type: normal, CFG scale: 5, Seed: 5, Size: 64x48" <<<"$text" ||
    bad "settings line wrong: $text"
ls "$tmp" | grep -q '\.tmp' && bad "a temporary file was left behind"
expect 0 "^seed: [0-9]*$" -- gen -m "$model" -p x "${small[@]}" --steps 2 --sampler euler -o "$tmp/random.png"
grep -q "step 2/2 .* ETA" "$tmp/err.txt" || bad "no progress line"

# ---- img2img and inpainting --------------------------------------------------------------
for run in 1 2; do
    expect 0 "wrote $tmp/i2i$run.png (64x48" -- gen -m "$model" -p "a fox" --init-image "$tmp/init.png" \
        --strength 0.5 --steps 4 --seed 1 -o "$tmp/i2i$run.png"
done
cmp -s "$tmp/i2i1.png" "$tmp/i2i2.png" || bad "img2img: same seed gave different files"
grep -q "Denoising strength: 0.5" <<<"$(png text "$tmp/i2i1.png")" || bad "img2img strength not recorded"

for blur in 0 3; do
    for run in 1 2; do
        expect 0 "wrote $tmp/inpaint$blur-$run.png" -- gen -m "$model" -p "a fox" --init-image "$tmp/init.png" \
            --mask "$tmp/mask.png" --mask-blur $blur --steps 3 --seed 1 -o "$tmp/inpaint$blur-$run.png"
    done
    cmp -s "$tmp/inpaint$blur-1.png" "$tmp/inpaint$blur-2.png" || bad "inpaint: same seed gave different files"
    # Outside the blur's reach (radius int(2.5 sigma + 0.5)) every pixel is the input's.
    png keep "$tmp/inpaint$blur-1.png" "$tmp/init.png" "$tmp/mask.png" $(((blur * 5 + 1) / 2)) >/dev/null ||
        bad "inpaint (mask blur $blur) changed pixels outside the mask, or none inside"
done

# ---- parts -------------------------------------------------------------------------------
parts=(-m "$tmp/mmdit_vae.safetensors" --clip-l "$tmp/clip_l.safetensors" --clip-g "$tmp/clip_g.safetensors")
expect 0 "wrote $tmp/parts.png" -- gen "${parts[@]}" --t5xxl "$tmp/t5.safetensors" -p "a red fox" "${small[@]}" \
    --steps 3 --seed 5 -o "$tmp/parts.png"
png same "$tmp/a.png" "$tmp/parts.png" || bad "the parts give another image than the single file"
expect 0 "wrote $tmp/no_t5.png" -- gen "${parts[@]}" -p "a red fox" "${small[@]}" --steps 3 --seed 5 -o "$tmp/no_t5.png"
png same "$tmp/a.png" "$tmp/no_t5.png" && bad "leaving T5 out changed nothing"

# ---- errors ------------------------------------------------------------------------------
expect 1 "size 512x48: this model's position grid covers at most 256x256 pixels" -- \
    gen -m "$model" -p x -W 512 -H 48 --tile 0 -o "$tmp/e.png"
expect 1 "width 72 is not a multiple of 16, as this model needs; use 64 or 80" -- \
    gen -m "$model" -p x -W 72 -H 48 -o "$tmp/e.png"
expect 1 "no clip-l text encoder in the file (give a separate clip_l file)" -- \
    gen -m "$tmp/mmdit_vae.safetensors" -p x "${small[@]}" -o "$tmp/e.png"
expect 1 "T5 width 64, the MMDiT's context_embedder takes 160" -- \
    gen "${parts[@]}" --t5xxl "$shared/golden/t5_encoder/model.safetensors" -p x "${small[@]}" -o "$tmp/e.png"
expect 1 "no VAE in this file (it is a clip-l checkpoint)" -- \
    gen -m "$model" --vae "$tmp/clip_l.safetensors" -p x "${small[@]}" -o "$tmp/e.png"
expect 1 "this VAE has 4 latent channels; the MMDiT takes 16" -- \
    gen -m "$model" --vae "$shared/golden/vae_kl/model.safetensors" -p x "${small[@]}" -o "$tmp/e.png"
expect 2 "SD3 has none" -- gen -m "$model" -p x --init-image "$tmp/init.png" --instruct -o "$tmp/e.png"
# SD3 files have their own front end: its help, and the UNet pipeline's flags refused.
"$tessera" generate -m "$model" --help | grep -q "^Stable Diffusion 3 / 3.5" || bad "-m SD3 --help is not SD3's"
expect 2 "--mask needs --init-image" -- gen -m "$model" -p x --mask "$tmp/mask.png" -o "$tmp/e.png"
[ -e "$tmp/e.png" ] && bad "a failed run left an output file"
# ---- tiled denoising: one tile of the whole canvas is the untiled run; small tiles run
# reproducibly whatever the batch; a canvas beyond the position grid runs tiled only.
maxdiff() { python3 "$here/lib/png_maxdiff.py" "$1" "$2"; }
gen -m "$model" -p "a red fox" "${small[@]}" --steps 2 --seed 5 --tile 8 -o "$tmp/t_one.png" 2>/dev/null
gen -m "$model" -p "a red fox" "${small[@]}" --steps 2 --seed 5 --tile 0 -o "$tmp/t_none.png" 2>/dev/null
[ "$(maxdiff "$tmp/t_one.png" "$tmp/t_none.png")" = 0 ] && echo "ok: one tile is the untiled run" \
    || bad "one tile differs from the untiled run"
t=(-m "$model" -p "a red fox" -W 128 -H 96 --steps 2 --seed 5 --tile 4 --tile-overlap 2)
expect 0 "canvas 128x96: 35 tiles of 32x32 px" -- gen "${t[@]}" --tile-batch 4 -o "$tmp/t_b4.png"
gen "${t[@]}" --tile-batch 1 -o "$tmp/t_b1.png" 2>/dev/null
[ "$(maxdiff "$tmp/t_b1.png" "$tmp/t_b4.png")" -le 1 ] && echo "ok: tile batching does not change the result" \
    || bad "tile batch 1 vs 4: $(maxdiff "$tmp/t_b1.png" "$tmp/t_b4.png")"
grep -q "Tiled diffusion: 4/2 gaussian" <<<"$(png text "$tmp/t_b4.png")" && echo "ok: tiling recorded" \
    || bad "tiling not recorded"
expect 1 "covers at most 256x256" -- gen -m "$model" -p x -W 320 -H 256 --steps 1 --seed 1 --tile 0 -o "$tmp/e.png"
expect 0 "canvas 320x256: 2 tiles of 256x256 px" -- gen -m "$model" -p x -W 320 -H 256 --steps 1 --seed 1 -o "$tmp/big.png"
gen -m "$model" -p "a red fox" --init-image "$tmp/init.png" --mask "$tmp/mask.png" --mask-blur 0 --steps 2 \
    --seed 1 --tile 4 --tile-overlap 2 --vae-tile 2 -o "$tmp/t_inpaint.png" 2>/dev/null || bad "tiled inpaint failed"
png keep "$tmp/t_inpaint.png" "$tmp/init.png" "$tmp/mask.png" 0 >/dev/null ||
    bad "tiled inpainting changed pixels outside the mask"

exit $fail
