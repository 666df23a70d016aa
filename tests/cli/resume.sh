#!/usr/bin/env bash
# tessera generate never loses a run, on the tiny pipeline_sd15 checkpoint: a run stopped by
# SIGINT (raised after step N by the TESSERA_STOP_AFTER_STEP hook, so the moment is exact) leaves
# OUT.state and no image, and --resume then writes the very file the uninterrupted run writes
# (euler_a: step noise; dpmpp_2m: history; a batch; every sampler and inpainting are in
# tests/test_sd_resume.c).  A run whose sampling or VAE decode fails for lack of memory
# (TESSERA_MAX_ARENA) is kept the same way; a decode that only the tiled decoder can fit falls
# back to it.  Bad state files and flags: one line, non-zero exit.
. "$(dirname "$0")/lib/sd15.sh" "$@" cli_resume
gen() { "$tessera" generate --unet-heads 2 --clip-heads 2 -m "$model" -p "a red fox" -W 64 -H 48 --steps 4 --seed 5 "$@"; }
resume() { "$tessera" generate --resume "$@"; }
meta() { python3 -c 'import json, struct, sys
d = open(sys.argv[1], "rb").read()
print(json.loads(d[8:8 + struct.unpack("<Q", d[:8])[0]])["__metadata__"][sys.argv[2]])' "$@"; }

# stopped STATUS NAME -- command...: exits STATUS, leaves NAME.state and no NAME, and says how to resume.
stopped() {
    local want=$1 name=$2
    shift 3
    "$@" >/dev/null 2>"$tmp/err.txt"
    local got=$?
    [ "$got" -eq "$want" ] || bad "$name: exit $got, expected $want"
    [ -f "$tmp/$name.state" ] || bad "$name: no state file"
    [ -e "$tmp/$name" ] && bad "$name: a stopped run wrote its image"
    grep -q "resume with: tessera generate --resume $tmp/$name.state$" "$tmp/err.txt" ||
        bad "$name: no resume hint in: $(tail -1 "$tmp/err.txt")"
}

# finished NAME REFERENCE: resuming NAME.state writes REFERENCE's bytes and removes the state.
finished() {
    resume "$tmp/$1.state" 2>"$tmp/err.txt" >/dev/null || bad "$1: resume failed: $(tail -1 "$tmp/err.txt")"
    cmp -s "$tmp/$1" "$tmp/$2" || bad "$1: the resumed run differs from the uninterrupted one"
    [ -e "$tmp/$1.state" ] && bad "$1: the state file was not removed"
    [ "$fail" -eq 0 ] && echo "ok: $1"
}

# refused PATTERN -- command...: a non-zero exit with one stderr line matching PATTERN.
refused() {
    local pattern=$1
    shift 2
    "$@" >/dev/null 2>"$tmp/err.txt"
    local got=$?
    if [ "$got" -eq 0 ] || ! grep -q -- "$pattern" "$tmp/err.txt" || [ "$(grep -vc '^$' "$tmp/err.txt")" -ne 1 ]; then
        bad "$*: exit $got, expected one line with '$pattern':"; sed 's/^/    /' "$tmp/err.txt" | tail -3
    else
        echo "ok: $pattern"
    fi
}

# ---- stopped by SIGINT, resumed ------------------------------------------------------------
for sampler in euler_a dpmpp_2m; do
    gen --sampler $sampler -o "$tmp/$sampler-ref.png" 2>/dev/null
    TESSERA_STOP_AFTER_STEP=2 stopped 130 $sampler.png -- gen --sampler $sampler -o "$tmp/$sampler.png"
    [ "$(meta "$tmp/$sampler.png.state" step)" = 2 ] || bad "$sampler: the state is not at step 2"
    finished $sampler.png $sampler-ref.png
done

# A batch stopped in its first image finishes every image; --threads is the one option
# --resume accepts.
gen --batch-count 2 --threads 1 -o "$tmp/batch-ref.png" 2>/dev/null
TESSERA_STOP_AFTER_STEP=3 stopped 130 batch.png -- gen --batch-count 2 --threads 1 -o "$tmp/batch.png"
[ -e "$tmp/batch-1.png" ] && bad "batch: the stopped image was written"
resume "$tmp/batch.png.state" --threads 1 2>/dev/null || bad "batch: resume with --threads failed"
for i in 1 2; do cmp -s "$tmp/batch-$i.png" "$tmp/batch-ref-$i.png" || bad "batch image $i differs"; done
[ "$fail" -eq 0 ] && echo "ok: batch"

# ---- out of memory ---------------------------------------------------------------------------
# The sizes fit this model at 64x48: a UNet call needs ~0.3 MiB of activations, the tiled VAE
# decode ~1.2 MiB, the untiled one ~1.9 MiB.
cp "$tmp/dpmpp_2m-ref.png" "$tmp/ref.png" # dpmpp_2m is the default sampler
TESSERA_MAX_ARENA=200K stopped 1 unet.png -- gen -o "$tmp/unet.png"
[ "$(meta "$tmp/unet.png.state" phase)" = sample ] || bad "a failing UNet call did not keep a sampling state"
finished unet.png ref.png

TESSERA_MAX_ARENA=600K stopped 1 decode.png -- gen -o "$tmp/decode.png"
[ "$(meta "$tmp/decode.png.state" phase)/$(meta "$tmp/decode.png.state" step)" = decode/4 ] ||
    bad "a failing decode did not keep a decode state"
finished decode.png ref.png

# With room for the tiled decode only, the run completes through it.
TESSERA_MAX_ARENA=1500K "$tessera" vae-decode "$model" --size 64x48 --untiled >/dev/null 2>&1 &&
    bad "the untiled decode fits in 1500K: the fallback below is not exercised"
TESSERA_MAX_ARENA=1500K gen -o "$tmp/tiled.png" 2>/dev/null || bad "the tiled fallback failed"
[ -e "$tmp/tiled.png.state" ] && bad "the tiled fallback left a state file"
diff=$(python3 "$here/lib/png_maxdiff.py" "$tmp/tiled.png" "$tmp/ref.png")
[ "${diff:-9}" -le 1 ] && echo "ok: tiled fallback (max diff $diff)" || bad "tiled fallback differs by $diff"
refused "TESSERA_MAX_ARENA=12X: not a size" -- env TESSERA_MAX_ARENA=12X "$tessera" generate --unet-heads 2 \
    --clip-heads 2 -m "$model" -p x -W 64 -H 48 --steps 1 --seed 1 -o "$tmp/e.png"

# ---- bad state files and flags ------------------------------------------------------------------
TESSERA_STOP_AFTER_STEP=1 gen -o "$tmp/s.png" 2>/dev/null
state=$tmp/s.png.state
size=$(stat -c %s "$state")
head -c $((size - 10)) "$state" >"$tmp/truncated.state"
head -c 100 "$state" >"$tmp/header.state"
printf 'not a state' >"$tmp/garbage.state"
edit() { python3 "$here/st_edit.py" "$state" "$tmp/$1.state" "${@:2}"; }
edit step meta:step=7
edit version meta:version=2
edit phase meta:phase=upscale
edit params 'meta:parameters={"model":"x","bogus":"1"}'
edit value 'meta:parameters={"steps":"many"}'
edit noprev drop:prev
edit extra reshape:extra:4
refused "$tmp/truncated.state" -- resume "$tmp/truncated.state"
refused "$tmp/header.state" -- resume "$tmp/header.state"
refused "$tmp/garbage.state" -- resume "$tmp/garbage.state"
refused "$tmp/nope.state" -- resume "$tmp/nope.state"
refused "not a Tessera run state" -- resume "$model"
refused "step \"7\" is not a number in \[0, 4\]" -- resume "$tmp/step.state"
refused "run state version \"2\" is not supported" -- resume "$tmp/version.state"
refused "cannot continue a run in phase \"upscale\"" -- resume "$tmp/phase.state"
refused "the setting 'bogus' is not one this version knows" -- resume "$tmp/params.state"
refused "bad value 'many' for --steps" -- resume "$tmp/value.state"
refused "lacks its sampler history" -- resume "$tmp/noprev.state"
refused "tensors other than x, prev and rng.mt19937" -- resume "$tmp/extra.state"
refused "only --threads may be given" -- resume "$state" --steps 3
refused "only --threads may be given" -- "$tessera" generate -p x --resume "$state"
[ -e "$state" ] || bad "a refused resume removed the state file"
ls "$tmp" | grep -q '\.tmp$' && bad "a temporary file was left behind"
exit $fail
