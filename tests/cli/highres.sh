#!/usr/bin/env bash
# The high-resolution engine from the command line on the tiny pipeline_sd15 checkpoint:
# one tile of the whole canvas is the untiled pipeline exactly; a region over the whole
# canvas is exactly a run with its prompt; tiled, batched-tile, regional and two-pass runs
# are reproducible and differ from what they should differ from; bad flags get one-line
# errors.
. "$(dirname "$0")/lib/sd15.sh" "$@" cli_highres
. "$here/lib/expect_stderr.sh"
gen() { "$tessera" generate --unet-heads 2 --clip-heads 2 -m "$model" --steps 3 --seed 5 "$@" 2>"$tmp/log.txt" \
        || { bad "generate $*"; tail -2 "$tmp/log.txt"; }; }
maxdiff() { python3 "$here/lib/png_maxdiff.py" "$1" "$2"; }
same() { [ "$(maxdiff "$1" "$2")" = 0 ] && echo "ok: $3" || bad "$3: max difference $(maxdiff "$1" "$2")"; }
differ() { [ "$(maxdiff "$1" "$2")" -gt 2 ] && echo "ok: $3" || bad "$3: only $(maxdiff "$1" "$2") apart"; }

p=(-p "a red barn in a field" -W 256 -H 192)
gen "${p[@]}" --tile 0 -o "$tmp/untiled.png"
gen "${p[@]}" --tile 32 --tile-overlap 8 -o "$tmp/one_tile.png"
same "$tmp/untiled.png" "$tmp/one_tile.png" "a tile of the whole canvas is the untiled run"

gen "${p[@]}" --tile 8 --tile-overlap 4 --tile-batch 1 -o "$tmp/tiled_b1.png"
gen "${p[@]}" --tile 8 --tile-overlap 4 --tile-batch 5 -o "$tmp/tiled_b5.png"
gen "${p[@]}" --tile 8 --tile-overlap 4 --tile-batch 5 -o "$tmp/tiled_b5_again.png"
cmp -s "$tmp/tiled_b5.png" "$tmp/tiled_b5_again.png" && echo "ok: tiled runs are byte-reproducible" \
    || bad "tiled runs differ"
[ "$(maxdiff "$tmp/tiled_b1.png" "$tmp/tiled_b5.png")" -le 1 ] && echo "ok: tile batching does not change the result" \
    || bad "batch 1 vs 5: $(maxdiff "$tmp/tiled_b1.png" "$tmp/tiled_b5.png")"
differ "$tmp/untiled.png" "$tmp/tiled_b1.png" "small tiles change the picture"
gen "${p[@]}" --tile 8 --tile-overlap 4 --tile-blend uniform -o "$tmp/tiled_uniform.png"
differ "$tmp/tiled_b1.png" "$tmp/tiled_uniform.png" "uniform and gaussian blends differ"
grep -q "Tiled diffusion: 8/4 gaussian" <(python3 "$here/png_check.py" text "$tmp/tiled_b1.png") \
    && echo "ok: tiling recorded in the parameters" || bad "no tiling in the parameters text"

gen -p "a blue lake" -W 256 -H 192 --tile 0 -o "$tmp/lake.png"
gen "${p[@]}" --tile 0 --region "0,0,1,1:a blue lake" -o "$tmp/region_all.png"
same "$tmp/lake.png" "$tmp/region_all.png" "a region over the whole canvas is a run with its prompt"
gen "${p[@]}" --tile 0 --region "0,0,128,192:a blue lake" -o "$tmp/region_left.png"
differ "$tmp/untiled.png" "$tmp/region_left.png" "a half-canvas region changes the picture"
differ "$tmp/lake.png" "$tmp/region_left.png" "... but not into the region's prompt everywhere"
python3 "$here/png_check.py" make mask "$tmp/left_mask.png" 256 192
gen "${p[@]}" --tile 8 --tile-overlap 4 --region-mask "$tmp/left_mask.png:a blue lake" -o "$tmp/region_mask.png"
differ "$tmp/tiled_b1.png" "$tmp/region_mask.png" "a mask region works with tiles"

