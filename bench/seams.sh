#!/usr/bin/env bash
# Seam figures of tiled denoising (bench/README.md, "Seams"), on the tiny pipeline_sd15
# checkpoint at SIZE (default 1024): the same prompt and seed generated untiled (the
# reference), with naive non-overlapping tiles (the negative control), and with overlapping
# tiles blended uniformly (MultiDiffusion) and with Gaussian weights (Mixture of Diffusers,
# the default).  Tile grids are chosen so every tile edge lies on a regular pitch, which
# `tessera seams --grid` scores.  Two scores per run: the picture itself, and its deviation
# from the untiled reference (--reference), which shows seams even in the random-weight
# model's busy texture.  Prints a markdown table.
#   bench/seams.sh [build/tessera] [SIZE]
set -eu
tessera=${1:-build/tessera}
size=${2:-1024}
shared=${TESSERA_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
model=$shared/golden/pipeline_sd15/model.safetensors
out=${TMPDIR:-/tmp}/tessera-seams-bench
mkdir -p "$out"
gen() { "$tessera" generate --unet-heads 2 --clip-heads 2 -m "$model" -p "a lighthouse on a cliff" --seed 1 \
        --steps 4 -W "$size" -H "$size" --hires off "$@" 2>/dev/null; }
score() { "$tessera" seams "$@" | sed -n 's/^seam ratio \([0-9.]*\).*/\1/p'; }
gen --tile 0 -o "$out/untiled.png"
echo "| ${size}² run | tiles (latent px) | pitch px | seam ratio | vs untiled |"
echo "|---|---|---:|---:|---:|"
for run in "naive:16:0:uniform:128" "multidiffusion:16:8:uniform:64" "mixture:16:8:gaussian:64"; do
    IFS=: read -r name tile overlap blend pitch <<<"$run"
    gen --tile "$tile" --tile-overlap "$overlap" --tile-blend "$blend" -o "$out/$name.png"
    echo "| $name | $tile, overlap $overlap, $blend | $pitch | $(score "$out/$name.png" --grid "$pitch") |" \
         "$(score "$out/$name.png" --grid "$pitch" --reference "$out/untiled.png") |"
done
