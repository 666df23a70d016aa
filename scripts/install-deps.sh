#!/usr/bin/env bash
# Installs the Debian 12 packages Tessera builds and tests with. Idempotent: when
# every package is already installed it does nothing (no apt-get update).
set -euo pipefail
packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libcjson-dev libpng-dev libjpeg62-turbo-dev libopenblas-dev
  libicu-dev zlib1g-dev xxd
  python3 python3-numpy valgrind
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm fetch the upscaler models (scripts/fetch-models.sh) and run the TF.js
# benchmark peer.  Checked by command rather than by package: a node from elsewhere
# (NodeSource bundles npm) serves as well, and Debian's npm would conflict with it.
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (or install these packages yourself): ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
