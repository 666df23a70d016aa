#!/usr/bin/env bash
# ComfyUI-GGUF style diffusion-model files, written by comfy_gguf.py (its own GGUF writer, not
# tessera's): bare names, Q8_0 everywhere ComfyUI-GGUF quantises, conv kernels and rows that are
# not whole blocks flattened to rows of 256 with "comfy.gguf.orig_shape" keys.  Each loads
# through the ordinary loader (family and prefix detected) and passes its golden case within a
# relative L2 error of 5e-2: the conv kernels are quantised here too, unlike in `tessera
# convert` files (observed up to 3.5e-2, SDXL).  A block-quantised kernel is widened per
# convolution (ops/conv.c), a flattened matrix whose rows are not whole blocks once at load.
set -u
tessera=${1:?usage: comfy_gguf.sh /path/to/tessera}
shared=${TESSERA_SHARED:?}
here=$(cd "$(dirname "$0")" && pwd)
tmp=${TESSERA_TEST_TMP:-/tmp}/cli_comfy_gguf
golden=$shared/golden
[ -f "$golden/unet_sd15/model.safetensors" ] || exit 77
command -v python3 >/dev/null || exit 77
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0

for spec in unet_sd15:model.diffusion_model. unet_sdxl:model.diffusion_model. mmdit_sd3:model.diffusion_model. \
    flux_schnell:; do
    case=${spec%%:*} prefix=${spec#*:}
    [ -f "$golden/$case/model.safetensors" ] || continue
    if ! python3 "$here/comfy_gguf.py" "$golden/$case/model.safetensors" "$tmp/$case.gguf" "$prefix" >"$tmp/write.txt"; then
        echo "FAIL: $case: comfy_gguf.py"; fail=1; continue
    fi
    grep -q "of which [1-9][0-9]* flattened" "$tmp/write.txt" || { echo "FAIL: $case: nothing flattened"; fail=1; }
    if "$tessera" golden --model "$tmp/$case.gguf" --rel-l2 5e-2 "$golden/$case" >"$tmp/golden.txt" 2>&1; then
        echo "ok: $case: $(cat "$tmp/write.txt"): $(grep -o '[0-9]* compared' "$tmp/golden.txt" | tail -1)"
    else
        echo "FAIL: $case:"; grep FAIL "$tmp/golden.txt" | head -5 | sed 's/^/    /'; fail=1
    fi
done
rm -rf "$tmp"
exit $fail
