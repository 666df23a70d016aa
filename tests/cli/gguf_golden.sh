#!/usr/bin/env bash
# Models loaded from GGUF files, as stable-diffusion.cpp and ComfyUI-GGUF users have them:
# every golden case with a model is converted (tessera convert) to f16 and q8_0 GGUF and run
# through its ordinary loader against the reference outputs: f16 within a relative L2 error of
# 2e-3 on every output (f16 weights round by up to 2^-11: the outputs move by ~1e-3, where the
# f32 tolerances of the cases are 3e-6..5e-5), q8_0 within 5e-2 (observed <= 3.5e-2 since ts_linear quantises the
# activations to int8 as well, as ggml does; the
# safetensors runs match the references to the case tolerances, so this is also the error
# against them).  generate_gguf.sh runs the CLI on such files.
set -u
tessera=${1:?usage: gguf_golden.sh /path/to/tessera}
shared=${TESSERA_SHARED:?}
tmp=${TESSERA_TEST_TMP:-/tmp}/cli_gguf_golden
golden=$shared/golden
[ -f "$golden/pipeline_sd15/model.safetensors" ] || exit 77
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# ---- golden cases ---------------------------------------------------------------------------
for dir in "$golden"/*/; do
    case=$(basename "$dir")
    [ -f "$dir/model.safetensors" ] || continue
    for spec in f16:2e-3 q8_0:5e-2; do
        type=${spec%%:*} limit=${spec##*:} gguf=$tmp/$case.$type.gguf
        "$tessera" convert "$dir/model.safetensors" -o "$gguf" --type "$type" >"$tmp/convert.txt" 2>&1 ||
            { bad "$case: convert to $type"; cat "$tmp/convert.txt"; continue; }
        # Every case but the VAEs (convolutions only) has layers that quantise: the q8_0 file must hold
        # some, or this would test f16 twice.
        if [ "$type" = q8_0 ] && [ "${case#vae_}" = "$case" ] && ! grep -q '"Q8_0"' <<<"$("$tessera" info "$gguf" --json)"; then
            bad "$case: no q8_0 tensor in the converted file"
        fi
        if "$tessera" golden --model "$gguf" --rel-l2 "$limit" "$dir" >"$tmp/golden.txt" 2>&1; then
            echo "ok: $case $type: $(grep -o '[0-9]* compared' "$tmp/golden.txt" | tail -1)"
        else
            bad "$case from $type GGUF:"; grep -E "FAIL" "$tmp/golden.txt" | head -5 | sed 's/^/    /'
        fi
    done
done

rm -rf "$tmp"
exit $fail
