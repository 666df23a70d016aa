#!/usr/bin/env bash
# tessera vae-decode: the tiled decode writes the very PNG the untiled one writes
# (tiles of 2 latent pixels on a 12x8 latent: every layer crosses tile borders),
# naive tiling does not, the report line is printed, and bad input is refused.
set -u
tessera=$1
shared=${TESSERA_SHARED:?}
tmp=${TESSERA_TEST_TMP:?}/vae-decode-cli
rm -rf "$tmp" && mkdir -p "$tmp"
model=$shared/golden/vae_kl/model.safetensors
fail=0
. "$(dirname "$0")/lib/expect.sh"
expect 0 "untiled decode" -- "$tessera" vae-decode "$model" --size 96x64 --untiled -o "$tmp/untiled.png"
expect 0 "tiled decode" -- "$tessera" vae-decode "$model" --size 96x64 --tile 2 -o "$tmp/tiled.png"
grep -q "^decoded 96x64 (tiled) in .* s, peak RSS .* MiB" "$tmp/out.txt" || { echo "FAIL: no report line"; fail=1; }
expect 0 "tiled decode, f16 spill, per-tile attention" -- "$tessera" vae-decode "$model" --size 96x64 --tile 3 \
    --spill f16 --attn-tokens 4 -o "$tmp/approx.png"
expect 0 "naive tiles" -- "$tessera" vae-decode "$model" --size 96x64 --tile 2 --naive -o "$tmp/naive.png"
# Equal up to float rounding: the f32 GEMM's summation order depends on the row count,
# so a pixel may land one level apart; anything more is a tiling error.
diff=$(python3 "$(dirname "$0")/lib/png_maxdiff.py" "$tmp/untiled.png" "$tmp/tiled.png")
if [ "$diff" = 0 ] || [ "$diff" = 1 ]; then echo "ok: tiled PNG == untiled PNG (max difference $diff level)"
else echo "FAIL: the tiled PNG differs from the untiled one by $diff levels"; fail=1; fi
naive=$(python3 "$(dirname "$0")/lib/png_maxdiff.py" "$tmp/untiled.png" "$tmp/naive.png")
if [ "$naive" -gt 1 ]; then echo "ok: naive tiles differ (by $naive levels)"
else echo "FAIL: naive tiles gave the untiled PNG (max difference $naive)"; fail=1; fi
expect 2 "no --size" -- "$tessera" vae-decode "$model"
expect 2 "size not a multiple of 8" -- "$tessera" vae-decode "$model" --size 100x64
expect 2 "bad spill precision" -- "$tessera" vae-decode "$model" --size 96x64 --spill f8
expect 1 "a missing model fails" -- "$tessera" vae-decode "$tmp/none.safetensors" --size 96x64
expect 1 "an unusable spill dir fails" -- "$tessera" vae-decode "$model" --size 96x64 --spill-dir "$tmp/none"
grep -q "^tessera vae-decode: tiled VAE: cannot create a spill file" "$tmp/out.txt" || { echo "FAIL: message"; fail=1; }
exit $fail
