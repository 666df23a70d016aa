#!/usr/bin/env bash
# The README's main command: from a fresh clone on Debian 12, install what Tessera
# needs, build it, fetch the upscaler model, fetch a freely licensed photograph from
# a Debian wallpaper package, and super-resolve it to more than 4K (4095 x 3222).
#
# The photo: "Picture_1A" by Trevor "Freespace", 2018, CC BY 4.0
# (https://creativecommons.org/licenses/by/4.0/), 1365 x 1074, shipped in Debian's
# lomiri-wallpapers-16.04 package (its copyright file is copied next to the result).
#
# Usage: scripts/run-main.sh [--model slim|medium|thick] [--scale 2|3|4|8]
#        (default: medium x3; thick is the sharpest and about 10x slower)
set -euo pipefail
cd "$(dirname "$0")/.."
model=medium
scale=3
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --scale) scale="$2"; shift 2 ;;
    *) echo "usage: scripts/run-main.sh [--model NAME] [--scale S]" >&2; exit 2 ;;
  esac
done
declare -A package=([default]=default-model [slim]=esrgan-slim [medium]=esrgan-medium [thick]=esrgan-thick)
[ -n "${package[$model]:-}" ] || { echo "run-main: unknown model '$model'" >&2; exit 2; }

echo "== 1/5 dependencies"
scripts/install-deps.sh
echo "== 2/5 build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target tessera >/dev/null
echo "== 3/5 model @upscalerjs/${package[$model]} (npm)"
scripts/fetch-models.sh "${package[$model]}"

echo "== 4/5 photo (Debian package lomiri-wallpapers-16.04)"
out=out/upscale
photo="$out/Picture_1A_by_freespace.jpg"
mkdir -p "$out"
if [ ! -f "$photo" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # apt-get download needs current package lists; refresh them once if it fails.
  if ! (cd "$work" && apt-get download lomiri-wallpapers-16.04 >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$work" && apt-get download lomiri-wallpapers-16.04 >/dev/null 2>&1)
  fi
  dpkg -x "$work"/lomiri-wallpapers-16.04_*.deb "$work/x"
  cp "$work/x/usr/share/doc/lomiri-wallpapers-16.04/copyright" "$out/COPYRIGHT.lomiri-wallpapers"
  cp "$work/x/usr/share/backgrounds/Picture_1A_by_freespace.jpg" "$photo"
fi

echo "== 5/5 upscale x$scale with $model"
result="$out/Picture_1A_by_freespace_${model}_x${scale}.png"
build/tessera upscale "$photo" -o "$result" --model "$model" --scale "$scale" --verbose
echo
echo "result: $PWD/$result"
echo "photo: \"Picture_1A\" by Trevor \"Freespace\" (2018), CC BY 4.0, from Debian's lomiri-wallpapers-16.04;"
echo "       upscaled by Tessera with the UpscalerJS $model model (MIT). Licence text: $PWD/$out/COPYRIGHT.lomiri-wallpapers"
