#!/usr/bin/env bash
# Benchmark of `tessera upscale` against TF.js under node on the same input: seconds
# per output megapixel for each UpscalerJS model, Tessera on 2 threads (and 1), TF.js
# with its plain "cpu" backend and its "wasm" backend (installed from npm into
# out/bench-tfjs, a one-time ~300 MB download).  The ratio is taken within one run of
# this script, so machine load affects both sides alike.  Writes bench/upscale.md.
#
# Usage: bench/upscale.sh [SIZE] [MODELS]
#   SIZE    input side in pixels (default 64: the TF.js cpu backend is slow)
#   MODELS  space-separated name:scale list (default "slim:4 medium:4 thick:4")
# Env: BENCH_BACKENDS (default cpu,wasm), BENCH_MEMORY=1 also records peak RSS for
#   1K -> 4K and 2K -> 8K with slim x4 (minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-64}"
models="${2:-slim:4 medium:4 thick:4}"
backends="${BENCH_BACKENDS:-cpu,wasm}"
tfjs_dir=out/bench-tfjs
work=out/bench-upscale
mkdir -p "$work" "$tfjs_dir"

scripts/fetch-models.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target tessera >/dev/null
if [ ! -d "$tfjs_dir/node_modules/@tensorflow/tfjs-backend-wasm" ]; then
  (cd "$tfjs_dir" && npm install --no-audit --no-fund --silent @tensorflow/tfjs@4.22.0 \
    @tensorflow/tfjs-backend-wasm@4.22.0 >/dev/null)
fi

declare -A package=([default]=default-model [slim]=esrgan-slim [medium]=esrgan-medium [thick]=esrgan-thick)
fixture=models/upscalerjs/esrgan-slim/assets/fixture.png
input="$work/input_${size}.png"
node bench/tfjs_upscale.mjs --make-input "$fixture" "$input" "$size" "$size"

# Seconds per output megapixel from `tessera upscale --verbose`.
tessera_spmp() {
  build/tessera upscale "$input" -o "$work/out.png" --model "$1" --scale "$2" --threads "$3" --tile 0 --verbose 2>&1 |
    sed -n 's/.*, \([0-9.]*\) s per output megapixel.*/\1/p'
}
# Seconds per output megapixel of one TF.js backend, or "-" when it failed.
tfjs_spmp() {
  local line
  line=$(grep "\"backend\":\"$2\"" <<<"$1" || true)
  if grep -q s_per_mpx <<<"$line"; then sed 's/.*"s_per_mpx":\([0-9.e+-]*\).*/\1/' <<<"$line" | xargs printf '%.1f'; else echo "-"; fi
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# tessera upscale vs TF.js (node) — seconds per output megapixel"
  echo
  echo "Input: ${size}x${size} RGB (the UpscalerJS fixture, mirrored to size); untiled (--tile 0);"
  echo "each figure is one run after model load. $(nproc) cores, load average at start: $load"
  echo "(the machine was shared with other jobs: absolute times are noisy, the ratio less so)."
  echo "TF.js $(node -e "console.log(require('./$tfjs_dir/node_modules/@tensorflow/tfjs/package.json').version)") on node $(node --version); its wasm backend runs 1 thread under node."
  echo
  echo "| model | scale | Tessera 2 thr | Tessera 1 thr | TF.js cpu | TF.js wasm | fastest TF.js / Tessera 2 thr |"
  echo "|---|---|---|---|---|---|---|"
} >"$work/upscale.md"
for ms in $models; do
  name="${ms%%:*}"
  scale="${ms##*:}"
  model_json=models/upscalerjs/${package[$name]}/models/x$scale/model.json
  [ -f "$model_json" ] || model_json=models/upscalerjs/${package[$name]}/models/model.json
  t2=$(tessera_spmp "$name" "$scale" 2)
  t1=$(tessera_spmp "$name" "$scale" 1)
  tf=$(TFJS_DIR="$tfjs_dir" node bench/tfjs_upscale.mjs "$model_json" "$input" "$backends" 1 2>/dev/null | grep backend)
  cpu=$(tfjs_spmp "$tf" cpu)
  wasm=$(tfjs_spmp "$tf" wasm)
  best=$(printf '%s\n%s\n' "$cpu" "$wasm" | grep -v '^-$' | sort -g | head -1)
  ratio=$(awk -v b="${best:-0}" -v t="$t2" 'BEGIN { if (b > 0 && t > 0) printf "%.2fx", b / t; else print "-" }')
  echo "| $name | x$scale | $t2 | $t1 | $cpu | $wasm | $ratio |" | tee -a "$work/upscale.md"
done

if [ "${BENCH_MEMORY:-0}" = 1 ]; then
  {
    echo
    echo "Peak memory, slim x4, default tiling (1 GiB activation budget), 2 threads:"
    echo
    echo "| input | output | tiles | s per output MP | activations peak | peak RSS |"
    echo "|---|---|---|---|---|---|"
  } >>"$work/upscale.md"
  for side in 1024 2048; do
    node bench/tfjs_upscale.mjs --make-input "$fixture" "$work/big.png" "$side" "$side"
    v=$(build/tessera upscale "$work/big.png" -o "$work/big_out.png" --model slim --scale 4 --threads 2 --verbose 2>&1 | tail -1)
    echo "$v" | sed -E 's/.*, ([0-9]+x[0-9]+); ([0-9]+) tile.*; [0-9.]+ s, ([0-9.]+) s per output megapixel; activations peak ([0-9.]+ MiB); peak RSS ([0-9.]+ MiB).*/| '"${side}x${side}"' | \1 | \2 | \3 | \4 | \5 |/' >>"$work/upscale.md"
    rm -f "$work/big_out.png"
  done
fi
cp "$work/upscale.md" bench/upscale.md
cat bench/upscale.md
