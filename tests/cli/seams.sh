#!/usr/bin/env bash
# tessera seams on PNGs written here: a smooth picture scores ~1.0, the same picture
# with a tone step on a 64-pixel grid scores > 1.10 (and --max turns that into exit 1),
# an RGBA file is scored on its colour, and bad input is refused cleanly.
set -u
tessera=$1
tmp=${TESSERA_TEST_TMP:?}/seams-cli
rm -rf "$tmp" && mkdir -p "$tmp"
fail=0
python3 - "$tmp" <<'PY'
import math, random, struct, sys, zlib
def png(path, w, h, channels, pixel):
    rows = b"".join(b"\0" + bytes(v for x in range(w) for v in pixel(x, y)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ctype = {3: 2, 4: 6}[channels]
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
random.seed(1)
noise = [[random.uniform(-6, 6) for _ in range(320)] for _ in range(256)]
def value(x, y, c, step):
    v = 128 + 50 * math.sin(0.31 * x + c) * math.cos(0.23 * y) + 25 * math.sin(0.043 * (x + y)) + noise[y][x]
    v += step * ((x // 64 + y // 64) % 2)
    return max(0, min(255, int(round(v))))
png(sys.argv[1] + "/smooth.png", 320, 256, 3, lambda x, y: [value(x, y, c, 0) for c in range(3)])
png(sys.argv[1] + "/seams.png", 320, 256, 3, lambda x, y: [value(x, y, c, 8) for c in range(3)])
png(sys.argv[1] + "/small.png", 64, 64, 3, lambda x, y: [value(x, y, c, 0) for c in range(3)])
png(sys.argv[1] + "/seams_rgba.png", 320, 256, 4, lambda x, y: [value(x, y, c, 8) for c in range(3)] + [x % 256])
PY
ratio() { "$tessera" seams "$@" | sed -n 's/^seam ratio \([0-9.]*\).*/\1/p'; }
check() { # check DESCRIPTION CONDITION
    if python3 -c "import sys; sys.exit(0 if $2 else 1)"; then echo "ok: $1"; else echo "FAIL: $1 ($2)"; fail=1; fi
}
r=$(ratio "$tmp/smooth.png" --grid 64)
check "smooth picture scores about 1 ($r)" "0.95 < ${r:-0} < 1.05"
r=$(ratio "$tmp/seams.png" --grid 64)
check "tone steps on the grid score above 1.10 ($r)" "${r:-0} > 1.10"
r=$(ratio "$tmp/seams.png" --grid 64x64 --offset 32,32)
check "a grid off the steps sees none ($r)" "0.95 < ${r:-0} < 1.05"
r=$(ratio "$tmp/seams_rgba.png" --grid 64)
check "RGBA: alpha ignored ($r)" "${r:-0} > 1.10"
# Against a reference: the deviation from it is scored, so a step grid shows even where the
# picture itself is busy, and a picture scored against itself has no seams.
r=$(ratio "$tmp/seams.png" --grid 64 --reference "$tmp/smooth.png")
check "the deviation from the reference is all seams ($r)" "${r:-0} > 5"
r=$(ratio "$tmp/seams.png" --grid 64 --offset 32,32 --reference "$tmp/smooth.png")
check "... but not on a grid off the steps ($r)" "${r:-9} < 1.05"
. "$(dirname "$0")/lib/expect.sh"
expect 1 "a reference of another size fails" -- "$tessera" seams "$tmp/smooth.png" --grid 64 --reference "$tmp/small.png"
expect 1 "--max fails a seamed image" -- "$tessera" seams "$tmp/seams.png" --grid 64 --max 1.1
expect 0 "--max passes a smooth image" -- "$tessera" seams "$tmp/smooth.png" --grid 64 --max 1.1
expect 2 "--grid is required" -- "$tessera" seams "$tmp/smooth.png"
expect 2 "a bad grid is a usage error" -- "$tessera" seams "$tmp/smooth.png" --grid 0x5
expect 2 "a bad offset is a usage error" -- "$tessera" seams "$tmp/smooth.png" --grid 64 --offset 3,x
expect 1 "a grid larger than the image fails" -- "$tessera" seams "$tmp/smooth.png" --grid 1000
expect 1 "a missing file fails" -- "$tessera" seams "$tmp/none.png" --grid 64
grep -q "tessera seams: " "$tmp/out.txt" || { echo "FAIL: no 'tessera seams:' message"; fail=1; }
exit $fail
