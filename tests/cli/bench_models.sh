#!/bin/bash
# tessera bench unet / vae / flux on the tiny golden checkpoints: the JSON carries positive
# step_seconds / decode_seconds and peak_rss_bytes for SD1 (UNet-only and full
# checkpoint layouts), SDXL (which needs the y vector) and the SD3 / SD3.5 MMDiT; bad usage exits 2, a
# missing or wrong file exits 1 with one line naming it.
set -u
bin=$1
golden=${TESSERA_SHARED:-../shared}/golden
sd15=$golden/unet_sd15/model.safetensors sdxl=$golden/unet_sdxl/model.safetensors
pipe=$golden/pipeline_sd15/model.safetensors
[ -f "$sd15" ] && [ -f "$sdxl" ] && [ -f "$pipe" ] || exit 77
fail=0
check() { if ! eval "$1"; then echo "FAIL: $1"; fail=1; fi; }
# positive KEY JSON: the value of "KEY" is a number > 0
positive() { grep -Eq "\"$1\": [0-9.e+-]+" <<<"$2" && awk -v v="$(grep -Eo "\"$1\": [0-9.e+-]+" <<<"$2" | head -1 |
    sed 's/.*: //')" 'BEGIN { exit !(v > 0) }'; }

for m in "$sd15" "$sdxl" "$pipe"; do
    out=$("$bin" bench unet --model "$m" --width 64 --height 64 --threads 1 --steps 3 --json); rc=$?
    check "[ $rc -eq 0 ]"
    check 'positive step_seconds "$out" && positive first_step_seconds "$out" && positive peak_rss_bytes "$out"'
    check 'grep -q "\"batch\": 2" <<<"$out" && grep -q "\"steps\": 3" <<<"$out"'
    check '[ $(grep -c "" <<<"$out") -eq 1 ]'
done
check 'grep -q "\"family\": \"sdxl\"" <<<"$("$bin" bench unet --model "$sdxl" --width 64 --height 64 --json)"'
# SD3 / SD3.5: the MMDiT (batch 2, 154 context tokens).
for m in "$golden/mmdit_sd3/model.safetensors" "$golden/mmdit_sd35/model.safetensors"; do
    out=$("$bin" bench unet --model "$m" --width 64 --height 48 --steps 2 --json)
    check '[ $? -eq 0 ] && positive step_seconds "$out" && grep -q "\"family\": \"sd3" <<<"$out"'
done
out=$("$bin" bench unet --model "$sd15" --width 64 --height 48 --cfg 1 --json)
check '[ $? -eq 0 ] && grep -q "\"batch\": 1" <<<"$out" && grep -q "\"family\": \"sd1\"" <<<"$out"'
out=$("$bin" bench unet --model "$sd15" --width 64 --height 64 --steps 2)
check '[ $? -eq 0 ] && grep -q "^step     median of the other 1: " <<<"$out" && grep -q "^memory   peak RSS" <<<"$out"'

out=$("$bin" bench vae --model "$pipe" --width 64 --height 64 --threads 1 --json)
check '[ $? -eq 0 ] && positive decode_seconds "$out" && positive peak_rss_bytes "$out"'
check 'grep -q "\"latent_channels\": 4" <<<"$out"'

# flux on the tiny pipeline_flux transformer (32-wide heads: its own rotary split)
flux=$golden/pipeline_flux/model.safetensors
if [ -f "$flux" ]; then
    out=$("$bin" bench flux --model "$flux" --width 64 --height 48 --rope-axes 8,12,12 --threads 1 --steps 2 --json)
    check '[ $? -eq 0 ] && positive step_seconds "$out" && positive peak_rss_bytes "$out"'
    check 'grep -q "\"image_tokens\": 12, \"text_tokens\": 256" <<<"$out" && grep -q "\"double_blocks\": 2, \"single_blocks\": 1" <<<"$out"'
    err=$("$bin" bench flux --model "$flux" --width 64 --height 48 2>&1); rc=$?
    check '[ $rc -eq 1 ] && [ $(grep -c "" <<<"$err") -eq 1 ] && grep -q "axes must sum to the head width 32" <<<"$err"'
    err=$("$bin" bench flux --model "$sd15" --width 64 --height 48 2>&1); rc=$?
    check '[ $rc -eq 1 ] && grep -q "expected flux-schnell or flux-dev" <<<"$err"'
    for args in "--width 60 --height 48" "--width 64 --height 48 --rope-axes 8,x" "--width 64 --height 48 --cfg 2"; do
        "$bin" bench flux --model "$flux" $args >/dev/null 2>&1; rc=$?
        check "[ $rc -eq 2 ] # bench flux $args"
    done
fi

for args in "unet --model $sd15 --width 64" "unet --model $sd15 --width 60 --height 64" \
    "unet --model $sd15 --width 64 --height 64 --cfg abc" "unet --model $sd15 --width 64 --height 64 --steps 0" \
    "unet --model $sd15 --width 64 --height 64 --threads x" "unet --width 64 --height 64" \
    "vae --model $pipe --width 64 --height 64 --cfg 7" "vae --model $pipe --width 64 --height" \
    "vae --model $pipe --width 64 --height 64 --bogus 1"; do
    "$bin" bench $args >/dev/null 2>&1; rc=$?
    check "[ $rc -eq 2 ] # bench $args"
done
for suite in unet vae; do
    err=$("$bin" bench $suite --model /nonexistent/x.safetensors --width 64 --height 64 2>&1); rc=$?
    check '[ $rc -eq 1 ] && [ $(grep -c "" <<<"$err") -eq 1 ] && grep -q "^tessera bench: .*/nonexistent/x.safetensors" <<<"$err"'
done
err=$("$bin" bench unet --model "$golden/vae_kl/model.safetensors" --width 64 --height 64 2>&1); rc=$?
check '[ $rc -eq 1 ] && [ $(grep -c "" <<<"$err") -eq 1 ]'
err=$("$bin" bench vae --model "$sd15" --width 64 --height 64 2>&1); rc=$?
check '[ $rc -eq 1 ] && [ $(grep -c "" <<<"$err") -eq 1 ]'
exit $fail
