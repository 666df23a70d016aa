#!/usr/bin/env bash
# tessera info: family detection on full-size sparse files built from every published keyset
# (real header, real data_offsets in the published dtypes, data left as a hole, so no disk is
# used), the golden cases' model files, an unknown-keys file (exit 3), malformed files (exit 1,
# one line on stderr) and bad flags (exit 2).
set -euo pipefail
tessera=${1:?usage: info.sh /path/to/tessera}
shared=${TESSERA_SHARED:?}
tmp=${TESSERA_TEST_TMP:-/tmp}/cli_info
rm -rf "$tmp"
mkdir -p "$tmp"
command -v python3 >/dev/null || { echo "python3 missing"; exit 77; }
[ -d "$shared/data/keysets" ] || { echo "no keysets in $shared"; exit 77; }
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# Writes each NAME=SOURCE as $tmp/NAME.safetensors, sparse: the real header (tensors from a keyset
# JSON, or a literal tensor map after "="), data_offsets in the given dtypes, data left as a hole.
make_sparse() {
  python3 - "$tmp" "$@" <<'PY'
import json, struct, sys
size = {"F64": 8, "F32": 4, "I64": 8, "I32": 4, "F16": 2, "BF16": 2, "U8": 1}
for arg in sys.argv[2:]:
    name, src = arg.split("=", 1)
    tensors = json.loads(src[1:]) if src.startswith("=") else json.load(open(src))["tensors"]
    header, at = {}, 0
    for key in sorted(tensors):
        t = tensors[key]
        n = 1
        for d in t["shape"]:
            n *= d
        header[key] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [at, at + n * size[t["dtype"]]]}
        at += n * size[t["dtype"]]
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(f"{sys.argv[1]}/{name}.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + at)
PY
}

# Every keyset with its family and components.  Outputs go to $tmp/NAME.json and are checked
# in one python run (python's start-up dominates this test otherwise).
expect=(
  "sd15 sd1 unet,vae,clip-l"
  "sd21 sd2 unet,vae,openclip-h"
  "sdxl_base sdxl unet,vae,clip-l,clip-g"
  "sd3_medium sd3 mmdit,vae"
  "sd35_medium sd3.5 mmdit,vae"
  "flux1_schnell flux-schnell flux"
  "flux1_dev flux-dev flux"
  "flux_ae vae vae"
  "clip_l clip-l clip-l"
  "clip_g clip-g clip-g"
  "t5xxl t5 t5"
)
sources=()
for e in "${expect[@]}"; do
  k=${e%% *}
  sources+=("$k=$shared/data/keysets/$k.json")
done
make_sparse "${sources[@]}"
for e in "${expect[@]}"; do
  k=${e%% *}
  rc=0
  "$tessera" info --json "$tmp/$k.safetensors" >"$tmp/$k.json" || rc=$?
  [ "$rc" -eq 0 ] || bad "$k: exit $rc"
done
"$tessera" info "$tmp/sd15.safetensors" >"$tmp/sd15.txt"
for want in "tensors     1143" "family      sd1" "F32 " "I64 " "metadata    format"; do
  grep -qF "$want" "$tmp/sd15.txt" || bad "text output lacks '$want'"
done

# Golden cases' model files, where a case holds one family.
golden=(
  "clip_text_g clip-g" "clip_text_l clip-l" "flux_dev flux-dev" "flux_sampling flux-schnell"
  "flux_schnell flux-schnell" "pipeline_flux flux-schnell" "mmdit_sd3 sd3" "sd3_sampling sd3" "mmdit_sd35 sd3.5"
  "t5_encoder t5" "pipeline_sd15 sd1" "unet_sd15 sd1" "unet_sd15_inpaint sd1" "unet_sdxl sdxl" "vae_kl vae"
  "vae_kl16 vae"
)
for g in "${golden[@]}"; do
  c=${g%% *}
  model=$shared/golden/$c/model.safetensors
  [ -f "$model" ] && "$tessera" info --json "$model" >"$tmp/golden_$c.json" || true
