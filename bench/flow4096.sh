#!/usr/bin/env bash
# The flow-model families tiled at SIZE² (default 4096) on their tiny test checkpoints
# (bench/highres.md, "Flow models"): Flux from the pipeline_flux golden files, SD3 from the
# bundle tests/cli/sd3_fixture.py assembles; default tiling, 4 steps; wall time and peak RSS.
#   bench/flow4096.sh [build/tessera] [SIZE]
set -eu
tessera=${1:-build/tessera}
size=${2:-4096}
here=$(cd "$(dirname "$0")" && pwd)
shared=${TESSERA_SHARED:-$here/../../shared}
out=${TMPDIR:-/tmp}/tessera-flow-bench
mkdir -p "$out"
case=$shared/golden/pipeline_flux
python3 "$here/../tests/cli/flux_golden.py" tokenizer "$case" "$out/tok.json"
python3 "$here/../tests/cli/sd3_fixture.py" "$shared/golden" "$out" >/dev/null
run() { # NAME ARGS...: one run, one markdown row
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$tessera" generate "$@" -W "$size" -H "$size" --steps 4 --seed 1 \
        -o "$out/$name.png" 2>"$out/$name.log"
    read -r wall rss_kb <"$out/time.txt"
    echo "| $name | $(sed -n 's/^canvas [0-9x]*: \(.*\) per step.*/\1/p' "$out/$name.log") | $wall | $((rss_kb / 1024)) |"
}
echo "| ${size}² | tiles | wall s | peak RSS MiB |"
echo "|---|---|---:|---:|"
run flux -m "$case/model.safetensors" --ae "$case/ae.safetensors" --clip-l "$case/clip_l.safetensors" \
    --t5 "$case/t5.safetensors" --t5-tokenizer "$out/tok.json" --rope-axes 8,12,12 --clip-heads 2 -p "a cat holding a sign"
run sd3 --clip-heads 4 -m "$out/sd3.safetensors" -p "a red fox"