gen "${p[@]}" --hires on --hires-size 64x64 --tile 8 --tile-overlap 4 -o "$tmp/hires.png"
gen "${p[@]}" --hires on --hires-size 64x64 --tile 8 --tile-overlap 4 -o "$tmp/hires_again.png"
cmp -s "$tmp/hires.png" "$tmp/hires_again.png" && echo "ok: two-pass runs are byte-reproducible" \
    || bad "two-pass runs differ"
differ "$tmp/tiled_b1.png" "$tmp/hires.png" "the two-pass run differs from the one-pass tiled run"
gen "${p[@]}" --hires on --hires-size 64x64 --tile 8 --tile-overlap 4 --skip-residual 0 -o "$tmp/hires_noskip.png"
differ "$tmp/hires.png" "$tmp/hires_noskip.png" "the skip residual changes the refinement"
# The first pass enlarged in pixels (decoded, resized, encoded) rather than as a latent; and
# through a super-resolution network when scripts/fetch-models.sh has installed one.
gen "${p[@]}" --hires on --hires-size 64x64 --tile 8 --tile-overlap 4 --hires-upscale pixel -o "$tmp/hires_px.png"
differ "$tmp/hires.png" "$tmp/hires_px.png" "the pixel-space upscale gives another refinement start"
grep -q "Hires upscaler: pixel" <(python3 "$here/png_check.py" text "$tmp/hires_px.png") \
    && echo "ok: the upscaler is recorded" || bad "no upscaler in the parameters text"
if "$tessera" upscale --help >/dev/null 2>&1 && [ -d "$here/../../models/upscalerjs/esrgan-slim" ]; then
    gen "${p[@]}" --hires on --hires-size 64x64 --tile 8 --tile-overlap 4 --hires-upscale slim -o "$tmp/hires_sr.png"
    differ "$tmp/hires_px.png" "$tmp/hires_sr.png" "super-resolution changes the enlarged first pass"
fi

# A two-pass run stopped in either pass finishes, from its state file, to the same bytes.
for stop in 2 5; do
    TESSERA_STOP_AFTER_STEP=$stop "$tessera" generate --unet-heads 2 --clip-heads 2 -m "$model" --steps 3 --seed 5 \
        "${p[@]}" --hires on --hires-size 64x64 --tile 8 --tile-overlap 4 -o "$tmp/hires_stop$stop.png" 2>/dev/null
    status=$?
    if [ $status -ne 130 ] || [ ! -f "$tmp/hires_stop$stop.png.state" ] || [ -e "$tmp/hires_stop$stop.png" ]; then
        bad "two-pass stop after step $stop: exit $status"
    elif ! "$tessera" generate --resume "$tmp/hires_stop$stop.png.state" 2>"$tmp/log.txt"; then
        bad "two-pass resume after step $stop"; tail -2 "$tmp/log.txt"
    else
        cmp -s "$tmp/hires_stop$stop.png" "$tmp/hires.png" && echo "ok: two-pass run resumed from step $stop" \
            || bad "two-pass run resumed from step $stop differs"
    fi
done
gen "${p[@]}" --vae-tile 8 --tile 0 -o "$tmp/vae_tiled.png"
[ "$(maxdiff "$tmp/untiled.png" "$tmp/vae_tiled.png")" -le 1 ] && echo "ok: the tiled VAE decode matches" \
    || bad "tiled VAE: $(maxdiff "$tmp/untiled.png" "$tmp/vae_tiled.png")"

g=("$tessera" generate --unet-heads 2 --clip-heads 2 -m "$model" --steps 1 --seed 1 -o "$tmp/x.png")
expect 2 "bad value '0,0,5:x' for --region" -- "${g[@]}" -p a --region "0,0,5:x"
expect 2 "bad value 'feather' for --tile-blend" -- "${g[@]}" -p a --tile-blend feather
expect 2 "bad value 'sometimes' for --hires" -- "${g[@]}" -p a --hires sometimes
expect 1 "lies outside" -- "${g[@]}" -p a -W 128 -H 128 --region "500,500,10,10:x"
expect 1 "tile size 7 must be a positive multiple of" -- "${g[@]}" -p a -W 128 -H 128 --tile 7
expect 1 "tile overlap 8 must be" -- "${g[@]}" -p a -W 128 -H 128 --tile 8 --tile-overlap 8
[ ! -e "$tmp/x.png" ] && echo "ok: no output after errors" || bad "an output was written after an error"
exit $fail
