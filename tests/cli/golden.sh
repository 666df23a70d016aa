#!/usr/bin/env bash
# The golden harness must be able to fail: a case whose stored output is perturbed
# beyond tolerance fails, an unknown family is skipped with 77, a broken case.json
# fails, and the real case passes.
set -u
tessera=$1
shared=${TESSERA_SHARED:?}
tmp=${TESSERA_TEST_TMP:?}/golden-cli
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
. "$(dirname "$0")/lib/expect.sh"

case_dir=$shared/golden/vae_kl
expect 0 "the real vae_kl case passes" -- "$tessera" golden "$case_dir"

# A copy whose out.decoded is shifted by 1e-3 at one element must fail.
mkdir -p "$tmp/perturbed"
cp "$case_dir/case.json" "$tmp/perturbed/"
ln -sf "$case_dir/model.safetensors" "$tmp/perturbed/model.safetensors"
python3 - "$case_dir/io.safetensors" "$tmp/perturbed/io.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
begin = header["out.decoded"]["data_offsets"][0] + 8 + n + 4 * 100
value = struct.unpack("<f", data[begin:begin + 4])[0]
data[begin:begin + 4] = struct.pack("<f", value + 1e-3)
open(dst, "wb").write(data)
PY
expect 1 "a perturbed output fails" -- "$tessera" golden "$tmp/perturbed"
grep -q "out.decoded .*FAIL" "$tmp/out.txt" || { echo "FAIL: the perturbed tensor is not the one reported"; fail=1; }

mkdir -p "$tmp/unknown"
echo '{"family": "no-such-family"}' >"$tmp/unknown/case.json"
expect 77 "an unknown family is skipped" -- "$tessera" golden "$tmp/unknown"
grep -q "skipped: not implemented" "$tmp/out.txt" || { echo "FAIL: no 'skipped: not implemented' line"; fail=1; }
expect 0 "a skipped case beside a passing one still passes" -- "$tessera" golden "$tmp/unknown" "$case_dir"

mkdir -p "$tmp/broken"
echo '{"family": ' >"$tmp/broken/case.json"
expect 1 "a broken case.json fails" -- "$tessera" golden "$tmp/broken"
expect 1 "a missing folder fails" -- "$tessera" golden "$tmp/does-not-exist"
expect 2 "an unknown option is a usage error" -- "$tessera" golden --bogus
exit $fail
