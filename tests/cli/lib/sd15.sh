# Sourced by the CLI tests that run the tiny pipeline_sd15 checkpoint (not a test itself: only
# tests/cli/*.sh are).  Call with the test's own arguments and a scratch folder name:
#   . "$(dirname "$0")/lib/sd15.sh" "$@" cli_NAME
# Sets tessera, shared, here, tmp (emptied), model, fail=0 and bad(); exits 77 (skip) when the
# checkpoint or python3 is missing.
set -u
tessera=${1:?usage: $(basename "$0") /path/to/tessera}
shared=${TESSERA_SHARED:?}
here=$(cd "$(dirname "$0")" && pwd)
tmp=${TESSERA_TEST_TMP:-/tmp}/${2:?}
model=$shared/golden/pipeline_sd15/model.safetensors
[ -f "$model" ] || exit 77
command -v python3 >/dev/null || exit 77
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
