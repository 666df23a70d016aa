#!/usr/bin/env bash
# tessera encode: token ids and embedding statistics checked against the golden cases' stored
# ids and encoder outputs (statistics recomputed here in Python from io.safetensors): SD1 from
# the pipeline_sd15 checkpoint (plain, weighted, long, BREAK, clip skip 2 on clip_text_l) and
# SDXL from the clip_text_g bigG file with --clip-l; output shapes of full-size SD1 and SDXL
# layouts (sparse files); then the one-line errors (exit 1) for files without a usable text
# encoder or a bad prompt, and bad usage (exit 2).
set -euo pipefail
tessera=${1:?usage: encode.sh /path/to/tessera}
shared=${TESSERA_SHARED:?}
tmp=${TESSERA_TEST_TMP:-/tmp}/cli_encode
rm -rf "$tmp"
mkdir -p "$tmp"
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
g=$shared/golden
for c in pipeline_sd15 clip_text_l clip_text_g; do
  [ -f "$g/$c/model.safetensors" ] || { echo "no golden case $c"; exit 77; }
done
fail=0
bad() { echo "FAIL: $*"; fail=1; }
sd15=$g/pipeline_sd15/model.safetensors
prompt="a photograph of an astronaut riding a horse"

run_json() { # NAME ARGS...: stdout to $tmp/NAME.json, must exit 0
  local name=$1 rc=0
  shift
  "$tessera" encode --json "$@" >"$tmp/$name.json" 2>"$tmp/$name.err" || rc=$?
  [ "$rc" -eq 0 ] || bad "$name: exit $rc: $(cat "$tmp/$name.err")"
}
run_json sd15 -m "$sd15" -p "$prompt" --heads 2
run_json sd15_neg -m "$sd15" -p "blurry, low quality, watermark" --heads 2
run_json weighted -m "$sd15" -p "a photograph of an (astronaut:1.5) riding a [horse]" --heads 2
long=$(for i in $(seq 40); do printf 'tall blue house, red cat, '; done)
run_json long -m "$sd15" -p "$long" --heads 2
run_json break -m "$sd15" -p "a red cat BREAK a blue dog" --heads 2
run_json skip2 -m "$g/clip_text_l/model.safetensors" -p "$prompt" --heads 4 --clip-skip 2
run_json sdxl -m "$g/clip_text_g/model.safetensors" --clip-l "$g/clip_text_l/model.safetensors" -p "$prompt" \
  --heads 4

python3 - "$tmp" "$g" <<'PY' || fail=1
import json, math, struct, sys
tmp, g = sys.argv[1], sys.argv[2]
bad = 0

