#!/usr/bin/env bash
# tessera upscale end to end: tiled and untiled runs write identical files, PNG and
# JPEG out, and every user error (unreadable image, unsupported scale, unknown model,
# bad flags) ends with a one-line message and a non-zero status, leaving no file.
# Skipped (77) when scripts/fetch-models.sh has not run.
set -u
tessera="$1"
models="${TESSERA_MODEL_DIR:-$TESSERA_SOURCE/models}/upscalerjs"
fixture="$models/esrgan-slim/assets/fixture.png"
[ -f "$models/esrgan-slim/models/x2/model.json" ] || { echo "skipped: models not fetched"; exit 77; }
tmp="$TESSERA_TEST_TMP/cli_upscale"
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
check() { # check NAME STATUS_WANTED PATTERN -- command...
  local name="$1" want="$2" pattern="$3"
  shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -ne "$want" ] || ! grep -q -- "$pattern" "$tmp/err" "$tmp/out"; then
    echo "FAIL $name: status $got (want $want), output:"; cat "$tmp/out" "$tmp/err"; fail=1
  else
    echo "ok   $name"
  fi
}

check untiled 0 "peak RSS" -- "$tessera" upscale "$fixture" -o "$tmp/whole.png" --scale 3 --tile 0 --verbose
check tiled 0 "9 tile(s)" -- "$tessera" upscale "$fixture" -o "$tmp/tiled.png" --scale 3 --tile 48 --threads 1 --verbose
check budget 0 "peak RSS" -- "$tessera" upscale "$fixture" -o "$tmp/budget.png" --scale 3 --memory 16 --verbose
for f in tiled budget; do
  if cmp -s "$tmp/whole.png" "$tmp/$f.png"; then echo "ok   $f == untiled"; else echo "FAIL $f != untiled"; fail=1; fi
done
# PNG width and height: big-endian words at bytes 16..23 of the IHDR chunk
check size 0 " 0 0 1 128 0 0 1 128" -- bash -c "od -An -tu1 -j16 -N8 '$tmp/whole.png' | tr -s ' '"
check jpeg 0 "without it" -- "$tessera" upscale "$fixture" -o "$tmp/out.jpg" --model default
check jpeg-magic 0 "255 216 255" -- bash -c "od -An -tu1 -N3 '$tmp/out.jpg' | tr -s ' '"

echo "not an image" >"$tmp/bad.png"
check unreadable 1 "tessera upscale: .*bad.png" -- "$tessera" upscale "$tmp/bad.png" -o "$tmp/x.png"
check missing 1 "tessera upscale: .*nothere.png" -- "$tessera" upscale "$tmp/nothere.png" -o "$tmp/x.png"
check scale 1 "has no x5 (scales: 2, 3, 4, 8)" -- "$tessera" upscale "$fixture" -o "$tmp/x.png" --scale 5
check default-scale 1 "has no x4 (scales: 2)" -- "$tessera" upscale "$fixture" -o "$tmp/x.png" --model default --scale 4
check model 1 "unknown model 'huge'" -- "$tessera" upscale "$fixture" -o "$tmp/x.png" --model huge
check model-dir 1 "fetch-models.sh" -- "$tessera" upscale "$fixture" -o "$tmp/x.png" --model-dir "$tmp"
check extension 1 "x.gif" -- "$tessera" upscale "$fixture" -o "$tmp/x.gif" --model default
check no-output 2 "usage" -- "$tessera" upscale "$fixture"
check bad-tile 2 "bad value" -- "$tessera" upscale "$fixture" -o "$tmp/x.png" --tile -3
check bad-memory 2 "bad value" -- "$tessera" upscale "$fixture" -o "$tmp/x.png" --memory lots
check unknown-flag 2 "unknown option" -- "$tessera" upscale "$fixture" -o "$tmp/x.png" --fast
check help 0 "usage: tessera upscale" -- "$tessera" upscale --help
if ls "$tmp"/x.* >/dev/null 2>&1; then echo "FAIL a failed run left a file"; fail=1; fi
exit $fail
