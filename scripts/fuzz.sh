#!/usr/bin/env bash
# Runs every libFuzzer binary of a fuzz build for a share of a time budget.
# Usage: scripts/fuzz.sh BUILD_DIR [SECONDS]   (default 60; split evenly across the fuzzers)
#
# Each fuzzer starts from a scratch copy of fuzz/corpus/<name>/ (fuzz/corpus-run/<name>/, so the
# committed seeds stay small) and uses fuzz/<name>.dict when there is one.  A crash, leak or
# sanitizer report leaves its input in fuzz/corpus-run/<name>-crash-* and fails the script.
# One summary line per fuzzer: runs, coverage, corpus size, and OK or CRASH.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS]}
total=${2:-60}

mapfile -t fuzzers < <(find "$build/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x 2>/dev/null | sort)
if [ ${#fuzzers[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzzers in $build/fuzz (build the fuzz_all target first)" >&2
  exit 1
fi
per=$(( total / ${#fuzzers[@]} ))
[ "$per" -ge 1 ] || per=1

failed=0
for bin in "${fuzzers[@]}"; do
  name=$(basename "$bin")
  run=fuzz/corpus-run/$name
  rm -rf "$run"
  mkdir -p "$run"
  if [ -d "fuzz/corpus/$name" ]; then
    cp -R "fuzz/corpus/$name/." "$run/"
  fi
  args=(-max_total_time="$per" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="fuzz/corpus-run/$name-")
  [ -f "fuzz/$name.dict" ] && args+=(-dict="fuzz/$name.dict")
  log=fuzz/corpus-run/$name.log
  status=OK
  if ! "$bin" "${args[@]}" "$run" >"$log" 2>&1; then
    status=CRASH
    failed=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "$run" -type f | wc -l)
  printf 'fuzz %-22s %4ss  %10s runs  cov %6s  corpus %5s  %s\n' "$name" "$per" "${runs:-?}" "${cov:-?}" "$corpus" "$status"
  if [ "$status" != OK ]; then
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -5 | sed 's/^/    /' >&2
    echo "    full log: $log" >&2
  fi
done
exit "$failed"