def io(case):
    raw = open(f"{g}/{case}/io.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        data = raw[8 + n + a:8 + n + b]
        fmt = {"F32": "f", "I64": "q"}[v["dtype"]]
        out[k] = (v["shape"], struct.unpack(f"<{len(data) // struct.calcsize(fmt)}{fmt}", data))
    return out

def row(t, r):  # row r of a [B, ...] tensor, flattened
    shape, vals = t
    per = len(vals) // shape[0]
    return vals[r * per:(r + 1) * per]

def stats(v):
    m = sum(v) / len(v)
    return {"mean": m, "std": math.sqrt(sum((x - m) ** 2 for x in v) / len(v)), "min": min(v), "max": max(v)}

def check(cond, what):
    global bad
    if not cond:
        print("FAIL:", what)
        bad += 1

def same_stats(got, want, tol, what):
    for k in ("mean", "std", "min", "max"):
        check(abs(got[k] - want[k]) <= tol, f"{what}: {k} {got[k]} vs {want[k]}")

def load(name):
    return json.load(open(f"{tmp}/{name}.json"))

sd = io("pipeline_sd15")
for name, ids, out in (("sd15", "in.cond_ids", "out.cond"), ("sd15_neg", "in.uncond_ids", "out.uncond")):
    j = load(name)
    check(j["family"] == "sd1" and j["clip_skip"] == 1 and j["pooled"] is None, f"{name}: header {j['family']}")
    check(len(j["chunks"]) == 1 and j["chunks"][0]["ids"] == list(row(sd[ids], 0)), f"{name}: ids")
    check(j["context"]["shape"] == [1, 77, 32], f"{name}: shape {j['context']['shape']}")
    same_stats(j["context"], stats(row(sd[out], 0)), 2e-5, name)

w = load("weighted")
check(w["chunks"][0]["ids"] == load("sd15")["chunks"][0]["ids"], "weighted: ids differ from the plain prompt")
check([(i, round(x, 6)) for i, x in enumerate(w["chunks"][0]["weights"]) if x != 1] == [(5, 1.5), (8, 0.909091)],
      f"weighted: weights {w['chunks'][0]['weights'][:10]}")
check(abs(w["context"]["mean"] - load("sd15")["context"]["mean"]) < 1e-6, "weighted: mean not restored")
check(abs(w["context"]["std"] - load("sd15")["context"]["std"]) > 1e-4, "weighted: no effect")

lo = load("long")
check(len(lo["chunks"]) >= 2 and lo["context"]["shape"] == [1, 77 * len(lo["chunks"]), 32],
      f"long: {len(lo['chunks'])} chunks, shape {lo['context']['shape']}")
check(all(c["ids"][0] == 49406 and len(c["ids"]) == 77 for c in lo["chunks"]), "long: chunk layout")
br = load("break")
check(len(br["chunks"]) == 2 and br["chunks"][1]["pieces"][1:4] == ["a</w>", "blue</w>", "dog</w>"],
      f"break: {[c['pieces'][:5] for c in br['chunks']]}")

cl, cg = io("clip_text_l"), io("clip_text_g")
s2 = load("skip2")
check(s2["clip_skip"] == 2 and s2["chunks"][0]["ids"] == list(row(cl["in.input_ids"], 0)), "skip2: header/ids")
same_stats(s2["context"], stats(row(cl["out.penultimate_normed"], 0)), 2e-5, "skip2")

x = load("sdxl")
check(x["family"] == "sdxl" and x["clip_skip"] == 2, f"sdxl: {x['family']} skip {x['clip_skip']}")
check(x["context"]["shape"] == [1, 77, 128] and x["pooled"]["shape"] == [1, 80], "sdxl: shapes")
both = list(row(cl["out.penultimate"], 0)) + list(row(cg["out.penultimate"], 0))
same_stats(x["context"], stats(both), 2e-5, "sdxl context")
same_stats(x["pooled"], stats(row(cg["out.pooled"], 0)), 2e-5, "sdxl pooled")
sys.exit(1 if bad else 0)
PY

# Full-size layouts (sparse files from the published keysets: real header, data left as a hole, so
# the weights read as zeros): the default heads (width / 64), prefixes and output widths.
if [ -d "$shared/data/keysets" ]; then
  python3 - "$tmp" "$shared/data/keysets" sd15 sdxl_base clip_l clip_g <<'PY'
import json, struct, sys
size = {"F64": 8, "F32": 4, "I64": 8, "I32": 4, "F16": 2, "BF16": 2, "U8": 1}
for name in sys.argv[3:]:
    tensors = json.load(open(f"{sys.argv[2]}/{name}.json"))["tensors"]
    header, at = {}, 0
    for key in sorted(tensors):
        t = tensors[key]
        n = 1
        for d in t["shape"]:
            n *= d
        header[key] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [at, at + n * size[t["dtype"]]]}
        at += n * size[t["dtype"]]
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(f"{sys.argv[1]}/{name}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + at)
PY
  full() { # FILE FAMILY CONTEXT_SHAPE POOLED_LINE ARGS...
    local f=$1 family=$2 shape=$3 pooled=$4 out
    shift 4
    out=$("$tessera" encode -m "$tmp/$f.safetensors" -p "a cat" "$@") || { bad "$f: exit $?"; return; }
    grep -qF "family      $family, clip skip" <<<"$out" || bad "$f: not $family"
    grep -qF "context     $shape" <<<"$out" || bad "$f: context shape, want $shape"
    if [ -n "$pooled" ]; then grep -qF "pooled      $pooled" <<<"$out" || bad "$f: no pooled $pooled"
    elif grep -q "^pooled" <<<"$out"; then bad "$f: unexpected pooled line"; fi
  }
  full sd15 sd1 "[1, 77, 768]" ""
  full sdxl_base sdxl "[1, 77, 2048]" "[1, 1280]"
  full clip_g sdxl "[1, 77, 2048]" "[1, 1280]" --clip-l "$tmp/clip_l.safetensors"
  rm -f "$tmp"/*.safetensors
fi

# Text output: the ids line, the pieces and the weights that are not 1.
out=$("$tessera" encode -m "$sd15" -p "a photograph of an (astronaut:1.5) riding a horse" --heads 2)
for want in "family      sd1, clip skip 1" "chunk 1     49406 320 8853 539 550 18376 6765 320 4558 49407 (+67 x 49407)" \
  "astronaut</w> riding</w>" "weights   5:1.5 " "context     [1, 77, 32]"; do
  grep -qF "$want" <<<"$out" || bad "text output lacks '$want'"
done
grep -q "^pooled" <<<"$out" && bad "sd1 text output has a pooled line"
out=$("$tessera" encode -m "$g/clip_text_g/model.safetensors" --clip-l "$g/clip_text_l/model.safetensors" -p "x" \
  --heads 4)
grep -q "^pooled      \[1, 80\]" <<<"$out" || bad "sdxl text output lacks the pooled line"

# Files without a usable text encoder, bad prompts: exit 1, one line on stderr, nothing on stdout.
printf '{"foo.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' >"$tmp/h"
python3 -c "import struct,sys; h=open(sys.argv[1],'rb').read(); open(sys.argv[2],'wb').write(struct.pack('<Q',len(h))+h+bytes(8))" \
  "$tmp/h" "$tmp/unknown.safetensors"
expect_error() { # WHAT PATTERN ARGS...
  local what=$1 pattern=$2 rc=0
  shift 2
  "$tessera" encode "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" -eq 1 ] || bad "$what: exit $rc, want 1"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || bad "$what: stderr is not one line: $(cat "$tmp/err")"
  grep -q "^tessera encode: .*$pattern" "$tmp/err" || bad "$what: stderr '$(cat "$tmp/err")' lacks '$pattern'"
  [ ! -s "$tmp/out" ] || bad "$what: printed to stdout"
}
expect_error "unknown family" "unknown model family" -m "$tmp/unknown.safetensors" -p x
[ -f "$g/vae_kl/model.safetensors" ] && expect_error "vae" "not vae" -m "$g/vae_kl/model.safetensors" -p x
[ -f "$g/unet_sdxl/model.safetensors" ] &&
  expect_error "sdxl unet alone" "no clip-l text encoder" -m "$g/unet_sdxl/model.safetensors" -p x
expect_error "bigG without CLIP-L" "no clip-l text encoder" -m "$g/clip_text_g/model.safetensors" -p x --heads 4
expect_error "missing file" "$tmp/nope.safetensors" -m "$tmp/nope.safetensors" -p x
expect_error "bad weight" "not a number" -m "$sd15" -p "(x:1.2.3)" --heads 2
expect_error "clip skip too deep" "CLIP skip 4" -m "$sd15" -p x --heads 2 --clip-skip 4

# Bad usage: exit 2.
for args in "" "-m $sd15" "-p x" "-m $sd15 -p x --frobnicate" "-m $sd15 -p x --clip-skip two" \
  "-m $sd15 -p x --clip-skip -1" "-m $sd15 -p x --heads 0" "-m $sd15 -p"; do
  rc=0
  # shellcheck disable=SC2086
  "$tessera" encode $args >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || bad "'encode $args': exit $rc, want 2"
done
"$tessera" encode --help | grep -q "usage: tessera encode" || bad "--help"
"$tessera" --help | grep -q "^  encode " || bad "encode missing from tessera --help"

rm -rf "$tmp"
[ "$fail" -eq 0 ] && echo "encode.sh: all checks passed"
exit "$fail"
