#!/usr/bin/env bash
# Scale figures of the high-resolution engine (bench/README.md, "High resolution"):
# a full `tessera generate` txt2img run on the tiny pipeline_sd15 checkpoint at each
# size given (default 1024 2048 4096 8192), with the defaults a user gets (tiles of the
# native 512 px, two passes, tiled VAE), timed with /usr/bin/time: wall seconds and peak
# RSS, plus the tile plan the run printed.  Prints one markdown row per size.
#   bench/highres.sh [build/tessera] [SIZE...]     (STEPS=N to change the default 8)
set -eu
tessera=${1:-build/tessera}
shift || true
sizes=${*:-1024 2048 4096 8192}
shared=${TESSERA_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
model=$shared/golden/pipeline_sd15/model.safetensors
steps=${STEPS:-8}
out=${TMPDIR:-/tmp}/tessera-highres-bench
mkdir -p "$out"
echo "| canvas | tiles per step | steps | wall s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for size in $sizes; do
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$tessera" generate --unet-heads 2 --clip-heads 2 -m "$model" \
        -p "a lighthouse on a cliff above the sea" --seed 1 --steps "$steps" -W "$size" -H "$size" \
        -o "$out/$size.png" 2>"$out/log.txt"
    tiles=$(sed -n 's/^canvas [0-9x]*: \([0-9]*\) tiles.*/\1/p' "$out/log.txt")
    read -r wall rss_kb <"$out/time.txt"
    echo "| ${size}² | ${tiles:-1} | $steps | $wall | $((rss_kb / 1024)) |"
done
