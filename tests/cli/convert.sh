#!/usr/bin/env bash
# tessera convert on a real-named slice of SD1.5 (one CLIP attention block, written by
# shared/tools/random-checkpoint): safetensors -> GGUF q8_0 -> safetensors must work
# with the documented dtypes, and bad usage / bad input must fail with exit 2 / 1 and
# a one-line message, leaving no output or temp file behind.
set -u
tessera=$1
shared=${TESSERA_SHARED:?}
tmp=${TESSERA_TEST_TMP:?}/convert-cli
gen=$shared/tools/random-checkpoint
[ -x "$gen" ] && [ -f "$shared/data/keysets/sd15.json" ] || { echo "skip: no random-checkpoint or sd15 keyset"; exit 77; }
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
. "$(dirname "$0")/lib/expect.sh"
has() { # has DESCRIPTION PATTERN: the last command's output matches
    if grep -qE "$2" "$tmp/out.txt"; then echo "ok: $1"; else echo "FAIL: $1 (no /$2/)"; sed 's/^/    /' "$tmp/out.txt"; fail=1; fi
}

prefix=cond_stage_model.transformer.text_model.encoder.layers.0.self_attn
"$gen" "$shared/data/keysets/sd15.json" "$tmp/in.safetensors" --dtype f16 --subset "$prefix" -q || exit 1

expect 0 "safetensors -> gguf q8_0" -- "$tessera" convert "$tmp/in.safetensors" -o "$tmp/q8.gguf" --type q8_0
has "the four 768x768 projections are quantised" '^  Q8_0 +4 tensors, 2506752 bytes$'
has "the four biases stay f16 (1-D keeps its type)" '^  F16 +4 tensors, 6144 bytes$'
expect 0 "gguf -> safetensors" -- "$tessera" convert "$tmp/q8.gguf" -o "$tmp/back.safetensors"
has "quantised tensors widen to f32" '^  F32 +4 tensors, 9437184 bytes$'
expect 3 "the result is a readable checkpoint (a slice: unknown family)" -- "$tessera" info "$tmp/back.safetensors"
expect 0 "with the original names and shapes" -- python3 - "$tmp/in.safetensors" "$tmp/back.safetensors" <<'PY'
import json, struct, sys
def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return {k: v["shape"] for k, v in h.items() if k != "__metadata__"}
a, b = header(sys.argv[1]), header(sys.argv[2])
sys.exit(0 if a == b and len(a) == 8 else 1)
PY
expect 0 "default type is f16" -- "$tessera" convert "$tmp/in.safetensors" -o "$tmp/f16.gguf"
has "every tensor f16" '^  F16 +8 tensors'

expect 2 "missing -o" -- "$tessera" convert "$tmp/in.safetensors"
expect 2 "unknown type" -- "$tessera" convert "$tmp/in.safetensors" -o "$tmp/x.gguf" --type q3_k
has "names the bad type" "unknown --type 'q3_k'"
expect 2 "unknown extension" -- "$tessera" convert "$tmp/in.safetensors" -o "$tmp/x.bin"
expect 2 "block type into safetensors" -- "$tessera" convert "$tmp/q8.gguf" -o "$tmp/x.safetensors" --type q4_k
expect 1 "missing input" -- "$tessera" convert "$tmp/none.gguf" -o "$tmp/x.gguf"
head -c 1000 "$tmp/q8.gguf" >"$tmp/cut.gguf"
expect 1 "truncated gguf input" -- "$tessera" convert "$tmp/cut.gguf" -o "$tmp/x.safetensors"
has "one-line message naming the file" "^tessera convert: .*cut.gguf: "
[ "$(wc -l <"$tmp/out.txt")" -eq 1 ] || { echo "FAIL: message is not one line"; fail=1; }
if ls "$tmp"/x.* >/dev/null 2>&1; then echo "FAIL: failed conversions left files: $(ls "$tmp"/x.*)"; fail=1; fi
exit $fail