done

python3 - "$tmp" "$shared" "${expect[@]}" -- "${golden[@]}" <<'PY' || fail=1
import json, math, os, sys
tmp, shared = sys.argv[1], sys.argv[2]
rest = sys.argv[3:]
sep = rest.index("--")
bad = 0
for e in rest[:sep]:
    key, family, comps = e.split()
    ks = json.load(open(f"{shared}/data/keysets/{key}.json"))
    j = json.load(open(f"{tmp}/{key}.json"))
    # the keyset's published parameter count, else the sum of its shapes
    params = ks.get("check", {}).get("parameters") or sum(math.prod(t["shape"]) for t in ks["tensors"].values())
    got = (j["family"], ",".join(j["components"]), j["tensors"], j["parameters"])
    want = (family, comps, len(ks["tensors"]), params)
    claimed = sum(c["tensors"] for c in j["component_counts"].values()) + j["other_tensors"]
    ok = got == want and claimed == j["tensors"]
    bad += not ok
    print(f"{key}: {got[0]} [{got[1]}] {got[2]} tensors {got[3]} parameters {'ok' if ok else f'FAIL want {want}'}")
for g in rest[sep + 1:]:
    case, family = g.split()
    path = f"{tmp}/golden_{case}.json"
    if not os.path.exists(path):
        continue
    got = json.load(open(path))["family"]
    if got != family:
        print(f"FAIL: golden {case}: family {got}, want {family}")
        bad += 1
sys.exit(1 if bad else 0)
PY

# Unknown keys: the summary is printed, "unknown family", exit 3.
make_sparse 'unknown=={"foo.weight": {"dtype": "F32", "shape": [4, 4]}, "bar": {"dtype": "F16", "shape": [3]}}' \
  "trunc=$shared/data/keysets/clip_l.json"
rc=0
out=$("$tessera" info "$tmp/unknown.safetensors") || rc=$?
[ "$rc" -eq 3 ] || bad "unknown file: exit $rc, want 3"
grep -q "unknown family" <<<"$out" || bad "unknown file: no 'unknown family' line"
rc=0
out=$("$tessera" info --json "$tmp/unknown.safetensors") || rc=$?
[ "$rc" -eq 3 ] && grep -q '"family":[[:space:]]*"unknown"' <<<"$out" || bad "unknown file --json: exit $rc"

# Malformed files: exit 1, exactly one line on stderr naming the file.
expect_malformed() {
  local what=$1 f=$2 rc=0
  "$tessera" info "$f" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" -eq 1 ] || bad "$what: exit $rc, want 1"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || bad "$what: stderr is not one line: $(cat "$tmp/err")"
  grep -q "^tessera info: $f: " "$tmp/err" || bad "$what: stderr lacks the prefix: $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || bad "$what: printed to stdout"
}
truncate -s 100000 "$tmp/trunc.safetensors"
expect_malformed truncated "$tmp/trunc.safetensors"
printf 'abc' >"$tmp/short.safetensors"
expect_malformed short "$tmp/short.safetensors"
printf '\x0a\x00\x00\x00\x00\x00\x00\x00{"a\\nb": 1}' >"$tmp/newline.safetensors"
expect_malformed "newline in a name" "$tmp/newline.safetensors"
expect_malformed missing "$tmp/does-not-exist.safetensors"

# Bad usage: exit 2.
for args in "" "--frobnicate $tmp/unknown.safetensors" "$tmp/a $tmp/b"; do
  rc=0
  # shellcheck disable=SC2086
  "$tessera" info $args >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || bad "'info $args': exit $rc, want 2"
done
"$tessera" info --help | grep -q "usage: tessera info" || bad "--help"

rm -rf "$tmp"
[ "$fail" -eq 0 ] && echo "info.sh: all checks passed"
exit "$fail"
