#!/usr/bin/env bash
# tessera generate and bench on GGUF files: the pipeline_sd15 checkpoint converted to f16 and
# q8_0 (images close to the safetensors run's: f16 within a mean of 1 level per 8-bit channel,
# q8_0 within 8); a ComfyUI-GGUF style UNet-only file with bare names plus VAE and CLIP-L
# safetensors giving exactly the whole f16 file's image; bench unet/vae on GGUF; a
# wrong-family and a garbage .gguf each getting a one-line error.
set -u
tessera=${1:?usage: generate_gguf.sh /path/to/tessera}
shared=${TESSERA_SHARED:?}
here=$(cd "$(dirname "$0")" && pwd)
tmp=${TESSERA_TEST_TMP:-/tmp}/cli_generate_gguf
golden=$shared/golden
[ -f "$golden/pipeline_sd15/model.safetensors" ] && [ -f "$golden/flux_schnell/model.safetensors" ] || exit 77
command -v python3 >/dev/null || exit 77
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# ---- tessera generate ---------------------------------------------------------------------------
model=$golden/pipeline_sd15/model.safetensors
png() { python3 "$here/png_check.py" "$@"; }
edit() { python3 "$here/st_edit.py" "$@"; }
gen() { "$tessera" generate --unet-heads 2 --clip-heads 2 -p "a red fox" -n blurry -W 64 -H 48 --steps 3 --seed 5 "$@"; }
. "$here/lib/expect_stderr.sh"
f16=$tmp/pipeline_sd15.f16.gguf q8=$tmp/pipeline_sd15.q8_0.gguf
for spec in "$model:$f16:f16" "$model:$q8:q8_0" "$golden/vae_kl/model.safetensors:$tmp/vae_kl.gguf:f16" \
    "$golden/flux_schnell/model.safetensors:$tmp/flux.gguf:f16"; do
    IFS=: read -r src dst type <<<"$spec"
    "$tessera" convert "$src" -o "$dst" --type "$type" >/dev/null || bad "convert $src to $type"
done
gen -m "$model" -o "$tmp/st.png" 2>/dev/null || bad "generate from safetensors"
expect 0 "wrote $tmp/f16.png (64x48, seed 5)" -- gen -m "$f16" -o "$tmp/f16.png"
expect 0 "wrote $tmp/q8.png (64x48, seed 5)" -- gen -m "$q8" -o "$tmp/q8.png"
# f16 weights move the 8-bit pixels by a fraction of a level on average, q8_0 ones by a few.
png close "$tmp/st.png" "$tmp/f16.png" 1 || bad "the f16 GGUF image is not close to the safetensors one"
png close "$tmp/st.png" "$tmp/q8.png" 8 || bad "the q8_0 GGUF image is not close to the safetensors one"

# ComfyUI-GGUF layout: the UNet alone with bare names, VAE and CLIP-L as separate safetensors.
edit "$model" "$tmp/unet_bare.safetensors" only:model.diffusion_model. rename:model.diffusion_model.=
edit "$model" "$tmp/vae.safetensors" only:first_stage_model. rename:first_stage_model.=
edit "$model" "$tmp/clip_l.safetensors" only:cond_stage_model.transformer. rename:cond_stage_model.transformer.=
"$tessera" convert "$tmp/unet_bare.safetensors" -o "$tmp/unet_bare.gguf" --type f16 >/dev/null ||
    bad "convert the bare UNet"
# The VAE and CLIP-L with the f16 values of the whole-file conversion (through GGUF and back).
for part in vae clip_l; do
    "$tessera" convert "$tmp/$part.safetensors" -o "$tmp/$part.gguf" --type f16 >/dev/null &&
        "$tessera" convert "$tmp/$part.gguf" -o "$tmp/${part}_f16.safetensors" >/dev/null || bad "convert $part"
done
expect 0 "wrote $tmp/parts.png" -- gen -m "$tmp/unet_bare.gguf" --vae "$tmp/vae_f16.safetensors" \
    --clip-l "$tmp/clip_l_f16.safetensors" -o "$tmp/parts.png"
png same "$tmp/f16.png" "$tmp/parts.png" || bad "the GGUF parts give another image than the whole f16 GGUF"

# ---- tessera bench -------------------------------------------------------------------------------
out=$("$tessera" bench unet --model "$q8" --width 64 --height 64 --steps 2 --json 2>&1)
grep -q '"family": "sd1"' <<<"$out" && grep -q '"step_seconds"' <<<"$out" || bad "bench unet on q8_0 GGUF: $out"
out=$("$tessera" bench unet --model "$tmp/unet_bare.gguf" --width 64 --height 64 --steps 1 --json 2>&1)
grep -q '"family": "sd1"' <<<"$out" || bad "bench unet on a bare-name GGUF UNet: $out"
out=$("$tessera" bench vae --model "$tmp/vae_kl.gguf" --width 64 --height 64 --json 2>&1)
grep -q '"decode_seconds"' <<<"$out" || bad "bench vae on f16 GGUF: $out"

# ---- errors ------------------------------------------------------------------------------------
printf 'GGUF\003\000\000\000garbage' >"$tmp/garbage.gguf"
expect 1 "this is a vae checkpoint, expected sd1 or sd2 or sdxl" -- gen -m "$tmp/vae_kl.gguf" -o "$tmp/e.png"
expect 1 "$tmp/garbage.gguf" -- gen -m "$tmp/garbage.gguf" -o "$tmp/e.png"
expect 1 "$tmp/garbage.gguf" -- "$tessera" bench unet --model "$tmp/garbage.gguf" --width 64 --height 64
expect 1 "has no VAE; give one with --vae" -- gen -m "$tmp/unet_bare.gguf" --clip-l "$tmp/clip_l.safetensors" -o "$tmp/e.png"
[ -e "$tmp/e.png" ] && bad "a failed run left an output file"
rm -rf "$tmp"
exit $fail
