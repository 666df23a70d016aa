#!/usr/bin/env bash
# The VAE golden cases must pass through the tiled VAE (at 10x tolerance) with tiles
# smaller than the tiny cases' 8x6 latents, so every pass crosses tile borders; and a
# bad tile size is a usage error.
set -u
tessera=$1
shared=${TESSERA_SHARED:?}
tmp=${TESSERA_TEST_TMP:?}/golden-vae-tiled
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
for tile in 2 3 5; do
    if "$tessera" golden --vae-tile "$tile" "$shared/golden/vae_kl" "$shared/golden/vae_kl16" >"$tmp/out.txt" 2>&1 &&
        grep -q "golden: 2 passed, 0 failed" "$tmp/out.txt"; then
        echo "ok: vae_kl and vae_kl16 pass with --vae-tile $tile"
    else
        echo "FAIL: --vae-tile $tile"; sed 's/^/    /' "$tmp/out.txt" | tail -8; fail=1
    fi
done
grep -q "tol 0.0005" "$tmp/out.txt" || { echo "FAIL: tolerances were not scaled by 10"; fail=1; }
for bad in 0 -3 x; do
    "$tessera" golden --vae-tile "$bad" "$shared/golden/vae_kl" >"$tmp/out.txt" 2>&1
    rc=$?
    if [ "$rc" -ne 2 ]; then echo "FAIL: --vae-tile $bad: exit $rc, expected 2"; fail=1; else echo "ok: --vae-tile $bad is refused"; fi
done
exit $fail
