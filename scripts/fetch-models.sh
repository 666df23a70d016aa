#!/usr/bin/env bash
# Fetches the MIT-licensed UpscalerJS super-resolution models (RDN and RRDN as TF.js
# layers models, with their sample images) from the npm registry into
# ${TESSERA_MODEL_DIR:-<repo>/models}/upscalerjs/<package>/, where `tessera upscale`
# finds them by name.  The packages are pinned by version and sha512, checked before
# unpacking, so the same bytes land on every machine.  Idempotent: a package whose
# unpacked package.json already names the pinned version is left alone.
#
# Usage: scripts/fetch-models.sh [package...]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${TESSERA_MODEL_DIR:-$PWD/models}/upscalerjs"
version=1.0.0
declare -A integrity=(
  [default-model]=sha512-D17cokQBpciTBrlFuY5WtS7TH0WE3h5m44PYiPPCSq1jlWjG9BvH5/rnm9AhQPV6TT3Bqbg5GAPV8/qpR47/hQ==
  [esrgan-slim]=sha512-DXtwn5SE71+pZKluN/hGeLaZv6ZylyFQYSvMqU08kKCEA5Y9Q1cIIk4EvPTPZw8VqGi2C6F02c8OjhtId4BK2w==
  [esrgan-medium]=sha512-Z8JnR87sgetPABKevasXST3FdnXhaoTu9zpXnu3KLaHYpYStVt0FD1VZS9c6jhSGMBC0H929gN9RbWl+MeisKA==
  [esrgan-thick]=sha512-Xt7LAEa1WYVdU8teye1A2J3T2ylb3ihlU/x01x1ieM7zZh5FzTll6fwmeUC82mkztWloGZM65KdSEWOmhlXOdw==
)
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(default-model esrgan-slim esrgan-medium esrgan-thick)

command -v npm >/dev/null || { echo "fetch-models: npm is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
mkdir -p "$dest"
for p in "${packages[@]}"; do
  want="${integrity[$p]:-}"
  [ -n "$want" ] || { echo "fetch-models: unknown package '$p' (known: ${!integrity[*]})" >&2; exit 2; }
  if grep -q "\"version\": \"$version\"" "$dest/$p/package.json" 2>/dev/null; then
    continue
  fi
  echo "fetch-models: @upscalerjs/$p@$version -> $dest/$p"
  work=$(mktemp -d "$dest/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@upscalerjs/$p@$version" >/dev/null 2>npm.log) ||
    { cat "$work/npm.log" >&2; echo "fetch-models: npm pack @upscalerjs/$p failed" >&2; exit 1; }
  tgz="$work/upscalerjs-$p-$version.tgz"
  got="sha512-$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$tgz")"
  [ "$got" = "$want" ] || { echo "fetch-models: $tgz: sha512 mismatch ($got)" >&2; exit 1; }
  mkdir "$work/unpacked"
  tar -xzf "$tgz" -C "$work/unpacked" --strip-components=1 --no-same-owner
  rm -rf "$dest/$p"
  mv "$work/unpacked" "$dest/$p"
  rm -rf "$work"
  trap - EXIT
done
