#!/usr/bin/env bash
# Resident memory of a long tiled run's sampling phase (bench/highres.md, "Full-size SD1.5
# at 8192²"): starts `tessera generate` on MODEL at SIZE² (one step, no first pass), prints
# VmRSS / VmHWM from /proc every 10 s for SECONDS, then stops the run.  Memory reaches its
# plateau after the first tile batches, long before a 441-tile step ends.
#   bench/sampling_rss.sh build/tessera MODEL [SIZE] [SECONDS]
set -u
tessera=${1:?usage: sampling_rss.sh TESSERA MODEL [SIZE] [SECONDS]}
model=${2:?usage: sampling_rss.sh TESSERA MODEL [SIZE] [SECONDS]}
size=${3:-8192}
seconds=${4:-250}
out=${TMPDIR:-/tmp}/tessera-sampling-rss
mkdir -p "$out"
"$tessera" generate -m "$model" -p "a lighthouse" -W "$size" -H "$size" --steps 1 --hires off --seed 1 \
    -o "$out/x.png" 2>"$out/log.txt" &
pid=$!
for ((t = 10; t <= seconds; t += 10)); do
    sleep 10
    kill -0 "$pid" 2>/dev/null || break
    echo "t=${t}s $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \t\n' ' ')"
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
head -1 "$out/log.txt"
